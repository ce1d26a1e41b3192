//! Work stealing over units: a global injector the producer fills, one FIFO
//! deque per engine, and [`UnitQueue::next`], which takes from the engine's
//! own deque, then a batch from the injector, then one unit from another
//! engine's deque.
//!
//! Invariants: every pushed unit is handed out exactly once (or dropped
//! unseen after [`UnitQueue::abort`]); a unit is never split, it is the
//! thing handed out; units leave the injector in push order and an
//! engine's own deque in the order they entered it. The input ends when the
//! [`Producer`] is dropped, also when the producing stage fails or panics,
//! so [`UnitQueue::next`] never waits for input that cannot come.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crossbeam::deque::{Injector, Steal, Stealer, Worker};

/// What the producer has done so far.
#[derive(Debug, Default)]
struct State {
    /// Bumped by every push and by the close: a searcher that saw the
    /// same value before finding nothing has missed nothing.
    events: u64,
    closed: bool,
    aborted: bool,
}

/// The units shared by the engines' feeders.
pub(crate) struct UnitQueue<T> {
    injector: Injector<T>,
    stealers: Vec<Stealer<T>>,
    state: Mutex<State>,
    wake: Condvar,
}

/// One engine's end: its own deque, which only it pushes to.
pub(crate) struct Local<T> {
    index: usize,
    deque: Worker<T>,
}

/// The producing stage's handle; dropping it ends the input.
pub(crate) struct Producer<'q, T> {
    queue: &'q UnitQueue<T>,
}

impl<T> UnitQueue<T> {
    /// A queue for `engines` engines, and each engine's [`Local`] end.
    pub(crate) fn new(engines: usize) -> (UnitQueue<T>, Vec<Local<T>>) {
        let locals: Vec<Local<T>> = (0..engines)
            .map(|index| Local {
                index,
                deque: Worker::new_fifo(),
            })
            .collect();
        let queue = UnitQueue {
            injector: Injector::new(),
            stealers: locals.iter().map(|l| l.deque.stealer()).collect(),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        };
        (queue, locals)
    }

