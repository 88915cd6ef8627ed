//! The provided buffer ring: receive buffers lent to the kernel in advance,
//! taken only when bytes arrive, so an idle connection holds none.
//!
//! One block of entries (page-aligned, registered with the kernel by
//! `Ring::new`) and one block of buffers. The kernel takes a buffer from
//! the head; this module gives it back at the tail, and publishes the tail
//! with a release store. Bytes the kernel filled come back as a
//! [`ProvidedBuf`], the token that proves the kernel is done with them.
//!
//! Consumed incrementally (`IOU_PBUF_RING_INC`), a buffer stays at the
//! head while recvs, of any connection, take its bytes one after another;
//! each completion says how many it took, and whether the kernel keeps the
//! buffer to fill its rest (`IORING_CQE_F_BUF_MORE`). So this module counts
//! the bytes each buffer has given (`used`): a completion's bytes start
//! where the one before ended. The buffer goes back to the tail only once
//! the kernel has ended it (a completion without the flag) and every token
//! of its bytes has come back, so that no token can reach bytes the kernel
//! writes again. Consumed whole, every completion ends its buffer, its
//! bytes start at 0, and the same bookkeeping serves.
//!
//! Which of the two the ring gets is chosen here too, when the buffers are
//! registered (`provide`): incremental consumption only on a kernel that
//! also has the recv's byte limit, which keeps large buffers within the
//! bound.

use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{IoUring, types};

use super::{BUFFER_GROUP, RingSize};

/// `IOU_PBUF_RING_INC` (`include/uapi/linux/io_uring.h`; the `io-uring`
/// crate does not name it).
const IOU_PBUF_RING_INC: u16 = 2;

/// The size of a whole (not incrementally consumed) provided buffer when
/// the kernel refuses incremental consumption: large enough for a
/// 64-byte message many times over, small enough that a recv that takes a
/// whole buffer for a few bytes wastes little of the ring.
pub const WHOLE_BUFFER_SIZE: u32 = 4096;

/// Bytes of a provided buffer the kernel has filled and given up: the
/// proof of ownership that [`Ring::bytes_mut`](super::Ring::bytes_mut) asks for. Not `Clone`; it
/// goes back with [`Ring::recycle`](super::Ring::recycle), which gives the buffer back to the
/// kernel once it is ended and its last token is back (dropping a token
/// instead only keeps its buffer out of the ring for good).
#[derive(Debug)]
pub struct ProvidedBuf {
    pub(super) id: u16,
    pub(super) len: usize,
    /// Where in the buffer the bytes start: after those of the buffer's
    /// earlier completions (0 for a buffer consumed whole).
    pub(super) offset: usize,
    /// The kernel keeps the buffer to fill its rest (`IORING_CQE_F_BUF_MORE`,
    /// or no bytes taken): what `ProvidedBuffers::give_back` goes by, kept
    /// here for the tests to see.
    #[cfg(test)]
    pub(super) kept: bool,
}

impl ProvidedBuf {
    /// How many bytes the kernel wrote.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the kernel wrote nothing (end of stream).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The provided buffer ring: an array of entries the kernel takes buffers
/// from (its head) and this module gives them back to (its tail), and the
/// buffers themselves, in one block.
pub(super) struct ProvidedBuffers {
    /// The entries: page-aligned, `count` of them; entry 0's last two bytes
    /// double as the ring's tail (`BufRingEntry::tail`).
    pub(super) entries: NonNull<types::BufRingEntry>,
    entries_layout: Layout,
    /// The buffers: `count` × `size` bytes.
    memory: NonNull<u8>,
    memory_layout: Layout,
    count: u16,
    size: usize,
    /// The tail as this module counts it; published to the kernel by
    /// [`ProvidedBuffers::publish`].
    tail: u16,
    /// Set when the kernel may still hold the memory at drop.
    leaked: bool,
    /// Registered for incremental consumption.
    incremental: bool,
    /// The bytes of each buffer the kernel has filled since it was last
    /// added.
    used: Vec<usize>,
    /// Each buffer's tokens not yet given back, and whether the kernel has
    /// ended it: it goes back to the ring when both say so, so that no
    /// token can reach bytes the kernel may be writing again.
    tokens: Vec<u16>,
    ended: Vec<bool>,
}

impl ProvidedBuffers {
    /// `count` buffers of `size` bytes, not yet added; `incremental`: the
    /// caller registers them for incremental consumption.
    pub(super) fn new(count: u16, size: u32, incremental: bool) -> io::Result<ProvidedBuffers> {
        if !count.is_power_of_two() || count > 32_768 || size == 0 {
            return Err(io::Error::other(format!(
                "provided buffers: {count} × {size} B (a power of two up to 32768, and a size)"
            )));
        }
        let bad = |e: std::alloc::LayoutError| io::Error::other(e.to_string());
        let entries_layout = Layout::array::<types::BufRingEntry>(usize::from(count))
            .and_then(|l| l.align_to(4096))
            .map_err(bad)?;
        let memory_layout =
            Layout::from_size_align(usize::from(count) * size as usize, 64).map_err(bad)?;
        // SAFETY: both layouts have a non-zero size (count >= 1, size >= 1).
        let (entries, memory) = unsafe {
            (
                alloc::alloc_zeroed(entries_layout),
                alloc::alloc_zeroed(memory_layout),
            )
        };
        let (Some(entries), Some(memory)) = (
            NonNull::new(entries.cast::<types::BufRingEntry>()),
            NonNull::new(memory),
        ) else {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        };
        Ok(ProvidedBuffers {
            entries,
            entries_layout,
            memory,
            memory_layout,
            count,
            size: size as usize,
            tail: 0,
            leaked: false,
            incremental,
            used: vec![0; usize::from(count)],
            tokens: vec![0; usize::from(count)],
            ended: vec![false; usize::from(count)],
        })
    }

