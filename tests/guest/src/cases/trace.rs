// SPDX-License-Identifier: GPL-2.0
//! A small tracer of our own: the child asks to be traced and stops; the
//! parent reads and writes the child's memory (PTRACE_PEEKDATA/POKEDATA),
//! follows it from syscall stop to syscall stop (PTRACE_SYSCALL), changes
//! the result of one getppid at its exit stop (PTRACE_SETREGS), and sees
//! the child's execve as a PTRACE_EVENT_EXEC stop.
//!
//! Under UML this is the guest kernel's own ptrace, nested inside the host
//! ptrace that UML itself uses to run the guest's processes.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use super::Config;
use crate::ktap::{CaseResult, Context, Verdict};
#[cfg(not(target_arch = "x86_64"))]
use crate::skip;
use crate::sys::{self, Exec, Reaper};
use crate::{check, diag, fail};

/// The child's copy of this is read and rewritten by the parent.
static POKE_TARGET: AtomicU64 = AtomicU64::new(PARENT_VALUE);
const PARENT_VALUE: u64 = 0x0123_4567_89AB_CDEF;
const CHILD_VALUE: u64 = 0x1111_2222_3333_4444;
const POKED_VALUE: u64 = 0x5EED_5EED_C0DE_CAFE;
/// What the first getppid of the child returns once the tracer is done with it.
const MAGIC_PPID: i64 = 0x5EED_1234;
/// The exec'd program's exit code.
const EXEC_CODE: i32 = 51;
const TRACE_LIMIT: Duration = Duration::from_secs(30);

/// How the child failed, by exit code.
fn child_failure(code: i32) -> &'static str {
    match code {
        20 => "PTRACE_TRACEME failed",
        21 => "kill(self, SIGSTOP) failed",
        22 => "the first getppid did not return the tracer's value",
        23 => "the second getppid did not return the real parent",
        24 => "the poked variable does not hold the tracer's value",
        25 => "execve failed",
        _ => "unknown",
    }
}

/// A stop or end of the traced child, from waitpid(2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Exited(i32),
    Killed(i32),
    /// WSTOPSIG and the ptrace event (status >> 16).
    Stopped(i32, i32),
}

