// SPDX-License-Identifier: GPL-2.0
//! `uml-harness kunit`: the kernel's own KUnit suite on UML, C layer against Rust layer.
//!
//! For each kernel, `tools/testing/kunit/kunit.py run --arch=um` in the kernel tree, with
//! its own build directory `<cache>/build/kunit-<os>` (a full kernel build the first
//! time, incremental later). The Rust kernel adds the Rust-layer settings of
//! [`kbuild::crate_fragment`] (`--kconfig_add`) and the crate directory as the make
//! variable `UM_OS_RUST_SRC` (`--make_options`). kunit.py writes its parsed results as
//! JSON (`--json`), which gives one (suite, test, status) per test case; a parameterised
//! test contributes one case per parameter, as in kunit.py's own count.
//!
//! Files in each build directory: `harness-kunit.log` (kunit.py's whole output, build
//! errors included), `harness-kunit.json` (the results), `test.log` (the kernel's
//! console, written by kunit.py).
//!
//! The command fails when a kernel does not build or boot, when the Rust kernel has a
//! failing or crashed test, when the Rust kernel does not pass exactly the tests the C
//! kernel passes, or when the Rust kernel's link does not hold the Rust layer
//! (`arch/um/os-Linux/rust/um_os_rust.o`) or still holds a migrated C object.

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::archive;
use crate::cli::KunitArgs;
use crate::kbuild;
use crate::kernel_src;
use crate::paths::Ctx;
use crate::sys::with_lock;
use crate::verify_link;

/// kunit.py's whole output, in the kunit build directory.
pub const LOG: &str = "harness-kunit.log";
/// kunit.py's JSON results, in the kunit build directory.
pub const JSON: &str = "harness-kunit.json";
/// The kernel's console, written by kunit.py into its build directory.
pub const KERNEL_LOG: &str = "test.log";
/// kunit.py, relative to the kernel tree.
pub const KUNIT_PY: &str = "tools/testing/kunit/kunit.py";
/// The prelinked Rust layer in the output tree.
pub const RUST_OBJECT: &str = "arch/um/os-Linux/rust/um_os_rust.o";
/// How often a silent kunit.py (it says nothing while make runs) gets a progress line.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// Status of one test case, as kunit.py's JSON writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Pass,
    Skip,
    Fail,
    /// Crashed, or missing from the output (`ERROR` in the JSON).
    Error,
}

impl Status {
    fn from_json(s: &str) -> Status {
        match s {
            "PASS" => Status::Pass,
            "SKIP" => Status::Skip,
            "ERROR" => Status::Error,
            _ => Status::Fail,
        }
    }

    fn is_failure(self) -> bool {
        matches!(self, Status::Fail | Status::Error)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Skip => "SKIP",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
        })
    }
}

/// A test case: its suite and its name within the suite (`test[param]` for one parameter
/// of a parameterised test, empty for a suite that reported no cases at all).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TestId {
    pub suite: String,
    pub test: String,
}

impl fmt::Display for TestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.test.is_empty() {
            write!(f, "{} (whole suite)", self.suite)
        } else {
            write!(f, "{}.{}", self.suite, self.test)
        }
    }
}

/// The results of one kernel.
pub type Results = BTreeMap<TestId, Status>;

#[derive(Debug, Deserialize)]
struct Group {
    #[serde(default)]
    name: String,
    #[serde(default)]
    sub_groups: Vec<Group>,
    #[serde(default)]
    test_cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    #[serde(default)]
    name: String,
    status: String,
}

/// The test cases of kunit.py's `--json` output (`kunit_json.py`): the top group holds
/// one group per suite (a suite without cases is a case of the top group), a suite
/// holds its cases and, for a parameterised test, a group of one case per parameter.
pub fn parse_json(text: &str) -> Result<Results> {
    let top: Group = serde_json::from_str(text).context("parsing kunit.py's JSON results")?;
    let mut out = Results::new();
    flatten(&top, &mut Vec::new(), &mut out);
    Ok(out)
}

