// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing `arch/um/drivers/cow_user.c` (declared in `cow.h`): the
//! header of the ubd driver's copy-on-write images, over
//! [`crate::host::cow`].
//!
//! The functions keep the C return conventions: 0 or a negative errno,
//! `file_reader` what `pread` returns. Every header `read_cow_header`
//! refuses is `-EINVAL`, which ubd takes to mean "not a COW file, use it
//! as a plain image", so refusing a header never makes things worse than
//! the C's own refusals did. Failures are logged with the C's messages.
//! Where the C would dereference a NULL pointer argument these return
//! `-EFAULT` instead.

use core::ffi::{CStr, c_char, c_int, c_longlong, c_ulong, c_ulonglong, c_void};

use nix::errno::Errno;

use crate::host::cow::{self, CowError, Format, HeaderError};
use crate::kernel::Level;
use crate::klog;

/// The reader `read_cow_header` takes: up to `len` bytes at `offset` into
/// `buf`, with the caller's `arg`; the byte count, or negative on failure.
pub type CowReader = unsafe extern "C" fn(u64, *mut c_char, c_int, *mut c_void) -> c_int;

/// `len` bytes of memory the C caller frees with `kfree`: kernel memory in
/// a kernel, the host's `malloc` elsewhere (unit tests free it with `free`).
fn c_alloc(len: usize) -> *mut u8 {
    #[cfg(feature = "kernel")]
    {
        let Ok(len) = c_int::try_from(len) else {
            return core::ptr::null_mut();
        };
        // SAFETY: a plain kernel allocation, as the C's uml_strdup makes.
        unsafe { crate::kernel::um::uml_kmalloc(len, crate::abi::helper::UM_GFP_KERNEL) }.cast()
    }
    #[cfg(not(feature = "kernel"))]
    // SAFETY: a plain host allocation.
    unsafe {
        libc::malloc(len).cast()
    }
}

/// A NUL-terminated copy of `bytes` from [`c_alloc`]; NULL if out of
/// memory.
fn c_strdup(bytes: &[u8]) -> *mut c_char {
    let p = c_alloc(bytes.len() + 1);
    if !p.is_null() {
        // SAFETY: `p` holds bytes.len() + 1 bytes and does not overlap `bytes`.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
            p.add(bytes.len()).write(0);
        }
    }
    p.cast()
}

/// A C string argument, `None` if NULL.
///
/// # Safety
///
/// `p` is NULL or points to a NUL-terminated string live for `'a`.
unsafe fn cstr_arg<'a>(p: *const c_char) -> Option<&'a CStr> {
    // SAFETY: non-NULL, so NUL-terminated by the caller's guarantee.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) })
}

/// Stores `value` in `*out` unless `out` is NULL.
///
/// # Safety
///
/// `out` is NULL or valid for writes.
unsafe fn put<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL, so writable by the caller's guarantee.
        unsafe { out.write(value) };
    }
}

fn neg(e: Errno) -> c_int {
    -(e as c_int)
}

/// Makes `fd` a new COW file over `backing_file`, with the bitmap and
/// data aligned to `alignment`: writes the version-3 header and extends
/// the file to its full length. Returns 0 with the layout in the `*_out`
/// arguments, or a negative errno.
///
/// # Safety
///
/// `cow_file` (only used in messages) is NULL or a C string;
/// `backing_file` is a C string; the `*_out` pointers are writable.
#[cfg_attr(feature = "os-um-drivers-cow_user", unsafe(no_mangle))]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn init_cow_file(
    fd: c_int,
    cow_file: *mut c_char,
    backing_file: *mut c_char,
    sectorsize: c_int,
    alignment: c_int,
    bitmap_offset_out: *mut c_int,
    bitmap_len_out: *mut c_ulong,
    data_offset_out: *mut c_int,
) -> c_int {
    if bitmap_offset_out.is_null() || bitmap_len_out.is_null() || data_offset_out.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: C strings or NULL, by our contract.
    let (cow_file, backing) = unsafe { (cstr_arg(cow_file), cstr_arg(backing_file)) };
    let Some(backing) = backing else {
        return -libc::EFAULT;
    };
    match cow::init_cow_file(fd, backing, sectorsize as u32, alignment as u32) {
        Ok(layout) => {
            // Layout::new checked that both offsets fit an int.
            // SAFETY: checked non-NULL above, writable by our contract.
            unsafe {
                bitmap_offset_out.write(layout.bitmap_offset as c_int);
                bitmap_len_out.write(layout.bitmap_len as c_ulong);
                data_offset_out.write(layout.data_offset as c_int);
            }
            0
        }
        Err(e) => report(&e, cow_file),
    }
}

