// SPDX-License-Identifier: GPL-2.0
//! The register images of the `fp_state` case, the `asm!` blocks that load
//! them, let one event happen and store the registers back, and the signal
//! handlers that clobber every vector register.
//!
//! Inside one block the compiler cannot move, spill or reload a vector
//! register, so what is stored at the end is what the thread held when the
//! kernel resumed it.

use std::arch::{asm, global_asm};
use std::fmt;
use std::sync::atomic::AtomicU32;

/// MXCSR after reset: all exceptions masked, round to nearest.
pub const MXCSR_DEFAULT: u32 = 0x1F80;
/// Flush-to-zero and denormals-are-zero on top of the default.
pub const MXCSR_FTZ_DAZ: u32 = 0x9FC0;
/// Round toward zero on top of the default.
pub const MXCSR_RZ: u32 = 0x7F80;
/// What the signal handlers load: FTZ, DAZ, round toward zero.
const MXCSR_GARBAGE: u32 = 0xFFC0;

/// A register image: 16 vector registers of 32 bytes (xmm uses the low 16),
/// MXCSR, and the MXCSR the block found on entry and puts back on exit. The
/// `asm!` templates use these offsets literally.
#[repr(C, align(32))]
#[derive(Clone, Copy)]
pub struct Regs {
    pub v: [[u64; 4]; 16],
    pub mxcsr: u32,
    saved_mxcsr: u32,
}

const _: () = assert!(std::mem::offset_of!(Regs, mxcsr) == 512);
const _: () = assert!(std::mem::offset_of!(Regs, saved_mxcsr) == 516);

/// Marks the top byte of every pattern word, so that a stray value can be
/// traced back to the sub-check, thread and round it was loaded for.
const MAGIC: u64 = 0xF5;
/// The sub-check number of the handlers' garbage.
const ID_GARBAGE: u8 = 0x6E;
/// Added to the sub-check number of the ymm variant.
const ID_AVX: u8 = 0x80;

/// Numbers of the sub-checks in the patterns (indexes of [`NAMES`]).
pub const ID_THREADS: u8 = 1;
pub const ID_PREEMPT: u8 = 2;
pub const ID_FAULTS: u8 = 3;
pub const ID_SIGNAL: u8 = 4;
pub const ID_ITIMER: u8 = 5;
pub const ID_FORK: u8 = 6;
pub const ID_PINGPONG: u8 = 7;
pub const ID_PTRACE: u8 = 8;

/// Names of the sub-checks by number, for messages.
pub const NAMES: [&str; 9] = [
    "",
    "threads",
    "preempt",
    "page faults",
    "signal",
    "itimer",
    "fork",
    "ping-pong",
    "ptrace",
];

/// One word of a pattern: magic, sub-check, thread, round, register, word.
const fn pattern_word(id: u8, thread: u8, round: u32, reg: usize, w: usize) -> u64 {
    (MAGIC << 56)
        | ((id as u64) << 48)
        | ((thread as u64) << 40)
        | (((round & 0xFF_FFFF) as u64) << 16)
        | ((reg as u64 & 0xFF) << 8)
        | (0xA0 | w as u64)
}

const fn fill(id: u8, thread: u8, round: u32, mxcsr: u32) -> Regs {
    let mut v = [[0u64; 4]; 16];
    let mut r = 0;
    while r < 16 {
        let mut w = 0;
        while w < 4 {
            v[r][w] = pattern_word(id, thread, round, r, w);
            w += 1;
        }
        r += 1;
    }
    Regs {
        v,
        mxcsr,
        saved_mxcsr: 0,
    }
}

/// What the signal handlers (and the tracer's PTRACE_SETFPREGS) load.
pub static GARBAGE: Regs = fill(ID_GARBAGE, 0xEE, 0xEE_EEEE, MXCSR_GARBAGE);

/// How many times a clobbering handler ran.
pub static HANDLED: AtomicU32 = AtomicU32::new(0);

impl Regs {
    pub const fn zeroed() -> Regs {
        Regs {
            v: [[0; 4]; 16],
            mxcsr: 0,
            saved_mxcsr: 0,
        }
    }

    /// The values of sub-check `id` (an index of [`NAMES`]) for `thread` in
    /// `round`, in the width `w`.
    pub fn pattern(id: u8, w: Width, thread: u8, round: u32, mxcsr: u32) -> Regs {
        let id = match w {
            Width::Sse => id,
            Width::Avx(_) => id | ID_AVX,
        };
        fill(id, thread, round, mxcsr)
    }

