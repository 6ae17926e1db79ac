// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing `arch/um/drivers/port_user.c` (declared in `port.h`):
//! `port_ops`, the `port:N` channel, and the two host functions of the
//! port driver, [`port_listen_fd`] and [`port_connection`], over
//! [`crate::host::chan::port`].
//!
//! The kernel half (`port_kern.c`) listens on the port (`port_data`),
//! accepts each connection with `port_connection`, which runs
//! `in.telnetd -L <port-helper>` on it, and receives the terminal the
//! helper sends back; a channel's `open` waits for one (`port_wait`).
//! The helper is `$UML_PORT_HELPER`, else `/usr/lib//uml/port-helper`.
//!
//! The return conventions are the C's: `port_listen_fd` the socket or a
//! negative errno, `port_connection` the accepted connection (with the
//! socket pair and telnetd's pid stored) or a negative errno, `-EAGAIN`
//! when nobody is waiting; nothing is retried on `EINTR`.
//!
//! Divergences from the C, all where it misbehaved:
//!
//! * `port:N` takes `N` as the C's `strtoul(.., 0)` read it, but refuses a
//!   number above 65535 or below 0: the C bound port `N` modulo 65536
//!   (`port:65536` listened on a port the host picked) and overflowed the
//!   7 bytes holding the name for numbers of seven digits or more.
//! * When the terminal's settings cannot be read or it cannot be made
//!   raw, `open` closes the descriptor `port_wait` gave (the C leaked it)
//!   and returns the negative errno (the C returned -1 for the former).
//! * The helper child wires its descriptors with raw system calls, which
//!   leave the `errno` it shares with the kernel alone.
//! * NULL arguments the C would have dereferenced are refused: `init`
//!   returns NULL, `open` and `port_connection` `-EFAULT`, `free` and
//!   `close` do what they can.

use core::ffi::{CStr, c_char, c_int, c_void};
use std::os::fd::{AsRawFd, IntoRawFd};

use super::chan_user::{
    ChanOps, ChanOpts, chan_alloc, chan_free, cstr_arg, generic_ops, save_and_make_raw,
};
use crate::abi::layout::os_acc;
use crate::host::chan::{format_int, parse, port, term};
use crate::host::util::{ErrnoMsg, ShowBytes};
use crate::kernel::Level;
use crate::klog;

generic_ops!("os-um-drivers-port_user");

/// The kernel half (`port_kern.c`) and the os functions this file calls,
/// in a kernel that exports this file.
#[cfg(all(feature = "kernel", feature = "os-um-drivers-port_user"))]
mod kern {
    use core::ffi::{c_char, c_int, c_void};

    use crate::host::helper::PreExec;

    unsafe extern "C" {
        /// The port's device: listens on it the first time; NULL on failure.
        pub fn port_data(port: c_int) -> *mut c_void;
        /// Waits for a connection's terminal: its descriptor, or a
        /// negative errno.
        pub fn port_wait(data: *mut c_void) -> c_int;
        pub fn port_kern_free(d: *mut c_void);
        pub fn port_remove_dev(d: *mut c_void);
        pub fn run_helper(
            pre_exec: Option<PreExec>,
            pre_data: *mut c_void,
            argv: *mut *mut c_char,
        ) -> c_int;
        pub fn os_access(file: *const c_char, mode: c_int) -> c_int;
        pub fn os_pipe(fds: *mut c_int, stream: c_int, close_on_exec: c_int) -> c_int;
        pub fn os_set_fd_block(fd: c_int, blocking: c_int) -> c_int;
        pub fn os_close_file(fd: c_int);
    }
}

