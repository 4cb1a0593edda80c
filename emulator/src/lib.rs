//! A local emulator of the Neon API v2 for tests and demos, backed by a real PostgreSQL cluster:
//! every branch's databases are real databases (`br_<branch-suffix>_<db>`) on that cluster.
//!
//! Deviations from Neon, by design:
//! - Roles are cluster-wide in PostgreSQL, so all branches share `neondb_owner` and its password
//!   (Neon copies passwords to children anyway). The password is kept in the table
//!   `neon_emulator_role_passwords` of the admin database and reused, so several emulators (and
//!   restarts) can share one cluster.
//! - Branching copies databases with `CREATE DATABASE … TEMPLATE`, which disconnects the parent's
//!   sessions for a moment; `schema-only` copies and then truncates every user table.
//! - Endpoint hosts are the configured public host; `pooled=true` returns the direct URI, since a
//!   `-pooler` host name would not reach the backing cluster.
//! - Protected branches are refused with 422 `BRANCHES_PROTECTED_LIMIT_EXCEEDED` (Free plan: 0 allowed).
//! - Refusals to delete (default, protected, has children) and `expires_at` violations are 400.
//! - Point-in-time branching and read-only endpoints are not emulated (400).
//! - Deleted branches' databases are dropped at once; expired branches are swept on the next request.
//! - A database created on a branch is empty and all of it counts as written since the branch's creation.
//! - Storage (`logical_size`, `written_data_bytes`, the project's `synthetic_storage_size`) is measured on
//!   the backing cluster's relation files when read, and billed by Neon's rule (see `storage`).

mod api;
mod app;
mod backing;
mod config;
mod faults;
mod ids;
mod model;
mod operations;
mod recording;
mod server;
mod storage;

pub use config::{BackingPostgres, EmulatorConfig, NEON_URI_QUERY};
pub use faults::{FaultAction, FaultRule, Faults};
pub use recording::{RecordedBody, RecordedExchange};
pub use server::Emulator;
