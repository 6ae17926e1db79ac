// SPDX-License-Identifier: GPL-2.0
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};

use super::*;
use crate::abi::um_drivers::ubd::{
    UBD_OP_DISCARD, UBD_OP_FLUSH, UBD_OP_READ, UBD_OP_UNKNOWN, UBD_OP_WRITE, UBD_OP_WRITE_ZEROES,
};

/// A request with room for `N` descriptors, laid out as the C does: the
/// descriptors right where the flexible array member starts.
#[repr(C)]
struct Req<const N: usize> {
    head: IoThreadReq,
    descs: [IoDesc; N],
}

const _: () = assert!(core::mem::offset_of!(Req<1>, descs) == 64);
const _: () = assert!(core::mem::offset_of!(IoThreadReq, io_desc) == 64);

fn req<const N: usize>(op: libc::c_int, fds: [RawFd; 2], offset: u64) -> Box<Req<N>> {
    Box::new(Req {
        head: IoThreadReq {
            req: core::ptr::null_mut(),
            op,
            fds,
            offsets: [0, 0],
            offset,
            sectorsize: 512,
            error: -1,
            desc_cnt: N as libc::c_int,
            io_desc: [],
        },
        descs: core::array::from_fn(|_| IoDesc {
            buffer: core::ptr::null_mut(),
            length: 0,
            sector_mask: 0,
            cow_offset: u64::MAX,
            bitmap_words: [0; 2],
        }),
    })
}

fn ptr<const N: usize>(r: &mut Req<N>) -> *mut IoThreadReq {
    (r as *mut Req<N>).cast()
}

/// Both backends: io_uring (which this host must offer unless
/// io_uring_disabled says otherwise) and one call at a time.
fn engines() -> Vec<Engine> {
    let uring = Engine::with_io_uring();
    if let Backend::Sync { why } = uring.backend() {
        let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
            .map(|s| s.trim() != "0")
            .unwrap_or(false);
        assert!(
            disabled,
            "io_uring is not available here ({why}) although io_uring_disabled is 0"
        );
        eprintln!("io_uring is disabled on this host; testing the synchronous engine only");
    }
    vec![uring, Engine::synchronous(Errno::ENOSYS)]
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn image(content: &[u8]) -> (tempfile::TempPath, File) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content).unwrap();
    let (file, path) = f.into_parts();
    (path, file)
}

#[test]
fn reads_every_segment_of_a_batch() {
    for mut engine in engines() {
        let data = pattern(1 << 20, 7);
        let (_p, f) = image(&data);
        let fd = f.as_raw_fd();
        // 40 requests of three 4 KiB segments at scattered offsets.
        let mut bufs = vec![vec![0u8; 3 * 4096]; 40];
        let mut reqs: Vec<Box<Req<3>>> = Vec::new();
        for (i, buf) in bufs.iter_mut().enumerate() {
            let off = ((i * 7919) % 250) as u64 * 4096;
            let mut r = req::<3>(UBD_OP_READ, [fd, fd], off);
            for (j, d) in r.descs.iter_mut().enumerate() {
                d.buffer = buf[j * 4096..].as_mut_ptr().cast();
                d.length = 4096;
            }
            reqs.push(r);
        }
        let batch: Vec<_> = reqs.iter_mut().map(|r| ptr(r)).collect();
        // SAFETY: the requests and their buffers live until serve returns.
        unsafe { engine.serve(&batch) };
        for (i, r) in reqs.iter().enumerate() {
            assert_eq!(r.head.error, 0);
            let off = ((i * 7919) % 250) * 4096;
            assert_eq!(bufs[i], data[off..off + 3 * 4096], "request {i}");
        }
    }
}

#[test]
fn reads_past_the_end_of_an_odd_sized_image_as_zeros() {
    for mut engine in engines() {
        let data = pattern(1575, 3);
        let (_p, f) = image(&data);
        let fd = f.as_raw_fd();
        let mut buf = vec![0xffu8; 2048];
        let mut r = req::<1>(UBD_OP_READ, [fd, fd], 0);
        r.descs[0].buffer = buf.as_mut_ptr().cast();
        r.descs[0].length = 2048;
        // SAFETY: as above.
        unsafe { engine.serve(&[ptr(&mut r)]) };
        assert_eq!(r.head.error, 0);
        assert_eq!(buf[..1575], data[..]);
        assert!(buf[1575..].iter().all(|&b| b == 0));
    }
}

