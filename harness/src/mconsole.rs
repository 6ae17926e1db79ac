// SPDX-License-Identifier: GPL-2.0
//! `host_mconsole_*`: the UML management console (`arch/um/drivers/mconsole_kern.c`, its
//! host half `mconsole_user.c`, the wire format of `mconsole.h`) end to end on real
//! boots, as the UML HOWTO (`Documentation/virt/uml/user_mode_linux_howto_v2.rst`,
//! "The UML Management Console") promises it, through the HOWTO's client `uml_mconsole`
//! and through datagrams the harness builds itself. The checks look only at what a
//! client and the guest see, so they judge a C or a Rust host half alike.
//!
//! Five boots per kernel, each shared by a few cases:
//!
//! * commands (console at loglevel 4):
//!   - `host_mconsole_query`: `version` answers `OK` and exactly the guest's
//!     `uname -s -n -r -v -m`; `help` lists the 13 commands; `proc meminfo` holds
//!     `MemTotal:`.
//!   - `host_mconsole_config`: `config ubd1=FILE`, `config ubd1` names FILE, `remove
//!     ubd1`, and `config ubd1` is then empty (the block cases test hot-plug in depth).
//!   - `host_mconsole_sysrq`: `sysrq m` answers `OK` with the SysRq action line, and the
//!     memory report reaches the guest's `dmesg`.
//!   - `host_mconsole_log`: `log TEXT` puts TEXT in the guest's `dmesg`.
//! * `host_mconsole_stop_go`: the guest wrote and synced files on a mounted ext4 ubd and
//!   keeps appending and syncing. `stop` (`OK stopped`), then, while stopped, `version`
//!   answers, a second `stop` is refused (`Already stopped`), `sysrq s` answers; the host
//!   file stays the same (content and mtime) while stopped, and its copy passes
//!   `e2fsck -fn`, and after a journal replay holds every synced file intact; `go`
//!   resumes (the file changes again, the emergency sync queued while stopped
//!   completes), a second `go` is refused (`Not stopped`).
//! * restarts:
//!   - `host_mconsole_cad`: with `ctrl-alt-del` 0 and the payload as `cad_pid`, `cad`
//!     sends it SIGINT (what init gets); with the default 1, `cad` restarts the kernel
//!     through `kernel_restart` (the HOWTO's "normally, it reboots"): `reboot:
//!     Restarting system`, the payload runs again in the same host process.
//!   - `host_mconsole_reboot`: `reboot` restarts the payload in the same host process.
//!   - `host_mconsole_halt`: `halt` ends the kernel (exit status 0) while the payload
//!     runs, and its umid directory is removed.
//! * `host_mconsole_notify`: with `mconsole=notify:SOCKET` on a datagram socket the
//!   harness binds: the `MCONSOLE_SOCKET` notification at boot names the mconsole socket
//!   (which then answers); writes to `/proc/mconsole` arrive as `MCONSOLE_USER_NOTIFY`
//!   byte for byte (capped at 512 bytes); a panic (`sysrq c`) sends `MCONSOLE_PANIC`
//!   with the panic message the console shows. Every packet is `struct mconsole_notify`
//!   (magic, version 2, type, len, data) with `len` matching its size.
//! * protocol (console at loglevel 7, a datagram socket of the harness's own):
//!   - `host_mconsole_protocol`: a v2 request gets one reply with the right header
//!     (`err` 0, `more` 0, `len` = data + NUL = datagram - 12); an unknown command gets
//!     `err` 1; `help` and `proc cmdline` (made longer than 1 KiB) come in several
//!     packets, `more` set on all but the last, and their data put together is the
//!     whole text (for `/proc/cmdline`, byte for byte what the guest reads there).
//!   - `host_mconsole_malformed`: bad magic, bad version, `len` 513 and 2^32-1,
//!     datagrams of 0, 4, 8 and 11 bytes (shorter than the header), and a `len` larger
//!     than the data sent must each be refused (an `ERR` reply, or none) and not acted
//!     on (their `log` text must not reach the kernel log); data without a NUL must be
//!     refused or taken as exactly `len` bytes. Then the guest still answers.
//!   - `host_mconsole_long_reply`: a reply of more packets than the client's receive
//!     queue holds (`sysrq m` at console loglevel 7, about 20 packets, read by a client
//!     that starts reading 100 ms after its request) arrives whole, ending with `more`
//!     0, as `uml_mconsole` needs to return at all.
//!   - `host_mconsole_foreign_uid`: (root only) a request from another uid (65534, in a
//!     forked child) must not be executed, first with the socket's file permissions as
//!     the kernel made them (the harness's own private directory above it made
//!     traversable), then with the socket made writable for everybody, so that only
//!     the mconsole itself can refuse it; the diagnostic says which did.
//!   - `host_mconsole_stack`: `stack PID` of a sleeping guest task, asked six times
//!     (three with the guest idle, three while another guest process keeps the CPU
//!     busy, as in a guest stuck in a loop, what `stack` is for), answers a stack dump
//!     (`Call Trace:` and a `schedule` frame) at least once, and `OK` every time.
//!   - `host_mconsole_stack_reliable`: all six answer a stack dump.
//!
//! The C host half of Linux 6.12 fails four of them, each for a fault of its own:
//! `malformed` (a wrong version is answered `ERR` and then run anyway; a datagram shorter
//! than the header runs the previous request again, and one shorter than its `len`
//! mixes in the previous request's bytes: `mconsole_get_request` reads into a static
//! `struct mc_request` and checks neither length), `long_reply` (replies go out on a
//! non-blocking socket; what does not fit the client's queue is dropped, the end with
//! it), `foreign_uid` (no check of the sender) and `stack_reliable` (`stack` runs in
//! the SIGIO handler, and `show_stack()` refuses to run on the signal stack, with
//! "Received SIGSEGV in SIGSEGV handler, aborting stack trace!").

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::block::{self, KWARN, MARK, STEP_LIMIT};
use crate::boot::Guest;
use crate::paths::Ctx;
use crate::suite::{self, proto};

// ---------------------------------------------------------------------------
// The wire format (`arch/um/drivers/mconsole.h`), little-endian x86_64.

/// `MCONSOLE_MAGIC`.
pub(crate) const MAGIC: u32 = 0xcafe_babe;
/// `MCONSOLE_VERSION`.
pub(crate) const VERSION: u32 = 2;
/// `MCONSOLE_MAX_DATA`.
pub(crate) const MAX_DATA: usize = 512;
/// `struct mconsole_request` / `mconsole_reply` before `data`: three u32.
pub(crate) const HEADER: usize = 12;
/// `struct mconsole_notify` before `data`: magic, version, type, len.
pub(crate) const NOTIFY_HEADER: usize = 16;
/// The notification types (`enum` in `struct mconsole_notify`).
pub(crate) const NOTIFY_SOCKET: u32 = 0;
pub(crate) const NOTIFY_PANIC: u32 = 1;
pub(crate) const NOTIFY_USER: u32 = 3;

/// A request datagram: `magic`, `version`, `len`, then `data`, padded with zeros or cut
/// to `total` bytes.
pub(crate) fn raw_request(
    magic: u32,
    version: u32,
    len: u32,
    data: &[u8],
    total: usize,
) -> Vec<u8> {
    let mut d = Vec::with_capacity(total.max(HEADER + data.len()));
    d.extend_from_slice(&magic.to_le_bytes());
    d.extend_from_slice(&version.to_le_bytes());
    d.extend_from_slice(&len.to_le_bytes());
    d.extend_from_slice(data);
    d.resize(total, 0);
    d
}

/// A request as `uml_mconsole` sends it: the whole `struct mconsole_request` (524
/// bytes), `len` the command's length, a NUL after it.
pub(crate) fn request(cmd: &str) -> Vec<u8> {
    assert!(cmd.len() < MAX_DATA, "mconsole command too long: {cmd}");
    raw_request(
        MAGIC,
        VERSION,
        cmd.len() as u32,
        cmd.as_bytes(),
        HEADER + MAX_DATA,
    )
}

/// One reply packet (`struct mconsole_reply`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub err: u32,
    pub more: u32,
    /// The data without its terminating NUL.
    pub text: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }
}

/// Parses a reply datagram; fails, saying why, unless it is a well-formed v2 reply:
/// a whole header, `len` = the bytes after the header (1 to 512), the data ending in
/// its only NUL.
pub(crate) fn parse_reply(d: &[u8]) -> std::result::Result<Reply, String> {
    if d.len() < HEADER {
        return Err(format!("{} bytes, shorter than the reply header", d.len()));
    }
    let u = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().expect("4 bytes"));
    let (err, more, len) = (u(0), u(4), u(8) as usize);
    let data = &d[HEADER..];
    if len != data.len() {
        return Err(format!(
            "len {len} but {} data bytes in the datagram",
            data.len()
        ));
    }
    if len == 0 || len > MAX_DATA {
        return Err(format!("len {len}, not 1 to {MAX_DATA}"));
    }
    if data[len - 1] != 0 || data[..len - 1].contains(&0) {
        return Err("data not a NUL-terminated string".into());
    }
    Ok(Reply {
        err,
        more,
        text: data[..len - 1].to_vec(),
    })
}

/// A datagram the console sent back: a v2 reply, or anything else (the C answers
/// clients without the magic in the unversioned form: bare text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    V2(Reply),
    Raw(Vec<u8>),
}

pub(crate) fn classify(d: &[u8]) -> Answer {
    match parse_reply(d) {
        Ok(r) => Answer::V2(r),
        Err(_) => Answer::Raw(d.to_vec()),
    }
}

impl Answer {
    /// A refusal: a v2 reply with `err` set, or bare text starting with `ERR`.
    fn is_err(&self) -> bool {
        match self {
            Answer::V2(r) => r.err != 0,
            Answer::Raw(b) => b.starts_with(b"ERR"),
        }
    }

    /// Short description for a diagnostic.
    fn describe(&self) -> String {
        match self {
            Answer::V2(r) => format!(
                "{}{} {:?}",
                if r.err != 0 { "ERR" } else { "OK" },
                if r.more != 0 { " (more)" } else { "" },
                clip(&r.text(), 60)
            ),
            Answer::Raw(b) => format!(
                "unversioned text reply {:?}",
                clip(&String::from_utf8_lossy(b), 60)
            ),
        }
    }
}

