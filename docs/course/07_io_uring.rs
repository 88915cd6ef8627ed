//! Step 7: io_uring, completion-based: the smallest correct proactor.
//!
//! **The idea.** Every step so far asked the kernel *which* sockets were
//! ready and then made the calls itself. Here the program hands the kernel
//! the operations, "accept on this listener", "receive on this socket",
//! "send these bytes", and is told when each is *done*. Operations go into
//! a submission ring, results come back on a completion ring, and one
//! `io_uring_enter` both submits a turn's operations and collects its
//! completions. A multishot accept and a multishot recv stay armed and
//! complete again and again; the recv takes a buffer from a *provided
//! buffer ring* only when bytes arrive, so an idle client holds none. The
//! price is ownership: a buffer lent to the kernel belongs to it until its
//! completion arrives. This step uses the project's own ring
//! (`src/proactor/ring.rs`), which keeps that rule behind a safe interface
//! (the one place the crate needs `unsafe`): a send takes its `Vec` by
//! value and hands it back with the completion.
//!
//! **What it costs.** Far fewer trips into the kernel (one `io_uring_enter`
//! per turn, for every client at once, where epoll makes two syscalls per
//! message), not less work in it: the TCP work per message is the same.
//! The course's table (`docs/course/ladder.md`) shows what that leaves:
//! [0.026](ladder.md "07_io_uring") syscalls per message, where step 5
//! makes [2.010](ladder.md "05_epoll_level"), and messages/s in the same
//! family as the epoll servers' ([175596](ladder.md "07_io_uring") at 100
//! connections, the reactor [179520](ladder.md "reactor-echo serve")).
//! And a client may be freed only when nothing of it is in the kernel:
//! here, once its recv has ended and no send is in flight.
//!
//! **What breaks next.** A peer that sends and never reads: this step
//! queues replies without bound. The project's proactor (`src/proactor/`)
//! bounds them (a byte limit on each multishot recv), and adds everything
//! the reactor has: half-close with the FIN sent, idle deadlines, running
//! out of descriptors, signals and a grace period, UDP.
//!
//! Run: `cargo run --example 07_io_uring -- 127.0.0.1:0`

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

use reactor_echo::proactor::ring::{Completion, Outcome, Ring, RingSize};
use reactor_echo::proactor::user_data::{Op, UserData};
use slab::Slab;

/// One client: its socket, the bytes received and not yet lent to a send,
/// what it has in the kernel, and whether the peer has finished sending.
struct Client {
    stream: TcpStream,
    queued: Vec<u8>,
    sending: bool,
    receiving: bool,
    peer_done: bool,
}

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let listener = TcpListener::bind(addr)?;
    println!("listening tcp={} udp=off", listener.local_addr()?);
    let size = RingSize {
        submissions: 1024,
        completions: 16_384,
        buffers: 1024,
        buffer_size: 4096,
        // Whole buffers: one per recv completion. (The proactor asks the
        // kernel to consume 64 KiB buffers incrementally instead, which
        // pays in bulk transfers: docs/proactor.md.)
        incremental: false,
    };
    let mut ring = Ring::new(size)?;
    let accept = UserData::new(Op::Accept, 0, 0);
    ring.accept_multishot(listener.as_raw_fd(), accept)?;
    let mut clients: Slab<Client> = Slab::new();
    let mut batch: Vec<Completion> = Vec::new();
    loop {
        // One trip into the kernel: submit the last turn's operations, wait
        // for at least one completion.
        ring.submit_and_wait(None)?;
        ring.reap(&mut batch);
        for done in batch.drain(..) {
            let key = done.user_data.slot();
            match (done.user_data.op(), done.outcome) {
                (Some(Op::Accept), outcome) => {
                    if let Outcome::Accepted(fd) = outcome {
                        let stream = TcpStream::from(fd);
                        let fd = stream.as_raw_fd();
                        let key = clients.insert(Client {
                            stream,
                            queued: Vec::new(),
                            sending: false,
                            receiving: true,
                            peer_done: false,
                        });
                        ring.recv_multishot(fd, token(Op::Recv, key), None)?;
                    }
                    if !done.more {
                        ring.accept_multishot(listener.as_raw_fd(), accept)?;
                    }
                    continue;
                }
                (Some(Op::Recv), outcome) => {
                    let Some(client) = clients.get_mut(key) else {
                        continue;
                    };
                    client.receiving = done.more;
                    match outcome {
                        // Bytes, in a buffer the kernel picked from the
                        // provided ring: copy them out, give it back.
                        Outcome::Received(buf) if !buf.is_empty() => {
                            client.queued.extend_from_slice(ring.bytes_mut(&buf));
                            ring.recycle(buf);
                        }
                        Outcome::Received(buf) => {
                            ring.recycle(buf);
                            client.peer_done = true;
                        }
                        // The provided ring ran dry: not an error; the recv
                        // has ended and is armed again below.
                        Outcome::Failed(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                        // End of stream, or a reset: the peer sends no more.
                        _ => client.peer_done = true,
                    }
                }
                (Some(Op::Send), Outcome::Sent { result, mut buf }) => {
                    let Some(client) = clients.get_mut(key) else {
                        continue;
                    };
                    client.sending = false;
                    match result {
                        // A short send: the rest goes first, before anything
                        // queued behind it.
                        Ok(n) if n < buf.len() => {
                            buf.drain(..n);
                            buf.extend_from_slice(&client.queued);
                            client.queued = buf;
                        }
                        Ok(_) => {}
                        // The peer is gone: nothing more can be delivered.
                        Err(_) => {
                            client.peer_done = true;
                            client.queued.clear();
                        }
                    }
                }
                _ => continue,
            }
            // What the client needs next, now that this operation is done.
            let Some(client) = clients.get_mut(key) else {
                continue;
            };
            let fd = client.stream.as_raw_fd();
            if !client.sending && !client.queued.is_empty() {
                // One send in flight at a time keeps the bytes in order; the
                // buffer is lent to the kernel until its completion.
                let buf = std::mem::take(&mut client.queued);
                ring.send(fd, token(Op::Send, key), buf, 0)?;
                client.sending = true;
            }
            if !client.peer_done && !client.receiving {
                ring.recv_multishot(fd, token(Op::Recv, key), None)?;
                client.receiving = true;
            }
            // Freed only when nothing of it is left in the kernel: a
            // completion still to come must not find the slot reused.
            if client.peer_done && !client.receiving && !client.sending {
                clients.remove(key);
            }
        }
    }
}

/// The token of an operation on client `key` (its slab key).
fn token(op: Op, key: usize) -> UserData {
    UserData::new(op, key as u32, 0)
}
