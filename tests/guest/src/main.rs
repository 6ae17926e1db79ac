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
