// SPDX-License-Identifier: GPL-2.0
//! Tests of the cow_user.c ABI, through the `extern "C"` functions as the
//! ubd driver calls them.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::*;

// The prototypes of cow.h: these only compile if the signatures match.
type InitCowFile = unsafe extern "C" fn(
    c_int,
    *mut c_char,
    *mut c_char,
    c_int,
    c_int,
    *mut c_int,
    *mut c_ulong,
    *mut c_int,
) -> c_int;
type FileReader = unsafe extern "C" fn(u64, *mut c_char, c_int, *mut c_void) -> c_int;
type ReadCowHeader = unsafe extern "C" fn(
    Option<unsafe extern "C" fn(u64, *mut c_char, c_int, *mut c_void) -> c_int>,
    *mut c_void,
    *mut u32,
    *mut *mut c_char,
    *mut c_longlong,
    *mut c_ulonglong,
    *mut c_int,
    *mut u32,
    *mut c_int,
) -> c_int;
type WriteCowHeader =
    unsafe extern "C" fn(*mut c_char, c_int, *mut c_char, c_int, c_int, *mut c_ulonglong) -> c_int;
type CowSizes = unsafe extern "C" fn(c_int, u64, c_int, c_int, c_int, *mut c_ulong, *mut c_int);

const INIT_COW_FILE: InitCowFile = init_cow_file;
const FILE_READER: FileReader = file_reader;
const READ_COW_HEADER: ReadCowHeader = read_cow_header;
const WRITE_COW_HEADER: WriteCowHeader = write_cow_header;
const COW_SIZES: CowSizes = cow_sizes;

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// A sparse backing file of `size` bytes in `dir`, by canonical name.
fn backing(dir: &Path, size: u64) -> CString {
    let path = std::fs::canonicalize(dir).unwrap().join("root_fs");
    File::create(&path).unwrap().set_len(size).unwrap();
    cpath(&path)
}

/// What `read_cow_header` reported.
#[derive(Debug, Default, PartialEq)]
struct Header {
    version: u32,
    backing_file: Option<CString>,
    mtime: c_longlong,
    size: c_ulonglong,
    sectorsize: c_int,
    align: u32,
    bitmap_offset: c_int,
}

/// `read_cow_header(reader, arg)`: its return value and outputs. The
/// backing file name is freed the way the kernel would (`free` outside it).
fn read_with(reader: FileReader, arg: *mut c_void) -> (c_int, Header) {
    let mut h = Header::default();
    let mut name: *mut c_char = core::ptr::null_mut();
    // SAFETY: all outputs are live locals; the reader gets our argument.
    let err = unsafe {
        READ_COW_HEADER(
            Some(reader),
            arg,
            &mut h.version,
            &mut name,
            &mut h.mtime,
            &mut h.size,
            &mut h.sectorsize,
            &mut h.align,
            &mut h.bitmap_offset,
        )
    };
    if !name.is_null() {
        // SAFETY: a C string from c_strdup, which used the host malloc in tests.
        unsafe {
            h.backing_file = Some(CStr::from_ptr(name).to_owned());
            libc::free(name.cast());
        }
    }
    (err, h)
}

/// `read_cow_header(file_reader, &fd)` on the file at `path`.
fn read_file(path: &Path) -> (c_int, Header) {
    let f = File::open(path).unwrap();
    let mut fd = f.as_raw_fd();
    read_with(FILE_READER, (&raw mut fd).cast())
}

#[test]
fn a_new_cow_file_reads_back_through_file_reader() {
    let dir = tempfile::tempdir().unwrap();
    let back = backing(dir.path(), 1575);
    let cow_path = dir.path().join("cow");
    let cow = File::create(&cow_path).unwrap();
    let cow_name = cpath(&cow_path);
    let (mut bitmap_offset, mut bitmap_len, mut data_offset) = (0, 0, 0);
    // SAFETY: C strings and live outputs.
    let err = unsafe {
        INIT_COW_FILE(
            cow.as_raw_fd(),
            cow_name.as_ptr().cast_mut(),
            back.as_ptr().cast_mut(),
            512,
            4096,
            &mut bitmap_offset,
            &mut bitmap_len,
            &mut data_offset,
        )
    };
    assert_eq!(err, 0);
    assert_eq!((bitmap_offset, bitmap_len, data_offset), (8192, 1, 12288));
    assert_eq!(std::fs::metadata(&cow_path).unwrap().len(), 12288 + 1575);

    let (err, h) = read_file(&cow_path);
    assert_eq!(err, 0);
    let mtime =
        std::os::unix::fs::MetadataExt::mtime(&std::fs::metadata(back.to_str().unwrap()).unwrap());
    assert_eq!(
        h,
        Header {
            version: 3,
            backing_file: Some(back.clone()),
            mtime,
            size: 1575,
            sectorsize: 512,
            align: 4096,
            bitmap_offset: 8192,
        }
    );

    let (mut len, mut offset) = (0, 0);
    // SAFETY: live outputs.
    unsafe { COW_SIZES(3, 1575, 512, 4096, 8192, &mut len, &mut offset) };
    assert_eq!((len, offset), (1, 12288));
}

#[test]
fn plain_and_short_images_are_einval() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, vec![0x55u8; 1 << 16]).unwrap();
    let (err, h) = read_file(&plain);
    assert_eq!(err, -libc::EINVAL);
    assert_eq!(h, Header::default(), "nothing reported for a plain image");

    std::fs::write(&plain, b"OOO").unwrap();
    assert_eq!(read_file(&plain).0, -libc::EINVAL);
}

