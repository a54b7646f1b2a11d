//! A TCP relay in front of a node that can go silent: it stops carrying bytes either way but
//! keeps every socket open, like a link that died without a FIN or a reset (a cable pulled, a
//! radio out of range).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::TestNode;

pub struct Relay {
    /// Dial this to reach the node through the relay.
    pub addr: libp2p::Multiaddr,
    silent: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// A relay on a loopback port of its own to `node`'s TCP listener.
    pub async fn to(node: &TestNode) -> Self {
        let target = tcp_addr(&node.addr);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (silent, quiet) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut pumps = tokio::task::JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                pumps.spawn(pump(in_read, out_write, quiet.clone()));
                pumps.spawn(pump(out_read, in_write, quiet.clone()));
            }
        });
        let addr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", node.peer_id)
            .parse()
            .unwrap();
        Self { addr, silent, task }
    }

    /// From now on nothing passes either way, and no socket is closed.
    pub fn go_silent(&self) {
        self.silent.send_replace(true);
    }
}

/// Carries bytes from `from` to `to` until either ends, or until the relay goes silent: then
/// it holds both halves open forever (until the relay is dropped).
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut silent: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            () = until_silent(&mut silent) => {
                let _held = (from, to);
                std::future::pending::<()>().await;
                return;
            }
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            },
        }
    }
}

async fn until_silent(silent: &mut watch::Receiver<bool>) {
    let _ = silent.wait_for(|s| *s).await;
}

fn tcp_addr(addr: &libp2p::Multiaddr) -> SocketAddr {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    SocketAddr::new(ip.expect("an IPv4 address"), port.expect("a TCP port"))
}
