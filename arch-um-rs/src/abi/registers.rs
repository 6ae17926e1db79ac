// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/registers.c.
//!
//! The "safe" register sets: the general and FP registers of a freshly
//! started user process, read once at boot and used to initialise every new
//! thread and the stub's register set.

use core::ffi::{c_int, c_ulong};

use crate::host::ptrace::{self, FP_SIZE, FpRegs, GpRegs, MAX_REG_NR};
use crate::host::util::HostCell;
use crate::kernel::arch;

/// Written once by `init_pid_registers` during boot (from the boot checks,
/// on the one kernel thread), then only read.
static EXEC_REGS: HostCell<GpRegs> = HostCell::new([0; MAX_REG_NR]);
static EXEC_FP_REGS: HostCell<FpRegs> = HostCell::new([0; FP_SIZE]);

/// Records the registers of the stopped child `pid` as the safe set: 0, or
/// -errno if `PTRACE_GETREGS` fails. Also lets the arch code probe the FP
/// interface on that child.
#[cfg_attr(feature = "os-registers", unsafe(no_mangle))]
pub extern "C" fn init_pid_registers(pid: c_int) -> c_int {
    // SAFETY: boot-time, single kernel thread; nothing reads the sets concurrently.
    let r = unsafe { EXEC_REGS.with(|regs| ptrace::get_regs(pid, regs)) };
    if let Err(e) = r {
        return -(e as c_int);
    }
    arch::init_registers(pid);
    // The C layer ignores a failure here too: the FP set then stays zeroed.
    // SAFETY: as above.
    let _ = unsafe { EXEC_FP_REGS.with(|fp| arch::get_fp(pid, fp)) };
    0
}

/// Copies the safe general registers to `regs` and, if `fp_regs` is not
/// NULL, the safe FP registers to `fp_regs`.
///
/// # Safety
///
/// `regs` has room for `MAX_REG_NR` words, `fp_regs` (if not NULL) for
/// `FP_SIZE` words.
#[cfg_attr(feature = "os-registers", unsafe(no_mangle))]
pub unsafe extern "C" fn get_safe_registers(regs: *mut c_ulong, fp_regs: *mut c_ulong) {
    // SAFETY: the sets are only written at boot, before any caller; the caller's buffers are large enough.
    unsafe {
        core::ptr::copy_nonoverlapping(EXEC_REGS.as_ptr().cast::<c_ulong>(), regs, MAX_REG_NR);
        if !fp_regs.is_null() {
            core::ptr::copy_nonoverlapping(
                EXEC_FP_REGS.as_ptr().cast::<c_ulong>(),
                fp_regs,
                FP_SIZE,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::ptrace::reg;
    use crate::host::ptrace::test_support::Tracee;

    #[test]
    fn safe_registers_come_from_a_stopped_child() {
        let child = Tracee::spawn(|| 0);
        assert_eq!(init_pid_registers(child.pid), 0);
        let mut regs = [0 as c_ulong; MAX_REG_NR];
        let mut fp = [0 as c_ulong; FP_SIZE];
        // SAFETY: buffers of the documented sizes.
        unsafe { get_safe_registers(regs.as_mut_ptr(), fp.as_mut_ptr()) };
        assert_ne!(regs[reg::IP], 0);
        assert_ne!(regs[reg::SP], 0);
        assert_eq!(fp[3] & 0xffff_ffff, 0x1f80, "MXCSR of the child");
        // SAFETY: a NULL FP buffer is allowed.
        unsafe { get_safe_registers(regs.as_mut_ptr(), core::ptr::null_mut()) };
        assert_eq!(child.finish(), 0);
        assert_eq!(init_pid_registers(-1), -libc::ESRCH);
    }
}
