//! The wall clock, read in one way: time since the Unix epoch (zero before it, which no
//! correct clock shows).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, as time since the Unix epoch.
pub fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Now, in whole seconds since the Unix epoch.
pub fn unix_seconds() -> u64 {
    since_epoch().as_secs()
}
