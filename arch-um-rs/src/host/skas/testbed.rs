// SPDX-License-Identifier: GPL-2.0
//! A user process as the kernel makes them, outside a kernel: for the
//! skas core's tests and the criterion benchmarks of the raw mechanisms
//! (`bench/`). Not built into kernels.
//!
//! The process is created by [`start_userspace`] with the crate's own
//! stub, mapped from a memfd that stands in for physical memory; the test
//! process keeps a shared view of the stub data area, as the kernel does.

use core::ffi::{c_int, c_ulong, c_void};
use std::os::fd::{AsRawFd, OwnedFd};

use super::batch::StubRunner;
use super::*;
use crate::host::ptrace::{self, MAX_REG_NR, reg};
use crate::stub::{self, MmId, PAGE_SIZE, StubData};

// Code for the user process to run in tests and benchmarks: a write and a read of the
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
    ".globl um_rs_test_syscall_loop",
    "um_rs_test_syscall_loop:",
    "mov eax, {nr_getppid}",
    "syscall",
    "jmp um_rs_test_syscall_loop",
    ".popsection",
    nr_getpid = const libc::SYS_getpid,
    nr_getppid = const libc::SYS_getppid,
);
unsafe extern "C" {
    fn um_rs_test_write_fault();
    fn um_rs_test_read_fault();
    fn um_rs_test_getpid();
    fn um_rs_test_syscall_loop();
}

/// Entry points for [`UserProcess::run_at`]: a byte write to, and a read
/// from, the address in rdi; a getpid whose result lands in rbx; each
/// ends in int3. The loop makes getppid system calls forever.
pub fn write_fault_code() -> usize {
    um_rs_test_write_fault as *const () as usize
}
pub fn read_fault_code() -> usize {
    um_rs_test_read_fault as *const () as usize
}
pub fn getpid_code() -> usize {
    um_rs_test_getpid as *const () as usize
}
pub fn syscall_loop_code() -> usize {
    um_rs_test_syscall_loop as *const () as usize
}

/// A reserved (PROT_NONE) range of this process; the forked user process
/// has the same range, free for MAP_FIXED.
pub struct Reserved {
    pub base: *mut c_void,
    pub len: usize,
}

impl Reserved {
    pub fn new(len: usize) -> Reserved {
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
    pub fn addr(&self) -> usize {
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
pub const DATA_OFFSET: u64 = 8192;
pub const FREE_OFFSET: u64 = 16384;

/// A user process with the stub, as the kernel makes them, and the
/// kernel-side view of its data area.
pub struct UserProcess {
    pub pid: c_int,
    pub mem: OwnedFd,
    pub data: *mut StubData,
    pub code_addr: usize,
    pub data_addr: usize,
    pub target: Reserved,
    _stub_area: Reserved,
    pub syscall_regs: ptrace::GpRegs,
}

impl UserProcess {
    pub fn start() -> UserProcess {
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
        // The clone child makes raw system calls only, so unlike a fork it
        // needs no lock against other threads' stdio.
        let pid = start_userspace(&pages).unwrap();
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

    /// A stub runner with this process's stub registers.
    pub fn runner(&self) -> Runner {
        Runner {
            regs: Some(self.syscall_regs),
            ..Default::default()
        }
    }

    pub fn mm(&self) -> MmId {
        MmId {
            pid: self.pid,
            stack: self.data as c_ulong,
            syscall_data_len: 0,
        }
    }

    /// The kernel-side view of the stub data area.
    ///
    /// # Safety
    ///
    /// One view at a time: the caller holds no other reference from here.
    pub unsafe fn data(&self) -> &'static mut StubData {
        // SAFETY: the shared mapping lives as long as the process; exclusivity is the caller's.
        unsafe { &mut *self.data }
    }

    /// Runs the user process from `ip` with `rdi` until it stops; the stop.
    pub fn run_at(&self, ip: usize, rdi: usize, req: c_int) -> c_int {
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
pub struct Runner {
    pub regs: Option<ptrace::GpRegs>,
    pub runs: usize,
    pub errors: Vec<(c_int, i64, u32)>,
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
