// SPDX-License-Identifier: GPL-2.0
//! The trap loop of `skas/process.c` (`userspace`) and the creation of
//! user processes: kernel builds only, as they call into the kernel.

use core::ffi::{c_int, c_long, c_ulong, c_void};

use crate::abi::layout::{JmpBuf, UmlPtRegs};
use crate::abi::skas::host_regs;
use crate::host::ptrace::{self, FpRegs, reg};
use crate::host::skas::{self, StubPages};
use crate::kernel::Level;
use crate::klog;
use crate::stub::{FaultInfo, MmId};

pub(super) mod kernel_side {
    //! The kernel functions the trap loop and the thread switch call.
    use super::*;

    pub type SigHandler = Option<unsafe extern "C" fn(c_int, *mut libc::siginfo_t, *mut UmlPtRegs)>;

    /// The kernel's handler for host signal `sig`.
    pub fn sig_handler(sig: c_int) -> SigHandler {
        // SAFETY: the kernel's table has an entry for every host signal number; filled at boot.
        unsafe {
            (&raw const sig_info)
                .cast::<SigHandler>()
                .add(sig as usize)
                .read()
        }
    }

    pub use crate::kernel::um::{block_signals_trace, kmalloc_ok, unblock_signals_trace};

    unsafe extern "C" {
        pub fn interrupt_end();
        pub fn current_mm_sync();
        pub fn current_mm_id() -> *mut MmId;
        pub fn current_stub_stack() -> c_ulong;
        pub fn report_enomem();
        pub fn singlestepping() -> c_int;
        pub fn handle_syscall(regs: *mut UmlPtRegs);
        pub fn relay_signal(sig: c_int, si: *mut libc::siginfo_t, regs: *mut UmlPtRegs);
        pub fn kernel_longjmp(buf: *mut JmpBuf, val: c_int) -> !;
        /// `void (*sig_info[])(int, struct siginfo *, struct uml_pt_regs *)`,
        /// indexed by signal number (see [`sig_handler`]).
        pub static sig_info: [SigHandler; 0];
        pub fn uml_finishsetup();
    }
}

/// Creates the host process of a new address space whose stub data area
/// is at `stub_stack` (kernel address): its pid, or -errno.
#[cfg_attr(feature = "os-skas-process", unsafe(no_mangle))]
pub extern "C" fn start_userspace(stub_stack: c_ulong) -> c_int {
    use crate::kernel::um;
    let loc = crate::abi::skas::mem::stub_location();
    let mut code_offset = 0;
    let mut data_offset = 0;
    // SAFETY: phys_mapping only reads the kernel's physical memory map; the addresses are in physmem.
    let (code_fd, data_fd) = unsafe {
        let page = (&raw const um::__syscall_stub_start) as c_ulong;
        (
            um::phys_mapping(page - um::uml_physmem, &mut code_offset),
            um::phys_mapping(stub_stack - um::uml_physmem, &mut data_offset),
        )
    };
    let pages = StubPages {
        code_addr: loc.code,
        code_fd,
        code_offset,
        data_addr: loc.data,
        data_fd,
        data_offset,
        segv_handler: loc.segv_handler,
    };
    // A new process may reuse the pid of one the trap loop knew.
    crate::abi::skas::host_regs(|c| c.forget());
    match skas::start_userspace(&pages) {
        Ok(pid) => pid,
        Err(e) => {
            if e.status != 0 {
                let step = if libc::WIFEXITED(e.status) {
                    skas::tramp_failure_name(libc::WEXITSTATUS(e.status))
                } else {
                    None
                };
                klog!(
                    Level::Err,
                    "start_userspace : expected SIGSTOP, got status = {}{}{}",
                    e.status,
                    if step.is_some() {
                        ": the new process failed "
                    } else {
                        ""
                    },
                    step.unwrap_or("")
                );
            } else {
                klog!(
                    Level::Err,
                    "start_userspace : {} failed, errno = {}",
                    e.what,
                    e.errno as i32
                );
            }
            -(e.errno as c_int)
        }
    }
}

