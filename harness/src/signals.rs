// SPDX-License-Identifier: GPL-2.0
//! SIGINT/SIGTERM/SIGHUP: kill the running guests, let the main thread clean up, exit.
//!
//! A signal thread (signal-hook) records the signal and SIGKILLs the process group of
//! every registered guest at once, so that a Ctrl-C never leaves UML processes behind.
//! The main thread notices ([`interrupted`]) through the dying console and unwinds
//! normally; `Drop for Guest` reaps and removes the umid directories. Should the main
//! thread not finish within a few seconds (it may be blocked elsewhere), the signal thread
//! removes the registered directories itself and exits.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static INTERRUPTED: AtomicI32 = AtomicI32::new(0);
static RUNNING: Mutex<Vec<(i32, PathBuf)>> = Mutex::new(Vec::new());

/// Installs the handler (once, at start of `main`).
pub fn install() -> Result<()> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("uml-harness-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                on_signal(sig);
            }
        })
        .context("spawning the signal thread")?;
    Ok(())
}

fn on_signal(sig: i32) {
    let first = INTERRUPTED.swap(sig, Ordering::SeqCst) == 0;
    let guests = kill_all();
    if !first || guests == 0 {
        // Nothing of ours to clean up (or a second Ctrl-C): leave now.
        remove_dirs();
        std::process::exit(128 + sig);
    }
    eprintln!("\numl-harness: interrupted (signal {sig}): stopping {guests} guest(s)");
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(10));
        eprintln!("uml-harness: cleanup did not finish in 10s; exiting");
        kill_all();
        remove_dirs();
        std::process::exit(128 + sig);
    });
}

fn kill_all() -> usize {
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    for (pgid, _) in running.iter() {
        let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
    }
    running.len()
}

fn remove_dirs() {
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    for (_, dir) in running.iter() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The signal that interrupted the harness, if any.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Starts a guest with `spawn` (which returns its process group and private directory)
/// and records it, holding the registry lock throughout so that a signal arriving
/// meanwhile waits for the record and then stops the new guest too.
pub fn spawn_registered(spawn: impl FnOnce() -> Result<(i32, PathBuf)>) -> Result<i32> {
    let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(sig) = interrupted() {
        anyhow::bail!("interrupted by signal {sig}");
    }
    let (pgid, dir) = spawn()?;
    running.push((pgid, dir));
    Ok(pgid)
}

/// Forgets a guest that has been cleaned up.
pub fn unregister(pgid: i32) {
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(p, _)| *p != pgid);
}
