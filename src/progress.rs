//! Progress display: an indicatif bar on a terminal, one plain line every few
//! seconds otherwise (logs stay readable under Kubernetes, Slurm or `tee`).
//!
//! It only reads shared counters; the pipeline never waits on it.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::runner::EngineCounters;

/// Counters the writer and the engine update.
#[derive(Debug, Default)]
pub struct JobCounters {
    pub rows_done: AtomicU64,
    pub rows_error: AtomicU64,
}

/// A running progress display; stops when dropped or on [`Progress::finish`].
pub struct Progress {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

impl Progress {
    /// Starts the display for `total` rows (of which `skipped` were already
    /// committed by an earlier attempt).
    pub fn start(
        total: u64,
        skipped: u64,
        job: Arc<JobCounters>,
        engine: Arc<EngineCounters>,
    ) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let rate = |e: &EngineCounters| {
                engine_tokens(e) as f64 / started.elapsed().as_secs_f64().max(1e-3)
            };
            if std::io::stderr().is_terminal() {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{bar:30.cyan/blue} {pos}/{len} rows  {msg}  eta {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                while !flag.load(Ordering::Relaxed) {
                    bar.set_position(skipped + job.rows_done.load(Ordering::Relaxed));
                    bar.set_message(format!(
                        "{:.1} tok/s  {} errors",
                        rate(&engine),
                        job.rows_error.load(Ordering::Relaxed)
                    ));
                    std::thread::sleep(Duration::from_millis(200));
                }
                bar.set_position(skipped + job.rows_done.load(Ordering::Relaxed));
                bar.finish_and_clear();
            } else {
                let mut last = Instant::now();
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    if last.elapsed() >= PLAIN_INTERVAL {
                        last = Instant::now();
                        eprintln!(
                            "progress: {}/{} rows, {} errors, {:.1} output tok/s, {:.0}s elapsed",
                            skipped + job.rows_done.load(Ordering::Relaxed),
                            total,
                            job.rows_error.load(Ordering::Relaxed),
                            rate(&engine),
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
            }
        });
        Progress {
            stop,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn engine_tokens(e: &EngineCounters) -> u64 {
    e.generated_tokens.load(Ordering::Relaxed)
}
