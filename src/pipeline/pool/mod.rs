//! One engine per device, fed with units by work stealing.
//!
//! Each engine runs on its own thread with its own bounded request channel;
//! a feeder thread per engine takes units from the shared
//! [`UnitQueue`](steal::UnitQueue) (own deque, then the injector, then
//! other engines' deques) and forwards the unit's items, in order, into its
//! engine's channel. A unit is a whole prefix group (or one row that shares
//! no prefix block with a group), so a group's rows all run on one engine,
//! back to back, and its shared prompt KV is computed once. Every engine
//! writes to the one output channel.
//!
//! Invariants: every engine is built (on its own thread, since a backend
//! need not be `Send`) before any unit is handed out, one after another so
//! their start-up probes do not compete; if one cannot be built the pool
//! stops with that error and no engine has run anything. An engine that
//! fails aborts the queue, so the others take no new work. The input ends
//! when the producer is dropped; each engine then finishes what it holds.

pub(crate) mod steal;
#[cfg(test)]
mod tests;

use std::thread::{Scope, ScopedJoinHandle};

use crossbeam::channel::{Receiver, Sender, bounded};

use crate::backend::device::Device;
use crate::error::JobError;
use steal::{Local, Producer, UnitQueue};

/// Items that must run on one engine, in this order.
pub(crate) type Unit<T> = Vec<T>;

/// Items in run order as units: each run of consecutive items of one group
/// together, every item without a group alone. The planner's run order
/// keeps a group's rows consecutive, so a group becomes one unit.
pub(crate) fn units<T>(
    items: impl IntoIterator<Item = T>,
    group: impl Fn(&T) -> Option<u32>,
) -> Vec<Unit<T>> {
    let mut units: Vec<Unit<T>> = Vec::new();
    let mut open: Option<u32> = None;
    for item in items {
        let g = group(&item);
        match units.last_mut() {
            Some(unit) if g.is_some() && g == open => unit.push(item),
            _ => units.push(vec![item]),
        }
        open = g;
    }
    units
}

/// The running engines and their feeders.
pub(crate) struct Pool<'scope, 'env, T, R> {
    queue: &'env UnitQueue<Unit<T>>,
    engines: Vec<ScopedJoinHandle<'scope, Result<R, JobError>>>,
    /// Each returns how many items it forwarded.
    feeders: Vec<ScopedJoinHandle<'scope, u64>>,
}

/// How each engine is made and run; both run on the engine's own thread.
pub(crate) struct EngineFns<'env, B, X> {
    /// Builds the engine for a device.
    pub build: &'env B,
    /// Runs an engine until its input ends, sending results to the output.
    pub run: &'env X,
}

/// Starts one engine per device, each with a request channel of
/// `capacity` items and its own handle on `output`, and their feeders.
/// Returns the first build error, after every thread started has ended.
pub(crate) fn start<'scope, 'env, T, O, E, R, B, X>(
    s: &'scope Scope<'scope, 'env>,
    queue: &'env UnitQueue<Unit<T>>,
    locals: Vec<Local<Unit<T>>>,
    devices: &[Device],
    capacity: usize,
    output: Sender<O>,
    fns: EngineFns<'env, B, X>,
) -> Result<Pool<'scope, 'env, T, R>, JobError>
where
    T: Send + 'env,
    O: Send + 'env,
    R: Send + 'env,
    B: Fn(&Device) -> Result<E, JobError> + Sync,
    X: Fn(E, &Receiver<T>, &Sender<O>) -> Result<R, JobError> + Sync,
{
    let EngineFns { build, run } = fns;
    let mut engines = Vec::with_capacity(devices.len());
    let mut inputs = Vec::with_capacity(devices.len());
    for &device in devices {
        let (tx, rx) = bounded::<T>(capacity);
        let (ready_tx, ready_rx) = bounded::<()>(1);
        let output = output.clone();
        engines.push(s.spawn(move || {
            let engine = build(&device)?;
            // The receiver sees the sender dropped if this is not sent.
            let _ = ready_tx.send(());
            let result = run(engine, &rx, &output);
            if result.is_err() {
                queue.abort();
            }
            result
        }));
        inputs.push(tx);
        if ready_rx.recv().is_err() {
            // Closing the inputs ends the engines already built, idle.
            drop(inputs);
            let mut first = None;
            for handle in engines {
                let err = match handle.join() {
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => e,
                    Err(_) => JobError::Stage("engine"),
                };
                first.get_or_insert(err);
            }
            return Err(first.unwrap_or(JobError::Stage("engine")));
        }
    }
    let feeders = locals
        .into_iter()
        .zip(inputs)
        .map(|(local, tx)| s.spawn(move || feed(queue, &local, &tx)))
        .collect();
    Ok(Pool {
        queue,
        engines,
        feeders,
    })
}

/// Forwards `local`'s units into its engine's channel until the input
/// ends; returns how many items it forwarded.
fn feed<T>(queue: &UnitQueue<Unit<T>>, local: &Local<Unit<T>>, engine: &Sender<T>) -> u64 {
    let mut sent = 0;
    while let Some(unit) = queue.next(local) {
        for item in unit {
            if engine.send(item).is_err() {
                // The engine stopped: it reports why; stop the others.
                queue.abort();
                return sent;
            }
            sent += 1;
        }
    }
    sent
}

impl<'env, T, R> Pool<'_, 'env, T, R> {
    /// The handle the producing stage pushes units with; dropping it ends
    /// the input.
    pub(crate) fn producer(&self) -> Producer<'env, Unit<T>> {
        self.queue.producer()
    }

    /// Waits for every engine; each one's result and the items it was
    /// handed, in device order, or the first failure.
    pub(crate) fn join(self) -> Result<Vec<(R, u64)>, JobError> {
        let fed: Vec<Option<u64>> = self.feeders.into_iter().map(|f| f.join().ok()).collect();
        let results: Vec<Result<R, JobError>> = self
            .engines
            .into_iter()
            .map(|e| e.join().unwrap_or(Err(JobError::Stage("engine"))))
            .collect();
        let results: Vec<R> = results.into_iter().collect::<Result<_, _>>()?;
        let fed: Vec<u64> = fed
            .into_iter()
            .collect::<Option<_>>()
            .ok_or(JobError::Stage("feeder"))?;
        Ok(results.into_iter().zip(fed).collect())
    }
}
