//! The ring: io_uring's two queues, the provided buffers, and every buffer
//! lent to the kernel. The one module of the crate that uses `unsafe`.
//!
//! # Why `unsafe` lives here, and only here
//! A readiness server never lends memory: `recv(fd, buf)` borrows `buf` for
//! the length of one call, and Rust's borrow checker sees the whole story. A
//! completion server hands the kernel a pointer and *returns*; the kernel
//! writes into it (recv) or reads from it (send) later, while the program
//! runs on. No borrow can express "until a completion arrives", so the
//! interface is `unsafe`: pushing an entry that points at memory is a
//! promise that the memory stays valid, and is not touched, until that
//! entry's last completion has been reaped.
//!
//! This module keeps that promise by owning every such buffer itself, so
//! that nothing outside it can break it, and exposes a safe surface:
//!
//! * **Sends** ([`Ring::send`], [`Ring::send_to`]) take the buffer *by
//!   value*: the `Vec` moves into the ring's table of lent buffers and comes
//!   back inside its completion ([`Outcome::Sent`], [`Outcome::SentTo`]).
//!   While it is lent, no one else has it.
//! * **Receives** pick a buffer from the **provided buffer ring**: memory
//!   this module allocates once and registers with the kernel, which takes a
//!   buffer only when data arrives (an idle connection holds none). A
//!   completion that used one carries a [`ProvidedBuf`], a token that is not
//!   `Clone`: holding it is the proof that the kernel has given that buffer
//!   up, so [`Ring::bytes_mut`] can hand out its bytes safely, until the
//!   token goes back with [`Ring::recycle`].
//! * **Accepted descriptors** come back as [`OwnedFd`]s, made once, here,
//!   from the number the kernel returned.
//! * The UDP socket's one `recvmsg` writes into a header, an address and a
//!   64 KiB buffer this module owns; [`Ring::datagram_mut`] hands the bytes
//!   out only while no `recvmsg` is in flight.
//!
//! What the ring cannot know is *when* the kernel is done with memory it
//! holds an entry for: only a completion says so. So the ring counts the
//! operations in flight (a multishot operation counts until its final
//! completion, the one without `IORING_CQE_F_MORE`), and on drop frees its
//! buffers only if that count is zero after a last cancel-everything;
//! otherwise it leaks them on purpose, because freeing memory the kernel may
//! still write is the one mistake a completion server must never make.

// The crate denies `unsafe`; this module is the exception the design card
// allows (a kernel interface that lends memory), and every block says why
// it is sound in a `SAFETY:` comment.
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use log::warn;

use super::user_data::{Op, UserData};

/// The buffer group of the provided buffer ring (the only one).
const BUFFER_GROUP: u16 = 0;

/// How the ring is sized.
#[derive(Debug, Clone, Copy)]
pub struct RingSize {
    /// Submission queue entries (the most one turn can submit without an
    /// extra `io_uring_enter`).
    pub submissions: u32,
    /// Completion queue entries (the kernel keeps overflow aside beyond it,
    /// `IORING_FEAT_NODROP`, but a full queue costs an extra trip).
    pub completions: u32,
    /// Provided buffers: a power of two, at most 32,768.
    pub buffers: u16,
    /// Bytes per provided buffer.
    pub buffer_size: u32,
}

/// What the ring has done, for the stats line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RingCounters {
    /// `io_uring_enter` calls (each submits what is queued, and the loop's
    /// waits for completions).
    pub enters: u64,
    /// Entries submitted.
    pub submissions: u64,
    /// Completions reaped.
    pub completions: u64,
}

