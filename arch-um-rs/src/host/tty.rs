// SPDX-License-Identifier: GPL-2.0
//! Host pseudo-terminals: the safe core behind [`crate::abi::tty`], which
//! replaces `arch/um/os-Linux/tty.c`.

use core::ffi::c_int;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;

use super::file::{Result, owned};
use crate::kernel::Level;

/// Opens a new pseudo-terminal master (`/dev/ptmx`, read-write; neither
/// `O_NOCTTY` nor close-on-exec, as in the C layer), grants and unlocks its
/// slave ([grantpt(3)], [unlockpt(3)]). Failures are logged; on failure the
/// master is closed.
///
/// `on_initial_thread` must run the closure it is given exactly once: the
/// kernel runs grantpt on UML's initial thread, tests run it in place.
///
/// [grantpt(3)]: https://man7.org/linux/man-pages/man3/grantpt.3.html
/// [unlockpt(3)]: https://man7.org/linux/man-pages/man3/unlockpt.3.html
pub fn get_pty(on_initial_thread: impl FnOnce(&mut dyn FnMut())) -> Result<OwnedFd> {
    // SAFETY: the path is NUL-terminated; no mode is needed without O_CREAT.
    let fd = Errno::result(unsafe { libc::open64(c"/dev/ptmx".as_ptr(), libc::O_RDWR) })
        .inspect_err(|&e| {
            crate::klog!(
                Level::Err,
                "get_pty : Couldn't open /dev/ptmx - err = {}",
                e as c_int
            );
        })
        .map(owned)?;
    let raw = fd.as_raw_fd();
    // Captured where grantpt ran: errno is per thread and the way back may
    // clobber it.
    let mut granted: Result<()> = Ok(());
    on_initial_thread(&mut || {
        // SAFETY: `raw` is the open master.
        granted = Errno::result(unsafe { libc::grantpt(raw) }).map(drop);
    });
    granted.inspect_err(|&e| {
        crate::klog!(
            Level::Err,
            "get_pty : Couldn't grant pty - errno = {}",
            e as c_int
        );
    })?;
    // SAFETY: `raw` is the open master.
    Errno::result(unsafe { libc::unlockpt(raw) }).inspect_err(|&e| {
        crate::klog!(
            Level::Err,
            "get_pty : Couldn't unlock pty - errno = {}",
            e as c_int
        );
    })?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::ffi::CStr;

    fn slave_name(master: &OwnedFd) -> String {
        let mut buf = [0 as libc::c_char; 128];
        // SAFETY: `buf` is writable for its length.
        let rc = unsafe { libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
        assert_eq!(rc, 0);
        // SAFETY: ptsname_r succeeded, so `buf` holds a NUL-terminated name.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn master_and_slave_carry_data_both_ways() {
        let mut calls = 0;
        let master = get_pty(|f| {
            calls += 1;
            f()
        })
        .expect("get_pty");
        assert_eq!(calls, 1, "grantpt must run exactly once");
        // SAFETY: F_GETFD takes no argument.
        let fd_flags = unsafe { libc::fcntl(master.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(
            fd_flags & libc::FD_CLOEXEC,
            0,
            "the C layer leaves the master inheritable"
        );
        // SAFETY: F_GETFL takes no argument.
        let fl = unsafe { libc::fcntl(master.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(fl & libc::O_ACCMODE, libc::O_RDWR);

        let name = slave_name(&master);
        assert!(name.starts_with("/dev/pts/"), "{name}");
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&name)
            .expect("slave opens: unlocked");
        let slave_fd = std::os::fd::AsRawFd::as_raw_fd(&slave);
        // Raw mode on the slave so bytes pass through unchanged.
        let mut tio = nix::sys::termios::tcgetattr(&slave).unwrap();
        nix::sys::termios::cfmakeraw(&mut tio);
        nix::sys::termios::tcsetattr(&slave, nix::sys::termios::SetArg::TCSANOW, &tio).unwrap();

        assert_eq!(
            crate::host::file::write(master.as_raw_fd(), b"ping").unwrap(),
            4
        );
        let mut buf = [0u8; 16];
        let n = crate::host::file::read(slave_fd, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(crate::host::file::write(slave_fd, b"pong").unwrap(), 4);
        let n = crate::host::file::read(master.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"pong");
    }
}
