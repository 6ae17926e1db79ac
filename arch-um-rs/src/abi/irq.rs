// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/irq.c: the epoll instance behind UML's
//! interrupt sources.
//!
//! `os_waiting_for_events_epoll`, `os_epoll_triggered` and
//! `os_epoll_get_data_pointer` run in the SIGIO handler: no allocation, no
//! locks. The event buffer is a static [`HostCell`]: it is only touched by
//! the UML kernel's host thread, from the IRQ path, which the kernel does not
//! re-enter while it walks the events (the same assumption the C layer
//! makes about its static array).

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;

use crate::host::epoll::{self, EMPTY_EVENT, MAX_EPOLL_EVENTS};
use crate::host::util::{ErrnoMsg, HostCell};
use crate::kernel::Level;

/// The epoll fd (-1 until `os_setup_epoll`).
static EPOLL_FD: AtomicI32 = AtomicI32::new(-1);

/// The events of the last `os_waiting_for_events_epoll`.
static EVENTS: HostCell<[libc::epoll_event; MAX_EPOLL_EVENTS]> =
    HostCell::new([EMPTY_EVENT; MAX_EPOLL_EVENTS]);

/// Logs an epoll failure. Kept out of line (and cold) so the 512-byte
/// message buffer is not part of the SIGIO handler's stack frame.
#[cold]
#[inline(never)]
fn log_failure(level: Level, what: &str, fd: Option<c_int>, e: Errno) {
    match fd {
        Some(fd) => crate::klog!(level, "{what} fd {fd}, {}", ErrnoMsg(e as c_int)),
        None => crate::klog!(level, "{what}, error = {}", ErrnoMsg(e as c_int)),
    }
}

fn epoll_fd() -> c_int {
    EPOLL_FD.load(Ordering::Relaxed)
}

/// Slot `index` of the event buffer, copied out (None if out of range).
fn event(index: c_int) -> Option<libc::epoll_event> {
    let index = usize::try_from(index).ok()?;
    // SAFETY: per the module docs, no write to EVENTS is in progress while the IRQ code reads it.
    unsafe { (*EVENTS.as_ptr()).get(index).copied() }
}

/// The data pointer registered with the fd of event `index` (null if the
/// index is outside the buffer).
#[cfg_attr(feature = "os-irq", unsafe(no_mangle))]
pub extern "C" fn os_epoll_get_data_pointer(index: c_int) -> *mut c_void {
    event(index).map_or(core::ptr::null_mut(), |ev| epoll::data_pointer(&ev))
}

/// The bits of `events` that event `index` reported (0 if the index is
/// outside the buffer).
#[cfg_attr(feature = "os-irq", unsafe(no_mangle))]
pub extern "C" fn os_epoll_triggered(index: c_int, events: c_int) -> c_int {
    event(index).map_or(0, |ev| epoll::triggered(&ev, events))
}

/// The (opaque to the kernel) epoll mask for an `enum um_irq_type`.
#[cfg_attr(feature = "os-irq", unsafe(no_mangle))]
pub extern "C" fn os_event_mask(irq_type: c_int) -> c_int {
    epoll::event_mask(irq_type) as c_int
}

/// Creates the epoll instance (not close-on-exec): the fd, or -1.
#[cfg_attr(feature = "os-irq", unsafe(no_mangle))]
pub extern "C" fn os_setup_epoll() -> c_int {
    let fd = epoll::create().unwrap_or(-1);
    EPOLL_FD.store(fd, Ordering::Relaxed);
    fd
}

/// Polls (never blocks) for ready fds: how many events are in the buffer,
/// or -errno. Failures other than EINTR are logged.
#[cfg_attr(feature = "os-irq", unsafe(no_mangle))]
pub extern "C" fn os_waiting_for_events_epoll() -> c_int {
    let epfd = epoll_fd();
    // SAFETY: per the module docs, the IRQ path is the only writer and is never re-entered.
    let result = unsafe { EVENTS.with(|events| epoll::wait(epfd, events, 0)) };
    match result {
        Ok(n) => n as c_int,
        Err(e) => {
            if e != Errno::EINTR {
                log_failure(
                    Level::Err,
                    "os_waiting_for_events: epoll returned -1",
                    None,
                    e,
                );
            }
            -(e as c_int)
        }
    }
}

fn modify_logged(events: c_int, fd: c_int, data: *mut c_void) -> Result<(), Errno> {
    let result = epoll::modify(epoll_fd(), fd, events as u32, data);
    if let Err(e) = result {
        log_failure(Level::Err, "epollctl mod err", Some(fd), e);
    }
    result
}

/// Registers `fd` edge-triggered for `events` with `data`; an fd already
/// registered is modified instead (level-triggered, as `os_mod_epoll_fd`).
/// 0, or -1 after logging the failure.
///
/// # Safety
///
/// `data` is stored and handed back by `os_epoll_get_data_pointer`; the
/// caller keeps it meaningful while `fd` is registered.
#[cfg_attr(feature = "os-irq", unsafe(no_mangle))]
pub unsafe extern "C" fn os_add_epoll_fd(events: c_int, fd: c_int, data: *mut c_void) -> c_int {
    let result = match epoll::add(epoll_fd(), fd, events as u32, data) {
        Err(Errno::EEXIST) => modify_logged(events, fd, data),
        other => other,
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            // printk without a level in the C layer: the default (warning).
            log_failure(Level::Warning, "epollctl add err", Some(fd), e);
            -1
        }
    }
}

