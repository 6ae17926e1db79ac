// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing `arch/um/drivers/xterm.c`: `xterm_ops`, the `xterm`
//! channel, and the `xterm=` command-line option, over
//! [`crate::host::chan::xterm`].
//!
//! `open` makes a Unix socket with a fresh name in `/tmp`, starts the
//! terminal emulator running `port-helper -uml-socket <socket>`, and
//! waits (`xterm_fd`, in `xterm_kern.c`) for the helper to send its
//! terminal over the socket: that terminal is the channel's descriptor,
//! made non-blocking (and raw if the line asks for it). `close` kills the
//! emulator (reaped) and the helper (not UML's child), and closes both
//! descriptors.
//!
//! Divergences from the C, all where it misbehaved:
//!
//! * The title is the line's `xterm_title` with only `%d` (the line's
//!   number) and `%%` converted, cut to 255 bytes: the C used it as a
//!   `sprintf` format into 256 bytes, so a `%s` in the umid (which
//!   `add_xterm_umid` appends) crashed it, and a long umid overflowed. A
//!   NULL title is empty.
//! * When `open` fails after starting the terminal, the socket file is
//!   removed (the C left it in `/tmp`), the helper is killed as well as
//!   the emulator, and the channel does not keep the closed socket's
//!   number; if the terminal's settings cannot be read or it cannot be
//!   made raw, its descriptor is closed (the C closed descriptor -1
//!   instead) and the negative errno returned (the C returned -1 for the
//!   former).
//! * `close` forgets the socket's number once closed (the C closed it
//!   again on a second `close`).
//! * NULL arguments the C would have dereferenced are refused: `init`
//!   returns NULL, `open` `-EFAULT`, `xterm=` without a value does nothing.
//! * The default emulator is `"xterm"`: `CONFIG_XTERM_CHAN_DEFAULT_EMULATOR`
//!   reaches only `xterm.c`'s compiler command line (see
//!   [`xterm::DEFAULT_EMULATOR`]).

use core::ffi::{CStr, c_char, c_int, c_void};
use core::sync::atomic::{AtomicPtr, Ordering};

use super::chan_user::{ChanOps, ChanOpts, chan_alloc, cstr_arg, generic_ops};
use crate::host::chan::{term, xterm};
use crate::kernel::Level;
use crate::klog;

generic_ops!("os-um-drivers-xterm");

/// The kernel half (`xterm_kern.c`) and the os functions this file
/// calls, in a kernel that exports this file.
#[cfg(all(feature = "kernel", feature = "os-um-drivers-xterm"))]
mod kern {
    use core::ffi::{c_char, c_int, c_void};

    use crate::host::helper::PreExec;

    unsafe extern "C" {
        /// Waits for the helper's message on `socket`: the terminal's
        /// descriptor (or a negative errno), with the helper's pid in
        /// `*pid_out`.
        pub fn xterm_fd(socket: c_int, pid_out: *mut c_int) -> c_int;
        pub fn run_helper(
            pre_exec: Option<PreExec>,
            pre_data: *mut c_void,
            argv: *mut *mut c_char,
        ) -> c_int;
        pub fn os_create_unix_socket(
            file: *const c_char,
            len: c_int,
            close_on_exec: c_int,
        ) -> c_int;
        pub fn os_set_fd_block(fd: c_int, blocking: c_int) -> c_int;
        pub fn os_kill_process(pid: c_int, reap_child: c_int);
        pub fn os_close_file(fd: c_int);
    }
}

/// Stand-ins for unit tests and kernels that keep `xterm.c`.
#[cfg(not(all(feature = "kernel", feature = "os-um-drivers-xterm")))]
mod kern {
    use core::ffi::{c_char, c_int, c_void};

    pub use crate::abi::um_drivers::chan_user::stand_in::run_helper;

