// SPDX-License-Identifier: GPL-2.0
//! Tests of the file.c ABI, through the `extern "C"` functions as the kernel
//! calls them.

use super::*;
use crate::host::exec::tests::in_child;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const EBADF: c_int = -libc::EBADF;

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// Takes ownership of a descriptor an os_* function returned, asserting it
/// is one.
fn own(fd: c_int) -> OwnedFd {
    assert!(fd >= 0, "expected a descriptor, got {fd}");
    // SAFETY: a fresh descriptor the function under test handed us.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn fd_flags(fd: RawFd) -> c_int {
    // SAFETY: F_GETFD takes no argument.
    let r = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert!(r >= 0);
    r
}

fn is_cloexec(fd: RawFd) -> bool {
    fd_flags(fd) & libc::FD_CLOEXEC != 0
}

fn status_flags(fd: RawFd) -> c_int {
    // SAFETY: F_GETFL takes no argument.
    let r = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(r >= 0);
    r
}

fn flags(bits: u32) -> OpenFlags {
    OpenFlags(bits)
}

fn open(p: &CStr, bits: u32, mode: c_int) -> c_int {
    // SAFETY: `p` is a C string.
    unsafe { os_open_file(p.as_ptr(), flags(bits), mode) }
}

fn write_all(fd: RawFd, data: &[u8]) {
    // SAFETY: `data` is readable for its length.
    let n = unsafe { os_write_file(fd, data.as_ptr().cast(), data.len() as c_int) };
    assert_eq!(n, data.len() as c_int);
}

fn read_some(fd: RawFd, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    // SAFETY: `buf` is writable for its length.
    let n = unsafe { os_read_file(fd, buf.as_mut_ptr().cast(), len as c_int) };
    assert!(n >= 0, "read: {n}");
    buf.truncate(n as usize);
    buf
}

fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line.split_whitespace().nth(1).unwrap(), 8).unwrap()
}

// ---------------------------------------------------------------------------
// open flags

#[test]
fn openflags_map_to_host_flags() {
    use OpenFlags as F;
    assert_eq!(host_oflag(flags(0)), (libc::O_RDONLY, false));
    assert_eq!(host_oflag(flags(F::R)), (libc::O_RDONLY, false));
    assert_eq!(host_oflag(flags(F::W)), (libc::O_WRONLY, false));
    assert_eq!(host_oflag(flags(F::R | F::W)), (libc::O_RDWR, false));
    assert_eq!(host_oflag(flags(F::S)).0, libc::O_SYNC);
    assert_eq!(host_oflag(flags(F::C)).0, libc::O_CREAT);
    assert_eq!(host_oflag(flags(F::T)).0, libc::O_TRUNC);
    assert_eq!(host_oflag(flags(F::A)).0, libc::O_APPEND);
    assert_eq!(host_oflag(flags(F::E)).0, libc::O_EXCL);
    assert_eq!(host_oflag(flags(F::CL)), (0, true));
    assert_eq!(
        host_oflag(flags(0xff)),
        (
            libc::O_RDWR
                | libc::O_SYNC
                | libc::O_CREAT
                | libc::O_TRUNC
                | libc::O_APPEND
                | libc::O_EXCL,
            true
        )
    );
}

#[test]
fn open_access_modes() {
    use OpenFlags as F;
    let d = tempfile::tempdir().unwrap();
    let p = cpath(&d.path().join("f"));
    std::fs::write(d.path().join("f"), b"data").unwrap();
    for (bits, acc) in [
        (F::R, libc::O_RDONLY),
        (F::W, libc::O_WRONLY),
        (F::R | F::W, libc::O_RDWR),
        (0, libc::O_RDONLY),
    ] {
        let fd = own(open(&p, bits, 0));
        assert_eq!(
            status_flags(fd.as_raw_fd()) & libc::O_ACCMODE,
            acc,
            "bits {bits:#x}"
        );
        assert!(!is_cloexec(fd.as_raw_fd()));
    }
    // Write-only: reading fails with EBADF.
    let fd = own(open(&p, F::W, 0));
    let mut b = [0u8; 4];
    assert_eq!(
        // SAFETY: `b` is writable.
        unsafe { os_read_file(fd.as_raw_fd(), b.as_mut_ptr().cast(), 4) },
        EBADF
    );
}

#[test]
fn open_create_exclusive_truncate_append_sync_cloexec() {
    use OpenFlags as F;
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("new");
    let p = cpath(&path);
    assert_eq!(open(&p, F::R, 0), -libc::ENOENT);

    let fd = own(open(&p, F::R | F::W | F::C | F::E, 0o640));
    assert_eq!(
        std::fs::metadata(&path).unwrap().mode() & 0o777,
        0o640 & !umask()
    );
    write_all(fd.as_raw_fd(), b"0123456789");
    drop(fd);
    assert_eq!(open(&p, F::W | F::C | F::E, 0o600), -libc::EEXIST);

    // Append: writes go to the end whatever the offset.
    let fd = own(open(&p, F::W | F::A, 0));
    assert_ne!(status_flags(fd.as_raw_fd()) & libc::O_APPEND, 0);
    assert_eq!(os_seek_file(fd.as_raw_fd(), 0), 0);
    write_all(fd.as_raw_fd(), b"AB");
    drop(fd);
    assert_eq!(std::fs::read(&path).unwrap(), b"0123456789AB");

    // Sync.
    let fd = own(open(&p, F::W | F::S, 0));
    assert_eq!(status_flags(fd.as_raw_fd()) & libc::O_SYNC, libc::O_SYNC);
    drop(fd);

    // Truncate.
    let fd = own(open(&p, F::W | F::T, 0));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    drop(fd);

    // Close-on-exec only with `cl`.
    let fd = own(open(&p, F::R | F::CL, 0));
    assert!(is_cloexec(fd.as_raw_fd()));
    assert_eq!(
        // SAFETY: a NULL path is refused before use.
        unsafe { os_open_file(core::ptr::null(), flags(F::R), 0) },
        -libc::EFAULT
    );
}

