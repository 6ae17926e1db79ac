// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing `arch/um/drivers/fd.c`: `fd_ops`, the `fd:N` channel,
//! a descriptor UML inherited (`con0=fd:0,fd:1`).
//!
//! `open` puts a terminal in raw mode if the line asks for it, saving its
//! settings, and names the channel by its number (what `mconsole config`
//! shows after `fd:`); `close` puts the settings back but leaves the
//! descriptor open: it is not UML's to close.
//!
//! Divergences from the C, all where it misbehaved:
//!
//! * `fd:N` takes `N` as the C's `strtoul(.., 0)` read it, but refuses a
//!   number that is no `int` descriptor (the C made `fd:-1` descriptor -1
//!   and `fd:4294967296` descriptor 0); see [`crate::host::chan::parse`].
//! * When the terminal's settings cannot be read, `open` returns the
//!   negative errno (the C returned -1, `-EPERM` to its callers), and
//!   `close` logs the errno (the C logged 1).
//! * NULL arguments the C would have dereferenced are refused: `init`
//!   returns NULL, `open` `-EFAULT`, `close` does nothing.

use core::ffi::{c_char, c_int, c_void};

use super::chan_user::{ChanOps, ChanOpts, chan_alloc, cstr_arg, generic_ops, save_and_make_raw};
use crate::host::chan::{format_int, parse, term};
use crate::host::util::ShowBytes;
use crate::kernel::Level;
use crate::klog;

generic_ops!("os-um-drivers-fd");

/// `struct fd_chan`.
#[repr(C)]
struct FdChan {
    fd: c_int,
    raw: c_int,
    /// The terminal's settings before `open` made it raw.
    tt: term::Termios,
    /// The descriptor's number in decimal, for `*dev_out`.
    str: [c_char; 12],
}

/// `init`: `str` is `":N"`.
unsafe extern "C" fn fd_init(
    str: *mut c_char,
    _device: c_int,
    opts: *const ChanOpts,
) -> *mut c_void {
    // SAFETY: the description, a C string, or NULL.
    let (Some(desc), false) = (unsafe { cstr_arg(str) }, opts.is_null()) else {
        return core::ptr::null_mut();
    };
    let Some(number) = desc.to_bytes().strip_prefix(b":") else {
        klog!(
            Level::Err,
            "fd_init : channel type 'fd' must specify a file descriptor"
        );
        return core::ptr::null_mut();
    };
    let Some(fd) = parse::fd_number(number) else {
        klog!(
            Level::Err,
            "fd_init : couldn't parse file descriptor '{}'",
            ShowBytes(number)
        );
        return core::ptr::null_mut();
    };
    // SAFETY: the line's options, non-NULL.
    let raw = unsafe { (*opts).raw };
    chan_alloc(FdChan {
        fd,
        raw,
        tt: term::zeroed(),
        str: [0; 12],
    })
    .cast()
}

/// `open`: the descriptor, made raw if asked and a terminal.
unsafe extern "C" fn fd_open(
    _input: c_int,
    _output: c_int,
    _primary: c_int,
    d: *mut c_void,
    dev_out: *mut *mut c_char,
) -> c_int {
    if d.is_null() || dev_out.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: our data, from fd_init; the line does not use it meanwhile.
    let data = unsafe { &mut *d.cast::<FdChan>() };
    if data.raw != 0 && term::is_tty(data.fd) {
        let err = save_and_make_raw(data.fd, &mut data.tt);
        if err != 0 {
            return err;
        }
    }
    let mut digits = [0u8; 12];
    let n = format_int(data.fd, &mut digits);
    data.str = [0; 12];
    for (d, &s) in data.str.iter_mut().zip(&digits[..n]) {
        *d = s as c_char;
    }
    // SAFETY: writable by the caller's contract; the name lives in our data.
    unsafe { *dev_out = data.str.as_mut_ptr() };
    data.fd
}

/// `close`: puts a raw terminal's settings back; the descriptor stays
/// open.
unsafe extern "C" fn fd_close(fd: c_int, d: *mut c_void) {
    if d.is_null() {
        return;
    }
    // SAFETY: our data, from fd_init.
    let data = unsafe { &mut *d.cast::<FdChan>() };
    if data.raw == 0 || !term::is_tty(fd) {
        return;
    }
    if let Err(e) = term::set_attr(fd, libc::TCSAFLUSH, &data.tt) {
        klog!(
            Level::Err,
            "Failed to restore terminal state - errno = {}",
            e as c_int
        );
    }
    data.raw = 0;
}

/// `const struct chan_ops fd_ops`.
#[cfg_attr(feature = "os-um-drivers-fd", unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static fd_ops: ChanOps = ChanOps {
    kind: c"fd".as_ptr(),
    init: Some(fd_init),
    open: Some(fd_open),
    close: Some(fd_close),
    read: Some(generic::generic_read),
    write: Some(generic::generic_write),
    console_write: Some(generic::generic_console_write),
    window_size: Some(generic::generic_window_size),
    free: Some(generic::generic_free),
    winch: 1,
};

