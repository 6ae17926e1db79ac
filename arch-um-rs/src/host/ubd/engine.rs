// SPDX-License-Identifier: GPL-2.0
//! The I/O engine of the ubd driver: serves one batch of requests (what
//! the I/O thread read from the kernel in one go) and returns when every
//! request in it is done, its `error` set.
//!
//! With io_uring, all the data operations of the batch are in flight at
//! once, so a queue of random reads costs about one device round trip
//! instead of one per request; the C layer served them one at a time.
//! After the data, each written segment's COW bitmap words are written in
//! the order of the requests, as the C does: a later request's words
//! include the bits of an earlier one, so they must land last.
//!
//! The engine runs in the I/O thread, a `CLONE_VM` clone that shares the
//! kernel's memory, descriptors and TLS. So it never allocates (the ring
//! and its slots are made beforehand, in kernel context, by [`Engine::new`])
//! and makes its system calls raw, leaving the kernel thread's `errno`
//! alone (io-uring's `direct-syscall` feature, and the `syscalls` crate).
//!
//! Where io_uring is not available (an old host, `io_uring_disabled`, a
//! seccomp filter), the engine serves each operation with a plain system
//! call, one at a time as the C layer does, and [`Backend::Sync`] says why.

use std::os::fd::RawFd;

use io_uring::{IoUring, opcode, squeue, types};
use syscalls::{Errno, Sysno, syscall};

use super::plan::{self, HostOp, Op, Target};
use crate::abi::um_drivers::ubd::{IoDesc, IoThreadReq};

/// Operations in flight at once: the ring's size. A batch with more is
/// served in rounds.
pub const RING_ENTRIES: usize = 128;

/// Buffers one vectored transfer may gather: a request's segments
/// (`MAX_SG` in ubd_kern.c), so that a contiguous multi-page request is
/// one readv or writev, not one operation per page.
pub const MAX_IOV: usize = 64;

/// One operation in flight: which request it belongs to and what it is,
/// to finish a short transfer or record an error. A read or write covers
/// `iov[..iov_len]`, contiguous in the file from the op's offset; the op's
/// `len` is their total, its `buf` only the first buffer's.
#[derive(Clone, Copy)]
struct Slot {
    req: usize,
    op: HostOp,
    iov: [libc::iovec; MAX_IOV],
    iov_len: usize,
}

