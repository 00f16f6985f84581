//! Job handlers, one file per job; registered in main.rs.

pub mod email;
