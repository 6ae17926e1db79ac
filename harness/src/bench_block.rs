// SPDX-License-Identifier: GPL-2.0
//! `uml-harness bench-block`: fio in the guest on a ubd disk, C and Rust
//! kernels interleaved (DESIGN.md section 5).
//!
//! The guest runs the host's own fio through a read-only hostfs mount of
//! `/` and the host's dynamic loader, so no fio build is needed. Each
//! (round, job, kernel) is one boot on a fresh 1 GiB image of random
//! data: the kernel pinned to one CPU as in `bench`, the host's page cache
//! dropped before the boot (when root), fio with O_DIRECT in the guest so
//! that every I/O reaches the ubd driver. Each job runs twice per kernel:
//! with the host doing O_DIRECT I/O on the image (ubd flag `o`: what a
//! disk gives) and through the host's page cache (after the first pass,
//! what memory gives). The table shows per job and host mode the median,
//! min and max over the rounds and the ratio to the C kernel. Timings
//! never fail the run.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::bench::summarize;
use crate::boot::{self, BootSpec, Guest};
use crate::cli::BenchBlockArgs;
use crate::paths::Ctx;

/// One fio job: what the benchmark asks for.
struct Job {
    name: &'static str,
    rw: &'static str,
    bs: &'static str,
    iodepth: u32,
    /// `read` or `write`: which half of fio's result is the figure.
    dir: &'static str,
    /// More fio options.
    extra: &'static str,
}

const JOBS: &[Job] = &[
    Job {
        name: "randread-4k-qd1",
        rw: "randread",
        bs: "4k",
        iodepth: 1,
        dir: "read",
        extra: "",
    },
    Job {
        name: "randread-4k-qd32",
        rw: "randread",
        bs: "4k",
        iodepth: 32,
        dir: "read",
        extra: "",
    },
    // Queue depth 32 as fio users usually drive it: io_submit and
    // io_getevents 8 I/Os at a time. One at a time (the job above), each
    // I/O costs the guest two system calls, each a ptrace round trip of the
    // UML kernel, and those bound both kernels before the disk does.
    Job {
        name: "randread-4k-qd32b8",
        rw: "randread",
        bs: "4k",
        iodepth: 32,
        dir: "read",
        extra: "--iodepth_batch_submit=8 --iodepth_batch_complete_min=8 ",
    },
    Job {
        name: "seqread-1m",
        rw: "read",
        bs: "1m",
        iodepth: 8,
        dir: "read",
        extra: "",
    },
    Job {
        name: "seqwrite-1m",
        rw: "write",
        bs: "1m",
        iodepth: 8,
        dir: "write",
        extra: "",
    },
];

/// The disk image size.
const IMAGE_SIZE: u64 = 1 << 30;
const MARK: &str = "@@FIO";

/// The host's fio and loader, as the guest sees them under /host.
const HOST_FIO: &str = "/usr/bin/fio";
const HOST_LOADER: &str = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";
const HOST_LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu/ceph",
    "/lib/x86_64-linux-gnu",
];

/// The guest command that runs the host's dynamically linked `program`
/// (e.g. `/usr/bin/fio`) with the host's loader and libraries, all under
/// the guest's hostfs mount of the host's `/` at `/host`.
pub(crate) fn host_exec(program: &str) -> String {
    let libs: Vec<String> = HOST_LIB_DIRS.iter().map(|d| format!("/host{d}")).collect();
    format!(
        "/host{HOST_LOADER} --library-path {} /host{program}",
        libs.join(":")
    )
}

/// The guest script of one job: mount / of the host read-only, run fio,
/// print one marked line `@@FIO <job> <iops> <KiB/s>`.
fn guest_script(job: &Job, runtime: u32) -> String {
    format!(
        "mkdir -p /host && mount -t hostfs -o ro,/ none /host || exit 10\n\
         out=$({fio} --name={name} \
         --filename=/dev/ubda --rw={rw} --bs={bs} --iodepth={qd} {extra}--ioengine=libaio \
         --direct=1 --runtime={runtime} --time_based --output-format=terse \
         --terse-version=3 2>&1) || {{ echo \"$out\"; exit 11; }}\n\
         echo \"{MARK} {name} $out\"\n",
        fio = host_exec(HOST_FIO),
        name = job.name,
        rw = job.rw,
        bs = job.bs,
        qd = job.iodepth,
        extra = job.extra,
    )
}

