// SPDX-License-Identifier: GPL-2.0
//! Small host services of the os layer (the safe core behind `abi::util`),
//! and helpers the other cores share: a boot-time global cell, fixed-size C
//! strings, heap-free `strerror`, and the EINTR retry loop.
//!
//! Nothing here allocates: these functions run on small kernel stacks, in
//! helper threads and, for `dump_core`, on the way down after a crash.

use core::cell::UnsafeCell;
use core::ffi::{CStr, c_char, c_int, c_uint, c_void};
use core::fmt;

use nix::errno::Errno;

/// A global that is only touched by one host thread at a time, and never
/// re-entered, so it needs no lock.
///
/// The UML kernel runs all its threads on one host thread, one at a time:
/// command-line parsing, initcalls, exit calls and the SIGIO handler all run
/// there. Every user of a `HostCell` states why its accesses cannot overlap.
pub struct HostCell<T>(UnsafeCell<T>);

// SAFETY: callers of `with`/`as_ptr` guarantee accesses never overlap (see the
// type's documentation); `T: Send` so moving the value between threads that
// take turns is sound.
unsafe impl<T: Send> Sync for HostCell<T> {}

impl<T> HostCell<T> {
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// Runs `f` with exclusive access to the value.
    ///
    /// # Safety
    ///
    /// No other access to this cell (through `with` or `as_ptr`) may be live
    /// while `f` runs: not from another thread, not from a signal handler
    /// interrupting this one.
    pub unsafe fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: exclusivity is the caller's obligation (see above).
        f(unsafe { &mut *self.0.get() })
    }

    /// A raw pointer to the value, for handing a stable address to C.
    pub const fn as_ptr(&self) -> *mut T {
        self.0.get()
    }
}

/// A NUL-terminated byte string in a fixed buffer of `N` bytes (at most
/// `N - 1` bytes of text). Lives on the stack or in a static, never on the
/// heap, and its bytes start at a stable address that can be handed to C.
#[derive(Clone)]
pub struct CBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

/// The text did not fit a [`CBuf`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow;

impl<const N: usize> CBuf<N> {
    /// The text capacity: one byte is kept for the terminating NUL.
    pub const CAPACITY: usize = N - 1;

    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    /// A buffer holding `text`, for statics. Fails to compile (in a const
    /// context) if `text` is too long or contains a NUL.
    pub const fn from_literal(text: &[u8]) -> Self {
        assert!(text.len() < N, "literal too long for CBuf");
        let mut buf = [0; N];
        let mut i = 0;
        while i < text.len() {
            assert!(text[i] != 0, "NUL inside CBuf literal");
            buf[i] = text[i];
            i += 1;
        }
        Self {
            buf,
            len: text.len(),
        }
    }

    /// Replaces the contents with `text` (which must not contain NUL).
    pub fn set(&mut self, text: &[u8]) -> Result<(), Overflow> {
        self.clear();
        self.push(text)
    }

    /// Appends `text`; on overflow the contents are left unchanged.
    pub fn push(&mut self, text: &[u8]) -> Result<(), Overflow> {
        if text.len() > Self::CAPACITY - self.len || text.contains(&0) {
            return Err(Overflow);
        }
        self.buf[self.len..self.len + text.len()].copy_from_slice(text);
        self.len += text.len();
        self.buf[self.len] = 0;
        Ok(())
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.buf[0] = 0;
    }

    /// Keeps the first `len` bytes (no-op if already shorter).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.len = len;
            self.buf[len] = 0;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn as_cstr(&self) -> &CStr {
        // The invariant: buf[len] == 0 and no NUL before it.
        CStr::from_bytes_with_nul(&self.buf[..=self.len]).unwrap_or(c"")
    }

    /// The address of the first byte; the text is NUL-terminated there.
    pub fn as_ptr(&self) -> *const c_char {
        self.buf.as_ptr().cast()
    }

    /// A writable pointer to the text, for C calls that rewrite it in place
    /// without changing its length (`mkstemp`).
    pub fn as_mut_ptr(&mut self) -> *mut c_char {
        self.buf.as_mut_ptr().cast()
    }

    /// Shows the text in messages (invalid UTF-8 replaced).
    pub fn show(&self) -> ShowBytes<'_> {
        ShowBytes(self.as_bytes())
    }
}

impl<const N: usize> PartialEq for CBuf<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> Eq for CBuf<N> {}

