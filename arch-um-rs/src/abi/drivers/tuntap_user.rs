// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/drivers/tuntap_user.c: the host half
//! of UML's TUN/TAP network transport (see [`crate::host::tap`]).
//!
//! With a fixed configuration (`eth0=tuntap,tap0`) the device is opened
//! here through `/dev/net/tun`; otherwise the setuid `uml_net` helper
//! creates one, configures its host side and passes the descriptor back.
//! Exports `tuntap_user_info`.

use core::ffi::{c_char, c_int, c_void};

/// `struct tuntap_data` (tuntap.h): the transport's private data, in the
/// network device's private area.
#[repr(C)]
#[derive(Debug)]
pub struct TuntapData {
    /// The host interface name: given, or learnt from `uml_net`.
    pub dev_name: *mut c_char,
    /// Non-zero when the device was named on the command line.
    pub fixed_config: c_int,
    /// The host-side address `uml_net` gives the device, or NULL.
    pub gate_addr: *mut c_char,
    /// The tap descriptor, -1 when closed.
    pub fd: c_int,
    /// The kernel's `struct net_device`.
    pub dev: *mut c_void,
}

#[cfg(all(feature = "kernel", feature = "os-drivers-tuntap_user"))]
pub use kernel_side::tuntap_user_info;

#[cfg(all(feature = "kernel", feature = "os-drivers-tuntap_user"))]
mod kernel_side {
    use core::ffi::{c_char, c_int, c_uchar, c_void};
    use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

    use super::super::{ETH_HEADER_OTHER, ETH_MAX_PACKET, NetUserInfo};
    use super::TuntapData;
    use crate::abi::layout::OpenFlags;
    use crate::host::tap::{self, IFNAMSIZ, TuntapPreExec};
    use crate::host::{file, socket};
    use crate::kernel::Level;
    use crate::klog;

    /// The kernel functions tuntap calls: the shared ones and its own.
    mod k {
        use core::ffi::{c_char, c_int, c_uchar, c_void};

        pub(super) use crate::abi::drivers::k::*;
        use crate::abi::layout::OpenFlags;

        unsafe extern "C" {
            pub fn open_addr(addr: *mut c_uchar, netmask: *mut c_uchar, arg: *mut c_void);
            pub fn close_addr(addr: *mut c_uchar, netmask: *mut c_uchar, arg: *mut c_void);
            pub fn get_output_buffer(len_out: *mut c_int) -> *mut c_void;
            pub fn free_output_buffer(buffer: *mut c_void);
            pub fn uml_strdup(string: *const c_char) -> *mut c_char;
            pub fn os_open_file(file: *const c_char, flags: OpenFlags, mode: c_int) -> c_int;
            pub fn os_set_exec_close(fd: c_int) -> c_int;
        }
    }

    /// The transport's private data behind `data`.
    ///
    /// # Safety
    ///
    /// `data` points to the device's live `struct tuntap_data`, which the
    /// network driver does not touch during the call.
    unsafe fn pri<'a>(data: *mut c_void) -> &'a mut TuntapData {
        // SAFETY: per our contract.
        unsafe { &mut *data.cast::<TuntapData>() }
    }

    unsafe extern "C" fn tuntap_user_init(data: *mut c_void, dev: *mut c_void) -> c_int {
        // SAFETY: the driver passes the device's tuntap_data.
        unsafe { pri(data) }.dev = dev;
        0
    }

    unsafe extern "C" fn tuntap_add_addr(
        addr: *mut c_uchar,
        netmask: *mut c_uchar,
        data: *mut c_void,
    ) {
        // SAFETY: the driver passes the device's tuntap_data.
        let pri = unsafe { pri(data) };
        // SAFETY: the gateway string (or NULL) and the four address bytes the driver gave us.
        unsafe { k::tap_check_ips(pri.gate_addr, addr) };
        if pri.fd == -1 || pri.fixed_config != 0 {
            return;
        }
        // SAFETY: the driver's address and netmask; dev_name is the C string uml_net named.
        unsafe { k::open_addr(addr, netmask, pri.dev_name.cast()) };
    }

    unsafe extern "C" fn tuntap_del_addr(
        addr: *mut c_uchar,
        netmask: *mut c_uchar,
        data: *mut c_void,
    ) {
        // SAFETY: the driver passes the device's tuntap_data.
        let pri = unsafe { pri(data) };
        if pri.fd == -1 || pri.fixed_config != 0 {
            return;
        }
        // SAFETY: as in tuntap_add_addr.
        unsafe { k::close_addr(addr, netmask, pri.dev_name.cast()) };
    }

