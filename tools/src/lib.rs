//! Shared helpers of the command-line tools.
pub mod mn;
pub mod mn_config;
pub mod lab;
pub mod sid;
