//! A TCP proxy that a test can cut, to put a real fault between Gatehouse and a service
//! (PostgreSQL, Redis, SMTP) without stopping the shared service.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct FaultProxy {
    address: SocketAddr,
    cut: Arc<watch::Sender<bool>>,
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (cut, _) = watch::channel(false);
        let cut = Arc::new(cut);
        let accept_cut = cut.clone();
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
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = connection_stop.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Ok(FaultProxy { address, cut })
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
}
