// SPDX-License-Identifier: GPL-2.0
//! The network cases: UML's network transports end to end on real boots,
//! each in a network namespace the case creates (and deletes, also when
//! anything fails), so that nothing leaves the namespace or its loopback.
//!
//! The kernel runs inside the namespace ([`crate::boot::BootSpec::netns`]);
//! the host's end of the transport lives there too, with the address
//! `10.199.1.1/24`. The guest (busybox) sets its interface to
//! `10.199.1.2`, pings the host three times, then sends 1 MiB of random
//! bytes to a TCP port of the harness and receives 1 MiB of the host's
//! pattern over one connection (busybox `nc`), printing the SHA-256 of both.
//! The vector cases then run iperf3 for [`IPERF_SECS`] seconds each way
//! (guest client to the host's server, then `-R`), see [`crate::iperf`].
//! A case passes if the payload exits 0, every ping was answered, both
//! transfers arrived intact, the iperf3 reports of both ends agree with at
//! least 1 MiB moved each way, and the kernel log has no warning, oops or
//! complaint of the vector driver about what it received (`dmesg` in the
//! guest: `quiet` keeps them off the console).
//!
//! - `host_net_tuntap`: the legacy driver, `eth0=tuntap,umlt0`, on a tap
//!   device (no iperf3).
//! - `host_net_vector_tap`: the vector driver's `tap` transport on the same
//!   kind of tap, with the HOWTO's `depth=128,gro=1`.
//! - `host_net_vector_raw`: the `raw` transport (two packet sockets) on one
//!   end of a veth pair whose other end has the host's address, as the
//!   UML HOWTO configures it (`depth=128,gro=1`).
//! - `host_net_vector_l2tpv3`: Ethernet over L2TPv3 over UDP on the
//!   namespace's loopback, with 64-bit cookies and the counter; the host's
//!   end is the harness's own decapsulating peer ([`crate::net_l2tp`]),
//!   since the host kernel may have no `l2tp_eth`. Every datagram UML
//!   sends must carry its session, cookie and a rising counter.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};

use crate::boot::{self, BootSpec, Guest};
use crate::iperf;
use crate::net_l2tp::{self, Session};
use crate::paths::Ctx;

/// The legacy tuntap transport's case.
pub const CASE: &str = "host_net_tuntap";
/// The vector driver's `tap` transport, through a tap.
pub const VECTOR_TAP_CASE: &str = "host_net_vector_tap";
/// The vector driver's `raw` transport, through a veth pair.
pub const VECTOR_RAW_CASE: &str = "host_net_vector_raw";
/// The vector driver's `l2tpv3` transport over UDP on loopback.
pub const VECTOR_L2TPV3_CASE: &str = "host_net_vector_l2tpv3";

/// How the guest reaches the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The legacy network driver, `eth0=tuntap,TAP`.
    Tuntap,
    /// The vector driver, `vec0:transport=tap,ifname=TAP`.
    VectorTap,
    /// The vector driver, `vec0:transport=raw,ifname=VETH`.
    VectorRaw,
    /// The vector driver, `vec0:transport=l2tpv3,udp=1,...` on loopback.
    VectorL2tpv3,
}

/// Every network case, in the order the suite runs them.
pub const CASES: &[(&str, Transport)] = &[
    (CASE, Transport::Tuntap),
    (VECTOR_TAP_CASE, Transport::VectorTap),
    (VECTOR_RAW_CASE, Transport::VectorRaw),
    (VECTOR_L2TPV3_CASE, Transport::VectorL2tpv3),
];

impl Transport {
    fn guest_if(self) -> &'static str {
        match self {
            Transport::Tuntap => "eth0",
            _ => "vec0",
        }
    }

    /// Short name, for namespace names.
    fn tag(self) -> &'static str {
        match self {
            Transport::Tuntap => "tuntap",
            Transport::VectorTap => "tap",
            Transport::VectorRaw => "raw",
            Transport::VectorL2tpv3 => "l2tp",
        }
    }

    /// Whether the case moves data with iperf3 too.
    fn iperf(self) -> bool {
        self != Transport::Tuntap
    }
}