const EMPTY_SLOT: Slot = Slot {
    req: 0,
    op: HostOp::Sync { fd: -1 },
    iov: [libc::iovec {
        iov_base: core::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOV],
    iov_len: 0,
};

impl Slot {
    /// Whether `op` of request `req` continues this slot's transfer: the
    /// same request, direction and file, starting where it ends.
    fn extends(&self, req: usize, op: &HostOp) -> bool {
        if self.req != req || self.iov_len == MAX_IOV {
            return false;
        }
        match (self.op, *op) {
            (
                HostOp::Read { fd, len, off, .. },
                HostOp::Read {
                    fd: fd2, off: off2, ..
                },
            )
            | (
                HostOp::Write { fd, len, off, .. },
                HostOp::Write {
                    fd: fd2, off: off2, ..
                },
            ) => fd == fd2 && off + len as u64 == off2,
            _ => false,
        }
    }
}

/// How the engine serves operations.
pub enum Backend {
    Uring(Box<IoUring>),
    /// One system call at a time; the reason io_uring could not be used.
    Sync {
        why: Errno,
    },
}

pub struct Engine {
    backend: Backend,
    /// RING_ENTRIES slots, on the heap: 130 KiB would not fit on the
    /// kernel stack that creates the engine.
    slots: Box<[Slot]>,
    /// Slots 0..in_flight are submitted or queued; slot `in_flight` may
    /// be open (`open`): still gathering a transfer, not yet queued.
    in_flight: usize,
    open: bool,
}

impl Engine {
    /// Sets up the ring. Allocates: call it in kernel context, before the
    /// I/O thread starts.
    pub fn with_io_uring() -> Engine {
        let backend = match IoUring::new(RING_ENTRIES as u32) {
            Ok(ring) => Backend::Uring(Box::new(ring)),
            Err(e) => Backend::Sync {
                why: Errno::new(e.raw_os_error().unwrap_or(libc::EIO)),
            },
        };
        Engine::with_backend(backend)
    }

    /// An engine that makes one system call per operation.
    pub fn synchronous(why: Errno) -> Engine {
        Engine::with_backend(Backend::Sync { why })
    }

    fn with_backend(backend: Backend) -> Engine {
        Engine {
            backend,
            slots: vec![EMPTY_SLOT; RING_ENTRIES].into_boxed_slice(),
            in_flight: 0,
            open: false,
        }
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Serves the requests of `batch`: carries out their operations, sets
    /// each one's `error` to 0 or the errno of its first failure.
    ///
    /// # Safety
    ///
    /// Each pointer is a valid, exclusively owned `io_thread_req` followed
    /// by its `desc_cnt` descriptors, whose buffers are writable (reads)
    /// or readable (writes) for their lengths until this returns.
    pub unsafe fn serve(&mut self, batch: &[*mut IoThreadReq]) {
        for (i, &r) in batch.iter().enumerate() {
            // SAFETY: the caller's contract: a valid request, ours until we return.
            let req = unsafe { &mut *r };
            req.error = 0;
            let Some(op) = Op::from_c(req.op) else {
                req.error = libc::EOPNOTSUPP;
                continue;
            };
            let t = Target {
                op,
                fds: req.fds,
                offsets: req.offsets,
                sectorsize: req.sectorsize.max(0) as u64,
            };
            if op == Op::Flush {
                // fds[1] is the file that takes the writes: the image, or
                // the COW file. (The C synced fds[0], which with COW is
                // the read-only backing file, and then only for requests
                // with segments, which a flush never has.)
                self.run(batch, i, HostOp::Sync { fd: req.fds[1] });
                continue;
            }
            let mut offset = req.offset;
            // SAFETY: as above; the descriptors follow the request.
            for desc in unsafe { descs(r) } {
                for host_op in plan::segment_ops(t, desc, offset) {
                    self.run(batch, i, host_op);
                }
                offset += desc.length;
            }
        }
        self.drain(batch);
        for &r in batch {
            // SAFETY: as above.
            let req = unsafe { &mut *r };
            if req.error != 0 {
                continue;
            }
            // SAFETY: as above.
            for desc in unsafe { descs(r) } {
                if desc.cow_offset == u64::MAX {
                    continue;
                }
                let words = (&raw const desc.bitmap_words) as usize;
                let len = core::mem::size_of_val(&desc.bitmap_words);
                if let Err(e) = write_all(req.fds[1], words, len, desc.cow_offset) {
                    req.error = e.into_raw();
                    break;
                }
            }
        }
    }

    /// Carries out `op` for request `req` of `batch`, or queues it.
    fn run(&mut self, batch: &[*mut IoThreadReq], req: usize, op: HostOp) {
        if matches!(self.backend, Backend::Sync { .. }) {
            // As the C layer: a request stops at its first failure.
            // SAFETY: `req` indexes the batch the caller vouched for.
            if unsafe { (*batch[req]).error } == 0 {
                if let Err(e) = execute(op) {
                    fail(batch, req, e);
                }
            }
            return;
        }
        if self.open && self.slots[self.in_flight].extends(req, &op) {
            let slot = &mut self.slots[self.in_flight];
            if let (
                HostOp::Read { len, .. } | HostOp::Write { len, .. },
                HostOp::Read { buf, len: more, .. } | HostOp::Write { buf, len: more, .. },
            ) = (&mut slot.op, op)
            {
                slot.iov[slot.iov_len] = libc::iovec {
                    iov_base: buf as *mut libc::c_void,
                    iov_len: more,
                };
                slot.iov_len += 1;
                *len += more;
            }
            return;
        }
        self.close_open(batch);
        if self.in_flight == RING_ENTRIES {
            self.drain(batch);
        }
        let slot = &mut self.slots[self.in_flight];
        slot.req = req;
        slot.op = op;
        slot.iov_len = 0;
        self.open = true;
        if let HostOp::Read { buf, len, .. } | HostOp::Write { buf, len, .. } = op {
            // Stays open for the segments that continue it.
            slot.iov[0] = libc::iovec {
                iov_base: buf as *mut libc::c_void,
                iov_len: len,
            };
            slot.iov_len = 1;
        } else {
            self.close_open(batch);
        }
    }

    /// Queues the open slot's operation on the ring.
    fn close_open(&mut self, batch: &[*mut IoThreadReq]) {
        if !self.open {
            return;
        }
        self.open = false;
        let index = self.in_flight;
        let slot = &self.slots[index];
        let entry = sqe(slot).user_data(index as u64);
        let Backend::Uring(ring) = &mut self.backend else {
            unreachable!("slots are only used with the ring")
        };
        // Completions are only reaped by drain(), which empties the ring:
        // the slots in use are always 0..in_flight.
        // SAFETY: the entry's buffers and iovecs (in the slot) stay valid until drain() reaps its completion, before serve() returns.
        if unsafe { ring.submission().push(&entry) }.is_err() {
            // Cannot happen (the ring has RING_ENTRIES places and at most
            // that many are in flight); serve it directly all the same.
            if let Err(e) = execute_slot(slot) {
                fail(batch, slot.req, e);
            }
            return;
        }
        self.in_flight += 1;
    }

    /// Submits what is queued and waits for every operation in flight.
    fn drain(&mut self, batch: &[*mut IoThreadReq]) {
        self.close_open(batch);
        let Backend::Uring(ring) = &mut self.backend else {
            return;
        };
        let mut left = self.in_flight;
        while left > 0 {
            match ring.submit_and_wait(1) {
                Ok(_) => {}
                // Interrupted, or out of resources for the moment: the
                // entries are still queued; try again.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) => {
                    continue;
                }
                // The completion queue is full: reap, then submit again.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => {
                    // The ring itself failed. Whether the operations in
                    // flight ran is unknown, so their requests fail, and
                    // the engine goes on without the ring.
                    let errno = Errno::new(e.raw_os_error().unwrap_or(libc::EIO));
                    for slot in &self.slots[..self.in_flight] {
                        fail(batch, slot.req, errno);
                    }
                    self.in_flight = 0;
                    // Leaked, not dropped: freeing its box would call the
                    // kernel's allocator from the I/O thread.
                    core::mem::forget(core::mem::replace(
                        &mut self.backend,
                        Backend::Sync { why: errno },
                    ));
                    return;
                }
            }
            for cqe in ring.completion() {
                let Some(slot) = self.slots[..self.in_flight].get(cqe.user_data() as usize) else {
                    continue;
                };
                left -= 1;
                let res = cqe.result();
                if res < 0 {
                    fail(batch, slot.req, Errno::new(-res));
                } else if let Err(e) = finish_short(slot, res as usize) {
                    fail(batch, slot.req, e);
                }
            }
        }
        self.in_flight = 0;
    }
}

