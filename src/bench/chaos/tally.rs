//! What happened to the hostile peers of one kind: the counts the report
//! prints beside the honest clients' figures (its JSON's `chaos_KIND`
//! objects, with these names).

use serde::{Deserialize, Serialize};

/// Counts for one kind of hostile peer over the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Peers of this kind.
    pub peers: u64,
    /// Connections that completed their handshake (UDP: sockets opened).
    pub connects: u64,
    /// Connects that failed.
    pub connect_failures: u64,
    /// Completed scripts; what one is depends on the kind
    /// ([`super::kind::Kind::cycle_noun`]).
    pub cycles: u64,
    /// Bytes the peers sent.
    pub bytes_sent: u64,
    /// Reply bytes that came back and were checked.
    pub bytes_verified: u64,
    /// Reply bytes that were wrong, or owed and never delivered.
    pub mismatches: u64,
    /// Connections the server closed (a FIN) when the peer had not asked.
    pub server_closed: u64,
    /// Connections the server reset, or that failed on an error, when the
    /// peer had not reset them itself.
    pub server_reset: u64,
    /// UDP: datagrams without a reply within the loss timeout.
    pub lost: u64,
}