fn wait_event(pid: libc::pid_t, deadline: Instant) -> Result<Event, Verdict> {
    loop {
        let mut st = 0;
        // SAFETY: `st` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::__WALL | libc::WNOHANG) };
        if r == -1 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            fail!("waitpid: {e}");
        }
        if r == pid {
            if libc::WIFEXITED(st) {
                return Ok(Event::Exited(libc::WEXITSTATUS(st)));
            }
            if libc::WIFSIGNALED(st) {
                return Ok(Event::Killed(libc::WTERMSIG(st)));
            }
            if libc::WIFSTOPPED(st) {
                return Ok(Event::Stopped(libc::WSTOPSIG(st), st >> 16));
            }
        }
        if Instant::now() > deadline {
            fail!("the traced child did not stop or exit within {TRACE_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// ptrace(2) with the errno of a failure.
fn pt(
    req: libc::c_uint,
    pid: libc::pid_t,
    addr: usize,
    data: usize,
) -> Result<libc::c_long, Verdict> {
    // SAFETY: every request used here takes plain numbers or a pointer to a live local of the right type (GETREGS/SETREGS, GETEVENTMSG).
    let r = unsafe {
        libc::ptrace(
            req,
            pid,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    };
    if r == -1 {
        let e = std::io::Error::last_os_error();
        // PEEKDATA may return -1 as data; errno tells.
        if e.raw_os_error().unwrap_or(0) != 0 {
            fail!("ptrace request {req:#x} on {pid}: {e}");
        }
    }
    Ok(r)
}

fn peek(pid: libc::pid_t, addr: usize) -> Result<u64, Verdict> {
    // SAFETY: errno is thread-local; cleared so that a -1 word is recognised.
    unsafe { *libc::__errno_location() = 0 };
    Ok(pt(libc::PTRACE_PEEKDATA, pid, addr, 0)? as u64)
}

#[cfg(target_arch = "x86_64")]
fn get_regs(pid: libc::pid_t) -> Result<libc::user_regs_struct, Verdict> {
    // SAFETY: plain data, filled in by PTRACE_GETREGS.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    pt(libc::PTRACE_GETREGS, pid, 0, &mut regs as *mut _ as usize)?;
    Ok(regs)
}

/// The traced child.
fn child(exec: &Exec) -> i32 {
    POKE_TARGET.store(CHILD_VALUE, SeqCst);
    // SAFETY: getpid/getppid have no preconditions (called before tracing).
    let (me, ppid) = unsafe { (libc::getpid(), libc::getppid()) };
    // SAFETY: PTRACE_TRACEME takes no pointers.
    if unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) } != 0 {
        return 20;
    }
    // kill(2) directly, so that the stop comes at the return of one known
    // syscall and the next one is the getppid below.
    // SAFETY: a signal to ourselves.
    if unsafe { libc::syscall(libc::SYS_kill, me, libc::SIGSTOP) } != 0 {
        return 21;
    }
    // SAFETY: getppid has no arguments.
    let first = unsafe { libc::syscall(libc::SYS_getppid) };
    if first != MAGIC_PPID {
        return 22;
    }
    // SAFETY: as above.
    let second = unsafe { libc::syscall(libc::SYS_getppid) };
    if second != i64::from(ppid) {
        return 23;
    }
    if POKE_TARGET.load(SeqCst) != POKED_VALUE {
        return 24;
    }
    exec.exec();
    25
}

#[cfg(target_arch = "x86_64")]
fn trace(cfg: &Config) -> CaseResult {
    let exec = Exec::new(
        &cfg.self_exe,
        &["uml-guest", "exit", &EXEC_CODE.to_string()],
        &[],
    )
    .ctx("prepare exec")?;
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let deadline = Instant::now() + TRACE_LIMIT;
    let mut reaper = Reaper::new();
    let pid = sys::fork_child(|| child(&exec)).ctx("fork")?;
    reaper.add(pid);

    let ev = wait_event(pid, deadline)?;
    check!(
        ev == Event::Stopped(libc::SIGSTOP, 0),
        "first stop of the tracee: {ev:?}, expected a SIGSTOP stop"
    );
    pt(
        libc::PTRACE_SETOPTIONS,
        pid,
        0,
        (libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_TRACEEXEC | libc::PTRACE_O_EXITKILL) as usize,
    )?;

    // Memory of the child, at the address of the same static in the parent.
    let addr = &POKE_TARGET as *const AtomicU64 as usize;
    let v = peek(pid, addr)?;
    check!(
        v == CHILD_VALUE,
        "PTRACE_PEEKDATA read {v:#x}, expected the child's {CHILD_VALUE:#x}"
    );
    pt(libc::PTRACE_POKEDATA, pid, addr, POKED_VALUE as usize)?;
    let v = peek(pid, addr)?;
    check!(
        v == POKED_VALUE,
        "PTRACE_PEEKDATA after POKEDATA read {v:#x}, expected {POKED_VALUE:#x}"
    );
    let mine = POKE_TARGET.load(SeqCst);
    check!(
        mine == PARENT_VALUE,
        "POKEDATA into the child changed the tracer's own copy to {mine:#x}"
    );

    // Syscall stops, alternating entry and exit, until the exec event.
    let mut entries: Vec<u64> = Vec::new();
    let mut in_syscall = false;
    let mut getppid_exits = 0;
    let mut exec_seen = false;
    let mut resume = libc::PTRACE_SYSCALL;
    let mut sig = 0usize;
    let status = loop {
        pt(resume, pid, 0, sig)?;
        sig = 0;
        match wait_event(pid, deadline)? {
            Event::Exited(c) => break c,
            Event::Killed(s) => fail!("the tracee was killed by signal {s}"),
            Event::Stopped(s, 0) if s == libc::SIGTRAP | 0x80 => {
                let mut regs = get_regs(pid)?;
                in_syscall = !in_syscall;
                if in_syscall {
                    entries.push(regs.orig_rax);
                    check!(entries.len() < 64, "too many syscalls: {entries:?}");
                } else if regs.orig_rax == libc::SYS_getppid as u64 {
                    getppid_exits += 1;
                    if getppid_exits == 1 {
                        check!(
                            regs.rax == me as u64,
                            "getppid at its exit stop returns {}, expected the tracer's pid {me}",
                            regs.rax as i64
                        );
                        regs.rax = MAGIC_PPID as u64;
                        pt(libc::PTRACE_SETREGS, pid, 0, &regs as *const _ as usize)?;
                    }
                }
            }
            Event::Stopped(libc::SIGTRAP, libc::PTRACE_EVENT_EXEC) => {
                exec_seen = true;
                let mut old_tid: libc::c_ulong = 0;
                pt(
                    libc::PTRACE_GETEVENTMSG,
                    pid,
                    0,
                    &mut old_tid as *mut _ as usize,
                )?;
                check!(
                    old_tid == pid as libc::c_ulong,
                    "PTRACE_GETEVENTMSG at the exec event: {old_tid}, expected {pid}"
                );
                // Let the new program run to its end untraced by syscall.
                resume = libc::PTRACE_CONT;
            }
            Event::Stopped(s, 0) => sig = s as usize,
            Event::Stopped(s, e) => fail!("unexpected ptrace event {e} (signal {s})"),
        }
    };
    reaper.done(pid);
    let names = entries.clone();
    diag!("syscalls entered before the exec event: {names:?}");
    if status != EXEC_CODE {
        fail!("the tracee exited with {status}: {}", child_failure(status));
    }
    check!(
        exec_seen,
        "no PTRACE_EVENT_EXEC stop although the child exec'd"
    );
    let want = [
        libc::SYS_getppid as u64,
        libc::SYS_getppid as u64,
        libc::SYS_execve as u64,
    ];
    check!(
        entries == want,
        "syscall entry stops {entries:?}, expected getppid, getppid, execve {want:?}"
    );
    check!(
        getppid_exits == 2,
        "{getppid_exits} getppid exit stops, expected 2"
    );
    Ok(())
}

/// Traces a child of our own through syscalls, memory and exec.
pub fn ptrace(cfg: &Config) -> CaseResult {
    #[cfg(target_arch = "x86_64")]
    {
        trace(cfg)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = cfg;
        skip!("the register layout is only known for x86_64")
    }
}
