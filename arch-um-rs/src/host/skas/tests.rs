// SPDX-License-Identifier: GPL-2.0
//! The skas core against real user processes created by
//! [`start_userspace`], with the crate's own stub mapped in them.

use core::ffi::{c_int, c_ulong, c_void};
use std::os::fd::{AsRawFd, OwnedFd};

use super::batch::{self, StubRunner};
use super::*;
use crate::host::ptrace::{self, MAX_REG_NR, reg};
use crate::stub::{self, MmId, PAGE_SIZE, StubData, syscall_type};

// Code for the user process to run in tests: a write and a read of the
// address in rdi, and a getpid whose result lands in rbx. Each ends in int3.
core::arch::global_asm!(
    ".pushsection .text.um_rs_skas_test, \"ax\", @progbits",
    ".globl um_rs_test_write_fault",
    "um_rs_test_write_fault:",
    "mov byte ptr [rdi], 1",
    "int3",
    ".globl um_rs_test_read_fault",
    "um_rs_test_read_fault:",
    "mov al, byte ptr [rdi]",
    "int3",
    ".globl um_rs_test_getpid",
    "um_rs_test_getpid:",
    "mov eax, {nr_getpid}",
    "syscall",
    "mov rbx, rax",
    "int3",
    ".popsection",
    nr_getpid = const libc::SYS_getpid,
);
unsafe extern "C" {
    fn um_rs_test_write_fault();
    fn um_rs_test_read_fault();
    fn um_rs_test_getpid();
}

/// A reserved (PROT_NONE) range of this process; the forked user process
/// has the same range, free for MAP_FIXED.
struct Reserved {
    base: *mut c_void,
    len: usize,
}

