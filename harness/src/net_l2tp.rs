// SPDX-License-Identifier: GPL-2.0
//! The host's end of an Ethernet-over-L2TPv3-over-UDP tunnel (RFC 3931,
//! section 4.1.2.2 and 4.4), for `host_net_vector_l2tpv3`.
//!
//! The host kernel would be the natural peer (`ip l2tp add tunnel ...
//! encap udp` and an `l2tp_eth` session), but hosts without `CONFIG_L2TP`
//! (like the Firecracker VMs this project runs on, whose kernels also have
//! no modules) cannot do that. So the harness is the peer: a UDP socket on
//! the namespace's loopback and a tap device in the same namespace, which
//! carries the host's address. Every datagram from UML is checked
//! (the data-packet word, the session, the cookie, the counter) and its
//! Ethernet frame written to the tap; every frame the host's stack sends
//! out of the tap is put into a datagram with UML's receive session and
//! cookie and a counter, and sent to UML's UDP port. Nothing is
//! forwarded that did not decapsulate cleanly.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::libc;

/// The first word of an L2TPv3 data packet over UDP: T bit 0, version 3.
pub const DATA_PACKET: u32 = 0x0003_0000;

/// The fixed session of one direction pair, as both ends are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// Session and cookie the peer expects in what it receives (UML's
    /// `tx_session`, `tx_cookie`).
    pub rx_session: u32,
    pub rx_cookie: u64,
    /// Session and cookie the peer sends (UML's `rx_session`, `rx_cookie`).
    pub tx_session: u32,
    pub tx_cookie: u64,
    /// 64-bit cookies (`cookie64=1`), else 32-bit.
    pub cookie64: bool,
    /// A 32-bit counter after the cookie (`counter=1`).
    pub counter: bool,
}

impl Session {
    fn cookie_len(&self) -> usize {
        if self.cookie64 { 8 } else { 4 }
    }

    /// Bytes in front of the Ethernet frame.
    pub fn header_len(&self) -> usize {
        4 + 4 + self.cookie_len() + if self.counter { 4 } else { 0 }
    }

    /// UML's options for the other end of this session: the `vecN:`
    /// L2TPv3 options (without `transport`, addresses and ports).
    pub fn uml_options(&self) -> String {
        let mut s = format!(
            "rx_session={:#x},tx_session={:#x},cookie64={},rx_cookie={:#x},tx_cookie={:#x}",
            self.tx_session,
            self.rx_session,
            u8::from(self.cookie64),
            self.tx_cookie,
            self.rx_cookie
        );
        if self.counter {
            s.push_str(",counter=1");
        }
        s
    }

    /// `frame` in a datagram with the peer's session, cookie and `counter`.
    pub fn encap(&self, frame: &[u8], counter: u32) -> Vec<u8> {
        let mut d = Vec::with_capacity(self.header_len() + frame.len());
        d.extend_from_slice(&DATA_PACKET.to_be_bytes());
        d.extend_from_slice(&self.tx_session.to_be_bytes());
        if self.cookie64 {
            d.extend_from_slice(&self.tx_cookie.to_be_bytes());
        } else {
            d.extend_from_slice(&(self.tx_cookie as u32).to_be_bytes());
        }
        if self.counter {
            d.extend_from_slice(&counter.to_be_bytes());
        }
        d.extend_from_slice(frame);
        d
    }

    /// The Ethernet frame of a datagram, and its counter; fails, saying
    /// what is wrong, unless the header is this session's.
    pub fn decap<'a>(&self, d: &'a [u8]) -> Result<(&'a [u8], Option<u32>), String> {
        let hl = self.header_len();
        if d.len() < hl + 14 {
            return Err(format!(
                "{} bytes, less than the {hl}-byte header and an Ethernet header",
                d.len()
            ));
        }
        let be32 = |o: usize| u32::from_be_bytes(d[o..o + 4].try_into().expect("4 bytes"));
        if be32(0) != DATA_PACKET {
            return Err(format!(
                "first word {:#010x}, not a data packet ({DATA_PACKET:#010x})",
                be32(0)
            ));
        }
        if be32(4) != self.rx_session {
            return Err(format!(
                "session {:#x}, expected {:#x}",
                be32(4),
                self.rx_session
            ));
        }
        let (cookie, want) = if self.cookie64 {
            (
                u64::from_be_bytes(d[8..16].try_into().expect("8 bytes")),
                self.rx_cookie,
            )
        } else {
            (u64::from(be32(8)), u64::from(self.rx_cookie as u32))
        };
        if cookie != want {
            return Err(format!("cookie {cookie:#x}, expected {want:#x}"));
        }
        let counter = self.counter.then(|| be32(8 + self.cookie_len()));
        Ok((&d[hl..], counter))
    }
}

