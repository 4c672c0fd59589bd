//! The one writer of a pass: each change goes to the back-end that performs it, by its
//! [`Action`]. IAM and Lambda go to AWS in the change's account, Entra's federated
//! credentials to Microsoft Graph, people's changes to IAM Identity Center. The match is
//! exhaustive, so a new back-end's action is a compile error here until it has its arm,
//! and each back-end ([`Write`]) is handed only actions of its own type.
//!
//! A pass's chain: [`Writers`] (this router) → for IAM and Lambda, the executor that picks
//! the account (the fleet, with the role locks of [`crate::runtime::writes`] around it in
//! the controller) → the account's clients, whose [`Executor`] is this router again with
//! only that account's IAM and Lambda connected → the AWS adapter's [`Write`].

use crate::adapters::aws::AwsClients;
use crate::model::call::{Failure, Written};
use crate::plan::{Action, Change, EntraAction, PeopleAction};
use crate::ports::{Executor, Write};

/// Where a pass's changes are written.
pub struct Writers<'a, E: ?Sized> {
    /// IAM and Lambda.
    aws: Aws<'a, E>,
    /// Microsoft Graph, for the federated credentials (`None`: not connected).
    entra: Option<&'a dyn Write<EntraAction>>,
    /// IAM Identity Center, for people's changes (`None`: not connected).
    people: Option<&'a dyn Write<PeopleAction>>,
    /// Each write goes ahead of other requests waiting in its rate limit
    /// ([`crate::adapters::aws::urgent`]): a focused pass's.
    urgent: bool,
}

/// Where IAM and Lambda changes go.
enum Aws<'a, E: ?Sized> {
    /// Whole changes, to the executor that picks their account and region (the fleet,
    /// guarded or not).
    Accounts(&'a E),
    /// One account's clients in one region: the AWS adapter's own writers.
    Account(&'a AwsClients),
}

impl<'a, E: Executor + ?Sized> Writers<'a, E> {
    /// A pass's writer: IAM and Lambda through `aws` (which picks the account), Entra
    /// through `entra`, people through `people`.
    pub fn new(
        aws: &'a E,
        entra: Option<&'a dyn Write<EntraAction>>,
        people: Option<&'a dyn Write<PeopleAction>>,
    ) -> Self {
        Writers {
            aws: Aws::Accounts(aws),
            entra,
            people,
            urgent: false,
        }
    }

    /// Its writes go ahead of other requests in the rate limits when `urgent` (a focused
    /// pass's).
    pub fn urgent(self, urgent: bool) -> Self {
        Writers { urgent, ..self }
    }

    /// IAM or Lambda: the whole change to the executor that picks its account, or the
    /// action to the account's own writer.
    async fn aws<A: Sync>(
        &self,
        change: &Change,
        action: &A,
        use_revision: bool,
    ) -> Result<Written, Failure>
    where
        AwsClients: Write<A>,
    {
        match self.aws {
            Aws::Accounts(accounts) => accounts.execute(change, use_revision).await,
            Aws::Account(clients) => clients.write(action, use_revision).await,
        }
    }
}

/// A back-end the pass did not connect: the change fails, permanently.
fn connected<'w, A: Sync + ?Sized>(
    writer: Option<&'w A>,
    change: &Change,
    what: &str,
) -> Result<&'w A, Failure> {
    writer.ok_or_else(|| {
        Failure::permanent(
            change.action.name(),
            format!("{what} is not connected in this pass"),
        )
    })
}

#[async_trait::async_trait]
impl<E: Executor + ?Sized> Executor for Writers<'_, E> {
    fn write_slots(&self) -> usize {
        match self.aws {
            Aws::Accounts(accounts) => accounts.write_slots(),
            Aws::Account(clients) => clients.write_slots(),
        }
    }

    fn parallel_accounts(&self) -> usize {
        match self.aws {
            Aws::Accounts(accounts) => accounts.parallel_accounts(),
            Aws::Account(_) => 1,
        }
    }

    async fn execute(&self, change: &Change, use_revision: bool) -> Result<Written, Failure> {
        let route = Box::pin(self.route(change, use_revision));
        match self.urgent {
            true => crate::adapters::aws::urgent(route).await,
            false => route.await,
        }
    }
}

impl<E: Executor + ?Sized> Writers<'_, E> {
    /// The change to its back-end.
    async fn route(&self, change: &Change, use_revision: bool) -> Result<Written, Failure> {
        match &change.action {
            Action::Iam(a) => self.aws(change, a, use_revision).await,
            Action::Lambda(a) => self.aws(change, a, use_revision).await,
            Action::Entra(a) => {
                let graph = connected(self.entra, change, "Microsoft Graph")?;
                graph.write(a, use_revision).await
            }
            Action::People(a) => {
                let ic = connected(self.people, change, "IAM Identity Center")?;
                ic.write(a, use_revision).await
            }
        }
    }
}

/// An account's clients as the fleet writes through them ([`crate::ports::Connector`]):
/// this router with that account's IAM and Lambda, and no other back-end (the fleet is
/// given only those changes).
#[async_trait::async_trait]
impl Executor for AwsClients {
    fn write_slots(&self) -> usize {
        AwsClients::write_slots(self)
    }

    async fn execute(&self, change: &Change, use_revision: bool) -> Result<Written, Failure> {
        let account: Writers<'_, dyn Executor> = Writers {
            aws: Aws::Account(self),
            entra: None,
            people: None,
            urgent: false,
        };
        account.execute(change, use_revision).await
    }
}
