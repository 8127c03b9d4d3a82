//! Classic pcap files (the libpcap format, not pcapng) and the Ethernet / IPv4 / UDP /
//! ICMP framing tests need around Mobile IP messages.
//!
//! Writing: [`PcapWriter`] (microsecond timestamps, LINKTYPE_ETHERNET by default) and
//! frame builders [`ethernet_ipv4_udp`], [`ethernet_ipv4_icmp`], [`ethernet_ipv4`] that
//! fill in correct IPv4 header and UDP checksums, so tshark reports no checksum errors.
//! Reading: [`read_pcap`] accepts both byte orders and both microsecond and nanosecond
//! files; [`parse_udp`] / [`PcapFile::udp_datagrams`] pull UDP payloads (port 434, say)
//! out of Ethernet frames, trimming Ethernet padding by the IP and UDP lengths.
//!
//! Everything that reads bytes returns an error or `None` on bad input; nothing panics.

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

use mip_core::time::Time;

pub const LINKTYPE_ETHERNET: u32 = 1;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: u16 = 0x8100;
pub const IP_PROTO_ICMP: u8 = 1;
pub const IP_PROTO_IPIP: u8 = 4;
pub const IP_PROTO_UDP: u8 = 17;
pub const IP_PROTO_GRE: u8 = 47;
pub const IP_PROTO_MINIMAL: u8 = 55;

const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
const ETHERNET_HEADER_LEN: usize = 14;
const IPV4_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;
/// Largest record we accept when reading; real captures here are at most 2000 bytes.
const MAX_RECORD_LEN: u32 = 256 * 1024;
const DEFAULT_SNAPLEN: u32 = 65_535;

#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("reading or writing the pcap file: {0}")]
    Io(#[from] io::Error),
    #[error("not a classic pcap file: magic number {0:#010x} (pcapng is not supported)")]
    BadMagic(u32),
    #[error("pcap file truncated at byte {offset}: need {need} bytes, have {have}")]
    Truncated {
        offset: usize,
        need: usize,
        have: usize,
    },
    #[error("pcap record at byte {offset} claims {len} bytes, more than the {max} accepted")]
    RecordTooLarge { offset: usize, len: u32, max: u32 },
    #[error("frame of {len} bytes is larger than the IPv4 total length allows")]
    FrameTooLarge { len: usize },
}

