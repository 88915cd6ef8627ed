//! Whether a run failed, and the one `error:` line that says why.
//!
//! A load generator that exits 0 after `0 established, 100 failed` tells a
//! script that all went well. The report is printed either way (it is what
//! was measured); then the run is judged, and a failed run exits 1 with one
//! line naming its first cause and every cause counted by kind:
//!
//! ```text
//! error: connection refused: 100 of 100 connects and round trips failed (100 connection refused)
//! ```
//!
//! What counts as a failure: a connect that failed or timed out, a
//! connection the server reset or closed mid-run, and after an idle hold a
//! round trip with no reply in time. (UDP's lost datagrams are reported,
//! not judged: a datagram may be lost.) `--tolerate PERCENT` lets that
//! share of the attempts fail (default 0). A run cut short by Ctrl-C fails
//! too, after its report: its figures are of the part that ran. Wrong
//! reply bytes are judged by the caller (`bench.rs`), as they always were.

use super::{Report, Workload};

impl Report {
    /// Attempts that could fail: connects started, and an idle run's
    /// round trips after the hold.
    fn attempts(&self) -> u64 {
        let connects = self.honest.established + self.honest.failed;
        match self.run.workload {
            Workload::Udp => 0,
            Workload::Idle => connects + self.honest.established,
            _ => connects,
        }
    }

    /// `Ok` if the run did what it was asked, within `tolerate_percent`
    /// of failures; else the sentence of its `error:` line.
    ///
    /// # Errors
    /// The sentence, when the run failed.
    pub fn verdict(&self, tolerate_percent: f64) -> Result<(), String> {
        let failures = &self.timeline.failures;
        let failed = if self.run.workload == Workload::Udp {
            0
        } else {
            failures.total()
        };
        let attempts = self.attempts();
        let allowed = tolerate_percent / 100.0 * attempts as f64;
        if failed > 0 && failed as f64 > allowed {
            let first = failures.first.map_or("failed", |c| c.sentence());
            let tolerance = if tolerate_percent > 0.0 {
                format!(", more than --tolerate {tolerate_percent}% allows")
            } else {
                String::new()
            };
            return Err(format!(
                "{first}: {failed} of {attempts} connects and round trips failed ({}){tolerance}",
                failures.by_kind()
            ));
        }
        if self.timeline.interrupted {
            return Err(format!(
                "interrupted (Ctrl-C): the report covers the {:.2} s measured before it",
                self.run.duration
            ));
        }
        if self.honest.messages == 0 && self.honest.established > 0 {
            return Err(
                "no replies were counted: the server accepted connections but answered \
                 nothing in the measured window"
                    .into(),
            );
        }
        Ok(())
    }
}
