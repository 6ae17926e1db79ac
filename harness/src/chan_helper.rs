// SPDX-License-Identifier: GPL-2.0
//! `host_chan_port` and `host_chan_xterm`: the two console channels that run host helper
//! programs (`arch/um/drivers/port_kern.c`, `port_user.c`, `xterm.c`, `xterm_kern.c`), as
//! the UML HOWTO (`Documentation/virt/uml/user_mode_linux_howto_v2.rst`, "Setting up
//! serial lines and consoles") describes them, end to end on one real boot per case. The
//! checks look only at what the host and the guest see, so they judge a C or a Rust layer
//! alike.
//!
//! * `host_chan_port`: `con7=port:P`, P a free TCP port. For every connection UML runs
//!   `in.telnetd -L /usr/lib/uml/port-helper` (found through `PATH`); the helper hands
//!   its terminal back to UML. Debian's `telnetd` is inetutils', which has neither
//!   `in.telnetd` nor `-L`; the netkit one is in `telnetd-ssl`, whose installation would
//!   open a telnet service on the host, so [`provide_telnetd`] unpacks the package into
//!   the cache instead and puts a wrapper first in the kernel's `PATH`. The harness
//!   speaks telnet itself ([`Telnet`], every option refused). Checked: the guest's open
//!   of `/dev/tty7` blocks while nobody is connected (`port_wait`; no telnetd runs
//!   then); after a connection it completes, the kernel process has one `in.telnetd`
//!   child (the provisioned one) running one `port-helper`; fresh random text goes both
//!   ways; once the client disconnected and the guest read the line, telnetd (reaped by
//!   the kernel) and port-helper are gone (UML notices the hangup when it polls the
//!   line; what the guest's read and write see then is reported); a client that
//!   connects while no guest waits gets UML's "no UML consoles waiting" notice, and the
//!   next open of the line takes that connection at once (text from the guest
//!   arrives). The channel outlives the guest's close of the tty (`line.c` closes
//!   channels on errors and at exit only), reported; the kernel's power-off ends the
//!   connection (EOF at the client) and its helpers.
//! * `host_chan_xterm`: `con8=xterm` with `xterm=EMULATOR,-t,-x` (the gnome-terminal
//!   switches of `xterm.c`'s help, so that the option's parsing is exercised too) and
//!   `DISPLAY` set (UML refuses the channel without it). EMULATOR is a stand-in
//!   terminal, the harness binary itself under the name [`STANDIN`] in the boot's
//!   temporary directory ([`standin_main`]): it records its argv, parses `TITLE_SWITCH
//!   TITLE EXEC_SWITCH CMD...`, makes a pty of a size the harness chose, runs CMD on its
//!   slave as controlling terminal (as a terminal emulator does), and relays the master
//!   to a Unix socket of the harness. Checked: the stand-in is a child of the kernel
//!   process; its argv is `EMULATOR -t "Virtual Console #8 (UMID)" -x
//!   .../uml/port-helper -uml-socket /tmp/xterm-pipeXXXXXX` and the socket is gone once
//!   the open returned; the guest's `stty size` of `/dev/tty8` is the stand-in's pty
//!   size; fresh random text goes both ways; after the guest's close, its next open is
//!   served by the same terminal (no second stand-in); when the kernel powers off, the
//!   stand-in (reaped by the kernel) and its port-helper are gone and the relay ends.
//!
//! UML kills a port-helper it did not start (telnetd or the terminal did); the orphan's
//! zombie goes to the harness, a child subreaper, which reaps it and says so.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use crate::block::{self, KWARN, MARK, STEP_LIMIT};
use crate::boot::Guest;
use crate::chan;
use crate::paths::Ctx;
use crate::suite::proto;
use crate::teardown::{self, ProcStat};

pub const PORT: &str = "host_chan_port";
pub const XTERM: &str = "host_chan_xterm";

/// The case names, in report order.
pub const CASES: [&str; 2] = [PORT, XTERM];

type Results = Vec<(&'static str, Result<String>)>;

/// How long the host waits for text, a connection or a process to end.
const IO_LIMIT: Duration = Duration::from_secs(10);
/// How long the host watches a blocked open that must not return.
const BLOCKED_FOR: Duration = Duration::from_millis(1500);
/// The helper of uml-utilities, as both layers look for it first.
const PORT_HELPER: &str = "/usr/lib/uml/port-helper";
/// What `port_kern.c` writes to a client when no guest waits on the port (its
/// `NO_WAITER_MSG`, one line of it).
const NO_WAITER: &str = "There are currently no UML consoles waiting for port connections.";
/// The Debian package with a netkit `in.telnetd` that takes `-L`.
const TELNETD_PACKAGE: &str = "telnetd-ssl";

// ---------------------------------------------------------------------------
// in.telnetd for the port channel.

/// Makes `<cache>/tools/telnetd-ssl/bin/in.telnetd` (once; later calls find it) and
/// returns its directory, to be put first in the kernel's `PATH`:
/// `apt-get download telnetd-ssl` (no installation: that would start a telnet service
/// through inetd), `dpkg-deb -x` into `root/`, a self-signed certificate `telnetd.pem`
/// made with `openssl req`, and a wrapper script that runs the unpacked
/// `usr/sbin/in.telnetd -z cert=<that certificate>` with UML's arguments. The
/// certificate is needed: telnetd-ssl loads `/etc/telnetd-ssl/telnetd.pem` at startup
/// even for plain telnet (and with `-z nossl`), and without it writes `Error loading
/// CRT ... do_ssleay_init() failed` to the client and exits; a client that refuses the
/// AUTHENTICATION option then gets plain telnet.
pub(crate) fn provide_telnetd(ctx: &Ctx) -> Result<PathBuf> {
    let dir = ctx.cache.join("tools").join(TELNETD_PACKAGE);
    let lock = ctx.cache.join("locks").join("tools-telnetd-ssl.lock");
    crate::sys::with_lock(&lock, "the telnetd-ssl download", || {
        let bin = dir.join("bin");
        let real = dir.join("root/usr/sbin/in.telnetd");
        let pem = dir.join("telnetd.pem");
        if bin.join("in.telnetd").is_file() && real.is_file() && pem.is_file() {
            return Ok(bin);
        }
        unpack_telnetd(&dir).with_context(|| {
            format!(
                "provisioning in.telnetd for the port channel in {} (Debian's telnetd is \
                 inetutils', without in.telnetd and -L; the netkit one is in {TELNETD_PACKAGE}, \
                 downloaded, not installed)",
                dir.display()
            )
        })?;
        Ok(bin)
    })
}

/// Runs `cmd`, failing with its status and output.
fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(())
}

