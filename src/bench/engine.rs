//! The engine: the loops that make the load, and what they are asked and
//! answer.
//!
//! * [`plan`]: the run asked for ([`plan::Plan`]) and what it measured
//!   ([`plan::Outcome`]), the one pair every engine takes and fills;
//! * [`driver`]: the TCP engine, a client-side mio reactor, its loop in the
//!   reactor's four phases;
//! * [`udp`]: the UDP engine, the same loop over datagram sockets;
//! * [`period`]: where a whole run is, from opening to done, the same for
//!   both engines;
//! * [`role`]: what a TCP connection does for each kind of load, asked by
//!   the driver instead of branched on;
//! * [`stamp`] and [`in_flight`]: a message's start time as one `u64`, and
//!   the queue of them per connection;
//! * this file: the sleep phase every loop shares ([`sleep`]), the
//!   timeout it sleeps ([`timeout_until`]), the moment the clock starts
//!   ([`start_gate`]) and Ctrl-C ([`interrupted`]).

pub(crate) mod driver;
pub(crate) mod in_flight;
pub(crate) mod period;
pub(crate) mod plan;
pub(crate) mod role;
pub(crate) mod stamp;
pub(crate) mod udp;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mio::{Events, Poll};

/// The sleep phase of every loop of the load generator (the TCP and UDP
/// engines, the hostile peers'): `Poll::poll` until readiness or
/// `timeout`, a signal that interrupts it (`EINTR`) taken as an empty
/// wake-up, and the clock read once, after, for the whole batch.
///
/// # Errors
/// If the poll fails: the one error that ends a loop.
pub(crate) fn sleep(
    poll: &mut Poll,
    events: &mut Events,
    timeout: Option<Duration>,
) -> io::Result<Instant> {
    match poll.poll(events, timeout) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::Interrupted => events.clear(),
        Err(e) => return Err(e),
    }
    Ok(Instant::now())
}

/// How long a loop may sleep from `now`: until the earliest of `wakes`,
/// and at most `longest`.
pub(crate) fn timeout_until(
    now: Instant,
    wakes: impl IntoIterator<Item = Option<Instant>>,
    longest: Duration,
) -> Duration {
    wakes
        .into_iter()
        .flatten()
        .min()
        .map_or(longest, |at| at.saturating_duration_since(now).min(longest))
}

/// The moment between "every connection is open" and "the clock starts":
/// a process of `--processes N` waits for its parent's word
/// (`processes/link.rs`), and with `--start-at` every load machine waits
/// for the same wall-clock moment, so that their measured windows line up
/// and their reports merge into one window (`bench merge`). Nothing is
/// sent while it waits. A start moment already past is not waited for:
/// the run starts at once, and says so.
///
/// # Errors
/// If the parent has gone.
pub(crate) fn start_gate(plan: &plan::Plan) -> io::Result<()> {
    if plan.is_coordinated {
        crate::bench::processes::link::ready_and_wait()?;
    }
    if let Some(at) = plan.start_at {
        match at.duration_since(std::time::SystemTime::now()) {
            Ok(wait) => {
                // In short sleeps, so that Ctrl-C is not held up.
                let end = Instant::now() + wait;
                while !interrupted() && Instant::now() < end {
                    std::thread::sleep(end.saturating_duration_since(Instant::now()).min(MAX_NAP));
                }
            }
            Err(late) => log::warn!(
                "--start-at: the connections opened {:.3} s after the start time; starting now, so this window begins late",
                late.duration().as_secs_f64()
            ),
        }
    }
    Ok(())
}

/// The longest nap while waiting for `--start-at`.
const MAX_NAP: Duration = Duration::from_millis(100);

/// Set by SIGINT (Ctrl-C) once [`catch_interrupt`] has run.
static INTERRUPT: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// From now on, Ctrl-C (SIGINT) does not kill the load generator: it ends
/// the run, whose loops see [`interrupted`] on their next turn (the poll
/// sleeps at most a quarter of a second) and stop, and the report of what
/// was measured so far is printed, marked as interrupted (as wrk, k6 and
/// iperf3 do). A second Ctrl-C is the same as the first.
///
/// # Errors
/// If the handler cannot be installed.
pub(crate) fn catch_interrupt() -> io::Result<()> {
    let flag = INTERRUPT.get_or_init(|| Arc::new(AtomicBool::new(false)));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(flag)).map(|_| ())
}

/// Whether Ctrl-C has asked the run to end.
pub(crate) fn interrupted() -> bool {
    INTERRUPT
        .get()
        .is_some_and(|flag| flag.load(Ordering::Relaxed))
}
