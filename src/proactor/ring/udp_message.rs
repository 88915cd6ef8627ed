//! The UDP socket's one `recvmsg` in flight: its header, iovec, sender
//! address and 64 KiB buffer, in one box, because the header points at the
//! others and the kernel holds those pointers until the completion.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// What one `recvmsg` needs, boxed so that the pointers between its parts
/// stay valid while the kernel holds them.
pub(super) struct UdpMessage {
    header: libc::msghdr,
    iov: libc::iovec,
    from: libc::sockaddr_storage,
    pub(super) data: Box<[u8]>,
    pub(super) in_flight: bool,
}

impl UdpMessage {
    pub(super) fn new() -> Box<UdpMessage> {
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
    pub(super) fn prepare(&mut self) -> *mut libc::msghdr {
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
    pub(super) fn sender(&self) -> Option<SocketAddr> {
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
