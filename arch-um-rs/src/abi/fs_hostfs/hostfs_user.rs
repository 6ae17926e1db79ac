// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing `fs/hostfs/hostfs_user.c` (declared in
//! `fs/hostfs/hostfs.h`): the host file operations of hostfs, over
//! [`crate::host::hostfs`]. The kernel half (`hostfs_kern.c`) calls them
//! with host paths it builds from dentries (absolute, under the mount's
//! host root) and with the host descriptor it keeps per inode.
//!
//! Every function keeps the C's signature and return convention: 0 (or a
//! descriptor, a count) or a negative errno, except `replace_file`, which
//! returns what `dup2` returns (-1 with `errno` set on failure), and
//! `open_dir`, which returns NULL and the positive errno in `*err_out`.
//! Nothing is retried on `EINTR`, as in C. Nothing allocates: a directory
//! stream is the C library's `DIR`, opened and closed by the C library.
//!
//! Where the C misbehaved, this does the safe thing:
//!
//! * Where the C would dereference a NULL pointer argument: `-EFAULT` for
//!   the int functions; NULL (with `*err_out = EFAULT` where there is one)
//!   for `open_dir` and `read_dir`, which does not consume an entry; nothing
//!   for `seek_dir`, `close_dir` and `close_file`. A NULL path the C passed
//!   on to the host (which answers `EFAULT`) is `-EFAULT` here too, and a
//!   NULL path `stat_file` and `set_attr` do not use (with `fd >= 0`) is
//!   fine, as in C.
//! * `lseek_file` returns 0 whenever the seek succeeded: the C stored the
//!   new 64-bit offset in an `int` and, for offsets whose low 32 bits read
//!   negative (2 to 4 GiB, 6 to 8 GiB, ...), returned `-errno` with a stale
//!   `errno` for a seek that had succeeded.
//! * `do_statfs` with a negative `fsid_size` is `-EINVAL`: the C converted
//!   it to `size_t` and copied the whole 8-byte fsid into a buffer declared
//!   smaller than nothing.
//! * `set_attr` leaves `ia_atime` and `ia_mtime` alone when reading the
//!   times back fails: the C copied an uninitialised (or stale) stat there
//!   before returning the error, which the kernel half never reads.
//! * `open_dir` stores 0 in `*err_out` on success, where the C stored
//!   whatever `errno` held (the kernel half reads it only after a NULL).
//!
//! Kept as in C, on purpose: `stat_file` by path passes its negative `fd`
//! on as the directory descriptor (a relative path is `-EBADF` with -1);
//! `set_attr` sets times with microsecond `utimes`/`futimes`, re-setting
//! the time it was not given (no `UTIME_OMIT`, no `UTIME_NOW`), and by path
//! its `chmod`/`chown`/`truncate`/`utimes` follow a final symbolic link
//! while its `stat_file` does not; `read_dir` ends the listing on a read
//! error; `write_file` advances `*offset` by the count even in append mode;
//! `rename2_file` turns a host without renameat2 (`ENOSYS`) into `-EINVAL`;
//! `hostfs_do_readlink` NUL-terminates only when the target is shorter than
//! `size`.
//!
//! Below a `hostfs=` prefix (patch 0022: `hostfs_args()` passes it to
//! [`hostfs_set_prefix`]), every function that takes a path resolves it
//! with [`crate::host::hostfs::beneath::Prefix`] instead: the part below
//! the prefix beneath the prefix's directory, following no symbolic link,
//! so that a directory the guest holds, replaced by a link behind its
//! back, cannot lead out of the prefix. A final link is `-ELOOP` where the
//! C followed it (`access_file`, `open_file`, `file_create`, `open_dir`,
//! `do_statfs`, `set_attr` of the mode or the size) and the link itself
//! where it did not (`stat_file`, `hostfs_do_readlink`, `link_file`), or
//! where following it was wrong (`set_attr` of the owner or the times
//! only: the C changed the link's target); a path not below the prefix, or
//! with a `..` component below it, is `-EACCES`; and a prefix too long to
//! keep makes every path `-ENAMETOOLONG`. The functions that take a
//! descriptor (`stat_file` and `set_attr` with `fd >= 0`, and the I/O)
//! are the same with or without a prefix, and without a prefix
//! everything is as described above.

use core::ffi::{CStr, c_char, c_int, c_long, c_longlong, c_uint, c_ulonglong, c_ushort, c_void};
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use std::os::fd::IntoRawFd;

