// SPDX-License-Identifier: GPL-2.0
//! Host files, descriptor flags, locks, eventfds and shared mappings: the
//! safe core behind [`crate::abi::file`], which replaces
//! `arch/um/os-Linux/file.c`. Sockets are in [`crate::host::socket`].
//!
//! Conventions of every function here:
//!
//! * Descriptors are plain [`RawFd`]s: the C callers own them, and a bad one
//!   is reported by the host as `EBADF`. Descriptors created here come back
//!   as [`OwnedFd`], so no error path can leak one.
//! * Errors are the host's [`Errno`]. Only the calls the C layer retried on
//!   `EINTR` are retried ([`retry_eintr`]); every other call hands `EINTR`
//!   back to its caller, as the C layer did.
//! * A new descriptor is close-on-exec only where the C layer made it so.
//! * Nothing allocates: paths are `&CStr`s handed to libc untouched, so these
//!   paths are safe after boot, when `malloc` is the kernel's.

use core::ffi::{CStr, c_char, c_int, c_uint, c_ulong, c_void};
use core::fmt;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::kernel::Level;

/// Result of a host call: the value, or the host's errno.
pub type Result<T> = core::result::Result<T, Errno>;

/// Runs `f` again for as long as it fails with `EINTR`: the C layer's
/// `CATCH_EINTR`.
pub fn retry_eintr<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => {}
            other => return other,
        }
    }
}

/// Takes ownership of a descriptor the host just returned.
pub(crate) fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just created by a successful system call, so we are its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Shows a C string the way printk's `%s` would, without allocating: bytes
/// that are not UTF-8 are shown as `\xNN`.
pub struct CStrDisplay<'a>(pub &'a CStr);