    /// Waits up to 10 s for the helper's message, then receives it as
    /// `xterm_interrupt` does.
    pub unsafe fn xterm_fd(socket: c_int, pid_out: *mut c_int) -> c_int {
        let mut p = libc::pollfd {
            fd: socket,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        if unsafe { libc::poll(&mut p, 1, 10_000) } != 1 {
            return -libc::ETIMEDOUT;
        }
        let (mut fd, mut pid): (c_int, c_int) = (-1, -1);
        // SAFETY: room for one descriptor and one int.
        let ret = unsafe {
            crate::abi::file::os_rcv_fd_msg(
                socket,
                &mut fd,
                1,
                (&raw mut pid).cast::<c_void>(),
                size_of::<c_int>(),
            )
        };
        if ret < 0 {
            fd = ret as c_int;
        } else if ret != size_of::<c_int>() as isize {
            fd = -libc::EMSGSIZE;
        }
        // SAFETY: writable by the caller's contract.
        unsafe { *pid_out = pid };
        fd
    }

    pub unsafe fn os_create_unix_socket(
        file: *const c_char,
        len: c_int,
        close_on_exec: c_int,
    ) -> c_int {
        // SAFETY: forwarded.
        unsafe { crate::abi::file::os_create_unix_socket(file, len, close_on_exec) }
    }

    pub unsafe fn os_set_fd_block(fd: c_int, blocking: c_int) -> c_int {
        crate::abi::file::os_set_fd_block(fd, blocking)
    }

    pub unsafe fn os_kill_process(pid: c_int, reap_child: c_int) {
        crate::abi::um_drivers::chan_user::stand_in::kill_process(pid, reap_child);
    }

    pub unsafe fn os_close_file(fd: c_int) {
        // SAFETY: forwarded.
        unsafe { crate::abi::file::os_close_file(fd) };
    }
}

/// `terminal_emulator`, `title_switch` and `exec_switch`: only changed by
/// [`xterm_setup`], at boot.
static TERMINAL_EMULATOR: AtomicPtr<c_char> =
    AtomicPtr::new(xterm::DEFAULT_EMULATOR.as_ptr().cast_mut());
static TITLE_SWITCH: AtomicPtr<c_char> =
    AtomicPtr::new(xterm::DEFAULT_TITLE_SWITCH.as_ptr().cast_mut());
static EXEC_SWITCH: AtomicPtr<c_char> =
    AtomicPtr::new(xterm::DEFAULT_EXEC_SWITCH.as_ptr().cast_mut());

/// The C string a setting points at.
fn setting(s: &AtomicPtr<c_char>) -> &'static CStr {
    // SAFETY: a static C string, or one in the kernel's command line, which lives forever.
    unsafe { CStr::from_ptr(s.load(Ordering::Relaxed)) }
}

/// `xterm=<terminal emulator>,<title switch>,<exec switch>`: splits the
/// value in place and keeps pointers into it. Always 0, `*add` 0.
///
/// # Safety
///
/// `line` is NULL or a writable C string that lives forever (the command
/// line); `add` is NULL or writable.
#[cfg_attr(not(feature = "os-um-drivers-xterm"), allow(dead_code))]
unsafe extern "C" fn xterm_setup(line: *mut c_char, add: *mut c_int) -> c_int {
    if !add.is_null() {
        // SAFETY: writable by our contract.
        unsafe { *add = 0 };
    }
    if line.is_null() {
        return 0;
    }
    // SAFETY: a C string by our contract.
    let len = unsafe { libc::strlen(line) };
    // SAFETY: its bytes, writable, not used elsewhere meanwhile.
    let bytes = unsafe { core::slice::from_raw_parts_mut(line.cast::<u8>(), len) };
    let setup = xterm::split_setup(bytes);
    TERMINAL_EMULATOR.store(line, Ordering::Relaxed);
    if let Some(at) = setup.title_switch {
        // SAFETY: an offset within the string.
        TITLE_SWITCH.store(unsafe { line.add(at) }, Ordering::Relaxed);
    }
    if let Some(at) = setup.exec_switch {
        // SAFETY: as above.
        EXEC_SWITCH.store(unsafe { line.add(at) }, Ordering::Relaxed);
    }
    0
}

crate::uml_setup!(
    "os-um-drivers-xterm",
    UML_SETUP_XTERM,
    c"xterm=",
    xterm_setup,
    c"xterm=<terminal emulator>,<title switch>,<exec switch>
    Specifies an alternate terminal emulator to use for the debugger,
    consoles, and serial lines when they are attached to the xterm channel.
    The values are the terminal emulator binary, the switch it uses to set
    its title, and the switch it uses to execute a subprocess,
    respectively.  The title switch must have the form '<switch> title',
    not '<switch>=title'.  Similarly, the exec switch must have the form
    '<switch> command arg1 arg2 ...'.
    The default values are 'xterm=xterm,-T,-e'.
    Values for gnome-terminal are 'xterm=gnome-terminal,-t,-x'.

"
);

