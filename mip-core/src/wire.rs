//! Wire formats of Mobile IPv4.
