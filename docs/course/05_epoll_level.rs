//! Step 5: epoll, level-triggered: the kernel keeps the list.
//!
//! **The idea.** Each socket is registered once with an epoll instance
//! (`epoll_ctl(ADD)`), with a number of our choosing that comes back with
//! its events: here the client's key in a `Slab` (a vector whose freed
//! slots are reused). `epoll_wait` returns only the sockets that are ready,
//! so a wake-up costs O(ready), not O(connections). Still level-triggered,
//! as in step 4: a socket is reported while it stays ready. A client that
//! is owed bytes is switched from "readable" to "writable" interest
//! (`epoll_ctl(MOD)`) and back once flushed.
//!
//! **What it costs.** One `epoll_ctl` per client at accept, two more per
//! partial write, and the kernel's epoll item per socket. The scan is gone.
//!
//! **What breaks next.** Level-triggered epoll keeps waking the loop for a
//! socket it has not finished with, and the interest has to be switched
//! with a syscall around every partial write. Step 6 registers each socket
//! once, for both directions, edge-triggered: the kernel reports each
//! arrival once, and the loop must finish the work it was told about.
//!
//! Run: `cargo run --example 05_epoll_level -- 127.0.0.1:0`

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use slab::Slab;

/// The number the listener's events carry (clients carry their slab key).
const LISTENER: u64 = u64::MAX;

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
    let ep = epoll::create(CreateFlags::CLOEXEC)?;
    epoll::add(&ep, &listener, EventData::new_u64(LISTENER), EventFlags::IN)?;
    let mut clients: Slab<Client> = Slab::new();
    let mut events = Vec::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        events.clear();
        match epoll::wait(&ep, spare_capacity(&mut events), None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        for event in &events {
            let key = event.data.u64();
            if key == LISTENER {
                accept_all(&listener, &ep, &mut clients)?;
                continue;
            }
            let key = key as usize;
            // A key with no client. epoll reports each descriptor at most
            // once per wait, and this loop removes a client only while
            // handling its own event, so no later event of this batch names
            // a removed key: here this is only a guard. But the removal
            // below frees the slot at once, and the slab hands the most
            // recently freed slot to the next accept. Had a batch a second
            // event for a removed client (kqueue, which mio uses elsewhere,
            // reports reading and writing as two events; a loop may close a
            // client while handling another's), an accept earlier in the
            // same batch could have put a newcomer in that slot, and the
            // stale event would reach the newcomer, not this guard. Step 6
            // frees slots only after the batch.
            let Some(client) = clients.get_mut(key) else {
                continue;
            };
            let was_owed = !client.owed.is_empty();
            match serve(client, &mut buf) {
                Ok(true) => {}
                // Closing the socket removes it from the epoll set too, and
                // the slot is free at once: the next accept may reuse it.
                Ok(false) | Err(_) => drop(clients.remove(key)),
            }
            let Some(client) = clients.get(key) else {
                continue;
            };
            // Owed bytes: wait to write, and stop reading (backpressure).
            let is_owed = !client.owed.is_empty();
            if is_owed != was_owed {
                let wanted = if is_owed {
                    EventFlags::OUT
                } else {
                    EventFlags::IN
                };
                epoll::modify(&ep, &client.stream, EventData::new_u64(key as u64), wanted)?;
            }
        }
    }
}

fn accept_all(
    listener: &TcpListener,
    ep: &impl std::os::fd::AsFd,
    clients: &mut Slab<Client>,
) -> io::Result<()> {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => {
                // Out of descriptors, say. Level-triggered: the waiting
                // connections keep the listener ready, so epoll reports it
                // again at once, and the loop spins until a descriptor frees.
                eprintln!("accept failed: {e}");
                return Ok(());
            }
        };
        stream.set_nonblocking(true)?;
        let entry = clients.vacant_entry();
        epoll::add(
            ep,
            &stream,
            EventData::new_u64(entry.key() as u64),
            EventFlags::IN,
        )?;
        entry.insert(Client {
            stream,
            owed: Vec::new(),
        });
    }
}

/// Step 3's `serve`: one write of what is owed, or one read and its echo
/// (level-triggered: anything left is reported again). Returns whether the
/// client is still open.
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
