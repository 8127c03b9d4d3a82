//! Generic Notification Message and its Acknowledgement (RFC 6098), message types 22 and
//! 23 on UDP port 434.
//!
//! Both have the shape of a Registration Request: a 24-byte fixed part, then extensions
//! read with [`ExtensionIter`] and closed by an authentication extension (RFC 5944 3.5),
//! whose authenticator covers the message up to and including its SPI. Wireshark 4.0 names
//! the two types but does not dissect them (its Mobile IP dissector refuses the datagram),
//! so these layouts are checked against hand-laid bytes and our own Lua dissector only.

use core::net::Ipv4Addr;

use super::bytes::{array, put, put_u8, u16_at, u64_at, u8_at};
use super::extension::ExtensionIter;
use super::{Result, WireError};

/// Message type of a Generic Notification Message.
pub const NOTIFICATION_TYPE: u8 = 22;
/// Message type of a Generic Notification Acknowledgement.
pub const NOTIFICATION_ACK_TYPE: u8 = 23;
/// Length of the fixed part of a Generic Notification Message; extensions follow it.
pub const NOTIFICATION_FIXED_LEN: usize = 24;
/// Length of the fixed part of a Generic Notification Acknowledgement.
pub const NOTIFICATION_ACK_FIXED_LEN: usize = 24;
/// Acknowledgement code: the notification was accepted and processed.
pub const ACK_CODE_SUCCESS: u8 = 0;

/// The MD (Message Direction) field: who sends to whom. Values the RFC does not name are
/// kept so that a message round-trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationDirection {
    /// 0: home agent to mobile node (the SID Agent waking the Transferring Node).
    HomeAgentToMobileNode,
    /// 1: home agent to foreign agent.
    HomeAgentToForeignAgent,
    /// 2: mobile node to home agent (the Transferring Node's acknowledgement).
    MobileNodeToHomeAgent,
    /// 3: mobile node to foreign agent.
    MobileNodeToForeignAgent,
    /// 4: foreign agent to mobile node.
    ForeignAgentToMobileNode,
    /// 5: foreign agent to home agent.
    ForeignAgentToHomeAgent,
    Unknown(u8),
}

impl From<u8> for NotificationDirection {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::HomeAgentToMobileNode,
            1 => Self::HomeAgentToForeignAgent,
            2 => Self::MobileNodeToHomeAgent,
            3 => Self::MobileNodeToForeignAgent,
            4 => Self::ForeignAgentToMobileNode,
            5 => Self::ForeignAgentToHomeAgent,
            other => Self::Unknown(other),
        }
    }
}

impl From<NotificationDirection> for u8 {
    fn from(d: NotificationDirection) -> u8 {
        match d {
            NotificationDirection::HomeAgentToMobileNode => 0,
            NotificationDirection::HomeAgentToForeignAgent => 1,
            NotificationDirection::MobileNodeToHomeAgent => 2,
            NotificationDirection::MobileNodeToForeignAgent => 3,
            NotificationDirection::ForeignAgentToMobileNode => 4,
            NotificationDirection::ForeignAgentToHomeAgent => 5,
            NotificationDirection::Unknown(v) => v,
        }
    }
}

/// RFC 6098 4.1, Generic Notification Message, and 4.2, its Acknowledgement (UDP
/// payload, port 434):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Type (22)    |      MD       |           Reserved            |   notification
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Type (23)    |      MD       |     Code      |   Reserved    |   acknowledgement
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                          Home Address                         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       Home Agent Address                      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                        Care-of Address                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                                                               |
/// +                         Identification                        +
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Extensions ...
/// +-+-+-+-+-+-+-+-
/// ```
///
/// Reserved bits are sent as zero and ignored on receipt. The Identification follows
/// RFC 5944 5.7 (timestamps or nonces) and is copied into the acknowledgement, which is
/// how the two are matched.
mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const DIRECTION: usize = 1;
    /// Notification: 16 reserved bits.
    pub const RESERVED: Range<usize> = 2..4;
    /// Acknowledgement: the code, then 8 reserved bits.
    pub const ACK_CODE: usize = 2;
    pub const ACK_RESERVED: usize = 3;
    pub const HOME_ADDRESS: Range<usize> = 4..8;
    pub const HOME_AGENT: Range<usize> = 8..12;
    pub const CARE_OF_ADDRESS: Range<usize> = 12..16;
    pub const IDENTIFICATION: Range<usize> = 16..24;
    pub const EXTENSIONS: usize = IDENTIFICATION.end;
}

