//! The mobile node daemon behind `mip-mn run --config FILE` (design3.md, issue 3).
//!
//! - [`config`]: the TOML configuration;
//! - [`netcfg`]: addresses, routes, rules and ARP sysctls per place, via the `ip` command;
//! - [`packet`]: AF_PACKET and raw IP sockets, advertisement and solicitation packets;
//! - [`datapath`]: co-located mode's decapsulation into `mip0` and direct or
//!   reverse-tunnelled sending out of it;
//! - [`status`]: the JSON status file;
//! - [`daemon`]: the event loop around `MobileNode` and `MovementDetector`.

pub mod config;
pub mod daemon;
pub mod datapath;
pub mod netcfg;
pub mod packet;
pub mod status;
