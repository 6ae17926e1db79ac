// SPDX-License-Identifier: GPL-2.0
//! Tests of the hostfs core that the ABI tests
//! (abi/fs_hostfs/hostfs_user/tests.rs) do not reach: the safe types, and
//! behaviour easier to pin at this level.

use std::ffi::CString;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::*;
use crate::host::exec::tests::in_child;

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

#[test]
fn stat_by_path_or_descriptor() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("f");
    fs::write(&file, b"abc").unwrap();
    let m = fs::metadata(&file).unwrap();
    let by_path = stat(Some(&cpath(&file)), -1).unwrap();
    let f = File::open(&file).unwrap();
    let by_fd = stat(None, f.as_raw_fd()).unwrap();
    for stx in [by_path, by_fd] {
        assert_eq!(
            stx.stx_mask & libc::STATX_BASIC_STATS,
            libc::STATX_BASIC_STATS
        );
        assert_eq!((stx.stx_ino, stx.stx_size), (m.ino(), 3));
        assert_eq!(u32::from(stx.stx_mode), m.mode());
    }
    // The descriptor wins over the path.
    let other = stat(Some(c"/"), f.as_raw_fd()).unwrap();
    assert_eq!(other.stx_ino, m.ino());
    assert_eq!(stat(None, -1).unwrap_err(), Errno::EFAULT);
}

#[test]
fn access_modes() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("f");
    fs::write(&file, b"").unwrap();
    let p = cpath(&file);
    assert_eq!(access(&p, false, false, false), Ok(()));
    assert_eq!(access(&p, true, true, false), Ok(()));
    assert_eq!(access(&p, false, false, true), Err(Errno::EACCES));
    let missing = cpath(&d.path().join("missing"));
    assert_eq!(access(&missing, false, false, false), Err(Errno::ENOENT));
}

#[test]
fn open_flags() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("f");
    fs::write(&file, b"").unwrap();
    let p = cpath(&file);
    for (r, w, append, want) in [
        (true, false, false, libc::O_RDONLY),
        (false, true, false, libc::O_WRONLY),
        (true, true, false, libc::O_RDWR),
        (true, true, true, libc::O_RDWR | libc::O_APPEND),
        (false, true, true, libc::O_WRONLY | libc::O_APPEND),
    ] {
        let fd = open(&p, r, w, append).unwrap();
        // SAFETY: F_GETFL takes no argument.
        let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(fl & (libc::O_ACCMODE | libc::O_APPEND), want);
    }
    assert_eq!(
        open(&cpath(&d.path().join("missing")), true, false, false).unwrap_err(),
        Errno::ENOENT
    );
}

#[test]
fn open_without_access_is_fatal() {
    // kernel::fatal: the kernel's panic() inside UML, a Rust panic here.
    assert_eq!(
        in_child(|| {
            let _ = open(c"/dev/null", false, false, false);
            0
        }),
        250
    );
}

#[test]
fn create_keeps_an_existing_file() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("f");
    let p = cpath(&file);
    drop(create(&p, 0o600).unwrap());
    fs::write(&file, b"kept").unwrap();
    let fd = create(&p, 0o777).unwrap();
    assert_eq!(
        crate::host::file::pread(fd.as_raw_fd(), &mut [0; 8], 0),
        Ok(4)
    );
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
}

fn names(dir: &mut Dir) -> Vec<(Vec<u8>, u64)> {
    let mut out = Vec::new();
    while let Some(e) = dir.read() {
        out.push((e.name.to_bytes().to_vec(), e.next));
    }
    out
}

