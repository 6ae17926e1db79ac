// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/time.c.
//!
//! One process-wide POSIX timer on CLOCK_MONOTONIC drives UML's clock
//! events; it signals the process with SIGALRM. These functions run from the
//! timer and idle paths: no allocation, no locks.

use core::ffi::{c_int, c_longlong, c_ulonglong, c_void};
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::host::timer::{self, SetRecord, TimerId};

/// The host timer behind UML's clock events (null until `os_timer_create`,
/// like the C's zero-initialised `timer_t`).
static EVENT_TIMER: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// What the event timer was last set to: the idle loop's answer to
/// whether it is armed, without a `timer_gettime` per idle entry.
static EVENT_TIMER_SET: SetRecord = SetRecord::new();

fn event_timer() -> TimerId {
    TimerId::from_raw(EVENT_TIMER.load(Ordering::Relaxed))
}

/// Wall-clock time in nanoseconds, for the persistent clock.
#[cfg_attr(feature = "os-time", unsafe(no_mangle))]
pub extern "C" fn os_persistent_clock_emulation() -> c_longlong {
    timer::clock_ns(libc::CLOCK_REALTIME)
}

/// Creates the event timer: 0, or -1 (not -errno) on failure.
#[cfg_attr(feature = "os-time", unsafe(no_mangle))]
pub extern "C" fn os_timer_create() -> c_int {
    match TimerId::create(libc::CLOCK_MONOTONIC) {
        Ok(t) => {
            EVENT_TIMER.store(t.as_raw(), Ordering::Relaxed);
            EVENT_TIMER_SET.disarmed(true);
            0
        }
        Err(_) => -1,
    }
}

/// Periodic mode: first expiry and period both `nsecs`. 0 or -errno.
#[cfg_attr(feature = "os-time", unsafe(no_mangle))]
pub extern "C" fn os_timer_set_interval(nsecs: c_ulonglong) -> c_int {
    let r = event_timer().set(nsecs, nsecs);
    EVENT_TIMER_SET.periodic(nsecs, r.is_ok());
    match r {
        Ok(()) => 0,
        Err(e) => -(e as c_int),
    }
}

/// One-shot mode: a single expiry after `nsecs`. Always returns 0 (a host
/// failure is not reported, as in the C layer).
#[cfg_attr(feature = "os-time", unsafe(no_mangle))]
pub extern "C" fn os_timer_one_shot(nsecs: c_ulonglong) -> c_int {
    let began = timer::clock_ns(libc::CLOCK_MONOTONIC);
    let r = event_timer().set(nsecs, 0);
    EVENT_TIMER_SET.one_shot(began, nsecs, r.is_ok());
    0
}

/// Disarms the event timer.
#[cfg_attr(feature = "os-time", unsafe(no_mangle))]
pub extern "C" fn os_timer_disable() {
    let r = event_timer().disarm();
    EVENT_TIMER_SET.disarmed(r.is_ok());
}

/// Monotonic time in nanoseconds.
#[cfg_attr(feature = "os-time", unsafe(no_mangle))]
pub extern "C" fn os_nsecs() -> c_longlong {
    timer::clock_ns(libc::CLOCK_MONOTONIC)
}

/// Sleeps until a signal arrives if the event timer is armed.
#[cfg_attr(feature = "os-time", unsafe(no_mangle))]
pub extern "C" fn os_idle_sleep() {
    timer::idle_sleep(event_timer(), &EVENT_TIMER_SET);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::timer::test_support::install_noop_sigalrm;

    // The only test that touches EVENT_TIMER. The timer signals the whole
    // process, so it is armed far in the future and only inspected.
    #[test]
    fn event_timer_lifecycle() {
        install_noop_sigalrm();
        assert_eq!(os_timer_create(), 0);
        let t = event_timer();
        assert!(t.get().is_ok());
        assert_eq!(os_timer_set_interval(100 * timer::NSEC_PER_SEC + 5), 0);
        let its = t.get().unwrap();
        assert_eq!((its.it_interval.tv_sec, its.it_interval.tv_nsec), (100, 5));
        assert!(its.it_value.tv_sec >= 99);

        assert_eq!(os_timer_one_shot(200 * timer::NSEC_PER_SEC), 0);
        let its = t.get().unwrap();
        assert_eq!((its.it_interval.tv_sec, its.it_interval.tv_nsec), (0, 0));
        assert!(its.it_value.tv_sec >= 199);

        os_timer_disable();
        assert!(!t.is_armed());
        // Disarmed: idle sleep must not block.
        os_idle_sleep();

        t.delete().unwrap();
        // A timer id no timer has: set_interval reports the host error as
        // -errno, one-shot hides it, disable and idle sleep ignore it.
        EVENT_TIMER.store(0x7fff_0000 as *mut c_void, Ordering::Relaxed);
        assert_eq!(os_timer_set_interval(1_000_000), -libc::EINVAL);
        assert_eq!(os_timer_one_shot(1_000_000), 0);
        os_timer_disable();
        os_idle_sleep();
    }

    #[test]
    fn clocks() {
        let a = os_nsecs();
        let b = os_nsecs();
        assert!(b >= a && a > 0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        assert!((os_persistent_clock_emulation() - now).abs() < 1_000_000_000);
    }
}
