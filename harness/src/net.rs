// SPDX-License-Identifier: GPL-2.0
//! `host_net_tuntap`: UML's legacy tuntap network transport
//! (`eth0=tuntap,<tap>`, a fixed, preconfigured host device) end to end on a
//! real boot.
//!
//! The harness creates a tap device `umlt<N>` with `ip` (iproute2), gives it
//! `10.199.X.1/24` (N and X from the harness's pid, so that parallel runs do
//! not clash) and listens on a TCP port there. The guest (busybox) sets
//! `eth0` to `10.199.X.2`, pings the host three times, then sends 1 MiB of
//! random bytes to the port and receives 1 MiB of the host's pattern over one
//! connection (busybox `nc`), printing the SHA-256 of both. The case passes
//! if the payload exits 0, every ping was answered and both transfers arrived
//! intact. The tap is deleted afterwards, also when anything fails.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::boot::{self, BootSpec, Guest};
use crate::paths::Ctx;

/// The case's name in the suite.
pub const CASE: &str = "host_net_tuntap";
/// The vector driver's `tap` transport, through a host tap.
pub const VECTOR_TAP_CASE: &str = "host_net_vector_tap";

/// How the guest reaches the host's tap: the kernel argument for tap
/// device `tap`, and the guest's interface.
#[derive(Clone, Copy)]
pub enum TapDriver {
    /// The legacy network driver, `eth0=tuntap,TAP`.
    Tuntap,
    /// The vector driver, `vec0:transport=tap,ifname=TAP`.
    VectorTap,
}

impl TapDriver {
    fn kernel_arg(self, tap: &str) -> String {
        match self {
            TapDriver::Tuntap => format!("eth0=tuntap,{tap}"),
            TapDriver::VectorTap => format!("vec0:transport=tap,ifname={tap}"),
        }
    }

    fn guest_if(self) -> &'static str {
        match self {
            TapDriver::Tuntap => "eth0",
            TapDriver::VectorTap => "vec0",
        }
    }
}
/// Bytes sent each way over the TCP connection.
const XFER_LEN: usize = 1 << 20;
/// Pings the guest sends to the host.
const PINGS: u32 = 3;
/// Boot plus payload.
const BOOT_LIMIT: Duration = Duration::from_secs(180);
/// Console lines quoted with a failure.
const TAIL: usize = 25;
/// Prefix of the payload's result lines.
const MARK: &str = "@@NET";

/// Runs `ip ARGS`; fails with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (package iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A tap device of the harness, deleted when dropped.
struct Tap {
    name: String,
    deleted: bool,
}

impl Tap {
    /// Creates `name` as a persistent tap device with `addr`/24, up.
    fn create(name: &str, addr: Ipv4Addr) -> Result<Tap> {
        ip(&["tuntap", "add", "dev", name, "mode", "tap"])?;
        // From here on the guard deletes the device, whatever fails next.
        let tap = Tap {
            name: name.to_string(),
            deleted: false,
        };
        ip(&["addr", "add", &format!("{addr}/24"), "dev", name])?;
        ip(&["link", "set", "dev", name, "up"])?;
        Ok(tap)
    }

    /// Deletes the device and checks that it is gone.
    fn delete(&mut self) -> Result<()> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        ip(&["link", "del", "dev", &self.name])?;
        if Path::new("/sys/class/net").join(&self.name).exists() {
            bail!("tap {} still exists after `ip link del`", self.name);
        }
        Ok(())
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            eprintln!("uml-harness: deleting tap {}: {e:#}", self.name);
        }
    }
}

/// A tap name not in use on the host (`umlt<pid%10000>`, or the next free).
fn free_tap_name(pid: u32) -> Result<String> {
    (0..100)
        .map(|i| format!("umlt{}", (pid + i) % 10_000))
        .find(|n| !Path::new("/sys/class/net").join(n).exists())
        .context("no free tap name umltNNNN")
}

/// An `X` for `10.199.X.0/24` (from the pid) that no host address uses yet.
fn free_subnet(pid: u32) -> Result<u8> {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .context("running ip (package iproute2)")?;
    let used = String::from_utf8_lossy(&out.stdout).into_owned();
    (0..254u32)
        .map(|i| ((pid + i) % 254 + 1) as u8)
        .find(|x| !used.contains(&format!(" 10.199.{x}.")))
        .context("every 10.199.X.0/24 is in use on the host")
}

/// What the host's end of the TCP transfer saw.
struct HostXfer {
    /// Bytes received from the guest and their SHA-256.
    received: usize,
    received_sha: String,
    /// Bytes sent to the guest.
    sent: usize,
}

fn sha256_hex(b: &[u8]) -> String {
    crate::kernel_src::hex(&Sha256::digest(b))
}

