// SPDX-License-Identifier: GPL-2.0
//! The host checks UML makes before it boots (`os_early_checks` in
//! arch/um/os-Linux/start_up.c, with `check_tmpexec` from mem.c), as a safe
//! core that needs no kernel: `cargo test`, `uml-harness hostcheck` and the
//! kernel-side shim all call it.
//!
//! What the C layer checks, and so what is checked here:
//!
//! * the core dump limits (printed, never fatal: [`core_dump_limits`]);
//! * that a tracer can change the number of a system call at its entry
//!   stop (`check_ptrace`: [`check_ptrace_syscall_change`]);
//! * that `PTRACE_SYSEMU_SINGLESTEP` single-steps and emulates a system call
//!   whose result the tracer sets (`check_sysemu`: [`check_sysemu`]);
//! * that physical memory may be mapped `PROT_EXEC` where it is made
//!   (`check_tmpexec`: [`check_tmpexec`]);
//! * that the registers of a stopped child can be read
//!   (`init_pid_registers`: [`check_registers`]);
//! * `/proc/cpuinfo`, read for the CPU flags (`get_host_cpu_features`:
//!   [`host_cpu_features`], informational).
//!
//! Added for diagnosis, all informational except `/dev/shm` when the C layer
//! would put its memory there: `/dev/shm` itself ([`check_dev_shm`]), Yama's
//! `ptrace_scope` ([`yama_ptrace_scope`]) and the seccomp mode of this
//! process ([`seccomp_status`]), a filter being the usual reason ptrace fails
//! in a container.
//!
//! Every check starts from a child made by [`PtracedChild::start`], which
//! follows the C protocol of `ptrace_child`: it blocks SIGWINCH, asks to be
//! traced, stops itself with SIGSTOP, then makes exactly one `getpid` system
//! call and exits 0 if the answer is its parent's pid (the tracer changed
//! the call), 1 if it is its own pid (nothing changed), 2 otherwise. A step
//! failing before the stop is reported to the parent through a pipe, so the
//! error names it. See ptrace(2).

use core::ffi::{CStr, c_long, c_void};
use core::fmt;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::ptrace;
use nix::sys::signal::{self, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use crate::host::file::retry_eintr;
use crate::host::physmem::{self, PhysmemError, Place, Report};
use crate::host::ptrace as hptrace;
use crate::host::util::ErrnoMsg;

/// Exit status of the traced child when a step before its stop failed; the
/// step and the errno are in the report pipe.
const CHILD_STEP_FAILED: i32 = 3;

/// Stops [`check_ptrace_syscall_change`] waits through before giving up
/// (the child makes its `getpid` right after its stop: one or two suffice).
const MAX_SYSCALL_STOPS: u32 = 64;

/// Single steps [`check_sysemu`] makes before giving up (a few dozen
/// instructions lie between the stop and the `getpid`).
const MAX_SINGLE_STEPS: u32 = 100_000;

/// Byte offsets into `struct user` (PEEKUSER/POKEUSER): `PT_SYSCALL_NR_OFFSET`
/// and `PT_SYSCALL_RET_OFFSET` of the C layer.
const ORIG_RAX_OFFSET: usize = hptrace::reg::ORIG_AX * core::mem::size_of::<c_long>();
const RAX_OFFSET: usize = hptrace::reg::AX * core::mem::size_of::<c_long>();

/// `NT_X86_XSTATE`, the regset of the XSTATE area.
const NT_X86_XSTATE: usize = 0x202;

/// Yama's setting (see the kernel's Documentation/admin-guide/LSM/Yama.rst).
const YAMA_PTRACE_SCOPE: &str = "/proc/sys/kernel/yama/ptrace_scope";

/// `CAP_SYS_PTRACE` (capability bit in `CapEff`).
const CAP_SYS_PTRACE: u32 = 19;

/// A step of the traced child before it stops itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildStep {
    /// Blocking SIGWINCH (`change_sig(SIGWINCH, 0)` in the C layer).
    BlockSigwinch = 1,
    /// `ptrace(PTRACE_TRACEME)`.
    TraceMe = 2,
    /// `kill(getpid(), SIGSTOP)`.
    StopSelf = 3,
}

impl ChildStep {
    fn from_raw(raw: u32) -> Option<ChildStep> {
        [
            ChildStep::BlockSigwinch,
            ChildStep::TraceMe,
            ChildStep::StopSelf,
        ]
        .into_iter()
        .find(|s| *s as u32 == raw)
    }

