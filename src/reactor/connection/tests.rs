//! The read paths of a connection, on a real loopback socket pair: every
//! path must carry epoll's EOF hint through to the verdict.

use std::io::Write;
use std::net::{Shutdown, TcpListener};
use std::time::{Duration, Instant};

use super::*;
use crate::service::{Mode, Service};

/// A connection (server side) and its peer (client side).
fn pair() -> (Connection, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    accepted.set_nonblocking(true).unwrap();
    let service = Service::new(Mode::Echo, "");
    let conn = Connection::new(
        TcpStream::from_std(accepted),
        service.new_stream(),
        Instant::now(),
    );
    (conn, peer)
}

/// A scratch buffer much smaller than what the peer sends, so that the read
/// budget runs out before the socket is drained.
const SMALL_SCRATCH: usize = 16;

#[test]
fn another_turn_after_the_budget_reads_through_to_a_hinted_eof() {
    let (mut conn, mut peer) = pair();
    // More than one budget of small reads, then the peer's FIN.
    let sent = vec![b'x'; SMALL_SCRATCH * READ_BUDGET + SMALL_SCRATCH / 2];
    peer.write_all(&sent).unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(50));

    let service = Service::new(Mode::Echo, "");
    let mut scratch = [0u8; SMALL_SCRATCH];
    let mut reply = Vec::new();
    let mut stats = Stats::default();
    let mut ctx = Ctx {
        scratch: &mut scratch,
        reply: &mut reply,
        service: &service,
        stats: &mut stats,
        now: Instant::now(),
        max_pending: 1 << 20,
    };
    // The event said `read_closed`: the FIN is already queued behind the data.
    conn.hint_peer_fin();
    assert!(conn.on_readable(0, &mut ctx).read_again);
    assert_eq!(conn.state(), State::Open);
    // The reactor's next turn, with no new event: the rest is a short read,
    // and the hint makes the loop read on to the verdict instead of stopping.
    assert!(conn.on_readable(0, &mut ctx).closed);
    assert_eq!(conn.state(), State::Closed(CloseReason::Eof));
    assert_eq!(stats.bytes_in, sent.len() as u64);
    assert_eq!(stats.bytes_out, sent.len() as u64);
}

#[test]
fn without_a_hint_a_short_read_ends_the_turn_on_linux() {
    let (mut conn, mut peer) = pair();
    peer.write_all(b"abc").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let service = Service::new(Mode::Echo, "");
    let mut scratch = [0u8; SMALL_SCRATCH];
    let mut reply = Vec::new();
    let mut stats = Stats::default();
    let mut ctx = Ctx {
        scratch: &mut scratch,
        reply: &mut reply,
        service: &service,
        stats: &mut stats,
        now: Instant::now(),
        max_pending: 1 << 20,
    };
    assert_eq!(conn.on_readable(0, &mut ctx), Turn::DONE);
    assert_eq!(conn.state(), State::Open);
    assert_eq!(stats.bytes_in, 3);
}
