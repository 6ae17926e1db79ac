// SPDX-License-Identifier: GPL-2.0
//! The code that runs inside every user address space, and the data page
//! it shares with the kernel (`skas/stub-data.h`).
//!
//! Two handlers live in the stub code page, mapped at `STUB_CODE` in every
//! user process:
//!
//! * the **syscall handler** runs the batch of mmap/munmap/mprotect requests
//!   the kernel queued in the stub data page, then traps (`int3`);
//! * the **SIGSEGV handler** copies the fault address, error code and trap
//!   number from the signal frame to the start of the data page, then traps.
//!
//! The page is copied into every process at another address than the one
//! it was linked at, and runs with no libc, no TLS and a one-page stack, so
//! it is written in assembly: position independent by construction, raw
//! `syscall` instructions only, no call out of the page (no compiler-emitted
//! `memcpy`). Field offsets are taken from the `#[repr(C)]` mirrors below,
//! which the ABI guard checks against the C headers. The build checks the
//! assembled page mechanically as well (`uml-stub-check`).

use core::ffi::{c_int, c_long, c_ulong};
use core::mem::offset_of;

/// `STUB_DATA_PAGES` (as-layout.h): pages of the stub data area.
pub const STUB_DATA_PAGES: usize = 2;
/// The host page size UML is built for (`UM_KERN_PAGE_SIZE`).
pub const PAGE_SIZE: usize = 4096;
/// Bytes of the stub data area; its start is found by masking the stack
/// pointer with `!(STUB_DATA_SIZE - 1)`.
pub const STUB_DATA_SIZE: usize = STUB_DATA_PAGES * PAGE_SIZE;

/// `enum stub_syscall_type`.
pub mod syscall_type {
    pub const UNSET: u32 = 0;
    pub const MMAP: u32 = 1;
    pub const MUNMAP: u32 = 2;
    pub const MPROTECT: u32 = 3;
}

/// The `mem` member of `struct stub_syscall`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StubMem {
    pub addr: c_ulong,
    pub length: c_ulong,
    pub offset: c_ulong,
    pub fd: c_int,
    pub prot: c_int,
}

/// `struct stub_syscall`: one queued request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StubSyscall {
    pub mem: StubMem,
    /// `enum stub_syscall_type`.
    pub syscall: u32,
}

/// Requests that fit the data page: `(PAGE_SIZE - 128) / sizeof(struct
/// stub_syscall)`.
pub const STUB_SYSCALLS: usize = (PAGE_SIZE - 128) / core::mem::size_of::<StubSyscall>();

/// `syscall_data`, 16-byte aligned as in C.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug)]
pub struct SyscallArray(pub [StubSyscall; STUB_SYSCALLS]);

/// `sigstack`, page aligned as in C.
#[repr(C, align(4096))]
#[derive(Clone, Copy)]
pub struct SigStack(pub [u8; PAGE_SIZE]);

/// `struct stub_data`: the data area shared by the kernel and one user
/// address space (the kernel's view is `mm_id.stack`).
#[repr(C)]
pub struct StubData {
    pub offset: c_ulong,
    pub err: c_long,
    pub child_err: c_long,
    pub syscall_data_len: c_int,
    pub syscall_data: SyscallArray,
    pub sigstack: SigStack,
}

/// `struct faultinfo` (x86_64 sysdep/faultinfo.h), written by the SIGSEGV
/// handler at the start of the data area.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultInfo {
    pub error_code: c_int,
    pub cr2: c_ulong,
    pub trap_no: c_int,
}

/// `struct mm_id` (skas/mm_id.h): a user address space as the kernel
/// knows it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmId {
    pub pid: c_int,
    /// Kernel address of the address space's [`StubData`].
    pub stack: c_ulong,
    /// Requests queued (> 0), none (0), or the error of a failed batch
    /// (< 0) kept until the next flush reports it.
    pub syscall_data_len: c_int,
}

/// The stack pointer the syscall handler starts with: the top word of the
/// data area's signal stack (as `init_syscall_regs` sets it in C).
pub const fn syscall_handler_sp(stub_data: usize) -> usize {
    stub_data + offset_of!(StubData, sigstack) + PAGE_SIZE - core::mem::size_of::<usize>()
}

const _: () = assert!(core::mem::size_of::<StubData>() == STUB_DATA_SIZE);
const _: () = assert!(STUB_DATA_SIZE.is_power_of_two());

// Offsets used by the assembly below.
const SC_SIZE: usize = core::mem::size_of::<StubSyscall>();
const SD_ERR: usize = offset_of!(StubData, err);
const SD_LEN: usize = offset_of!(StubData, syscall_data_len);
const SD_CALLS: usize = offset_of!(StubData, syscall_data);
const SC_ADDR: usize = offset_of!(StubSyscall, mem) + offset_of!(StubMem, addr);
const SC_LENGTH: usize = offset_of!(StubSyscall, mem) + offset_of!(StubMem, length);
const SC_OFFSET: usize = offset_of!(StubSyscall, mem) + offset_of!(StubMem, offset);
const SC_FD: usize = offset_of!(StubSyscall, mem) + offset_of!(StubMem, fd);
const SC_PROT: usize = offset_of!(StubSyscall, mem) + offset_of!(StubMem, prot);
const SC_TYPE: usize = offset_of!(StubSyscall, syscall);
const UC_GREGS: usize =
    offset_of!(libc::ucontext_t, uc_mcontext) + offset_of!(libc::mcontext_t, gregs);
