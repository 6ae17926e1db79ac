// SPDX-License-Identifier: GPL-2.0
//! `uml-harness bench`: the in-guest microbenchmarks (`uml-guest bench all`)
//! on several kernels side by side, following DESIGN.md section 5.
//!
//! - Kernels are interleaved in rounds: round r boots each kernel once, in
//!   the order given (A B C A B C ...), so drift of the machine spreads over
//!   all of them.
//! - Every UML kernel is pinned to one host CPU; the `host` reference runs
//!   the same static binary natively, pinned to the same CPU.
//! - Per operation the table shows the median, min and max over the rounds
//!   (microseconds per operation) and the ratio of each median to the C
//!   kernel's. The samples and the summary go to a JSON file.
//! - Timings never fail the run. A kernel whose binary is missing is skipped
//!   with a note; a kernel that exists but cannot run the benchmark makes
//!   the command fail after the report.
//! - Rounds stop early once 5 minutes per 3 requested rounds are used up
//!   (the default run, 3 rounds, takes about 1.5 minutes).

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::boot::{self, BootSpec, Guest};
use crate::cli::BenchArgs;
use crate::paths::Ctx;

/// The guest program inside the initramfs.
const GUEST: &str = "/usr/bin/uml-guest";
/// The kernel the ratios refer to.
const ANCHOR: &str = "c";
/// Time budget per 3 requested rounds.
const BUDGET_PER_3_ROUNDS: Duration = Duration::from_secs(300);
/// Limit of one benchmark boot.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
/// Iteration scale of `--quick` (about 0.6 s of benchmarks per UML boot).
const QUICK_SCALE: f64 = 0.1;

/// What runs the benchmark.
#[derive(Debug, Clone)]
enum Target {
    /// A UML kernel binary.
    Uml(PathBuf),
    /// The guest program natively on the host.
    Host(PathBuf),
}

/// One kernel of the comparison.
#[derive(Debug, Clone, Serialize)]
struct KernelInfo {
    name: String,
    path: Option<PathBuf>,
    /// `ok`, `skipped` (binary missing) or `failed` (some run failed).
    status: String,
    notes: Vec<String>,
    /// Wall-clock seconds of each of its runs (boot included).
    run_seconds: Vec<f64>,
}

/// One `BENCH` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub op: String,
    pub iters: u64,
    pub ns_per_op: f64,
}

/// Parses the `BENCH op=... iters=... ns_per_op=...` lines of `text`.
pub fn parse_bench_lines(text: &str) -> Vec<Sample> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_end_matches('\r');
            let rest = &l[l.find("BENCH ")? + "BENCH ".len()..];
            let mut op = None;
            let mut iters = None;
            let mut ns = None;
            for kv in rest.split_whitespace() {
                match kv.split_once('=') {
                    Some(("op", v)) => op = Some(v.to_string()),
                    Some(("iters", v)) => iters = v.parse().ok(),
                    Some(("ns_per_op", v)) => ns = v.parse::<f64>().ok().filter(|x| x.is_finite()),
                    _ => {}
                }
            }
            Some(Sample {
                op: op?,
                iters: iters?,
                ns_per_op: ns?,
            })
        })
        .collect()
}

/// Median, min and max of a non-empty sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn summarize(xs: &[f64]) -> Option<Summary> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

#[derive(Debug, Serialize)]
struct OpKernel {
    samples_us: Vec<f64>,
    iters: Vec<u64>,
    median_us: f64,
    min_us: f64,
    max_us: f64,
    /// Median divided by the C kernel's median.
    ratio_to_c: Option<f64>,
}

#[derive(Debug, Serialize)]
struct OpReport {
    op: String,
    unit: &'static str,
    kernels: BTreeMap<String, OpKernel>,
}

#[derive(Debug, Serialize)]
struct JsonReport {
    schema: &'static str,
    unix_time: u64,
    host_kernel: String,
    cpu: Option<usize>,
    rounds_requested: usize,
    rounds_done: usize,
    quick: bool,
    iters_scale: f64,
    kernels: Vec<KernelInfo>,
    ops: Vec<OpReport>,
}

