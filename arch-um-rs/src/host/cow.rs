// SPDX-License-Identifier: GPL-2.0
//! UML's copy-on-write block image format: the safe core behind
//! [`crate::abi::um_drivers::cow_user`] (`arch/um/drivers/cow_user.c`).
//!
//! A COW file starts with a header naming the read-only backing file, then
//! a bitmap with one bit per sector of the backing file (set: the sector
//! lives in the COW file), then the sectors themselves at `data_offset`.
//! Three header versions exist on disk, plus a broken variant of version 3
//! written by 64-bit builds before December 2005; all are read, only
//! version 3 is written. Their byte layouts are those of the packed C
//! structs on x86_64 (see [`V1`], [`V2`], [`V3`], [`V3_BROKEN`]).
//!
//! Unlike the C reader, [`parse_header`] checks the values it reads: a
//! header whose geometry the C would divide by zero on, or whose offsets
//! overflow the `int`s of the C interface, is rejected with a reason.
//! Host errors follow [`crate::host::file`]: the host's errno.

use core::ffi::{CStr, c_int};
use core::fmt;
use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStringExt;

use nix::errno::Errno;

use super::file::{self, CStrDisplay};

/// The magic number ("MOOO" when stored big-endian). The reader accepts it
/// in either byte order: version-1 files were written in host order.
pub const COW_MAGIC: u32 = 0x4f4f_4f4d;
/// The version [`encode_header_v3`] writes.
pub const COW_VERSION: u32 = 3;
/// `cow_format` of a version-3 header: the classic sector bitmap, the only
/// format there is.
pub const COW_BITMAP: u32 = 0;

/// Size of the backing file name field of version 1.
pub const PATH_LEN_V1: usize = 256;
/// Size of the backing file name field of version 2 (`MAXPATHLEN`, fixed
/// for file compatibility).
pub const PATH_LEN_V2: usize = 4096;
/// Size of the backing file name field of version 3.
pub const PATH_LEN_V3: usize = PATH_LEN_V2;

/// The smallest buffer [`detect_version`] looks at: magic and version
/// (`offsetof(struct cow_header_v1, backing_file)` in C).
pub const MIN_HEADER_LEN: usize = 8;

/// Sector sizes above this are refused as nonsense. Every known writer
/// (ubd, `uml_mkcow`, `uml_moo`) uses 512; the limit only keeps the
/// bitmap arithmetic away from overflow.
pub const MAX_SECTORSIZE: u32 = 64 << 10;

/// The largest bitmap or data offset: the C interface (and the ubd driver)
/// keeps both in an `int`.
pub const MAX_OFFSET: u64 = i32::MAX as u64;

/// Where the fields of one header version sit, in bytes from the start of
/// the file. Magic and version are always at 0 and 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderLayout {
    pub mtime: usize,
    /// 4 bytes, except 8 in the broken version 3.
    pub mtime_len: usize,
    pub size: usize,
    pub sectorsize: usize,
    /// Version 3 only: the bitmap and data alignment.
    pub alignment: Option<usize>,
    /// Version 3 only: always [`COW_BITMAP`].
    pub cow_format: Option<usize>,
    pub backing_file: usize,
    pub backing_file_len: usize,
    /// `sizeof` the C struct: where the bitmap starts (versions 1 and 2),
    /// or what is rounded up to the alignment to find it (version 3).
    pub len: usize,
}

const fn align_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

/// Versions 1 and 2 share one layout (packed): the name first, then
/// mtime, size and sector size; only the name's field length differs.
const fn name_first_layout(path_len: usize) -> HeaderLayout {
    let backing_file = MIN_HEADER_LEN;
    let mtime = backing_file + path_len;
    let size = mtime + 4;
    let sectorsize = size + 8;
    HeaderLayout {
        mtime,
        mtime_len: 4,
        size,
        sectorsize,
        alignment: None,
        cow_format: None,
        backing_file,
        backing_file_len: path_len,
        len: sectorsize + 4,
    }
}

