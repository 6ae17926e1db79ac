// SPDX-License-Identifier: GPL-2.0
//! The request structures of `arch/um/drivers/ubd.h` (patch 0012), which
//! the driver's kernel half fills and the I/O thread serves. The ABI guard
//! checks them against the header at build time.

use core::ffi::{c_char, c_int, c_ulong, c_ulonglong, c_void};

/// `enum ubd_op`.
pub const UBD_OP_READ: c_int = 0;
pub const UBD_OP_WRITE: c_int = 1;
pub const UBD_OP_FLUSH: c_int = 2;
pub const UBD_OP_DISCARD: c_int = 3;
pub const UBD_OP_WRITE_ZEROES: c_int = 4;
pub const UBD_OP_UNKNOWN: c_int = 5;

/// `UBD_MAX_REQUEST`: sectors per request, one bit each in a sector mask.
pub const UBD_MAX_REQUEST: usize = 8 * core::mem::size_of::<c_ulong>();

/// `struct io_desc`: one segment of a request.
#[repr(C)]
#[derive(Debug)]
pub struct IoDesc {
    /// The guest's buffer; NULL for discard and write-zeroes.
    pub buffer: *mut c_char,
    pub length: c_ulong,
    /// Bit n set: sector n of the segment is in the COW file (fds[1] at
    /// offsets[1]); clear: in fds[0].
    pub sector_mask: c_ulong,
    /// Where `bitmap_words` go in the COW file after the data is written;
    /// -1 (all ones): no bitmap update.
    pub cow_offset: c_ulonglong,
    pub bitmap_words: [c_ulong; 2],
}

/// `struct io_thread_req`, followed in memory by `desc_cnt` [`IoDesc`]s.
#[repr(C)]
#[derive(Debug)]
pub struct IoThreadReq {
    /// The block layer's request (opaque here).
    pub req: *mut c_void,
    /// `enum ubd_op`.
    pub op: c_int,
    pub fds: [c_int; 2],
    pub offsets: [c_ulong; 2],
    pub offset: c_ulonglong,
    pub sectorsize: c_int,
    /// 0, or the errno of the first failed host call.
    pub error: c_int,
    pub desc_cnt: c_int,
    /// The flexible array member `io_desc[]`.
    pub io_desc: [IoDesc; 0],
}
