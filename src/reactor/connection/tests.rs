//! The read paths of a connection, on a real loopback socket pair: every
//! path must carry epoll's EOF hint through to the verdict.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::time::{Duration, Instant};

use super::*;
use crate::service::{Mode, Service};

/// A connection (server side) and its peer (client side).
fn pair() -> (Connection, std::net::TcpStream) {
    pair_serving(&Service::new(Mode::Echo, ""))
}

/// The same, for a connection of `service`.
fn pair_serving(service: &Service) -> (Connection, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    accepted.set_nonblocking(true).unwrap();
    let clock = Clock::starting_at(Instant::now());
    let conn = Connection::new(
        TcpStream::from_std(accepted),
        service.new_stream(),
        clock.tick(Instant::now()),
    );
    (conn, peer)
}

/// An echo connection that cannot send much at once: its send buffer and
/// its peer's receive buffer are a few KiB each (set before connecting, so
/// that the window the peer advertises is small from the start).
fn pair_with_small_buffers() -> (Connection, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    peer.set_recv_buffer_size(4096).unwrap();
    peer.connect(&listener.local_addr().unwrap().into())
        .unwrap();
    let (accepted, _) = listener.accept().unwrap();
    socket2::SockRef::from(&accepted)
        .set_send_buffer_size(4096)
        .unwrap();
    accepted.set_nonblocking(true).unwrap();
    let clock = Clock::starting_at(Instant::now());
    let conn = Connection::new(
        TcpStream::from_std(accepted),
        Service::new(Mode::Echo, "").new_stream(),
        clock.tick(Instant::now()),
    );
    (conn, peer.into())
}

/// A scratch buffer much smaller than what the peer sends, so that the read
/// budget runs out before the socket is drained.
const SMALL_SCRATCH: usize = 16;

/// The reactor's shared context, with a small read buffer.
fn small_ctx() -> Ctx {
    let now = Instant::now();
    Ctx::new(
        Service::new(Mode::Echo, ""),
        SMALL_SCRATCH,
        1 << 20,
        Clock::starting_at(now).tick(now),
    )
}

#[test]
fn another_turn_after_the_budget_reads_through_to_a_hinted_eof() {
    let (mut conn, mut peer) = pair();
    // More than one budget of small reads, then the peer's FIN.
    let sent = vec![b'x'; SMALL_SCRATCH * READ_BUDGET + SMALL_SCRATCH / 2];
    peer.write_all(&sent).unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(50));

    let mut ctx = small_ctx();
    // The event said `read_closed`: the FIN is already queued behind the data.
    conn.hint_peer_fin();
    assert!(conn.on_readable(0, &mut ctx).read_again());
    assert_eq!(conn.state(), State::Open);
    // The reactor's next turn, with no new event: the rest is a short read,
    // and the hint makes the loop read on to the verdict instead of stopping.
    assert!(conn.on_readable(0, &mut ctx).closed());
    assert_eq!(conn.state(), State::Closed(CloseReason::Eof));
    assert_eq!(ctx.stats.bytes_in, sent.len() as u64);
    assert_eq!(ctx.stats.bytes_out, sent.len() as u64);
}

#[test]
fn without_a_hint_a_short_read_ends_the_turn_on_linux() {
    let (mut conn, mut peer) = pair();
    peer.write_all(b"abc").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut ctx = small_ctx();
    assert_eq!(conn.on_readable(0, &mut ctx), Turn::DONE);
    assert_eq!(conn.state(), State::Open);
    assert_eq!(ctx.stats.bytes_in, 3);
    // One recv: no second one to learn what the short read already said.
    if SHORT_READ_MEANS_DRAINED {
        assert_eq!((ctx.stats.reads, ctx.stats.reads_wouldblock), (1, 0));
    }
}

#[test]
fn every_recv_is_counted_and_those_that_find_nothing_apart() {
    let (mut conn, mut peer) = pair();
    let mut ctx = small_ctx();
    // A spurious event: one recv, which finds nothing.
    assert_eq!(conn.on_readable(0, &mut ctx), Turn::DONE);
    assert_eq!((ctx.stats.reads, ctx.stats.reads_wouldblock), (1, 1));
    // One budget of full reads, and one byte more.
    peer.write_all(&[b'x'; SMALL_SCRATCH * READ_BUDGET + 1])
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(conn.on_readable(0, &mut ctx).read_again());
    let budget = READ_BUDGET as u64;
    assert_eq!(
        (ctx.stats.reads, ctx.stats.reads_wouldblock),
        (1 + budget, 1)
    );
    // The byte left: a short read, which ends the turn on Linux; elsewhere
    // the loop reads on to `WouldBlock`.
    assert_eq!(conn.on_readable(0, &mut ctx), Turn::DONE);
    let (reads, empty) = if SHORT_READ_MEANS_DRAINED {
        (1, 0)
    } else {
        (2, 1)
    };
    assert_eq!(
        (ctx.stats.reads, ctx.stats.reads_wouldblock),
        (1 + budget + reads, 1 + empty)
    );
}

