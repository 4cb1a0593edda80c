//! PostgreSQL side: connections, finding pg tools by major, the dump→restore pipeline, and SQL
//! inspection (snapshot, manifest, target preparation, verification).

pub mod conn;
pub mod tools;
pub mod pipeline;
pub mod restore_errors;
pub mod content;
pub mod manifest;
pub mod inspect;
pub mod prepare;
