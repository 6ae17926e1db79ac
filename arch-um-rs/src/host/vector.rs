// SPDX-License-Identifier: GPL-2.0
//! The host half of UML's vector network driver: the safe core behind
//! [`crate::abi::um_drivers::vector_user`] (`arch/um/drivers/vector_user.c`).
//!
//! A vector device is configured with one option string,
//! `vecN:transport=NAME,option=value,...` (see the UML HOWTO, "Configuring
//! vector transports"). The kernel half (`vector_kern.c`,
//! `vector_transports.c`, which stay C) hands the text after `vecN:` to
//! [`parse_in_place`], keeps the resulting argument list for the device's
//! life, reads its own options from it (`mtu`, `depth`, `gro`, the GRE keys,
//! the L2TPv3 sessions, ...) and asks the host half to open the transport
//! when the interface goes up ([`open_transport`]). The transports:
//!
//! | transport | host side | options read here |
//! |---|---|---|
//! | `tap` | a tap device (`/dev/net/tun`, vnet headers) | `ifname` (else a made-up `tapXXXXXX`), `ifup` |
//! | `hybrid` | writes to a tap device, reads its packet socket | `ifname`, `ifup` |
//! | `raw` | two packet sockets on an interface | `ifname`, `ifup` |
//! | `gre` | a raw IP socket, protocol 47 | `src`, `dst`, `v6` |
//! | `l2tpv3` | a raw IP socket (protocol 115) or, `udp=1`, a UDP socket | `src`, `dst`, `srcport`, `dstport`, `v6`, `udp` |
//! | `bess` | a Unix sequential-packet socket | `src`, `dst` |
//! | `fd` | a descriptor UML inherited | `fd` |
//! | `vde` | `vde_plug` on a socket pair | `vnl`, `descr`, `port`, `mode`, `group` |
//!
//! Every option of both halves is checked by [`check`] with the rules the
//! half that reads it uses (the kernel's `kstrtoul`/`kstrtoint` for the
//! kernel half's numbers, see [`kstrtoull`] and [`kstrtoint`]), so that a
//! value accepted here means the same to both halves. What the C did
//! differently, and why, is listed in
//! [`crate::abi::um_drivers::vector_user`].
//!
//! The conventions of [`crate::host::file`] apply: raw descriptors in, owned
//! descriptors out, the host's errno as error, no `EINTR` retry unless
//! stated. Nothing here allocates except `getaddrinfo` (whose result
//! `freeaddrinfo` releases, as in C).

use core::ffi::{CStr, c_char, c_int, c_short, c_uint, c_ulong};
use core::fmt;
use core::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use super::file::{self, owned, retry_eintr};
use super::util::ShowBytes;

// ---------------------------------------------------------------------------
// constants of vector_user.h, vector_kern.c and vector_transports.c

/// `MAXVARGS`: the most options a device's argument list holds.
pub const MAXVARGS: usize = 20;
/// `IFNAMSIZ`: an interface name with its NUL.
pub const IFNAMSIZ: usize = libc::IFNAMSIZ;
/// `MAX_UN_LEN`: the longest `bess` socket path (`sun_path` less its NUL).
pub const MAX_UN_LEN: usize = 107;
/// `DEFAULT_BPF_LEN`: the instructions of [`default_bpf`].
pub const DEFAULT_BPF_LEN: usize = 6;
/// `BPF_MAXINSNS`: the most instructions the host takes in a classic BPF
/// program.
pub const BPF_MAXINSNS: usize = 4096;
/// `IPPROTO_GRE`.
pub const IPPROTO_GRE: c_int = 0x2f;
/// `IPPROTO_L2TP`: the IANA protocol number of L2TPv3 over IP.
pub const IPPROTO_L2TP: c_int = 0x73;
/// `VECTOR_READ` (vector_user.h).
pub const VECTOR_READ: c_int = 1;
/// `GRE_IRB`: the protocol type of a GRE header carrying Ethernet
/// (transparent Ethernet bridging).
pub const GRE_IRB: u16 = 0x6558;
/// `GRE_MODE_CHECKSUM`, `GRE_MODE_RESERVED`, `GRE_MODE_KEY` and
/// `GRE_MODE_SEQUENCE`: the GRE flag bits, in host order (the C's are
/// `cpu_to_be16` of these).
pub const GRE_MODE_CHECKSUM: u16 = 8 << 12;
pub const GRE_MODE_RESERVED: u16 = 4 << 12;
pub const GRE_MODE_KEY: u16 = 2 << 12;
pub const GRE_MODE_SEQUENCE: u16 = 1 << 12;
/// `L2TPV3_DATA_PACKET`: the first word of an L2TPv3-over-UDP data packet
/// (version 3, no flags).
pub const L2TPV3_DATA_PACKET: u32 = 0x30000;
/// `sizeof(struct iphdr)`: what the kernel half skips at the front of a
/// packet read from a raw IPv4 socket.
pub const IPV4_HEADER_LEN: usize = 20;
/// `sizeof(struct virtio_net_hdr)`: the header in front of every frame of
/// a tap or packet socket with vnet headers.
pub const VIRTIO_NET_HDR_LEN: usize = 10;

/// `DEFAULT_VECTOR_SIZE`, `DEFAULT_HEADROOM` and `ETH_MAX_PACKET`: what the
/// kernel half uses when `depth`, `headroom` or `mtu` is not given.
pub const DEFAULT_DEPTH: u32 = 64;
pub const DEFAULT_HEADROOM: u32 = 2;
pub const DEFAULT_MTU: u32 = 1500;
/// The MTUs the kernel half takes (`get_mtu`: at least 576, below 65535).
pub const MTU_MIN: u64 = 576;
pub const MTU_MAX: u64 = 65534;
/// The deepest queue accepted: the kernel half allocates the queue's
/// `struct mmsghdr` array (64 bytes an entry) with one `kmalloc`, which
/// cannot exceed `KMALLOC_MAX_SIZE` (4 MiB), and crashes on the NULL queue
/// when that fails.
pub const DEPTH_MAX: u64 = 65536;

/// The tun/tap clone device.
pub const TUN_DEVICE: &CStr = c"/dev/net/tun";
/// The flags of a tap device: Ethernet frames, no packet information,
/// a `virtio_net_hdr` in front of each frame.
pub const TAP_FLAGS: c_short = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as c_short;
/// The offloads asked of a tap device (`TUNSETOFFLOAD`).
pub const TAP_OFFLOADS: c_uint = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
/// The template of a made-up tap name, and the characters that replace
/// its `X`s (the C's `template` and `padchar`).
pub const TAP_TEMPLATE: &[u8; 9] = b"tapXXXXXX";
pub const TAP_PADCHAR: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// How many made-up tap names are tried before giving up (the C tried
/// forever, also when `/dev/net/tun` could not be opened at all).
pub const TAP_NAME_TRIES: usize = 16;

const ETH_P_ALL: u16 = libc::ETH_P_ALL as u16;
const ETH_P_IP: u16 = libc::ETH_P_IP as u16;

// ---------------------------------------------------------------------------
// the option string

/// A device's options, as `uml_parse_vector_ifspec` splits them: names and
/// values, in the order given (the C's `struct arglist`). Look-ups return
/// the first option of a name, as `uml_vector_fetch_arg` does.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    opts: [(&'a CStr, &'a CStr); MAXVARGS],
    len: usize,
}

impl<'a> Args<'a> {
    pub const fn new() -> Self {
        Args {
            opts: [(c"", c""); MAXVARGS],
            len: 0,
        }
    }

    /// Appends an option; `Err` when [`MAXVARGS`] are there already.
    pub fn push(&mut self, name: &'a CStr, value: &'a CStr) -> Result<(), SyntaxError> {
        let slot = self.opts.get_mut(self.len).ok_or(SyntaxError::TooMany)?;
        *slot = (name, value);
        self.len += 1;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The options, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a CStr, &'a CStr)> + '_ {
        self.opts[..self.len].iter().copied()
    }

    /// The value of the first option called `name` (`uml_vector_fetch_arg`).
    pub fn get(&self, name: &[u8]) -> Option<&'a CStr> {
        self.iter()
            .find(|(n, _)| n.to_bytes() == name)
            .map(|(_, v)| v)
    }
}

impl Default for Args<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Args<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Why an option string does not split into `name=value` pairs. Offsets
/// are byte offsets into the string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyntaxError {
    /// A value holds a second `=` (the C refused these too).
    SecondEquals { name: (usize, usize), at: usize },
    /// A name without `=value`. The C dropped it silently, so `gro` alone
    /// did nothing.
    NoValue { name: (usize, usize) },
    /// `=value` without a name.
    NoName { at: usize },
    /// More than [`MAXVARGS`] options: the C wrote past its arrays.
    TooMany,
    /// The buffer holds no NUL (only [`parse_in_place`]).
    Unterminated,
}

impl SyntaxError {
    /// The error as a sentence about `spec`, the string it was found in.
    pub fn describe<'s>(&'s self, spec: &'s [u8]) -> impl fmt::Display + 's {
        SyntaxMsg { err: self, spec }
    }
}

struct SyntaxMsg<'s> {
    err: &'s SyntaxError,
    spec: &'s [u8],
}

impl fmt::Display for SyntaxMsg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = |(a, b): (usize, usize)| ShowBytes(self.spec.get(a..b).unwrap_or_default());
        match *self.err {
            SyntaxError::SecondEquals { name, at } => write!(
                f,
                "the value of {} holds a second '=' (at byte {at}); values cannot contain '=' or ','",
                part(name)
            ),
            SyntaxError::NoValue { name } => write!(
                f,
                "option {} has no value (write {}=VALUE)",
                part(name),
                part(name)
            ),
            SyntaxError::NoName { at } => write!(f, "a value without an option name at byte {at}"),
            SyntaxError::TooMany => write!(f, "more than {MAXVARGS} options"),
            SyntaxError::Unterminated => f.write_str("the option string is not terminated"),
        }
    }
}

/// One `name=value` pair of an option string, as byte ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub name: (usize, usize),
    pub value: (usize, usize),
}