    /// The call, as the error names it.
    pub fn name(self) -> &'static str {
        match self {
            ChildStep::BlockSigwinch => "sigprocmask(SIG_BLOCK, SIGWINCH)",
            ChildStep::TraceMe => "PTRACE_TRACEME",
            ChildStep::StopSelf => "kill(SIGSTOP)",
        }
    }
}

/// Why a check failed: the step, and the host's errno or what the child did.
#[derive(Debug, PartialEq, Eq)]
pub enum CheckError {
    /// A host call made by the checking process failed.
    Host { step: &'static str, errno: Errno },
    /// The traced child failed `step` before stopping itself.
    Child { step: ChildStep, errno: Errno },
    /// After `step`, the child reported `got` instead of `expected`.
    Wait {
        step: &'static str,
        expected: &'static str,
        got: WaitStatus,
    },
    /// The child, let run to its end, ended otherwise than with `expected`.
    ChildExit { expected: i32, got: WaitStatus },
    /// `step` was repeated `stops` times without reaching the child's
    /// `getpid` system call.
    NoSyscallStop { step: &'static str, stops: u32 },
    /// No memory file could be made.
    Physmem(PhysmemError),
    /// A memory file at `place` may not be mapped `PROT_EXEC`.
    NoExec { place: Place, errno: Errno },
    /// `what` did not have the expected contents.
    Malformed { what: &'static str },
}

/// The likely cause of `errno` from `step`, as a clause to append.
fn hint(step: &str, errno: Errno) -> &'static str {
    let ptrace = step.starts_with("PTRACE_");
    match errno {
        Errno::EPERM | Errno::EACCES if ptrace => {
            " — ptrace is forbidden here (seccomp filter, container policy or Yama ptrace_scope)"
        }
        Errno::ENOSYS if ptrace => {
            " — ptrace is not available here (seccomp filter, or a host kernel without it)"
        }
        Errno::EIO if step.starts_with("PTRACE_SYSEMU") => {
            " — the host kernel does not support PTRACE_SYSEMU_SINGLESTEP"
        }
        _ => "",
    }
}

/// An errno as "Operation not permitted (EPERM)": the C library's message,
/// as `perror` prints it, and the name.
struct ShowErrno(Errno);

impl fmt::Display for ShowErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", ErrnoMsg(self.0 as i32), self.0)
    }
}

/// A wait status, as "exited with status 1" or "was killed by SIGSYS".
struct ShowStatus(WaitStatus);

impl fmt::Display for ShowStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            WaitStatus::Exited(_, code) => {
                write!(f, "exited with status {code}")?;
                if let Some(why) = exit_meaning(code) {
                    write!(f, " ({why})")?;
                }
                Ok(())
            }
            WaitStatus::Signaled(_, Signal::SIGSYS, _) => {
                f.write_str("was killed by SIGSYS (a seccomp filter killed it)")
            }
            WaitStatus::Signaled(_, sig, _) => write!(f, "was killed by {sig}"),
            WaitStatus::Stopped(_, sig) => write!(f, "stopped with {sig}"),
            WaitStatus::PtraceSyscall(_) => f.write_str("stopped at a system call"),
            WaitStatus::PtraceEvent(_, sig, event) => {
                write!(f, "stopped with {sig} (ptrace event {event})")
            }
            WaitStatus::Continued(_) => f.write_str("continued"),
            WaitStatus::StillAlive => f.write_str("is still running"),
        }
    }
}

/// What an exit status of the traced child says.
fn exit_meaning(code: i32) -> Option<&'static str> {
    Some(match code {
        0 => "getpid answered with the parent's pid: the tracer changed the call",
        1 => "getpid answered with its own pid: the call ran unchanged",
        2 => "getpid answered with neither pid",
        CHILD_STEP_FAILED => "a step before its stop failed",
        _ => return None,
    })
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Host { step, errno } => {
                write!(
                    f,
                    "{step} failed: {}{}",
                    ShowErrno(*errno),
                    hint(step, *errno)
                )
            }
            CheckError::Child { step, errno } => write!(
                f,
                "{} failed in the child: {}{}",
                step.name(),
                ShowErrno(*errno),
                hint(step.name(), *errno)
            ),
            CheckError::Wait {
                step,
                expected,
                got,
            } => write!(
                f,
                "{step}: expected {expected}, but the child {}",
                ShowStatus(*got)
            ),
            CheckError::ChildExit { expected, got } => {
                write!(
                    f,
                    "the traced child {}, expected status {expected}",
                    ShowStatus(*got)
                )?;
                if let Some(why) = exit_meaning(*expected) {
                    write!(f, " ({why})")?;
                }
                Ok(())
            }
            CheckError::NoSyscallStop { step, stops } => write!(
                f,
                "{step}: no stop at the child's getpid system call after {stops} stops"
            ),
            CheckError::Physmem(e) => write!(f, "{e}"),
            CheckError::NoExec { place, errno } => {
                write!(f, "PROT_EXEC mmap in {place} failed: {}", ShowErrno(*errno))?;
                if *errno == Errno::EPERM {
                    write!(f, " — {place} must be not mounted noexec")?;
                }
                Ok(())
            }
            CheckError::Malformed { what } => write!(f, "{what}: unexpected contents"),
        }
    }
}

