// SPDX-License-Identifier: GPL-2.0
//! ptrace(2) and waitpid(2) as the skas code uses them: register blocks as
//! plain `unsigned long` arrays (the layout UML keeps in `uml_pt_regs`), no
//! allocation, errors as [`Errno`].
//!
//! These calls sit on the trap path (every guest syscall and page fault), so
//! they are thin: one system call each, no copies. See ptrace(2).

use core::ffi::{c_int, c_long, c_ulong, c_void};

use nix::errno::Errno;

use crate::host::file::retry_eintr;

/// `MAX_REG_NR` (sysdep/ptrace.h): the number of words in the host's
/// `struct user_regs_struct` on x86_64.
pub const MAX_REG_NR: usize = core::mem::size_of::<libc::user_regs_struct>() / 8;

/// `HOST_FP_SIZE` (user_constants.h): words of the XSTATE buffer UML keeps
/// per thread (2696 bytes on x86_64).
pub const FP_SIZE: usize = 2696 / 8;

/// General registers in `PTRACE_GETREGS` order.
pub type GpRegs = [c_ulong; MAX_REG_NR];
/// The FP/XSTATE area, as `PTRACE_GETREGSET(NT_X86_XSTATE)` fills it.
pub type FpRegs = [c_ulong; FP_SIZE];

/// Word indices into [`GpRegs`] (`HOST_*` in user_constants.h).
pub mod reg {
    const fn idx(byte_offset: usize) -> usize {
        byte_offset / 8
    }
    macro_rules! regs {
        ($($name:ident = $field:ident),* $(,)?) => {
            $(pub const $name: usize = idx(core::mem::offset_of!(libc::user_regs_struct, $field));)*
        };
    }
    regs!(
        R15 = r15,
        R14 = r14,
        R13 = r13,
        R12 = r12,
        BP = rbp,
        BX = rbx,
        R11 = r11,
        R10 = r10,
        R9 = r9,
        R8 = r8,
        AX = rax,
        CX = rcx,
        DX = rdx,
        SI = rsi,
        DI = rdi,
        ORIG_AX = orig_rax,
        IP = rip,
        CS = cs,
        EFLAGS = eflags,
        SP = rsp,
        SS = ss,
        FS_BASE = fs_base,
        GS_BASE = gs_base,
        DS = ds,
        ES = es,
        FS = fs,
        GS = gs,
    );
}

/// `PTRACE_SYSEMU` and `PTRACE_SYSEMU_SINGLESTEP` (not in every libc).
pub const PTRACE_SYSEMU: c_int = 31;
pub const PTRACE_SYSEMU_SINGLESTEP: c_int = 32;

fn check(rc: c_long) -> Result<c_long, Errno> {
    if rc == -1 { Err(Errno::last()) } else { Ok(rc) }
}

/// A raw ptrace request with the errno cleared first, so that a PEEK
/// returning -1 as data is told apart from a failure by the caller.
///
/// # Safety
///
/// `addr` and `data` must be valid for `req` as ptrace(2) describes it.
pub unsafe fn raw(
    req: c_int,
    pid: c_int,
    addr: *mut c_void,
    data: *mut c_void,
) -> Result<c_long, Errno> {
    // SAFETY: forwarded; the caller vouches for the pointers.
    check(unsafe { libc::ptrace(req as _, pid, addr, data) })
}

/// `PTRACE_GETREGS` into `regs`.
pub fn get_regs(pid: c_int, regs: &mut GpRegs) -> Result<(), Errno> {
    // SAFETY: `regs` is a writable user_regs_struct-sized buffer.
    unsafe {
        raw(
            libc::PTRACE_GETREGS as _,
            pid,
            core::ptr::null_mut(),
            regs.as_mut_ptr().cast(),
        )
    }
    .map(drop)
}

/// `PTRACE_SETREGS` from `regs`.
pub fn set_regs(pid: c_int, regs: &GpRegs) -> Result<(), Errno> {
    // SAFETY: `regs` is a readable user_regs_struct-sized buffer; the kernel only reads it.
    unsafe {
        raw(
            libc::PTRACE_SETREGS as _,
            pid,
            core::ptr::null_mut(),
            regs.as_ptr().cast_mut().cast(),
        )
    }
    .map(drop)
}

const NT_X86_XSTATE: usize = 0x202;