/// The answers grouped into messages: a message ends with a v2 packet whose `more` is
/// 0; bare text is a message of its own.
pub(crate) fn messages(answers: &[Answer]) -> Vec<Vec<Answer>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for a in answers {
        cur.push(a.clone());
        let last = match a {
            Answer::V2(r) => r.more == 0,
            Answer::Raw(_) => true,
        };
        if last {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The text of a multi-packet reply, put together, and whether its framing is right:
/// `more` on every packet but the last, `err` only (if at all) on the first.
pub(crate) fn join_reply(packets: &[Reply]) -> std::result::Result<String, String> {
    let Some((last, init)) = packets.split_last() else {
        return Err("no packet".into());
    };
    if let Some(i) = init.iter().position(|p| p.more == 0) {
        return Err(format!(
            "packet {} of {} has more = 0 but is not the last",
            i + 1,
            packets.len()
        ));
    }
    if last.more != 0 {
        return Err(format!(
            "the last of {} packets has more = {}",
            packets.len(),
            last.more
        ));
    }
    if let Some(i) = packets.iter().skip(1).position(|p| p.err != 0) {
        return Err(format!("packet {} has err set", i + 2));
    }
    let mut text = Vec::new();
    for p in packets {
        text.extend_from_slice(&p.text);
    }
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// One notification (`struct mconsole_notify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notification {
    pub magic: u32,
    pub version: u32,
    pub kind: u32,
    pub data: Vec<u8>,
}

/// Parses a notification datagram: a whole header and `len` = the bytes after it
/// (at most 512).
pub(crate) fn parse_notification(d: &[u8]) -> std::result::Result<Notification, String> {
    if d.len() < NOTIFY_HEADER {
        return Err(format!(
            "{} bytes, shorter than the notification header",
            d.len()
        ));
    }
    let u = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().expect("4 bytes"));
    let len = u(12) as usize;
    let data = &d[NOTIFY_HEADER..];
    if len != data.len() || len > MAX_DATA {
        return Err(format!(
            "len {len} but {} data bytes in the datagram (at most {MAX_DATA})",
            data.len()
        ));
    }
    Ok(Notification {
        magic: u(0),
        version: u(4),
        kind: u(8),
        data: data.to_vec(),
    })
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

// ---------------------------------------------------------------------------
// A client socket of the harness's own.

pub(crate) struct Client {
    sock: UnixDatagram,
}

impl Client {
    /// A datagram socket bound to `dir/name`, so that replies come back.
    pub(crate) fn bind(dir: &Path, name: &str) -> Result<Client> {
        let path = dir.join(name);
        let sock = UnixDatagram::bind(&path)
            .with_context(|| format!("binding a datagram socket to {}", path.display()))?;
        Ok(Client { sock })
    }

    fn send(&self, to: &Path, d: &[u8]) -> Result<()> {
        self.sock
            .send_to(d, to)
            .with_context(|| format!("sending {} bytes to {}", d.len(), to.display()))?;
        Ok(())
    }

    /// The next datagram, or None after `wait`.
    fn recv(&self, wait: Duration) -> Result<Option<Vec<u8>>> {
        self.sock
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let mut buf = vec![0u8; 4096];
        match self.sock.recv(&mut buf) {
            Ok(n) => Ok(Some(buf[..n].to_vec())),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e).context("receiving from the client socket"),
        }
    }

    /// Everything that arrives until nothing came for `quiet` (or, before the first
    /// datagram, for `first`).
    fn collect(&self, first: Duration, quiet: Duration) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        while let Some(d) = self.recv(if out.is_empty() { first } else { quiet })? {
            out.push(d);
        }
        Ok(out)
    }

    /// Sends `cmd` as `uml_mconsole` does and reads the reply up to its packet with
    /// `more` 0; fails on a datagram that is not a v2 reply, or if the last packet does
    /// not come within `wait` of the one before.
    pub(crate) fn ask(&self, to: &Path, cmd: &str, wait: Duration) -> Result<Vec<Reply>> {
        self.send(to, &request(cmd))?;
        self.read_reply(cmd, wait)
    }

    fn read_reply(&self, cmd: &str, wait: Duration) -> Result<Vec<Reply>> {
        let mut packets = Vec::new();
        loop {
            let Some(d) = self.recv(wait)? else {
                bail!(
                    "`{cmd}`: {} reply packet(s), then none within {:.1}s, the last with \
                     more = {}",
                    packets.len(),
                    wait.as_secs_f64(),
                    packets.last().map_or(0, |p: &Reply| p.more)
                );
            };
            let p = parse_reply(&d).map_err(|e| {
                anyhow!(
                    "`{cmd}`: reply packet {} is not a v2 reply ({e}): {:?}",
                    packets.len() + 1,
                    String::from_utf8_lossy(&d)
                )
            })?;
            let done = p.more == 0;
            packets.push(p);
            if done {
                return Ok(packets);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Running the cases: groups of cases sharing one boot.

type Results = Vec<(&'static str, Result<String>)>;

struct Group {
    cases: &'static [&'static str],
    body: fn(&Ctx, &Path, &mut Results) -> Result<()>,
}

const QUERY: &str = "host_mconsole_query";
const CONFIG: &str = "host_mconsole_config";
const SYSRQ: &str = "host_mconsole_sysrq";
const LOG: &str = "host_mconsole_log";
const STOP_GO: &str = "host_mconsole_stop_go";
const CAD: &str = "host_mconsole_cad";
const REBOOT: &str = "host_mconsole_reboot";
const HALT: &str = "host_mconsole_halt";
const NOTIFY: &str = "host_mconsole_notify";
const PROTOCOL: &str = "host_mconsole_protocol";
const MALFORMED: &str = "host_mconsole_malformed";
const LONG_REPLY: &str = "host_mconsole_long_reply";
const STACK: &str = "host_mconsole_stack";
const STACK_RELIABLE: &str = "host_mconsole_stack_reliable";
const FOREIGN: &str = "host_mconsole_foreign_uid";

const GROUPS: &[Group] = &[
    Group {
        cases: &[QUERY, CONFIG, SYSRQ, LOG],
        body: commands_boot,
    },
    Group {
        cases: &[STOP_GO],
        body: stop_go_boot,
    },
    Group {
        cases: &[CAD, REBOOT, HALT],
        body: restart_boot,
    },
    Group {
        cases: &[NOTIFY],
        body: notify_boot,
    },
    Group {
        cases: &[
            PROTOCOL,
            MALFORMED,
            LONG_REPLY,
            FOREIGN,
            STACK,
            STACK_RELIABLE,
        ],
        body: protocol_boot,
    },
];

/// Cases the C host half of Linux 6.12 (`mconsole_user.c`) fails, and
/// why; the Rust layer must pass them. On the C kernel such a case is
/// reported as skipped, with what it found; a C kernel that passes one is
/// a failure, so that the list stays true.
pub const C_LAYER_DEFECTS: &[(&str, &str)] = &[
    (
        "host_mconsole_malformed",
        "mconsole_user.c runs a request after refusing its version, and takes a datagram \
         shorter than its header or its len with the previous request's bytes",
    ),
    (
        "host_mconsole_long_reply",
        "mconsole_user.c drops the reply packets a client's full queue refuses (EAGAIN on its \
         non-blocking socket), the last one included",
    ),
    (
        "host_mconsole_foreign_uid",
        "mconsole_user.c does not check who sends a request",
    ),
    (
        "host_mconsole_stack_reliable",
        "mconsole_user.c runs `stack` in the SIGIO handler, where show_stack() refuses to walk \
         from the signal stack",
    ),
];

/// The verdict on the C kernel for case `name`: a known defect of the C
/// layer (see [`C_LAYER_DEFECTS`]) is a skip when it fails, a failure when
/// it passes; any other case as it is.
pub fn c_layer_verdict(name: &str, result: Result<String>) -> Result<String> {
    crate::suite::known_defect_verdict(C_LAYER_DEFECTS, "C layer", name, result)
}

/// The case names, in report order.
pub fn names() -> impl Iterator<Item = &'static str> {
    GROUPS.iter().flat_map(|g| g.cases.iter().copied())
}

/// Runs the boots holding a case `want` selects; returns those cases' results in report
/// order: Ok(diagnostic, with the time of the shared boot), Ok("skipped: why") or the
/// failure.
pub fn run_cases(ctx: &Ctx, kernel: &Path, want: &dyn Fn(&str) -> bool) -> Results {
    let mut all = Vec::new();
    for g in GROUPS {
        if !g.cases.iter().any(|n| want(n)) {
            continue;
        }
        for (name, r) in run_group(g, ctx, kernel) {
            if want(name) {
                all.push((name, r));
            }
        }
    }
    all
}

/// One boot: each case's own result; a failure of the boot itself (it did not come up,
/// a step it waits for never came, a kernel WARNING, the payload failed) fails every
/// case that had not failed on its own, since none of them can be trusted then.
fn run_group(g: &Group, ctx: &Ctx, kernel: &Path) -> Results {
    let t = Instant::now();
    let mut got: Results = Vec::new();
    let boot = (g.body)(ctx, kernel, &mut got);
    let what = if g.cases.len() > 1 {
        format!("one boot for {}", g.cases.join(", "))
    } else {
        String::new()
    };
    let secs = t.elapsed().as_secs_f64();
    suite::shared_boot_verdicts(g.cases, &|_| true, got, boot, secs, &what)
}

/// `uml_mconsole SOCKET ARGS...` must answer `OK`; returns the reply's text (its
/// stdout without the `OK ` and the final newline). A failure quotes the guest's
/// console, since a kernel that died is the likelier story.
fn mc_text(guest: &Guest, sock: &Path, args: &[&str]) -> Result<String> {
    let r = suite::mconsole_reply(sock, args)?;
    let text = r.stdout.strip_suffix('\n').unwrap_or(&r.stdout);
    match text.strip_prefix("OK") {
        Some(t) if r.status.success() => Ok(t.strip_prefix(' ').unwrap_or(t).to_string()),
        _ => Err(anyhow!(
            "uml_mconsole {} answered {:?} ({}), expected OK\nthe guest kernel: {}\n{}",
            args.join(" "),
            clip(text, 200),
            r.status,
            guest.panic_line().unwrap_or_else(|| "no panic line".into()),
            block::quote(&guest.console_so_far())
        )),
    }
}

/// A case's temporary directory.
fn workdir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("uml-mconsole-")
        .tempdir()
        .context("creating a temporary directory")
}

/// The words of the first `@@BLK <key>` line; fails quoting the console.
fn mark_words(console: &str, key: &str) -> Result<Vec<String>> {
    block::mark_line(console, key)
        .map(|l| l.split_whitespace().map(String::from).collect())
        .with_context(|| {
            format!(
                "no `{MARK} {key} ...` line on the console\n{}",
                block::quote(console)
            )
        })
}

/// Modification time of `path`.
fn mtime(path: &Path) -> Result<std::time::SystemTime> {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| format!("stat {}", path.display()))
}

/// Waits up to `limit` for the mtime of `path` to differ from `from`; returns how long
/// that took.
fn mtime_changes(path: &Path, from: std::time::SystemTime, limit: Duration) -> Result<Duration> {
    let t = Instant::now();
    loop {
        if mtime(path)? != from {
            return Ok(t.elapsed());
        }
        if t.elapsed() > limit {
            bail!(
                "{} was not written to within {:.1}s",
                path.display(),
                limit.as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// The commands boot: version, help, proc, config/remove, sysrq, log.

/// The commands `help` must list, each on a line of its own (`mconsole_user.c`'s
/// table, the HOWTO's list).
const COMMANDS: [&str; 13] = [
    "version", "help", "halt", "reboot", "config", "remove", "sysrq", "cad", "stop", "go", "log",
    "proc", "stack",
];

/// The guest: console at loglevel 4 (so that `sysrq m` sends back only its action line,
/// the memory report going to the log), its uname, then, once released, what its log
/// holds. The line written to /dev/kmsg ends any log record still open (`log` text
/// has no newline of its own).
fn commands_script(marker: &str) -> String {
    format!(
        "echo 4 >/proc/sys/kernel/printk; m uname $(uname -s) $(uname -n) $(uname -r) \
         $(uname -m); m unamev \"$(uname -v)\"; m up; m step wait; {g} wait-file /host/go 30; \
         m step dmesg; echo mconsole-test-end >/dev/kmsg; \
         m meminfo $(dmesg | grep -c 'Mem-Info:'); \
         m logline $(dmesg | grep -F -e '{marker}' | tail -n 1); {KWARN}m step done",
        g = proto::GUEST
    )
}

fn commands_boot(ctx: &Ctx, kernel: &Path, res: &mut Results) -> Result<()> {
    let dir = workdir()?;
    let hostfs = dir.path().join("hostfs");
    fs::create_dir(&hostfs)?;
    let plug = dir.path().join("plug.img");
    block::sparse_file(&plug, 1 << 20)?;
    let marker = format!("mconsole-log-{:016x}", block::fresh_seed());
    let s = block::spec(kernel, &commands_script(&marker), &[], Some(&hostfs));
    let mut guest = Guest::start(&s, ctx)?;
    let sock = guest.umid_dir().join("mconsole");
    guest.wait_for_console(&format!("{MARK} up"), STEP_LIMIT)?;
    let console = guest.console_so_far();
    res.push((QUERY, query_case(&guest, &sock, &console)));
    res.push((CONFIG, config_case(&guest, &sock, &plug)));
    let log = mc_text(&guest, &sock, &["log", &marker]);
    let sysrq = mc_text(&guest, &sock, &["sysrq", "m"]);
    block::release(&hostfs, "go")?;
    let out = guest.wait()?;
    block::exited_ok(&out)?;
    block::no_kernel_warnings(&out.console, "the commands boot")?;
    res.push((SYSRQ, sysrq.and_then(|r| sysrq_verdict(&r, &out.console))));
    res.push((
        LOG,
        log.and_then(|r| log_verdict(&r, &marker, &out.console)),
    ));
    Ok(())
}

/// `version`, `help`, `proc meminfo`.
fn query_case(guest: &Guest, sock: &Path, console: &str) -> Result<String> {
    let u = mark_words(console, "uname")?;
    let [sys, node, rel, mach] = u.as_slice() else {
        bail!("the guest's uname line has {} words: {u:?}", u.len());
    };
    let v = block::mark_line(console, "unamev").context("no uname -v line")?;
    let want = format!("{sys} {node} {rel} {v} {mach}");
    let got = mc_text(guest, sock, &["version"])?;
    if got != want {
        bail!("`version` answered {got:?}; the guest's uname -s -n -r -v -m is {want:?}");
    }
    let help = mc_text(guest, sock, &["help"])?;
    // uml_mconsole appends its own local commands; only the kernel's part counts.
    let kernel_help = help
        .split("\nAdditional local mconsole commands:")
        .next()
        .unwrap_or("");
    let listed = |c: &str| {
        kernel_help
            .lines()
            .any(|l| l.split_whitespace().next() == Some(c))
    };
    let missing: Vec<&str> = COMMANDS.iter().copied().filter(|c| !listed(c)).collect();
    if !kernel_help.starts_with("Commands:") || !missing.is_empty() {
        bail!(
            "`help` does not list {missing:?} (or does not start with `Commands:`):\n{kernel_help}"
        );
    }
    let meminfo = mc_text(guest, sock, &["proc", "meminfo"])?;
    let total = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .map(str::trim)
        .with_context(|| {
            format!(
                "`proc meminfo` has no MemTotal line:\n{}",
                clip(&meminfo, 300)
            )
        })?;
    let kb: u64 = total
        .strip_suffix(" kB")
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("`proc meminfo`: MemTotal {total:?} is not N kB"))?;
    if kb == 0 {
        bail!("`proc meminfo`: MemTotal is 0 kB");
    }
    Ok(format!(
        "version {got:?} = the guest's uname; help lists all {} commands; proc meminfo: \
         MemTotal {total}",
        COMMANDS.len()
    ))
}

/// `config ubd1=FILE`, `config ubd1`, `remove ubd1`, `config ubd1` again.
fn config_case(guest: &Guest, sock: &Path, plug: &Path) -> Result<String> {
    let file = plug.display().to_string();
    mc_text(guest, sock, &["config", &format!("ubd1={file}")])?;
    let got = mc_text(guest, sock, &["config", "ubd1"])?;
    if got.trim() != file {
        bail!("`config ubd1` after plugging it answered {got:?}, expected {file:?}");
    }
    mc_text(guest, sock, &["remove", "ubd1"])?;
    let after = mc_text(guest, sock, &["config", "ubd1"])?;
    if !after.trim().is_empty() {
        bail!("`config ubd1` after `remove ubd1` answered {after:?}, expected nothing");
    }
    Ok(format!(
        "config ubd1={file}: OK; config ubd1: {got:?}; remove ubd1: OK; config ubd1: empty"
    ))
}

/// `sysrq m` answered with its action line; the memory report is in the log.
fn sysrq_verdict(reply: &str, console: &str) -> Result<String> {
    if !reply.contains("Show Memory") {
        bail!("`sysrq m` answered {reply:?}, expected the SysRq action line `sysrq: Show Memory`");
    }
    let n = mark_words(console, "meminfo")?;
    if n.first().is_none_or(|n| n == "0") {
        bail!("after `sysrq m` the guest's dmesg holds no `Mem-Info:` report");
    }
    Ok(format!(
        "sysrq m answered {:?}; the guest's dmesg holds the memory report",
        reply.trim()
    ))
}

/// `log MARKER` answered OK and MARKER is in the guest's log.
fn log_verdict(reply: &str, marker: &str, console: &str) -> Result<String> {
    let line = block::mark_line(console, "logline").unwrap_or_default();
    if !line.contains(marker) {
        bail!("after `log {marker}` (answered OK {reply:?}) the guest's dmesg does not hold it");
    }
    Ok(format!("log {marker}: OK; the guest's dmesg has {line:?}"))
}

// ---------------------------------------------------------------------------
// host_mconsole_stop_go

/// The files the guest writes and syncs before the stop: name, length.
const STOP_FILES: &[(&str, usize)] = &[("a.bin", 300_007), ("b.bin", 65_536), ("c.bin", 1_000_003)];

/// Files of known content, synced; then a writer that appends and syncs every 50 ms, so
/// that the host file changes all the time the guest runs; once released, whether the
/// emergency sync queued while stopped completed.
fn stop_go_script(seeds: &[u64]) -> String {
    let mut s = String::from(
        "m step mount; mkdir -p /mnt/s; mount -t ext4 /dev/ubda /mnt/s; m step write; ",
    );
    for ((name, len), seed) in STOP_FILES.iter().zip(seeds) {
        s.push_str(&format!(
            "{} pattern {seed:#x} {len} >/mnt/s/{name}; ",
            proto::GUEST
        ));
    }
    s.push_str(&format!(
        "sync; m synced; (while :; do echo tick >>/mnt/s/busy; sync; sleep 0.05; done) & \
         w=$!; m writing; m step wait; {g} wait-file /host/go 60; kill $w; wait $w || true; \
         m step dmesg; m esync $(dmesg | grep -c 'Emergency Sync complete'); {KWARN}\
         m step umount; umount /mnt/s; m step done",
        g = proto::GUEST
    ));
    s
}

fn stop_go_boot(ctx: &Ctx, kernel: &Path, res: &mut Results) -> Result<()> {
    let dir = workdir()?;
    let d = dir.path();
    let hostfs = d.join("hostfs");
    fs::create_dir(&hostfs)?;
    let src = d.join("src");
    fs::create_dir(&src)?;
    let image = d.join("fs.img");
    block::host_mkfs(&image, &src)?;
    let base = block::fresh_seed();
    let seeds: Vec<u64> = (0..STOP_FILES.len() as u64)
        .map(|k| block::seed(base, k))
        .collect();
    let s = block::spec(
        kernel,
        &stop_go_script(&seeds),
        &[format!("ubd0={}", image.display())],
        Some(&hostfs),
    );
    let mut guest = Guest::start(&s, ctx)?;
    let sock = guest.umid_dir().join("mconsole");
    guest.wait_for_console(&format!("{MARK} writing"), STEP_LIMIT)?;
    let copy = d.join("copy.img");
    let stopped = while_stopped(&guest, &sock, &image, &copy);
    if stopped.is_err() {
        // Never leave the guest stopped: it could not finish.
        let _ = suite::mconsole_reply(&sock, &["go"]);
    }
    block::release(&hostfs, "go")?;
    let out = guest.wait()?;
    block::exited_ok(&out)?;
    block::no_kernel_warnings(&out.console, "the stop/go boot")?;
    res.push((
        STOP_GO,
        stopped.and_then(|fact| {
            let n = mark_words(&out.console, "esync")?;
            if n.first().is_none_or(|n| n == "0") {
                bail!(
                    "the emergency sync `sysrq s` queued while stopped never completed after \
                     `go` (no `Emergency Sync complete` in the guest's dmesg)"
                );
            }
            let snap = check_snapshot(d, &copy, &seeds)?;
            Ok(format!(
                "{fact}; {snap}; the queued emergency sync completed after go"
            ))
        }),
    ));
    Ok(())
}

/// `stop`, the console while stopped, the copy, `go`.
fn while_stopped(guest: &Guest, sock: &Path, image: &Path, copy: &Path) -> Result<String> {
    let running = mtime_changes(image, mtime(image)?, Duration::from_secs(5))
        .context("before `stop`: the guest's writes must reach the host file")?;
    let stop = mc_text(guest, sock, &["stop"])?;
    if stop != "stopped" {
        bail!("`stop` answered OK {stop:?}, expected `stopped`");
    }
    let version = mc_text(guest, sock, &["version"]).context("`version` while stopped")?;
    let again = suite::mconsole_reply(sock, &["stop"])?;
    if again.status.success() || !again.stdout.contains("Already stopped") {
        bail!(
            "a second `stop` answered {:?} ({}), expected ERR `Already stopped`",
            again.stdout.trim(),
            again.status
        );
    }
    let sync = mc_text(guest, sock, &["sysrq", "s"]).context("`sysrq s` while stopped")?;
    if !sync.contains("Emergency Sync") {
        bail!("`sysrq s` while stopped answered {sync:?}, expected `sysrq: Emergency Sync`");
    }
    // Writes the I/O thread had in flight when the kernel stopped may still land.
    let t = Instant::now();
    let mut last = mtime(image)?;
    let mut still_since = Instant::now();
    while still_since.elapsed() < Duration::from_millis(300) {
        if t.elapsed() > Duration::from_secs(3) {
            bail!(
                "{} was still being written to 3 s after `stop`",
                image.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
        let now = mtime(image)?;
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
    let settled = t.elapsed().saturating_sub(Duration::from_millis(300));
    let before = block::Fingerprint::of(image)?;
    fs::copy(image, copy).with_context(|| format!("copying {}", image.display()))?;
    std::thread::sleep(Duration::from_millis(500));
    before.same(image, "while the kernel was stopped")?;
    let go = mc_text(guest, sock, &["go"])?;
    let resumed = mtime_changes(image, mtime(image)?, Duration::from_secs(5))
        .context("after `go`: the guest's writes must resume")?;
    let again = suite::mconsole_reply(sock, &["go"])?;
    if again.status.success() || !again.stdout.contains("Not stopped") {
        bail!(
            "`go` on a running kernel answered {:?} ({}), expected ERR `Not stopped`",
            again.stdout.trim(),
            again.status
        );
    }
    Ok(format!(
        "the guest's writes reached the host file within {} ms; stop: OK stopped; while \
         stopped: version OK ({}), stop ERR Already stopped, sysrq s OK {:?}; host file \
         unchanged for 0.5 s after in-flight writes settled ({} ms); go: OK {go:?}, writes \
         resumed within {} ms; go again: ERR Not stopped",
        running.as_millis(),
        clip(&version, 20),
        sync.trim(),
        settled.as_millis(),
        resumed.as_millis()
    ))
}

/// The copy made while stopped: clean for `e2fsck -fn`; after a journal replay (in a
/// second copy) clean again, and every file synced before the stop intact.
fn check_snapshot(dir: &Path, copy: &Path, seeds: &[u64]) -> Result<String> {
    let raw = block::host_fsck(copy).context("the copy made while stopped")?;
    let replayed = dir.join("replayed.img");
    fs::copy(copy, &replayed)?;
    let out = std::process::Command::new("e2fsck")
        .args(["-p", "-E", "journal_only"])
        .arg(&replayed)
        .output()
        .context("running e2fsck (package e2fsprogs)")?;
    if !matches!(out.status.code(), Some(0 | 1)) {
        bail!(
            "e2fsck -p -E journal_only on a second copy failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let clean = block::host_fsck(&replayed).context("the copy after its journal replay")?;
    for ((name, len), seed) in STOP_FILES.iter().zip(seeds) {
        let got = block::debugfs_cat(&replayed, &format!("/{name}"))?;
        if let Some(why) = block::pattern_mismatch(&got, *seed, *len) {
            bail!(
                "/{name}, synced before `stop`, in the copy made while stopped (journal \
                 replayed) {why}"
            );
        }
    }
    Ok(format!(
        "copy: e2fsck -fn clean ({raw}); journal replayed: clean ({clean}), {} synced files \
         intact",
        STOP_FILES.len()
    ))
}

// ---------------------------------------------------------------------------
// The restart boot: cad, reboot, halt.

/// Each run: `up`; then Ctrl-Alt-Del made to signal the payload itself (`ctrl-alt-del`
/// 0, `cad_pid` the shell), `armed`; on SIGINT `cad-sigint`, then the default restored
/// (`ctrl-alt-del` 1), `cad-default`, and it waits to be restarted or halted.
fn restart_script() -> String {
    "m up; echo 0 >/proc/sys/kernel/ctrl-alt-del; echo $$ >/proc/sys/kernel/cad_pid; \
     got=; trap 'got=1' INT; m armed; i=0; while [ -z \"$got\" ]; do i=$((i+1)); \
     [ $i -lt 1200 ]; sleep 0.05; done; m cad-sigint; \
     echo 1 >/proc/sys/kernel/ctrl-alt-del; m cad-default; sleep 120"
        .into()
}

/// What the kernel prints in `kernel_restart` (not on an mconsole `reboot`, which goes
/// to `machine_restart` directly).
const RESTARTING: &str = "reboot: Restarting system";

/// Whether process `pid` is alive (not a zombie).
fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|st| !matches!(st, "Z" | "X"))
    })
}

fn restart_boot(ctx: &Ctx, kernel: &Path, res: &mut Results) -> Result<()> {
    let s = block::spec(kernel, &restart_script(), &[], None);
    let mut guest = Guest::start(&s, ctx)?;
    let sock = guest.umid_dir().join("mconsole");
    let armed = format!("{MARK} armed");
    guest.wait_for_console(&armed, STEP_LIMIT)?;
    res.push((CAD, cad_case(&mut guest, &sock)));
    res.push((REBOOT, reboot_case(&mut guest, &sock)));
    let halt = halt_case(&mut guest, &sock);
    let status = guest.stop();
    res.push((
        HALT,
        halt.and_then(|fact| {
            let st = status?;
            if st != "exited with status 0" {
                bail!("after `halt` the kernel {st}, expected exit status 0");
            }
            Ok(format!("{fact}; kernel {st}"))
        }),
    ));
    Ok(())
}

fn count(console: &str, needle: &str) -> usize {
    console.matches(needle).count()
}

fn cad_case(guest: &mut Guest, sock: &Path) -> Result<String> {
    let up = format!("{MARK} up");
    mc_text(guest, sock, &["cad"])?;
    guest
        .wait_for_console(&format!("{MARK} cad-sigint"), Duration::from_secs(10))
        .context(
            "after `cad` with /proc/sys/kernel/ctrl-alt-del 0 the payload (cad_pid) got no \
             SIGINT",
        )?;
    let c = guest.console_so_far();
    if count(&c, &up) != 1 || c.contains(RESTARTING) {
        bail!(
            "`cad` with ctrl-alt-del 0 restarted the kernel\n{}",
            block::quote(&c)
        );
    }
    guest.wait_for_console(&format!("{MARK} cad-default"), STEP_LIMIT)?;
    let pid = guest.pid();
    mc_text(guest, sock, &["cad"])?;
    guest
        .wait_for_console_count(&up, 2, STEP_LIMIT)
        .context("after `cad` with ctrl-alt-del 1 (the default) the payload did not run again")?;
    let c = guest.console_so_far();
    if count(&c, RESTARTING) != 1 {
        bail!(
            "after `cad` with ctrl-alt-del 1 the console shows {RESTARTING:?} {} times, \
             expected once (kernel_restart)\n{}",
            count(&c, RESTARTING),
            block::quote(&c)
        );
    }
    if !alive(pid) {
        bail!("after the restart by `cad` the kernel (pid {pid}) is gone");
    }
    Ok(format!(
        "cad with ctrl-alt-del 0: SIGINT to cad_pid (the payload), no restart; cad with \
         ctrl-alt-del 1: `{RESTARTING}`, the payload ran again in the same host process \
         {pid}"
    ))
}

fn reboot_case(guest: &mut Guest, sock: &Path) -> Result<String> {
    let (up, armed) = (format!("{MARK} up"), format!("{MARK} armed"));
    let c = guest.console_so_far();
    let n = count(&c, &up);
    let restarts = count(&c, RESTARTING);
    guest.wait_for_console_count(&armed, n, STEP_LIMIT)?;
    let pid = guest.pid();
    mc_text(guest, sock, &["reboot"])?;
    guest
        .wait_for_console_count(&up, n + 1, STEP_LIMIT)
        .context("after `reboot` the payload did not run again")?;
    guest.wait_for_console_count(&armed, n + 1, STEP_LIMIT)?;
    if !alive(pid) {
        bail!("after `reboot` the kernel (pid {pid}) is gone");
    }
    let c = guest.console_so_far();
    if count(&c, RESTARTING) != restarts {
        bail!("`reboot` went through kernel_restart ({RESTARTING:?} printed)");
    }
    Ok(format!(
        "reboot: OK, the payload ran again (run {}) in the same host process {pid}",
        n + 1
    ))
}

/// `halt`: the kernel exits (its status comes from `Guest::stop`).
fn halt_case(guest: &mut Guest, sock: &Path) -> Result<String> {
    let pid = guest.pid();
    let umid = guest.umid_dir();
    mc_text(guest, sock, &["halt"])?;
    suite::wait_kernel_exit(pid, STEP_LIMIT).context("after `halt`")?;
    if umid.exists() {
        bail!(
            "the umid directory {} is still there after `halt`",
            umid.display()
        );
    }
    Ok(
        "halt: OK, the kernel exited with the payload still running, umid directory removed"
            .to_string(),
    )
}

// ---------------------------------------------------------------------------
// host_mconsole_notify

/// The size of the long user notification the guest writes (more than the 512 bytes a
/// notification carries).
const LONG_NOTE: usize = 600;

/// Two user notifications, then, once released, a panic.
fn notify_script(note: &str, seed: u64) -> String {
    format!(
        "m up; printf '%s' '{note}' >/proc/mconsole; \
         {g} pattern {seed:#x} {LONG_NOTE} | dd of=/proc/mconsole bs={LONG_NOTE} count=1 \
         iflag=fullblock 2>/dev/null; m notified; m step wait; {g} wait-file /host/go 30; \
         m step panic; echo c >/proc/sysrq-trigger",
        g = proto::GUEST
    )
}

/// The next notification on `sock` within `wait`, checked for the magic, the version
/// and the type `kind`; `what` names it in messages.
fn notification(
    sock: &UnixDatagram,
    wait: Duration,
    kind: u32,
    what: &str,
) -> Result<Notification> {
    sock.set_read_timeout(Some(wait))?;
    let mut buf = vec![0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .with_context(|| format!("no {what} notification within {}s", wait.as_secs()))?;
    let p = parse_notification(&buf[..n])
        .map_err(|e| anyhow!("the {what} notification is malformed: {e}"))?;
    if p.magic != MAGIC || p.version != VERSION || p.kind != kind {
        bail!(
            "the {what} notification has magic {:#x}, version {}, type {}; expected {MAGIC:#x}, \
             {VERSION}, {kind}",
            p.magic,
            p.version,
            p.kind
        );
    }
    Ok(p)
}

fn notify_boot(ctx: &Ctx, kernel: &Path, res: &mut Results) -> Result<()> {
    let dir = workdir()?;
    let hostfs = dir.path().join("hostfs");
    fs::create_dir(&hostfs)?;
    let path = dir.path().join("notify");
    let nsock = UnixDatagram::bind(&path)
        .with_context(|| format!("binding the notification socket {}", path.display()))?;
    let seed = block::fresh_seed();
    let note = format!("user-note-{seed:016x}");
    let s = block::spec(
        kernel,
        &notify_script(&note, seed),
        &[format!("mconsole=notify:{}", path.display())],
        Some(&hostfs),
    );
    let mut guest = Guest::start(&s, ctx)?;
    let r = notify_case(&mut guest, &nsock, &hostfs, &note, seed);
    let status = guest.stop();
    res.push((
        NOTIFY,
        r.and_then(|fact| Ok(format!("{fact}; kernel {}", status?))),
    ));
    Ok(())
}

fn notify_case(
    guest: &mut Guest,
    nsock: &UnixDatagram,
    hostfs: &Path,
    note: &str,
    seed: u64,
) -> Result<String> {
    let sock = guest.umid_dir().join("mconsole");
    let first = notification(nsock, STEP_LIMIT, NOTIFY_SOCKET, "MCONSOLE_SOCKET")?;
    let mut want = sock.as_os_str().as_encoded_bytes().to_vec();
    want.push(0);
    if first.data != want {
        bail!(
            "the MCONSOLE_SOCKET notification carries {:?}, expected the mconsole socket \
             {:?} with its NUL",
            String::from_utf8_lossy(&first.data),
            sock.display()
        );
    }
    // The notification says the console is ready; it must answer at that path.
    let version = mc_text(guest, &sock, &["version"])
        .context("`version` to the socket the notification named")?;
    guest.wait_for_console(&format!("{MARK} notified"), STEP_LIMIT)?;
    let user = notification(nsock, Duration::from_secs(5), NOTIFY_USER, "first user")?;
    if user.data != note.as_bytes() {
        bail!(
            "the guest wrote {note:?} to /proc/mconsole; the MCONSOLE_USER_NOTIFY carries {:?}",
            String::from_utf8_lossy(&user.data)
        );
    }
    let long = notification(nsock, Duration::from_secs(5), NOTIFY_USER, "second user")?;
    let want_long = suite::pattern_bytes(seed, LONG_NOTE);
    if long.data != want_long[..MAX_DATA] {
        bail!(
            "the guest wrote {LONG_NOTE} bytes to /proc/mconsole; the MCONSOLE_USER_NOTIFY \
             carries {} bytes{}, expected the first {MAX_DATA}",
            long.data.len(),
            if long.data.len() == MAX_DATA {
                " that differ"
            } else {
                ""
            }
        );
    }
    nsock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 1024];
    if let Ok(n) = nsock.recv(&mut buf) {
        bail!(
            "an unexpected notification before the panic: {:?}",
            parse_notification(&buf[..n])
        );
    }
    block::release(hostfs, "go")?;
    let panic = notification(nsock, STEP_LIMIT, NOTIFY_PANIC, "MCONSOLE_PANIC")?;
    suite::wait_kernel_exit(guest.pid(), STEP_LIMIT).context("after the panic")?;
    let until = Instant::now() + Duration::from_secs(3);
    while guest.panic_line().is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let line = guest
        .panic_line()
        .context("the kernel printed no panic line")?;
    let msg = line
        .split_once("not syncing: ")
        .map(|(_, m)| m.trim())
        .with_context(|| format!("panic line {line:?} has no message"))?;
    let mut want_panic = msg.as_bytes().to_vec();
    want_panic.push(0);
    if panic.data != want_panic {
        bail!(
            "the MCONSOLE_PANIC notification carries {:?}, expected the panic message {msg:?} \
             with its NUL",
            String::from_utf8_lossy(&panic.data)
        );
    }
    Ok(format!(
        "MCONSOLE_SOCKET {:?} at boot (version there: {}); MCONSOLE_USER_NOTIFY {} bytes as \
         written, and {MAX_DATA} of {LONG_NOTE} bytes; MCONSOLE_PANIC {msg:?}",
        sock.display(),
        clip(&version, 24),
        note.len()
    ))
}

// ---------------------------------------------------------------------------
// The protocol boot: protocol, malformed, long_reply, stack, foreign_uid.

/// How long a malformed packet's answer may take (the console answers in
/// milliseconds); later answers are still collected at the end of the case.
const MALFORMED_WAIT: Duration = Duration::from_millis(400);
/// How late the long-reply client starts reading.
const LATE_READER: Duration = Duration::from_millis(100);
/// Padding that makes /proc/cmdline longer than two reply packets (a parameter with a
/// dot, which the kernel neither uses nor hands to init).
const CMDLINE_PAD: usize = 700;

/// The guest: console at loglevel 7 (stack dumps are KERN_INFO), a sleeping task, what
/// /proc/cmdline holds; then it waits to be released, first to start a process that
/// keeps the CPU busy, then to end.
fn protocol_script() -> String {
    format!(
        "echo 7 >/proc/sys/kernel/printk; sleep 600 & m sleeper $!; \
         set -- $(wc -c </proc/cmdline); m cmdline-len $1; \
         set -- $(sha256sum </proc/cmdline); m cmdline-sha $1; m up; m step wait; \
         {g} wait-file /host/busy 60; (while :; do :; done) & b=$!; m busy; \
         {g} wait-file /host/go 60; kill $b; {KWARN}m step done",
        g = proto::GUEST
    )
}

fn protocol_boot(ctx: &Ctx, kernel: &Path, res: &mut Results) -> Result<()> {
    let dir = workdir()?;
    let d = dir.path();
    let hostfs = d.join("hostfs");
    fs::create_dir(&hostfs)?;
    let pad = format!("mconsole_test.pad={}", "p".repeat(CMDLINE_PAD));
    let s = block::spec(kernel, &protocol_script(), &[pad], Some(&hostfs));
    let mut guest = Guest::start(&s, ctx)?;
    let sock = guest.umid_dir().join("mconsole");
    guest.wait_for_console(&format!("{MARK} up"), STEP_LIMIT)?;
    let console = guest.console_so_far();
    let nonce = block::fresh_seed();
    res.push((PROTOCOL, protocol_case(&guest, &sock, d, &console)));
    res.push((MALFORMED, malformed_case(&mut guest, &sock, d, nonce)));
    res.push((LONG_REPLY, long_reply_case(&guest, &sock, d)));
    res.push((FOREIGN, foreign_case(&mut guest, &sock, d, nonce)));
    let (once, every) = stack_cases(&mut guest, &sock, d, &console, &hostfs);
    res.push((STACK, once));
    res.push((STACK_RELIABLE, every));
    block::release(&hostfs, "go")?;
    let out = guest.wait()?;
    block::exited_ok(&out)?;
    block::no_kernel_warnings(&out.console, "the protocol boot")?;
    Ok(())
}

fn protocol_case(guest: &Guest, sock: &Path, dir: &Path, console: &str) -> Result<String> {
    let c = Client::bind(dir, "client")?;
    let wait = Duration::from_secs(5);
    let v = c.ask(sock, "version", wait)?;
    let [r] = v.as_slice() else {
        bail!("`version` came in {} packets, expected one", v.len());
    };
    let want = mc_text(guest, sock, &["version"])?;
    if r.err != 0 || r.more != 0 || r.text() != want {
        bail!(
            "`version` answered err {} more {} {:?}; expected err 0, more 0 and uml_mconsole's \
             {want:?}",
            r.err,
            r.more,
            r.text()
        );
    }
    let u = c.ask(sock, "frobnicate", wait)?;
    if u.len() != 1 || u[0].err == 0 {
        bail!(
            "the unknown command `frobnicate` answered {}, expected one packet with err set",
            u.iter()
                .map(|p| Answer::V2(p.clone()).describe())
                .collect::<Vec<_>>()
                .join(" then ")
        );
    }
    let h = c.ask(sock, "help", wait)?;
    let help = join_reply(&h).map_err(|e| anyhow!("`help`: {e}"))?;
    let missing: Vec<&str> = COMMANDS
        .iter()
        .copied()
        .filter(|cmd| {
            !help
                .lines()
                .any(|l| l.split_whitespace().next() == Some(cmd))
        })
        .collect();
    if !help.starts_with("Commands:") || !missing.is_empty() {
        bail!("`help` does not list {missing:?} (or start with `Commands:`):\n{help}");
    }
    if h.len() < 2 {
        bail!(
            "`help` ({} bytes) came in {} packet(s), expected more than one (a packet holds \
             at most {} bytes and a NUL)",
            help.len(),
            h.len(),
            MAX_DATA - 1
        );
    }
    let len: usize = mark_words(console, "cmdline-len")?[0]
        .parse()
        .context("cmdline-len")?;
    let sha = mark_words(console, "cmdline-sha")?[0].clone();
    let p = c.ask(sock, "proc cmdline", wait)?;
    let text = join_reply(&p).map_err(|e| anyhow!("`proc cmdline`: {e}"))?;
    let body = text.strip_prefix('\n').with_context(|| {
        format!(
            "`proc cmdline` does not start with its newline: {:?}",
            clip(&text, 80)
        )
    })?;
    if p.len() < 4 || body.len() != len || block::sha256_hex(body.as_bytes()) != sha {
        bail!(
            "`proc cmdline` came in {} packets holding {} bytes with SHA-256 {}; the guest \
             reads {len} bytes with {sha} in /proc/cmdline",
            p.len(),
            body.len(),
            block::sha256_hex(body.as_bytes())
        );
    }
    Ok(format!(
        "version: one packet, err 0, more 0, len {} (data + NUL), = uml_mconsole's; unknown \
         command: err {} {:?}; help: {} packets ({}), {} bytes; proc cmdline: {} packets, \
         {len} bytes = the guest's /proc/cmdline",
        r.text.len() + 1,
        u[0].err,
        u[0].text(),
        h.len(),
        h.iter()
            .map(|p| format!("len {} more {}", p.text.len() + 1, p.more))
            .collect::<Vec<_>>()
            .join(", "),
        help.len(),
        p.len()
    ))
}

/// What the C does with a request is fixed by `mconsole_get_request`; these are the
/// requests it must refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// An `ERR` reply or none, and not executed.
    Refused,
    /// Refused, or executed with exactly its `len` bytes (nothing after them).
    RefusedOrExact,
}

struct Variant {
    name: &'static str,
    /// A valid request sent first from the same socket (whose leftovers the malformed
    /// one could pick up).
    prime: Option<String>,
    packet: Vec<u8>,
    /// The text the packet's `log` would put in the kernel log.
    marker: Option<String>,
    expect: Expect,
}

fn variants(nonce: u64) -> Vec<Variant> {
    let m = |what: &str| format!("mc-{what}-{nonce:016x}");
    let log = |what: &str| format!("log {}\n", m(what));
    let full = HEADER + MAX_DATA;
    let header = |name: &'static str, magic: u32, version: u32, len: Option<u32>, what: &str| {
        let l = log(what);
        Variant {
            name,
            prime: None,
            packet: raw_request(
                magic,
                version,
                len.unwrap_or(l.len() as u32),
                l.as_bytes(),
                full,
            ),
            marker: Some(m(what)),
            expect: Expect::Refused,
        }
    };
    let mut v = vec![
        header(
            "bad magic 0xdeadbeef",
            0xdead_beef,
            VERSION,
            None,
            "badmagic",
        ),
        header("version 1", MAGIC, 1, None, "badversion"),
        header("len 513", MAGIC, VERSION, Some(513), "len513"),
        header("len 4294967295", MAGIC, VERSION, Some(u32::MAX), "lenmax"),
    ];
    for (n, name) in [
        (0, "0-byte datagram"),
        (4, "4-byte datagram (magic only)"),
        (8, "8-byte datagram (magic, version)"),
        (11, "11-byte datagram"),
    ] {
        v.push(Variant {
            name,
            prime: Some("version".into()),
            packet: request("version")[..n].to_vec(),
            marker: None,
            expect: Expect::Refused,
        });
    }
    let data = format!("log {}", m("lenbeyond"));
    v.push(Variant {
        name: "len beyond the datagram",
        prime: Some(format!("log {}-{}\n", m("stale"), "Z".repeat(40))),
        packet: raw_request(
            MAGIC,
            VERSION,
            (data.len() + 24) as u32,
            data.as_bytes(),
            HEADER + data.len(),
        ),
        marker: Some(m("lenbeyond")),
        expect: Expect::Refused,
    });
    let data = format!("log {}", m("nonul"));
    v.push(Variant {
        name: "data without a NUL",
        prime: Some(format!("log {}-{}\n", m("stale2"), "Y".repeat(60))),
        packet: raw_request(
            MAGIC,
            VERSION,
            data.len() as u32,
            data.as_bytes(),
            HEADER + data.len(),
        ),
        marker: Some(m("nonul")),
        expect: Expect::RefusedOrExact,
    });
    v
}

/// What one malformed packet got: a sentence, and whether that is acceptable.
fn judge(v: &Variant, answers: &[Answer], console: &str) -> (String, bool) {
    let msgs = messages(answers);
    let replies = if answers.is_empty() {
        "no reply".to_string()
    } else {
        answers
            .iter()
            .map(Answer::describe)
            .collect::<Vec<_>>()
            .join(" then ")
    };
    let refused = msgs.len() <= 1 && msgs.iter().all(|m| m[0].is_err());
    let line = v
        .marker
        .as_deref()
        .and_then(|mk| console.lines().find(|l| l.contains(mk)).map(|l| (mk, l)));
    let exact = line.is_some_and(|(mk, l)| l.trim_end().ends_with(mk));
    let executed = match line {
        Some((mk, l)) => format!(
            ", and executed: the kernel log got {:?}{}",
            clip(l.trim(), 70),
            if exact && v.expect == Expect::RefusedOrExact {
                " (exactly its len bytes)"
            } else {
                ""
            }
        )
        .replace(mk, "<marker>"),
        None => String::new(),
    };
    let replayed = if v.prime.as_deref() == Some("version") && msgs.iter().any(|m| !m[0].is_err()) {
        ": the previous request (`version`) executed again"
    } else {
        ""
    };
    let ok = match v.expect {
        Expect::Refused => refused && line.is_none(),
        Expect::RefusedOrExact => {
            (refused && line.is_none()) || (msgs.len() == 1 && !msgs[0][0].is_err() && exact)
        }
    };
    (format!("{}: {replies}{replayed}{executed}", v.name), ok)
}

fn malformed_case(guest: &mut Guest, sock: &Path, dir: &Path, nonce: u64) -> Result<String> {
    let vs = variants(nonce);
    let mut sent = Vec::new();
    for (i, v) in vs.iter().enumerate() {
        let c = Client::bind(dir, &format!("malformed{i}"))?;
        if let Some(p) = &v.prime {
            let r = c.ask(sock, p, Duration::from_secs(5))?;
            if r[0].err != 0 {
                bail!(
                    "the valid request {p:?} before `{}` answered {:?}",
                    v.name,
                    r
                );
            }
        }
        c.send(sock, &v.packet)?;
        let got = c.collect(MALFORMED_WAIT, Duration::from_millis(100))?;
        sent.push((c, got));
    }
    // Requests are taken in order: once this one is in the log, so is any of the above.
    let sync = format!("mc-sync-{nonce:016x}");
    let c = Client::bind(dir, "sync")?;
    c.ask(sock, &format!("log {sync}\n"), Duration::from_secs(5))?;
    guest.wait_for_console(&sync, Duration::from_secs(5))?;
    let console = guest.console_so_far();
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    for (v, (c, mut got)) in vs.iter().zip(sent) {
        // Late answers count too.
        got.extend(c.collect(Duration::from_millis(1), Duration::from_millis(1))?);
        let answers: Vec<Answer> = got.iter().map(|d| classify(d)).collect();
        let (line, ok) = judge(v, &answers, &console);
        if !ok {
            bad.push(v.name);
        }
        lines.push(line);
    }
    let alive = mc_text(guest, sock, &["version"]).context("`version` after the malformed packets");
    if !bad.is_empty() {
        bail!(
            "{} of {} malformed packets were not refused: {}\n{}{}",
            bad.len(),
            vs.len(),
            bad.join(", "),
            lines.join("\n"),
            alive
                .err()
                .map_or(String::new(), |e| format!("\nthen: {e:#}"))
        );
    }
    let alive = alive?;
    Ok(format!(
        "{}; then version OK ({})",
        lines.join("; "),
        clip(&alive, 24)
    ))
}

/// `sysrq m` at console loglevel 7 (some 20 packets), read 100 ms late.
fn long_reply_case(guest: &Guest, sock: &Path, dir: &Path) -> Result<String> {
    let c = Client::bind(dir, "long")?;
    c.send(sock, &request("sysrq m"))?;
    std::thread::sleep(LATE_READER);
    let got = c.collect(Duration::from_secs(3), Duration::from_secs(1))?;
    let mut packets = Vec::new();
    for (i, d) in got.iter().enumerate() {
        packets.push(parse_reply(d).map_err(|e| anyhow!("`sysrq m`: packet {} {e}", i + 1))?);
    }
    let text: String = packets.iter().map(Reply::text).collect();
    let qlen = fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let framing = join_reply(&packets);
    if let Err(e) = &framing {
        bail!(
            "`sysrq m` read {} ms late: {} packets arrived ({} bytes), then nothing for 1 s: \
             {e}; the rest of the reply, with its end, was lost (the client's receive queue \
             holds net.unix.max_dgram_qlen = {qlen} datagrams), and uml_mconsole would wait \
             for it forever",
            LATE_READER.as_millis(),
            packets.len(),
            text.len()
        );
    }
    if !text.contains("Mem-Info:") || !text.contains("pages RAM") {
        bail!(
            "`sysrq m` ({} packets) lacks `Mem-Info:` or `pages RAM`:\n{}",
            packets.len(),
            clip(&text, 400)
        );
    }
    mc_text(guest, sock, &["version"]).context("`version` after the long reply")?;
    Ok(format!(
        "sysrq m read {} ms late: {} packets, {} bytes, more on all but the last, the whole \
         memory report (receive queue {qlen} datagrams)",
        LATE_READER.as_millis(),
        packets.len(),
        text.len()
    ))
}

/// Requests per guest state in the `stack` cases.
const STACK_TRIES: usize = 3;

/// One `stack PID`: Ok(frames) for a stack dump, Err(what came instead).
fn stack_once(c: &Client, sock: &Path, pid: &str) -> Result<std::result::Result<usize, String>> {
    c.send(sock, &request(&format!("stack {pid}")))?;
    let got = c.collect(Duration::from_secs(3), Duration::from_millis(300))?;
    let mut packets = Vec::new();
    for (i, d) in got.iter().enumerate() {
        packets.push(parse_reply(d).map_err(|e| anyhow!("`stack {pid}`: packet {} {e}", i + 1))?);
    }
    let text: String = packets.iter().map(Reply::text).collect();
    if packets.first().is_none_or(|p| p.err != 0) {
        bail!("`stack {pid}` answered {:?}, expected OK", clip(&text, 200));
    }
    if text.contains("Call Trace:") && text.lines().any(|l| l.contains("schedule")) {
        Ok(Ok(text.lines().filter(|l| l.contains("[<")).count()))
    } else {
        Ok(Err(text.trim().to_string()))
    }
}

/// `stack PID` of the guest's sleeping task, [`STACK_TRIES`] times with the guest idle,
/// as many while another guest process keeps the CPU busy: (a dump at least once, a
/// dump every time).
fn stack_cases(
    guest: &mut Guest,
    sock: &Path,
    dir: &Path,
    console: &str,
    hostfs: &Path,
) -> (Result<String>, Result<String>) {
    let mut tries = Vec::new();
    let r = (|| -> Result<String> {
        let pid = mark_words(console, "sleeper")?[0].clone();
        let c = Client::bind(dir, "stack")?;
        for _ in 0..STACK_TRIES {
            tries.push(("idle", stack_once(&c, sock, &pid)?));
        }
        block::release(hostfs, "busy")?;
        guest.wait_for_console(&format!("{MARK} busy"), STEP_LIMIT)?;
        for _ in 0..STACK_TRIES {
            tries.push(("busy", stack_once(&c, sock, &pid)?));
        }
        mc_text(guest, sock, &["version"]).context("`version` after `stack`")?;
        Ok(pid)
    })();
    let pid = match r {
        Ok(pid) => pid,
        Err(e) => {
            let e2 = anyhow!("{e:#}");
            return (Err(e), Err(e2));
        }
    };
    let dumps = tries.iter().filter(|(_, t)| t.is_ok()).count();
    let summary = tries
        .iter()
        .map(|(when, t)| match t {
            Ok(frames) => format!("{when}: {frames} frames"),
            Err(text) => format!("{when}: {:?}", clip(text, 60)),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let fact = format!(
        "stack {pid} (the guest's `sleep`), {} times: {dumps} stack dumps ({summary})",
        tries.len()
    );
    let refused = tries.iter().find_map(|(_, t)| t.as_ref().err());
    let why = match refused {
        Some(t) if t.contains("aborting stack trace") => {
            "; show_stack() refuses to run on the signal stack, where the request was handled \
             (in the SIGIO handler, which interrupted the guest with interrupts enabled)"
        }
        _ => "",
    };
    let once = if dumps > 0 {
        Ok(fact.clone())
    } else {
        Err(anyhow!(
            "no stack dump in {} tries: {fact}{why}",
            tries.len()
        ))
    };
    let every = if dumps == tries.len() {
        Ok(fact)
    } else {
        Err(anyhow!(
            "{} of {} `stack` requests answered no stack dump: {fact}{why}",
            tries.len() - dumps,
            tries.len()
        ))
    };
    (once, every)
}

// ---------------------------------------------------------------------------
// host_mconsole_foreign_uid: a request from another uid, from a forked child.

/// The uid and gid the child takes (`nobody`).
const NOBODY: u32 = 65534;
/// Datagrams the child keeps, and the bytes of each.
const FOREIGN_REPLIES: usize = 4;
const FOREIGN_REPLY_MAX: usize = 600;
/// The child's report through its pipe: stage, errno, count, then (u16 length, bytes)
/// per datagram; less than PIPE_BUF, so one atomic write.
const FOREIGN_OUT: usize = 6 + FOREIGN_REPLIES * (2 + FOREIGN_REPLY_MAX);

/// Where the child got to.
const STAGE_SETGROUPS: u8 = 1;
const STAGE_SETGID: u8 = 2;
const STAGE_SETUID: u8 = 3;
const STAGE_SOCKET: u8 = 4;
const STAGE_BIND: u8 = 5;
const STAGE_SEND: u8 = 6;
const STAGE_SENT: u8 = 7;

/// What the request from the other uid met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Foreign {
    /// The child could not get ready (stage, errno).
    Setup(u8, i32),
    /// `sendto` failed with this errno.
    SendFailed(i32),
    /// Sent; the datagrams that came back.
    Sent(Vec<Vec<u8>>),
}

/// Writes the child's report into `out` (no allocation: it runs after `fork`); returns
/// its length.
fn encode_foreign(
    out: &mut [u8; FOREIGN_OUT],
    stage: u8,
    errno: i32,
    replies: &[[u8; FOREIGN_REPLY_MAX]],
    lens: &[usize],
) -> usize {
    out[0] = stage;
    out[1..5].copy_from_slice(&errno.to_le_bytes());
    let n = replies.len().min(lens.len()).min(FOREIGN_REPLIES);
    out[5] = n as u8;
    let mut at = 6;
    for (r, &len) in replies.iter().zip(lens).take(n) {
        let len = len.min(FOREIGN_REPLY_MAX);
        out[at..at + 2].copy_from_slice(&(len as u16).to_le_bytes());
        out[at + 2..at + 2 + len].copy_from_slice(&r[..len]);
        at += 2 + len;
    }
    at
}

pub(crate) fn decode_foreign(b: &[u8]) -> Result<Foreign> {
    if b.len() < 6 {
        bail!("the child's report is {} bytes long", b.len());
    }
    let errno = i32::from_le_bytes(b[1..5].try_into().expect("4 bytes"));
    match b[0] {
        STAGE_SENT => {
            let mut replies = Vec::new();
            let mut at = 6;
            for _ in 0..b[5] {
                let len = b
                    .get(at..at + 2)
                    .map(|l| u16::from_le_bytes(l.try_into().expect("2 bytes")) as usize)
                    .context("the child's report is cut short")?;
                let data = b
                    .get(at + 2..at + 2 + len)
                    .context("the child's report is cut short")?;
                replies.push(data.to_vec());
                at += 2 + len;
            }
            Ok(Foreign::Sent(replies))
        }
        STAGE_SEND => Ok(Foreign::SendFailed(errno)),
        s @ STAGE_SETGROUPS..=STAGE_BIND => Ok(Foreign::Setup(s, errno)),
        s => bail!("the child's report has stage {s}"),
    }
}

/// A `sockaddr_un` for `name` (a path, or an abstract name starting with NUL) and its
/// length.
fn sockaddr_un(name: &[u8]) -> Result<(nix::libc::sockaddr_un, nix::libc::socklen_t)> {
    use nix::libc;
    // SAFETY: sockaddr_un is plain old data, for which all zero bytes are valid.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if name.is_empty() || name.len() >= a.sun_path.len() {
        bail!(
            "socket address {:?} is empty or longer than {} bytes",
            String::from_utf8_lossy(name),
            a.sun_path.len() - 1
        );
    }
    for (d, &s) in a.sun_path.iter_mut().zip(name) {
        *d = s as libc::c_char;
    }
    // A path is counted with its NUL, an abstract name without one.
    let extra = usize::from(name[0] != 0);
    let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + name.len() + extra;
    Ok((a, len as libc::socklen_t))
}

/// The forked child: becomes `uid`, binds an abstract address (so that replies can come
/// back whatever the directories allow), sends `req` to `target`, keeps what comes back
/// within `wait_ms`, reports through `out` and exits. Only system calls, no allocation
/// (the parent has threads).
fn foreign_child(
    uid: u32,
    target: &(nix::libc::sockaddr_un, nix::libc::socklen_t),
    own: &(nix::libc::sockaddr_un, nix::libc::socklen_t),
    req: &[u8],
    wait_ms: i32,
    out: std::os::fd::RawFd,
) -> ! {
    use nix::libc;
    let mut replies = [[0u8; FOREIGN_REPLY_MAX]; FOREIGN_REPLIES];
    let mut lens = [0usize; FOREIGN_REPLIES];
    let mut n = 0;
    let errno = || nix::errno::Errno::last_raw();
    let stage = 'run: {
        // SAFETY: plain system calls on values owned here; setgroups takes no list.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0 {
                break 'run (STAGE_SETGROUPS, errno());
            }
            if libc::setgid(uid) != 0 || libc::getegid() != uid {
                break 'run (STAGE_SETGID, errno());
            }
            if libc::setuid(uid) != 0 || libc::geteuid() != uid || libc::getuid() != uid {
                break 'run (STAGE_SETUID, errno());
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                break 'run (STAGE_SOCKET, errno());
            }
            if libc::bind(fd, (&raw const own.0).cast(), own.1) != 0 {
                break 'run (STAGE_BIND, errno());
            }
            let sent = libc::sendto(
                fd,
                req.as_ptr().cast(),
                req.len(),
                0,
                (&raw const target.0).cast(),
                target.1,
            );
            if sent < 0 {
                break 'run (STAGE_SEND, errno());
            }
            let mut timeout = wait_ms;
            while n < FOREIGN_REPLIES {
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                if libc::poll(&mut pfd, 1, timeout) != 1 {
                    break;
                }
                let got = libc::recv(fd, replies[n].as_mut_ptr().cast(), FOREIGN_REPLY_MAX, 0);
                if got < 0 {
                    break;
                }
                lens[n] = got as usize;
                n += 1;
                timeout = 200;
            }
            (STAGE_SENT, 0)
        }
    };
    let mut buf = [0u8; FOREIGN_OUT];
    let len = encode_foreign(&mut buf, stage.0, stage.1, &replies[..n], &lens[..n]);
    // SAFETY: writes our own buffer to the pipe's write end, then leaves without running
    // anything of the parent's (no atexit handlers, no destructors).
    unsafe {
        libc::write(out, buf.as_ptr().cast(), len);
        libc::_exit(0)
    }
}

