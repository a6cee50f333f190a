//! The agent's side of the socket: bind with mode 0600 (root only), then one task per connection.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{ApiContext, Request, Response, handle};
use crate::cni::codes::DECODE;
use crate::private_files::{PRIVATE_DIR, PRIVATE_FILE};

/// The longest request line accepted.
const MAX_REQUEST: u64 = 1 << 20;

/// The socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve the CNI socket {path} ({step}): {source}; check that its directory is writable by root")]
pub struct ServerError {
    /// The socket path.
    pub path: PathBuf,
    /// Which step failed.
    pub step: &'static str,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// Binds the socket (replacing a stale one) with mode 0600. A missing directory is created 0700;
/// an existing one is left as it is (it may be shared, as `/run` is).
pub fn bind(path: &Path) -> Result<UnixListener, ServerError> {
    let fail = |step| move |source| ServerError { path: path.to_path_buf(), step, source };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty() && !dir.exists()) {
        std::fs::DirBuilder::new().recursive(true).mode(PRIVATE_DIR).create(dir).map_err(fail("create directory"))?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail("remove stale socket")(e)),
        _ => {}
    }
    let listener = UnixListener::bind(path).map_err(fail("bind"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_FILE)).map_err(fail("chmod 0600"))?;
    Ok(listener)
}

/// Serves connections until the task is dropped.
pub async fn serve(listener: UnixListener, context: Arc<ApiContext>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, Arc::clone(&context)));
            }
            Err(error) => {
                tracing::warn!(%error, "accepting a CNI connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: UnixStream, context: Arc<ApiContext>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    let response = match reader.read_line(&mut line).await {
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Ok(request) => handle(&context, request).await,
            Err(e) => Response::error(
                DECODE,
                "the request does not decode; are the plugin and agent the same version?",
                e.to_string(),
            ),
        },
        Err(e) => Response::error(DECODE, "reading the request failed", e.to_string()),
    };
    let mut text = serde_json::to_string(&response).unwrap_or_default();
    text.push('\n');
    if let Err(error) = write.write_all(text.as_bytes()).await {
        tracing::debug!(%error, "the CNI plugin went away before its answer");
    }
}