/// Splits `spec` (without its NUL) into options the way
/// `uml_parse_vector_ifspec` does: comma-separated `name=value` pairs, in
/// order; empty pieces (`a=1,,b=2`, a trailing comma) are skipped. Pure: the
/// string is not touched, so a refusal can quote it.
///
/// Unlike the C: a name without a value, an empty name and more than
/// [`MAXVARGS`] options are refused rather than dropped (or written past
/// the end of the list), and a name ending the string with `=` gets an
/// empty value (the C dropped `a=` at the end but kept it elsewhere).
pub fn split(spec: &[u8]) -> Result<([Span; MAXVARGS], usize), SyntaxError> {
    let mut spans = [Span::default(); MAXVARGS];
    let mut n = 0;
    let mut start = 0;
    for piece in spec.split(|&b| b == b',') {
        let end = start + piece.len();
        let here = start;
        start = end + 1;
        if piece.is_empty() {
            continue;
        }
        let Some(eq) = piece.iter().position(|&b| b == b'=') else {
            return Err(SyntaxError::NoValue { name: (here, end) });
        };
        let name = (here, here + eq);
        if let Some(second) = piece[eq + 1..].iter().position(|&b| b == b'=') {
            return Err(SyntaxError::SecondEquals {
                name,
                at: here + eq + 1 + second,
            });
        }
        if eq == 0 {
            return Err(SyntaxError::NoName { at: here });
        }
        let slot = spans.get_mut(n).ok_or(SyntaxError::TooMany)?;
        *slot = Span {
            name,
            value: (here + eq + 1, end),
        };
        n += 1;
    }
    Ok((spans, n))
}

/// `uml_parse_vector_ifspec` on `buf`, a C string with its NUL (bytes after
/// the first NUL are left alone): [`split`], then every `=` and `,` is
/// overwritten with a NUL, as the C does, so that each name and value is a
/// C string inside `buf`. On a refusal `buf` is unchanged.
pub fn parse_in_place(buf: &mut [u8]) -> Result<Args<'_>, SyntaxError> {
    let len = buf
        .iter()
        .position(|&b| b == 0)
        .ok_or(SyntaxError::Unterminated)?;
    let (spans, n) = split(&buf[..len])?;
    for b in &mut buf[..len] {
        if *b == b'=' || *b == b',' {
            *b = 0;
        }
    }
    let buf: &[u8] = buf;
    let cstr = |at: usize| CStr::from_bytes_until_nul(&buf[at..]).unwrap_or(c"");
    let mut args = Args::new();
    for s in &spans[..n] {
        args.push(cstr(s.name.0), cstr(s.value.0))?;
    }
    Ok(args)
}

/// Undoes [`parse_in_place`] on `spec` (the string, without its NUL, that
/// [`split`] cut into `spans`): the NUL ending each name becomes `=`
/// again, every other NUL a `,`.
pub fn restore(spec: &mut [u8], spans: &[Span]) {
    for s in spans {
        if let Some(b) = spec.get_mut(s.name.1) {
            *b = b'=';
        }
    }
    for b in spec.iter_mut().filter(|b| **b == 0) {
        *b = b',';
    }
}

// ---------------------------------------------------------------------------
// numbers, as the kernel and the C library read them

/// The digits of `s` in `base` from its start: value, digits taken, and
/// whether the value overflowed (the kernel's `_parse_integer`).
fn parse_digits(s: &[u8], base: u32) -> (u64, usize, bool) {
    let (mut value, mut taken, mut overflow) = (0u64, 0, false);
    for &c in s {
        let Some(d) = (c as char).to_digit(16).filter(|&d| d < base) else {
            break;
        };
        match value
            .checked_mul(u64::from(base))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        taken += 1;
    }
    (value, taken, overflow)
}

/// The kernel's `_kstrtoull`: base 0 finds the base from a `0x` or `0`
/// prefix, base 16 skips a `0x`; at least one digit, no overflow, and
/// nothing after the digits but one optional newline.
fn kstrtoull_digits(s: &[u8], mut base: u32) -> Option<u64> {
    let x_prefix = s.first() == Some(&b'0') && s.get(1).map(u8::to_ascii_lowercase) == Some(b'x');
    if base == 0 {
        base = if s.first() == Some(&b'0') {
            if x_prefix && s.get(2).is_some_and(u8::is_ascii_hexdigit) {
                16
            } else {
                8
            }
        } else {
            10
        };
    }
    let s = if base == 16 && x_prefix { &s[2..] } else { s };
    let (value, taken, overflow) = parse_digits(s, base);
    if overflow || taken == 0 {
        return None;
    }
    let rest = &s[taken..];
    let rest = rest.strip_prefix(b"\n").unwrap_or(rest);
    rest.is_empty().then_some(value)
}

/// The kernel's `kstrtoull` (and `kstrtoul`): an optional `+`, then
/// [`kstrtoull_digits`].
pub fn kstrtoull(s: &[u8], base: u32) -> Option<u64> {
    kstrtoull_digits(s.strip_prefix(b"+").unwrap_or(s), base)
}

/// The kernel's `kstrtoll`: an optional sign, and the value must fit.
pub fn kstrtoll(s: &[u8], base: u32) -> Option<i64> {
    if let Some(digits) = s.strip_prefix(b"-") {
        let neg = (kstrtoull_digits(digits, base)? as i64).wrapping_neg();
        (neg <= 0).then_some(neg)
    } else {
        let v = kstrtoull(s, base)? as i64;
        (v >= 0).then_some(v)
    }
}

/// The kernel's `kstrtoint`: [`kstrtoll`] within `int`.
pub fn kstrtoint(s: &[u8], base: u32) -> Option<i32> {
    i32::try_from(kstrtoll(s, base)?).ok()
}

/// The C's `strtofd`: `strtol(s, &end, 10)` with nothing left over, no
/// overflow, and a value from 0 to `INT_MAX`. Like `strtol` it takes
/// leading white space and a sign (so `-0` is 0).
pub fn strtofd(s: &[u8]) -> Option<RawFd> {
    let s = match s.iter().position(|&b| !matches!(b, b' ' | b'\t'..=b'\r')) {
        Some(i) => &s[i..],
        None => return None,
    };
    let (negative, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (value, taken, overflow) = parse_digits(digits, 10);
    if overflow || taken == 0 || taken != digits.len() {
        return None;
    }
    match (negative, i32::try_from(value)) {
        (true, _) if value == 0 => Some(0),
        (false, Ok(fd)) => Some(fd),
        _ => None,
    }
}

/// A MAC address as `mac=` takes it: six fields of one or two hex digits
/// separated by `:`, not multicast and not all zeros (the addresses the
/// kernel half's `uml_net_setup_etheraddr` would replace by a random one).
pub fn parse_mac(s: &[u8]) -> Result<[u8; 6], &'static str> {
    const SHAPE: &str = "not an Ethernet address (six hex bytes such as 02:00:00:00:00:01)";
    let mut mac = [0u8; 6];
    let mut fields = s.split(|&b| b == b':');
    for byte in &mut mac {
        let field = fields.next().ok_or(SHAPE)?;
        let (v, taken, _) = parse_digits(field, 16);
        if taken == 0 || taken != field.len() || taken > 2 {
            return Err(SHAPE);
        }
        *byte = v as u8;
    }
    if fields.next().is_some() {
        return Err(SHAPE);
    }
    if mac[0] & 1 != 0 {
        return Err("a multicast address, which an interface may not have");
    }
    if mac == [0; 6] {
        return Err("all zeros, which an interface may not have");
    }
    Ok(mac)
}

// ---------------------------------------------------------------------------
// the configuration

/// A vector transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Raw,
    Hybrid,
    Tap,
    Gre,
    L2tpv3,
    Bess,
    Fd,
    Vde,
}

impl Transport {
    /// Every transport, in the order the C tries their names.
    pub const ALL: [Transport; 8] = [
        Transport::Raw,
        Transport::Hybrid,
        Transport::Tap,
        Transport::Gre,
        Transport::L2tpv3,
        Transport::Bess,
        Transport::Fd,
        Transport::Vde,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Transport::Raw => "raw",
            Transport::Hybrid => "hybrid",
            Transport::Tap => "tap",
            Transport::Gre => "gre",
            Transport::L2tpv3 => "l2tpv3",
            Transport::Bess => "bess",
            Transport::Fd => "fd",
            Transport::Vde => "vde",
        }
    }

    /// The transport called exactly `name`. (The C, and the kernel half,
    /// took any name that starts with one: `tapx` was `tap`.)
    pub fn from_name(name: &[u8]) -> Option<Transport> {
        Transport::ALL
            .into_iter()
            .find(|t| t.name().as_bytes() == name)
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The options every transport has, read by the kernel half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Common<'a> {
    /// `mac=`: the interface's address (else the kernel half makes one up).
    pub mac: Option<[u8; 6]>,
    /// `mtu=` (default [`DEFAULT_MTU`]).
    pub mtu: u32,
    /// `depth=`: the queue depth (default [`DEFAULT_DEPTH`]).
    pub depth: u32,
    /// `headroom=` (default [`DEFAULT_HEADROOM`]).
    pub headroom: u32,
    /// `gro=`: 64 KiB receive buffers and offloads.
    pub gro: bool,
    /// `vec=`: multi-packet I/O (`vec=0` turns it off).
    pub vec: bool,
    /// `bpffile=`: a classic BPF program for the receive socket.
    pub bpffile: Option<&'a CStr>,
    /// `bpfflash=`: the guest may load BPF with `ethtool -f`.
    pub bpfflash: bool,
}

/// The addresses of a `gre` or `l2tpv3` transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpConfig<'a> {
    /// `v6=`: IPv6 sockets and addresses.
    pub v6: bool,
    /// `udp=` (`l2tpv3` only): L2TPv3 over UDP rather than over IP.
    pub udp: bool,
    /// `src=` and `dst=`: the local and remote addresses (names or
    /// numbers, resolved with `getaddrinfo`).
    pub src: &'a CStr,
    pub dst: &'a CStr,
    /// `srcport=` and `dstport=` (L2TPv3 over UDP only).
    pub srcport: Option<&'a CStr>,
    pub dstport: Option<&'a CStr>,
}

/// The GRE options of the kernel half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GreConfig {
    /// `rx_key=` and `tx_key=`, as the 32 bits the kernel half keeps.
    pub keys: Option<(u32, u32)>,
    /// `sequence=` and `pin_sequence=`.
    pub sequence: bool,
    pub pin_sequence: bool,
    /// `v6=`: no IPv4 header in front of received packets.
    pub v6: bool,
}

/// The L2TPv3 options of the kernel half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L2tpv3Config {
    /// `rx_session=` and `tx_session=`, as the 32 bits the kernel half keeps.
    pub rx_session: u32,
    pub tx_session: u32,
    /// `cookie64=`: 64-bit cookies.
    pub cookie64: bool,
    /// `rx_cookie=` and `tx_cookie=`.
    pub cookies: Option<(u64, u64)>,
    /// `counter=` and `pin_counter=`.
    pub counter: bool,
    pub pin_counter: bool,
    pub udp: bool,
    pub v6: bool,
}

