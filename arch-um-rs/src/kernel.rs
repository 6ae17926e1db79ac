// SPDX-License-Identifier: GPL-2.0
//! The few kernel services the os layer uses, and the glue that makes Rust
//! safe inside the UML process.
//!
//! With the `kernel` feature (set by the kernel build) messages go to
//! `printk`, fatal errors to the kernel's `panic()`, and the Rust allocator to
//! the kernel's wrapped `malloc`/`free`. Without it (unit tests, host tools)
//! the same functions write to stderr and panic normally, so the safe core can
//! be exercised without a kernel.

use core::fmt::{self, Write};

/// printk log levels, as the two-byte `KERN_*` prefixes of the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Emerg,
    Err,
    Warning,
    Info,
}

impl Level {
    /// The kernel's `KERN_*` prefix: SOH followed by the level digit.
    pub const fn prefix(self) -> &'static [u8; 2] {
        match self {
            Level::Emerg => b"\x010",
            Level::Err => b"\x013",
            Level::Warning => b"\x014",
            Level::Info => b"\x016",
        }
    }
}

/// A fixed-size, heap-free formatting buffer for messages built on paths where
/// allocation is not allowed (early boot, small kernel stacks). Output that
/// does not fit is truncated, never an error.
pub struct StackBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackBuf<N> {
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The text written so far (truncation only happens at char boundaries).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("<invalid utf-8>")
    }
}

impl<const N: usize> Default for StackBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for StackBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Formats `args` into a 512-byte stack buffer.
pub fn stack_format(args: fmt::Arguments<'_>) -> StackBuf<512> {
    let mut buf = StackBuf::new();
    let _ = buf.write_fmt(args);
    buf
}

#[cfg(feature = "kernel")]
mod sys {
    use core::ffi::{c_char, c_int};

    unsafe extern "C" {
        pub fn _printk(fmt: *const c_char, ...) -> c_int;
        pub fn panic(fmt: *const c_char, ...) -> !;
        pub fn malloc(size: usize) -> *mut core::ffi::c_void;
        pub fn free(ptr: *mut core::ffi::c_void);
        /// `initial_thread_cb` (kern_util.h): runs `proc_(arg)` on UML's
        /// initial thread, with kmalloc disabled, and returns once it has.
        pub fn initial_thread_cb(
            proc_: unsafe extern "C" fn(*mut core::ffi::c_void),
            arg: *mut core::ffi::c_void,
        );
    }
}

/// The C functions of the x86 host code (`arch/x86/um/os-Linux/registers.c`
/// and `signal.c`) that the Rust layer calls. Outside the kernel, the FP
/// register calls are the host core's own, so `cargo test` runs the same
/// code paths without a kernel.
pub mod arch {
    use core::ffi::c_int;

    #[cfg(feature = "kernel")]
    mod sys {
        use core::ffi::{c_int, c_ulong};
        unsafe extern "C" {
            pub fn arch_init_registers(pid: c_int);
            pub fn get_fp_registers(pid: c_int, regs: *mut c_ulong) -> c_int;
            pub fn put_fp_registers(pid: c_int, regs: *mut c_ulong) -> c_int;
            pub fn set_handler(sig: c_int);
        }
    }

    /// Installs UML's host handler for `sig` (signal.c's `set_handler`).
    #[cfg(feature = "kernel")]
    pub fn set_handler(sig: c_int) {
        // SAFETY: set_handler only calls sigaction for `sig`.
        unsafe { sys::set_handler(sig) };
    }

    /// Probes which FP register interface the host offers (XSTATE or not),
    /// using the stopped child `pid`.
    pub fn init_registers(pid: c_int) {
        #[cfg(feature = "kernel")]
        // SAFETY: arch_init_registers only issues ptrace requests on `pid`.
        unsafe {
            sys::arch_init_registers(pid)
        };
        #[cfg(not(feature = "kernel"))]
        let _ = pid;
    }

