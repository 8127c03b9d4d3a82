//! Mobile IPv4 Home Agent.