impl fmt::Display for CStrDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.to_bytes().utf8_chunks() {
            f.write_str(chunk.valid())?;
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// stat and access

/// [fstat64(2)](https://man7.org/linux/man-pages/man2/fstat.2.html),
/// retried on `EINTR`.
pub fn stat_fd(fd: RawFd) -> Result<libc::stat64> {
    let mut st = MaybeUninit::<libc::stat64>::uninit();
    retry_eintr(|| {
        // SAFETY: `st` is valid for writes of one `stat64`.
        Errno::result(unsafe { libc::fstat64(fd, st.as_mut_ptr()) })
    })?;
    // SAFETY: fstat64 succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

/// [stat64(2)](https://man7.org/linux/man-pages/man2/stat.2.html) (follows
/// symbolic links), retried on `EINTR`.
pub fn stat_path(path: &CStr) -> Result<libc::stat64> {
    let mut st = MaybeUninit::<libc::stat64>::uninit();
    retry_eintr(|| {
        // SAFETY: `path` is NUL-terminated and `st` is valid for writes of one `stat64`.
        Errno::result(unsafe { libc::stat64(path.as_ptr(), st.as_mut_ptr()) })
    })?;
    // SAFETY: stat64 succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

/// The type of a file, from the `S_IFMT` bits of its mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    CharDev,
    BlockDev,
    Fifo,
    Socket,
}

impl FileKind {
    /// Classifies `mode`; anything that is none of the special types
    /// (including an unknown type) is a regular file.
    pub fn from_mode(mode: u32) -> Self {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => Self::Dir,
            libc::S_IFLNK => Self::Symlink,
            libc::S_IFCHR => Self::CharDev,
            libc::S_IFBLK => Self::BlockDev,
            libc::S_IFIFO => Self::Fifo,
            libc::S_IFSOCK => Self::Socket,
            _ => Self::File,
        }
    }
}

/// The type of the file at `path`. Symbolic links are followed (like the C
/// layer, which uses stat), so [`FileKind::Symlink`] is never the answer
/// for a link that resolves.
pub fn file_kind(path: &CStr) -> Result<FileKind> {
    Ok(FileKind::from_mode(stat_path(path)?.st_mode))
}

/// [access(2)](https://man7.org/linux/man-pages/man2/access.2.html) with a
/// host `amode` (`F_OK`, or any of `R_OK | W_OK | X_OK`). Not retried.
pub fn access(path: &CStr, amode: c_int) -> Result<()> {
    // SAFETY: `path` is NUL-terminated.
    Errno::result(unsafe { libc::access(path.as_ptr(), amode) }).map(drop)
}

/// Whether `access(path, amode)` grants access: `EACCES` is `Ok(false)`,
/// any other failure (`ENOENT`, `EROFS`, ...) is an error.
pub fn may_access(path: &CStr, amode: c_int) -> Result<bool> {
    match access(path, amode) {
        Ok(()) => Ok(true),
        Err(Errno::EACCES) => Ok(false),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------
// ioctls

/// `N_SLIP` (linux/tty.h): the SLIP line discipline.
pub const N_SLIP: c_int = 1;
/// `BLKGETSIZE` (linux/fs.h): `_IO(0x12, 96)`, device size in 512-byte
/// sectors, as a `long`.
pub const BLKGETSIZE: libc::Ioctl = 0x1260;

/// Any [ioctl(2)](https://man7.org/linux/man-pages/man2/ioctl.2.html), with
/// `cmd` widened to the host's request type as C does. Not retried.
///
/// # Safety
///
/// Whatever memory `arg` designates for `cmd` must be valid for the
/// accesses the host makes for that request.
pub unsafe fn ioctl_generic(fd: RawFd, cmd: c_uint, arg: c_ulong) -> Result<c_int> {
    // SAFETY: the caller vouches for `arg` as a `cmd` argument.
    Errno::result(unsafe { libc::ioctl(fd, libc::Ioctl::from(cmd), arg) })
}

/// `SIOCGIFNAME` on `fd` (a SLIP tty): the name of its network interface.
///
/// # Safety
///
/// `namebuf` must be valid for writes of `IFNAMSIZ` bytes.
pub unsafe fn get_ifname(fd: RawFd, namebuf: *mut c_char) -> Result<()> {
    // SAFETY: the caller guarantees room for an interface name.
    Errno::result(unsafe { libc::ioctl(fd, libc::SIOCGIFNAME, namebuf) }).map(drop)
}

/// Puts the tty `fd` into the SLIP line discipline (`TIOCSETD`), then sets
/// plain (uncompressed) encapsulation (`SIOCSIFENCAP` 0).
pub fn set_slip(fd: RawFd) -> Result<()> {
    let disc: c_int = N_SLIP;
    // SAFETY: TIOCSETD reads one int, which `disc` is.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCSETD, &disc) })?;
    let encap: c_int = 0;
    // SAFETY: SIOCSIFENCAP reads one int, which `encap` is.
    Errno::result(unsafe { libc::ioctl(fd, libc::SIOCSIFENCAP, &encap) })?;
    Ok(())
}

// ---------------------------------------------------------------------------
// open, close and plain I/O

/// [open64(2)](https://man7.org/linux/man-pages/man2/open.2.html) with host
/// `oflag` and `mode`. Not retried. With `cloexec`, `FD_CLOEXEC` is set by a
/// separate `fcntl(F_SETFD)` after the open (as the C layer does, not with
/// `O_CLOEXEC`); if that fails the file is closed and the error returned.
pub fn open(path: &CStr, oflag: c_int, mode: c_int, cloexec: bool) -> Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated; the mode is passed as the variadic int that open expects.
    let fd = owned(Errno::result(unsafe {
        libc::open64(path.as_ptr(), oflag, mode)
    })?);
    if cloexec {
        // SAFETY: F_SETFD takes an int argument.
        Errno::result(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
    }
    Ok(fd)
}

/// [dup(2)](https://man7.org/linux/man-pages/man2/dup.2.html). The copy is
/// not close-on-exec.
pub fn dup(fd: RawFd) -> Result<OwnedFd> {
    // SAFETY: dup has no memory arguments.
    Errno::result(unsafe { libc::dup(fd) }).map(owned)
}

/// [close(2)](https://man7.org/linux/man-pages/man2/close.2.html), ignoring
/// any error.
///
/// # Safety
///
/// The caller must own `fd` and not use it afterwards.
pub unsafe fn close_raw(fd: RawFd) {
    // SAFETY: the caller owns `fd`.
    unsafe { libc::close(fd) };
}

/// [fsync(2)](https://man7.org/linux/man-pages/man2/fsync.2.html). Not
/// retried.
pub fn fsync(fd: RawFd) -> Result<()> {
    // SAFETY: no memory arguments.
    Errno::result(unsafe { libc::fsync(fd) }).map(drop)
}

/// [fdatasync(2)](https://man7.org/linux/man-pages/man2/fdatasync.2.html).
/// Not retried.
pub fn fdatasync(fd: RawFd) -> Result<()> {
    // SAFETY: no memory arguments.
    Errno::result(unsafe { libc::fdatasync(fd) }).map(drop)
}

/// Moves the file offset of `fd` to `offset` (`lseek64(SEEK_SET)`).
///
/// Success is judged like the C layer does: the call succeeded if the new
/// offset, read as unsigned, equals `offset`; otherwise the error is
/// whatever errno holds.
pub fn seek_set(fd: RawFd, offset: u64) -> Result<()> {
    // SAFETY: no memory arguments; the offset is reinterpreted as off64_t, as the C does.
    let actual = unsafe { libc::lseek64(fd, offset as libc::off64_t, libc::SEEK_SET) };
    if actual as u64 != offset {
        return Err(Errno::last());
    }
    Ok(())
}

/// [read(2)](https://man7.org/linux/man-pages/man2/read.2.html) of up to
/// `len` bytes to `buf`. Not retried.
///
/// # Safety
///
/// `buf` must be valid for writes of `len` bytes, unless the host rejects
/// the request outright (a `len` beyond the address space, an unmapped
/// `buf`: `EFAULT`).
pub unsafe fn read_raw(fd: RawFd, buf: *mut c_void, len: usize) -> Result<usize> {
    // SAFETY: forwarded caller guarantee.
    Errno::result(unsafe { libc::read(fd, buf, len) }).map(|n| n as usize)
}

/// [read(2)](https://man7.org/linux/man-pages/man2/read.2.html) into `buf`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    unsafe { read_raw(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

/// [pread64(2)](https://man7.org/linux/man-pages/man2/pread.2.html). Not
/// retried.
///
/// # Safety
///
/// As [`read_raw`].
pub unsafe fn pread_raw(fd: RawFd, buf: *mut c_void, len: usize, offset: u64) -> Result<usize> {
    // SAFETY: forwarded caller guarantee.
    Errno::result(unsafe { libc::pread64(fd, buf, len, offset as libc::off64_t) })
        .map(|n| n as usize)
}

/// [pread64(2)](https://man7.org/linux/man-pages/man2/pread.2.html) into `buf`.
pub fn pread(fd: RawFd, buf: &mut [u8], offset: u64) -> Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    unsafe { pread_raw(fd, buf.as_mut_ptr().cast(), buf.len(), offset) }
}

/// [write(2)](https://man7.org/linux/man-pages/man2/write.2.html) of `len`
/// bytes from `buf`. Not retried.
///
/// # Safety
///
/// `buf` must be valid for reads of `len` bytes, unless the host rejects the
/// request outright (`EFAULT`).
pub unsafe fn write_raw(fd: RawFd, buf: *const c_void, len: usize) -> Result<usize> {
    // SAFETY: forwarded caller guarantee.
    Errno::result(unsafe { libc::write(fd, buf, len) }).map(|n| n as usize)
}

/// [write(2)](https://man7.org/linux/man-pages/man2/write.2.html) of `buf`.
pub fn write(fd: RawFd, buf: &[u8]) -> Result<usize> {
    // SAFETY: `buf` is valid for reads of its length.
    unsafe { write_raw(fd, buf.as_ptr().cast(), buf.len()) }
}

/// [pwrite64(2)](https://man7.org/linux/man-pages/man2/pwrite.2.html). Not
/// retried.
///
/// # Safety
///
/// As [`write_raw`].
pub unsafe fn pwrite_raw(fd: RawFd, buf: *const c_void, len: usize, offset: u64) -> Result<usize> {
    // SAFETY: forwarded caller guarantee.
    Errno::result(unsafe { libc::pwrite64(fd, buf, len, offset as libc::off64_t) })
        .map(|n| n as usize)
}

/// [pwrite64(2)](https://man7.org/linux/man-pages/man2/pwrite.2.html) of `buf`.
pub fn pwrite(fd: RawFd, buf: &[u8], offset: u64) -> Result<usize> {
    // SAFETY: `buf` is valid for reads of its length.
    unsafe { pwrite_raw(fd, buf.as_ptr().cast(), buf.len(), offset) }
}

/// `fchmod(fd, mode)`, retried on `EINTR`.
pub fn chmod_fd(fd: RawFd, mode: c_int) -> Result<()> {
    retry_eintr(|| {
        // SAFETY: no memory arguments.
        Errno::result(unsafe { libc::fchmod(fd, mode as libc::mode_t) })
    })
    .map(drop)
}

// ---------------------------------------------------------------------------
// size and modification time

/// [`stat_path`], logging a failure the way the C layer does.
fn stat_path_logged(path: &CStr) -> Result<libc::stat64> {
    stat_path(path).inspect_err(|&e| {
        crate::klog!(
            Level::Err,
            "Couldn't stat \"{}\" : err = {}",
            CStrDisplay(path),
            e as c_int
        );
    })
}

/// The size in bytes of the file at `path`; for a block device, the size
/// of the device (`BLKGETSIZE` sectors times 512). Failures are logged.
pub fn file_size(path: &CStr) -> Result<u64> {
    let st = stat_path_logged(path)?;
    if FileKind::from_mode(st.st_mode) != FileKind::BlockDev {
        return Ok(st.st_size as u64);
    }
    // SAFETY: `path` is NUL-terminated.
    let fd = Errno::result(unsafe { libc::open64(path.as_ptr(), libc::O_RDONLY, 0) })
        .inspect_err(|&e| {
            crate::klog!(
                Level::Err,
                "Couldn't open \"{}\", errno = {}",
                CStrDisplay(path),
                e as c_int
            );
        })
        .map(owned)?;
    let mut sectors: libc::c_long = 0;
    // SAFETY: BLKGETSIZE writes one long, which `sectors` is.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), BLKGETSIZE, &mut sectors) }).inspect_err(
        |&e| {
            crate::klog!(
                Level::Err,
                "Couldn't get the block size of \"{}\", errno = {}",
                CStrDisplay(path),
                e as c_int
            );
        },
    )?;
    Ok((sectors as i64 * 512) as u64)
}

/// The modification time (seconds since the epoch) of the file at `path`.
/// Failures are logged.
pub fn modtime(path: &CStr) -> Result<i64> {
    let st = stat_path_logged(path)?;
    Ok(st.st_mtime)
}

// ---------------------------------------------------------------------------
// descriptor flags

/// `F_SETSIG` (linux/fcntl.h); not exported by the libc crate for glibc.
pub const F_SETSIG: c_int = 10;

/// Sets `FD_CLOEXEC` on `fd` (`fcntl(F_SETFD)`), retried on `EINTR`.
pub fn set_cloexec(fd: RawFd) -> Result<()> {
    retry_eintr(|| {
        // SAFETY: F_SETFD takes an int argument.
        Errno::result(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })
    })
    .map(drop)
}

