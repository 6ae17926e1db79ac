// SPDX-License-Identifier: GPL-2.0
//! Fields of `/proc/PID/stat` (proc(5)), read without allocation: the
//! process layer asks for a parent pid or a program counter on paths where
//! the heap may be the kernel's.
//!
//! The procfs crate parses the same file (and the tests check our reading
//! against it), but it allocates and brings a large parser into the kernel
//! image for two numbers.

use core::ffi::c_int;
use std::io::Write as _;

use nix::errno::Errno;

use crate::host::file::retry_eintr;

/// A `/proc/PID/stat` line, as much of it as fits (the fields the os layer
/// needs come well before the end).
pub struct StatLine {
    buf: [u8; 512],
    len: usize,
}

impl StatLine {
    /// Reads `/proc/<pid>/stat`. The error names the failing call.
    pub fn read(pid: c_int) -> Result<StatLine, (&'static str, Errno)> {
        let mut path = [0u8; 32];
        let mut cur = std::io::Cursor::new(&mut path[..31]);
        let _ = write!(cur, "/proc/{pid}/stat");
        // SAFETY: `path` is NUL-terminated (byte 31 and everything after the text are 0).
        let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(("open", Errno::last()));
        }
        let fd = crate::host::file::owned(fd);
        let mut line = StatLine {
            buf: [0; 512],
            len: 0,
        };
        let n = retry_eintr(|| {
            crate::host::file::read(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut line.buf)
        })
        .map_err(|e| ("read", e))?;
        line.len = n;
        Ok(line)
    }

    /// Parses a line from memory (tests, and what `read` got).
    pub fn from_bytes(bytes: &[u8]) -> StatLine {
        let mut line = StatLine {
            buf: [0; 512],
            len: 0,
        };
        let n = bytes.len().min(line.buf.len());
        line.buf[..n].copy_from_slice(&bytes[..n]);
        line.len = n;
        line
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Field `n` (1-based, as proc(5) numbers them) as text, for `n >= 3`:
    /// the fields after the command name, which may itself hold spaces and
    /// parentheses, so the scan starts after its last `)`.
    pub fn field(&self, n: usize) -> Option<&[u8]> {
        let text = self.as_bytes();
        let close = text.iter().rposition(|&b| b == b')')?;
        text[close + 1..]
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty())
            .nth(n.checked_sub(3)?)
    }

    /// Field `n` as a number.
    pub fn number<T: core::str::FromStr>(&self, n: usize) -> Option<T> {
        core::str::from_utf8(self.field(n)?).ok()?.parse().ok()
    }
}

/// Field 4: the parent pid.
pub const FIELD_PPID: usize = 4;
/// Field 30: `kstkeip`, the program counter (0 unless the kernel exposes it).
pub const FIELD_KSTKEIP: usize = 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_after_a_tricky_command_name() {
        let line = StatLine::from_bytes(b"42 (a) b (c)) S 7 42 42 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 99 1000 10 18446744073709551615 1 2 3 4 1234 0 0\n");
        assert_eq!(line.field(3), Some(&b"S"[..]));
        assert_eq!(line.number::<i32>(FIELD_PPID), Some(7));
        assert_eq!(line.number::<u64>(FIELD_KSTKEIP), Some(1234));
        assert_eq!(line.field(60), None);
        assert_eq!(StatLine::from_bytes(b"garbage").field(4), None);
    }

    #[test]
    fn agrees_with_procfs() {
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let ours = StatLine::read(me).unwrap();
        let theirs = procfs::process::Process::new(me).unwrap().stat().unwrap();
        assert_eq!(ours.number::<i32>(FIELD_PPID), Some(theirs.ppid));
        assert_eq!(ours.number::<u64>(FIELD_KSTKEIP), Some(theirs.kstkeip));
        assert_eq!(ours.number::<i32>(5), Some(theirs.pgrp));
        assert_eq!(ours.number::<i32>(6), Some(theirs.session));
        assert!(matches!(StatLine::read(-5), Err(("open", Errno::ENOENT))));
    }
}