fn flatten(group: &Group, path: &mut Vec<String>, out: &mut Results) {
    for (i, case) in group.test_cases.iter().enumerate() {
        // kunit_parser records a subtest missing from the output as a nameless crash.
        let name = if case.name.is_empty() {
            format!("(missing #{})", i + 1)
        } else {
            case.name.clone()
        };
        path.push(name);
        let mut id = TestId {
            suite: path[0].clone(),
            test: path.get(1).cloned().unwrap_or_default(),
        };
        for param in path.iter().skip(2) {
            let _ = write!(id.test, "[{param}]");
        }
        path.pop();
        // Same name twice (a test or a parameter name repeated): keep both.
        let mut unique = id.clone();
        let mut n = 2;
        while out.contains_key(&unique) {
            unique.test = format!("{} #{n}", id.test);
            n += 1;
        }
        out.insert(unique, Status::from_json(&case.status));
    }
    for sub in &group.sub_groups {
        path.push(sub.name.clone());
        flatten(sub, path, out);
        path.pop();
    }
}

/// Counts of one kernel's results.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub skipped: usize,
}

impl Counts {
    pub fn of(results: &Results) -> Counts {
        let mut c = Counts::default();
        for s in results.values() {
            match s {
                Status::Pass => c.passed += 1,
                Status::Fail => c.failed += 1,
                Status::Error => c.errors += 1,
                Status::Skip => c.skipped += 1,
            }
        }
        c
    }

    pub fn total(&self) -> usize {
        self.passed + self.failed + self.errors + self.skipped
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped, {} total",
            self.passed,
            self.failed + self.errors,
            self.skipped,
            self.total()
        )?;
        if self.errors > 0 {
            write!(f, " ({} of the failures crashed or missing)", self.errors)?;
        }
        Ok(())
    }
}

/// What differs between the C and the Rust results.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Passed on C, present on Rust with another status.
    pub pass_c_only: Vec<(TestId, Status)>,
    /// Passed on Rust, present on C with another status.
    pub pass_rust_only: Vec<(TestId, Status)>,
    /// Present on C only, with its status there.
    pub only_c: Vec<(TestId, Status)>,
    /// Present on Rust only, with its status there.
    pub only_rust: Vec<(TestId, Status)>,
}

impl Comparison {
    /// The Rust kernel passes exactly the tests the C kernel passes.
    pub fn same_passes(&self) -> bool {
        self.pass_c_only.is_empty()
            && self.pass_rust_only.is_empty()
            && !self.only_c.iter().any(|(_, s)| *s == Status::Pass)
            && !self.only_rust.iter().any(|(_, s)| *s == Status::Pass)
    }
}

pub fn compare(c: &Results, rust: &Results) -> Comparison {
    let mut cmp = Comparison::default();
    for (id, &sc) in c {
        match rust.get(id) {
            None => cmp.only_c.push((id.clone(), sc)),
            Some(&sr) if sc == Status::Pass && sr != Status::Pass => {
                cmp.pass_c_only.push((id.clone(), sr))
            }
            Some(&sr) if sr == Status::Pass && sc != Status::Pass => {
                cmp.pass_rust_only.push((id.clone(), sc))
            }
            Some(_) => {}
        }
    }
    for (id, &sr) in rust {
        if !c.contains_key(id) {
            cmp.only_rust.push((id.clone(), sr));
        }
    }
    cmp
}

/// The comparison as text; `None` when nothing differs.
pub fn render_comparison(cmp: &Comparison) -> Option<String> {
    let mut s = String::new();
    let mut section = |title: &str, list: &[(TestId, Status)], other: &str| {
        if list.is_empty() {
            return;
        }
        let _ = writeln!(s, "  {title} ({}):", list.len());
        for (id, st) in list {
            let _ = writeln!(s, "    {id}  ({other}: {st})");
        }
    };
    section("pass on c, not on rust", &cmp.pass_c_only, "rust");
    section("pass on rust, not on c", &cmp.pass_rust_only, "c");
    section("only on c", &cmp.only_c, "c");
    section("only on rust", &cmp.only_rust, "rust");
    (!s.is_empty()).then_some(s)
}

/// kunit.py's own timings, from its last line `Elapsed time: 136.483s total, 2.860s
/// configuring, 130.046s building, 3.544s running`.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Elapsed {
    pub configuring: f64,
    pub building: f64,
    pub running: f64,
}

pub fn parse_elapsed(line: &str) -> Option<Elapsed> {
    let rest = line.split_once("Elapsed time:")?.1;
    let mut e = Elapsed::default();
    for part in rest.split(',') {
        let (num, what) = part.trim().split_once("s ")?;
        let v: f64 = num.parse().ok()?;
        match what.trim() {
            "configuring" => e.configuring = v,
            "building" => e.building = v,
            "running" => e.running = v,
            _ => {}
        }
    }
    Some(e)
}

