// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing `arch/um/drivers/mconsole_user.c` (declared in
//! `mconsole.h`): the host half of the UML management console, over
//! [`crate::host::mconsole`]. The kernel half (`mconsole_kern.c`) creates
//! the socket, calls [`mconsole_get_request`] from its interrupt handler
//! (and from the `stop` loop), runs the command handlers it defines and
//! answers through [`mconsole_reply`].
//!
//! The return conventions are the C's: `mconsole_get_request` 1 for a
//! request to run and 0 otherwise (with `errno` as the failed `recvmsg` left
//! it), the reply and notify functions 0 or a negative errno, nothing
//! retried on `EINTR`. Nothing allocates, and the stack holds what the C's
//! did: a request is received in place in the caller's `struct
//! mc_request`, and a reply is built in one 524-byte packet buffer.
//!
//! Where the C misbehaved, this does the safe thing (details in
//! [`crate::host::mconsole`]):
//!
//! * A malformed datagram (no magic, a wrong version, a length of 512 or
//!   more, truncated) gets an `ERR` reply and is dropped; the guest goes
//!   on. The C ran wrong-version requests after refusing them, and ran
//!   truncated ones with the previous request's bytes.
//! * After answering a bad datagram, `mconsole_get_request` goes on to the
//!   next one instead of returning 0: the socket is watched edge-triggered,
//!   so the C left requests queued behind a bad one until another datagram
//!   arrived. It gives up after [`MAX_DROPPED`] bad datagrams in one call,
//!   so a flood cannot hold the interrupt handler forever.
//! * Only the socket's owner and root may use the console: each call
//!   turns on `SO_PASSCRED` on the socket, and every datagram's sender is
//!   checked (see [`crate::host::mconsole::check_sender`]). Others get an
//!   `ERR` reply, sent without waiting, and the first refusal is logged.
//!   Datagrams queued before the first call carry no credentials (the
//!   host attaches them at send time); they are taken only if the socket
//!   file is owner-only (as with the usual umask), since then only the
//!   owner and privileged processes could have sent them. The kernel half
//!   creates the socket with `os_create_unix_socket`, which other users
//!   share, so `SO_PASSCRED` is not set there.
//! * Where the C would crash or overrun: a NULL request is 0 for
//!   `mconsole_get_request` and `-EFAULT` for the others; a NULL reply
//!   text is an empty reply, so the client still hears back
//!   (`mconsole_remove` passes NULL for an unexpected error); a NULL notify
//!   name or data is `-EFAULT`; a negative length is 0 (the C took a
//!   negative notify length as 512 and read that much); a notify socket
//!   name that does not fit `sun_path` is `-ENAMETOOLONG` (the C
//!   overflowed its stack) and an empty one `-EINVAL` (the C sent to an
//!   abstract address of uninitialised stack bytes).

use core::ffi::{CStr, c_char, c_int, c_uint, c_void};
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::os::fd::IntoRawFd;

use nix::errno::Errno;

use crate::abi::layout::UmlPtRegs;
use crate::host::mconsole::{
    self as mc, MCONSOLE_MAX_DATA, NameError, ORIGIN_LEN, PACKET_LEN, Refusal, Sender,
};
use crate::kernel::Level;
use crate::klog;

/// `struct mconsole_request`: a client's request as it travels.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MconsoleRequest {
    pub magic: u32,
    pub version: u32,
    pub len: u32,
    /// `char data[MCONSOLE_MAX_DATA]`.
    pub data: [u8; MCONSOLE_MAX_DATA],
}

/// `struct mconsole_reply`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MconsoleReply {
    pub err: u32,
    pub more: u32,
    pub len: u32,
    pub data: [u8; MCONSOLE_MAX_DATA],
}

/// `struct mconsole_notify`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MconsoleNotify {
    pub magic: u32,
    pub version: u32,
    /// The field `type`, an anonymous enum (`MCONSOLE_SOCKET`, ...).
    pub kind: c_int,
    pub len: u32,
    pub data: [u8; MCONSOLE_MAX_DATA],
}

/// A command handler of the kernel half.
pub type McHandler = unsafe extern "C" fn(*mut McRequest);

/// `struct mconsole_command`: one entry of the command table.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MconsoleCommand {
    pub command: *const c_char,
    pub handler: Option<McHandler>,
    /// `enum mc_context`.
    pub context: c_int,
}

/// `enum mc_context`.
pub const MCONSOLE_INTR: c_int = mc::Context::Intr as c_int;
pub const MCONSOLE_PROC: c_int = mc::Context::Proc as c_int;

/// `struct mc_request`: a received request, its sender's address, the
/// command found for it and (filled by the kernel half) the registers.
#[repr(C)]
pub struct McRequest {
    /// What `recvfrom` returned: the datagram's length, or -1.
    pub len: c_int,
    pub as_interrupt: c_int,
    pub originating_fd: c_int,
    pub originlen: c_uint,
    /// The sender's address (a `sockaddr_un`).
    pub origin: [u8; ORIGIN_LEN],
    pub request: MconsoleRequest,
    /// Points into the command table; only read by the kernel half.
    pub cmd: *mut MconsoleCommand,
    pub regs: UmlPtRegs,
}

const _: () = assert!(size_of::<MconsoleRequest>() == PACKET_LEN);
const _: () = assert!(size_of::<MconsoleReply>() == PACKET_LEN);
const _: () = assert!(size_of::<MconsoleNotify>() == mc::NOTIFY_LEN);

