// SPDX-License-Identifier: GPL-2.0
//! The raw costs under UML's trap path, measured on the host:
//!
//! * `sysemu`: one intercepted system call of a process looping on getppid:
//!   the `PTRACE_SYSEMU` stop and resume alone; plus the general registers
//!   read and written back (GETREGS/SETREGS); plus the XSTATE area read and
//!   written back, which is what the C layer does on every trap; and the
//!   Rust layer's trap, which writes back only what changed (here the
//!   result register).
//! * `fault`: a page fault captured through the stub's SIGSEGV handler,
//!   from the user's faulting write to the fault information in the data
//!   page, the C way (XSTATE saved before and restored after) and the Rust
//!   way (the state read at the stop written back once).
//! * `stub_batch`: N mmap (or munmap) requests run by the stub in one go.
//! * `soft_irq`: the soft interrupt flag behind `local_irq_save`/`restore`
//!   (`host::signals`), with the kernel's handlers replaced by no-ops:
//!   disable and enable with nothing pending (the common case, taken on
//!   every spin lock and every trap), save/restore through `um_set_signals`,
//!   and a SIGIO deferred while disabled then replayed on enable.

use core::ffi::{c_int, c_ulong};
use std::os::fd::AsRawFd;

use arch_um_rs::host::ptrace::{self, FP_SIZE, FpRegs, GpRegs, MAX_REG_NR, reg};
use arch_um_rs::host::skas::batch::Queue;
use arch_um_rs::host::skas::capture_fault;
use arch_um_rs::host::skas::regcache::RegsCache;
use arch_um_rs::host::skas::testbed::{self, FREE_OFFSET, UserProcess};
use arch_um_rs::stub::PAGE_SIZE;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// Resumes the looping process to its next system call entry.
fn next_syscall(pid: c_int) {
    ptrace::resume(ptrace::PTRACE_SYSEMU, pid, 0).unwrap();
    let status = ptrace::wait_stopped(pid).unwrap();
    assert_eq!(ptrace::stop_signal(status), Some(libc::SIGTRAP | 0x80));
}

fn sysemu(c: &mut Criterion) {
    let p = UserProcess::start();
    let mut regs = p.syscall_regs;
    regs[reg::IP] = testbed::syscall_loop_code() as c_ulong;
    ptrace::set_regs(p.pid, &regs).unwrap();
    next_syscall(p.pid);
    let mut gp: GpRegs = [0; MAX_REG_NR];
    let mut fp: Box<FpRegs> = Box::new([0; FP_SIZE]);
    ptrace::get_fp_regs(p.pid, &mut fp).unwrap();
    let mut g = c.benchmark_group("sysemu");
    g.bench_function("stop_resume", |b| b.iter(|| next_syscall(p.pid)));
    ptrace::get_regs(p.pid, &mut gp).unwrap();
    g.bench_function("plus_gp_regs", |b| {
        b.iter(|| {
            ptrace::set_regs(p.pid, &gp).unwrap();
            next_syscall(p.pid);
            ptrace::get_regs(p.pid, &mut gp).unwrap();
        })
    });
    g.bench_function("c_layer_trap", |b| {
        b.iter(|| {
            gp[reg::AX] = 1;
            ptrace::set_regs(p.pid, &gp).unwrap();
            ptrace::set_fp_regs(p.pid, &fp).unwrap();
            next_syscall(p.pid);
            ptrace::get_regs(p.pid, &mut gp).unwrap();
            ptrace::get_fp_regs(p.pid, &mut fp).unwrap();
        })
    });
    let mut cache = Box::new(RegsCache::new());
    g.bench_function("rust_layer_trap", |b| {
        b.iter(|| {
            gp[reg::AX] = 1;
            if cache.gp_differs(p.pid, &gp) {
                ptrace::set_regs(p.pid, &gp).unwrap();
                cache.holds_gp(p.pid, &gp);
            }
            if cache.fp_differs(p.pid, &fp) {
                ptrace::set_fp_regs(p.pid, &fp).unwrap();
                cache.holds_fp(p.pid, &fp);
            }
            next_syscall(p.pid);
            ptrace::get_regs(p.pid, &mut gp).unwrap();
            ptrace::get_fp_regs(p.pid, &mut fp).unwrap();
            cache.holds_gp(p.pid, &gp);
            cache.holds_fp(p.pid, &fp);
        })
    });
    g.finish();
}

