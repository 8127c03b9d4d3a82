use super::*;

#[test]
fn every_byte_round_trips() {
    for v in 0..=u8::MAX {
        assert_eq!(u8::from(ReplyCode::from(v)), v);
    }
}

#[test]
fn named_codes_are_sorted_unique_and_snake_case() {
    let values: Vec<u8> = ReplyCode::ALL.iter().map(|c| u8::from(*c)).collect();
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "ascending and unique"
    );
    let mut names: Vec<&str> = ReplyCode::ALL.iter().map(|c| c.name()).collect();
    for name in &names {
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{name}"
        );
        assert!(!name.starts_with('_') && !name.ends_with('_') && !name.contains("__"));
    }
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ReplyCode::ALL.len());
    assert!(!names.contains(&"unknown"));
    for code in ReplyCode::ALL {
        assert_ne!(
            ReplyCode::from(u8::from(*code)),
            ReplyCode::Unknown(u8::from(*code))
        );
        assert!(!code.description().is_empty());
    }
}

#[test]
fn rfc_values() {
    let expect = [
        (0, ReplyCode::Accepted),
        (1, ReplyCode::AcceptedNoSimultaneousBindings),
        (64, ReplyCode::FaReasonUnspecified),
        (69, ReplyCode::FaLifetimeTooLong),
        (74, ReplyCode::FaReverseTunnelUnavailable),
        (79, ReplyCode::FaDeliveryStyleNotSupported),
        (88, ReplyCode::FaHomeAgentUnreachable),
        (96, ReplyCode::FaNonZeroHomeAddressRequired),
        (99, ReplyCode::FaMissingHomeAddress),
        (100, ReplyCode::FaUnsupportedVendorId),
        (101, ReplyCode::FaUnsupportedVendorIdFromHomeAgent),
        (128, ReplyCode::ReasonUnspecified),
        (129, ReplyCode::AdministrativelyProhibited),
        (130, ReplyCode::InsufficientResources),
        (131, ReplyCode::MobileNodeFailedAuthentication),
        (132, ReplyCode::ForeignAgentFailedAuthentication),
        (133, ReplyCode::IdentificationMismatch),
        (134, ReplyCode::PoorlyFormedRequest),
        (135, ReplyCode::TooManySimultaneousBindings),
        (136, ReplyCode::UnknownHomeAgentAddress),
        (137, ReplyCode::ReverseTunnelUnavailable),
        (138, ReplyCode::ReverseTunnelMandatory),
        (139, ReplyCode::EncapsulationUnavailable),
        (140, ReplyCode::UnsupportedVendorId),
        (141, ReplyCode::UnsupportedVendorIdFromForeignAgent),
        (194, ReplyCode::FaInvalidHomeAgentAddress),
    ];
    for (v, code) in expect {
        assert_eq!(ReplyCode::from(v), code);
        assert_eq!(u8::from(code), v);
    }
    assert_eq!(ReplyCode::from(2), ReplyCode::Unknown(2));
    assert_eq!(
        ReplyCode::IdentificationMismatch.name(),
        "identification_mismatch"
    );
    assert_eq!(ReplyCode::Unknown(2).name(), "unknown");
}

#[test]
fn classes() {
    assert!(ReplyCode::Accepted.is_accepted());
    assert!(ReplyCode::AcceptedNoSimultaneousBindings.is_accepted());
    assert!(ReplyCode::Unknown(0).is_accepted());
    assert!(!ReplyCode::ReasonUnspecified.is_accepted());
    assert!(!ReplyCode::Unknown(2).is_accepted());
    assert!(ReplyCode::FaMissingNai.is_foreign_agent_denial());
    assert!(ReplyCode::FaInvalidHomeAgentAddress.is_foreign_agent_denial());
    assert!(!ReplyCode::FaInvalidHomeAgentAddress.is_home_agent_denial());
    assert!(ReplyCode::UnsupportedVendorId.is_home_agent_denial());
    assert!(!ReplyCode::Accepted.is_home_agent_denial());
    assert_eq!(
        ReplyCode::IdentificationMismatch.to_string(),
        "denied by home agent: registration identification mismatch (133)"
    );
}
