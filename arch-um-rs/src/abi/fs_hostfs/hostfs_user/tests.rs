// SPDX-License-Identifier: GPL-2.0
//! Tests of the hostfs_user.c ABI, through the `extern "C"` functions as
//! hostfs_kern.c calls them, on real temporary directories, compared with
//! what the host says (std's metadata, statfs, /proc).

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::{self, File};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;
use crate::host::exec::tests::in_child;

// The prototypes of hostfs.h: these only compile if the signatures match.
type HostfsSetPrefix = unsafe extern "C" fn(*const c_char);
type StatFile = unsafe extern "C" fn(*const c_char, *mut HostfsStat, c_int) -> c_int;
type AccessFile = unsafe extern "C" fn(*mut c_char, c_int, c_int, c_int) -> c_int;
type OpenFile = unsafe extern "C" fn(*mut c_char, c_int, c_int, c_int) -> c_int;
type OpenDir = unsafe extern "C" fn(*mut c_char, *mut c_int) -> *mut c_void;
type SeekDir = unsafe extern "C" fn(*mut c_void, c_ulonglong);
type ReadDir = unsafe extern "C" fn(
    *mut c_void,
    *mut c_ulonglong,
    *mut c_ulonglong,
    *mut c_int,
    *mut c_uint,
) -> *mut c_char;
type CloseFile = unsafe extern "C" fn(*mut c_void);
type ReplaceFile = extern "C" fn(c_int, c_int) -> c_int;
type CloseDir = unsafe extern "C" fn(*mut c_void);
type ReadFile = unsafe extern "C" fn(c_int, *mut c_ulonglong, *mut c_char, c_int) -> c_int;
type WriteFile = unsafe extern "C" fn(c_int, *mut c_ulonglong, *const c_char, c_int) -> c_int;
type LseekFile = extern "C" fn(c_int, c_longlong, c_int) -> c_int;
type FsyncFile = extern "C" fn(c_int, c_int) -> c_int;
type FileCreate = unsafe extern "C" fn(*mut c_char, c_int) -> c_int;
type SetAttr = unsafe extern "C" fn(*const c_char, *mut HostfsIattr, c_int) -> c_int;
type MakeSymlink = unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
type UnlinkFile = unsafe extern "C" fn(*const c_char) -> c_int;
type DoMkdir = unsafe extern "C" fn(*const c_char, c_int) -> c_int;
type DoMknod = unsafe extern "C" fn(*const c_char, c_int, c_uint, c_uint) -> c_int;
type LinkFile = unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
type HostfsDoReadlink = unsafe extern "C" fn(*mut c_char, *mut c_char, c_int) -> c_int;
type RenameFile = unsafe extern "C" fn(*mut c_char, *mut c_char) -> c_int;
type Rename2File = unsafe extern "C" fn(*mut c_char, *mut c_char, c_uint) -> c_int;
type DoStatfs = unsafe extern "C" fn(
    *mut c_char,
    *mut c_long,
    *mut c_longlong,
    *mut c_longlong,
    *mut c_longlong,
    *mut c_longlong,
    *mut c_longlong,
    *mut c_void,
    c_int,
    *mut c_long,
) -> c_int;

const HOSTFS_SET_PREFIX: HostfsSetPrefix = hostfs_set_prefix;
const STAT_FILE: StatFile = stat_file;
const ACCESS_FILE: AccessFile = access_file;
const OPEN_FILE: OpenFile = open_file;
const OPEN_DIR: OpenDir = open_dir;
const SEEK_DIR: SeekDir = seek_dir;
const READ_DIR: ReadDir = read_dir;
const CLOSE_FILE: CloseFile = close_file;
const REPLACE_FILE: ReplaceFile = replace_file;
const CLOSE_DIR: CloseDir = close_dir;
const READ_FILE: ReadFile = read_file;
const WRITE_FILE: WriteFile = write_file;
const LSEEK_FILE: LseekFile = lseek_file;
const FSYNC_FILE: FsyncFile = fsync_file;
const FILE_CREATE: FileCreate = file_create;
const SET_ATTR: SetAttr = set_attr;
const MAKE_SYMLINK: MakeSymlink = make_symlink;
const UNLINK_FILE: UnlinkFile = unlink_file;
const DO_MKDIR: DoMkdir = do_mkdir;
const HOSTFS_DO_RMDIR: UnlinkFile = hostfs_do_rmdir;
const DO_MKNOD: DoMknod = do_mknod;
const LINK_FILE: LinkFile = link_file;
const HOSTFS_DO_READLINK: HostfsDoReadlink = hostfs_do_readlink;
const RENAME_FILE: RenameFile = rename_file;
const RENAME2_FILE: Rename2File = rename2_file;
const DO_STATFS: DoStatfs = do_statfs;

const GIB: u64 = 1 << 30;

/// A descriptor number no process has open (far above RLIMIT_NOFILE): a
/// closed descriptor of our own could be reused by a test running in
/// parallel.
const BAD_FD: c_int = 999_999;

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn mut_ptr(s: &CStr) -> *mut c_char {
    s.as_ptr().cast_mut()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line.split_whitespace().nth(1).unwrap(), 8).unwrap()
}

/// Takes ownership of a descriptor a function returned, asserting it is one.
fn own(fd: c_int) -> OwnedFd {
    assert!(fd >= 0, "expected a descriptor, got {fd}");
    // SAFETY: a fresh descriptor the function under test handed us.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn status_flags(fd: RawFd) -> c_int {
    // SAFETY: F_GETFL takes no argument.
    let r = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(r >= 0);
    r
}

fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no argument.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// `stat_file(path, p, fd)`: its result and what it wrote.
fn stat(path: Option<&CStr>, fd: c_int) -> (c_int, HostfsStat) {
    let mut st = HostfsStat::default();
    let path = path.map_or(core::ptr::null(), CStr::as_ptr);
    // SAFETY: a C string or NULL, and a live stat.
    let r = unsafe { STAT_FILE(path, &mut st, fd) };
    (r, st)
}

fn stat_ok(path: &CStr) -> HostfsStat {
    let (r, st) = stat(Some(path), -1);
    assert_eq!(r, 0, "stat_file {path:?}");
    st
}

fn ts(sec: i64, nsec: i64) -> HostfsTimespec {
    HostfsTimespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

/// `hostfs_stat` as the host's metadata of `path` (not following a final
/// symbolic link) says it should be.
fn expected_stat(path: &Path) -> HostfsStat {
    let m = fs::symlink_metadata(path).unwrap();
    let btime = m
        .created()
        .map(|t| {
            let d = t.duration_since(std::time::UNIX_EPOCH).unwrap();
            ts(d.as_secs() as i64, d.subsec_nanos().into())
        })
        .unwrap_or_default();
    HostfsStat {
        ino: m.ino(),
        mode: m.mode(),
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        size: m.size(),
        atime: ts(m.atime(), m.atime_nsec()),
        mtime: ts(m.mtime(), m.mtime_nsec()),
        ctime: ts(m.ctime(), m.ctime_nsec()),
        btime,
        blksize: m.blksize() as u32,
        blocks: m.blocks(),
        rdev: HostfsDevNum {
            maj: libc::major(m.rdev()),
            min: libc::minor(m.rdev()),
        },
        dev: HostfsDevNum {
            maj: libc::major(m.dev()),
            min: libc::minor(m.dev()),
        },
    }
}

// ---------------------------------------------------------------------------
// stat_file

#[test]
fn stat_file_reports_what_the_host_says() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("file");
    fs::write(&file, b"twelve bytes").unwrap();
    let dir = d.path().join("dir");
    fs::create_dir(&dir).unwrap();
    let link = d.path().join("link");
    std::os::unix::fs::symlink("file", &link).unwrap();
    let fifo = d.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o640)).unwrap();
    fs::hard_link(&file, d.path().join("hard")).unwrap();
    for p in [
        file.as_path(),
        &dir,
        &link,
        &fifo,
        Path::new("/dev/null"),
        d.path(),
    ] {
        assert_eq!(stat_ok(&cpath(p)), expected_stat(p), "{}", p.display());
    }
    let st = stat_ok(&cpath(&file));
    assert_eq!((st.size, st.nlink), (12, 2));
    assert_ne!(
        st.btime,
        HostfsTimespec::default(),
        "ext4 and tmpfs have btime"
    );
    // The link itself, not its target.
    let st = stat_ok(&cpath(&link));
    assert_eq!(st.mode & libc::S_IFMT, libc::S_IFLNK);
    assert_eq!(st.size, 4);
    // A device's number.
    let st = stat_ok(c"/dev/null");
    assert_eq!((st.rdev.maj, st.rdev.min), (1, 3));
}

#[test]
fn stat_file_by_descriptor_ignores_the_path() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("file");
    fs::write(&file, b"x").unwrap();
    let f = File::open(&file).unwrap();
    let (r, st) = stat(None, f.as_raw_fd());
    assert_eq!(r, 0);
    assert_eq!(st, expected_stat(&file));
    let (r, st2) = stat(Some(c"/nonexistent"), f.as_raw_fd());
    assert_eq!((r, st2), (0, st));
    // Still the file after it lost its name.
    fs::remove_file(&file).unwrap();
    let (r, st) = stat(None, f.as_raw_fd());
    assert_eq!((r, st.nlink), (0, 0));
}

#[test]
fn stat_file_errors() {
    let d = tempfile::tempdir().unwrap();
    let missing = cpath(&d.path().join("missing"));
    assert_eq!(stat(Some(&missing), -1).0, -libc::ENOENT);
    let file = d.path().join("file");
    fs::write(&file, b"").unwrap();
    assert_eq!(
        stat(Some(&cpath(&file.join("below"))), -1).0,
        -libc::ENOTDIR
    );
    assert_eq!(stat(None, BAD_FD).0, -libc::EBADF);
    // As in C, the negative fd is the directory a relative path starts
    // from: -1 is no directory.
    assert_eq!(stat(Some(c"relative"), -1).0, -libc::EBADF);
    assert_eq!(stat(Some(c"."), libc::AT_FDCWD).0, 0);
    // NULL path without a descriptor, and NULL result.
    assert_eq!(stat(None, -1).0, -libc::EFAULT);
    assert_eq!(
        // SAFETY: a NULL result pointer is refused before use.
        unsafe { STAT_FILE(c"/".as_ptr(), core::ptr::null_mut(), -1) },
        -libc::EFAULT
    );
}

// ---------------------------------------------------------------------------
// access_file, open_file, file_create

fn access(p: &CStr, r: c_int, w: c_int, x: c_int) -> c_int {
    // SAFETY: a C string.
    unsafe { ACCESS_FILE(mut_ptr(p), r, w, x) }
}

#[test]
fn access_file_checks_each_mode() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("file");
    fs::write(&file, b"").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let p = cpath(&file);
    assert_eq!(access(&p, 0, 0, 0), 0, "F_OK");
    assert_eq!(access(&p, 1, 0, 0), 0);
    assert_eq!(access(&p, 1, 1, 0), 0);
    // Nobody may execute a file without an x bit, root included.
    assert_eq!(access(&p, 0, 0, 1), -libc::EACCES);
    assert_eq!(access(&p, 1, 1, 1), -libc::EACCES);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(access(&p, 1, 1, 1), 0);
    assert_eq!(access(&p, 7, 9, 42), 0, "any non-zero int is a yes");
    assert_eq!(
        access(&cpath(&d.path().join("missing")), 0, 0, 0),
        -libc::ENOENT
    );
    assert_eq!(
        // SAFETY: NULL is refused before use.
        unsafe { ACCESS_FILE(core::ptr::null_mut(), 1, 0, 0) },
        -libc::EFAULT
    );
}

