// SPDX-License-Identifier: GPL-2.0
//! Signal stacks and signal return paths: handlers on a sigaltstack (checked
//! by the address of a local), nested delivery on that stack, SA_RESTART
//! against EINTR on a blocking pipe read, and SIGSEGV handlers that repair
//! the fault (mprotect, or mmap of a missing page) and return so that the
//! faulting access is restarted.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use super::Config;
use super::isolated::run_isolated;
use super::signals::Installed;
use crate::ktap::{CaseResult, Context, Verdict};
use crate::pattern;
use crate::sys::{self, Mapping};
use crate::{check, fail};

/// si_code values of SIGSEGV (asm-generic/siginfo.h).
const SEGV_MAPERR: i32 = 1;
const SEGV_ACCERR: i32 = 2;

const ALT_STACK_LEN: usize = 64 << 10;

/// An alternate signal stack for this thread; the previous one (Rust's
/// runtime installs one for stack overflow reports) comes back on drop.
struct AltStack {
    mem: Mapping,
    old: libc::stack_t,
}

impl AltStack {
    fn new(len: usize) -> Result<AltStack, Verdict> {
        let mem = Mapping::new(len, libc::PROT_READ | libc::PROT_WRITE).ctx("mmap alt stack")?;
        let ss = libc::stack_t {
            ss_sp: mem.as_ptr().cast(),
            ss_flags: 0,
            ss_size: len,
        };
        // SAFETY: plain data, filled in by sigaltstack.
        let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: `ss` describes memory owned by `mem`, which outlives the registration (Drop unregisters before `mem` is unmapped).
        sys::cvt(unsafe { libc::sigaltstack(&ss, &mut old) }).ctx("sigaltstack")?;
        Ok(AltStack { mem, old })
    }

    fn contains(&self, addr: usize) -> bool {
        let lo = self.mem.as_ptr() as usize;
        (lo..lo + self.mem.len()).contains(&addr)
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let mut old = self.old;
        // The saved flags may say SS_ONSTACK only if we were on it, which we
        // are not here; pass 0 or SS_DISABLE.
        old.ss_flags &= libc::SS_DISABLE;
        // SAFETY: restores the previous alternate stack of this thread.
        unsafe { libc::sigaltstack(&old, std::ptr::null_mut()) };
    }
}

/// The address of a local of the caller's frame.
#[inline(always)]
fn here() -> usize {
    let x = 0u8;
    std::hint::black_box(&x) as *const u8 as usize
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

// --- alternate stack and nesting ------------------------------------------

static DEPTH: AtomicUsize = AtomicUsize::new(0);
static USR1_N: AtomicUsize = AtomicUsize::new(0);
static USR1_LOCAL: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];
static USR1_DEPTH: [AtomicUsize; 2] = [const { AtomicUsize::new(usize::MAX) }; 2];
static USR1_SS_FLAGS: AtomicI32 = AtomicI32::new(-1);
static USR1_CHANGE_ERRNO: AtomicI32 = AtomicI32::new(-1);
static USR2_N: AtomicUsize = AtomicUsize::new(0);
static USR2_LOCAL: AtomicUsize = AtomicUsize::new(0);
static USR2_DEPTH: AtomicUsize = AtomicUsize::new(usize::MAX);
static URG_LOCAL: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_usr1(_s: libc::c_int, _i: *mut libc::siginfo_t, _c: *mut libc::c_void) {
    let local = here();
    let d = DEPTH.fetch_add(1, SeqCst);
    let n = USR1_N.fetch_add(1, SeqCst);
    if n < 2 {
        USR1_LOCAL[n].store(local, SeqCst);
        USR1_DEPTH[n].store(d, SeqCst);
    }
    if n == 0 {
        // SAFETY: plain data, filled in by sigaltstack.
        let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: queries the current alternate stack.
        unsafe { libc::sigaltstack(std::ptr::null(), &mut cur) };
        USR1_SS_FLAGS.store(cur.ss_flags, SeqCst);
        // Changing the alternate stack while running on it is refused.
        let again = libc::stack_t {
            ss_sp: cur.ss_sp,
            ss_flags: 0,
            ss_size: cur.ss_size,
        };
        // SAFETY: the same, valid stack; the kernel must refuse with EPERM.
        let r = unsafe { libc::sigaltstack(&again, std::ptr::null_mut()) };
        USR1_CHANGE_ERRNO.store(if r == 0 { 0 } else { errno() }, SeqCst);
        // SAFETY: raise(3) is async-signal-safe. SIGUSR2 is not blocked here and nests; SIGUSR1 is blocked during its own handler and waits.
        unsafe {
            libc::raise(libc::SIGUSR2);
            libc::raise(libc::SIGUSR1);
        }
    }
    DEPTH.fetch_sub(1, SeqCst);
}