    /// Reads the FP/XSTATE registers of `pid`: 0 or -errno.
    pub fn get_fp(pid: c_int, regs: &mut crate::host::ptrace::FpRegs) -> c_int {
        #[cfg(feature = "kernel")]
        // SAFETY: `regs` holds FP_SIZE words, the size the C function fills.
        return unsafe { sys::get_fp_registers(pid, regs.as_mut_ptr()) };
        #[cfg(not(feature = "kernel"))]
        match crate::host::ptrace::get_fp_regs(pid, regs) {
            Ok(()) => 0,
            Err(e) => -(e as c_int),
        }
    }

    /// Writes the FP/XSTATE registers of `pid`: 0 or -errno.
    pub fn put_fp(pid: c_int, regs: &crate::host::ptrace::FpRegs) -> c_int {
        #[cfg(feature = "kernel")]
        // SAFETY: `regs` holds FP_SIZE words; the C function only reads them.
        return unsafe { sys::put_fp_registers(pid, regs.as_ptr().cast_mut()) };
        #[cfg(not(feature = "kernel"))]
        match crate::host::ptrace::set_fp_regs(pid, regs) {
            Ok(()) => 0,
            Err(e) => -(e as c_int),
        }
    }
}

/// Symbols of the UML kernel proper that the skas code uses (kernel builds
/// only): variables, linker symbols and functions declared in
/// `kern_util.h`, `as-layout.h`, `skas.h`, `mem.h` and `os.h`.
#[cfg(feature = "kernel")]
pub mod um {
    use core::ffi::{c_char, c_int, c_ulong, c_ulonglong, c_void};

    unsafe extern "C" {
        /// `STUB_START`: where the stub pages sit in every user process.
        pub static stub_start: c_ulong;
        /// The start of the stub code page in the kernel image.
        pub static __syscall_stub_start: [u8; 0];
        /// The kernel image's offset in physical memory (`uml_to_phys`).
        pub static uml_physmem: c_ulong;
        pub fn phys_mapping(phys: c_ulong, offset_out: *mut c_ulonglong) -> c_int;
        pub fn fatal_sigsegv() -> !;
        pub fn get_safe_registers(regs: *mut c_ulong, fp_regs: *mut c_ulong);
        pub fn print_hex_dump(
            level: *const c_char,
            prefix_str: *const c_char,
            prefix_type: c_int,
            rowsize: c_int,
            groupsize: c_int,
            buf: *const c_void,
            len: usize,
            ascii: bool,
        );

        /// Non-zero once the kernel allocator is up.
        pub static mut kmalloc_ok: c_int;
        pub fn uml_kmalloc(size: c_int, flags: c_int) -> *mut c_void;
        pub fn kfree(ptr: *const c_void);
        pub fn vmalloc_noprof(size: c_ulong) -> *mut c_void;
        pub fn vfree(ptr: *const c_void);
        /// Kernel stacks of `PAGE_SIZE << order` bytes (helper threads).
        pub fn alloc_stack(order: c_int, atomic: c_int) -> c_ulong;
        pub fn free_stack(stack: c_ulong, order: c_int);
        pub fn __uml_cant_sleep() -> c_int;
        /// The soft interrupt flag with the irq-flags tracer told.
        pub fn block_signals_trace();
        pub fn unblock_signals_trace();
        pub fn um_trace_signals_on();
        pub fn um_trace_signals_off();
    }
}