impl std::error::Error for CheckError {}

fn host(step: &'static str) -> impl FnOnce(Errno) -> CheckError {
    move |errno| CheckError::Host { step, errno }
}

/// A child stopped under our ptrace, as `start_ptraced_child` makes it.
/// Dropped without [`stop`](Self::stop), it is killed and reaped.
#[derive(Debug)]
pub struct PtracedChild {
    pid: Pid,
    reaped: bool,
}

impl PtracedChild {
    /// Forks the child and waits for its SIGSTOP. The child blocks SIGWINCH,
    /// calls `PTRACE_TRACEME`, stops itself, and, once resumed, makes one
    /// `getpid` and exits 0 (its parent's pid), 1 (its own) or 2 (neither).
    pub fn start() -> Result<PtracedChild, CheckError> {
        let (report_rd, report_wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(host("pipe2"))?;
        // SAFETY: the child runs only `ptraced_child`: raw system calls, no allocation, `_exit`.
        let pid = match unsafe { nix::unistd::fork() }.map_err(host("fork"))? {
            ForkResult::Child => ptraced_child(report_wr.as_fd()),
            ForkResult::Parent { child } => child,
        };
        drop(report_wr);
        let mut child = PtracedChild { pid, reaped: false };
        match child.wait()? {
            WaitStatus::Stopped(_, Signal::SIGSTOP) => Ok(child),
            got => {
                if let WaitStatus::Exited(_, CHILD_STEP_FAILED) = got {
                    if let Some((step, errno)) = read_report(&report_rd) {
                        return Err(CheckError::Child { step, errno });
                    }
                }
                Err(CheckError::Wait {
                    step: "starting the traced child",
                    expected: "a stop with SIGSTOP",
                    got,
                })
            }
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Lets the child run to its end (`PTRACE_CONT`) and checks that it
    /// exits with `expected` (`stop_ptraced_child`).
    pub fn stop(mut self, expected: i32) -> Result<(), CheckError> {
        ptrace::cont(self.pid, None).map_err(host("PTRACE_CONT"))?;
        match self.wait()? {
            WaitStatus::Exited(_, code) if code == expected => Ok(()),
            got => Err(CheckError::ChildExit { expected, got }),
        }
    }

    /// The child's next stop or end (`waitpid(WUNTRACED)`, EINTR retried).
    fn wait(&mut self) -> Result<WaitStatus, CheckError> {
        let st = retry_eintr(|| waitpid(self.pid, Some(WaitPidFlag::WUNTRACED)))
            .map_err(host("waitpid"))?;
        if matches!(st, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
            self.reaped = true;
        }
        Ok(st)
    }
}

impl Drop for PtracedChild {
    fn drop(&mut self) {
        if !self.reaped {
            hptrace::kill_traced(self.pid.as_raw(), true);
        }
    }
}

/// The step and errno a failed child wrote, if it wrote them.
fn read_report(fd: &OwnedFd) -> Option<(ChildStep, Errno)> {
    let mut buf = [0u8; 8];
    let n = retry_eintr(|| nix::unistd::read(fd.as_raw_fd(), &mut buf)).ok()?;
    if n != buf.len() {
        return None;
    }
    let [s0, s1, s2, s3, e0, e1, e2, e3] = buf;
    let step = ChildStep::from_raw(u32::from_ne_bytes([s0, s1, s2, s3]))?;
    Some((step, Errno::from_raw(i32::from_ne_bytes([e0, e1, e2, e3]))))
}

/// `getpid` as one `syscall` instruction: the call the tracer intercepts
/// must be exactly one, with nothing (no PLT, no vDSO) in between.
fn raw_getpid() -> c_long {
    let ret: c_long;
    // SAFETY: getpid(2) takes no arguments and touches no memory; `syscall` clobbers rcx and r11.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") libc::SYS_getpid => ret,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Reports the failed `step` to the parent and exits.
fn child_failed(report: BorrowedFd<'_>, step: ChildStep, errno: Errno) -> ! {
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&(step as u32).to_ne_bytes());
    buf[4..].copy_from_slice(&(errno as i32).to_ne_bytes());
    let _ = nix::unistd::write(report, &buf);
    // SAFETY: leaving the forked child without running destructors or atexit handlers.
    unsafe { libc::_exit(CHILD_STEP_FAILED) }
}

/// The body of the forked child (`ptrace_child` in start_up.c). Only
/// async-signal-safe system calls: it may be forked from a threaded process.
fn ptraced_child(report: BorrowedFd<'_>) -> ! {
    let pid = nix::unistd::getpid();
    let ppid = nix::unistd::getppid();
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    if let Err(e) = signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&winch), None) {
        child_failed(report, ChildStep::BlockSigwinch, e);
    }
    if let Err(e) = ptrace::traceme() {
        child_failed(report, ChildStep::TraceMe, e);
    }
    if let Err(e) = signal::kill(pid, Signal::SIGSTOP) {
        child_failed(report, ChildStep::StopSelf, e);
    }
    // The one system call the tracer intercepts.
    let got = raw_getpid();
    let code = if got == c_long::from(pid.as_raw()) {
        1
    } else if got == c_long::from(ppid.as_raw()) {
        0
    } else {
        2
    };
    // SAFETY: leaving the forked child without running destructors or atexit handlers.
    unsafe { libc::_exit(code) }
}

fn user_offset(offset: usize) -> ptrace::AddressType {
    offset as ptrace::AddressType
}

/// `check_ptrace`: at the entry stop of the child's `getpid`, the tracer
/// changes the system call number (`orig_rax`) to `getppid`; the child must
/// then see its parent's pid (exit 0).
pub fn check_ptrace_syscall_change() -> Result<(), CheckError> {
    let mut child = PtracedChild::start()?;
    let pid = child.pid();
    ptrace::setoptions(pid, ptrace::Options::PTRACE_O_TRACESYSGOOD)
        .map_err(host("PTRACE_SETOPTIONS"))?;
    for _ in 0..MAX_SYSCALL_STOPS {
        ptrace::syscall(pid, None).map_err(host("PTRACE_SYSCALL"))?;
        match child.wait()? {
            WaitStatus::PtraceSyscall(_) => {}
            got => {
                return Err(CheckError::Wait {
                    step: "PTRACE_SYSCALL",
                    expected: "a system call stop (SIGTRAP|0x80)",
                    got,
                });
            }
        }
        let nr = ptrace::read_user(pid, user_offset(ORIG_RAX_OFFSET))
            .map_err(host("PTRACE_PEEKUSER(orig_rax)"))?;
        if nr == libc::SYS_getpid {
            ptrace::write_user(pid, user_offset(ORIG_RAX_OFFSET), libc::SYS_getppid)
                .map_err(host("PTRACE_POKEUSER(orig_rax)"))?;
            return child.stop(0);
        }
    }
    Err(CheckError::NoSyscallStop {
        step: "PTRACE_SYSCALL",
        stops: MAX_SYSCALL_STOPS,
    })
}

/// `check_sysemu`: `PTRACE_SYSEMU_SINGLESTEP` single-steps the child up to
/// its `getpid`, which the host then does not run; the tracer sets the
/// result (`rax`) to its own pid, the child's parent, so the child exits 0.
/// Returns the number of single steps taken before the system call stop.
pub fn check_sysemu() -> Result<u32, CheckError> {
    let mut child = PtracedChild::start()?;
    let pid = child.pid();
    ptrace::setoptions(pid, ptrace::Options::PTRACE_O_TRACESYSGOOD)
        .map_err(host("PTRACE_SETOPTIONS"))?;
    for steps in 0..MAX_SINGLE_STEPS {
        ptrace::sysemu_step(pid, None).map_err(host("PTRACE_SYSEMU_SINGLESTEP"))?;
        match child.wait()? {
            WaitStatus::PtraceSyscall(_) => {
                let me = nix::unistd::getpid().as_raw();
                ptrace::write_user(pid, user_offset(RAX_OFFSET), c_long::from(me))
                    .map_err(host("PTRACE_POKEUSER(rax)"))?;
                return child.stop(0).map(|()| steps);
            }
            WaitStatus::Stopped(_, Signal::SIGTRAP) => {}
            got => {
                return Err(CheckError::Wait {
                    step: "PTRACE_SYSEMU_SINGLESTEP",
                    expected: "a single-step stop (SIGTRAP) or a system call stop (SIGTRAP|0x80)",
                    got,
                });
            }
        }
    }
    Err(CheckError::NoSyscallStop {
        step: "PTRACE_SYSEMU_SINGLESTEP",
        stops: MAX_SINGLE_STEPS,
    })
}

/// How the FP state of a traced child can be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FpAccess {
    /// `PTRACE_GETREGSET(NT_X86_XSTATE)`, of this many bytes.
    Xstate(usize),
    /// Only `PTRACE_GETFPREGS` (the FXSAVE area).
    Fxsave,
    /// Neither; the C layer goes on with zeroed FP registers.
    None(Errno),
}

