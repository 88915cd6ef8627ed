//! The ring: io_uring's two queues, the provided buffers, and every buffer
//! lent to the kernel. The one module of the crate that uses `unsafe`
//! (with its parts: `provided.rs`, the provided buffer ring, and
//! `udp_message.rs`, the UDP receive's header and buffer; `completion.rs`,
//! what a decoded completion says, has none).
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
//! * **Receives** take bytes from the **provided buffer ring**: memory
//!   this module allocates once and registers with the kernel, which takes
//!   from it only when data arrives (an idle connection holds none), a
//!   buffer at a time or, consumed incrementally, only the bytes a recv
//!   delivers. A completion that used one carries a [`ProvidedBuf`], a
//!   token that is not `Clone`: holding it is the proof that the kernel is
//!   done with those bytes, so [`Ring::bytes_mut`] can hand them out
//!   safely, until the token goes back with [`Ring::recycle`] (which gives
//!   the buffer back to the kernel once the kernel has ended it and its
//!   last token is back).
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

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use log::warn;

use super::user_data::{Op, UserData};

mod completion;
mod provided;
#[cfg(test)]
mod tests;
mod udp_message;

pub use completion::{Completion, Outcome};
use completion::{bytes_or_error, result_of};
pub use provided::{ProvidedBuf, WHOLE_BUFFER_SIZE};
use provided::{ProvidedBuffers, provide};
use udp_message::UdpMessage;

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
    /// Whether the kernel is asked to consume each buffer incrementally
    /// (`IOU_PBUF_RING_INC`, Linux 6.12): a recv takes only the bytes it
    /// delivers and leaves the rest of the buffer for the next, so a few
    /// large buffers serve many small messages and a bulk recv fills up to
    /// a whole one. Where the kernel cannot (before 6.12) or has no recv
    /// byte limit to keep such buffers within the bound (before 6.16), the
    /// same memory is cut into whole buffers of [`WHOLE_BUFFER_SIZE`], each
    /// taken by one recv whatever it delivers (see `provided::provide`).
    pub incremental: bool,
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
    /// How the provided buffers are cut and consumed, for the start-up log.
    buffers: String,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("setup", &self.setup)
            .field("buffers", &self.buffers)
            .field("in_flight", &self.in_flight)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
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
        let (provided, buffers) = provide(&uring, size)?;
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
            buffers,
        };
        for id in 0..ring.provided.count() {
            ring.provided.add(id);
        }
        ring.provided.publish();
        Ok(ring)
    }

    /// The setup flags the kernel accepted, in words.
    pub fn setup(&self) -> &'static str {
        self.setup
    }

    /// The provided buffers, in words: how many, how large, and whether
    /// the kernel consumes them incrementally.
    pub fn buffers(&self) -> &str {
        &self.buffers
    }

    /// Whether the kernel consumes the provided buffers incrementally.
    pub fn incremental(&self) -> bool {
        self.provided.incremental()
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
        // A buffer goes back only once the kernel has ended it and no token
        // of its bytes is left (`ProvidedBuffers::give_back`).
        if self.provided.give_back(buf) {
            self.provided.publish();
        }
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
                Some(id) => Outcome::Received(self.provided.received(
                    id,
                    res.max(0) as usize,
                    cqueue::buffer_more(cqe.flags()),
                )),
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