#[test]
fn dir_read_seek_and_raw_round_trip() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..300 {
        File::create(d.path().join(format!("{i}"))).unwrap();
    }
    fs::create_dir(d.path().join("sub")).unwrap();
    let p = cpath(d.path());
    let mut dir = Dir::open(&p).unwrap();
    let all = names(&mut dir);
    assert_eq!(all.len(), 303);
    assert!(dir.read().is_none(), "stays at the end");
    // Positions are the host's cookies: valid in another stream too.
    let mut other = Dir::open(&p).unwrap();
    other.seek(all[149].1);
    assert_eq!(names(&mut other), all[150..]);
    // Back to the start.
    dir.seek(0);
    assert_eq!(dir.read().unwrap().name.to_bytes(), all[0].0.as_slice());
    // An entry's fields.
    dir.seek(0);
    let sub = core::iter::from_fn(|| dir.read().map(|e| (e.name.to_owned(), e.ino, e.kind)))
        .find(|(n, _, _)| n.as_c_str() == c"sub")
        .unwrap();
    let m = fs::metadata(d.path().join("sub")).unwrap();
    assert_eq!((sub.1, sub.2), (m.ino(), libc::DT_DIR));
    // Through a raw pointer and back, as the kernel half holds it.
    let raw = dir.into_raw();
    // SAFETY: from into_raw, not closed; borrowed without closing.
    let mut borrowed = ManuallyDrop::new(unsafe { Dir::from_raw(raw) });
    borrowed.seek(0);
    assert!(borrowed.read().is_some());
    // SAFETY: from into_raw, not closed; closed by this drop.
    drop(unsafe { Dir::from_raw(raw) });
    assert_eq!(Dir::open(c"/nonexistent").unwrap_err(), Errno::ENOENT);
}

#[test]
fn read_at_and_write_at_move_the_offset_only_by_the_count() {
    let d = tempfile::tempdir().unwrap();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(d.path().join("f"))
        .unwrap();
    let fd = f.as_raw_fd();
    let mut off = 5;
    assert_eq!(
        // SAFETY: the buffer holds the length given.
        unsafe { write_at(fd, b"abc".as_ptr().cast(), 3, &mut off) },
        Ok(3)
    );
    assert_eq!(off, 8);
    let mut buf = [0u8; 16];
    let mut off = 4;
    assert_eq!(
        // SAFETY: the buffer holds the length given.
        unsafe { read_at(fd, buf.as_mut_ptr().cast(), 16, &mut off) },
        Ok(4)
    );
    assert_eq!((off, &buf[..4]), (8, &b"\0abc"[..]));
    let mut off = 3;
    // SAFETY: the host refuses the descriptor before using the buffer.
    let r = unsafe { read_at(-1, buf.as_mut_ptr().cast(), 16, &mut off) };
    assert_eq!((r, off), (Err(Errno::EBADF), 3));
    // seek returns the new offset, beyond 32 bits too.
    assert_eq!(seek(fd, 5 << 30, libc::SEEK_SET), Ok(5 << 30));
    assert_eq!(seek(fd, 1, libc::SEEK_CUR), Ok((5 << 30) + 1));
    assert_eq!(seek(fd, -1, libc::SEEK_SET), Err(Errno::EINVAL));
    assert_eq!(sync(fd, true), Ok(()));
    assert_eq!(sync(fd, false), Ok(()));
}

#[test]
fn replace_returns_the_target_descriptor() {
    let a = File::open("/dev/null").unwrap();
    let b = File::open("/dev/zero").unwrap();
    assert_eq!(replace(b.as_raw_fd(), a.as_raw_fd()), Ok(a.as_raw_fd()));
    let mut byte = [1u8];
    assert_eq!(crate::host::file::read(a.as_raw_fd(), &mut byte), Ok(1));
    assert_eq!(byte, [0], "reads /dev/zero now");
}

#[test]
fn timeval_truncates_toward_zero_like_c() {
    let tv = |sec, nsec| {
        let t = Timespec { sec, nsec }.to_timeval();
        (t.tv_sec, t.tv_usec)
    };
    assert_eq!(tv(5, 999_999_999), (5, 999_999));
    assert_eq!(tv(-5, 1_500), (-5, 1));
    // C's integer division: toward zero, so the host sees -1 and refuses.
    assert_eq!(tv(0, -1_500), (0, -1));
    assert_eq!(tv(0, 999), (0, 0));
    // SAFETY: plain data; all zeroes is a valid value.
    let mut st: libc::statx_timestamp = unsafe { core::mem::zeroed() };
    (st.tv_sec, st.tv_nsec) = (-3, 7);
    assert_eq!(Timespec::from_statx(&st), Timespec { sec: -3, nsec: 7 });
}