/// Version 1 (`struct cow_header_v1`, packed): host byte order.
pub const V1: HeaderLayout = name_first_layout(PATH_LEN_V1);

/// Version 2 (`struct cow_header_v2`, packed): big-endian.
pub const V2: HeaderLayout = name_first_layout(PATH_LEN_V2);

/// Version 3 (`struct cow_header_v3`, packed): big-endian, the name last.
pub const V3: HeaderLayout = {
    let mtime = MIN_HEADER_LEN;
    let size = mtime + 4;
    let sectorsize = size + 8;
    let alignment = sectorsize + 4;
    let cow_format = alignment + 4;
    let backing_file = cow_format + 4;
    HeaderLayout {
        mtime,
        mtime_len: 4,
        size,
        sectorsize,
        alignment: Some(alignment),
        cow_format: Some(cow_format),
        backing_file,
        backing_file_len: PATH_LEN_V3,
        len: backing_file + PATH_LEN_V3,
    }
};

/// The broken version 3 (`struct cow_header_v3_broken`, not packed): the
/// 64-bit mtime is naturally aligned, which shifts every later field by 4,
/// and the struct is padded to a multiple of 8.
pub const V3_BROKEN: HeaderLayout = {
    let mtime = align_up(MIN_HEADER_LEN, 8);
    let size = mtime + 8;
    let sectorsize = size + 8;
    let alignment = sectorsize + 4;
    let cow_format = alignment + 4;
    let backing_file = cow_format + 4;
    HeaderLayout {
        mtime,
        mtime_len: 8,
        size,
        sectorsize,
        alignment: Some(alignment),
        cow_format: Some(cow_format),
        backing_file,
        backing_file_len: PATH_LEN_V3,
        len: align_up(backing_file + PATH_LEN_V3, 8),
    }
};

/// How many bytes the reader asks for: `sizeof(union cow_header)`, the
/// largest layout.
pub const HEADER_READ_LEN: usize = V3_BROKEN.len;

// The sizes and offsets of the C structs on x86_64, printed by a gcc-built
// program (sizeof/offsetof of the struct definitions of cow_user.c):
//   v1:        size 280,  backing_file 8, mtime 264,  size 268,  sectorsize 276
//   v2:        size 4120, backing_file 8, mtime 4104, size 4108, sectorsize 4116
//   v3:        size 4128, mtime 8, size 12, sectorsize 20, alignment 24,
//              cow_format 28, backing_file 32
//   v3_broken: size 4136, mtime 8, size 16, sectorsize 24, alignment 28,
//              cow_format 32, backing_file 36
//   union cow_header: 4136
const _: () = assert!(V1.len == 280 && V1.backing_file == 8);
const _: () = assert!(V1.mtime == 264 && V1.size == 268 && V1.sectorsize == 276);
const _: () = assert!(V2.len == 4120 && V2.backing_file == 8);
const _: () = assert!(V2.mtime == 4104 && V2.size == 4108 && V2.sectorsize == 4116);
const _: () = assert!(V3.len == 4128 && V3.mtime == 8 && V3.size == 12);
const _: () = assert!(V3.sectorsize == 20 && V3.backing_file == 32);
const _: () = assert!(matches!(V3.alignment, Some(24)) && matches!(V3.cow_format, Some(28)));
const _: () = assert!(V3_BROKEN.len == 4136 && V3_BROKEN.mtime == 8 && V3_BROKEN.size == 16);
const _: () = assert!(V3_BROKEN.sectorsize == 24 && V3_BROKEN.backing_file == 36);
const _: () = assert!(matches!(V3_BROKEN.alignment, Some(28)));
const _: () = assert!(matches!(V3_BROKEN.cow_format, Some(32)));
const _: () = assert!(HEADER_READ_LEN == 4136);

/// The on-disk header formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    V1,
    V2,
    V3,
    /// Version 3 with the 64-bit layout: recognised by its `cow_format`
    /// (always 0) landing on the first four bytes of the v3 name field,
    /// where a real name cannot have four zero bytes.
    V3Broken,
}

