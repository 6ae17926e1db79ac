// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing `arch/um/drivers/vector_user.c` (declared in
//! `vector_user.h`): the host half of the vector network driver, over
//! [`crate::host::vector`]. The kernel half (`vector_kern.c`,
//! `vector_transports.c`) parses each `vecN:` option string with
//! [`uml_parse_vector_ifspec`], reads its own options with
//! [`uml_vector_fetch_arg`], opens the transport with
//! [`uml_vector_user_open`] when the interface goes up, moves packets with
//! the `uml_vector_{send,recv}{,m}msg` and [`uml_vector_writev`] wrappers,
//! and loads socket filters with the BPF functions.
//!
//! The return conventions are the C's: pointers are NULL on failure (with
//! a message), the packet wrappers return a count, 0 for "try again"
//! (`EAGAIN`, and `ENOBUFS` when sending) or a negative errno, and retry
//! on `EINTR`; the BPF attach and detach return 0 or -1; the `bool`
//! functions say whether the feature is on. Memory the kernel half frees
//! with `kfree` (the argument list, `struct vector_fds` and its remote
//! address, the BPF programs) comes from `uml_kmalloc`, as in C. Only the
//! open path allocates (and `getaddrinfo` in it); the packet wrappers,
//! which run in interrupt and NAPI context, neither allocate nor log.
//!
//! Where this differs from the C, and why:
//!
//! * **Options are checked when the string is parsed**, by
//!   [`crate::host::vector::check`], with the rules of the half that reads
//!   each one, and a bad or missing one is refused there (NULL, so `vecN:`
//!   at boot creates no device and mconsole `config` fails with `EINVAL`),
//!   with a message naming the option, its value and what is wrong. The C
//!   refused only a second `=` at parse time; everything else it either
//!   refused later when the interface went up (a missing `ifname`, `fd` or
//!   `dst`, mostly without saying which), or used silently in a way the user
//!   did not ask for:
//!   - numbers the kernel half could not read (`mtu=abc`, `depth=12k`,
//!     `v6=yes`) or took out of range (`mtu=100`) became defaults;
//!     `rx_session=0xffffffff`, the HOWTO's own example, is out of range of
//!     the `int` the kernel half reads and made every open fail with
//!     `EINVAL` and no message (the refusal says to write it as `-1`);
//!     an unreadable `rx_cookie` was used uninitialised; a 32-bit cookie
//!     above `0xffffffff` was cut;
//!   - the host half read `v6` and `udp` with `strtol`, the kernel half with
//!     `kstrtoint`, so `v6=0x1` opened an IPv4 socket for an IPv6 device;
//!     both now use the kernel's rules;
//!   - a `transport` that merely starts with a transport's name (`tapx`)
//!     was that transport; an `ifname` longer than 15 bytes was cut (and
//!     could bind `raw` to another interface); a `bess` `src` longer than
//!     107 bytes was ignored; a `mac` the kernel half could not use was
//!     replaced by a random one; `rx_key` without `tx_key` (and the like)
//!     failed the open without a word; `srcport`/`dstport` on raw IP
//!     failed in `getaddrinfo`; `udp=1` without ports bound to an
//!     ephemeral port and sent to port 0; `gro` with no `=value`, and the
//!     second of two equal options, were dropped; more than 20 options
//!     overflowed the argument list;
//!   - `depth` is at most 65536 (the kernel half's queue is one `kmalloc`
//!     of 64 bytes an entry and crashed on a NULL queue when that failed)
//!     and at least 1.
//!
//!   Options nobody reads are logged as warnings, with a hint for the
//!   HOWTO's spellings (`src_port` is read as `srcport`, `txkey` as
//!   `tx_key`). On a refusal the option string is left as it came (the C
//!   had written NULs into it).
//! * `uml_vector_user_open` checks the options again (for argument lists
//!   not made here) and then opens the host side, naming the device, the
//!   transport and the failing step in each message. The C leaked
//!   descriptors on several failure paths (`raw` when the second socket
//!   failed, `hybrid` when the packet socket failed, `gre`/`l2tpv3` when
//!   `dst` did not resolve or memory ran out); `raw` and `hybrid` took a
//!   packet socket error other than `EPERM` (the only one that is -1) for
//!   a descriptor; a `tap` without `ifname` retried made-up names forever,
//!   also when `/dev/net/tun` could not be opened (now at most 16 names,
//!   and only a refused name is retried; the names come from a generator
//!   of our own instead of reseeding libc's `rand`); `fd=N` is checked to
//!   be open; `vde` fails when `vde_plug` cannot be started (the C
//!   returned a socket nobody answered).
//! * A packet socket bound to an interface that is down (the tap `hybrid`
//!   has just created, unless it existed and was up) had `ENETDOWN`
//!   pending; the first receive returned it and the kernel half marked the
//!   device in error, after which it never transmitted again until taken
//!   down. The stale error is cleared after binding; the socket receives
//!   once the interface is up.
//! * The descriptors opened here are close-on-exec, so that helper
//!   programs (an `ifup` script, xterms) do not keep a tap device or a
//!   socket alive. The `fd` transport's inherited descriptor is left as it
//!   is, and so is the end of the `vde` socket pair `vde_plug` inherits.
//! * `bpffile`: opened, then its size taken from the open file (the C
//!   stat'ed the name first); refused (NULL) when it is not a regular file,
//!   is empty, is not a whole number of 8-byte instructions or has more
//!   than the host's 4096 (the C cut the count to 16 bits and handed the
//!   host a program it refused), or reads short. Short reads are continued.
//! * Where the C would crash: a NULL argument list, token, header, MAC or
//!   program is NULL, 0 or `-EFAULT` as the function returns; a `numargs`
//!   outside 0..=20 is clamped, and NULL names in the list are skipped.
//! * The `ifup` script and `vde_plug` are not waited for, as in C.

use core::ffi::{CStr, c_char, c_int, c_uint, c_void};
use core::fmt::Write as _;
use core::mem::size_of;
use std::os::fd::{AsRawFd, IntoRawFd};

use nix::errno::Errno;

use crate::abi::helper::UM_GFP_KERNEL;
use crate::host::file::CStrDisplay;
use crate::host::tap::{ArgBuf, argv_ptrs};
use crate::host::util::ShowBytes;
use crate::host::vector::{
    self as vec, Args, Fds, Host, MAXVARGS, OpenError, Opened, Step, VdeConfig, Warning,
};
use crate::kernel::{Level, stack_format};
use crate::klog;

/// `struct arglist`: a device's options, pointers into its option string
/// (which [`uml_parse_vector_ifspec`] cut into C strings).
#[repr(C)]
#[derive(Debug)]
pub struct ArgList {
    pub numargs: c_int,
    pub tokens: [*mut c_char; MAXVARGS],
    pub values: [*mut c_char; MAXVARGS],
}

/// `struct vector_fds`: an open transport's descriptors (the same one
/// twice for most) and, for the socket transports, the address to send
/// to (a `sockaddr_*` of `remote_addr_size` bytes from `uml_kmalloc`).
#[repr(C)]
#[derive(Debug)]
pub struct VectorFds {
    pub rx_fd: c_int,
    pub tx_fd: c_int,
    pub remote_addr: *mut c_void,
    pub remote_addr_size: c_int,
}

/// The host's `struct mmsghdr`, `struct msghdr`, `struct sock_fprog` and
/// `struct sock_filter` (checked by the ABI guard): the kernel half builds
/// the message vectors in its own, identical, layout and keeps the BPF
/// programs made here.
pub type MmsgHdr = libc::mmsghdr;
pub type MsgHdr = libc::msghdr;
pub type SockFprog = libc::sock_fprog;
pub type SockFilter = libc::sock_filter;

/// The kernel functions this file calls: the allocator and the helper
/// runner (`helper.c`, C or Rust). Only declared where this file's
/// symbols are exported.
#[cfg(all(feature = "kernel", feature = "os-um-drivers-vector_user"))]
mod kern {
    use core::ffi::{c_char, c_int, c_void};

