// SPDX-License-Identifier: GPL-2.0
//! Tests of hostfs beneath its `hostfs=` prefix, each on a [`Prefix`] of
//! its own over a fresh temporary tree: a directory swapped for a symbolic
//! link (out of the prefix or into it, absolute or relative) in the middle
//! of a path is refused by every operation and leaves both sides alone;
//! final links are not followed; `..` and paths outside the prefix never
//! reach the host; ordinary work below the prefix, also through a prefix
//! that is itself a link, goes on as without one.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::*;
use crate::host::exec::tests::in_child;

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// `a` and `b` joined with a `/` as text, without normalising anything
/// (so `..`, `.` and extra slashes stay).
fn cat(a: &Path, b: &str) -> CString {
    let mut v = a.as_os_str().as_bytes().to_vec();
    v.push(b'/');
    v.extend_from_slice(b.as_bytes());
    CString::new(v).unwrap()
}

/// A temporary tree:
///
/// ```text
/// T/secret                 "SECRET"
/// T/out/...                an outside directory with the names the ops use
/// T/R/                     the prefix
/// T/R/file                 "file"
/// T/R/d/...                an inside directory with the same names
/// T/R/a/                   a directory to put a swapped link one level down
/// ```
///
/// The names in `out` and `d` ([`populate`]) are those every operation of
/// [`ops`] uses, so that an operation that followed a link there would
/// succeed.
struct Tree {
    t: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        let t = tempfile::tempdir().unwrap();
        let top = t.path();
        fs::write(top.join("secret"), "SECRET").unwrap();
        fs::create_dir(top.join("out")).unwrap();
        populate(&top.join("out"), "outside");
        fs::create_dir(top.join("R")).unwrap();
        fs::write(top.join("R/file"), "file").unwrap();
        fs::create_dir(top.join("R/d")).unwrap();
        populate(&top.join("R/d"), "inside");
        fs::create_dir(top.join("R/a")).unwrap();
        Self { t }
    }

    fn top(&self) -> &Path {
        self.t.path()
    }

    fn root(&self) -> PathBuf {
        self.top().join("R")
    }

    fn prefix(&self) -> Box<Prefix> {
        prefix_of(&self.root())
    }
}

fn prefix_of(p: &Path) -> Box<Prefix> {
    let mut pre = Box::new(Prefix::new());
    pre.set(&cpath(p)).unwrap();
    assert!(pre.is_set());
    pre
}

/// `f` ("<tag>"), `l` -> `f`, `sub/g`, `empty/`.
fn populate(dir: &Path, tag: &str) {
    fs::write(dir.join("f"), tag).unwrap();
    fs::set_permissions(dir.join("f"), fs::Permissions::from_mode(0o644)).unwrap();
    symlink("f", dir.join("l")).unwrap();
    fs::create_dir(dir.join("sub")).unwrap();
    fs::write(dir.join("sub/g"), tag).unwrap();
    fs::create_dir(dir.join("empty")).unwrap();
}

/// Every file below `dir` (not following links) with what a change would
/// alter: mode, owner, size, link count, inode, mtime and ctime to the
/// nanosecond, and a link's target.
type Snapshot = BTreeMap<PathBuf, (u32, u32, u64, u64, u64, i64, i64, i64, i64, String)>;

fn snapshot(dir: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let target = fs::read_link(&p)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        out.insert(
            p.strip_prefix(dir).unwrap().to_path_buf(),
            (
                m.mode(),
                m.uid(),
                m.size(),
                m.nlink(),
                m.ino(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
                target,
            ),
        );
        if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
    }
    out
}

fn uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn attrs_mode(mode: u16) -> Attrs {
    Attrs {
        mode: Some(mode),
        ..Default::default()
    }
}

/// One operation of the host half on the files below `base` (a directory,
/// or a link that replaced one); `root` is the prefix directory, for the
/// other end of the two-path operations.
type Op = fn(&Prefix, &Path, &Path) -> Result<()>;

