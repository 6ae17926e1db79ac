// SPDX-License-Identifier: GPL-2.0
//! `host_chan_*`: the UML console and serial line channels (`arch/um/drivers/chan_kern.c`,
//! `line.c`, `pty.c`, `tty.c`, `null.c`, `fd.c`, `chan_user.c`) as the UML HOWTO
//! (`Documentation/virt/uml/user_mode_linux_howto_v2.rst`, "Setting up serial lines and
//! consoles") describes them, end to end on one real boot per kernel. The checks look
//! only at what the host and the guest see, so they judge a C or a Rust layer alike.
//!
//! The boot: `con0=fd:0,fd:1`, `con=null`, `ssl=null` (the harness's own), and
//! `con1=pts`, `con2=tty:/dev/pts/N` (the slave of a pty pair the harness made),
//! `con3=none`, `con5=fd:R,fd:W` (two pipes whose kernel ends the kernel process
//! inherits), `con6=fd:N` (a host pty slave it inherits); line 4 and the serial lines get the global `null`.
//!
//! * `host_chan_pts`: the kernel process holds exactly one `/dev/ptmx` descriptor; its
//!   `tty-index:` in `/proc/PID/fdinfo` names `/dev/pts/N`; what the guest writes to
//!   `/dev/tty1` (fresh random text) arrives there, and a line the host writes there
//!   (fresh random text, made after the boot started) is what the guest reads.
//!   Once the guest has opened the line, `mconsole config con1` must answer
//!   `OK pts:/dev/pts/N` for that pty (before the open it answers `OK pts`, recorded).
//! * `host_chan_tty`: the same both ways through `/dev/tty2` and the host's pty master.
//! * `host_chan_fd_null`: both ways through `/dev/tty5` and the two pipes (the `in,out`
//!   pair form with two different descriptors); `/dev/tty4` (global `con=null` beside
//!   the specific `con1=`/`con2=`/`con5=`) and `/dev/ttyS1` (global `ssl=null`) take
//!   writes and give no data to a read (it blocks, as `null.c` does: its descriptor is
//!   `/dev/null`, which the IRQ code cannot poll, and `null_read` would refuse anyway);
//!   `con3=none` leaves no `/dev/tty3`, and a node made for 4:3 fails to open with
//!   ENXIO.
//! * `host_chan_winch`: `con6=fd:N`, N the slave of a host pty the kernel process
//!   inherits: its size when the guest first opens `/dev/tty6` is what the guest's `stty
//!   -F /dev/tty6 size` says, and a TIOCSWINSZ on the host pty reaches the guest (the
//!   SIGWINCH helper `register_winch` starts for the tty, `winch_interrupt`,
//!   `tty_do_resize`). Lines 1 (`pts`) and 2 (`tty:`) are resized too and what the
//!   guest sees there is only reported: only the `fd` channel has `.winch = 1`, so a
//!   `pts` or `tty:` line takes the host size at its first open and never follows a
//!   resize (a fresh `pts` is 0 x 0, which busybox `stty size` reports as an error with
//!   a stale errno: the "No child processes" seen before).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::block::{self, KWARN, MARK, STEP_LIMIT};
use crate::boot::Guest;
use crate::paths::Ctx;
use crate::suite::{self, proto};

pub const PTS: &str = "host_chan_pts";
pub const TTY: &str = "host_chan_tty";
pub const FD_NULL: &str = "host_chan_fd_null";
pub const WINCH: &str = "host_chan_winch";

/// The case names, in report order.
pub const CASES: [&str; 4] = [PTS, TTY, FD_NULL, WINCH];

