//! Byte layouts of the device-to-device negotiation (RFC-NOTES.md, "SID negotiation", section 4).
//!
//! Every message is one UDP datagram to or from [`super::NEGOTIATION_PORT`]: a 20-octet
//! header, a body fixed by the Type (and, for the Offer, by the Mode), and a 32-octet
//! HMAC-SHA256 at the very end. Parsing checks every length and refuses trailing bytes,
//! so each message is self-delimiting and a transcript of whole messages is unambiguous.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Version = 1  |     Type      |     Mode      |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Initiator Nonce (16 octets) ...               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 body (by Type) ...                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 MAC (32 octets, HMAC-SHA256) ...              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use core::net::Ipv4Addr;

use mip_core::wire::WireError;

use super::terms::{ReversePath, Role, SessionTerms, MAX_LLA_LEN};
use crate::crypto::{SEALED_KEY_LEN, WRAPPED_KEY_LEN};

pub type Result<T> = core::result::Result<T, WireError>;

pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 20;
pub const NONCE_LEN: usize = 16;
pub const MAC_LEN: usize = 32;
/// Fixed part of the Session Terms block; the link-layer address follows it.
pub const TERMS_FIXED_LEN: usize = 16;
/// Fixed part of an Offer after the header: Timestamp, Role, two ID lengths, Reserved.
pub const OFFER_FIXED_LEN: usize = 12;
pub const MAX_ID_LEN: usize = 64;
/// The Offer Secret of a public-key Offer: HPKE auth-mode `enc || ct || tag`.
pub const OFFER_SECRET_LEN: usize = SEALED_KEY_LEN;
pub const ACCEPT_MIN_LEN: usize = HEADER_LEN + NONCE_LEN + TERMS_FIXED_LEN + MAC_LEN;
pub const REFUSE_LEN: usize = HEADER_LEN + 12 + MAC_LEN;
pub const CONFIRM_LEN: usize = HEADER_LEN + NONCE_LEN + MAC_LEN;

/// Flags octet of the Session Terms.
pub mod terms_flag {
    /// F: further transfer permitted (in a Target's Offer: asked for).
    pub const FURTHER_TRANSFER: u8 = 0x80;
    /// T: reverse-tunnel the return traffic through the Agent.
    pub const REVERSE_TUNNEL: u8 = 0x40;
}

/// The Type octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Offer = 1,
    Accept = 2,
    Refuse = 3,
    SessionKey = 4,
    Confirm = 5,
}

impl MessageType {
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => MessageType::Offer,
            2 => MessageType::Accept,
            3 => MessageType::Refuse,
            4 => MessageType::SessionKey,
            5 => MessageType::Confirm,
            _ => return None,
        })
    }
}

/// The Mode octet: which kind of security association the two devices share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// A pre-shared secret.
    PreShared = 1,
    /// Each device's X25519 public key, known to the other from its configuration.
    PublicKey = 2,
}

impl Mode {
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Mode::PreShared),
            2 => Some(Mode::PublicKey),
            _ => None,
        }
    }

    /// The Algorithm octet of the Session Key message in this mode; the numbers are those
    /// of the registration extension "Encrypted Session Key" (1 = RFC 5649 key wrap,
    /// 2 = HPKE base mode).
    pub fn key_algorithm(self) -> u8 {
        self as u8
    }

    /// Length of the encrypted key in this mode.
    pub fn encrypted_key_len(self) -> usize {
        match self {
            Mode::PreShared => WRAPPED_KEY_LEN,
            Mode::PublicKey => SEALED_KEY_LEN,
        }
    }
}

/// Why a negotiation is refused (Refuse message, Code octet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseCode {
    /// The user or the local policy said no.
    Declined,
    /// Another negotiation with this peer is under way.
    Busy,
    /// The Offer's timestamp is outside the responder's window.
    ClockSkew,
    /// The offered terms are incomplete or not allowed for the offerer's role.
    BadTerms,
    /// Nobody decided before the responder's decision timeout.
    NoAnswer,
    Unknown(u8),
}

impl From<u8> for RefuseCode {
    fn from(code: u8) -> Self {
        match code {
            1 => RefuseCode::Declined,
            2 => RefuseCode::Busy,
            3 => RefuseCode::ClockSkew,
            4 => RefuseCode::BadTerms,
            5 => RefuseCode::NoAnswer,
            other => RefuseCode::Unknown(other),
        }
    }
}

