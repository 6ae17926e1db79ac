// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/util.c.
//!
//! `os_info` and `os_warn` are C-variadic, which stable Rust cannot define:
//! a small C shim in the kernel build defines them and asks
//! [`um_os_info_quiet`] whether the `quiet` option was given.

use core::ffi::{c_char, c_int, c_uint, c_ulong, c_void};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::abi::layout::UM_THREAD_SIZE;
use crate::host::util as core_util;

/// Set by the `quiet` command-line option; read by the C `os_info` shim.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Makes a kernel stack (`UM_THREAD_SIZE` bytes at `address`) RWX; panics
/// the kernel if the host refuses.
#[cfg_attr(feature = "os-util", unsafe(no_mangle))]
pub extern "C" fn stack_protections(address: c_ulong) {
    if let Err(e) = core_util::protect_stack(address as usize, UM_THREAD_SIZE) {
        let msg = crate::kernel::stack_format(format_args!(
            "protecting stack failed, errno = {}",
            e as i32
        ));
        crate::kernel::fatal(msg.as_str());
    }
}

/// Puts the terminal `fd` in raw mode: 0, or -errno (EINTR retried).
#[cfg_attr(feature = "os-util", unsafe(no_mangle))]
pub extern "C" fn raw(fd: c_int) -> c_int {
    match core_util::make_raw(fd) {
        Ok(()) => 0,
        Err(e) => -(e as c_int),
    }
}

/// Copies the machine name UML reports (`uname -m`, with the i686/x86_64
/// adjustment) into `machine_out`, a `new_utsname` field.
///
/// # Safety
///
/// `machine_out` has room for a utsname field (65 bytes).
#[cfg_attr(feature = "os-util", unsafe(no_mangle))]
pub unsafe extern "C" fn setup_machinename(machine_out: *mut c_char) {
    let Ok(host) = core_util::host_uname() else {
        return;
    };
    let name = core_util::uml_machine_name(core_util::uts_field(&host.machine));
    // A utsname field holds at most 64 bytes and a NUL, like the kernel's.
    let len = name.len().min(host.machine.len() - 1);
    // `name` is a separate (host or static) buffer.
    // SAFETY: the caller's buffer holds a utsname field, at least `len + 1` bytes.
    unsafe {
        core::ptr::copy_nonoverlapping(name.as_ptr(), machine_out.cast::<u8>(), len);
        *machine_out.add(len) = 0;
    }
}

/// Writes "sysname nodename release version machine" of the host into
/// `buf` with `snprintf` semantics.
///
/// # Safety
///
/// `buf` is valid for `len` bytes of writes (nothing is written if
/// `len <= 0`).
#[cfg_attr(feature = "os-util", unsafe(no_mangle))]
pub unsafe extern "C" fn setup_hostinfo(buf: *mut c_char, len: c_int) {
    if len <= 0 || buf.is_null() {
        return;
    }
    // SAFETY: the caller guarantees `len` writable bytes at `buf`.
    let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len as usize) };
    match core_util::host_uname() {
        Ok(host) => {
            core_util::host_info(&host, out);
        }
        Err(_) => out[0] = 0,
    }
}

/// `getrandom(2)`: the number of bytes read, or -1 with errno set.
///
/// # Safety
///
/// `buf` is valid for `len` bytes of writes.
#[cfg_attr(feature = "os-util", unsafe(no_mangle))]
pub unsafe extern "C" fn os_getrandom(buf: *mut c_void, len: usize, flags: c_uint) -> isize {
    // SAFETY: the caller guarantees `buf` is writable for `len` bytes.
    unsafe { libc::getrandom(buf, len, flags) }
}

/// UML helper threads must not handle SIGWINCH, SIGINT or SIGTERM.
#[cfg_attr(feature = "os-util", unsafe(no_mangle))]
pub extern "C" fn os_fix_helper_signals() {
    core_util::fix_helper_signals();
}

#[cfg(feature = "kernel")]
fn kill_ptraced(pid: c_int) {
    unsafe extern "C" {
        fn os_kill_ptraced_process(pid: c_int, reap_child: c_int);
    }
    // No reap: there is nothing sensible to do if reaping fails on the way down.
    // SAFETY: a plain call into the os layer with a pid that waitpid returned.
    unsafe { os_kill_ptraced_process(pid, 0) };
}