fn check_min_len(have: usize, need: usize) -> Result<()> {
    if have < need {
        Err(WireError::Truncated { need, have })
    } else {
        Ok(())
    }
}

fn addr_at(buf: &[u8], f: core::ops::Range<usize>) -> Ipv4Addr {
    Ipv4Addr::from(array::<4>(buf, f.start))
}

fn check_type(got: u8, expected: u8) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(WireError::WrongType { expected, got })
    }
}

/// Getters and setters shared by the two views: everything but bytes 2 and 3.
macro_rules! common_accessors {
    ($view:ident) => {
        impl<T: AsRef<[u8]>> $view<T> {
            /// Wraps a buffer without checking its length; call `check_len` before trusting
            /// the getters (they never panic, but read zeros from a short buffer).
            pub fn new_unchecked(buffer: T) -> Self {
                Self { buffer }
            }

            /// Wraps a buffer that holds at least the 24-byte fixed part.
            pub fn new_checked(buffer: T) -> Result<Self> {
                let packet = Self::new_unchecked(buffer);
                packet.check_len()?;
                Ok(packet)
            }

            /// `Truncated` unless the buffer holds the fixed part.
            pub fn check_len(&self) -> Result<()> {
                check_min_len(self.buffer.as_ref().len(), field::EXTENSIONS)
            }

            pub fn msg_type(&self) -> u8 {
                u8_at(self.buffer.as_ref(), field::TYPE)
            }

            pub fn direction(&self) -> NotificationDirection {
                NotificationDirection::from(u8_at(self.buffer.as_ref(), field::DIRECTION))
            }

            pub fn home_address(&self) -> Ipv4Addr {
                addr_at(self.buffer.as_ref(), field::HOME_ADDRESS)
            }

            pub fn home_agent(&self) -> Ipv4Addr {
                addr_at(self.buffer.as_ref(), field::HOME_AGENT)
            }

            pub fn care_of_address(&self) -> Ipv4Addr {
                addr_at(self.buffer.as_ref(), field::CARE_OF_ADDRESS)
            }

            pub fn identification(&self) -> u64 {
                u64_at(self.buffer.as_ref(), field::IDENTIFICATION)
            }

            /// The extensions after the fixed part; offsets are from the start of the message.
            pub fn extensions(&self) -> ExtensionIter<'_> {
                ExtensionIter::new(self.buffer.as_ref(), field::EXTENSIONS)
            }

            pub fn into_inner(self) -> T {
                self.buffer
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $view<T> {
            pub fn set_msg_type(&mut self, value: u8) {
                put_u8(self.buffer.as_mut(), field::TYPE, value);
            }

            pub fn set_direction(&mut self, value: NotificationDirection) {
                put_u8(self.buffer.as_mut(), field::DIRECTION, value.into());
            }

            pub fn set_home_address(&mut self, value: Ipv4Addr) {
                put(self.buffer.as_mut(), field::HOME_ADDRESS, &value.octets());
            }

            pub fn set_home_agent(&mut self, value: Ipv4Addr) {
                put(self.buffer.as_mut(), field::HOME_AGENT, &value.octets());
            }

            pub fn set_care_of_address(&mut self, value: Ipv4Addr) {
                put(
                    self.buffer.as_mut(),
                    field::CARE_OF_ADDRESS,
                    &value.octets(),
                );
            }

            pub fn set_identification(&mut self, value: u64) {
                put(
                    self.buffer.as_mut(),
                    field::IDENTIFICATION,
                    &value.to_be_bytes(),
                );
            }
        }
    };
}

/// Zero-copy view of a Generic Notification Message: the whole UDP payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericNotification<T: AsRef<[u8]>> {
    buffer: T,
}

common_accessors!(GenericNotification);

impl<T: AsRef<[u8]>> GenericNotification<T> {
    /// The 16 reserved bits (zero when sent by us).
    pub fn reserved(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::RESERVED)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GenericNotification<T> {
    pub fn set_reserved(&mut self, value: u16) {
        put(self.buffer.as_mut(), field::RESERVED, &value.to_be_bytes());
    }
}

/// Zero-copy view of a Generic Notification Acknowledgement: the whole UDP payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericNotificationAck<T: AsRef<[u8]>> {
    buffer: T,
}

common_accessors!(GenericNotificationAck);

