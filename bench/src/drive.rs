//! A closed-loop load generator: `concurrency` workers call as fast as
//! answers come back for a fixed time; latencies go into HDR histograms.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

/// What one run measured.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// Successful calls.
    pub(crate) ok: u64,
    /// Failed calls.
    pub(crate) errors: u64,
    /// Wall time of the run.
    pub(crate) elapsed: Duration,
    /// Latencies of successful calls, in microseconds.
    pub(crate) latency: Histogram<u64>,
    /// Items counted by the calls (messages for streams), if any.
    pub(crate) items: u64,
}

impl Run {
    /// Successful calls per second.
    pub(crate) fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// Items per second.
    pub(crate) fn item_rate(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// Runs `call(worker, iteration)` from `concurrency` workers for `duration`.
/// A call returns how many items it handled (`Ok(1)` for a unary call).
pub(crate) async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, call: F) -> Run
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<u64, tonic::Status>> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let call = call.clone();
            tokio::spawn(async move {
                let (mut ok, mut errors, mut items, mut latency) = (0u64, 0u64, 0u64, histogram());
                let mut iteration = 0;
                while Instant::now() < deadline {
                    let begun = Instant::now();
                    match call(worker, iteration).await {
                        Ok(count) => {
                            ok += 1;
                            items += count;
                            let _ = latency.record(begun.elapsed().as_micros().max(1) as u64);
                        }
                        Err(status) => {
                            errors += 1;
                            if errors == 1 {
                                eprintln!("bench: worker {worker}: {status:?}");
                            }
                        }
                    }
                    iteration += 1;
                }
                (ok, errors, items, latency)
            })
        })
        .collect();
    let mut run = Run { ok: 0, errors: 0, elapsed: Duration::ZERO, latency: histogram(), items: 0 };
    for worker in workers {
        let (ok, errors, items, latency) = worker.await.expect("worker");
        run.ok += ok;
        run.errors += errors;
        run.items += items;
        let _ = run.latency.add(latency);
    }
    run.elapsed = started.elapsed();
    run
}
