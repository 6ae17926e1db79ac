// SPDX-License-Identifier: GPL-2.0
//! The host half of hostfs, the guest's view of a host directory tree: the
//! safe core behind [`crate::abi::fs_hostfs::hostfs_user`], which replaces
//! `fs/hostfs/hostfs_user.c`. The kernel half (`hostfs_kern.c`) turns each
//! VFS operation into one of these calls, on a host path it builds from the
//! dentry or on the host descriptor it keeps per inode.
//!
//! Conventions, those of [`crate::host::file`]:
//!
//! * Errors are the host's [`Errno`]. Nothing is retried on `EINTR`:
//!   `hostfs_user.c` retries nothing.
//! * Each function makes the C library call the C made (or the same system
//!   call through nix), with the same arguments, so paths resolve the same
//!   way (symbolic links followed or not, as there).
//! * Nothing here allocates. Paths are `&CStr`s handed to the C library
//!   untouched; a directory stream is the C library's own `DIR`, which the C
//!   library allocates in `opendir` and frees in `closedir`, so the
//!   kernel's wrapped `malloc`/`free` never see it.
//!
//! These functions let the host resolve whole paths, as the C does: that
//! is what runs without a `hostfs=` prefix. Below a prefix the kernel half
//! uses [`beneath`] instead, which resolves the part of each path below
//! the prefix itself, never following a symbolic link.

use core::ffi::{CStr, c_char, c_int, c_long, c_uint, c_void};
use core::mem::{ManuallyDrop, MaybeUninit};
use core::ptr::NonNull;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::RenameFlags;

use super::file::{self, Result};

unsafe extern "C" {
    /// [seekdir(3)](https://man7.org/linux/man-pages/man3/seekdir.3.html)
    /// of the C library (the libc crate does not declare it for glibc).
    fn seekdir(dirp: *mut libc::DIR, loc: c_long);
    /// [futimes(3)](https://man7.org/linux/man-pages/man3/futimes.3.html)
    /// of the C library (the libc crate does not declare it for glibc).
    fn futimes(fd: c_int, times: *const libc::timeval) -> c_int;
}

// ---------------------------------------------------------------------------
// stat

/// What [`stat`] asks `statx` for: the basic stats and the birth time.
pub const STATX_MASK: c_uint = libc::STATX_BASIC_STATS | libc::STATX_BTIME;

/// [statx(2)](https://man7.org/linux/man-pages/man2/statx.2.html) of the
/// open file `fd` when `fd >= 0` (then `path` is not used), else of `path`
/// (relative paths resolve against `fd` as a directory descriptor, as in
/// the C, which passes its negative `fd` on: so relative only with
/// `AT_FDCWD`, `EBADF` with -1). A final symbolic link is not followed.
/// `None` for a needed path is `EFAULT`, the host's answer to the C's NULL.
pub fn stat(path: Option<&CStr>, fd: RawFd) -> Result<libc::statx> {
    let (path, flags) = if fd >= 0 {
        (c"", libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH)
    } else {
        (path.ok_or(Errno::EFAULT)?, libc::AT_SYMLINK_NOFOLLOW)
    };
    let mut stx = MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `path` is NUL-terminated; `stx` is writable and as large as
    // the kernel's struct statx.
    Errno::result(unsafe { libc::statx(fd, path.as_ptr(), flags, STATX_MASK, stx.as_mut_ptr()) })?;
    // SAFETY: zeroed, then filled by a successful statx.
    Ok(unsafe { stx.assume_init() })
}

// ---------------------------------------------------------------------------
// access, open, create

/// [access(2)](https://man7.org/linux/man-pages/man2/access.2.html) for
/// reading, writing and executing as asked; with none of them, whether the
/// file exists (`F_OK`).
pub fn access(path: &CStr, r: bool, w: bool, x: bool) -> Result<()> {
    file::access(path, access_mode(r, w, x))
}

/// The `access(2)` mode for reading, writing and executing as asked;
/// `F_OK` with none of them.
fn access_mode(r: bool, w: bool, x: bool) -> c_int {
    let mut amode = libc::F_OK;
    if r {
        amode = libc::R_OK;
    }
    if w {
        amode |= libc::W_OK;
    }
    if x {
        amode |= libc::X_OK;
    }
    amode
}

