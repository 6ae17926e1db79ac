// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing `arch/um/drivers/chan_user.c` (declared in
//! `chan_user.h`): the generic operations of UML's console and serial
//! line channels, and the `SIGWINCH` helper, over [`crate::host::chan`].
//!
//! `chan_user.h` also defines the operation table every channel type
//! exports (`fd_ops`, `pts_ops`, ...), mirrored here as [`ChanOps`], and
//! the options a line passes to a channel's `init` ([`ChanOpts`]); the
//! kernel build checks both layouts (see [`crate::abi::layout`]). The
//! channel types' own files ([`super::fd`], [`super::null`],
//! [`super::pty`], [`super::tty`], [`super::xterm`],
//! [`super::port_user`]) use `chan_alloc` for the data `generic_free`
//! frees, and `generic_ops!` to point their tables at the generic
//! operations.
//!
//! The return conventions and the `EINTR` behaviour are the C's:
//! `generic_read` 1, 0 when there is nothing (`EAGAIN`), `-EIO` at end of
//! file, else the negative errno, retried on `EINTR`; `generic_write` the
//! bytes one `write` took (the C's loop retries only `EINTR`, despite its
//! comment), 0 on `EAGAIN`, `-EIO` if nothing was written;
//! `generic_window_size` 1 if the size changed, 0 if not, or the negative
//! errno of `TIOCGWINSZ`; `generic_console_write` as `generic_write`, or
//! the negative errno of preparing the terminal.
//!
//! Where the C misbehaved, this does the safe thing:
//!
//! * `generic_console_write` left `SIGIO` blocked when it could not read
//!   or change the terminal's settings; the mask is always restored here.
//!   A negative length is `-EINVAL` (the C passed it to `write` as a huge
//!   `size_t`, which could send memory past the buffer to the terminal).
//! * NULL pointers the C would have written through (`c_out`, `rows_out`,
//!   `cols_out`) or read from with a non-zero length are `-EFAULT`.
//! * When the `SIGWINCH` thread was started but its first byte could not
//!   be read, or its end could not be made non-blocking, the C closed the
//!   socket pair and left the thread (and its stack) behind; here the
//!   thread is killed and its stack freed as well.
//! * The thread's first message printed `-count`, always 1 when the write
//!   failed; it prints the errno.

use core::ffi::{CStr, c_char, c_int, c_uint, c_ulong, c_ushort, c_void};

use crate::host::chan::winch::{self, WinchData};
use crate::host::chan::{self, term};
use crate::kernel::Level;
use crate::klog;

/// `struct chan_opts`: what a line (console or serial line) tells its
/// channels' `init`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ChanOpts {
    /// Called by the pseudo-terminal channels with the device they opened
    /// and the line's number.
    pub announce: Option<unsafe extern "C" fn(dev_name: *mut c_char, dev: c_int)>,
    /// The xterm title, a format with one `%d` for the line's number.
    pub xterm_title: *mut c_char,
    /// Whether terminals are put in raw mode.
    pub raw: c_int,
}

/// `init`: the channel's data for its description after the type's name
/// (`":0"` of `"fd:0"`), or NULL.
pub type InitFn = unsafe extern "C" fn(*mut c_char, c_int, *const ChanOpts) -> *mut c_void;
/// `open(input, output, primary, data, dev_out)`: a descriptor, or a
/// negative errno.
pub type OpenFn = unsafe extern "C" fn(c_int, c_int, c_int, *mut c_void, *mut *mut c_char) -> c_int;
pub type CloseFn = unsafe extern "C" fn(c_int, *mut c_void);
pub type ReadFn = unsafe extern "C" fn(c_int, *mut u8, *mut c_void) -> c_int;
pub type WriteFn = unsafe extern "C" fn(c_int, *const u8, usize, *mut c_void) -> c_int;
pub type ConsoleWriteFn = unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int;
pub type WindowSizeFn =
    unsafe extern "C" fn(c_int, *mut c_void, *mut c_ushort, *mut c_ushort) -> c_int;
pub type FreeFn = unsafe extern "C" fn(*mut c_void);

/// `struct chan_ops`: a channel type's operations, one `const` table per
/// type, found by `parse_chan` in `chan_kern.c` by its `type`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ChanOps {
    /// The field `type`: the name before the `:` of a description.
    pub kind: *const c_char,
    pub init: Option<InitFn>,
    pub open: Option<OpenFn>,
    pub close: Option<CloseFn>,
    pub read: Option<ReadFn>,
    pub write: Option<WriteFn>,
    pub console_write: Option<ConsoleWriteFn>,
    pub window_size: Option<WindowSizeFn>,
    pub free: Option<FreeFn>,
    /// Whether the line asks for `SIGWINCH` support ([`register_winch`]).
    pub winch: c_int,
}

// SAFETY: the tables are never written; their pointers are to static
// strings and functions.
unsafe impl Sync for ChanOps {}

/// `struct tty_port`: the kernel's, only passed through.
#[repr(C)]
pub struct TtyPort {
    _opaque: [u8; 0],
}

/// `UM_GFP_KERNEL`, the flags the channel types allocate with.
#[cfg(feature = "kernel")]
const GFP_KERNEL: c_int = crate::abi::helper::UM_GFP_KERNEL;

