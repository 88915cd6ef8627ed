//! Measurement: what the engines read beside the messages they count.
//!
//! * [`cpu_window`]: CPU time over the measured window, the server's and
//!   the load generator's own;
//! * [`kernel`]: sockets and memory in the kernel, and how the storm of
//!   connects went;
//! * [`server_memory`]: the server's resident memory, before, with every
//!   connection open, at its peak and after;
//! * [`series`]: the run one second at a time (one interval histogram at
//!   a time, added to the totals as it closes);
//! * [`failures`]: why connects failed and connections ended, by kind;
//! * `measure/progress.rs` (crate-private): where each closed second goes,
//!   the live line and `--json-stream`;
//! * `measure/instruments.rs` (crate-private): all of these, as one
//!   engine carries them.

pub mod cpu_window;
pub mod failures;
pub(crate) mod instruments;
pub mod kernel;
pub(crate) mod progress;
pub mod series;
pub mod server_memory;