/// Every operation, on the names [`populate`] made.
fn ops() -> Vec<(&'static str, Op)> {
    vec![
        ("stat", |p, b, _| p.stat(&cat(b, "f")).map(drop)),
        ("stat of a link", |p, b, _| p.stat(&cat(b, "l")).map(drop)),
        ("access", |p, b, _| {
            p.access(&cat(b, "f"), true, false, false)
        }),
        ("access F_OK", |p, b, _| {
            p.access(&cat(b, "f"), false, false, false)
        }),
        ("open read", |p, b, _| {
            p.open(&cat(b, "f"), true, false, false).map(drop)
        }),
        ("open write", |p, b, _| {
            p.open(&cat(b, "f"), false, true, false).map(drop)
        }),
        ("open append", |p, b, _| {
            p.open(&cat(b, "f"), true, true, true).map(drop)
        }),
        ("create new", |p, b, _| {
            p.create(&cat(b, "new"), 0o644).map(drop)
        }),
        ("create existing", |p, b, _| {
            p.create(&cat(b, "f"), 0o600).map(drop)
        }),
        ("open_dir", |p, b, _| p.open_dir(&cat(b, "sub")).map(drop)),
        ("set_attr mode", |p, b, _| {
            p.set_attr(&cat(b, "f"), &attrs_mode(0o600)).map(drop)
        }),
        ("set_attr owner", |p, b, _| {
            let a = Attrs {
                uid: Some(uid()),
                ..Default::default()
            };
            p.set_attr(&cat(b, "f"), &a).map(drop)
        }),
        ("set_attr group", |p, b, _| {
            let a = Attrs {
                gid: Some(nix::unistd::getegid().as_raw()),
                ..Default::default()
            };
            p.set_attr(&cat(b, "f"), &a).map(drop)
        }),
        ("set_attr size", |p, b, _| {
            let a = Attrs {
                size: Some(1),
                ..Default::default()
            };
            p.set_attr(&cat(b, "f"), &a).map(drop)
        }),
        ("set_attr times", |p, b, _| {
            let a = Attrs {
                mtime: Some(Timespec { sec: 1, nsec: 0 }),
                ..Default::default()
            };
            p.set_attr(&cat(b, "f"), &a).map(drop)
        }),
        ("set_attr read times", |p, b, _| {
            let a = Attrs {
                read_times: true,
                ..Default::default()
            };
            p.set_attr(&cat(b, "f"), &a).map(drop)
        }),
        ("symlink", |p, b, _| p.symlink(c"f", &cat(b, "newlink"))),
        ("unlink", |p, b, _| p.unlink(&cat(b, "f"))),
        ("unlink a link", |p, b, _| p.unlink(&cat(b, "l"))),
        ("mkdir", |p, b, _| p.mkdir(&cat(b, "newdir"), 0o755)),
        ("rmdir", |p, b, _| p.rmdir(&cat(b, "empty"))),
        ("mknod", |p, b, _| {
            p.mknod(&cat(b, "fifo"), (libc::S_IFIFO | 0o600) as c_int, 0, 0)
        }),
        ("link from", |p, b, r| {
            p.link(&cat(b, "f"), &cat(r, "linked"))
        }),
        ("link to", |p, b, r| {
            p.link(&cat(r, "file"), &cat(b, "newhard"))
        }),
        ("readlink", |p, b, _| {
            p.readlink(&cat(b, "l"), &mut [0; 16]).map(drop)
        }),
        ("rename from", |p, b, r| {
            p.rename(&cat(b, "f"), &cat(r, "moved"))
        }),
        ("rename to", |p, b, r| {
            p.rename(&cat(r, "file"), &cat(b, "f"))
        }),
        ("rename2 from", |p, b, r| {
            p.rename2(&cat(b, "f"), &cat(r, "moved"), libc::RENAME_NOREPLACE)
        }),
        ("rename2 exchange", |p, b, r| {
            p.rename2(&cat(r, "file"), &cat(b, "f"), libc::RENAME_EXCHANGE)
        }),
        ("statfs", |p, b, _| p.statfs(&cat(b, "f")).map(drop)),
        ("statfs of the directory", |p, b, _| {
            p.statfs(&cat(b, "sub")).map(drop)
        }),
    ]
}

#[test]
fn every_operation_works_below_the_prefix() {
    for (name, op) in ops() {
        let tree = Tree::new();
        let pre = tree.prefix();
        let root = tree.root();
        assert_eq!(op(&pre, &root.join("d"), &root), Ok(()), "{name}");
        // And as deep as it goes, through a path with extra slashes and
        // `.` components.
        let tree = Tree::new();
        let pre = tree.prefix();
        let root = tree.root();
        let deep = root.join("a");
        fs::create_dir(deep.join("deep")).unwrap();
        populate(&deep.join("deep"), "deep");
        let base = PathBuf::from(format!("{}//./a/./deep/", root.display()));
        assert_eq!(
            op(&pre, &base, &root),
            Ok(()),
            "{name} in {}",
            base.display()
        );
    }
}

