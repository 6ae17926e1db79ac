// SPDX-License-Identifier: GPL-2.0
//! Terminal settings of channel descriptors: [termios(3)], the window
//! size ([ioctl_tty(2)] `TIOCGWINSZ`) and the foreground process group.
//!
//! Settings are read and written with `EINTR` retried, as the C's
//! `CATCH_EINTR(tcgetattr(...))` did; the window size and the process
//! group are not retried (neither were they in C).
//!
//! [termios(3)]: https://man7.org/linux/man-pages/man3/termios.3.html
//! [ioctl_tty(2)]: https://man7.org/linux/man-pages/man2/ioctl_tty.2.html

use core::ffi::c_int;
use std::os::fd::RawFd;

use nix::errno::Errno;

use crate::host::file::{Result, retry_eintr};

/// A terminal's settings.
pub type Termios = libc::termios;

/// All-zero settings: what the C's channel structures held before the
/// first `tcgetattr`.
pub const fn zeroed() -> Termios {
    // SAFETY: termios is integers and arrays of integers: all-zero is a valid value.
    unsafe { core::mem::zeroed() }
}

/// Whether `fd` is a terminal ([isatty(3)]).
///
/// [isatty(3)]: https://man7.org/linux/man-pages/man3/isatty.3.html
pub fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// The settings of terminal `fd` (`tcgetattr`, `EINTR` retried).
pub fn get_attr(fd: RawFd) -> Result<Termios> {
    let mut t = zeroed();
    retry_eintr(|| {
        // SAFETY: `t` is a writable termios.
        Errno::result(unsafe { libc::tcgetattr(fd, &mut t) }).map(drop)
    })?;
    Ok(t)
}

/// Applies `t` to terminal `fd` (`tcsetattr` with `when`, one of
/// `TCSANOW`, `TCSADRAIN`, `TCSAFLUSH`; `EINTR` retried).
pub fn set_attr(fd: RawFd, when: c_int, t: &Termios) -> Result<()> {
    retry_eintr(|| {
        // SAFETY: `t` is a valid termios.
        Errno::result(unsafe { libc::tcsetattr(fd, when, t) }).map(drop)
    })
}

/// The window size of terminal `fd`, `(rows, columns)` (`TIOCGWINSZ`).
pub fn window_size(fd: RawFd) -> Result<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) })?;
    Ok((ws.ws_row, ws.ws_col))
}

/// Sets the window size of terminal `fd` (`TIOCSWINSZ`): the host sends
/// `SIGWINCH` to the terminal's foreground process group if it changed.
pub fn set_window_size(fd: RawFd, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// The foreground process group of `fd` ([tcgetpgrp(3)]), or -1 (with
/// `errno` set) when `fd` is not the caller's controlling terminal.
///
/// [tcgetpgrp(3)]: https://man7.org/linux/man-pages/man3/tcgetpgrp.3.html
pub fn foreground_pgrp(fd: RawFd) -> c_int {
    // SAFETY: tcgetpgrp only inspects the descriptor.
    unsafe { libc::tcgetpgrp(fd) }
}

/// `SIGIO` blocked for the calling thread until this is dropped, which
/// restores the mask as it was.
pub struct SigioBlocked {
    old: libc::sigset_t,
}

impl SigioBlocked {
    /// Blocks `SIGIO` ([sigprocmask(2)], not retried).
    ///
    /// [sigprocmask(2)]: https://man7.org/linux/man-pages/man2/sigprocmask.2.html
    pub fn new() -> Result<SigioBlocked> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it.
        let mut set: libc::sigset_t = unsafe { core::mem::zeroed() };
        // SAFETY: as above; the old mask is written by sigprocmask.
        let mut old: libc::sigset_t = unsafe { core::mem::zeroed() };
        // SAFETY: `set` and `old` are valid sigsets.
        let rc = unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGIO);
            libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old)
        };
        Errno::result(rc)?;
        Ok(SigioBlocked { old })
    }
}

impl Drop for SigioBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old, core::ptr::null_mut()) };
    }
}

/// Runs `write` with output processing (`OPOST`) turned on for terminal
/// `fd`, as `generic_console_write` did: a console line in raw mode gets
/// `\n` as "new line and carriage return" for kernel messages. `SIGIO` is
/// blocked meanwhile; the settings are applied with `TCSAFLUSH` (which
/// waits for pending output and drops unread input, as in C), and put
/// back whatever `write` did. A descriptor that is no terminal is written
/// to directly.
///
/// An error before `write` ran (blocking `SIGIO`, reading or changing the
/// settings) is returned and nothing is written. The C returned there
/// with `SIGIO` left blocked; here the mask is always restored.
pub fn with_output_processing<T>(fd: RawFd, write: impl FnOnce() -> T) -> Result<T> {
    if !is_tty(fd) {
        return Ok(write());
    }
    let blocked = SigioBlocked::new()?;
    let save = get_attr(fd)?;
    let mut cooked = save;
    cooked.c_oflag |= libc::OPOST;
    set_attr(fd, libc::TCSAFLUSH, &cooked)?;
    let out = write();
    // As in C: whatever happens, try to put raw mode back; nothing to
    // report if that fails.
    let _ = set_attr(fd, libc::TCSAFLUSH, &save);
    drop(blocked);
    Ok(out)
}

