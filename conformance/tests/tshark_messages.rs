//! Every message the project emits, written to a pcap file and decoded by Wireshark's
//! tshark: no malformed packet, no expert error, and every field tshark shows equal to
//! the field we set. tshark is an independent decoder; where it and our encoding
//! disagree, the test says which side is right and why.
//!
//! Groups (one pcap file and one tshark run per test):
//! - `requests`: Registration Requests from `mip_core::wire`, every extension and flag;
//! - `replies`: Registration Replies exactly as `mip_ha::HomeAgent` sends them;
//! - `mobile_node`: Registration Requests exactly as `MobileNode` sends them;
//! - `discovery`: Agent Advertisements and Solicitations;
//! - `captures`: the shared third-party captures, our parsers against tshark's.
//!
//! `SIDMIP_KEEP_PCAP=<dir>` keeps the pcap files for a look in Wireshark.

#[path = "tshark_messages/captures.rs"]
mod captures;
#[path = "tshark_messages/check.rs"]
mod check;
#[path = "tshark_messages/common.rs"]
mod common;
#[path = "tshark_messages/discovery.rs"]
mod discovery;
#[path = "tshark_messages/mobile_node.rs"]
mod mobile_node;
#[path = "tshark_messages/replies.rs"]
mod replies;
#[path = "tshark_messages/requests.rs"]
mod requests;