// ---------------------------------------------------------------------------
// plain I/O

#[test]
fn read_write_pread_pwrite_seek() {
    let f = tempfile::tempfile().unwrap();
    let fd = f.as_raw_fd();
    write_all(fd, b"hello world");
    assert_eq!(os_seek_file(fd, 6), 0);
    assert_eq!(read_some(fd, 64), b"world");
    assert_eq!(read_some(fd, 64), b"", "end of file reads 0");

    let mut buf = [0u8; 5];
    assert_eq!(
        // SAFETY: `buf` is writable for 5 bytes.
        unsafe { os_pread_file(fd, buf.as_mut_ptr().cast(), 5, 0) },
        5
    );
    assert_eq!(&buf, b"hello");
    assert_eq!(
        // SAFETY: readable for 5 bytes.
        unsafe { os_pwrite_file(fd, b"HELLO".as_ptr().cast(), 5, 0) },
        5
    );
    // pread/pwrite leave the offset alone: still at the end.
    assert_eq!(read_some(fd, 64), b"");
    assert_eq!(os_seek_file(fd, 0), 0);
    assert_eq!(read_some(fd, 64), b"HELLO world");
    assert_eq!(
        // SAFETY: readable for 1 byte; the offset is past the end.
        unsafe { os_pwrite_file(fd, b"!".as_ptr().cast(), 1, 20) },
        1
    );
    assert_eq!(f.metadata().unwrap().len(), 21);

    assert_eq!(os_fsync_file(fd), 0);
    assert_eq!(os_sync_file(fd), 0);
}

#[test]
fn io_errors_are_negative_errnos() {
    let mut buf = [0u8; 4];
    // SAFETY: `buf` is writable; -1 is no descriptor.
    unsafe {
        assert_eq!(os_read_file(-1, buf.as_mut_ptr().cast(), 4), EBADF);
        assert_eq!(os_write_file(-1, buf.as_ptr().cast(), 4), EBADF);
        assert_eq!(os_pread_file(-1, buf.as_mut_ptr().cast(), 4, 0), EBADF);
        assert_eq!(os_pwrite_file(-1, buf.as_ptr().cast(), 4, 0), EBADF);
    }
    assert_eq!(os_fsync_file(-1), EBADF);
    assert_eq!(os_sync_file(-1), EBADF);
    assert_eq!(os_seek_file(-1, 0), EBADF);
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two ints.
    assert_eq!(unsafe { os_pipe(fds.as_mut_ptr(), 1, 0) }, 0);
    let (a, _b) = (own(fds[0]), own(fds[1]));
    assert_eq!(os_seek_file(a.as_raw_fd(), 0), -libc::ESPIPE);
    assert_eq!(os_fsync_file(a.as_raw_fd()), -libc::EINVAL);
    // A negative length is widened to a huge size_t, as in C; the host
    // rejects it (EFAULT on a readable descriptor, EBADF first otherwise).
    let f = tempfile::tempfile().unwrap();
    assert_eq!(
        // SAFETY: the host rejects the length before touching `buf`.
        unsafe { os_read_file(f.as_raw_fd(), buf.as_mut_ptr().cast(), -1) },
        -libc::EFAULT
    );
    assert_eq!(
        // SAFETY: as above.
        unsafe { os_read_file(-1, buf.as_mut_ptr().cast(), -1) },
        EBADF
    );
    // Nonblocking read with nothing there: EAGAIN, not retried.
    assert_eq!(os_set_fd_block(a.as_raw_fd(), 0), 0);
    assert_eq!(
        // SAFETY: `buf` is writable.
        unsafe { os_read_file(a.as_raw_fd(), buf.as_mut_ptr().cast(), 4) },
        -libc::EAGAIN
    );
}

#[test]
fn dup_and_close() {
    let f = tempfile::tempfile().unwrap();
    assert_eq!(os_set_exec_close(f.as_raw_fd()), 0);
    let d = own(os_dup_file(f.as_raw_fd()));
    assert_ne!(d.as_raw_fd(), f.as_raw_fd());
    assert!(!is_cloexec(d.as_raw_fd()), "dup never copies FD_CLOEXEC");
    write_all(d.as_raw_fd(), b"x");
    assert_eq!(f.metadata().unwrap().len(), 1);
    assert_eq!(os_dup_file(-1), EBADF);

    let raw = d.into_raw_fd();
    // SAFETY: we own `raw` and never use it again.
    unsafe { os_close_file(raw) };
    // SAFETY: F_GETFD on a closed descriptor just fails.
    assert_eq!(unsafe { libc::fcntl(raw, libc::F_GETFD) }, -1);
    // Closing an invalid descriptor is silently ignored, as in C.
    // SAFETY: -1 is nobody's descriptor.
    unsafe { os_close_file(-1) };
}

// ---------------------------------------------------------------------------
// stat, type, access, mode, size, modtime

fn stat_file(p: &CStr) -> (c_int, UmlStat) {
    let mut st = UmlStat::default();
    // SAFETY: `p` is a C string and `st` is writable.
    let rc = unsafe { os_stat_file(p.as_ptr(), &raw mut st) };
    (rc, st)
}

