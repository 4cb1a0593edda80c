pub mod action;
pub mod cli;
pub mod prune;
pub mod restore;
pub mod world;
