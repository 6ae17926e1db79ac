// SPDX-License-Identifier: GPL-2.0
//! The sub-checks of `fp_state` (see the module documentation), each run
//! with xmm and, when the CPU has AVX, with ymm registers.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use libc::c_long;

use super::regs::{
    self, AvxOk, GARBAGE, HANDLED, ID_FAULTS, ID_FORK, ID_ITIMER, ID_PINGPONG, ID_PREEMPT,
    ID_PTRACE, ID_SIGNAL, ID_THREADS, MXCSR_DEFAULT, MXCSR_FTZ_DAZ, MXCSR_RZ, NAMES, Regs, Width,
};
use crate::cases::isolated::run_isolated;
use crate::ktap::CaseResult;
use crate::sys::{self, Exit, Mapping, Reaper};
use crate::{diag, fail};

/// The whole case, including a hung child or thread; it takes about a
/// second in a UML guest.
const LIMIT: Duration = Duration::from_secs(60);
const CHILD_LIMIT: Duration = Duration::from_secs(15);

const THREADS: usize = 3;
/// MXCSR of each thread of `threads` and `preempt`.
const THREAD_MXCSR: [u32; THREADS] = [MXCSR_FTZ_DAZ, MXCSR_DEFAULT, MXCSR_RZ];
const THREAD_ROUNDS: u32 = 300;
const PREEMPT_FOR: Duration = Duration::from_millis(250);
const PREEMPT_SPIN: u64 = 1 << 20;
const PREEMPT_MAX_ROUNDS: u32 = 100_000;
const FAULT_THREADS: usize = 2;
const FAULT_PAGES: usize = 128;
const SIGNAL_ROUNDS: u32 = 200;
const ITIMER_ROUNDS: u32 = 40;
const ITIMER_PERIOD: Duration = Duration::from_millis(1);
const ITIMER_SPIN: u64 = 1 << 30;
const FORK_ROUNDS: u32 = 24;
const PINGPONG_ROUNDS: u32 = 300;
const PTRACE_ROUNDS: u32 = 50;

/// getrusage(2) for the calling thread (not in the libc crate for glibc).
const RUSAGE_THREAD: libc::c_int = 1;

type Check = fn(Width) -> Result<String, String>;

const CHECKS: [(&str, Check); 8] = [
    (NAMES[ID_THREADS as usize], threads),
    (NAMES[ID_PREEMPT as usize], preempt),
    (NAMES[ID_FAULTS as usize], faults),
    (NAMES[ID_SIGNAL as usize], signal),
    (NAMES[ID_ITIMER as usize], itimer),
    (NAMES[ID_FORK as usize], fork),
    (NAMES[ID_PINGPONG as usize], pingpong),
    (NAMES[ID_PTRACE as usize], ptrace),
];

pub fn run() -> CaseResult {
    run_isolated("fp_state", LIMIT, |progress| {
        // In the guest there is one CPU; natively, one CPU makes the
        // threads take turns on it just the same.
        // SAFETY: sched_getcpu has no preconditions.
        let cpu = unsafe { libc::sched_getcpu() };
        if cpu >= 0 {
            let _ = sys::pin_to_cpu(cpu as usize);
        }
        let mut widths = vec![Width::Sse];
        match AvxOk::detect() {
            Some(a) => widths.push(Width::Avx(a)),
            None => diag!("fp_state: the CPU has no AVX: the ymm (AVX) sub-checks are skipped"),
        }
        let mut fails = Vec::new();
        for (i, (name, check)) in CHECKS.iter().enumerate() {
            let mut notes = Vec::new();
            for (j, &w) in widths.iter().enumerate() {
                progress.store((i * 2 + j) as u64, SeqCst);
                let t0 = Instant::now();
                match check(w) {
                    Ok(s) => notes.push(format!("{w} ok, {s}, {} ms", t0.elapsed().as_millis())),
                    Err(e) => {
                        notes.push(format!("{w} FAILED"));
                        fails.push(e);
                    }
                }
            }
            diag!("fp_state {name}: {}", notes.join("; "));
        }
        if !fails.is_empty() {
            fail!("{}", fails.join("; "));
        }
        Ok(())
    })
}

