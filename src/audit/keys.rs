//! Public keys that vouch for the log: the checkpoint signer's (an Ed25519 key the
//! controller holds, or an ECDSA P-256 key that stays in AWS KMS) and the auditors'
//! (Ed25519), read from SubjectPublicKeyInfo PEM (`openssl pkey -pubout`, or the DER that
//! KMS `GetPublicKey` returns, wrapped in PEM).

use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::Decode;
use ed25519_dalek::pkcs8::spki::SubjectPublicKeyInfoRef;
use ed25519_dalek::pkcs8::{DecodePublicKey, ObjectIdentifier};
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

/// RFC 8410: id-Ed25519.
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// RFC 5480: id-ecPublicKey, and the named curve secp256r1 (NIST P-256).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// The signing algorithm of ECDSA checkpoints, as KMS names it (`SigningAlgorithm`).
pub const ECDSA_SHA_256: &str = "ECDSA_SHA_256";

/// A key that verifies checkpoints or acknowledgements.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519: the local signing key's, and every auditor's.
    Ed25519(VerifyingKey),
    /// ECDSA on NIST P-256 with SHA-256 (a KMS `ECC_NIST_P256` key): the SPKI DER and the
    /// uncompressed point in it.
    P256 { spki: Vec<u8>, point: Vec<u8> },
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.algorithm(), self.key_id())
    }
}

impl PublicKey {
    /// Reads a public key in SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem_file(path: &Path) -> Result<PublicKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("public key {}: {e}", path.display()))?;
        PublicKey::from_pem(&text).map_err(|e| format!("public key {}: {e}", path.display()))
    }

    /// Parses a public key in SubjectPublicKeyInfo PEM (any line length: `base64`
    /// wraps at 76 columns, OpenSSL at 64).
    pub fn from_pem(text: &str) -> Result<PublicKey, String> {
        use base64::Engine;
        let text = text.trim();
        let label = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("-----BEGIN "))
            .and_then(|l| l.strip_suffix("-----"))
            .ok_or("not a PEM public key; expected -----BEGIN PUBLIC KEY-----")?;
        if label != "PUBLIC KEY" {
            return Err(format!(
                "a PEM `{label}`, not a `PUBLIC KEY`: give the public half (openssl pkey -pubout)"
            ));
        }
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut ended = false;
        for line in text.lines().skip(1).map(str::trim) {
            if line == end {
                ended = true;
                break;
            }
            body.push_str(line);
        }
        if !ended {
            return Err(format!("a PEM public key without its `{end}` line"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| format!("a PEM public key whose body is not Base64 ({e})"))?;
        PublicKey::from_spki_der(&der)
    }

    /// Parses a DER SubjectPublicKeyInfo (what KMS `GetPublicKey` returns).
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, String> {
        let spki = SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| format!("not a SubjectPublicKeyInfo ({e})"))?;
        if spki.algorithm.oid == ED25519 {
            let key = VerifyingKey::from_public_key_der(der)
                .map_err(|e| format!("not an Ed25519 public key ({e})"))?;
            return Ok(PublicKey::Ed25519(key));
        }
        if spki.algorithm.oid == EC_PUBLIC_KEY {
            let curve = spki.algorithm.parameters_oid().ok();
            if curve != Some(SECP256R1) {
                return Err(format!(
                    "an elliptic-curve key on {}, not NIST P-256: a KMS signing key must be ECC_NIST_P256",
                    curve.map_or("an unnamed curve".to_string(), |c| c.to_string())
                ));
            }
            let point = spki.subject_public_key.raw_bytes().to_vec();
            if point.len() != 65 || point[0] != 4 {
                return Err("not an uncompressed P-256 point".into());
            }
            return Ok(PublicKey::P256 {
                spki: der.to_vec(),
                point,
            });
        }
        Err(format!(
            "a key of algorithm {}: only Ed25519 and ECDSA P-256 (ECC_NIST_P256) keys sign audit logs",
            spki.algorithm.oid
        ))
    }

    /// The first 16 hex digits of the SHA-256 of the key (the raw key for Ed25519, as
    /// checkpoints have always named it; the SPKI DER for P-256).
    pub fn key_id(&self) -> String {
        let digest = match self {
            PublicKey::Ed25519(k) => Sha256::digest(k.as_bytes()),
            PublicKey::P256 { spki, .. } => Sha256::digest(spki),
        };
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The signature algorithm a checkpoint of this key names (`None` for Ed25519, as
    /// checkpoints before KMS signing did).
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::Ed25519(_) => "ED25519",
            PublicKey::P256 { .. } => ECDSA_SHA_256,
        }
    }

    /// Whether `signature` is this key's over `message` (Ed25519: 64 bytes; ECDSA: the
    /// DER `Ecdsa-Sig-Value` KMS returns).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(k) => {
                Signature::from_slice(signature).is_ok_and(|sig| k.verify(message, &sig).is_ok())
            }
            PublicKey::P256 { point, .. } => ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_ASN1,
                point,
            )
            .verify(message, signature)
            .is_ok(),
        }
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