/// Writes a classic pcap stream: the global header on creation, then one record per frame.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    inner: W,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// A writer of Ethernet frames.
    pub fn new(inner: W) -> io::Result<Self> {
        Self::with_linktype(inner, LINKTYPE_ETHERNET)
    }

    pub fn with_linktype(mut inner: W, linktype: u32) -> io::Result<Self> {
        let mut header = Vec::with_capacity(GLOBAL_HEADER_LEN);
        header.extend_from_slice(&MAGIC_MICROS.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes()); // GMT offset
        header.extend_from_slice(&0u32.to_le_bytes()); // timestamp accuracy
        header.extend_from_slice(&DEFAULT_SNAPLEN.to_le_bytes());
        header.extend_from_slice(&linktype.to_le_bytes());
        inner.write_all(&header)?;
        Ok(PcapWriter {
            inner,
            snaplen: DEFAULT_SNAPLEN,
        })
    }

    /// Appends one frame captured at `timestamp`; a frame longer than the snap length is
    /// stored truncated, with its original length recorded, as a capture would.
    pub fn write_frame(&mut self, timestamp: Time, frame: &[u8]) -> io::Result<()> {
        let micros = timestamp.as_micros();
        let secs = u32::try_from(micros / 1_000_000).unwrap_or(u32::MAX);
        let sub = (micros % 1_000_000) as u32;
        let orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let cap_len = orig_len.min(self.snaplen);
        let stored = frame.get(..cap_len as usize).unwrap_or(frame);
        let mut record = Vec::with_capacity(RECORD_HEADER_LEN + stored.len());
        record.extend_from_slice(&secs.to_le_bytes());
        record.extend_from_slice(&sub.to_le_bytes());
        record.extend_from_slice(&cap_len.to_le_bytes());
        record.extend_from_slice(&orig_len.to_le_bytes());
        record.extend_from_slice(stored);
        self.inner.write_all(&record)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// Writes `frames` (Ethernet) to a new pcap file at `path`.
pub fn write_pcap_file(path: &Path, frames: &[(Time, Vec<u8>)]) -> io::Result<()> {
    let file = io::BufWriter::new(std::fs::File::create(path)?);
    let mut writer = PcapWriter::new(file)?;
    for (ts, frame) in frames {
        writer.write_frame(*ts, frame)?;
    }
    writer.flush()
}

/// The pcap file bytes for `frames` (Ethernet).
pub fn pcap_bytes(frames: &[(Time, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    if let Ok(mut writer) = PcapWriter::new(&mut out) {
        for (ts, frame) in frames {
            let _ = writer.write_frame(*ts, frame);
        }
    }
    out
}

/// One record of a pcap file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapFrame {
    /// Capture time, rounded down to microseconds for nanosecond files.
    pub timestamp: Time,
    /// Length on the wire; more than `data.len()` when the capture was truncated.
    pub original_len: u32,
    pub data: Vec<u8>,
}

/// A whole classic pcap file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapFile {
    pub linktype: u32,
    pub snaplen: u32,
    pub nanosecond: bool,
    pub frames: Vec<PcapFrame>,
}

impl PcapFile {
    /// Every complete, unfragmented IPv4/UDP datagram in an Ethernet capture with `port`
    /// as source or destination port, with the index of its frame.
    pub fn udp_datagrams(&self, port: u16) -> Vec<(usize, UdpDatagram<'_>)> {
        if self.linktype != LINKTYPE_ETHERNET {
            return Vec::new();
        }
        self.frames
            .iter()
            .enumerate()
            .filter_map(|(i, f)| parse_udp(&f.data).map(|d| (i, d)))
            .filter(|(_, d)| d.source.port() == port || d.destination.port() == port)
            .collect()
    }

    /// Every unfragmented IPv4 packet of protocol `protocol` (1 = ICMP, 4 = IP-in-IP, ...).
    pub fn ipv4_packets(&self, protocol: u8) -> Vec<(usize, Ipv4Packet<'_>)> {
        if self.linktype != LINKTYPE_ETHERNET {
            return Vec::new();
        }
        self.frames
            .iter()
            .enumerate()
            .filter_map(|(i, f)| parse_ethernet_ipv4(&f.data).map(|p| (i, p)))
            .filter(|(_, p)| p.protocol == protocol && !p.is_fragment)
            .collect()
    }
}

/// Reads a classic pcap file from memory.
pub fn read_pcap(bytes: &[u8]) -> Result<PcapFile, PcapError> {
    let header = take(bytes, 0, GLOBAL_HEADER_LEN)?;
    let magic_le = u32::from_le_bytes(array4(header, 0));
    let (big_endian, nanosecond) = match (magic_le, magic_le.swap_bytes()) {
        (MAGIC_MICROS, _) => (false, false),
        (MAGIC_NANOS, _) => (false, true),
        (_, MAGIC_MICROS) => (true, false),
        (_, MAGIC_NANOS) => (true, true),
        _ => return Err(PcapError::BadMagic(magic_le)),
    };
    let read_u32 = |b: &[u8], at: usize| {
        let raw = array4(b, at);
        if big_endian {
            u32::from_be_bytes(raw)
        } else {
            u32::from_le_bytes(raw)
        }
    };
    let snaplen = read_u32(header, 16);
    let linktype = read_u32(header, 20);
    let mut frames = Vec::new();
    let mut offset = GLOBAL_HEADER_LEN;
    while offset < bytes.len() {
        let record = take(bytes, offset, RECORD_HEADER_LEN)?;
        let secs = u64::from(read_u32(record, 0));
        let sub = u64::from(read_u32(record, 4));
        let cap_len = read_u32(record, 8);
        let original_len = read_u32(record, 12);
        if cap_len > MAX_RECORD_LEN {
            return Err(PcapError::RecordTooLarge {
                offset,
                len: cap_len,
                max: MAX_RECORD_LEN,
            });
        }
        let data = take(bytes, offset + RECORD_HEADER_LEN, cap_len as usize)?;
        let micros = if nanosecond { sub / 1_000 } else { sub };
        frames.push(PcapFrame {
            timestamp: Time::from_micros(secs.saturating_mul(1_000_000).saturating_add(micros)),
            original_len,
            data: data.to_vec(),
        });
        offset += RECORD_HEADER_LEN + cap_len as usize;
    }
    Ok(PcapFile {
        linktype,
        snaplen,
        nanosecond,
        frames,
    })
}

pub fn read_pcap_file(path: &Path) -> Result<PcapFile, PcapError> {
    read_pcap(&std::fs::read(path)?)
}

/// An IPv4 packet inside an Ethernet frame, trimmed to its total length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<'a> {
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    /// More-fragments set or a non-zero fragment offset.
    pub is_fragment: bool,
    /// The whole IP packet, header included.
    pub packet: &'a [u8],
    /// What follows the header (options skipped).
    pub payload: &'a [u8],
}