    /// Whether the registers of width `w` and MXCSR are as in `exp`
    /// (without allocating, for a child after a raw fork).
    pub fn same(&self, exp: &Regs, w: Width) -> bool {
        let n = w.words();
        self.mxcsr == exp.mxcsr && (0..16).all(|r| self.v[r][..n] == exp.v[r][..n])
    }

    /// The first difference in the registers of width `w` and MXCSR, as
    /// "xmm3 word 1: 0x..., expected 0x... (...)".
    pub fn diff(&self, exp: &Regs, w: Width) -> Option<String> {
        for r in 0..16 {
            for i in 0..w.words() {
                let (g, e) = (self.v[r][i], exp.v[r][i]);
                if g != e {
                    return Some(format!(
                        "{}{r} word {i}: {g:#018x}, expected {e:#018x}{}",
                        w.reg(),
                        describe(g)
                    ));
                }
            }
        }
        if self.mxcsr != exp.mxcsr {
            let what = if self.mxcsr == MXCSR_GARBAGE {
                " (the handler's)"
            } else {
                ""
            };
            return Some(format!(
                "mxcsr: {:#06x}, expected {:#06x}{what}",
                self.mxcsr, exp.mxcsr
            ));
        }
        None
    }
}

/// What a stray value was loaded for, if it is one of the case's patterns.
fn describe(v: u64) -> String {
    if v == 0 {
        return " (zero)".into();
    }
    if v >> 56 != MAGIC {
        return String::new();
    }
    let id = (v >> 48) as u8;
    let thread = (v >> 40) as u8;
    let round = (v >> 16) & 0xFF_FFFF;
    let (reg, word) = ((v >> 8) & 0xFF, v & 0xF);
    if id == ID_GARBAGE {
        return format!(" (the garbage of a signal handler or tracer, register {reg} word {word})");
    }
    let width = if id & ID_AVX != 0 { "AVX" } else { "SSE" };
    let id = id & !ID_AVX;
    let who = match (id, thread) {
        (ID_FORK | ID_PINGPONG, 0) => "parent".to_string(),
        (ID_FORK | ID_PINGPONG, _) => "child".to_string(),
        (ID_PTRACE, _) => "the tracer".to_string(),
        (_, t) => format!("thread {t}"),
    };
    match NAMES.get(id as usize) {
        Some(name) if !name.is_empty() => format!(
            " (loaded by {name} ({width}) {who}, round {round}, for register {reg} word {word})"
        ),
        _ => String::new(),
    }
}

/// Proof that the CPU (and the kernel) support AVX.
#[derive(Clone, Copy)]
pub struct AvxOk(());

impl AvxOk {
    pub fn detect() -> Option<AvxOk> {
        std::arch::is_x86_feature_detected!("avx").then_some(AvxOk(()))
    }
}

/// Which registers a block loads: xmm0..15 or ymm0..15.
#[derive(Clone, Copy)]
pub enum Width {
    Sse,
    Avx(AvxOk),
}

impl Width {
    /// 64-bit words compared per register.
    pub fn words(self) -> usize {
        match self {
            Width::Sse => 2,
            Width::Avx(_) => 4,
        }
    }

    fn reg(self) -> &'static str {
        match self {
            Width::Sse => "xmm",
            Width::Avx(_) => "ymm",
        }
    }
}

impl fmt::Display for Width {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Width::Sse => "SSE",
            Width::Avx(_) => "AVX",
        })
    }
}

