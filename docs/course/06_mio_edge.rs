//! Step 6: mio and a slab, edge-triggered: the smallest correct reactor.
//!
//! **The idea.** mio wraps epoll (kqueue elsewhere) behind `Poll`, and
//! registers edge-triggered: an event says "this socket's readiness
//! changed", once. Each socket is registered once, at accept, for reading
//! and writing, and never touched again with `epoll_ctl`: with edge
//! triggering an unused writable interest costs no event and no syscall
//! (each readable event just says "writable" too). The price is a
//! rule: a handler must work until the kernel says `WouldBlock`, because no
//! second event comes for work left behind. The slab key is the token, so
//! an event finds its client with one index.
//!
//! **What it costs.** For most messages three syscalls, the `read`,
//! the `write` and the `read` that returns `WouldBlock`, plus a share of
//! `epoll_wait`: [2.820](ladder.md "06_mio_edge") per message in the
//! course's table (`docs/course/ladder.md`), where the project's reactor,
//! which stops at a short read on Linux, makes
//! [2.010](ladder.md "reactor-echo serve"). Then
//! [33](ladder.md "06_mio_edge") bytes of RSS per idle connection on our
//! side (1,000 idle), and the discipline of the rule above.
//!
//! **What breaks next.** Nothing, for well-behaved peers. The project's
//! reactor (`src/reactor.rs`) adds what real peers need, each in a file of
//! its own: a read budget so one peer cannot hold the loop, backpressure
//! with a bound (`--max-pending`), EOF told from reset, half-close and a
//! lingering close (`state.rs`), idle deadlines (`deadlines.rs`), running
//! out of descriptors (`listener.rs`), signals and a graceful shutdown
//! (`shutdown.rs`), and UDP on the same poll (`udp.rs`). Step 7 keeps the
//! one thread and the slab but asks the kernel something else: not which
//! sockets are ready, but to do the reads and writes and say when each is
//! done.
//!
//! Run: `cargo run --example 06_mio_edge -- 127.0.0.1:0`

use std::io::{self, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

/// The listener's token; clients' tokens are their slab keys.
const LISTENER: Token = Token(usize::MAX);

/// One client: its socket, and the bytes owed that the kernel has not taken.
struct Client {
    stream: TcpStream,
    owed: Vec<u8>,
}

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let addr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut listener = TcpListener::bind(addr)?;
    println!("listening tcp={} udp=off", listener.local_addr()?);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut clients: Slab<Client> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let mut closed = Vec::new();
        for event in events.iter() {
            if event.token() == LISTENER {
                accept_all(&listener, &poll, &mut clients)?;
                continue;
            }
            let key = event.token().0;
            let Some(client) = clients.get_mut(key) else {
                continue;
            };
            match serve(client, &mut buf) {
                Ok(true) => {}
                Ok(false) => closed.push(key),
                Err(e) => {
                    eprintln!("client {key} failed: {e}");
                    closed.push(key);
                }
            }
        }
        // Freed after the batch: a later event of this batch for the same
        // key must not reach a client accepted into the reused slot.
        for key in closed {
            clients.try_remove(key);
        }
    }
}

fn accept_all(listener: &TcpListener, poll: &Poll, clients: &mut Slab<Client>) -> io::Result<()> {
    loop {
        let mut stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => {
                // Out of descriptors, say. Edge-triggered: the connections
                // still waiting raise no new event, so accepting resumes only
                // when another one arrives (its arrival is a new edge on the
                // listener); with no newcomer they wait for ever. The
                // project's listener.rs comes back by itself instead.
                eprintln!("accept failed: {e}");
                return Ok(());
            }
        };
        let entry = clients.vacant_entry();
        let interest = Interest::READABLE | Interest::WRITABLE;
        poll.registry()
            .register(&mut stream, Token(entry.key()), interest)?;
        entry.insert(Client {
            stream,
            owed: Vec::new(),
        });
    }
}

/// Edge-triggered: flush what is owed, then read and echo until the kernel
/// says `WouldBlock` (or until owed bytes stop us: the writable event that
/// frees the buffer will bring us back). Returns whether the client is
/// still open.
fn serve(client: &mut Client, buf: &mut [u8]) -> io::Result<bool> {
    loop {
        while !client.owed.is_empty() {
            match client.stream.write(&client.owed) {
                Ok(n) => drop(client.owed.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let n = match client.stream.read(buf) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // Queue the reply; the loop's top writes it.
        client.owed.extend_from_slice(&buf[..n]);
    }
}
