// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing the host halves of the drivers in `arch/um/drivers`
//! (MIGRATED names `um-drivers/<file>`).
//!
//! - [`cow_user`]: `cow_user.c`, the header of the ubd driver's
//!   copy-on-write images, over [`crate::host::cow`].
//! - [`ubd`]: the request structures of `ubd.h`.
//! - [`ubd_user`]: `ubd_user.c`, the ubd driver's I/O thread start and
//!   waits. It refers to the driver's `io_thread` and `kernel_fd`, so it is
//!   only built into a kernel that has the driver.

pub mod cow_user;
pub mod mconsole_user;
pub mod ubd;
#[cfg(all(feature = "kernel", feature = "os-um-drivers-ubd_user"))]
pub mod ubd_user;