/// The ring and everything lent to the kernel through it.
pub struct Ring {
    uring: IoUring,
    provided: ProvidedBuffers,
    /// Send buffers lent to the kernel, by connection slot: at most one
    /// each, because a connection has at most one send in flight.
    lent: Vec<Option<Vec<u8>>>,
    /// The UDP socket's receive (header, address, buffer) and its one reply
    /// in flight.
    udp: Box<UdpMessage>,
    udp_reply: Option<(Vec<u8>, Box<socket2::SockAddr>)>,
    /// Operations whose final completion has not been reaped.
    in_flight: usize,
    /// The completion queue's entries of one reap, copied out.
    reaped: Vec<cqueue::Entry>,
    counters: RingCounters,
    /// The setup flags the kernel accepted, for the start-up log.
    setup: &'static str,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("setup", &self.setup)
            .field("in_flight", &self.in_flight)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// One reaped completion: whose operation it was, how it went, and whether
/// the operation goes on (a multishot operation's completions say
/// `more` until its last).
#[derive(Debug)]
pub struct Completion {
    /// The operation's token.
    pub user_data: UserData,
    /// Its result, with whatever the kernel hands back.
    pub outcome: Outcome,
    /// `IORING_CQE_F_MORE`: a multishot operation is still armed.
    pub more: bool,
}

/// What a completion hands back.
#[derive(Debug)]
pub enum Outcome {
    /// A multishot accept's new connection.
    Accepted(OwnedFd),
    /// A recv filled a provided buffer (its length may be 0 at end of
    /// stream). The token must go back with [`Ring::recycle`].
    Received(ProvidedBuf),
    /// A send finished: how many bytes the kernel took (or why none), and
    /// the buffer that was lent, back in the caller's hands.
    Sent {
        /// Bytes sent, or the error.
        result: io::Result<usize>,
        /// The buffer lent with [`Ring::send`].
        buf: Vec<u8>,
    },
    /// The UDP `recvmsg` finished: a datagram of `len` bytes from `from`
    /// (read it with [`Ring::datagram_mut`]).
    Datagram {
        /// Its length.
        len: usize,
        /// Its sender.
        from: SocketAddr,
    },
    /// A UDP reply finished, with the buffer lent with [`Ring::send_to`].
    SentTo {
        /// Bytes sent, or the error.
        result: io::Result<usize>,
        /// The reply's buffer, back.
        buf: Vec<u8>,
    },
    /// Any other success (a recv of 0 bytes with no buffer, a cancel, a
    /// poll), with the kernel's result.
    Done(i32),
    /// The operation failed.
    Failed(io::Error),
}

/// A provided buffer the kernel has filled and given up: the proof of
/// ownership that [`Ring::bytes_mut`] asks for. Not `Clone`; it goes back
/// with [`Ring::recycle`] (dropping it instead only loses the buffer).
#[derive(Debug)]
pub struct ProvidedBuf {
    id: u16,
    len: usize,
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

impl Ring {
    /// A ring with one issuer and deferred task work where the kernel has
    /// them (6.1+), a provided buffer ring, and nothing in flight.
    ///
    /// # Errors
    /// If io_uring is unavailable (an old kernel, `kernel.io_uring_disabled`,
    /// a seccomp profile), or lacks what the proactor needs.
    pub fn new(size: RingSize) -> io::Result<Ring> {
        // SINGLE_ISSUER: only this thread submits, so the kernel can skip
        // locking. DEFER_TASKRUN: the kernel completes our operations only
        // when we ask for completions (in `io_uring_enter`), not by
        // interrupting us: completions arrive in batches, at one place.
        let (uring, setup) = match IoUring::builder()
            .setup_cqsize(size.completions)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(size.submissions)
        {
            Ok(uring) => (uring, "single issuer, deferred task work"),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (
                IoUring::builder()
                    .setup_cqsize(size.completions)
                    .build(size.submissions)?,
                "plain (no single issuer or deferred task work on this kernel)",
            ),
            Err(e) => return Err(e),
        };
        if !uring.params().is_feature_ext_arg() {
            return Err(io::Error::other(
                "this kernel's io_uring cannot wait with a timeout (IORING_FEAT_EXT_ARG, 5.11+)",
            ));
        }
        let provided = ProvidedBuffers::new(size.buffers, size.buffer_size)?;
        // SAFETY: the entries array is page-aligned memory of `buffers`
        // entries that `provided` owns and frees only after unregistering
        // it (ProvidedBuffers::drop runs after the ring is gone; see Drop).
        unsafe {
            uring.submitter().register_buf_ring_with_flags(
                provided.entries.as_ptr() as u64,
                size.buffers,
                BUFFER_GROUP,
                0,
            )?;
        }
        let mut ring = Ring {
            uring,
            provided,
            lent: Vec::new(),
            udp: UdpMessage::new(),
            udp_reply: None,
            in_flight: 0,
            reaped: Vec::new(),
            counters: RingCounters::default(),
            setup,
        };
        for id in 0..size.buffers {
            ring.provided.add(id);
        }
        ring.provided.publish();
        Ok(ring)
    }

