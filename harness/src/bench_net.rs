// SPDX-License-Identifier: GPL-2.0
//! `uml-harness bench-net`: network throughput and management-console
//! latency, C and Rust kernels interleaved (DESIGN.md section 5).
//!
//! Each (round, kernel) is one boot in a network namespace of its own
//! ([`crate::net::NetNs`]) with two vector devices: `vec0` on a tap device
//! (`transport=tap,depth=128,gro=1`) and `vec1` on one end of a veth pair
//! (`transport=raw,depth=128,gro=1`), the host's address on the tap and on
//! the other veth end. The kernel is pinned to one CPU as in `bench`; the
//! host's iperf3 server, and the harness thread timing the console, to
//! another one when there is one, so that they do not take the kernel's.
//!
//! In the guest, the host's iperf3 client (see [`crate::iperf`]) runs for
//! `--seconds` each: guest to host and `-R` over the tap, then over the
//! veth. The figure is the receiver's rate.
//!
//! The console's latency is measured after each round's network boots,
//! with every kernel booted at once, idle, on the same CPU. One harness
//! thread sends `--requests` mconsole `version` requests to each, one at a
//! time over the console's Unix datagram socket, timing each from send to
//! reply: [`BLOCK`] to one kernel, then [`BLOCK`] to the next, the order
//! reversed every block. The figure is the median of each kernel's
//! requests. Requests to separate boots differed by up to a fifth from
//! boot to boot (how the host and the hypervisor happened to wake the
//! idle CPU); alternating in blocks within one period of time makes both
//! kernels see the same conditions.
//!
//! The table shows per figure the median, min and max over the rounds and
//! the ratio of each kernel's median to the C kernel's (throughput: higher
//! is better; latency: lower is). Timings never fail the run; a boot whose
//! tests fail does.

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::bench::summarize;
use crate::boot::{self, BootSpec, Guest};
use crate::cli::BenchNetArgs;
use crate::iperf;
use crate::mconsole;
use crate::net::{self, Link, NetNs};
use crate::paths::Ctx;

/// The veth subnet's addresses (the tap uses [`net::HOST_ADDR`] and
/// [`net::GUEST_ADDR`]).
const RAW_HOST: Ipv4Addr = Ipv4Addr::new(10, 199, 2, 1);
const RAW_GUEST: Ipv4Addr = Ipv4Addr::new(10, 199, 2, 2);
/// What the console phase's guests print when they are up.
const IDLE: &str = "@@NET idle";
/// Requests in a row to one kernel in the console phase.
const BLOCK: u32 = 100;

/// The iperf3 tests of one boot: report name, server address, `-R`, and
/// the figure's name in the table.
const TESTS: &[(&str, Ipv4Addr, bool, &str)] = &[
    ("tap-up", net::HOST_ADDR, false, "tap guest->host"),
    ("tap-down", net::HOST_ADDR, true, "tap host->guest"),
    ("raw-up", RAW_HOST, false, "raw guest->host"),
    ("raw-down", RAW_HOST, true, "raw host->guest"),
];
/// The latency figure's name.
const MCONSOLE: &str = "mconsole version";

/// The guest's script.
fn guest_script(out: &Path, secs: u32) -> String {
    let mut s = format!(
        "set -e; ifconfig vec0 {} netmask 255.255.255.0 up; \
         ifconfig vec1 {RAW_GUEST} netmask 255.255.255.0 up; \
         ping -c 2 -W 5 {} >/dev/null; ping -c 2 -W 5 {RAW_HOST} >/dev/null; ",
        net::GUEST_ADDR,
        net::HOST_ADDR
    );
    s.push_str(&iperf::guest_setup(out));
    for (name, server, reverse, _) in TESTS {
        s.push_str(&iperf::guest_run(name, *server, secs, *reverse));
    }
    s
}

/// The unit of a figure.
fn unit(figure: &str) -> &'static str {
    if figure == MCONSOLE { "us" } else { "Mbit/s" }
}

