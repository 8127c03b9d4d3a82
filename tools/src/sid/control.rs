//! The control protocol between `sidctl` commands and `sidctl serve`: one JSON request
//! line over the Unix socket, one JSON response line back.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    Offer {
        /// Peer identity, or its address (`IP` or `IP:port`) as configured.
        peer: String,
        /// "transferring" or "target": this device's role.
        role: String,
        lifetime: Option<u16>,
        further_transfer: bool,
        reverse_tunnel: bool,
        /// Target offers: the session asked for (default: any).
        tn_address: Option<std::net::Ipv4Addr>,
        /// TN offers: the Target is on this link, no Agent (FIG. 1b).
        #[serde(default)]
        local: bool,
    },
    Accept {
        id: u64,
        reverse_tunnel: Option<bool>,
        /// TN answering a Target's offer: no Agent (FIG. 1b).
        #[serde(default)]
        local: bool,
    },
    Transfer { id: u64 },
    Renew,
    Stop,
    Status,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    pub message: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(message: impl Into<String>) -> Self {
        Response { ok: true, message: message.into(), data: serde_json::Value::Null }
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Response { ok: false, message: message.into(), data: serde_json::Value::Null }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("daemon unreachable at {path}: {source}")]
    Unreachable { path: String, source: std::io::Error },
    #[error("daemon connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad answer from the daemon: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Sends one request and reads the answer.
pub async fn call(socket: &Path, request: &Request) -> Result<Response, ClientError> {
    let stream = UnixStream::connect(socket).await.map_err(|source| ClientError::Unreachable {
        path: socket.display().to_string(),
        source,
    })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    write.shutdown().await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    Ok(serde_json::from_str(&answer)?)
}