impl From<RefuseCode> for u8 {
    fn from(code: RefuseCode) -> u8 {
        match code {
            RefuseCode::Declined => 1,
            RefuseCode::Busy => 2,
            RefuseCode::ClockSkew => 3,
            RefuseCode::BadTerms => 4,
            RefuseCode::NoAnswer => 5,
            RefuseCode::Unknown(other) => other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub mode: Mode,
    pub nonce_i: [u8; NONCE_LEN],
    /// The initiator's clock, 64-bit NTP format.
    pub timestamp: u64,
    /// The initiator's role.
    pub role: Role,
    pub terms: SessionTerms,
    pub initiator_id: String,
    pub responder_id: String,
    /// HPKE auth-mode seal of the negotiation secret; present exactly in public-key mode.
    pub offer_secret: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    pub mode: Mode,
    pub nonce_i: [u8; NONCE_LEN],
    pub nonce_r: [u8; NONCE_LEN],
    /// The final terms.
    pub terms: SessionTerms,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refuse {
    pub mode: Mode,
    pub nonce_i: [u8; NONCE_LEN],
    pub code: RefuseCode,
    /// The responder's clock, 64-bit NTP format (tells the initiator the skew).
    pub timestamp: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeyMessage {
    pub mode: Mode,
    pub nonce_i: [u8; NONCE_LEN],
    pub nonce_r: [u8; NONCE_LEN],
    /// 1 = AES key wrap with padding under the pre-shared secret, 2 = HPKE base mode.
    pub algorithm: u8,
    pub encrypted_key: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub mode: Mode,
    pub nonce_i: [u8; NONCE_LEN],
    pub nonce_r: [u8; NONCE_LEN],
}

/// One negotiation message, without its MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Offer(Offer),
    Accept(Accept),
    Refuse(Refuse),
    SessionKey(SessionKeyMessage),
    Confirm(Confirm),
}

/// A parsed datagram: the message, the bytes its MAC covers (all but the last 32) and the MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub message: Message,
    pub covered: &'a [u8],
    pub mac: [u8; MAC_LEN],
}

impl Message {
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Offer(_) => MessageType::Offer,
            Message::Accept(_) => MessageType::Accept,
            Message::Refuse(_) => MessageType::Refuse,
            Message::SessionKey(_) => MessageType::SessionKey,
            Message::Confirm(_) => MessageType::Confirm,
        }
    }

    pub fn mode(&self) -> Mode {
        match self {
            Message::Offer(m) => m.mode,
            Message::Accept(m) => m.mode,
            Message::Refuse(m) => m.mode,
            Message::SessionKey(m) => m.mode,
            Message::Confirm(m) => m.mode,
        }
    }

    pub fn nonce_i(&self) -> &[u8; NONCE_LEN] {
        match self {
            Message::Offer(m) => &m.nonce_i,
            Message::Accept(m) => &m.nonce_i,
            Message::Refuse(m) => &m.nonce_i,
            Message::SessionKey(m) => &m.nonce_i,
            Message::Confirm(m) => &m.nonce_i,
        }
    }

    /// Length of the whole datagram, MAC included.
    pub fn buffer_len(&self) -> usize {
        let body = match self {
            Message::Offer(m) => {
                OFFER_FIXED_LEN
                    + terms_len(&m.terms)
                    + m.initiator_id.len()
                    + m.responder_id.len()
                    + m.offer_secret.as_ref().map_or(0, Vec::len)
            }
            Message::Accept(m) => NONCE_LEN + terms_len(&m.terms),
            Message::Refuse(_) => 12,
            Message::SessionKey(m) => NONCE_LEN + 4 + m.encrypted_key.len(),
            Message::Confirm(_) => NONCE_LEN,
        };
        HEADER_LEN + body + MAC_LEN
    }

