// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/execvp.c.

use core::ffi::{CStr, c_char, c_int};

use nix::errno::Errno;

use crate::host::exec::{self, Argv};

/// `int execvp_noalloc(char *buf, const char *file, char *const argv[])`:
/// executes `file`, searching `PATH` (`":/bin:/usr/bin"` if unset) when it
/// has no `/`, without allocating; returns only on failure, with the
/// negative errno (see [`exec::execvp_in`] for which one).
///
/// # Safety
///
/// `buf` is NULL or a writable scratch buffer of `PATH_MAX` bytes (UML's
/// helpers allocate exactly that); `file` is a C string; `argv` is a
/// NULL-terminated array of C strings.
#[cfg_attr(feature = "os-execvp", unsafe(no_mangle))]
pub unsafe extern "C" fn execvp_noalloc(
    buf: *mut c_char,
    file: *const c_char,
    argv: *const *mut c_char,
) -> c_int {
    if file.is_null() {
        return -(Errno::EFAULT as c_int);
    }
    // SAFETY: non-NULL, so a C string by the caller's guarantee.
    let file = unsafe { CStr::from_ptr(file) };
    let buf: &mut [u8] = if buf.is_null() {
        &mut []
    } else {
        // SAFETY: PATH_MAX writable bytes by the caller's guarantee.
        unsafe { core::slice::from_raw_parts_mut(buf.cast(), libc::PATH_MAX as usize) }
    };
    // SAFETY: the caller guarantees a NULL-terminated argv for this call.
    let argv = unsafe { Argv::from_ptr(argv.cast()) };
    // SAFETY: getenv's result is NULL or points into the environment, unchanged while helpers run.
    let path = unsafe { libc::getenv(c"PATH".as_ptr()) };
    // SAFETY: non-NULL, so a NUL-terminated environment value.
    let path = (!path.is_null()).then(|| unsafe { CStr::from_ptr(path) });
    -(exec::execvp_in(buf, file, argv, path) as c_int)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::ptr::null;

    #[test]
    fn empty_name_is_enoent() {
        let mut buf = [0 as c_char; libc::PATH_MAX as usize];
        let argv = [c"x".as_ptr().cast_mut(), null::<c_char>().cast_mut()];
        // SAFETY: valid buffer, string and argv.
        let rc = unsafe { execvp_noalloc(buf.as_mut_ptr(), c"".as_ptr(), argv.as_ptr()) };
        assert_eq!(rc, -libc::ENOENT);
    }

    #[test]
    fn missing_programs_are_enoent() {
        let mut buf = [0x55 as c_char; libc::PATH_MAX as usize];
        let argv = [c"x".as_ptr().cast_mut(), null::<c_char>().cast_mut()];
        for name in [
            c"/nonexistent/arch-um-rs-no-such",
            c"arch-um-rs-no-such-program-4f1d",
        ] {
            // SAFETY: valid buffer, string and argv.
            let rc = unsafe { execvp_noalloc(buf.as_mut_ptr(), name.as_ptr(), argv.as_ptr()) };
            assert_eq!(rc, -libc::ENOENT, "{name:?}");
        }
    }

    #[test]
    fn null_file_is_efault() {
        // SAFETY: a NULL file is rejected before anything is read.
        let rc = unsafe { execvp_noalloc(core::ptr::null_mut(), null(), null()) };
        assert_eq!(rc, -libc::EFAULT);
    }

    #[test]
    fn runs_a_program_found_on_path() {
        // In a child: the shim searches this process's PATH for sh.
        let status = crate::host::exec::tests::in_child(|| {
            let mut buf = [0 as c_char; libc::PATH_MAX as usize];
            let argv = [
                c"sh".as_ptr().cast_mut(),
                c"-c".as_ptr().cast_mut(),
                c"exit 7".as_ptr().cast_mut(),
                core::ptr::null_mut(),
            ];
            // SAFETY: valid buffer, string and argv.
            let rc = unsafe { execvp_noalloc(buf.as_mut_ptr(), c"sh".as_ptr(), argv.as_ptr()) };
            100 + (-rc).min(100)
        });
        assert_eq!(status, 7);
    }
}
