// SPDX-License-Identifier: GPL-2.0
//! Timers: nanosleep and clock_nanosleep (relative and TIMER_ABSTIME) over a
//! range of durations, periodic ITIMER_REAL, ITIMER_VIRTUAL and ITIMER_PROF
//! while spinning on the CPU, a periodic timerfd, and several processes
//! sleeping at once.
//!
//! A timer must never expire early; that bound is exact and checked without
//! slack. How late it may be depends on the host, so the upper bounds are
//! generous: UML runs its timers off host timers, and the harness pins the
//! whole guest to one host CPU that other work may share.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use super::Config;
use super::signals::Installed;
use crate::ktap::{CaseResult, Context, Verdict};
use crate::sys::{self, Exit, Reaper, SharedWords};
use crate::{check, diag, fail};

const MS: u64 = 1_000_000;

/// Lateness allowed for one sleep of `req_ns`: 50 ms plus half the request.
fn slack_ns(req_ns: u64) -> u64 {
    50 * MS + req_ns / 2
}

fn timespec(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

fn timeval(ns: u64) -> libc::timeval {
    libc::timeval {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_usec: ((ns % 1_000_000_000) / 1000) as libc::suseconds_t,
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / MS as f64
}

/// nanosleep(2) for `ns`; an interruption by a signal is an error.
fn nanosleep(ns: u64) -> std::io::Result<()> {
    let ts = timespec(ns);
    // SAFETY: `ts` is a valid timespec; no remainder is asked for.
    sys::cvt(unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) }).map(drop)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = timespec(0);
    // SAFETY: `ts` is a valid, writable timespec; the clock ids used here always exist.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn setitimer(which: libc::c_int, interval_ns: u64) -> CaseResult {
    let it = libc::itimerval {
        it_interval: timeval(interval_ns),
        it_value: timeval(interval_ns),
    };
    // SAFETY: `it` is a valid itimerval; the old value is not asked for.
    sys::cvt(unsafe { libc::setitimer(which, &it, std::ptr::null_mut()) }).ctx("setitimer")?;
    Ok(())
}

/// Disarms an interval timer when dropped, so that an early return never
/// leaves one running for the cases after this one.
struct Armed(libc::c_int);

impl Drop for Armed {
    fn drop(&mut self) {
        // A zero it_value disarms; nothing to do about an error here.
        let _ = setitimer(self.0, 0);
    }
}

pub fn timers(_cfg: &Config) -> CaseResult {
    sleeps()?;
    abs_sleeps()?;
    itimer_real()?;
    itimer_cpu()?;
    timerfd()?;
    concurrent_sleepers()?;
    Ok(())
}

/// Attempts at a timed step that fell short (too late, too few signals).
/// A host that does not run the guest for a while makes one attempt fall
/// short; a broken timer makes every attempt fall short.
const ATTEMPTS: u32 = 3;

/// Runs `step` until it does not fall short (`Ok(Err(why))`), at most
/// [`ATTEMPTS`] times; a hard failure (`Err`) ends at once. Returns the
/// result of the good attempt and its number.
fn attempts<T>(
    what: &str,
    mut step: impl FnMut() -> Result<Result<T, String>, Verdict>,
) -> Result<(T, u32), Verdict> {
    let mut whys = Vec::new();
    for attempt in 1..=ATTEMPTS {
        match step()? {
            Ok(t) => return Ok((t, attempt)),
            Err(why) => whys.push(why),
        }
    }
    fail!("{what}, {ATTEMPTS} attempts: {}", whys.join("; "))
}

/// Runs `step`, which returns how late it was (and fails by itself when
/// early), until it is at most `slack` late; see [`attempts`].
fn within_slack(
    what: &str,
    slack: u64,
    mut step: impl FnMut() -> Result<u64, Verdict>,
) -> Result<(u64, u32), Verdict> {
    attempts(what, || {
        let late = step()?;
        Ok(if late <= slack {
            Ok(late)
        } else {
            Err(format!(
                "{:.3} ms late (allowed {:.0} ms)",
                ms(late),
                ms(slack)
            ))
        })
    })
}

/// Relative nanosleep over 1 ms .. 200 ms.
fn sleeps() -> CaseResult {
    let mut report = Vec::new();
    for req_ms in [1u64, 2, 5, 10, 20, 50, 100, 200] {
        let req = req_ms * MS;
        let what = format!("nanosleep({req_ms} ms)");
        let (late, attempts) = within_slack(&what, slack_ns(req), || {
            let t0 = sys::now_ns();
            nanosleep(req).ctx(&what)?;
            let got = sys::now_ns() - t0;
            check!(got >= req, "{what} returned after {:.3} ms, early", ms(got));
            Ok(got - req)
        })?;
        let again = if attempts > 1 { "*" } else { "" };
        report.push(format!("{req_ms}:{:.2}{again}", ms(req + late)));
    }
    diag!(
        "nanosleep requested:measured ms {} (* = after a late attempt)",
        report.join(" ")
    );
    Ok(())
}

/// clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) to `deadline`.
fn clock_nanosleep_abs(deadline: u64) -> CaseResult {
    let ts = timespec(deadline);
    // SAFETY: `ts` is a valid timespec; no remainder for TIMER_ABSTIME.
    let r = unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    };
    // clock_nanosleep returns the error number instead of setting errno.
    check!(
        r == 0,
        "clock_nanosleep(TIMER_ABSTIME): {}",
        std::io::Error::from_raw_os_error(r)
    );
    Ok(())
}

/// clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME): wakes at the deadline,
/// not before, and returns at once for a deadline in the past.
fn abs_sleeps() -> CaseResult {
    let mut report = Vec::new();
    for req_ms in [3u64, 30] {
        let req = req_ms * MS;
        let what = format!("clock_nanosleep(TIMER_ABSTIME, now + {req_ms} ms)");
        let (late, _) = within_slack(&what, slack_ns(req), || {
            let deadline = sys::now_ns() + req;
            clock_nanosleep_abs(deadline)?;
            let now = sys::now_ns();
            check!(
                now >= deadline,
                "{what} returned {:.3} ms before the deadline",
                ms(deadline - now)
            );
            Ok(now - deadline)
        })?;
        report.push(format!("+{req_ms} ms: {:.2} ms late", ms(late)));
    }
    // A deadline in the past: no sleep at all. Were it taken as relative,
    // this would sleep for half the uptime (the guest may be up for less
    // than a second).
    let what = "clock_nanosleep(TIMER_ABSTIME) to a past deadline";
    let (took, _) = within_slack(what, 20 * MS, || {
        let t0 = sys::now_ns();
        clock_nanosleep_abs(t0 - (t0 / 2).min(1000 * MS))?;
        Ok(sys::now_ns() - t0)
    })?;
    report.push(format!("past deadline: returned in {:.2} ms", ms(took)));
    diag!("clock_nanosleep: {}", report.join(", "));
    Ok(())
}

/// User-mode work that the optimiser cannot remove, ~100 us.
fn spin_a_little(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x)
}

/// A gap this long between two looks at the clock while spinning means the
/// process did not run: the host did not run the guest, or the guest
/// kernel was busy elsewhere.
const STALL: u64 = 3 * MS;

/// Time the spinning process did not run: the gaps longer than [`STALL`].
#[derive(Default)]
struct Stalls(Vec<u64>);

impl Stalls {
    /// Expiries a periodic timer of `ival` can lose to these stalls. A
    /// timer whose signal (ITIMER_REAL) or tick (the CPU timers) is held
    /// up for `g` skips at most `g / ival` expiries.
    fn lost(&self, ival: u64) -> u64 {
        self.0.iter().map(|g| g / ival).sum()
    }
}

impl std::fmt::Display for Stalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} stalls of {:.1} ms in all, the longest {:.1} ms",
            self.0.len(),
            ms(self.0.iter().sum()),
            ms(self.0.iter().copied().max().unwrap_or(0))
        )
    }
}

/// Spins in user mode while `go_on(now)` holds, watching for stalls.
fn spin_while(mut go_on: impl FnMut(u64) -> bool) -> Stalls {
    let mut st = Stalls::default();
    let mut x = 1;
    let mut last = sys::now_ns();
    loop {
        x = spin_a_little(x);
        let now = sys::now_ns();
        if now - last > STALL {
            st.0.push(now - last);
        }
        last = now;
        if !go_on(now) {
            return st;
        }
    }
}

/// The least count of a periodic timer of `ival` over `span` (of elapsed
/// or CPU time) with these stalls: the intervals it could not have lost to
/// them, less one cut at the end, less 10 %.
fn least(span: u64, ival: u64, stalls: &Stalls) -> u64 {
    (span / ival).saturating_sub(stalls.lost(ival) + 1) * 9 / 10
}

/// Expiry times of SIGALRM, for the ITIMER_REAL check.
const MAX_STAMPS: usize = 256;
static ALRM_COUNT: AtomicUsize = AtomicUsize::new(0);
static ALRM_STAMPS: [AtomicU64; MAX_STAMPS] = [const { AtomicU64::new(0) }; MAX_STAMPS];

