// SPDX-License-Identifier: GPL-2.0
//! Tests of the allocation-free PATH search. Every attempt that might
//! succeed runs in a forked child, so a successful exec never replaces the
//! test process; the child reports an errno (or the program's exit code)
//! as its exit status.

use super::*;
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::panic::AssertUnwindSafe;
use std::path::Path;

/// Exit status of the test program that a successful search runs.
const RAN: i32 = 201;

/// Runs `f` in a forked child and returns its exit status.
pub(crate) fn in_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs only `f` and leaves by _exit, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", Errno::last());
    if pid == 0 {
        let code = std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(250);
        // SAFETY: ends the child without running the parent's atexit state.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid int to write.
        let rc = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        if rc == pid {
            break;
        }
        assert_eq!(Errno::last(), Errno::EINTR, "waitpid");
    }
    assert!(libc::WIFEXITED(status), "child status {status:#x}");
    libc::WEXITSTATUS(status)
}

/// Owned argv: the strings and the NULL-terminated pointer array.
struct OwnedArgv {
    _strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl OwnedArgv {
    fn new(args: &[&str]) -> Self {
        let strings: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
        let mut ptrs: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(core::ptr::null());
        Self {
            _strings: strings,
            ptrs,
        }
    }

    fn argv(&self) -> Argv<'_> {
        // SAFETY: `ptrs` is NULL-terminated and points into `_strings`, both owned by `self`.
        unsafe { Argv::from_ptr(self.ptrs.as_ptr()) }
    }
}

fn cstring(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

/// A tree of directories each holding (or not) a `prog`:
/// `ok` runs and exits RAN, `noexec` is not executable (EACCES), `garbage`
/// is executable but no format the host knows (ENOEXEC), `empty` has none.
struct Tree {
    root: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let mk = |dir: &str, body: &[u8], mode: u32| {
            let d = root.path().join(dir);
            std::fs::create_dir(&d).unwrap();
            if !body.is_empty() {
                let f = d.join("prog");
                std::fs::write(&f, body).unwrap();
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            }
        };
        mk("ok", format!("#!/bin/sh\nexit {RAN}\n").as_bytes(), 0o755);
        mk("noexec", b"#!/bin/sh\nexit 1\n", 0o644);
        mk("garbage", b"\x01\x02\x03 not a program\n", 0o755);
        mk("empty", b"", 0);
        Self { root }
    }

    fn dir(&self, name: &str) -> String {
        self.root.path().join(name).to_str().unwrap().to_owned()
    }

    /// A PATH made of the named directories (absolute), or of raw elements
    /// when they start with `=`.
    fn path(&self, elems: &[&str]) -> CString {
        let parts: Vec<String> = elems
            .iter()
            .map(|e| {
                e.strip_prefix('=')
                    .map_or_else(|| self.dir(e), str::to_owned)
            })
            .collect();
        CString::new(parts.join(":")).unwrap()
    }
}

/// Searches `path` for `file` in a child; the child's status is RAN if the
/// program ran, else the errno.
fn search(file: &CStr, path: Option<&CStr>) -> i32 {
    let argv = OwnedArgv::new(&["prog"]);
    in_child(|| {
        let mut buf = [0u8; libc::PATH_MAX as usize];
        execvp_in(&mut buf, file, argv.argv(), path) as i32
    })
}

#[test]
fn finds_program_in_a_later_directory() {
    let t = Tree::new();
    assert_eq!(
        search(c"prog", Some(&t.path(&["empty", "=/nonexistent", "ok"]))),
        RAN
    );
}

#[test]
fn stops_at_first_match() {
    let t = Tree::new();
    // `ok` first: runs even though a later element would fail differently.
    assert_eq!(search(c"prog", Some(&t.path(&["ok", "noexec"]))), RAN);
}

#[test]
fn eacces_wins_over_a_later_enoent() {
    let t = Tree::new();
    assert_eq!(
        search(c"prog", Some(&t.path(&["noexec", "empty"]))),
        libc::EACCES
    );
    assert_eq!(
        search(c"prog", Some(&t.path(&["empty", "noexec", "empty"]))),
        libc::EACCES
    );
}

#[test]
fn eacces_does_not_stop_the_search() {
    let t = Tree::new();
    assert_eq!(search(c"prog", Some(&t.path(&["noexec", "ok"]))), RAN);
}

#[test]
fn enoent_when_nothing_found() {
    let t = Tree::new();
    assert_eq!(
        search(c"prog", Some(&t.path(&["empty", "=/nonexistent"]))),
        libc::ENOENT
    );
}

#[test]
fn enoexec_is_skipped_and_reported_only_if_last() {
    let t = Tree::new();
    assert_eq!(search(c"prog", Some(&t.path(&["garbage", "ok"]))), RAN);
    assert_eq!(search(c"prog", Some(&t.path(&["garbage"]))), libc::ENOEXEC);
    // The last attempt's error is the answer, not the first one's.
    assert_eq!(
        search(c"prog", Some(&t.path(&["garbage", "empty"]))),
        libc::ENOENT
    );
    assert_eq!(
        search(c"prog", Some(&t.path(&["empty", "garbage"]))),
        libc::ENOEXEC
    );
}

#[test]
fn enotdir_is_skipped() {
    let t = Tree::new();
    // A PATH element that is a file: ENOTDIR, then carry on.
    let file_elem = format!("={}/prog", t.dir("noexec"));
    assert_eq!(search(c"prog", Some(&t.path(&[&file_elem, "ok"]))), RAN);
    assert_eq!(search(c"prog", Some(&t.path(&[&file_elem]))), libc::ENOTDIR);
}

