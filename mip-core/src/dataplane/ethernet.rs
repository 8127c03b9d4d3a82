//! Ethernet II frames: `| destination (6) | source (6) | EtherType (2) | payload |`.

use super::{array, be16, room, DataplaneError, Result};

pub const HEADER_LEN: usize = 14;
/// Shortest frame without its FCS; shorter ones are padded with zeros.
pub const MIN_FRAME_LEN: usize = 60;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const BROADCAST: [u8; 6] = [0xff; 6];

pub type MacAddr = [u8; 6];

/// A parsed frame; `payload` may end with padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub ethertype: u16,
    pub payload: &'a [u8],
}

pub fn parse(frame: &[u8]) -> Result<Frame<'_>> {
    if frame.len() < HEADER_LEN {
        return Err(DataplaneError::Truncated { need: HEADER_LEN, have: frame.len() });
    }
    Ok(Frame {
        dst: array::<6>(frame, 0)?,
        src: array::<6>(frame, 6)?,
        ethertype: be16(frame, 12)?,
        payload: frame.get(HEADER_LEN..).unwrap_or_default(),
    })
}

/// Writes the 14-byte header; the payload goes at `out[14..]`.
pub fn write_header(dst: MacAddr, src: MacAddr, ethertype: u16, out: &mut [u8]) -> Result<usize> {
    let h = room(out, HEADER_LEN)?;
    h[..6].copy_from_slice(&dst);
    h[6..12].copy_from_slice(&src);
    h[12..14].copy_from_slice(&ethertype.to_be_bytes());
    Ok(HEADER_LEN)
}

/// Writes a whole frame, padded to [`MIN_FRAME_LEN`]; returns its length.
pub fn write_frame(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8], out: &mut [u8]) -> Result<usize> {
    let len = (HEADER_LEN + payload.len()).max(MIN_FRAME_LEN);
    let buf = room(out, len)?;
    write_header(dst, src, ethertype, buf)?;
    buf[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
    for b in &mut buf[HEADER_LEN + payload.len()..] {
        *b = 0;
    }
    Ok(len)
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &MacAddr) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_and_padding() {
        let mut out = [0xaau8; 80];
        let n = write_frame(BROADCAST, [2, 0, 0, 0, 0, 1], ETHERTYPE_ARP, &[1, 2, 3], &mut out).unwrap();
        assert_eq!(n, 60);
        assert_eq!(&out[..17], &[255, 255, 255, 255, 255, 255, 2, 0, 0, 0, 0, 1, 8, 6, 1, 2, 3]);
        assert!(out[17..60].iter().all(|&b| b == 0));
        let f = parse(&out[..n]).unwrap();
        assert_eq!((f.dst, f.src, f.ethertype, &f.payload[..3]), (BROADCAST, [2, 0, 0, 0, 0, 1], 0x0806, &[1u8, 2, 3][..]));
        assert_eq!(parse(&out[..13]), Err(DataplaneError::Truncated { need: 14, have: 13 }));
        assert_eq!(format_mac(&[2, 0, 0xab, 0, 0, 1]), "02:00:ab:00:00:01");
    }
}
