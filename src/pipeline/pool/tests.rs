//! The pool with fake engines: units are never split, every item runs once,
//! a unit's items keep their order, an idle engine takes what a blocked one
//! does not hold, a failed build stops everything before any work, and a
//! failed engine stops the others from taking new units.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use crossbeam::channel::{Receiver, Sender, bounded, unbounded};

use super::steal::UnitQueue;
use super::{EngineFns, Unit, start, units as group_units};
use crate::backend::device::Device;
use crate::engine::runner::EngineError;
use crate::error::JobError;

/// An item: (unit, position in the unit).
type Item = (usize, usize);

fn gpus(n: usize) -> Vec<Device> {
    (0..n).map(Device::Cuda).collect()
}

fn index(d: &Device) -> usize {
    match d {
        Device::Cuda(i) => *i,
        Device::Cpu => 0,
    }
}

/// Units of 1 to 5 items each.
fn units(n: usize) -> Vec<Unit<Item>> {
    (0..n)
        .map(|u| (0..1 + (u * 7) % 5).map(|k| (u, k)).collect())
        .collect()
}

/// Runs `units` on `engines` engines where engine i waits `delay(i)` per
/// item; returns (engine, item) in the order each engine ran them.
fn run_pool(
    engines: usize,
    work: Vec<Unit<Item>>,
    delay: impl Fn(usize) -> Duration + Sync,
) -> Vec<(usize, Item)> {
    let (queue, locals) = UnitQueue::new(engines);
    let total: usize = work.iter().map(Vec::len).sum();
    let (out_tx, out_rx) = unbounded::<(usize, Item)>();
    let build = |d: &Device| -> Result<usize, JobError> { Ok(index(d)) };
    let run = |e: usize, rx: &Receiver<Item>, out: &Sender<(usize, Item)>| {
        for item in rx {
            std::thread::sleep(delay(e));
            out.send((e, item)).unwrap();
        }
        Ok(())
    };
    std::thread::scope(|s| {
        let fns = EngineFns {
            build: &build,
            run: &run,
        };
        let pool = start(s, &queue, locals, &gpus(engines), 2, out_tx, fns).unwrap();
        let producer = pool.producer();
        for u in work {
            assert!(producer.push(u));
        }
        drop(producer);
        let handed: u64 = pool.join().unwrap().iter().map(|(_, n)| n).sum();
        assert_eq!(
            handed as usize, total,
            "every item handed to an engine once"
        );
    });
    out_rx.into_iter().collect()
}

#[test]
fn consecutive_rows_of_a_group_make_one_unit_and_ungrouped_rows_their_own() {
    let rows = [
        (0, Some(7)),
        (1, Some(7)),
        (2, None),
        (3, None),
        (4, Some(2)),
        (5, Some(2)),
        (6, Some(2)),
        (7, Some(7)),
    ];
    let got: Vec<Vec<i32>> = group_units(rows, |r| r.1)
        .into_iter()
        .map(|u| u.into_iter().map(|r| r.0).collect())
        .collect();
    assert_eq!(got, [vec![0, 1], vec![2], vec![3], vec![4, 5, 6], vec![7]]);
    assert!(group_units(Vec::<(i32, Option<u32>)>::new(), |r| r.1).is_empty());
}

#[test]
fn units_are_never_split_and_every_item_runs_once_in_unit_order() {
    let work = units(60);
    let expected: BTreeSet<Item> = work.iter().flatten().copied().collect();
    let ran = run_pool(3, work, |e| Duration::from_micros(200 * (e as u64 + 1)));
    let items: Vec<Item> = ran.iter().map(|&(_, item)| item).collect();
    assert_eq!(items.len(), expected.len(), "no item twice");
    assert_eq!(items.iter().copied().collect::<BTreeSet<_>>(), expected);
    let mut engine_of: BTreeMap<usize, usize> = BTreeMap::new();
    let mut next_in_unit: BTreeMap<usize, usize> = BTreeMap::new();
    for &(engine, (unit, k)) in &ran {
        let owner = *engine_of.entry(unit).or_insert(engine);
        assert_eq!(owner, engine, "unit {unit} ran on two engines");
        let next = next_in_unit.entry(unit).or_insert(0);
        assert_eq!(k, *next, "unit {unit} out of order");
        *next += 1;
    }
    let used: BTreeSet<usize> = engine_of.values().copied().collect();
    assert!(used.len() > 1, "the work spread over the engines: {used:?}");
}

