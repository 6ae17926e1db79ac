// SPDX-License-Identifier: GPL-2.0
//! `uml-harness test`: boots each kernel with the in-guest suite
//! (`tests/guest`, `uml-guest test`) and checks the guest from the host while
//! it runs and after it halted.
//!
//! Per kernel:
//! 1. Host preparation in a temporary directory: a hostfs directory holding
//!    a data file of known content, and a sparse 64 MiB ubd image with a
//!    known pattern at 32 MiB. Seeds are fresh for every run, so stale files
//!    from an earlier run can never pass.
//! 2. Boot with the payload `uml-guest test --hostfs-dir / ... --host-sync
//!    go`. The guest runs its cases, prints `@@READY-FOR-HOST-CHECKS` and
//!    waits for the file `go` in the hostfs directory.
//! 3. Meanwhile the host checks the umid directory (`pid` file with the
//!    kernel's pid, `mconsole` socket) and asks the management console for
//!    its version with `uml_mconsole`; then it creates `go`.
//! 4. After the payload's exit marker: the kernel process exits by itself
//!    and its umid directory is gone; none of its host processes (recorded
//!    while it ran) survives and nothing holds its memory file
//!    (`host_exit_no_leftovers`, see [`crate::teardown`]); the ubd image holds
//!    the guest's pattern; the hostfs files written by the guest have the
//!    expected content; every line the guest's `console_heavy` case wrote
//!    reached the console once, in order and intact (`host_console_heavy`).
//! 5. Three short boots check the same after an mconsole `halt`, across an
//!    mconsole `reboot`, and after a guest panic (`host_halt_no_leftovers`,
//!    `host_reboot_no_leftovers`, `host_panic_no_leftovers`).
//! 6. On the Rust kernel, three short boots check where physical memory
//!    goes (see [`crate::physmem`]); on both, four more boots check the
//!    network transports, each in a network namespace of its own: pings, a
//!    TCP round trip and iperf3 both ways (`host_net_tuntap` for the legacy
//!    driver, `host_net_vector_tap`, `host_net_vector_raw` and
//!    `host_net_vector_l2tpv3` for the vector driver, see [`crate::net`]).
//! 7. Eleven short boots check the block driver (ubd) as the UML HOWTO
//!    describes it: ext4, COW files, read-only devices, odd sizes, TRIM,
//!    hot-plug, host I/O errors, sync before halt (`host_ubd_*`, see
//!    [`crate::block`]).
//! 8. Five short boots check the management console as the UML HOWTO
//!    describes it: every command through `uml_mconsole`, notifications,
//!    the datagram protocol with malformed packets, requests from another uid
//!    (`host_mconsole_*`, see [`crate::mconsole`]).
//! 9. One boot checks the console and serial line channels (`host_chan_*`,
//!    see [`crate::chan`]); two check hostfs both ways, its `append` mode
//!    and the confinement of `hostfs=DIR` (`host_hostfs_*`, see
//!    [`crate::hostfs`]); one the real-time clock's alarm and the
//!    hardware watchdog's helper (`host_rtc_alarm`, `host_harddog*`, see
//!    [`crate::rtcdog`]).
//!
//! With `--only PREFIX`, the main boot (steps 1 to 4) is skipped and only the
//! cases of steps 5 to 9 whose names start with a PREFIX run.
//!
//! The console is echoed live. After each kernel one KTAP v1 stream reports
//! the guest's own cases (parsed from the console) and the host checks;
//! the run ends with the line `N passed, N failed, N skipped`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::block;
use crate::boot::{self, BootSpec, Guest};
use crate::chan;
use crate::chan_helper;
use crate::cli::TestArgs;
use crate::hostfs;
use crate::mconsole;
use crate::net;
use crate::paths::Ctx;
use crate::physmem;
use crate::rtcdog;
use crate::teardown;

// The guest's byte patterns and storage protocol, compiled from the guest's
// own sources so that both sides share one definition.
#[path = "../../tests/guest/src/pattern.rs"]
pub(crate) mod pattern;

/// `len` bytes of the pattern stream for `seed` from offset 0.
pub(crate) fn pattern_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    pattern::fill(seed, 0, &mut v);
    v
}

#[path = "../../tests/guest/src/protocol.rs"]
mod guest_protocol;

// The lines of the guest's `console_heavy` case and their check; it uses
// `pattern` above.
#[path = "../../tests/guest/src/console_lines.rs"]
mod console_lines;

/// The protocol with the guest: the shared constants, plus the harness's own.
pub(crate) mod proto {
    pub use super::guest_protocol::*;

    /// Path of the guest program in the initramfs.
    pub const GUEST: &str = "/usr/bin/uml-guest";
    /// Name of the go-file in the hostfs directory.
    pub const GO_FILE: &str = "go";
}

/// Size of the ubd image.
const IMAGE_SIZE: u64 = 64 << 20;
/// From boot to the guest's ready marker (the guest cases run in between;
/// 2,000 fork+execve alone take about 15 s in UML).
const READY_TIMEOUT: Duration = Duration::from_secs(480);
/// How long the guest waits for the go-file.
const HOST_SYNC_TIMEOUT_SECS: u64 = 120;
/// Whole boot limit.
const BOOT_TIMEOUT: Duration = Duration::from_secs(720);

/// Result of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail(String),
    Skip(String),
}

/// Counts of results.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl std::ops::AddAssign for Totals {
    fn add_assign(&mut self, o: Totals) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.skipped += o.skipped;
    }
}

