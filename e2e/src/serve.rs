//! The tiny servers and client the lab runs inside pods: `gingham-lab serve` answers every TCP
//! connection with the pod's name and echoes UDP; `gingham-lab connect` is the client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

/// A server or client failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A port spec is not `tcp:N` or `udp:N`.
    #[error("bad port {0:?}: use tcp:N or udp:N, comma-separated")]
    BadPort(String),
    /// A socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> ServeError {
    move |source| ServeError::Io { what, source }
}

/// Serves `tcp:N`/`udp:N` ports (comma-separated) until killed, on both families where the
/// namespace has IPv6 (one `[::]` socket also takes IPv4), else on IPv4.
pub fn serve(name: &str, ports: &str) -> Result<(), ServeError> {
    let mut threads = Vec::new();
    for spec in ports.split(',').filter(|s| !s.is_empty()) {
        let (proto, port) = spec.split_once(':').ok_or_else(|| ServeError::BadPort(spec.into()))?;
        let port: u16 = port.parse().map_err(|_| ServeError::BadPort(spec.into()))?;
        let reply = format!("{name}\n");
        match proto {
            "tcp" => {
                let listener = TcpListener::bind(("::", port))
                    .or_else(|_| TcpListener::bind(("0.0.0.0", port)))
                    .map_err(io(format!("listen on tcp:{port}")))?;
                threads.push(std::thread::spawn(move || {
                    for mut stream in listener.incoming().flatten() {
                        let _ = stream.write_all(reply.as_bytes());
                    }
                }));
            }
            "udp" => {
                let socket = UdpSocket::bind(("::", port))
                    .or_else(|_| UdpSocket::bind(("0.0.0.0", port)))
                    .map_err(io(format!("bind udp:{port}")))?;
                threads.push(std::thread::spawn(move || {
                    let mut buf = [0u8; 1500];
                    while let Ok((_, from)) = socket.recv_from(&mut buf) {
                        let _ = socket.send_to(reply.as_bytes(), from);
                    }
                }));
            }
            _ => return Err(ServeError::BadPort(spec.into())),
        }
    }
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}

/// Connects to a TCP (or sends to a UDP) port and returns what the server answered.
pub fn connect(address: SocketAddr, udp: bool, timeout: Duration) -> Result<String, ServeError> {
    let mut reply = String::new();
    if udp {
        let any = if address.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
        let socket = UdpSocket::bind(any).map_err(io("bind".into()))?;
        socket.set_read_timeout(Some(timeout)).map_err(io("timeout".into()))?;
        socket.send_to(b"probe", address).map_err(io(format!("send to udp {address}")))?;
        let mut buf = [0u8; 1500];
        let (n, _) = socket.recv_from(&mut buf).map_err(io(format!("receive from udp {address}")))?;
        reply.push_str(&String::from_utf8_lossy(buf.get(..n).unwrap_or_default()));
    } else {
        let mut stream =
            TcpStream::connect_timeout(&address, timeout).map_err(io(format!("connect to tcp {address}")))?;
        stream.set_read_timeout(Some(timeout)).map_err(io("timeout".into()))?;
        stream.read_to_string(&mut reply).map_err(io(format!("read from tcp {address}")))?;
    }
    Ok(reply.trim().to_string())
}