/// Accepts one connection on `listener` (until `stop` or `limit`), reads
/// the guest's bytes to EOF, then sends `down` and closes.
fn serve(
    listener: TcpListener,
    down: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> Result<HostXfer> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + limit;
    let mut conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if stop.load(Ordering::Relaxed) {
                    bail!("the guest never connected (it ended first)");
                }
                if Instant::now() > deadline {
                    bail!("the guest never connected within {}s", limit.as_secs());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e).context("accepting the guest's connection"),
        }
    };
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    conn.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut up = Vec::with_capacity(XFER_LEN);
    conn.read_to_end(&mut up)
        .with_context(|| format!("reading from the guest (after {} bytes)", up.len()))?;
    conn.write_all(&down).context("sending to the guest")?;
    conn.shutdown(Shutdown::Both)
        .context("closing the connection")?;
    Ok(HostXfer {
        received: up.len(),
        received_sha: sha256_hex(&up),
        sent: down.len(),
    })
}

/// The guest's script: configure eth0, ping the host, one TCP round trip.
fn payload(guest_if: &str, guest: Ipv4Addr, host: Ipv4Addr, port: u16) -> String {
    format!(
        "set -e; ifconfig {guest_if} {guest} netmask 255.255.255.0 up; \
         ping -c {PINGS} -W 2 {host}; \
         dd if=/dev/urandom of=/tmp/up bs=4096 count={blocks} 2>/dev/null; \
         echo \"{MARK} up $(sha256sum </tmp/up)\"; \
         timeout 60 nc {host} {port} </tmp/up >/tmp/down; \
         echo \"{MARK} down $(wc -c </tmp/down) $(sha256sum </tmp/down)\"",
        blocks = XFER_LEN / 4096
    )
}

/// Busybox ping's statistics: (transmitted, received, the two summary lines).
fn ping_stats(console: &str) -> Option<(u32, u32, String)> {
    let lines: Vec<&str> = console.lines().collect();
    let i = lines
        .iter()
        .rposition(|l| l.contains("packets transmitted"))?;
    let mut words = lines[i].split(|c: char| c == ',' || c.is_whitespace());
    let tx = words.find(|w| !w.is_empty())?.parse().ok()?;
    let rx_part = lines[i].split(',').nth(1)?;
    let rx = rx_part.split_whitespace().next()?.parse().ok()?;
    let mut summary = lines[i].trim().to_string();
    if let Some(rt) = lines.get(i + 1).filter(|l| l.contains("round-trip")) {
        summary.push_str("; ");
        summary.push_str(rt.trim());
    }
    Some((tx, rx, summary))
}

/// The words after `@@NET <what>` on the console.
fn mark_words(console: &str, what: &str) -> Option<Vec<String>> {
    let needle = format!("{MARK} {what} ");
    let line = console.lines().find_map(|l| {
        l.find(&needle)
            .map(|i| l[i + needle.len()..].trim().to_string())
    })?;
    Some(line.split_whitespace().map(String::from).collect())
}

/// The case on `kernel`: Ok(diagnostic), Ok("skipped: why") or the failure.
pub fn tuntap_case(ctx: &Ctx, kernel: &Path) -> Result<String> {
    tap_case(ctx, kernel, TapDriver::Tuntap)
}

/// [`VECTOR_TAP_CASE`]: the same exchange through the vector driver.
pub fn vector_tap_case(ctx: &Ctx, kernel: &Path) -> Result<String> {
    tap_case(ctx, kernel, TapDriver::VectorTap)
}

fn tap_case(ctx: &Ctx, kernel: &Path, driver: TapDriver) -> Result<String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok("skipped: needs root to create a tap device".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Ok("skipped: no /dev/net/tun on this host".into());
    }
    let pid = std::process::id();
    let name = free_tap_name(pid)?;
    let x = free_subnet(pid)?;
    let host = Ipv4Addr::new(10, 199, x, 1);
    let guest_addr = Ipv4Addr::new(10, 199, x, 2);
    let t = Instant::now();
    let mut tap = Tap::create(&name, host).with_context(|| format!("creating tap {name}"))?;
    let result = run_with_tap(ctx, kernel, driver, &name, host, guest_addr);
    let deleted = tap.delete().with_context(|| format!("deleting tap {name}"));
    let fact = result?;
    deleted?;
    Ok(format!(
        "{fact}; tap {name} ({host}/24) deleted; {:.1}s",
        t.elapsed().as_secs_f64()
    ))
}

