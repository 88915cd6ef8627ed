//! The provided buffers as the kernel really fills them, on a loopback
//! connection: consumed incrementally, successive recvs share one buffer
//! at successive offsets and the buffer goes back to the ring only with
//! the completion that ends it; consumed whole, each recv takes a buffer
//! of its own. (The proactor's state machine has its own tests, in
//! `connection/tests.rs`, on whole buffers.)

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::provided::has_recv_byte_limit;
use super::{Completion, Outcome, ProvidedBuf, Ring, RingSize};
use crate::proactor::user_data::{Op, UserData};

/// A ring with `buffers` provided buffers of 4 KiB.
fn ring(buffers: u16, incremental: bool) -> Ring {
    Ring::new(RingSize {
        submissions: 8,
        completions: 64,
        buffers,
        buffer_size: 4096,
        incremental,
    })
    .expect("io_uring is available on this machine")
}

/// Whether this kernel is older than 6.16, where the ring keeps whole
/// buffers (said on stderr): the incremental tests skip there.
fn skipped_before_the_byte_limit() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    if has_recv_byte_limit(&release) {
        return false;
    }
    eprintln!("skipped: kernel {release:?} is older than 6.16, the ring keeps whole buffers");
    true
}

/// Both ends of a loopback connection: (the peer, the served end).
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
    let (served, _) = listener.accept().expect("accept");
    (peer, served)
}

/// Writes `bytes` from `peer` and waits (2 s at most) for the recv's
/// completion: the token and the bytes it stands for.
fn send_and_receive(ring: &mut Ring, peer: &mut TcpStream, bytes: &[u8]) -> (ProvidedBuf, Vec<u8>) {
    peer.write_all(bytes).expect("write");
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut batch: Vec<Completion> = Vec::new();
    while Instant::now() < deadline {
        ring.submit_and_wait(Some(Duration::from_millis(100)))
            .expect("enter");
        ring.reap(&mut batch);
        if let Some(completion) = batch.pop() {
            assert!(batch.is_empty(), "one write, several completions");
            let Outcome::Received(buf) = completion.outcome else {
                panic!("not a recv: {completion:?}");
            };
            let got = ring.bytes_mut(&buf).to_vec();
            return (buf, got);
        }
    }
    panic!("no completion for {} bytes", bytes.len());
}

#[test]
fn consumed_incrementally_one_buffer_takes_recv_after_recv_and_returns_when_it_is_full() {
    if skipped_before_the_byte_limit() {
        return;
    }
    let mut ring = ring(4, true);
    assert!(ring.incremental(), "a 6.16 kernel consumes incrementally");
    let (mut peer, served) = pair();
    ring.recv_multishot(served.as_raw_fd(), UserData::new(Op::Recv, 0, 0), None)
        .expect("arm");

    let (first, bytes) = send_and_receive(&mut ring, &mut peer, b"hello");
    assert_eq!(bytes, b"hello");
    assert_eq!((first.offset, first.kept), (0, true));
    let (second, bytes) = send_and_receive(&mut ring, &mut peer, b"world!");
    assert_eq!(bytes, b"world!");
    assert_eq!(
        (second.id, second.offset, second.kept),
        (first.id, 5, true),
        "the second recv continues the first one's buffer"
    );
    // A buffer the kernel still fills must not go back to the ring: it
    // would be in it twice.
    let (id, tail) = (first.id, ring.provided.tail());
    ring.recycle(first);
    ring.recycle(second);
    assert_eq!(ring.provided.tail(), tail, "a kept buffer was given back");

    // The rest of the buffer, exactly: the completion that fills it ends
    // it, and only that one gives it back.
    let rest = vec![b'x'; 4096 - 11];
    let (last, bytes) = send_and_receive(&mut ring, &mut peer, &rest);
    assert_eq!(bytes, rest);
    assert_eq!((last.id, last.offset, last.kept), (id, 11, false));
    ring.recycle(last);
    assert_eq!(ring.provided.tail(), tail.wrapping_add(1));

    let (next, bytes) = send_and_receive(&mut ring, &mut peer, b"again");
    assert_eq!(bytes, b"again");
    assert_eq!(next.offset, 0, "a fresh buffer starts at 0");
}

#[test]
fn consumed_whole_each_recv_takes_a_buffer_of_its_own() {
    let mut ring = ring(4, false);
    assert!(!ring.incremental());
    let (mut peer, served) = pair();
    ring.recv_multishot(served.as_raw_fd(), UserData::new(Op::Recv, 0, 0), None)
        .expect("arm");
    let (first, bytes) = send_and_receive(&mut ring, &mut peer, b"hello");
    assert_eq!(bytes, b"hello");
    let (second, bytes) = send_and_receive(&mut ring, &mut peer, b"world!");
    assert_eq!(bytes, b"world!");
    assert_ne!(first.id, second.id);
    assert_eq!(
        (first.offset, first.kept, second.offset, second.kept),
        (0, false, 0, false)
    );
    let tail = ring.provided.tail();
    ring.recycle(first);
    ring.recycle(second);
    assert_eq!(ring.provided.tail(), tail.wrapping_add(2));
}

#[test]
fn incremental_buffers_wait_for_the_kernel_that_has_the_recv_byte_limit() {
    for (release, has) in [
        ("6.18.44-fc-v1300", true),
        ("6.16.0", true),
        ("7.0.1-arch1", true),
        ("6.15.9-generic", false),
        ("6.12.0-rc1", false),
        ("5.15.0-91-generic", false),
        ("", false),
        ("not a release", false),
    ] {
        assert_eq!(has_recv_byte_limit(release), has, "{release}");
    }
}

#[test]
fn a_buffer_goes_back_only_when_the_kernel_ended_it_and_its_last_token_came_back() {
    if skipped_before_the_byte_limit() {
        return;
    }
    let mut ring = ring(4, true);
    let (mut peer, served) = pair();
    ring.recv_multishot(served.as_raw_fd(), UserData::new(Op::Recv, 0, 0), None)
        .expect("arm");
    let (first, _) = send_and_receive(&mut ring, &mut peer, b"hello");
    let (last, _) = send_and_receive(&mut ring, &mut peer, &[b'x'; 4096 - 5]);
    assert_eq!((first.id, first.kept, last.kept), (last.id, true, false));
    // The completion that ended the buffer comes back first: the buffer
    // must wait for the earlier token, whose bytes would otherwise be
    // written again under it.
    let tail = ring.provided.tail();
    ring.recycle(last);
    assert_eq!(ring.provided.tail(), tail, "given back under a live token");
    ring.recycle(first);
    assert_eq!(ring.provided.tail(), tail.wrapping_add(1));
}
