// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing `arch/um/drivers/null.c`: `null_ops`, the `null`
//! channel. Output goes to `/dev/null`, input never comes (`read` is
//! `-ENODEV`), and the channel reports no device name.
//!
//! As in C: `init` returns the address of a static as the channel's data
//! (nothing is allocated, `free` does nothing), and `/dev/null` is opened
//! read-write, not close-on-exec, without retrying `EINTR`. The one
//! divergence: a NULL `dev_out`, which the C wrote through, is `-EFAULT`.

use core::ffi::{c_char, c_int, c_void};

use super::chan_user::{ChanOps, ChanOpts, generic_ops};

generic_ops!("os-um-drivers-null");

/// `DEV_NULL`, which the kernel build passes to `null.c` (`DEV_NULL_PATH`
/// in `arch/um/Makefile-os-Linux`).
const DEV_NULL: &core::ffi::CStr = c"/dev/null";

/// `static int null_chan`: its address is every null channel's data.
static NULL_CHAN: c_int = 0;

unsafe extern "C" fn null_init(
    _str: *mut c_char,
    _device: c_int,
    _opts: *const ChanOpts,
) -> *mut c_void {
    (&raw const NULL_CHAN).cast_mut().cast()
}

unsafe extern "C" fn null_open(
    _input: c_int,
    _output: c_int,
    _primary: c_int,
    _d: *mut c_void,
    dev_out: *mut *mut c_char,
) -> c_int {
    if dev_out.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: writable by the caller's contract.
    unsafe { *dev_out = core::ptr::null_mut() };
    // SAFETY: a C string; no mode without O_CREAT.
    let fd = unsafe { libc::open64(DEV_NULL.as_ptr(), libc::O_RDWR) };
    if fd < 0 {
        -(nix::errno::Errno::last() as c_int)
    } else {
        fd
    }
}

unsafe extern "C" fn null_read(_fd: c_int, _c_out: *mut u8, _unused: *mut c_void) -> c_int {
    -libc::ENODEV
}

unsafe extern "C" fn null_free(_data: *mut c_void) {}

/// `const struct chan_ops null_ops`.
#[cfg_attr(feature = "os-um-drivers-null", unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static null_ops: ChanOps = ChanOps {
    kind: c"null".as_ptr(),
    init: Some(null_init),
    open: Some(null_open),
    close: Some(generic::generic_close),
    read: Some(null_read),
    write: Some(generic::generic_write),
    console_write: Some(generic::generic_console_write),
    window_size: Some(generic::generic_window_size),
    free: Some(null_free),
    winch: 0,
};

#[cfg(all(test, not(feature = "kernel")))]
mod tests {
    use core::ffi::CStr;
    use std::os::fd::{FromRawFd, OwnedFd};

    use super::*;
    use crate::abi::um_drivers::chan_user::test_support::{Chan, config_string, opts};
    use crate::host::file;

    #[test]
    fn the_table_is_the_cs() {
        let ops = &null_ops;
        // SAFETY: a static C string.
        assert_eq!(unsafe { CStr::from_ptr(ops.kind) }, c"null");
        assert_eq!(ops.winch, 0);
    }

    #[test]
    fn output_goes_nowhere_and_input_never_comes() {
        let o = opts(1);
        let a = Chan::init(&null_ops, "", 0, &o).unwrap();
        let b = Chan::init(&null_ops, ":whatever", 3, &o).unwrap();
        assert_eq!(a.data, b.data, "one static for all");
        let (fd, dev) = a.open(1, 1).unwrap();
        // SAFETY: the channel's descriptor, ours to close.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        assert_eq!(dev, None);
        assert_eq!(config_string(&null_ops, dev.as_deref()), "null");
        let st = file::stat_fd(fd).unwrap();
        let null = file::stat_path(c"/dev/null").unwrap();
        assert_eq!(st.st_rdev, null.st_rdev);
        // SAFETY: F_GETFL and F_GETFD take no argument.
        let (fl, fdfl) = unsafe {
            (
                libc::fcntl(fd, libc::F_GETFL),
                libc::fcntl(fd, libc::F_GETFD),
            )
        };
        assert_eq!(fl & libc::O_ACCMODE, libc::O_RDWR);
        assert_eq!(fdfl & libc::FD_CLOEXEC, 0);
        let mut c = 0u8;
        // SAFETY: valid arguments.
        unsafe {
            assert_eq!(null_ops.read.unwrap()(fd, &mut c, a.data), -libc::ENODEV);
            assert_eq!(null_ops.write.unwrap()(fd, b"gone".as_ptr(), 4, a.data), 4);
            assert_eq!(null_ops.console_write.unwrap()(fd, c"x".as_ptr(), 1), 1);
            let (mut r, mut k) = (0, 0);
            assert_eq!(
                null_ops.window_size.unwrap()(fd, a.data, &mut r, &mut k),
                -libc::ENOTTY
            );
            assert_eq!(
                null_open(1, 1, 1, a.data, core::ptr::null_mut()),
                -libc::EFAULT
            );
        }
        drop(owned);
    }
}