type Results = Vec<(&'static str, Result<String>)>;

/// How long the host waits for text from the guest on a channel.
const IO_LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Parsing helpers.

/// The `tty-index:` of a `/proc/PID/fdinfo/FD` text (a `/dev/ptmx` descriptor's pty
/// number, since Linux 5.12).
pub(crate) fn tty_index(fdinfo: &str) -> Option<u32> {
    fdinfo.lines().find_map(|l| {
        l.strip_prefix("tty-index:")
            .and_then(|v| v.trim().parse().ok())
    })
}

/// The random word of this run (lowercase hex).
fn word(base: u64, k: u64) -> String {
    format!("{:016x}", block::seed(base, k))
}

/// `stty size` output `ROWS COLS`.
pub(crate) fn parse_size(s: &str) -> Option<(u16, u16)> {
    let mut w = s.split_whitespace();
    let r = w.next()?.parse().ok()?;
    let c = w.next()?.parse().ok()?;
    w.next().is_none().then_some((r, c))
}

/// Text to show in a diagnostic: control characters escaped, clipped.
pub(crate) fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b).escape_debug().to_string();
    if s.chars().count() > 200 {
        format!("{}...", s.chars().take(200).collect::<String>())
    } else {
        s
    }
}

// ---------------------------------------------------------------------------
// Host side of the channels.

/// The `/dev/ptmx` descriptors of process `pid`: (fd, tty-index).
fn ptmx_fds(pid: i32) -> Result<Vec<(String, Option<u32>)>> {
    let dir = format!("/proc/{pid}/fd");
    let mut out = Vec::new();
    for e in fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let e = e?;
        let Ok(target) = fs::read_link(e.path()) else {
            continue;
        };
        if target == Path::new("/dev/ptmx") || target.starts_with("/dev/pts/ptmx") {
            let fd = e.file_name().to_string_lossy().into_owned();
            let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
                .with_context(|| format!("reading /proc/{pid}/fdinfo/{fd}"))?;
            out.push((fd, tty_index(&info)));
        }
    }
    out.sort();
    Ok(out)
}

/// Opens a tty device for the host's side: read-write, not as controlling terminal.
fn open_tty(path: &str) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("opening {path}"))
}

/// A new host pty pair: (master, slave path). The harness keeps both.
pub(crate) fn host_pty() -> Result<(File, String, File)> {
    let master = open_tty("/dev/ptmx")?;
    let fd = master.as_raw_fd();
    let mut n: libc::c_uint = 0;
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int, TIOCGPTN writes an unsigned int; both point to
    // live locals, and fd is an open ptmx descriptor.
    let r = unsafe {
        if libc::ioctl(fd, libc::TIOCSPTLCK, &mut unlock) != 0 {
            -1
        } else {
            libc::ioctl(fd, libc::TIOCGPTN, &mut n)
        }
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("unlocking a new pty");
    }
    let path = format!("/dev/pts/{n}");
    let slave = open_tty(&path)?;
    Ok((master, path, slave))
}

/// A pipe whose read and write ends are both inherited by children (no close-on-exec);
/// returns (read, write).
fn inherited_pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe() writes two descriptors into the array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn cloexec(fd: &OwnedFd) -> Result<()> {
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).context("F_SETFD")?;
    Ok(())
}

/// Reads from `f` until what arrived holds `needle` (returns everything read) or
/// `limit` passes (fails, quoting what arrived).
pub(crate) fn read_until<R: Read + AsFd>(
    f: &mut R,
    needle: &str,
    limit: Duration,
    what: &str,
) -> Result<Vec<u8>> {
    let t = Instant::now();
    let mut got = Vec::new();
    loop {
        if got.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            return Ok(got);
        }
        let left = limit.saturating_sub(t.elapsed());
        if left.is_zero() {
            bail!(
                "{what}: {needle:?} did not arrive within {:.0}s; got {} bytes: \"{}\"",
                limit.as_secs_f64(),
                got.len(),
                show(&got)
            );
        }
        let ms = left.as_millis().min(200) as u16;
        let mut p = [PollFd::new(f.as_fd(), PollFlags::POLLIN)];
        if poll(&mut p, PollTimeout::from(ms)).context("poll")? == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match f.read(&mut buf) {
            Ok(0) => bail!(
                "{what}: end of file before {needle:?}; got \"{}\"",
                show(&got)
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                // A pty whose other side is not open yet: wait.
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).with_context(|| format!("{what}: reading")),
        }
    }
}