    /// The one producer of this queue.
    pub(crate) fn producer(&self) -> Producer<'_, T> {
        Producer { queue: self }
    }

    /// Stops handing out units: every waiting and later [`UnitQueue::next`]
    /// returns `None`, and pushes are dropped. For an engine that failed, so
    /// the others stop taking new work too.
    pub(crate) fn abort(&self) {
        self.state().aborted = true;
        self.wake.notify_all();
    }

    /// The next unit for `local`'s engine: blocks until one is available,
    /// and returns `None` once the input has ended and nothing is left to
    /// take (units already in another engine's deque are that engine's to
    /// run), or once the queue is aborted.
    pub(crate) fn next(&self, local: &Local<T>) -> Option<T> {
        loop {
            let seen = {
                let s = self.state();
                if s.aborted {
                    return None;
                }
                s.events
            };
            if let Some(unit) = self.find(local) {
                return Some(unit);
            }
            let mut s = self.state();
            while s.events == seen {
                if s.aborted || s.closed {
                    return None;
                }
                s = self.wake.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
        }
    }

    /// Own deque first (keeps an engine on the units it already took), then
    /// a batch from the injector (which also refills the own deque, where
    /// idle engines can steal from), then one unit from another engine.
    fn find(&self, local: &Local<T>) -> Option<T> {
        if let Some(unit) = local.deque.pop() {
            return Some(unit);
        }
        loop {
            let attempt = self.injector.steal_batch_and_pop(&local.deque).or_else(|| {
                self.stealers
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != local.index)
                    .map(|(_, s)| s.steal())
                    .collect::<Steal<T>>()
            });
            match attempt {
                Steal::Success(unit) => return Some(unit),
                Steal::Empty => return None,
                // Another thread moved units under us: look again.
                Steal::Retry => continue,
            }
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is plain flags and a counter: valid whoever panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Producer<'_, T> {
    /// Adds a unit at the end of the input; `false` when the queue was
    /// aborted, so the producer can stop early.
    pub(crate) fn push(&self, unit: T) -> bool {
        let mut s = self.queue.state();
        if s.aborted {
            return false;
        }
        self.queue.injector.push(unit);
        s.events += 1;
        drop(s);
        self.queue.wake.notify_all();
        true
    }
}

impl<T> Drop for Producer<'_, T> {
    fn drop(&mut self) {
        let mut s = self.queue.state();
        s.closed = true;
        s.events += 1;
        drop(s);
        self.queue.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_engine_gets_every_unit_in_push_order_then_none() {
        let (q, locals) = UnitQueue::new(1);
        let p = q.producer();
        for u in 0..100 {
            assert!(p.push(u));
        }
        drop(p);
        let got: Vec<i32> = std::iter::from_fn(|| q.next(&locals[0])).collect();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(q.next(&locals[0]), None, "ended input stays ended");
    }

    #[test]
    fn an_idle_engine_steals_from_a_busy_engines_deque() {
        let (q, locals) = UnitQueue::new(2);
        let p = q.producer();
        for u in 0..16 {
            p.push(u);
        }
        drop(p);
        // Engine 0 takes a unit and, with it, a batch into its own deque;
        // then it is busy (never asks again).
        assert_eq!(q.next(&locals[0]), Some(0));
        let held = locals[0].deque.len();
        assert!(held > 0, "a batch moved into engine 0's deque");
        // Engine 1 drains the injector, then steals what engine 0 holds.
        let got: Vec<i32> = std::iter::from_fn(|| q.next(&locals[1])).collect();
        assert_eq!(got.len(), 15, "everything but engine 0's unit: {got:?}");
        assert!(locals[0].deque.is_empty(), "engine 0's deque was stolen");
        let all: BTreeSet<i32> = got.into_iter().chain([0]).collect();
        assert_eq!(all, (0..16).collect());
    }

    #[test]
    fn waiting_engines_wake_for_units_and_stop_when_the_input_ends() {
        let (q, locals) = UnitQueue::new(3);
        let got = std::thread::scope(|s| {
            let takers: Vec<_> = locals
                .into_iter()
                .map(|l| {
                    let q = &q;
                    s.spawn(move || std::iter::from_fn(|| q.next(&l)).collect::<Vec<u32>>())
                })
                .collect();
            let p = q.producer();
            for u in 0..300 {
                p.push(u);
                if u % 50 == 0 {
                    // Let the engines run dry and wait between bursts.
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            drop(p);
            takers
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Vec<_>>()
        });
        let mut all: Vec<u32> = got.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..300).collect::<Vec<_>>(), "each unit exactly once");
    }

    #[test]
    fn a_dropped_producer_ends_the_input_even_on_failure() {
        let (q, mut locals) = UnitQueue::<u32>::new(2);
        let last = locals.pop().unwrap();
        std::thread::scope(|s| {
            let q = &q;
            let waiter = s.spawn(move || q.next(&last));
            let failed = s.spawn(|| {
                let _p = q.producer();
                panic!("the producing stage fails");
            });
            assert!(failed.join().is_err());
            assert_eq!(waiter.join().unwrap(), None);
        });
    }

    #[test]
    fn abort_stops_handing_out_and_refuses_pushes() {
        let (q, mut locals) = UnitQueue::new(2);
        let last = locals.pop().unwrap();
        let p = q.producer();
        p.push(1);
        std::thread::scope(|s| {
            let q = &q;
            let waiter = s.spawn(move || {
                let first = q.next(&last);
                (first, q.next(&last))
            });
            std::thread::sleep(Duration::from_millis(20));
            q.abort();
            assert_eq!(waiter.join().unwrap(), (Some(1), None));
        });
        assert!(!p.push(2), "pushes after an abort are refused");
        assert_eq!(q.next(&locals[0]), None);
    }
}
