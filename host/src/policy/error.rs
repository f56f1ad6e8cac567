use std::path::PathBuf;

/// Why a policy could not be loaded or evaluated. Every message says what is wrong
/// and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "plugin {name} is {size} bytes, over the {limit}-byte limit; build it in release mode, strip it, or raise the limit (--max-plugin-mib)"
    )]
    TooLarge {
        name: String,
        size: usize,
        limit: usize,
    },

    #[error(
        "plugin {name} is {compressed} bytes gzip-compressed but decompresses past the {limit}-byte limit (a gzip bomb, or a plugin too large); build it smaller or raise the limit (--max-plugin-mib)"
    )]
    DecompressesTooLarge {
        name: String,
        compressed: usize,
        limit: usize,
    },

    #[error("plugin {name} is gzip-compressed but does not decompress: {reason}")]
    BadGzip { name: String, reason: String },

    #[error(
        "plugin {name} is not WebAssembly (it does not start with the \\0asm magic); give the .wasm file (or .wasm.gz) that your build produced"
    )]
    NotWasm { name: String },

    #[error(
        "plugin {name} is a core WebAssembly module, not a component; build a component: \
         for Rust `cargo build --target wasm32-wasip2`, or wrap a core module with \
         `wasm-tools component new`"
    )]
    CoreModule { name: String },

    #[error(
        "plugin {name} does not export the podlight policy interface `podlight:policy/evaluator@{host}` (it exports: {exports}); generate its bindings from podlight's wit/ with world `policy`"
    )]
    MissingExport {
        name: String,
        host: String,
        exports: String,
    },

    #[error(
        "plugin {name} was built for contract version {plugin}, but this podlight loads {host}; rebuild the plugin against podlight's wit/"
    )]
    ContractVersion {
        name: String,
        plugin: String,
        host: String,
    },

    #[error(
        "plugin {name} imports `{import}`, which podlight does not grant (granted: wasi:cli, wasi:io, wasi:clocks, wasi:random, wasi:filesystem and wasi:sockets at 0.2, all denying access, and podlight:policy/types and /snapshot); remove the dependency that needs it"
    )]
    UngrantedImport { name: String, import: String },

    #[error("plugin {name} is not a valid component: {reason}")]
    Invalid { name: String, reason: String },

    #[error("cannot set up the policy engine: {0}")]
    Engine(String),

    #[error(
        "plugin {name} needs more than its compile budget of {budget} and was refused; \
         build it smaller, or raise the budget (--compile-memory-mib, --compile-cpu-seconds) \
         and the DaemonSet's memory limit with it"
    )]
    CompileBudget { name: String, budget: String },

    #[error("plugin {name} could not be compiled: {reason}")]
    Compiler { name: String, reason: String },

    #[error("plugin {name} could not be started: {reason}")]
    Instantiate { name: String, reason: String },

    #[error(
        "plugin {name} ran past its {deadline_ms} ms deadline and was stopped; make evaluate faster or return sooner"
    )]
    Timeout { name: String, deadline_ms: u64 },

    #[error(
        "plugin {name} tried to use more than its {limit_mib} MiB memory limit and was stopped"
    )]
    MemoryLimit { name: String, limit_mib: usize },

    #[error("plugin {name} trapped: {reason}")]
    Trap { name: String, reason: String },

    #[error("plugin {name} returned an invalid frame: {reason}")]
    InvalidFrame { name: String, reason: String },

    #[error("plugin {name} reported an error: {message}")]
    Reported { name: String, message: String },
}
