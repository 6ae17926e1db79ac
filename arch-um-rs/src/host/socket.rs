// SPDX-License-Identifier: GPL-2.0
//! Host Unix-domain sockets: socket pairs, named stream and datagram
//! sockets, and descriptor passing (`SCM_RIGHTS`). The safe core behind the
//! socket functions of [`crate::abi::file`] (`arch/um/os-Linux/file.c`).
//!
//! The conventions of [`crate::host::file`] apply: raw descriptors in, owned
//! descriptors out, the host's errno as error, no `EINTR` retry and no
//! close-on-exec unless stated, no allocation.

use core::ffi::{CStr, c_int, c_uint, c_void};
use core::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use super::file::{Result, owned, set_cloexec};
use crate::kernel::Level;

/// The most descriptors [`send_fds`] passes in one message (`OS_SENDMSG_MAX_FDS`).
pub const SEND_MAX_FDS: usize = 8;
/// The most descriptors [`recv_fds`] receives in one message.
pub const RECV_MAX_FDS: usize = 2;

/// `CMSG_SPACE` for `n` descriptors.
const fn fds_space(n: usize) -> usize {
    // SAFETY: CMSG_SPACE is pure arithmetic on its argument.
    unsafe { libc::CMSG_SPACE((n * size_of::<c_int>()) as c_uint) as usize }
}

/// `CMSG_LEN` for `bytes` bytes of payload.
const fn cmsg_len(bytes: usize) -> usize {
    // SAFETY: CMSG_LEN is pure arithmetic on its argument.
    unsafe { libc::CMSG_LEN(bytes as c_uint) as usize }
}

/// A control-message buffer aligned for `struct cmsghdr`.
#[repr(C, align(8))]
struct ControlBuf<const N: usize>([u8; N]);

const _: () = assert!(core::mem::align_of::<libc::cmsghdr>() <= 8);

/// A `sockaddr_un` holding `path` as `snprintf(sun_path, size, "%s", path)`
/// would: at most `size - 1` bytes of it and a NUL, where `size` is also
/// capped at the size of `sun_path` (the C layer trusted callers with that).
/// The rest of `sun_path` is zero.
pub fn unix_addr(path: &CStr, size: usize) -> libc::sockaddr_un {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let room = size.min(addr.sun_path.len()).saturating_sub(1);
    let bytes = path.to_bytes();
    let n = bytes.len().min(room);
    for (dst, &src) in addr.sun_path.iter_mut().zip(&bytes[..n]) {
        *dst = src as libc::c_char;
    }
    addr
}

fn unix_socket(kind: c_int) -> Result<OwnedFd> {
    // SAFETY: no memory arguments.
    Errno::result(unsafe { libc::socket(libc::AF_UNIX, kind, 0) }).map(owned)
}

const ADDR_LEN: libc::socklen_t = size_of::<libc::sockaddr_un>() as libc::socklen_t;

/// Connects a new Unix stream socket to the socket at `path` (truncated to
/// fit `sun_path`). Neither call is retried; the socket is not close-on-exec.
pub fn connect_unix(path: &CStr) -> Result<OwnedFd> {
    let addr = unix_addr(path, usize::MAX);
    let fd = unix_socket(libc::SOCK_STREAM)?;
    // SAFETY: `addr` is a sockaddr_un of ADDR_LEN bytes.
    Errno::result(unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), ADDR_LEN) })?;
    Ok(fd)
}

/// Creates a Unix datagram socket bound to `path`, of which at most
/// `size - 1` bytes are used (see [`unix_addr`]). With `cloexec`, failing to
/// set `FD_CLOEXEC` is only logged, as in the C layer. If bind fails the
/// socket is closed and the bind error returned.
pub fn bind_unix_dgram(path: &CStr, size: usize, cloexec: bool) -> Result<OwnedFd> {
    let fd = unix_socket(libc::SOCK_DGRAM)?;
    if cloexec {
        if let Err(e) = set_cloexec(fd.as_raw_fd()) {
            crate::klog!(
                Level::Err,
                "create_unix_socket : close_on_exec failed, err = {}",
                e as c_int
            );
        }
    }
    let addr = unix_addr(path, size);
    // SAFETY: `addr` is a sockaddr_un of ADDR_LEN bytes.
    Errno::result(unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), ADDR_LEN) })?;
    Ok(fd)
}