use nix::errno::Errno;

use crate::host::file;
use crate::host::hostfs::beneath::Prefix;
use crate::host::hostfs::{self, Attrs, Dir, Timespec};
use crate::host::util::{HostCell, ShowBytes};

/// `HOSTFS_ATTR_*` (hostfs.h): the bits of `struct hostfs_iattr`'s
/// `ia_valid`, the kernel's `ATTR_*` under other names.
pub const HOSTFS_ATTR_MODE: c_uint = 1;
pub const HOSTFS_ATTR_UID: c_uint = 2;
pub const HOSTFS_ATTR_GID: c_uint = 4;
pub const HOSTFS_ATTR_SIZE: c_uint = 8;
pub const HOSTFS_ATTR_ATIME: c_uint = 16;
pub const HOSTFS_ATTR_MTIME: c_uint = 32;
/// Passed by the kernel half, ignored here as in C (the host sets ctime).
pub const HOSTFS_ATTR_CTIME: c_uint = 64;
pub const HOSTFS_ATTR_ATIME_SET: c_uint = 128;
pub const HOSTFS_ATTR_MTIME_SET: c_uint = 256;
/// Unused by hostfs.
pub const HOSTFS_ATTR_FORCE: c_uint = 512;
/// Unused by hostfs.
pub const HOSTFS_ATTR_ATTR_FLAG: c_uint = 1024;

/// `struct hostfs_timespec`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostfsTimespec {
    pub tv_sec: c_longlong,
    pub tv_nsec: c_longlong,
}

/// `struct hostfs_iattr`: what `set_attr` changes. Only the fields whose
/// bit is set in `ia_valid` are initialised by the kernel half.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostfsIattr {
    pub ia_valid: c_uint,
    pub ia_mode: c_ushort,
    pub ia_uid: libc::uid_t,
    pub ia_gid: libc::gid_t,
    /// `loff_t`.
    pub ia_size: i64,
    pub ia_atime: HostfsTimespec,
    pub ia_mtime: HostfsTimespec,
    pub ia_ctime: HostfsTimespec,
}

/// The anonymous `struct { unsigned int maj, min; }` of `rdev` and `dev`
/// in `struct hostfs_stat`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostfsDevNum {
    pub maj: c_uint,
    pub min: c_uint,
}

/// `struct hostfs_stat`: what `stat_file` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostfsStat {
    pub ino: c_ulonglong,
    pub mode: c_uint,
    pub nlink: c_uint,
    pub uid: c_uint,
    pub gid: c_uint,
    pub size: c_ulonglong,
    pub atime: HostfsTimespec,
    pub mtime: HostfsTimespec,
    pub ctime: HostfsTimespec,
    pub btime: HostfsTimespec,
    pub blksize: c_uint,
    pub blocks: c_ulonglong,
    pub rdev: HostfsDevNum,
    pub dev: HostfsDevNum,
}

impl From<Timespec> for HostfsTimespec {
    fn from(t: Timespec) -> Self {
        Self {
            tv_sec: t.sec,
            tv_nsec: t.nsec,
        }
    }
}

impl From<HostfsTimespec> for Timespec {
    fn from(t: HostfsTimespec) -> Self {
        Self {
            sec: t.tv_sec,
            nsec: t.tv_nsec,
        }
    }
}

/// The C's `statx_to_hostfs`: the birth time only if the host reported
/// one, else zero.
fn statx_to_hostfs(stx: &libc::statx) -> HostfsStat {
    let ts = |t: &libc::statx_timestamp| HostfsTimespec::from(Timespec::from_statx(t));
    HostfsStat {
        ino: stx.stx_ino,
        mode: stx.stx_mode.into(),
        nlink: stx.stx_nlink,
        uid: stx.stx_uid,
        gid: stx.stx_gid,
        size: stx.stx_size,
        atime: ts(&stx.stx_atime),
        mtime: ts(&stx.stx_mtime),
        ctime: ts(&stx.stx_ctime),
        btime: if stx.stx_mask & libc::STATX_BTIME != 0 {
            ts(&stx.stx_btime)
        } else {
            HostfsTimespec::default()
        },
        blksize: stx.stx_blksize,
        blocks: stx.stx_blocks,
        rdev: HostfsDevNum {
            maj: stx.stx_rdev_major,
            min: stx.stx_rdev_minor,
        },
        dev: HostfsDevNum {
            maj: stx.stx_dev_major,
            min: stx.stx_dev_minor,
        },
    }
}