/// Moves the FP state of `pid` between the kernel and `buf` with
/// `regset_req` (`PTRACE_GETREGSET`/`SETREGSET` of the XSTATE area), or
/// with `legacy_req` (`PTRACE_GETFPREGS`/`SETFPREGS`, the FXSAVE area) on
/// hosts without XSTATE regsets.
///
/// # Safety
///
/// `buf` points to an `FpRegs`, writable for the GET requests.
unsafe fn fp_transfer(
    regset_req: c_int,
    legacy_req: c_int,
    pid: c_int,
    buf: *mut c_ulong,
) -> Result<(), Errno> {
    let mut iov = libc::iovec {
        iov_base: buf.cast(),
        iov_len: core::mem::size_of::<FpRegs>(),
    };
    // SAFETY: `iov` describes the caller's FpRegs buffer.
    let r = unsafe {
        raw(
            regset_req,
            pid,
            NT_X86_XSTATE as *mut c_void,
            (&raw mut iov).cast(),
        )
    };
    match r {
        Err(Errno::EIO | Errno::EINVAL) => {
            // SAFETY: the buffer is larger than struct user_fpregs_struct (512 bytes).
            unsafe { raw(legacy_req, pid, core::ptr::null_mut(), buf.cast()) }.map(drop)
        }
        r => r.map(drop),
    }
}

/// Reads the FP/XSTATE registers of `pid` into `fp`.
pub fn get_fp_regs(pid: c_int, fp: &mut FpRegs) -> Result<(), Errno> {
    // SAFETY: `fp` is a writable FpRegs.
    unsafe {
        fp_transfer(
            libc::PTRACE_GETREGSET as _,
            libc::PTRACE_GETFPREGS as _,
            pid,
            fp.as_mut_ptr(),
        )
    }
}

/// Writes `fp` to the FP/XSTATE registers of `pid`.
pub fn set_fp_regs(pid: c_int, fp: &FpRegs) -> Result<(), Errno> {
    // SAFETY: `fp` is an FpRegs; the SET requests only read it.
    unsafe {
        fp_transfer(
            libc::PTRACE_SETREGSET as _,
            libc::PTRACE_SETFPREGS as _,
            pid,
            fp.as_ptr().cast_mut(),
        )
    }
}

/// Resumes a stopped tracee with `req` (`PTRACE_CONT`, `PTRACE_SYSEMU`,
/// ...), delivering `sig` (0 for none).
pub fn resume(req: c_int, pid: c_int, sig: c_int) -> Result<(), Errno> {
    // SAFETY: resume requests take no pointers; `data` is a signal number.
    unsafe { raw(req, pid, core::ptr::null_mut(), sig as usize as *mut c_void) }.map(drop)
}

/// `PTRACE_SETOPTIONS`.
pub fn set_options(pid: c_int, options: c_int) -> Result<(), Errno> {
    // SAFETY: SETOPTIONS takes its options in `data`, no pointers.
    unsafe {
        raw(
            libc::PTRACE_SETOPTIONS as _,
            pid,
            core::ptr::null_mut(),
            options as usize as *mut c_void,
        )
    }
    .map(drop)
}

/// `PTRACE_GETSIGINFO` into `si`.
pub fn get_siginfo(pid: c_int, si: &mut libc::siginfo_t) -> Result<(), Errno> {
    // SAFETY: `si` is a writable siginfo_t.
    unsafe {
        raw(
            libc::PTRACE_GETSIGINFO as _,
            pid,
            core::ptr::null_mut(),
            (si as *mut libc::siginfo_t).cast(),
        )
    }
    .map(drop)
}

/// `waitpid(pid, &status, WUNTRACED | __WALL)`, retried on EINTR: the raw
/// status of the next stop or exit of `pid`.
pub fn wait_stopped(pid: c_int) -> Result<c_int, Errno> {
    retry_eintr(|| {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer.
        let n = unsafe { libc::waitpid(pid, &mut status, libc::WUNTRACED | libc::__WALL) };
        if n < 0 {
            Err(Errno::last())
        } else {
            Ok(status)
        }
    })
}

/// Reaps `pid` (any state), retried on EINTR; errors are ignored as the C
/// layer ignores them.
pub fn reap(pid: c_int) {
    let _ = retry_eintr(|| {
        // SAFETY: a NULL status pointer is allowed.
        let n = unsafe { libc::waitpid(pid, core::ptr::null_mut(), libc::__WALL) };
        if n < 0 { Err(Errno::last()) } else { Ok(()) }
    });
}

/// Sends `sig` to `pid`; the result is ignored, as by every C caller.
pub fn kill(pid: c_int, sig: c_int) {
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pid, sig) };
}

/// Kills a traced child by every means: SIGKILL, `PTRACE_KILL`, and a
/// `PTRACE_CONT` in case it sits in a stop it cannot die from; then reaps it
/// if asked.
pub fn kill_traced(pid: c_int, reap_child: bool) {
    kill(pid, libc::SIGKILL);
    let _ = resume(libc::PTRACE_KILL as _, pid, 0);
    let _ = resume(libc::PTRACE_CONT as _, pid, 0);
    if reap_child {
        reap(pid);
    }
}

/// The stop signal of a raw wait status, if the child is stopped.
pub fn stop_signal(status: c_int) -> Option<c_int> {
    libc::WIFSTOPPED(status).then(|| libc::WSTOPSIG(status))
}

