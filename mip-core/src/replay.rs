//! Replay protection for registrations (RFC 5944 section 5.7).