/// Replaces the events and data of a registered fd: 0, or -1 after logging.
///
/// # Safety
///
/// As for [`os_add_epoll_fd`].
#[cfg_attr(feature = "os-irq", unsafe(no_mangle))]
pub unsafe extern "C" fn os_mod_epoll_fd(events: c_int, fd: c_int, data: *mut c_void) -> c_int {
    match modify_logged(events, fd, data) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// Unregisters `fd`: 0 or -1, silently (used as an IO on/off switch, often
/// on fds that were never added).
#[cfg_attr(feature = "os-irq", unsafe(no_mangle))]
pub extern "C" fn os_del_epoll_fd(fd: c_int) -> c_int {
    match epoll::delete(epoll_fd(), fd) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// Ignores SIGIO from now on.
#[cfg_attr(feature = "os-irq", unsafe(no_mangle))]
pub extern "C" fn os_set_ioignore() {
    // SAFETY: installs SIG_IGN; no handler code of ours.
    unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
}

/// Closes the epoll fd (so a reboot does not leak it).
#[cfg_attr(feature = "os-irq", unsafe(no_mangle))]
pub extern "C" fn os_close_epoll_fd() {
    // SAFETY: closing the fd this module created; errors are ignored like os_close_file does.
    unsafe { libc::close(epoll_fd()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::layout::um_irq_type;
    use std::os::fd::AsRawFd;

    // The only test that touches the global epoll state.
    #[test]
    fn global_epoll_flow() {
        let epfd = os_setup_epoll();
        assert!(epfd >= 0);
        // SAFETY: F_GETFD on our fd.
        let flags = unsafe { libc::fcntl(epfd, libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, 0, "must not be cloexec");
        let (r, w) = nix::unistd::pipe().unwrap();
        let (r2, w2) = nix::unistd::pipe().unwrap();
        let mut irq_a = 1u64;
        let mut irq_b = 2u64;
        let a: *mut c_void = (&raw mut irq_a).cast();
        let b: *mut c_void = (&raw mut irq_b).cast();
        let read = os_event_mask(um_irq_type::IRQ_READ);
        let write = os_event_mask(um_irq_type::IRQ_WRITE);
        // SAFETY: the data pointers outlive the registrations.
        unsafe {
            assert_eq!(os_add_epoll_fd(read, r.as_raw_fd(), a), 0);
            assert_eq!(os_add_epoll_fd(write, w2.as_raw_fd(), b), 0);
            // Adding again modifies instead of failing.
            assert_eq!(os_add_epoll_fd(write, w2.as_raw_fd(), b), 0);
            assert_eq!(
                os_mod_epoll_fd(read, r2.as_raw_fd(), a),
                -1,
                "mod of an unregistered fd"
            );
            assert_eq!(os_add_epoll_fd(read, -1, a), -1);
        }
        nix::unistd::write(&w, b"z").unwrap();
        let n = os_waiting_for_events_epoll();
        assert_eq!(n, 2);
        let mut seen = [false; 2];
        for i in 0..n {
            let p = os_epoll_get_data_pointer(i);
            if p == a {
                assert_eq!(os_epoll_triggered(i, read), libc::EPOLLIN);
                assert_eq!(os_epoll_triggered(i, write), 0);
                seen[0] = true;
            } else if p == b {
                assert_eq!(os_epoll_triggered(i, write), libc::EPOLLOUT);
                seen[1] = true;
            } else {
                panic!("unexpected data pointer {p:?}");
            }
        }
        assert_eq!(seen, [true, true]);
        assert!(os_epoll_get_data_pointer(-1).is_null());
        assert_eq!(os_epoll_triggered(MAX_EPOLL_EVENTS as c_int, -1), 0);

        assert_eq!(os_del_epoll_fd(r.as_raw_fd()), 0);
        assert_eq!(os_del_epoll_fd(w2.as_raw_fd()), 0);
        assert_eq!(os_del_epoll_fd(w2.as_raw_fd()), -1);
        assert_eq!(os_waiting_for_events_epoll(), 0);

        os_close_epoll_fd();
        EPOLL_FD.store(-1, Ordering::Relaxed);
        assert_eq!(os_waiting_for_events_epoll(), -libc::EBADF);
        drop((r2, w));
    }

    #[test]
    fn set_ioignore_ignores_sigio() {
        let status = crate::host::util::test_support::run_forked(|| {
            os_set_ioignore();
            // SAFETY: reads the disposition into a valid sigaction, then leaves the forked child.
            unsafe {
                let mut old: libc::sigaction = core::mem::zeroed();
                libc::sigaction(libc::SIGIO, core::ptr::null(), &mut old);
                libc::_exit(if old.sa_sigaction == libc::SIG_IGN {
                    0
                } else {
                    1
                })
            }
        });
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
