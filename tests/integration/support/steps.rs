//! The course's steps (`docs/course/`, Cargo examples), in order: the one
//! list that the course's tests (`tests/integration/course.rs`) and the
//! ladder bench (`benches/ladder.rs`, which includes this folder) both run,
//! so that a new step is added here once.

use std::path::Path;

use super::spec::ServerSpec;

/// The steps of the ladder, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Blocking,
    ThreadPerClient,
    NonblockingBusy,
    Poll,
    EpollLevel,
    MioEdge,
    IoUring,
}

impl Step {
    /// Every step, in the course's order.
    pub const ALL: [Step; 7] = [
        Step::Blocking,
        Step::ThreadPerClient,
        Step::NonblockingBusy,
        Step::Poll,
        Step::EpollLevel,
        Step::MioEdge,
        Step::IoUring,
    ];

    /// The example's name (`cargo run --example NAME`).
    pub fn example(self) -> &'static str {
        match self {
            Step::Blocking => "01_blocking",
            Step::ThreadPerClient => "02_thread_per_client",
            Step::NonblockingBusy => "03_nonblocking_busy",
            Step::Poll => "04_poll",
            Step::EpollLevel => "05_epoll_level",
            Step::MioEdge => "06_mio_edge",
            Step::IoUring => "07_io_uring",
        }
    }

    /// The step built in `examples` (cargo's `target/PROFILE/examples`),
    /// on an ephemeral port of loopback (each step takes its address as its
    /// one argument).
    pub fn spec_in(self, examples: &Path) -> ServerSpec {
        ServerSpec::new(
            self.example(),
            examples.join(self.example()),
            &["127.0.0.1:0"],
        )
    }
}
