pub mod action;
pub mod cli;
pub mod http;
pub mod mirror;
pub mod prune;
pub mod restore;
pub mod world;
