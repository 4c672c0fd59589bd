//! Acknowledgements an auditor signs. Whoever can write the audit volume can write an
//! `acknowledged` line, or the `<log>.acknowledge` request a running controller takes, so
//! neither counts by itself: an acknowledgement clears the rotation alarm only when it is
//! signed by one of the configured auditor keys (`audit.auditorPublicKeyFiles`, Ed25519;
//! never the controller's own signing key) and names the rotation it acknowledges by its
//! previous segment and that segment's last good hash. Anything else is ignored and
//! reported. With no auditor key configured, nothing clears the alarm.

use super::keys::{hex_decode, PublicKey};
use super::{Acknowledged, Rotated, Signer};

impl Acknowledged {
    /// What is signed: the rotation (previous segment, its last good hash), who, the note
    /// and when, as one JSON array (unambiguous whatever the note holds).
    pub fn message(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!([
            "trustsync-audit-acknowledgement/v1",
            self.previous_segment,
            self.previous_last_hash,
            self.by,
            self.note,
            self.signed_at,
        ]))
        .expect("JSON values serialize")
    }

    /// `by`'s acknowledgement of `rotated`, signed now with an auditor's key.
    pub fn signed(rotated: &Rotated, by: &str, note: Option<String>, key: &Signer) -> Self {
        let mut ack = Acknowledged {
            by: by.to_string(),
            previous_segment: rotated.previous_segment.clone(),
            note,
            previous_last_hash: Some(rotated.previous_last_hash.clone()),
            signed_at: Some(super::now_rfc3339()),
            key_id: None,
            signature: None,
        };
        let (key_id, signature) = key.sign_bytes(&ack.message());
        ack.key_id = Some(key_id);
        ack.signature = Some(signature);
        ack
    }

    /// Whether this acknowledges `rotated` with a valid signature by one of `auditors`;
    /// why not, when it does not.
    pub fn check(&self, rotated: &Rotated, auditors: &[PublicKey]) -> Result<(), String> {
        if auditors.is_empty() {
            return Err("no auditor key is configured (audit.auditorPublicKeyFiles), so no acknowledgement can clear the alarm".into());
        }
        let (Some(key_id), Some(signature)) = (&self.key_id, &self.signature) else {
            return Err(
                "it is not signed: an acknowledgement counts only when signed with an auditor's key (trustsync audit acknowledge --key)"
                    .into(),
            );
        };
        if self.previous_segment != rotated.previous_segment
            || self.previous_last_hash.as_deref() != Some(rotated.previous_last_hash.as_str())
        {
            return Err(format!(
                "it acknowledges another rotation ({}), not the one this segment began with ({})",
                self.previous_segment, rotated.previous_segment
            ));
        }
        let Some(key) = auditors.iter().find(|k| k.key_id() == *key_id) else {
            return Err(format!(
                "it is signed by key {key_id}, which is not a configured auditor key"
            ));
        };
        let valid = hex_decode(signature).is_some_and(|sig| key.verifies(&self.message(), &sig));
        if !valid {
            return Err(format!(
                "its signature does not verify with auditor key {key_id}: it was forged or edited"
            ));
        }
        Ok(())
    }
}