/// Logs `e` with the C's message and returns its negative errno.
#[cold]
fn report(e: &CowError, cow_file: Option<&CStr>) -> c_int {
    klog!(Level::Err, "{}", e.display_with(cow_file));
    neg(e.errno())
}

/// Reads up to `len` bytes at `offset` of the file whose descriptor `arg`
/// points to: `pread`'s result, -1 with `errno` set on failure.
///
/// # Safety
///
/// `arg` points to an `int`; `buf` is valid for writes of `len` bytes.
#[cfg_attr(feature = "os-um-drivers-cow_user", unsafe(no_mangle))]
pub unsafe extern "C" fn file_reader(
    offset: u64,
    buf: *mut c_char,
    len: c_int,
    arg: *mut c_void,
) -> c_int {
    if arg.is_null() {
        Errno::EFAULT.set();
        return -1;
    }
    // SAFETY: `arg` points to the descriptor, by our contract.
    let fd = unsafe { arg.cast::<c_int>().read() };
    // The C passes its int length to pread's size_t unchanged; so do we.
    // SAFETY: `buf` holds `len` writable bytes, by our contract.
    unsafe { libc::pread64(fd, buf.cast(), len as usize, offset as libc::off64_t) as c_int }
}

/// Reads the COW header through `reader(offset, buf, len, arg)` and
/// returns 0 with its values in the `*_out` arguments, the backing file
/// name in a string the caller frees with `kfree`. `-EINVAL` if the file
/// is no COW file (silently) or its header is unusable (with the reason
/// logged); `-ENOMEM` if no memory. `*version_out` is set as soon as the
/// magic number matched, as in C.
///
/// # Safety
///
/// `reader` is called with `arg` and a buffer of the length it is given;
/// the `*_out` pointers are writable.
#[cfg_attr(feature = "os-um-drivers-cow_user", unsafe(no_mangle))]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn read_cow_header(
    reader: Option<CowReader>,
    arg: *mut c_void,
    version_out: *mut u32,
    backing_file_out: *mut *mut c_char,
    mtime_out: *mut c_longlong,
    size_out: *mut c_ulonglong,
    sectorsize_out: *mut c_int,
    align_out: *mut u32,
    bitmap_offset_out: *mut c_int,
) -> c_int {
    let outs_ok = ![
        version_out.is_null(),
        backing_file_out.is_null(),
        mtime_out.is_null(),
        size_out.is_null(),
        sectorsize_out.is_null(),
        align_out.is_null(),
        bitmap_offset_out.is_null(),
    ]
    .contains(&true);
    let Some(reader) = reader.filter(|_| outs_ok) else {
        return -libc::EFAULT;
    };
    // On the heap: ubd calls this on a kernel stack of a few pages.
    let mut buf = vec![0u8; cow::HEADER_READ_LEN];
    // SAFETY: `buf` holds the length we pass; `reader` and `arg` as our caller gave them.
    let n = unsafe { reader(0, buf.as_mut_ptr().cast(), buf.len() as c_int, arg) };
    // A failed read is a short header: the C compared the negative count as
    // unsigned, took it as long enough and parsed uninitialised memory.
    let got = usize::try_from(n).unwrap_or(0).min(buf.len());
    let data = &buf[..got];

    if let Ok(version) = cow::detect_version(data) {
        // SAFETY: checked non-NULL above, writable by our contract.
        unsafe { version_out.write(version) };
    }
    let header = match cow::parse_header(data) {
        Ok(h) => h,
        // No message: this is how ubd recognises a plain image.
        Err(HeaderError::NotCow { .. }) => return -libc::EINVAL,
        Err(e) => {
            if let HeaderError::Truncated {
                format: Format::V3Broken,
                ..
            } = e
            {
                report_broken_v3();
            }
            klog!(Level::Err, "read_cow_header - {e}");
            return -libc::EINVAL;
        }
    };
    if header.format == Format::V3Broken {
        report_broken_v3();
    }
    let name = c_strdup(&header.backing_file);
    if name.is_null() {
        klog!(
            Level::Err,
            "read_cow_header - failed to allocate backing file"
        );
        return -libc::ENOMEM;
    }
    // parse_header checked that the sector size (at most MAX_SECTORSIZE)
    // and the bitmap offset fit an int.
    // SAFETY: checked non-NULL above, writable by our contract.
    unsafe {
        backing_file_out.write(name);
        mtime_out.write(header.mtime);
        size_out.write(header.size);
        sectorsize_out.write(header.sectorsize as c_int);
        align_out.write(header.align);
        bitmap_offset_out.write(header.bitmap_offset as c_int);
    }
    0
}

