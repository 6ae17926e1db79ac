// SPDX-License-Identifier: GPL-2.0
//! hostfs confined to its `hostfs=` prefix on the host side.
//!
//! The kernel half builds every host path as the prefix, a `/`, the mount's
//! path below it and the dentry's path. Patch 0020 keeps the mount's path
//! free of `..` and of symbolic links when the mount is made, but a
//! directory the guest still holds can be replaced later by a symbolic link
//! (through another mount of the prefix), and a host that resolves the
//! whole path then follows it out of the prefix. The guest never asks the
//! host to follow a link (it looks names up without following a final
//! link and resolves link targets itself), so below the prefix a link is
//! only ever met in such a race.
//!
//! A [`Prefix`] therefore resolves only the prefix itself as the host does
//! (once, following links: the host's administrator chose it) and the rest
//! of each path beneath it, with
//! [openat2(2)](https://man7.org/linux/man-pages/man2/openat2.2.html) and
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`: a
//! symbolic link anywhere below the prefix fails with `ELOOP`, whether it
//! points out of the prefix or into it.
//!
//! * A path that is not the prefix or below it (`prefix/...`) is refused
//!   with `EACCES`, as is one with a `..` component below the prefix
//!   (the kernel half makes neither); a prefix too long to keep makes every
//!   path `ENAMETOOLONG`. None of these reaches the host.
//! * Operations on a name (`mkdir`, `mknod`, `symlink`, `link`, `unlink`,
//!   `rmdir`, `rename`, `readlink`) resolve the parent directory beneath
//!   the prefix and act on the last component relative to it (`mkdirat`,
//!   `renameat2`, ...), which never follows it. A last component that is
//!   empty (a trailing `/`) or `.` is `EINVAL`; the kernel half only makes
//!   those for a mount's root, on which the VFS allows none of these.
//! * `stat` and `set_attr` of the owner or the times act on the file
//!   itself, a final symbolic link included: an `O_PATH | O_NOFOLLOW`
//!   descriptor used with `AT_EMPTY_PATH`. The C's `chown` and `utimes`
//!   followed a final link instead, changing the link's target when the
//!   guest changed the link (`chown -h`, `touch -h`).
//! * Operations the C made on a path that follows a final link (`open`,
//!   `file_create`, `opendir`, `access`, `statfs`, `set_attr` of the mode
//!   or the size) open the whole path beneath the prefix, so that a final
//!   link fails with `ELOOP` instead; the guest never opens, lists or
//!   truncates a link's inode. `access` uses `faccessat2(AT_EMPTY_PATH)`,
//!   the mode `fchmodat2(AT_EMPTY_PATH)` on the `O_PATH` descriptor; where
//!   the host lacks either (before Linux 5.8 and 6.6), and for the size
//!   (there is no `ftruncate` of an `O_PATH` descriptor, and opening the
//!   file for writing would open devices and block on FIFOs), the same
//!   call is made on `/proc/self/fd/N` of that descriptor: a magic link
//!   that leads to exactly that inode, whatever has happened to its path
//!   since, so it is as safe as the descriptor, but needs `/proc`.
//!
//! The conventions are those of [`super`]: the host's [`Errno`], nothing
//! retried on `EINTR`, no allocation. The prefix is kept in a fixed buffer
//! and its directory's descriptor, opened by the first operation that needs
//! it and kept (close-on-exec) until the prefix is dropped or set again; a
//! parent directory is copied into a small stack buffer a run of whole
//! components at a time. The host needs Linux 5.8 or later: openat2 came
//! in 5.6, `utimensat` with `AT_EMPTY_PATH` in 5.8. On an older host these
//! operations fail (`ENOSYS`, `EINVAL`) instead of resolving unconfined.

use core::ffi::{CStr, c_char, c_int, c_long, c_uint};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicI32, Ordering};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, RenameFlags, ResolveFlag};
use nix::sys::stat::Mode;

use super::{AttrTarget, Attrs, Dir, Timespec, access_mode, apply_attrs, open_flags};
use crate::host::file::{self, Result};
use crate::host::util::CBuf;

/// The bytes of the buffer that keeps the prefix: `PATH_MAX`, its NUL
/// included. A longer prefix could name no file: every path is the prefix,
/// a `/`, and more.
pub const PREFIX_BUF: usize = libc::PATH_MAX as usize;

/// The bytes of the stack buffer a parent directory's path is copied into,
/// a run of whole components at a time (at least one: a component is at
/// most `NAME_MAX`, 255 bytes).
const CHUNK: usize = 512;

/// "No descriptor".
const NO_FD: RawFd = -1;

/// The resolution every path below the prefix gets.
fn resolve_flags() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

/// [openat2(2)](https://man7.org/linux/man-pages/man2/openat2.2.html) of
/// `path` beneath `dir`, following no symbolic link (see
/// [`resolve_flags`]), with the `open` flags `flags` and the creation mode
/// `mode` (which must be 0 without `O_CREAT`).
fn open_at(dir: BorrowedFd<'_>, path: &CStr, flags: c_int, mode: libc::mode_t) -> Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::from_bits_retain(flags))
        .mode(Mode::from_bits_retain(mode))
        .resolve(resolve_flags());
    let fd = nix::fcntl::openat2(dir.as_raw_fd(), path, how)?;
    // SAFETY: a descriptor openat2 has just opened for us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A descriptor of the prefix's own (borrowed) or one opened below it.
enum Handle<'a> {
    Borrowed(BorrowedFd<'a>),
    Owned(OwnedFd),
}

impl Handle<'_> {
    fn raw(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl AsFd for Handle<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Borrowed(fd) => *fd,
            Self::Owned(fd) => fd.as_fd(),
        }
    }
}

/// What a final symbolic link gives when a whole path is opened.
#[derive(Clone, Copy)]
enum Last {
    /// `ELOOP`: the C followed it.
    Refuse,
    /// The link itself: the C did not follow it either.
    Itself,
}

/// `/proc/self/fd/<fd>`: a path to exactly the file `fd` refers to.
fn proc_fd_path(fd: RawFd) -> CBuf<32> {
    let mut digits = [0u8; 10];
    let mut n = fd.unsigned_abs();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut path = CBuf::new();
    // 14 + at most 10 bytes: always fits.
    let _ = path.set(b"/proc/self/fd/");
    let _ = path.push(&digits[i..]);
    path
}

/// Opens the directory `dir` below `base`: the path, without `..`
/// components, is copied a run of whole components at a time into a stack
/// buffer and each run opened beneath the previous one. Without `..`, that
/// resolves the same as the whole path beneath `base`.
fn walk<'a>(base: BorrowedFd<'a>, mut dir: &[u8]) -> Result<Handle<'a>> {
    let mut cur = Handle::Borrowed(base);
    let mut buf = [0u8; CHUNK];
    loop {
        while let [b'/', tail @ ..] = dir {
            dir = tail;
        }
        if dir.is_empty() {
            return Ok(cur);
        }
        // The longest run of whole components that fits, with its NUL.
        let (mut len, mut pos) = (0, 0);
        loop {
            let end = dir[pos..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(dir.len(), |i| pos + i);
            if end >= CHUNK {
                break;
            }
            len = end;
            if end == dir.len() {
                break;
            }
            pos = end + 1;
        }
        if len == 0 {
            // One component longer than any the host takes.
            return Err(Errno::ENAMETOOLONG);
        }
        buf[..len].copy_from_slice(&dir[..len]);
        buf[len] = 0;
        let run = CStr::from_bytes_with_nul(&buf[..=len]).map_err(|_| Errno::EINVAL)?;
        let next = open_at(
            cur.as_fd(),
            run,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        )?;
        cur = Handle::Owned(next);
        dir = &dir[len..];
    }
}

/// The `hostfs=` prefix, and the host operations of [`super`] confined to
/// it (see the module documentation). Each operation takes the whole path
/// the kernel half built.
pub struct Prefix {
    /// The prefix as given; empty when there is none, or when it was too
    /// long to keep.
    text: CBuf<PREFIX_BUF>,
    /// The prefix given was too long for `text`: every path is refused.
    too_long: bool,
    /// The prefix directory opened `O_PATH`, owned; [`NO_FD`] until an
    /// operation needs it. Only ever changes from [`NO_FD`] to a
    /// descriptor while shared.
    dir_fd: AtomicI32,
}

impl Default for Prefix {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        self.forget_dir();
    }
}

impl Prefix {
    /// No prefix: [`Prefix::is_set`] is false until [`Prefix::set`].
    pub const fn new() -> Self {
        Self {
            text: CBuf::new(),
            too_long: false,
            dir_fd: AtomicI32::new(NO_FD),
        }
    }

    /// Sets the prefix; an empty one is none. One of `PATH_MAX` bytes or
    /// more cannot be kept: it is `ENAMETOOLONG`, and the prefix then
    /// refuses every path with `ENAMETOOLONG` (it is still set: the
    /// confinement asked for is not silently dropped).
    pub fn set(&mut self, prefix: &CStr) -> Result<()> {
        self.forget_dir();
        self.too_long = false;
        if self.text.set(prefix.to_bytes()).is_err() {
            self.text.clear();
            self.too_long = true;
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(())
    }

    /// Whether a prefix was set (one too long to keep included).
    pub fn is_set(&self) -> bool {
        self.too_long || !self.text.is_empty()
    }

    /// The prefix (empty if none, or too long).
    pub fn as_cstr(&self) -> &CStr {
        self.text.as_cstr()
    }

    /// Closes the prefix directory's descriptor, if open.
    fn forget_dir(&mut self) {
        let fd = core::mem::replace(self.dir_fd.get_mut(), NO_FD);
        if fd >= 0 {
            // SAFETY: we own the descriptor and forget it here.
            unsafe { file::close_raw(fd) };
        }
    }

    /// The prefix directory, opened `O_PATH | O_DIRECTORY` following
    /// symbolic links on the first call (relative to the working
    /// directory, as the C resolves a relative prefix) and kept. A failed
    /// open is returned and tried again next time.
    fn dir(&self) -> Result<BorrowedFd<'_>> {
        let mut fd = self.dir_fd.load(Ordering::Acquire);
        if fd < 0 {
            let new = file::open(
                self.text.as_cstr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                0,
                false,
            )?;
            fd = match self.dir_fd.compare_exchange(
                NO_FD,
                new.as_raw_fd(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => new.into_raw_fd(),
                // Another caller was first: keep its descriptor, close ours.
                Err(theirs) => theirs,
            };
        }
        // SAFETY: an open descriptor `self` owns; it is only closed through
        // `&mut self`, which the returned borrow of `self` excludes.
        Ok(unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// The part of `path` below the prefix, without its leading slashes
    /// (empty for the prefix itself). Refuses, before the host sees
    /// anything, a path that is not the prefix or below it and one with a
    /// `..` component below the prefix (`EACCES`), and everything when the
    /// prefix was too long (`ENAMETOOLONG`).
    fn below<'p>(&self, path: &'p CStr) -> Result<&'p CStr> {
        if self.too_long {
            return Err(Errno::ENAMETOOLONG);
        }
        let prefix = self.text.as_bytes();
        let bytes = path.to_bytes();
        let after = bytes.strip_prefix(prefix).ok_or(Errno::EACCES)?;
        if !(after.is_empty() || after[0] == b'/' || prefix.ends_with(b"/")) {
            return Err(Errno::EACCES);
        }
        let slashes = after.iter().take_while(|&&b| b == b'/').count();
        let skip = prefix.len() + slashes;
        let rest = CStr::from_bytes_with_nul(&path.to_bytes_with_nul()[skip..])
            .map_err(|_| Errno::EINVAL)?;
        if rest.to_bytes().split(|&b| b == b'/').any(|c| c == b"..") {
            return Err(Errno::EACCES);
        }
        Ok(rest)
    }

    /// Opens `path` beneath the prefix (the prefix itself for the prefix),
    /// with the `open` flags `flags` and the creation mode `mode`.
    fn open_below(&self, path: &CStr, flags: c_int, mode: libc::mode_t) -> Result<OwnedFd> {
        let rest = self.below(path)?;
        let rest = if rest.is_empty() { c"." } else { rest };
        open_at(self.dir()?, rest, flags, mode)
    }

    /// The file `path` names, as an `O_PATH` descriptor (the prefix's own
    /// for the prefix itself).
    fn object(&self, path: &CStr, last: Last) -> Result<Handle<'_>> {
        let rest = self.below(path)?;
        let dir = self.dir()?;
        if rest.is_empty() {
            return Ok(Handle::Borrowed(dir));
        }
        let nofollow = match last {
            Last::Refuse => 0,
            Last::Itself => libc::O_NOFOLLOW,
        };
        let flags = libc::O_PATH | libc::O_CLOEXEC | nofollow;
        open_at(dir, rest, flags, 0).map(Handle::Owned)
    }

    /// The directory holding the last component of `path`, opened beneath
    /// the prefix, and that component (`EINVAL` if empty or `.`).
    fn parent<'p>(&self, path: &'p CStr) -> Result<(Handle<'_>, &'p CStr)> {
        let rest = self.below(path)?;
        let bytes = rest.to_bytes();
        let start = bytes.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
        let name = CStr::from_bytes_with_nul(&rest.to_bytes_with_nul()[start..])
            .map_err(|_| Errno::EINVAL)?;
        if matches!(name.to_bytes(), b"" | b".") {
            return Err(Errno::EINVAL);
        }
        Ok((walk(self.dir()?, &bytes[..start])?, name))
    }

    /// [`super::stat`] of `path`, a final symbolic link not followed:
    /// statx of an `O_PATH | O_NOFOLLOW` descriptor.
    pub fn stat(&self, path: &CStr) -> Result<libc::statx> {
        let obj = self.object(path, Last::Itself)?;
        super::stat(None, obj.raw())
    }

    /// [`super::access`] of `path`; a final symbolic link is `ELOOP`.
    pub fn access(&self, path: &CStr, r: bool, w: bool, x: bool) -> Result<()> {
        let amode = access_mode(r, w, x);
        let obj = self.object(path, Last::Refuse)?;
        // SAFETY: an empty C string; no other memory arguments.
        let r = unsafe {
            libc::syscall(
                libc::SYS_faccessat2,
                c_long::from(obj.raw()),
                c"".as_ptr(),
                c_long::from(amode),
                c_long::from(libc::AT_EMPTY_PATH),
            )
        };
        match Errno::result(r) {
            Err(Errno::ENOSYS) => file::access(proc_fd_path(obj.raw()).as_cstr(), amode),
            r => r.map(drop),
        }
    }

    /// [`super::open`] of `path`; a final symbolic link is `ELOOP`.
    pub fn open(&self, path: &CStr, r: bool, w: bool, append: bool) -> Result<OwnedFd> {
        self.open_below(path, open_flags(r, w, append), 0)
    }

    /// [`super::create`] of `path`; a final symbolic link is `ELOOP`, also
    /// a dangling one (the C created its target).
    pub fn create(&self, path: &CStr, mode: c_int) -> Result<OwnedFd> {
        // open(2) keeps the permission bits of `mode`; openat2 refuses others.
        let mode = (mode as libc::mode_t) & 0o7777;
        self.open_below(path, libc::O_CREAT | libc::O_RDWR, mode)
    }

    /// [`Dir::open`] of `path`, opened as `opendir(3)` does; a final
    /// symbolic link is `ELOOP`.
    pub fn open_dir(&self, path: &CStr) -> Result<Dir> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NONBLOCK | libc::O_CLOEXEC;
        Dir::from_fd(self.open_below(path, flags, 0)?)
    }

    /// [`super::set_attr`] of `path` (with no descriptor), in the same
    /// steps and order, on the file opened once beneath the prefix: a final
    /// symbolic link is `ELOOP` when the mode or the size is to change
    /// (nothing is changed then), and otherwise the link itself gets the
    /// new owner and times. Nothing asked: nothing done, as in C.
    pub fn set_attr(&self, path: &CStr, attrs: &Attrs) -> Result<Option<(Timespec, Timespec)>> {
        if *attrs == Attrs::default() {
            self.below(path)?;
            return Ok(None);
        }
        let last = if attrs.mode.is_some() || attrs.size.is_some() {
            Last::Refuse
        } else {
            Last::Itself
        };
        apply_attrs(&Object(self.object(path, last)?), attrs)
    }

    /// [`super::symlink`]: makes `linkpath` a symbolic link to `target`
    /// (`symlinkat`; the target is text, not resolved).
    pub fn symlink(&self, target: &CStr, linkpath: &CStr) -> Result<()> {
        let (dir, name) = self.parent(linkpath)?;
        // SAFETY: both strings are NUL-terminated.
        Errno::result(unsafe { libc::symlinkat(target.as_ptr(), dir.raw(), name.as_ptr()) })
            .map(drop)
    }

    /// [`super::unlink`] (`unlinkat`).
    pub fn unlink(&self, path: &CStr) -> Result<()> {
        let (dir, name) = self.parent(path)?;
        // SAFETY: `name` is NUL-terminated.
        Errno::result(unsafe { libc::unlinkat(dir.raw(), name.as_ptr(), 0) }).map(drop)
    }

    /// [`super::mkdir`] (`mkdirat`).
    pub fn mkdir(&self, path: &CStr, mode: c_int) -> Result<()> {
        let (dir, name) = self.parent(path)?;
        // SAFETY: `name` is NUL-terminated.
        Errno::result(unsafe { libc::mkdirat(dir.raw(), name.as_ptr(), mode as libc::mode_t) })
            .map(drop)
    }

    /// [`super::rmdir`] (`unlinkat` with `AT_REMOVEDIR`).
    pub fn rmdir(&self, path: &CStr) -> Result<()> {
        let (dir, name) = self.parent(path)?;
        // SAFETY: `name` is NUL-terminated.
        Errno::result(unsafe { libc::unlinkat(dir.raw(), name.as_ptr(), libc::AT_REMOVEDIR) })
            .map(drop)
    }

    /// [`super::mknod`] (`mknodat`).
    pub fn mknod(&self, path: &CStr, mode: c_int, major: c_uint, minor: c_uint) -> Result<()> {
        let (dir, name) = self.parent(path)?;
        let dev = file::makedev(major, minor);
        // SAFETY: `name` is NUL-terminated.
        let r = unsafe { libc::mknodat(dir.raw(), name.as_ptr(), mode as libc::mode_t, dev) };
        Errno::result(r).map(drop)
    }

    /// [`super::link`]: makes `newpath` a hard link to `oldpath` (`linkat`
    /// without `AT_SYMLINK_FOLLOW`: a symbolic link is linked itself).
    pub fn link(&self, oldpath: &CStr, newpath: &CStr) -> Result<()> {
        let (odir, oname) = self.parent(oldpath)?;
        let (ndir, nname) = self.parent(newpath)?;
        // SAFETY: both names are NUL-terminated.
        let r = unsafe { libc::linkat(odir.raw(), oname.as_ptr(), ndir.raw(), nname.as_ptr(), 0) };
        Errno::result(r).map(drop)
    }

    /// [`super::readlink`] (`readlinkat`).
    pub fn readlink(&self, path: &CStr, buf: &mut [u8]) -> Result<usize> {
        // SAFETY: `buf` is valid for writes of its length.
        unsafe { self.readlink_raw(path, buf.as_mut_ptr().cast(), buf.len()) }
    }

    /// [`Prefix::readlink`] into `size` bytes at `buf`.
    ///
    /// # Safety
    ///
    /// `buf` is valid for writes of `size` bytes.
    pub unsafe fn readlink_raw(&self, path: &CStr, buf: *mut c_char, size: usize) -> Result<usize> {
        let (dir, name) = self.parent(path)?;
        // SAFETY: `name` is NUL-terminated; `buf` holds `size` bytes (caller guarantee).
        let n = unsafe { libc::readlinkat(dir.raw(), name.as_ptr(), buf, size) };
        Errno::result(n).map(|n| n as usize)
    }

    /// [`super::rename`] (`renameat`).
    pub fn rename(&self, from: &CStr, to: &CStr) -> Result<()> {
        let (fdir, fname) = self.parent(from)?;
        let (tdir, tname) = self.parent(to)?;
        // SAFETY: both names are NUL-terminated.
        let r = unsafe { libc::renameat(fdir.raw(), fname.as_ptr(), tdir.raw(), tname.as_ptr()) };
        Errno::result(r).map(drop)
    }

    /// [`super::rename2`] (`renameat2`), `ENOSYS` turned into `EINVAL`.
    pub fn rename2(&self, from: &CStr, to: &CStr, flags: c_uint) -> Result<()> {
        let (fdir, fname) = self.parent(from)?;
        let (tdir, tname) = self.parent(to)?;
        nix::fcntl::renameat2(
            Some(fdir.raw()),
            fname,
            Some(tdir.raw()),
            tname,
            RenameFlags::from_bits_retain(flags),
        )
        .map_err(|e| if e == Errno::ENOSYS { Errno::EINVAL } else { e })
    }

    /// [`super::statfs`] of the filesystem holding `path` (`fstatfs64` of
    /// an `O_PATH` descriptor); a final symbolic link is `ELOOP`.
    pub fn statfs(&self, path: &CStr) -> Result<libc::statfs64> {
        let obj = self.object(path, Last::Refuse)?;
        let mut buf = MaybeUninit::<libc::statfs64>::zeroed();
        // SAFETY: `buf` is writable and as large as struct statfs64.
        Errno::result(unsafe { libc::fstatfs64(obj.raw(), buf.as_mut_ptr()) })?;
        // SAFETY: zeroed, then filled by a successful fstatfs64.
        Ok(unsafe { buf.assume_init() })
    }
}

/// The file [`Prefix::set_attr`] changes: an `O_PATH` descriptor.
struct Object<'a>(Handle<'a>);

impl AttrTarget for Object<'_> {
    /// `fchmodat2(fd, "", mode, AT_EMPTY_PATH)`; `chmod` of
    /// `/proc/self/fd/N` where the host has no fchmodat2 (`ENOSYS`) or no
    /// `AT_EMPTY_PATH` for it (`EINVAL`).
    fn chmod(&self, mode: libc::mode_t) -> Result<()> {
        let fd = self.0.raw();
        // SAFETY: an empty C string; no other memory arguments.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fchmodat2,
                c_long::from(fd),
                c"".as_ptr(),
                c_long::from(mode),
                c_long::from(libc::AT_EMPTY_PATH),
            )
        };
        match Errno::result(r) {
            Err(Errno::ENOSYS | Errno::EINVAL) => {
                let path = proc_fd_path(fd);
                // SAFETY: `path` is NUL-terminated.
                Errno::result(unsafe { libc::chmod(path.as_ptr(), mode) }).map(drop)
            }
            r => r.map(drop),
        }
    }

    /// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH)`: the file itself, a
    /// symbolic link included.
    fn chown(&self, uid: u32, gid: u32) -> Result<()> {
        let fd = self.0.raw();
        // SAFETY: an empty C string.
        let r = unsafe { libc::fchownat(fd, c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) };
        Errno::result(r).map(drop)
    }

    /// `truncate64` of `/proc/self/fd/N`: truncate(2) of exactly this file
    /// (an `O_PATH` descriptor cannot be `ftruncate`d).
    fn truncate(&self, size: i64) -> Result<()> {
        let path = proc_fd_path(self.0.raw());
        // SAFETY: `path` is NUL-terminated.
        Errno::result(unsafe { libc::truncate64(path.as_ptr(), size) }).map(drop)
    }

    /// `utimensat(fd, "", times, AT_EMPTY_PATH)` with the microseconds of
    /// `times` (what the C's `utimes` sets): the file itself, a symbolic
    /// link included. A microsecond count times 1000 is never `UTIME_NOW`
    /// or `UTIME_OMIT`, and out of range stays out of range (`EINVAL`).
    fn utimes(&self, times: &[libc::timeval; 2]) -> Result<()> {
        let ts = times.map(|t| libc::timespec {
            tv_sec: t.tv_sec,
            tv_nsec: t.tv_usec.saturating_mul(1000),
        });
        // SAFETY: an empty C string; `ts` holds the two timespecs utimensat reads.
        let r = unsafe {
            libc::utimensat(self.0.raw(), c"".as_ptr(), ts.as_ptr(), libc::AT_EMPTY_PATH)
        };
        Errno::result(r).map(drop)
    }

    fn stat(&self) -> Result<libc::statx> {
        super::stat(None, self.0.raw())
    }
}

#[cfg(test)]
mod tests;