/// Sends `req` to `sock` from a child process running as `uid`, waits up to `wait_ms`
/// for replies.
fn send_as(uid: u32, sock: &Path, req: &[u8], wait_ms: i32) -> Result<Foreign> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let target = sockaddr_un(sock.as_os_str().as_encoded_bytes())?;
    let own_name = format!(
        "\0uml-harness-foreign-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let own = sockaddr_un(own_name.as_bytes())?;
    let (mut r, w) = crate::sys::pipe()?;
    // SAFETY: the child runs only `foreign_child`, which makes system calls on memory
    // prepared before the fork and ends in _exit; the parent goes on as before.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Child => {
            foreign_child(uid, &target, &own, req, wait_ms, w.as_raw_fd())
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let mut report = Vec::new();
            let read = r.read_to_end(&mut report);
            let waited = nix::sys::wait::waitpid(child, None);
            read.context("reading the child's report")?;
            waited.context("waiting for the child")?;
            decode_foreign(&report)
        }
    }
}

fn mode(p: &Path) -> Result<u32> {
    Ok(fs::metadata(p)
        .with_context(|| format!("stat {}", p.display()))?
        .permissions()
        .mode()
        & 0o7777)
}

fn chmod(p: &Path, m: u32) -> Result<()> {
    fs::set_permissions(p, fs::Permissions::from_mode(m))
        .with_context(|| format!("chmod {m:o} {}", p.display()))
}

