// SPDX-License-Identifier: GPL-2.0
//! The host side of UML's hardware watchdog (`harddog_user.c`): the
//! helper program `uml_watchdog` (uml-utilities), started when the guest
//! opens `/dev/watchdog`.
//!
//! The helper gets one socket pair as its standard input and another as
//! its standard output and error. It writes one byte when it is ready,
//! then expects a byte (a newline) on its input at least once a minute,
//! or it kills the UML process (`-pid <pid>`) or halts it through the
//! management console (`-mconsole <notify socket>`). End of file on its
//! input, when the guest closes the device, makes it exit.

use core::ffi::{CStr, c_int};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use syscalls::{Sysno, syscall};

use crate::host::file::{Result, retry_eintr};

/// The helper, as the C has it.
pub const PROGRAM: &CStr = c"/usr/bin/uml_watchdog";
/// Its option naming the process to kill.
pub const PID_OPTION: &CStr = c"-pid";
/// Its option naming the management console's notify socket.
pub const MCONSOLE_OPTION: &CStr = c"-mconsole";
/// What a ping writes.
pub const PING: u8 = b'\n';
/// How long [`reap`] waits for a helper whose input was closed before it
/// kills it.
pub const EXIT_WAIT: Duration = Duration::from_secs(1);

/// What the helper child wires up before it execs (`struct dog_data`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PreExecData {
    /// Becomes the child's descriptor 0: its end of the ping pair.
    pub stdin_fd: c_int,
    /// Becomes its 1 and 2: its end of the readiness pair.
    pub stdout_fd: c_int,
    /// UML's ends of the two pairs, closed in the child.
    pub close_me: [c_int; 2],
}

/// `fd` as the child's `target`: `dup2`, or when it already is that
/// descriptor, its close-on-exec flag cleared (which `dup2` does for a
/// copy). Raw system calls: the child shares the kernel's `errno`.
fn install(fd: c_int, target: c_int) {
    // SAFETY: descriptor operations only; no memory is passed.
    unsafe {
        if fd == target {
            let _ = syscall!(Sysno::fcntl, fd as usize, libc::F_SETFD as usize, 0);
        } else {
            let _ = syscall!(Sysno::dup2, fd as usize, target as usize);
        }
    }
}

/// Closes `fd` in the child unless it is one of its standard descriptors.
fn close_extra(fd: c_int) {
    if fd > 2 {
        // SAFETY: a descriptor of the child's own table.
        let _ = unsafe { syscall!(Sysno::close, fd as usize) };
    }
}

/// In the helper child, before exec: its pair ends on 0, 1 and 2, every
/// other end of the two pairs closed; errors ignored, as in C.
pub fn pre_exec_wiring(data: PreExecData) {
    install(data.stdin_fd, 0);
    install(data.stdout_fd, 1);
    install(data.stdout_fd, 2);
    for fd in [
        data.stdin_fd,
        data.stdout_fd,
        data.close_me[0],
        data.close_me[1],
    ] {
        close_extra(fd);
    }
}

/// A process id as the helper's argument: decimal, NUL-terminated.
#[derive(Clone, Copy, Debug)]
pub struct PidArg([u8; 12]);

impl PidArg {
    pub fn new(pid: c_int) -> PidArg {
        let mut digits = [0u8; 12];
        let n = crate::host::chan::format_int(pid, &mut digits);
        let mut out = [0u8; 12];
        // At most 11 characters: the NUL fits.
        out[..n].copy_from_slice(&digits[..n]);
        PidArg(out)
    }

    pub fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.0).unwrap_or(c"")
    }
}

/// Why the helper did not report ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// Its output closed first: it exited (or failed) before writing.
    Eof,
    /// Reading its output failed.
    Read(Errno),
}

