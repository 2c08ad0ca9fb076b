//! A TCP proxy that tests can partition: put it between a compute agent and its orchestrator,
//! then cut, freeze and restore the link.
//!
//! ```text
//!            Open ──cut()──► Cut     current connections dropped; new ones held, unanswered
//!             ▲  ──freeze()─► Frozen  connections stay open, no byte passes either way
//!             └──restore()──┘         held connections proceed, frozen bytes flow again
//! ```
//!
//! `Cut` is a partition both ends notice at once (the sockets close); `Frozen` is a silent one
//! that only timeouts (heartbeats, handshakes) can detect.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Bytes flow both ways.
    Open,
    /// Existing connections stay open but nothing passes.
    Frozen,
    /// Existing connections were dropped; new ones are accepted and held until restored.
    Cut,
}

/// A pausable TCP proxy on 127.0.0.1 in front of one upstream address.
///
/// Dropping it stops accepting and drops every connection it carries.
pub struct LinkProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    mode: watch::Sender<ProxyMode>,
    accepted: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl LinkProxy {
    /// Binds an ephemeral port on 127.0.0.1 and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<LinkProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(ProxyMode::Open);
        let accepted = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            mode.clone(),
            accepted.clone(),
        ));
        Ok(LinkProxy {
            addr,
            upstream,
            mode,
            accepted,
            accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where traffic goes.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Drops every current connection; new connections are held (accepted, never answered)
    /// until [`LinkProxy::restore`].
    pub fn cut(&self) {
        self.mode.send_replace(ProxyMode::Cut);
    }

    /// Stops every byte in both directions while keeping connections open: a silent partition.
    pub fn freeze(&self) {
        self.mode.send_replace(ProxyMode::Frozen);
    }

    /// Lets traffic flow again: held connections reach the upstream, frozen bytes are delivered.
    pub fn restore(&self) {
        self.mode.send_replace(ProxyMode::Open);
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        *self.mode.borrow()
    }

    /// How many connections the proxy has accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Ends every pipe: they treat a closed mode channel like a cut.
        self.mode.send_replace(ProxyMode::Cut);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: watch::Sender<ProxyMode>,
    accepted: Arc<AtomicU64>,
) {
    loop {
        let client = match listener.accept().await {
            Ok((c, _)) => c,
            Err(e) => {
                tracing::warn!(error = %e, "link proxy: accept failed");
                continue;
            }
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(carry(client, upstream, mode.subscribe()));
    }
}

/// Carries one connection until either side closes it or the proxy cuts it.
async fn carry(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<ProxyMode>) {
    // A connection that arrives during a cut waits here: that is the "held" behaviour.
    if mode.wait_for(|m| *m != ProxyMode::Cut).await.is_err() {
        return;
    }
    let server = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%upstream, error = %e, "link proxy: upstream unreachable");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = tokio::spawn(pipe(cr, sw, mode.clone()));
    let down = tokio::spawn(pipe(sr, cw, mode));
    let _ = tokio::join!(up, down);
}

/// Waits until the mode lets bytes pass; false when the connection must end.
async fn flowing(mode: &mut watch::Receiver<ProxyMode>) -> bool {
    match mode.wait_for(|m| *m != ProxyMode::Frozen).await {
        Ok(m) => *m == ProxyMode::Open,
        Err(_) => false,
    }
}

async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<ProxyMode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !flowing(&mut mode).await {
            return;
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => n,
            },
            // Reading is cancel-safe: nothing was consumed, look at the new mode first.
            changed = mode.changed() => {
                if changed.is_err() { return }
                continue;
            }
        };
        // Bytes read just before a freeze are held until the restore, like the rest.
        if !flowing(&mut mode).await {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