/// Where a value was checked, for messages: "threads (SSE): thread 0,
/// round 12, after getppid: ...".
struct At {
    what: &'static str,
    w: Width,
    who: String,
}

impl At {
    fn new(id: u8, w: Width, who: impl Into<String>) -> At {
        At {
            what: NAMES[id as usize],
            w,
            who: who.into(),
        }
    }

    fn err(&self, round: u32, step: &str, msg: &str) -> String {
        format!(
            "{} ({}): {}, round {round}, after {step}: {msg}",
            self.what, self.w, self.who
        )
    }

    /// Fails with the first register of `got` that is not as in `exp`.
    fn verify(&self, round: u32, step: &str, exp: &Regs, got: &Regs) -> Result<(), String> {
        match got.diff(exp, self.w) {
            None => Ok(()),
            Some(d) => Err(self.err(round, step, &d)),
        }
    }

    /// Fails unless a system call returned `want`.
    fn want(&self, round: u32, step: &str, ret: isize, want: isize) -> Result<(), String> {
        if ret == want {
            Ok(())
        } else {
            Err(self.err(round, step, &format!("returned {ret}, expected {want}")))
        }
    }

    /// A setup failure outside the measured blocks.
    fn setup(&self, what: &str, e: impl std::fmt::Display) -> String {
        format!("{} ({}): {}: {what}: {e}", self.what, self.w, self.who)
    }
}

/// The first failure of a loop that goes on after it (so that the other
/// threads or the other process are not left waiting), and how many more
/// there were.
#[derive(Default)]
struct Fails {
    first: Option<String>,
    more: u32,
}

impl Fails {
    fn note<T>(&mut self, r: Result<T, String>) {
        if let Err(e) = r {
            if self.first.is_none() {
                self.first = Some(e);
            } else {
                self.more += 1;
            }
        }
    }

    fn result(self) -> Result<(), String> {
        match self.first {
            None => Ok(()),
            Some(m) if self.more == 0 => Err(m),
            Some(m) => Err(format!("{m} (and {} more)", self.more)),
        }
    }
}

/// Makes system call `nr` inside a block loaded with `exp`; returns its
/// result, or the first register that did not survive it.
///
/// # Safety
///
/// The system call must be sound to make here, as with `libc::syscall`.
unsafe fn step(
    at: &At,
    round: u32,
    name: &str,
    exp: &Regs,
    nr: c_long,
    a: [usize; 4],
) -> Result<isize, String> {
    let mut got = Regs::zeroed();
    // SAFETY: the caller's promise.
    let ret = unsafe { regs::syscall(at.w, exp, &mut got, nr, a) };
    at.verify(round, name, exp, &got)?;
    Ok(ret)
}

/// Collects the results of scoped threads; a panic is a failure.
fn join_all<T>(
    w: Width,
    what: &str,
    hs: Vec<std::thread::ScopedJoinHandle<'_, Result<T, String>>>,
) -> Result<Vec<T>, String> {
    let mut ok = Vec::new();
    let mut errs = Vec::new();
    for h in hs {
        match h.join() {
            Ok(Ok(v)) => ok.push(v),
            Ok(Err(e)) => errs.push(e),
            Err(_) => errs.push(format!("{what} ({w}): a thread panicked")),
        }
    }
    if errs.is_empty() {
        Ok(ok)
    } else {
        Err(errs.join("; "))
    }
}

// --- threads of one process, switched by blocking system calls ------------

fn threads(w: Width) -> Result<String, String> {
    let at = At::new(ID_THREADS, w, "main thread");
    let mut ring = Vec::new();
    for _ in 0..THREADS {
        ring.push(sys::pipe().map_err(|e| at.setup("pipe", e))?);
    }
    // One token goes round the ring: thread t reads it from pipe t and
    // passes it on to pipe t+1, so the threads run in turn.
    sys::write_all_fd(ring[0].1.as_raw_fd(), b"t").map_err(|e| at.setup("write", e))?;
    let calls = std::thread::scope(|s| {
        let hs = (0..THREADS)
            .map(|t| {
                let rfd = ring[t].0.as_raw_fd();
                let wfd = ring[(t + 1) % THREADS].1.as_raw_fd();
                s.spawn(move || ring_thread(w, t, rfd, wfd))
            })
            .collect();
        join_all(w, at.what, hs)
    })?;
    Ok(format!(
        "{THREADS} threads x {THREAD_ROUNDS} rounds, {} system calls",
        calls.iter().sum::<u32>()
    ))
}