/// The options of `vde_plug`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VdeConfig<'a> {
    pub vnl: Option<&'a CStr>,
    pub descr: Option<&'a CStr>,
    pub port: Option<&'a CStr>,
    pub mode: Option<&'a CStr>,
    pub group: Option<&'a CStr>,
}

/// What each transport needs of the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// `raw` and `hybrid` need an interface; `tap` makes up a name if
    /// `ifname` is not given. `ifup` is a program run with the interface's
    /// name once the transport is open.
    Raw {
        ifname: &'a CStr,
        ifup: Option<&'a CStr>,
    },
    Hybrid {
        ifname: &'a CStr,
        ifup: Option<&'a CStr>,
    },
    Tap {
        ifname: Option<&'a CStr>,
        ifup: Option<&'a CStr>,
    },
    Gre(IpConfig<'a>, GreConfig),
    L2tpv3(IpConfig<'a>, L2tpv3Config),
    Bess {
        src: Option<&'a CStr>,
        dst: &'a CStr,
    },
    Fd {
        fd: RawFd,
    },
    Vde(VdeConfig<'a>),
}

/// A device's checked configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config<'a> {
    pub transport: Transport,
    pub common: Common<'a>,
    pub host: Host<'a>,
}

impl<'a> Config<'a> {
    /// The transport and the option that tells this device's host side
    /// from others (`tap transport, ifname=tap0`), for messages.
    pub fn subject(&self) -> impl fmt::Display + 'a {
        Subject(*self)
    }
}

struct Subject<'a>(Config<'a>);

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} transport", self.0.transport)?;
        let (name, value): (&str, Option<&CStr>) = match self.0.host {
            Host::Raw { ifname, .. } | Host::Hybrid { ifname, .. } => ("ifname", Some(ifname)),
            Host::Tap { ifname, .. } => ("ifname", ifname),
            Host::Gre(ip, _) | Host::L2tpv3(ip, _) => ("dst", Some(ip.dst)),
            Host::Bess { dst, .. } => ("dst", Some(dst)),
            Host::Fd { fd } => return write!(f, ", fd={fd}"),
            Host::Vde(v) => ("vnl", v.vnl),
        };
        match value {
            Some(v) => write!(f, ", {name}={}", file::CStrDisplay(v)),
            None => Ok(()),
        }
    }
}

/// Why a configuration is refused: the option, its value (if it has one)
/// and what is wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionError<'a> {
    pub option: &'a [u8],
    pub value: Option<&'a [u8]>,
    pub problem: Problem<'a>,
}

/// What is wrong with an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem<'a> {
    /// Not given, but needed: `why` says what for.
    Missing { why: &'static str },
    /// Given with an empty value.
    Empty,
    /// Given twice (the C used the first).
    Duplicate { first: &'a [u8] },
    /// Not the name of a transport.
    UnknownTransport,
    /// Not a number in the form the half reading it takes.
    NotANumber { form: &'static str },
    /// A number outside `min..=max`; `hint` says more, or is empty.
    OutOfRange {
        min: i64,
        max: u64,
        hint: &'static str,
    },
    /// Longer than `max` bytes.
    TooLong { max: usize },
    /// Not taken by this transport, and would make opening it fail.
    NotFor {
        transport: Transport,
        why: &'static str,
    },
    /// Given without `partner`, which must come with it.
    WithoutPartner { partner: &'static str },
    /// A `mac=` that is no interface address.
    BadMac { why: &'static str },
}

impl fmt::Display for OptionError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = ShowBytes(self.option);
        match self.value {
            Some(v) => write!(f, "{name}={}: ", ShowBytes(v))?,
            None => write!(f, "{name}: ")?,
        }
        match self.problem {
            Problem::Missing { why } => write!(f, "missing: {why}"),
            Problem::Empty => f.write_str("empty value"),
            Problem::Duplicate { first } => write!(
                f,
                "given twice (first as {name}={}); give it once",
                ShowBytes(first)
            ),
            Problem::UnknownTransport => f.write_str(
                "not a vector transport (raw, hybrid, tap, gre, l2tpv3, bess, fd or vde)",
            ),
            Problem::NotANumber { form } => write!(f, "not a number ({form})"),
            Problem::OutOfRange { min, max, hint } => {
                write!(f, "out of range ({min} to {max})")?;
                if !hint.is_empty() {
                    write!(f, "; {hint}")?;
                }
                Ok(())
            }
            Problem::TooLong { max } => write!(f, "longer than {max} bytes"),
            Problem::NotFor { transport, why } => {
                write!(f, "not an option of the {transport} transport: {why}")
            }
            Problem::WithoutPartner { partner } => {
                write!(f, "given without {partner} (give both or neither)")
            }
            Problem::BadMac { why } => f.write_str(why),
        }
    }
}

/// Options a configuration has that nothing reads: refused neither by the
/// C nor here, but worth a word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Warning<'a> {
    /// No half knows the option; `suggestion` is a known one it may mean.
    Unknown {
        option: &'a [u8],
        suggestion: Option<&'static str>,
    },
    /// A known option the device's transport does not use.
    Unused {
        option: &'a [u8],
        transport: Transport,
    },
}

impl fmt::Display for Warning<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Warning::Unknown { option, suggestion } => {
                write!(f, "unknown option {} ignored", ShowBytes(option))?;
                match suggestion {
                    Some(s) => write!(f, " (did you mean {s}?)"),
                    None => Ok(()),
                }
            }
            Warning::Unused { option, transport } => write!(
                f,
                "option {} ignored: the {transport} transport does not use it",
                ShowBytes(option)
            ),
        }
    }
}

const ALL: u8 = 0xff;
const TAPS: u8 = Transport::Raw.bit() | Transport::Hybrid.bit() | Transport::Tap.bit();
const IP: u8 = Transport::Gre.bit() | Transport::L2tpv3.bit();
const GRE: u8 = Transport::Gre.bit();
const L2TP: u8 = Transport::L2tpv3.bit();

/// Every option either half reads, with the transports that read it.
const OPTIONS: [(&str, u8); 34] = [
    ("transport", ALL),
    ("mac", ALL),
    ("mtu", ALL),
    ("depth", ALL),
    ("headroom", ALL),
    ("gro", ALL),
    ("vec", ALL),
    ("bpffile", ALL),
    ("bpfflash", ALL),
    ("ifname", TAPS),
    ("ifup", TAPS),
    ("src", IP | Transport::Bess.bit()),
    ("dst", IP | Transport::Bess.bit()),
    ("v6", IP),
    ("udp", L2TP),
    ("srcport", L2TP),
    ("dstport", L2TP),
    ("rx_key", GRE),
    ("tx_key", GRE),
    ("sequence", GRE),
    ("pin_sequence", GRE),
    ("rx_session", L2TP),
    ("tx_session", L2TP),
    ("cookie64", L2TP),
    ("rx_cookie", L2TP),
    ("tx_cookie", L2TP),
    ("counter", L2TP),
    ("pin_counter", L2TP),
    ("fd", Transport::Fd.bit()),
    ("vnl", Transport::Vde.bit()),
    ("descr", Transport::Vde.bit()),
    ("port", Transport::Vde.bit()),
    ("mode", Transport::Vde.bit()),
    ("group", Transport::Vde.bit()),
];

/// Misspellings worth a hint: the HOWTO's `src_port`, `dst_port` and
/// `txkey` are read as `srcport`, `dstport` and `tx_key`.
const SUGGESTIONS: [(&str, &str); 8] = [
    ("src_port", "srcport"),
    ("dst_port", "dstport"),
    ("txkey", "tx_key"),
    ("rxkey", "rx_key"),
    ("session", "rx_session and tx_session"),
    ("cookie", "rx_cookie and tx_cookie"),
    ("key", "rx_key and tx_key"),
    ("interface", "ifname"),
];

fn users(name: &[u8]) -> Option<u8> {
    OPTIONS
        .iter()
        .find(|(n, _)| n.as_bytes() == name)
        .map(|&(_, users)| users)
}

/// The number forms of the two halves, for messages.
const DECIMAL: &str = "a decimal number is expected";
const INTEGER: &str = "an integer is expected: decimal, 0x hexadecimal or 0 octal";
/// The hint for the kernel half's 32-bit fields, read with `kstrtoint`.
const INT_HINT: &str = "the driver reads a signed 32-bit number: write values above 0x7fffffff as negative ones (0xffffffff is -1)";