impl Format {
    pub const fn layout(self) -> &'static HeaderLayout {
        match self {
            Format::V1 => &V1,
            Format::V2 => &V2,
            Format::V3 => &V3,
            Format::V3Broken => &V3_BROKEN,
        }
    }

    /// The version number stored in the header.
    pub const fn version(self) -> u32 {
        match self {
            Format::V1 => 1,
            Format::V2 => 2,
            Format::V3 | Format::V3Broken => 3,
        }
    }
}

/// A COW header as the C `read_cow_header` returns it, plus the bitmap
/// size and data offset `cow_sizes` derives from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CowHeader {
    pub format: Format,
    pub version: u32,
    /// The backing file name, without its NUL.
    pub backing_file: Vec<u8>,
    /// The backing file's modification time when the COW file was made
    /// (seconds, unsigned 32-bit on disk).
    pub mtime: i64,
    /// The backing file's size in bytes.
    pub size: u64,
    pub sectorsize: u32,
    /// Bitmap and data alignment (the sector size before version 3).
    pub align: u32,
    pub bitmap_offset: u64,
    pub bitmap_len: u64,
    pub data_offset: u64,
}

/// Why a buffer is not a usable COW header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Too few bytes to hold the magic number and version.
    Short {
        needed: usize,
        got: usize,
    },
    /// No COW magic: a plain image. The C reader stays silent here, and
    /// ubd relies on this to tell plain images from COW files.
    NotCow {
        magic: u32,
    },
    UnknownVersion(u32),
    /// Fewer bytes than the header of `format`.
    Truncated {
        format: Format,
        needed: usize,
        got: usize,
    },
    /// The backing file name fills its field with no NUL.
    UnterminatedName {
        field_len: usize,
    },
    /// Zero, not a multiple of 512, or above [`MAX_SECTORSIZE`].
    BadSectorSize(u32),
    /// A version-3 alignment of 0 (the C reader printed this, then divided
    /// by zero).
    ZeroAlignment,
    /// The bitmap or data would start beyond [`MAX_OFFSET`], or the image
    /// end beyond the largest file offset.
    Overflow {
        size: u64,
        sectorsize: u32,
        align: u32,
    },
    /// A backing file name longer than the field allows (writing only).
    NameTooLong {
        len: usize,
        max: usize,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeaderError::Short { needed, got } => {
                write!(f, "short header: need at least {needed} bytes, got {got}")
            }
            HeaderError::NotCow { magic } => write!(f, "not a COW file (magic {magic:#010x})"),
            HeaderError::UnknownVersion(v) => write!(f, "invalid COW version {v}"),
            HeaderError::Truncated {
                format,
                needed,
                got,
            } => {
                write!(f, "failed to read V{} header", format.version())?;
                if format == Format::V3Broken {
                    f.write_str(" (broken 64-bit layout)")?;
                }
                write!(f, ": need {needed} bytes, got {got}")
            }
            HeaderError::UnterminatedName { field_len } => write!(
                f,
                "invalid COW header, backing file name not NUL-terminated within its {field_len}-byte field"
            ),
            HeaderError::BadSectorSize(s) => write!(
                f,
                "invalid COW header, sector size {s} is not a multiple of 512 between 512 and {MAX_SECTORSIZE}"
            ),
            HeaderError::ZeroAlignment => f.write_str("invalid COW header, align == 0"),
            HeaderError::Overflow {
                size,
                sectorsize,
                align,
            } => write!(
                f,
                "invalid COW header, backing file size {size} with sector size {sectorsize} and alignment {align} puts the bitmap or data beyond offset {MAX_OFFSET}"
            ),
            HeaderError::NameTooLong { len, max } => {
                write!(
                    f,
                    "backing file name of {len} bytes, names are limited to {max}"
                )
            }
        }
    }
}

impl std::error::Error for HeaderError {}

/// Offsets and length of the parts of a COW file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub bitmap_offset: u64,
    pub bitmap_len: u64,
    pub data_offset: u64,
}