/// Allocates `value` as the C's `uml_kmalloc(sizeof(*data),
/// UM_GFP_KERNEL)` did, so that [`generic_free`] (`kfree`, in C or here)
/// frees it: kernel memory in a kernel, the host's `malloc` elsewhere.
/// NULL if out of memory.
pub(crate) fn chan_alloc<T>(value: T) -> *mut T {
    const { assert!(align_of::<T>() <= 8, "kmalloc aligns to 8 bytes") };
    #[cfg(feature = "kernel")]
    // SAFETY: a plain kernel allocation of a small structure.
    let p = unsafe { crate::kernel::um::uml_kmalloc(size_of::<T>() as c_int, GFP_KERNEL) };
    #[cfg(not(feature = "kernel"))]
    // SAFETY: a plain host allocation.
    let p = unsafe { libc::malloc(size_of::<T>()) };
    let p = p.cast::<T>();
    if !p.is_null() {
        // SAFETY: `p` is fresh memory for one T, suitably aligned.
        unsafe { p.write(value) };
    }
    p
}

/// What `open` does for a line asked to be raw: keeps the terminal
/// settings of `fd` in `saved` (for `close` to put back) and makes it raw
/// with `raw()` of util.c, the crate's own. 0 or the negative errno.
pub(crate) fn save_and_make_raw(fd: c_int, saved: &mut term::Termios) -> c_int {
    match term::get_attr(fd) {
        Ok(tt) => *saved = tt,
        Err(e) => return -(e as c_int),
    }
    crate::abi::util::raw(fd)
}

/// Frees what [`chan_alloc`] allocated (`kfree`); NULL is allowed.
///
/// # Safety
///
/// `p` is NULL or from [`chan_alloc`] (or `uml_kmalloc`), not used after.
pub(crate) unsafe fn chan_free(p: *mut c_void) {
    #[cfg(feature = "kernel")]
    // SAFETY: kernel memory from uml_kmalloc, by our contract.
    unsafe {
        crate::kernel::um::kfree(p)
    };
    #[cfg(not(feature = "kernel"))]
    // SAFETY: host memory from malloc, by our contract.
    unsafe {
        libc::free(p)
    };
}

/// Declares `mod generic`, the generic operations a channel type's table
/// points at: the C symbols (`chan_user.c`'s, or this file's when it is
/// migrated too) in a kernel that exports the type's symbols (feature
/// `$feature`), else this file's functions.
macro_rules! generic_ops {
    ($feature:literal) => {
        #[cfg(all(feature = "kernel", feature = $feature))]
        #[allow(dead_code)] // each type's table uses some of them
        mod generic {
            use core::ffi::{c_char, c_int, c_ushort, c_void};

            unsafe extern "C" {
                pub fn generic_close(fd: c_int, unused: *mut c_void);
                pub fn generic_read(fd: c_int, c_out: *mut u8, unused: *mut c_void) -> c_int;
                pub fn generic_write(
                    fd: c_int,
                    buf: *const u8,
                    n: usize,
                    unused: *mut c_void,
                ) -> c_int;
                pub fn generic_console_write(fd: c_int, buf: *const c_char, n: c_int) -> c_int;
                pub fn generic_window_size(
                    fd: c_int,
                    unused: *mut c_void,
                    rows_out: *mut c_ushort,
                    cols_out: *mut c_ushort,
                ) -> c_int;
                pub fn generic_free(data: *mut c_void);
            }
        }
        #[cfg(not(all(feature = "kernel", feature = $feature)))]
        mod generic {
            #[allow(unused_imports)]
            pub use $crate::abi::um_drivers::chan_user::{
                generic_close, generic_console_write, generic_free, generic_read,
                generic_window_size, generic_write,
            };
        }
    };
}
pub(crate) use generic_ops;

/// Stand-ins for the kernel's helper functions, shared by the channel
/// files' unit tests (and compiled, unused, into kernels that keep a
/// file in C): helpers on stacks of their own, messages on stderr.
#[allow(dead_code)]
pub(crate) mod stand_in {
    use core::ffi::{CStr, c_char, c_int, c_uint, c_ulong, c_void};

    use crate::host::helper::{self, PreExec, ThreadFn};

    /// A helper's stack: more than the kernel's page, as the stand-ins'
    /// messages format on it.
    const STACK_LEN: usize = 64 << 10;

    fn map_stack() -> Option<usize> {
        // SAFETY: a fresh private anonymous mapping.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                STACK_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        (p != libc::MAP_FAILED).then_some(p as usize)
    }

    /// `free_stack(stack, 0)` for a stack [`run_helper_thread`] handed out.
    ///
    /// # Safety
    ///
    /// `stack` came from [`run_helper_thread`] and its thread is gone.
    pub unsafe fn free_helper_stack(stack: c_ulong) {
        if stack != 0 {
            // SAFETY: our own mapping, no longer used.
            unsafe { libc::munmap(stack as *mut c_void, STACK_LEN) };
        }
    }

    /// `run_helper`: starts `argv[0]` after `pre_exec(pre_data)`.
    ///
    /// # Safety
    ///
    /// As `run_helper` (os.h): a NULL-terminated `argv` of C strings.
    pub unsafe fn run_helper(
        pre_exec: Option<PreExec>,
        pre_data: *mut c_void,
        argv: *mut *mut c_char,
    ) -> c_int {
        let Some(base) = map_stack() else {
            return -libc::ENOMEM;
        };
        let mut buf = [0 as c_char; libc::PATH_MAX as usize];
        // SAFETY: a stack of ours, argv per our contract, a PATH_MAX buffer; the child has exec'd or is reaped on return.
        let r = unsafe {
            helper::run_helper(
                (base + STACK_LEN) as *mut u8,
                pre_exec,
                pre_data,
                argv,
                buf.as_mut_ptr(),
            )
        };
        // SAFETY: the child no longer uses the stack.
        unsafe { free_helper_stack(base as c_ulong) };
        r.unwrap_or_else(|e| e.neg_errno())
    }