/// Checks one device's options, as both halves will read them, and returns
/// what they configure; options nothing reads go to `warn`. Refuses (naming
/// the option) what the C refused, what it silently replaced by a default
/// or misread, and what made it fail later without a word: see
/// [`crate::abi::um_drivers::vector_user`] for the list.
pub fn check<'a>(
    args: &Args<'a>,
    warn: &mut dyn FnMut(Warning<'a>),
) -> Result<Config<'a>, OptionError<'a>> {
    let opts = Opts(args);
    // Twice the same option: the C silently used the first.
    for (i, (name, value)) in args.iter().enumerate() {
        if let Some((_, first)) = args.iter().take(i).find(|(n, _)| *n == name) {
            return Err(OptionError {
                option: name.to_bytes(),
                value: Some(value.to_bytes()),
                problem: Problem::Duplicate {
                    first: first.to_bytes(),
                },
            });
        }
    }
    let transport = {
        let value = opts.string(
            "transport",
            "every vector device needs one (transport=raw, hybrid, tap, gre, l2tpv3, bess, fd or vde)",
        )?;
        Transport::from_name(value.to_bytes()).ok_or(OptionError {
            option: b"transport",
            value: Some(value.to_bytes()),
            problem: Problem::UnknownTransport,
        })?
    };
    for (name, value) in args.iter() {
        let name = name.to_bytes();
        match users(name) {
            None => warn(Warning::Unknown {
                option: name,
                suggestion: SUGGESTIONS
                    .iter()
                    .find(|(typo, _)| typo.as_bytes() == name)
                    .map(|&(_, s)| s),
            }),
            Some(users) if users & transport.bit() == 0 => warn(Warning::Unused {
                option: name,
                transport,
            }),
            Some(_) if value.is_empty() => {
                return Err(OptionError {
                    option: name,
                    value: Some(b""),
                    problem: Problem::Empty,
                });
            }
            Some(_) => {}
        }
    }
    let common = Common {
        mac: match opts.get("mac") {
            None => None,
            Some(v) => Some(parse_mac(v.to_bytes()).map_err(|why| OptionError {
                option: b"mac",
                value: Some(v.to_bytes()),
                problem: Problem::BadMac { why },
            })?),
        },
        mtu: opts
            .ulong("mtu", 10, MTU_MIN, MTU_MAX, "")?
            .map_or(DEFAULT_MTU, |v| v as u32),
        depth: opts
            .ulong("depth", 10, 1, DEPTH_MAX, "")?
            .map_or(DEFAULT_DEPTH, |v| v as u32),
        headroom: opts
            .ulong("headroom", 10, 0, i32::MAX as u64, "")?
            .map_or(DEFAULT_HEADROOM, |v| v as u32),
        // The kernel half keeps these in a `long`: `> 0` of that.
        gro: opts
            .ulong("gro", 10, 0, u64::MAX, "")?
            .is_some_and(|v| v as i64 > 0),
        vec: opts.ulong("vec", 10, 0, u64::MAX, "")? != Some(0),
        bpffile: opts.get("bpffile"),
        bpfflash: opts
            .ulong("bpfflash", 10, 0, u64::MAX, "")?
            .is_some_and(|v| v as i64 > 0),
    };
    let host = match transport {
        Transport::Raw | Transport::Hybrid => {
            let ifname = opts.ifname()?.ok_or(OptionError {
                option: b"ifname",
                value: None,
                problem: Problem::Missing {
                    why: if transport == Transport::Raw {
                        "the raw transport binds to a host interface (ifname=NAME)"
                    } else {
                        "the hybrid transport binds to a host tap interface (ifname=NAME)"
                    },
                },
            })?;
            let ifup = opts.get("ifup");
            if transport == Transport::Raw {
                Host::Raw { ifname, ifup }
            } else {
                Host::Hybrid { ifname, ifup }
            }
        }
        Transport::Tap => Host::Tap {
            ifname: opts.ifname()?,
            ifup: opts.get("ifup"),
        },
        Transport::Gre | Transport::L2tpv3 => {
            let v6 = opts.flag("v6")?;
            let udp = transport == Transport::L2tpv3 && opts.flag("udp")?;
            let ip = IpConfig {
                v6,
                udp,
                src: opts.string("src", "the local address to bind to (src=ADDRESS)")?,
                dst: opts.string("dst", "the address of the other end (dst=ADDRESS)")?,
                srcport: opts.port("srcport", transport, udp)?,
                dstport: opts.port("dstport", transport, udp)?,
            };
            if transport == Transport::Gre {
                Host::Gre(
                    ip,
                    GreConfig {
                        keys: opts
                            .pair("rx_key", "tx_key", |o, n| o.int32(n))?
                            // The 32 bits cpu_to_be32 keeps.
                            .map(|(r, t)| (r as u32, t as u32)),
                        sequence: opts.flag("sequence")?,
                        pin_sequence: opts.flag("pin_sequence")?,
                        v6,
                    },
                )
            } else {
                let sessions = opts
                    .pair("rx_session", "tx_session", |o, n| o.int32(n))?
                    .map(|(r, t)| (r as u32, t as u32));
                let Some((rx_session, tx_session)) = sessions else {
                    return Err(OptionError {
                        option: b"rx_session",
                        value: None,
                        problem: Problem::Missing {
                            why: "the l2tpv3 transport needs rx_session= and tx_session=",
                        },
                    });
                };
                let cookie64 = opts.flag("cookie64")?;
                let (max, hint) = if cookie64 {
                    (u64::MAX, "")
                } else {
                    (u64::from(u32::MAX), "set cookie64=1 for 64-bit cookies")
                };
                let l2tp = L2tpv3Config {
                    rx_session,
                    tx_session,
                    cookie64,
                    cookies: opts
                        .pair("rx_cookie", "tx_cookie", |o, n| o.ulong(n, 0, 0, max, hint))?,
                    counter: opts.flag("counter")?,
                    pin_counter: opts.flag("pin_counter")?,
                    udp,
                    v6,
                };
                Host::L2tpv3(ip, l2tp)
            }
        }
        Transport::Bess => Host::Bess {
            src: opts.unix_path("src")?,
            dst: opts.unix_path("dst")?.ok_or(OptionError {
                option: b"dst",
                value: None,
                problem: Problem::Missing {
                    why: "the bess transport connects to a Unix socket (dst=PATH)",
                },
            })?,
        },
        Transport::Fd => {
            let v = opts.string("fd", "the fd transport uses an inherited descriptor (fd=N)")?;
            Host::Fd {
                fd: strtofd(v.to_bytes()).ok_or(OptionError {
                    option: b"fd",
                    value: Some(v.to_bytes()),
                    problem: Problem::NotANumber {
                        form: "a descriptor number from 0 to 2147483647 is expected",
                    },
                })?,
            }
        }
        Transport::Vde => Host::Vde(VdeConfig {
            vnl: opts.get("vnl"),
            descr: opts.get("descr"),
            port: opts.get("port"),
            mode: opts.get("mode"),
            group: opts.get("group"),
        }),
    };
    Ok(Config {
        transport,
        common,
        host,
    })
}

/// Option look-ups with the checks of [`check`].
struct Opts<'r, 'a>(&'r Args<'a>);

impl<'a> Opts<'_, 'a> {
    fn get(&self, name: &str) -> Option<&'a CStr> {
        self.0.get(name.as_bytes())
    }

    fn err(name: &'static str, value: &'a CStr, problem: Problem<'a>) -> OptionError<'a> {
        OptionError {
            option: name.as_bytes(),
            value: Some(value.to_bytes()),
            problem,
        }
    }

    /// A required option.
    fn string(&self, name: &'static str, why: &'static str) -> Result<&'a CStr, OptionError<'a>> {
        self.get(name).ok_or(OptionError {
            option: name.as_bytes(),
            value: None,
            problem: Problem::Missing { why },
        })
    }

    /// A `kstrtoul(value, base)` number within `min..=max`, if given.
    fn ulong(
        &self,
        name: &'static str,
        base: u32,
        min: u64,
        max: u64,
        hint: &'static str,
    ) -> Result<Option<u64>, OptionError<'a>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let form = if base == 10 { DECIMAL } else { INTEGER };
        let n = kstrtoull(v.to_bytes(), base)
            .ok_or_else(|| Self::err(name, v, Problem::NotANumber { form }))?;
        if n < min || n > max {
            return Err(Self::err(
                name,
                v,
                Problem::OutOfRange {
                    min: min as i64,
                    max,
                    hint,
                },
            ));
        }
        Ok(Some(n))
    }

    /// A `kstrtoint(value, 0)` number, if given.
    fn int32(&self, name: &'static str) -> Result<Option<i32>, OptionError<'a>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match kstrtoint(v.to_bytes(), 0) {
            Some(n) => Ok(Some(n)),
            None if kstrtoll(v.to_bytes(), 0).is_some() => Err(Self::err(
                name,
                v,
                Problem::OutOfRange {
                    min: i32::MIN.into(),
                    max: i32::MAX as u64,
                    hint: INT_HINT,
                },
            )),
            None => Err(Self::err(name, v, Problem::NotANumber { form: INTEGER })),
        }
    }

    /// A flag the kernel half reads with `kstrtoint`: set if above 0.
    fn flag(&self, name: &'static str) -> Result<bool, OptionError<'a>> {
        Ok(self.int32(name)?.is_some_and(|v| v > 0))
    }

    /// Two options that come together or not at all, each read by `read`.
    fn pair<T>(
        &self,
        rx: &'static str,
        tx: &'static str,
        read: impl Fn(&Self, &'static str) -> Result<Option<T>, OptionError<'a>>,
    ) -> Result<Option<(T, T)>, OptionError<'a>> {
        match (read(self, rx)?, read(self, tx)?) {
            (Some(r), Some(t)) => Ok(Some((r, t))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(self.without(rx, tx)),
            (None, Some(_)) => Err(self.without(tx, rx)),
        }
    }

    fn without(&self, given: &'static str, partner: &'static str) -> OptionError<'a> {
        OptionError {
            option: given.as_bytes(),
            value: self.get(given).map(CStr::to_bytes),
            problem: Problem::WithoutPartner { partner },
        }
    }

    /// `ifname`, at most `IFNAMSIZ - 1` bytes (the C cut longer names).
    fn ifname(&self) -> Result<Option<&'a CStr>, OptionError<'a>> {
        let Some(v) = self.get("ifname") else {
            return Ok(None);
        };
        if v.to_bytes().len() >= IFNAMSIZ {
            return Err(Self::err(
                "ifname",
                v,
                Problem::TooLong { max: IFNAMSIZ - 1 },
            ));
        }
        Ok(Some(v))
    }

    /// `srcport` or `dstport`: needed with `udp=1`, refused without it
    /// (`getaddrinfo` has no ports for raw IP sockets).
    fn port(
        &self,
        name: &'static str,
        transport: Transport,
        udp: bool,
    ) -> Result<Option<&'a CStr>, OptionError<'a>> {
        match (self.get(name), udp) {
            (Some(v), true) => Ok(Some(v)),
            (None, false) => Ok(None),
            (None, true) => Err(OptionError {
                option: name.as_bytes(),
                value: None,
                problem: Problem::Missing {
                    why: "l2tpv3 over UDP (udp=1) needs srcport= and dstport=",
                },
            }),
            (Some(v), false) => Err(Self::err(
                name,
                v,
                Problem::NotFor {
                    transport,
                    why: if transport == Transport::Gre {
                        "GRE has no ports"
                    } else {
                        "ports are only for l2tpv3 over UDP (udp=1)"
                    },
                },
            )),
        }
    }

    /// A `bess` socket path, at most [`MAX_UN_LEN`] bytes (the C ignored a
    /// longer `src` and failed without a word on a longer `dst`).
    fn unix_path(&self, name: &'static str) -> Result<Option<&'a CStr>, OptionError<'a>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        if v.to_bytes().len() > MAX_UN_LEN {
            return Err(Self::err(name, v, Problem::TooLong { max: MAX_UN_LEN }));
        }
        Ok(Some(v))
    }
}

// ---------------------------------------------------------------------------
// encapsulation headers (vector_transports.c, the kernel half)

/// Why a received header is not one of ours (the kernel half's
/// `*_verify_header`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderMismatch {
    Short,
    Type { expected: u32, got: u32 },
    Key { expected: u32, got: u32 },
    Cookie { expected: u64, got: u64 },
    Session { expected: u32, got: u32 },
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The GRE header the kernel half puts in front of every frame, and
/// expects in front of every packet it reads (`build_gre_transport_data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GreLayout {
    /// Bytes of header sent.
    pub header_size: usize,
    /// Bytes in front of a received frame (plus the IPv4 header on IPv4).
    pub rx_header_size: usize,
    /// The flags word (first 16 bits), host order.
    pub flags: u16,
    pub key_offset: usize,
    pub sequence_offset: usize,
    pub config: GreConfig,
}

