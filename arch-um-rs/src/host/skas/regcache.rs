// SPDX-License-Identifier: GPL-2.0
//! What the registers of a user process hold on the host, so that the trap
//! loop can skip reloading them when they have not changed.
//!
//! The C layer writes the general registers (`PTRACE_SETREGS`) and the
//! FP/XSTATE area (`PTRACE_SETREGSET`) before every resume. Most traps are
//! system calls that leave the FP state alone, and signal stops (SIGALRM,
//! SIGIO) change nothing at all, so most of these writes store what the
//! process already holds. The cache remembers the bytes last read from or
//! written to one host process; a write is skipped only when the kernel's
//! copy is byte for byte what the process holds.
//!
//! Whoever changes a process's registers behind the trap loop's back must
//! say so: the stub (general registers), the SIGSEGV handler (both), a new
//! process that may reuse a pid (both), or a host-level write by the guest's
//! own `ptrace` (FP).

use core::ffi::c_int;

use crate::host::ptrace::{FP_SIZE, FpRegs, GpRegs, MAX_REG_NR};

/// The registers one host process is known to hold.
pub struct RegsCache {
    pid: c_int,
    gp_known: bool,
    fp_known: bool,
    gp: GpRegs,
    fp: FpRegs,
}

impl Default for RegsCache {
    fn default() -> Self {
        Self::new()
    }
}

impl RegsCache {
    pub const fn new() -> Self {
        RegsCache {
            pid: 0,
            gp_known: false,
            fp_known: false,
            gp: [0; MAX_REG_NR],
            fp: [0; FP_SIZE],
        }
    }

    /// Whether `pid` must be given `gp` (it may hold something else).
    pub fn gp_differs(&self, pid: c_int, gp: &GpRegs) -> bool {
        !(self.gp_known && self.pid == pid && self.gp == *gp)
    }

    /// Whether `pid` must be given `fp`.
    pub fn fp_differs(&self, pid: c_int, fp: &FpRegs) -> bool {
        !(self.fp_known && self.pid == pid && self.fp[..] == fp[..])
    }

    fn switch_to(&mut self, pid: c_int) {
        if self.pid != pid {
            self.gp_known = false;
            self.fp_known = false;
            self.pid = pid;
        }
    }

    /// `pid` now holds `gp` (just written or read).
    pub fn holds_gp(&mut self, pid: c_int, gp: &GpRegs) {
        self.switch_to(pid);
        self.gp = *gp;
        self.gp_known = true;
    }

    /// `pid` now holds `fp` (just written or read).
    pub fn holds_fp(&mut self, pid: c_int, fp: &FpRegs) {
        self.switch_to(pid);
        self.fp.copy_from_slice(fp);
        self.fp_known = true;
    }

    /// Code ran in `pid` that changed its general registers.
    pub fn gp_changed(&mut self, pid: c_int) {
        if self.pid == pid {
            self.gp_known = false;
        }
    }

    /// Something changed the FP state of `pid`.
    pub fn fp_changed(&mut self, pid: c_int) {
        if self.pid == pid {
            self.fp_known = false;
        }
    }

    /// Nothing is known any more (a process was created or killed, and its
    /// pid may be reused).
    pub fn forget(&mut self) {
        self.gp_known = false;
        self.fp_known = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(v: u64) -> GpRegs {
        [v; MAX_REG_NR]
    }

    #[test]
    fn skips_only_identical_registers_of_the_same_process() {
        let mut c = RegsCache::new();
        let fp: FpRegs = [7; FP_SIZE];
        assert!(c.gp_differs(5, &regs(1)), "nothing known at first");
        assert!(c.fp_differs(5, &fp));
        c.holds_gp(5, &regs(1));
        c.holds_fp(5, &fp);
        assert!(!c.gp_differs(5, &regs(1)));
        assert!(!c.fp_differs(5, &fp));
        assert!(c.gp_differs(5, &regs(2)), "other contents");
        assert!(c.gp_differs(6, &regs(1)), "other process");
        let mut fp2 = fp;
        fp2[FP_SIZE - 1] = 8;
        assert!(c.fp_differs(5, &fp2), "the last word counts");
    }

    #[test]
    fn another_process_forgets_both_sets() {
        let mut c = RegsCache::new();
        c.holds_gp(5, &regs(1));
        c.holds_fp(5, &[0; FP_SIZE]);
        c.holds_gp(6, &regs(1));
        assert!(!c.gp_differs(6, &regs(1)));
        assert!(
            c.fp_differs(6, &[0; FP_SIZE]),
            "the FP state of 6 is unknown"
        );
        assert!(c.gp_differs(5, &regs(1)), "5 is no longer tracked");
    }

    #[test]
    fn changes_behind_the_loop_are_forgotten() {
        let mut c = RegsCache::new();
        c.holds_gp(5, &regs(1));
        c.holds_fp(5, &[0; FP_SIZE]);
        c.gp_changed(6);
        assert!(!c.gp_differs(5, &regs(1)), "another pid changes nothing");
        c.gp_changed(5);
        assert!(c.gp_differs(5, &regs(1)));
        assert!(!c.fp_differs(5, &[0; FP_SIZE]), "the stub leaves FP alone");
        c.fp_changed(5);
        assert!(c.fp_differs(5, &[0; FP_SIZE]));
        c.holds_gp(5, &regs(1));
        c.forget();
        assert!(c.gp_differs(5, &regs(1)));
    }
}
