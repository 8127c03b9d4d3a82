//! Mobility security associations and registration authenticators (RFC 5944 3.5, 5.1).
