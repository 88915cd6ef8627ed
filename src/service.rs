//! What the server does with the bytes it receives: the single definition of
//! `echo`, `upper` and `greet`, shared by every way of driving sockets.
//!
//! Nothing here touches a socket. A [`Service`] is the configured behaviour
//! (the mode and the greeting); a [`StreamTransform`] is the little state one
//! TCP connection needs (the UTF-8 carry of `upper`, whether `greet` has
//! answered). Both servers call the same three functions: [`Service::on_bytes`]
//! for each chunk read, [`Service::on_eof`] when the peer has finished, and
//! [`Service::datagram`] for UDP.
//!
//! The functions return a [`Reply`] that borrows either the input buffer (echo,
//! and ASCII uppercased in place) or a caller-owned output buffer, so the hot
//! path copies nothing it does not have to.

use crate::upper::{Output, UpperStream, upper_all};

/// The service offered on both TCP and UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every byte back, unchanged, in order.
    #[default]
    Echo,
    /// Unicode uppercase (full case mapping); invalid UTF-8 passes unchanged.
    Upper,
    /// A fixed greeting in reply to the first bytes, then the write side closes.
    Greet,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Echo => "echo",
            Mode::Upper => "upper",
            Mode::Greet => "greet",
        })
    }
}

/// The configured behaviour: the mode and, for `greet`, the greeting bytes.
#[derive(Debug, Clone)]
pub struct Service {
    mode: Mode,
    greeting: Box<[u8]>,
}

/// The per-connection state of a transform. Small and allocation-free, so an
/// idle connection pays only a few bytes for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamTransform {
    /// Echo keeps no state.
    Echo,
    /// Upper keeps the incomplete UTF-8 tail of the last chunk.
    Upper(UpperStream),
    /// Greet remembers whether the greeting has been sent.
    Greet {
        /// True once the greeting went out; later input is discarded.
        greeted: bool,
    },
}

/// The bytes to send back for one chunk of input.
#[derive(Debug)]
pub struct Reply<'a> {
    /// What to write to the peer (possibly empty).
    pub bytes: &'a [u8],
    /// True when the conversation is over from the server's side (greet):
    /// after these bytes, shut down the write half.
    pub is_final: bool,
}

impl Service {
    /// A service of the given mode; `greeting` is used by [`Mode::Greet`].
    pub fn new(mode: Mode, greeting: &str) -> Self {
        Service {
            mode,
            greeting: greeting.as_bytes().into(),
        }
    }

    /// The mode this service runs.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Fresh per-connection state.
    pub fn new_stream(&self) -> StreamTransform {
        match self.mode {
            Mode::Echo => StreamTransform::Echo,
            Mode::Upper => StreamTransform::Upper(UpperStream::new()),
            Mode::Greet => StreamTransform::Greet { greeted: false },
        }
    }

    /// The reply to one chunk read from a TCP stream.
    ///
    /// `input` may be modified in place; `out` may be cleared and used to
    /// hold the reply (echo leaves it alone: nothing to do per message). The returned bytes must be sent before the next call.
    pub fn on_bytes<'a>(
        &'a self,
        stream: &mut StreamTransform,
        input: &'a mut [u8],
        out: &'a mut Vec<u8>,
    ) -> Reply<'a> {
        match stream {
            StreamTransform::Echo => Reply::more(input),
            StreamTransform::Upper(upper) => {
                out.clear();
                match upper.feed(input, out) {
                    Output::InPlace => Reply::more(input),
                    Output::Appended => Reply::more(out),
                }
            }
            StreamTransform::Greet { greeted } => {
                if *greeted || input.is_empty() {
                    return Reply::more(&[]);
                }
                *greeted = true;
                Reply {
                    bytes: &self.greeting,
                    is_final: true,
                }
            }
        }
    }

    /// The last bytes owed when the peer has finished sending (TCP EOF): the
    /// incomplete UTF-8 tail `upper` was holding, unchanged.
    pub fn on_eof<'a>(&self, stream: &mut StreamTransform, out: &'a mut Vec<u8>) -> &'a [u8] {
        out.clear();
        if let StreamTransform::Upper(upper) = stream {
            upper.finish(out);
        }
        out
    }

    /// The reply datagram to one UDP datagram: each is converted on its own,
    /// and `greet` answers every datagram, an empty one included.
    pub fn datagram<'a>(&'a self, input: &'a mut [u8], out: &'a mut Vec<u8>) -> &'a [u8] {
        out.clear();
        match self.mode {
            Mode::Echo => input,
            Mode::Upper if input.is_ascii() => {
                input.make_ascii_uppercase();
                input
            }
            Mode::Upper => {
                upper_all(input, out);
                out
            }
            Mode::Greet => &self.greeting,
        }
    }
}

impl<'a> Reply<'a> {
    fn more(bytes: &'a [u8]) -> Self {
        Reply {
            bytes,
            is_final: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `greet` answers the first bytes with the greeting, final, and
    /// nothing after: not a second greeting for more bytes, not one for an
    /// empty chunk before them. (The servers stop calling `on_bytes` after
    /// the final reply; this is the service's own contract, for any caller.)
    #[test]
    fn greet_answers_the_first_bytes_once() {
        let service = Service::new(Mode::Greet, "hi");
        let mut stream = service.new_stream();
        let mut out = Vec::new();
        let empty = service.on_bytes(&mut stream, &mut [], &mut out);
        assert!(empty.bytes.is_empty() && !empty.is_final);
        let (mut hello, mut more) = (*b"hello", *b"more");
        let first = service.on_bytes(&mut stream, &mut hello, &mut out);
        assert_eq!((first.bytes, first.is_final), (&b"hi"[..], true));
        let again = service.on_bytes(&mut stream, &mut more, &mut out);
        assert!(again.bytes.is_empty() && !again.is_final);
    }
}
