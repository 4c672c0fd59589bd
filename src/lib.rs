#![forbid(unsafe_code)]
#![warn(missing_docs)]
//! trustsync keeps AWS access in step with Microsoft Entra ID.
//!
//! A policy repository of YAML documents says which Entra group maps to which IAM role and
//! which roles may invoke which Lambda functions. Each pass reads the policies, the
//! directory and live AWS, and flows one way:
//!
//! ```text
//! policy files ─┐
//!               ├─> desired ──┐
//! directory ────┘             ├─> plan (pure diff) ─> apply ─> audit
//! AWS (IAM, Lambda) ─> observed
//! ```
//!
//! [`policy`], [`directory`], [`desired`], [`observed`] and [`plan`] hold no SDK type and do
//! no I/O beyond reading files; [`aws`] is the only module that talks to AWS, and
//! [`apply`] sees only a [`plan::Plan`].

pub mod apply;
pub mod audit;
pub mod aws;
pub mod checks;
pub mod cli;
pub mod config;
pub mod controller;
pub mod desired;
pub mod directory;
pub mod entra;
pub mod iam_policy;
pub mod metrics;
pub mod observed;
pub mod pass;
pub mod permissions;
pub mod plan;
pub mod policy;
pub mod render;
pub mod retry;
