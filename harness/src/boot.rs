// SPDX-License-Identifier: GPL-2.0
//! Booting a UML kernel with the harness initramfs and a guest payload.
//!
//! The kernel runs in its own process group (UML's `os_dump_core` SIGTERMs its whole
//! group on a panic, and all its host helper and user processes stay in that group),
//! pinned to one CPU, with a private `uml_dir` as working directory and a core size limit
//! of 0. Its console (`con0=fd:0,fd:1`) and stderr go to one pipe that a reader thread
//! echoes live and records. The guest's `/init` prints an exit marker with the payload's
//! status (see [`crate::protocol`]). Whatever happens (success, panic, timeout, Ctrl-C,
//! an early return of the caller), the group is SIGKILLed, reaped, and the `uml_dir` with
//! the umid directory is removed.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::paths::Ctx;
use crate::{initramfs, protocol, signals, sys};

/// UML's COMMAND_LINE_SIZE (arch/um/include/asm/setup.h).
const COMMAND_LINE_SIZE: usize = 4096;
/// Debian's prebuilt UML kernel (package user-mode-linux).
pub const DEBIAN_UML: &str = "/usr/bin/linux.uml";
/// Console lines shown with an error.
const TAIL_LINES: usize = 20;

/// What to boot and how.
#[derive(Debug, Clone)]
pub struct BootSpec {
    /// The UML kernel binary.
    pub kernel: PathBuf,
    /// `mem=` (e.g. `256M`).
    pub mem: String,
    /// Host CPU to pin the kernel and all its host processes to; `None` = no pinning.
    pub cpu: Option<usize>,
    /// The payload argv, run by `/init` with stdin from /dev/null.
    pub cmd: Vec<String>,
    /// Block devices, passed as `ubd0=`, `ubd1=`, ... in order.
    pub ubd: Vec<PathBuf>,
    /// Passed as `hostfs=<dir>`; `/init` then mounts hostfs on `/host`.
    pub hostfs_root: Option<PathBuf>,
    /// More kernel command-line arguments (e.g. `quiet`, `loglevel=8`).
    pub extra_args: Vec<String>,
    /// Wall-clock limit from start to the exit marker (boot plus payload).
    pub timeout: Duration,
    /// Copy the console to the harness's stdout as it arrives.
    pub echo_console: bool,
    /// Environment variables set for the kernel process (and so for the host
    /// helpers it runs, e.g. `PATH` and `DISPLAY` for the channels' helpers),
    /// on top of the harness's own environment.
    pub env: Vec<(String, String)>,
    /// A network namespace file (`/run/netns/NAME`) the kernel runs in, with all its
    /// host processes; `None` = the harness's own.
    pub netns: Option<PathBuf>,
}

impl BootSpec {
    /// A spec with the defaults: 256M, pinned to the first allowed CPU, 120 s, no echo.
    pub fn new(kernel: PathBuf, cmd: Vec<String>) -> BootSpec {
        BootSpec {
            kernel,
            mem: "256M".into(),
            cpu: sys::allowed_cpus().ok().and_then(|c| c.first().copied()),
            cmd,
            ubd: Vec::new(),
            hostfs_root: None,
            extra_args: Vec::new(),
            timeout: Duration::from_secs(120),
            echo_console: false,
            env: Vec::new(),
            netns: None,
        }
    }
}

/// How a guest run ended.
#[derive(Debug, Clone)]
pub struct BootOutcome {
    /// The payload's exit status (from the exit marker).
    pub exit_code: i32,
    /// The whole console (kernel messages and payload output), `\r` removed.
    pub console: String,
}

/// The kernel binary for `c`, `rust` (`<cache>/build/<os>/linux`), `debian` or a path.
pub fn kernel_path(ctx: &Ctx, os: &str) -> Result<PathBuf> {
    let path = match os {
        "c" | "rust" => {
            let p = ctx.build_dir(os).join("linux");
            if !p.is_file() {
                bail!(
                    "{} does not exist: build it with `uml-harness build --os {os}`",
                    p.display()
                );
            }
            p
        }
        "debian" => {
            let p = PathBuf::from(DEBIAN_UML);
            if !p.is_file() {
                bail!("{DEBIAN_UML} does not exist: install the user-mode-linux package");
            }
            p
        }
        other => {
            let p = PathBuf::from(other);
            if !p.is_file() {
                bail!("no kernel `{other}`: expected c, rust, debian or the path of a UML kernel");
            }
            std::path::absolute(&p).with_context(|| format!("resolving {}", p.display()))?
        }
    };
    check_kernel(&path)?;
    Ok(path)
}

