//! The seams between the core and the edges: what a pass asks of AWS ([`Observe`] to
//! read, [`Executor`] to write, [`AwsApi`] for both plus the audit anchor, [`Connector`]
//! per account), what each back-end writes ([`Write`], one action type each), and the one
//! error policy every edge follows ([`retry`]). The AWS adapter
//! implements them in production, in-memory fakes in unit tests; nothing here names an SDK
//! type.

pub mod retry;

use std::sync::Arc;

use crate::audit::Checkpoint;
use crate::config::AnchorConfig;
use crate::model::call::{CallStats, Failure, Written};
use crate::observed::{FunctionKey, Observed};
use crate::plan::Change;

/// Reads live AWS into [`Observed`]: the seam a pass reads through (the AWS adapter in
/// production, an in-memory fake in unit tests).
#[async_trait::async_trait]
pub trait Observe: Send + Sync {
    /// The region the reads and writes go to.
    fn region(&self) -> &str;

    /// Everything the planner compares: with `iam`, all roles (those under `role_path` in
    /// detail) and the OIDC providers; the given functions, and every function carrying
    /// `function_tag_key` at each qualifier the tag records. Any failed read fails it all.
    async fn observe(
        &self,
        iam: bool,
        role_path: &str,
        functions: &[FunctionKey],
        function_tag_key: &str,
    ) -> Result<Observed, Failure>;

    /// Just these roles (by name), each read now: its trust policy, tags, boundary, session
    /// duration and the session-deny policy trustsync writes on it, unless its name is in
    /// `sessions_known` (the caller knows it; its other inline and attached policies are
    /// left out). A role that does not exist is left out. The membership fast path reads
    /// this instead of the whole account. The default reads the account and keeps those
    /// roles (the unit tests' fakes).
    async fn observe_roles(
        &self,
        role_path: &str,
        names: &[String],
        _sessions_known: &std::collections::BTreeSet<String>,
    ) -> Result<Observed, Failure> {
        let mut all = self.observe(true, role_path, &[], "").await?;
        let wanted: std::collections::BTreeSet<String> =
            names.iter().map(|n| n.to_ascii_lowercase()).collect();
        all.roles.retain(|k, _| wanted.contains(k));
        Ok(Observed {
            roles: all.roles,
            ..Observed::default()
        })
    }

    /// The account's outbound identity federation issuer URL
    /// (`iam:GetOutboundWebIdentityFederationInfo`); `None` when the feature is off.
    async fn outbound_issuer(&self) -> Result<Option<String>, Failure> {
        Err(Failure::permanent(
            "GetOutboundWebIdentityFederationInfo",
            "this AWS client cannot read outbound identity federation",
        ))
    }
}

/// Performs one planned action: the seam apply writes through (the AWS adapter in
/// production, an in-memory fake in unit tests).
#[async_trait::async_trait]
pub trait Executor: Send + Sync {
    /// Writes that may be under way at once over all services (the adapter bounds each
    /// service itself; this caps how many lanes run).
    fn write_slots(&self) -> usize;

    /// Accounts written at once, each through its own write slots (one by default).
    fn parallel_accounts(&self) -> usize {
        1
    }

    /// Performs the change's action in its account and region. `use_revision`: guard a
    /// Lambda policy write with the revision read at plan time (only the first write to a
    /// function does). "Already done" is success; a failure is final (the adapter has
    /// retried what was transient).
    async fn execute(&self, change: &Change, use_revision: bool) -> Result<Written, Failure>;
}

/// One back-end's writes: performs one action of its own kind, `A`
/// ([`IamAction`](crate::plan::IamAction) and [`LambdaAction`](crate::plan::LambdaAction):
/// the AWS adapter, per account; [`PeopleAction`](crate::plan::PeopleAction): the IAM
/// Identity Center client; [`EntraAction`](crate::plan::EntraAction): Microsoft Graph), and
/// no other. The router
/// (`runtime::writers`) picks the back-end by the change's [`crate::plan::Action`], so a
/// back-end never sees another's action. `use_revision` as for [`Executor::execute`];
/// "already done" is success, and a failure is final.
#[async_trait::async_trait]
pub trait Write<A: Sync>: Send + Sync {
    /// Performs `action`.
    async fn write(&self, action: &A, use_revision: bool) -> Result<Written, Failure>;
}

/// AWS as a pass sees it: read ([`Observe`]), write ([`Executor`]), publish audit
/// checkpoints and count requests. The AWS adapter in production; an in-memory fake in the
/// controller's unit tests.
#[async_trait::async_trait]
pub trait AwsApi: Observe + Executor {
    /// Requests made so far.
    fn stats(&self) -> CallStats;

    /// Publishes audit checkpoints to the anchor (CloudWatch Logs).
    async fn publish_checkpoints(
        &self,
        _anchor: &AnchorConfig,
        _checkpoints: &[Checkpoint],
    ) -> Result<(), Failure> {
        Ok(())
    }
}

/// How a pass reaches one account.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// Makes sure the account can be called now (assumes its role when it has one): a
    /// refusal here marks the account unreachable before anything is read.
    async fn reach(&self) -> Result<(), Failure>;

    /// The account's clients in `region` (made once, then kept).
    fn clients(&self, region: &str) -> Arc<dyn AwsApi>;

    /// Requests made so far through every region's clients.
    fn stats(&self) -> CallStats;
}

/// Runs `futures` up to `n` at a time; their outputs in order, or the first error.
///
/// The futures are made before they run, not by a closure inside a stream: a stream's
/// closure over borrowed items keeps the future that awaits it from being proven `Send`
/// (rust-lang/rust#110338), and the membership fast path runs as a task of its own.
pub async fn try_at_once<T, E, F>(
    futures: impl IntoIterator<Item = F>,
    n: usize,
) -> Result<Vec<T>, E>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    use futures::stream::{self, StreamExt, TryStreamExt};
    let futures: Vec<F> = futures.into_iter().collect();
    stream::iter(futures).buffered(n.max(1)).try_collect().await
}

/// [`try_at_once`] for futures that cannot fail: every output, in order.
pub async fn at_once<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
    n: usize,
) -> Vec<F::Output> {
    use futures::stream::{self, StreamExt};
    let futures: Vec<F> = futures.into_iter().collect();
    stream::iter(futures).buffered(n.max(1)).collect().await
}