    /// Everything but the MAC, which the caller computes over these bytes and appends.
    /// Fails on a field too long for its length octet or a mode/secret mismatch, so that
    /// nothing unparseable is ever sent.
    pub fn emit_unauthenticated(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.buffer_len());
        out.push(VERSION);
        out.push(self.message_type() as u8);
        out.push(self.mode() as u8);
        out.push(0);
        out.extend_from_slice(self.nonce_i());
        match self {
            Message::Offer(m) => {
                let id_i = id_len(&m.initiator_id)?;
                let id_r = id_len(&m.responder_id)?;
                match (&m.offer_secret, m.mode) {
                    (None, Mode::PreShared) => {}
                    (Some(s), Mode::PublicKey) if s.len() == OFFER_SECRET_LEN => {}
                    _ => return Err(WireError::Malformed("offer secret does not match the mode")),
                }
                out.extend_from_slice(&m.timestamp.to_be_bytes());
                out.extend_from_slice(&[m.role.code(), id_i, id_r, 0]);
                emit_terms(&m.terms, &mut out)?;
                out.extend_from_slice(m.initiator_id.as_bytes());
                out.extend_from_slice(m.responder_id.as_bytes());
                if let Some(secret) = &m.offer_secret {
                    out.extend_from_slice(secret);
                }
            }
            Message::Accept(m) => {
                out.extend_from_slice(&m.nonce_r);
                emit_terms(&m.terms, &mut out)?;
            }
            Message::Refuse(m) => {
                out.extend_from_slice(&[u8::from(m.code), 0, 0, 0]);
                out.extend_from_slice(&m.timestamp.to_be_bytes());
            }
            Message::SessionKey(m) => {
                let len = u16::try_from(m.encrypted_key.len())
                    .map_err(|_| WireError::Malformed("encrypted key longer than 65535"))?;
                out.extend_from_slice(&m.nonce_r);
                out.extend_from_slice(&[m.algorithm, 0]);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&m.encrypted_key);
            }
            Message::Confirm(m) => out.extend_from_slice(&m.nonce_r),
        }
        Ok(out)
    }

    /// Parses a whole datagram. Refuses an unknown version, type, mode or role, lengths
    /// out of range, a Mode/Algorithm mismatch and trailing bytes. Reserved fields are
    /// ignored (the MAC covers them anyway).
    pub fn parse(datagram: &[u8]) -> Result<Parsed<'_>> {
        let body_end = datagram
            .len()
            .checked_sub(MAC_LEN)
            .filter(|end| *end >= HEADER_LEN)
            .ok_or(WireError::Truncated {
                need: HEADER_LEN + MAC_LEN,
                have: datagram.len(),
            })?;
        let (covered, mac_bytes) = datagram.split_at(body_end);
        let mac: [u8; MAC_LEN] = mac_bytes
            .try_into()
            .map_err(|_| WireError::Malformed("MAC length"))?;
        let mut r = Reader::new(covered, datagram.len());
        if r.u8()? != VERSION {
            return Err(WireError::Malformed("unsupported negotiation version"));
        }
        let msg_type = MessageType::from_code(r.u8()?)
            .ok_or(WireError::Malformed("unknown negotiation message type"))?;
        let mode = Mode::from_code(r.u8()?).ok_or(WireError::Malformed("unknown mode"))?;
        let _reserved = r.u8()?;
        let nonce_i = r.array::<NONCE_LEN>()?;
        let message = match msg_type {
            MessageType::Offer => {
                let timestamp = r.u64()?;
                let role = Role::from_code(r.u8()?).ok_or(WireError::Malformed("unknown role"))?;
                let id_i = usize::from(r.u8()?);
                let id_r = usize::from(r.u8()?);
                let _reserved = r.u8()?;
                let terms = parse_terms(&mut r)?;
                let initiator_id = parse_id(&mut r, id_i)?;
                let responder_id = parse_id(&mut r, id_r)?;
                let offer_secret = match mode {
                    Mode::PreShared => None,
                    Mode::PublicKey => Some(r.take(OFFER_SECRET_LEN)?.to_vec()),
                };
                Message::Offer(Offer {
                    mode,
                    nonce_i,
                    timestamp,
                    role,
                    terms,
                    initiator_id,
                    responder_id,
                    offer_secret,
                })
            }
            MessageType::Accept => {
                let nonce_r = r.array::<NONCE_LEN>()?;
                let terms = parse_terms(&mut r)?;
                Message::Accept(Accept {
                    mode,
                    nonce_i,
                    nonce_r,
                    terms,
                })
            }
            MessageType::Refuse => {
                let code = RefuseCode::from(r.u8()?);
                r.take(3)?;
                let timestamp = r.u64()?;
                Message::Refuse(Refuse {
                    mode,
                    nonce_i,
                    code,
                    timestamp,
                })
            }
            MessageType::SessionKey => {
                let nonce_r = r.array::<NONCE_LEN>()?;
                let algorithm = r.u8()?;
                let _reserved = r.u8()?;
                let len = usize::from(r.u16()?);
                if algorithm != mode.key_algorithm() {
                    return Err(WireError::Malformed(
                        "key algorithm does not match the mode",
                    ));
                }
                if len != mode.encrypted_key_len() {
                    return Err(WireError::Malformed(
                        "encrypted key length wrong for its algorithm",
                    ));
                }
                let encrypted_key = r.take(len)?.to_vec();
                Message::SessionKey(SessionKeyMessage {
                    mode,
                    nonce_i,
                    nonce_r,
                    algorithm,
                    encrypted_key,
                })
            }
            MessageType::Confirm => {
                let nonce_r = r.array::<NONCE_LEN>()?;
                Message::Confirm(Confirm {
                    mode,
                    nonce_i,
                    nonce_r,
                })
            }
        };
        if !r.is_empty() {
            return Err(WireError::Malformed("trailing bytes before the MAC"));
        }
        Ok(Parsed {
            message,
            covered,
            mac,
        })
    }
}

