// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/signal.c: UML's host signal handlers and
//! the soft interrupt flag behind `local_irq_save`/`restore`.
//!
//! Every host signal UML handles enters [`hard_handler`] on the signal stack.
//! It moves the kernel onto that stack (`to_irq_stack`), dispatches every
//! signal that arrived meanwhile, and moves back. SIGIO and SIGALRM are
//! interrupts: when the kernel has them "disabled" they are only recorded,
//! and [`unblock_signals`] replays them (see [`crate::host::signals`]).
//!
//! All of this is async-signal-safe: no allocation, no lock, no formatting,
//! and the only large frame (a `struct uml_pt_regs` for the kernel's
//! handler) is built in one out-of-line function, as in the C.
//!
//! Time-travel mode (`CONFIG_UML_TIME_TRAVEL_SUPPORT`) is not supported by
//! the Rust layer; the Kconfig option excludes it.

use core::ffi::c_int;

/// Host `NSIG` (glibc): the size of the kernel's `sig_info` table.
pub const NSIG: usize = 65;

/// Turns host signal `signal` off (`on == 0`) or on in the thread's mask:
/// 0 or -errno.
#[cfg_attr(feature = "os-signal", unsafe(no_mangle))]
pub extern "C" fn change_sig(signal: c_int, on: c_int) -> c_int {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
    let Ok(sig) = Signal::try_from(signal) else {
        return -libc::EINVAL;
    };
    let how = if on != 0 {
        SigmaskHow::SIG_UNBLOCK
    } else {
        SigmaskHow::SIG_BLOCK
    };
    let mut set = SigSet::empty();
    set.add(sig);
    match sigprocmask(how, Some(&set), None) {
        Ok(()) => 0,
        Err(e) => -(e as c_int),
    }
}