impl<const N: usize> Default for CBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for CBuf<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.show())
    }
}

/// Displays raw bytes (file names, command-line values) without allocating,
/// replacing invalid UTF-8 with U+FFFD.
#[derive(Clone, Copy)]
pub struct ShowBytes<'a>(pub &'a [u8]);

impl fmt::Display for ShowBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }
}

/// The bytes of a C string, without its NUL.
///
/// # Safety
///
/// `ptr` points to a NUL-terminated string that outlives `'a` and is not
/// written while the slice is used.
pub unsafe fn c_bytes<'a>(ptr: *const c_char) -> &'a [u8] {
    // SAFETY: forwarded from the caller.
    unsafe { CStr::from_ptr(ptr) }.to_bytes()
}

/// The message for `errno`, like `strerror`, formatted into `buf` without
/// allocating (std's `io::Error` display allocates).
pub fn strerror(errno: c_int, buf: &mut [u8; 128]) -> &str {
    // SAFETY: XSI strerror_r writes a NUL-terminated message of at most `buf.len()` bytes.
    let rc = unsafe { libc::strerror_r(errno, buf.as_mut_ptr().cast(), buf.len()) };
    let text = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        core::str::from_utf8(&buf[..end]).ok()
    } else {
        None
    };
    text.unwrap_or("Unknown error")
}

/// A `Display` for an errno value, as `strerror` text.
#[derive(Clone, Copy)]
pub struct ErrnoMsg(pub c_int);

impl fmt::Display for ErrnoMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 128];
        f.write_str(strerror(self.0, &mut buf))
    }
}

/// The calling thread's errno as an [`Errno`].
pub fn last_errno() -> Errno {
    Errno::last()
}

