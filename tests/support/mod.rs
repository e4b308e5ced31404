#![allow(dead_code)]

pub mod azure;
pub mod damage;
pub mod gcs;
pub mod gcs_front;
pub mod lake;
pub mod oracle;
pub mod partition_lake;
pub mod pg;
pub mod runs;
pub mod s3;
pub mod server;
pub mod store_scenarios;
pub mod stores;
pub mod tmpfs;
pub mod trace;
pub mod unreal;