fn ring_thread(w: Width, t: usize, rfd: RawFd, wfd: RawFd) -> Result<u32, String> {
    let at = At::new(ID_THREADS, w, format!("thread {t}"));
    let mut fails = Fails::default();
    let mut calls = 0;
    let mut token = [0u8; 1];
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: 20_000,
    };
    for r in 0..THREAD_ROUNDS {
        let exp = Regs::pattern(ID_THREADS, w, t as u8, r, THREAD_MXCSR[t]);
        // SAFETY: getppid takes no arguments.
        fails.note(unsafe { step(&at, r, "getppid", &exp, libc::SYS_getppid, [0; 4]) });
        let rd = [rfd as usize, token.as_mut_ptr() as usize, 1, 0];
        // SAFETY: reads one byte into `token`, which is live and writable.
        let ret = unsafe { step(&at, r, "a blocking pipe read", &exp, libc::SYS_read, rd) };
        fails.note(ret.and_then(|n| at.want(r, "a blocking pipe read", n, 1)));
        let wr = [wfd as usize, token.as_ptr() as usize, 1, 0];
        // SAFETY: writes one byte from `token`.
        let ret = unsafe { step(&at, r, "a pipe write", &exp, libc::SYS_write, wr) };
        fails.note(ret.and_then(|n| at.want(r, "a pipe write", n, 1)));
        // SAFETY: sched_yield takes no arguments.
        let ret = unsafe { step(&at, r, "sched_yield", &exp, libc::SYS_sched_yield, [0; 4]) };
        fails.note(ret);
        calls += 4;
        if r % 8 == 0 {
            let ts = [&pause as *const libc::timespec as usize, 0, 0, 0];
            // SAFETY: nanosleep reads `pause`; the remainder pointer is NULL.
            let ret = unsafe { step(&at, r, "nanosleep", &exp, libc::SYS_nanosleep, ts) };
            fails.note(ret.and_then(|n| at.want(r, "nanosleep", n, 0)));
            calls += 1;
        }
    }
    fails.result().map(|()| calls)
}

// --- threads switched by the timer while they spin --------------------------

fn preempt(w: Width) -> Result<String, String> {
    let stop = AtomicU32::new(0);
    let done = std::thread::scope(|s| {
        let hs = (0..THREADS)
            .map(|t| {
                let stop = &stop;
                s.spawn(move || spin_thread(w, t, stop))
            })
            .collect();
        std::thread::sleep(PREEMPT_FOR);
        stop.store(1, SeqCst);
        join_all(w, NAMES[ID_PREEMPT as usize], hs)
    })?;
    let rounds: u32 = done.iter().map(|d| d.0).sum();
    let switches: i64 = done.iter().map(|d| d.1).sum();
    Ok(format!(
        "{THREADS} threads, {rounds} rounds, {switches} involuntary switches"
    ))
}

fn involuntary_switches() -> i64 {
    // SAFETY: plain data, filled in by getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid out pointer.
    unsafe { libc::getrusage(RUSAGE_THREAD, &mut ru) };
    ru.ru_nivcsw
}

fn spin_thread(w: Width, t: usize, stop: &AtomicU32) -> Result<(u32, i64), String> {
    let at = At::new(ID_PREEMPT, w, format!("thread {t}"));
    let before = involuntary_switches();
    let mut fails = Fails::default();
    let mut r = 0;
    while stop.load(SeqCst) == 0 && r < PREEMPT_MAX_ROUNDS {
        let exp = Regs::pattern(ID_PREEMPT, w, t as u8, r, THREAD_MXCSR[t]);
        let mut got = Regs::zeroed();
        regs::spin(w, &exp, &mut got, stop, 0, PREEMPT_SPIN);
        fails.note(at.verify(r, "spinning", &exp, &got));
        r += 1;
    }
    fails.result()?;
    Ok((r, involuntary_switches() - before))
}