/// A UDP datagram inside an Ethernet/IPv4 frame, trimmed to its UDP length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    pub payload: &'a [u8],
}

/// Parses Ethernet II (optionally one 802.1Q tag) carrying IPv4. `None` for anything
/// else or anything inconsistent (short header, bad lengths).
pub fn parse_ethernet_ipv4(frame: &[u8]) -> Option<Ipv4Packet<'_>> {
    let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let mut start = ETHERNET_HEADER_LEN;
    if ethertype == ETHERTYPE_VLAN {
        ethertype = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
        start += 4;
    }
    if ethertype != ETHERTYPE_IPV4 {
        return None;
    }
    parse_ipv4(frame.get(start..)?)
}

/// Parses a bare IPv4 packet (for instance the inner packet of a tunnel).
pub fn parse_ipv4(bytes: &[u8]) -> Option<Ipv4Packet<'_>> {
    let first = *bytes.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(first & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]));
    if header_len < IPV4_HEADER_LEN || total_len < header_len {
        return None;
    }
    // Ethernet pads short frames: the IP total length says where the packet ends.
    let packet = bytes.get(..total_len)?;
    let flags_fragment = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]);
    Some(Ipv4Packet {
        source: ipv4_at(packet, 12)?,
        destination: ipv4_at(packet, 16)?,
        protocol: *packet.get(9)?,
        ttl: *packet.get(8)?,
        is_fragment: flags_fragment & 0x3fff != 0,
        packet,
        payload: packet.get(header_len..)?,
    })
}

/// Parses an Ethernet/IPv4/UDP frame. Fragments are not reassembled: `None`.
pub fn parse_udp(frame: &[u8]) -> Option<UdpDatagram<'_>> {
    let ip = parse_ethernet_ipv4(frame)?;
    if ip.protocol != IP_PROTO_UDP || ip.is_fragment {
        return None;
    }
    let udp = ip.payload;
    let src_port = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let dst_port = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    let udp_len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
    if udp_len < UDP_HEADER_LEN {
        return None;
    }
    Some(UdpDatagram {
        source: SocketAddrV4::new(ip.source, src_port),
        destination: SocketAddrV4::new(ip.destination, dst_port),
        payload: udp.get(UDP_HEADER_LEN..udp_len)?,
    })
}

/// Header fields of an IPv4 packet to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Params {
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub identification: u16,
    pub dont_fragment: bool,
}