/// An `asm!` block that saves the caller's MXCSR, loads MXCSR and
/// xmm0..xmm15 from `{i}`, runs the body, stores xmm0..xmm15 and MXCSR to
/// `{o}` and puts the caller's MXCSR back. The operands after the `;`
/// (each followed by a comma) are the body's.
macro_rules! sse_block {
    ($inp:expr, $out:expr; [$($body:literal),*]; $($ops:tt)*) => {
        asm!(
            "stmxcsr [{o} + 516]",
            "ldmxcsr [{i} + 512]",
            "movdqu xmm0, [{i}]",
            "movdqu xmm1, [{i} + 32]",
            "movdqu xmm2, [{i} + 64]",
            "movdqu xmm3, [{i} + 96]",
            "movdqu xmm4, [{i} + 128]",
            "movdqu xmm5, [{i} + 160]",
            "movdqu xmm6, [{i} + 192]",
            "movdqu xmm7, [{i} + 224]",
            "movdqu xmm8, [{i} + 256]",
            "movdqu xmm9, [{i} + 288]",
            "movdqu xmm10, [{i} + 320]",
            "movdqu xmm11, [{i} + 352]",
            "movdqu xmm12, [{i} + 384]",
            "movdqu xmm13, [{i} + 416]",
            "movdqu xmm14, [{i} + 448]",
            "movdqu xmm15, [{i} + 480]",
            $($body,)*
            "movdqu [{o}], xmm0",
            "movdqu [{o} + 32], xmm1",
            "movdqu [{o} + 64], xmm2",
            "movdqu [{o} + 96], xmm3",
            "movdqu [{o} + 128], xmm4",
            "movdqu [{o} + 160], xmm5",
            "movdqu [{o} + 192], xmm6",
            "movdqu [{o} + 224], xmm7",
            "movdqu [{o} + 256], xmm8",
            "movdqu [{o} + 288], xmm9",
            "movdqu [{o} + 320], xmm10",
            "movdqu [{o} + 352], xmm11",
            "movdqu [{o} + 384], xmm12",
            "movdqu [{o} + 416], xmm13",
            "movdqu [{o} + 448], xmm14",
            "movdqu [{o} + 480], xmm15",
            "stmxcsr [{o} + 512]",
            "ldmxcsr [{o} + 516]",
            i = in(reg) $inp as *const Regs,
            o = in(reg) $out as *mut Regs,
            $($ops)*
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            options(nostack),
        )
    };
}

/// [`sse_block`] with ymm0..ymm15; only in functions compiled with AVX.
macro_rules! avx_block {
    ($inp:expr, $out:expr; [$($body:literal),*]; $($ops:tt)*) => {
        asm!(
            "stmxcsr [{o} + 516]",
            "ldmxcsr [{i} + 512]",
            "vmovdqu ymm0, [{i}]",
            "vmovdqu ymm1, [{i} + 32]",
            "vmovdqu ymm2, [{i} + 64]",
            "vmovdqu ymm3, [{i} + 96]",
            "vmovdqu ymm4, [{i} + 128]",
            "vmovdqu ymm5, [{i} + 160]",
            "vmovdqu ymm6, [{i} + 192]",
            "vmovdqu ymm7, [{i} + 224]",
            "vmovdqu ymm8, [{i} + 256]",
            "vmovdqu ymm9, [{i} + 288]",
            "vmovdqu ymm10, [{i} + 320]",
            "vmovdqu ymm11, [{i} + 352]",
            "vmovdqu ymm12, [{i} + 384]",
            "vmovdqu ymm13, [{i} + 416]",
            "vmovdqu ymm14, [{i} + 448]",
            "vmovdqu ymm15, [{i} + 480]",
            $($body,)*
            "vmovdqu [{o}], ymm0",
            "vmovdqu [{o} + 32], ymm1",
            "vmovdqu [{o} + 64], ymm2",
            "vmovdqu [{o} + 96], ymm3",
            "vmovdqu [{o} + 128], ymm4",
            "vmovdqu [{o} + 160], ymm5",
            "vmovdqu [{o} + 192], ymm6",
            "vmovdqu [{o} + 224], ymm7",
            "vmovdqu [{o} + 256], ymm8",
            "vmovdqu [{o} + 288], ymm9",
            "vmovdqu [{o} + 320], ymm10",
            "vmovdqu [{o} + 352], ymm11",
            "vmovdqu [{o} + 384], ymm12",
            "vmovdqu [{o} + 416], ymm13",
            "vmovdqu [{o} + 448], ymm14",
            "vmovdqu [{o} + 480], ymm15",
            "stmxcsr [{o} + 512]",
            "ldmxcsr [{o} + 516]",
            "vzeroupper",
            i = in(reg) $inp as *const Regs,
            o = in(reg) $out as *mut Regs,
            $($ops)*
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
            out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
            out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack),
        )
    };
}

// The body operands: rcx and r11 are `out`, not `lateout`, so that neither
// can hold `{i}` or `{o}` (the syscall instruction overwrites both).

