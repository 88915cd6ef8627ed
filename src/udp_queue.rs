//! UDP replies that cannot go out at once, in a queue with a bound.
//!
//! A reactor's `send_to` can find the socket's send buffer full; a
//! proactor has one reply in flight at a time. Either way the replies
//! behind wait here, in order, and the queue has a bound in datagrams and
//! in bytes ([`MAX_QUEUED_DATAGRAMS`], [`MAX_QUEUED_BYTES`]): past it a reply
//! is dropped and counted (`udp_dropped`), because UDP promises no delivery
//! and a flood must not grow the server's memory without limit. The first
//! drop of each overflow is logged once; the warning is re-armed once the
//! queue has emptied.

use std::collections::VecDeque;
use std::net::SocketAddr;

use log::warn;

use crate::stats::Stats;

/// Replies waiting to be sent, at most.
pub const MAX_QUEUED_DATAGRAMS: usize = 1024;
/// Bytes of queued replies, at most.
pub const MAX_QUEUED_BYTES: usize = 4 << 20;

/// Replies waiting, each with its destination, and their bytes in all.
#[derive(Debug)]
pub struct ReplyQueue<B> {
    replies: VecDeque<(SocketAddr, B)>,
    bytes: usize,
    has_warned: bool,
}

impl<B> Default for ReplyQueue<B> {
    fn default() -> Self {
        ReplyQueue {
            replies: VecDeque::new(),
            bytes: 0,
            has_warned: false,
        }
    }
}

impl<B: AsRef<[u8]>> ReplyQueue<B> {
    /// Whether a reply of `len` bytes fits under the bound; if not, it is
    /// counted as dropped (and the first such drop logged).
    pub fn has_room(&mut self, len: usize, stats: &mut Stats) -> bool {
        if self.replies.len() < MAX_QUEUED_DATAGRAMS && self.bytes + len <= MAX_QUEUED_BYTES {
            return true;
        }
        stats.udp_dropped += 1;
        if !self.has_warned {
            self.has_warned = true;
            warn!(
                "udp reply queue full ({} replies, {} bytes): dropping replies",
                self.replies.len(),
                self.bytes
            );
        }
        false
    }

    /// Queues a reply (after [`ReplyQueue::has_room`]).
    pub fn push(&mut self, to: SocketAddr, reply: B) {
        self.bytes += reply.as_ref().len();
        self.replies.push_back((to, reply));
    }

    /// The oldest reply, without taking it.
    pub fn front(&self) -> Option<&(SocketAddr, B)> {
        self.replies.front()
    }

    /// Takes the oldest reply (sent, or given up). Once the queue is empty
    /// a later overflow is warned about again.
    pub fn pop(&mut self) -> Option<(SocketAddr, B)> {
        let reply = self.replies.pop_front();
        if let Some((_, bytes)) = &reply {
            self.bytes -= bytes.as_ref().len();
        }
        if self.replies.is_empty() {
            self.has_warned = false;
        }
        reply
    }

    /// Whether no reply waits.
    pub fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_drops_and_counts_and_order_is_kept() {
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut queue: ReplyQueue<Vec<u8>> = ReplyQueue::default();
        let mut stats = Stats::default();
        for i in 0..MAX_QUEUED_DATAGRAMS {
            assert!(queue.has_room(1, &mut stats));
            queue.push(to, vec![i as u8]);
        }
        assert!(!queue.has_room(1, &mut stats), "one datagram too many");
        assert_eq!(stats.udp_dropped, 1);
        assert_eq!(queue.pop().map(|(_, b)| b), Some(vec![0]));
        assert!(queue.has_room(1, &mut stats));
        assert!(
            !queue.has_room(MAX_QUEUED_BYTES, &mut stats),
            "too many bytes"
        );
    }
}