/// Opens `path` for reading (`r`), writing (`w`) or both, appending with
/// `append`: [open64(2)](https://man7.org/linux/man-pages/man2/open.2.html),
/// without `O_CREAT` and not close-on-exec. Neither `r` nor `w` is a bug
/// of the caller: the kernel panics, as in C.
pub fn open(path: &CStr, r: bool, w: bool, append: bool) -> Result<OwnedFd> {
    file::open(path, open_flags(r, w, append), 0, false)
}

/// The `open` flags of [`open`]; neither `r` nor `w` panics the kernel.
fn open_flags(r: bool, w: bool, append: bool) -> c_int {
    let mut oflag = match (r, w) {
        (true, false) => libc::O_RDONLY,
        (false, true) => libc::O_WRONLY,
        (true, true) => libc::O_RDWR,
        (false, false) => crate::kernel::fatal("Impossible mode in open_file"),
    };
    if append {
        oflag |= libc::O_APPEND;
    }
    oflag
}

/// Creates (or opens, if it exists) `path` read-write with permission bits
/// `mode`: `open64(path, O_CREAT | O_RDWR, mode)`, not close-on-exec.
pub fn create(path: &CStr, mode: c_int) -> Result<OwnedFd> {
    file::open(path, libc::O_CREAT | libc::O_RDWR, mode, false)
}

// ---------------------------------------------------------------------------
// directories

/// A directory stream of the C library
/// ([opendir(3)](https://man7.org/linux/man-pages/man3/opendir.3.html)),
/// closed on drop. Its positions are the host filesystem's directory
/// cookies (`d_off`), which stay valid across streams of the same
/// directory.
#[derive(Debug)]
pub struct Dir(NonNull<libc::DIR>);

/// One entry [`Dir::read`] returned. It borrows the stream's buffer: the
/// next read, seek or close of the stream ends it.
#[derive(Clone, Copy, Debug)]
pub struct DirEntry<'a> {
    /// The name; for the kernel half, `name.as_ptr()` is the C's
    /// `ent->d_name`.
    pub name: &'a CStr,
    /// `d_ino`.
    pub ino: u64,
    /// `d_type`: a `DT_*` value, `DT_UNKNOWN` where the filesystem does
    /// not tell.
    pub kind: u8,
    /// `d_off`: the position of the next entry, for [`Dir::seek`].
    pub next: u64,
}

impl Dir {
    /// Opens the directory `path`.
    pub fn open(path: &CStr) -> Result<Self> {
        // SAFETY: `path` is NUL-terminated.
        let dir = unsafe { libc::opendir(path.as_ptr()) };
        NonNull::new(dir).map(Self).ok_or_else(Errno::last)
    }

    /// A stream over the open directory `fd`
    /// ([fdopendir(3)](https://man7.org/linux/man-pages/man3/fdopendir.3.html)),
    /// which then owns it; on failure `fd` is closed.
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        // SAFETY: `fd` is an open descriptor; on success the stream owns
        // it (closedir closes it), so it is released from `fd` below.
        let dir = unsafe { libc::fdopendir(fd.as_raw_fd()) };
        let dir = NonNull::new(dir).ok_or_else(Errno::last)?;
        let _ = fd.into_raw_fd();
        Ok(Self(dir))
    }

    /// Moves to `pos`, a [`DirEntry::next`] of this directory or 0 (the
    /// start): `seekdir(3)`, with the position converted to `long` as in C.
    pub fn seek(&mut self, pos: u64) {
        // SAFETY: `self.0` is an open stream; seekdir takes any position.
        unsafe { seekdir(self.0.as_ptr(), pos as c_long) };
    }

    /// The next entry (`readdir64(3)`), `.` and `..` included; `None` at
    /// the end or on an error, which the C does not tell apart either.
    pub fn read(&mut self) -> Option<DirEntry<'_>> {
        // SAFETY: `self.0` is an open stream.
        let ent = NonNull::new(unsafe { libc::readdir64(self.0.as_ptr()) })?;
        // SAFETY: readdir64 returned an entry in the stream's buffer, which
        // stays valid until the stream is read, moved or closed again: all
        // of these need `&mut self`, which the returned borrow holds.
        let ent = unsafe { ent.as_ref() };
        Some(DirEntry {
            // SAFETY: d_name is NUL-terminated within the entry.
            name: unsafe { CStr::from_ptr(ent.d_name.as_ptr()) },
            ino: ent.d_ino,
            kind: ent.d_type,
            next: ent.d_off as u64,
        })
    }

    /// The stream as the C library's `DIR *`, for the kernel half to hold.
    pub fn into_raw(self) -> NonNull<libc::DIR> {
        ManuallyDrop::new(self).0
    }

    /// Takes a stream back from [`Dir::into_raw`].
    ///
    /// # Safety
    ///
    /// `dir` came from [`Dir::into_raw`] and has not been closed; the
    /// result is its only owner (use `ManuallyDrop` to borrow it).
    pub unsafe fn from_raw(dir: NonNull<libc::DIR>) -> Self {
        Self(dir)
    }
}

