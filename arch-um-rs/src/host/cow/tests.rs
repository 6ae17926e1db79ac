// SPDX-License-Identifier: GPL-2.0
//! COW headers built byte by byte at the offsets of the C structs, parsed,
//! written, and compared with what the C tools write.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use proptest::prelude::*;

use super::properties::check_header_properties;
use super::*;

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// Copies `b` into `h` at `at`.
fn put(h: &mut [u8], at: usize, b: &[u8]) {
    h[at..at + b.len()].copy_from_slice(b);
}

/// A version-1 header as an x86_64 C program wrote it: host byte order,
/// magic at 0, version 4, name 8..264, mtime 264, size 268, sectorsize 276.
fn v1_image(name: &[u8], mtime: u32, size: u64, sectorsize: i32) -> Vec<u8> {
    let mut h = vec![0u8; 280];
    put(&mut h, 0, &COW_MAGIC.to_ne_bytes());
    put(&mut h, 4, &1u32.to_ne_bytes());
    put(&mut h, 8, name);
    put(&mut h, 264, &mtime.to_ne_bytes());
    put(&mut h, 268, &size.to_ne_bytes());
    put(&mut h, 276, &sectorsize.to_ne_bytes());
    h
}

/// A version-2 header: big-endian, name 8..4104, mtime 4104, size 4108,
/// sectorsize 4116, 4120 bytes.
fn v2_image(name: &[u8], mtime: u32, size: u64, sectorsize: i32) -> Vec<u8> {
    let mut h = vec![0u8; 4120];
    put(&mut h, 0, &COW_MAGIC.to_be_bytes());
    put(&mut h, 4, &2u32.to_be_bytes());
    put(&mut h, 8, name);
    put(&mut h, 4104, &mtime.to_be_bytes());
    put(&mut h, 4108, &size.to_be_bytes());
    put(&mut h, 4116, &sectorsize.to_be_bytes());
    h
}

/// A version-3 header: big-endian, mtime 8, size 12, sectorsize 20,
/// alignment 24, cow_format 28, name 32..4128.
fn v3_image(name: &[u8], mtime: u32, size: u64, sectorsize: u32, align: u32) -> Vec<u8> {
    let mut h = vec![0u8; 4128];
    put(&mut h, 0, &COW_MAGIC.to_be_bytes());
    put(&mut h, 4, &3u32.to_be_bytes());
    put(&mut h, 8, &mtime.to_be_bytes());
    put(&mut h, 12, &size.to_be_bytes());
    put(&mut h, 20, &sectorsize.to_be_bytes());
    put(&mut h, 24, &align.to_be_bytes());
    put(&mut h, 32, name);
    h
}

/// A version-3 header as the pre-2005 64-bit writer laid it out: a 64-bit
/// host-order mtime holding `htonl(mtime)` at 8, size 16, sectorsize 24,
/// alignment 28, cow_format 32, name 36..4132, padded to 4136.
fn v3_broken_image(name: &[u8], mtime: u32, size: u64, sectorsize: u32, align: u32) -> Vec<u8> {
    let mut h = vec![0u8; 4136];
    put(&mut h, 0, &COW_MAGIC.to_be_bytes());
    put(&mut h, 4, &3u32.to_be_bytes());
    put(&mut h, 8, &u64::from(mtime.to_be()).to_ne_bytes());
    put(&mut h, 16, &size.to_be_bytes());
    put(&mut h, 24, &sectorsize.to_be_bytes());
    put(&mut h, 28, &align.to_be_bytes());
    put(&mut h, 36, name);
    h
}

#[test]
fn version_1_is_read_in_host_order_with_the_sector_size_as_alignment() {
    let h = parse_header(&v1_image(b"/images/root_fs", 0x1234_5678, 1575, 512)).unwrap();
    assert_eq!(
        h,
        CowHeader {
            format: Format::V1,
            version: 1,
            backing_file: b"/images/root_fs".to_vec(),
            mtime: 0x1234_5678,
            size: 1575,
            sectorsize: 512,
            align: 512,
            bitmap_offset: 280,
            // The old arithmetic: (1575 + 511) / 4096.
            bitmap_len: 0,
            data_offset: 512,
        }
    );
}

