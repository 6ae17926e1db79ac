// SPDX-License-Identifier: GPL-2.0
//! `#[repr(C)]` mirrors of every structure, enum and constant that crosses
//! the C/Rust boundary, and the table of facts the ABI guard checks.
//!
//! The kernel build runs `uml-abi-guard` (src/bin) to turn [`ABI_FACTS`] into
//! a C file that includes the kernel's own headers and asserts every size,
//! alignment, field offset, bit position and constant at compile time. A
//! mismatch fails `make ARCH=um` with the fact that differs.

use core::ffi::c_int;
use core::mem::{align_of, offset_of, size_of};

/// `struct uml_stat` (os.h).
#[cfg(not(feature = "abi-guard-selftest"))]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UmlStat {
    pub ust_dev: c_int,
    pub ust_ino: u64,
    pub ust_mode: c_int,
    pub ust_nlink: c_int,
    pub ust_uid: c_int,
    pub ust_gid: c_int,
    pub ust_size: u64,
    pub ust_blksize: c_int,
    pub ust_blocks: u64,
    pub ust_atime: core::ffi::c_ulong,
    pub ust_mtime: core::ffi::c_ulong,
    pub ust_ctime: core::ffi::c_ulong,
}

/// A deliberately wrong `struct uml_stat` (uid and gid swapped), built only
/// by the ABI guard's self-test to prove the kernel build rejects it.
#[cfg(feature = "abi-guard-selftest")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UmlStat {
    pub ust_dev: c_int,
    pub ust_ino: u64,
    pub ust_mode: c_int,
    pub ust_nlink: c_int,
    pub ust_gid: c_int,
    pub ust_uid: c_int,
    pub ust_size: u64,
    pub ust_blksize: c_int,
    pub ust_blocks: u64,
    pub ust_atime: core::ffi::c_ulong,
    pub ust_mtime: core::ffi::c_ulong,
    pub ust_ctime: core::ffi::c_ulong,
}

/// `struct openflags` (os.h): eight one-bit fields in one `unsigned int`,
/// passed by value. Mirrored as the underlying word; the bit of each field is
/// checked by the ABI guard.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenFlags(pub u32);

impl OpenFlags {
    pub const R: u32 = 1 << 0;
    pub const W: u32 = 1 << 1;
    /// O_SYNC
    pub const S: u32 = 1 << 2;
    /// O_CREAT
    pub const C: u32 = 1 << 3;
    /// O_TRUNC
    pub const T: u32 = 1 << 4;
    /// O_APPEND
    pub const A: u32 = 1 << 5;
    /// O_EXCL
    pub const E: u32 = 1 << 6;
    /// FD_CLOEXEC
    pub const CL: u32 = 1 << 7;

