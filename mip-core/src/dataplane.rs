//! Sans-IO data plane: the packet transformations of Mobile IPv4 agents and nodes.
//!
//! - [`ipv4`]: header parsing, checksums, header writing and RFC 791 fragmentation;
//! - [`encapsulate`] / [`decapsulate`]: IP in IP (RFC 2003), minimal encapsulation
//!   (RFC 2004) and GRE (RFC 2784), with the TTL, DF, TOS and tunnel-MTU rules of
//!   RFC 2003 sections 3.1, 3.2 and 5.1;
//! - [`icmp_error`]: Destination Unreachable, Fragmentation Needed and Time Exceeded
//!   (RFC 792, RFC 1191) about a packet we could not forward;
//! - [`arp`] and [`ethernet`]: proxy and gratuitous ARP (RFC 5944 4.6, RFC 826);
//! - [`frame`]: an Ethernet frame carrying a UDP datagram we originate (no ARP);
//! - [`offload`]: completing partial checksums and segmenting TCP super-packets that
//!   Linux hands to AF_PACKET readers on veth links (virtio-net header).
//!
//! Every function writes into a buffer the caller owns and sized once; nothing here
//! allocates, reads a clock or panics on any input. Errors say what was wrong.

pub mod arp;
pub mod ethernet;
pub mod frame;
pub mod icmp_error;
pub mod ipv4;
pub mod offload;
mod tunnel;

pub use tunnel::{
    decapsulate, encapsulate, packets, DropReason, Decapsulated, EncapOutcome, Encapsulation, Packets,
    TunnelParams, ENCAP_BUFFER_LEN,
};

/// Why bytes could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataplaneError {
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("output buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall { need: usize, have: usize },
    #[error("not IPv4: version {0}")]
    BadVersion(u8),
    #[error("IPv4 header length {0} is invalid")]
    BadHeaderLength(usize),
    #[error("IPv4 total length {total} is shorter than its header ({header})")]
    BadTotalLength { total: usize, header: usize },
    #[error("bad checksum")]
    BadChecksum,
    #[error("IP protocol {0} is not a tunnel (4, 47 or 55)")]
    NotATunnel(u8),
    /// The outer packet of a tunnel is a fragment: the kernel reassembles before a raw
    /// socket sees it, so a fragment here is unexpected and not reassembled.
    #[error("packet is a fragment")]
    Fragment,
    /// GRE version not 0, or a routing/key/sequence bit (RFC 2784 2.3: bits 1-5) set.
    #[error("unsupported GRE flags/version {0:#06x}")]
    UnsupportedGre(u16),
    #[error("GRE protocol type {0:#06x} is not IPv4")]
    GreProtocol(u16),
    /// The decapsulated packet has TTL 0 (RFC 2003 3.1: MUST discard).
    #[error("inner TTL is 0")]
    TtlExpired,
    /// The tunnel MTU leaves no room for 8 bytes of data per fragment.
    #[error("MTU {0} too small to fragment into")]
    MtuTooSmall(usize),
    /// RFC 1122 3.2.2 / RFC 1812 4.3.2.7: no ICMP error about this packet.
    #[error("no ICMP error may be sent about this packet: {0}")]
    IcmpSuppressed(&'static str),
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

pub type Result<T> = core::result::Result<T, DataplaneError>;

/// `buf[at..at + N]` as an array, or `Truncated`.
pub(crate) fn array<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N]> {
    buf.get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(DataplaneError::Truncated { need: at + N, have: buf.len() })
}

pub(crate) fn be16(buf: &[u8], at: usize) -> Result<u16> {
    array::<2>(buf, at).map(u16::from_be_bytes)
}

/// `out[..need]`, or `BufferTooSmall`.
pub(crate) fn room(out: &mut [u8], need: usize) -> Result<&mut [u8]> {
    let have = out.len();
    out.get_mut(..need).ok_or(DataplaneError::BufferTooSmall { need, have })
}
