// SPDX-License-Identifier: GPL-2.0
//! skas0 address spaces on the host: the safe core behind `abi::skas`.
//!
//! A user address space is a host process, cloned from the kernel process
//! and traced by it, with the [stub](crate::stub) code page and data pages
//! mapped at fixed addresses. The kernel changes the process's mappings by
//! queueing requests in the data page ([`batch`]) and running the stub's
//! syscall handler; it learns about page faults from the stub's SIGSEGV
//! handler ([`capture_fault`]); it intercepts system calls with
//! `PTRACE_SYSEMU`.
//!
//! Nothing here allocates or formats: these run on every fault and context
//! switch, on 16 KiB kernel stacks.

pub mod batch;
pub mod regcache;
#[cfg(not(feature = "kernel"))]
pub mod testbed;

use core::ffi::{c_int, c_ulong, c_void};

use nix::errno::Errno;

use crate::host::ptrace::{self, GpRegs};
use crate::stub::{FaultInfo, STUB_DATA_SIZE};
use syscalls::{Sysno, syscall};

/// Why waiting for the stub failed: the wait itself, a stop that is not
/// the stub's trap, or the restart after a harmless signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StubError {
    /// `waitpid` failed.
    Wait(Errno),
    /// The process exited, was killed, or stopped with this raw status
    /// instead of the stub's SIGTRAP.
    BadStatus(c_int),
    /// `PTRACE_CONT` after a SIGALRM/SIGWINCH stop failed.
    Continue(Errno),
    /// `PTRACE_SETREGS` of the stub's registers failed.
    SetRegs(Errno),
}

/// Signals the stub may receive while it runs; it is just continued.
/// SIGWINCH happens when UML runs inside a detached screen.
fn harmless_in_stub(sig: c_int) -> bool {
    sig == libc::SIGALRM || sig == libc::SIGWINCH
}

/// Waits until the stub in `pid` traps (SIGTRAP), continuing it over
/// harmless signals.
pub fn wait_stub_done(pid: c_int) -> Result<(), StubError> {
    loop {
        let status = ptrace::wait_stopped(pid).map_err(StubError::Wait)?;
        match ptrace::stop_signal(status) {
            Some(sig) if harmless_in_stub(sig) => {
                ptrace::resume(libc::PTRACE_CONT as _, pid, 0).map_err(StubError::Continue)?;
            }
            Some(libc::SIGTRAP) => return Ok(()),
            _ => return Err(StubError::BadStatus(status)),
        }
    }
}

/// Runs the stub's syscall handler in `pid`: loads `regs` (the handler's
/// entry and stack), continues, and waits for its trap.
pub fn run_syscall_stub(pid: c_int, regs: &GpRegs) -> Result<(), StubError> {
    ptrace::set_regs(pid, regs).map_err(StubError::SetRegs)?;
    ptrace::resume(libc::PTRACE_CONT as _, pid, 0).map_err(StubError::Continue)?;
    wait_stub_done(pid)
}

/// Lets the stub's SIGSEGV handler in `pid` (stopped with SIGSEGV) record
/// the fault, and returns what it recorded at the start of the data area
/// `stub_data` (the kernel's view of the process's `STUB_DATA`). The
/// handler runs user-mode code: callers that cache the process's registers
/// must forget them.
///
/// # Safety
///
/// `stub_data` is the kernel-side mapping of `pid`'s stub data area.
pub unsafe fn capture_fault(pid: c_int, stub_data: *const c_void) -> Result<FaultInfo, StubError> {
    ptrace::resume(libc::PTRACE_CONT as _, pid, libc::SIGSEGV).map_err(StubError::Continue)?;
    wait_stub_done(pid)?;
    // SAFETY: the data area is mapped and the handler wrote a FaultInfo at its start before trapping.
    Ok(unsafe { core::ptr::read_volatile(stub_data.cast::<FaultInfo>()) })
}

/// Where a new user process gets its stub pages.
#[derive(Clone, Copy, Debug)]
pub struct StubPages {
    /// Address of the code page in the user process (`STUB_CODE`).
    pub code_addr: c_ulong,
    /// The descriptor and offset of the page holding the stub code.
    pub code_fd: c_int,
    pub code_offset: u64,
    /// Address of the data area in the user process (`STUB_DATA`).
    pub data_addr: c_ulong,
    /// The descriptor and offset of this process's data area.
    pub data_fd: c_int,
    pub data_offset: u64,
    /// Offset of the SIGSEGV handler in the code page.
    pub segv_handler: c_ulong,
}

/// What failed while creating a user process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartError {
    pub what: &'static str,
    pub errno: Errno,
    /// The raw wait status, for "expected SIGSTOP".
    pub status: c_int,
}

/// Exit codes of the trampoline, so that the kernel can say which step
/// failed in the child (it cannot print: it has no console of its own).
#[derive(Clone, Copy)]
#[repr(u8)]
enum TrampFailure {
    MapCode = 10,
    MapData = 11,
    SigStack = 12,
    SigAction = 13,
}

fn tramp_fail(why: TrampFailure) -> ! {
    loop {
        // SAFETY: leaving the child at once; it shares nothing that needs cleaning up.
        let _ = unsafe { syscall!(Sysno::exit_group, why as c_int) };
    }
}