#[test]
fn set_attr_does_only_what_is_asked() {
    // Nothing asked: no file needed.
    assert_eq!(set_attr(None, -1, &Attrs::default()), Ok(None));
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("f");
    fs::write(&file, b"0123456789").unwrap();
    let p = cpath(&file);
    let before = fs::metadata(&file).unwrap();
    let attrs = Attrs {
        read_times: true,
        ..Default::default()
    };
    let (a, m) = set_attr(Some(&p), -1, &attrs).unwrap().unwrap();
    assert_eq!(
        (a, m),
        (
            Timespec {
                sec: before.atime(),
                nsec: before.atime_nsec()
            },
            Timespec {
                sec: before.mtime(),
                nsec: before.mtime_nsec()
            }
        )
    );
    // Size and times together, by descriptor: the times read back are the
    // ones just set (the truncation moved the modification time first).
    let f = fs::OpenOptions::new().write(true).open(&file).unwrap();
    let attrs = Attrs {
        size: Some(3),
        atime: Some(Timespec {
            sec: 10,
            nsec: 20_000,
        }),
        mtime: Some(Timespec {
            sec: 30,
            nsec: 40_999,
        }),
        read_times: true,
        ..Default::default()
    };
    let got = set_attr(None, f.as_raw_fd(), &attrs).unwrap();
    assert_eq!(
        got,
        Some((
            Timespec {
                sec: 10,
                nsec: 20_000
            },
            Timespec {
                sec: 30,
                nsec: 40_000
            }
        ))
    );
    assert_eq!(fs::read(&file).unwrap(), b"012");
    // A path is needed without a descriptor.
    let attrs = Attrs {
        mode: Some(0o600),
        ..Default::default()
    };
    assert_eq!(set_attr(None, -1, &attrs), Err(Errno::EFAULT));
}

#[test]
fn set_attr_owner_leaves_the_other_id_alone() {
    if !nix::unistd::geteuid().is_root() {
        return; // chown to other ids needs root
    }
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("f");
    fs::write(&file, b"").unwrap();
    nix::unistd::chown(&file, Some(5.into()), Some(6.into())).unwrap();
    let p = cpath(&file);
    let uid_only = Attrs {
        uid: Some(50),
        ..Default::default()
    };
    assert_eq!(set_attr(Some(&p), -1, &uid_only), Ok(None));
    let m = fs::metadata(&file).unwrap();
    assert_eq!((m.uid(), m.gid()), (50, 6));
    let gid_only = Attrs {
        gid: Some(60),
        ..Default::default()
    };
    assert_eq!(set_attr(Some(&p), -1, &gid_only), Ok(None));
    let m = fs::metadata(&file).unwrap();
    assert_eq!((m.uid(), m.gid()), (50, 60));
}

#[test]
fn names_and_links() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        cpath(&d.path().join("a")),
        cpath(&d.path().join("b")),
        cpath(&d.path().join("c")),
    );
    assert_eq!(symlink(c"target", &a), Ok(()));
    let mut buf = [0u8; 64];
    assert_eq!(readlink(&a, &mut buf), Ok(6));
    assert_eq!(&buf[..6], b"target");
    assert_eq!(readlink(&a, &mut []), Err(Errno::EINVAL));
    assert_eq!(link(&a, &b), Ok(()));
    assert_eq!(
        readlink(&b, &mut buf),
        Ok(6),
        "link(2) links the symlink itself"
    );
    assert_eq!(rename(&b, &c), Ok(()));
    assert_eq!(rename2(&a, &c, libc::RENAME_NOREPLACE), Err(Errno::EEXIST));
    assert_eq!(rename2(&a, &c, libc::RENAME_EXCHANGE), Ok(()));
    assert_eq!(unlink(&a), Ok(()));
    assert_eq!(unlink(&a), Err(Errno::ENOENT));
    assert_eq!(mkdir(&a, 0o700), Ok(()));
    assert_eq!(rmdir(&a), Ok(()));
    assert_eq!(mknod(&a, (libc::S_IFIFO | 0o600) as c_int, 0, 0), Ok(()));
    assert!(
        fs::symlink_metadata(d.path().join("a"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn statfs_matches_the_host() {
    let d = tempfile::tempdir().unwrap();
    let ours = statfs(&cpath(d.path())).unwrap();
    let host = nix::sys::statfs::statfs(d.path()).unwrap();
    assert_eq!(ours.f_type, host.filesystem_type().0);
    assert_eq!(ours.f_blocks, host.blocks());
    assert_eq!(ours.f_namelen, host.maximum_name_length());
    assert_eq!(
        statfs(&cpath(&d.path().join("missing"))).unwrap_err(),
        Errno::ENOENT
    );
}
