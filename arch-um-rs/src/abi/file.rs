// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/file.c.
//!
//! Each function converts its C arguments, calls [`crate::host::file`] or
//! [`crate::host::socket`], and returns what the C function returned: a
//! negative errno on failure, the value (often 0) on success. `EINTR` is
//! retried only by `os_stat_fd`, `os_stat_file`, `os_mode_fd`,
//! `os_set_exec_close` and the close-on-exec step of `os_pipe`, as in C.
//!
//! Where the C function would dereference a NULL pointer argument these
//! return `-EFAULT` instead (which is also what the host returns for the
//! ones that pass the pointer straight to a system call).

use core::ffi::{CStr, c_char, c_int, c_uint, c_ulong, c_ulonglong, c_void};
use std::os::fd::IntoRawFd;

use nix::errno::Errno;

use super::layout::{OS_SENDMSG_MAX_FDS, OpenFlags, UmlStat, os_acc, os_type};
use crate::host::file::{self, FileKind, Result};
use crate::host::socket;

const _: () = assert!(socket::SEND_MAX_FDS == OS_SENDMSG_MAX_FDS);

fn neg(e: Errno) -> c_int {
    -(e as c_int)
}

/// 0 or the negative errno.
fn status(r: Result<()>) -> c_int {
    r.map_or_else(neg, |()| 0)
}

/// The descriptor or the negative errno.
fn fd_or_errno(r: Result<std::os::fd::OwnedFd>) -> c_int {
    r.map_or_else(neg, IntoRawFd::into_raw_fd)
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

/// A C array argument of `len` elements; empty if `len` is 0, `None` if
/// NULL with a non-zero length.
///
/// # Safety
///
/// Unless NULL, `p` points to `len` initialised elements live for `'a`.
unsafe fn slice_arg<'a, T>(p: *const T, len: usize) -> Option<&'a [T]> {
    if len == 0 {
        return Some(&[]);
    }
    // SAFETY: non-NULL, so `len` elements by the caller's guarantee.
    (!p.is_null()).then(|| unsafe { core::slice::from_raw_parts(p, len) })
}

/// [`slice_arg`] for an array the callee writes.
///
/// # Safety
///
/// Unless NULL, `p` points to `len` elements live for `'a` and not accessed
/// through any other pointer meanwhile.
unsafe fn slice_mut_arg<'a, T>(p: *mut T, len: usize) -> Option<&'a mut [T]> {
    if len == 0 {
        return Some(&mut []);
    }
    // SAFETY: non-NULL, so `len` exclusive elements by the caller's guarantee.
    (!p.is_null()).then(|| unsafe { core::slice::from_raw_parts_mut(p, len) })
}

/// Fills a `struct uml_stat` with C's implicit conversions (truncating
/// `st_dev`, `st_nlink` and `st_blksize` to int, as the C layer does).
fn uml_stat(st: &libc::stat64) -> UmlStat {
    UmlStat {
        ust_dev: st.st_dev as c_int,
        ust_ino: st.st_ino,
        ust_mode: st.st_mode as c_int,
        ust_nlink: st.st_nlink as c_int,
        ust_uid: st.st_uid as c_int,
        ust_gid: st.st_gid as c_int,
        ust_size: st.st_size as u64,
        ust_blksize: st.st_blksize as c_int,
        ust_blocks: st.st_blocks as u64,
        ust_atime: st.st_atime as c_ulong,
        ust_mtime: st.st_mtime as c_ulong,
        ust_ctime: st.st_ctime as c_ulong,
    }
}

/// Writes a successful stat to `ubuf` (if not NULL) and returns 0.
///
/// # Safety
///
/// `ubuf` is NULL or valid for writes of a `struct uml_stat`.
unsafe fn stat_out(r: Result<libc::stat64>, ubuf: *mut UmlStat) -> c_int {
    match r {
        Ok(st) => {
            if !ubuf.is_null() {
                // SAFETY: non-NULL, so writable by the caller's guarantee.
                unsafe { ubuf.write(uml_stat(&st)) };
            }
            0
        }
        Err(e) => neg(e),
    }
}

/// `int os_stat_fd(const int fd, struct uml_stat *ubuf)`: fstat64, retried
/// on `EINTR`; `ubuf` may be NULL.
///
/// # Safety
///
/// `ubuf` is NULL or valid for writes of a `struct uml_stat`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_stat_fd(fd: c_int, ubuf: *mut UmlStat) -> c_int {
    // SAFETY: forwarded caller guarantee.
    unsafe { stat_out(file::stat_fd(fd), ubuf) }
}

