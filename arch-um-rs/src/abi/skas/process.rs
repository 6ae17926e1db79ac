// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/skas/process.c: creating user
//! processes, the trap loop that runs them (`userspace`), and switching
//! between kernel threads.
//!
//! Thread switching is built on the kernel's own `kernel_setjmp` and
//! `kernel_longjmp`. Calling a returns-twice function from Rust is
//! undefined behaviour, so every function that calls `kernel_setjmp` is a
//! few lines of assembly (`switch_threads`, `start_idle_thread`,
//! `initial_thread_cb_skas`); the Rust functions they call return exactly
//! once, and `kernel_longjmp` only ever leaves assembly frames or Rust
//! frames that own nothing.

use core::ffi::{c_int, c_ulong, c_void};

use crate::abi::layout::JmpBuf;
use crate::host::skas;
use crate::kernel::Level;
use crate::klog;
use crate::stub::MmId;

/// `NR_CPUS` of a UML kernel (no SMP in 6.12).
pub const NR_CPUS: usize = 1;

/// `userspace_pid[]`: the host process of the address space each CPU runs.
#[cfg(feature = "os-skas-process")]
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
pub static mut userspace_pid: [c_int; NR_CPUS] = [0; NR_CPUS];

#[cfg(not(feature = "os-skas-process"))]
#[allow(non_upper_case_globals)]
static mut userspace_pid: [c_int; NR_CPUS] = [0; NR_CPUS];

#[cfg_attr(not(feature = "kernel"), allow(dead_code))]
pub(super) fn current_pid() -> c_int {
    // SAFETY: one kernel thread runs at a time; the value is a plain int.
    unsafe { (&raw const userspace_pid).cast::<c_int>().read_volatile() }
}

/// Whether a SIGWINCH for `pid` belongs to the kernel's own terminal.
#[cfg_attr(feature = "os-skas-process", unsafe(no_mangle))]
pub extern "C" fn is_skas_winch(pid: c_int, _fd: c_int, _data: *mut c_void) -> c_int {
    // SAFETY: getpgrp has no preconditions.
    c_int::from(pid == unsafe { libc::getpgrp() })
}

/// Waits for the stub in `pid` to trap; kills the current guest process
/// if it does not.
#[cfg_attr(feature = "os-skas-process", unsafe(no_mangle))]
pub extern "C" fn wait_stub_done(pid: c_int) {
    if let Err(e) = skas::wait_stub_done(pid) {
        super::stub_failed("wait_stub_done", pid, e);
    }
}

/// Sets `__switch_mm`: the address space the next `userspace` loop runs.
///
/// # Safety
///
/// `mm_idp` points to a live `mm_id`.
#[cfg_attr(feature = "os-skas-process", unsafe(no_mangle))]
pub unsafe extern "C" fn __switch_mm(mm_idp: *mut MmId) {
    // SAFETY: the caller passes a live mm_id; one kernel thread runs at a time.
    unsafe {
        (&raw mut userspace_pid)
            .cast::<c_int>()
            .write_volatile((*mm_idp).pid)
    };
}

/// Points a fresh thread's jump buffer at `handler`, on the top of the
/// kernel stack `stack`.
///
/// # Safety
///
/// `buf` is a writable `jmp_buf`; `stack` is a kernel stack of
/// `UM_THREAD_SIZE` bytes.
#[cfg_attr(feature = "os-skas-process", unsafe(no_mangle))]
pub unsafe extern "C" fn new_thread(
    stack: *mut c_void,
    buf: *mut JmpBuf,
    handler: extern "C" fn(),
) {
    // SAFETY: per the contract.
    unsafe {
        (*buf).rip = handler as usize as c_ulong;
        (*buf).rsp = (stack as usize + crate::abi::layout::UM_THREAD_SIZE
            - core::mem::size_of::<usize>()) as c_ulong;
    }
}

#[cfg(feature = "kernel")]
#[path = "userspace.rs"]
mod userspace_loop;
#[cfg(feature = "kernel")]
use userspace_loop::kernel_side;
#[cfg(feature = "kernel")]
pub use userspace_loop::{start_userspace, userspace};

// ---- thread switching --------------------------------------------------

const INIT_JMP_CALLBACK: c_int = 1;
const INIT_JMP_HALT: c_int = 2;
const INIT_JMP_REBOOT: c_int = 3;

