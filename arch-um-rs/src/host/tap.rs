// SPDX-License-Identifier: GPL-2.0
//! The host side of UML's two legacy tap transports, tuntap and ethertap:
//! the safe core behind [`crate::abi::drivers`]
//! (`arch/um/os-Linux/drivers/tuntap_user.c` and `ethertap_user.c`).
//!
//! Both transports either open a tap device themselves (tuntap with a
//! fixed configuration: `/dev/net/tun` and `TUNSETIFF`) or ask the setuid
//! `uml_net` helper for one. The helper protocol: `uml_net` is started with
//! the argv built by [`tuntap_up_argv`] or [`ethertap_argv`] and its
//! standard output on one end of a Unix socket pair. For tuntap it sends
//! back one datagram holding the interface name (`IFNAMSIZ` bytes) followed
//! by its output, with the tap descriptor attached (`SCM_RIGHTS`). For
//! ethertap it writes one status byte (1 for success) on the control socket
//! and later takes [`addr_change`] requests there.
//!
//! The conventions of [`crate::host::file`] apply: raw descriptors in,
//! owned descriptors out, the host's errno as error.

use core::ffi::{CStr, c_char, c_int, c_void};
use core::fmt::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use super::file::{self, Result, owned, retry_eintr};
use super::socket;

/// `UML_NET_VERSION` (net_user.h): the helper protocol version passed to
/// `uml_net` as its first argument.
pub const UML_NET_VERSION: c_int = 4;

/// `IFNAMSIZ` (linux/if.h): the size of an interface name with its NUL.
pub const IFNAMSIZ: usize = libc::IFNAMSIZ;

/// The tun/tap clone device.
pub const TUN_DEVICE: &CStr = c"/dev/net/tun";

/// The flags a fixed-configuration tuntap device is attached with: an
/// Ethernet (tap) device whose frames carry no packet-information header.
pub const TAP_FLAGS: libc::c_short = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;

// ---------------------------------------------------------------------------
// helper arguments

/// A NUL-terminated helper argument built in a `char[N]` on the stack, the
/// way the C layer's `sprintf`/`strscpy` into a local array does. Text that
/// does not fit is truncated to `N - 1` bytes (the C `sprintf` would
/// overflow instead; the values used here always fit).
#[derive(Clone, Copy)]
pub struct ArgBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> ArgBuf<N> {
    const fn empty() -> Self {
        ArgBuf {
            buf: [0; N],
            len: 0,
        }
    }

    /// The decimal form of `v` (`sprintf(buf, "%d", v)`).
    pub fn int(v: c_int) -> Self {
        let mut a = Self::empty();
        let _ = write!(a, "{v}");
        a
    }

    /// A copy of `s`, truncated to `N - 1` bytes (`strscpy(buf, s)`).
    pub fn copy(s: &CStr) -> Self {
        let mut a = Self::empty();
        a.push(s.to_bytes());
        a
    }

    fn push(&mut self, bytes: &[u8]) {
        let take = bytes.len().min(N.saturating_sub(1) - self.len);
        self.buf[self.len..self.len + take].copy_from_slice(&bytes[..take]);
        self.len += take;
    }

    pub fn as_cstr(&self) -> &CStr {
        // The array is zeroed past `len` and `len < N`, so a NUL ends the text,
        // and no byte before it is NUL (ints and C strings contain none).
        CStr::from_bytes_until_nul(&self.buf).unwrap_or(c"")
    }
}

impl<const N: usize> Write for ArgBuf<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// The version argument: six characters at most, in seven bytes as in the C
/// layer.
pub type VersionArg = ArgBuf<7>;
/// The data descriptor argument (ethertap): eight bytes, as in the C layer.
pub type FdArg = ArgBuf<8>;
/// The gateway argument (ethertap): a dotted quad in 17 bytes, as in the
/// C layer, which truncates longer strings to 16 bytes.
pub type GateArg = ArgBuf<17>;

