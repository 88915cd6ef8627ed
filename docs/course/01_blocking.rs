//! Step 1: the blocking server, one client at a time.
//!
//! **The idea.** The tutorials' TCP server: `accept` a client, then the two
//! loops, the outer one over clients and the inner one over that client's
//! bytes (`read`, then `write_all` what was read), until the client sends
//! its FIN (`read` returns 0) or fails. Every call blocks: the thread
//! sleeps inside `accept`, `read` or `write` until the kernel has something
//! for it.
//!
//! Of the four Python tutorials the project grows from (kept with the
//! project's shared material, `../shared/seeds/`, not in this repository),
//! two have these two loops: the third (`002_...`) echoes what it reads
//! with `sendall`, the fourth (`003_...`) sends it back uppercased; both
//! leave the inner loop when `recv` returns empty data (the client's FIN),
//! and the fourth also on an error (a reset). The first two answer one
//! `recv` per client with a fixed greeting and close. This step keeps the
//! two loops and the blocking calls, and changes three things: the buffer is
//! 64 KiB instead of 1,024 bytes, the bytes are echoed as bytes (the
//! tutorials decode them as UTF-8, which fails on a character split between
//! two reads), and the reply goes out with `write_all` (the fourth
//! tutorial's `send` may take only part of it).
//!
//! **What it costs.** Nothing beyond the client's socket: one thread, no
//! bookkeeping. Two syscalls per echoed message
//! ([2.000](ladder.md "01_blocking") in the course's table), and the thread
//! sleeps in between, so an idle server uses no CPU.
//!
//! **What breaks next.** A second client is accepted by the kernel (it
//! waits in the listen backlog, its bytes in its socket's buffer) but is
//! not served until the first one leaves. One slow or idle client stops
//! everyone. Step 2 gives each client a thread of its own.
//!
//! Run: `cargo run --example 01_blocking -- 127.0.0.1:0`

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let listener = TcpListener::bind(&addr)?;
    println!("listening tcp={} udp=off", listener.local_addr()?);
    // The outer loop: one client after another.
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            // A client that reset while waiting in the backlog: not fatal.
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        // The inner loop. A failing client ends its own conversation only.
        match converse(stream) {
            Ok(bytes) => eprintln!("{peer}: closed after {bytes} bytes"),
            Err(e) => eprintln!("{peer}: {e}"),
        }
    }
}

/// Echoes until the client's FIN; returns how many bytes went both ways.
fn converse(mut stream: TcpStream) -> io::Result<u64> {
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0;
    loop {
        // Blocks until bytes arrive, the peer's FIN (0), or an error.
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // Blocks until the kernel has taken every byte: a client that never
        // reads stops the whole server here, once its buffers are full.
        stream.write_all(&buf[..n])?;
        total += n as u64;
    }
    // Dropping `stream` closes it: our FIN goes after the last reply.
}
