//! The nine SID elements: each is the value of one CVSE (RFC 3115, type 38) whose
//! Vendor/Org-ID is the configured organization and whose Vendor-CVSE-Type names the
//! element. Layouts, byte by byte, are in `RFC-NOTES.md, "SID formats"`; the `field` modules
//! below give the same offsets, counted from the start of the Vendor-CVSE-Value.

use core::net::Ipv4Addr;

use mip_core::wire::{Extension, VendorExtension, WireError};

use super::vendor_type;

/// Bytes a CVSE takes before its value: type, reserved, length (2), org id (4), vendor
/// type (2).
pub const CVSE_HEADER_LEN: usize = 10;
/// The largest value a CVSE can carry: its 16-bit length also counts org id and vendor type.
pub const MAX_VALUE_LEN: usize = u16::MAX as usize - 6;

/// Smallest session key the negotiation may pick (issue 4: at least 128 bits).
pub const MIN_SESSION_KEY_LEN: usize = 16;
/// RFC 5649: the output is the padded key plus an 8-byte integrity block, in 8-byte units.
pub const KEY_WRAP_BLOCK: usize = 8;
/// Smallest RFC 5649 output that can carry a [`MIN_SESSION_KEY_LEN`] key.
pub const MIN_KEY_WRAP_LEN: usize = MIN_SESSION_KEY_LEN + KEY_WRAP_BLOCK;
/// RFC 9180 DHKEM(X25519, HKDF-SHA256): Nenc, the encapsulated key that leads the output.
pub const HPKE_ENC_LEN: usize = 32;
/// RFC 9180 AES-128-GCM: Nt, the tag that ends the ciphertext.
pub const HPKE_TAG_LEN: usize = 16;
/// Smallest HPKE output (enc || ciphertext) that can carry a [`MIN_SESSION_KEY_LEN`] key.
pub const MIN_HPKE_LEN: usize = HPKE_ENC_LEN + MIN_SESSION_KEY_LEN + HPKE_TAG_LEN;
/// ARP hardware type of Ethernet (RFC 826 / IANA "Hardware Types").
pub const HARDWARE_TYPE_ETHERNET: u16 = 1;
/// Length of an Ethernet (EUI-48) address.
pub const ETHERNET_ADDRESS_LEN: usize = 6;
/// The longest link-layer address: ARP's hardware address length is one byte.
pub const MAX_LINK_LAYER_ADDRESS_LEN: usize = 255;
/// Session SPIs 0-255 are reserved (RFC 5944 1.6) and so cannot name an association.
pub const FIRST_USABLE_SPI: u32 = 256;

/// Why the value of a SID CVSE cannot be read (or written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ElementError {
    /// The Vendor-CVSE-Type is not one of the nine this version defines.
    #[error("unknown SID vendor type {0}")]
    UnknownVendorType(u16),
    /// The value breaks the element's layout; the text says how.
    #[error("{0}")]
    Malformed(&'static str),
}

/// How the session key in an Encrypted Session Key element is protected. The other
/// engineer's `crypto` module implements both; this module only frames their output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionKeyAlgorithm {
    /// 1: AES-256 key wrap with padding (RFC 5649) under a key derived with HKDF-SHA256
    /// from the key of the sender's mobility security association with the Agent.
    AesKeyWrapPadded,
    /// 2: HPKE (RFC 9180) base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM;
    /// the output is enc (32 bytes) followed by the ciphertext.
    HpkeX25519Aes128Gcm,
    /// Any other number, kept so the element round-trips; a receiver that does not
    /// implement it cannot recover the key.
    Unknown(u8),
}

impl From<u8> for SessionKeyAlgorithm {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::AesKeyWrapPadded,
            2 => Self::HpkeX25519Aes128Gcm,
            other => Self::Unknown(other),
        }
    }
}

impl From<SessionKeyAlgorithm> for u8 {
    fn from(a: SessionKeyAlgorithm) -> u8 {
        match a {
            SessionKeyAlgorithm::AesKeyWrapPadded => 1,
            SessionKeyAlgorithm::HpkeX25519Aes128Gcm => 2,
            SessionKeyAlgorithm::Unknown(v) => v,
        }
    }
}

/// Element 2: the session key, encrypted for the Agent. `data` is the algorithm's whole
/// output: the wrapped key, or HPKE `enc || ciphertext`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptedSessionKey<'a> {
    pub algorithm: SessionKeyAlgorithm,
    pub data: &'a [u8],
}

