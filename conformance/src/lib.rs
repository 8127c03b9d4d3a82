//! Test infrastructure: pcap files and framing ([`pcap`]), and an independent decoder
//! check through Wireshark's tshark ([`tshark`]).

pub mod pcap;
pub mod tshark;
pub mod sim;
