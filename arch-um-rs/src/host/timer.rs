// SPDX-License-Identifier: GPL-2.0
//! POSIX interval timers and clocks: the safe core behind `abi::time`.
//!
//! These run from the timer interrupt and idle paths of the UML kernel: no
//! allocation, no locks, only direct system calls through the C library.

use core::ffi::c_int;
use core::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;

/// Nanoseconds per second (checked against the kernel's `UM_NSEC_PER_SEC`).
pub const NSEC_PER_SEC: u64 = crate::abi::layout::UM_NSEC_PER_SEC;

/// `timespec` to nanoseconds, as a signed 64-bit count.
pub fn timespec_ns(ts: &libc::timespec) -> i64 {
    // time_t and long are i64 on 64-bit hosts, i32 on 32-bit ones.
    #[allow(clippy::useless_conversion)]
    let (sec, nsec) = (i64::from(ts.tv_sec), i64::from(ts.tv_nsec));
    sec.wrapping_mul(NSEC_PER_SEC as i64).wrapping_add(nsec)
}

/// Nanoseconds to `timespec` (seconds and remainder).
pub fn ns_timespec(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / NSEC_PER_SEC) as libc::time_t,
        tv_nsec: (ns % NSEC_PER_SEC) as libc::c_long,
    }
}

/// The current time of `clock` in nanoseconds (0 if the clock is invalid).
pub fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    timespec_ns(&ts)
}

/// A host POSIX timer id. Plain handle: copying it does not duplicate the
/// timer and dropping it does not delete it (UML's timer lives forever).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerId(libc::timer_t);

impl TimerId {
    pub const fn from_raw(raw: libc::timer_t) -> Self {
        Self(raw)
    }

    pub const fn as_raw(self) -> libc::timer_t {
        self.0
    }

    /// A timer on `clock` with the default notification: SIGALRM to the
    /// process.
    pub fn create(clock: libc::clockid_t) -> Result<Self, Errno> {
        let mut id: libc::timer_t = core::ptr::null_mut();
        // SAFETY: a null sigevent means SIGEV_SIGNAL with SIGALRM; `id` is a valid, writable timer_t.
        if unsafe { libc::timer_create(clock, core::ptr::null_mut(), &mut id) } < 0 {
            return Err(Errno::last());
        }
        Ok(Self(id))
    }

    /// A timer on `clock` that sends `signo` to the thread `tid` only
    /// (`SIGEV_THREAD_ID`).
    pub fn create_for_thread(
        clock: libc::clockid_t,
        signo: c_int,
        tid: libc::pid_t,
    ) -> Result<Self, Errno> {
        // SAFETY: sigevent is plain old data; all-zero is a valid value.
        let mut sev: libc::sigevent = unsafe { core::mem::zeroed() };
        sev.sigev_notify = libc::SIGEV_THREAD_ID;
        sev.sigev_signo = signo;
        sev.sigev_notify_thread_id = tid;
        let mut id: libc::timer_t = core::ptr::null_mut();
        // SAFETY: `sev` and `id` are valid for the call.
        if unsafe { libc::timer_create(clock, &mut sev, &mut id) } < 0 {
            return Err(Errno::last());
        }
        Ok(Self(id))
    }