/// The protocol version argument, [`UML_NET_VERSION`] in decimal.
pub fn version_arg() -> VersionArg {
    ArgBuf::int(UML_NET_VERSION)
}

/// A helper argv: `None` is a NULL pointer, which also ends the argument
/// list as the program sees it (the C layer builds these arrays with a
/// possibly NULL gateway in the middle, with the same effect).
pub type Argv<'a, const N: usize> = [Option<&'a CStr>; N];

/// `uml_net <version> tuntap up <gate>`: the helper creates a tap device,
/// configures its host side with the gateway address (none when `gate` is
/// `None`) and sends the descriptor back.
pub fn tuntap_up_argv<'a>(version: &'a CStr, gate: Option<&'a CStr>) -> Argv<'a, 6> {
    [
        Some(c"uml_net"),
        Some(version),
        Some(c"tuntap"),
        Some(c"up"),
        gate,
        None,
    ]
}

/// `uml_net <version> ethertap <dev> <data fd> [<gate>]`: the helper opens
/// ethertap device `dev`, forwards its frames over the inherited descriptor
/// `data_fd` and, with a gateway, configures the host side.
pub fn ethertap_argv<'a>(
    version: &'a CStr,
    dev: Option<&'a CStr>,
    data_fd: &'a CStr,
    gate: Option<&'a CStr>,
) -> Argv<'a, 7> {
    [
        Some(c"uml_net"),
        Some(version),
        Some(c"ethertap"),
        dev,
        Some(data_fd),
        gate,
        None,
    ]
}

/// The `char *argv[]` array of `argv`, for `run_helper`. The pointers
/// borrow from `argv`'s strings; the helper never writes through them.
pub fn argv_ptrs<const N: usize>(argv: &Argv<'_, N>) -> [*mut c_char; N] {
    argv.map(|a| a.map_or(core::ptr::null_mut(), |s| s.as_ptr().cast_mut()))
}

/// The arguments a program started with `argv` receives: up to the first
/// NULL.
pub fn argv_strings(argv: &[Option<&CStr>]) -> Vec<String> {
    argv.iter()
        .map_while(|a| a.map(|s| s.to_string_lossy().into_owned()))
        .collect()
}

// ---------------------------------------------------------------------------
// the helper child

/// What [`tuntap_pre_exec`] needs: the end of the socket pair that becomes
/// the helper's standard output, and ours, which the helper must not keep.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TuntapPreExec {
    pub stdout_fd: c_int,
    pub close_me: c_int,
}

/// Runs in the `uml_net` child before exec: standard output onto
/// `stdout_fd`, then closes `close_me`. Raw library calls only: the child
/// shares the kernel's memory and thread-local storage.
///
/// # Safety
///
/// `arg` points to a live [`TuntapPreExec`].
pub unsafe extern "C" fn tuntap_pre_exec(arg: *mut c_void) {
    // SAFETY: the caller's TuntapPreExec, alive until run_helper returns.
    let data = unsafe { &*arg.cast::<TuntapPreExec>() };
    // SAFETY: plain descriptor calls on the child's own descriptor table.
    unsafe {
        libc::dup2(data.stdout_fd, 1);
        libc::close(data.close_me);
    }
}

/// What [`etap_pre_exec`] needs: the helper's end of the control socket
/// (its standard output) and our ends of both sockets, which it must close.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EtapPreExec {
    pub control_remote: c_int,
    pub control_me: c_int,
    pub data_me: c_int,
}

/// Runs in the ethertap `uml_net` child before exec: standard output onto
/// `control_remote`, then closes `data_me` and `control_me`.
///
/// # Safety
///
/// `arg` points to a live [`EtapPreExec`].
pub unsafe extern "C" fn etap_pre_exec(arg: *mut c_void) {
    // SAFETY: the caller's EtapPreExec, alive until run_helper returns.
    let data = unsafe { &*arg.cast::<EtapPreExec>() };
    // SAFETY: plain descriptor calls on the child's own descriptor table.
    unsafe {
        libc::dup2(data.control_remote, 1);
        libc::close(data.data_me);
        libc::close(data.control_me);
    }
}

