// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/umid.c.
//!
//! The `umid=` option itself is registered by arch/um/kernel/umid.c, which
//! calls [`set_umid`]; this file registers `uml_dir=`, the initcall that
//! makes the umid directory at boot and the exit call that removes it.
//!
//! The state lives in one static [`HostCell`]: it is used during
//! command-line parsing, initcalls and exit calls, all on the UML kernel's
//! single host thread and never from a signal handler, so accesses cannot
//! overlap.

use core::ffi::{c_char, c_int};

use crate::host::umid::UmidState;
use crate::host::util::{HostCell, ShowBytes, c_bytes};

static STATE: HostCell<UmidState> = HostCell::new(UmidState::new());

/// Runs `f` on the global umid state.
fn with_state<R>(f: impl FnOnce(&mut UmidState) -> R) -> R {
    // SAFETY: per the module docs: one host thread, no signal-handler access, no re-entry.
    unsafe { STATE.with(f) }
}

/// Early messages go straight to stderr, like the C layer's `os_warn`: the
/// kernel console does not exist yet while the command line is parsed.
fn warn(args: core::fmt::Arguments<'_>) {
    let msg = crate::kernel::stack_format(args);
    crate::kernel::write_stderr(msg.as_bytes());
    crate::kernel::write_stderr(b"\n");
}

fn home() -> Option<&'static [u8]> {
    // SAFETY: getenv's result is NULL or a C string in the environment, unchanged during boot.
    unsafe {
        let p = libc::getenv(c"HOME".as_ptr());
        (!p.is_null()).then(|| c_bytes(p))
    }
}

fn pid() -> libc::pid_t {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// Sets the umid: 0, -E2BIG if longer than 63 bytes, -EINVAL if it contains
/// `/` or is `.`/`..` (which would name a directory outside uml_dir). A
/// refused value is reported on stderr and the umid stays unset, so a random
/// one is used.
///
/// # Safety
///
/// `name` is a NUL-terminated string.
#[cfg_attr(feature = "os-umid", unsafe(no_mangle))]
pub unsafe extern "C" fn set_umid(name: *mut c_char) -> c_int {
    // SAFETY: the caller passes a NUL-terminated string.
    let name = unsafe { c_bytes(name) };
    match with_state(|s| s.set_umid(name)) {
        Ok(()) => 0,
        Err(e) => {
            warn(format_args!("umid '{}' refused: {}", ShowBytes(name), e));
            -(e.errno() as c_int)
        }
    }
}

/// The umid (empty before it is set or made). Points into a static buffer.
#[cfg_attr(feature = "os-umid", unsafe(no_mangle))]
pub extern "C" fn get_umid() -> *mut c_char {
    // SAFETY: a pointer into the static state; only its address is taken.
    unsafe { (*STATE.as_ptr()).umid().as_ptr().cast_mut() }
}

/// Writes `<uml_dir><umid>/<name>` into `buf` (`len` bytes), making the umid
/// directory first if needed: 0, or -errno (-E2BIG if `buf` is too short).
///
/// # Safety
///
/// `name` is a NUL-terminated string; `buf` is valid for `len` bytes of
/// writes.
#[cfg_attr(feature = "os-umid", unsafe(no_mangle))]
pub unsafe extern "C" fn umid_file_name(name: *mut c_char, buf: *mut c_char, len: c_int) -> c_int {
    // SAFETY: the caller passes a NUL-terminated string.
    let name = unsafe { c_bytes(name) };
    let out: &mut [u8] = if buf.is_null() || len <= 0 {
        &mut []
    } else {
        // SAFETY: the caller guarantees `len` writable bytes at `buf`.
        unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len as usize) }
    };
    match with_state(|s| s.file_name(name, out, home(), pid())) {
        Ok(()) => 0,
        Err(e) => -(e as c_int),
    }
}