/// Stand-ins for unit tests and kernels that keep `port_user.c`: a port
/// device that hands out the descriptor a test put in it.
#[cfg(not(all(feature = "kernel", feature = "os-um-drivers-port_user")))]
mod kern {
    use core::ffi::{c_char, c_int, c_void};
    use core::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};

    pub use crate::abi::um_drivers::chan_user::stand_in::run_helper;

    /// The port `port_data` refuses.
    pub const REFUSED_PORT: c_int = 1;
    /// `ERESTARTSYS`: what `port_wait` returns when interrupted.
    pub const ERESTARTSYS: c_int = 512;

    /// A stand-in `struct port_dev`.
    pub struct StandInDev {
        /// The port asked for (read by the tests).
        #[allow(dead_code)]
        pub port: c_int,
        /// What the next `port_wait` returns.
        pub fd: AtomicI32,
        /// How often `port_remove_dev` was called.
        pub removed: AtomicU32,
    }

    /// How many devices `port_kern_free` freed.
    pub static FREED: AtomicUsize = AtomicUsize::new(0);

    pub unsafe fn port_data(port: c_int) -> *mut c_void {
        if port == REFUSED_PORT {
            return core::ptr::null_mut();
        }
        Box::into_raw(Box::new(StandInDev {
            port,
            fd: AtomicI32::new(-ERESTARTSYS),
            removed: AtomicU32::new(0),
        }))
        .cast()
    }

    pub unsafe fn port_wait(data: *mut c_void) -> c_int {
        // SAFETY: a device from port_data.
        unsafe { &*data.cast::<StandInDev>() }
            .fd
            .swap(-ERESTARTSYS, Ordering::Relaxed)
    }

    pub unsafe fn port_remove_dev(d: *mut c_void) {
        // SAFETY: a device from port_data.
        unsafe { &*d.cast::<StandInDev>() }
            .removed
            .fetch_add(1, Ordering::Relaxed);
    }

    pub unsafe fn port_kern_free(d: *mut c_void) {
        // SAFETY: a device from port_data, not used after.
        unsafe {
            port_remove_dev(d);
            drop(Box::from_raw(d.cast::<StandInDev>()));
        }
        FREED.fetch_add(1, Ordering::Relaxed);
    }

    pub unsafe fn os_access(file: *const c_char, mode: c_int) -> c_int {
        // SAFETY: forwarded.
        unsafe { crate::abi::file::os_access(file, mode) }
    }

    pub unsafe fn os_pipe(fds: *mut c_int, stream: c_int, close_on_exec: c_int) -> c_int {
        // SAFETY: forwarded.
        unsafe { crate::abi::file::os_pipe(fds, stream, close_on_exec) }
    }

    pub unsafe fn os_set_fd_block(fd: c_int, blocking: c_int) -> c_int {
        crate::abi::file::os_set_fd_block(fd, blocking)
    }

    pub unsafe fn os_close_file(fd: c_int) {
        // SAFETY: forwarded.
        unsafe { crate::abi::file::os_close_file(fd) };
    }
}

/// `sizeof("32768\0")`: room for the port's number.
const DEV_LEN: usize = 7;

/// `struct port_chan`.
#[repr(C)]
struct PortChan {
    raw: c_int,
    /// The terminal's settings when it arrived (nothing puts them back, as
    /// in C).
    tt: term::Termios,
    /// The port's device in the kernel half.
    kernel_data: *mut c_void,
    /// The port's number in decimal, for `*dev_out`.
    dev: [c_char; DEV_LEN],
}

/// `init`: `str` is `":N"`.
unsafe extern "C" fn port_init(
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
            "port_init : channel type 'port' must specify a port number"
        );
        return core::ptr::null_mut();
    };
    let Some(port) = parse::port_number(number) else {
        klog!(
            Level::Err,
            "port_init : couldn't parse port '{}'",
            ShowBytes(number)
        );
        return core::ptr::null_mut();
    };
    // SAFETY: the kernel half's function.
    let kern_data = unsafe { kern::port_data(port) };
    if kern_data.is_null() {
        return core::ptr::null_mut();
    }
    let mut digits = [0u8; 12];
    let n = format_int(port, &mut digits);
    let mut dev = [0 as c_char; DEV_LEN];
    for (d, &s) in dev.iter_mut().zip(&digits[..n]) {
        *d = s as c_char;
    }
    let data = chan_alloc(PortChan {
        // SAFETY: the line's options, non-NULL.
        raw: unsafe { (*opts).raw },
        tt: term::zeroed(),
        kernel_data: kern_data,
        dev,
    });
    if data.is_null() {
        // SAFETY: the device just made, not used after.
        unsafe { kern::port_kern_free(kern_data) };
    }
    data.cast()
}

/// `free`: the kernel half's device, then the channel's data.
unsafe extern "C" fn port_free(d: *mut c_void) {
    if d.is_null() {
        return;
    }
    // SAFETY: our data, from port_init, not used after.
    unsafe {
        kern::port_kern_free((*d.cast::<PortChan>()).kernel_data);
        chan_free(d);
    }
}