// --- page faults and the stub -----------------------------------------------

fn faults(w: Width) -> Result<String, String> {
    let done = std::thread::scope(|s| {
        let hs = (0..FAULT_THREADS)
            .map(|t| s.spawn(move || fault_thread(w, t)))
            .collect();
        join_all(w, NAMES[ID_FAULTS as usize], hs)
    })?;
    Ok(format!(
        "{FAULT_THREADS} threads x {FAULT_PAGES} first touches, {} mprotect and munmap",
        done.iter().sum::<u32>()
    ))
}

fn fault_thread(w: Width, t: usize) -> Result<u32, String> {
    let at = At::new(ID_FAULTS, w, format!("thread {t}"));
    let ps = sys::page_size();
    let mut m = Mapping::new(FAULT_PAGES * ps, libc::PROT_READ | libc::PROT_WRITE)
        .map_err(|e| at.setup("mmap", e))?;
    let base = m.as_ptr() as usize;
    let mem = m.as_mut_slice();
    let mut fails = Fails::default();
    for i in 0..FAULT_PAGES {
        let r = i as u32;
        let mx = if i % 2 == 0 {
            MXCSR_FTZ_DAZ
        } else {
            MXCSR_DEFAULT
        };
        let exp = Regs::pattern(ID_FAULTS, w, t as u8, r, mx);
        let mut got = Regs::zeroed();
        regs::touch(w, &exp, &mut got, &mut mem[i * ps + (i * 64) % ps]);
        fails.note(at.verify(r, "the first touch of a page", &exp, &got));
        // The other thread takes its turn.
        // SAFETY: sched_yield takes no arguments.
        let ret = unsafe { step(&at, r, "sched_yield", &exp, libc::SYS_sched_yield, [0; 4]) };
        fails.note(ret);
    }
    // The stub changes the host mappings again.
    let mut calls = 0;
    for i in (0..FAULT_PAGES).step_by(4) {
        let r = (FAULT_PAGES + i) as u32;
        let exp = Regs::pattern(ID_FAULTS, w, t as u8, r, MXCSR_RZ);
        let a = [base + i * ps, ps, libc::PROT_READ as usize, 0];
        // SAFETY: a page of `m`, which is not written to after this (`mem` is no longer used).
        let ret = unsafe { step(&at, r, "mprotect", &exp, libc::SYS_mprotect, a) };
        fails.note(ret.and_then(|n| at.want(r, "mprotect", n, 0)));
        let a = [base + (i + 2) * ps, ps, 0, 0];
        // SAFETY: as above; `m` unmapping the whole range again on drop is harmless.
        let ret = unsafe { step(&at, r, "munmap", &exp, libc::SYS_munmap, a) };
        fails.note(ret.and_then(|n| at.want(r, "munmap", n, 0)));
        calls += 2;
    }
    fails.result().map(|()| calls)
}

// --- signal handlers ---------------------------------------------------------

/// A signal action, restored when dropped.
struct Action {
    sig: libc::c_int,
    old: libc::sigaction,
}

impl Action {
    fn new(sig: libc::c_int, handler: usize) -> std::io::Result<Action> {
        // SAFETY: sigaction is plain data; zero is a valid starting value.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = handler;
        // SAFETY: `sa.sa_mask` is a valid sigset to initialise.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: plain data, filled in by sigaction.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: valid sigaction pointers; the handler only counts in HANDLED and loads registers (regs.rs).
        sys::cvt(unsafe { libc::sigaction(sig, &sa, &mut old) })?;
        Ok(Action { sig, old })
    }
}

impl Drop for Action {
    fn drop(&mut self) {
        // SAFETY: restores the action saved by `new`.
        unsafe { libc::sigaction(self.sig, &self.old, std::ptr::null_mut()) };
    }
}