impl GreConfig {
    pub fn layout(&self) -> GreLayout {
        let mut l = GreLayout {
            header_size: 4,
            rx_header_size: 0,
            flags: 0,
            key_offset: 4,
            sequence_offset: 4,
            config: *self,
        };
        if self.keys.is_some() {
            l.flags |= GRE_MODE_KEY;
            l.header_size += 4;
            l.sequence_offset += 4;
        }
        if self.sequence {
            l.flags |= GRE_MODE_SEQUENCE;
            l.header_size += 4;
        }
        l.rx_header_size = l.header_size + if self.v6 { 0 } else { IPV4_HEADER_LEN };
        l
    }
}

impl GreLayout {
    /// The header for the next frame, into `out[..header_size]` (`out`
    /// must hold that much); `sequence` is the counter the kernel half
    /// keeps, advanced unless pinned.
    pub fn form(&self, out: &mut [u8], sequence: &mut u32) {
        out[..2].copy_from_slice(&self.flags.to_be_bytes());
        out[2..4].copy_from_slice(&GRE_IRB.to_be_bytes());
        if let Some((_, tx)) = self.config.keys {
            out[self.key_offset..self.key_offset + 4].copy_from_slice(&tx.to_be_bytes());
        }
        if self.config.sequence {
            let s = if self.config.pin_sequence {
                0
            } else {
                *sequence = sequence.wrapping_add(1);
                *sequence
            };
            out[self.sequence_offset..self.sequence_offset + 4].copy_from_slice(&s.to_be_bytes());
        }
    }

    /// Checks a received packet as the kernel half does: the IPv4 header
    /// (on IPv4) is skipped, then flags, protocol type and rx key must
    /// match. The sequence number is not checked.
    pub fn verify(&self, packet: &[u8]) -> Result<(), HeaderMismatch> {
        let h = if self.config.v6 {
            packet
        } else {
            packet.get(IPV4_HEADER_LEN..).ok_or(HeaderMismatch::Short)?
        };
        let expected = (u32::from(self.flags) << 16) | u32::from(GRE_IRB);
        let got = be32(h, 0).ok_or(HeaderMismatch::Short)?;
        if got != expected {
            return Err(HeaderMismatch::Type { expected, got });
        }
        if let Some((rx, _)) = self.config.keys {
            let got = be32(h, self.key_offset).ok_or(HeaderMismatch::Short)?;
            if got != rx {
                return Err(HeaderMismatch::Key { expected: rx, got });
            }
        }
        Ok(())
    }
}

/// The L2TPv3 header of the kernel half (`build_l2tpv3_transport_data`):
/// over UDP a data-packet word first, then the session, the cookie (if
/// any) and the counter (if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L2tpv3Layout {
    pub header_size: usize,
    /// Bytes in front of a received frame (plus the IPv4 header on raw
    /// IPv4).
    pub rx_header_size: usize,
    pub session_offset: usize,
    pub cookie_offset: usize,
    pub counter_offset: usize,
    pub config: L2tpv3Config,
}

impl L2tpv3Config {
    pub fn layout(&self) -> L2tpv3Layout {
        let mut l = L2tpv3Layout {
            header_size: 4,
            rx_header_size: 0,
            session_offset: 0,
            cookie_offset: 4,
            counter_offset: 4,
            config: *self,
        };
        if self.cookies.is_some() {
            let len = if self.cookie64 { 8 } else { 4 };
            l.header_size += len;
            l.counter_offset += len;
        }
        if self.counter {
            l.header_size += 4;
        }
        if self.udp {
            l.header_size += 4;
            l.counter_offset += 4;
            l.session_offset += 4;
            l.cookie_offset += 4;
        }
        l.rx_header_size = l.header_size
            + if self.v6 || self.udp {
                0
            } else {
                IPV4_HEADER_LEN
            };
        l
    }
}

impl L2tpv3Layout {
    /// The header for the next frame, into `out[..header_size]`;
    /// `counter` as in [`GreLayout::form`].
    pub fn form(&self, out: &mut [u8], counter: &mut u32) {
        let c = &self.config;
        if c.udp {
            out[..4].copy_from_slice(&L2TPV3_DATA_PACKET.to_be_bytes());
        }
        let at = self.session_offset;
        out[at..at + 4].copy_from_slice(&c.tx_session.to_be_bytes());
        if let Some((_, tx)) = c.cookies {
            let at = self.cookie_offset;
            if c.cookie64 {
                out[at..at + 8].copy_from_slice(&tx.to_be_bytes());
            } else {
                out[at..at + 4].copy_from_slice(&(tx as u32).to_be_bytes());
            }
        }
        if c.counter {
            let v = if c.pin_counter {
                0
            } else {
                *counter = counter.wrapping_add(1);
                *counter
            };
            let at = self.counter_offset;
            out[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Checks a received packet as the kernel half does: the IPv4 header
    /// skipped on raw IPv4, then the rx cookie and rx session must match.
    /// The data-packet word and the counter are not checked.
    pub fn verify(&self, packet: &[u8]) -> Result<(), HeaderMismatch> {
        let c = &self.config;
        let h = if !c.udp && !c.v6 {
            packet.get(IPV4_HEADER_LEN..).ok_or(HeaderMismatch::Short)?
        } else {
            packet
        };
        if let Some((rx, _)) = c.cookies {
            let got = if c.cookie64 {
                be64(h, self.cookie_offset)
            } else {
                be32(h, self.cookie_offset).map(u64::from)
            }
            .ok_or(HeaderMismatch::Short)?;
            let expected = if c.cookie64 { rx } else { u64::from(rx as u32) };
            if got != expected {
                return Err(HeaderMismatch::Cookie { expected, got });
            }
        }
        let got = be32(h, self.session_offset).ok_or(HeaderMismatch::Short)?;
        if got != c.rx_session {
            return Err(HeaderMismatch::Session {
                expected: c.rx_session,
                got,
            });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// opening the transports

/// An interface name in a `char[IFNAMSIZ]`, NUL-terminated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IfName([u8; IFNAMSIZ]);

impl IfName {
    /// `name` if it fits (at most `IFNAMSIZ - 1` bytes).
    pub fn new(name: &CStr) -> Option<IfName> {
        let b = name.to_bytes();
        if b.len() >= IFNAMSIZ {
            return None;
        }
        let mut n = [0u8; IFNAMSIZ];
        n[..b.len()].copy_from_slice(b);
        Some(IfName(n))
    }

    /// The next made-up tap name (`tapXXXXXX`, each `X` one of
    /// [`TAP_PADCHAR`]), from the generator state `seed`.
    pub fn random_tap(seed: &mut u64) -> IfName {
        let mut n = [0u8; IFNAMSIZ];
        n[..TAP_TEMPLATE.len()].copy_from_slice(TAP_TEMPLATE);
        for c in n.iter_mut().filter(|c| **c == b'X') {
            // xorshift64*: no libc rand(), whose state the C reseeded.
            *seed ^= *seed >> 12;
            *seed ^= *seed << 25;
            *seed ^= *seed >> 27;
            let r = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32;
            *c = TAP_PADCHAR[(r % TAP_PADCHAR.len() as u64) as usize];
        }
        IfName(n)
    }

    pub fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.0).unwrap_or(c"")
    }

    fn ifreq(&self) -> libc::ifreq {
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
        for (d, &s) in ifr.ifr_name.iter_mut().zip(&self.0) {
            *d = s as c_char;
        }
        ifr
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_cstr(), f)
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&file::CStrDisplay(self.as_cstr()), f)
    }
}

/// A socket address kept for the kernel half (`remote_addr`): the bytes of
/// a `sockaddr_in`, `sockaddr_in6` or `sockaddr_un`.
#[derive(Clone, Copy)]
pub struct Remote {
    bytes: [u8; size_of::<libc::sockaddr_storage>()],
    len: usize,
}

impl Remote {
    /// # Safety
    ///
    /// `addr` is readable for `len` bytes.
    unsafe fn from_raw(addr: *const u8, len: usize) -> Remote {
        let mut r = Remote {
            bytes: [0; size_of::<libc::sockaddr_storage>()],
            len: len.min(size_of::<libc::sockaddr_storage>()),
        };
        // SAFETY: `addr` is readable for `len` bytes by our contract, and `r.len <= len`.
        unsafe { core::ptr::copy_nonoverlapping(addr, r.bytes.as_mut_ptr(), r.len) };
        r
    }

    fn of<T>(addr: &T) -> Remote {
        // SAFETY: a live T is readable for its size.
        unsafe { Remote::from_raw((addr as *const T).cast(), size_of::<T>()) }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The port of an IPv4 or IPv6 address.
    pub fn port(&self) -> Option<u16> {
        let family = c_int::from(u16::from_ne_bytes([self.bytes[0], self.bytes[1]]));
        matches!(family, libc::AF_INET | libc::AF_INET6)
            .then(|| u16::from_be_bytes([self.bytes[2], self.bytes[3]]))
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Remote({:02x?})", self.as_bytes())
    }
}

/// The descriptors of an open transport: one for both directions, or (raw,
/// hybrid) one to read and one to write.
#[derive(Debug)]
pub enum Fds {
    Same(OwnedFd),
    Split { rx: OwnedFd, tx: OwnedFd },
}

impl Fds {
    pub fn rx(&self) -> RawFd {
        match self {
            Fds::Same(fd) | Fds::Split { rx: fd, .. } => fd.as_raw_fd(),
        }
    }

    pub fn tx(&self) -> RawFd {
        match self {
            Fds::Same(fd) | Fds::Split { tx: fd, .. } => fd.as_raw_fd(),
        }
    }
}

/// An open transport.
#[derive(Debug)]
pub struct Opened {
    pub fds: Fds,
    /// Where to send (`gre`, `l2tpv3`, `bess`).
    pub remote: Option<Remote>,
    /// The host interface (`tap`, `hybrid`, `raw`), for `ifup`.
    pub ifname: Option<IfName>,
}

/// What was being done when a host call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    OpenTun,
    AttachTap(IfName),
    PacketSocket,
    FindInterface(IfName),
    BindPacket(IfName),
    Socket,
    BindSrc,
    ConnectDst,
    BindUnix,
    Socketpair,
    Cloexec,
    CheckFd(RawFd),
    /// An interface name longer than `IFNAMSIZ - 1` (refused by [`check`]).
    LongName,
    /// Starting a helper program (`vde_plug`).
    StartHelper,
}

/// Why a transport did not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// A host call failed.
    Host { step: Step, errno: Errno },
    /// `getaddrinfo` of `src` (with `srcport`) or `dst` (with `dstport`)
    /// failed with `code`; `errno` for `EAI_SYSTEM`.
    Resolve {
        option: &'static str,
        code: c_int,
        errno: Errno,
    },
    /// Every made-up tap name was refused; the last one and why.
    NoTapName { last: IfName, errno: Errno },
    /// The transport is not opened by [`open_transport`] (`vde`).
    Unsupported,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            OpenError::Host { step, errno } => {
                match step {
                    Step::OpenTun => write!(f, "cannot open {}", file::CStrDisplay(TUN_DEVICE)),
                    Step::AttachTap(n) => write!(f, "cannot attach to tap device {n} (TUNSETIFF)"),
                    Step::PacketSocket => f.write_str("cannot create a packet socket"),
                    Step::FindInterface(n) => write!(f, "no interface {n} (SIOCGIFINDEX)"),
                    Step::BindPacket(n) => write!(f, "cannot bind a packet socket to {n}"),
                    Step::Socket => f.write_str("cannot create the socket"),
                    Step::BindSrc => f.write_str("cannot bind to src"),
                    Step::ConnectDst => f.write_str("cannot connect to dst"),
                    Step::BindUnix => f.write_str("cannot bind to src"),
                    Step::Socketpair => f.write_str("cannot create a socket pair"),
                    Step::Cloexec => f.write_str("cannot set close-on-exec"),
                    Step::CheckFd(fd) => write!(f, "fd={fd} is not an open descriptor"),
                    Step::LongName => write!(f, "ifname is longer than {} bytes", IFNAMSIZ - 1),
                    Step::StartHelper => f.write_str("cannot start vde_plug"),
                }?;
                write!(f, ": {errno}")
            }
            OpenError::Resolve {
                option,
                code,
                errno,
            } => {
                write!(f, "cannot resolve {option}: {}", GaiError(code))?;
                if code == libc::EAI_SYSTEM {
                    write!(f, " ({errno})")?;
                }
                Ok(())
            }
            OpenError::NoTapName { last, errno } => write!(
                f,
                "cannot create a tap device: {TAP_NAME_TRIES} names tried, the last ({last}) refused: {errno}"
            ),
            OpenError::Unsupported => f.write_str("not opened here"),
        }
    }
}