impl fmt::Display for FpAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FpAccess::Xstate(n) => write!(f, "FP state by the XSTATE regset ({n} bytes)"),
            FpAccess::Fxsave => f.write_str("FP state by PTRACE_GETFPREGS (no XSTATE regset)"),
            FpAccess::None(e) => write!(f, "FP state unreadable: {}", ShowErrno(*e)),
        }
    }
}

/// The end of `os_early_checks`: `init_pid_registers` on a fresh child
/// (`PTRACE_GETREGS` must work; the XSTATE regset is probed as
/// `arch_init_registers` does), then the child runs its `getpid`
/// unchanged (exit 1).
pub fn check_registers() -> Result<FpAccess, CheckError> {
    let child = PtracedChild::start()?;
    let pid = child.pid().as_raw();
    let mut regs: hptrace::GpRegs = [0; hptrace::MAX_REG_NR];
    hptrace::get_regs(pid, &mut regs).map_err(host("PTRACE_GETREGS"))?;
    let mut fp: hptrace::FpRegs = [0; hptrace::FP_SIZE];
    let mut iov = libc::iovec {
        iov_base: fp.as_mut_ptr().cast(),
        iov_len: core::mem::size_of_val(&fp),
    };
    // SAFETY: `iov` describes `fp`, writable and FpRegs-sized.
    let xstate = unsafe {
        hptrace::raw(
            libc::PTRACE_GETREGSET as _,
            pid,
            NT_X86_XSTATE as *mut c_void,
            (&raw mut iov).cast(),
        )
    };
    let access = match xstate {
        Ok(_) => FpAccess::Xstate(iov.iov_len),
        Err(_) => {
            // SAFETY: `fp` is larger than struct user_fpregs_struct (512 bytes).
            let legacy = unsafe {
                hptrace::raw(
                    libc::PTRACE_GETFPREGS as _,
                    pid,
                    core::ptr::null_mut(),
                    fp.as_mut_ptr().cast(),
                )
            };
            match legacy {
                Ok(_) => FpAccess::Fxsave,
                Err(e) => FpAccess::None(e),
            }
        }
    };
    child.stop(1)?;
    Ok(access)
}