/// The host's address in every namespace, and the guest's.
pub const HOST_ADDR: Ipv4Addr = Ipv4Addr::new(10, 199, 1, 1);
pub const GUEST_ADDR: Ipv4Addr = Ipv4Addr::new(10, 199, 1, 2);
/// Interface names inside the namespaces.
pub const TAP: &str = "umlt0";
pub const VETH_HOST: &str = "umlv0";
pub const VETH_UML: &str = "umlv1";
const L2TP_TAP: &str = "umll0";
/// UDP ports of the L2TPv3 tunnel on the namespace's loopback: UML's
/// (`srcport`) and the host peer's (`dstport`).
const L2TP_UML_PORT: u16 = 1706;
const L2TP_PEER_PORT: u16 = 1707;
/// The tunnel's session: sessions fit the `int` the kernel half reads.
const L2TP_SESSION: Session = Session {
    rx_session: 0x1a2b_3c4d,
    rx_cookie: 0x0123_4567_89ab_cdef,
    tx_session: 0x4d3c_2b1a,
    tx_cookie: 0x7edc_ba98_7654_3210,
    cookie64: true,
    counter: true,
};
/// TCP port of the harness's transfer server.
const XFER_PORT: u16 = 7070;
/// Bytes sent each way over the TCP connection.
const XFER_LEN: usize = 1 << 20;
/// Pings the guest sends to the host.
const PINGS: u32 = 3;
/// Seconds of each iperf3 test in the cases.
pub const IPERF_SECS: u32 = 2;
/// The least an iperf3 test of the cases must move.
const IPERF_MIN_BYTES: u64 = 1 << 20;
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

/// Prefix of the harness's namespaces: `umlh-<tag>-<pid>-<n>`.
const NS_PREFIX: &str = "umlh-";

/// A network namespace of the harness (`ip netns add`), deleted when
/// dropped.
pub struct NetNs {
    name: String,
    deleted: bool,
}

impl NetNs {
    /// Creates `umlh-<tag>-<pid>-<n>` with its loopback up. Namespaces of
    /// harness processes that no longer exist are deleted first.
    pub fn create(tag: &str) -> Result<NetNs> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        delete_stale();
        let name = format!(
            "{NS_PREFIX}{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name])?;
        let ns = NetNs {
            name,
            deleted: false,
        };
        ns.ip(&["link", "set", "dev", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`, for [`BootSpec::netns`].
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// `ip -n <name> ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        ip(&[&["-n", self.name.as_str()][..], args].concat())
    }

    /// Runs `f` on a thread of its own inside the namespace: sockets and
    /// devices it opens belong to the namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        let ns = File::open(self.path())
            .with_context(|| format!("opening {}", self.path().display()))?;
        std::thread::scope(|s| {
            s.spawn(move || {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .context("setns into the network namespace")?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow!("a thread in the network namespace panicked")))
        })
    }

    /// Spawns `cmd` inside the namespace.
    pub fn spawn(&self, cmd: &mut Command) -> Result<Child> {
        let ns = File::open(self.path())
            .with_context(|| format!("opening {}", self.path().display()))?;
        // SAFETY: runs in the forked child before exec: one system call
        // through a nix wrapper that neither allocates nor locks, on a
        // descriptor the closure owns.
        unsafe {
            cmd.pre_exec(move || {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                Ok(())
            });
        }
        cmd.spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))
    }

    /// Deletes the namespace and checks that it is gone.
    pub fn delete(&mut self) -> Result<()> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        ip(&["netns", "del", &self.name])?;
        if self.path().exists() {
            bail!(
                "{} still exists after `ip netns del`",
                self.path().display()
            );
        }
        Ok(())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            eprintln!(
                "uml-harness: deleting network namespace {}: {e:#}",
                self.name
            );
        }
    }
}