/// `int os_stat_file(const char *file_name, struct uml_stat *ubuf)`: stat64,
/// retried on `EINTR`; `ubuf` may be NULL.
///
/// # Safety
///
/// `file_name` is a C string (or NULL); `ubuf` is NULL or valid for writes
/// of a `struct uml_stat`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_stat_file(file_name: *const c_char, ubuf: *mut UmlStat) -> c_int {
    // SAFETY: caller guarantee.
    let Some(path) = (unsafe { cstr_arg(file_name) }) else {
        return neg(Errno::EFAULT);
    };
    // SAFETY: forwarded caller guarantee.
    unsafe { stat_out(file::stat_path(path), ubuf) }
}

/// `OS_ACC_*` bits to the host's `*_OK` bits (`OS_ACC_F_OK` and `F_OK` are
/// both 0 and add nothing).
fn host_amode(mode: c_int) -> c_int {
    let mut amode = 0;
    if mode & os_acc::R_OK != 0 {
        amode |= libc::R_OK;
    }
    if mode & os_acc::W_OK != 0 {
        amode |= libc::W_OK;
    }
    if mode & os_acc::X_OK != 0 {
        amode |= libc::X_OK;
    }
    amode
}

/// `int os_access(const char *file, int mode)`: access(2) with `OS_ACC_*`
/// bits; 0 or the negative errno, not retried.
///
/// # Safety
///
/// `file` is a C string (or NULL).
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_access(file: *const c_char, mode: c_int) -> c_int {
    // SAFETY: caller guarantee.
    let Some(path) = (unsafe { cstr_arg(file) }) else {
        return neg(Errno::EFAULT);
    };
    status(file::access(path, host_amode(mode)))
}

/// `int os_ioctl_generic(int fd, unsigned int cmd, unsigned long arg)`: the
/// ioctl's non-negative result, or the negative errno.
///
/// # Safety
///
/// `arg` must be a valid argument for `cmd`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_ioctl_generic(fd: c_int, cmd: c_uint, arg: c_ulong) -> c_int {
    // SAFETY: forwarded caller guarantee.
    unsafe { file::ioctl_generic(fd, cmd, arg) }.unwrap_or_else(neg)
}

/// `int os_get_ifname(int fd, char *namebuf)`: `SIOCGIFNAME` into
/// `namebuf`; 0 or the negative errno.
///
/// # Safety
///
/// `namebuf` is valid for writes of `IFNAMSIZ` bytes.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_get_ifname(fd: c_int, namebuf: *mut c_char) -> c_int {
    // SAFETY: forwarded caller guarantee.
    status(unsafe { file::get_ifname(fd, namebuf) })
}

/// `int os_set_slip(int fd)`: SLIP line discipline, plain encapsulation.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_set_slip(fd: c_int) -> c_int {
    status(file::set_slip(fd))
}

/// `int os_mode_fd(int fd, int mode)`: fchmod, retried on `EINTR`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_mode_fd(fd: c_int, mode: c_int) -> c_int {
    status(file::chmod_fd(fd, mode))
}

/// `int os_file_type(char *file)`: an `OS_TYPE_*` (links are followed), or
/// the negative errno of stat.
///
/// # Safety
///
/// `file` is a C string (or NULL).
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_file_type(file: *mut c_char) -> c_int {
    // SAFETY: caller guarantee.
    let Some(path) = (unsafe { cstr_arg(file) }) else {
        return neg(Errno::EFAULT);
    };
    match file::file_kind(path) {
        Ok(FileKind::Dir) => os_type::DIR,
        Ok(FileKind::Symlink) => os_type::SYMLINK,
        Ok(FileKind::CharDev) => os_type::CHARDEV,
        Ok(FileKind::BlockDev) => os_type::BLOCKDEV,
        Ok(FileKind::Fifo) => os_type::FIFO,
        Ok(FileKind::Socket) => os_type::SOCK,
        Ok(FileKind::File) => os_type::FILE,
        Err(e) => neg(e),
    }
}

