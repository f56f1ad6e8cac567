//! Checks on a plugin's bytes and on the names it imports and exports, before and
//! after compiling. Pure: no engine, no I/O.

use std::io::Read;

use serde::Serialize;

use super::PolicyError;

/// The contract version this podlight speaks, read from `wit/` at build time.
pub const CONTRACT_VERSION: &str = env!("PODLIGHT_CONTRACT_VERSION");
/// Earlier contract versions whose plugins still load unchanged (each linked with
/// its own bindings, see `bindings`).
pub const EARLIER_CONTRACTS: &[&str] = &[CONTRACT_0_3, CONTRACT_0_2];
/// The contract before reasons, silences and alerts.
pub(crate) const CONTRACT_0_3: &str = "0.3.0";
/// The contract before `scope` and `nodes`.
pub(crate) const CONTRACT_0_2: &str = "0.2.0";

/// The plugin's contract version is the current one or an earlier one still served.
pub(crate) fn supported(version: &str) -> bool {
    compatible(version, CONTRACT_VERSION)
        || EARLIER_CONTRACTS.iter().any(|v| compatible(version, v))
}

/// The versions this podlight loads, for messages: `0.3.0 (and 0.2.x)`.
pub fn supported_versions() -> String {
    let earlier: Vec<String> = EARLIER_CONTRACTS
        .iter()
        .map(|v| format!("{}.x", v.rsplit_once('.').map_or(*v, |(minor, _)| minor)))
        .collect();
    format!("{CONTRACT_VERSION} (and {})", earlier.join(", "))
}

const EVALUATOR: &str = "podlight:policy/evaluator";
/// The contract's interfaces a plugin may import.
const CONTRACT_IMPORTS: &[&str] = &["podlight:policy/types", "podlight:policy/snapshot"];
/// WASI packages linked into the sandbox (all with a context that grants nothing).
const GRANTED_WASI: &[&str] = &["cli", "io", "clocks", "random", "filesystem", "sockets"];

/// What `podlight plugin check` reports about a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginInfo {
    pub name: String,
    /// The contract version the plugin was built against.
    pub contract_version: String,
    /// Size of the file as given (compressed, if it was).
    pub file_bytes: usize,
    /// Size of the component after decompression.
    pub component_bytes: usize,
    pub gzip: bool,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    pub imports: Vec<String>,
    /// Whether the compiled form came from the compile cache.
    pub cache_hit: bool,
    /// Why the compiled form could not be kept in the compile cache, if it could not.
    pub cache_problem: Option<String>,
    /// What became of a precompiled artifact offered with the plugin; none when
    /// there was none (or the compile cache had the plugin already).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precompiled: Option<PrecompiledUse>,
}

/// What became of a precompiled artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum PrecompiledUse {
    /// Its code runs: nothing was compiled.
    Loaded,
    /// Not used — the component was compiled instead — and why.
    Refused { reason: String },
}

impl std::fmt::Display for PrecompiledUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrecompiledUse::Loaded => f.write_str("precompiled artifact loaded, nothing compiled"),
            PrecompiledUse::Refused { reason } => {
                write!(
                    f,
                    "precompiled artifact not used ({reason}); compiled instead"
                )
            }
        }
    }
}

/// What a byte string is, judged by its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WasmKind {
    Component,
    CoreModule,
    NotWasm,
}

/// Tells a component from a core module from anything else by the 8-byte header:
/// `\0asm` then version 1 (core) or 0x0d with layer 1 (component).
pub(crate) fn sniff(bytes: &[u8]) -> WasmKind {
    match bytes {
        [0, b'a', b's', b'm', 1, 0, 0, 0, ..] => WasmKind::CoreModule,
        [0, b'a', b's', b'm', _, _, 1, 0, ..] => WasmKind::Component,
        _ => WasmKind::NotWasm,
    }
}

pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// A plugin file's component bytes: refused over `limit`, decompressed when gzipped
/// (never past `limit` either). Whether they are a component is [`is_component`]'s.
pub fn unpacked<'a>(
    name: &str,
    file: &'a [u8],
    limit: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, PolicyError> {
    if file.len() > limit {
        return Err(PolicyError::TooLarge {
            name: name.to_string(),
            size: file.len(),
            limit,
        });
    }
    Ok(if is_gzip(file) {
        std::borrow::Cow::Owned(gunzip_capped(name, file, limit)?)
    } else {
        std::borrow::Cow::Borrowed(file)
    })
}

/// The bytes start like a WebAssembly component.
pub fn is_component(bytes: &[u8]) -> bool {
    sniff(bytes) == WasmKind::Component
}

/// Decompresses a `.wasm.gz` without ever holding more than `limit` bytes, so a
/// small file cannot expand into a huge allocation.
pub(crate) fn gunzip_capped(
    name: &str,
    bytes: &[u8],
    limit: usize,
) -> Result<Vec<u8>, PolicyError> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(bytes).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| PolicyError::BadGzip {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(PolicyError::DecompressesTooLarge {
            name: name.to_string(),
            compressed: bytes.len(),
            limit,
        });
    }
    Ok(out)
}

/// Splits `ns:pkg/iface@1.2.3` into (`ns:pkg/iface`, `Some("1.2.3")`).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((base, version)) => (base, Some(version)),
        None => (name, None),
    }
}

/// Semver compatibility as wasmtime's linker applies it: same major, and for 0.x the
/// same minor.
pub(crate) fn compatible(plugin: &str, host: &str) -> bool {
    let parts = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split(['.', '-', '+']);
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (parts(plugin), parts(host)) {
        (Some((0, a)), Some((0, b))) => a == b,
        (Some((a, _)), Some((b, _))) => a == b,
        _ => false,
    }
}