fn status_flags(fd: RawFd) -> Result<c_int> {
    // SAFETY: F_GETFL takes no argument.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_GETFL) })
}

fn set_status_flags(fd: RawFd, flags: c_int) -> Result<()> {
    // SAFETY: F_SETFL takes an int argument.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) }).map(drop)
}

/// Makes `fd` signal-driven: sets `O_ASYNC | O_NONBLOCK`, then asks for
/// `SIGIO` to be sent to this process. Failures after the first are logged.
/// Nothing is retried.
pub fn set_fd_async(fd: RawFd) -> Result<()> {
    let flags = status_flags(fd)?;
    set_status_flags(fd, flags | libc::O_ASYNC | libc::O_NONBLOCK).inspect_err(|&e| {
        crate::klog!(
            Level::Err,
            "os_set_fd_async : failed to set O_ASYNC and O_NONBLOCK on fd # {}, errno = {}",
            fd,
            e as c_int
        );
    })?;
    // SAFETY: F_SETSIG and F_SETOWN take int arguments.
    Errno::result(unsafe { libc::fcntl(fd, F_SETSIG, libc::SIGIO) })
        // SAFETY: as above; getpid has no arguments.
        .and_then(|_| Errno::result(unsafe { libc::fcntl(fd, libc::F_SETOWN, libc::getpid()) }))
        .inspect_err(|&e| {
            crate::klog!(
                Level::Err,
                "os_set_fd_async : Failed to fcntl F_SETOWN (or F_SETSIG) fd {}, errno = {}",
                fd,
                e as c_int
            );
        })?;
    Ok(())
}

