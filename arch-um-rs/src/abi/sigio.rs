// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/sigio.c: the write-poll helper thread
//! for descriptors that do not raise SIGIO, and the boot check of host ptys
//! (see [`crate::host::sigio`]). Kernel builds only: it runs under the
//! kernel's sigio lock and registers an IRQ.

use core::ffi::{c_int, c_ulong, c_void};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use crate::host::sigio::{self, Sets, ThreadShared};
use crate::host::util::HostCell;
use crate::kernel::Level;
use crate::klog;

mod k {
    use super::*;
    pub use crate::kernel::um::free_stack;

    unsafe extern "C" {
        pub fn sigio_lock();
        pub fn sigio_unlock();
        pub fn write_sigio_irq(fd: c_int) -> c_int;
        pub fn run_helper_thread(
            proc_: extern "C" fn(*mut c_void) -> c_int,
            arg: *mut c_void,
            flags: core::ffi::c_uint,
            stack_out: *mut c_ulong,
        ) -> c_int;
        pub fn um_set_signals_trace(enable: c_int) -> c_int;
    }
}

/// Registry and armed set; only touched under the kernel's sigio lock.
static SETS: HostCell<Sets> = HostCell::new(Sets::new());
/// What the thread sees.
static THREAD: ThreadShared = ThreadShared::new();
/// The thread's pid, -1 when it is not running.
static THREAD_PID: AtomicI32 = AtomicI32::new(-1);
static THREAD_STACK: AtomicUsize = AtomicUsize::new(0);
/// Our end of the control socket, and the read end of the notification
/// pipe (the kernel's IRQ is on it).
static KERNEL_CONTROL_FD: AtomicI32 = AtomicI32::new(-1);
static NOTIFY_READ_FD: AtomicI32 = AtomicI32::new(-1);
/// Host ptys raise SIGIO on output (checked at boot): they need no thread.
static PTY_OUTPUT_SIGIO: AtomicBool = AtomicBool::new(false);

/// Holds the kernel's sigio lock (a mutex) while alive.
struct SigioLock;

impl SigioLock {
    fn take() -> SigioLock {
        // SAFETY: a kernel mutex; released by Drop on the same thread.
        unsafe { k::sigio_lock() };
        SigioLock
    }
}

impl Drop for SigioLock {
    fn drop(&mut self) {
        // SAFETY: we hold the lock (taken in `take`).
        unsafe { k::sigio_unlock() };
    }
}

/// The thread: watches its working set forever. It was cloned without a
/// TLS area of its own; thread_round makes raw system calls only.
extern "C" fn write_sigio_thread(_: *mut c_void) -> c_int {
    crate::abi::process::os_set_pdeathsig();
    crate::host::util::fix_helper_signals();
    loop {
        // The kernel side hands over under the sigio lock.
        // SAFETY: this thread is the only user of THREAD.working.
        unsafe { sigio::thread_round(&THREAD) };
    }
}

fn close(fd: c_int) {
    if fd >= 0 {
        // SAFETY: closes a descriptor this module owns.
        unsafe { libc::close(fd) };
    }
}

fn stop_thread() {
    let pid = THREAD_PID.swap(-1, Ordering::Relaxed);
    if pid != -1 {
        crate::abi::process::os_kill_process(pid, 1);
        // SAFETY: the stack run_helper_thread gave us, and its thread is dead and reaped.
        unsafe { k::free_stack(THREAD_STACK.swap(0, Ordering::Relaxed) as c_ulong, 0) };
    }
}

