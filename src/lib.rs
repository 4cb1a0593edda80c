//! supaneon-sync: verified logical backups of a Supabase database into Neon branches.
//!
//! The binary (`src/main.rs`) only parses the command line and maps a `Result` to an exit code; every
//! responsibility lives in one module here.

pub mod actions;
pub mod backup;
pub mod branch_conn;
pub mod branches;
pub mod budget;
pub mod cli;
pub mod config;
pub mod context;
pub mod error;
pub mod failover;
pub mod http;
pub mod keep_awake;
pub mod list;
pub mod logging;
pub mod mirror;
pub mod neon;
pub mod ownership;
pub mod pg;
pub mod preflight;
pub mod prune;
pub mod report;
pub mod restore_test;
pub mod run;
pub mod secret;
pub mod validate;
pub mod workflow;