/// `open`: waits for a connection's terminal, raw if asked.
unsafe extern "C" fn port_open(
    _input: c_int,
    _output: c_int,
    _primary: c_int,
    d: *mut c_void,
    dev_out: *mut *mut c_char,
) -> c_int {
    if d.is_null() || dev_out.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: our data, from port_init.
    let data = unsafe { &mut *d.cast::<PortChan>() };
    // SAFETY: the kernel half's device.
    let fd = unsafe { kern::port_wait(data.kernel_data) };
    if fd >= 0 && data.raw != 0 {
        let fail = |err: c_int| {
            // SAFETY: the connection's terminal, ours until we return it.
            unsafe { kern::os_close_file(fd) };
            err
        };
        let err = save_and_make_raw(fd, &mut data.tt);
        if err != 0 {
            return fail(err);
        }
    }
    // SAFETY: writable by the caller's contract; the name lives in our data.
    unsafe { *dev_out = data.dev.as_mut_ptr() };
    fd
}

/// `close`: the connection's helpers are killed, the terminal closed.
unsafe extern "C" fn port_close(fd: c_int, d: *mut c_void) {
    if !d.is_null() {
        // SAFETY: our data, from port_init; the kernel half's device.
        unsafe { kern::port_remove_dev((*d.cast::<PortChan>()).kernel_data) };
    }
    // SAFETY: the channel's descriptor, given up by the caller.
    unsafe { kern::os_close_file(fd) };
}

/// `const struct chan_ops port_ops`.
#[cfg_attr(feature = "os-um-drivers-port_user", unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static port_ops: ChanOps = ChanOps {
    kind: c"port".as_ptr(),
    init: Some(port_init),
    open: Some(port_open),
    close: Some(port_close),
    read: Some(generic::generic_read),
    write: Some(generic::generic_write),
    console_write: Some(generic::generic_console_write),
    window_size: Some(generic::generic_window_size),
    free: Some(port_free),
    winch: 1,
};

/// `int port_listen_fd(int port)`: a TCP socket listening on `port` (modulo
/// 65536) of every IPv4 address, non-blocking, or a negative errno.
#[cfg_attr(feature = "os-um-drivers-port_user", unsafe(no_mangle))]
pub extern "C" fn port_listen_fd(port: c_int) -> c_int {
    let fd = match port::listen(port) {
        Ok(fd) => fd,
        Err(e) => return -(e as c_int),
    };
    // SAFETY: our socket.
    let err = unsafe { kern::os_set_fd_block(fd.as_raw_fd(), 0) };
    if err < 0 {
        return err;
    }
    fd.into_raw_fd()
}

/// The helper child's wiring before it runs telnetd (`port_pre_exec`).
///
/// # Safety
///
/// `arg` points to the parent's [`port::PreExecData`].
unsafe extern "C" fn port_pre_exec(arg: *mut c_void) {
    // SAFETY: the parent's data, alive until the child has exec'd.
    port::pre_exec_wiring(unsafe { arg.cast::<port::PreExecData>().read() });
}

/// `int port_connection(int fd, int *socket, int *pid_out)`: accepts a
/// connection on the listening socket `fd` and runs telnetd on it, with
/// the helper; the connection, with the socket pair the helper sends its
/// terminal on in `socket[0..2]` and telnetd's pid in `*pid_out`; or a
/// negative errno (`-EAGAIN` when nobody is waiting).
///
/// # Safety
///
/// `socket` is NULL or writable for two ints, `pid_out` NULL or writable
/// (NULL is `-EFAULT`, before anything is accepted).
#[cfg_attr(feature = "os-um-drivers-port_user", unsafe(no_mangle))]
pub unsafe extern "C" fn port_connection(
    fd: c_int,
    socket: *mut c_int,
    pid_out: *mut c_int,
) -> c_int {
    if socket.is_null() || pid_out.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: a C string; getenv returns NULL or a pointer into the environment, which lives on.
    let env = unsafe { cstr_arg(libc::getenv(port::HELPER_ENV.as_ptr())) };
    // SAFETY: writable by our contract.
    let (socket, pid_out) = unsafe { (&mut *socket.cast::<[c_int; 2]>(), &mut *pid_out) };
    connection(fd, socket, pid_out, port::TELNETD, env)
}

