// SPDX-License-Identifier: GPL-2.0
//! Program execution with a `PATH` search that never allocates: the safe
//! core behind [`crate::abi::execvp`], which replaces
//! `arch/um/os-Linux/execvp.c`.
//!
//! UML runs this in freshly forked helper processes, where the kernel's
//! wrapped `malloc` must not be used, so candidate paths are built in a
//! caller-supplied buffer rather than on the heap as
//! [execvp(3)](https://man7.org/linux/man-pages/man3/execvp.3.html) may.

use core::ffi::{CStr, c_char};
use core::marker::PhantomData;

use nix::errno::Errno;

/// The search path used when `PATH` is unset: the current directory, then
/// `/bin` and `/usr/bin`.
pub const DEFAULT_PATH: &CStr = c":/bin:/usr/bin";

/// A NULL-terminated `argv` array of C strings, as execv(3) takes it.
#[derive(Clone, Copy, Debug)]
pub struct Argv<'a> {
    ptr: *const *const c_char,
    _strings: PhantomData<&'a CStr>,
}

impl Argv<'_> {
    /// Wraps a C `argv`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to an array of pointers to NUL-terminated strings
    /// ending with a NULL pointer, all live for the lifetime chosen.
    pub unsafe fn from_ptr(ptr: *const *const c_char) -> Self {
        Self {
            ptr,
            _strings: PhantomData,
        }
    }
}

/// [execv(3)](https://man7.org/linux/man-pages/man3/execv.3.html): only
/// returns, with the host's error, on failure.
pub fn execv(path: &CStr, argv: Argv<'_>) -> Errno {
    // SAFETY: `path` is NUL-terminated; `argv` is a NULL-terminated C-string array (Argv invariant).
    unsafe { libc::execv(path.as_ptr(), argv.ptr) };
    Errno::last()
}

/// Writes `dir/file` and a NUL to the front of `buf`, or `None` if it does
/// not fit.
fn join<'b>(buf: &'b mut [u8], dir: &[u8], file: &[u8]) -> Option<&'b CStr> {
    let len = dir.len() + 1 + file.len();
    let out = buf.get_mut(..len + 1)?;
    out[..dir.len()].copy_from_slice(dir);
    out[dir.len()] = b'/';
    out[dir.len() + 1..len].copy_from_slice(file);
    out[len] = 0;
    CStr::from_bytes_with_nul(out).ok()
}

/// Executes `file` with `argv` and the current environment, like execvp(3)
/// but without allocating. Only returns on failure, with the error the C
/// layer reports:
///
/// * an empty `file` is `ENOENT`; a `file` containing `/` is executed as it
///   is, and its error returned.
/// * otherwise each element of `path` (the value of `PATH`, or
///   [`DEFAULT_PATH`] when `None`) is tried in order, an empty element
///   meaning the current directory. Candidates are built in `buf`; one that
///   does not fit (with its NUL) fails with `ENAMETOOLONG`, as the host
///   would fail a path longer than `PATH_MAX` when `buf` is `PATH_MAX` long.
/// * `ENOENT`, `ESTALE`, `ENOTDIR`, `ENODEV`, `ETIMEDOUT` and `ENOEXEC` move
///   on to the next element, as does `EACCES`, which is remembered; any
///   other error is returned at once (the file exists but could not run).
/// * when every element failed: `EACCES` if any attempt was denied, else
///   the error of the last attempt.
///
/// No shell fallback for `ENOEXEC` is attempted (the host kernel already
/// runs `#!` scripts).
pub fn execvp_in(buf: &mut [u8], file: &CStr, argv: Argv<'_>, path: Option<&CStr>) -> Errno {
    let name = file.to_bytes();
    if name.is_empty() {
        return Errno::ENOENT;
    }
    if name.contains(&b'/') {
        return execv(file, argv);
    }
    let mut denied = false;
    let mut last = Errno::ENOENT;
    for dir in path
        .unwrap_or(DEFAULT_PATH)
        .to_bytes()
        .split(|&b| b == b':')
    {
        let err = if dir.is_empty() {
            execv(file, argv)
        } else {
            match join(buf, dir, name) {
                Some(candidate) => execv(candidate, argv),
                None => Errno::ENAMETOOLONG,
            }
        };
        match err {
            Errno::EACCES => denied = true,
            Errno::ENOENT
            | Errno::ESTALE
            | Errno::ENOTDIR
            | Errno::ENODEV
            | Errno::ETIMEDOUT
            | Errno::ENOEXEC => {}
            other => return other,
        }
        last = err;
    }
    if denied { Errno::EACCES } else { last }
}

#[cfg(test)]
pub(crate) mod tests;