#[test]
fn stat_fields_match_std_metadata() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("f");
    std::fs::write(&path, vec![7u8; 12345]).unwrap();
    std::fs::hard_link(&path, d.path().join("g")).unwrap();
    // Distinct times, so a field mix-up shows.
    let t = |secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let times = std::fs::FileTimes::new()
        .set_accessed(t(1_000_000_000))
        .set_modified(t(1_100_000_000));
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_times(times)
        .unwrap();
    let m = std::fs::metadata(&path).unwrap();
    assert!(m.atime() != m.mtime() && m.mtime() != m.ctime());
    let f = std::fs::File::open(&path).unwrap();
    let mut by_fd = UmlStat::default();
    // SAFETY: `by_fd` is writable.
    assert_eq!(unsafe { os_stat_fd(f.as_raw_fd(), &raw mut by_fd) }, 0);
    let (rc, by_path) = stat_file(&cpath(&path));
    assert_eq!(rc, 0);
    for st in [by_fd, by_path] {
        assert_eq!(st.ust_dev, m.dev() as c_int);
        assert_eq!(st.ust_ino, m.ino());
        assert_eq!(st.ust_mode as u32, m.mode());
        assert_eq!(st.ust_nlink, 2);
        assert_eq!(st.ust_uid as u32, m.uid());
        assert_eq!(st.ust_gid as u32, m.gid());
        assert_eq!(st.ust_size, 12345);
        assert_eq!(st.ust_blksize as u64, m.blksize());
        assert_eq!(st.ust_blocks, m.blocks());
        assert_eq!(st.ust_atime, m.atime() as c_ulong);
        assert_eq!(st.ust_mtime, m.mtime() as c_ulong);
        assert_eq!(st.ust_ctime, m.ctime() as c_ulong);
    }
    // A NULL buffer is allowed: only the status is wanted.
    assert_eq!(
        // SAFETY: NULL `ubuf` is part of the contract.
        unsafe { os_stat_fd(f.as_raw_fd(), core::ptr::null_mut()) },
        0
    );
    assert_eq!(
        // SAFETY: as above.
        unsafe { os_stat_file(cpath(&path).as_ptr(), core::ptr::null_mut()) },
        0
    );
    assert_eq!(stat_file(c"/nonexistent/f").0, -libc::ENOENT);
    // SAFETY: `by_fd` is writable.
    assert_eq!(unsafe { os_stat_fd(-1, &raw mut by_fd) }, EBADF);
    assert_eq!(
        // SAFETY: NULL path refused.
        unsafe { os_stat_file(core::ptr::null(), core::ptr::null_mut()) },
        -libc::EFAULT
    );
}

#[test]
fn uml_stat_truncates_like_c() {
    // SAFETY: stat64 is plain old data.
    let mut st: libc::stat64 = unsafe { core::mem::zeroed() };
    st.st_dev = 0x1_0000_0005;
    st.st_size = -1;
    let u = uml_stat(&st);
    assert_eq!(u.ust_dev, 5);
    assert_eq!(u.ust_size, u64::MAX);
}

/// The block devices under /dev with their sizes from sysfs.
fn block_devices() -> Vec<(CString, u64)> {
    let Ok(dir) = std::fs::read_dir("/sys/class/block") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in dir.flatten() {
        // Loop devices change size under file_size_of_a_block_device_is_the_device_size.
        if e.file_name().as_bytes().starts_with(b"loop") {
            continue;
        }
        let dev = Path::new("/dev").join(e.file_name());
        let is_blk =
            std::fs::metadata(&dev).map(|m| FileKind::from_mode(m.mode()) == FileKind::BlockDev);
        let Ok(sectors) = std::fs::read_to_string(e.path().join("size")) else {
            continue;
        };
        let Ok(sectors) = sectors.trim().parse::<u64>() else {
            continue;
        };
        if is_blk.unwrap_or(false) {
            found.push((cpath(&dev), sectors * 512));
        }
    }
    found
}

fn some_block_device() -> Option<(CString, u64)> {
    block_devices().into_iter().next()
}

#[test]
fn file_types() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let link = d.path().join("link");
    std::os::unix::fs::symlink(d.path(), &link).unwrap();
    let dangling = d.path().join("dangling");
    std::os::unix::fs::symlink("/nonexistent/x", &dangling).unwrap();
    let fifo = cpath(&d.path().join("fifo"));
    // SAFETY: `fifo` is a C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let sock = d.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();

    let ty = |p: &CStr| {
        // SAFETY: a C string; the function does not write through it.
        unsafe { os_file_type(p.as_ptr().cast_mut()) }
    };
    assert_eq!(ty(&cpath(&file)), os_type::FILE);
    assert_eq!(ty(&cpath(d.path())), os_type::DIR);
    // stat follows links: a link to a directory is a directory.
    assert_eq!(ty(&cpath(&link)), os_type::DIR);
    assert_eq!(ty(&cpath(&dangling)), -libc::ENOENT);
    assert_eq!(ty(&fifo), os_type::FIFO);
    assert_eq!(ty(&cpath(&sock)), os_type::SOCK);
    assert_eq!(ty(c"/dev/null"), os_type::CHARDEV);
    if let Some((blk, _)) = some_block_device() {
        assert_eq!(ty(&blk), os_type::BLOCKDEV);
    }
}

#[test]
fn access_with_os_acc_bits() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("f");
    std::fs::write(&f, b"").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = cpath(&f);
    let acc = |p: &CStr, m| {
        // SAFETY: a C string.
        unsafe { os_access(p.as_ptr(), m) }
    };
    assert_eq!(acc(&p, os_acc::F_OK), 0);
    assert_eq!(acc(&p, os_acc::R_OK), 0);
    assert_eq!(acc(&p, os_acc::R_OK | os_acc::W_OK), 0);
    // Without any execute bit even root is refused X_OK.
    assert_eq!(acc(&p, os_acc::X_OK), -libc::EACCES);
    assert_eq!(acc(&p, os_acc::R_OK | os_acc::X_OK), -libc::EACCES);
    assert_eq!(acc(c"/nonexistent/f", os_acc::F_OK), -libc::ENOENT);
    assert_eq!(
        host_amode(os_acc::R_OK | os_acc::W_OK | os_acc::X_OK),
        libc::R_OK | libc::W_OK | libc::X_OK
    );
}

#[test]
fn mode_fd_changes_permissions() {
    let f = tempfile::NamedTempFile::new().unwrap();
    assert_eq!(os_mode_fd(f.as_file().as_raw_fd(), 0o604), 0);
    assert_eq!(std::fs::metadata(f.path()).unwrap().mode() & 0o7777, 0o604);
    assert_eq!(os_mode_fd(-1, 0o600), EBADF);
}

fn file_mode(p: &CStr) -> (c_int, u32) {
    let mut m = OpenFlags(0xdead);
    // SAFETY: a C string and a writable openflags.
    let rc = unsafe { os_file_mode(p.as_ptr(), &raw mut m) };
    (rc, m.0)
}