/// Deletes the namespaces `umlh-<tag>-<pid>-<n>` whose harness process is
/// gone (a run that was killed).
fn delete_stale() {
    let Ok(rd) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = stale_pid(&name) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

/// The pid in a harness namespace name.
fn stale_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NS_PREFIX)?;
    let mut parts = rest.rsplitn(3, '-');
    let _n: u32 = parts.next()?.parse().ok()?;
    parts.next()?.parse().ok()
}

/// A link in a namespace, deleted when dropped.
pub(crate) struct Link {
    ns: String,
    name: String,
    /// The other end of a veth pair, which goes with it.
    peer: Option<String>,
    deleted: bool,
}

impl Link {
    fn guard(ns: &NetNs, name: &str, peer: Option<&str>) -> Link {
        Link {
            ns: ns.name().to_string(),
            name: name.to_string(),
            peer: peer.map(str::to_string),
            deleted: false,
        }
    }

    /// A persistent tap device `name`, up, with `addr`/24.
    pub(crate) fn tap(ns: &NetNs, name: &str, addr: Ipv4Addr) -> Result<Link> {
        ns.ip(&["tuntap", "add", "dev", name, "mode", "tap"])?;
        let link = Link::guard(ns, name, None);
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", name])?;
        ns.ip(&["link", "set", "dev", name, "up"])?;
        Ok(link)
    }

    /// A veth pair: `host` up with `addr`/24, `peer` up without an address.
    pub(crate) fn veth(ns: &NetNs, host: &str, peer: &str, addr: Ipv4Addr) -> Result<Link> {
        ns.ip(&["link", "add", host, "type", "veth", "peer", "name", peer])?;
        let link = Link::guard(ns, host, Some(peer));
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", host])?;
        ns.ip(&["link", "set", "dev", host, "up"])?;
        ns.ip(&["link", "set", "dev", peer, "up"])?;
        Ok(link)
    }

    /// Deletes the link and checks that it (and a veth's peer) is gone.
    pub(crate) fn delete(&mut self) -> Result<()> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        ip(&["-n", &self.ns, "link", "del", "dev", &self.name])?;
        for n in std::iter::once(&self.name).chain(&self.peer) {
            if ip(&["-n", &self.ns, "link", "show", "dev", n]).is_ok() {
                bail!("{n} still exists in {} after `ip link del`", self.ns);
            }
        }
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            eprintln!("uml-harness: deleting {} in {}: {e:#}", self.name, self.ns);
        }
    }
}

/// The host's end of a transport inside a namespace.
struct HostEnd {
    links: Vec<Link>,
    relay: Option<net_l2tp::Relay>,
    /// The kernel argument that attaches UML to it.
    kernel_arg: String,
}