/// The `hostfs=` prefix. Written only by [`hostfs_set_prefix`], while the
/// command line is parsed on UML's single host thread and before any hostfs
/// operation; only read (its descriptor cache is atomic) afterwards.
static PREFIX: HostCell<Prefix> = HostCell::new(Prefix::new());

/// The `hostfs=` prefix, if one was set.
fn prefix() -> Option<&'static Prefix> {
    // SAFETY: shared reads only: the one writer, hostfs_set_prefix, runs
    // before any operation reads it (see PREFIX).
    let p = unsafe { &*PREFIX.as_ptr() };
    p.is_set().then_some(p)
}

/// `void hostfs_set_prefix(const char *prefix)` (patch 0022): the
/// `hostfs=` prefix, empty (or NULL) for none; each call replaces the
/// last. From then on every path below it is resolved beneath it. It is
/// copied into a static buffer (the kernel allocator is not up yet); one
/// of `PATH_MAX` bytes or more cannot be kept, and is reported on stderr:
/// every hostfs path then fails with `-ENAMETOOLONG`, rather than the
/// prefix being dropped.
///
/// # Safety
///
/// `prefix` is NULL or a C string. Called only while the command line is
/// parsed (`hostfs_args()`), before any other hostfs function.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn hostfs_set_prefix(prefix: *const c_char) {
    // SAFETY: caller guarantee.
    let text = unsafe { cstr_arg(prefix) }.unwrap_or(c"");
    // SAFETY: command-line parsing, on the one host thread, before any
    // hostfs operation reads PREFIX (our contract).
    if unsafe { PREFIX.with(|p| p.set(text)) }.is_err() {
        let msg = crate::kernel::stack_format(format_args!(
            "hostfs: the hostfs= prefix is {} bytes long, more than the {} kept; every hostfs \
             path will fail with ENAMETOOLONG (the prefix starts with \"{}\")\n",
            text.to_bytes().len(),
            hostfs::beneath::PREFIX_BUF - 1,
            ShowBytes(&text.to_bytes()[..text.to_bytes().len().min(64)]),
        ));
        crate::kernel::write_stderr(msg.as_bytes());
    }
}

fn neg(e: Errno) -> c_int {
    -(e as c_int)
}

/// 0 or the negative errno.
fn status(r: file::Result<()>) -> c_int {
    r.map_or_else(neg, |()| 0)
}

/// A C string argument, `None` if NULL.
///
/// # Safety
///
/// `p` is NULL or points to a NUL-terminated string live for `'a`.
unsafe fn cstr_arg<'a>(p: *const c_char) -> Option<&'a CStr> {
    // SAFETY: non-NULL, so NUL-terminated by the caller's guarantee.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) })
}

/// `int stat_file(const char *path, struct hostfs_stat *p, int fd)`: the
/// attributes of the open file `fd` when `fd >= 0` (`path` unused), else
/// of `path`, without following a final symbolic link (statx). 0 or the
/// negative errno.
///
/// # Safety
///
/// `path` is NULL or a C string; `p` is NULL or writable.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn stat_file(path: *const c_char, p: *mut HostfsStat, fd: c_int) -> c_int {
    if p.is_null() {
        return neg(Errno::EFAULT);
    }
    // SAFETY: caller guarantee.
    let path = unsafe { cstr_arg(path) };
    let r = match prefix() {
        Some(pre) if fd < 0 => path.ok_or(Errno::EFAULT).and_then(|path| pre.stat(path)),
        _ => hostfs::stat(path, fd),
    };
    match r {
        Ok(stx) => {
            // SAFETY: non-NULL, so writable by our contract.
            unsafe { p.write(statx_to_hostfs(&stx)) };
            0
        }
        Err(e) => neg(e),
    }
}

/// `int access_file(char *path, int r, int w, int x)`: access(2) for each
/// non-zero flag (`F_OK` with none). 0 or the negative errno.
///
/// # Safety
///
/// `path` is NULL or a C string.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn access_file(path: *mut c_char, r: c_int, w: c_int, x: c_int) -> c_int {
    // SAFETY: caller guarantee.
    let Some(path) = (unsafe { cstr_arg(path) }) else {
        return neg(Errno::EFAULT);
    };
    let (r, w, x) = (r != 0, w != 0, x != 0);
    status(match prefix() {
        Some(pre) => pre.access(path, r, w, x),
        None => hostfs::access(path, r, w, x),
    })
}

