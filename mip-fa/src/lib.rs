//! Mobile IPv4 Foreign Agent (RFC 5944 section 3.7).
//!
//! Not implemented yet: the Foreign Agent, its advertisements and relaying arrive with
//! the data-plane issue. The crate exists so that the workspace layout is fixed.