impl Ipv4Params {
    /// TTL 64, identification 0, DF clear.
    pub fn new(source: Ipv4Addr, destination: Ipv4Addr, protocol: u8) -> Self {
        Ipv4Params {
            source,
            destination,
            protocol,
            ttl: 64,
            identification: 0,
            dont_fragment: false,
        }
    }
}

/// The RFC 1071 Internet checksum of `data` (odd length padded with a zero byte).
pub fn internet_checksum(data: &[u8]) -> u16 {
    !fold(sum_words(0, data))
}

/// An IPv4 packet: a 20-byte header (no options) with its checksum, then `payload`.
pub fn ipv4_packet(params: &Ipv4Params, payload: &[u8]) -> Result<Vec<u8>, PcapError> {
    let total = IPV4_HEADER_LEN + payload.len();
    let total_u16 = u16::try_from(total).map_err(|_| PcapError::FrameTooLarge { len: total })?;
    let mut p = Vec::with_capacity(total);
    p.push(0x45); // version 4, IHL 5
    p.push(0); // DSCP/ECN
    p.extend_from_slice(&total_u16.to_be_bytes());
    p.extend_from_slice(&params.identification.to_be_bytes());
    let flags: u16 = if params.dont_fragment { 0x4000 } else { 0 };
    p.extend_from_slice(&flags.to_be_bytes());
    p.push(params.ttl);
    p.push(params.protocol);
    p.extend_from_slice(&[0, 0]); // checksum, filled below
    p.extend_from_slice(&params.source.octets());
    p.extend_from_slice(&params.destination.octets());
    let checksum = internet_checksum(&p);
    if let Some(field) = p.get_mut(10..12) {
        field.copy_from_slice(&checksum.to_be_bytes());
    }
    p.extend_from_slice(payload);
    Ok(p)
}

/// A UDP header and `payload`, with the checksum over the IPv4 pseudo-header.
pub fn udp_datagram(
    source: SocketAddrV4,
    destination: SocketAddrV4,
    payload: &[u8],
) -> Result<Vec<u8>, PcapError> {
    let len = UDP_HEADER_LEN + payload.len();
    let len_u16 = u16::try_from(len).map_err(|_| PcapError::FrameTooLarge { len })?;
    let mut udp = Vec::with_capacity(len);
    udp.extend_from_slice(&source.port().to_be_bytes());
    udp.extend_from_slice(&destination.port().to_be_bytes());
    udp.extend_from_slice(&len_u16.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&source.ip().octets());
    pseudo.extend_from_slice(&destination.ip().octets());
    pseudo.extend_from_slice(&[0, IP_PROTO_UDP]);
    pseudo.extend_from_slice(&len_u16.to_be_bytes());
    let mut checksum = !fold(sum_words(sum_words(0, &pseudo), &udp));
    // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
    if checksum == 0 {
        checksum = 0xffff;
    }
    if let Some(field) = udp.get_mut(6..8) {
        field.copy_from_slice(&checksum.to_be_bytes());
    }
    Ok(udp)
}

/// An Ethernet II frame carrying `ip_packet`, with MAC addresses derived from the IP
/// addresses (see [`mac_for`]).
pub fn ethernet_frame(source: Ipv4Addr, destination: Ipv4Addr, ip_packet: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETHERNET_HEADER_LEN + ip_packet.len());
    f.extend_from_slice(&mac_for(destination));
    f.extend_from_slice(&mac_for(source));
    f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    f.extend_from_slice(ip_packet);
    f
}

/// Ethernet + IPv4 (as `params`) + `payload`.
pub fn ethernet_ipv4(params: &Ipv4Params, payload: &[u8]) -> Result<Vec<u8>, PcapError> {
    Ok(ethernet_frame(
        params.source,
        params.destination,
        &ipv4_packet(params, payload)?,
    ))
}

