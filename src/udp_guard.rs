//! Whether to answer a datagram: the UDP guards of `docs/security.md`, in
//! the order a datagram meets them, shared by every server.
//!
//! 1. **Its source** ([`UdpGuard::check_source`]). A forged source makes
//!    the server send its reply to whoever owns that address: a *reflector*.
//!    Pointed at another echo-like service, the two answer each other for
//!    ever (CERT CA-1996-01, the echo/chargen packet storm). The basic check
//!    (always on) refuses the five ports of services that answer anything
//!    (`net::is_reflecting_port`, counted `udp_dropped` as it always was).
//!    The strict check (exposed) refuses, counted `udp_refused`: every
//!    source port below 1024 (no ordinary client sends from one: OpenBSD's
//!    and xinetd's rule), the ports of the well-known services that answer
//!    datagrams above it ([`WELL_KNOWN`]), and sources that cannot be a real
//!    sender: unspecified, multicast, broadcast, `0/8`, the reserved
//!    `240/4`, and loopback arriving at a socket that is not on loopback.
//! 2. **Its reply's size** ([`UdpGuard::check_reply`]). With amplification
//!    refused, a reply larger than the datagram is not sent at all
//!    (`udp_oversize`): upper mode may triple a datagram (a two-byte letter
//!    whose uppercase is six bytes), greet answers an empty datagram with
//!    the whole greeting. Not sent, rather than cut short: a truncated
//!    uppercase or greeting is a wrong answer, and a client that wants the
//!    whole reply can send a datagram at least as long as it, as QUIC asks
//!    a client to pad its first datagram (RFC 9000 never sends more than
//!    three times what it received to an unvalidated address; this guard
//!    allows once).
//! 3. **Its source's rate** ([`crate::rate_limit`], `udp_limited`), last,
//!    so that only replies that would be sent take a token.
//!
//! Each refusal is logged at debug, at most once a second, with the count
//! since the last line: a flood cannot flood the log.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, warn};

use crate::exposure::{Amplification, Guards, SourceCheck};
use crate::net;
use crate::rate_limit::RateLimiter;
use crate::service::Service;
use crate::stats::Stats;

/// Ports of well-known services above 1024 that answer datagrams: NFS
/// (2049), SSDP (1900), memcached (11211), among the largest amplifiers
/// (US-CERT TA14-017A). Below 1024 every port is refused already.
pub const WELL_KNOWN: [u16; 3] = [1900, 2049, 11_211];

/// What the guards decided about one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer it.
    Answer,
    /// One of the five reflecting ports (`udp_dropped`).
    Reflecting,
    /// A source the strict check refuses (`udp_refused`).
    Refused,
    /// Its reply would be larger than it (`udp_oversize`).
    Oversize,
    /// Its source prefix is over its rate (`udp_limited`).
    Limited,
}

impl Verdict {
    /// Counts a datagram not answered.
    pub fn count(self, stats: &mut Stats) {
        match self {
            Verdict::Answer => {}
            Verdict::Reflecting => stats.udp_dropped += 1,
            Verdict::Refused => stats.udp_refused += 1,
            Verdict::Oversize => stats.udp_oversize += 1,
            Verdict::Limited => stats.udp_limited += 1,
        }
    }
}

/// The UDP guards of one socket.
#[derive(Debug)]
pub struct UdpGuard {
    check: SourceCheck,
    amplification: Amplification,
    limiter: Option<RateLimiter>,
    /// Whether the socket is bound to loopback (a loopback source is then
    /// a real one).
    on_loopback: bool,
    has_warned_reflection: bool,
    log: LogGate,
}

impl UdpGuard {
    /// The guards for a socket bound to `bound`.
    pub fn new(guards: &Guards, bound: SocketAddr, now: Instant) -> UdpGuard {
        UdpGuard {
            check: guards.source_check,
            amplification: guards.amplification,
            limiter: guards.udp_rate.map(|rate| RateLimiter::new(rate, now)),
            on_loopback: bound.ip().is_loopback(),
            has_warned_reflection: false,
            log: LogGate::default(),
        }
    }

