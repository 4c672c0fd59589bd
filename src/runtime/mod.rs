//! What runs the stages: one [`pass`] shared by `plan`, `apply` and `run`; the long-running [`controller`] with its triggers, status and HTTP
//! endpoints; and its [`metrics`]; the accounts a pass reaches ([`fleet`]).

pub mod accounts;
pub mod controller;
pub mod decide;
pub mod directory;
pub mod fleet;
pub mod gather;
pub mod http;
pub mod inbox;
pub mod metrics;
pub mod notify;
pub mod pass;
pub mod people;
pub(crate) mod people_fast;
pub mod people_state;
pub mod scope;
pub mod set_cache;
pub mod status;
pub mod watch;
pub mod who_changed;
pub mod writers;
pub mod writes;
