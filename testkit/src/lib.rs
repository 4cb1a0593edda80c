//! Test harness for supaneon-sync: throwaway PostgreSQL clusters (TLS, scram passwords, run as an
//! unprivileged user) and a Supabase-shaped source fixture.
//!
//! Everything here is synchronous `std::process` work except [`Cluster::admin_client`], so tests can
//! start clusters before (or without) a tokio runtime.
//!
//! ```no_run
//! use supaneon_testkit::{test_majors, Cluster, ClusterOptions};
//!
//! for major in test_majors() {
//!     let source = Cluster::start(ClusterOptions::new(major, "supabase_admin"));
//!     source.load_supabase_fixture("postgres", "source-password");
//!     let source_url = source.url("postgres", "source-password", "postgres");
//!
//!     let target = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
//!     let neondb_url = target.setup_neon_target("owner-password");
//!     // ... pg_dump from source_url into neondb_url (passwords via PGPASSWORD) ...
//! #   let _ = (source_url, neondb_url);
//! } // both clusters are stopped and their directories removed here
//! ```
//!
//! PostgreSQL 17 comes from `scripts/fetch-postgres.sh`; 15 from Debian. Tests run as root start the
//! servers as `nobody`.

mod binaries;
mod cluster;
mod fixture;
mod impostor;
mod privilege;
mod tls;
mod url_encoding;

pub use binaries::{pg_bin_dir, test_majors};
pub use cluster::{process_alive, send_signal, Cluster, ClusterOptions};
pub use impostor::{Impostor, ImpostorAsks, Visit};
