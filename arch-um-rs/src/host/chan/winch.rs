// SPDX-License-Identifier: GPL-2.0
//! The `SIGWINCH` helper of `chan_user.c`: how UML learns that the window
//! of a host terminal it does not control changed.
//!
//! The host sends `SIGWINCH` to a terminal's foreground process group
//! only, and a process can control one terminal at most. So for each such
//! terminal (a console on `fd:0` when UML runs in the background, or on an
//! xterm or telnet connection) UML starts a helper process that takes the
//! terminal over and reports every `SIGWINCH` as a byte on a socket pair,
//! which the kernel half has an interrupt on. The protocol, on the
//! thread's end `pipe_fd` and the kernel's end `thread_fd`:
//!
//! 1. the thread writes [`SYNC`] as soon as it runs; `winch_tramp` reads
//!    it (blocking), then makes its end non-blocking;
//! 2. the thread makes itself a session leader whose controlling terminal
//!    is the terminal, in the foreground (`setsid`, `TIOCSCTTY`,
//!    `tcsetpgrp`), with every signal but `SIGWINCH` blocked; meanwhile
//!    the kernel registers its interrupt and writes one byte, which the
//!    thread waits for;
//! 3. from then on, each `SIGWINCH` makes the thread write that byte
//!    ([`SYNC`]), on which the kernel half reads the new window size;
//! 4. if step 2 fails the thread writes [`FAILED`] and waits to be killed:
//!    the kernel half then drops the terminal's `SIGWINCH` support.
//!
//! [`serve`] is steps 1 to 4 on the thread's side. The thread is a
//! `clone(CLONE_FILES)` child (its own copy of memory, the kernel's
//! descriptor table) on one page of stack: it makes plain library calls
//! only, allocates nothing and formats nothing itself.

use core::ffi::{CStr, c_int};
use std::os::fd::RawFd;

use nix::errno::Errno;

/// The thread is running / the kernel is ready / the window changed.
pub const SYNC: u8 = 1;
/// The thread could not take the terminal over and waits to be killed.
pub const FAILED: u8 = 2;

/// `struct winch_data`: what the thread is started with.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WinchData {
    /// The terminal.
    pub pty_fd: c_int,
    /// The thread's end of the socket pair.
    pub pipe_fd: c_int,
}

/// The `SIGWINCH` handler: it only has to exist, so that `sigsuspend`
/// returns on the signal (`SIG_IGN` would discard it).
extern "C" fn winch_handler(_sig: c_int) {}

/// Writes `c` to `fd` once (no retry, as in C): what `write` returned.
pub fn send_byte(fd: RawFd, c: u8) -> isize {
    // SAFETY: one byte from a local.
    unsafe { libc::write(fd, (&raw const c).cast(), 1) }
}

/// Reads one byte from `fd` into `c` once (no retry, as in C): what `read`
/// returned.
pub fn recv_byte(fd: RawFd, c: &mut u8) -> isize {
    // SAFETY: one byte into a writable local.
    unsafe { libc::read(fd, (c as *mut u8).cast(), 1) }
}

/// The thread's side of the protocol on terminal `pty_fd` and socket
/// `pipe_fd`; never returns. `pid` is the thread's own pid (`os_getpid`),
/// `info(fmt, a, b)` reports a failure as the C's `os_info(fmt, a, b)`
/// did, with the C's format strings (`%d` conversions only).
pub fn serve(
    pty_fd: RawFd,
    pipe_fd: RawFd,
    pid: impl Fn() -> c_int,
    info: impl Fn(&CStr, c_int, c_int),
) -> ! {
    if send_byte(pipe_fd, SYNC) != 1 {
        // The C printed -count, always 1; the errno says more.
        info(
            c"winch_thread : failed to write synchronization byte, err = %d\n",
            Errno::last() as c_int,
            0,
        );
    }
    if let Err((what, e)) = take_terminal(pty_fd, &pid) {
        match what {
            Step::Sigprocmask => info(
                c"winch_thread : sigprocmask failed, errno = %d\n",
                e as c_int,
                0,
            ),
            Step::Setsid => info(c"winch_thread : setsid failed, errno = %d\n", e as c_int, 0),
            Step::Sctty => info(
                c"winch_thread : TIOCSCTTY failed on fd %d err = %d\n",
                pty_fd,
                e as c_int,
            ),
            Step::Setpgrp => info(
                c"winch_thread : tcsetpgrp failed on fd %d err = %d\n",
                pty_fd,
                e as c_int,
            ),
        }
        let _ = send_byte(pipe_fd, FAILED);
        loop {
            // SAFETY: pause has no arguments; only SIGKILL ends us.
            unsafe { libc::pause() };
        }
    }
    let sigs = all_but_winch();
    let mut c = SYNC;
    if recv_byte(pipe_fd, &mut c) != 1 {
        info(
            c"winch_thread : failed to read synchronization byte, err = %d\n",
            Errno::last() as c_int,
            0,
        );
    }
    loop {
        // Returns on SIGWINCH only: every other signal is blocked.
        // SAFETY: `sigs` is a valid sigset.
        unsafe { libc::sigsuspend(&sigs) };
        if send_byte(pipe_fd, c) != 1 {
            info(
                c"winch_thread : write failed, err = %d\n",
                Errno::last() as c_int,
                0,
            );
        }
    }
}

/// A step of [`take_terminal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Sigprocmask,
    Setsid,
    Sctty,
    Setpgrp,
}

/// Every signal but `SIGWINCH`: the mask `sigsuspend` waits with.
fn all_but_winch() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigfillset initialises it.
    let mut sigs: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: `sigs` is a valid sigset.
    unsafe {
        libc::sigfillset(&mut sigs);
        libc::sigdelset(&mut sigs, libc::SIGWINCH);
    }
    sigs
}

/// Step 2 of the protocol for the calling process: installs the empty
/// `SIGWINCH` handler, blocks every signal, and makes `fd` the controlling
/// terminal of a new session with the caller in the foreground.
pub fn take_terminal(fd: RawFd, pid: &impl Fn() -> c_int) -> Result<(), (Step, Errno)> {
    // SAFETY: installs a handler that does nothing.
    unsafe {
        libc::signal(
            libc::SIGWINCH,
            winch_handler as *const () as libc::sighandler_t,
        )
    };
    // SAFETY: sigset_t is plain data; sigfillset initialises it.
    let mut all: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: `all` is a valid sigset.
    unsafe { libc::sigfillset(&mut all) };
    // SAFETY: as above.
    if unsafe { libc::sigprocmask(libc::SIG_SETMASK, &all, core::ptr::null_mut()) } < 0 {
        return Err((Step::Sigprocmask, Errno::last()));
    }
    // SAFETY: setsid has no arguments.
    if unsafe { libc::setsid() } < 0 {
        return Err((Step::Setsid, Errno::last()));
    }
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal the terminal).
    if unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) } < 0 {
        return Err((Step::Sctty, Errno::last()));
    }
    // SAFETY: tcsetpgrp has no memory arguments.
    if unsafe { libc::tcsetpgrp(fd, pid()) } < 0 {
        return Err((Step::Setpgrp, Errno::last()));
    }
    Ok(())
}