/// What one boot measured: figure name to value.
type Sample = BTreeMap<String, f64>;

/// The median of per-request latencies, in microseconds.
fn median_us(lat: &[Duration]) -> Option<f64> {
    let us: Vec<f64> = lat.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    summarize(&us).map(|s| s.median)
}

/// Times `n` `version` requests to each console of `socks`, one at a time,
/// in blocks of [`BLOCK`] per console, the order of the consoles reversed
/// every block. The latencies per console, in the order of `socks`.
fn time_mconsoles(socks: &[PathBuf], n: u32, cpu: Option<usize>) -> Result<Vec<Vec<Duration>>> {
    let dir = tempfile::Builder::new()
        .prefix("uml-bench-net-")
        .tempdir()
        .context("creating the mconsole client's directory")?;
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(cpu) = cpu {
                let set = crate::sys::single_cpu_set(cpu)?;
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
                    .context("pinning the mconsole client")?;
            }
            let c = mconsole::Client::bind(dir.path(), "client")?;
            let wait = Duration::from_secs(5);
            let ask = |sock: &Path, i: u32| -> Result<()> {
                let r = c.ask(sock, "version", wait)?;
                match r.as_slice() {
                    [r] if r.err == 0 && r.text.starts_with(b"Linux") => Ok(()),
                    _ => bail!(
                        "mconsole `version` request {i} to {} answered {r:?}",
                        sock.display()
                    ),
                }
            };
            // One untimed request each: the reply must be a version.
            for sock in socks {
                ask(sock, 0)?;
            }
            let mut lat = vec![Vec::with_capacity(n as usize); socks.len()];
            let mut done = 0;
            let mut block = 0;
            while done < n {
                let count = BLOCK.min(n - done);
                let order: Vec<usize> = if block % 2 == 0 {
                    (0..socks.len()).collect()
                } else {
                    (0..socks.len()).rev().collect()
                };
                for k in order {
                    for i in done..done + count {
                        let t = Instant::now();
                        ask(&socks[k], i + 1)?;
                        lat[k].push(t.elapsed());
                    }
                }
                done += count;
                block += 1;
            }
            Ok(lat)
        })
        .join()
        .unwrap_or_else(|_| bail!("the mconsole timing thread panicked"))
    })
}

/// The console phase of round `round`: every kernel booted at once, idle,
/// on the kernels' CPU; their median `version` round trips in
/// microseconds, in the order of `kernels`.
///
/// Two boots of the same kernel side by side differed by up to 1%, the
/// first or the second booted being the faster one, so the boot order is
/// reversed every other round.
fn console_round(
    ctx: &Ctx,
    round: usize,
    kernels: &[(String, PathBuf)],
    args: &BenchNetArgs,
    (uml_cpu, host_cpu): (Option<usize>, Option<usize>),
) -> Result<Vec<f64>> {
    let mut order: Vec<usize> = (0..kernels.len()).collect();
    if round % 2 == 0 {
        order.reverse();
    }
    let mut guests = Vec::new();
    for &k in &order {
        let (name, kernel) = &kernels[k];
        let mut spec = BootSpec::new(
            kernel.clone(),
            vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("echo {IDLE}; exec sleep 100000"),
            ],
        );
        spec.cpu = uml_cpu;
        spec.extra_args = vec!["quiet".into()];
        // Ended by `stop` below; the timeout only bounds the boot.
        spec.timeout = Duration::from_secs(180);
        let mut guest =
            Guest::start(&spec, ctx).with_context(|| format!("booting kernel {name}"))?;
        guest
            .wait_for_console(IDLE, spec.timeout)
            .with_context(|| format!("booting kernel {name}"))?;
        guests.push(guest);
    }
    // The sockets in the order of `kernels`.
    let mut socks = vec![PathBuf::new(); kernels.len()];
    for (g, &k) in guests.iter().zip(&order) {
        socks[k] = g.umid_dir().join("mconsole");
    }
    let lat = time_mconsoles(&socks, args.requests, host_cpu);
    for g in guests {
        g.stop()?;
    }
    lat?.iter()
        .zip(kernels)
        .map(|(l, (name, _))| {
            median_us(l).with_context(|| format!("no mconsole requests timed on {name}"))
        })
        .collect()
}

