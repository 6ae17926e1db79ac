// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing `arch/um/drivers/pty.c`: `pts_ops`, the `pts` channel
//! (a new Unix 98 pseudo-terminal: UML keeps the master, a user attaches
//! to the slave, e.g. `screen /dev/pts/7`), and `pty_ops`, the `pty`
//! channel (a legacy BSD pty, `/dev/ptyp0` and `/dev/ttyp0`).
//!
//! Both report the device they opened (what `mconsole config conN` shows,
//! `pts:/dev/pts/7`) and announce it through the line's `announce`
//! callback; both put the master in raw mode if the line asks for it.
//!
//! Divergences from the C, all where it misbehaved:
//!
//! * `pts` names the slave with `ptsname_r` into the channel's own
//!   buffer: the C's `ptsname` used a static buffer any other caller may
//!   overwrite, and its unbounded `sprintf` into the 18-byte name could
//!   overflow. A name that does not fit (a pty number of more than seven
//!   digits) is `-ERANGE`; if the name cannot be had at all the open
//!   fails with the errno (the C went on with a NULL name). The announce
//!   callback gets the channel's copy of the name.
//! * When the master's settings cannot be read, `pts` returns the negative
//!   errno (the C returned -1, `-EPERM` to its callers).
//! * NULL arguments the C would have dereferenced are refused: `init`
//!   returns NULL, `open` `-EFAULT`.

use core::ffi::{c_char, c_int, c_void};
use std::os::fd::{AsRawFd, IntoRawFd};

use super::chan_user::{ChanOps, ChanOpts, chan_alloc, generic_ops, save_and_make_raw};
use crate::host::chan::{pty, term};
use crate::kernel::Level;
use crate::klog;

generic_ops!("os-um-drivers-pty");

/// `get_pty()` of `tty.c` and `raw()` of `util.c`, in C or Rust, in a
/// kernel that exports this file.
#[cfg(all(feature = "kernel", feature = "os-um-drivers-pty"))]
mod kern {
    use core::ffi::c_int;

    unsafe extern "C" {
        pub fn get_pty() -> c_int;
    }
}

/// Stand-ins for unit tests and kernels that keep `pty.c`: the crate's
/// own functions.
#[cfg(not(all(feature = "kernel", feature = "os-um-drivers-pty")))]
mod kern {
    use core::ffi::c_int;

    pub unsafe fn get_pty() -> c_int {
        crate::abi::tty::get_pty()
    }
}

/// The size of the name buffer: `sizeof("/dev/pts/0123456\0")`.
const DEV_NAME_LEN: usize = 18;

/// The line's announce callback.
type Announce = unsafe extern "C" fn(*mut c_char, c_int);

/// `struct pty_chan`.
#[repr(C)]
struct PtyChan {
    announce: Option<Announce>,
    /// The line's number.
    dev: c_int,
    raw: c_int,
    /// The master's settings before `open` made it raw (`pts` only, as in
    /// C; nothing puts them back).
    tt: term::Termios,
    /// The device opened, for `*dev_out`.
    dev_name: [c_char; DEV_NAME_LEN],
}

impl PtyChan {
    /// Stores `name` (which fits, NUL included) and reports it: through
    /// `*dev_out` and the announce callback.
    ///
    /// # Safety
    ///
    /// `dev_out` is writable; the callback is the line's.
    unsafe fn report(&mut self, name: &[u8], dev_out: *mut *mut c_char) {
        self.dev_name = [0; DEV_NAME_LEN];
        for (d, &s) in self.dev_name.iter_mut().zip(name) {
            *d = s as c_char;
        }
        let name = self.dev_name.as_mut_ptr();
        // SAFETY: writable by our contract; the name lives in the channel's data.
        unsafe { *dev_out = name };
        if let Some(announce) = self.announce {
            // SAFETY: the line's callback, with a C string and its number.
            unsafe { announce(name, self.dev) };
        }
    }
}

/// `init` of both types: the line's announce callback, number and raw
/// option.
unsafe extern "C" fn pty_chan_init(
    _str: *mut c_char,
    device: c_int,
    opts: *const ChanOpts,
) -> *mut c_void {
    if opts.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: the line's options, non-NULL.
    let opts = unsafe { &*opts };
    chan_alloc(PtyChan {
        announce: opts.announce,
        dev: device,
        raw: opts.raw,
        tt: term::zeroed(),
        dev_name: [0; DEV_NAME_LEN],
    })
    .cast()
}