/// Refuses a kernel path that is not an executable file.
fn check_kernel(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("the kernel {} does not exist", path.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        bail!("the kernel {} is not an executable file", path.display());
    }
    Ok(())
}

/// The host argv of the kernel (UML joins it into the kernel command line).
pub fn kernel_args(
    spec: &BootSpec,
    initrd: &Path,
    umid: &str,
    uml_dir: &Path,
) -> Result<Vec<String>> {
    let mut args = vec![
        format!("mem={}", spec.mem),
        format!("initrd={}", initrd.display()),
        format!("umid={umid}"),
        format!("uml_dir={}", uml_dir.display()),
        "con0=fd:0,fd:1".into(),
        "con=null".into(),
        "ssl=null".into(),
        "rdinit=/init".into(),
    ];
    for (i, u) in spec.ubd.iter().enumerate() {
        args.push(format!("ubd{i}={}", u.display()));
    }
    if let Some(h) = &spec.hostfs_root {
        args.push(format!("hostfs={}", h.display()));
    }
    args.extend(spec.extra_args.iter().cloned());
    args.push(protocol::encode_cmd(&spec.cmd)?);
    for a in &args {
        if a.contains(char::is_whitespace) || a.is_empty() {
            bail!("kernel argument {a:?} is empty or contains whitespace");
        }
    }
    let len: usize = args.iter().map(|a| a.len() + 1).sum();
    // Leave room for what UML adds (e.g. root=98:0).
    if len > COMMAND_LINE_SIZE - 256 {
        bail!(
            "the kernel command line would be {len} bytes, more than UML takes \
             ({COMMAND_LINE_SIZE} bytes); shorten the guest command (it is hex-encoded, so it \
             counts twice)"
        );
    }
    Ok(args)
}

#[derive(Default)]
struct ConsoleState {
    /// Complete lines, each ending in `\n`.
    text: String,
    /// Bytes after the last `\n`.
    partial: Vec<u8>,
    eof: bool,
    started: bool,
    exit: Option<i32>,
    panic: Option<String>,
}

impl ConsoleState {
    fn all(&self) -> String {
        let mut s = self.text.clone();
        s.push_str(&String::from_utf8_lossy(&self.partial));
        s
    }

    fn add(&mut self, chunk: &[u8]) {
        self.partial.extend_from_slice(chunk);
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line[..nl]);
            let line = line.trim_end_matches('\r');
            if line.contains(protocol::START_MARKER) {
                self.started = true;
            }
            if self.exit.is_none() {
                self.exit = protocol::parse_exit_marker(line);
            }
            if self.panic.is_none() && line.contains(protocol::PANIC_NEEDLE) {
                self.panic = Some(line.trim().to_string());
            }
            self.text.push_str(line);
            self.text.push('\n');
        }
    }
}

struct Console {
    state: Mutex<ConsoleState>,
    cond: Condvar,
}

impl Console {
    fn lock(&self) -> MutexGuard<'_, ConsoleState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for news for at most `d`.
    fn wait<'a>(
        &self,
        g: MutexGuard<'a, ConsoleState>,
        d: Duration,
    ) -> MutexGuard<'a, ConsoleState> {
        match self.cond.wait_timeout(g, d) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        }
    }
}

fn reader_thread(mut pipe: File, console: Arc<Console>, echo: bool) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let chunk = &buf[..n];
        if echo {
            let clean: Vec<u8> = chunk.iter().copied().filter(|&b| b != b'\r').collect();
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&clean);
            let _ = out.flush();
        }
        console.lock().add(chunk);
        console.cond.notify_all();
    }
    console.lock().eof = true;
    console.cond.notify_all();
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Hints for well-known ways a boot fails.
fn hints(console: &str) -> Vec<&'static str> {
    let mut h = Vec::new();
    let has = |s: &str| console.contains(s);
    if has("Unable to mount root fs") || has("No working init found") {
        h.push("the kernel did not take the initramfs: it needs CONFIG_BLK_DEV_INITRD=y and CONFIG_RD_GZIP=y");
    }
    if has("noexec") || (has("/dev/shm") && has("mmap")) {
        h.push("UML maps its physical memory from $TMPDIR or /dev/shm and needs it mounted without noexec");
    }
    if has("ptrace") && (has("failed") || has("Operation not permitted")) {
        h.push("the host refused ptrace (a seccomp or YAMA policy, or a container without CAP_SYS_PTRACE?)");
    }
    if has("Out of memory") || has("out of memory") || has("Too few physical memory") {
        h.push("the guest ran out of memory: raise --mem");
    }
    h
}

