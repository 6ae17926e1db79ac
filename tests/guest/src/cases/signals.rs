// SPDX-License-Identifier: GPL-2.0
//! Signals: handler delivery with siginfo, blocking and pending sets,
//! queued real-time signals, kill(2) to a child, SIGCHLD, and a SIGSEGV
//! handler that repairs the fault and returns.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use super::Config;
use crate::ktap::{CaseResult, Context, Verdict};
use crate::sys::{self, Exit};
use crate::{check, fail};

pub(super) type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// Installs an SA_SIGINFO handler for one signal and restores the previous
/// action when dropped.
pub(super) struct Installed {
    sig: libc::c_int,
    old: libc::sigaction,
}

impl Installed {
    pub(super) fn new(sig: libc::c_int, handler: Handler) -> Result<Installed, Verdict> {
        Self::with_flags(sig, handler, 0)
    }

    /// Like [`Installed::new`], with more `sa_flags` (e.g. SA_RESTART).
    pub(super) fn with_flags(
        sig: libc::c_int,
        handler: Handler,
        flags: libc::c_int,
    ) -> Result<Installed, Verdict> {
        // SAFETY: sigaction is plain data; zero is a valid starting value.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_SIGINFO | flags;
        // SAFETY: `sa.sa_mask` is a valid sigset to initialise.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: as above, plain data.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: valid sigaction pointers; the extern "C" handler only touches atomics.
        sys::cvt(unsafe { libc::sigaction(sig, &sa, &mut old) }).ctx("sigaction")?;
        Ok(Installed { sig, old })
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        // SAFETY: restores the action saved by `new`.
        unsafe { libc::sigaction(self.sig, &self.old, std::ptr::null_mut()) };
    }
}

/// Blocks a set of signals and restores the previous mask when dropped.
pub(super) struct Blocked {
    old: libc::sigset_t,
}

impl Blocked {
    pub(super) fn new(sigs: &[libc::c_int]) -> Result<Blocked, Verdict> {
        // SAFETY: sigset_t is plain data, initialised by sigemptyset below.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset.
        unsafe { libc::sigemptyset(&mut set) };
        for &s in sigs {
            // SAFETY: `set` is a valid sigset and `s` a valid signal number.
            unsafe { libc::sigaddset(&mut set, s) };
        }
        // SAFETY: valid sigset pointers.
        sys::cvt(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) })
            .ctx("sigprocmask")?;
        Ok(Blocked { old })
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `new`.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

fn unblock(sig: libc::c_int) -> CaseResult {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sigset; valid signal number.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
    }
    // SAFETY: valid sigset pointer.
    sys::cvt(unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) })
        .ctx("sigprocmask")?;
    Ok(())
}

fn is_pending(sig: libc::c_int) -> Result<bool, Verdict> {
    // SAFETY: sigset_t is plain data, filled in by sigpending.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sigset pointer.
    sys::cvt(unsafe { libc::sigpending(&mut set) }).ctx("sigpending")?;
    // SAFETY: `set` was filled in by sigpending.
    Ok(unsafe { libc::sigismember(&set, sig) } == 1)
}

/// Polls `cond` for up to 10 s.
fn wait_until(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn self_kill(sig: libc::c_int) -> CaseResult {
    // SAFETY: kill(2) to ourselves.
    sys::cvt(unsafe { libc::kill(libc::getpid(), sig) }).ctx("kill")?;
    Ok(())
}

static USR1_COUNT: AtomicUsize = AtomicUsize::new(0);
static USR1_PID: AtomicI32 = AtomicI32::new(0);
static USR1_CODE: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_usr1(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: SA_SIGINFO gives a valid siginfo; for kill(2), si_pid is the sender.
    let (pid, code) = unsafe { ((*info).si_pid(), (*info).si_code) };
    USR1_PID.store(pid, SeqCst);
    USR1_CODE.store(code, SeqCst);
    USR1_COUNT.fetch_add(1, SeqCst);
}

static RT_COUNT: AtomicUsize = AtomicUsize::new(0);
static RT_VALUES: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];

extern "C" fn on_rt(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: SA_SIGINFO gives a valid siginfo; for sigqueue(3), si_value is the sender's.
    let v = unsafe { (*info).si_value().sival_ptr } as usize;
    let i = RT_COUNT.fetch_add(1, SeqCst);
    if i < RT_VALUES.len() {
        RT_VALUES[i].store(v, SeqCst);
    }
}

