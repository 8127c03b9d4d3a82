//! Test infrastructure: pcap files and framing ([`pcap`]), an independent decoder check
//! through Wireshark's tshark ([`tshark`]), and what the tshark tests share around one
//! capture ([`capture`]).

pub mod capture;
pub mod pcap;
pub mod tshark;
pub mod sim;
