// SPDX-License-Identifier: GPL-2.0
//! The host side of UML's real-time clock alarm: a `timerfd` on the
//! host's `CLOCK_REALTIME` (see timerfd_create(2)), or, in time-travel
//! mode, a socket pair the kernel writes its own wake-ups into.
//!
//! Either way the kernel's interrupt handler reads one 8-byte count from
//! the descriptor when the alarm fires: the timer's expiration count, or
//! the [`TIMETRAVEL_WAKEUP`] written by [`send_wakeup`].

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::host::file::retry_eintr;

/// What a time-travel wake-up writes: one expiration.
pub const TIMETRAVEL_WAKEUP: u64 = 1;

/// A close-on-exec `timerfd` on the host's wall clock, disarmed.
pub fn alarm_timer() -> Result<OwnedFd, Errno> {
    // SAFETY: no pointers; the result is a new descriptor or -1.
    let fd = unsafe { libc::timerfd_create(libc::CLOCK_REALTIME, libc::TFD_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Arms the timer `fd` to fire once, `secs` seconds from now (relative,
/// no interval); 0 disarms it. The count is the kernel's `unsigned long
/// long`, stored in `time_t` as C's assignment does: a count above
/// `i64::MAX` (an alarm in the past, computed unsigned) becomes negative,
/// which the host refuses with `EINVAL`.
pub fn arm(fd: RawFd, secs: u64) -> Result<(), Errno> {
    let it = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: secs as libc::time_t,
            tv_nsec: 0,
        },
    };
    // SAFETY: `it` is a valid itimerspec; a NULL old value is allowed.
    if unsafe { libc::timerfd_settime(fd, 0, &it, core::ptr::null_mut()) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The time left before the timer `fd` fires, in nanoseconds; 0 when it
/// is disarmed.
pub fn remaining_ns(fd: RawFd) -> Result<u64, Errno> {
    let mut it = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
    };
    // SAFETY: `it` is a valid, writable itimerspec.
    if unsafe { libc::timerfd_gettime(fd, &mut it) } < 0 {
        return Err(Errno::last());
    }
    Ok(crate::host::timer::timespec_ns(&it.it_value) as u64)
}

/// Writes one time-travel wake-up (the 8 bytes of [`TIMETRAVEL_WAKEUP`])
/// to `fd`, retrying when interrupted. The count of bytes written, as the
/// C's unchecked `write` gave it.
pub fn send_wakeup(fd: RawFd) -> Result<usize, Errno> {
    let bytes = TIMETRAVEL_WAKEUP.to_ne_bytes();
    retry_eintr(|| crate::host::file::write(fd, &bytes))
}

/// Reads the 8-byte count the kernel's interrupt handler reads: the
/// number of expirations, or what [`send_wakeup`] wrote. `EAGAIN` on a
/// non-blocking descriptor with nothing to read.
pub fn read_count(fd: RawFd) -> Result<u64, Errno> {
    let mut buf = [0u8; 8];
    let n = retry_eintr(|| crate::host::file::read(fd, &mut buf))?;
    if n != buf.len() {
        return Err(Errno::EIO);
    }
    Ok(u64::from_ne_bytes(buf))
}

#[cfg(test)]
mod tests {
    use core::ffi::c_int;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    use super::*;

    fn readable_within(fd: RawFd, ms: c_int) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        unsafe { libc::poll(&mut p, 1, ms) == 1 }
    }

    #[test]
    fn the_timer_is_close_on_exec_and_disarmed() {
        let t = alarm_timer().unwrap();
        // SAFETY: F_GETFD takes no argument.
        let flags = unsafe { libc::fcntl(t.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        assert_eq!(remaining_ns(t.as_raw_fd()), Ok(0));
        assert!(!readable_within(t.as_raw_fd(), 0));
    }

    #[test]
    fn an_armed_timer_fires_once_after_its_delay() {
        let t = alarm_timer().unwrap();
        let fd = t.as_raw_fd();
        let start = Instant::now();
        arm(fd, 1).unwrap();
        let left = remaining_ns(fd).unwrap();
        assert!(left > 0 && left <= 1_000_000_000, "{left}");
        assert!(!readable_within(fd, 500), "fired early");
        assert!(readable_within(fd, 3000), "did not fire");
        assert!(start.elapsed() >= Duration::from_millis(990));
        assert_eq!(read_count(fd), Ok(1));
        // Once: not re-armed.
        assert_eq!(remaining_ns(fd), Ok(0));
    }

    #[test]
    fn zero_disarms_and_a_past_alarm_is_refused() {
        let t = alarm_timer().unwrap();
        let fd = t.as_raw_fd();
        arm(fd, 100).unwrap();
        assert!(remaining_ns(fd).unwrap() > 99_000_000_000);
        arm(fd, 0).unwrap();
        assert_eq!(remaining_ns(fd), Ok(0));
        // What the kernel half computes for an alarm one second ago.
        assert_eq!(arm(fd, u64::MAX), Err(Errno::EINVAL));
        assert_eq!(arm(-1, 1), Err(Errno::EBADF));
    }

    #[test]
    fn a_wakeup_is_eight_bytes_of_one() {
        let [a, b] = crate::host::socket::pipe(true, true).unwrap();
        assert_eq!(send_wakeup(b.as_raw_fd()), Ok(8));
        let mut raw = [0u8; 16];
        assert_eq!(crate::host::file::read(a.as_raw_fd(), &mut raw), Ok(8));
        assert_eq!(raw[..8], 1u64.to_ne_bytes());
        assert_eq!(send_wakeup(b.as_raw_fd()), Ok(8));
        assert_eq!(read_count(a.as_raw_fd()), Ok(TIMETRAVEL_WAKEUP));
        drop(a);
        assert_eq!(send_wakeup(b.as_raw_fd()), Err(Errno::EPIPE));
    }
}