/// A connected pair of Unix sockets (stream or datagram) standing in for a
/// pipe. With `cloexec` both ends get `FD_CLOEXEC` (retried on `EINTR`); if
/// that fails it is logged and both ends are closed.
pub fn pipe(stream: bool, cloexec: bool) -> Result<[OwnedFd; 2]> {
    let kind = if stream {
        libc::SOCK_STREAM
    } else {
        libc::SOCK_DGRAM
    };
    let mut fds: [c_int; 2] = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors.
    Errno::result(unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) })?;
    let pair = [owned(fds[0]), owned(fds[1])];
    if cloexec {
        if let Err(e) = set_cloexec(fds[0]).and_then(|()| set_cloexec(fds[1])) {
            crate::klog!(
                Level::Err,
                "os_pipe : Setting FD_CLOEXEC failed, err = {}",
                e as c_int
            );
            return Err(e);
        }
    }
    Ok(pair)
}

/// Accepts a connection on the listening socket `fd`, discarding the peer
/// address. Not retried; the new socket is not close-on-exec.
pub fn accept(fd: RawFd) -> Result<OwnedFd> {
    // SAFETY: a NULL address and length ask for no peer address.
    Errno::result(unsafe { libc::accept(fd, core::ptr::null_mut(), core::ptr::null_mut()) })
        .map(owned)
}

/// Shuts down the reading and/or writing side of `fd`; `EINVAL` if neither.
pub fn shutdown(fd: RawFd, read: bool, write: bool) -> Result<()> {
    let how = match (read, write) {
        (true, true) => libc::SHUT_RDWR,
        (true, false) => libc::SHUT_RD,
        (false, true) => libc::SHUT_WR,
        (false, false) => return Err(Errno::EINVAL),
    };
    // SAFETY: no memory arguments.
    Errno::result(unsafe { libc::shutdown(fd, how) }).map(drop)
}

/// Sends `len` bytes at `data` on `fd` with `fds` attached as one
/// `SCM_RIGHTS` message (attached even when `fds` is empty). `EINVAL` for
/// more than [`SEND_MAX_FDS`] descriptors. Flags 0: not retried, and a
/// closed peer raises `SIGPIPE`.
///
/// # Safety
///
/// `data` must be valid for reads of `len` bytes, unless the host rejects
/// the request outright (`EFAULT`).
pub unsafe fn send_fds_raw(
    fd: RawFd,
    data: *const c_void,
    len: usize,
    fds: &[RawFd],
) -> Result<usize> {
    if fds.len() > SEND_MAX_FDS {
        return Err(Errno::EINVAL);
    }
    let mut control = ControlBuf([0u8; fds_space(SEND_MAX_FDS)]);
    let fds_size = size_of_val(fds);
    let mut iov = libc::iovec {
        iov_base: data.cast_mut(),
        iov_len: len,
    };
    let msg = one_iov_msghdr(&mut iov, &mut control, fds_space(fds.len()));
    // SAFETY: msg_control holds at least CMSG_SPACE(0) bytes, so the first header is inside it.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    // msg_controllen is CMSG_SPACE(fds_size); `fds` does not overlap the local buffer.
    // SAFETY: `cmsg` is an aligned header in `control` with room for `fds_size` payload bytes.
    unsafe {
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = cmsg_len(fds_size) as _;
        core::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(cmsg), fds_size);
    }
    // SAFETY: `msg` and everything it points to are live for the call; `data` is the caller's.
    Errno::result(unsafe { libc::sendmsg(fd, &msg, 0) }).map(|n| n as usize)
}

