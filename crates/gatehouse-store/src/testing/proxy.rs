//! A TCP proxy that a test can cut or stall, to put a real fault between Gatehouse and a
//! service (PostgreSQL, Redis, SMTP) without stopping the shared service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct FaultProxy {
    address: SocketAddr,
    cut: Arc<watch::Sender<bool>>,
    stalled: Arc<watch::Sender<bool>>,
    /// Answers still let through after `stall_after`, before the stall begins.
    passing: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (cut, _) = watch::channel(false);
        let cut = Arc::new(cut);
        let accept_cut = cut.clone();
        let (stalled, _) = watch::channel(false);
        let stalled = Arc::new(stalled);
        let accept_stalled = stalled.clone();
        let passing = Arc::new(AtomicUsize::new(0));
        let accept_passing = passing.clone();
        tokio::spawn(async move {
            // Lives as long as the test's runtime.
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                // While cut, a connection is closed as soon as it is accepted.
                if *accept_cut.borrow() {
                    drop(client);
                    continue;
                }
                let mut connection_stop = accept_cut.subscribe();
                let answers_held = accept_stalled.subscribe();
                let passing = accept_passing.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else { return };
                    let (mut client_read, mut client_write) = client.split();
                    let (mut server_read, mut server_write) = server.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut client_read, &mut server_write) => {}
                        _ = answers(&mut server_read, &mut client_write, answers_held, passing) => {}
                        _ = connection_stop.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Ok(FaultProxy { address, cut, stalled, passing })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Drops every open connection and closes new ones at once, like a dead network path.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Lets connections through again (the path is back).
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }

    /// Holds the service's answers (requests still reach it): a slow path, where a request's
    /// statement has run but its caller has not heard so yet.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Stalls after `answers` more answers (reads from the service, on any connection) have
    /// gone through: a pooled connection's health check passes, the statement after it hangs.
    pub fn stall_after(&self, answers: usize) {
        self.passing.store(answers, Ordering::SeqCst);
        self.stalled.send_replace(true);
    }

    /// Delivers the held answers and lets the next ones through.
    pub fn resume(&self) {
        self.passing.store(0, Ordering::SeqCst);
        self.stalled.send_replace(false);
    }
}

/// Copies the service's answers to the client, none while `held` says so (but for the
/// `passing` ones still let through).
async fn answers(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    mut held: watch::Receiver<bool>,
    passing: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        let let_through = *held.borrow()
            && passing
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if !let_through && held.wait_for(|held| !*held).await.is_err() {
            return Ok(());
        }
        to.write_all(&buffer[..read]).await?;
    }
}