impl<'a> EncryptedSessionKey<'a> {
    /// For HPKE: `(enc, ciphertext)`; `None` for the other algorithms.
    pub fn hpke_parts(&self) -> Option<(&'a [u8], &'a [u8])> {
        match self.algorithm {
            SessionKeyAlgorithm::HpkeX25519Aes128Gcm => {
                let enc = self.data.get(..HPKE_ENC_LEN)?;
                let ct = self.data.get(HPKE_ENC_LEN..)?;
                Some((enc, ct))
            }
            _ => None,
        }
    }

    fn check(&self) -> Result<(), ElementError> {
        let len = self.data.len();
        let ok = match self.algorithm {
            SessionKeyAlgorithm::AesKeyWrapPadded => {
                len >= MIN_KEY_WRAP_LEN && len.is_multiple_of(KEY_WRAP_BLOCK)
            }
            SessionKeyAlgorithm::HpkeX25519Aes128Gcm => len >= MIN_HPKE_LEN,
            SessionKeyAlgorithm::Unknown(_) => len > 0,
        };
        if !ok {
            return Err(ElementError::Malformed(match self.algorithm {
                SessionKeyAlgorithm::AesKeyWrapPadded => {
                    "wrapped session key must be a multiple of 8 bytes and at least 24"
                }
                SessionKeyAlgorithm::HpkeX25519Aes128Gcm => {
                    "HPKE session key must be at least 64 bytes (enc, key, tag)"
                }
                SessionKeyAlgorithm::Unknown(_) => "encrypted session key is empty",
            }));
        }
        if 2 + len > MAX_VALUE_LEN {
            return Err(ElementError::Malformed("encrypted session key too long"));
        }
        Ok(())
    }
}

/// Element 4: the permissions the Transferring Node grants, as the raw flags byte so that
/// reserved bits round-trip (they are sent as zero and ignored on receipt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TransferFlags(pub u8);

impl TransferFlags {
    /// F: the Target may transfer the session further, to a second Target.
    pub const F: u8 = 0x80;
    /// T: the Target reverse-tunnels the return traffic through the Agent; clear, it
    /// sends it directly with the Transferring Node's address as source.
    pub const T: u8 = 0x40;
    /// The six bits this version does not define.
    pub const RESERVED: u8 = 0x3f;

    /// Flags with F and T as given, reserved bits zero.
    pub fn new(further_transfer: bool, reverse_tunnel: bool) -> Self {
        let mut bits = 0;
        if further_transfer {
            bits |= Self::F;
        }
        if reverse_tunnel {
            bits |= Self::T;
        }
        Self(bits)
    }

    pub fn further_transfer(self) -> bool {
        self.0 & Self::F != 0
    }

    pub fn reverse_tunnel(self) -> bool {
        self.0 & Self::T != 0
    }

    pub fn bits(self) -> u8 {
        self.0
    }
}

/// Element 5: the Transferring Node's link-layer address, where the wake-up goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkLayerAddress<'a> {
    /// ARP hardware type (IANA "Hardware Types"): 1 is Ethernet.
    pub hardware_type: u16,
    pub address: &'a [u8],
}

impl<'a> LinkLayerAddress<'a> {
    /// An Ethernet address.
    pub fn ethernet(address: &'a [u8; ETHERNET_ADDRESS_LEN]) -> Self {
        Self {
            hardware_type: HARDWARE_TYPE_ETHERNET,
            address,
        }
    }

    /// The Ethernet address, when this is one.
    pub fn as_ethernet(&self) -> Option<[u8; ETHERNET_ADDRESS_LEN]> {
        if self.hardware_type != HARDWARE_TYPE_ETHERNET {
            return None;
        }
        <[u8; ETHERNET_ADDRESS_LEN]>::try_from(self.address).ok()
    }

    fn check(&self) -> Result<(), ElementError> {
        let len = self.address.len();
        match self.hardware_type {
            0 => Err(ElementError::Malformed("hardware type 0 is reserved")),
            HARDWARE_TYPE_ETHERNET => {
                if len != ETHERNET_ADDRESS_LEN {
                    return Err(ElementError::Malformed("an Ethernet address is 6 bytes"));
                }
                // The wake-up is unicast to the node itself: a group or zero address
                // would send it elsewhere.
                if self.address.first().is_some_and(|b| b & 0x01 != 0) {
                    return Err(ElementError::Malformed(
                        "link-layer address is a group address",
                    ));
                }
                if self.address.iter().all(|b| *b == 0) {
                    return Err(ElementError::Malformed("link-layer address is all zero"));
                }
                Ok(())
            }
            _ if len == 0 || len > MAX_LINK_LAYER_ADDRESS_LEN => Err(ElementError::Malformed(
                "link-layer address must be 1 to 255 bytes",
            )),
            _ => Ok(()),
        }
    }
}

