// SPDX-License-Identifier: GPL-2.0
//! Safe wrappers over host primitives. No kernel symbol is used here, so
//! everything in this floor is unit-tested by `cargo test` on the host.
pub mod chan;
pub mod cow;
pub mod epoll;
pub mod exec;
pub mod file;
pub mod harddog;
pub mod helper;
pub mod hostcheck;
pub mod hostfs;
pub mod mconsole;
pub mod physmem;
pub mod procstat;
pub mod ptrace;
pub mod rtc;
pub mod sigio;
pub mod signals;
pub mod skas;
pub mod socket;
pub mod tap;
pub mod timer;
pub mod tty;
pub mod ubd;
pub mod umid;
pub mod util;
pub mod vector;
