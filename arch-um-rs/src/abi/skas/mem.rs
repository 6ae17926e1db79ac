// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/skas/mem.c: the queue of mapping
//! requests of a user address space, run by the stub (see
//! [`crate::host::skas::batch`]).
//!
//! Called from the kernel's TLB code on the one kernel thread, with the
//! address space's `mm_id`; its `stack` is the kernel mapping of the
//! space's stub data area.

use core::ffi::{c_int, c_uint, c_ulong, c_ulonglong};

use crate::host::ptrace::{GpRegs, MAX_REG_NR};
use crate::host::skas::batch::{Queue, StubRunner};
use crate::host::util::HostCell;
use crate::kernel::Level;
use crate::klog;
use crate::stub::{MmId, STUB_SYSCALLS, StubData, StubSyscall};

/// The registers the stub's syscall handler starts with in every user
/// process. Set by an initcall at boot, only read afterwards.
static SYSCALL_REGS: HostCell<GpRegs> = HostCell::new([0; MAX_REG_NR]);

/// Where the stub sits in the user processes and in the kernel image.
#[cfg(feature = "kernel")]
pub(crate) struct StubLocation {
    /// `STUB_CODE` in user processes.
    pub code: c_ulong,
    /// `STUB_DATA` in user processes.
    pub data: c_ulong,
    /// The crate's stub in the kernel image, relative to
    /// `__syscall_stub_start`, the page mapped at `STUB_CODE`.
    pub syscall_handler: c_ulong,
    pub segv_handler: c_ulong,
}

#[cfg(feature = "kernel")]
pub(crate) fn stub_location() -> StubLocation {
    use crate::kernel::um;
    let code = crate::stub::code();
    // SAFETY: reading a boot-time constant of the kernel, and taking the address of a linker symbol.
    let (stub_start, page) = unsafe {
        (
            um::stub_start,
            (&raw const um::__syscall_stub_start) as usize,
        )
    };
    let base = (code.start - page) as c_ulong;
    StubLocation {
        code: stub_start,
        data: stub_start + crate::stub::PAGE_SIZE as c_ulong,
        syscall_handler: base + code.syscall_handler as c_ulong,
        segv_handler: base + code.segv_handler as c_ulong,
    }
}

/// Sets the stub's registers: the safe register set, with the entry of
/// the syscall handler and the top of the data area's signal stack.
#[cfg_attr(not(feature = "os-skas-mem"), allow(dead_code))]
unsafe extern "C" fn init_syscall_regs() -> c_int {
    #[cfg(feature = "kernel")]
    {
        let loc = stub_location();
        // SAFETY: initcall, one kernel thread, before any address space exists.
        unsafe {
            SYSCALL_REGS.with(|regs| {
                crate::kernel::um::get_safe_registers(regs.as_mut_ptr(), core::ptr::null_mut());
                regs[crate::host::ptrace::reg::IP] = loc.code + loc.syscall_handler;
                regs[crate::host::ptrace::reg::SP] =
                    crate::stub::syscall_handler_sp(loc.data as usize) as c_ulong;
            })
        };
    }
    0
}
crate::uml_initcall!("os-skas-mem", init_syscall_regs);

/// Runs the stub with [`SYSCALL_REGS`]; a stub that fails to run is fatal.
struct KernelRunner;

impl StubRunner for KernelRunner {
    fn run(&mut self, pid: c_int) {
        // SAFETY: SYSCALL_REGS is only written by the initcall, before any address space exists.
        let regs = unsafe { &*SYSCALL_REGS.as_ptr() };
        let result = crate::host::skas::run_syscall_stub(pid, regs);
        // The stub ran with its own general registers (it leaves FP alone).
        super::host_regs(|c| c.gp_changed(pid));
        if let Err(e) = result {
            super::stub_failed("do_syscall_stub", pid, e);
        }
    }

    fn report_error(&mut self, mm: &MmId, data: &StubData) {
        dump_error(mm, data);
    }
}