/// `int os_file_mode(const char *file, struct openflags *mode_out)`.
///
/// Clears `*mode_out`, then sets `w` if write access is granted and `r` if
/// read access is; a denial (`EACCES`) just leaves the bit clear, any other
/// access error is returned at once (so `w` may already be set).
///
/// The return value is the C layer's: 0 if read access is granted, and the
/// raw `-1` of access(2) (not an errno) if it is denied.
///
/// # Safety
///
/// `file` is a C string (or NULL); `mode_out` is valid for writes.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_file_mode(file: *const c_char, mode_out: *mut OpenFlags) -> c_int {
    if mode_out.is_null() {
        return neg(Errno::EFAULT);
    }
    let mut mode = OpenFlags(0);
    // SAFETY: `mode_out` is non-NULL, so writable by the caller's guarantee.
    unsafe { mode_out.write(mode) };
    // SAFETY: caller guarantee.
    let Some(path) = (unsafe { cstr_arg(file) }) else {
        return neg(Errno::EFAULT);
    };
    for (amode, bit) in [(libc::W_OK, OpenFlags::W), (libc::R_OK, OpenFlags::R)] {
        match file::may_access(path, amode) {
            Ok(true) => {
                mode.0 |= bit;
                // SAFETY: as above.
                unsafe { mode_out.write(mode) };
            }
            Ok(false) => {}
            Err(e) => return neg(e),
        }
    }
    if mode.has(OpenFlags::R) { 0 } else { -1 }
}

/// `struct openflags` to host open flags and whether to set `FD_CLOEXEC`.
fn host_oflag(flags: OpenFlags) -> (c_int, bool) {
    let mut oflag = match (flags.has(OpenFlags::R), flags.has(OpenFlags::W)) {
        (true, true) => libc::O_RDWR,
        (false, true) => libc::O_WRONLY,
        // O_RDONLY is 0, the same as no access bit at all.
        _ => libc::O_RDONLY,
    };
    for (bit, host) in [
        (OpenFlags::S, libc::O_SYNC),
        (OpenFlags::C, libc::O_CREAT),
        (OpenFlags::T, libc::O_TRUNC),
        (OpenFlags::E, libc::O_EXCL),
        (OpenFlags::A, libc::O_APPEND),
    ] {
        if flags.has(bit) {
            oflag |= host;
        }
    }
    (oflag, flags.has(OpenFlags::CL))
}

/// `int os_open_file(const char *file, struct openflags flags, int mode)`:
/// the new descriptor or the negative errno. Not retried; `cl` sets
/// `FD_CLOEXEC` after the open (the file is closed if that fails).
///
/// # Safety
///
/// `file` is a C string (or NULL).
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_open_file(file: *const c_char, flags: OpenFlags, mode: c_int) -> c_int {
    // SAFETY: caller guarantee.
    let Some(path) = (unsafe { cstr_arg(file) }) else {
        return neg(Errno::EFAULT);
    };
    let (oflag, cloexec) = host_oflag(flags);
    fd_or_errno(file::open(path, oflag, mode, cloexec))
}

/// `int os_connect_socket(const char *name)`: a Unix stream socket
/// connected to `name`, or the negative errno.
///
/// # Safety
///
/// `name` is a C string (or NULL).
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_connect_socket(name: *const c_char) -> c_int {
    // SAFETY: caller guarantee.
    let Some(path) = (unsafe { cstr_arg(name) }) else {
        return neg(Errno::EFAULT);
    };
    fd_or_errno(socket::connect_unix(path))
}

/// `int os_dup_file(int fd)`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_dup_file(fd: c_int) -> c_int {
    fd_or_errno(file::dup(fd))
}

/// `void os_close_file(int fd)`.
///
/// # Safety
///
/// The caller owns `fd` and does not use it afterwards.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_close_file(fd: c_int) {
    // SAFETY: forwarded caller guarantee.
    unsafe { file::close_raw(fd) }
}