/// Runs the benchmark once on `target`; returns its samples.
fn run_once(ctx: &Ctx, target: &Target, cpu: Option<usize>, scale: f64) -> Result<Vec<Sample>> {
    let scale = format!("{scale}");
    let text = match target {
        Target::Uml(kernel) => {
            let cmd = ["bench", "all", "--iters-scale", &scale];
            let mut spec = BootSpec::new(
                kernel.clone(),
                std::iter::once(GUEST)
                    .chain(cmd)
                    .map(String::from)
                    .collect(),
            );
            spec.cpu = cpu;
            spec.extra_args = vec!["quiet".into()];
            spec.timeout = BOOT_TIMEOUT;
            spec.echo_console = false;
            let out = Guest::start(&spec, ctx)?.wait()?;
            if out.exit_code != 0 {
                bail!(
                    "uml-guest bench exited with status {}; console:\n{}",
                    out.exit_code,
                    boot::tail(&out.console, 15)
                );
            }
            out.console
        }
        Target::Host(bin) => {
            let mut c = Command::new(bin);
            c.args(["bench", "all", "--iters-scale", &scale]);
            if let Some(cpu) = cpu {
                c.args(["--cpu", &cpu.to_string()]);
            }
            let out = c
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("running {}", bin.display()))?;
            if !out.status.success() {
                bail!(
                    "{} bench all: {}: {}",
                    bin.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let samples = parse_bench_lines(&text);
    if samples.is_empty() {
        bail!("no BENCH lines in the output:\n{}", boot::tail(&text, 15));
    }
    Ok(samples)
}

fn host_kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `uml-harness bench`.
pub fn run(ctx: &Ctx, args: &BenchArgs) -> Result<()> {
    let rounds = if args.quick { 1 } else { args.rounds.max(1) };
    let scale = if args.quick { QUICK_SCALE } else { 1.0 };
    let budget = BUDGET_PER_3_ROUNDS * (rounds.div_ceil(3) as u32);
    // The CPU the harness pins kernels to by default; the host reference
    // runs on the same one.
    let cpu = BootSpec::new(PathBuf::new(), Vec::new()).cpu;

    // Resolve the kernels; missing ones are skipped with a note.
    let mut kernels: Vec<(KernelInfo, Option<Target>)> = Vec::new();
    for name in &args.kernels {
        let mut info = KernelInfo {
            name: name.clone(),
            path: None,
            status: "ok".into(),
            notes: Vec::new(),
            run_seconds: Vec::new(),
        };
        let target = if name == "host" {
            match crate::initramfs::guest_binary(ctx) {
                Ok(p) => Some(Target::Host(p)),
                Err(e) => {
                    info.notes.push(format!("{e:#}"));
                    None
                }
            }
        } else {
            match boot::kernel_path(ctx, name) {
                Ok(p) => Some(Target::Uml(p)),
                Err(e) => {
                    info.notes.push(format!("{e:#}"));
                    None
                }
            }
        };
        match &target {
            Some(Target::Uml(p) | Target::Host(p)) => info.path = Some(p.clone()),
            None => {
                info.status = "skipped".into();
                println!("# bench: skipping {name}: {}", info.notes.join("; "));
            }
        }
        kernels.push((info, target));
    }
    if kernels.iter().all(|(_, t)| t.is_none()) {
        bail!(
            "no kernel to benchmark (all of {} are missing)",
            args.kernels.join(", ")
        );
    }

    println!(
        "# bench: {} round(s), iteration scale {scale}, pinned to CPU {}",
        rounds,
        cpu.map_or("none".to_string(), |c| c.to_string())
    );
    // samples[kernel][op] = [(ns_per_op, iters)]
    let mut samples: Vec<BTreeMap<String, Vec<(f64, u64)>>> = vec![BTreeMap::new(); kernels.len()];
    let mut op_order: Vec<String> = Vec::new();
    let start = Instant::now();
    let mut rounds_done = 0;
    let mut last_round = Duration::ZERO;
    for r in 0..rounds {
        if r > 0 && start.elapsed() + last_round > budget {
            println!(
                "# bench: stopping after {r} round(s) to stay within {} s",
                budget.as_secs()
            );
            break;
        }
        let round_start = Instant::now();
        for (i, (info, target)) in kernels.iter_mut().enumerate() {
            let Some(target) = target else { continue };
            if let Some(sig) = crate::signals::interrupted() {
                bail!("interrupted by signal {sig}");
            }
            let t = Instant::now();
            let res = run_once(ctx, target, cpu, scale);
            let secs = t.elapsed().as_secs_f64();
            info.run_seconds.push(secs);
            match res {
                Ok(ss) => {
                    println!(
                        "# bench: round {}/{rounds} {}: {} ops in {secs:.1} s",
                        r + 1,
                        info.name,
                        ss.len()
                    );
                    for s in ss {
                        if !op_order.contains(&s.op) {
                            op_order.push(s.op.clone());
                        }
                        samples[i]
                            .entry(s.op)
                            .or_default()
                            .push((s.ns_per_op, s.iters));
                    }
                }
                Err(e) => {
                    info.status = "failed".into();
                    let msg = format!("round {}: {e:#}", r + 1);
                    println!("# bench: {} failed in {msg}", info.name);
                    info.notes.push(msg);
                }
            }
        }
        last_round = round_start.elapsed();
        rounds_done = r + 1;
    }

    // Tables.
    let anchor = kernels.iter().position(|(k, _)| k.name == ANCHOR);
    let mut ops = Vec::new();
    for op in &op_order {
        let anchor_median = anchor
            .and_then(|a| samples[a].get(op))
            .and_then(|v| summarize(&v.iter().map(|x| x.0 / 1e3).collect::<Vec<_>>()))
            .map(|s| s.median);
        println!();
        println!("{op} (us/op)");
        println!(
            "  {:<10} {:>12} {:>12} {:>12} {:>8} {:>8}",
            "kernel", "median", "min", "max", "samples", "vs c"
        );
        let mut rep = OpReport {
            op: op.clone(),
            unit: "us/op",
            kernels: BTreeMap::new(),
        };
        for (i, (info, _)) in kernels.iter().enumerate() {
            let Some(v) = samples[i].get(op) else {
                continue;
            };
            let us: Vec<f64> = v.iter().map(|x| x.0 / 1e3).collect();
            let Some(s) = summarize(&us) else { continue };
            let ratio = anchor_median.filter(|m| *m > 0.0).map(|m| s.median / m);
            println!(
                "  {:<10} {:>12.3} {:>12.3} {:>12.3} {:>8} {:>8}",
                info.name,
                s.median,
                s.min,
                s.max,
                us.len(),
                ratio.map_or("-".to_string(), |r| format!("{r:.2}"))
            );
            rep.kernels.insert(
                info.name.clone(),
                OpKernel {
                    samples_us: us,
                    iters: v.iter().map(|x| x.1).collect(),
                    median_us: s.median,
                    min_us: s.min,
                    max_us: s.max,
                    ratio_to_c: ratio,
                },
            );
        }
        ops.push(rep);
    }
    if anchor.is_none_or(|a| samples[a].is_empty()) {
        println!("\n# bench: no results for the C kernel: ratios are not available");
    }
    for (k, _) in &kernels {
        if k.status != "ok" {
            println!("# bench: {}: {}: {}", k.name, k.status, k.notes.join("; "));
        }
    }

    let report = JsonReport {
        schema: "arch-um-rs-bench/1",
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        host_kernel: host_kernel_release(),
        cpu,
        rounds_requested: rounds,
        rounds_done,
        quick: args.quick,
        iters_scale: scale,
        kernels: kernels.iter().map(|(k, _)| k.clone()).collect(),
        ops,
    };
    if let Some(dir) = args.json.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(&report)?;
    fs::write(&args.json, json + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!(
        "# bench: results in {} ({:.0} s)",
        args.json.display(),
        start.elapsed().as_secs_f64()
    );

    let failed: Vec<&str> = kernels
        .iter()
        .filter(|(k, _)| k.status == "failed")
        .map(|(k, _)| k.name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("the benchmark could not run on: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_lines() {
        let text = "\
[ 1.0] kernel noise
# getppid: getppid() system call (80000 per run)
BENCH op=getppid iters=80000 ns_per_op=12415.0 total_ns=993200000\r
BENCH op=pipe_pingpong iters=30000 ns_per_op=27518.9 total_ns=825567000
BENCH op=broken iters=x ns_per_op=1
BENCH op=nan iters=1 ns_per_op=NaN
";
        let s = parse_bench_lines(text);
        assert_eq!(
            s,
            vec![
                Sample {
                    op: "getppid".into(),
                    iters: 80000,
                    ns_per_op: 12415.0
                },
                Sample {
                    op: "pipe_pingpong".into(),
                    iters: 30000,
                    ns_per_op: 27518.9
                },
            ]
        );
    }

    #[test]
    fn summaries() {
        assert_eq!(summarize(&[]), None);
        assert_eq!(
            summarize(&[3.0]),
            Some(Summary {
                median: 3.0,
                min: 3.0,
                max: 3.0
            })
        );
        assert_eq!(
            summarize(&[5.0, 1.0, 3.0]),
            Some(Summary {
                median: 3.0,
                min: 1.0,
                max: 5.0
            })
        );
        assert_eq!(
            summarize(&[4.0, 1.0, 2.0, 3.0]),
            Some(Summary {
                median: 2.5,
                min: 1.0,
                max: 4.0
            })
        );
    }
}