/// [`port_connection`] with telnetd and the helper (`None`: the default)
/// given.
fn connection(
    fd: c_int,
    socket: &mut [c_int; 2],
    pid_out: &mut c_int,
    telnetd: &CStr,
    env: Option<&CStr>,
) -> c_int {
    let helper = env.unwrap_or(port::HELPER);
    let new = match port::accept(fd) {
        Ok(new) => new,
        Err(e) => return -(e as c_int),
    };
    // SAFETY: a C string.
    let err = unsafe { kern::os_access(helper.as_ptr(), os_acc::X_OK) };
    if err < 0 {
        klog!(
            Level::Err,
            "port_connection : error accessing port-helper executable at {}: {}",
            ShowBytes(helper.to_bytes()),
            ErrnoMsg(-err)
        );
        if env.is_none() {
            klog!(
                Level::Err,
                "Set UML_PORT_HELPER environment variable to path to uml-utilities port-helper binary"
            );
        }
        return err;
    }
    // SAFETY: room for two descriptors.
    let err = unsafe { kern::os_pipe(socket.as_mut_ptr(), 0, 0) };
    if err < 0 {
        return err;
    }
    let mut data = port::PreExecData {
        sock_fd: new.as_raw_fd(),
        pipe_fd: socket[1],
    };
    let mut argv = [
        telnetd.as_ptr().cast_mut(),
        c"-L".as_ptr().cast_mut(),
        helper.as_ptr().cast_mut(),
        core::ptr::null_mut(),
    ];
    // SAFETY: a NULL-terminated argv of C strings and the wiring data, both alive until the child has exec'd.
    let pid = unsafe {
        kern::run_helper(
            Some(port_pre_exec),
            (&raw mut data).cast(),
            argv.as_mut_ptr(),
        )
    };
    if pid < 0 {
        for &end in socket.iter() {
            // SAFETY: the pair just made, closed once.
            unsafe {
                libc::shutdown(end, libc::SHUT_RDWR);
                libc::close(end);
            }
        }
        return pid;
    }
    *pid_out = pid;
    new.into_raw_fd()
}

#[cfg(all(test, not(feature = "kernel")))]
mod tests {
    use core::sync::atomic::Ordering;
    use std::ffi::CString;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::abi::um_drivers::chan_user::test_support::{
        Chan, config_string, helpers_lock, opts, write_script,
    };
    use crate::host::chan::pty::test_support::Pair;
    use crate::host::helper::wait_helper;

    /// Serialises the tests that count freed devices.
    static DEVICES: Mutex<()> = Mutex::new(());

    fn dev_of(chan: &Chan) -> &kern::StandInDev {
        // SAFETY: port_init's data, holding a stand-in device.
        unsafe {
            &*(*chan.data.cast::<PortChan>())
                .kernel_data
                .cast::<kern::StandInDev>()
        }
    }

    #[test]
    fn the_table_is_the_cs() {
        // SAFETY: a static C string.
        assert_eq!(unsafe { CStr::from_ptr(port_ops.kind) }, c"port");
        assert_eq!(port_ops.winch, 1);
    }

    #[test]
    fn descriptions_name_a_port() {
        let _g = DEVICES.lock().unwrap_or_else(|e| e.into_inner());
        let o = opts(1);
        for (desc, port) in [
            (":9000", 9000),
            (":0x2329", 9001),
            (":65535", 65535),
            (": 23", 23),
        ] {
            let chan = Chan::init(&port_ops, desc, 0, &o).unwrap_or_else(|| panic!("{desc}"));
            assert_eq!(dev_of(&chan).port, port, "{desc}");
        }
        let freed = kern::FREED.load(Ordering::Relaxed);
        for bad in [
            "", "9000", ":", ":telnet", ":65536", ":1234567", ":-1", ":23,",
        ] {
            assert!(Chan::init(&port_ops, bad, 0, &o).is_none(), "{bad:?}");
        }
        // The kernel half refuses the port: nothing is left behind.
        assert!(Chan::init(&port_ops, ":1", 0, &o).is_none());
        assert_eq!(kern::FREED.load(Ordering::Relaxed), freed);
        // SAFETY: NULLs are refused.
        unsafe {
            let desc = CString::new(":9000").unwrap();
            assert!(port_init(desc.as_ptr().cast_mut(), 0, core::ptr::null()).is_null());
            assert!(port_init(core::ptr::null_mut(), 0, &o).is_null());
            port_free(core::ptr::null_mut());
        }
    }