    use crate::host::helper::PreExec;
    pub use crate::kernel::um::{kfree, uml_kmalloc};

    unsafe extern "C" {
        pub fn run_helper(
            pre_exec: Option<PreExec>,
            pre_data: *mut c_void,
            argv: *mut *mut c_char,
        ) -> c_int;
    }
}

/// Stand-ins for the kernel: the host's `malloc` and `free`, and a
/// `run_helper` that records the argument vectors it is given (and
/// fails, with `-ENOENT`, when one of the arguments is
/// [`kern::FAIL_ARG`]).
#[cfg(not(all(feature = "kernel", feature = "os-um-drivers-vector_user")))]
pub(crate) mod kern {
    use core::ffi::{CStr, c_char, c_int, c_void};
    use std::sync::Mutex;

    use crate::host::helper::PreExec;

    /// The argument vectors `run_helper` was called with.
    pub static HELPERS: Mutex<Vec<Vec<String>>> = Mutex::new(Vec::new());
    /// An argument that makes the stand-in `run_helper` fail.
    pub const FAIL_ARG: &str = "stand-in:fail";

    pub unsafe fn uml_kmalloc(size: c_int, _flags: c_int) -> *mut c_void {
        // SAFETY: a plain host allocation.
        unsafe { libc::malloc(size.max(1) as usize) }
    }

    pub unsafe fn kfree(ptr: *const c_void) {
        // SAFETY: NULL or from uml_kmalloc above.
        unsafe { libc::free(ptr.cast_mut()) }
    }

    pub unsafe fn run_helper(
        _pre_exec: Option<PreExec>,
        _pre_data: *mut c_void,
        argv: *mut *mut c_char,
    ) -> c_int {
        let mut args = Vec::new();
        for i in 0.. {
            // SAFETY: a NULL-terminated array of C strings, as run_helper requires.
            let p = unsafe { *argv.add(i) };
            if p.is_null() {
                break;
            }
            // SAFETY: as above.
            args.push(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned());
        }
        let fail = args.iter().any(|a| a == FAIL_ARG);
        HELPERS.lock().unwrap_or_else(|e| e.into_inner()).push(args);
        if fail { -libc::ENOENT } else { 4242 }
    }
}

/// `len` bytes the kernel half may `kfree`; NULL if out of memory.
fn kalloc_bytes(len: usize) -> *mut u8 {
    let Ok(len) = c_int::try_from(len) else {
        return core::ptr::null_mut();
    };
    // SAFETY: a plain kernel allocation (the host's malloc outside a kernel).
    unsafe { kern::uml_kmalloc(len, UM_GFP_KERNEL) }.cast()
}

/// `value` in memory the kernel half may `kfree`; NULL if out of memory.
fn kalloc<T>(value: T) -> *mut T {
    const { assert!(align_of::<T>() <= 8, "kmalloc aligns to 8 bytes") };
    let p = kalloc_bytes(size_of::<T>()).cast::<T>();
    if !p.is_null() {
        // SAFETY: fresh memory for one T, suitably aligned.
        unsafe { p.write(value) };
    }
    p
}

/// Frees what [`kalloc`] or [`kalloc_bytes`] returned.
///
/// # Safety
///
/// `p` is NULL or from them, and not used after.
unsafe fn kfree(p: *mut c_void) {
    // SAFETY: per our contract.
    unsafe { kern::kfree(p) };
}

/// The options of the C list `list`, for look-ups: `numargs` clamped to
/// 0..=[`MAXVARGS`] and entries with a NULL name or value skipped (the C
/// read past its arrays, and `strcmp` crashed on NULL).
///
/// # Safety
///
/// The non-NULL pointers of the first `numargs` entries are C strings that
/// outlive `'a`.
unsafe fn args_of(list: &ArgList) -> Args<'_> {
    let mut args = Args::new();
    let n = list.numargs.clamp(0, MAXVARGS as c_int) as usize;
    for i in 0..n {
        let (t, v) = (list.tokens[i], list.values[i]);
        if t.is_null() || v.is_null() {
            continue;
        }
        // SAFETY: C strings by our contract; at most MAXVARGS entries, so push succeeds.
        let _ = args.push(unsafe { CStr::from_ptr(t) }, unsafe { CStr::from_ptr(v) });
    }
    args
}

/// The value of the first option called `token` in `ifspec`, or NULL
/// (also for a NULL list or token, on which the C crashed).
///
/// # Safety
///
/// `ifspec` is NULL or a list whose first `numargs` entries hold C strings
/// (or NULL); `token` is NULL or a C string.
#[cfg_attr(feature = "os-um-drivers-vector_user", unsafe(no_mangle))]
pub unsafe extern "C" fn uml_vector_fetch_arg(
    ifspec: *mut ArgList,
    token: *mut c_char,
) -> *mut c_char {
    if ifspec.is_null() || token.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: a valid list by our contract.
    let list = unsafe { &*ifspec };
    // SAFETY: a C string by our contract.
    let token = unsafe { CStr::from_ptr(token) };
    let n = list.numargs.clamp(0, MAXVARGS as c_int) as usize;
    for i in 0..n {
        let t = list.tokens[i];
        // SAFETY: a C string (or NULL, skipped) by our contract.
        if !t.is_null() && unsafe { CStr::from_ptr(t) } == token {
            return list.values[i];
        }
    }
    core::ptr::null_mut()
}

/// Splits the option string `arg` in place into a new argument list
/// (names and values become C strings inside `arg`, which must outlive
/// the list) after checking every option; NULL, with a message naming the
/// option, if it is refused (see the module documentation).
///
/// # Safety
///
/// `arg` is NULL or a writable C string.
#[cfg_attr(feature = "os-um-drivers-vector_user", unsafe(no_mangle))]
pub unsafe extern "C" fn uml_parse_vector_ifspec(arg: *mut c_char) -> *mut ArgList {
    if arg.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: a C string by our contract.
    let len = unsafe { CStr::from_ptr(arg) }.to_bytes().len();
    // SAFETY: the string and its NUL are ours to write for the call.
    let buf = unsafe { core::slice::from_raw_parts_mut(arg.cast::<u8>(), len + 1) };
    let (spans, n) = match vec::split(&buf[..len]) {
        Ok(s) => s,
        Err(e) => {
            let spec = &buf[..len];
            klog!(
                Level::Err,
                "vector: cannot parse \"{}\": {}",
                ShowBytes(spec),
                e.describe(spec)
            );
            return core::ptr::null_mut();
        }
    };
    let refusal = {
        let Ok(args) = vec::parse_in_place(buf) else {
            // split accepted it, so this cannot fail.
            return core::ptr::null_mut();
        };
        let mut warnings = [None::<Warning<'_>>; MAXVARGS];
        let mut w = 0;
        let checked = vec::check(&args, &mut |warning| {
            if let Some(slot) = warnings.get_mut(w) {
                *slot = Some(warning);
                w += 1;
            }
        });
        match checked {
            Ok(cfg) => {
                for warning in warnings.iter().flatten() {
                    klog!(Level::Warning, "vector: {}: {warning}", cfg.subject());
                }
                let list = kalloc(ArgList {
                    numargs: args.len() as c_int,
                    tokens: [core::ptr::null_mut(); MAXVARGS],
                    values: [core::ptr::null_mut(); MAXVARGS],
                });
                if list.is_null() {
                    klog!(Level::Err, "vector: cannot allocate an argument list");
                    None
                } else {
                    for (i, (t, v)) in args.iter().enumerate() {
                        // SAFETY: `list` is a fresh ArgList; i < MAXVARGS.
                        unsafe {
                            (*list).tokens[i] = t.as_ptr().cast_mut();
                            (*list).values[i] = v.as_ptr().cast_mut();
                        }
                    }
                    return list;
                }
            }
            // Formatted while the error still borrows the cut string.
            Err(e) => Some(stack_format(format_args!("{e}"))),
        }
    };
    vec::restore(&mut buf[..len], &spans[..n]);
    if let Some(msg) = refusal {
        klog!(
            Level::Err,
            "vector: refusing \"{}\": {}",
            ShowBytes(&buf[..len]),
            msg.as_str()
        );
    }
    core::ptr::null_mut()
}

/// A seed for made-up tap names: the pid (as the C's `srand(getpid())`)
/// and the time, so that two tries in one process differ.
fn tap_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    u64::from(std::process::id()).rotate_left(32) ^ nanos
}

