//! The course's steps (`docs/course/`, Cargo examples), run like the real
//! servers: each step is started on port 0 from its built example, and the
//! same tests speak to it over real sockets. Every step must echo byte for
//! byte, survive a half-close and a reset peer; the one step that cannot
//! serve two clients at once (step 1) gets the test that shows it instead,
//! and the others the test that shows they can.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::path::Path;
use std::thread;
use std::time::Duration;

use crate::support::spec::ServerSpec;
use crate::support::*;

/// How a test starts a step: its example as cargo built it for the tests.
trait Started {
    fn spec(self) -> ServerSpec;
    fn start(self) -> Server;
}

impl Started for Step {
    /// How to start it: the example cargo built beside the binary under
    /// test, on an ephemeral port.
    fn spec(self) -> ServerSpec {
        let examples = Path::new(BIN)
            .parent()
            .expect("the binary's folder")
            .join("examples");
        self.spec_in(&examples)
    }

    fn start(self) -> Server {
        let spec = self.spec();
        assert!(
            spec.program.exists(),
            "{} is not built: `cargo test` builds the examples (or `cargo build --examples`)",
            spec.program.display()
        );
        Server::start_exact(&spec)
    }
}

/// Expands one test body into a `#[test]` per step listed, and an ignored
/// one (with its reason) per step skipped.
macro_rules! course_test {
    (
        $(#[doc = $doc:literal])*
        fn $name:ident($step:ident) for [$($run:ident),+]
        $(skip [$($skip:ident: $why:literal),+])?
        $body:block
    ) => {
        $(#[doc = $doc])*
        mod $name {
            use super::*;

            fn run($step: Step) $body

            $(
                #[test]
                #[allow(non_snake_case)]
                fn $run() {
                    run(Step::$run)
                }
            )+
            $($(
                #[test]
                #[allow(non_snake_case)]
                #[ignore = $why]
                fn $skip() {}
            )+)?
        }
    };
}

course_test! {
    /// Four clients stream 2 MiB each at the same time; every byte comes
    /// back, in order, to the right client.
    fn echo_is_exact_for_concurrent_clients(step)
    for [ThreadPerClient, NonblockingBusy, Poll, EpollLevel, MioEdge, IoUring]
    skip [Blocking: "one client at a time: see the_second_client_waits_for_the_first"] {
        let server = step.start();
        let addr = server.tcp();
        let clients: Vec<_> = (0..4u64)
            .map(|i| {
                thread::spawn(move || {
                    let payload = pattern(2 << 20, i);
                    assert_bytes_eq(&transfer(addr, payload.clone()), &payload);
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
    }
}

course_test! {
    /// Step 1's limit, shown: a second client is accepted by the kernel but
    /// answered only once the first one leaves.
    fn the_second_client_waits_for_the_first(step) for [Blocking] {
        let server = step.start();
        let mut first = server.connect();
        round_trip(&mut first, b"first", b"first");
        let mut second = server.connect();
        second.write_all(b"second").unwrap();
        second.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut reply = [0u8; 6];
        let waited = second.read(&mut reply).unwrap_err();
        assert!(
            matches!(waited.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "the second client must wait: {waited}"
        );
        drop(first);
        second.set_read_timeout(Some(PATIENCE)).unwrap();
        second.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"second");
    }
}

course_test! {
    /// The contrast with step 1: a second client is answered while the
    /// first one stays connected and silent.
    fn a_second_client_is_answered_while_the_first_stays(step)
    for [ThreadPerClient, NonblockingBusy, Poll, EpollLevel, MioEdge, IoUring]
    skip [Blocking: "one client at a time: see the_second_client_waits_for_the_first"] {
        let server = step.start();
        let mut first = server.connect();
        round_trip(&mut first, b"first", b"first");
        let mut second = server.connect();
        round_trip(&mut second, b"second", b"second");
        round_trip(&mut first, b"still here", b"still here");
    }
}

course_test! {
    /// A client that sends, then half-closes (FIN), gets every reply and
    /// then the server's FIN.
    fn half_close_gets_every_reply_then_eof(step)
    for [Blocking, ThreadPerClient, NonblockingBusy, Poll, EpollLevel, MioEdge, IoUring] {
        let server = step.start();
        let mut client = server.connect();
        let payload = pattern(300_000, 7);
        client.write_all(&payload).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        assert_bytes_eq(&read_to_eof(&mut client), &payload);
    }
}

course_test! {
    /// A peer that resets (SO_LINGER 0, with unread replies) ends only its
    /// own conversation: the next client is served.
    fn a_reset_peer_does_not_take_the_server_down(step)
    for [Blocking, ThreadPerClient, NonblockingBusy, Poll, EpollLevel, MioEdge, IoUring] {
        let server = step.start();
        let mut rude = server.connect();
        round_trip(&mut rude, b"ping", b"ping");
        rude.write_all(b"unread").unwrap();
        thread::sleep(Duration::from_millis(50));
        socket2::SockRef::from(&rude).set_linger(Some(Duration::ZERO)).unwrap();
        drop(rude);
        thread::sleep(Duration::from_millis(50));
        let mut next = server.connect();
        round_trip(&mut next, b"after the reset", b"after the reset");
    }
}

/// The one list of steps is the course: every example under `docs/course/`
/// is a step, in order, and every step is built, so that a step added to
/// the course but not to the list (which the tests and the ladder bench
/// run) fails here rather than going untested.
#[test]
fn the_list_of_steps_is_the_course() {
    let course = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/course");
    let mut examples: Vec<String> = std::fs::read_dir(&course)
        .expect("read docs/course")
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    examples.sort();
    let listed: Vec<&str> = Step::ALL.iter().map(|step| step.example()).collect();
    assert_eq!(examples, listed, "docs/course's examples against Step::ALL");
    for step in Step::ALL {
        let program = step.spec().program;
        assert!(program.exists(), "{} is not built", program.display());
    }
}
