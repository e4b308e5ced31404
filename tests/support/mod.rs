#![allow(dead_code)]

pub mod lake;
pub mod partition_lake;
pub mod pg;
pub mod trace;