/// Starts `vde_plug` on a new socket pair: our end.
fn open_vde(v: &VdeConfig<'_>) -> Result<Opened, OpenError> {
    let [ours, theirs] = vec::vde_socketpair()?;
    let mut seqpacket = ArgBuf::<32>::copy(c"seqpacket://");
    let _ = write!(seqpacket, "{}", theirs.as_raw_fd());
    let argv = vec::vde_argv(v, seqpacket.as_cstr());
    let mut ptrs = argv_ptrs(&argv);
    // SAFETY: a NULL-terminated argv of live strings, no pre-exec callback.
    let pid = unsafe { kern::run_helper(None, core::ptr::null_mut(), ptrs.as_mut_ptr()) };
    drop(theirs);
    if pid < 0 {
        return Err(OpenError::Host {
            step: Step::StartHelper,
            errno: Errno::from_raw(-pid),
        });
    }
    Ok(Opened {
        fds: Fds::Same(ours),
        remote: None,
        ifname: None,
    })
}

/// Runs `ifup` with the interface name, without waiting, as the C did.
fn run_ifup(unit: c_int, script: &CStr, ifname: &CStr) {
    let argv = [Some(script), Some(ifname), None, None];
    let mut ptrs = argv_ptrs(&argv);
    // SAFETY: a NULL-terminated argv of live strings, no pre-exec callback.
    let pid = unsafe { kern::run_helper(None, core::ptr::null_mut(), ptrs.as_mut_ptr()) };
    if pid < 0 {
        klog!(
            Level::Warning,
            "vec{unit}: ifup={}: cannot start it: {}",
            CStrDisplay(script),
            Errno::from_raw(-pid)
        );
    }
}

/// For a failed `getaddrinfo`, the name and port it was given.
struct Resolving<'e, 'a>(&'e OpenError, &'e Host<'a>);

impl core::fmt::Display for Resolving<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (OpenError::Resolve { option, .. }, Host::Gre(ip, _) | Host::L2tpv3(ip, _)) =
            (self.0, self.1)
        else {
            return Ok(());
        };
        let (host, port, port_name) = if *option == "src" {
            (ip.src, ip.srcport, "srcport")
        } else {
            (ip.dst, ip.dstport, "dstport")
        };
        write!(f, " ({option}={}", CStrDisplay(host))?;
        if let Some(port) = port {
            write!(f, ", {port_name}={}", CStrDisplay(port))?;
        }
        write!(f, ", {})", if ip.v6 { "IPv6" } else { "IPv4" })
    }
}

/// Opens the transport `parsed` describes for device `vec<unit>`: a new
/// `struct vector_fds`, or NULL with a message naming the device, the
/// transport and what failed.
///
/// # Safety
///
/// `parsed` is NULL or an argument list as [`uml_vector_fetch_arg`]
/// takes.
#[cfg_attr(feature = "os-um-drivers-vector_user", unsafe(no_mangle))]
pub unsafe extern "C" fn uml_vector_user_open(unit: c_int, parsed: *mut ArgList) -> *mut VectorFds {
    if parsed.is_null() {
        klog!(Level::Err, "vec{unit}: no parsed configuration");
        return core::ptr::null_mut();
    }
    // SAFETY: a valid list by our contract.
    let args = unsafe { args_of(&*parsed) };
    let cfg = match vec::check(&args, &mut |_| {}) {
        Ok(cfg) => cfg,
        Err(e) => {
            klog!(Level::Err, "vec{unit}: {e}");
            return core::ptr::null_mut();
        }
    };
    let opened = match cfg.host {
        Host::Vde(v) => open_vde(&v),
        _ => vec::open_transport(&cfg, tap_seed()),
    };
    let opened = match opened {
        Ok(o) => o,
        Err(e) => {
            klog!(
                Level::Err,
                "vec{unit}: {}: {e}{}",
                cfg.subject(),
                Resolving(&e, &cfg.host)
            );
            return core::ptr::null_mut();
        }
    };
    let (remote_addr, remote_addr_size) = match &opened.remote {
        None => (core::ptr::null_mut(), 0),
        Some(r) => {
            let bytes = r.as_bytes();
            let p = kalloc_bytes(bytes.len());
            if p.is_null() {
                klog!(Level::Err, "vec{unit}: cannot allocate the remote address");
                return core::ptr::null_mut();
            }
            // SAFETY: `p` holds bytes.len() fresh bytes.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
            (p.cast(), bytes.len() as c_int)
        }
    };
    let fds = kalloc(VectorFds {
        rx_fd: opened.fds.rx(),
        tx_fd: opened.fds.tx(),
        remote_addr,
        remote_addr_size,
    });
    if fds.is_null() {
        klog!(Level::Err, "vec{unit}: cannot allocate the descriptors");
        // SAFETY: from kalloc_bytes above (or NULL), not used after.
        unsafe { kfree(remote_addr) };
        return core::ptr::null_mut();
    }
    let ifup = match cfg.host {
        Host::Raw { ifup, .. } | Host::Hybrid { ifup, .. } | Host::Tap { ifup, .. } => ifup,
        _ => None,
    };
    if let (Some(script), Some(name)) = (ifup, opened.ifname) {
        run_ifup(unit, script, name.as_cstr());
    }
    // The kernel half owns them now, and closes them in vector_net_close.
    match opened.fds {
        Fds::Same(fd) => drop(fd.into_raw_fd()),
        Fds::Split { rx, tx } => drop((rx.into_raw_fd(), tx.into_raw_fd())),
    }
    fds
}

/// 0 for "try again", else the count or the negative errno.
fn packets(r: nix::Result<usize>, again: &[Errno]) -> c_int {
    match r {
        Ok(n) => n as c_int,
        Err(e) if again.contains(&e) => 0,
        Err(e) => -(e as c_int),
    }
}

/// `sendmsg(fd, hdr, flags)`: bytes sent, 0 on `EAGAIN`, or -errno.
/// Retried on `EINTR`.
///
/// # Safety
///
/// `hdr` is a `struct msghdr` valid for the call (the host rejects a bad
/// one with `EFAULT`).
#[cfg_attr(feature = "os-um-drivers-vector_user", unsafe(no_mangle))]
pub unsafe extern "C" fn uml_vector_sendmsg(fd: c_int, hdr: *mut c_void, flags: c_int) -> c_int {
    // SAFETY: forwarded caller guarantee.
    let sent = unsafe { vec::sendmsg(fd, hdr.cast(), flags) };
    packets(sent, &[Errno::EAGAIN])
}

/// Reads one packet into the buffers of `hdr` (`readv` of its iovec;
/// `flags` is ignored, as in C): bytes read, 0 on `EAGAIN`, or -errno;
/// `-EFAULT` for a NULL `hdr`. Retried on `EINTR`.
///
/// # Safety
///
/// `hdr` is NULL or a `struct msghdr` whose iovec is valid for the call.
#[cfg_attr(feature = "os-um-drivers-vector_user", unsafe(no_mangle))]
pub unsafe extern "C" fn uml_vector_recvmsg(fd: c_int, hdr: *mut c_void, flags: c_int) -> c_int {
    let _ = flags;
    if hdr.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: a msghdr by our contract.
    let msg = unsafe { &*hdr.cast::<MsgHdr>() };
    // SAFETY: its iovec, by our contract; the count is passed as the C's int.
    let r = unsafe { vec::readv(fd, msg.msg_iov, msg.msg_iovlen as c_int) };
    packets(r, &[Errno::EAGAIN])
}

