//! What the load generator sends, and what it expects back.
//!
//! Every byte is a function of its position, so no payload is stored and
//! every reply byte can be checked: the byte at stream offset `o` of a
//! connection with seed `s` is `b'a' + (o + s) % 26`. Lowercase letters, so
//! that `upper` mode's reply is simply their ASCII uppercase (the same rule as
//! the C reference load generator, `loadgen.c`).

/// What the server is expected to do to the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expect {
    /// Replies are identical to the request.
    #[default]
    Echo,
    /// Replies are the request in uppercase.
    Upper,
}

/// The request byte at stream offset `offset` for a stream with `seed`.
pub fn request_byte(seed: u64, offset: u64) -> u8 {
    b'a' + ((offset + seed) % 26) as u8
}

/// Fills `out` with the request bytes starting at `offset`.
pub fn fill_request(seed: u64, offset: u64, out: &mut [u8]) {
    // The pattern repeats every 26 bytes: start at the right letter and count.
    let mut letter = ((offset + seed) % 26) as u8;
    for byte in out {
        *byte = b'a' + letter;
        letter = if letter == 25 { 0 } else { letter + 1 };
    }
}

/// Counts the bytes of `reply` (starting at stream offset `offset`) that are
/// not what `expect` says the server must send back.
pub fn count_mismatches(seed: u64, offset: u64, reply: &[u8], expect: Expect) -> u64 {
    let mut letter = ((offset + seed) % 26) as u8;
    let base = match expect {
        Expect::Echo => b'a',
        Expect::Upper => b'A',
    };
    let mut wrong = 0;
    for &byte in reply {
        wrong += u64::from(byte != base + letter);
        letter = if letter == 25 { 0 } else { letter + 1 };
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_matches_the_byte_rule_and_verification() {
        let mut buf = [0u8; 100];
        fill_request(7, 1000, &mut buf);
        for (i, &b) in buf.iter().enumerate() {
            assert_eq!(b, request_byte(7, 1000 + i as u64));
        }
        assert_eq!(count_mismatches(7, 1000, &buf, Expect::Echo), 0);
        let upper: Vec<u8> = buf.iter().map(u8::to_ascii_uppercase).collect();
        assert_eq!(count_mismatches(7, 1000, &upper, Expect::Upper), 0);
        assert_eq!(count_mismatches(7, 1000, &upper, Expect::Echo), 100);
        assert_eq!(count_mismatches(7, 1001, &buf, Expect::Echo), 100);
    }
}
