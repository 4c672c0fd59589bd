//! What runs the stages: one [`pass`] shared by `plan`, `apply` and `run`; the long-running [`controller`] with its triggers, status and HTTP
//! endpoints; and its [`metrics`]; the accounts a pass reaches ([`fleet`]).

pub mod controller;
pub mod directory;
pub mod fleet;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod pass;
pub mod people;
pub mod status;
pub mod watch;
pub mod writes;