    /// `run_helper_thread`: clones `proc_(arg)` with `flags`; with
    /// `stack_out` the stack is handed out, else the thread is waited for.
    ///
    /// # Safety
    ///
    /// As `run_helper_thread` (os.h).
    pub unsafe fn run_helper_thread(
        proc_: ThreadFn,
        arg: *mut c_void,
        flags: c_uint,
        stack_out: *mut c_ulong,
    ) -> c_int {
        let Some(base) = map_stack() else {
            return -libc::ENOMEM;
        };
        // SAFETY: a stack of ours for the thread's life; proc_ per our contract.
        let started = unsafe {
            helper::start_helper_thread((base + STACK_LEN) as *mut u8, proc_, arg, flags as c_int)
        };
        let pid = match started {
            Ok(pid) => pid,
            Err(e) => {
                // SAFETY: no thread uses it.
                unsafe { free_helper_stack(base as c_ulong) };
                return -(e as c_int);
            }
        };
        if stack_out.is_null() {
            let _ = helper::wait_helper(pid);
            // SAFETY: the thread is gone.
            unsafe { free_helper_stack(base as c_ulong) };
        } else {
            // SAFETY: writable by our contract.
            unsafe { *stack_out = base as c_ulong };
        }
        pid
    }

    /// `os_info(fmt, a, b)`: the message on stderr, formatted without
    /// allocating or locking (a helper thread may call this).
    pub fn info(fmt: &CStr, a: c_int, b: c_int) {
        let mut buf = [0u8; 256];
        let n = crate::host::chan::format_ints(fmt.to_bytes(), &[a, b], &mut buf);
        crate::kernel::write_stderr(&buf[..n]);
    }

    /// `os_kill_process(pid, reap_child)` without the skas bookkeeping.
    pub fn kill_process(pid: c_int, reap_child: c_int) {
        crate::host::ptrace::kill(pid, libc::SIGKILL);
        if reap_child != 0 {
            crate::host::ptrace::reap(pid);
        }
    }
}

/// The kernel half and the os functions this file calls. Only declared
/// where this file's symbols are exported.
#[cfg(all(feature = "kernel", feature = "os-um-drivers-chan_user"))]
mod kern {
    use core::ffi::{CStr, c_char, c_int, c_uint, c_ulong, c_void};

    use super::TtyPort;
    use crate::host::helper::ThreadFn;

    unsafe extern "C" {
        /// `line.c`: watches `fd` for the thread's bytes (-1: the host
        /// sends `SIGWINCH` to UML itself); on failure it kills `pid`,
        /// closes `fd` and frees `stack`.
        pub fn register_winch_irq(
            fd: c_int,
            tty_fd: c_int,
            pid: c_int,
            port: *mut TtyPort,
            stack: c_ulong,
        );
        /// `skas/process.c`: whether `pid` is UML's own process group.
        pub fn is_skas_winch(pid: c_int, fd: c_int, data: *mut c_void) -> c_int;
        pub fn run_helper_thread(
            proc_: ThreadFn,
            arg: *mut c_void,
            flags: c_uint,
            stack_out: *mut c_ulong,
        ) -> c_int;
        pub fn os_pipe(fds: *mut c_int, stream: c_int, close_on_exec: c_int) -> c_int;
        pub fn os_set_fd_block(fd: c_int, blocking: c_int) -> c_int;
        pub fn os_set_pdeathsig();
        pub fn os_getpid() -> c_int;
        pub fn os_kill_process(pid: c_int, reap_child: c_int);
        fn os_info(fmt: *const c_char, ...);
    }

    /// `free_stack(stack, 0)`: the one page `run_helper_thread` gave.
    ///
    /// # Safety
    ///
    /// `stack` came from `run_helper_thread` and its thread is gone.
    pub unsafe fn free_helper_stack(stack: c_ulong) {
        // SAFETY: by our contract.
        unsafe { crate::kernel::um::free_stack(stack, 0) };
    }

    /// `os_info(fmt, a, b)`.
    pub fn info(fmt: &CStr, a: c_int, b: c_int) {
        // SAFETY: the formats have at most two %d conversions; extra arguments are ignored by C.
        unsafe { os_info(fmt.as_ptr(), a, b) };
    }
}

/// Stand-ins for the kernel half: unit tests, and kernels that keep the C
/// file (where nothing here is called).
#[cfg(not(all(feature = "kernel", feature = "os-um-drivers-chan_user")))]
mod kern {
    use core::ffi::{c_int, c_ulong, c_void};
    use std::sync::Mutex;

    use super::TtyPort;
    pub use super::stand_in::{free_helper_stack, info, run_helper_thread};

    /// A call of `register_winch_irq`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct WinchIrq {
        pub fd: c_int,
        pub tty_fd: c_int,
        pub pid: c_int,
        pub port: usize,
        pub stack: c_ulong,
    }

    /// The calls of `register_winch_irq` so far.
    pub static WINCH_IRQS: Mutex<Vec<WinchIrq>> = Mutex::new(Vec::new());

    pub unsafe fn register_winch_irq(
        fd: c_int,
        tty_fd: c_int,
        pid: c_int,
        port: *mut TtyPort,
        stack: c_ulong,
    ) {
        WINCH_IRQS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(WinchIrq {
                fd,
                tty_fd,
                pid,
                port: port as usize,
                stack,
            });
    }

    pub unsafe fn is_skas_winch(pid: c_int, _fd: c_int, _data: *mut c_void) -> c_int {
        // SAFETY: getpgrp has no arguments.
        c_int::from(pid == unsafe { libc::getpgrp() })
    }

    pub unsafe fn os_pipe(fds: *mut c_int, stream: c_int, close_on_exec: c_int) -> c_int {
        // SAFETY: forwarded.
        unsafe { crate::abi::file::os_pipe(fds, stream, close_on_exec) }
    }

    pub unsafe fn os_set_fd_block(fd: c_int, blocking: c_int) -> c_int {
        crate::abi::file::os_set_fd_block(fd, blocking)
    }

    pub unsafe fn os_set_pdeathsig() {
        crate::abi::process::os_set_pdeathsig();
    }

    pub unsafe fn os_getpid() -> c_int {
        crate::abi::process::os_getpid()
    }

    pub unsafe fn os_kill_process(pid: c_int, reap_child: c_int) {
        super::stand_in::kill_process(pid, reap_child);
    }
}

