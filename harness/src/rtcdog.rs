// SPDX-License-Identifier: GPL-2.0
//! `host_rtc_alarm`, `host_harddog`, `host_harddog_reaped`: the UML real-time clock
//! (`arch/um/drivers/rtc_kern.c`, `rtc_user.c`) and hardware watchdog (`harddog_kern.c`,
//! `harddog_user.c`), checked from the guest and the host on one boot per kernel. The
//! checks look only at what the host and the guest see, so they judge a C or a Rust host
//! half alike.
//!
//! * `host_rtc_alarm`: `/sys/class/rtc/rtc0` exists and its `since_epoch` is the host's
//!   time (within 2 s); the kernel process holds exactly one timerfd
//!   (`anon_inode:[timerfd]` in `/proc/PID/fd`), on `CLOCK_REALTIME`; `wakealarm` set to
//!   `+2` arms it on the host for at most 3 s (its `/proc/PID/fdinfo` `it_value`:
//!   `rtc_kern.c` subtracts the guest's system time in whole seconds from the alarm
//!   time, which the RTC took from the host's clock, so a guest clock a fraction of a
//!   second behind adds a second); the alarm fires on time: the `rtc` line of
//!   `/proc/interrupts` counts one more interrupt within 2 s of the alarm time, not
//!   before it, `wakealarm` reads empty again, and the
//!   host timer is disarmed; `+100` arms it for about 100 s and `0` disarms it again.
//! * `host_harddog`: opening `/dev/watchdog` starts `/usr/bin/uml_watchdog -pid <kernel
//!   pid>` (uml-utilities) as a child of the kernel process; five one-byte writes are
//!   accepted and the helper reads them (its `rchar` in `/proc/PID/io` grows by five);
//!   closing the device makes it exit (`harddog_kern.c` has no magic close: every
//!   release stops the helper); a second open starts a new helper, and its close stops
//!   it.
//! * `host_harddog_reaped`: after each close the helper is gone, not a zombie: the
//!   kernel waited for it. `harddog_user.c` never does (it does not keep the pid), so a
//!   kernel that links that C file (its symbol table names it) reports the case as
//!   skipped with what was found, and fails it if it passes.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};

use crate::block::{self, KWARN, MARK, STEP_LIMIT};
use crate::boot::Guest;
use crate::paths::Ctx;
use crate::suite::{self, proto};

pub const RTC: &str = "host_rtc_alarm";
pub const DOG: &str = "host_harddog";
pub const DOG_REAPED: &str = "host_harddog_reaped";

/// The case names, in report order.
pub const CASES: [&str; 3] = [RTC, DOG, DOG_REAPED];