fn describe_status(st: Option<WaitStatus>) -> String {
    match st {
        Some(WaitStatus::Exited(_, c)) => format!("exited with status {c}"),
        Some(WaitStatus::Signaled(_, s, core)) => {
            format!(
                "was killed by {s}{}",
                if core { " (core dumped)" } else { "" }
            )
        }
        Some(other) => format!("{other:?}"),
        None => "is gone".into(),
    }
}

static SUBREAPER: Once = Once::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A running UML kernel.
pub struct Guest {
    pid: Pid,
    umid: String,
    kernel: PathBuf,
    dir: Option<tempfile::TempDir>,
    uml_dir: PathBuf,
    console: Arc<Console>,
    /// Write end of the kernel's stdin, held open so that con0 never reads EOF.
    stdin: Option<File>,
    started_at: Instant,
    timeout: Duration,
    status: Option<WaitStatus>,
    cleaned: bool,
}

impl Guest {
    /// Builds (or reuses) the initramfs and starts the kernel.
    pub fn start(spec: &BootSpec, ctx: &Ctx) -> Result<Guest> {
        check_kernel(&spec.kernel)?;
        let initrd = initramfs::ensure(ctx)?;
        Guest::start_with_initrd(spec, &initrd)
    }

    /// Starts the kernel with a given initramfs.
    fn start_with_initrd(spec: &BootSpec, initrd: &Path) -> Result<Guest> {
        SUBREAPER.call_once(sys::become_subreaper);
        if spec.cmd.is_empty() {
            bail!("no guest command given");
        }
        check_kernel(&spec.kernel)?;
        let kernel = std::path::absolute(&spec.kernel)
            .with_context(|| format!("resolving {}", spec.kernel.display()))?;
        for u in &spec.ubd {
            if !u.exists() {
                bail!("ubd image {} does not exist", u.display());
            }
        }
        if let Some(h) = &spec.hostfs_root {
            if !h.is_dir() {
                bail!("hostfs root {} is not a directory", h.display());
            }
        }
        let cpuset = spec.cpu.map(sys::single_cpu_set).transpose()?;
        // Close-on-exec: the kernel does not inherit it.
        let netns = spec
            .netns
            .as_ref()
            .map(|p| {
                File::open(p).with_context(|| format!("opening network namespace {}", p.display()))
            })
            .transpose()?;
        let dir = tempfile::Builder::new()
            .prefix("uml-harness-")
            .tempdir()
            .context("creating the private uml_dir")?;
        let uml_dir = dir.path().to_path_buf();
        let umid = format!(
            "harness-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let args = kernel_args(spec, initrd, &umid, &uml_dir)?;
        let (out_r, out_w) = sys::pipe()?;
        let (in_r, in_w) = sys::pipe()?;
        let mut cmd = Command::new(&kernel);
        cmd.args(&args)
            .current_dir(&uml_dir)
            .stdin(Stdio::from(in_r))
            .stdout(Stdio::from(out_w.try_clone().context("dup")?))
            .stderr(Stdio::from(out_w))
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .process_group(0);
        // It makes up to three system calls (setns, sched_setaffinity, setrlimit) through nix
        // wrappers that neither allocate nor lock; `cpuset` is a plain bitmask copied into
        // the closure, `netns` an open descriptor moved into it.
        // SAFETY: the closure runs in the forked child before exec and is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(ns) = &netns {
                    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                }
                if let Some(set) = &cpuset {
                    nix::sched::sched_setaffinity(Pid::from_raw(0), set)?;
                }
                // A panicking UML aborts: no multi-gigabyte core files.
                nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)?;
                Ok(())
            });
        }
        let pid = signals::spawn_registered(|| {
            let child = cmd
                .spawn()
                .with_context(|| format!("starting {} {}", kernel.display(), args.join(" ")))?;
            Ok((child.id() as i32, uml_dir.clone()))
        })?;
        let pid = Pid::from_raw(pid);
        // The parent's copies of the child's ends of the pipes.
        drop(cmd);
        let console = Arc::new(Console {
            state: Mutex::new(ConsoleState::default()),
            cond: Condvar::new(),
        });
        let c2 = Arc::clone(&console);
        let echo = spec.echo_console;
        std::thread::Builder::new()
            .name(format!("console-{umid}"))
            .spawn(move || reader_thread(out_r, c2, echo))
            .context("spawning the console reader")?;
        Ok(Guest {
            pid,
            umid,
            kernel,
            dir: Some(dir),
            uml_dir,
            console,
            stdin: Some(in_w),
            started_at: Instant::now(),
            timeout: spec.timeout,
            status: None,
            cleaned: false,
        })
    }

    /// `<uml_dir>/<umid>`: the umid directory (pid file, mconsole socket).
    pub fn umid_dir(&self) -> PathBuf {
        self.uml_dir.join(&self.umid)
    }

    /// The host pid of the kernel's main process (also its process group).
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Everything the console printed so far.
    pub fn console_so_far(&self) -> String {
        self.console.lock().all()
    }

    /// The kernel's panic line, if it printed one.
    pub fn panic_line(&self) -> Option<String> {
        self.console.lock().panic.clone()
    }

    fn poll_exit(&mut self) {
        if self.status.is_none() {
            if let Ok(st) = waitpid(self.pid, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                if st != WaitStatus::StillAlive {
                    self.status = Some(st);
                }
            }
        }
    }

    fn failure(&self, what: String) -> anyhow::Error {
        let console = self.console_so_far();
        let mut msg = format!("{what}\nkernel: {}\n", self.kernel.display());
        for h in hints(&console) {
            msg.push_str(&format!("hint: {h}\n"));
        }
        msg.push_str(&format!(
            "--- last {TAIL_LINES} console lines ---\n{}",
            tail(&console, TAIL_LINES)
        ));
        anyhow::anyhow!(msg)
    }

    /// Returns once `needle` appeared on the console; fails on a panic, the kernel's
    /// exit, an interruption or after `timeout`.
    pub fn wait_for_console(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        self.wait_for_console_count(needle, 1, timeout)
    }

    /// Returns once `needle` appeared `n` times on the console (counting from the
    /// start of the boot, e.g. a payload started again after a reboot); fails like
    /// [`Guest::wait_for_console`].
    pub fn wait_for_console_count(
        &mut self,
        needle: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        // Complete lines never change: count their matches once, from `from` on.
        let mut from = 0usize;
        let mut seen = 0usize;
        let mut exited_at: Option<Instant> = None;
        loop {
            self.poll_exit();
            {
                let console = Arc::clone(&self.console);
                let g = console.lock();
                while let Some(i) = g.text[from..].find(needle) {
                    seen += 1;
                    from += i + needle.len();
                }
                if seen >= n {
                    return Ok(());
                }
                // The next match may straddle the last complete line and the partial one.
                let mut start = from.max(g.text.len().saturating_sub(needle.len()));
                while !g.text.is_char_boundary(start) {
                    start -= 1;
                }
                from = start;
                let mut fresh = g.text[start..].to_string();
                fresh.push_str(&String::from_utf8_lossy(&g.partial));
                let total = seen + fresh.matches(needle).count();
                if total >= n {
                    return Ok(());
                }
                let what = if n == 1 {
                    format!("{needle:?}")
                } else {
                    format!("{needle:?} {n} times (seen {total})")
                };
                if let Some(p) = g.panic.clone() {
                    drop(g);
                    return Err(self.failure(format!("the guest kernel panicked: {p}")));
                }
                let exited = self.status.is_some()
                    && exited_at.get_or_insert_with(Instant::now).elapsed()
                        > Duration::from_secs(2);
                if g.eof || exited {
                    drop(g);
                    // EOF means the kernel is exiting: let it be reaped, so the
                    // message gives its real status, not a race with waitpid.
                    self.wait_for_exit(Duration::from_secs(2));
                    return Err(self.failure(format!(
                        "the kernel {} before printing {what}",
                        describe_status(self.status)
                    )));
                }
                if let Some(sig) = signals::interrupted() {
                    drop(g);
                    bail!("interrupted by signal {sig}");
                }
                let now = Instant::now();
                if now >= deadline {
                    drop(g);
                    return Err(self.failure(format!(
                        "{what} did not appear on the console within {}s",
                        timeout.as_secs()
                    )));
                }
                let _g = console.wait(g, (deadline - now).min(Duration::from_millis(100)));
            }
        }
    }

    /// Waits for the payload's exit marker and the kernel's exit, then cleans up.
    pub fn wait(mut self) -> Result<BootOutcome> {
        let r = self.wait_inner();
        let cleanup = self.cleanup();
        let outcome = r?;
        cleanup?;
        Ok(outcome)
    }

    fn wait_inner(&mut self) -> Result<BootOutcome> {
        let deadline = self.started_at + self.timeout;
        let console = Arc::clone(&self.console);
        let mut exited_at: Option<Instant> = None;
        loop {
            self.poll_exit();
            let g = console.lock();
            if let Some(code) = g.exit {
                drop(g);
                self.wait_for_exit(Duration::from_secs(10));
                return Ok(BootOutcome {
                    exit_code: code,
                    console: self.console_so_far(),
                });
            }
            if let Some(p) = g.panic.clone() {
                drop(g);
                // Let the kernel print its backtrace and abort.
                self.wait_for_exit(Duration::from_secs(3));
                return Err(self.failure(format!("the guest kernel panicked: {p}")));
            }
            if self.status.is_some() {
                // Collect the last console output (the pipe may be held by a straggler).
                let at = *exited_at.get_or_insert_with(Instant::now);
                if g.eof || at.elapsed() > Duration::from_secs(2) {
                    drop(g);
                    return Err(self.failure(format!(
                        "the kernel {} without the payload's exit marker",
                        describe_status(self.status)
                    )));
                }
            }
            if let Some(sig) = signals::interrupted() {
                drop(g);
                bail!("interrupted by signal {sig}");
            }
            let now = Instant::now();
            if now >= deadline {
                let stage = if g.started {
                    "the guest command did not finish"
                } else {
                    "the kernel did not reach /init"
                };
                drop(g);
                return Err(self.failure(format!(
                    "timeout: {stage} within {}s",
                    self.timeout.as_secs()
                )));
            }
            let _g = console.wait(g, (deadline - now).min(Duration::from_millis(50)));
        }
    }

    /// Gives the kernel up to `d` to exit by itself (after poweroff or a panic).
    fn wait_for_exit(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.poll_exit();
            if self.status.is_some() {
                // And its console output to drain.
                let end = Instant::now() + Duration::from_secs(1);
                let mut g = self.console.lock();
                while !g.eof && Instant::now() < end {
                    g = self.console.wait(g, Duration::from_millis(20));
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process group, reaps it and removes the uml_dir (with the umid
    /// directory). Idempotent.
    fn cleanup(&mut self) -> Result<()> {
        if self.cleaned {
            return Ok(());
        }
        self.cleaned = true;
        self.stdin.take();
        let killed = sys::kill_group(self.pid, self.pid, Duration::from_secs(5));
        if let Ok(Some(st)) = killed {
            self.status.get_or_insert(st);
        }
        signals::unregister(self.pid.as_raw());
        let removed = match self.dir.take() {
            Some(d) => d
                .close()
                .with_context(|| format!("removing {}", self.uml_dir.display())),
            None => Ok(()),
        };
        killed?;
        removed?;
        if self.uml_dir.exists() {
            bail!("{} still exists after cleanup", self.uml_dir.display());
        }
        Ok(())
    }

    /// Ends the guest without waiting for the payload (after a halt or a panic the
    /// kernel is gone already): kills what is left of its group, reaps it and removes
    /// the uml_dir. Returns how the kernel ended (e.g. `exited with status 0`).
    pub fn stop(mut self) -> Result<String> {
        self.cleanup()?;
        Ok(describe_status(self.status))
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Err(e) = self.cleanup() {
            eprintln!("uml-harness: cleaning up guest {}: {e:#}", self.umid);
        }
    }
}

/// `uml-harness run`.
pub fn run(ctx: &Ctx, args: &crate::cli::RunArgs) -> Result<i32> {
    let kernel = kernel_path(ctx, &args.os)?;
    let cpu = if args.no_pin {
        None
    } else {
        match args.cpu {
            Some(c) => Some(c),
            None => Some(
                *sys::allowed_cpus()?
                    .first()
                    .context("this process may run on no CPU")?,
            ),
        }
    };
    let mut extra_args = Vec::new();
    if !args.boot_log {
        extra_args.push("quiet".to_string());
    }
    extra_args.extend(args.kargs.iter().cloned());
    let cmd = if args.cmd.is_empty() {
        vec!["uname".to_string(), "-a".to_string()]
    } else {
        args.cmd.clone()
    };
    let spec = BootSpec {
        kernel,
        mem: args.mem.clone(),
        cpu,
        cmd,
        ubd: args.ubd.clone(),
        hostfs_root: args.hostfs.clone(),
        extra_args,
        timeout: Duration::from_secs(args.timeout),
        echo_console: true,
        env: Vec::new(),
        netns: None,
    };
    let t = Instant::now();
    let guest = Guest::start(&spec, ctx)?;
    let outcome = guest.wait()?;
    eprintln!(
        "uml-harness: guest command exited with status {} ({:.1}s, {})",
        outcome.exit_code,
        t.elapsed().as_secs_f64(),
        spec.kernel.display()
    );
    Ok(outcome.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BootSpec {
        let mut s = BootSpec::new(
            "/k".into(),
            vec!["/bin/sh".into(), "-c".into(), "exit 3".into()],
        );
        s.ubd = vec!["/a.img".into(), "/b.img".into()];
        s.hostfs_root = Some("/srv".into());
        s.extra_args = vec!["quiet".into()];
        s
    }

    #[test]
    fn args_layout() {
        let a = kernel_args(&spec(), Path::new("/i.cpio.gz"), "u1", Path::new("/d")).unwrap();
        assert_eq!(a[0], "mem=256M");
        assert!(a.contains(&"initrd=/i.cpio.gz".to_string()));
        assert!(a.contains(&"umid=u1".to_string()));
        assert!(a.contains(&"uml_dir=/d".to_string()));
        assert!(a.contains(&"ubd0=/a.img".to_string()));
        assert!(a.contains(&"ubd1=/b.img".to_string()));
        assert!(a.contains(&"hostfs=/srv".to_string()));
        let last = a.last().unwrap();
        assert_eq!(protocol::decode_cmd(last).unwrap(), spec().cmd);
    }

    #[test]
    fn args_refuse_too_long_and_spaces() {
        let mut s = spec();
        s.cmd = vec!["x".repeat(3000)];
        let e = kernel_args(&s, Path::new("/i"), "u", Path::new("/d")).unwrap_err();
        assert!(e.to_string().contains("command line"), "{e}");
        let mut s = spec();
        s.extra_args = vec!["a b".into()];
        assert!(kernel_args(&s, Path::new("/i"), "u", Path::new("/d")).is_err());
    }

    /// A stand-in for a UML kernel: a shell script given the kernel's arguments.
    fn fake(script: &str, timeout: u64) -> (tempfile::TempDir, BootSpec) {
        let t = tempfile::tempdir().unwrap();
        let k = t.path().join("linux");
        std::fs::write(&k, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut s = BootSpec::new(k, vec!["true".into()]);
        s.timeout = Duration::from_secs(timeout);
        (t, s)
    }

    fn gone(pid: i32) -> bool {
        nix::sys::signal::killpg(Pid::from_raw(pid), None) == Err(nix::errno::Errno::ESRCH)
    }

    #[test]
    fn fake_kernel_exit_status_and_cleanup() {
        // A straggler in the group must not survive the guest.
        let (_t, spec) = fake(
            "sleep 100 & echo booting; echo @@HARNESS-START@@; echo hello; \
             echo '@@HARNESS-EXIT 4@@'",
            20,
        );
        let mut g = Guest::start_with_initrd(&spec, Path::new("/nonexistent")).unwrap();
        let (pid, dir) = (g.pid(), g.umid_dir());
        assert!(dir.starts_with(std::env::temp_dir()));
        g.wait_for_console("hello", Duration::from_secs(10))
            .unwrap();
        assert!(g.console_so_far().contains("booting\n"));
        let out = g.wait().unwrap();
        assert_eq!(out.exit_code, 4);
        assert!(out.console.contains("hello\n@@HARNESS-EXIT 4@@"));
        assert!(gone(pid));
        assert!(!dir.parent().unwrap().exists());
    }

    #[test]
    fn spec_env_reaches_the_kernel_process() {
        let (_t, mut spec) = fake(
            "echo \"env=$UML_HARNESS_TEST_ENV\"; echo '@@HARNESS-EXIT 0@@'",
            20,
        );
        spec.env
            .push(("UML_HARNESS_TEST_ENV".into(), "a:b c".into()));
        let out = Guest::start_with_initrd(&spec, Path::new("/x"))
            .unwrap()
            .wait()
            .unwrap();
        assert!(out.console.contains("env=a:b c\n"), "{}", out.console);
    }

    #[test]
    fn fake_kernel_panic() {
        let (_t, spec) = fake(
            "echo 'Kernel panic - not syncing: test'; exec sleep 100",
            20,
        );
        let g = Guest::start_with_initrd(&spec, Path::new("/nonexistent")).unwrap();
        let pid = g.pid();
        let e = format!("{:#}", g.wait().unwrap_err());
        assert!(
            e.contains("panicked: Kernel panic - not syncing: test"),
            "{e}"
        );
        assert!(e.contains("--- last 20 console lines ---"), "{e}");
        assert!(gone(pid));
    }

    #[test]
    fn fake_kernel_timeout_and_early_exit() {
        let (_t, spec) = fake("echo early; exec sleep 100", 1);
        let g = Guest::start_with_initrd(&spec, Path::new("/nonexistent")).unwrap();
        let pid = g.pid();
        let e = format!("{:#}", g.wait().unwrap_err());
        assert!(
            e.contains("timeout: the kernel did not reach /init within 1s"),
            "{e}"
        );
        assert!(e.contains("early"), "{e}");
        assert!(gone(pid));

        let (_t, spec) = fake("echo 'Too few physical memory!'; exit 1", 20);
        let e = format!(
            "{:#}",
            Guest::start_with_initrd(&spec, Path::new("/x"))
                .unwrap()
                .wait()
                .unwrap_err()
        );
        assert!(
            e.contains("exited with status 1 without the payload's exit marker"),
            "{e}"
        );
        assert!(e.contains("hint: the guest ran out of memory"), "{e}");

        let (_t, spec) = fake("echo up; exit 0", 20);
        let mut g = Guest::start_with_initrd(&spec, Path::new("/x")).unwrap();
        let e = format!(
            "{:#}",
            g.wait_for_console("never", Duration::from_secs(10))
                .unwrap_err()
        );
        assert!(
            e.contains("exited with status 0 before printing \"never\""),
            "{e}"
        );
    }

    #[test]
    fn waits_for_the_nth_console_match() {
        // The second match straddles two writes and ends on a partial line.
        let (_t, spec) = fake(
            "echo 'mark one'; sleep 0.3; printf 'ma'; sleep 0.3; printf 'rk two'; \
             exec sleep 100",
            20,
        );
        let mut g = Guest::start_with_initrd(&spec, Path::new("/x")).unwrap();
        g.wait_for_console_count("mark", 2, Duration::from_secs(10))
            .unwrap();
        assert!(g.console_so_far().ends_with("mark two"));
        let e = format!(
            "{:#}",
            g.wait_for_console_count("mark", 3, Duration::from_secs(1))
                .unwrap_err()
        );
        assert!(
            e.contains("\"mark\" 3 times (seen 2) did not appear on the console within 1s"),
            "{e}"
        );
        assert_eq!(g.stop().unwrap(), "was killed by SIGKILL");
    }

    #[test]
    fn dropping_a_guest_kills_it() {
        let (_t, spec) = fake("exec sleep 100", 20);
        let g = Guest::start_with_initrd(&spec, Path::new("/x")).unwrap();
        let (pid, dir) = (g.pid(), g.umid_dir());
        drop(g);
        assert!(gone(pid));
        assert!(!dir.parent().unwrap().exists());
    }

    #[test]
    fn console_state_markers() {
        let mut c = ConsoleState::default();
        c.add(b"boot\r\n@@HARNESS-START@@\r\nhel");
        assert!(c.started);
        assert_eq!(c.all(), "boot\n@@HARNESS-START@@\nhel");
        c.add(b"lo\n@@HARNESS-EX");
        assert_eq!(c.exit, None);
        c.add(b"IT 3@@\r\n");
        assert_eq!(c.exit, Some(3));
        assert!(c.panic.is_none());
        c.add(b"[ 1.0] Kernel panic - not syncing: Attempted to kill init!\n");
        assert_eq!(
            c.panic.as_deref(),
            Some("[ 1.0] Kernel panic - not syncing: Attempted to kill init!")
        );
        assert_eq!(
            tail(&c.text, 2),
            "@@HARNESS-EXIT 3@@\n[ 1.0] Kernel panic - not syncing: Attempted to kill init!"
        );
    }
}
