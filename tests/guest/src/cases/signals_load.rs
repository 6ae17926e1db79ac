// SPDX-License-Identifier: GPL-2.0
//! Signals under load: four children queue thousands of real-time signals
//! with payloads at the parent while two more processes burn CPU and make
//! system calls. The parent takes three of the signals with sigtimedwait(2)
//! and the fourth with a handler (which interrupts the sigtimedwait); every
//! real-time signal must arrive exactly once, in order per sender, with its
//! payload, sender pid and SI_QUEUE. SIGUSR1, sent now and then, coalesces,
//! but one must arrive after the last send. Then a signal interrupts a
//! blocking read, once without SA_RESTART (EINTR) and once with (the read
//! goes on).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use super::Config;
use super::signals::{Blocked, Installed};
use crate::ktap::{CaseResult, Context};
use crate::sys::{self, Exit, Reaper, SharedWords};
use crate::{check, diag, fail};

/// Senders of real-time signals; the last one's signal goes to a handler.
const SENDERS: usize = 4;
const HANDLED: usize = SENDERS - 1;
/// Real-time signals per sender.
const PER_SENDER: u32 = 1500;
/// A sender also sends SIGUSR1 after every this many.
const USR1_EVERY: u32 = 100;
/// Words per sender in the shared page: signals queued, EAGAIN retries,
/// SIGUSR1 sent, time of the last SIGUSR1.
const WORDS: usize = 4;
/// Limit for the whole exchange (a few seconds in UML).
const LIMIT: Duration = Duration::from_secs(60);

fn rt_sig(i: usize) -> libc::c_int {
    libc::SIGRTMIN() + i as libc::c_int
}

