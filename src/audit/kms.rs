//! Checkpoints signed by an asymmetric AWS KMS key, so that the signing key never enters
//! the pod: whoever takes the pod (or its volume, or the image) can ask KMS to sign while
//! they hold the controller's credentials, but cannot carry the key away or sign after
//! the credentials are gone, and every `kms:Sign` is in CloudTrail.
//!
//! What AWS documents (KMS API reference, `Sign` and `GetPublicKey`): `Sign` takes a
//! `KeyId`, a `Message` of up to 4,096 bytes with `MessageType` `RAW` (KMS hashes it with
//! the algorithm's digest), and a `SigningAlgorithm` the key supports; the caller needs
//! `kms:Sign` on the key. For `ECDSA_SHA_256` the signature is "a DER-encoded object as
//! defined by ANSI X9.62-2005 and RFC 3279 Section 2.2.3". `GetPublicKey` returns "a
//! DER-encoded X.509 public key, also known as SubjectPublicKeyInfo (SPKI), as defined in
//! RFC 5280". A key of spec `ECC_NIST_P256` signs with `ECDSA_SHA_256` only (KMS
//! developer guide, key spec reference; the CDK's `KeySpec` says the same). moto
//! implements `CreateKey`, `Sign` and `GetPublicKey` for that spec the same way.
//!
//! The controller is not given `kms:GetPublicKey`: the public key is configured as a file
//! (`audit.publicKeyFile`, exported once with `aws kms get-public-key`), and a probe
//! signature at start proves the two belong together.
//!
//! The SDK call runs on a thread of its own with its own runtime, so that the log, which
//! appends synchronously, can sign from any thread.

use std::sync::mpsc;
use std::time::Duration;

use super::keys::PublicKey;

/// Signs with a KMS key; see the module documentation.
pub struct KmsSigner {
    key_arn: String,
    public: PublicKey,
    jobs: mpsc::Sender<Job>,
}

struct Job {
    message: Vec<u8>,
    reply: mpsc::Sender<Result<Vec<u8>, String>>,
}

impl std::fmt::Debug for KmsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KmsSigner({}, {:?})", self.key_arn, self.public)
    }
}

impl KmsSigner {
    /// Connects to KMS in the key's region (credentials and endpoint from the standard AWS
    /// chain, as for every other AWS call) and proves with one signature that `public` is
    /// the key's public half.
    pub fn connect(key_arn: &str, public: PublicKey) -> Result<KmsSigner, String> {
        let region = crate::model::arn::kms_key_region(key_arn)?.to_string();
        if !matches!(public, PublicKey::P256 { .. }) {
            return Err(format!(
                "audit.publicKeyFile is {:?}, but a KMS checkpoint key must be ECC_NIST_P256 (signing with ECDSA_SHA_256)",
                public
            ));
        }
        let (jobs, inbox) = mpsc::channel::<Job>();
        let key = key_arn.to_string();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        std::thread::Builder::new()
            .name("trustsync-kms".into())
            .spawn(move || sign_on_thread(region, key, inbox, ready_tx))
            .map_err(|e| format!("a thread for KMS: {e}"))?;
        ready_rx
            .recv()
            .map_err(|_| "the KMS thread ended".to_string())??;
        let signer = KmsSigner {
            key_arn: key_arn.to_string(),
            public,
            jobs,
        };
        let probe = format!(
            "trustsync-audit-kms-probe/v1\n{key_arn}\n{}\n",
            super::now_rfc3339()
        );
        let sig = signer
            .sign(probe.as_bytes())
            .map_err(|e| format!("audit.kmsKeyId {key_arn}: kms:Sign failed ({e})"))?;
        if !signer.public.verifies(probe.as_bytes(), &sig) {
            return Err(format!(
                "audit.publicKeyFile ({}) is not the public key of audit.kmsKeyId {key_arn}: a probe signature did not verify with it; export it again with `aws kms get-public-key --key-id {key_arn}`",
                signer.public.key_id()
            ));
        }
        Ok(signer)
    }

    /// The key's public half, as configured (and proven at connect).
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Asks KMS to sign `message` (`RAW`, `ECDSA_SHA_256`); the DER signature.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let (reply, answer) = mpsc::channel();
        self.jobs
            .send(Job {
                message: message.to_vec(),
                reply,
            })
            .map_err(|_| "the KMS thread ended".to_string())?;
        let wait = || {
            answer
                .recv()
                .unwrap_or_else(|_| Err("the KMS thread ended".into()))
        };
        // Inside the multi-threaded runtime, tell it this worker waits.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }
}

/// An SDK error in one line, with the service's code and message when it answered.
fn describe<E: std::error::Error + 'static>(
    e: &aws_sdk_kms::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> String {
    aws_sdk_kms::error::DisplayErrorContext(e).to_string()
}

/// The KMS thread: its own runtime and client (ready once the client is loaded), then
/// one `kms:Sign` per job until the signer is dropped.
fn sign_on_thread(
    region: String,
    key: String,
    inbox: mpsc::Receiver<Job>,
    ready_tx: mpsc::Sender<Result<(), String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = ready_tx.send(Err(format!("a runtime for KMS: {e}")));
            return;
        }
    };
    let client = runtime.block_on(async {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(15))
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            )
            .load()
            .await;
        aws_sdk_kms::Client::new(&shared)
    });
    let _ = ready_tx.send(Ok(()));
    while let Ok(job) = inbox.recv() {
        let signed = runtime.block_on(
            client
                .sign()
                .key_id(&key)
                .message(aws_sdk_kms::primitives::Blob::new(job.message))
                .message_type(aws_sdk_kms::types::MessageType::Raw)
                .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::EcdsaSha256)
                .send(),
        );
        let result = match signed {
            Ok(out) => out
                .signature()
                .map(|b| b.as_ref().to_vec())
                .ok_or_else(|| "KMS Sign answered without a signature".to_string()),
            Err(e) => Err(describe(&e)),
        };
        let _ = job.reply.send(result);
    }
}