/// Runs `op` (a C call returning a negative value on failure) until it does
/// not fail with EINTR, like the kernel's `CATCH_EINTR`.
pub fn retry_eintr(mut op: impl FnMut() -> c_int) -> Result<c_int, Errno> {
    loop {
        let rc = op();
        if rc >= 0 {
            return Ok(rc);
        }
        match Errno::last() {
            Errno::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// Puts the terminal `fd` into raw mode (`cfmakeraw`), applying the change
/// once pending output has drained. EINTR is retried.
pub fn make_raw(fd: c_int) -> Result<(), Errno> {
    // SAFETY: termios is plain old data; all-zero is a valid value.
    let mut tio: libc::termios = unsafe { core::mem::zeroed() };
    // SAFETY: `tio` is a valid, writable termios.
    retry_eintr(|| unsafe { libc::tcgetattr(fd, &mut tio) })?;
    // SAFETY: `tio` is a valid termios just filled by tcgetattr.
    unsafe { libc::cfmakeraw(&mut tio) };
    // SAFETY: `tio` is a valid termios.
    retry_eintr(|| unsafe { libc::tcsetattr(fd, libc::TCSADRAIN, &tio) })?;
    Ok(())
}

/// The host's `uname`.
pub fn host_uname() -> Result<libc::utsname, Errno> {
    // SAFETY: utsname is plain old data; all-zero is a valid value.
    let mut u: libc::utsname = unsafe { core::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } < 0 {
        return Err(Errno::last());
    }
    Ok(u)
}

/// The text of one `utsname` field (up to its NUL).
pub fn uts_field(field: &[c_char]) -> &[u8] {
    // SAFETY: c_char and u8 have the same size and alignment.
    let bytes: &[u8] = unsafe { core::slice::from_raw_parts(field.as_ptr().cast(), field.len()) };
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// The machine name the UML kernel reports: the host's, except that a 64-bit
/// UML on an i686 host says x86_64 and a 32-bit one on x86_64 says i686.
pub fn uml_machine_name(host_machine: &[u8]) -> &[u8] {
    if cfg!(target_arch = "x86_64") && host_machine == b"i686" {
        return b"x86_64";
    }
    if cfg!(target_arch = "x86") && host_machine == b"x86_64" {
        return b"i686";
    }
    host_machine
}

/// Writes the concatenation of `parts` into `out` like `snprintf`: at most
/// `out.len() - 1` bytes and a NUL (nothing at all if `out` is empty).
/// Returns the full length the text would have had.
pub fn write_truncated(out: &mut [u8], parts: &[&[u8]]) -> usize {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let Some(room) = out.len().checked_sub(1) else {
        return total;
    };
    let mut at = 0;
    for part in parts {
        let take = part.len().min(room - at);
        out[at..at + take].copy_from_slice(&part[..take]);
        at += take;
    }
    out[at] = 0;
    total
}

/// "sysname nodename release version machine" of the host, into `out` with
/// `snprintf` truncation.
pub fn host_info(u: &libc::utsname, out: &mut [u8]) -> usize {
    write_truncated(
        out,
        &[
            uts_field(&u.sysname),
            b" ",
            uts_field(&u.nodename),
            b" ",
            uts_field(&u.release),
            b" ",
            uts_field(&u.version),
            b" ",
            uts_field(&u.machine),
        ],
    )
}

/// Makes `size` bytes at `addr` readable, writable and executable (UML's
/// kernel stacks).
pub fn protect_stack(addr: usize, size: usize) -> Result<(), Errno> {
    // Callers pass their own stack areas; a bad range is an error return, not a Rust UB.
    // SAFETY: mprotect only changes page permissions; it touches no Rust-visible memory.
    let rc = unsafe {
        libc::mprotect(
            addr as *mut c_void,
            size,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Fills `buf` from `getrandom(2)` with the C library's return convention:
/// the number of bytes read, or -1 with errno set.
pub fn fill_random(buf: &mut [u8], flags: c_uint) -> isize {
    // SAFETY: getrandom writes at most `buf.len()` bytes into `buf`.
    unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), flags) }
}

/// Signal dispositions for UML helper threads and processes: SIGWINCH is
/// ignored, SIGINT and SIGTERM take their default action.
pub fn fix_helper_signals() {
    // SAFETY: installing SIG_IGN/SIG_DFL dispositions runs no code of ours.
    unsafe {
        libc::signal(libc::SIGWINCH, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
    }
}

/// Brings the whole UML process group down and dies by SIGABRT.
///
/// Every other process of the group gets SIGTERM and SIGCONT (stopped
/// ptraced children must run to see it); then each child still reported by
/// `waitpid` is handed to `kill_ptraced`. Finally SIGABRT is sent to
/// ourselves: glibc's `abort()` is not usable, its `tgkill` does nothing from
/// UML kernel threads.
pub fn dump_core(kill_ptraced: impl Fn(c_int)) -> ! {
    // SAFETY: default/ignore dispositions, signals to our own group, waitpid with a null status.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        // We want to abort, not to die of the SIGTERM we send the group.
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::kill(0, libc::SIGTERM);
        libc::kill(0, libc::SIGCONT);
        loop {
            let pid = libc::waitpid(-1, core::ptr::null_mut(), libc::WNOHANG | libc::__WALL);
            if pid <= 0 {
                break;
            }
            kill_ptraced(pid);
        }
    }
    abort_self()
}

/// Dies by SIGABRT (flushing C stdio first), or exits 127 if even that fails.
pub fn abort_self() -> ! {
    // fflush(NULL) flushes all C streams; kill/getpid/exit have no memory contract.
    // SAFETY: the sigset is initialised by sigemptyset before use.
    unsafe {
        libc::fflush(core::ptr::null_mut());
        let mut set: libc::sigset_t = core::mem::zeroed();
        if libc::sigemptyset(&mut set) == 0 && libc::sigaddset(&mut set, libc::SIGABRT) == 0 {
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, core::ptr::null_mut());
        }
        loop {
            if libc::kill(libc::getpid(), libc::SIGABRT) < 0 {
                libc::exit(127);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::{Mutex, MutexGuard};

    /// Serialises tests that fork or use C stdio, so a child never inherits
    /// a stdio lock held by another test thread.
    static FORK_LOCK: Mutex<()> = Mutex::new(());

    pub fn fork_lock() -> MutexGuard<'static, ()> {
        FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `child` in a forked process and returns its raw wait status.
    /// The child should end with `_exit` or a signal; if `child` returns,
    /// the child exits with status 127.
    pub fn run_forked(child: impl FnOnce()) -> i32 {
        let _guard = fork_lock();
        // SAFETY: the child runs only `child`, which is async-signal-safe and never returns.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            child();
            // SAFETY: leaving the forked child without running destructors.
            unsafe { libc::_exit(127) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(rc, pid);
        status
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::run_forked;
    use super::*;

    #[test]
    fn cbuf_push_overflow_and_truncate() {
        let mut b = CBuf::<8>::new();
        assert!(b.is_empty());
        b.set(b"abc").unwrap();
        b.push(b"def").unwrap();
        assert_eq!(b.as_bytes(), b"abcdef");
        assert_eq!(b.push(b"gh"), Err(Overflow));
        assert_eq!(b.as_bytes(), b"abcdef", "failed push leaves contents");
        b.push(b"g").unwrap();
        assert_eq!(b.as_cstr(), c"abcdefg");
        assert_eq!(b.push(b"\0"), Err(Overflow));
        b.truncate(2);
        assert_eq!(b.as_cstr().to_bytes(), b"ab");
        // SAFETY: as_ptr points at the NUL-terminated text.
        assert_eq!(unsafe { c_bytes(b.as_ptr()) }, b"ab");
        const LIT: CBuf<4> = CBuf::from_literal(b"xyz");
        assert_eq!(LIT.as_bytes(), b"xyz");
    }

    #[test]
    fn show_bytes_replaces_invalid_utf8() {
        assert_eq!(format!("{}", ShowBytes(b"a\xffb")), "a\u{fffd}b");
    }

    #[test]
    fn strerror_without_allocation() {
        let mut buf = [0u8; 128];
        assert_eq!(
            strerror(libc::ENOENT, &mut buf),
            "No such file or directory"
        );
        assert_eq!(format!("{}", ErrnoMsg(libc::EEXIST)), "File exists");
    }

    #[test]
    fn retry_eintr_retries_and_reports() {
        let mut calls = 0;
        let r = retry_eintr(|| {
            calls += 1;
            if calls < 3 {
                Errno::EINTR.set();
                -1
            } else {
                7
            }
        });
        assert_eq!(r, Ok(7));
        assert_eq!(calls, 3);
        let r = retry_eintr(|| {
            Errno::EBADF.set();
            -1
        });
        assert_eq!(r, Err(Errno::EBADF));
    }

    #[test]
    fn make_raw_sets_pty_raw() {
        let pty = nix::pty::openpty(None, None).unwrap();
        use std::os::fd::AsRawFd;
        let fd = pty.slave.as_raw_fd();
        let before = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
        assert!(
            before
                .local_flags
                .contains(nix::sys::termios::LocalFlags::ICANON)
        );
        make_raw(fd).unwrap();
        let after = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
        use nix::sys::termios::{InputFlags, LocalFlags, OutputFlags};
        assert!(
            !after
                .local_flags
                .intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG)
        );
        assert!(
            !after
                .input_flags
                .intersects(InputFlags::ICRNL | InputFlags::IXON)
        );
        assert!(!after.output_flags.contains(OutputFlags::OPOST));
        let mut expect: libc::termios = before.into();
        // SAFETY: `expect` is a valid termios.
        unsafe { libc::cfmakeraw(&mut expect) };
        let got: libc::termios = after.into();
        assert_eq!(
            (got.c_iflag, got.c_oflag, got.c_lflag),
            (expect.c_iflag, expect.c_oflag, expect.c_lflag)
        );
        assert_eq!(make_raw(-1), Err(Errno::EBADF));
        let file = tempfile::tempfile().unwrap();
        assert_eq!(make_raw(file.as_raw_fd()), Err(Errno::ENOTTY));
    }

    fn uname_cmd(flags: &str) -> String {
        let out = std::process::Command::new("uname")
            .arg(flags)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    }

    #[test]
    fn host_info_matches_uname_tool() {
        let u = host_uname().unwrap();
        let mut buf = [0xaau8; 512];
        let n = host_info(&u, &mut buf);
        let text = CStr::from_bytes_until_nul(&buf).unwrap().to_str().unwrap();
        assert_eq!(n, text.len());
        assert_eq!(text, uname_cmd("-snrvm"));
        // snprintf truncation: len - 1 bytes and a NUL.
        let mut small = [0xaau8; 6];
        assert_eq!(host_info(&u, &mut small), n);
        assert_eq!(&small[..5], &text.as_bytes()[..5]);
        assert_eq!(small[5], 0);
        let mut none: [u8; 0] = [];
        assert_eq!(host_info(&u, &mut none), n);
    }

    #[test]
    fn machine_name_matches_uname_and_maps_i686() {
        let u = host_uname().unwrap();
        assert_eq!(uts_field(&u.machine), uname_cmd("-m").as_bytes());
        if cfg!(target_arch = "x86_64") {
            assert_eq!(uml_machine_name(b"i686"), b"x86_64");
            assert_eq!(uml_machine_name(b"x86_64"), b"x86_64");
        }
        assert_eq!(uml_machine_name(b"aarch64"), b"aarch64");
    }

    #[test]
    fn protect_stack_changes_permissions() {
        let size = 4 * 4096;
        // SAFETY: anonymous private mapping, unmapped below.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                size,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        protect_stack(p as usize, size).unwrap();
        // Writable now (it was read-only).
        // SAFETY: inside the mapping, now writable.
        unsafe { *(p as *mut u8).add(size - 1) = 1 };
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let start = format!("{:x}-", p as usize);
        let line = maps.lines().find(|l| l.starts_with(&start)).unwrap();
        assert!(line.contains(" rwxp "), "{line}");
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(p, size) };
        assert_eq!(protect_stack(p as usize, size), Err(Errno::ENOMEM));
    }

    #[test]
    fn getrandom_fills_buffer() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        assert_eq!(fill_random(&mut a, 0), 64);
        assert_eq!(fill_random(&mut b, libc::GRND_NONBLOCK), 64);
        assert_eq!(fill_random(&mut a[..4], 0xdead_0000), -1);
        assert_ne!(a, b);
        assert_eq!(Errno::last(), Errno::EINVAL);
    }

    #[test]
    fn fix_helper_signals_dispositions() {
        let status = run_forked(|| {
            // SAFETY: only async-signal-safe calls in the forked child.
            unsafe {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                fix_helper_signals();
                let mut old: libc::sigaction = core::mem::zeroed();
                let mut ok = true;
                for (sig, want) in [
                    (libc::SIGWINCH, libc::SIG_IGN),
                    (libc::SIGINT, libc::SIG_DFL),
                    (libc::SIGTERM, libc::SIG_DFL),
                ] {
                    libc::sigaction(sig, core::ptr::null(), &mut old);
                    ok &= old.sa_sigaction == want;
                }
                libc::_exit(if ok { 0 } else { 1 })
            }
        });
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "status {status:#x}"
        );
    }

    #[test]
    fn dump_core_kills_group_and_aborts() {
        let mut fds = [0; 2];
        // Close-on-exec, so programs other tests spawn meanwhile do not hold the write end open.
        // SAFETY: `fds` is a valid array of two ints.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let [rd, wr] = fds;
        let status = run_forked(|| {
            // The child makes a new process group (so group-wide signals stay inside it), disables
            // core files, and leaves a stopped ptraced grandchild, as UML's userspace processes are,
            // which dump_core must hand to the callback.
            // SAFETY: only async-signal-safe calls run in the forked child.
            unsafe {
                libc::close(rd);
                libc::setpgid(0, 0);
                let nocore = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &nocore);
                let grandchild = libc::fork();
                if grandchild == 0 {
                    libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
                    libc::raise(libc::SIGSTOP);
                    loop {
                        libc::pause();
                    }
                }
                // Wait until it is stopped, leaving the stop to be reported.
                let mut info: libc::siginfo_t = core::mem::zeroed();
                libc::waitid(
                    libc::P_PID,
                    grandchild as libc::id_t,
                    &mut info,
                    libc::WSTOPPED | libc::WNOWAIT | libc::__WALL,
                );
                dump_core(|pid| {
                    let tag = if pid == grandchild { b"k" } else { b"?" };
                    libc::write(wr, tag.as_ptr().cast(), 1);
                    libc::kill(pid, libc::SIGKILL);
                });
            }
        });
        // SAFETY: closing our copy of the write end, then reading into a valid buffer.
        let (n, buf) = unsafe {
            libc::close(wr);
            let mut buf = [0u8; 16];
            let n = libc::read(rd, buf.as_mut_ptr().cast(), buf.len());
            libc::close(rd);
            (n, buf)
        };
        assert!(libc::WIFSIGNALED(status), "status {status:#x}");
        assert_eq!(libc::WTERMSIG(status), libc::SIGABRT);
        assert!(
            n >= 1 && buf[..n as usize].iter().all(|&b| b == b'k'),
            "callback calls: {:?}",
            &buf[..n.max(0) as usize]
        );
    }
}
