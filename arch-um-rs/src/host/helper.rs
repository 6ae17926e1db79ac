// SPDX-License-Identifier: GPL-2.0
//! Helper programs and helper threads of the UML process.
//!
//! A helper program (port-helper, an xterm, a network setup script) is
//! started with `clone(CLONE_VM)` on a small stack the caller provides: the
//! child shares the kernel's memory and thread-local storage until it
//! execs, exactly like the C layer's. So the child side runs only raw
//! library calls, never anything that touches Rust thread-locals or
//! allocates. Whether the exec worked comes back through a close-on-exec
//! socket: end-of-file means the program is running, four bytes are the
//! child's negative errno.

use core::ffi::{c_char, c_int, c_void};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::wait::WaitStatus;

/// A callback a helper child runs before exec (`pre_exec(pre_data)`).
pub type PreExec = unsafe extern "C" fn(*mut c_void);

/// A helper thread's body, as `clone(2)` calls it.
pub type ThreadFn = extern "C" fn(*mut c_void) -> c_int;

/// Where starting a helper program failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelperError {
    /// The status socket pair could not be made.
    Socketpair(Errno),
    /// `FD_CLOEXEC` could not be set on the child's end.
    Cloexec(Errno),
    /// `clone(2)` failed.
    Clone(Errno),
    /// Reading the child's status failed.
    Read(Errno),
    /// The child ran but its exec failed with this errno.
    Exec(Errno),
}

impl HelperError {
    /// The negative errno the C `run_helper` returns for this failure.
    pub fn neg_errno(self) -> c_int {
        let e = match self {
            HelperError::Socketpair(e)
            | HelperError::Cloexec(e)
            | HelperError::Clone(e)
            | HelperError::Read(e)
            | HelperError::Exec(e) => e,
        };
        -(e as c_int)
    }
}

/// What the helper child needs, on the parent's stack (shared memory).
#[repr(C)]
struct ChildData {
    pre_exec: Option<PreExec>,
    pre_data: *mut c_void,
    argv: *const *mut c_char,
    status_fd: c_int,
    path_buf: *mut c_char,
}

/// Runs in the cloned child, on the helper stack, sharing the parent's
/// memory and TLS: only raw library calls.
extern "C" fn helper_child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's ChildData, alive until the parent has read our status.
    let data = unsafe { &*arg.cast::<ChildData>() };
    if let Some(pre_exec) = data.pre_exec {
        // SAFETY: the caller's callback with the caller's argument, as in the C layer.
        unsafe { pre_exec(data.pre_data) };
    }
    let (buf, argv) = (data.path_buf, data.argv);
    // SAFETY: argv is NULL-terminated and argv[0] a C string (run_helper's contract); the buffer is PATH_MAX bytes.
    let err: c_int = unsafe { crate::abi::execvp::execvp_noalloc(buf, *argv, argv) };
    let bytes = err.to_ne_bytes();
    loop {
        // SAFETY: writes four bytes from a live array to our end of the socket.
        let n = unsafe { libc::write(data.status_fd, bytes.as_ptr().cast(), bytes.len()) };
        // SAFETY: this thread's errno location (the shared one, as in the C layer).
        if n >= 0 || unsafe { *libc::__errno_location() } != libc::EINTR {
            break;
        }
    }
    0
}

fn clone_on(
    stack_top: *mut u8,
    f: ThreadFn,
    flags: c_int,
    arg: *mut c_void,
) -> Result<c_int, Errno> {
    // SAFETY: the caller gave a stack top with room below it for the child; `f` and `arg` are its body.
    let pid = unsafe { libc::clone(f, stack_top.cast(), flags, arg) };
    if pid < 0 { Err(Errno::last()) } else { Ok(pid) }
}

fn read_status(fd: &OwnedFd) -> Result<Option<c_int>, Errno> {
    let mut buf = [0u8; 4];
    // Interrupted reads are not retried, as in the C layer: the caller sees the error.
    let n = nix::unistd::read(fd.as_raw_fd(), &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(c_int::from_ne_bytes(buf)))
}