/// Runs `f` on UML's initial thread with kmalloc disabled (in place outside
/// the kernel), for host library calls such as grantpt that must run there.
pub fn on_initial_thread(f: &mut dyn FnMut()) {
    #[cfg(feature = "kernel")]
    {
        use core::ffi::c_void;

        /// # Safety
        ///
        /// `arg` points to a live `&mut dyn FnMut()`.
        unsafe extern "C" fn trampoline(arg: *mut c_void) {
            // SAFETY: `arg` is the `&mut dyn FnMut()` passed below, live until initial_thread_cb returns.
            let f = unsafe { &mut *arg.cast::<&mut dyn FnMut()>() };
            f();
        }
        let mut f = f;
        // initial_thread_cb calls `trampoline(arg)` once and returns after it; its setjmp/longjmp
        // stay in its own C frames, after the trampoline has returned normally.
        // SAFETY: no Rust frame is jumped over or returned into twice; `f` outlives the call.
        unsafe { sys::initial_thread_cb(trampoline, (&raw mut f).cast()) };
    }
    #[cfg(not(feature = "kernel"))]
    f();
}

/// Logs one line at `level`: `printk` in the kernel, stderr elsewhere.
pub fn log(level: Level, msg: &str) {
    printk(level.prefix(), msg, true);
}

/// Starts a line at `level` that [`log_cont`] finishes (printk's
/// `KERN_CONT`), for "Checking ...OK" boot lines.
pub fn log_cont_start(level: Level, msg: &str) {
    printk(level.prefix(), msg, false);
}

/// Finishes a line begun by [`log_cont_start`].
pub fn log_cont(msg: &str) {
    printk(b"\x01c", msg, true);
}

fn printk(prefix: &[u8; 2], msg: &str, newline: bool) {
    #[cfg(feature = "kernel")]
    {
        let len = msg.len().min(i32::MAX as usize) as core::ffi::c_int;
        let fmt = if newline { c"%.2s%.*s\n" } else { c"%.2s%.*s" };
        // SAFETY: the format takes exactly these: a 2-byte prefix, a length, that many bytes.
        unsafe { sys::_printk(fmt.as_ptr(), prefix.as_ptr(), len, msg.as_ptr()) };
    }
    #[cfg(not(feature = "kernel"))]
    {
        let _ = prefix;
        write_stderr(msg.as_bytes());
        if newline {
            write_stderr(b"\n");
        }
    }
}

/// Prints a boot message on the host's stderr like the C layer's `os_info`
/// (silenced by `quiet`) or `os_warn`: early boot lines that the C layer
/// writes before the kernel console exists. The text is passed as it is, no
/// newline added.
pub fn os_message(warn: bool, msg: &str) {
    #[cfg(feature = "kernel")]
    {
        unsafe extern "C" {
            fn os_info(fmt: *const core::ffi::c_char, ...);
            fn os_warn(fmt: *const core::ffi::c_char, ...);
        }
        let len = msg.len().min(i32::MAX as usize) as core::ffi::c_int;
        // SAFETY: "%.*s" takes an int length and a pointer to that many bytes.
        unsafe {
            if warn {
                os_warn(c"%.*s".as_ptr(), len, msg.as_ptr());
            } else {
                os_info(c"%.*s".as_ptr(), len, msg.as_ptr());
            }
        }
    }
    #[cfg(not(feature = "kernel"))]
    {
        let _ = warn;
        write_stderr(msg.as_bytes());
    }
}

/// `os_info` with formatting, heap-free.
#[macro_export]
macro_rules! os_info {
    ($($arg:tt)*) => {
        $crate::kernel::os_message(false, $crate::kernel::stack_format(format_args!($($arg)*)).as_str())
    };
}

/// `os_warn` with formatting, heap-free.
#[macro_export]
macro_rules! os_warn {
    ($($arg:tt)*) => {
        $crate::kernel::os_message(true, $crate::kernel::stack_format(format_args!($($arg)*)).as_str())
    };
}

/// `log` with formatting, heap-free.
#[macro_export]
macro_rules! klog {
    ($level:expr, $($arg:tt)*) => {
        $crate::kernel::log($level, $crate::kernel::stack_format(format_args!($($arg)*)).as_str())
    };
}