/// `int os_fsync_file(int fd)`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_fsync_file(fd: c_int) -> c_int {
    status(file::fsync(fd))
}

/// `int os_seek_file(int fd, unsigned long long offset)`: absolute seek.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_seek_file(fd: c_int, offset: c_ulonglong) -> c_int {
    status(file::seek_set(fd, offset))
}

/// The C layer's `int n = read(...)`: the count as int, or the negative
/// errno.
fn count(r: Result<usize>) -> c_int {
    r.map_or_else(neg, |n| n as c_int)
}

/// `int os_read_file(int fd, void *buf, int len)`. A negative `len` is
/// widened to `size_t` as in C, and so rejected by the host.
///
/// # Safety
///
/// `buf` is valid for writes of `len` bytes.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_read_file(fd: c_int, buf: *mut c_void, len: c_int) -> c_int {
    // SAFETY: forwarded caller guarantee.
    count(unsafe { file::read_raw(fd, buf, len as usize) })
}

/// `int os_pread_file(int fd, void *buf, int len, unsigned long long offset)`.
///
/// # Safety
///
/// `buf` is valid for writes of `len` bytes.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_pread_file(
    fd: c_int,
    buf: *mut c_void,
    len: c_int,
    offset: c_ulonglong,
) -> c_int {
    // SAFETY: forwarded caller guarantee.
    count(unsafe { file::pread_raw(fd, buf, len as usize, offset) })
}

/// `int os_write_file(int fd, const void *buf, int len)`.
///
/// # Safety
///
/// `buf` is valid for reads of `len` bytes.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_write_file(fd: c_int, buf: *const c_void, len: c_int) -> c_int {
    // SAFETY: forwarded caller guarantee.
    count(unsafe { file::write_raw(fd, buf, len as usize) })
}

/// `int os_sync_file(int fd)`: fdatasync.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_sync_file(fd: c_int) -> c_int {
    status(file::fdatasync(fd))
}

/// `int os_pwrite_file(int fd, const void *buf, int len, unsigned long long offset)`.
///
/// # Safety
///
/// `buf` is valid for reads of `len` bytes.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_pwrite_file(
    fd: c_int,
    buf: *const c_void,
    len: c_int,
    offset: c_ulonglong,
) -> c_int {
    // SAFETY: forwarded caller guarantee.
    count(unsafe { file::pwrite_raw(fd, buf, len as usize, offset) })
}

/// `int os_file_size(const char *file, unsigned long long *size_out)`:
/// 0 and the size (of the device, for a block device), or the negative
/// errno (logged).
///
/// # Safety
///
/// `file` is a C string (or NULL); `size_out` is valid for writes.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_file_size(file: *const c_char, size_out: *mut c_ulonglong) -> c_int {
    // SAFETY: caller guarantee.
    let Some(path) = (unsafe { cstr_arg(file) }) else {
        return neg(Errno::EFAULT);
    };
    match file::file_size(path) {
        Ok(size) if !size_out.is_null() => {
            // SAFETY: non-NULL, so writable by the caller's guarantee.
            unsafe { size_out.write(size) };
            0
        }
        Ok(_) => neg(Errno::EFAULT),
        Err(e) => neg(e),
    }
}

/// `int os_file_modtime(const char *file, long long *modtime)`: 0 and the
/// modification time, or the negative errno (logged).
///
/// # Safety
///
/// `file` is a C string (or NULL); `modtime` is valid for writes.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_file_modtime(file: *const c_char, modtime: *mut i64) -> c_int {
    // SAFETY: caller guarantee.
    let Some(path) = (unsafe { cstr_arg(file) }) else {
        return neg(Errno::EFAULT);
    };
    match file::modtime(path) {
        Ok(t) if !modtime.is_null() => {
            // SAFETY: non-NULL, so writable by the caller's guarantee.
            unsafe { modtime.write(t) };
            0
        }
        Ok(_) => neg(Errno::EFAULT),
        Err(e) => neg(e),
    }
}