#[test]
fn a_byte_swapped_magic_swaps_the_version_but_not_the_version_1_fields() {
    let mut img = v1_image(b"/b", 7, 1 << 20, 512);
    put(&mut img, 0, &COW_MAGIC.to_be_bytes());
    put(&mut img, 4, &1u32.to_be_bytes());
    let h = parse_header(&img).unwrap();
    assert_eq!(
        (h.version, h.size, h.sectorsize, h.mtime),
        (1, 1 << 20, 512, 7)
    );
}

#[test]
fn version_2_is_big_endian_after_a_4096_byte_name() {
    let h = parse_header(&v2_image(b"backing", u32::MAX, 1 << 20, 512)).unwrap();
    assert_eq!(h.format, Format::V2);
    assert_eq!(h.backing_file, b"backing");
    // The on-disk mtime is unsigned.
    assert_eq!(h.mtime, i64::from(u32::MAX));
    assert_eq!((h.sectorsize, h.align), (512, 512));
    assert_eq!(h.bitmap_offset, 4120);
    assert_eq!(h.bitmap_len, 256);
    assert_eq!(h.data_offset, 4608);
}

#[test]
fn version_3_rounds_the_bitmap_offset_up_to_the_alignment() {
    let h = parse_header(&v3_image(b"/b/root", 1_700_000_000, 1575, 512, 4096)).unwrap();
    assert_eq!(
        h,
        CowHeader {
            format: Format::V3,
            version: 3,
            backing_file: b"/b/root".to_vec(),
            mtime: 1_700_000_000,
            size: 1575,
            sectorsize: 512,
            align: 4096,
            bitmap_offset: 8192,
            bitmap_len: 1,
            data_offset: 12288,
        }
    );
}

#[test]
fn a_host_order_magic_with_a_host_order_version_3_still_has_big_endian_fields() {
    let mut img = v3_image(b"/b", 1, 2048, 512, 512);
    put(&mut img, 0, &COW_MAGIC.to_ne_bytes());
    put(&mut img, 4, &3u32.to_ne_bytes());
    let h = parse_header(&img).unwrap();
    assert_eq!(
        (h.format, h.size, h.sectorsize, h.align),
        (Format::V3, 2048, 512, 512)
    );
}

#[test]
fn the_broken_64_bit_version_3_is_recognised_and_recovered() {
    let img = v3_broken_image(b"/old/backing", 1_100_000_000, 1 << 30, 512, 4096);
    // What makes it recognisable: zero where a v3 name would start.
    assert_eq!(&img[32..36], &[0; 4]);
    let h = parse_header(&img).unwrap();
    assert_eq!(
        h,
        CowHeader {
            format: Format::V3Broken,
            version: 3,
            backing_file: b"/old/backing".to_vec(),
            mtime: 1_100_000_000,
            size: 1 << 30,
            sectorsize: 512,
            align: 4096,
            bitmap_offset: 8192,
            bitmap_len: 1 << 18,
            data_offset: 8192 + (1 << 18),
        }
    );
}

#[test]
fn an_encoded_header_has_the_c_byte_layout() {
    let h = encode_header_v3(
        c"/srv/root_fs",
        0x0102_0304,
        0x1122_3344_5566_7788,
        512,
        4096,
    )
    .unwrap();
    assert_eq!(h.len(), 4128);
    assert_eq!(&h[0..4], b"OOOM");
    assert_eq!(&h[4..8], &[0, 0, 0, 3]);
    assert_eq!(&h[8..12], &[1, 2, 3, 4]);
    assert_eq!(
        &h[12..20],
        &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
    );
    assert_eq!(&h[20..24], &[0, 0, 2, 0]);
    assert_eq!(&h[24..28], &[0, 0, 0x10, 0]);
    assert_eq!(&h[28..32], &[0; 4], "cow_format COW_BITMAP");
    assert_eq!(&h[32..44], b"/srv/root_fs");
    assert!(h[44..].iter().all(|&b| b == 0), "unused bytes are zero");
}