/// A child stopped under ptrace, for tests: it runs `body` after the stop
/// and `_exit`s with its return value.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub struct Tracee {
        pub pid: c_int,
        reaped: bool,
    }

    impl Tracee {
        /// Forks a child that asks to be traced, stops itself with SIGSTOP,
        /// then runs `body` and exits with its result.
        pub fn spawn(body: fn() -> c_int) -> Tracee {
            let _guard = crate::host::util::test_support::fork_lock();
            // SAFETY: the child only makes raw system calls before `_exit`.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                // SAFETY: plain system calls in the child, then _exit.
                unsafe {
                    libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
                    libc::kill(libc::getpid(), libc::SIGSTOP);
                    libc::_exit(body());
                }
            }
            let status = wait_stopped(pid).unwrap();
            assert_eq!(stop_signal(status), Some(libc::SIGSTOP));
            Tracee { pid, reaped: false }
        }

        /// Lets the child run to its exit and returns its exit code.
        pub fn finish(mut self) -> c_int {
            resume(libc::PTRACE_CONT as _, self.pid, 0).unwrap();
            loop {
                let status = wait_stopped(self.pid).unwrap();
                if libc::WIFEXITED(status) {
                    self.reaped = true;
                    return libc::WEXITSTATUS(status);
                }
                assert!(!libc::WIFSIGNALED(status), "child killed: {status:#x}");
                let sig = stop_signal(status).unwrap();
                resume(libc::PTRACE_CONT as _, self.pid, sig).unwrap();
            }
        }
    }

    impl Drop for Tracee {
        fn drop(&mut self) {
            if !self.reaped {
                kill_traced(self.pid, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::Tracee;
    use super::*;

    fn getpid_twice() -> c_int {
        // SAFETY: raw getpid calls.
        let (a, b) = unsafe {
            (
                libc::syscall(libc::SYS_getpid),
                libc::syscall(libc::SYS_getpid),
            )
        };
        if a == 4242 && b == 4243 { 0 } else { 1 }
    }

    #[test]
    fn sysemu_intercepts_and_emulates_syscalls() {
        let child = Tracee::spawn(getpid_twice);
        set_options(child.pid, libc::PTRACE_O_TRACESYSGOOD).unwrap();
        let mut regs: GpRegs = [0; MAX_REG_NR];
        for fake in [4242, 4243] {
            loop {
                resume(PTRACE_SYSEMU, child.pid, 0).unwrap();
                let status = wait_stopped(child.pid).unwrap();
                if stop_signal(status) == Some(libc::SIGTRAP | 0x80) {
                    get_regs(child.pid, &mut regs).unwrap();
                    if regs[reg::ORIG_AX] == libc::SYS_getpid as c_ulong {
                        break;
                    }
                    // Some other syscall (none expected): emulate as ENOSYS.
                    regs[reg::AX] = (-libc::ENOSYS) as c_ulong;
                    set_regs(child.pid, &regs).unwrap();
                }
            }
            // Emulated: the host never runs it, the child sees our value.
            regs[reg::AX] = fake;
            set_regs(child.pid, &regs).unwrap();
        }
        assert_eq!(child.finish(), 0);
    }

    #[test]
    fn fp_registers_round_trip() {
        let child = Tracee::spawn(|| 0);
        let mut fp: FpRegs = [0; FP_SIZE];
        get_fp_regs(child.pid, &mut fp).unwrap();
        // MXCSR (offset 24 of the FXSAVE area) has its reset value 0x1f80.
        assert_eq!(fp[3] & 0xffff_ffff, 0x1f80);
        set_fp_regs(child.pid, &fp).unwrap();
        let mut again: FpRegs = [0; FP_SIZE];
        get_fp_regs(child.pid, &mut again).unwrap();
        assert_eq!(fp[..64], again[..64]);
        assert_eq!(child.finish(), 0);
    }

    #[test]
    fn dead_tracee_gives_esrch() {
        let child = Tracee::spawn(|| 0);
        let pid = child.pid;
        drop(child);
        let mut regs: GpRegs = [0; MAX_REG_NR];
        assert_eq!(get_regs(pid, &mut regs), Err(Errno::ESRCH));
    }

    #[test]
    fn register_indices_match_user_regs_struct() {
        assert_eq!(MAX_REG_NR, 27);
        assert_eq!(reg::R15, 0);
        assert_eq!(reg::AX, 10);
        assert_eq!(reg::ORIG_AX, 15);
        assert_eq!(reg::IP, 16);
        assert_eq!(reg::SP, 19);
        assert_eq!(reg::GS, 26);
    }

    #[test]
    fn stop_signal_decodes_wait_status() {
        assert_eq!(stop_signal(0x137f), Some(libc::SIGSTOP));
        assert_eq!(stop_signal(0), None);
        assert_eq!(stop_signal(0x9), None);
    }
}
