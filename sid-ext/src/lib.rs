//! Session Inter-Device (SID) mobility extensions.
//!
//! Nothing is implemented here yet: the registration extensions, the session key
//! negotiation and the wake-up message arrive with the SID issue. The crate exists so
//! that the workspace layout is fixed from the start.
