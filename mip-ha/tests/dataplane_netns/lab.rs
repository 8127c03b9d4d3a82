//! The three-namespace lab of the data-plane tests, on the shared harness (`tests/netns`):
//! removed by its guard even on panic.
//!
//! ```text
//!  P-ha (mip-ha)            P-rtr (ip_forward=1)                P-coa
//!  eth0 198.18.0.1/24 ===== eth-home 198.18.0.254/24
//!  MAC 02:00:5e:12:00:01    MAC 02:00:5e:12:00:fe
//!                           eth-f1 198.18.1.254/24 ========== eth0 198.18.1.1/24 (+ .2)
//! ```
//! The home address 198.18.0.10 belongs to nobody on the home link: while bound, only
//! the home agent's proxy ARP answers for it. Sockets are opened inside a namespace by
//! a thread that setns(2)s into it (`lab.in_ns`), and then used from anywhere.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use crate::netns::{addrs_up, default_route, home_agent_config, mn_sa, rp_filter_off, set_mac, sysctl, veth, NetLab};
pub use crate::netns::{can_run, wait_for, WAIT};
use mip_core::auth::append_auth_extension;
use mip_core::time::Time;
use mip_core::wire::{ext_type, RegistrationFlags, RegistrationReply, RegistrationReplyRepr, RegistrationRequestRepr};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

pub const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const RTR_HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
pub const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
pub const COA: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const OTHER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
pub const HA_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x12, 0x00, 0x01];
pub const RTR_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x12, 0x00, 0xfe];
pub const MN_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x12, 0x00, 0x0a];

/// The namespaces' names.
pub struct Names {
    pub ha: String,
    pub rtr: String,
    pub coa: String,
}

/// The namespaces and the daemon; dropping it kills the daemon and deletes them.
pub type Lab = NetLab<Names>;

impl Lab {
    /// Namespaces and links; the daemon is started by [`start_ha`](Self::start_ha).
    pub fn new(tag: &str) -> Lab {
        NetLab::build("sdp", tag, |nets| {
            let n = Names { ha: nets.add("ha"), rtr: nets.add("rtr"), coa: nets.add("coa") };
            for ns in [&n.ha, &n.rtr, &n.coa] {
                rp_filter_off(ns);
            }
            veth(&n.ha, "eth0", &n.rtr, "eth-home");
            veth(&n.coa, "eth0", &n.rtr, "eth-f1");
            set_mac(&n.ha, "eth0", HA_MAC);
            set_mac(&n.rtr, "eth-home", RTR_MAC);
            addrs_up(&[
                (&n.ha, "eth0", "198.18.0.1/24"),
                (&n.rtr, "eth-home", "198.18.0.254/24"),
                (&n.rtr, "eth-f1", "198.18.1.254/24"),
                (&n.coa, "eth0", "198.18.1.1/24"),
                (&n.coa, "eth0", "198.18.1.2/24"),
            ]);
            default_route(&n.ha, "198.18.0.254");
            default_route(&n.coa, "198.18.1.254");
            sysctl(&n.rtr, "net.ipv4.ip_forward", "1");
            sysctl(&n.ha, "net.ipv4.ip_forward", "0");
            n
        })
    }

    /// Writes the configuration (`extra` `[home_agent]` keys) and starts mip-ha in the
    /// home agent's namespace; returns when its control socket answers.
    pub fn start_ha(&mut self, extra: &str) {
        let ha = self.ha.clone();
        self.start_daemon(&ha, |control| home_agent_config(control, &format!("{extra}\n")));
    }

    /// Polls a data-plane drop counter until it reaches `n`.
    pub fn wait_dropped(&self, reason: &str, n: u64) {
        wait_for(&format!("{n} drop(s) '{reason}'"), || {
            let s = self.stats();
            (s.dataplane.as_ref().map(|d| d.dropped(reason)) >= Some(n)).then_some(())
        });
    }

    /// Registers HOME at COA with `flags` (T always added) and `lifetime`, from the
    /// care-of namespace; returns the reply code.
    pub fn register(&self, flags: RegistrationFlags, lifetime: u16) -> u8 {
        let sa = mn_sa();
        let mut req = RegistrationRequestRepr {
            flags: flags.with(RegistrationFlags::T),
            lifetime,
            home_address: HOME,
            home_agent: HA,
            care_of_address: COA,
            identification: Time::from_system(std::time::SystemTime::now()).to_ntp(),
        }
        .to_bytes();
        append_auth_extension(&mut req, ext_type::MOBILE_HOME_AUTH, &sa);
        let udp = self.in_ns(&self.coa, || UdpSocket::bind("198.18.1.1:0").unwrap());
        udp.set_read_timeout(Some(WAIT)).unwrap();
        udp.send_to(&req, SocketAddrV4::new(HA, 434)).unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = udp.recv_from(&mut buf).expect("registration reply");
        let reply = RegistrationReplyRepr::parse(&RegistrationReply::new_checked(&buf[..n]).unwrap()).unwrap();
        u8::from(reply.code)
    }
}

/// Reads from `sock` until `pick` accepts a packet; panics after [`WAIT`].
pub fn recv_until<T>(sock: &Socket, what: &str, mut pick: impl FnMut(&[u8]) -> Option<T>) -> T {
    use std::io::Read;
    let deadline = Instant::now() + WAIT;
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = vec![0u8; 65_536];
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        if let Ok(n) = (&*sock).read(&mut buf) {
            if let Some(v) = pick(&buf[..n]) {
                return v;
            }
        }
    }
}

pub fn raw_socket(protocol: i32) -> Socket {
    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(protocol))).expect("raw socket")
}

/// Sends a whole IPv4 packet (IPPROTO_RAW: header included).
pub fn send_raw(sock: &Socket, dst: Ipv4Addr, pkt: &[u8]) {
    sock.send_to(pkt, &SockAddr::from(SocketAddrV4::new(dst, 0))).expect("raw send");
}
