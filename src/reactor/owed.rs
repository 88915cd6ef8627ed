//! The bytes of replies that the kernel has not taken yet.
//!
//! Almost always there are none: a reply is written straight from the
//! reactor's scratch buffer, and the kernel takes all of it. Only when a
//! write comes up short does the rest need a home until the socket is
//! writable again. So [`Owed`] is one pointer, null while nothing is owed (8
//! bytes of every connection), and a heap block holding the bytes and how
//! far they have been written only while something is: an idle connection
//! owns no buffer, and costs only its 8 bytes here.

/// What a connection owes its peer.
#[derive(Debug, Default)]
pub struct Owed(Option<Box<Pending>>);

/// Owed bytes: `bytes[start..]` are still to be written.
#[derive(Debug)]
struct Pending {
    bytes: Vec<u8>,
    start: usize,
}

impl Owed {
    /// How many bytes are owed.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.bytes.len() - p.start)
    }

    /// Whether nothing is owed (the common case).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Adds `bytes` behind what is already owed: new bytes queue behind old
    /// ones, or the peer would get the stream out of order.
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.0.as_mut() {
            Some(pending) => {
                // Reclaim the written part before growing.
                pending.bytes.drain(..pending.start);
                pending.start = 0;
                pending.bytes.extend_from_slice(bytes);
            }
            None => {
                self.0 = Some(Box::new(Pending {
                    bytes: bytes.to_vec(),
                    start: 0,
                }));
            }
        }
    }

    /// The bytes still to be written, oldest first.
    pub fn unsent(&self) -> &[u8] {
        self.0.as_ref().map_or(&[], |p| &p.bytes[p.start..])
    }

    /// `n` bytes of [`Owed::unsent`] were written. Once all are, the block
    /// is freed: an idle connection owns no memory.
    pub fn consume(&mut self, n: usize) {
        if let Some(pending) = self.0.as_mut() {
            pending.start += n;
            if pending.start >= pending.bytes.len() {
                self.0 = None;
            }
        }
    }

    /// Drops what is owed: the connection closed and cannot deliver it.
    pub fn clear(&mut self) {
        self.0 = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_out_in_order_and_the_block_goes_when_all_are_written() {
        let mut owed = Owed::default();
        assert!(owed.is_empty() && owed.unsent().is_empty());
        assert_eq!(owed.len(), 0);
        owed.push(b"hello ");
        owed.consume(2);
        owed.push(b"world");
        assert_eq!(owed.unsent(), b"llo world");
        assert_eq!(owed.len(), 9);
        owed.consume(9);
        assert!(owed.is_empty());
        owed.push(b"");
        assert!(owed.is_empty(), "pushing nothing allocates nothing");
        owed.push(b"x");
        owed.clear();
        assert!(owed.is_empty());
        assert_eq!(std::mem::size_of::<Owed>(), 8);
    }
}