/// Hands `next` to the thread and waits for it to take it over; on failure
/// stops the thread for good, as the C layer does. Called under the lock.
fn update_thread(next: &sigio::PollSet) -> bool {
    // SAFETY: kernel function; returns the previous interrupt state.
    let flags = unsafe { k::um_set_signals_trace(0) };
    let control = KERNEL_CONTROL_FD.load(Ordering::Relaxed);
    // SAFETY: we hold the sigio lock, so hand-overs are serialised; the thread runs.
    let res = unsafe { sigio::hand_over(&THREAD, control, next) };
    if let Err(e) = res {
        klog!(
            Level::Err,
            "update_thread : hand-over to the SIGIO thread failed, err = {}",
            e.into_raw()
        );
        stop_thread();
        for fd in [
            &KERNEL_CONTROL_FD,
            &THREAD.control_fd,
            &NOTIFY_READ_FD,
            &THREAD.notify_fd,
        ] {
            close(fd.swap(-1, Ordering::Relaxed));
        }
    }
    let thread_error = THREAD.last_error.swap(0, Ordering::Relaxed);
    if thread_error != 0 {
        klog!(
            Level::Err,
            "write_sigio_thread : error {thread_error} while polling"
        );
    }
    // SAFETY: restores the state saved above.
    unsafe { k::um_set_signals_trace(flags) };
    res.is_ok()
}

/// Adds `fd` (declared broken before) to what the thread watches; the
/// caller holds the sigio lock. 0, or -ENOSPC (never declared), -ENOMEM.
#[cfg_attr(feature = "os-sigio", unsafe(no_mangle))]
pub extern "C" fn __add_sigio_fd(fd: c_int) -> c_int {
    // SAFETY: under the sigio lock (the caller's), on the kernel thread.
    unsafe {
        SETS.with(|sets| match sets.with_armed(fd) {
            Err(e) => e.neg_errno(),
            Ok(None) => 0,
            Ok(Some(next)) => {
                if update_thread(&next) {
                    sets.armed = next;
                }
                0
            }
        })
    }
}

/// [`__add_sigio_fd`] under the lock.
#[cfg_attr(feature = "os-sigio", unsafe(no_mangle))]
pub extern "C" fn add_sigio_fd(fd: c_int) -> c_int {
    let _lock = SigioLock::take();
    __add_sigio_fd(fd)
}

/// Stops watching `fd`; the caller holds the sigio lock. 0, -EIO (no
/// thread), -ENOENT (not watched).
#[cfg_attr(feature = "os-sigio", unsafe(no_mangle))]
pub extern "C" fn __ignore_sigio_fd(fd: c_int) -> c_int {
    if THREAD_PID.load(Ordering::Relaxed) == -1 {
        return -libc::EIO;
    }
    // SAFETY: under the sigio lock (the caller's), on the kernel thread.
    unsafe {
        SETS.with(|sets| match sets.without_armed(fd) {
            Err(e) => e.neg_errno(),
            Ok(next) => {
                if update_thread(&next) {
                    sets.armed = next;
                }
                0
            }
        })
    }
}

/// [`__ignore_sigio_fd`] under the lock.
#[cfg_attr(feature = "os-sigio", unsafe(no_mangle))]
pub extern "C" fn ignore_sigio_fd(fd: c_int) -> c_int {
    let _lock = SigioLock::take();
    __ignore_sigio_fd(fd)
}