#[test]
fn an_encoded_header_parses_back() {
    let name = CString::new(vec![b'x'; PATH_LEN_V3 - 1]).unwrap();
    let mut img = encode_header_v3(&name, -1, 5 << 20, 512, 512).unwrap();
    // The reader asks for the size of the largest layout.
    img.resize(HEADER_READ_LEN, 0);
    let h = parse_header(&img).unwrap();
    assert_eq!(h.format, Format::V3);
    assert_eq!(h.backing_file, name.as_bytes());
    // Stored as unsigned 32 bits, as the C does.
    assert_eq!(h.mtime, i64::from(u32::MAX));
    assert_eq!((h.size, h.sectorsize, h.align), (5 << 20, 512, 512));
    assert_eq!(h.bitmap_offset, 4608);
    assert_eq!(h.bitmap_len, 1280);
    assert_eq!(h.data_offset, 4608 + 1536);
}

#[test]
fn encoding_refuses_a_name_without_room_for_its_nul() {
    let name = CString::new(vec![b'x'; PATH_LEN_V3]).unwrap();
    let e = encode_header_v3(&name, 0, 0, 512, 512).unwrap_err();
    assert_eq!(
        e,
        HeaderError::NameTooLong {
            len: 4096,
            max: 4095
        }
    );
    assert!(e.to_string().contains("4095"), "{e}");
}

#[test]
fn cow_sizes_follows_the_c_arithmetic() {
    // Version 3, 1575 bytes = 4 sectors (the last partial) = 1 bitmap byte.
    assert_eq!(cow_sizes(3, 1575, 512, 512, 4608), Some((1, 5120)));
    assert_eq!(cow_sizes(3, 1575, 512, 4096, 8192), Some((1, 12288)));
    // Whole bytes of bitmap, and one more for a ninth sector.
    assert_eq!(cow_sizes(3, 4096, 512, 512, 4608), Some((1, 5120)));
    assert_eq!(cow_sizes(3, 4097, 512, 512, 4608), Some((2, 5120)));
    // An empty backing file: no bitmap, data right at the bitmap offset.
    assert_eq!(cow_sizes(3, 0, 512, 4096, 8192), Some((0, 8192)));
    // An odd alignment is legal, if strange.
    assert_eq!(cow_sizes(3, 1575, 512, 1000, 5000), Some((1, 6000)));
    // Before version 3 the bitmap length rounds down (the old bug) and the
    // data is sector-aligned.
    assert_eq!(cow_sizes(2, 1575, 512, 0, 4120), Some((0, 4608)));
    assert_eq!(cow_sizes(1, 4097, 512, 0, 280), Some((1, 512)));
    assert_eq!(cow_sizes(2, 1 << 20, 512, 0, 4120), Some((256, 4608)));
}

#[test]
fn cow_sizes_refuses_zero_divisors_and_overflow() {
    assert_eq!(cow_sizes(3, 1575, 0, 512, 4608), None);
    assert_eq!(cow_sizes(3, 1575, 512, 0, 4608), None);
    assert_eq!(cow_sizes(2, 1575, 0, 512, 4120), None);
    assert_eq!(cow_sizes(3, u64::MAX, 512, 512, 4608), None);
    assert_eq!(cow_sizes(3, 0, 512, 512, u64::MAX), None);
}

