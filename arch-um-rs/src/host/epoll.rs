// SPDX-License-Identifier: GPL-2.0
//! epoll for UML's interrupt sources: the safe core behind `abi::irq`.
//!
//! `wait` runs in the SIGIO handler: no allocation, no locks; the caller
//! provides the event buffer.

use core::ffi::{c_int, c_void};

use nix::errno::Errno;

use crate::abi::layout::um_irq_type;

/// Size of UML's epoll event buffer (and the `epoll_create` size hint).
pub const MAX_EPOLL_EVENTS: usize = 64;

/// Events that make a read IRQ fire: data, urgent data, errors and hangups.
pub const READ_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLERR | libc::EPOLLHUP | libc::EPOLLRDHUP) as u32;
/// Events that make a write IRQ fire.
pub const WRITE_EVENTS: u32 = libc::EPOLLOUT as u32;

/// The epoll mask for an `enum um_irq_type` (0 for anything unknown).
pub fn event_mask(irq_type: c_int) -> u32 {
    match irq_type {
        um_irq_type::IRQ_READ => READ_EVENTS,
        um_irq_type::IRQ_WRITE => WRITE_EVENTS,
        _ => 0,
    }
}

/// An empty event slot.
pub const EMPTY_EVENT: libc::epoll_event = libc::epoll_event { events: 0, u64: 0 };

/// A new epoll instance. Like UML's C layer it is *not* close-on-exec
/// (`epoll_create`, not `epoll_create1(EPOLL_CLOEXEC)`).
pub fn create() -> Result<c_int, Errno> {
    // SAFETY: no memory is passed.
    let fd = unsafe { libc::epoll_create(MAX_EPOLL_EVENTS as c_int) };
    if fd < 0 { Err(Errno::last()) } else { Ok(fd) }
}

/// `epoll_ctl(epfd, op, fd)` with `events` and the data pointer `data`.
pub fn ctl(epfd: c_int, op: c_int, fd: c_int, events: u32, data: *mut c_void) -> Result<(), Errno> {
    let mut ev = libc::epoll_event {
        events,
        u64: data as u64,
    };
    // SAFETY: `ev` is a valid epoll_event (ignored for EPOLL_CTL_DEL).
    if unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) } < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Registers `fd`, edge-triggered, for `events`.
pub fn add(epfd: c_int, fd: c_int, events: u32, data: *mut c_void) -> Result<(), Errno> {
    ctl(
        epfd,
        libc::EPOLL_CTL_ADD,
        fd,
        events | libc::EPOLLET as u32,
        data,
    )
}

/// Replaces the events and data of a registered `fd` (exactly `events`:
/// edge triggering is not added here).
pub fn modify(epfd: c_int, fd: c_int, events: u32, data: *mut c_void) -> Result<(), Errno> {
    ctl(epfd, libc::EPOLL_CTL_MOD, fd, events, data)
}

/// Unregisters `fd`.
pub fn delete(epfd: c_int, fd: c_int) -> Result<(), Errno> {
    ctl(epfd, libc::EPOLL_CTL_DEL, fd, 0, core::ptr::null_mut())
}

/// Collects ready events into `out` without blocking past `timeout_ms`
/// (0: poll). Returns how many slots were filled. EINTR is returned, not
/// retried.
pub fn wait(epfd: c_int, out: &mut [libc::epoll_event], timeout_ms: c_int) -> Result<usize, Errno> {
    let max = out.len().min(c_int::MAX as usize) as c_int;
    // SAFETY: `out` has room for `max` events.
    let n = unsafe { libc::epoll_wait(epfd, out.as_mut_ptr(), max, timeout_ms) };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(n as usize)
    }
}

/// The data pointer stored with an event.
pub fn data_pointer(ev: &libc::epoll_event) -> *mut c_void {
    ev.u64 as *mut c_void
}

