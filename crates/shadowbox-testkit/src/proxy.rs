//! A TCP proxy in front of a broker that can hold a client's bytes: what
//! the client sends while held is kept, not forwarded, and reaches the
//! broker only on [`TcpProxy::release`], even after the client is gone
//! (its connection to the broker stays open until then). That is how
//! bytes of an interrupted publish land late.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A proxy on a free loopback port to `127.0.0.1:{upstream}`, stopped
/// when dropped.
pub struct TcpProxy {
    port: u16,
    held: watch::Sender<bool>,
    held_bytes: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding every connection to `127.0.0.1:{upstream}`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local address").port();
        let (held, watch) = watch::channel(false);
        let held_bytes = Arc::new(AtomicUsize::new(0));
        let counter = held_bytes.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                tokio::spawn(forward(client, server, watch.clone(), counter.clone()));
            }
        });
        Self {
            port,
            held,
            held_bytes,
            task,
        }
    }

    /// `mqtt://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// From now on, keeps what clients send instead of forwarding it.
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    /// Bytes kept since [`TcpProxy::hold`] and not yet released.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes.load(Ordering::SeqCst)
    }

    /// Forwards everything kept, and from now on forwards at once.
    pub fn release(&self) {
        self.held.send_replace(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: client to server through the hold, server to client
/// as it comes (discarded once the client is gone).
async fn forward(
    client: TcpStream,
    server: TcpStream,
    mut held: watch::Receiver<bool>,
    held_bytes: Arc<AtomicUsize>,
) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut client_open = true;
        while let Ok(n) = from_server.read(&mut buf).await {
            if n == 0 {
                return;
            }
            if client_open && to_client.write_all(&buf[..n]).await.is_err() {
                client_open = false;
            }
        }
    });
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from_client.read(&mut buf) => read,
            changed = held.changed() => {
                let released = changed.is_ok() && !*held.borrow_and_update();
                if released && !kept.is_empty() {
                    let flushed = to_server.write_all(&kept).await;
                    held_bytes.fetch_sub(kept.len(), Ordering::SeqCst);
                    kept.clear();
                    if flushed.is_err() {
                        return;
                    }
                }
                continue;
            }
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if *held.borrow() {
            kept.extend_from_slice(&buf[..n]);
            held_bytes.fetch_add(n, Ordering::SeqCst);
            continue;
        }
        if to_server.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    // The client is gone: what it sent while held still goes, on release.
    if !kept.is_empty() {
        let _ = held.wait_for(|held| !*held).await;
        let _ = to_server.write_all(&kept).await;
        held_bytes.fetch_sub(kept.len(), Ordering::SeqCst);
    }
    let _ = to_server.shutdown().await;
}
