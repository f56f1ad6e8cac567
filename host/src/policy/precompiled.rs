//! Precompiled artifacts: a plugin compiled ahead of time for one kind of machine,
//! so a slow node (a Raspberry Pi) loads it instead of compiling. Pure: bytes in,
//! bytes out.
//!
//! The format, what `podlight plugin compile` writes:
//!
//! ```text
//! podlight-precompiled/1\n
//! {"component":"sha256:…","target":"aarch64","wasmtime":"48.0.8"}\n
//! <wasmtime's serialized component: native code, or Pulley bytecode>
//! ```
//!
//! The header binds the code to the component it was compiled from, the machine it
//! is for and the engine that wrote it. A signature (`cosign sign-blob`) covers the
//! whole file, header included, so a signed artifact cannot be passed off as the
//! compiled form of another component. The code is native: it is only ever loaded
//! when a trusted key signed it (the agent) or when this very binary just wrote it
//! (the compiling child); wasmtime checks its own version, settings and the CPU's
//! features again when it loads it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::CompileTarget;
use super::signature::TrustedKeys;
use super::untrusted::sanitize;

/// The first line of every artifact.
const MAGIC: &[u8] = b"podlight-precompiled/1\n";
/// A header longer than this is not one of ours.
const MAX_HEADER_BYTES: usize = 1024;

/// The wasmtime this podlight is built with (pinned in `host/Cargo.toml`; a test
/// checks the two agree). Artifacts of any other version are compiled again.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// What an artifact says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactHeader {
    /// `sha256:HEX` of the component it was compiled from.
    pub component: String,
    /// [`CompileTarget::name`].
    pub target: String,
    /// The wasmtime version that compiled it.
    pub wasmtime: String,
}

/// An artifact, split into its header and code.
#[derive(Debug)]
pub struct Artifact<'a> {
    pub header: ArtifactHeader,
    pub code: &'a [u8],
}

/// `sha256:HEX` of a component's bytes, as headers name it.
pub fn component_digest(component: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(component)))
}

/// Writes an artifact: the header, then `code`.
pub fn write(component: &[u8], target: CompileTarget, code: &[u8]) -> Vec<u8> {
    let header = ArtifactHeader {
        component: component_digest(component),
        target: target.name().to_string(),
        wasmtime: WASMTIME_VERSION.to_string(),
    };
    // A struct of three strings always serializes.
    let json = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = Vec::with_capacity(MAGIC.len() + json.len() + 1 + code.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&json);
    out.push(b'\n');
    out.extend_from_slice(code);
    out
}

/// Reads an artifact's header; the code is not looked at.
pub fn parse(bytes: &[u8]) -> Result<Artifact<'_>, String> {
    let rest = bytes.strip_prefix(MAGIC).ok_or_else(|| {
        "not a podlight precompiled artifact (it does not start with `podlight-precompiled/1`); write one with `podlight plugin compile --target`".to_string()
    })?;
    let end = rest
        .iter()
        .take(MAX_HEADER_BYTES)
        .position(|&b| b == b'\n')
        .ok_or_else(|| {
            format!("the artifact's header is not a line of at most {MAX_HEADER_BYTES} bytes")
        })?;
    let header: ArtifactHeader = serde_json::from_slice(&rest[..end]).map_err(|e| {
        format!(
            "the artifact's header is malformed: {}",
            sanitize(&e.to_string(), 200)
        )
    })?;
    Ok(Artifact {
        header: ArtifactHeader {
            component: sanitize(&header.component, 80),
            target: sanitize(&header.target, 40),
            wasmtime: sanitize(&header.wasmtime, 40),
        },
        code: &rest[end + 1..],
    })
}

/// `artifact` when one of `keys` verifies its cosign `signature`, or why it may not
/// run: its code is native, so without trusted keys it never does.
pub fn verified<'a>(
    keys: &TrustedKeys,
    plugin: &str,
    artifact: &'a [u8],
    signature: Option<&[u8]>,
) -> Result<&'a [u8], String> {
    if keys.is_empty() {
        return Err(
            "no --verify-key is set: a precompiled artifact is native code and runs only when a trusted key signed it".into(),
        );
    }
    let what = format!("{plugin}'s precompiled artifact");
    keys.verify(&what, artifact, signature)
        .map(|_| artifact)
        .map_err(|error| error.to_string())
}

impl ArtifactHeader {
    /// Why this artifact cannot stand for `component` on a `target` engine; none when
    /// it can (wasmtime still has the last word when it loads the code).
    pub fn mismatch(&self, component: &[u8], target: CompileTarget) -> Option<String> {
        if self.wasmtime != WASMTIME_VERSION {
            return Some(format!(
                "it was compiled by wasmtime {}, this agent runs wasmtime {WASMTIME_VERSION}",
                self.wasmtime
            ));
        }
        if self.target != target.name() {
            return Some(format!(
                "it is for {}, this agent runs {} code",
                self.target,
                target.name()
            ));
        }
        let digest = component_digest(component);
        if self.component != digest {
            return Some(format!(
                "it was compiled from component {}, not from this one ({digest})",
                self.component
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_mismatch() {
        let component = b"\0asm\r\0\x01\0 component";
        let artifact = write(component, CompileTarget::Aarch64, b"\x7fELF code");
        let parsed = parse(&artifact).expect("parses");
        assert_eq!(parsed.code, b"\x7fELF code");
        assert_eq!(parsed.header.target, "aarch64");
        assert_eq!(
            parsed.header.mismatch(component, CompileTarget::Aarch64),
            None
        );
        let other_target = parsed.header.mismatch(component, CompileTarget::X86_64);
        assert!(other_target.is_some_and(|m| m.contains("it is for aarch64")));
        let other_component = parsed.header.mismatch(b"other", CompileTarget::Aarch64);
        assert!(other_component.is_some_and(|m| m.contains("compiled from component")));
        let mut old = parsed.header.clone();
        old.wasmtime = "47.0.0".into();
        assert!(
            old.mismatch(component, CompileTarget::Aarch64)
                .is_some_and(|m| m.contains("wasmtime 47.0.0"))
        );
    }

    #[test]
    fn what_is_not_an_artifact_is_refused() {
        assert!(parse(b"\x7fELF").is_err());
        let mut long = MAGIC.to_vec();
        long.extend(std::iter::repeat_n(b'x', 4096));
        assert!(parse(&long).is_err_and(|e| e.contains("at most")));
        let mut hostile = MAGIC.to_vec();
        hostile.extend_from_slice(
            b"{\"component\":\"\\u001b[31m\",\"target\":\"x\",\"wasmtime\":\"1\"}\n",
        );
        let parsed = parse(&hostile).expect("parses");
        assert!(!parsed.header.component.contains('\x1b'));
        let mut extra = MAGIC.to_vec();
        extra.extend_from_slice(
            b"{\"component\":\"a\",\"target\":\"x\",\"wasmtime\":\"1\",\"more\":1}\n",
        );
        assert!(parse(&extra).is_err());
    }

    #[test]
    fn the_pinned_wasmtime_is_the_one_in_the_lock_file() {
        let lock = include_str!("../../../Cargo.lock");
        let pinned = lock
            .split("[[package]]")
            .find(|p| p.contains("name = \"wasmtime\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .map(|v| v.trim_matches('"').to_string());
        assert_eq!(pinned.as_deref(), Some(WASMTIME_VERSION));
    }
}
