//! Signed policies: cosign-compatible key-pair signatures — what `cosign sign-blob --key`
//! writes (base64 of an ASN.1 DER ECDSA P-256 signature over the SHA-256 of the file)
//! and `cosign verify-blob --key` checks, against PEM public keys (`cosign.pub`).
//! Checked before a plugin is ever compiled.

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;

use base64::Engine as _;

/// The public keys a policy must be signed with (any one of them).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<(String, VerifyingKey)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "plugin {plugin} is not signed: verification keys are configured, so only signed plugins run. Sign it with `cosign sign-blob --key cosign.key --output-signature {plugin}.sig FILE` and add {plugin}.sig beside it"
    )]
    Unsigned { plugin: String },
    #[error(
        "plugin {plugin}'s signature does not verify with any trusted key ({keys}): the plugin was changed after signing, or signed with another key"
    )]
    Mismatch { plugin: String, keys: String },
    #[error(
        "plugin {plugin}'s signature is not a cosign signature (base64 of a DER ECDSA signature): {why}"
    )]
    Malformed { plugin: String, why: String },
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{name} is not a cosign public key (PEM \"PUBLIC KEY\", ECDSA P-256, as `cosign generate-key-pair` writes): {why}"
)]
pub struct KeyError {
    pub name: String,
    pub why: String,
}

impl TrustedKeys {
    /// Adds a PEM public key, named for messages (its file name).
    pub fn add_pem(&mut self, name: &str, pem: &str) -> Result<(), KeyError> {
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| KeyError {
            name: name.to_string(),
            why: e.to_string(),
        })?;
        self.keys.push((name.to_string(), key));
        Ok(())
    }

    /// No keys: signatures are not checked.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks `plugin_bytes` against a cosign signature (`NAME.sig`, base64); the
    /// name of the key that verified it.
    pub fn verify(
        &self,
        plugin: &str,
        plugin_bytes: &[u8],
        signature: Option<&[u8]>,
    ) -> Result<&str, SignatureError> {
        let Some(signature) = signature else {
            return Err(SignatureError::Unsigned {
                plugin: plugin.to_string(),
            });
        };
        let text: Vec<u8> = signature
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .map_err(|e| SignatureError::Malformed {
                plugin: plugin.to_string(),
                why: e.to_string(),
            })?;
        let signature = DerSignature::from_bytes(&der).map_err(|e| SignatureError::Malformed {
            plugin: plugin.to_string(),
            why: e.to_string(),
        })?;
        self.keys
            .iter()
            .find(|(_, key)| key.verify(plugin_bytes, &signature).is_ok())
            .map(|(name, _)| name.as_str())
            .ok_or_else(|| SignatureError::Mismatch {
                plugin: plugin.to_string(),
                keys: self
                    .keys
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    fn key_pair(seed: u8) -> (SigningKey, String) {
        let signing = SigningKey::from_slice(&[seed; 32]).expect("a valid scalar");
        let pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("PEM");
        (signing, pem)
    }

    fn sign(key: &SigningKey, bytes: &[u8]) -> Vec<u8> {
        let signature: DerSignature = key.sign(bytes);
        base64::engine::general_purpose::STANDARD
            .encode(signature.as_bytes())
            .into_bytes()
    }

    #[test]
    fn signed_tampered_unsigned_and_foreign() {
        let (ours, pem) = key_pair(7);
        let (theirs, _) = key_pair(9);
        let mut keys = TrustedKeys::default();
        keys.add_pem("cosign.pub", &pem).expect("key");
        let plugin = b"\0asm component bytes";
        let signature = sign(&ours, plugin);
        assert_eq!(keys.verify("p", plugin, Some(&signature)), Ok("cosign.pub"));
        let mut tampered = plugin.to_vec();
        tampered[3] ^= 1;
        assert!(matches!(
            keys.verify("p", &tampered, Some(&signature)),
            Err(SignatureError::Mismatch { .. })
        ));
        assert!(matches!(
            keys.verify("p", plugin, None),
            Err(SignatureError::Unsigned { .. })
        ));
        assert!(matches!(
            keys.verify("p", plugin, Some(&sign(&theirs, plugin))),
            Err(SignatureError::Mismatch { .. })
        ));
        assert!(matches!(
            keys.verify("p", plugin, Some(b"not base64!")),
            Err(SignatureError::Malformed { .. })
        ));
        assert!(
            keys.add_pem(
                "bad.pub",
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
            )
            .is_err()
        );
    }
}