/// `int open_file(char *path, int r, int w, int append)`: a descriptor
/// open for reading and/or writing (`O_APPEND` with `append`), or the
/// negative errno. Neither `r` nor `w` panics the kernel, as in C.
///
/// # Safety
///
/// `path` is NULL or a C string.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn open_file(path: *mut c_char, r: c_int, w: c_int, append: c_int) -> c_int {
    // SAFETY: caller guarantee.
    let Some(path) = (unsafe { cstr_arg(path) }) else {
        return neg(Errno::EFAULT);
    };
    let (r, w, append) = (r != 0, w != 0, append != 0);
    match prefix() {
        Some(pre) => pre.open(path, r, w, append),
        None => hostfs::open(path, r, w, append),
    }
    .map_or_else(neg, IntoRawFd::into_raw_fd)
}

/// `void *open_dir(char *path, int *err_out)`: a directory stream, or NULL
/// with the (positive) errno in `*err_out`.
///
/// # Safety
///
/// `path` is NULL or a C string; `err_out` is NULL or writable.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn open_dir(path: *mut c_char, err_out: *mut c_int) -> *mut c_void {
    if err_out.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: caller guarantee.
    let r = match unsafe { cstr_arg(path) } {
        Some(path) => match prefix() {
            Some(pre) => pre.open_dir(path),
            None => Dir::open(path),
        },
        None => Err(Errno::EFAULT),
    };
    let (dir, err) = match r {
        Ok(dir) => (dir.into_raw().as_ptr().cast(), 0),
        Err(e) => (core::ptr::null_mut(), e as c_int),
    };
    // SAFETY: non-NULL, so writable by our contract.
    unsafe { err_out.write(err) };
    dir
}

/// The stream `open_dir` returned, borrowed: never closed by dropping.
///
/// # Safety
///
/// `stream` is NULL or a stream from `open_dir` not yet closed.
unsafe fn borrow_dir(stream: *mut c_void) -> Option<ManuallyDrop<Dir>> {
    let dir = NonNull::new(stream.cast::<libc::DIR>())?;
    // SAFETY: an open stream from Dir::into_raw (caller guarantee); the
    // ManuallyDrop keeps it open.
    Some(ManuallyDrop::new(unsafe { Dir::from_raw(dir) }))
}

/// `void seek_dir(void *stream, unsigned long long pos)`: seekdir(3) to a
/// position `read_dir` returned (or 0).
///
/// # Safety
///
/// `stream` is NULL (ignored) or from `open_dir` and not yet closed.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn seek_dir(stream: *mut c_void, pos: c_ulonglong) {
    // SAFETY: forwarded caller guarantee.
    if let Some(mut dir) = unsafe { borrow_dir(stream) } {
        dir.seek(pos);
    }
}

/// `char *read_dir(void *stream, unsigned long long *pos_out, unsigned
/// long long *ino_out, int *len_out, unsigned int *type_out)`: the name of
/// the next entry (valid until the stream is next read, moved or closed),
/// with the position after it (`d_off`), its inode number, the name's
/// length and its `d_type`; NULL at the end or on an error.
///
/// # Safety
///
/// `stream` is NULL or from `open_dir` and not yet closed; the `*_out`
/// pointers are NULL or writable.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn read_dir(
    stream: *mut c_void,
    pos_out: *mut c_ulonglong,
    ino_out: *mut c_ulonglong,
    len_out: *mut c_int,
    type_out: *mut c_uint,
) -> *mut c_char {
    if pos_out.is_null() || ino_out.is_null() || len_out.is_null() || type_out.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: forwarded caller guarantee.
    let Some(mut dir) = (unsafe { borrow_dir(stream) }) else {
        return core::ptr::null_mut();
    };
    let Some(ent) = dir.read() else {
        return core::ptr::null_mut();
    };
    // SAFETY: all four checked non-NULL above, writable by our contract.
    unsafe {
        len_out.write(ent.name.to_bytes().len() as c_int);
        ino_out.write(ent.ino);
        type_out.write(ent.kind.into());
        pos_out.write(ent.next);
    }
    // The name stays in the stream's buffer, which the borrow (dropped
    // here without closing) does not own.
    ent.name.as_ptr().cast_mut()
}

