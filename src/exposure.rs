//! Exposure: whether the server can be reached from other hosts, and the
//! guards that follow from it.
//!
//! On loopback (the default address) the server answers whatever it is
//! sent, exactly as the tutorials it grows from do: nothing but this host
//! can reach it. The moment a listening address is not loopback (or
//! `--exposed` says to behave as if it were not), an echo service becomes
//! one of the oldest tools of network abuse, and [`Guards`] turns on, with
//! defaults chosen for a server on a real network (`docs/security.md`
//! gives the threat behind each):
//!
//! | guard | exposed default | flag, and how to turn it off |
//! |---|---|---|
//! | UDP source check | strict | `--udp-source-check basic` |
//! | UDP amplification | refused | `--udp-amplification allow` |
//! | UDP rate per source prefix | 100 replies/s, burst 100 | `--udp-rate off` |
//! | TCP connections per source address | 100 | `--max-per-source off` |
//! | TCP idle timeout | 60 s | `--idle-timeout 0` |
//!
//! Each flag also works on loopback without `--exposed`: the guards are
//! the flags' defaults, not a mode. The *basic* source check (today's five
//! reflecting ports, `net::is_reflecting_port`) is on everywhere.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Replies per second per source prefix when exposed.
pub const EXPOSED_UDP_RATE: u32 = 100;
/// TCP connections per source address when exposed.
pub const EXPOSED_MAX_PER_SOURCE: u32 = 100;
/// The idle timeout when exposed.
pub const EXPOSED_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Which UDP sources are never answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceCheck {
    /// The ports of the services that answer anything (0, 7, 13, 17, 19):
    /// on everywhere, loopback included.
    Basic,
    /// Besides: every source port below 1024 and the well-known answering
    /// services above it, multicast, broadcast, unspecified and reserved
    /// sources, and loopback sources arriving at a non-loopback address.
    Strict,
}

/// Whether a UDP reply may be larger than the datagram it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amplification {
    /// Any size (upper can triple a datagram, greet answers an empty one).
    Allow,
    /// Never larger: a larger reply is not sent (counted `udp_oversize`).
    Refuse,
}

/// A token bucket's rate: replies per second, and how many may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Replies per second per source prefix.
    pub per_second: u32,
    /// The most replies a prefix may get at once (the bucket's size).
    pub burst: u32,
}

/// Why the server counts as exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposed {
    /// Not exposed: only loopback addresses, and no `--exposed`.
    No,
    /// `--exposed`.
    ByFlag,
    /// This listening address is not loopback.
    ByAddress(SocketAddr),
}

/// The guards a server runs with, resolved from the flags and the addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guards {
    /// Why (or whether) the server is exposed: the defaults below follow.
    pub exposed: Exposed,
    /// Which UDP sources are never answered.
    pub source_check: SourceCheck,
    /// Whether a UDP reply may outgrow its datagram.
    pub amplification: Amplification,
    /// The UDP rate per source prefix, if limited.
    pub udp_rate: Option<RateLimit>,
    /// TCP connections per source address, if limited.
    pub max_per_source: Option<u32>,
}

/// A guard's flag as given: its value, `off`, or not given (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Setting<T> {
    /// Not given: the default for the exposure.
    #[default]
    Default,
    /// `off`.
    Off,
    /// A value.
    On(T),
}

/// The guard flags as the command line gave them.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardFlags {
    /// `--exposed`.
    pub exposed: bool,
    /// `--udp-source-check`.
    pub source_check: Option<SourceCheck>,
    /// `--udp-amplification`.
    pub amplification: Option<Amplification>,
    /// `--udp-rate`.
    pub udp_rate: Setting<u32>,
    /// `--udp-burst`.
    pub udp_burst: Option<u32>,
    /// `--max-per-source`.
    pub max_per_source: Setting<u32>,
}

impl Guards {
    /// The guards for a server listening on `addrs` with these flags.
    pub fn resolve(flags: &GuardFlags, addrs: &[SocketAddr]) -> Guards {
        let exposed = if flags.exposed {
            Exposed::ByFlag
        } else {
            addrs
                .iter()
                .find(|a| !a.ip().is_loopback())
                .map_or(Exposed::No, |a| Exposed::ByAddress(*a))
        };
        let on = exposed != Exposed::No;
        let rate = match flags.udp_rate {
            Setting::Default if on => Some(EXPOSED_UDP_RATE),
            Setting::On(n) => Some(n),
            Setting::Default | Setting::Off => None,
        };
        Guards {
            exposed,
            source_check: flags.source_check.unwrap_or(if on {
                SourceCheck::Strict
            } else {
                SourceCheck::Basic
            }),
            amplification: flags.amplification.unwrap_or(if on {
                Amplification::Refuse
            } else {
                Amplification::Allow
            }),
            udp_rate: rate.map(|per_second| RateLimit {
                per_second,
                burst: flags.udp_burst.unwrap_or(per_second).max(1),
            }),
            max_per_source: match flags.max_per_source {
                Setting::Default if on => Some(EXPOSED_MAX_PER_SOURCE),
                Setting::On(n) => Some(n),
                Setting::Default | Setting::Off => None,
            },
        }
    }

