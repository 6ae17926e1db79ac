// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing the host half of hostfs in `fs/hostfs` (MIGRATED names
//! `fs-hostfs/<file>`).
//!
//! - [`hostfs_user`]: `hostfs_user.c`, the host file operations of
//!   hostfs (declared in `hostfs.h`), over [`crate::host::hostfs`].

pub mod hostfs_user;
