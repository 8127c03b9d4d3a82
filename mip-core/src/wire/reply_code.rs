//! Registration Reply codes (RFC 5944 section 3.4 and the RFCs that extend it).
//!
//! Values were checked against the RFC texts and Wireshark's `mip.code` table
//! (`tshark -G values`). A value without a name round-trips through `Unknown`.

/// Declares the enum, its conversions, names and descriptions from one table, so a value,
/// its stable name and its text cannot drift apart.
macro_rules! reply_codes {
    ($( $(#[$doc:meta])* $variant:ident = $value:literal, $name:literal, $desc:literal; )*) => {
        /// The Code field of a Registration Reply.
        ///
        /// `Unknown(n)` holds any value without a name here. `Unknown` of a named value
        /// (say `Unknown(0)`) is never produced by `From<u8>`; it still converts back to its
        /// number.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ReplyCode {
            $( $(#[$doc])* $variant, )*
            /// A code this table does not name.
            Unknown(u8),
        }

        impl From<u8> for ReplyCode {
            fn from(value: u8) -> Self {
                match value {
                    $( $value => ReplyCode::$variant, )*
                    other => ReplyCode::Unknown(other),
                }
            }
        }

        impl From<ReplyCode> for u8 {
            fn from(code: ReplyCode) -> u8 {
                match code {
                    $( ReplyCode::$variant => $value, )*
                    ReplyCode::Unknown(other) => other,
                }
            }
        }

        impl ReplyCode {
            /// Every named code, in numeric order.
            pub const ALL: &'static [ReplyCode] = &[ $( ReplyCode::$variant, )* ];

            /// Stable snake_case name, for statistics and JSON. `Unknown` is `"unknown"`.
            pub fn name(self) -> &'static str {
                match self {
                    $( ReplyCode::$variant => $name, )*
                    ReplyCode::Unknown(_) => "unknown",
                }
            }

            /// Human-readable text, as the defining RFC words it.
            pub fn description(self) -> &'static str {
                match self {
                    $( ReplyCode::$variant => $desc, )*
                    ReplyCode::Unknown(_) => "unknown code",
                }
            }
        }
    };
}

reply_codes! {
    // ---- success (RFC 5944 3.4)
    Accepted = 0, "accepted", "registration accepted";
    AcceptedNoSimultaneousBindings = 1, "accepted_no_simultaneous_bindings",
        "registration accepted, but simultaneous mobility bindings unsupported";

    // ---- denied by the foreign agent (RFC 5944 3.4 unless noted)
    FaReasonUnspecified = 64, "fa_reason_unspecified", "denied by foreign agent: reason unspecified";
    FaAdministrativelyProhibited = 65, "fa_administratively_prohibited",
        "denied by foreign agent: administratively prohibited";
    FaInsufficientResources = 66, "fa_insufficient_resources",
        "denied by foreign agent: insufficient resources";
    FaMobileNodeFailedAuthentication = 67, "fa_mobile_node_failed_authentication",
        "denied by foreign agent: mobile node failed authentication";
    FaHomeAgentFailedAuthentication = 68, "fa_home_agent_failed_authentication",
        "denied by foreign agent: home agent failed authentication";
    FaLifetimeTooLong = 69, "fa_lifetime_too_long",
        "denied by foreign agent: requested lifetime too long";
    FaPoorlyFormedRequest = 70, "fa_poorly_formed_request",
        "denied by foreign agent: poorly formed request";
    FaPoorlyFormedReply = 71, "fa_poorly_formed_reply", "denied by foreign agent: poorly formed reply";
    FaEncapsulationUnavailable = 72, "fa_encapsulation_unavailable",
        "denied by foreign agent: requested encapsulation unavailable";
    /// RFC 3344 "VJ compression unavailable"; RFC 5944 marks it reserved.
    FaReservedUnavailable = 73, "fa_reserved_unavailable",
        "denied by foreign agent: reserved and unavailable";
    /// RFC 3024.
    FaReverseTunnelUnavailable = 74, "fa_reverse_tunnel_unavailable",
        "denied by foreign agent: requested reverse tunnel unavailable";
    /// RFC 3024.
    FaReverseTunnelMandatory = 75, "fa_reverse_tunnel_mandatory",
        "denied by foreign agent: reverse tunnel is mandatory and 'T' bit not set";
    /// RFC 3024.
    FaMobileNodeTooDistant = 76, "fa_mobile_node_too_distant",
        "denied by foreign agent: mobile node too distant";
    FaInvalidCareOfAddress = 77, "fa_invalid_care_of_address",
        "denied by foreign agent: invalid care-of address";
    FaRegistrationTimeout = 78, "fa_registration_timeout", "denied by foreign agent: registration timeout";
    /// RFC 3024.
    FaDeliveryStyleNotSupported = 79, "fa_delivery_style_not_supported",
        "denied by foreign agent: delivery style not supported";
    FaHomeNetworkUnreachable = 80, "fa_home_network_unreachable",
        "denied by foreign agent: home network unreachable (ICMP error received)";
    FaHomeAgentHostUnreachable = 81, "fa_home_agent_host_unreachable",
        "denied by foreign agent: home agent host unreachable (ICMP error received)";
    FaHomeAgentPortUnreachable = 82, "fa_home_agent_port_unreachable",
        "denied by foreign agent: home agent port unreachable (ICMP error received)";
    FaHomeAgentUnreachable = 88, "fa_home_agent_unreachable",
        "denied by foreign agent: home agent unreachable (other ICMP error received)";
    /// IANA registry (Wireshark `mip.code`).
    FaVendorSpecificReason = 89, "fa_vendor_specific_reason",
        "denied by foreign agent: vendor-specific reason";
    /// IANA registry (Wireshark `mip.code`).
    FaNonZeroHomeAgentAddressRequired = 90, "fa_non_zero_home_agent_address_required",
        "denied by foreign agent: non-zero home agent address required";
    /// RFC 2794.
    FaNonZeroHomeAddressRequired = 96, "fa_non_zero_home_address_required",
        "denied by foreign agent: non-zero home address required";
    /// RFC 2794.
    FaMissingNai = 97, "fa_missing_nai", "denied by foreign agent: missing NAI";
    /// RFC 2794.
    FaMissingHomeAgent = 98, "fa_missing_home_agent", "denied by foreign agent: missing home agent";
    /// RFC 2794.
    FaMissingHomeAddress = 99, "fa_missing_home_address", "denied by foreign agent: missing home address";
    /// RFC 3115: a CVSE from the mobile node not understood.
    FaUnsupportedVendorId = 100, "fa_unsupported_vendor_id",
        "denied by foreign agent: unsupported vendor ID or unable to interpret the CVSE sent by the mobile node";
    /// RFC 3115: a CVSE from the home agent not understood.
    FaUnsupportedVendorIdFromHomeAgent = 101, "fa_unsupported_vendor_id_from_home_agent",
        "denied by foreign agent: unsupported vendor ID or unable to interpret the CVSE sent by the home agent";
    /// RFC 3012.
    FaUnknownChallenge = 104, "fa_unknown_challenge", "denied by foreign agent: unknown challenge";
    /// RFC 3012.
    FaMissingChallenge = 105, "fa_missing_challenge", "denied by foreign agent: missing challenge";
    /// RFC 3012.
    FaStaleChallenge = 106, "fa_stale_challenge", "denied by foreign agent: stale challenge";
    /// RFC 3957.
    FaMissingKeyGenerationNonceReply = 107, "fa_missing_key_generation_nonce_reply",
        "denied by foreign agent: missing MN-FA key generation nonce reply extension";
    /// IANA registry (Wireshark `mip.code`).
    FaMobileNodeFailedAaaAuthentication = 108, "fa_mobile_node_failed_aaa_authentication",
        "denied by foreign agent: mobile node failed AAA authentication";
    /// IANA registry (Wireshark `mip.code`).
    FaHomeAgentWrongChallenge = 109, "fa_home_agent_wrong_challenge",
        "denied by foreign agent: home agent sent wrong challenge in reply";
    /// IANA registry: reserved for experimental use.
    FaExperimentalUse = 127, "fa_experimental_use", "denied by foreign agent: experimental use";

    // ---- denied by the home agent (RFC 5944 3.4 unless noted)
    ReasonUnspecified = 128, "reason_unspecified", "denied by home agent: reason unspecified";
    AdministrativelyProhibited = 129, "administratively_prohibited",
        "denied by home agent: administratively prohibited";
    InsufficientResources = 130, "insufficient_resources", "denied by home agent: insufficient resources";
    MobileNodeFailedAuthentication = 131, "mobile_node_failed_authentication",
        "denied by home agent: mobile node failed authentication";
    ForeignAgentFailedAuthentication = 132, "foreign_agent_failed_authentication",
        "denied by home agent: foreign agent failed authentication";
    IdentificationMismatch = 133, "identification_mismatch",
        "denied by home agent: registration identification mismatch";
    PoorlyFormedRequest = 134, "poorly_formed_request", "denied by home agent: poorly formed request";
    TooManySimultaneousBindings = 135, "too_many_simultaneous_bindings",
        "denied by home agent: too many simultaneous mobility bindings";
    UnknownHomeAgentAddress = 136, "unknown_home_agent_address",
        "denied by home agent: unknown home agent address";
    /// RFC 3024.
    ReverseTunnelUnavailable = 137, "reverse_tunnel_unavailable",
        "denied by home agent: requested reverse tunnel unavailable";
    /// RFC 3024.
    ReverseTunnelMandatory = 138, "reverse_tunnel_mandatory",
        "denied by home agent: reverse tunnel is mandatory and 'T' bit not set";
    /// RFC 3024.
    EncapsulationUnavailable = 139, "encapsulation_unavailable",
        "denied by home agent: requested encapsulation unavailable";
    /// RFC 3115: a CVSE from the mobile node not understood.
    UnsupportedVendorId = 140, "unsupported_vendor_id",
        "denied by home agent: unsupported vendor ID or unable to interpret the CVSE sent by the mobile node";
    /// RFC 3115: a CVSE from the foreign agent not understood.
    UnsupportedVendorIdFromForeignAgent = 141, "unsupported_vendor_id_from_foreign_agent",
        "denied by home agent: unsupported vendor ID or unable to interpret the CVSE sent by the foreign agent";
    /// RFC 3519.
    UdpEncapsulationUnavailable = 142, "udp_encapsulation_unavailable",
        "denied by home agent: UDP encapsulation unavailable";
    /// IANA registry (Wireshark `mip.code`).
    RegisterWithRedirectedHomeAgent = 143, "register_with_redirected_home_agent",
        "denied by home agent: register with redirected home agent";
    /// IANA registry (Wireshark `mip.code`).
    MobileNodeFailedAaaAuthentication = 144, "mobile_node_failed_aaa_authentication",
        "denied by home agent: mobile node failed AAA authentication";
    /// IANA registry (Wireshark `mip.code`), proxy Mobile IPv4.
    PmipUnsupported = 149, "pmip_unsupported", "denied by home agent: proxy Mobile IP unsupported";
    /// IANA registry (Wireshark `mip.code`), proxy Mobile IPv4.
    PmipDisallowed = 150, "pmip_disallowed", "denied by home agent: proxy Mobile IP disallowed";
    /// IANA registry: reserved for experimental use.
    ExperimentalUse = 192, "experimental_use", "denied by home agent: experimental use";
    /// RFC 5944 3.4 lists it among the foreign agent codes although its value is in the
    /// home agent range.
    FaInvalidHomeAgentAddress = 194, "fa_invalid_home_agent_address",
        "denied by foreign agent: invalid home agent address";
}

impl ReplyCode {
    /// Codes 0 and 1: the registration was accepted.
    pub fn is_accepted(self) -> bool {
        u8::from(self) <= 1
    }

    /// Denied by a foreign agent: 64..=127 and 194 (RFC 5944 3.4 places it with the foreign
    /// agent codes).
    pub fn is_foreign_agent_denial(self) -> bool {
        matches!(u8::from(self), 64..=127 | 194)
    }

    /// Denied by a home agent: 128..=255 except 194.
    pub fn is_home_agent_denial(self) -> bool {
        matches!(u8::from(self), 128..=255) && !self.is_foreign_agent_denial()
    }
}

impl core::fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.description(), u8::from(*self))
    }
}

#[cfg(test)]
mod tests;
