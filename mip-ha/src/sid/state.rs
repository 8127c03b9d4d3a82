//! What the Agent remembers of transfers and of wake-ups still unacknowledged.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;

use mip_core::auth::SecurityAssociation;
use mip_core::time::Time;
use sid_ext::wire::{TransferFlags, WakeUpReason};

use super::{LinkTransmit, ReversePath, SidEvent, TransferSnapshot, WakeUpRoute, MAX_QUEUED};

/// The TN's own link-layer address as it gave it (any ARP hardware type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkAddress {
    pub hardware_type: u16,
    pub address: Vec<u8>,
}

impl LinkAddress {
    pub fn ethernet(&self) -> Option<[u8; 6]> {
        if self.hardware_type != sid_ext::wire::element::HARDWARE_TYPE_ETHERNET {
            return None;
        }
        <[u8; 6]>::try_from(self.address.as_slice()).ok()
    }
}

/// One running transfer: the binding TN address -> `target` in the binding list, plus
/// what only SID needs. The temporary association lives exactly as long as this entry,
/// which is removed with the binding.
#[derive(Debug, Clone)]
pub(crate) struct Transfer {
    /// Index of the TN in the configuration's mobile nodes.
    pub mobile_node: usize,
    pub transferring_node: Ipv4Addr,
    /// The SPI of the TN's association that authenticated the transfer: the wake-up is
    /// authenticated under it.
    pub tn_spi: u32,
    pub target: Ipv4Addr,
    /// The temporary Agent/Target association (session SPI, session key).
    pub session_sa: SecurityAssociation,
    /// Last timestamp accepted under `session_sa` (RFC 5944 5.7.1, per association).
    pub last_timestamp: Option<u64>,
    pub flags: TransferFlags,
    pub link_address: Option<LinkAddress>,
    pub interim: Option<Ipv4Addr>,
    pub started: Time,
    pub renewals: u64,
    pub previous_targets: Vec<Ipv4Addr>,
}

impl Transfer {
    pub fn reverse_path(&self) -> ReversePath {
        if self.flags.reverse_tunnel() {
            ReversePath::ReverseTunnel
        } else {
            ReversePath::Direct
        }
    }

    pub fn hops(&self) -> u32 {
        u32::try_from(self.previous_targets.len()).unwrap_or(u32::MAX)
    }

    pub fn route(&self) -> WakeUpRoute {
        if let Some(address) = self.interim {
            return WakeUpRoute::Interim { address };
        }
        match self.link_address.as_ref().and_then(LinkAddress::ethernet) {
            Some(mac) => WakeUpRoute::LinkLayer { mac },
            None => WakeUpRoute::HomeAddress,
        }
    }

    pub fn snapshot(&self, now: Time) -> TransferSnapshot {
        TransferSnapshot {
            transferring_node: self.transferring_node,
            target: self.target,
            further_transfer: self.flags.further_transfer(),
            reverse_path: self.reverse_path(),
            session_spi: self.session_sa.spi,
            age: now.saturating_duration_since(self.started).as_secs(),
            renewals: self.renewals,
            hops: self.hops(),
            previous_targets: self.previous_targets.clone(),
            link_layer_address: self.link_address.as_ref().map(|l| match l.ethernet() {
                Some(mac) => mip_core::dataplane::ethernet::format_mac(&mac),
                None => format!("hw{}:{}", l.hardware_type, hex::encode(&l.address)),
            }),
            interim_address: self.interim,
        }
    }
}

/// A wake-up sent and not yet acknowledged.
#[derive(Debug, Clone)]
pub(crate) struct PendingWakeUp {
    pub mobile_node: usize,
    pub transferring_node: Ipv4Addr,
    pub tn_spi: u32,
    /// The Target the binding pointed to when it ended.
    pub target: Ipv4Addr,
    pub reason: WakeUpReason,
    pub route: WakeUpRoute,
    /// Sent so far.
    pub attempts: u8,
    pub next_at: Time,
    pub interval: Duration,
    /// Identification of every copy sent: an acknowledgement may answer any of them.
    pub sent: Vec<u64>,
}

/// All SID state of the home agent.
#[derive(Debug, Default)]
pub(crate) struct SidState {
    /// Running transfers by TN address (at most one each).
    pub transfers: BTreeMap<Ipv4Addr, Transfer>,
    /// At most one per TN: a newer end replaces it.
    pub wake_ups: Vec<PendingWakeUp>,
    pub events: VecDeque<SidEvent>,
    pub link_transmits: VecDeque<LinkTransmit>,
    pub events_dropped: u64,
}

impl SidState {
    pub fn push_event(&mut self, event: SidEvent) {
        if self.events.len() >= MAX_QUEUED {
            self.events.pop_front();
            self.events_dropped += 1;
        }
        self.events.push_back(event);
    }

    pub fn push_link(&mut self, t: LinkTransmit) {
        if self.link_transmits.len() >= MAX_QUEUED {
            self.link_transmits.pop_front();
            self.events_dropped += 1;
        }
        self.link_transmits.push_back(t);
    }

    pub fn next_wake_up(&self) -> Option<Time> {
        self.wake_ups.iter().map(|w| w.next_at).min()
    }

    /// The running transfer whose session SPI is `spi`, for `home`.
    pub fn by_session_spi(&self, home: Ipv4Addr, spi: u32) -> Option<&Transfer> {
        self.transfers.get(&home).filter(|t| t.session_sa.spi == spi)
    }

    /// Forgets the pending wake-up of a TN that showed it is awake.
    pub fn cancel_wake_up(&mut self, tn: Ipv4Addr) -> bool {
        let before = self.wake_ups.len();
        self.wake_ups.retain(|w| w.transferring_node != tn);
        before != self.wake_ups.len()
    }
}