impl Layout {
    /// The layout of a `format` file over a backing file of `size` bytes,
    /// after checking that its geometry is sane and that the offsets fit
    /// the C interface. `align` is only used by version 3.
    pub fn new(
        format: Format,
        size: u64,
        sectorsize: u32,
        align: u32,
    ) -> Result<Self, HeaderError> {
        if sectorsize == 0 || sectorsize % 512 != 0 || sectorsize > MAX_SECTORSIZE {
            return Err(HeaderError::BadSectorSize(sectorsize));
        }
        let header_len = format.layout().len as u64;
        let bitmap_offset = match format {
            Format::V1 | Format::V2 => Some(header_len),
            Format::V3 | Format::V3Broken => {
                if align == 0 {
                    return Err(HeaderError::ZeroAlignment);
                }
                round_up(header_len, u64::from(align))
            }
        };
        let overflow = HeaderError::Overflow {
            size,
            sectorsize,
            align,
        };
        let bitmap_offset = bitmap_offset.ok_or(overflow)?;
        let (bitmap_len, data_offset) =
            cow_sizes(format.version(), size, sectorsize, align, bitmap_offset).ok_or(overflow)?;
        let end = data_offset.checked_add(size).ok_or(overflow)?;
        if data_offset > MAX_OFFSET || end > i64::MAX as u64 {
            return Err(overflow);
        }
        Ok(Layout {
            bitmap_offset,
            bitmap_len,
            data_offset,
        })
    }
}

/// `x` rounded up to a multiple of `to` (the C `ROUND_UP`); `None` on
/// overflow or a zero `to`.
fn round_up(x: u64, to: u64) -> Option<u64> {
    x.checked_add(to.checked_sub(1)?)?
        .checked_div(to)?
        .checked_mul(to)
}

/// The bitmap length and data offset of a COW file, with the C
/// `cow_sizes` arithmetic: before version 3 the bitmap length rounds down
/// (a known bug, kept for compatibility) and the data is sector-aligned;
/// from version 3 the bitmap has one bit per started sector and the data
/// is aligned to `align`. `None` on a zero divisor or overflow.
pub fn cow_sizes(
    version: u32,
    size: u64,
    sectorsize: u32,
    align: u32,
    bitmap_offset: u64,
) -> Option<(u64, u64)> {
    let sectorsize = u64::from(sectorsize);
    if version < 3 {
        let bitmap_len = size
            .checked_add(sectorsize.checked_sub(1)?)?
            .checked_div(sectorsize.checked_mul(8)?)?;
        let data_offset = round_up(bitmap_offset.checked_add(bitmap_len)?, sectorsize)?;
        Some((bitmap_len, data_offset))
    } else {
        let sectors = size
            .checked_add(sectorsize.checked_sub(1)?)?
            .checked_div(sectorsize)?;
        let bitmap_len = sectors.checked_add(7)? / 8;
        let data_offset = round_up(bitmap_offset.checked_add(bitmap_len)?, u64::from(align))?;
        Some((bitmap_len, data_offset))
    }
}

fn bytes<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

/// The header version of `buf`, if it starts with the COW magic. The magic
/// in host byte order means a host-order version (version 1 files);
/// byte-swapped, a big-endian one. (Fields after the version follow the
/// version, not the magic: that is how the C reads them.)
pub fn detect_version(buf: &[u8]) -> Result<u32, HeaderError> {
    if buf.len() < MIN_HEADER_LEN {
        return Err(HeaderError::Short {
            needed: MIN_HEADER_LEN,
            got: buf.len(),
        });
    }
    let magic = u32::from_ne_bytes(bytes(buf, 0));
    let version = u32::from_ne_bytes(bytes(buf, 4));
    if magic == COW_MAGIC {
        Ok(version)
    } else if magic == u32::from_be(COW_MAGIC) {
        Ok(u32::from_be(version))
    } else {
        Err(HeaderError::NotCow { magic })
    }
}