/// The descriptors that follow request `r`.
///
/// # Safety
///
/// `r` is valid and followed by `desc_cnt` descriptors, for `'a`.
unsafe fn descs<'a>(r: *mut IoThreadReq) -> &'a [IoDesc] {
    // SAFETY: the caller's contract.
    unsafe {
        let n = (*r).desc_cnt.max(0) as usize;
        core::slice::from_raw_parts((&raw const (*r).io_desc).cast::<IoDesc>(), n)
    }
}

/// Records `e` as the error of request `req`, unless it already has one.
fn fail(batch: &[*mut IoThreadReq], req: usize, e: Errno) {
    // SAFETY: `req` indexes the batch that serve()'s caller vouched for.
    let r = unsafe { &mut *batch[req] };
    if r.error == 0 {
        r.error = e.into_raw();
    }
}

/// The submission entry of a slot.
fn sqe(slot: &Slot) -> squeue::Entry {
    let iov = slot.iov.as_ptr();
    let n = slot.iov_len as u32;
    match slot.op {
        HostOp::Read { fd, off, .. } => opcode::Readv::new(types::Fd(fd), iov, n)
            .offset(off)
            .build(),
        HostOp::Write { fd, off, .. } => opcode::Writev::new(types::Fd(fd), iov, n)
            .offset(off)
            .build(),
        HostOp::Sync { fd } => opcode::Fsync::new(types::Fd(fd))
            .flags(types::FsyncFlags::DATASYNC)
            .build(),
        HostOp::Punch { fd, off, len } => opcode::Fallocate::new(types::Fd(fd), len)
            .offset(off)
            .mode(libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE)
            .build(),
        HostOp::Zero { fd, off, len } => opcode::Fallocate::new(types::Fd(fd), len)
            .offset(off)
            .mode(libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE)
            .build(),
    }
}

