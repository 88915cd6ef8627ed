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
//! So this module counts the bytes its blocks hold on this thread (the
//! reactor's one thread) and their peak, and [`peak_is_over`] tells the
//! reactor when a peak worth returning has drained: it then calls
//! `malloc_trim` once (`src/allocator.rs`), at the quiet end of a loop turn.

use std::cell::Cell;

/// A peak of owed bytes worth giving back to the system, once it drains.
const PEAK_WORTH: usize = 4 << 20;

thread_local! {
    /// Bytes held by the owed blocks alive on this thread (their capacity),
    /// and the most held since the last peak was given back.
    static HELD: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// Whether a peak of at least 4 MiB of owed bytes has drained to an eighth
/// of itself since the last time this said so. True once per peak.
pub fn peak_is_over() -> bool {
    HELD.with(|held| {
        let (live, peak) = held.get();
        if peak >= PEAK_WORTH && live <= peak / 8 {
            held.set((live, live));
            true
        } else {
            false
        }
    })
}

/// Counts `grown` more bytes held, or `shrunk` fewer.
fn account(grown: usize, shrunk: usize) {
    HELD.with(|held| {
        let (live, peak) = held.get();
        let live = live + grown - shrunk;
        held.set((live, peak.max(live)));
    });
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

impl Drop for Pending {
    fn drop(&mut self) {
        account(0, self.bytes.capacity());
    }
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
                let before = pending.bytes.capacity();
                pending.bytes.drain(..pending.start);
                pending.start = 0;
                pending.bytes.extend_from_slice(bytes);
                account(pending.bytes.capacity().saturating_sub(before), 0);
            }
            None => {
                let bytes = bytes.to_vec();
                account(bytes.capacity(), 0);
                self.0 = Some(Box::new(Pending { bytes, start: 0 }));
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
    fn a_drained_peak_of_owed_bytes_is_reported_once() {
        // Each test runs on a thread of its own: the counts start at zero.
        assert!(!peak_is_over(), "no peak yet");
        let mut blocks: Vec<Owed> = (0..8).map(|_| Owed::default()).collect();
        for block in &mut blocks {
            block.push(&vec![b'x'; 1 << 20]);
        }
        assert!(!peak_is_over(), "8 MiB still held");
        blocks.truncate(2);
        assert!(
            !peak_is_over(),
            "2 MiB of 8 still held: more than an eighth"
        );
        blocks.truncate(1);
        assert!(peak_is_over(), "1 MiB of 8: the peak is over");
        assert!(!peak_is_over(), "reported once");
        blocks.clear();
        assert!(!peak_is_over(), "a small peak is not worth a trim");
    }

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