/// Parses the COW header at the start of `buf` (the first
/// [`HEADER_READ_LEN`] bytes of a file, or fewer if the file is shorter),
/// giving the values the C `read_cow_header` gives, or why it is unusable.
pub fn parse_header(buf: &[u8]) -> Result<CowHeader, HeaderError> {
    let version = detect_version(buf)?;
    let format = match version {
        1 => Format::V1,
        2 => Format::V2,
        3 => {
            let name_start = buf.get(V3.backing_file..V3.backing_file + 4);
            if name_start.is_some_and(|b| b == [0; 4]) {
                Format::V3Broken
            } else {
                Format::V3
            }
        }
        v => return Err(HeaderError::UnknownVersion(v)),
    };
    let layout = format.layout();
    if buf.len() < layout.len {
        return Err(HeaderError::Truncated {
            format,
            needed: layout.len,
            got: buf.len(),
        });
    }

    let be32 = |at| u32::from_be_bytes(bytes(buf, at));
    let (mtime, size, sectorsize) = match format {
        Format::V1 => (
            u32::from_ne_bytes(bytes(buf, layout.mtime)),
            u64::from_ne_bytes(bytes(buf, layout.size)),
            u32::from_ne_bytes(bytes(buf, layout.sectorsize)),
        ),
        Format::V2 | Format::V3 => (
            be32(layout.mtime),
            u64::from_be_bytes(bytes(buf, layout.size)),
            be32(layout.sectorsize),
        ),
        Format::V3Broken => {
            // The old writer stored a 32-bit big-endian value in a 64-bit
            // host-order field; the C reads it back the same way (the low
            // half of the host-order value, byte-swapped from big-endian).
            let raw = i64::from_ne_bytes(bytes(buf, layout.mtime));
            (
                u32::from_be(raw as u32),
                u64::from_be_bytes(bytes(buf, layout.size)),
                be32(layout.sectorsize),
            )
        }
    };
    let align = layout.alignment.map_or(sectorsize, be32);

    let field = &buf[layout.backing_file..layout.backing_file + layout.backing_file_len];
    let name_len = field
        .iter()
        .position(|&b| b == 0)
        .ok_or(HeaderError::UnterminatedName {
            field_len: layout.backing_file_len,
        })?;

    let geometry = Layout::new(format, size, sectorsize, align)?;
    Ok(CowHeader {
        format,
        version,
        backing_file: field[..name_len].to_vec(),
        mtime: i64::from(mtime),
        size,
        sectorsize,
        align,
        bitmap_offset: geometry.bitmap_offset,
        bitmap_len: geometry.bitmap_len,
        data_offset: geometry.data_offset,
    })
}

/// The version-3 header bytes the C `write_cow_header` writes: big-endian
/// fields, `cow_format` [`COW_BITMAP`], the name NUL-padded. The mtime is
/// stored as an unsigned 32-bit number (good until 2106), as in C.
pub fn encode_header_v3(
    backing_file: &CStr,
    mtime: i64,
    size: u64,
    sectorsize: u32,
    align: u32,
) -> Result<Vec<u8>, HeaderError> {
    let name = backing_file.to_bytes();
    let max = PATH_LEN_V3 - 1;
    if name.len() > max {
        return Err(HeaderError::NameTooLong {
            len: name.len(),
            max,
        });
    }
    let mut h = vec![0u8; V3.len];
    let mut put = |at: usize, b: &[u8]| h[at..at + b.len()].copy_from_slice(b);
    put(0, &COW_MAGIC.to_be_bytes());
    put(4, &COW_VERSION.to_be_bytes());
    put(V3.mtime, &(mtime as u32).to_be_bytes());
    put(V3.size, &size.to_be_bytes());
    put(V3.sectorsize, &sectorsize.to_be_bytes());
    put(V3_ALIGNMENT, &align.to_be_bytes());
    put(V3_COW_FORMAT, &COW_BITMAP.to_be_bytes());
    put(V3.backing_file, name);
    Ok(h)
}

const V3_ALIGNMENT: usize = V3.alignment.expect("version 3 has an alignment field");
const V3_COW_FORMAT: usize = V3.cow_format.expect("version 3 has a cow_format field");

