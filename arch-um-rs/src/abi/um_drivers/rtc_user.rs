// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing `arch/um/drivers/rtc_user.c` (declared in `rtc.h`):
//! the host half of the UML real-time clock's alarm, over
//! [`crate::host::rtc`].
//!
//! The kernel half (`rtc_kern.c`) calls [`uml_rtc_start`] at probe time
//! and requests an interrupt on the descriptor it returns; each alarm
//! makes that descriptor readable with an 8-byte count, which the
//! interrupt handler reads. Outside time-travel mode the descriptor is a
//! `timerfd` on the host's wall clock, set by [`uml_rtc_enable_alarm`];
//! since the host sends no `SIGIO` for a timerfd, the write-poll thread
//! watches it (`sigio_broken`, `add_sigio_fd`). In time-travel mode
//! (which a Rust-layer kernel cannot be configured with, see patch 0009,
//! but the interface is kept whole) it is one end of a socket pair and the
//! kernel's time-travel event writes the wake-up into the other,
//! [`uml_rtc_send_timetravel_alarm`].
//!
//! The return conventions are the C's: `uml_rtc_start` the descriptor or a
//! negative errno, `uml_rtc_enable_alarm` 0 or a negative errno; the
//! wake-up write is retried on `EINTR`, nothing else is.
//!
//! Divergences from the C, all on its failure paths:
//!
//! * A failed start closes what it made, once, and nothing else: the C
//!   closed the timerfd twice when `add_sigio_fd` failed, and when the
//!   socket pair could not be made it closed the descriptors its static
//!   array held, descriptor 0 (UML's standard input) before the first
//!   start.
//! * The descriptors are forgotten (-1) once closed, so a second stop, or
//!   a stop after a failed start, closes nothing.

use core::ffi::{c_int, c_ulonglong};
use core::sync::atomic::{AtomicI32, Ordering};
use std::os::fd::{AsRawFd, IntoRawFd};

use crate::host::rtc;

/// The os functions this file calls, in a kernel that exports this file.
#[cfg(all(feature = "kernel", feature = "os-um-drivers-rtc_user"))]
mod kern {
    use core::ffi::c_int;

    unsafe extern "C" {
        pub fn os_pipe(fds: *mut c_int, stream: c_int, close_on_exec: c_int) -> c_int;
        /// Declares that `fd` raises no `SIGIO`: the write-poll thread may
        /// watch it.
        pub fn sigio_broken(fd: c_int);
        /// Starts watching `fd` (declared broken before).
        pub fn add_sigio_fd(fd: c_int) -> c_int;
        pub fn ignore_sigio_fd(fd: c_int) -> c_int;
    }
}

/// Stand-ins for unit tests and kernels that keep `rtc_user.c`: the
/// write-poll thread's calls are recorded, and `add_sigio_fd` can be made
/// to fail.
#[cfg(not(all(feature = "kernel", feature = "os-um-drivers-rtc_user")))]
mod kern {
    use core::ffi::c_int;
    use core::sync::atomic::{AtomicI32, Ordering};
    use std::sync::Mutex;

    /// The calls of the sigio functions so far: name and descriptor.
    pub static SIGIO_CALLS: Mutex<Vec<(&'static str, c_int)>> = Mutex::new(Vec::new());
    /// What `add_sigio_fd` returns.
    pub static ADD_RESULT: AtomicI32 = AtomicI32::new(0);

    fn record(name: &'static str, fd: c_int) {
        SIGIO_CALLS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name, fd));
    }

    pub unsafe fn os_pipe(fds: *mut c_int, stream: c_int, close_on_exec: c_int) -> c_int {
        // SAFETY: forwarded.
        unsafe { crate::abi::file::os_pipe(fds, stream, close_on_exec) }
    }

    pub unsafe fn sigio_broken(fd: c_int) {
        record("sigio_broken", fd);
    }

    pub unsafe fn add_sigio_fd(fd: c_int) -> c_int {
        record("add_sigio_fd", fd);
        ADD_RESULT.load(Ordering::Relaxed)
    }

    pub unsafe fn ignore_sigio_fd(fd: c_int) -> c_int {
        record("ignore_sigio_fd", fd);
        0
    }
}

/// `uml_rtc_irq_fds`: the descriptor the kernel half reads, and in
/// time-travel mode the one the wake-ups are written to; -1 when closed.
static IRQ_FDS: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];

/// Closes the descriptor `slot` holds, if any, and forgets it.
fn close_slot(slot: &AtomicI32) {
    let fd = slot.swap(-1, Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: a descriptor this file opened and no longer hands out.
        unsafe { crate::host::file::close_raw(fd) };
    }
}