/// Drops to uid/gid 65534 in this (forked, single-threaded) process, with
/// raw system calls so only this thread is affected.
fn become_nobody() {
    // SAFETY: plain credential system calls without memory arguments.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_setgroups, 0, core::ptr::null::<libc::gid_t>()),
            0
        );
        assert_eq!(libc::syscall(libc::SYS_setresgid, 65534, 65534, 65534), 0);
        assert_eq!(libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534), 0);
    }
}

#[test]
fn file_mode_reports_rw_and_cs_return_value() {
    use OpenFlags as F;
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mk = |name: &str, mode: u32| {
        let p = d.path().join(name);
        std::fs::write(&p, b"").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        cpath(&p)
    };
    let rw = mk("rw", 0o666);
    let ro = mk("ro", 0o644);
    let wo = mk("wo", 0o622);
    let none = mk("none", 0o600);

    assert_eq!(file_mode(&rw), (0, F::R | F::W));
    assert_eq!(
        file_mode(c"/nonexistent/f"),
        (-libc::ENOENT, 0),
        "cleared even on error"
    );
    assert_eq!(
        file_mode(&cpath(&d.path().join("rw/x"))),
        (-libc::ENOTDIR, 0)
    );
    assert_eq!(
        // SAFETY: NULL mode_out refused.
        unsafe { os_file_mode(rw.as_ptr(), core::ptr::null_mut()) },
        -libc::EFAULT
    );

    // SAFETY: geteuid has no arguments.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: denied-access cases of os_file_mode not tested");
        return;
    }
    // As root everything is readable and writable.
    assert_eq!(file_mode(&none), (0, F::R | F::W));
    let status = in_child(|| {
        become_nobody();
        assert_eq!(file_mode(&rw), (0, F::R | F::W));
        assert_eq!(file_mode(&ro), (0, F::R));
        // Read denied: the raw -1 of access(2), not an errno, as in C; the
        // write bit found before it is kept.
        assert_eq!(file_mode(&wo), (-1, F::W));
        assert_eq!(file_mode(&none), (-1, 0));
        0
    });
    assert_eq!(status, 0);
}

#[test]
fn file_size_of_files_and_devices() {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), vec![1u8; 5000]).unwrap();
    let size = |p: &CStr| {
        let mut s: c_ulonglong = 0xdead;
        // SAFETY: a C string and a writable u64.
        let rc = unsafe { os_file_size(p.as_ptr(), &raw mut s) };
        (rc, s)
    };
    assert_eq!(size(&cpath(f.path())), (0, 5000));
    assert_eq!(size(c"/dev/null"), (0, 0));
    assert_eq!(
        size(c"/nonexistent/f"),
        (-libc::ENOENT, 0xdead),
        "untouched on error"
    );
    // A device node's st_size is 0: a non-empty device shows BLKGETSIZE
    // was used. One that cannot be opened here gives the open error.
    let mut nonempty = false;
    for (dev, bytes) in block_devices() {
        let path = std::ffi::OsStr::from_bytes(dev.as_bytes());
        match std::fs::File::open(path) {
            Ok(_) => {
                assert_eq!(size(&dev), (0, bytes), "{dev:?}");
                nonempty |= bytes > 0;
            }
            Err(e) => assert_eq!(size(&dev), (-e.raw_os_error().unwrap(), 0xdead), "{dev:?}"),
        }
    }
    if !nonempty {
        eprintln!(
            "no openable non-empty block device: BLKGETSIZE path only checked on empty devices"
        );
    }
}

/// A loop device backed by a temporary file, detached on drop.
struct LoopDev {
    dev: std::fs::File,
    path: CString,
}

impl LoopDev {
    const LOOP_SET_FD: libc::Ioctl = 0x4c00;
    const LOOP_CLR_FD: libc::Ioctl = 0x4c01;
    const LOOP_CTL_GET_FREE: libc::Ioctl = 0x4c82;

    /// Attaches `backing`, or `None` where loop devices are not available.
    fn attach(backing: &std::fs::File) -> Option<Self> {
        let ctl = std::fs::File::open("/dev/loop-control").ok()?;
        // SAFETY: LOOP_CTL_GET_FREE takes no argument.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), Self::LOOP_CTL_GET_FREE) };
        if n < 0 {
            return None;
        }
        let name = format!("/dev/loop{n}");
        let dev = std::fs::File::options()
            .read(true)
            .write(true)
            .open(&name)
            .ok()?;
        // SAFETY: LOOP_SET_FD takes the backing descriptor as its argument.
        let rc = unsafe { libc::ioctl(dev.as_raw_fd(), Self::LOOP_SET_FD, backing.as_raw_fd()) };
        (rc == 0).then(|| Self {
            dev,
            path: CString::new(name).unwrap(),
        })
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        // SAFETY: LOOP_CLR_FD takes no argument.
        unsafe { libc::ioctl(self.dev.as_raw_fd(), Self::LOOP_CLR_FD, 0) };
    }
}

#[test]
fn file_size_of_a_block_device_is_the_device_size() {
    let backing = tempfile::tempfile().unwrap();
    let bytes = 3 * 1024 * 1024 + 7 * 512;
    backing.set_len(bytes).unwrap();
    let Some(lo) = LoopDev::attach(&backing) else {
        eprintln!("no loop device available: block-device size not tested");
        return;
    };
    let mut s: c_ulonglong = 0;
    // SAFETY: a C string and a writable u64.
    assert_eq!(unsafe { os_file_size(lo.path.as_ptr(), &raw mut s) }, 0);
    assert_eq!(s, bytes, "BLKGETSIZE * 512, not the node's st_size (0)");
    assert_eq!(
        // SAFETY: a C string.
        unsafe { os_file_type(lo.path.as_ptr().cast_mut()) },
        os_type::BLOCKDEV
    );
}

