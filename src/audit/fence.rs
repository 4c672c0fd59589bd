//! Whether a writer may write now: until a deadline its lease sets ([`super::lease`]), and
//! never again once it lost the lease or the log found another writer ahead of it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Whether this writer may write now: until a deadline its lease sets, and never again
/// once it lost the lease.
#[derive(Debug, Clone, Default)]
pub struct Fence(Arc<Mutex<FenceState>>);

#[derive(Debug, Default)]
struct FenceState {
    until: Option<Instant>,
    ended: Option<String>,
}

impl Fence {
    /// True while the lease is this writer's.
    pub fn may_write(&self) -> bool {
        let s = self.0.lock().expect("fence");
        s.ended.is_none() && s.until.is_some_and(|u| Instant::now() < u)
    }

    /// Why it may not, or until when it may.
    pub fn describe(&self) -> String {
        let s = self.0.lock().expect("fence");
        match (&s.ended, s.until) {
            (Some(why), _) => why.clone(),
            (None, Some(u)) if Instant::now() < u => {
                format!("held for {} ms more", (u - Instant::now()).as_millis())
            }
            (None, Some(_)) => "not renewed in time".into(),
            (None, None) => "never taken".into(),
        }
    }

    pub(super) fn extend(&self, until: Instant) {
        let mut s = self.0.lock().expect("fence");
        if s.ended.is_none() {
            s.until = Some(until);
        }
    }

    pub(crate) fn end(&self, why: String) {
        let mut s = self.0.lock().expect("fence");
        s.ended.get_or_insert(why);
        s.until = None;
    }
}

impl Fence {
    /// Why the fence was closed for good, if it was.
    pub(super) fn ended(&self) -> Option<String> {
        self.0.lock().expect("fence").ended.clone()
    }
}
