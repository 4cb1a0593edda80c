//! PostgreSQL side: connections, finding pg tools by major, the dump→restore pipeline, and SQL
//! inspection (snapshot, manifest, target preparation, verification).

pub mod conn;
pub mod content;
pub mod exclusions;
pub mod fingerprints;
pub mod hold;
pub mod inspect;
pub mod large_objects;
pub mod maintenance;
pub mod manifest;
pub mod pipeline;
pub mod prepare;
pub mod restore_errors;
pub mod settings;
pub mod tools;