impl<T: AsRef<[u8]>> GenericNotificationAck<T> {
    /// The result: [`ACK_CODE_SUCCESS`] or a denial.
    pub fn code(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::ACK_CODE)
    }

    /// The 8 reserved bits (zero when sent by us).
    pub fn reserved(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::ACK_RESERVED)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GenericNotificationAck<T> {
    pub fn set_code(&mut self, value: u8) {
        put_u8(self.buffer.as_mut(), field::ACK_CODE, value);
    }

    pub fn set_reserved(&mut self, value: u8) {
        put_u8(self.buffer.as_mut(), field::ACK_RESERVED, value);
    }
}

/// The fixed part of a Generic Notification Message as plain values. The reserved bits
/// are not kept: they are ignored on receipt and written as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenericNotificationRepr {
    pub direction: NotificationDirection,
    pub home_address: Ipv4Addr,
    pub home_agent: Ipv4Addr,
    pub care_of_address: Ipv4Addr,
    pub identification: u64,
}

impl GenericNotificationRepr {
    /// Reads the fixed part; `WrongType` unless the type is 22. Extensions are left to
    /// [`GenericNotification::extensions`].
    pub fn parse<T: AsRef<[u8]>>(p: &GenericNotification<T>) -> Result<Self> {
        p.check_len()?;
        check_type(p.msg_type(), NOTIFICATION_TYPE)?;
        Ok(Self {
            direction: p.direction(),
            home_address: p.home_address(),
            home_agent: p.home_agent(),
            care_of_address: p.care_of_address(),
            identification: p.identification(),
        })
    }

    /// Bytes the fixed part takes (extensions are appended by the caller).
    pub fn buffer_len(&self) -> usize {
        NOTIFICATION_FIXED_LEN
    }

    /// Writes the fixed part into a buffer of at least [`Self::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut GenericNotification<T>) {
        p.set_msg_type(NOTIFICATION_TYPE);
        p.set_direction(self.direction);
        p.set_reserved(0);
        p.set_home_address(self.home_address);
        p.set_home_agent(self.home_agent);
        p.set_care_of_address(self.care_of_address);
        p.set_identification(self.identification);
    }

    /// The fixed part as a new vector, ready for extensions to be appended.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = GenericNotification::new_unchecked(vec![0u8; self.buffer_len()]);
        self.emit(&mut p);
        p.into_inner()
    }
}

/// The fixed part of a Generic Notification Acknowledgement as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenericNotificationAckRepr {
    pub direction: NotificationDirection,
    pub code: u8,
    pub home_address: Ipv4Addr,
    pub home_agent: Ipv4Addr,
    pub care_of_address: Ipv4Addr,
    pub identification: u64,
}

impl GenericNotificationAckRepr {
    /// The acknowledgement of `notification`: its addresses and Identification copied,
    /// sent in `direction` with `code`.
    pub fn answering(
        notification: &GenericNotificationRepr,
        direction: NotificationDirection,
        code: u8,
    ) -> Self {
        Self {
            direction,
            code,
            home_address: notification.home_address,
            home_agent: notification.home_agent,
            care_of_address: notification.care_of_address,
            identification: notification.identification,
        }
    }

    /// Reads the fixed part; `WrongType` unless the type is 23.
    pub fn parse<T: AsRef<[u8]>>(p: &GenericNotificationAck<T>) -> Result<Self> {
        p.check_len()?;
        check_type(p.msg_type(), NOTIFICATION_ACK_TYPE)?;
        Ok(Self {
            direction: p.direction(),
            code: p.code(),
            home_address: p.home_address(),
            home_agent: p.home_agent(),
            care_of_address: p.care_of_address(),
            identification: p.identification(),
        })
    }

    pub fn buffer_len(&self) -> usize {
        NOTIFICATION_ACK_FIXED_LEN
    }

    /// Writes the fixed part into a buffer of at least [`Self::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut GenericNotificationAck<T>) {
        p.set_msg_type(NOTIFICATION_ACK_TYPE);
        p.set_direction(self.direction);
        p.set_code(self.code);
        p.set_reserved(0);
        p.set_home_address(self.home_address);
        p.set_home_agent(self.home_agent);
        p.set_care_of_address(self.care_of_address);
        p.set_identification(self.identification);
    }

    /// The fixed part as a new vector, ready for extensions to be appended.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = GenericNotificationAck::new_unchecked(vec![0u8; self.buffer_len()]);
        self.emit(&mut p);
        p.into_inner()
    }
}

#[cfg(test)]
mod tests;