const UC_ERR: usize = UC_GREGS + 8 * libc::REG_ERR as usize;
const UC_TRAPNO: usize = UC_GREGS + 8 * libc::REG_TRAPNO as usize;
const UC_CR2: usize = UC_GREGS + 8 * libc::REG_CR2 as usize;
const FI_ERROR_CODE: usize = offset_of!(FaultInfo, error_code);
const FI_CR2: usize = offset_of!(FaultInfo, cr2);
const FI_TRAP_NO: usize = offset_of!(FaultInfo, trap_no);

// The stub page. Both handlers find the data area by masking the stack
// pointer: the syscall handler's stack and the SIGSEGV handler's alternate
// signal stack both lie inside it. Neither returns: after `int3` the kernel
// either rewrites the registers before the process runs again or kills it;
// should it ever resume one, it traps again instead of running on.
core::arch::global_asm!(
    ".pushsection .__syscall_stub, \"ax\", @progbits",
    ".p2align 4",
    ".globl um_rs_stub_start",
    ".hidden um_rs_stub_start",
    "um_rs_stub_start:",
    // -- void stub_syscall_handler(void) --
    ".globl um_rs_stub_syscall_handler",
    ".hidden um_rs_stub_syscall_handler",
    ".type um_rs_stub_syscall_handler, @function",
    "um_rs_stub_syscall_handler:",
    "mov rbx, rsp",
    "and rbx, {data_mask}",
    "xor r12d, r12d", // i = 0
    "2:",
    "cmp r12d, dword ptr [rbx + {sd_len}]",
    "jge 20f", // i >= syscall_data_len: all done
    "imul r13, r12, {sc_size}",
    "lea r13, [rbx + r13 + {sd_calls}]", // r13 = &syscall_data[i]
    "mov eax, dword ptr [r13 + {sc_type}]",
    "cmp eax, {mmap}",
    "je 3f",
    "cmp eax, {munmap}",
    "je 4f",
    "cmp eax, {mprotect}",
    "je 5f",
    "mov rax, -95", // -EOPNOTSUPP
    "jmp 10f",
    // mmap(addr, length, prot, MAP_SHARED | MAP_FIXED, fd, offset) == addr
    "3:",
    "mov rdi, qword ptr [r13 + {sc_addr}]",
    "mov rsi, qword ptr [r13 + {sc_length}]",
    "movsxd rdx, dword ptr [r13 + {sc_prot}]",
    "mov r10d, {map_flags}",
    "movsxd r8, dword ptr [r13 + {sc_fd}]",
    "mov r9, qword ptr [r13 + {sc_offset}]",
    "mov eax, {nr_mmap}",
    "syscall",
    "cmp rax, qword ptr [r13 + {sc_addr}]",
    "jne 10f",
    "jmp 6f",
    // munmap(addr, length) == 0
    "4:",
    "mov rdi, qword ptr [r13 + {sc_addr}]",
    "mov rsi, qword ptr [r13 + {sc_length}]",
    "mov eax, {nr_munmap}",
    "syscall",
    "test rax, rax",
    "jnz 10f",
    "jmp 6f",
    // mprotect(addr, length, prot) == 0
    "5:",
    "mov rdi, qword ptr [r13 + {sc_addr}]",
    "mov rsi, qword ptr [r13 + {sc_length}]",
    "movsxd rdx, dword ptr [r13 + {sc_prot}]",
    "mov eax, {nr_mprotect}",
    "syscall",
    "test rax, rax",
    "jnz 10f",
    "6:",
    "inc r12d",
    "jmp 2b",
    // Failure: err = the result, syscall_data_len = the failed index.
    "10:",
    "mov qword ptr [rbx + {sd_err}], rax",
    "mov dword ptr [rbx + {sd_len}], r12d",
    "jmp 30f",
    // Success: err = 0, syscall_data_len = 0.
    "20:",
    "mov qword ptr [rbx + {sd_err}], 0",
    "mov dword ptr [rbx + {sd_len}], 0",
    "30:",
    "int3",
    "jmp 30b",
    ".size um_rs_stub_syscall_handler, . - um_rs_stub_syscall_handler",
    // -- void stub_segv_handler(int sig, siginfo_t *info, void *uc) --
    ".p2align 4",
    ".globl um_rs_stub_segv_handler",
    ".hidden um_rs_stub_segv_handler",
    ".type um_rs_stub_segv_handler, @function",
    "um_rs_stub_segv_handler:",
    "mov rax, rsp",
    "and rax, {data_mask}",
    "mov rcx, qword ptr [rdx + {uc_cr2}]",
    "mov qword ptr [rax + {fi_cr2}], rcx",
    "mov rcx, qword ptr [rdx + {uc_err}]",
    "mov dword ptr [rax + {fi_error_code}], ecx",
    "mov rcx, qword ptr [rdx + {uc_trapno}]",
    "mov dword ptr [rax + {fi_trap_no}], ecx",
    "31:",
    "int3",
    "jmp 31b",
    ".size um_rs_stub_segv_handler, . - um_rs_stub_segv_handler",
    ".globl um_rs_stub_end",
    ".hidden um_rs_stub_end",
    "um_rs_stub_end:",
    ".popsection",
    data_mask = const -(STUB_DATA_SIZE as i64),
    sd_len = const SD_LEN,
    sd_err = const SD_ERR,
    sd_calls = const SD_CALLS,
    sc_size = const SC_SIZE,
    sc_type = const SC_TYPE,
    sc_addr = const SC_ADDR,
    sc_length = const SC_LENGTH,
    sc_offset = const SC_OFFSET,
    sc_fd = const SC_FD,
    sc_prot = const SC_PROT,
    mmap = const syscall_type::MMAP,
    munmap = const syscall_type::MUNMAP,
    mprotect = const syscall_type::MPROTECT,
    map_flags = const libc::MAP_SHARED | libc::MAP_FIXED,
    nr_mmap = const libc::SYS_mmap,
    nr_munmap = const libc::SYS_munmap,
    nr_mprotect = const libc::SYS_mprotect,
    uc_cr2 = const UC_CR2,
    uc_err = const UC_ERR,
    uc_trapno = const UC_TRAPNO,
    fi_cr2 = const FI_CR2,
    fi_error_code = const FI_ERROR_CODE,
    fi_trap_no = const FI_TRAP_NO,
);