fn fault(c: &mut Criterion) {
    let p = UserProcess::start();
    // An address in the reserved, inaccessible range: every write faults.
    let addr = p.target.addr() + 3 * PAGE_SIZE;
    let mut fp: Box<FpRegs> = Box::new([0; FP_SIZE]);
    ptrace::get_fp_regs(p.pid, &mut fp).unwrap();
    let mut aux: Box<FpRegs> = Box::new([0; FP_SIZE]);
    // One fault: run the faulting write, capture it. The C layer saves the
    // XSTATE area before the capture and restores it after; the Rust layer
    // writes back the state it read at the stop.
    let mut fault_once = |c_style: bool| {
        let status = p.run_at(
            testbed::write_fault_code(),
            addr,
            libc::PTRACE_CONT as c_int,
        );
        assert_eq!(ptrace::stop_signal(status), Some(libc::SIGSEGV));
        if c_style {
            ptrace::get_fp_regs(p.pid, &mut aux).unwrap();
        }
        // SAFETY: `p.data` is this process's view of the data area.
        let fi = unsafe { capture_fault(p.pid, p.data.cast()) }.unwrap();
        assert_eq!(fi.cr2, addr as c_ulong);
        ptrace::set_fp_regs(p.pid, if c_style { &aux } else { &fp }).unwrap();
    };
    let mut g = c.benchmark_group("fault");
    g.bench_function("c_layer_capture", |b| b.iter(|| fault_once(true)));
    g.bench_function("rust_layer_capture", |b| b.iter(|| fault_once(false)));
    g.finish();
}

fn stub_batch(c: &mut Criterion) {
    let p = UserProcess::start();
    let mut runner = p.runner();
    let mut mm = p.mm();
    // SAFETY: the only view of this process's data area here.
    let data = unsafe { p.data() };
    let t = p.target.addr() as c_ulong;
    let pg = PAGE_SIZE as c_ulong;
    let fd = p.mem.as_raw_fd();
    let mut g = c.benchmark_group("stub_batch");
    for n in [1u64, 8, 32, 99] {
        // Alternating protections, so that no two requests merge.
        let prot = |i: u64| {
            if i % 2 == 0 {
                libc::PROT_READ
            } else {
                libc::PROT_READ | libc::PROT_WRITE
            }
        };
        g.bench_with_input(BenchmarkId::new("mmap", n), &n, |b, &n| {
            b.iter(|| {
                let mut q = Queue {
                    mm: &mut mm,
                    data: &mut *data,
                    runner: &mut runner,
                };
                for i in 0..n {
                    q.map(t + (i % 60) * pg, pg, prot(i), fd, FREE_OFFSET);
                }
                assert_eq!(q.flush(), 0);
            })
        });
        g.bench_with_input(BenchmarkId::new("munmap", n), &n, |b, &n| {
            b.iter(|| {
                let mut q = Queue {
                    mm: &mut mm,
                    data: &mut *data,
                    runner: &mut runner,
                };
                // Every other page, so that no two requests merge.
                for i in 0..n {
                    q.unmap(t + ((2 * i) % 60) * pg, pg);
                }
                assert_eq!(q.flush(), 0);
            })
        });
    }
    g.finish();
}

struct NoHooks;

impl arch_um_rs::host::signals::IrqHooks for NoHooks {
    fn trace_off(&self) {}
    fn trace_on(&self) {}
    fn sigio(&self) {}
    fn alarm(&self) {}
}

fn soft_irq(c: &mut Criterion) {
    use arch_um_rs::host::signals::{SIGIO_MASK, SoftIrq};
    use core::sync::atomic::{AtomicI32, AtomicU32};
    static ENABLED: AtomicI32 = AtomicI32::new(1);
    static PENDING: AtomicU32 = AtomicU32::new(0);
    static ACTIVE: AtomicU32 = AtomicU32::new(0);
    let irq = SoftIrq::new(&ENABLED, &PENDING, &ACTIVE);
    let mut g = c.benchmark_group("soft_irq");
    g.bench_function("disable+enable", |b| {
        b.iter(|| {
            irq.block();
            irq.unblock(&NoHooks);
        })
    });
    g.bench_function("save+restore", |b| {
        b.iter(|| {
            let old = irq.set(0, &NoHooks);
            irq.set(std::hint::black_box(old), &NoHooks);
        })
    });
    g.bench_function("deferred sigio+replay", |b| {
        b.iter(|| {
            irq.block();
            irq.arrive(SIGIO_MASK);
            irq.unblock(&NoHooks);
        })
    });
    g.finish();
}

criterion_group!(benches, sysemu, fault, stub_batch, soft_irq);
criterion_main!(benches);