#[test]
fn access_file_as_an_unprivileged_user() {
    if !is_root() {
        return; // needs to switch users
    }
    let d = tempfile::tempdir().unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let ro = d.path().join("ro");
    let wo = d.path().join("wo");
    fs::write(&ro, b"").unwrap();
    fs::write(&wo, b"").unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o444)).unwrap();
    fs::set_permissions(&wo, fs::Permissions::from_mode(0o222)).unwrap();
    let (ro, wo) = (cpath(&ro), cpath(&wo));
    let code = in_child(|| {
        // SAFETY: plain system calls in the single-threaded child.
        if unsafe { libc::setresgid(65534, 65534, 65534) | libc::setresuid(65534, 65534, 65534) }
            != 0
        {
            return 1;
        }
        let results = [
            access(&ro, 1, 0, 0),
            access(&ro, 0, 1, 0),
            access(&wo, 0, 1, 0),
            access(&wo, 1, 0, 0),
        ];
        if results == [0, -libc::EACCES, 0, -libc::EACCES] {
            0
        } else {
            2
        }
    });
    assert_eq!(code, 0);
}

fn open(p: &CStr, r: c_int, w: c_int, append: c_int) -> c_int {
    // SAFETY: a C string.
    unsafe { OPEN_FILE(mut_ptr(p), r, w, append) }
}

#[test]
fn open_file_modes_and_append() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("file");
    fs::write(&file, b"0123456789").unwrap();
    let p = cpath(&file);
    for ((r, w), acc) in [
        ((1, 0), libc::O_RDONLY),
        ((0, 1), libc::O_WRONLY),
        ((1, 1), libc::O_RDWR),
    ] {
        for append in [0, 1] {
            let fd = own(open(&p, r, w, append));
            let flags = status_flags(fd.as_raw_fd());
            assert_eq!(flags & libc::O_ACCMODE, acc, "r {r} w {w}");
            assert_eq!(flags & libc::O_APPEND != 0, append != 0);
            assert_eq!(flags & (libc::O_CREAT | libc::O_TRUNC), 0);
            // Not close-on-exec, as in C.
            // SAFETY: F_GETFD takes no argument.
            assert_eq!(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) }, 0);
        }
    }
    // Append mode: a write at offset 0 lands at the end.
    let fd = own(open(&p, 1, 1, 1));
    let mut off: c_ulonglong = 0;
    // SAFETY: a live offset and a readable buffer.
    let n = unsafe { WRITE_FILE(fd.as_raw_fd(), &mut off, c"ab".as_ptr(), 2) };
    assert_eq!((n, off), (2, 2));
    assert_eq!(fs::read(&file).unwrap(), b"0123456789ab");
    // Nothing is created or truncated.
    let missing = cpath(&d.path().join("missing"));
    assert_eq!(open(&missing, 1, 1, 0), -libc::ENOENT);
    assert_eq!(open(&cpath(d.path()), 1, 1, 0), -libc::EISDIR);
    own(open(&cpath(d.path()), 1, 0, 0)); // a directory opens read-only
    assert_eq!(
        // SAFETY: NULL is refused before use.
        unsafe { OPEN_FILE(core::ptr::null_mut(), 1, 0, 0) },
        -libc::EFAULT
    );
}

#[test]
fn open_file_without_a_mode_never_returns() {
    // The C panics the kernel. Outside a kernel it is a Rust panic, which
    // cannot unwind out of an extern "C" function: the process aborts.
    // SAFETY: the child only calls open_file and leaves by _exit or abort.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        open(c"/dev/null", 0, 0, 1);
        // SAFETY: ends the child without running the parent's atexit state.
        unsafe { libc::_exit(0) };
    }
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
    assert!(
        matches!(
            status,
            nix::sys::wait::WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGABRT, _)
        ),
        "{status:?}"
    );
}

#[test]
fn file_create_makes_or_opens_read_write() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("new");
    let p = cpath(&file);
    // SAFETY: a C string.
    let fd = own(unsafe { FILE_CREATE(mut_ptr(&p), 0o640) });
    let m = fs::metadata(&file).unwrap();
    assert!(m.is_file());
    assert_eq!(m.mode() & 0o7777, 0o640 & !umask());
    assert_eq!(status_flags(fd.as_raw_fd()) & libc::O_ACCMODE, libc::O_RDWR);
    // An existing file is opened as it is: not truncated, not refused.
    fs::write(&file, b"kept").unwrap();
    // SAFETY: a C string.
    let fd2 = own(unsafe { FILE_CREATE(mut_ptr(&p), 0o600) });
    assert_eq!(fs::read(&file).unwrap(), b"kept");
    assert_eq!(
        fs::metadata(&file).unwrap().mode() & 0o7777,
        0o640 & !umask()
    );
    drop((fd, fd2));
    let sub = cpath(&d.path().join("missing/new"));
    // SAFETY: C strings.
    unsafe {
        assert_eq!(FILE_CREATE(mut_ptr(&sub), 0o644), -libc::ENOENT);
        assert_eq!(FILE_CREATE(mut_ptr(&cpath(d.path())), 0o644), -libc::EISDIR);
        assert_eq!(FILE_CREATE(core::ptr::null_mut(), 0o644), -libc::EFAULT);
    }
}

// ---------------------------------------------------------------------------
// directories

/// One entry as read_dir reported it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Entry {
    name: Vec<u8>,
    ino: u64,
    kind: u32,
    next: u64,
}

/// Reads up to `max` entries from `stream`.
fn read_entries(stream: *mut c_void, max: usize) -> Vec<Entry> {
    let mut out = Vec::new();
    while out.len() < max {
        let (mut pos, mut ino, mut len, mut kind) = (0, 0, -1, 0);
        // SAFETY: an open stream and live outputs.
        let name = unsafe { READ_DIR(stream, &mut pos, &mut ino, &mut len, &mut kind) };
        if name.is_null() {
            break;
        }
        // SAFETY: read_dir returned a C string valid until the next call.
        let name = unsafe { CStr::from_ptr(name) }.to_bytes().to_vec();
        assert_eq!(len as usize, name.len());
        out.push(Entry {
            name,
            ino,
            kind,
            next: pos,
        });
    }
    out
}

fn opendir(p: &CStr) -> (*mut c_void, c_int) {
    let mut err = -1;
    // SAFETY: a C string and a live int.
    let dir = unsafe { OPEN_DIR(mut_ptr(p), &mut err) };
    (dir, err)
}

/// A directory of 1000 files, 50 subdirectories, 50 symbolic links and a
/// FIFO.
fn big_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for i in 0..1000 {
        File::create(d.path().join(format!("file-{i:04}-{}", "x".repeat(i % 40)))).unwrap();
    }
    for i in 0..50 {
        fs::create_dir(d.path().join(format!("dir-{i}"))).unwrap();
        std::os::unix::fs::symlink(format!("dir-{i}"), d.path().join(format!("link-{i}"))).unwrap();
    }
    nix::unistd::mkfifo(
        &d.path().join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    d
}

fn dt_of(path: &Path) -> u32 {
    let t = fs::symlink_metadata(path).unwrap().file_type();
    u32::from(if t.is_dir() {
        libc::DT_DIR
    } else if t.is_symlink() {
        libc::DT_LNK
    } else if t.is_fifo() {
        libc::DT_FIFO
    } else {
        libc::DT_REG
    })
}

#[test]
fn read_dir_lists_every_entry_with_inode_and_type() {
    let d = big_dir();
    let (dir, err) = opendir(&cpath(d.path()));
    assert!(!dir.is_null());
    assert_eq!(err, 0);
    // SAFETY: the stream just opened.
    unsafe { SEEK_DIR(dir, 0) };
    let all = read_entries(dir, usize::MAX);
    // At the end it stays at the end.
    assert!(read_entries(dir, 1).is_empty());
    // SAFETY: the stream, closed once.
    unsafe { CLOSE_DIR(dir) };

    let names: HashSet<Vec<u8>> = all.iter().map(|e| e.name.clone()).collect();
    assert_eq!(names.len(), all.len(), "no entry twice");
    let mut want: HashSet<Vec<u8>> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    want.insert(b".".to_vec());
    want.insert(b"..".to_vec());
    assert_eq!(names, want);
    assert_eq!(all.len(), 1103);
    for e in &all {
        let path = d.path().join(std::ffi::OsStr::from_bytes(&e.name));
        let m = fs::symlink_metadata(&path).unwrap();
        assert_eq!(e.ino, m.ino(), "{path:?}");
        assert_eq!(e.kind, dt_of(&path), "{path:?}");
    }
}

#[test]
fn read_dir_resumes_from_a_saved_position_like_hostfs_readdir() {
    let d = big_dir();
    let p = cpath(d.path());
    let (dir, _) = opendir(&p);
    let all = read_entries(dir, usize::MAX);
    // SAFETY: the stream, closed once.
    unsafe { CLOSE_DIR(dir) };

    // hostfs_readdir: a new stream for each call, moved to ctx->pos, which
    // is the position read_dir returned with the last entry taken.
    let mut pos = 0;
    let mut resumed = Vec::new();
    loop {
        let (dir, err) = opendir(&p);
        assert_eq!(err, 0);
        // SAFETY: the stream just opened.
        unsafe { SEEK_DIR(dir, pos) };
        let batch = read_entries(dir, 97);
        // SAFETY: the stream, closed once.
        unsafe { CLOSE_DIR(dir) };
        let Some(last) = batch.last() else { break };
        pos = last.next;
        resumed.extend(batch);
    }
    assert_eq!(resumed, all);

    // Within one stream: back to a saved position, and to the start.
    let (dir, _) = opendir(&p);
    let first = read_entries(dir, 500);
    let saved = first[299].next;
    // SAFETY: the open stream.
    unsafe { SEEK_DIR(dir, saved) };
    assert_eq!(read_entries(dir, 10), all[300..310]);
    // SAFETY: the open stream.
    unsafe { SEEK_DIR(dir, 0) };
    assert_eq!(read_entries(dir, 3), all[..3]);
    // SAFETY: the stream, closed once.
    unsafe { CLOSE_DIR(dir) };
}

#[test]
fn read_dir_sees_changes_made_between_calls() {
    let d = tempfile::tempdir().unwrap();
    let p = cpath(d.path());
    File::create(d.path().join("a")).unwrap();
    let (dir, _) = opendir(&p);
    let before = read_entries(dir, usize::MAX);
    // SAFETY: the stream, closed once.
    unsafe { CLOSE_DIR(dir) };
    assert_eq!(before.len(), 3);
    File::create(d.path().join("b")).unwrap();
    let (dir, _) = opendir(&p);
    let after = read_entries(dir, usize::MAX);
    // SAFETY: the stream, closed once.
    unsafe { CLOSE_DIR(dir) };
    assert_eq!(after.len(), 4);
}

