// SPDX-License-Identifier: GPL-2.0
//! Host-side cases for where the Rust layer puts physical memory, on real
//! boots:
//!
//! * `host_physmem_fallback_dir`: with `memfd_create` refused (a seccomp
//!   filter answers ENOSYS) the kernel falls back to an unlinked file in
//!   `$TMPDIR`, says so, checks `PROT_EXEC` there, and boots on.
//! * `host_physmem_too_small`: the same with `$TMPDIR` on a 32 MiB tmpfs
//!   and `mem=` larger: the kernel stops at once with exit status 1 and a
//!   line naming the place and both sizes (the C layer would boot and die
//!   of SIGBUS when the tmpfs fills).
//!
//! * `host_boot_ptrace_forbidden`: with ptrace(2) refused (EPERM, as in a
//!   container), the boot's host checks stop the kernel with exit status 1
//!   and a line naming the failed step and errno.
//!
//! Each boot runs in a private mount namespace (for the small tmpfs), with
//! its own `uml_dir`, and without a root file system: it only has to get
//! past the memory set-up, after which the kernel panics (no root) and
//! exits by itself.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::libc;

/// A seccomp filter that makes system call `nr` fail with `errno` and
/// allows everything else. Built before the fork: the child only applies
/// it (`apply_filter` sets no_new_privs, then installs it; see seccomp(2)).
fn refusal_filter(nr: libc::c_long, errno: i32) -> Result<seccompiler::BpfProgram> {
    let filter = seccompiler::SeccompFilter::new(
        [(nr, vec![])].into_iter().collect(),
        seccompiler::SeccompAction::Allow,
        seccompiler::SeccompAction::Errno(errno as u32),
        std::env::consts::ARCH
            .try_into()
            .context("no seccomp support for this architecture")?,
    )
    .context("building the seccomp filter")?;
    filter.try_into().context("compiling the seccomp filter")
}

/// What a short boot printed and how it ended.
struct ShortBoot {
    status: Option<i32>,
    output: String,
}