/// `gai_strerror(code)`.
pub struct GaiError(pub c_int);

impl fmt::Display for GaiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: gai_strerror returns a pointer to a static message for any code.
        let msg = unsafe { libc::gai_strerror(self.0) };
        if msg.is_null() {
            return write!(f, "error {}", self.0);
        }
        // SAFETY: a static NUL-terminated message.
        fmt::Display::fmt(&file::CStrDisplay(unsafe { CStr::from_ptr(msg) }), f)
    }
}

fn host_err(step: Step) -> impl FnOnce(Errno) -> OpenError {
    move |errno| OpenError::Host { step, errno }
}

/// Opens tap device `name` (created if it does not exist): `/dev/net/tun`
/// read-write and close-on-exec, `TUNSETIFF` with [`TAP_FLAGS`], then
/// `TUNSETOFFLOAD` with [`TAP_OFFLOADS`], whose failure is ignored as in C
/// (the kernel half then does without offloads).
pub fn open_tap(name: &IfName) -> Result<OwnedFd, OpenError> {
    let fd = file::open(TUN_DEVICE, libc::O_RDWR | libc::O_CLOEXEC, 0, false)
        .map_err(host_err(Step::OpenTun))?;
    let mut ifr = name.ifreq();
    ifr.ifr_ifru.ifru_flags = TAP_FLAGS;
    // SAFETY: TUNSETIFF reads and writes one struct ifreq, which `ifr` is.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) })
        .map_err(host_err(Step::AttachTap(*name)))?;
    // SAFETY: TUNSETOFFLOAD takes its flags as the integer argument.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD, TAP_OFFLOADS as c_ulong) };
    Ok(fd)
}

/// A tap device with a made-up name: up to [`TAP_NAME_TRIES`] names from
/// `seed`, each as [`open_tap`]. Only a refused name is retried; failing to
/// open `/dev/net/tun` ends the search (the C looped forever).
pub fn open_random_tap(seed: u64) -> Result<(OwnedFd, IfName), OpenError> {
    let mut state = seed | 1;
    let mut last = None;
    for _ in 0..TAP_NAME_TRIES {
        let name = IfName::random_tap(&mut state);
        match open_tap(&name) {
            Ok(fd) => return Ok((fd, name)),
            Err(OpenError::Host {
                step: Step::AttachTap(_),
                errno,
            }) => last = Some((name, errno)),
            Err(e) => return Err(e),
        }
    }
    let (last, errno) = last.unwrap_or((IfName::random_tap(&mut state), Errno::EBUSY));
    Err(OpenError::NoTapName { last, errno })
}

/// The interface index of `name`, asked on socket `fd` (`SIOCGIFINDEX`).
pub fn if_index(fd: RawFd, name: &IfName) -> nix::Result<c_int> {
    let mut ifr = name.ifreq();
    // SAFETY: SIOCGIFINDEX reads and writes one struct ifreq, which `ifr` is.
    Errno::result(unsafe { libc::ioctl(fd, libc::SIOCGIFINDEX, &mut ifr) })?;
    // SAFETY: SIOCGIFINDEX filled the index member of the union.
    Ok(unsafe { ifr.ifr_ifru.ifru_ifindex })
}

/// A packet socket on interface `name`, as the C's `create_raw_fd`:
/// `socket(AF_PACKET, SOCK_RAW, socket_proto)` (close-on-exec), then bound
/// to the interface with protocol `bind_proto`, with no error pending.
///
/// `socket_proto` is passed as the C passes it, in host byte order, which
/// the host reads as a protocol that never arrives: the socket receives
/// nothing until it is bound. Receive sockets are bound with `ETH_P_ALL`;
/// the send socket of `raw` with `ETH_P_IP` (the C's comment says that
/// turns its receiving off, but it makes the socket receive IPv4 frames,
/// which nothing reads; kept, since the host takes the bound protocol as
/// the protocol of frames sent without one).
pub fn open_packet(
    name: &IfName,
    socket_proto: u16,
    bind_proto: u16,
) -> Result<OwnedFd, OpenError> {
    // SAFETY: no memory arguments.
    let fd = Errno::result(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            c_int::from(socket_proto),
        )
    })
    .map(owned)
    .map_err(host_err(Step::PacketSocket))?;
    let ifindex = if_index(fd.as_raw_fd(), name).map_err(host_err(Step::FindInterface(*name)))?;
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = bind_proto.to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a sockaddr_ll of the length given.
    Errno::result(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map_err(host_err(Step::BindPacket(*name)))?;
    // Bound to an interface that is down (a tap `hybrid` just created),
    // the socket has ENETDOWN pending, which its first receive returns; the
    // kernel half takes that for a dead transport and stops sending until
    // the interface is closed (the C's hybrid devices did). The socket
    // receives once the interface is up, so the stale error is dropped.
    let _ = take_socket_error(fd.as_raw_fd());
    Ok(fd)
}

/// Reads and clears the pending error of socket `fd` (`SO_ERROR`).
pub fn take_socket_error(fd: RawFd) -> nix::Result<Option<Errno>> {
    let mut err: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: SO_ERROR writes one int, of the length given.
    Errno::result(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut err).cast(),
            &mut len,
        )
    })?;
    Ok((err != 0).then(|| Errno::from_raw(err)))
}

/// The receive socket of `raw` and `hybrid`: every protocol.
pub fn open_packet_rx(name: &IfName) -> Result<OwnedFd, OpenError> {
    open_packet(name, ETH_P_ALL, ETH_P_ALL)
}

/// The send socket of `raw` (see [`open_packet`]).
pub fn open_packet_tx(name: &IfName) -> Result<OwnedFd, OpenError> {
    open_packet(name, 0, ETH_P_IP)
}