#[test]
fn writes_land_and_a_flush_syncs_the_writable_file() {
    for mut engine in engines() {
        let (_p, f) = image(&vec![0u8; 64 << 10]);
        let fd = f.as_raw_fd();
        let mut data = pattern(8192, 9);
        let mut w = req::<2>(UBD_OP_WRITE, [fd, fd], 16384);
        w.descs[0].buffer = data.as_mut_ptr().cast();
        w.descs[0].length = 4096;
        w.descs[1].buffer = data[4096..].as_mut_ptr().cast();
        w.descs[1].length = 4096;
        let mut flush = req::<0>(UBD_OP_FLUSH, [-1, fd], 0);
        // SAFETY: as above.
        unsafe { engine.serve(&[ptr(&mut w), ptr(&mut flush)]) };
        assert_eq!((w.head.error, flush.head.error), (0, 0));
        let mut back = vec![0u8; 8192];
        f.read_exact_at(&mut back, 16384).unwrap();
        assert_eq!(back, data);
        // A flush of a descriptor that is not open fails with its errno.
        let mut bad = req::<0>(UBD_OP_FLUSH, [fd, 1 << 20], 0);
        // SAFETY: as above.
        unsafe { engine.serve(&[ptr(&mut bad)]) };
        assert_eq!(bad.head.error, libc::EBADF);
    }
}

#[test]
fn a_failed_request_does_not_fail_its_neighbours() {
    for mut engine in engines() {
        let (path, f) = image(&vec![0u8; 64 << 10]);
        let ro = File::open(&path).unwrap();
        let mut data = pattern(4096, 1);
        let mut bad = req::<1>(UBD_OP_WRITE, [ro.as_raw_fd(), ro.as_raw_fd()], 0);
        bad.descs[0].buffer = data.as_mut_ptr().cast();
        bad.descs[0].length = 4096;
        let mut good = req::<1>(UBD_OP_WRITE, [f.as_raw_fd(), f.as_raw_fd()], 4096);
        good.descs[0].buffer = data.as_mut_ptr().cast();
        good.descs[0].length = 4096;
        let mut unknown = req::<0>(UBD_OP_UNKNOWN, [f.as_raw_fd(); 2], 0);
        // SAFETY: as above.
        unsafe { engine.serve(&[ptr(&mut bad), ptr(&mut good), ptr(&mut unknown)]) };
        assert_eq!(bad.head.error, libc::EBADF);
        assert_eq!(good.head.error, 0);
        assert_eq!(unknown.head.error, libc::EOPNOTSUPP);
        let mut back = vec![0u8; 4096];
        f.read_exact_at(&mut back, 4096).unwrap();
        assert_eq!(back, data);
    }
}

#[test]
fn discard_punches_a_hole_and_write_zeroes_zeroes() {
    for mut engine in engines() {
        let (_p, f) = image(&pattern(1 << 20, 5));
        f.sync_all().unwrap();
        let fd = f.as_raw_fd();
        let before = f.metadata().unwrap().blocks();
        let mut discard = req::<1>(UBD_OP_DISCARD, [fd, fd], 0);
        discard.descs[0].length = 512 << 10;
        let mut zero = req::<1>(UBD_OP_WRITE_ZEROES, [fd, fd], 768 << 10);
        zero.descs[0].length = 4096;
        // SAFETY: as above (no buffers).
        unsafe { engine.serve(&[ptr(&mut discard), ptr(&mut zero)]) };
        assert_eq!((discard.head.error, zero.head.error), (0, 0));
        let after = f.metadata().unwrap().blocks();
        assert!(
            after < before,
            "st_blocks {before} -> {after}: the discard freed nothing"
        );
        assert_eq!(f.metadata().unwrap().len(), 1 << 20, "KEEP_SIZE");
        let mut back = vec![1u8; 4096];
        f.read_exact_at(&mut back, 0).unwrap();
        assert!(back.iter().all(|&b| b == 0));
        f.read_exact_at(&mut back, 768 << 10).unwrap();
        assert!(back.iter().all(|&b| b == 0));
    }
}

