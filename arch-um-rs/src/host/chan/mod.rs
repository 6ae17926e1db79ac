// SPDX-License-Identifier: GPL-2.0
//! The host side of UML's console and serial-line channels: the safe core
//! behind [`crate::abi::um_drivers::chan_user`] and the channel types of
//! `arch/um/drivers` (`fd.c`, `null.c`, `pty.c`, `tty.c`, `xterm.c`,
//! `port_user.c`).
//!
//! A channel is a host descriptor a console or serial line of the guest
//! reads and writes one byte at a time ([`read_byte`], [`write_once`]):
//! a descriptor UML inherited (`fd:0`), a pseudo-terminal it opens
//! ([`pty`]), a terminal device (`tty:/dev/ttyS0`), an xterm it starts
//! ([`xterm`]), or a TCP port telnet clients connect to ([`port`]).
//! [`term`] holds the terminal settings every type uses (raw mode, the
//! window size, `OPOST` around console output), and [`winch`] the helper
//! that turns the host's `SIGWINCH` for a terminal UML does not control
//! into bytes on a socket.
//!
//! Nothing here allocates or uses a kernel symbol: the C ABI layer owns
//! the memory the kernel half sees, and the logging.

use core::ffi::c_int;
use std::os::fd::RawFd;

use nix::errno::Errno;

use super::file::Result;

pub mod parse;
pub mod port;
pub mod pty;
pub mod term;
pub mod winch;
pub mod xterm;

/// Reads one byte from `fd` into `out`, as `generic_read` did: `Ok(true)`
/// with a byte, `Ok(false)` when the descriptor has nothing now
/// (`EAGAIN`), `Err(EIO)` at end of file, else the read's error.
/// Interrupted reads are retried (the C's `CATCH_EINTR`).
pub fn read_byte(fd: RawFd, out: &mut u8) -> Result<bool> {
    loop {
        // SAFETY: reads at most one byte into `out`, which is writable.
        let n = unsafe { libc::read(fd, (out as *mut u8).cast(), 1) };
        if n > 0 {
            return Ok(true);
        }
        if n == 0 {
            return Err(Errno::EIO);
        }
        match Errno::last() {
            Errno::EINTR => {}
            Errno::EAGAIN => return Ok(false),
            e => return Err(e),
        }
    }
}

/// Writes `buf` to `fd` with one `write(2)`, retried only when
/// interrupted, as `generic_write` did: `Ok(n)` for `n > 0` bytes written
/// (possibly fewer than `buf` holds: the caller keeps the rest),
/// `Ok(0)` when the descriptor would block (`EAGAIN`), `Err(EIO)` when
/// `write` wrote nothing (an empty `buf` included), else the error.
///
/// The C's comment says short writes are retried; its loop does not (a
/// `continue` in a `do ... while` goes to the test, which is false after a
/// successful write), and neither does this: the callers in `line.c`
/// buffer what was not written.
pub fn write_once(fd: RawFd, buf: &[u8]) -> Result<usize> {
    loop {
        // SAFETY: `buf` is readable for its length.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n > 0 {
            return Ok(n as usize);
        }
        if n == 0 {
            return Err(Errno::EIO);
        }
        match Errno::last() {
            Errno::EINTR => {}
            Errno::EAGAIN => return Ok(0),
            e => return Err(e),
        }
    }
}

/// Formats `fmt` into `out` the way `printf` would for a format whose only
/// conversions are `%d` (taking `args` in order; a missing one is 0) and
/// `%%`; any other `%` sequence is copied as it is, so a format from the
/// command line cannot make this read anything but `args`. The result is
/// cut to fit `out` with a NUL; its length (without the NUL) is returned.
///
/// The xterm title (`"Virtual Console #%d"`, with the umid appended) and
/// the stand-in for `os_info` in tests use this.
pub fn format_ints(fmt: &[u8], args: &[c_int], out: &mut [u8]) -> usize {
    let Some(room) = out.len().checked_sub(1) else {
        return 0;
    };
    let mut len = 0;
    let mut push = |bytes: &[u8], len: &mut usize| {
        let take = bytes.len().min(room - *len);
        out[*len..*len + take].copy_from_slice(&bytes[..take]);
        *len += take;
    };
    let mut args = args.iter();
    let mut i = 0;
    while i < fmt.len() && len < room {
        match (fmt[i], fmt.get(i + 1)) {
            (b'%', Some(b'd')) => {
                let mut digits = [0u8; 12];
                let n = format_int(args.next().copied().unwrap_or(0), &mut digits);
                push(&digits[..n], &mut len);
                i += 2;
            }
            (b'%', Some(b'%')) => {
                push(b"%", &mut len);
                i += 2;
            }
            (b, _) => {
                push(&[b], &mut len);
                i += 1;
            }
        }
    }
    out[len] = 0;
    len
}