/// Closes `fd` and returns `err`.
fn close_with(fd: c_int, err: c_int) -> c_int {
    // SAFETY: our own descriptor, closed once.
    unsafe { libc::close(fd) };
    err
}

/// `open` of `pts`: a new master (`get_pty`), raw if asked.
unsafe extern "C" fn pts_open(
    _input: c_int,
    _output: c_int,
    _primary: c_int,
    d: *mut c_void,
    dev_out: *mut *mut c_char,
) -> c_int {
    if d.is_null() || dev_out.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: our data, from pty_chan_init.
    let data = unsafe { &mut *d.cast::<PtyChan>() };
    // SAFETY: no arguments.
    let fd = unsafe { kern::get_pty() };
    if fd < 0 {
        klog!(Level::Err, "open_pts : Failed to open pts");
        return fd;
    }
    if data.raw != 0 {
        let err = save_and_make_raw(fd, &mut data.tt);
        if err != 0 {
            return close_with(fd, err);
        }
    }
    let mut name = [0u8; DEV_NAME_LEN];
    let len = match pty::slave_name(fd, &mut name) {
        Ok(len) => len,
        Err(e) => return close_with(fd, -(e as c_int)),
    };
    // SAFETY: writable by the caller's contract.
    unsafe { data.report(&name[..len], dev_out) };
    fd
}

/// `open` of `pty`: the first usable BSD master (`getmaster`), raw if
/// asked.
unsafe extern "C" fn pty_open(
    _input: c_int,
    _output: c_int,
    _primary: c_int,
    d: *mut c_void,
    dev_out: *mut *mut c_char,
) -> c_int {
    if d.is_null() || dev_out.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: our data, from pty_chan_init.
    let data = unsafe { &mut *d.cast::<PtyChan>() };
    let (master, name) = match pty::bsd_master(b"/dev/") {
        Ok(found) => found,
        Err(_) => {
            klog!(Level::Err, "getmaster - no usable host pty devices");
            return -libc::ENOENT;
        }
    };
    if data.raw != 0 {
        let err = crate::abi::util::raw(master.as_raw_fd());
        if err != 0 {
            return err;
        }
    }
    // "/dev/ptyXY": 10 bytes and the NUL.
    // SAFETY: writable by the caller's contract.
    unsafe { data.report(name.as_bytes(), dev_out) };
    master.into_raw_fd()
}

/// `const struct chan_ops pty_ops`.
#[cfg_attr(feature = "os-um-drivers-pty", unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static pty_ops: ChanOps = ChanOps {
    kind: c"pty".as_ptr(),
    init: Some(pty_chan_init),
    open: Some(pty_open),
    close: Some(generic::generic_close),
    read: Some(generic::generic_read),
    write: Some(generic::generic_write),
    console_write: Some(generic::generic_console_write),
    window_size: Some(generic::generic_window_size),
    free: Some(generic::generic_free),
    winch: 0,
};