#[cfg(not(feature = "kernel"))]
fn kill_ptraced(pid: c_int) {
    // SAFETY: signals a child of ours.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Terminates the whole UML process group, then dies by SIGABRT.
#[cfg_attr(feature = "os-util", unsafe(no_mangle))]
pub extern "C" fn os_dump_core() -> ! {
    core_util::dump_core(kill_ptraced)
}

/// Early console output: the first `n` bytes of `s` (stopping at a NUL) to
/// C stdout, buffered like every other stdout user in UML.
///
/// # Safety
///
/// `s` points to at least `n` readable bytes or a NUL-terminated string.
#[cfg_attr(feature = "os-util", unsafe(no_mangle))]
pub unsafe extern "C" fn um_early_printk(s: *const c_char, n: c_uint) {
    // SAFETY: "%.*s" reads at most `n` bytes of `s` (or to its NUL), readable per the caller.
    unsafe { libc::printf(c"%.*s".as_ptr(), n as c_int, s) };
}

/// The `quiet` option: silences `os_info`.
#[cfg_attr(not(feature = "os-util"), allow(dead_code))]
unsafe extern "C" fn quiet_cmd_param(_str: *mut c_char, _add: *mut c_int) -> c_int {
    QUIET.store(true, Ordering::Relaxed);
    0
}

crate::uml_setup!(
    "os-util",
    UML_SETUP_QUIET,
    c"quiet",
    quiet_cmd_param,
    c"quiet\n    Turns off information messages during boot.\n\n"
);

/// 1 if the `quiet` option was given (the C `os_info` shim then prints
/// nothing), else 0.
#[cfg_attr(feature = "os-util", unsafe(no_mangle))]
pub extern "C" fn um_os_info_quiet() -> c_int {
    c_int::from(QUIET.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::util::test_support::run_forked;

    #[test]
    fn raw_returns_negative_errno() {
        assert_eq!(raw(-1), -libc::EBADF);
        let pty = nix::pty::openpty(None, None).unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(raw(pty.slave.as_raw_fd()), 0);
    }

    #[test]
    fn quiet_option_sets_flag() {
        assert_eq!(um_os_info_quiet(), 0);
        let mut add = 1;
        // SAFETY: the setup function ignores its arguments.
        let rc = unsafe { quiet_cmd_param(c"".as_ptr().cast_mut(), &mut add) };
        assert_eq!(rc, 0);
        assert_eq!(um_os_info_quiet(), 1);
        assert_eq!(add, 1, "quiet does not touch *add");
    }

    #[test]
    fn machinename_and_hostinfo_buffers() {
        let mut machine = [0x55 as c_char; 65];
        // SAFETY: 65-byte buffer.
        unsafe { setup_machinename(machine.as_mut_ptr()) };
        let host = core_util::host_uname().unwrap();
        let got = core_util::uts_field(&machine);
        assert_eq!(
            got,
            core_util::uml_machine_name(core_util::uts_field(&host.machine))
        );
        assert!(!got.is_empty());

        let mut info = [0x55 as c_char; 8];
        // SAFETY: writes at most 8 bytes.
        unsafe { setup_hostinfo(info.as_mut_ptr(), 8) };
        assert_eq!(info[7], 0);
        let mut full = [0u8; 512];
        let n = core_util::host_info(&host, &mut full);
        assert!(n > 7);
        assert_eq!(core_util::uts_field(&info), &full[..7]);
        let mut untouched = [0x55 as c_char; 4];
        // SAFETY: len 0: nothing written.
        unsafe { setup_hostinfo(untouched.as_mut_ptr(), 0) };
        assert_eq!(untouched, [0x55; 4]);
    }

    #[test]
    fn os_getrandom_returns_bytes() {
        let mut buf = [0u8; 32];
        // SAFETY: 32 writable bytes.
        assert_eq!(unsafe { os_getrandom(buf.as_mut_ptr().cast(), 32, 0) }, 32);
        assert_ne!(buf, [0; 32]);
    }

    #[test]
    fn early_printk_writes_prefix_to_stdout() {
        let mut fds = [0; 2];
        // SAFETY: valid array of two fds.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let [rd, wr] = fds;
        let status = run_forked(|| {
            // SAFETY: in the forked child: stdout becomes the pipe, then C stdio prints and flushes.
            unsafe {
                libc::dup2(wr, 1);
                um_early_printk(c"hello world".as_ptr(), 5);
                um_early_printk(c"!".as_ptr(), 40);
                libc::fflush(core::ptr::null_mut());
                libc::_exit(0)
            }
        });
        assert!(libc::WIFEXITED(status));
        let mut buf = [0u8; 64];
        // SAFETY: closing our write end, reading into a valid buffer.
        let n = unsafe {
            libc::close(wr);
            let n = libc::read(rd, buf.as_mut_ptr().cast(), buf.len());
            libc::close(rd);
            n
        };
        assert_eq!(&buf[..n as usize], b"hello!");
    }
}
