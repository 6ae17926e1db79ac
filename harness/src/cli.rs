// SPDX-License-Identifier: GPL-2.0
//! Command-line interface (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Builds, boots, tests and benchmarks User-Mode Linux kernels with the C and the Rust
/// host layer.
#[derive(Debug, Parser)]
#[command(name = "uml-harness", version, about, long_about = None)]
pub struct Cli {
    /// Cache directory [default: $ARCH_UM_RS_CACHE, $XDG_CACHE_HOME/arch-um-rs or
    /// ~/.cache/arch-um-rs].
    #[arg(long, global = true, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Kernel source tree to build from instead of the cached copy of
    /// /usr/src/linux-source-6.12.tar.xz [env: ARCH_UM_RS_KERNEL_SRC]. Must be 6.12.x.
    #[arg(long, global = true, value_name = "DIR")]
    pub kernel_src: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check (and as root install) the host packages, unpack the kernel source and apply
    /// the kernel-patches series.
    Setup(SetupArgs),
    /// Build a UML kernel (C or Rust host layer); prints the path of the kernel last.
    Build(BuildArgs),
    /// Boot a kernel with the harness initramfs and run CMD in it; exits with CMD's status.
    Run(RunArgs),
    /// Check which object defines every os-layer symbol of the migrated C files.
    VerifyLink(VerifyLinkArgs),
    /// Build (if needed) the initramfs and print its path.
    Initramfs,
    /// Show that the kernel build's ABI guard rejects a wrong Rust layout (needs a rust
    /// build).
    AbiGuardSelftest,
    /// Show that the kernel build's stub check rejects a stub that refers outside its
    /// page (needs a rust build).
    StubCheckSelftest,
    /// Run the host checks a UML kernel makes before it boots (ptrace, PTRACE_SYSEMU,
    /// PROT_EXEC physical memory, ...) and print them as a table; exits 1, with the
    /// reasons, if UML cannot run here.
    Hostcheck,
    /// Run the in-guest test suites.
    Test(TestArgs),
    /// Run the kernel's KUnit suite (kunit.py) on the C and the Rust kernel and compare
    /// the results.
    Kunit(KunitArgs),
    /// Run the benchmarks.
    Bench(BenchArgs),
    /// Run fio in the guest on a ubd disk (random 4 KiB reads at queue depth 1
    /// and 32, sequential 1 MiB reads and writes), kernels interleaved.
    BenchBlock(BenchBlockArgs),
    /// Network throughput (iperf3 over the vector driver's tap and raw
    /// transports, both directions) and mconsole `version` latency, kernels
    /// interleaved; needs root.
    BenchNet(BenchNetArgs),
    /// The main job: setup, build both kernels, verify the link, run the guest
    /// suite on the Rust kernel and print the benchmark table.
    Demo(BenchArgs),
    /// Run a libFuzzer target of fuzz/ (cargo-fuzz, nightly) for a while; exits 1
    /// and prints the saved input if it crashes.
    Fuzz(FuzzArgs),
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Only check the host packages; do not install them, do not touch the kernel source.
    #[arg(long)]
    pub check_only: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Which host layer: c or rust.
    #[arg(long, value_parser = ["c", "rust"])]
    pub os: String,
    /// Parallel make jobs [default: number of CPUs + 1].
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Kernel: c, rust (<cache>/build/<os>/linux), debian (Debian's linux.uml) or a path.
    #[arg(long, default_value = "rust")]
    pub os: String,
    /// Guest memory (mem=).
    #[arg(long, default_value = "256M")]
    pub mem: String,
    /// Host CPU to pin the kernel (and so all its host processes) to [default: the first
    /// CPU the harness may run on].
    #[arg(long, conflicts_with = "no_pin")]
    pub cpu: Option<usize>,
    /// Do not pin the kernel to one CPU (much slower and noisier, see DESIGN.md).
    #[arg(long)]
    pub no_pin: bool,
    /// Seconds until the harness gives up on the guest (boot plus CMD).
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Block device image, passed as ubd0=, ubd1=, ... in order. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub ubd: Vec<PathBuf>,
    /// Host directory that hostfs mounts expose (hostfs=DIR).
    #[arg(long, value_name = "DIR")]
    pub hostfs: Option<PathBuf>,
    /// Extra kernel command-line argument. Repeatable.
    #[arg(long = "karg", value_name = "ARG")]
    pub kargs: Vec<String>,
    /// Show the kernel boot log (the default boots with `quiet`).
    #[arg(long)]
    pub boot_log: bool,
    /// Command run in the guest (after `--`), e.g. `-- /bin/sh -c 'uname -a'`.
    /// Default: `uname -a`.
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VerifyLinkArgs {
    /// Which build to check: rust (the default) or c (report only).
    #[arg(long, default_value = "rust", value_parser = ["c", "rust"])]
    pub os: String,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Kernels to test (comma-separated or repeated): c, rust, debian or a path.
    #[arg(long, value_delimiter = ',', default_value = "rust")]
    pub os: Vec<String>,
    /// Run only the cases whose name starts with PREFIX (comma-separated or
    /// repeated), among the host cases that boot a kernel of their own
    /// (e.g. `host_ubd_`); the main guest-suite boot is then skipped.
    #[arg(long, value_delimiter = ',', value_name = "PREFIX")]
    pub only: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KunitArgs {
    /// Kernels to run KUnit on (comma-separated or repeated): c, rust. Each has its own
    /// build directory <cache>/build/kunit-<os>.
    #[arg(long, value_delimiter = ',', default_value = "c,rust", value_parser = ["c", "rust"])]
    pub os: Vec<String>,
    /// Parallel make jobs (kunit.py --jobs) [default: number of CPUs + 1].
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// The arch-um-rs crate the Rust kernel is built from [default: <repo>/arch-um-rs].
    #[arg(long, value_name = "DIR")]
    pub crate_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Rounds per kernel (kernels are interleaved A B A B ...).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Where to write the JSON results [default: <cache>/bench.json].
    #[arg(long, default_value = "", hide_default_value = true, value_parser = any_path)]
    pub json: PathBuf,
    /// Kernels to compare (comma-separated): c, rust, debian, host or a path.
    #[arg(long, value_delimiter = ',', default_value = "c,rust,debian,host")]
    pub kernels: Vec<String>,
    /// Fewer iterations, for a quick look.
    #[arg(long)]
    pub quick: bool,
}

#[derive(Debug, Args)]
pub struct BenchBlockArgs {
    /// Rounds (each job on each kernel once per round, interleaved).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seconds of each fio job.
    #[arg(long, default_value_t = 8)]
    pub runtime: u32,
    /// Kernels to compare (comma-separated): c, rust, debian or a path.
    #[arg(long, value_delimiter = ',', default_value = "c,rust")]
    pub kernels: Vec<String>,
    /// How the host does the image's I/O (comma-separated): `direct` (ubd
    /// flag `o`, O_DIRECT around the host's page cache) and `cached`.
    #[arg(long, value_delimiter = ',', default_value = "direct,cached",
          value_parser = ["direct", "cached"])]
    pub host_io: Vec<String>,
    /// Where to write the JSON results [default: <cache>/bench-block.json].
    #[arg(long, default_value = "", hide_default_value = true, value_parser = any_path)]
    pub json: PathBuf,
}

#[derive(Debug, Args)]
pub struct BenchNetArgs {
    /// Rounds (each kernel booted once per round, interleaved).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seconds of each iperf3 test (four per boot).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=600))]
    pub seconds: u32,
    /// mconsole `version` requests timed per boot.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub requests: u32,
    /// Kernels to compare (comma-separated): c, rust, debian or a path.
    #[arg(long, value_delimiter = ',', default_value = "c,rust")]
    pub kernels: Vec<String>,
    /// Where to write the JSON results [default: <cache>/bench-net.json].
    #[arg(long, default_value = "", hide_default_value = true, value_parser = any_path)]
    pub json: PathBuf,
}

#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// The target: a file name of fuzz/fuzz_targets/ without `.rs` (e.g. cow_header).
    pub target: String,
    /// How long to fuzz (libFuzzer -max_total_time), not counting the build.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: u64,
}