/// A check tag in the payload's upper half, so that a payload corrupted
/// into another valid-looking one is still caught.
fn tag(i: usize, seq: u32) -> u64 {
    let mut z = (i as u64) << 32 | u64::from(seq);
    z = (z ^ (z >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (z ^ (z >> 29)) & 0xFFFF_FFFF
}

/// The payload of sender `i`'s signal number `seq`: tag, sender, sequence.
fn payload(i: usize, seq: u32) -> u64 {
    tag(i, seq) << 32 | (i as u64) << 24 | u64::from(seq)
}

/// Splits a payload into (sender, seq) if its tag is right.
fn decode(v: u64) -> Option<(usize, u32)> {
    let i = ((v >> 24) & 0xFF) as usize;
    let seq = (v & 0xFF_FFFF) as u32;
    (i < SENDERS && tag(i, seq) == v >> 32).then_some((i, seq))
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn sigset(sigs: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in sigs {
        // SAFETY: `set` is a valid sigset and `s` a valid signal number.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    set
}

/// Sets the signals to SIG_IGN and back when dropped: ignoring a signal
/// discards it if pending, so that no signal still queued when the case
/// ends (after a failure) kills the suite once the mask is restored.
struct Discard(Vec<libc::c_int>);

impl Drop for Discard {
    fn drop(&mut self) {
        for &s in &self.0 {
            // SAFETY: sigaction is plain data; zero is SIG_DFL with no flags.
            let mut ign: libc::sigaction = unsafe { std::mem::zeroed() };
            ign.sa_sigaction = libc::SIG_IGN;
            // SAFETY: as above.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: valid sigaction pointers; the old action is put back unchanged.
            unsafe {
                libc::sigaction(s, &ign, &mut old);
                libc::sigaction(s, &old, std::ptr::null_mut());
            }
        }
    }
}

/// Progress of the handled sender, kept by the handler.
static H_NEXT: AtomicU32 = AtomicU32::new(0);
static H_PID: AtomicI32 = AtomicI32::new(0);
/// The first wrong delivery: value, si_code, si_pid, expected seq (BAD_SET
/// says whether there was one).
static H_BAD_SET: AtomicUsize = AtomicUsize::new(0);
static H_BAD_VALUE: AtomicU64 = AtomicU64::new(0);
static H_BAD_CODE: AtomicI32 = AtomicI32::new(0);
static H_BAD_PID: AtomicI32 = AtomicI32::new(0);
static H_BAD_EXPECT: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_rt_handled(_sig: libc::c_int, info: *mut libc::siginfo_t, _c: *mut libc::c_void) {
    // SAFETY: SA_SIGINFO gives a valid siginfo; for sigqueue(3), si_value and si_pid are the sender's.
    let (v, code, pid) = unsafe {
        (
            (*info).si_value().sival_ptr as u64,
            (*info).si_code,
            (*info).si_pid(),
        )
    };
    let expect = H_NEXT.load(SeqCst);
    let ok =
        decode(v) == Some((HANDLED, expect)) && code == libc::SI_QUEUE && pid == H_PID.load(SeqCst);
    if ok {
        H_NEXT.store(expect + 1, SeqCst);
    } else if H_BAD_SET.fetch_add(1, SeqCst) == 0 {
        H_BAD_VALUE.store(v, SeqCst);
        H_BAD_CODE.store(code, SeqCst);
        H_BAD_PID.store(pid, SeqCst);
        H_BAD_EXPECT.store(expect, SeqCst);
    }
}

/// Queues sender `i`'s signals at `parent`, retrying while the queue is full.
fn sender(i: usize, parent: libc::pid_t, slot: &[AtomicU64]) -> i32 {
    let sig = rt_sig(i);
    let usr1 = |slot: &[AtomicU64]| {
        slot[3].store(sys::now_ns(), SeqCst);
        slot[2].fetch_add(1, SeqCst);
        // SAFETY: kill(2) to our parent.
        unsafe { libc::kill(parent, libc::SIGUSR1) }
    };
    for seq in 0..PER_SENDER {
        let val = libc::sigval {
            sival_ptr: payload(i, seq) as usize as *mut libc::c_void,
        };
        // SAFETY: sigqueue(3) to our parent with a plain value.
        while unsafe { libc::sigqueue(parent, sig, val) } != 0 {
            if errno() != libc::EAGAIN {
                return 2;
            }
            // The parent's queue is full: let it run.
            slot[1].fetch_add(1, SeqCst);
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
        slot[0].store(u64::from(seq) + 1, SeqCst);
        if (seq + 1) % USR1_EVERY == 0 && usr1(slot) != 0 {
            return 3;
        }
    }
    // The last send of all: at least one SIGUSR1 must arrive after it.
    if usr1(slot) != 0 {
        return 3;
    }
    0
}

/// Load beside the senders: one process spins in user mode, one makes
/// system calls; both run until killed.
fn burner() -> i32 {
    let mut x = 1u64;
    loop {
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        std::hint::black_box(x);
    }
}

fn syscaller() -> i32 {
    loop {
        // SAFETY: getppid and sched_yield have no preconditions.
        unsafe {
            libc::getppid();
            libc::sched_yield();
        }
        let _ = std::fs::metadata("/proc/self/stat");
    }
}

pub fn signals_load(_cfg: &Config) -> CaseResult {
    rt_storm()?;
    interrupted_read(false)?;
    interrupted_read(true)?;
    Ok(())
}

/// The parent's side of the storm: what arrived so far by sigtimedwait.
struct Received<'a> {
    /// The senders' pids.
    pids: &'a [libc::pid_t],
    /// Next sequence number due from each sigtimedwait sender.
    next: [u32; HANDLED],
    usr1: u64,
    /// When the last SIGUSR1 was taken.
    last_usr1: u64,
}

impl Received<'_> {
    fn all_in(&self) -> bool {
        self.next.iter().all(|&n| n == PER_SENDER) && H_NEXT.load(SeqCst) == PER_SENDER
    }

    /// Checks one signal from sigtimedwait.
    fn take(&mut self, info: &libc::siginfo_t) -> CaseResult {
        let sig = info.si_signo;
        // SAFETY: the kernel filled in the siginfo of a signal sent by kill or sigqueue.
        let pid = unsafe { info.si_pid() };
        if sig == libc::SIGUSR1 {
            self.usr1 += 1;
            self.last_usr1 = sys::now_ns();
            check!(
                info.si_code == libc::SI_USER,
                "SIGUSR1 with si_code {}, expected SI_USER",
                info.si_code
            );
            check!(
                self.pids.contains(&pid),
                "SIGUSR1 from pid {pid}, not a sender ({:?})",
                self.pids
            );
            return Ok(());
        }
        let Some(i) = (0..HANDLED).find(|&i| rt_sig(i) == sig) else {
            fail!("sigtimedwait returned signal {sig}, which it did not wait for");
        };
        // SAFETY: as above; for sigqueue(3) si_value is the sender's.
        let v = unsafe { info.si_value().sival_ptr } as u64;
        check!(
            info.si_code == libc::SI_QUEUE,
            "SIGRTMIN+{i} with si_code {}, expected SI_QUEUE",
            info.si_code
        );
        check!(
            pid == self.pids[i],
            "SIGRTMIN+{i} from pid {pid}, expected sender {i} (pid {})",
            self.pids[i]
        );
        let due = self.next[i];
        match decode(v) {
            Some((j, seq)) if j == i && seq == due => self.next[i] += 1,
            Some((j, seq)) if j == i && seq < due => {
                fail!("SIGRTMIN+{i}: signal {seq} of sender {i} arrived again (next due {due})")
            }
            Some((j, seq)) if j == i => fail!(
                "SIGRTMIN+{i}: signal {seq} of sender {i} arrived when {due} was due (lost or \
                 out of order)"
            ),
            Some((j, seq)) => fail!("SIGRTMIN+{i} carried sender {j}'s payload (signal {seq})"),
            None => fail!("SIGRTMIN+{i} carried a corrupt payload {v:#x}"),
        }
        Ok(())
    }
}

/// sigtimedwait(2) on `set`: the signal, or the errno (EAGAIN on timeout,
/// EINTR when a handler ran).
fn sigtimedwait(set: &libc::sigset_t, timeout: Duration) -> Result<libc::siginfo_t, i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: siginfo_t is plain data, filled in by sigtimedwait.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sigset, siginfo and timespec pointers.
    if unsafe { libc::sigtimedwait(set, &mut info, &ts) } == -1 {
        Err(errno())
    } else {
        Ok(info)
    }
}

fn rt_storm() -> CaseResult {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let waited: Vec<libc::c_int> = (0..HANDLED).map(rt_sig).chain([libc::SIGUSR1]).collect();
    // Blocked before fork, so that nothing sent is lost or kills us.
    let _blocked = Blocked::new(&waited)?;
    let set = sigset(&waited);
    H_NEXT.store(0, SeqCst);
    H_BAD_SET.store(0, SeqCst);
    H_PID.store(0, SeqCst);
    let _handler = Installed::new(rt_sig(HANDLED), on_rt_handled)?;
    let _discard = Discard(waited.clone());
    let shared = SharedWords::new(SENDERS * WORDS).ctx("mmap shared")?;
    let words = shared.words();
    let slot = |i: usize, k: usize| words[i * WORDS + k].load(SeqCst);
    let mut reaper = Reaper::new();

    for load in [burner as fn() -> i32, syscaller] {
        let pid = sys::fork_child(load).ctx("fork load")?;
        reaper.add(pid);
    }
    let t0 = sys::now_ns();
    let mut pids = Vec::new();
    // The handler checks the sender's pid, known once fork returns: hold
    // the handled signal back until then.
    let hold = Blocked::new(&[rt_sig(HANDLED)])?;
    for i in 0..SENDERS {
        let slot = &words[i * WORDS..(i + 1) * WORDS];
        let pid = sys::fork_child(|| sender(i, me, slot)).ctx("fork sender")?;
        reaper.add(pid);
        pids.push(pid);
    }
    H_PID.store(pids[HANDLED], SeqCst);
    drop(hold);

    let mut got = Received {
        pids: &pids,
        next: [0; HANDLED],
        usr1: 0,
        last_usr1: 0,
    };
    let deadline = t0 + LIMIT.as_nanos() as u64;
    let mut eintr = 0u64;
    while !got.all_in() && H_BAD_SET.load(SeqCst) == 0 {
        match sigtimedwait(&set, Duration::from_secs(1)) {
            Ok(info) => got.take(&info)?,
            // The handled signal interrupted the wait.
            Err(libc::EINTR) => eintr += 1,
            Err(libc::EAGAIN) => {}
            Err(e) => fail!("sigtimedwait: {}", std::io::Error::from_raw_os_error(e)),
        }
        check!(
            sys::now_ns() < deadline,
            "not all signals within {LIMIT:?}: received per sender {:?} + handled {}; queued {:?}",
            got.next,
            H_NEXT.load(SeqCst),
            (0..SENDERS).map(|i| slot(i, 0)).collect::<Vec<_>>()
        );
    }
    let t_recv = sys::now_ns();
    check_handled()?;
    for (i, &pid) in pids.iter().enumerate() {
        let x = sys::wait_timeout(pid, Duration::from_secs(20));
        reaper.done(pid);
        let x = x.ctx("waitpid sender")?;
        check!(x == Exit::Code(0), "sender {i}: {x}");
    }
    // The senders are gone: anything still pending is one too many (a
    // real-time signal fails in take() as arrived again), but SIGUSR1.
    loop {
        match sigtimedwait(&set, Duration::ZERO) {
            Ok(info) => got.take(&info)?,
            Err(libc::EINTR) => {}
            Err(libc::EAGAIN) => break,
            Err(e) => fail!("sigtimedwait: {}", std::io::Error::from_raw_os_error(e)),
        }
    }
    check_handled()?;
    drop(reaper);

    let eagain: Vec<u64> = (0..SENDERS).map(|i| slot(i, 1)).collect();
    let usr1_sent: u64 = (0..SENDERS).map(|i| slot(i, 2)).sum();
    let last_usr1_sent = (0..SENDERS).map(|i| slot(i, 3)).max().unwrap_or(0);
    for i in 0..SENDERS {
        check!(
            slot(i, 0) == u64::from(PER_SENDER),
            "sender {i} queued {} signals, expected {PER_SENDER}",
            slot(i, 0)
        );
    }
    let (usr1, last_usr1) = (got.usr1, got.last_usr1);
    diag!(
        "{SENDERS}x{PER_SENDER} SIGRTMIN+n in {:.0} ms beside a CPU burner and a syscall loop; \
         queue-full retries {eagain:?}; sigtimedwait interrupted by the handler {eintr} times; \
         SIGUSR1 {usr1} received of {usr1_sent} sent",
        (t_recv - t0) as f64 / 1e6
    );
    check!(usr1 >= 1, "no SIGUSR1 arrived of {usr1_sent} sent");
    check!(
        usr1 <= usr1_sent,
        "{usr1} SIGUSR1 arrived, only {usr1_sent} were sent"
    );
    check!(
        last_usr1 >= last_usr1_sent,
        "the last SIGUSR1 arrived {:.3} ms before the last one was sent: that one was lost",
        (last_usr1_sent - last_usr1) as f64 / 1e6
    );
    Ok(())
}

/// The handler saw every signal of the handled sender once and in order.
fn check_handled() -> CaseResult {
    if H_BAD_SET.load(SeqCst) != 0 {
        let v = H_BAD_VALUE.load(SeqCst);
        fail!(
            "SIGRTMIN+{HANDLED} handler: got payload {v:#x} ({:?}), si_code {}, si_pid {} while \
             signal {} of sender {HANDLED} (pid {}) was due",
            decode(v),
            H_BAD_CODE.load(SeqCst),
            H_BAD_PID.load(SeqCst),
            H_BAD_EXPECT.load(SeqCst),
            H_PID.load(SeqCst)
        );
    }
    let n = H_NEXT.load(SeqCst);
    check!(
        n == PER_SENDER,
        "SIGRTMIN+{HANDLED} handler saw {n} signals, expected {PER_SENDER}"
    );
    Ok(())
}

static USR2_HITS: AtomicUsize = AtomicUsize::new(0);
static USR2_AT: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_usr2(_sig: libc::c_int, _info: *mut libc::siginfo_t, _c: *mut libc::c_void) {
    USR2_AT.store(sys::now_ns(), SeqCst);
    USR2_HITS.fetch_add(1, SeqCst);
}

/// Whether /proc says `pid` is sleeping (state S), polled for up to 5 s.
fn wait_sleeping(pid: libc::pid_t) -> bool {
    let path = format!("/proc/{pid}/stat");
    let deadline = sys::now_ns() + 5_000_000_000;
    while sys::now_ns() < deadline {
        if let Ok(s) = std::fs::read_to_string(&path) {
            // The state follows the parenthesised command name.
            if s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next())
                == Some("S")
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// A child waits until the parent blocks in read(2) on an empty pipe, sends
/// SIGUSR2 (handled), and writes a byte into the pipe 100 ms later. Without
/// SA_RESTART the read fails with EINTR and the byte comes with the next
/// read; with SA_RESTART the read goes on and returns the byte.
fn interrupted_read(restart: bool) -> CaseResult {
    const LATER: Duration = Duration::from_millis(100);
    let flags = if restart { libc::SA_RESTART } else { 0 };
    let name = if restart {
        "with SA_RESTART"
    } else {
        "without SA_RESTART"
    };
    let _h = Installed::with_flags(libc::SIGUSR2, on_usr2, flags)?;
    USR2_HITS.store(0, SeqCst);
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let (r, w) = sys::pipe().ctx("pipe")?;
    let wfd = w.as_raw_fd();
    let mut reaper = Reaper::new();
    let pid = sys::fork_child(|| {
        if !wait_sleeping(parent) {
            return 3;
        }
        // SAFETY: kill(2) to our parent.
        if unsafe { libc::kill(parent, libc::SIGUSR2) } != 0 {
            return 4;
        }
        std::thread::sleep(LATER);
        if sys::write_all_fd(wfd, b"x").is_err() {
            return 5;
        }
        0
    })
    .ctx("fork")?;
    reaper.add(pid);
    drop(w);
    let mut b = [0u8; 1];
    // Not sys::read_fd: that one retries on EINTR.
    // SAFETY: `b` is valid for a write of one byte.
    let n = unsafe { libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
    let err = errno();
    let t1 = sys::now_ns();
    let (hits, at) = (USR2_HITS.load(SeqCst), USR2_AT.load(SeqCst));
    let x = sys::wait_timeout(pid, Duration::from_secs(20));
    reaper.done(pid);
    let x = x.ctx("waitpid")?;
    check!(
        x == Exit::Code(0),
        "{name}: the signalling child: {x} (3: the parent never slept)"
    );
    check!(hits == 1, "{name}: the SIGUSR2 handler ran {hits} times");
    let read_result = if n < 0 {
        format!("{}", std::io::Error::from_raw_os_error(err))
    } else {
        format!("{n} byte(s)")
    };
    if restart {
        check!(
            n == 1 && b[0] == b'x',
            "read {name}: {read_result}, expected the byte written after the signal"
        );
        let after = t1.saturating_sub(at);
        diag!(
            "read {name}: returned the byte {:.1} ms after the handler ran",
            after as f64 / 1e6
        );
        // It went on waiting for the byte, which came LATER after the signal.
        check!(
            after >= LATER.as_nanos() as u64 / 2,
            "read {name} returned {:.1} ms after the handler ran, before the byte was written",
            after as f64 / 1e6
        );
    } else {
        check!(
            n == -1 && err == libc::EINTR,
            "read {name}: {read_result}, expected EINTR"
        );
        // Nothing was lost: the byte is there for the next read.
        let n = sys::read_fd(r.as_raw_fd(), &mut b).ctx("read after EINTR")?;
        check!(
            n == 1 && b[0] == b'x',
            "read after EINTR: {n} byte(s), expected the byte written after the signal"
        );
        diag!(
            "read {name}: EINTR {:.1} ms after the handler ran",
            t1.saturating_sub(at) as f64 / 1e6
        );
    }
    Ok(())
}
