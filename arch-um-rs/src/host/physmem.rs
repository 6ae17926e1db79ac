// SPDX-License-Identifier: GPL-2.0
//! The host file behind UML's physical memory: the safe core behind
//! [`crate::abi::mem`], which replaces `arch/um/os-Linux/mem.c`.
//!
//! The kernel's physical memory and every user address space map one shared
//! file. It is a memfd (memfd_create(2)) when the host allows one that can be
//! mapped `PROT_EXEC`; otherwise an unlinked temporary file in the first of
//! `$TMPDIR`, `$TMP`, `$TEMP`, `/dev/shm` and `/tmp` that the C layer would
//! pick, with the same boot lines.
//!
//! Unlike the C layer, a directory that cannot hold the requested size is
//! refused at boot with its name and both sizes: a sparse file on a full
//! tmpfs would otherwise kill the kernel with SIGBUS on first touch.

use core::ffi::CStr;
use core::fmt;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;

use crate::host::file::{CStrDisplay, owned, retry_eintr};
use crate::host::util::CBuf;

/// Where the memory file lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// An anonymous memfd.
    Memfd,
    /// An unlinked file in this directory.
    Dir(CString),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Memfd => f.write_str("memfd"),
            Place::Dir(d) => write!(f, "{}", CStrDisplay(d)),
        }
    }
}

/// Why no memory file could be made.
#[derive(Debug, PartialEq, Eq)]
pub enum PhysmemError {
    /// The directory has `avail` bytes free, less than the `len` asked for.
    NoSpace { place: Place, len: u64, avail: u64 },
    /// A host call failed; `what` names it.
    Host {
        place: Place,
        what: &'static str,
        errno: Errno,
    },
}

const MIB: f64 = 1024.0 * 1024.0;

impl fmt::Display for PhysmemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhysmemError::NoSpace { place, len, avail } => write!(
                f,
                "Not enough space in {place} for {len} bytes ({:.2} MiB) of physical memory: \
                 {avail} bytes ({:.0} MiB) free. Use a smaller mem= or point TMPDIR at a larger \
                 filesystem",
                *len as f64 / MIB,
                *avail as f64 / MIB
            ),
            PhysmemError::Host { place, what, errno } => {
                write!(f, "{what} in {place} failed: {}", errno.desc())
            }
        }
    }
}

/// The boot lines the C layer prints while it picks a directory
/// ("Checking environment variables for a tempdir...", ...), handed to the
/// caller's printer piece by piece, as `os_info` prints them.
pub trait Report {
    fn info(&mut self, args: fmt::Arguments<'_>);
    fn warn(&mut self, args: fmt::Arguments<'_>);
}

/// The environment variables consulted, in order, then the tmpfs candidates.
const ENV_VARS: [&CStr; 3] = [c"TMPDIR", c"TMP", c"TEMP"];
const TMPFS_DIRS: [&CStr; 2] = [c"/dev/shm", c"/tmp"];
const FALLBACK_DIR: &CStr = c"/tmp";

fn on_tmpfs(dir: &CStr, out: &mut dyn Report) -> bool {
    out.info(format_args!(
        "Checking if {} is on tmpfs...",
        CStrDisplay(dir)
    ));
    match nix::sys::statfs::statfs(dir) {
        Err(e) => out.info(format_args!("{}\n", e.desc())),
        Ok(st) if st.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC => {
            out.info(format_args!("no\n"))
        }
        Ok(_) => {
            out.info(format_args!("OK\n"));
            return true;
        }
    }
    false
}

/// Picks the directory for the memory file as the C layer does: the first
/// set variable of `TMPDIR`, `TMP`, `TEMP` (used even when it is not tmpfs,
/// with a warning), else the first tmpfs of `/dev/shm` and `/tmp`, else
/// `/tmp` with a warning. `getenv` is passed in for tests.
pub fn choose_dir(getenv: impl Fn(&CStr) -> Option<Vec<u8>>, out: &mut dyn Report) -> CBuf<4096> {
    let mut buf = CBuf::new();
    out.info(format_args!(
        "Checking environment variables for a tempdir..."
    ));
    for var in ENV_VARS {
        if let Some(dir) = getenv(var).filter(|d| !d.is_empty()) {
            out.info(format_args!("{}\n", String::from_utf8_lossy(&dir)));
            // An over-long value cannot name a directory we could open anyway.
            if buf.set(&dir).is_err() {
                buf.set(FALLBACK_DIR.to_bytes()).expect("fits");
            }
            if !on_tmpfs(buf.as_cstr(), out) {
                out.warn(format_args!(
                    "Warning: tempdir {} is not on tmpfs\n",
                    CStrDisplay(buf.as_cstr())
                ));
            }
            return buf;
        }
    }
    out.info(format_args!("none found\n"));
    for dir in TMPFS_DIRS {
        if on_tmpfs(dir, out) {
            buf.set(dir.to_bytes()).expect("fits");
            return buf;
        }
    }
    buf.set(FALLBACK_DIR.to_bytes()).expect("fits");
    out.warn(format_args!(
        "Warning: tempdir {} is not on tmpfs\n",
        CStrDisplay(FALLBACK_DIR)
    ));
    buf
}

/// A new, empty memfd for physical memory (close-on-exec), or the host's
/// reason for refusing one.
pub fn new_memfd() -> Result<OwnedFd, Errno> {
    let mfd = memfd::MemfdOptions::default()
        .close_on_exec(true)
        .create("uml-physmem")
        .map_err(|err| match err {
            memfd::Error::Create(e) | memfd::Error::AddSeals(e) | memfd::Error::GetSeals(e) => {
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOSYS))
            }
        })?;
    Ok(OwnedFd::from(mfd.into_file()))
}

