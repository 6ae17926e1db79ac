// SPDX-License-Identifier: GPL-2.0
//! The UML management console protocol: the safe core behind
//! [`crate::abi::um_drivers::mconsole_user`] (`arch/um/drivers/mconsole_user.c`).
//!
//! A client (`uml_mconsole`) sends one datagram per request to the Unix
//! socket `~/.uml/<umid>/mconsole`: a `struct mconsole_request`, three
//! host-order `u32`s (magic `0xcafebabe`, version 2, data length) and up to
//! [`MCONSOLE_MAX_DATA`] bytes of text, the command and its arguments. The
//! kernel answers with one or more `struct mconsole_reply` datagrams (error
//! flag, "more follows" flag, length including a NUL, text); when
//! `mconsole=notify:<socket>` is given it also sends `struct
//! mconsole_notify` datagrams (the socket name at boot, the panic message).
//!
//! What this module decides, and the C did not:
//!
//! * [`parse_request`] looks only at the bytes that arrived. The C parsed
//!   the datagram in place in a buffer (a `static` in the kernel half) that
//!   still held the previous request, so a datagram shorter than its header
//!   re-ran the previous command, and one shorter than its length field ran
//!   with the previous request's bytes; both are refused here as truncated.
//! * A request of the wrong version is refused. The C replied the version
//!   error and then ran the request anyway (a `return` is missing).
//! * An unversioned (version 0) datagram gets the C's raw-text refusal, but
//!   its text is only looked at within the datagram: the C ran `strlen`
//!   over the receive buffer, past its end when no NUL was in it.
//! * The text handed to the kernel half is the `len` bytes of the datagram,
//!   its NUL, and zeroes to the end of the field ([`Request::fill_data`]).
//!   Like the C, the NUL need not be in the datagram (a client may send
//!   just the header and `len` bytes) and `len` may be at most 511, so the
//!   text is always terminated within the field; unlike the C, nothing the
//!   field held before (the previous request, bytes after the text) is
//!   left after the NUL.
//! * Requests are only taken from the socket's owner and root (see
//!   [`check_sender`]); the C took them from anyone who could write the
//!   socket file.
//!
//! Everything else is as in C: the error texts, the order of the checks,
//! the command lookup (a case-sensitive prefix match in table order, so
//! `versionfoo` is `version`), the splitting of long replies and the notify
//! packet.

use core::ffi::{CStr, c_int};
use core::fmt;
use core::mem::{MaybeUninit, size_of};
use std::os::fd::{OwnedFd, RawFd};

use nix::errno::Errno;

use super::file::{Result, owned};

/// `MCONSOLE_MAGIC`: the first word of every request and notification.
pub const MCONSOLE_MAGIC: u32 = 0xcafe_babe;
/// `MCONSOLE_VERSION`: the only protocol version served.
pub const MCONSOLE_VERSION: u32 = 2;
/// `MCONSOLE_MAX_DATA`: the size of the text field of every packet. A
/// request's text and its NUL must fit, so the longest request text is one
/// byte shorter.
pub const MCONSOLE_MAX_DATA: usize = 512;

/// The header of a request or reply: three `u32`s.
pub const HEADER_LEN: usize = 12;
/// `sizeof(struct mconsole_request)` and `sizeof(struct mconsole_reply)`.
pub const PACKET_LEN: usize = HEADER_LEN + MCONSOLE_MAX_DATA;
/// The header of a notification: magic, version, type, length.
pub const NOTIFY_HEADER_LEN: usize = 16;
/// `sizeof(struct mconsole_notify)`.
pub const NOTIFY_LEN: usize = NOTIFY_HEADER_LEN + MCONSOLE_MAX_DATA;
/// The most text bytes one reply carries (the NUL takes the last byte).
pub const REPLY_CHUNK: usize = MCONSOLE_MAX_DATA - 1;
/// `sizeof(((struct mc_request *)0)->origin)`: room for the client's
/// address (a `sockaddr_un`).
pub const ORIGIN_LEN: usize = 128;

/// The refusal sent, as raw text, to a client that speaks no version (the
/// C's `mconsole_reply_v0` text).
pub const V0_REFUSAL: &str = "ERR Version 0 mconsole clients are not supported by this driver";