    #[test]
    fn a_connections_terminal_is_opened_raw_and_closed() {
        let _g = DEVICES.lock().unwrap_or_else(|e| e.into_inner());
        let pair = Pair::open();
        let freed = kern::FREED.load(Ordering::Relaxed);
        let chan = Chan::init(&port_ops, ":9000", 0, &opts(1)).unwrap();
        // Interrupted while waiting: the error, nothing opened.
        assert_eq!(chan.open(1, 1), Err(-kern::ERESTARTSYS));
        // SAFETY: a duplicate of the slave, which the channel takes over.
        let fd = unsafe { libc::dup(pair.slave.as_raw_fd()) };
        dev_of(&chan).fd.store(fd, Ordering::Relaxed);
        let before = term::get_attr(fd).unwrap();
        assert_eq!(chan.open(1, 1), Ok((fd, Some("9000".to_owned()))));
        assert_eq!(config_string(&port_ops, Some("9000")), "port:9000");
        assert!(term::same(
            &term::get_attr(fd).unwrap(),
            &term::made_raw(&before)
        ));
        chan.close(fd);
        assert_eq!(dev_of(&chan).removed.load(Ordering::Relaxed), 1);
        assert_eq!(
            crate::host::file::stat_fd(fd).unwrap_err(),
            nix::errno::Errno::EBADF
        );
        // A descriptor that is no terminal, with raw: refused and closed.
        let [a, _b] = crate::host::socket::pipe(true, true).unwrap();
        let a = a.into_raw_fd();
        dev_of(&chan).fd.store(a, Ordering::Relaxed);
        assert_eq!(chan.open(1, 1), Err(-libc::ENOTTY));
        assert_eq!(
            crate::host::file::stat_fd(a).unwrap_err(),
            nix::errno::Errno::EBADF
        );
        drop(chan);
        assert_eq!(kern::FREED.load(Ordering::Relaxed), freed + 1);
    }

    fn script(dir: &Path, name: &str, text: &str) -> CString {
        let path = dir.join(name);
        write_script(&path, text);
        CString::new(path.into_os_string().into_encoded_bytes()).unwrap()
    }

    /// A stand-in telnetd: checks `-L`, then runs the helper on the
    /// connection.
    const TELNETD: &str = "#!/bin/sh\n[ \"$1\" = -L ] || exit 9\nexec \"$2\"\n";

    /// A listening port (as port_kern.c makes it) with a client connected.
    fn connected() -> (OwnedFd, TcpStream) {
        let fd = port_listen_fd(0);
        assert!(fd >= 0, "{fd}");
        // SAFETY: ours.
        let listener = unsafe { OwnedFd::from_raw_fd(fd) };
        let port = port::local_port(fd).unwrap();
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        assert_eq!(unsafe { libc::poll(&mut p, 1, 10_000) }, 1);
        (listener, client)
    }

    #[test]
    fn the_listening_socket_is_non_blocking() {
        let fd = port_listen_fd(0);
        // SAFETY: ours.
        let _l = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: F_GETFL takes no argument.
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        assert_ne!(fl & libc::O_NONBLOCK, 0);
        let (mut socket, mut pid) = ([-1; 2], -1);
        // SAFETY: writable arguments.
        let r = unsafe { port_connection(fd, socket.as_mut_ptr(), &mut pid) };
        assert_eq!(r, -libc::EAGAIN);
        assert_eq!((socket, pid), ([-1; 2], -1), "nothing stored");
        // SAFETY: NULLs are refused.
        unsafe {
            assert_eq!(
                port_connection(fd, core::ptr::null_mut(), &mut pid),
                -libc::EFAULT
            );
            assert_eq!(
                port_connection(fd, socket.as_mut_ptr(), core::ptr::null_mut()),
                -libc::EFAULT
            );
        }
    }

    #[test]
    fn telnetd_runs_on_the_connection_with_the_socket_pair_as_3() {
        let _h = helpers_lock();
        let dir = tempfile::tempdir().unwrap();
        let telnetd = script(dir.path(), "in.telnetd", TELNETD);
        let helper = script(
            dir.path(),
            "helper",
            "#!/bin/sh\nif [ -S /dev/fd/3 ]; then echo three; fi\n[ -t 0 ] || echo socket\n",
        );
        let (listener, mut client) = connected();
        let (mut socket, mut pid) = ([-1; 2], -1);
        let new = connection(
            listener.as_raw_fd(),
            &mut socket,
            &mut pid,
            &telnetd,
            Some(&helper),
        );
        assert!(new >= 0, "{new}");
        // SAFETY: ours.
        let new = unsafe { OwnedFd::from_raw_fd(new) };
        // SAFETY: ours.
        let pair = socket.map(|s| unsafe { OwnedFd::from_raw_fd(s) });
        assert!(pid > 0);
        let ws = wait_helper(pid).unwrap();
        assert!(crate::host::helper::exited_ok(&ws), "{ws:?}");
        drop((new, pair));
        // Not up to end of file: helpers that other tests start meanwhile
        // inherit the connection (it is not close-on-exec, as in C).
        let mut out = [0u8; 13];
        client.read_exact(&mut out).unwrap();
        assert_eq!(&out, b"three\nsocket\n");
    }

