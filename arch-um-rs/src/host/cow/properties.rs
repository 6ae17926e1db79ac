// SPDX-License-Identifier: GPL-2.0
//! What [`parse_header`] promises for any input, as one checking function
//! shared by the unit tests (`cow/tests.rs`, including every file of
//! `fuzz/corpus/cow_header`) and the libFuzzer target
//! (`fuzz/fuzz_targets/cow_header.rs`).
//!
//! Not compiled into kernels (feature `kernel`): it is test code.

use std::ffi::CString;

use super::{
    CowHeader, Format, HEADER_READ_LEN, HeaderError, Layout, MAX_OFFSET, MAX_SECTORSIZE,
    MIN_HEADER_LEN, V3, cow_sizes, detect_version, encode_header_v3, parse_header, sector_count,
};

/// Parses `data` and checks the answer against the properties below;
/// panics, naming the property, if one fails (a crash to the fuzzer).
///
/// * Only the first [`HEADER_READ_LEN`] bytes count (the reader reads no
///   more), and an accepted header depends on exactly its layout's bytes.
/// * A refusal is an error with a reason, consistent with the bytes:
///   e.g. `Truncated` names the format's real length, `UnknownVersion` the
///   version [`detect_version`] reads, `Overflow` a geometry that
///   [`Layout::new`] refuses too. Writer-only errors never come out.
/// * An accepted header has a sane geometry (sector size, alignment),
///   a NUL-free name that is the start of its field, and offsets that
///   follow `cow_sizes`, are aligned, ordered (header, bitmap, data), fit
///   [`MAX_OFFSET`] and leave room for the data below `i64::MAX`; the
///   bitmap has one bit per sector (before version 3: per whole byte's
///   worth of sectors, the old rounding down).
/// * Re-encoding it with [`encode_header_v3`] writes the bytes it was read
///   from (version 3), and parsing that gives the same header, or for the
///   older formats the same values with the version-3 geometry. (Not for
///   an empty name, which the format cannot tell from the broken layout.)
pub fn check_header_properties(data: &[u8]) {
    let parsed = parse_header(data);
    if data.len() > HEADER_READ_LEN {
        assert_eq!(
            parse_header(&data[..HEADER_READ_LEN]),
            parsed,
            "bytes past HEADER_READ_LEN changed the result"
        );
    }
    match parsed {
        Ok(h) => check_accepted(data, &h),
        Err(e) => check_refused(data, e),
    }
}

/// The format a COW buffer of `version` has, decided independently of the
/// parser: the broken v3 layout has four zero bytes where a v3 name starts.
fn format_of(version: u32, data: &[u8]) -> Option<Format> {
    let name = V3.backing_file;
    match version {
        1 => Some(Format::V1),
        2 => Some(Format::V2),
        3 if data.get(name..name + 4) == Some(&[0; 4][..]) => Some(Format::V3Broken),
        3 => Some(Format::V3),
        _ => None,
    }
}

fn valid_sectorsize(s: u32) -> bool {
    s != 0 && s % 512 == 0 && s <= MAX_SECTORSIZE
}

fn check_refused(data: &[u8], e: HeaderError) {
    assert!(!e.to_string().is_empty(), "{e:?} has no message");
    if let HeaderError::Short { needed, got } = e {
        assert_eq!((needed, got), (MIN_HEADER_LEN, data.len()), "{e:?}");
        assert!(got < needed, "{e:?}");
        return;
    }
    assert!(data.len() >= MIN_HEADER_LEN, "{e:?} for a short buffer");
    let version = match (detect_version(data), e) {
        (Err(d), HeaderError::NotCow { magic }) => {
            assert_eq!(d, e, "detect_version disagrees");
            let stored = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]);
            assert_eq!(magic, stored, "{e:?}");
            assert!(magic != super::COW_MAGIC && magic != super::COW_MAGIC.swap_bytes());
            return;
        }
        (Ok(v), _) => v,
        (Err(d), _) => panic!("{e:?} although detect_version says {d:?}"),
    };
    let Some(format) = format_of(version, data) else {
        assert_eq!(e, HeaderError::UnknownVersion(version));
        return;
    };
    let layout = format.layout();
    match e {
        HeaderError::Truncated {
            format: f,
            needed,
            got,
        } => {
            assert_eq!((f, needed, got), (format, layout.len, data.len()), "{e:?}");
            assert!(got < needed, "{e:?}");
        }
        HeaderError::UnterminatedName { field_len } => {
            assert_eq!(field_len, layout.backing_file_len, "{e:?}");
            let field = &data[layout.backing_file..][..field_len];
            assert!(!field.contains(&0), "{e:?} but the field has a NUL");
        }
        HeaderError::BadSectorSize(s) => assert!(!valid_sectorsize(s), "{e:?}"),
        HeaderError::ZeroAlignment => assert_eq!(version, 3, "{e:?}"),
        HeaderError::Overflow {
            size,
            sectorsize,
            align,
        } => {
            assert!(valid_sectorsize(sectorsize) && align != 0, "{e:?}");
            assert_eq!(Layout::new(format, size, sectorsize, align), Err(e));
        }
        HeaderError::Short { .. }
        | HeaderError::NotCow { .. }
        | HeaderError::UnknownVersion(_)
        | HeaderError::NameTooLong { .. } => {
            panic!(
                "{e:?} for a version-{version} buffer of {} bytes",
                data.len()
            )
        }
    }
}