// ---------------------------------------------------------------------------
// tuntap: a fixed tap device, or one received from the helper

/// Attaches the tun/tap descriptor `fd` to tap device `name` (created if it
/// does not exist) with [`TAP_FLAGS`]: `TUNSETIFF`. The name is truncated
/// to `IFNAMSIZ - 1` bytes (`strscpy`). Not retried.
pub fn set_tap_iff(fd: RawFd, name: &CStr) -> Result<()> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
    let bytes = name.to_bytes();
    let n = bytes.len().min(IFNAMSIZ - 1);
    for (dst, &src) in ifr.ifr_name.iter_mut().zip(&bytes[..n]) {
        *dst = src as c_char;
    }
    ifr.ifr_ifru.ifru_flags = TAP_FLAGS;
    // SAFETY: TUNSETIFF reads and writes one struct ifreq, which `ifr` is.
    Errno::result(unsafe { libc::ioctl(fd, libc::TUNSETIFF, &mut ifr) }).map(drop)
}

/// The interface name and flags the tun/tap descriptor `fd` is attached
/// with (`TUNGETIFF`).
pub fn tap_info(fd: RawFd) -> Result<(String, libc::c_short)> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
    // SAFETY: TUNGETIFF writes one struct ifreq, which `ifr` is.
    Errno::result(unsafe { libc::ioctl(fd, libc::TUNGETIFF, &mut ifr) })?;
    let name: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    // SAFETY: TUNGETIFF filled the flags member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    Ok((String::from_utf8_lossy(&name).into_owned(), flags))
}

/// Where opening a fixed tap device failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapOpenError {
    /// Opening [`TUN_DEVICE`] failed.
    Open(Errno),
    /// `TUNSETIFF` failed; the descriptor was closed.
    SetIff(Errno),
}

/// Opens tap device `name` the way tuntap's fixed configuration does:
/// [`TUN_DEVICE`] read-write and close-on-exec (set after the open, as
/// `os_open_file` does), then [`set_tap_iff`]. The device lives as long as
/// the descriptor (unless made persistent elsewhere).
pub fn open_tap(name: &CStr) -> core::result::Result<OwnedFd, TapOpenError> {
    let fd = file::open(TUN_DEVICE, libc::O_RDWR, 0, true).map_err(TapOpenError::Open)?;
    set_tap_iff(fd.as_raw_fd(), name).map_err(TapOpenError::SetIff)?;
    Ok(fd)
}

/// Receives one message on `fd` into `len` bytes at `buf` with room for one
/// descriptor passed with `SCM_RIGHTS`, as tuntap waits for `uml_net`'s
/// tap: the message length and the descriptor, if one came. The control
/// buffer is `CMSG_SPACE(sizeof(int))`, as in the C layer; the descriptor
/// is not close-on-exec. Not retried on `EINTR`.
///
/// # Safety
///
/// `buf` must be valid for writes of `len` bytes (it may be NULL when `len`
/// is 0).
pub unsafe fn recv_descriptor(
    fd: RawFd,
    buf: *mut c_void,
    len: usize,
) -> Result<(usize, Option<OwnedFd>)> {
    let mut fds: [RawFd; 1] = [-1];
    // SAFETY: `buf` per our contract.
    let (n, count) = unsafe { socket::recv_fds_raw(fd, &mut fds, buf, len) }?;
    Ok((n, (count == 1).then(|| owned(fds[0]))))
}

// ---------------------------------------------------------------------------
// ethertap: status and address changes on the control socket

/// The two requests on ethertap's control socket (add an address, remove
/// one), numbered as the C layer's enum numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum AddrOp {
    Add = 0,
    Del = 1,
}

