//! The kinds of hostile peer that `bench --chaos` sets loose, and the mix
//! that says how many of each.
//!
//! Each kind is one fault from the fault table (`docs/reliability.md`),
//! after Toxiproxy's "toxics" (slow close, slicer, reset_peer, timeout...),
//! but played by a real peer over a real socket, beside the verified
//! clients, in the thousands. Its script (what it sends, reads and does to
//! the connection) is in `tcp_peer.rs` and `datagram_peer.rs`.

/// One kind of hostile peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Slowloris: one byte at a time, a pause between bytes, forever; reads
    /// and checks the echo of each.
    Slow,
    /// Sends as fast as the server takes it and never reads: the server
    /// must stop reading from it (backpressure), not buffer without bound.
    NeverRead,
    /// Sends a burst, then resets the connection (SO_LINGER 0) while the
    /// reply is still on its way; connects again.
    Reset,
    /// Sends a burst, shuts its write side (half-close), then reads every
    /// byte owed until the server's FIN; connects again.
    HalfClose,
    /// Connects and never sends: a silent connection the server must not
    /// wait on (only `--idle-timeout` closes it).
    Vanish,
    /// Every message written one byte per write: the server sees many tiny
    /// reads; the reply must still come back exact.
    Slice,
    /// Multi-byte characters and invalid UTF-8, written one byte per write
    /// with pauses, so characters are split across the server's reads.
    Utf8,
    /// Empty UDP datagrams (a valid datagram of length 0).
    EmptyDatagram,
    /// UDP datagrams of the largest IPv4 size, 65,507 bytes.
    HugeDatagram,
}

impl Kind {
    /// The kinds that play against a TCP server, in report order.
    pub const TCP: [Kind; 7] = [
        Kind::Slow,
        Kind::NeverRead,
        Kind::Reset,
        Kind::HalfClose,
        Kind::Vanish,
        Kind::Slice,
        Kind::Utf8,
    ];
    /// The kinds that play against a UDP server (`bench --udp`).
    pub const UDP: [Kind; 2] = [Kind::EmptyDatagram, Kind::HugeDatagram];
    /// Every kind, in report order.
    pub const ALL: [Kind; 9] = [
        Kind::Slow,
        Kind::NeverRead,
        Kind::Reset,
        Kind::HalfClose,
        Kind::Vanish,
        Kind::Slice,
        Kind::Utf8,
        Kind::EmptyDatagram,
        Kind::HugeDatagram,
    ];

    /// The kind's name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Slow => "slow",
            Kind::NeverRead => "never-read",
            Kind::Reset => "reset",
            Kind::HalfClose => "half-close",
            Kind::Vanish => "vanish",
            Kind::Slice => "slice",
            Kind::Utf8 => "utf8",
            Kind::EmptyDatagram => "empty-datagram",
            Kind::HugeDatagram => "huge-datagram",
        }
    }

    /// The kind's name as a JSON key (`chaos_never_read`).
    pub fn json_key(self) -> String {
        format!("chaos_{}", self.name().replace('-', "_"))
    }

    /// What one of the kind's "cycles" is, in the report.
    pub fn cycle_noun(self) -> &'static str {
        match self {
            Kind::Slow => "bytes trickled",
            Kind::NeverRead => "connections found the server taking no more",
            Kind::Reset => "resets mid-transfer",
            Kind::HalfClose => "half-closes answered in full",
            Kind::Vanish => "silent connections",
            Kind::Slice => "sliced messages answered",
            Kind::Utf8 => "split messages answered",
            Kind::EmptyDatagram => "empty datagrams answered",
            Kind::HugeDatagram => "65,507-byte datagrams answered",
        }
    }

    /// Whether the kind plays over UDP.
    pub fn is_datagram(self) -> bool {
        matches!(self, Kind::EmptyDatagram | Kind::HugeDatagram)
    }

    /// The kind's place in [`Kind::ALL`] (an index for per-kind tallies).
    pub fn index(self) -> usize {
        self as usize
    }

    fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// How many of each kind: weights, shared out over the hostile peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mix {
    weights: Vec<(Kind, u32)>,
}

