// SPDX-License-Identifier: GPL-2.0
use super::*;
use crate::host::util::test_support::run_forked;

#[derive(Default)]
struct Lines(String);

impl Report for Lines {
    fn info(&mut self, args: fmt::Arguments<'_>) {
        self.0.push_str(&args.to_string());
    }
    fn warn(&mut self, args: fmt::Arguments<'_>) {
        self.0.push_str(&args.to_string());
    }
}

fn dir_place(dir: &[u8]) -> Place {
    Place::Dir(CString::new(dir).unwrap())
}

#[test]
fn env_var_wins_and_non_tmpfs_is_warned_about() {
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let path = tmp.path().as_os_str().as_encoded_bytes().to_vec();
    let mut out = Lines::default();
    let dir = choose_dir(|v| (v == c"TMP").then(|| path.clone()), &mut out);
    assert_eq!(dir.as_bytes(), &path[..]);
    let p = String::from_utf8(path).unwrap();
    assert!(
        out.0.starts_with(&format!(
            "Checking environment variables for a tempdir...{p}\n"
        )),
        "{}",
        out.0
    );
    assert!(out.0.contains(&format!("Checking if {p} is on tmpfs...")));
    if nix::sys::statfs::statfs(tmp.path())
        .unwrap()
        .filesystem_type()
        != nix::sys::statfs::TMPFS_MAGIC
    {
        assert!(
            out.0
                .ends_with(&format!("no\nWarning: tempdir {p} is not on tmpfs\n")),
            "{}",
            out.0
        );
    }
}

#[test]
fn without_env_the_first_tmpfs_is_taken() {
    let mut out = Lines::default();
    let dir = choose_dir(|_| None, &mut out);
    assert!(
        out.0
            .starts_with("Checking environment variables for a tempdir...none found\n")
    );
    assert!(out.0.contains("Checking if /dev/shm is on tmpfs..."));
    let shm_tmpfs = nix::sys::statfs::statfs("/dev/shm")
        .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
    if shm_tmpfs == Ok(true) {
        assert_eq!(dir.as_bytes(), b"/dev/shm");
        assert!(out.0.ends_with("OK\n"));
    } else {
        assert!(dir.as_bytes() == b"/tmp");
    }
}

#[test]
fn memfd_is_sparse_sized_and_exec_mappable() {
    let len = 3 << 30;
    let fd = create_at(&Place::Memfd, len).unwrap();
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).unwrap();
    assert_eq!(st.st_size as u64, len);
    assert_eq!(st.st_blocks, 0, "the memory file must be sparse");
    exec_mappable(&fd).unwrap();
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    assert!(
        link.to_string_lossy().starts_with("/memfd:uml-physmem"),
        "{link:?}"
    );
    // SAFETY: F_GETFD takes no argument.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
}

#[test]
fn temp_file_in_dir_is_unlinked_and_sized() {
    let tmp = tempfile::tempdir().unwrap();
    let place = dir_place(tmp.path().as_os_str().as_encoded_bytes());
    let fd = create_at(&place, 1 << 20).unwrap();
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).unwrap();
    assert_eq!(st.st_size, 1 << 20);
    assert_eq!(st.st_nlink, 0, "unlinked");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing left in the directory"
    );
}

#[test]
fn missing_dir_names_the_call_and_place() {
    let place = dir_place(b"/nonexistent/arch-um-rs");
    let err = create_at(&place, 4096).unwrap_err();
    assert_eq!(
        err.to_string(),
        "statvfs in /nonexistent/arch-um-rs failed: No such file or directory"
    );
}

/// A 1 MiB tmpfs in a private mount namespace (needs root): asking for more
/// is refused up front, naming the place and both sizes; asking for less
/// works.
#[test]
fn small_tmpfs_is_refused_with_sizes() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root for a private tmpfs");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().to_path_buf();
    let status = run_forked(move || {
        let ok = (|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).ok()?;
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .ok()?;
            nix::mount::mount(
                Some("tmpfs"),
                &path,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                Some("size=1m"),
            )
            .ok()?;
            let p = path.as_os_str().as_encoded_bytes();
            let place = dir_place(p);
            let err = create_at(&place, 64 << 20).err()?;
            let text = err.to_string();
            let want = format!(
                "Not enough space in {} for 67108864 bytes (64.00 MiB) of physical memory: 1048576 bytes (1 MiB) free.",
                path.display()
            );
            if !text.starts_with(&want) {
                return None;
            }
            create_at(&place, 512 << 10).ok()?;
            Some(())
        })();
        // SAFETY: leaving the forked child.
        unsafe { libc::_exit(if ok.is_some() { 0 } else { 1 }) };
    });
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status:#x}"
    );
}
