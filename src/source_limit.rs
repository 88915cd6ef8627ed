//! TCP connections per source address: `--max-per-source N`.
//!
//! Without it one address can open every connection the server allows
//! (`--max-connections`, the descriptors) and hold them, silent, until the
//! idle timeout; with it that address gets N and the rest of the world the
//! remainder. A connection past the share is accepted and closed at once,
//! counted `rejected_source`, exactly as one past `--max-connections` is
//! (accepted so that the client is not left hanging in the backlog).
//!
//! The count is by address, not prefix: a TCP connection's source cannot be
//! forged without seeing the handshake, so unlike UDP's replies, one
//! address is one real peer (or one NAT).
//!
//! The server must remember, for each connection it admitted, which
//! address to give the share back to when it closes: the peer may have
//! reset, and then the socket cannot tell. A connection's own state is kept
//! small on purpose (24 bytes in the reactor), so this table keeps the
//! address beside it, by the connection's id (its slot), and only while the
//! guard is on.

use std::collections::HashMap;
use std::net::IpAddr;

/// Connections held per source address, and which address each holds.
#[derive(Debug, Default)]
pub struct SourceLimit {
    max: u32,
    held: HashMap<IpAddr, u32>,
    by_id: HashMap<usize, IpAddr>,
}

impl SourceLimit {
    /// At most `max` connections per address.
    pub fn new(max: u32) -> SourceLimit {
        SourceLimit {
            max,
            ..SourceLimit::default()
        }
    }

    /// Admits connection `id` from `source` if that address holds fewer than
    /// its share; whether it did.
    pub fn admit(&mut self, id: usize, source: IpAddr) -> bool {
        let held = self.held.entry(source).or_insert(0);
        if *held >= self.max {
            return false;
        }
        *held += 1;
        self.by_id.insert(id, source);
        true
    }

    /// Connection `id` has closed: its address's share is back (nothing if
    /// it was never admitted).
    pub fn release(&mut self, id: usize) {
        let Some(source) = self.by_id.remove(&id) else {
            return;
        };
        if let Some(held) = self.held.get_mut(&source) {
            *held -= 1;
            if *held == 0 {
                self.held.remove(&source);
            }
        }
    }

    /// Addresses holding at least one connection.
    pub fn sources(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_share_and_gets_it_back() {
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        let mut limit = SourceLimit::new(2);
        assert!(limit.admit(1, a));
        assert!(limit.admit(2, a));
        assert!(!limit.admit(3, a), "a third from the same address");
        assert!(limit.admit(4, b), "another address is not affected");
        limit.release(1);
        assert!(limit.admit(5, a), "a share given back is taken again");
        limit.release(3); // never admitted: nothing to give back
        assert!(!limit.admit(6, a));
        for id in [2, 4, 5] {
            limit.release(id);
        }
        assert_eq!(limit.sources(), 0, "no memory kept for gone sources");
    }
}