/// `int read_file(int fd, unsigned long long *offset, char *buf, int
/// len)`: pread64 of up to `len` bytes at `*offset`, which advances by the
/// count read; the count or the negative errno. A negative `len` is
/// widened to `size_t` as in C, and so refused by the host.
///
/// # Safety
///
/// `offset` is NULL or valid for reads and writes; `buf` is valid for
/// writes of `len` bytes.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn read_file(
    fd: c_int,
    offset: *mut c_ulonglong,
    buf: *mut c_char,
    len: c_int,
) -> c_int {
    // SAFETY: NULL or valid for reads and writes (caller guarantee).
    let Some(offset) = (unsafe { offset.as_mut() }) else {
        return neg(Errno::EFAULT);
    };
    // SAFETY: forwarded caller guarantee.
    unsafe { hostfs::read_at(fd, buf.cast(), len as usize, offset) }
        .map_or_else(neg, |n| n as c_int)
}

/// `int write_file(int fd, unsigned long long *offset, const char *buf,
/// int len)`: pwrite64 of `len` bytes at `*offset` (at the end for a file
/// opened in append mode), which advances by the count written; the count
/// or the negative errno.
///
/// # Safety
///
/// `offset` is NULL or valid for reads and writes; `buf` is valid for
/// reads of `len` bytes.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn write_file(
    fd: c_int,
    offset: *mut c_ulonglong,
    buf: *const c_char,
    len: c_int,
) -> c_int {
    // SAFETY: NULL or valid for reads and writes (caller guarantee).
    let Some(offset) = (unsafe { offset.as_mut() }) else {
        return neg(Errno::EFAULT);
    };
    // SAFETY: forwarded caller guarantee.
    unsafe { hostfs::write_at(fd, buf.cast(), len as usize, offset) }
        .map_or_else(neg, |n| n as c_int)
}

/// `int lseek_file(int fd, long long offset, int whence)`: 0 or the
/// negative errno (the new offset is not returned, as in C).
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub extern "C" fn lseek_file(fd: c_int, offset: c_longlong, whence: c_int) -> c_int {
    status(hostfs::seek(fd, offset, whence).map(drop))
}

/// `int fsync_file(int fd, int datasync)`: fdatasync if `datasync`, else
/// fsync; 0 or the negative errno.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub extern "C" fn fsync_file(fd: c_int, datasync: c_int) -> c_int {
    status(hostfs::sync(fd, datasync != 0))
}

/// `int replace_file(int oldfd, int fd)`: dup2(oldfd, fd): `fd`, or -1
/// with `errno` set (not a negative errno: the C returned dup2's result).
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub extern "C" fn replace_file(oldfd: c_int, fd: c_int) -> c_int {
    hostfs::replace(oldfd, fd).unwrap_or_else(|e| {
        e.set();
        -1
    })
}

/// `void close_file(void *stream)`: closes the descriptor `stream` points
/// to.
///
/// # Safety
///
/// `stream` is NULL (ignored) or points to an `int` descriptor the caller
/// owns and no longer uses.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn close_file(stream: *mut c_void) {
    if stream.is_null() {
        return;
    }
    // SAFETY: points to the descriptor (caller guarantee).
    let fd = unsafe { stream.cast::<c_int>().read() };
    // SAFETY: the caller owns `fd` and gives it up.
    unsafe { file::close_raw(fd) };
}

/// `void close_dir(void *stream)`: closedir(3).
///
/// # Safety
///
/// `stream` is NULL (ignored) or from `open_dir`, not used afterwards.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn close_dir(stream: *mut c_void) {
    if let Some(dir) = NonNull::new(stream.cast::<libc::DIR>()) {
        // SAFETY: an open stream from open_dir that the caller gives up;
        // dropping it closes it.
        drop(unsafe { Dir::from_raw(dir) });
    }
}

/// `int file_create(char *name, int mode)`: open64(name, O_CREAT |
/// O_RDWR, mode): the descriptor or the negative errno.
///
/// # Safety
///
/// `name` is NULL or a C string.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn file_create(name: *mut c_char, mode: c_int) -> c_int {
    // SAFETY: caller guarantee.
    let Some(name) = (unsafe { cstr_arg(name) }) else {
        return neg(Errno::EFAULT);
    };
    match prefix() {
        Some(pre) => pre.create(name, mode),
        None => hostfs::create(name, mode),
    }
    .map_or_else(neg, IntoRawFd::into_raw_fd)
}