/// Starts the thread once: two socket pairs, the IRQ on the notification
/// one, then the clone.
fn write_sigio_workaround() {
    if THREAD_PID.load(Ordering::Relaxed) != -1 {
        return;
    }
    let mut notify = [-1; 2];
    let mut control = [-1; 2];
    // SAFETY: two writable ints each.
    let err = unsafe { crate::abi::file::os_pipe(notify.as_mut_ptr(), 1, 1) };
    if err < 0 {
        klog!(
            Level::Err,
            "write_sigio_workaround - os_pipe 1 failed, err = {}",
            -err
        );
        return;
    }
    // SAFETY: as above.
    let err = unsafe { crate::abi::file::os_pipe(control.as_mut_ptr(), 1, 1) };
    if err < 0 {
        klog!(
            Level::Err,
            "write_sigio_workaround - os_pipe 2 failed, err = {}",
            -err
        );
        notify.into_iter().for_each(close);
        return;
    }
    let lock = SigioLock::take();
    let started = THREAD_PID.load(Ordering::Relaxed) == -1
        // SAFETY: a kernel function registering an IRQ on our descriptor.
        && unsafe { k::write_sigio_irq(notify[0]) } == 0
        && {
            KERNEL_CONTROL_FD.store(control[0], Ordering::Relaxed);
            THREAD.control_fd.store(control[1], Ordering::Relaxed);
            NOTIFY_READ_FD.store(notify[0], Ordering::Relaxed);
            THREAD.notify_fd.store(notify[1], Ordering::Relaxed);
            // SAFETY: under the lock; the thread does not exist yet.
            unsafe { SETS.with(|sets| sets.armed.clear()) };
            let mut stack: c_ulong = 0;
            // SAFETY: the thread body is TLS-free (raw system calls only); `stack` is writable.
            let pid = unsafe {
                k::run_helper_thread(
                    write_sigio_thread,
                    core::ptr::null_mut(),
                    (libc::CLONE_FILES | libc::CLONE_VM) as core::ffi::c_uint,
                    &mut stack,
                )
            };
            if pid < 0 {
                for fd in [
                    &KERNEL_CONTROL_FD,
                    &THREAD.control_fd,
                    &NOTIFY_READ_FD,
                    &THREAD.notify_fd,
                ] {
                    fd.store(-1, Ordering::Relaxed);
                }
            } else {
                THREAD_STACK.store(stack as usize, Ordering::Relaxed);
                THREAD_PID.store(pid, Ordering::Relaxed);
            }
            pid >= 0
        };
    drop(lock);
    if !started {
        control.into_iter().chain(notify).for_each(close);
    }
}

/// Declares that `fd` does not raise SIGIO: the thread may watch it.
#[cfg_attr(feature = "os-sigio", unsafe(no_mangle))]
pub extern "C" fn sigio_broken(fd: c_int) {
    write_sigio_workaround();
    let _lock = SigioLock::take();
    // SAFETY: under the sigio lock, on the kernel thread.
    if unsafe { SETS.with(|sets| sets.register(fd)) }.is_err() {
        klog!(
            Level::Err,
            "maybe_sigio_broken - failed to add pollfd for descriptor {fd}"
        );
    }
}

/// [`sigio_broken`] for ttys, unless host ptys were found to raise SIGIO.
#[cfg_attr(feature = "os-sigio", unsafe(no_mangle))]
pub extern "C" fn maybe_sigio_broken(fd: c_int) {
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(fd) } == 0 || PTY_OUTPUT_SIGIO.load(Ordering::Relaxed) {
        return;
    }
    sigio_broken(fd);
}

#[cfg_attr(not(feature = "os-sigio"), allow(dead_code))]
extern "C" fn sigio_cleanup() {
    stop_thread();
}
crate::uml_exitcall!("os-sigio", sigio_cleanup);

/// Boot check: whether host ptys raise SIGIO for output.
#[cfg_attr(feature = "os-sigio", unsafe(no_mangle))]
pub extern "C" fn os_check_bugs() {
    let may = |p: &core::ffi::CStr| crate::host::file::access(p, libc::R_OK).is_ok();
    if !may(c"/dev/ptmx") && !may(c"/dev/ptyp0") {
        crate::kernel::log(
            Level::Warning,
            "No pseudo-terminals available - skipping pty SIGIO check",
        );
        return;
    }
    crate::kernel::log_cont_start(
        Level::Info,
        "Checking that host ptys support output SIGIO...",
    );
    let res = sigio::pty_output_sigio(|| {
        let mut pty = Err(nix::errno::Errno::EIO);
        // openpty allocates: run it on the initial thread with kmalloc off.
        crate::kernel::on_initial_thread(&mut || pty = nix::pty::openpty(None, None));
        use std::os::fd::IntoRawFd;
        pty.map(|p| (p.master.into_raw_fd(), p.slave.into_raw_fd()))
    });
    match res {
        Ok(true) => {
            crate::kernel::log_cont("Yes");
            PTY_OUTPUT_SIGIO.store(true, Ordering::Relaxed);
        }
        Ok(false) => crate::kernel::log_cont("No, enabling workaround"),
        Err((step, e)) => crate::kernel::log_cont(
            crate::kernel::stack_format(format_args!(
                "check_one_sigio : {step} failed, errno = {}",
                e as c_int
            ))
            .as_str(),
        ),
    }
}