/// The cases of one kernel, in report order, and diagnostics to print with
/// them.
#[derive(Debug, Default)]
pub struct Report {
    pub cases: Vec<(String, Status)>,
    pub diags: Vec<String>,
}

impl Report {
    pub(crate) fn add(&mut self, name: &str, status: Status) {
        self.cases.push((name.to_string(), status));
    }

    pub(crate) fn check(&mut self, name: &str, r: Result<()>) {
        match r {
            Ok(()) => self.add(name, Status::Pass),
            Err(e) => {
                let full = format!("{e:#}");
                let mut lines = full.lines();
                let first = lines.next().unwrap_or("failed").to_string();
                let rest: Vec<&str> = lines.collect();
                if !rest.is_empty() {
                    self.diags.push(format!("{name}: {first}"));
                    self.diags.extend(rest.iter().map(|l| format!("  {l}")));
                }
                self.add(name, Status::Fail(first));
            }
        }
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for (_, s) in &self.cases {
            match s {
                Status::Pass => t.passed += 1,
                Status::Fail(_) => t.failed += 1,
                Status::Skip(_) => t.skipped += 1,
            }
        }
        t
    }

    /// The report as a KTAP v1 stream.
    pub fn ktap(&self, title: &str) -> String {
        let mut s = String::from("KTAP version 1\n");
        s.push_str(&format!("# {title}\n"));
        for d in &self.diags {
            s.push_str(&format!("# {d}\n"));
        }
        s.push_str(&format!("1..{}\n", self.cases.len()));
        for (i, (name, st)) in self.cases.iter().enumerate() {
            let n = i + 1;
            match st {
                Status::Pass => s.push_str(&format!("ok {n} {name}\n")),
                Status::Skip(r) => s.push_str(&format!("ok {n} {name} # SKIP {}\n", one_line(r))),
                Status::Fail(r) => s.push_str(&format!("not ok {n} {name} # {}\n", one_line(r))),
            }
        }
        let t = self.totals();
        s.push_str(&format!(
            "# {}: {} passed, {} failed, {} skipped\n",
            title, t.passed, t.failed, t.skipped
        ));
        s
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], "; ").replace('#', "no.")
}

/// The guest's KTAP stream as found on the console.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GuestKtap {
    /// `1..N`, if the plan line was seen.
    pub plan: Option<usize>,
    /// (number, name, status), in console order.
    pub results: Vec<(usize, String, Status)>,
    /// Case names announced by the `# cases: ...` line, in plan order.
    pub names: Vec<String>,
}

/// Parses the last `KTAP version 1` stream on the console. Kernel messages
/// interleaved with it are ignored.
pub fn parse_guest_ktap(console: &str) -> Option<GuestKtap> {
    let lines: Vec<&str> = console.lines().map(|l| l.trim_end_matches('\r')).collect();
    let start = lines.iter().rposition(|l| l.trim() == "KTAP version 1")?;
    let mut k = GuestKtap::default();
    for l in &lines[start + 1..] {
        let l = l.trim_start();
        if k.plan.is_none() {
            if let Some(n) = l.strip_prefix("1..").and_then(|n| n.trim().parse().ok()) {
                k.plan = Some(n);
                continue;
            }
        }
        if let Some(names) = l.strip_prefix("# cases:") {
            if k.names.is_empty() {
                k.names = names.split_whitespace().map(String::from).collect();
            }
            continue;
        }
        let (ok, rest) = if let Some(r) = l.strip_prefix("not ok ") {
            (false, r)
        } else if let Some(r) = l.strip_prefix("ok ") {
            (true, r)
        } else {
            continue;
        };
        let (head, directive) = match rest.split_once(" # ") {
            Some((h, d)) => (h, Some(d.trim())),
            None => (rest, None),
        };
        let mut words = head.splitn(2, ' ');
        let Some(num) = words.next().and_then(|n| n.parse::<usize>().ok()) else {
            continue;
        };
        let name = words.next().unwrap_or("").trim().to_string();
        let status = match (ok, directive) {
            (true, Some(d)) if d.starts_with("SKIP") => {
                Status::Skip(d.trim_start_matches("SKIP").trim().to_string())
            }
            (true, _) => Status::Pass,
            (false, d) => Status::Fail(d.unwrap_or("failed").to_string()),
        };
        k.results.push((num, name, status));
    }
    Some(k)
}

/// Seeds of one run, fresh each time.
#[derive(Debug, Clone, Copy)]
struct Seeds {
    hostfs: u64,
    ubd: u64,
    ubd_host: u64,
}

impl Seeds {
    fn fresh() -> Seeds {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let base = t ^ (u64::from(std::process::id()) << 40);
        Seeds {
            hostfs: pattern::word(base, 0),
            ubd: pattern::word(base, 1),
            ubd_host: pattern::word(base, 2),
        }
    }
}

/// Host-side files of one run.
struct HostFiles {
    hostfs: PathBuf,
    image: PathBuf,
}