    /// How many buffers.
    pub(super) fn count(&self) -> u16 {
        self.count
    }

    /// Bytes per buffer.
    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// The tail as this module counts it (for the tests: how many buffers
    /// have been given back).
    #[cfg(test)]
    pub(super) fn tail(&self) -> u16 {
        self.tail
    }

    /// Whether they are registered for incremental consumption.
    pub(super) fn incremental(&self) -> bool {
        self.incremental
    }

    /// Puts buffer `id` at the tail (not yet visible to the kernel).
    pub(super) fn add(&mut self, id: u16) {
        let index = usize::from(self.tail & (self.count - 1));
        // SAFETY: `index` < `count`, so the entry is inside the array; the
        // kernel reads entries only between its head and the published tail,
        // and this one is past the published tail until `publish`.
        let entry = unsafe { &mut *self.entries.as_ptr().add(index) };
        // SAFETY (of the address): buffer `id` < `count` lies inside `memory`.
        let addr = unsafe { self.memory.as_ptr().add(usize::from(id) * self.size) };
        entry.set_addr(addr as u64);
        entry.set_len(self.size as u32);
        entry.set_bid(id);
        self.used[usize::from(id)] = 0;
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the entries added so far visible to the kernel: a release
    /// store of the tail, so the kernel never sees the tail before the
    /// entries it covers.
    pub(super) fn publish(&self) {
        // SAFETY: `entries` is the ring's base; the tail is a u16 inside
        // entry 0 that the kernel only reads, and this store is the only
        // write to it.
        unsafe {
            let tail = types::BufRingEntry::tail(self.entries.as_ptr()).cast_mut();
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }

    /// The token of a completion that filled `len` bytes of buffer `id`,
    /// after the bytes its earlier completions filled; `more`: the kernel
    /// goes on filling the buffer (`IORING_CQE_F_BUF_MORE`).
    pub(super) fn received(&mut self, id: u16, len: usize, more: bool) -> ProvidedBuf {
        let i = usize::from(id);
        let offset = self.used[i].min(self.size);
        self.used[i] += len;
        // Consumed incrementally, a completion of no bytes (end of stream)
        // took nothing from the buffer, which stays the kernel's whatever
        // the flags say (kernels before the fix in Linux commit
        // 3ecd3e03144b left F_BUF_MORE off there).
        let kept = more || (self.incremental && len == 0);
        self.tokens[i] = self.tokens[i].saturating_add(1);
        if !kept {
            self.ended[i] = true;
        }
        ProvidedBuf {
            id,
            len,
            offset,
            #[cfg(test)]
            kept,
        }
    }

    /// Takes a token back; whether its buffer went back to the tail (the
    /// kernel has ended it and this was its last token), to be published.
    pub(super) fn give_back(&mut self, buf: ProvidedBuf) -> bool {
        let i = usize::from(buf.id);
        self.tokens[i] = self.tokens[i].saturating_sub(1);
        if self.ended[i] && self.tokens[i] == 0 {
            self.ended[i] = false;
            self.add(buf.id);
            true
        } else {
            false
        }
    }

    /// The bytes `buf` stands for.
    pub(super) fn bytes_mut(&mut self, buf: &ProvidedBuf) -> &mut [u8] {
        let len = buf.len.min(self.size - buf.offset);
        // SAFETY: the token exists only for bytes a completion handed over,
        // in a buffer that cannot go back to the ring while the token
        // exists (`give_back` adds a buffer back only once the kernel has
        // ended it and its last token has come back), so the kernel will
        // not write them (consuming a buffer incrementally, it writes only
        // past the bytes it has handed over). The token (not Clone) lets one caller
        // at a time hold this slice, and two tokens of one buffer cover
        // bytes that do not overlap (`received` puts each after the last).
        // `id` < `count` and `offset` + `len` <= `size` keep it inside
        // `memory`.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.memory
                    .as_ptr()
                    .add(usize::from(buf.id) * self.size + buf.offset),
                len,
            )
        }
    }