/// `const struct chan_ops pts_ops`.
#[cfg_attr(feature = "os-um-drivers-pty", unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static pts_ops: ChanOps = ChanOps {
    kind: c"pts".as_ptr(),
    init: Some(pty_chan_init),
    open: Some(pts_open),
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
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::sync::Mutex;

    use super::*;
    use crate::abi::um_drivers::chan_user::test_support::{Chan, config_string, opts};
    use crate::host::chan::pty::test_support::rdev;
    use crate::host::file;

    /// What the announce callback was called with.
    static ANNOUNCED: Mutex<Vec<(String, c_int)>> = Mutex::new(Vec::new());

    unsafe extern "C" fn announce(dev_name: *mut c_char, dev: c_int) {
        // SAFETY: the channel's C string.
        let name = unsafe { CStr::from_ptr(dev_name) }
            .to_str()
            .unwrap()
            .to_owned();
        ANNOUNCED.lock().unwrap().push((name, dev));
    }

    fn announced(dev: c_int) -> Vec<String> {
        ANNOUNCED
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.1 == dev)
            .map(|a| a.0.clone())
            .collect()
    }

    #[test]
    fn the_tables_are_the_cs() {
        for (ops, kind) in [(&pts_ops, c"pts"), (&pty_ops, c"pty")] {
            // SAFETY: a static C string.
            assert_eq!(unsafe { CStr::from_ptr(ops.kind) }, kind);
            assert_eq!(ops.winch, 0);
        }
    }

    #[test]
    fn pts_opens_a_pty_and_names_its_slave() {
        let mut o = opts(1);
        o.announce = Some(announce);
        let chan = Chan::init(&pts_ops, "", 41, &o).unwrap();
        let (fd, dev) = chan.open(1, 1).unwrap();
        // SAFETY: the channel's descriptor, ours to close.
        let master = unsafe { OwnedFd::from_raw_fd(fd) };
        let dev = dev.unwrap();
        assert!(dev.starts_with("/dev/pts/"), "{dev}");
        let mut number: c_int = -1;
        // SAFETY: TIOCGPTN writes one int.
        assert_eq!(unsafe { libc::ioctl(fd, libc::TIOCGPTN, &mut number) }, 0);
        assert_eq!(dev, format!("/dev/pts/{number}"));
        assert_eq!(
            config_string(&pts_ops, Some(&dev)),
            format!("pts:/dev/pts/{number}")
        );
        assert_eq!(announced(41), std::slice::from_ref(&dev));
        // The master is raw, as util.c's raw() makes it.
        let now = term::get_attr(fd).unwrap();
        assert!(term::same(&now, &term::made_raw(&now)));
        // The named slave opens and talks to the master.
        let path = std::ffi::CString::new(dev).unwrap();
        let slave = file::open(&path, libc::O_RDWR | libc::O_NOCTTY, 0, true).unwrap();
        assert_eq!(
            rdev(slave.as_raw_fd()),
            file::stat_path(&path).unwrap().st_rdev
        );
        let slave_raw = term::made_raw(&term::get_attr(slave.as_raw_fd()).unwrap());
        term::set_attr(slave.as_raw_fd(), libc::TCSANOW, &slave_raw).unwrap();
        file::write(slave.as_raw_fd(), b"login: ").unwrap();
        let mut c = 0u8;
        let mut got = Vec::new();
        for _ in 0..7 {
            // SAFETY: a writable byte.
            assert_eq!(unsafe { pts_ops.read.unwrap()(fd, &mut c, chan.data) }, 1);
            got.push(c);
        }
        assert_eq!(got, b"login: ");
        // The window size the user's terminal sets reaches the line.
        term::set_window_size(slave.as_raw_fd(), 33, 99).unwrap();
        let (mut r, mut k) = (0, 0);
        // SAFETY: valid pointers.
        let changed = unsafe { pts_ops.window_size.unwrap()(fd, chan.data, &mut r, &mut k) };
        assert_eq!((changed, r, k), (1, 33, 99));
        drop(master);
    }

    #[test]
    fn pts_without_raw_keeps_the_masters_settings() {
        let chan = Chan::init(&pts_ops, "", 42, &opts(0)).unwrap();
        let (fd, dev) = chan.open(1, 1).unwrap();
        // SAFETY: the channel's descriptor, ours to close.
        let _master = unsafe { OwnedFd::from_raw_fd(fd) };
        assert!(dev.unwrap().starts_with("/dev/pts/"));
        let now = term::get_attr(fd).unwrap();
        assert_ne!(now.c_lflag & libc::ICANON, 0, "still cooked");
        assert!(announced(42).is_empty(), "no callback, no announcement");
    }

    #[test]
    fn pty_finds_no_bsd_ptys_on_a_modern_host() {
        if std::path::Path::new("/dev/ptyp0").exists() {
            eprintln!("skipped: this host has BSD ptys");
            return;
        }
        let chan = Chan::init(&pty_ops, "", 43, &opts(1)).unwrap();
        assert_eq!(chan.open(1, 1), Err(-libc::ENOENT));
    }

    #[test]
    fn null_arguments_are_refused() {
        // SAFETY: NULLs are refused.
        unsafe {
            assert!(pty_chan_init(core::ptr::null_mut(), 0, core::ptr::null()).is_null());
            let mut dev: *mut c_char = core::ptr::null_mut();
            assert_eq!(
                pts_open(1, 1, 1, core::ptr::null_mut(), &mut dev),
                -libc::EFAULT
            );
            assert_eq!(
                pty_open(1, 1, 1, core::ptr::null_mut(), &mut dev),
                -libc::EFAULT
            );
        }
    }
}