/// # Safety
///
/// The system call must be sound to make here, as with `libc::syscall`.
unsafe fn sse_syscall(inp: &Regs, out: &mut Regs, nr: libc::c_long, a: [usize; 4]) -> isize {
    let ret: isize;
    // SAFETY: the block reads `inp`, writes `out`, restores MXCSR and declares every other register it changes; the system call itself is the caller's promise.
    unsafe {
        sse_block!(inp, out; ["syscall"];
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2], in("r10") a[3],
            out("rcx") _, out("r11") _,
        );
    }
    ret
}

/// # Safety
///
/// As [`sse_syscall`], and the CPU supports AVX.
#[target_feature(enable = "avx")]
unsafe fn avx_syscall(inp: &Regs, out: &mut Regs, nr: libc::c_long, a: [usize; 4]) -> isize {
    let ret: isize;
    // SAFETY: as in sse_syscall.
    unsafe {
        avx_block!(inp, out; ["syscall"];
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2], in("r10") a[3],
            out("rcx") _, out("r11") _,
        );
    }
    ret
}

/// Loads `inp`, makes system call `nr` with arguments `a` from inside the
/// block, stores the registers to `out`; returns the raw result (-errno on
/// failure).
///
/// # Safety
///
/// The system call must be sound to make here, as with `libc::syscall`.
pub unsafe fn syscall(
    w: Width,
    inp: &Regs,
    out: &mut Regs,
    nr: libc::c_long,
    a: [usize; 4],
) -> isize {
    match w {
        // SAFETY: the caller's promise.
        Width::Sse => unsafe { sse_syscall(inp, out, nr, a) },
        // SAFETY: the caller's promise; AvxOk exists only when AVX does.
        Width::Avx(_) => unsafe { avx_syscall(inp, out, nr, a) },
    }
}

fn sse_touch(inp: &Regs, out: &mut Regs, byte: &mut u8) {
    // SAFETY: the block writes one byte through a live `&mut u8` besides `out`, restores MXCSR and declares the registers it changes.
    unsafe {
        sse_block!(inp, out; ["mov byte ptr [{p}], 0x5a"];
            p = in(reg) byte as *mut u8,
        );
    }
}

/// # Safety
///
/// The CPU supports AVX.
#[target_feature(enable = "avx")]
unsafe fn avx_touch(inp: &Regs, out: &mut Regs, byte: &mut u8) {
    // SAFETY: as in sse_touch.
    unsafe {
        avx_block!(inp, out; ["mov byte ptr [{p}], 0x5a"];
            p = in(reg) byte as *mut u8,
        );
    }
}

/// Loads `inp`, writes `byte` (the first touch of a page is a fault),
/// stores the registers to `out`.
pub fn touch(w: Width, inp: &Regs, out: &mut Regs, byte: &mut u8) {
    match w {
        Width::Sse => sse_touch(inp, out, byte),
        // SAFETY: AvxOk exists only when AVX does.
        Width::Avx(_) => unsafe { avx_touch(inp, out, byte) },
    }
}

fn sse_spin(inp: &Regs, out: &mut Regs, flag: &AtomicU32, start: u32, iters: u64) -> u64 {
    let mut n = iters.max(1);
    // SAFETY: the block only reads `flag` (an atomic, so concurrent changes are fine) besides `inp` and `out`, restores MXCSR and declares the registers it changes.
    unsafe {
        sse_block!(inp, out; [
            "2:",
            "cmp dword ptr [{f}], {s:e}",
            "jne 3f",
            "dec {n}",
            "jnz 2b",
            "3:"];
            f = in(reg) flag.as_ptr(),
            s = in(reg) start,
            n = inout(reg) n,
        );
    }
    n
}

/// # Safety
///
/// The CPU supports AVX.
#[target_feature(enable = "avx")]
unsafe fn avx_spin(inp: &Regs, out: &mut Regs, flag: &AtomicU32, start: u32, iters: u64) -> u64 {
    let mut n = iters.max(1);
    // SAFETY: as in sse_spin.
    unsafe {
        avx_block!(inp, out; [
            "2:",
            "cmp dword ptr [{f}], {s:e}",
            "jne 3f",
            "dec {n}",
            "jnz 2b",
            "3:"];
            f = in(reg) flag.as_ptr(),
            s = in(reg) start,
            n = inout(reg) n,
        );
    }
    n
}