/// `void generic_close(int fd, void *unused)`: closes the channel's
/// descriptor.
///
/// # Safety
///
/// `fd` is the channel's, given up by the caller.
#[cfg_attr(feature = "os-um-drivers-chan_user", unsafe(no_mangle))]
pub unsafe extern "C" fn generic_close(fd: c_int, _unused: *mut c_void) {
    // SAFETY: the caller's descriptor, closed once, as in C.
    unsafe { libc::close(fd) };
}

/// `int generic_read(int fd, __u8 *c_out, void *unused)`: one byte into
/// `*c_out`: 1, 0 if there is none now, `-EIO` at end of file, else the
/// negative errno; `EINTR` retried.
///
/// # Safety
///
/// `c_out` is NULL (`-EFAULT`) or writable.
#[cfg_attr(feature = "os-um-drivers-chan_user", unsafe(no_mangle))]
pub unsafe extern "C" fn generic_read(fd: c_int, c_out: *mut u8, _unused: *mut c_void) -> c_int {
    if c_out.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: writable by our contract.
    match chan::read_byte(fd, unsafe { &mut *c_out }) {
        Ok(true) => 1,
        Ok(false) => 0,
        Err(e) => -(e as c_int),
    }
}

/// The first `n` bytes at `buf` written as `generic_write` does.
///
/// # Safety
///
/// `buf` is NULL or readable for `n` bytes.
unsafe fn write_raw(fd: c_int, buf: *const u8, n: usize) -> c_int {
    let bytes: &[u8] = if n == 0 {
        &[]
    } else if buf.is_null() {
        return -libc::EFAULT;
    } else if n > isize::MAX as usize {
        return -libc::EINVAL;
    } else {
        // SAFETY: readable for `n` bytes by our contract.
        unsafe { core::slice::from_raw_parts(buf, n) }
    };
    match chan::write_once(fd, bytes) {
        // At most MAX_RW_COUNT (just under 2 GiB) bytes: an int.
        Ok(written) => written as c_int,
        Err(e) => -(e as c_int),
    }
}

/// `int generic_write(int fd, const __u8 *buf, size_t n, void *unused)`:
/// one `write` of the `n` bytes (`EINTR` retried): the bytes written, 0
/// if the descriptor would block, `-EIO` if nothing was written, else the
/// negative errno.
///
/// # Safety
///
/// `buf` is NULL or readable for `n` bytes.
#[cfg_attr(feature = "os-um-drivers-chan_user", unsafe(no_mangle))]
pub unsafe extern "C" fn generic_write(
    fd: c_int,
    buf: *const u8,
    n: usize,
    _unused: *mut c_void,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { write_raw(fd, buf, n) }
}

/// `int generic_window_size(int fd, void *unused, unsigned short
/// *rows_out, unsigned short *cols_out)`: stores the window size of
/// terminal `fd`; 1 if it differs from what the pointers held, 0 if not,
/// or the negative errno of `TIOCGWINSZ`.
///
/// # Safety
///
/// `rows_out` and `cols_out` are NULL (`-EFAULT`) or valid for reads and
/// writes.
#[cfg_attr(feature = "os-um-drivers-chan_user", unsafe(no_mangle))]
pub unsafe extern "C" fn generic_window_size(
    fd: c_int,
    _unused: *mut c_void,
    rows_out: *mut c_ushort,
    cols_out: *mut c_ushort,
) -> c_int {
    let (rows, cols) = match term::window_size(fd) {
        Ok(size) => size,
        Err(e) => return -(e as c_int),
    };
    if rows_out.is_null() || cols_out.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: valid by our contract.
    unsafe {
        let changed = *rows_out != rows || *cols_out != cols;
        *rows_out = rows;
        *cols_out = cols;
        c_int::from(changed)
    }
}

/// `void generic_free(void *data)`: `kfree(data)`.
///
/// # Safety
///
/// `data` is NULL or kernel memory (a channel's data), not used after.
#[cfg_attr(feature = "os-um-drivers-chan_user", unsafe(no_mangle))]
pub unsafe extern "C" fn generic_free(data: *mut c_void) {
    // SAFETY: by our contract.
    unsafe { chan_free(data) };
}

/// `int generic_console_write(int fd, const char *buf, int n)`: a kernel
/// message to a console: [`generic_write`] with output processing
/// (`OPOST`) on for a terminal, so that a raw console still starts new
/// lines in the first column, and `SIGIO` blocked meanwhile. The write's
/// result, or the negative errno of preparing the terminal (nothing
/// written); `-EINVAL` for a negative `n`.
///
/// # Safety
///
/// `buf` is NULL or readable for `n` bytes.
#[cfg_attr(feature = "os-um-drivers-chan_user", unsafe(no_mangle))]
pub unsafe extern "C" fn generic_console_write(fd: c_int, buf: *const c_char, n: c_int) -> c_int {
    let Ok(len) = usize::try_from(n) else {
        return -libc::EINVAL;
    };
    // SAFETY: forwarded.
    match term::with_output_processing(fd, || unsafe { write_raw(fd, buf.cast(), len) }) {
        Ok(r) => r,
        Err(e) => -(e as c_int),
    }
}