/// Element 7: why the Transferring Node demands that the transfer stop (the patent's four
/// reasons). Unknown values are kept and treated as unspecified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    Unspecified,
    SessionEnded,
    LinkLayerAddressChanged,
    Override,
    MissedWakeUp,
    Unknown(u8),
}

impl From<u8> for StopReason {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::Unspecified,
            1 => Self::SessionEnded,
            2 => Self::LinkLayerAddressChanged,
            3 => Self::Override,
            4 => Self::MissedWakeUp,
            other => Self::Unknown(other),
        }
    }
}

impl From<StopReason> for u8 {
    fn from(r: StopReason) -> u8 {
        match r {
            StopReason::Unspecified => 0,
            StopReason::SessionEnded => 1,
            StopReason::LinkLayerAddressChanged => 2,
            StopReason::Override => 3,
            StopReason::MissedWakeUp => 4,
            StopReason::Unknown(v) => v,
        }
    }
}

/// Element 8: why the transfer ended, carried by the wake-up. Unknown values are kept and
/// treated like an expired binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WakeUpReason {
    BindingExpired,
    EndedByZeroLifetime,
    StopTransferDemand,
    Revoked,
    Unknown(u8),
}

impl From<u8> for WakeUpReason {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::BindingExpired,
            1 => Self::EndedByZeroLifetime,
            2 => Self::StopTransferDemand,
            3 => Self::Revoked,
            other => Self::Unknown(other),
        }
    }
}

impl From<WakeUpReason> for u8 {
    fn from(r: WakeUpReason) -> u8 {
        match r {
            WakeUpReason::BindingExpired => 0,
            WakeUpReason::EndedByZeroLifetime => 1,
            WakeUpReason::StopTransferDemand => 2,
            WakeUpReason::Revoked => 3,
            WakeUpReason::Unknown(v) => v,
        }
    }
}

/// One SID element, borrowing variable-length data from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidElement<'a> {
    /// 1: the Target Node's IPv4 address.
    TargetAddress(Ipv4Addr),
    /// 2: the session key, encrypted for the Agent.
    SessionKey(EncryptedSessionKey<'a>),
    /// 3: the SPI of the temporary Agent/Target association keyed by the session key.
    SessionSpi(u32),
    /// 4: further-transfer permission and reverse-path mode.
    TransferFlags(TransferFlags),
    /// 5: the Transferring Node's link-layer address.
    LinkLayerAddress(LinkLayerAddress<'a>),
    /// 6: the Transferring Node's interim IPv4 address, for the wake-up.
    InterimAddress(Ipv4Addr),
    /// 7: the Transferring Node demands that the transfer stop.
    StopTransfer(StopReason),
    /// 8: the transfer ended (carried by the wake-up Generic Notification).
    WakeUp(WakeUpReason),
    /// 9: the Transferring Node whose traffic moves (in a further transfer).
    TransferringNode(Ipv4Addr),
}

/// Offsets in each value; `RFC-NOTES.md, "SID formats"` draws them.
mod field {
    use core::ops::Range;
    /// Target, Interim and Transferring Node addresses.
    pub const ADDRESS: Range<usize> = 0..4;
    pub const KEY_ALGORITHM: usize = 0;
    pub const KEY_RESERVED: usize = 1;
    pub const KEY_DATA: usize = 2;
    pub const SPI: Range<usize> = 0..4;
    /// Transfer Flags, Stop-Transfer and Wake-Up: one byte, then one reserved byte.
    pub const CODE: usize = 0;
    pub const CODE_RESERVED: usize = 1;
    pub const CODE_LEN: usize = 2;
    pub const HW_TYPE: Range<usize> = 0..2;
    pub const HW_ADDRESS: usize = HW_TYPE.end;
}

fn exact<const N: usize>(value: &[u8], what: &'static str) -> Result<[u8; N], ElementError> {
    <[u8; N]>::try_from(value).map_err(|_| ElementError::Malformed(what))
}

/// Target, Interim and Transferring Node addresses name one host.
fn check_unicast(a: Ipv4Addr) -> Result<(), ElementError> {
    if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
        Err(ElementError::Malformed(
            "address must be a unicast IPv4 address",
        ))
    } else {
        Ok(())
    }
}

fn check_spi(spi: u32) -> Result<(), ElementError> {
    if spi < FIRST_USABLE_SPI {
        Err(ElementError::Malformed(
            "session SPI is in the reserved range 0-255",
        ))
    } else {
        Ok(())
    }
}

fn byte(value: &[u8], at: usize) -> u8 {
    value.get(at).copied().unwrap_or(0)
}