/// A core dump limit; `RLIM_INFINITY` shows as "NONE", as in the C lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreLimit(pub libc::rlim_t);

impl CoreLimit {
    pub fn is_unlimited(self) -> bool {
        self.0 == libc::RLIM_INFINITY
    }
}

impl fmt::Display for CoreLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unlimited() {
            f.write_str("NONE")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// `check_coredump_limit`: the soft and hard `RLIMIT_CORE`.
pub fn core_dump_limits() -> Result<(CoreLimit, CoreLimit), Errno> {
    let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE)?;
    Ok((CoreLimit(soft), CoreLimit(hard)))
}

/// Where physical memory goes, as [`check_tmpexec`] found it usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecLocation {
    pub place: Place,
    /// Why no memfd was used, when the place is a directory.
    pub memfd_refused: Option<Errno>,
    /// The warnings the C layer prints while picking the directory.
    pub warnings: Vec<String>,
}

impl fmt::Display for ExecLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::Memfd => f.write_str("memfd (/memfd:uml-physmem)")?,
            dir => write!(f, "{dir}")?,
        }
        if let Some(e) = self.memfd_refused {
            write!(f, " (no usable memfd: {})", ShowErrno(e))?;
        }
        for w in &self.warnings {
            write!(f, "; {w}")?;
        }
        Ok(())
    }
}

/// Collects the warnings of the directory search, drops the progress lines.
#[derive(Default)]
struct Warnings(Vec<String>);

