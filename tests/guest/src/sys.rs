// SPDX-License-Identifier: GPL-2.0
//! Small wrappers over the host primitives the cases and benchmarks use:
//! fork and wait, execve argument vectors, the monotonic clock, pipes and
//! page-aligned anonymous memory.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Converts a `-1` return into the current `errno`.
pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Nanoseconds of `CLOCK_MONOTONIC` (clock_gettime(2)). In a UML guest this
/// is the guest's clock.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// How a child ended, from waitpid(2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

fn decode(status: libc::c_int) -> Option<Exit> {
    if libc::WIFEXITED(status) {
        Some(Exit::Code(libc::WEXITSTATUS(status)))
    } else if libc::WIFSIGNALED(status) {
        Some(Exit::Signal(libc::WTERMSIG(status)))
    } else {
        None
    }
}

/// Forks; the child runs `child` and exits with the code it returns
/// (101 if it panics). The child never returns into the caller.
///
/// The child must not rely on other threads of the parent (there are none in
/// the child) and should keep to simple work; all cases and benchmarks call
/// this from a single-threaded process.
pub fn fork_child<F: FnOnce() -> i32>(child: F) -> io::Result<libc::pid_t> {
    // SAFETY: fork has no memory preconditions; the child runs `child` then leaves by _exit.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
            // SAFETY: _exit ends the child without the parent's atexit handlers or stdio flushes.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(pid),
    }
}

/// waitpid(2) on `pid`, retried on EINTR, blocking.
pub fn wait(pid: libc::pid_t) -> io::Result<Exit> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if let Some(x) = decode(status) {
            return Ok(x);
        }
    }
}

/// waitpid(2) for any child; returns the pid and how it ended.
pub fn wait_any() -> io::Result<(libc::pid_t, Exit)> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if let Some(x) = decode(status) {
            return Ok((r, x));
        }
    }
}