/// `int os_set_exec_close(int fd)`: `FD_CLOEXEC`, retried on `EINTR`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_set_exec_close(fd: c_int) -> c_int {
    status(file::set_cloexec(fd))
}

/// `int os_pipe(int *fds, int stream, int close_on_exec)`: a Unix socket
/// pair (stream or datagram) in `fds[0..2]`; 0 or the negative errno.
///
/// # Safety
///
/// `fds` is valid for writes of two ints.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_pipe(fds: *mut c_int, stream: c_int, close_on_exec: c_int) -> c_int {
    if fds.is_null() {
        return neg(Errno::EFAULT);
    }
    match socket::pipe(stream != 0, close_on_exec != 0) {
        Ok([a, b]) => {
            // SAFETY: `fds` has room for two ints (caller guarantee).
            unsafe {
                fds.write(a.into_raw_fd());
                fds.add(1).write(b.into_raw_fd());
            }
            0
        }
        Err(e) => neg(e),
    }
}

/// `int os_set_fd_async(int fd)`: `O_ASYNC | O_NONBLOCK`, `SIGIO` to us.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_set_fd_async(fd: c_int) -> c_int {
    status(file::set_fd_async(fd))
}

/// `int os_clear_fd_async(int fd)`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_clear_fd_async(fd: c_int) -> c_int {
    status(file::clear_fd_async(fd))
}

/// `int os_set_fd_block(int fd, int blocking)`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_set_fd_block(fd: c_int, blocking: c_int) -> c_int {
    status(file::set_fd_block(fd, blocking != 0))
}

/// `int os_set_fd_direct(int fd)` (kernel patch 0014): `O_DIRECT` for a
/// descriptor whose users transfer aligned 512-byte sectors.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_set_fd_direct(fd: c_int) -> c_int {
    status(file::set_fd_direct(fd))
}

/// `int os_accept_connection(int fd)`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_accept_connection(fd: c_int) -> c_int {
    fd_or_errno(socket::accept(fd))
}

/// `int os_shutdown_socket(int fd, int r, int w)`: `-EINVAL` if neither.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_shutdown_socket(fd: c_int, r: c_int, w: c_int) -> c_int {
    status(socket::shutdown(fd, r != 0, w != 0))
}

/// `ssize_t os_rcv_fd_msg(int fd, int *fds, unsigned int n_fds, void *data,
/// size_t data_len)`: receives one message and up to `n_fds` (at most 2)
/// descriptors into `fds`; the message length (as int, like C) or the
/// negative errno.
///
/// # Safety
///
/// `fds` holds `n_fds` ints; `data` is valid for writes of `data_len` bytes.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_rcv_fd_msg(
    fd: c_int,
    fds: *mut c_int,
    n_fds: c_uint,
    data: *mut c_void,
    data_len: usize,
) -> isize {
    // SAFETY: caller guarantee.
    let Some(fds) = (unsafe { slice_mut_arg(fds, n_fds as usize) }) else {
        return neg(Errno::EFAULT) as isize;
    };
    // SAFETY: forwarded caller guarantee.
    match unsafe { socket::recv_fds_raw(fd, fds, data, data_len) } {
        Ok((n, _)) => n as c_int as isize,
        Err(e) => neg(e) as isize,
    }
}

/// `int os_create_unix_socket(const char *file, int len, int close_on_exec)`:
/// a Unix datagram socket bound to `file`, of which at most `len - 1` bytes
/// (and at most what `sun_path` holds) are used. A close-on-exec failure is
/// only logged.
///
/// # Safety
///
/// `file` is a C string (or NULL).
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_create_unix_socket(
    file: *const c_char,
    len: c_int,
    close_on_exec: c_int,
) -> c_int {
    // SAFETY: caller guarantee.
    let Some(path) = (unsafe { cstr_arg(file) }) else {
        return neg(Errno::EFAULT);
    };
    // A negative int is a huge size_t in C: no limit but sun_path's.
    let size = usize::try_from(len).unwrap_or(usize::MAX);
    fd_or_errno(socket::bind_unix_dgram(path, size, close_on_exec != 0))
}