/// The kernel half's handlers and notify lock (`mconsole_kern.c`). Only
/// declared where this file's symbols are exported: a kernel without
/// `CONFIG_MCONSOLE` has none of them.
#[cfg(all(feature = "kernel", feature = "os-um-drivers-mconsole_user"))]
mod kern {
    use super::McRequest;

    unsafe extern "C" {
        pub fn mconsole_version(req: *mut McRequest);
        pub fn mconsole_halt(req: *mut McRequest);
        pub fn mconsole_reboot(req: *mut McRequest);
        pub fn mconsole_config(req: *mut McRequest);
        pub fn mconsole_remove(req: *mut McRequest);
        pub fn mconsole_sysrq(req: *mut McRequest);
        pub fn mconsole_help(req: *mut McRequest);
        pub fn mconsole_cad(req: *mut McRequest);
        pub fn mconsole_stop(req: *mut McRequest);
        pub fn mconsole_go(req: *mut McRequest);
        pub fn mconsole_log(req: *mut McRequest);
        pub fn mconsole_proc(req: *mut McRequest);
        pub fn mconsole_stack(req: *mut McRequest);
        /// Take and release the spinlock around the notify socket.
        pub fn lock_notify();
        pub fn unlock_notify();
    }
}

/// Stand-ins for the kernel half: unit tests, and kernels that keep the C
/// file (where nothing here is called). Each handler records its name.
#[cfg(not(all(feature = "kernel", feature = "os-um-drivers-mconsole_user")))]
mod kern {
    use core::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use super::McRequest;

    /// The name of the last stand-in handler called.
    pub static LAST_HANDLER: Mutex<&str> = Mutex::new("");

    macro_rules! stand_ins {
        ($($name:ident),* $(,)?) => {$(
            pub unsafe extern "C" fn $name(_req: *mut McRequest) {
                *LAST_HANDLER.lock().unwrap_or_else(|e| e.into_inner()) = stringify!($name);
            }
        )*};
    }

    stand_ins!(
        mconsole_version,
        mconsole_halt,
        mconsole_reboot,
        mconsole_config,
        mconsole_remove,
        mconsole_sysrq,
        mconsole_help,
        mconsole_cad,
        mconsole_stop,
        mconsole_go,
        mconsole_log,
        mconsole_proc,
        mconsole_stack,
    );

    static NOTIFY_LOCK: AtomicBool = AtomicBool::new(false);

    pub unsafe fn lock_notify() {
        while NOTIFY_LOCK
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
    }

    pub unsafe fn unlock_notify() {
        NOTIFY_LOCK.store(false, Ordering::Release);
    }
}

/// The handlers, in the order of [`mc::COMMANDS`].
const HANDLERS: [McHandler; mc::COMMANDS.len()] = [
    kern::mconsole_version,
    kern::mconsole_halt,
    kern::mconsole_reboot,
    kern::mconsole_config,
    kern::mconsole_remove,
    kern::mconsole_sysrq,
    kern::mconsole_help,
    kern::mconsole_cad,
    kern::mconsole_stop,
    kern::mconsole_go,
    kern::mconsole_log,
    kern::mconsole_proc,
    kern::mconsole_stack,
];

/// The C's `commands[]`.
struct CommandTable([MconsoleCommand; mc::COMMANDS.len()]);

// SAFETY: never written; the pointers are to static strings and functions.
unsafe impl Sync for CommandTable {}

static COMMAND_TABLE: CommandTable = CommandTable({
    let mut table = [MconsoleCommand {
        command: core::ptr::null(),
        handler: None,
        context: 0,
    }; mc::COMMANDS.len()];
    let mut i = 0;
    while i < table.len() {
        table[i] = MconsoleCommand {
            command: mc::COMMANDS[i].name.as_ptr(),
            handler: Some(HANDLERS[i]),
            context: mc::COMMANDS[i].context as c_int,
        };
        i += 1;
    }
    table
});

/// `char mconsole_socket_name[256]`: the socket's name, written by the
/// kernel half's init call and unlinked by [`mconsole_unlink_socket`].
#[cfg_attr(feature = "os-um-drivers-mconsole_user", unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static mut mconsole_socket_name: [c_char; 256] = [0; 256];

/// The most bad or refused datagrams one [`mconsole_get_request`] call
/// answers before giving up (more than a Unix datagram socket queues by
/// default, `net.unix.max_dgram_qlen` = 10).
pub const MAX_DROPPED: usize = 64;

/// Whether a failure to turn on `SO_PASSCRED` has been logged.
static PASSCRED_LOGGED: AtomicBool = AtomicBool::new(false);
/// Whether a refusal has been logged (only the first is).
static REFUSAL_LOGGED: AtomicBool = AtomicBool::new(false);

/// The descriptor `SO_PASSCRED` was last turned on for (-1: none).
static PASSCRED_FD: AtomicI32 = AtomicI32::new(-1);

/// Turns on `SO_PASSCRED` on `fd` unless it was turned on for that
/// descriptor number already: no system call per request (the round trip
/// of `mconsole version` is benchmarked). `fresh` asks for it anyway: a
/// datagram came without credentials, which the host attaches to every
/// datagram once the option is on, so the number now names another socket.
fn ensure_passcred(fd: c_int, fresh: bool) {
    if !fresh && PASSCRED_FD.load(Ordering::Relaxed) == fd {
        return;
    }
    PASSCRED_FD.store(fd, Ordering::Relaxed);
    if let Err(e) = mc::enable_passcred(fd) {
        if PASSCRED_LOGGED.swap(true, Ordering::Relaxed) {
            return;
        }
        klog!(
            Level::Warning,
            "mconsole: cannot turn on SO_PASSCRED, errno = {}: requests are only taken while the socket file is owner-only",
            e as c_int
        );
    }
}

