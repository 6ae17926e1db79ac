// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/tty.c.

use core::ffi::c_int;
#[cfg(feature = "kernel")]
use core::ffi::c_void;
use std::os::fd::IntoRawFd;

use crate::host::tty;

#[cfg(feature = "kernel")]
unsafe extern "C" {
    /// `void initial_thread_cb(void (*proc)(void *), void *arg)`
    /// (kern_util.h): runs `proc(arg)` on UML's initial thread, with kmalloc
    /// disabled, and returns once it has.
    fn initial_thread_cb(proc_: unsafe extern "C" fn(*mut c_void), arg: *mut c_void);
}

/// Runs `f` on UML's initial thread (in place outside the kernel).
fn on_initial_thread(f: &mut dyn FnMut()) {
    #[cfg(feature = "kernel")]
    {
        /// # Safety
        ///
        /// `arg` points to a live `&mut dyn FnMut()`.
        unsafe extern "C" fn trampoline(arg: *mut c_void) {
            // SAFETY: `arg` is the `&mut dyn FnMut()` passed below, live
            // until initial_thread_cb returns.
            let f = unsafe { &mut *arg.cast::<&mut dyn FnMut()>() };
            f();
        }
        let mut f = f;
        // SAFETY: initial_thread_cb calls `trampoline(arg)` once and returns
        // after it. Its setjmp/longjmp stay inside its own C frames: the
        // trampoline has returned normally before the jump back, and no
        // Rust frame is jumped over or returned into twice.
        unsafe { initial_thread_cb(trampoline, (&raw mut f).cast()) };
    }
    #[cfg(not(feature = "kernel"))]
    f();
}

/// `int get_pty(void)`: a new pseudo-terminal master with its slave granted
/// and unlocked, or the negative errno (logged). The master is neither
/// `O_NOCTTY` nor close-on-exec.
#[cfg_attr(feature = "os-tty", unsafe(no_mangle))]
pub extern "C" fn get_pty() -> c_int {
    match tty::get_pty(on_initial_thread) {
        Ok(fd) => fd.into_raw_fd(),
        Err(e) => -(e as c_int),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{FromRawFd, OwnedFd};

    #[test]
    fn get_pty_returns_usable_master() {
        let fd = get_pty();
        assert!(fd >= 0, "get_pty: {fd}");
        // SAFETY: get_pty handed us this descriptor.
        let master = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut num: c_int = -1;
        // SAFETY: TIOCGPTN writes one int: the pty number, only for a master.
        let rc = unsafe { libc::ioctl(fd, libc::TIOCGPTN, &raw mut num) };
        assert_eq!(rc, 0);
        assert!(num >= 0);
        // Unlocked: the slave opens.
        let slave = std::fs::File::options()
            .read(true)
            .write(true)
            .open(format!("/dev/pts/{num}"));
        assert!(slave.is_ok(), "{slave:?}");
        drop(master);
    }
}
