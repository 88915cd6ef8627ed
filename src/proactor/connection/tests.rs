//! The rule that makes slot reuse safe: a closed connection is finished
//! only once every operation it had in the kernel has completed. Checked
//! with a real ring and a real loopback connection.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::*;
use crate::proactor::ring::{Completion, Ring, RingSize};
use crate::reactor::deadlines::Clock;
use crate::reactor::owed::HeldBytes;
use crate::service::{Mode, Service};

fn ring() -> Ring {
    Ring::new(RingSize {
        submissions: 64,
        completions: 256,
        buffers: 16,
        buffer_size: 4096,
        incremental: false,
    })
    .expect("io_uring is available on this machine")
}

fn ctx() -> Ctx {
    let now = Instant::now();
    Ctx {
        service: Service::new(Mode::Echo, ""),
        reply: Vec::new(),
        stats: Stats::default(),
        tick: Clock::starting_at(now).tick(now),
        max_pending: 65_536,
        pool: BufferPool::default(),
        rearms: 0,
        recv_limits: true,
        held: HeldBytes::default(),
        tracing: false,
    }
}

/// A connected pair: (the server's end, the client's end).
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (server, client)
}

/// Waits for completions and feeds this connection's to it, until `done`.
fn settle(
    conn: &mut Connection,
    ctx: &mut Ctx,
    ring: &mut Ring,
    done: impl Fn(&Connection, &Ctx) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut batch: Vec<Completion> = Vec::new();
    while !done(conn, ctx) {
        assert!(Instant::now() < deadline, "never settled: {conn:?}");
        ring.submit_and_wait(Some(Duration::from_millis(50)))
            .expect("enter");
        ring.reap(&mut batch);
        for c in batch.drain(..) {
            let op = c.user_data.op().expect("one of ours");
            assert_eq!(c.user_data.generation(), conn.generation());
            conn.on_completion(7, op, c.outcome, c.more, ctx, ring)
                .expect("ring");
        }
    }
}

#[test]
fn a_connection_closed_with_its_recv_armed_is_finished_only_after_the_cancel_completes() {
    let (mut ring, mut ctx) = (ring(), ctx());
    let (server, mut client) = pair();
    let mut conn = Connection::new(server, 3, ctx.service.new_stream(), ctx.tick);
    conn.drive(7, &mut ctx, &mut ring).expect("arm");
    assert_eq!(conn.recv, Arm::Armed);
    // One message echoed: the recv stays armed (multishot).
    client.write_all(b"ping").expect("write");
    settle(&mut conn, &mut ctx, &mut ring, |c, ctx| {
        ctx.stats.bytes_out == 4 && c.owed() == 0
    });
    assert_eq!(conn.recv, Arm::Armed);
    // The idle timeout closes it: counted at once, but not finished while
    // the recv and the cancel are still in the kernel.
    conn.on_timer(7, &mut ctx);
    assert!(conn.state().is_closed());
    assert_eq!(ctx.stats.closed_idle, 1);
    conn.drive(7, &mut ctx, &mut ring).expect("cancel");
    assert!(
        !conn.is_finished(),
        "finished with a recv and a cancel in flight"
    );
    assert_eq!(ring.in_flight(), 2, "the recv and its cancel");
    settle(&mut conn, &mut ctx, &mut ring, |c, _| c.is_finished());
    assert_eq!(ring.in_flight(), 0);
}

/// An idle connection costs its slab slot and nothing else: no buffer, no
/// box, until its first reply.
#[test]
fn an_idle_connection_fits_its_budget() {
    let entry = std::mem::size_of::<Connection>();
    assert!(entry <= super::MAX_CONNECTION_SIZE, "{entry} bytes");
    let (server, _client) = pair();
    let conn = Connection::new(
        server,
        0,
        Service::new(Mode::Echo, "").new_stream(),
        ctx().tick,
    );
    assert_eq!(conn.owed(), 0);
    assert!(
        conn.queued.0.is_none(),
        "an idle connection holds a queue box"
    );
}
