// SPDX-License-Identifier: GPL-2.0
//! Host-side teardown checks: when a UML kernel ends (by itself, on an mconsole
//! `halt`, across a `reboot`, or on a panic), none of its host processes and no
//! holder of its physical-memory file may survive it.
//!
//! While the kernel runs, a [`Tracker`] thread scans `/proc` every 100 ms and
//! records the instance's host processes by (pid, start time), so that a reused
//! pid is never mistaken for a survivor: the kernel's process group (the harness
//! starts it as a group leader and every host process of UML stays in it) and the
//! kernel's descendants (in case one left the group). It also records the memory
//! file the kernel holds open, by device and inode: the Rust layer's memfd
//! (`/memfd:uml-physmem (deleted)`), the C layer's unlinked `vm_file-XXXXXX` or
//! `O_TMPFILE` file in /dev/shm or $TMPDIR (`/dev/shm/#63 (deleted)`).
//!
//! Once the kernel's main process has exited (a zombie the harness has not reaped
//! yet), [`leftovers`] lists recorded processes that are still alive or zombies,
//! other members of the kernel's group, and other children of the harness: the
//! harness is a child subreaper, so orphans of the kernel are reparented to it.
//! Every process's descriptors and mappings are searched for the memory file.
//! After the harness reaped the kernel, it must have no child left at all.
//!
//! Cases, per kernel (the first runs on the suite's own boot, see `suite.rs`):
//! - `host_exit_no_leftovers`: the suite's boot, which ends by itself;
//! - `host_halt_no_leftovers`: a short boot with a few sleeping user processes,
//!   stopped with `uml_mconsole <socket> halt`;
//! - `host_reboot_no_leftovers`: the same, `reboot` first: UML re-execs itself
//!   (same pid) and runs the payload again; none of the first run's other host
//!   processes and no holder of its memory file may survive the re-exec; then
//!   `halt` and the checks of the halt case;
//! - `host_panic_no_leftovers`: the guest panics (`echo c > /proc/sysrq-trigger`
//!   once the host says go); no live process and no holder of the memory file may
//!   survive. UML's `os_dump_core` SIGTERMs its process group and aborts, which
//!   can leave zombies for the harness to reap: they are counted, not failed.
//!
//! Reading other processes' descriptors needs root (or the same user); the suite
//! runs as root.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::boot::{BootSpec, Guest};
use crate::paths::Ctx;
use crate::suite::{self, Report};

/// Printed by the payload once its background processes are started.
const MARK: &str = "@@TEARDOWN-UP@@";
/// Guest memory of the short boots.
const MEM: &str = "64M";
/// From boot to [`MARK`] (also after a reboot).
const UP_TIMEOUT: Duration = Duration::from_secs(60);
/// From a halt or a panic to the kernel's exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Whole-boot limit of the short boots.
const BOOT_LIMIT: Duration = Duration::from_secs(150);
/// How long host processes may take to die after the kernel exited.
const GRACE: Duration = Duration::from_secs(3);
/// Between two scans of /proc while the kernel runs.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Host processes the payload makes, besides the kernel: its helper processes,
/// /init, the payload's shell and two sleeps. Fewer means the check is blind.
const MIN_PROCESSES: usize = 4;

/// (pid, start time in clock ticks since boot): one host process, pid reuse aside.
pub type Key = (i32, u64);

/// What the checks need from `/proc/<pid>/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub starttime: u64,
}

impl ProcStat {
    pub fn key(&self) -> Key {
        (self.pid, self.starttime)
    }

    /// Exited, not reaped yet.
    pub fn zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }

    fn describe(&self) -> String {
        format!(
            "pid {} ({}, state {}, parent {})",
            self.pid, self.comm, self.state, self.ppid
        )
    }
}

/// Parses a `/proc/<pid>/stat` line. The command name is in parentheses and may
/// itself hold spaces and parentheses: the fields start after the last `)`.
pub fn parse_stat(s: &str) -> Option<ProcStat> {
    let open = s.find(" (")?;
    let close = s.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = s[..open].trim().parse().ok()?;
    let comm = s[open + 2..close].to_string();
    // Field 3 (state) is the first after the name; field 22 is the start time.
    let f: Vec<&str> = s[close + 1..].split_whitespace().collect();
    Some(ProcStat {
        pid,
        comm,
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        starttime: f.get(19)?.parse().ok()?,
    })
}