#[test]
fn modtime_is_mtime_seconds() {
    let f = tempfile::NamedTempFile::new().unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890);
    f.as_file().set_modified(when).unwrap();
    let mut t: i64 = 0;
    assert_eq!(
        // SAFETY: a C string and a writable i64.
        unsafe { os_file_modtime(cpath(f.path()).as_ptr(), &raw mut t) },
        0
    );
    assert_eq!(t, 1_234_567_890);
    assert_eq!(
        // SAFETY: as above.
        unsafe { os_file_modtime(c"/nonexistent/f".as_ptr(), &raw mut t) },
        -libc::ENOENT
    );
}

// ---------------------------------------------------------------------------
// descriptor flags

#[test]
fn set_exec_close() {
    let f = tempfile::tempfile().unwrap();
    // SAFETY: F_SETFD with an int.
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFD, 0) };
    assert!(!is_cloexec(f.as_raw_fd()));
    assert_eq!(os_set_exec_close(f.as_raw_fd()), 0);
    assert!(is_cloexec(f.as_raw_fd()));
    assert_eq!(os_set_exec_close(-1), EBADF);
}

#[test]
fn fd_async_and_blocking_flags() {
    let mut fds = [0; 2];
    // SAFETY: room for two ints.
    assert_eq!(unsafe { os_pipe(fds.as_mut_ptr(), 1, 0) }, 0);
    let (a, _b) = (own(fds[0]), own(fds[1]));
    let fd = a.as_raw_fd();
    // Nothing is ever written, so no SIGIO reaches the test process.
    assert_eq!(os_set_fd_async(fd), 0);
    let fl = status_flags(fd);
    assert_eq!(
        fl & (libc::O_ASYNC | libc::O_NONBLOCK),
        libc::O_ASYNC | libc::O_NONBLOCK
    );
    // SAFETY: F_GETOWN / F_GETSIG take no argument.
    let (owner, sig) = unsafe {
        (
            libc::fcntl(fd, libc::F_GETOWN),
            libc::fcntl(fd, 11 /* F_GETSIG */),
        )
    };
    // SAFETY: getpid has no arguments.
    assert_eq!(owner, unsafe { libc::getpid() });
    assert_eq!(sig, libc::SIGIO);
    assert_eq!(os_clear_fd_async(fd), 0);
    assert_eq!(status_flags(fd) & (libc::O_ASYNC | libc::O_NONBLOCK), 0);

    assert_eq!(os_set_fd_block(fd, 0), 0);
    assert_ne!(status_flags(fd) & libc::O_NONBLOCK, 0);
    assert_eq!(os_set_fd_block(fd, 1), 0);
    assert_eq!(status_flags(fd) & libc::O_NONBLOCK, 0);

    assert_eq!(os_set_fd_async(-1), EBADF);
    assert_eq!(os_clear_fd_async(-1), EBADF);
    assert_eq!(os_set_fd_block(-1, 1), EBADF);
}

#[test]
fn set_fd_direct() {
    // A regular file (the temporary directory's filesystem; ext4 and tmpfs
    // both do direct I/O).
    let f = tempfile::tempfile().unwrap();
    let fd = f.as_raw_fd();
    assert_eq!(status_flags(fd) & libc::O_DIRECT, 0);
    assert_eq!(os_set_fd_direct(fd), 0);
    assert_ne!(status_flags(fd) & libc::O_DIRECT, 0);
    // A 512-byte aligned sector goes through; a misaligned one does not,
    // which proves the flag reached the host and not just F_GETFL.
    let mut block = vec![0u8; 2 * 4096];
    let at = block.as_ptr().align_offset(4096);
    let aligned = &mut block[at..at + 4096];
    aligned.fill(0x5a);
    // SAFETY: `aligned` is 4096 readable bytes.
    let n = unsafe { libc::pwrite(fd, aligned.as_ptr().cast(), 4096, 0) };
    assert_eq!(n, 4096);
    // SAFETY: 100 readable bytes.
    let n = unsafe { libc::pwrite(fd, aligned.as_ptr().cast(), 100, 7) };
    assert_eq!((n, Errno::last()), (-1, Errno::EINVAL));

    // procfs cannot do direct I/O: F_SETFL refuses it.
    let status = std::fs::File::open("/proc/self/status").unwrap();
    assert_eq!(os_set_fd_direct(status.as_raw_fd()), -libc::EINVAL);
    assert_eq!(os_set_fd_direct(-1), EBADF);
}

#[test]
fn ioctls() {
    let mut fds = [0; 2];
    // SAFETY: room for two ints.
    assert_eq!(unsafe { os_pipe(fds.as_mut_ptr(), 1, 0) }, 0);
    let (a, b) = (own(fds[0]), own(fds[1]));
    write_all(b.as_raw_fd(), b"12345");
    let mut pending: c_int = -1;
    // SAFETY: FIONREAD writes one int.
    let rc = unsafe {
        os_ioctl_generic(
            a.as_raw_fd(),
            libc::FIONREAD as c_uint,
            (&raw mut pending) as c_ulong,
        )
    };
    assert_eq!((rc, pending), (0, 5));
    let f = tempfile::tempfile().unwrap();
    assert_eq!(
        // SAFETY: TIOCGPTN on a regular file fails before touching memory.
        unsafe {
            os_ioctl_generic(
                f.as_raw_fd(),
                libc::TIOCGPTN as c_uint,
                (&raw mut pending) as c_ulong,
            )
        },
        -libc::ENOTTY
    );
    let mut name = [0 as c_char; 64];
    assert_eq!(
        // SAFETY: `name` is larger than IFNAMSIZ.
        unsafe { os_get_ifname(f.as_raw_fd(), name.as_mut_ptr()) },
        -libc::ENOTTY
    );
    assert_eq!(os_set_slip(f.as_raw_fd()), -libc::ENOTTY);
    assert_eq!(os_set_slip(-1), EBADF);
}

// ---------------------------------------------------------------------------
// sockets

fn sock_type(fd: RawFd) -> c_int {
    let mut ty: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: SO_TYPE writes one int.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&raw mut ty).cast(),
            &raw mut len,
        )
    };
    assert_eq!(rc, 0);
    ty
}