    /// The reply to a datagram of `input` from `from`, if the guards let it
    /// go out: every server's UDP path, in one place. Counts what it turns
    /// away; `udp_in` and `udp_out` are the caller's (it received the
    /// datagram, and it sends the reply).
    pub fn answer<'a>(
        &mut self,
        service: &'a Service,
        from: SocketAddr,
        input: &'a mut [u8],
        out: &'a mut Vec<u8>,
        now: Instant,
        stats: &mut Stats,
    ) -> Option<&'a [u8]> {
        let verdict = self.check_source(from, now);
        if verdict != Verdict::Answer {
            verdict.count(stats);
            return None;
        }
        let request = input.len();
        let reply = service.datagram(input, out);
        let verdict = self.check_reply(from, request, reply.len(), now);
        if verdict != Verdict::Answer {
            verdict.count(stats);
            return None;
        }
        Some(reply)
    }

    /// Step 1: whether a datagram from `from` may be answered at all.
    pub fn check_source(&mut self, from: SocketAddr, now: Instant) -> Verdict {
        if net::is_reflecting_port(from.port()) {
            if !self.has_warned_reflection {
                self.has_warned_reflection = true;
                warn!(
                    "udp: not answering datagrams from {from} (port {} could reflect replies back in a loop); counted as dropped",
                    from.port()
                );
            }
            return Verdict::Reflecting;
        }
        if self.check == SourceCheck::Strict && refuses(from, self.on_loopback) {
            self.log.note(now, "refused by the source check", from);
            return Verdict::Refused;
        }
        Verdict::Answer
    }

    /// Steps 2 and 3: whether a reply of `reply` bytes to a datagram of
    /// `request` bytes from `from` may go out at `now`.
    pub fn check_reply(
        &mut self,
        from: SocketAddr,
        request: usize,
        reply: usize,
        now: Instant,
    ) -> Verdict {
        if self.amplification == Amplification::Refuse && reply > request {
            self.log
                .note(now, "its reply would be larger than it", from);
            return Verdict::Oversize;
        }
        if let Some(limiter) = self.limiter.as_mut() {
            if !limiter.allow(from.ip(), now) {
                self.log.note(now, "its source is over its rate", from);
                return Verdict::Limited;
            }
        }
        Verdict::Answer
    }
}

/// Whether the strict check refuses a datagram from `from` (to a socket on
/// loopback or not).
pub fn refuses(from: SocketAddr, on_loopback: bool) -> bool {
    if from.port() < 1024 || WELL_KNOWN.contains(&from.port()) {
        return true;
    }
    let ip = match from.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let first = v4.octets()[0];
            v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || first == 0
                || first >= 240
                || (v4.is_loopback() && !on_loopback)
        }
        IpAddr::V6(v6) => {
            v6.is_unspecified() || v6.is_multicast() || (v6.is_loopback() && !on_loopback)
        }
    }
}

/// At most one debug line a second about refused datagrams, with how many
/// there were since the last.
#[derive(Debug, Default)]
struct LogGate {
    next: Option<Instant>,
    since: u64,
}