#[test]
fn bitmap_bits_are_lsb_first_and_stop_at_the_image_edge() {
    // 1575 bytes: sectors 0..=3, one bitmap byte.
    let h = parse_header(&v3_image(b"/b", 0, 1575, 512, 512)).unwrap();
    assert_eq!(sector_count(h.size, h.sectorsize), Some(4));
    let mut bitmap = vec![0u8; h.bitmap_len as usize];
    assert_eq!(set_bit(&mut bitmap, 0), Some(false));
    assert_eq!(set_bit(&mut bitmap, 3), Some(false));
    assert_eq!(set_bit(&mut bitmap, 3), Some(true));
    assert_eq!(bitmap, [0b0000_1001]);
    assert_eq!(test_bit(&bitmap, 3), Some(true));
    assert_eq!(test_bit(&bitmap, 2), Some(false));
    // The rest of the last byte exists but is never used.
    assert_eq!(test_bit(&bitmap, 7), Some(false));
    assert_eq!(test_bit(&bitmap, 8), None);
    assert_eq!(set_bit(&mut bitmap, 8), None);
    assert_eq!(bitmap, [0b0000_1001]);
    assert_eq!(test_bit(&bitmap, u64::MAX), None);

    // 4097 bytes: a ninth sector, the first bit of a second byte.
    let h = parse_header(&v3_image(b"/b", 0, 4097, 512, 512)).unwrap();
    let mut bitmap = vec![0u8; h.bitmap_len as usize];
    assert_eq!(set_bit(&mut bitmap, 8), Some(false));
    assert_eq!(bitmap, [0, 1]);
    // The version-2 rounding leaves the last sector without a bit.
    let h = parse_header(&v2_image(b"/b", 0, 4097, 512)).unwrap();
    assert_eq!(h.bitmap_len, 1);
    assert_eq!(test_bit(&vec![0u8; h.bitmap_len as usize], 8), None);
    assert_eq!(sector_count(1, 0), None);
}

/// `parse_header(img)` fails, with `want` in its message.
fn rejected(img: &[u8], want: &[&str]) -> HeaderError {
    let e = parse_header(img).unwrap_err();
    let msg = e.to_string();
    for w in want {
        assert!(msg.contains(w), "{msg:?} lacks {w:?}");
    }
    e
}

#[test]
fn short_and_foreign_buffers_are_told_apart() {
    assert_eq!(
        rejected(b"OOO", &["short header", "8 bytes", "got 3"]),
        HeaderError::Short { needed: 8, got: 3 }
    );
    assert!(matches!(
        rejected(&[0u8; 4136], &["not a COW file"]),
        HeaderError::NotCow { magic: 0 }
    ));
    // Exactly 8 bytes of a valid start: a truncated header, not a short one.
    assert!(matches!(
        rejected(
            &v3_image(b"/b", 0, 0, 512, 512)[..8],
            &["V3", "4128", "got 8"]
        ),
        HeaderError::Truncated {
            format: Format::V3,
            needed: 4128,
            got: 8
        }
    ));
}

#[test]
fn truncated_and_unknown_versions_are_rejected() {
    let mut img = v3_image(b"/b", 0, 0, 512, 512);
    put(&mut img, 4, &4u32.to_be_bytes());
    assert_eq!(
        rejected(&img, &["invalid COW version 4"]),
        HeaderError::UnknownVersion(4)
    );
    rejected(&v1_image(b"/b", 0, 0, 512)[..279], &["V1", "280", "279"]);
    rejected(&v2_image(b"/b", 0, 0, 512)[..4119], &["V2", "4120", "4119"]);
    rejected(
        &v3_image(b"/b", 0, 0, 512, 512)[..4127],
        &["V3", "4128", "4127"],
    );
    rejected(
        &v3_broken_image(b"/b", 0, 0, 512, 512)[..4135],
        &["V3", "broken", "4136", "4135"],
    );
}

#[test]
fn a_name_without_nul_in_its_field_is_rejected() {
    let mut img = v1_image(b"", 0, 0, 512);
    img[8..264].fill(b'a');
    rejected(&img, &["NUL-terminated", "256-byte"]);
    let mut img = v3_image(b"", 0, 0, 512, 512);
    img[32..].fill(b'a');
    rejected(&img, &["NUL-terminated", "4096-byte"]);
}

#[test]
fn nonsense_sector_sizes_and_a_zero_alignment_are_rejected() {
    for bad in [0, 1000, 256, 1 << 20, -512] {
        let e = rejected(&v2_image(b"/b", 0, 1 << 20, bad), &["sector size", "512"]);
        assert_eq!(e, HeaderError::BadSectorSize(bad as u32));
        rejected(&v1_image(b"/b", 0, 1 << 20, bad), &["sector size"]);
    }
    for good in [512, 1024, 4096, 65536] {
        parse_header(&v3_image(b"/b", 0, 1 << 20, good, 4096)).unwrap();
    }
    assert_eq!(
        rejected(&v3_image(b"/b", 0, 1 << 20, 512, 0), &["align == 0"]),
        HeaderError::ZeroAlignment
    );
    rejected(&v3_broken_image(b"/b", 0, 1 << 20, 512, 0), &["align == 0"]);
}