/// Clears `O_ASYNC` and `O_NONBLOCK` on `fd`.
pub fn clear_fd_async(fd: RawFd) -> Result<()> {
    let flags = status_flags(fd)?;
    set_status_flags(fd, flags & !(libc::O_ASYNC | libc::O_NONBLOCK))
}

/// Clears (`blocking`) or sets `O_NONBLOCK` on `fd`.
pub fn set_fd_block(fd: RawFd, blocking: bool) -> Result<()> {
    let flags = status_flags(fd)?;
    let flags = if blocking {
        flags & !libc::O_NONBLOCK
    } else {
        flags | libc::O_NONBLOCK
    };
    set_status_flags(fd, flags)
}

/// The largest direct I/O alignment (file offset and memory) a caller of
/// [`set_fd_direct`] promises: whole 512-byte sectors from 512-byte
/// aligned buffers.
pub const DIRECT_IO_ALIGN: u32 = 512;

/// Sets `O_DIRECT` on `fd`. `EINVAL` if the file's filesystem reports
/// (statx `STATX_DIOALIGN`) that direct I/O needs a larger offset or memory
/// alignment than [`DIRECT_IO_ALIGN`], or cannot do direct I/O at all (then
/// from `F_SETFL`). Filesystems that report nothing (tmpfs) are left to
/// `F_SETFL`.
pub fn set_fd_direct(fd: RawFd) -> Result<()> {
    let mut stx = core::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: an empty path with AT_EMPTY_PATH names `fd` itself; `stx` is
    // writable and as large as the kernel's struct statx.
    Errno::result(unsafe {
        libc::statx(
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            stx.as_mut_ptr(),
        )
    })?;
    // SAFETY: zeroed, then filled by a successful statx.
    let stx = unsafe { stx.assume_init() };
    if stx.stx_mask & libc::STATX_DIOALIGN != 0
        && (stx.stx_dio_offset_align > DIRECT_IO_ALIGN || stx.stx_dio_mem_align > DIRECT_IO_ALIGN)
    {
        return Err(Errno::EINVAL);
    }
    let flags = status_flags(fd)?;
    set_status_flags(fd, flags | libc::O_DIRECT)
}

