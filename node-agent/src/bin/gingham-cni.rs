//! `gingham-cni`: the CNI plugin (`type: gingham`). The container runtime runs it with CNI_*
//! variables and the network configuration on stdin; it prints the result or the error JSON.

use gingham_node_agent::cni::{self, Invocation};

fn main() {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).with_target(false).init();
    let stdin = cni::read_stdin(std::io::stdin().lock());
    let version = stdin.as_deref().map_or_else(|_| cni::CniVersion::LATEST.to_string(), cni::requested_version);
    let outcome = stdin.and_then(|stdin| {
        let invocation = Invocation::from_lookup(|name| std::env::var(name).ok())?;
        cni::run(&invocation, &stdin)
    });
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