impl Report for Warnings {
    fn info(&mut self, _: fmt::Arguments<'_>) {}
    fn warn(&mut self, args: fmt::Arguments<'_>) {
        self.0.push(args.to_string().trim().to_owned());
    }
}

fn env_var(name: &CStr) -> Option<Vec<u8>> {
    std::env::var_os(std::ffi::OsStr::from_bytes(name.to_bytes())).map(|v| v.into_vec())
}

/// The directory the C layer would put physical memory in (its search of
/// `$TMPDIR`, `$TMP`, `$TEMP`, `/dev/shm`, `/tmp`), and its warnings.
pub fn c_layer_dir() -> (CString, Vec<String>) {
    let mut warnings = Warnings::default();
    let dir = physmem::choose_dir(env_var, &mut warnings);
    (dir.as_cstr().into(), warnings.0)
}

/// Makes a one-page memory file at `place` and maps it `PROT_EXEC`.
fn exec_check_at(place: &Place) -> Result<(), CheckError> {
    let fd = physmem::create_at(place, physmem::page_size() as u64).map_err(CheckError::Physmem)?;
    physmem::exec_mappable(&fd).map_err(|errno| CheckError::NoExec {
        place: place.clone(),
        errno,
    })
}

/// `check_tmpexec`: physical memory can be made and mapped `PROT_EXEC`
/// where the Rust layer puts it: a memfd when the host gives one that may
/// be mapped `PROT_EXEC`, else the directory the C layer would pick.
pub fn check_tmpexec() -> Result<ExecLocation, CheckError> {
    let memfd = physmem::new_memfd().and_then(|fd| physmem::exec_mappable(&fd));
    let (place, memfd_refused, warnings) = match memfd {
        Ok(()) => (Place::Memfd, None, Vec::new()),
        Err(e) => {
            let (dir, warnings) = c_layer_dir();
            (Place::Dir(dir), Some(e), warnings)
        }
    };
    exec_check_at(&place)?;
    Ok(ExecLocation {
        place,
        memfd_refused,
        warnings,
    })
}

/// What [`check_dev_shm`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevShm {
    /// Whether `/dev/shm` is a tmpfs (the C layer only takes it if so).
    pub tmpfs: bool,
    /// Free bytes.
    pub free: u64,
}

impl fmt::Display for DevShm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, writable, PROT_EXEC mappable, {} MiB free",
            if self.tmpfs { "tmpfs" } else { "not tmpfs" },
            self.free >> 20
        )
    }
}

const DEV_SHM: &CStr = c"/dev/shm";

/// `/dev/shm` (the C layer's first choice when no variable names a
/// directory) is a directory in which a memory file can be made and mapped
/// `PROT_EXEC`.
pub fn check_dev_shm() -> Result<DevShm, CheckError> {
    let st = nix::sys::stat::stat(DEV_SHM).map_err(host("stat(/dev/shm)"))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(CheckError::Host {
            step: "stat(/dev/shm)",
            errno: Errno::ENOTDIR,
        });
    }
    let fs = nix::sys::statfs::statfs(DEV_SHM).map_err(host("statfs(/dev/shm)"))?;
    let place = Place::Dir(DEV_SHM.into());
    exec_check_at(&place)?;
    let free = physmem::free_space(DEV_SHM).map_err(host("statvfs(/dev/shm)"))?;
    Ok(DevShm {
        tmpfs: fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC,
        free,
    })
}

/// Yama's `ptrace_scope`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtraceScope {
    /// No `/proc/sys/kernel/yama/ptrace_scope`: Yama is not active.
    Absent,
    /// The value, with whether this process has `CAP_SYS_PTRACE` (mode 2
    /// lets only such a tracer use ptrace, `PTRACE_TRACEME` included).
    Scope { value: u32, cap_sys_ptrace: bool },
}

impl PtraceScope {
    /// Parses the file's contents.
    pub fn parse(text: &str, cap_sys_ptrace: bool) -> Option<PtraceScope> {
        let value = text.trim().parse().ok()?;
        Some(PtraceScope::Scope {
            value,
            cap_sys_ptrace,
        })
    }

    /// Whether UML's tracing of its own children is allowed.
    pub fn allows_uml(self) -> bool {
        match self {
            PtraceScope::Absent => true,
            PtraceScope::Scope {
                value,
                cap_sys_ptrace,
            } => value <= 1 || (value == 2 && cap_sys_ptrace),
        }
    }
}

impl fmt::Display for PtraceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PtraceScope::Absent => write!(f, "Yama is not active (no {YAMA_PTRACE_SCOPE})"),
            PtraceScope::Scope { value: 0, .. } => {
                f.write_str("0 (classic: a process may trace its children)")
            }
            PtraceScope::Scope { value: 1, .. } => f.write_str(
                "1 (restricted: only descendants may be traced; UML traces its own children)",
            ),
            PtraceScope::Scope {
                value: 2,
                cap_sys_ptrace,
            } => write!(
                f,
                "2 (admin-only: PTRACE_TRACEME needs CAP_SYS_PTRACE in the tracer, which this \
                 process {})",
                if cap_sys_ptrace { "has" } else { "lacks" }
            ),
            PtraceScope::Scope { value: 3, .. } => {
                f.write_str("3 (no attach: ptrace is disabled until reboot; UML cannot run)")
            }
            PtraceScope::Scope { value, .. } => write!(f, "{value} (unknown mode)"),
        }
    }
}

