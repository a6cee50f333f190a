//! `gingham-cni`: the CNI plugin (`type: gingham`). The container runtime runs it with CNI_*
//! variables and the network configuration on stdin; it prints the result or the error JSON.

use std::io::Read;

use gingham_node_agent::cni::{self, CniError, Invocation, codes};

fn main() {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).with_target(false).init();
    let mut stdin = String::new();
    let read = std::io::stdin().read_to_string(&mut stdin);
    let version = cni::requested_version(&stdin);
    let outcome = read
        .map_err(|e| CniError::new(codes::IO, format!("cannot read the network configuration on stdin: {e}")))
        .and_then(|_| Invocation::from_lookup(|name| std::env::var(name).ok()))
        .and_then(|invocation| cni::run(&invocation, &stdin));
    match outcome {
        Ok(Some(result)) => println!("{result}"),
        Ok(None) => {}
        Err(error) => {
            tracing::error!(code = error.code, "{}", error.msg);
            println!("{}", error.to_json(&version));
            std::process::exit(1);
        }
    }
}
