// SPDX-License-Identifier: GPL-2.0
//! The C ABI of the os layer: one module per replaced `arch/um/os-Linux` file.
//!
//! Every function keeps the exact signature, negative-errno convention and
//! EINTR behaviour of the C function it replaces. Functions are exported under
//! their C name only with the matching `os-<file>` feature, via
//! `#[cfg_attr(feature = "os-file", unsafe(no_mangle))]`.

pub mod drivers;
pub mod execvp;
pub mod file;
pub mod fs_hostfs;
pub mod helper;
pub mod irq;
pub mod layout;
pub mod main;
pub mod mem;
pub mod process;
pub mod registers;
#[cfg(feature = "kernel")]
pub mod sigio;
pub mod signal;
pub mod skas;
pub mod start_up;
pub mod time;
pub mod tty;
pub mod um_drivers;
pub mod umid;
pub mod util;