#[test]
fn geometry_beyond_the_c_ints_is_rejected() {
    // The data offset would not fit the int of the C interface.
    rejected(
        &v3_image(b"/b", 0, u64::MAX / 2, 512, 4096),
        &["beyond offset 2147483647"],
    );
    rejected(
        &v3_image(b"/b", 0, 0, 512, 0x8000_0000),
        &["alignment 2147483648"],
    );
    rejected(
        &v3_image(b"/b", 0, u64::MAX, 512, 512),
        &["size 18446744073709551615"],
    );
    rejected(&v2_image(b"/b", 0, u64::MAX - 10, 512), &["beyond"]);
    // The largest image that still fits: bitmap and data offset under 2^31.
    let size = (0x7fff_0000u64 - 8192) * 4096;
    let h = parse_header(&v3_image(b"/b", 0, size, 512, 4096)).unwrap();
    assert!(h.data_offset <= MAX_OFFSET);
}

// ---------------------------------------------------------------------------
// absolutize

#[test]
fn absolutize_resolves_the_directory_and_keeps_the_last_component() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir(real.join("images")).unwrap();
    std::os::unix::fs::symlink(real.join("images"), real.join("link")).unwrap();
    std::os::unix::fs::symlink("elsewhere", real.join("images/last")).unwrap();

    let got = absolutize(&cpath(&real.join("link/./last"))).unwrap();
    // "link/." resolves; "last" stays as written even though it is a link.
    assert_eq!(got, cpath(&real.join("images/last")));
    let got = absolutize(&cpath(&real.join("images/../link/root_fs"))).unwrap();
    assert_eq!(got, cpath(&real.join("images/root_fs")));
}

#[test]
fn absolutize_puts_a_bare_name_in_the_current_directory() {
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(absolutize(c"root_fs").unwrap(), cpath(&cwd.join("root_fs")));
}

#[test]
fn absolutize_handles_the_root_directory() {
    // The C tried chdir("") here and failed.
    assert_eq!(absolutize(c"/root_fs").unwrap(), c"/root_fs");
    assert_eq!(absolutize(c"/tmp/../x").unwrap(), c"/x");
}