/// The bits of `mask` that `ev` reported.
pub fn triggered(ev: &libc::epoll_event, mask: c_int) -> c_int {
    (ev.events as c_int) & mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    fn epoll() -> OwnedFd {
        let fd = create().unwrap();
        // SAFETY: a fresh fd we own.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    fn fd_flags(fd: c_int) -> c_int {
        // SAFETY: F_GETFD on an fd.
        unsafe { libc::fcntl(fd, libc::F_GETFD) }
    }

    fn pipe() -> (OwnedFd, OwnedFd) {
        let (r, w) = nix::unistd::pipe().unwrap();
        (r, w)
    }

    #[test]
    fn masks_for_irq_types() {
        assert_eq!(
            event_mask(um_irq_type::IRQ_READ),
            0x2000 | 0x1 | 0x2 | 0x8 | 0x10
        );
        assert_eq!(event_mask(um_irq_type::IRQ_WRITE), 0x4);
        assert_eq!(event_mask(um_irq_type::NUM_IRQ_TYPES), 0);
        assert_eq!(event_mask(-1), 0);
    }

    #[test]
    fn epoll_fd_is_not_cloexec() {
        let ep = epoll();
        assert_eq!(fd_flags(ep.as_raw_fd()) & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn read_readiness_reports_data_pointer() {
        let ep = epoll();
        let (r, w) = pipe();
        let mut tag = 17u32;
        let data: *mut c_void = (&raw mut tag).cast();
        add(ep.as_raw_fd(), r.as_raw_fd(), READ_EVENTS, data).unwrap();
        let mut evs = [EMPTY_EVENT; MAX_EPOLL_EVENTS];
        assert_eq!(wait(ep.as_raw_fd(), &mut evs, 0), Ok(0));
        nix::unistd::write(&w, b"x").unwrap();
        assert_eq!(wait(ep.as_raw_fd(), &mut evs, 0), Ok(1));
        assert_eq!(data_pointer(&evs[0]), data);
        let read = event_mask(um_irq_type::IRQ_READ) as c_int;
        assert_eq!(triggered(&evs[0], read), libc::EPOLLIN);
        assert_eq!(triggered(&evs[0], WRITE_EVENTS as c_int), 0);
        // Edge-triggered: no new event until new data arrives.
        assert_eq!(wait(ep.as_raw_fd(), &mut evs, 0), Ok(0));
        drop(w);
        assert_eq!(wait(ep.as_raw_fd(), &mut evs, 0), Ok(1));
        assert_ne!(triggered(&evs[0], read) & libc::EPOLLHUP, 0);
    }

    #[test]
    fn write_readiness_and_modify_delete() {
        let ep = epoll();
        let (a, b) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::empty(),
        )
        .unwrap();
        let (mut t1, mut t2) = (1u8, 2u8);
        let (d1, d2): (*mut c_void, *mut c_void) = ((&raw mut t1).cast(), (&raw mut t2).cast());
        add(ep.as_raw_fd(), a.as_raw_fd(), WRITE_EVENTS, d1).unwrap();
        assert_eq!(
            add(ep.as_raw_fd(), a.as_raw_fd(), WRITE_EVENTS, d1),
            Err(Errno::EEXIST)
        );
        let mut evs = [EMPTY_EVENT; 4];
        assert_eq!(wait(ep.as_raw_fd(), &mut evs, 0), Ok(1));
        assert_eq!(data_pointer(&evs[0]), d1);
        assert_eq!(triggered(&evs[0], WRITE_EVENTS as c_int), libc::EPOLLOUT);
        assert_eq!(triggered(&evs[0], READ_EVENTS as c_int), 0);

        // Switch to read interest with another data pointer (level
        // triggered now: modify does not add EPOLLET).
        modify(ep.as_raw_fd(), a.as_raw_fd(), READ_EVENTS, d2).unwrap();
        assert_eq!(wait(ep.as_raw_fd(), &mut evs, 0), Ok(0));
        nix::unistd::write(&b, b"hi").unwrap();
        for _ in 0..2 {
            assert_eq!(wait(ep.as_raw_fd(), &mut evs, 0), Ok(1));
            assert_eq!(data_pointer(&evs[0]), d2);
            assert_eq!(triggered(&evs[0], READ_EVENTS as c_int), libc::EPOLLIN);
        }

        delete(ep.as_raw_fd(), a.as_raw_fd()).unwrap();
        assert_eq!(wait(ep.as_raw_fd(), &mut evs, 0), Ok(0));
        assert_eq!(delete(ep.as_raw_fd(), a.as_raw_fd()), Err(Errno::ENOENT));
        assert_eq!(
            modify(ep.as_raw_fd(), a.as_raw_fd(), READ_EVENTS, d2),
            Err(Errno::ENOENT)
        );
        assert_eq!(wait(-1, &mut evs, 0), Err(Errno::EBADF));
    }
}