    pub const fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// `OS_TYPE_*` (os.h): the result of `os_file_type`.
pub mod os_type {
    pub const FILE: i32 = 1;
    pub const DIR: i32 = 2;
    pub const SYMLINK: i32 = 3;
    pub const CHARDEV: i32 = 4;
    pub const BLOCKDEV: i32 = 5;
    pub const FIFO: i32 = 6;
    pub const SOCK: i32 = 7;
}

/// `OS_ACC_*` (os.h): `os_access` modes.
pub mod os_acc {
    pub const F_OK: i32 = 0;
    pub const X_OK: i32 = 1;
    pub const W_OK: i32 = 2;
    pub const R_OK: i32 = 4;
}

/// `OS_SENDMSG_MAX_FDS` (os.h).
pub const OS_SENDMSG_MAX_FDS: usize = 8;

/// `enum um_irq_type` (irq_user.h).
pub mod um_irq_type {
    pub const IRQ_READ: i32 = 0;
    pub const IRQ_WRITE: i32 = 1;
    pub const NUM_IRQ_TYPES: i32 = 2;
}

/// One fact the ABI guard asserts against the kernel's C headers.
#[derive(Clone, Copy, Debug)]
pub enum AbiFact {
    /// `sizeof(c_type) == value`
    Size { c_type: &'static str, value: usize },
    /// `_Alignof(c_type) == value`
    Align { c_type: &'static str, value: usize },
    /// `offsetof(c_type, field) == value`
    Offset {
        c_type: &'static str,
        field: &'static str,
        value: usize,
    },
    /// `sizeof(((c_type *)0)->field) == value`
    FieldSize {
        c_type: &'static str,
        field: &'static str,
        value: usize,
    },
    /// A one-bit bitfield `field` of `c_type` (whose storage is `word`) sets
    /// exactly bit `bit` of the word.
    Bit {
        c_type: &'static str,
        word: &'static str,
        field: &'static str,
        bit: u32,
    },
    /// The C integer constant expression `c_expr` equals `value`.
    Const { c_expr: &'static str, value: i64 },
}

macro_rules! struct_facts {
    ($rust:ty, $c:literal, [$($field:ident),* $(,)?]) => {
        [
            AbiFact::Size { c_type: $c, value: size_of::<$rust>() },
            AbiFact::Align { c_type: $c, value: align_of::<$rust>() },
            $(AbiFact::Offset { c_type: $c, field: stringify!($field), value: offset_of!($rust, $field) },)*
        ]
    };
}

const UML_STAT: [AbiFact; 14] = struct_facts!(
    UmlStat,
    "struct uml_stat",
    [
        ust_dev,
        ust_ino,
        ust_mode,
        ust_nlink,
        ust_uid,
        ust_gid,
        ust_size,
        ust_blksize,
        ust_blocks,
        ust_atime,
        ust_mtime,
        ust_ctime
    ]
);

const fn bit(field: &'static str, mask: u32) -> AbiFact {
    AbiFact::Bit {
        c_type: "struct openflags",
        word: "unsigned int",
        field,
        bit: mask.trailing_zeros(),
    }
}

const OPENFLAGS: [AbiFact; 10] = [
    AbiFact::Size {
        c_type: "struct openflags",
        value: size_of::<OpenFlags>(),
    },
    AbiFact::Align {
        c_type: "struct openflags",
        value: align_of::<OpenFlags>(),
    },
    bit("r", OpenFlags::R),
    bit("w", OpenFlags::W),
    bit("s", OpenFlags::S),
    bit("c", OpenFlags::C),
    bit("t", OpenFlags::T),
    bit("a", OpenFlags::A),
    bit("e", OpenFlags::E),
    bit("cl", OpenFlags::CL),
];

const fn konst(c_expr: &'static str, value: i64) -> AbiFact {
    AbiFact::Const { c_expr, value }
}

const CONSTANTS: [AbiFact; 15] = [
    konst("OS_TYPE_FILE", os_type::FILE as i64),
    konst("OS_TYPE_DIR", os_type::DIR as i64),
    konst("OS_TYPE_SYMLINK", os_type::SYMLINK as i64),
    konst("OS_TYPE_CHARDEV", os_type::CHARDEV as i64),
    konst("OS_TYPE_BLOCKDEV", os_type::BLOCKDEV as i64),
    konst("OS_TYPE_FIFO", os_type::FIFO as i64),
    konst("OS_TYPE_SOCK", os_type::SOCK as i64),
    konst("OS_ACC_F_OK", os_acc::F_OK as i64),
    konst("OS_ACC_X_OK", os_acc::X_OK as i64),
    konst("OS_ACC_W_OK", os_acc::W_OK as i64),
    konst("OS_ACC_R_OK", os_acc::R_OK as i64),
    konst("OS_SENDMSG_MAX_FDS", OS_SENDMSG_MAX_FDS as i64),
    konst("IRQ_READ", um_irq_type::IRQ_READ as i64),
    konst("IRQ_WRITE", um_irq_type::IRQ_WRITE as i64),
    konst("NUM_IRQ_TYPES", um_irq_type::NUM_IRQ_TYPES as i64),
];

use crate::kernel::sections::UmlParam;

const UML_PARAM: [AbiFact; 4] = [
    AbiFact::Size {
        c_type: "struct uml_param",
        value: size_of::<UmlParam>(),
    },
    AbiFact::Align {
        c_type: "struct uml_param",
        value: align_of::<UmlParam>(),
    },
    AbiFact::Offset {
        c_type: "struct uml_param",
        field: "str",
        value: offset_of!(UmlParam, str),
    },
    AbiFact::Offset {
        c_type: "struct uml_param",
        field: "setup_func",
        value: offset_of!(UmlParam, setup_func),
    },
];

// ---- util.c / time.c (os-util, os-time) -------------------------------
// Kernel configuration values the C layer takes from the generated
// asm-offsets.h (included through um_malloc.h).

/// `UM_THREAD_SIZE`: the kernel stack size, `PAGE_SIZE <<
/// CONFIG_KERNEL_STACK_ORDER` (order 2 in the arch-um-rs config). The guard
/// fails the build if the kernel is configured otherwise.
pub const UM_THREAD_SIZE: usize = 4096 << 2;

/// `UM_NSEC_PER_SEC`.
pub const UM_NSEC_PER_SEC: u64 = 1_000_000_000;

const UTIL_TIME: [AbiFact; 2] = [
    konst("UM_THREAD_SIZE", UM_THREAD_SIZE as i64),
    konst("UM_NSEC_PER_SEC", UM_NSEC_PER_SEC as i64),
];
// ---- end util.c / time.c ------------------------------------------------

// ---- registers.c / process.c / skas (os-registers, ...) ----------------
use crate::host::ptrace::{FP_SIZE, MAX_REG_NR, reg};

const REGISTERS: [AbiFact; 8] = [
    konst("MAX_REG_NR", MAX_REG_NR as i64),
    konst("FP_SIZE", FP_SIZE as i64),
    konst("HOST_IP", reg::IP as i64),
    konst("HOST_SP", reg::SP as i64),
    konst("HOST_AX", reg::AX as i64),
    konst("HOST_ORIG_AX", reg::ORIG_AX as i64),
    konst("HOST_EFLAGS", reg::EFLAGS as i64),
    konst("HOST_CS", reg::CS as i64),
];
// ---- end registers ----------------------------------------------------------

// ---- skas and the stub (os-skas-mem, os-skas-process) ------------------------
use crate::stub::{self, FaultInfo, MmId, StubData, StubSyscall};

const fn field(c_type: &'static str, field: &'static str, value: usize) -> AbiFact {
    AbiFact::Offset {
        c_type,
        field,
        value,
    }
}

const SKAS: [AbiFact; 35] = [
    AbiFact::Size {
        c_type: "struct stub_syscall",
        value: size_of::<StubSyscall>(),
    },
    AbiFact::Align {
        c_type: "struct stub_syscall",
        value: align_of::<StubSyscall>(),
    },
    field(
        "struct stub_syscall",
        "mem.addr",
        offset_of!(StubSyscall, mem.addr),
    ),
    field(
        "struct stub_syscall",
        "mem.length",
        offset_of!(StubSyscall, mem.length),
    ),
    field(
        "struct stub_syscall",
        "mem.offset",
        offset_of!(StubSyscall, mem.offset),
    ),
    field(
        "struct stub_syscall",
        "mem.fd",
        offset_of!(StubSyscall, mem.fd),
    ),
    field(
        "struct stub_syscall",
        "mem.prot",
        offset_of!(StubSyscall, mem.prot),
    ),
    field(
        "struct stub_syscall",
        "syscall",
        offset_of!(StubSyscall, syscall),
    ),
    AbiFact::FieldSize {
        c_type: "struct stub_syscall",
        field: "syscall",
        value: 4,
    },
    AbiFact::Size {
        c_type: "struct stub_data",
        value: size_of::<StubData>(),
    },
    AbiFact::Align {
        c_type: "struct stub_data",
        value: align_of::<StubData>(),
    },
    field("struct stub_data", "offset", offset_of!(StubData, offset)),
    field("struct stub_data", "err", offset_of!(StubData, err)),
    field(
        "struct stub_data",
        "child_err",
        offset_of!(StubData, child_err),
    ),
    field(
        "struct stub_data",
        "syscall_data_len",
        offset_of!(StubData, syscall_data_len),
    ),
    field(
        "struct stub_data",
        "syscall_data",
        offset_of!(StubData, syscall_data),
    ),
    AbiFact::FieldSize {
        c_type: "struct stub_data",
        field: "syscall_data",
        value: size_of::<[StubSyscall; stub::STUB_SYSCALLS]>(),
    },
    field(
        "struct stub_data",
        "sigstack",
        offset_of!(StubData, sigstack),
    ),
    AbiFact::Size {
        c_type: "struct faultinfo",
        value: size_of::<FaultInfo>(),
    },
    field(
        "struct faultinfo",
        "error_code",
        offset_of!(FaultInfo, error_code),
    ),
    field("struct faultinfo", "cr2", offset_of!(FaultInfo, cr2)),
    field(
        "struct faultinfo",
        "trap_no",
        offset_of!(FaultInfo, trap_no),
    ),
    AbiFact::Size {
        c_type: "struct mm_id",
        value: size_of::<MmId>(),
    },
    field("struct mm_id", "pid", offset_of!(MmId, pid)),
    field("struct mm_id", "stack", offset_of!(MmId, stack)),
    field(
        "struct mm_id",
        "syscall_data_len",
        offset_of!(MmId, syscall_data_len),
    ),
    konst("STUB_DATA_PAGES", stub::STUB_DATA_PAGES as i64),
    konst("UM_KERN_PAGE_SIZE", stub::PAGE_SIZE as i64),
    konst("STUB_SYSCALL_UNSET", stub::syscall_type::UNSET as i64),
    konst("STUB_SYSCALL_MMAP", stub::syscall_type::MMAP as i64),
    konst("STUB_SYSCALL_MUNMAP", stub::syscall_type::MUNMAP as i64),
    konst("STUB_SYSCALL_MPROTECT", stub::syscall_type::MPROTECT as i64),
    konst("PTRACE_FULL_FAULTINFO", 1),
    konst("STUB_MMAP_NR", libc::SYS_mmap),
    konst("MMAP_OFFSET(4096)", 4096),
];

/// `struct uml_pt_regs` (x86 sysdep/ptrace.h): a thread's registers as the
/// trap loop keeps them.
#[repr(C)]
pub struct UmlPtRegs {
    pub gp: crate::host::ptrace::GpRegs,
    pub fp: crate::host::ptrace::FpRegs,
    pub faultinfo: FaultInfo,
    pub syscall: core::ffi::c_long,
    pub is_user: c_int,
}

/// `struct __jmp_buf` (x86 sysdep/archsetjmp_64.h), as the kernel's own
/// `kernel_setjmp` fills it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct JmpBuf {
    pub rbx: core::ffi::c_ulong,
    pub rsp: core::ffi::c_ulong,
    pub rbp: core::ffi::c_ulong,
    pub r12: core::ffi::c_ulong,
    pub r13: core::ffi::c_ulong,
    pub r14: core::ffi::c_ulong,
    pub r15: core::ffi::c_ulong,
    pub rip: core::ffi::c_ulong,
}

impl JmpBuf {
    pub const ZERO: JmpBuf = JmpBuf {
        rbx: 0,
        rsp: 0,
        rbp: 0,
        r12: 0,
        r13: 0,
        r14: 0,
        r15: 0,
        rip: 0,
    };
}

const SKAS_PROCESS: [AbiFact; 13] = [
    AbiFact::Size {
        c_type: "struct uml_pt_regs",
        value: size_of::<UmlPtRegs>(),
    },
    field("struct uml_pt_regs", "gp", offset_of!(UmlPtRegs, gp)),
    field("struct uml_pt_regs", "fp", offset_of!(UmlPtRegs, fp)),
    field(
        "struct uml_pt_regs",
        "faultinfo",
        offset_of!(UmlPtRegs, faultinfo),
    ),
    field(
        "struct uml_pt_regs",
        "syscall",
        offset_of!(UmlPtRegs, syscall),
    ),
    field(
        "struct uml_pt_regs",
        "is_user",
        offset_of!(UmlPtRegs, is_user),
    ),
    AbiFact::Size {
        c_type: "jmp_buf",
        value: size_of::<JmpBuf>(),
    },
    field("struct __jmp_buf", "__rsp", offset_of!(JmpBuf, rsp)),
    field("struct __jmp_buf", "__r12", offset_of!(JmpBuf, r12)),
    field("struct __jmp_buf", "__rip", offset_of!(JmpBuf, rip)),
    konst("NR_CPUS", crate::abi::skas::process::NR_CPUS as i64),
    konst("HOST_FP_SIZE", crate::host::ptrace::FP_SIZE as i64),
    konst("MAX_FP_NR", crate::host::ptrace::FP_SIZE as i64),
];
// ---- end skas ---------------------------------------------------------------

/// The kernel headers (arch/um/include/shared) the guard includes.
pub const C_HEADERS: &[&str] = &[
    "init.h",
    "os.h",
    "irq_user.h",
    "um_malloc.h",
    "sysdep/ptrace.h",
    "sysdep/ptrace_user.h",
    "registers.h",
    "as-layout.h",
    "skas/stub-data.h",
    "skas/mm_id.h",
    "sysdep/faultinfo.h",
    "sysdep/stub.h",
    "sysdep/archsetjmp.h",
    "linux/threads.h",
    "signal.h",
    "longjmp.h",
    "mem_user.h",
    "net_user.h",
    // arch/um/drivers, on the guard's include path since patch 0011.
    "ubd.h",
    // um-drivers/chan_user and the channel types: struct chan_ops and
    // struct chan_opts.
    "chan_user.h",
    // fs/hostfs, on the guard's include path since patch 0017.
    "hostfs.h",
    // um-drivers/vector_user: the host's message and BPF structures the
    // vector driver's halves share, then the driver's own header (which
    // declares bool functions without including stdbool.h).
    "sys/socket.h",
    "linux/filter.h",
    "stdbool.h",
    "vector_user.h",
    // um-drivers/rtc_user and um-drivers/harddog_user: their prototypes
    // (rtc.h uses bool, from stdbool.h above).
    "rtc.h",
    "harddog.h",
    // Last: with __UM_HOST__ it defines u32 as a macro.
    "mconsole.h",
];

/// signal.c and helper.c: the kernel allocation flags, the size of the
/// kernel's `sig_info` table and the type of the soft interrupt flag that
/// `UML_LONGJMP` reads.
const SIGNALS: [AbiFact; 4] = [
    konst("UM_GFP_KERNEL", crate::abi::helper::UM_GFP_KERNEL as i64),
    konst("UM_GFP_ATOMIC", crate::abi::helper::UM_GFP_ATOMIC as i64),
    konst("NSIG", crate::abi::signal::NSIG as i64),
    AbiFact::Size {
        c_type: "signals_enabled",
        value: size_of::<core::sync::atomic::AtomicI32>(),
    },
];

/// start_up.c: the `iomem=` region list the kernel walks.
const IOMEM: [AbiFact; 7] = {
    use crate::abi::start_up::IomemRegion;
    [
        AbiFact::Size {
            c_type: "struct iomem_region",
            value: size_of::<IomemRegion>(),
        },
        field("struct iomem_region", "next", offset_of!(IomemRegion, next)),
        field(
            "struct iomem_region",
            "driver",
            offset_of!(IomemRegion, driver),
        ),
        field("struct iomem_region", "fd", offset_of!(IomemRegion, fd)),
        field("struct iomem_region", "size", offset_of!(IomemRegion, size)),
        field("struct iomem_region", "phys", offset_of!(IomemRegion, phys)),
        field("struct iomem_region", "virt", offset_of!(IomemRegion, virt)),
    ]
};

/// drivers/tuntap_user.c and drivers/ethertap_user.c: `struct
/// net_user_info`, which both export, and the net_user.h sizes they use.
/// `struct tuntap_data` (tuntap.h) and `struct ethertap_data` (etap.h) live
/// in arch/um/os-Linux/drivers, which is not on the guard's include path;
/// unit tests in their modules check them against the x86_64 C layout.
const NET_USER_INFO: [AbiFact; 10] = struct_facts!(
    crate::abi::drivers::NetUserInfo,
    "struct net_user_info",
    [
        init,
        open,
        close,
        remove,
        add_address,
        delete_address,
        max_packet,
        mtu
    ]
);

const NET_USER: [AbiFact; 5] = {
    use crate::abi::drivers;
    [
        konst("ETH_ADDR_LEN", drivers::ETH_ADDR_LEN as i64),
        konst("ETH_HEADER_ETHERTAP", drivers::ETH_HEADER_ETHERTAP as i64),
        konst("ETH_HEADER_OTHER", drivers::ETH_HEADER_OTHER as i64),
        konst("ETH_MAX_PACKET", drivers::ETH_MAX_PACKET as i64),
        konst("UML_NET_VERSION", drivers::UML_NET_VERSION as i64),
    ]
};

/// um-drivers/ubd_user: the request structures the I/O thread serves
/// (ubd.h, patch 0012).
const UBD_DESC: [AbiFact; 7] = struct_facts!(
    crate::abi::um_drivers::ubd::IoDesc,
    "struct io_desc",
    [buffer, length, sector_mask, cow_offset, bitmap_words]
);
const UBD_REQ: [AbiFact; 11] = struct_facts!(
    crate::abi::um_drivers::ubd::IoThreadReq,
    "struct io_thread_req",
    [
        req, op, fds, offsets, offset, sectorsize, error, desc_cnt, io_desc
    ]
);
const UBD_CONSTANTS: [AbiFact; 7] = {
    use crate::abi::um_drivers::ubd;
    [
        konst("UBD_OP_READ", ubd::UBD_OP_READ as i64),
        konst("UBD_OP_WRITE", ubd::UBD_OP_WRITE as i64),
        konst("UBD_OP_FLUSH", ubd::UBD_OP_FLUSH as i64),
        konst("UBD_OP_DISCARD", ubd::UBD_OP_DISCARD as i64),
        konst("UBD_OP_WRITE_ZEROES", ubd::UBD_OP_WRITE_ZEROES as i64),
        konst("UBD_OP_UNKNOWN", ubd::UBD_OP_UNKNOWN as i64),
        konst("UBD_MAX_REQUEST", ubd::UBD_MAX_REQUEST as i64),
    ]
};

/// um-drivers/mconsole_user: the packets of the management console, its
/// command table and the request the kernel half hands over (mconsole.h).
mod mconsole_facts {
    use super::*;
    use crate::abi::um_drivers::mconsole_user::{
        McRequest, MconsoleCommand, MconsoleNotify, MconsoleReply, MconsoleRequest,
    };

    pub(super) const REQUEST: [AbiFact; 6] = struct_facts!(
        MconsoleRequest,
        "struct mconsole_request",
        [magic, version, len, data]
    );
    pub(super) const REPLY: [AbiFact; 6] = struct_facts!(
        MconsoleReply,
        "struct mconsole_reply",
        [err, more, len, data]
    );
    const NOTIFY: &str = "struct mconsole_notify";
    pub(super) const NOTIFY_FACTS: [AbiFact; 7] = [
        AbiFact::Size {
            c_type: NOTIFY,
            value: size_of::<MconsoleNotify>(),
        },
        AbiFact::Align {
            c_type: NOTIFY,
            value: align_of::<MconsoleNotify>(),
        },
        field(NOTIFY, "magic", offset_of!(MconsoleNotify, magic)),
        field(NOTIFY, "version", offset_of!(MconsoleNotify, version)),
        // The field is `type`, an enum: an int.
        field(NOTIFY, "type", offset_of!(MconsoleNotify, kind)),
        field(NOTIFY, "len", offset_of!(MconsoleNotify, len)),
        field(NOTIFY, "data", offset_of!(MconsoleNotify, data)),
    ];
    pub(super) const COMMAND: [AbiFact; 5] = struct_facts!(
        MconsoleCommand,
        "struct mconsole_command",
        [command, handler, context]
    );
    pub(super) const MC_REQUEST: [AbiFact; 10] = struct_facts!(
        McRequest,
        "struct mc_request",
        [
            len,
            as_interrupt,
            originating_fd,
            originlen,
            origin,
            request,
            cmd,
            regs
        ]
    );
    const fn field_size(c_type: &'static str, field: &'static str, value: usize) -> AbiFact {
        AbiFact::FieldSize {
            c_type,
            field,
            value,
        }
    }
    pub(super) const FIELD_SIZES: [AbiFact; 4] = [
        field_size("struct mconsole_request", "data", 512),
        field_size(NOTIFY, "type", size_of::<core::ffi::c_int>()),
        field_size(
            "struct mconsole_command",
            "context",
            size_of::<core::ffi::c_int>(),
        ),
        field_size(
            "struct mc_request",
            "origin",
            crate::host::mconsole::ORIGIN_LEN,
        ),
    ];
}

/// The fact that the C function `$name` has the type `$c_type` (a
/// pointer-to-function type), which the Rust function `$rust` must have
/// too: checked here by the compiler, in the kernel build by the guard.
macro_rules! prototype {
    ($name:ident, $c_type:literal, $rust:path: $rust_ty:ty) => {{
        const _: $rust_ty = $rust;
        konst(
            concat!(
                "__builtin_types_compatible_p(__typeof__(&",
                stringify!($name),
                "), ",
                $c_type,
                ")"
            ),
            1,
        )
    }};
}

/// um-drivers/rtc_user and um-drivers/harddog_user share no structure
/// with their kernel halves, only the functions of rtc.h and harddog.h.
const DRIVER_PROTOTYPES: [AbiFact; 8] = {
    use core::ffi::{c_char, c_int, c_ulonglong};

    use crate::abi::um_drivers::harddog_user as dog;
    use crate::abi::um_drivers::rtc_user as rtc;
    [
        prototype!(
            uml_rtc_start,
            "int (*)(bool)",
            rtc::uml_rtc_start: extern "C" fn(bool) -> c_int
        ),
        prototype!(
            uml_rtc_enable_alarm,
            "int (*)(unsigned long long)",
            rtc::uml_rtc_enable_alarm: extern "C" fn(c_ulonglong) -> c_int
        ),
        prototype!(
            uml_rtc_disable_alarm,
            "void (*)(void)",
            rtc::uml_rtc_disable_alarm: extern "C" fn()
        ),
        prototype!(
            uml_rtc_stop,
            "void (*)(bool)",
            rtc::uml_rtc_stop: extern "C" fn(bool)
        ),
        prototype!(
            uml_rtc_send_timetravel_alarm,
            "void (*)(void)",
            rtc::uml_rtc_send_timetravel_alarm: extern "C" fn()
        ),
        prototype!(
            start_watchdog,
            "int (*)(int *, int *, char *)",
            dog::start_watchdog: unsafe extern "C" fn(*mut c_int, *mut c_int, *mut c_char) -> c_int
        ),
        prototype!(
            stop_watchdog,
            "void (*)(int, int)",
            dog::stop_watchdog: extern "C" fn(c_int, c_int)
        ),
        prototype!(
            ping_watchdog,
            "int (*)(int)",
            dog::ping_watchdog: extern "C" fn(c_int) -> c_int
        ),
    ]
};

const MCONSOLE_CONSTANTS: [AbiFact; 9] = {
    use crate::abi::um_drivers::mconsole_user::{MCONSOLE_INTR, MCONSOLE_PROC};
    use crate::host::mconsole::{self as mc, notify_type};
    [
        konst("MCONSOLE_MAGIC", mc::MCONSOLE_MAGIC as i64),
        konst("MCONSOLE_MAX_DATA", mc::MCONSOLE_MAX_DATA as i64),
        konst("MCONSOLE_VERSION", mc::MCONSOLE_VERSION as i64),
        konst("MCONSOLE_SOCKET", notify_type::SOCKET as i64),
        konst("MCONSOLE_PANIC", notify_type::PANIC as i64),
        konst("MCONSOLE_HANG", notify_type::HANG as i64),
        konst("MCONSOLE_USER_NOTIFY", notify_type::USER_NOTIFY as i64),
        konst("MCONSOLE_INTR", MCONSOLE_INTR as i64),
        konst("MCONSOLE_PROC", MCONSOLE_PROC as i64),
    ]
};

// ---- um-drivers/vector_user (os-um-drivers-vector_user) ---------------------

/// um-drivers/vector_user: the argument list and descriptors of
/// vector_user.h, the host structures the kernel half hands over (message
/// vectors) or keeps (BPF programs), and the header's constants.
mod vector_facts {
    use super::*;
    use crate::abi::um_drivers::vector_user::{
        ArgList, MmsgHdr, MsgHdr, SockFilter, SockFprog, VectorFds,
    };
    use crate::host::vector as v;

    pub(super) const ARGLIST: [AbiFact; 5] =
        struct_facts!(ArgList, "struct arglist", [numargs, tokens, values]);
    pub(super) const FDS: [AbiFact; 6] = struct_facts!(
        VectorFds,
        "struct vector_fds",
        [rx_fd, tx_fd, remote_addr, remote_addr_size]
    );
    pub(super) const MMSGHDR: [AbiFact; 4] =
        struct_facts!(MmsgHdr, "struct mmsghdr", [msg_hdr, msg_len]);
    pub(super) const MSGHDR: [AbiFact; 9] = struct_facts!(
        MsgHdr,
        "struct msghdr",
        [
            msg_name,
            msg_namelen,
            msg_iov,
            msg_iovlen,
            msg_control,
            msg_controllen,
            msg_flags
        ]
    );
    pub(super) const FPROG: [AbiFact; 4] =
        struct_facts!(SockFprog, "struct sock_fprog", [len, filter]);
    pub(super) const FILTER: [AbiFact; 6] =
        struct_facts!(SockFilter, "struct sock_filter", [code, jt, jf, k]);
    pub(super) const FIELD_SIZES: [AbiFact; 3] = [
        AbiFact::FieldSize {
            c_type: "struct arglist",
            field: "tokens",
            value: size_of::<[*mut core::ffi::c_char; v::MAXVARGS]>(),
        },
        AbiFact::FieldSize {
            c_type: "struct sock_fprog",
            field: "len",
            value: size_of::<core::ffi::c_ushort>(),
        },
        AbiFact::FieldSize {
            c_type: "struct msghdr",
            field: "msg_iovlen",
            value: size_of::<usize>(),
        },
    ];
    pub(super) const CONSTANTS: [AbiFact; 6] = [
        konst("MAXVARGS", v::MAXVARGS as i64),
        konst("DEFAULT_BPF_LEN", v::DEFAULT_BPF_LEN as i64),
        konst("VECTOR_READ", v::VECTOR_READ as i64),
        konst("IPPROTO_GRE", v::IPPROTO_GRE as i64),
        konst("IPPROTO_L2TP", v::IPPROTO_L2TP as i64),
        konst("L2TPV3_DATA_PACKET", v::L2TPV3_DATA_PACKET as i64),
    ];
}
// ---- end um-drivers/vector_user ------------------------------------------------

// ---- fs-hostfs/hostfs_user (os-fs-hostfs-hostfs_user) ----------------------
// hostfs.h lives in fs/hostfs, on the guard's include path since kernel
// patch 0017; the unit test `hostfs_structs_match_x86_64_c_layout` also pins
// the layouts gcc gives the 6.12 header on x86_64.

/// fs-hostfs/hostfs_user: the structures of hostfs.h and its attribute bits.
mod hostfs_facts {
    use super::*;
    use crate::abi::fs_hostfs::hostfs_user::{self as hu, HostfsIattr, HostfsStat, HostfsTimespec};

    const fn field_size(c_type: &'static str, field: &'static str, value: usize) -> AbiFact {
        AbiFact::FieldSize {
            c_type,
            field,
            value,
        }
    }

    pub(super) const TIMESPEC: [AbiFact; 4] =
        struct_facts!(HostfsTimespec, "struct hostfs_timespec", [tv_sec, tv_nsec]);
    pub(super) const IATTR: [AbiFact; 10] = struct_facts!(
        HostfsIattr,
        "struct hostfs_iattr",
        [
            ia_valid, ia_mode, ia_uid, ia_gid, ia_size, ia_atime, ia_mtime, ia_ctime
        ]
    );
    pub(super) const STAT: [AbiFact; 14] = struct_facts!(
        HostfsStat,
        "struct hostfs_stat",
        [
            ino, mode, nlink, uid, gid, size, atime, mtime, ctime, btime, blksize, blocks
        ]
    );
    const ST: &str = "struct hostfs_stat";
    const IA: &str = "struct hostfs_iattr";
    pub(super) const STAT_DEVS: [AbiFact; 4] = [
        field(ST, "rdev.maj", offset_of!(HostfsStat, rdev.maj)),
        field(ST, "rdev.min", offset_of!(HostfsStat, rdev.min)),
        field(ST, "dev.maj", offset_of!(HostfsStat, dev.maj)),
        field(ST, "dev.min", offset_of!(HostfsStat, dev.min)),
    ];
    pub(super) const FIELD_SIZES: [AbiFact; 9] = [
        field_size(IA, "ia_mode", size_of::<core::ffi::c_ushort>()),
        field_size(IA, "ia_uid", size_of::<libc::uid_t>()),
        field_size(IA, "ia_gid", size_of::<libc::gid_t>()),
        field_size(IA, "ia_size", size_of::<i64>()),
        field_size(ST, "ino", size_of::<u64>()),
        field_size(ST, "size", size_of::<u64>()),
        field_size(ST, "blocks", size_of::<u64>()),
        field_size(ST, "rdev", size_of::<hu::HostfsDevNum>()),
        field_size(ST, "dev", size_of::<hu::HostfsDevNum>()),
    ];
    pub(super) const CONSTANTS: [AbiFact; 11] = [
        konst("HOSTFS_ATTR_MODE", hu::HOSTFS_ATTR_MODE as i64),
        konst("HOSTFS_ATTR_UID", hu::HOSTFS_ATTR_UID as i64),
        konst("HOSTFS_ATTR_GID", hu::HOSTFS_ATTR_GID as i64),
        konst("HOSTFS_ATTR_SIZE", hu::HOSTFS_ATTR_SIZE as i64),
        konst("HOSTFS_ATTR_ATIME", hu::HOSTFS_ATTR_ATIME as i64),
        konst("HOSTFS_ATTR_MTIME", hu::HOSTFS_ATTR_MTIME as i64),
        konst("HOSTFS_ATTR_CTIME", hu::HOSTFS_ATTR_CTIME as i64),
        konst("HOSTFS_ATTR_ATIME_SET", hu::HOSTFS_ATTR_ATIME_SET as i64),
        konst("HOSTFS_ATTR_MTIME_SET", hu::HOSTFS_ATTR_MTIME_SET as i64),
        konst("HOSTFS_ATTR_FORCE", hu::HOSTFS_ATTR_FORCE as i64),
        konst("HOSTFS_ATTR_ATTR_FLAG", hu::HOSTFS_ATTR_ATTR_FLAG as i64),
    ];
}

/// Every hostfs.h fact (see above: not yet in [`abi_facts`]).
pub fn hostfs_facts() -> Vec<AbiFact> {
    let mut facts = Vec::new();
    facts.extend_from_slice(&hostfs_facts::TIMESPEC);
    facts.extend_from_slice(&hostfs_facts::IATTR);
    facts.extend_from_slice(&hostfs_facts::STAT);
    facts.extend_from_slice(&hostfs_facts::STAT_DEVS);
    facts.extend_from_slice(&hostfs_facts::FIELD_SIZES);
    facts.extend_from_slice(&hostfs_facts::CONSTANTS);
    facts
}
// ---- end fs-hostfs/hostfs_user ------------------------------------------------

// ---- um-drivers/chan_user and the channel types ----------------------------

/// um-drivers/chan_user, fd, null, pty, tty, xterm, port_user: the
/// operation table every channel type exports (`fd_ops`, ...) and the
/// options a line passes to a channel's `init` (chan_user.h).
mod chan_facts {
    use super::*;
    use crate::abi::um_drivers::chan_user::{ChanOps, ChanOpts};

    pub(super) const OPTS: [AbiFact; 5] =
        struct_facts!(ChanOpts, "struct chan_opts", [announce, xterm_title, raw]);
    const OPS: &str = "struct chan_ops";
    pub(super) const OPS_FACTS: [AbiFact; 12] = [
        AbiFact::Size {
            c_type: OPS,
            value: size_of::<ChanOps>(),
        },
        AbiFact::Align {
            c_type: OPS,
            value: align_of::<ChanOps>(),
        },
        // The field is `type`.
        field(OPS, "type", offset_of!(ChanOps, kind)),
        field(OPS, "init", offset_of!(ChanOps, init)),
        field(OPS, "open", offset_of!(ChanOps, open)),
        field(OPS, "close", offset_of!(ChanOps, close)),
        field(OPS, "read", offset_of!(ChanOps, read)),
        field(OPS, "write", offset_of!(ChanOps, write)),
        field(OPS, "console_write", offset_of!(ChanOps, console_write)),
        field(OPS, "window_size", offset_of!(ChanOps, window_size)),
        field(OPS, "free", offset_of!(ChanOps, free)),
        field(OPS, "winch", offset_of!(ChanOps, winch)),
    ];
    pub(super) const FIELD_SIZES: [AbiFact; 2] = [
        AbiFact::FieldSize {
            c_type: OPS,
            field: "winch",
            value: size_of::<core::ffi::c_int>(),
        },
        AbiFact::FieldSize {
            c_type: "struct chan_opts",
            field: "raw",
            value: size_of::<core::ffi::c_int>(),
        },
    ];
}

/// Every fact checked by the ABI guard.
pub fn abi_facts() -> Vec<AbiFact> {
    let mut facts = Vec::new();
    facts.extend_from_slice(&UML_STAT);
    facts.extend_from_slice(&OPENFLAGS);
    facts.extend_from_slice(&CONSTANTS);
    facts.extend_from_slice(&UML_PARAM);
    facts.extend_from_slice(&UTIL_TIME);
    facts.extend_from_slice(&REGISTERS);
    facts.extend_from_slice(&SKAS);
    facts.extend_from_slice(&SKAS_PROCESS);
    facts.extend_from_slice(&SIGNALS);
    facts.extend_from_slice(&IOMEM);
    facts.extend_from_slice(&NET_USER_INFO);
    facts.extend_from_slice(&NET_USER);
    facts.extend_from_slice(&UBD_DESC);
    facts.extend_from_slice(&UBD_REQ);
    facts.extend_from_slice(&UBD_CONSTANTS);
    facts.extend_from_slice(&mconsole_facts::REQUEST);
    facts.extend_from_slice(&mconsole_facts::REPLY);
    facts.extend_from_slice(&mconsole_facts::NOTIFY_FACTS);
    facts.extend_from_slice(&mconsole_facts::COMMAND);
    facts.extend_from_slice(&mconsole_facts::MC_REQUEST);
    facts.extend_from_slice(&mconsole_facts::FIELD_SIZES);
    facts.extend_from_slice(&MCONSOLE_CONSTANTS);
    facts.extend_from_slice(&DRIVER_PROTOTYPES);
    facts.extend_from_slice(&chan_facts::OPTS);
    facts.extend_from_slice(&chan_facts::OPS_FACTS);
    facts.extend_from_slice(&chan_facts::FIELD_SIZES);
    facts.extend(hostfs_facts());
    facts.extend_from_slice(&vector_facts::ARGLIST);
    facts.extend_from_slice(&vector_facts::FDS);
    facts.extend_from_slice(&vector_facts::MMSGHDR);
    facts.extend_from_slice(&vector_facts::MSGHDR);
    facts.extend_from_slice(&vector_facts::FPROG);
    facts.extend_from_slice(&vector_facts::FILTER);
    facts.extend_from_slice(&vector_facts::FIELD_SIZES);
    facts.extend_from_slice(&vector_facts::CONSTANTS);
    facts
}

/// Renders the guard as a C translation unit. Sizes, alignments, offsets and
/// constants are `_Static_assert`s; bitfield positions (not integer constant
/// expressions in C) are read back through a union, which the optimiser folds
/// (unlike memcpy under the kernel's -fno-builtin), and a mismatch is reported
/// through a call to a function carrying `__attribute__((error))`, the
/// technique of the kernel's own `BUILD_BUG_ON`.
pub fn render_guard_c(facts: &[AbiFact]) -> String {
    use std::fmt::Write;
    let mut c = String::new();
    c.push_str("// SPDX-License-Identifier: GPL-2.0\n");
    c.push_str("/* Generated by arch-um-rs `uml-abi-guard`: do not edit. */\n");
    c.push_str("#include <stddef.h>\n");
    for h in C_HEADERS {
        let _ = writeln!(c, "#include <{h}>");
    }
    c.push_str("\n#define RUST_ABI(cond, what) _Static_assert(cond, \"arch-um-rs ABI mismatch: \" what)\n\n");
    let mut bits = String::new();
    for f in facts {
        match *f {
            AbiFact::Size { c_type, value } => {
                let _ = writeln!(
                    c,
                    "RUST_ABI(sizeof({c_type}) == {value}, \"sizeof({c_type}) is {value} in Rust\");"
                );
            }
            AbiFact::Align { c_type, value } => {
                let _ = writeln!(
                    c,
                    "RUST_ABI(_Alignof({c_type}) == {value}, \"_Alignof({c_type}) is {value} in Rust\");"
                );
            }
            AbiFact::Offset {
                c_type,
                field,
                value,
            } => {
                let _ = writeln!(
                    c,
                    "RUST_ABI(offsetof({c_type}, {field}) == {value}, \"offsetof({c_type}, {field}) is {value} in Rust\");"
                );
            }
            AbiFact::FieldSize {
                c_type,
                field,
                value,
            } => {
                let _ = writeln!(
                    c,
                    "RUST_ABI(sizeof(((({c_type} *)0)->{field})) == {value}, \"sizeof({c_type}.{field}) is {value} in Rust\");"
                );
            }
            AbiFact::Bit {
                c_type,
                word,
                field,
                bit,
            } => {
                let _ = writeln!(
                    bits,
                    "\t{{ union {{ {c_type} v; {word} w; }} u = {{ .v = {{ .{field} = 1 }} }};\n\t  if (u.w != (({word})1 << {bit})) rust_abi_bit_mismatch_{c}(); }}",
                    c = sanitize(&format!("{c_type}_{field}_{bit}")),
                );
                let _ = writeln!(
                    c,
                    "extern void rust_abi_bit_mismatch_{s}(void) __attribute__((error(\"arch-um-rs ABI mismatch: {c_type}.{field} is bit {bit} in Rust\")));",
                    s = sanitize(&format!("{c_type}_{field}_{bit}")),
                );
            }
            AbiFact::Const { c_expr, value } => {
                let _ = writeln!(
                    c,
                    "RUST_ABI(({c_expr}) == {value}LL, \"{c_expr} is {value} in Rust\");"
                );
            }
        }
    }
    c.push_str("\n/* Never called: exists so the compiler folds the bitfield checks. */\n");
    c.push_str("void rust_abi_guard_bitfields(void);\nvoid rust_abi_guard_bitfields(void)\n{\n");
    c.push_str(&bits);
    c.push_str("}\n");
    c
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uml_stat_matches_x86_64_c_layout() {
        // The layout gcc gives struct uml_stat on x86_64; the kernel build
        // checks the same facts against the real header.
        assert_eq!(size_of::<UmlStat>(), 80);
        assert_eq!(offset_of!(UmlStat, ust_ino), 8);
        assert_eq!(offset_of!(UmlStat, ust_size), 32);
        assert_eq!(offset_of!(UmlStat, ust_blocks), 48);
        assert_eq!(offset_of!(UmlStat, ust_ctime), 72);
    }

    #[test]
    fn net_user_info_matches_x86_64_c_layout() {
        use crate::abi::drivers::NetUserInfo;
        // Six function pointers, then two ints.
        assert_eq!(size_of::<NetUserInfo>(), 56);
        assert_eq!(offset_of!(NetUserInfo, delete_address), 40);
        assert_eq!(offset_of!(NetUserInfo, max_packet), 48);
        assert_eq!(offset_of!(NetUserInfo, mtu), 52);
        let c = render_guard_c(&abi_facts());
        assert!(c.contains("#include <net_user.h>"));
        assert!(c.contains("offsetof(struct net_user_info, mtu) == 52"));
        assert!(c.contains("(ETH_HEADER_OTHER) == 26LL"));
    }

    #[test]
    fn mconsole_structs_match_x86_64_c_layout() {
        use crate::abi::um_drivers::mconsole_user::{
            McRequest, MconsoleCommand, MconsoleNotify, MconsoleReply, MconsoleRequest,
        };
        // What gcc gives mconsole.h on x86_64 (the guard built against the
        // 6.12 headers agrees).
        assert_eq!(size_of::<MconsoleRequest>(), 524);
        assert_eq!(size_of::<MconsoleReply>(), 524);
        assert_eq!(size_of::<MconsoleNotify>(), 528);
        assert_eq!(offset_of!(MconsoleNotify, kind), 8);
        assert_eq!(size_of::<MconsoleCommand>(), 24);
        assert_eq!(offset_of!(MconsoleCommand, context), 16);
        assert_eq!(offset_of!(McRequest, origin), 16);
        assert_eq!(offset_of!(McRequest, request), 144);
        assert_eq!(offset_of!(McRequest, cmd), 672);
        assert_eq!(offset_of!(McRequest, regs), 680);
        assert_eq!(size_of::<McRequest>(), 3632);
        let c = render_guard_c(&abi_facts());
        let (ubd, mconsole) = (
            c.find("#include <ubd.h>").unwrap(),
            c.find("#include <mconsole.h>").unwrap(),
        );
        assert!(ubd < mconsole, "mconsole.h (which defines u32) comes last");
        assert!(c.contains("offsetof(struct mconsole_notify, type) == 8"));
        assert!(c.contains("(MCONSOLE_MAGIC) == 3405691582LL"));
    }

    #[test]
    fn hostfs_structs_match_x86_64_c_layout() {
        use crate::abi::fs_hostfs::hostfs_user::{HostfsIattr, HostfsStat, HostfsTimespec};
        // What gcc gives fs/hostfs/hostfs.h on x86_64 (checked against the
        // 6.12 header with the guard's flags).
        assert_eq!(size_of::<HostfsTimespec>(), 16);
        assert_eq!(size_of::<HostfsIattr>(), 72);
        assert_eq!(offset_of!(HostfsIattr, ia_mode), 4);
        assert_eq!(offset_of!(HostfsIattr, ia_uid), 8);
        assert_eq!(offset_of!(HostfsIattr, ia_size), 16);
        assert_eq!(offset_of!(HostfsIattr, ia_atime), 24);
        assert_eq!(offset_of!(HostfsIattr, ia_ctime), 56);
        assert_eq!(size_of::<HostfsStat>(), 128);
        assert_eq!(offset_of!(HostfsStat, size), 24);
        assert_eq!(offset_of!(HostfsStat, atime), 32);
        assert_eq!(offset_of!(HostfsStat, btime), 80);
        assert_eq!(offset_of!(HostfsStat, blksize), 96);
        assert_eq!(offset_of!(HostfsStat, blocks), 104);
        assert_eq!(offset_of!(HostfsStat, rdev.min), 116);
        assert_eq!(offset_of!(HostfsStat, dev.maj), 120);
        let facts = hostfs_facts();
        let c = render_guard_c(&facts);
        assert!(c.contains("offsetof(struct hostfs_stat, rdev.min) == 116"));
        assert!(c.contains("sizeof((((struct hostfs_iattr *)0)->ia_mode)) == 2"));
        assert!(c.contains("(HOSTFS_ATTR_MTIME_SET) == 256LL"));
        assert_eq!(facts.len(), 52);
    }

    #[test]
    fn vector_structs_match_x86_64_c_layout() {
        use crate::abi::um_drivers::vector_user::{
            ArgList, MmsgHdr, MsgHdr, SockFilter, SockFprog, VectorFds,
        };
        // What gcc gives vector_user.h and the host headers on x86_64.
        assert_eq!(size_of::<ArgList>(), 328);
        assert_eq!(offset_of!(ArgList, tokens), 8);
        assert_eq!(offset_of!(ArgList, values), 168);
        assert_eq!(size_of::<VectorFds>(), 24);
        assert_eq!(offset_of!(VectorFds, tx_fd), 4);
        assert_eq!(offset_of!(VectorFds, remote_addr), 8);
        assert_eq!(offset_of!(VectorFds, remote_addr_size), 16);
        // The kernel's struct mmsghdr (a user_msghdr and msg_len) has the
        // host's layout.
        assert_eq!(size_of::<MmsgHdr>(), 64);
        assert_eq!(offset_of!(MmsgHdr, msg_len), 56);
        assert_eq!(size_of::<MsgHdr>(), 56);
        assert_eq!(offset_of!(MsgHdr, msg_iov), 16);
        assert_eq!(offset_of!(MsgHdr, msg_iovlen), 24);
        assert_eq!(size_of::<SockFprog>(), 16);
        assert_eq!(offset_of!(SockFprog, filter), 8);
        assert_eq!(size_of::<SockFilter>(), 8);
        assert_eq!(offset_of!(SockFilter, k), 4);
        let c = render_guard_c(&abi_facts());
        let (vector, mconsole) = (
            c.find("#include <vector_user.h>").unwrap(),
            c.find("#include <mconsole.h>").unwrap(),
        );
        assert!(
            vector < mconsole,
            "mconsole.h (which defines u32) comes last"
        );
        assert!(c.contains("offsetof(struct arglist, values) == 168"));
        assert!(c.contains("offsetof(struct mmsghdr, msg_len) == 56"));
        assert!(c.contains("(L2TPV3_DATA_PACKET) == 196608LL"));
    }

    #[test]
    fn chan_structs_match_x86_64_c_layout() {
        use crate::abi::um_drivers::chan_user::{ChanOps, ChanOpts};
        // What gcc gives chan_user.h on x86_64: three words, and nine
        // pointers and an int.
        assert_eq!(size_of::<ChanOpts>(), 24);
        assert_eq!(offset_of!(ChanOpts, raw), 16);
        assert_eq!(size_of::<ChanOps>(), 80);
        assert_eq!(offset_of!(ChanOps, console_write), 48);
        assert_eq!(offset_of!(ChanOps, winch), 72);
        let c = render_guard_c(&abi_facts());
        assert!(c.contains("#include <chan_user.h>"));
        assert!(c.find("#include <chan_user.h>") < c.find("#include <mconsole.h>"));
        assert!(c.contains("offsetof(struct chan_ops, type) == 0"));
        assert!(c.contains("offsetof(struct chan_ops, winch) == 72"));
    }

    #[test]
    fn rtc_and_harddog_prototypes_are_checked() {
        let c = render_guard_c(&abi_facts());
        let (stdbool, rtc, mconsole) = (
            c.find("#include <stdbool.h>").unwrap(),
            c.find("#include <rtc.h>").unwrap(),
            c.find("#include <mconsole.h>").unwrap(),
        );
        assert!(stdbool < rtc && rtc < mconsole);
        assert!(c.contains("#include <harddog.h>"));
        assert!(c.contains(
            "RUST_ABI((__builtin_types_compatible_p(__typeof__(&uml_rtc_start), int (*)(bool))) == 1LL"
        ));
        assert!(c.contains(
            "__builtin_types_compatible_p(__typeof__(&start_watchdog), int (*)(int *, int *, char *))"
        ));
        assert_eq!(
            c.matches("RUST_ABI((__builtin_types_compatible_p(").count(),
            8
        );
    }

    #[test]
    fn guard_mentions_every_fact() {
        let facts = abi_facts();
        let c = render_guard_c(&facts);
        assert!(c.contains("offsetof(struct uml_stat, ust_blocks) == 48"));
        assert!(c.contains(".cl = 1"));
        assert!(c.contains("(NUM_IRQ_TYPES) == 2LL"));
        let bitfields = facts
            .iter()
            .filter(|f| matches!(f, AbiFact::Bit { .. }))
            .count();
        assert_eq!(c.matches("\nRUST_ABI(").count(), facts.len() - bitfields);
        assert_eq!(c.matches("__attribute__((error(").count(), bitfields);
    }
}