/// Whether the calling thread runs on its signal stack (`SS_ONSTACK`).
#[cfg_attr(feature = "os-signal", unsafe(no_mangle))]
pub extern "C" fn os_is_signal_stack() -> c_int {
    let mut ss = core::mem::MaybeUninit::<libc::stack_t>::zeroed();
    // SAFETY: a NULL new stack only queries; `ss` is writable.
    let rc = unsafe { libc::sigaltstack(core::ptr::null(), ss.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    // SAFETY: sigaltstack succeeded and filled `ss`.
    unsafe { ss.assume_init() }.ss_flags & libc::SS_ONSTACK
}

/// Sends SIGIO to the UML process itself (to make the IRQ code look at its
/// descriptors again).
#[cfg_attr(feature = "os-signal", unsafe(no_mangle))]
pub extern "C" fn send_sigio_to_self() {
    // SAFETY: kill(2) of our own pid with a signal we handle.
    unsafe { libc::kill(crate::abi::process::os_getpid(), libc::SIGIO) };
}

#[cfg(feature = "kernel")]
pub use kernel_side::*;

#[cfg(feature = "kernel")]
mod kernel_side {
    use core::ffi::c_ulong;
    use core::sync::atomic::{AtomicI32, AtomicU32};

    use core::ffi::c_void;

    use super::*;
    use crate::abi::layout::UmlPtRegs;
    use crate::host::signals::{self, Arrival, IrqHooks, SIGALRM_MASK, SIGIO_MASK, SoftIrq};

    type KernelSigHandler = unsafe extern "C" fn(c_int, *mut libc::siginfo_t, *mut UmlPtRegs);

    mod k {
        //! The kernel functions the handlers call.
        use super::*;
        pub use crate::kernel::um::{
            block_signals_trace, um_trace_signals_off, um_trace_signals_on, unblock_signals_trace,
        };

        unsafe extern "C" {
            pub fn to_irq_stack(mask_out: *mut c_ulong) -> c_ulong;
            pub fn from_irq_stack(nested: c_int) -> c_ulong;
            pub fn get_regs_from_mc(regs: *mut UmlPtRegs, mc: *mut libc::mcontext_t);
            pub fn timer_handler(sig: c_int, si: *mut libc::siginfo_t, regs: *mut UmlPtRegs);
            pub fn uml_pm_wake();
            pub fn relay_signal(sig: c_int, si: *mut libc::siginfo_t, regs: *mut UmlPtRegs);
            pub fn winch(sig: c_int, si: *mut libc::siginfo_t, regs: *mut UmlPtRegs);
            pub fn bus_handler(sig: c_int, si: *mut libc::siginfo_t, regs: *mut UmlPtRegs);
            pub fn segv_handler(sig: c_int, si: *mut libc::siginfo_t, regs: *mut UmlPtRegs);
            pub fn sigio_handler(sig: c_int, si: *mut libc::siginfo_t, regs: *mut UmlPtRegs);
        }
    }

    /// The kernel's handler for each host signal, indexed by signal number
    /// (`sig_info`, read by the trap loop for signals of user processes).
    #[cfg_attr(feature = "os-signal", unsafe(no_mangle))]
    #[allow(non_upper_case_globals)]
    pub static sig_info: [Option<KernelSigHandler>; NSIG] = {
        let mut t: [Option<KernelSigHandler>; NSIG] = [None; NSIG];
        t[libc::SIGTRAP as usize] = Some(k::relay_signal);
        t[libc::SIGFPE as usize] = Some(k::relay_signal);
        t[libc::SIGILL as usize] = Some(k::relay_signal);
        t[libc::SIGWINCH as usize] = Some(k::winch);
        t[libc::SIGBUS as usize] = Some(k::bus_handler);
        t[libc::SIGSEGV as usize] = Some(k::segv_handler);
        t[libc::SIGIO as usize] = Some(k::sigio_handler);
        t
    };

    /// The soft interrupt flag: 1 when the kernel has interrupts on. An
    /// `int` for C (`UML_LONGJMP` reads it to restore the flag).
    #[cfg_attr(feature = "os-signal", unsafe(no_mangle))]
    #[allow(non_upper_case_globals)]
    pub static signals_enabled: AtomicI32 = AtomicI32::new(0);
    static SIGNALS_PENDING: AtomicU32 = AtomicU32::new(0);
    static SIGNALS_ACTIVE: AtomicU32 = AtomicU32::new(0);

    /// One static instance, so that its address is a link-time constant
    /// and the hot paths never build it on the stack.
    static IRQ: SoftIrq<'static> =
        SoftIrq::new(&signals_enabled, &SIGNALS_PENDING, &SIGNALS_ACTIVE);

    #[inline(always)]
    fn irq() -> &'static SoftIrq<'static> {
        &IRQ
    }

    /// Replay calls the kernel's handlers and irq-flags tracer.
    struct KernelHooks;

    impl IrqHooks for KernelHooks {
        fn trace_off(&self) {
            // SAFETY: a kernel tracing hook without arguments.
            unsafe { k::um_trace_signals_off() };
        }
        fn trace_on(&self) {
            // SAFETY: a kernel tracing hook without arguments.
            unsafe { k::um_trace_signals_on() };
        }
        fn sigio(&self) {
            // SIGIO's kernel handler uses neither siginfo nor the context.
            sig_handler_common(libc::SIGIO, core::ptr::null_mut(), core::ptr::null_mut());
        }
        fn alarm(&self) {
            timer_real_alarm_handler(core::ptr::null_mut());
        }
    }

    fn errno_location() -> *mut c_int {
        // SAFETY: glibc's errno location for the calling thread; always valid.
        unsafe { libc::__errno_location() }
    }

    /// Runs the kernel's handler for `sig` with a `struct uml_pt_regs` on
    /// the stack: the registers and fault of the host context for SIGSEGV,
    /// otherwise only `is_user = 0` (the kernel reads nothing else). Out of
    /// line so its 2.8 KiB frame exists only while a handler runs.
    #[inline(never)]
    fn sig_handler_common(sig: c_int, si: *mut libc::siginfo_t, mc: *mut libc::mcontext_t) {
        let errno = errno_location();
        // SAFETY: errno_location() is this thread's errno.
        let saved_errno = unsafe { *errno };
        let mut regs = core::mem::MaybeUninit::<UmlPtRegs>::uninit();
        let r = regs.as_mut_ptr();
        // SAFETY: `r` points to our stack slot; fields are written through raw pointers only.
        unsafe { (&raw mut (*r).is_user).write(0) };
        if sig == libc::SIGSEGV && !mc.is_null() {
            // SAFETY: `mc` is the context the host gave the handler; `r` is writable.
            unsafe { k::get_regs_from_mc(r, mc) };
            // SAFETY: as above; the fault registers are plain words of the context.
            unsafe {
                let gregs = &(*mc).gregs;
                (&raw mut (*r).faultinfo).write(crate::stub::FaultInfo {
                    cr2: gregs[libc::REG_CR2 as usize] as _,
                    error_code: gregs[libc::REG_ERR as usize] as _,
                    trap_no: gregs[libc::REG_TRAPNO as usize] as _,
                });
            }
        }
        // Faults and traps may happen with interrupts on; only the
        // interrupt signals keep them off in their handler.
        if sig != libc::SIGIO && sig != libc::SIGWINCH {
            // SAFETY: kernel function without arguments.
            unsafe { k::unblock_signals_trace() };
        }
        if let Some(handler) = sig_info.get(sig as usize).copied().flatten() {
            // SAFETY: the kernel's handler for `sig`, with the arguments its C caller passes.
            unsafe { handler(sig, si, r) };
        }
        // SAFETY: as above.
        unsafe { *errno = saved_errno };
    }

    /// Handler of the synchronous signals, SIGIO and SIGWINCH.
    fn sig_handler(sig: c_int, si: *mut libc::siginfo_t, mc: *mut libc::mcontext_t) {
        let was_enabled = if sig == libc::SIGIO {
            match irq().arrive(SIGIO_MASK) {
                Arrival::Deferred => return,
                Arrival::Run { was_enabled } => was_enabled,
            }
        } else {
            irq().enabled()
        };
        // SAFETY: kernel function without arguments.
        unsafe { k::block_signals_trace() };
        sig_handler_common(sig, si, mc);
        um_set_signals_trace(was_enabled as c_int);
    }

    /// Runs the kernel's timer interrupt with the registers of `mc` (zeroes
    /// when replayed, as there is no context then). Out of line for its frame.
    #[inline(never)]
    fn timer_real_alarm_handler(mc: *mut libc::mcontext_t) {
        let mut regs = core::mem::MaybeUninit::<UmlPtRegs>::zeroed();
        if !mc.is_null() {
            // SAFETY: `mc` is the host context of this signal; `regs` is writable.
            unsafe { k::get_regs_from_mc(regs.as_mut_ptr(), mc) };
        }
        // SAFETY: the kernel's timer handler takes a NULL siginfo and our regs.
        unsafe { k::timer_handler(libc::SIGALRM, core::ptr::null_mut(), regs.as_mut_ptr()) };
    }

    fn timer_alarm_handler(mc: *mut libc::mcontext_t) {
        let Arrival::Run { was_enabled } = irq().arrive(SIGALRM_MASK) else {
            return;
        };
        // SAFETY: kernel function without arguments.
        unsafe { k::block_signals_trace() };
        irq().in_timer(|| timer_real_alarm_handler(mc));
        um_set_signals_trace(was_enabled as c_int);
    }

    /// Delivers a timer interrupt as if SIGALRM had arrived (used by the
    /// kernel's timer code when it runs the interrupt itself).
    #[cfg_attr(feature = "os-signal", unsafe(no_mangle))]
    pub extern "C" fn deliver_alarm() {
        timer_alarm_handler(core::ptr::null_mut());
    }

    /// The one host handler of every signal UML takes (see the module docs).
    extern "C" fn hard_handler(sig: c_int, si: *mut libc::siginfo_t, uc: *mut c_void) {
        // SAFETY: SA_SIGINFO handlers get a ucontext_t as third argument.
        let mc = unsafe { &raw mut (*uc.cast::<libc::ucontext_t>()).uc_mcontext };
        let errno = errno_location();
        // SAFETY: this thread's errno.
        let saved_errno = unsafe { *errno };
        let mut pending: c_ulong = 1 << sig;
        loop {
            // Non-zero: we interrupted another handler setting up the stack;
            // our bit is now in its mask and it will run our signal.
            // SAFETY: the kernel's stack switch; `pending` is a writable word.
            if unsafe { k::to_irq_stack(&mut pending) } != 0 {
                break;
            }
            let nested = pending & 1;
            for s in signals::pending_signals(pending & !1) {
                match s {
                    libc::SIGALRM => timer_alarm_handler(mc),
                    // SAFETY: a kernel function without arguments.
                    libc::SIGUSR1 => unsafe { k::uml_pm_wake() },
                    libc::SIGSEGV
                    | libc::SIGBUS
                    | libc::SIGILL
                    | libc::SIGFPE
                    | libc::SIGTRAP
                    | libc::SIGIO
                    | libc::SIGWINCH => sig_handler(s, si, mc),
                    // No handler is installed for any other signal.
                    _ => {}
                }
            }
            // The outer handler leaves the stack; whatever arrived while it
            // did comes back and is handled in another round.
            if nested != 0 {
                break;
            }
            // SAFETY: the kernel's stack switch back; we are the outer handler.
            pending = unsafe { k::from_irq_stack(0) };
            if pending == 0 {
                break;
            }
        }
        // SAFETY: as above.
        unsafe { *errno = saved_errno };
    }

    #[cold]
    /// Panics the kernel with the C layer's message: `what` then the errno.
    fn fatal_errno(what: &str, errno: c_int) -> ! {
        crate::kernel::fatal(crate::kernel::stack_format(format_args!("{what}{errno}")).as_str())
    }

    /// Installs [`hard_handler`] for `sig` and unblocks it; panics the
    /// kernel if the host refuses.
    #[cfg_attr(feature = "os-signal", unsafe(no_mangle))]
    pub extern "C" fn set_handler(sig: c_int) {
        // SAFETY: an all-zero sigaction is a valid value to fill in.
        let mut action: libc::sigaction = unsafe { core::mem::zeroed() };
        let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) = hard_handler;
        action.sa_sigaction = handler as usize;
        action.sa_flags = signals::handler_flags(sig);
        // SAFETY: `action.sa_mask` is a valid sigset_t; the adds cannot fail for valid signals.
        unsafe {
            libc::sigemptyset(&mut action.sa_mask);
            for s in signals::IRQ_SIGNALS {
                libc::sigaddset(&mut action.sa_mask, s);
            }
        }
        // SAFETY: installs our handler, which is async-signal-safe.
        if unsafe { libc::sigaction(sig, &action, core::ptr::null_mut()) } < 0 {
            fatal_errno("sigaction failed - errno = ", last_errno());
        }
        let rc = change_sig(sig, 1);
        if rc < 0 {
            fatal_errno("sigprocmask failed - errno = ", -rc);
        }
    }

    fn last_errno() -> c_int {
        // SAFETY: this thread's errno.
        unsafe { *errno_location() }
    }

    /// Installs the SIGALRM (timer) handler.
    #[cfg_attr(feature = "os-signal", unsafe(no_mangle))]
    pub extern "C" fn timer_set_signal_handler() {
        set_handler(libc::SIGALRM);
    }

    /// Installs the SIGUSR1 handler that wakes the kernel from suspend.
    #[cfg_attr(feature = "os-signal", unsafe(no_mangle))]
    pub extern "C" fn register_pm_wake_signal() {
        set_handler(libc::SIGUSR1);
    }

    /// Makes `sig_stack` (`size` bytes) the signal stack of the calling
    /// thread; panics the kernel if the host refuses.
    #[cfg_attr(feature = "os-signal", unsafe(no_mangle))]
    pub extern "C" fn set_sigstack(sig_stack: *mut c_void, size: c_int) {
        let stack = libc::stack_t {
            ss_sp: sig_stack,
            ss_flags: 0,
            ss_size: size as usize,
        };
        // SAFETY: the kernel hands a stack it owns for the life of the thread.
        if unsafe { libc::sigaltstack(&stack, core::ptr::null_mut()) } != 0 {
            fatal_errno("enabling signal stack failed, errno = ", last_errno());
        }
    }

    /// Interrupts off (`local_irq_disable`).
    #[cfg_attr(feature = "os-signal", unsafe(no_mangle))]
    pub extern "C" fn block_signals() {
        irq().block();
    }

    /// Interrupts on, running whatever arrived while they were off.
    #[cfg_attr(feature = "os-signal", unsafe(no_mangle))]
    pub extern "C" fn unblock_signals() {
        irq().unblock(&KernelHooks);
    }

    /// Sets the interrupt flag, returning its old value (`local_irq_save`/
    /// `restore`).
    #[cfg_attr(feature = "os-signal", unsafe(no_mangle))]
    pub extern "C" fn um_set_signals(enable: c_int) -> c_int {
        irq().set(enable, &KernelHooks)
    }

    /// [`um_set_signals`] through the kernel's tracing wrappers.
    #[cfg_attr(feature = "os-signal", unsafe(no_mangle))]
    pub extern "C" fn um_set_signals_trace(enable: c_int) -> c_int {
        let old = signals_enabled.load(core::sync::atomic::Ordering::Relaxed);
        if old == enable {
            return enable;
        }
        // SAFETY: kernel functions without arguments.
        unsafe {
            if enable != 0 {
                k::unblock_signals_trace();
            } else {
                k::block_signals_trace();
            }
        }
        old
    }
}
