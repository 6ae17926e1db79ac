// SPDX-License-Identifier: GPL-2.0
//! Tests of the socket core that the ABI tests do not reach.

use super::*;
use crate::host::file;

fn sun_path_bytes(addr: &libc::sockaddr_un) -> Vec<u8> {
    addr.sun_path.iter().map(|&c| c as u8).collect()
}

#[test]
fn unix_addr_truncates_like_snprintf() {
    let a = unix_addr(c"/tmp/abcdef", 5);
    assert_eq!(a.sun_family, libc::AF_UNIX as libc::sa_family_t);
    let bytes = sun_path_bytes(&a);
    assert_eq!(&bytes[..5], b"/tmp\0");
    assert!(bytes[5..].iter().all(|&b| b == 0));
    // A size of 0 writes nothing at all; 1 writes only the NUL.
    assert!(sun_path_bytes(&unix_addr(c"/x", 0)).iter().all(|&b| b == 0));
    assert!(sun_path_bytes(&unix_addr(c"/x", 1)).iter().all(|&b| b == 0));
    // Larger than sun_path (the C layer's callers pass 256): capped at
    // 107 bytes and a NUL instead of overflowing.
    let long = std::ffi::CString::new("p".repeat(300)).unwrap();
    let bytes = sun_path_bytes(&unix_addr(&long, 256));
    assert_eq!(bytes.len(), 108);
    assert!(bytes[..107].iter().all(|&b| b == b'p'));
    assert_eq!(bytes[107], 0);
}

#[test]
fn control_sizes_match_the_c_macros() {
    // CMSG_SPACE(sizeof(int) * n) on x86_64: a 16-byte header, payload
    // rounded up to 8.
    assert_eq!(fds_space(0), 16);
    assert_eq!(fds_space(1), 24);
    assert_eq!(fds_space(2), 24);
    assert_eq!(fds_space(SEND_MAX_FDS), 48);
    assert_eq!(cmsg_len(8), 24);
}

fn nonblocking_read(fd: RawFd) -> Result<usize> {
    file::set_fd_block(fd, false).unwrap();
    file::read(fd, &mut [0u8; 8])
}

#[test]
fn descriptors_beyond_the_room_given_are_closed_not_leaked() {
    let [s0, s1] = pipe(false, false).unwrap();
    let [r, w] = pipe(true, false).unwrap();
    // Two copies of the write end travel; room is given for one, but the
    // control buffer (CMSG_SPACE rounds 4 up to 8) lets the host deliver
    // both.
    assert_eq!(
        send_fds(s0.as_raw_fd(), b"hi", &[w.as_raw_fd(), w.as_raw_fd()]),
        Ok(2)
    );
    drop(w);
    let mut got = [-1; 1];
    let mut data = [0u8; 8];
    assert_eq!(recv_fds(s1.as_raw_fd(), &mut got, &mut data), Ok((2, 1)));
    assert_eq!(&data[..2], b"hi");
    assert!(got[0] >= 0);
    // Drop the one we kept: if the extra copy had leaked, the reader
    // would see EAGAIN rather than end-of-file.
    drop(owned(got[0]));
    assert_eq!(nonblocking_read(r.as_raw_fd()), Ok(0));
}

#[test]
fn zero_room_receives_data_and_no_descriptor() {
    let [s0, s1] = pipe(false, false).unwrap();
    let [_r, w] = pipe(true, false).unwrap();
    assert_eq!(send_fds(s0.as_raw_fd(), b"abc", &[w.as_raw_fd()]), Ok(3));
    let mut data = [0u8; 8];
    assert_eq!(recv_fds(s1.as_raw_fd(), &mut [], &mut data), Ok((3, 0)));
    assert_eq!(&data[..3], b"abc");
}

#[test]
fn limits_are_einval_before_any_io() {
    let [s0, s1] = pipe(false, false).unwrap();
    assert_eq!(
        send_fds(s0.as_raw_fd(), b"x", &[0; SEND_MAX_FDS + 1]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        recv_fds(s1.as_raw_fd(), &mut [0; RECV_MAX_FDS + 1], &mut [0u8; 1]),
        Err(Errno::EINVAL)
    );
    // Nothing was sent by the failed call.
    assert_eq!(nonblocking_read(s1.as_raw_fd()), Err(Errno::EAGAIN));
}

#[test]
fn bind_failure_closes_the_socket_and_reports_the_error() {
    assert_eq!(
        bind_unix_dgram(c"/nonexistent/dir/sock", usize::MAX, true).unwrap_err(),
        Errno::ENOENT
    );
}