/// Where a command's handler runs (`enum mc_context`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// `MCONSOLE_INTR`: in the interrupt handler.
    Intr = 0,
    /// `MCONSOLE_PROC`: later, in a work queue (process context).
    Proc = 1,
}

/// One entry of the command table (`struct mconsole_command` without the
/// handler, which lives in the kernel half).
#[derive(Debug, PartialEq, Eq)]
pub struct Command {
    pub name: &'static CStr,
    pub context: Context,
}

const fn cmd(name: &'static CStr, context: Context) -> Command {
    Command { name, context }
}

/// The commands of `mconsole_user.c`, in its order (which decides between
/// prefixes). Uts information is per process with namespaces, so `version`
/// needs process context, as the C's comment says.
pub const COMMANDS: [Command; 13] = [
    cmd(c"version", Context::Proc),
    cmd(c"halt", Context::Proc),
    cmd(c"reboot", Context::Proc),
    cmd(c"config", Context::Proc),
    cmd(c"remove", Context::Proc),
    cmd(c"sysrq", Context::Intr),
    cmd(c"help", Context::Intr),
    cmd(c"cad", Context::Intr),
    cmd(c"stop", Context::Proc),
    cmd(c"go", Context::Intr),
    cmd(c"log", Context::Intr),
    cmd(c"proc", Context::Proc),
    // MCONSOLE_INTR in the C: show_stack() refuses to walk a stack from the
    // signal stack, which the SIGIO handler runs on whenever the request
    // interrupted the guest ("Received SIGSEGV in SIGSEGV handler"); in
    // process context it always can.
    cmd(c"stack", Context::Proc),
];

/// The bytes of `data` up to its first NUL: the string C code sees.
pub fn c_str(data: &[u8]) -> &[u8] {
    match data.iter().position(|&b| b == 0) {
        Some(nul) => &data[..nul],
        None => data,
    }
}

/// The C's `mconsole_parse`: the first command whose name starts the
/// request text (`strncmp(data, name, strlen(name))`), case-sensitive.
/// Only the text before the first NUL counts.
pub fn lookup(text: &[u8]) -> Option<usize> {
    let text = c_str(text);
    COMMANDS
        .iter()
        .position(|c| text.starts_with(c.name.to_bytes()))
}

/// A request that passed every check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The `len` text bytes of the datagram (at most [`REPLY_CHUNK`]).
    pub data: &'a [u8],
    /// Index of the command in [`COMMANDS`].
    pub index: usize,
}

impl Request<'_> {
    pub fn command(&self) -> &'static Command {
        &COMMANDS[self.index]
    }

    /// Writes the request text as the kernel half gets it: the text, its
    /// NUL, and zeroes to the end of the field. (The C left whatever the
    /// buffer held after the NUL; `mconsole_log` reads past the NUL of a
    /// bare `log`, which now finds zeroes.)
    pub fn fill_data(&self, out: &mut [u8; MCONSOLE_MAX_DATA]) {
        out[..self.data.len()].copy_from_slice(self.data);
        out[self.data.len()..].fill(0);
    }
}

/// Why a datagram is not a request. Each is answered with an error reply
/// ([`Reject::v0`] tells which format) whose text is the `Display` text,
/// and dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// No magic number: an unversioned (version 0) client, or fewer than
    /// four bytes. Answered in raw text with [`V0_REFUSAL`].
    Unversioned,
    /// The magic number, but not the whole header.
    TruncatedHeader { got: usize },
    /// A length field of [`MCONSOLE_MAX_DATA`] or more: no room for the
    /// NUL. Checked before the version, as in C.
    TooLarge { len: u32 },
    /// A version other than [`MCONSOLE_VERSION`].
    BadVersion { version: u32 },
    /// Fewer text bytes than the length field announces.
    TruncatedData { len: usize, got: usize },
    /// No command of [`COMMANDS`] starts the text.
    UnknownCommand,
}

