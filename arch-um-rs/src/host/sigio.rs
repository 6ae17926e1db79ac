// SPDX-License-Identifier: GPL-2.0
//! SIGIO for descriptors that do not raise it: the write-poll helper thread.
//!
//! UML's interrupts are SIGIO on `O_ASYNC` descriptors. Some descriptors
//! never raise SIGIO for some conditions (pty output on some hosts, the
//! host's hwrng, the RTC's eventfd): for those a helper thread `poll`s them
//! and writes a byte to a pipe the kernel has an IRQ on.
//!
//! Three sets of descriptors, each a fixed array (no allocation: the kernel
//! calls in here holding a lock, from interrupt paths):
//! * the *registry*, every descriptor ever declared broken;
//! * the *armed* set, those the thread should watch now (kernel side);
//! * the thread's *working* set, the armed set as last handed over plus
//!   the thread's control socket, minus descriptors that fired (one-shot).
//!
//! The kernel never reads or writes what the thread is using: it writes the
//! new armed set into a hand-over buffer, sends one byte on the control
//! socket and waits for the thread's one-byte reply; the thread copies the
//! buffer only between the two. So no update can interleave with the
//! thread's own one-shot removals, and no descriptor is ever dropped by a
//! racing copy. (A descriptor that fired and is handed over again is watched
//! again: at worst one more wake-up, never a lost one.)
//!
//! The thread runs as a `clone(CLONE_VM | CLONE_FILES)` child without a TLS
//! area of its own: it makes raw system calls only (the `syscalls` crate),
//! which do not even touch the shared `errno`.

use core::ffi::c_int;
use core::sync::atomic::{AtomicI32, Ordering};

use syscalls::{Errno, Sysno, syscall};

/// How many descriptors each set holds. Only descriptors that do not raise
/// SIGIO themselves come here (the host RNG, the RTC, ptys on old hosts),
/// so a few are the norm; a full set is refused with -ENOMEM.
pub const CAPACITY: usize = 64;

const EMPTY: libc::pollfd = libc::pollfd {
    fd: -1,
    events: 0,
    revents: 0,
};

/// A fixed-capacity set of `pollfd`s, in insertion order.
#[derive(Clone, Copy)]
pub struct PollSet {
    fds: [libc::pollfd; CAPACITY],
    used: usize,
}

impl core::fmt::Debug for PollSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list()
            .entries(self.as_slice().iter().map(|p| p.fd))
            .finish()
    }
}

/// The set is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl Default for PollSet {
    fn default() -> Self {
        Self::new()
    }
}

impl PollSet {
    pub const fn new() -> PollSet {
        PollSet {
            fds: [EMPTY; CAPACITY],
            used: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.used
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    pub fn as_slice(&self) -> &[libc::pollfd] {
        &self.fds[..self.used]
    }

    pub fn get(&self, fd: c_int) -> Option<&libc::pollfd> {
        self.as_slice().iter().find(|p| p.fd == fd)
    }

    pub fn contains(&self, fd: c_int) -> bool {
        self.get(fd).is_some()
    }

    /// Appends `p` (no check for duplicates: the callers check).
    pub fn push(&mut self, p: libc::pollfd) -> Result<(), Full> {
        if self.used == CAPACITY {
            return Err(Full);
        }
        self.fds[self.used] = libc::pollfd { revents: 0, ..p };
        self.used += 1;
        Ok(())
    }

    /// Removes `fd`, keeping the order of the rest; whether it was there.
    pub fn remove(&mut self, fd: c_int) -> bool {
        let Some(i) = self.as_slice().iter().position(|p| p.fd == fd) else {
            return false;
        };
        self.fds.copy_within(i + 1..self.used, i);
        self.used -= 1;
        true
    }

    pub fn clear(&mut self) {
        self.used = 0;
    }
}

/// Why a set change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetError {
    /// `fd` was never declared broken (the C layer's -ENOSPC).
    NotRegistered,
    /// Not armed (-ENOENT).
    NotArmed,
    /// No room (-ENOMEM, the C layer's allocation failure).
    Full,
}

impl SetError {
    pub fn neg_errno(self) -> c_int {
        match self {
            SetError::NotRegistered => -libc::ENOSPC,
            SetError::NotArmed => -libc::ENOENT,
            SetError::Full => -libc::ENOMEM,
        }
    }
}

/// The kernel side's bookkeeping: the registry and the armed set.
pub struct Sets {
    pub registry: PollSet,
    pub armed: PollSet,
}

impl Default for Sets {
    fn default() -> Self {
        Self::new()
    }
}

impl Sets {
    pub const fn new() -> Sets {
        Sets {
            registry: PollSet::new(),
            armed: PollSet::new(),
        }
    }

    /// Declares `fd` broken: it may be armed from now on.
    pub fn register(&mut self, fd: c_int) -> Result<(), SetError> {
        if self.registry.contains(fd) {
            return Ok(());
        }
        self.registry
            .push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .map_err(|Full| SetError::Full)
    }

