// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/helper.c: helper programs and helper
//! threads (see [`crate::host::helper`]).

use core::ffi::c_int;

use crate::host::helper;
use crate::kernel::Level;
use crate::klog;

/// Waits for helper process `pid`: 0 when it exited with status 0,
/// -ECHILD when it ended otherwise, -errno when the wait failed.
#[cfg_attr(feature = "os-helper", unsafe(no_mangle))]
pub extern "C" fn helper_wait(pid: c_int) -> c_int {
    match helper::wait_helper(pid) {
        Err(e) => {
            klog!(
                Level::Err,
                "helper_wait : waitpid process {pid} failed, errno = {}",
                e as c_int
            );
            -(e as c_int)
        }
        Ok(ws) if !helper::exited_ok(&ws) => {
            klog!(
                Level::Err,
                "helper_wait : process {pid} exited with status {:#x}",
                helper::raw_status(&ws)
            );
            -libc::ECHILD
        }
        Ok(_) => 0,
    }
}

/// `UM_GFP_KERNEL` and `UM_GFP_ATOMIC` (asm-offsets; checked by the ABI guard).
pub const UM_GFP_KERNEL: c_int = 0xcc0;
pub const UM_GFP_ATOMIC: c_int = 0x820;

#[cfg(feature = "kernel")]
pub use kernel_side::*;

#[cfg(feature = "kernel")]
mod kernel_side {
    use core::ffi::{c_char, c_ulong, c_void};

    use super::*;
    use crate::host::helper::{HelperError, PreExec, ThreadFn};

    mod k {
        pub use crate::kernel::um::{
            __uml_cant_sleep, alloc_stack, free_stack, kfree, uml_kmalloc,
        };
    }

    /// Helper stacks are one page (`alloc_stack(0, ...)`), as in the C
    /// layer; the Rust child side is measured to fit (host::helper tests).
    const STACK_ORDER: c_int = 0;
    const STACK_SIZE: usize = 4096;

    /// A kernel stack for a helper, freed on drop unless handed over.
    struct KernelStack(c_ulong);

    impl KernelStack {
        fn alloc() -> Option<KernelStack> {
            // SAFETY: kernel allocator calls; atomic when the caller cannot sleep.
            let stack = unsafe { k::alloc_stack(STACK_ORDER, k::__uml_cant_sleep()) };
            (stack != 0).then_some(KernelStack(stack))
        }
        fn top(&self) -> *mut u8 {
            (self.0 as usize + STACK_SIZE) as *mut u8
        }
        /// Gives the stack to the caller (a helper thread that keeps running).
        fn into_raw(self) -> c_ulong {
            let s = self.0;
            core::mem::forget(self);
            s
        }
    }

    impl Drop for KernelStack {
        fn drop(&mut self) {
            // SAFETY: a stack from alloc_stack with the same order, no longer used.
            unsafe { k::free_stack(self.0, STACK_ORDER) };
        }
    }

    /// Starts helper program `argv[0]` (searched in `PATH`) after running
    /// `pre_exec(pre_data)` in the child: its pid, or -errno.
    ///
    /// # Safety
    ///
    /// `argv` is a NULL-terminated array of C strings with a non-NULL first
    /// element; `pre_exec` may run in a child sharing the kernel's memory.
    #[cfg_attr(feature = "os-helper", unsafe(no_mangle))]
    pub unsafe extern "C" fn run_helper(
        pre_exec: Option<PreExec>,
        pre_data: *mut c_void,
        argv: *mut *mut c_char,
    ) -> c_int {
        let Some(stack) = KernelStack::alloc() else {
            return -libc::ENOMEM;
        };
        // SAFETY: kernel allocator; PATH_MAX bytes, atomic when the caller cannot sleep.
        let buf = unsafe {
            let flags = if k::__uml_cant_sleep() != 0 {
                UM_GFP_ATOMIC
            } else {
                UM_GFP_KERNEL
            };
            k::uml_kmalloc(libc::PATH_MAX, flags)
        };
        // SAFETY: one page of stack; argv per our contract; buf is NULL or PATH_MAX bytes.
        let res = unsafe { helper::run_helper(stack.top(), pre_exec, pre_data, argv, buf.cast()) };
        // SAFETY: kfree accepts NULL and our kmalloc'd buffer; the child no longer uses it.
        unsafe { k::kfree(buf) };
        match res {
            Ok(pid) => pid,
            Err(e) => {
                report(e, argv);
                e.neg_errno()
            }
        }
    }