/// Ethernet + IPv4 (TTL 64) + UDP with correct checksums, carrying `payload`.
pub fn ethernet_ipv4_udp(
    source: SocketAddrV4,
    destination: SocketAddrV4,
    payload: &[u8],
) -> Result<Vec<u8>, PcapError> {
    let udp = udp_datagram(source, destination, payload)?;
    ethernet_ipv4(
        &Ipv4Params::new(*source.ip(), *destination.ip(), IP_PROTO_UDP),
        &udp,
    )
}

/// Ethernet + IPv4 (protocol 1, TTL 1 as RFC 5944 2.3 requires of agent advertisements
/// and solicitations) + `icmp`, which must already carry its own ICMP checksum.
pub fn ethernet_ipv4_icmp(
    source: Ipv4Addr,
    destination: Ipv4Addr,
    icmp: &[u8],
) -> Result<Vec<u8>, PcapError> {
    let params = Ipv4Params {
        ttl: 1,
        ..Ipv4Params::new(source, destination, IP_PROTO_ICMP)
    };
    ethernet_ipv4(&params, icmp)
}

/// The MAC address used for `ip` in built frames: broadcast for 255.255.255.255, the
/// RFC 1112 group address for multicast, else a locally administered unicast address
/// `02:00:` followed by the IPv4 address, so frames are stable and readable.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    if ip.is_broadcast() {
        [0xff; 6]
    } else if ip.is_multicast() {
        [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
    } else {
        [0x02, 0x00, o[0], o[1], o[2], o[3]]
    }
}

fn sum_words(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([pair[0], pair[1]])));
        acc = (acc & 0xffff) + (acc >> 16);
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn take(bytes: &[u8], offset: usize, len: usize) -> Result<&[u8], PcapError> {
    offset
        .checked_add(len)
        .and_then(|end| bytes.get(offset..end))
        .ok_or(PcapError::Truncated {
            offset,
            need: len,
            have: bytes.len().saturating_sub(offset),
        })
}

/// Four bytes at `at`; callers pass slices already checked to be long enough.
fn array4(b: &[u8], at: usize) -> [u8; 4] {
    let mut out = [0u8; 4];
    if let Some(src) = b.get(at..at + 4) {
        out.copy_from_slice(src);
    }
    out
}

