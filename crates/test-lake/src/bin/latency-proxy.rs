//! A TCP proxy that adds latency, for benchmarks of remote lakes on one machine.
//!
//!     latency-proxy LISTEN_PORT TARGET_PORT RTT_MS
//!
//! Listens on 127.0.0.1:LISTEN_PORT and forwards each connection to 127.0.0.1:TARGET_PORT.
//! Every chunk of bytes, in either direction, is delivered RTT_MS / 2 after it arrived (in
//! order, with no bandwidth limit): a request and its answer take one round trip more than
//! they would directly, as from a server RTT_MS away. Prints "ready" once listening; runs
//! until killed.
//!
//! It replaces a Python proxy that, on a 2-core machine, took 1.3 s of CPU during a cold
//! export of M: time the export under test then waited for, which no real network costs.

use anyhow::{Context, Result, bail};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, target, rtt_ms] = args.as_slice() else {
        bail!("usage: latency-proxy LISTEN_PORT TARGET_PORT RTT_MS");
    };
    let listen: u16 = listen.parse().context("LISTEN_PORT")?;
    let target: u16 = target.parse().context("TARGET_PORT")?;
    let rtt_ms: f64 = rtt_ms.parse().context("RTT_MS")?;
    let delay = Duration::from_secs_f64(rtt_ms / 2000.0);
    let listener = TcpListener::bind(("127.0.0.1", listen)).await?;
    println!("ready");
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                return; // dropping the client closes it
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::join!(
                pipe(client_read, server_write, delay),
                pipe(server_read, client_write, delay)
            );
        });
    }
}

/// Copies `from` to `to`, each chunk delivered `delay` after it was read; closes `to`'s
/// sending side once `from` ends.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (chunks, mut due_chunks) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let deliver = async move {
        while let Some((due, chunk)) = due_chunks.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    let read = async move {
        let mut buffer = vec![0u8; 1 << 16];
        while let Ok(n @ 1..) = from.read(&mut buffer).await {
            if chunks
                .send((Instant::now() + delay, buffer[..n].to_vec()))
                .is_err()
            {
                return;
            }
        }
    };
    tokio::join!(read, deliver);
}