    /// Arms the timer to fire after `value_ns`, then every `interval_ns`
    /// (0: once). A zero `value_ns` disarms it.
    pub fn set(self, value_ns: u64, interval_ns: u64) -> Result<(), Errno> {
        let its = libc::itimerspec {
            it_value: ns_timespec(value_ns),
            it_interval: ns_timespec(interval_ns),
        };
        // SAFETY: `its` is a valid itimerspec; the old value is not wanted.
        if unsafe { libc::timer_settime(self.0, 0, &its, core::ptr::null_mut()) } < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    /// Disarms the timer.
    pub fn disarm(self) -> Result<(), Errno> {
        self.set(0, 0)
    }

    /// The time left until the next expiry and the reload interval.
    pub fn get(self) -> Result<libc::itimerspec, Errno> {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let mut its = libc::itimerspec {
            it_value: zero,
            it_interval: zero,
        };
        // SAFETY: `its` is a valid, writable itimerspec.
        if unsafe { libc::timer_gettime(self.0, &mut its) } < 0 {
            return Err(Errno::last());
        }
        Ok(its)
    }

    /// Whether the timer will fire (an unreadable timer counts as disarmed).
    pub fn is_armed(self) -> bool {
        self.get()
            .is_ok_and(|its| its.it_value.tv_sec != 0 || its.it_value.tv_nsec != 0)
    }

    /// Deletes the host timer.
    pub fn delete(self) -> Result<(), Errno> {
        // SAFETY: the id came from timer_create; misuse is an error the kernel reports, not UB.
        if unsafe { libc::timer_delete(self.0) } < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }
}

/// What a timer was last set to, kept by whoever sets it, so that the idle
/// loop can tell whether it is armed without asking the host
/// (`timer_gettime`, a system call on every idle entry).
///
/// One word, for an atomic: [`Self::DISARMED`], [`Self::PERIODIC`],
/// [`Self::UNKNOWN`] (a setting failed, or nothing was recorded: ask the
/// host), or for a one-shot timer a time on `CLOCK_MONOTONIC` read before
/// it was set, so no later than its expiry. Before that time the timer is
/// surely armed; after it, it may have fired, and the host is asked as
/// before.
///
/// The records must not interleave: UML sets its timer from the clock
/// event callbacks, with interrupts off, so no signal handler sets it
/// between a setting and its record.
pub struct SetRecord(AtomicU64);

impl SetRecord {
    const DISARMED: u64 = 0;
    const UNKNOWN: u64 = 1;
    const PERIODIC: u64 = u64::MAX;

    pub const fn new() -> Self {
        Self(AtomicU64::new(Self::UNKNOWN))
    }

