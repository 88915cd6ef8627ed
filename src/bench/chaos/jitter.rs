//! Pauses with jitter, so that the hostile peers do not move in step.
//!
//! Every peer's script waits between its steps (a slowloris byte every
//! 200 ms, a new cycle every 100 ms, ...). With fixed pauses a thousand
//! peers started together stay together: each wakes at the same moment,
//! and the server receives a thousand one-byte writes or a thousand resets
//! at the same instant, then nothing. A burst like that is
//! one attack (and makes every honest message that arrives with it wait for
//! the whole burst), but it is not what these kinds describe: slow senders,
//! resetters and slicers on a real network arrive at their own times. So
//! each peer draws its pauses from its own generator, evenly between half
//! and one and a half times the nominal pause (the mean is the nominal
//! pause: the load is the same), and starts at a random point of its first
//! pause.

use std::time::Duration;

/// A small pseudo-random generator (xorshift64*), one per peer: the runs
/// are repeatable, and no peer's pauses depend on another's.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator for the peer with this seed.
    pub fn new(seed: u64) -> Jitter {
        // splitmix64 of the seed, so that neighbouring seeds diverge at once
        // (and the state is never 0, which xorshift cannot leave).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Jitter((z ^ (z >> 31)) | 1)
    }

    /// A uniform fraction in [0, 1).
    fn fraction(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `pause` times a factor drawn evenly from [0.5, 1.5).
    pub fn around(&mut self, pause: Duration) -> Duration {
        pause.mul_f64(0.5 + self.fraction())
    }

    /// A point drawn evenly from [0, `pause`): where a first start falls.
    pub fn within(&mut self, pause: Duration) -> Duration {
        pause.mul_f64(self.fraction())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_stay_in_range_and_keep_their_mean() {
        let pause = Duration::from_millis(100);
        let mut j = Jitter::new(7);
        let draws: Vec<Duration> = (0..10_000).map(|_| j.around(pause)).collect();
        assert!(draws.iter().all(|d| *d >= pause / 2 && *d < pause * 3 / 2));
        let mean = draws.iter().sum::<Duration>() / draws.len() as u32;
        assert!(
            mean > Duration::from_millis(98) && mean < Duration::from_millis(102),
            "{mean:?}"
        );
        // Neighbouring peers do not draw the same pauses.
        let (mut a, mut b) = (Jitter::new(1), Jitter::new(2));
        assert_ne!(a.around(pause), b.around(pause));
        assert!(Jitter::new(3).within(pause) < pause);
    }
}
