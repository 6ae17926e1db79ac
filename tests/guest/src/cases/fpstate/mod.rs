// SPDX-License-Identifier: GPL-2.0
//! FP/SSE/AVX register state across everything that takes a user thread
//! out of user mode and back.
//!
//! UML keeps a user thread's FP/XSTATE area in the kernel and moves it to
//! and from the host process with ptrace (`PTRACE_GETREGSET` and
//! `PTRACE_SETREGSET`, `NT_X86_XSTATE`) around every trap. This case loads
//! xmm0..xmm15 (and ymm0..ymm15 when the CPU has AVX) and MXCSR with values
//! unique to the sub-check, thread and round, lets the event happen inside
//! the same `asm!` block, stores the registers back and compares every
//! 64-bit word:
//!
//! * `threads`: three threads of one process (one host process in UML)
//!   passing a token round a ring of pipes: getppid, a blocking pipe read,
//!   a pipe write, sched_yield, now and then a nanosleep; each thread with
//!   its own MXCSR (flush-to-zero and denormals-are-zero, the default,
//!   round toward zero);
//! * `preempt`: three threads spinning inside the block, switched by the
//!   timer tick;
//! * `page faults`: two threads alternating (sched_yield) while each first
//!   touches fresh pages of its own anonymous mapping, then mprotect and
//!   munmap of some of them (the stub changes the host mappings);
//! * `signal`: tgkill to the thread itself, whose handler loads garbage
//!   into every vector register and MXCSR; after sigreturn the interrupted
//!   block must find its own values;
//! * `itimer`: the same handler on SIGALRM from an interval timer, arriving
//!   while the block spins;
//! * `fork`: the raw fork system call inside the block; parent and child
//!   both find the values, and the child then its own after a syscall;
//! * `ping-pong`: two processes alternating over pipes, each with its own
//!   values;
//! * `ptrace`: a tracer's own registers survive its `PTRACE_SETFPREGS` and
//!   `PTRACE_GETFPREGS` calls on a stopped tracee (UML serves both from the
//!   host process of the current address space, which is the tracer's).
//!
//! A failure names the sub-check, the width, the thread or process, the
//! round, the step, the register and word, the value found and the one
//! expected, and what the found value was meant for when it is one of the
//! case's own patterns (another thread's, another round's, the handler's
//! garbage).

use super::Config;
use crate::ktap::CaseResult;

#[cfg(target_arch = "x86_64")]
mod checks;
#[cfg(target_arch = "x86_64")]
mod regs;

pub fn fp_state(cfg: &Config) -> CaseResult {
    #[cfg(target_arch = "x86_64")]
    {
        let _ = cfg;
        checks::run()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = cfg;
        crate::skip!("the register checks are written for x86-64")
    }
}
