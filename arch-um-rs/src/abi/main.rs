// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/main.c: the process entry point (the
//! host's `main`), reboot by re-exec, and the `malloc`/`calloc`/`free`
//! wrappers the kernel is linked with (`--wrap`).
//!
//! The decisions are plain functions tested by `cargo test`; the kernel
//! entry points are thin (kernel builds only).

use core::ffi::c_int;

/// UML's helper programs (port-helper) live here; appended to `PATH`.
/// `OS_LIB_PATH "/uml"`, with the double slash of the C definition.
pub const UML_LIB_PATH: &str = ":/usr/lib64//uml";

/// The stack limit UML runs with: 8 MiB at most.
pub const STACK_SIZE: u64 = 8 << 20;

/// The `PATH` UML gives itself and its helpers: the host's, or a default
/// when it is unset or empty, followed by UML's library directory.
pub fn uml_path(host_path: Option<&[u8]>) -> Vec<u8> {
    let mut p = match host_path {
        Some(old) if !old.is_empty() => old.to_vec(),
        _ => b":/bin:/usr/bin/".to_vec(),
    };
    p.extend_from_slice(UML_LIB_PATH.as_bytes());
    p
}

/// The new soft stack limit if the current one must be lowered (unlimited
/// or above [`STACK_SIZE`]).
pub fn lowered_stack_limit(soft: libc::rlim_t) -> Option<libc::rlim_t> {
    (soft == libc::RLIM_INFINITY || soft > STACK_SIZE).then_some(STACK_SIZE)
}

/// Where an allocation of `size` bytes comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocFrom {
    /// The host C library (before the kernel allocator is up).
    Host,
    /// kmalloc: up to a page.
    Kmalloc,
    /// vmalloc: larger blocks.
    Vmalloc,
}

pub fn alloc_from(kmalloc_ok: bool, size: usize, page_size: usize) -> AllocFrom {
    if !kmalloc_ok {
        AllocFrom::Host
    } else if size <= page_size {
        AllocFrom::Kmalloc
    } else {
        AllocFrom::Vmalloc
    }
}

/// Who frees the block at `addr`: kernel physical memory is kmalloc's,
/// the vmalloc range vmalloc's, anything else the host's. `None` when a
/// kernel block is freed before the kernel allocator is up (nothing to do).
pub fn free_to(
    addr: usize,
    kmalloc_ok: bool,
    physmem: core::ops::Range<usize>,
    vm: core::ops::Range<usize>,
) -> Option<AllocFrom> {
    if physmem.contains(&addr) {
        kmalloc_ok.then_some(AllocFrom::Kmalloc)
    } else if vm.contains(&addr) {
        kmalloc_ok.then_some(AllocFrom::Vmalloc)
    } else {
        Some(AllocFrom::Host)
    }
}

/// Signals whose default action would kill UML without cleaning up: they
/// get a last-ditch handler that removes the umid directory first.
pub const FATAL_SIGNALS: [c_int; 2] = [libc::SIGINT, libc::SIGTERM];

#[cfg(feature = "kernel")]
pub use kernel_side::*;

#[cfg(feature = "kernel")]
mod kernel_side {
    use core::ffi::{CStr, c_char, c_long, c_ulong, c_void};
    use std::ffi::CString;

    use super::*;
    use crate::os_warn;

    mod k {
        use super::*;
        pub use crate::kernel::um::{
            kfree, kmalloc_ok, uml_kmalloc, uml_physmem, vfree, vmalloc_noprof,
        };

        unsafe extern "C" {
            pub static uml_exitcode: c_int;
            pub static high_physmem: c_ulong;
            pub static start_vm: c_ulong;
            pub static end_vm: c_ulong;
            pub fn linux_main(argc: c_int, argv: *mut *mut c_char) -> c_int;
            pub fn uml_cleanup();
            pub fn deactivate_all_fds() -> c_int;
            pub fn __real_malloc(size: usize) -> *mut c_void;
            pub fn __real_free(ptr: *mut c_void);
            pub fn os_timer_disable();
            pub fn unblock_signals();
        }
    }

    /// `AT_HWCAP` of the host, for `ELF_HWCAP` (only read on i386 hosts,
    /// where elf_aux.c fills it; 0 here).
    #[cfg_attr(feature = "os-main", unsafe(no_mangle))]
    #[allow(non_upper_case_globals)]
    pub static elf_aux_hwcap: core::sync::atomic::AtomicI64 = core::sync::atomic::AtomicI64::new(0);
    const _: () = assert!(size_of::<c_long>() == size_of::<i64>());

    fn kmalloc_ok() -> bool {
        // SAFETY: a kernel int, set once when the allocator comes up.
        unsafe { core::ptr::read_volatile(&raw const k::kmalloc_ok) != 0 }
    }

    fn errno_set(e: c_int) {
        // SAFETY: this thread's errno.
        unsafe { *libc::__errno_location() = e };
    }