/// The first code of a new user process, on a temporary one-page stack in
/// a copy of the kernel process: it asks to be traced, maps the stub
/// pages, puts its SIGSEGV handler on the stub's signal stack and stops.
///
/// Raw system calls only, through inline `syscall` instructions: no
/// allocation, no TLS, little stack, and no call through the PLT. A libc
/// function that the kernel process itself has not called yet would be
/// resolved lazily by the dynamic linker in every new process, which
/// faults in eight pages of ld.so and libc per process (measured: that
/// alone made fork+exit+wait 2% slower than the C layer).
/// `sigaction` is the exception: the kernel process calls it at boot, so
/// its PLT slot is bound before the first user process exists, and libc
/// supplies the `sa_restorer` that x86_64 requires.
extern "C" fn userspace_tramp(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` points to the StubPages that the parent wrote into this stack page before clone.
    let p = unsafe { &*arg.cast::<StubPages>() };
    // SAFETY: plain system calls on this process only, with valid arguments.
    unsafe {
        let _ = syscall!(Sysno::prctl, libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        let _ = syscall!(Sysno::ptrace, libc::PTRACE_TRACEME, 0, 0, 0);
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGTERM, &sa, core::ptr::null_mut());
        sa.sa_sigaction = libc::SIG_IGN;
        libc::sigaction(libc::SIGWINCH, &sa, core::ptr::null_mut());
        let code = syscall!(
            Sysno::mmap,
            p.code_addr,
            crate::stub::PAGE_SIZE,
            libc::PROT_EXEC,
            libc::MAP_FIXED | libc::MAP_PRIVATE,
            p.code_fd,
            p.code_offset
        );
        if code.is_err() {
            tramp_fail(TrampFailure::MapCode);
        }
        let data = syscall!(
            Sysno::mmap,
            p.data_addr,
            STUB_DATA_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_FIXED | libc::MAP_SHARED,
            p.data_fd,
            p.data_offset
        );
        if data.is_err() {
            tramp_fail(TrampFailure::MapData);
        }
        let ss = libc::stack_t {
            ss_sp: p.data_addr as *mut c_void,
            ss_flags: 0,
            ss_size: STUB_DATA_SIZE,
        };
        if syscall!(Sysno::sigaltstack, &raw const ss, 0).is_err() {
            tramp_fail(TrampFailure::SigStack);
        }
        // The mask stays empty (zeroed).
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_flags = libc::SA_ONSTACK | libc::SA_NODEFER | libc::SA_SIGINFO;
        sa.sa_sigaction = (p.code_addr + p.segv_handler) as usize;
        if libc::sigaction(libc::SIGSEGV, &sa, core::ptr::null_mut()) < 0 {
            tramp_fail(TrampFailure::SigAction);
        }
        if let Ok(pid) = syscall!(Sysno::getpid) {
            let _ = syscall!(Sysno::kill, pid, libc::SIGSTOP);
        }
    }
    0
}

/// What a trampoline exit code means (see [`TrampFailure`]).
pub fn tramp_failure_name(code: c_int) -> Option<&'static str> {
    Some(match code {
        10 => "mapping the stub code page",
        11 => "mapping the stub data pages",
        12 => "setting the signal stack",
        13 => "setting the SIGSEGV handler",
        _ => return None,
    })
}

/// Creates a user process with the stub pages `pages`, stopped under
/// ptrace with `PTRACE_O_TRACESYSGOOD` set, and returns its pid. On failure
/// the child, if any, is killed and reaped.
pub fn start_userspace(pages: &StubPages) -> Result<c_int, StartError> {
    let fail = |what, errno, status| StartError {
        what,
        errno,
        status,
    };
    let page = crate::stub::PAGE_SIZE;
    // SAFETY: a fresh private anonymous page for the trampoline's stack, unmapped below.
    let stack = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            page,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(fail("mmap", Errno::last(), 0));
    }
    let unmap_stack = || {
        // SAFETY: `stack` is the page mapped above; the child has its own copy.
        if unsafe { libc::munmap(stack, page) } < 0 {
            Err(Errno::last())
        } else {
            Ok(())
        }
    };
    // The kernel's physical memory, which holds the caller's stack, is not
    // copied into the child (MADV_DONTFORK): the trampoline gets its
    // arguments at the bottom of its own stack page.
    let arg = stack.cast::<StubPages>();
    // SAFETY: the page is fresh, writable and larger than StubPages; its top is the child's stack.
    unsafe { arg.write(*pages) };
    // SAFETY: the child runs `userspace_tramp` on the top of its copy of `stack`, in its own address space (no CLONE_VM), sharing only the descriptor table.
    let pid = unsafe {
        libc::clone(
            userspace_tramp,
            stack.cast::<u8>().add(page).cast(),
            libc::CLONE_FILES | libc::SIGCHLD,
            arg.cast(),
        )
    };
    if pid < 0 {
        let e = Errno::last();
        let _ = unmap_stack();
        return Err(fail("clone", e, 0));
    }
    let result = (|| {
        let status = loop {
            let status = ptrace::wait_stopped(pid).map_err(|e| fail("wait", e, 0))?;
            if ptrace::stop_signal(status) != Some(libc::SIGALRM) {
                break status;
            }
        };
        if ptrace::stop_signal(status) != Some(libc::SIGSTOP) {
            return Err(fail("expected SIGSTOP", Errno::EINVAL, status));
        }
        ptrace::set_options(pid, libc::PTRACE_O_TRACESYSGOOD)
            .map_err(|e| fail("PTRACE_SETOPTIONS", e, 0))
    })();
    // The child has its own copy of the stack page by now (or is gone).
    let result = result.and_then(|()| unmap_stack().map_err(|e| fail("munmap", e, 0)));
    match result {
        Ok(()) => Ok(pid),
        Err(e) => {
            let _ = unmap_stack();
            ptrace::kill_traced(pid, true);
            Err(e)
        }
    }
}

// The tests make real user processes with the testbed, which kernel builds
// leave out.
#[cfg(all(test, not(feature = "kernel")))]
mod tests;