impl Reject {
    /// Whether the refusal goes out as raw text (the version-0 format)
    /// rather than as a `struct mconsole_reply`.
    pub fn v0(&self) -> bool {
        matches!(self, Reject::Unversioned)
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reject::Unversioned => f.write_str(V0_REFUSAL),
            Reject::TruncatedHeader { got } => write!(
                f,
                "Truncated request: {got} bytes, the header alone is {HEADER_LEN}"
            ),
            Reject::TooLarge { .. } => f.write_str("Request too large"),
            Reject::BadVersion { .. } => write!(
                f,
                "This driver only supports version {MCONSOLE_VERSION} clients"
            ),
            Reject::TruncatedData { len, got } => write!(
                f,
                "Truncated request: {got} of its {len} data bytes arrived"
            ),
            Reject::UnknownCommand => f.write_str("Unknown command"),
        }
    }
}

fn word(packet: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([packet[at], packet[at + 1], packet[at + 2], packet[at + 3]])
}

/// Whether `packet` starts with the magic number: a versioned client,
/// answered in the reply format even when refused.
pub fn has_magic(packet: &[u8]) -> bool {
    packet.len() >= 4 && word(packet, 0) == MCONSOLE_MAGIC
}

/// Checks one datagram as `mconsole_get_request` received it, in the C's
/// order: magic (else version 0), length, version, command; plus the
/// truncation checks the C lacked. Bytes past a `struct mconsole_request`
/// are ignored (the C's receive buffer had no room for them), and so are
/// the bytes after the text.
pub fn parse_request(packet: &[u8]) -> core::result::Result<Request<'_>, Reject> {
    let packet = &packet[..packet.len().min(PACKET_LEN)];
    if !has_magic(packet) {
        return Err(Reject::Unversioned);
    }
    if packet.len() < HEADER_LEN {
        return Err(Reject::TruncatedHeader { got: packet.len() });
    }
    let version = word(packet, 4);
    let len = word(packet, 8);
    if len as usize >= MCONSOLE_MAX_DATA {
        return Err(Reject::TooLarge { len });
    }
    if version != MCONSOLE_VERSION {
        return Err(Reject::BadVersion { version });
    }
    let len = len as usize;
    let got = packet.len() - HEADER_LEN;
    if got < len {
        return Err(Reject::TruncatedData { len, got });
    }
    let data = &packet[HEADER_LEN..HEADER_LEN + len];
    let index = lookup(data).ok_or(Reject::UnknownCommand)?;
    Ok(Request { data, index })
}

/// Encodes a request the way `uml_mconsole` sends it: the whole struct,
/// the text zero-padded. `None` if the text does not fit.
pub fn encode_request<'b>(text: &[u8], buf: &'b mut [u8; PACKET_LEN]) -> Option<&'b [u8]> {
    if text.len() > REPLY_CHUNK {
        return None;
    }
    buf.fill(0);
    buf[0..4].copy_from_slice(&MCONSOLE_MAGIC.to_ne_bytes());
    buf[4..8].copy_from_slice(&MCONSOLE_VERSION.to_ne_bytes());
    buf[8..12].copy_from_slice(&(text.len() as u32).to_ne_bytes());
    buf[HEADER_LEN..HEADER_LEN + text.len()].copy_from_slice(text);
    Some(&buf[..])
}

// ---------------------------------------------------------------------------
// replies

/// One `struct mconsole_reply` datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyPacket<'a> {
    /// The caller's error value: nonzero only in the first packet.
    pub err: u32,
    /// Nonzero: more replies follow for this request.
    pub more: u32,
    /// The text of this packet, at most [`REPLY_CHUNK`] bytes (NULs are
    /// sent as they are, as the C's `memcpy` did).
    pub data: &'a [u8],
}

impl ReplyPacket<'_> {
    /// The length field: the text and its NUL.
    pub fn len_field(&self) -> u32 {
        self.data.len() as u32 + 1
    }

    /// The datagram's length: the header, the text and the NUL (the C's
    /// `sizeof(reply) + reply.len - sizeof(reply.data)`).
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.data.len() + 1
    }

    /// The datagram, in `buf`.
    pub fn encode<'b>(&self, buf: &'b mut [u8; PACKET_LEN]) -> &'b [u8] {
        buf[0..4].copy_from_slice(&self.err.to_ne_bytes());
        buf[4..8].copy_from_slice(&self.more.to_ne_bytes());
        buf[8..12].copy_from_slice(&self.len_field().to_ne_bytes());
        buf[HEADER_LEN..HEADER_LEN + self.data.len()].copy_from_slice(self.data);
        buf[HEADER_LEN + self.data.len()] = 0;
        &buf[..self.wire_len()]
    }
}