/// The `SIGWINCH` thread (`winch_thread`), a `clone(CLONE_FILES)` child on
/// one page of stack: see [`winch`].
extern "C" fn winch_thread(arg: *mut c_void) -> c_int {
    // SAFETY: affects this process only.
    unsafe { kern::os_set_pdeathsig() };
    // SAFETY: `arg` is winch_tramp's WinchData, in this process's copy of its memory.
    let data = unsafe { arg.cast::<WinchData>().read() };
    winch::serve(
        data.pty_fd,
        data.pipe_fd,
        || {
            // SAFETY: a plain system call.
            unsafe { kern::os_getpid() }
        },
        kern::info,
    )
}

/// Closes both ends of the socket pair (errors ignored, as in C).
fn close_pair(fds: [c_int; 2]) {
    for fd in fds {
        // SAFETY: our own descriptors, closed once.
        unsafe { libc::close(fd) };
    }
}

/// Starts the `SIGWINCH` thread on terminal `fd` (`winch_tramp`): its pid,
/// with the kernel's end of the socket pair (non-blocking) in `*fd_out`
/// and its stack in `*stack_out`; or a negative errno (logged).
fn winch_tramp(fd: c_int, fd_out: &mut c_int, stack_out: &mut c_ulong) -> c_int {
    let mut fds: [c_int; 2] = [-1; 2];
    // SAFETY: room for two descriptors.
    let err = unsafe { kern::os_pipe(fds.as_mut_ptr(), 1, 1) };
    if err < 0 {
        klog!(Level::Err, "winch_tramp : os_pipe failed, err = {}", -err);
        return err;
    }
    let mut data = WinchData {
        pty_fd: fd,
        pipe_fd: fds[1],
    };
    // CLONE_FILES so that the thread holds no descriptor open that UML
    // closes later (a held /dev/net/tun could not be reused); without
    // CLONE_VM, the thread has its own copy of `data`.
    // SAFETY: winch_thread only makes plain library calls; `data` is read at the thread's start, in its copy.
    let pid = unsafe {
        kern::run_helper_thread(
            winch_thread,
            (&raw mut data).cast(),
            libc::CLONE_FILES as c_uint,
            stack_out,
        )
    };
    if pid < 0 {
        klog!(Level::Err, "fork of winch_thread failed - errno = {}", -pid);
        close_pair(fds);
        return pid;
    }
    let give_up = |stack: c_ulong| {
        close_pair(fds);
        // SAFETY: our helper thread, no longer wanted; its stack is freed once it is reaped.
        unsafe {
            kern::os_kill_process(pid, 1);
            kern::free_helper_stack(stack);
        }
    };
    *fd_out = fds[0];
    let mut c = 0u8;
    if winch::recv_byte(fds[0], &mut c) != 1 {
        let e = nix::errno::Errno::last() as c_int;
        klog!(
            Level::Err,
            "winch_tramp : failed to read synchronization byte"
        );
        klog!(Level::Err, "read failed, err = {e}");
        klog!(Level::Err, "fd {fd} will not support SIGWINCH");
        give_up(*stack_out);
        return -libc::EINVAL;
    }
    // SAFETY: our descriptor.
    let err = unsafe { kern::os_set_fd_block(fds[0], 0) };
    if err != 0 {
        klog!(
            Level::Err,
            "winch_tramp: failed to set thread_fd non-blocking."
        );
        give_up(*stack_out);
        return err;
    }
    pid
}

/// `void register_winch(int fd, struct tty_port *port)`: `SIGWINCH`
/// support for the line on terminal `fd`. Nothing if `fd` is no terminal;
/// if UML's process group is the terminal's foreground group, the host's
/// `SIGWINCH` reaches UML itself and the kernel half is told so (`fd` -1);
/// if `fd` is not UML's controlling terminal, a helper thread takes it
/// over and the kernel half watches the thread's socket. Failures are
/// logged; the line then has no `SIGWINCH` support.
///
/// # Safety
///
/// `port` is the line's port; it is only handed to the kernel half.
#[cfg_attr(feature = "os-um-drivers-chan_user", unsafe(no_mangle))]
pub unsafe extern "C" fn register_winch(fd: c_int, port: *mut TtyPort) {
    if !term::is_tty(fd) {
        return;
    }
    let pid = term::foreground_pgrp(fd);
    // SAFETY: compares process groups.
    if unsafe { kern::is_skas_winch(pid, fd, port.cast()) } != 0 {
        // SAFETY: the caller's port, for the kernel half.
        unsafe { kern::register_winch_irq(-1, fd, -1, port, 0) };
        return;
    }
    if pid != -1 {
        // Another process group's terminal: nothing to do, as in C.
        return;
    }
    let (mut thread_fd, mut stack) = (-1, 0);
    let thread = winch_tramp(fd, &mut thread_fd, &mut stack);
    if thread < 0 {
        return;
    }
    // SAFETY: the thread, its socket and stack go to the kernel half, which frees them on failure.
    unsafe { kern::register_winch_irq(thread_fd, fd, thread, port, stack) };
    if winch::send_byte(thread_fd, winch::SYNC) != 1 {
        klog!(
            Level::Err,
            "register_winch : failed to write synchronization byte, err = {}",
            nix::errno::Errno::last() as c_int
        );
    }
}

