//! Locking a mutex whether or not a thread panicked while holding it. Stratum keeps every mutex's state whole
//! between statements (no invariant is half-updated across a call that can panic), so the state behind a poisoned
//! mutex is still good, and one panicking task must not take the rest of the process down with it.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, taking it over from a thread that panicked while holding it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