/// IOPS and KiB/s of direction `dir` from a fio terse (version 3) line:
/// fields 8 and 7 for reads, 49 and 48 for writes (1-based).
pub fn parse_terse(line: &str, dir: &str) -> Option<(f64, f64)> {
    let f: Vec<&str> = line.trim().split(';').collect();
    if f.first() != Some(&"3") {
        return None;
    }
    let (bw, iops) = if dir == "write" { (47, 48) } else { (6, 7) };
    Some((f.get(iops)?.parse().ok()?, f.get(bw)?.parse().ok()?))
}

/// The terse line of job `name` in a console log.
fn find_result(console: &str, name: &str) -> Option<String> {
    let needle = format!("{MARK} {name} ");
    console
        .lines()
        .find_map(|l| l.find(&needle).map(|i| l[i + needle.len()..].to_string()))
}

/// Makes (or reuses) the image of random data.
fn image(ctx: &Ctx) -> Result<PathBuf> {
    let dir = ctx.cache.join("bench-block");
    fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let path = dir.join("disk.img");
    if fs::metadata(&path).map(|m| m.len()).ok() == Some(IMAGE_SIZE) {
        return Ok(path);
    }
    let tmp = dir.join("disk.img.tmp");
    let mut f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..(IMAGE_SIZE >> 20) {
        for chunk in buf.chunks_mut(8) {
            // xorshift64*: incompressible enough for a disk benchmark.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            chunk.copy_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        f.write_all(&buf).context("writing the benchmark image")?;
    }
    f.sync_all()?;
    fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Drops the host's page cache, so that reads reach the disk; false when
/// not allowed (not root).
fn drop_caches() -> bool {
    nix::unistd::sync();
    fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

#[derive(Debug, Default, Serialize)]
struct JobKernel {
    iops: Vec<f64>,
    kib_s: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct JsonReport {
    schema: &'static str,
    runtime_s: u32,
    rounds_done: usize,
    caches_dropped: bool,
    jobs: BTreeMap<String, BTreeMap<String, JobKernel>>,
}

/// The ubd0 option for host I/O mode `host_io` (`direct` or `cached`).
fn ubd_arg(image: &Path, host_io: &str) -> String {
    let flags = if host_io == "direct" { "o" } else { "" };
    format!("ubd0{flags}={}", image.display())
}

fn run_job(
    ctx: &Ctx,
    kernel: &Path,
    image: &Path,
    job: &Job,
    host_io: &str,
    runtime: u32,
) -> Result<(f64, f64)> {
    let mut spec = BootSpec::new(
        kernel.to_path_buf(),
        vec!["/bin/sh".into(), "-c".into(), guest_script(job, runtime)],
    );
    spec.extra_args = vec![ubd_arg(image, host_io), "quiet".into()];
    spec.hostfs_root = Some(PathBuf::from("/"));
    spec.timeout = Duration::from_secs(u64::from(runtime) + 120);
    let out = Guest::start(&spec, ctx)?.wait()?;
    let line = find_result(&out.console, job.name).with_context(|| {
        format!(
            "fio {} gave no result (exit status {}); console:\n{}",
            job.name,
            out.exit_code,
            boot::tail(&out.console, 15)
        )
    })?;
    parse_terse(&line, job.dir).with_context(|| format!("unreadable fio result: {line}"))
}

/// `uml-harness bench-block`.
pub fn run(ctx: &Ctx, args: &BenchBlockArgs) -> Result<()> {
    if !Path::new(HOST_FIO).is_file() {
        bail!("{HOST_FIO} is missing: run `uml-harness setup` (it installs fio)");
    }
    let kernels: Vec<(String, PathBuf)> = args
        .kernels
        .iter()
        .map(|k| Ok((k.clone(), boot::kernel_path(ctx, k)?)))
        .collect::<Result<_>>()?;
    let image = image(ctx)?;
    let mut results: BTreeMap<String, BTreeMap<String, JobKernel>> = BTreeMap::new();
    let mut dropped = true;
    let t0 = Instant::now();
    for round in 1..=args.rounds.max(1) {
        for host_io in &args.host_io {
            for job in JOBS {
                let key = format!("{} {host_io}", job.name);
                for (name, kernel) in &kernels {
                    dropped &= drop_caches();
                    let (iops, kib) = run_job(ctx, kernel, &image, job, host_io, args.runtime)
                        .with_context(|| format!("{name}: fio {key}"))?;
                    println!(
                        "# bench-block: round {round} {name} {key}: {iops:.0} IOPS, {:.1} MiB/s",
                        kib / 1024.0
                    );
                    let r = results
                        .entry(key.clone())
                        .or_default()
                        .entry(name.clone())
                        .or_default();
                    r.iops.push(iops);
                    r.kib_s.push(kib);
                }
            }
        }
    }
    if !dropped {
        println!("# bench-block: the host page cache could not be dropped (not root)");
    }
    println!();
    println!(
        "{:<18} {:<7} {:<8} {:>10} {:>10} {:>10} {:>8}",
        "job", "host", "kernel", "IOPS", "min", "max", "vs c"
    );
    for (job, host_io) in args
        .host_io
        .iter()
        .flat_map(|h| JOBS.iter().map(move |j| (j, h)))
    {
        let Some(per) = results.get(&format!("{} {host_io}", job.name)) else {
            continue;
        };
        let anchor = per
            .get("c")
            .and_then(|k| summarize(&k.iops))
            .map(|s| s.median);
        for (name, _) in &kernels {
            let Some(s) = per.get(name).and_then(|k| summarize(&k.iops)) else {
                continue;
            };
            let ratio = anchor.map_or("-".to_string(), |a| format!("{:.2}", s.median / a));
            println!(
                "{:<18} {:<7} {:<8} {:>10.0} {:>10.0} {:>10.0} {:>8}",
                job.name, host_io, name, s.median, s.min, s.max, ratio
            );
        }
    }
    let json = if args.json.as_os_str().is_empty() {
        ctx.cache.join("bench-block.json")
    } else {
        args.json.clone()
    };
    let report = JsonReport {
        schema: "arch-um-rs-bench-block/2",
        runtime_s: args.runtime,
        rounds_done: args.rounds.max(1),
        caches_dropped: dropped,
        jobs: results,
    };
    fs::write(&json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    println!(
        "# bench-block: results in {} ({:.0} s)",
        json.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terse_fields() {
        let mut f = vec!["0"; 60];
        f[0] = "3";
        f[6] = "78701";
        f[7] = "19675";
        f[47] = "1024";
        f[48] = "1";
        let line = f.join(";");
        assert_eq!(parse_terse(&line, "read"), Some((19675.0, 78701.0)));
        assert_eq!(parse_terse(&line, "write"), Some((1.0, 1024.0)));
        assert_eq!(parse_terse("2;x", "read"), None);
        assert_eq!(parse_terse("3;fio", "read"), None);
    }

    #[test]
    fn results_are_found_amid_kernel_messages() {
        let console = "boot\n[ 1.0] x @@FIO seqread-1m 3;fio-3.33;seqread-1m\nrest";
        assert_eq!(
            find_result(console, "seqread-1m").as_deref(),
            Some("3;fio-3.33;seqread-1m")
        );
        assert_eq!(find_result(console, "randread-4k-qd1"), None);
    }

    #[test]
    fn script_names_the_job_and_the_host_tools() {
        let s = guest_script(&JOBS[1], 8);
        assert!(s.contains("--iodepth=32"));
        assert!(s.contains("--direct=1"));
        assert!(s.contains(&format!("/host{HOST_LOADER}")));
        assert!(s.contains("@@FIO randread-4k-qd32"));
        let s = guest_script(&JOBS[2], 8);
        assert!(
            s.contains("--iodepth=32 --iodepth_batch_submit=8 --iodepth_batch_complete_min=8 ")
        );
    }

    #[test]
    fn host_modes_map_to_ubd_flags() {
        let img = Path::new("/c/disk.img");
        assert_eq!(ubd_arg(img, "direct"), "ubd0o=/c/disk.img");
        assert_eq!(ubd_arg(img, "cached"), "ubd0=/c/disk.img");
    }
}