#[test]
fn open_dir_errors_and_null_arguments() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("file");
    fs::write(&file, b"").unwrap();
    let (dir, err) = opendir(&cpath(&d.path().join("missing")));
    assert!(dir.is_null());
    assert_eq!(err, libc::ENOENT, "a positive errno");
    let (dir, err) = opendir(&cpath(&file));
    assert!(dir.is_null());
    assert_eq!(err, libc::ENOTDIR);
    let mut err = 0;
    // SAFETY: NULL arguments are refused before use.
    unsafe {
        assert!(OPEN_DIR(core::ptr::null_mut(), &mut err).is_null());
        assert_eq!(err, libc::EFAULT);
        assert!(OPEN_DIR(mut_ptr(&cpath(d.path())), core::ptr::null_mut()).is_null());
        SEEK_DIR(core::ptr::null_mut(), 0);
        CLOSE_DIR(core::ptr::null_mut());
        let (mut a, mut b, mut c, mut t) = (0, 0, 0, 0);
        assert!(READ_DIR(core::ptr::null_mut(), &mut a, &mut b, &mut c, &mut t).is_null());
    }
    // A NULL output does not use up an entry.
    let (dir, _) = opendir(&cpath(d.path()));
    let (mut a, mut b, mut c) = (0, 0, 0);
    // SAFETY: an open stream; the NULL output is refused before use.
    let name = unsafe { READ_DIR(dir, &mut a, &mut b, &mut c, core::ptr::null_mut()) };
    assert!(name.is_null());
    assert_eq!(read_entries(dir, usize::MAX).len(), 3);
    // SAFETY: the stream, closed once.
    unsafe { CLOSE_DIR(dir) };
}

// ---------------------------------------------------------------------------
// read_file, write_file, lseek_file, fsync_file

fn pread(fd: RawFd, off: &mut c_ulonglong, len: usize) -> (c_int, Vec<u8>) {
    let mut buf = vec![0u8; len];
    // SAFETY: a live offset; `buf` holds `len` bytes.
    let n = unsafe { READ_FILE(fd, off, buf.as_mut_ptr().cast(), len as c_int) };
    buf.truncate(n.max(0) as usize);
    (n, buf)
}

fn pwrite(fd: RawFd, off: &mut c_ulonglong, data: &[u8]) -> c_int {
    // SAFETY: a live offset; `data` holds its length.
    unsafe { WRITE_FILE(fd, off, data.as_ptr().cast(), data.len() as c_int) }
}

#[test]
fn read_and_write_file_advance_the_offset() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("file");
    fs::write(&file, b"hello world").unwrap();
    let fd = own(open(&cpath(&file), 1, 1, 0));
    let fd = fd.as_raw_fd();
    let mut off = 6;
    assert_eq!(pread(fd, &mut off, 100), (5, b"world".to_vec()));
    assert_eq!(off, 11);
    // At the end: 0, offset unchanged.
    assert_eq!(pread(fd, &mut off, 100), (0, vec![]));
    assert_eq!(off, 11);
    let mut off = 5;
    assert_eq!(pwrite(fd, &mut off, b", big"), 5);
    assert_eq!(off, 10);
    assert_eq!(fs::read(&file).unwrap(), b"hello, bigd");
    // The descriptor's own offset is not used or moved.
    // SAFETY: no memory arguments.
    assert_eq!(unsafe { libc::lseek64(fd, 0, libc::SEEK_CUR) }, 0);
    // Errors: negative errno, offset unchanged.
    let ro = own(open(&cpath(&file), 1, 0, 0));
    let mut off = 3;
    assert_eq!(pwrite(ro.as_raw_fd(), &mut off, b"x"), -libc::EBADF);
    assert_eq!(off, 3);
    let wo = own(open(&cpath(&file), 0, 1, 0));
    assert_eq!(pread(wo.as_raw_fd(), &mut off, 4).0, -libc::EBADF);
    assert_eq!(off, 3);
    let mut off = 1u64 << 63;
    assert_eq!(
        pread(fd, &mut off, 4).0,
        -libc::EINVAL,
        "offset past off64_t"
    );
    // A negative length reaches the host as a huge size_t, as in C.
    let mut off = 0;
    let mut b = [0u8; 4];
    // SAFETY: the host refuses the length before touching the buffer.
    let n = unsafe { READ_FILE(fd, &mut off, b.as_mut_ptr().cast(), -1) };
    assert_eq!((n, off), (-libc::EFAULT, 0));
    // A pipe cannot be read at an offset.
    let (r, _w) = nix::unistd::pipe().unwrap();
    assert_eq!(pread(r.as_raw_fd(), &mut off, 1).0, -libc::ESPIPE);
    // SAFETY: NULL is refused before use.
    unsafe {
        assert_eq!(
            READ_FILE(fd, core::ptr::null_mut(), b.as_mut_ptr().cast(), 4),
            -libc::EFAULT
        );
        assert_eq!(
            WRITE_FILE(fd, core::ptr::null_mut(), b.as_ptr().cast(), 4),
            -libc::EFAULT
        );
    }
}

#[test]
fn a_sparse_file_beyond_4_gib() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("big");
    File::create(&file).unwrap().set_len(5 * GIB).unwrap();
    let p = cpath(&file);
    let st = stat_ok(&p);
    assert_eq!(st.size, 5 * GIB);
    assert_eq!(st, expected_stat(&file));
    let fd = own(open(&p, 1, 1, 0));
    let fd = fd.as_raw_fd();
    // Offsets past 32 bits, both ways.
    let mut off = 4 * GIB + 3;
    assert_eq!(pwrite(fd, &mut off, b"far away"), 8);
    assert_eq!(off, 4 * GIB + 11);
    let mut off = 4 * GIB;
    assert_eq!(
        pread(fd, &mut off, 16),
        (16, b"\0\0\0far away\0\0\0\0\0".to_vec())
    );
    assert_eq!(off, 4 * GIB + 16);
    // The last bytes, and the end.
    let mut off = 5 * GIB - 2;
    assert_eq!(pread(fd, &mut off, 16).0, 2);
    assert_eq!(off, 5 * GIB);
    let st = stat_ok(&p);
    assert_eq!(st.size, 5 * GIB);
    assert!(st.blocks < 64, "still sparse: {} blocks", st.blocks);
    // Seeks to 3, 4 and 6 GiB all succeed (the C took 3 GiB for an error).
    for (offset, whence, at) in [
        (3 * GIB as i64, libc::SEEK_SET, 3 * GIB),
        (4 * GIB as i64, libc::SEEK_SET, 4 * GIB),
        (GIB as i64, libc::SEEK_END, 6 * GIB),
        (-(GIB as i64), libc::SEEK_CUR, 5 * GIB),
    ] {
        assert_eq!(LSEEK_FILE(fd, offset, whence), 0);
        // SAFETY: no memory arguments.
        assert_eq!(unsafe { libc::lseek64(fd, 0, libc::SEEK_CUR) } as u64, at);
    }
    // Truncation beyond and below 4 GiB, by descriptor and by path.
    let mut attrs = HostfsIattr {
        ia_valid: HOSTFS_ATTR_SIZE,
        ia_size: (6 * GIB + 1) as i64,
        ..Default::default()
    };
    assert_eq!(set(None, &mut attrs, fd), 0);
    assert_eq!(fs::metadata(&file).unwrap().len(), 6 * GIB + 1);
    attrs.ia_size = (4 * GIB + 7) as i64;
    assert_eq!(set(Some(&p), &mut attrs, -1), 0);
    assert_eq!(fs::metadata(&file).unwrap().len(), 4 * GIB + 7);
    let mut off = 4 * GIB + 3;
    assert_eq!(pread(fd, &mut off, 100), (4, b"far ".to_vec()));
}

#[test]
fn lseek_file_errors() {
    let d = tempfile::tempdir().unwrap();
    let f = File::create(d.path().join("f")).unwrap();
    let fd = f.as_raw_fd();
    assert_eq!(LSEEK_FILE(fd, 10, libc::SEEK_SET), 0);
    assert_eq!(LSEEK_FILE(fd, -1, libc::SEEK_SET), -libc::EINVAL);
    assert_eq!(LSEEK_FILE(fd, 0, 42), -libc::EINVAL);
    // SEEK_DATA past the end of an empty file.
    assert_eq!(LSEEK_FILE(fd, 0, libc::SEEK_DATA), -libc::ENXIO);
    let (r, _w) = nix::unistd::pipe().unwrap();
    assert_eq!(LSEEK_FILE(r.as_raw_fd(), 0, libc::SEEK_SET), -libc::ESPIPE);
    assert_eq!(LSEEK_FILE(BAD_FD, 0, libc::SEEK_SET), -libc::EBADF);
}

#[test]
fn fsync_file_syncs_or_reports() {
    let d = tempfile::tempdir().unwrap();
    let f = File::create(d.path().join("f")).unwrap();
    assert_eq!(FSYNC_FILE(f.as_raw_fd(), 0), 0);
    assert_eq!(FSYNC_FILE(f.as_raw_fd(), 1), 0);
    let (r, _w) = nix::unistd::pipe().unwrap();
    assert_eq!(FSYNC_FILE(r.as_raw_fd(), 0), -libc::EINVAL);
    assert_eq!(FSYNC_FILE(r.as_raw_fd(), 1), -libc::EINVAL);
    assert_eq!(FSYNC_FILE(BAD_FD, 0), -libc::EBADF);
    assert_eq!(FSYNC_FILE(BAD_FD, 1), -libc::EBADF);
}

/// A seccomp filter answering each of `syscalls` with its errno (the same
/// for all) and allowing everything else; built before a fork so that installing it in
/// the child does not allocate.
fn errno_filter(syscalls: &[(i64, c_int)]) -> seccompiler::BpfProgram {
    use seccompiler::SeccompAction;
    // One match action per filter: one errno for all the calls.
    assert!(syscalls.iter().all(|&(_, e)| e == syscalls[0].1));
    seccompiler::SeccompFilter::new(
        syscalls.iter().map(|&(nr, _)| (nr, vec![])).collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(syscalls[0].1 as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap()
}

#[test]
fn fsync_file_chooses_fdatasync_or_fsync() {
    let d = tempfile::tempdir().unwrap();
    let f = File::create(d.path().join("f")).unwrap();
    let fd = f.as_raw_fd();
    let no_fdatasync = errno_filter(&[(libc::SYS_fdatasync, libc::ENOTTY)]);
    let no_fsync = errno_filter(&[(libc::SYS_fsync, libc::EXDEV)]);
    let code = in_child(|| {
        if seccompiler::apply_filter(&no_fdatasync).is_err() {
            return 1;
        }
        if FSYNC_FILE(fd, 1) != -libc::ENOTTY || FSYNC_FILE(fd, 0) != 0 {
            return 2;
        }
        if seccompiler::apply_filter(&no_fsync).is_err() {
            return 3;
        }
        if FSYNC_FILE(fd, 0) != -libc::EXDEV || FSYNC_FILE(fd, 7) != -libc::ENOTTY {
            return 4;
        }
        0
    });
    assert_eq!(code, 0);
}

// ---------------------------------------------------------------------------
// replace_file, close_file

#[test]
fn replace_file_is_dup2() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("a"), b"aaa").unwrap();
    fs::write(d.path().join("b"), b"bbb").unwrap();
    let a = own(open(&cpath(&d.path().join("a")), 1, 0, 0));
    let b = own(open(&cpath(&d.path().join("b")), 1, 1, 0));
    // The inode's descriptor (a) now reaches b's file, opened read-write.
    assert_eq!(REPLACE_FILE(b.as_raw_fd(), a.as_raw_fd()), a.as_raw_fd());
    let mut off = 0;
    assert_eq!(pread(a.as_raw_fd(), &mut off, 3), (3, b"bbb".to_vec()));
    assert_eq!(status_flags(a.as_raw_fd()) & libc::O_ACCMODE, libc::O_RDWR);
    // Failure: -1 and errno, not a negative errno.
    Errno::clear();
    assert_eq!(REPLACE_FILE(BAD_FD, a.as_raw_fd()), -1);
    assert_eq!(Errno::last(), Errno::EBADF);
    assert_eq!(REPLACE_FILE(a.as_raw_fd(), -5), -1);
    assert_eq!(Errno::last(), Errno::EBADF);
}