    /// The kernel may still hold the memory: never free it.
    pub(super) fn leak(&mut self) {
        self.leaked = true;
    }
}

impl Drop for ProvidedBuffers {
    fn drop(&mut self) {
        if self.leaked {
            return;
        }
        // SAFETY: allocated in `new` with these layouts; the Ring unregistered
        // the buffer ring, or found nothing in flight, before dropping this
        // (or registering it failed, and the kernel never held it).
        unsafe {
            alloc::dealloc(self.entries.as_ptr().cast(), self.entries_layout);
            alloc::dealloc(self.memory.as_ptr(), self.memory_layout);
        }
    }
}

/// Allocates the provided buffers and registers them with the ring:
/// `size.buffers` of `size.buffer_size`, consumed incrementally if
/// `size.incremental` and the kernel can keep them within the bound;
/// otherwise the same memory as whole buffers of [`WHOLE_BUFFER_SIZE`].
/// Returns them with their description, for the start-up log.
///
/// Incremental consumption needs Linux 6.12 (before, registering with the
/// flag fails with `EINVAL`), and the proactor asks for more: the recv's
/// byte limit (6.16), which is what keeps a connection within
/// `--max-pending`. Without the limit only the cancel stops a recv, and
/// until it lands each completion can carry a 64 KiB buffer's worth where
/// a whole buffer carries 4 KiB: a peer that never reads could make the
/// server hold megabytes (`docs/proactor.md`, "Backpressure"). So before
/// 6.16 the ring keeps whole 4 KiB buffers.
pub(super) fn provide(uring: &IoUring, size: RingSize) -> io::Result<(ProvidedBuffers, String)> {
    let describe = |provided: &ProvidedBuffers, how: &str| {
        format!(
            "{} provided buffers of {} KiB, {how}",
            provided.count(),
            provided.size() / 1024
        )
    };
    if !size.incremental {
        let provided = ProvidedBuffers::new(size.buffers, size.buffer_size, false)?;
        register(uring, &provided, 0)?;
        let d = describe(&provided, "whole");
        return Ok((provided, d));
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let why_whole = if has_recv_byte_limit(&release) {
        let provided = ProvidedBuffers::new(size.buffers, size.buffer_size, true)?;
        match register(uring, &provided, IOU_PBUF_RING_INC) {
            Ok(()) => {
                let d = describe(&provided, "consumed incrementally");
                return Ok((provided, d));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                "whole (this kernel cannot consume buffers incrementally: Linux 6.12)"
            }
            Err(e) => return Err(e),
        }
    } else {
        "whole (this kernel has no recv byte limit, Linux 6.16, which keeps large buffers within --max-pending)"
    };
    let bytes = u64::from(size.buffers) * u64::from(size.buffer_size);
    // The most whole buffers the same memory holds, a power of two (the
    // ring's size must be one) and at most 32,768.
    let whole = (bytes / u64::from(WHOLE_BUFFER_SIZE)).clamp(1, 32_768);
    let count = u16::try_from(1u64 << whole.ilog2()).unwrap_or(32_768);
    let provided = ProvidedBuffers::new(count, WHOLE_BUFFER_SIZE, false)?;
    register(uring, &provided, 0)?;
    let d = describe(&provided, why_whole);
    Ok((provided, d))
}

/// Whether a kernel release (`/proc/sys/kernel/osrelease`, such as
/// `6.18.44-generic`) is Linux 6.16 or later, the first with a byte limit
/// on a multishot recv. An unreadable release counts as older.
pub(super) fn has_recv_byte_limit(release: &str) -> bool {
    let mut numbers = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (6, 16),
        _ => false,
    }
}

/// Registers `provided` as the ring's buffer group with `flags`.
fn register(uring: &IoUring, provided: &ProvidedBuffers, flags: u16) -> io::Result<()> {
    // SAFETY: the entries array is page-aligned memory of `provided.count()`
    // entries that `provided` owns and frees only after the buffer ring is
    // unregistered (ProvidedBuffers::drop runs after the ring is gone; see
    // Drop); if registering fails, the kernel holds nothing.
    unsafe {
        uring.submitter().register_buf_ring_with_flags(
            provided.entries.as_ptr() as u64,
            provided.count(),
            BUFFER_GROUP,
            flags,
        )
    }
}