#[cold]
fn report_broken_v3() {
    klog!(
        Level::Warning,
        "read_cow_header - broken V3 file with 64-bit layout - recovering content."
    );
}

/// Writes a version-3 header for `backing_file` at the start of `fd` and
/// stores the backing file's size in `*size`. 0 or a negative errno.
///
/// # Safety
///
/// `cow_file` (only used in messages) is NULL or a C string;
/// `backing_file` is a C string; `size` is writable.
#[cfg_attr(feature = "os-um-drivers-cow_user", unsafe(no_mangle))]
pub unsafe extern "C" fn write_cow_header(
    cow_file: *mut c_char,
    fd: c_int,
    backing_file: *mut c_char,
    sectorsize: c_int,
    alignment: c_int,
    size: *mut c_ulonglong,
) -> c_int {
    if size.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: C strings or NULL, by our contract.
    let (cow_file, backing) = unsafe { (cstr_arg(cow_file), cstr_arg(backing_file)) };
    let Some(backing) = backing else {
        return -libc::EFAULT;
    };
    match cow::write_header(fd, backing, sectorsize as u32, alignment as u32) {
        Ok(backing_size) => {
            // SAFETY: checked non-NULL above, writable by our contract.
            unsafe { size.write(backing_size) };
            0
        }
        Err(e) => report(&e, cow_file),
    }
}

/// The bitmap length and data offset of a COW file of `version` over a
/// backing file of `size` bytes whose bitmap starts at `bitmap_offset`.
///
/// The C has no way to fail here: with a zero divisor it crashed, on
/// overflow it wrapped. Both are logged and give a zero bitmap length and
/// data offset, which ubd refuses (it cannot allocate an empty bitmap).
/// Values from [`read_cow_header`] or [`init_cow_file`] never fail.
///
/// # Safety
///
/// The `*_out` pointers are NULL (skipped) or writable.
#[cfg_attr(feature = "os-um-drivers-cow_user", unsafe(no_mangle))]
pub unsafe extern "C" fn cow_sizes(
    version: c_int,
    size: u64,
    sectorsize: c_int,
    align: c_int,
    bitmap_offset: c_int,
    bitmap_len_out: *mut c_ulong,
    data_offset_out: *mut c_int,
) {
    // Any version below 3 has the old arithmetic, negative ones too.
    let version = u32::try_from(version).unwrap_or(0);
    let sizes = (|| {
        let sectorsize = u32::try_from(sectorsize).ok()?;
        let align = u32::try_from(align).ok()?;
        let bitmap_offset = u64::try_from(bitmap_offset).ok()?;
        let (len, offset) = cow::cow_sizes(version, size, sectorsize, align, bitmap_offset)?;
        Some((len, c_int::try_from(offset).ok()?))
    })();
    let (bitmap_len, data_offset) = sizes.unwrap_or_else(|| {
        klog!(
            Level::Err,
            "cow_sizes - invalid COW geometry: size {size}, sector size {sectorsize}, alignment {align}, bitmap offset {bitmap_offset}"
        );
        (0, 0)
    });
    // SAFETY: NULL or writable, by our contract.
    unsafe {
        put(bitmap_len_out, bitmap_len as c_ulong);
        put(data_offset_out, data_offset);
    }
}

#[cfg(test)]
mod tests;