/// Writes raw bytes to the host's stderr, retrying on EINTR and short writes.
/// Async-signal-safe: one `write(2)` loop, no allocation, no locks.
pub fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe a live, readable slice.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Stops the kernel with `msg`: the kernel's `panic()` inside UML, a Rust
/// panic in tests.
pub fn fatal(msg: &str) -> ! {
    #[cfg(feature = "kernel")]
    {
        let len = msg.len().min(i32::MAX as usize) as core::ffi::c_int;
        // SAFETY: "%.*s" takes an int length and a pointer to that many bytes; panic() never returns.
        unsafe { sys::panic(c"%.*s".as_ptr(), len, msg.as_ptr()) }
    }
    #[cfg(not(feature = "kernel"))]
    panic!("{msg}")
}

/// Section registrations read by the UML startup code (`init.h`): command
/// line options, their help text, exit calls and early host initcalls.
///
/// Each entry is a `#[used]` static in the section the C macros use, so the
/// whole-archive link keeps it and UML's linker script collects it.
pub mod sections {
    use core::ffi::{c_char, c_int};

    /// `struct uml_param` from `init.h`.
    #[repr(C)]
    pub struct UmlParam {
        pub str: *const c_char,
        pub setup_func: unsafe extern "C" fn(*mut c_char, *mut c_int) -> c_int,
    }
    // SAFETY: the table is immutable and only read by the boot code.
    unsafe impl Sync for UmlParam {}

    /// A pointer to a NUL-terminated help string (`__uml_help`).
    #[repr(transparent)]
    pub struct HelpStr(pub *const c_char);
    // SAFETY: points at immutable static data.
    unsafe impl Sync for HelpStr {}

    /// `exitcall_t` and `initcall_t`.
    pub type ExitCall = unsafe extern "C" fn();
    pub type InitCall = unsafe extern "C" fn() -> c_int;
}

/// Registers a UML command-line option, like C's `__uml_setup(str, fn, help)`.
/// `$name` must be a unique identifier; `$str` and `$help` are C string
/// literals. Only emitted with the feature `$feature` (the file being
/// migrated), so the C and Rust registrations never both exist.
#[macro_export]
macro_rules! uml_setup {
    ($feature:literal, $name:ident, $str:expr, $func:path, $help:expr) => {
        #[cfg(feature = $feature)]
        #[allow(non_upper_case_globals)]
        const _: () = {
            #[used]
            #[unsafe(link_section = ".uml.setup.init")]
            static $name: $crate::kernel::sections::UmlParam = $crate::kernel::sections::UmlParam {
                str: $str.as_ptr(),
                setup_func: $func,
            };
            #[used]
            #[unsafe(link_section = ".uml.help.init")]
            static HELP: $crate::kernel::sections::HelpStr =
                $crate::kernel::sections::HelpStr($help.as_ptr());
        };
    };
}

/// Registers an exit call, like C's `__uml_exitcall(fn)`.
#[macro_export]
macro_rules! uml_exitcall {
    ($feature:literal, $func:path) => {
        #[cfg(feature = $feature)]
        const _: () = {
            #[used]
            #[unsafe(link_section = ".uml.exitcall.exit")]
            static EXIT: $crate::kernel::sections::ExitCall = $func;
        };
    };
}

/// Registers a host-side initcall, like C's `__initcall(fn)` in os-Linux
/// (section `.initcall1.init`: run before the kernel's own initcalls).
#[macro_export]
macro_rules! uml_initcall {
    ($feature:literal, $func:path) => {
        #[cfg(feature = $feature)]
        const _: () = {
            #[used]
            #[unsafe(link_section = ".initcall1.init")]
            static INIT: $crate::kernel::sections::InitCall = $func;
        };
    };
}