    /// The idle timeout: the one given (`Some(0)`: never), or the exposed
    /// default.
    pub fn idle_timeout(&self, given: Option<u64>) -> Option<Duration> {
        match given {
            Some(0) => None,
            Some(secs) => Some(Duration::from_secs(secs)),
            None if self.exposed != Exposed::No => Some(EXPOSED_IDLE_TIMEOUT),
            None => None,
        }
    }
}

impl fmt::Display for Guards {
    /// The start-up log's description: which guards are on, and why.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.exposed {
            Exposed::No => f.write_str("not exposed (loopback only)")?,
            Exposed::ByFlag => f.write_str("exposed (--exposed)")?,
            Exposed::ByAddress(a) => write!(f, "exposed ({a} is not loopback)")?,
        }
        let check = match self.source_check {
            SourceCheck::Basic => "basic",
            SourceCheck::Strict => "strict",
        };
        let amplification = match self.amplification {
            Amplification::Allow => "allowed",
            Amplification::Refuse => "refused",
        };
        write!(
            f,
            "; UDP source check {check}, amplification {amplification}, rate "
        )?;
        match self.udp_rate {
            Some(r) => write!(
                f,
                "{}/s per source /24 or /56 (burst {})",
                r.per_second, r.burst
            )?,
            None => f.write_str("unlimited")?,
        }
        match self.max_per_source {
            Some(n) => write!(f, "; TCP {n} connections per source"),
            None => f.write_str("; TCP connections per source unlimited"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("address")
    }

    #[test]
    fn loopback_keeps_todays_behaviour_and_any_other_address_exposes() {
        let quiet = Guards::resolve(&GuardFlags::default(), &[addr("127.0.0.1:8080")]);
        assert_eq!(quiet.exposed, Exposed::No);
        assert_eq!(quiet.source_check, SourceCheck::Basic);
        assert_eq!(quiet.amplification, Amplification::Allow);
        assert_eq!((quiet.udp_rate, quiet.max_per_source), (None, None));
        assert_eq!(quiet.idle_timeout(None), None);
        let ipv6_loopback = Guards::resolve(&GuardFlags::default(), &[addr("[::1]:7")]);
        assert_eq!(ipv6_loopback.exposed, Exposed::No);

        let out = addr("0.0.0.0:8080");
        let open = Guards::resolve(&GuardFlags::default(), &[addr("127.0.0.1:1"), out]);
        assert_eq!(open.exposed, Exposed::ByAddress(out));
        assert_eq!(open.source_check, SourceCheck::Strict);
        assert_eq!(open.amplification, Amplification::Refuse);
        assert_eq!(
            open.udp_rate,
            Some(RateLimit {
                per_second: EXPOSED_UDP_RATE,
                burst: EXPOSED_UDP_RATE
            })
        );
        assert_eq!(open.max_per_source, Some(EXPOSED_MAX_PER_SOURCE));
        assert_eq!(open.idle_timeout(None), Some(EXPOSED_IDLE_TIMEOUT));
    }

    #[test]
    fn each_guard_can_be_tuned_or_turned_off_explicitly() {
        let flags = GuardFlags {
            exposed: true,
            source_check: Some(SourceCheck::Basic),
            amplification: Some(Amplification::Allow),
            udp_rate: Setting::Off,
            udp_burst: None,
            max_per_source: Setting::On(10),
        };
        let g = Guards::resolve(&flags, &[addr("127.0.0.1:8080")]);
        assert_eq!(g.exposed, Exposed::ByFlag);
        assert_eq!(g.source_check, SourceCheck::Basic);
        assert_eq!(g.amplification, Amplification::Allow);
        assert_eq!(g.udp_rate, None);
        assert_eq!(g.max_per_source, Some(10));
        assert_eq!(g.idle_timeout(Some(0)), None, "0 still means never");
        assert_eq!(g.idle_timeout(Some(5)), Some(Duration::from_secs(5)));
        let tuned = GuardFlags {
            udp_rate: Setting::On(7),
            udp_burst: Some(20),
            ..GuardFlags::default()
        };
        let g = Guards::resolve(&tuned, &[addr("127.0.0.1:1")]);
        assert_eq!(
            g.udp_rate,
            Some(RateLimit {
                per_second: 7,
                burst: 20
            })
        );
        assert!(g.to_string().starts_with("not exposed"), "{g}");
    }
}