impl HostEnd {
    fn create(ns: &NetNs, t: Transport) -> Result<HostEnd> {
        let (links, relay, kernel_arg) = match t {
            Transport::Tuntap => (
                vec![Link::tap(ns, TAP, HOST_ADDR)?],
                None,
                format!("eth0=tuntap,{TAP}"),
            ),
            Transport::VectorTap => (
                vec![Link::tap(ns, TAP, HOST_ADDR)?],
                None,
                // As the HOWTO has it: without gro=1 the kernel half drops
                // the host's GSO frames ("Incoming GSO frames and GRO
                // disabled") and TCP from the host crawls.
                format!("vec0:transport=tap,ifname={TAP},depth=128,gro=1"),
            ),
            Transport::VectorRaw => (
                vec![Link::veth(ns, VETH_HOST, VETH_UML, HOST_ADDR)?],
                None,
                format!("vec0:transport=raw,ifname={VETH_UML},depth=128,gro=1"),
            ),
            Transport::VectorL2tpv3 => {
                let link = Link::tap(ns, L2TP_TAP, HOST_ADDR)?;
                let (sock, tap) = ns.run(|| {
                    let sock =
                        UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, L2TP_PEER_PORT))
                            .context("binding the L2TPv3 peer's UDP socket")?;
                    Ok((sock, net_l2tp::attach_tap(L2TP_TAP)?))
                })?;
                let uml = SocketAddrV4::new(Ipv4Addr::LOCALHOST, L2TP_UML_PORT);
                let relay = net_l2tp::Relay::start(sock, tap, uml, L2TP_SESSION)?;
                (
                    vec![link],
                    Some(relay),
                    format!(
                        "vec0:transport=l2tpv3,udp=1,src=127.0.0.1,dst=127.0.0.1,\
                         srcport={L2TP_UML_PORT},dstport={L2TP_PEER_PORT},{}",
                        L2TP_SESSION.uml_options()
                    ),
                )
            }
        };
        Ok(HostEnd {
            links,
            relay,
            kernel_arg,
        })
    }

    /// Stops the relay (returning what it saw) and deletes the links.
    fn close(mut self) -> (Option<net_l2tp::Stats>, Result<()>) {
        let stats = self.relay.take().map(net_l2tp::Relay::finish);
        let mut r = Ok(());
        for l in &mut self.links {
            let d = l.delete();
            if r.is_ok() {
                r = d;
            }
        }
        (stats, r)
    }
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

/// The guest's script: configure the interface, ping the host, one TCP
/// round trip, then (with `iperf_out`, the host directory for the reports)
/// iperf3 each way.
fn payload(guest_if: &str, iperf_out: Option<&Path>) -> String {
    let mut s = format!(
        "set -e; ifconfig {guest_if} {GUEST_ADDR} netmask 255.255.255.0 up; \
         ping -c {PINGS} -W 2 {HOST_ADDR}; \
         dd if=/dev/urandom of=/tmp/up bs=4096 count={blocks} 2>/dev/null; \
         echo \"{MARK} up $(sha256sum </tmp/up)\"; \
         timeout 60 nc {HOST_ADDR} {XFER_PORT} </tmp/up >/tmp/down; \
         echo \"{MARK} down $(wc -c </tmp/down) $(sha256sum </tmp/down)\"; ",
        blocks = XFER_LEN / 4096
    );
    if let Some(out) = iperf_out {
        s.push_str(&iperf::guest_setup(out));
        // The interface's byte counters around the upload: see
        // `no_echo`.
        s.push_str(&format!(
            "ctr() {{ cat /sys/class/net/{guest_if}/statistics/$1_bytes; }}; \
             rx0=$(ctr rx); tx0=$(ctr tx); "
        ));
        s.push_str(&iperf::guest_run("up", HOST_ADDR, IPERF_SECS, false));
        s.push_str(&format!(
            "echo \"{MARK} upload-bytes $(($(ctr rx) - rx0)) $(($(ctr tx) - tx0))\"; "
        ));
        s.push_str(&iperf::guest_run("down", HOST_ADDR, IPERF_SECS, true));
    }
    s.push_str(&format!(
        "echo \"{MARK} kwarn $(dmesg | grep -cE '{KERNEL_COMPLAINTS}')\"; \
         dmesg | grep -E '{KERNEL_COMPLAINTS}' | head -3"
    ));
    s
}

/// Kernel messages that fail a case: warnings and oopses (which `quiet`
/// keeps off the console), and the vector driver's complaints about what
/// it received.
const KERNEL_COMPLAINTS: &str =
    "WARNING:|BUG:|Oops|Incoming GSO|uml_l2tpv3|uml-vector.*(error|fail)";