#[test]
fn cow_bitmap_words_are_written_after_the_data_in_request_order() {
    for mut engine in engines() {
        let (_bp, backing) = image(&pattern(64 << 10, 2));
        let (_cp, cow) = image(&vec![0u8; 4096 + (64 << 10)]);
        let fds = [backing.as_raw_fd(), cow.as_raw_fd()];
        let mut data = pattern(1024, 8);
        let mut reqs: Vec<Box<Req<1>>> = (0..2u64)
            .map(|i| {
                let mut r = req::<1>(UBD_OP_WRITE, fds, i * 1024);
                r.head.offsets = [0, 4096];
                let d = &mut r.descs[0];
                d.buffer = data.as_mut_ptr().cast();
                d.length = 1024;
                d.sector_mask = 0b11;
                d.cow_offset = 128;
                // The second request's words include the first one's bits.
                d.bitmap_words = [if i == 0 { 0b11 } else { 0b1111 }, 0];
                r
            })
            .collect();
        let batch: Vec<_> = reqs.iter_mut().map(|r| ptr(r)).collect();
        // SAFETY: as above.
        unsafe { engine.serve(&batch) };
        assert!(reqs.iter().all(|r| r.head.error == 0));
        let mut words = [0u8; 16];
        cow.read_exact_at(&mut words, 128).unwrap();
        assert_eq!(u64::from_ne_bytes(words[..8].try_into().unwrap()), 0b1111);
        let mut back = vec![0u8; 2048];
        cow.read_exact_at(&mut back, 4096).unwrap();
        assert_eq!(back[..1024], data[..]);
        assert_eq!(back[1024..], data[..]);
        // The backing file is untouched.
        let mut b = vec![0u8; 64 << 10];
        backing.read_exact_at(&mut b, 0).unwrap();
        assert_eq!(b, pattern(64 << 10, 2));
    }
}

#[test]
fn batches_larger_than_the_ring_are_served_in_rounds() {
    for mut engine in engines() {
        let data = pattern(1 << 20, 4);
        let (_p, f) = image(&data);
        let fd = f.as_raw_fd();
        let n = RING_ENTRIES * 2 + 17;
        let mut bufs = vec![vec![0u8; 512]; n];
        let mut reqs: Vec<Box<Req<1>>> = (0..n)
            .map(|i| {
                let mut r = req::<1>(UBD_OP_READ, [fd, fd], i as u64 * 512);
                r.descs[0].buffer = bufs[i].as_mut_ptr().cast();
                r.descs[0].length = 512;
                r
            })
            .collect();
        let batch: Vec<_> = reqs.iter_mut().map(|r| ptr(r)).collect();
        // SAFETY: as above.
        unsafe { engine.serve(&batch) };
        for (i, b) in bufs.iter().enumerate() {
            assert_eq!(reqs[i].head.error, 0);
            assert_eq!(b[..], data[i * 512..(i + 1) * 512]);
        }
    }
}

#[test]
fn a_full_disk_is_an_error_of_the_request() {
    // /dev/full: every write fails with ENOSPC.
    let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
    for mut engine in engines() {
        let mut data = vec![0u8; 4096];
        let mut w = req::<1>(UBD_OP_WRITE, [full.as_raw_fd(); 2], 0);
        w.descs[0].buffer = data.as_mut_ptr().cast();
        w.descs[0].length = 4096;
        // SAFETY: as above.
        unsafe { engine.serve(&[ptr(&mut w)]) };
        assert_eq!(w.head.error, libc::ENOSPC);
    }
}

#[test]
fn contiguous_segments_are_gathered_and_a_short_read_is_finished_per_buffer() {
    for mut engine in engines() {
        // Three 1 KiB segments over a 1575-byte file: the first whole, the
        // second partly past the end, the third wholly past it.
        let data = pattern(1575, 6);
        let (_p, f) = image(&data);
        let fd = f.as_raw_fd();
        let mut bufs = vec![vec![0xffu8; 1024]; 3];
        let mut r = req::<3>(UBD_OP_READ, [fd, fd], 0);
        for (d, b) in r.descs.iter_mut().zip(bufs.iter_mut()) {
            d.buffer = b.as_mut_ptr().cast();
            d.length = 1024;
        }
        // SAFETY: as above.
        unsafe { engine.serve(&[ptr(&mut r)]) };
        assert_eq!(r.head.error, 0);
        let all: Vec<u8> = bufs.concat();
        assert_eq!(all[..1575], data[..]);
        assert!(all[1575..].iter().all(|&b| b == 0));
    }
}

#[test]
fn more_segments_than_one_transfer_gathers_are_split() {
    for mut engine in engines() {
        let (_p, f) = image(&vec![0u8; 1 << 20]);
        let fd = f.as_raw_fd();
        const N: usize = MAX_IOV + 6;
        let mut data = pattern(N * 512, 11);
        let mut w = req::<N>(UBD_OP_WRITE, [fd, fd], 4096);
        for (i, d) in w.descs.iter_mut().enumerate() {
            d.buffer = data[i * 512..].as_mut_ptr().cast();
            d.length = 512;
        }
        // SAFETY: as above.
        unsafe { engine.serve(&[ptr(&mut w)]) };
        assert_eq!(w.head.error, 0);
        let mut back = vec![0u8; N * 512];
        f.read_exact_at(&mut back, 4096).unwrap();
        assert_eq!(back, data);
    }
}