// ---------------------------------------------------------------------------
// locks

/// Takes a whole-file POSIX record lock on `fd` without waiting
/// (`fcntl(F_SETLK)`): a write lock if `exclusive`, else a read lock.
///
/// On conflict the holder is looked up with `F_GETLK` and logged, and the
/// `F_SETLK` error (`EAGAIN` or `EACCES`) is returned; if that lookup fails
/// too, its error is returned instead. POSIX locks belong to the process:
/// they never conflict with other locks of this same process.
pub fn lock_file(fd: RawFd, exclusive: bool) -> Result<()> {
    let lock_type = if exclusive {
        libc::F_WRLCK
    } else {
        libc::F_RDLCK
    };
    // SAFETY: flock is plain old data; zero is a valid value of every field.
    let mut lock: libc::flock = unsafe { core::mem::zeroed() };
    lock.l_type = lock_type as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = 0;
    lock.l_len = 0;
    // SAFETY: F_SETLK reads one flock, which `lock` is.
    let Err(set_err) = Errno::result(unsafe { libc::fcntl(fd, libc::F_SETLK, &lock) }) else {
        return Ok(());
    };
    // SAFETY: F_GETLK reads and writes one flock, which `lock` is.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_GETLK, &mut lock) })?;
    crate::klog!(
        Level::Err,
        "F_SETLK failed, file already locked by pid {}",
        lock.l_pid
    );
    Err(set_err)
}

// ---------------------------------------------------------------------------
// device numbers

/// The major number of `dev` (glibc's encoding, as `major(3)`).
pub const fn major(dev: u64) -> u32 {
    libc::major(dev)
}

/// The minor number of `dev` (as `minor(3)`).
pub const fn minor(dev: u64) -> u32 {
    libc::minor(dev)
}

/// The device number of `major`:`minor` (as `makedev(3)`).
pub const fn makedev(major: u32, minor: u32) -> u64 {
    libc::makedev(major, minor)
}

// ---------------------------------------------------------------------------
// fallocate

fn fallocate(fd: RawFd, mode: c_int, offset: u64, len: i64) -> Result<()> {
    // SAFETY: no memory arguments; the offset is reinterpreted as off64_t, as the C does.
    Errno::result(unsafe { libc::fallocate64(fd, mode, offset as libc::off64_t, len) }).map(drop)
}

/// Deallocates `len` bytes at `offset` (reads then return zeroes) without
/// changing the file size: `fallocate(PUNCH_HOLE | KEEP_SIZE)`. Not retried.
pub fn punch_hole(fd: RawFd, offset: u64, len: i64) -> Result<()> {
    fallocate(
        fd,
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        offset,
        len,
    )
}

