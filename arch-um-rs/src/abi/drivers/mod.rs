// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing the host halves of UML's legacy network transports in
//! `arch/um/os-Linux/drivers`: [`tuntap_user`] (`tuntap_user.c`) and
//! [`ethertap_user`] (`ethertap_user.c`), over the safe core in
//! [`crate::host::tap`].
//!
//! Each file exports one `const struct net_user_info` ([`NetUserInfo`])
//! that its `*_kern.c` half hands to the UML network driver; the functions
//! in it are private, as they are static in C. The kernel side of each is
//! built only with its `os-drivers-*` feature, because it calls the network
//! driver's helpers (`arch/um/drivers/net_user.c`, `net_kern.c`), which a
//! kernel without `CONFIG_UML_NET` does not have.

use core::ffi::{c_int, c_uchar, c_void};

pub mod ethertap_user;
pub mod tuntap_user;

/// `ETH_ADDR_LEN` (net_user.h).
pub const ETH_ADDR_LEN: c_int = 6;
/// `ETH_HEADER_ETHERTAP` (net_user.h): the ethertap frame header.
pub const ETH_HEADER_ETHERTAP: c_int = 16;
/// `ETH_HEADER_OTHER` (net_user.h): Ethernet, VLAN and MPLS headers.
pub const ETH_HEADER_OTHER: c_int = 26;
/// `ETH_MAX_PACKET` (net_user.h): the MTU of the UML network devices.
pub const ETH_MAX_PACKET: c_int = 1500;
/// `UML_NET_VERSION` (net_user.h).
pub const UML_NET_VERSION: c_int = crate::host::tap::UML_NET_VERSION;

/// The callback `iter_addresses` calls for each IPv4 address of a device:
/// address, netmask (four bytes each) and the caller's argument.
pub type AddrFn = unsafe extern "C" fn(*mut c_uchar, *mut c_uchar, *mut c_void);

/// `struct net_user_info` (net_user.h): a transport's host-side operations
/// and packet sizes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NetUserInfo {
    pub init: Option<unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int>,
    pub open: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    pub close: Option<unsafe extern "C" fn(c_int, *mut c_void)>,
    pub remove: Option<unsafe extern "C" fn(*mut c_void)>,
    pub add_address: Option<AddrFn>,
    pub delete_address: Option<AddrFn>,
    pub max_packet: c_int,
    pub mtu: c_int,
}

/// The kernel functions both transports call: the network driver's
/// helpers and the os layer's own (C or Rust, whichever the kernel has).
/// Each transport declares the ones only it calls.
#[cfg(all(
    feature = "kernel",
    any(
        feature = "os-drivers-tuntap_user",
        feature = "os-drivers-ethertap_user"
    )
))]
mod k {
    use core::ffi::{c_char, c_int, c_uchar, c_void};

    use super::AddrFn;
    use crate::host::helper::PreExec;

    unsafe extern "C" {
        pub fn tap_open_common(dev: *mut c_void, gate_addr: *mut c_char) -> c_int;
        pub fn tap_check_ips(gate_addr: *mut c_char, eth_addr: *mut c_uchar);
        pub fn iter_addresses(d: *mut c_void, cb: AddrFn, arg: *mut c_void);
        pub fn run_helper(
            pre_exec: Option<PreExec>,
            pre_data: *mut c_void,
            argv: *mut *mut c_char,
        ) -> c_int;
        pub fn helper_wait(pid: c_int) -> c_int;
        pub fn _printk(fmt: *const c_char, ...) -> c_int;
    }

    /// `printk("%s", s)`: text from the helper, printed as it came (its own
    /// level prefix, if any, or the default level).
    ///
    /// # Safety
    ///
    /// `s` is a NUL-terminated string.
    pub unsafe fn print_str(s: *const c_char) {
        // SAFETY: "%s" takes one C string, which `s` is by our contract.
        unsafe { _printk(c"%s".as_ptr(), s) };
    }

    /// The optional C string `p` (NULL is `None`).
    ///
    /// # Safety
    ///
    /// `p` is NULL or a NUL-terminated string that outlives the result.
    pub unsafe fn opt_cstr<'a>(p: *const c_char) -> Option<&'a core::ffi::CStr> {
        // SAFETY: non-NULL, so NUL-terminated by our contract.
        (!p.is_null()).then(|| unsafe { core::ffi::CStr::from_ptr(p) })
    }
}
