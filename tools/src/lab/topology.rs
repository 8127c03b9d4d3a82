//! What a lab is made of: LANs (one bridge each, inside the switch namespace) and hosts
//! (one namespace each, one veth per LAN they join).
//!
//! [`Topology::base`] is the issue-3 lab of design3.md:
//!
//! | LAN | bridge | prefix | hosts |
//! |---|---|---|---|
//! | home | br-home | 198.18.0.0/24 | rtr .254, ha .1, mn .10 |
//! | f1 | br-f1 | 198.18.1.0/24 | rtr .254, fa1 .1 |
//! | f2 | br-f2 | 198.18.2.0/24 | rtr .254, fa2 .1 |
//! | cn | br-cn | 198.19.0.0/24 | rtr .254, cn .1 |

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::Serialize;

use super::{LabError, Result};

/// Name of the namespace (inside a lab) that holds the bridges.
pub const SWITCH: &str = "sw";

/// Addresses of the base topology.
pub mod base {
    use super::Cidr;
    use std::net::Ipv4Addr;

    pub const HOME_LAN: Cidr = Cidr::new(Ipv4Addr::new(198, 18, 0, 0), 24);
    pub const F1_LAN: Cidr = Cidr::new(Ipv4Addr::new(198, 18, 1, 0), 24);
    pub const F2_LAN: Cidr = Cidr::new(Ipv4Addr::new(198, 18, 2, 0), 24);
    pub const CN_LAN: Cidr = Cidr::new(Ipv4Addr::new(198, 19, 0, 0), 24);
    pub const RTR_HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
    pub const RTR_F1: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 254);
    pub const RTR_F2: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 254);
    pub const RTR_CN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 254);
    pub const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    pub const MN_HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    pub const FA1: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
    pub const FA2: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
    /// First address of the co-located care-of range on foreign 2 (198.18.2.100-199).
    pub const MN_COLOCATED: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 100);
    pub const CN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
}

/// An IPv4 address with a prefix length, `198.18.0.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Cidr {
    pub const fn new(addr: Ipv4Addr, len: u8) -> Self {
        Cidr { addr, len }
    }

    fn mask(&self) -> u32 {
        match self.len {
            0 => 0,
            n if n >= 32 => u32::MAX,
            n => u32::MAX << (32 - u32::from(n)),
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// Host number `n` of this network (`n` in the host bits), e.g. `.254`.
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) | (n & !self.mask()))
    }

    /// The same prefix length around another address of the network.
    pub fn with_addr(&self, addr: Ipv4Addr) -> Cidr {
        Cidr::new(addr, self.len)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Cidr {
    type Err = LabError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || LabError::Topology(format!("{s:?}: expected A.B.C.D/LEN"));
        let (a, l) = s.split_once('/').ok_or_else(bad)?;
        let addr = a.parse().map_err(|_| bad())?;
        let len: u8 = l.parse().map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        Ok(Cidr::new(addr, len))
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One LAN: a bridge in the switch namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LanSpec {
    /// Short name used by [`super::Lab::move_port`] (`home`, `f1`, ...).
    pub name: String,
    pub bridge: String,
    pub prefix: Cidr,
}

/// One interface of a host: a veth whose peer is a port of `lan`'s bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IfaceSpec {
    pub name: String,
    pub lan: String,
    pub addrs: Vec<Cidr>,
}

/// A route, written to `ip route add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// `None` is the default route.
    pub dest: Option<Cidr>,
    pub via: Option<Ipv4Addr>,
    pub dev: Option<String>,
    pub src: Option<Ipv4Addr>,
    pub onlink: bool,
}

impl Route {
    pub fn default_via(gateway: Ipv4Addr) -> Self {
        Route {
            dest: None,
            via: Some(gateway),
            dev: None,
            src: None,
            onlink: false,
        }
    }

    /// The arguments after `ip route add` / `route add` in a batch.
    pub fn to_ip_args(&self) -> String {
        let mut s = match self.dest {
            None => "default".to_owned(),
            Some(c) => format!("{}/{}", c.network(), c.len),
        };
        if let Some(via) = self.via {
            s.push_str(&format!(" via {via}"));
        }
        if let Some(dev) = &self.dev {
            s.push_str(&format!(" dev {dev}"));
        }
        if let Some(src) = self.src {
            s.push_str(&format!(" src {src}"));
        }
        if self.onlink {
            s.push_str(" onlink");
        }
        s
    }
}

