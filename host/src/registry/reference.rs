//! A policy named by OCI reference: `oci://REGISTRY/REPOSITORY@sha256:HEX` (pinned) or
//! `oci://REGISTRY/REPOSITORY:TAG` (resolved to a digest when the reference changes).

use std::fmt;

/// A parsed policy reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyReference {
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:HEX` of the manifest, when pinned.
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a policy reference: {why}. Write oci://REGISTRY/REPOSITORY@sha256:DIGEST (pinned) or oci://REGISTRY/REPOSITORY:TAG"
)]
pub struct ReferenceError {
    pub text: String,
    pub why: String,
}

const SCHEME: &str = "oci://";

impl PolicyReference {
    pub fn parse(text: &str) -> Result<PolicyReference, ReferenceError> {
        let fail = |why: &str| ReferenceError {
            text: crate::policy::untrusted::sanitize(text, 200),
            why: why.to_string(),
        };
        let trimmed = text.trim();
        let rest = trimmed
            .strip_prefix(SCHEME)
            .ok_or_else(|| fail("it does not start with oci://"))?;
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| fail("no repository after the registry"))?;
        let valid_host = !registry.is_empty()
            && registry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !valid_host {
            return Err(fail("the registry is not a host[:port]"));
        }
        let (path, digest) = match path.split_once('@') {
            Some((path, digest)) => {
                let hex = digest
                    .strip_prefix("sha256:")
                    .ok_or_else(|| fail("the digest is not sha256:…"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(fail("a sha256 digest has 64 lowercase hex digits"));
                }
                (path, Some(digest.to_string()))
            }
            None => (path, None),
        };
        // A tag follows the last ':' after the last '/'.
        let last_segment = path.rsplit('/').next().unwrap_or(path);
        let (repository, tag) = match last_segment.rsplit_once(':') {
            Some((_, tag)) => (&path[..path.len() - tag.len() - 1], Some(tag.to_string())),
            None => (path, None),
        };
        let valid_repository = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                    })
            });
        if !valid_repository {
            return Err(fail(
                "the repository is lowercase letters, digits, '.', '_', '-' and '/'",
            ));
        }
        if let Some(tag) = &tag {
            let valid_tag = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid_tag {
                return Err(fail("a tag is up to 128 letters, digits, '.', '_' and '-'"));
            }
        }
        if tag.is_none() && digest.is_none() {
            return Err(fail("no tag or digest"));
        }
        Ok(PolicyReference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// The reference without the scheme, as registries and other tools write it.
    pub fn without_scheme(&self) -> String {
        let mut text = format!("{}/{}", self.registry, self.repository);
        if let Some(tag) = &self.tag {
            text.push(':');
            text.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            text.push('@');
            text.push_str(digest);
        }
        text
    }

    /// The same repository pinned to `digest`.
    pub fn pinned(&self, digest: &str) -> PolicyReference {
        PolicyReference {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }
}

impl fmt::Display for PolicyReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.without_scheme())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn pinned_tagged_and_both() {
        let pinned =
            PolicyReference::parse(&format!("oci://127.0.0.1:5000/lights/blinkt@{DIGEST}"))
                .expect("pinned");
        assert_eq!(pinned.registry, "127.0.0.1:5000");
        assert_eq!(pinned.repository, "lights/blinkt");
        assert_eq!(
            (pinned.tag.as_deref(), pinned.digest.as_deref()),
            (None, Some(DIGEST))
        );
        let tagged =
            PolicyReference::parse("oci://ghcr.io/acme/policies/heat:v1.2\n").expect("tagged");
        assert_eq!(tagged.tag.as_deref(), Some("v1.2"));
        assert_eq!(tagged.to_string(), "oci://ghcr.io/acme/policies/heat:v1.2");
        let both = PolicyReference::parse(&format!("oci://r.io/p:v1@{DIGEST}")).expect("both");
        assert_eq!(
            (both.tag.as_deref(), both.digest.as_deref()),
            (Some("v1"), Some(DIGEST))
        );
        assert_eq!(
            tagged.pinned(DIGEST).without_scheme(),
            format!("ghcr.io/acme/policies/heat:v1.2@{DIGEST}")
        );
    }

    #[test]
    fn malformed_references_say_what_to_write() {
        for bad in [
            "ghcr.io/acme/heat:v1",
            "oci://ghcr.io",
            "oci://ghcr.io/acme/heat",
            "oci://ghcr.io/Acme/heat:v1",
            "oci://ghcr.io/acme/heat@sha256:12",
            "oci://ghcr.io/acme/heat@md5:0123",
            "oci://gh cr.io/acme/heat:v1",
            "oci://ghcr.io/acme/heat:v\u{1b}[31m",
        ] {
            let error = PolicyReference::parse(bad).expect_err(bad).to_string();
            assert!(
                error.contains("oci://REGISTRY/REPOSITORY@sha256:DIGEST"),
                "{error}"
            );
            assert!(
                !error.contains('\u{1b}'),
                "control characters escaped: {error}"
            );
        }
    }
}
