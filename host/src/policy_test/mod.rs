//! `podlight test`: policies checked against hand-written expectations on a virtual
//! clock. The file format ([`file`]), expectations ([`expect`]), a loaded test and
//! its run against any evaluator ([`plan`]), reports ([`report`]) and golden-file
//! updates ([`update`]). The command itself (plugins, output, exit codes) lives in
//! the binary.

pub mod colour_vision;
pub mod expect;
pub mod file;
pub mod plan;
pub mod report;
pub mod update;

/// Test files end with this; directories are searched for them.
pub const TEST_FILE_SUFFIX: &str = ".test.toml";