/// One boot: the iperf3 tests.
fn one_boot(
    ctx: &Ctx,
    kernel: &Path,
    args: &BenchNetArgs,
    cpus: (Option<usize>, Option<usize>),
) -> Result<Sample> {
    let mut ns = NetNs::create("bench")?;
    let r = boot_in(ctx, kernel, args, cpus, &ns);
    let deleted = ns.delete();
    let r = r?;
    deleted?;
    Ok(r)
}

fn boot_in(
    ctx: &Ctx,
    kernel: &Path,
    args: &BenchNetArgs,
    (uml_cpu, host_cpu): (Option<usize>, Option<usize>),
    ns: &NetNs,
) -> Result<Sample> {
    let tap = Link::tap(ns, net::TAP, net::HOST_ADDR)?;
    let veth = Link::veth(ns, net::VETH_HOST, net::VETH_UML, RAW_HOST)?;
    let out = tempfile::Builder::new()
        .prefix("uml-bench-net-")
        .tempdir()
        .context("creating the iperf3 report directory")?;
    let server = iperf::Server::start(ns, host_cpu)?;
    let mut spec = BootSpec::new(
        kernel.to_path_buf(),
        vec![
            "/bin/sh".into(),
            "-c".into(),
            guest_script(out.path(), args.seconds),
        ],
    );
    spec.cpu = uml_cpu;
    spec.netns = Some(ns.path());
    spec.extra_args = vec![
        "quiet".into(),
        format!("vec0:transport=tap,ifname={},depth=128,gro=1", net::TAP),
        format!(
            "vec1:transport=raw,ifname={},depth=128,gro=1",
            net::VETH_UML
        ),
    ];
    let run_time = Duration::from_secs(u64::from(args.seconds + 5) * TESTS.len() as u64);
    spec.timeout = run_time + Duration::from_secs(180);
    let outcome = Guest::start(&spec, ctx)?.wait()?;
    if outcome.exit_code != 0 {
        bail!(
            "the guest's script exited with status {}\n{}",
            outcome.exit_code,
            boot::tail(&outcome.console, 20)
        );
    }
    let (runs, errors) = server.finish()?;
    if !errors.is_empty() {
        bail!("the host's iperf3 server reported: {}", errors.join("; "));
    }
    if runs.len() != TESTS.len() {
        bail!(
            "the host's iperf3 server ran {} tests, expected {}",
            runs.len(),
            TESTS.len()
        );
    }
    for mut link in [tap, veth] {
        link.delete()?;
    }
    let mut sample = Sample::new();
    for ((name, _, _, figure), s) in TESTS.iter().zip(&runs) {
        let c = iperf::read_client(out.path(), name)?;
        iperf::check_pair(figure, &c, s, 1)?;
        sample.insert(figure.to_string(), c.receiver_bps / 1e6);
    }
    Ok(sample)
}

#[derive(Debug, Serialize)]
struct FigureKernel {
    samples: Vec<f64>,
    median: f64,
    min: f64,
    max: f64,
    /// Median divided by the C kernel's median.
    ratio_to_c: Option<f64>,
}

#[derive(Debug, Serialize)]
struct JsonReport {
    schema: &'static str,
    seconds: u32,
    requests: u32,
    rounds_done: usize,
    uml_cpu: Option<usize>,
    host_cpu: Option<usize>,
    /// Figure, its unit, and per kernel the samples and summary.
    figures: BTreeMap<String, (String, BTreeMap<String, FigureKernel>)>,
}

/// All figures in table order.
fn figures() -> impl Iterator<Item = &'static str> {
    TESTS.iter().map(|t| t.3).chain(std::iter::once(MCONSOLE))
}

