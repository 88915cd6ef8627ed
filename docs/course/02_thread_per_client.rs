//! Step 2: a thread per client.
//!
//! **The idea.** The same conversation as step 1, word for word, but each
//! accepted client gets its own thread, so a slow client blocks only its
//! own thread and the accept loop goes straight back to `accept`. The
//! kernel's scheduler now does the multiplexing: whichever thread's socket
//! has bytes is woken.
//!
//! **What it costs.** A thread per connection: its stack (2 MiB reserved
//! here, of which the pages it touches stay resident), a kernel task, and
//! a context switch into the thread for every message (and out again when
//! it blocks). Idle connections cost no CPU, but each holds its thread and
//! its pages: [19407](ladder.md "02_thread_per_client") bytes of RSS per
//! idle connection in the course's table (`docs/course/ladder.md`, with
//! 1,000 idle), where the reactor needs [29](ladder.md "reactor-echo serve").
//!
//! **What breaks next.** Thousands of connections mean thousands of
//! threads: memory grows with them, the scheduler switches between them on
//! every message, and spawning a thread per accept is slower than a connect
//! storm. Step 3 goes the other way: one thread, and sockets that never
//! block.
//!
//! Run: `cargo run --example 02_thread_per_client -- 127.0.0.1:0`

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

/// Stack reserved per thread: the default, written out because it is the
/// main cost of this step.
const STACK: usize = 2 * 1024 * 1024;

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let listener = TcpListener::bind(&addr)?;
    println!("listening tcp={} udp=off", listener.local_addr()?);
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        // The only change from step 1: the conversation runs on a thread.
        let spawned =
            thread::Builder::new()
                .stack_size(STACK)
                .spawn(move || match converse(stream) {
                    Ok(bytes) => eprintln!("{peer}: closed after {bytes} bytes"),
                    Err(e) => eprintln!("{peer}: {e}"),
                });
        // Out of memory or threads: this client is dropped (closed), and
        // the server goes on with the others.
        if let Err(e) = spawned {
            eprintln!("{peer}: no thread for it: {e}");
        }
    }
}

/// Step 1's inner loop, unchanged.
fn converse(mut stream: TcpStream) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buf[..n])?;
        total += n as u64;
    }
}