/// Boots `kernel` with `mem`, system call `refused` failing with `errno`,
/// `TMPDIR=tmpdir` (a tmpfs of `tmpfs_size` mounted there in a private
/// mount namespace), and waits at most `limit` for it to exit.
fn boot(
    kernel: &Path,
    mem: &str,
    tmpdir: &Path,
    tmpfs_size: &str,
    (refused, errno): (libc::c_long, i32),
    limit: Duration,
) -> Result<ShortBoot> {
    let uml_dir = tempfile::Builder::new().prefix("uml-physmem-").tempdir()?;
    let mount_at = tmpdir.to_path_buf();
    let size = format!("size={tmpfs_size}");
    let filter = refusal_filter(refused, errno)?;
    let mut cmd = Command::new(kernel);
    cmd.arg(format!("mem={mem}"))
        .arg(format!("uml_dir={}", uml_dir.path().display()))
        .arg("umid=physmem")
        .arg("con=null")
        .arg("con0=fd:0,fd:1")
        .env("TMPDIR", tmpdir)
        .env_remove("TMP")
        .env_remove("TEMP")
        .current_dir(uml_dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // unshare, mount, setrlimit and the two system calls of apply_filter:
    // async-signal-safe, on data prepared before the fork.
    // SAFETY: the closure runs in the forked child before exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                None::<&str>,
            )?;
            nix::mount::mount(
                Some("tmpfs"),
                &mount_at,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                Some(size.as_str()),
            )?;
            // The core dump of a panicking kernel is of no use here.
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)?;
            seccompiler::apply_filter(&filter).map_err(std::io::Error::other)
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", kernel.display()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st.code();
        }
        if start.elapsed() > limit {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever is left of the group (helpers of a panicked kernel become
    // children of the harness, which is a subreaper) is killed and reaped
    // here, so that no zombie is left for the teardown checks to find.
    crate::sys::kill_group(pgid, pgid, Duration::from_secs(5))?;
    let _ = child.try_wait();
    let mut output = err_t.join().unwrap_or_default();
    output.push_str(&out_t.join().unwrap_or_default());
    Ok(ShortBoot { status, output })
}

/// The names of the cases, in the order [`cases`] returns them.
pub const CASES: [&str; 3] = [
    "host_physmem_fallback_dir",
    "host_physmem_too_small",
    "host_boot_ptrace_forbidden",
];

/// The cases, for the Rust kernel at `kernel`: (name, result).
pub fn cases(kernel: &Path) -> Vec<(&'static str, Result<String>)> {
    if !nix::unistd::geteuid().is_root() {
        let skip = || Ok("skipped: needs root for a private tmpfs".to_string());
        return CASES.iter().map(|&name| (name, skip())).collect();
    }
    let run = |mem: &str, tmpfs: &str| -> Result<ShortBoot> {
        let dir = tempfile::Builder::new()
            .prefix("uml-physmem-tmp-")
            .tempdir()?;
        let memfd = (libc::SYS_memfd_create, libc::ENOSYS);
        boot(
            kernel,
            mem,
            dir.path(),
            tmpfs,
            memfd,
            Duration::from_secs(60),
        )
    };
    let fallback = (|| -> Result<String> {
        let b = run("64M", "4g")?;
        for want in [
            "No usable memfd for physical memory (Function not implemented), using a file",
            "Checking environment variables for a tempdir...",
            "Checking PROT_EXEC mmap in ",
            "Linux version",
        ] {
            if !b.output.contains(want) {
                bail!(
                    "the console lacks `{want}` (status {:?}); it ends with:\n{}",
                    b.status,
                    crate::boot::tail(&b.output, 15)
                );
            }
        }
        let line = b
            .output
            .lines()
            .find(|l| l.contains("Checking PROT_EXEC mmap in"))
            .unwrap_or("");
        Ok(format!("boot went on past memory set-up: {}", line.trim()))
    })();
    let too_small = (|| -> Result<String> {
        let b = run("256M", "32m")?;
        let want = "of physical memory: 33554432 bytes (32 MiB) free. Use a smaller mem= or point TMPDIR at a larger filesystem";
        let Some(line) = b.output.lines().find(|l| l.contains("Not enough space in")) else {
            bail!(
                "no `Not enough space` line (status {:?}); the console ends with:\n{}",
                b.status,
                crate::boot::tail(&b.output, 15)
            );
        };
        if !line.contains(want) {
            bail!("unexpected message: {line}");
        }
        if b.status != Some(1) {
            bail!(
                "the kernel ended with {:?}, expected exit status 1",
                b.status
            );
        }
        if b.output.contains("Linux version") {
            bail!("the kernel went on booting after refusing the memory file");
        }
        Ok(format!("exit status 1: {}", line.trim()))
    })();
    // ptrace(2) forbidden, as in a container whose seccomp profile refuses
    // it: the boot checks stop the kernel with status 1 and the reason.
    let no_ptrace = (|| -> Result<String> {
        let dir = tempfile::Builder::new()
            .prefix("uml-physmem-tmp-")
            .tempdir()?;
        let ptrace = (libc::SYS_ptrace, libc::EPERM);
        let b = boot(
            kernel,
            "64M",
            dir.path(),
            "64m",
            ptrace,
            Duration::from_secs(60),
        )?;
        let want = "PTRACE_TRACEME failed in the child: Operation not permitted (EPERM)";
        let Some(line) = b.output.lines().find(|l| l.contains(want)) else {
            bail!(
                "no line with `{want}` (status {:?}); the console ends with:\n{}",
                b.status,
                crate::boot::tail(&b.output, 15)
            );
        };
        if !b
            .output
            .contains("Checking that ptrace can change system call numbers...")
        {
            bail!("the ptrace check's boot line is missing");
        }
        if b.status != Some(1) {
            bail!(
                "the kernel ended with {:?}, expected exit status 1",
                b.status
            );
        }
        if b.output.contains("Linux version") {
            bail!("the kernel went on booting without ptrace");
        }
        Ok(format!("exit status 1: {}", line.trim()))
    })();
    CASES
        .into_iter()
        .zip([fallback, too_small, no_ptrace])
        .collect()
}