/// The sender's address of `req`, as much of it as is valid.
fn origin(req: &McRequest) -> &[u8] {
    &req.origin[..(req.originlen as usize).min(ORIGIN_LEN)]
}

/// Sends `text` as the reply to `req`: 0, or the negative errno of the
/// first packet that could not be sent.
///
/// The console's socket is non-blocking, and a client's socket queues only
/// `net.unix.max_dgram_qlen` (10) datagrams: the C dropped the rest of a
/// longer reply, its end included, and `uml_mconsole` waited forever. A
/// packet the client's queue has no room for is sent again until it fits,
/// for at most [`REPLY_PATIENCE`] in all.
fn send_reply(req: &McRequest, text: &[u8], err: u32, more: u32, flags: c_int) -> c_int {
    let mut buf = [0u8; PACKET_LEN];
    let mut patience = mc::Patience::new(REPLY_PATIENCE);
    for packet in mc::reply_packets(text, err, more) {
        let bytes = packet.encode(&mut buf);
        let sent =
            mc::send_to_patiently(req.originating_fd, bytes, origin(req), flags, &mut patience);
        if let Err(e) = sent {
            return -(e as c_int);
        }
    }
    0
}

/// How long one reply may wait for a slow client to make room.
const REPLY_PATIENCE: core::time::Duration = core::time::Duration::from_secs(2);

/// Answers a refused or malformed datagram with one error packet (raw
/// text for a version-0 client). Send errors are ignored, as in C.
fn answer_error(req: &McRequest, text: &dyn fmt::Display, v0: bool, flags: c_int) {
    let mut buf = [0u8; PACKET_LEN];
    let packet = mc::encode_error(text, v0, &mut buf);
    let _ = mc::send_to(req.originating_fd, packet, origin(req), flags);
}

/// `req->request` as the bytes a datagram fills, as the C received it.
fn request_bytes(request: &mut MconsoleRequest) -> &mut [u8; PACKET_LEN] {
    // SAFETY: MconsoleRequest is PACKET_LEN bytes (asserted above) of integers and bytes with no
    // padding, so every byte pattern is a valid value; the borrow is exclusive.
    unsafe { &mut *(request as *mut MconsoleRequest).cast::<[u8; PACKET_LEN]>() }
}

/// Whether the sender of a datagram on `fd` with credentials `cred` may
/// use the console; the refusal if not (the first one is logged).
fn check_sender(fd: c_int, cred: Option<mc::PeerCred>) -> Option<Refusal> {
    let owners = mc::owner_uids();
    let owner = owners[1];
    let refusal = match mc::check_sender(cred, &owners) {
        Sender::Allowed => return None,
        Sender::Unverified if mc::socket_file_owner_only(fd, owner) => return None,
        Sender::Unverified => Refusal::Unverified { owner },
        Sender::Refused { uid, .. } => Refusal::NotOwner { uid, owner },
    };
    if !REFUSAL_LOGGED.swap(true, Ordering::Relaxed) {
        let (uid, pid) = cred.map_or((-1, 0), |c| (i64::from(c.uid), c.pid));
        klog!(
            Level::Warning,
            "mconsole: refused a request from uid {uid} pid {pid}: {refusal} (further refusals are not logged)"
        );
    }
    Some(refusal)
}

/// Receives the next request on `fd` into `req`: 1 if there is one to
/// run, with `req->cmd` set; 0 when the socket has nothing (or fails),
/// after answering and dropping any bad datagrams before it.
///
/// # Safety
///
/// `req` is NULL or valid for reads and writes.
#[cfg_attr(feature = "os-um-drivers-mconsole_user", unsafe(no_mangle))]
pub unsafe extern "C" fn mconsole_get_request(fd: c_int, req: *mut McRequest) -> c_int {
    if req.is_null() {
        return 0;
    }
    ensure_passcred(fd, false);
    // SAFETY: the caller's request, valid for the call by our contract.
    let req = unsafe { &mut *req };
    for _ in 0..MAX_DROPPED {
        // Received in place, as in C; only the bytes that arrived are
        // looked at.
        req.originlen = ORIGIN_LEN as c_uint;
        let got = match mc::recv_request(fd, request_bytes(&mut req.request), &mut req.origin) {
            Ok(got) => got,
            Err(_) => {
                req.len = -1;
                return 0;
            }
        };
        if got.cred.is_none() {
            ensure_passcred(fd, true);
        }
        req.len = got.len as c_int;
        req.originlen = got.origin_len as c_uint;
        req.originating_fd = fd;
        req.cmd = core::ptr::null_mut();
        let packet = &request_bytes(&mut req.request)[..got.len];
        let versioned = mc::has_magic(packet);
        let parsed = mc::parse_request(packet).map(|r| (r.index, r.data.len()));

        if let Some(refusal) = check_sender(fd, got.cred) {
            // Never wait on someone who may not talk to us.
            if versioned {
                answer_error(req, &refusal, false, libc::MSG_DONTWAIT);
            } else {
                answer_error(
                    req,
                    &format_args!("ERR {refusal}"),
                    true,
                    libc::MSG_DONTWAIT,
                );
            }
            continue;
        }
        match parsed {
            Ok((index, len)) => {
                // The header is already what was checked; the text gets
                // its NUL and the bytes after it are cleared.
                req.request.data[len..].fill(0);
                req.cmd = (&raw const COMMAND_TABLE.0[index]).cast_mut();
                return 1;
            }
            Err(reject) => answer_error(req, &reject, reject.v0(), 0),
        }
    }
    0
}