/// Starts a helper program: a `clone(CLONE_VM)` child on the stack below
/// `stack_top` runs `pre_exec`, then `execvp_noalloc(path_buf, argv[0],
/// argv)`. Returns the child's pid once it has exec'd; when the exec fails
/// the child is reaped and its error returned.
///
/// # Safety
///
/// `stack_top` is the top of a writable stack the child may use until it
/// execs or exits; `argv` is a NULL-terminated array of C strings with a
/// non-NULL `argv[0]`; `path_buf` is NULL or `PATH_MAX` writable bytes;
/// `pre_exec` is safe to call in a child sharing this process's memory.
pub unsafe fn run_helper(
    stack_top: *mut u8,
    pre_exec: Option<PreExec>,
    pre_data: *mut c_void,
    argv: *const *mut c_char,
    path_buf: *mut c_char,
) -> Result<c_int, HelperError> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::empty(),
    )
    .map_err(HelperError::Socketpair)?;
    crate::host::file::set_cloexec(theirs.as_raw_fd()).map_err(HelperError::Cloexec)?;
    let data = ChildData {
        pre_exec,
        pre_data,
        argv,
        status_fd: theirs.as_raw_fd(),
        path_buf,
    };
    let pid = clone_on(
        stack_top,
        helper_child,
        libc::CLONE_VM,
        (&raw const data).cast_mut().cast(),
    )
    .map_err(HelperError::Clone)?;
    // Our copy of the child's end must go, or EOF never comes.
    drop(theirs);
    match read_status(&ours) {
        Ok(None) => Ok(pid),
        other => {
            crate::host::ptrace::reap(pid);
            match other {
                Ok(Some(err)) => Err(HelperError::Exec(Errno::from_raw(-err))),
                Err(e) => Err(HelperError::Read(e)),
                Ok(None) => unreachable!(),
            }
        }
    }
}

/// Starts a helper thread: `clone(f, stack_top, flags, arg)`; its pid.
///
/// # Safety
///
/// `stack_top` is the top of a stack that stays valid for the thread's life;
/// `f(arg)` is safe to run with the given clone `flags` (with `CLONE_VM`,
/// without a TLS area of its own: no Rust thread-locals, no allocation).
pub unsafe fn start_helper_thread(
    stack_top: *mut u8,
    f: ThreadFn,
    arg: *mut c_void,
    flags: c_int,
) -> Result<c_int, Errno> {
    clone_on(stack_top, f, flags, arg)
}

/// Waits for helper `pid` (any kind of child, `__WALL`), retrying on EINTR.
pub fn wait_helper(pid: c_int) -> Result<WaitStatus, Errno> {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child into a local status word.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if rc >= 0 {
            return WaitStatus::from_raw(nix::unistd::Pid::from_raw(rc), status);
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(e);
        }
    }
}

/// The raw wait status behind a [`WaitStatus`], for messages that print it
/// as the C layer does (`0x%x`).
pub fn raw_status(ws: &WaitStatus) -> c_int {
    match *ws {
        WaitStatus::Exited(_, code) => (code & 0xff) << 8,
        WaitStatus::Signaled(_, sig, core) => sig as c_int | if core { 0x80 } else { 0 },
        WaitStatus::Stopped(_, sig) => ((sig as c_int) << 8) | 0x7f,
        _ => 0,
    }
}

/// Whether a helper ended well: exited with status 0.
pub fn exited_ok(ws: &WaitStatus) -> bool {
    matches!(ws, WaitStatus::Exited(_, 0))
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A helper stack for tests of clone children (here and in `host::tap`).

    /// A helper stack: an anonymous mapping, filled with a pattern so that the
    /// test can tell how much of it the child used.
    pub struct Stack {
        base: *mut u8,
        len: usize,
    }

    const FILL: u8 = 0xa5;

    impl Stack {
        pub fn new(len: usize) -> Stack {
            // SAFETY: a fresh private anonymous mapping.
            let p = unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            // SAFETY: the mapping is `len` writable bytes.
            unsafe { core::ptr::write_bytes(p.cast::<u8>(), FILL, len) };
            Stack {
                base: p.cast(),
                len,
            }
        }
        pub fn top(&self) -> *mut u8 {
            self.base.wrapping_add(self.len)
        }
        /// Bytes below the top the child wrote to (the high-water mark).
        pub fn used(&self) -> usize {
            // SAFETY: the mapping is `len` readable bytes and the child is gone.
            let bytes = unsafe { core::slice::from_raw_parts(self.base, self.len) };
            self.len - bytes.iter().position(|&b| b != FILL).unwrap_or(self.len)
        }
    }

    impl Drop for Stack {
        fn drop(&mut self) {
            // SAFETY: unmaps exactly our mapping.
            unsafe { libc::munmap(self.base.cast(), self.len) };
        }
    }
}

#[cfg(test)]
mod tests;
