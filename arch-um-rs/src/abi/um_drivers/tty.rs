// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing `arch/um/drivers/tty.c`: `tty_ops`, the `tty:DEV`
//! channel, a host terminal device opened by its path (`ssl0=tty:/dev/ttyS0`).
//!
//! As in C: the channel keeps a pointer to the device's name in the
//! description (which the line keeps), opens it read-write, read-only or
//! write-only as the line uses it (neither is read-only), not
//! close-on-exec, without retrying `EINTR`, and reports that name; the
//! terminal is made raw if the line asks for it.
//!
//! Divergences from the C, all where it misbehaved:
//!
//! * When the terminal's settings cannot be read or it cannot be made
//!   raw, the descriptor just opened is closed (the C leaked it), and the
//!   negative errno returned (the C returned -1 for the former).
//! * NULL arguments the C would have dereferenced are refused: `init`
//!   returns NULL, `open` `-EFAULT`.

use core::ffi::{c_char, c_int, c_void};

use super::chan_user::{ChanOps, ChanOpts, chan_alloc, cstr_arg, generic_ops, save_and_make_raw};
use crate::host::chan::term;
use crate::kernel::Level;
use crate::klog;

generic_ops!("os-um-drivers-tty");

/// `struct tty_chan`.
#[repr(C)]
struct TtyChan {
    /// The device's path, inside the line's description.
    dev: *mut c_char,
    raw: c_int,
    /// The terminal's settings before `open` made it raw (nothing puts
    /// them back, as in C).
    tt: term::Termios,
}

/// `init`: `str` is `":DEV"`.
unsafe extern "C" fn tty_chan_init(
    str: *mut c_char,
    _device: c_int,
    opts: *const ChanOpts,
) -> *mut c_void {
    // SAFETY: the description, a C string, or NULL.
    let (Some(desc), false) = (unsafe { cstr_arg(str) }, opts.is_null()) else {
        return core::ptr::null_mut();
    };
    if !desc.to_bytes().starts_with(b":") {
        klog!(
            Level::Err,
            "tty_init : channel type 'tty' must specify a device"
        );
        return core::ptr::null_mut();
    }
    // SAFETY: the line's options, non-NULL.
    let raw = unsafe { (*opts).raw };
    chan_alloc(TtyChan {
        // SAFETY: one past the ':', within the C string.
        dev: unsafe { str.add(1) },
        raw,
        tt: term::zeroed(),
    })
    .cast()
}

/// `open`: the device, opened for what the line does with it.
unsafe extern "C" fn tty_open(
    input: c_int,
    output: c_int,
    _primary: c_int,
    d: *mut c_void,
    dev_out: *mut *mut c_char,
) -> c_int {
    if d.is_null() || dev_out.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: our data, from tty_chan_init.
    let data = unsafe { &mut *d.cast::<TtyChan>() };
    let mode = match (input != 0, output != 0) {
        (true, true) => libc::O_RDWR,
        (false, true) => libc::O_WRONLY,
        _ => libc::O_RDONLY,
    };
    // SAFETY: the device's name, a C string the line keeps; no mode without O_CREAT.
    let fd = unsafe { libc::open64(data.dev, mode) };
    if fd < 0 {
        return -(nix::errno::Errno::last() as c_int);
    }
    let fail = |err: c_int| {
        // SAFETY: the descriptor just opened, closed once.
        unsafe { libc::close(fd) };
        err
    };
    if data.raw != 0 {
        let err = save_and_make_raw(fd, &mut data.tt);
        if err != 0 {
            return fail(err);
        }
    }
    // SAFETY: writable by the caller's contract.
    unsafe { *dev_out = data.dev };
    fd
}

/// `const struct chan_ops tty_ops`.
#[cfg_attr(feature = "os-um-drivers-tty", unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static tty_ops: ChanOps = ChanOps {
    kind: c"tty".as_ptr(),
    init: Some(tty_chan_init),
    open: Some(tty_open),
    close: Some(generic::generic_close),
    read: Some(generic::generic_read),
    write: Some(generic::generic_write),
    console_write: Some(generic::generic_console_write),
    window_size: Some(generic::generic_window_size),
    free: Some(generic::generic_free),
    winch: 0,
};