#[test]
fn pipes_stream_and_datagram_with_and_without_cloexec() {
    for (stream, kind) in [(1, libc::SOCK_STREAM), (0, libc::SOCK_DGRAM)] {
        for cloexec in [0, 1] {
            let mut fds = [-1; 2];
            // SAFETY: room for two ints.
            assert_eq!(unsafe { os_pipe(fds.as_mut_ptr(), stream, cloexec) }, 0);
            let (a, b) = (own(fds[0]), own(fds[1]));
            for fd in [&a, &b] {
                assert_eq!(sock_type(fd.as_raw_fd()), kind);
                assert_eq!(is_cloexec(fd.as_raw_fd()), cloexec != 0);
            }
            // Both directions; datagrams keep their boundaries.
            write_all(a.as_raw_fd(), b"ab");
            write_all(a.as_raw_fd(), b"cd");
            let first = read_some(b.as_raw_fd(), 16);
            if kind == libc::SOCK_DGRAM {
                assert_eq!(first, b"ab");
            }
            write_all(b.as_raw_fd(), b"back");
            assert_eq!(read_some(a.as_raw_fd(), 16), b"back");
        }
    }
}

#[test]
fn connect_accept_shutdown() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let p = cpath(&path);
    // SAFETY: a C string.
    let client = own(unsafe { os_connect_socket(p.as_ptr()) });
    assert_eq!(sock_type(client.as_raw_fd()), libc::SOCK_STREAM);
    assert!(!is_cloexec(client.as_raw_fd()));
    let server = own(os_accept_connection(listener.as_raw_fd()));
    assert!(!is_cloexec(server.as_raw_fd()));
    // A regression must fail the test, not hang it.
    for fd in [&client, &server] {
        let tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: SO_RCVTIMEO reads one timeval.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
    }

    write_all(client.as_raw_fd(), b"ping");
    assert_eq!(read_some(server.as_raw_fd(), 16), b"ping");
    // Shut down the client's writing side: the server reads end-of-file,
    // while the other direction still works.
    assert_eq!(os_shutdown_socket(client.as_raw_fd(), 0, 1), 0);
    assert_eq!(read_some(server.as_raw_fd(), 16), b"");
    write_all(server.as_raw_fd(), b"pong");
    assert_eq!(read_some(client.as_raw_fd(), 16), b"pong");
    // Reading side: reads return end-of-file at once.
    assert_eq!(os_shutdown_socket(client.as_raw_fd(), 1, 0), 0);
    assert_eq!(read_some(client.as_raw_fd(), 16), b"");
    assert_eq!(os_shutdown_socket(server.as_raw_fd(), 1, 1), 0);
    assert_eq!(os_shutdown_socket(server.as_raw_fd(), 0, 0), -libc::EINVAL);
    assert_eq!(os_shutdown_socket(-1, 1, 1), EBADF);

    assert_eq!(
        // SAFETY: a C string.
        unsafe { os_connect_socket(c"/nonexistent/sock".as_ptr()) },
        -libc::ENOENT
    );
    // A socket that is not listening cannot accept.
    assert_eq!(os_accept_connection(client.as_raw_fd()), -libc::EINVAL);
    assert_eq!(os_accept_connection(-1), EBADF);
}

#[test]
fn create_unix_socket_binds_a_datagram_socket() {
    let d = tempfile::tempdir().unwrap();
    for cloexec in [0, 1] {
        let path = d.path().join(format!("s{cloexec}"));
        let p = cpath(&path);
        // Like the C callers: `len` is the size of their name buffer.
        // SAFETY: a C string.
        let fd = own(unsafe { os_create_unix_socket(p.as_ptr(), 256, cloexec) });
        assert_eq!(sock_type(fd.as_raw_fd()), libc::SOCK_DGRAM);
        assert_eq!(is_cloexec(fd.as_raw_fd()), cloexec != 0);
        assert_eq!(
            FileKind::from_mode(std::fs::metadata(&path).unwrap().mode()),
            FileKind::Socket
        );
        // It receives what is sent to that name.
        let tx = std::os::unix::net::UnixDatagram::unbound().unwrap();
        tx.send_to(b"dgram", &path).unwrap();
        assert_eq!(read_some(fd.as_raw_fd(), 16), b"dgram");
        // The name is taken now.
        assert_eq!(
            // SAFETY: a C string.
            unsafe { os_create_unix_socket(p.as_ptr(), 256, cloexec) },
            -libc::EADDRINUSE
        );
    }
    // `len` bounds the name used: a truncated name in a missing directory.
    let long = d.path().join("dir/that/does/not/exist");
    let p = cpath(&long);
    let cut = d.path().as_os_str().len() + "/dir/that".len() + 1;
    assert_eq!(
        // SAFETY: a C string.
        unsafe { os_create_unix_socket(p.as_ptr(), cut as c_int, 0) },
        -libc::ENOENT
    );
    let cut_to_dir = d.path().as_os_str().len() + 1;
    // "<dir>" only: an existing directory cannot be bound over.
    assert_eq!(
        // SAFETY: a C string.
        unsafe { os_create_unix_socket(p.as_ptr(), cut_to_dir as c_int, 0) },
        -libc::EADDRINUSE
    );
}