static CHLD_COUNT: AtomicUsize = AtomicUsize::new(0);
static CHLD_PID: AtomicI32 = AtomicI32::new(0);
static CHLD_CODE: AtomicI32 = AtomicI32::new(0);
static CHLD_STATUS: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_chld(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: SA_SIGINFO gives a valid siginfo; for SIGCHLD si_pid/code/status describe the child.
    let (pid, code, status) = unsafe { ((*info).si_pid(), (*info).si_code, (*info).si_status()) };
    CHLD_PID.store(pid, SeqCst);
    CHLD_CODE.store(code, SeqCst);
    CHLD_STATUS.store(status, SeqCst);
    CHLD_COUNT.fetch_add(1, SeqCst);
}

static USR2_SEEN: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_usr2(_sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    USR2_SEEN.fetch_add(1, SeqCst);
}

static SEGV_PAGE: AtomicUsize = AtomicUsize::new(0);
static SEGV_PAGE_LEN: AtomicUsize = AtomicUsize::new(0);
static SEGV_ADDR: AtomicUsize = AtomicUsize::new(0);
static SEGV_COUNT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_segv(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: SA_SIGINFO gives a valid siginfo; for SIGSEGV si_addr is the faulting address.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = SEGV_PAGE.load(SeqCst);
    let len = SEGV_PAGE_LEN.load(SeqCst);
    SEGV_ADDR.store(addr, SeqCst);
    let n = SEGV_COUNT.fetch_add(1, SeqCst) + 1;
    if page != 0 && (page..page + len).contains(&addr) && n == 1 {
        // Making it writable lets the faulting store complete when we return.
        // SAFETY: `page` is the one page this case mapped PROT_NONE.
        unsafe {
            libc::mprotect(
                page as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
    } else {
        // An unexpected fault: fall back to the default action so the
        // process dies instead of faulting forever.
        // SAFETY: resetting a signal disposition is async-signal-safe.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

pub fn signals(_cfg: &Config) -> CaseResult {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };

    // 1. Delivery to a handler, with siginfo.
    {
        let _h = Installed::new(libc::SIGUSR1, on_usr1)?;
        USR1_COUNT.store(0, SeqCst);
        self_kill(libc::SIGUSR1)?;
        check!(
            wait_until(|| USR1_COUNT.load(SeqCst) == 1),
            "SIGUSR1 handler did not run"
        );
        let pid = USR1_PID.load(SeqCst);
        check!(pid == me, "si_pid {pid}, expected {me}");
        let code = USR1_CODE.load(SeqCst);
        check!(code == libc::SI_USER, "si_code {code}, expected SI_USER");

        // 2. Blocked: stays pending, two sends coalesce into one delivery.
        {
            let _b = Blocked::new(&[libc::SIGUSR1])?;
            self_kill(libc::SIGUSR1)?;
            self_kill(libc::SIGUSR1)?;
            std::thread::sleep(Duration::from_millis(20));
            check!(
                USR1_COUNT.load(SeqCst) == 1,
                "handler ran while SIGUSR1 was blocked"
            );
            check!(
                is_pending(libc::SIGUSR1)?,
                "blocked SIGUSR1 not in sigpending()"
            );
            unblock(libc::SIGUSR1)?;
            check!(
                wait_until(|| USR1_COUNT.load(SeqCst) >= 2),
                "SIGUSR1 not delivered after unblocking"
            );
            std::thread::sleep(Duration::from_millis(20));
            let n = USR1_COUNT.load(SeqCst);
            check!(
                n == 2,
                "{n} deliveries after unblocking, expected 1 (coalesced)"
            );
            check!(
                !is_pending(libc::SIGUSR1)?,
                "SIGUSR1 still pending after delivery"
            );
        }
    }

    // 3. Real-time signals queue, in order, with their values.
    {
        let rt = libc::SIGRTMIN();
        let _h = Installed::new(rt, on_rt)?;
        RT_COUNT.store(0, SeqCst);
        let _b = Blocked::new(&[rt])?;
        for v in 1..=3usize {
            let val = libc::sigval {
                sival_ptr: v as *mut libc::c_void,
            };
            // SAFETY: sigqueue(3) to ourselves with a plain value.
            sys::cvt(unsafe { libc::sigqueue(me, rt, val) }).ctx("sigqueue")?;
        }
        check!(
            RT_COUNT.load(SeqCst) == 0,
            "real-time handler ran while blocked"
        );
        unblock(rt)?;
        check!(
            wait_until(|| RT_COUNT.load(SeqCst) >= 3),
            "queued SIGRTMIN not all delivered"
        );
        std::thread::sleep(Duration::from_millis(20));
        let n = RT_COUNT.load(SeqCst);
        let vals: Vec<usize> = RT_VALUES[..3].iter().map(|a| a.load(SeqCst)).collect();
        check!(n == 3, "{n} SIGRTMIN deliveries, expected 3");
        check!(
            vals == [1, 2, 3],
            "SIGRTMIN values {vals:?}, expected [1, 2, 3]"
        );
    }

    // 4. kill(2) to a child: a handler in the child, then the default action.
    {
        let _h = Installed::new(libc::SIGUSR2, on_usr2)?;
        // Blocked before fork, so the child cannot miss it; the child waits
        // in sigsuspend with it unblocked.
        let _b = Blocked::new(&[libc::SIGUSR2])?;
        USR2_SEEN.store(0, SeqCst);
        let pid = sys::fork_child(|| {
            // SAFETY: sigset_t is plain data, initialised by sigemptyset.
            let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
            // SAFETY: valid sigset pointer.
            unsafe { libc::sigemptyset(&mut empty) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while USR2_SEEN.load(SeqCst) == 0 {
                if Instant::now() > deadline {
                    return 9;
                }
                // SAFETY: valid sigset pointer; returns after a handler ran.
                unsafe { libc::sigsuspend(&empty) };
            }
            7
        })
        .ctx("fork")?;
        // SAFETY: kill(2) to our child.
        sys::cvt(unsafe { libc::kill(pid, libc::SIGUSR2) }).ctx("kill child")?;
        let x = sys::wait_timeout(pid, Duration::from_secs(30)).ctx("waitpid")?;
        check!(
            x == Exit::Code(7),
            "child signalled with SIGUSR2: {x}, expected exit code 7"
        );

        let pid = sys::fork_child(|| {
            loop {
                // SAFETY: pause(2) just waits for a signal.
                unsafe { libc::pause() };
            }
        })
        .ctx("fork")?;
        // SAFETY: kill(2) to our child.
        sys::cvt(unsafe { libc::kill(pid, libc::SIGTERM) }).ctx("kill child")?;
        let x = sys::wait_timeout(pid, Duration::from_secs(30)).ctx("waitpid")?;
        check!(x == Exit::Signal(libc::SIGTERM), "child sent SIGTERM: {x}");
    }

    // 5. SIGCHLD with the child's pid and status.
    {
        let _h = Installed::new(libc::SIGCHLD, on_chld)?;
        CHLD_COUNT.store(0, SeqCst);
        let pid = {
            let _b = Blocked::new(&[libc::SIGCHLD])?;
            let pid = sys::fork_child(|| 3).ctx("fork")?;
            // Let the child exit while SIGCHLD is blocked: it must be pending.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !is_pending(libc::SIGCHLD)? {
                if Instant::now() > deadline {
                    fail!("SIGCHLD never became pending while blocked");
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            check!(
                CHLD_COUNT.load(SeqCst) == 0,
                "SIGCHLD handler ran while blocked"
            );
            pid
        };
        check!(
            wait_until(|| CHLD_COUNT.load(SeqCst) == 1),
            "SIGCHLD handler did not run"
        );
        let (p, c, s) = (
            CHLD_PID.load(SeqCst),
            CHLD_CODE.load(SeqCst),
            CHLD_STATUS.load(SeqCst),
        );
        check!(p == pid, "SIGCHLD si_pid {p}, expected {pid}");
        check!(
            c == libc::CLD_EXITED,
            "SIGCHLD si_code {c}, expected CLD_EXITED"
        );
        check!(s == 3, "SIGCHLD si_status {s}, expected 3");
        let x = sys::wait(pid).ctx("waitpid")?;
        check!(x == Exit::Code(3), "child: {x}");
    }

    // 6. A SIGSEGV handler that makes the page writable and returns: the
    //    faulting store is restarted and completes.
    {
        let page = sys::Mapping::new(sys::page_size(), libc::PROT_NONE).ctx("mmap")?;
        let p = page.as_ptr();
        SEGV_PAGE_LEN.store(page.len(), SeqCst);
        SEGV_PAGE.store(p as usize, SeqCst);
        SEGV_COUNT.store(0, SeqCst);
        let h = Installed::new(libc::SIGSEGV, on_segv)?;
        // The handler makes the page writable and the store is restarted.
        // SAFETY: the store faults once into our handler; the mapping outlives it.
        unsafe { std::ptr::write_volatile(p.add(8), 0xA5u8) };
        drop(h);
        SEGV_PAGE.store(0, SeqCst);
        let n = SEGV_COUNT.load(SeqCst);
        let a = SEGV_ADDR.load(SeqCst);
        check!(n == 1, "{n} SIGSEGV deliveries, expected 1");
        // si_addr is the exact address on x86; accept anywhere in the page.
        check!(
            a >= p as usize && a < p as usize + page.len(),
            "si_addr {a:#x}, expected within {:#x}",
            p as usize
        );
        // SAFETY: the page is now readable.
        let v = unsafe { std::ptr::read_volatile(p.add(8)) };
        check!(v == 0xA5, "value after the restarted store: {v:#x}");
    }
    Ok(())
}