/// The kernel log's count of [`KERNEL_COMPLAINTS`] must be 0.
fn no_complaints(console: &str) -> Result<()> {
    let n = mark_words(console, "kwarn")
        .and_then(|w| w.first()?.parse::<u32>().ok())
        .with_context(|| format!("no `{MARK} kwarn N` line on the console"))?;
    if n > 0 {
        bail!("the kernel logged {n} message(s) matching `{KERNEL_COMPLAINTS}`");
    }
    Ok(())
}

/// While the guest uploads, it receives only the host's acknowledgements,
/// a few percent of what it sends. A transport that hands the guest its
/// own frames back (the `raw` transport did, before patch 0023, through
/// the host's packet taps) makes it receive as much as it sends.
/// Returns the fraction received.
fn no_echo(console: &str) -> Result<f64> {
    let w = mark_words(console, "upload-bytes")
        .with_context(|| format!("no `{MARK} upload-bytes RX TX` line on the console"))?;
    let [rx, tx] = w.as_slice() else {
        bail!("`{MARK} upload-bytes` has {} words, expected 2", w.len());
    };
    let (rx, tx): (u64, u64) = (rx.parse()?, tx.parse()?);
    if tx == 0 {
        bail!("the interface's tx_bytes did not grow during the upload");
    }
    let fraction = rx as f64 / tx as f64;
    if fraction > MAX_UPLOAD_RX_FRACTION {
        bail!(
            "during the upload the guest received {rx} bytes for {tx} sent ({:.0}%): it reads \
             back frames it sent",
            fraction * 100.0
        );
    }
    Ok(fraction)
}

/// What [`no_echo`] allows: TCP acknowledges every second segment or
/// more, 66 bytes for up to 64 KiB with TSO, 1500 without.
const MAX_UPLOAD_RX_FRACTION: f64 = 0.1;

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

/// The case `name` on `kernel`: Ok(diagnostic), Ok("skipped: why") or the
/// failure.
pub fn run_case(ctx: &Ctx, kernel: &Path, t: Transport) -> Result<String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok("skipped: needs root to create a network namespace".into());
    }
    if t != Transport::VectorRaw && !Path::new("/dev/net/tun").exists() {
        return Ok("skipped: no /dev/net/tun on this host".into());
    }
    if t.iperf() {
        iperf::require()?;
    }
    // Build (or find) the initramfs outside the namespace: it may run cargo.
    crate::initramfs::ensure(ctx)?;
    let t0 = Instant::now();
    let mut ns = NetNs::create(t.tag())?;
    let fact = exchange_in(ctx, kernel, &ns, t);
    let name = ns.name().to_string();
    let deleted = ns
        .delete()
        .with_context(|| format!("deleting network namespace {name}"));
    let fact = fact?;
    deleted?;
    Ok(format!(
        "{fact}; namespace {name} deleted; {:.1}s",
        t0.elapsed().as_secs_f64()
    ))
}

/// The host's end, the boot and the checks, inside `ns`.
fn exchange_in(ctx: &Ctx, kernel: &Path, ns: &NetNs, t: Transport) -> Result<String> {
    let end = HostEnd::create(ns, t).context("setting up the host's end")?;
    let result = boot_and_check(ctx, kernel, ns, t, &end.kernel_arg);
    let (stats, closed) = end.close();
    // A broken tunnel shows in what the peer refused.
    let mut fact = match (result, &stats) {
        (Err(e), Some(st)) => {
            let first = st.first_bad.as_deref().unwrap_or("none refused");
            return Err(e.context(format!("{} (first refused: {first})", st.summary())));
        }
        (r, _) => r?,
    };
    closed.context("deleting the host's links")?;
    if let Some(st) = stats {
        fact.push_str("; ");
        fact.push_str(&check_l2tp(&st)?);
    }
    Ok(fact)
}