/// The size of ethertap's `struct addr_change`: an `int`-sized enum and two
/// four-byte IPv4 addresses.
pub const ADDR_CHANGE_SIZE: usize = 12;

/// The bytes of ethertap's `struct addr_change` for `op`: the request in
/// host byte order, the address, the netmask.
pub fn addr_change(op: AddrOp, addr: [u8; 4], netmask: [u8; 4]) -> [u8; ADDR_CHANGE_SIZE] {
    let mut out = [0u8; ADDR_CHANGE_SIZE];
    out[..4].copy_from_slice(&(op as u32).to_ne_bytes());
    out[4..8].copy_from_slice(&addr);
    out[8..].copy_from_slice(&netmask);
    out
}

/// Writes `bytes` to `fd` with one `write(2)`, retried on `EINTR`
/// (`CATCH_EINTR`); the count written, which may be short.
pub fn write_request(fd: RawFd, bytes: &[u8]) -> Result<usize> {
    retry_eintr(|| file::write(fd, bytes))
}

/// Reads the helper's one-byte status from `fd`, retried on `EINTR`:
/// `None` at end of file.
pub fn read_status(fd: RawFd) -> Result<Option<u8>> {
    let mut c = [0u8; 1];
    let n = retry_eintr(|| file::read(fd, &mut c))?;
    Ok((n == 1).then_some(c[0]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::helper;
    use std::ffi::CString;
    use std::path::Path;
    use std::time::{Duration, Instant};

    fn strings(argv: &[Option<&CStr>]) -> Vec<String> {
        argv_strings(argv)
    }

    #[test]
    fn argument_buffers_format_and_truncate_like_the_c_arrays() {
        assert_eq!(version_arg().as_cstr(), c"4");
        assert_eq!(FdArg::int(123456).as_cstr(), c"123456");
        assert_eq!(FdArg::int(-1).as_cstr(), c"-1");
        // Seven bytes hold six digits and the NUL.
        assert_eq!(VersionArg::int(12345678).as_cstr(), c"123456");
        assert_eq!(
            GateArg::copy(c"192.168.100.254").as_cstr(),
            c"192.168.100.254"
        );
        // strscpy into char[17] keeps 16 bytes.
        assert_eq!(
            GateArg::copy(c"0123456789abcdefXYZ").as_cstr(),
            c"0123456789abcdef"
        );
        assert_eq!(GateArg::copy(c"").as_cstr(), c"");
    }

    #[test]
    fn tuntap_argv_is_the_uml_net_protocol() {
        let v = version_arg();
        let argv = tuntap_up_argv(v.as_cstr(), Some(c"192.168.0.254"));
        assert_eq!(
            strings(&argv),
            ["uml_net", "4", "tuntap", "up", "192.168.0.254"]
        );
        let ptrs = argv_ptrs(&argv);
        assert_eq!(ptrs.len(), 6);
        assert!(ptrs[5].is_null());
        // SAFETY: ptrs[4] points to the gateway string above.
        assert_eq!(unsafe { CStr::from_ptr(ptrs[4]) }, c"192.168.0.254");
        // Without a gateway the list ends early, as the C array does.
        let argv = tuntap_up_argv(v.as_cstr(), None);
        assert_eq!(strings(&argv), ["uml_net", "4", "tuntap", "up"]);
        assert!(argv_ptrs(&argv)[4].is_null());
    }

    #[test]
    fn ethertap_argv_is_the_uml_net_protocol() {
        let v = version_arg();
        let fd = FdArg::int(17);
        let gate = GateArg::copy(c"10.0.0.1");
        let argv = ethertap_argv(
            v.as_cstr(),
            Some(c"tap0"),
            fd.as_cstr(),
            Some(gate.as_cstr()),
        );
        assert_eq!(
            strings(&argv),
            ["uml_net", "4", "ethertap", "tap0", "17", "10.0.0.1"]
        );
        assert!(argv_ptrs(&argv)[6].is_null());
        let argv = ethertap_argv(v.as_cstr(), Some(c"tap0"), fd.as_cstr(), None);
        assert_eq!(strings(&argv), ["uml_net", "4", "ethertap", "tap0", "17"]);
        let ptrs = argv_ptrs(&argv);
        assert!(ptrs[5].is_null() && ptrs[6].is_null());
    }

    #[test]
    fn addr_change_is_the_c_struct() {
        let b = addr_change(AddrOp::Add, [10, 0, 0, 2], [255, 255, 255, 0]);
        assert_eq!(&b[..4], &0u32.to_ne_bytes());
        assert_eq!(&b[4..], &[10, 0, 0, 2, 255, 255, 255, 0]);
        let b = addr_change(AddrOp::Del, [1, 2, 3, 4], [5, 6, 7, 8]);
        assert_eq!(&b[..4], &1u32.to_ne_bytes());
        assert_eq!(&b[4..], &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn status_byte_and_requests_on_a_stream_pair() {
        let [a, b] = socket::pipe(true, false).unwrap();
        let req = addr_change(AddrOp::Add, [1, 2, 3, 4], [255, 0, 0, 0]);
        assert_eq!(write_request(a.as_raw_fd(), &req), Ok(ADDR_CHANGE_SIZE));
        let mut got = [0u8; ADDR_CHANGE_SIZE];
        assert_eq!(file::read(b.as_raw_fd(), &mut got), Ok(ADDR_CHANGE_SIZE));
        assert_eq!(got, req);
        assert_eq!(file::write(b.as_raw_fd(), &[1]), Ok(1));
        assert_eq!(read_status(a.as_raw_fd()), Ok(Some(1)));
        drop(b);
        // End of file: the helper died without a word.
        assert_eq!(read_status(a.as_raw_fd()), Ok(None));
        assert_eq!(read_status(-1), Err(Errno::EBADF));
    }

    /// [`recv_descriptor`] into `buf`.
    fn recv_into(fd: RawFd, buf: &mut [u8]) -> Result<(usize, Option<OwnedFd>)> {
        // SAFETY: `buf` is writable for its length.
        unsafe { recv_descriptor(fd, buf.as_mut_ptr().cast(), buf.len()) }
    }

    fn same_file(a: RawFd, b: RawFd) -> bool {
        let (x, y) = (file::stat_fd(a).unwrap(), file::stat_fd(b).unwrap());
        (x.st_dev, x.st_ino, x.st_rdev) == (y.st_dev, y.st_ino, y.st_rdev)
    }

    #[test]
    fn a_descriptor_and_the_helper_output_arrive_in_one_datagram() {
        let [me, remote] = socket::pipe(false, false).unwrap();
        let null = file::open(c"/dev/null", libc::O_RDONLY, 0, true).unwrap();
        let mut msg = [0u8; IFNAMSIZ + 8];
        msg[..4].copy_from_slice(b"tap7");
        msg[IFNAMSIZ..IFNAMSIZ + 6].copy_from_slice(b"hello\0");
        assert_eq!(
            socket::send_fds(remote.as_raw_fd(), &msg, &[null.as_raw_fd()]),
            Ok(msg.len())
        );
        let mut buf = [0xffu8; 64];
        let (n, fd) = recv_into(me.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(n, msg.len());
        assert_eq!(&buf[..n], &msg);
        let fd = fd.expect("a descriptor");
        assert_ne!(fd.as_raw_fd(), null.as_raw_fd());
        assert!(same_file(fd.as_raw_fd(), null.as_raw_fd()));

        // No buffer at all (the C layer's NULL output buffer): the data is
        // dropped, the descriptor still arrives.
        socket::send_fds(remote.as_raw_fd(), b"x", &[null.as_raw_fd()]).unwrap();
        // SAFETY: a zero-length NULL buffer.
        let (n, fd) = unsafe { recv_descriptor(me.as_raw_fd(), core::ptr::null_mut(), 0) }.unwrap();
        assert_eq!(n, 0);
        assert!(same_file(fd.unwrap().as_raw_fd(), null.as_raw_fd()));

        // A message without a descriptor.
        file::write(remote.as_raw_fd(), b"no fd").unwrap();
        let (n, fd) = recv_into(me.as_raw_fd(), &mut buf).unwrap();
        assert_eq!((n, fd.is_none()), (5, true));

        assert_eq!(recv_into(-1, &mut buf).unwrap_err(), Errno::EBADF);
    }

    /// Root with a tun/tap driver, or the test says why it is skipped.
    fn can_make_taps(test: &str) -> bool {
        // SAFETY: geteuid has no arguments.
        let root = unsafe { libc::geteuid() } == 0;
        let tun = Path::new("/dev/net/tun").exists();
        if !(root && tun) {
            eprintln!("{test}: skipped (needs root and /dev/net/tun)");
        }
        root && tun
    }

    fn sys_net(name: &str) -> std::path::PathBuf {
        Path::new("/sys/class/net").join(name)
    }

    fn wait_gone(name: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while sys_net(name).exists() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    fn sysfs(name: &str, attr: &str) -> String {
        std::fs::read_to_string(sys_net(name).join(attr))
            .unwrap()
            .trim()
            .to_owned()
    }

    #[test]
    fn a_fixed_tap_device_exists_while_its_descriptor_is_open() {
        if !can_make_taps("a_fixed_tap_device_exists_while_its_descriptor_is_open") {
            return;
        }
        let name = format!("umlrs-t{}", std::process::id());
        let cname = CString::new(name.clone()).unwrap();
        assert!(!sys_net(&name).exists(), "{name} exists before the test");
        let fd = open_tap(&cname).expect("open the tap");
        // The device: a non-persistent Ethernet tap without packet info.
        assert!(sys_net(&name).exists());
        assert_eq!(sysfs(&name, "tun_flags"), "0x1002");
        assert_eq!(sysfs(&name, "type"), "1");
        let (got, flags) = tap_info(fd.as_raw_fd()).unwrap();
        assert_eq!(got, name);
        assert_eq!(flags & TAP_FLAGS, TAP_FLAGS);
        assert_eq!(flags & libc::IFF_TUN as libc::c_short, 0);
        // Close-on-exec, as os_open_file with of_cloexec leaves it.
        // SAFETY: F_GETFD takes no argument.
        let fdflags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(fdflags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);

        // The same device handed over a socket, as uml_net hands it.
        let [me, remote] = socket::pipe(false, false).unwrap();
        let mut msg = [0u8; IFNAMSIZ];
        msg[..name.len()].copy_from_slice(name.as_bytes());
        socket::send_fds(remote.as_raw_fd(), &msg, &[fd.as_raw_fd()]).unwrap();
        let mut buf = [0u8; 32];
        let (n, passed) = recv_into(me.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(n, IFNAMSIZ);
        let passed = passed.unwrap();
        // As the C layer does next (os_set_exec_close), so that no child
        // another test starts keeps the device alive.
        file::set_cloexec(passed.as_raw_fd()).unwrap();
        assert_eq!(tap_info(passed.as_raw_fd()).unwrap().0, name);

        drop(fd);
        // Still attached through the passed descriptor.
        assert!(sys_net(&name).exists());
        drop(passed);
        assert!(wait_gone(&name), "{name} still exists after close");
    }

    #[test]
    fn tap_names_are_truncated_and_checked_by_the_host() {
        if !can_make_taps("tap_names_are_truncated_and_checked_by_the_host") {
            return;
        }
        let long = format!("umlrs-l{}-and-more", std::process::id());
        let fd = open_tap(&CString::new(long.clone()).unwrap()).expect("open the tap");
        let short = &long[..IFNAMSIZ - 1];
        assert_eq!(tap_info(fd.as_raw_fd()).unwrap().0, short);
        assert!(sys_net(short).exists());
        drop(fd);
        assert!(wait_gone(short));

        assert_eq!(
            open_tap(c"umlrs/bad").unwrap_err(),
            TapOpenError::SetIff(Errno::EINVAL)
        );
        // TUNSETIFF on something that is not the clone device.
        let null = file::open(c"/dev/null", libc::O_RDWR, 0, true).unwrap();
        assert!(set_tap_iff(null.as_raw_fd(), c"umlrs-x").is_err());
    }

    use crate::host::helper::test_support::Stack;

    /// Starts `sh -c script` the kernel's way, with `pre_exec(data)` run in
    /// the child, and returns its pid and the stack bytes the child used.
    fn run_sh(script: &str, pre_exec: helper::PreExec, data: *mut c_void) -> (c_int, usize) {
        let stack = Stack::new(4 * 4096);
        let mut path = vec![0 as c_char; libc::PATH_MAX as usize];
        let script = CString::new(script).unwrap();
        let argv = [Some(c"sh"), Some(c"-c"), Some(script.as_c_str()), None];
        let ptrs = argv_ptrs(&argv);
        // SAFETY: own stack, NULL-terminated argv, PATH_MAX buffer; pre_exec only moves fds.
        let pid = unsafe {
            helper::run_helper(
                stack.top(),
                Some(pre_exec),
                data,
                ptrs.as_ptr(),
                path.as_mut_ptr(),
            )
        }
        .expect("sh runs");
        (pid, stack.used())
    }

    /// What the (exited) helper left in our socket. Read without blocking:
    /// a child another test starts meanwhile may hold a copy of the
    /// helper's end, so end of file may come late.
    fn drain(fd: RawFd) -> String {
        file::set_fd_block(fd, false).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            match file::read(fd, &mut buf) {
                Ok(0) | Err(Errno::EAGAIN) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(Errno::EINTR) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn is_open_script(fd: RawFd) -> String {
        format!("if [ -e /proc/self/fd/{fd} ]; then echo open; else echo closed; fi")
    }

    #[test]
    fn tuntap_helper_writes_to_our_socket_and_does_not_keep_our_end() {
        let [me, remote] = socket::pipe(true, false).unwrap();
        let mut data = TuntapPreExec {
            stdout_fd: remote.as_raw_fd(),
            close_me: me.as_raw_fd(),
        };
        let script = format!("echo from-helper; {}", is_open_script(me.as_raw_fd()));
        let (pid, used) = run_sh(&script, tuntap_pre_exec, (&raw mut data).cast());
        drop(remote);
        assert!(helper::exited_ok(&helper::wait_helper(pid).unwrap()));
        assert_eq!(drain(me.as_raw_fd()), "from-helper\nclosed\n");
        assert!(used < 4096, "pre-exec used {used} bytes of stack");
    }

    #[test]
    fn ethertap_helper_gets_the_data_socket_and_reports_on_the_control_one() {
        let [control_me, control_remote] = socket::pipe(true, false).unwrap();
        let [data_me, data_remote] = socket::pipe(false, false).unwrap();
        let mut data = EtapPreExec {
            control_remote: control_remote.as_raw_fd(),
            control_me: control_me.as_raw_fd(),
            data_me: data_me.as_raw_fd(),
        };
        let script = format!(
            "printf '\\001'; {}; {}; {}",
            is_open_script(data_me.as_raw_fd()),
            is_open_script(control_me.as_raw_fd()),
            is_open_script(data_remote.as_raw_fd()),
        );
        let (pid, used) = run_sh(&script, etap_pre_exec, (&raw mut data).cast());
        drop(control_remote);
        drop(data_remote);
        assert!(helper::exited_ok(&helper::wait_helper(pid).unwrap()));
        assert_eq!(read_status(control_me.as_raw_fd()), Ok(Some(1)));
        assert_eq!(drain(control_me.as_raw_fd()), "closed\nclosed\nopen\n");
        assert!(used < 4096, "pre-exec used {used} bytes of stack");
    }
}