// ---------------------------------------------------------------------------
// the sector bitmap

/// The number of sectors of `sectorsize` bytes an image of `size` bytes
/// starts (the last one may be partial); `None` for a zero sector size.
pub fn sector_count(size: u64, sectorsize: u32) -> Option<u64> {
    (sectorsize != 0).then(|| size.div_ceil(u64::from(sectorsize)))
}

/// Whether bit `bit` of `bitmap` is set, bits counted from the least
/// significant bit of each byte (the ubd driver's `ubd_test_bit`); `None`
/// if the bitmap is too short to hold it.
pub fn test_bit(bitmap: &[u8], bit: u64) -> Option<bool> {
    let byte = bitmap.get(usize::try_from(bit / 8).ok()?)?;
    Some(byte & (1 << (bit % 8)) != 0)
}

/// Sets bit `bit` of `bitmap` (`ubd_set_bit`) and returns its previous
/// value; `None`, and nothing changed, if the bitmap is too short.
pub fn set_bit(bitmap: &mut [u8], bit: u64) -> Option<bool> {
    let byte = bitmap.get_mut(usize::try_from(bit / 8).ok()?)?;
    let mask = 1 << (bit % 8);
    let was = *byte & mask != 0;
    *byte |= mask;
    Some(was)
}

// ---------------------------------------------------------------------------
// writing

/// Why a COW header could not be written. Each variant's text is the one
/// the C layer printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CowError {
    /// Seeking to the header failed.
    Seek(Errno),
    /// The backing file name does not fit the header.
    NameTooLong(CString),
    /// The current directory is unknown.
    Cwd(Errno),
    /// The directory part of the name is not a directory we could enter.
    Dir {
        path: CString,
        errno: Errno,
    },
    /// The absolute name of the directory does not fit the header.
    DirTooLong(CString),
    /// The absolute name does not fit the header.
    AbsoluteTooLong(CString),
    Modtime {
        path: CString,
        errno: Errno,
    },
    Size {
        path: CString,
        errno: Errno,
    },
    /// The geometry is one [`parse_header`] would reject.
    Invalid(HeaderError),
    WriteHeader(Errno),
    /// Seeking to the end of the new file failed.
    EndSeek(Errno),
    /// Writing the last byte of the new file failed.
    WriteEnd(Errno),
}

impl CowError {
    /// The errno the C function returned (negated) for this failure.
    pub fn errno(&self) -> Errno {
        match self {
            CowError::Seek(e)
            | CowError::WriteHeader(e)
            | CowError::EndSeek(e)
            | CowError::WriteEnd(e)
            | CowError::Modtime { errno: e, .. }
            | CowError::Size { errno: e, .. } => *e,
            // The C set err = -EINVAL before the name checks.
            CowError::NameTooLong(_)
            | CowError::Cwd(_)
            | CowError::Dir { .. }
            | CowError::DirTooLong(_)
            | CowError::AbsoluteTooLong(_)
            | CowError::Invalid(_) => Errno::EINVAL,
        }
    }

    /// The message, naming the COW file where the C message did.
    pub fn display_with<'a>(&'a self, cow_file: Option<&'a CStr>) -> impl fmt::Display + 'a {
        CowErrorDisplay {
            err: self,
            cow_file,
        }
    }
}

struct CowErrorDisplay<'a> {
    err: &'a CowError,
    cow_file: Option<&'a CStr>,
}

