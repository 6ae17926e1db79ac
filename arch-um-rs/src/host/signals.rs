// SPDX-License-Identifier: GPL-2.0
//! The soft interrupt state behind UML's `local_irq_save`/`restore`.
//!
//! UML never masks SIGIO and SIGALRM on the host while the kernel runs:
//! "disabling interrupts" only clears a flag. A host signal that arrives
//! while the flag is clear is recorded as pending and its handler returns at
//! once; re-enabling replays what is pending, SIGIO first. This module is
//! that state machine, free of kernel symbols so that `cargo test` can drive
//! it; the kernel's handlers are reached through [`IrqHooks`].
//!
//! Everything here runs in signal handlers or between them on the one host
//! thread of the kernel: the accesses are single-threaded but interruptible.
//! Atomics with `Relaxed` ordering plus compiler fences give exactly the
//! plain loads and stores the C layer uses (its `barrier()`), and make the
//! read-modify-writes done by a handler indivisible for the code it
//! interrupted.

use core::ffi::c_int;
use core::sync::atomic::{AtomicI32, AtomicU32, Ordering, compiler_fence};

/// Bit of a pending or running SIGIO in [`SoftIrq::pending`]/`active`.
pub const SIGIO_MASK: u32 = 1 << 0;
/// Bit of a pending or running SIGALRM.
pub const SIGALRM_MASK: u32 = 1 << 1;

/// What replaying pending interrupts calls: the kernel's handlers in the
/// kernel, recorders in tests.
pub trait IrqHooks {
    /// Tells the irq-flags tracer that interrupts are off (`um_trace_signals_off`).
    fn trace_off(&self);
    /// Tells the tracer that interrupts are back on (`um_trace_signals_on`).
    fn trace_on(&self);
    /// Runs the SIGIO handler for a SIGIO that arrived while disabled.
    fn sigio(&self);
    /// Runs the timer interrupt for a SIGALRM that arrived while disabled.
    fn alarm(&self);
}

/// The soft interrupt flag and what arrived while it was off.
///
/// `enabled` is a reference so that the kernel can keep the flag in the
/// exported C variable `signals_enabled`, which `UML_LONGJMP` reads.
pub struct SoftIrq<'a> {
    enabled: &'a AtomicI32,
    pending: &'a AtomicU32,
    active: &'a AtomicU32,
}

/// What an asynchronous signal handler should do with its signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Interrupts were off: recorded as pending, return at once.
    Deferred,
    /// Interrupts were on (the value to restore afterwards): run the handler.
    Run { was_enabled: bool },
}

impl<'a> SoftIrq<'a> {
    pub const fn new(
        enabled: &'a AtomicI32,
        pending: &'a AtomicU32,
        active: &'a AtomicU32,
    ) -> Self {
        Self {
            enabled,
            pending,
            active,
        }
    }