/// Records a page fault of `pid` (stopped with SIGSEGV) through the stub's
/// SIGSEGV handler.
///
/// Signal delivery resets the FP state and the handler runs with its own
/// general registers. The C layer saves the FP state before and restores
/// it after (two XSTATE calls more per fault); here `fp`, read at the stop
/// just before, is written back once, so the process holds the user's
/// state again whenever the kernel looks.
fn get_skas_faultinfo(pid: c_int, fi: &mut FaultInfo, fp: &FpRegs) {
    // SAFETY: the current mm's stub data area is mapped in the kernel at current_stub_stack().
    let stack = unsafe { kernel_side::current_stub_stack() } as *const c_void;
    // SAFETY: as above.
    let result = unsafe { skas::capture_fault(pid, stack) };
    crate::abi::skas::host_regs(|c| {
        c.gp_changed(pid);
        c.fp_changed(pid);
    });
    match result {
        Ok(info) => *fi = info,
        Err(e) => crate::abi::skas::stub_failed("get_skas_faultinfo", pid, e),
    }
    let err = crate::kernel::arch::put_fp(pid, fp);
    if err < 0 {
        klog!(Level::Err, "put_fp_registers returned {err}");
        crate::abi::skas::fatal_sigsegv();
    }
    crate::abi::skas::host_regs(|c| c.holds_fp(pid, fp));
}

/// `fatal_sigsegv` after a failed ptrace step of the trap loop.
fn trap_loop_failed(what: &str, e: nix::errno::Errno) -> ! {
    klog!(
        Level::Err,
        "userspace - {what} failed, errno = {}",
        e as i32
    );
    crate::abi::skas::fatal_sigsegv()
}