#[test]
fn absolutize_reports_directories_it_cannot_enter() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, b"").unwrap();
    let e = absolutize(&cpath(&dir.path().join("missing/x"))).unwrap_err();
    assert!(
        matches!(
            e,
            CowError::Dir {
                errno: Errno::ENOENT,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("Can't cd to"), "{e}");
    assert_eq!(e.errno(), Errno::EINVAL);
    let e = absolutize(&cpath(&file.join("x"))).unwrap_err();
    assert!(
        matches!(
            e,
            CowError::Dir {
                errno: Errno::ENOTDIR,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn absolutize_refuses_names_that_do_not_fit_the_header() {
    let name = CString::new(vec![b'n'; PATH_LEN_V3 - 1]).unwrap();
    let e = absolutize(&name).unwrap_err();
    assert!(matches!(e, CowError::AbsoluteTooLong(_)), "{e:?}");
    assert!(e.to_string().contains("into 4096 chars"), "{e}");
}

// ---------------------------------------------------------------------------
// writing

/// A backing file of `size` bytes (sparse) in `dir`, and its canonical name.
fn backing(dir: &Path, size: u64) -> CString {
    let path = std::fs::canonicalize(dir).unwrap().join("backing.img");
    File::create(&path).unwrap().set_len(size).unwrap();
    cpath(&path)
}

fn read_header(path: &Path) -> CowHeader {
    let bytes = std::fs::read(path).unwrap();
    parse_header(&bytes[..HEADER_READ_LEN.min(bytes.len())]).unwrap()
}

#[test]
fn init_cow_file_writes_a_header_and_a_sparse_file_of_full_length() {
    let dir = tempfile::tempdir().unwrap();
    let size = 64 << 20;
    let back = backing(dir.path(), size);
    let cow_path = dir.path().join("cow.img");
    let cow = File::create(&cow_path).unwrap();

    let layout = init_cow_file(cow.as_raw_fd(), &back, 512, 4096).unwrap();
    let bitmap_len = (64 << 20) / 512 / 8;
    assert_eq!(
        layout,
        Layout {
            bitmap_offset: 8192,
            bitmap_len,
            data_offset: 8192 + bitmap_len,
        }
    );
    let meta = std::fs::metadata(&cow_path).unwrap();
    assert_eq!(meta.len(), layout.data_offset + size);
    // The header page and the last byte: a few blocks, not 64 MiB.
    assert!(meta.blocks() * 512 <= 64 << 10, "{} blocks", meta.blocks());

    let h = read_header(&cow_path);
    let back_meta = std::fs::metadata(back.to_str().unwrap()).unwrap();
    assert_eq!(h.backing_file, back.as_bytes());
    assert_eq!(h.mtime, back_meta.mtime());
    assert_eq!((h.size, h.sectorsize, h.align), (size, 512, 4096));
    assert_eq!(
        (h.bitmap_offset, h.bitmap_len, h.data_offset),
        (layout.bitmap_offset, layout.bitmap_len, layout.data_offset)
    );
    let bytes = std::fs::read(&cow_path).unwrap();
    let bitmap = &bytes[layout.bitmap_offset as usize..][..layout.bitmap_len as usize];
    assert!(bitmap.iter().all(|&b| b == 0));
}

#[test]
fn init_cow_file_over_a_small_odd_sized_file() {
    let dir = tempfile::tempdir().unwrap();
    let back = backing(dir.path(), 1575);
    let cow_path = dir.path().join("cow.img");
    let cow = File::create(&cow_path).unwrap();
    let layout = init_cow_file(cow.as_raw_fd(), &back, 512, 512).unwrap();
    assert_eq!(
        layout,
        Layout {
            bitmap_offset: 4608,
            bitmap_len: 1,
            data_offset: 5120
        }
    );
    assert_eq!(std::fs::metadata(&cow_path).unwrap().len(), 5120 + 1575);
}

#[test]
fn init_cow_file_over_an_empty_backing_file_ends_at_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let back = backing(dir.path(), 0);
    let cow_path = dir.path().join("cow.img");
    let cow = File::create(&cow_path).unwrap();
    let layout = init_cow_file(cow.as_raw_fd(), &back, 512, 4096).unwrap();
    assert_eq!(layout.data_offset, 8192);
    assert_eq!(std::fs::metadata(&cow_path).unwrap().len(), 8192);
    assert_eq!(read_header(&cow_path).size, 0);
}

#[test]
fn write_header_rewrites_the_start_of_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let back = backing(dir.path(), 1 << 20);
    let cow_path = dir.path().join("cow.img");
    std::fs::write(&cow_path, vec![0xa5u8; 10_000]).unwrap();
    let cow = std::fs::OpenOptions::new()
        .write(true)
        .open(&cow_path)
        .unwrap();
    nix::unistd::lseek(cow.as_raw_fd(), 777, nix::unistd::Whence::SeekSet).unwrap();

    assert_eq!(write_header(cow.as_raw_fd(), &back, 512, 512), Ok(1 << 20));
    let offset = nix::unistd::lseek(cow.as_raw_fd(), 0, nix::unistd::Whence::SeekCur).unwrap();
    assert_eq!(offset, 4128, "left after the header");
    let bytes = std::fs::read(&cow_path).unwrap();
    assert_eq!(bytes.len(), 10_000);
    assert_eq!(bytes[4128], 0xa5, "nothing after the header touched");
    assert_eq!(read_header(&cow_path).backing_file, back.as_bytes());
}

#[test]
fn write_errors_carry_the_errno_and_the_c_message() {
    let dir = tempfile::tempdir().unwrap();
    let back = backing(dir.path(), 4096);
    let cow_path = dir.path().join("cow.img");
    let cow = File::create(&cow_path).unwrap();
    let fd = cow.as_raw_fd();

    let e = write_header(-1, &back, 512, 512).unwrap_err();
    assert_eq!(e, CowError::Seek(Errno::EBADF));
    assert_eq!(e.to_string(), "write_cow_header - lseek failed, err = 9");

    let long = CString::new(vec![b'x'; PATH_LEN_V3]).unwrap();
    let e = write_header(fd, &long, 512, 512).unwrap_err();
    assert_eq!(e.errno(), Errno::EINVAL);
    assert!(
        e.to_string()
            .contains("is too long - names are limited to 4095 characters")
    );

    let missing = cpath(&dir.path().join("missing.img"));
    let e = init_cow_file(fd, &missing, 512, 512).unwrap_err();
    assert_eq!(e.errno(), Errno::ENOENT);
    let msg = e.to_string();
    assert!(msg.contains("mtime request failed, err = 2"), "{msg}");
    assert!(msg.contains("missing.img"), "{msg}");

    for (sectorsize, align) in [(0, 512), (512, 0), (100, 512), (512, u32::MAX)] {
        let e = init_cow_file(fd, &back, sectorsize, align).unwrap_err();
        assert!(matches!(e, CowError::Invalid(_)), "{e:?}");
        assert_eq!(e.errno(), Errno::EINVAL);
    }
    assert_eq!(
        std::fs::metadata(&cow_path).unwrap().len(),
        0,
        "nothing written"
    );

    let read_only = File::open(&cow_path).unwrap();
    let e = init_cow_file(read_only.as_raw_fd(), &back, 512, 512).unwrap_err();
    assert_eq!(e, CowError::WriteHeader(Errno::EBADF));
    assert_eq!(
        e.display_with(Some(c"cow.img")).to_string(),
        "write_cow_header - write of header to new COW file 'cow.img' failed, err = 9"
    );
}

/// `uml_mkcow` from Debian's uml-utilities, if installed.
const UML_MKCOW: &str = "/usr/bin/uml_mkcow";

#[test]
fn files_made_by_uml_mkcow_parse_and_match_ours() {
    if !Path::new(UML_MKCOW).exists() {
        eprintln!("skipped: {UML_MKCOW} is not installed (Debian package uml-utilities)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for size in [0, 1575, 3 << 20] {
        let back = backing(dir.path(), size);
        let theirs = dir.path().join(format!("theirs-{size}.cow"));
        let status = std::process::Command::new(UML_MKCOW)
            .arg(&theirs)
            .arg(back.to_str().unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "{status}");

        let h = read_header(&theirs);
        assert_eq!(h.format, Format::V3);
        assert_eq!(h.backing_file, back.as_bytes());
        assert_eq!(h.size, size);
        let their_bytes = std::fs::read(&theirs).unwrap();
        assert_eq!(their_bytes.len() as u64, h.data_offset + size);

        // The same backing file through our writer, with uml_mkcow's geometry.
        let ours = dir.path().join(format!("ours-{size}.cow"));
        let f = File::create(&ours).unwrap();
        let layout = init_cow_file(f.as_raw_fd(), &back, h.sectorsize, h.align).unwrap();
        assert_eq!(
            (layout.bitmap_offset, layout.bitmap_len, layout.data_offset),
            (h.bitmap_offset, h.bitmap_len, h.data_offset)
        );
        assert_eq!(std::fs::read(&ours).unwrap(), their_bytes);
    }
}

// ---------------------------------------------------------------------------
// robustness

fn any_valid_header() -> impl Strategy<Value = Vec<u8>> {
    let name = proptest::collection::vec(1u8..=255, 1..300);
    (
        name,
        any::<u32>(),
        any::<u64>(),
        1u32..=128,
        0u32..=16384,
        0u8..4,
    )
        .prop_map(|(name, mtime, size, sectors, align, kind)| {
            let name = &name[..name.len().min(255)];
            let sectorsize = sectors * 512;
            // Sizes the arithmetic can take, most of the time.
            let size = size >> 24;
            let mut img = match kind {
                0 => v1_image(name, mtime, size, sectorsize as i32),
                1 => v2_image(name, mtime, size, sectorsize as i32),
                2 => v3_image(name, mtime, size, sectorsize, align),
                _ => v3_broken_image(name, mtime, size, sectorsize, align),
            };
            img.resize(HEADER_READ_LEN, 0);
            img
        })
}

proptest! {
    #[test]
    fn parse_header_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..5000),
    ) {
        check_header_properties(&bytes);
    }

    #[test]
    fn parse_header_never_panics_on_mutated_headers(
        mut img in any_valid_header(),
        edits in proptest::collection::vec((0usize..64, any::<u8>()), 1..8),
        tail_edits in proptest::collection::vec((0usize..HEADER_READ_LEN, any::<u8>()), 0..8),
        cut in 0usize..=HEADER_READ_LEN,
    ) {
        // Mostly the fixed fields at the front, sometimes anywhere.
        for (at, b) in edits.into_iter().chain(tail_edits) {
            img[at] = b;
        }
        img.truncate(cut.max(HEADER_READ_LEN / 2));
        check_header_properties(&img);
        check_header_properties(&img[..cut]);
    }

    #[test]
    fn valid_headers_parse(img in any_valid_header()) {
        check_header_properties(&img);
        // A huge alignment or a zero one may be refused, nothing else.
        if let Err(e) = parse_header(&img) {
            prop_assert!(
                matches!(e, HeaderError::Overflow { .. } | HeaderError::ZeroAlignment),
                "{e}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// the fuzz corpus (fuzz/corpus/cow_header): seeds and regression inputs

fn fuzz_corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/cow_header")
}

/// The seeds, each one header of a format as its writer laid it out.
const FUZZ_SEEDS: [(&str, Format); 4] = [
    ("seed-v1", Format::V1),
    ("seed-v2", Format::V2),
    ("seed-v3-uml_mkcow", Format::V3),
    ("seed-v3-broken", Format::V3Broken),
];

#[test]
fn every_fuzz_corpus_file_has_the_header_properties() {
    let mut files: Vec<_> = std::fs::read_dir(fuzz_corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= FUZZ_SEEDS.len(), "{files:?}");
    for file in files {
        eprintln!("{}", file.display());
        check_header_properties(&std::fs::read(&file).unwrap());
    }
}

#[test]
fn the_fuzz_seeds_are_one_header_of_each_format() {
    for (name, format) in FUZZ_SEEDS {
        let bytes = std::fs::read(fuzz_corpus().join(name)).unwrap();
        let h = parse_header(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(h.format, format, "{name}");
        assert!(!h.backing_file.is_empty(), "{name}");
    }
}

/// Rewrites the seeds: `cargo test -p arch-um-rs -- --ignored
/// write_the_fuzz_seeds` (needs `uml_mkcow`).
#[test]
#[ignore = "writes fuzz/corpus/cow_header"]
fn write_the_fuzz_seeds() {
    let dir = fuzz_corpus();
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    write(
        "seed-v1",
        &v1_image(b"/images/root_fs", 1_000_000_000, 1575, 512),
    );
    write(
        "seed-v2",
        &v2_image(b"/images/root_fs", 1_100_000_000, 3 << 20, 512),
    );
    write(
        "seed-v3-broken",
        &v3_broken_image(b"/images/root_fs", 1_100_000_000, 1 << 30, 512, 4096),
    );
    // uml_mkcow's file over a 1575-byte backing file, as much of it as the
    // reader reads.
    let tmp = tempfile::tempdir().unwrap();
    let back = backing(tmp.path(), 1575);
    let cow = tmp.path().join("cow");
    let status = std::process::Command::new(UML_MKCOW)
        .arg(&cow)
        .arg(back.to_str().unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    let mut bytes = std::fs::read(&cow).unwrap();
    bytes.truncate(HEADER_READ_LEN);
    write("seed-v3-uml_mkcow", &bytes);
}