#[test]
fn the_version_is_reported_even_when_the_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v7");
    let mut img = b"OOOM\0\0\0\x07".to_vec();
    img.resize(8192, 0);
    std::fs::write(&path, &img).unwrap();
    let (err, h) = read_file(&path);
    assert_eq!((err, h.version, h.backing_file), (-libc::EINVAL, 7, None));
}

#[test]
fn a_failing_reader_is_a_short_header() {
    unsafe extern "C" fn failing(_: u64, _: *mut c_char, _: c_int, _: *mut c_void) -> c_int {
        -1
    }
    assert_eq!(read_with(failing, core::ptr::null_mut()).0, -libc::EINVAL);
}

#[test]
fn file_reader_returns_what_pread_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"0123456789").unwrap();
    let f = File::open(&path).unwrap();
    let mut fd = f.as_raw_fd();
    let mut buf = [0u8; 8];
    // SAFETY: `buf` holds 8 bytes; `fd` is a live int.
    let n = unsafe { FILE_READER(6, buf.as_mut_ptr().cast(), 8, (&raw mut fd).cast()) };
    assert_eq!((n, &buf[..4]), (4, &b"6789"[..]));

    let mut bad = -1;
    // SAFETY: as above.
    let n = unsafe { FILE_READER(0, buf.as_mut_ptr().cast(), 8, (&raw mut bad).cast()) };
    assert_eq!((n, Errno::last()), (-1, Errno::EBADF));
    // SAFETY: a NULL argument is refused before use.
    let n = unsafe { FILE_READER(0, buf.as_mut_ptr().cast(), 8, core::ptr::null_mut()) };
    assert_eq!((n, Errno::last()), (-1, Errno::EFAULT));
}

#[test]
fn write_cow_header_switches_the_backing_file_and_reports_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let back = backing(dir.path(), 3 << 20);
    let cow_path = dir.path().join("cow");
    let cow = File::create(&cow_path).unwrap();
    let mut size = 0;
    // SAFETY: C strings and a live output.
    let err = unsafe {
        WRITE_COW_HEADER(
            core::ptr::null_mut(),
            cow.as_raw_fd(),
            back.as_ptr().cast_mut(),
            512,
            512,
            &mut size,
        )
    };
    assert_eq!((err, size), (0, 3 << 20));
    let (err, h) = read_file(&cow_path);
    assert_eq!((err, h.size, h.bitmap_offset), (0, 3 << 20, 4608));

    let missing = cpath(&dir.path().join("missing"));
    // SAFETY: as above.
    let err = unsafe {
        WRITE_COW_HEADER(
            c"cow".as_ptr().cast_mut(),
            cow.as_raw_fd(),
            missing.as_ptr().cast_mut(),
            512,
            512,
            &mut size,
        )
    };
    assert_eq!(err, -libc::ENOENT);
    // SAFETY: a NULL backing file is refused before use.
    let err = unsafe {
        WRITE_COW_HEADER(
            core::ptr::null_mut(),
            cow.as_raw_fd(),
            core::ptr::null_mut(),
            512,
            512,
            &mut size,
        )
    };
    assert_eq!(err, -libc::EFAULT);
}

#[test]
fn init_cow_file_refuses_a_zero_alignment_the_c_divided_by() {
    let dir = tempfile::tempdir().unwrap();
    let back = backing(dir.path(), 4096);
    let cow = File::create(dir.path().join("cow")).unwrap();
    let (mut bitmap_offset, mut bitmap_len, mut data_offset) = (-1, 9, -1);
    // SAFETY: C strings and live outputs.
    let err = unsafe {
        INIT_COW_FILE(
            cow.as_raw_fd(),
            core::ptr::null_mut(),
            back.as_ptr().cast_mut(),
            512,
            0,
            &mut bitmap_offset,
            &mut bitmap_len,
            &mut data_offset,
        )
    };
    assert_eq!(err, -libc::EINVAL);
    assert_eq!((bitmap_offset, bitmap_len, data_offset), (-1, 9, -1));
}

#[test]
fn cow_sizes_keeps_the_old_arithmetic_and_survives_bad_input() {
    let sizes = |version, size, sectorsize, align, bitmap_offset| {
        let (mut len, mut offset) = (7, 7);
        // SAFETY: live outputs.
        unsafe {
            COW_SIZES(
                version,
                size,
                sectorsize,
                align,
                bitmap_offset,
                &mut len,
                &mut offset,
            )
        };
        (len, offset)
    };
    assert_eq!(sizes(2, 1575, 512, 512, 4120), (0, 4608));
    assert_eq!(sizes(-1, 1 << 20, 512, 0, 280), (256, 1024));
    assert_eq!(sizes(3, 1575, 512, 512, 4608), (1, 5120));
    // The C crashed (zero divisor) or wrapped (overflow) here.
    assert_eq!(sizes(3, 1575, 512, 0, 4608), (0, 0));
    assert_eq!(sizes(3, 1575, 0, 512, 4608), (0, 0));
    assert_eq!(sizes(3, u64::MAX / 2, 512, 4096, 8192), (0, 0));
    assert_eq!(sizes(3, 1575, -512, 512, 4608), (0, 0));
    // NULL outputs are skipped.
    // SAFETY: NULL outputs are allowed.
    unsafe {
        COW_SIZES(
            3,
            1575,
            512,
            512,
            4608,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
    };
}