impl fmt::Display for CowErrorDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cow = |f: &mut fmt::Formatter<'_>| match self.cow_file {
            Some(c) => write!(f, "new COW file '{}'", CStrDisplay(c)),
            None => f.write_str("the new COW file"),
        };
        match self.err {
            CowError::Seek(e) => {
                write!(f, "write_cow_header - lseek failed, err = {}", *e as c_int)
            }
            CowError::NameTooLong(name) => write!(
                f,
                "Backing file name \"{}\" is too long - names are limited to {} characters",
                CStrDisplay(name),
                PATH_LEN_V3 - 1
            ),
            CowError::Cwd(e) => {
                write!(
                    f,
                    "absolutize : unable to get cwd - errno = {}",
                    *e as c_int
                )
            }
            CowError::Dir { path, errno } => write!(
                f,
                "absolutize : Can't cd to '{}' - errno = {}",
                CStrDisplay(path),
                *errno as c_int
            ),
            CowError::DirTooLong(path) => write!(
                f,
                "absolutize : unable to get cwd of '{}' - errno = {}",
                CStrDisplay(path),
                Errno::ERANGE as c_int
            ),
            CowError::AbsoluteTooLong(path) => write!(
                f,
                "absolutize : unable to fit '{}' into {} chars",
                CStrDisplay(path),
                PATH_LEN_V3
            ),
            CowError::Modtime { path, errno } => write!(
                f,
                "write_cow_header - backing file '{}' mtime request failed, err = {}",
                CStrDisplay(path),
                *errno as c_int
            ),
            CowError::Size { path, errno } => write!(
                f,
                "write_cow_header - couldn't get size of backing file '{}', err = {}",
                CStrDisplay(path),
                *errno as c_int
            ),
            CowError::Invalid(e) => write!(f, "write_cow_header - {e}"),
            CowError::WriteHeader(e) => {
                f.write_str("write_cow_header - write of header to ")?;
                cow(f)?;
                write!(f, " failed, err = {}", *e as c_int)
            }
            CowError::EndSeek(e) => write!(f, "cow bitmap lseek failed : err = {}", *e as c_int),
            CowError::WriteEnd(e) => {
                f.write_str("Write of bitmap to ")?;
                cow(f)?;
                write!(f, " failed, err = {}", *e as c_int)
            }
        }
    }
}

impl fmt::Display for CowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.display_with(None).fmt(f)
    }
}

impl std::error::Error for CowError {}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

fn to_cstring(bytes: Vec<u8>) -> CString {
    // Built from parts of a C string and directory names, so NUL-free.
    CString::new(bytes).unwrap_or_default()
}

/// `realpath(3)` of `dir` into a buffer of ours. Not
/// `std::fs::canonicalize`: it lets libc allocate the result (with libc's
/// own `malloc`) and then frees it with `free`, which in a UML kernel is
/// wrapped to the kernel's allocator, which then frees memory it never
/// gave out (a `free_large_kmalloc` warning, then a corrupt libc heap).
fn real_path(dir: &[u8]) -> Result<CString, Errno> {
    let dir = CString::new(dir).map_err(|_| Errno::EINVAL)?;
    let mut buf = [0 as libc::c_char; libc::PATH_MAX as usize];
    // SAFETY: `dir` is NUL-terminated; `buf` has the PATH_MAX bytes
    // realpath may write.
    let r = unsafe { libc::realpath(dir.as_ptr(), buf.as_mut_ptr()) };
    if r.is_null() {
        return Err(Errno::last());
    }
    // SAFETY: on success realpath wrote a NUL-terminated name into `buf`.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_owned())
}

/// The absolute name the C `absolutize` gives `path`: the directory part
/// resolved physically (symbolic links followed, as `getcwd` after
/// `chdir` reports it), the last component kept as written; a name
/// without a slash is put in the current directory. The C `chdir`s into
/// the directory and back, which is not thread-safe; this resolves it with
/// `realpath` instead and checks that `chdir` would have been allowed.
pub fn absolutize(path: &CStr) -> Result<CString, CowError> {
    let name = path.to_bytes();
    let too_long = || CowError::AbsoluteTooLong(path.to_owned());
    let (dir, last) = match name.iter().rposition(|&b| b == b'/') {
        Some(slash) => {
            let dir = match &name[..slash] {
                b"" => b"/".as_slice(),
                d => d,
            };
            let dir_error = |errno| CowError::Dir {
                path: path.to_owned(),
                errno,
            };
            let real = real_path(dir).map_err(dir_error)?;
            match file::file_kind(&real) {
                Ok(file::FileKind::Dir) => {}
                Ok(_) => return Err(dir_error(Errno::ENOTDIR)),
                Err(e) => return Err(dir_error(e)),
            }
            file::access(&real, libc::X_OK).map_err(dir_error)?;
            if real.to_bytes().len() + 1 > PATH_LEN_V3 {
                return Err(CowError::DirTooLong(path.to_owned()));
            }
            (real.into_bytes(), &name[slash..])
        }
        None => {
            let cwd = std::env::current_dir().map_err(|e| CowError::Cwd(io_errno(&e)))?;
            (cwd.into_os_string().into_vec(), name)
        }
    };
    let mut out = dir;
    // The C gives "//name" for names in the root directory; one slash is
    // the same file.
    if out == b"/" {
        out.clear();
    }
    if !last.starts_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(last);
    if out.len() + 1 > PATH_LEN_V3 {
        return Err(too_long());
    }
    Ok(to_cstring(out))
}

