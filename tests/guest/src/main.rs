// SPDX-License-Identifier: GPL-2.0
//! `uml-guest`: the program the harness runs inside UML guests (and natively
//! on the host, as the benchmark reference).
//!
//! ```text
//! uml-guest test [--only NAME]... [--list] [OPTIONS]   in-guest suite, KTAP v1
//! uml-guest bench OP|all [--iters N] [--iters-scale X] [--runs R] [--cpu C]
//! uml-guest wait-file PATH SECS                       poll until PATH exists
//! uml-guest pattern SEED LEN                          write LEN bytes of the
//!                                                     pattern for SEED to stdout
//! uml-guest read-direct FILE OFFSET LEN               one O_DIRECT pread, the
//!                                                     bytes read to stdout
//! uml-guest rename2 FROM TO FLAG[,FLAG]               renameat2(2) with
//!                                                     noreplace, exchange or 0
//! uml-guest mmap-fsync FILE SEED LEN MODE WAIT SECS   the pattern for SEED
//!                                                     into a shared mapping
//!                                                     of FILE, fsync or
//!                                                     fdatasync, then wait
//! uml-guest fsmount FSTYPE TARGET [KEY=VALUE]...      mount through
//!                                                     fsopen/fsconfig/fsmount
//! uml-guest true                                      exit 0 (an exec target)
//! uml-guest exit N                                    exit N (an exec target)
//! uml-guest probe-stale ADDR                          exit 1 if the exec'ing
//!                                                     program's mark is at ADDR
//! ```
//!
//! `test` exits 0 if and only if no case failed (skips are fine).

mod bench;
mod cases;
// The host's check (`verify`) is compiled here too, unused.
#[allow(dead_code)]
mod console_lines;
mod ktap;
mod pattern;
mod protocol;
mod sys;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage:
  uml-guest test [--only NAME]... [--list] [OPTIONS]
      --hostfs-dir DIR          host directory to mount with hostfs
      --hostfs-seed SEED        seed of the hostfs data files
      --ubd DEV                 block device to write and verify (e.g. /dev/ubda)
      --ubd-seed SEED           seed of the pattern written to DEV
      --ubd-host-seed SEED      verify the pattern the host wrote at 32 MiB
      --ubd-size BYTES          expected size of DEV
      --stress-iters N          fork+execve count of fork_exec_stress (default 2000)
      --stress-timeout SECS     time limit of fork_exec_stress (default 300)
      --host-sync NAME          finally wait for hostfs file NAME from the host
      --host-sync-timeout SECS  how long to wait for it (default 120)
  uml-guest bench OP|all [--iters N] [--iters-scale X] [--runs R] [--cpu C]
  uml-guest wait-file PATH SECS
  uml-guest pattern SEED LEN
  uml-guest read-direct FILE OFFSET LEN
  uml-guest rename2 FROM TO noreplace|exchange|0
  uml-guest mmap-fsync FILE SEED LEN fsync|fdatasync WAIT-PATH SECS
  uml-guest fsmount FSTYPE TARGET [KEY=VALUE]...
  uml-guest true
  uml-guest exit N
  uml-guest probe-stale ADDR";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => cmd_test(&args[1..]),
        Some("bench") => cmd_bench(&args[1..]),
        Some("wait-file") => cmd_wait_file(&args[1..]),
        Some("pattern") => cmd_pattern(&args[1..]),
        Some("read-direct") => cmd_read_direct(&args[1..]),
        Some("rename2") => cmd_rename2(&args[1..]),
        Some("mmap-fsync") => cmd_mmap_fsync(&args[1..]),
        Some("fsmount") => cmd_fsmount(&args[1..]),
        Some("true") => Ok(ExitCode::SUCCESS),
        // Exec targets of the `exec` case.
        Some("exit") => Ok(ExitCode::from(
            args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1u8),
        )),
        Some("exec-probe") => Ok(exec_probe(&args[1..])),
        // Exec target of the `exec_dynamic` case.
        Some("probe-stale") => Ok(probe_stale(&args[1..])),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(format!("unknown or missing subcommand\n{USAGE}")),
    };
    match result {
        Ok(c) => c,
        Err(e) => {
            eprintln!("uml-guest: {e}");
            ExitCode::from(2)
        }
    }
}