extern "C" fn on_alrm(_sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let i = ALRM_COUNT.fetch_add(1, SeqCst);
    if i < MAX_STAMPS {
        // clock_gettime is async-signal-safe.
        ALRM_STAMPS[i].store(sys::now_ns(), SeqCst);
    }
}

/// ITIMER_REAL every 10 ms for 500 ms while the process spins: SIGALRM
/// number `k` (from 1) comes no earlier than `k` intervals after arming,
/// and every interval in which the process ran produces one.
fn itimer_real() -> CaseResult {
    const IVAL: u64 = 10 * MS;
    const RUN: u64 = 500 * MS;
    let _h = Installed::with_flags(libc::SIGALRM, on_alrm, libc::SA_RESTART)?;
    let what = "ITIMER_REAL 10 ms";
    let (report, attempt) = attempts(what, || {
        ALRM_COUNT.store(0, SeqCst);
        let t0 = sys::now_ns();
        let armed = Armed(libc::ITIMER_REAL);
        setitimer(libc::ITIMER_REAL, IVAL)?;
        let stalls = spin_while(|now| now < t0 + RUN);
        // A SIGALRM pending at the disarming is delivered as setitimer
        // returns, before t1.
        drop(armed);
        let t1 = sys::now_ns();
        let n = ALRM_COUNT.load(SeqCst);
        let intervals = (t1 - t0) / IVAL;
        check!(n <= MAX_STAMPS, "{what}: {n} SIGALRM, far too many");
        let stamps: Vec<u64> = ALRM_STAMPS[..n].iter().map(|a| a.load(SeqCst)).collect();
        let late = stamps
            .iter()
            .enumerate()
            .map(|(k, &s)| s.saturating_sub(t0 + (k as u64 + 1) * IVAL))
            .max()
            .unwrap_or(0);
        // Linux re-arms ITIMER_REAL when SIGALRM is dequeued, forwarded to
        // the next multiple of the interval: the k-th signal can never
        // come before k intervals have passed.
        for (k, &s) in stamps.iter().enumerate() {
            let due = t0 + (k as u64 + 1) * IVAL;
            check!(
                s >= due,
                "{what}: SIGALRM {} came {:.3} ms early",
                k + 1,
                ms(due - s)
            );
        }
        check!(
            n as u64 <= intervals,
            "{what}: {n} SIGALRM in {:.1} ms, more than the {intervals} intervals",
            ms(t1 - t0)
        );
        let low = least(t1 - t0, IVAL, &stalls);
        let report = format!(
            "{n} SIGALRM in {:.1} ms ({intervals} intervals, at least {low} expected with \
             {stalls}); latest {:.2} ms after its interval",
            ms(t1 - t0),
            ms(late)
        );
        Ok(if n > 0 && n as u64 >= low {
            Ok(report)
        } else {
            Err(report)
        })
    })?;
    diag!("{what}: {report} (attempt {attempt})");
    Ok(())
}

static VTALRM_COUNT: AtomicUsize = AtomicUsize::new(0);
static PROF_COUNT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_vtalrm(_sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    VTALRM_COUNT.fetch_add(1, SeqCst);
}

extern "C" fn on_prof(_sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    PROF_COUNT.fetch_add(1, SeqCst);
}

/// User and system time of this process from getrusage(2), in ns.
fn rusage_ns() -> Result<(u64, u64), Verdict> {
    // SAFETY: rusage is plain data, filled in by getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    sys::cvt(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) }).ctx("getrusage")?;
    let ns = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1000;
    Ok((ns(ru.ru_utime), ns(ru.ru_stime)))
}