    /// The setup flags the kernel accepted, in words.
    pub fn setup(&self) -> &'static str {
        self.setup
    }

    /// What the ring has done so far.
    pub fn counters(&self) -> RingCounters {
        self.counters
    }

    /// Operations whose final completion has not arrived.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Queues an entry, submitting what is queued first if the queue is full.
    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry is built by a method of this module, and
            // each points only at memory the Ring owns and keeps, unmoved and
            // untouched, until the entry's final completion is reaped: the
            // provided buffers (`ProvidedBuffers`), a lent send buffer
            // (`lent`, `udp_reply`), or the UDP receive (`udp`). Entries that
            // point at nothing (accept, multishot recv, cancel, poll) need
            // nothing. Each method says which it is.
            let pushed = unsafe { self.uring.submission().push(entry) };
            if pushed.is_ok() {
                self.in_flight += 1;
                self.counters.submissions += 1;
                return Ok(());
            }
            // Full: hand the queue to the kernel and make room.
            self.counters.enters += 1;
            self.uring.submit()?;
        }
    }

    /// Arms a multishot accept on `listener`: one completion per connection
    /// until it fails or is cancelled. Points at no memory (the peer's
    /// address is not asked for).
    ///
    /// # Errors
    /// If the queue cannot be submitted.
    pub fn accept_multishot(&mut self, listener: RawFd, token: UserData) -> io::Result<()> {
        let entry = opcode::AcceptMulti::new(types::Fd(listener))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(token.raw());
        self.push(&entry)
    }

    /// Arms a multishot recv on `fd`: each completion brings the bytes in a
    /// provided buffer the kernel picked when they arrived. Points at no
    /// memory of ours until then (the kernel takes buffers from the
    /// provided ring, which the Ring owns).
    ///
    /// With `limit`, the kernel ends the recv (a completion without
    /// `F_MORE`) once it has delivered that many bytes since it was armed
    /// (the multishot byte limit in `sqe->optlen`, Linux 6.16+): how the
    /// proactor bounds what one connection can make it owe. Where the kernel
    /// lacks it, the recv fails with `EINVAL` and is armed again without.
    ///
    /// # Errors
    /// If the queue cannot be submitted.
    pub fn recv_multishot(
        &mut self,
        fd: RawFd,
        token: UserData,
        limit: Option<u32>,
    ) -> io::Result<()> {
        let mut entry = opcode::RecvMulti::new(types::Fd(fd), BUFFER_GROUP)
            .build()
            .user_data(token.raw());
        if let Some(limit) = limit {
            set_optlen(&mut entry, limit);
        }
        self.push(&entry)
    }

    /// Sends `buf[start..]` on `fd`, lending `buf` to the kernel: it comes
    /// back in the completion ([`Outcome::Sent`]). `slot` has no other send
    /// in flight.
    ///
    /// # Errors
    /// If the queue cannot be submitted.
    pub fn send(
        &mut self,
        fd: RawFd,
        token: UserData,
        buf: Vec<u8>,
        start: usize,
    ) -> io::Result<()> {
        let slot = token.slot();
        if self.lent.len() <= slot {
            self.lent.resize_with(slot + 1, || None);
        }
        debug_assert!(
            self.lent[slot].is_none(),
            "two sends in flight on slot {slot}"
        );
        let rest = &buf[start.min(buf.len())..];
        let (ptr, len) = (rest.as_ptr(), rest.len() as u32);
        // The pointer is into the Vec's heap block, which does not move when
        // the Vec moves into the table, and is not touched until the
        // completion takes the Vec back out.
        self.lent[slot] = Some(buf);
        let entry = opcode::Send::new(types::Fd(fd), ptr, len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(token.raw());
        self.push(&entry)
    }

    /// Asks the kernel to cancel the operation `target`; the cancel's own
    /// completion comes as `token`, the target's as `-ECANCELED` (or its
    /// result, if it finished first). Points at no memory.
    ///
    /// # Errors
    /// If the queue cannot be submitted.
    pub fn cancel(&mut self, target: UserData, token: UserData) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(target.raw())
            .build()
            .user_data(token.raw());
        self.push(&entry)
    }

    /// Asks the kernel to cancel every operation on `fd`. Points at no memory.
    ///
    /// # Errors
    /// If the queue cannot be submitted.
    pub fn cancel_all_on(&mut self, fd: RawFd, token: UserData) -> io::Result<()> {
        let entry = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
            .build()
            .user_data(token.raw());
        self.push(&entry)
    }

    /// Arms a multishot poll for input on `fd` (the signal pipe). Points at
    /// no memory.
    ///
    /// # Errors
    /// If the queue cannot be submitted.
    pub fn poll_readable(&mut self, fd: RawFd, token: UserData) -> io::Result<()> {
        let entry = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(token.raw());
        self.push(&entry)
    }

    /// Receives one datagram on the UDP socket `fd` into the Ring's own
    /// header, address and 64 KiB buffer (`udp`), which stay put in their
    /// box until the completion ([`Outcome::Datagram`]).
    ///
    /// # Errors
    /// If a receive is already in flight, or the queue cannot be submitted.
    pub fn recv_datagram(&mut self, fd: RawFd, token: UserData) -> io::Result<()> {
        if self.udp.in_flight {
            return Err(io::Error::other("a UDP receive is already in flight"));
        }
        let header = self.udp.prepare();
        let entry = opcode::RecvMsg::new(types::Fd(fd), header)
            .build()
            .user_data(token.raw());
        self.udp.in_flight = true;
        self.push(&entry)
    }

    /// The datagram the last [`Outcome::Datagram`] reported, to read or
    /// convert in place; `None` while a receive is in flight (the kernel
    /// owns the buffer then).
    pub fn datagram_mut(&mut self, len: usize) -> Option<&mut [u8]> {
        if self.udp.in_flight {
            return None;
        }
        let len = len.min(self.udp.data.len());
        Some(&mut self.udp.data[..len])
    }

    /// Sends one UDP reply to `to`, lending `buf` and the address to the
    /// kernel until the completion ([`Outcome::SentTo`]).
    ///
    /// # Errors
    /// If a reply is already in flight, or the queue cannot be submitted.
    pub fn send_to(
        &mut self,
        fd: RawFd,
        token: UserData,
        buf: Vec<u8>,
        to: SocketAddr,
    ) -> io::Result<()> {
        if self.udp_reply.is_some() {
            return Err(io::Error::other("a UDP reply is already in flight"));
        }
        let to = Box::new(socket2::SockAddr::from(to));
        let entry = opcode::Send::new(types::Fd(fd), buf.as_ptr(), buf.len() as u32)
            .dest_addr(to.as_ptr().cast())
            .dest_addr_len(to.len())
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(token.raw());
        // Both the buffer's heap block and the boxed address stay where
        // they are while the pair sits in `udp_reply`.
        self.udp_reply = Some((buf, to));
        self.push(&entry)
    }

    /// The bytes of a provided buffer the kernel has given up (the token
    /// proves it), to read or convert in place.
    pub fn bytes_mut(&mut self, buf: &ProvidedBuf) -> &mut [u8] {
        self.provided.bytes_mut(buf)
    }

    /// Gives a provided buffer back to the kernel.
    pub fn recycle(&mut self, buf: ProvidedBuf) {
        self.provided.add(buf.id);
        self.provided.publish();
    }

    /// Submits what is queued and waits, in one `io_uring_enter`, until at
    /// least one completion is ready or `timeout` passes (`None`: no limit).
    ///
    /// # Errors
    /// If `io_uring_enter` fails for another reason than the timeout, a
    /// signal, or a full completion queue (which only means: reap first).
    pub fn submit_and_wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.counters.enters += 1;
        let result = match timeout {
            Some(limit) => {
                let ts = types::Timespec::from(limit);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.uring.submitter().submit_with_args(1, &args)
            }
            None => self.uring.submit_and_wait(1),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Moves every ready completion into `into`, decoded.
    pub fn reap(&mut self, into: &mut Vec<Completion>) {
        // Copied out first (16 bytes each, into a buffer kept for reuse):
        // decoding needs the Ring itself, which the queue's view borrows.
        let mut raw = std::mem::take(&mut self.reaped);
        raw.extend(self.uring.completion());
        into.reserve(raw.len());
        for cqe in raw.drain(..) {
            into.push(self.decode(&cqe));
        }
        self.reaped = raw;
    }

    /// One completion queue entry, decoded by the operation it reports.
    fn decode(&mut self, cqe: &cqueue::Entry) -> Completion {
        self.counters.completions += 1;
        let user_data = UserData::from_raw(cqe.user_data());
        let more = cqueue::more(cqe.flags());
        if !more {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        let res = cqe.result();
        let outcome = match user_data.op() {
            Some(Op::Accept) if res >= 0 => {
                // SAFETY: the kernel created this descriptor for us with this
                // completion, and it is wrapped exactly once, here.
                Outcome::Accepted(unsafe { OwnedFd::from_raw_fd(res as RawFd) })
            }
            Some(Op::Recv) => match cqueue::buffer_select(cqe.flags()) {
                Some(id) => Outcome::Received(ProvidedBuf {
                    id,
                    len: res.max(0) as usize,
                }),
                None => result_of(res),
            },
            Some(Op::Send) => {
                let buf = self
                    .lent
                    .get_mut(user_data.slot())
                    .and_then(Option::take)
                    .unwrap_or_default();
                Outcome::Sent {
                    result: bytes_or_error(res),
                    buf,
                }
            }
            Some(Op::UdpRecv) => {
                self.udp.in_flight = false;
                match (res >= 0).then(|| self.udp.sender()).flatten() {
                    Some(from) => Outcome::Datagram {
                        len: res as usize,
                        from,
                    },
                    None => result_of(res.min(-libc::EAFNOSUPPORT)),
                }
            }
            Some(Op::UdpSend) => {
                let buf = self
                    .udp_reply
                    .take()
                    .map(|(buf, _)| buf)
                    .unwrap_or_default();
                Outcome::SentTo {
                    result: bytes_or_error(res),
                    buf,
                }
            }
            _ => result_of(res),
        };
        Completion {
            user_data,
            outcome,
            more,
        }
    }
}

/// Where `optlen` sits in a submission queue entry: bytes 44 to 47 of the
/// kernel's 64-byte `struct io_uring_sqe` (the union of `splice_fd_in`,
/// `file_index`, `optlen` and `addr_len`; `include/uapi/linux/io_uring.h`).
const SQE_OPTLEN_OFFSET: usize = 44;
const _: () = assert!(std::mem::size_of::<squeue::Entry>() == 64);

/// Sets the entry's `optlen`, which the io-uring crate's `RecvMulti` does
/// not expose.
fn set_optlen(entry: &mut squeue::Entry, optlen: u32) {
    // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's 64-byte
    // SQE (its size is asserted above), so the entry's bytes are the SQE's,
    // and a u32 at offset 44 is its `optlen` field; the write is in bounds
    // and unaligned-safe.
    unsafe {
        let sqe = std::ptr::from_mut(entry).cast::<u8>();
        sqe.add(SQE_OPTLEN_OFFSET)
            .cast::<u32>()
            .write_unaligned(optlen);
    }
}

/// A kernel result as [`Outcome::Done`] or [`Outcome::Failed`].
fn result_of(res: i32) -> Outcome {
    if res >= 0 {
        Outcome::Done(res)
    } else {
        Outcome::Failed(io::Error::from_raw_os_error(-res))
    }
}

/// A send's result: bytes taken, or the error.
fn bytes_or_error(res: i32) -> io::Result<usize> {
    if res >= 0 {
        Ok(res as usize)
    } else {
        Err(io::Error::from_raw_os_error(-res))
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Ask the kernel to cancel whatever is still in flight and wait a
        // little for the last completions: only then may the memory go.
        if self.in_flight > 0 {
            let any = opcode::AsyncCancel2::new(types::CancelBuilder::any())
                .build()
                .user_data(0);
            if self.push(&any).is_ok() {
                let deadline = Instant::now() + Duration::from_millis(500);
                let mut batch = Vec::new();
                while self.in_flight > 0 && Instant::now() < deadline {
                    if self
                        .submit_and_wait(Some(Duration::from_millis(50)))
                        .is_err()
                    {
                        break;
                    }
                    batch.clear();
                    self.reap(&mut batch);
                }
            }
        }
        if self.in_flight > 0 {
            warn!(
                "{} io_uring operations still in flight at exit; their buffers are leaked, not freed under the kernel",
                self.in_flight
            );
            self.provided.leak();
            std::mem::forget(std::mem::take(&mut self.lent));
            std::mem::forget(self.udp_reply.take());
            std::mem::forget(std::mem::replace(&mut self.udp, UdpMessage::new()));
        } else if let Err(e) = self.uring.submitter().unregister_buf_ring(BUFFER_GROUP) {
            // Unregistered or not, the ring's memory is unpinned when the
            // ring's descriptor closes, right after this.
            log::debug!("unregistering the provided buffers failed: {e}");
        }
    }
}

/// The provided buffer ring: an array of entries the kernel takes buffers
/// from (its head) and this module gives them back to (its tail), and the
/// buffers themselves, in one block.
struct ProvidedBuffers {
    /// The entries: page-aligned, `count` of them; entry 0's last two bytes
    /// double as the ring's tail (`BufRingEntry::tail`).
    entries: NonNull<types::BufRingEntry>,
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
}

impl ProvidedBuffers {
    fn new(count: u16, size: u32) -> io::Result<ProvidedBuffers> {
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
        })
    }

    /// Puts buffer `id` at the tail (not yet visible to the kernel).
    fn add(&mut self, id: u16) {
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
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the entries added so far visible to the kernel: a release
    /// store of the tail, so the kernel never sees the tail before the
    /// entries it covers.
    fn publish(&self) {
        // SAFETY: `entries` is the ring's base; the tail is a u16 inside
        // entry 0 that the kernel only reads, and this store is the only
        // write to it.
        unsafe {
            let tail = types::BufRingEntry::tail(self.entries.as_ptr()).cast_mut();
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }

    fn bytes_mut(&mut self, buf: &ProvidedBuf) -> &mut [u8] {
        let len = buf.len.min(self.size);
        // SAFETY: the token exists only for a buffer a completion handed
        // over and that has not been added back, so the kernel will not
        // write it, and the token (not Clone) lets one caller at a time
        // hold this slice; `id` < `count` keeps it inside `memory`.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.memory.as_ptr().add(usize::from(buf.id) * self.size),
                len,
            )
        }
    }

    /// The kernel may still hold the memory: never free it.
    fn leak(&mut self) {
        self.leaked = true;
    }
}

