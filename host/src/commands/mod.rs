pub mod device;
pub mod policy;