#[test]
fn close_file_closes_the_descriptor_it_points_to() {
    let f = File::open("/dev/null").unwrap();
    // Far above the lowest free number, so that no test running in
    // parallel gets it again once it is closed.
    // SAFETY: F_DUPFD takes an int argument.
    let mut fd: c_int = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD, 700) };
    assert!(fd >= 700);
    assert!(fd_is_open(fd));
    // SAFETY: points to a descriptor we own and give up.
    unsafe { CLOSE_FILE((&raw mut fd).cast()) };
    assert!(!fd_is_open(fd));
    // SAFETY: NULL is ignored.
    unsafe { CLOSE_FILE(core::ptr::null_mut()) };
}

// ---------------------------------------------------------------------------
// set_attr

fn set(path: Option<&CStr>, attrs: &mut HostfsIattr, fd: c_int) -> c_int {
    let path = path.map_or(core::ptr::null(), CStr::as_ptr);
    // SAFETY: a C string or NULL, and a live iattr.
    unsafe { SET_ATTR(path, attrs, fd) }
}

fn iattr(valid: c_uint) -> HostfsIattr {
    HostfsIattr {
        ia_valid: valid,
        ..Default::default()
    }
}

fn host_times(p: &Path) -> (HostfsTimespec, HostfsTimespec) {
    let m = fs::symlink_metadata(p).unwrap();
    (ts(m.atime(), m.atime_nsec()), ts(m.mtime(), m.mtime_nsec()))
}

/// Sets both times of `p` to the nanosecond, bypassing the function under
/// test.
fn set_host_times(p: &Path, atime: HostfsTimespec, mtime: HostfsTimespec) {
    use nix::sys::time::TimeSpec;
    nix::sys::stat::utimensat(
        None,
        p,
        &TimeSpec::new(atime.tv_sec, atime.tv_nsec),
        &TimeSpec::new(mtime.tv_sec, mtime.tv_nsec),
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )
    .unwrap();
}

#[test]
fn set_attr_mode_by_path_and_by_descriptor() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("f");
    fs::write(&file, b"").unwrap();
    let p = cpath(&file);
    let mut a = iattr(HOSTFS_ATTR_MODE);
    a.ia_mode = 0o4751;
    assert_eq!(set(Some(&p), &mut a, -1), 0);
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o7777, 0o4751);
    let f = File::open(&file).unwrap();
    a.ia_mode = 0o600;
    // The descriptor wins; the path is not used.
    assert_eq!(set(Some(c"/nonexistent"), &mut a, f.as_raw_fd()), 0);
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o7777, 0o600);
    a.ia_mode = 0o640;
    assert_eq!(set(None, &mut a, f.as_raw_fd()), 0);
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o7777, 0o640);
    // No other attribute moved, and the times were not touched.
    assert_eq!(a.ia_atime, HostfsTimespec::default());
}

#[test]
fn set_attr_owner_and_group_each_alone() {
    if !is_root() {
        return; // chown to another user needs root
    }
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("f");
    fs::write(&file, b"").unwrap();
    let p = cpath(&file);
    let mut a = iattr(HOSTFS_ATTR_UID);
    a.ia_uid = 1234;
    a.ia_gid = 9999; // not selected: ignored
    assert_eq!(set(Some(&p), &mut a, -1), 0);
    let m = fs::metadata(&file).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 0));
    let mut a = iattr(HOSTFS_ATTR_GID);
    a.ia_gid = 4321;
    a.ia_uid = 9999;
    assert_eq!(set(Some(&p), &mut a, -1), 0);
    let m = fs::metadata(&file).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 4321));
    let f = File::open(&file).unwrap();
    let mut a = iattr(HOSTFS_ATTR_UID | HOSTFS_ATTR_GID);
    a.ia_uid = 7;
    a.ia_gid = 8;
    assert_eq!(set(None, &mut a, f.as_raw_fd()), 0);
    let m = fs::metadata(&file).unwrap();
    assert_eq!((m.uid(), m.gid()), (7, 8));
    // By path, chown follows a symbolic link.
    let link = d.path().join("l");
    std::os::unix::fs::symlink("f", &link).unwrap();
    let mut a = iattr(HOSTFS_ATTR_UID);
    a.ia_uid = 77;
    assert_eq!(set(Some(&cpath(&link)), &mut a, -1), 0);
    assert_eq!(fs::metadata(&file).unwrap().uid(), 77);
    assert_eq!(fs::symlink_metadata(&link).unwrap().uid(), 0);
}

#[test]
fn set_attr_owner_refused_to_an_unprivileged_user() {
    if !is_root() {
        return; // needs to switch users
    }
    let d = tempfile::tempdir().unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let file = d.path().join("f");
    fs::write(&file, b"").unwrap();
    nix::unistd::chown(&file, Some(65534.into()), Some(65534.into())).unwrap();
    let p = cpath(&file);
    let code = in_child(|| {
        // SAFETY: plain system calls in the single-threaded child.
        if unsafe { libc::setresgid(65534, 65534, 65534) | libc::setresuid(65534, 65534, 65534) }
            != 0
        {
            return 1;
        }
        let mut a = iattr(HOSTFS_ATTR_MODE | HOSTFS_ATTR_UID);
        a.ia_mode = 0o600;
        a.ia_uid = 0;
        // The mode changes (the owner may), then chown fails.
        i32::from(set(Some(&p), &mut a, -1) != -libc::EPERM) * 2
    });
    assert_eq!(code, 0);
    let m = fs::metadata(&file).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o600, 65534));
}

#[test]
fn set_attr_size() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("f");
    fs::write(&file, b"0123456789").unwrap();
    let p = cpath(&file);
    let mut a = iattr(HOSTFS_ATTR_SIZE);
    a.ia_size = 4;
    assert_eq!(set(Some(&p), &mut a, -1), 0);
    assert_eq!(fs::read(&file).unwrap(), b"0123");
    let f = fs::OpenOptions::new().write(true).open(&file).unwrap();
    a.ia_size = 6;
    assert_eq!(set(None, &mut a, f.as_raw_fd()), 0);
    assert_eq!(fs::read(&file).unwrap(), b"0123\0\0");
    a.ia_size = -1;
    assert_eq!(set(Some(&p), &mut a, -1), -libc::EINVAL);
    // A read-only descriptor cannot truncate.
    let ro = File::open(&file).unwrap();
    a.ia_size = 0;
    assert_eq!(set(None, &mut a, ro.as_raw_fd()), -libc::EINVAL);
    assert_eq!(set(Some(&cpath(d.path())), &mut a, -1), -libc::EISDIR);
}

#[test]
fn set_attr_times_in_microseconds() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("f");
    fs::write(&file, b"").unwrap();
    let p = cpath(&file);
    let (a0, m0) = (
        ts(1_000_000_000, 111_222_333),
        ts(1_100_000_000, 444_555_666),
    );
    set_host_times(&file, a0, m0);

    // Only the access time: the modification time is read and set again,
    // truncated to microseconds (the C has no UTIME_OMIT).
    let mut a = iattr(HOSTFS_ATTR_ATIME_SET);
    a.ia_atime = ts(1_200_000_000, 987_654_321);
    a.ia_mtime = ts(5, 5); // not selected: ignored
    assert_eq!(set(Some(&p), &mut a, -1), 0);
    assert_eq!(
        host_times(&file),
        (
            ts(1_200_000_000, 987_654_000),
            ts(1_100_000_000, 444_555_000)
        )
    );
    assert_eq!(
        a.ia_atime,
        ts(1_200_000_000, 987_654_321),
        "not written back"
    );

    // Only the modification time, by descriptor.
    set_host_times(&file, a0, m0);
    let f = File::open(&file).unwrap();
    let mut a = iattr(HOSTFS_ATTR_MTIME_SET);
    a.ia_mtime = ts(1_300_000_000, 999);
    assert_eq!(set(None, &mut a, f.as_raw_fd()), 0);
    assert_eq!(
        host_times(&file),
        (ts(1_000_000_000, 111_222_000), ts(1_300_000_000, 0))
    );

    // Both, before the epoch too.
    let mut a = iattr(HOSTFS_ATTR_ATIME_SET | HOSTFS_ATTR_MTIME_SET);
    a.ia_atime = ts(-86_400, 1_500);
    a.ia_mtime = ts(0, 999_999_999);
    assert_eq!(set(Some(&p), &mut a, -1), 0);
    assert_eq!(host_times(&file), (ts(-86_400, 1_000), ts(0, 999_999_000)));

    // Nanoseconds out of range reach the host, which refuses them.
    let mut a = iattr(HOSTFS_ATTR_MTIME_SET);
    a.ia_mtime = ts(1, 1_000_000_000);
    assert_eq!(set(Some(&p), &mut a, -1), -libc::EINVAL);
    a.ia_mtime = ts(1, -1000);
    assert_eq!(set(Some(&p), &mut a, -1), -libc::EINVAL);
}

#[test]
fn set_attr_atime_mtime_bits_read_the_times_back() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("f");
    fs::write(&file, b"").unwrap();
    let p = cpath(&file);
    let (a0, m0) = (ts(1_000_000_000, 123_456_789), ts(1_100_000_000, 5));
    set_host_times(&file, a0, m0);
    // Without a *_SET bit nothing is written to the host: the C sets no
    // time to "now" (no UTIME_NOW); the host's times come back.
    for valid in [
        HOSTFS_ATTR_ATIME,
        HOSTFS_ATTR_MTIME,
        HOSTFS_ATTR_ATIME | HOSTFS_ATTR_MTIME | HOSTFS_ATTR_CTIME,
    ] {
        let mut a = iattr(valid);
        a.ia_atime = ts(1, 1);
        a.ia_mtime = ts(2, 2);
        assert_eq!(set(Some(&p), &mut a, -1), 0);
        assert_eq!((a.ia_atime, a.ia_mtime), (a0, m0), "valid {valid:#x}");
        assert_eq!(host_times(&file), (a0, m0));
    }
    // With them, what the host kept (microseconds).
    let f = File::open(&file).unwrap();
    let mut a = iattr(HOSTFS_ATTR_ATIME | HOSTFS_ATTR_ATIME_SET | HOSTFS_ATTR_MTIME_SET);
    a.ia_atime = ts(1_300_000_000, 777_777_777);
    a.ia_mtime = ts(1_400_000_000, 1_999);
    assert_eq!(set(None, &mut a, f.as_raw_fd()), 0);
    assert_eq!(
        (a.ia_atime, a.ia_mtime),
        (ts(1_300_000_000, 777_777_000), ts(1_400_000_000, 1_000))
    );
    assert_eq!((a.ia_atime, a.ia_mtime), host_times(&file));
    // The ctime is never written; ctime alone does nothing.
    let before = fs::metadata(&file).unwrap().ctime_nsec();
    let mut a = iattr(HOSTFS_ATTR_CTIME);
    assert_eq!(set(Some(&p), &mut a, -1), 0);
    assert_eq!(fs::metadata(&file).unwrap().ctime_nsec(), before);
    assert_eq!(a, iattr(HOSTFS_ATTR_CTIME));
}