extern "C" fn on_usr2(_s: libc::c_int, _i: *mut libc::siginfo_t, _c: *mut libc::c_void) {
    USR2_LOCAL.store(here(), SeqCst);
    USR2_DEPTH.store(DEPTH.load(SeqCst), SeqCst);
    USR2_N.fetch_add(1, SeqCst);
}

extern "C" fn on_urg(_s: libc::c_int, _i: *mut libc::siginfo_t, _c: *mut libc::c_void) {
    URG_LOCAL.store(here(), SeqCst);
}

fn alt_stack_and_nesting(alt: &AltStack) -> CaseResult {
    DEPTH.store(0, SeqCst);
    USR1_N.store(0, SeqCst);
    USR2_N.store(0, SeqCst);
    let _a1 = Installed::with_flags(libc::SIGUSR1, on_usr1, libc::SA_ONSTACK)?;
    let _a2 = Installed::with_flags(libc::SIGUSR2, on_usr2, libc::SA_ONSTACK)?;
    let _a3 = Installed::with_flags(libc::SIGURG, on_urg, 0)?;
    // SAFETY: raise(3) to ourselves; the handlers are installed.
    sys::cvt(unsafe { libc::raise(libc::SIGUSR1) }).ctx("raise SIGUSR1")?;
    // SAFETY: as above.
    sys::cvt(unsafe { libc::raise(libc::SIGURG) }).ctx("raise SIGURG")?;

    let n1 = USR1_N.load(SeqCst);
    check!(
        n1 == 2,
        "SIGUSR1 handler ran {n1} times, expected 2 (once, then the one raised inside it)"
    );
    let (l0, l1) = (USR1_LOCAL[0].load(SeqCst), USR1_LOCAL[1].load(SeqCst));
    check!(
        alt.contains(l0) && alt.contains(l1),
        "SA_ONSTACK handler ran with locals at {l0:#x} and {l1:#x}, outside the alternate stack"
    );
    let flags = USR1_SS_FLAGS.load(SeqCst);
    check!(
        flags & libc::SS_ONSTACK != 0,
        "sigaltstack() inside the handler reported flags {flags:#x}, no SS_ONSTACK"
    );
    let e = USR1_CHANGE_ERRNO.load(SeqCst);
    check!(
        e == libc::EPERM,
        "changing the alternate stack while on it: errno {e}, expected EPERM"
    );
    let d1 = USR1_DEPTH[1].load(SeqCst);
    check!(
        d1 == 0,
        "the SIGUSR1 raised inside its own handler ran nested (depth {d1}) although it was blocked"
    );
    let n2 = USR2_N.load(SeqCst);
    let d2 = USR2_DEPTH.load(SeqCst);
    check!(n2 == 1, "SIGUSR2 handler ran {n2} times, expected 1");
    check!(
        d2 == 1,
        "SIGUSR2 raised inside the SIGUSR1 handler ran at depth {d2}, expected nested (1)"
    );
    let l2 = USR2_LOCAL.load(SeqCst);
    check!(
        alt.contains(l2) && l2 < l0,
        "the nested handler's local {l2:#x} is not on the alternate stack below the outer one's {l0:#x}"
    );
    let lu = URG_LOCAL.load(SeqCst);
    check!(
        lu != 0 && !alt.contains(lu),
        "a handler without SA_ONSTACK ran on the alternate stack (local {lu:#x})"
    );
    // SAFETY: plain data, filled in by sigaltstack.
    let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: queries the current alternate stack.
    sys::cvt(unsafe { libc::sigaltstack(std::ptr::null(), &mut cur) }).ctx("sigaltstack")?;
    check!(
        cur.ss_flags & libc::SS_ONSTACK == 0,
        "after the handlers returned sigaltstack() still says SS_ONSTACK"
    );
    Ok(())
}

// --- SA_RESTART -----------------------------------------------------------

static INT_N: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_int(_s: libc::c_int, _i: *mut libc::siginfo_t, _c: *mut libc::c_void) {
    INT_N.fetch_add(1, SeqCst);
}

/// The scheduler state letter of thread `tid` of this process.
fn thread_state(tid: libc::pid_t) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    s.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

