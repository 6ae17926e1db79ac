// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/drivers/ethertap_user.c: the host half
//! of UML's ethertap network transport (see [`crate::host::tap`]).
//!
//! The setuid `uml_net` helper opens the host's ethertap device and stays
//! running: frames go over a datagram socket pair, status, output and
//! address changes over a stream socket pair (the control socket).
//! Exports `ethertap_user_info`.

use core::ffi::{c_char, c_int, c_void};

/// `struct ethertap_data` (etap.h): the transport's private data, in the
/// network device's private area.
#[repr(C)]
#[derive(Debug)]
pub struct EthertapData {
    /// The host's ethertap device (`tap0`).
    pub dev_name: *mut c_char,
    /// The host-side address `uml_net` gives the device, or NULL.
    pub gate_addr: *mut c_char,
    /// Our end of the frame socket, -1 when closed.
    pub data_fd: c_int,
    /// Our end of the control socket, -1 when closed.
    pub control_fd: c_int,
    /// The kernel's `struct net_device`.
    pub dev: *mut c_void,
}

#[cfg(all(feature = "kernel", feature = "os-drivers-ethertap_user"))]
pub use kernel_side::ethertap_user_info;

#[cfg(all(feature = "kernel", feature = "os-drivers-ethertap_user"))]
mod kernel_side {
    use core::ffi::{c_char, c_int, c_uchar, c_void};
    use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

    use nix::errno::Errno;

    use super::super::{ETH_HEADER_ETHERTAP, ETH_MAX_PACKET, NetUserInfo};
    use super::EthertapData;
    use crate::host::tap::{self, AddrOp, EtapPreExec, FdArg, GateArg};
    use crate::host::{file, socket};
    use crate::kernel::Level;
    use crate::klog;

    /// The kernel functions ethertap calls: the shared ones and its own.
    mod k {
        use core::ffi::{c_char, c_int};

        pub(super) use crate::abi::drivers::k::*;

        pub use crate::kernel::um::{kfree, uml_kmalloc};

        unsafe extern "C" {
            pub fn read_output(fd: c_int, output: *mut c_char, len: c_int);
        }

        /// A `UM_KERN_PAGE_SIZE` buffer from `uml_kmalloc` with
        /// `UM_GFP_KERNEL`, for the helper's output; NULL if the allocation
        /// failed.
        pub fn output_page() -> *mut c_char {
            // SAFETY: a plain kernel allocation.
            unsafe {
                uml_kmalloc(
                    crate::stub::PAGE_SIZE as c_int,
                    crate::abi::helper::UM_GFP_KERNEL,
                )
            }
            .cast()
        }
    }

    /// The transport's private data behind `data`.
    ///
    /// # Safety
    ///
    /// `data` points to the device's live `struct ethertap_data`, which the
    /// network driver does not touch during the call.
    unsafe fn pri<'a>(data: *mut c_void) -> &'a mut EthertapData {
        // SAFETY: per our contract.
        unsafe { &mut *data.cast::<EthertapData>() }
    }

    unsafe extern "C" fn etap_user_init(data: *mut c_void, dev: *mut c_void) -> c_int {
        // SAFETY: the driver passes the device's ethertap_data.
        unsafe { pri(data) }.dev = dev;
        0
    }

    /// The helper's output that follows a request on the control socket
    /// `fd`, read into a kernel page (`read_output`) and printed. If no page
    /// could be had, `alloc_failed` is logged: before reading when
    /// `report_first` (etap_change), after it otherwise (etap_open), the
    /// orders of the C layer, which matter when read_output complains too.
    fn print_output(fd: c_int, alloc_failed: &str, report_first: bool) {
        let output = k::output_page();
        if output.is_null() && report_first {
            klog!(Level::Err, "{alloc_failed}");
        }
        // SAFETY: read_output takes a NULL buffer, or a page of PAGE_SIZE writable bytes.
        unsafe { k::read_output(fd, output, crate::stub::PAGE_SIZE as c_int) };
        if output.is_null() {
            if !report_first {
                klog!(Level::Err, "{alloc_failed}");
            }
        } else {
            // SAFETY: read_output left a string there, as the C layer relies on.
            unsafe { k::print_str(output) };
            // SAFETY: the page from uml_kmalloc, no longer used.
            unsafe { k::kfree(output.cast()) };
        }
    }

    /// Asks the helper on control socket `fd` to add or remove an address
    /// of the host side, and prints its answer.
    ///
    /// # Safety
    ///
    /// `addr` and `netmask` point to four readable bytes each.
    unsafe fn etap_change(op: AddrOp, addr: *const c_uchar, netmask: *const c_uchar, fd: c_int) {
        // SAFETY: four bytes each, per our contract (any alignment).
        let (addr, netmask) = unsafe {
            (
                addr.cast::<[u8; 4]>().read_unaligned(),
                netmask.cast::<[u8; 4]>().read_unaligned(),
            )
        };
        let change = tap::addr_change(op, addr, netmask);
        match tap::write_request(fd, &change) {
            Ok(n) if n == change.len() => {}
            res => {
                // A short write leaves errno at the 0 CATCH_EINTR set.
                let errno = res.err().map_or(0, |e| e as c_int);
                klog!(Level::Err, "etap_change - request failed, err = {errno}");
                return;
            }
        }
        print_output(fd, "etap_change : Failed to allocate output buffer", true);
    }