/// The text after kunit.py's timestamp (`[16:05:16] `), if the line has one.
fn untimestamped(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let (stamp, text) = rest.split_once("] ")?;
    (stamp.len() == 8 && stamp.bytes().all(|b| b.is_ascii_digit() || b == b':')).then_some(text)
}

/// kunit.py output lines worth showing while it runs: its phases, failures and errors.
/// Returns the text to show.
fn progress_line(line: &str) -> Option<&str> {
    if line.starts_with("ERROR:") {
        return Some(line);
    }
    let text = untimestamped(line)?;
    let phase = [
        "Configuring KUnit Kernel",
        "Building KUnit Kernel",
        "Starting KUnit Kernel",
        "Testing complete.",
        "Elapsed time:",
        "The kernel seems to have crashed",
        "Failures:",
    ];
    let bad = ["[FAILED]", "[CRASHED]", "[ERROR]"];
    (phase.iter().any(|p| text.starts_with(p)) || bad.iter().any(|b| text.contains(b)))
        .then_some(text)
}

/// One kernel's run.
#[derive(Debug)]
pub struct Run {
    pub os: String,
    pub out: PathBuf,
    pub results: Results,
    pub wall: Duration,
    pub elapsed: Option<Elapsed>,
    /// kunit.py's own summary (`Ran 385 tests: passed: 376, skipped: 9`).
    pub kunit_summary: Option<String>,
    /// Problems of the Rust link (empty for C).
    pub link_problems: Vec<String>,
    /// Remarks that do not fail the run.
    pub notes: Vec<String>,
}

/// Refuses crate paths that make or Kconfig would split or unquote.
fn check_crate_dir(dir: &Path) -> Result<PathBuf> {
    let dir =
        std::path::absolute(dir).with_context(|| format!("making {} absolute", dir.display()))?;
    let s = dir
        .to_str()
        .with_context(|| format!("the crate directory {} is not UTF-8", dir.display()))?;
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '"' | '\\' | '$' | '#' | '\''))
    {
        bail!(
            "the crate directory {s} contains {c:?}, which cannot be passed to make and \
             Kconfig as UM_OS_RUST_SRC: use a path without it"
        );
    }
    for f in ["Cargo.toml", "MIGRATED"] {
        if !dir.join(f).is_file() {
            bail!(
                "{s} is not the arch-um-rs crate directory: it has no {f} (--crate-dir must \
                 name the crate, e.g. <repo>/arch-um-rs)"
            );
        }
    }
    Ok(dir)
}

/// The kunit.py arguments after `run`.
pub fn kunit_args(os: &str, out: &Path, jobs: usize, crate_dir: &Path) -> Vec<String> {
    let mut args = vec![
        "run".to_string(),
        "--arch=um".to_string(),
        format!("--build_dir={}", out.display()),
        format!("--jobs={jobs}"),
        format!("--json={}", out.join(JSON).display()),
    ];
    if os == "rust" {
        // The settings the harness's own Rust build merges into its .config, and the
        // crate as a make variable as well (it wins over the Kconfig string).
        for l in kbuild::parse_fragment(&kbuild::crate_fragment(crate_dir)) {
            if let Some(v) = l.value {
                args.push("--kconfig_add".into());
                args.push(format!("{}={v}", l.name));
            }
        }
        args.push("--make_options".into());
        args.push(format!("UM_OS_RUST_SRC={}", crate_dir.display()));
    }
    args
}

/// Checks the kunit build of the Rust kernel: the Rust layer is linked and no migrated
/// C object is. Returns (problems, notes).
pub fn check_rust_link(
    out: &Path,
    migrated: &[String],
    members: &HashSet<String>,
) -> (Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    if !out.join(RUST_OBJECT).is_file() {
        problems.push(format!(
            "{} does not exist: the kernel was not built with the Rust layer",
            out.join(RUST_OBJECT).display()
        ));
    } else if !members.contains(RUST_OBJECT) {
        problems.push(format!(
            "{RUST_OBJECT} exists but is not a member of {}",
            out.join("vmlinux.a").display()
        ));
    }
    for name in migrated {
        for obj in verify_link::c_objects(name) {
            if members.contains(&obj) {
                problems.push(format!(
                    "{obj} (migrated: {name} in MIGRATED) is linked: it is a member of vmlinux.a"
                ));
            } else if out.join(&obj).exists() {
                notes.push(format!(
                    "{obj} (migrated) is present in {} but not linked (left from a build \
                     before it was migrated?)",
                    out.display()
                ));
            }
        }
    }
    (problems, notes)
}