impl Drop for Dir {
    /// [closedir(3)](https://man7.org/linux/man-pages/man3/closedir.3.html),
    /// ignoring any error as the C does.
    fn drop(&mut self) {
        // SAFETY: we own the open stream and never use it again.
        unsafe { libc::closedir(self.0.as_ptr()) };
    }
}

// ---------------------------------------------------------------------------
// I/O on a descriptor

/// Reads up to `len` bytes at `*offset` into `buf`
/// ([pread64(2)](https://man7.org/linux/man-pages/man2/pread.2.html)) and
/// advances `*offset` by the count read.
///
/// # Safety
///
/// As [`file::pread_raw`].
pub unsafe fn read_at(fd: RawFd, buf: *mut c_void, len: usize, offset: &mut u64) -> Result<usize> {
    // SAFETY: forwarded caller guarantee.
    let n = unsafe { file::pread_raw(fd, buf, len, *offset) }?;
    // The C's unsigned long long arithmetic.
    *offset = offset.wrapping_add(n as u64);
    Ok(n)
}

/// Writes `len` bytes of `buf` at `*offset`
/// ([pwrite64(2)](https://man7.org/linux/man-pages/man2/pwrite.2.html),
/// which writes at the end instead for a descriptor opened `O_APPEND`) and
/// advances `*offset` by the count written.
///
/// # Safety
///
/// As [`file::pwrite_raw`].
pub unsafe fn write_at(
    fd: RawFd,
    buf: *const c_void,
    len: usize,
    offset: &mut u64,
) -> Result<usize> {
    // SAFETY: forwarded caller guarantee.
    let n = unsafe { file::pwrite_raw(fd, buf, len, *offset) }?;
    *offset = offset.wrapping_add(n as u64);
    Ok(n)
}

/// [lseek64(2)](https://man7.org/linux/man-pages/man2/lseek.2.html): the
/// new offset.
pub fn seek(fd: RawFd, offset: i64, whence: c_int) -> Result<u64> {
    // SAFETY: no memory arguments.
    Errno::result(unsafe { libc::lseek64(fd, offset, whence) }).map(|o| o as u64)
}

/// [fdatasync(2)](https://man7.org/linux/man-pages/man2/fdatasync.2.html)
/// with `datasync`, else
/// [fsync(2)](https://man7.org/linux/man-pages/man2/fsync.2.html).
pub fn sync(fd: RawFd, datasync: bool) -> Result<()> {
    if datasync {
        file::fdatasync(fd)
    } else {
        file::fsync(fd)
    }
}

/// Makes `fd` refer to the file `oldfd` refers to, closing what `fd`
/// referred to: [dup2(2)](https://man7.org/linux/man-pages/man2/dup2.2.html).
/// Returns `fd`.
pub fn replace(oldfd: RawFd, fd: RawFd) -> Result<RawFd> {
    nix::unistd::dup2(oldfd, fd)
}

// ---------------------------------------------------------------------------
// attributes

/// A time as `struct hostfs_timespec` holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: i64,
}