impl Drop for ProvidedBuffers {
    fn drop(&mut self) {
        if self.leaked {
            return;
        }
        // SAFETY: allocated in `new` with these layouts; the Ring unregistered
        // the buffer ring, or found nothing in flight, before dropping this.
        unsafe {
            alloc::dealloc(self.entries.as_ptr().cast(), self.entries_layout);
            alloc::dealloc(self.memory.as_ptr(), self.memory_layout);
        }
    }
}

/// What one `recvmsg` needs, boxed so that the pointers between its parts
/// stay valid while the kernel holds them.
struct UdpMessage {
    header: libc::msghdr,
    iov: libc::iovec,
    from: libc::sockaddr_storage,
    data: Box<[u8]>,
    in_flight: bool,
}

impl UdpMessage {
    fn new() -> Box<UdpMessage> {
        Box::new(UdpMessage {
            // SAFETY: msghdr, iovec and sockaddr_storage are plain C structs
            // for which all zeroes is a valid (empty) value.
            header: unsafe { std::mem::zeroed() },
            iov: unsafe { std::mem::zeroed() },
            from: unsafe { std::mem::zeroed() },
            // The largest datagram: 65,507 bytes over IPv4, 65,527 over IPv6.
            data: vec![0; 64 * 1024].into_boxed_slice(),
            in_flight: false,
        })
    }

    /// Points the header at this box's own parts, for the kernel.
    fn prepare(&mut self) -> *mut libc::msghdr {
        self.iov.iov_base = self.data.as_mut_ptr().cast();
        self.iov.iov_len = self.data.len();
        self.header.msg_name = std::ptr::addr_of_mut!(self.from).cast();
        self.header.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        self.header.msg_iov = std::ptr::addr_of_mut!(self.iov);
        self.header.msg_iovlen = 1;
        self.header.msg_control = std::ptr::null_mut();
        self.header.msg_controllen = 0;
        self.header.msg_flags = 0;
        std::ptr::addr_of_mut!(self.header)
    }

    /// The sender the kernel wrote into the header's address.
    fn sender(&self) -> Option<SocketAddr> {
        match i32::from(self.from.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in here (family says
                // so), and sockaddr_storage is large and aligned enough.
                let a = unsafe { &*std::ptr::addr_of!(self.from).cast::<libc::sockaddr_in>() };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for a sockaddr_in6.
                let a = unsafe { &*std::ptr::addr_of!(self.from).cast::<libc::sockaddr_in6>() };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}
