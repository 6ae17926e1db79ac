// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/skas/: user address spaces.

pub mod mem;
pub mod process;

use core::ffi::c_int;

use crate::host::ptrace::{self, GpRegs, MAX_REG_NR};
use crate::host::skas::StubError;
use crate::host::skas::regcache::RegsCache;
use crate::host::util::HostCell;
use crate::kernel::Level;
use crate::klog;

/// What the registers of the current user process hold on the host (see
/// [`RegsCache`]). Only the kernel thread touches it: the trap loop, stub
/// runs, and the creation and killing of user processes.
static HOST_REGS: HostCell<RegsCache> = HostCell::new(RegsCache::new());

/// Runs `f` on [`HOST_REGS`].
pub(crate) fn host_regs<R>(f: impl FnOnce(&mut RegsCache) -> R) -> R {
    // SAFETY: the kernel thread is the only user (see HOST_REGS); `f` does not re-enter.
    unsafe { HOST_REGS.with(f) }
}

/// The register names of a dump, in `PTRACE_GETREGS` order.
const REG_NAMES: [&str; MAX_REG_NR] = [
    "R15", "R14", "R13", "R12", "BP", "BX", "R11", "R10", "R9", "R8", "AX", "CX", "DX", "SI", "DI",
    "ORIG_AX", "IP", "CS", "EFLAGS", "SP", "SS", "FS_BASE", "GS_BASE", "DS", "ES", "FS", "GS",
];

/// Prints the registers of `pid` ("Stub registers -"), or why it cannot.
pub(crate) fn dump_regs(pid: c_int) {
    let mut regs: GpRegs = [0; MAX_REG_NR];
    if let Err(e) = ptrace::get_regs(pid, &mut regs) {
        klog!(
            Level::Err,
            "Failed to get registers from stub, errno = {}",
            e as i32
        );
        return;
    }
    klog!(Level::Err, "Stub registers -");
    for (i, (name, v)) in REG_NAMES.iter().zip(regs).enumerate() {
        klog!(Level::Err, "\t{name}\t({i:2}): {v:x}");
    }
}

/// A stub did not finish as it must: says how, with the stub's registers,
/// and kills the current guest process (`fatal_sigsegv`), as the C layer
/// does. Kernel builds only; tests see the error values instead.
pub(crate) fn stub_failed(func: &str, pid: c_int, err: StubError) -> ! {
    match err {
        StubError::SetRegs(e) => {
            crate::kernel::fatal(
                crate::kernel::stack_format(format_args!(
                    "{func} : PTRACE_SETREGS failed, errno = {}",
                    e as i32
                ))
                .as_str(),
            );
        }
        StubError::Continue(e) => {
            klog!(
                Level::Err,
                "{func} : continue failed, pid = {pid}, errno = {}",
                e as i32
            );
        }
        StubError::Wait(e) => {
            dump_regs(pid);
            klog!(
                Level::Err,
                "{func} : failed to wait for SIGTRAP, pid = {pid}, errno = {}",
                e as i32
            );
        }
        StubError::BadStatus(status) => {
            dump_regs(pid);
            klog!(
                Level::Err,
                "{func} : failed to wait for SIGTRAP, pid = {pid}, status = 0x{status:x}"
            );
        }
    }
    fatal_sigsegv()
}

/// Kills the current guest process with SIGSEGV (never returns).
pub(crate) fn fatal_sigsegv() -> ! {
    #[cfg(feature = "kernel")]
    // SAFETY: fatal_sigsegv takes no arguments and does not return.
    unsafe {
        crate::kernel::um::fatal_sigsegv()
    }
    #[cfg(not(feature = "kernel"))]
    panic!("fatal_sigsegv")
}