/// Waits for the helper's readiness byte on `fd`, retrying when
/// interrupted.
pub fn wait_ready(fd: RawFd) -> core::result::Result<(), NotReady> {
    let mut byte = [0u8; 1];
    match retry_eintr(|| crate::host::file::read(fd, &mut byte)) {
        Ok(0) => Err(NotReady::Eof),
        Ok(_) => Ok(()),
        Err(e) => Err(NotReady::Read(e)),
    }
}

/// One ping: a single `write(2)` of [`PING`] to `fd`, not retried. The
/// count written.
pub fn ping(fd: RawFd) -> Result<usize> {
    crate::host::file::write(fd, &[PING])
}

/// How [`reap`] ended a helper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaped {
    /// It exited by itself and was reaped.
    Exited,
    /// It was still running after the wait and was killed, then reaped.
    Killed,
    /// It could not be waited for (not our child, or already reaped).
    Gone(Errno),
}

/// Reaps helper `pid` once its input is closed: it should exit at once,
/// so it is polled for up to `wait`, then killed with `SIGKILL` (it would
/// otherwise kill UML a minute later, no longer being pinged) and reaped.
pub fn reap(pid: c_int, wait: Duration) -> Reaped {
    let start = Instant::now();
    loop {
        let flags = libc::WNOHANG | libc::__WALL;
        let r = retry_eintr(|| {
            // SAFETY: a NULL status pointer is allowed.
            let n = unsafe { libc::waitpid(pid, core::ptr::null_mut(), flags) };
            Errno::result(n)
        });
        match r {
            Ok(0) => {}
            Ok(_) => return Reaped::Exited,
            Err(e) => return Reaped::Gone(e),
        }
        if start.elapsed() >= wait {
            crate::host::ptrace::kill(pid, libc::SIGKILL);
            crate::host::ptrace::reap(pid);
            return Reaped::Killed;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn pids_are_decimal_c_strings() {
        assert_eq!(PidArg::new(1).as_cstr(), c"1");
        assert_eq!(PidArg::new(4_194_304).as_cstr(), c"4194304");
        assert_eq!(PidArg::new(c_int::MAX).as_cstr(), c"2147483647");
        assert_eq!(PidArg::new(-1).as_cstr(), c"-1");
    }

    #[test]
    fn readiness_is_one_byte_or_end_of_file() {
        let [a, b] = crate::host::socket::pipe(true, true).unwrap();
        crate::host::file::write(b.as_raw_fd(), b"\0").unwrap();
        assert_eq!(wait_ready(a.as_raw_fd()), Ok(()));
        drop(b);
        assert_eq!(wait_ready(a.as_raw_fd()), Err(NotReady::Eof));
        assert_eq!(wait_ready(-1), Err(NotReady::Read(Errno::EBADF)));
    }

    #[test]
    fn a_ping_is_a_newline() {
        let [a, b] = crate::host::socket::pipe(true, true).unwrap();
        assert_eq!(ping(b.as_raw_fd()), Ok(1));
        let mut buf = [0u8; 4];
        assert_eq!(crate::host::file::read(a.as_raw_fd(), &mut buf), Ok(1));
        assert_eq!(buf[0], b'\n');
        drop(a);
        assert_eq!(ping(b.as_raw_fd()), Err(Errno::EPIPE));
    }

    #[test]
    // The children are reaped by the function under test.
    #[allow(clippy::zombie_processes)]
    fn reap_waits_then_kills() {
        let exits = std::process::Command::new("/bin/sh")
            .args(["-c", "exit 0"])
            .spawn()
            .unwrap();
        // However loaded the host, it exits by itself within this.
        assert_eq!(
            reap(exits.id() as c_int, Duration::from_secs(30)),
            Reaped::Exited
        );
        let sleeps = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let t = Instant::now();
        let pid = sleeps.id() as c_int;
        assert_eq!(reap(pid, Duration::from_millis(100)), Reaped::Killed);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(reap(pid, EXIT_WAIT), Reaped::Gone(Errno::ECHILD));
    }
}