#[test]
fn set_attr_stops_at_the_first_failure() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("d");
    fs::create_dir(&dir).unwrap();
    let p = cpath(&dir);
    let (a0, m0) = (ts(1_000_000_000, 0), ts(1_000_000_000, 0));
    set_host_times(&dir, a0, m0);
    // The mode changes, the size of a directory cannot, and the times are
    // neither set nor read back.
    let mut a =
        iattr(HOSTFS_ATTR_MODE | HOSTFS_ATTR_SIZE | HOSTFS_ATTR_MTIME_SET | HOSTFS_ATTR_MTIME);
    a.ia_mode = 0o700;
    a.ia_size = 0;
    a.ia_mtime = ts(1_500_000_000, 0);
    assert_eq!(set(Some(&p), &mut a, -1), -libc::EISDIR);
    assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
    assert_eq!(host_times(&dir).1, m0);
    assert_eq!(a.ia_mtime, ts(1_500_000_000, 0), "left alone on failure");
}

#[test]
fn set_attr_errors_and_null_arguments() {
    let d = tempfile::tempdir().unwrap();
    let missing = cpath(&d.path().join("missing"));
    for valid in [
        HOSTFS_ATTR_MODE,
        HOSTFS_ATTR_UID,
        HOSTFS_ATTR_GID,
        HOSTFS_ATTR_SIZE,
        HOSTFS_ATTR_ATIME_SET,
        HOSTFS_ATTR_MTIME,
    ] {
        let mut a = iattr(valid);
        a.ia_uid = u32::MAX;
        a.ia_gid = u32::MAX;
        assert_eq!(set(Some(&missing), &mut a, -1), -libc::ENOENT, "{valid:#x}");
        // A NULL path the C would have passed to the host.
        assert_eq!(set(None, &mut a, -1), -libc::EFAULT, "{valid:#x}");
    }
    // Nothing asked: nothing done, even without a file.
    assert_eq!(set(None, &mut iattr(0), -1), 0);
    assert_eq!(set(None, &mut iattr(HOSTFS_ATTR_CTIME), -1), 0);
    assert_eq!(
        set(None, &mut iattr(HOSTFS_ATTR_MODE), BAD_FD),
        -libc::EBADF
    );
    assert_eq!(
        // SAFETY: NULL attrs is refused before use.
        unsafe { SET_ATTR(missing.as_ptr(), core::ptr::null_mut(), -1) },
        -libc::EFAULT
    );
}

// ---------------------------------------------------------------------------
// names: symlink, unlink, mkdir, rmdir, mknod, link, readlink

fn readlink(p: &CStr, size: c_int) -> (c_int, Vec<u8>) {
    let mut buf = vec![0xaau8; size.max(0) as usize + 1];
    // SAFETY: a C string; `buf` holds more than `size` bytes.
    let n = unsafe { HOSTFS_DO_READLINK(mut_ptr(p), buf.as_mut_ptr().cast(), size) };
    (n, buf)
}

#[test]
fn make_symlink_and_readlink() {
    let d = tempfile::tempdir().unwrap();
    let link = cpath(&d.path().join("link"));
    // make_symlink(from, to): `from` is the new link, `to` its target.
    assert_eq!(
        // SAFETY: C strings.
        unsafe { MAKE_SYMLINK(link.as_ptr(), c"some/target".as_ptr()) },
        0
    );
    assert_eq!(
        fs::read_link(d.path().join("link")).unwrap(),
        Path::new("some/target")
    );
    assert_eq!(
        // SAFETY: C strings.
        unsafe { MAKE_SYMLINK(link.as_ptr(), c"other".as_ptr()) },
        -libc::EEXIST
    );
    // The target, NUL-terminated when there is room...
    let (n, buf) = readlink(&link, 4096);
    assert_eq!(n, 11);
    assert_eq!(&buf[..12], b"some/target\0");
    let (n, buf) = readlink(&link, 12);
    assert_eq!((n, &buf[..13]), (11, &b"some/target\0\xaa"[..]));
    // ...and cut, without a terminator, when there is not.
    let (n, buf) = readlink(&link, 11);
    assert_eq!((n, &buf[..12]), (11, &b"some/target\xaa"[..]));
    let (n, buf) = readlink(&link, 4);
    assert_eq!((n, &buf[..5]), (4, &b"some\xaa"[..]));
    // Errors.
    assert_eq!(readlink(&link, 0).0, -libc::EINVAL);
    assert_eq!(readlink(&link, -1).0, -libc::EINVAL);
    assert_eq!(
        readlink(&cpath(d.path()), 100).0,
        -libc::EINVAL,
        "not a link"
    );
    assert_eq!(
        readlink(&cpath(&d.path().join("missing")), 100).0,
        -libc::ENOENT
    );
    // SAFETY: NULL arguments are refused before use.
    unsafe {
        assert_eq!(
            HOSTFS_DO_READLINK(mut_ptr(&link), core::ptr::null_mut(), 10),
            -libc::EFAULT
        );
        let mut b = [0 as c_char; 4];
        assert_eq!(
            HOSTFS_DO_READLINK(core::ptr::null_mut(), b.as_mut_ptr(), 4),
            -libc::EFAULT
        );
        assert_eq!(
            MAKE_SYMLINK(core::ptr::null(), c"x".as_ptr()),
            -libc::EFAULT
        );
        assert_eq!(
            MAKE_SYMLINK(link.as_ptr(), core::ptr::null()),
            -libc::EFAULT
        );
    }
}

#[test]
fn a_symlink_loop() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let (ca, cb) = (cpath(&a), cpath(&b));
    // SAFETY: C strings.
    unsafe {
        assert_eq!(MAKE_SYMLINK(ca.as_ptr(), cb.as_ptr()), 0);
        assert_eq!(MAKE_SYMLINK(cb.as_ptr(), ca.as_ptr()), 0);
    }
    // What does not follow the link works on the link itself.
    let st = stat_ok(&ca);
    assert_eq!(st.mode & libc::S_IFMT, libc::S_IFLNK);
    assert_eq!(st, expected_stat(&a));
    let (n, buf) = readlink(&ca, 4096);
    assert_eq!(&buf[..n as usize], cb.to_bytes());
    // What follows it fails with ELOOP.
    assert_eq!(open(&ca, 1, 0, 0), -libc::ELOOP);
    assert_eq!(access(&ca, 0, 0, 0), -libc::ELOOP);
    let (dir, err) = opendir(&ca);
    assert!(dir.is_null());
    assert_eq!(err, libc::ELOOP);
    let mut attrs = iattr(HOSTFS_ATTR_MODE);
    attrs.ia_mode = 0o600;
    assert_eq!(set(Some(&ca), &mut attrs, -1), -libc::ELOOP);
    let mut attrs = iattr(HOSTFS_ATTR_SIZE);
    assert_eq!(set(Some(&ca), &mut attrs, -1), -libc::ELOOP);
    // Times: the stat of the link works, utimes through it does not.
    let mut attrs = iattr(HOSTFS_ATTR_MTIME_SET);
    attrs.ia_mtime = ts(1, 0);
    assert_eq!(set(Some(&ca), &mut attrs, -1), -libc::ELOOP);
    // SAFETY: a C string.
    assert_eq!(unsafe { FILE_CREATE(mut_ptr(&ca), 0o644) }, -libc::ELOOP);
    // The links themselves can be linked, renamed and removed.
    let c = cpath(&d.path().join("c"));
    // SAFETY: C strings.
    unsafe {
        assert_eq!(LINK_FILE(ca.as_ptr(), c.as_ptr()), 0);
        assert_eq!(stat_ok(&c).ino, st.ino);
        assert_eq!(
            RENAME_FILE(mut_ptr(&c), mut_ptr(&cpath(&d.path().join("e")))),
            0
        );
        assert_eq!(UNLINK_FILE(ca.as_ptr()), 0);
        assert_eq!(UNLINK_FILE(cb.as_ptr()), 0);
    }
}

#[test]
fn unlink_mkdir_rmdir() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("dir");
    let cd = cpath(&dir);
    // SAFETY: C strings.
    unsafe {
        assert_eq!(DO_MKDIR(cd.as_ptr(), 0o751), 0);
        assert_eq!(
            fs::metadata(&dir).unwrap().mode() & 0o7777,
            0o751 & !umask()
        );
        assert_eq!(DO_MKDIR(cd.as_ptr(), 0o751), -libc::EEXIST);
        let inner = cpath(&dir.join("f"));
        fs::write(dir.join("f"), b"").unwrap();
        assert_eq!(HOSTFS_DO_RMDIR(cd.as_ptr()), -libc::ENOTEMPTY);
        assert_eq!(UNLINK_FILE(cd.as_ptr()), -libc::EISDIR);
        assert_eq!(HOSTFS_DO_RMDIR(inner.as_ptr()), -libc::ENOTDIR);
        assert_eq!(UNLINK_FILE(inner.as_ptr()), 0);
        assert!(!dir.join("f").exists());
        assert_eq!(UNLINK_FILE(inner.as_ptr()), -libc::ENOENT);
        assert_eq!(HOSTFS_DO_RMDIR(cd.as_ptr()), 0);
        assert!(!dir.exists());
        assert_eq!(HOSTFS_DO_RMDIR(cd.as_ptr()), -libc::ENOENT);
        let deep = cpath(&d.path().join("a/b"));
        assert_eq!(DO_MKDIR(deep.as_ptr(), 0o755), -libc::ENOENT);
        assert_eq!(DO_MKDIR(core::ptr::null(), 0o755), -libc::EFAULT);
        assert_eq!(HOSTFS_DO_RMDIR(core::ptr::null()), -libc::EFAULT);
        assert_eq!(UNLINK_FILE(core::ptr::null()), -libc::EFAULT);
    }
}

#[test]
fn do_mknod_makes_special_files() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("fifo");
    let cf = cpath(&fifo);
    // SAFETY: C strings.
    unsafe {
        assert_eq!(
            DO_MKNOD(cf.as_ptr(), (libc::S_IFIFO | 0o640) as c_int, 0, 0),
            0
        );
        assert_eq!(
            DO_MKNOD(cf.as_ptr(), (libc::S_IFIFO | 0o640) as c_int, 0, 0),
            -libc::EEXIST
        );
        assert_eq!(DO_MKNOD(core::ptr::null(), 0, 0, 0), -libc::EFAULT);
    }
    let m = fs::symlink_metadata(&fifo).unwrap();
    assert!(m.file_type().is_fifo());
    assert_eq!(m.mode() & 0o777, 0o640 & !umask());
    if !is_root() {
        return; // device nodes need CAP_MKNOD
    }
    // A device number beyond the old 8-bit encodings, as os_makedev packs it.
    let dev = d.path().join("dev");
    let cdev = cpath(&dev);
    // SAFETY: a C string.
    let r = unsafe { DO_MKNOD(cdev.as_ptr(), (libc::S_IFCHR | 0o600) as c_int, 300, 70000) };
    if r == -libc::EPERM {
        return; // a container without CAP_MKNOD
    }
    assert_eq!(r, 0);
    let m = fs::symlink_metadata(&dev).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!((libc::major(m.rdev()), libc::minor(m.rdev())), (300, 70000));
    let st = stat_ok(&cdev);
    assert_eq!((st.rdev.maj, st.rdev.min), (300, 70000));
    assert_eq!(st, expected_stat(&dev));
}