#[test]
fn greet_reads_on_to_a_hinted_fin_in_the_turn_of_its_reply() {
    let service = Service::new(Mode::Greet, "hi");
    let (mut conn, mut peer) = pair_serving(&service);
    // The peer's bytes and its FIN, both queued before the event.
    peer.write_all(b"hello").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let now = Instant::now();
    let mut ctx = Ctx::new(service, 1024, 1 << 20, Clock::starting_at(now).tick(now));
    conn.hint_peer_fin();
    // The greeting is the last reply; the FIN that follows it raises no
    // new event, so the same turn reads on to it and closes.
    assert!(conn.on_readable(0, &mut ctx).closed());
    assert_eq!(conn.state(), State::Closed(CloseReason::Eof));
    assert_eq!(ctx.stats.bytes_out, 2);
}

#[test]
fn after_our_fin_input_is_read_counted_and_dropped_until_the_peers_fin() {
    let (mut conn, mut peer) = pair();
    let mut ctx = small_ctx();
    // Shutdown with nothing owed: our FIN goes out at once.
    assert!(conn.begin_shutdown(0, &mut ctx).lingering());
    assert_eq!(conn.state(), State::FinWait);
    // A spurious event: one recv, which finds nothing.
    assert!(conn.on_readable(0, &mut ctx).lingering());
    assert_eq!((ctx.stats.reads, ctx.stats.reads_wouldblock), (1, 1));
    // Two and a half buffers: two full reads and a short one, which ends
    // the turn on Linux (elsewhere one more recv finds nothing).
    peer.write_all(&[b'x'; SMALL_SCRATCH * 5 / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(conn.on_readable(0, &mut ctx).lingering());
    assert_eq!(ctx.stats.bytes_in, (SMALL_SCRATCH * 5 / 2) as u64);
    let (reads, empty) = if SHORT_READ_MEANS_DRAINED {
        (3, 0)
    } else {
        (4, 1)
    };
    assert_eq!(
        (ctx.stats.reads, ctx.stats.reads_wouldblock),
        (1 + reads, 1 + empty)
    );
    assert_eq!(
        ctx.stats.bytes_out, 0,
        "input after our FIN is not answered"
    );
    // The peer's FIN ends it.
    peer.shutdown(Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    conn.hint_peer_fin();
    assert!(conn.on_readable(0, &mut ctx).closed());
    assert_eq!(conn.state(), State::Closed(CloseReason::Eof));
}

#[test]
fn every_send_is_counted_and_what_the_kernel_leaves_is_owed_then_flushed() {
    let (mut conn, mut peer) = pair_with_small_buffers();
    let now = Instant::now();
    let mut ctx = Ctx::new(
        Service::new(Mode::Echo, ""),
        64 * 1024,
        1 << 20,
        Clock::starting_at(now).tick(now),
    );
    // A small reply: one send, which takes it all.
    peer.write_all(b"abc").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(conn.on_readable(0, &mut ctx), Turn::DONE);
    assert_eq!((ctx.stats.writes, ctx.stats.bytes_out), (1, 3));
    let mut got = [0u8; 3];
    peer.read_exact(&mut got).unwrap();
    // A reply far larger than the buffers: the first send takes part of
    // it, and at least one more is tried before the rest is owed.
    let sent = vec![b'y'; 48 * 1024];
    peer.write_all(&sent).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    conn.on_readable(0, &mut ctx);
    let owed = conn.owed() as u64;
    assert!(owed > 0, "the buffers took a 48 KiB reply whole");
    assert_eq!(ctx.stats.bytes_out + owed, 3 + sent.len() as u64);
    assert!(ctx.stats.writes >= 3, "{} sends", ctx.stats.writes);
    // The peer reads; each writable turn flushes more, and counts its sends.
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let reads = ctx.stats.reads;
    let mut received = 0;
    let mut buf = [0u8; 4096];
    while received < sent.len() {
        received += peer.read(&mut buf).unwrap();
        let (writes, out) = (ctx.stats.writes, ctx.stats.bytes_out);
        conn.on_writable(0, &mut ctx);
        if out < ctx.stats.bytes_out {
            assert!(
                ctx.stats.writes > writes,
                "bytes went out with no send counted"
            );
        }
    }
    assert_eq!(conn.owed(), 0);
    assert_eq!(ctx.stats.bytes_out, 3 + sent.len() as u64);
    // The connection was reading all along: flushing resumed nothing, so
    // it read nothing (the event's own readable part reads, not the flush).
    assert_eq!(ctx.stats.reads, reads);
}

/// A context for an echo connection whose clock starts at `epoch`, with
/// `max_pending` as given.
fn ctx_at(epoch: Instant, max_pending: usize) -> (Ctx, Clock) {
    let clock = Clock::starting_at(epoch);
    let ctx = Ctx::new(
        Service::new(Mode::Echo, ""),
        64 * 1024,
        max_pending,
        clock.tick(epoch),
    );
    (ctx, clock)
}

#[test]
fn a_flush_refreshes_the_idle_clock_only_when_bytes_go_out() {
    let (mut conn, mut peer) = pair_with_small_buffers();
    let epoch = Instant::now();
    let (mut ctx, clock) = ctx_at(epoch, 1 << 20);
    let idle = Some(Duration::from_secs(1));
    peer.write_all(&[b'z'; 48 * 1024]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    conn.on_readable(0, &mut ctx);
    // Flush until the peer's window and our send buffer are full: then a
    // flush moves nothing.
    let mut before = usize::MAX;
    while conn.owed() != before {
        before = conn.owed();
        conn.on_writable(0, &mut ctx);
    }
    assert!(before > 0, "the buffers took the whole reply");
    // Ten seconds on, a writable turn that moves nothing: still idle since
    // the read.
    let later = epoch + Duration::from_secs(10);
    ctx.tick = clock.tick(later);
    conn.on_writable(0, &mut ctx);
    assert_eq!(
        conn.owed(),
        before,
        "a flush moved bytes the peer has no room for"
    );
    let deadline = conn.deadline(idle, &clock, later).unwrap();
    assert!(deadline < later, "refreshed by a flush that moved nothing");
    // Twenty seconds on, the peer reads, and a flush moves bytes: active now.
    let later = epoch + Duration::from_secs(20);
    ctx.tick = clock.tick(later);
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16 * 1024];
    while conn.owed() == before {
        let _ = peer.read(&mut buf).unwrap();
        conn.on_writable(0, &mut ctx);
    }
    let deadline = conn.deadline(idle, &clock, later).unwrap();
    assert!(
        deadline > later,
        "not refreshed by a flush that moved bytes"
    );
}

#[test]
fn a_flush_that_resumes_a_paused_connection_reads_what_waited() {
    let (mut conn, mut peer) = pair_with_small_buffers();
    let (mut ctx, _) = ctx_at(Instant::now(), 1024);
    let sent = vec![b'p'; 48 * 1024];
    peer.write_all(&sent).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    conn.on_readable(0, &mut ctx);
    assert_eq!(conn.state(), State::Paused);
    // Input that comes while paused waits in the socket: its event is
    // spent, none will come for it again.
    peer.write_all(b"later").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(conn.on_readable(0, &mut ctx), Turn::DONE);
    assert_eq!(ctx.stats.bytes_in, sent.len() as u64);
    // The peer reads; the flush that empties what is owed resumes, and
    // reads what waited at once.
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16 * 1024];
    while conn.state() == State::Paused {
        let _ = peer.read(&mut buf).unwrap();
        conn.on_writable(0, &mut ctx);
    }
    assert_eq!(conn.state(), State::Open);
    assert_eq!(ctx.stats.bytes_in, sent.len() as u64 + 5);
}

/// A slab slot costs no more than the connection in it: slab 0.4 stores
/// `enum Entry<T> { Vacant(usize), Occupied(T) }`, and the compiler keeps the
/// tag in a bit pattern `Connection` never uses (a niche), so the entry is
/// the connection's size (24 bytes in a release build), not 8 bytes more
/// for a tag of its own. This mirror of slab's private type checks that
/// layout.
#[test]
fn a_slab_entry_is_no_bigger_than_the_connection() {
    #[allow(dead_code)]
    enum SlabEntry<T> {
        Vacant(usize),
        Occupied(T),
    }
    assert_eq!(
        std::mem::size_of::<SlabEntry<Connection>>(),
        std::mem::size_of::<Connection>()
    );
}