/// `uml_dir=<directory>`. An empty or too long value is reported and
/// ignored (the default `~/.uml/` stays).
#[cfg_attr(not(feature = "os-umid"), allow(dead_code))]
unsafe extern "C" fn set_uml_dir(name: *mut c_char, _add: *mut c_int) -> c_int {
    // SAFETY: the command-line parser passes the NUL-terminated value.
    let name = unsafe { c_bytes(name) };
    if let Err(e) = with_state(|s| s.set_uml_dir(name)) {
        warn(format_args!("uml_dir '{}' ignored: {}", ShowBytes(name), e));
    }
    0
}

crate::uml_setup!(
    "os-umid",
    UML_SETUP_UML_DIR,
    c"uml_dir=",
    set_uml_dir,
    c"uml_dir=<directory>\n    The location to place the pid and umid files.\n\n"
);

/// Initcall: makes the umid directory (a random umid if the chosen one is
/// unusable). Always 0: without a directory UML still boots.
#[cfg_attr(not(feature = "os-umid"), allow(dead_code))]
extern "C" fn make_umid_init() -> c_int {
    with_state(|s| s.make_at_boot(home(), pid()));
    0
}

crate::uml_initcall!("os-umid", make_umid_init);

/// Exit call: removes our umid directory and its files.
#[cfg_attr(not(feature = "os-umid"), allow(dead_code))]
extern "C" fn remove_umid_dir() {
    if let Err(e) = with_state(|s| s.remove_dir()) {
        warn(format_args!(
            "remove_umid_dir - remove_files_and_dir failed with err = {}",
            -(e as c_int)
        ));
    }
}

crate::uml_exitcall!("os-umid", remove_umid_dir);

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::{CStr, CString};
    use std::os::unix::ffi::OsStrExt;

    // The only test that touches STATE: the whole boot-to-exit sequence
    // against a temporary uml_dir.
    #[test]
    fn global_umid_lifecycle() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CString::new(tmp.path().as_os_str().as_bytes()).unwrap();
        let mut add = 1;
        // SAFETY: NUL-terminated strings and a valid int.
        unsafe {
            assert_eq!(set_uml_dir(c"".as_ptr().cast_mut(), &mut add), 0);
            assert_eq!(set_uml_dir(dir.as_ptr().cast_mut(), &mut add), 0);
        }
        // SAFETY: get_umid points at a NUL-terminated static buffer.
        assert_eq!(unsafe { CStr::from_ptr(get_umid()) }, c"");
        let long = CString::new([b'x'; 64]).unwrap();
        // SAFETY: NUL-terminated strings.
        unsafe {
            assert_eq!(set_umid(long.as_ptr().cast_mut()), -libc::E2BIG);
            assert_eq!(set_umid(c"a/b".as_ptr().cast_mut()), -libc::EINVAL);
            assert_eq!(set_umid(c"..".as_ptr().cast_mut()), -libc::EINVAL);
            assert_eq!(CStr::from_ptr(get_umid()), c"");
            assert_eq!(set_umid(c"rusty".as_ptr().cast_mut()), 0);
            assert_eq!(CStr::from_ptr(get_umid()), c"rusty");
        }
        assert_eq!(make_umid_init(), 0);
        let umid_dir = tmp.path().join("rusty");
        assert_eq!(
            std::fs::read_to_string(umid_dir.join("pid")).unwrap(),
            format!("{}\n", std::process::id())
        );

        let mut buf = [0 as c_char; 256];
        let mconsole = c"mconsole".as_ptr().cast_mut();
        // SAFETY: NUL-terminated name, 256-byte buffer.
        let rc = unsafe { umid_file_name(mconsole, buf.as_mut_ptr(), 256) };
        assert_eq!(rc, 0);
        // SAFETY: umid_file_name NUL-terminated the buffer.
        let got = unsafe { CStr::from_ptr(buf.as_ptr()) };
        assert_eq!(
            got.to_bytes(),
            umid_dir.join("mconsole").as_os_str().as_bytes()
        );
        // SAFETY: as above, with a buffer that is too short.
        let rc = unsafe { umid_file_name(mconsole, buf.as_mut_ptr(), 4) };
        assert_eq!(rc, -libc::E2BIG);

        std::fs::write(umid_dir.join("mconsole"), b"").unwrap();
        remove_umid_dir();
        assert!(!umid_dir.exists());
    }
}