/// The packets of one reply, as `mconsole_reply_len` sends them: chunks of
/// [`REPLY_CHUNK`] bytes, the error value on the first only, `more` set on
/// all but the last, which carries the caller's `more`. An empty text is
/// one empty packet.
#[derive(Clone, Debug)]
pub struct ReplyPackets<'a> {
    rest: &'a [u8],
    err: u32,
    more: u32,
    done: bool,
}

/// The packets replying `text` with error value `err` and `more`.
pub fn reply_packets(text: &[u8], err: u32, more: u32) -> ReplyPackets<'_> {
    ReplyPackets {
        rest: text,
        err,
        more,
        done: false,
    }
}

impl<'a> Iterator for ReplyPackets<'a> {
    type Item = ReplyPacket<'a>;

    fn next(&mut self) -> Option<ReplyPacket<'a>> {
        if self.done {
            return None;
        }
        let n = self.rest.len().min(REPLY_CHUNK);
        let (data, rest) = self.rest.split_at(n);
        let last = rest.is_empty();
        let packet = ReplyPacket {
            err: self.err,
            more: if last { self.more } else { 1 },
            data,
        };
        self.err = 0;
        self.rest = rest;
        self.done = last;
        Some(packet)
    }
}

/// A `fmt::Write` into a byte slice that drops what does not fit.
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// The one-datagram answer to a refused datagram, formatted in place (no
/// second buffer on the interrupt path): a reply with the error flag and
/// `text`, or for a version-0 client (`v0`) the raw text without a NUL, as
/// `mconsole_reply_v0` sent it. Text past [`REPLY_CHUNK`] bytes is cut.
pub fn encode_error<'b>(
    text: &dyn fmt::Display,
    v0: bool,
    buf: &'b mut [u8; PACKET_LEN],
) -> &'b [u8] {
    use fmt::Write as _;
    let start = if v0 { 0 } else { HEADER_LEN };
    let mut cursor = Cursor {
        buf: &mut buf[start..start + REPLY_CHUNK],
        len: 0,
    };
    let _ = write!(cursor, "{text}");
    let n = cursor.len;
    if v0 {
        return &buf[..n];
    }
    buf[0..4].copy_from_slice(&1u32.to_ne_bytes());
    buf[4..8].copy_from_slice(&0u32.to_ne_bytes());
    buf[8..12].copy_from_slice(&(n as u32 + 1).to_ne_bytes());
    buf[HEADER_LEN + n] = 0;
    &buf[..HEADER_LEN + n + 1]
}

/// The number of packets a reply of `len` bytes takes.
pub const fn reply_packet_count(len: usize) -> usize {
    if len == 0 {
        1
    } else {
        len.div_ceil(REPLY_CHUNK)
    }
}

// ---------------------------------------------------------------------------
// notifications

/// The notification types (the anonymous enum of `struct mconsole_notify`).
pub mod notify_type {
    pub const SOCKET: u32 = 0;
    pub const PANIC: u32 = 1;
    pub const HANG: u32 = 2;
    pub const USER_NOTIFY: u32 = 3;
}

/// The `struct mconsole_notify` datagram `mconsole_notify` sends: magic,
/// version, the caller's type, and at most [`MCONSOLE_MAX_DATA`] bytes of
/// `data` (the rest is cut, as in C).
pub fn encode_notify<'b>(kind: u32, data: &[u8], buf: &'b mut [u8; NOTIFY_LEN]) -> &'b [u8] {
    let data = &data[..data.len().min(MCONSOLE_MAX_DATA)];
    buf[0..4].copy_from_slice(&MCONSOLE_MAGIC.to_ne_bytes());
    buf[4..8].copy_from_slice(&MCONSOLE_VERSION.to_ne_bytes());
    buf[8..12].copy_from_slice(&kind.to_ne_bytes());
    buf[12..16].copy_from_slice(&(data.len() as u32).to_ne_bytes());
    buf[NOTIFY_HEADER_LEN..NOTIFY_HEADER_LEN + data.len()].copy_from_slice(data);
    &buf[..NOTIFY_HEADER_LEN + data.len()]
}