impl Timespec {
    /// A statx time.
    pub fn from_statx(t: &libc::statx_timestamp) -> Self {
        Self {
            sec: t.tv_sec,
            nsec: t.tv_nsec.into(),
        }
    }

    /// The `timeval` the C builds for `utimes`: the nanoseconds truncated
    /// to microseconds, out-of-range values passed on for the host to
    /// refuse (`EINVAL`).
    fn to_timeval(self) -> libc::timeval {
        libc::timeval {
            tv_sec: self.sec as libc::time_t,
            tv_usec: (self.nsec / 1000) as libc::suseconds_t,
        }
    }
}

/// What [`set_attr`] changes: each field is one `HOSTFS_ATTR_*` bit of
/// `struct hostfs_iattr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    /// `HOSTFS_ATTR_MODE`: the new permission bits.
    pub mode: Option<u16>,
    /// `HOSTFS_ATTR_UID`: the new owner.
    pub uid: Option<u32>,
    /// `HOSTFS_ATTR_GID`: the new group.
    pub gid: Option<u32>,
    /// `HOSTFS_ATTR_SIZE`: the new size.
    pub size: Option<i64>,
    /// `HOSTFS_ATTR_ATIME_SET`: the new access time.
    pub atime: Option<Timespec>,
    /// `HOSTFS_ATTR_MTIME_SET`: the new modification time.
    pub mtime: Option<Timespec>,
    /// `HOSTFS_ATTR_ATIME` or `HOSTFS_ATTR_MTIME`: read the access and
    /// modification times back at the end.
    pub read_times: bool,
}

/// The file [`set_attr`] changes, one method per step: the open file or
/// the path of [`set_attr`], or a file resolved beneath the prefix
/// ([`beneath`]).
trait AttrTarget {
    /// Sets the permission bits.
    fn chmod(&self, mode: libc::mode_t) -> Result<()>;
    /// Sets the owner and the group; [`UNCHANGED`] leaves one alone.
    fn chown(&self, uid: u32, gid: u32) -> Result<()>;
    /// Sets the size.
    fn truncate(&self, size: i64) -> Result<()>;
    /// Sets the access and the modification time, in microseconds.
    fn utimes(&self, times: &[libc::timeval; 2]) -> Result<()>;
    /// [`stat`] of the file.
    fn stat(&self) -> Result<libc::statx>;
}

/// The open file `fd` when `fd >= 0`, else `path` (`EFAULT` without a path,
/// the host's answer to the C's NULL): what the C's `set_attr` works on.
struct FdOrPath<'a> {
    path: Option<&'a CStr>,
    fd: RawFd,
}

impl FdOrPath<'_> {
    /// One step: `by_fd(fd)` when `fd >= 0`, else `by_path(path)`. Each
    /// returns the C library's 0 or -1.
    fn step(
        &self,
        by_fd: impl FnOnce(RawFd) -> c_int,
        by_path: impl FnOnce(&CStr) -> c_int,
    ) -> Result<()> {
        let r = if self.fd >= 0 {
            by_fd(self.fd)
        } else {
            by_path(self.path.ok_or(Errno::EFAULT)?)
        };
        Errno::result(r).map(drop)
    }
}

impl AttrTarget for FdOrPath<'_> {
    fn chmod(&self, mode: libc::mode_t) -> Result<()> {
        self.step(
            // SAFETY: no memory arguments.
            |fd| unsafe { libc::fchmod(fd, mode) },
            // SAFETY: the path is NUL-terminated.
            |p| unsafe { libc::chmod(p.as_ptr(), mode) },
        )
    }

    fn chown(&self, uid: u32, gid: u32) -> Result<()> {
        self.step(
            // SAFETY: no memory arguments.
            |fd| unsafe { libc::fchown(fd, uid, gid) },
            // SAFETY: the path is NUL-terminated.
            |p| unsafe { libc::chown(p.as_ptr(), uid, gid) },
        )
    }

    fn truncate(&self, size: i64) -> Result<()> {
        self.step(
            // SAFETY: no memory arguments.
            |fd| unsafe { libc::ftruncate64(fd, size) },
            // SAFETY: the path is NUL-terminated.
            |p| unsafe { libc::truncate64(p.as_ptr(), size) },
        )
    }

    fn utimes(&self, times: &[libc::timeval; 2]) -> Result<()> {
        self.step(
            // SAFETY: `times` holds the two timevals futimes reads.
            |fd| unsafe { futimes(fd, times.as_ptr()) },
            // SAFETY: the path is NUL-terminated; `times` holds two timevals.
            |p| unsafe { libc::utimes(p.as_ptr(), times.as_ptr()) },
        )
    }

    fn stat(&self) -> Result<libc::statx> {
        stat(self.path, self.fd)
    }
}