/// A path, empty allowed (clap's own PathBuf parser refuses "", our "use the default").
fn any_path(s: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_cmd_after_dashes() {
        let cli = Cli::try_parse_from([
            "uml-harness",
            "run",
            "--os",
            "debian",
            "--ubd",
            "a.img",
            "--ubd",
            "b.img",
            "--",
            "/bin/sh",
            "-c",
            "exit 3",
        ])
        .unwrap();
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert_eq!(r.os, "debian");
        assert_eq!(r.cmd, ["/bin/sh", "-c", "exit 3"]);
        assert_eq!(r.ubd.len(), 2);
        assert_eq!(r.mem, "256M");
    }

    #[test]
    fn hostcheck_takes_no_arguments() {
        let cli = Cli::try_parse_from(["uml-harness", "hostcheck"]).unwrap();
        assert!(matches!(cli.command, Command::Hostcheck));
        assert!(Cli::try_parse_from(["uml-harness", "hostcheck", "--forbid-ptrace"]).is_err());
    }

    #[test]
    fn kunit_defaults_and_options() {
        let cli = Cli::try_parse_from(["uml-harness", "kunit"]).unwrap();
        let Command::Kunit(k) = cli.command else {
            panic!("not kunit")
        };
        assert_eq!(k.os, ["c", "rust"]);
        assert_eq!(k.jobs, None);
        assert_eq!(k.crate_dir, None);
        let cli = Cli::try_parse_from([
            "uml-harness",
            "kunit",
            "--os",
            "rust",
            "--jobs=2",
            "--crate-dir",
            "/tmp/w/arch-um-rs",
        ])
        .unwrap();
        let Command::Kunit(k) = cli.command else {
            panic!("not kunit")
        };
        assert_eq!(k.os, ["rust"]);
        assert_eq!(k.jobs, Some(2));
        assert_eq!(k.crate_dir, Some(PathBuf::from("/tmp/w/arch-um-rs")));
        assert!(Cli::try_parse_from(["uml-harness", "kunit", "--os", "debian"]).is_err());
    }

    #[test]
    fn fuzz_takes_a_target_and_seconds() {
        let cli = Cli::try_parse_from(["uml-harness", "fuzz", "cow_header"]).unwrap();
        let Command::Fuzz(f) = cli.command else {
            panic!("not fuzz")
        };
        assert_eq!((f.target.as_str(), f.seconds), ("cow_header", 60));
        let cli =
            Cli::try_parse_from(["uml-harness", "fuzz", "cow_header", "--seconds", "300"]).unwrap();
        let Command::Fuzz(f) = cli.command else {
            panic!("not fuzz")
        };
        assert_eq!(f.seconds, 300);
        assert!(Cli::try_parse_from(["uml-harness", "fuzz"]).is_err());
        // -max_total_time=0 would be "forever".
        assert!(Cli::try_parse_from(["uml-harness", "fuzz", "cow_header", "--seconds=0"]).is_err());
    }

    #[test]
    fn bench_net_options() {
        let cli = Cli::try_parse_from(["uml-harness", "bench-net"]).unwrap();
        let Command::BenchNet(b) = cli.command else {
            panic!("not bench-net")
        };
        assert_eq!((b.rounds, b.seconds, b.requests), (3, 5, 2000));
        assert_eq!(b.kernels, ["c", "rust"]);
        assert!(b.json.as_os_str().is_empty());
        let cli = Cli::try_parse_from([
            "uml-harness",
            "bench-net",
            "--rounds",
            "5",
            "--seconds=2",
            "--requests",
            "100",
            "--kernels",
            "rust",
        ])
        .unwrap();
        let Command::BenchNet(b) = cli.command else {
            panic!("not bench-net")
        };
        assert_eq!((b.rounds, b.seconds, b.requests), (5, 2, 100));
        assert_eq!(b.kernels, ["rust"]);
        assert!(Cli::try_parse_from(["uml-harness", "bench-net", "--seconds", "0"]).is_err());
        assert!(Cli::try_parse_from(["uml-harness", "bench-net", "--requests=0"]).is_err());
    }

    #[test]
    fn test_and_bench_defaults() {
        let cli = Cli::try_parse_from(["uml-harness", "test"]).unwrap();
        let Command::Test(t) = cli.command else {
            panic!()
        };
        assert_eq!(t.os, ["rust"]);
        assert!(t.only.is_empty());
        let cli = Cli::try_parse_from(["uml-harness", "bench"]).unwrap();
        let Command::Bench(b) = cli.command else {
            panic!()
        };
        assert_eq!(b.rounds, 3);
        assert_eq!(b.kernels, ["c", "rust", "debian", "host"]);
        assert!(b.json.as_os_str().is_empty());
        let cli = Cli::try_parse_from(["uml-harness", "test", "--os", "c,rust"]).unwrap();
        let Command::Test(t) = cli.command else {
            panic!()
        };
        assert_eq!(t.os, ["c", "rust"]);
        let cli = Cli::try_parse_from([
            "uml-harness",
            "test",
            "--os",
            "/tmp/k/linux",
            "--only",
            "host_ubd_,host_net",
            "--only=host_halt",
        ])
        .unwrap();
        let Command::Test(t) = cli.command else {
            panic!()
        };
        assert_eq!(t.os, ["/tmp/k/linux"]);
        assert_eq!(t.only, ["host_ubd_", "host_net", "host_halt"]);
    }
}
