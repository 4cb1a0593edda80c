pub mod cli;
pub mod world;