fn signal(w: Width) -> Result<String, String> {
    let at = At::new(ID_SIGNAL, w, "thread 0");
    let _action = Action::new(libc::SIGUSR1, regs::clobber_handler(w))
        .map_err(|e| at.setup("sigaction", e))?;
    // SAFETY: getpid and gettid have no preconditions.
    let (pid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
    let mut fails = Fails::default();
    let name = "SIGUSR1 from tgkill and its handler";
    for r in 0..SIGNAL_ROUNDS {
        let mx = if r % 2 == 0 { MXCSR_RZ } else { MXCSR_DEFAULT };
        let exp = Regs::pattern(ID_SIGNAL, w, 0, r, mx);
        let before = HANDLED.load(SeqCst);
        let a = [pid as usize, tid as usize, libc::SIGUSR1 as usize, 0];
        // SAFETY: a signal to this thread, whose handler only counts and loads registers.
        let ret = unsafe { step(&at, r, name, &exp, libc::SYS_tgkill, a) };
        fails.note(ret.and_then(|n| at.want(r, name, n, 0)));
        let n = HANDLED.load(SeqCst).wrapping_sub(before);
        if n != 1 {
            fails.note::<()>(Err(at.err(
                r,
                name,
                &format!("the handler ran {n} times, expected once"),
            )));
        }
    }
    fails.result()?;
    Ok(format!("{SIGNAL_ROUNDS} signals"))
}

/// An ITIMER_REAL interval timer, stopped when dropped.
struct Itimer;

impl Itimer {
    fn start(period: Duration) -> std::io::Result<Itimer> {
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: period.as_micros() as libc::suseconds_t,
        };
        let it = libc::itimerval {
            it_interval: tv,
            it_value: tv,
        };
        // SAFETY: a valid itimerval; the old value is not wanted.
        sys::cvt(unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) })?;
        Ok(Itimer)
    }
}

impl Drop for Itimer {
    fn drop(&mut self) {
        // SAFETY: all zero stops the timer.
        let it: libc::itimerval = unsafe { std::mem::zeroed() };
        // SAFETY: a valid itimerval.
        unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) };
    }
}

fn itimer(w: Width) -> Result<String, String> {
    let at = At::new(ID_ITIMER, w, "thread 0");
    let _action = Action::new(libc::SIGALRM, regs::clobber_handler(w))
        .map_err(|e| at.setup("sigaction", e))?;
    // Dropped before the action, so that no SIGALRM finds the default one.
    let _timer = Itimer::start(ITIMER_PERIOD).map_err(|e| at.setup("setitimer", e))?;
    let mut fails = Fails::default();
    let name = "SIGALRM and its handler";
    for r in 0..ITIMER_ROUNDS {
        let mx = if r % 2 == 0 { MXCSR_FTZ_DAZ } else { MXCSR_RZ };
        let exp = Regs::pattern(ID_ITIMER, w, 0, r, mx);
        let mut got = Regs::zeroed();
        let start = HANDLED.load(SeqCst);
        let left = regs::spin(w, &exp, &mut got, &HANDLED, start, ITIMER_SPIN);
        fails.note(at.verify(r, name, &exp, &got));
        if left == 0 {
            fails.note::<()>(Err(at.err(
                r,
                "spinning",
                &format!("no SIGALRM within {ITIMER_SPIN} loops"),
            )));
            break;
        }
    }
    fails.result()?;
    Ok(format!(
        "{ITIMER_ROUNDS} spins, each interrupted by a {} us timer",
        ITIMER_PERIOD.as_micros()
    ))
}

// --- processes -------------------------------------------------------------

/// What a child process writes to a shared page when a check fails in it.
#[repr(C)]
#[derive(Clone, Copy)]
struct Report {
    step: u64,
    ret: i64,
    round: u32,
    got: Regs,
}

/// A shared page for a child's [`Report`].
struct ReportPage(Mapping);

impl ReportPage {
    fn new() -> std::io::Result<ReportPage> {
        let len = std::mem::size_of::<Report>().next_multiple_of(sys::page_size());
        Mapping::new_shared(len, libc::PROT_READ | libc::PROT_WRITE).map(ReportPage)
    }

