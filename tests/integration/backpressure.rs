//! A peer that sends without reading cannot grow the server's memory, and
//! does not slow anyone else down; once it reads, it gets every byte.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;

const FLOOD: usize = 64 << 20;

server_test! {
    /// 64 MiB sent, nothing read: the server's peak RSS stays under 32 MiB, a
    /// second client is answered within 200 ms, and all 64 MiB come back
    /// byte-exact once the flooder reads.
    fn flooder_is_paused_others_served_and_nothing_lost(kind) for concurrent {
        let server = Server::start(kind, &[]);
        let flooder = server.connect();
        let payload = Arc::new(pattern(FLOOD, 42));
        let sent = Arc::new(AtomicUsize::new(0));
        let writer = {
            let mut stream = flooder.try_clone().unwrap();
            let payload = Arc::clone(&payload);
            let sent = Arc::clone(&sent);
            thread::spawn(move || {
                for chunk in payload.chunks(64 << 10) {
                    stream.write_all(chunk).unwrap();
                    sent.fetch_add(chunk.len(), Ordering::Relaxed);
                }
            })
        };

        // Wait until the flooder stalls: every buffer between us is full and the
        // server has stopped reading.
        let mut last = usize::MAX;
        assert!(eventually(PATIENCE, || {
            let now = sent.load(Ordering::Relaxed);
            let stalled = now == last && now > 0;
            last = now;
            thread::sleep(Duration::from_millis(200));
            stalled
        }));
        assert!(
            sent.load(Ordering::Relaxed) < FLOOD,
            "the flood went through without backpressure"
        );

        let mut other = server.connect();
        let started = Instant::now();
        round_trip(&mut other, b"are you there?", b"are you there?");
        let latency = started.elapsed();
        assert!(
            latency < Duration::from_millis(200),
            "another client waited {latency:?}"
        );

        let peak = server.peak_rss();
        assert!(peak < 32 << 20, "peak RSS {} MiB while flooded", peak >> 20);

        // Now read everything back.
        let mut reader = flooder;
        let mut got = vec![0u8; FLOOD];
        reader.read_exact(&mut got).unwrap();
        writer.join().unwrap();
        assert_bytes_eq(&got, &payload);
        let peak = server.peak_rss();
        assert!(
            peak < 32 << 20,
            "peak RSS {} MiB after the flood drained",
            peak >> 20
        );
    }
}

server_test! {
    /// A paused connection resumes and reads the input already waiting: the
    /// peer sends 2 MiB through a small window, half-closes, and reads only
    /// later. By then the rest of its input (and its FIN) was reported while
    /// the server was paused, and edge-triggered epoll will not report it
    /// again: a server that resumed without ever reading it would leave it
    /// there, and the peer would wait for ever. This checks the outcome, not
    /// the read at resume itself: the writable event that lets the server
    /// flush also says `readable` while input waits, so the dispatch reads
    /// right after the resume anyway (docs/labs.md, "Two safeguards with no
    /// lab").
    fn a_resumed_connection_reads_the_input_already_waiting(kind) for all {
        let server = Server::start(kind, &["--max-pending", "16384"]);
        let client = connect_with_receive_buffer(server.tcp(), 4096);
        let payload = pattern(2 << 20, 11);
        let writer = {
            let mut client = client.try_clone().unwrap();
            let payload = payload.clone();
            thread::spawn(move || {
                client.write_all(&payload).unwrap();
                client.shutdown(std::net::Shutdown::Write).unwrap();
            })
        };
        // Read nothing for a while: the server's writes come up short, it
        // owes more than --max-pending, and it pauses.
        thread::sleep(Duration::from_millis(300));
        let mut got = Vec::new();
        (&client).read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_bytes_eq(&got, &payload);
    }
}