impl Reserved {
    fn new(len: usize) -> Reserved {
        // SAFETY: a fresh inaccessible reservation, unmapped on drop.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        Reserved { base, len }
    }
    fn addr(&self) -> usize {
        self.base as usize
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        // SAFETY: our own reservation.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// The memory file: the stub code at offset 0, the data area at 8 KiB,
/// free pages from 16 KiB for the batches to map.
const DATA_OFFSET: u64 = 8192;
const FREE_OFFSET: u64 = 16384;

/// A user process with the stub, as the kernel makes them, and the
/// kernel-side view of its data area.
struct UserProcess {
    pid: c_int,
    mem: OwnedFd,
    data: *mut StubData,
    code_addr: usize,
    data_addr: usize,
    target: Reserved,
    _stub_area: Reserved,
    syscall_regs: ptrace::GpRegs,
}

impl UserProcess {
    fn start() -> UserProcess {
        let mem =
            crate::host::physmem::create_at(&crate::host::physmem::Place::Memfd, 1 << 20).unwrap();
        let code = stub::code();
        nix::sys::uio::pwrite(&mem, code.bytes(), 0).unwrap();
        // The data area must be STUB_DATA_SIZE aligned in the user process;
        // the code page sits just below it, as STUB_CODE and STUB_DATA do.
        let area = Reserved::new(4 * stub::STUB_DATA_SIZE);
        let data_addr = (area.addr() + 2 * stub::STUB_DATA_SIZE) & !(stub::STUB_DATA_SIZE - 1);
        let code_addr = data_addr - PAGE_SIZE;
        // SAFETY: a shared view of the data area in this process, unmapped in Drop.
        let data = unsafe {
            libc::mmap64(
                core::ptr::null_mut(),
                stub::STUB_DATA_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                mem.as_raw_fd(),
                DATA_OFFSET as i64,
            )
        };
        assert_ne!(data, libc::MAP_FAILED);
        let pages = StubPages {
            code_addr: code_addr as c_ulong,
            code_fd: mem.as_raw_fd(),
            code_offset: 0,
            data_addr: data_addr as c_ulong,
            data_fd: mem.as_raw_fd(),
            data_offset: DATA_OFFSET,
            segv_handler: code.segv_handler as c_ulong,
        };
        let target = Reserved::new(64 * PAGE_SIZE);
        let pid = {
            let _g = crate::host::util::test_support::fork_lock();
            start_userspace(&pages).unwrap()
        };
        let mut syscall_regs = [0; MAX_REG_NR];
        ptrace::get_regs(pid, &mut syscall_regs).unwrap();
        syscall_regs[reg::IP] = (code_addr + code.syscall_handler) as c_ulong;
        syscall_regs[reg::SP] = stub::syscall_handler_sp(data_addr) as c_ulong;
        UserProcess {
            pid,
            mem,
            data: data.cast(),
            code_addr,
            data_addr,
            target,
            _stub_area: area,
            syscall_regs,
        }
    }

    fn mm(&self) -> MmId {
        MmId {
            pid: self.pid,
            stack: self.data as c_ulong,
            syscall_data_len: 0,
        }
    }

    fn data(&self) -> &'static mut StubData {
        // SAFETY: the shared data mapping lives as long as the process; tests use one view at a time.
        unsafe { &mut *self.data }
    }

    /// The user process's mappings in the target range: (offset in the
    /// range, length, "rwxs" permissions).
    fn target_maps(&self) -> Vec<(usize, usize, String)> {
        let maps = procfs::process::Process::new(self.pid)
            .unwrap()
            .maps()
            .unwrap();
        let lo = self.target.addr() as u64;
        let hi = lo + self.target.len as u64;
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

    /// Runs the user process from `ip` with `rdi` until it stops; the stop.
    fn run_at(&self, ip: usize, rdi: usize, req: c_int) -> c_int {
        let mut regs = self.syscall_regs;
        regs[reg::IP] = ip as c_ulong;
        regs[reg::DI] = rdi as c_ulong;
        ptrace::set_regs(self.pid, &regs).unwrap();
        ptrace::resume(req, self.pid, 0).unwrap();
        ptrace::wait_stopped(self.pid).unwrap()
    }
}

impl Drop for UserProcess {
    fn drop(&mut self) {
        ptrace::kill_traced(self.pid, true);
        // SAFETY: our shared view of the data area.
        unsafe { libc::munmap(self.data.cast(), stub::STUB_DATA_SIZE) };
    }
}

#[derive(Default)]
struct Runner {
    regs: Option<ptrace::GpRegs>,
    runs: usize,
    errors: Vec<(c_int, i64, u32)>,
}

impl StubRunner for Runner {
    fn run(&mut self, pid: c_int) {
        self.runs += 1;
        run_syscall_stub(pid, self.regs.as_ref().unwrap()).unwrap();
    }
    fn report_error(&mut self, _mm: &MmId, data: &StubData) {
        let i = data.syscall_data_len;
        self.errors
            .push((i, data.err, data.syscall_data.0[i as usize].syscall));
    }
}

fn q<'a>(mm: &'a mut MmId, data: &'a mut StubData, runner: &'a mut Runner) -> batch::Queue<'a> {
    batch::Queue { mm, data, runner }
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
    let mut run = Runner {
        regs: Some(p.syscall_regs),
        ..Default::default()
    };
    let (mut mm, data) = (p.mm(), p.data());
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
    let maps = p.target_maps();
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
    let mut run = Runner {
        regs: Some(p.syscall_regs),
        ..Default::default()
    };
    let (mut mm, data) = (p.mm(), p.data());
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
    let mut run = Runner {
        regs: Some(p.syscall_regs),
        ..Default::default()
    };
    let (mut mm, data) = (p.mm(), p.data());
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
        p.target_maps().len(),
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
    let mut run = Runner {
        regs: Some(p.syscall_regs),
        ..Default::default()
    };
    let (mut mm, data) = (p.mm(), p.data());
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
    for (code, write) in [
        (um_rs_test_write_fault as *const () as usize, true),
        (um_rs_test_read_fault as *const () as usize, false),
    ] {
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
    let status = p.run_at(
        um_rs_test_getpid as *const () as usize,
        0,
        ptrace::PTRACE_SYSEMU,
    );
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