/// Zeroes `len` bytes at `offset` without changing the file size:
/// `fallocate(ZERO_RANGE | KEEP_SIZE)`. Not retried.
pub fn zero_range(fd: RawFd, offset: u64, len: i64) -> Result<()> {
    fallocate(
        fd,
        libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
        offset,
        len,
    )
}

// ---------------------------------------------------------------------------
// eventfd, poll

/// [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html) with
/// host `EFD_*` flags (close-on-exec only with `EFD_CLOEXEC`).
pub fn eventfd(initval: c_uint, flags: c_int) -> Result<OwnedFd> {
    // SAFETY: no memory arguments.
    Errno::result(unsafe { libc::eventfd(initval, flags) }).map(owned)
}

/// The most descriptors [`poll_in`] takes (the C layer's stack array).
pub const POLL_MAX_FDS: usize = 2;

/// Waits without timeout until one of `fds` (at most [`POLL_MAX_FDS`]) is
/// readable, and returns the index of the first with any event (`POLLIN`,
/// `POLLHUP`, `POLLERR`, `POLLNVAL`). `EINVAL` for too many descriptors,
/// `EIO` if poll returned without any event; `EINTR` is not retried.
pub fn poll_in(fds: &[RawFd]) -> Result<usize> {
    if fds.len() > POLL_MAX_FDS {
        return Err(Errno::EINVAL);
    }
    let mut pollfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; POLL_MAX_FDS];
    for (p, &fd) in pollfds.iter_mut().zip(fds) {
        p.fd = fd;
        p.events = libc::POLLIN;
    }
    // SAFETY: `pollfds` holds at least `fds.len()` entries.
    Errno::result(unsafe { libc::poll(pollfds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) })?;
    pollfds[..fds.len()]
        .iter()
        .position(|p| p.revents != 0)
        .ok_or(Errno::EIO)
}

// ---------------------------------------------------------------------------
// shared mappings

/// Maps `size` bytes of `fd` read-write and shared, at an address the host
/// chooses. `None` on failure (the C API reports no errno).
pub fn mmap_rw_shared(fd: RawFd, size: usize) -> Option<NonNull<c_void>> {
    // SAFETY: without MAP_FIXED the host picks an unused range, so no existing memory is affected.
    let p = unsafe {
        libc::mmap64(
            core::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(p)
    }
}

/// Resizes a mapping made by [`mmap_rw_shared`], letting the host move it
/// (`mremap(MREMAP_MAYMOVE)`). `None` on failure, when the old mapping is
/// left as it was.
///
/// # Safety
///
/// `old` must be a mapping of `old_size` bytes owned by the caller; on
/// success it must no longer be used (only the returned one).
pub unsafe fn mremap_rw_shared(
    old: *mut c_void,
    old_size: usize,
    new_size: usize,
) -> Option<NonNull<c_void>> {
    // SAFETY: the caller owns the mapping and gives it up on success.
    let p = unsafe { libc::mremap(old, old_size, new_size, libc::MREMAP_MAYMOVE) };
    if p == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(p)
    }
}

// ---------------------------------------------------------------------------
// stdio

unsafe extern "C" {
    /// The C library's standard output stream.
    static mut stdout: *mut libc::FILE;
}

/// `fflush(stdout)` of the C library's stdio (not Rust's `std::io::stdout`).
pub fn flush_stdout() {
    // SAFETY: libc initialises `stdout` before our code runs; flushing it is what the C does.
    unsafe { libc::fflush(stdout) };
}

/// Probes for tests that check which descriptors a function closed (the
/// C-ABI tests, built without the kernel feature).
#[cfg(all(test, not(feature = "kernel")))]
pub(crate) mod fd_probe {
    use nix::errno::Errno;
    use std::os::fd::RawFd;

    /// The identity (device, inode) of the file `fd` is open on.
    pub fn identity(fd: RawFd) -> (u64, u64) {
        let st = super::stat_fd(fd).unwrap();
        (st.st_dev, st.st_ino)
    }

    /// Whether `fd` no longer refers to the file `id` (closed, or reused
    /// by another test for something else).
    pub fn closed(fd: RawFd, id: (u64, u64)) -> bool {
        match super::stat_fd(fd) {
            Err(Errno::EBADF) => true,
            Ok(st) => (st.st_dev, st.st_ino) != id,
            Err(e) => panic!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests;