#[cfg(all(test, not(feature = "kernel")))]
mod tests {
    use core::ffi::CStr;
    use std::ffi::CString;
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::abi::um_drivers::chan_user::test_support::{Chan, config_string, opts};
    use crate::host::chan::pty::test_support::Pair;

    #[test]
    fn the_table_is_the_cs() {
        let ops = &fd_ops;
        // SAFETY: a static C string.
        assert_eq!(unsafe { CStr::from_ptr(ops.kind) }, c"fd");
        assert_eq!(ops.winch, 1);
        assert!(ops.init.is_some() && ops.open.is_some() && ops.close.is_some());
        assert!(ops.read.is_some() && ops.write.is_some() && ops.free.is_some());
        assert!(ops.console_write.is_some() && ops.window_size.is_some());
    }

    #[test]
    fn descriptions_are_parsed_as_the_c_did() {
        let o = opts(1);
        for (desc, fd) in [
            (":0", 0),
            (":1", 1),
            (":017", 15),
            (":0x10", 16),
            (": 5", 5),
        ] {
            let chan = Chan::init(&fd_ops, desc, 0, &o).unwrap_or_else(|| panic!("{desc}"));
            // SAFETY: fd_init's data.
            assert_eq!(unsafe { (*chan.data.cast::<FdChan>()).fd }, fd, "{desc}");
            // SAFETY: as above.
            assert_eq!(unsafe { (*chan.data.cast::<FdChan>()).raw }, 1);
        }
        for bad in [
            "",
            "0",
            ":",
            ":x",
            ":1x",
            ":1,fd:2",
            ":-1",
            ":4294967296",
            ":08",
        ] {
            assert!(Chan::init(&fd_ops, bad, 0, &o).is_none(), "{bad:?}");
        }
        // SAFETY: NULLs are refused.
        unsafe {
            let init = fd_ops.init.unwrap();
            assert!(init(core::ptr::null_mut(), 0, &o).is_null());
            let desc = CString::new(":1").unwrap();
            assert!(init(desc.as_ptr().cast_mut(), 0, core::ptr::null()).is_null());
        }
    }

    #[test]
    fn a_raw_terminal_is_restored_on_close() {
        let pair = Pair::open();
        let slave = pair.slave.as_raw_fd();
        let before = term::get_attr(slave).unwrap();
        let o = opts(1);
        let chan = Chan::init(&fd_ops, &format!(":{slave}"), 0, &o).unwrap();
        let (fd, dev) = chan.open(1, 1).unwrap();
        assert_eq!(fd, slave);
        assert_eq!(dev.as_deref(), Some(slave.to_string().as_str()));
        assert_eq!(
            config_string(&fd_ops, dev.as_deref()),
            format!("fd:{slave}")
        );
        let now = term::get_attr(slave).unwrap();
        assert!(
            term::same(&now, &term::made_raw(&before)),
            "raw as util.c's raw() makes it"
        );
        assert_eq!(now.c_lflag & (libc::ICANON | libc::ECHO), 0);
        chan.close(fd);
        assert!(term::same(&term::get_attr(slave).unwrap(), &before));
        // Still open: fd channels do not close their descriptor.
        assert!(term::is_tty(slave));
        // A second close leaves the settings alone.
        term::set_attr(slave, libc::TCSANOW, &now).unwrap();
        chan.close(fd);
        assert!(term::same(&term::get_attr(slave).unwrap(), &now));
    }

    #[test]
    fn without_raw_the_terminal_is_left_alone() {
        let pair = Pair::open();
        let slave = pair.slave.as_raw_fd();
        let before = term::get_attr(slave).unwrap();
        let o = opts(0);
        let chan = Chan::init(&fd_ops, &format!(":{slave}"), 0, &o).unwrap();
        assert_eq!(chan.open(1, 1).unwrap().0, slave);
        assert!(term::same(&term::get_attr(slave).unwrap(), &before));
        chan.close(slave);
    }

    #[test]
    fn a_descriptor_that_is_no_terminal_opens_as_it_is() {
        let [a, _b] = crate::host::socket::pipe(true, true).unwrap();
        let o = opts(1);
        let chan = Chan::init(&fd_ops, &format!(":{}", a.as_raw_fd()), 0, &o).unwrap();
        let (fd, dev) = chan.open(1, 1).unwrap();
        assert_eq!(fd, a.as_raw_fd());
        assert_eq!(dev.unwrap(), a.as_raw_fd().to_string());
        chan.close(fd);
        // SAFETY: NULL arguments are refused.
        unsafe {
            let mut dev: *mut c_char = core::ptr::null_mut();
            assert_eq!(
                fd_ops.open.unwrap()(1, 1, 0, core::ptr::null_mut(), &mut dev),
                -libc::EFAULT
            );
            assert_eq!(
                fd_ops.open.unwrap()(1, 1, 0, chan.data, core::ptr::null_mut()),
                -libc::EFAULT
            );
            fd_ops.close.unwrap()(fd, core::ptr::null_mut());
        }
    }
}
