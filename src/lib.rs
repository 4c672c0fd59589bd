#![forbid(unsafe_code)]
//! trustsync keeps AWS access in step with Microsoft Entra ID.
//!
//! A policy repository of YAML documents says which Entra group maps to which IAM role,
//! which roles may invoke which Lambda functions, and which groups' people get which IAM
//! Identity Center permission set. Each pass reads the policies, the
//! directory and live AWS, and flows one way; the tree follows the flow:
//!
//! ```text
//! sources/policy ──┐
//!                  ├─> desired ──┐
//! sources/directory┘             ├─> plan ─> checks ─> apply ─> audit
//! adapters/aws ─────> observed ──┘      └─> render
//! ```
//!
//! | folder | owns |
//! |---|---|
//! | [`model`] | the shared vocabulary: IAM policy documents and their semantic comparison, the accounts in scope, ARNs, what a call and a pass came to, the clock |
//! | [`sources`] | the policy repository (load, validate, which documents apply in which account) and the directory (group memberships) |
//! | [`desired`] | policies plus memberships made concrete: the roles and statements wanted |
//! | [`observed`] | what AWS says, in trustsync's own types |
//! | [`plan`] | the pure diff of desired against observed, one file per resource kind (people: the folder `people/`); the actions it asks for, nested by back-end (`action.rs`) |
//! | [`checks`] | which planned changes go ahead this pass and which are held, and why |
//! | [`apply`] | making the changes, in phases, through the [`apply::Executor`] seam |
//! | [`audit`] | the record of every change: written ahead, hash-chained, signed, locked to one writer |
//! | [`render`] | the plan as text, JSON and Markdown |
//! | [`inventory`] | the reports on live state: the directory graph, `access`, `export`, `check-token` |
//! | [`ports`] | the seams: `Observe`, `Executor`, `AwsApi`, `Connector`, and the one error policy (`retry`) |
//! | [`adapters`] | the edges: AWS SDK and Microsoft Graph, the only code that names their types |
//! | [`runtime`] | the one pass as gather (`gather.rs`, `accounts.rs`, people in `people.rs`), decide (`decide.rs`) and write (`writers.rs`, one router by back-end) over a scope (`scope.rs`: the whole fleet, or the documents a directory change touches); the accounts it reaches (hub and spoke), the controller, its metrics |
//! | [`cli`], [`config`] | flags and exit codes, one file per command family; the configuration file (accounts and limits in files of their own) |
//!
//! `model`, `sources`, `desired`, `observed`, `plan`, `checks` and `render` hold no SDK
//! type and do no I/O beyond reading files; `apply` sees only a [`plan::Plan`].
//!
//! Layers, lowest first: model < config < observed < sources < desired < plan < checks < render < audit < ports < apply < inventory < adapters < runtime < cli.
//!
//! A module names only modules of its own layer or below (`tests/layers.rs` checks it):
//! the vocabulary both sides need (the actor and outcome of a write, the error class) is
//! in [`model`], the seams the core calls through (and the one error policy the edges
//! follow) in [`ports`], and the SDK types only in [`adapters`].

pub mod adapters;
pub mod apply;
pub mod audit;
pub mod checks;
pub mod cli;
pub mod config;
pub mod desired;
pub mod inventory;
pub mod model;
pub mod observed;
pub mod plan;
pub mod ports;
pub mod render;
pub mod runtime;
pub mod sources;
