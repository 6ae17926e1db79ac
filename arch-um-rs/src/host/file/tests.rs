// SPDX-License-Identifier: GPL-2.0
//! Tests of the file core that the ABI tests (abi/file/tests.rs) do not
//! reach: helpers, and behaviour easier to pin at this level.

use super::*;
use crate::host::exec::tests::in_child;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

fn cpath(p: &std::path::Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

#[test]
fn retry_eintr_retries_only_eintr() {
    let mut calls = 0;
    let r = retry_eintr(|| {
        calls += 1;
        if calls < 3 {
            Err(Errno::EINTR)
        } else {
            Ok(calls)
        }
    });
    assert_eq!((r, calls), (Ok(3), 3));
    let mut calls = 0;
    let r: Result<()> = retry_eintr(|| {
        calls += 1;
        Err(Errno::EAGAIN)
    });
    assert_eq!((r, calls), (Err(Errno::EAGAIN), 1));
}

#[test]
fn file_kind_from_every_mode() {
    assert_eq!(FileKind::from_mode(libc::S_IFREG | 0o644), FileKind::File);
    assert_eq!(FileKind::from_mode(libc::S_IFDIR | 0o755), FileKind::Dir);
    assert_eq!(
        FileKind::from_mode(libc::S_IFLNK | 0o777),
        FileKind::Symlink
    );
    assert_eq!(FileKind::from_mode(libc::S_IFCHR), FileKind::CharDev);
    assert_eq!(FileKind::from_mode(libc::S_IFBLK), FileKind::BlockDev);
    assert_eq!(FileKind::from_mode(libc::S_IFIFO), FileKind::Fifo);
    assert_eq!(FileKind::from_mode(libc::S_IFSOCK), FileKind::Socket);
    assert_eq!(
        FileKind::from_mode(0),
        FileKind::File,
        "unknown type is a file, as in C"
    );
}

#[test]
fn cstr_display_escapes_invalid_utf8() {
    let s = crate::kernel::stack_format(format_args!("{}", CStrDisplay(c"/a\xffb/\xc3\xa9")));
    assert_eq!(s.as_str(), "/a\\xffb/\u{e9}");
}

#[test]
fn stat_matches_std_metadata() {
    use std::os::unix::fs::MetadataExt;
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), b"0123456789").unwrap();
    let m = std::fs::metadata(f.path()).unwrap();
    for st in [
        stat_path(&cpath(f.path())).unwrap(),
        stat_fd(f.as_file().as_raw_fd()).unwrap(),
    ] {
        assert_eq!(st.st_ino, m.ino());
        assert_eq!(st.st_dev, m.dev());
        assert_eq!(st.st_size, 10);
        assert_eq!(st.st_mode, m.mode());
        assert_eq!(st.st_mtime, m.mtime());
    }
    assert_eq!(stat_path(c"/nonexistent/x").unwrap_err(), Errno::ENOENT);
    assert_eq!(stat_fd(-1).unwrap_err(), Errno::EBADF);
}

#[test]
fn may_access_maps_eacces_to_false() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("f");
    std::fs::write(&f, b"").unwrap();
    let cf = cpath(&f);
    assert_eq!(may_access(&cf, libc::R_OK), Ok(true));
    // Root needs at least one execute bit for X_OK: EACCES, so "no".
    assert_eq!(may_access(&cf, libc::X_OK), Ok(false));
    assert_eq!(
        may_access(c"/nonexistent/x", libc::R_OK),
        Err(Errno::ENOENT)
    );
}

#[test]
fn seek_reports_cs_success_test() {
    let f = tempfile::tempfile().unwrap();
    let fd = f.as_raw_fd();
    assert_eq!(seek_set(fd, 1 << 40), Ok(()));
    // SAFETY: no memory arguments.
    assert_eq!(unsafe { libc::lseek64(fd, 0, libc::SEEK_CUR) }, 1 << 40);
    // Offsets past i64::MAX are negative off64_t: EINVAL.
    assert_eq!(seek_set(fd, 1 << 63), Err(Errno::EINVAL));
    // u64::MAX is -1 as off64_t, which fails with the -1 that the C test
    // `actual != offset` takes for success. Kept as C has it.
    assert_eq!(seek_set(fd, u64::MAX), Ok(()));
    assert_eq!(seek_set(-1, 0), Err(Errno::EBADF));
}

#[test]
fn open_sets_cloexec_after_the_open_only_when_asked() {
    let d = tempfile::tempdir().unwrap();
    let p = cpath(&d.path().join("f"));
    for cloexec in [false, true] {
        let fd = open(&p, libc::O_RDWR | libc::O_CREAT, 0o600, cloexec).unwrap();
        // SAFETY: F_GETFD takes no argument.
        let fdflags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(fdflags & libc::FD_CLOEXEC != 0, cloexec);
    }
}