fn unpack_telnetd(dir: &Path) -> Result<()> {
    let final_str = dir.to_str().context("the cache path is not UTF-8")?;
    if final_str.contains(['\'', ',', ' ']) {
        bail!("the cache path {final_str:?} holds a quote, comma or space");
    }
    let parent = dir.parent().context("no parent directory")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let tmp = tempfile::Builder::new()
        .prefix(".telnetd-ssl-")
        .tempdir_in(parent)
        .context("creating a temporary directory")?;
    let t = tmp.path();
    run(
        Command::new("apt-get")
            .args(["download", "-q", "-o", "APT::Sandbox::User=root"])
            .arg(TELNETD_PACKAGE)
            .current_dir(t),
        "`apt-get download telnetd-ssl` (is the Debian mirror reachable, and `apt-get update` \
         done?)",
    )?;
    let deb = fs::read_dir(t)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    run(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(t.join("root")),
        "dpkg-deb -x",
    )?;
    if !t.join("root/usr/sbin/in.telnetd").is_file() {
        bail!("{} holds no usr/sbin/in.telnetd", deb.display());
    }
    run(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "36500",
            ])
            .args(["-subj", "/CN=uml-harness", "-keyout"])
            .arg(t.join("key.pem"))
            .arg("-out")
            .arg(t.join("cert.pem")),
        "`openssl req` making a certificate for telnetd-ssl (install openssl)",
    )?;
    let mut pem = fs::read(t.join("cert.pem"))?;
    pem.extend(fs::read(t.join("key.pem"))?);
    fs::write(t.join("telnetd.pem"), pem)?;
    fs::create_dir(t.join("bin"))?;
    let wrapper = t.join("bin/in.telnetd");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\
             # SPDX-License-Identifier: GPL-2.0\n\
             # in.telnetd for UML's port channel (uml-harness): the netkit telnetd of\n\
             # {TELNETD_PACKAGE}, unpacked, not installed; it needs a certificate even for\n\
             # plain telnet.\n\
             exec '{final_str}/root/usr/sbin/in.telnetd' -z 'cert={final_str}/telnetd.pem' \"$@\"\n"
        ),
    )?;
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))?;
    let kept = tmp.keep();
    fs::rename(&kept, dir)
        .with_context(|| format!("renaming {} to {}", kept.display(), dir.display()))
}

// ---------------------------------------------------------------------------
// A telnet client (RFC 854) that refuses every option.

const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum TelnetState {
    #[default]
    Data,
    Iac,
    Option(u8),
    Sub,
    SubIac,
}

/// Splits a telnet stream into data and commands, across reads.
#[derive(Debug, Default)]
pub(crate) struct TelnetDecoder {
    state: TelnetState,
    /// Every option request received, as (DO/DONT/WILL/WONT, option).
    pub requests: Vec<(u8, u8)>,
}

impl TelnetDecoder {
    /// Decodes `input`: its data goes to `data`, a refusal of every option the
    /// server asks for or offers (`WONT` for `DO`, `DONT` for `WILL`) to `reply`.
    /// Subnegotiations and other commands are dropped, `IAC IAC` is a 255 byte.
    pub fn feed(&mut self, input: &[u8], data: &mut Vec<u8>, reply: &mut Vec<u8>) {
        use TelnetState::*;
        for &b in input {
            self.state = match (self.state, b) {
                (Data, IAC) => Iac,
                (Data, _) => {
                    data.push(b);
                    Data
                }
                (Iac, IAC) => {
                    data.push(IAC);
                    Data
                }
                (Iac, DO | DONT | WILL | WONT) => Option(b),
                (Iac, SB) => Sub,
                (Iac, _) => Data,
                (Option(cmd), opt) => {
                    self.requests.push((cmd, opt));
                    match cmd {
                        DO => reply.extend_from_slice(&[IAC, WONT, opt]),
                        WILL => reply.extend_from_slice(&[IAC, DONT, opt]),
                        _ => {}
                    }
                    Data
                }
                (Sub, IAC) => SubIac,
                (Sub, _) => Sub,
                (SubIac, SE) => Data,
                (SubIac, _) => Sub,
            };
        }
    }
}

/// What a [`Telnet`] connection's reader thread received.
#[derive(Debug, Default)]
struct TelnetRx {
    /// All data received so far.
    data: Vec<u8>,
    /// Every option request received, as (DO/DONT/WILL/WONT, option).
    requests: Vec<(u8, u8)>,
    eof: bool,
    error: Option<String>,
}

