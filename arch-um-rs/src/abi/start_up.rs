// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/start_up.c: the host checks made at
//! boot (see [`crate::host::hostcheck`], which `uml-harness hostcheck`
//! also runs), the host CPU features and the `iomem=` option.
//!
//! These run before the kernel allocator is up, with the host's malloc,
//! on UML's only thread: plain std code is fine here.

use core::ffi::{c_char, c_int, c_ulong};

use crate::host::hostcheck::{self, PtracedChild};
use crate::{os_info, os_warn};

/// Prints why the host cannot run UML and exits with status 1, as the C
/// layer's `fatal` does (the kernel is not running yet).
#[cold]
fn fatal(what: &str, e: &dyn core::fmt::Display) -> ! {
    os_warn!("\n{what}: {e}\n");
    // SAFETY: exit(3) from the boot thread, before the kernel runs.
    unsafe { libc::exit(1) }
}

fn check_coredump_limit() {
    match hostcheck::core_dump_limits() {
        Err(e) => os_warn!(
            "Getting core dump limit: {}\n",
            crate::host::util::ErrnoMsg(e as c_int)
        ),
        Ok((soft, hard)) => os_info!("Core dump limits :\n\tsoft - {soft}\n\thard - {hard}\n"),
    }
}

fn check_ptrace() {
    os_info!("Checking that ptrace can change system call numbers...");
    if let Err(e) = hostcheck::check_ptrace_syscall_change() {
        fatal("check_ptrace", &e);
    }
    os_info!("OK\n");
    os_info!("Checking syscall emulation for ptrace...");
    if let Err(e) = hostcheck::check_sysemu() {
        os_warn!("missing\n");
        fatal("check_sysemu", &e);
    }
    os_info!("OK\n");
}

/// The host checks of early boot; exits with a reason if UML cannot run.
#[cfg_attr(feature = "os-start_up", unsafe(no_mangle))]
pub extern "C" fn os_early_checks() {
    check_coredump_limit();
    check_ptrace();
    // Physical memory is mapped before the kernel runs: check it now.
    crate::abi::mem::check_tmpexec();
    let child = PtracedChild::start().unwrap_or_else(|e| fatal("start_ptraced_child", &e));
    if crate::abi::registers::init_pid_registers(child.pid().as_raw()) != 0 {
        fatal(
            "init_pid_registers",
            &"Failed to initialize default registers",
        );
    }
    if let Err(e) = child.stop(1) {
        fatal("stop_ptraced_child", &e);
    }
}

/// Calls `flags_helper` with the first `/proc/cpuinfo` line containing
/// "flags" and `cache_helper` with the one containing "cache_alignment"
/// (stopping after two matches, as the C layer does).
///
/// # Safety
///
/// The helpers take a writable NUL-terminated line, valid for the call.
#[cfg_attr(feature = "os-start_up", unsafe(no_mangle))]
pub unsafe extern "C" fn get_host_cpu_features(
    flags_helper: unsafe extern "C" fn(*mut c_char),
    cache_helper: unsafe extern "C" fn(*mut c_char),
) {
    let Ok(text) = std::fs::read("/proc/cpuinfo") else {
        os_info!("Failed to get host CPU features\n");
        return;
    };
    let mut matched = 0;
    for line in text.split_inclusive(|&b| b == b'\n') {
        let has = |w: &[u8]| line.windows(w.len()).any(|x| x == w);
        let mut owned: Vec<u8> = line.to_vec();
        owned.push(0);
        if has(b"flags") {
            // SAFETY: a NUL-terminated copy of the line, writable, alive for the call.
            unsafe { flags_helper(owned.as_mut_ptr().cast()) };
            matched += 1;
        }
        if has(b"cache_alignment") {
            // SAFETY: as above.
            unsafe { cache_helper(owned.as_mut_ptr().cast()) };
            matched += 1;
        }
        if matched > 1 {
            break;
        }
    }
}

/// `struct iomem_region` (mem_user.h).
#[repr(C)]
pub struct IomemRegion {
    pub next: *mut IomemRegion,
    pub driver: *mut c_char,
    pub fd: c_int,
    pub size: c_int,
    pub phys: c_ulong,
    pub virt: c_ulong,
}

