//! A monotonic clock that tests can move by hand.
//!
//! The JWKS cache measures key age, TTL and refetch cooldown with it, so
//! tests can step past a 30 s cooldown without sleeping (and without pausing
//! tokio's timer, which would also fire the HTTP client's timeouts early).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Monotonic time: the system's, or a manual one for tests.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

#[derive(Debug)]
struct Manual {
    start: Instant,
    offset_nanos: AtomicU64,
}

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that stands still until [`Clock::advance`] moves it.
    pub fn manual() -> Self {
        Self { manual: Some(Arc::new(Manual { start: Instant::now(), offset_nanos: AtomicU64::new(0) })) }
    }

    /// The current instant.
    pub fn now(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(manual) => manual.start + Duration::from_nanos(manual.offset_nanos.load(Ordering::SeqCst)),
        }
    }

    /// Moves a manual clock forward (no effect on the system clock).
    pub fn advance(&self, by: Duration) {
        if let Some(manual) = &self.manual {
            let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
            manual.offset_nanos.fetch_add(nanos, Ordering::SeqCst);
        }
    }
}