/// `void os_flush_stdout(void)`: `fflush(stdout)` of the C library.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_flush_stdout() {
    file::flush_stdout();
}

/// `int os_lock_file(int fd, int excl)`: a whole-file POSIX lock, without
/// waiting; the conflicting holder is logged.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_lock_file(fd: c_int, excl: c_int) -> c_int {
    status(file::lock_file(fd, excl != 0))
}

/// `unsigned os_major(unsigned long long dev)`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_major(dev: c_ulonglong) -> c_uint {
    file::major(dev)
}

/// `unsigned os_minor(unsigned long long dev)`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_minor(dev: c_ulonglong) -> c_uint {
    file::minor(dev)
}

/// `unsigned long long os_makedev(unsigned major, unsigned minor)`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_makedev(major: c_uint, minor: c_uint) -> c_ulonglong {
    file::makedev(major, minor)
}

/// `int os_falloc_punch(int fd, unsigned long long offset, int len)`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_falloc_punch(fd: c_int, offset: c_ulonglong, len: c_int) -> c_int {
    status(file::punch_hole(fd, offset, len.into()))
}

/// `int os_falloc_zeroes(int fd, unsigned long long offset, int len)`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_falloc_zeroes(fd: c_int, offset: c_ulonglong, len: c_int) -> c_int {
    status(file::zero_range(fd, offset, len.into()))
}

/// `int os_eventfd(unsigned int initval, int flags)`.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_eventfd(initval: c_uint, flags: c_int) -> c_int {
    fd_or_errno(file::eventfd(initval, flags))
}

/// `int os_sendmsg_fds(int fd, const void *buf, unsigned int len, const int
/// *fds, unsigned int fds_num)`: bytes sent (as int) or the negative errno;
/// `-EINVAL` for more than `OS_SENDMSG_MAX_FDS` descriptors.
///
/// # Safety
///
/// `buf` is valid for reads of `len` bytes; `fds` holds `fds_num` ints.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_sendmsg_fds(
    fd: c_int,
    buf: *const c_void,
    len: c_uint,
    fds: *const c_int,
    fds_num: c_uint,
) -> c_int {
    // SAFETY: caller guarantee.
    let Some(fds) = (unsafe { slice_arg(fds, fds_num as usize) }) else {
        return neg(Errno::EFAULT);
    };
    // SAFETY: forwarded caller guarantee.
    count(unsafe { socket::send_fds_raw(fd, buf, len as usize, fds) })
}

/// `int os_poll(unsigned int n, const int *fds)`: waits for input on up to
/// two descriptors; the index of the first ready one, `-EINVAL` for more
/// than two, `-EIO` if none is, or the negative errno (`EINTR` included).
///
/// # Safety
///
/// `fds` holds `n` ints.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_poll(n: c_uint, fds: *const c_int) -> c_int {
    // SAFETY: caller guarantee.
    let Some(fds) = (unsafe { slice_arg(fds, n as usize) }) else {
        return neg(Errno::EFAULT);
    };
    file::poll_in(fds).map_or_else(neg, |i| i as c_int)
}

/// `void *os_mmap_rw_shared(int fd, size_t size)`: NULL on failure.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub extern "C" fn os_mmap_rw_shared(fd: c_int, size: usize) -> *mut c_void {
    file::mmap_rw_shared(fd, size).map_or(core::ptr::null_mut(), |p| p.as_ptr())
}

/// `void *os_mremap_rw_shared(void *old_addr, size_t old_size, size_t
/// new_size)`: the (possibly moved) mapping, or NULL on failure.
///
/// # Safety
///
/// `old_addr` is a mapping of `old_size` bytes the caller owns and stops
/// using on success.
#[cfg_attr(feature = "os-file", unsafe(no_mangle))]
pub unsafe extern "C" fn os_mremap_rw_shared(
    old_addr: *mut c_void,
    old_size: usize,
    new_size: usize,
) -> *mut c_void {
    // SAFETY: forwarded caller guarantee.
    unsafe { file::mremap_rw_shared(old_addr, old_size, new_size) }
        .map_or(core::ptr::null_mut(), |p| p.as_ptr())
}

#[cfg(test)]
mod tests;
