// SPDX-License-Identifier: GPL-2.0
//! The host side of the ubd block driver's I/O thread (`ubd_user.c`): the
//! socket pair between the kernel and the thread, and the waits on it.
//!
//! The I/O thread is a `CLONE_VM` clone without its own TLS: it shares
//! `errno` with the kernel thread. Its waits therefore make raw system
//! calls, which report failure in the return value only.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use syscalls::{Sysno, syscall};

/// The two ends of the request channel: the driver writes request
/// pointers to `driver` and reads them back completed (its `thread_fd`);
/// the I/O thread reads and answers them on `thread` (the driver's
/// `kernel_fd`). A stream socket pair, close-on-exec.
///
/// The driver's end is non-blocking: the kernel reads it from its
/// interrupt handler. The thread's end blocks: the thread has nothing else
/// to do than wait for requests, and a blocking read is one system call
/// where a non-blocking one costs three (the read that finds nothing, the
/// poll, the read again) and a host context switch less.
pub struct IoChannel {
    pub driver: OwnedFd,
    pub thread: OwnedFd,
}

impl IoChannel {
    pub fn new() -> Result<Self, Errno> {
        let (thread, driver) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        crate::host::file::set_fd_block(driver.as_raw_fd(), false)?;
        Ok(IoChannel { driver, thread })
    }
}

/// `poll(2)` on one descriptor for `events`, with `timeout` in ms (-1:
/// forever): the number of ready descriptors (0 or 1), or -1 on failure,
/// as poll returns, but without writing `errno`.
pub fn poll_one(fd: libc::c_int, events: libc::c_short, timeout: libc::c_int) -> libc::c_int {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd for the duration of the call.
    match unsafe { syscall!(Sysno::poll, &raw mut pfd, 1, timeout) } {
        Ok(n) => n as libc::c_int,
        Err(_) => -1,
    }
}

pub mod engine;
pub mod plan;

#[cfg(test)]
mod tests;