    /// Starts `uml_net <version> tuntap up <gate>` with its standard output
    /// on `remote` and receives the tap descriptor (into `fd_out`) and the
    /// helper's message (into `buffer`) on `me`: 0 or -errno. `used_out`
    /// gets recvmsg's result, as in the C layer. `remote` is closed in
    /// every case (the C layer kept it when the helper did not start).
    ///
    /// # Safety
    ///
    /// `gate` is NULL or a C string; `buffer` is NULL or valid for writes
    /// of `buffer_len` bytes.
    unsafe fn tuntap_open_tramp(
        gate: *mut c_char,
        fd_out: &mut c_int,
        me: &OwnedFd,
        remote: OwnedFd,
        buffer: *mut c_char,
        buffer_len: c_int,
        used_out: &mut c_int,
    ) -> c_int {
        let version = tap::version_arg();
        // SAFETY: NULL or a C string, per our contract.
        let argv = tap::tuntap_up_argv(version.as_cstr(), unsafe { k::opt_cstr(gate) });
        let mut argv = tap::argv_ptrs(&argv);
        let mut data = TuntapPreExec {
            stdout_fd: remote.as_raw_fd(),
            close_me: me.as_raw_fd(),
        };
        // SAFETY: a NULL-terminated argv of live strings; the callback only moves descriptors.
        let pid = unsafe {
            k::run_helper(
                Some(tap::tuntap_pre_exec),
                (&raw mut data).cast(),
                argv.as_mut_ptr(),
            )
        };
        if pid < 0 {
            return pid;
        }
        drop(remote);

        let len = if buffer.is_null() {
            0
        } else {
            buffer_len.max(0) as usize
        };
        // SAFETY: `buffer` is NULL with length 0 or writable for `len` bytes, per our contract.
        let received = unsafe { tap::recv_descriptor(me.as_raw_fd(), buffer.cast(), len) };
        let (n, fd) = match received {
            Ok(r) => r,
            Err(e) => {
                *used_out = -1;
                klog!(
                    Level::Err,
                    "tuntap_open_tramp : recvmsg failed - errno = {}",
                    e as c_int
                );
                return -(e as c_int);
            }
        };
        *used_out = n as c_int;
        // SAFETY: waits for the helper we started.
        unsafe { k::helper_wait(pid) };

        // Only SCM_RIGHTS can arrive on this socket pair (no SO_PASSCRED
        // and the like), so a message without a descriptor has no control
        // message at all.
        let Some(fd) = fd else {
            klog!(Level::Err, "tuntap_open_tramp : didn't receive a message");
            return -libc::EINVAL;
        };
        *fd_out = fd.into_raw_fd();
        // SAFETY: no memory arguments.
        unsafe { k::os_set_exec_close(*fd_out) };
        0
    }

