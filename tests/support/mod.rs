pub mod cli;
pub mod restore;
pub mod world;
