// SPDX-License-Identifier: GPL-2.0
//! C ABI of `arch/um/drivers/ubd_user.c` (declared in `ubd.h`): starting
//! the ubd driver's I/O thread and its waits on the request channel, over
//! [`crate::host::ubd`].
//!
//! Built only with the `os-um-drivers-ubd_user` feature, which the kernel
//! build sets when `CONFIG_BLK_DEV_UBD` is on: the thread runs the
//! driver's `io_thread` and the channel lives in its `kernel_fd`.

use core::ffi::{c_int, c_short, c_ulong, c_void};
use std::os::fd::IntoRawFd;

use crate::host::ubd::{self, IoChannel};
use crate::kernel::Level;
use crate::klog;

unsafe extern "C" {
    /// The driver's I/O thread (`ubd_kern.c`). Declared safe so that it can
    /// be handed to clone as an entry point; it ignores its argument.
    safe fn io_thread(arg: *mut c_void) -> c_int;
    /// The kernel's end of the request channel (`ubd_kern.c`), read by the
    /// I/O thread through [`ubd_read_poll`] and [`ubd_write_poll`].
    static mut kernel_fd: c_int;
}

/// Creates the request channel and starts the I/O thread on the stack
/// whose top is `sp`, sharing the kernel's memory and descriptors. Returns
/// the thread's pid with the kernel's end of the channel in `*fd_out`, or
/// a negative errno (and `*fd_out` = -1).
///
/// # Safety
///
/// `fd_out` is writable; `sp` is the top of a stack the thread may own
/// until it dies. Called once, from the driver's init call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn start_io_thread(sp: c_ulong, fd_out: *mut c_int) -> c_int {
    let channel = match IoChannel::new() {
        Ok(c) => c,
        Err(e) => {
            klog!(
                Level::Err,
                "start_io_thread - os_pipe failed, err = {}",
                e as i32
            );
            return -(e as c_int);
        }
    };
    // The driver keeps `*fd_out` (its `thread_fd`); the thread serves
    // requests on `kernel_fd`. (The names are the driver's.)
    let thread_end = channel.thread.into_raw_fd();
    let driver_end = channel.driver.into_raw_fd();
    // SAFETY: single-threaded init; the I/O thread does not exist yet.
    unsafe { kernel_fd = thread_end };
    // SAFETY: the caller's out pointer.
    unsafe { *fd_out = driver_end };
    // SAFETY: io_thread only uses the shared memory and the channel; `sp` is its own stack.
    let pid = unsafe {
        libc::clone(
            io_thread,
            sp as *mut c_void,
            libc::CLONE_FILES | libc::CLONE_VM,
            core::ptr::null_mut(),
        )
    };
    if pid < 0 {
        let e = nix::errno::Errno::last();
        klog!(
            Level::Err,
            "start_io_thread - clone failed : errno = {}",
            e as i32
        );
        // SAFETY: both ends were created above and nobody else uses them.
        unsafe {
            libc::close(thread_end);
            libc::close(driver_end);
            kernel_fd = -1;
            *fd_out = -1;
        }
        return -(e as c_int);
    }
    pid
}

fn poll_kernel_fd(events: c_short, timeout: c_int) -> c_int {
    // SAFETY: kernel_fd is only written before the I/O thread starts.
    let fd = unsafe { kernel_fd };
    ubd::poll_one(fd, events, timeout)
}

/// Waits up to `timeout` ms (-1: forever) for completed or new requests
/// on `kernel_fd`; returns as `poll(2)` does, leaving `errno` alone (the
/// I/O thread shares it with the kernel).
#[unsafe(no_mangle)]
pub extern "C" fn ubd_read_poll(timeout: c_int) -> c_int {
    poll_kernel_fd(libc::POLLIN, timeout)
}

/// Waits up to `timeout` ms for room to write on `kernel_fd`; as
/// [`ubd_read_poll`].
#[unsafe(no_mangle)]
pub extern "C" fn ubd_write_poll(timeout: c_int) -> c_int {
    poll_kernel_fd(libc::POLLOUT, timeout)
}