/// The header for `backing_file` and the backing file's size: the name
/// made absolute, the backing file's mtime and size, checked geometry.
fn prepare_header(
    backing_file: &CStr,
    sectorsize: u32,
    align: u32,
) -> Result<(Vec<u8>, u64, Layout), CowError> {
    if backing_file.to_bytes().len() > PATH_LEN_V3 - 1 {
        return Err(CowError::NameTooLong(backing_file.to_owned()));
    }
    let path = absolutize(backing_file)?;
    let mtime = file::modtime(&path).map_err(|errno| CowError::Modtime {
        path: path.clone(),
        errno,
    })?;
    let size = file::file_size(&path).map_err(|errno| CowError::Size {
        path: path.clone(),
        errno,
    })?;
    let layout = Layout::new(Format::V3, size, sectorsize, align).map_err(CowError::Invalid)?;
    let header =
        encode_header_v3(&path, mtime, size, sectorsize, align).map_err(CowError::Invalid)?;
    Ok((header, size, layout))
}

/// Writes all of `buf` at the file offset of `fd`. A write that makes no
/// progress is `EINVAL`, the C's answer to a short write.
fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match file::write(fd, buf)? {
            0 => return Err(Errno::EINVAL),
            n => buf = &buf[n..],
        }
    }
    Ok(())
}

/// Writes a version-3 header for `backing_file` at the start of `fd`,
/// recording the backing file's absolute name, mtime and size, and returns
/// that size. The file offset of `fd` is left after the header.
pub fn write_header(
    fd: RawFd,
    backing_file: &CStr,
    sectorsize: u32,
    align: u32,
) -> Result<u64, CowError> {
    file::seek_set(fd, 0).map_err(CowError::Seek)?;
    let (header, size, _) = prepare_header(backing_file, sectorsize, align)?;
    write_all(fd, &header).map_err(CowError::WriteHeader)?;
    Ok(size)
}

/// Makes `fd` a new COW file over `backing_file`: the header, then the
/// file extended to its full length by writing its last byte, so the
/// bitmap reads as zeroes (nothing copied yet) without being written.
pub fn init_cow_file(
    fd: RawFd,
    backing_file: &CStr,
    sectorsize: u32,
    align: u32,
) -> Result<Layout, CowError> {
    file::seek_set(fd, 0).map_err(CowError::Seek)?;
    let (header, size, layout) = prepare_header(backing_file, sectorsize, align)?;
    write_all(fd, &header).map_err(CowError::WriteHeader)?;
    // Layout::new checked that the end fits a file offset; data_offset is
    // past the header, so the subtraction cannot wrap.
    let last = layout.data_offset + size - 1;
    file::seek_set(fd, last).map_err(CowError::EndSeek)?;
    write_all(fd, &[0]).map_err(CowError::WriteEnd)?;
    Ok(layout)
}

// The properties the unit tests and the fuzz target (fuzz/) check; test
// code, so never in a kernel (but in the unit tests of any build).
#[cfg(any(test, not(feature = "kernel")))]
pub mod properties;
#[cfg(test)]
mod tests;