/// `void uml_rtc_send_timetravel_alarm(void)`: one wake-up (the 8-byte
/// count 1) into the time-travel socket pair, retried on `EINTR`; errors
/// are ignored, as in C.
#[cfg_attr(feature = "os-um-drivers-rtc_user", unsafe(no_mangle))]
pub extern "C" fn uml_rtc_send_timetravel_alarm() {
    let _ = rtc::send_wakeup(IRQ_FDS[1].load(Ordering::Relaxed));
}

/// `int uml_rtc_start(bool timetravel)`: the descriptor the alarm makes
/// readable, or a negative errno. Outside time-travel mode a timerfd,
/// watched by the write-poll thread; in it, a close-on-exec stream socket
/// pair.
#[cfg_attr(feature = "os-um-drivers-rtc_user", unsafe(no_mangle))]
pub extern "C" fn uml_rtc_start(timetravel: bool) -> c_int {
    if timetravel {
        let mut fds: [c_int; 2] = [-1; 2];
        // SAFETY: room for two descriptors.
        let err = unsafe { kern::os_pipe(fds.as_mut_ptr(), 1, 1) };
        if err != 0 {
            return err;
        }
        IRQ_FDS[0].store(fds[0], Ordering::Relaxed);
        IRQ_FDS[1].store(fds[1], Ordering::Relaxed);
        return fds[0];
    }
    let timer = match rtc::alarm_timer() {
        Ok(t) => t,
        Err(e) => return -(e as c_int),
    };
    let fd = timer.as_raw_fd();
    // SAFETY: os functions on our descriptor.
    let err = unsafe {
        kern::sigio_broken(fd);
        kern::add_sigio_fd(fd)
    };
    if err < 0 {
        // The timer is closed once, on drop; it was never watched.
        return err;
    }
    IRQ_FDS[0].store(timer.into_raw_fd(), Ordering::Relaxed);
    fd
}

/// `int uml_rtc_enable_alarm(unsigned long long delta_seconds)`: the
/// timer fires once, `delta_seconds` from now (0 disarms it); 0 or a
/// negative errno.
#[cfg_attr(feature = "os-um-drivers-rtc_user", unsafe(no_mangle))]
pub extern "C" fn uml_rtc_enable_alarm(delta_seconds: c_ulonglong) -> c_int {
    match rtc::arm(IRQ_FDS[0].load(Ordering::Relaxed), delta_seconds) {
        Ok(()) => 0,
        Err(e) => -(e as c_int),
    }
}

/// `void uml_rtc_disable_alarm(void)`: disarms the timer; errors are
/// ignored, as in C.
#[cfg_attr(feature = "os-um-drivers-rtc_user", unsafe(no_mangle))]
pub extern "C" fn uml_rtc_disable_alarm() {
    let _ = uml_rtc_enable_alarm(0);
}

/// `void uml_rtc_stop(bool timetravel)`: the write-poll thread stops
/// watching the timer (or the wake-up end of the pair is closed), then the
/// kernel half's descriptor is closed.
#[cfg_attr(feature = "os-um-drivers-rtc_user", unsafe(no_mangle))]
pub extern "C" fn uml_rtc_stop(timetravel: bool) {
    if timetravel {
        close_slot(&IRQ_FDS[1]);
    } else {
        let fd = IRQ_FDS[0].load(Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: an os function on our descriptor.
            unsafe { kern::ignore_sigio_fd(fd) };
        }
    }
    close_slot(&IRQ_FDS[0]);
}

#[cfg(all(test, not(feature = "kernel")))]
mod tests {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use super::*;

    /// Serialises the tests: the descriptors are the file's statics.
    static RTC: Mutex<()> = Mutex::new(());

    fn lock() -> std::sync::MutexGuard<'static, ()> {
        RTC.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sigio_calls_since(n: usize) -> Vec<(&'static str, c_int)> {
        kern::SIGIO_CALLS.lock().unwrap_or_else(|e| e.into_inner())[n..].to_vec()
    }

    fn sigio_calls() -> usize {
        kern::SIGIO_CALLS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Waits up to `ms` for `fd` to become readable.
    fn readable_within(fd: c_int, ms: c_int) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        unsafe { libc::poll(&mut p, 1, ms) == 1 }
    }

    /// What the interrupt handler reads: 8 bytes.
    fn read_count(fd: c_int) -> u64 {
        let mut c = [0u8; 8];
        assert_eq!(crate::host::file::read(fd, &mut c), Ok(8));
        u64::from_ne_bytes(c)
    }

    use crate::host::file::fd_probe::{closed, identity};

