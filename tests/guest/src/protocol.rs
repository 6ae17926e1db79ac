// SPDX-License-Identifier: GPL-2.0
//! File names, sizes, offsets and markers of the storage protocol between
//! the guest (`cases/storage.rs`, which describes it) and the harness
//! (`harness/src/suite.rs`). The harness compiles this very file, so the two
//! sides cannot drift apart. Plain constants only: no dependencies.

/// Size of each hostfs data file: not a multiple of the page size.
pub const HOSTFS_LEN: usize = (256 << 10) + 123;
pub const HOST_TO_GUEST: &str = "host-to-guest.bin";
pub const GUEST_TO_HOST: &str = "guest-to-host.bin";
pub const GUEST_NOTE_FILE: &str = "guest-note.txt";
pub const GUEST_NOTE: &str = "written by uml-guest inside the UML guest\n";

pub const UBD_GUEST_OFFSET: u64 = 0;
pub const UBD_GUEST_LEN: usize = 4 << 20;
pub const UBD_HOST_OFFSET: u64 = 32 << 20;
pub const UBD_HOST_LEN: usize = 1 << 20;

/// Printed (as a KTAP diagnostic) when the guest waits for the host.
pub const READY_MARKER: &str = "@@READY-FOR-HOST-CHECKS";

/// Directory, in the hostfs directory, where the host puts dynamically
/// linked programs for the guest's `exec_dynamic` case (the initramfs holds
/// static programs only); their ELF interpreter and libraries go into its
/// [`DYN_LIB_DIR`] subdirectory.
pub const DYN_DIR: &str = "dyn";
pub const DYN_LIB_DIR: &str = "lib";
/// The programs staged there: `echo` prints its arguments, `false` exits 1.
pub const DYN_PROGRAMS: &[&str] = &["echo", "false"];