    /// The armed set with `fd` added, or `None` if it is already armed.
    pub fn with_armed(&self, fd: c_int) -> Result<Option<PollSet>, SetError> {
        let p = *self.registry.get(fd).ok_or(SetError::NotRegistered)?;
        if self.armed.contains(fd) {
            return Ok(None);
        }
        let mut next = self.armed;
        next.push(p).map_err(|Full| SetError::Full)?;
        Ok(Some(next))
    }

    /// The armed set without `fd`.
    pub fn without_armed(&self, fd: c_int) -> Result<PollSet, SetError> {
        let mut next = self.armed;
        if !next.remove(fd) {
            return Err(SetError::NotArmed);
        }
        Ok(next)
    }
}

/// What the thread shares with the kernel side.
pub struct ThreadShared {
    /// The thread's end of the control socket.
    pub control_fd: AtomicI32,
    /// Where the thread writes one byte per descriptor that fired.
    pub notify_fd: AtomicI32,
    /// The last errno the thread could not handle (0: none); the kernel
    /// side reports it, as the thread must not call into the kernel.
    pub last_error: AtomicI32,
    /// The hand-over buffer (see the module docs for who touches it when).
    pub handover: crate::host::util::HostCell<PollSet>,
    /// The thread's working set, the control socket first.
    pub working: crate::host::util::HostCell<PollSet>,
}

impl Default for ThreadShared {
    fn default() -> Self {
        Self::new()
    }
}

impl ThreadShared {
    pub const fn new() -> ThreadShared {
        ThreadShared {
            control_fd: AtomicI32::new(-1),
            notify_fd: AtomicI32::new(-1),
            last_error: AtomicI32::new(0),
            handover: crate::host::util::HostCell::new(PollSet::new()),
            working: crate::host::util::HostCell::new(PollSet::new()),
        }
    }
}

fn write_byte(fd: c_int) -> Result<(), Errno> {
    let c = 0u8;
    loop {
        // SAFETY: writes one byte from a live local.
        match unsafe { syscall!(Sysno::write, fd, &raw const c, 1) } {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(()),
        }
    }
}

fn read_byte(fd: c_int) -> Result<(), Errno> {
    let mut c = 0u8;
    loop {
        // SAFETY: reads one byte into a live local.
        match unsafe { syscall!(Sysno::read, fd, &raw mut c, 1) } {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(0) => return Err(Errno::EPIPE),
            Ok(_) => return Ok(()),
        }
    }
}

/// One round of the thread: waits for any descriptor of the working set,
/// takes a hand-over when the control socket is readable, and notifies the
/// kernel of (and stops watching) each other descriptor that fired. Returns
/// the number of descriptors that fired.
///
/// # Safety
///
/// Called only by the thread that owns `shared.working`, and the hand-over
/// protocol of the module docs is followed by the kernel side.
pub unsafe fn thread_round(shared: &ThreadShared) -> usize {
    let control = shared.control_fd.load(Ordering::Relaxed);
    // SAFETY: only this thread touches the working set.
    let working = unsafe { &mut *shared.working.as_ptr() };
    if working.is_empty() || working.fds[0].fd != control {
        working.clear();
        let _ = working.push(libc::pollfd {
            fd: control,
            events: libc::POLLIN,
            revents: 0,
        });
    }
    // SAFETY: the array holds `used` initialised pollfds.
    let n = unsafe {
        syscall!(
            Sysno::poll,
            working.fds.as_mut_ptr(),
            working.used,
            -1isize as usize
        )
    };
    match n {
        Err(Errno::EINTR) | Ok(0) => return 0,
        Err(e) => {
            shared.last_error.store(e.into_raw(), Ordering::Relaxed);
            return 0;
        }
        Ok(_) => {}
    }
    let mut fired = 0;
    let mut i = 0;
    while i < working.used {
        let p = working.fds[i];
        if p.revents == 0 {
            i += 1;
            continue;
        }
        working.fds[i].revents = 0;
        let reply_fd = if p.fd == control {
            if let Err(e) = read_byte(control) {
                shared.last_error.store(e.into_raw(), Ordering::Relaxed);
            }
            // The kernel waits for our reply before touching the hand-over
            // buffer again.
            // SAFETY: see above: between request and reply the buffer is ours.
            let handover = unsafe { &*shared.handover.as_ptr() };
            working.clear();
            let _ = working.push(p);
            for &q in handover.as_slice() {
                let _ = working.push(q);
            }
            i = working.used;
            control
        } else {
            working.remove(p.fd);
            fired += 1;
            shared.notify_fd.load(Ordering::Relaxed)
        };
        if let Err(e) = write_byte(reply_fd) {
            shared.last_error.store(e.into_raw(), Ordering::Relaxed);
        }
    }
    fired
}

/// The kernel side of a hand-over: puts `next` in the buffer, pokes the
/// thread through `kernel_control_fd` and waits for its reply.
///
/// # Safety
///
/// The caller serialises hand-overs (the kernel's sigio lock) and the thread
/// is running.
pub unsafe fn hand_over(
    shared: &ThreadShared,
    kernel_control_fd: c_int,
    next: &PollSet,
) -> Result<(), Errno> {
    // SAFETY: the thread only reads the buffer between our request and its reply.
    unsafe { *shared.handover.as_ptr() = *next };
    write_byte(kernel_control_fd)?;
    read_byte(kernel_control_fd)
}

/// The host check: does a pty master raise SIGIO when output becomes
/// possible again? Fills the pty (non-blocking, `O_ASYNC` owned by us),
/// drains it from the slave side and watches for SIGIO. `openpty` gives the
/// (master, slave) pair: the kernel runs it on its initial thread, as it may
/// allocate.
pub fn pty_output_sigio(
    openpty: impl FnOnce() -> Result<(c_int, c_int), nix::errno::Errno>,
) -> Result<bool, (&'static str, nix::errno::Errno)> {
    use nix::errno::Errno as NixErrno;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    static GOT_SIGIO: AtomicI32 = AtomicI32::new(0);
    extern "C" fn on_sigio(_: c_int) {
        GOT_SIGIO.store(1, Ordering::SeqCst);
    }
    fn fcntl(
        fd: c_int,
        cmd: c_int,
        arg: c_int,
        what: &'static str,
    ) -> Result<c_int, (&'static str, NixErrno)> {
        // SAFETY: F_GETFL, F_SETFL and F_SETOWN take an int argument (ignored by F_GETFL).
        NixErrno::result(unsafe { libc::fcntl(fd, cmd, arg) }).map_err(|e| (what, e))
    }

    let (master, slave) = openpty().map_err(|e| ("openpty", e))?;
    // SAFETY: openpty just gave us these descriptors; we own them from here.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let (m, s) = (master.as_raw_fd(), slave.as_raw_fd());
    crate::host::util::make_raw(m).map_err(|e| ("raw", e))?;
    let flags = fcntl(m, libc::F_GETFL, 0, "F_GETFL")?;
    fcntl(
        m,
        libc::F_SETFL,
        flags | libc::O_NONBLOCK | libc::O_ASYNC,
        "F_SETFL",
    )?;
    // SAFETY: getpid takes no arguments.
    fcntl(m, libc::F_SETOWN, unsafe { libc::getpid() }, "F_SETOWN")?;
    fcntl(s, libc::F_SETFL, flags | libc::O_NONBLOCK, "F_SETFL")?;

    // SAFETY: an all-zero sigaction is a valid value to fill in.
    let mut new: libc::sigaction = unsafe { core::mem::zeroed() };
    let handler: extern "C" fn(c_int) = on_sigio;
    new.sa_sigaction = handler as usize;
    // SAFETY: a zeroed sigaction is valid storage for the old action.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    GOT_SIGIO.store(0, Ordering::SeqCst);
    // SAFETY: installs a handler that only stores to an atomic; the old one is restored below.
    if unsafe { libc::sigaction(libc::SIGIO, &new, &mut old) } < 0 {
        return Err(("sigaction", NixErrno::last()));
    }
    let buf = [0u8; 512];
    // Fill the master until the pty's buffer is full.
    // SAFETY: writes from a live buffer.
    while unsafe { libc::write(m, buf.as_ptr().cast(), buf.len()) } > 0 {}
    let mut rbuf = [0u8; 512];
    // Drain from the slave side until SIGIO (output possible again) or empty.
    // SAFETY: reads into a live buffer.
    while unsafe { libc::read(s, rbuf.as_mut_ptr().cast(), rbuf.len()) } > 0
        && GOT_SIGIO.load(Ordering::SeqCst) == 0
    {}
    // The pty raises SIGIO from the tty layer's deferred work, so the
    // signal may trail the last read by a little: give it 50 ms.
    for _ in 0..50 {
        if GOT_SIGIO.load(Ordering::SeqCst) != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let got = GOT_SIGIO.load(Ordering::SeqCst) != 0;
    // Close the pty, then discard any SIGIO still pending (setting SIG_IGN
    // does that) before the old action returns: outside the kernel the
    // default action would kill the process.
    drop(master);
    drop(slave);
    let mut ignore = new;
    ignore.sa_sigaction = libc::SIG_IGN;
    // SAFETY: SIG_IGN, then the action saved above.
    unsafe {
        libc::sigaction(libc::SIGIO, &ignore, core::ptr::null_mut());
        libc::sigaction(libc::SIGIO, &old, core::ptr::null_mut());
    }
    Ok(got)
}

#[cfg(test)]
mod tests;
