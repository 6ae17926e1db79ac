// SPDX-License-Identifier: GPL-2.0
//! Criterion benchmarks of the host mechanisms behind UML's trap path, on
//! a user process made by the crate itself (`host::skas::testbed`). Run
//! pinned to one CPU, as the in-guest benchmarks are:
//!
//! ```sh
//! taskset -c 0 cargo bench -p uml-bench
//! ```
//!
//! See `benches/mechanisms.rs` for what each group measures.