/// Sends the first `total` bytes of `str` as the reply to `req`, in
/// packets of at most 511 bytes: `err` on the first, `more` on the last
/// (the others say more follows). 0, or the negative errno of the first
/// packet that could not be sent.
///
/// # Safety
///
/// `req` is NULL or a request [`mconsole_get_request`] filled; `str` is
/// NULL or readable for `total` bytes.
#[cfg_attr(feature = "os-um-drivers-mconsole_user", unsafe(no_mangle))]
pub unsafe extern "C" fn mconsole_reply_len(
    req: *mut McRequest,
    str: *const c_char,
    total: c_int,
    err: c_int,
    more: c_int,
) -> c_int {
    if req.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: a valid request by our contract.
    let req = unsafe { &*req };
    let total = usize::try_from(total).unwrap_or(0);
    let text: &[u8] = if str.is_null() || total == 0 {
        &[]
    } else {
        // SAFETY: `str` is readable for `total` bytes by our contract.
        unsafe { core::slice::from_raw_parts(str.cast(), total) }
    };
    send_reply(req, text, err as u32, more as u32, 0)
}

/// [`mconsole_reply_len`] of the C string `str`.
///
/// # Safety
///
/// `req` as for [`mconsole_reply_len`]; `str` is NULL or a C string.
#[cfg_attr(feature = "os-um-drivers-mconsole_user", unsafe(no_mangle))]
pub unsafe extern "C" fn mconsole_reply(
    req: *mut McRequest,
    str: *const c_char,
    err: c_int,
    more: c_int,
) -> c_int {
    if req.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: a valid request by our contract.
    let req = unsafe { &*req };
    let text: &[u8] = if str.is_null() {
        &[]
    } else {
        // SAFETY: a C string by our contract.
        unsafe { CStr::from_ptr(str) }.to_bytes()
    };
    send_reply(req, text, err as u32, more as u32, 0)
}

/// Removes the socket file [`mconsole_socket_name`] names; always 0.
#[cfg_attr(feature = "os-um-drivers-mconsole_user", unsafe(no_mangle))]
pub extern "C" fn mconsole_unlink_socket() -> c_int {
    // SAFETY: the kernel half writes the name once, at init; this reads a copy.
    let name: [c_char; 256] = unsafe { (&raw const mconsole_socket_name).read() };
    let bytes = name.map(|c| c as u8);
    if let Ok(path) = CStr::from_bytes_until_nul(&bytes) {
        if !path.is_empty() {
            // SAFETY: a C string.
            unsafe { libc::unlink(path.as_ptr()) };
        }
    }
    0
}

/// The socket notifications are sent from, made on first use.
static NOTIFY_SOCK: AtomicI32 = AtomicI32::new(-1);

/// Sends a notification of `type` with the first `len` bytes of `data`
/// (at most 512) to the Unix socket `sock_name`. 0, or a negative errno
/// (logged, as in C, when making the socket or sending failed).
///
/// # Safety
///
/// `sock_name` is NULL or a C string; `data` is NULL or readable for
/// `len` bytes (at most 512 of them are read).
#[cfg_attr(feature = "os-um-drivers-mconsole_user", unsafe(no_mangle))]
pub unsafe extern "C" fn mconsole_notify(
    sock_name: *mut c_char,
    kind: c_int,
    data: *const c_void,
    len: c_int,
) -> c_int {
    let mut err = 0;
    // SAFETY: the kernel half's spinlock (a stand-in outside it), released below.
    unsafe { kern::lock_notify() };
    if NOTIFY_SOCK.load(Ordering::Relaxed) < 0 {
        match mc::dgram_socket() {
            Ok(fd) => NOTIFY_SOCK.store(fd.into_raw_fd(), Ordering::Relaxed),
            Err(e) => {
                err = -(e as c_int);
                klog!(
                    Level::Err,
                    "mconsole_notify - socket failed, errno = {}",
                    e as c_int
                );
            }
        }
    }
    // SAFETY: taken above.
    unsafe { kern::unlock_notify() };
    if err != 0 {
        return err;
    }

    if sock_name.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: a C string by our contract.
    let name = unsafe { CStr::from_ptr(sock_name) };
    let target = match mc::notify_addr(name) {
        Ok(addr) => addr,
        Err(e) => {
            let errno = match e {
                NameError::Empty => Errno::EINVAL,
                NameError::TooLong { .. } => Errno::ENAMETOOLONG,
            };
            klog!(
                Level::Err,
                "mconsole_notify - unusable socket name ({e:?}), errno = {}",
                errno as c_int
            );
            return -(errno as c_int);
        }
    };
    let len = usize::try_from(len).unwrap_or(0).min(MCONSOLE_MAX_DATA);
    let data: &[u8] = if len == 0 {
        &[]
    } else if data.is_null() {
        return -libc::EFAULT;
    } else {
        // SAFETY: readable for at least `len` bytes by our contract.
        unsafe { core::slice::from_raw_parts(data.cast(), len) }
    };
    let mut buf = [0u8; mc::NOTIFY_LEN];
    let packet = mc::encode_notify(kind as u32, data, &mut buf);
    match mc::send_to_addr(NOTIFY_SOCK.load(Ordering::Relaxed), packet, &target) {
        Ok(_) => 0,
        Err(e) => {
            klog!(
                Level::Err,
                "mconsole_notify - sendto failed, errno = {}",
                e as c_int
            );
            -(e as c_int)
        }
    }
}

// Unit tests run on the host, with the stand-ins for the kernel half.
#[cfg(all(test, not(feature = "kernel")))]
mod tests {
    //! The mconsole_user.c ABI over real sockets, called as the kernel
    //! half calls it (with stand-ins for its handlers).

