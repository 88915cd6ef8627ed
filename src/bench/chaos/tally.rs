//! What happened to the hostile peers of one kind: the counts the report
//! prints beside the honest clients' figures.

/// Counts for one kind of hostile peer over the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

impl Tally {
    /// The kind's line in the human-readable report.
    pub fn human(&self, kind: super::kind::Kind) -> String {
        let lost = if kind.is_datagram() {
            format!(", {} lost", self.lost)
        } else {
            format!(
                "; the server closed {}, reset {}",
                self.server_closed, self.server_reset
            )
        };
        format!(
            "  {:<16}{} peers, {} connections ({} failed): {} {}; {} bytes sent, {} reply bytes checked, {} wrong{lost}",
            kind.name(),
            self.peers,
            self.connects,
            self.connect_failures,
            self.cycles,
            kind.cycle_noun(),
            self.bytes_sent,
            self.bytes_verified,
            self.mismatches,
        )
    }

    /// The kind's counts as a JSON object (its key: [`super::kind::Kind::json_key`]).
    pub fn json(&self) -> String {
        format!(
            "{{\"peers\":{},\"connects\":{},\"connect_failures\":{},\"cycles\":{},\"bytes_sent\":{},\
             \"bytes_verified\":{},\"mismatches\":{},\"server_closed\":{},\"server_reset\":{},\"lost\":{}}}",
            self.peers,
            self.connects,
            self.connect_failures,
            self.cycles,
            self.bytes_sent,
            self.bytes_verified,
            self.mismatches,
            self.server_closed,
            self.server_reset,
            self.lost
        )
    }
}
