// SPDX-License-Identifier: GPL-2.0
//! The skas core against real user processes created by
//! [`start_userspace`], with the crate's own stub mapped in them.

use core::ffi::{c_int, c_ulong, c_void};
use std::os::fd::AsRawFd;

use super::batch;
use super::testbed::*;
use super::*;
use crate::host::ptrace::{self, MAX_REG_NR, reg};
use crate::stub::{self, MmId, PAGE_SIZE, StubData, syscall_type};

fn q<'a>(mm: &'a mut MmId, data: &'a mut StubData, runner: &'a mut Runner) -> batch::Queue<'a> {
    batch::Queue { mm, data, runner }
}

/// The user process's mappings in the target range: (offset in the
/// range, length, "rwxs" permissions).
fn target_maps(p: &UserProcess) -> Vec<(usize, usize, String)> {
    let maps = procfs::process::Process::new(p.pid)
        .unwrap()
        .maps()
        .unwrap();
    let lo = p.target.addr() as u64;
    let hi = lo + p.target.len as u64;
    maps.into_iter()
        .filter(|m| m.address.0 >= lo && m.address.1 <= hi && m.perms.as_str() != "---p")
        .map(|m| {
            (
                (m.address.0 - lo) as usize,
                (m.address.1 - m.address.0) as usize,
                m.perms.as_str(),
            )
        })
        .collect()
}

fn rw() -> c_int {
    libc::PROT_READ | libc::PROT_WRITE
}

#[test]
fn user_process_has_the_stub_pages() {
    let p = UserProcess::start();
    let maps = procfs::process::Process::new(p.pid)
        .unwrap()
        .maps()
        .unwrap();
    let find = |addr: usize| {
        maps.iter()
            .find(|m| m.address.0 == addr as u64)
            .map(|m| m.perms.as_str())
    };
    assert_eq!(find(p.code_addr).as_deref(), Some("--xp"));
    assert_eq!(find(p.data_addr).as_deref(), Some("rw-s"));
}

#[test]
fn batch_is_applied_by_the_stub_and_merged() {
    let p = UserProcess::start();
    let mut run = p.runner();
    // SAFETY: the only view of this process's data area in the test.
    let (mut mm, data) = (p.mm(), unsafe { p.data() });
    let t = p.target.addr() as c_ulong;
    let pg = PAGE_SIZE as c_ulong;
    let fd = p.mem.as_raw_fd();
    // Four adjacent pages of consecutive file offsets: one request.
    for i in 0..4 {
        q(&mut mm, data, &mut run).map(t + i * pg, pg, rw(), fd, FREE_OFFSET + i * pg);
    }
    assert_eq!(mm.syscall_data_len, 1, "merged into one mmap");
    // A gap in the file offsets: a second request.
    q(&mut mm, data, &mut run).map(t + 4 * pg, pg, libc::PROT_READ, fd, FREE_OFFSET + 9 * pg);
    q(&mut mm, data, &mut run).protect(t + pg, pg, libc::PROT_READ);
    q(&mut mm, data, &mut run).protect(t + 2 * pg, pg, libc::PROT_READ);
    q(&mut mm, data, &mut run).unmap(t + 3 * pg, pg);
    assert_eq!(mm.syscall_data_len, 4);
    assert_eq!(run.runs, 0, "nothing runs before the flush");
    assert_eq!(q(&mut mm, data, &mut run).flush(), 0);
    assert_eq!((run.runs, mm.syscall_data_len), (1, 0));
    let maps = target_maps(&p);
    let pgu = PAGE_SIZE;
    assert_eq!(
        maps,
        vec![
            (0, pgu, "rw-s".to_string()),
            (pgu, 2 * pgu, "r--s".to_string()),
            (4 * pgu, pgu, "r--s".to_string()),
        ]
    );
    // The user process sees the file: write through our view, read there.
    nix::sys::uio::pwrite(&p.mem, b"skas", FREE_OFFSET as i64).unwrap();
    let word = ptrace_peek(p.pid, p.target.addr());
    assert_eq!(&word.to_le_bytes()[..4], b"skas");
    assert_eq!(q(&mut mm, data, &mut run).flush(), 0, "empty flush");
    assert_eq!(run.runs, 1);
}

