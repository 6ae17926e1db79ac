// SPDX-License-Identifier: GPL-2.0
//! The `port` channel's host side (`port_user.c`): a TCP port telnet
//! clients connect to. For each connection UML runs `in.telnetd -L
//! <port-helper>` on it; telnetd gives the helper a pseudo-terminal, and
//! the helper sends that terminal back to UML over a datagram socket pair
//! (its descriptor 3), which the kernel half (`port_kern.c`) receives.

use core::ffi::{CStr, c_int};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use syscalls::{Sysno, syscall};

use crate::host::file::{Result, owned};

/// The telnet daemon, searched in `PATH`.
pub const TELNETD: &CStr = c"in.telnetd";
/// The helper telnetd runs as its login program, unless the environment
/// variable [`HELPER_ENV`] names another: `OS_LIB_PATH "/uml/port-helper"`
/// as the C is compiled (see [`super::xterm::PORT_HELPER`]).
pub const HELPER: &CStr = super::xterm::PORT_HELPER;
/// The environment variable naming the helper.
pub const HELPER_ENV: &CStr = c"UML_PORT_HELPER";

/// A TCP socket listening on `port` of every IPv4 address, as
/// `port_listen_fd` made it (which then makes it non-blocking):
/// `SO_REUSEADDR`, a backlog of 1, not close-on-exec. `port` is taken
/// modulo 65536, as `htons` did; 0 listens on a port the host picks.
pub fn listen(port: c_int) -> Result<OwnedFd> {
    // SAFETY: socket has no memory arguments.
    let fd = unsafe { libc::socket(libc::PF_INET, libc::SOCK_STREAM, 0) };
    let fd = Errno::result(fd).map(owned)?;
    let one: c_int = 1;
    // SAFETY: SO_REUSEADDR reads one int.
    Errno::result(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&raw const one).cast(),
            size_of::<c_int>() as libc::socklen_t,
        )
    })?;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: (port as u16).to_be(),
        sin_addr: libc::in_addr {
            s_addr: libc::INADDR_ANY.to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a sockaddr_in of the length given.
    Errno::result(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    // SAFETY: listen has no memory arguments.
    Errno::result(unsafe { libc::listen(fd.as_raw_fd(), 1) })?;
    Ok(fd)
}

/// The port `fd` is bound to.
pub fn local_port(fd: RawFd) -> Result<u16> {
    // SAFETY: sockaddr_in is plain data.
    let mut addr: libc::sockaddr_in = unsafe { core::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `addr` has room for `len` bytes.
    Errno::result(unsafe { libc::getsockname(fd, (&raw mut addr).cast(), &mut len) })?;
    Ok(u16::from_be(addr.sin_port))
}

/// Accepts a connection on the non-blocking listening socket `fd`, as
/// `port_connection` did: not retried, not close-on-exec, no peer
/// address; `EAGAIN` when nobody is waiting.
pub fn accept(fd: RawFd) -> Result<OwnedFd> {
    crate::host::socket::accept(fd)
}

/// `struct port_pre_exec_data`: what the helper child wires up before it
/// runs telnetd.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PreExecData {
    /// The connection, which becomes the child's 0, 1 and 2.
    pub sock_fd: c_int,
    /// The child's end of the socket pair, which becomes its 3.
    pub pipe_fd: c_int,
}

/// In the helper child, before exec (`port_pre_exec`): the connection on
/// descriptors 0, 1 and 2, the socket pair's end on 3, shut for reading
/// (the helper only sends on it), the originals closed; errors ignored, as
/// in C. The child shares the kernel's memory and its `errno`: raw system
/// calls leave that alone (the C's library calls did not).
pub fn pre_exec_wiring(data: PreExecData) {
    let sock = data.sock_fd as usize;
    let pipe = data.pipe_fd as usize;
    // SAFETY: descriptor operations only; no memory is passed.
    unsafe {
        let _ = syscall!(Sysno::dup2, sock, 0);
        let _ = syscall!(Sysno::dup2, sock, 1);
        let _ = syscall!(Sysno::dup2, sock, 2);
        let _ = syscall!(Sysno::close, sock);
        let _ = syscall!(Sysno::dup2, pipe, 3);
        let _ = syscall!(Sysno::shutdown, 3, libc::SHUT_RD as usize);
        let _ = syscall!(Sysno::close, pipe);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn the_listening_socket_is_the_cs() {
        let fd = listen(0).unwrap();
        let raw = fd.as_raw_fd();
        crate::host::file::set_fd_block(raw, false).unwrap();
        let port = local_port(raw).unwrap();
        assert_ne!(port, 0);
        // SAFETY: F_GETFL and F_GETFD take no argument.
        let (fl, fdfl) = unsafe {
            (
                libc::fcntl(raw, libc::F_GETFL),
                libc::fcntl(raw, libc::F_GETFD),
            )
        };
        assert_ne!(fl & libc::O_NONBLOCK, 0, "as set above");
        assert_eq!(fdfl & libc::FD_CLOEXEC, 0);
        let mut one: c_int = 0;
        let mut len = size_of::<c_int>() as libc::socklen_t;
        // SAFETY: SO_REUSEADDR writes one int.
        unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                (&raw mut one).cast(),
                &mut len,
            )
        };
        assert_eq!(one, 1);
        assert_eq!(accept(raw).unwrap_err(), Errno::EAGAIN);
        let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let conn = loop {
            match accept(raw) {
                Ok(c) => break c,
                Err(Errno::EAGAIN) => std::thread::sleep(std::time::Duration::from_millis(5)),
                Err(e) => panic!("accept: {e}"),
            }
        };
        client.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        assert_eq!(crate::host::file::read(conn.as_raw_fd(), &mut buf), Ok(2));
        assert_eq!(&buf, b"hi");
        crate::host::file::write(conn.as_raw_fd(), b"yo").unwrap();
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"yo");
        // The port is taken while we listen.
        assert_eq!(listen(c_int::from(port)).unwrap_err(), Errno::EADDRINUSE);
    }
}