/// The C string at `p`, `None` if NULL.
///
/// # Safety
///
/// `p` is NULL or a C string live for `'a`.
pub(crate) unsafe fn cstr_arg<'a>(p: *const c_char) -> Option<&'a CStr> {
    // SAFETY: non-NULL, so a C string by our contract.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) })
}

/// What the channel files' unit tests share: a channel made and used as
/// `chan_kern.c` does.
#[cfg(all(test, not(feature = "kernel")))]
pub(crate) mod test_support {
    use core::ffi::{CStr, c_char, c_int, c_void};
    use std::ffi::CString;

    use super::{ChanOps, ChanOpts};

    /// Serialises the tests that start helper programs: their children
    /// inherit the descriptors UML does not make close-on-exec (as in C),
    /// so one test's connection could outlive its close in another's
    /// helper.
    pub fn helpers_lock() -> std::sync::MutexGuard<'static, ()> {
        static HELPERS: std::sync::Mutex<()> = std::sync::Mutex::new(());
        HELPERS.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes an executable script at `path` from another process: a
    /// descriptor open for writing on it in this process would be copied
    /// into the children other tests fork meanwhile, and exec'ing the
    /// script would fail with `ETXTBSY` while they hold it.
    pub fn write_script(path: &std::path::Path, text: &str) {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg("printf '%s' \"$1\" > \"$2\" && chmod 755 \"$2\"")
            .arg("sh")
            .arg(text)
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    /// The options of a console (`stdio_console.c`), `raw` as given.
    pub fn opts(raw: c_int) -> ChanOpts {
        ChanOpts {
            announce: None,
            xterm_title: c"Virtual Console #%d".as_ptr().cast_mut(),
            raw,
        }
    }

    /// A channel of type `ops` made from a description, freed with the
    /// type's `free` on drop.
    pub struct Chan {
        pub ops: &'static ChanOps,
        pub data: *mut c_void,
        /// The description after the type's name; `init` may keep
        /// pointers into it (`tty.c` does).
        _desc: CString,
    }

    impl Chan {
        /// `ops->init(desc, device, opts)`, as `parse_chan` calls it with
        /// what follows the type's name; `None` if it returned NULL.
        pub fn init(
            ops: &'static ChanOps,
            desc: &str,
            device: c_int,
            opts: &ChanOpts,
        ) -> Option<Chan> {
            let desc = CString::new(desc).unwrap();
            // SAFETY: a C string that lives as long as the channel, and valid options.
            let data = unsafe { ops.init.unwrap()(desc.as_ptr().cast_mut(), device, opts) };
            (!data.is_null()).then_some(Chan {
                ops,
                data,
                _desc: desc,
            })
        }

        /// `ops->open(input, output, 1, data, &dev)`: the descriptor and
        /// the name the channel reports, or the negative errno.
        pub fn open(&self, input: c_int, output: c_int) -> Result<(c_int, Option<String>), c_int> {
            let mut dev: *mut c_char = c"untouched".as_ptr().cast_mut();
            // SAFETY: the channel's data and a writable name pointer.
            let fd = unsafe { self.ops.open.unwrap()(input, output, 1, self.data, &mut dev) };
            if fd < 0 {
                return Err(fd);
            }
            // SAFETY: NULL or a C string in the channel's data.
            let dev = unsafe { super::cstr_arg(dev) }.map(|d| d.to_str().unwrap().to_owned());
            Ok((fd, dev))
        }

        /// `ops->close(fd, data)`.
        pub fn close(&self, fd: c_int) {
            // SAFETY: the channel's data.
            unsafe { self.ops.close.unwrap()(fd, self.data) };
        }
    }

    impl Drop for Chan {
        fn drop(&mut self) {
            // SAFETY: the data `init` made, not used after.
            unsafe { self.ops.free.unwrap()(self.data) };
        }
    }

    /// What `mconsole config conN` shows for a channel that reported
    /// `dev` (`one_chan_config_string` in `chan_kern.c`).
    pub fn config_string(ops: &ChanOps, dev: Option<&str>) -> String {
        // SAFETY: the tables' types are static C strings.
        let kind = unsafe { CStr::from_ptr(ops.kind) }.to_str().unwrap();
        match dev {
            None => kind.to_owned(),
            Some(dev) => format!("{kind}:{dev}"),
        }
    }
}

// Unit tests run on the host, with the stand-ins for the kernel half.
#[cfg(all(test, not(feature = "kernel")))]
mod tests {
    use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
    use std::sync::{Mutex, MutexGuard};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::host::chan::pty::test_support::Pair;
    use crate::host::file;

    // The prototypes of chan_user.h: these only compile if the signatures
    // match the table's.
    const CLOSE: CloseFn = generic_close;
    const READ: ReadFn = generic_read;
    const WRITE: WriteFn = generic_write;
    const CONSOLE_WRITE: ConsoleWriteFn = generic_console_write;
    const WINDOW_SIZE: WindowSizeFn = generic_window_size;
    const FREE: FreeFn = generic_free;
    type RegisterWinch = unsafe extern "C" fn(c_int, *mut TtyPort);
    const REGISTER_WINCH: RegisterWinch = register_winch;

    /// Serialises the tests that use the `register_winch_irq` record.
    static WINCH: Mutex<()> = Mutex::new(());

    fn winch_lock() -> MutexGuard<'static, ()> {
        WINCH.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_irqs() -> Vec<kern::WinchIrq> {
        core::mem::take(&mut *kern::WINCH_IRQS.lock().unwrap())
    }

    fn sockets() -> [OwnedFd; 2] {
        crate::host::socket::pipe(true, true).unwrap()
    }