#[test]
fn link_file_makes_a_hard_link() {
    let d = tempfile::tempdir().unwrap();
    let old = d.path().join("old");
    fs::write(&old, b"shared").unwrap();
    let (co, cn) = (cpath(&old), cpath(&d.path().join("new")));
    // link_file(to, from): `from` becomes a new name of `to`.
    // SAFETY: C strings.
    assert_eq!(unsafe { LINK_FILE(co.as_ptr(), cn.as_ptr()) }, 0);
    let (a, b) = (stat_ok(&co), stat_ok(&cn));
    assert_eq!((a.ino, a.nlink, b.nlink), (b.ino, 2, 2));
    // SAFETY: C strings (or NULL, refused before use).
    unsafe {
        assert_eq!(LINK_FILE(co.as_ptr(), cn.as_ptr()), -libc::EEXIST);
        assert_eq!(
            LINK_FILE(
                cpath(&d.path().join("missing")).as_ptr(),
                c"/tmp/x".as_ptr()
            ),
            -libc::ENOENT
        );
        assert_eq!(
            LINK_FILE(
                cpath(d.path()).as_ptr(),
                cpath(&d.path().join("dl")).as_ptr()
            ),
            -libc::EPERM,
            "no hard links to directories"
        );
        assert_eq!(LINK_FILE(core::ptr::null(), cn.as_ptr()), -libc::EFAULT);
    }
}

// ---------------------------------------------------------------------------
// rename_file, rename2_file

fn rename2(from: &CStr, to: &CStr, flags: c_uint) -> c_int {
    // SAFETY: C strings.
    unsafe { RENAME2_FILE(mut_ptr(from), mut_ptr(to), flags) }
}

#[test]
fn rename_file_moves_and_replaces() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    fs::write(&a, b"A").unwrap();
    fs::write(&b, b"B").unwrap();
    let (ca, cb) = (cpath(&a), cpath(&b));
    // SAFETY: C strings.
    unsafe {
        assert_eq!(RENAME_FILE(mut_ptr(&ca), mut_ptr(&cb)), 0);
        assert!(!a.exists());
        assert_eq!(fs::read(&b).unwrap(), b"A");
        assert_eq!(RENAME_FILE(mut_ptr(&ca), mut_ptr(&cb)), -libc::ENOENT);
        fs::create_dir(&a).unwrap();
        assert_eq!(RENAME_FILE(mut_ptr(&cb), mut_ptr(&ca)), -libc::EISDIR);
        assert_eq!(
            RENAME_FILE(core::ptr::null_mut(), mut_ptr(&ca)),
            -libc::EFAULT
        );
        assert_eq!(
            RENAME_FILE(mut_ptr(&ca), core::ptr::null_mut()),
            -libc::EFAULT
        );
    }
}

#[test]
fn rename2_file_noreplace() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
    fs::write(&a, b"A").unwrap();
    fs::write(&b, b"B").unwrap();
    let (ca, cb, cc) = (cpath(&a), cpath(&b), cpath(&c));
    let noreplace = libc::RENAME_NOREPLACE;
    assert_eq!(rename2(&ca, &cb, noreplace), -libc::EEXIST);
    assert_eq!(fs::read(&a).unwrap(), b"A", "both kept");
    assert_eq!(fs::read(&b).unwrap(), b"B");
    assert_eq!(rename2(&ca, &cc, noreplace), 0);
    assert!(!a.exists());
    assert_eq!(fs::read(&c).unwrap(), b"A");
    assert_eq!(rename2(&ca, &cc, noreplace), -libc::ENOENT);
}

#[test]
fn rename2_file_exchange() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    fs::write(&a, b"A").unwrap();
    fs::create_dir(&b).unwrap();
    fs::write(b.join("inside"), b"").unwrap();
    let (ino_a, ino_b) = (
        fs::metadata(&a).unwrap().ino(),
        fs::metadata(&b).unwrap().ino(),
    );
    let (ca, cb) = (cpath(&a), cpath(&b));
    // A file and a directory trade places.
    assert_eq!(rename2(&ca, &cb, libc::RENAME_EXCHANGE), 0);
    assert_eq!(fs::read(&b).unwrap(), b"A");
    assert!(a.join("inside").exists());
    assert_eq!(fs::metadata(&a).unwrap().ino(), ino_b);
    assert_eq!(fs::metadata(&b).unwrap().ino(), ino_a);
    // Both must exist.
    let missing = cpath(&d.path().join("missing"));
    assert_eq!(rename2(&ca, &missing, libc::RENAME_EXCHANGE), -libc::ENOENT);
    // The two flags together, and unknown flags, are the host's EINVAL.
    assert_eq!(
        rename2(&ca, &cb, libc::RENAME_EXCHANGE | libc::RENAME_NOREPLACE),
        -libc::EINVAL
    );
    assert_eq!(rename2(&ca, &cb, 1 << 20), -libc::EINVAL);
    // No flags: a plain rename (replacing).
    fs::remove_dir_all(&a).unwrap();
    fs::write(&a, b"new").unwrap();
    assert_eq!(rename2(&ca, &cb, 0), 0);
    assert_eq!(fs::read(&b).unwrap(), b"new");
    assert_eq!(
        // SAFETY: NULL is refused before use.
        unsafe { RENAME2_FILE(core::ptr::null_mut(), mut_ptr(&cb), 0) },
        -libc::EFAULT
    );
}

#[test]
fn rename2_file_without_renameat2_is_einval() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a");
    fs::write(&a, b"").unwrap();
    let (ca, cb) = (cpath(&a), cpath(&d.path().join("b")));
    let filter = errno_filter(&[(libc::SYS_renameat2, libc::ENOSYS)]);
    let code = in_child(|| {
        if seccompiler::apply_filter(&filter).is_err() {
            return 1;
        }
        i32::from(rename2(&ca, &cb, libc::RENAME_NOREPLACE) != -libc::EINVAL) * 2
    });
    assert_eq!(code, 0);
    assert!(a.exists());
}

// ---------------------------------------------------------------------------
// do_statfs

#[derive(Debug, Default, PartialEq)]
struct Statfs {
    bsize: c_long,
    blocks: c_longlong,
    bfree: c_longlong,
    bavail: c_longlong,
    files: c_longlong,
    ffree: c_longlong,
    fsid: [u8; 8],
    namelen: c_long,
}

fn statfs(root: &CStr, fsid_size: c_int) -> (c_int, Statfs) {
    let mut s = Statfs {
        fsid: [0xaa; 8],
        ..Default::default()
    };
    // SAFETY: a C string and live outputs; `fsid` holds 8 bytes.
    let r = unsafe {
        DO_STATFS(
            mut_ptr(root),
            &mut s.bsize,
            &mut s.blocks,
            &mut s.bfree,
            &mut s.bavail,
            &mut s.files,
            &mut s.ffree,
            s.fsid.as_mut_ptr().cast(),
            fsid_size.min(8),
            &mut s.namelen,
        )
    };
    (r, s)
}

#[test]
fn do_statfs_reports_what_the_host_says() {
    let d = tempfile::tempdir().unwrap();
    for path in [
        d.path(),
        Path::new("/"),
        Path::new("/proc"),
        Path::new("/dev/shm"),
    ] {
        if !path.exists() {
            continue;
        }
        let (r, s) = statfs(&cpath(path), 8);
        assert_eq!(r, 0);
        let host = nix::sys::statfs::statfs(path).unwrap();
        assert_eq!(s.bsize, host.block_size() as c_long, "{path:?}");
        assert_eq!(s.blocks, host.blocks() as c_longlong);
        assert_eq!(s.files, host.files() as c_longlong);
        assert_eq!(s.namelen, host.maximum_name_length() as c_long);
        // SAFETY: fsid_t is 8 bytes of plain data.
        let fsid: [u8; 8] = unsafe { core::mem::transmute(host.filesystem_id()) };
        assert_eq!(s.fsid, fsid);
        // The free counts may move with other tests writing meanwhile.
        let near = |a: c_longlong, b: u64| (a - b as c_longlong).abs() <= 1 << 16;
        assert!(near(s.bfree, host.blocks_free()), "{path:?}");
        assert!(near(s.bavail, host.blocks_available()));
        assert!(near(s.ffree, host.files_free()));
        assert!(s.bavail <= s.bfree && s.bfree <= s.blocks);
    }
}

#[test]
fn do_statfs_copies_at_most_fsid_size_bytes() {
    let (r, full) = statfs(c"/", 8);
    assert_eq!(r, 0);
    let (r, s) = statfs(c"/", 3);
    assert_eq!(r, 0);
    assert_eq!(s.fsid[..3], full.fsid[..3]);
    assert_eq!(s.fsid[3..], [0xaa; 5]);
    let (r, s) = statfs(c"/", 0);
    assert_eq!((r, s.fsid), (0, [0xaa; 8]));
    // A NULL fsid buffer of no bytes is fine; a negative size is not.
    let mut v = [0 as c_longlong; 5];
    let (mut bsize, mut namelen) = (0, 0);
    // SAFETY: live outputs; no fsid bytes are written.
    let r = unsafe {
        DO_STATFS(
            mut_ptr(c"/"),
            &mut bsize,
            &mut v[0],
            &mut v[1],
            &mut v[2],
            &mut v[3],
            &mut v[4],
            core::ptr::null_mut(),
            0,
            &mut namelen,
        )
    };
    assert_eq!((r, bsize, namelen), (0, full.bsize, full.namelen));
    // SAFETY: as above; refused before anything is written.
    let r = unsafe {
        DO_STATFS(
            mut_ptr(c"/"),
            &mut bsize,
            &mut v[0],
            &mut v[1],
            &mut v[2],
            &mut v[3],
            &mut v[4],
            core::ptr::null_mut(),
            -1,
            &mut namelen,
        )
    };
    assert_eq!(r, -libc::EINVAL);
    // SAFETY: as above; the NULL output is refused before use.
    let r = unsafe {
        DO_STATFS(
            mut_ptr(c"/"),
            core::ptr::null_mut(),
            &mut v[0],
            &mut v[1],
            &mut v[2],
            &mut v[3],
            &mut v[4],
            core::ptr::null_mut(),
            0,
            &mut namelen,
        )
    };
    assert_eq!(r, -libc::EFAULT);
}