/// What the L2TPv3 peer saw must be a clean tunnel both ways.
fn check_l2tp(st: &net_l2tp::Stats) -> Result<String> {
    if let Some(e) = &st.error {
        bail!("the L2TPv3 peer failed: {e} ({})", st.summary());
    }
    if st.bad > 0 {
        bail!(
            "the L2TPv3 peer refused {} datagram(s) from UML, the first: {} ({})",
            st.bad,
            st.first_bad.as_deref().unwrap_or("?"),
            st.summary()
        );
    }
    if st.frames_in == 0 || st.frames_out == 0 {
        bail!(
            "the L2TPv3 tunnel carried nothing one way: {}",
            st.summary()
        );
    }
    if st.counter_zero == st.frames_in {
        bail!(
            "every datagram from UML had counter 0 (pinned) although counter=1 was asked \
             without pin_counter: {}",
            st.summary()
        );
    }
    if st.counter_not_rising > 0 {
        bail!(
            "UML's counter did not rise {} time(s): {}",
            st.counter_not_rising,
            st.summary()
        );
    }
    Ok(st.summary())
}

fn boot_and_check(
    ctx: &Ctx,
    kernel: &Path,
    ns: &NetNs,
    t: Transport,
    kernel_arg: &str,
) -> Result<String> {
    let out_dir = if t.iperf() {
        Some(
            tempfile::Builder::new()
                .prefix("uml-net-")
                .tempdir()
                .context("creating the iperf3 report directory")?,
        )
    } else {
        None
    };
    let iperf_server = if t.iperf() {
        Some(iperf::Server::start(ns, None)?)
    } else {
        None
    };

    let listener = ns.run(|| {
        TcpListener::bind(SocketAddrV4::new(HOST_ADDR, XFER_PORT))
            .with_context(|| format!("listening on {HOST_ADDR}:{XFER_PORT}"))
    })?;
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
            .name("net-xfer-server".into())
            .spawn(move || serve(listener, down, stop, BOOT_LIMIT))
            .context("spawning the TCP server")?
    };
    let cmd = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        payload(t.guest_if(), out_dir.as_ref().map(|d| d.path())),
    ];
    let mut spec = BootSpec::new(kernel.to_path_buf(), cmd);
    spec.extra_args = vec!["quiet".into(), kernel_arg.to_string()];
    spec.timeout = BOOT_LIMIT;
    spec.netns = Some(ns.path());
    let booted = Guest::start(&spec, ctx).and_then(Guest::wait);
    stop.store(true, Ordering::Relaxed);
    let served = server
        .join()
        .unwrap_or_else(|_| Err(anyhow!("the TCP server thread panicked")));
    let iperf_server = iperf_server.map(iperf::Server::finish).transpose();
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
        let iperf = if outcome.exit_code == 21 {
            "; iperf3 failed in the guest, its report is above"
        } else {
            ""
        };
        bail!(
            "the payload exited with status {} ({ping}){iperf}\n{}",
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
    let served =
        served.map_err(|e| anyhow!("the host's end of the TCP transfer: {e:#}\n{}", quote()))?;
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
    no_complaints(console).map_err(|e| anyhow!("{e:#}\n{}", quote()))?;
    let mut fact = format!("{summary}; TCP {} KiB each way intact", XFER_LEN / 1024);
    if let (Some(dir), Some(server)) = (&out_dir, iperf_server?) {
        fact.push_str("; iperf3 ");
        let checked =
            check_iperf(dir.path(), &server).map_err(|e| anyhow!("{e:#}\n{}", quote()))?;
        fact.push_str(&checked);
        let echo = no_echo(console).map_err(|e| anyhow!("{e:#}\n{}", quote()))?;
        fact.push_str(&format!(
            "; received {:.2}% of the bytes sent while uploading",
            echo * 100.0
        ));
    }
    Ok(fact)
}