/// `writev(fd, hdr, iovcount)`: bytes written, 0 on `EAGAIN` or
/// `ENOBUFS`, or -errno. Retried on `EINTR`.
///
/// # Safety
///
/// `hdr` holds `iovcount` `struct iovec`s valid for the call.
#[cfg_attr(feature = "os-um-drivers-vector_user", unsafe(no_mangle))]
pub unsafe extern "C" fn uml_vector_writev(fd: c_int, hdr: *mut c_void, iovcount: c_int) -> c_int {
    // SAFETY: forwarded caller guarantee.
    let r = unsafe { vec::writev(fd, hdr.cast(), iovcount) };
    packets(r, &[Errno::EAGAIN, Errno::ENOBUFS])
}

/// `sendmmsg(fd, msgvec, vlen, flags)`: messages sent, 0 on `EAGAIN` or
/// `ENOBUFS`, or -errno. Retried on `EINTR`.
///
/// # Safety
///
/// `msgvec` holds `vlen` `struct mmsghdr`s valid for the call.
#[cfg_attr(feature = "os-um-drivers-vector_user", unsafe(no_mangle))]
pub unsafe extern "C" fn uml_vector_sendmmsg(
    fd: c_int,
    msgvec: *mut c_void,
    vlen: c_uint,
    flags: c_uint,
) -> c_int {
    // SAFETY: forwarded caller guarantee.
    let r = unsafe { vec::sendmmsg(fd, msgvec.cast(), vlen, flags) };
    packets(r, &[Errno::EAGAIN, Errno::ENOBUFS])
}

/// `recvmmsg(fd, msgvec, vlen, flags, NULL)`: messages received, 0 on
/// `EAGAIN`, or -errno. Retried on `EINTR`.
///
/// # Safety
///
/// `msgvec` holds `vlen` `struct mmsghdr`s valid for the call.
#[cfg_attr(feature = "os-um-drivers-vector_user", unsafe(no_mangle))]
pub unsafe extern "C" fn uml_vector_recvmmsg(
    fd: c_int,
    msgvec: *mut c_void,
    vlen: c_uint,
    flags: c_uint,
) -> c_int {
    // SAFETY: forwarded caller guarantee.
    let r = unsafe { vec::recvmmsg(fd, msgvec.cast(), vlen, flags) };
    packets(r, &[Errno::EAGAIN])
}

/// Logs a failed attach or detach of `prog` on `fd`.
///
/// # Safety
///
/// `prog` is a readable `struct sock_fprog`.
unsafe fn bpf_failed(what: &str, fd: c_int, prog: *const SockFprog, e: Errno) {
    // SAFETY: readable by our contract.
    let (len, filter) = unsafe { ((*prog).len, (*prog).filter) };
    klog!(
        Level::Err,
        "vector: cannot {what} the BPF program of {len} instructions at {filter:p} on fd {fd}: {e}"
    );
}

/// Attaches the classic BPF program `bpf` (a `struct sock_fprog`) to
/// socket `fd`: 0, or -1 (logged) as `setsockopt` returns; `-EFAULT` for
/// a NULL program (the C crashed logging it).
///
/// # Safety
///
/// `bpf` is NULL or a `struct sock_fprog` whose filter holds `len`
/// instructions.
#[cfg_attr(feature = "os-um-drivers-vector_user", unsafe(no_mangle))]
pub unsafe extern "C" fn uml_vector_attach_bpf(fd: c_int, bpf: *mut c_void) -> c_int {
    if bpf.is_null() {
        klog!(Level::Err, "vector: no BPF program to attach on fd {fd}");
        return -libc::EFAULT;
    }
    let prog = bpf.cast::<SockFprog>();
    // SAFETY: a program by our contract.
    match unsafe { vec::attach_filter(fd, prog) } {
        Ok(()) => 0,
        Err(e) => {
            // SAFETY: as above.
            unsafe { bpf_failed("attach", fd, prog, e) };
            -1
        }
    }
}

/// Detaches the socket filter of `fd` (`bpf` is the program attached):
/// 0, or -1 (logged); `-EFAULT` for a NULL program.
///
/// # Safety
///
/// As [`uml_vector_attach_bpf`].
#[cfg_attr(feature = "os-um-drivers-vector_user", unsafe(no_mangle))]
pub unsafe extern "C" fn uml_vector_detach_bpf(fd: c_int, bpf: *mut c_void) -> c_int {
    if bpf.is_null() {
        klog!(Level::Err, "vector: no BPF program to detach on fd {fd}");
        return -libc::EFAULT;
    }
    let prog = bpf.cast::<SockFprog>();
    // SAFETY: a program by our contract.
    match unsafe { vec::detach_filter(fd, prog) } {
        Ok(()) => 0,
        Err(e) => {
            // SAFETY: as above.
            unsafe { bpf_failed("detach", fd, prog, e) };
            -1
        }
    }
}

/// A `struct sock_fprog` holding `insns` bytes of instructions at
/// `filter` (both from `uml_kmalloc`); NULL, with `filter` freed, if out
/// of memory.
///
/// # Safety
///
/// `filter` is from [`kalloc_bytes`] and holds `insns` instructions.
unsafe fn program(filter: *mut u8, insns: usize) -> *mut c_void {
    let prog = kalloc(SockFprog {
        len: insns as u16,
        filter: filter.cast(),
    });
    if prog.is_null() {
        klog!(Level::Err, "vector: cannot allocate a BPF program");
        // SAFETY: ours, not used after.
        unsafe { kfree(filter.cast()) };
    }
    prog.cast()
}

/// The default socket filter for the interface with address `mac` (six
/// bytes): drops frames sent from `mac`, which a packet socket loops back.
/// A new `struct sock_fprog`, or NULL (also for a NULL `mac`, on which the
/// C crashed).
///
/// # Safety
///
/// `mac` is NULL or readable for six bytes.
#[cfg_attr(feature = "os-um-drivers-vector_user", unsafe(no_mangle))]
pub unsafe extern "C" fn uml_vector_default_bpf(mac: *const c_void) -> *mut c_void {
    if mac.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: six readable bytes by our contract (align 1).
    let mac = unsafe { mac.cast::<[u8; 6]>().read() };
    let insns = vec::default_bpf(&mac);
    let bytes = size_of_val(&insns);
    let filter = kalloc_bytes(bytes);
    if filter.is_null() {
        klog!(Level::Err, "vector: cannot allocate a BPF program");
        return core::ptr::null_mut();
    }
    // SAFETY: `filter` holds `bytes` fresh bytes; SockFilter is plain data.
    unsafe { core::ptr::copy_nonoverlapping(insns.as_ptr().cast::<u8>(), filter, bytes) };
    // SAFETY: `filter` from kalloc_bytes with DEFAULT_BPF_LEN instructions.
    unsafe { program(filter, insns.len()) }
}

/// Loads the classic BPF program in file `filename` (raw 8-byte
/// `struct sock_filter`s, the `bpffile=` option): a new `struct
/// sock_fprog`, or NULL with a message naming the file (NULL without one
/// for a NULL name: no `bpffile`).
///
/// # Safety
///
/// `filename` is NULL or a C string.
#[cfg_attr(feature = "os-um-drivers-vector_user", unsafe(no_mangle))]
pub unsafe extern "C" fn uml_vector_user_bpf(filename: *mut c_char) -> *mut c_void {
    if filename.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: a C string by our contract.
    let path = unsafe { CStr::from_ptr(filename) };
    let fail = |e: &dyn core::fmt::Display| {
        klog!(Level::Err, "vector: bpffile={}: {e}", CStrDisplay(path));
        core::ptr::null_mut()
    };
    let (fd, size) = match vec::open_bpf_file(path) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let buf = kalloc_bytes(size);
    if buf.is_null() {
        return fail(&"cannot allocate memory for it");
    }
    // SAFETY: `buf` holds `size` fresh bytes, ours until handed over.
    let bytes = unsafe { core::slice::from_raw_parts_mut(buf, size) };
    if let Err(e) = vec::read_bpf(fd.as_raw_fd(), bytes) {
        // SAFETY: ours, not used after.
        unsafe { kfree(buf.cast()) };
        return fail(&e);
    }
    // SAFETY: `buf` from kalloc_bytes holding size / 8 instructions.
    unsafe { program(buf, size / size_of::<SockFilter>()) }
}