/// The size the C layer gives an iomem region of a `file_size`-byte file:
/// rounded up past the next page boundary (one page more for exact
/// multiples, kept for compatibility).
pub fn iomem_region_size(file_size: u64) -> u64 {
    (file_size + crate::stub::PAGE_SIZE as u64) & !(crate::stub::PAGE_SIZE as u64 - 1)
}

#[cfg(feature = "kernel")]
pub use kernel_side::*;

#[cfg(feature = "kernel")]
mod kernel_side {
    use core::ffi::CStr;

    use super::*;

    unsafe extern "C" {
        static mut iomem_regions: *mut IomemRegion;
        static mut iomem_size: c_int;
    }

    /// `iomem=<driver>,<file>`: maps `file` as I/O memory for `driver`. 0 on
    /// success, 1 on failure (command-line option convention).
    ///
    /// # Safety
    ///
    /// `str` is the writable, NUL-terminated option value, alive for the
    /// life of the kernel (it names the driver).
    #[cfg_attr(feature = "os-start_up", unsafe(no_mangle))]
    pub unsafe extern "C" fn parse_iomem(str: *mut c_char, _add: *mut c_int) -> c_int {
        // SAFETY: a NUL-terminated string by our contract.
        let Some(comma) = (unsafe { CStr::from_ptr(str) })
            .to_bytes()
            .iter()
            .position(|&b| b == b',')
        else {
            os_warn!("parse_iomem : failed to parse iomem\n");
            return 1;
        };
        // The driver name is the part before the comma, in place.
        // SAFETY: `comma` is inside the writable string.
        let file = unsafe {
            *str.add(comma) = 0;
            CStr::from_ptr(str.add(comma + 1))
        };
        let fd = match crate::host::file::open(file, libc::O_RDWR, 0, false) {
            Ok(fd) => fd,
            Err(e) => {
                os_warn!(
                    "parse_iomem - Couldn't open io file: {}\n",
                    crate::host::util::ErrnoMsg(e as c_int)
                );
                return 1;
            }
        };
        let st = match crate::host::file::stat_fd(std::os::fd::AsRawFd::as_raw_fd(&fd)) {
            Ok(st) => st,
            Err(e) => {
                os_warn!(
                    "parse_iomem - cannot stat_fd file: {}\n",
                    crate::host::util::ErrnoMsg(e as c_int)
                );
                return 1;
            }
        };
        let size = iomem_region_size(st.st_size as u64) as c_int;
        // SAFETY: boot-time option parsing on the only thread; the list is the kernel's.
        unsafe {
            let region = Box::new(IomemRegion {
                next: iomem_regions,
                driver: str,
                fd: std::os::fd::IntoRawFd::into_raw_fd(fd),
                size,
                phys: 0,
                virt: 0,
            });
            // The kernel keeps the region for its whole life.
            iomem_regions = Box::into_raw(region);
            iomem_size += size + crate::stub::PAGE_SIZE as c_int;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use core::ffi::CStr;

    use super::*;

    #[test]
    fn iomem_regions_round_like_the_c_layer() {
        assert_eq!(iomem_region_size(0), 4096);
        assert_eq!(iomem_region_size(1), 4096);
        assert_eq!(iomem_region_size(4095), 4096);
        assert_eq!(iomem_region_size(4096), 8192);
        assert_eq!(iomem_region_size(10_000), 12288);
    }

    static FLAGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

    unsafe extern "C" fn record(line: *mut c_char) {
        // SAFETY: the caller passes a NUL-terminated line.
        let s = unsafe { CStr::from_ptr(line) }
            .to_string_lossy()
            .into_owned();
        FLAGS.lock().unwrap().push(s);
    }

    #[test]
    fn cpu_features_reach_both_helpers_once() {
        // SAFETY: `record` copies the line it is given.
        unsafe { get_host_cpu_features(record, record) };
        let seen = FLAGS.lock().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen[0].starts_with("flags"), "{seen:?}");
        assert!(seen.iter().all(|l| l.ends_with('\n')));
    }

    #[test]
    fn the_boot_checks_pass_on_this_host() {
        check_ptrace();
        let child = PtracedChild::start().unwrap();
        assert_eq!(
            crate::abi::registers::init_pid_registers(child.pid().as_raw()),
            0
        );
        child.stop(1).unwrap();
    }
}
