// SPDX-License-Identifier: GPL-2.0
//! The soft interrupt state machine, driven by a recorder instead of the
//! kernel's handlers.

use core::cell::RefCell;

use super::*;

/// Records every hook call; `on_sigio`/`on_alarm` let a test act from inside
/// a replayed handler, as the kernel's handlers do (they may re-enable
/// interrupts, or receive another signal).
#[derive(Default)]
struct Recorder<'a> {
    log: RefCell<Vec<&'static str>>,
    on_sigio: Option<Box<dyn Fn() + 'a>>,
    on_alarm: Option<Box<dyn Fn() + 'a>>,
}

impl IrqHooks for Recorder<'_> {
    fn trace_off(&self) {
        self.log.borrow_mut().push("off");
    }
    fn trace_on(&self) {
        self.log.borrow_mut().push("on");
    }
    fn sigio(&self) {
        self.log.borrow_mut().push("sigio");
        if let Some(f) = &self.on_sigio {
            f();
        }
    }
    fn alarm(&self) {
        self.log.borrow_mut().push("alarm");
        if let Some(f) = &self.on_alarm {
            f();
        }
    }
}

struct State {
    enabled: AtomicI32,
    pending: AtomicU32,
    active: AtomicU32,
}

impl State {
    fn new(enabled: i32) -> Self {
        State {
            enabled: AtomicI32::new(enabled),
            pending: AtomicU32::new(0),
            active: AtomicU32::new(0),
        }
    }
    fn irq(&self) -> SoftIrq<'_> {
        SoftIrq::new(&self.enabled, &self.pending, &self.active)
    }
}

#[test]
fn block_and_unblock_without_pending_call_nothing() {
    let s = State::new(1);
    let rec = Recorder::default();
    s.irq().block();
    assert!(!s.irq().enabled());
    s.irq().unblock(&rec);
    assert!(s.irq().enabled());
    assert!(rec.log.borrow().is_empty());
}

#[test]
fn set_returns_previous_value_and_is_idempotent() {
    let s = State::new(1);
    let rec = Recorder::default();
    assert_eq!(s.irq().set(0, &rec), 1);
    assert_eq!(s.irq().set(0, &rec), 0);
    assert_eq!(s.irq().set(1, &rec), 0);
    assert_eq!(s.irq().set(1, &rec), 1);
    assert!(rec.log.borrow().is_empty());
}

#[test]
fn arrival_while_enabled_runs_and_while_disabled_defers() {
    let s = State::new(1);
    assert_eq!(
        s.irq().arrive(SIGIO_MASK),
        Arrival::Run { was_enabled: true }
    );
    assert_eq!(s.irq().pending(), 0);
    s.irq().block();
    assert_eq!(s.irq().arrive(SIGIO_MASK), Arrival::Deferred);
    assert_eq!(s.irq().arrive(SIGALRM_MASK), Arrival::Deferred);
    // A second SIGIO while off coalesces, as host signals do.
    assert_eq!(s.irq().arrive(SIGIO_MASK), Arrival::Deferred);
    assert_eq!(s.irq().pending(), SIGIO_MASK | SIGALRM_MASK);
}

#[test]
fn unblock_replays_sigio_before_alarm_with_interrupts_off() {
    let s = State::new(0);
    s.irq().arrive(SIGALRM_MASK);
    s.irq().arrive(SIGIO_MASK);
    let seen_enabled = RefCell::new(Vec::new());
    let rec = Recorder {
        on_sigio: Some(Box::new(|| {
            seen_enabled.borrow_mut().push(s.irq().enabled())
        })),
        on_alarm: Some(Box::new(|| {
            seen_enabled.borrow_mut().push(s.irq().enabled())
        })),
        ..Default::default()
    };
    s.irq().unblock(&rec);
    assert_eq!(*rec.log.borrow(), ["off", "sigio", "alarm", "on"]);
    assert_eq!(*seen_enabled.borrow(), [false, false]);
    assert!(s.irq().enabled());
    assert_eq!(s.irq().pending(), 0);
}

#[test]
fn a_signal_arriving_during_replay_is_replayed_in_the_next_round() {
    let s = State::new(0);
    s.irq().arrive(SIGIO_MASK);
    let rounds = RefCell::new(0);
    let rec = Recorder {
        // The first SIGIO handler is interrupted by another SIGIO: it sees
        // interrupts off, so it must be pending and replayed afterwards.
        on_sigio: Some(Box::new(|| {
            let mut r = rounds.borrow_mut();
            *r += 1;
            if *r == 1 {
                assert_eq!(s.irq().arrive(SIGIO_MASK), Arrival::Deferred);
            }
        })),
        ..Default::default()
    };
    s.irq().unblock(&rec);
    assert_eq!(
        *rec.log.borrow(),
        ["off", "sigio", "on", "off", "sigio", "on"]
    );
    assert_eq!(*rounds.borrow(), 2);
    assert!(s.irq().enabled());
}

#[test]
fn replay_inside_the_timer_handler_does_not_reenter_it() {
    // The timer handler runs with the alarm marked active and re-enables
    // interrupts itself (the kernel's timer code does local_irq_restore);
    // an alarm pending then must not run the handler again.
    let s = State::new(0);
    s.irq().arrive(SIGALRM_MASK);
    let rec = Recorder::default();
    s.irq().in_timer(|| s.irq().unblock(&rec));
    assert_eq!(*rec.log.borrow(), ["off"]);
    // It returns with interrupts off: the handler's caller restores them.
    assert!(!s.irq().enabled());
    assert_eq!(s.active.load(Ordering::Relaxed), 0);
}

#[test]
fn replay_inside_the_timer_handler_still_runs_sigio() {
    let s = State::new(0);
    s.irq().arrive(SIGIO_MASK);
    let rec = Recorder::default();
    s.irq().in_timer(|| s.irq().unblock(&rec));
    assert_eq!(*rec.log.borrow(), ["off", "sigio"]);
    assert!(!s.irq().enabled());
}

#[test]
fn handler_flags_match_the_c_layer() {
    let base = libc::SA_SIGINFO | libc::SA_ONSTACK;
    assert_eq!(handler_flags(libc::SIGSEGV), base | libc::SA_NODEFER);
    assert_eq!(handler_flags(libc::SIGIO), base | libc::SA_RESTART);
    assert_eq!(handler_flags(libc::SIGALRM), base | libc::SA_RESTART);
    assert_eq!(handler_flags(libc::SIGWINCH), base | libc::SA_RESTART);
    assert_eq!(handler_flags(libc::SIGBUS), base);
    assert_eq!(handler_flags(libc::SIGUSR1), base);
}

#[test]
fn pending_signals_come_lowest_first() {
    let word = (1u64 << libc::SIGALRM) | (1u64 << libc::SIGIO) | (1 << libc::SIGSEGV);
    let sigs: Vec<_> = pending_signals(word).collect();
    assert_eq!(sigs, [libc::SIGSEGV, libc::SIGALRM, libc::SIGIO]);
    assert_eq!(pending_signals(0).count(), 0);
    assert_eq!(pending_signals(1 << 63).collect::<Vec<_>>(), [63]);
}
