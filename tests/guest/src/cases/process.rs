// SPDX-License-Identifier: GPL-2.0
//! Processes: the skas mode line, fork and wait, execve, and a fork+execve
//! stress run.

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use super::Config;
use crate::ktap::{CaseResult, Context};
use crate::sys::{self, Exec, Exit};
use crate::{check, diag, fail, skip};

/// How long any single child of these cases may take before it is killed.
const CHILD_LIMIT: Duration = Duration::from_secs(60);

/// /proc/cpuinfo of a UML kernel carries `mode\t\t: skas`
/// (arch/um/kernel/um_arch.c, show_cpuinfo()).
pub fn skas_mode(cfg: &Config) -> CaseResult {
    let info = std::fs::read_to_string("/proc/cpuinfo").ctx("read /proc/cpuinfo")?;
    if !cfg.in_uml {
        skip!("not running under UML (no 'vendor_id : User Mode Linux' in /proc/cpuinfo)");
    }
    let mode: Vec<&str> = info
        .lines()
        .filter(|l| l.split_once(':').is_some_and(|(k, _)| k.trim() == "mode"))
        .collect();
    check!(!mode.is_empty(), "no 'mode' line in /proc/cpuinfo");
    for l in &mode {
        let v = l.split_once(':').map(|(_, v)| v.trim()).unwrap_or("");
        check!(v == "skas", "unexpected mode line {l:?}");
        check!(
            *l == "mode\t\t: skas",
            "mode line {l:?} is not in the format of um_arch.c ('mode\\t\\t: skas')"
        );
    }
    Ok(())
}

/// Forks children with distinct exit codes, a child killed by a signal and a
/// child that itself forks, and checks that every status arrives exactly once.
pub fn fork_wait(_cfg: &Config) -> CaseResult {
    // Children reaped by pid, in reverse order of creation.
    let mut kids = Vec::new();
    for i in 0..32 {
        let code = (i * 7 + 3) & 0xff;
        let pid = sys::fork_child(move || code).ctx("fork")?;
        kids.push((pid, code));
    }
    for &(pid, code) in kids.iter().rev() {
        let x = sys::wait_timeout(pid, CHILD_LIMIT).ctx("waitpid")?;
        check!(
            x == Exit::Code(code),
            "child {pid}: {x}, expected exit code {code}"
        );
    }

    // Children reaped with waitpid(-1): each pid exactly once.
    let mut expect = BTreeSet::new();
    for i in 0..16 {
        let pid = sys::fork_child(move || 100 + i).ctx("fork")?;
        expect.insert((pid, 100 + i));
    }
    let mut got = BTreeSet::new();
    for _ in 0..16 {
        let (pid, x) = sys::wait_any().ctx("waitpid(-1)")?;
        let Exit::Code(c) = x else {
            fail!("child {pid}: {x}");
        };
        check!(got.insert((pid, c)), "child {pid} reported twice");
    }
    check!(got == expect, "waitpid(-1) statuses {got:?} != {expect:?}");

    // A child killed by a signal.
    let pid = sys::fork_child(|| {
        // SAFETY: raise(3) on ourselves; SIGKILL cannot be caught.
        unsafe { libc::raise(libc::SIGKILL) };
        0
    })
    .ctx("fork")?;
    let x = sys::wait_timeout(pid, CHILD_LIMIT).ctx("waitpid")?;
    check!(x == Exit::Signal(libc::SIGKILL), "self-killed child: {x}");

    // A child that forks a grandchild and passes its status on.
    let pid = sys::fork_child(|| {
        let Ok(g) = sys::fork_child(|| 41) else {
            return 2;
        };
        match sys::wait(g) {
            Ok(Exit::Code(c)) => c + 1,
            _ => 3,
        }
    })
    .ctx("fork")?;
    let x = sys::wait_timeout(pid, CHILD_LIMIT).ctx("waitpid")?;
    check!(
        x == Exit::Code(42),
        "grandchild relay: {x}, expected exit code 42"
    );

    // Nothing left to wait for.
    // SAFETY: waitpid with a null status pointer is allowed.
    let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
    let e = std::io::Error::last_os_error();
    check!(
        r == -1 && e.raw_os_error() == Some(libc::ECHILD),
        "waitpid(-1) after reaping all: {r} ({e}), expected ECHILD"
    );
    Ok(())
}

/// Runs `exec` in a child with stdout on a pipe; returns the status and the
/// output.
pub(super) fn run_capture(exec: &Exec) -> Result<(Exit, Vec<u8>), crate::ktap::Verdict> {
    let (r, w) = sys::pipe().ctx("pipe")?;
    let wfd = w.as_raw_fd();
    let pid = sys::fork_child(|| {
        // SAFETY: dup2 onto stdout in the child; the pipe end is open.
        if unsafe { libc::dup2(wfd, 1) } == -1 {
            return 126;
        }
        exec.exec();
        127
    })
    .ctx("fork")?;
    drop(w);
    let out = sys::read_to_end_fd(&r).ctx("read child output")?;
    let x = sys::wait_timeout(pid, CHILD_LIMIT).ctx("waitpid")?;
    Ok((x, out))
}