/// What the relay saw, per direction.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Datagrams from UML decapsulated and written to the tap.
    pub frames_in: u64,
    pub bytes_in: u64,
    /// Frames from the tap sent to UML.
    pub frames_out: u64,
    pub bytes_out: u64,
    /// Datagrams refused, and why the first was.
    pub bad: u64,
    pub first_bad: Option<String>,
    /// Counters of UML's datagrams: how often one was not above the one
    /// before, how many were 0, and the last.
    pub counter_not_rising: u64,
    pub counter_zero: u64,
    pub last_counter: Option<u32>,
    /// A host error that ended a direction early.
    pub error: Option<String>,
}

impl Stats {
    /// One line for the case's diagnostic.
    pub fn summary(&self) -> String {
        format!(
            "L2TPv3 peer: {} datagrams from UML decapsulated ({} KiB), {} frames sent to UML \
             ({} KiB), {} refused, counter last {}",
            self.frames_in,
            self.bytes_in / 1024,
            self.frames_out,
            self.bytes_out / 1024,
            self.bad,
            self.last_counter
                .map_or("none".to_string(), |c| c.to_string())
        )
    }
}

/// Attaches to tap device `name` (it must exist in the calling thread's
/// network namespace): `/dev/net/tun`, `TUNSETIFF` with `IFF_TAP |
/// IFF_NO_PI`, so that reads and writes are bare Ethernet frames.
pub fn attach_tap(name: &str) -> Result<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .context("opening /dev/net/tun")?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= ifr.ifr_name.len() {
        bail!("tap name {name} too long");
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one struct ifreq, which `ifr` is,
    // on a descriptor that stays open across the call.
    Errno::result(unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF, &mut ifr) })
        .with_context(|| format!("attaching to tap {name} (TUNSETIFF)"))?;
    Ok(f)
}

/// The relay between UML's UDP port and a tap device, two threads, until
/// [`Relay::finish`].
pub struct Relay {
    stop: Arc<AtomicBool>,
    up: Option<JoinHandle<Stats>>,
    down: Option<JoinHandle<Stats>>,
}

/// How long a thread waits for a packet before it looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

impl Relay {
    /// Starts relaying between `sock` (bound to the peer's port on the
    /// namespace's loopback), UML at `uml` and `tap`, both made in the
    /// namespace.
    pub fn start(sock: UdpSocket, tap: File, uml: SocketAddrV4, session: Session) -> Result<Relay> {
        let stop = Arc::new(AtomicBool::new(false));
        sock.set_read_timeout(Some(POLL))?;
        let (sock2, tap2) = (sock.try_clone()?, tap.try_clone()?);
        let up = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("l2tp-from-uml".into())
                .spawn(move || from_uml(&sock, tap2, uml, session, &stop))?
        };
        let down = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("l2tp-to-uml".into())
                .spawn(move || to_uml(&sock2, tap, uml, session, &stop))?
        };
        Ok(Relay {
            stop,
            up: Some(up),
            down: Some(down),
        })
    }

    /// Stops both threads and returns what they saw.
    pub fn finish(mut self) -> Stats {
        self.stop.store(true, Ordering::Relaxed);
        let up = self.up.take().map(|h| h.join().unwrap_or_default());
        let down = self.down.take().map(|h| h.join().unwrap_or_default());
        let mut s = up.unwrap_or_default();
        if let Some(d) = down {
            s.frames_out = d.frames_out;
            s.bytes_out = d.bytes_out;
            if s.error.is_none() {
                s.error = d.error;
            }
        }
        s
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in [self.up.take(), self.down.take()].into_iter().flatten() {
            let _ = h.join();
        }
    }
}

fn from_uml(
    sock: &UdpSocket,
    mut tap: File,
    uml: SocketAddrV4,
    session: Session,
    stop: &AtomicBool,
) -> Stats {
    let mut st = Stats::default();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                st.error = Some(format!("receiving from UML: {e}"));
                break;
            }
        };
        let bad = |st: &mut Stats, why: String| {
            st.bad += 1;
            st.first_bad.get_or_insert(why);
        };
        if from != std::net::SocketAddr::V4(uml) {
            bad(
                &mut st,
                format!("a datagram from {from}, not from UML at {uml}"),
            );
            continue;
        }
        match session.decap(&buf[..n]) {
            Ok((frame, counter)) => {
                if let Some(c) = counter {
                    if c == 0 {
                        st.counter_zero += 1;
                    }
                    if st.last_counter.is_some_and(|l| c <= l) {
                        st.counter_not_rising += 1;
                    }
                    st.last_counter = Some(c);
                }
                // A full tap queue drops the frame, as a wire would.
                match tap.write(frame) {
                    Ok(_) => {
                        st.frames_in += 1;
                        st.bytes_in += frame.len() as u64;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EIO) => {}
                    Err(e) => {
                        st.error = Some(format!("writing to the tap: {e}"));
                        break;
                    }
                }
            }
            Err(why) => bad(&mut st, why),
        }
    }
    st
}