    /// Waits up to 10 s for `fd` to be readable.
    fn wait_readable(fd: c_int) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        unsafe { libc::poll(&mut p, 1, 10_000) == 1 }
    }

    #[test]
    fn read_and_write_keep_the_c_conventions() {
        let [a, b] = sockets();
        file::set_fd_block(a.as_raw_fd(), false).unwrap();
        let mut c = 0u8;
        // SAFETY: a writable byte.
        unsafe {
            assert_eq!(READ(a.as_raw_fd(), &mut c, core::ptr::null_mut()), 0);
            assert_eq!(
                WRITE(b.as_raw_fd(), b"ok".as_ptr(), 2, core::ptr::null_mut()),
                2
            );
            assert_eq!(READ(a.as_raw_fd(), &mut c, core::ptr::null_mut()), 1);
            assert_eq!(c, b'o');
            assert_eq!(
                READ(a.as_raw_fd(), core::ptr::null_mut(), core::ptr::null_mut()),
                -libc::EFAULT
            );
            assert_eq!(
                WRITE(b.as_raw_fd(), core::ptr::null(), 0, core::ptr::null_mut()),
                -libc::EIO,
                "nothing written"
            );
            assert_eq!(
                WRITE(b.as_raw_fd(), core::ptr::null(), 3, core::ptr::null_mut()),
                -libc::EFAULT
            );
            assert_eq!(READ(-1, &mut c, core::ptr::null_mut()), -libc::EBADF);
        }
        let b = b.into_raw_fd();
        // SAFETY: the descriptor is ours and given up.
        unsafe { CLOSE(b, core::ptr::null_mut()) };
        // SAFETY: as above.
        unsafe {
            assert_eq!(READ(a.as_raw_fd(), &mut c, core::ptr::null_mut()), 1);
            assert_eq!(c, b'k');
            assert_eq!(
                READ(a.as_raw_fd(), &mut c, core::ptr::null_mut()),
                -libc::EIO,
                "end of file once the other end is closed"
            );
        }
    }

    #[test]
    fn the_window_size_is_read_and_compared() {
        let pair = Pair::open();
        term::set_window_size(pair.master.as_raw_fd(), 24, 80).unwrap();
        let (mut rows, mut cols) = (0, 0);
        let slave = pair.slave.as_raw_fd();
        // SAFETY: valid pointers.
        unsafe {
            assert_eq!(
                WINDOW_SIZE(slave, core::ptr::null_mut(), &mut rows, &mut cols),
                1
            );
            assert_eq!((rows, cols), (24, 80));
            assert_eq!(
                WINDOW_SIZE(slave, core::ptr::null_mut(), &mut rows, &mut cols),
                0
            );
        }
        term::set_window_size(pair.master.as_raw_fd(), 40, 80).unwrap();
        // SAFETY: as above.
        unsafe {
            assert_eq!(
                WINDOW_SIZE(slave, core::ptr::null_mut(), &mut rows, &mut cols),
                1
            );
            assert_eq!((rows, cols), (40, 80));
            assert_eq!(
                WINDOW_SIZE(
                    slave,
                    core::ptr::null_mut(),
                    core::ptr::null_mut(),
                    &mut cols
                ),
                -libc::EFAULT
            );
            let [a, _b] = sockets();
            assert_eq!(
                WINDOW_SIZE(a.as_raw_fd(), core::ptr::null_mut(), &mut rows, &mut cols),
                -libc::ENOTTY
            );
        }
        assert_eq!((rows, cols), (40, 80), "left alone on failure");
    }