/// Where `start_idle_thread` waits for halt, reboot and callbacks.
#[cfg_attr(feature = "os-skas-process", unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
#[cfg_attr(not(feature = "kernel"), allow(dead_code))]
static mut um_rs_initial_jmpbuf: JmpBuf = JmpBuf::ZERO;

/// The pending `initial_thread_cb_skas` call, run on the initial thread.
struct Callback {
    proc_: Option<unsafe extern "C" fn(*mut c_void)>,
    arg: *mut c_void,
    back: *mut JmpBuf,
}

static CALLBACK: crate::host::util::HostCell<Callback> =
    crate::host::util::HostCell::new(Callback {
        proc_: None,
        arg: core::ptr::null_mut(),
        back: core::ptr::null_mut(),
    });

// SAFETY: the pointers are only used on the one kernel thread (see HostCell).
unsafe impl Send for Callback {}

/// Records the callback `initial_thread_cb_skas` asks for.
#[cfg_attr(not(feature = "os-skas-process"), allow(dead_code))]
#[cfg_attr(feature = "os-skas-process", unsafe(no_mangle))]
extern "C" fn um_rs_callback_set(
    proc_: Option<unsafe extern "C" fn(*mut c_void)>,
    arg: *mut c_void,
    back: *mut JmpBuf,
) {
    // SAFETY: one kernel thread, signals blocked around the callback switch.
    unsafe {
        CALLBACK.with(|c| {
            *c = Callback { proc_, arg, back };
        })
    };
}

/// Decides what `start_idle_thread` does after its `kernel_setjmp`
/// returned `n`: 0 or a `jmp_buf` to jump to (with value 1), -1 to return
/// 0 (halt), -2 to return 1 (reboot). Runs the callback for
/// `INIT_JMP_CALLBACK`. Returns exactly once.
#[cfg_attr(not(feature = "os-skas-process"), allow(dead_code))]
#[cfg_attr(feature = "os-skas-process", unsafe(no_mangle))]
extern "C" fn um_rs_idle_step(n: c_int, stack: *mut c_void, switch_buf: *mut JmpBuf) -> isize {
    match n {
        0 => {
            #[cfg(feature = "kernel")]
            // SAFETY: switch_buf is the idle thread's jump buffer, the stack its kernel stack.
            unsafe {
                (*switch_buf).rip = kernel_side::uml_finishsetup as *const () as usize as c_ulong;
                (*switch_buf).rsp = (stack as usize + crate::abi::layout::UM_THREAD_SIZE
                    - core::mem::size_of::<usize>()) as c_ulong;
            }
            let _ = stack;
            switch_buf as isize
        }
        INIT_JMP_CALLBACK => {
            // SAFETY: set by initial_thread_cb_skas just before it jumped here.
            let (proc_, arg, back) = unsafe { CALLBACK.with(|c| (c.proc_, c.arg, c.back)) };
            if let Some(f) = proc_ {
                // SAFETY: the kernel's callback with its argument.
                unsafe { f(arg) };
            }
            back as isize
        }
        INIT_JMP_HALT | INIT_JMP_REBOOT => {
            #[cfg(feature = "kernel")]
            // SAFETY: a plain int of the kernel, on the one kernel thread.
            unsafe {
                (&raw mut kernel_side::kmalloc_ok).write(0)
            };
            if n == INIT_JMP_HALT { -1 } else { -2 }
        }
        _ => {
            klog!(
                Level::Err,
                "Bad sigsetjmp return in start_idle_thread - {n}"
            );
            super::fatal_sigsegv()
        }
    }
}

static NOREBOOT: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

#[cfg_attr(not(feature = "os-skas-process"), allow(dead_code))]
unsafe extern "C" fn noreboot_cmd_param(_str: *mut core::ffi::c_char, _add: *mut c_int) -> c_int {
    NOREBOOT.store(true, core::sync::atomic::Ordering::Relaxed);
    0
}

crate::uml_setup!(
    "os-skas-process",
    UML_SETUP_NOREBOOT,
    c"noreboot",
    noreboot_cmd_param,
    c"noreboot\n    Rather than rebooting, exit always, akin to QEMU's -no-reboot option.\n    This is useful if you're using CONFIG_PANIC_TIMEOUT in order to catch\n    crashes in CI\n"
);

