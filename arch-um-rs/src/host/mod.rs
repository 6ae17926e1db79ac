// SPDX-License-Identifier: GPL-2.0
//! Safe wrappers over host primitives. No kernel symbol is used here, so
//! everything in this floor is unit-tested by `cargo test` on the host.
pub mod file;
pub mod socket;
pub mod tty;
pub mod exec;
pub mod util;
pub mod umid;
pub mod timer;
pub mod epoll;