/// Runs kunit.py for one kernel; an error means it did not build or boot (or its results
/// cannot be read).
fn run_one(ctx: &Ctx, os: &str, jobs: usize, crate_dir: &Path) -> Result<Run> {
    let out = ctx.build_dir(&format!("kunit-{os}"));
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let lock = ctx
        .cache
        .join("locks")
        .join(format!("build-kunit-{os}.lock"));
    with_lock(&lock, &format!("the {os} KUnit build"), || {
        run_locked(ctx, os, jobs, crate_dir, &out)
    })
}

fn run_locked(ctx: &Ctx, os: &str, jobs: usize, crate_dir: &Path, out: &Path) -> Result<Run> {
    let log = out.join(LOG);
    let json = out.join(JSON);
    match fs::remove_file(&json) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", json.display())),
    }
    let kunit_py = ctx.kernel_src.join(KUNIT_PY);
    if !kunit_py.is_file() {
        bail!(
            "{} does not exist: the kernel tree has no KUnit tool",
            kunit_py.display()
        );
    }
    let args = kunit_args(os, out, jobs, crate_dir);
    let shown = format!("{KUNIT_PY} {}", args.join(" "));
    let mut logf = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    writeln!(logf, "### in {}: {shown}", ctx.kernel_src.display())?;
    eprintln!(
        "uml-harness: KUnit on the {os} kernel in {} (log: {})\n  {shown}",
        out.display(),
        log.display()
    );
    let (reader, writer) = crate::sys::pipe()?;
    let start = Instant::now();
    let mut child = Command::new("python3")
        .arg(&kunit_py)
        .args(&args)
        .current_dir(&ctx.kernel_src)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .spawn()
        .with_context(|| {
            format!("running python3 {shown} (kunit.py needs python3: apt-get install python3)")
        })?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let pump = std::thread::spawn(move || {
        for line in BufReader::new(reader).split(b'\n') {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut elapsed = None;
    let mut kunit_summary = None;
    let mut phase = String::from("starting kunit.py");
    loop {
        let line = match rx.recv_timeout(HEARTBEAT) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => {
                eprintln!(
                    "  [{:>4}s] ({phase}: still running)",
                    start.elapsed().as_secs()
                );
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        logf.write_all(&line)?;
        logf.write_all(b"\n")?;
        let line = String::from_utf8_lossy(&line);
        if let Some(text) = progress_line(&line) {
            eprintln!("  [{:>4}s] {text}", start.elapsed().as_secs());
            if text.ends_with("...") {
                phase = text.trim_end_matches('.').trim().to_string();
            }
        }
        if let Some(e) = parse_elapsed(&line) {
            elapsed = Some(e);
        }
        if let Some(s) = untimestamped(&line).and_then(|t| t.strip_prefix("Testing complete. ")) {
            kunit_summary = Some(s.to_string());
        }
    }
    let _ = pump.join();
    let status = child
        .wait()
        .with_context(|| format!("waiting for {shown}"))?;
    let wall = start.elapsed();
    let kernel_log = out.join(KERNEL_LOG);
    let text = match fs::read_to_string(&json) {
        Ok(t) => t,
        Err(_) => bail!(
            "kunit.py failed to configure or build the {os} kernel ({status}, after {}s; no \
             results in {}); log {}:\n{}",
            wall.as_secs(),
            json.display(),
            log.display(),
            kbuild::failure_excerpt(&log)
        ),
    };
    let results = parse_json(&text).with_context(|| format!("reading {}", json.display()))?;
    if results.is_empty() {
        bail!(
            "the {os} KUnit kernel ran no tests ({status}): it did not boot or printed no \
             KTAP; kernel output {}, log {}",
            kernel_log.display(),
            log.display()
        );
    }
    let mut notes = Vec::new();
    let counts = Counts::of(&results);
    if let Some(n) = kunit_summary
        .as_deref()
        .and_then(|s| s.strip_prefix("Ran "))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
    {
        if n != counts.total() {
            notes.push(format!(
                "kunit.py counted {n} tests, its JSON holds {} (suites without any case \
                 count in the JSON only)",
                counts.total()
            ));
        }
    }
    if !status.success() && counts.failed + counts.errors == 0 {
        notes.push(format!(
            "kunit.py exited with {status} although no test failed; see {}",
            log.display()
        ));
    }
    let mut link_problems = Vec::new();
    if os == "rust" {
        let migrated = verify_link::read_migrated(&crate_dir.join("MIGRATED"))?;
        let members: HashSet<String> = archive::thin_member_paths(&out.join("vmlinux.a"))?
            .iter()
            .map(|p| {
                p.strip_prefix(out)
                    .unwrap_or(p)
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let (p, n) = check_rust_link(out, &migrated, &members);
        link_problems = p;
        notes.extend(n);
    }
    Ok(Run {
        os: os.to_string(),
        out: out.to_path_buf(),
        results,
        wall,
        elapsed,
        kunit_summary,
        link_problems,
        notes,
    })
}

fn secs(d: f64) -> String {
    format!("{d:.1}s")
}

/// One kernel's summary lines.
fn render_run(run: &Run) -> String {
    let mut s = String::new();
    let counts = Counts::of(&run.results);
    let _ = writeln!(s, "kunit {}: {counts}", run.os);
    let t = match run.elapsed {
        Some(e) => format!(
            "configure {}, build {}, tests {}, total {}",
            secs(e.configuring),
            secs(e.building),
            secs(e.running),
            secs(run.wall.as_secs_f64())
        ),
        None => format!("total {}", secs(run.wall.as_secs_f64())),
    };
    let _ = writeln!(s, "  time: {t}");
    if let Some(k) = &run.kunit_summary {
        let _ = writeln!(s, "  kunit.py: {k}");
    }
    let _ = writeln!(
        s,
        "  build dir: {} (log {LOG}, kernel output {KERNEL_LOG})",
        run.out.display()
    );
    let failed: Vec<_> = run
        .results
        .iter()
        .filter(|(_, st)| st.is_failure())
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "  failed ({}):", failed.len());
        for (id, st) in failed {
            let _ = writeln!(s, "    {id}  ({st})");
        }
    }
    if run.os == "rust" {
        if run.link_problems.is_empty() {
            let _ = writeln!(
                s,
                "  link: {RUST_OBJECT} linked, no migrated C object linked"
            );
        } else {
            for p in &run.link_problems {
                let _ = writeln!(s, "  link problem: {p}");
            }
        }
    }
    for n in &run.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

/// `uml-harness kunit`.
pub fn run(ctx: &Ctx, args: &KunitArgs) -> Result<()> {
    let mut kernels: Vec<&str> = Vec::new();
    for os in &args.os {
        if !matches!(os.as_str(), "c" | "rust") {
            bail!("unknown --os {os}: expected c or rust");
        }
        if !kernels.contains(&os.as_str()) {
            kernels.push(os);
        }
    }
    if args.jobs == Some(0) {
        bail!("--jobs must be at least 1");
    }
    let jobs = args.jobs.unwrap_or_else(kbuild::default_jobs);
    let crate_dir = check_crate_dir(
        &args
            .crate_dir
            .clone()
            .unwrap_or_else(|| ctx.repo.join("arch-um-rs")),
    )?;
    kernel_src::ensure(ctx)?;

    let mut runs: BTreeMap<&str, Run> = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    for os in &kernels {
        match run_one(ctx, os, jobs, &crate_dir) {
            Ok(r) => {
                print!("{}", render_run(&r));
                runs.insert(os, r);
            }
            Err(e) => {
                println!("kunit {os}: FAILED to build or boot (details below)");
                problems.push(format!("{os} kernel: {e:#}"));
            }
        }
    }
    if let Some(r) = runs.get("rust") {
        let c = Counts::of(&r.results);
        if c.failed + c.errors > 0 {
            problems.push(format!(
                "the rust kernel has {} failing test(s)",
                c.failed + c.errors
            ));
        }
        problems.extend(r.link_problems.iter().map(|p| format!("rust link: {p}")));
    }
    match (runs.get("c"), runs.get("rust")) {
        (Some(c), Some(rust)) => {
            let cmp = compare(&c.results, &rust.results);
            let (pc, pr) = (Counts::of(&c.results), Counts::of(&rust.results));
            println!("comparison c -> rust:");
            match render_comparison(&cmp) {
                Some(text) => print!("{text}"),
                None => println!("  same tests, same results"),
            }
            if cmp.same_passes() {
                println!(
                    "  rust passes the same {} tests as c ({} vs {} wall)",
                    pr.passed,
                    secs(c.wall.as_secs_f64()),
                    secs(rust.wall.as_secs_f64())
                );
            } else {
                problems.push(format!(
                    "the rust kernel's passing tests differ from the c kernel's ({} on c, {} \
                     on rust; see the comparison above)",
                    pc.passed, pr.passed
                ));
            }
        }
        _ if kernels.len() == 1 => {
            println!("(no comparison: only the {} kernel was run)", kernels[0]);
        }
        _ => println!("(no comparison: a kernel did not run)"),
    }
    if problems.is_empty() {
        println!("kunit: ok");
        return Ok(());
    }
    bail!(
        "kunit: {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON_SAMPLE: &str = r#"{
        "name": "KUnit Test Group",
        "sub_groups": [
            {"name": "example", "sub_groups": [
                {"name": "example_params_test", "sub_groups": [], "test_cases": [
                    {"name": "example value 1", "status": "PASS"},
                    {"name": "example value 0", "status": "SKIP"}]}
             ], "test_cases": [
                {"name": "example_simple_test", "status": "PASS"},
                {"name": "example_skip_test", "status": "SKIP"},
                {"name": "", "status": "ERROR"}],
             "arch": "um"},
            {"name": "string", "sub_groups": [], "test_cases": [
                {"name": "string_test_memset16", "status": "FAIL"},
                {"name": "string_test_memset16", "status": "PASS"}]}
        ],
        "test_cases": [{"name": "kunit_fault", "status": "SKIP"}],
        "lab_name": null
    }"#;

    fn id(suite: &str, test: &str) -> TestId {
        TestId {
            suite: suite.into(),
            test: test.into(),
        }
    }

    #[test]
    fn json_is_flattened() {
        let r = parse_json(JSON_SAMPLE).unwrap();
        let got: Vec<(String, Status)> = r.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let want = [
            ("example.(missing #3)", Status::Error),
            ("example.example_params_test[example value 0]", Status::Skip),
            ("example.example_params_test[example value 1]", Status::Pass),
            ("example.example_simple_test", Status::Pass),
            ("example.example_skip_test", Status::Skip),
            ("kunit_fault (whole suite)", Status::Skip),
            ("string.string_test_memset16", Status::Fail),
            ("string.string_test_memset16 #2", Status::Pass),
        ];
        assert_eq!(
            got,
            want.iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<Vec<_>>()
        );
        let c = Counts::of(&r);
        assert_eq!(
            c,
            Counts {
                passed: 3,
                failed: 1,
                errors: 1,
                skipped: 3
            }
        );
        assert_eq!(c.total(), 8);
        assert!(
            c.to_string()
                .starts_with("3 passed, 2 failed, 3 skipped, 8 total")
        );
        assert!(parse_json("{").is_err());
    }

    #[test]
    fn comparison() {
        let c: Results = [
            (id("a", "same"), Status::Pass),
            (id("a", "regressed"), Status::Pass),
            (id("a", "fixed"), Status::Fail),
            (id("a", "skipped_both"), Status::Skip),
            (id("a", "c_only"), Status::Skip),
        ]
        .into_iter()
        .collect();
        let mut rust: Results = [
            (id("a", "same"), Status::Pass),
            (id("a", "regressed"), Status::Error),
            (id("a", "fixed"), Status::Pass),
            (id("a", "skipped_both"), Status::Skip),
            (id("b", "rust_only"), Status::Fail),
        ]
        .into_iter()
        .collect();
        let cmp = compare(&c, &rust);
        assert_eq!(cmp.pass_c_only, [(id("a", "regressed"), Status::Error)]);
        assert_eq!(cmp.pass_rust_only, [(id("a", "fixed"), Status::Fail)]);
        assert_eq!(cmp.only_c, [(id("a", "c_only"), Status::Skip)]);
        assert_eq!(cmp.only_rust, [(id("b", "rust_only"), Status::Fail)]);
        assert!(!cmp.same_passes());
        let text = render_comparison(&cmp).unwrap();
        assert!(
            text.contains("pass on c, not on rust (1):\n    a.regressed  (rust: ERROR)"),
            "{text}"
        );
        assert!(text.contains("only on rust (1):\n    b.rust_only  (rust: FAIL)"));

        // Tests skipped on one side only do not change the set of passes.
        rust.insert(id("a", "regressed"), Status::Pass);
        rust.insert(id("a", "fixed"), Status::Fail);
        let cmp = compare(&c, &rust);
        assert!(cmp.same_passes(), "{cmp:?}");
        assert!(compare(&c, &c).same_passes());
        assert!(render_comparison(&compare(&c, &c)).is_none());
        // A pass present on one side only does.
        rust.insert(id("b", "new"), Status::Pass);
        assert!(!compare(&c, &rust).same_passes());
    }

    #[test]
    fn kunit_output_lines() {
        let e = parse_elapsed(
            "[16:05:16] Elapsed time: 136.483s total, 2.860s configuring, 130.046s building, \
             3.544s running",
        )
        .unwrap();
        assert_eq!(
            e,
            Elapsed {
                configuring: 2.86,
                building: 130.046,
                running: 3.544
            }
        );
        assert!(parse_elapsed("[16:05:16] Testing complete.").is_none());
        assert_eq!(
            progress_line("[16:03:03] Building KUnit Kernel ..."),
            Some("Building KUnit Kernel ...")
        );
        assert_eq!(
            progress_line("[16:05:16] [FAILED] input_test_grab"),
            Some("[FAILED] input_test_grab")
        );
        assert_eq!(progress_line("[16:05:16] [PASSED] input_test_grab"), None);
        assert_eq!(progress_line("  CC lib/x.o"), None);
        assert_eq!(
            progress_line("ERROR:root:make failed"),
            Some("ERROR:root:make failed")
        );
    }

    #[test]
    fn rust_arguments_name_the_crate() {
        let a = kunit_args(
            "rust",
            Path::new("/c/build/kunit-rust"),
            2,
            Path::new("/w/arch-um-rs"),
        );
        assert_eq!(
            a,
            [
                "run",
                "--arch=um",
                "--build_dir=/c/build/kunit-rust",
                "--jobs=2",
                "--json=/c/build/kunit-rust/harness-kunit.json",
                "--kconfig_add",
                "CONFIG_UM_OS_RUST=y",
                "--kconfig_add",
                "CONFIG_UM_OS_RUST_SRC=\"/w/arch-um-rs\"",
                "--make_options",
                "UM_OS_RUST_SRC=/w/arch-um-rs",
            ]
        );
        let c = kunit_args("c", Path::new("/o"), 3, Path::new("/w/arch-um-rs"));
        assert_eq!(c.len(), 5);
        assert!(!c.iter().any(|x| x.contains("RUST")));
    }

    #[test]
    fn crate_dir_is_checked() {
        let t = tempfile::tempdir().unwrap();
        let e = check_crate_dir(t.path()).unwrap_err().to_string();
        assert!(e.contains("no Cargo.toml"), "{e}");
        fs::write(t.path().join("Cargo.toml"), "").unwrap();
        fs::write(t.path().join("MIGRATED"), "").unwrap();
        assert_eq!(check_crate_dir(t.path()).unwrap(), t.path());
        let e = check_crate_dir(Path::new("/a b/arch-um-rs"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("contains ' '"), "{e}");
    }

    #[test]
    fn rust_link_check() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path();
        let migrated = vec!["file".to_string(), "stub".to_string()];
        let mut members: HashSet<String> = HashSet::new();
        let (p, _) = check_rust_link(out, &migrated, &members);
        assert!(p[0].contains("does not exist"), "{p:?}");
        fs::create_dir_all(out.join("arch/um/os-Linux/rust")).unwrap();
        fs::write(out.join(RUST_OBJECT), "").unwrap();
        let (p, _) = check_rust_link(out, &migrated, &members);
        assert!(p[0].contains("not a member"), "{p:?}");
        members.insert(RUST_OBJECT.into());
        let (p, n) = check_rust_link(out, &migrated, &members);
        assert!(p.is_empty() && n.is_empty(), "{p:?} {n:?}");
        // A stale migrated object is only a note; a linked one is a problem.
        fs::write(out.join("arch/um/os-Linux/file.o"), "").unwrap();
        members.insert("arch/x86/um/stub_segv.o".into());
        let (p, n) = check_rust_link(out, &migrated, &members);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].contains("arch/x86/um/stub_segv.o (migrated: stub in MIGRATED) is linked"),
            "{p:?}"
        );
        assert_eq!(n.len(), 1);
        assert!(n[0].contains("arch/um/os-Linux/file.o (migrated) is present"));
    }
}