impl Mix {
    /// Every kind of the transport, in equal shares.
    pub(crate) fn every_kind(udp: bool) -> Mix {
        let kinds: &[Kind] = if udp { &Kind::UDP } else { &Kind::TCP };
        Mix {
            weights: kinds.iter().map(|&k| (k, 1)).collect(),
        }
    }

    /// Parses `slow=2,reset=1,vanish` (a kind without a weight counts 1)
    /// and checks that every kind plays over the run's transport.
    ///
    /// # Errors
    /// One line naming the unknown kind, the bad weight, or the kind that
    /// cannot play over this transport.
    pub(crate) fn parse(text: &str, udp: bool) -> Result<Mix, String> {
        let mut weights: Vec<(Kind, u32)> = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, weight) = item.split_once('=').unwrap_or((item, "1"));
            let kind = Kind::parse(name.trim()).ok_or_else(|| {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown chaos kind '{name}' (known: {})", known.join(", "))
            })?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("bad weight '{weight}' for chaos kind '{name}'"))?;
            if kind.is_datagram() != udp {
                let needs = if udp { "a TCP run" } else { "--udp" };
                return Err(format!("chaos kind '{name}' needs {needs}"));
            }
            match weights.iter_mut().find(|(k, _)| *k == kind) {
                Some(entry) => entry.1 += weight,
                None => weights.push((kind, weight)),
            }
        }
        weights.retain(|&(_, w)| w > 0);
        if weights.is_empty() {
            return Err(format!(
                "--chaos-mix '{text}' names no kind with a weight above 0"
            ));
        }
        weights.sort();
        Ok(Mix { weights })
    }

    /// Shares `peers` out by weight (largest remainders, so the counts sum
    /// to `peers` exactly and every kind gets its fair share within one).
    pub(crate) fn split(&self, peers: usize) -> Vec<(Kind, usize)> {
        let total: u64 = self.weights.iter().map(|&(_, w)| u64::from(w)).sum();
        let exact = |w: u32| peers as u64 * u64::from(w);
        let mut shares: Vec<(Kind, usize, u64)> = self
            .weights
            .iter()
            .map(|&(k, w)| (k, (exact(w) / total) as usize, exact(w) % total))
            .collect();
        let given: usize = shares.iter().map(|s| s.1).sum();
        let mut order: Vec<usize> = (0..shares.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(shares[i].2));
        for &i in order.iter().take(peers - given) {
            shares[i].1 += 1;
        }
        shares.into_iter().map(|(k, n, _)| (k, n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_shares_equally_and_sums_exactly() {
        let split = Mix::every_kind(false).split(1000);
        assert_eq!(split.len(), 7);
        assert_eq!(split.iter().map(|s| s.1).sum::<usize>(), 1000);
        assert!(split.iter().all(|&(_, n)| n == 142 || n == 143));
    }

    #[test]
    fn weights_parse_and_merge() {
        let mix = Mix::parse("slow=3, reset ,slow=1", false).expect("valid");
        assert_eq!(mix.split(10), vec![(Kind::Slow, 8), (Kind::Reset, 2)]);
    }

    #[test]
    fn bad_mixes_say_why() {
        assert!(
            Mix::parse("slowish", false)
                .unwrap_err()
                .contains("unknown chaos kind 'slowish'")
        );
        assert!(
            Mix::parse("slow=x", false)
                .unwrap_err()
                .contains("bad weight")
        );
        assert!(
            Mix::parse("empty-datagram", false)
                .unwrap_err()
                .contains("needs --udp")
        );
        assert!(
            Mix::parse("slow", true)
                .unwrap_err()
                .contains("needs a TCP run")
        );
        assert!(Mix::parse("slow=0", false).unwrap_err().contains("no kind"));
    }

    #[test]
    fn index_is_the_place_in_all() {
        for (i, k) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