/// One host: a namespace with its interfaces, routes and forwarding switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostSpec {
    pub name: String,
    pub ifaces: Vec<IfaceSpec>,
    pub routes: Vec<Route>,
    /// `net.ipv4.ip_forward`.
    pub ip_forward: bool,
}

impl HostSpec {
    /// A host with one interface `eth0` on `lan` at `addr`, default route via `gateway`.
    pub fn single(name: &str, lan: &str, addr: Cidr, gateway: Option<Ipv4Addr>) -> Self {
        HostSpec {
            name: name.to_owned(),
            ifaces: vec![IfaceSpec {
                name: "eth0".to_owned(),
                lan: lan.to_owned(),
                addrs: vec![addr],
            }],
            routes: gateway.map(Route::default_via).into_iter().collect(),
            ip_forward: false,
        }
    }
}

/// A whole lab: LANs and hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topology {
    pub lans: Vec<LanSpec>,
    pub hosts: Vec<HostSpec>,
}

impl Topology {
    /// The issue-3 lab (design3.md). `mn` starts on the home LAN as a plain host
    /// (198.18.0.10/24 on eth0, default via rtr); use [`Topology::strip_host_config`] to leave
    /// its addressing to the mobile-node daemon. Foreign agents forward (`ip_forward=1`):
    /// visitors use them as their default router (RFC 5944 3.7.1).
    pub fn base() -> Self {
        let lan = |name: &str, prefix: Cidr| LanSpec {
            name: name.to_owned(),
            bridge: format!("br-{name}"),
            prefix,
        };
        let lans = vec![
            lan("home", base::HOME_LAN),
            lan("f1", base::F1_LAN),
            lan("f2", base::F2_LAN),
            lan("cn", base::CN_LAN),
        ];
        let rtr = HostSpec {
            name: "rtr".to_owned(),
            ifaces: lans
                .iter()
                .map(|l| IfaceSpec {
                    name: format!("eth-{}", l.name),
                    lan: l.name.clone(),
                    addrs: vec![l.prefix.with_addr(l.prefix.host(254))],
                })
                .collect(),
            routes: Vec::new(),
            ip_forward: true,
        };
        let mut fa1 = HostSpec::single(
            "fa1",
            "f1",
            base::F1_LAN.with_addr(base::FA1),
            Some(base::RTR_F1),
        );
        fa1.ip_forward = true;
        let mut fa2 = HostSpec::single(
            "fa2",
            "f2",
            base::F2_LAN.with_addr(base::FA2),
            Some(base::RTR_F2),
        );
        fa2.ip_forward = true;
        let hosts = vec![
            rtr,
            HostSpec::single(
                "ha",
                "home",
                base::HOME_LAN.with_addr(base::HA),
                Some(base::RTR_HOME),
            ),
            HostSpec::single(
                "mn",
                "home",
                base::HOME_LAN.with_addr(base::MN_HOME),
                Some(base::RTR_HOME),
            ),
            fa1,
            fa2,
            HostSpec::single(
                "cn",
                "cn",
                base::CN_LAN.with_addr(base::CN),
                Some(base::RTR_CN),
            ),
        ];
        Topology { lans, hosts }
    }

    pub fn host(&self, name: &str) -> Option<&HostSpec> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn lan(&self, name: &str) -> Option<&LanSpec> {
        self.lans.iter().find(|l| l.name == name)
    }

    /// Removes a host's addresses and routes (its interfaces stay, up): for a host whose
    /// daemon sets its own addressing, like the mobile node.
    pub fn strip_host_config(&mut self, host: &str) -> Result<()> {
        let h = self
            .hosts
            .iter_mut()
            .find(|h| h.name == host)
            .ok_or_else(|| LabError::UnknownHost(host.to_owned()))?;
        h.routes.clear();
        for i in &mut h.ifaces {
            i.addrs.clear();
        }
        Ok(())
    }

    /// Name of the switch port (veth peer in the switch namespace) of a host interface:
    /// the host name for a host with one interface, `host-lan` otherwise.
    pub fn port_name(host: &HostSpec, iface: &IfaceSpec) -> String {
        if host.ifaces.len() == 1 {
            host.name.clone()
        } else {
            format!("{}-{}", host.name, iface.lan)
        }
    }

