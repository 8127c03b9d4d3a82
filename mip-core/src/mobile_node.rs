//! The mobile node registration client, sans-IO.
