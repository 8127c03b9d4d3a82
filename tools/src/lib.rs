//! Shared helpers of the command-line tools.
pub mod mn_config;
