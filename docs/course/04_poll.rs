//! Step 4: `poll(2)`, level-triggered: sleep until a socket is ready.
//!
//! **The idea.** Step 3's loop, but before each round the thread hands the
//! kernel the list of every socket and what it waits for (readable, or
//! writable while a client is owed bytes), and sleeps in `poll` until at
//! least one is ready. Then it serves only the ready ones. Level-triggered:
//! `poll` reports a socket for as long as it *is* ready, so serving one
//! read per wake-up is enough; what is left is reported again next time.
//!
//! **What it costs.** An idle server sleeps: no CPU. But every wake-up
//! passes the whole list to the kernel and back, and the kernel checks
//! every socket on it: O(n) work per wake-up for n connections, however few
//! are ready. That was the C10K problem. The course's table
//! (`docs/course/ladder.md`) shows it where few of many are ready: 100
//! active connections beside 10,000 idle get [35933](ladder.md "04_poll")
//! messages/s. With every connection active the same scan is shared by
//! many ready sockets, and poll keeps up: [135922](ladder.md "04_poll") at
//! 10,000 busy connections, a little below the epoll steps there
//! ([152097](ladder.md "05_epoll_level") for step 5). What costs it most
//! is not the connections but the idle ones among them.
//!
//! **What breaks next.** With thousands of mostly idle connections, almost
//! all of that scan is waste. Step 5 registers each socket once with epoll,
//! which hands back only the ready ones.
//!
//! Run: `cargo run --example 04_poll -- 127.0.0.1:0`

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

use rustix::event::{PollFd, PollFlags, poll};

/// One client: its socket, and the bytes owed that the kernel has not taken.
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
        // The whole list, every time: the listener first, then each client,
        // waiting to write while it is owed bytes and to read otherwise.
        let mut fds = Vec::with_capacity(clients.len() + 1);
        fds.push(PollFd::new(&listener, PollFlags::IN));
        for client in &clients {
            let wanted = if client.owed.is_empty() {
                PollFlags::IN
            } else {
                PollFlags::OUT
            };
            fds.push(PollFd::new(&client.stream, wanted));
        }
        // Sleep until something is ready (no timeout: nothing else to do).
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds.iter().map(|fd| !fd.revents().is_empty()).collect();
        drop(fds);
        // Serve the ready clients (a readiness with HUP or ERR is served too:
        // the read or write says what happened). Then accept.
        let mut index = 0;
        clients.retain_mut(|client| {
            index += 1;
            if !ready[index] {
                return true;
            }
            serve(client, &mut buf).unwrap_or_else(|e| {
                eprintln!("client failed: {e}");
                false
            })
        });
        if ready[0] {
            accept_all(&listener, &mut clients);
        }
    }
}

fn accept_all(listener: &TcpListener, clients: &mut Vec<Client>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => match stream.set_nonblocking(true) {
                Ok(()) => clients.push(Client {
                    stream,
                    owed: Vec::new(),
                }),
                Err(e) => eprintln!("accepted socket unusable: {e}"),
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => return eprintln!("accept failed: {e}"),
        }
    }
}

/// Step 3's `serve`: one write of what is owed, or one read and its echo.
/// Returns whether the client is still open.
fn serve(client: &mut Client, buf: &mut [u8]) -> io::Result<bool> {
    if !client.owed.is_empty() {
        match client.stream.write(&client.owed) {
            Ok(n) => drop(client.owed.drain(..n)),
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(e),
        }
        return Ok(true);
    }
    let n = match client.stream.read(buf) {
        Ok(0) => return Ok(false),
        Ok(n) => n,
        Err(e) if would_block(&e) => return Ok(true),
        Err(e) => return Err(e),
    };
    let written = match client.stream.write(&buf[..n]) {
        Ok(written) => written,
        Err(e) if would_block(&e) => 0,
        Err(e) => return Err(e),
    };
    client.owed.extend_from_slice(&buf[written..n]);
    Ok(true)
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
