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

use core::sync::atomic::{AtomicPtr, Ordering};

use super::ubd::IoThreadReq;
use crate::host::ubd::engine::{Backend, Engine};
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

/// The I/O engine, made by [`start_io_thread`] in kernel context and used
/// only by the I/O thread afterwards.
static ENGINE: AtomicPtr<Engine> = AtomicPtr::new(core::ptr::null_mut());

/// The I/O thread's stack. The driver hands over one page, which suits
/// its C loop; the engine gets more, with a guard page below.
const IO_STACK_SIZE: usize = 64 << 10;

/// Maps the I/O thread's stack; returns its top.
fn map_io_stack() -> Result<usize, nix::errno::Errno> {
    let page = crate::stub::PAGE_SIZE;
    // SAFETY: a fresh private anonymous mapping, never unmapped (the thread lives as long as the kernel).
    let base = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            IO_STACK_SIZE + page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: the lowest page of the mapping just made becomes the guard.
    if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } < 0 {
        return Err(nix::errno::Errno::last());
    }
    Ok(base as usize + IO_STACK_SIZE + page)
}

/// Creates the request channel and the I/O engine, and starts the I/O
/// thread, sharing the kernel's memory and descriptors, on a stack of its
/// own (`sp`, the one page the driver offers, is left unused: the engine
/// needs more). Returns the thread's pid with the driver's end of the
/// channel in `*fd_out`, or a negative errno (and `*fd_out` = -1).
///
/// # Safety
///
/// `fd_out` is writable. Called once, from the driver's init call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn start_io_thread(_sp: c_ulong, fd_out: *mut c_int) -> c_int {
    // SAFETY: the caller's out pointer.
    unsafe { *fd_out = -1 };
    let stack_top = match map_io_stack() {
        Ok(top) => top,
        Err(e) => {
            klog!(
                Level::Err,
                "start_io_thread - stack allocation failed, err = {}",
                e as i32
            );
            return -(e as c_int);
        }
    };
    let engine = Box::new(Engine::with_io_uring());
    match engine.backend() {
        Backend::Uring(_) => klog!(
            Level::Info,
            "ubd: I/O through io_uring, up to {} operations in flight",
            crate::host::ubd::engine::RING_ENTRIES
        ),
        Backend::Sync { why } => klog!(
            Level::Warning,
            "ubd: io_uring is not available ({}): serving one operation at a time",
            why
        ),
    }
    ENGINE.store(Box::into_raw(engine), Ordering::Release);
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
    // SAFETY: io_thread only uses the shared memory and the channel; the stack is its own.
    let pid = unsafe {
        libc::clone(
            io_thread,
            stack_top as *mut c_void,
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

/// Serves one batch of `n` requests (ubd.h): called by the I/O thread for
/// each batch it reads from the driver.
///
/// # Safety
///
/// `reqs` holds `n` valid requests, owned by the I/O thread until it
/// writes them back.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ubd_serve_requests(reqs: *mut *mut IoThreadReq, n: c_int) {
    if reqs.is_null() || n <= 0 {
        return;
    }
    // SAFETY: the caller's contract.
    let batch = unsafe { core::slice::from_raw_parts(reqs, n as usize) };
    let engine = ENGINE.load(Ordering::Acquire);
    if engine.is_null() {
        // Not reached: the thread starts after the engine exists.
        for &r in batch {
            // SAFETY: as above.
            unsafe { (*r).error = libc::EIO };
        }
        return;
    }
    // SAFETY: only the I/O thread uses the engine once it is published; the batch is valid (above).
    unsafe { (*engine).serve(batch) };
}
