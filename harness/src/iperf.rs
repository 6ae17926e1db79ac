// SPDX-License-Identifier: GPL-2.0
//! iperf3 between a guest and a network namespace of the harness: the
//! host's server runs in the namespace, the guest runs the host's own
//! client (Debian's iperf3) through a read-only hostfs mount of `/` and the
//! host's dynamic loader, as `bench-block` runs fio, and writes its JSON
//! report to a writable hostfs mount of a host directory.
//!
//! What the two reports say is checked against each other
//! ([`check_pair`]): each side counts only its own bytes (the server, what
//! it received, or sent with `-R`), and the client's report carries the
//! server's count too, which must be the server's own figure exactly. The
//! receiver's count may be short of the sender's by what was still in
//! flight when the test stopped, never above it.

use std::io::Read;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::bench_block::host_exec;
use crate::net::NetNs;

/// The host's iperf3 (Debian package iperf3).
pub const HOST_IPERF3: &str = "/usr/bin/iperf3";
/// The server's port inside the namespace.
pub const PORT: u16 = 5201;
/// Where the guest mounts the host's `/` (read-only) and the output directory.
const GUEST_OUT: &str = "/out";

/// Fails, naming the package, if the host has no iperf3.
pub fn require() -> Result<()> {
    if !Path::new(HOST_IPERF3).is_file() {
        bail!("{HOST_IPERF3} is missing: run `uml-harness setup` (it installs iperf3)");
    }
    Ok(())
}

/// Guest shell text that mounts the host's `/` read-only on `/host` and
/// `out` (a host directory) on `/out`, and defines the function `ipf`
/// (iperf3 as a client of `PORT`, JSON output, no interval reports).
pub fn guest_setup(out: &Path) -> String {
    format!(
        "mkdir -p /host {GUEST_OUT}; mount -t hostfs -o ro,/ none /host || exit 10; \
         mount -t hostfs -o {} none {GUEST_OUT} || exit 10; \
         ipf() {{ {} -p {PORT} -i 0 -J --connect-timeout 10000 \"$@\"; }}; ",
        out.display(),
        host_exec(HOST_IPERF3)
    )
}

/// Guest shell text (after [`guest_setup`]) for one test of `secs` seconds
/// against `server`, `-R` if `reverse`; the report goes to `<out>/<name>.json`
/// and a failure exits with status 21, printing the report.
pub fn guest_run(name: &str, server: Ipv4Addr, secs: u32, reverse: bool) -> String {
    let r = if reverse { " -R" } else { "" };
    format!(
        "ipf -c {server} -t {secs}{r} >{GUEST_OUT}/{name}.json || \
         {{ cat {GUEST_OUT}/{name}.json; exit 21; }}; "
    )
}

/// One test as the client (the guest) reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRun {
    /// `-R`: the server sent.
    pub reverse: bool,
    /// Bytes the sender sent and the receiver received.
    pub sent: u64,
    pub received: u64,
    /// The receiver's rate, bits per second.
    pub receiver_bps: f64,
    /// The receiver's duration.
    pub seconds: f64,
}

/// One test as the server (the host) reports it: its own bytes only.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerRun {
    pub reverse: bool,
    /// Bytes received (forward) or sent (`-R`) by the server.
    pub bytes: u64,
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_f64()
}

fn reverse_flag(v: &Value) -> Option<bool> {
    Some(num(v, &["start", "test_start", "reverse"])? != 0.0)
}

/// The client's JSON report; an `error` in it is the failure.
pub fn parse_client(text: &str) -> Result<ClientRun> {
    let v: Value = serde_json::from_str(text).with_context(|| {
        format!(
            "not an iperf3 JSON report: {:?}",
            text.chars().take(200).collect::<String>()
        )
    })?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        bail!("iperf3 failed: {e}");
    }
    let get = |p: &[&str]| {
        num(&v, p).with_context(|| format!("the iperf3 report has no {}", p.join(".")))
    };
    Ok(ClientRun {
        reverse: reverse_flag(&v).context("the iperf3 report has no start.test_start.reverse")?,
        sent: get(&["end", "sum_sent", "bytes"])? as u64,
        received: get(&["end", "sum_received", "bytes"])? as u64,
        receiver_bps: get(&["end", "sum_received", "bits_per_second"])?,
        seconds: get(&["end", "sum_received", "seconds"])?,
    })
}