/// Turns on `PACKET_QDISC_BYPASS` on packet socket `fd`: whether it is on.
#[cfg_attr(feature = "os-um-drivers-vector_user", unsafe(no_mangle))]
pub extern "C" fn uml_raw_enable_qdisc_bypass(fd: c_int) -> bool {
    vec::enable_qdisc_bypass(fd).is_ok()
}

/// Turns on vnet headers on packet socket `fd`: whether they are on
/// (logged at info level if not, as in C).
#[cfg_attr(feature = "os-um-drivers-vector_user", unsafe(no_mangle))]
pub extern "C" fn uml_raw_enable_vnet_headers(fd: c_int) -> bool {
    match vec::enable_packet_vnet_hdr(fd) {
        Ok(()) => true,
        Err(e) => {
            klog!(
                Level::Info,
                "vector: cannot enable vnet headers on packet socket fd {fd}: {e}"
            );
            false
        }
    }
}

/// Whether tap descriptor `fd` has vnet headers (`IFF_VNET_HDR`, asked
/// when it was opened), setting their size to that of `struct
/// virtio_net_hdr` (a failure there is ignored, as in C: it is the
/// host's default).
#[cfg_attr(feature = "os-um-drivers-vector_user", unsafe(no_mangle))]
pub extern "C" fn uml_tap_enable_vnet_headers(fd: c_int) -> bool {
    match vec::tun_features(fd) {
        Err(e) => {
            klog!(
                Level::Info,
                "vector: tap fd {fd}: TUNGETFEATURES failed: {e}"
            );
            false
        }
        Ok(f) if f & libc::IFF_VNET_HDR as c_uint == 0 => {
            klog!(
                Level::Info,
                "vector: tap fd {fd}: the host has no vnet header support"
            );
            false
        }
        Ok(_) => {
            let _ = vec::set_tap_vnet_hdr_len(fd);
            true
        }
    }
}

#[cfg(all(test, not(feature = "kernel")))]
mod tests {
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

    use super::*;
    use crate::host::vector::test_support::{self as ts, ETHERTYPE};

    /// A writable C string the test never frees (the list points into it).
    fn leaked(spec: &str) -> *mut c_char {
        CString::new(spec).unwrap().into_raw()
    }

    fn parse(spec: &str) -> *mut ArgList {
        // SAFETY: a writable C string, alive for the rest of the test.
        unsafe { uml_parse_vector_ifspec(leaked(spec)) }
    }

    fn fetch(list: *mut ArgList, name: &CStr) -> Option<String> {
        // SAFETY: a list from parse and a C string.
        let v = unsafe { uml_vector_fetch_arg(list, name.as_ptr().cast_mut()) };
        // SAFETY: a value of the list: a C string.
        (!v.is_null()).then(|| unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
    }

    /// Opens `spec` as device `unit`; NULL if refused.
    fn open(unit: c_int, spec: &str) -> *mut VectorFds {
        let list = parse(spec);
        assert!(!list.is_null(), "{spec}: refused by the parser");
        // SAFETY: a list from parse.
        unsafe { uml_vector_user_open(unit, list) }
    }

    /// What vector_net_close does with an open device's descriptors.
    fn close(fds: *mut VectorFds) {
        // SAFETY: from uml_vector_user_open; its descriptors and memory are ours now.
        unsafe {
            let f = &*fds;
            drop(OwnedFd::from_raw_fd(f.rx_fd));
            if f.tx_fd != f.rx_fd {
                drop(OwnedFd::from_raw_fd(f.tx_fd));
            }
            kfree(f.remote_addr);
            kfree(fds.cast());
        }
    }

    /// The helper calls recorded by the stand-in run_helper whose first
    /// argument is `prog`.
    fn helper_calls(prog: &str) -> Vec<Vec<String>> {
        kern::HELPERS
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.first().is_some_and(|p| p == prog))
            .cloned()
            .collect()
    }

    #[test]
    fn parse_cuts_the_string_and_fetch_finds_the_first() {
        let spec = leaked("transport=tap,ifname=tap0,depth=128,gro=1");
        // SAFETY: a writable C string that outlives the list.
        let list = unsafe { uml_parse_vector_ifspec(spec) };
        assert!(!list.is_null());
        // SAFETY: the list just made.
        let l = unsafe { &*list };
        assert_eq!(l.numargs, 4);
        // The names and values point into the string, as in C.
        assert_eq!(l.tokens[0], spec);
        // SAFETY: offsets within the 41-byte string.
        let (value0, token1) = unsafe { (spec.add(10), spec.add(14)) };
        assert_eq!(l.values[0], value0);
        assert_eq!(l.tokens[1], token1);
        assert!(l.tokens[4].is_null());
        assert_eq!(fetch(list, c"ifname").as_deref(), Some("tap0"));
        assert_eq!(fetch(list, c"gro").as_deref(), Some("1"));
        assert_eq!(fetch(list, c"mtu"), None);
        // NULL list or token (the C crashed).
        // SAFETY: NULL is allowed.
        unsafe {
            assert!(
                uml_vector_fetch_arg(core::ptr::null_mut(), c"x".as_ptr().cast_mut()).is_null()
            );
            assert!(uml_vector_fetch_arg(list, core::ptr::null_mut()).is_null());
            assert!(uml_parse_vector_ifspec(core::ptr::null_mut()).is_null());
            kfree(list.cast());
        }
        // A list not made here: numargs clamped, NULL names skipped.
        let mut odd = ArgList {
            numargs: 99,
            tokens: [core::ptr::null_mut(); MAXVARGS],
            values: [core::ptr::null_mut(); MAXVARGS],
        };
        odd.tokens[19] = c"late".as_ptr().cast_mut();
        odd.values[19] = c"yes".as_ptr().cast_mut();
        assert_eq!(fetch(&mut odd, c"late").as_deref(), Some("yes"));
        odd.numargs = -3;
        assert_eq!(fetch(&mut odd, c"late"), None);
        // An empty string is an empty list... which has no transport.
        assert!(parse("").is_null());
    }

    #[test]
    fn refused_strings_come_back_unchanged() {
        for spec in [
            "transport=tap,ifname=a=b",
            "transport=tap,gro",
            "transport=raw",
            "transport=tap,mtu=abc,ifname=tap0",
            "transport=l2tpv3,src=a,dst=b,rx_session=0xffffffff,tx_session=1",
        ] {
            let p = leaked(spec);
            // SAFETY: a writable C string.
            assert!(unsafe { uml_parse_vector_ifspec(p) }.is_null(), "{spec}");
            // SAFETY: still a C string of the same length.
            assert_eq!(unsafe { CStr::from_ptr(p) }.to_str().unwrap(), spec);
        }
    }

