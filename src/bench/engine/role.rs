//! What each connection of the load generator does: its role.
//!
//! Every decision that depends on the kind of load is a method here, so the
//! driver (`driver.rs`) has no branches on it: the driver asks the role, the
//! role answers. A new kind of load is a new variant and an answer to each
//! question, not a second set of branches through the driver. The hostile
//! peers of `--chaos` are not roles: their scripts are paced by time and
//! end connections on purpose, so they run on a loop of their own in a
//! second thread (`bench/chaos.rs`), and the driver's clock and periods stay
//! exactly those of a run without them (`docs/architecture.md` says why).

/// What the connections do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Role {
    /// Closed loop: each connection keeps `pipeline` messages in flight,
    /// sending the next as soon as a reply is complete.
    ClosedLoop,
    /// Open loop: messages at this many per second in total, on a schedule,
    /// round robin over the open connections.
    OpenLoop(f64),
    /// Connect, one message, verify, close, connect again; the latency of a
    /// message covers the whole cycle.
    Churn,
    /// Connect, hold idle for the duration, then one round trip each.
    Idle,
}

/// What a connection does when one of its messages has been answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterReply {
    /// Send the next message (closed loop).
    SendAnother,
    /// Close, and let a new connection take the slot (churn).
    CloseAndReplace,
    /// Count a successful round trip after the idle hold.
    CountIdleRoundTrip,
    /// Nothing: the schedule sends the next (open loop).
    Wait,
}

impl Role {
    /// The role `--rate`, `--churn` and `--idle` ask for (clap keeps the
    /// three apart); a closed loop without any.
    ///
    /// # Errors
    /// A rate that is not a positive number.
    pub fn from_flags(rate: Option<f64>, churn: bool, idle: bool) -> Result<Role, String> {
        match (rate, churn, idle) {
            (Some(rate), _, _) if rate.is_finite() && rate > 0.0 => Ok(Role::OpenLoop(rate)),
            (Some(_), _, _) => Err("--rate must be a positive number".into()),
            (None, true, _) => Ok(Role::Churn),
            (None, false, true) => Ok(Role::Idle),
            (None, false, false) => Ok(Role::ClosedLoop),
        }
    }

    /// Whether the run opens every connection before its clock starts. Churn
    /// does not: connecting is what it measures, all the time.
    pub fn opens_all_first(self) -> bool {
        !matches!(self, Role::Churn)
    }

    /// Messages a connection starts as soon as it is open.
    pub fn first_messages(self, pipeline: usize) -> usize {
        match self {
            Role::ClosedLoop => pipeline,
            Role::Churn => 1,
            Role::OpenLoop(_) | Role::Idle => 0,
        }
    }

    /// Whether a message's latency is counted from the connect (the churn
    /// cycle) rather than from when it was sent.
    pub fn latency_from_connect(self) -> bool {
        matches!(self, Role::Churn)
    }

    /// Whether a connection that failed, was lost, or finished its cycle is
    /// replaced by a new one while the run goes on (churn's slots).
    pub fn replaces_connections(self) -> bool {
        matches!(self, Role::Churn)
    }

    /// What a connection does when a reply is complete.
    pub fn after_reply(self) -> AfterReply {
        match self {
            Role::ClosedLoop => AfterReply::SendAnother,
            Role::Churn => AfterReply::CloseAndReplace,
            Role::Idle => AfterReply::CountIdleRoundTrip,
            Role::OpenLoop(_) => AfterReply::Wait,
        }
    }

    /// The open loop's total rate, in messages per second.
    pub fn scheduled_rate(self) -> Option<f64> {
        match self {
            Role::OpenLoop(rate) => Some(rate),
            _ => None,
        }
    }

    /// Whether the measured period is a hold, followed by one round trip on
    /// every connection (whose latencies are what is reported).
    pub fn checks_after_hold(self) -> bool {
        matches!(self, Role::Idle)
    }
}
