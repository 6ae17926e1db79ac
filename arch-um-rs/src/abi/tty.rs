// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/tty.c.

use core::ffi::c_int;
use std::os::fd::IntoRawFd;

use crate::host::tty;
use crate::kernel::on_initial_thread;

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