fn ipv4_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let s = b.get(at..at + 4)?;
    Some(Ipv4Addr::new(s[0], s[1], s[2], s[3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(a: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(a), port)
    }

    #[test]
    fn checksum_rfc1071_example() {
        // RFC 1071 section 3 sums 00 01 f2 03 f4 f5 f6 f7 to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&data), !0xddf2);
        // Odd length pads with zero.
        assert_eq!(internet_checksum(&[0xab]), !0xab00);
    }

    #[test]
    fn ipv4_header_checksum_verifies_to_zero() {
        let p = Ipv4Params::new(
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::new(198, 18, 0, 2),
            IP_PROTO_UDP,
        );
        let packet = ipv4_packet(&p, &[1, 2, 3]).unwrap_or_default();
        assert_eq!(internet_checksum(&packet[..20]), 0);
        assert_eq!(u16::from_be_bytes([packet[2], packet[3]]), 23);
    }

    #[test]
    fn udp_checksum_verifies_with_pseudo_header() {
        let (s, d) = (addr([198, 18, 0, 1], 434), addr([198, 18, 0, 2], 434));
        let udp = udp_datagram(s, d, b"registration").unwrap_or_default();
        let mut all = Vec::new();
        all.extend_from_slice(&s.ip().octets());
        all.extend_from_slice(&d.ip().octets());
        all.extend_from_slice(&[0, 17]);
        all.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        all.extend_from_slice(&udp);
        assert_eq!(internet_checksum(&all), 0);
    }

    #[test]
    fn build_then_parse_udp() {
        let (s, d) = (addr([198, 18, 0, 10], 5000), addr([198, 18, 1, 1], 434));
        let frame = ethernet_ipv4_udp(s, d, &[1, 2, 3, 4]).unwrap_or_default();
        assert_eq!(&frame[..6], &[2, 0, 198, 18, 1, 1]);
        let dgram = parse_udp(&frame).unwrap_or_else(|| panic!("parse"));
        assert_eq!(
            (dgram.source, dgram.destination, dgram.payload),
            (s, d, &[1u8, 2, 3, 4][..])
        );
        // Ethernet padding after the packet is ignored.
        let mut padded = frame.clone();
        padded.resize(80, 0);
        assert_eq!(
            parse_udp(&padded).map(|d| d.payload),
            Some(&[1u8, 2, 3, 4][..])
        );
        // Cut short: None, no panic.
        for n in 0..frame.len() {
            assert!(parse_udp(&frame[..n]).is_none());
        }
    }

    #[test]
    fn icmp_frame_has_ttl_one_and_broadcast_mac() {
        let frame = ethernet_ipv4_icmp(
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::BROADCAST,
            &[10, 0, 0xf5, 0xff, 0, 0, 0, 0],
        )
        .unwrap_or_default();
        assert_eq!(&frame[..6], &[0xff; 6]);
        let ip = parse_ethernet_ipv4(&frame).unwrap_or_else(|| panic!("parse"));
        assert_eq!(
            (ip.protocol, ip.ttl, ip.payload.len()),
            (IP_PROTO_ICMP, 1, 8)
        );
        assert_eq!(mac_for(Ipv4Addr::new(224, 0, 0, 1)), [1, 0, 0x5e, 0, 0, 1]);
    }

    #[test]
    fn write_then_read_round_trip() {
        let frames = vec![
            (Time::from_micros(1_000_000_123_456), vec![1u8, 2, 3]),
            (Time::from_micros(1_000_000_500_000), vec![0xaa; 100]),
        ];
        let bytes = pcap_bytes(&frames);
        assert_eq!(bytes.len(), 24 + 16 + 3 + 16 + 100);
        let file = read_pcap(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((file.linktype, file.nanosecond), (LINKTYPE_ETHERNET, false));
        assert_eq!(file.frames.len(), 2);
        assert_eq!(file.frames[0].timestamp, frames[0].0);
        assert_eq!(file.frames[1].data, frames[1].1);
        assert_eq!(file.frames[1].original_len, 100);
    }

    #[test]
    fn reads_big_endian_nanosecond_files() {
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC_NANOS.to_be_bytes());
        b.extend_from_slice(&[0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&65535u32.to_be_bytes());
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&7u32.to_be_bytes());
        b.extend_from_slice(&1_500u32.to_be_bytes()); // 1.5 µs
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(&[9, 9]);
        let file = read_pcap(&b).unwrap_or_else(|e| panic!("{e}"));
        assert!(file.nanosecond);
        assert_eq!(file.frames[0].timestamp, Time::from_micros(7_000_001));
        assert_eq!(file.frames[0].data, vec![9, 9]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(read_pcap(&[]), Err(PcapError::Truncated { .. })));
        assert!(matches!(read_pcap(&[0u8; 24]), Err(PcapError::BadMagic(0))));
        let mut bytes = pcap_bytes(&[(Time::from_secs(1), vec![1, 2, 3, 4])]);
        let full = bytes.len();
        for n in 0..full {
            if n != 24 {
                assert!(read_pcap(&bytes[..n]).is_err(), "length {n}");
            }
        }
        // A huge caplen is refused before allocating.
        bytes[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_pcap(&bytes),
            Err(PcapError::RecordTooLarge { .. })
        ));
    }

    #[test]
    fn oversized_payload_is_refused() {
        let (s, d) = (addr([198, 18, 0, 1], 1), addr([198, 18, 0, 2], 2));
        assert!(matches!(
            ethernet_ipv4_udp(s, d, &vec![0; 70_000]),
            Err(PcapError::FrameTooLarge { .. })
        ));
    }
}