/// The samples of each figure per kernel, summarized; kernels in `order`.
fn summarize_all(
    samples: &BTreeMap<String, Vec<Sample>>,
    order: &[String],
) -> BTreeMap<String, (String, BTreeMap<String, FigureKernel>)> {
    let mut out = BTreeMap::new();
    for fig in figures() {
        let per: BTreeMap<String, Vec<f64>> = order
            .iter()
            .map(|k| {
                let v = samples
                    .get(k)
                    .map(|s| s.iter().filter_map(|x| x.get(fig).copied()).collect())
                    .unwrap_or_default();
                (k.clone(), v)
            })
            .collect();
        let anchor = per.get("c").and_then(|v| summarize(v)).map(|s| s.median);
        let mut kernels = BTreeMap::new();
        for (k, v) in per {
            if let Some(s) = summarize(&v) {
                kernels.insert(
                    k,
                    FigureKernel {
                        samples: v,
                        median: s.median,
                        min: s.min,
                        max: s.max,
                        ratio_to_c: anchor.filter(|a| *a > 0.0).map(|a| s.median / a),
                    },
                );
            }
        }
        out.insert(fig.to_string(), (unit(fig).to_string(), kernels));
    }
    out
}

/// The table's lines.
fn table(
    sum: &BTreeMap<String, (String, BTreeMap<String, FigureKernel>)>,
    order: &[String],
) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<18} {:<7} {:<8} {:>10} {:>10} {:>10} {:>8}",
        "figure", "unit", "kernel", "median", "min", "max", "vs c"
    )];
    for fig in figures() {
        let Some((unit, per)) = sum.get(fig) else {
            continue;
        };
        for k in order {
            let Some(f) = per.get(k) else {
                continue;
            };
            let ratio = f.ratio_to_c.map_or("-".to_string(), |r| format!("{r:.2}"));
            lines.push(format!(
                "{fig:<18} {unit:<7} {k:<8} {:>10.1} {:>10.1} {:>10.1} {ratio:>8}",
                f.median, f.min, f.max
            ));
        }
    }
    lines
}

/// The CPU for the kernel (the first this process may use) and another one
/// for the host's side, if there is one.
fn cpus() -> Result<(Option<usize>, Option<usize>)> {
    let allowed = crate::sys::allowed_cpus()?;
    let uml = allowed.first().copied();
    let host = allowed.iter().copied().find(|c| Some(*c) != uml);
    Ok((uml, host))
}