/// `struct xterm_chan`.
#[repr(C)]
struct XtermChan {
    /// The emulator, -1 when none runs.
    pid: c_int,
    /// The helper, -1 when none runs.
    helper_pid: c_int,
    /// The socket the helper sent the terminal over, -1 when closed.
    chan_fd: c_int,
    /// The line's title format.
    title: *mut c_char,
    /// The line's number.
    device: c_int,
    raw: c_int,
    /// The terminal's settings when it arrived.
    tt: term::Termios,
}

unsafe extern "C" fn xterm_init(
    _str: *mut c_char,
    device: c_int,
    opts: *const ChanOpts,
) -> *mut c_void {
    if opts.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: the line's options, non-NULL.
    let opts = unsafe { &*opts };
    chan_alloc(XtermChan {
        pid: -1,
        helper_pid: -1,
        chan_fd: -1,
        title: opts.xterm_title,
        device,
        raw: opts.raw,
        tt: term::zeroed(),
    })
    .cast()
}

unsafe extern "C" fn xterm_open(
    _input: c_int,
    _output: c_int,
    _primary: c_int,
    d: *mut c_void,
    dev_out: *mut *mut c_char,
) -> c_int {
    if d.is_null() || dev_out.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: our data, from xterm_init.
    let data = unsafe { &mut *d.cast::<XtermChan>() };
    let helper = xterm::port_helper();
    // Without $DISPLAY the emulator cannot work (with it, it may not).
    // SAFETY: a C string; getenv returns NULL or a pointer into the environment.
    if unsafe { libc::getenv(c"DISPLAY".as_ptr()) }.is_null() {
        klog!(Level::Err, "xterm_open: $DISPLAY not set.");
        return -libc::ENODEV;
    }
    // SAFETY: writable by the caller's contract.
    open_terminal(data, helper, unsafe { &mut *dev_out })
}

/// The errno of the last failed call, negated.
fn neg_errno() -> c_int {
    -(nix::errno::Errno::last() as c_int)
}

/// `xterm_open` once `$DISPLAY` is known to be set.
fn open_terminal(data: &mut XtermChan, helper: &CStr, dev_out: &mut *mut c_char) -> c_int {
    // A known-unused name for the socket: a temporary file's, removed.
    let mut file = xterm::SOCKET_TEMPLATE;
    let path = file.as_mut_ptr().cast::<c_char>();
    // SAFETY: a writable template ending in XXXXXX and a NUL.
    let fd = unsafe { libc::mkstemp(path) };
    if fd < 0 {
        let err = neg_errno();
        klog!(Level::Err, "xterm_open : mkstemp failed, errno = {}", -err);
        return err;
    }
    // SAFETY: the name mkstemp made.
    if unsafe { libc::unlink(path) } != 0 {
        let err = neg_errno();
        klog!(Level::Err, "xterm_open : unlink failed, errno = {}", -err);
        // SAFETY: the descriptor mkstemp made.
        unsafe { libc::close(fd) };
        return err;
    }
    // SAFETY: as above.
    unsafe { libc::close(fd) };

    // SAFETY: a C string of `file.len()` bytes, NUL included.
    let fd = unsafe { kern::os_create_unix_socket(path, file.len() as c_int, 1) };
    if fd < 0 {
        klog!(
            Level::Err,
            "xterm_open : create_unix_socket failed, errno = {}",
            -fd
        );
        return fd;
    }
    let socket = CStr::from_bytes_until_nul(&file).unwrap_or(c"");
    let remove_socket = || {
        // SAFETY: the socket's name, a C string.
        unsafe { libc::unlink(socket.as_ptr()) };
    };

    let mut title = [0u8; 256];
    // SAFETY: the line's title, a C string that lives as long as the line, or NULL.
    let format = unsafe { cstr_arg(data.title) }.map_or(&b""[..], CStr::to_bytes);
    xterm::title(format, data.device, &mut title);
    let title = CStr::from_bytes_until_nul(&title).unwrap_or(c"");
    let mut argv = xterm::Command {
        emulator: setting(&TERMINAL_EMULATOR),
        title_switch: setting(&TITLE_SWITCH),
        title,
        exec_switch: setting(&EXEC_SWITCH),
        helper,
        socket,
    }
    .argv();
    // SAFETY: a NULL-terminated array of C strings that outlive the call.
    let pid = unsafe { kern::run_helper(None, core::ptr::null_mut(), argv.as_mut_ptr()) };
    if pid < 0 {
        klog!(
            Level::Err,
            "xterm_open : run_helper failed, errno = {}",
            -pid
        );
        remove_socket();
        // SAFETY: our socket, closed once.
        unsafe { libc::close(fd) };
        return pid;
    }

    // Undoes the start: the terminal's descriptor `new` if there is one,
    // the helper, the emulator, the socket; returns `err`.
    let give_up = |data: &mut XtermChan, new: Option<c_int>, err: c_int| {
        // SAFETY: our descriptors and helper processes.
        unsafe {
            if let Some(new) = new {
                libc::close(new);
            }
            if data.helper_pid != -1 {
                kern::os_kill_process(data.helper_pid, 0);
            }
            kern::os_kill_process(pid, 1);
            libc::close(fd);
        }
        data.helper_pid = -1;
        data.chan_fd = -1;
        remove_socket();
        err
    };

    // SAFETY: our socket.
    let err = unsafe { kern::os_set_fd_block(fd, 0) };
    if err < 0 {
        klog!(
            Level::Err,
            "xterm_open : failed to set descriptor non-blocking, err = {}",
            -err
        );
        return give_up(data, None, err);
    }
    data.chan_fd = fd;
    // SAFETY: our socket and a writable int.
    let new = unsafe { kern::xterm_fd(fd, &mut data.helper_pid) };
    if new < 0 {
        klog!(Level::Err, "xterm_open : xterm_fd failed, err = {}", -new);
        return give_up(data, None, new);
    }
    // SAFETY: the terminal the helper sent.
    let err = unsafe { kern::os_set_fd_block(new, 0) };
    if err != 0 {
        klog!(
            Level::Err,
            "xterm_open : failed to set xterm descriptor non-blocking, err = {}",
            -err
        );
        return give_up(data, Some(new), err);
    }
    match term::get_attr(new) {
        Ok(tt) => data.tt = tt,
        Err(e) => return give_up(data, Some(new), -(e as c_int)),
    }
    if data.raw != 0 {
        let err = crate::abi::util::raw(new);
        if err != 0 {
            return give_up(data, Some(new), err);
        }
    }
    remove_socket();
    data.pid = pid;
    *dev_out = core::ptr::null_mut();
    new
}