#[test]
fn an_idle_engine_takes_everything_a_blocked_engine_does_not_hold() {
    let (queue, locals) = UnitQueue::new(2);
    let (out_tx, out_rx) = unbounded::<(usize, Item)>();
    let (release_tx, release_rx) = bounded::<()>(1);
    let build = |d: &Device| -> Result<usize, JobError> { Ok(index(d)) };
    let run = |e: usize, rx: &Receiver<Item>, out: &Sender<(usize, Item)>| {
        let mut first = true;
        for item in rx {
            if e == 0 && std::mem::take(&mut first) {
                // Engine 0 is stuck on its first item until engine 1 is done.
                release_rx.recv().unwrap();
            }
            out.send((e, item)).unwrap();
        }
        if e == 1 {
            release_tx.send(()).unwrap();
        }
        Ok(())
    };
    let work: Vec<Unit<Item>> = (0..40).map(|u| vec![(u, 0)]).collect();
    std::thread::scope(|s| {
        let fns = EngineFns {
            build: &build,
            run: &run,
        };
        // Channel capacity 1: engine 0 holds at most one item running, one
        // queued and one unit in its feeder's hand.
        let pool = start(s, &queue, locals, &gpus(2), 1, out_tx, fns).unwrap();
        let producer = pool.producer();
        for u in work {
            producer.push(u);
        }
        drop(producer);
        pool.join().unwrap();
    });
    let ran: Vec<(usize, Item)> = out_rx.into_iter().collect();
    assert_eq!(ran.len(), 40);
    let on_blocked = ran.iter().filter(|(e, _)| *e == 0).count();
    assert!(on_blocked <= 3, "engine 0 ran {on_blocked} units");
}

#[test]
fn a_failed_build_stops_the_pool_before_any_work() {
    let (queue, locals) = UnitQueue::<Unit<Item>>::new(3);
    let (out_tx, _out_rx) = unbounded::<(usize, Item)>();
    let ran = Mutex::new(Vec::new());
    let build = |d: &Device| -> Result<usize, JobError> {
        match index(d) {
            1 => Err(JobError::Stage("test build")),
            2 => panic!("device 2 is never built"),
            i => Ok(i),
        }
    };
    let run = |e: usize, rx: &Receiver<Item>, _: &Sender<(usize, Item)>| {
        ran.lock().unwrap().extend(rx.iter().map(|item| (e, item)));
        Ok(())
    };
    let result = std::thread::scope(|s| {
        let fns = EngineFns {
            build: &build,
            run: &run,
        };
        start(s, &queue, locals, &gpus(3), 2, out_tx, fns).map(|_| ())
    });
    assert!(matches!(result, Err(JobError::Stage("test build"))));
    assert!(ran.lock().unwrap().is_empty());
}

#[test]
fn a_failed_engine_stops_the_others_taking_new_units() {
    let (queue, locals) = UnitQueue::new(2);
    let (out_tx, out_rx) = unbounded::<(usize, Item)>();
    let build = |d: &Device| -> Result<usize, JobError> { Ok(index(d)) };
    let run = |e: usize, rx: &Receiver<Item>, out: &Sender<(usize, Item)>| {
        for item in rx {
            if e == 0 {
                return Err(EngineError::OutputClosed.into());
            }
            std::thread::sleep(Duration::from_millis(2));
            out.send((e, item)).unwrap();
        }
        Ok(())
    };
    let result = std::thread::scope(|s| {
        let fns = EngineFns {
            build: &build,
            run: &run,
        };
        let pool = start(s, &queue, locals, &gpus(2), 1, out_tx, fns).unwrap();
        let producer = pool.producer();
        for u in units(500) {
            producer.push(u);
        }
        drop(producer);
        pool.join()
    });
    assert!(matches!(result, Err(JobError::Engine(_))), "{result:?}");
    let ran = out_rx.into_iter().count();
    assert!(ran < 500, "engine 1 stopped early, after {ran} items");
}
