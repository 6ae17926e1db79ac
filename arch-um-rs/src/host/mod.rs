// SPDX-License-Identifier: GPL-2.0
//! Safe wrappers over host primitives. No kernel symbol is used here, so
//! everything in this floor is unit-tested by `cargo test` on the host.