/// After the ring moved `done` bytes of a slot's transfer: moves the rest
/// of each buffer with plain calls (a short transfer is rare: the end of
/// the file, a signal).
fn finish_short(slot: &Slot, done: usize) -> Result<(), Errno> {
    let (fd, off, read) = match slot.op {
        HostOp::Read { fd, off, .. } => (fd, off, true),
        HostOp::Write { fd, off, .. } => (fd, off, false),
        _ => return Ok(()),
    };
    let mut pos = 0usize;
    for v in &slot.iov[..slot.iov_len] {
        let end = pos + v.iov_len;
        if end > done {
            let skip = done.saturating_sub(pos);
            let buf = v.iov_base as usize + skip;
            let len = v.iov_len - skip;
            let at = off + (pos + skip) as u64;
            if read {
                read_full(fd, buf, len, at)?;
            } else {
                write_all(fd, buf, len, at)?;
            }
        }
        pos = end;
    }
    Ok(())
}

/// A slot's whole operation with plain calls.
fn execute_slot(slot: &Slot) -> Result<(), Errno> {
    match slot.op {
        HostOp::Read { .. } | HostOp::Write { .. } => finish_short(slot, 0),
        op => execute(op),
    }
}

/// Carries out `op` with plain system calls.
pub fn execute(op: HostOp) -> Result<(), Errno> {
    match op {
        HostOp::Read { fd, buf, len, off } => read_full(fd, buf, len, off),
        HostOp::Write { fd, buf, len, off } => write_all(fd, buf, len, off),
        HostOp::Sync { fd } => retry(|| {
            // SAFETY: fdatasync has no memory arguments.
            unsafe { syscall!(Sysno::fdatasync, fd) }
        })
        .map(drop),
        HostOp::Punch { fd, off, len } => fallocate(
            fd,
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            len,
        ),
        HostOp::Zero { fd, off, len } => fallocate(
            fd,
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            len,
        ),
    }
}

fn retry(mut f: impl FnMut() -> Result<usize, Errno>) -> Result<usize, Errno> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

fn fallocate(fd: RawFd, mode: libc::c_int, off: u64, len: u64) -> Result<(), Errno> {
    retry(|| {
        // SAFETY: fallocate has no memory arguments.
        unsafe { syscall!(Sysno::fallocate, fd, mode, off, len) }
    })
    .map(drop)
}

/// Reads `len` bytes at `off` into `buf`; what lies past the end of the
/// file reads as zeros (an image whose size is not a multiple of the
/// sector size).
fn read_full(fd: RawFd, buf: usize, len: usize, off: u64) -> Result<(), Errno> {
    let mut done = 0;
    while done < len {
        // SAFETY: [buf, buf + len) is writable memory of the request (serve()'s contract).
        let n = retry(|| unsafe {
            syscall!(
                Sysno::pread64,
                fd,
                buf + done,
                len - done,
                off + done as u64
            )
        })?;
        if n == 0 {
            // SAFETY: as above.
            unsafe { core::ptr::write_bytes((buf + done) as *mut u8, 0, len - done) };
            break;
        }
        done += n;
    }
    Ok(())
}

/// Writes all `len` bytes at `buf` to `off`.
fn write_all(fd: RawFd, buf: usize, len: usize, off: u64) -> Result<(), Errno> {
    let mut done = 0;
    while done < len {
        // SAFETY: [buf, buf + len) is readable memory of the request (serve()'s contract).
        let n = retry(|| unsafe {
            syscall!(
                Sysno::pwrite64,
                fd,
                buf + done,
                len - done,
                off + done as u64
            )
        })?;
        if n == 0 {
            return Err(Errno::EIO);
        }
        done += n;
    }
    Ok(())
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
