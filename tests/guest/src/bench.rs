// SPDX-License-Identifier: GPL-2.0
//! Microbenchmarks. Each run prints one line:
//!
//! `BENCH op=<op> iters=<n> ns_per_op=<float> total_ns=<n>`
//!
//! Times come from `CLOCK_MONOTONIC` (the guest's clock inside UML). Each run
//! is preceded by an untimed warm-up of a tenth of its iterations.

use std::io;
use std::os::fd::AsRawFd;

use crate::sys::{self, Exec, Exit};

/// One benchmark: its name, what one operation is, its default iteration
/// count (sized for about one second inside UML on the reference machine of
/// DESIGN.md section 3; `bench all` then takes 5 to 7 s in UML),
/// and the function that runs `iters` operations and returns the elapsed
/// nanoseconds and the number of operations measured.
pub struct Op {
    pub name: &'static str,
    pub unit: &'static str,
    pub default_iters: u64,
    run: fn(u64) -> io::Result<(u64, u64)>,
}

pub const OPS: &[Op] = &[
    Op {
        name: "getppid",
        unit: "getppid() system call",
        default_iters: 80_000,
        run: getppid,
    },
    Op {
        name: "pipe_pingpong",
        unit: "switch between two processes bouncing a byte over pipes",
        default_iters: 15_000,
        run: pipe_pingpong,
    },
    Op {
        name: "fork_exit_wait",
        unit: "fork + _exit + waitpid",
        default_iters: 1_200,
        run: fork_exit_wait,
    },
    Op {
        name: "fork_exec",
        unit: "fork + execve(uml-guest true) + waitpid",
        default_iters: 150,
        run: fork_exec,
    },
    Op {
        name: "page_fault",
        unit: "first touch of a fresh anonymous page",
        default_iters: 24_576,
        run: page_fault,
    },
    Op {
        name: "mmap_munmap_1m",
        unit: "mmap + munmap of 1 MiB anonymous, untouched",
        default_iters: 15_000,
        run: mmap_munmap_1m,
    },
];

pub fn find(name: &str) -> Option<&'static Op> {
    OPS.iter().find(|o| o.name == name)
}

/// Runs `op` `runs` times with `iters` operations each, printing a BENCH
/// line per run.
pub fn run(op: &Op, iters: u64, runs: u32) -> io::Result<()> {
    let iters = iters.max(1);
    (op.run)((iters / 10).max(1))?;
    for _ in 0..runs.max(1) {
        let (ns, n) = (op.run)(iters)?;
        crate::ktap::line(&format!(
            "BENCH op={} iters={n} ns_per_op={:.1} total_ns={ns}",
            op.name,
            ns as f64 / n.max(1) as f64
        ));
    }
    Ok(())
}

fn getppid(iters: u64) -> io::Result<(u64, u64)> {
    let t0 = sys::now_ns();
    for _ in 0..iters {
        // SAFETY: getppid(2) through syscall(2), so no libc caching applies.
        std::hint::black_box(unsafe { libc::syscall(libc::SYS_getppid) });
    }
    Ok((sys::now_ns() - t0, iters))
}

/// Parent and child bounce one byte over two pipes; each round trip is two
/// switches.
fn pipe_pingpong(iters: u64) -> io::Result<(u64, u64)> {
    let (a_r, a_w) = sys::pipe()?;
    let (b_r, b_w) = sys::pipe()?;
    let (ar, bw) = (a_r.as_raw_fd(), b_w.as_raw_fd());
    let pid = sys::fork_child(|| {
        let mut c = [0u8; 1];
        for _ in 0..iters {
            if sys::read_fd(ar, &mut c).ok() != Some(1) || sys::write_fd(bw, &c).ok() != Some(1) {
                return 1;
            }
        }
        0
    })?;
    drop(a_r);
    drop(b_w);
    let (aw, br) = (a_w.as_raw_fd(), b_r.as_raw_fd());
    let mut c = [7u8; 1];
    let t0 = sys::now_ns();
    for _ in 0..iters {
        if sys::write_fd(aw, &c)? != 1 || sys::read_fd(br, &mut c)? != 1 {
            return Err(io::Error::other("pipe_pingpong: short transfer"));
        }
    }
    let ns = sys::now_ns() - t0;
    check_child(pid)?;
    Ok((ns, 2 * iters))
}

fn check_child(pid: libc::pid_t) -> io::Result<()> {
    match sys::wait(pid)? {
        Exit::Code(0) => Ok(()),
        x => Err(io::Error::other(format!("benchmark child: {x}"))),
    }
}

fn fork_exit_wait(iters: u64) -> io::Result<(u64, u64)> {
    let t0 = sys::now_ns();
    for _ in 0..iters {
        let pid = sys::fork_child(|| 0)?;
        check_child(pid)?;
    }
    Ok((sys::now_ns() - t0, iters))
}

fn fork_exec(iters: u64) -> io::Result<(u64, u64)> {
    let e = Exec::new(&sys::self_exe(), &["uml-guest", "true"], &[])?;
    let t0 = sys::now_ns();
    for _ in 0..iters {
        check_child(e.spawn()?)?;
    }
    Ok((sys::now_ns() - t0, iters))
}

/// Touches one byte in each page of fresh anonymous mappings of at most
/// 16 MiB (transparent huge pages disabled on them); only the touching is
/// timed.
fn page_fault(iters: u64) -> io::Result<(u64, u64)> {
    let page = sys::page_size();
    let per_map = (16 << 20) / page;
    let mut left = iters as usize;
    let mut ns = 0;
    while left > 0 {
        let pages = left.min(per_map);
        let m = sys::Mapping::new(pages * page, libc::PROT_READ | libc::PROT_WRITE)?;
        // SAFETY: advice on our own mapping; failure (no THP support) is fine.
        unsafe { libc::madvise(m.as_ptr().cast(), m.len(), libc::MADV_NOHUGEPAGE) };
        let p = m.as_ptr();
        let t0 = sys::now_ns();
        for i in 0..pages {
            // SAFETY: `i * page` is inside the writable mapping `m`.
            unsafe { std::ptr::write_volatile(p.add(i * page), 1u8) };
        }
        ns += sys::now_ns() - t0;
        drop(m);
        left -= pages;
    }
    Ok((ns, iters))
}

fn mmap_munmap_1m(iters: u64) -> io::Result<(u64, u64)> {
    let t0 = sys::now_ns();
    for _ in 0..iters {
        let m = sys::Mapping::new(1 << 20, libc::PROT_READ | libc::PROT_WRITE)?;
        std::hint::black_box(m.as_ptr());
        drop(m);
    }
    Ok((sys::now_ns() - t0, iters))
}