/// The Rust global allocator inside the kernel.
///
/// The kernel is linked with `--wrap=malloc,free,calloc`, so these `malloc`
/// and `free` calls reach the kernel's wrappers (host malloc before the kernel
/// allocator is up, kmalloc/vmalloc after). `realloc` is *not* wrapped, so it
/// is never called: growing is allocate + copy + free. The wrappers only
/// guarantee 8-byte alignment, so larger alignments over-allocate and keep the
/// original pointer just below the aligned block.
#[cfg(feature = "kernel")]
mod allocator {
    use core::alloc::{GlobalAlloc, Layout};
    use core::ffi::c_void;

    const MALLOC_ALIGN: usize = 8;
    const HEADER: usize = core::mem::size_of::<*mut c_void>();

    pub struct KernelMalloc;

    // SAFETY: alloc returns blocks of at least `layout.size()` bytes aligned
    // to `layout.align()`, and dealloc frees exactly what alloc returned.
    unsafe impl GlobalAlloc for KernelMalloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if layout.align() <= MALLOC_ALIGN {
                // SAFETY: plain malloc of a non-zero size (GlobalAlloc callers never ask for zero bytes).
                return unsafe { super::sys::malloc(layout.size()) }.cast();
            }
            let Some(total) = layout.size().checked_add(layout.align() + HEADER) else {
                return core::ptr::null_mut();
            };
            // SAFETY: plain malloc.
            let raw = unsafe { super::sys::malloc(total) }.cast::<u8>();
            if raw.is_null() {
                return raw;
            }
            let start = raw as usize + HEADER;
            let aligned = (start + layout.align() - 1) & !(layout.align() - 1);
            // `aligned - HEADER >= raw` and `aligned + size <= raw + total`; `aligned` is aligned to
            // more than 8, so the header slot below it is pointer-aligned.
            // SAFETY: the header slot and the block both lie inside the allocation.
            unsafe { *((aligned - HEADER) as *mut *mut u8) = raw };
            aligned as *mut u8
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if layout.align() <= MALLOC_ALIGN {
                // SAFETY: `ptr` came from malloc in `alloc`.
                unsafe { super::sys::free(ptr.cast()) };
                return;
            }
            // SAFETY: `alloc` stored the malloc pointer just below `ptr`.
            let raw = unsafe { *((ptr as usize - HEADER) as *const *mut u8) };
            // SAFETY: `raw` came from malloc in `alloc`.
            unsafe { super::sys::free(raw.cast()) };
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: GlobalAlloc::realloc's caller guarantees `new_size` is valid for this alignment.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            // SAFETY: forwarded to our own alloc.
            let new = unsafe { self.alloc(new_layout) };
            if !new.is_null() {
                // SAFETY: both blocks are live, at least min(old, new) bytes, and distinct (no overlap).
                unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
                // SAFETY: `ptr` was allocated by us with `layout`.
                unsafe { self.dealloc(ptr, layout) };
            }
            new
        }
    }

    #[global_allocator]
    static GLOBAL: KernelMalloc = KernelMalloc;
}

/// Routes a Rust panic to the kernel's `panic()` with its message and
/// location, instead of std's print-and-abort. Installed before `main` by an
/// `.init_array` constructor, while malloc is still the host's.
#[cfg(feature = "kernel")]
mod panic_hook {
    extern "C" fn install() {
        std::panic::set_hook(Box::new(|info| {
            let mut msg = super::StackBuf::<256>::new();
            let _ = core::fmt::Write::write_fmt(&mut msg, format_args!("arch-um-rs: {info}"));
            super::fatal(msg.as_str());
        }));
    }

    #[used]
    #[unsafe(link_section = ".init_array")]
    static INSTALL: extern "C" fn() = install;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_buf_truncates_at_char_boundary() {
        let mut b = StackBuf::<5>::new();
        let _ = write!(b, "ab\u{e9}\u{e9}");
        assert_eq!(b.as_str(), "ab\u{e9}");
    }

    #[test]
    fn level_prefixes_match_kern_levels() {
        assert_eq!(Level::Err.prefix(), b"\x013");
        assert_eq!(Level::Info.prefix(), b"\x016");
    }
}
