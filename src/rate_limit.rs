//! Replies per source prefix: a token bucket per prefix, in a table of
//! fixed size.
//!
//! DNS servers limit their responses the same way (BIND's and NSD's RRL:
//! buckets per /24 and per IPv6 prefix), for the same reason: a reply sent
//! to a forged source lands on a victim, so no one source, or one network,
//! may draw more than a fixed rate of replies. The prefix, not the address:
//! an attacker who can forge one address in a /24 can forge them all, and an
//! IPv6 end site is given a whole prefix. IPv4 sources are grouped by /24;
//! IPv6 ones by /56, the prefix RFC 6177 recommends for an end site, so
//! one site cannot spread over 256 of its own /64s to multiply its share.
//!
//! **The table.** 4,096 buckets, 8 bytes each, allocated once: memory does
//! not grow with the number of sources, however many are forged. A prefix
//! is placed by a keyed hash (std's `RandomState`: SipHash with a key chosen
//! at start), so a peer cannot aim its prefixes at one bucket. Two prefixes
//! that land in the same bucket share it: each may then be limited by the
//! other's traffic, never allowed more than the rate, which is the safe way
//! round. The table is never "full"; past 4,096 busy prefixes every bucket
//! is shared, and the total stays at most 4,096 times the rate (a flood
//! from that many networks is volumetric: the network's job, not this
//! server's).
//!
//! **A bucket** holds up to `burst` tokens, in thousandths, and refills at
//! `per_second` tokens a second from the time it was last used; a reply
//! takes one token. Integer arithmetic on a millisecond clock, with no
//! timer: a bucket is brought up to date when a datagram of its prefix
//! arrives.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::Instant;

use crate::exposure::RateLimit;

/// Buckets in the table (a power of two).
pub const BUCKETS: usize = 4096;

/// One prefix's bucket (or several prefixes' that share it).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Thousandths of a token.
    millis: u32,
    /// When it was last brought up to date: milliseconds since the table's
    /// epoch, wrapping after 49 days (differences are taken wrapping).
    at: u32,
}

/// The table of buckets.
#[derive(Debug)]
pub struct RateLimiter {
    buckets: Box<[Bucket]>,
    keys: std::collections::hash_map::RandomState,
    rate: RateLimit,
    epoch: Instant,
}

/// Thousandths of a token per token.
const MILLI: u64 = 1000;

impl RateLimiter {
    /// A table of full buckets, with a fresh hash key.
    pub fn new(rate: RateLimit, now: Instant) -> RateLimiter {
        let full = Bucket {
            millis: Self::capacity(rate),
            at: 0,
        };
        RateLimiter {
            buckets: vec![full; BUCKETS].into_boxed_slice(),
            keys: std::collections::hash_map::RandomState::new(),
            rate,
            epoch: now,
        }
    }

    fn capacity(rate: RateLimit) -> u32 {
        (u64::from(rate.burst) * MILLI).min(u64::from(u32::MAX)) as u32
    }

    /// Whether a reply to `source` may go out at `now`; takes its token if so.
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        let index = (self.keys.hash_one(prefix(source)) as usize) & (BUCKETS - 1);
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u32;
        let capacity = Self::capacity(self.rate);
        let bucket = &mut self.buckets[index];
        // Tokens per second are thousandths per millisecond.
        let elapsed = u64::from(now_ms.wrapping_sub(bucket.at));
        let refilled = u64::from(bucket.millis) + elapsed * u64::from(self.rate.per_second);
        let millis = refilled.min(u64::from(capacity)) as u32;
        bucket.at = now_ms;
        if u64::from(millis) >= MILLI {
            bucket.millis = millis - MILLI as u32;
            true
        } else {
            bucket.millis = millis;
            false
        }
    }
}

/// The prefix a source is limited by: its /24 (IPv4, and IPv4-mapped IPv6)
/// or its /56 (IPv6), as one number.
pub fn prefix(source: IpAddr) -> u128 {
    match source {
        IpAddr::V4(v4) => u128::from(u32::from(v4) >> 8),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4) >> 8),
            // Tagged, so an IPv6 prefix never equals an IPv4 one.
            None => (u128::from(v6) >> 72) | (1 << 127),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn a_prefix_gets_its_burst_then_its_rate() {
        let start = Instant::now();
        let rate = RateLimit {
            per_second: 10,
            burst: 5,
        };
        let mut limiter = RateLimiter::new(rate, start);
        let source = ip("198.51.100.7");
        let at_once = (0..20).filter(|_| limiter.allow(source, start)).count();
        assert_eq!(at_once, 5, "the burst");
        // A second later: ten more (the bucket holds five, refilled at ten a
        // second, so over a second of steady traffic, ten get through).
        let mut later = 0;
        for ms in (0..1000).step_by(10) {
            let now = start + Duration::from_millis(1 + ms);
            later += usize::from(limiter.allow(source, now));
        }
        assert!((9..=11).contains(&later), "{later} in a second at 10/s");
    }

    #[test]
    fn prefixes_are_slash_24_and_slash_56() {
        assert_eq!(prefix(ip("198.51.100.7")), prefix(ip("198.51.100.200")));
        assert_ne!(prefix(ip("198.51.100.7")), prefix(ip("198.51.101.7")));
        assert_eq!(
            prefix(ip("2001:db8:0:ff::1")),
            prefix(ip("2001:db8:0:1::9"))
        );
        assert_ne!(
            prefix(ip("2001:db8:0:ff::1")),
            prefix(ip("2001:db8:0:100::1"))
        );
        assert_eq!(
            prefix(ip("::ffff:198.51.100.7")),
            prefix(ip("198.51.100.9"))
        );
        assert_ne!(prefix(ip("::c633:6407")), prefix(ip("198.51.100.7")));
    }

    #[test]
    fn one_prefix_over_its_rate_leaves_another_untouched() {
        let start = Instant::now();
        let rate = RateLimit {
            per_second: 100,
            burst: 100,
        };
        let mut limiter = RateLimiter::new(rate, start);
        let (flood, quiet) = (ip("10.0.1.1"), ip("10.0.2.1"));
        let mut answered = (0, 0);
        for ms in 0..1000u64 {
            let now = start + Duration::from_millis(ms);
            for _ in 0..10 {
                answered.0 += usize::from(limiter.allow(flood, now));
            }
            if ms % 20 == 0 {
                answered.1 += usize::from(limiter.allow(quiet, now));
            }
        }
        // 10,000 asked: the burst of 100 and 100 a second more (unless the
        // two prefixes share a bucket, which the random key makes rare).
        assert!(
            (195..=201).contains(&answered.0) || answered.1 < 50,
            "{answered:?}"
        );
        assert!(answered.1 == 50 || answered.0 < 195, "{answered:?}");
    }
}
