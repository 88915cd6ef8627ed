//! Test support, by concern: which servers there are and the `server_test!`
//! macro that runs a test against each ([`kinds`]), the one type for "a
//! server" shared with the benches ([`spec`]), a running server process,
//! read through `/proc` ([`process`]: the benches' too), bytes on the wire
//! ([`bytes`]), running the load generator ([`bench`]), the course's
//! steps ([`steps`]), and hosts in network namespaces ([`hosts`]). The benches include this folder whole
//! (`benches/common/mod.rs`).

#[macro_use]
pub mod kinds;
pub mod bench;
pub mod bytes;
pub mod hosts;
pub mod namespace;
pub mod process;
pub mod spec;
pub mod steps;

pub use bench::*;
pub use bytes::*;
pub use kinds::*;
pub use process::*;
pub use steps::Step;