    /// In the child.
    fn write(&self, step: u64, ret: isize, round: u32, got: &Regs) {
        let rep = Report {
            step,
            ret: ret as i64,
            round,
            got: *got,
        };
        // SAFETY: the page holds a Report and is page-aligned; the parent reads it only after this child has exited.
        unsafe { self.0.as_ptr().cast::<Report>().write_volatile(rep) };
    }

    /// In the parent, after the child has exited.
    fn read(&self) -> Report {
        // SAFETY: as in `write`; the page starts zeroed, and all zero is a valid Report.
        unsafe { self.0.as_ptr().cast::<Report>().read_volatile() }
    }
}

/// What a forked child loads for its own system call.
fn fork_child_regs(w: Width, round: u32) -> Regs {
    Regs::pattern(ID_FORK, w, 1, round, MXCSR_DEFAULT)
}

fn fork(w: Width) -> Result<String, String> {
    let at = At::new(ID_FORK, w, "parent");
    let child_at = At::new(ID_FORK, w, "child");
    let page = ReportPage::new().map_err(|e| at.setup("mmap", e))?;
    let mut fails = Fails::default();
    for r in 0..FORK_ROUNDS {
        let mx = if r % 2 == 0 { MXCSR_FTZ_DAZ } else { MXCSR_RZ };
        let exp = Regs::pattern(ID_FORK, w, 0, r, mx);
        let mut got = Regs::zeroed();
        // SAFETY: the raw fork(2) in a process whose other threads have ended; the child only compares, makes one more system call, writes the shared page and leaves by _exit.
        let pid = unsafe { regs::syscall(w, &exp, &mut got, libc::SYS_fork, [0; 4]) };
        if pid == 0 {
            fork_child(w, r, &exp, &got, &page);
        }
        if pid < 0 {
            fails.note::<()>(Err(at.err(r, "fork", &format!("errno {}", -pid))));
            break;
        }
        let pid = pid as libc::pid_t;
        let mut reaper = Reaper::new();
        reaper.add(pid);
        fails.note(at.verify(r, "fork", &exp, &got));
        let x = sys::wait_timeout(pid, CHILD_LIMIT).map_err(|e| at.setup("waitpid", e))?;
        reaper.done(pid);
        let rep = page.read();
        let bad = match x {
            Exit::Code(0) => continue,
            Exit::Code(1) => child_at.verify(r, "fork", &exp, &rep.got),
            Exit::Code(2) => child_at.verify(r, "getppid", &fork_child_regs(w, r), &rep.got),
            other => Err(child_at.err(r, "fork", &format!("ended with {other}"))),
        };
        fails.note::<()>(
            bad.and_then(|()| Err(child_at.err(r, "fork", &format!("reported failure {x}")))),
        );
    }
    fails.result()?;
    Ok(format!("{FORK_ROUNDS} forks"))
}

/// The child of the raw fork: exit 0 when it found the parent's values and
/// then its own after a system call, 1 or 2 (and a report) when not.
fn fork_child(w: Width, r: u32, exp: &Regs, got: &Regs, page: &ReportPage) -> ! {
    let mut code = 0;
    if !got.same(exp, w) {
        page.write(1, 0, r, got);
        code = 1;
    } else {
        let own = fork_child_regs(w, r);
        let mut got = Regs::zeroed();
        // SAFETY: getppid takes no arguments.
        unsafe { regs::syscall(w, &own, &mut got, libc::SYS_getppid, [0; 4]) };
        if !got.same(&own, w) {
            page.write(2, 0, r, &got);
            code = 2;
        }
    }
    // SAFETY: ends this child without unwinding into the parent's frames.
    unsafe { libc::_exit(code) }
}

fn pingpong_regs(w: Width, who: u8, round: u32) -> Regs {
    let mx = if who == 0 { MXCSR_FTZ_DAZ } else { MXCSR_RZ };
    Regs::pattern(ID_PINGPONG, w, who, round, mx)
}

