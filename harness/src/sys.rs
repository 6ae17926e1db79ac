// SPDX-License-Identifier: GPL-2.0
//! Small host helpers: lock files, pipes, CPU affinity, process groups.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Runs `f` while holding an exclusive `flock(2)` on `path` (created if needed).
pub fn with_lock<T>(path: &Path, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    use nix::fcntl::{Flock, FlockArg};
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
            eprintln!(
                "uml-harness: waiting for {what} (lock {} held by another uml-harness)",
                path.display()
            );
            Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, e)| e)
                .with_context(|| format!("locking {}", path.display()))?
        }
        Err((_, e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    };
    let r = f();
    drop(lock);
    r
}

/// A pipe whose both ends are close-on-exec: (read end, write end).
pub fn pipe() -> Result<(File, File)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2")?;
    Ok((File::from(r), File::from(w)))
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Result<Vec<usize>> {
    let set = nix::sched::sched_getaffinity(Pid::from_raw(0)).context("sched_getaffinity")?;
    Ok((0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect())
}

/// A CPU set holding only `cpu`, which must be one this process may use.
pub fn single_cpu_set(cpu: usize) -> Result<nix::sched::CpuSet> {
    let allowed = allowed_cpus()?;
    if !allowed.contains(&cpu) {
        bail!("cannot pin to CPU {cpu}: this process may only run on CPUs {allowed:?}");
    }
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).context("CpuSet::set")?;
    Ok(set)
}

/// Makes this process the reaper of its orphaned descendants, so that the host processes
/// of a killed UML kernel can be reaped here (see `kill_group`).
pub fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("uml-harness: warning: PR_SET_CHILD_SUBREAPER failed: {e}");
    }
}

/// Reaps (without blocking) every child in process group `pgid`; returns the status of
/// `main` if it was among them.
pub fn reap_group(pgid: Pid, main: Pid) -> Option<WaitStatus> {
    let mut main_status = None;
    loop {
        match waitpid(
            Pid::from_raw(-pgid.as_raw()),
            Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
        ) {
            Ok(WaitStatus::StillAlive) | Err(_) => return main_status,
            Ok(st) => {
                if st.pid() == Some(main) {
                    main_status = Some(st);
                }
            }
        }
    }
}

/// Kills process group `pgid` with SIGKILL and reaps its members until none is left (or
/// `timeout` passed). Returns the status of `main` if it was reaped here, and an error if
/// processes survive.
pub fn kill_group(pgid: Pid, main: Pid, timeout: Duration) -> Result<Option<WaitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut main_status = None;
    loop {
        match killpg(pgid, Signal::SIGKILL) {
            Err(Errno::ESRCH) => return Ok(main_status),
            Err(e) => return Err(e).with_context(|| format!("killpg({pgid}, SIGKILL)")),
            Ok(()) => {}
        }
        if let Some(st) = reap_group(pgid, main) {
            main_status = Some(st);
        }
        // Zombies that are not ours (if the subreaper could not be set) keep the group
        // alive until their reaper collects them.
        if killpg(pgid, None) == Err(Errno::ESRCH) {
            return Ok(main_status);
        }
        if Instant::now() >= deadline {
            bail!(
                "processes of group {pgid} are still alive {}s after SIGKILL (see `ps -g {pgid}`)",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    #[test]
    fn kill_group_kills_and_reaps_grandchildren() {
        become_subreaper();
        // sh forks a background sleep (a grandchild) then sleeps itself.
        #[allow(clippy::zombie_processes)] // reaped by kill_group
        let child = Command::new("sh")
            .args(["-c", "sleep 100 & sleep 100"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        std::thread::sleep(Duration::from_millis(100));
        let st = kill_group(pid, pid, Duration::from_secs(5)).unwrap();
        assert!(matches!(st, Some(WaitStatus::Signaled(p, Signal::SIGKILL, _)) if p == pid));
        assert_eq!(killpg(pid, None), Err(Errno::ESRCH));
    }

    #[test]
    fn cpus() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        single_cpu_set(cpus[0]).unwrap();
        assert!(single_cpu_set(100_000).is_err());
    }
}