/// A `Key:\tvalue` field of `/proc/self/status`.
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

fn proc_self_status() -> Result<String, CheckError> {
    std::fs::read_to_string("/proc/self/status").map_err(|e| CheckError::Host {
        step: "reading /proc/self/status",
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })
}

fn has_cap_sys_ptrace(status: &str) -> bool {
    status_field(status, "CapEff")
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_PTRACE) != 0)
}

/// Yama's `ptrace_scope`, and whether this process could trace its
/// children under it.
pub fn yama_ptrace_scope() -> Result<PtraceScope, CheckError> {
    let text = match std::fs::read_to_string(YAMA_PTRACE_SCOPE) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PtraceScope::Absent),
        Err(e) => {
            return Err(CheckError::Host {
                step: "reading /proc/sys/kernel/yama/ptrace_scope",
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            });
        }
    };
    let cap = has_cap_sys_ptrace(&proc_self_status()?);
    PtraceScope::parse(&text, cap).ok_or(CheckError::Malformed {
        what: YAMA_PTRACE_SCOPE,
    })
}

/// The seccomp state of this process (proc(5), `/proc/self/status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeccompStatus {
    /// 0 disabled, 1 strict, 2 filter.
    pub mode: u32,
    /// Filters attached (`Seccomp_filters`, Linux 5.9 and later).
    pub filters: Option<u32>,
    pub no_new_privs: bool,
}

impl SeccompStatus {
    /// Parses the text of `/proc/self/status`.
    pub fn parse(status: &str) -> Option<SeccompStatus> {
        let num = |key| status_field(status, key).and_then(|v| v.parse::<u32>().ok());
        Some(SeccompStatus {
            mode: num("Seccomp")?,
            filters: num("Seccomp_filters"),
            no_new_privs: num("NoNewPrivs").is_some_and(|v| v != 0),
        })
    }
}

impl fmt::Display for SeccompStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            0 => f.write_str("disabled")?,
            1 => f.write_str("strict mode (only read, write, _exit and sigreturn)")?,
            2 => {
                f.write_str("filter mode")?;
                if let Some(n) = self.filters {
                    write!(f, ", {n} filter(s)")?;
                }
                f.write_str(" — a seccomp filter is the usual reason ptrace fails in a container")?;
            }
            m => write!(f, "mode {m}")?,
        }
        if self.no_new_privs {
            f.write_str("; no_new_privs set")?;
        }
        Ok(())
    }
}

/// The seccomp mode of this process (what its children inherit).
pub fn seccomp_status() -> Result<SeccompStatus, CheckError> {
    SeccompStatus::parse(&proc_self_status()?).ok_or(CheckError::Malformed {
        what: "/proc/self/status (Seccomp)",
    })
}

/// What `get_host_cpu_features` finds in `/proc/cpuinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuFeatures {
    /// The number of words on the first `flags` line.
    pub flags: usize,
    /// The first `cache_alignment` value.
    pub cache_alignment: Option<u32>,
}

impl CpuFeatures {
    /// Parses the text of `/proc/cpuinfo` as `get_host_cpu_features` reads it.
    pub fn parse(cpuinfo: &str) -> CpuFeatures {
        let value = |key: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        };
        CpuFeatures {
            flags: value("flags").map_or(0, |v| v.split_whitespace().count()),
            cache_alignment: value("cache_alignment").and_then(|v| v.parse().ok()),
        }
    }
}

impl fmt::Display for CpuFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} CPU flags", self.flags)?;
        match self.cache_alignment {
            Some(a) => write!(f, ", cache_alignment {a}"),
            None => f.write_str(", no cache_alignment line"),
        }
    }
}

/// `get_host_cpu_features`: the CPU flags and cache alignment in
/// `/proc/cpuinfo` (the C layer goes on without them).
pub fn host_cpu_features() -> Result<CpuFeatures, CheckError> {
    let text = std::fs::read_to_string("/proc/cpuinfo").map_err(|e| CheckError::Host {
        step: "reading /proc/cpuinfo",
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    Ok(CpuFeatures::parse(&text))
}

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Passed.
    Ok,
    /// Failed: UML cannot run here.
    Failed,
    /// Reported only (a fact about the host, or a failure UML survives).
    Info,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Status::Ok => "ok",
            Status::Failed => "FAILED",
            Status::Info => "info",
        })
    }
}

