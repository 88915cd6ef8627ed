//! The load generator's UDP engine: N sockets, each with one datagram in
//! flight (stop and wait), on the same kind of single-threaded mio loop.
//!
//! UDP may lose a datagram (or its reply), so each socket waits at most
//! [`LOSS_TIMEOUT`] for a reply, counts the datagram as lost, and sends the
//! next. A reply that comes after its datagram was given up on is recognised
//! by its content (every datagram's bytes depend on its sequence number) and
//! ignored rather than counted as a mismatch.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::plan::{Outcome, Plan};
use crate::bench::measure::cpu_window::CpuWindow;
use crate::bench::measure::progress::Progress;
use crate::bench::payload::Pattern;
use crate::bench::processes::link;

/// How long a socket waits for a reply before counting the datagram lost.
pub const LOSS_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Sender {
    socket: UdpSocket,
    seed: u64,
    sequence: u64,
    sent_at: Instant,
}

/// Runs `plan` over UDP. Returns the outcome and the number of datagrams lost.
///
/// # Errors
/// If sockets cannot be opened or the poll fails.
pub fn run(plan: &Plan, mut progress: Progress) -> io::Result<(Outcome, u64)> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let local: SocketAddr = if plan.addr.is_ipv4() {
        ([127, 0, 0, 1], 0).into()
    } else {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    };
    let mut outcome = Outcome::new()?;
    let mut reply = vec![0u8; 65_536];
    // A datagram is at most 65,507 bytes: one slice of the pattern each.
    let pattern = Pattern::new(plan.expect, reply.len());
    let mut senders = Vec::with_capacity(plan.connections);
    let now = Instant::now();
    for i in 0..plan.connections {
        let mut socket = match UdpSocket::bind(local).and_then(|s| s.connect(plan.addr).map(|()| s))
        {
            Ok(socket) => socket,
            Err(_) => {
                outcome.failed += 1;
                continue;
            }
        };
        poll.registry()
            .register(&mut socket, Token(senders.len()), Interest::READABLE)?;
        outcome.established += 1;
        senders.push(Sender {
            socket,
            seed: i as u64 * 7,
            sequence: 0,
            sent_at: now,
        });
    }
    if plan.is_coordinated {
        link::ready_and_wait()?;
    }
    let now = Instant::now();
    for sender in &mut senders {
        sender.sent_at = now;
        if sender
            .socket
            .send(pattern.request(sender.seed, 0, plan.size))
            .is_err()
        {
            outcome.errors += 1;
        }
    }
    let start = Instant::now() + plan.warmup;
    let end = start + plan.duration;
    let mut lost = 0;
    let mut server_cpu = plan.server_pid.map(CpuWindow::new);
    let mut own_cpu = CpuWindow::own();
    let mut has_window_started = false;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= start && !has_window_started {
            has_window_started = true;
            if let Some(cpu) = server_cpu.as_mut() {
                cpu.window_starts();
            }
            own_cpu.window_starts();
        }
        progress.tick(now, senders.len(), plan.connections);
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        let now = Instant::now();
        let in_window = now >= start && now < end;
        for event in events.iter() {
            let Some(sender) = senders.get_mut(event.token().0) else {
                continue;
            };
            loop {
                let n = match sender.socket.recv(&mut reply) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        outcome.errors += 1;
                        break;
                    }
                };
                let offset = sender.sequence * plan.size as u64;
                let wrong = pattern.count_mismatches(sender.seed, offset, &reply[..n])
                    + (n.abs_diff(plan.size)) as u64;
                if wrong > 0 && is_stale(sender, &reply[..n], plan, &pattern) {
                    continue;
                }
                outcome.mismatches += wrong;
                progress.count_message();
                if in_window {
                    outcome.messages += 1;
                    outcome.bytes += n as u64;
                    let micros = now.saturating_duration_since(sender.sent_at).as_micros() as u64;
                    let _ = outcome.latency.record(micros.max(1));
                }
                send_next(sender, &pattern, plan.size, now, &mut outcome);
            }
        }
        for sender in &mut senders {
            if now.saturating_duration_since(sender.sent_at) > LOSS_TIMEOUT {
                lost += 1;
                send_next(sender, &pattern, plan.size, now, &mut outcome);
            }
        }
    }
    outcome.measured = plan.duration;
    outcome.server_cpu = server_cpu.as_mut().and_then(CpuWindow::window_ends);
    outcome.bench_cpu = own_cpu.window_ends();
    Ok((outcome, lost))
}

fn send_next(
    sender: &mut Sender,
    pattern: &Pattern,
    size: usize,
    now: Instant,
    outcome: &mut Outcome,
) {
    sender.sequence += 1;
    let request = pattern.request(sender.seed, sender.sequence * size as u64, size);
    sender.sent_at = now;
    if sender.socket.send(request).is_err() {
        outcome.errors += 1;
    }
}

/// Whether `reply` answers one of the last few datagrams given up on.
fn is_stale(sender: &Sender, reply: &[u8], plan: &Plan, pattern: &Pattern) -> bool {
    (1..=4).any(|back| {
        sender.sequence >= back
            && reply.len() == plan.size
            && pattern.count_mismatches(
                sender.seed,
                (sender.sequence - back) * plan.size as u64,
                reply,
            ) == 0
    })
}