/// The changes `*attrs` asks for.
///
/// # Safety
///
/// `attrs` points to a `struct hostfs_iattr` whose `ia_valid` and the
/// fields its bits select are initialised (the kernel half leaves the
/// others uninitialised, so they are never read).
unsafe fn read_iattr(attrs: *const HostfsIattr) -> Attrs {
    // SAFETY: `attrs` is readable and `ia_valid` initialised (our contract).
    let valid = unsafe { (&raw const (*attrs).ia_valid).read() };
    let set = |bit: c_uint| valid & bit != 0;
    // SAFETY: each field is read only when its bit is set, so it is
    // initialised (our contract).
    unsafe {
        Attrs {
            mode: set(HOSTFS_ATTR_MODE).then(|| (&raw const (*attrs).ia_mode).read()),
            uid: set(HOSTFS_ATTR_UID).then(|| (&raw const (*attrs).ia_uid).read()),
            gid: set(HOSTFS_ATTR_GID).then(|| (&raw const (*attrs).ia_gid).read()),
            size: set(HOSTFS_ATTR_SIZE).then(|| (&raw const (*attrs).ia_size).read()),
            atime: set(HOSTFS_ATTR_ATIME_SET).then(|| (&raw const (*attrs).ia_atime).read().into()),
            mtime: set(HOSTFS_ATTR_MTIME_SET).then(|| (&raw const (*attrs).ia_mtime).read().into()),
            read_times: set(HOSTFS_ATTR_ATIME | HOSTFS_ATTR_MTIME),
        }
    }
}

/// `int set_attr(const char *file, struct hostfs_iattr *attrs, int fd)`:
/// applies `*attrs` to the open file `fd` when `fd >= 0`, else to `file`
/// (see [`hostfs::set_attr`] for the order and the C's quirks kept); with
/// `HOSTFS_ATTR_ATIME` or `HOSTFS_ATTR_MTIME`, stores the host's access
/// and modification times in `ia_atime` and `ia_mtime`. 0 or the negative
/// errno of the first step that failed.
///
/// # Safety
///
/// `file` is NULL or a C string; `attrs` is NULL or points to a `struct
/// hostfs_iattr`, writable, whose fields selected by `ia_valid` are
/// initialised.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn set_attr(
    file: *const c_char,
    attrs: *mut HostfsIattr,
    fd: c_int,
) -> c_int {
    if attrs.is_null() {
        return neg(Errno::EFAULT);
    }
    // SAFETY: caller guarantee.
    let (file, wanted) = unsafe { (cstr_arg(file), read_iattr(attrs)) };
    let r = match prefix() {
        // Without a path: EFAULT only if there is something to do, as
        // hostfs::set_attr does.
        Some(pre) if fd < 0 => match file {
            Some(file) => pre.set_attr(file, &wanted),
            None if wanted == Attrs::default() => Ok(None),
            None => Err(Errno::EFAULT),
        },
        _ => hostfs::set_attr(file, fd, &wanted),
    };
    match r {
        Ok(Some((atime, mtime))) => {
            // SAFETY: non-NULL, so writable by our contract.
            unsafe {
                (&raw mut (*attrs).ia_atime).write(atime.into());
                (&raw mut (*attrs).ia_mtime).write(mtime.into());
            }
            0
        }
        Ok(None) => 0,
        Err(e) => neg(e),
    }
}

/// Two C string arguments, `None` if either is NULL.
///
/// # Safety
///
/// As [`cstr_arg`], for both.
unsafe fn cstr_args<'a>(a: *const c_char, b: *const c_char) -> Option<(&'a CStr, &'a CStr)> {
    // SAFETY: forwarded caller guarantee.
    unsafe { Some((cstr_arg(a)?, cstr_arg(b)?)) }
}

/// `int make_symlink(const char *from, const char *to)`: makes `from` a
/// symbolic link to `to` (symlink(to, from)). 0 or the negative errno.
///
/// # Safety
///
/// `from` and `to` are NULL or C strings.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn make_symlink(from: *const c_char, to: *const c_char) -> c_int {
    // SAFETY: caller guarantee.
    let Some((from, to)) = (unsafe { cstr_args(from, to) }) else {
        return neg(Errno::EFAULT);
    };
    status(match prefix() {
        Some(pre) => pre.symlink(to, from),
        None => hostfs::symlink(to, from),
    })
}