    /// `iter_addresses` callback: adds an address; `arg` is the control
    /// descriptor.
    unsafe extern "C" fn etap_open_addr(
        addr: *mut c_uchar,
        netmask: *mut c_uchar,
        arg: *mut c_void,
    ) {
        // SAFETY: the driver's four-byte address and netmask; `arg` is &pri.control_fd.
        unsafe { etap_change(AddrOp::Add, addr, netmask, *arg.cast::<c_int>()) };
    }

    /// `iter_addresses` callback: removes an address; `arg` is the control
    /// descriptor.
    unsafe extern "C" fn etap_close_addr(
        addr: *mut c_uchar,
        netmask: *mut c_uchar,
        arg: *mut c_void,
    ) {
        // SAFETY: as in etap_open_addr.
        unsafe { etap_change(AddrOp::Del, addr, netmask, *arg.cast::<c_int>()) };
    }

    /// Starts `uml_net <version> ethertap <dev> <data fd> [<gate>]` with
    /// its standard output on `control_remote` and `data_remote` inherited,
    /// and reads its status byte: 0 (also when the status could not be read
    /// at all and errno was 0, as in the C layer), helper_wait's result when
    /// the helper failed, or -errno. Both remote ends are closed here.
    ///
    /// # Safety
    ///
    /// `dev` and `gate` are NULL or C strings.
    unsafe fn etap_tramp(
        dev: *mut c_char,
        gate: *mut c_char,
        control_me: &OwnedFd,
        control_remote: OwnedFd,
        data_me: &OwnedFd,
        data_remote: OwnedFd,
    ) -> c_int {
        let data_fd_buf = FdArg::int(data_remote.as_raw_fd());
        let version = tap::version_arg();
        // SAFETY: NULL or C strings, per our contract.
        let (dev, gate) = unsafe { (k::opt_cstr(dev), k::opt_cstr(gate)) };
        let gate_buf = gate.map(GateArg::copy);
        let argv = tap::ethertap_argv(
            version.as_cstr(),
            dev,
            data_fd_buf.as_cstr(),
            gate_buf.as_ref().map(GateArg::as_cstr),
        );
        let mut argv = tap::argv_ptrs(&argv);

        let mut err = 0;
        let mut pe_data = EtapPreExec {
            control_remote: control_remote.as_raw_fd(),
            control_me: control_me.as_raw_fd(),
            data_me: data_me.as_raw_fd(),
        };
        // SAFETY: a NULL-terminated argv of live strings; the callback only moves descriptors.
        let pid = unsafe {
            k::run_helper(
                Some(tap::etap_pre_exec),
                (&raw mut pe_data).cast(),
                argv.as_mut_ptr(),
            )
        };
        if pid < 0 {
            err = pid;
        }
        drop(data_remote);
        drop(control_remote);

        match tap::read_status(control_me.as_raw_fd()) {
            Ok(Some(1)) => {}
            Ok(Some(_)) => {
                klog!(Level::Err, "etap_tramp : uml_net failed");
                // SAFETY: waits for the helper we started.
                err = unsafe { k::helper_wait(pid) };
            }
            res => {
                // End of file leaves errno at the 0 CATCH_EINTR set, and the
                // C layer returns that 0.
                let errno = res.err().map_or(0, |e: Errno| e as c_int);
                klog!(
                    Level::Err,
                    "etap_tramp : read of status failed, err = {errno}"
                );
                return -errno;
            }
        }
        err
    }

    unsafe extern "C" fn etap_open(data: *mut c_void) -> c_int {
        // SAFETY: the driver passes the device's ethertap_data.
        let pri = unsafe { pri(data) };
        // SAFETY: the device and its gateway string (or NULL), as the driver keeps them.
        let err = unsafe { k::tap_open_common(pri.dev, pri.gate_addr) };
        if err != 0 {
            return err;
        }

        let [data_me, data_remote] = match socket::pipe(false, false) {
            Ok(pair) => pair,
            Err(e) => {
                klog!(
                    Level::Err,
                    "etap_open - data socketpair failed - err = {}",
                    e as c_int
                );
                return -(e as c_int);
            }
        };
        let [control_me, control_remote] = match socket::pipe(true, false) {
            Ok(pair) => pair,
            Err(e) => {
                klog!(
                    Level::Err,
                    "etap_open - control socketpair failed - err = {}",
                    e as c_int
                );
                return -(e as c_int);
            }
        };

        // SAFETY: the device name and gateway strings (or NULL), as the driver keeps them.
        let err = unsafe {
            etap_tramp(
                pri.dev_name,
                pri.gate_addr,
                &control_me,
                control_remote,
                &data_me,
                data_remote,
            )
        };
        print_output(
            control_me.as_raw_fd(),
            "etap_open : failed to allocate output buffer",
            false,
        );

        if err < 0 {
            klog!(Level::Err, "etap_tramp failed - err = {}", -err);
            // Our ends close here; etap_tramp closed the others.
            return err;
        }

        pri.data_fd = data_me.into_raw_fd();
        pri.control_fd = control_me.into_raw_fd();
        // SAFETY: etap_open_addr reads the control descriptor through its argument.
        unsafe { k::iter_addresses(pri.dev, etap_open_addr, (&raw mut pri.control_fd).cast()) };
        pri.data_fd
    }

