pub mod agent;
pub mod cluster;
pub mod device;
pub mod policy;
