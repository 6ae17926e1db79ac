// SPDX-License-Identifier: GPL-2.0
//! arch-um-rs: the host ("os") layer of User-Mode Linux, in Rust.
//!
//! Three floors, each using only the ones below it:
//!
//! * [`abi`]: the `extern "C"` functions that replace `arch/um/os-Linux/*.c`,
//!   one module per C file, plus [`abi::layout`], the `#[repr(C)]` mirrors of
//!   the C structures that the kernel build checks mechanically (ABI guard).
//!   They only convert arguments and errors.
//! * subsystems (later issues: skas, signals, ubd, ...).
//! * foundations: [`host`], safe wrappers over host primitives that
//!   `cargo test` exercises without a kernel, and [`kernel`], the few kernel
//!   services we call (printk, panic, the wrapped allocator, init sections).
//!
//! A C symbol is exported unmangled only when the kernel build enables the
//! `os-<file>` feature of the C file it replaces (see `MIGRATED`).

pub mod abi;
pub mod host;
pub mod kernel;
pub mod stub;
#[cfg(feature = "guard-tool")]
pub mod stubcheck;