#[test]
fn do_statfs_errors_leave_the_outputs_alone() {
    let d = tempfile::tempdir().unwrap();
    let (r, s) = statfs(&cpath(&d.path().join("missing")), 8);
    assert_eq!(r, -libc::ENOENT);
    assert_eq!(
        s,
        Statfs {
            fsid: [0xaa; 8],
            ..Default::default()
        }
    );
    let file = d.path().join("f");
    fs::write(&file, b"").unwrap();
    assert_eq!(statfs(&cpath(&file.join("x")), 8).0, -libc::ENOTDIR);
    assert_eq!(statfs(c"", 8).0, -libc::ENOENT);
}

// ---------------------------------------------------------------------------
// EINTR

#[test]
fn nothing_is_retried_on_eintr() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("f");
    fs::write(&file, b"data").unwrap();
    std::os::unix::fs::symlink("f", d.path().join("l")).unwrap();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&file)
        .unwrap();
    let fd = f.as_raw_fd();
    let (p, l, dir) = (cpath(&file), cpath(&d.path().join("l")), cpath(d.path()));
    let (n1, n2) = (cpath(&d.path().join("n1")), cpath(&d.path().join("n2")));
    use libc::{EINTR, RENAME_NOREPLACE, S_IFIFO, SEEK_SET};
    // Every system call the functions make (and their *at variants).
    let calls: Vec<(i64, c_int)> = [
        libc::SYS_statx,
        libc::SYS_access,
        libc::SYS_faccessat,
        libc::SYS_faccessat2,
        libc::SYS_open,
        libc::SYS_openat,
        libc::SYS_pread64,
        libc::SYS_pwrite64,
        libc::SYS_lseek,
        libc::SYS_fsync,
        libc::SYS_fdatasync,
        libc::SYS_dup2,
        libc::SYS_dup3,
        libc::SYS_chmod,
        libc::SYS_fchmod,
        libc::SYS_fchmodat,
        libc::SYS_chown,
        libc::SYS_fchown,
        libc::SYS_fchownat,
        libc::SYS_lchown,
        libc::SYS_truncate,
        libc::SYS_ftruncate,
        libc::SYS_utimes,
        libc::SYS_utimensat,
        libc::SYS_symlink,
        libc::SYS_symlinkat,
        libc::SYS_unlink,
        libc::SYS_unlinkat,
        libc::SYS_mkdir,
        libc::SYS_mkdirat,
        libc::SYS_rmdir,
        libc::SYS_mknod,
        libc::SYS_mknodat,
        libc::SYS_link,
        libc::SYS_linkat,
        libc::SYS_readlink,
        libc::SYS_readlinkat,
        libc::SYS_rename,
        libc::SYS_renameat,
        libc::SYS_renameat2,
        libc::SYS_statfs,
    ]
    .into_iter()
    .map(|nr| (nr, EINTR))
    .collect();
    let filter = errno_filter(&calls);
    let code = in_child(|| {
        // A retry would loop until the alarm kills the child.
        // SAFETY: alarm has no memory arguments.
        unsafe { libc::alarm(20) };
        if seccompiler::apply_filter(&filter).is_err() {
            return 1;
        }
        let mut off = 0;
        let mut buf = [0u8; 4];
        let attrs = |valid| {
            let mut a = iattr(valid);
            a.ia_mode = 0o600;
            a.ia_mtime = ts(1, 0);
            set(Some(&p), &mut a, -1)
        };
        let (mut err, mut bsize, mut ll, mut fsid) = (0, 0, 0, [0u8; 8]);
        // SAFETY: C strings and live buffers throughout.
        let results = unsafe {
            [
                stat(Some(&p), -1).0,
                stat(None, fd).0,
                access(&p, 1, 0, 0),
                open(&p, 1, 0, 0),
                FILE_CREATE(mut_ptr(&n1), 0o644),
                READ_FILE(fd, &mut off, buf.as_mut_ptr().cast(), 4),
                WRITE_FILE(fd, &mut off, buf.as_ptr().cast(), 4),
                LSEEK_FILE(fd, 0, SEEK_SET),
                FSYNC_FILE(fd, 0),
                FSYNC_FILE(fd, 1),
                attrs(HOSTFS_ATTR_MODE),
                attrs(HOSTFS_ATTR_UID),
                attrs(HOSTFS_ATTR_GID),
                attrs(HOSTFS_ATTR_SIZE),
                attrs(HOSTFS_ATTR_MTIME_SET),
                attrs(HOSTFS_ATTR_MTIME),
                MAKE_SYMLINK(n1.as_ptr(), p.as_ptr()),
                UNLINK_FILE(p.as_ptr()),
                DO_MKDIR(n1.as_ptr(), 0o755),
                HOSTFS_DO_RMDIR(dir.as_ptr()),
                DO_MKNOD(n1.as_ptr(), (S_IFIFO | 0o600) as c_int, 0, 0),
                LINK_FILE(p.as_ptr(), n2.as_ptr()),
                HOSTFS_DO_READLINK(mut_ptr(&l), buf.as_mut_ptr().cast(), 4),
                RENAME_FILE(mut_ptr(&p), mut_ptr(&n2)),
                RENAME2_FILE(mut_ptr(&p), mut_ptr(&n2), RENAME_NOREPLACE),
                DO_STATFS(
                    mut_ptr(&dir),
                    &raw mut bsize,
                    &raw mut ll,
                    &raw mut ll,
                    &raw mut ll,
                    &raw mut ll,
                    &raw mut ll,
                    fsid.as_mut_ptr().cast(),
                    8,
                    &raw mut bsize,
                ),
            ]
        };
        if results.iter().any(|&r| r != -EINTR) {
            return 10 + results.iter().position(|&r| r != -EINTR).unwrap() as i32;
        }
        // replace_file: -1 and errno; open_dir: NULL and the errno.
        if REPLACE_FILE(fd, fd + 100) != -1 || Errno::last() != Errno::EINTR {
            return 2;
        }
        // SAFETY: a C string and a live int.
        if !unsafe { OPEN_DIR(mut_ptr(&dir), &mut err) }.is_null() || err != EINTR {
            return 3;
        }
        0
    });
    assert_eq!(
        code, 0,
        "child {code}: 10 + index of the call that did not fail with EINTR"
    );
    assert_eq!(fs::read(&file).unwrap(), b"data");
}

// ---------------------------------------------------------------------------
// Below a hostfs= prefix (hostfs_set_prefix). The prefix is global, so
// every test that sets it does so in a forked child: the other tests, run
// in parallel in this process, keep resolving as without a prefix. The
// confinement itself is tested in depth on the core
// (host/hostfs/beneath/tests.rs); these check that every function goes
// through it and keeps its C return convention.

/// `a` and `b` joined with a `/` as text.
fn cat(a: &Path, b: &str) -> CString {
    let mut v = a.as_os_str().as_bytes().to_vec();
    v.push(b'/');
    v.extend_from_slice(b.as_bytes());
    CString::new(v).unwrap()
}

/// `T/secret`, `T/out` and `T/R/d` holding `f`, `l` -> `f`, `sub/`,
/// `empty/`; `T/R/file`; `T/R/s` -> `../out`, a directory swapped for a
/// link out of the prefix `T/R`, and `T/R/lf` -> `d/f`, a final link.
fn prefix_tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let top = t.path();
    fs::write(top.join("secret"), "SECRET").unwrap();
    for d in [top.join("out"), top.join("R/d")] {
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("f"), "data").unwrap();
        std::os::unix::fs::symlink("f", d.join("l")).unwrap();
        fs::create_dir(d.join("sub")).unwrap();
        fs::create_dir(d.join("empty")).unwrap();
    }
    fs::write(top.join("R/file"), "file").unwrap();
    std::os::unix::fs::symlink("../out", top.join("R/s")).unwrap();
    std::os::unix::fs::symlink("d/f", top.join("R/lf")).unwrap();
    t
}

/// A descriptor result as 0, closing it; a negative errno as it is.
fn fd_result(fd: c_int) -> c_int {
    if fd >= 0 {
        drop(own(fd));
        0
    } else {
        fd
    }
}

/// `file_create(p, 0644)`, the descriptor closed: 0 or the negative errno.
fn create(p: &CStr) -> c_int {
    // SAFETY: a C string.
    fd_result(unsafe { FILE_CREATE(mut_ptr(p), 0o644) })
}

/// `set_attr` by path with one attribute bit and a plausible value.
fn set_one(p: &CStr, valid: c_uint) -> c_int {
    let mut a = iattr(valid);
    a.ia_mode = 0o600;
    a.ia_uid = nix::unistd::geteuid().as_raw();
    a.ia_gid = nix::unistd::getegid().as_raw();
    a.ia_size = 1;
    a.ia_mtime = ts(1, 0);
    set(Some(p), &mut a, -1)
}

/// One call of each path function on the names below `b` (the other path
/// of the two-path ones in `r`), as 0 on success (a descriptor closed, a
/// length dropped) or the negative errno.
type AbiCall = fn(&Path, &Path) -> c_int;

fn abi_calls() -> Vec<(&'static str, AbiCall)> {
    vec![
        ("stat_file", |b, _| stat(Some(&cat(b, "f")), -1).0),
        ("access_file", |b, _| access(&cat(b, "f"), 1, 0, 0)),
        ("open_file", |b, _| fd_result(open(&cat(b, "f"), 1, 1, 0))),
        ("file_create", |b, _| create(&cat(b, "new"))),
        ("open_dir", |b, _| {
            let (dir, err) = opendir(&cat(b, "sub"));
            if dir.is_null() {
                return -err;
            }
            // SAFETY: a stream open_dir returned.
            unsafe { CLOSE_DIR(dir) };
            0
        }),
        ("set_attr mode", |b, _| {
            set_one(&cat(b, "f"), HOSTFS_ATTR_MODE)
        }),
        ("set_attr uid", |b, _| {
            set_one(&cat(b, "f"), HOSTFS_ATTR_UID)
        }),
        ("set_attr gid", |b, _| {
            set_one(&cat(b, "f"), HOSTFS_ATTR_GID)
        }),
        ("set_attr size", |b, _| {
            set_one(&cat(b, "f"), HOSTFS_ATTR_SIZE)
        }),
        ("set_attr mtime", |b, _| {
            set_one(&cat(b, "f"), HOSTFS_ATTR_MTIME_SET | HOSTFS_ATTR_MTIME)
        }),
        ("make_symlink", |b, _| {
            // SAFETY: C strings.
            unsafe { MAKE_SYMLINK(cat(b, "newlink").as_ptr(), c"f".as_ptr()) }
        }),
        ("unlink_file", |b, _| {
            // SAFETY: a C string.
            unsafe { UNLINK_FILE(cat(b, "f").as_ptr()) }
        }),
        ("do_mkdir", |b, _| {
            // SAFETY: a C string.
            unsafe { DO_MKDIR(cat(b, "newdir").as_ptr(), 0o755) }
        }),
        ("hostfs_do_rmdir", |b, _| {
            // SAFETY: a C string.
            unsafe { HOSTFS_DO_RMDIR(cat(b, "empty").as_ptr()) }
        }),
        ("do_mknod", |b, _| {
            // SAFETY: a C string.
            unsafe {
                DO_MKNOD(
                    cat(b, "fifo").as_ptr(),
                    (libc::S_IFIFO | 0o600) as c_int,
                    0,
                    0,
                )
            }
        }),
        ("link_file, old", |b, r| {
            // SAFETY: C strings.
            unsafe { LINK_FILE(cat(b, "f").as_ptr(), cat(r, "linked").as_ptr()) }
        }),
        ("link_file, new", |b, r| {
            // SAFETY: C strings.
            unsafe { LINK_FILE(cat(r, "file").as_ptr(), cat(b, "newhard").as_ptr()) }
        }),
        ("hostfs_do_readlink", |b, _| {
            readlink(&cat(b, "l"), 16).0.min(0)
        }),
        ("rename_file, from", |b, r| {
            // SAFETY: C strings.
            unsafe { RENAME_FILE(mut_ptr(&cat(b, "f")), mut_ptr(&cat(r, "moved"))) }
        }),
        ("rename_file, to", |b, r| {
            // SAFETY: C strings.
            unsafe { RENAME_FILE(mut_ptr(&cat(r, "file")), mut_ptr(&cat(b, "f"))) }
        }),
        ("rename2_file", |b, r| {
            rename2(&cat(r, "file"), &cat(b, "f"), libc::RENAME_EXCHANGE)
        }),
        ("do_statfs", |b, _| statfs(&cat(b, "f"), 8).0),
    ]
}