pub(crate) fn set_winsize(f: &impl AsRawFd, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a struct winsize from a live local.
    if unsafe { libc::ioctl(f.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(std::io::Error::last_os_error()).context("TIOCSWINSZ");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The boot.

/// The guest: opens the lines, reports `up`, waits for `go`; writes its words to lines
/// 1, 2 and 5, reads a line back from each; the null and none checks; then waits for
/// `winch` and polls `stty size` of line 1 for up to 5 s.
fn script(g2h: &str) -> String {
    format!(
        "exec 3<>/dev/tty1 4<>/dev/tty2 5<>/dev/tty5 7<>/dev/tty6; \
         stty -F /dev/tty1 -echo; stty -F /dev/tty2 -echo; stty -F /dev/tty5 -echo; \
         m up; {g} wait-file /host/go 30; \
         echo pts-{g2h} >&3; echo tty-{g2h} >&4; echo fd-{g2h} >&5; \
         read -r a <&3; m pts \"$a\"; read -r b <&4; m tty \"$b\"; read -r c <&5; m fd \"$c\"; \
         for d in tty4 ttyS1; do \
           w=0; echo null-{g2h} >/dev/$d || w=$?; \
           r=0; timeout 1 cat /dev/$d >/tmp/$d || r=$?; \
           m null $d $w $r $(wc -c </tmp/$d); done; \
         if [ -e /dev/tty3 ]; then m none3 present; else m none3 absent; fi; \
         mknod /dev/n3 c 4 3; e=ok; (exec 6<>/dev/n3) 2>/tmp/e || e=\"$(cat /tmp/e)\"; \
         m none3open $e; \
         a0=$(stty -F /dev/tty6 size 2>&1 || true); m size0 $a0; \
         m pts0 $(stty -F /dev/tty1 size 2>&1 || true) / $(stty -F /dev/tty2 size 2>&1 || true); \
         {g} wait-file /host/winch 30; i=0; s=''; \
         while [ $i -lt 50 ]; do s=$(stty -F /dev/tty6 size 2>&1 || true); \
           [ \"$s\" != \"$a0\" ] && break; i=$((i+1)); sleep 0.1; done; \
         m size $i $s; m pts1 $(stty -F /dev/tty1 size 2>&1 || true) / $(stty -F /dev/tty2 size 2>&1 || true); \
         {KWARN}m step done",
        g = proto::GUEST
    )
}

/// What the host holds during the boot.
struct Host {
    tty_master: File,
    tty_slave_path: String,
    _tty_slave: File,
    /// The host's ends: it writes `to_guest`, reads `from_guest`.
    to_guest: File,
    from_guest: File,
    /// The kernel's ends, inherited by the kernel process: (read, write).
    kernel_ends: Option<(OwnedFd, OwnedFd)>,
    /// A pty pair whose slave the kernel process inherits, for `con6=fd:N`.
    winch_master: File,
    winch_slave: OwnedFd,
}

fn prepare() -> Result<Host> {
    let (tty_master, tty_slave_path, tty_slave) = host_pty()?;
    let (k_in, h_out) = inherited_pipe()?;
    let (h_in, k_out) = inherited_pipe()?;
    cloexec(&h_out)?;
    cloexec(&h_in)?;
    let (winch_master, _, slave) = host_pty()?;
    let winch_slave = OwnedFd::from(slave);
    fcntl(winch_slave.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty())).context("F_SETFD")?;
    Ok(Host {
        tty_master,
        tty_slave_path,
        _tty_slave: tty_slave,
        to_guest: File::from(h_out),
        from_guest: File::from(h_in),
        kernel_ends: Some((k_in, k_out)),
        winch_master,
        winch_slave,
    })
}

/// The guest's console line `@@BLK KEY ...`, or a failure quoting the console.
fn mark(console: &str, key: &str) -> Result<String> {
    block::mark_line(console, key).with_context(|| {
        format!(
            "no `{MARK} {key} ...` line on the console\n{}",
            block::quote(console)
        )
    })
}

/// One direction each way on a channel: the guest's word arrives in `rx`, the host's
/// fresh line written to `tx` is what the guest reports under `key`.
fn both_ways(
    guest: &mut Guest,
    rx: &mut File,
    tx: &mut File,
    key: &str,
    g2h: &str,
    h2g: &str,
) -> Result<String> {
    let want = format!("{key}-{g2h}");
    let got = read_until(rx, &want, IO_LIMIT, &format!("the guest's text on {key}"))?;
    tx.write_all(format!("{h2g}\n").as_bytes())
        .with_context(|| format!("writing to the {key} channel"))?;
    guest.wait_for_console(&format!("{MARK} {key} "), STEP_LIMIT)?;
    let line = mark(&guest.console_so_far(), key)?;
    if line != h2g {
        bail!("the guest read {line:?} from its {key} line, the host wrote {h2g:?}");
    }
    Ok(format!(
        "guest->host \"{}\", host->guest {h2g:?}",
        show(&got).trim()
    ))
}

fn finish(res: &mut Results, name: &'static str, r: Result<String>) {
    res.push((name, r));
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
    suite::shared_boot_verdicts(&CASES, want, res, boot, secs, "one boot for all host_chan_")
}

fn boot(ctx: &Ctx, kernel: &Path, res: &mut Results) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("uml-chan-")
        .tempdir()
        .context("creating a temporary directory")?;
    let hostfs = dir.path().join("hostfs");
    fs::create_dir(&hostfs)?;
    let mut host = prepare()?;
    let base = block::fresh_seed();
    // (rows, cols) at the guest's first open, then after the resize.
    let size = (
        10 + (base % 40) as u16,
        40 + (base >> 8) as u16 % 40,
        60 + (base >> 16) as u16 % 40,
        100 + (base >> 24) as u16 % 60,
    );
    set_winsize(&host.winch_master, size.0, size.1)?;
    set_winsize(&host.tty_master, size.1, size.0)?;
    let g2h = word(base, 1);
    let (kr, kw) = match &host.kernel_ends {
        Some((r, w)) => (r.as_raw_fd(), w.as_raw_fd()),
        None => bail!("the kernel's pipe ends are gone"),
    };
    let args = vec![
        "con1=pts".to_string(),
        format!("con2=tty:{}", host.tty_slave_path),
        "con3=none".into(),
        format!("con5=fd:{kr},fd:{kw}"),
        format!("con6=fd:{}", host.winch_slave.as_raw_fd()),
    ];
    let s = block::spec(kernel, &script(&g2h), &args, Some(&hostfs));
    let mut guest = Guest::start(&s, ctx)?;
    // The kernel process has its copies now.
    drop(host.kernel_ends.take());
    let sock = guest.umid_dir().join("mconsole");
    guest.wait_for_console(&format!("{MARK} up"), STEP_LIMIT)?;

    // Line 1's pty.
    let ptmx = ptmx_fds(guest.pid())?;
    let (pts_dev, pts_path, mut pts) = match ptmx.as_slice() {
        [(fd, Some(n))] => {
            let p = format!("/dev/pts/{n}");
            let f = open_tty(&p)?;
            (p.clone(), format!("{p} (kernel fd {fd})"), f)
        }
        other => bail!(
            "the kernel process {} should hold one /dev/ptmx descriptor with a tty-index \
             (con1=pts), it holds {other:?}",
            guest.pid()
        ),
    };
    let config_before = block::mc_guest(&guest, &sock, &["config", "con1"]);
    block::release(&hostfs, "go")?;

    let h2g = |k| format!("h2g-{}", word(block::fresh_seed(), k));
    let pts_r = {
        let mut tx = pts.try_clone()?;
        both_ways(&mut guest, &mut pts, &mut tx, "pts", &g2h, &h2g(2))
    };
    // Once the guest has opened the line, mconsole names the host device.
    let config_open = block::mc_guest(&guest, &sock, &["config", "con1"]);
    finish(
        res,
        PTS,
        pts_r.and_then(|f| {
            let want = format!("OK pts:{pts_dev}");
            let before = match &config_before {
                Ok(c) => format!("{c:?}"),
                Err(e) => format!("failed: {e:#}"),
            };
            match config_open {
                Ok(c) if c == want => Ok(format!(
                    "{pts_path}: {f}; mconsole config con1: {before} before the guest's open, \
                     {c:?} after"
                )),
                Ok(c) => bail!(
                    "{f}; mconsole config con1 after the guest opened /dev/tty1 answered {c:?}, \
                     expected {want:?} (the kernel's pty)"
                ),
                Err(e) => Err(e.context("mconsole config con1 after the guest's open")),
            }
        }),
    );
    let tty_r = {
        let mut rx = host.tty_master.try_clone()?;
        both_ways(
            &mut guest,
            &mut rx,
            &mut host.tty_master,
            "tty",
            &g2h,
            &h2g(3),
        )
    };
    finish(
        res,
        TTY,
        tty_r.map(|f| format!("con2=tty:{}: {f}", host.tty_slave_path)),
    );
    let fd_r = both_ways(
        &mut guest,
        &mut host.from_guest,
        &mut host.to_guest,
        "fd",
        &g2h,
        &h2g(4),
    );

    // The winch: sizes the guest cannot have by chance.
    guest.wait_for_console(&format!("{MARK} pts0 "), STEP_LIMIT)?;
    set_winsize(&host.winch_master, size.2, size.3)?;
    set_winsize(&host.tty_master, size.3, size.2)?;
    set_winsize(&pts, size.3, size.2)?;
    block::release(&hostfs, "winch")?;
    let out = guest.wait()?;
    block::exited_ok(&out)?;
    block::no_kernel_warnings(&out.console, "the channels boot")?;
    let c = &out.console;
    finish(
        res,
        FD_NULL,
        fd_r.and_then(|f| fd_null_verdict(c, &f, kr, kw)),
    );
    finish(res, WINCH, winch_verdict(c, size));
    Ok(())
}

/// The null and none lines; `fd` is the pipes' both-ways diagnostic.
fn fd_null_verdict(console: &str, fd: &str, kr: i32, kw: i32) -> Result<String> {
    let mut facts = vec![format!("con5=fd:{kr},fd:{kw} (two pipes): {fd}")];
    for d in ["tty4", "ttyS1"] {
        let line = console
            .lines()
            .filter_map(|l| l.split_once(&format!("{MARK} null {d} ")).map(|x| x.1))
            .next()
            .with_context(|| format!("no `{MARK} null {d}` line\n{}", block::quote(console)))?;
        let w: Vec<&str> = line.split_whitespace().collect();
        // The write succeeds; `timeout 1 cat` is killed (143) having read nothing.
        if w != ["0", "143", "0"] {
            bail!(
                "/dev/{d} (global {}=null): write status, `timeout 1 cat` status and bytes read \
                 are {w:?}, expected [\"0\", \"143\", \"0\"] (the write vanishes, the read \
                 blocks with no data, as null.c does)",
                if d.starts_with("ttyS") { "ssl" } else { "con" }
            );
        }
    }
    facts.push(
        "tty4 (con=null beside con1/2/5=) and ttyS1 (ssl=null): writes vanish, reads block".into(),
    );
    let none = mark(console, "none3")?;
    if none != "absent" {
        bail!("con3=none: /dev/tty3 is {none}, expected absent (no device registered)");
    }
    let open = mark(console, "none3open")?;
    if !open.contains("No such device or address") {
        bail!(
            "con3=none: opening a node for 4:3 gave {open:?}, expected ENXIO (No such device or address)"
        );
    }
    facts.push("con3=none: no /dev/tty3, 4:3 opens with ENXIO".into());
    Ok(facts.join("; "))
}

/// Line 6 (`fd:N`, N the slave of a host pty) had `size.0` rows, `size.1` columns at its
/// first open and must then follow the host's resize to `size.2` x `size.3`; lines 1
/// (`pts`) and 2 (`tty:`), resized to `size.3` x `size.2`, are only reported.
fn winch_verdict(console: &str, size: (u16, u16, u16, u16)) -> Result<String> {
    let before = mark(console, "size0")?;
    let line = mark(console, "size")?;
    let (tries, after) = line.split_once(' ').unwrap_or((line.as_str(), ""));
    let others = format!(
        "lines 1 (pts) / 2 (tty:), host set {} {}: \"{}\" before, \"{}\" after",
        size.3,
        size.2,
        mark(console, "pts0")?,
        mark(console, "pts1")?
    );
    if parse_size(&before) != Some((size.0, size.1)) {
        bail!(
            "con6=fd:N on a host pty of {} rows, {} columns: the guest's first `stty -F \
             /dev/tty6 size` says {before:?} ({others})",
            size.0,
            size.1
        );
    }
    if parse_size(after) != Some((size.2, size.3)) {
        bail!(
            "con6=fd:N: the host resized its pty (TIOCSWINSZ) from {before} to {} {}; the \
             guest's `stty -F /dev/tty6 size` says {after:?} after 5s ({others})",
            size.2,
            size.3
        );
    }
    Ok(format!(
        "con6=fd:N on a host pty: {before} at open, {after} after the host's TIOCSWINSZ, seen \
         within {tries} polls of 0.1s; {others}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_tty_index() {
        let info = "pos:\t0\nflags:\t0100002\nmnt_id:\t29\nino:\t5\ntty-index:\t7\n";
        assert_eq!(tty_index(info), Some(7));
        assert_eq!(tty_index("pos:\t0\nflags:\t02\n"), None);
        assert_eq!(tty_index("tty-index:\tx\n"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("24 80"), Some((24, 80)));
        assert_eq!(parse_size(" 37 101\n"), Some((37, 101)));
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("stty: /dev/tty1"), None);
        assert_eq!(parse_size("1 2 3"), None);
    }

    #[test]
    fn verdicts() {
        let ok = "@@BLK null tty4 0 143 0\n@@BLK null ttyS1 0 143 0\n@@BLK none3 absent\n\
                  @@BLK none3open /bin/sh: can't open '/dev/n3': No such device or address\n";
        assert!(fd_null_verdict(ok, "x", 5, 6).is_ok());
        let eof = ok.replace("tty4 0 143 0", "tty4 0 0 0");
        assert!(fd_null_verdict(&eof, "x", 5, 6).is_err());
        let present = ok.replace("none3 absent", "none3 present");
        assert!(fd_null_verdict(&present, "x", 5, 6).is_err());
        let w = "@@BLK size0 20 50\n@@BLK pts0 stty: /dev/tty1 / 50 20\n@@BLK size 3 33 99\n\
                 @@BLK pts1 stty: /dev/tty1 / 50 20\n";
        assert!(winch_verdict(w, (20, 50, 33, 99)).is_ok());
        assert!(winch_verdict(w, (20, 50, 33, 98)).is_err());
        assert!(winch_verdict(w, (21, 50, 33, 99)).is_err());
    }

    #[test]
    fn script_is_valid_shell() {
        let s = format!("{}{}", block::PRELUDE, script("0123456789abcdef"));
        let st = std::process::Command::new("sh")
            .args(["-n", "-c", &s])
            .status()
            .unwrap();
        assert!(st.success());
    }
}
