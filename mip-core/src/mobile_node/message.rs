//! Building Registration Requests and checking Registration Replies for the mobile node.

use core::net::Ipv4Addr;

use crate::auth::{self, SecurityAssociation};
use crate::replay;
use crate::wire::{ReplyCode, 
    ext_type, is_skippable, Extension, RegistrationFlags, RegistrationReply, RegistrationReplyRepr,
    RegistrationRequestRepr, WireError,
};

/// The fields of one request that change from one transmission to the next.
pub(super) struct RequestFields {
    pub flags: RegistrationFlags,
    pub lifetime: u16,
    pub home_address: Ipv4Addr,
    pub home_agent: Ipv4Addr,
    pub care_of_address: Ipv4Addr,
    pub identification: u64,
}

/// Builds a Registration Request in the order RFC 5944 3.6.1.3 requires: the fixed part,
/// then the extensions the home agent uses (the NAI, RFC 2794), then the
/// authorization-enabling Mobile-Home Authentication Extension, which covers them all.
pub(super) fn build_request(
    fields: &RequestFields,
    nai: Option<&[u8]>,
    sa: &SecurityAssociation,
) -> Result<Vec<u8>, WireError> {
    // `r` and `x` are sent as zero (RFC 5944 3.3) whatever the configuration says.
    let flags = RegistrationFlags(
        fields.flags.bits() & !(RegistrationFlags::R_RESERVED | RegistrationFlags::X),
    );
    let repr = RegistrationRequestRepr {
        flags,
        lifetime: fields.lifetime,
        home_address: fields.home_address,
        home_agent: fields.home_agent,
        care_of_address: fields.care_of_address,
        identification: fields.identification,
    };
    let mut message = repr.to_bytes();
    if let Some(nai) = nai {
        Extension::Nai(nai).append_to(&mut message)?;
    }
    auth::append_auth_extension(&mut message, ext_type::MOBILE_HOME_AUTH, sa);
    Ok(message)
}

/// What the mobile node expects of a reply to its most recent request.
pub(super) struct Expected<'a> {
    /// `UNSPECIFIED` when the node registers by NAI and learns its address from the reply.
    pub home_address: Ipv4Addr,
    pub identification: u64,
    pub sa: &'a SecurityAssociation,
}

/// Why a reply was silently discarded (RFC 5944 3.6.2.1); each reason has a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Discard {
    /// Not a well-formed Registration Reply, or it carries an extension we must not skip.
    Malformed,
    /// No request is pending, or the home address or identification does not match it.
    Unmatched,
    /// A Mobile-Home Authentication Extension is missing, repeated, of another SPI, or
    /// wrong. The code it claimed is kept only to tell the user (a 131 we cannot verify
    /// usually means our key is wrong); nothing acts on it.
    Authentication { claimed: ReplyCode },
}

/// A reply that passed every validity check.
#[derive(Debug, Clone, Copy)]
pub(super) struct ValidReply {
    pub repr: RegistrationReplyRepr,
    /// Whether a Mobile-Home authenticator vouched for it; only foreign agent denials may
    /// arrive without one.
    pub authenticated: bool,
}

/// Checks a reply against the pending request, in the order of RFC 5944 3.6.2.1: the
/// format, then the match on home address and the low-order 32 bits of the
/// identification (5.7: only those are copied unchanged into every reply, a 133 under
/// timestamps rewrites the high bits), then the authenticator.
pub(super) fn check_reply(
    payload: &[u8],
    expected: Option<&Expected<'_>>,
) -> Result<ValidReply, Discard> {
    let reply = RegistrationReply::new_checked(payload).map_err(|_| Discard::Malformed)?;
    let repr = RegistrationReplyRepr::parse(&reply).map_err(|_| Discard::Malformed)?;
    let expected = expected.ok_or(Discard::Unmatched)?;
    let home_matches =
        expected.home_address.is_unspecified() || repr.home_address == expected.home_address;
    if !home_matches || !replay::low_order_matches(expected.identification, repr.identification) {
        return Err(Discard::Unmatched);
    }

    // RFC 5944 1.9: an extension numbered 0..=127 that we do not understand makes the
    // whole message unusable; vendor-critical ones (RFC 3115) likewise.
    let mut home_auth = None;
    let mut home_auth_count = 0usize;
    for item in reply.extensions() {
        let item = item.map_err(|_| Discard::Malformed)?;
        match item.ext {
            Extension::MobileHomeAuth(a) => {
                home_auth_count += 1;
                home_auth = Some((item.offset, a));
            }
            Extension::CriticalVendor(_) => return Err(Discard::Malformed),
            Extension::Unknown { ext_type, .. } if !is_skippable(ext_type) => {
                return Err(Discard::Malformed)
            }
            _ => {}
        }
    }

    // 3.6.2.1 (b): a reply carrying the home agent's verdict (acceptance or a home agent
    // denial) must carry exactly one Mobile-Home authenticator. A foreign agent denial is
    // built by the foreign agent, which shares no key with us; if one is present anyway it
    // must still verify.
    let needs_auth = !repr.code.is_foreign_agent_denial();
    if home_auth_count == 0 && !needs_auth {
        return Ok(ValidReply {
            repr,
            authenticated: false,
        });
    }
    match (home_auth_count, home_auth) {
        (1, Some((offset, a)))
            if a.spi == expected.sa.spi
                && auth::verify_auth_extension(payload, offset, expected.sa, a.authenticator) =>
        {
            Ok(ValidReply {
                repr,
                authenticated: true,
            })
        }
        _ => Err(Discard::Authentication { claimed: repr.code }),
    }
}