fn to_uml(
    sock: &UdpSocket,
    mut tap: File,
    uml: SocketAddrV4,
    session: Session,
    stop: &AtomicBool,
) -> Stats {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut st = Stats::default();
    let mut buf = vec![0u8; 65536];
    let mut counter: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let ready = {
            let mut fds = [PollFd::new(tap.as_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(POLL.as_millis() as u16))
        };
        match ready {
            Ok(0) => continue,
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => {
                st.error = Some(format!("polling the tap: {e}"));
                break;
            }
        }
        let n = match tap.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                st.error = Some(format!("reading the tap: {e}"));
                break;
            }
        };
        counter = counter.wrapping_add(1);
        match sock.send_to(&session.encap(&buf[..n], counter), uml) {
            Ok(_) => {
                st.frames_out += 1;
                st.bytes_out += n as u64;
            }
            // UML's socket buffer is full: a lost packet, as on a wire.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
            // Nobody bound to UML's port yet (the interface is not up).
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
            Err(e) => {
                st.error = Some(format!("sending to UML at {uml}: {e}"));
                break;
            }
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(cookie64: bool, counter: bool) -> Session {
        Session {
            rx_session: 0x1234,
            rx_cookie: 0x1122_3344_5566_7788,
            tx_session: 0x4321,
            tx_cookie: 0x8877_6655_4433_2211,
            cookie64,
            counter,
        }
    }

    #[test]
    fn header_bytes_are_rfc3931_udp_data_packets() {
        let s = session(true, true);
        assert_eq!(s.header_len(), 20);
        let d = s.encap(b"frame", 7);
        assert_eq!(
            d,
            [
                &[0, 3, 0, 0][..],
                &[0, 0, 0x43, 0x21],
                &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11],
                &[0, 0, 0, 7],
                b"frame"
            ]
            .concat()
        );
        let s32 = session(false, false);
        assert_eq!(s32.header_len(), 12);
        assert_eq!(
            s32.encap(b"x", 1),
            [
                &[0, 3, 0, 0][..],
                &[0, 0, 0x43, 0x21],
                &[0x44, 0x33, 0x22, 0x11],
                b"x"
            ]
            .concat()
        );
    }

    #[test]
    fn decap_checks_every_field() {
        let s = session(true, true);
        // What UML sends is what the peer receives: the other end's view.
        let uml = Session {
            rx_session: s.tx_session,
            rx_cookie: s.tx_cookie,
            tx_session: s.rx_session,
            tx_cookie: s.rx_cookie,
            ..s
        };
        let frame = [0xabu8; 60];
        let d = uml.encap(&frame, 42);
        assert_eq!(s.decap(&d), Ok((&frame[..], Some(42))));
        let mut bad = d.clone();
        bad[7] ^= 1;
        assert!(s.decap(&bad).unwrap_err().contains("session 0x1235"));
        let mut bad = d.clone();
        bad[15] ^= 1;
        assert!(s.decap(&bad).unwrap_err().contains("cookie"));
        let mut bad = d.clone();
        bad[1] = 2;
        assert!(s.decap(&bad).unwrap_err().contains("not a data packet"));
        assert!(s.decap(&d[..30]).unwrap_err().contains("less than"));
        // A 32-bit cookie is the low 32 bits.
        let s32 = session(false, false);
        let uml32 = Session {
            rx_session: s32.tx_session,
            tx_session: s32.rx_session,
            rx_cookie: s32.tx_cookie,
            tx_cookie: s32.rx_cookie,
            ..s32
        };
        assert_eq!(s32.decap(&uml32.encap(&frame, 0)), Ok((&frame[..], None)));
    }

    #[test]
    fn uml_options_mirror_the_session() {
        assert_eq!(
            session(true, true).uml_options(),
            "rx_session=0x4321,tx_session=0x1234,cookie64=1,rx_cookie=0x8877665544332211,\
             tx_cookie=0x1122334455667788,counter=1"
        );
    }

    #[test]
    fn relay_refuses_a_bad_datagram() {
        // A pipe stands in for the tap (which needs root): a datagram that
        // is not this session's is counted and never reaches it.
        let s = session(false, true);
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let uml = UdpSocket::bind("127.0.0.1:0").unwrap();
        let uml_addr = match uml.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let (r, w) = nix::unistd::pipe().unwrap();
        drop(r);
        let relay = Relay::start(peer.try_clone().unwrap(), File::from(w), uml_addr, s).unwrap();
        uml.send_to(
            b"garbage that is long enough to be a frame..",
            peer.local_addr().unwrap(),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let st = relay.finish();
        assert_eq!(st.bad, 1, "{st:?}");
        assert!(st.first_bad.unwrap().contains("not a data packet"));
        assert_eq!(st.frames_in, 0);
    }
}