    #[test]
    fn console_writes_start_lines_in_the_first_column() {
        let pair = Pair::open();
        let slave = pair.slave.as_raw_fd();
        let raw_mode = term::made_raw(&term::get_attr(slave).unwrap());
        term::set_attr(slave, libc::TCSANOW, &raw_mode).unwrap();
        let msg = b"boot\nok";
        // SAFETY: a buffer of the length given.
        let n = unsafe { CONSOLE_WRITE(slave, msg.as_ptr().cast(), msg.len() as c_int) };
        assert_eq!(n, 7);
        let mut buf = [0u8; 32];
        let got = file::read(pair.master.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..got], b"boot\r\nok");
        assert!(term::same(&term::get_attr(slave).unwrap(), &raw_mode));
        // SAFETY: as above.
        unsafe {
            assert_eq!(
                WRITE(slave, msg.as_ptr(), msg.len(), core::ptr::null_mut()),
                7
            );
        }
        let got = file::read(pair.master.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..got], b"boot\nok", "generic_write leaves it raw");
        // SAFETY: a negative length is refused before anything is read.
        unsafe {
            assert_eq!(CONSOLE_WRITE(slave, msg.as_ptr().cast(), -1), -libc::EINVAL);
            assert_eq!(CONSOLE_WRITE(-1, msg.as_ptr().cast(), 1), -libc::EBADF);
        }
        // A socket is written as it is.
        let [a, b] = sockets();
        // SAFETY: as above.
        let n = unsafe { CONSOLE_WRITE(b.as_raw_fd(), c"x\n".as_ptr(), 2) };
        assert_eq!(n, 2);
        assert_eq!(file::read(a.as_raw_fd(), &mut buf), Ok(2));
        assert_eq!(&buf[..2], b"x\n");
    }

    #[test]
    fn channel_data_is_freed_by_generic_free() {
        let p = chan_alloc([7u64; 4]);
        assert!(!p.is_null());
        // SAFETY: just allocated.
        assert_eq!(unsafe { *p }, [7; 4]);
        // SAFETY: from chan_alloc, not used after.
        unsafe { FREE(p.cast()) };
        // SAFETY: NULL is allowed, as for kfree.
        unsafe { FREE(core::ptr::null_mut()) };
    }

    /// The pid whose process group is the foreground one of the terminal
    /// whose master is `master` (TIOCGPGRP on a master needs no control).
    fn foreground_of(master: c_int) -> c_int {
        let mut pgrp: libc::pid_t = 0;
        // SAFETY: TIOCGPGRP writes one pid_t.
        let rc = unsafe { libc::ioctl(master, libc::TIOCGPGRP, &mut pgrp) };
        if rc < 0 { -1 } else { pgrp }
    }

    /// A started winch thread, killed on drop.
    struct Thread(kern::WinchIrq);

    impl Drop for Thread {
        fn drop(&mut self) {
            stand_in::kill_process(self.0.pid, 1);
            // SAFETY: the thread is gone; the descriptors are ours.
            unsafe {
                stand_in::free_helper_stack(self.0.stack);
                libc::close(self.0.fd);
            }
        }
    }

    fn start_winch(fd: c_int, port: usize) -> Option<Thread> {
        // SAFETY: the port is only recorded.
        unsafe { REGISTER_WINCH(fd, port as *mut TtyPort) };
        let irqs = take_irqs();
        assert!(irqs.len() <= 1, "{irqs:?}");
        irqs.first().map(|&irq| Thread(irq))
    }

    #[test]
    fn the_winch_thread_reports_window_changes() {
        let _g = winch_lock();
        take_irqs();
        let pair = Pair::open();
        let slave = pair.slave.as_raw_fd();
        let master = pair.master.as_raw_fd();
        let thread = start_winch(slave, 0x1234).expect("a thread was registered");
        let irq = thread.0;
        assert_eq!(irq.tty_fd, slave);
        assert_eq!(irq.port, 0x1234);
        assert!(irq.pid > 0 && irq.fd >= 0 && irq.stack != 0, "{irq:?}");
        // SAFETY: F_GETFL takes no argument.
        let fl = unsafe { libc::fcntl(irq.fd, libc::F_GETFL) };
        assert_ne!(fl & libc::O_NONBLOCK, 0, "the kernel's end is non-blocking");

        // The thread makes the terminal its own, in the foreground.
        let deadline = Instant::now() + Duration::from_secs(10);
        while foreground_of(master) != irq.pid {
            assert!(
                Instant::now() < deadline,
                "the thread never took the terminal"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut c = 0u8;
        assert_eq!(winch::recv_byte(irq.fd, &mut c), -1, "nothing yet");

        for (rows, cols) in [(30, 100), (31, 100)] {
            term::set_window_size(master, rows, cols).unwrap();
            assert!(wait_readable(irq.fd), "no byte for the SIGWINCH");
            let mut c = 0u8;
            // SAFETY: a writable byte.
            assert_eq!(unsafe { READ(irq.fd, &mut c, core::ptr::null_mut()) }, 1);
            assert_eq!(c, winch::SYNC);
            let (mut r, mut k) = (0, 0);
            // SAFETY: valid pointers.
            let changed = unsafe { WINDOW_SIZE(slave, core::ptr::null_mut(), &mut r, &mut k) };
            assert_eq!((changed, r, k), (1, rows, cols));
        }
        drop(thread);
    }

    #[test]
    fn a_thread_that_cannot_take_the_terminal_says_so() {
        let _g = winch_lock();
        take_irqs();
        let pair = Pair::open();
        let slave = pair.slave.as_raw_fd();
        let first = start_winch(slave, 1).expect("first thread");
        let deadline = Instant::now() + Duration::from_secs(10);
        while foreground_of(pair.master.as_raw_fd()) != first.0.pid {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
        }
        // The terminal already controls the first thread's session: the
        // second thread's TIOCSCTTY fails, and it reports FAILED.
        let second = start_winch(slave, 2).expect("second thread");
        assert!(wait_readable(second.0.fd));
        let mut c = 0u8;
        // SAFETY: a writable byte.
        let n = unsafe { READ(second.0.fd, &mut c, core::ptr::null_mut()) };
        assert_eq!(n, 1);
        assert_eq!(c, winch::FAILED);
        drop(second);
        drop(first);
    }

    #[test]
    fn no_terminal_no_thread() {
        let _g = winch_lock();
        take_irqs();
        let [a, _b] = sockets();
        assert!(start_winch(a.as_raw_fd(), 1).is_none());
        assert!(start_winch(-1, 1).is_none());
    }

    #[test]
    fn umls_own_terminal_needs_no_thread() {
        let _g = winch_lock();
        take_irqs();
        let pair = Pair::open();
        let slave = pair.slave.as_raw_fd();
        // In a child that makes the terminal its controlling one, as a
        // shell does for UML in the foreground.
        let status = crate::host::util::test_support::run_forked(|| {
            // SAFETY: plain system calls in the forked child.
            unsafe {
                if libc::setsid() < 0 || libc::ioctl(slave, libc::TIOCSCTTY, 0) < 0 {
                    libc::_exit(2);
                }
                REGISTER_WINCH(slave, 0x77 as *mut TtyPort);
            }
            let irqs = kern::WINCH_IRQS
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default();
            let want = kern::WinchIrq {
                fd: -1,
                tty_fd: slave,
                pid: -1,
                port: 0x77,
                stack: 0,
            };
            // SAFETY: leaving the child.
            unsafe { libc::_exit(if irqs == [want] { 0 } else { 1 }) };
        });
        assert!(libc::WIFEXITED(status), "{status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0);
        assert!(take_irqs().is_empty(), "only the child registered");
    }
}