/// Pids of all processes (thread-group leaders) in `/proc`.
fn proc_pids() -> Vec<i32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// All host processes now (those that vanish while being read are left out).
pub fn snapshot() -> Vec<ProcStat> {
    proc_pids()
        .into_iter()
        .filter_map(|pid| parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?))
        .collect()
}

/// The processes of the instance whose main process is `kernel`: the kernel, the
/// members of its process group, and its descendants.
pub fn members(procs: &[ProcStat], kernel: i32) -> Vec<ProcStat> {
    let mut children: BTreeMap<i32, Vec<&ProcStat>> = BTreeMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut inside: BTreeSet<i32> = procs
        .iter()
        .filter(|p| p.pid == kernel || p.pgrp == kernel)
        .map(|p| p.pid)
        .collect();
    // Descendants of the kernel and of its group's members.
    let mut todo: Vec<i32> = inside.iter().copied().collect();
    let mut visited = BTreeSet::new();
    while let Some(pid) = todo.pop() {
        if !visited.insert(pid) {
            continue;
        }
        for c in children.get(&pid).into_iter().flatten() {
            inside.insert(c.pid);
            todo.push(c.pid);
        }
    }
    procs
        .iter()
        .filter(|p| inside.contains(&p.pid))
        .cloned()
        .collect()
}

/// Processes of a finished instance, split by state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Leftovers {
    pub alive: Vec<ProcStat>,
    pub zombies: Vec<ProcStat>,
}

impl Leftovers {
    fn from_iter<'a>(procs: impl Iterator<Item = &'a ProcStat>) -> Leftovers {
        let mut l = Leftovers::default();
        for p in procs {
            if p.zombie() {
                l.zombies.push(p.clone());
            } else {
                l.alive.push(p.clone());
            }
        }
        l
    }
}

/// The processes of `set` still in `procs` (same pid and start time).
pub fn survivors(procs: &[ProcStat], set: &BTreeSet<Key>) -> Leftovers {
    Leftovers::from_iter(procs.iter().filter(|p| set.contains(&p.key())))
}

/// After the kernel's main process `kernel` exited: every process but the kernel
/// itself that was recorded in `seen`, is in the kernel's process group, or is a
/// child of the harness (its subreaper).
pub fn leftovers(procs: &[ProcStat], seen: &BTreeSet<Key>, kernel: i32, harness: i32) -> Leftovers {
    Leftovers::from_iter(procs.iter().filter(|p| {
        p.pid != kernel && (seen.contains(&p.key()) || p.pgrp == kernel || p.ppid == harness)
    }))
}