// `stub-check-selftest`: a stub that reads a static of the kernel image, which
// is not mapped in user processes. The kernel build's stub check must reject
// it (see `uml-harness stub-check-selftest`). Never enable otherwise.
#[cfg(feature = "stub-check-selftest")]
#[unsafe(no_mangle)]
static um_rs_stub_selftest_outside: u64 = 0;
#[cfg(feature = "stub-check-selftest")]
core::arch::global_asm!(
    ".pushsection .__syscall_stub, \"ax\", @progbits",
    "mov rax, qword ptr [rip + um_rs_stub_selftest_outside]",
    ".popsection",
);

// With the stub migrated (`stub` in MIGRATED), the C stub objects are not
// built and the crate's handlers also carry their C names.
#[cfg(feature = "os-stub")]
core::arch::global_asm!(
    ".globl stub_syscall_handler",
    ".type stub_syscall_handler, @function",
    ".set stub_syscall_handler, um_rs_stub_syscall_handler",
    ".globl stub_segv_handler",
    ".type stub_segv_handler, @function",
    ".set stub_segv_handler, um_rs_stub_segv_handler",
);

unsafe extern "C" {
    static um_rs_stub_start: u8;
    static um_rs_stub_end: u8;
    fn um_rs_stub_syscall_handler();
    fn um_rs_stub_segv_handler();
}

/// Where the stub code is in this image: its bytes, and the offsets of the
/// two handlers from their start.
#[derive(Clone, Copy, Debug)]
pub struct StubCode {
    pub start: usize,
    pub len: usize,
    pub syscall_handler: usize,
    pub segv_handler: usize,
}

/// The stub as linked into this image.
pub fn code() -> StubCode {
    let start = (&raw const um_rs_stub_start) as usize;
    StubCode {
        start,
        len: (&raw const um_rs_stub_end) as usize - start,
        syscall_handler: um_rs_stub_syscall_handler as *const () as usize - start,
        segv_handler: um_rs_stub_segv_handler as *const () as usize - start,
    }
}

impl StubCode {
    /// The stub's machine code.
    pub fn bytes(&self) -> &'static [u8] {
        // SAFETY: [start, start + len) is the stub's text, part of this image and never written.
        unsafe { core::slice::from_raw_parts(self.start as *const u8, self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_c_structures_on_x86_64() {
        assert_eq!(core::mem::size_of::<StubSyscall>(), 40);
        assert_eq!(STUB_SYSCALLS, 99);
        assert_eq!(SD_LEN, 24);
        assert_eq!(SD_CALLS, 32);
        assert_eq!(offset_of!(StubData, sigstack), 4096);
        assert_eq!(core::mem::size_of::<MmId>(), 24);
        assert_eq!(core::mem::size_of::<FaultInfo>(), 24);
        assert_eq!((UC_ERR, UC_TRAPNO, UC_CR2), (192, 200, 216));
    }

    #[test]
    fn stub_fits_its_page_and_has_both_handlers() {
        let c = code();
        assert!(c.len > 0 && c.len <= PAGE_SIZE, "{c:?}");
        assert!(c.syscall_handler < c.len && c.segv_handler < c.len);
        assert!(
            c.bytes().iter().filter(|&&b| b == 0xcc).count() >= 2,
            "int3 in both"
        );
    }
}