fn prepare(dir: &Path, seeds: Seeds) -> Result<HostFiles> {
    let hostfs = dir.join("hostfs");
    fs::create_dir(&hostfs).with_context(|| format!("mkdir {}", hostfs.display()))?;
    let p = hostfs.join(proto::HOST_TO_GUEST);
    fs::write(&p, pattern_bytes(seeds.hostfs, proto::HOSTFS_LEN))
        .with_context(|| format!("writing {}", p.display()))?;
    let image = dir.join("ubda.img");
    let mut f = File::create(&image).with_context(|| format!("creating {}", image.display()))?;
    f.set_len(IMAGE_SIZE).context("sizing the ubd image")?;
    f.seek(SeekFrom::Start(proto::UBD_HOST_OFFSET))?;
    f.write_all(&pattern_bytes(seeds.ubd_host, proto::UBD_HOST_LEN))
        .context("writing the host pattern into the ubd image")?;
    f.sync_all()?;
    Ok(HostFiles { hostfs, image })
}

/// Where the host's shared libraries may live.
const LIB_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Copies dynamically linked host programs ([`proto::DYN_PROGRAMS`]) into
/// `<hostfs>/dyn`, and their ELF interpreter and the libraries they need
/// into `<hostfs>/dyn/lib`: the initramfs holds static programs only, and
/// the guest's `exec_dynamic` case runs these.
fn stage_dynamic(hostfs: &Path) -> Result<()> {
    stage_programs(&hostfs.join(proto::DYN_DIR), proto::DYN_PROGRAMS).map(|_| ())
}