/// Looks at the processes with `look` until none of the leftovers is alive, or
/// [`GRACE`] passed (killed processes take a moment to die); returns the last look.
fn settle(look: impl Fn(&[ProcStat]) -> Leftovers) -> Leftovers {
    let deadline = Instant::now() + GRACE;
    loop {
        let l = look(&snapshot());
        if l.alive.is_empty() || Instant::now() >= deadline {
            return l;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The guest's memory file, as the kernel held it open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemFile {
    pub dev: u64,
    pub ino: u64,
    /// The descriptor's link text, e.g. `/memfd:uml-physmem (deleted)`.
    pub link: String,
}

impl MemFile {
    /// The path where the file is still linked, if the link says so.
    fn linked_path(&self) -> Option<&Path> {
        if self.link.ends_with(" (deleted)") || !self.link.starts_with('/') {
            return None;
        }
        Some(Path::new(&self.link))
    }
}

/// Whether a descriptor's link target looks like UML's physical memory: the Rust
/// layer's memfd, the C layer's `vm_file-XXXXXX` (mkstemp) or an unlinked
/// `O_TMPFILE` file (shown as `<dir>/#<inode> (deleted)`).
pub fn is_memory_link(link: &str) -> bool {
    if link.starts_with("/memfd:uml-physmem") {
        return true;
    }
    let deleted = link.ends_with(" (deleted)");
    let path = link.strip_suffix(" (deleted)").unwrap_or(link);
    if !path.starts_with('/') {
        return false;
    }
    let name = path.rsplit('/').next().unwrap_or("");
    name.starts_with("vm_file-")
        || deleted
            && name
                .strip_prefix('#')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The memory files among the descriptors of process `pid`.
pub fn memory_files(pid: i32) -> Vec<MemFile> {
    let mut v: Vec<MemFile> = Vec::new();
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return v;
    };
    for e in rd.flatten() {
        let Ok(link) = fs::read_link(e.path()) else {
            continue;
        };
        let link = link.to_string_lossy().into_owned();
        if !is_memory_link(&link) {
            continue;
        }
        // Follows the magic link to the open file itself, linked or not.
        let Ok(m) = fs::metadata(e.path()) else {
            continue;
        };
        if !v.iter().any(|f| f.dev == m.dev() && f.ino == m.ino()) {
            v.push(MemFile {
                dev: m.dev(),
                ino: m.ino(),
                link,
            });
        }
    }
    v
}

/// (major, minor, inode) of a `/proc/<pid>/maps` line mapping a file.
pub fn parse_maps_line(line: &str) -> Option<(u64, u64, u64)> {
    let mut f = line.split_whitespace();
    let dev = f.nth(3)?;
    let ino: u64 = f.next()?.parse().ok()?;
    let (maj, min) = dev.split_once(':')?;
    let maj = u64::from_str_radix(maj, 16).ok()?;
    let min = u64::from_str_radix(min, 16).ok()?;
    (ino != 0).then_some((maj, min, ino))
}

/// A process that holds one of the memory files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    pub comm: String,
    /// Index into the files searched for.
    pub file: usize,
    pub fds: Vec<String>,
    pub mappings: usize,
}

/// Every process holding one of `files` open or mapped.
pub fn holders(files: &[MemFile]) -> Vec<Holder> {
    let ids: Vec<(u64, u64, u64)> = files
        .iter()
        .map(|f| {
            (
                nix::sys::stat::major(f.dev),
                nix::sys::stat::minor(f.dev),
                f.ino,
            )
        })
        .collect();
    let mut out = Vec::new();
    for pid in proc_pids() {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_default();
        let mut found: BTreeMap<usize, (Vec<String>, usize)> = BTreeMap::new();
        if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) {
            for e in rd.flatten() {
                let Ok(link) = fs::read_link(e.path()) else {
                    continue;
                };
                let link = link.to_string_lossy();
                let Some(i) = files.iter().position(|f| f.link == link) else {
                    continue;
                };
                // The same name could be another instance's file: compare the inode.
                let Ok(m) = fs::metadata(e.path()) else {
                    continue;
                };
                if let Some(i) = files[i..]
                    .iter()
                    .position(|f| f.dev == m.dev() && f.ino == m.ino())
                    .map(|j| i + j)
                {
                    let fd = e.file_name().to_string_lossy().into_owned();
                    found.entry(i).or_default().0.push(fd);
                }
            }
        }
        if let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) {
            for id in maps.lines().filter_map(parse_maps_line) {
                if let Some(i) = ids.iter().position(|x| *x == id) {
                    found.entry(i).or_default().1 += 1;
                }
            }
        }
        for (file, (mut fds, mappings)) in found {
            fds.sort_by_key(|f| f.parse::<u64>().unwrap_or(u64::MAX));
            out.push(Holder {
                pid,
                comm: comm.clone(),
                file,
                fds,
                mappings,
            });
        }
    }
    out
}

/// What a [`Tracker`] recorded.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Every host process of the instance seen, the kernel included.
    pub procs: BTreeMap<Key, String>,
    /// The most live processes of the instance at once, the kernel included.
    pub peak: usize,
    /// The memory files the kernel held, in the order first seen.
    pub files: Vec<MemFile>,
    pub samples: usize,
}

impl Seen {
    pub fn keys(&self) -> BTreeSet<Key> {
        self.procs.keys().copied().collect()
    }
}

/// Records the host processes and memory files of a running kernel.
pub struct Tracker {
    kernel: i32,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// One scan: records the instance's processes and the kernel's memory files;
/// returns the live members.
fn sample(kernel: i32, seen: &Mutex<Seen>) -> Vec<ProcStat> {
    let live: Vec<ProcStat> = members(&snapshot(), kernel)
        .into_iter()
        .filter(|p| !p.zombie())
        .collect();
    let kernel_alive = live.iter().any(|p| p.pid == kernel);
    let files = if kernel_alive {
        memory_files(kernel)
    } else {
        Vec::new()
    };
    let mut g = seen.lock().unwrap_or_else(|e| e.into_inner());
    g.samples += 1;
    g.peak = g.peak.max(live.len());
    for p in &live {
        g.procs.entry(p.key()).or_insert_with(|| p.comm.clone());
    }
    for f in files {
        if !g.files.iter().any(|x| x.dev == f.dev && x.ino == f.ino) {
            g.files.push(f);
        }
    }
    live
}

impl Tracker {
    /// Starts recording the instance whose main process is `kernel`.
    pub fn start(kernel: i32) -> Result<Tracker> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        sample(kernel, &seen);
        let (s2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name(format!("teardown-{kernel}"))
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    std::thread::sleep(SAMPLE_EVERY);
                    sample(kernel, &s2);
                }
            })
            .context("spawning the process tracker")?;
        Ok(Tracker {
            kernel,
            seen,
            stop,
            thread: Some(thread),
        })
    }

    /// Scans now; returns the instance's live host processes.
    pub fn sample_now(&self) -> Vec<ProcStat> {
        sample(self.kernel, &self.seen)
    }

    /// What was recorded so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the thread and returns what was recorded.
    pub fn stop(&mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.seen()
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The facts a case counted (its diag line) and its problems (its failure).
#[derive(Debug, Default)]
pub struct Findings {
    facts: Vec<String>,
    problems: Vec<String>,
}

impl Findings {
    pub fn fact(&mut self, s: impl Into<String>) {
        self.facts.push(s.into());
    }

    pub fn problem(&mut self, s: impl Into<String>) {
        self.problems.push(s.into());
    }

    /// Adds the diag line and the case to `rep`.
    pub fn report(self, rep: &mut Report, name: &str) {
        rep.diags.push(format!("{name}: {}", self.facts.join("; ")));
        let r = if self.problems.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(self.problems.join("\n")))
        };
        rep.check(name, r);
    }
}