/// The settings `cfmakeraw` makes of `t` (as `raw()` in `util.c` applies
/// them), for comparisons.
pub fn made_raw(t: &Termios) -> Termios {
    let mut r = *t;
    // SAFETY: `r` is a valid termios.
    unsafe { libc::cfmakeraw(&mut r) };
    r
}

/// Whether two settings agree in everything a terminal reports back
/// (flags, control characters and speeds).
pub fn same(a: &Termios, b: &Termios) -> bool {
    a.c_iflag == b.c_iflag
        && a.c_oflag == b.c_oflag
        && a.c_cflag == b.c_cflag
        && a.c_lflag == b.c_lflag
        && a.c_cc == b.c_cc
        && a.c_ispeed == b.c_ispeed
        && a.c_ospeed == b.c_ospeed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::chan::pty::test_support::Pair;
    use crate::host::file;
    use std::os::fd::AsRawFd;

    fn blocked_signals() -> libc::sigset_t {
        // SAFETY: sigset_t is plain data.
        let mut cur: libc::sigset_t = unsafe { core::mem::zeroed() };
        // SAFETY: a NULL new set only reads the mask.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, core::ptr::null(), &mut cur) };
        cur
    }

    fn sigio_blocked() -> bool {
        let cur = blocked_signals();
        // SAFETY: a valid sigset.
        unsafe { libc::sigismember(&cur, libc::SIGIO) == 1 }
    }

    #[test]
    fn window_size_reads_what_was_set() {
        let pair = Pair::open();
        set_window_size(pair.master.as_raw_fd(), 24, 80).unwrap();
        assert_eq!(window_size(pair.slave.as_raw_fd()), Ok((24, 80)));
        set_window_size(pair.slave.as_raw_fd(), 50, 132).unwrap();
        assert_eq!(window_size(pair.master.as_raw_fd()), Ok((50, 132)));
        let [a, _b] = crate::host::socket::pipe(true, true).unwrap();
        assert_eq!(window_size(a.as_raw_fd()), Err(Errno::ENOTTY));
        assert!(!is_tty(a.as_raw_fd()));
        assert!(is_tty(pair.slave.as_raw_fd()));
        assert_eq!(get_attr(a.as_raw_fd()).unwrap_err(), Errno::ENOTTY);
    }

    #[test]
    fn a_terminal_we_do_not_control_has_no_foreground_group_for_us() {
        let pair = Pair::open();
        assert_eq!(foreground_pgrp(pair.slave.as_raw_fd()), -1);
        assert_eq!(Errno::last(), Errno::ENOTTY);
    }

    #[test]
    fn console_output_gets_carriage_returns_and_raw_mode_back() {
        let pair = Pair::open();
        let slave = pair.slave.as_raw_fd();
        let raw_mode = made_raw(&get_attr(slave).unwrap());
        set_attr(slave, libc::TCSANOW, &raw_mode).unwrap();
        assert!(!sigio_blocked());
        let n = with_output_processing(slave, || {
            assert!(sigio_blocked(), "SIGIO is blocked while writing");
            assert_ne!(get_attr(slave).unwrap().c_oflag & libc::OPOST, 0);
            file::write(slave, b"a\nb").unwrap()
        })
        .unwrap();
        assert_eq!(n, 3);
        assert!(!sigio_blocked(), "the mask is restored");
        assert!(same(&get_attr(slave).unwrap(), &raw_mode), "raw again");
        let mut buf = [0u8; 16];
        let got = file::read(pair.master.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..got], b"a\r\nb");
        // Raw output is left alone.
        file::write(slave, b"c\nd").unwrap();
        let got = file::read(pair.master.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..got], b"c\nd");
    }

    #[test]
    fn console_output_to_no_terminal_is_written_directly() {
        let [a, b] = crate::host::socket::pipe(true, true).unwrap();
        let n = with_output_processing(b.as_raw_fd(), || {
            assert!(!sigio_blocked());
            file::write(b.as_raw_fd(), b"x\n").unwrap()
        });
        assert_eq!(n, Ok(2));
        let mut buf = [0u8; 4];
        assert_eq!(file::read(a.as_raw_fd(), &mut buf), Ok(2));
    }
}