/// The guest's two iperf3 reports against the server's.
fn check_iperf(dir: &Path, server: &(Vec<iperf::ServerRun>, Vec<String>)) -> Result<String> {
    let (runs, errors) = server;
    if !errors.is_empty() {
        bail!("the host's iperf3 server reported: {}", errors.join("; "));
    }
    let mut out = Vec::new();
    for (name, reverse, what) in [("up", false, "guest->host"), ("down", true, "host->guest")] {
        let c = iperf::read_client(dir, name)?;
        let s = runs
            .iter()
            .find(|r| r.reverse == reverse)
            .with_context(|| format!("the host's iperf3 server reported no {what} test"))?;
        out.push(iperf::check_pair(what, &c, s, IPERF_MIN_BYTES)?);
    }
    Ok(out.join(", "))
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
        let out = Path::new("/tmp/uml-net-XXXXXXXXXXXX");
        for p in [payload("eth0", None), payload("vec0", Some(out))] {
            let cmd = vec!["/bin/sh".to_string(), "-c".to_string(), p];
            let enc = crate::protocol::encode_cmd(&cmd).unwrap();
            assert!(enc.len() < 3000, "{}", enc.len());
        }
        let p = payload("vec0", Some(out));
        assert!(p.contains("ipf -c 10.199.1.1 -t 2 >/out/up.json"), "{p}");
        assert!(p.contains("-t 2 -R >/out/down.json"), "{p}");
    }

    #[test]
    fn kernel_arguments() {
        // The l2tpv3 options as UML reads them: UML sends what the peer
        // receives.
        let o = L2TP_SESSION.uml_options();
        assert!(o.starts_with("rx_session=0x4d3c2b1a,tx_session=0x1a2b3c4d,cookie64=1,"));
        assert!(o.ends_with(",counter=1"));
        assert!(L2TP_SESSION.rx_session <= i32::MAX as u32);
        assert!(L2TP_SESSION.tx_session <= i32::MAX as u32);
    }

    #[test]
    fn kernel_complaints() {
        assert!((no_echo("@@NET upload-bytes 10 1000\n").unwrap() - 0.01).abs() < 1e-9);
        let e = no_echo("@@NET upload-bytes 1000 1000\n").unwrap_err();
        assert!(e.to_string().contains("reads back"), "{e}");
        assert!(no_echo("@@NET upload-bytes 0 0\n").is_err());
        assert!(no_echo("@@NET upload-bytes 5\n").is_err());
        assert!(no_echo("").is_err());
        no_complaints("x\n@@NET kwarn 0\n").unwrap();
        let e = no_complaints("@@NET kwarn 2\n").unwrap_err();
        assert!(e.to_string().contains("logged 2 message(s)"), "{e}");
        assert!(no_complaints("@@NET kwarn\n").is_err());
        assert!(no_complaints("").is_err());
    }

    #[test]
    fn stale_namespace_names() {
        assert_eq!(stale_pid("umlh-tap-1234-0"), Some(1234));
        assert_eq!(stale_pid("umlh-bench-77-12"), Some(77));
        assert_eq!(stale_pid("umlh-x-y-0"), None);
        assert_eq!(stale_pid("other-1-2"), None);
    }

    #[test]
    fn l2tp_checks() {
        let good = net_l2tp::Stats {
            frames_in: 10,
            frames_out: 9,
            last_counter: Some(10),
            ..Default::default()
        };
        check_l2tp(&good).unwrap();
        let pinned = net_l2tp::Stats {
            counter_zero: 10,
            ..good.clone()
        };
        assert!(
            check_l2tp(&pinned)
                .unwrap_err()
                .to_string()
                .contains("pinned")
        );
        let bad = net_l2tp::Stats {
            bad: 1,
            first_bad: Some("session 0x1".into()),
            ..good.clone()
        };
        assert!(
            check_l2tp(&bad)
                .unwrap_err()
                .to_string()
                .contains("session 0x1")
        );
        let silent = net_l2tp::Stats {
            frames_out: 0,
            ..good
        };
        assert!(check_l2tp(&silent).is_err());
    }
}