/// `1 zombie`, `2 zombies`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn list(procs: &[ProcStat]) -> String {
    procs
        .iter()
        .map(ProcStat::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks, once the kernel's main process `kernel` has exited and before the
/// harness reaps it, that none of its other host processes is alive (nor a zombie,
/// unless `zombies_ok`) and no process holds its memory file. Stops the tracker.
pub fn check_after_exit(
    tracker: &mut Tracker,
    kernel: i32,
    zombies_ok: bool,
    when: &str,
    f: &mut Findings,
) {
    let seen = tracker.stop();
    let keys = seen.keys();
    let harness = std::process::id() as i32;
    let left = settle(|procs| leftovers(procs, &keys, kernel, harness));
    f.fact(format!(
        "{} seen ({} at most at once, {}), {} alive and {} {when}",
        count(seen.procs.len(), "host process", "host processes"),
        seen.peak,
        count(seen.samples, "scan", "scans"),
        left.alive.len(),
        count(left.zombies.len(), "zombie", "zombies"),
    ));
    if !left.alive.is_empty() {
        f.problem(format!(
            "{} of the guest alive {when}: {}",
            count(left.alive.len(), "host process", "host processes"),
            list(&left.alive)
        ));
    }
    if !left.zombies.is_empty() {
        if zombies_ok {
            f.fact(format!(
                "{} reaped by the harness (the subreaper), not by the kernel",
                count(left.zombies.len(), "zombie", "zombies")
            ));
        } else {
            f.problem(format!(
                "{} of the guest not reaped by the kernel {when}: {}",
                count(left.zombies.len(), "zombie", "zombies"),
                list(&left.zombies)
            ));
        }
    }
    check_memory(&seen.files, when, f);
}

/// No process may hold `files` open or mapped, and none may still be linked.
fn check_memory(files: &[MemFile], when: &str, f: &mut Findings) {
    if files.is_empty() {
        f.problem(
            "the kernel's memory file was never seen among its descriptors (expected \
             /memfd:uml-physmem, or an unlinked vm_file-* or O_TMPFILE file in /dev/shm or \
             $TMPDIR)",
        );
        return;
    }
    let holders = holders(files);
    for (i, file) in files.iter().enumerate() {
        let mine: Vec<&Holder> = holders.iter().filter(|h| h.file == i).collect();
        f.fact(format!(
            "memory file {} (inode {}): {} {when}",
            file.link,
            file.ino,
            count(mine.len(), "holder", "holders")
        ));
        for h in mine {
            f.problem(format!(
                "pid {} ({}) still holds the memory file {} {when}: descriptors [{}], {} mappings",
                h.pid,
                h.comm,
                file.link,
                h.fds.join(" "),
                h.mappings
            ));
        }
        if let Some(p) = file.linked_path() {
            if fs::metadata(p).is_ok_and(|m| m.dev() == file.dev && m.ino() == file.ino) {
                f.problem(format!(
                    "the memory file {} still exists {when}",
                    p.display()
                ));
            }
        }
    }
}

/// After the harness reaped the kernel: it has no child left, zombie or alive.
pub fn check_reaped(f: &mut Findings) {
    let harness = std::process::id() as i32;
    let kids: Vec<ProcStat> = snapshot()
        .into_iter()
        .filter(|p| p.ppid == harness)
        .collect();
    f.fact(format!(
        "{} of the harness after it reaped the kernel",
        count(kids.len(), "child", "children")
    ));
    if !kids.is_empty() {
        f.problem(format!(
            "the harness still has children after reaping the kernel: {}",
            list(&kids)
        ));
    }
}

/// The instance's live host processes now, with a minimum count (the checks are
/// blind without them).
fn running(tracker: &Tracker, f: &mut Findings) -> Vec<ProcStat> {
    let live = settled_sample(tracker);
    let others = live.iter().filter(|p| p.pid != tracker.kernel).count();
    if others < MIN_PROCESSES {
        f.problem(format!(
            "only {} besides the kernel while the payload ran, expected at least \
             {MIN_PROCESSES}: {}",
            count(others, "host process", "host processes"),
            list(&live)
        ));
    }
    live
}

/// The instance's live host processes once two scans [`SAMPLE_EVERY`]
/// apart found the same ones (at most after [`GRACE`]).
///
/// The payload prints its mark while its `sleep &` children may still be
/// in `execve`, which gives each a new host process. A reboot or halt sent
/// then found a process the scan had not seen, and the kernel half's
/// `kill_off_processes` (both layers) misses a task whose new address
/// space is not installed yet: its host process outlived the reboot,
/// holding the old memory, until the halt. The cases test what the kernel
/// leaves of the processes it knows, so they wait for the payload to be
/// still.
fn settled_sample(tracker: &Tracker) -> Vec<ProcStat> {
    let keys = |v: &[ProcStat]| v.iter().map(ProcStat::key).collect::<BTreeSet<Key>>();
    let deadline = Instant::now() + GRACE;
    let mut last = tracker.sample_now();
    loop {
        std::thread::sleep(SAMPLE_EVERY);
        let now = tracker.sample_now();
        if keys(&now) == keys(&last) || Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}

/// The umid directory must be gone after a clean exit.
fn check_umid_removed(dir: &Path, f: &mut Findings) {
    if dir.exists() {
        f.problem(format!(
            "the umid directory {} still exists after the kernel exited",
            dir.display()
        ));
    } else {
        f.fact("umid directory removed");
    }
}

/// A short boot whose payload starts two background sleeps, prints [`MARK`] and
/// runs `then` in the shell.
fn spec(kernel: &Path, then: &str) -> BootSpec {
    let script = format!("sleep 600 & sleep 600 & echo {MARK}; {then}");
    let mut s = BootSpec::new(
        kernel.to_path_buf(),
        vec!["/bin/sh".into(), "-c".into(), script],
    );
    s.mem = MEM.into();
    s.extra_args = vec!["quiet".into()];
    s.timeout = BOOT_LIMIT;
    s
}

fn mconsole_socket(guest: &Guest) -> std::path::PathBuf {
    guest.umid_dir().join("mconsole")
}

/// Whether zombies the kernel left unreaped are only reported: on the C
/// layer of 6.12, where about one halt or reboot in fifteen leaves one
/// (a race of its own, not ours to fix); the Rust layer must reap them all.
fn tolerate_zombies(os: &str) -> bool {
    os == "c"
}

fn halt_case(ctx: &Ctx, kernel: &Path, os: &str, f: &mut Findings) -> Result<()> {
    let mut guest = Guest::start(&spec(kernel, "wait"), ctx)?;
    let pid = guest.pid();
    let mut tracker = Tracker::start(pid)?;
    guest.wait_for_console(MARK, UP_TIMEOUT)?;
    let live = running(&tracker, f);
    f.fact(format!(
        "{} before halt",
        count(live.len(), "host process", "host processes")
    ));
    let umid_dir = guest.umid_dir();
    suite::mconsole(&mconsole_socket(&guest), &["halt"]).context("mconsole halt")?;
    suite::wait_kernel_exit(pid, EXIT_TIMEOUT).context("after mconsole halt")?;
    check_after_exit(&mut tracker, pid, tolerate_zombies(os), "after halt", f);
    check_umid_removed(&umid_dir, f);
    f.fact(format!("kernel {}", guest.stop()?));
    check_reaped(f);
    Ok(())
}

fn reboot_case(ctx: &Ctx, kernel: &Path, os: &str, f: &mut Findings) -> Result<()> {
    let mut guest = Guest::start(&spec(kernel, "wait"), ctx)?;
    let pid = guest.pid();
    let mut tracker = Tracker::start(pid)?;
    guest.wait_for_console(MARK, UP_TIMEOUT)?;
    let before: BTreeSet<Key> = running(&tracker, f)
        .iter()
        .filter(|p| p.pid != pid)
        .map(ProcStat::key)
        .collect();
    let old_files = tracker.seen().files;
    suite::mconsole(&mconsole_socket(&guest), &["reboot"]).context("mconsole reboot")?;
    guest
        .wait_for_console_count(MARK, 2, UP_TIMEOUT)
        .context("waiting for the payload to start again after mconsole reboot")?;
    let after = tracker.sample_now();
    let left = settle(|procs| survivors(procs, &before));
    let started = guest.console_so_far().matches(MARK).count();
    f.fact(format!(
        "{} besides the kernel before reboot, {} of them alive and {} after the re-exec; \
         payload started {started} times; {} after",
        count(before.len(), "host process", "host processes"),
        left.alive.len(),
        count(left.zombies.len(), "zombie", "zombies"),
        count(after.len(), "host process", "host processes"),
    ));
    if after.iter().all(|p| p.pid != pid) {
        f.problem(format!(
            "the kernel (pid {pid}) is not running after the reboot"
        ));
    }
    if !left.alive.is_empty() {
        f.problem(format!(
            "{} of the first run survived the reboot: {}",
            count(left.alive.len(), "host process", "host processes"),
            list(&left.alive)
        ));
    }
    if !left.zombies.is_empty() {
        f.problem(format!(
            "{} of the first run not reaped after the reboot: {}",
            count(left.zombies.len(), "zombie", "zombies"),
            list(&left.zombies)
        ));
    }
    check_memory(&old_files, "after the re-exec", f);
    let umid_dir = guest.umid_dir();
    suite::mconsole(&mconsole_socket(&guest), &["halt"])
        .context("mconsole halt after the reboot")?;
    suite::wait_kernel_exit(pid, EXIT_TIMEOUT).context("after mconsole halt")?;
    check_after_exit(&mut tracker, pid, tolerate_zombies(os), "after the halt", f);
    check_umid_removed(&umid_dir, f);
    f.fact(format!("kernel {}", guest.stop()?));
    check_reaped(f);
    Ok(())
}

fn panic_case(ctx: &Ctx, kernel: &Path, f: &mut Findings) -> Result<()> {
    let hostfs = tempfile::Builder::new()
        .prefix("uml-teardown-")
        .tempdir()
        .context("creating a temporary directory")?;
    let mut s = spec(
        kernel,
        &format!(
            "while [ ! -e /host/{go} ]; do sleep 0.1; done; echo c > /proc/sysrq-trigger; wait",
            go = suite::proto::GO_FILE
        ),
    );
    s.hostfs_root = Some(hostfs.path().to_path_buf());
    let mut guest = Guest::start(&s, ctx)?;
    let pid = guest.pid();
    let mut tracker = Tracker::start(pid)?;
    guest.wait_for_console(MARK, UP_TIMEOUT)?;
    let live = running(&tracker, f);
    f.fact(format!(
        "{} before the panic",
        count(live.len(), "host process", "host processes")
    ));
    let umid_dir = guest.umid_dir();
    suite::release_guest(hostfs.path(), "panic").context("telling the guest to panic")?;
    suite::wait_kernel_exit(pid, EXIT_TIMEOUT).context("after echo c > /proc/sysrq-trigger")?;
    // The panic line may still be in the console pipe.
    let until = Instant::now() + Duration::from_secs(3);
    while guest.panic_line().is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    match guest.panic_line() {
        Some(l) => f.fact(format!("console: {}", l.trim())),
        None => f.problem("the kernel exited without printing a panic"),
    }
    check_after_exit(&mut tracker, pid, true, "after the panic", f);
    // UML runs no exitcalls on a panic: the umid directory stays (the harness
    // removes its private uml_dir).
    f.fact(if umid_dir.exists() {
        "umid directory left behind (no exitcalls on a panic)"
    } else {
        "umid directory removed"
    });
    f.fact(format!("kernel {}", guest.stop()?));
    check_reaped(f);
    Ok(())
}

/// Runs one case: its diag line always, its failure if it found problems or could
/// not run to the end.
fn run_case(rep: &mut Report, name: &str, body: impl FnOnce(&mut Findings) -> Result<()>) {
    let t = Instant::now();
    let mut f = Findings::default();
    if let Err(e) = body(&mut f) {
        f.problem(format!("{e:#}"));
    }
    f.fact(format!("{:.1}s", t.elapsed().as_secs_f64()));
    f.report(rep, name);
}

/// The names of the cases [`run_cases`] reports, in order.
pub const CASES: [&str; 3] = [
    "host_halt_no_leftovers",
    "host_reboot_no_leftovers",
    "host_panic_no_leftovers",
];

/// The halt, reboot and panic cases, each a short boot of `kernel` (of
/// layer `os`: c, rust or a path).
pub fn run_cases(ctx: &Ctx, kernel: &Path, os: &str, rep: &mut Report) {
    run_case(rep, CASES[0], |f| halt_case(ctx, kernel, os, f));
    run_case(rep, CASES[1], |f| reboot_case(ctx, kernel, os, f));
    run_case(rep, CASES[2], |f| panic_case(ctx, kernel, f));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    fn ps(pid: i32, ppid: i32, pgrp: i32, state: char, start: u64) -> ProcStat {
        ProcStat {
            pid,
            comm: format!("p{pid}"),
            state,
            ppid,
            pgrp,
            starttime: start,
        }
    }

    #[test]
    fn parses_stat_lines() {
        let line = "22166 (linux) S 22138 22166 19656 0 -1 4194560 2469 0 0 0 9 14 0 0 20 0 1 0 \
                    143311 2221223936 5286 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1\n";
        assert_eq!(
            parse_stat(line),
            Some(ps(22166, 22138, 22166, 'S', 143311)).map(|mut p| {
                p.comm = "linux".into();
                p
            })
        );
        // A name with spaces and parentheses.
        let odd = "7 (a) b (c)) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0";
        let p = parse_stat(odd).unwrap();
        assert_eq!(
            (p.comm.as_str(), p.state, p.ppid, p.starttime),
            ("a) b (c)", 'Z', 1, 99)
        );
        assert!(p.zombie());
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn members_are_group_and_descendants() {
        let procs = vec![
            ps(1, 0, 1, 'S', 1),
            ps(100, 1, 100, 'S', 10),   // the harness
            ps(200, 100, 200, 'S', 20), // the kernel
            ps(201, 200, 200, 't', 21),
            ps(202, 201, 300, 'S', 22), // left the group, a grandchild
            ps(203, 1, 200, 'S', 23),   // reparented, still in the group
            ps(204, 100, 204, 'Z', 24), // another child of the harness
            ps(205, 202, 205, 'S', 25), // great-grandchild
        ];
        let mut m: Vec<i32> = members(&procs, 200).iter().map(|p| p.pid).collect();
        m.sort();
        assert_eq!(m, vec![200, 201, 202, 203, 205]);
    }

    #[test]
    fn leftovers_and_survivors() {
        let seen: BTreeSet<Key> = [(200, 20), (201, 21), (202, 22), (206, 26)].into();
        let procs = vec![
            ps(100, 1, 100, 'S', 10),   // the harness
            ps(200, 100, 200, 'Z', 20), // the kernel, exited
            ps(201, 100, 200, 'S', 21), // alive, reparented
            ps(202, 100, 300, 'Z', 22), // zombie
            ps(203, 1, 200, 'S', 23),   // in the group, never recorded
            ps(204, 100, 204, 'S', 24), // a child of the harness
            ps(206, 1, 1, 'S', 99),     // pid reused by someone else
            ps(207, 1, 1, 'S', 27),     // unrelated
        ];
        let l = leftovers(&procs, &seen, 200, 100);
        let pids = |v: &[ProcStat]| v.iter().map(|p| p.pid).collect::<Vec<_>>();
        assert_eq!(pids(&l.alive), vec![201, 203, 204]);
        assert_eq!(pids(&l.zombies), vec![202]);
        let s = survivors(&procs, &seen);
        assert_eq!(pids(&s.alive), vec![201]);
        assert_eq!(pids(&s.zombies), vec![200, 202]);
    }

    #[test]
    fn memory_links() {
        assert!(is_memory_link("/memfd:uml-physmem (deleted)"));
        assert!(is_memory_link("/dev/shm/vm_file-AbC123 (deleted)"));
        assert!(is_memory_link("/tmp/vm_file-AbC123"));
        assert!(is_memory_link("/dev/shm/#63 (deleted)"));
        assert!(!is_memory_link("/dev/shm/#63"));
        assert!(!is_memory_link("/dev/shm/# (deleted)"));
        assert!(!is_memory_link("/memfd:other (deleted)"));
        assert!(!is_memory_link("pipe:[154025]"));
        assert!(!is_memory_link("socket:[1]"));
        assert!(!is_memory_link("/dev/null"));
        let f = MemFile {
            dev: 1,
            ino: 2,
            link: "/tmp/vm_file-x".into(),
        };
        assert_eq!(f.linked_path(), Some(Path::new("/tmp/vm_file-x")));
        let f = MemFile {
            link: "/memfd:uml-physmem (deleted)".into(),
            ..f
        };
        assert_eq!(f.linked_path(), None);
    }

    #[test]
    fn parses_maps_lines() {
        assert_eq!(
            parse_maps_line(
                "97339000-97800000 rw-s 37339000 00:01 152                                \
                 /memfd:uml-physmem (deleted)"
            ),
            Some((0, 1, 152))
        );
        assert_eq!(
            parse_maps_line("7c38b000-7c800000 rw-s 1c38b000 fd:1b 63 /dev/shm/#63 (deleted)"),
            Some((0xfd, 0x1b, 63))
        );
        assert_eq!(
            parse_maps_line("7ffd5000-7fff6000 rw-p 00000000 00:00 0                  [stack]"),
            None
        );
        assert_eq!(parse_maps_line("short line"), None);
    }

    /// A memfd named like the Rust layer's, held by a child process: found by
    /// descriptor, and gone when the child is.
    #[test]
    fn finds_holders_of_a_memory_file() {
        use std::os::fd::AsRawFd;
        // Close-on-exec: the other tests' children must not inherit it.
        let fd = nix::sys::memfd::memfd_create(
            c"uml-physmem",
            nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
        )
        .unwrap();
        let raw = fd.as_raw_fd();
        let ino = fs::metadata(format!("/proc/self/fd/{raw}")).unwrap().ino();
        let me = memory_files(std::process::id() as i32)
            .into_iter()
            .find(|f| f.ino == ino)
            .unwrap();
        assert_eq!(me.link, "/memfd:uml-physmem (deleted)");
        // Only this child inherits it, as descriptor 3.
        let mut cmd = Command::new("sleep");
        cmd.arg("100");
        // It makes one system call (dup2, or fcntl), which is async-signal-safe.
        // SAFETY: the closure runs in the forked child before exec.
        unsafe {
            cmd.pre_exec(move || {
                if raw == 3 {
                    nix::fcntl::fcntl(
                        3,
                        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                    )?;
                } else {
                    nix::unistd::dup2(raw, 3)?;
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        drop(fd);
        let h = holders(std::slice::from_ref(&me));
        let mine: Vec<&Holder> = h.iter().filter(|h| h.pid == child.id() as i32).collect();
        assert_eq!(mine.len(), 1, "{h:?}");
        assert_eq!(mine[0].fds, vec!["3".to_string()]);
        assert_eq!(mine[0].comm, "sleep");
        assert!(
            h.iter().all(|h| h.pid != std::process::id() as i32),
            "{h:?}"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(holders(&[me]).is_empty());
    }

    /// The tracker records a process tree and the leftovers check finds what
    /// survives its leader.
    #[test]
    fn tracks_a_process_tree() {
        crate::sys::become_subreaper();
        // sh (a group leader) starts a background sleep, then exits when told.
        let t = tempfile::tempdir().unwrap();
        let go = t.path().join("go");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "sleep 100 & while [ ! -e {} ]; do sleep 0.02; done",
                go.display()
            ))
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let mut tracker = Tracker::start(pid).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while tracker.sample_now().len() < 2 {
            assert!(
                Instant::now() < deadline,
                "the background sleep never appeared"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        fs::write(&go, "").unwrap();
        // Wait until sh exited (a zombie: not reaped yet).
        crate::suite::wait_kernel_exit(pid, Duration::from_secs(10)).unwrap();
        let mut f = Findings::default();
        check_after_exit(&mut tracker, pid, false, "after exit", &mut f);
        let all = f.problems.join("\n");
        // The background sleep, reparented to this process (other tests may run
        // children of their own meanwhile).
        let me = std::process::id() as i32;
        let orphan = snapshot()
            .into_iter()
            .find(|p| p.pgrp == pid && p.ppid == me && p.comm == "sleep")
            .expect("the orphaned sleep");
        assert!(
            all.contains(&format!("pid {} (sleep, state S, parent {me})", orphan.pid)),
            "{all}"
        );
        assert!(all.contains("of the guest alive after exit: pid "), "{all}");
        assert!(all.contains("memory file was never seen"), "{all}");
        // Clean up: sh and the orphaned sleep (reparented to this process).
        crate::sys::kill_group(
            nix::unistd::Pid::from_raw(pid),
            nix::unistd::Pid::from_raw(pid),
            Duration::from_secs(5),
        )
        .unwrap();
        let _ = child.try_wait();
    }
}