fn ptrace_peek(pid: c_int, addr: usize) -> u64 {
    // SAFETY: PEEKDATA reads one word of the tracee.
    unsafe {
        ptrace::raw(
            libc::PTRACE_PEEKDATA as _,
            pid,
            addr as *mut c_void,
            core::ptr::null_mut(),
        )
    }
    .unwrap() as u64
}

#[test]
fn full_batch_runs_before_more_is_queued() {
    let p = UserProcess::start();
    let mut run = p.runner();
    // SAFETY: the only view of this process's data area in the test.
    let (mut mm, data) = (p.mm(), unsafe { p.data() });
    let t = p.target.addr() as c_ulong;
    // Alternate protections so that nothing merges.
    for i in 0..stub::STUB_SYSCALLS as c_ulong + 1 {
        let prot = if i % 2 == 0 {
            libc::PROT_READ
        } else {
            libc::PROT_NONE
        };
        q(&mut mm, data, &mut run).protect(
            t + (i % 32) * PAGE_SIZE as c_ulong,
            PAGE_SIZE as c_ulong,
            prot,
        );
    }
    assert_eq!(run.runs, 1, "the full queue ran");
    assert_eq!(
        mm.syscall_data_len, 1,
        "the last request waits for the flush"
    );
    assert_eq!(q(&mut mm, data, &mut run).flush(), 0);
    assert!(run.errors.is_empty());
}

#[test]
fn failed_request_is_reported_once_with_its_index() {
    let p = UserProcess::start();
    let mut run = p.runner();
    // SAFETY: the only view of this process's data area in the test.
    let (mut mm, data) = (p.mm(), unsafe { p.data() });
    let t = p.target.addr() as c_ulong;
    let pg = PAGE_SIZE as c_ulong;
    q(&mut mm, data, &mut run).map(t, pg, rw(), p.mem.as_raw_fd(), FREE_OFFSET);
    // Not page aligned: EINVAL from the host.
    q(&mut mm, data, &mut run).unmap(t + 8 * pg + 1, pg);
    q(&mut mm, data, &mut run).map(t + 16 * pg, pg, rw(), p.mem.as_raw_fd(), FREE_OFFSET);
    assert_eq!(q(&mut mm, data, &mut run).flush(), -libc::EINVAL);
    assert_eq!(
        run.errors,
        vec![(1, -libc::EINVAL as i64, syscall_type::MUNMAP)]
    );
    assert_eq!(
        target_maps(&p).len(),
        1,
        "requests after the failed one were not run"
    );
    assert_eq!(q(&mut mm, data, &mut run).flush(), 0, "reported once");
    // An unknown request type: EOPNOTSUPP, as the C stub answers.
    q(&mut mm, data, &mut run).alloc().syscall = 77;
    assert_eq!(q(&mut mm, data, &mut run).flush(), -libc::EOPNOTSUPP);
}

#[test]
fn error_is_kept_until_the_flush_and_later_requests_dropped() {
    let p = UserProcess::start();
    let mut run = p.runner();
    // SAFETY: the only view of this process's data area in the test.
    let (mut mm, data) = (p.mm(), unsafe { p.data() });
    let t = p.target.addr() as c_ulong;
    for i in 0..stub::STUB_SYSCALLS as c_ulong {
        // Every request fails: mprotect of an address with no mapping.
        let prot = if i % 2 == 0 {
            libc::PROT_READ
        } else {
            libc::PROT_NONE
        };
        q(&mut mm, data, &mut run).protect(t - (i + 1) * 0x1000_0000, 4096, prot);
    }
    q(&mut mm, data, &mut run).unmap(t, 4096);
    assert_eq!(
        mm.syscall_data_len,
        -libc::ENOMEM,
        "the full queue ran and failed"
    );
    q(&mut mm, data, &mut run).unmap(t + 8192, 4096);
    assert_eq!(mm.syscall_data_len, -libc::ENOMEM, "still kept");
    assert_eq!(q(&mut mm, data, &mut run).flush(), -libc::ENOMEM);
    assert_eq!(run.runs, 1);
}