#[test]
fn other_errors_end_the_search_at_once() {
    let t = Tree::new();
    // A component longer than NAME_MAX: ENAMETOOLONG from the host, which
    // is not in the skip list, so `ok` is never tried.
    let long = format!("=/{}", "a".repeat(300));
    assert_eq!(
        search(c"prog", Some(&t.path(&[&long, "ok"]))),
        libc::ENAMETOOLONG
    );
}

#[test]
fn empty_elements_mean_the_current_directory() {
    let t = Tree::new();
    let ok = cstring(&t.root.path().join("ok"));
    for path in [
        c"",
        c":",
        c"/nonexistent:",
        c":/nonexistent",
        c"/nonexistent::/nonexistent",
    ] {
        let argv = OwnedArgv::new(&["prog"]);
        let status = in_child(|| {
            // SAFETY: `ok` is a NUL-terminated directory name.
            assert_eq!(unsafe { libc::chdir(ok.as_ptr()) }, 0);
            let mut buf = [0u8; 64];
            execvp_in(&mut buf, c"prog", argv.argv(), Some(path)) as i32
        });
        assert_eq!(status, RAN, "PATH={path:?}");
    }
    // Not found in the current directory either.
    let status = in_child(|| {
        let argv = OwnedArgv::new(&["prog"]);
        let mut buf = [0u8; 64];
        execvp_in(&mut buf, c"prog", argv.argv(), Some(c"")) as i32
    });
    assert_eq!(status, libc::ENOENT);
}

#[test]
fn unset_path_searches_cwd_bin_and_usr_bin() {
    let argv = OwnedArgv::new(&["sh", "-c", "exit 5"]);
    let status = in_child(|| {
        let mut buf = [0u8; libc::PATH_MAX as usize];
        execvp_in(&mut buf, c"sh", argv.argv(), None) as i32
    });
    assert_eq!(status, 5);
    assert_eq!(DEFAULT_PATH, c":/bin:/usr/bin");
}

#[test]
fn names_with_a_slash_are_not_searched() {
    let t = Tree::new();
    let abs = cstring(&t.root.path().join("ok/prog"));
    // PATH would fail, so running proves it was bypassed.
    let bad = t.path(&["empty"]);
    assert_eq!(search(&abs, Some(&bad)), RAN);
    let missing = cstring(&t.root.path().join("empty/prog"));
    assert_eq!(search(&missing, Some(&t.path(&["ok"]))), libc::ENOENT);
    let denied = cstring(&t.root.path().join("noexec/prog"));
    assert_eq!(search(&denied, None), libc::EACCES);
    // Relative with a slash: relative to the current directory.
    let root = cstring(t.root.path());
    let argv = OwnedArgv::new(&["prog"]);
    let status = in_child(|| {
        // SAFETY: `root` is a NUL-terminated directory name.
        assert_eq!(unsafe { libc::chdir(root.as_ptr()) }, 0);
        execvp_in(&mut [], c"ok/prog", argv.argv(), Some(&bad)) as i32
    });
    assert_eq!(status, RAN);
}

#[test]
fn empty_name_is_enoent_without_any_attempt() {
    let argv = OwnedArgv::new(&["x"]);
    assert_eq!(
        execvp_in(&mut [], c"", argv.argv(), Some(c"/bin")),
        Errno::ENOENT
    );
}

#[test]
fn candidates_are_built_in_the_buffer_and_never_past_it() {
    let t = Tree::new();
    let dir = t.dir("ok");
    let needed = dir.len() + "/prog".len() + 1;
    let path = t.path(&["ok"]);
    let argv = OwnedArgv::new(&["prog"]);
    const GUARD: u8 = 0xa5;
    // One byte short: ENAMETOOLONG, and the bytes past the slice untouched.
    let status = in_child(|| {
        let mut store = [GUARD; 2 * libc::PATH_MAX as usize];
        let e = execvp_in(&mut store[..needed - 1], c"prog", argv.argv(), Some(&path));
        if store[needed - 1..].iter().any(|&b| b != GUARD) {
            return 250;
        }
        e as i32
    });
    assert_eq!(status, libc::ENAMETOOLONG);
    // Exactly enough: runs.
    let status = in_child(|| {
        let mut store = [GUARD; 2 * libc::PATH_MAX as usize];
        execvp_in(&mut store[..needed], c"prog", argv.argv(), Some(&path)) as i32
    });
    assert_eq!(status, RAN);
}

#[test]
fn join_writes_dir_slash_file_nul() {
    let mut buf = [0xffu8; 16];
    assert_eq!(join(&mut buf, b"/bin", b"sh"), Some(c"/bin/sh"));
    assert_eq!(&buf[..8], b"/bin/sh\0");
    assert_eq!(buf[8], 0xff);
    let mut small = [0u8; 7];
    assert_eq!(join(&mut small, b"/bin", b"sh"), None);
}

#[test]
fn a_failed_search_in_process_returns_the_error() {
    // Safe to run in the test process: nothing on this PATH can execute.
    let t = Tree::new();
    let argv = OwnedArgv::new(&["prog"]);
    let mut buf = [0u8; libc::PATH_MAX as usize];
    assert_eq!(
        execvp_in(
            &mut buf,
            c"prog",
            argv.argv(),
            Some(&t.path(&["noexec", "empty"]))
        ),
        Errno::EACCES
    );
    // The last candidate was left in the buffer.
    let last = format!("{}/prog\0", t.dir("empty"));
    assert_eq!(&buf[..last.len()], last.as_bytes());
}