#[test]
fn posix_lock_conflicts_with_an_ofd_lock() {
    let f = tempfile::NamedTempFile::new().unwrap();
    let p = cpath(f.path());
    let a = open(&p, libc::O_RDWR, 0, false).unwrap();
    let b = open(&p, libc::O_RDWR, 0, false).unwrap();
    // An open-file-description lock on `b` belongs to no process, so it
    // conflicts with the process-owned lock os_lock_file takes on `a`.
    // SAFETY: flock is plain old data.
    let mut ofd: libc::flock = unsafe { core::mem::zeroed() };
    ofd.l_type = libc::F_WRLCK as libc::c_short;
    ofd.l_whence = libc::SEEK_SET as libc::c_short;
    assert_eq!(
        // SAFETY: F_OFD_SETLK reads one flock.
        unsafe { libc::fcntl(b.as_raw_fd(), libc::F_OFD_SETLK, &raw const ofd) },
        0
    );
    assert_eq!(lock_file(a.as_raw_fd(), true), Err(Errno::EAGAIN));
    assert_eq!(lock_file(a.as_raw_fd(), false), Err(Errno::EAGAIN));
    // Released: now ours succeeds, and blocks a new OFD write lock.
    ofd.l_type = libc::F_UNLCK as libc::c_short;
    assert_eq!(
        // SAFETY: as above.
        unsafe { libc::fcntl(b.as_raw_fd(), libc::F_OFD_SETLK, &raw const ofd) },
        0
    );
    assert_eq!(lock_file(a.as_raw_fd(), true), Ok(()));
    ofd.l_type = libc::F_WRLCK as libc::c_short;
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(b.as_raw_fd(), libc::F_OFD_SETLK, &raw const ofd) };
    assert_eq!((rc, Errno::last()), (-1, Errno::EAGAIN));
    assert_eq!(lock_file(-1, true), Err(Errno::EBADF));
}

#[test]
fn posix_lock_conflicts_across_processes() {
    let f = tempfile::NamedTempFile::new().unwrap();
    let p = cpath(f.path());
    let fd = open(&p, libc::O_RDWR, 0, false).unwrap();
    let raw = fd.as_raw_fd();
    // Shared lock here: another process may share it, not take it alone.
    assert_eq!(lock_file(raw, false), Ok(()));
    let child = in_child(|| {
        let own = open(&p, libc::O_RDWR, 0, false).unwrap();
        let shared = lock_file(own.as_raw_fd(), false);
        let excl = lock_file(own.as_raw_fd(), true);
        i32::from(shared == Ok(())) | i32::from(excl == Err(Errno::EAGAIN)) << 1
    });
    assert_eq!(child, 0b11);
    // Exclusive here: the other process can take neither.
    assert_eq!(lock_file(raw, true), Ok(()));
    let child = in_child(|| {
        let own = open(&p, libc::O_RDWR, 0, false).unwrap();
        let shared = lock_file(own.as_raw_fd(), false);
        let excl = lock_file(own.as_raw_fd(), true);
        i32::from(shared == Err(Errno::EAGAIN)) | i32::from(excl == Err(Errno::EAGAIN)) << 1
    });
    assert_eq!(child, 0b11);
}

#[test]
fn poll_in_limits_and_index() {
    assert_eq!(poll_in(&[0, 0, 0]), Err(Errno::EINVAL));
    let [a0, a1] = crate::host::socket::pipe(true, false).unwrap();
    let [b0, b1] = crate::host::socket::pipe(true, false).unwrap();
    write(b1.as_raw_fd(), b"x").unwrap();
    assert_eq!(poll_in(&[a0.as_raw_fd(), b0.as_raw_fd()]), Ok(1));
    write(a1.as_raw_fd(), b"x").unwrap();
    assert_eq!(poll_in(&[a0.as_raw_fd(), b0.as_raw_fd()]), Ok(0));
    // A hang-up counts as an event.
    let [c0, c1] = crate::host::socket::pipe(true, false).unwrap();
    drop(c1);
    assert_eq!(poll_in(&[c0.as_raw_fd()]), Ok(0));
    // An invalid descriptor reports POLLNVAL: also "ready".
    assert_eq!(poll_in(&[-1, 999_999]), Ok(1));
}

#[test]
fn dev_numbers_use_glibc_encoding() {
    assert_eq!(makedev(8, 1), 0x801);
    let dev = makedev(0x1234, 0x56789);
    assert_eq!((major(dev), minor(dev)), (0x1234, 0x56789));
    // glibc: minor bits 0-7 and 20-31..., major bits 8-19 and 32-43.
    let expect = (0x56789u64 & 0xff)
        | ((0x1234 & 0xfff) << 8)
        | ((0x56789 & !0xff) << 12)
        | ((0x1234 & !0xfff) << 32);
    assert_eq!(dev, expect);
}
