//! Registry credentials in the Docker config JSON form a `kubernetes.io/dockerconfigjson`
//! Secret holds (`{"auths": {"REGISTRY": {"auth": "base64(user:password)"}}}`, or
//! `username`/`password` fields), looked up by the reference's registry.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Debug, Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// User name and password per registry host.
#[derive(Clone, Default)]
pub struct Credentials {
    by_registry: BTreeMap<String, (String, String)>,
}

impl std::fmt::Debug for Credentials {
    // Never the passwords.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("registries", &self.by_registry.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "the registry credentials are not Docker config JSON ({0}); mount a kubernetes.io/dockerconfigjson Secret's .dockerconfigjson"
    )]
    Json(#[source] serde_json::Error),
    #[error("the registry credentials for {registry} are not usable: {why}")]
    Entry { registry: String, why: String },
}

/// `https://index.docker.io/v1/` and `ghcr.io` both name a host: keys are compared by
/// host[:port].
fn host_of(key: &str) -> String {
    let key = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    key.split('/').next().unwrap_or(key).to_string()
}

impl Credentials {
    pub fn from_docker_config(text: &str) -> Result<Credentials, CredentialsError> {
        let config: DockerConfig = serde_json::from_str(text).map_err(CredentialsError::Json)?;
        let mut by_registry = BTreeMap::new();
        for (key, entry) in config.auths {
            let registry = host_of(&key);
            let pair = match (entry.username, entry.password, entry.auth) {
                (Some(user), Some(password), _) => (user, password),
                (_, _, Some(auth)) => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .ok()
                        .and_then(|bytes| String::from_utf8(bytes).ok())
                        .ok_or_else(|| CredentialsError::Entry {
                            registry: registry.clone(),
                            why: "`auth` is not base64 of user:password".into(),
                        })?;
                    let (user, password) =
                        decoded
                            .split_once(':')
                            .ok_or_else(|| CredentialsError::Entry {
                                registry: registry.clone(),
                                why: "`auth` has no ':' between user and password".into(),
                            })?;
                    (user.to_string(), password.to_string())
                }
                _ => {
                    return Err(CredentialsError::Entry {
                        registry,
                        why: "neither `auth` nor `username` and `password`".into(),
                    });
                }
            };
            by_registry.insert(registry, pair);
        }
        Ok(Credentials { by_registry })
    }

    /// User and password for a registry host, if any.
    pub fn for_registry(&self, registry: &str) -> Option<(&str, &str)> {
        self.by_registry
            .get(registry)
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_and_host_keys() {
        let config = r#"{"auths": {
            "https://registry.example:5000/v1/": {"auth": "YWxpY2U6czNjcjN0"},
            "ghcr.io": {"username": "bob", "password": "pw"}}}"#;
        let credentials = Credentials::from_docker_config(config).expect("valid");
        assert_eq!(
            credentials.for_registry("registry.example:5000"),
            Some(("alice", "s3cr3t"))
        );
        assert_eq!(credentials.for_registry("ghcr.io"), Some(("bob", "pw")));
        assert_eq!(credentials.for_registry("docker.io"), None);
        assert!(
            !format!("{credentials:?}").contains("s3cr3t"),
            "no secrets in Debug"
        );
    }

    #[test]
    fn unusable_credentials_say_why() {
        let error = Credentials::from_docker_config("not json")
            .unwrap_err()
            .to_string();
        assert!(error.contains("dockerconfigjson"), "{error}");
        let error =
            Credentials::from_docker_config(r#"{"auths": {"r.io": {"auth": "bm9jb2xvbg=="}}}"#)
                .unwrap_err()
                .to_string();
        assert!(
            error.contains("r.io") && error.contains("no ':'"),
            "{error}"
        );
    }
}
