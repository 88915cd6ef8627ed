//! The bytes of replies that the kernel has not taken yet.
//!
//! Almost always there are none: a reply is written straight from the
//! reactor's scratch buffer, and the kernel takes all of it. Only when a
//! write comes up short does the rest need a home until the socket is
//! writable again. So [`Owed`] is one pointer, null while nothing is owed (8
//! bytes of every connection), and a heap block holding the bytes and how
//! far they have been written only while something is: an idle connection
//! owns no buffer, and costs only its 8 bytes here.
//!
//! **Giving a peak back.** Peers that send without reading make the server
//! hold up to `--max-pending` for each of them; once they are gone, those
//! blocks are freed, but glibc's `malloc` keeps freed heap memory for reuse
//! and returns only what lies at the top of the heap. After 200 such peers
//! had left, the reactor sometimes stayed 8 MiB above where it started (seen
//! while the test `memory::memory_of_owed_bytes_is_given_back_after_the_peers_leave`
//! was written; the test now requires the memory back within 5 MiB).
//! So the reactor counts the bytes its owed blocks hold, and their peak, in
//! one [`HeldBytes`] (a field of its shared context, `Ctx::held`). Every
//! method of [`Owed`] that allocates, grows or frees a block takes it and
//! counts the change on the spot, so the call site shows the accounting
//! (`owed.push(bytes, held)`); no `Drop` counts behind the caller's back.
//! [`HeldBytes::take_subsided_peak`] tells the before-sleep phase when a
//! peak worth returning has subsided: it then calls `malloc_trim` once
//! (`src/allocator.rs`), at the quiet end of a loop turn.
//!
//! A closing connection clears what it owes (`Connection::close`) before
//! its slot is removed, so every block is counted out. The only blocks
//! dropped uncounted are those of connections still open when the loop
//! stops, and the count goes with the reactor then.

/// A peak of owed bytes worth giving back to the system, once it subsides.
const PEAK_WORTH: usize = 4 << 20;

/// The bytes one reactor's owed blocks hold (their capacity), and the most
/// they have held since the last peak was taken.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HeldBytes {
    /// Held now.
    pub live: usize,
    /// The most held since the last peak was taken.
    pub peak: usize,
}

impl HeldBytes {
    /// Takes the peak if it is worth giving back and has subsided: true if
    /// at least 4 MiB were held and now an eighth of that or less is. The
    /// peak then starts over from what is held now, so this is true once
    /// per peak.
    pub fn take_subsided_peak(&mut self) -> bool {
        if self.peak >= PEAK_WORTH && self.live <= self.peak / 8 {
            self.peak = self.live;
            true
        } else {
            false
        }
    }

    /// A block was allocated or grown by `bytes`.
    pub fn grew(&mut self, bytes: usize) {
        self.live += bytes;
        self.peak = self.peak.max(self.live);
    }

    /// A block of `bytes` was freed.
    pub fn freed(&mut self, bytes: usize) {
        self.live = self.live.saturating_sub(bytes);
    }
}

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
    /// ones, or the peer would get the stream out of order. What the block
    /// grows by is counted in `held`.
    pub fn push(&mut self, bytes: &[u8], held: &mut HeldBytes) {
        if bytes.is_empty() {
            return;
        }
        match self.0.as_mut() {
            Some(pending) => {
                // Reclaim the written part before growing.
                let before = pending.bytes.capacity();
                pending.bytes.drain(..pending.start);
                pending.start = 0;
                pending.bytes.extend_from_slice(bytes);
                held.grew(pending.bytes.capacity() - before);
            }
            None => {
                let bytes = bytes.to_vec();
                held.grew(bytes.capacity());
                self.0 = Some(Box::new(Pending { bytes, start: 0 }));
            }
        }
    }

    /// The bytes still to be written, oldest first.
    pub fn unsent(&self) -> &[u8] {
        self.0.as_ref().map_or(&[], |p| &p.bytes[p.start..])
    }

    /// `n` bytes of [`Owed::unsent`] were written. Once all are, the block
    /// is freed, and counted out of `held`: an idle connection owns no
    /// memory.
    pub fn consume(&mut self, n: usize, held: &mut HeldBytes) {
        if let Some(pending) = self.0.as_mut() {
            pending.start += n;
            if pending.start >= pending.bytes.len() {
                self.free(held);
            }
        }
    }

    /// Drops what is owed, counted out of `held`: the connection closed
    /// and cannot deliver it.
    pub fn clear(&mut self, held: &mut HeldBytes) {
        self.free(held);
    }

    /// Frees the block, if there is one, and counts it out of `held`.
    fn free(&mut self, held: &mut HeldBytes) {
        if let Some(pending) = self.0.take() {
            held.freed(pending.bytes.capacity());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subsided_peak_of_owed_bytes_is_taken_once() {
        let mut held = HeldBytes::default();
        assert!(!held.take_subsided_peak(), "no peak yet");
        let mut blocks: Vec<Owed> = (0..8).map(|_| Owed::default()).collect();
        for block in &mut blocks {
            block.push(&vec![b'x'; 1 << 20], &mut held);
        }
        assert_eq!(held.live, 8 << 20);
        assert!(!held.take_subsided_peak(), "8 MiB still held");
        for block in &mut blocks[2..] {
            block.clear(&mut held);
        }
        assert!(
            !held.take_subsided_peak(),
            "2 MiB of 8 still held: more than an eighth"
        );
        blocks[1].consume(1 << 20, &mut held);
        assert_eq!(held.live, 1 << 20, "written out, the block is freed");
        assert!(held.take_subsided_peak(), "1 MiB of 8: the peak is over");
        assert!(!held.take_subsided_peak(), "taken once");
        blocks[0].clear(&mut held);
        assert_eq!(
            held,
            HeldBytes {
                live: 0,
                peak: 1 << 20
            }
        );
        assert!(
            !held.take_subsided_peak(),
            "a small peak is not worth a trim"
        );
    }

    #[test]
    fn bytes_come_out_in_order_and_the_block_goes_when_all_are_written() {
        let mut held = HeldBytes::default();
        let mut owed = Owed::default();
        assert!(owed.is_empty() && owed.unsent().is_empty());
        assert_eq!(owed.len(), 0);
        owed.push(b"hello ", &mut held);
        owed.consume(2, &mut held);
        assert_eq!((owed.unsent(), owed.len()), (&b"llo "[..], 4));
        owed.push(b"world", &mut held);
        assert_eq!(owed.unsent(), b"llo world");
        assert_eq!(owed.len(), 9);
        assert!(held.live >= 9, "the block is counted as held");
        owed.consume(9, &mut held);
        assert!(owed.is_empty());
        assert_eq!(held.live, 0, "the freed block is counted out");
        owed.push(b"", &mut held);
        assert!(owed.is_empty(), "pushing nothing allocates nothing");
        owed.push(b"x", &mut held);
        owed.clear(&mut held);
        assert!(owed.is_empty());
        assert_eq!(held.live, 0);
        assert_eq!(std::mem::size_of::<Owed>(), 8);
    }
}