    use std::ffi::CString;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;
    use crate::host::{file, socket};

    // The prototypes of mconsole.h: these only compile if the signatures
    // match.
    type GetRequest = unsafe extern "C" fn(c_int, *mut McRequest) -> c_int;
    type ReplyLen =
        unsafe extern "C" fn(*mut McRequest, *const c_char, c_int, c_int, c_int) -> c_int;
    type Reply = unsafe extern "C" fn(*mut McRequest, *const c_char, c_int, c_int) -> c_int;
    type UnlinkSocket = extern "C" fn() -> c_int;
    type Notify = unsafe extern "C" fn(*mut c_char, c_int, *const c_void, c_int) -> c_int;

    const GET_REQUEST: GetRequest = mconsole_get_request;
    const REPLY_LEN: ReplyLen = mconsole_reply_len;
    const REPLY: Reply = mconsole_reply;
    const UNLINK_SOCKET: UnlinkSocket = mconsole_unlink_socket;
    const NOTIFY: Notify = mconsole_notify;

    fn new_req() -> Box<McRequest> {
        // SAFETY: McRequest is integers, byte arrays and a raw pointer: all-zero is valid.
        Box::new(unsafe { core::mem::zeroed() })
    }

    fn get(fd: &OwnedFd, req: &mut McRequest) -> c_int {
        // SAFETY: a valid request.
        unsafe { GET_REQUEST(fd.as_raw_fd(), req) }
    }

    /// A connected datagram pair: (the console's end, the client's end),
    /// non-blocking, as the kernel half makes its socket.
    fn raw_pair() -> (OwnedFd, OwnedFd) {
        let [server, client] = socket::pipe(false, true).unwrap();
        file::set_fd_block(server.as_raw_fd(), false).unwrap();
        file::set_fd_block(client.as_raw_fd(), false).unwrap();
        (server, client)
    }

    /// [`raw_pair`] after a first [`mconsole_get_request`], which found
    /// nothing, with credential passing on, as after the first interrupt.
    /// (It is turned on here too: the tests run in parallel, so another
    /// test's socket may have had this descriptor number, which
    /// `ensure_passcred` remembers.)
    fn pair() -> (OwnedFd, OwnedFd) {
        let (server, client) = raw_pair();
        assert_eq!(get(&server, &mut new_req()), 0);
        mc::enable_passcred(server.as_raw_fd()).unwrap();
        (server, client)
    }

    fn request(text: &str) -> Vec<u8> {
        let mut buf = [0u8; PACKET_LEN];
        mc::encode_request(text.as_bytes(), &mut buf)
            .unwrap()
            .to_vec()
    }

    fn send(fd: &OwnedFd, bytes: &[u8]) {
        assert_eq!(mc::send_to(fd.as_raw_fd(), bytes, &[], 0), Ok(bytes.len()));
    }

    /// The next datagram on `fd`, or None.
    fn recv(fd: &OwnedFd) -> Option<Vec<u8>> {
        let mut buf = [0u8; 1024];
        let n = file::read(fd.as_raw_fd(), &mut buf).ok()?;
        Some(buf[..n].to_vec())
    }

    /// A reply packet: (err, more, text).
    fn reply_of(p: &[u8]) -> (u32, u32, Vec<u8>) {
        let w = |at: usize| u32::from_ne_bytes(p[at..at + 4].try_into().unwrap());
        let len = w(8) as usize;
        assert_eq!(p.len(), 12 + len, "reply length field");
        assert_eq!(p[p.len() - 1], 0, "NUL");
        (w(0), w(4), p[12..p.len() - 1].to_vec())
    }

    fn command_name(req: &McRequest) -> &CStr {
        assert!(!req.cmd.is_null());
        // SAFETY: cmd points into the command table, whose names are C strings.
        unsafe { CStr::from_ptr((*req.cmd).command) }
    }

