//! The few rtnetlink requests `linux.netDevices` needs, on a
//! `NETLINK_ROUTE` socket: find a link, list its addresses, move it into
//! another network namespace under a new name, add an address, bring a
//! link up.
//!
//! A socket acts in the network namespace it was made in. Messages are
//! built and read as bytes in the kernel's layout (native endian, every
//! header and attribute padded to 4 bytes); nothing here is `unsafe`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol};

// <linux/netlink.h>
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
// <linux/rtnetlink.h>
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RT_SCOPE_UNIVERSE: u8 = 0;
// <linux/if_link.h>
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
// <linux/if_addr.h>
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const IFA_F_PERMANENT: u32 = 0x80;
/// The address flags that describe how the address was asked for (nodad,
/// optimistic, homeaddress, managetempaddr, noprefixroute, mcautojoin),
/// as opposed to its state (tentative, deprecated, …), which the kernel
/// sets itself.
const IFA_F_REQUESTABLE: u32 = 0x02 | 0x04 | 0x10 | 0x100 | 0x200 | 0x400;
// <linux/if.h>
const IFF_UP: u32 = 0x1;

/// An address of a link, as `RTM_GETADDR` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub family: u8,
    pub prefix_len: u8,
    pub scope: u8,
    pub flags: u32,
    pub local: Option<Vec<u8>>,
    pub address: Option<Vec<u8>>,
    pub broadcast: Option<Vec<u8>>,
}

impl Address {
    /// A permanent address of global scope: what moves with a device
    /// (runtime-spec 1.2, after RFC 3549).
    pub fn is_permanent_global(&self) -> bool {
        self.flags & IFA_F_PERMANENT != 0 && self.scope == RT_SCOPE_UNIVERSE
    }
}

/// A `NETLINK_ROUTE` socket of the current network namespace.
pub struct Route {
    fd: OwnedFd,
    seq: u32,
}