    #[cold]
    fn report(e: HelperError, argv: *mut *mut c_char) {
        let errno = -e.neg_errno();
        match e {
            HelperError::Socketpair(_) => {
                klog!(Level::Err, "run_helper : pipe failed, errno = {errno}")
            }
            HelperError::Cloexec(_) => {
                klog!(
                    Level::Err,
                    "run_helper : setting FD_CLOEXEC failed, ret = {errno}"
                )
            }
            HelperError::Clone(_) => {
                klog!(Level::Err, "run_helper : clone failed, errno = {errno}")
            }
            HelperError::Read(_) | HelperError::Exec(_) => {
                if let HelperError::Read(_) = e {
                    klog!(
                        Level::Err,
                        "run_helper : read on pipe failed, ret = {errno}"
                    );
                }
                // SAFETY: argv[0] is a C string by run_helper's contract.
                let name = unsafe { core::ffi::CStr::from_ptr(*argv) };
                klog!(
                    Level::Err,
                    "run_helper : failed to exec {} on host: {}",
                    name.to_string_lossy(),
                    crate::host::util::ErrnoMsg(errno)
                );
            }
        }
    }

    /// Starts helper thread `proc_(arg)` with clone `flags` on a one-page
    /// stack. With `stack_out`, returns the pid at once and hands the stack
    /// over; without, waits for the thread and frees the stack.
    ///
    /// # Safety
    ///
    /// `proc_` must be safe to run as a clone child with `flags` (no Rust
    /// thread-locals, no allocation when sharing memory); `stack_out` is NULL
    /// or writable.
    #[cfg_attr(feature = "os-helper", unsafe(no_mangle))]
    pub unsafe extern "C" fn run_helper_thread(
        proc_: ThreadFn,
        arg: *mut c_void,
        flags: core::ffi::c_uint,
        stack_out: *mut c_ulong,
    ) -> c_int {
        let Some(stack) = KernelStack::alloc() else {
            return -libc::ENOMEM;
        };
        let top = stack.top();
        // Without CLONE_VM the thread gets a copy of our memory, its stack
        // and `arg` included, which are kernel memory.
        let start = || {
            // SAFETY: a one-page stack the thread owns until we free it; proc_ per our contract.
            unsafe { helper::start_helper_thread(top, proc_, arg, flags as c_int) }
        };
        let started = if flags & libc::CLONE_VM as core::ffi::c_uint == 0 {
            crate::abi::process::with_kernel_memory_forked(start)
        } else {
            start()
        };
        let pid = match started {
            Ok(pid) => pid,
            Err(e) => {
                klog!(
                    Level::Err,
                    "run_helper_thread : clone failed, errno = {}",
                    e as c_int
                );
                return -(e as c_int);
            }
        };
        if !stack_out.is_null() {
            // SAFETY: writable by our contract.
            unsafe { *stack_out = stack.into_raw() };
            return pid;
        }
        match helper::wait_helper(pid) {
            Err(e) => {
                klog!(
                    Level::Err,
                    "run_helper_thread - wait failed, errno = {}",
                    e as c_int
                );
                -(e as c_int)
            }
            Ok(ws) => {
                if !helper::exited_ok(&ws) {
                    klog!(
                        Level::Err,
                        "run_helper_thread - thread returned status {:#x}",
                        helper::raw_status(&ws)
                    );
                }
                pid
            }
        }
    }
}
