//! The keys a log is judged by: the checkpoint key and the auditors'.

use super::{PublicKey, Signer};

/// The keys the log's records are judged by.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// The key checkpoints verify with; none when signing is not configured (the log is
    /// then believed as far as its chain).
    pub checkpoints: Option<PublicKey>,
    /// The auditors' keys: only an acknowledgement signed with one of them counts.
    pub auditors: Vec<PublicKey>,
}

impl Trust {
    /// The keys of this configuration: the checkpoint key from `publicKeyFile`, else
    /// derived from `signingKeyFile`; the auditors' from `auditorPublicKeyFiles`, each an
    /// Ed25519 key other than the checkpoint key.
    pub fn of_config(config: &crate::config::AuditConfig) -> Result<Trust, String> {
        Trust::of_config_keys(config).map(|(trust, _)| trust)
    }

    /// [`Trust::of_config`], with the signing key it read from `signingKeyFile` (if set):
    /// the writer signs with it, without reading the file a second time.
    pub(super) fn of_config_keys(
        config: &crate::config::AuditConfig,
    ) -> Result<(Trust, Option<Signer>), String> {
        let configured = match &config.public_key_file {
            Some(p) => {
                Some(PublicKey::from_pem_file(p).map_err(|e| format!("audit.publicKeyFile: {e}"))?)
            }
            None => None,
        };
        let signing = match &config.signing_key_file {
            Some(p) => {
                Some(Signer::from_pem_file(p).map_err(|e| format!("audit.signingKeyFile: {e}"))?)
            }
            None => None,
        };
        let derived = signing.as_ref().map(Signer::public_key);
        let checkpoints = match (configured, derived) {
            (Some(c), Some(d)) if c != d => {
                return Err(format!(
                    "audit.publicKeyFile (key {}) is not the public half of audit.signingKeyFile (key {})",
                    c.key_id(),
                    d.key_id()
                ))
            }
            (c, d) => c.or(d),
        };
        if config.kms_key_id.is_some() && checkpoints.is_none() {
            return Err("audit.kmsKeyId: set audit.publicKeyFile to the key's public half (aws kms get-public-key), so that what it signed can be verified".into());
        }
        let mut auditors = Vec::new();
        for p in &config.auditor_public_key_files {
            let key = PublicKey::from_pem_file(p)
                .map_err(|e| format!("audit.auditorPublicKeyFiles: {e}"))?;
            if !matches!(key, PublicKey::Ed25519(_)) {
                return Err(format!(
                    "audit.auditorPublicKeyFiles: {} is not an Ed25519 key; auditors sign with Ed25519 (openssl genpkey -algorithm ed25519)",
                    p.display()
                ));
            }
            if checkpoints.as_ref() == Some(&key) {
                return Err(format!(
                    "audit.auditorPublicKeyFiles: {} is the controller's own checkpoint key; an acknowledgement must come from a key the controller does not hold",
                    p.display()
                ));
            }
            auditors.push(key);
        }
        Ok((
            Trust {
                checkpoints,
                auditors,
            },
            signing,
        ))
    }
}