/// ITIMER_VIRTUAL and ITIMER_PROF at 10 ms while the process spins in user
/// mode for 300 ms of CPU time.
///
/// ITIMER_PROF runs on the process's CPU time and must fire about once per
/// interval. ITIMER_VIRTUAL runs on its user time, which the tick samples:
/// it must agree with the user time getrusage reports. UML 6.12 accounts
/// every tick as system time (its timer signal always arrives in the kernel
/// process, with kernel registers), so there the user time stays 0 and
/// ITIMER_VIRTUAL must not fire at all; should UML ever account user time,
/// the same check requires it to fire.
fn itimer_cpu() -> CaseResult {
    const IVAL: u64 = 10 * MS;
    const CPU: u64 = 300 * MS;
    const WALL_LIMIT: u64 = 5000 * MS;
    let _hv = Installed::with_flags(libc::SIGVTALRM, on_vtalrm, libc::SA_RESTART)?;
    let _hp = Installed::with_flags(libc::SIGPROF, on_prof, libc::SA_RESTART)?;
    let what = "ITIMER_PROF and ITIMER_VIRTUAL 10 ms";
    let (report, attempt) = attempts(what, || {
        VTALRM_COUNT.store(0, SeqCst);
        PROF_COUNT.store(0, SeqCst);
        let (u0, s0) = rusage_ns()?;
        let cpu0 = clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID);
        let t0 = sys::now_ns();
        let armed_v = Armed(libc::ITIMER_VIRTUAL);
        let armed_p = Armed(libc::ITIMER_PROF);
        setitimer(libc::ITIMER_VIRTUAL, IVAL)?;
        setitimer(libc::ITIMER_PROF, IVAL)?;
        // The clocks are read every ~100 us only, so nearly all the time is
        // user time.
        let stalls = spin_while(|now| {
            clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID) - cpu0 < CPU && now - t0 < WALL_LIMIT
        });
        drop(armed_v);
        drop(armed_p);
        let cpu = clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID) - cpu0;
        let wall = sys::now_ns() - t0;
        let (u1, s1) = rusage_ns()?;
        let (user, system) = (u1 - u0, s1 - s0);
        let (nv, np) = (VTALRM_COUNT.load(SeqCst), PROF_COUNT.load(SeqCst));
        let (nv, np) = (nv as u64, np as u64);
        let ticks = cpu / IVAL;
        let user_ticks = user / IVAL;
        check!(
            cpu >= CPU,
            "only {:.1} ms of CPU time in {:.1} ms of spinning",
            ms(cpu),
            ms(wall)
        );
        // ITIMER_PROF expires on the process's CPU time, the very clock read
        // above: n expiries need n intervals of it.
        check!(
            np <= ticks,
            "ITIMER_PROF: {np} SIGPROF in {:.1} ms of CPU time, more than {ticks} intervals",
            ms(cpu)
        );
        // ITIMER_VIRTUAL counts the same tick-sampled user time as
        // getrusage; allow a tick or two.
        check!(
            nv <= user_ticks + 2,
            "ITIMER_VIRTUAL: {nv} SIGVTALRM, but only {:.0} ms of user time",
            ms(user)
        );
        // The guest charges a stall to the process that was running.
        let least_p = least(cpu, IVAL, &stalls);
        let least_v = least(user, IVAL, &stalls);
        let report = format!(
            "{np} SIGPROF in {:.1} ms of CPU time (at least {least_p} expected), {nv} SIGVTALRM \
             in {:.0} ms of user time (at least {least_v}); getrusage system {:.0} ms; {:.1} ms \
             wall, {stalls}{}",
            ms(cpu),
            ms(user),
            ms(system),
            ms(wall),
            if user == 0 {
                "; no user time at all (UML accounts every tick as system time)"
            } else {
                ""
            }
        );
        Ok(if np > 0 && np >= least_p && nv >= least_v {
            Ok(report)
        } else {
            Err(report)
        })
    })?;
    diag!("{what}: {report} (attempt {attempt})");
    Ok(())
}

/// A periodic timerfd counts every expiry, also those nobody read: one
/// read after 100 ms returns exactly the intervals that passed.
fn timerfd() -> CaseResult {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const IVAL: u64 = 5 * MS;
    // SAFETY: timerfd_create has no memory preconditions.
    let fd = sys::cvt(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) })
        .ctx("timerfd_create")?;
    // SAFETY: timerfd_create returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let spec = libc::itimerspec {
        it_interval: timespec(IVAL),
        it_value: timespec(IVAL),
    };
    let a0 = sys::now_ns();
    // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
    sys::cvt(unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) })
        .ctx("timerfd_settime")?;
    let a1 = sys::now_ns();
    nanosleep(100 * MS).ctx("nanosleep")?;
    let mut buf = [0u8; 8];
    let r0 = sys::now_ns();
    let n = sys::read_fd(fd.as_raw_fd(), &mut buf).ctx("read timerfd")?;
    let r1 = sys::now_ns();
    check!(n == 8, "read of a timerfd returned {n} bytes, expected 8");
    let got = u64::from_ne_bytes(buf);
    // Armed somewhere in [a0, a1], read somewhere in [r0, r1].
    let lo = (r0 - a1) / IVAL;
    let hi = (r1 - a0) / IVAL;
    diag!(
        "timerfd 5 ms: {got} expirations after {:.2} ms (expected {lo}..={hi})",
        ms(r0 - a1)
    );
    check!(
        got <= hi,
        "timerfd counted {got} expirations, at most {hi} intervals had passed"
    );
    // One fewer if the last expiry's interrupt had not run yet.
    check!(
        got + 1 >= lo,
        "timerfd counted {got} expirations, {lo} intervals had passed"
    );
    // The next read blocks until the next expiry, at most one interval on.
    let what = "a blocking read of a 5 ms timerfd";
    let mut waited = 0;
    within_slack(what, slack_ns(IVAL), || {
        let t0 = sys::now_ns();
        let n = sys::read_fd(fd.as_raw_fd(), &mut buf).ctx("read timerfd")?;
        waited = sys::now_ns() - t0;
        check!(n == 8, "read of a timerfd returned {n} bytes, expected 8");
        let got = u64::from_ne_bytes(buf);
        check!(got >= 1, "{what} returned 0 expirations");
        Ok(waited.saturating_sub(IVAL))
    })?;
    diag!("{what}: waited {:.2} ms", ms(waited));
    Ok(())
}