fn setsockopt_int(fd: RawFd, level: c_int, name: c_int, value: c_int) -> nix::Result<()> {
    // SAFETY: the option value is one int of the length given.
    Errno::result(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            size_of::<c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `PACKET_QDISC_BYPASS` on packet socket `fd`.
pub fn enable_qdisc_bypass(fd: RawFd) -> nix::Result<()> {
    setsockopt_int(fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)
}

/// `PACKET_VNET_HDR` on packet socket `fd`: a `virtio_net_hdr` in front
/// of each frame.
pub fn enable_packet_vnet_hdr(fd: RawFd) -> nix::Result<()> {
    setsockopt_int(fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1)
}

/// The features of tun/tap descriptor `fd` (`TUNGETFEATURES`).
pub fn tun_features(fd: RawFd) -> nix::Result<c_uint> {
    let mut features: c_uint = 0;
    // SAFETY: TUNGETFEATURES writes one unsigned int.
    Errno::result(unsafe { libc::ioctl(fd, libc::TUNGETFEATURES, &mut features) })?;
    Ok(features)
}

/// Sets the vnet header size of tap descriptor `fd` to
/// [`VIRTIO_NET_HDR_LEN`] (`TUNSETVNETHDRSZ`).
pub fn set_tap_vnet_hdr_len(fd: RawFd) -> nix::Result<()> {
    let len = VIRTIO_NET_HDR_LEN as c_int;
    // SAFETY: TUNSETVNETHDRSZ reads one int.
    Errno::result(unsafe { libc::ioctl(fd, libc::TUNSETVNETHDRSZ, &len) }).map(drop)
}

/// The first address `getaddrinfo(host, service, hints)` gives: family,
/// socket type, protocol and the address. `Err` is the `EAI_*` code with
/// the errno (meaningful for `EAI_SYSTEM`). Blocks on name service look-ups,
/// as the C did.
pub fn resolve(
    host: &CStr,
    service: Option<&CStr>,
    hints: &libc::addrinfo,
) -> Result<(c_int, c_int, c_int, Remote), (c_int, Errno)> {
    let mut res: *mut libc::addrinfo = core::ptr::null_mut();
    let service = service.map_or(core::ptr::null(), CStr::as_ptr);
    // SAFETY: C strings (or NULL), a valid hints structure and a result pointer to fill.
    let rc = unsafe { libc::getaddrinfo(host.as_ptr(), service, hints, &mut res) };
    let errno = Errno::last();
    if rc != 0 || res.is_null() {
        return Err((if rc == 0 { libc::EAI_NONAME } else { rc }, errno));
    }
    // SAFETY: getaddrinfo returned a valid list, which we read before freeing.
    let first = unsafe { &*res };
    let out = (
        first.ai_family,
        first.ai_socktype,
        first.ai_protocol,
        // SAFETY: ai_addr points to ai_addrlen bytes of address.
        unsafe { Remote::from_raw(first.ai_addr.cast(), first.ai_addrlen as usize) },
    );
    // SAFETY: the list getaddrinfo allocated, no longer used.
    unsafe { libc::freeaddrinfo(res) };
    Ok(out)
}

/// The socket of `gre` and `l2tpv3`: a raw IP socket of the transport's
/// protocol, or (L2TPv3 over UDP) a UDP socket, of the family `v6` picks,
/// bound to `src` (with `srcport`); `dst` (with `dstport`) is where
/// frames go. Close-on-exec.
pub fn open_ip(transport: Transport, ip: &IpConfig<'_>) -> Result<(OwnedFd, Remote), OpenError> {
    // SAFETY: addrinfo is plain old data; all-zero is a valid (empty) value.
    let mut hints: libc::addrinfo = unsafe { core::mem::zeroed() };
    hints.ai_family = if ip.v6 { libc::AF_INET6 } else { libc::AF_INET };
    (hints.ai_socktype, hints.ai_protocol) = match (transport, ip.udp) {
        (Transport::L2tpv3, true) => (libc::SOCK_DGRAM, 0),
        (Transport::L2tpv3, false) => (libc::SOCK_RAW, IPPROTO_L2TP),
        _ => (libc::SOCK_RAW, IPPROTO_GRE),
    };
    let (family, socktype, protocol, local) =
        resolve(ip.src, ip.srcport, &hints).map_err(|(code, errno)| OpenError::Resolve {
            option: "src",
            code,
            errno,
        })?;
    let (_, _, _, remote) =
        resolve(ip.dst, ip.dstport, &hints).map_err(|(code, errno)| OpenError::Resolve {
            option: "dst",
            code,
            errno,
        })?;
    // SAFETY: no memory arguments.
    let fd = unsafe { libc::socket(family, socktype | libc::SOCK_CLOEXEC, protocol) };
    let fd = Errno::result(fd)
        .map(owned)
        .map_err(host_err(Step::Socket))?;
    let bytes = local.as_bytes();
    // SAFETY: `bytes` is the address getaddrinfo gave, of its length.
    Errno::result(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len() as libc::socklen_t,
        )
    })
    .map_err(host_err(Step::BindSrc))?;
    Ok((fd, remote))
}

/// A `sockaddr_un` for `path` (at most [`MAX_UN_LEN`] bytes, checked by
/// [`check`]; longer ones are cut), the rest zero.
pub fn unix_addr(path: &CStr) -> libc::sockaddr_un {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, &s) in addr.sun_path[..MAX_UN_LEN].iter_mut().zip(path.to_bytes()) {
        *d = s as c_char;
    }
    addr
}

const UN_LEN: libc::socklen_t = size_of::<libc::sockaddr_un>() as libc::socklen_t;

/// The socket of `bess`: a Unix sequential-packet socket, bound to `src`
/// if given, connected to `dst` (both addresses the whole `sockaddr_un`,
/// as in C). Close-on-exec. The remote address is `dst`'s.
pub fn open_bess(src: Option<&CStr>, dst: &CStr) -> Result<(OwnedFd, Remote), OpenError> {
    // SAFETY: no memory arguments.
    let fd = Errno::result(unsafe {
        libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0)
    })
    .map(owned)
    .map_err(host_err(Step::Socket))?;
    if let Some(src) = src {
        let addr = unix_addr(src);
        // SAFETY: a sockaddr_un of UN_LEN bytes.
        Errno::result(unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), UN_LEN) })
            .map_err(host_err(Step::BindUnix))?;
    }
    let addr = unix_addr(dst);
    // SAFETY: a sockaddr_un of UN_LEN bytes.
    Errno::result(unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), UN_LEN) })
        .map_err(host_err(Step::ConnectDst))?;
    Ok((fd, Remote::of(&addr)))
}

/// The socket pair of `vde`: ours first (close-on-exec), then the one
/// `vde_plug` inherits (not close-on-exec).
pub fn vde_socketpair() -> Result<[OwnedFd; 2], OpenError> {
    let mut sv: [c_int; 2] = [-1; 2];
    // SAFETY: `sv` has room for the two descriptors.
    Errno::result(unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, sv.as_mut_ptr())
    })
    .map_err(host_err(Step::Socketpair))?;
    let pair = [owned(sv[0]), owned(sv[1])];
    file::set_cloexec(sv[0]).map_err(host_err(Step::Cloexec))?;
    Ok(pair)
}

/// The argument vector of `vde_plug`: `--descr` (default `UML`),
/// `--port2`, `--mod2` and `--group2` when given, then `seqpacket` (the
/// `seqpacket://N` of the socket it inherits) and `vnl`. A missing `vnl`
/// ends the list early, as the C's NULL did (`vde_plug` then uses its
/// default).
pub fn vde_argv<'a>(cfg: &VdeConfig<'a>, seqpacket: &'a CStr) -> [Option<&'a CStr>; 12] {
    let mut argv: [Option<&'a CStr>; 12] = [None; 12];
    let mut n = 0;
    let mut push = |a: Option<&'a CStr>| {
        argv[n] = a;
        n += 1;
    };
    push(Some(c"vde_plug"));
    push(Some(c"--descr"));
    push(Some(cfg.descr.unwrap_or(c"UML")));
    for (flag, value) in [
        (c"--port2", cfg.port),
        (c"--mod2", cfg.mode),
        (c"--group2", cfg.group),
    ] {
        if value.is_some() {
            push(Some(flag));
            push(value);
        }
    }
    push(Some(seqpacket));
    push(cfg.vnl);
    argv
}

/// Whether `fd` is an open descriptor of this process.
pub fn fd_is_open(fd: RawFd) -> nix::Result<()> {
    // SAFETY: F_GETFD has no memory argument.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_GETFD) }).map(drop)
}

/// Opens the host side of `cfg` (every transport but `vde`, which needs
/// the kernel's helper runner: see [`vde_socketpair`] and [`vde_argv`]).
/// `seed` makes up the name of a `tap` without `ifname`. On failure nothing
/// stays open, except that a `fd` transport's descriptor is left to its
/// owner.
pub fn open_transport(cfg: &Config<'_>, seed: u64) -> Result<Opened, OpenError> {
    let opened = |fds, remote, ifname| Opened {
        fds,
        remote,
        ifname,
    };
    let ifname = |n: &CStr| {
        IfName::new(n).ok_or(OpenError::Host {
            step: Step::LongName,
            errno: Errno::ENAMETOOLONG,
        })
    };
    match cfg.host {
        Host::Tap { ifname: name, .. } => {
            let (fd, name) = match name {
                Some(n) => {
                    let n = ifname(n)?;
                    (open_tap(&n)?, n)
                }
                None => open_random_tap(seed)?,
            };
            Ok(opened(Fds::Same(fd), None, Some(name)))
        }
        Host::Hybrid { ifname: name, .. } => {
            let name = ifname(name)?;
            let tx = open_tap(&name)?;
            let rx = open_packet_rx(&name)?;
            Ok(opened(Fds::Split { rx, tx }, None, Some(name)))
        }
        Host::Raw { ifname: name, .. } => {
            let name = ifname(name)?;
            let rx = open_packet_rx(&name)?;
            let tx = open_packet_tx(&name)?;
            Ok(opened(Fds::Split { rx, tx }, None, Some(name)))
        }
        Host::Gre(ip, _) => {
            let (fd, remote) = open_ip(Transport::Gre, &ip)?;
            Ok(opened(Fds::Same(fd), Some(remote), None))
        }
        Host::L2tpv3(ip, _) => {
            let (fd, remote) = open_ip(Transport::L2tpv3, &ip)?;
            Ok(opened(Fds::Same(fd), Some(remote), None))
        }
        Host::Bess { src, dst } => {
            let (fd, remote) = open_bess(src, dst)?;
            Ok(opened(Fds::Same(fd), Some(remote), None))
        }
        Host::Fd { fd } => {
            fd_is_open(fd).map_err(host_err(Step::CheckFd(fd)))?;
            // The descriptor is handed to the driver, which closes it when
            // the interface goes down (as in C).
            // SAFETY: the fd transport gives this open descriptor to the device.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            Ok(opened(Fds::Same(fd), None, None))
        }
        Host::Vde(_) => Err(OpenError::Unsupported),
    }
}

// ---------------------------------------------------------------------------
// BPF

/// `uml_vector_default_bpf`'s program: drop the frames whose source MAC
/// is `mac` (our own, looped back by a packet socket), take the rest.
pub fn default_bpf(mac: &[u8; 6]) -> [libc::sock_filter; DEFAULT_BPF_LEN] {
    let insn = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mac_low = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
    let mac_high = u32::from(u16::from_be_bytes([mac[0], mac[1]]));
    [
        // ld [8]: bytes 2 to 5 of the source MAC
        insn(0x20, 0, 0, 0x0000_0008),
        // jeq #mac[2..6] jt 2 jf 5
        insn(0x15, 0, 3, mac_low),
        // ldh [6]: bytes 0 and 1 of the source MAC
        insn(0x28, 0, 0, 0x0000_0006),
        // jeq #mac[0..2] jt 4 jf 5
        insn(0x15, 0, 1, mac_high),
        // ret #0
        insn(0x6, 0, 0, 0x0000_0000),
        // ret #0x40000
        insn(0x6, 0, 0, 0x0004_0000),
    ]
}

/// Why a `bpffile` was not loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BpfError {
    Open(Errno),
    Stat(Errno),
    Read(Errno),
    NotRegular,
    Empty,
    /// Not a whole number of 8-byte instructions.
    Ragged {
        size: u64,
    },
    /// More instructions than the host takes ([`BPF_MAXINSNS`]).
    TooLong {
        insns: u64,
    },
    /// The file ended before `size` bytes were read.
    Short {
        size: u64,
        got: usize,
    },
}

