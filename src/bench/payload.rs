//! What the load generator sends, and what it expects back.
//!
//! Every byte is a function of its position, so no payload is stored per
//! connection and every reply byte can be checked: the byte at stream
//! offset `o` of a connection with seed `s` is `b'a' + (o + s) % 26`.
//! Lowercase letters, so that `upper` mode's reply is simply their ASCII
//! uppercase (the same rule as the C reference load generator,
//! `loadgen.c`).
//!
//! The rule repeats every 26 bytes, so any run of the stream is a slice of
//! one buffer holding the alphabet over and over: `Pattern` lays out that
//! buffer once, for the requests and for the expected replies. A request is
//! then written straight from the pattern, and a reply is verified with one
//! slice comparison (`memcmp`, many bytes per instruction); only a reply
//! that differs is walked byte by byte to count how many bytes are wrong.
//! Generating and checking letter by letter cost about 16 instructions per
//! byte under callgrind (measured while this was built; no table keeps it),
//! most of the 1,739 instructions per message that the cost table gave the
//! generator then (at b669841); with this and the other changes
//! `docs/benchmarks.md` lists, it gives
//! [405](../../docs/benchmarks/cost.md "reactor-echo bench").

/// What the server is expected to do to the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expect {
    /// Replies are identical to the request.
    #[default]
    Echo,
    /// Replies are the request in uppercase.
    Upper,
}

/// The length of the alphabet, the period of every stream.
const PERIOD: usize = 26;

/// The request byte at stream offset `offset` for a stream with `seed`: the
/// rule itself, which `Pattern` lays out in advance.
pub fn request_byte(seed: u64, offset: u64) -> u8 {
    b'a' + ((offset + seed) % PERIOD as u64) as u8
}

/// The stream's bytes, laid out once: requests and expected replies for
/// runs of up to `max_len` bytes at any offset.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    /// `abc...zabc...`, `max_len + 25` bytes.
    request: Box<[u8]>,
    /// The same, as the server must send it back (`Expect`).
    reply: Box<[u8]>,
    max_len: usize,
}

impl Pattern {
    /// The pattern for replies transformed as `expect` says, in runs of at
    /// most `max_len` bytes (longer runs are taken in pieces).
    pub(crate) fn new(expect: Expect, max_len: usize) -> Pattern {
        let max_len = max_len.max(1);
        let request: Box<[u8]> = (0..max_len + PERIOD - 1)
            .map(|i| b'a' + (i % PERIOD) as u8)
            .collect();
        let reply = match expect {
            Expect::Echo => request.clone(),
            Expect::Upper => request.to_ascii_uppercase().into_boxed_slice(),
        };
        Pattern {
            request,
            reply,
            max_len,
        }
    }

    /// The longest run [`Pattern::request`] gives in one slice.
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// The request bytes from `offset`, `len` of them (at most `max_len`).
    pub(crate) fn request(&self, seed: u64, offset: u64, len: usize) -> &[u8] {
        let start = alphabet_index(seed, offset);
        &self.request[start..start + len.min(self.max_len)]
    }

    /// Counts the bytes of `reply` (starting at stream offset `offset`) that
    /// are not what the server must send back.
    pub(crate) fn count_mismatches(&self, seed: u64, offset: u64, reply: &[u8]) -> u64 {
        if reply.len() <= self.max_len {
            return self.count_in_piece(alphabet_index(seed, offset), reply);
        }
        let mut wrong = 0;
        for (i, piece) in reply.chunks(self.max_len).enumerate() {
            let at = offset + (i * self.max_len) as u64;
            wrong += self.count_in_piece(alphabet_index(seed, at), piece);
        }
        wrong
    }

    /// Wrong bytes in `piece` (at most `max_len`), which starts at letter
    /// `start` of the alphabet.
    #[inline]
    fn count_in_piece(&self, start: usize, piece: &[u8]) -> u64 {
        let expected = &self.reply[start..start + piece.len()];
        // One comparison for the whole piece; byte by byte only when wrong.
        if piece == expected {
            return 0;
        }
        piece.iter().zip(expected).filter(|(a, b)| a != b).count() as u64
    }
}

/// Where in the alphabet the byte at `offset` of stream `seed` falls.
fn alphabet_index(seed: u64, offset: u64) -> usize {
    ((offset + seed) % PERIOD as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn requests_follow_the_byte_rule_and_verify() {
        let pattern = Pattern::new(Expect::Echo, 100);
        let request = pattern.request(7, 1000, 100).to_vec();
        for (i, &b) in request.iter().enumerate() {
            assert_eq!(b, request_byte(7, 1000 + i as u64));
        }
        assert_eq!(pattern.count_mismatches(7, 1000, &request), 0);
        let upper: Vec<u8> = request.iter().map(u8::to_ascii_uppercase).collect();
        assert_eq!(pattern.count_mismatches(7, 1000, &upper), 100);
        assert_eq!(pattern.count_mismatches(7, 1001, &request), 100);
        let upper_pattern = Pattern::new(Expect::Upper, 100);
        assert_eq!(upper_pattern.count_mismatches(7, 1000, &upper), 0);
        assert_eq!(upper_pattern.count_mismatches(7, 1000, &request), 100);
    }

    proptest! {
        /// Any reply, at any offset and length (longer than `max_len` too),
        /// is counted exactly as the byte rule says, one wrong byte each.
        #[test]
        fn mismatches_are_counted_byte_by_byte(
            seed in 0u64..1000,
            offset in 0u64..10_000,
            len in 0usize..300,
            max_len in 1usize..80,
            flips in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
        ) {
            let pattern = Pattern::new(Expect::Echo, max_len);
            let mut reply: Vec<u8> = (0..len as u64).map(|i| request_byte(seed, offset + i)).collect();
            let mut flipped = std::collections::BTreeSet::new();
            if len > 0 {
                for flip in &flips {
                    let i = flip.index(len);
                    reply[i] = b'#';
                    flipped.insert(i);
                }
            }
            prop_assert_eq!(pattern.count_mismatches(seed, offset, &reply), flipped.len() as u64);
            let piece = pattern.request(seed, offset, len);
            prop_assert_eq!(piece.len(), len.min(max_len));
            for (i, &b) in piece.iter().enumerate() {
                prop_assert_eq!(b, request_byte(seed, offset + i as u64));
            }
        }
    }
}
