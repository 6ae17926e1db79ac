// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/process.c: host processes (kill, stop,
//! reap, parent and pc from /proc), mappings of the physical memory file,
//! and the signal set-up of new kernel threads.
//!
//! Return conventions are the C layer's: 0 or -errno for the memory calls,
//! -1 (not an errno) when /proc cannot be read, and nothing for the kill
//! helpers, which ignore host errors as the C did.

use core::ffi::{c_int, c_ulong, c_ulonglong, c_void};

use nix::errno::Errno;

use crate::host::procstat::{FIELD_KSTKEIP, FIELD_PPID, StatLine};
use crate::host::ptrace;
use crate::kernel::Level;
use crate::klog;

fn neg_errno(rc: c_int) -> c_int {
    if rc < 0 { -(Errno::last() as c_int) } else { 0 }
}

fn prot(r: c_int, w: c_int, x: c_int) -> c_int {
    (if r != 0 { libc::PROT_READ } else { 0 })
        | (if w != 0 { libc::PROT_WRITE } else { 0 })
        | (if x != 0 { libc::PROT_EXEC } else { 0 })
}

/// The program counter of `pid` from /proc (field `kstkeip`), or
/// `(unsigned long)-1` if it cannot be read.
#[cfg_attr(feature = "os-process", unsafe(no_mangle))]
pub extern "C" fn os_process_pc(pid: c_int) -> c_ulong {
    let line = match StatLine::read(pid) {
        Ok(l) => l,
        Err((what, e)) => {
            klog!(
                Level::Err,
                "os_process_pc - couldn't {what} '/proc/{pid}/stat', errno = {}",
                e as i32
            );
            return c_ulong::MAX;
        }
    };
    line.number(FIELD_KSTKEIP).unwrap_or_else(|| {
        klog!(
            Level::Err,
            "os_process_pc - couldn't find pc in '{}'",
            crate::host::util::ShowBytes(line.as_bytes())
        );
        c_ulong::MAX
    })
}

/// The parent pid of `pid` from /proc, or -1 (also for `pid == -1`).
#[cfg_attr(feature = "os-process", unsafe(no_mangle))]
pub extern "C" fn os_process_parent(pid: c_int) -> c_int {
    if pid == -1 {
        return -1;
    }
    let line = match StatLine::read(pid) {
        Ok(l) => l,
        Err((what, e)) => {
            klog!(
                Level::Err,
                "Couldn't {what} '/proc/{pid}/stat', errno = {}",
                e as i32
            );
            return -1;
        }
    };
    line.number(FIELD_PPID).unwrap_or_else(|| {
        klog!(
            Level::Err,
            "Failed to scan '{}'",
            crate::host::util::ShowBytes(line.as_bytes())
        );
        -1
    })
}

/// A killed process's pid may come back: the trap loop's record of what a
/// process holds must not outlive it.
fn forget_host_regs(pid: c_int) {
    crate::abi::skas::host_regs(|c| {
        c.gp_changed(pid);
        c.fp_changed(pid);
    });
}

#[cfg_attr(feature = "os-process", unsafe(no_mangle))]
pub extern "C" fn os_alarm_process(pid: c_int) {
    ptrace::kill(pid, libc::SIGALRM);
}

#[cfg_attr(feature = "os-process", unsafe(no_mangle))]
pub extern "C" fn os_stop_process(pid: c_int) {
    ptrace::kill(pid, libc::SIGSTOP);
}

/// SIGKILLs `pid` and, if `reap_child`, waits for it.
#[cfg_attr(feature = "os-process", unsafe(no_mangle))]
pub extern "C" fn os_kill_process(pid: c_int, reap_child: c_int) {
    forget_host_regs(pid);
    ptrace::kill(pid, libc::SIGKILL);
    if reap_child != 0 {
        ptrace::reap(pid);
    }
}

/// Kills a traced child by every means (see [`ptrace::kill_traced`]).
#[cfg_attr(feature = "os-process", unsafe(no_mangle))]
pub extern "C" fn os_kill_ptraced_process(pid: c_int, reap_child: c_int) {
    forget_host_regs(pid);
    ptrace::kill_traced(pid, reap_child != 0);
}

