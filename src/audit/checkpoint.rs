//! Signed checkpoints: every so many lines and after every pass, the log's writer signs
//! (line count, head hash, time) with an Ed25519 key the file's other writers do not hold
//! (a Kubernetes Secret mounted read-only, say). Anyone with the public key can then tell
//! a log that was rewritten, re-rooted or reordered, even with every `prevHash`
//! recomputed: the signed head no longer matches, and a new signature cannot be made.

use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A signed statement of how the log stood: `lines` lines, the last with hash `head`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// Lines before this one.
    pub lines: usize,
    /// SHA-256 (hex) of line `lines` (64 zeros for an empty log).
    pub head: String,
    /// When it was signed (RFC 3339).
    pub signed_at: String,
    /// The first 16 hex digits of the SHA-256 of the public key.
    pub key_id: String,
    /// Ed25519 signature (hex) of [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// What is signed.
    fn message(lines: usize, head: &str, signed_at: &str) -> String {
        format!("trustsync-audit-checkpoint/v1\n{lines}\n{head}\n{signed_at}\n")
    }

    /// Whether `key` made this signature over these fields.
    pub fn verifies(&self, key: &VerifyingKey) -> bool {
        let Some(bytes) = hex_decode(&self.signature) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&bytes) else {
            return false;
        };
        key_id(key) == self.key_id
            && key
                .verify(
                    Self::message(self.lines, &self.head, &self.signed_at).as_bytes(),
                    &sig,
                )
                .is_ok()
    }
}

/// The key a writer signs checkpoints with.
pub struct Signer {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.key_id)
    }
}

impl Signer {
    /// Reads an Ed25519 private key in PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
    pub fn from_pem_file(path: &Path) -> Result<Signer, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("audit signing key {}: {e}", path.display()))?;
        let key = SigningKey::from_pkcs8_pem(&text).map_err(|e| {
            format!(
                "audit signing key {}: not an Ed25519 private key in PKCS#8 PEM ({e})",
                path.display()
            )
        })?;
        Ok(Signer::new(key))
    }

    /// A signer over this key.
    pub fn new(key: SigningKey) -> Signer {
        let key_id = key_id(&key.verifying_key());
        Signer { key, key_id }
    }

    /// A checkpoint of `lines` lines whose last has hash `head`, signed now.
    pub fn sign(&self, lines: usize, head: &str) -> Checkpoint {
        let signed_at = super::now_rfc3339();
        let sig = self
            .key
            .sign(Checkpoint::message(lines, head, &signed_at).as_bytes());
        Checkpoint {
            lines,
            head: head.to_string(),
            signed_at,
            key_id: self.key_id.clone(),
            signature: sig.to_bytes().iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// Reads an Ed25519 public key in SPKI PEM (`openssl pkey -pubout`).
pub fn public_key_from_pem_file(path: &Path) -> Result<VerifyingKey, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("public key {}: {e}", path.display()))?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| {
        format!(
            "public key {}: not an Ed25519 public key in PEM ({e})",
            path.display()
        )
    })
}

/// The first 16 hex digits of the SHA-256 of the raw public key.
pub fn key_id(key: &VerifyingKey) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