    /// `malloc` of everything linked into the kernel: the host's until the
    /// kernel allocator is up, then kmalloc (up to a page) or vmalloc.
    /// Takes the caller's full `size_t` (the C wrapper truncated to int).
    #[cfg_attr(feature = "os-main", unsafe(no_mangle))]
    pub extern "C" fn __wrap_malloc(size: usize) -> *mut c_void {
        // SAFETY: each allocator is called as its C callers do; the size fits its argument type.
        let p = unsafe {
            match alloc_from(kmalloc_ok(), size, crate::stub::PAGE_SIZE) {
                AllocFrom::Host => return k::__real_malloc(size),
                AllocFrom::Kmalloc => {
                    k::uml_kmalloc(size as c_int, crate::abi::helper::UM_GFP_KERNEL)
                }
                AllocFrom::Vmalloc => k::vmalloc_noprof(size as c_ulong),
            }
        };
        if p.is_null() {
            errno_set(libc::ENOMEM);
        }
        p
    }

    /// `calloc`: [`__wrap_malloc`] of `n * size` bytes, zeroed; NULL with
    /// ENOMEM when the product overflows (the C wrapper wrapped around).
    #[cfg_attr(feature = "os-main", unsafe(no_mangle))]
    pub extern "C" fn __wrap_calloc(n: usize, size: usize) -> *mut c_void {
        let Some(total) = n.checked_mul(size) else {
            errno_set(libc::ENOMEM);
            return core::ptr::null_mut();
        };
        let p = __wrap_malloc(total);
        if !p.is_null() {
            // SAFETY: a fresh block of `total` bytes.
            unsafe { core::ptr::write_bytes(p.cast::<u8>(), 0, total) };
        }
        p
    }

    /// `free`: back to whichever allocator the address belongs to.
    ///
    /// # Safety
    ///
    /// `ptr` is NULL or came from [`__wrap_malloc`]/[`__wrap_calloc`] (or the
    /// host malloc before the kernel allocator was up), freed once.
    #[cfg_attr(feature = "os-main", unsafe(no_mangle))]
    pub unsafe extern "C" fn __wrap_free(ptr: *mut c_void) {
        // SAFETY: kernel variables describing its address space, fixed after boot setup.
        let (physmem, vm) = unsafe {
            (
                k::uml_physmem as usize..k::high_physmem as usize,
                k::start_vm as usize..k::end_vm as usize,
            )
        };
        // SAFETY: `ptr` belongs to the allocator free_to names, per our contract.
        unsafe {
            match free_to(ptr as usize, kmalloc_ok(), physmem, vm) {
                Some(AllocFrom::Kmalloc) => k::kfree(ptr),
                Some(AllocFrom::Vmalloc) => k::vfree(ptr),
                Some(AllocFrom::Host) => k::__real_free(ptr),
                None => {}
            }
        }
    }

    #[cold]
    fn die(what: &str) -> ! {
        os_warn!("{what}: {}\n", std::io::Error::last_os_error());
        // SAFETY: exit(3) from the boot thread.
        unsafe { libc::exit(1) }
    }