// ---------------------------------------------------------------------------
// who may talk to the console

/// The credentials the host attached to a datagram (`struct ucred`, from
/// `SCM_CREDENTIALS`), in our namespaces: a sender whose pid is not visible
/// here shows pid 0, an unmapped uid shows the overflow uid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// What [`check_sender`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// The socket's owner, or root.
    Allowed,
    /// Someone else: refused.
    Refused { uid: u32, pid: i32 },
    /// No usable credentials: the datagram was queued before credential
    /// passing was turned on (the host then attaches none, which reads as
    /// pid 0 and the overflow uid), or comes from outside our pid
    /// namespace. Allowed only if the socket file lets no one else write
    /// to it ([`socket_file_owner_only`]).
    Unverified,
}

/// Who may use the console. Requests are taken from a process whose uid is
/// one of `owners` (the kernel process's real and effective uid) or 0.
///
/// Root is let in on purpose: it can ptrace, kill or read the memory of
/// the UML process anyway, so refusing it protects nothing, and
/// `sudo uml_mconsole` is how many run the client. "Root" is uid 0 in our
/// user namespace: a container's root maps to its own uid here.
pub fn check_sender(cred: Option<PeerCred>, owners: &[u32]) -> Sender {
    match cred {
        None => Sender::Unverified,
        Some(c) if c.uid == 0 || owners.contains(&c.uid) => Sender::Allowed,
        Some(c) if c.pid == 0 => Sender::Unverified,
        Some(c) => Sender::Refused {
            uid: c.uid,
            pid: c.pid,
        },
    }
}

/// Whether a socket file with this mode and owner lets only `owner` (and
/// privileged processes) send to it: a socket owned by `owner` that neither
/// its group nor others may write. Sending to a Unix socket by name needs
/// write permission on the file, checked by the host at each `sendto` (at
/// `connect` for a connected sender).
pub fn owner_only_mode(st_mode: u32, st_uid: u32, owner: u32) -> bool {
    st_mode & libc::S_IFMT == libc::S_IFSOCK && st_uid == owner && st_mode & 0o022 == 0
}