/// `(uid_t)-1`, `(gid_t)-1`: `chown` leaves that one alone.
const UNCHANGED: u32 = u32::MAX;

/// Changes the attributes of the open file `fd` when `fd >= 0`, else of
/// `path`, in the C's order, stopping at the first failure (the changes
/// before it stay made):
///
/// 1. the mode (`fchmod`/`chmod`), then the owner and the group, each by
///    its own `fchown`/`chown` with the other left alone;
/// 2. the size (`ftruncate64`/`truncate64`);
/// 3. if a new access or modification time is given, both times through
///    `futimes`/`utimes`, in microseconds. The C has no `UTIME_OMIT`: the
///    time not given is read by [`stat`] and set again, truncated to the
///    microsecond. Nor `UTIME_NOW`: the kernel half always passes times,
///    and without `*_SET` bits no time is written at all;
/// 4. with `read_times`, the access and modification times now on the
///    host, read by [`stat`] and returned.
///
/// By path, `chmod`, `chown`, `truncate` and `utimes` follow a final
/// symbolic link while [`stat`] does not, exactly as in C.
pub fn set_attr(
    path: Option<&CStr>,
    fd: RawFd,
    attrs: &Attrs,
) -> Result<Option<(Timespec, Timespec)>> {
    apply_attrs(&FdOrPath { path, fd }, attrs)
}

/// The steps of [`set_attr`] on `target`.
fn apply_attrs(target: &impl AttrTarget, attrs: &Attrs) -> Result<Option<(Timespec, Timespec)>> {
    if let Some(mode) = attrs.mode {
        target.chmod(libc::mode_t::from(mode))?;
    }
    for (uid, gid) in [
        attrs.uid.map(|uid| (uid, UNCHANGED)),
        attrs.gid.map(|gid| (UNCHANGED, gid)),
    ]
    .into_iter()
    .flatten()
    {
        target.chown(uid, gid)?;
    }
    if let Some(size) = attrs.size {
        target.truncate(size)?;
    }
    if attrs.atime.is_some() || attrs.mtime.is_some() {
        let st = target.stat()?;
        let atime = attrs
            .atime
            .unwrap_or_else(|| Timespec::from_statx(&st.stx_atime));
        let mtime = attrs
            .mtime
            .unwrap_or_else(|| Timespec::from_statx(&st.stx_mtime));
        target.utimes(&[atime.to_timeval(), mtime.to_timeval()])?;
    }
    if attrs.read_times {
        let st = target.stat()?;
        return Ok(Some((
            Timespec::from_statx(&st.stx_atime),
            Timespec::from_statx(&st.stx_mtime),
        )));
    }
    Ok(None)
}

// ---------------------------------------------------------------------------
// names

/// Makes `linkpath` a symbolic link to `target`:
/// [symlink(2)](https://man7.org/linux/man-pages/man2/symlink.2.html).
pub fn symlink(target: &CStr, linkpath: &CStr) -> Result<()> {
    // SAFETY: both paths are NUL-terminated.
    Errno::result(unsafe { libc::symlink(target.as_ptr(), linkpath.as_ptr()) }).map(drop)
}

/// [unlink(2)](https://man7.org/linux/man-pages/man2/unlink.2.html).
pub fn unlink(path: &CStr) -> Result<()> {
    // SAFETY: `path` is NUL-terminated.
    Errno::result(unsafe { libc::unlink(path.as_ptr()) }).map(drop)
}