/// Parses a number in decimal or with a 0x prefix.
fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("bad number {s:?}: {e}"))
}

/// Iterates over `--flag value` pairs.
struct Flags<'a> {
    args: std::slice::Iter<'a, String>,
}

impl<'a> Flags<'a> {
    fn new(args: &'a [String]) -> Self {
        Flags { args: args.iter() }
    }

    fn value(&mut self, flag: &str) -> Result<&'a str, String> {
        self.args
            .next()
            .map(String::as_str)
            .ok_or_else(|| format!("{flag} needs a value"))
    }
}

fn cmd_test(args: &[String]) -> Result<ExitCode, String> {
    let mut cfg = cases::Config::new();
    let mut only: Vec<String> = Vec::new();
    let mut list = false;
    let mut f = Flags::new(args);
    while let Some(a) = f.args.next() {
        match a.as_str() {
            "--only" => only.push(f.value(a)?.to_string()),
            "--list" => list = true,
            "--hostfs-dir" => cfg.hostfs_dir = Some(f.value(a)?.to_string()),
            "--hostfs-seed" => cfg.hostfs_seed = parse_u64(f.value(a)?)?,
            "--ubd" => cfg.ubd = Some(PathBuf::from(f.value(a)?)),
            "--ubd-seed" => cfg.ubd_seed = parse_u64(f.value(a)?)?,
            "--ubd-host-seed" => cfg.ubd_host_seed = Some(parse_u64(f.value(a)?)?),
            "--ubd-size" => cfg.ubd_size = Some(parse_u64(f.value(a)?)?),
            "--stress-iters" => {
                cfg.stress_iters =
                    u32::try_from(parse_u64(f.value(a)?)?).map_err(|e| e.to_string())?
            }
            "--stress-timeout" => cfg.stress_timeout = Duration::from_secs(parse_u64(f.value(a)?)?),
            "--host-sync" => cfg.host_sync = Some(f.value(a)?.to_string()),
            "--host-sync-timeout" => {
                cfg.host_sync_timeout = Duration::from_secs(parse_u64(f.value(a)?)?)
            }
            other => return Err(format!("test: unknown option {other:?}\n{USAGE}")),
        }
    }
    let all = cases::all();
    for o in &only {
        if !all.iter().any(|c| c.name == o) {
            let names: Vec<&str> = all.iter().map(|c| c.name).collect();
            return Err(format!("no case {o:?}; cases: {}", names.join(" ")));
        }
    }
    let selected: Vec<_> = all
        .into_iter()
        .filter(|c| {
            if only.is_empty() {
                // host_sync belongs to the plan only when asked for.
                c.name != "host_sync" || cfg.host_sync.is_some()
            } else {
                only.iter().any(|o| o == c.name)
            }
        })
        .collect();
    if list {
        for c in &selected {
            println!("{}", c.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let t0 = Instant::now();
    let totals = ktap::run_suite(&selected, &cfg);
    cfg.cleanup();
    diag!(
        "uml-guest: {} passed, {} failed, {} skipped in {:.1} s{}",
        totals.passed,
        totals.failed,
        totals.skipped,
        t0.elapsed().as_secs_f64(),
        if cfg.in_uml { " (UML)" } else { " (not UML)" }
    );
    Ok(if totals.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn cmd_bench(args: &[String]) -> Result<ExitCode, String> {
    let Some(which) = args.first() else {
        return Err(format!("bench: which op?\n{USAGE}"));
    };
    let mut iters = None;
    let mut scale = 1.0f64;
    let mut runs = 1u32;
    let mut f = Flags::new(&args[1..]);
    while let Some(a) = f.args.next() {
        match a.as_str() {
            "--iters" => iters = Some(parse_u64(f.value(a)?)?),
            "--iters-scale" => {
                scale = f
                    .value(a)?
                    .parse()
                    .map_err(|e| format!("--iters-scale: {e}"))?;
                if !(scale > 0.0 && scale.is_finite()) {
                    return Err("--iters-scale must be positive".into());
                }
            }
            "--runs" => runs = u32::try_from(parse_u64(f.value(a)?)?).map_err(|e| e.to_string())?,
            "--cpu" => {
                let cpu = parse_u64(f.value(a)?)? as usize;
                sys::pin_to_cpu(cpu).map_err(|e| format!("pin to cpu {cpu}: {e}"))?;
            }
            other => return Err(format!("bench: unknown option {other:?}\n{USAGE}")),
        }
    }
    let ops: Vec<&bench::Op> = if which == "all" {
        bench::OPS.iter().collect()
    } else {
        let op = bench::find(which).ok_or_else(|| {
            let names: Vec<&str> = bench::OPS.iter().map(|o| o.name).collect();
            format!("no benchmark {which:?}; ops: {} all", names.join(" "))
        })?;
        vec![op]
    };
    diag!(
        "uml-guest bench: {}",
        if sys::in_uml() { "UML guest" } else { "native" }
    );
    let t0 = Instant::now();
    for op in ops {
        let n = iters.unwrap_or(((op.default_iters as f64) * scale).round().max(1.0) as u64);
        diag!("{}: {} ({n} per run)", op.name, op.unit);
        bench::run(op, n, runs).map_err(|e| format!("bench {}: {e}", op.name))?;
    }
    diag!("bench done in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// Polls every 20 ms until `path` exists, for at most `limit`.
pub fn wait_file(path: &Path, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        if path.exists() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} did not appear within {limit:?}",
                path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cmd_wait_file(args: &[String]) -> Result<ExitCode, String> {
    let [path, secs] = args else {
        return Err(format!("wait-file PATH SECS\n{USAGE}"));
    };
    let secs: f64 = secs.parse().map_err(|e| format!("SECS: {e}"))?;
    match wait_file(Path::new(path), Duration::from_secs_f64(secs.max(0.0))) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("uml-guest: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Writes the first LEN bytes of the pattern stream for SEED (see
/// [`pattern`]) to stdout: the harness's block cases write files and
/// devices with it in the guest and check them on the host.
fn cmd_pattern(args: &[String]) -> Result<ExitCode, String> {
    use std::io::Write;
    use std::os::fd::AsFd;
    let [seed, len] = args else {
        return Err(format!("pattern SEED LEN\n{USAGE}"));
    };
    let (seed, len) = (parse_u64(seed)?, parse_u64(len)?);
    // Unbuffered (std's stdout is line-buffered), so that a block device
    // gets whole chunks.
    let mut out = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .map_err(|e| format!("dup stdout: {e}"))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        pattern::fill(seed, done, &mut buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| format!("writing at byte {done}: {e}"))?;
        done += n as u64;
    }
    Ok(ExitCode::SUCCESS)
}

/// One pread(2) of LEN bytes at OFFSET from FILE opened with O_DIRECT,
/// into a page-aligned buffer; writes the bytes it returned to stdout.
/// Unlike busybox dd, which drops O_DIRECT when a read fails with EINVAL
/// (its buffer is not aligned for a block device), it fails instead.
fn cmd_read_direct(args: &[String]) -> Result<ExitCode, String> {
    use std::io::Write;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let [path, offset, len] = args else {
        return Err(format!("read-direct FILE OFFSET LEN\n{USAGE}"));
    };
    let (offset, len) = (parse_u64(offset)?, parse_u64(len)? as usize);
    const ALIGN: usize = 4096;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| format!("open {path} with O_DIRECT: {e}"))?;
    let mut raw = vec![0u8; len + ALIGN];
    let start = raw.as_ptr().align_offset(ALIGN);
    let buf = &mut raw[start..start + len];
    let n = file
        .read_at(buf, offset)
        .map_err(|e| format!("O_DIRECT pread of {len} bytes at {offset} from {path}: {e}"))?;
    std::io::stdout()
        .lock()
        .write_all(&buf[..n])
        .and_then(|()| std::io::stdout().lock().flush())
        .map_err(|e| format!("writing to stdout: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// The `renameat2(2)` flags named in `s` (comma-separated `noreplace`,
/// `exchange`, or `0` for none).
fn rename_flags(s: &str) -> Result<libc::c_uint, String> {
    let mut flags = 0;
    for w in s.split(',') {
        flags |= match w {
            "noreplace" => libc::RENAME_NOREPLACE,
            "exchange" => libc::RENAME_EXCHANGE,
            "0" => 0,
            other => return Err(format!("unknown rename2 flag {other:?}")),
        };
    }
    Ok(flags)
}

/// One renameat2(2) of FROM to TO with FLAGS (busybox `mv` has no way to
/// pass them). Exits 0 if it succeeded, else prints `rename2: ERROR` with
/// the errno's text and number on stderr and exits 1.
fn cmd_rename2(args: &[String]) -> Result<ExitCode, String> {
    use std::ffi::CString;
    let [from, to, flags] = args else {
        return Err(format!("rename2 FROM TO FLAGS\n{USAGE}"));
    };
    let flags = rename_flags(flags)?;
    let c = |s: &str| CString::new(s).map_err(|e| format!("{s:?}: {e}"));
    let (cfrom, cto) = (c(from)?, c(to)?);
    // SAFETY: both paths are NUL-terminated and live across the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            cfrom.as_ptr(),
            libc::AT_FDCWD,
            cto.as_ptr(),
            flags,
        )
    };
    if r != 0 {
        eprintln!(
            "rename2: {from} {to} {flags:#x}: {}",
            std::io::Error::last_os_error()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Maps the first LEN bytes of FILE (which must be at least that long)
/// shared, writes the pattern for SEED into the mapping, then calls
/// fsync(2) or fdatasync(2) (MODE) on the file: on a page-cache file
/// system only that write-back (not the stores) sends the data on. Prints
/// `mmap-fsync: synced LEN` and waits for WAIT-PATH (up to SECS seconds)
/// with the mapping still in place, so that nothing else writes it back
/// before the harness looked at the host's file.
fn cmd_mmap_fsync(args: &[String]) -> Result<ExitCode, String> {
    use std::io::Write;
    let [path, seed, len, mode, wait, secs] = args else {
        return Err(format!(
            "mmap-fsync FILE SEED LEN MODE WAIT-PATH SECS\n{USAGE}"
        ));
    };
    let (seed, len) = (parse_u64(seed)?, parse_u64(len)? as usize);
    let secs: f64 = secs.parse().map_err(|e| format!("SECS: {e}"))?;
    let datasync = match mode.as_str() {
        "fsync" => false,
        "fdatasync" => true,
        other => {
            return Err(format!(
                "mmap-fsync: MODE is fsync or fdatasync, not {other:?}"
            ));
        }
    };
    if len == 0 {
        return Err("mmap-fsync: LEN must not be 0".into());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("open {path}: {e}"))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    // SAFETY: a fresh shared mapping of an open file at an address the
    // kernel chooses; it aliases no Rust object.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!(
            "mmap {len} bytes of {path}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the mapping is `len` bytes, readable and writable, and only
    // this slice refers to it until the munmap below.
    let mem = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) };
    pattern::fill(seed, 0, mem);
    // SAFETY: no memory arguments.
    let r = unsafe {
        if datasync {
            libc::fdatasync(fd)
        } else {
            libc::fsync(fd)
        }
    };
    if r != 0 {
        return Err(format!(
            "{mode} {path}: {}",
            std::io::Error::last_os_error()
        ));
    }
    println!("mmap-fsync: synced {len}");
    std::io::stdout()
        .flush()
        .map_err(|e| format!("stdout: {e}"))?;
    let waited = wait_file(Path::new(wait), Duration::from_secs_f64(secs.max(0.0)));
    // SAFETY: unmaps exactly the mapping made above; `mem` is not used again.
    unsafe { libc::munmap(p, len) };
    waited.map(|()| ExitCode::SUCCESS)
}

/// `<linux/mount.h>`: fsconfig(2) commands, fsopen/fsmount/move_mount
/// flags (not in the libc crate).
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

/// Mounts a new FSTYPE file system on TARGET through the new mount API
/// (fsopen(2), one `FSCONFIG_SET_STRING` per KEY=VALUE, `FSCONFIG_CMD_CREATE`,
/// fsmount(2), move_mount(2)): the path by which a file system's
/// `parse_param` sees each option on its own, which mount(8) and busybox do
/// not take. On failure prints the failed step, its errno and the file
/// system's messages (read from the fs_context) on stderr and exits 1.
fn cmd_fsmount(args: &[String]) -> Result<ExitCode, String> {
    use std::ffi::CString;
    use std::os::fd::{FromRawFd, OwnedFd};
    let [fstype, target, opts @ ..] = args else {
        return Err(format!("fsmount FSTYPE TARGET [KEY=VALUE]...\n{USAGE}"));
    };
    let c = |s: &str| CString::new(s).map_err(|e| format!("{s:?}: {e}"));
    let (cfstype, ctarget) = (c(fstype)?, c(target)?);
    let mut kv = Vec::new();
    for o in opts {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| format!("fsmount: option {o:?} is not KEY=VALUE"))?;
        kv.push((c(k)?, c(v)?));
    }
    // SAFETY: the type name is NUL-terminated; no other memory arguments.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, cfstype.as_ptr(), FSOPEN_CLOEXEC) };
    if fd < 0 {
        return Err(format!(
            "fsopen {fstype}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fsopen returned a new descriptor that nothing else owns.
    let fsfd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fsfd);
    // The messages the file system logged in the context, one per read.
    let messages = || {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        // SAFETY: `buf` is writable for its length.
        while let n @ 1.. = unsafe { libc::read(raw, buf.as_mut_ptr().cast(), buf.len()) } {
            out.push(String::from_utf8_lossy(&buf[..n as usize]).into_owned());
        }
        out.join("; ")
    };
    let failed = |step: String| {
        let e = std::io::Error::last_os_error();
        eprintln!("fsmount: {step}: {e} [{}]", messages());
        Ok(ExitCode::FAILURE)
    };
    for (k, v) in &kv {
        // SAFETY: key and value are NUL-terminated and live across the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                raw,
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        };
        if r < 0 {
            return failed(format!(
                "fsconfig {}={}",
                k.to_string_lossy(),
                v.to_string_lossy()
            ));
        }
    }
    // SAFETY: no memory arguments (NULL key and value).
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            raw,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return failed("fsconfig FSCONFIG_CMD_CREATE".into());
    }
    // SAFETY: no memory arguments.
    let m = unsafe { libc::syscall(libc::SYS_fsmount, raw, FSMOUNT_CLOEXEC, 0) };
    if m < 0 {
        return failed("fsmount".into());
    }
    // SAFETY: fsmount returned a new descriptor that nothing else owns.
    let mfd = unsafe { OwnedFd::from_raw_fd(m as libc::c_int) };
    // SAFETY: the empty path and the target are NUL-terminated and live
    // across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            std::os::fd::AsRawFd::as_raw_fd(&mfd),
            c"".as_ptr(),
            libc::AT_FDCWD,
            ctarget.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return failed(format!("move_mount to {target}"));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints its arguments, each followed by NUL, then `env=` and the value of
/// UML_GUEST_PROBE followed by NUL: the `exec` case checks argv and envp.
fn exec_probe(args: &[String]) -> ExitCode {
    use std::io::Write;
    let mut out = Vec::new();
    for a in args {
        out.extend_from_slice(a.as_bytes());
        out.push(0);
    }
    out.extend_from_slice(b"env=");
    out.extend_from_slice(
        std::env::var("UML_GUEST_PROBE")
            .unwrap_or_default()
            .as_bytes(),
    );
    out.push(0);
    let mut so = std::io::stdout().lock();
    if so.write_all(&out).and_then(|()| so.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Exits 0 if the mark the exec'ing program left at ADDR (see
/// [`sys::STALE_MARK`]) is gone, 1 if it survived the execve, 2 on a bad
/// argument, 3 if it cannot tell.
fn probe_stale(args: &[String]) -> ExitCode {
    let Some(addr) = args.first().and_then(|a| parse_u64(a).ok()) else {
        return ExitCode::from(2);
    };
    match sys::stale_mark_at(addr as usize) {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        Err(_) => ExitCode::from(3),
    }
}