/// A `msghdr` for one data buffer and `controllen` bytes of `control`. The
/// result points into `iov` and `control`, which must outlive its use.
fn one_iov_msghdr<const N: usize>(
    iov: &mut libc::iovec,
    control: &mut ControlBuf<N>,
    controllen: usize,
) -> libc::msghdr {
    // SAFETY: msghdr is plain old data; all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = controllen as _;
    msg
}

/// [`send_fds_raw`] of the bytes of `data`.
pub fn send_fds(fd: RawFd, data: &[u8], fds: &[RawFd]) -> Result<usize> {
    // SAFETY: `data` is valid for reads of its length.
    unsafe { send_fds_raw(fd, data.as_ptr().cast(), data.len(), fds) }
}

/// Receives one message of at most `len` bytes into `data` on `fd`, with
/// room for `fds.len()` (at most [`RECV_MAX_FDS`], else `EINVAL`)
/// descriptors passed with `SCM_RIGHTS`.
///
/// Returns the message length and how many descriptors were stored at the
/// front of `fds` (the rest is left untouched). The received descriptors
/// are not close-on-exec. The control buffer is rounded up the way
/// `CMSG_SPACE` rounds, so the host may deliver more descriptors than
/// `fds.len()`: those are closed rather than written past the end of `fds`.
/// Not retried on `EINTR`.
///
/// # Safety
///
/// `data` must be valid for writes of `len` bytes, unless the host rejects
/// the request outright (`EFAULT`).
pub unsafe fn recv_fds_raw(
    fd: RawFd,
    fds: &mut [RawFd],
    data: *mut c_void,
    len: usize,
) -> Result<(usize, usize)> {
    if fds.len() > RECV_MAX_FDS {
        return Err(Errno::EINVAL);
    }
    let mut control = ControlBuf([0u8; fds_space(RECV_MAX_FDS)]);
    let mut iov = libc::iovec {
        iov_base: data,
        iov_len: len,
    };
    let mut msg = one_iov_msghdr(&mut iov, &mut control, fds_space(fds.len()));
    // SAFETY: `msg` and its buffers are live and writable for their lengths (`data` per the caller).
    let n = Errno::result(unsafe { libc::recvmsg(fd, &mut msg, 0) })? as usize;
    // SAFETY: recvmsg set msg_controllen to what it wrote into `control`.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if cmsg.is_null() {
        return Ok((n, 0));
    }
    // SAFETY: a non-NULL first header lies entirely inside `control`.
    let hdr = unsafe { &*cmsg };
    if hdr.cmsg_level != libc::SOL_SOCKET || hdr.cmsg_type != libc::SCM_RIGHTS {
        return Ok((n, 0));
    }
    let count = (hdr.cmsg_len as usize).saturating_sub(cmsg_len(0)) / size_of::<c_int>();
    // The payload need not be aligned for c_int, hence the unaligned reads below.
    // SAFETY: the host wrote `count` descriptors after the header, inside `control`.
    let data_ptr = unsafe { libc::CMSG_DATA(cmsg) }.cast::<c_int>();
    for i in 0..count {
        // SAFETY: `i < count`, see above.
        let received = unsafe { data_ptr.add(i).read_unaligned() };
        match fds.get_mut(i) {
            Some(slot) => *slot = received,
            // The host installed a descriptor the caller has no room for.
            None => drop(owned(received)),
        }
    }
    Ok((n, count.min(fds.len())))
}

/// [`recv_fds_raw`] into `data`.
pub fn recv_fds(fd: RawFd, fds: &mut [RawFd], data: &mut [u8]) -> Result<(usize, usize)> {
    // SAFETY: `data` is valid for writes of its length.
    unsafe { recv_fds_raw(fd, fds, data.as_mut_ptr().cast(), data.len()) }
}

#[cfg(test)]
mod tests;