/// A sentence for what a request from the other uid met, and whether it was refused.
fn judge_foreign(f: &Foreign, executed: bool) -> (String, bool) {
    match f {
        Foreign::Setup(stage, e) => (
            format!(
                "the child could not get ready (stage {stage}): {}",
                nix::errno::Errno::from_raw(*e)
            ),
            false,
        ),
        Foreign::SendFailed(e) => (
            format!(
                "sendto failed with {}: refused by the socket layer{}",
                nix::errno::Errno::from_raw(*e),
                if *e == nix::libc::EACCES {
                    " (file permissions)"
                } else {
                    ""
                }
            ),
            !executed,
        ),
        Foreign::Sent(replies) => {
            let answers: Vec<Answer> = replies.iter().map(|d| classify(d)).collect();
            let msgs = messages(&answers);
            let refused = msgs.len() <= 1 && msgs.iter().all(|m| m[0].is_err());
            let replies = if answers.is_empty() {
                "no reply".to_string()
            } else {
                answers
                    .iter()
                    .map(Answer::describe)
                    .collect::<Vec<_>>()
                    .join(" then ")
            };
            let by = if executed {
                ", and executed: its `log` text reached the kernel log"
            } else if refused {
                ": refused by the mconsole itself"
            } else {
                ""
            };
            (format!("sent; {replies}{by}"), refused && !executed)
        }
    }
}

