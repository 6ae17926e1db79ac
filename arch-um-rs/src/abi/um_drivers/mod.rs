// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing the host halves of the drivers in `arch/um/drivers`
//! (MIGRATED names `um-drivers/<file>`).
//!
//! - [`chan_user`]: `chan_user.c`, the generic operations of the console
//!   and serial line channels and their `SIGWINCH` helper, over
//!   [`crate::host::chan`]; [`fd`], [`null`], [`pty`], [`tty`],
//!   [`xterm`] and [`port_user`]: the channel types of `fd.c`, `null.c`,
//!   `pty.c`, `tty.c`, `xterm.c` and `port_user.c`.
//! - [`cow_user`]: `cow_user.c`, the header of the ubd driver's
//!   copy-on-write images, over [`crate::host::cow`].
//! - [`harddog_user`]: `harddog_user.c`, the hardware watchdog's helper
//!   (`uml_watchdog`), over [`crate::host::harddog`].
//! - [`rtc_user`]: `rtc_user.c`, the real-time clock's alarm timer, over
//!   [`crate::host::rtc`].
//! - [`ubd`]: the request structures of `ubd.h`.
//! - [`ubd_user`]: `ubd_user.c`, the ubd driver's I/O thread start and
//!   waits. It refers to the driver's `io_thread` and `kernel_fd`, so it is
//!   only built into a kernel that has the driver.

pub mod chan_user;
pub mod cow_user;
pub mod fd;
pub mod harddog_user;
pub mod mconsole_user;
pub mod null;
pub mod port_user;
pub mod pty;
pub mod rtc_user;
pub mod tty;
pub mod ubd;
#[cfg(all(feature = "kernel", feature = "os-um-drivers-ubd_user"))]
pub mod ubd_user;
pub mod vector_user;
pub mod xterm;