fn poll_until(limit: Duration, cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

const AFTER: &[u8] = b"after-signal";

/// The main thread blocks in read(2) on an empty pipe; a helper thread sends
/// it a signal and, once the handler has run, writes to the pipe. Returns
/// read's result, errno, and what was read.
fn interrupted_read(restart: bool) -> Result<(isize, i32, Vec<u8>), Verdict> {
    INT_N.store(0, SeqCst);
    let flags = if restart { libc::SA_RESTART } else { 0 };
    let _a = Installed::with_flags(libc::SIGUSR1, on_int, flags)?;
    let (r, w) = sys::pipe().ctx("pipe")?;
    // SAFETY: pthread_self and gettid have no preconditions.
    let (main, tid) = unsafe { (libc::pthread_self(), libc::gettid()) };
    let wfd = w.as_raw_fd();
    let (n, e, buf, helper) = std::thread::scope(|s| {
        let helper = s.spawn(move || -> Result<(), String> {
            let res = (|| {
                // Sleeping in read: state S. Then a little longer, to be sure.
                if !poll_until(Duration::from_secs(10), || thread_state(tid) == Some('S')) {
                    return Err("the main thread never blocked in read".to_string());
                }
                std::thread::sleep(Duration::from_millis(30));
                // SAFETY: pthread_kill to a live thread of this process.
                let r = unsafe { libc::pthread_kill(main, libc::SIGUSR1) };
                if r != 0 {
                    return Err(format!("pthread_kill: {}", io::Error::from_raw_os_error(r)));
                }
                if !poll_until(Duration::from_secs(10), || INT_N.load(SeqCst) >= 1) {
                    return Err("the signal handler never ran".to_string());
                }
                std::thread::sleep(Duration::from_millis(30));
                Ok(())
            })();
            // Always write, so that the main thread never blocks for good.
            let msg: &[u8] = if res.is_ok() { AFTER } else { b"helper-failed" };
            sys::write_all_fd(wfd, msg).map_err(|e| format!("write: {e}"))?;
            res
        });
        let mut buf = vec![0u8; 64];
        // SAFETY: `buf` is valid for writes of its length. A plain read(2), not retried on EINTR: that is what is being tested.
        let n = unsafe { libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let e = errno();
        buf.truncate(n.max(0) as usize);
        let helper = helper
            .join()
            .unwrap_or_else(|_| Err("the helper thread panicked".into()));
        (n, e, buf, helper)
    });
    drop(w);
    helper.map_err(Verdict::Fail)?;
    let hits = INT_N.load(SeqCst);
    check!(
        hits == 1,
        "the SIGUSR1 handler ran {hits} times, expected 1"
    );
    Ok((n, e, buf))
}

fn restart_read() -> CaseResult {
    let (n, e, buf) = interrupted_read(true)?;
    check!(
        n == AFTER.len() as isize && buf == AFTER,
        "with SA_RESTART, read returned {n} (errno {e}, data {:?}); expected the {} bytes written after the signal",
        String::from_utf8_lossy(&buf),
        AFTER.len()
    );
    let (n, e, buf) = interrupted_read(false)?;
    check!(
        n == -1 && e == libc::EINTR,
        "without SA_RESTART, read returned {n} (errno {e}, data {:?}); expected EINTR",
        String::from_utf8_lossy(&buf)
    );
    Ok(())
}

// --- SIGSEGV repaired by the handler ---------------------------------------

/// Page the SIGSEGV handler may repair, and how: 1 = mprotect read-write,
/// 2 = map a fresh page there.
static FIX_PAGE: AtomicUsize = AtomicUsize::new(0);
static FIX_LEN: AtomicUsize = AtomicUsize::new(0);
static FIX_MODE: AtomicUsize = AtomicUsize::new(0);
static SEGV_N: AtomicUsize = AtomicUsize::new(0);
static SEGV_ADDR: AtomicUsize = AtomicUsize::new(0);
static SEGV_CODE: AtomicI32 = AtomicI32::new(0);
static SEGV_LOCAL: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_segv(sig: libc::c_int, info: *mut libc::siginfo_t, _c: *mut libc::c_void) {
    SEGV_LOCAL.store(here(), SeqCst);
    // SAFETY: SA_SIGINFO gives a valid siginfo; for SIGSEGV si_addr is the faulting address.
    let (addr, code) = unsafe { ((*info).si_addr() as usize, (*info).si_code) };
    SEGV_ADDR.store(addr, SeqCst);
    SEGV_CODE.store(code, SeqCst);
    let n = SEGV_N.fetch_add(1, SeqCst) + 1;
    let page = FIX_PAGE.load(SeqCst);
    let len = FIX_LEN.load(SeqCst);
    let fixed = n == 1
        && page != 0
        && (page..page + len).contains(&addr)
        && match FIX_MODE.load(SeqCst) {
            // SAFETY: `page` is the page this case made read-only.
            1 => unsafe {
                libc::mprotect(
                    page as *mut libc::c_void,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                ) == 0
            },
            // SAFETY: `page` is the page this case unmapped; NOREPLACE never replaces a mapping should there be one.
            2 => unsafe {
                libc::mmap(
                    page as *mut libc::c_void,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                ) as usize
                    == page
            },
            _ => false,
        };
    if !fixed {
        // Not ours, or a second fault: die of it instead of looping.
        // SAFETY: resetting a disposition is async-signal-safe.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

fn segv_repair(alt: &AltStack) -> CaseResult {
    let ps = sys::page_size();
    let _a = Installed::with_flags(libc::SIGSEGV, on_segv, libc::SA_ONSTACK)?;

    // A write to a read-only page: SEGV_ACCERR; the handler makes the page
    // writable and the write completes.
    let mut m = Mapping::new(ps, libc::PROT_READ | libc::PROT_WRITE).ctx("mmap")?;
    const SEED: u64 = 0x5e67_5e67;
    pattern::fill(SEED, 0, m.as_mut_slice());
    let p = m.as_ptr() as usize;
    // SAFETY: our own page.
    sys::cvt(unsafe { libc::mprotect(p as *mut libc::c_void, ps, libc::PROT_READ) })
        .ctx("mprotect")?;
    SEGV_N.store(0, SeqCst);
    FIX_LEN.store(ps, SeqCst);
    FIX_MODE.store(1, SeqCst);
    FIX_PAGE.store(p, SeqCst);
    let target = p + 100;
    // SAFETY: faults once; the handler makes the page writable and the store is restarted. The mapping outlives it.
    unsafe { std::ptr::write_volatile(target as *mut u8, 0x5A) };
    FIX_PAGE.store(0, SeqCst);
    let (n, a, c) = (
        SEGV_N.load(SeqCst),
        SEGV_ADDR.load(SeqCst),
        SEGV_CODE.load(SeqCst),
    );
    check!(n == 1, "write to a read-only page: {n} SIGSEGV, expected 1");
    check!(
        a == target,
        "write to a read-only page: si_addr {a:#x}, expected {target:#x}"
    );
    check!(
        c == SEGV_ACCERR,
        "write to a read-only page: si_code {c}, expected SEGV_ACCERR"
    );
    let l = SEGV_LOCAL.load(SeqCst);
    check!(
        alt.contains(l),
        "the SA_ONSTACK SIGSEGV handler's local {l:#x} is not on the alternate stack"
    );
    let page = m.as_mut_slice();
    check!(
        page[100] == 0x5A,
        "the restarted store left {:#x}",
        page[100]
    );
    page[100] = pattern::byte_at(SEED, 100);
    if let Some(o) = pattern::first_mismatch(SEED, 0, page) {
        fail!("the repaired page lost its contents at byte {o}");
    }
    drop(m);

    // A read of an unmapped page: SEGV_MAPERR; the handler maps a fresh
    // page there and the read returns zero.
    let m = Mapping::new(ps, libc::PROT_READ | libc::PROT_WRITE).ctx("mmap")?;
    let p = m.as_ptr() as usize;
    // The page is unmapped now; `m` keeps the bookkeeping to unmap what the
    // handler maps there.
    // SAFETY: unmaps our own page; nothing refers to it.
    sys::cvt(unsafe { libc::munmap(p as *mut libc::c_void, ps) }).ctx("munmap")?;
    SEGV_N.store(0, SeqCst);
    FIX_MODE.store(2, SeqCst);
    FIX_PAGE.store(p, SeqCst);
    let target = p + 8;
    // SAFETY: faults once; the handler maps a page there and the load is restarted.
    let v = unsafe { std::ptr::read_volatile(target as *const u64) };
    FIX_PAGE.store(0, SeqCst);
    let (n, a, c) = (
        SEGV_N.load(SeqCst),
        SEGV_ADDR.load(SeqCst),
        SEGV_CODE.load(SeqCst),
    );
    check!(n == 1, "read of an unmapped page: {n} SIGSEGV, expected 1");
    check!(
        a == target,
        "read of an unmapped page: si_addr {a:#x}, expected {target:#x}"
    );
    check!(
        c == SEGV_MAPERR,
        "read of an unmapped page: si_code {c}, expected SEGV_MAPERR"
    );
    check!(v == 0, "the freshly mapped page read {v:#x}, expected 0");
    drop(m);
    Ok(())
}

fn body(progress: &std::sync::atomic::AtomicU64) -> CaseResult {
    let alt = AltStack::new(ALT_STACK_LEN)?;
    check!(
        !alt.contains(here()),
        "the main stack lies inside the new alternate stack"
    );
    progress.store(1, SeqCst);
    alt_stack_and_nesting(&alt)?;
    progress.store(2, SeqCst);
    restart_read()?;
    progress.store(3, SeqCst);
    segv_repair(&alt)?;
    Ok(())
}

/// Runs in a child of its own: it changes signal dispositions, the
/// alternate stack and lets faults happen on purpose.
pub fn signal_stack(_cfg: &Config) -> CaseResult {
    run_isolated("signal_stack", Duration::from_secs(60), body)
}