impl<'a> SidElement<'a> {
    /// The Vendor-CVSE-Type that carries this element.
    pub fn vendor_type(&self) -> u16 {
        match self {
            Self::TargetAddress(_) => vendor_type::TARGET_ADDRESS,
            Self::SessionKey(_) => vendor_type::ENCRYPTED_SESSION_KEY,
            Self::SessionSpi(_) => vendor_type::SESSION_SPI,
            Self::TransferFlags(_) => vendor_type::TRANSFER_FLAGS,
            Self::LinkLayerAddress(_) => vendor_type::LINK_LAYER_ADDRESS,
            Self::InterimAddress(_) => vendor_type::INTERIM_ADDRESS,
            Self::StopTransfer(_) => vendor_type::STOP_TRANSFER,
            Self::WakeUp(_) => vendor_type::WAKE_UP,
            Self::TransferringNode(_) => vendor_type::TRANSFERRING_NODE_ADDRESS,
        }
    }

    /// Reads the Vendor-CVSE-Value of vendor type `vendor_type`. Fixed-size values must
    /// have exactly their size; every rule in [`Self::check`] applies.
    pub fn parse(vendor_type: u16, value: &'a [u8]) -> Result<Self, ElementError> {
        let element = match vendor_type {
            vendor_type::TARGET_ADDRESS => Self::TargetAddress(Ipv4Addr::from(exact::<4>(
                value,
                "Target Address is 4 bytes",
            )?)),
            vendor_type::ENCRYPTED_SESSION_KEY => {
                if value.len() <= field::KEY_DATA {
                    return Err(ElementError::Malformed(
                        "Encrypted Session Key needs algorithm, reserved and data",
                    ));
                }
                Self::SessionKey(EncryptedSessionKey {
                    algorithm: SessionKeyAlgorithm::from(byte(value, field::KEY_ALGORITHM)),
                    data: value.get(field::KEY_DATA..).unwrap_or(&[]),
                })
            }
            vendor_type::SESSION_SPI => Self::SessionSpi(u32::from_be_bytes(exact::<4>(
                value,
                "Session SPI is 4 bytes",
            )?)),
            vendor_type::TRANSFER_FLAGS => {
                let v = exact::<{ field::CODE_LEN }>(value, "Transfer Flags is 2 bytes")?;
                Self::TransferFlags(TransferFlags(v[field::CODE]))
            }
            vendor_type::LINK_LAYER_ADDRESS => {
                let hw = value
                    .get(field::HW_TYPE)
                    .and_then(|b| <[u8; 2]>::try_from(b).ok())
                    .ok_or(ElementError::Malformed(
                        "Link-Layer Address needs a hardware type",
                    ))?;
                Self::LinkLayerAddress(LinkLayerAddress {
                    hardware_type: u16::from_be_bytes(hw),
                    address: value.get(field::HW_ADDRESS..).unwrap_or(&[]),
                })
            }
            vendor_type::INTERIM_ADDRESS => Self::InterimAddress(Ipv4Addr::from(exact::<4>(
                value,
                "Interim Address is 4 bytes",
            )?)),
            vendor_type::STOP_TRANSFER => {
                let v = exact::<{ field::CODE_LEN }>(value, "Stop-Transfer Demand is 2 bytes")?;
                Self::StopTransfer(StopReason::from(v[field::CODE]))
            }
            vendor_type::WAKE_UP => {
                let v = exact::<{ field::CODE_LEN }>(value, "Wake-Up is 2 bytes")?;
                Self::WakeUp(WakeUpReason::from(v[field::CODE]))
            }
            vendor_type::TRANSFERRING_NODE_ADDRESS => Self::TransferringNode(Ipv4Addr::from(
                exact::<4>(value, "Transferring Node Address is 4 bytes")?,
            )),
            other => return Err(ElementError::UnknownVendorType(other)),
        };
        element.check()?;
        Ok(element)
    }

    /// Reads a CVSE if it belongs to `org_id`; `None` for another organization's.
    pub fn from_vendor(
        org_id: u32,
        cvse: &VendorExtension<'a>,
    ) -> Option<Result<Self, ElementError>> {
        (cvse.org_id == org_id).then(|| Self::parse(cvse.vendor_type, cvse.value))
    }

    /// The rules beyond the layout: unicast addresses, SPI outside 0-255, key sizes, a
    /// sane link-layer address. `parse` and every emit apply them, so that what is written
    /// always reads back.
    pub fn check(&self) -> Result<(), ElementError> {
        match self {
            Self::TargetAddress(a) | Self::InterimAddress(a) | Self::TransferringNode(a) => {
                check_unicast(*a)
            }
            Self::SessionKey(k) => k.check(),
            Self::SessionSpi(spi) => check_spi(*spi),
            Self::LinkLayerAddress(l) => l.check(),
            Self::TransferFlags(_) | Self::StopTransfer(_) | Self::WakeUp(_) => Ok(()),
        }
    }

