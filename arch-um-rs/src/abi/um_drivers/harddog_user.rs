// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing `arch/um/drivers/harddog_user.c` (declared in
//! `harddog.h`): the host half of the UML hardware watchdog, over
//! [`crate::host::harddog`].
//!
//! The kernel half (`harddog_kern.c`) calls [`start_watchdog`] when the
//! guest opens `/dev/watchdog` (one opener at a time), [`ping_watchdog`]
//! for each write and `WDIOC_KEEPALIVE`, and [`stop_watchdog`] when the
//! device is released. `start_watchdog` runs `/usr/bin/uml_watchdog -pid
//! <UML's pid>`, or `-mconsole <socket>` when the management console has
//! a notify socket, and waits for its readiness byte. With
//! `CONFIG_UML_WATCHDOG=m` the module reaches these functions through the
//! exports of `harddog_user_exp.c`, which stays in C.
//!
//! The return conventions are the C's: `start_watchdog` 0 (the two
//! descriptors stored) or an error, `ping_watchdog` 1 or a negative errno
//! (`-EIO` for a short write); the ping's write is not retried on
//! `EINTR`. Messages are printed at the default level, as the C's bare
//! `printk` did.
//!
//! Divergences from the C, all where it misbehaved:
//!
//! * `stop_watchdog` reaps the helper: its input closed, it exits, and is
//!   waited for (up to [`harddog::EXIT_WAIT`], then killed). The C never
//!   waited, so every open and close of the device left a zombie
//!   `uml_watchdog`, and one that did not exit would have killed UML a
//!   minute later.
//! * Errors are negative errnos throughout: the C returned a positive
//!   errno when the helper could not be started (which the VFS turns into
//!   a warning and `EINVAL`), and -1 (`EPERM` to the guest) when reading
//!   the readiness byte or writing a ping failed.
//! * The readiness read is retried on `EINTR`; the C took the
//!   interruption as a failure and then waited for a helper whose input it
//!   still held open, which never exits.
//! * On failure exactly the descriptors still open are closed, once: the
//!   C leaked its end of the readiness pair and closed the helper's end
//!   of the ping pair twice.
//! * UML's ends of the two pairs are close-on-exec, so helpers UML starts
//!   later do not hold them (and so keep a stopped watchdog from seeing
//!   end of file); the helper's own ends become its 0, 1 and 2 as before.
//! * NULL out pointers are `-EFAULT`, before anything is started.

use core::ffi::{CStr, c_char, c_int, c_void};
use core::sync::atomic::{AtomicI32, Ordering};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use crate::host::harddog::{self, NotReady, PidArg, PreExecData, Reaped};
use crate::kernel::Level;
use crate::klog;

/// The os functions this file calls, in a kernel that exports this file.
#[cfg(all(feature = "kernel", feature = "os-um-drivers-harddog_user"))]
mod kern {
    use core::ffi::{c_char, c_int, c_void};

    use crate::host::helper::PreExec;

    unsafe extern "C" {
        pub fn run_helper(
            pre_exec: Option<PreExec>,
            pre_data: *mut c_void,
            argv: *mut *mut c_char,
        ) -> c_int;
        pub fn helper_wait(pid: c_int) -> c_int;
        pub fn os_pipe(fds: *mut c_int, stream: c_int, close_on_exec: c_int) -> c_int;
        pub fn os_getpid() -> c_int;
    }
}

/// Stand-ins for unit tests and kernels that keep `harddog_user.c`.
#[cfg(not(all(feature = "kernel", feature = "os-um-drivers-harddog_user")))]
mod kern {
    use core::ffi::c_int;

    pub use crate::abi::um_drivers::chan_user::stand_in::run_helper;

    pub unsafe fn helper_wait(pid: c_int) -> c_int {
        crate::abi::helper::helper_wait(pid)
    }

    pub unsafe fn os_pipe(fds: *mut c_int, stream: c_int, close_on_exec: c_int) -> c_int {
        // SAFETY: forwarded.
        unsafe { crate::abi::file::os_pipe(fds, stream, close_on_exec) }
    }

    pub unsafe fn os_getpid() -> c_int {
        crate::abi::process::os_getpid()
    }
}