/// Processes sleeping at the same time: child `i` sleeps 10 times for
/// 20 + 5 i ms; each sleep is checked, and all together must take about as
/// long as the longest child, not the sum.
fn concurrent_sleepers() -> CaseResult {
    const CHILDREN: usize = 6;
    const ROUNDS: u64 = 10;
    /// Words per child in the shared page: total time, shortest and longest
    /// sleep (ns), number of sleeps beyond the slack.
    const WORDS: usize = 4;
    let req = |i: usize| (20 + 5 * i as u64) * MS;
    let shared = SharedWords::new(CHILDREN * WORDS).ctx("mmap shared")?;
    let words = shared.words();
    let mut reaper = Reaper::new();
    let t0 = sys::now_ns();
    let mut pids = Vec::new();
    for i in 0..CHILDREN {
        let slot = &words[i * WORDS..(i + 1) * WORDS];
        let pid = sys::fork_child(|| {
            let d = req(i);
            let (mut lo, mut hi, mut late) = (u64::MAX, 0, 0);
            let start = sys::now_ns();
            for _ in 0..ROUNDS {
                let s = sys::now_ns();
                if nanosleep(d).is_err() {
                    return 2;
                }
                let e = sys::now_ns() - s;
                lo = lo.min(e);
                hi = hi.max(e);
                late += u64::from(e > d + slack_ns(d));
            }
            slot[0].store(sys::now_ns() - start, SeqCst);
            slot[1].store(lo, SeqCst);
            slot[2].store(hi, SeqCst);
            slot[3].store(late, SeqCst);
            0
        })
        .ctx("fork")?;
        reaper.add(pid);
        pids.push(pid);
    }
    for (i, &pid) in pids.iter().enumerate() {
        let x = sys::wait_timeout(pid, Duration::from_secs(20));
        reaper.done(pid);
        let x = x.ctx("waitpid")?;
        check!(x == Exit::Code(0), "sleeper {i}: {x}");
    }
    let wall = sys::now_ns() - t0;
    let mut report = Vec::new();
    let mut serial = 0;
    for i in 0..CHILDREN {
        let d = req(i);
        let slot: Vec<u64> = words[i * WORDS..(i + 1) * WORDS]
            .iter()
            .map(|w| w.load(SeqCst))
            .collect();
        let (total, lo, hi, late) = (slot[0], slot[1], slot[2], slot[3]);
        serial += ROUNDS * d;
        report.push(format!(
            "{}ms x{ROUNDS}: {:.1} ms ({:.2}..{:.2})",
            d / MS,
            ms(total),
            ms(lo),
            ms(hi)
        ));
        check!(
            lo >= d,
            "sleeper {i}: a {} ms sleep took {:.3} ms, early",
            d / MS,
            ms(lo)
        );
        // A host hiccup makes one or two sleeps late, a broken timer all.
        check!(
            late <= 2,
            "sleeper {i}: {late} of {ROUNDS} sleeps of {} ms were more than {:.0} ms late \
             (longest {:.3} ms)",
            d / MS,
            ms(slack_ns(d)),
            ms(hi)
        );
    }
    diag!(
        "{CHILDREN} concurrent sleepers: {}; all in {:.1} ms (one after another: {:.0} ms)",
        report.join(", "),
        ms(wall),
        ms(serial)
    );
    // Sleeping does not hold the CPU, so the sleeps overlap: all together
    // take far less than one after another (the limit is half-way between
    // the longest child and the sum, room for a host hiccup).
    let longest = ROUNDS * req(CHILDREN - 1);
    let limit = longest + (serial - longest) / 2;
    check!(
        wall <= limit,
        "{CHILDREN} sleepers took {:.1} ms together; the longest sleeps {:.0} ms, all in a row \
         {:.0} ms",
        ms(wall),
        ms(longest),
        ms(serial)
    );
    Ok(())
}