    unsafe extern "C" fn tuntap_open(data: *mut c_void) -> c_int {
        // SAFETY: the driver passes the device's tuntap_data.
        let pri = unsafe { pri(data) };
        // SAFETY: the device and its gateway string (or NULL), as the driver keeps them.
        let err = unsafe { k::tap_open_common(pri.dev, pri.gate_addr) };
        if err < 0 {
            return err;
        }

        if pri.fixed_config != 0 {
            let flags = OpenFlags(OpenFlags::R | OpenFlags::W | OpenFlags::CL);
            // SAFETY: a C string path.
            pri.fd = unsafe { k::os_open_file(tap::TUN_DEVICE.as_ptr(), flags, 0) };
            if pri.fd < 0 {
                klog!(Level::Err, "Failed to open /dev/net/tun, err = {}", -pri.fd);
                return pri.fd;
            }
            // SAFETY: a fixed configuration always has its device name (tuntap_kern.c).
            let name = unsafe { k::opt_cstr(pri.dev_name) }.unwrap_or(c"");
            if let Err(e) = tap::set_tap_iff(pri.fd, name) {
                klog!(Level::Err, "TUNSETIFF failed, errno = {}", e as c_int);
                // SAFETY: the descriptor we just opened; pri.fd keeps the stale number, as in C.
                unsafe { file::close_raw(pri.fd) };
                return -(e as c_int);
            }
        } else {
            let [me, remote] = match socket::pipe(false, false) {
                Ok(pair) => pair,
                Err(e) => {
                    klog!(
                        Level::Err,
                        "tuntap_open : socketpair failed - errno = {}",
                        e as c_int
                    );
                    return -(e as c_int);
                }
            };

            let mut len: c_int = 0;
            // SAFETY: `len` is writable.
            let buffer: *mut c_char = unsafe { k::get_output_buffer(&mut len) }.cast();
            if !buffer.is_null() {
                // Zeroed, and the last byte never received into, so that
                // whatever the helper sends is printed as a C string.
                // SAFETY: get_output_buffer gives `len` writable bytes.
                unsafe { core::ptr::write_bytes(buffer, 0, len.max(0) as usize) };
                len -= 1;
            }
            let mut used: c_int = 0;

            // SAFETY: the gateway string (or NULL); `buffer` is NULL or `len` writable bytes.
            let err = unsafe {
                tuntap_open_tramp(
                    pri.gate_addr,
                    &mut pri.fd,
                    &me,
                    remote,
                    buffer,
                    len,
                    &mut used,
                )
            };

            if err < 0 {
                if !buffer.is_null() {
                    // SAFETY: zeroed above and NUL-terminated by its last byte.
                    unsafe { k::print_str(buffer) };
                }
                // SAFETY: the buffer from get_output_buffer (free_output_buffer takes NULL too).
                unsafe { k::free_output_buffer(buffer.cast()) };
                klog!(Level::Err, "tuntap_open_tramp failed - err = {}", -err);
                return err;
            }

            // The helper's message: the interface name in the first
            // IFNAMSIZ bytes, then its output.
            // SAFETY: NULL or a NUL-terminated buffer (uml_strdup(NULL) is NULL).
            pri.dev_name = unsafe { k::uml_strdup(buffer) };
            if !buffer.is_null() {
                // SAFETY: IFNAMSIZ is inside the page, which is NUL-terminated.
                unsafe { k::print_str(buffer.add(IFNAMSIZ)) };
            }
            // SAFETY: as above.
            unsafe { k::free_output_buffer(buffer.cast()) };

            drop(me);
            // SAFETY: open_addr takes the interface name, a C string (or NULL) that the device keeps.
            unsafe { k::iter_addresses(pri.dev, k::open_addr, pri.dev_name.cast()) };
        }

        pri.fd
    }

    unsafe extern "C" fn tuntap_close(fd: c_int, data: *mut c_void) {
        // SAFETY: the driver passes the device's tuntap_data.
        let pri = unsafe { pri(data) };
        if pri.fixed_config == 0 {
            // SAFETY: as in tuntap_open.
            unsafe { k::iter_addresses(pri.dev, k::close_addr, pri.dev_name.cast()) };
        }
        // SAFETY: the driver hands us the descriptor tuntap_open returned.
        unsafe { file::close_raw(fd) };
        pri.fd = -1;
    }

    /// `tuntap_user_info`: the transport's operations, for tuntap_kern.c.
    #[allow(non_upper_case_globals)]
    #[cfg_attr(feature = "os-drivers-tuntap_user", unsafe(no_mangle))]
    pub static tuntap_user_info: NetUserInfo = NetUserInfo {
        init: Some(tuntap_user_init),
        open: Some(tuntap_open),
        close: Some(tuntap_close),
        remove: None,
        add_address: Some(tuntap_add_addr),
        delete_address: Some(tuntap_del_addr),
        mtu: ETH_MAX_PACKET,
        max_packet: ETH_MAX_PACKET + ETH_HEADER_OTHER,
    };
}

#[cfg(test)]
mod tests {
    use core::mem::{align_of, offset_of, size_of};

    use super::*;

    #[test]
    fn tuntap_data_matches_the_x86_64_c_layout() {
        // gcc on x86_64: pointers 8 bytes, ints 4, each pointer after an
        // int padded to 8. tuntap.h is not on the ABI guard's include path.
        assert_eq!(offset_of!(TuntapData, dev_name), 0);
        assert_eq!(offset_of!(TuntapData, fixed_config), 8);
        assert_eq!(offset_of!(TuntapData, gate_addr), 16);
        assert_eq!(offset_of!(TuntapData, fd), 24);
        assert_eq!(offset_of!(TuntapData, dev), 32);
        assert_eq!(size_of::<TuntapData>(), 40);
        assert_eq!(align_of::<TuntapData>(), 8);
    }
}