/// Finds the evaluator export and checks its version; returns the plugin's version.
pub(crate) fn check_exports<'a>(
    name: &str,
    exports: impl IntoIterator<Item = &'a str>,
) -> Result<String, PolicyError> {
    let exports: Vec<&str> = exports.into_iter().collect();
    let evaluator = exports
        .iter()
        .find_map(|export| match split_version(export) {
            (EVALUATOR, version) => Some(version.unwrap_or("")),
            _ => None,
        });
    match evaluator {
        Some(version) if supported(version) => Ok(version.to_string()),
        Some(version) => Err(PolicyError::ContractVersion {
            name: name.to_string(),
            plugin: if version.is_empty() {
                "(unversioned)".to_string()
            } else {
                version.to_string()
            },
            host: supported_versions(),
        }),
        None => Err(PolicyError::MissingExport {
            name: name.to_string(),
            host: CONTRACT_VERSION.to_string(),
            exports: if exports.is_empty() {
                "nothing".to_string()
            } else {
                exports.join(", ")
            },
        }),
    }
}

/// Refuses any import outside the granted WASI packages and the contract's own.
pub(crate) fn check_imports<'a>(
    name: &str,
    imports: impl IntoIterator<Item = &'a str>,
) -> Result<(), PolicyError> {
    for import in imports {
        let (base, version) = split_version(import);
        let granted = if CONTRACT_IMPORTS.contains(&base) {
            version.is_some_and(supported)
        } else if let Some(rest) = base.strip_prefix("wasi:") {
            let package = rest.split('/').next().unwrap_or("");
            GRANTED_WASI.contains(&package) && version.is_some_and(|v| v.starts_with("0.2."))
        } else {
            false
        };
        if !granted {
            return Err(PolicyError::UngrantedImport {
                name: name.to_string(),
                import: import.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_headers() {
        assert_eq!(sniff(b"\0asm\x01\0\0\0rest"), WasmKind::CoreModule);
        assert_eq!(sniff(b"\0asm\x0d\0\x01\0rest"), WasmKind::Component);
        assert_eq!(sniff(b"(component)"), WasmKind::NotWasm);
        assert_eq!(sniff(b"\0as"), WasmKind::NotWasm);
    }

    #[test]
    fn semver_compatibility_follows_the_zero_minor_rule() {
        assert!(compatible("0.2.0", "0.2.0"));
        assert!(compatible("0.2.7", "0.2.0"));
        assert!(!compatible("0.1.0", "0.2.0"));
        assert!(compatible("1.4.0", "1.0.0"));
        assert!(!compatible("2.0.0", "1.0.0"));
        assert!(!compatible("", "0.1.0"));
    }

    #[test]
    fn exports_must_hold_a_compatible_evaluator() {
        let host = format!("{EVALUATOR}@{CONTRACT_VERSION}");
        assert_eq!(
            check_exports("p", [host.as_str()]).ok().as_deref(),
            Some(CONTRACT_VERSION)
        );
        let other =
            check_exports("p", ["podlight:policy/evaluator@9.0.0"]).expect_err("other major");
        let text = other.to_string();
        assert!(
            text.contains("9.0.0") && text.contains(CONTRACT_VERSION),
            "{text}"
        );
        assert_eq!(
            check_exports("p", ["podlight:policy/evaluator@0.2.1"])
                .ok()
                .as_deref(),
            Some("0.2.1"),
            "0.2 plugins still load"
        );
        let older = check_exports("p", ["podlight:policy/evaluator@0.1.0"]).expect_err("0.1");
        assert!(older.to_string().contains("(and 0.3.x, 0.2.x)"), "{older}");
        let missing = check_exports("p", ["wasi:cli/run@0.2.0"]).expect_err("missing");
        assert!(missing.to_string().contains("wasi:cli/run@0.2.0"));
    }

    #[test]
    fn only_granted_imports_pass() {
        let types = format!("podlight:policy/types@{CONTRACT_VERSION}");
        let snapshot = format!("podlight:policy/snapshot@{CONTRACT_VERSION}");
        assert!(
            check_imports(
                "p",
                [
                    types.as_str(),
                    snapshot.as_str(),
                    "wasi:io/streams@0.2.6",
                    "wasi:cli/stdout@0.2.0",
                    "podlight:policy/snapshot@0.2.0"
                ]
            )
            .is_ok()
        );
        for bad in [
            "wasi:http/outgoing-handler@0.2.0",
            "acme:secrets/vault",
            "wasi:io/streams@0.3.0",
            "podlight:policy/types@0.9.0",
            "podlight:policy/secrets@0.2.0",
        ] {
            let err = check_imports("p", [bad]).expect_err(bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn gzip_is_capped() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&vec![0u8; 10_000]).expect("in memory");
        let gz = enc.finish().expect("in memory");
        assert!(is_gzip(&gz));
        assert_eq!(
            gunzip_capped("p", &gz, 10_000).map(|v| v.len()).ok(),
            Some(10_000)
        );
        let bomb = gunzip_capped("p", &gz, 9_999).expect_err("past the cap");
        assert!(
            matches!(bomb, PolicyError::DecompressesTooLarge { .. }),
            "{bomb}"
        );
        assert!(
            bomb.to_string()
                .contains("decompresses past the 9999-byte limit"),
            "{bomb}"
        );
        assert!(matches!(
            gunzip_capped("p", &gz[..20], 10_000),
            Err(PolicyError::BadGzip { .. })
        ));
    }
}