impl Route {
    /// Open one in the current network namespace.
    pub fn open() -> nix::Result<Route> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            socket::SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        Ok(Route { fd, seq: 0 })
    }

    /// The index of the link called `name`, or `None` when there is none.
    pub fn link_index(&mut self, name: &str) -> nix::Result<Option<i32>> {
        let mut body = ifinfomsg(0, 0, 0);
        put_attr(&mut body, IFLA_IFNAME, &c_string(name));
        match self.request(RTM_GETLINK, 0, &body) {
            Ok(replies) => Ok(replies
                .iter()
                .find(|(t, _)| *t == RTM_NEWLINK)
                .and_then(|(_, p)| read_i32(p, 4))),
            Err(Errno::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The name of the link with index `index`, or `None` when there is none.
    pub fn link_name(&mut self, index: i32) -> nix::Result<Option<String>> {
        let body = ifinfomsg(index, 0, 0);
        let replies = match self.request(RTM_GETLINK, 0, &body) {
            Ok(r) => r,
            Err(Errno::ENODEV) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some((_, payload)) = replies.iter().find(|(t, _)| *t == RTM_NEWLINK) else {
            return Ok(None);
        };
        let name = attrs(payload, 16)
            .find(|(t, _)| *t == IFLA_IFNAME)
            .map(|(_, v)| {
                let v = v.split(|&b| b == 0).next().unwrap_or_default();
                String::from_utf8_lossy(v).into_owned()
            });
        Ok(name)
    }

    /// Every address of the link `index`.
    pub fn addresses(&mut self, index: i32) -> nix::Result<Vec<Address>> {
        let body = ifaddrmsg(0, 0, 0, 0, 0);
        let mut out = Vec::new();
        for (t, p) in self.request(RTM_GETADDR, NLM_F_DUMP, &body)? {
            if t != RTM_NEWADDR || p.len() < 8 || read_i32(&p, 4) != Some(index) {
                continue;
            }
            let mut a = Address {
                family: p[0],
                prefix_len: p[1],
                flags: p[2] as u32,
                scope: p[3],
                local: None,
                address: None,
                broadcast: None,
            };
            for (at, v) in attrs(&p, 8) {
                match at {
                    IFA_LOCAL => a.local = Some(v.to_vec()),
                    IFA_ADDRESS => a.address = Some(v.to_vec()),
                    IFA_BROADCAST => a.broadcast = Some(v.to_vec()),
                    // The full flags, when the kernel sends them.
                    IFA_FLAGS => a.flags = read_i32(v, 0).map_or(a.flags, |f| f as u32),
                    _ => {}
                }
            }
            out.push(a);
        }
        Ok(out)
    }

    /// Move the link `index` into the network namespace `netns` and name
    /// it `name` there (a `%d` in it lets the kernel number it).
    pub fn move_link(&mut self, index: i32, netns: BorrowedFd<'_>, name: &str) -> nix::Result<()> {
        let mut body = ifinfomsg(index, 0, 0);
        put_attr(&mut body, IFLA_NET_NS_FD, &netns.as_raw_fd().to_ne_bytes());
        put_attr(&mut body, IFLA_IFNAME, &c_string(name));
        self.request(RTM_NEWLINK, 0, &body).map(drop)
    }

    /// Add `a` to the link `index`.
    pub fn add_address(&mut self, index: i32, a: &Address) -> nix::Result<()> {
        let flags = a.flags & IFA_F_REQUESTABLE;
        let mut body = ifaddrmsg(a.family, a.prefix_len, flags as u8, a.scope, index);
        for (t, v) in [
            (IFA_LOCAL, &a.local),
            (IFA_ADDRESS, &a.address),
            (IFA_BROADCAST, &a.broadcast),
        ] {
            if let Some(v) = v {
                put_attr(&mut body, t, v);
            }
        }
        put_attr(&mut body, IFA_FLAGS, &flags.to_ne_bytes());
        // NLM_F_CREATE | NLM_F_EXCL: a new address, never a change of one.
        self.request(RTM_NEWADDR, 0x400 | 0x200, &body).map(drop)
    }

    /// Bring the link `index` up.
    pub fn set_up(&mut self, index: i32) -> nix::Result<()> {
        let body = ifinfomsg(index, IFF_UP, IFF_UP);
        self.request(RTM_NEWLINK, 0, &body).map(drop)
    }

    /// Send one request and collect the replies to it, as (type, payload
    /// after the netlink header), until its acknowledgement or, for a dump,
    /// its end. A negative acknowledgement is the request's error.
    fn request(&mut self, kind: u16, flags: u16, body: &[u8]) -> nix::Result<Vec<(u16, Vec<u8>)>> {
        self.seq = self.seq.wrapping_add(1);
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let flags = NLM_F_REQUEST | flags | if dump { 0 } else { NLM_F_ACK };
        let mut msg = Vec::with_capacity(NLMSG_HDRLEN + body.len());
        msg.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        let kernel = NetlinkAddr::new(0, 0);
        socket::sendto(self.fd.as_raw_fd(), &msg, &kernel, MsgFlags::empty())?;

        let mut replies = Vec::new();
        // The kernel fills a dump's datagrams to at most 32 KiB.
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match socket::recv(self.fd.as_fd().as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            };
            let mut rest = &buf[..n];
            while rest.len() >= NLMSG_HDRLEN {
                let len = read_u32(rest, 0).unwrap_or(0) as usize;
                if len < NLMSG_HDRLEN || len > rest.len() {
                    return Err(Errno::EBADMSG);
                }
                let t = u16::from_ne_bytes([rest[4], rest[5]]);
                let seq = read_u32(rest, 8).unwrap_or(0);
                let payload = &rest[NLMSG_HDRLEN..len];
                rest = &rest[align(len).min(rest.len())..];
                if seq != self.seq {
                    continue;
                }
                match t {
                    NLMSG_DONE => return Ok(replies),
                    NLMSG_ERROR => {
                        return match read_i32(payload, 0) {
                            Some(0) => Ok(replies),
                            Some(e) => Err(Errno::from_raw(-e)),
                            None => Err(Errno::EBADMSG),
                        }
                    }
                    _ => replies.push((t, payload.to_vec())),
                }
            }
        }
    }
}

/// `struct ifinfomsg` for `index`, with `flags` changed under `change`.
fn ifinfomsg(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut v = vec![0u8; 4]; // family (AF_UNSPEC), pad, type
    v.extend_from_slice(&index.to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&change.to_ne_bytes());
    v
}

/// `struct ifaddrmsg`.
fn ifaddrmsg(family: u8, prefix_len: u8, flags: u8, scope: u8, index: i32) -> Vec<u8> {
    let mut v = vec![family, prefix_len, flags, scope];
    v.extend_from_slice(&index.to_ne_bytes());
    v
}

fn c_string(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Append one attribute (`struct nlattr` and its value, padded).
fn put_attr(msg: &mut Vec<u8>, kind: u16, value: &[u8]) {
    msg.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(value);
    msg.resize(align(msg.len()), 0);
}

/// The attributes of a payload whose fixed header is `skip` bytes long.
fn attrs(payload: &[u8], skip: usize) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = payload.get(skip..).unwrap_or_default();
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            return None;
        }
        let value = &rest[4..len];
        rest = &rest[align(len).min(rest.len())..];
        Some((kind, value))
    })
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn read_i32(b: &[u8], at: usize) -> Option<i32> {
    read_u32(b, at).map(|v| v as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_with_padding() {
        let mut m = ifinfomsg(7, 0, 0);
        put_attr(&mut m, IFLA_IFNAME, &c_string("eth0"));
        put_attr(&mut m, IFLA_NET_NS_FD, &5i32.to_ne_bytes());
        assert_eq!(m.len() % 4, 0);
        let got: Vec<(u16, Vec<u8>)> = attrs(&m, 16).map(|(t, v)| (t, v.to_vec())).collect();
        assert_eq!(
            got,
            [
                (IFLA_IFNAME, b"eth0\0".to_vec()),
                (IFLA_NET_NS_FD, 5i32.to_ne_bytes().to_vec())
            ]
        );
        assert_eq!(read_i32(&m, 4), Some(7));
    }

    #[test]
    fn the_loopback_link_is_found_by_name_and_index() {
        // Every network namespace has `lo`, and reading it needs no
        // privilege.
        let mut r = Route::open().unwrap();
        let index = r.link_index("lo").unwrap().unwrap();
        assert_eq!(r.link_name(index).unwrap().as_deref(), Some("lo"));
        assert_eq!(r.link_index("no-such-link0").unwrap(), None);
        let addrs = r.addresses(index).unwrap();
        // 127.0.0.1/8 is scope host: it would not move with the device.
        assert!(addrs.iter().all(|a| !a.is_permanent_global()), "{addrs:?}");
    }
}