impl fmt::Display for BpfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let insn = size_of::<libc::sock_filter>();
        match *self {
            BpfError::Open(e) => write!(f, "cannot open it: {e}"),
            BpfError::Stat(e) => write!(f, "cannot stat it: {e}"),
            BpfError::Read(e) => write!(f, "cannot read it: {e}"),
            BpfError::NotRegular => f.write_str("not a regular file"),
            BpfError::Empty => {
                f.write_str("empty: a classic BPF program has at least one instruction")
            }
            BpfError::Ragged { size } => write!(
                f,
                "{size} bytes is not a whole number of {insn}-byte classic BPF instructions"
            ),
            BpfError::TooLong { insns } => write!(
                f,
                "{insns} instructions, the host takes at most {BPF_MAXINSNS}"
            ),
            BpfError::Short { size, got } => {
                write!(f, "read {got} of its {size} bytes")
            }
        }
    }
}

/// Opens a `bpffile` (close-on-exec) and checks its size: the descriptor
/// and its length in bytes, a whole number of instructions, at most
/// [`BPF_MAXINSNS`] of them.
pub fn open_bpf_file(path: &CStr) -> Result<(OwnedFd, usize), BpfError> {
    let fd =
        file::open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0, false).map_err(BpfError::Open)?;
    let st = file::stat_fd(fd.as_raw_fd()).map_err(BpfError::Stat)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(BpfError::NotRegular);
    }
    let size = st.st_size as u64;
    let insn = size_of::<libc::sock_filter>() as u64;
    if size == 0 {
        return Err(BpfError::Empty);
    }
    if size % insn != 0 {
        return Err(BpfError::Ragged { size });
    }
    if size / insn > BPF_MAXINSNS as u64 {
        return Err(BpfError::TooLong { insns: size / insn });
    }
    Ok((fd, size as usize))
}

/// Fills `buf` from `fd` (short reads continued, `EINTR` not retried, as
/// the C's single `os_read_file`).
pub fn read_bpf(fd: RawFd, buf: &mut [u8]) -> Result<(), BpfError> {
    let mut got = 0;
    while got < buf.len() {
        match file::read(fd, &mut buf[got..]).map_err(BpfError::Read)? {
            0 => {
                return Err(BpfError::Short {
                    size: buf.len() as u64,
                    got,
                });
            }
            n => got += n,
        }
    }
    Ok(())
}

/// `SO_ATTACH_FILTER` of `prog` on `fd`.
///
/// # Safety
///
/// `prog` is readable, and its `filter` readable for `len` instructions,
/// unless the host rejects them (`EFAULT`).
pub unsafe fn attach_filter(fd: RawFd, prog: *const libc::sock_fprog) -> nix::Result<()> {
    // SAFETY: the caller's program, of the size given.
    Errno::result(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            prog.cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `SO_DETACH_FILTER` on `fd`; `prog` is passed as the option value, as
/// in C (the host reads only its first word).
///
/// # Safety
///
/// As [`attach_filter`].
pub unsafe fn detach_filter(fd: RawFd, prog: *const libc::sock_fprog) -> nix::Result<()> {
    // SAFETY: the caller's program, of the size given.
    Errno::result(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DETACH_FILTER,
            prog.cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })
    .map(drop)
}

// ---------------------------------------------------------------------------
// packet I/O: one system call each, retried on EINTR (the C's CATCH_EINTR)

fn count(rc: isize) -> nix::Result<usize> {
    Errno::result(rc).map(|n| n as usize)
}

/// `sendmsg(fd, msg, flags)`.
///
/// # Safety
///
/// `msg` and what it points to are valid for the call, unless the host
/// rejects them (`EFAULT`).
pub unsafe fn sendmsg(fd: RawFd, msg: *const libc::msghdr, flags: c_int) -> nix::Result<usize> {
    // SAFETY: forwarded caller guarantee.
    retry_eintr(|| count(unsafe { libc::sendmsg(fd, msg, flags) }))
}

/// `readv(fd, iov, iovcnt)`.
///
/// # Safety
///
/// `iov` holds `iovcnt` valid buffers, unless the host rejects them.
pub unsafe fn readv(fd: RawFd, iov: *const libc::iovec, iovcnt: c_int) -> nix::Result<usize> {
    // SAFETY: forwarded caller guarantee.
    retry_eintr(|| count(unsafe { libc::readv(fd, iov, iovcnt) }))
}

/// `writev(fd, iov, iovcnt)`.
///
/// # Safety
///
/// As [`readv`].
pub unsafe fn writev(fd: RawFd, iov: *const libc::iovec, iovcnt: c_int) -> nix::Result<usize> {
    // SAFETY: forwarded caller guarantee.
    retry_eintr(|| count(unsafe { libc::writev(fd, iov, iovcnt) }))
}

/// `sendmmsg(fd, msgvec, vlen, flags)`: how many messages were sent.
///
/// # Safety
///
/// `msgvec` holds `vlen` valid messages, unless the host rejects them.
pub unsafe fn sendmmsg(
    fd: RawFd,
    msgvec: *mut libc::mmsghdr,
    vlen: c_uint,
    flags: c_uint,
) -> nix::Result<usize> {
    // SAFETY: forwarded caller guarantee.
    retry_eintr(|| Errno::result(unsafe { libc::sendmmsg(fd, msgvec, vlen, flags as c_int) }))
        .map(|n| n as usize)
}

/// `recvmmsg(fd, msgvec, vlen, flags, NULL)`: how many messages arrived.
///
/// # Safety
///
/// As [`sendmmsg`], for writes.
pub unsafe fn recvmmsg(
    fd: RawFd,
    msgvec: *mut libc::mmsghdr,
    vlen: c_uint,
    flags: c_uint,
) -> nix::Result<usize> {
    retry_eintr(|| {
        // SAFETY: forwarded caller guarantee; no timeout.
        Errno::result(unsafe {
            libc::recvmmsg(fd, msgvec, vlen, flags as c_int, core::ptr::null_mut())
        })
    })
    .map(|n| n as usize)
}

#[cfg(test)]
mod tests;

/// Test helpers shared with the C ABI's tests: a network namespace of the
/// test's own, interfaces, frames.
#[cfg(test)]
pub(crate) mod test_support {
    use core::ffi::c_int;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::time::{Duration, Instant};

    /// An experimental EtherType (IEEE 802 local use), so that test frames
    /// are told from what the host sends on a new interface.
    pub const ETHERTYPE: u16 = 0x88b5;

    /// Runs `body` in a forked child in a network namespace of its own,
    /// which (with everything made in it) goes when the child exits.
    /// Returns false, saying why, when the test cannot run here (not root,
    /// or no namespaces); panics with the child's message if `body` fails.
    pub fn in_netns(test: &str, body: impl FnOnce() -> Result<(), String>) -> bool {
        // SAFETY: geteuid has no arguments.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("{test}: skipped (needs root for a network namespace)");
            return false;
        }
        let mut pipe: [c_int; 2] = [-1; 2];
        // SAFETY: `pipe` has room for two descriptors.
        let r = unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(r, 0);
        // SAFETY: both are fresh descriptors we own.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
        // The child runs the body and _exits; glibc makes malloc usable in
        // a child of a threaded process, and the body writes no stdio.
        // SAFETY: see above.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            drop(rd);
            // SAFETY: no memory arguments.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                // SAFETY: ends the child.
                unsafe { libc::_exit(77) };
            }
            let res =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or_else(|p| {
                    Err(p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
                        .unwrap_or_else(|| "panicked".into()))
                });
            let code = match res {
                Ok(()) => 0,
                Err(msg) => {
                    // SAFETY: writes a live buffer to our pipe.
                    unsafe { libc::write(wr.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
                    1
                }
            };
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(code) };
        }
        drop(wr);
        let mut msg = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            match crate::host::file::read(rd.as_raw_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => msg.extend_from_slice(&buf[..n]),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => panic!("reading the child's report: {e}"),
            }
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "{test}: child died: {status:#x}");
        match libc::WEXITSTATUS(status) {
            0 => true,
            77 => {
                eprintln!("{test}: skipped (unshare(CLONE_NEWNET) refused)");
                false
            }
            _ => panic!("{test}: {}", String::from_utf8_lossy(&msg)),
        }
    }

    fn ifreq(name: &str) -> libc::ifreq {
        // SAFETY: ifreq is plain old data; all-zero is valid.
        let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
        for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        ifr
    }

    /// Brings interface `name` up (`SIOCSIFFLAGS`).
    pub fn set_up(name: &str) -> Result<(), String> {
        // SAFETY: no memory arguments.
        let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if s < 0 {
            return Err(format!("socket: {}", nix::errno::Errno::last()));
        }
        // SAFETY: a fresh descriptor.
        let s = unsafe { OwnedFd::from_raw_fd(s) };
        let mut ifr = ifreq(name);
        // SAFETY: one struct ifreq for each request.
        unsafe {
            if libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
                return Err(format!(
                    "SIOCGIFFLAGS {name}: {}",
                    nix::errno::Errno::last()
                ));
            }
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
                return Err(format!(
                    "SIOCSIFFLAGS {name}: {}",
                    nix::errno::Errno::last()
                ));
            }
        }
        Ok(())
    }

    /// Runs `ip ARGS`; `Err` with its output if it fails, `Ok(false)` if
    /// `ip` is not installed.
    pub fn ip(args: &[&str]) -> Result<bool, String> {
        match std::process::Command::new("ip").args(args).output() {
            Err(_) => Ok(false),
            Ok(out) if out.status.success() => Ok(true),
            Ok(out) => Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }

    /// An Ethernet frame: `dst`, `src`, [`ETHERTYPE`], then `payload`.
    pub fn frame(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&ETHERTYPE.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Waits up to `ms` milliseconds for `fd` to be readable.
    pub fn readable(fd: RawFd, ms: i32) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        unsafe { libc::poll(&mut p, 1, ms) == 1 }
    }

    /// Reads packets from `fd` with `read` until one satisfies `want`
    /// (others, such as the host's IPv6 chatter, are skipped), for up to
    /// two seconds.
    pub fn recv_matching(
        fd: RawFd,
        mut read: impl FnMut(RawFd) -> Result<Vec<u8>, String>,
        want: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !readable(fd, left.as_millis() as i32) {
                return Err("no matching packet within 2 s".into());
            }
            let p = read(fd)?;
            if want(&p) {
                return Ok(p);
            }
        }
    }

    /// Whether `fd` gets no packet satisfying `want` within `ms`.
    pub fn nothing_matching(
        fd: RawFd,
        ms: u64,
        mut read: impl FnMut(RawFd) -> Result<Vec<u8>, String>,
        want: impl Fn(&[u8]) -> bool,
    ) -> Result<bool, String> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !readable(fd, left.as_millis() as i32) {
                return Ok(true);
            }
            if want(&read(fd)?) {
                return Ok(false);
            }
        }
    }

    /// Fails with `what` unless `cond`.
    pub fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
        if cond { Ok(()) } else { Err(what()) }
    }
}