/// Loads `inp` and spins until `flag` is no longer `start` or `iters`
/// rounds have passed, stores the registers to `out`; returns the rounds
/// left (0: `flag` never changed).
pub fn spin(w: Width, inp: &Regs, out: &mut Regs, flag: &AtomicU32, start: u32, iters: u64) -> u64 {
    match w {
        Width::Sse => sse_spin(inp, out, flag, start, iters),
        // SAFETY: AvxOk exists only when AVX does.
        Width::Avx(_) => unsafe { avx_spin(inp, out, flag, start, iters) },
    }
}

// The signal handlers, in assembly so that nothing the compiler assumes
// about MXCSR or the vector registers is at stake: count the call in
// HANDLED, load GARBAGE into MXCSR and every xmm (or ymm) register, and
// return to the restorer, whose rt_sigreturn must bring back the
// interrupted registers.
global_asm!(
    ".pushsection .text.uml_guest_fp_clobber,\"ax\",@progbits",
    ".p2align 4",
    ".globl uml_guest_fp_clobber_sse",
    ".hidden uml_guest_fp_clobber_sse",
    ".type uml_guest_fp_clobber_sse,@function",
    "uml_guest_fp_clobber_sse:",
    "lock inc dword ptr [rip + {handled}]",
    "lea rax, [rip + {garbage}]",
    "ldmxcsr [rax + 512]",
    "movdqu xmm0, [rax]",
    "movdqu xmm1, [rax + 32]",
    "movdqu xmm2, [rax + 64]",
    "movdqu xmm3, [rax + 96]",
    "movdqu xmm4, [rax + 128]",
    "movdqu xmm5, [rax + 160]",
    "movdqu xmm6, [rax + 192]",
    "movdqu xmm7, [rax + 224]",
    "movdqu xmm8, [rax + 256]",
    "movdqu xmm9, [rax + 288]",
    "movdqu xmm10, [rax + 320]",
    "movdqu xmm11, [rax + 352]",
    "movdqu xmm12, [rax + 384]",
    "movdqu xmm13, [rax + 416]",
    "movdqu xmm14, [rax + 448]",
    "movdqu xmm15, [rax + 480]",
    "ret",
    ".size uml_guest_fp_clobber_sse, . - uml_guest_fp_clobber_sse",
    ".p2align 4",
    ".globl uml_guest_fp_clobber_avx",
    ".hidden uml_guest_fp_clobber_avx",
    ".type uml_guest_fp_clobber_avx,@function",
    "uml_guest_fp_clobber_avx:",
    "lock inc dword ptr [rip + {handled}]",
    "lea rax, [rip + {garbage}]",
    "ldmxcsr [rax + 512]",
    "vmovdqu ymm0, [rax]",
    "vmovdqu ymm1, [rax + 32]",
    "vmovdqu ymm2, [rax + 64]",
    "vmovdqu ymm3, [rax + 96]",
    "vmovdqu ymm4, [rax + 128]",
    "vmovdqu ymm5, [rax + 160]",
    "vmovdqu ymm6, [rax + 192]",
    "vmovdqu ymm7, [rax + 224]",
    "vmovdqu ymm8, [rax + 256]",
    "vmovdqu ymm9, [rax + 288]",
    "vmovdqu ymm10, [rax + 320]",
    "vmovdqu ymm11, [rax + 352]",
    "vmovdqu ymm12, [rax + 384]",
    "vmovdqu ymm13, [rax + 416]",
    "vmovdqu ymm14, [rax + 448]",
    "vmovdqu ymm15, [rax + 480]",
    "ret",
    ".size uml_guest_fp_clobber_avx, . - uml_guest_fp_clobber_avx",
    ".popsection",
    handled = sym HANDLED,
    garbage = sym GARBAGE,
);

// SAFETY: both are defined by the global_asm! above with these names, as
// functions of one int argument that only touch HANDLED and registers.
unsafe extern "C" {
    fn uml_guest_fp_clobber_sse(sig: libc::c_int);
    fn uml_guest_fp_clobber_avx(sig: libc::c_int);
}

/// The address of the clobbering signal handler for width `w`, for
/// `sa_sigaction` (without SA_SIGINFO). The AVX one is only handed out with
/// an [`AvxOk`].
pub fn clobber_handler(w: Width) -> usize {
    match w {
        Width::Sse => uml_guest_fp_clobber_sse as *const () as usize,
        Width::Avx(_) => uml_guest_fp_clobber_avx as *const () as usize,
    }
}