fn check_accepted(data: &[u8], h: &CowHeader) {
    // The format, and the bytes it depends on.
    assert_eq!(detect_version(data), Ok(h.version));
    assert_eq!(Some(h.format), format_of(h.version, data));
    assert_eq!(h.version, h.format.version());
    let layout = h.format.layout();
    assert!(data.len() >= layout.len, "accepted a short buffer: {h:?}");
    assert_eq!(
        parse_header(&data[..layout.len]).as_ref(),
        Ok(h),
        "depends on bytes past its header"
    );
    assert_eq!(
        parse_header(&data[..layout.len - 1]),
        Err(HeaderError::Truncated {
            format: h.format,
            needed: layout.len,
            got: layout.len - 1
        })
    );

    // The values.
    assert!(valid_sectorsize(h.sectorsize), "{h:?}");
    assert!(h.align != 0, "{h:?}");
    if matches!(h.format, Format::V1 | Format::V2) {
        assert_eq!(h.align, h.sectorsize, "{h:?}");
    }
    assert!((0..=i64::from(u32::MAX)).contains(&h.mtime), "{h:?}");
    let field = &data[layout.backing_file..][..layout.backing_file_len];
    let n = h.backing_file.len();
    assert!(n < field.len(), "{h:?}");
    assert_eq!((&field[..n], field[n]), (&h.backing_file[..], 0), "name");

    // The geometry.
    assert_eq!(
        Layout::new(h.format, h.size, h.sectorsize, h.align),
        Ok(Layout {
            bitmap_offset: h.bitmap_offset,
            bitmap_len: h.bitmap_len,
            data_offset: h.data_offset,
        })
    );
    assert_eq!(
        cow_sizes(h.version, h.size, h.sectorsize, h.align, h.bitmap_offset),
        Some((h.bitmap_len, h.data_offset))
    );
    let bitmap_end = h.bitmap_offset.checked_add(h.bitmap_len);
    assert!(layout.len as u64 <= h.bitmap_offset, "bitmap in the header");
    assert!(bitmap_end.is_some_and(|end| end <= h.data_offset), "{h:?}");
    assert!(h.data_offset <= MAX_OFFSET, "{h:?}");
    assert!(
        h.data_offset
            .checked_add(h.size)
            .is_some_and(|end| end <= i64::MAX as u64),
        "{h:?}"
    );
    let sectors = sector_count(h.size, h.sectorsize).expect("nonzero sector size");
    match h.format {
        Format::V1 | Format::V2 => {
            assert_eq!(h.bitmap_offset, layout.len as u64);
            assert_eq!(h.data_offset % u64::from(h.sectorsize), 0, "{h:?}");
            // The old rounding: the last sectors of a partial byte lack bits.
            assert_eq!(h.bitmap_len, sectors / 8, "{h:?}");
        }
        Format::V3 | Format::V3Broken => {
            let align = u64::from(h.align);
            assert_eq!(h.bitmap_offset % align, 0, "{h:?}");
            assert_eq!(h.data_offset % align, 0, "{h:?}");
            assert!(h.bitmap_offset < layout.len as u64 + align, "{h:?}");
            assert_eq!(h.bitmap_len, sectors.div_ceil(8), "{h:?}");
        }
    }

    check_reencoded(data, h);
}

/// Writes `h` back as a version-3 header (what the C writer and
/// `change_cow_header` write) and reads that.
fn check_reencoded(data: &[u8], h: &CowHeader) {
    let name = CString::new(h.backing_file.clone()).expect("a NUL-free name");
    let enc = encode_header_v3(&name, h.mtime, h.size, h.sectorsize, h.align)
        .expect("an accepted header's name fits version 3");
    let again = parse_header(&enc);
    if h.backing_file.is_empty() {
        // Four zero bytes where a v3 name starts: the format cannot tell an
        // empty v3 name from the broken layout (nor can the C reader). The
        // writers never write one: the name is made absolute first.
        assert!(
            !matches!(
                again,
                Ok(CowHeader {
                    format: Format::V3,
                    ..
                })
            ),
            "{again:?}"
        );
        return;
    }
    if h.format == Format::V3 {
        // The same bytes, but for what the reader ignores: the byte order
        // of magic and version, cow_format, and what follows the name.
        let mut want = data[..V3.len].to_vec();
        let name_end = V3.backing_file + h.backing_file.len();
        want[V3.cow_format.expect("v3")..][..4].fill(0);
        want[name_end..].fill(0);
        assert_eq!(enc[8..], want[8..], "re-encoded bytes differ");
        assert_eq!(parse_header(&enc).as_ref(), Ok(h), "re-encoded header");
        return;
    }
    let want = Layout::new(Format::V3, h.size, h.sectorsize, h.align).map(|l| CowHeader {
        format: Format::V3,
        version: 3,
        bitmap_offset: l.bitmap_offset,
        bitmap_len: l.bitmap_len,
        data_offset: l.data_offset,
        ..h.clone()
    });
    assert_eq!(again, want, "re-encoded {:?} header", h.format);
    if h.format == Format::V3Broken {
        // A shorter header can only move the bitmap and data forward.
        let v3 = again.expect("a broken v3 header fits version 3");
        assert!(v3.data_offset <= h.data_offset, "{v3:?} {h:?}");
    }
}
