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
//!   the queue of them per connection.

pub(crate) mod driver;
pub(crate) mod in_flight;
pub(crate) mod period;
pub(crate) mod plan;
pub(crate) mod role;
pub(crate) mod stamp;
pub(crate) mod udp;
