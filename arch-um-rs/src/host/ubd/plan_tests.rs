// SPDX-License-Identifier: GPL-2.0
use super::*;

fn desc(buffer: usize, length: u64, sector_mask: u64) -> IoDesc {
    IoDesc {
        buffer: buffer as *mut libc::c_char,
        length,
        sector_mask,
        cow_offset: u64::MAX,
        bitmap_words: [0; 2],
    }
}

const IMAGE: RawFd = 10;
const COW: RawFd = 11;

fn target(op: Op) -> Target {
    Target {
        op,
        fds: [IMAGE, COW],
        offsets: [0, 4096],
        sectorsize: 512,
    }
}

#[test]
fn plain_segment_is_one_operation() {
    let ops: Vec<_> = segment_ops(target(Op::Read), &desc(0x1000, 4096, 0), 8192).collect();
    assert_eq!(
        ops,
        [HostOp::Read {
            fd: IMAGE,
            buf: 0x1000,
            len: 4096,
            off: 8192
        }]
    );
}

#[test]
fn cow_mask_splits_into_runs_at_the_edges() {
    // Sectors 0-1 in the COW file, 2-6 in the image, 7 in the COW file.
    let mask = 0b1000_0011;
    let ops: Vec<_> = segment_ops(target(Op::Write), &desc(0x10000, 4096, mask), 1024).collect();
    assert_eq!(
        ops,
        [
            HostOp::Write {
                fd: COW,
                buf: 0x10000,
                len: 1024,
                off: 1024 + 4096
            },
            HostOp::Write {
                fd: IMAGE,
                buf: 0x10000 + 1024,
                len: 5 * 512,
                off: 1024 + 1024
            },
            HostOp::Write {
                fd: COW,
                buf: 0x10000 + 3584,
                len: 512,
                off: 1024 + 4096 + 3584
            },
        ]
    );
}

#[test]
fn every_sector_alternating_gives_one_op_per_sector() {
    let mask = 0x5555_5555_5555_5555;
    let ops: Vec<_> = segment_ops(target(Op::Read), &desc(0, 64 * 512, mask), 0).collect();
    assert_eq!(ops.len(), 64);
    let total: usize = ops
        .iter()
        .map(|o| match o {
            HostOp::Read { len, .. } => *len,
            _ => 0,
        })
        .sum();
    assert_eq!(total, 64 * 512);
    assert!(matches!(ops[0], HostOp::Read { fd: COW, .. }));
    assert!(matches!(ops[63], HostOp::Read { fd: IMAGE, .. }));
}

#[test]
fn sectors_past_the_mask_are_in_the_image() {
    // 65 sectors: the mask has 64 bits; the last sector is in fds[0].
    let ops: Vec<_> = segment_ops(target(Op::Read), &desc(0, 65 * 512, u64::MAX), 0).collect();
    assert_eq!(ops.len(), 2);
    assert!(matches!(
        ops[1],
        HostOp::Read {
            fd: IMAGE,
            len: 512,
            off: 32768,
            ..
        }
    ));
}

#[test]
fn discard_and_write_zeroes_map_to_fallocate_ranges() {
    let d = desc(0, 8 * 512, 0);
    assert_eq!(
        segment_ops(target(Op::Discard), &d, 4096).collect::<Vec<_>>(),
        [HostOp::Punch {
            fd: IMAGE,
            off: 4096,
            len: 4096
        }]
    );
    assert_eq!(
        segment_ops(target(Op::WriteZeroes), &d, 0).collect::<Vec<_>>(),
        [HostOp::Zero {
            fd: IMAGE,
            off: 0,
            len: 4096
        }]
    );
}

#[test]
fn empty_and_degenerate_segments_have_no_operations() {
    assert_eq!(segment_ops(target(Op::Read), &desc(0, 0, 0), 0).count(), 0);
    assert_eq!(
        segment_ops(target(Op::Flush), &desc(0, 512, 0), 0).count(),
        0
    );
    let mut t = target(Op::Read);
    t.sectorsize = 0;
    assert_eq!(segment_ops(t, &desc(0, 4096, 0), 0).count(), 0);
}

#[test]
fn ops_from_c() {
    use crate::abi::um_drivers::ubd::UBD_OP_UNKNOWN;
    assert_eq!(Op::from_c(UBD_OP_READ), Some(Op::Read));
    assert_eq!(Op::from_c(UBD_OP_WRITE_ZEROES), Some(Op::WriteZeroes));
    assert_eq!(Op::from_c(UBD_OP_UNKNOWN), None);
    assert_eq!(Op::from_c(-1), None);
}