impl LogGate {
    fn note(&mut self, now: Instant, why: &str, from: SocketAddr) {
        self.since += 1;
        if self.next.is_some_and(|next| now < next) {
            return;
        }
        debug!(
            "udp: not answering {from}: {why} ({} not answered since the last such line)",
            self.since
        );
        self.since = 0;
        self.next = Some(now + Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposure::{Exposed, RateLimit};
    use crate::service::Mode;
    use proptest::prelude::*;

    fn exposed_guards() -> Guards {
        Guards {
            exposed: Exposed::ByFlag,
            source_check: SourceCheck::Strict,
            amplification: Amplification::Refuse,
            udp_rate: Some(RateLimit {
                per_second: 1000,
                burst: 1000,
            }),
            max_per_source: None,
        }
    }

    proptest! {
        /// Exposed, in every mode: no reply is ever larger than the datagram
        /// it answers, and every datagram is either answered or counted once
        /// in exactly one of the guards' counters.
        #[test]
        fn no_reply_outgrows_its_datagram_and_every_datagram_is_counted_once(
            mode in prop_oneof![Just(Mode::Echo), Just(Mode::Upper), Just(Mode::Greet)],
            datagrams in proptest::collection::vec(
                (
                    proptest::collection::vec(
                        prop_oneof![any::<u8>(), Just(0xc3), Just(0x9f), Just(b'a')],
                        0..64,
                    ),
                    prop_oneof![0u16..1100, 1000u16..65535],
                ),
                1..40,
            ),
        ) {
            let service = Service::new(mode, "Hello, Client!");
            let now = Instant::now();
            let bound: SocketAddr = "198.51.100.1:8080".parse().unwrap();
            let mut guard = UdpGuard::new(&exposed_guards(), bound, now);
            let mut stats = Stats::default();
            let mut answered = 0u64;
            let mut out = Vec::new();
            for (bytes, port) in &datagrams {
                let from = SocketAddr::from(([198, 51, 100, 7], *port));
                let mut input = bytes.clone();
                if let Some(reply) = guard.answer(&service, from, &mut input, &mut out, now, &mut stats) {
                    prop_assert!(reply.len() <= bytes.len(), "{} bytes for {}", reply.len(), bytes.len());
                    answered += 1;
                }
            }
            let turned_away = stats.udp_dropped + stats.udp_refused + stats.udp_oversize + stats.udp_limited;
            prop_assert_eq!(answered + turned_away, datagrams.len() as u64);
        }
    }

    #[test]
    fn upper_and_greet_replies_larger_than_their_datagram_are_refused_and_counted() {
        let now = Instant::now();
        let bound: SocketAddr = "198.51.100.1:8080".parse().unwrap();
        let from: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let mut guard = UdpGuard::new(&exposed_guards(), bound, now);
        let mut stats = Stats::default();
        let mut out = Vec::new();
        // "ŉ" (2 bytes) uppercases to "ʼN" (3 bytes).
        let upper = Service::new(Mode::Upper, "");
        let mut input = "ŉ".as_bytes().to_vec();
        assert_eq!(
            guard.answer(&upper, from, &mut input, &mut out, now, &mut stats),
            None
        );
        let mut ascii = b"same size".to_vec();
        assert!(
            guard
                .answer(&upper, from, &mut ascii, &mut out, now, &mut stats)
                .is_some()
        );
        let greet = Service::new(Mode::Greet, "Hello, Client!");
        let mut empty = Vec::new();
        assert_eq!(
            guard.answer(&greet, from, &mut empty, &mut out, now, &mut stats),
            None
        );
        let mut padded = vec![0u8; 14];
        assert_eq!(
            guard.answer(&greet, from, &mut padded, &mut out, now, &mut stats),
            Some(&b"Hello, Client!"[..]),
            "a datagram as long as the greeting gets it"
        );
        assert_eq!(stats.udp_oversize, 2);
    }

    fn at(text: &str) -> SocketAddr {
        text.parse().expect("address")
    }

    #[test]
    fn the_strict_check_refuses_what_cannot_be_an_ordinary_client() {
        for refused in [
            "198.51.100.7:53",
            "198.51.100.7:1023",
            "198.51.100.7:2049",
            "198.51.100.7:11211",
            "0.0.0.0:40000",
            "0.1.2.3:40000",
            "224.0.0.1:40000",
            "255.255.255.255:40000",
            "240.0.0.1:40000",
            "127.0.0.1:40000",
            "[::]:40000",
            "[ff02::1]:40000",
            "[::1]:40000",
            "[::ffff:224.0.0.1]:40000",
        ] {
            assert!(refuses(at(refused), false), "{refused}");
        }
        for answered in ["198.51.100.7:40000", "[2001:db8::1]:1024", "10.0.0.1:65535"] {
            assert!(!refuses(at(answered), false), "{answered}");
        }
        assert!(
            !refuses(at("127.0.0.1:40000"), true),
            "loopback to loopback"
        );
        assert!(
            refuses(at("127.0.0.1:53"), true),
            "a privileged port even so"
        );
    }
}