fn foreign_case(guest: &mut Guest, sock: &Path, dir: &Path, nonce: u64) -> Result<String> {
    if !block::is_root() {
        return Ok("skipped: needs root to send as another uid".into());
    }
    let umid = guest.umid_dir();
    let top = umid
        .parent()
        .context("the umid directory has no parent")?
        .to_path_buf();
    let (m_top, m_umid, m_sock) = (mode(&top)?, mode(&umid)?, mode(sock)?);
    let owner = {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(sock)?.uid()
    };
    let marker = |k: u32| format!("mc-foreign{k}-{nonce:016x}");
    let mut facts = vec![format!(
        "socket {:o} uid {owner}, umid directory {:o}, the harness's uml_dir {:o}",
        m_sock, m_umid, m_top
    )];
    // Step 1: the kernel's permissions; only the harness's private directory opened.
    if m_top & 0o001 == 0 {
        chmod(&top, m_top | 0o011)?;
        facts.push(format!(
            "uml_dir made traversable ({m_top:o} -> {:o})",
            m_top | 0o011
        ));
    }
    let first = send_as(
        NOBODY,
        sock,
        &request(&format!("log {}\n", marker(1))),
        1500,
    )?;
    // Step 2: the path open to everybody, so that only the mconsole can refuse.
    if m_umid & 0o001 == 0 {
        chmod(&umid, m_umid | 0o011)?;
    }
    chmod(sock, 0o777)?;
    let second = send_as(
        NOBODY,
        sock,
        &request(&format!("log {}\n", marker(2))),
        1500,
    );
    let restored = chmod(sock, m_sock);
    let second = second?;
    restored?;
    // Requests are taken in order: once this one is in the log, so is any of the above.
    let sync = format!("mc-foreign-sync-{nonce:016x}");
    let c = Client::bind(dir, "foreign-sync")?;
    c.ask(sock, &format!("log {sync}\n"), Duration::from_secs(5))?;
    guest.wait_for_console(&sync, Duration::from_secs(5))?;
    let console = guest.console_so_far();
    let (s1, ok1) = judge_foreign(&first, console.contains(&marker(1)));
    let (s2, ok2) = judge_foreign(&second, console.contains(&marker(2)));
    let owner_ok = mc_text(guest, sock, &["version"]);
    let report = format!(
        "{}; uid {NOBODY}, as the kernel made the socket: {s1}; uid {NOBODY}, socket made \
         0777: {s2}",
        facts.join(", ")
    );
    if !ok1 || !ok2 {
        bail!(
            "a request from uid {NOBODY} was not refused{}\n{report}",
            if ok1 {
                " once the socket file let it through: the mconsole does not check the sender"
            } else {
                ""
            }
        );
    }
    owner_ok.context("the owner's `version` after the foreign requests")?;
    Ok(format!("{report}; the owner's version still OK"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_layer_defects_are_skipped_only_when_they_fail() {
        let name = "host_mconsole_foreign_uid";
        let skipped = c_layer_verdict(name, Err(anyhow::anyhow!("ran it"))).unwrap();
        assert!(
            skipped.starts_with("skipped: C layer defect: "),
            "{skipped}"
        );
        assert!(skipped.contains("ran it"));
        assert!(c_layer_verdict(name, Ok("refused".into())).is_err());
        assert!(c_layer_verdict("host_mconsole_query", Err(anyhow::anyhow!("x"))).is_err());
        for (n, _) in C_LAYER_DEFECTS {
            assert!(names().any(|c| c == *n), "{n} is not a case");
        }
    }

    fn v2(err: u32, more: u32, text: &str) -> Vec<u8> {
        let mut d = Vec::new();
        for x in [err, more, text.len() as u32 + 1] {
            d.extend_from_slice(&x.to_le_bytes());
        }
        d.extend_from_slice(text.as_bytes());
        d.push(0);
        d
    }

    #[test]
    fn requests_are_what_uml_mconsole_sends() {
        // Captured from `uml_mconsole SOCKET version` (uml-utilities).
        let r = request("version");
        assert_eq!(r.len(), 524);
        assert_eq!(&r[..12], &[0xbe, 0xba, 0xfe, 0xca, 2, 0, 0, 0, 7, 0, 0, 0]);
        assert_eq!(&r[12..20], b"version\0");
        assert!(r[20..].iter().all(|&b| b == 0));
        // Padding and cutting.
        let r = raw_request(1, 2, 99, b"ab", 16);
        assert_eq!(r, [1, 0, 0, 0, 2, 0, 0, 0, 99, 0, 0, 0, b'a', b'b', 0, 0]);
        assert_eq!(
            raw_request(MAGIC, VERSION, 3, b"abc", 4),
            MAGIC.to_le_bytes()
        );
        assert!(raw_request(MAGIC, VERSION, 0, b"", 0).is_empty());
    }

    #[test]
    fn replies_parse_and_refuse_bad_framing() {
        assert_eq!(
            parse_reply(&v2(0, 1, "Commands:")).unwrap(),
            Reply {
                err: 0,
                more: 1,
                text: b"Commands:".to_vec()
            }
        );
        assert_eq!(parse_reply(&v2(1, 0, "")).unwrap().text, b"");
        let e = |d: &[u8]| parse_reply(d).unwrap_err();
        assert!(e(&[0; 11]).contains("shorter than the reply header"));
        let mut d = v2(0, 0, "abc");
        d.push(0);
        assert!(e(&d).contains("len 4 but 5 data bytes"));
        assert!(e(&[0; 12]).contains("len 0"));
        let mut big = vec![0u8, 0, 0, 0, 0, 0, 0, 0];
        big.extend_from_slice(&513u32.to_le_bytes());
        big.extend_from_slice(&[b'x'; 512]);
        big.push(0);
        assert!(e(&big).contains("len 513"));
        let mut d = v2(0, 0, "abc");
        *d.last_mut().unwrap() = b'!';
        assert!(e(&d).contains("NUL"));
        assert!(e(&v2(0, 0, "a\0b")).contains("NUL"));
    }

    #[test]
    fn answers_and_messages() {
        // The C's answer to a request without the magic: bare text.
        let v0 = b"ERR Version 0 mconsole clients are not supported by this driver";
        let a = classify(v0);
        assert_eq!(a, Answer::Raw(v0.to_vec()));
        assert!(a.is_err());
        assert!(
            a.describe()
                .starts_with("unversioned text reply \"ERR Version 0")
        );
        assert!(!classify(b"OK").is_err());
        // The C's answer to a wrong version: an ERR, then the command's own OK.
        let bad_version = [
            classify(&v2(1, 0, "This driver only supports version 2 clients")),
            classify(&v2(0, 0, "")),
        ];
        assert_eq!(messages(&bad_version).len(), 2);
        assert_eq!(
            bad_version[0].describe(),
            "ERR \"This driver only supports version 2 clients\""
        );
        assert_eq!(bad_version[1].describe(), "OK \"\"");
        let multi = [
            classify(&v2(1, 1, "a")),
            classify(&v2(0, 1, "b")),
            classify(&v2(0, 0, "c")),
            classify(v0),
        ];
        let m = messages(&multi);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].len(), 3);
        assert!(m[0][0].is_err());
        // An unfinished message still counts.
        assert_eq!(messages(&multi[..2]).len(), 1);
        assert!(messages(&[]).is_empty());
    }

    #[test]
    fn multi_packet_replies_join() {
        let p = |err, more, t: &str| parse_reply(&v2(err, more, t)).unwrap();
        assert_eq!(
            join_reply(&[p(0, 1, "ab"), p(0, 1, ""), p(0, 0, "c")]).unwrap(),
            "abc"
        );
        assert_eq!(join_reply(&[p(1, 0, "no")]).unwrap(), "no");
        assert!(join_reply(&[]).unwrap_err().contains("no packet"));
        assert!(
            join_reply(&[p(0, 0, "a"), p(0, 0, "b")])
                .unwrap_err()
                .contains("packet 1 of 2 has more = 0")
        );
        assert!(
            join_reply(&[p(0, 1, "a"), p(0, 1, "b")])
                .unwrap_err()
                .contains("the last of 2 packets has more = 1")
        );
        assert!(
            join_reply(&[p(0, 1, "a"), p(1, 0, "b")])
                .unwrap_err()
                .contains("packet 2 has err set")
        );
    }

    #[test]
    fn notifications_parse() {
        // The C's MCONSOLE_SOCKET notification, as received.
        let path = b"/tmp/uml-harness-E15qCS/harness-26292-0/mconsole\0";
        let mut d = Vec::new();
        for x in [MAGIC, VERSION, NOTIFY_SOCKET, path.len() as u32] {
            d.extend_from_slice(&x.to_le_bytes());
        }
        d.extend_from_slice(path);
        assert_eq!(d.len(), 65);
        assert_eq!(
            parse_notification(&d).unwrap(),
            Notification {
                magic: MAGIC,
                version: VERSION,
                kind: NOTIFY_SOCKET,
                data: path.to_vec()
            }
        );
        assert!(
            parse_notification(&d[..15])
                .unwrap_err()
                .contains("shorter than the notification header")
        );
        assert!(
            parse_notification(&d[..64])
                .unwrap_err()
                .contains("len 49 but 48 data bytes")
        );
        let mut big = d[..12].to_vec();
        big.extend_from_slice(&513u32.to_le_bytes());
        big.extend_from_slice(&[7; 513]);
        assert!(parse_notification(&big).is_err());
        // No data at all is a valid (empty) user notification.
        let mut empty = Vec::new();
        for x in [MAGIC, VERSION, NOTIFY_USER, 0] {
            empty.extend_from_slice(&x.to_le_bytes());
        }
        assert_eq!(parse_notification(&empty).unwrap().data, b"");
    }

    #[test]
    fn the_foreign_childs_report_round_trips() {
        let mut out = [0u8; FOREIGN_OUT];
        let mut replies = [[0u8; FOREIGN_REPLY_MAX]; FOREIGN_REPLIES];
        replies[0][..3].copy_from_slice(b"abc");
        replies[1].fill(9);
        let n = encode_foreign(
            &mut out,
            STAGE_SENT,
            0,
            &replies[..2],
            &[3, FOREIGN_REPLY_MAX],
        );
        assert_eq!(n, 6 + 2 + 3 + 2 + FOREIGN_REPLY_MAX);
        assert_eq!(
            decode_foreign(&out[..n]).unwrap(),
            Foreign::Sent(vec![b"abc".to_vec(), vec![9; FOREIGN_REPLY_MAX]])
        );
        // A full report fits one atomic pipe write.
        let n = encode_foreign(&mut out, STAGE_SENT, 0, &replies, &[FOREIGN_REPLY_MAX; 4]);
        assert_eq!(n, FOREIGN_OUT);
        const { assert!(FOREIGN_OUT <= 4096) };
        let all: Vec<Vec<u8>> = replies.iter().map(|r| r.to_vec()).collect();
        assert_eq!(decode_foreign(&out[..n]).unwrap(), Foreign::Sent(all));
        let n = encode_foreign(&mut out, STAGE_SEND, nix::libc::EACCES, &[], &[]);
        assert_eq!(
            decode_foreign(&out[..n]).unwrap(),
            Foreign::SendFailed(nix::libc::EACCES)
        );
        let n = encode_foreign(&mut out, STAGE_SETUID, nix::libc::EPERM, &[], &[]);
        assert_eq!(
            decode_foreign(&out[..n]).unwrap(),
            Foreign::Setup(STAGE_SETUID, nix::libc::EPERM)
        );
        let n = encode_foreign(&mut out, STAGE_SENT, 0, &replies[..1], &[3]);
        assert!(decode_foreign(&out[..n - 1]).is_err());
        assert!(decode_foreign(&out[..5]).is_err());
        out[0] = 99;
        assert!(decode_foreign(&out[..6]).is_err());
    }

    #[test]
    fn socket_addresses() {
        let off = std::mem::offset_of!(nix::libc::sockaddr_un, sun_path);
        let (a, len) = sockaddr_un(b"/tmp/x/mconsole").unwrap();
        assert_eq!(a.sun_family, nix::libc::AF_UNIX as nix::libc::sa_family_t);
        assert_eq!(len as usize, off + 15 + 1);
        assert_eq!(a.sun_path[14] as u8, b'e');
        assert_eq!(a.sun_path[15], 0);
        let (a, len) = sockaddr_un(b"\0abstract").unwrap();
        assert_eq!(len as usize, off + 9);
        assert_eq!(a.sun_path[0], 0);
        assert_eq!(a.sun_path[1] as u8, b'a');
        assert!(sockaddr_un(&[b'x'; 108]).is_err());
        assert!(sockaddr_un(&[b'x'; 107]).is_ok());
        assert!(sockaddr_un(b"").is_err());
    }

    #[test]
    fn malformed_variants_are_what_they_say() {
        let vs = variants(0x1234);
        assert_eq!(vs.len(), 10);
        let field = |v: &Variant, i: usize| {
            u32::from_le_bytes(v.packet[4 * i..4 * i + 4].try_into().unwrap())
        };
        assert_eq!(field(&vs[0], 0), 0xdead_beef);
        assert_eq!((field(&vs[1], 0), field(&vs[1], 1)), (MAGIC, 1));
        assert_eq!(field(&vs[2], 2), 513);
        assert_eq!(field(&vs[3], 2), u32::MAX);
        for v in &vs[..4] {
            assert_eq!(v.packet.len(), 524, "{}", v.name);
        }
        let sizes: Vec<usize> = vs[4..8].iter().map(|v| v.packet.len()).collect();
        assert_eq!(sizes, [0, 4, 8, 11]);
        assert!(
            vs[4..8]
                .iter()
                .all(|v| v.prime.as_deref() == Some("version"))
        );
        let beyond = &vs[8];
        assert!(field(beyond, 2) as usize > beyond.packet.len() - HEADER);
        let nonul = &vs[9];
        assert_eq!(field(nonul, 2) as usize, nonul.packet.len() - HEADER);
        assert!(!nonul.packet.contains(&0u8) || nonul.packet[HEADER..].iter().all(|&b| b != 0));
        assert_eq!(nonul.expect, Expect::RefusedOrExact);
        // Markers are distinct and not one a prefix of another.
        let marks: Vec<&String> = vs.iter().filter_map(|v| v.marker.as_ref()).collect();
        for a in &marks {
            assert_eq!(
                marks.iter().filter(|b| b.contains(a.as_str())).count(),
                1,
                "{a}"
            );
        }
    }

    #[test]
    fn malformed_packets_are_judged() {
        let vs = variants(7);
        let mk = |i: usize| vs[i].marker.clone().unwrap();
        let err = classify(&v2(1, 0, "Request too large"));
        let ok = classify(&v2(0, 0, ""));
        // Refused, or no answer at all, and not in the log: fine.
        assert!(judge(&vs[2], std::slice::from_ref(&err), "").1);
        assert!(judge(&vs[2], &[], "").1);
        let (s, good) = judge(&vs[0], &[classify(b"ERR Version 0 mconsole clients")], "");
        assert!(good, "{s}");
        // The C with a wrong version: ERR, then executed.
        let console = format!("{}\n", mk(1));
        let (s, good) = judge(&vs[1], &[err.clone(), ok.clone()], &console);
        assert!(!good);
        assert!(s.contains("then OK") && s.contains("executed"), "{s}");
        // ERR alone but executed anyway.
        assert!(!judge(&vs[1], std::slice::from_ref(&err), &console).1);
        // The C with a truncated datagram: the previous `version` again.
        let (s, good) = judge(&vs[5], &[classify(&v2(0, 0, "Linux uml"))], "");
        assert!(!good);
        assert!(
            s.contains("the previous request (`version`) executed again"),
            "{s}"
        );
        // Data without a NUL: refused, or exactly its bytes.
        assert!(judge(&vs[9], std::slice::from_ref(&err), "").1);
        let exact = format!("a\n{}\nb\n", mk(9));
        let (s, good) = judge(&vs[9], std::slice::from_ref(&ok), &exact);
        assert!(good, "{s}");
        assert!(s.contains("exactly its len bytes"), "{s}");
        let stale = format!("{}YYYY\n", mk(9));
        assert!(!judge(&vs[9], std::slice::from_ref(&ok), &stale).1);
        assert!(!judge(&vs[9], &[], &exact).1);
        // For the others, executing exactly is not enough.
        let exact8 = format!("{}\n", mk(8));
        assert!(!judge(&vs[8], &[ok], &exact8).1);
    }

    #[test]
    fn foreign_requests_are_judged() {
        let (s, good) = judge_foreign(&Foreign::SendFailed(nix::libc::EACCES), false);
        assert!(good);
        assert!(s.contains("(file permissions)"), "{s}");
        let (s, good) = judge_foreign(&Foreign::Sent(vec![v2(0, 0, "")]), true);
        assert!(!good);
        assert!(s.contains("executed"), "{s}");
        let (s, good) = judge_foreign(&Foreign::Sent(vec![v2(1, 0, "Permission denied")]), false);
        assert!(good);
        assert!(s.contains("refused by the mconsole itself"), "{s}");
        assert!(judge_foreign(&Foreign::Sent(Vec::new()), false).1);
        assert!(!judge_foreign(&Foreign::Sent(Vec::new()), true).1);
        assert!(!judge_foreign(&Foreign::Sent(vec![v2(0, 0, "Linux")]), false).1);
        assert!(!judge_foreign(&Foreign::Setup(STAGE_SETUID, 1), false).1);
    }

    fn body_ok(_: &Ctx, _: &Path, res: &mut Results) -> Result<()> {
        res.push(("b", Ok("fine".into())));
        res.push(("a", Err(anyhow!("own failure"))));
        res.push(("c", Ok("skipped: no root".into())));
        Ok(())
    }

    fn body_fails_late(_: &Ctx, _: &Path, res: &mut Results) -> Result<()> {
        res.push(("a", Ok("fine".into())));
        res.push(("b", Err(anyhow!("own failure"))));
        bail!("kernel WARNING")
    }

    #[test]
    fn groups_report_every_case() {
        let ctx = Ctx::resolve(Some("/nonexistent".into()), None).unwrap();
        let g = Group {
            cases: &["a", "b", "c", "d"],
            body: body_ok,
        };
        let r = run_group(&g, &ctx, Path::new("/k"));
        let names: Vec<&str> = r.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(format!("{:#}", r[0].1.as_ref().unwrap_err()), "own failure");
        let b = r[1].1.as_ref().unwrap();
        assert!(
            b.starts_with("fine; ") && b.contains("(one boot for a, b, c, d)"),
            "{b}"
        );
        assert_eq!(r[2].1.as_ref().unwrap(), "skipped: no root");
        assert!(format!("{}", r[3].1.as_ref().unwrap_err()).contains("no result"));
        let g = Group {
            cases: &["a", "b", "c"],
            body: body_fails_late,
        };
        let r = run_group(&g, &ctx, Path::new("/k"));
        assert!(
            format!("{}", r[0].1.as_ref().unwrap_err())
                .contains("failed afterwards: kernel WARNING")
        );
        assert_eq!(format!("{}", r[1].1.as_ref().unwrap_err()), "own failure");
        assert_eq!(
            format!("{}", r[2].1.as_ref().unwrap_err()),
            "kernel WARNING"
        );
    }

    #[test]
    fn case_names() {
        let names: Vec<&str> = names().collect();
        assert_eq!(names.len(), 15);
        for (i, n) in names.iter().enumerate() {
            assert!(n.starts_with("host_mconsole_"), "{n}");
            assert!(!names[..i].contains(n), "{n} twice");
            // The main suite boot's own mconsole check.
            assert_ne!(*n, "host_mconsole_version");
        }
    }

    fn scripts() -> Vec<String> {
        vec![
            commands_script("mconsole-log-0123456789abcdef"),
            stop_go_script(&[u64::MAX; 3]),
            restart_script(),
            notify_script(&format!("user-note-{:016x}", u64::MAX), u64::MAX),
            protocol_script(),
        ]
    }

    /// Every payload fits UML's command line (it travels hex-encoded), with the padding
    /// the protocol boot adds.
    #[test]
    fn payloads_fit_the_command_line() {
        for script in scripts() {
            let cmd = vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("{}{script}", block::PRELUDE),
            ];
            let enc = crate::protocol::encode_cmd(&cmd).unwrap();
            assert!(
                enc.len() + CMDLINE_PAD < 3000,
                "{} bytes: {script}",
                enc.len()
            );
        }
    }

    #[test]
    fn payloads_are_valid_shell() {
        for script in scripts() {
            let out = std::process::Command::new("/bin/sh")
                .args(["-n", "-c", &format!("{}{script}", block::PRELUDE)])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{script}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