unsafe extern "C" fn xterm_close(fd: c_int, d: *mut c_void) {
    // SAFETY: our data, from xterm_init, or NULL.
    if let Some(data) = unsafe { d.cast::<XtermChan>().as_mut() } {
        // SAFETY: our helper processes and socket.
        unsafe {
            if data.pid != -1 {
                kern::os_kill_process(data.pid, 1);
            }
            data.pid = -1;
            if data.helper_pid != -1 {
                kern::os_kill_process(data.helper_pid, 0);
            }
            data.helper_pid = -1;
            if data.chan_fd != -1 {
                kern::os_close_file(data.chan_fd);
            }
            data.chan_fd = -1;
        }
    }
    // SAFETY: the channel's descriptor, given up by the caller.
    unsafe { kern::os_close_file(fd) };
}

/// `const struct chan_ops xterm_ops`.
#[cfg_attr(feature = "os-um-drivers-xterm", unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static xterm_ops: ChanOps = ChanOps {
    kind: c"xterm".as_ptr(),
    init: Some(xterm_init),
    open: Some(xterm_open),
    close: Some(xterm_close),
    read: Some(generic::generic_read),
    write: Some(generic::generic_write),
    console_write: Some(generic::generic_console_write),
    window_size: Some(generic::generic_window_size),
    free: Some(generic::generic_free),
    winch: 1,
};