    /// Whether interrupts are on.
    #[inline(always)]
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed) != 0
    }

    /// The pending mask (for tests and diagnostics).
    pub fn pending(&self) -> u32 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Turns interrupts off. Nothing is masked on the host.
    #[inline(always)]
    pub fn block(&self) {
        self.enabled.store(0, Ordering::Relaxed);
        // The caller's critical section must not be moved above the store.
        compiler_fence(Ordering::SeqCst);
    }

    /// Turns interrupts on and runs every interrupt that arrived while they
    /// were off. The handlers expect interrupts off, so each round of replay
    /// turns them off (and tells the tracer), then on again.
    #[inline(always)]
    pub fn unblock(&self, hooks: &impl IrqHooks) {
        if self.enabled.load(Ordering::Relaxed) == 1 {
            return;
        }
        self.enabled.store(1, Ordering::Relaxed);
        // Setting the flag must happen before reading what is pending: a
        // signal arriving in between either saw the flag on and ran its
        // handler, or saw it off and is in `pending` now.
        compiler_fence(Ordering::SeqCst);
        // The common case, nothing pending: a plain load, no locked
        // instruction and no call.
        if self.pending.load(Ordering::Relaxed) != 0 {
            self.replay(hooks);
        }
    }

    /// The loop of [`Self::unblock`] once the flag is on, out of line so the
    /// common case (nothing pending) stays a few instructions.
    #[inline(never)]
    fn replay(&self, hooks: &impl IrqHooks) {
        loop {
            compiler_fence(Ordering::SeqCst);
            // Enabled here, so no handler adds to `pending` meanwhile; the
            // swap keeps the read and the clear one step all the same.
            let pending = self.pending.swap(0, Ordering::Relaxed);
            if pending == 0 {
                return;
            }
            self.enabled.store(0, Ordering::Relaxed);
            compiler_fence(Ordering::SeqCst);
            hooks.trace_off();

            // SIGIO first: the timer interrupt may schedule, which would
            // strand a pending SIGIO until we come back here.
            if pending & SIGIO_MASK != 0 {
                hooks.sigio();
            }
            // Never re-enter a timer handler that is already running (we
            // are then called from inside it).
            if pending & SIGALRM_MASK != 0
                && self.active.load(Ordering::Relaxed) & SIGALRM_MASK == 0
            {
                hooks.alarm();
            }
            // Inside the timer handler, leave with interrupts off unless a
            // SIGIO is still waiting; the handler's caller re-enables them.
            if self.pending.load(Ordering::Relaxed) & SIGIO_MASK == 0
                && self.active.load(Ordering::Relaxed) & SIGALRM_MASK != 0
            {
                return;
            }
            hooks.trace_on();
            self.enabled.store(1, Ordering::Relaxed);
        }
    }

    /// Sets the flag to `enable` and returns its previous value (the C
    /// `um_set_signals`); turning it on replays what is pending.
    #[inline(always)]
    pub fn set(&self, enable: c_int, hooks: &impl IrqHooks) -> c_int {
        let old = self.enabled.load(Ordering::Relaxed);
        if old == enable {
            return enable;
        }
        if enable != 0 {
            self.unblock(hooks);
        } else {
            self.block();
        }
        old
    }

    /// Called first by the handler of an asynchronous signal (`mask` is
    /// [`SIGIO_MASK`] or [`SIGALRM_MASK`]): records it as pending when
    /// interrupts are off.
    #[inline(always)]
    pub fn arrive(&self, mask: u32) -> Arrival {
        let was_enabled = self.enabled();
        if !was_enabled {
            self.pending.fetch_or(mask, Ordering::Relaxed);
            return Arrival::Deferred;
        }
        Arrival::Run { was_enabled }
    }

    /// Marks the timer handler as running (so a replay from inside it does
    /// not re-enter it) for the duration of `f`.
    #[inline(always)]
    pub fn in_timer<R>(&self, f: impl FnOnce() -> R) -> R {
        self.active.fetch_or(SIGALRM_MASK, Ordering::Relaxed);
        let r = f();
        self.active.fetch_and(!SIGALRM_MASK, Ordering::Relaxed);
        r
    }
}

/// The host signals UML treats as interrupts: blocked while any UML handler
/// runs, and restarted (`SA_RESTART`) when they interrupt a host call.
pub const IRQ_SIGNALS: [c_int; 3] = [libc::SIGIO, libc::SIGWINCH, libc::SIGALRM];

/// The `sigaction` flags UML installs its host handler with for `sig`:
/// siginfo, the signal stack, SIGSEGV re-entrant (a fault inside the fault
/// handler must be seen), interrupts restarting host calls.
pub fn handler_flags(sig: c_int) -> c_int {
    let mut flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    if sig == libc::SIGSEGV {
        flags |= libc::SA_NODEFER;
    }
    if IRQ_SIGNALS.contains(&sig) {
        flags |= libc::SA_RESTART;
    }
    flags
}

/// The pending-signal word of the host handler: one bit per signal number,
/// bit 0 meaning "nested" (see `to_irq_stack`). Yields signal numbers
/// lowest first, as `ffs` does.
pub fn pending_signals(mut pending: u64) -> impl Iterator<Item = c_int> {
    core::iter::from_fn(move || {
        if pending == 0 {
            return None;
        }
        let sig = pending.trailing_zeros();
        pending &= pending - 1;
        Some(sig as c_int)
    })
}

#[cfg(test)]
mod tests;