    fn port_helper() -> Option<PathBuf> {
        let p = PathBuf::from("/usr/lib/uml/port-helper");
        p.exists().then_some(p)
    }

    #[test]
    fn the_helper_sends_the_connection_back() {
        let _h = helpers_lock();
        let Some(helper) = port_helper() else {
            eprintln!("skipped: /usr/lib/uml/port-helper (uml-utilities) is not installed");
            return;
        };
        let helper = CString::new(helper.into_os_string().into_encoded_bytes()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let telnetd = script(dir.path(), "in.telnetd", TELNETD);
        let (listener, mut client) = connected();
        let (mut socket, mut pid) = ([-1; 2], -1);
        let new = connection(
            listener.as_raw_fd(),
            &mut socket,
            &mut pid,
            &telnetd,
            Some(&helper),
        );
        assert!(new >= 0, "{new}");
        // SAFETY: ours.
        let _new = unsafe { OwnedFd::from_raw_fd(new) };
        // SAFETY: ours.
        let pair = socket.map(|s| unsafe { OwnedFd::from_raw_fd(s) });
        // What pipe_interrupt in port_kern.c receives: the terminal and
        // the helper's pid.
        let mut p = libc::pollfd {
            fd: pair[0].as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        assert_eq!(unsafe { libc::poll(&mut p, 1, 10_000) }, 1);
        let (mut fd, mut helper_pid) = (-1, -1);
        // SAFETY: room for one descriptor and one int.
        let n = unsafe {
            crate::abi::file::os_rcv_fd_msg(
                pair[0].as_raw_fd(),
                &mut fd,
                1,
                (&raw mut helper_pid).cast(),
                size_of::<c_int>(),
            )
        };
        assert_eq!(n, size_of::<c_int>() as isize);
        assert_eq!(helper_pid, pid, "telnetd exec'd the helper");
        // SAFETY: received, ours.
        let terminal = unsafe { OwnedFd::from_raw_fd(fd) };
        crate::host::file::write(terminal.as_raw_fd(), b"login: ").unwrap();
        // The helper's stderr is the connection too: it complains that
        // its input is no terminal (telnetd would have given it one).
        let mut seen = Vec::new();
        while !seen.ends_with(b"login: ") {
            let mut b = [0u8; 1];
            client.read_exact(&mut b).unwrap();
            seen.push(b[0]);
        }
        client.write_all(b"root").unwrap();
        let mut got = [0u8; 4];
        let mut p = libc::pollfd {
            fd: terminal.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        assert_eq!(unsafe { libc::poll(&mut p, 1, 10_000) }, 1);
        assert_eq!(
            crate::host::file::read(terminal.as_raw_fd(), &mut got),
            Ok(4)
        );
        assert_eq!(&got, b"root");
        crate::abi::um_drivers::chan_user::stand_in::kill_process(pid, 1);
    }

    #[test]
    fn a_missing_helper_closes_the_connection() {
        let _h = helpers_lock();
        let dir = tempfile::tempdir().unwrap();
        let telnetd = script(dir.path(), "in.telnetd", TELNETD);
        let (listener, mut client) = connected();
        let (mut socket, mut pid) = ([-1; 2], -1);
        let missing = c"/nonexistent/port-helper";
        let r = connection(
            listener.as_raw_fd(),
            &mut socket,
            &mut pid,
            &telnetd,
            Some(missing),
        );
        assert_eq!(r, -libc::ENOENT);
        assert_eq!((socket, pid), ([-1; 2], -1));
        let mut out = Vec::new();
        assert_eq!(client.read_to_end(&mut out).unwrap(), 0, "closed");
        // telnetd missing: the pair is made, then shut and closed.
        let (listener, client) = connected();
        let helper = script(dir.path(), "helper", "#!/bin/sh\n");
        let r = connection(
            listener.as_raw_fd(),
            &mut socket,
            &mut pid,
            c"/nonexistent/in.telnetd",
            Some(&helper),
        );
        assert_eq!(r, -libc::ENOENT);
        assert_eq!(pid, -1);
        drop(client);
    }
}
