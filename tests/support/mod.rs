pub mod action;
pub mod cli;
pub mod restore;
pub mod world;