    /// A stable, locally administered MAC for host number `h`, interface number `i`
    /// (easy to recognise in captures: 02:53:4c = "SL").
    pub fn mac_for(h: usize, i: usize) -> [u8; 6] {
        [
            0x02,
            0x53,
            0x4c,
            0x00,
            u8::try_from(h + 1).unwrap_or(u8::MAX),
            u8::try_from(i).unwrap_or(u8::MAX),
        ]
    }

    /// Checks names (they become namespace and interface names) and references.
    pub fn validate(&self) -> Result<()> {
        let short = |s: &str, max: usize| {
            !s.is_empty()
                && s.len() <= max
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        let mut seen = std::collections::HashSet::new();
        for l in &self.lans {
            if !short(&l.name, 8) {
                return Err(LabError::Topology(format!(
                    "LAN name {:?}: 1 to 8 characters a-z, 0-9",
                    l.name
                )));
            }
            if l.bridge.is_empty() || l.bridge.len() > 15 || !seen.insert(l.bridge.clone()) {
                return Err(LabError::Topology(format!(
                    "bridge {:?}: empty, too long or used twice",
                    l.bridge
                )));
            }
        }
        let mut hosts = std::collections::HashSet::new();
        for h in &self.hosts {
            if !short(&h.name, 6) || h.name == SWITCH || !hosts.insert(h.name.as_str()) {
                return Err(LabError::Topology(format!(
                    "host name {:?}: 1 to 6 characters a-z, 0-9, unique, not {SWITCH:?}",
                    h.name
                )));
            }
            if h.ifaces.is_empty() || h.ifaces.len() > 250 {
                return Err(LabError::Topology(format!(
                    "host {:?} needs 1 to 250 interfaces",
                    h.name
                )));
            }
            let mut names = std::collections::HashSet::new();
            for i in &h.ifaces {
                if self.lan(&i.lan).is_none() {
                    return Err(LabError::UnknownLan(i.lan.clone()));
                }
                if i.name.is_empty() || i.name.len() > 15 || !names.insert(i.name.as_str()) {
                    return Err(LabError::Topology(format!(
                        "interface {:?} of {:?}: empty, too long or used twice",
                        i.name, h.name
                    )));
                }
                let port = Self::port_name(h, i);
                if !seen.insert(port.clone()) {
                    return Err(LabError::Topology(format!(
                        "switch port {port:?} used twice"
                    )));
                }
            }
        }
        if self.hosts.len() > 250 {
            return Err(LabError::Topology("at most 250 hosts".to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base_is_valid_and_matches_design() {
        let t = Topology::base();
        t.validate().unwrap();
        let rtr = t.host("rtr").unwrap();
        assert!(rtr.ip_forward);
        assert_eq!(rtr.ifaces.len(), 4);
        assert_eq!(rtr.ifaces[3].name, "eth-cn");
        assert_eq!(rtr.ifaces[3].addrs[0].to_string(), "198.19.0.254/24");
        assert_eq!(Topology::port_name(rtr, &rtr.ifaces[1]), "rtr-f1");
        let mn = t.host("mn").unwrap();
        assert_eq!(Topology::port_name(mn, &mn.ifaces[0]), "mn");
        assert_eq!(mn.routes[0].to_ip_args(), "default via 198.18.0.254");
    }

    #[test]
    fn cidr_parse_and_math() {
        let c: Cidr = "198.18.2.100/24".parse().unwrap();
        assert_eq!(c.network(), Ipv4Addr::new(198, 18, 2, 0));
        assert_eq!(c.host(254), Ipv4Addr::new(198, 18, 2, 254));
        assert!(c.contains(Ipv4Addr::new(198, 18, 2, 7)));
        assert!(!c.contains(Ipv4Addr::new(198, 18, 3, 7)));
        assert!("198.18.0.1/33".parse::<Cidr>().is_err());
        assert!("198.18.0.1".parse::<Cidr>().is_err());
    }

    #[test]
    fn rejects_bad_names() {
        let mut t = Topology::base();
        t.hosts[1].name = "sw".to_owned();
        assert!(t.validate().is_err());
        let mut t = Topology::base();
        t.hosts[1].ifaces[0].lan = "nowhere".to_owned();
        assert!(t.validate().is_err());
    }
}