#[test]
fn faults_are_captured_with_address_and_access() {
    let p = UserProcess::start();
    let addr = p.target.addr() + 5 * PAGE_SIZE + 0x123;
    for (code, write) in [(write_fault_code(), true), (read_fault_code(), false)] {
        let status = p.run_at(code, addr, libc::PTRACE_CONT as c_int);
        assert_eq!(ptrace::stop_signal(status), Some(libc::SIGSEGV));
        // SAFETY: `p.data` is our view of the process's data area.
        let fi = unsafe { capture_fault(p.pid, p.data.cast()) }.unwrap();
        assert_eq!(fi.cr2, addr as c_ulong);
        assert_eq!(fi.trap_no, 14, "page fault");
        assert_eq!(
            fi.error_code & 2 != 0,
            write,
            "write bit, error code {:#x}",
            fi.error_code
        );
        assert_eq!(fi.error_code & 4, 4, "user mode");
    }
}

#[test]
fn syscall_is_intercepted_with_sysemu() {
    let p = UserProcess::start();
    let status = p.run_at(getpid_code(), 0, ptrace::PTRACE_SYSEMU);
    assert_eq!(ptrace::stop_signal(status), Some(libc::SIGTRAP | 0x80));
    let mut regs = [0; MAX_REG_NR];
    ptrace::get_regs(p.pid, &mut regs).unwrap();
    assert_eq!(regs[reg::ORIG_AX], libc::SYS_getpid as c_ulong);
    regs[reg::AX] = 4242;
    ptrace::set_regs(p.pid, &regs).unwrap();
    ptrace::resume(ptrace::PTRACE_SYSEMU, p.pid, 0).unwrap();
    let status = ptrace::wait_stopped(p.pid).unwrap();
    assert_eq!(
        ptrace::stop_signal(status),
        Some(libc::SIGTRAP),
        "the int3 after the syscall"
    );
    ptrace::get_regs(p.pid, &mut regs).unwrap();
    assert_eq!(
        regs[reg::BX],
        4242,
        "the emulated result, not the host's pid"
    );
}

#[test]
fn dead_process_is_noticed() {
    let p = UserProcess::start();
    ptrace::kill(p.pid, libc::SIGKILL);
    assert!(matches!(
        run_syscall_stub(p.pid, &p.syscall_regs),
        Err(StubError::SetRegs(_) | StubError::Continue(_) | StubError::BadStatus(_))
    ));
    // Reaped by the failed wait above or not: a second wait fails either way.
    assert!(matches!(
        wait_stub_done(p.pid),
        Err(StubError::Wait(Errno::ECHILD) | StubError::BadStatus(_))
    ));
}

#[test]
fn bad_stub_pages_fail_with_the_step() {
    let pages = StubPages {
        code_addr: 0x1000, // below mmap_min_addr
        code_fd: -1,
        code_offset: 0,
        data_addr: 0,
        data_fd: -1,
        data_offset: 0,
        segv_handler: 0,
    };
    let err = {
        let _g = crate::host::util::test_support::fork_lock();
        start_userspace(&pages).unwrap_err()
    };
    assert_eq!(err.what, "expected SIGSTOP");
    assert!(libc::WIFEXITED(err.status));
    assert_eq!(
        tramp_failure_name(libc::WEXITSTATUS(err.status)),
        Some("mapping the stub code page")
    );
}