    fn set_stack_limit() {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `lim` is writable.
        if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut lim) } < 0 {
            die("getrlimit");
        }
        if let Some(cur) = lowered_stack_limit(lim.rlim_cur) {
            lim.rlim_cur = cur;
            // SAFETY: a valid rlimit (soft lowered, hard unchanged).
            if unsafe { libc::setrlimit(libc::RLIMIT_STACK, &lim) } < 0 {
                die("setrlimit");
            }
        }
    }

    fn setup_env_path() {
        // SAFETY: getenv on the boot thread; the value is copied at once.
        let old = unsafe { libc::getenv(c"PATH".as_ptr()) };
        // SAFETY: non-NULL getenv results are C strings.
        let old = (!old.is_null()).then(|| unsafe { CStr::from_ptr(old) }.to_bytes().to_vec());
        let Ok(path) = CString::new(uml_path(old.as_deref())) else {
            return;
        };
        // SAFETY: setenv copies both strings; boot thread, no concurrent environment access.
        if unsafe { libc::setenv(c"PATH".as_ptr(), path.as_ptr(), 1) } != 0 {
            os_warn!(
                "couldn't set a new PATH: {}\n",
                std::io::Error::last_os_error()
            );
        }
    }

    extern "C" fn last_ditch_exit(_sig: c_int) {
        // SAFETY: the kernel's cleanup (removes the umid directory), then exit, as in the C layer.
        unsafe {
            k::uml_cleanup();
            libc::exit(1);
        }
    }

    fn install_fatal_handler(sig: c_int) {
        // SAFETY: an all-zero sigaction is a valid value to fill in.
        let mut action: libc::sigaction = unsafe { core::mem::zeroed() };
        let handler: extern "C" fn(c_int) = last_ditch_exit;
        action.sa_sigaction = handler as usize;
        action.sa_flags = libc::SA_RESETHAND | libc::SA_NODEFER;
        // SAFETY: installs a handler for `sig`; the mask in `action` is empty.
        if unsafe { libc::sigaction(sig, &action, core::ptr::null_mut()) } < 0 {
            os_warn!(
                "failed to install handler for signal {sig} - errno = {}\n",
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
            );
            // SAFETY: exit(3) from the boot thread.
            unsafe { libc::exit(1) };
        }
    }

    /// The host process's entry point: sets the process up, runs the
    /// kernel, and on its return either exits with the kernel's exit code
    /// or, for a reboot, executes the same command line again.
    ///
    /// # Safety
    ///
    /// Called once by the C runtime with its `argc`/`argv`/`envp`.
    #[cfg_attr(feature = "os-main", unsafe(no_mangle))]
    pub unsafe extern "C" fn main(
        argc: c_int,
        argv: *mut *mut c_char,
        _envp: *mut *mut c_char,
    ) -> c_int {
        set_stack_limit();
        setup_env_path();
        // SAFETY: plain system call; fails harmlessly if we already lead a group.
        unsafe { libc::setsid() };

        // The kernel parses (and writes NULs into) argv: keep a copy for
        // the re-exec of a reboot.
        let arg = |i: usize| {
            // SAFETY: the C runtime's argv holds argc C strings.
            unsafe { CStr::from_ptr(*argv.add(i)) }.to_owned()
        };
        let saved: Vec<CString> = (0..argc as usize).map(arg).collect();
        let mut saved_argv: Vec<*const c_char> = saved.iter().map(|a| a.as_ptr()).collect();
        saved_argv.push(core::ptr::null());

        FATAL_SIGNALS.into_iter().for_each(install_fatal_handler);
        crate::abi::signal::change_sig(libc::SIGPIPE, 0);
        // SAFETY: the kernel's entry, with the runtime's arguments; returns at halt or reboot.
        let reboot = unsafe { k::linux_main(argc, argv) };

        // Profiling must not interrupt the shutdown, nor the timer.
        crate::abi::signal::change_sig(libc::SIGPROF, 0);
        // SAFETY: kernel/os-layer functions without arguments, on the way out.
        let err = unsafe {
            k::os_timer_disable();
            k::deactivate_all_fds()
        };
        if err != 0 {
            os_warn!("deactivate_all_fds failed, errno = {}\n", -err);
        }
        // SAFETY: replays whatever interrupt is pending, as the C layer does before leaving.
        unsafe { k::unblock_signals() };
        crate::os_info!("\n");
        if reboot != 0 {
            // SAFETY: a NULL-terminated argv of C strings that outlive the call.
            unsafe { libc::execvp(saved_argv[0], saved_argv.as_ptr()) };
            os_warn!(
                "Failed to exec kernel: {}\n",
                std::io::Error::last_os_error()
            );
        }
        // The copies came from the host's malloc before boot; once the
        // kernel allocator is up, free() would take an address inside the
        // kernel's memory range for its own. Never freed, as in the C layer.
        core::mem::forget(saved_argv);
        core::mem::forget(saved);
        // SAFETY: the kernel's exit code, final once linux_main returned.
        unsafe { core::ptr::read_volatile(&raw const k::uml_exitcode) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_gets_the_uml_directory_appended() {
        assert_eq!(
            uml_path(Some(b"/usr/bin:/bin")),
            b"/usr/bin:/bin:/usr/lib64//uml"
        );
        assert_eq!(uml_path(None), b":/bin:/usr/bin/:/usr/lib64//uml");
        assert_eq!(uml_path(Some(b"")), b":/bin:/usr/bin/:/usr/lib64//uml");
    }

    #[test]
    fn stack_limit_is_lowered_to_8_mib_only_when_above() {
        assert_eq!(lowered_stack_limit(libc::RLIM_INFINITY), Some(8 << 20));
        assert_eq!(lowered_stack_limit(64 << 20), Some(8 << 20));
        assert_eq!(lowered_stack_limit(8 << 20), None);
        assert_eq!(lowered_stack_limit(1 << 20), None);
    }

    #[test]
    fn allocations_route_by_size_once_the_kernel_allocator_is_up() {
        assert_eq!(alloc_from(false, 1 << 30, 4096), AllocFrom::Host);
        assert_eq!(alloc_from(true, 4096, 4096), AllocFrom::Kmalloc);
        assert_eq!(alloc_from(true, 4097, 4096), AllocFrom::Vmalloc);
    }

    #[test]
    fn frees_route_by_address() {
        let phys = 0x6000_0000..0x7000_0000;
        let vm = 0x7000_0000..0x8000_0000;
        let f = |a, ok| free_to(a, ok, phys.clone(), vm.clone());
        assert_eq!(f(0x6000_0000, true), Some(AllocFrom::Kmalloc));
        assert_eq!(f(0x6fff_ffff, true), Some(AllocFrom::Kmalloc));
        assert_eq!(f(0x7000_0000, true), Some(AllocFrom::Vmalloc));
        assert_eq!(f(0x8000_0000, true), Some(AllocFrom::Host));
        assert_eq!(f(0x1000, false), Some(AllocFrom::Host));
        // A kernel block freed before kmalloc works: left alone, as in C.
        assert_eq!(f(0x6000_1000, false), None);
        assert_eq!(f(0x7000_1000, false), None);
    }
}