/// Runs the current address space's host process with the registers in
/// `regs` until the kernel has something to do, forever: flushes pending
/// mapping requests, loads the registers, resumes with `PTRACE_SYSEMU`,
/// and hands the stop (a system call, a fault, a signal) to the kernel.
///
/// # Safety
///
/// `regs` is the current thread's register block and `aux_fp_regs` its
/// spare FP buffer (`FP_SIZE` words); the kernel calls this from the
/// thread's own stack.
#[cfg_attr(feature = "os-skas-process", unsafe(no_mangle))]
pub unsafe extern "C" fn userspace(regs: *mut UmlPtRegs, aux_fp_regs: *mut c_ulong) -> ! {
    use crate::kernel::arch;
    use kernel_side as k;
    // SAFETY: per the contract; it stays valid while the thread lives.
    let regs = unsafe { &mut *regs };
    // The C layer's spare FP buffer for the fault path; not needed here.
    let _ = aux_fp_regs;
    let mut pid = super::current_pid();
    let stub = crate::abi::skas::mem::stub_location();
    let stub_range = stub.code as usize..stub.data as usize + crate::stub::STUB_DATA_SIZE;
    let mut si: libc::siginfo_t = {
        // SAFETY: siginfo_t is plain data; all-zero is a valid value.
        unsafe { core::mem::zeroed() }
    };

    // SAFETY: kernel entry points, called as the C loop calls them.
    unsafe { k::interrupt_end() };
    loop {
        // SAFETY: as above; current_mm_id is the current thread's mm_id (or NULL for none).
        let err = unsafe {
            k::current_mm_sync();
            crate::abi::skas::mem::syscall_stub_flush(k::current_mm_id())
        };
        if err != 0 {
            if err == -libc::ENOMEM {
                // SAFETY: kernel entry point.
                unsafe { k::report_enomem() };
            }
            klog!(
                Level::Err,
                "userspace - Error flushing stub syscalls: {}",
                -err
            );
            crate::abi::skas::fatal_sigsegv();
        }

        // Load what the process does not hold already. Setting the general
        // registers fails legitimately if the process loaded a bogus segment
        // register: nothing to do then but kill it.
        let (load_gp, load_fp) =
            host_regs(|c| (c.gp_differs(pid, &regs.gp), c.fp_differs(pid, &regs.fp)));
        if load_gp {
            if let Err(e) = ptrace::set_regs(pid, &regs.gp) {
                trap_loop_failed("ptrace set regs", e);
            }
            host_regs(|c| c.holds_gp(pid, &regs.gp));
        }
        if load_fp {
            let err = arch::put_fp(pid, &regs.fp);
            if err != 0 {
                trap_loop_failed("ptrace set fp regs", nix::errno::Errno::from_raw(-err));
            }
            host_regs(|c| c.holds_fp(pid, &regs.fp));
        }
        // SAFETY: kernel entry point.
        let op = if unsafe { k::singlestepping() } != 0 {
            ptrace::PTRACE_SYSEMU_SINGLESTEP
        } else {
            ptrace::PTRACE_SYSEMU
        };
        if let Err(e) = ptrace::resume(op, pid, 0) {
            klog!(
                Level::Err,
                "userspace - ptrace continue failed, op = {op}, errno = {}",
                e as i32
            );
            crate::abi::skas::fatal_sigsegv();
        }
        let status = match ptrace::wait_stopped(pid) {
            Ok(s) => s,
            Err(e) => trap_loop_failed("wait", e),
        };

        regs.is_user = 1;
        if let Err(e) = ptrace::get_regs(pid, &mut regs.gp) {
            trap_loop_failed("PTRACE_GETREGS", e);
        }
        let err = arch::get_fp(pid, &mut regs.fp);
        if err != 0 {
            trap_loop_failed("get_fp_registers", nix::errno::Errno::from_raw(-err));
        }
        host_regs(|c| {
            c.holds_gp(pid, &regs.gp);
            c.holds_fp(pid, &regs.fp);
        });
        regs.syscall = -1; // Assume it is not a system call.

        let Some(sig) = ptrace::stop_signal(status) else {
            continue;
        };
        // Only these handlers use the siginfo; SIGIO and SIGALRM, the
        // most frequent, do not.
        if matches!(
            sig,
            libc::SIGSEGV
                | libc::SIGTRAP
                | libc::SIGILL
                | libc::SIGBUS
                | libc::SIGFPE
                | libc::SIGWINCH
        ) {
            let _ = ptrace::get_siginfo(pid, &mut si);
        }
        let handler = k::sig_handler;
        match sig {
            libc::SIGSEGV => {
                get_skas_faultinfo(pid, &mut regs.faultinfo, &regs.fp);
                if let Some(h) = handler(libc::SIGSEGV) {
                    // SAFETY: the kernel's SIGSEGV handler with our siginfo and registers.
                    unsafe { h(libc::SIGSEGV, &mut si, regs) };
                }
            }
            s if s == libc::SIGTRAP | 0x80 => {
                // A system call. One from inside the stub is a stub bug.
                if stub_range.contains(&(regs.gp[reg::IP] as usize)) {
                    crate::abi::skas::fatal_sigsegv();
                }
                let nr = regs.gp[reg::ORIG_AX];
                // SAFETY: kernel entry point with the thread's registers.
                unsafe { k::handle_syscall(regs) };
                if nr == libc::SYS_ptrace as c_ulong {
                    // PTRACE_SETFPREGS of the guest writes the host process's FP
                    // state directly (x86/um/ptrace_64.c), not the kernel's copy.
                    host_regs(|c| c.forget());
                }
            }
            // SAFETY: kernel entry point with our siginfo and registers.
            libc::SIGTRAP => unsafe { k::relay_signal(libc::SIGTRAP, &mut si, regs) },
            libc::SIGALRM => {}
            libc::SIGIO | libc::SIGILL | libc::SIGBUS | libc::SIGFPE | libc::SIGWINCH => {
                // SAFETY: kernel entry points; the handler with our siginfo and registers.
                unsafe {
                    k::block_signals_trace();
                    if let Some(h) = handler(sig) {
                        h(sig, &mut si, regs);
                    }
                    k::unblock_signals_trace();
                }
            }
            _ => {
                klog!(Level::Err, "userspace - child stopped with signal {sig}");
                crate::abi::skas::fatal_sigsegv();
            }
        }
        pid = super::current_pid();
        // SAFETY: kernel entry point.
        unsafe { k::interrupt_end() };
        // Keep the host from restarting a system call (-ERESTARTSYS).
        regs.gp[reg::ORIG_AX] = c_long::from(-1i32) as c_ulong;
    }
}