/// [mkdir(2)](https://man7.org/linux/man-pages/man2/mkdir.2.html), `mode`
/// converted to `mode_t` as in C (and masked by the umask by the host).
pub fn mkdir(path: &CStr, mode: c_int) -> Result<()> {
    // SAFETY: `path` is NUL-terminated.
    Errno::result(unsafe { libc::mkdir(path.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// [rmdir(2)](https://man7.org/linux/man-pages/man2/rmdir.2.html).
pub fn rmdir(path: &CStr) -> Result<()> {
    // SAFETY: `path` is NUL-terminated.
    Errno::result(unsafe { libc::rmdir(path.as_ptr()) }).map(drop)
}

/// [mknod(2)](https://man7.org/linux/man-pages/man2/mknod.2.html) of a
/// file of type and permissions `mode`, with device number
/// `major`:`minor` (glibc's encoding, [`file::makedev`], as the C's
/// `os_makedev`).
pub fn mknod(path: &CStr, mode: c_int, major: c_uint, minor: c_uint) -> Result<()> {
    let dev = file::makedev(major, minor);
    // SAFETY: `path` is NUL-terminated.
    Errno::result(unsafe { libc::mknod(path.as_ptr(), mode as libc::mode_t, dev) }).map(drop)
}

/// Makes `newpath` a hard link to `oldpath`:
/// [link(2)](https://man7.org/linux/man-pages/man2/link.2.html) (a
/// symbolic link `oldpath` is linked itself, not followed).
pub fn link(oldpath: &CStr, newpath: &CStr) -> Result<()> {
    // SAFETY: both paths are NUL-terminated.
    Errno::result(unsafe { libc::link(oldpath.as_ptr(), newpath.as_ptr()) }).map(drop)
}

/// [readlink(2)](https://man7.org/linux/man-pages/man2/readlink.2.html)
/// into `buf`: the length of the target (truncated to `buf`), not
/// NUL-terminated. An empty `buf` is `EINVAL`, as the host says.
pub fn readlink(path: &CStr, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    unsafe { readlink_raw(path, buf.as_mut_ptr().cast(), buf.len()) }
}

/// [`readlink`] into `size` bytes at `buf`.
///
/// # Safety
///
/// `buf` is valid for writes of `size` bytes.
pub unsafe fn readlink_raw(path: &CStr, buf: *mut c_char, size: usize) -> Result<usize> {
    // SAFETY: `path` is NUL-terminated; `buf` holds `size` bytes (caller guarantee).
    Errno::result(unsafe { libc::readlink(path.as_ptr(), buf, size) }).map(|n| n as usize)
}

/// [rename(2)](https://man7.org/linux/man-pages/man2/rename.2.html).
pub fn rename(from: &CStr, to: &CStr) -> Result<()> {
    // SAFETY: both paths are NUL-terminated.
    Errno::result(unsafe { libc::rename(from.as_ptr(), to.as_ptr()) }).map(drop)
}

/// [renameat2(2)](https://man7.org/linux/man-pages/man2/renameat2.2.html)
/// with `flags` (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`, ... passed on
/// unchecked, for the host to judge). A host without renameat2 (`ENOSYS`)
/// gives `EINVAL`, as in C: the caller asked for something the host cannot
/// do.
pub fn rename2(from: &CStr, to: &CStr, flags: c_uint) -> Result<()> {
    nix::fcntl::renameat2(None, from, None, to, RenameFlags::from_bits_retain(flags))
        .map_err(|e| if e == Errno::ENOSYS { Errno::EINVAL } else { e })
}

/// [statfs64(2)](https://man7.org/linux/man-pages/man2/statfs.2.html) of
/// the filesystem holding `path`.
pub fn statfs(path: &CStr) -> Result<libc::statfs64> {
    let mut buf = MaybeUninit::<libc::statfs64>::zeroed();
    // SAFETY: `path` is NUL-terminated; `buf` is writable.
    Errno::result(unsafe { libc::statfs64(path.as_ptr(), buf.as_mut_ptr()) })?;
    // SAFETY: zeroed, then filled by a successful statfs64.
    Ok(unsafe { buf.assume_init() })
}

pub mod beneath;

#[cfg(test)]
mod tests;