fn pingpong(w: Width) -> Result<String, String> {
    let at = At::new(ID_PINGPONG, w, "parent");
    let child_at = At::new(ID_PINGPONG, w, "child");
    let page = ReportPage::new().map_err(|e| at.setup("mmap", e))?;
    let (p2c_r, p2c_w) = sys::pipe().map_err(|e| at.setup("pipe", e))?;
    let (c2p_r, c2p_w) = sys::pipe().map_err(|e| at.setup("pipe", e))?;
    let fds = [
        p2c_r.as_raw_fd(),
        c2p_w.as_raw_fd(),
        p2c_w.as_raw_fd(),
        c2p_r.as_raw_fd(),
    ];
    let pid = sys::fork_child(|| pingpong_child(w, fds, &page)).map_err(|e| at.setup("fork", e))?;
    let mut reaper = Reaper::new();
    reaper.add(pid);
    drop(p2c_r);
    drop(c2p_w);
    let mut fails = Fails::default();
    let mut token = [b'p'; 1];
    let mut rounds = 0;
    for r in 0..PINGPONG_ROUNDS {
        let exp = pingpong_regs(w, 0, r);
        let a = [p2c_w.as_raw_fd() as usize, token.as_ptr() as usize, 1, 0];
        // SAFETY: writes one byte from `token`.
        let ret = unsafe { step(&at, r, "a pipe write", &exp, libc::SYS_write, a) };
        match ret {
            Ok(1) => {}
            Ok(n) => {
                fails.note(at.want(r, "a pipe write", n, 1));
                break;
            }
            Err(e) => fails.note::<()>(Err(e)),
        }
        let a = [
            c2p_r.as_raw_fd() as usize,
            token.as_mut_ptr() as usize,
            1,
            0,
        ];
        // SAFETY: reads one byte into `token`.
        let ret = unsafe { step(&at, r, "a blocking pipe read", &exp, libc::SYS_read, a) };
        match ret {
            Ok(1) => {}
            // The child has ended; it says why.
            Ok(0) => break,
            Ok(n) => {
                fails.note(at.want(r, "a blocking pipe read", n, 1));
                break;
            }
            Err(e) => fails.note::<()>(Err(e)),
        }
        rounds += 1;
    }
    // A child still waiting sees the end of the pipe.
    drop(p2c_w);
    drop(c2p_r);
    let x = sys::wait_timeout(pid, CHILD_LIMIT).map_err(|e| at.setup("waitpid", e))?;
    reaper.done(pid);
    let rep = page.read();
    let step = match rep.step {
        1 | 3 => "a blocking pipe read",
        _ => "a pipe write",
    };
    match x {
        Exit::Code(0) => {}
        Exit::Code(1) => {
            let exp = pingpong_regs(w, 1, rep.round);
            let v = child_at.verify(rep.round, step, &exp, &rep.got);
            fails.note::<()>(
                v.and_then(|()| Err(child_at.err(rep.round, step, "reported a mismatch"))),
            );
        }
        // The child's system call failed; a consequence if the parent
        // failed first.
        Exit::Code(3) => fails.note(child_at.want(rep.round, step, rep.ret as isize, 1)),
        other => fails.note::<()>(Err(child_at.err(
            rep.round,
            step,
            &format!("ended with {other}"),
        ))),
    }
    if rounds < PINGPONG_ROUNDS {
        fails.note::<()>(Err(at.err(
            rounds,
            "the last round",
            &format!("only {rounds} of {PINGPONG_ROUNDS} rounds were played"),
        )));
    }
    fails.result()?;
    Ok(format!("2 processes x {PINGPONG_ROUNDS} rounds"))
}

