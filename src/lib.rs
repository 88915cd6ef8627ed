//! reactor-echo: a TCP and UDP echo, uppercase and greeting server driven by
//! one hand-rolled, single-threaded `mio::Poll` reactor.
//!
//! # Reading order
//! The crate is meant to be read. Start with the loop, then go outwards;
//! before the loop's code, read `docs/architecture.md`, whose picture of the
//! loop's bookkeeping (which phase writes and which reads each list) the
//! code spreads over several methods:
//!
//! 1. [`reactor`]: the event loop, its four phases, and [`serve`](reactor::serve).
//! 2. `reactor/token.rs` ([`reactor::token`]): which token means which socket,
//!    and why slab slots are freed only between batches.
//! 3. [`reactor::state`]: the connection state machine, a pure function.
//! 4. `reactor/connection.rs`: the reads and writes that feed it, and the
//!    memory discipline (one scratch buffer, lent in `reactor/ctx.rs` with
//!    everything else the sockets share; owed bytes only after a partial
//!    write, counted in `reactor/owed.rs`); [`syscall`]: the `recv` and
//!    `send` it makes, with their outcomes named.
//! 5. `reactor/listener.rs`, `reactor/udp.rs`, `reactor/deadlines.rs`,
//!    `reactor/shutdown.rs`: accepting (and running out of descriptors), UDP,
//!    idle timeouts, signals.
//! 6. Then the same server on completions: [`proactor`] (`docs/proactor.md`
//!    first), whose `proactor/ring.rs` is the one module where buffers are
//!    lent to the kernel.
//!
//! The pieces that do not depend on how sockets are driven:
//! [`service`] (what echo, upper and greet do), [`upper`] (streaming UTF-8
//! uppercasing), [`close`] (why a connection ended), [`stats`] (the counters
//! and the stats line, with its reader), [`listening`] (the start-up line,
//! with its reader), [`net`] (binding the sockets), [`error`] (why a server
//! stopped), [`config`] and [`cli`] (the flags), and two crate-private
//! helpers: `fd_limit` (the open-file limit) and `allocator` (giving a peak's
//! memory back).
//!
//! Beside the reactor: [`blocking`], the same server written with blocking
//! `std::net` sockets (one client at a time, or a thread per connection), to
//! read side by side with `reactor.rs`; and [`client`], the interactive
//! clients.
//!
//! Past one process: [`workers`], `serve --workers N`, a supervisor that
//! runs N of those reactors in N processes on one port (SO_REUSEPORT), each
//! unchanged; [`children`], how this program starts copies of itself (the
//! supervisor's workers, `bench --processes`' load generators) and the one
//! rule that keeps them from outliving their parent.
//!
//! And [`bench`](mod@bench), the load generator: a client-side mio reactor of
//! its own (`bench/engine/driver.rs`), the pattern seen from the other end.
//!
//! # What is public, and for whom
//! The binary (`src/main.rs`) is a client of this library like any other, so
//! everything it runs is public: [`cli`], [`config`], [`reactor`],
//! [`proactor`], [`blocking`], [`client`], [`bench`](mod@bench), [`error`],
//! [`workers`]. The tests and benches read the contract lines with
//! [`stats`] and [`listening`], and measure [`service`], [`upper`] and
//! [`reactor::state`] directly; [`reactor`] takes bound sockets ([`net`]) so
//! that a test or a course step can drive the same loop. The submodules of
//! [`reactor`], [`proactor`] and [`bench`](mod@bench) are public too, though
//! outside the crate only [`reactor::state`] and a few of `bench`'s readers
//! are used: that keeps every file of this reading order in the public
//! documentation, where its links resolve. Only two helpers, which nothing
//! outside calls, are crate-private: `fd_limit` and `allocator`.

mod allocator;
pub mod bench;
pub mod blocking;
pub mod children;
pub mod cli;
pub mod client;
pub mod close;
pub mod config;
pub mod error;
pub mod exposure;
mod fd_limit;
pub mod listening;
pub mod net;
pub mod proactor;
pub mod rate_limit;
pub mod reactor;
pub mod service;
pub mod source_limit;
pub mod stats;
pub mod syscall;
pub mod udp_guard;
pub mod udp_queue;
pub mod upper;
pub mod workers;
