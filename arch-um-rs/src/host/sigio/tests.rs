// SPDX-License-Identifier: GPL-2.0
//! The fd sets, and the real write-poll thread on real descriptors.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

use super::*;

fn pair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap()
}

#[test]
fn only_registered_fds_can_be_armed_and_arming_is_idempotent() {
    let mut sets = Sets::new();
    assert_eq!(sets.with_armed(7).unwrap_err(), SetError::NotRegistered);
    assert_eq!(SetError::NotRegistered.neg_errno(), -libc::ENOSPC);
    sets.register(7).unwrap();
    sets.register(7).unwrap();
    assert_eq!(sets.registry.len(), 1);
    let next = sets.with_armed(7).unwrap().unwrap();
    assert_eq!(next.as_slice()[0].fd, 7);
    assert_eq!(next.as_slice()[0].events, libc::POLLIN);
    sets.armed = next;
    assert!(sets.with_armed(7).unwrap().is_none());
}

#[test]
fn disarming_keeps_the_order_of_the_others() {
    let mut sets = Sets::new();
    for fd in [3, 4, 5, 6] {
        sets.register(fd).unwrap();
        sets.armed = sets.with_armed(fd).unwrap().unwrap();
    }
    sets.armed = sets.without_armed(4).unwrap();
    let fds: Vec<_> = sets.armed.as_slice().iter().map(|p| p.fd).collect();
    assert_eq!(fds, [3, 5, 6]);
    assert_eq!(sets.without_armed(4).unwrap_err(), SetError::NotArmed);
    assert_eq!(SetError::NotArmed.neg_errno(), -libc::ENOENT);
}

#[test]
fn a_full_set_refuses_with_enomem() {
    let mut sets = Sets::new();
    for fd in 0..CAPACITY as c_int {
        sets.register(fd).unwrap();
    }
    assert_eq!(sets.register(100_000).unwrap_err(), SetError::Full);
    assert_eq!(SetError::Full.neg_errno(), -libc::ENOMEM);
}

/// Runs `thread_round` in a loop on a std thread (the kernel uses a raw
/// clone; the protocol is the same) until `stop` is set.
struct Poller {
    shared: &'static ThreadShared,
    kernel_control: Option<OwnedFd>,
    notify_read: OwnedFd,
    thread: Option<std::thread::JoinHandle<()>>,
    _keep: (OwnedFd, OwnedFd),
}

impl Poller {
    fn start() -> Poller {
        let shared: &'static ThreadShared = Box::leak(Box::new(ThreadShared::new()));
        let (kernel_control, thread_control) = pair();
        let (notify_read, notify_write) = pair();
        shared
            .control_fd
            .store(thread_control.as_raw_fd(), Ordering::SeqCst);
        shared
            .notify_fd
            .store(notify_write.as_raw_fd(), Ordering::SeqCst);
        let thread = std::thread::spawn(move || {
            // SAFETY: this thread is the only user of the working set.
            while unsafe { thread_round(shared) } != usize::MAX {
                if shared.last_error.load(Ordering::SeqCst) != 0 {
                    return;
                }
            }
        });
        Poller {
            shared,
            kernel_control: Some(kernel_control),
            notify_read,
            thread: Some(thread),
            _keep: (thread_control, notify_write),
        }
    }

    fn hand_over(&self, set: &PollSet) {
        // SAFETY: one hand-over at a time (this test), the thread runs.
        unsafe {
            hand_over(
                self.shared,
                self.kernel_control.as_ref().unwrap().as_raw_fd(),
                set,
            )
        }
        .unwrap();
    }

    /// Bytes of notification that arrive: waits up to a second for each of
    /// the `expected` ones, then 20 ms for any extra.
    fn notifications(&self, expected: usize) -> usize {
        let mut n = 0;
        let fd = self.notify_read.as_raw_fd();
        loop {
            let wait = if n < expected { 1000 } else { 20 };
            let mut pfd = [libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: one live pollfd.
            if unsafe { libc::poll(pfd.as_mut_ptr(), 1, wait) } <= 0 {
                return n;
            }
            let mut b = [0u8; 64];
            // SAFETY: reads into a live buffer.
            let r = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
            assert!(r > 0);
            n += r as usize;
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        // Closing our control end makes the thread's read fail: it stops.
        drop(self.kernel_control.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn armed(fds: &[c_int]) -> PollSet {
    let mut s = PollSet::new();
    for &fd in fds {
        s.push(libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .unwrap();
    }
    s
}

#[test]
fn the_thread_notifies_once_per_arming_and_never_loses_an_update() {
    let p = Poller::start();
    let (a_read, a_write) = pair();
    let (b_read, b_write) = pair();
    p.hand_over(&armed(&[a_read.as_raw_fd()]));
    assert_eq!(p.notifications(0), 0);

    // a fires: one notification, then it is no longer watched (one-shot),
    // even though it stays readable.
    nix::unistd::write(&a_write, b"x").unwrap();
    assert_eq!(p.notifications(1), 1);
    assert_eq!(p.notifications(0), 0);

    // Re-arming both: a (still readable) fires at once, b when written.
    p.hand_over(&armed(&[a_read.as_raw_fd(), b_read.as_raw_fd()]));
    assert_eq!(p.notifications(1), 1);
    nix::unistd::write(&b_write, b"y").unwrap();
    assert_eq!(p.notifications(1), 1);

    // Many updates in a row while descriptors fire: every hand-over is
    // answered (none is lost) and each arming of a readable fd notifies.
    let mut expected = 0;
    for i in 0..200 {
        let set = if i % 2 == 0 {
            armed(&[a_read.as_raw_fd()])
        } else {
            armed(&[])
        };
        p.hand_over(&set);
        if i % 2 == 0 {
            expected += 1;
            assert_eq!(p.notifications(1), 1, "round {i}");
        }
    }
    assert_eq!(expected, 100);
    assert_eq!(p.shared.last_error.load(Ordering::SeqCst), 0);
    drop((a_write, b_write));
}

#[test]
fn host_ptys_report_whether_output_raises_sigio() {
    let got = pty_output_sigio(|| {
        let p = nix::pty::openpty(None, None)?;
        use std::os::fd::IntoRawFd;
        Ok((p.master.into_raw_fd(), p.slave.into_raw_fd()))
    })
    .expect("the pty check runs");
    // Linux ptys raise SIGIO on output since 2.6; the answer is printed so
    // that a host where they do not is visible in the test log.
    eprintln!("host ptys raise output SIGIO: {got}");
    assert!(got);
}