/// Why a request was refused before it was parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotOwner { uid: u32, owner: u32 },
    Unverified { owner: u32 },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refusal::NotOwner { uid, owner } => write!(
                f,
                "Permission denied: uid {uid} may not use this console, only uid {owner} and root"
            ),
            Refusal::Unverified { owner } => write!(
                f,
                "Permission denied: the sender could not be checked (request sent before the \
                 console checked senders, or from another pid namespace, and the socket is not \
                 owner-only); only uid {owner} and root may use this console, please retry"
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// the socket

/// The kernel process's real and effective uid: the socket's owners.
/// Asked of the host once: UML never changes its uids, and a request
/// should not cost two system calls more than it must.
/// A plain atomic rather than a `OnceLock`: it is first read in the SIGIO
/// handler, where nothing may wait, and computing it twice is harmless.
pub fn owner_uids() -> [u32; 2] {
    use core::sync::atomic::{AtomicU64, Ordering};
    // Both uids, real in the high half; all ones (uid -1, which no process
    // has) until asked.
    static OWNERS: AtomicU64 = AtomicU64::new(u64::MAX);
    let mut both = OWNERS.load(Ordering::Relaxed);
    if both == u64::MAX {
        let (uid, euid) = (nix::unistd::getuid(), nix::unistd::geteuid());
        both = u64::from(uid.as_raw()) << 32 | u64::from(euid.as_raw());
        OWNERS.store(both, Ordering::Relaxed);
    }
    [(both >> 32) as u32, both as u32]
}

/// Turns on `SO_PASSCRED` on `fd`: from now on the host attaches the
/// sender's credentials to every datagram sent to it.
pub fn enable_passcred(fd: RawFd) -> Result<()> {
    let on: c_int = 1;
    // SAFETY: `on` is an int of the size given.
    Errno::result(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&raw const on).cast(),
            size_of::<c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// A control-message buffer for one `SCM_CREDENTIALS`, aligned for
/// `struct cmsghdr`.
#[repr(C, align(8))]
struct CredControl([u8; CRED_SPACE]);

// SAFETY: CMSG_SPACE is pure arithmetic on its argument.
const CRED_SPACE: usize = unsafe { libc::CMSG_SPACE(size_of::<libc::ucred>() as u32) } as usize;
const _: () = assert!(core::mem::align_of::<libc::cmsghdr>() <= 8);

/// One datagram as [`recv_request`] received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes stored (at most the buffer's length).
    pub len: usize,
    /// Bytes of the sender's address stored in the origin buffer (0 for an
    /// unbound sender).
    pub origin_len: usize,
    /// The sender's credentials, if the host attached them.
    pub cred: Option<PeerCred>,
}

/// Receives one datagram from `fd` into `buf` (cutting what does not fit,
/// as `recvfrom` does) and the sender's address into `origin`, with the
/// credentials the host attached. Not retried on `EINTR`; `errno` is left
/// as `recvmsg` set it on failure. Descriptors a sender passed along are
/// closed unread.
pub fn recv_request(fd: RawFd, buf: &mut [u8], origin: &mut [u8; ORIGIN_LEN]) -> Result<Received> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = CredControl([0; CRED_SPACE]);
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_name = origin.as_mut_ptr().cast();
    msg.msg_namelen = ORIGIN_LEN as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = CRED_SPACE;
    // SAFETY: every pointer in `msg` points to a live buffer of the length given with it.
    let n = unsafe { libc::recvmsg(fd, &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(Errno::last());
    }
    let mut cred = None;
    // SAFETY: `msg` was filled by a successful recvmsg; the CMSG macros stay within its control buffer.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&raw const msg) };
    while !cmsg.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR only return headers inside the control buffer.
        let hdr = unsafe { cmsg.read_unaligned() };
        // SAFETY: as above; the data follows its header.
        let data = unsafe { libc::CMSG_DATA(cmsg) };
        // SAFETY: CMSG_LEN is pure arithmetic.
        let header_len = unsafe { libc::CMSG_LEN(0) } as usize;
        let payload = hdr.cmsg_len.saturating_sub(header_len);
        if hdr.cmsg_level == libc::SOL_SOCKET {
            if hdr.cmsg_type == libc::SCM_CREDENTIALS && payload >= size_of::<libc::ucred>() {
                // SAFETY: the payload holds a whole ucred (checked above).
                let c = unsafe { data.cast::<libc::ucred>().read_unaligned() };
                cred = Some(PeerCred {
                    pid: c.pid,
                    uid: c.uid,
                    gid: c.gid,
                });
            } else if hdr.cmsg_type == libc::SCM_RIGHTS {
                for i in 0..payload / size_of::<c_int>() {
                    // SAFETY: `i` indexes an int inside the payload.
                    let passed = unsafe { data.cast::<c_int>().add(i).read_unaligned() };
                    // The descriptor is ours now, and unwanted.
                    drop(owned(passed));
                }
            }
        }
        // SAFETY: `cmsg` is a header of `msg`'s control buffer.
        cmsg = unsafe { libc::CMSG_NXTHDR(&raw const msg, cmsg) };
    }
    Ok(Received {
        len: n as usize,
        origin_len: (msg.msg_namelen as usize).min(ORIGIN_LEN),
        cred,
    })
}

/// Sends `bytes` as one datagram from `fd` to the address `origin` (the
/// bytes of a `sockaddr_un`; empty: the connected peer), with `flags`. Not
/// retried on `EINTR`.
pub fn send_to(fd: RawFd, bytes: &[u8], origin: &[u8], flags: c_int) -> Result<usize> {
    // SAFETY: both buffers are live for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            flags,
            origin.as_ptr().cast(),
            origin.len() as libc::socklen_t,
        )
    };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(n as usize)
    }
}

/// How long a reply may wait in all for a slow client, counted from the
/// first time it has to: a reply that never waits never reads the clock.
pub struct Patience {
    limit: core::time::Duration,
    until: Option<std::time::Instant>,
}

impl Patience {
    pub fn new(limit: core::time::Duration) -> Self {
        Patience { limit, until: None }
    }

    /// Whether waiting some more is still within the limit.
    fn lasts(&mut self) -> bool {
        let now = std::time::Instant::now();
        now < *self.until.get_or_insert(now + self.limit)
    }
}