#[test]
fn passes_two_descriptors_that_work() {
    let mut sp = [-1; 2];
    // SAFETY: room for two ints.
    assert_eq!(unsafe { os_pipe(sp.as_mut_ptr(), 0, 1) }, 0);
    let (tx, rx) = (own(sp[0]), own(sp[1]));
    let file = tempfile::tempfile().unwrap();
    let mut pp = [-1; 2];
    // SAFETY: room for two ints.
    assert_eq!(unsafe { os_pipe(pp.as_mut_ptr(), 1, 0) }, 0);
    let (p_read, p_write) = (own(pp[0]), own(pp[1]));
    // Mark one cloexec: the received copy must still be plain (no
    // MSG_CMSG_CLOEXEC), as in C.
    assert_eq!(os_set_exec_close(file.as_raw_fd()), 0);

    let send = [file.as_raw_fd(), p_write.as_raw_fd()];
    let msg = b"two fds";
    // SAFETY: `msg` and `send` are readable for their lengths.
    let sent = unsafe {
        os_sendmsg_fds(
            tx.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len() as c_uint,
            send.as_ptr(),
            2,
        )
    };
    assert_eq!(sent, msg.len() as c_int);
    drop(p_write);

    let mut got = [-1; 2];
    let mut data = [0u8; 32];
    // SAFETY: `got` holds two ints and `data` is writable.
    let n = unsafe {
        os_rcv_fd_msg(
            rx.as_raw_fd(),
            got.as_mut_ptr(),
            2,
            data.as_mut_ptr().cast(),
            data.len(),
        )
    };
    assert_eq!(n, msg.len() as isize);
    assert_eq!(&data[..msg.len()], msg);
    let (got_file, got_write) = (own(got[0]), own(got[1]));
    assert!(!is_cloexec(got_file.as_raw_fd()));
    assert!(!is_cloexec(got_write.as_raw_fd()));
    // The received file is the same open file: same offset, same inode.
    write_all(got_file.as_raw_fd(), b"via passed fd");
    assert_eq!(file.metadata().unwrap().len(), 13);
    assert_eq!(os_seek_file(file.as_raw_fd(), 0), 0);
    assert_eq!(read_some(file.as_raw_fd(), 64), b"via passed fd");
    // The received pipe end writes into our pipe.
    write_all(got_write.as_raw_fd(), b"through");
    assert_eq!(read_some(p_read.as_raw_fd(), 64), b"through");
}

#[test]
fn fd_message_limits_and_plain_messages() {
    let mut sp = [-1; 2];
    // SAFETY: room for two ints.
    assert_eq!(unsafe { os_pipe(sp.as_mut_ptr(), 0, 0) }, 0);
    let (tx, rx) = (own(sp[0]), own(sp[1]));
    let many = [0; OS_SENDMSG_MAX_FDS + 1];
    // SAFETY: readable buffers.
    unsafe {
        assert_eq!(
            os_sendmsg_fds(
                tx.as_raw_fd(),
                b"x".as_ptr().cast(),
                1,
                many.as_ptr(),
                many.len() as c_uint
            ),
            -libc::EINVAL
        );
        // No descriptors at all: data only.
        assert_eq!(
            os_sendmsg_fds(
                tx.as_raw_fd(),
                b"plain".as_ptr().cast(),
                5,
                core::ptr::null(),
                0
            ),
            5
        );
    }
    let mut got = [-1; 3];
    let mut data = [0u8; 16];
    // SAFETY: `got` holds 3 ints, `data` is writable.
    unsafe {
        assert_eq!(
            os_rcv_fd_msg(
                rx.as_raw_fd(),
                got.as_mut_ptr(),
                3,
                data.as_mut_ptr().cast(),
                16
            ),
            -libc::EINVAL as isize
        );
        assert_eq!(
            os_rcv_fd_msg(
                rx.as_raw_fd(),
                got.as_mut_ptr(),
                2,
                data.as_mut_ptr().cast(),
                16
            ),
            5
        );
    }
    assert_eq!(&data[..5], b"plain");
    assert_eq!(got, [-1; 3], "no descriptors stored");
    assert_eq!(
        // SAFETY: no descriptor: bad fd.
        unsafe { os_rcv_fd_msg(-1, got.as_mut_ptr(), 1, data.as_mut_ptr().cast(), 16) },
        EBADF as isize
    );
    assert_eq!(
        // SAFETY: as above.
        unsafe { os_sendmsg_fds(-1, data.as_ptr().cast(), 1, core::ptr::null(), 0) },
        EBADF
    );
}

// ---------------------------------------------------------------------------
// locks, fallocate, eventfd, poll, mappings, device numbers, stdout

#[test]
fn lock_file_conflicts_with_another_process() {
    let f = tempfile::NamedTempFile::new().unwrap();
    let p = cpath(f.path());
    let fd = own(open(&p, OpenFlags::R | OpenFlags::W, 0));
    assert_eq!(os_lock_file(fd.as_raw_fd(), 1), 0);
    // Re-locking in the same process is fine: POSIX locks are per process.
    assert_eq!(os_lock_file(fd.as_raw_fd(), 0), 0);
    assert_eq!(os_lock_file(fd.as_raw_fd(), 1), 0);
    let child = in_child(|| {
        let own_fd = open(&p, OpenFlags::R | OpenFlags::W, 0);
        -os_lock_file(own_fd, 1)
    });
    assert_eq!(child, libc::EAGAIN);
    assert_eq!(os_lock_file(-1, 0), EBADF);
}

#[test]
fn falloc_punch_and_zeroes_keep_size() {
    let f = tempfile::tempfile().unwrap();
    let fd = f.as_raw_fd();
    let page = 4096usize;
    write_all(fd, &vec![0xaa; 4 * page]);
    assert_eq!(os_fsync_file(fd), 0);
    let blocks_before = f.metadata().unwrap().blocks();

    let punch = os_falloc_punch(fd, page as u64, page as c_int);
    if punch == -libc::EOPNOTSUPP {
        eprintln!("temp dir file system cannot punch holes: not tested");
        return;
    }
    assert_eq!(punch, 0);
    assert_eq!(f.metadata().unwrap().len(), 4 * page as u64);
    assert!(
        f.metadata().unwrap().blocks() < blocks_before,
        "hole deallocated"
    );
    assert_eq!(os_falloc_zeroes(fd, 3 * page as u64, page as c_int), 0);
    assert_eq!(f.metadata().unwrap().len(), 4 * page as u64);
    // Past the end too: KEEP_SIZE leaves the size alone.
    assert_eq!(os_falloc_zeroes(fd, 4 * page as u64, page as c_int), 0);
    assert_eq!(f.metadata().unwrap().len(), 4 * page as u64);

    assert_eq!(os_seek_file(fd, 0), 0);
    let mut all = Vec::new();
    while all.len() < 4 * page {
        let chunk = read_some(fd, 4 * page - all.len());
        assert!(!chunk.is_empty());
        all.extend(chunk);
    }
    assert!(all[..page].iter().all(|&b| b == 0xaa));
    assert!(all[page..2 * page].iter().all(|&b| b == 0));
    assert!(all[2 * page..3 * page].iter().all(|&b| b == 0xaa));
    assert!(all[3 * page..].iter().all(|&b| b == 0));
    // The int length is sign-extended as in C: negative is EINVAL.
    assert_eq!(os_falloc_punch(fd, 0, -1), -libc::EINVAL);
    assert_eq!(os_falloc_zeroes(-1, 0, 1), EBADF);
}

