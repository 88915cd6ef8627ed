//! What every handler shares: the reactor owns one [`Ctx`] and lends it to
//! whichever socket an event is for, a connection or the UDP endpoint.
//!
//! One struct kept for the reactor's life, not one built per event, so that
//! lending it is passing one pointer (building a context of borrowed fields
//! for every event cost a store per field per event: `docs/architecture.md`,
//! "The cost of one message"). It is a field of its own, beside the slab,
//! so that a handler can hold one connection and the context mutably at
//! once: two disjoint fields (the primer, `docs/event-loops.md`, "Borrowing
//! in the loop").

use log::log_enabled;

use super::deadlines::Tick;
use super::owed::HeldBytes;
use crate::service::Service;
use crate::stats::Stats;

/// What every handler shares: the reactor lends it to the socket an event
/// is for.
#[derive(Debug)]
pub struct Ctx {
    /// The reactor's one read buffer (64 KiB: it also holds the largest
    /// UDP datagram).
    pub scratch: Box<[u8]>,
    /// The reactor's one buffer for replies that cannot be made in place.
    pub reply: Vec<u8>,
    /// What to do with the bytes.
    pub service: Service,
    /// The counters.
    pub stats: Stats,
    /// The moment this batch of events was taken, as a connection's clock
    /// counts it (one clock read per batch).
    pub tick: Tick,
    /// Owed bytes above which a connection stops reading.
    pub max_pending: usize,
    /// The bytes the connections' owed blocks hold, and their peak: grown
    /// and shrunk by [`Owed`](super::owed::Owed)'s methods, read in the
    /// before-sleep phase to give a subsided peak back to the system.
    pub held: HeldBytes,
    /// Whether `RUST_LOG` enables trace, decided once per wake-up: the
    /// trace lines on the per-message path test this plain flag
    /// ([`hot_trace`](mod@super::hot_trace) says which lines, and why).
    pub tracing: bool,
}

impl Ctx {
    /// A context with a read buffer of `scratch_size` bytes, at `tick`.
    pub fn new(service: Service, scratch_size: usize, max_pending: usize, tick: Tick) -> Ctx {
        Ctx {
            scratch: vec![0; scratch_size].into_boxed_slice(),
            reply: Vec::with_capacity(scratch_size),
            service,
            stats: Stats::default(),
            tick,
            max_pending,
            held: HeldBytes::default(),
            tracing: log_enabled!(log::Level::Trace),
        }
    }
}
