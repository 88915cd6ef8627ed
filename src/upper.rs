//! Streaming UTF-8 uppercasing: the `upper` mode's transform.
//!
//! TCP is a byte stream, so a multi-byte character can arrive split across two
//! reads (`"ß"` is `C3 9F`; the `C3` may end one read and the `9F` start the
//! next). [`UpperStream`] keeps the incomplete tail of one chunk (at most three
//! bytes, inline, no allocation) and finishes it with the next.
//!
//! The rule, equal to Python's
//! `data.decode('utf-8', 'surrogateescape').upper().encode('utf-8', 'surrogateescape')`:
//!
//! * valid UTF-8 is uppercased with the full (unconditional) Unicode case
//!   mapping, so one character may become several (`ß` becomes `SS`);
//! * bytes that are not valid UTF-8 pass through unchanged. Invalid input is
//!   cut into "maximal subparts" (Unicode 3.9, U+FFFD substitution practice),
//!   which is what both `std::str::from_utf8` and CPython's decoder do, so the
//!   byte after a broken sequence starts a fresh character in both;
//! * an incomplete sequence at the very end of the input is held until more
//!   arrives ([`UpperStream::feed`]) and passes unchanged at EOF
//!   ([`UpperStream::finish`]).
//!
//! Pure-ASCII input (the common case) takes a fast path that uppercases in
//! place, with no copy.

#[cfg(test)]
mod tests;

/// The longest UTF-8 sequence is four bytes, so at most three can be waiting
/// for the rest of their character.
const MAX_CARRY: usize = 3;

/// The per-stream state of the uppercase transform: the incomplete UTF-8
/// sequence (if any) that ended the previous chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpperStream {
    carry: [u8; MAX_CARRY],
    carry_len: u8,
}

/// Where [`UpperStream::feed`] puts its output: either the input itself,
/// uppercased in place (ASCII fast path), or the caller's output buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The input slice now holds the reply (same length).
    InPlace,
    /// The reply was appended to the output buffer.
    Appended,
}

impl UpperStream {
    /// A stream with nothing carried over.
    pub const fn new() -> Self {
        UpperStream {
            carry: [0; MAX_CARRY],
            carry_len: 0,
        }
    }

    /// Whether an incomplete sequence is waiting for its remaining bytes.
    pub fn has_carry(&self) -> bool {
        self.carry_len > 0
    }

    /// Uppercases one chunk of the stream.
    ///
    /// If nothing is carried over and the chunk is pure ASCII, the chunk is
    /// uppercased in place and [`Output::InPlace`] is returned; `out` is not
    /// touched. Otherwise the converted bytes are appended to `out` (which the
    /// caller clears) and [`Output::Appended`] is returned. An incomplete
    /// sequence at the end of `input` is kept for the next call.
    pub fn feed(&mut self, input: &mut [u8], out: &mut Vec<u8>) -> Output {
        if self.carry_len == 0 && input.is_ascii() {
            input.make_ascii_uppercase();
            return Output::InPlace;
        }
        let rest = self.finish_carry(input, out);
        self.convert(&input[rest..], out);
        Output::Appended
    }

    /// Ends the stream: an incomplete sequence still held is appended to
    /// `out` unchanged.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.carry[..usize::from(self.carry_len)]);
        self.carry_len = 0;
    }

    /// Completes the carried sequence with the first bytes of `input`.
    /// Returns how many bytes of `input` it consumed.
    fn finish_carry(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let held = usize::from(self.carry_len);
        if held == 0 {
            return 0;
        }
        // Four bytes decide any first character, so a window of the carry
        // plus up to `4 - held` new bytes is enough; it lives on the stack.
        let take = input.len().min(4 - held);
        let mut window = [0u8; 4];
        window[..held].copy_from_slice(&self.carry[..held]);
        window[held..held + take].copy_from_slice(&input[..take]);
        let window = &window[..held + take];
        self.carry_len = 0;

        let mut used = 0;
        // Decode units until every carried byte has been accounted for; the
        // unit that holds the last carried byte may reach into `input`.
        while used < held {
            match first_unit(&window[used..]) {
                Unit::Char(c, len) => {
                    push_upper(c, out);
                    used += len;
                }
                Unit::Invalid(len) => {
                    out.extend_from_slice(&window[used..used + len]);
                    used += len;
                }
                Unit::Incomplete => {
                    // All of `input` fit in the window and still did not
                    // finish the character: keep waiting.
                    let tail = &window[used..];
                    self.carry[..tail.len()].copy_from_slice(tail);
                    self.carry_len = tail.len() as u8;
                    return input.len();
                }
            }
        }
        used - held
    }

    /// Converts bytes that start on a character boundary.
    fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        let mut chunks = input.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            push_upper_str(chunk.valid(), out);
            let invalid = chunk.invalid();
            // `utf8_chunks` reports a truncated sequence at the very end as
            // invalid too; only there can it still be completed by more input.
            let is_last = chunks.peek().is_none();
            if is_last && is_incomplete(invalid) {
                self.carry[..invalid.len()].copy_from_slice(invalid);
                self.carry_len = invalid.len() as u8;
            } else {
                out.extend_from_slice(invalid);
            }
        }
    }
}

/// Whether `bytes` (a maximal invalid subpart) is the start of a character
/// whose remaining bytes have not arrived yet, rather than a broken sequence.
fn is_incomplete(bytes: &[u8]) -> bool {
    !bytes.is_empty() && matches!(std::str::from_utf8(bytes), Err(err) if err.error_len().is_none())
}

/// Uppercases a whole datagram (or any self-contained input) into `out`: an
/// incomplete sequence at its end passes unchanged.
pub fn upper_all(input: &[u8], out: &mut Vec<u8>) {
    let mut stream = UpperStream::new();
    stream.convert(input, out);
    stream.finish(out);
}

/// The first decoding unit of a byte string.
enum Unit {
    /// A valid character and its encoded length.
    Char(char, usize),
    /// A maximal invalid subpart of this many bytes.
    Invalid(usize),
    /// The bytes are the start of a character that has not fully arrived.
    Incomplete,
}

fn first_unit(bytes: &[u8]) -> Unit {
    let window = &bytes[..bytes.len().min(4)];
    let valid = match std::str::from_utf8(window) {
        Ok(text) => text,
        Err(err) => match std::str::from_utf8(&window[..err.valid_up_to()]) {
            Ok(text) if !text.is_empty() => text,
            _ => {
                return match err.error_len() {
                    Some(len) => Unit::Invalid(len),
                    None => Unit::Incomplete,
                };
            }
        },
    };
    match valid.chars().next() {
        Some(c) => Unit::Char(c, c.len_utf8()),
        None => Unit::Incomplete,
    }
}

fn push_upper_str(text: &str, out: &mut Vec<u8>) {
    let mut rest = text;
    while !rest.is_empty() {
        // Runs of ASCII are converted a byte at a time without decoding; only
        // the characters between them go through the Unicode tables.
        let run = rest
            .bytes()
            .position(|b| !b.is_ascii())
            .unwrap_or(rest.len());
        out.extend(rest.as_bytes()[..run].iter().map(u8::to_ascii_uppercase));
        rest = &rest[run..];
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            push_upper(c, out);
            rest = chars.as_str();
        }
    }
}

fn push_upper(c: char, out: &mut Vec<u8>) {
    if c.is_ascii() {
        out.push(c.to_ascii_uppercase() as u8);
        return;
    }
    let mut buf = [0u8; 4];
    for u in c.to_uppercase() {
        out.extend_from_slice(u.encode_utf8(&mut buf).as_bytes());
    }
}
