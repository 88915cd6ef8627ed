//! Step 3: one thread, non-blocking sockets, and a loop that tries them all.
//!
//! **The idea.** Every socket is switched to non-blocking: a call that
//! would wait returns `WouldBlock` (`EAGAIN`) at once instead. One thread
//! can then hold any number of clients: it goes round them all, forever,
//! trying each one (accept, then for each client: write what it is owed,
//! or read and echo). Each client needs a little state of its own now, the
//! bytes the kernel has not taken yet (a partial write), because the
//! thread cannot wait inside `write` any more.
//!
//! **What it costs.** Correct, and no thread per client, but the loop never
//! sleeps: it burns a whole core even when every client is idle, and each
//! round makes a syscall per client whether it has anything or not. With
//! 1,000 connections open and silent it uses
//! [99.5%](ladder.md "03_nonblocking_busy") of a CPU (the course's table,
//! `docs/course/ladder.md`).
//!
//! **What breaks next.** The loop needs to be told *which* sockets are
//! ready, and to sleep until one is. Step 4 asks the kernel with `poll(2)`.
//!
//! Run: `cargo run --example 03_nonblocking_busy -- 127.0.0.1:0`

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

/// One client: its socket, and the bytes it is owed that the kernel has
/// not taken yet.
struct Client {
    stream: TcpStream,
    owed: Vec<u8>,
}

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let listener = TcpListener::bind(&addr)?;
    listener.set_nonblocking(true)?;
    println!("listening tcp={} udp=off", listener.local_addr()?);
    let mut clients: Vec<Client> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Accept everyone waiting; WouldBlock means nobody is.
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(true)?;
                    clients.push(Client {
                        stream,
                        owed: Vec::new(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    break;
                }
            }
        }
        // Try every client; keep the ones still open.
        clients.retain_mut(|client| match serve(client, &mut buf) {
            Ok(open) => open,
            Err(e) => {
                eprintln!("client failed: {e}");
                false
            }
        });
    }
}

/// One try at one client. Returns whether it is still open.
fn serve(client: &mut Client, buf: &mut [u8]) -> io::Result<bool> {
    if !client.owed.is_empty() {
        // Owed bytes first; read nothing more until they are gone, so a
        // client that never reads cannot make us hold ever more of its bytes.
        match client.stream.write(&client.owed) {
            Ok(n) => drop(client.owed.drain(..n)),
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(e),
        }
        return Ok(true);
    }
    let n = match client.stream.read(buf) {
        Ok(0) => return Ok(false), // the client's FIN; nothing is owed
        Ok(n) => n,
        Err(e) if would_block(&e) => return Ok(true),
        Err(e) => return Err(e),
    };
    let written = match client.stream.write(&buf[..n]) {
        Ok(written) => written,
        Err(e) if would_block(&e) => 0,
        Err(e) => return Err(e),
    };
    // What the kernel did not take is kept for the next round.
    client.owed.extend_from_slice(&buf[written..n]);
    Ok(true)
}

/// "Not now": the call would have blocked (or a signal interrupted it).
fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