/// The server's output: one JSON object per test (and one with an `error`
/// when it is stopped). Returns the tests, and the other errors it reported.
pub fn parse_server(text: &str) -> (Vec<ServerRun>, Vec<String>) {
    let mut runs = Vec::new();
    let mut errors = Vec::new();
    for v in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        let Ok(v) = v else {
            errors.push("unreadable JSON in the server's output".to_string());
            break;
        };
        if let (Some(reverse), Some(rx), Some(tx)) = (
            reverse_flag(&v),
            num(&v, &["end", "sum_received", "bytes"]),
            num(&v, &["end", "sum_sent", "bytes"]),
        ) {
            runs.push(ServerRun {
                reverse,
                bytes: if reverse { tx } else { rx } as u64,
            });
        } else if let Some(e) = v.get("error").and_then(Value::as_str) {
            if !e.contains("the server has terminated") {
                errors.push(e.to_string());
            }
        }
    }
    (runs, errors)
}

/// Checks one test's two reports against each other and that at least
/// `min_bytes` arrived; returns e.g. `guest->host 8.2 MiB, 33.1 Mbit/s`.
pub fn check_pair(what: &str, c: &ClientRun, s: &ServerRun, min_bytes: u64) -> Result<String> {
    if c.reverse != s.reverse {
        bail!(
            "{what}: the client's test has reverse={} but the server's reverse={}",
            c.reverse,
            s.reverse
        );
    }
    // The server's own count, and the client's copy of it.
    let (server_side, copy) = if c.reverse {
        (s.bytes, c.sent)
    } else {
        (s.bytes, c.received)
    };
    if server_side != copy {
        bail!(
            "{what}: the server counted {server_side} bytes, the client's report says it \
             counted {copy}"
        );
    }
    if c.received > c.sent {
        bail!(
            "{what}: {} bytes received but only {} sent",
            c.received,
            c.sent
        );
    }
    if c.received < min_bytes {
        bail!(
            "{what}: only {} bytes received of {} sent (at least {min_bytes} expected)",
            c.received,
            c.sent
        );
    }
    Ok(format!(
        "{what} {:.1} MiB, {:.1} Mbit/s",
        c.received as f64 / f64::from(1 << 20),
        c.receiver_bps / 1e6
    ))
}

/// Whether `/proc/<pid>/net/tcp` or `tcp6` (the process's network
/// namespace) has a listening socket on `port` (iperf3 listens on IPv6's
/// any address, which takes IPv4 too).
fn listening(pid: u32, port: u16) -> bool {
    let local = format!(":{port:04X}");
    ["tcp", "tcp6"].iter().any(|f| {
        let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/net/{f}")) else {
            return false;
        };
        t.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&local) && f[3] == "0A"
        })
    })
}

/// The host's iperf3 server in a namespace, stopped (SIGKILL) and reaped
/// when dropped.
pub struct Server {
    child: Option<Child>,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
}