/// A telnet connection to the kernel's port. A thread reads it all the time and
/// answers the server's option requests at once, as a telnet client does (telnetd
/// waits for the answers before it starts the login program).
struct Telnet {
    sock: TcpStream,
    rx: Arc<(Mutex<TelnetRx>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

fn telnet_reader(mut sock: TcpStream, rx: Arc<(Mutex<TelnetRx>, Condvar)>) {
    let mut dec = TelnetDecoder::default();
    let mut buf = [0u8; 4096];
    loop {
        let r = sock.read(&mut buf);
        let (lock, cond) = &*rx;
        let mut g = lock.lock().unwrap_or_else(|e| e.into_inner());
        match r {
            Ok(0) => g.eof = true,
            Ok(n) => {
                let mut reply = Vec::new();
                dec.feed(&buf[..n], &mut g.data, &mut reply);
                g.requests.clone_from(&dec.requests);
                if !reply.is_empty() {
                    if let Err(e) = sock.write_all(&reply) {
                        g.error = Some(format!("answering the telnet options: {e}"));
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => g.eof = true,
            Err(e) => {
                g.error = Some(format!("reading the telnet connection: {e}"));
                g.eof = true;
            }
        }
        let done = g.eof;
        drop(g);
        cond.notify_all();
        if done {
            return;
        }
    }
}

impl Telnet {
    fn connect(port: u16) -> Result<Telnet> {
        let sock = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
        let rx = Arc::new((Mutex::new(TelnetRx::default()), Condvar::new()));
        let (s2, rx2) = (sock.try_clone()?, Arc::clone(&rx));
        let thread = std::thread::Builder::new()
            .name(format!("telnet-{port}"))
            .spawn(move || telnet_reader(s2, rx2))
            .context("spawning the telnet reader")?;
        Ok(Telnet {
            sock,
            rx,
            thread: Some(thread),
        })
    }

    /// Waits up to `limit` until `done` holds for what arrived; returns its result
    /// and a copy of the data.
    fn wait(&self, limit: Duration, done: impl Fn(&TelnetRx) -> bool) -> (bool, TelnetRx) {
        let (lock, cond) = &*self.rx;
        let deadline = Instant::now() + limit;
        let mut g = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let ok = done(&g);
            let now = Instant::now();
            if ok || g.eof || now >= deadline {
                let copy = TelnetRx {
                    data: g.data.clone(),
                    requests: g.requests.clone(),
                    eof: g.eof,
                    error: g.error.clone(),
                };
                return (ok, copy);
            }
            g = match cond.wait_timeout(g, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Waits until the data holds `needle`; fails after `limit` or at EOF.
    fn read_until(&self, needle: &str, limit: Duration, what: &str) -> Result<()> {
        let has = |r: &TelnetRx| r.data.windows(needle.len()).any(|w| w == needle.as_bytes());
        let (ok, r) = self.wait(limit, has);
        if ok {
            return Ok(());
        }
        bail!(
            "{what}: {needle:?} did not arrive {}; got {} bytes: \"{}\"",
            match (&r.error, r.eof) {
                (Some(e), _) => format!("({e})"),
                (None, true) => "before the connection ended".into(),
                (None, false) => format!("within {:.0}s", limit.as_secs_f64()),
            },
            r.data.len(),
            chan::show(&r.data)
        )
    }

    /// Waits for the server to end the connection; returns how long it took.
    fn wait_eof(&self, limit: Duration, what: &str) -> Result<Duration> {
        let t = Instant::now();
        let (ok, _) = self.wait(limit, |r| r.eof);
        if !ok {
            bail!(
                "{what}: the connection was still open after {:.0}s",
                limit.as_secs_f64()
            );
        }
        Ok(t.elapsed())
    }

    /// Sends a line of text, ending it with CR LF (the NVT newline).
    fn send_line(&mut self, text: &str) -> Result<()> {
        let mut b = Vec::new();
        for &c in text.as_bytes() {
            b.push(c);
            if c == IAC {
                b.push(IAC);
            }
        }
        b.extend_from_slice(b"\r\n");
        self.sock
            .write_all(&b)
            .context("writing to the telnet connection")
    }

    /// The options the server asked about, e.g. `DO 24, WILL 1`.
    fn requests(&self) -> String {
        let name = |c| match c {
            DO => "DO",
            DONT => "DONT",
            WILL => "WILL",
            _ => "WONT",
        };
        let (_, r) = self.wait(Duration::ZERO, |_| true);
        r.requests
            .iter()
            .map(|&(c, o)| format!("{} {o}", name(c)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Drop for Telnet {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP port nobody listens on now.
fn free_port() -> Result<u16> {
    let l = TcpListener::bind(("0.0.0.0", 0)).context("binding a TCP port")?;
    Ok(l.local_addr()?.port())
}

// ---------------------------------------------------------------------------
// The stand-in terminal emulator.

/// The stand-in's file name (a symbolic link to the harness binary in the boot's
/// temporary directory); `main` runs [`standin_main`] when called by this name.
pub const STANDIN: &str = "uml-xterm-standin";
/// In the stand-in's directory: `TITLE_SWITCH EXEC_SWITCH ROWS COLS`, written by the
/// harness.
const STANDIN_CONF: &str = "standin.conf";
/// Written by the stand-in: its argv, each argument ending in a NUL.
const STANDIN_ARGV: &str = "standin.argv";
/// Written by the stand-in: `ITS_PID CHILD_PID`.
const STANDIN_PIDS: &str = "standin.pids";
/// Written by the stand-in when it fails.
const STANDIN_ERR: &str = "standin.err";
/// The harness's Unix socket the stand-in relays its pty master to.
const RELAY: &str = "relay.sock";

/// Whether this process was started as the stand-in terminal.
pub fn is_standin() -> bool {
    std::env::args_os()
        .next()
        .is_some_and(|a| Path::new(&a).file_name() == Some(OsStr::new(STANDIN)))
}

/// The stand-in terminal emulator's `main`: returns its exit status. Its failures go to
/// `standin.err` beside it (and to stderr).
pub fn standin_main() -> u8 {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let dir = argv
        .first()
        .and_then(|a| Path::new(a).parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    match standin(&dir, &argv) {
        Ok(()) => 0,
        Err(e) => {
            let _ = write_atomic(&dir.join(STANDIN_ERR), format!("{e:#}").as_bytes());
            eprintln!("{STANDIN}: {e:#}");
            1
        }
    }
}

/// Writes `path` whole or not at all.
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{}.tmp", name.unwrap_or_default()));
    fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// The stand-in's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StandinConf {
    title_switch: String,
    exec_switch: String,
    rows: u16,
    cols: u16,
}

impl StandinConf {
    fn parse(s: &str) -> Option<StandinConf> {
        let w: Vec<&str> = s.split_whitespace().collect();
        match w.as_slice() {
            [t, e, r, c] => Some(StandinConf {
                title_switch: (*t).into(),
                exec_switch: (*e).into(),
                rows: r.parse().ok()?,
                cols: c.parse().ok()?,
            }),
            _ => None,
        }
    }

    fn text(&self) -> String {
        format!(
            "{} {} {} {}\n",
            self.title_switch, self.exec_switch, self.rows, self.cols
        )
    }
}

/// A terminal's arguments after its name: `TITLE_SWITCH TITLE EXEC_SWITCH CMD ARGS...`
/// gives (title, command).
fn parse_terminal_args<'a>(
    args: &'a [OsString],
    title_switch: &str,
    exec_switch: &str,
) -> Result<(&'a OsStr, &'a [OsString])> {
    match args {
        [t, title, e, cmd @ ..]
            if t.as_os_str() == title_switch && e.as_os_str() == exec_switch && !cmd.is_empty() =>
        {
            Ok((title, cmd))
        }
        _ => bail!("expected `{title_switch} TITLE {exec_switch} COMMAND...`, got {args:?}"),
    }
}

fn standin(dir: &Path, argv: &[OsString]) -> Result<()> {
    let mut rec = Vec::new();
    for a in argv {
        rec.extend_from_slice(a.as_bytes());
        rec.push(0);
    }
    write_atomic(&dir.join(STANDIN_ARGV), &rec)?;
    let conf = fs::read_to_string(dir.join(STANDIN_CONF))
        .with_context(|| format!("reading {STANDIN_CONF}"))?;
    let conf = StandinConf::parse(&conf).with_context(|| format!("{STANDIN_CONF}: {conf:?}"))?;
    let (_, cmd) = parse_terminal_args(&argv[1..], &conf.title_switch, &conf.exec_switch)?;
    let (master, slave_path, slave) = chan::host_pty()?;
    chan::set_winsize(&master, conf.rows, conf.cols)?;
    let mut child = Command::new(&cmd[0]);
    child
        .args(&cmd[1..])
        .stdin(slave.try_clone()?)
        .stdout(slave.try_clone()?)
        .stderr(slave);
    // setsid and ioctl are async-signal-safe system calls without memory arguments
    // (TIOCSCTTY takes an int).
    // SAFETY: the closure runs in the forked child before exec.
    unsafe {
        child.pre_exec(|| {
            // A new session whose controlling terminal is the pty, as a terminal
            // emulator gives its command.
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = child
        .spawn()
        .with_context(|| format!("running {cmd:?} on {slave_path}"))?;
    write_atomic(
        &dir.join(STANDIN_PIDS),
        format!("{} {}\n", std::process::id(), child.id()).as_bytes(),
    )?;
    let sock = UnixStream::connect(dir.join(RELAY)).context("connecting to the harness")?;
    let r = relay(master, sock);
    // The command ends with the terminal (UML kills it, the C's xterm did the same).
    let _ = child.try_wait();
    r
}

/// Copies between the pty master and the socket until either side ends (the master
/// reads EIO once no slave descriptor is left).
fn relay(mut master: File, mut sock: UnixStream) -> Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let (m, s) = {
            let mut p = [
                PollFd::new(master.as_fd(), PollFlags::POLLIN),
                PollFd::new(sock.as_fd(), PollFlags::POLLIN),
            ];
            poll(&mut p, PollTimeout::NONE).context("poll")?;
            let ready = |f: &PollFd| {
                f.revents().is_some_and(|r| {
                    r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                })
            };
            (ready(&p[0]), ready(&p[1]))
        };
        if m {
            match master.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => sock
                    .write_all(&buf[..n])
                    .context("writing to the harness")?,
                Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ok(()),
                Err(e) => return Err(e).context("reading the pty master"),
            }
        }
        if s {
            match sock.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => master
                    .write_all(&buf[..n])
                    .context("writing to the pty master")?,
                Err(e) => return Err(e).context("reading from the harness"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The helper processes.

/// A host process a case watches.
#[derive(Debug, Clone)]
struct Watched {
    role: &'static str,
    stat: ProcStat,
    /// A child of the kernel process, which must reap it.
    kernel_child: bool,
}

impl Watched {
    fn describe(&self) -> String {
        format!("{} (pid {})", self.role, self.stat.pid)
    }
}

/// The process `p` now, if it still exists (same pid and start time).
fn current(p: &ProcStat) -> Option<ProcStat> {
    let s = teardown::parse_stat(&fs::read_to_string(format!("/proc/{}/stat", p.pid)).ok()?)?;
    (s.starttime == p.starttime).then_some(s)
}

fn stat_of(pid: i32) -> Result<ProcStat> {
    teardown::parse_stat(
        &fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("process {pid} does not exist"))?,
    )
    .with_context(|| format!("parsing /proc/{pid}/stat"))
}

/// Reaps `pid` if it is a zombie child of the harness.
fn reap(pid: i32) -> bool {
    matches!(
        waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)),
        Ok(st) if st.pid().is_some()
    )
}

/// The processes a boot watches; dropping it kills those still alive and reaps those
/// the harness inherited, so that a failed case leaves none behind.
#[derive(Default)]
struct Watch(Vec<Watched>);

impl Watch {
    fn add(&mut self, w: &[Watched]) {
        self.0.extend_from_slice(w);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let harness = std::process::id() as i32;
        for w in &self.0 {
            if current(&w.stat).is_some_and(|s| !s.zombie()) {
                let _ = kill(Pid::from_raw(w.stat.pid), Signal::SIGKILL);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let mut pending = false;
            for w in &self.0 {
                match current(&w.stat) {
                    Some(s) if s.zombie() && s.ppid == harness => {
                        reap(s.pid);
                    }
                    Some(s) if !s.zombie() => pending = true,
                    _ => {}
                }
            }
            if !pending {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits up to [`IO_LIMIT`] until each of `procs` has ended: gone (reaped by its
/// parent), or, for one the kernel did not start, a zombie of the harness, which reaps
/// it (UML kills a port-helper that telnetd or the terminal started; the orphan goes to
/// the harness, a child subreaper). Fails naming those alive or unreaped, and the
/// kernel's own children whose zombies the harness inherited (the kernel did not reap
/// them).
fn ended(procs: &[Watched], when: &str) -> Result<String> {
    let harness = std::process::id() as i32;
    let t = Instant::now();
    let mut by_harness = Vec::new();
    let mut unreaped = Vec::new();
    loop {
        let mut left = Vec::new();
        for w in procs {
            match current(&w.stat) {
                None => {}
                // Reaped here: a zombie the harness inherited.
                Some(s) if s.zombie() && s.ppid == harness && reap(s.pid) => {
                    if w.kernel_child {
                        unreaped.push(format!(
                            "{} was not reaped by the kernel (the harness inherited its zombie)",
                            w.describe()
                        ));
                    } else {
                        by_harness.push(w.describe());
                    }
                }
                Some(s) => left.push(format!(
                    "{} {} (parent {})",
                    w.describe(),
                    if s.zombie() { "not reaped" } else { "alive" },
                    s.ppid
                )),
            }
        }
        if left.is_empty() && !unreaped.is_empty() {
            bail!("{when}: {}", unreaped.join(", "));
        }
        if left.is_empty() {
            let mut s = format!(
                "{} gone {when} within {:.1}s",
                procs
                    .iter()
                    .map(Watched::describe)
                    .collect::<Vec<_>>()
                    .join(", "),
                t.elapsed().as_secs_f64()
            );
            if !by_harness.is_empty() {
                s.push_str(&format!(
                    " ({} left as a zombie for the harness, a subreaper, to reap)",
                    by_harness.join(", ")
                ));
            }
            return Ok(s);
        }
        if t.elapsed() > IO_LIMIT {
            bail!("{when}: {} after {}s", left.join(", "), IO_LIMIT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The state of `procs` now, e.g. `telnetd (pid 5) exited, not reaped`.
fn states(procs: &[Watched]) -> String {
    procs
        .iter()
        .map(|w| {
            let st = match current(&w.stat) {
                None => "gone".to_string(),
                Some(s) if s.zombie() => format!("exited, not reaped (parent {})", s.ppid),
                Some(s) => format!("alive (parent {})", s.ppid),
            };
            format!("{} {st}", w.describe())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kernel's `in.telnetd` children not in `known`, each with its `port-helper`
/// child; waits up to [`IO_LIMIT`] for exactly one pair.
fn telnet_helpers(kernel: i32, known: &[Watched]) -> Result<Vec<Watched>> {
    let t = Instant::now();
    loop {
        let procs = teardown::snapshot();
        let fresh = |p: &&ProcStat| !known.iter().any(|w| w.stat.key() == p.key()) && !p.zombie();
        let telnetd: Vec<&ProcStat> = procs
            .iter()
            .filter(|p| p.ppid == kernel && p.comm == "in.telnetd")
            .filter(fresh)
            .collect();
        if let [d] = telnetd.as_slice() {
            let helpers: Vec<&ProcStat> = procs
                .iter()
                .filter(|p| p.ppid == d.pid && p.comm == "port-helper")
                .filter(fresh)
                .collect();
            if let [h] = helpers.as_slice() {
                return Ok(vec![
                    Watched {
                        role: "in.telnetd",
                        stat: (*d).clone(),
                        kernel_child: true,
                    },
                    Watched {
                        role: "port-helper",
                        stat: (*h).clone(),
                        kernel_child: false,
                    },
                ]);
            }
        }
        if t.elapsed() > IO_LIMIT {
            let mine: Vec<String> = teardown::members(&procs, kernel)
                .iter()
                .filter(|p| p.pid != kernel)
                .map(|p| format!("{} {} (parent {})", p.pid, p.comm, p.ppid))
                .collect();
            bail!(
                "expected one new in.telnetd child of the kernel process {kernel} running one \
                 port-helper, within {}s; the kernel's host processes: {}",
                IO_LIMIT.as_secs(),
                mine.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// The boots.

/// The guest's console line `@@BLK KEY ...`, or a failure quoting the console.
fn mark(console: &str, key: &str) -> Result<String> {
    block::mark_line(console, key).with_context(|| {
        format!(
            "no `{MARK} {key} ...` line on the console\n{}",
            block::quote(console)
        )
    })
}

fn wait_mark(guest: &mut Guest, key: &str) -> Result<String> {
    guest.wait_for_console(&format!("{MARK} {key}"), STEP_LIMIT)?;
    // The whole line.
    let t = Instant::now();
    loop {
        let c = guest.console_so_far();
        if let Some(i) = c.find(&format!("{MARK} {key}")) {
            if c[i..].contains('\n') {
                return mark(&c, key);
            }
        }
        if t.elapsed() > Duration::from_secs(5) {
            return mark(&c, key);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The leading numbers of a guest's line, e.g. `143 0` of `143 0epollctl add err`.
fn numbers(line: &str) -> String {
    line.chars()
        .take_while(|c| c.is_ascii_digit() || *c == ' ')
        .collect::<String>()
        .trim()
        .to_string()
}

/// The random word of this run (lowercase hex).
fn word(base: u64, k: u64) -> String {
    format!("{:016x}", block::seed(base, k))
}

/// The port boot's guest: opens `/dev/tty7` (blocks until a client connects), writes
/// its word and reads a line; once the host disconnected, reports what a read and a
/// write see, closes; opens again once the host connected with nobody waiting, writes
/// its second word, closes, and waits for the host before it ends.
fn port_script(g2h: &str) -> String {
    format!(
        "trap '' HUP; m up; \
         m popen; exec 7<>/dev/tty7; m popened; stty -F /dev/tty7 -echo; \
         echo port-{g2h} >&7; read -r a <&7; m port \"$(printf %s \"$a\" | tr -d '\\r')\"; \
         {g} wait-file /host/hup 30; \
         r=0; timeout 3 cat <&7 >/tmp/p 2>/dev/null || r=$?; m phup $r $(wc -c </tmp/p); \
         w=0; echo after >&7 2>/tmp/e || w=$?; m pwrite $w $(head -c 100 /tmp/e); \
         exec 7>&-; m pclosed; \
         {g} wait-file /host/again 30; \
         exec 7<>/dev/tty7; m popened2; echo port2-{g2h} >&7; \
         {g} wait-file /host/got2 30; exec 7>&-; m pclosed2; \
         {g} wait-file /host/halt 30; \
         {KWARN}m step done",
        g = proto::GUEST
    )
}

/// The xterm boot's guest: opens `/dev/tty8` (UML starts the terminal), reports its
/// size, writes its word, reads a line, closes; opens the line again, writes its second
/// word, closes, and waits for the host before it ends.
fn xterm_script(g2h: &str) -> String {
    format!(
        "trap '' HUP; m up; \
         m xopen; exec 8<>/dev/tty8; m xopened; stty -F /dev/tty8 -echo; \
         m xsize $(stty -F /dev/tty8 size 2>&1 || true); \
         echo xterm-{g2h} >&8; read -r b <&8; m xterm \"$b\"; \
         exec 8>&-; m xclosed; \
         {g} wait-file /host/again 30; \
         exec 8<>/dev/tty8; echo xterm2-{g2h} >&8; exec 8>&-; m xclosed2; \
         {g} wait-file /host/halt 30; \
         {KWARN}m step done",
        g = proto::GUEST
    )
}

/// Runs the boots of the cases `want` selects; returns their results in report order.
pub fn run_cases(ctx: &Ctx, kernel: &Path, want: &dyn Fn(&str) -> bool) -> Results {
    CASES
        .iter()
        .filter(|n| want(n))
        .map(|&name| {
            let t = Instant::now();
            let r = if name == PORT {
                port_boot(ctx, kernel)
            } else {
                xterm_boot(ctx, kernel)
            };
            let r = r.map(|f| format!("{f}; {:.1}s (one boot)", t.elapsed().as_secs_f64()));
            (name, r)
        })
        .collect()
}

/// The kernel's `PATH`: `first`, then the harness's.
fn path_with(first: &Path) -> String {
    let rest = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    format!("{}:{rest}", first.display())
}

fn port_boot(ctx: &Ctx, kernel: &Path) -> Result<String> {
    if !Path::new(PORT_HELPER).is_file() {
        bail!("{PORT_HELPER} is missing (package uml-utilities; `uml-harness setup` installs it)");
    }
    let bin = provide_telnetd(ctx)?;
    let real = bin.join("../root/usr/sbin/in.telnetd").canonicalize()?;
    let dir = tempfile::Builder::new()
        .prefix("uml-chan-port-")
        .tempdir()
        .context("creating a temporary directory")?;
    let hostfs = dir.path().join("hostfs");
    fs::create_dir(&hostfs)?;
    let base = block::fresh_seed();
    let g2h = word(base, 1);
    let port = free_port()?;
    let mut s = block::spec(
        kernel,
        &port_script(&g2h),
        &[format!("con7=port:{port}")],
        Some(&hostfs),
    );
    s.env.push(("PATH".into(), path_with(&bin)));
    let mut facts = vec![format!("con7=port:{port}")];
    let mut guest = Guest::start(&s, ctx)?;
    let mut watch = Watch::default();
    let kernel_pid = guest.pid();

    // Nobody connected: the open blocks, and no telnetd runs.
    wait_mark(&mut guest, "popen")?;
    let t = Instant::now();
    while t.elapsed() < BLOCKED_FOR {
        if guest.console_so_far().contains(&format!("{MARK} popened")) {
            bail!(
                "the guest's open of /dev/tty7 (con7=port:{port}) returned while no client was \
                 connected (port_wait should block it)"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let early: Vec<String> = teardown::members(&teardown::snapshot(), kernel_pid)
        .iter()
        .filter(|p| p.comm == "in.telnetd" || p.comm == "port-helper")
        .map(|p| format!("{} {}", p.pid, p.comm))
        .collect();
    if !early.is_empty() {
        bail!("with no client connected, the kernel already runs {early:?}");
    }
    facts.push(format!(
        "the guest's open blocks while no client is connected (watched {:.1}s)",
        BLOCKED_FOR.as_secs_f64()
    ));

    // The first connection.
    let mut tn = Telnet::connect(port)?;
    let helpers = telnet_helpers(kernel_pid, &[])?;
    watch.add(&helpers);
    wait_mark(&mut guest, "popened")?;
    let want = format!("port-{g2h}");
    tn.read_until(&want, IO_LIMIT, "the guest's text on con7")?;
    let exe = fs::read_link(format!("/proc/{}/exe", helpers[0].stat.pid))
        .context("reading in.telnetd's /proc/PID/exe")?;
    if exe != real {
        bail!(
            "the kernel ran {} as in.telnetd, expected the provisioned {}",
            exe.display(),
            real.display()
        );
    }
    let h2g = format!("h2g-{}", word(block::fresh_seed(), 2));
    tn.send_line(&h2g)?;
    let got = wait_mark(&mut guest, "port")?;
    if got != h2g {
        bail!("the guest read {got:?} from /dev/tty7, the host's telnet client sent {h2g:?}");
    }
    facts.push(format!(
        "connected: {} ({}); guest->host {want:?}, host->guest {h2g:?}; telnet options \
         refused: {}",
        helpers
            .iter()
            .map(Watched::describe)
            .collect::<Vec<_>>()
            .join(" running "),
        exe.display(),
        tn.requests()
    ));

    // The client disconnects; the guest reads and writes.
    drop(tn);
    std::thread::sleep(Duration::from_millis(300));
    let after_hup = states(&helpers);
    block::release(&hostfs, "hup")?;
    wait_mark(&mut guest, "pclosed")?;
    let c = guest.console_so_far();
    // A kernel message may be glued to the guest's line.
    let phup = numbers(&mark(&c, "phup")?);
    let pwrite = mark(&c, "pwrite")?;
    let gone = ended(
        &helpers,
        "once the client disconnected and the guest read the line",
    )?;
    facts.push(format!(
        "client disconnected: 0.3s later {after_hup}; then the guest's `timeout 3 cat` of the \
         line gives status and bytes {phup:?} (143: killed by the timeout, still blocked; 0: \
         end of file), a write status and error {pwrite:?}; {gone}"
    ));

    // A client with nobody waiting.
    let tn = Telnet::connect(port)?;
    tn.read_until(
        NO_WAITER,
        IO_LIMIT,
        "UML's notice to a client nobody waits for",
    )?;
    let helpers2 = telnet_helpers(kernel_pid, &helpers)?;
    watch.add(&helpers2);
    block::release(&hostfs, "again")?;
    wait_mark(&mut guest, "popened2")?;
    let want2 = format!("port2-{g2h}");
    tn.read_until(
        &want2,
        IO_LIMIT,
        "the guest's text on con7, opened after the client connected",
    )?;
    block::release(&hostfs, "got2")?;
    wait_mark(&mut guest, "pclosed2")?;
    // The channel outlives the tty's close (line.c closes channels on errors and at
    // exit only): reported.
    std::thread::sleep(Duration::from_millis(300));
    let (open, _) = tn.wait(Duration::ZERO, |r| !r.eof);
    let after_close = format!(
        "0.3s after the guest's close the connection is {}, {}",
        if open { "open" } else { "closed" },
        states(&helpers2)
    );
    facts.push(format!(
        "a client connecting with no guest waiting gets {NO_WAITER:?}; the guest's next open \
         takes the connection at once, its text {want2:?} arrives; {after_close}"
    ));

    // The kernel powers off with the client connected.
    block::release(&hostfs, "halt")?;
    guest.wait_for_console(crate::protocol::EXIT_PREFIX, STEP_LIMIT)?;
    crate::suite::wait_kernel_exit(kernel_pid, STEP_LIMIT)?;
    let eof = tn.wait_eof(IO_LIMIT, "after the kernel powered off")?;
    let gone2 = ended(&helpers2, "after the kernel powered off")?;
    facts.push(format!(
        "the kernel's power-off ends the connection ({:.1}s); {gone2}",
        eof.as_secs_f64()
    ));
    let out = guest.wait()?;
    block::exited_ok(&out)?;
    block::no_kernel_warnings(&out.console, "the port boot")?;
    let needle = "epollctl add err";
    if let Some(l) = out
        .console
        .lines()
        .find_map(|l| l.find(needle).map(|i| &l[i..]))
    {
        facts.push(format!(
            "the kernel printed {:?} (the disconnected channel's descriptor, closed with \
             its IRQ still registered)",
            l.trim()
        ));
    }
    drop(watch);
    Ok(facts.join("; "))
}

fn xterm_boot(ctx: &Ctx, kernel: &Path) -> Result<String> {
    if !Path::new(PORT_HELPER).is_file() {
        bail!("{PORT_HELPER} is missing (package uml-utilities; `uml-harness setup` installs it)");
    }
    let dir = tempfile::Builder::new()
        .prefix("uml-chan-xterm-")
        .tempdir()
        .context("creating a temporary directory")?;
    let hostfs = dir.path().join("hostfs");
    fs::create_dir(&hostfs)?;
    let emulator = dir.path().join(STANDIN);
    let me = std::env::current_exe().context("finding the harness binary")?;
    std::os::unix::fs::symlink(&me, &emulator)
        .with_context(|| format!("linking {} to {}", emulator.display(), me.display()))?;
    let base = block::fresh_seed();
    let conf = StandinConf {
        title_switch: "-t".into(),
        exec_switch: "-x".into(),
        rows: 10 + (base % 50) as u16,
        cols: 30 + (base >> 8) as u16 % 100,
    };
    fs::write(dir.path().join(STANDIN_CONF), conf.text())?;
    let listener =
        UnixListener::bind(dir.path().join(RELAY)).context("binding the relay socket")?;
    listener.set_nonblocking(true)?;
    let g2h = word(base, 1);
    let emu = emulator
        .to_str()
        .context("the temporary path is not UTF-8")?;
    let mut s = block::spec(
        kernel,
        &xterm_script(&g2h),
        &[
            "con8=xterm".into(),
            format!("xterm={emu},{},{}", conf.title_switch, conf.exec_switch),
        ],
        Some(&hostfs),
    );
    // Any value: UML only checks that it is set.
    s.env.push(("DISPLAY".into(), ":uml-harness".into()));
    let mut guest = Guest::start(&s, ctx)?;
    let mut watch = Watch::default();
    let kernel_pid = guest.pid();
    let umid = guest
        .umid_dir()
        .file_name()
        .map(|u| u.to_string_lossy().into_owned())
        .unwrap_or_default();
    wait_mark(&mut guest, "xopen")?;

    // The stand-in connects.
    let mut relay = accept_standin(&listener, dir.path(), &guest)?;
    let procs = standin_procs(dir.path())?;
    watch.add(&procs);
    if procs[0].stat.ppid != kernel_pid {
        bail!(
            "the stand-in terminal (pid {}) is a child of {}, not of the kernel process \
             {kernel_pid}",
            procs[0].stat.pid,
            procs[0].stat.ppid
        );
    }

    // Its command line.
    let argv: Vec<String> = fs::read(dir.path().join(STANDIN_ARGV))?
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let title = format!("Virtual Console #8 ({umid})");
    let sock = argv_check(&argv, emu, &conf, &title)?;
    wait_mark(&mut guest, "xopened")?;
    if Path::new(&sock).exists() {
        bail!(
            "the socket {sock} the terminal's port-helper connected to still exists after the \
             open"
        );
    }

    // Both ways.
    let want = format!("xterm-{g2h}");
    let got = chan::read_until(&mut relay, &want, IO_LIMIT, "the guest's text on con8")?;
    let h2g = format!("h2g-{}", word(block::fresh_seed(), 2));
    relay
        .write_all(format!("{h2g}\n").as_bytes())
        .context("writing to the stand-in's relay")?;
    let read = wait_mark(&mut guest, "xterm")?;
    if read != h2g {
        bail!("the guest read {read:?} from /dev/tty8, the host typed {h2g:?} in the terminal");
    }
    let size = mark(&guest.console_so_far(), "xsize")?;
    if chan::parse_size(&size) != Some((conf.rows, conf.cols)) {
        bail!(
            "the terminal's pty is {} rows, {} columns; the guest's `stty -F /dev/tty8 size` \
             says {size:?}",
            conf.rows,
            conf.cols
        );
    }

    // The guest closes the line and opens it again: the same terminal serves it (the
    // channel outlives the tty's close; line.c closes channels at exit).
    wait_mark(&mut guest, "xclosed")?;
    block::release(&hostfs, "again")?;
    wait_mark(&mut guest, "xclosed2")?;
    let want2 = format!("xterm2-{g2h}");
    chan::read_until(
        &mut relay,
        &want2,
        IO_LIMIT,
        "the guest's text on con8, opened again, through the first terminal",
    )?;
    let alive = states(&procs);
    if let Ok((s, _)) = listener.accept() {
        drop(s);
        bail!("the guest's second open of /dev/tty8 started a second terminal ({alive})");
    }

    // The kernel powers off.
    block::release(&hostfs, "halt")?;
    guest.wait_for_console(crate::protocol::EXIT_PREFIX, STEP_LIMIT)?;
    crate::suite::wait_kernel_exit(kernel_pid, STEP_LIMIT)?;
    let gone = ended(&procs, "after the kernel powered off")?;
    relay.set_read_timeout(Some(IO_LIMIT))?;
    let mut rest = Vec::new();
    if let Err(e) = relay.read_to_end(&mut rest) {
        bail!("the stand-in's relay did not end after the kernel powered off: {e}");
    }
    let out = guest.wait()?;
    block::exited_ok(&out)?;
    block::no_kernel_warnings(&out.console, "the xterm boot")?;
    drop(watch);
    Ok(format!(
        "argv {argv:?}; the socket was removed after the open; size {size} (the pty's); \
         guest->host \"{}\", host->guest {h2g:?}; after the guest's close {alive}, and its \
         next open writes {want2:?} to the same terminal; {gone}, the relay ended",
        chan::show(&got).trim()
    ))
}

/// Waits for the stand-in terminal's connection to the relay socket.
fn accept_standin(listener: &UnixListener, dir: &Path, guest: &Guest) -> Result<UnixStream> {
    let t = Instant::now();
    let relay = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("accepting the stand-in's connection"),
        }
        if let Ok(e) = fs::read_to_string(dir.join(STANDIN_ERR)) {
            bail!("the stand-in terminal failed: {e}");
        }
        if t.elapsed() > IO_LIMIT {
            bail!(
                "the stand-in terminal did not connect within {}s (argv: {:?})\n{}",
                IO_LIMIT.as_secs(),
                fs::read(dir.join(STANDIN_ARGV)).map(|a| chan::show(&a)),
                block::quote(&guest.console_so_far())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    relay.set_nonblocking(false)?;
    Ok(relay)
}

/// The stand-in terminal and its port-helper, from the pids it wrote.
fn standin_procs(dir: &Path) -> Result<Vec<Watched>> {
    let pids = fs::read_to_string(dir.join(STANDIN_PIDS)).context("the stand-in's pids")?;
    let (sp, hp) = pids
        .split_once(' ')
        .and_then(|(a, b)| Some((a.parse::<i32>().ok()?, b.trim().parse::<i32>().ok()?)))
        .with_context(|| format!("{STANDIN_PIDS}: {pids:?}"))?;
    Ok(vec![
        Watched {
            role: "stand-in terminal",
            stat: stat_of(sp)?,
            kernel_child: true,
        },
        Watched {
            role: "port-helper",
            stat: stat_of(hp)?,
            kernel_child: false,
        },
    ])
}

/// Checks the terminal's argv against what `xterm.c` runs; returns the socket path.
fn argv_check(argv: &[String], emu: &str, conf: &StandinConf, title: &str) -> Result<String> {
    let [a0, ts, t, xs, helper, opt, sock] = argv else {
        bail!(
            "the terminal's argv has {} words, expected 7 (EMULATOR TITLE_SWITCH TITLE \
             EXEC_SWITCH port-helper -uml-socket SOCKET): {argv:?}",
            argv.len()
        );
    };
    let helper_ok = Path::new(helper)
        .canonicalize()
        .is_ok_and(|p| p == Path::new(PORT_HELPER));
    let template = "/tmp/xterm-pipe";
    let ok = a0 == emu
        && *ts == conf.title_switch
        && t == title
        && *xs == conf.exec_switch
        && helper_ok
        && opt == "-uml-socket"
        && sock.starts_with(template)
        && sock.len() == template.len() + 6;
    if !ok {
        bail!(
            "the terminal's argv is {argv:?}, expected [{emu:?}, {:?}, {title:?}, {:?}, \
             \"{PORT_HELPER}\" (or the same file), \"-uml-socket\", \"/tmp/xterm-pipeXXXXXX\"]",
            conf.title_switch,
            conf.exec_switch
        );
    }
    Ok(sock.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telnet_decoder_refuses_options_across_reads() {
        let mut d = TelnetDecoder::default();
        let (mut data, mut reply) = (Vec::new(), Vec::new());
        // DO TTYPE, WILL ECHO split over reads, a subnegotiation, IAC IAC, NOP.
        d.feed(&[IAC, DO, 24, b'a', IAC], &mut data, &mut reply);
        d.feed(&[WILL], &mut data, &mut reply);
        d.feed(&[1, b'b'], &mut data, &mut reply);
        d.feed(
            &[IAC, SB, 24, 1, IAC, SE, IAC, IAC, IAC, 241, b'c'],
            &mut data,
            &mut reply,
        );
        d.feed(&[IAC, DONT, 3, IAC, WONT, 5], &mut data, &mut reply);
        assert_eq!(data, [b'a', b'b', IAC, b'c']);
        assert_eq!(reply, [IAC, WONT, 24, IAC, DONT, 1]);
        assert_eq!(d.requests, [(DO, 24), (WILL, 1), (DONT, 3), (WONT, 5)]);
    }

    #[test]
    fn standin_conf_and_args() {
        let c = StandinConf {
            title_switch: "-t".into(),
            exec_switch: "-x".into(),
            rows: 12,
            cols: 99,
        };
        assert_eq!(StandinConf::parse(&c.text()), Some(c.clone()));
        assert_eq!(StandinConf::parse("-t -x 12"), None);
        let a: Vec<OsString> = [
            "-t",
            "Virtual Console #8 (u)",
            "-x",
            "/p",
            "-uml-socket",
            "/s",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let (title, cmd) = parse_terminal_args(&a, "-t", "-x").unwrap();
        assert_eq!(title, "Virtual Console #8 (u)");
        assert_eq!(cmd, &a[3..]);
        assert!(parse_terminal_args(&a, "-T", "-e").is_err());
        assert!(parse_terminal_args(&a[..3], "-t", "-x").is_err());
    }

    #[test]
    fn argv_is_what_xterm_c_runs() {
        let conf = StandinConf {
            title_switch: "-t".into(),
            exec_switch: "-x".into(),
            rows: 1,
            cols: 1,
        };
        let ok: Vec<String> = [
            "/d/uml-xterm-standin",
            "-t",
            "Virtual Console #8 (u)",
            "-x",
            "/usr/lib//uml/port-helper",
            "-uml-socket",
            "/tmp/xterm-pipeAbC123",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if Path::new(PORT_HELPER).exists() {
            assert_eq!(
                argv_check(&ok, "/d/uml-xterm-standin", &conf, "Virtual Console #8 (u)").unwrap(),
                "/tmp/xterm-pipeAbC123"
            );
        }
        assert!(argv_check(&ok, "/d/uml-xterm-standin", &conf, "Virtual Console #7 (u)").is_err());
        assert!(
            argv_check(
                &ok[..6],
                "/d/uml-xterm-standin",
                &conf,
                "Virtual Console #8 (u)"
            )
            .is_err()
        );
        let mut bad = ok.clone();
        bad[6] = "/tmp/xterm-pipe".into();
        assert!(
            argv_check(
                &bad,
                "/d/uml-xterm-standin",
                &conf,
                "Virtual Console #8 (u)"
            )
            .is_err()
        );
    }

    #[test]
    fn leading_numbers() {
        assert_eq!(
            numbers("143 0epollctl add err fd 20, Bad file descriptor"),
            "143 0"
        );
        assert_eq!(numbers("0 12"), "0 12");
        assert_eq!(numbers("x 1"), "");
    }

    #[test]
    fn scripts_are_valid_shell() {
        for s in [
            port_script("0123456789abcdef"),
            xterm_script("0123456789abcdef"),
        ] {
            let s = format!("{}{s}", block::PRELUDE);
            let st = Command::new("sh").args(["-n", "-c", &s]).status().unwrap();
            assert!(st.success());
        }
    }
}