/// `v` in decimal (as `%d` prints it) into `out`; the number of bytes.
pub fn format_int(v: c_int, out: &mut [u8; 12]) -> usize {
    let mut tmp = [0u8; 12];
    let mut n = 0;
    let mut u = v.unsigned_abs();
    loop {
        tmp[n] = b'0' + (u % 10) as u8;
        n += 1;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    let mut len = 0;
    if v < 0 {
        out[0] = b'-';
        len = 1;
    }
    for d in tmp[..n].iter().rev() {
        out[len] = *d;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn fmt(f: &str, args: &[c_int], size: usize) -> String {
        let mut out = vec![0xffu8; size];
        let n = format_ints(f.as_bytes(), args, &mut out);
        if size > 0 {
            assert_eq!(out[n], 0, "NUL-terminated");
        }
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    #[test]
    fn ints_are_formatted_as_printf_does() {
        assert_eq!(fmt("Virtual Console #%d", &[3], 256), "Virtual Console #3");
        assert_eq!(
            fmt("Serial Line #%d (um%%id)", &[-12], 256),
            "Serial Line #-12 (um%id)"
        );
        assert_eq!(
            fmt("%d %d %d", &[i32::MIN, i32::MAX], 64),
            "-2147483648 2147483647 0"
        );
        // Other conversions are text: nothing is read for them.
        assert_eq!(fmt("%s %n %x %", &[7], 64), "%s %n %x %");
        // Cut to fit, always terminated.
        assert_eq!(fmt("abcdef", &[], 4), "abc");
        assert_eq!(fmt("#%d", &[123456], 5), "#123");
        assert_eq!(fmt("x", &[], 1), "");
        assert_eq!(fmt("x", &[], 0), "");
    }

    #[test]
    fn bytes_come_and_go_with_the_c_conventions() {
        let [a, b] = crate::host::socket::pipe(true, true).unwrap();
        crate::host::file::set_fd_block(a.as_raw_fd(), false).unwrap();
        let mut c = 0u8;
        assert_eq!(read_byte(a.as_raw_fd(), &mut c), Ok(false), "EAGAIN");
        assert_eq!(write_once(b.as_raw_fd(), b"xy"), Ok(2));
        assert_eq!(read_byte(a.as_raw_fd(), &mut c), Ok(true));
        assert_eq!(c, b'x');
        assert_eq!(read_byte(a.as_raw_fd(), &mut c), Ok(true));
        assert_eq!(c, b'y');
        assert_eq!(write_once(b.as_raw_fd(), b""), Err(Errno::EIO));
        drop(b);
        assert_eq!(read_byte(a.as_raw_fd(), &mut c), Err(Errno::EIO), "EOF");
        assert_eq!(read_byte(-1, &mut c), Err(Errno::EBADF));
        assert_eq!(write_once(-1, b"z"), Err(Errno::EBADF));
    }

    #[test]
    fn a_full_descriptor_takes_what_fits_then_would_block() {
        let [a, b] = crate::host::socket::pipe(true, true).unwrap();
        crate::host::file::set_fd_block(b.as_raw_fd(), false).unwrap();
        let big = vec![b'q'; 1 << 22];
        let first = write_once(b.as_raw_fd(), &big).unwrap();
        assert!(first > 0 && first < big.len(), "one short write: {first}");
        let mut more = 0;
        loop {
            match write_once(b.as_raw_fd(), &big).unwrap() {
                0 => break,
                n => more += n,
            }
            assert!(more < big.len() * 4, "never filled");
        }
        drop(a);
        assert_eq!(write_once(b.as_raw_fd(), b"x"), Err(Errno::EPIPE));
    }
}