    fn store(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The timer was disarmed (or created), if `ok`.
    pub fn disarmed(&self, ok: bool) {
        self.store(if ok { Self::DISARMED } else { Self::UNKNOWN });
    }

    /// The timer was set to fire every `period_ns` (0 disarms it), if `ok`.
    pub fn periodic(&self, period_ns: u64, ok: bool) {
        self.store(match (ok, period_ns) {
            (false, _) => Self::UNKNOWN,
            (true, 0) => Self::DISARMED,
            (true, _) => Self::PERIODIC,
        });
    }

    /// The timer was set to fire once, `value_ns` after a call that began
    /// at `began_ns` (`CLOCK_MONOTONIC`), if `ok`.
    pub fn one_shot(&self, began_ns: i64, value_ns: u64, ok: bool) {
        self.store(match (ok, value_ns) {
            (false, _) => Self::UNKNOWN,
            (true, 0) => Self::DISARMED,
            // Clamped off the other encodings; a time too early or too
            // late only makes the host be asked.
            (true, _) => (began_ns.max(0) as u64)
                .saturating_add(value_ns)
                .clamp(Self::UNKNOWN + 1, Self::PERIODIC - 1),
        });
    }

    /// Whether the timer is armed, if that is known for sure; `now` reads
    /// `CLOCK_MONOTONIC`, only for a one-shot timer.
    pub fn armed(&self, now: impl FnOnce() -> i64) -> Option<bool> {
        match self.0.load(Ordering::Relaxed) {
            Self::DISARMED => Some(false),
            Self::PERIODIC => Some(true),
            Self::UNKNOWN => None,
            before_expiry => ((now().max(0) as u64) < before_expiry).then_some(true),
        }
    }
}

impl Default for SetRecord {
    fn default() -> Self {
        Self::new()
    }
}

/// Sleeps until a signal arrives, but only if `timer` is armed, so the idle
/// loop cannot sleep forever. SIGALRM is blocked while the timer's state is
/// looked at, so an expiry in between is not lost: `sigsuspend` restores the
/// previous mask and returns once the pending SIGALRM (or any other signal)
/// is handled. Afterwards SIGALRM is unblocked, whatever the mask was
/// before. Whether the timer is armed comes from `record` where it knows,
/// from the host otherwise.
pub fn idle_sleep(timer: TimerId, record: &SetRecord) {
    // sigsuspend and sigprocmask only change this thread's mask.
    // SAFETY: the sigsets are initialised by sigemptyset/sigprocmask before use.
    unsafe {
        let mut alarm: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut alarm);
        libc::sigaddset(&mut alarm, libc::SIGALRM);
        libc::sigprocmask(libc::SIG_BLOCK, &alarm, &mut old);
        let armed = record
            .armed(|| clock_ns(libc::CLOCK_MONOTONIC))
            .unwrap_or_else(|| timer.is_armed());
        if armed {
            libc::sigsuspend(&old);
        }
        libc::sigprocmask(libc::SIG_UNBLOCK, &alarm, core::ptr::null_mut());
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Once;

    extern "C" fn ignore_signal(_: core::ffi::c_int) {}

    /// Installs a do-nothing SIGALRM handler for the whole test process, so
    /// a timer signal reaching any thread never kills the test binary.
    pub fn install_noop_sigalrm() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            // SAFETY: an empty, async-signal-safe handler; the sigaction is fully initialised.
            unsafe {
                let mut sa: libc::sigaction = core::mem::zeroed();
                sa.sa_sigaction = ignore_signal as *const () as libc::sighandler_t;
                libc::sigemptyset(&mut sa.sa_mask);
                sa.sa_flags = libc::SA_RESTART;
                assert_eq!(
                    libc::sigaction(libc::SIGALRM, &sa, core::ptr::null_mut()),
                    0
                );
            }
        });
    }

    /// Blocks SIGALRM in the calling thread.
    pub fn block_sigalrm() {
        // SAFETY: initialised sigset, changes only this thread's mask.
        unsafe {
            let mut set: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGALRM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut());
        }
    }

    /// Waits up to `timeout_ms` for a SIGALRM; true if one arrived.
    pub fn wait_sigalrm(timeout_ms: u64) -> bool {
        // SAFETY: initialised sigset and timespec; siginfo may be null.
        unsafe {
            let mut set: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGALRM);
            let ts = super::ns_timespec(timeout_ms * 1_000_000);
            loop {
                let rc = libc::sigtimedwait(&set, core::ptr::null_mut(), &ts);
                if rc == libc::SIGALRM {
                    return true;
                }
                if nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                    return false;
                }
            }
        }
    }

    pub fn gettid() -> libc::pid_t {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    fn thread_timer() -> TimerId {
        install_noop_sigalrm();
        block_sigalrm();
        TimerId::create_for_thread(libc::CLOCK_MONOTONIC, libc::SIGALRM, gettid()).unwrap()
    }

    #[test]
    fn ns_conversions() {
        let ts = ns_timespec(3 * NSEC_PER_SEC + 42);
        assert_eq!((ts.tv_sec, ts.tv_nsec), (3, 42));
        assert_eq!(timespec_ns(&ts), 3_000_000_042);
    }

    #[test]
    fn one_shot_fires_once_after_delay() {
        let t = thread_timer();
        let start = Instant::now();
        t.set(50_000_000, 0).unwrap();
        assert!(t.is_armed());
        assert!(wait_sigalrm(2000), "one-shot timer did not fire");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(45),
            "fired too early: {took:?}"
        );
        assert!(
            took < Duration::from_millis(1500),
            "fired too late: {took:?}"
        );
        assert!(!t.is_armed());
        assert!(!wait_sigalrm(150), "one-shot timer fired twice");
        t.delete().unwrap();
    }

    #[test]
    fn interval_fires_repeatedly() {
        let t = thread_timer();
        let start = Instant::now();
        t.set(20_000_000, 20_000_000).unwrap();
        for i in 0..4 {
            assert!(wait_sigalrm(2000), "interval tick {i} missing");
        }
        let took = start.elapsed();
        // Four ticks at 20 ms (the signal is not queued twice, so ticks can
        // merge, never come early).
        assert!(
            took >= Duration::from_millis(75),
            "ticks too fast: {took:?}"
        );
        let its = t.get().unwrap();
        assert_eq!(
            (its.it_interval.tv_sec, its.it_interval.tv_nsec),
            (0, 20_000_000)
        );
        t.disarm().unwrap();
        let _ = wait_sigalrm(0);
        assert!(!wait_sigalrm(100), "disarmed interval timer still fires");
        t.delete().unwrap();
    }

    #[test]
    fn disarm_stops_pending_timer() {
        let t = thread_timer();
        t.set(50_000_000, 0).unwrap();
        t.disarm().unwrap();
        assert!(!t.is_armed());
        assert!(!wait_sigalrm(150), "disarmed timer fired");
        t.delete().unwrap();
        assert_eq!(t.set(1, 0), Err(Errno::EINVAL));
    }

    #[test]
    fn idle_sleep_waits_for_armed_timer_only() {
        let t = thread_timer();
        // Disarmed: returns at once, and leaves SIGALRM unblocked.
        let unknown = SetRecord::new();
        let start = Instant::now();
        idle_sleep(t, &unknown);
        assert!(start.elapsed() < Duration::from_millis(100));
        let mut mask: libc::sigset_t = unsafe_zeroed_sigset();
        // SAFETY: reading this thread's mask into a valid sigset.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, core::ptr::null(), &mut mask) };
        // SAFETY: `mask` is initialised.
        assert_eq!(unsafe { libc::sigismember(&mask, libc::SIGALRM) }, 0);

        // Armed: sleeps until the (thread-directed) SIGALRM is handled.
        // Asking the host, and with the setting recorded.
        for recorded in [false, true] {
            let record = SetRecord::new();
            let start = Instant::now();
            let began = clock_ns(libc::CLOCK_MONOTONIC);
            t.set(60_000_000, 0).unwrap();
            if recorded {
                record.one_shot(began, 60_000_000, true);
            }
            idle_sleep(t, &record);
            let took = start.elapsed();
            assert!(
                took >= Duration::from_millis(50),
                "woke too early: {took:?} (recorded: {recorded})"
            );
            assert!(
                took < Duration::from_millis(1500),
                "woke too late: {took:?} (recorded: {recorded})"
            );
        }
        t.delete().unwrap();
    }

    #[test]
    fn a_set_record_knows_only_what_is_sure() {
        let r = SetRecord::new();
        let never = || -> i64 { panic!("the clock is read only for a one-shot timer") };
        assert_eq!(r.armed(never), None, "nothing recorded: ask the host");
        r.disarmed(true);
        assert_eq!(r.armed(never), Some(false));
        r.periodic(5, true);
        assert_eq!(r.armed(never), Some(true));
        r.periodic(0, true);
        assert_eq!(r.armed(never), Some(false), "a zero period disarms");
        r.one_shot(1000, 500, true);
        assert_eq!(r.armed(|| 1499), Some(true));
        assert_eq!(r.armed(|| 1500), None, "it may have fired: ask");
        r.one_shot(1000, 0, true);
        assert_eq!(r.armed(never), Some(false));
        // A failed setting leaves the state unknown.
        let failures: [&dyn Fn(&SetRecord); 3] =
            [&|r| r.disarmed(false), &|r| r.periodic(5, false), &|r| {
                r.one_shot(1000, 500, false)
            }];
        for fail in failures {
            r.disarmed(true);
            fail(&r);
            assert_eq!(r.armed(never), None);
        }
        // Times that would read as another state are clamped.
        r.one_shot(-5, 1, true);
        assert_eq!(r.armed(|| 1), Some(true));
        assert_eq!(r.armed(|| 2), None);
        r.one_shot(i64::MAX, u64::MAX, true);
        assert_eq!(r.armed(|| i64::MAX), Some(true));
    }

    fn unsafe_zeroed_sigset() -> libc::sigset_t {
        // SAFETY: sigset_t is plain old data.
        unsafe { core::mem::zeroed() }
    }

    #[test]
    fn monotonic_and_realtime_clocks() {
        let a = clock_ns(libc::CLOCK_MONOTONIC);
        std::thread::sleep(Duration::from_millis(5));
        let b = clock_ns(libc::CLOCK_MONOTONIC);
        assert!(
            b - a >= 5_000_000,
            "monotonic clock advanced only {} ns",
            b - a
        );
        let real = clock_ns(libc::CLOCK_REALTIME);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        assert!(
            (real - now).abs() < 1_000_000_000,
            "realtime {real} vs {now}"
        );
    }
}