/// Reads the Type octet without parsing, to classify a datagram cheaply.
pub fn peek_type(datagram: &[u8]) -> Option<MessageType> {
    match datagram {
        [VERSION, t, ..] => MessageType::from_code(*t),
        _ => None,
    }
}

fn terms_len(terms: &SessionTerms) -> usize {
    TERMS_FIXED_LEN + terms.tn_lla.len()
}

fn id_len(id: &str) -> Result<u8> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(WireError::Malformed("identity must be 1 to 64 octets"));
    }
    u8::try_from(id.len()).map_err(|_| WireError::Malformed("identity must be 1 to 64 octets"))
}

fn addr_or_zero(a: Option<Ipv4Addr>) -> [u8; 4] {
    a.unwrap_or(Ipv4Addr::UNSPECIFIED).octets()
}

fn nonzero(a: Ipv4Addr) -> Option<Ipv4Addr> {
    (!a.is_unspecified()).then_some(a)
}

/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |F|T| Reserved  |  LLA Length   |       Lifetime (seconds)      |
/// |                 Transferring Node Address                     |
/// |                 Agent Address (0.0.0.0: none)                 |
/// |                 Interim Address (0.0.0.0: none)               |
/// |                 Link-Layer Address (LLA Length octets) ...    |
/// ```
fn emit_terms(terms: &SessionTerms, out: &mut Vec<u8>) -> Result<()> {
    let lla_len = u8::try_from(terms.tn_lla.len())
        .ok()
        .filter(|l| usize::from(*l) <= MAX_LLA_LEN)
        .ok_or(WireError::Malformed(
            "link-layer address longer than 20 octets",
        ))?;
    let mut flags = 0u8;
    if terms.further_transfer {
        flags |= terms_flag::FURTHER_TRANSFER;
    }
    if terms.reverse_path == ReversePath::Tunnel {
        flags |= terms_flag::REVERSE_TUNNEL;
    }
    out.extend_from_slice(&[flags, lla_len]);
    out.extend_from_slice(&terms.lifetime.to_be_bytes());
    out.extend_from_slice(&terms.tn_address.octets());
    out.extend_from_slice(&addr_or_zero(terms.agent));
    out.extend_from_slice(&addr_or_zero(terms.interim));
    out.extend_from_slice(&terms.tn_lla);
    Ok(())
}

fn parse_terms(r: &mut Reader<'_>) -> Result<SessionTerms> {
    let flags = r.u8()?;
    let lla_len = usize::from(r.u8()?);
    if lla_len > MAX_LLA_LEN {
        return Err(WireError::Malformed(
            "link-layer address longer than 20 octets",
        ));
    }
    let lifetime = r.u16()?;
    let tn_address = Ipv4Addr::from(r.array::<4>()?);
    let agent = nonzero(Ipv4Addr::from(r.array::<4>()?));
    let interim = nonzero(Ipv4Addr::from(r.array::<4>()?));
    let tn_lla = r.take(lla_len)?.to_vec();
    Ok(SessionTerms {
        tn_address,
        agent,
        tn_lla,
        interim,
        further_transfer: flags & terms_flag::FURTHER_TRANSFER != 0,
        lifetime,
        reverse_path: if flags & terms_flag::REVERSE_TUNNEL != 0 {
            ReversePath::Tunnel
        } else {
            ReversePath::Direct
        },
    })
}

fn parse_id(r: &mut Reader<'_>, len: usize) -> Result<String> {
    if len == 0 || len > MAX_ID_LEN {
        return Err(WireError::Malformed("identity must be 1 to 64 octets"));
    }
    let bytes = r.take(len)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| WireError::Malformed("identity is not UTF-8"))
}

/// A cursor that never reads past the end: every read is checked and reports how much
/// the whole datagram would have needed.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Length of the whole datagram (MAC included), for `Truncated` reports.
    total: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], total: usize) -> Self {
        Reader { buf, pos: 0, total }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.saturating_add(n);
        let slice = self.buf.get(self.pos..end).ok_or(WireError::Truncated {
            need: end.saturating_add(MAC_LEN),
            have: self.total,
        })?;
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        s.try_into()
            .map_err(|_| WireError::Malformed("internal length"))
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(u8::from_be_bytes(self.array::<1>()?))
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array::<2>()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array::<8>()?))
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
}