/// fork + execve of static binaries: this program and busybox.
pub fn exec(cfg: &Config) -> CaseResult {
    let me = &cfg.self_exe;
    diag!("self: {}", me.display());

    let t = Exec::new(me, &["uml-guest", "true"], &[]).ctx("prepare exec")?;
    let x = sys::wait_timeout(t.spawn().ctx("fork")?, CHILD_LIMIT).ctx("waitpid")?;
    check!(x == Exit::Code(0), "uml-guest true: {x}");

    let t = Exec::new(me, &["uml-guest", "exit", "42"], &[]).ctx("prepare exec")?;
    let x = sys::wait_timeout(t.spawn().ctx("fork")?, CHILD_LIMIT).ctx("waitpid")?;
    check!(x == Exit::Code(42), "uml-guest exit 42: {x}");

    // argv and envp arrive intact.
    let args = ["uml-guest", "exec-probe", "one", "two words", ""];
    let t = Exec::new(me, &args, &["UML_GUEST_PROBE=x=y z"]).ctx("prepare exec")?;
    let (x, out) = run_capture(&t)?;
    check!(x == Exit::Code(0), "exec-probe: {x}");
    let expect = b"one\0two words\0\0env=x=y z\0";
    check!(
        out == expect,
        "exec-probe printed {:?}, expected {:?}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(expect)
    );

    // A missing file fails in the child with ENOENT.
    let t = Exec::new(Path::new("/nonexistent/uml-guest"), &["x"], &[]).ctx("prepare exec")?;
    let pid = sys::fork_child(|| t.exec()).ctx("fork")?;
    let x = sys::wait_timeout(pid, CHILD_LIMIT).ctx("waitpid")?;
    check!(
        x == Exit::Code(libc::ENOENT),
        "execve of a missing file: {x}, expected ENOENT"
    );

    let bb = Path::new("/bin/busybox");
    if bb.exists() {
        let t = Exec::new(bb, &["busybox", "true"], &[]).ctx("prepare exec")?;
        let x = sys::wait_timeout(t.spawn().ctx("fork")?, CHILD_LIMIT).ctx("waitpid")?;
        check!(x == Exit::Code(0), "busybox true: {x}");
        let t = Exec::new(bb, &["busybox", "echo", "hello", "uml"], &[]).ctx("prepare exec")?;
        let (x, out) = run_capture(&t)?;
        check!(x == Exit::Code(0), "busybox echo: {x}");
        check!(
            out == b"hello uml\n",
            "busybox echo printed {:?}",
            String::from_utf8_lossy(&out)
        );
        let t = Exec::new(bb, &["busybox", "sh", "-c", "exit 7"], &[]).ctx("prepare exec")?;
        let x = sys::wait_timeout(t.spawn().ctx("fork")?, CHILD_LIMIT).ctx("waitpid")?;
        check!(x == Exit::Code(7), "busybox sh -c 'exit 7': {x}");
    } else if cfg.in_uml {
        fail!("/bin/busybox is missing from the guest");
    } else {
        diag!("/bin/busybox not found on this host; busybox part skipped");
    }
    Ok(())
}

/// At least 2,000 fork+execve of a static binary within a time limit.
pub fn fork_exec_stress(cfg: &Config) -> CaseResult {
    let t = Exec::new(&cfg.self_exe, &["uml-guest", "true"], &[]).ctx("prepare exec")?;
    let n = cfg.stress_iters;
    let start = Instant::now();
    let deadline = start + cfg.stress_timeout;
    let mut failures = 0u32;
    let mut first_failure = None;
    for i in 0..n {
        let x = t
            .spawn()
            .and_then(|pid| sys::wait_timeout(pid, CHILD_LIMIT));
        match x {
            Ok(Exit::Code(0)) => {}
            other => {
                failures += 1;
                if first_failure.is_none() {
                    first_failure = Some(format!("iteration {i}: {other:?}"));
                }
            }
        }
        if Instant::now() > deadline {
            fail!(
                "only {} of {n} fork+execve done within {:?}",
                i + 1,
                cfg.stress_timeout
            );
        }
    }
    let el = start.elapsed();
    diag!(
        "{n} fork+execve in {:.2} s ({:.0} us each)",
        el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / f64::from(n.max(1))
    );
    check!(
        failures == 0,
        "{failures} of {n} fork+execve failed; first: {}",
        first_failure.unwrap_or_default()
    );
    Ok(())
}
