//! What the two devices agree on: the session to transfer and how (patent FIG. 1a/1b).

use core::net::Ipv4Addr;

/// Longest link-layer address carried (20 octets: the largest ARP hardware address in
/// common use, IP over InfiniBand; Ethernet's is 6).
pub const MAX_LLA_LEN: usize = 20;

/// A device's part in the transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The device that holds the session now and hands it over.
    TransferringNode,
    /// The device that takes it.
    TargetNode,
}

impl Role {
    /// The Role octet of an Offer.
    pub const fn code(self) -> u8 {
        match self {
            Role::TransferringNode => 1,
            Role::TargetNode => 2,
        }
    }

    pub const fn from_code(code: u8) -> Option<Role> {
        match code {
            1 => Some(Role::TransferringNode),
            2 => Some(Role::TargetNode),
            _ => None,
        }
    }

    /// The peer's role when this device has `self`.
    pub const fn other(self) -> Role {
        match self {
            Role::TransferringNode => Role::TargetNode,
            Role::TargetNode => Role::TransferringNode,
        }
    }
}

/// How the Target sends the session's return traffic (patent: "Returning traffic ...").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReversePath {
    /// Straight to the correspondent, with the Transferring Node's address as source.
    Direct,
    /// Reverse-tunnelled to the Agent, for networks with ingress filtering.
    Tunnel,
}

/// The session to transfer, as offered or as agreed.
///
/// In the final terms every field is the Transferring Node's word except `reverse_path`
/// (the Target knows whether its network filters) and `lifetime` (either side may
/// shorten it). A Target that starts the negotiation leaves the Transferring Node's
/// fields empty and asks for a lifetime, a reverse path and, with `further_transfer`,
/// for permission to hand the session on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionTerms {
    /// The address that moves. In a Target's Offer, unspecified means "whatever session
    /// you hold".
    pub tn_address: Ipv4Addr,
    /// The Agent (home agent) that will tunnel; `None` on the same subnet (FIG. 1b), where
    /// the Target takes the address over by ARP itself.
    pub agent: Option<Ipv4Addr>,
    /// The Transferring Node's link-layer address, for the wake-up message; may be empty
    /// when an interim address is given.
    pub tn_lla: Vec<u8>,
    /// An interim address to send the wake-up to instead of using the link-layer address.
    pub interim: Option<Ipv4Addr>,
    /// Whether the Target may transfer the session further (in a Target's Offer: asks for it).
    pub further_transfer: bool,
    /// Lifetime of the transfer in seconds, at least 1 (the Agent caps it further).
    pub lifetime: u16,
    pub reverse_path: ReversePath,
}

/// Why terms cannot be offered or accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TermsError {
    #[error("the Transferring Node's address is unspecified")]
    NoTnAddress,
    #[error("the lifetime is zero")]
    ZeroLifetime,
    #[error("neither a link-layer address nor an interim address: the wake-up could not be sent")]
    NoWakeUpAddress,
    #[error("link-layer address of {len} octets; at most {MAX_LLA_LEN} are carried")]
    LlaTooLong { len: usize },
    #[error("the {0} is 0.0.0.0; leave it out instead")]
    Unspecified(&'static str),
    #[error("the {0} is the Transferring Node's to give; a Target's offer leaves it out")]
    SetByTransferringNode(&'static str),
    #[error("the answer changed the {0}, which only the offering Transferring Node sets")]
    Changed(&'static str),
    #[error("the answer raised the lifetime from {offered} to {answered} seconds")]
    LifetimeRaised { offered: u16, answered: u16 },
    #[error("further transfer granted although it was not asked for")]
    FurtherTransferNotOffered,
    #[error("the answer changed the reverse path the Target asked for")]
    ReversePathChanged,
}

impl SessionTerms {
    /// What a Target asks for when it starts the negotiation.
    pub fn target_request(
        tn_address: Ipv4Addr,
        lifetime: u16,
        reverse_path: ReversePath,
        further_transfer: bool,
    ) -> Self {
        SessionTerms {
            tn_address,
            agent: None,
            tn_lla: Vec::new(),
            interim: None,
            further_transfer,
            lifetime,
            reverse_path,
        }
    }

    /// Checks terms that a device with role `offerer` may put in an Offer.
    pub fn check_offer(&self, offerer: Role) -> Result<(), TermsError> {
        match offerer {
            Role::TransferringNode => self.check_final(),
            Role::TargetNode => {
                if self.lifetime == 0 {
                    return Err(TermsError::ZeroLifetime);
                }
                if self.agent.is_some() {
                    return Err(TermsError::SetByTransferringNode("agent address"));
                }
                if self.interim.is_some() {
                    return Err(TermsError::SetByTransferringNode("interim address"));
                }
                if !self.tn_lla.is_empty() {
                    return Err(TermsError::SetByTransferringNode("link-layer address"));
                }
                Ok(())
            }
        }
    }

    /// Checks that the terms are complete enough to carry out a transfer.
    pub fn check_final(&self) -> Result<(), TermsError> {
        if self.tn_address.is_unspecified() {
            return Err(TermsError::NoTnAddress);
        }
        if self.lifetime == 0 {
            return Err(TermsError::ZeroLifetime);
        }
        if self.tn_lla.len() > MAX_LLA_LEN {
            return Err(TermsError::LlaTooLong {
                len: self.tn_lla.len(),
            });
        }
        if self.agent.is_some_and(|a| a.is_unspecified()) {
            return Err(TermsError::Unspecified("agent address"));
        }
        if self.interim.is_some_and(|a| a.is_unspecified()) {
            return Err(TermsError::Unspecified("interim address"));
        }
        if self.tn_lla.is_empty() && self.interim.is_none() {
            return Err(TermsError::NoWakeUpAddress);
        }
        Ok(())
    }

    /// Checks an answer against the offer it answers, `initiator` being the offerer's role.
    ///
    /// Both ends apply the same rules: the responder before it sends an Accept, the
    /// initiator when one arrives.
    pub fn check_answer(
        initiator: Role,
        offered: &SessionTerms,
        answered: &SessionTerms,
    ) -> Result<(), TermsError> {
        answered.check_final()?;
        if answered.lifetime > offered.lifetime {
            return Err(TermsError::LifetimeRaised {
                offered: offered.lifetime,
                answered: answered.lifetime,
            });
        }
        if answered.further_transfer && !offered.further_transfer {
            return Err(TermsError::FurtherTransferNotOffered);
        }
        match initiator {
            Role::TransferringNode => {
                if answered.tn_address != offered.tn_address {
                    return Err(TermsError::Changed("Transferring Node address"));
                }
                if answered.agent != offered.agent {
                    return Err(TermsError::Changed("agent address"));
                }
                if answered.tn_lla != offered.tn_lla {
                    return Err(TermsError::Changed("link-layer address"));
                }
                if answered.interim != offered.interim {
                    return Err(TermsError::Changed("interim address"));
                }
            }
            Role::TargetNode => {
                if !offered.tn_address.is_unspecified() && answered.tn_address != offered.tn_address
                {
                    return Err(TermsError::Changed("Transferring Node address"));
                }
                if answered.reverse_path != offered.reverse_path {
                    return Err(TermsError::ReversePathChanged);
                }
            }
        }
        Ok(())
    }
}