    #[test]
    fn open_refuses_lists_it_cannot_use() {
        // SAFETY: NULL is allowed.
        assert!(unsafe { uml_vector_user_open(0, core::ptr::null_mut()) }.is_null());
        // A list without transport (not made by the parser, which refuses it).
        let mut list = ArgList {
            numargs: 1,
            tokens: [core::ptr::null_mut(); MAXVARGS],
            values: [core::ptr::null_mut(); MAXVARGS],
        };
        list.tokens[0] = c"ifname".as_ptr().cast_mut();
        list.values[0] = c"tap0".as_ptr().cast_mut();
        // SAFETY: a list of C strings.
        assert!(unsafe { uml_vector_user_open(0, &mut list) }.is_null());
        // An fd that is not open.
        assert!(open(1, "transport=fd,fd=987654").is_null());
        // A bess socket nobody listens on.
        assert!(open(2, "transport=bess,dst=/nonexistent/bess").is_null());
        // An IPv6 address on an IPv4 device.
        let spec = "transport=l2tpv3,udp=1,src=127.0.0.1,srcport=0,dst=::1,dstport=1,rx_session=1,tx_session=1";
        assert!(open(3, spec).is_null());
        let e = OpenError::Resolve {
            option: "dst",
            code: libc::EAI_FAMILY,
            errno: Errno::UnknownErrno,
        };
        let list = parse(spec);
        // SAFETY: a list from parse.
        let cfg = vec::check(&unsafe { args_of(&*list) }, &mut |_| {}).unwrap();
        assert_eq!(
            Resolving(&e, &cfg.host).to_string(),
            " (dst=::1, dstport=1, IPv4)"
        );
    }

    fn msghdr(iov: &mut [libc::iovec]) -> MsgHdr {
        // SAFETY: msghdr is plain old data.
        let mut m: MsgHdr = unsafe { core::mem::zeroed() };
        m.msg_iov = iov.as_mut_ptr();
        m.msg_iovlen = iov.len();
        m
    }

    fn iov(buf: &[u8]) -> libc::iovec {
        libc::iovec {
            iov_base: buf.as_ptr().cast_mut().cast(),
            iov_len: buf.len(),
        }
    }