/// `uml-harness bench-net`.
pub fn run(ctx: &Ctx, args: &BenchNetArgs) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("bench-net needs root: it creates a network namespace, a tap and a veth pair");
    }
    iperf::require()?;
    let kernels: Vec<(String, PathBuf)> = args
        .kernels
        .iter()
        .map(|k| Ok((k.clone(), boot::kernel_path(ctx, k)?)))
        .collect::<Result<_>>()?;
    // Build (or find) the initramfs outside any namespace: it may run cargo.
    crate::initramfs::ensure(ctx)?;
    let cpus = cpus()?;
    println!(
        "# bench-net: UML on CPU {}, the host's iperf3 server and mconsole client on {}; \
         iperf3 {} s per test; {} mconsole requests per kernel and round, all kernels booted \
         at once, in blocks of {BLOCK}",
        cpus.0.map_or("any".into(), |c| c.to_string()),
        cpus.1.map_or("any".into(), |c| c.to_string()),
        args.seconds,
        args.requests
    );
    let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    let t0 = Instant::now();
    for round in 1..=args.rounds.max(1) {
        for (name, kernel) in &kernels {
            let s = one_boot(ctx, kernel, args, cpus)
                .with_context(|| format!("round {round}, kernel {name}"))?;
            samples.entry(name.clone()).or_default().push(s);
        }
        let lat = console_round(ctx, round, &kernels, args, cpus)
            .with_context(|| format!("round {round}, the console phase"))?;
        for ((name, _), us) in kernels.iter().zip(lat) {
            let Some(s) = samples.get_mut(name).and_then(|v| v.last_mut()) else {
                continue;
            };
            s.insert(MCONSOLE.to_string(), us);
            let line: Vec<String> = figures()
                .filter_map(|f| s.get(f).map(|v| format!("{f} {v:.1} {}", unit(f))))
                .collect();
            println!("# bench-net: round {round} {name}: {}", line.join(", "));
        }
    }
    let order: Vec<String> = kernels.iter().map(|(n, _)| n.clone()).collect();
    let sum = summarize_all(&samples, &order);
    println!();
    for l in table(&sum, &order) {
        println!("{l}");
    }
    let json = if args.json.as_os_str().is_empty() {
        ctx.cache.join("bench-net.json")
    } else {
        args.json.clone()
    };
    let report = JsonReport {
        schema: "arch-um-rs-bench-net/1",
        seconds: args.seconds,
        requests: args.requests,
        rounds_done: args.rounds.max(1),
        uml_cpu: cpus.0,
        host_cpu: cpus.1,
        figures: sum,
    };
    fs::write(&json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    println!(
        "# bench-net: results in {} ({:.0} s)",
        json.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_runs_every_test_and_fits_the_command_line() {
        let s = guest_script(Path::new("/tmp/uml-bench-net-XXXXXX"), 5);
        for (name, server, reverse, _) in TESTS {
            let r = if *reverse { " -R" } else { "" };
            assert!(
                s.contains(&format!("ipf -c {server} -t 5{r} >/out/{name}.json")),
                "{s}"
            );
        }
        assert!(s.ends_with(">/out/raw-down.json || { cat /out/raw-down.json; exit 21; }; "));
        let cmd = vec!["/bin/sh".to_string(), "-c".to_string(), s];
        let enc = crate::protocol::encode_cmd(&cmd).unwrap();
        assert!(enc.len() < 3400, "{}", enc.len());
    }

    #[test]
    fn latency_median() {
        let lat: Vec<Duration> = [30, 10, 20, 1000]
            .iter()
            .map(|&u| Duration::from_micros(u))
            .collect();
        assert_eq!(median_us(&lat), Some(25.0));
        assert_eq!(median_us(&[]), None);
    }

    #[test]
    fn summary_and_table() {
        let mk = |tap: f64, mc: f64| {
            let mut s = Sample::new();
            s.insert("tap guest->host".into(), tap);
            s.insert(MCONSOLE.into(), mc);
            s
        };
        let mut samples = BTreeMap::new();
        samples.insert("c".to_string(), vec![mk(100.0, 50.0), mk(300.0, 70.0)]);
        samples.insert(
            "rust".to_string(),
            vec![mk(250.0, 40.0), mk(150.0, 20.0), mk(400.0, 30.0)],
        );
        let order = vec!["c".to_string(), "rust".to_string()];
        let sum = summarize_all(&samples, &order);
        let (u, tap) = &sum["tap guest->host"];
        assert_eq!(u, "Mbit/s");
        assert_eq!(tap["c"].median, 200.0);
        assert_eq!(tap["rust"].median, 250.0);
        assert_eq!((tap["rust"].min, tap["rust"].max), (150.0, 400.0));
        assert_eq!(tap["rust"].ratio_to_c, Some(1.25));
        let (u, mc) = &sum[MCONSOLE];
        assert_eq!(u, "us");
        assert_eq!(mc["rust"].ratio_to_c, Some(0.5));
        // Figures nobody measured have no kernels and no lines.
        assert!(sum["raw host->guest"].1.is_empty());
        let t = table(&sum, &order);
        assert_eq!(t.len(), 5, "{t:#?}");
        assert!(t[0].starts_with("figure"));
        assert!(t[1].starts_with("tap guest->host    Mbit/s  c"), "{}", t[1]);
        assert!(t[2].ends_with("    1.25"), "{}", t[2]);
        assert!(
            t[4].starts_with("mconsole version   us      rust"),
            "{}",
            t[4]
        );
        assert!(t[4].ends_with("    0.50"), "{}", t[4]);
    }
}