    unsafe extern "C" fn etap_close(fd: c_int, data: *mut c_void) {
        // SAFETY: the driver passes the device's ethertap_data.
        let pri = unsafe { pri(data) };
        // SAFETY: as in etap_open.
        unsafe { k::iter_addresses(pri.dev, etap_close_addr, (&raw mut pri.control_fd).cast()) };
        // SAFETY: the driver hands us the descriptor etap_open returned.
        unsafe { file::close_raw(fd) };

        // `fd` is data_fd: as in the C layer, its shutdown then fails (EBADF)
        // and says so.
        if let Err(e) = socket::shutdown(pri.data_fd, true, true) {
            klog!(
                Level::Err,
                "etap_close - shutdown data socket failed, errno = {}",
                e as c_int
            );
        }
        if let Err(e) = socket::shutdown(pri.control_fd, true, true) {
            klog!(
                Level::Err,
                "etap_close - shutdown control socket failed, errno = {}",
                e as c_int
            );
        }

        if pri.data_fd != fd {
            // SAFETY: our data descriptor, unless the driver's `fd` was it (closed above).
            unsafe { file::close_raw(pri.data_fd) };
        }
        pri.data_fd = -1;
        // SAFETY: our control descriptor.
        unsafe { file::close_raw(pri.control_fd) };
        pri.control_fd = -1;
    }

    unsafe extern "C" fn etap_add_addr(
        addr: *mut c_uchar,
        netmask: *mut c_uchar,
        data: *mut c_void,
    ) {
        // SAFETY: the driver passes the device's ethertap_data.
        let pri = unsafe { pri(data) };
        // SAFETY: the gateway string (or NULL) and the four address bytes the driver gave us.
        unsafe { k::tap_check_ips(pri.gate_addr, addr) };
        if pri.control_fd == -1 {
            return;
        }
        // SAFETY: the driver's address and netmask; the argument is the control descriptor.
        unsafe { etap_open_addr(addr, netmask, (&raw mut pri.control_fd).cast()) };
    }

    unsafe extern "C" fn etap_del_addr(
        addr: *mut c_uchar,
        netmask: *mut c_uchar,
        data: *mut c_void,
    ) {
        // SAFETY: the driver passes the device's ethertap_data.
        let pri = unsafe { pri(data) };
        if pri.control_fd == -1 {
            return;
        }
        // SAFETY: as in etap_add_addr.
        unsafe { etap_close_addr(addr, netmask, (&raw mut pri.control_fd).cast()) };
    }

    /// `ethertap_user_info`: the transport's operations, for ethertap_kern.c.
    #[allow(non_upper_case_globals)]
    #[cfg_attr(feature = "os-drivers-ethertap_user", unsafe(no_mangle))]
    pub static ethertap_user_info: NetUserInfo = NetUserInfo {
        init: Some(etap_user_init),
        open: Some(etap_open),
        close: Some(etap_close),
        remove: None,
        add_address: Some(etap_add_addr),
        delete_address: Some(etap_del_addr),
        mtu: ETH_MAX_PACKET,
        max_packet: ETH_MAX_PACKET + ETH_HEADER_ETHERTAP,
    };
}

#[cfg(test)]
mod tests {
    use core::mem::{align_of, offset_of, size_of};

    use super::*;

    #[test]
    fn ethertap_data_matches_the_x86_64_c_layout() {
        // gcc on x86_64: two pointers, two ints sharing one 8-byte slot,
        // one pointer. etap.h is not on the ABI guard's include path.
        assert_eq!(offset_of!(EthertapData, dev_name), 0);
        assert_eq!(offset_of!(EthertapData, gate_addr), 8);
        assert_eq!(offset_of!(EthertapData, data_fd), 16);
        assert_eq!(offset_of!(EthertapData, control_fd), 20);
        assert_eq!(offset_of!(EthertapData, dev), 24);
        assert_eq!(size_of::<EthertapData>(), 32);
        assert_eq!(align_of::<EthertapData>(), 8);
    }
}