#[test]
fn the_operations_do_what_they_say_below_the_prefix() {
    let tree = Tree::new();
    let pre = tree.prefix();
    let r = tree.root();
    let d = r.join("d");
    // stat is the host's lstat; a link is the link.
    let st = pre.stat(&cat(&d, "f")).unwrap();
    assert_eq!(st.stx_ino, fs::metadata(d.join("f")).unwrap().ino());
    let st = pre.stat(&cat(&d, "l")).unwrap();
    assert_eq!(u32::from(st.stx_mode) & libc::S_IFMT, libc::S_IFLNK);
    // open, create, read, write.
    let fd = pre.create(&cat(&d, "new"), 0o640).unwrap();
    assert_eq!(
        crate::host::file::pwrite(fd.as_raw_fd(), b"hello", 0),
        Ok(5)
    );
    assert_eq!(fs::read(d.join("new")).unwrap(), b"hello");
    let umask = fs::metadata(d.join("new")).unwrap().mode() & 0o777;
    assert_eq!(umask & !0o640, 0);
    let fd = pre.open(&cat(&d, "f"), true, false, false).unwrap();
    let mut buf = [0; 16];
    assert_eq!(crate::host::file::pread(fd.as_raw_fd(), &mut buf, 0), Ok(6));
    assert_eq!(&buf[..6], b"inside");
    // The flags are the C's: no close-on-exec, O_APPEND as asked.
    let fd = pre.open(&cat(&d, "f"), false, true, true).unwrap();
    // SAFETY: F_GETFL/F_GETFD take no argument.
    let (fl, fdfl) = unsafe {
        (
            libc::fcntl(fd.as_raw_fd(), libc::F_GETFL),
            libc::fcntl(fd.as_raw_fd(), libc::F_GETFD),
        )
    };
    assert_eq!(
        fl & (libc::O_ACCMODE | libc::O_APPEND),
        libc::O_WRONLY | libc::O_APPEND
    );
    assert_eq!(fdfl & libc::FD_CLOEXEC, 0);
    // Directories list.
    let mut dir = pre.open_dir(&cat(&d, "sub")).unwrap();
    let mut names = Vec::new();
    while let Some(e) = dir.read() {
        names.push(e.name.to_bytes().to_vec());
    }
    names.sort();
    assert_eq!(names, [&b"."[..], b"..", b"g"]);
    // Attributes.
    let a = Attrs {
        mode: Some(0o4711),
        size: Some(2),
        atime: Some(Timespec {
            sec: 5,
            nsec: 6_000,
        }),
        mtime: Some(Timespec {
            sec: 7,
            nsec: 8_999,
        }),
        read_times: true,
        ..Default::default()
    };
    let times = pre.set_attr(&cat(&d, "f"), &a).unwrap();
    let m = fs::metadata(d.join("f")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.size()), (0o4711, 2));
    assert_eq!(
        (m.atime(), m.atime_nsec(), m.mtime(), m.mtime_nsec()),
        (5, 6_000, 7, 8_000)
    );
    assert_eq!(
        times,
        Some((
            Timespec {
                sec: 5,
                nsec: 6_000
            },
            Timespec {
                sec: 7,
                nsec: 8_000
            }
        ))
    );
    // Only one time given: the other is read and set again (in µs).
    let a = Attrs {
        atime: Some(Timespec { sec: 9, nsec: 0 }),
        ..Default::default()
    };
    assert_eq!(pre.set_attr(&cat(&d, "f"), &a), Ok(None));
    let m = fs::metadata(d.join("f")).unwrap();
    assert_eq!((m.atime(), m.mtime(), m.mtime_nsec()), (9, 7, 8_000));
    // Out-of-range times are refused, as utimes does.
    let a = Attrs {
        mtime: Some(Timespec {
            sec: 1,
            nsec: 1_000_000_000,
        }),
        ..Default::default()
    };
    assert_eq!(pre.set_attr(&cat(&d, "f"), &a), Err(Errno::EINVAL));
    // Names.
    pre.mkdir(&cat(&d, "nd"), 0o700).unwrap();
    assert!(d.join("nd").is_dir());
    pre.rmdir(&cat(&d, "nd")).unwrap();
    assert!(!d.join("nd").exists());
    pre.symlink(c"some/where", &cat(&d, "sym")).unwrap();
    assert_eq!(
        fs::read_link(d.join("sym")).unwrap(),
        Path::new("some/where")
    );
    let mut buf = [0; 64];
    assert_eq!(pre.readlink(&cat(&d, "sym"), &mut buf), Ok(10));
    assert_eq!(&buf[..10], b"some/where");
    assert_eq!(pre.readlink(&cat(&d, "f"), &mut buf), Err(Errno::EINVAL));
    pre.link(&cat(&d, "f"), &cat(&r, "hard")).unwrap();
    assert_eq!(fs::metadata(r.join("hard")).unwrap().ino(), m.ino());
    pre.rename(&cat(&r, "hard"), &cat(&d, "sub/hard2")).unwrap();
    assert_eq!(fs::metadata(d.join("sub/hard2")).unwrap().ino(), m.ino());
    assert_eq!(
        pre.rename2(&cat(&d, "f"), &cat(&d, "sub/g"), libc::RENAME_NOREPLACE),
        Err(Errno::EEXIST)
    );
    pre.rename2(&cat(&d, "f"), &cat(&d, "sub"), libc::RENAME_EXCHANGE)
        .unwrap();
    assert!(d.join("f").is_dir() && d.join("sub").is_file());
    pre.unlink(&cat(&d, "sub")).unwrap();
    pre.mknod(&cat(&d, "fifo"), (libc::S_IFIFO | 0o640) as c_int, 0, 0)
        .unwrap();
    assert!(
        fs::symlink_metadata(d.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // statfs is the host's.
    let sf = pre.statfs(&cat(&r, "")).unwrap();
    let want = nix::sys::statfs::statfs(&r).unwrap();
    assert_eq!(sf.f_type, want.filesystem_type().0);
    assert_eq!(sf.f_blocks, want.blocks());
}

/// The symbolic links that can replace a directory below the prefix: out
/// of it and into it, relative and absolute.
fn swaps(tree: &Tree) -> Vec<(&'static str, PathBuf)> {
    let top = tree.top();
    vec![
        ("out, relative", PathBuf::from("../out")),
        ("out, relative, far", PathBuf::from("../../out")),
        ("out, absolute", top.join("out")),
        ("in, relative", PathBuf::from("d")),
        ("in, absolute", top.join("R/d")),
        ("the prefix's parent", PathBuf::from("..")),
        ("/proc magic", PathBuf::from("/proc/self/cwd")),
    ]
}

#[test]
fn a_directory_swapped_for_a_link_is_refused_by_every_operation() {
    for (name, op) in ops() {
        for at in ["s", "a/s"] {
            let tree = Tree::new();
            for (what, target) in swaps(&tree) {
                let root = tree.root();
                let swapped = root.join(at);
                // "../out" from R/a/s is R/out: make it relative to R/a.
                let target = if at == "a/s" && target.is_relative() && target != Path::new("d") {
                    Path::new("..").join(&target)
                } else if at == "a/s" && target == Path::new("d") {
                    PathBuf::from("../d")
                } else {
                    target
                };
                symlink(&target, &swapped).unwrap();
                let pre = tree.prefix();
                let before = (
                    snapshot(tree.top()),
                    fs::read(tree.top().join("secret")).unwrap(),
                );
                let r = op(&pre, &swapped, &root);
                assert_eq!(
                    r,
                    Err(Errno::ELOOP),
                    "{name} through {} -> {} ({what})",
                    swapped.display(),
                    target.display()
                );
                let after = (
                    snapshot(tree.top()),
                    fs::read(tree.top().join("secret")).unwrap(),
                );
                assert!(
                    before == after,
                    "{name} through {at} -> {what} changed files"
                );
                fs::remove_file(&swapped).unwrap();
            }
        }
    }
}

#[test]
fn without_the_prefix_the_same_paths_escape() {
    // What the prefix closes: the host following the link.
    let tree = Tree::new();
    symlink("../out", tree.root().join("s")).unwrap();
    let p = cpath(&tree.root().join("s/f"));
    let outside = fs::metadata(tree.top().join("out/f")).unwrap().ino();
    assert_eq!(super::super::stat(Some(&p), -1).unwrap().stx_ino, outside);
    assert_eq!(tree.prefix().stat(&p).unwrap_err(), Errno::ELOOP);
}

#[test]
fn a_link_deep_in_a_long_path_is_refused() {
    // A parent path much longer than the stack buffer: several runs.
    let tree = Tree::new();
    let root = tree.root();
    let comp = "c".repeat(200);
    let mut deep = root.clone();
    for i in 0..12 {
        deep = deep.join(format!("{comp}{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    populate(&deep, "deep");
    let pre = tree.prefix();
    for (name, op) in ops() {
        assert_eq!(op(&pre, &deep, &root), Ok(()), "{name} deep");
        // Put things back for the next operation.
        let _ = fs::remove_dir_all(&deep);
        fs::create_dir_all(&deep).unwrap();
        populate(&deep, "deep");
        let _ = fs::remove_file(root.join("linked"));
        let _ = fs::remove_file(root.join("moved"));
        fs::write(root.join("file"), "file").unwrap();
    }
    // Swap a directory in the middle (in the third run) for a link out.
    let mid = root.join(format!("{comp}0/{comp}1/{comp}2/{comp}3/{comp}4"));
    fs::rename(&mid, root.join("moved-away")).unwrap();
    symlink(tree.top().join("out"), &mid).unwrap();
    fs::create_dir_all(
        tree.top()
            .join("out")
            .join(deep.strip_prefix(&mid).unwrap()),
    )
    .unwrap();
    populate(
        &tree
            .top()
            .join("out")
            .join(deep.strip_prefix(&mid).unwrap()),
        "x",
    );
    for (name, op) in ops() {
        let before = snapshot(tree.top());
        assert_eq!(op(&pre, &deep, &root), Err(Errno::ELOOP), "{name} deep");
        assert!(before == snapshot(tree.top()), "{name} deep changed files");
    }
    // A component longer than NAME_MAX is the host's ENAMETOOLONG.
    let long = cat(&root, &format!("{}/x", "n".repeat(600)));
    assert_eq!(pre.mkdir(&long, 0o755), Err(Errno::ENAMETOOLONG));
    assert_eq!(pre.stat(&long).unwrap_err(), Errno::ENAMETOOLONG);
}

#[test]
fn a_final_link_is_not_followed() {
    let tree = Tree::new();
    let root = tree.root();
    let top = tree.top();
    symlink("d/f", root.join("lin")).unwrap();
    symlink(top.join("secret"), root.join("labs")).unwrap();
    symlink("../secret", root.join("lrel")).unwrap();
    symlink("../dangling", root.join("ldang")).unwrap();
    symlink("d", root.join("ldir")).unwrap();
    let pre = tree.prefix();
    let before = snapshot(top);
    for l in ["lin", "labs", "lrel", "ldang", "ldir"] {
        let p = cat(&root, l);
        let loop_ = Err(Errno::ELOOP);
        assert_eq!(
            pre.open(&p, true, false, false).map(drop),
            loop_,
            "open {l}"
        );
        assert_eq!(
            pre.open(&p, false, true, false).map(drop),
            loop_,
            "open w {l}"
        );
        assert_eq!(pre.create(&p, 0o644).map(drop), loop_, "create {l}");
        assert_eq!(pre.access(&p, false, false, false), loop_, "access {l}");
        assert_eq!(pre.access(&p, true, false, false), loop_, "access r {l}");
        assert_eq!(pre.open_dir(&p).map(drop), loop_, "open_dir {l}");
        assert_eq!(pre.statfs(&p).map(drop), loop_, "statfs {l}");
        for a in [
            attrs_mode(0o600),
            Attrs {
                size: Some(0),
                ..Default::default()
            },
            Attrs {
                mode: Some(0o600),
                uid: Some(uid()),
                mtime: Some(Timespec { sec: 1, nsec: 0 }),
                ..Default::default()
            },
        ] {
            assert_eq!(pre.set_attr(&p, &a).map(drop), loop_, "set_attr {a:?} {l}");
        }
        // A trailing slash asks for the directory: still not followed.
        let slash = cat(&root, &format!("{l}/"));
        assert_eq!(pre.stat(&slash).map(drop), loop_, "stat {l}/");
        assert_eq!(pre.open_dir(&slash).map(drop), loop_, "open_dir {l}/");
        // stat and readlink see the link itself.
        let st = pre.stat(&p).unwrap();
        assert_eq!(u32::from(st.stx_mode) & libc::S_IFMT, libc::S_IFLNK, "{l}");
        assert_eq!(
            st.stx_ino,
            fs::symlink_metadata(root.join(l)).unwrap().ino()
        );
        let mut buf = [0u8; 256];
        let n = pre.readlink(&p, &mut buf).unwrap();
        assert_eq!(
            Path::new(std::ffi::OsStr::from_bytes(&buf[..n])),
            fs::read_link(root.join(l)).unwrap()
        );
    }
    assert!(before == snapshot(top), "a refused operation changed files");
    assert!(!top.join("dangling").exists());
    // The owner and the times change on the link itself, never the
    // target (the C's chown and utimes changed the target).
    let a = Attrs {
        uid: Some(uid()),
        atime: Some(Timespec { sec: 3, nsec: 0 }),
        mtime: Some(Timespec { sec: 4, nsec: 0 }),
        read_times: true,
        ..Default::default()
    };
    let secret = fs::metadata(top.join("secret")).unwrap();
    assert_eq!(
        pre.set_attr(&cat(&root, "labs"), &a),
        Ok(Some((
            Timespec { sec: 3, nsec: 0 },
            Timespec { sec: 4, nsec: 0 }
        )))
    );
    let l = fs::symlink_metadata(root.join("labs")).unwrap();
    assert_eq!((l.atime(), l.mtime()), (3, 4));
    let now = fs::metadata(top.join("secret")).unwrap();
    assert_eq!(
        (now.mtime(), now.mtime_nsec()),
        (secret.mtime(), secret.mtime_nsec())
    );
    // Names: the link is the one unlinked, linked and renamed.
    pre.link(&cat(&root, "labs"), &cat(&root, "hard")).unwrap();
    assert!(
        fs::symlink_metadata(root.join("hard"))
            .unwrap()
            .is_symlink()
    );
    pre.rename(&cat(&root, "lrel"), &cat(&root, "lrel2"))
        .unwrap();
    assert!(
        fs::symlink_metadata(root.join("lrel2"))
            .unwrap()
            .is_symlink()
    );
    pre.unlink(&cat(&root, "labs")).unwrap();
    assert_eq!(fs::read(top.join("secret")).unwrap(), b"SECRET");
    assert_eq!(pre.rmdir(&cat(&root, "ldir")), Err(Errno::ENOTDIR));
    assert!(root.join("d/f").exists());
}

#[test]
fn dotdot_and_paths_outside_the_prefix_never_reach_the_host() {
    let tree = Tree::new();
    let root = tree.root();
    let top = tree.top();
    fs::create_dir(top.join("R2")).unwrap();
    populate(&top.join("R2"), "sibling");
    let pre = tree.prefix();
    let before = snapshot(top);
    let mut paths: Vec<CString> = [
        "..",
        "../secret",
        "../out",
        "d/../../secret",
        "d/../../out",
        "d/..",
        "d/../d",
        "./..//out",
    ]
    .iter()
    .map(|p| cat(&root, p))
    .collect();
    let dotdot = paths.len();
    paths.extend([
        cpath(&top.join("secret")),
        cpath(&top.join("out")),
        cpath(&top.join("R2")),
        cpath(&top.join("R2/f")),
        cpath(&top.join("Rx")),
        cpath(top),
        c"R/d".into(),
        c"".into(),
        c"/".into(),
    ]);
    for (i, p) in paths.iter().enumerate() {
        let base = Path::new(std::ffi::OsStr::from_bytes(p.to_bytes()));
        for (name, op) in ops() {
            assert_eq!(
                op(&pre, base, &root),
                Err(Errno::EACCES),
                "{name} on {} ({})",
                base.display(),
                if i < dotdot {
                    "a .. component"
                } else {
                    "outside"
                }
            );
        }
        let p = p.as_c_str();
        assert_eq!(pre.stat(p).unwrap_err(), Errno::EACCES, "{p:?}");
        assert_eq!(pre.open_dir(p).unwrap_err(), Errno::EACCES, "{p:?}");
        assert_eq!(pre.statfs(p).unwrap_err(), Errno::EACCES, "{p:?}");
        assert_eq!(pre.mkdir(p, 0o755), Err(Errno::EACCES), "{p:?}");
        assert_eq!(pre.set_attr(p, &Attrs::default()), Err(Errno::EACCES));
        assert_eq!(pre.create(p, 0o644).unwrap_err(), Errno::EACCES);
    }
    // The other end of a two-path operation too.
    let inside = cat(&root, "file");
    for p in &paths {
        assert_eq!(pre.link(&inside, p), Err(Errno::EACCES));
        assert_eq!(pre.rename(&inside, p), Err(Errno::EACCES));
        assert_eq!(
            pre.rename2(p, &inside, libc::RENAME_EXCHANGE),
            Err(Errno::EACCES)
        );
    }
    assert!(before == snapshot(top));
}

#[test]
fn the_prefix_itself_in_its_spellings() {
    let tree = Tree::new();
    let root = tree.root();
    let pre = tree.prefix();
    let ino = fs::metadata(&root).unwrap().ino();
    for s in ["", "/", "//", "/.", "/./", "//.//"] {
        let mut p = root.as_os_str().as_bytes().to_vec();
        p.extend_from_slice(s.as_bytes());
        let p = CString::new(p).unwrap();
        assert_eq!(pre.stat(&p).unwrap().stx_ino, ino, "{p:?}");
        assert_eq!(pre.access(&p, true, false, true), Ok(()), "{p:?}");
        assert!(pre.open_dir(&p).is_ok(), "{p:?}");
        assert!(pre.open(&p, true, false, false).is_ok(), "{p:?}");
        assert!(pre.statfs(&p).is_ok(), "{p:?}");
        let a = Attrs {
            read_times: true,
            ..Default::default()
        };
        assert!(pre.set_attr(&p, &a).unwrap().is_some(), "{p:?}");
        // No name to act on.
        assert_eq!(pre.mkdir(&p, 0o755), Err(Errno::EINVAL), "{p:?}");
        assert_eq!(pre.unlink(&p), Err(Errno::EINVAL), "{p:?}");
        assert_eq!(pre.rmdir(&p), Err(Errno::EINVAL), "{p:?}");
        assert_eq!(
            pre.rename(&p, &cat(&root, "x")),
            Err(Errno::EINVAL),
            "{p:?}"
        );
        assert_eq!(pre.readlink(&p, &mut [0; 8]), Err(Errno::EINVAL), "{p:?}");
    }
    // The mode of the prefix itself can be changed, as in C.
    assert_eq!(pre.set_attr(&cat(&root, ""), &attrs_mode(0o751)), Ok(None));
    assert_eq!(fs::metadata(&root).unwrap().mode() & 0o777, 0o751);
    // A name with a trailing slash below it is not a name.
    assert_eq!(pre.mkdir(&cat(&root, "new/"), 0o755), Err(Errno::EINVAL));
    assert_eq!(pre.unlink(&cat(&root, "file/.")), Err(Errno::EINVAL));
}

#[test]
fn a_prefix_with_a_trailing_slash() {
    let tree = Tree::new();
    let root = tree.root();
    let mut text = root.as_os_str().as_bytes().to_vec();
    text.push(b'/');
    let mut pre = Box::new(Prefix::new());
    pre.set(&CString::new(text).unwrap()).unwrap();
    assert!(pre.stat(&cat(&root, "d/f")).is_ok());
    assert!(pre.stat(&cat(&root, "/d/f")).is_ok());
    assert_eq!(pre.stat(&cpath(&root)).unwrap_err(), Errno::EACCES);
}

#[test]
fn a_prefix_through_symbolic_links_works() {
    let tree = Tree::new();
    let top = tree.top();
    symlink("R", top.join("rel")).unwrap();
    symlink(top.join("R"), top.join("abs")).unwrap();
    symlink(".", top.join("dot")).unwrap();
    for via in ["rel", "abs", "dot/R", "dot/dot/abs", "dot/rel/"] {
        let text = top.join(via);
        let text = Path::new(text.to_str().unwrap().trim_end_matches('/'));
        let pre = prefix_of(text);
        let f = fs::metadata(top.join("R/d/f")).unwrap().ino();
        assert_eq!(pre.stat(&cat(text, "d/f")).unwrap().stx_ino, f, "{via}");
        pre.mkdir(&cat(text, "d/made"), 0o755).unwrap();
        assert!(top.join("R/d/made").is_dir());
        pre.rmdir(&cat(text, "d/made")).unwrap();
        drop(pre.create(&cat(text, "new"), 0o644).unwrap());
        assert!(top.join("R/new").is_file());
        pre.unlink(&cat(text, "new")).unwrap();
        assert!(pre.open_dir(&cat(text, "")).is_ok());
        assert!(pre.statfs(&cpath(text)).is_ok());
        // Below the prefix a link is still refused.
        assert_eq!(pre.stat(&cat(text, "d/l/x")).unwrap_err(), Errno::ELOOP);
        symlink("d", top.join("R/ld")).unwrap();
        assert_eq!(pre.stat(&cat(text, "ld/f")).unwrap_err(), Errno::ELOOP);
        fs::remove_file(top.join("R/ld")).unwrap();
    }
}

#[test]
fn a_relative_prefix_resolves_from_the_working_directory() {
    // The working directory is the process's: run it in a child.
    let tree = Tree::new();
    let top = tree.top().to_path_buf();
    let code = in_child(|| {
        std::env::set_current_dir(&top).unwrap();
        let mut pre = Prefix::new();
        pre.set(c"R").unwrap();
        let ok = pre.stat(c"R/d/f").is_ok()
            && pre.stat(c"R//d/f").is_ok()
            && pre.stat(c"./R/d/f").err() == Some(Errno::EACCES)
            && pre.stat(&cpath(&top.join("R/d/f"))).err() == Some(Errno::EACCES);
        if ok { 0 } else { 1 }
    });
    assert_eq!(code, 0);
}

#[test]
fn a_prefix_too_long_to_keep_refuses_everything() {
    let tree = Tree::new();
    let root = tree.root();
    let mut pre = Box::new(Prefix::new());
    let long = CString::new(vec![b'a'; PREFIX_BUF]).unwrap();
    assert_eq!(pre.set(&long), Err(Errno::ENAMETOOLONG));
    assert!(pre.is_set());
    for (name, op) in ops() {
        assert_eq!(
            op(&pre, &root.join("d"), &root),
            Err(Errno::ENAMETOOLONG),
            "{name}"
        );
    }
    let mut p = long.as_bytes().to_vec();
    p.extend_from_slice(b"/x");
    let p = CString::new(p).unwrap();
    assert_eq!(pre.stat(&p).unwrap_err(), Errno::ENAMETOOLONG);
    assert_eq!(
        pre.set_attr(&p, &Attrs::default()),
        Err(Errno::ENAMETOOLONG)
    );
    // The longest prefix kept: PATH_MAX - 1 bytes.
    let longest = CString::new(vec![b'a'; PREFIX_BUF - 1]).unwrap();
    assert_eq!(pre.set(&longest), Ok(()));
    assert_eq!(pre.as_cstr(), longest.as_c_str());
    // Set again, to a real one: works again; empty: no prefix.
    pre.set(&cpath(&root)).unwrap();
    assert!(pre.stat(&cat(&root, "d/f")).is_ok());
    pre.set(c"").unwrap();
    assert!(!pre.is_set());
}

#[test]
fn setting_another_prefix_forgets_the_old_one() {
    let tree = Tree::new();
    let root = tree.root();
    let other = tree.top().join("out");
    let mut pre = tree.prefix();
    assert!(pre.stat(&cat(&root, "d/f")).is_ok());
    pre.set(&cpath(&other)).unwrap();
    assert_eq!(pre.stat(&cat(&root, "d/f")).unwrap_err(), Errno::EACCES);
    let f = fs::metadata(other.join("f")).unwrap().ino();
    assert_eq!(pre.stat(&cat(&other, "f")).unwrap().stx_ino, f);
    // The prefix directory is opened once and kept: renaming it on the
    // host does not move the prefix (the paths still name the old place,
    // whose directory the prefix still holds).
    fs::rename(&other, tree.top().join("out-moved")).unwrap();
    fs::create_dir(&other).unwrap();
    assert_eq!(pre.stat(&cat(&other, "f")).unwrap().stx_ino, f);
}

#[test]
fn a_missing_prefix_is_tried_again() {
    let tree = Tree::new();
    let later = tree.top().join("later");
    let pre = prefix_of(&later);
    assert_eq!(pre.stat(&cat(&later, "x")).unwrap_err(), Errno::ENOENT);
    fs::create_dir(&later).unwrap();
    fs::write(later.join("x"), "").unwrap();
    assert!(pre.stat(&cat(&later, "x")).is_ok());
    // A prefix that is a file is no directory.
    let pre = prefix_of(&tree.top().join("secret"));
    assert_eq!(
        pre.stat(&cat(&tree.top().join("secret"), "x")).unwrap_err(),
        Errno::ENOTDIR
    );
}

#[test]
fn truncate_of_a_fifo_does_not_open_it() {
    let tree = Tree::new();
    let d = tree.root().join("d");
    let pre = tree.prefix();
    pre.mknod(&cat(&d, "fifo"), (libc::S_IFIFO | 0o600) as c_int, 0, 0)
        .unwrap();
    let a = Attrs {
        size: Some(0),
        ..Default::default()
    };
    // truncate(2) of a FIFO: EINVAL, at once (opening it would block).
    assert_eq!(pre.set_attr(&cat(&d, "fifo"), &a), Err(Errno::EINVAL));
    assert_eq!(pre.set_attr(&cat(&d, "sub"), &a), Err(Errno::EISDIR));
}

#[test]
fn access_and_chmod_without_faccessat2_and_fchmodat2() {
    // Hosts before Linux 5.8 and 6.6: /proc/self/fd/N instead, with the
    // same answers.
    for errno in [libc::ENOSYS, libc::EINVAL] {
        let tree = Tree::new();
        let root = tree.root();
        symlink("d/f", root.join("lin")).unwrap();
        let pre = tree.prefix();
        let filter = seccompiler::SeccompFilter::new(
            [
                (libc::SYS_faccessat2, vec![]),
                (libc::SYS_fchmodat2, vec![]),
            ]
            .into_iter()
            .collect(),
            seccompiler::SeccompAction::Allow,
            seccompiler::SeccompAction::Errno(errno as u32),
            std::env::consts::ARCH.try_into().unwrap(),
        )
        .unwrap();
        let filter: seccompiler::BpfProgram = filter.try_into().unwrap();
        let f = cat(&root, "d/f");
        let code = in_child(|| {
            if seccompiler::apply_filter(&filter).is_err() {
                return 1;
            }
            let mut checks = vec![
                pre.set_attr(&f, &attrs_mode(0o640)) == Ok(None),
                pre.set_attr(&cat(&root, "lin"), &attrs_mode(0o600)) == Err(Errno::ELOOP),
            ];
            if errno == libc::ENOSYS {
                checks.extend([
                    pre.access(&f, true, true, false) == Ok(()),
                    pre.access(&f, false, false, true) == Err(Errno::EACCES),
                    pre.access(&cat(&root, "lin"), false, false, false) == Err(Errno::ELOOP),
                ]);
            }
            checks
                .iter()
                .position(|ok| !ok)
                .map_or(0, |i| 10 + i as i32)
        });
        assert_eq!(code, 0, "errno {errno}: 10 + the failed check");
        assert_eq!(
            fs::metadata(root.join("d/f")).unwrap().mode() & 0o777,
            0o640
        );
    }
}

#[test]
fn racing_swaps_never_lead_out() {
    // Another thread keeps exchanging a directory of the prefix with a
    // link out of it (renameat2 RENAME_EXCHANGE: the name is always one or
    // the other) while operations go through the name.
    let tree = Tree::new();
    let root = tree.root();
    let top = tree.top().to_path_buf();
    fs::create_dir(root.join("w")).unwrap();
    populate(&root.join("w"), "inside");
    symlink("../out", root.join("wl")).unwrap();
    let pre = tree.prefix();
    let out_before = snapshot(&top.join("out"));
    let inside_f = fs::metadata(root.join("w/f")).unwrap().ino();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, a, b) = (
            stop.clone(),
            cpath(&root.join("w")),
            cpath(&root.join("wl")),
        );
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                nix::fcntl::renameat2(
                    None,
                    a.as_c_str(),
                    None,
                    b.as_c_str(),
                    RenameFlags::RENAME_EXCHANGE,
                )
                .unwrap();
                n += 1;
            }
            n
        })
    };
    let (mut ok, mut refused) = (0, 0);
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(600) {
        i += 1;
        let w = root.join("w");
        let mut results = Vec::new();
        if let Ok(st) = pre.stat(&cat(&w, "f")) {
            assert_eq!(st.stx_ino, inside_f, "stat led out");
            results.push(Ok(()));
        } else {
            results.push(Err(()));
        }
        match pre.open(&cat(&w, "f"), true, false, false) {
            Ok(fd) => {
                let mut s = String::new();
                File::from(fd).read_to_string(&mut s).unwrap();
                assert_eq!(s, "inside", "open led out");
                results.push(Ok(()));
            }
            Err(e) => {
                assert_eq!(e, Errno::ELOOP);
                results.push(Err(()));
            }
        }
        let made = cat(&w, &format!("n{i}"));
        results.push(pre.create(&made, 0o644).map(drop).map_err(drop));
        results.push(pre.mkdir(&cat(&w, &format!("m{i}")), 0o755).map_err(drop));
        results.push(pre.symlink(c"x", &cat(&w, &format!("s{i}"))).map_err(drop));
        results.push(
            pre.set_attr(&cat(&w, "f"), &attrs_mode(0o600))
                .map(drop)
                .map_err(drop),
        );
        results.push(pre.unlink(&cat(&w, &format!("n{}", i - 1))).map_err(drop));
        for r in results {
            match r {
                Ok(()) => ok += 1,
                Err(()) => refused += 1,
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 10, "only {swaps} swaps");
    assert!(ok > 0 && refused > 0, "{ok} done, {refused} refused");
    // Nothing reached the outside directory.
    assert!(
        out_before == snapshot(&top.join("out")),
        "the outside changed"
    );
    assert_eq!(fs::read(top.join("secret")).unwrap(), b"SECRET");
}