fn run_with_tap(
    ctx: &Ctx,
    kernel: &Path,
    driver: TapDriver,
    tap: &str,
    host: Ipv4Addr,
    guest_addr: Ipv4Addr,
) -> Result<String> {
    let listener = TcpListener::bind(SocketAddrV4::new(host, 0))
        .with_context(|| format!("listening on {host}"))?;
    let port = listener.local_addr()?.port();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id());
    let down = Arc::new(crate::suite::pattern_bytes(seed, XFER_LEN));
    let down_sha = sha256_hex(&down);
    let stop = Arc::new(AtomicBool::new(false));
    let server: JoinHandle<Result<HostXfer>> = {
        let (down, stop) = (Arc::clone(&down), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("net-tuntap-server".into())
            .spawn(move || serve(listener, down, stop, BOOT_LIMIT))
            .context("spawning the TCP server")?
    };

    let cmd = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        payload(driver.guest_if(), guest_addr, host, port),
    ];
    let mut spec = BootSpec::new(kernel.to_path_buf(), cmd);
    spec.extra_args = vec!["quiet".into(), driver.kernel_arg(tap)];
    spec.timeout = BOOT_LIMIT;
    let booted = Guest::start(&spec, ctx).and_then(Guest::wait);
    stop.store(true, Ordering::Relaxed);
    let served = server
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the TCP server thread panicked")));
    let outcome = booted?;
    let console = &outcome.console;
    let quote = || {
        format!(
            "--- last {TAIL} console lines ---\n{}",
            boot::tail(console, TAIL)
        )
    };

    let stats = ping_stats(console);
    if outcome.exit_code != 0 {
        let ping = stats
            .as_ref()
            .map_or("no ping statistics".into(), |s| s.2.clone());
        bail!(
            "the payload exited with status {} ({ping})\n{}",
            outcome.exit_code,
            quote()
        );
    }
    let Some((tx, rx, summary)) = stats else {
        bail!("no ping statistics on the console\n{}", quote());
    };
    if tx != PINGS || rx != PINGS {
        bail!(
            "{rx} of {tx} pings answered, expected {PINGS} of {PINGS}: {summary}\n{}",
            quote()
        );
    }
    let served = served
        .map_err(|e| anyhow::anyhow!("the host's end of the TCP transfer: {e:#}\n{}", quote()))?;
    let up = mark_words(console, "up")
        .with_context(|| format!("no `{MARK} up` line on the console\n{}", quote()))?;
    if up.first() != Some(&served.received_sha) || served.received != XFER_LEN {
        bail!(
            "guest->host: the host received {} bytes with SHA-256 {}, the guest sent {XFER_LEN} \
             with {}\n{}",
            served.received,
            served.received_sha,
            up.first().map_or("?", String::as_str),
            quote()
        );
    }
    let got = mark_words(console, "down")
        .with_context(|| format!("no `{MARK} down` line on the console\n{}", quote()))?;
    let want_len = served.sent.to_string();
    if got.first() != Some(&want_len) || got.get(1) != Some(&down_sha) {
        bail!(
            "host->guest: the guest received {} bytes with SHA-256 {}, the host sent {want_len} \
             with {down_sha}\n{}",
            got.first().map_or("?", String::as_str),
            got.get(1).map_or("?", String::as_str),
            quote()
        );
    }
    Ok(format!(
        "{summary}; TCP {} KiB each way intact",
        XFER_LEN / 1024
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_busybox_ping_statistics() {
        let console = "\
PING 10.199.3.1 (10.199.3.1): 56 data bytes
64 bytes from 10.199.3.1: seq=0 ttl=64 time=0.512 ms

--- 10.199.3.1 ping statistics ---
3 packets transmitted, 2 packets received, 33% packet loss
round-trip min/avg/max = 0.301/0.406/0.512 ms
@@NET up 0123abcd  -
";
        let (tx, rx, s) = ping_stats(console).unwrap();
        assert_eq!((tx, rx), (3, 2));
        assert_eq!(
            s,
            "3 packets transmitted, 2 packets received, 33% packet loss; \
             round-trip min/avg/max = 0.301/0.406/0.512 ms"
        );
        assert_eq!(mark_words(console, "up").unwrap(), vec!["0123abcd", "-"]);
        assert!(mark_words(console, "down").is_none());
        assert!(ping_stats("nothing\n").is_none());
    }

    #[test]
    fn payload_fits_the_command_line() {
        let p = payload(
            "eth0",
            Ipv4Addr::new(10, 199, 254, 2),
            Ipv4Addr::new(10, 199, 254, 1),
            65535,
        );
        let cmd = vec!["/bin/sh".to_string(), "-c".to_string(), p];
        let enc = crate::protocol::encode_cmd(&cmd).unwrap();
        assert!(enc.len() < 1500, "{}", enc.len());
    }
}