#[test]
fn eventfd_counts_and_honours_flags() {
    let fd = own(os_eventfd(3, 0));
    assert!(!is_cloexec(fd.as_raw_fd()));
    write_all(fd.as_raw_fd(), &4u64.to_ne_bytes());
    assert_eq!(read_some(fd.as_raw_fd(), 8), 7u64.to_ne_bytes());

    let fd = own(os_eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK));
    assert!(is_cloexec(fd.as_raw_fd()));
    let mut b = [0u8; 8];
    assert_eq!(
        // SAFETY: `b` is writable for 8 bytes.
        unsafe { os_read_file(fd.as_raw_fd(), b.as_mut_ptr().cast(), 8) },
        -libc::EAGAIN
    );
    assert_eq!(os_eventfd(0, -1), -libc::EINVAL);
}

#[test]
fn poll_returns_ready_index() {
    let pair = || {
        let mut fds = [-1; 2];
        // SAFETY: room for two ints.
        assert_eq!(unsafe { os_pipe(fds.as_mut_ptr(), 1, 0) }, 0);
        (own(fds[0]), own(fds[1]))
    };
    let (a0, a1) = pair();
    let (b0, _b1) = pair();
    let fds = [a0.as_raw_fd(), b0.as_raw_fd()];
    write_all(a1.as_raw_fd(), b"x");
    // SAFETY: `fds` holds two ints.
    assert_eq!(unsafe { os_poll(2, fds.as_ptr()) }, 0);
    let rev = [b0.as_raw_fd(), a0.as_raw_fd()];
    // SAFETY: as above.
    assert_eq!(unsafe { os_poll(2, rev.as_ptr()) }, 1);
    // SAFETY: as above.
    assert_eq!(unsafe { os_poll(1, fds.as_ptr()) }, 0);
    let three = [0; 3];
    // SAFETY: `three` holds three ints.
    assert_eq!(unsafe { os_poll(3, three.as_ptr()) }, -libc::EINVAL);
}

#[test]
fn shared_mapping_and_remap() {
    let f = tempfile::tempfile().unwrap();
    f.set_len(8192).unwrap();
    let fd = f.as_raw_fd();
    let p = os_mmap_rw_shared(fd, 8192);
    assert!(!p.is_null());
    // SAFETY: the mapping is 8192 bytes, read-write, ours.
    unsafe { core::ptr::write_bytes(p.cast::<u8>(), 0x5a, 8192) };
    let mut back = [0u8; 4];
    assert_eq!(
        // SAFETY: `back` is writable.
        unsafe { os_pread_file(fd, back.as_mut_ptr().cast(), 4, 8188) },
        4
    );
    assert_eq!(back, [0x5a; 4], "writes through the mapping reach the file");

    f.set_len(3 * 8192).unwrap();
    // SAFETY: `p` is our 8192-byte mapping, not used after a success.
    let q = unsafe { os_mremap_rw_shared(p, 8192, 3 * 8192) };
    assert!(!q.is_null());
    // SAFETY: `q` is now a 24 KiB read-write mapping of the file.
    unsafe {
        assert_eq!(*q.cast::<u8>(), 0x5a);
        *q.cast::<u8>().add(2 * 8192) = 0x77;
    }
    assert_eq!(
        // SAFETY: `back` is writable.
        unsafe { os_pread_file(fd, back.as_mut_ptr().cast(), 1, 2 * 8192) },
        1
    );
    assert_eq!(back[0], 0x77);
    // SAFETY: unmapping our own mapping.
    assert_eq!(unsafe { libc::munmap(q, 3 * 8192) }, 0);

    assert!(os_mmap_rw_shared(-1, 4096).is_null());
    assert!(os_mmap_rw_shared(fd, 0).is_null(), "zero length fails");
    assert!(
        // SAFETY: an unaligned address fails without touching anything.
        unsafe { os_mremap_rw_shared(core::ptr::without_provenance_mut(1), 4096, 8192) }.is_null()
    );
}

#[test]
fn device_numbers() {
    let null = std::fs::metadata("/dev/null").unwrap().rdev();
    assert_eq!((os_major(null), os_minor(null)), (1, 3));
    assert_eq!(os_makedev(1, 3), null);
    assert_eq!(os_makedev(259, 70000), libc::makedev(259, 70000));
    assert_eq!(
        (
            os_major(os_makedev(4095, 1 << 20)),
            os_minor(os_makedev(4095, 1 << 20))
        ),
        (4095, 1 << 20)
    );
}

unsafe extern "C" {
    /// The C library's standard output stream.
    #[link_name = "stdout"]
    static mut c_stdout: *mut libc::FILE;
}

#[test]
fn flush_stdout_flushes_c_stdio() {
    let mut fds = [-1; 2];
    // SAFETY: room for two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (r, w) = (own(fds[0]), own(fds[1]));
    let child = in_child(|| {
        // stdio fully buffers output to a pipe, so nothing is written until a flush.
        // SAFETY: in the forked child only; fd 1 becomes the pipe's write end.
        unsafe {
            libc::dup2(w.as_raw_fd(), 1);
            libc::fputs(c"buffered".as_ptr(), c_stdout);
        }
        os_flush_stdout();
        // _exit (in in_child) does not flush: only os_flush_stdout did.
        0
    });
    assert_eq!(child, 0);
    drop(w);
    assert_eq!(read_some(r.as_raw_fd(), 64), b"buffered");
}