/// Runs `checks` (each a name, a result and the result wanted, or `None`
/// for "any success") in a forked child after `hostfs_set_prefix(prefix)`;
/// the child writes each mismatch to stderr and exits with their count.
fn with_prefix(prefix: &CStr, checks: impl FnOnce() -> Vec<(String, c_int, Option<c_int>)>) {
    let code = in_child(|| {
        // SAFETY: a C string; this child's only thread, before any hostfs
        // call in it.
        unsafe { HOSTFS_SET_PREFIX(prefix.as_ptr()) };
        let mut bad = 0;
        for (name, got, want) in checks() {
            let ok = match want {
                Some(w) => got == w,
                None => got >= 0,
            };
            if !ok {
                bad += 1;
                let msg = format!("{name}: got {got}, expected {want:?}\n");
                crate::kernel::write_stderr(msg.as_bytes());
            }
        }
        bad
    });
    assert_eq!(code, 0, "{code} calls went wrong (listed on stderr)");
}

#[test]
fn without_a_prefix_the_host_resolves_whole_paths() {
    // As the C: the host follows a link that replaced a directory.
    assert!(prefix().is_none());
    let t = prefix_tree();
    let r = t.path().join("R");
    let (rc, st) = stat(Some(&cat(&r, "s/f")), -1);
    assert_eq!(rc, 0);
    assert_eq!(st.ino, fs::metadata(t.path().join("out/f")).unwrap().ino());
    assert_eq!(fd_result(open(&cat(&r, "lf"), 1, 0, 0)), 0);
    assert_eq!(access(&cat(&r, "../secret"), 1, 0, 0), 0);
}

#[test]
fn below_a_prefix_every_path_function_is_confined() {
    for (name, call) in abi_calls() {
        let t = prefix_tree();
        let top = t.path().to_path_buf();
        let r = top.join("R");
        let before = fs::read_dir(top.join("out")).unwrap().count();
        with_prefix(&cpath(&r), || {
            // In order: a link in the middle, `..`, outside, then the real
            // thing (which may change the tree).
            vec![
                (
                    format!("{name} through a swapped link"),
                    call(&r.join("s"), &r),
                    Some(-libc::ELOOP),
                ),
                (
                    format!("{name} with .."),
                    call(&r.join("d/../../out"), &r),
                    Some(-libc::EACCES),
                ),
                (
                    format!("{name} outside"),
                    call(&top.join("out"), &r),
                    Some(-libc::EACCES),
                ),
                (
                    format!("{name} below the prefix"),
                    call(&r.join("d"), &r),
                    None,
                ),
            ]
        });
        assert_eq!(
            fs::read_dir(top.join("out")).unwrap().count(),
            before,
            "{name}"
        );
        assert_eq!(fs::read(top.join("out/f")).unwrap(), b"data", "{name}");
    }
}

#[test]
fn below_a_prefix_a_final_link_is_refused_or_the_link_itself() {
    let t = prefix_tree();
    let r = t.path().join("R");
    let lf = cat(&r, "lf");
    let target = fs::metadata(r.join("d/f")).unwrap();
    with_prefix(&cpath(&r), || {
        let (rc, st) = stat(Some(&lf), -1);
        let (n, buf) = readlink(&lf, 16);
        let (dir, err) = opendir(&cat(&r, "lf"));
        assert!(dir.is_null());
        vec![
            ("stat_file".into(), rc, Some(0)),
            (
                "stat_file is lstat".into(),
                (st.mode & libc::S_IFMT == libc::S_IFLNK) as c_int,
                Some(1),
            ),
            ("hostfs_do_readlink".into(), n, Some(3)),
            (
                "hostfs_do_readlink text".into(),
                (&buf[..4] == b"d/f\0") as c_int,
                Some(1),
            ),
            (
                "access_file".into(),
                access(&lf, 0, 0, 0),
                Some(-libc::ELOOP),
            ),
            (
                "open_file".into(),
                fd_result(open(&lf, 1, 0, 0)),
                Some(-libc::ELOOP),
            ),
            ("file_create".into(), create(&lf), Some(-libc::ELOOP)),
            ("open_dir".into(), -err, Some(-libc::ELOOP)),
            ("do_statfs".into(), statfs(&lf, 8).0, Some(-libc::ELOOP)),
            (
                "set_attr mode".into(),
                set_one(&lf, HOSTFS_ATTR_MODE),
                Some(-libc::ELOOP),
            ),
            (
                "set_attr size".into(),
                set_one(&lf, HOSTFS_ATTR_SIZE),
                Some(-libc::ELOOP),
            ),
            // The link's own owner and times, not its target's.
            (
                "set_attr uid".into(),
                set_one(&lf, HOSTFS_ATTR_UID),
                Some(0),
            ),
            (
                "set_attr mtime".into(),
                set_one(&lf, HOSTFS_ATTR_MTIME_SET),
                Some(0),
            ),
        ]
    });
    let now = fs::metadata(r.join("d/f")).unwrap();
    assert_eq!(
        (now.mode(), now.size(), now.mtime(), now.mtime_nsec()),
        (
            target.mode(),
            target.size(),
            target.mtime(),
            target.mtime_nsec()
        )
    );
    assert_eq!(fs::symlink_metadata(r.join("lf")).unwrap().mtime(), 1);
}

#[test]
fn below_a_prefix_descriptors_are_used_as_they_are() {
    let t = prefix_tree();
    let r = t.path().join("R");
    // A descriptor outside the prefix: nothing resolves a path.
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(t.path().join("secret"))
        .unwrap();
    let fd = f.as_raw_fd();
    let ino = fs::metadata(t.path().join("secret")).unwrap().ino();
    with_prefix(&cpath(&r), || {
        let (rc, st) = stat(None, fd);
        let mut a = iattr(HOSTFS_ATTR_MODE);
        a.ia_mode = 0o640;
        let mut off = 0;
        let mut buf = [0u8; 6];
        // SAFETY: a live offset and buffer.
        let n = unsafe { READ_FILE(fd, &mut off, buf.as_mut_ptr().cast(), 6) };
        vec![
            ("stat_file by descriptor".into(), rc, Some(0)),
            ("its inode".into(), (st.ino == ino) as c_int, Some(1)),
            (
                "set_attr by descriptor".into(),
                set(None, &mut a, fd),
                Some(0),
            ),
            (
                "set_attr without path".into(),
                set(None, &mut iattr(HOSTFS_ATTR_MODE), -1),
                Some(-libc::EFAULT),
            ),
            (
                "set_attr of nothing".into(),
                set(None, &mut iattr(0), -1),
                Some(0),
            ),
            (
                "stat_file without path".into(),
                stat(None, -1).0,
                Some(-libc::EFAULT),
            ),
            ("read_file".into(), n, Some(6)),
        ]
    });
    assert_eq!(
        fs::metadata(t.path().join("secret")).unwrap().mode() & 0o777,
        0o640
    );
}

#[test]
fn a_prefix_too_long_fails_every_path_function_until_replaced() {
    let t = prefix_tree();
    let r = t.path().join("R");
    let long = CString::new(vec![b'x'; libc::PATH_MAX as usize]).unwrap();
    let rp = cpath(&r);
    with_prefix(&long, || {
        let mut v: Vec<_> = abi_calls()
            .into_iter()
            .map(|(name, call)| {
                (
                    name.to_string(),
                    call(&r.join("d"), &r),
                    Some(-libc::ENAMETOOLONG),
                )
            })
            .collect();
        // Another hostfs= option replaces it; an empty one (or NULL) is
        // no prefix: whole paths again.
        // SAFETY: C strings; this child's only thread.
        unsafe { HOSTFS_SET_PREFIX(rp.as_ptr()) };
        v.push((
            "a prefix again".into(),
            stat(Some(&cat(&r, "d/f")), -1).0,
            Some(0),
        ));
        v.push((
            "a prefix again, link".into(),
            stat(Some(&cat(&r, "s/f")), -1).0,
            Some(-libc::ELOOP),
        ));
        // SAFETY: as above.
        unsafe { HOSTFS_SET_PREFIX(c"".as_ptr()) };
        v.push((
            "no prefix".into(),
            stat(Some(&cat(&r, "s/f")), -1).0,
            Some(0),
        ));
        // SAFETY: as above.
        unsafe { HOSTFS_SET_PREFIX(rp.as_ptr()) };
        // SAFETY: NULL is allowed.
        unsafe { HOSTFS_SET_PREFIX(core::ptr::null()) };
        v.push((
            "NULL: no prefix".into(),
            stat(Some(&cat(&r, "s/f")), -1).0,
            Some(0),
        ));
        v
    });
}

#[test]
fn nothing_is_retried_on_eintr_below_a_prefix() {
    let t = prefix_tree();
    let r = t.path().join("R");
    let calls: Vec<(i64, c_int)> = [
        libc::SYS_openat2,
        libc::SYS_statx,
        libc::SYS_faccessat2,
        libc::SYS_fchmodat2,
        libc::SYS_fchownat,
        libc::SYS_truncate,
        libc::SYS_utimensat,
        libc::SYS_symlinkat,
        libc::SYS_unlinkat,
        libc::SYS_mkdirat,
        libc::SYS_mknodat,
        libc::SYS_linkat,
        libc::SYS_readlinkat,
        libc::SYS_renameat,
        libc::SYS_renameat2,
        libc::SYS_fstatfs,
    ]
    .into_iter()
    .map(|nr| (nr, libc::EINTR))
    .collect();
    let filter = errno_filter(&calls);
    with_prefix(&cpath(&r), || {
        // The prefix's directory is opened (openat) before the filter.
        assert_eq!(stat(Some(&cat(&r, "")), -1).0, 0);
        seccompiler::apply_filter(&filter).unwrap();
        let mut v: Vec<_> = abi_calls()
            .into_iter()
            .map(|(name, call)| {
                (
                    format!("{name} below"),
                    call(&r.join("d"), &r),
                    Some(-libc::EINTR),
                )
            })
            .collect();
        // Directly in the prefix, the name operations make their *at call
        // first; the others their openat2.
        v.extend(
            abi_calls()
                .into_iter()
                .map(|(name, call)| (format!("{name} in"), call(&r, &r), Some(-libc::EINTR))),
        );
        v
    });
}