#[cfg(all(test, not(feature = "kernel")))]
mod tests {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, MutexGuard};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::abi::um_drivers::chan_user::test_support::{
        Chan, config_string, helpers_lock, opts, write_script,
    };
    use crate::host::chan::pty::test_support::{Pair, rdev};

    /// Serialises the tests that change the `xterm=` settings.
    static SETTINGS: Mutex<()> = Mutex::new(());

    /// The `xterm=` settings in force until dropped, then the defaults.
    struct Settings(#[allow(dead_code)] MutexGuard<'static, ()>);

    impl Settings {
        fn set(value: &str) -> Settings {
            let guard = SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
            // The command line lives forever.
            let line = CString::new(value).unwrap().into_raw();
            let mut add = 7;
            // SAFETY: a writable C string that is never freed.
            assert_eq!(unsafe { xterm_setup(line, &mut add) }, 0);
            assert_eq!(add, 0);
            Settings(guard)
        }
    }

    impl Drop for Settings {
        fn drop(&mut self) {
            TERMINAL_EMULATOR.store(
                xterm::DEFAULT_EMULATOR.as_ptr().cast_mut(),
                Ordering::Relaxed,
            );
            TITLE_SWITCH.store(
                xterm::DEFAULT_TITLE_SWITCH.as_ptr().cast_mut(),
                Ordering::Relaxed,
            );
            EXEC_SWITCH.store(
                xterm::DEFAULT_EXEC_SWITCH.as_ptr().cast_mut(),
                Ordering::Relaxed,
            );
        }
    }

    fn settings() -> [&'static str; 3] {
        [&TERMINAL_EMULATOR, &TITLE_SWITCH, &EXEC_SWITCH].map(|s| setting(s).to_str().unwrap())
    }

    #[test]
    fn the_table_is_the_cs() {
        // SAFETY: a static C string.
        assert_eq!(unsafe { CStr::from_ptr(xterm_ops.kind) }, c"xterm");
        assert_eq!(xterm_ops.winch, 1);
    }

    #[test]
    fn the_option_sets_emulator_and_switches() {
        {
            let _s = SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
            assert_eq!(settings(), ["xterm", "-T", "-e"]);
        }
        {
            let _s = Settings::set("gnome-terminal,-t,-x");
            assert_eq!(settings(), ["gnome-terminal", "-t", "-x"]);
        }
        {
            let _s = Settings::set("konsole");
            assert_eq!(settings(), ["konsole", "-T", "-e"]);
        }
        {
            let _s = Settings::set("rxvt,-title");
            assert_eq!(settings(), ["rxvt", "-title", "-e"]);
        }
        let _s = SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: NULLs are ignored.
        let r = unsafe { xterm_setup(core::ptr::null_mut(), core::ptr::null_mut()) };
        assert_eq!(r, 0);
        assert_eq!(settings(), ["xterm", "-T", "-e"]);
    }

    /// A stand-in terminal emulator in `dir`: records its arguments in
    /// `<itself>.args`, then runs the command after the exec switch (the
    /// helper) in the background with the terminal `tty` as its input,
    /// and waits.
    fn fake_emulator(dir: &Path, tty: &CStr) -> PathBuf {
        let path = dir.join("fake-term");
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$0.args\"\nshift 3\n\"$@\" < {} &\nwait\n",
            tty.to_str().unwrap()
        );
        write_script(&path, &script);
        path
    }

    /// Whether `pid` has ended (gone or a zombie).
    fn ended(pid: c_int) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .unwrap()
                .trim_start()
                .starts_with('Z'),
        }
    }

    #[test]
    fn the_emulator_runs_the_helper_which_sends_the_terminal() {
        if xterm::port_helper() != xterm::PORT_HELPER {
            eprintln!("skipped: /usr/lib/uml/port-helper (uml-utilities) is not installed");
            return;
        }
        let _h = helpers_lock();
        let dir = tempfile::tempdir().unwrap();
        let pair = Pair::open();
        let emulator = fake_emulator(dir.path(), &pair.name);
        let _s = Settings::set(&format!("{},-title,-x", emulator.display()));
        let chan = Chan::init(&xterm_ops, "", 5, &opts(1)).unwrap();
        let data = chan.data.cast::<XtermChan>();
        let mut dev: *mut c_char = c"untouched".as_ptr().cast_mut();
        // SAFETY: the channel's data, not used by anything else here.
        let fd = open_terminal(unsafe { &mut *data }, xterm::PORT_HELPER, &mut dev);
        assert!(fd >= 0, "open failed: {fd}");
        assert!(dev.is_null(), "no device name");
        assert_eq!(config_string(&xterm_ops, None), "xterm");
        // SAFETY: the channel's data.
        let (pid, helper, chan_fd) = unsafe { ((*data).pid, (*data).helper_pid, (*data).chan_fd) };
        assert!(pid > 0 && helper > 0 && pid != helper, "{pid} {helper}");
        assert!(chan_fd >= 0);
        // The terminal is the one the emulator gave the helper, raw and
        // non-blocking.
        assert_eq!(rdev(fd), rdev(pair.slave.as_raw_fd()));
        let now = term::get_attr(fd).unwrap();
        assert!(term::same(&now, &term::made_raw(&now)));
        assert_eq!(now.c_lflag & libc::ICANON, 0);
        // SAFETY: F_GETFL takes no argument.
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        assert_ne!(fl & libc::O_NONBLOCK, 0);
        // The command line, in the C's order.
        let args = std::fs::read_to_string(dir.path().join("fake-term.args")).unwrap();
        let args: Vec<&str> = args.lines().collect();
        assert_eq!(args.len(), 6, "{args:?}");
        assert_eq!(
            args[..5],
            [
                "-title",
                "Virtual Console #5",
                "-x",
                "/usr/lib//uml/port-helper",
                "-uml-socket"
            ]
        );
        assert!(
            args[5].starts_with("/tmp/xterm-pipe") && args[5].len() == 21,
            "{}",
            args[5]
        );
        assert!(!Path::new(args[5]).exists(), "the socket's name is removed");
        // Bytes typed in the terminal reach the channel.
        crate::host::file::write(pair.master.as_raw_fd(), b"q").unwrap();
        let mut c = 0u8;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // SAFETY: a writable byte.
            match unsafe { xterm_ops.read.unwrap()(fd, &mut c, chan.data) } {
                1 => break,
                0 => assert!(Instant::now() < deadline),
                e => panic!("read: {e}"),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(c, b'q');

        chan.close(fd);
        // SAFETY: the channel's data.
        unsafe {
            assert_eq!(
                ((*data).pid, (*data).helper_pid, (*data).chan_fd),
                (-1, -1, -1)
            );
        }
        assert!(ended(pid), "the emulator is killed and reaped");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ended(helper) {
            assert!(Instant::now() < deadline, "the helper is killed");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn an_emulator_that_does_not_start_leaves_nothing_behind() {
        let _s = Settings::set("/nonexistent/arch-um-rs-term");
        let chan = Chan::init(&xterm_ops, "", 1, &opts(1)).unwrap();
        let data = chan.data.cast::<XtermChan>();
        let mut dev: *mut c_char = core::ptr::null_mut();
        // SAFETY: the channel's data.
        let r = open_terminal(unsafe { &mut *data }, xterm::PORT_HELPER, &mut dev);
        assert_eq!(r, -libc::ENOENT);
        // SAFETY: the channel's data.
        unsafe {
            assert_eq!(
                ((*data).pid, (*data).helper_pid, (*data).chan_fd),
                (-1, -1, -1)
            );
        }
    }

    #[test]
    fn without_display_there_is_no_xterm() {
        let chan = Chan::init(&xterm_ops, "", 1, &opts(1)).unwrap();
        let data = chan.data;
        let status = crate::host::util::test_support::run_forked(|| {
            let mut dev: *mut c_char = core::ptr::null_mut();
            // SAFETY: the forked child is single-threaded; the channel's data.
            let r = unsafe {
                libc::unsetenv(c"DISPLAY".as_ptr());
                xterm_open(1, 1, 1, data, &mut dev)
            };
            // SAFETY: leaving the child.
            unsafe { libc::_exit(if r == -libc::ENODEV { 0 } else { 1 }) };
        });
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status:#x}"
        );
    }

    #[test]
    fn null_arguments_are_refused() {
        // SAFETY: NULLs are refused.
        unsafe {
            assert!(xterm_init(core::ptr::null_mut(), 0, core::ptr::null()).is_null());
            let mut dev: *mut c_char = core::ptr::null_mut();
            assert_eq!(
                xterm_open(1, 1, 1, core::ptr::null_mut(), &mut dev),
                -libc::EFAULT
            );
        }
        // A NULL title is an empty one.
        let mut o = opts(0);
        o.xterm_title = core::ptr::null_mut();
        let chan = Chan::init(&xterm_ops, "", 1, &o).unwrap();
        // SAFETY: the channel's data.
        assert!(unsafe { (*chan.data.cast::<XtermChan>()).title }.is_null());
        // Closing without data closes the descriptor only.
        let [a, _b] = crate::host::socket::pipe(true, true).unwrap();
        let raw = std::os::fd::IntoRawFd::into_raw_fd(a);
        // SAFETY: our descriptor, given up.
        unsafe { xterm_close(raw, core::ptr::null_mut()) };
    }
}
