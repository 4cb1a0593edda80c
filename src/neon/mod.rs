//! The Neon API v2 client: models, requests, retry policy, operation polling.

mod client;
mod error;
mod models;
pub mod retry;

pub use client::{
    NeonClient, NeonSettings, DEFAULT_BASE_URL, DEFAULT_CALL_DEADLINE, DEFAULT_OPERATION_DEADLINE,
    DEFAULT_PAGE_SIZE,
};
pub use error::{NeonError, NeonErrorKind};
pub use models::{
    Annotations, Branch, BranchInfo, CreateBranch, CreatedBranch, Database, Deleted, Endpoint,
    EndpointType, Operation, OperationStatus, Project, ProjectOwner, Role,
};
