pub mod cli;
pub mod prune;
pub mod world;