/// Leaves the kernel: back to `start_idle_thread`, which returns 0.
#[cfg(feature = "kernel")]
#[cfg_attr(feature = "os-skas-process", unsafe(no_mangle))]
pub extern "C" fn halt_skas() -> ! {
    // SAFETY: blocks signals, then jumps to the initial thread's buffer, set once it started; this frame owns nothing.
    unsafe {
        kernel_side::block_signals_trace();
        kernel_side::kernel_longjmp(&raw mut um_rs_initial_jmpbuf, INIT_JMP_HALT)
    }
}

/// Leaves the kernel for a reboot (or a halt with `noreboot`).
#[cfg(feature = "kernel")]
#[cfg_attr(feature = "os-skas-process", unsafe(no_mangle))]
pub extern "C" fn reboot_skas() -> ! {
    let how = if NOREBOOT.load(core::sync::atomic::Ordering::Relaxed) {
        INIT_JMP_HALT
    } else {
        INIT_JMP_REBOOT
    };
    // SAFETY: as in halt_skas.
    unsafe {
        kernel_side::block_signals_trace();
        kernel_side::kernel_longjmp(&raw mut um_rs_initial_jmpbuf, how)
    }
}

// The functions that call kernel_setjmp. Each keeps what it needs after
// the second return in callee-saved registers, which kernel_longjmp
// restores to their values at the setjmp.
#[cfg(all(feature = "kernel", feature = "os-skas-process"))]
core::arch::global_asm!(
    ".text",
    // void switch_threads(jmp_buf *me, jmp_buf *you): UML_SETJMP(me), and
    // on the first return UML_LONGJMP(you, 1); on the second return,
    // restore the signal state saved before the setjmp.
    ".globl switch_threads",
    ".type switch_threads, @function",
    "switch_threads:",
    "push rbx",
    "push r12",
    "sub rsp, 8",
    "mov rbx, rsi",
    "mov r12d, dword ptr [rip + signals_enabled]",
    "call kernel_setjmp",
    "test eax, eax",
    "jnz 2f",
    "mov rdi, rbx",
    "mov esi, 1",
    "call kernel_longjmp",
    "2:",
    "mov edi, r12d",
    "call um_set_signals_trace",
    "add rsp, 8",
    "pop r12",
    "pop rbx",
    "ret",
    ".size switch_threads, . - switch_threads",
    // int start_idle_thread(void *stack, jmp_buf *switch_buf)
    ".globl start_idle_thread",
    ".type start_idle_thread, @function",
    "start_idle_thread:",
    "push rbx",
    "push r12",
    "sub rsp, 8",
    "mov rbx, rdi",
    "mov r12, rsi",
    "mov edi, {sigwinch}",
    "call set_handler",
    "lea rdi, [rip + um_rs_initial_jmpbuf]",
    "call kernel_setjmp",
    "mov edi, eax",
    "mov rsi, rbx",
    "mov rdx, r12",
    "call um_rs_idle_step",
    "cmp rax, -1",
    "je 3f",
    "cmp rax, -2",
    "je 4f",
    "mov rdi, rax",
    "mov esi, 1",
    "call kernel_longjmp",
    "3:",
    "xor eax, eax",
    "jmp 5f",
    "4:",
    "mov eax, 1",
    "5:",
    "add rsp, 8",
    "pop r12",
    "pop rbx",
    "ret",
    ".size start_idle_thread, . - start_idle_thread",
    // void initial_thread_cb_skas(void (*proc)(void *), void *arg)
    ".globl initial_thread_cb_skas",
    ".type initial_thread_cb_skas, @function",
    "initial_thread_cb_skas:",
    "push rbx",
    "push r12",
    "sub rsp, 72", // the jmp_buf `here` (64 bytes) + alignment
    "mov rdx, rsp",
    "call um_rs_callback_set",
    "call block_signals_trace",
    "mov r12d, dword ptr [rip + signals_enabled]",
    "mov rdi, rsp",
    "call kernel_setjmp",
    "test eax, eax",
    "jnz 6f",
    "lea rdi, [rip + um_rs_initial_jmpbuf]",
    "mov esi, {callback}",
    "call kernel_longjmp",
    "6:",
    "mov edi, r12d",
    "call um_set_signals_trace",
    "call unblock_signals_trace",
    "xor edi, edi",
    "xor esi, esi",
    "xor edx, edx",
    "call um_rs_callback_set",
    "add rsp, 72",
    "pop r12",
    "pop rbx",
    "ret",
    ".size initial_thread_cb_skas, . - initial_thread_cb_skas",
    sigwinch = const libc::SIGWINCH,
    callback = const INIT_JMP_CALLBACK,
);