type Results = Vec<(&'static str, Result<String>)>;

/// The helper `harddog_user.c` runs.
const WATCHDOG: &str = "/usr/bin/uml_watchdog";
/// The C host half of the watchdog.
const C_DOG_SOURCE: &str = "harddog_user.c";
/// Why the C host half fails [`DOG_REAPED`].
const C_DOG_DEFECT: &str = "harddog_user.c never waits for uml_watchdog (stop_watchdog only \
                            closes the descriptors; the pid is not kept), so every close of \
                            /dev/watchdog leaves a zombie child of the kernel process";
/// How far the guest's RTC may be from the host's clock.
const CLOCK_SLACK: f64 = 2.0;
/// The longest a `+2` alarm may be armed for on the host: 2 s, plus the second the
/// kernel half's whole-second arithmetic may add.
const ARM_LIMIT: f64 = 3.0;
/// How long the host waits for the helper to read pings or to exit.
const HELPER_LIMIT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------
// Parsing helpers.

/// A timerfd's `/proc/PID/fdinfo` text: (clockid, it_value in seconds).
pub(crate) fn timerfd_info(fdinfo: &str) -> Option<(i64, f64)> {
    let mut clock = None;
    let mut value = None;
    for l in fdinfo.lines() {
        if let Some(v) = l.strip_prefix("clockid:") {
            clock = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("it_value:") {
            let v = v.trim().strip_prefix('(')?.strip_suffix(')')?;
            let (s, ns) = v.split_once(',')?;
            let s: i64 = s.trim().parse().ok()?;
            let ns: i64 = ns.trim().parse().ok()?;
            value = Some(s as f64 + ns as f64 / 1e9);
        }
    }
    Some((clock?, value?))
}

/// A `/proc/PID/stat` text: (state, parent pid), read after the command's last `)`.
pub(crate) fn stat_state_ppid(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut w = rest.split_whitespace();
    let state = w.next()?.chars().next()?;
    let ppid = w.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The `rchar:` of a `/proc/PID/io` text.
pub(crate) fn io_rchar(io: &str) -> Option<u64> {
    io.lines()
        .find_map(|l| l.strip_prefix("rchar:").and_then(|v| v.trim().parse().ok()))
}

/// The words of the guest's `@@BLK key ...` line, or a failure quoting the console.
fn words(console: &str, key: &str) -> Result<Vec<String>> {
    block::mark_line(console, key)
        .map(|l| l.split_whitespace().map(String::from).collect())
        .with_context(|| {
            format!(
                "no `{MARK} {key} ...` line on the console\n{}",
                block::quote(console)
            )
        })
}

/// Word `i` of a mark line as a number.
fn num<T: std::str::FromStr>(w: &[String], i: usize, what: &str) -> Result<T> {
    w.get(i)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{what}: expected a number as word {i} of {w:?}"))
}

// ---------------------------------------------------------------------------
// Host side.

/// The timerfds the process `pid` holds: (fd, clockid, seconds left).
fn timerfds(pid: i32) -> Result<Vec<(String, i64, f64)>> {
    let dir = format!("/proc/{pid}/fd");
    let mut out = Vec::new();
    for e in fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let e = e?;
        let Ok(target) = fs::read_link(e.path()) else {
            continue;
        };
        if target != Path::new("anon_inode:[timerfd]") {
            continue;
        }
        let fd = e.file_name().to_string_lossy().into_owned();
        let path = format!("/proc/{pid}/fdinfo/{fd}");
        let info = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let (clock, left) =
            timerfd_info(&info).with_context(|| format!("parsing {path}: {info:?}"))?;
        out.push((fd, clock, left));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The one timerfd of the kernel process: (fd, seconds left); it must be on
/// `CLOCK_REALTIME` (0).
fn rtc_timer(pid: i32) -> Result<(String, f64)> {
    match timerfds(pid)?.as_slice() {
        [(fd, 0, left)] => Ok((fd.clone(), *left)),
        [(fd, clock, _)] => bail!(
            "the kernel process {pid}'s timerfd (fd {fd}) is on clock {clock}, expected \
             CLOCK_REALTIME (0)"
        ),
        other => bail!(
            "the kernel process {pid} should hold one timerfd (anon_inode:[timerfd], the RTC \
             alarm), it holds {}: {other:?}",
            other.len()
        ),
    }
}

/// A process as `/proc` shows it.
#[derive(Debug, Clone, PartialEq)]
struct Proc {
    pid: i32,
    state: char,
    cmdline: Vec<String>,
}

/// The children of `parent` whose command is `exe` (running or zombies).
fn children(parent: i32, exe: &str) -> Vec<Proc> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((state, ppid)) = stat_state_ppid(&stat) else {
            continue;
        };
        if ppid != parent {
            continue;
        }
        let comm = stat
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map(|(c, _)| c.to_string())
            .unwrap_or_default();
        let cmdline: Vec<String> = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                b.split(|&c| c == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let name = Path::new(exe)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A zombie has no command line left; its comm is the program's name.
        if cmdline.first().map(String::as_str) == Some(exe) || comm == name {
            out.push(Proc {
                pid,
                state,
                cmdline,
            });
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// The state of `parent`'s child `pid` now: `None` once it is gone (reaped; a pid
/// reused by another process is gone too).
fn state_of(pid: i32, parent: i32) -> Option<char> {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| stat_state_ppid(&s))
        .filter(|&(_, ppid)| ppid == parent)
        .map(|(s, _)| s)
}

/// Waits up to `limit` for `parent`'s child `pid` to exit: `None` once it is gone,
/// `Some('Z')` if it stayed a zombie for half a second, or the state it is still in at
/// the limit.
fn wait_exit(pid: i32, parent: i32, limit: Duration) -> Option<char> {
    let t = Instant::now();
    let mut zombie_since = None;
    loop {
        let s = state_of(pid, parent);
        match s {
            None => return None,
            Some('Z' | 'X') => {
                let z = *zombie_since.get_or_insert_with(Instant::now);
                if z.elapsed() >= Duration::from_millis(500) || t.elapsed() >= limit {
                    return s;
                }
            }
            Some(_) if t.elapsed() >= limit => return s,
            Some(_) => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the kernel binary `elf` links the C `harddog_user.o`: its symbol table
/// names the source file (an `STT_FILE` symbol), which the Rust layer's objects do not;
/// `None` if it cannot be told (no symbol table).
pub(crate) fn links_c_file(elf: &[u8], source: &str) -> Option<bool> {
    let elf = goblin::elf::Elf::parse(elf).ok()?;
    if elf.syms.is_empty() {
        return None;
    }
    Some(elf.syms.iter().any(|s| {
        s.st_type() == goblin::elf::sym::STT_FILE && elf.strtab.get_at(s.st_name) == Some(source)
    }))
}

/// [`links_c_file`] for `harddog_user.c` and the kernel at `kernel`.
fn c_dog_half(kernel: &Path) -> Option<bool> {
    links_c_file(&fs::read(kernel).ok()?, C_DOG_SOURCE)
}

/// The verdict on [`DOG_REAPED`]: for a kernel with the C host half, the known defect
/// is a skip when it shows and a failure when it does not.
fn reaped_verdict(c_half: Option<bool>, result: Result<String>) -> Result<String> {
    if c_half != Some(true) {
        return result;
    }
    match result {
        Ok(fact) if fact.starts_with("skipped: ") => Ok(fact),
        Err(e) => Ok(format!(
            "skipped: C layer defect: {C_DOG_DEFECT} (found: {e:#})"
        )),
        Ok(fact) => bail!(
            "the C host half ({C_DOG_SOURCE}) passed {DOG_REAPED}, expected to fail \
             ({C_DOG_DEFECT}): {fact}"
        ),
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------
// The boot.

/// The guest. Nothing stops it early (`set +e`): each step reports what it saw and
/// the host judges. The RTC part, then the watchdog part; the host releases each step.
fn script() -> String {
    format!(
        "set +e; d=/sys/class/rtc/rtc0; \
         irq() {{ awk '$NF == \"rtc\" {{ print $2 }}' /proc/interrupts; }}; \
         if [ -d $d ]; then m rtc0 present $(cat $d/name); else m rtc0 absent; fi; \
         m rtctime $(cat $d/since_epoch); \
         n0=$(irq); echo 0 >$d/wakealarm; echo +2 >$d/wakealarm; \
         m armed $(cat $d/wakealarm) $(cat $d/since_epoch) ${{n0:-none}}; \
         {g} wait-file /host/rtc-armed 30; \
         i=0; n=$n0; while [ $i -lt 60 ]; do n=$(irq); [ \"$n\" != \"$n0\" ] && break; \
           sleep 0.1; i=$((i+1)); done; \
         m fired ${{n0:-none}} ${{n:-none}} $(cat $d/since_epoch) \
           x$(cat $d/wakealarm) $(grep alarm_IRQ /proc/driver/rtc | tr -d ' \\t'); \
         {g} wait-file /host/rtc-fired 30; \
         echo +100 >$d/wakealarm; m long $(cat $d/wakealarm) $(cat $d/since_epoch); \
         {g} wait-file /host/rtc-long 30; \
         echo 0 >$d/wakealarm; m cleared x$(cat $d/wakealarm); \
         {g} wait-file /host/rtc-cleared 30; \
         if [ -c /dev/watchdog ]; then m dogdev present; else m dogdev absent; fi; \
         exec 3>/dev/watchdog; m dogopen $?; \
         {g} wait-file /host/dog-open 30; \
         ok=0; for i in 1 2 3 4 5; do printf x >&3 && ok=$((ok+1)); done; m pinged $ok; \
         {g} wait-file /host/dog-pinged 30; \
         exec 3>&-; m dogclosed; \
         {g} wait-file /host/dog-closed 30; \
         exec 3>/dev/watchdog; m dogopen2 $?; \
         {g} wait-file /host/dog-open2 30; \
         exec 3>&-; m dogclosed2; \
         {g} wait-file /host/dog-closed2 30; \
         {KWARN}m step done",
        g = proto::GUEST
    )
}

/// The boot; returns each case's result (a failed boot fails the cases without one).
pub fn run_cases(ctx: &Ctx, kernel: &Path, want: &dyn Fn(&str) -> bool) -> Results {
    if !CASES.iter().any(|n| want(n)) {
        return Vec::new();
    }
    let t = Instant::now();
    let mut res = Results::new();
    let boot = boot(ctx, kernel, &mut res);
    let secs = t.elapsed().as_secs_f64();
    let c_half = c_dog_half(kernel);
    let what = "one boot for host_rtc_alarm and host_harddog*";
    suite::shared_boot_verdicts(&CASES, want, res, boot, secs, what)
        .into_iter()
        .map(|(name, r)| {
            let r = if name == DOG_REAPED {
                reaped_verdict(c_half, r)
            } else {
                r
            };
            (name, r)
        })
        .collect()
}

/// Waits for the guest's `@@BLK key ...` line; its words.
fn step(guest: &mut Guest, key: &str) -> Result<Vec<String>> {
    guest.wait_for_console(&format!("{MARK} {key}"), STEP_LIMIT)?;
    words(&guest.console_so_far(), key)
}

fn boot(ctx: &Ctx, kernel: &Path, res: &mut Results) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("uml-rtcdog-")
        .tempdir()
        .context("creating a temporary directory")?;
    let hostfs = dir.path().join("hostfs");
    fs::create_dir(&hostfs)?;
    let s = block::spec(kernel, &script(), &[], Some(&hostfs));
    let mut guest = Guest::start(&s, ctx)?;
    let kpid = guest.pid();

    // The RTC. A failure is recorded and the guest released, so that the
    // watchdog part still runs.
    let rtc = rtc_part(&mut guest, &hostfs, kpid);
    for name in ["rtc-armed", "rtc-fired", "rtc-long", "rtc-cleared"] {
        if !hostfs.join(name).exists() {
            block::release(&hostfs, name)?;
        }
    }
    res.push((RTC, rtc));

    // The watchdog.
    let (dog, reaped) = dog_part(&mut guest, &hostfs, kpid);
    for name in [
        "dog-open",
        "dog-pinged",
        "dog-closed",
        "dog-open2",
        "dog-closed2",
    ] {
        if !hostfs.join(name).exists() {
            block::release(&hostfs, name)?;
        }
    }
    let out = guest.wait()?;
    block::exited_ok(&out)?;
    block::no_kernel_warnings(&out.console, "the RTC and watchdog boot")?;
    res.push((DOG, dog));
    res.push((DOG_REAPED, reaped));
    Ok(())
}

/// The host's view of the RTC steps; releases each step it checked.
fn rtc_part(guest: &mut Guest, hostfs: &Path, kpid: i32) -> Result<String> {
    let w = step(guest, "rtc0")?;
    if w.first().map(String::as_str) != Some("present") {
        bail!("/sys/class/rtc/rtc0 does not exist in the guest (CONFIG_UML_RTC): {w:?}");
    }
    let name = w[1..].join(" ");
    let w = step(guest, "rtctime")?;
    let host_now = now_secs();
    let rtc_time: f64 = num(&w, 0, "rtc0/since_epoch")?;
    // since_epoch is truncated to the second.
    let skew = host_now - rtc_time;
    if !(-CLOCK_SLACK..=CLOCK_SLACK + 1.0).contains(&skew) {
        bail!(
            "the guest's /sys/class/rtc/rtc0/since_epoch is {rtc_time}, the host's clock \
             {host_now:.1}: {skew:.1}s apart (at most {CLOCK_SLACK}s allowed)"
        );
    }
    let mut facts = vec![format!("rtc0 ({name}) at {rtc_time}, host {host_now:.1}")];

    let w = step(guest, "armed")?;
    let alarm: i64 = num(&w, 0, "wakealarm after `echo +2`")?;
    let at: i64 = num(&w, 1, "since_epoch when armed")?;
    let irq0 = w.get(2).cloned().unwrap_or_default();
    if irq0 == "none" {
        bail!("no `rtc` line in the guest's /proc/interrupts (the RTC's interrupt)");
    }
    if !(1..=2).contains(&(alarm - at)) {
        bail!("`echo +2 >wakealarm` at {at} set the alarm to {alarm}, expected {at}+2");
    }
    let (fd, left) = rtc_timer(kpid)?;
    // rtc_kern.c arms it for the alarm time (from the RTC, the host's clock) minus the
    // guest's system time in whole seconds, which may lag the host's by a fraction: 2
    // or 3 seconds.
    if !(left > 0.0 && left <= ARM_LIMIT) {
        bail!(
            "wakealarm +2: the kernel process's timerfd (fd {fd}) should be armed for at most \
             {ARM_LIMIT}s, its it_value is {left:.3}s"
        );
    }
    facts.push(format!(
        "wakealarm +2 = {alarm}: timerfd fd {fd} on CLOCK_REALTIME armed for {left:.2}s"
    ));
    block::release(hostfs, "rtc-armed")?;

    let w = step(guest, "fired")?;
    let n0: u64 = num(&w, 0, "rtc interrupts before")?;
    let n1: u64 = num(&w, 1, "rtc interrupts after")?;
    let when: i64 = num(&w, 2, "since_epoch when seen")?;
    let wake_after = w.get(3).cloned().unwrap_or_default();
    let alarm_irq = w.get(4).cloned().unwrap_or_default();
    if n1 <= n0 {
        bail!(
            "the alarm set for {alarm} did not fire: the rtc interrupt count stayed at {n0} \
             until {when} (6 s of polling)"
        );
    }
    if when < alarm {
        bail!("the alarm set for {alarm} fired early, by {when}");
    }
    if when > alarm + 2 {
        bail!("the alarm set for {alarm} fired late: seen at {when}");
    }
    if wake_after != "x" {
        bail!(
            "after the alarm fired, wakealarm reads {:?}, expected empty (alarm cleared)",
            wake_after.trim_start_matches('x')
        );
    }
    if alarm_irq != "alarm_IRQ:no" {
        bail!("after the alarm fired, /proc/driver/rtc says {alarm_irq:?}, expected alarm_IRQ: no");
    }
    let (_, left) = rtc_timer(kpid)?;
    if left != 0.0 {
        bail!("after the alarm fired, the host timerfd is still armed for {left:.3}s");
    }
    facts.push(format!(
        "fired at {when} (alarm {alarm}): rtc interrupts {n0} -> {n1}, wakealarm cleared, \
         timerfd disarmed"
    ));
    block::release(hostfs, "rtc-fired")?;

    let w = step(guest, "long")?;
    let alarm: i64 = num(&w, 0, "wakealarm after `echo +100`")?;
    let at: i64 = num(&w, 1, "since_epoch when armed")?;
    if !(99..=100).contains(&(alarm - at)) {
        bail!("`echo +100 >wakealarm` at {at} set the alarm to {alarm}");
    }
    let (_, left) = rtc_timer(kpid)?;
    if !(97.0..=100.0 + (ARM_LIMIT - 2.0)).contains(&left) {
        bail!(
            "wakealarm +100: the host timerfd is armed for {left:.3}s, expected 97 to {}s",
            100.0 + (ARM_LIMIT - 2.0)
        );
    }
    block::release(hostfs, "rtc-long")?;
    let w = step(guest, "cleared")?;
    if w.first().map(String::as_str) != Some("x") {
        bail!("`echo 0 >wakealarm` left wakealarm at {w:?}");
    }
    let (_, left2) = rtc_timer(kpid)?;
    if left2 != 0.0 {
        bail!(
            "`echo 0 >wakealarm` (alarm disabled): the host timerfd is still armed for \
             {left2:.3}s"
        );
    }
    facts.push(format!("+100 armed it for {left:.1}s, 0 disarmed it"));
    block::release(hostfs, "rtc-cleared")?;
    Ok(facts.join("; "))
}

/// The host's view of the watchdog steps: (`host_harddog`, `host_harddog_reaped`).
fn dog_part(guest: &mut Guest, hostfs: &Path, kpid: i32) -> (Result<String>, Result<String>) {
    let mut zombies = Vec::new();
    let dog = dog_steps(guest, hostfs, kpid, &mut zombies);
    let reaped = match (&dog, zombies.as_slice()) {
        (Err(_), _) => Ok(format!("skipped: {DOG} failed (see there)")),
        (Ok(_), []) => Ok("both helpers were reaped by the kernel on close".to_string()),
        (Ok(_), z) => Err(anyhow!(
            "after closing /dev/watchdog the helper stays a zombie child of the kernel \
             process {kpid}: pids {z:?}"
        )),
    };
    (dog, reaped)
}

/// The guest opened `/dev/watchdog` (step `open_key`): the new helper's pid, checked
/// to be the kernel's child running `uml_watchdog -pid <kernel pid>`.
fn one_helper(guest: &mut Guest, kpid: i32, open_key: &str, before: &[i32]) -> Result<i32> {
    let w = step(guest, open_key)?;
    if w.first().map(String::as_str) != Some("0") {
        bail!("opening /dev/watchdog in the guest failed: {w:?}");
    }
    let live: Vec<Proc> = children(kpid, WATCHDOG)
        .into_iter()
        .filter(|p| p.state != 'Z' && !before.contains(&p.pid))
        .collect();
    let helper = match live.as_slice() {
        [p] => p.clone(),
        other => bail!(
            "after the guest opened /dev/watchdog, the kernel process {kpid} should have one \
             new running {WATCHDOG} child, it has {other:?}"
        ),
    };
    let want = [WATCHDOG.to_string(), "-pid".into(), kpid.to_string()];
    if helper.cmdline != want {
        bail!(
            "the watchdog helper {} runs {:?}, expected {want:?}",
            helper.pid,
            helper.cmdline
        );
    }
    Ok(helper.pid)
}

fn dog_steps(
    guest: &mut Guest,
    hostfs: &Path,
    kpid: i32,
    zombies: &mut Vec<i32>,
) -> Result<String> {
    let w = step(guest, "dogdev")?;
    if w.first().map(String::as_str) != Some("present") {
        bail!("no /dev/watchdog in the guest (CONFIG_UML_WATCHDOG)");
    }
    let mut facts = Vec::new();
    let first = one_helper(guest, kpid, "dogopen", &[])?;
    let io = format!("/proc/{first}/io");
    let rchar0 = fs::read_to_string(&io)
        .ok()
        .and_then(|s| io_rchar(&s))
        .with_context(|| format!("reading rchar from {io}"))?;
    block::release(hostfs, "dog-open")?;
    let w = step(guest, "pinged")?;
    if w.first().map(String::as_str) != Some("5") {
        bail!("the guest's five one-byte writes to /dev/watchdog: {w:?} succeeded");
    }
    let t = Instant::now();
    let mut rchar = rchar0;
    while rchar < rchar0 + 5 && t.elapsed() < HELPER_LIMIT {
        std::thread::sleep(Duration::from_millis(20));
        rchar = fs::read_to_string(&io)
            .ok()
            .and_then(|s| io_rchar(&s))
            .unwrap_or(rchar);
    }
    if rchar < rchar0 + 5 {
        bail!(
            "the helper {first} read {} bytes after the guest's five pings (rchar {rchar0} -> \
             {rchar}), expected at least 5",
            rchar - rchar0
        );
    }
    facts.push(format!(
        "open started {WATCHDOG} -pid {kpid} (pid {first}, child of the kernel); five pings \
         accepted and read (rchar +{})",
        rchar - rchar0
    ));
    block::release(hostfs, "dog-pinged")?;

    step(guest, "dogclosed")?;
    let mut closed = |pid: i32, facts: &mut Vec<String>| -> Result<()> {
        match wait_exit(pid, kpid, HELPER_LIMIT) {
            None => facts.push(format!("close: helper {pid} exited and was reaped")),
            Some('Z' | 'X') => {
                zombies.push(pid);
                facts.push(format!("close: helper {pid} exited (a zombie)"));
            }
            Some(s) => bail!(
                "the guest closed /dev/watchdog, but the helper {pid} is still running \
                 (state {s}) after {}s",
                HELPER_LIMIT.as_secs()
            ),
        }
        Ok(())
    };
    closed(first, &mut facts)?;
    block::release(hostfs, "dog-closed")?;

    let second = one_helper(guest, kpid, "dogopen2", &[first])?;
    if second == first {
        bail!("the second open reused the first helper {first}");
    }
    facts.push(format!("reopen started a new helper {second}"));
    block::release(hostfs, "dog-open2")?;
    step(guest, "dogclosed2")?;
    closed(second, &mut facts)?;
    block::release(hostfs, "dog-closed2")?;
    Ok(facts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_of_a_timerfd() {
        let info = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\nclockid: 0\n\
                    ticks: 0\nsettime flags: 00\nit_value: (1, 999884063)\n\
                    it_interval: (0, 0)\n";
        let (clock, left) = timerfd_info(info).unwrap();
        assert_eq!(clock, 0);
        assert!((left - 1.999884063).abs() < 1e-9);
        assert_eq!(
            timerfd_info("clockid: 1\nit_value: (0, 0)\n"),
            Some((1, 0.0))
        );
        assert_eq!(timerfd_info("clockid: 0\n"), None);
        assert_eq!(timerfd_info("it_value: (x, 0)\nclockid: 0\n"), None);
    }

    #[test]
    fn proc_files() {
        assert_eq!(
            stat_state_ppid("4242 (uml_watchdog) S 4200 4200 1 0 -1"),
            Some(('S', 4200))
        );
        assert_eq!(
            stat_state_ppid("7 (a) b) c) Z 1 7 7"),
            Some(('Z', 1)),
            "a command with parentheses"
        );
        assert_eq!(stat_state_ppid("garbage"), None);
        assert_eq!(io_rchar("rchar: 2012\nwchar: 1\nsyscr: 3\n"), Some(2012));
        assert_eq!(io_rchar("wchar: 1\n"), None);
    }

    #[test]
    fn the_c_defect_is_a_skip_only_for_the_c_half() {
        let found = || Err(anyhow!("zombie 42"));
        let s = reaped_verdict(Some(true), found()).unwrap();
        assert!(s.starts_with("skipped: C layer defect: "), "{s}");
        assert!(s.contains("zombie 42"));
        assert!(reaped_verdict(Some(true), Ok("reaped".into())).is_err());
        let skip = "skipped: host_harddog failed (see there)".to_string();
        assert_eq!(reaped_verdict(Some(true), Ok(skip.clone())).unwrap(), skip);
        assert!(reaped_verdict(Some(false), found()).is_err());
        assert!(reaped_verdict(None, found()).is_err());
        assert_eq!(
            reaped_verdict(Some(false), Ok("reaped".into())).unwrap(),
            "reaped"
        );
    }

    #[test]
    fn c_files_are_found_in_the_symbol_table() {
        // This test program is linked from Rust and C (gcc's crtstuff.c).
        let me = fs::read("/proc/self/exe").unwrap();
        assert_eq!(links_c_file(&me, "crtstuff.c"), Some(true));
        assert_eq!(links_c_file(&me, "harddog_user.c"), Some(false));
        assert_eq!(links_c_file(b"not an ELF file", "x.c"), None);
    }

    #[test]
    fn script_is_valid_shell() {
        let s = format!("{}{}", block::PRELUDE, script());
        let st = std::process::Command::new("sh")
            .args(["-n", "-c", &s])
            .status()
            .unwrap();
        assert!(st.success());
    }
}
