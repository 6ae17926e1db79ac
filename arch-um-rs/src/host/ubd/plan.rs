// SPDX-License-Identifier: GPL-2.0
//! Which host operations carry out a ubd request: pure arithmetic over
//! the request's fields, so that `cargo test` can check it at the edges.
//!
//! A segment of a request covers consecutive sectors of the device. With
//! a COW image, each sector lives either in the image's own file
//! (`fds[0]` at `offsets[0]`) or in the COW file's data area (`fds[1]` at
//! `offsets[1]`), as bit n of the segment's sector mask says; a segment
//! becomes one host operation per run of sectors with the same bit.

use std::os::fd::RawFd;

use crate::abi::um_drivers::ubd::{
    IoDesc, UBD_OP_DISCARD, UBD_OP_FLUSH, UBD_OP_READ, UBD_OP_WRITE, UBD_OP_WRITE_ZEROES,
};

/// What a request asks for (`enum ubd_op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Flush,
    Discard,
    WriteZeroes,
}

impl Op {
    /// The operation of an `enum ubd_op` value; None for one this layer
    /// does not know (the request fails with EOPNOTSUPP).
    pub fn from_c(op: libc::c_int) -> Option<Op> {
        Some(match op {
            UBD_OP_READ => Op::Read,
            UBD_OP_WRITE => Op::Write,
            UBD_OP_FLUSH => Op::Flush,
            UBD_OP_DISCARD => Op::Discard,
            UBD_OP_WRITE_ZEROES => Op::WriteZeroes,
            _ => return None,
        })
    }
}

/// One host operation. Buffers are addresses in the kernel's memory,
/// which the I/O thread shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostOp {
    /// `pread`, the part past the end of the file read as zeros.
    Read {
        fd: RawFd,
        buf: usize,
        len: usize,
        off: u64,
    },
    /// `pwrite` of all `len` bytes.
    Write {
        fd: RawFd,
        buf: usize,
        len: usize,
        off: u64,
    },
    /// `fdatasync`.
    Sync { fd: RawFd },
    /// `fallocate(PUNCH_HOLE | KEEP_SIZE)`: TRIM.
    Punch { fd: RawFd, off: u64, len: u64 },
    /// `fallocate(ZERO_RANGE | KEEP_SIZE)`: write-zeroes.
    Zero { fd: RawFd, off: u64, len: u64 },
}

/// The parts of a request that every segment's operations depend on.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub op: Op,
    pub fds: [RawFd; 2],
    pub offsets: [u64; 2],
    pub sectorsize: u64,
}

/// The operations of one segment whose first byte is at `offset` of the
/// device: an iterator, so that the I/O thread needs no allocation.
pub fn segment_ops(t: Target, desc: &IoDesc, offset: u64) -> SegmentOps {
    let sectors = desc.length.checked_div(t.sectorsize).unwrap_or(0);
    SegmentOps {
        t,
        buffer: desc.buffer as usize,
        mask: desc.sector_mask,
        offset,
        next: 0,
        sectors,
    }
}

/// See [`segment_ops`].
pub struct SegmentOps {
    t: Target,
    buffer: usize,
    mask: u64,
    offset: u64,
    next: u64,
    sectors: u64,
}

impl SegmentOps {
    /// Bit `sector` of the mask; sectors past its 64 bits are in `fds[0]`.
    fn bit(&self, sector: u64) -> usize {
        if sector < 64 {
            ((self.mask >> sector) & 1) as usize
        } else {
            0
        }
    }
}

impl Iterator for SegmentOps {
    type Item = HostOp;

    fn next(&mut self) -> Option<HostOp> {
        if self.next >= self.sectors {
            return None;
        }
        let start = self.next;
        let bit = self.bit(start);
        let mut end = start + 1;
        while end < self.sectors && self.bit(end) == bit {
            end += 1;
        }
        self.next = end;
        let ss = self.t.sectorsize;
        let fd = self.t.fds[bit];
        let off = self.offset + self.t.offsets[bit] + start * ss;
        let len = (end - start) * ss;
        let buf = self.buffer + (start * ss) as usize;
        Some(match self.t.op {
            Op::Read => HostOp::Read {
                fd,
                buf,
                len: len as usize,
                off,
            },
            Op::Write => HostOp::Write {
                fd,
                buf,
                len: len as usize,
                off,
            },
            Op::Discard => HostOp::Punch { fd, off, len },
            Op::WriteZeroes => HostOp::Zero { fd, off, len },
            // A flush is one fdatasync of the whole request (see
            // Engine::serve); it has no per-segment operations.
            Op::Flush => return None,
        })
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
