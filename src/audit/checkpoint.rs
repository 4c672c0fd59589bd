//! Signed checkpoints: every so many lines and after every pass, the log's writer signs
//! (line count, head hash, time) with an Ed25519 key the file's other writers do not hold
//! (a Kubernetes Secret mounted read-only, say). Anyone with the public key can then tell
//! a log that was rewritten, re-rooted or reordered, even with every `prevHash`
//! recomputed: the signed head no longer matches, and a new signature cannot be made.
//!
//! Or the key never enters the pod: with `audit.kmsKeyId` the checkpoints are signed by an
//! asymmetric AWS KMS key (`ECC_NIST_P256`, `ECDSA_SHA_256`) through `kms:Sign`
//! ([`super::kms::KmsSigner`]); they name the algorithm, and verify with the key's public
//! half as KMS `GetPublicKey` exports it.

use std::path::Path;

use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::keys::{hex, hex_decode, PublicKey};

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
    /// The signature algorithm, when not Ed25519: `ECDSA_SHA_256` (a KMS key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// The signature (hex) of [`Checkpoint::message`]: Ed25519, or ECDSA in DER.
    pub signature: String,
}

impl Checkpoint {
    /// What is signed.
    pub(super) fn message(lines: usize, head: &str, signed_at: &str) -> String {
        format!("trustsync-audit-checkpoint/v1\n{lines}\n{head}\n{signed_at}\n")
    }

    /// Whether `key` made this signature over these fields.
    pub fn verifies(&self, key: &PublicKey) -> bool {
        let Some(bytes) = hex_decode(&self.signature) else {
            return false;
        };
        let algorithm = self.algorithm.as_deref().unwrap_or("ED25519");
        algorithm == key.algorithm()
            && key.key_id() == self.key_id
            && key.verifies(
                Self::message(self.lines, &self.head, &self.signed_at).as_bytes(),
                &bytes,
            )
    }
}

/// What signs this writer's checkpoints: an Ed25519 key it holds, or a KMS key it asks.
#[derive(Debug)]
pub enum CheckpointSigner {
    /// `audit.signingKeyFile`.
    Local(Signer),
    /// `audit.kmsKeyId`.
    Kms(super::kms::KmsSigner),
}

impl CheckpointSigner {
    /// A checkpoint of `lines` lines whose last has hash `head`, signed now; an error when
    /// KMS could not be asked (the lines stay unsigned until the next checkpoint).
    pub fn sign(&self, lines: usize, head: &str) -> Result<Checkpoint, String> {
        match self {
            CheckpointSigner::Local(s) => Ok(s.sign(lines, head)),
            CheckpointSigner::Kms(k) => {
                let signed_at = super::now_rfc3339();
                let sig = k.sign(Checkpoint::message(lines, head, &signed_at).as_bytes())?;
                Ok(Checkpoint {
                    lines,
                    head: head.to_string(),
                    signed_at,
                    key_id: k.public_key().key_id(),
                    algorithm: Some(k.public_key().algorithm().to_string()),
                    signature: hex(&sig),
                })
            }
        }
    }

    /// The public key its checkpoints verify with.
    pub fn public_key(&self) -> PublicKey {
        match self {
            CheckpointSigner::Local(s) => s.public_key(),
            CheckpointSigner::Kms(k) => k.public_key().clone(),
        }
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
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let key = SigningKey::from_pkcs8_pem(&text).map_err(|e| {
            format!(
                "{}: not an Ed25519 private key in PKCS#8 PEM ({e}); make one with `openssl genpkey -algorithm ed25519`",
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
            algorithm: None,
            signature: hex(&sig.to_bytes()),
        }
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::Ed25519(self.key.verifying_key())
    }

    /// Signs `message` (an acknowledgement's); returns the key id and the signature (hex).
    pub(super) fn sign_bytes(&self, message: &[u8]) -> (String, String) {
        (self.key_id.clone(), hex(&self.key.sign(message).to_bytes()))
    }
}

/// The first 16 hex digits of the SHA-256 of the raw public key.
pub fn key_id(key: &VerifyingKey) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}