/// `int unlink_file(const char *file)`: 0 or the negative errno.
///
/// # Safety
///
/// `file` is NULL or a C string.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn unlink_file(file: *const c_char) -> c_int {
    // SAFETY: caller guarantee.
    let Some(file) = (unsafe { cstr_arg(file) }) else {
        return neg(Errno::EFAULT);
    };
    status(match prefix() {
        Some(pre) => pre.unlink(file),
        None => hostfs::unlink(file),
    })
}

/// `int do_mkdir(const char *file, int mode)`: 0 or the negative errno.
///
/// # Safety
///
/// `file` is NULL or a C string.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn do_mkdir(file: *const c_char, mode: c_int) -> c_int {
    // SAFETY: caller guarantee.
    let Some(file) = (unsafe { cstr_arg(file) }) else {
        return neg(Errno::EFAULT);
    };
    status(match prefix() {
        Some(pre) => pre.mkdir(file, mode),
        None => hostfs::mkdir(file, mode),
    })
}

/// `int hostfs_do_rmdir(const char *file)`: 0 or the negative errno.
///
/// # Safety
///
/// `file` is NULL or a C string.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn hostfs_do_rmdir(file: *const c_char) -> c_int {
    // SAFETY: caller guarantee.
    let Some(file) = (unsafe { cstr_arg(file) }) else {
        return neg(Errno::EFAULT);
    };
    status(match prefix() {
        Some(pre) => pre.rmdir(file),
        None => hostfs::rmdir(file),
    })
}

/// `int do_mknod(const char *file, int mode, unsigned int major, unsigned
/// int minor)`: 0 or the negative errno.
///
/// # Safety
///
/// `file` is NULL or a C string.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn do_mknod(
    file: *const c_char,
    mode: c_int,
    major: c_uint,
    minor: c_uint,
) -> c_int {
    // SAFETY: caller guarantee.
    let Some(file) = (unsafe { cstr_arg(file) }) else {
        return neg(Errno::EFAULT);
    };
    status(match prefix() {
        Some(pre) => pre.mknod(file, mode, major, minor),
        None => hostfs::mknod(file, mode, major, minor),
    })
}

/// `int link_file(const char *to, const char *from)`: makes `from` a hard
/// link to `to` (link(to, from)). 0 or the negative errno.
///
/// # Safety
///
/// `to` and `from` are NULL or C strings.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn link_file(to: *const c_char, from: *const c_char) -> c_int {
    // SAFETY: caller guarantee.
    let Some((to, from)) = (unsafe { cstr_args(to, from) }) else {
        return neg(Errno::EFAULT);
    };
    status(match prefix() {
        Some(pre) => pre.link(to, from),
        None => hostfs::link(to, from),
    })
}

/// `int hostfs_do_readlink(char *file, char *buf, int size)`: the target
/// of the symbolic link `file` in `buf` (at most `size` bytes,
/// NUL-terminated only if shorter); its length or the negative errno. A
/// `size` of 0 or less is `-EINVAL`, what the host answers the C.
///
/// # Safety
///
/// `file` is NULL or a C string; `buf` is NULL or valid for writes of
/// `size` bytes.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn hostfs_do_readlink(
    file: *mut c_char,
    buf: *mut c_char,
    size: c_int,
) -> c_int {
    // The host's readlink takes the size as an int and refuses one of 0
    // or less before it looks at anything else.
    let Ok(len @ 1..) = usize::try_from(size) else {
        return neg(Errno::EINVAL);
    };
    // SAFETY: caller guarantee.
    let Some(file) = (unsafe { cstr_arg(file) }) else {
        return neg(Errno::EFAULT);
    };
    if buf.is_null() {
        return neg(Errno::EFAULT);
    }
    // SAFETY: `buf` holds `size` bytes (caller guarantee).
    let r = unsafe {
        match prefix() {
            Some(pre) => pre.readlink_raw(file, buf, len),
            None => hostfs::readlink_raw(file, buf, len),
        }
    };
    match r {
        Ok(n) => {
            if n < len {
                // SAFETY: n < size, inside `buf`.
                unsafe { buf.add(n).write(0) };
            }
            n as c_int
        }
        Err(e) => neg(e),
    }
}