impl Server {
    /// Starts `iperf3 -s -J -p PORT` in `ns`, pinned to `cpu` if given, and
    /// waits until it listens.
    pub fn start(ns: &NetNs, cpu: Option<usize>) -> Result<Server> {
        require()?;
        let mut cmd = Command::new(HOST_IPERF3);
        cmd.args(["-s", "-J", "-p", &PORT.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cpu) = cpu {
            let set = crate::sys::single_cpu_set(cpu)?;
            // SAFETY: runs in the forked child before exec: one system call
            // through a nix wrapper that neither allocates nor locks.
            unsafe {
                cmd.pre_exec(move || {
                    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
                    Ok(())
                });
            }
        }
        let mut child = ns.spawn(&mut cmd).context("starting the iperf3 server")?;
        let read = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = r.read_to_string(&mut s);
                s
            })
        };
        let out = child.stdout.take().map(|o| read(Box::new(o)));
        let err = child.stderr.take().map(|e| read(Box::new(e)));
        let pid = child.id();
        let mut server = Server {
            child: Some(child),
            out,
            err,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(pid, PORT) {
            if let Some(st) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let err = server
                    .err
                    .take()
                    .and_then(|h| h.join().ok())
                    .unwrap_or_default();
                bail!(
                    "the iperf3 server exited ({st}) before listening: {}",
                    err.trim()
                );
            }
            if Instant::now() > deadline {
                bail!("the iperf3 server did not listen on port {PORT} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// Stops the server and returns its tests and the errors it reported.
    pub fn finish(mut self) -> Result<(Vec<ServerRun>, Vec<String>)> {
        self.stop();
        let out = self
            .out
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let err = self
            .err
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let (runs, mut errors) = parse_server(&out);
        if !err.trim().is_empty() {
            errors.push(format!("stderr: {}", err.trim()));
        }
        Ok((runs, errors))
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM lets it end its JSON output; SIGKILL if it lingers.
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads `<dir>/<name>.json` the guest wrote.
pub fn read_client(dir: &Path, name: &str) -> Result<ClientRun> {
    let p = dir.join(format!("{name}.json"));
    let text = std::fs::read_to_string(&p)
        .with_context(|| format!("reading the guest's iperf3 report {}", p.display()))?;
    parse_client(&text).with_context(|| format!("the guest's iperf3 report {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client report as iperf3 3.12 writes it with `-J -i 0` (trimmed).
    const CLIENT: &str = r#"{
        "start": {"test_start": {"protocol": "TCP", "num_streams": 1, "reverse": 1}},
        "intervals": [],
        "end": {
            "sum_sent": {"seconds": 2.0005, "bytes": 3384279040, "bits_per_second": 1.35e10},
            "sum_received": {"seconds": 2.000015, "bytes": 3378511872,
                             "bits_per_second": 13514047488.0}
        }
    }"#;

    #[test]
    fn client_report() {
        let c = parse_client(CLIENT).unwrap();
        assert_eq!(
            c,
            ClientRun {
                reverse: true,
                sent: 3384279040,
                received: 3378511872,
                receiver_bps: 13514047488.0,
                seconds: 2.000015,
            }
        );
        let e =
            parse_client(r#"{"start": {}, "error": "unable to connect to server"}"#).unwrap_err();
        assert!(e.to_string().contains("unable to connect to server"), "{e}");
        assert!(parse_client("").is_err());
        assert!(parse_client(r#"{"start": {"test_start": {"reverse": 0}}}"#).is_err());
    }

    #[test]
    fn server_stream_and_pairing() {
        let out = r#"{"start": {"test_start": {"reverse": 0}},
                      "end": {"sum_sent": {"bytes": 0}, "sum_received": {"bytes": 1000}}}
                     {"start": {"test_start": {"reverse": 1}},
                      "end": {"sum_sent": {"bytes": 5000}, "sum_received": {"bytes": 0}}}
                     {"start": {}, "error": "the client has unexpectedly closed the connection"}
                     {"start": {}, "error": "interrupt - the server has terminated"}"#;
        let (runs, errors) = parse_server(out);
        assert_eq!(
            runs,
            [
                ServerRun {
                    reverse: false,
                    bytes: 1000
                },
                ServerRun {
                    reverse: true,
                    bytes: 5000
                }
            ]
        );
        assert_eq!(
            errors,
            ["the client has unexpectedly closed the connection"]
        );

        let up = ClientRun {
            reverse: false,
            sent: 1200,
            received: 1000,
            receiver_bps: 8e6,
            seconds: 1.0,
        };
        let s = check_pair("guest->host", &up, &runs[0], 1000).unwrap();
        assert!(s.starts_with("guest->host 0.0 MiB, 8.0 Mbit/s"), "{s}");
        // Too little, the wrong test, numbers that disagree.
        assert!(check_pair("x", &up, &runs[0], 1001).is_err());
        assert!(check_pair("x", &up, &runs[1], 0).is_err());
        let bad = ClientRun {
            received: 999,
            ..up.clone()
        };
        let e = check_pair("x", &bad, &runs[0], 0).unwrap_err();
        assert!(e.to_string().contains("server counted 1000"), "{e}");
        let more = ClientRun {
            sent: 900,
            ..up.clone()
        };
        assert!(check_pair("x", &more, &runs[0], 0).is_err());
        let down = ClientRun {
            reverse: true,
            sent: 5000,
            received: 4000,
            receiver_bps: 1.0,
            seconds: 1.0,
        };
        check_pair("host->guest", &down, &runs[1], 4000).unwrap();
    }

    #[test]
    fn guest_text() {
        let s = guest_setup(Path::new("/tmp/o"));
        assert!(s.contains("mount -t hostfs -o /tmp/o none /out"), "{s}");
        assert!(s.contains("/host/usr/bin/iperf3 -p 5201 -i 0 -J"), "{s}");
        let r = guest_run("up", Ipv4Addr::new(10, 199, 1, 1), 2, true);
        assert_eq!(
            r,
            "ipf -c 10.199.1.1 -t 2 -R >/out/up.json || { cat /out/up.json; exit 21; }; "
        );
    }

    #[test]
    fn proc_net_tcp_listeners() {
        // This process listens on an ephemeral port: it shows up.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(listening(std::process::id(), port));
        drop(l);
        assert!(!listening(std::process::id(), port));
        let l = std::net::TcpListener::bind("[::]:0").unwrap();
        assert!(listening(
            std::process::id(),
            l.local_addr().unwrap().port()
        ));
    }
}