/// The child of `pingpong`: `fds` are its read and write ends, then the
/// parent's, which it closes. Exits 0, 1 (register mismatch) or 3 (a
/// system call failed), with a report.
fn pingpong_child(w: Width, fds: [RawFd; 4], page: &ReportPage) -> i32 {
    // SAFETY: closes this process's copies of the parent's ends only.
    unsafe {
        libc::close(fds[2]);
        libc::close(fds[3]);
    }
    let mut token = [0u8; 1];
    for r in 0..PINGPONG_ROUNDS {
        let exp = pingpong_regs(w, 1, r);
        let mut got = Regs::zeroed();
        let a = [fds[0] as usize, token.as_mut_ptr() as usize, 1, 0];
        // SAFETY: reads one byte into `token`.
        let ret = unsafe { regs::syscall(w, &exp, &mut got, libc::SYS_read, a) };
        if !got.same(&exp, w) {
            page.write(1, ret, r, &got);
            return 1;
        }
        if ret != 1 {
            page.write(3, ret, r, &got);
            return 3;
        }
        let a = [fds[1] as usize, token.as_ptr() as usize, 1, 0];
        // SAFETY: writes one byte from `token`.
        let ret = unsafe { regs::syscall(w, &exp, &mut got, libc::SYS_write, a) };
        if !got.same(&exp, w) {
            page.write(2, ret, r, &got);
            return 1;
        }
        if ret != 1 {
            page.write(4, ret, r, &got);
            return 3;
        }
    }
    0
}

// --- a tracer's own registers --------------------------------------------------

fn ptrace(w: Width) -> Result<String, String> {
    let at = At::new(ID_PTRACE, w, "tracer");
    let pid = sys::fork_child(|| {
        let null = std::ptr::null_mut::<libc::c_void>();
        // SAFETY: PTRACE_TRACEME takes no pointers.
        if unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, null, null) } == -1 {
            return 1;
        }
        // SAFETY: raise has no preconditions; the tracer kills this child.
        unsafe { libc::raise(libc::SIGSTOP) };
        0
    })
    .map_err(|e| at.setup("fork", e))?;
    let mut reaper = Reaper::new();
    reaper.add(pid);
    let mut st = 0;
    loop {
        // SAFETY: `st` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(at.setup("waitpid", e));
        }
    }
    if !libc::WIFSTOPPED(st) {
        return Err(at.setup("the tracee", format!("did not stop (wait status {st:#x})")));
    }
    // What the tracer writes: the handlers' garbage.
    // SAFETY: plain data; all zero is valid.
    let mut junk: libc::user_fpregs_struct = unsafe { std::mem::zeroed() };
    junk.cwd = 0x37F;
    junk.mxcsr = GARBAGE.mxcsr;
    for (r, v) in GARBAGE.v.iter().enumerate() {
        for k in 0..4 {
            junk.xmm_space[r * 4 + k] = (v[k / 2] >> (32 * (k % 2))) as u32;
        }
    }
    // SAFETY: plain data; all zero is valid.
    let mut seen: libc::user_fpregs_struct = unsafe { std::mem::zeroed() };
    let mut fails = Fails::default();
    let mut rets = Vec::new();
    for r in 0..PTRACE_ROUNDS {
        let mx = if r % 2 == 0 { MXCSR_RZ } else { MXCSR_FTZ_DAZ };
        let exp = Regs::pattern(ID_PTRACE, w, 0, r, mx);
        let set = libc::PTRACE_SETFPREGS as usize;
        let a = [set, pid as usize, 0, &junk as *const _ as usize];
        // SAFETY: PTRACE_SETFPREGS on our stopped tracee only reads `junk`.
        let ret = unsafe { step(&at, r, "PTRACE_SETFPREGS", &exp, libc::SYS_ptrace, a) };
        if let Ok(n) = ret {
            if n != 0 && rets.len() < 2 {
                rets.push(format!("PTRACE_SETFPREGS returned {n}"));
            }
        }
        fails.note(ret);
        let get = libc::PTRACE_GETFPREGS as usize;
        let a = [get, pid as usize, 0, &mut seen as *mut _ as usize];
        // SAFETY: PTRACE_GETFPREGS writes one user_fpregs_struct to `seen`.
        let ret = unsafe { step(&at, r, "PTRACE_GETFPREGS", &exp, libc::SYS_ptrace, a) };
        if let Ok(n) = ret {
            if n != 0 && rets.len() < 2 {
                rets.push(format!("PTRACE_GETFPREGS returned {n}"));
            }
        }
        fails.note(ret);
    }
    drop(reaper);
    fails.result()?;
    let mut s = format!("{PTRACE_ROUNDS} rounds of PTRACE_SETFPREGS and PTRACE_GETFPREGS");
    for r in rets {
        s.push_str(", ");
        s.push_str(&r);
    }
    Ok(s)
}
