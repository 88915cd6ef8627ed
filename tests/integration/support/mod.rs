//! Test support, by concern: which servers there are and the `server_test!`
//! macro that runs a test against each ([`kinds`]), the one type for "a
//! server" shared with the benches ([`spec`]), a running server process
//! ([`process`]), measuring it through `/proc` ([`proc`]), bytes on the
//! wire ([`bytes`]), running the load generator ([`bench`]), and hosts in
//! network namespaces ([`hosts`]).

#[macro_use]
pub mod kinds;
pub mod bench;
pub mod bytes;
pub mod hosts;
pub mod proc;
pub mod process;
pub mod spec;

pub use bench::*;
pub use bytes::*;
pub use kinds::*;
pub use process::*;