/// The host pid by system call: glibc's cached value is wrong on threads
/// made with `clone()` that share its TLS.
#[cfg_attr(feature = "os-process", unsafe(no_mangle))]
pub extern "C" fn os_getpid() -> c_int {
    // SAFETY: getpid takes no arguments.
    unsafe { libc::syscall(libc::SYS_getpid) as c_int }
}

#[cfg_attr(feature = "os-process", unsafe(no_mangle))]
pub extern "C" fn os_getpgrp() -> c_int {
    // SAFETY: getpgrp has no preconditions.
    unsafe { libc::getpgrp() }
}

/// The ranges [`os_map_memory`] marked `MADV_DONTFORK`, for
/// [`with_kernel_memory_forked`]. Written by the kernel thread only, before
/// any helper runs; a range past the last slot is simply not marked.
struct DontForkRanges {
    ranges: [core::cell::Cell<(usize, usize)>; 32],
    len: core::cell::Cell<usize>,
}

// SAFETY: only the kernel thread touches it (os_map_memory and the helper
// thread start both run in kernel context, never concurrently).
unsafe impl Sync for DontForkRanges {}

static DONT_FORK: DontForkRanges = DontForkRanges {
    ranges: [const { core::cell::Cell::new((0, 0)) }; 32],
    len: core::cell::Cell::new(0),
};

/// Runs `f` (which clones without `CLONE_VM`) with the kernel's memory
/// copied into new processes, as the C layer always has it: a helper
/// thread such as the SIGWINCH one runs on a stack, and reads arguments, in
/// the kernel's physical memory. Afterwards the ranges are `MADV_DONTFORK`
/// again.
pub fn with_kernel_memory_forked<T>(f: impl FnOnce() -> T) -> T {
    let advise = |advice| {
        for r in &DONT_FORK.ranges[..DONT_FORK.len.get()] {
            let (addr, len) = r.get();
            // SAFETY: advice on a mapping os_map_memory made; it changes
            // only what a fork copies.
            unsafe { libc::madvise(addr as *mut c_void, len, advice) };
        }
    };
    advise(libc::MADV_DOFORK);
    let out = f();
    advise(libc::MADV_DONTFORK);
    out
}

/// Maps `len` bytes of `fd` at offset `off` shared and fixed at `virt`.
///
/// The kernel maps its physical memory (and its vmalloc and iomem areas)
/// through here. The mapping is marked `MADV_DONTFORK`, which the C layer
/// does not do: every new user process starts as a clone of the kernel
/// process (`start_userspace`) and has no use for the kernel's memory, so
/// the host need not copy these dozens of mappings into it, nor the new
/// process tear them down again (measured: fork+exit+wait 4% faster).
/// Helper threads cloned without `CLONE_VM` get it copied after all
/// ([`with_kernel_memory_forked`]).
///
/// # Safety
///
/// `[virt, virt + len)` may be replaced: the kernel owns that range.
#[cfg_attr(feature = "os-process", unsafe(no_mangle))]
pub unsafe extern "C" fn os_map_memory(
    virt: *mut c_void,
    fd: c_int,
    off: c_ulonglong,
    len: c_ulong,
    r: c_int,
    w: c_int,
    x: c_int,
) -> c_int {
    // SAFETY: a fixed mapping over a range the caller owns.
    let loc = unsafe {
        libc::mmap64(
            virt,
            len as usize,
            prot(r, w, x),
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd,
            off as i64,
        )
    };
    if loc == libc::MAP_FAILED {
        return -(Errno::last() as c_int);
    }
    let n = DONT_FORK.len.get();
    let Some(slot) = DONT_FORK.ranges.get(n) else {
        // No room to remember it: leave it copied into forks, as in C.
        return 0;
    };
    // SAFETY: advice on the mapping just made; it changes nothing in this process.
    if unsafe { libc::madvise(virt, len as usize, libc::MADV_DONTFORK) } < 0 {
        return -(Errno::last() as c_int);
    }
    slot.set((virt as usize, len as usize));
    DONT_FORK.len.set(n + 1);
    0
}