/// [`send_to`], but when the receiver's queue is full (`EAGAIN` on our
/// non-blocking socket) and `flags` does not say `MSG_DONTWAIT`, sends
/// again every 200 µs while `patience` lasts.
pub fn send_to_patiently(
    fd: RawFd,
    bytes: &[u8],
    origin: &[u8],
    flags: c_int,
    patience: &mut Patience,
) -> Result<usize> {
    loop {
        match send_to(fd, bytes, origin, flags) {
            Err(Errno::EAGAIN) if flags & libc::MSG_DONTWAIT == 0 && patience.lasts() => {
                std::thread::sleep(core::time::Duration::from_micros(200));
            }
            r => return r,
        }
    }
}

/// Whether the socket file `fd` is bound to lets no one but `owner` (and
/// privileged processes) send to it (see [`owner_only_mode`]). False for
/// an unbound or abstract socket, and if the file cannot be examined. The
/// name is the one the host reports for `fd`, so a file put in its place
/// later is owned by whoever put it there, and is refused unless that is
/// `owner`.
pub fn socket_file_owner_only(fd: RawFd, owner: u32) -> bool {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `addr` is writable for `len` bytes.
    if unsafe { libc::getsockname(fd, (&raw mut addr).cast(), &raw mut len) } < 0 {
        return false;
    }
    if addr.sun_family != libc::AF_UNIX as libc::sa_family_t {
        return false;
    }
    // A path name: NUL-terminated within sun_path, not empty (abstract
    // names start with a NUL).
    let mut path = [0u8; 109];
    let path_len = (len as usize)
        .saturating_sub(size_of::<libc::sa_family_t>())
        .min(addr.sun_path.len());
    for (d, &s) in path.iter_mut().zip(&addr.sun_path[..path_len]) {
        *d = s as u8;
    }
    let Ok(path) = CStr::from_bytes_until_nul(&path) else {
        return false;
    };
    if path.is_empty() {
        return false;
    }
    let mut st = MaybeUninit::<libc::stat64>::uninit();
    // SAFETY: `path` is a C string; `st` is writable for one stat64.
    if unsafe { libc::lstat64(path.as_ptr(), st.as_mut_ptr()) } < 0 {
        return false;
    }
    // SAFETY: lstat64 succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    owner_only_mode(st.st_mode, st.st_uid, owner)
}

/// A new unbound Unix datagram socket (the C's notify socket). Not
/// close-on-exec, as in C.
pub fn dgram_socket() -> Result<OwnedFd> {
    // SAFETY: no memory arguments.
    Errno::result(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0) }).map(owned)
}

/// Why [`notify_addr`] refused a socket name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong { len: usize, max: usize },
}

/// The address of the notify socket `name`. The C `strcpy`d the name into
/// `sun_path` whatever its length, overflowing the stack for a long one,
/// and sent an empty name to an abstract address made of uninitialised
/// stack bytes; both are refused here.
pub fn notify_addr(name: &CStr) -> core::result::Result<libc::sockaddr_un, NameError> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = name.to_bytes();
    if bytes.is_empty() {
        return Err(NameError::Empty);
    }
    // The C passes sizeof(target), so a name filling sun_path without a
    // NUL is still understood by the host.
    if bytes.len() > addr.sun_path.len() {
        return Err(NameError::TooLong {
            len: bytes.len(),
            max: addr.sun_path.len(),
        });
    }
    for (d, &s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = s as libc::c_char;
    }
    Ok(addr)
}

/// Sends `packet` from `fd` to the socket at `addr`, passing the whole
/// `sockaddr_un` as the C did.
pub fn send_to_addr(fd: RawFd, packet: &[u8], addr: &libc::sockaddr_un) -> Result<usize> {
    // SAFETY: `addr` is a whole sockaddr_un, viewed as its bytes.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            (addr as *const libc::sockaddr_un).cast::<u8>(),
            size_of::<libc::sockaddr_un>(),
        )
    };
    send_to(fd, packet, bytes, 0)
}

// The properties the unit tests and a fuzz target check; test code, so
// never in a kernel.
#[cfg(not(feature = "kernel"))]
pub mod properties;
#[cfg(not(feature = "kernel"))]
pub use properties::check_request_properties;
#[cfg(all(test, not(feature = "kernel")))]
pub(crate) mod tests;
