// SPDX-License-Identifier: GPL-2.0
use std::os::fd::AsRawFd;

use super::*;

#[test]
fn channel_is_a_cloexec_stream_pair_blocking_on_the_thread_side() {
    let ch = IoChannel::new().unwrap();
    for (fd, nonblocking) in [(&ch.driver, true), (&ch.thread, false)] {
        let fl = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert_eq!(fl & libc::O_NONBLOCK != 0, nonblocking);
        let fdfl = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(fdfl & libc::FD_CLOEXEC, 0);
    }
    // A pointer-sized record goes through whole, in order.
    let msg = 0x1234_5678_9abc_def0u64.to_ne_bytes();
    assert_eq!(nix::unistd::write(&ch.driver, &msg).unwrap(), 8);
    let mut back = [0u8; 8];
    assert_eq!(
        nix::unistd::read(ch.thread.as_raw_fd(), &mut back).unwrap(),
        8
    );
    assert_eq!(back, msg);
    // Completions go back the same way; with nothing more to read the
    // driver's non-blocking end says so instead of waiting.
    assert_eq!(nix::unistd::write(&ch.thread, &msg).unwrap(), 8);
    assert_eq!(
        nix::unistd::read(ch.driver.as_raw_fd(), &mut back).unwrap(),
        8
    );
    assert_eq!(
        nix::unistd::read(ch.driver.as_raw_fd(), &mut back),
        Err(Errno::EAGAIN)
    );
}

#[test]
fn poll_one_reports_readiness_and_leaves_errno_alone() {
    let ch = IoChannel::new().unwrap();
    let fd = ch.driver.as_raw_fd();
    assert_eq!(poll_one(fd, libc::POLLIN, 0), 0, "nothing to read yet");
    assert_eq!(poll_one(fd, libc::POLLOUT, 0), 1, "room to write");
    nix::unistd::write(&ch.thread, b"x").unwrap();
    assert_eq!(poll_one(fd, libc::POLLIN, -1), 1);
    // poll reports a bad descriptor in revents (POLLNVAL), and neither
    // case writes errno.
    Errno::set_raw(0);
    assert_eq!(poll_one(-1, libc::POLLIN, 0), 0, "negative fds are ignored");
    assert_eq!(
        poll_one(1 << 30, libc::POLLIN, 0),
        1,
        "POLLNVAL counts as ready"
    );
    assert_eq!(Errno::last_raw(), 0);
}