/// Copies the host programs `names` (from /bin, /usr/bin, /sbin or
/// /usr/sbin) into `dir`, and their ELF interpreter and the libraries they
/// need (DT_NEEDED, transitively) into `dir/`[`proto::DYN_LIB_DIR`], so that
/// a guest can run them from a hostfs mount. Returns the file name of the
/// interpreter (e.g. `ld-linux-x86-64.so.2`, now in `dir/lib`); fails if no
/// program is dynamically linked.
pub(crate) fn stage_programs(dir: &Path, names: &[&str]) -> Result<String> {
    let lib = dir.join(proto::DYN_LIB_DIR);
    fs::create_dir_all(&lib).with_context(|| format!("mkdir {}", lib.display()))?;
    let mut todo = Vec::new();
    for name in names {
        let src = ["/bin", "/usr/bin", "/sbin", "/usr/sbin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
            .with_context(|| format!("no {name} in /bin, /usr/bin, /sbin or /usr/sbin"))?;
        fs::copy(&src, dir.join(name)).with_context(|| format!("copying {}", src.display()))?;
        todo.push(src);
    }
    let mut staged = std::collections::BTreeSet::new();
    let mut interp_name = None;
    while let Some(obj) = todo.pop() {
        let bytes = fs::read(&obj).with_context(|| format!("reading {}", obj.display()))?;
        let elf = goblin::elf::Elf::parse(&bytes)
            .with_context(|| format!("{} is not an ELF file", obj.display()))?;
        let mut deps: Vec<PathBuf> = Vec::new();
        if let Some(interp) = elf.interpreter {
            let p = PathBuf::from(interp);
            if interp_name.is_none() {
                interp_name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            }
            deps.push(p);
        }
        for needed in &elf.libraries {
            let found = LIB_DIRS
                .iter()
                .map(|d| Path::new(d).join(needed))
                .find(|p| p.is_file())
                .with_context(|| format!("{} needs {needed}, not found", obj.display()))?;
            deps.push(found);
        }
        for d in deps {
            let Some(name) = d.file_name().map(|n| n.to_os_string()) else {
                continue;
            };
            if staged.insert(name.clone()) {
                fs::copy(&d, lib.join(&name))
                    .with_context(|| format!("copying {}", d.display()))?;
                todo.push(d);
            }
        }
    }
    interp_name.with_context(|| format!("none of {names:?} is dynamically linked"))
}

/// The guest command line.
fn guest_cmd(seeds: Seeds) -> Vec<String> {
    let mut v: Vec<String> = vec![proto::GUEST.into(), "test".into()];
    let mut opt = |k: &str, val: String| {
        v.push(k.into());
        v.push(val);
    };
    // The kernel runs with hostfs=<dir>, so "/" is the hostfs directory.
    opt("--hostfs-dir", "/".into());
    opt("--hostfs-seed", format!("{:#x}", seeds.hostfs));
    opt("--ubd", "/dev/ubda".into());
    opt("--ubd-seed", format!("{:#x}", seeds.ubd));
    opt("--ubd-host-seed", format!("{:#x}", seeds.ubd_host));
    opt("--ubd-size", IMAGE_SIZE.to_string());
    opt("--host-sync", proto::GO_FILE.into());
    opt("--host-sync-timeout", HOST_SYNC_TIMEOUT_SECS.to_string());
    v
}

/// The umid directory of the running guest: a `pid` file with the kernel's
/// pid and an `mconsole` socket.
fn check_umid_dir(guest: &Guest) -> Result<()> {
    let dir = guest.umid_dir();
    if !dir.is_dir() {
        bail!("umid directory {} does not exist", dir.display());
    }
    let pidf = dir.join("pid");
    let text = fs::read_to_string(&pidf).with_context(|| format!("reading {}", pidf.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{} holds {text:?}, not a pid", pidf.display()))?;
    if pid != guest.pid() {
        bail!(
            "{} says {pid}, the kernel's pid is {}",
            pidf.display(),
            guest.pid()
        );
    }
    let sock = dir.join("mconsole");
    let meta = fs::symlink_metadata(&sock).with_context(|| format!("stat {}", sock.display()))?;
    if !meta.file_type().is_socket() {
        bail!("{} is not a socket", sock.display());
    }
    Ok(())
}

/// Runs `uml_mconsole <socket> ARGS` with a time limit; returns its stdout.
/// Fails if it exits with a failure (the kernel answered `ERR ...`).
pub(crate) fn mconsole(socket: &Path, args: &[&str]) -> Result<String> {
    let r = mconsole_reply(socket, args)?;
    if !r.status.success() {
        bail!(
            "uml_mconsole {} {}: {}: {}{}",
            socket.display(),
            args.join(" "),
            r.status,
            r.stdout.trim(),
            r.stderr.trim()
        );
    }
    Ok(r.stdout)
}

/// How `uml_mconsole` ended: it exits 0 on the kernel's `OK` reply and
/// non-zero on `ERR`, printing the reply on stdout either way.
pub(crate) struct McReply {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `uml_mconsole <socket> ARGS` with a time limit; an `ERR` reply is a
/// result, not an error (for requests that must be refused).
pub(crate) fn mconsole_reply(socket: &Path, args: &[&str]) -> Result<McReply> {
    let mut child = Command::new("uml_mconsole")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running uml_mconsole (package uml-utilities)")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait()? {
            let mut stdout = String::new();
            let mut stderr = String::new();
            if let Some(mut o) = child.stdout.take() {
                o.read_to_string(&mut stdout)?;
            }
            if let Some(mut e) = child.stderr.take() {
                e.read_to_string(&mut stderr)?;
            }
            return Ok(McReply {
                status,
                stdout,
                stderr,
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "uml_mconsole {} {} did not answer within 15 s",
                socket.display(),
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `uml_mconsole <socket> version` answers `OK Linux ... <release> ...`.
fn check_mconsole_version(guest: &Guest, diags: &mut Vec<String>) -> Result<()> {
    let sock = guest.umid_dir().join("mconsole");
    let out = mconsole(&sock, &["version"])?;
    let line = out
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    diags.push(format!("mconsole version: {line}"));
    let Some(version) = line.strip_prefix("OK") else {
        bail!("mconsole answered {line:?}, expected OK and a version");
    };
    let has_release = version.split_whitespace().any(|w| {
        let mut parts = w.split('.');
        parts
            .next()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && parts
                .next()
                .is_some_and(|p| p.bytes().next().is_some_and(|b| b.is_ascii_digit()))
    });
    if !has_release {
        bail!("mconsole version {line:?} holds no kernel release");
    }
    Ok(())
}

/// Tells the waiting guest to go on: the go-file appears atomically.
pub(crate) fn release_guest(hostfs: &Path, note: &str) -> Result<()> {
    let tmp = hostfs.join(".go.tmp");
    fs::write(&tmp, note).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, hostfs.join(proto::GO_FILE)).context("renaming the go-file")?;
    Ok(())
}

/// Waits until the kernel's main process has exited (a zombie: the harness
/// reaps it later), so that the umid directory and the kernel's other host
/// processes can be checked before the harness's own clean-up removes and
/// kills them.
pub(crate) fn wait_kernel_exit(pid: i32, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    let stat = format!("/proc/{pid}/stat");
    loop {
        match fs::read_to_string(&stat) {
            Err(_) => return Ok(()),
            Ok(s) => {
                // The state follows the parenthesised command name.
                let state = s
                    .rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().next());
                if matches!(state, Some("Z" | "X")) {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the kernel (pid {pid}) had not exited within {}s",
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn verify_image(image: &Path, seeds: Seeds) -> Result<()> {
    let mut f = OpenOptions::new()
        .read(true)
        .open(image)
        .with_context(|| format!("opening {}", image.display()))?;
    let len = f.metadata()?.len();
    if len != IMAGE_SIZE {
        bail!("the image is now {len} bytes, was {IMAGE_SIZE}");
    }
    let mut buf = vec![0u8; proto::UBD_GUEST_LEN];
    f.seek(SeekFrom::Start(proto::UBD_GUEST_OFFSET))?;
    f.read_exact(&mut buf)?;
    if let Some(i) = pattern::first_mismatch(seeds.ubd, 0, &buf) {
        bail!(
            "the guest's pattern differs at image offset {} (of {} bytes written by the guest)",
            proto::UBD_GUEST_OFFSET + i as u64,
            proto::UBD_GUEST_LEN
        );
    }
    let mut buf = vec![0u8; proto::UBD_HOST_LEN];
    f.seek(SeekFrom::Start(proto::UBD_HOST_OFFSET))?;
    f.read_exact(&mut buf)?;
    if let Some(i) = pattern::first_mismatch(seeds.ubd_host, 0, &buf) {
        bail!(
            "the host's pattern was changed at image offset {}",
            proto::UBD_HOST_OFFSET + i as u64
        );
    }
    Ok(())
}

fn verify_hostfs(hostfs: &Path, seeds: Seeds) -> Result<()> {
    let p = hostfs.join(proto::GUEST_TO_HOST);
    let data = fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    if data.len() != proto::HOSTFS_LEN {
        bail!(
            "{} has {} bytes, expected {}",
            p.display(),
            data.len(),
            proto::HOSTFS_LEN
        );
    }
    if let Some(i) = pattern::first_mismatch(seeds.hostfs.wrapping_add(1), 0, &data) {
        bail!(
            "{} differs from the guest's pattern at byte {i}",
            p.display()
        );
    }
    let p = hostfs.join(proto::GUEST_NOTE_FILE);
    let note = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    if note != proto::GUEST_NOTE {
        bail!(
            "{} holds {note:?}, expected {:?}",
            p.display(),
            proto::GUEST_NOTE
        );
    }
    if hostfs.join("guest-dir").exists() {
        bail!("guest-dir, removed in the guest, still exists on the host");
    }
    Ok(())
}

/// The lines of the guest's `console_heavy` case reached the host's end of
/// the console: every one, once, in order, with the right checksum.
fn check_console_heavy(console: &str, diags: &mut Vec<String>) -> Result<()> {
    let v = console_lines::verify(console);
    let counts = format!(
        "{} of {} numbered lines and {} of {} burst lines ({} KiB) in order and intact",
        v.lines,
        console_lines::LINES,
        v.burst_lines,
        console_lines::BURST_LINES,
        v.bytes / 1024
    );
    if v.problems.is_empty() {
        diags.push(format!("host_console_heavy: {counts}"));
        return Ok(());
    }
    bail!(
        "the console lost or damaged lines of console_heavy: {}; {counts}\n{}",
        v.problems[0],
        v.problems[1..].join("\n")
    );
}

/// Adds the guest's cases (from its console KTAP) to `rep`.
fn add_guest_results(rep: &mut Report, console: &str) {
    let Some(k) = parse_guest_ktap(console) else {
        rep.add(
            "guest_ktap",
            Status::Fail("no KTAP output from uml-guest on the console".into()),
        );
        rep.diags.push("last console lines:".into());
        rep.diags
            .extend(boot::tail(console, 15).lines().map(|l| format!("  {l}")));
        return;
    };
    let plan = k.plan.unwrap_or(k.results.len());
    for n in 1..=plan.max(k.results.len()) {
        match k.results.iter().find(|(i, _, _)| *i == n) {
            Some((_, name, st)) => rep.add(name, st.clone()),
            None => rep.add(
                &k.names
                    .get(n - 1)
                    .cloned()
                    .unwrap_or_else(|| format!("guest_case_{n}")),
                Status::Fail("no result on the console (did the guest stop?)".into()),
            ),
        }
    }
}

/// Adds a host case whose result is a diagnostic line (`Ok`), a skip
/// (`Ok("skipped: why")`) or a failure.
/// Results of host cases: each case's name, then a diagnostic or its failure.
pub type CaseResults = Vec<(&'static str, Result<String>)>;

/// The verdicts of the cases `names` (those `want` selects, in that order)
/// that share one boot: each case's own result from `got` (a diagnostic gets
/// the boot's time and `what`, e.g. "one boot for a, b"; `""` for none); a
/// failure of the boot itself (it did not come up, a step it waited for
/// never came, a kernel WARNING) fails every case that had not failed on its
/// own, since none of them can be trusted then.
pub fn shared_boot_verdicts(
    names: &[&'static str],
    want: &dyn Fn(&str) -> bool,
    mut got: CaseResults,
    boot: Result<()>,
    secs: f64,
    what: &str,
) -> CaseResults {
    let boot_err = boot.err().map(|e| format!("{e:#}"));
    let what = if what.is_empty() {
        String::new()
    } else {
        format!(" ({what})")
    };
    names
        .iter()
        .filter(|n| want(n))
        .map(|&name| {
            let own = got
                .iter()
                .position(|(n, _)| *n == name)
                .map(|i| got.remove(i).1);
            let r = match (own, &boot_err) {
                (Some(Err(e)), _) => Err(e),
                (Some(Ok(fact)), None) if fact.starts_with("skipped: ") => Ok(fact),
                (Some(Ok(fact)), None) => Ok(format!("{fact}; {secs:.1}s{what}")),
                (Some(Ok(_)), Some(e)) => {
                    Err(anyhow::anyhow!("the shared boot failed afterwards: {e}"))
                }
                (None, Some(e)) => Err(anyhow::anyhow!("{e}")),
                (None, None) => Err(anyhow::anyhow!("the boot reported no result for this case")),
            };
            (name, r)
        })
        .collect()
}

/// The verdict on a case listed in `defects` (case name, why it fails) as a
/// known defect of `layer`: a failure is reported as a skip saying why and
/// what was found; a pass is a failure, so that the list stays true. A case
/// not listed keeps its result.
pub fn known_defect_verdict(
    defects: &[(&str, &str)],
    layer: &str,
    name: &str,
    result: Result<String>,
) -> Result<String> {
    let Some((_, why)) = defects.iter().find(|(n, _)| *n == name) else {
        return result;
    };
    match result {
        Err(e) => Ok(format!("skipped: {layer} defect: {why} (found: {e:#})")),
        Ok(fact) => bail!("{name} passed, but is listed as a {layer} defect ({why}): {fact}"),
    }
}

fn add_host_case(host: &mut Report, name: &str, result: Result<String>) {
    match result {
        Ok(fact) => match fact.strip_prefix("skipped: ") {
            Some(why) => host.add(name, Status::Skip(why.to_string())),
            None => {
                host.diags.push(format!("{name}: {fact}"));
                host.add(name, Status::Pass);
            }
        },
        Err(e) => host.check(name, Err(e)),
    }
}

/// Whether `--only` (a list of name prefixes; empty: everything) selects
/// the case `name`.
fn selected(only: &[String], name: &str) -> bool {
    only.is_empty() || only.iter().any(|p| name.starts_with(p.as_str()))
}

/// Boots `os` with the suite and the host checks; never fails, every
/// problem is a case in the report. With `only` (name prefixes), just the
/// host cases that boot a kernel of their own and match, without the main
/// suite boot.
fn test_kernel(ctx: &Ctx, os: &str, only: &[String]) -> (String, Report) {
    let mut rep = Report::default();
    let kernel = match boot::kernel_path(ctx, os) {
        Ok(k) => k,
        Err(e) => {
            rep.check("kernel", Err(e));
            return (format!("kernel {os}"), rep);
        }
    };
    let title = format!("kernel {os} ({})", kernel.display());
    let mut host = Report::default();
    let tmp = if only.is_empty() {
        match suite_boot(ctx, &kernel, &mut rep, &mut host) {
            Some(t) => Some(t),
            None => return (title, rep),
        }
    } else {
        rep.diags.push(format!(
            "--only {}: the main suite boot is skipped",
            only.join(",")
        ));
        None
    };
    let want = |name: &str| selected(only, name);
    if teardown::CASES.iter().any(|n| want(n)) {
        let t = Instant::now();
        let mut cases = Report::default();
        teardown::run_cases(ctx, &kernel, os, &mut cases);
        cases.cases.retain(|(n, _)| want(n));
        host.cases.append(&mut cases.cases);
        host.diags.append(&mut cases.diags);
        host.diags.push(format!(
            "teardown boots (halt, reboot, panic): {:.1}s",
            t.elapsed().as_secs_f64()
        ));
    }
    // Where the Rust layer puts physical memory when memfd is refused
    // (the C layer has no such checks to pass).
    if os == "rust" && physmem::CASES.iter().any(|n| want(n)) {
        for (name, result) in physmem::cases(&kernel) {
            if want(name) {
                add_host_case(&mut host, name, result);
            }
        }
    }
    // The network transports (legacy tuntap; vector tap, raw, l2tpv3), end
    // to end, each in a network namespace of its own.
    for &(name, transport) in net::CASES {
        if want(name) {
            add_host_case(&mut host, name, net::run_case(ctx, &kernel, transport));
        }
    }
    // The block driver (ubd) as the UML HOWTO describes it, on real boots.
    for case in block::CASES {
        if want(case.name) {
            add_host_case(&mut host, case.name, block::run(case, ctx, &kernel));
        }
    }
    // The management console as the UML HOWTO describes it, on real boots.
    if mconsole::names().any(&want) {
        for (name, result) in mconsole::run_cases(ctx, &kernel, &want) {
            let result = if os == "c" {
                mconsole::c_layer_verdict(name, result)
            } else {
                result
            };
            add_host_case(&mut host, name, result);
        }
    }
    // The console and serial line channels as the UML HOWTO describes them.
    for (name, result) in chan::run_cases(ctx, &kernel, &want) {
        add_host_case(&mut host, name, result);
    }
    // The channels that run host helpers: port (through in.telnetd) and xterm.
    for (name, result) in chan_helper::run_cases(ctx, &kernel, &want) {
        add_host_case(&mut host, name, result);
    }
    // hostfs as the UML HOWTO describes it, both ways, and its confinement.
    for (name, result) in hostfs::run_cases(ctx, &kernel, &want) {
        let result = if os == "c" {
            hostfs::c_layer_verdict(name, result)
        } else {
            result
        };
        add_host_case(&mut host, name, result);
    }
    // The real-time clock's alarm and the hardware watchdog's helper.
    for (name, result) in rtcdog::run_cases(ctx, &kernel, &want) {
        add_host_case(&mut host, name, result);
    }
    rep.cases.append(&mut host.cases);
    rep.diags.append(&mut host.diags);

    if rep.totals().failed > 0 {
        if let Some(tmp) = tmp {
            let kept = tmp.keep();
            rep.diags
                .push(format!("kept {} for inspection", kept.display()));
        }
    }
    (title, rep)
}

/// The main boot: the guest suite with the host checks around it. Adds the
/// guest's cases to `rep` and the host checks to `host`; returns the
/// temporary directory with the guest's files, or None if the run could not
/// start (the failure is in `rep`).
fn suite_boot(
    ctx: &Ctx,
    kernel: &Path,
    rep: &mut Report,
    host: &mut Report,
) -> Option<tempfile::TempDir> {
    let tmp = match tempfile::Builder::new().prefix("uml-suite-").tempdir() {
        Ok(t) => t,
        Err(e) => {
            rep.check(
                "host_prepare",
                Err(anyhow::Error::from(e).context("creating a temporary directory")),
            );
            return None;
        }
    };
    let seeds = Seeds::fresh();
    let files = match prepare(tmp.path(), seeds) {
        Ok(f) => f,
        Err(e) => {
            rep.check("host_prepare", Err(e));
            return None;
        }
    };
    // Without them the guest reports a skip, not a failure.
    if let Err(e) = stage_dynamic(&files.hostfs) {
        rep.diags
            .push(format!("no dynamic programs for exec_dynamic: {e:#}"));
    }
    rep.diags.push(format!(
        "seeds: hostfs {:#x}, ubd {:#x}, ubd host {:#x}; files in {}",
        seeds.hostfs,
        seeds.ubd,
        seeds.ubd_host,
        tmp.path().display()
    ));

    let mut spec = BootSpec::new(kernel.to_path_buf(), guest_cmd(seeds));
    spec.ubd = vec![files.image.clone()];
    spec.hostfs_root = Some(files.hostfs.clone());
    spec.extra_args = vec!["quiet".into()];
    spec.timeout = BOOT_TIMEOUT;
    spec.echo_console = true;
    let booted = Instant::now();
    let mut guest = match Guest::start(&spec, ctx) {
        Ok(g) => g,
        Err(e) => {
            rep.check("boot", Err(e));
            return None;
        }
    };
    // Records the kernel's host processes and memory file while it runs.
    let mut leftovers = teardown::Findings::default();
    let mut tracker = match teardown::Tracker::start(guest.pid()) {
        Ok(t) => Some(t),
        Err(e) => {
            leftovers.problem(format!("{e:#}"));
            None
        }
    };

    // While the guest waits in host_sync.
    let mut diags = Vec::new();
    match guest.wait_for_console(proto::READY_MARKER, READY_TIMEOUT) {
        Ok(()) => {
            host.check("host_umid_dir_running", check_umid_dir(&guest));
            host.check(
                "host_mconsole_version",
                check_mconsole_version(&guest, &mut diags),
            );
            let verdict = if host.totals().failed == 0 {
                "ok"
            } else {
                "host checks failed"
            };
            host.check("host_release_guest", release_guest(&files.hostfs, verdict));
        }
        Err(e) => {
            let why = format!("the guest never became ready for host checks: {e:#}");
            host.check("host_umid_dir_running", Err(anyhow::anyhow!(why.clone())));
            host.add(
                "host_mconsole_version",
                Status::Fail("not run: the guest never became ready".into()),
            );
            host.add(
                "host_release_guest",
                Status::Skip("the guest never became ready".into()),
            );
        }
    }
    rep.diags.append(&mut diags);

    // The kernel exits by itself after the payload, and removes its umid
    // directory on the way out.
    let umid_dir = guest.umid_dir();
    let left = BOOT_TIMEOUT.saturating_sub(booted.elapsed());
    let exited = guest
        .wait_for_console(crate::protocol::EXIT_PREFIX, left)
        .and_then(|()| wait_kernel_exit(guest.pid(), Duration::from_secs(20)));
    // Before the harness reaps the kernel and kills its process group.
    let t = Instant::now();
    match (&exited, tracker.as_mut()) {
        (Ok(()), Some(tr)) => {
            teardown::check_after_exit(tr, guest.pid(), false, "after exit", &mut leftovers)
        }
        (Err(_), _) => leftovers.problem("not run: the kernel did not exit by itself"),
        (Ok(()), None) => {}
    }
    drop(tracker);
    let check_time = t.elapsed();
    host.check(
        "host_umid_dir_removed",
        exited.and_then(|()| {
            if umid_dir.exists() {
                bail!(
                    "{} still exists after the kernel exited",
                    umid_dir.display()
                );
            }
            Ok(())
        }),
    );

    // Should the run fail, the console so far still carries the guest's
    // results.
    let console_before = guest.console_so_far();
    let console = match guest.wait() {
        Ok(outcome) => {
            add_guest_results(rep, &outcome.console);
            rep.add(
                "guest_exit_status",
                if outcome.exit_code == 0 {
                    Status::Pass
                } else {
                    Status::Fail(format!(
                        "uml-guest test exited with status {}",
                        outcome.exit_code
                    ))
                },
            );
            outcome.console
        }
        Err(e) => {
            add_guest_results(rep, &console_before);
            rep.check("guest_exit_status", Err(e));
            console_before
        }
    };
    host.check("host_ubd_image", verify_image(&files.image, seeds));
    host.check("host_hostfs_files", verify_hostfs(&files.hostfs, seeds));
    let mut diags = Vec::new();
    let heavy = check_console_heavy(&console, &mut diags);
    host.diags.append(&mut diags);
    host.check("host_console_heavy", heavy);
    teardown::check_reaped(&mut leftovers);
    leftovers.fact(format!("checked in {:.2}s", check_time.as_secs_f64()));
    leftovers.report(host, "host_exit_no_leftovers");
    Some(tmp)
}

/// `uml-harness test`.
pub fn run(ctx: &Ctx, args: &TestArgs) -> Result<()> {
    let mut total = Totals::default();
    let mut failed_kernels = Vec::new();
    for os in &args.os {
        println!("# uml-harness test: booting kernel {os}");
        let (title, rep) = test_kernel(ctx, os, &args.only);
        print!("{}", rep.ktap(&title));
        let t = rep.totals();
        if t.failed > 0 {
            failed_kernels.push(os.clone());
        }
        total += t;
        if let Some(sig) = crate::signals::interrupted() {
            bail!("interrupted by signal {sig}");
        }
    }
    println!(
        "{} passed, {} failed, {} skipped",
        total.passed, total.failed, total.skipped
    );
    if total.failed > 0 {
        bail!(
            "{} test(s) failed (kernels: {})",
            total.failed,
            failed_kernels.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_guest_ktap_amid_kernel_messages() {
        let console = "\
[    0.1] boot
KTAP version 1
1..4
# cases: skas_mode fork_wait hostfs ubd
ok 1 skas_mode
# diag
[    1.2] random kernel line
not ok 2 fork_wait # child 12: exit code 3, expected 4
ok 3 hostfs # SKIP no --hostfs-dir given
@@HARNESS-EXIT 1@@
";
        let k = parse_guest_ktap(console).unwrap();
        assert_eq!(k.plan, Some(4));
        assert_eq!(
            k.results,
            vec![
                (1, "skas_mode".into(), Status::Pass),
                (
                    2,
                    "fork_wait".into(),
                    Status::Fail("child 12: exit code 3, expected 4".into())
                ),
                (
                    3,
                    "hostfs".into(),
                    Status::Skip("no --hostfs-dir given".into())
                ),
            ]
        );
        let mut rep = Report::default();
        add_guest_results(&mut rep, console);
        let t = rep.totals();
        assert_eq!((t.passed, t.failed, t.skipped), (1, 2, 1));
        assert_eq!(rep.cases[3].0, "ubd");
        assert_eq!(
            rep.cases[3].1,
            Status::Fail("no result on the console (did the guest stop?)".into())
        );
        assert!(parse_guest_ktap("no ktap here\n").is_none());
    }

    #[test]
    fn only_selects_by_prefix() {
        assert!(selected(&[], "host_net_tuntap"));
        let only = vec!["host_ubd_".to_string(), "host_halt".to_string()];
        assert!(selected(&only, "host_ubd_cow"));
        assert!(selected(&only, "host_halt_no_leftovers"));
        assert!(!selected(&only, "host_net_tuntap"));
        assert!(!teardown::CASES.iter().any(|n| selected(&only[..1], n)));
        assert!(block::CASES.iter().all(|c| selected(&only, c.name)));
        let only = vec!["host_hostfs".to_string()];
        assert!(hostfs::CASES.iter().all(|n| selected(&only, n)));
        assert!(!block::CASES.iter().any(|c| selected(&only, c.name)));
    }

    #[test]
    fn ktap_report_format() {
        let mut rep = Report::default();
        rep.add("a", Status::Pass);
        rep.check("b", Err(anyhow::anyhow!("first line\nsecond # line")));
        rep.add("c", Status::Skip("why".into()));
        let s = rep.ktap("kernel x");
        assert!(s.starts_with("KTAP version 1\n# kernel x\n"));
        assert!(
            s.contains("\n1..3\nok 1 a\nnot ok 2 b # first line\nok 3 c # SKIP why\n"),
            "{s}"
        );
        assert!(s.contains("#   second # line\n"), "{s}");
        assert_eq!(
            rep.totals(),
            Totals {
                passed: 1,
                failed: 1,
                skipped: 1
            }
        );
    }

    #[test]
    fn guest_cmd_fits_and_round_trips() {
        let s = Seeds {
            hostfs: u64::MAX,
            ubd: u64::MAX,
            ubd_host: u64::MAX,
        };
        let cmd = guest_cmd(s);
        let enc = crate::protocol::encode_cmd(&cmd).unwrap();
        assert!(enc.len() < 1500, "{}", enc.len());
        assert_eq!(crate::protocol::decode_cmd(&enc).unwrap(), cmd);
    }

    #[test]
    fn pattern_bytes_fill_and_mismatch_agree() {
        let mut v = pattern_bytes(42, 10_000);
        let mut w = vec![0u8; 9_000];
        pattern::fill(42, 1_000, &mut w);
        assert_eq!(&v[1_000..], &w[..]);
        assert_eq!(pattern::first_mismatch(42, 0, &v), None);
        v[5_000] ^= 0x80;
        assert_eq!(pattern::first_mismatch(42, 0, &v), Some(5_000));
    }

    #[test]
    fn stages_dynamic_programs_with_their_libraries() {
        let dir = tempfile::tempdir().unwrap();
        stage_dynamic(dir.path()).unwrap();
        let d = dir.path().join(proto::DYN_DIR);
        for p in proto::DYN_PROGRAMS {
            assert!(d.join(p).is_file(), "{p}");
        }
        let echo = fs::read(d.join("echo")).unwrap();
        let elf = goblin::elf::Elf::parse(&echo).unwrap();
        let interp = Path::new(elf.interpreter.unwrap());
        let lib = d.join(proto::DYN_LIB_DIR);
        assert!(lib.join(interp.file_name().unwrap()).is_file());
        for needed in &elf.libraries {
            assert!(lib.join(needed).is_file(), "{needed}");
        }
    }

    #[test]
    fn prepare_and_verify_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let seeds = Seeds::fresh();
        let f = prepare(dir.path(), seeds).unwrap();
        // Nothing written by a guest yet.
        assert!(verify_image(&f.image, seeds).is_err());
        assert!(verify_hostfs(&f.hostfs, seeds).is_err());
        // Do what the guest does.
        let mut img = OpenOptions::new().write(true).open(&f.image).unwrap();
        img.write_all(&pattern_bytes(seeds.ubd, proto::UBD_GUEST_LEN))
            .unwrap();
        fs::write(
            f.hostfs.join(proto::GUEST_TO_HOST),
            pattern_bytes(seeds.hostfs.wrapping_add(1), proto::HOSTFS_LEN),
        )
        .unwrap();
        fs::write(f.hostfs.join(proto::GUEST_NOTE_FILE), proto::GUEST_NOTE).unwrap();
        verify_image(&f.image, seeds).unwrap();
        verify_hostfs(&f.hostfs, seeds).unwrap();
        assert_eq!(fs::metadata(&f.image).unwrap().len(), IMAGE_SIZE);
        let h = fs::read(f.hostfs.join(proto::HOST_TO_GUEST)).unwrap();
        assert_eq!(pattern::first_mismatch(seeds.hostfs, 0, &h), None);
    }
}