    #[test]
    fn the_table_is_the_c_table() {
        let names: Vec<_> = COMMAND_TABLE
            .0
            .iter()
            // SAFETY: the table's names are static C strings.
            .map(|c| unsafe { CStr::from_ptr(c.command) }.to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "version", "halt", "reboot", "config", "remove", "sysrq", "help", "cad", "stop",
                "go", "log", "proc", "stack"
            ]
        );
        for (entry, spec) in COMMAND_TABLE.0.iter().zip(&mc::COMMANDS) {
            assert_eq!(entry.context, spec.context as c_int);
            let handler = entry.handler.unwrap();
            // SAFETY: the stand-ins ignore their argument.
            unsafe { handler(core::ptr::null_mut()) };
            let called = *kern::LAST_HANDLER.lock().unwrap();
            assert_eq!(
                called.strip_prefix("mconsole_"),
                spec.name.to_str().ok(),
                "the handler of {:?}",
                spec.name
            );
        }
        assert_eq!((MCONSOLE_INTR, MCONSOLE_PROC), (0, 1));
    }

    #[test]
    fn a_request_is_handed_over_as_the_c_did() {
        let (server, client) = pair();
        send(&client, &request("config ubd1=foo"));
        let mut req = new_req();
        req.request.data = [0xff; MCONSOLE_MAX_DATA];
        assert_eq!(get(&server, &mut req), 1);
        assert_eq!(req.len, 524, "the datagram's length");
        assert_eq!(req.originating_fd, server.as_raw_fd());
        assert_eq!(req.originlen, 0, "a socketpair peer has no name");
        assert_eq!(req.request.magic, mc::MCONSOLE_MAGIC);
        assert_eq!(req.request.version, 2);
        assert_eq!(req.request.len, 15);
        assert_eq!(&req.request.data[..16], b"config ubd1=foo\0");
        assert!(req.request.data[16..].iter().all(|&b| b == 0));
        assert_eq!(command_name(&req), c"config");
        // SAFETY: as above.
        assert_eq!(unsafe { (*req.cmd).context }, MCONSOLE_PROC);
        // Nothing more: 0, with errno from recvmsg.
        assert_eq!(get(&server, &mut req), 0);
        assert_eq!(Errno::last(), Errno::EAGAIN);
        assert_eq!(req.len, -1);
        assert_eq!(recv(&client), None, "no reply for a good request");
    }

    #[test]
    fn bad_datagrams_are_answered_and_skipped() {
        let (server, client) = pair();
        let mut bad_version = request("halt");
        bad_version[4..8].copy_from_slice(&1u32.to_ne_bytes());
        let mut truncated = request("version");
        truncated.truncate(12 + 4);
        let mut too_large = request("help");
        too_large[8..12].copy_from_slice(&512u32.to_ne_bytes());
        send(&client, &bad_version);
        send(&client, b"help");
        send(&client, &truncated);
        send(&client, &too_large);
        send(&client, &request("Version"));
        send(&client, &request("version"));
        let mut req = new_req();
        assert_eq!(get(&server, &mut req), 1);
        assert_eq!(command_name(&req), c"version");

        let err = |text: &str| (1, 0, text.as_bytes().to_vec());
        assert_eq!(
            reply_of(&recv(&client).unwrap()),
            err("This driver only supports version 2 clients")
        );
        // Version 0: raw text, no NUL.
        assert_eq!(
            recv(&client).unwrap(),
            b"ERR Version 0 mconsole clients are not supported by this driver"
        );
        assert_eq!(
            reply_of(&recv(&client).unwrap()),
            err("Truncated request: 4 of its 7 data bytes arrived")
        );
        assert_eq!(reply_of(&recv(&client).unwrap()), err("Request too large"));
        assert_eq!(reply_of(&recv(&client).unwrap()), err("Unknown command"));
        assert_eq!(recv(&client), None);
    }

    #[test]
    fn nothing_of_the_previous_request_is_reused() {
        // The C parsed in place over the previous request: a short datagram
        // re-ran it, or borrowed its bytes.
        let (server, client) = pair();
        let mut req = new_req();
        send(&client, &request(&format!("log {}", "A".repeat(400))));
        assert_eq!(get(&server, &mut req), 1);
        // A bare "log" of 15 bytes: its handler reads past the NUL.
        let mut short = request("log");
        short.truncate(15);
        send(&client, &short);
        assert_eq!(get(&server, &mut req), 1);
        assert_eq!(req.len, 15);
        assert_eq!(req.request.len, 3);
        assert_eq!(&req.request.data[..4], b"log\0");
        assert!(req.request.data[4..].iter().all(|&b| b == 0));
        // Less than a header: refused, not the previous request again.
        send(&client, &request("halt")[..8]);
        assert_eq!(get(&server, &mut req), 0);
        assert!(req.cmd.is_null());
        assert_eq!(
            reply_of(&recv(&client).unwrap()),
            (
                1,
                0,
                b"Truncated request: 8 bytes, the header alone is 12".to_vec()
            )
        );
        // An empty datagram: a version-0 client by the C's rules.
        send(&client, b"");
        assert_eq!(get(&server, &mut req), 0);
        assert_eq!(recv(&client).unwrap(), mc::V0_REFUSAL.as_bytes());
    }

    #[test]
    fn replies_split_on_the_wire() {
        let (server, client) = pair();
        send(&client, &request("proc meminfo"));
        let mut req = new_req();
        assert_eq!(get(&server, &mut req), 1);
        let text: Vec<u8> = (0..1023).map(|i| b'a' + (i % 26) as u8).collect();
        // SAFETY: a filled request and a buffer of the length given.
        let r = unsafe { REPLY_LEN(&mut *req, text.as_ptr().cast(), 1023, 1, 0) };
        assert_eq!(r, 0);
        let packets: Vec<_> = (0..3).map(|_| recv(&client).unwrap()).collect();
        assert_eq!(recv(&client), None);
        let sizes: Vec<_> = packets.iter().map(Vec::len).collect();
        assert_eq!(sizes, [524, 524, 14]);
        let parts: Vec<_> = packets.iter().map(|p| reply_of(p)).collect();
        assert_eq!((parts[0].0, parts[0].1), (1, 1));
        assert_eq!((parts[1].0, parts[1].1), (0, 1));
        assert_eq!((parts[2].0, parts[2].1), (0, 0));
        let joined: Vec<u8> = parts.iter().flat_map(|p| p.2.clone()).collect();
        assert_eq!(joined, text);

        // 511 bytes: one full packet, with the caller's more.
        // SAFETY: as above.
        let r = unsafe { REPLY_LEN(&mut *req, text.as_ptr().cast(), 511, 0, 1) };
        assert_eq!(r, 0);
        assert_eq!(
            reply_of(&recv(&client).unwrap()),
            (0, 1, text[..511].to_vec())
        );
        assert_eq!(recv(&client), None);

        // mconsole_reply: the C string; NULL is an empty reply.
        // SAFETY: a filled request and a C string.
        assert_eq!(unsafe { REPLY(&mut *req, c"OK".as_ptr(), 0, 0) }, 0);
        assert_eq!(recv(&client).unwrap(), b"\0\0\0\0\0\0\0\0\x03\0\0\0OK\0");
        // SAFETY: a filled request; NULL text.
        assert_eq!(unsafe { REPLY(&mut *req, core::ptr::null(), -22, 0) }, 0);
        assert_eq!(
            reply_of(&recv(&client).unwrap()),
            (-22i32 as u32, 0, vec![])
        );
        // A negative length is an empty reply too.
        // SAFETY: as above.
        assert_eq!(unsafe { REPLY_LEN(&mut *req, c"x".as_ptr(), -5, 0, 0) }, 0);
        assert_eq!(reply_of(&recv(&client).unwrap()), (0, 0, vec![]));

        // Errors are negative errnos.
        // SAFETY: NULL request.
        let r = unsafe { REPLY(core::ptr::null_mut(), c"x".as_ptr(), 0, 0) };
        assert_eq!(r, -libc::EFAULT);
        req.originating_fd = -1;
        // SAFETY: a request whose descriptor is bad.
        let r = unsafe { REPLY(&mut *req, c"x".as_ptr(), 0, 0) };
        assert_eq!(r, -libc::EBADF);
    }

    #[test]
    fn a_null_request_is_nothing() {
        let (server, _client) = pair();
        // SAFETY: NULL is allowed.
        let r = unsafe { GET_REQUEST(server.as_raw_fd(), core::ptr::null_mut()) };
        assert_eq!(r, 0);
    }

    use crate::host::mconsole::tests::send_as_nobody;

    #[test]
    fn only_the_owner_and_root_may_talk() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: setuid needs root");
            return;
        }
        let (server, client) = pair();
        let mut req = new_req();
        if !send_as_nobody(&client, &request("halt")) {
            eprintln!("skipped: could not become uid 65534 here");
            return;
        }
        assert_eq!(get(&server, &mut req), 0, "nobody's halt was taken");
        assert!(req.cmd.is_null());
        let (err, more, text) = reply_of(&recv(&client).unwrap());
        assert_eq!((err, more), (1, 0));
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.starts_with("Permission denied: uid 65534 may not use this console"),
            "{text}"
        );
        // A version-0 client is told in raw text.
        assert!(send_as_nobody(&client, b"halt"));
        assert_eq!(get(&server, &mut req), 0);
        let raw = String::from_utf8(recv(&client).unwrap()).unwrap();
        assert!(raw.starts_with("ERR Permission denied: uid 65534"), "{raw}");
        // Our own request (we are root, and the owner) goes through.
        send(&client, &request("halt"));
        assert_eq!(get(&server, &mut req), 1);
        assert_eq!(command_name(&req), c"halt");
    }

    #[test]
    fn a_reused_descriptor_number_gets_credentials_turned_on() {
        let (server, client) = raw_pair();
        // As if another socket with this number had had them turned on
        // (a test running in parallel may change that; the outcome is the
        // same either way, since this datagram is sent before any).
        PASSCRED_FD.store(server.as_raw_fd(), Ordering::Relaxed);
        let mut req = new_req();
        send(&client, &request("version"));
        assert_eq!(get(&server, &mut req), 0, "no credentials: refused");
        assert_eq!(reply_of(&recv(&client).unwrap()).0, 1);
        // The refusal turned them on: the next request carries ours.
        send(&client, &request("version"));
        assert_eq!(get(&server, &mut req), 1);
        assert_eq!(command_name(&req), c"version");
    }

    #[test]
    fn unverified_senders_need_an_owner_only_socket() {
        // Sent before the first call: no credentials. A socketpair has no
        // socket file to vouch for its senders.
        let (server, client) = raw_pair();
        send(&client, &request("version"));
        let mut req = new_req();
        assert_eq!(get(&server, &mut req), 0);
        let (err, _, text) = reply_of(&recv(&client).unwrap());
        assert_eq!(err, 1);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("could not be checked"), "{text}");
    }

    fn cpath(p: &Path) -> CString {
        CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
    }

    /// The kernel's socket in `dir` with `mode`, and a named client that
    /// sent `text` to it before the console's first call.
    fn early_request(dir: &Path, mode: u32, text: &str) -> (OwnedFd, OwnedFd) {
        let path = dir.join("mconsole");
        let server = socket::bind_unix_dgram(&cpath(&path), usize::MAX, true).unwrap();
        file::set_fd_block(server.as_raw_fd(), false).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let client =
            socket::bind_unix_dgram(&cpath(&dir.join("client")), usize::MAX, true).unwrap();
        file::set_fd_block(client.as_raw_fd(), false).unwrap();
        let addr = socket::unix_addr(&cpath(&path), usize::MAX);
        mc::send_to_addr(client.as_raw_fd(), &request(text), &addr).unwrap();
        (server, client)
    }

    #[test]
    fn the_first_request_is_taken_from_an_owner_only_socket() {
        // uml_mconsole asks as soon as the socket exists, before the first
        // interrupt turns on credential passing.
        let dir = tempfile::tempdir().unwrap();
        let (server, client) = early_request(dir.path(), 0o755, "version");
        let mut req = new_req();
        assert_eq!(get(&server, &mut req), 1);
        assert_eq!(command_name(&req), c"version");
        assert!(req.originlen > 2, "a named client");
        // SAFETY: a filled request.
        assert_eq!(unsafe { REPLY(&mut *req, c"OK".as_ptr(), 0, 0) }, 0);
        assert_eq!(reply_of(&recv(&client).unwrap()), (0, 0, b"OK".to_vec()));
    }

    #[test]
    fn the_first_request_is_refused_from_a_shared_socket() {
        let dir = tempfile::tempdir().unwrap();
        let (server, client) = early_request(dir.path(), 0o777, "version");
        let mut req = new_req();
        assert_eq!(get(&server, &mut req), 0);
        let (err, _, text) = reply_of(&recv(&client).unwrap());
        assert_eq!(err, 1);
        assert!(String::from_utf8(text).unwrap().contains("please retry"));
        // Once credential passing is on, the owner gets through.
        let addr = socket::unix_addr(&cpath(&dir.path().join("mconsole")), usize::MAX);
        mc::send_to_addr(client.as_raw_fd(), &request("version"), &addr).unwrap();
        assert_eq!(get(&server, &mut req), 1);
    }

    /// Serves `uml_mconsole <socket> <args>` (uml-utilities) with `answer`;
    /// its output, or None if the tool is not installed.
    fn uml_mconsole(sock: &Path, server: &OwnedFd, args: &[&str], answer: &[u8]) -> Option<String> {
        let child = std::process::Command::new("uml_mconsole")
            .arg(sock)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let mut req = new_req();
        let mut pfd = libc::pollfd {
            fd: server.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        let ready = unsafe { libc::poll(&raw mut pfd, 1, 10_000) };
        assert_eq!(ready, 1, "no request");
        assert_eq!(get(server, &mut req), 1);
        // SAFETY: a filled request and a buffer of the length given.
        let r = unsafe {
            REPLY_LEN(
                &mut *req,
                answer.as_ptr().cast(),
                answer.len() as c_int,
                0,
                0,
            )
        };
        assert_eq!(r, 0);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        Some(String::from_utf8(out.stdout).unwrap())
    }

    #[test]
    fn uml_mconsole_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mconsole");
        let server = socket::bind_unix_dgram(&cpath(&path), usize::MAX, true).unwrap();
        file::set_fd_block(server.as_raw_fd(), false).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The first request arrives before credential passing is on.
        let Some(out) = uml_mconsole(&path, &server, &["version"], b"Linux arch-um-rs") else {
            eprintln!("skipped: uml_mconsole (uml-utilities) is not installed");
            return;
        };
        assert_eq!(out.trim_end(), "OK Linux arch-um-rs");
        // A reply of three packets comes out whole.
        let long: String = (0..1500)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let out = uml_mconsole(&path, &server, &["proc", "meminfo"], long.as_bytes()).unwrap();
        assert_eq!(out.trim_end(), format!("OK {long}"));
    }

    #[test]
    fn notifications_reach_their_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = socket::bind_unix_dgram(&cpath(&path), usize::MAX, true).unwrap();
        file::set_fd_block(listener.as_raw_fd(), false).unwrap();
        let name = cpath(&path);
        let msg = b"boom\0";
        // SAFETY: a C string and a buffer of the length given.
        let r = unsafe {
            NOTIFY(
                name.as_ptr().cast_mut(),
                mc::notify_type::PANIC as c_int,
                msg.as_ptr().cast(),
                5,
            )
        };
        assert_eq!(r, 0);
        assert_eq!(
            recv(&listener).unwrap(),
            b"\xbe\xba\xfe\xca\x02\0\0\0\x01\0\0\0\x05\0\0\0boom\0"
        );
        // At most 512 bytes; a negative length is none.
        let big = [b'y'; 600];
        // SAFETY: as above.
        let r = unsafe { NOTIFY(name.as_ptr().cast_mut(), 3, big.as_ptr().cast(), 600) };
        assert_eq!(r, 0);
        assert_eq!(recv(&listener).unwrap().len(), 528);
        // SAFETY: as above.
        let r = unsafe { NOTIFY(name.as_ptr().cast_mut(), 3, big.as_ptr().cast(), -1) };
        assert_eq!(r, 0);
        assert_eq!(recv(&listener).unwrap().len(), 16);
    }

    #[test]
    fn notify_errors_are_negative_errnos() {
        let dir = tempfile::tempdir().unwrap();
        let missing = cpath(&dir.path().join("nobody-listens"));
        // SAFETY: C strings, no data.
        unsafe {
            assert_eq!(
                NOTIFY(missing.as_ptr().cast_mut(), 0, core::ptr::null(), 0),
                -libc::ENOENT
            );
            assert_eq!(
                NOTIFY(core::ptr::null_mut(), 0, core::ptr::null(), 0),
                -libc::EFAULT
            );
            let long = CString::new("/".repeat(109)).unwrap();
            assert_eq!(
                NOTIFY(long.as_ptr().cast_mut(), 0, core::ptr::null(), 0),
                -libc::ENAMETOOLONG
            );
            assert_eq!(
                NOTIFY(c"".as_ptr().cast_mut(), 0, core::ptr::null(), 0),
                -libc::EINVAL
            );
            assert_eq!(
                NOTIFY(missing.as_ptr().cast_mut(), 0, core::ptr::null(), 4),
                -libc::EFAULT
            );
        }
    }

    #[test]
    fn unlink_socket_removes_the_named_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mconsole");
        std::fs::write(&path, b"").unwrap();
        let mut name = [0 as c_char; 256];
        for (d, &s) in name.iter_mut().zip(path.as_os_str().as_encoded_bytes()) {
            *d = s as c_char;
        }
        // SAFETY: only this test touches the name.
        unsafe { (&raw mut mconsole_socket_name).write(name) };
        assert_eq!(UNLINK_SOCKET(), 0);
        assert!(!path.exists());
        // Again: nothing to remove, still 0.
        assert_eq!(UNLINK_SOCKET(), 0);
        // SAFETY: as above.
        unsafe { (&raw mut mconsole_socket_name).write([0; 256]) };
        assert_eq!(UNLINK_SOCKET(), 0);
    }
}