#[cfg(all(test, not(feature = "kernel")))]
mod tests {
    use core::ffi::CStr;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use super::*;
    use crate::abi::um_drivers::chan_user::test_support::{Chan, config_string, opts};
    use crate::host::chan::pty::test_support::{Pair, rdev};
    use crate::host::file;

    #[test]
    fn the_table_is_the_cs() {
        // SAFETY: a static C string.
        assert_eq!(unsafe { CStr::from_ptr(tty_ops.kind) }, c"tty");
        assert_eq!(tty_ops.winch, 0);
    }

    #[test]
    fn a_pty_slave_opens_by_its_path() {
        let pair = Pair::open();
        let name = pair.name.to_str().unwrap();
        let before = term::get_attr(pair.slave.as_raw_fd()).unwrap();
        let chan = Chan::init(&tty_ops, &format!(":{name}"), 0, &opts(1)).unwrap();
        let (fd, dev) = chan.open(1, 1).unwrap();
        // SAFETY: the channel's descriptor, ours to close.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        assert_eq!(dev.as_deref(), Some(name));
        assert_eq!(
            config_string(&tty_ops, dev.as_deref()),
            format!("tty:{name}")
        );
        assert_eq!(rdev(fd), rdev(pair.slave.as_raw_fd()));
        // SAFETY: F_GETFL takes no argument.
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        assert_eq!(fl & libc::O_ACCMODE, libc::O_RDWR);
        let now = term::get_attr(fd).unwrap();
        assert!(term::same(&now, &term::made_raw(&before)));
        // Raw: what the master sends arrives byte for byte.
        file::write(pair.master.as_raw_fd(), b"a\r").unwrap();
        let mut c = 0u8;
        // SAFETY: a writable byte.
        unsafe {
            assert_eq!(tty_ops.read.unwrap()(fd, &mut c, chan.data), 1);
            assert_eq!(c, b'a');
            assert_eq!(tty_ops.read.unwrap()(fd, &mut c, chan.data), 1);
            assert_eq!(c, b'\r');
        }
        drop(owned);
    }

    #[test]
    fn the_mode_follows_the_lines_use() {
        let pair = Pair::open();
        let name = pair.name.to_str().unwrap();
        let chan = Chan::init(&tty_ops, &format!(":{name}"), 0, &opts(0)).unwrap();
        for (input, output, mode) in [
            (1, 0, libc::O_RDONLY),
            (0, 1, libc::O_WRONLY),
            (0, 0, libc::O_RDONLY),
        ] {
            let (fd, _) = chan.open(input, output).unwrap();
            // SAFETY: the channel's descriptor, ours to close.
            let _owned = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: F_GETFL and F_GETFD take no argument.
            let (fl, fdfl) = unsafe {
                (
                    libc::fcntl(fd, libc::F_GETFL),
                    libc::fcntl(fd, libc::F_GETFD),
                )
            };
            assert_eq!(fl & libc::O_ACCMODE, mode);
            assert_eq!(fdfl & libc::FD_CLOEXEC, 0);
        }
    }

    #[test]
    fn bad_devices_are_refused() {
        let o = opts(1);
        assert!(Chan::init(&tty_ops, "", 0, &o).is_none());
        assert!(Chan::init(&tty_ops, "/dev/tty", 0, &o).is_none());
        let chan = Chan::init(&tty_ops, ":/nonexistent/tty", 0, &o).unwrap();
        assert_eq!(chan.open(1, 1), Err(-libc::ENOENT));
        // Not a terminal, with raw asked for: refused, and closed.
        let chan = Chan::init(&tty_ops, ":/dev/null", 0, &o).unwrap();
        assert_eq!(chan.open(1, 1), Err(-libc::ENOTTY));
        // Without raw, any file goes.
        let chan = Chan::init(&tty_ops, ":/dev/null", 0, &opts(0)).unwrap();
        let (fd, dev) = chan.open(0, 1).unwrap();
        // SAFETY: the channel's descriptor, ours to close.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        assert_eq!(dev.as_deref(), Some("/dev/null"));
        // SAFETY: NULLs are refused.
        unsafe {
            assert!(tty_chan_init(core::ptr::null_mut(), 0, &o).is_null());
            let mut dev: *mut c_char = core::ptr::null_mut();
            assert_eq!(
                tty_open(1, 1, 1, core::ptr::null_mut(), &mut dev),
                -libc::EFAULT
            );
        }
    }
}