    /// Bytes of the Vendor-CVSE-Value.
    pub fn value_len(&self) -> usize {
        match self {
            Self::TargetAddress(_)
            | Self::InterimAddress(_)
            | Self::TransferringNode(_)
            | Self::SessionSpi(_) => 4,
            Self::SessionKey(k) => field::KEY_DATA + k.data.len(),
            Self::LinkLayerAddress(l) => field::HW_ADDRESS + l.address.len(),
            Self::TransferFlags(_) | Self::StopTransfer(_) | Self::WakeUp(_) => field::CODE_LEN,
        }
    }

    /// Bytes of the whole CVSE.
    pub fn buffer_len(&self) -> usize {
        CVSE_HEADER_LEN + self.value_len()
    }

    /// Writes the Vendor-CVSE-Value at the start of `buf`; returns the bytes written.
    /// `Truncated` if `buf` is too short, `Malformed` if [`Self::check`] fails.
    pub fn emit_value(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        self.check().map_err(to_wire)?;
        let len = self.value_len();
        let have = buf.len();
        let out = buf
            .get_mut(..len)
            .ok_or(WireError::Truncated { need: len, have })?;
        out.fill(0);
        let mut w = Writer { out };
        match self {
            Self::TargetAddress(a) | Self::InterimAddress(a) | Self::TransferringNode(a) => {
                w.bytes(field::ADDRESS.start, &a.octets());
            }
            Self::SessionKey(k) => {
                w.u8(field::KEY_ALGORITHM, k.algorithm.into());
                w.u8(field::KEY_RESERVED, 0);
                w.bytes(field::KEY_DATA, k.data);
            }
            Self::SessionSpi(spi) => w.bytes(field::SPI.start, &spi.to_be_bytes()),
            Self::TransferFlags(f) => {
                w.u8(field::CODE, f.0);
                w.u8(field::CODE_RESERVED, 0);
            }
            Self::LinkLayerAddress(l) => {
                w.bytes(field::HW_TYPE.start, &l.hardware_type.to_be_bytes());
                w.bytes(field::HW_ADDRESS, l.address);
            }
            Self::StopTransfer(r) => {
                w.u8(field::CODE, (*r).into());
                w.u8(field::CODE_RESERVED, 0);
            }
            Self::WakeUp(r) => {
                w.u8(field::CODE, (*r).into());
                w.u8(field::CODE_RESERVED, 0);
            }
        }
        Ok(len)
    }

    /// The Vendor-CVSE-Value as a new vector.
    pub fn value_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut v = vec![0u8; self.value_len()];
        self.emit_value(&mut v)?;
        Ok(v)
    }

    /// Writes the whole CVSE (type 38, long form) for `org_id` at the start of `buf`.
    pub fn emit(&self, org_id: u32, buf: &mut [u8]) -> Result<usize, WireError> {
        let value = self.value_bytes()?;
        Extension::CriticalVendor(VendorExtension {
            org_id,
            vendor_type: self.vendor_type(),
            value: &value,
        })
        .emit(buf)
    }

    /// Appends the whole CVSE for `org_id` to `out`; on error `out` is left as it was.
    pub fn append_to(&self, org_id: u32, out: &mut Vec<u8>) -> Result<(), WireError> {
        let value = self.value_bytes()?;
        Extension::CriticalVendor(VendorExtension {
            org_id,
            vendor_type: self.vendor_type(),
            value: &value,
        })
        .append_to(out)
    }
}

pub(crate) fn to_wire(e: ElementError) -> WireError {
    match e {
        ElementError::Malformed(why) => WireError::Malformed(why),
        ElementError::UnknownVendorType(_) => WireError::Malformed("unknown SID vendor type"),
    }
}

/// Writes into a slice already sized to the value; out-of-range writes are dropped
/// rather than panicking (they cannot happen once `value_len` sized the slice).
struct Writer<'b> {
    out: &'b mut [u8],
}

impl Writer<'_> {
    fn u8(&mut self, at: usize, value: u8) {
        if let Some(b) = self.out.get_mut(at) {
            *b = value;
        }
    }

    fn bytes(&mut self, at: usize, value: &[u8]) {
        if let Some(dst) = self.out.get_mut(at..at.saturating_add(value.len())) {
            dst.copy_from_slice(value);
        }
    }
}

#[cfg(test)]
mod tests;
