//! Job handlers, one file per job; registered in main.rs.

pub mod actions;
pub mod email;