/// The running helper: its pid and UML's two descriptors (-1: none). The
/// kernel half allows one opener at a time.
struct Running {
    pid: AtomicI32,
    in_fd: AtomicI32,
    out_fd: AtomicI32,
}

static RUNNING: Running = Running {
    pid: AtomicI32::new(-1),
    in_fd: AtomicI32::new(-1),
    out_fd: AtomicI32::new(-1),
};

/// A socket pair from `os_pipe(fds, 1, 1)`, owned; or its negative errno,
/// reported.
fn pair() -> Result<[OwnedFd; 2], c_int> {
    let mut fds: [c_int; 2] = [-1; 2];
    // SAFETY: room for two descriptors.
    let err = unsafe { kern::os_pipe(fds.as_mut_ptr(), 1, 1) };
    if err < 0 {
        klog!(
            Level::Warning,
            "harddog_open - os_pipe failed, err = {}",
            -err
        );
        return Err(err);
    }
    // SAFETY: two fresh descriptors, ours alone.
    Ok(fds.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// The helper child's wiring before it execs (`pre_exec`).
///
/// # Safety
///
/// `arg` points to the parent's [`PreExecData`].
unsafe extern "C" fn dog_pre_exec(arg: *mut c_void) {
    // SAFETY: the parent's data, alive until the child has exec'd.
    harddog::pre_exec_wiring(unsafe { arg.cast::<PreExecData>().read() });
}

/// `int start_watchdog(int *in_fd_ret, int *out_fd_ret, char *sock)`:
/// starts `uml_watchdog` and waits until it is ready. 0 with UML's end of
/// its output in `*in_fd_ret` and of its input in `*out_fd_ret`, or a
/// negative errno.
///
/// # Safety
///
/// `in_fd_ret` and `out_fd_ret` are NULL or writable; `sock` is NULL or a
/// C string.
#[cfg_attr(feature = "os-um-drivers-harddog_user", unsafe(no_mangle))]
pub unsafe extern "C" fn start_watchdog(
    in_fd_ret: *mut c_int,
    out_fd_ret: *mut c_int,
    sock: *mut c_char,
) -> c_int {
    if in_fd_ret.is_null() || out_fd_ret.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: NULL or a C string, by our contract.
    let sock = unsafe { super::chan_user::cstr_arg(sock) };
    match start(sock, harddog::PROGRAM) {
        Ok((in_fd, out_fd)) => {
            // SAFETY: writable by our contract.
            unsafe {
                *in_fd_ret = in_fd;
                *out_fd_ret = out_fd;
            }
            0
        }
        Err(err) => err,
    }
}

/// [`start_watchdog`] with the helper program given: UML's two
/// descriptors, or a negative errno.
fn start(sock: Option<&CStr>, program: &CStr) -> Result<(c_int, c_int), c_int> {
    // The helper's output (readiness) and input (pings).
    let [in_ours, in_theirs] = pair()?;
    let [out_theirs, out_ours] = pair()?;
    let mut data = PreExecData {
        stdin_fd: out_theirs.as_raw_fd(),
        stdout_fd: in_theirs.as_raw_fd(),
        close_me: [out_ours.as_raw_fd(), in_ours.as_raw_fd()],
    };
    // SAFETY: os_getpid has no arguments.
    let pid_arg = PidArg::new(unsafe { kern::os_getpid() });
    let (option, value) = match sock {
        Some(sock) => (harddog::MCONSOLE_OPTION, sock),
        None => (harddog::PID_OPTION, pid_arg.as_cstr()),
    };
    let mut argv = [
        program.as_ptr().cast_mut(),
        option.as_ptr().cast_mut(),
        value.as_ptr().cast_mut(),
        core::ptr::null_mut(),
    ];
    // SAFETY: a NULL-terminated argv of C strings and the wiring data, both alive until the child has exec'd.
    let pid = unsafe {
        kern::run_helper(
            Some(dog_pre_exec),
            (&raw mut data).cast(),
            argv.as_mut_ptr(),
        )
    };
    drop((in_theirs, out_theirs));
    if pid < 0 {
        klog!(
            Level::Warning,
            "harddog_open - run_helper failed, errno = {}",
            -pid
        );
        return Err(pid);
    }
    let err = match harddog::wait_ready(in_ours.as_raw_fd()) {
        Ok(()) => 0,
        Err(NotReady::Eof) => {
            klog!(Level::Warning, "harddog_open - EOF on watchdog pipe");
            -libc::EIO
        }
        Err(NotReady::Read(e)) => {
            klog!(
                Level::Warning,
                "harddog_open - read of watchdog pipe failed, err = {}",
                e as c_int
            );
            -(e as c_int)
        }
    };
    if err != 0 {
        // Its input closed first, so that a live helper exits.
        drop((in_ours, out_ours));
        // SAFETY: our child, waited for once.
        unsafe { kern::helper_wait(pid) };
        return Err(err);
    }
    let (in_fd, out_fd) = (in_ours.into_raw_fd(), out_ours.into_raw_fd());
    RUNNING.in_fd.store(in_fd, Ordering::Relaxed);
    RUNNING.out_fd.store(out_fd, Ordering::Relaxed);
    RUNNING.pid.store(pid, Ordering::Relaxed);
    Ok((in_fd, out_fd))
}

/// `void stop_watchdog(int in_fd, int out_fd)`: closes both descriptors;
/// the helper, seeing end of file, exits and is reaped.
#[cfg_attr(feature = "os-um-drivers-harddog_user", unsafe(no_mangle))]
pub extern "C" fn stop_watchdog(in_fd: c_int, out_fd: c_int) {
    // SAFETY: the kernel half gives up the descriptors start_watchdog gave it.
    unsafe {
        crate::host::file::close_raw(in_fd);
        crate::host::file::close_raw(out_fd);
    }
    let ours = RUNNING.in_fd.load(Ordering::Relaxed) == in_fd
        && RUNNING.out_fd.load(Ordering::Relaxed) == out_fd;
    if !ours {
        return;
    }
    RUNNING.in_fd.store(-1, Ordering::Relaxed);
    RUNNING.out_fd.store(-1, Ordering::Relaxed);
    let pid = RUNNING.pid.swap(-1, Ordering::Relaxed);
    if pid < 0 {
        return;
    }
    match harddog::reap(pid, harddog::EXIT_WAIT) {
        Reaped::Exited => {}
        Reaped::Killed => klog!(
            Level::Warning,
            "stop_watchdog - watchdog process {pid} did not exit, killed it"
        ),
        Reaped::Gone(e) => klog!(
            Level::Warning,
            "stop_watchdog - waitpid of watchdog process {pid} failed, errno = {}",
            e as c_int
        ),
    }
}

/// `int ping_watchdog(int fd)`: one newline to the helper. 1, or after a
/// message the negative errno of the failed write (`-EIO` if it wrote
/// nothing).
#[cfg_attr(feature = "os-um-drivers-harddog_user", unsafe(no_mangle))]
pub extern "C" fn ping_watchdog(fd: c_int) -> c_int {
    match harddog::ping(fd) {
        Ok(1) => 1,
        Ok(n) => {
            klog!(
                Level::Warning,
                "ping_watchdog - write failed, ret = {n}, err = 0"
            );
            -libc::EIO
        }
        Err(e) => {
            klog!(
                Level::Warning,
                "ping_watchdog - write failed, ret = -1, err = {}",
                e as c_int
            );
            -(e as c_int)
        }
    }
}

#[cfg(all(test, not(feature = "kernel")))]
mod tests {
    use std::ffi::CString;
    use std::path::Path;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use nix::errno::Errno;

    use super::*;
    use crate::abi::um_drivers::chan_user::test_support::{helpers_lock, write_script};

    /// Serialises the tests: the running helper is the file's static.
    static DOG: Mutex<()> = Mutex::new(());

    /// A stand-in `uml_watchdog`: records its arguments, reports ready
    /// (as the real one, with a NUL byte), logs each line of input and
    /// the end of file, then exits.
    fn stand_in(dir: &Path) -> CString {
        let log = dir.join("log");
        let text = format!(
            "#!/bin/sh\necho \"args $*\" >> '{log}'\nprintf '\\0'\n\
             while read -r line; do echo ping >> '{log}'; done\n\
             echo eof >> '{log}'\n",
            log = log.display()
        );
        script(dir, "uml_watchdog", &text)
    }

    fn script(dir: &Path, name: &str, text: &str) -> CString {
        let path = dir.join(name);
        write_script(&path, text);
        CString::new(path.into_os_string().into_encoded_bytes()).unwrap()
    }

    /// The stand-in's log, once it holds `lines` lines (up to 10 s).
    fn log_lines(dir: &Path, lines: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            let got: Vec<String> = text.lines().map(str::to_owned).collect();
            if got.len() >= lines || start.elapsed() > Duration::from_secs(10) {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether `pid` is gone entirely: neither running nor a zombie.
    fn gone(pid: c_int) -> bool {
        !Path::new(&format!("/proc/{pid}")).exists()
    }

    fn cloexec(fd: c_int) -> bool {
        // SAFETY: F_GETFD takes no argument.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert!(flags >= 0, "{fd}: {}", Errno::last());
        flags & libc::FD_CLOEXEC != 0
    }

    use crate::host::file::fd_probe::{closed, identity};

    #[test]
    fn the_helper_is_pinged_and_stopped_and_reaped() {
        let _d = DOG.lock().unwrap_or_else(|e| e.into_inner());
        let _h = helpers_lock();
        let dir = tempfile::tempdir().unwrap();
        let program = stand_in(dir.path());
        let (in_fd, out_fd) = start(None, &program).unwrap();
        let pid = RUNNING.pid.load(Ordering::Relaxed);
        assert!(pid > 0);
        assert!(cloexec(in_fd) && cloexec(out_fd));
        // SAFETY: getpid has no arguments.
        let me = unsafe { libc::getpid() };
        assert_eq!(log_lines(dir.path(), 1), [format!("args -pid {me}")]);
        for _ in 0..3 {
            assert_eq!(ping_watchdog(out_fd), 1);
        }
        let log = log_lines(dir.path(), 4);
        assert_eq!(log[1..], ["ping", "ping", "ping"], "{log:?}");
        assert!(!gone(pid));
        let ids = (identity(in_fd), identity(out_fd));
        // Stopped while running: whether it exits by itself in time (it
        // normally does) or is killed, it is reaped.
        stop_watchdog(in_fd, out_fd);
        assert!(closed(in_fd, ids.0) && closed(out_fd, ids.1));
        assert!(gone(pid), "the helper is reaped");
        assert_eq!(RUNNING.pid.load(Ordering::Relaxed), -1);
    }

    #[test]
    fn end_of_file_makes_the_helper_exit() {
        let _d = DOG.lock().unwrap_or_else(|e| e.into_inner());
        let _h = helpers_lock();
        let dir = tempfile::tempdir().unwrap();
        let program = stand_in(dir.path());
        let (in_fd, out_fd) = start(None, &program).unwrap();
        let pid = RUNNING.pid.load(Ordering::Relaxed);
        assert_eq!(ping_watchdog(out_fd), 1);
        // End of file on its input (a shutdown reaches it even while a
        // child another test forks holds a copy of our end).
        crate::host::socket::shutdown(out_fd, false, true).unwrap();
        assert!(exits_within(pid, Duration::from_secs(30)));
        assert_eq!(log_lines(dir.path(), 3)[1..], ["ping", "eof"]);
        let t = Instant::now();
        stop_watchdog(in_fd, out_fd);
        assert!(gone(pid));
        assert!(
            t.elapsed() < harddog::EXIT_WAIT,
            "a zombie is reaped at once"
        );
    }

    /// Whether `pid` (our child) has exited (is a zombie) within `limit`.
    fn exits_within(pid: c_int, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next());
            if state == Some("Z") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// The bytes `pid` has read so far (`rchar` of `/proc/PID/io`).
    fn rchar(pid: c_int) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/io"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("rchar:").and_then(|v| v.trim().parse().ok()))
            .unwrap()
    }

    #[test]
    fn the_mconsole_socket_replaces_the_pid() {
        let _d = DOG.lock().unwrap_or_else(|e| e.into_inner());
        let _h = helpers_lock();
        let dir = tempfile::tempdir().unwrap();
        let program = stand_in(dir.path());
        let sock = c"/tmp/umid/mconsole";
        let (in_fd, out_fd) = start(Some(sock), &program).unwrap();
        assert_eq!(
            log_lines(dir.path(), 1),
            ["args -mconsole /tmp/umid/mconsole"]
        );
        stop_watchdog(in_fd, out_fd);
    }

    #[test]
    fn a_ping_to_a_dead_helper_is_an_error() {
        let _d = DOG.lock().unwrap_or_else(|e| e.into_inner());
        let _h = helpers_lock();
        let dir = tempfile::tempdir().unwrap();
        let program = script(dir.path(), "uml_watchdog", "#!/bin/sh\nprintf '\\0'\n");
        let (in_fd, out_fd) = start(None, &program).unwrap();
        let pid = RUNNING.pid.load(Ordering::Relaxed);
        // Its exit closes its ends: end of file on UML's.
        let mut b = [0u8; 1];
        assert_eq!(crate::host::file::read(in_fd, &mut b), Ok(0));
        // A child another test forks may hold a copy of the helper's end
        // for a moment (until it execs): retry briefly.
        let start = Instant::now();
        let mut r = ping_watchdog(out_fd);
        while r == 1 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
            r = ping_watchdog(out_fd);
        }
        assert_eq!(r, -libc::EPIPE);
        assert!(!gone(pid), "a zombie until stopped");
        let t = Instant::now();
        stop_watchdog(in_fd, out_fd);
        assert!(gone(pid));
        assert!(t.elapsed() < harddog::EXIT_WAIT);
        assert_eq!(ping_watchdog(-1), -libc::EBADF);
    }

    #[test]
    fn a_helper_that_never_gets_ready_fails_the_open() {
        let _d = DOG.lock().unwrap_or_else(|e| e.into_inner());
        let _h = helpers_lock();
        let dir = tempfile::tempdir().unwrap();
        // Exits without its byte.
        let program = script(dir.path(), "uml_watchdog", "#!/bin/sh\nexit 0\n");
        assert_eq!(start(None, &program), Err(-libc::EIO));
        assert_eq!(RUNNING.pid.load(Ordering::Relaxed), -1);
        // Not there at all: the exec's negative errno (the C returned it
        // positive).
        let missing = c"/nonexistent/uml_watchdog";
        assert_eq!(start(None, missing), Err(-libc::ENOENT));
        let (mut a, mut b) = (-1, -1);
        // SAFETY: NULL out pointers are refused before anything starts.
        unsafe {
            assert_eq!(
                start_watchdog(core::ptr::null_mut(), &mut b, core::ptr::null_mut()),
                -libc::EFAULT
            );
            assert_eq!(
                start_watchdog(&mut a, core::ptr::null_mut(), core::ptr::null_mut()),
                -libc::EFAULT
            );
        }
        assert_eq!((a, b), (-1, -1));
    }

    #[test]
    fn the_real_uml_watchdog_starts_and_stops() {
        let program = Path::new("/usr/bin/uml_watchdog");
        if !program.exists() {
            eprintln!("skipped: /usr/bin/uml_watchdog (uml-utilities) is not installed");
            return;
        }
        let _d = DOG.lock().unwrap_or_else(|e| e.into_inner());
        let _h = helpers_lock();
        let (mut in_fd, mut out_fd) = (-1, -1);
        // SAFETY: writable out pointers; no socket.
        let r = unsafe { start_watchdog(&mut in_fd, &mut out_fd, core::ptr::null_mut()) };
        assert_eq!(r, 0);
        let pid = RUNNING.pid.load(Ordering::Relaxed);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        // SAFETY: getpid has no arguments.
        let me = unsafe { libc::getpid() };
        assert_eq!(
            cmdline,
            format!("/usr/bin/uml_watchdog\0-pid\0{me}\0").into_bytes()
        );
        let before = rchar(pid);
        assert_eq!(ping_watchdog(out_fd), 1);
        assert_eq!(ping_watchdog(out_fd), 1);
        let start = Instant::now();
        while rchar(pid) < before + 2 && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(rchar(pid), before + 2, "it read both pings");
        // It exits on end of file.
        crate::host::socket::shutdown(out_fd, false, true).unwrap();
        assert!(exits_within(pid, Duration::from_secs(30)));
        stop_watchdog(in_fd, out_fd);
        assert!(gone(pid));
    }
}
