//! Locking a mutex whose holder panicked: the data is plain state (a frame, counters),
//! still usable, so podlight goes on with it rather than panicking too.

use std::sync::{Mutex, MutexGuard};

pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