/// `int rename_file(char *from, char *to)`: rename(2); 0 or the negative
/// errno.
///
/// # Safety
///
/// `from` and `to` are NULL or C strings.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn rename_file(from: *mut c_char, to: *mut c_char) -> c_int {
    // SAFETY: caller guarantee.
    let Some((from, to)) = (unsafe { cstr_args(from, to) }) else {
        return neg(Errno::EFAULT);
    };
    status(match prefix() {
        Some(pre) => pre.rename(from, to),
        None => hostfs::rename(from, to),
    })
}

/// `int rename2_file(char *from, char *to, unsigned int flags)`:
/// renameat2(2) with `flags` (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`); 0
/// or the negative errno, `-EINVAL` if the host has no renameat2.
///
/// # Safety
///
/// `from` and `to` are NULL or C strings.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
pub unsafe extern "C" fn rename2_file(from: *mut c_char, to: *mut c_char, flags: c_uint) -> c_int {
    // SAFETY: caller guarantee.
    let Some((from, to)) = (unsafe { cstr_args(from, to) }) else {
        return neg(Errno::EFAULT);
    };
    status(match prefix() {
        Some(pre) => pre.rename2(from, to, flags),
        None => hostfs::rename2(from, to, flags),
    })
}

/// The size of `struct statfs64`'s `f_fsid`, what `do_statfs` copies at
/// most.
const FSID_LEN: usize = size_of::<libc::fsid_t>();

/// `int do_statfs(char *root, long *bsize_out, long long *blocks_out, long
/// long *bfree_out, long long *bavail_out, long long *files_out, long long
/// *ffree_out, void *fsid_out, int fsid_size, long *namelen_out)`: the
/// statfs64 of the filesystem holding `root`, and the first `fsid_size`
/// bytes (at most 8) of its fsid. 0 or the negative errno; nothing is
/// written on failure.
///
/// # Safety
///
/// `root` is NULL or a C string; the `*_out` pointers are NULL or
/// writable, `fsid_out` for `fsid_size` bytes.
#[cfg_attr(feature = "os-fs-hostfs-hostfs_user", unsafe(no_mangle))]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn do_statfs(
    root: *mut c_char,
    bsize_out: *mut c_long,
    blocks_out: *mut c_longlong,
    bfree_out: *mut c_longlong,
    bavail_out: *mut c_longlong,
    files_out: *mut c_longlong,
    ffree_out: *mut c_longlong,
    fsid_out: *mut c_void,
    fsid_size: c_int,
    namelen_out: *mut c_long,
) -> c_int {
    let Ok(fsid_size) = usize::try_from(fsid_size) else {
        return neg(Errno::EINVAL);
    };
    let fsid_len = fsid_size.min(FSID_LEN);
    let outs_null = [
        bsize_out.is_null(),
        blocks_out.is_null(),
        bfree_out.is_null(),
        bavail_out.is_null(),
        files_out.is_null(),
        ffree_out.is_null(),
        fsid_out.is_null() && fsid_len > 0,
        namelen_out.is_null(),
    ];
    if outs_null.contains(&true) {
        return neg(Errno::EFAULT);
    }
    // SAFETY: caller guarantee.
    let Some(root) = (unsafe { cstr_arg(root) }) else {
        return neg(Errno::EFAULT);
    };
    let r = match prefix() {
        Some(pre) => pre.statfs(root),
        None => hostfs::statfs(root),
    };
    let buf = match r {
        Ok(buf) => buf,
        Err(e) => return neg(e),
    };
    // The C's implicit conversions: unsigned 64-bit counts to long long.
    // SAFETY: all checked non-NULL above, writable by our contract.
    unsafe {
        bsize_out.write(buf.f_bsize);
        blocks_out.write(buf.f_blocks as c_longlong);
        bfree_out.write(buf.f_bfree as c_longlong);
        bavail_out.write(buf.f_bavail as c_longlong);
        files_out.write(buf.f_files as c_longlong);
        ffree_out.write(buf.f_ffree as c_longlong);
        namelen_out.write(buf.f_namelen);
    }
    if fsid_len > 0 {
        // SAFETY: `fsid_out` is non-NULL (checked above) and holds
        // `fsid_size` >= `fsid_len` bytes (our contract); `f_fsid` is
        // FSID_LEN >= `fsid_len` bytes; a local and the caller's buffer do
        // not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (&raw const buf.f_fsid).cast::<u8>(),
                fsid_out.cast::<u8>(),
                fsid_len,
            );
        }
    }
    0
}

#[cfg(test)]
mod tests;