/// One row of [`run_all`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    pub name: &'static str,
    pub status: Status,
    /// What was found, or the reason of the failure (one line).
    pub detail: String,
}

/// The names of the rows of [`run_all`], in order.
pub mod names {
    pub const CORE_DUMP_LIMITS: &str = "core-dump-limits";
    pub const PTRACE_SYSCALL: &str = "ptrace-syscall";
    pub const PTRACE_SYSEMU: &str = "ptrace-sysemu";
    pub const TMPEXEC: &str = "tmpexec";
    pub const PTRACE_REGISTERS: &str = "ptrace-registers";
    pub const DEV_SHM: &str = "dev-shm";
    pub const YAMA_PTRACE_SCOPE: &str = "yama-ptrace-scope";
    pub const SECCOMP: &str = "seccomp";
    pub const HOST_CPU_FEATURES: &str = "host-cpu-features";
}

fn row(name: &'static str, status: Status, detail: impl fmt::Display) -> CheckResult {
    CheckResult {
        name,
        status,
        detail: detail.to_string().replace('\n', " "),
    }
}

/// `Ok` with `ok(value)` as detail, or `Failed` with the error.
fn pass_fail<T, D: fmt::Display>(
    name: &'static str,
    r: Result<T, CheckError>,
    ok: impl FnOnce(T) -> D,
) -> CheckResult {
    match r {
        Ok(v) => row(name, Status::Ok, ok(v)),
        Err(e) => row(name, Status::Failed, e),
    }
}

/// `Info` either way.
fn info<T: fmt::Display, E: fmt::Display>(name: &'static str, r: Result<T, E>) -> CheckResult {
    match r {
        Ok(v) => row(name, Status::Info, v),
        Err(e) => row(name, Status::Info, e),
    }
}

/// Every check, in the order of `os_early_checks`, then the diagnostic
/// ones. UML can run here if no row has [`Status::Failed`]
/// (see [`can_run`]).
pub fn run_all() -> Vec<CheckResult> {
    let core = match core_dump_limits() {
        Ok((soft, hard)) => row(
            names::CORE_DUMP_LIMITS,
            Status::Info,
            format_args!("soft - {soft}, hard - {hard}"),
        ),
        Err(e) => row(
            names::CORE_DUMP_LIMITS,
            Status::Info,
            format_args!("Getting core dump limit: {}", ShowErrno(e)),
        ),
    };
    let ptrace = pass_fail(
        names::PTRACE_SYSCALL,
        check_ptrace_syscall_change(),
        |()| "ptrace can change system call numbers (getpid became getppid)",
    );
    let sysemu = pass_fail(names::PTRACE_SYSEMU, check_sysemu(), |steps| {
        format!("PTRACE_SYSEMU_SINGLESTEP single-stepped ({steps} steps) to getpid and emulated it")
    });
    let tmpexec = pass_fail(names::TMPEXEC, check_tmpexec(), |loc| {
        format!("physical memory in {loc} can be mapped PROT_EXEC")
    });
    let registers = pass_fail(names::PTRACE_REGISTERS, check_registers(), |fp| {
        format!("PTRACE_GETREGS works; {fp}")
    });
    let shm = match check_dev_shm() {
        Ok(s) => row(names::DEV_SHM, Status::Ok, format_args!("/dev/shm: {s}")),
        Err(e) => {
            // Fatal only where the C layer would put its memory there.
            let (dir, _) = c_layer_dir();
            if dir.as_c_str() == DEV_SHM {
                row(
                    names::DEV_SHM,
                    Status::Failed,
                    format_args!("{e} — the C layer puts physical memory in /dev/shm here"),
                )
            } else {
                row(
                    names::DEV_SHM,
                    Status::Info,
                    format_args!(
                        "{e} (not used here: the C layer picks {})",
                        dir.to_string_lossy()
                    ),
                )
            }
        }
    };
    vec![
        core,
        ptrace,
        sysemu,
        tmpexec,
        registers,
        shm,
        info(names::YAMA_PTRACE_SCOPE, yama_ptrace_scope()),
        info(names::SECCOMP, seccomp_status()),
        info(names::HOST_CPU_FEATURES, host_cpu_features()),
    ]
}

/// Whether UML can run, given the rows of [`run_all`].
pub fn can_run(results: &[CheckResult]) -> bool {
    results.iter().all(|r| r.status != Status::Failed)
}

#[cfg(test)]
mod tests;
