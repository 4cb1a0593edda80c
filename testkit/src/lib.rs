//! Test harness for supaneon-sync: throwaway PostgreSQL clusters (TLS, scram passwords, run as an
//! unprivileged user) and a Supabase-shaped source fixture.
//!
//! Everything here is synchronous `std::process` work except [`Cluster::admin_client`], so tests can
//! start clusters before (or without) a tokio runtime.

mod binaries;
mod cluster;
mod fixture;
mod privilege;
mod tls;
mod url_encoding;

pub use binaries::{pg_bin_dir, test_majors};
pub use cluster::{process_alive, Cluster, ClusterOptions};