    fn dgram_pair() -> (OwnedFd, OwnedFd) {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a.into(), b.into())
    }

    #[test]
    fn fd_transport_and_the_single_packet_wrappers() {
        let (ours, peer) = dgram_pair();
        let fd = ours.into_raw_fd();
        let fds = open(3, &format!("transport=fd,fd={fd}"));
        assert!(!fds.is_null());
        // SAFETY: a vector_fds from uml_vector_user_open.
        let f = unsafe { &*fds };
        assert_eq!((f.rx_fd, f.tx_fd, f.remote_addr_size), (fd, fd, 0));
        assert!(f.remote_addr.is_null());

        // Nothing yet: 0, not -EAGAIN.
        let mut buf = [0u8; 64];
        let mut rx_iov = [iov(&buf)];
        let mut rx = msghdr(&mut rx_iov);
        // SAFETY: a msghdr with one live buffer.
        let r = unsafe { uml_vector_recvmsg(fd, (&raw mut rx).cast(), 0) };
        assert_eq!(r, 0);
        let (a, b) = (b"head".as_slice(), b"frame".as_slice());
        let mut tx_iov = [iov(a), iov(b)];
        let mut tx = msghdr(&mut tx_iov);
        // SAFETY: a msghdr with two live buffers.
        let r = unsafe { uml_vector_sendmsg(peer.as_raw_fd(), (&raw mut tx).cast(), 0) };
        assert_eq!(r, 9);
        // SAFETY: as above.
        let r = unsafe { uml_vector_recvmsg(fd, (&raw mut rx).cast(), 0) };
        assert_eq!(r, 9);
        assert_eq!(&buf[..9], b"headframe");
        // SAFETY: two iovecs.
        let r = unsafe { uml_vector_writev(fd, tx_iov.as_mut_ptr().cast(), 2) };
        assert_eq!(r, 9);
        assert_eq!(crate::host::file::read(peer.as_raw_fd(), &mut buf), Ok(9));
        // Errors are negative errnos; a NULL header (the C crashed) -EFAULT.
        // SAFETY: as above; NULL is allowed.
        unsafe {
            assert_eq!(
                uml_vector_recvmsg(fd, core::ptr::null_mut(), 0),
                -libc::EFAULT
            );
            assert_eq!(
                uml_vector_recvmsg(-1, (&raw mut rx).cast(), 0),
                -libc::EBADF
            );
            assert_eq!(
                uml_vector_sendmsg(-1, (&raw mut tx).cast(), 0),
                -libc::EBADF
            );
            assert_eq!(
                uml_vector_writev(-1, tx_iov.as_mut_ptr().cast(), 2),
                -libc::EBADF
            );
        }
        close(fds);
        drop(peer);
    }

    fn mmsg(iov: &mut [libc::iovec], to: *mut c_void, len: c_int) -> MmsgHdr {
        // SAFETY: mmsghdr is plain old data.
        let mut m: MmsgHdr = unsafe { core::mem::zeroed() };
        m.msg_hdr.msg_iov = iov.as_mut_ptr();
        m.msg_hdr.msg_iovlen = iov.len();
        m.msg_hdr.msg_name = to;
        m.msg_hdr.msg_namelen = len as libc::socklen_t;
        m
    }

    #[test]
    fn a_full_socket_is_zero_messages() {
        let (a, _b) = dgram_pair();
        let frame = [0u8; 1024];
        let mut v = [iov(&frame)];
        let mut m = mmsg(&mut v, core::ptr::null_mut(), 0);
        let mut sent = 0;
        loop {
            // SAFETY: one message with a live buffer.
            match unsafe { uml_vector_sendmmsg(a.as_raw_fd(), (&raw mut m).cast(), 1, 0) } {
                1 => sent += 1,
                0 => break,
                e => panic!("sendmmsg: {e}"),
            }
            assert!(sent < 100_000, "the socket never filled");
        }
        assert!(sent > 0);
        // SAFETY: as above.
        let r = unsafe { uml_vector_recvmmsg(-1, (&raw mut m).cast(), 1, 0) };
        assert_eq!(r, -libc::EBADF);
    }

    /// Receives one message on `fd` with recvmmsg: its bytes.
    fn recv_mmsg(fd: RawFd) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; 2048];
        let mut v = [iov(&buf)];
        let mut m = mmsg(&mut v, core::ptr::null_mut(), 0);
        // SAFETY: one message with a live buffer.
        match unsafe {
            uml_vector_recvmmsg(fd, (&raw mut m).cast(), 1, libc::MSG_DONTWAIT as c_uint)
        } {
            1 => {
                buf.truncate(m.msg_len as usize);
                Ok(buf)
            }
            n => Err(format!("recvmmsg: {n}")),
        }
    }

    fn local_port(fd: RawFd) -> u16 {
        // SAFETY: sockaddr_in is plain old data.
        let mut sin: libc::sockaddr_in = unsafe { core::mem::zeroed() };
        let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: a sockaddr_in and its length.
        let r = unsafe { libc::getsockname(fd, (&raw mut sin).cast(), &mut len) };
        assert_eq!(r, 0);
        u16::from_be(sin.sin_port)
    }

    #[test]
    fn l2tpv3_devices_exchange_frames_over_udp() {
        let spec = |dstport: u16| {
            format!(
                "transport=l2tpv3,udp=1,src=127.0.0.1,srcport=0,dst=127.0.0.1,dstport={dstport},rx_session=-1,tx_session=-1,counter=1"
            )
        };
        let b = open(5, &spec(9));
        assert!(!b.is_null());
        // SAFETY: from uml_vector_user_open.
        let (bf, b_port) = unsafe { (&*b, local_port((*b).rx_fd)) };
        let a = open(4, &spec(b_port));
        assert!(!a.is_null());
        // SAFETY: as above.
        let af = unsafe { &*a };
        let a_port = local_port(af.rx_fd);
        // The remote address: the sockaddr_in getaddrinfo gave.
        assert_eq!(af.remote_addr_size as usize, size_of::<libc::sockaddr_in>());
        // SAFETY: remote_addr holds a sockaddr_in; B's is re-aimed at A.
        unsafe {
            let sin = &mut *bf.remote_addr.cast::<libc::sockaddr_in>();
            assert_eq!(sin.sin_family, libc::AF_INET as libc::sa_family_t);
            sin.sin_port = a_port.to_be();
            assert_eq!(
                u16::from_be((*af.remote_addr.cast::<libc::sockaddr_in>()).sin_port),
                b_port
            );
        }
        // The header the kernel half forms for this configuration.
        let list = parse(&spec(b_port));
        // SAFETY: a list from parse.
        let args = unsafe { args_of(&*list) };
        let Host::L2tpv3(_, l2) = vec::check(&args, &mut |_| {}).unwrap().host else {
            panic!()
        };
        let layout = l2.layout();
        assert_eq!(layout.header_size, 12);
        let frame = ts::frame([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], b"l2tpv3 frame");
        for (from, to) in [(af, bf), (bf, af)] {
            let mut header = [0u8; 12];
            let mut counter = 0;
            layout.form(&mut header, &mut counter);
            let mut v = [iov(&header), iov(&frame)];
            let mut m = mmsg(&mut v, from.remote_addr, from.remote_addr_size);
            // SAFETY: one message with live buffers and address.
            let r = unsafe { uml_vector_sendmmsg(from.tx_fd, (&raw mut m).cast(), 1, 0) };
            assert_eq!(r, 1);
            assert!(ts::readable(to.rx_fd, 2000));
            let got = recv_mmsg(to.rx_fd).unwrap();
            assert_eq!(
                &got[..12],
                &[0, 3, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]
            );
            assert_eq!(layout.verify(&got), Ok(()));
            assert_eq!(&got[layout.rx_header_size..], &frame[..]);
        }
        close(a);
        close(b);
    }

    #[test]
    fn bess_devices_connect() {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("port");
        // SAFETY: no memory arguments.
        let l = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0) };
        // SAFETY: a fresh descriptor.
        let l = unsafe { OwnedFd::from_raw_fd(l) };
        let cdst = CString::new(dst.to_str().unwrap()).unwrap();
        let addr = vec::unix_addr(&cdst);
        let len = size_of::<libc::sockaddr_un>() as libc::socklen_t;
        // SAFETY: a sockaddr_un of its size.
        unsafe {
            assert_eq!(libc::bind(l.as_raw_fd(), (&raw const addr).cast(), len), 0);
            assert_eq!(libc::listen(l.as_raw_fd(), 1), 0);
        }
        let fds = open(6, &format!("transport=bess,dst={}", dst.display()));
        assert!(!fds.is_null());
        // SAFETY: from uml_vector_user_open.
        let f = unsafe { &*fds };
        assert_eq!(f.rx_fd, f.tx_fd);
        assert_eq!(f.remote_addr_size as usize, size_of::<libc::sockaddr_un>());
        // SAFETY: remote_addr holds a sockaddr_un.
        let sun = unsafe { &*f.remote_addr.cast::<libc::sockaddr_un>() };
        assert_eq!(sun.sun_family, libc::AF_UNIX as libc::sa_family_t);
        assert_eq!(
            sun.sun_path[..cdst.as_bytes().len()],
            addr.sun_path[..cdst.as_bytes().len()]
        );
        close(fds);
    }

    #[test]
    fn vde_plug_gets_its_arguments() {
        let fds = open(7, "transport=vde,vnl=tap://tap0,port=3,descr=test-vde");
        assert!(!fds.is_null());
        // SAFETY: from uml_vector_user_open.
        let f = unsafe { &*fds };
        assert_eq!(f.rx_fd, f.tx_fd);
        let call = helper_calls("vde_plug")
            .into_iter()
            .find(|a| a.contains(&"test-vde".to_string()))
            .expect("vde_plug was started");
        assert_eq!(call.len(), 7);
        assert_eq!(
            call[..5],
            ["vde_plug", "--descr", "test-vde", "--port2", "3"]
        );
        assert!(call[5].starts_with("seqpacket://"), "{call:?}");
        assert_eq!(call[6], "tap://tap0");
        close(fds);
        // vde_plug does not start: refused (the C handed back a socket
        // with nobody at the other end).
        assert!(open(8, &format!("transport=vde,vnl={}", kern::FAIL_ARG)).is_null());
    }

    /// A classic BPF program as a file holds it.
    fn bpf_file(dir: &std::path::Path, name: &str, insns: &[SockFilter]) -> CString {
        let bytes: Vec<u8> = insns
            .iter()
            .flat_map(|i| {
                let mut b = i.code.to_ne_bytes().to_vec();
                b.extend_from_slice(&[i.jt, i.jf]);
                b.extend_from_slice(&i.k.to_ne_bytes());
                b
            })
            .collect();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        CString::new(path.to_str().unwrap()).unwrap()
    }

    /// The instructions of a program made here.
    fn insns(prog: *mut c_void) -> Vec<(u16, u8, u8, u32)> {
        // SAFETY: a sock_fprog made here, with `len` instructions.
        unsafe {
            let p = &*prog.cast::<SockFprog>();
            core::slice::from_raw_parts(p.filter, p.len.into())
                .iter()
                .map(|i| (i.code, i.jt, i.jf, i.k))
                .collect()
        }
    }

    fn free_prog(prog: *mut c_void) {
        // SAFETY: a program made here, as vector_net_close frees it.
        unsafe {
            kfree((*prog.cast::<SockFprog>()).filter.cast());
            kfree(prog);
        }
    }

    #[test]
    fn bpf_programs_load_attach_and_detach() {
        let mac = [0x02u8, 0x00, 0x11, 0x22, 0x33, 0x44];
        // SAFETY: six bytes.
        let def = unsafe { uml_vector_default_bpf(mac.as_ptr().cast()) };
        assert_eq!(
            insns(def),
            [
                (0x20, 0, 0, 8),
                (0x15, 0, 3, 0x1122_3344),
                (0x28, 0, 0, 6),
                (0x15, 0, 1, 0x0200),
                (6, 0, 0, 0),
                (6, 0, 0, 0x40000)
            ]
        );
        free_prog(def);
        // SAFETY: NULL is allowed.
        assert!(unsafe { uml_vector_default_bpf(core::ptr::null()) }.is_null());

        let dir = tempfile::tempdir().unwrap();
        let drop_all = bpf_file(
            dir.path(),
            "drop",
            &[SockFilter {
                code: 6,
                jt: 0,
                jf: 0,
                k: 0,
            }],
        );
        // SAFETY: a C string path.
        let prog = unsafe { uml_vector_user_bpf(drop_all.as_ptr().cast_mut()) };
        assert_eq!(insns(prog), [(6, 0, 0, 0)]);

        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        rx.set_nonblocking(true).unwrap();
        // SAFETY: a program made here.
        assert_eq!(unsafe { uml_vector_attach_bpf(rx.as_raw_fd(), prog) }, 0);
        tx.send(b"dropped").unwrap();
        assert!(
            !ts::readable(rx.as_raw_fd(), 200),
            "the filter let it through"
        );
        // SAFETY: as above.
        assert_eq!(unsafe { uml_vector_detach_bpf(rx.as_raw_fd(), prog) }, 0);
        tx.send(b"kept").unwrap();
        assert!(ts::readable(rx.as_raw_fd(), 2000));
        assert_eq!(recv_mmsg(rx.as_raw_fd()).unwrap(), b"kept");
        // Failures: -1 as setsockopt gives; a NULL program -EFAULT.
        // SAFETY: as above; NULL is allowed.
        unsafe {
            assert_eq!(uml_vector_detach_bpf(rx.as_raw_fd(), prog), -1);
            assert_eq!(uml_vector_attach_bpf(-1, prog), -1);
            assert_eq!(
                uml_vector_attach_bpf(rx.as_raw_fd(), core::ptr::null_mut()),
                -libc::EFAULT
            );
            assert_eq!(
                uml_vector_detach_bpf(rx.as_raw_fd(), core::ptr::null_mut()),
                -libc::EFAULT
            );
        }
        free_prog(prog);

        // Files it refuses: NULL, with a message naming the file.
        std::fs::write(dir.path().join("ragged"), [0u8; 12]).unwrap();
        for name in ["ragged", "missing"] {
            let path = CString::new(dir.path().join(name).to_str().unwrap()).unwrap();
            // SAFETY: a C string path.
            assert!(unsafe { uml_vector_user_bpf(path.as_ptr().cast_mut()) }.is_null());
        }
        // SAFETY: NULL is allowed: no bpffile.
        assert!(unsafe { uml_vector_user_bpf(core::ptr::null_mut()) }.is_null());
    }

    #[test]
    fn feature_switches_report_what_the_host_did() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Not a packet socket, not a tap.
        assert!(!uml_raw_enable_qdisc_bypass(udp.as_raw_fd()));
        assert!(!uml_raw_enable_vnet_headers(udp.as_raw_fd()));
        assert!(!uml_tap_enable_vnet_headers(udp.as_raw_fd()));
        assert!(!uml_tap_enable_vnet_headers(-1));
    }

    /// Whether `p`, after `skip` bytes, is a test frame carrying `payload`.
    fn is_ours(p: &[u8], skip: usize, payload: &[u8]) -> bool {
        p.len() >= skip + 14
            && p[skip + 12..skip + 14] == ETHERTYPE.to_be_bytes()
            && p[skip + 14..].starts_with(payload)
    }

    #[test]
    fn tap_and_hybrid_devices_in_a_namespace() {
        ts::in_netns("tap_and_hybrid_devices_in_a_namespace", || {
            // A named tap, with its ifup script.
            let fds = open(10, "transport=tap,ifname=umlvt0,ifup=/etc/uml-ifup");
            ts::ensure(!fds.is_null(), || "tap refused".into())?;
            // SAFETY: from uml_vector_user_open.
            let f = unsafe { &*fds };
            ts::ensure(f.rx_fd == f.tx_fd, || "tap has one descriptor".into())?;
            let (name, flags) = crate::host::tap::tap_info(f.tx_fd).map_err(|e| e.to_string())?;
            ts::ensure(name == "umlvt0", || name.clone())?;
            ts::ensure(flags & vec::TAP_FLAGS == vec::TAP_FLAGS, || {
                format!("flags {flags:#x}")
            })?;
            ts::ensure(uml_tap_enable_vnet_headers(f.tx_fd), || {
                "vnet headers".into()
            })?;
            ts::ensure(
                helper_calls("/etc/uml-ifup")
                    == [vec!["/etc/uml-ifup".to_string(), "umlvt0".into()]],
                || format!("{:?}", helper_calls("/etc/uml-ifup")),
            )?;
            // SAFETY: F_GETFD takes no argument.
            let cloexec = unsafe { libc::fcntl(f.tx_fd, libc::F_GETFD) } & libc::FD_CLOEXEC;
            ts::ensure(cloexec != 0, || "not close-on-exec".into())?;
            close(fds);

            // No ifname: a made-up one, which ifup is told.
            let fds = open(11, "transport=tap,ifup=/etc/uml-ifup2");
            ts::ensure(!fds.is_null(), || "made-up tap refused".into())?;
            // SAFETY: from uml_vector_user_open.
            let tx_fd = unsafe { (*fds).tx_fd };
            let (name, _) = crate::host::tap::tap_info(tx_fd).map_err(|e| e.to_string())?;
            ts::ensure(name.len() == 9 && name.starts_with("tap"), || name.clone())?;
            ts::ensure(
                helper_calls("/etc/uml-ifup2")
                    == [vec!["/etc/uml-ifup2".to_string(), name.clone()]],
                || format!("{:?}", helper_calls("/etc/uml-ifup2")),
            )?;
            close(fds);

            // Hybrid: frames written to the tap come back on its packet
            // socket (as received on the interface).
            let fds = open(12, "transport=hybrid,ifname=umlvh0");
            ts::ensure(!fds.is_null(), || "hybrid refused".into())?;
            // SAFETY: from uml_vector_user_open.
            let f = unsafe { &*fds };
            ts::ensure(f.rx_fd != f.tx_fd, || "hybrid has two descriptors".into())?;
            ts::set_up("umlvh0")?;
            // The packet socket was bound while the new tap was down: no
            // ENETDOWN left pending for the first receive (which the C's
            // kernel half took for a dead transport).
            let pending = recv_mmsg(f.rx_fd);
            ts::ensure(pending == Err("recvmmsg: 0".into()), || {
                format!("{pending:?}")
            })?;
            ts::ensure(uml_raw_enable_vnet_headers(f.rx_fd), || "raw vnet".into())?;
            ts::ensure(uml_tap_enable_vnet_headers(f.tx_fd), || "tap vnet".into())?;
            let vnet = [0u8; vec::VIRTIO_NET_HDR_LEN];
            let frame = ts::frame([0xff; 6], [2, 0, 0, 0, 0, 7], b"hybrid");
            let mut v = [iov(&vnet), iov(&frame)];
            // SAFETY: two live buffers.
            let n = unsafe { uml_vector_writev(f.tx_fd, v.as_mut_ptr().cast(), 2) };
            ts::ensure(n as usize == vnet.len() + frame.len(), || {
                format!("writev: {n}")
            })?;
            let got = ts::recv_matching(f.rx_fd, recv_mmsg, |p| {
                is_ours(p, vec::VIRTIO_NET_HDR_LEN, b"hybrid")
            })?;
            ts::ensure(got[vec::VIRTIO_NET_HDR_LEN..] == frame[..], || {
                format!("{got:02x?}")
            })?;
            close(fds);

            // An interface that is not there.
            ts::ensure(open(13, "transport=raw,ifname=nothere").is_null(), || {
                "raw on a missing interface".into()
            })
        });
    }

    #[test]
    fn raw_devices_on_veth_with_the_default_filter() {
        ts::in_netns("raw_devices_on_veth_with_the_default_filter", || {
            if !ts::ip(&[
                "link", "add", "p-veth0", "type", "veth", "peer", "name", "veth0",
            ])? {
                return Ok(());
            }
            ts::set_up("p-veth0")?;
            ts::set_up("veth0")?;
            let a = open(20, "transport=raw,ifname=p-veth0,depth=128,gro=1");
            let b = open(21, "transport=raw,ifname=veth0");
            ts::ensure(!a.is_null() && !b.is_null(), || "raw refused".into())?;
            // SAFETY: from uml_vector_user_open.
            let (a, b) = unsafe { (&*a, &*b) };
            ts::ensure(a.rx_fd != a.tx_fd, || "raw has two sockets".into())?;
            ts::ensure(uml_raw_enable_qdisc_bypass(b.rx_fd), || {
                "qdisc bypass".into()
            })?;
            let mac = [2u8, 0, 0, 0, 0, 0x21];
            // SAFETY: six bytes.
            let prog = unsafe { uml_vector_default_bpf(mac.as_ptr().cast()) };
            // SAFETY: a program made here.
            ts::ensure(unsafe { uml_vector_attach_bpf(b.rx_fd, prog) } == 0, || {
                "attach".into()
            })?;
            // From our own address: dropped; from another: delivered.
            for (src, payload) in [
                (mac, b"mine".as_slice()),
                ([2, 0, 0, 0, 0, 0x20], b"theirs"),
            ] {
                let frame = ts::frame([0xff; 6], src, payload);
                let mut v = [iov(&frame)];
                let mut m = mmsg(&mut v, core::ptr::null_mut(), 0);
                // SAFETY: one message with a live buffer.
                let n = unsafe { uml_vector_sendmmsg(a.tx_fd, (&raw mut m).cast(), 1, 0) };
                ts::ensure(n == 1, || format!("sendmmsg: {n}"))?;
            }
            ts::recv_matching(b.rx_fd, recv_mmsg, |p| is_ours(p, 0, b"theirs"))?;
            ts::ensure(
                ts::nothing_matching(b.rx_fd, 200, recv_mmsg, |p| is_ours(p, 0, b"mine"))?,
                || "the default filter let our own frame through".into(),
            )?;
            // SAFETY: as above.
            ts::ensure(unsafe { uml_vector_detach_bpf(b.rx_fd, prog) } == 0, || {
                "detach".into()
            })?;
            free_prog(prog);
            Ok(())
        });
    }
}