fn dump_error(mm: &MmId, data: &StubData) {
    let len = data.syscall_data_len;
    if len < 0 || len as usize >= STUB_SYSCALLS {
        crate::kernel::fatal(
            crate::kernel::stack_format(format_args!(
                "Syscall data was corrupted by stub (len is: {len}, expected maximum: {})!",
                mm.syscall_data_len
            ))
            .as_str(),
        );
    }
    let sc = &data.syscall_data.0[len as usize];
    klog!(
        Level::Err,
        "syscall_stub_dump_error : length = {}, last offset = {len}",
        mm.syscall_data_len
    );
    klog!(
        Level::Err,
        "syscall_stub_dump_error : stub syscall type {} failed, return value = 0x{:x}",
        sc.syscall,
        data.err
    );
    klog!(
        Level::Err,
        "    syscall data: addr {:#x} length {:#x} offset {:#x} fd {} prot {:#x}",
        sc.mem.addr,
        sc.mem.length,
        sc.mem.offset,
        sc.mem.fd,
        sc.mem.prot
    );
}

/// # Safety
///
/// `mm_idp` is a live `mm_id` whose `stack` is its data area's kernel
/// mapping, and nothing else uses either during the call.
unsafe fn with_queue<R>(mm_idp: *mut MmId, f: impl FnOnce(&mut Queue<'_>) -> R) -> R {
    // SAFETY: per the function's contract.
    let (mm, data) = unsafe {
        let mm = &mut *mm_idp;
        let data = &mut *(mm.stack as *mut StubData);
        (mm, data)
    };
    f(&mut Queue {
        mm,
        data,
        runner: &mut KernelRunner,
    })
}

/// Prints the request the stub failed on (or panics if the stub corrupted
/// the count).
///
/// # Safety
///
/// As for [`with_queue`].
#[cfg_attr(feature = "os-skas-mem", unsafe(no_mangle))]
pub unsafe extern "C" fn syscall_stub_dump_error(mm_idp: *mut MmId) {
    // SAFETY: per the contract.
    unsafe { with_queue(mm_idp, |q| dump_error(q.mm, q.data)) }
}

/// Runs the queued requests: 0, or the (negative) error of the stub.
///
/// # Safety
///
/// As for [`with_queue`].
#[cfg_attr(feature = "os-skas-mem", unsafe(no_mangle))]
pub unsafe extern "C" fn syscall_stub_flush(mm_idp: *mut MmId) -> c_int {
    // SAFETY: per the contract.
    unsafe { with_queue(mm_idp, |q| q.flush()) }
}

/// A zeroed request slot (see [`Queue::alloc`]).
///
/// # Safety
///
/// As for [`with_queue`].
#[cfg_attr(feature = "os-skas-mem", unsafe(no_mangle))]
pub unsafe extern "C" fn syscall_stub_alloc(mm_idp: *mut MmId) -> *mut StubSyscall {
    // SAFETY: per the contract.
    unsafe { with_queue(mm_idp, |q| core::ptr::from_mut(q.alloc())) }
}

/// Queues an mmap of the memory file. Always 0: errors come at the flush.
///
/// # Safety
///
/// As for [`with_queue`].
#[cfg_attr(feature = "os-skas-mem", unsafe(no_mangle))]
pub unsafe extern "C" fn map(
    mm_idp: *mut MmId,
    virt: c_ulong,
    len: c_ulong,
    prot: c_int,
    phys_fd: c_int,
    offset: c_ulonglong,
) -> c_int {
    // SAFETY: per the contract.
    unsafe { with_queue(mm_idp, |q| q.map(virt, len, prot, phys_fd, offset)) }
}

/// Queues an munmap. Always 0.
///
/// # Safety
///
/// As for [`with_queue`].
#[cfg_attr(feature = "os-skas-mem", unsafe(no_mangle))]
pub unsafe extern "C" fn unmap(mm_idp: *mut MmId, addr: c_ulong, len: c_ulong) -> c_int {
    // SAFETY: per the contract.
    unsafe { with_queue(mm_idp, |q| q.unmap(addr, len)) }
}

/// Queues an mprotect. Always 0.
///
/// # Safety
///
/// As for [`with_queue`].
#[cfg_attr(feature = "os-skas-mem", unsafe(no_mangle))]
pub unsafe extern "C" fn protect(
    mm_idp: *mut MmId,
    addr: c_ulong,
    len: c_ulong,
    prot: c_uint,
) -> c_int {
    // SAFETY: per the contract.
    unsafe { with_queue(mm_idp, |q| q.protect(addr, len, prot as c_int)) }
}