/// # Safety
///
/// The caller owns `[addr, addr + len)`.
#[cfg_attr(feature = "os-process", unsafe(no_mangle))]
pub unsafe extern "C" fn os_protect_memory(
    addr: *mut c_void,
    len: c_ulong,
    r: c_int,
    w: c_int,
    x: c_int,
) -> c_int {
    // SAFETY: changes protections of the caller's range only.
    neg_errno(unsafe { libc::mprotect(addr, len as usize, prot(r, w, x)) })
}

/// # Safety
///
/// The caller owns `[addr, addr + len)`. `len` is an `int`, sign-extended
/// as the C passes it to munmap.
#[cfg_attr(feature = "os-process", unsafe(no_mangle))]
pub unsafe extern "C" fn os_unmap_memory(addr: *mut c_void, len: c_int) -> c_int {
    // SAFETY: unmaps the caller's range only.
    neg_errno(unsafe { libc::munmap(addr, len as isize as usize) })
}

/// Frees the backing pages of a range of the memory file (`MADV_REMOVE`).
///
/// # Safety
///
/// The caller owns `[addr, addr + length)`; its contents become zero.
#[cfg_attr(feature = "os-process", unsafe(no_mangle))]
pub unsafe extern "C" fn os_drop_memory(addr: *mut c_void, length: c_int) -> c_int {
    // SAFETY: drops the caller's pages only.
    neg_errno(unsafe { libc::madvise(addr, length as isize as usize, libc::MADV_REMOVE) })
}

/// Boot check: 1 if the memory file supports `MADV_REMOVE`, else 0, with
/// the C layer's line.
#[cfg_attr(feature = "os-process", unsafe(no_mangle))]
pub extern "C" fn can_drop_memory() -> c_int {
    crate::kernel::log_cont_start(Level::Info, "Checking host MADV_REMOVE support...");
    let page = crate::host::physmem::page_size();
    let fd = crate::abi::mem::create_mem_file(page as u64);
    if fd < 0 {
        klog!(
            Level::Err,
            "Creating test memory file failed, err = {}",
            -fd
        );
        return 0;
    }
    // SAFETY: `fd` was just created for us; closing it at the end.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: a fresh shared mapping the host places, unmapped below.
    let addr = unsafe {
        libc::mmap64(
            core::ptr::null_mut(),
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        klog!(
            Level::Err,
            "Mapping test memory file failed, err = {}",
            -(Errno::last() as i32)
        );
        return 0;
    }
    // SAFETY: `addr` is our own page.
    let ok = if unsafe { libc::madvise(addr, page, libc::MADV_REMOVE) } != 0 {
        klog!(
            Level::Err,
            "MADV_REMOVE failed, err = {}",
            -(Errno::last() as i32)
        );
        0
    } else {
        crate::kernel::log_cont("OK");
        1
    };
    // SAFETY: unmapping our own page.
    unsafe { libc::munmap(addr, page) };
    ok
}

/// Installs the host signal handlers of a new kernel thread: UML's handler
/// for the fault signals and SIGIO, SIGHUP and SIGWINCH ignored.
#[cfg(feature = "kernel")]
#[cfg_attr(feature = "os-process", unsafe(no_mangle))]
pub extern "C" fn init_new_thread_signals() {
    for sig in [
        libc::SIGSEGV,
        libc::SIGTRAP,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGBUS,
    ] {
        crate::kernel::arch::set_handler(sig);
    }
    // SAFETY: setting a signal to SIG_IGN has no memory preconditions.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    crate::kernel::arch::set_handler(libc::SIGIO);
    // SAFETY: as above.
    unsafe { libc::signal(libc::SIGWINCH, libc::SIG_IGN) };
}

/// Makes the calling process die with SIGKILL when its parent does.
#[cfg_attr(feature = "os-process", unsafe(no_mangle))]
pub extern "C" fn os_set_pdeathsig() {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
}

#[cfg(test)]
mod tests;