/// Whether a private `PROT_EXEC` mapping of `fd` (at least a page long)
/// is allowed; the host's errno if not.
pub fn exec_mappable(fd: &OwnedFd) -> Result<(), Errno> {
    let page = page_size();
    // SAFETY: a fresh private mapping at an address the host picks, unmapped below.
    let addr = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            page,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE,
            fd.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    // SAFETY: `addr` is the page mapped just above, used by nobody else.
    unsafe { libc::munmap(addr, page) };
    Ok(())
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Free bytes (for an unprivileged writer) of the filesystem holding `dir`.
pub fn free_space(dir: &CStr) -> Result<u64, Errno> {
    let st = nix::sys::statvfs::statvfs(dir)?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// Creates an unlinked temporary file in `dir`: `O_TMPFILE` where the
/// filesystem has it, else `mkstemp` and `unlink`, as the C layer does.
pub fn temp_file_in(dir: &CStr) -> Result<OwnedFd, (&'static str, Errno)> {
    // SAFETY: `dir` is a C string; the result is a new descriptor or -1.
    let fd = unsafe {
        libc::open(
            dir.as_ptr(),
            libc::O_CLOEXEC | libc::O_RDWR | libc::O_EXCL | libc::O_TMPFILE,
            0o700,
        )
    };
    if fd >= 0 {
        return Ok(owned(fd));
    }
    let err = Errno::last();
    if !matches!(err, Errno::EINVAL | Errno::EISDIR | Errno::EOPNOTSUPP) {
        return Err(("open(O_TMPFILE)", err));
    }
    let mut name = CBuf::<4120>::new();
    name.set(dir.to_bytes())
        .map_err(|_| ("mkstemp", Errno::ENAMETOOLONG))?;
    name.push(b"/vm_file-XXXXXX")
        .map_err(|_| ("mkstemp", Errno::ENAMETOOLONG))?;
    // SAFETY: `name` is a writable NUL-terminated template ending in XXXXXX.
    let fd = unsafe { libc::mkstemp(name.as_mut_ptr()) };
    if fd < 0 {
        return Err(("mkstemp", Errno::last()));
    }
    let fd = owned(fd);
    // SAFETY: `name` now holds the path mkstemp created.
    if unsafe { libc::unlink(name.as_ptr()) } < 0 {
        return Err(("unlink", Errno::last()));
    }
    crate::host::file::set_cloexec(fd.as_raw_fd()).map_err(|e| ("fcntl(FD_CLOEXEC)", e))?;
    Ok(fd)
}

/// Creates a memory file of `len` bytes at `place`. The file is sparse; in
/// a directory, the filesystem must have room for all of it.
pub fn create_at(place: &Place, len: u64) -> Result<OwnedFd, PhysmemError> {
    let host = |what, errno| PhysmemError::Host {
        place: place.clone(),
        what,
        errno,
    };
    let fd = match place {
        Place::Memfd => new_memfd().map_err(|e| host("memfd_create", e))?,
        Place::Dir(dir) => {
            let avail = free_space(dir).map_err(|e| host("statvfs", e))?;
            if avail < len {
                return Err(PhysmemError::NoSpace {
                    place: place.clone(),
                    len,
                    avail,
                });
            }
            temp_file_in(dir).map_err(|(what, e)| host(what, e))?
        }
    };
    let len_off = i64::try_from(len).map_err(|_| host("ftruncate", Errno::EFBIG))?;
    retry_eintr(|| nix::unistd::ftruncate(&fd, len_off)).map_err(|e| host("ftruncate", e))?;
    Ok(fd)
}

#[cfg(test)]
mod tests;
