// SPDX-License-Identifier: GPL-2.0
//! Threads: shared atomics and a mutex under contention, a condition variable
//! ping-pong, distinct thread ids, join.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};

use super::Config;
use crate::check;
use crate::ktap::{CaseResult, Context};

const THREADS: usize = 8;
const ATOMIC_ITERS: u64 = 50_000;
const MUTEX_ITERS: u64 = 10_000;
const PINGPONG: u64 = 1_000;

fn gettid() -> libc::pid_t {
    // SAFETY: gettid(2) has no preconditions.
    unsafe { libc::gettid() }
}

pub fn threads(_cfg: &Config) -> CaseResult {
    let atomic = Arc::new(AtomicU64::new(0));
    let locked = Arc::new(Mutex::new(0u64));
    let start = Arc::new(Barrier::new(THREADS));
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let (atomic, locked, start) = (atomic.clone(), locked.clone(), start.clone());
        let h = std::thread::Builder::new()
            .name(format!("worker{t}"))
            .spawn(move || {
                start.wait();
                for i in 0..ATOMIC_ITERS {
                    atomic.fetch_add(1, Ordering::Relaxed);
                    if i < MUTEX_ITERS {
                        // A poisoned lock still holds a valid count.
                        let mut g = locked.lock().unwrap_or_else(|p| p.into_inner());
                        *g += 1;
                    }
                }
                gettid()
            })
            .ctx("spawn thread")?;
        handles.push(h);
    }
    let mut tids = BTreeSet::new();
    for h in handles {
        match h.join() {
            Ok(tid) => {
                tids.insert(tid);
            }
            Err(_) => crate::fail!("a worker thread panicked"),
        }
    }
    let a = atomic.load(Ordering::SeqCst);
    let m = *locked.lock().unwrap_or_else(|p| p.into_inner());
    check!(
        a == THREADS as u64 * ATOMIC_ITERS,
        "atomic total {a}, expected {}",
        THREADS as u64 * ATOMIC_ITERS
    );
    check!(
        m == THREADS as u64 * MUTEX_ITERS,
        "mutex total {m}, expected {}",
        THREADS as u64 * MUTEX_ITERS
    );
    check!(
        tids.len() == THREADS,
        "{} distinct thread ids for {THREADS} threads",
        tids.len()
    );
    check!(
        !tids.contains(&gettid()),
        "a worker had the main thread's id"
    );

    // Two threads hand a token back and forth through a condition variable.
    let state = Arc::new((Mutex::new(0u64), Condvar::new()));
    let s2 = state.clone();
    let other = std::thread::spawn(move || {
        let (m, cv) = &*s2;
        let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
        while *g < 2 * PINGPONG {
            if *g % 2 == 1 {
                *g += 1;
                cv.notify_one();
            } else {
                g = cv.wait(g).unwrap_or_else(|p| p.into_inner());
            }
        }
    });
    {
        let (m, cv) = &*state;
        let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
        while *g < 2 * PINGPONG {
            if *g % 2 == 0 {
                *g += 1;
                cv.notify_one();
            } else {
                g = cv.wait(g).unwrap_or_else(|p| p.into_inner());
            }
        }
    }
    check!(other.join().is_ok(), "ping-pong thread panicked");
    let n = *state.0.lock().unwrap_or_else(|p| p.into_inner());
    check!(
        n == 2 * PINGPONG,
        "ping-pong reached {n}, expected {}",
        2 * PINGPONG
    );
    Ok(())
}