    #[test]
    fn the_alarm_fires_after_its_delay() {
        let _g = lock();
        let calls = sigio_calls();
        let fd = uml_rtc_start(false);
        assert!(fd >= 0, "{fd}");
        assert_eq!(
            sigio_calls_since(calls),
            [("sigio_broken", fd), ("add_sigio_fd", fd)],
            "the timer is handed to the write-poll thread"
        );
        assert!(!readable_within(fd, 0));
        let start = Instant::now();
        assert_eq!(uml_rtc_enable_alarm(1), 0);
        assert!(!readable_within(fd, 500), "fired early");
        assert!(readable_within(fd, 3000), "did not fire");
        assert!(start.elapsed() >= Duration::from_millis(990));
        assert_eq!(read_count(fd), 1);
        // Once only.
        assert!(!readable_within(fd, 1200));
        let id = identity(fd);
        let calls = sigio_calls();
        uml_rtc_stop(false);
        assert_eq!(sigio_calls_since(calls), [("ignore_sigio_fd", fd)]);
        assert!(closed(fd, id));
        // A second stop closes nothing.
        uml_rtc_stop(false);
        assert_eq!(sigio_calls_since(calls).len(), 1);
    }

    #[test]
    fn disabling_cancels_the_alarm() {
        let _g = lock();
        let fd = uml_rtc_start(false);
        assert!(fd >= 0, "{fd}");
        assert_eq!(uml_rtc_enable_alarm(2), 0);
        uml_rtc_disable_alarm();
        assert_eq!(rtc::remaining_ns(fd), Ok(0));
        assert!(!readable_within(fd, 2600), "a disabled alarm fired");
        // Re-armed and updated: the last setting counts.
        assert_eq!(uml_rtc_enable_alarm(100), 0);
        assert!(rtc::remaining_ns(fd).unwrap() > 99_000_000_000);
        assert_eq!(uml_rtc_enable_alarm(1), 0);
        assert!(readable_within(fd, 3000));
        assert_eq!(read_count(fd), 1);
        // An alarm in the past (the kernel half's unsigned difference).
        assert_eq!(uml_rtc_enable_alarm(u64::MAX), -libc::EINVAL);
        uml_rtc_stop(false);
        // Stopped: nothing to arm.
        assert_eq!(uml_rtc_enable_alarm(1), -libc::EBADF);
    }

    #[test]
    fn the_timetravel_pair_delivers_an_eight_byte_wakeup() {
        let _g = lock();
        let calls = sigio_calls();
        let fd = uml_rtc_start(true);
        assert!(fd >= 0, "{fd}");
        assert!(sigio_calls_since(calls).is_empty(), "a socket raises SIGIO");
        let other = IRQ_FDS[1].load(Ordering::Relaxed);
        for end in [fd, other] {
            // SAFETY: F_GETFD takes no argument.
            let flags = unsafe { libc::fcntl(end, libc::F_GETFD) };
            assert_ne!(flags & libc::FD_CLOEXEC, 0, "os_pipe(fds, 1, 1)");
        }
        assert!(!readable_within(fd, 0));
        uml_rtc_send_timetravel_alarm();
        assert!(readable_within(fd, 1000));
        assert_eq!(read_count(fd), 1);
        uml_rtc_send_timetravel_alarm();
        uml_rtc_send_timetravel_alarm();
        assert_eq!(read_count(fd), 1);
        assert_eq!(read_count(fd), 1);
        let (id0, id1) = (identity(fd), identity(other));
        uml_rtc_stop(true);
        assert!(closed(fd, id0) && closed(other, id1));
        assert!(sigio_calls_since(calls).is_empty());
        // Stopped: the wake-up goes nowhere, quietly.
        uml_rtc_send_timetravel_alarm();
    }

    #[test]
    fn a_failed_start_closes_the_timer_once() {
        let _g = lock();
        kern::ADD_RESULT.store(-libc::ENOMEM, Ordering::Relaxed);
        let calls = sigio_calls();
        let err = uml_rtc_start(false);
        kern::ADD_RESULT.store(0, Ordering::Relaxed);
        assert_eq!(err, -libc::ENOMEM);
        let seen = sigio_calls_since(calls);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(IRQ_FDS[0].load(Ordering::Relaxed), -1);
        assert_eq!(IRQ_FDS[1].load(Ordering::Relaxed), -1);
        // The kernel half's cleanup after a failed start touches nothing
        // (the C closed descriptor 0 here before any start).
        let stdin = crate::host::file::stat_fd(0).map(|st| (st.st_dev, st.st_ino));
        uml_rtc_stop(true);
        uml_rtc_stop(false);
        assert_eq!(
            crate::host::file::stat_fd(0).map(|st| (st.st_dev, st.st_ino)),
            stdin
        );
        assert_eq!(sigio_calls_since(calls).len(), 2);
    }
}
