//! Waiting for IAM Identity Center's asynchronous requests (account assignments made or
//! taken away, permission sets provisioned): their status is asked once a second until
//! done, through the one error policy's wait ([`crate::ports::retry::sleep_unless_stopped`]),
//! so a shutdown ends the wait at once.

use std::time::Duration;

use aws_sdk_iam::operation::RequestId;

use super::super::{AwsClients, Operation};
use crate::model::call::{Failure, Written};
use crate::ports::retry::sleep_unless_stopped;

/// How long a write waits for Identity Center's asynchronous provisioning (account
/// assignments, permission sets) before it counts as failed: it is retried next pass.
const PROVISIONING_POLLS: u32 = 60;

/// How an asynchronous Identity Center request ended, as its status says.
enum Provisioning {
    /// Done (or the answer carried no status: nothing to wait for).
    Done,
    /// Under way: ask again with this request id.
    Pending(String),
}

fn provisioning(
    op: &str,
    status: Option<&aws_sdk_ssoadmin::types::StatusValues>,
    request_id: Option<&str>,
    failure: Option<&str>,
) -> Result<Provisioning, Failure> {
    use aws_sdk_ssoadmin::types::StatusValues;
    match (status, request_id) {
        (Some(StatusValues::Failed), _) => Err(Failure::permanent(
            op,
            format!(
                "IAM Identity Center reports FAILED: {}",
                failure.unwrap_or("no reason given")
            ),
        )),
        (Some(StatusValues::InProgress), Some(id)) => Ok(Provisioning::Pending(id.to_string())),
        _ => Ok(Provisioning::Done),
    }
}

/// A wait for `op`'s status that shutdown cut short: the write's outcome is not known (the
/// next pass reads it again).
fn stopped_waiting(op: &str) -> Failure {
    Failure::permanent(
        op,
        "the wait for IAM Identity Center to finish was cut short by shutdown; the next pass looks again",
    )
}

impl AwsClients {
    /// Provisions a permission set to every account it is provisioned in, and waits: a
    /// change to a set reaches no account's role before this.
    pub(super) async fn provision(
        &self,
        (instance_arn, arn): (&str, &str),
    ) -> Result<Written, Failure> {
        // At most `writeConcurrency.identityCenterProvisions` (3, AWS's quota) at once.
        let _slot = self
            .writes
            .provisions
            .acquire()
            .await
            .map_err(|e| Failure::permanent("ProvisionPermissionSet", e.to_string()))?;
        let out = self
            .call(
                Operation::ProvisionPermissionSet,
                |_| false,
                || {
                    self.ssoadmin
                        .provision_permission_set()
                        .instance_arn(instance_arn)
                        .permission_set_arn(arn)
                        .target_type(
                            aws_sdk_ssoadmin::types::ProvisionTargetType::AllProvisionedAccounts,
                        )
                        .send()
                },
            )
            .await?
            .expect("no failure is benign");
        let status = out.permission_set_provisioning_status();
        let mut state = provisioning(
            "ProvisionPermissionSet",
            status.and_then(|s| s.status()),
            status.and_then(|s| s.request_id()),
            status.and_then(|s| s.failure_reason()),
        )?;
        for _ in 0..PROVISIONING_POLLS {
            let Provisioning::Pending(id) = &state else {
                return Ok(Written {
                    request_id: out.request_id().map(String::from),
                    note: None,
                });
            };
            if !sleep_unless_stopped(Duration::from_secs(1), &self.stop).await {
                return Err(stopped_waiting("ProvisionPermissionSet"));
            }
            let d = self
                .read(Operation::DescribePermissionSetProvisioningStatus, || {
                    self.ssoadmin
                        .describe_permission_set_provisioning_status()
                        .instance_arn(instance_arn)
                        .provision_permission_set_request_id(id)
                        .send()
                })
                .await?;
            let s = d.permission_set_provisioning_status();
            state = provisioning(
                "ProvisionPermissionSet",
                s.and_then(|s| s.status()),
                s.and_then(|s| s.request_id()).or(Some(id)),
                s.and_then(|s| s.failure_reason()),
            )?;
        }
        Err(Failure::permanent(
            "ProvisionPermissionSet",
            format!("still in progress after {PROVISIONING_POLLS}s; the next pass looks again"),
        ))
    }

    /// Waits for an account assignment's creation or deletion to finish.
    /// `first`: the status the request answered with.
    pub(super) async fn wait_assignment(
        &self,
        instance_arn: &str,
        first: Option<&aws_sdk_ssoadmin::types::AccountAssignmentOperationStatus>,
        creation: bool,
    ) -> Result<(), Failure> {
        let op = if creation {
            "CreateAccountAssignment"
        } else {
            "DeleteAccountAssignment"
        };
        let mut state = provisioning(
            op,
            first.and_then(|s| s.status()),
            first.and_then(|s| s.request_id()),
            first.and_then(|s| s.failure_reason()),
        )?;
        for _ in 0..PROVISIONING_POLLS {
            let Provisioning::Pending(id) = &state else {
                return Ok(());
            };
            if !sleep_unless_stopped(Duration::from_secs(1), &self.stop).await {
                return Err(stopped_waiting(op));
            }
            let status = if creation {
                self.read(Operation::DescribeAccountAssignmentCreationStatus, || {
                    self.ssoadmin
                        .describe_account_assignment_creation_status()
                        .instance_arn(instance_arn)
                        .account_assignment_creation_request_id(id)
                        .send()
                })
                .await?
                .account_assignment_creation_status()
                .cloned()
            } else {
                self.read(Operation::DescribeAccountAssignmentDeletionStatus, || {
                    self.ssoadmin
                        .describe_account_assignment_deletion_status()
                        .instance_arn(instance_arn)
                        .account_assignment_deletion_request_id(id)
                        .send()
                })
                .await?
                .account_assignment_deletion_status()
                .cloned()
            };
            state = provisioning(
                op,
                status.as_ref().and_then(|s| s.status()),
                status.as_ref().and_then(|s| s.request_id()).or(Some(id)),
                status.as_ref().and_then(|s| s.failure_reason()),
            )?;
        }
        Err(Failure::permanent(
            op,
            format!("still in progress after {PROVISIONING_POLLS}s; the next pass looks again"),
        ))
    }
}
