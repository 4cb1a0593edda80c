pub mod action;
pub mod cli;
pub mod world;