/// Waits for `pid` at most `limit`; on timeout the child is killed with
/// SIGKILL, reaped, and an error returned, so that a hung child never hangs
/// the suite.
pub fn wait_timeout(pid: libc::pid_t, limit: Duration) -> io::Result<Exit> {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == pid {
            if let Some(x) = decode(status) {
                return Ok(x);
            }
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = wait(pid);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("child {pid} did not finish within {limit:?}; killed"),
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Children that are killed (SIGKILL) and reaped when this value is dropped,
/// unless they were reaped before and taken off the list with [`Reaper::done`].
/// An early return from a case never leaves children behind.
#[derive(Default)]
pub struct Reaper {
    pids: Vec<libc::pid_t>,
}

impl Reaper {
    pub fn new() -> Reaper {
        Reaper::default()
    }

    pub fn add(&mut self, pid: libc::pid_t) {
        self.pids.push(pid);
    }

    /// `pid` has been reaped by the caller.
    pub fn done(&mut self, pid: libc::pid_t) {
        self.pids.retain(|&p| p != pid);
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for &pid in &self.pids {
            // SAFETY: kill(2) on a child of ours that has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = wait(pid);
        }
    }
}

/// A NULL-terminated argv or envp built before fork(), so that the child only
/// has to call execve(2).
pub struct CVec {
    _strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl CVec {
    pub fn new<I, S>(items: I) -> io::Result<CVec>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let strings = items
            .into_iter()
            .map(|s| CString::new(s.as_ref().as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Ok(CVec {
            _strings: strings,
            ptrs,
        })
    }

    pub fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }
}

/// A prepared execve(2): path, argv and envp, all allocated up front.
pub struct Exec {
    path: CString,
    argv: CVec,
    envp: CVec,
}

impl Exec {
    pub fn new(path: &Path, argv: &[&str], env: &[&str]) -> io::Result<Exec> {
        Ok(Exec {
            path: CString::new(path.as_os_str().as_bytes())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            argv: CVec::new(argv)?,
            envp: CVec::new(env)?,
        })
    }

    /// Calls execve(2); returns only on failure, with the errno.
    pub fn exec(&self) -> i32 {
        // SAFETY: path, argv, envp are NUL-terminated strings in NULL-terminated arrays owned by `self`.
        unsafe { libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// fork + execve; the child exits with 127 if execve fails.
    pub fn spawn(&self) -> io::Result<libc::pid_t> {
        fork_child(|| {
            self.exec();
            127
        })
    }
}

/// The path of this program, for exec'ing itself: /proc/self/exe if /proc is
/// mounted, else the installed location, else argv[0].
pub fn self_exe() -> PathBuf {
    if let Ok(p) = std::env::current_exe() {
        if p.exists() {
            return p;
        }
    }
    let installed = PathBuf::from("/usr/bin/uml-guest");
    if installed.exists() {
        return installed;
    }
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .unwrap_or(installed)
}

/// pipe2(2) with O_CLOEXEC; returns (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Runs a byte-count system call until it is not interrupted by a signal.
fn retry_eintr(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let r = call();
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// read(2) that retries on EINTR.
pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    retry_eintr(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// write(2) that retries on EINTR (may write less than `buf.len()`).
pub fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
    retry_eintr(|| unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

/// Writes all of `buf`.
pub fn write_all_fd(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = write_fd(fd, buf)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// Reads until `buf` is full or end of file; returns the bytes read.
pub fn read_full_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = read_fd(fd, &mut buf[done..])?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// Reads everything until end of file.
pub fn read_to_end_fd(fd: &OwnedFd) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = read_fd(fd.as_raw_fd(), &mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// An anonymous private mapping, unmapped on drop (mmap(2)).
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    pub fn new(len: usize, prot: libc::c_int) -> io::Result<Mapping> {
        Self::with_flags(len, prot, libc::MAP_PRIVATE)
    }

    /// An anonymous shared mapping: forked children write to the same pages.
    pub fn new_shared(len: usize, prot: libc::c_int) -> io::Result<Mapping> {
        Self::with_flags(len, prot, libc::MAP_SHARED)
    }

    fn with_flags(len: usize, prot: libc::c_int, flags: libc::c_int) -> io::Result<Mapping> {
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses; it aliases nothing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                flags | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The mapping as bytes. Only for mappings created readable and writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes owned by `self`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region this value mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let r = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if r > 0 { r as usize } else { 4096 }
}

/// Pins the calling process (and the children it forks afterwards) to `cpu`
/// (sched_setaffinity(2)).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(io::Error::from)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(io::Error::from)
}

/// Whether /proc/cpuinfo says this is a User-Mode Linux kernel.
pub fn in_uml() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| {
            s.lines().any(|l| {
                l.split_once(':')
                    .is_some_and(|(k, v)| k.trim() == "vendor_id" && v.trim() == "User Mode Linux")
            })
        })
        .unwrap_or(false)
}

/// Written by the `exec_dynamic` case into a mapping before execve; the
/// exec'd program (`uml-guest probe-stale ADDR`) must not find it.
pub const STALE_MARK: &[u8; 16] = b"uml-guest:stale!";

/// Whether [`STALE_MARK`] is readable at `addr` in this process. Reads
/// through /proc/self/mem, so an unmapped or unreadable address is an
/// answer (false), not a fault.
pub fn stale_mark_at(addr: usize) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut vec = [0u8; 1];
    let page = addr & !(page_size() - 1);
    // SAFETY: mincore only inspects the page tables; `vec` holds one entry.
    let r = unsafe { libc::mincore(page as *mut libc::c_void, 1, vec.as_mut_ptr()) };
    if r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOMEM) {
        return Ok(false);
    }
    let f = std::fs::File::open("/proc/self/mem")?;
    let mut buf = [0u8; 16];
    match f.read_at(&mut buf, addr as u64) {
        Ok(16) => Ok(&buf == STALE_MARK),
        _ => Ok(false),
    }
}

/// `n` 64-bit atomics in an anonymous shared mapping: forked children
/// report numbers to the parent through them.
pub struct SharedWords {
    map: Mapping,
    n: usize,
}

impl SharedWords {
    pub fn new(n: usize) -> io::Result<SharedWords> {
        let len = (n * 8).max(1).next_multiple_of(page_size());
        let map = Mapping::new_shared(len, libc::PROT_READ | libc::PROT_WRITE)?;
        Ok(SharedWords { map, n })
    }

    pub fn words(&self) -> &[std::sync::atomic::AtomicU64] {
        // SAFETY: the mapping is page-aligned, zero-filled, at least `n * 8` bytes and lives as long as `self`; AtomicU64 has the layout of u64.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast(), self.n) }
    }
}
