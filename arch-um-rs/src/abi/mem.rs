// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/mem.c: the host file behind physical
//! memory (see [`crate::host::physmem`]) and KASAN's shadow mapping.
//!
//! These run once each, early in boot, on the one kernel thread.

use core::ffi::{c_ulonglong, c_void};
use std::os::fd::IntoRawFd;

use crate::host::physmem::{self, Place, Report};
use crate::host::util::HostCell;

/// The place chosen for memory files, once `choose_place` ran. Boot-time
/// only, one host thread, never from a signal handler.
static PLACE: HostCell<Option<Place>> = HostCell::new(None);

/// Prints through `os_info`/`os_warn`, as the C layer does.
struct BootLines;

impl Report for BootLines {
    fn info(&mut self, args: core::fmt::Arguments<'_>) {
        crate::os_info!("{args}");
    }
    fn warn(&mut self, args: core::fmt::Arguments<'_>) {
        crate::os_warn!("{args}");
    }
}

fn getenv(name: &core::ffi::CStr) -> Option<Vec<u8>> {
    // SAFETY: getenv returns NULL or a C string in the environment, unchanged during boot.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    // SAFETY: `p` is a NUL-terminated string (checked non-NULL).
    (!p.is_null()).then(|| unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes().to_vec())
}

/// A memfd when the host gives one that may be mapped `PROT_EXEC`, else the
/// directory the C layer would pick.
fn choose_place() -> Place {
    // SAFETY: boot-time only, one kernel thread, no signal handler uses PLACE.
    unsafe {
        PLACE.with(|p| {
            p.get_or_insert_with(|| {
                let why = match physmem::new_memfd() {
                    Ok(fd) => match physmem::exec_mappable(&fd) {
                        Ok(()) => return Place::Memfd,
                        Err(e) => e,
                    },
                    Err(e) => e,
                };
                crate::os_info!(
                    "No usable memfd for physical memory ({}), using a file\n",
                    why.desc()
                );
                Place::Dir(physmem::choose_dir(getenv, &mut BootLines).as_cstr().into())
            })
            .clone()
        })
    }
}

fn exit_boot() -> ! {
    // SAFETY: leaving the process during boot, as the C layer does (atexit handlers run).
    unsafe { libc::exit(1) }
}

/// Creates the physical memory file of `len` bytes and returns its
/// descriptor (close-on-exec). Like the C layer, it does not return on
/// failure: it prints why (for a directory too small for `len`: the place
/// and both sizes) and exits with status 1.
#[cfg_attr(feature = "os-mem", unsafe(no_mangle))]
pub extern "C" fn create_mem_file(len: c_ulonglong) -> core::ffi::c_int {
    let place = choose_place();
    match physmem::create_at(&place, len) {
        Ok(fd) => fd.into_raw_fd(),
        Err(e) => {
            crate::os_warn!("{e}\n");
            exit_boot()
        }
    }
}

/// Checks that memory files may be mapped `PROT_EXEC` where they are made
/// (memfd, or a directory not mounted noexec); exits with status 1 if not.
#[cfg_attr(feature = "os-mem", unsafe(no_mangle))]
pub extern "C" fn check_tmpexec() {
    let place = choose_place();
    let page = physmem::page_size() as u64;
    let fd = match physmem::create_at(&place, page) {
        Ok(fd) => fd,
        Err(e) => {
            crate::os_warn!("{e}\n");
            exit_boot()
        }
    };
    crate::os_info!("Checking PROT_EXEC mmap in {place}...");
    match physmem::exec_mappable(&fd) {
        Ok(()) => crate::os_info!("OK\n"),
        Err(e) => {
            crate::os_warn!("{}\n", e.desc());
            if e == nix::errno::Errno::EPERM {
                crate::os_warn!("{place} must be not mounted noexec\n");
            }
            exit_boot()
        }
    }
}

/// Maps `len` bytes of zeroed memory at `start` for KASAN's shadow; exits
/// with status 1 if the host refuses.
///
/// # Safety
///
/// `[start, start + len)` is the shadow region the kernel reserved: nothing
/// else lives there.
#[cfg_attr(feature = "os-mem", unsafe(no_mangle))]
pub unsafe extern "C" fn kasan_map_memory(start: *mut c_void, len: usize) {
    // SAFETY: MAP_FIXED over the reserved shadow region only (caller's contract).
    let addr = unsafe {
        libc::mmap(
            start,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_FIXED | libc::MAP_ANONYMOUS | libc::MAP_PRIVATE | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        crate::os_info!(
            "Couldn't allocate shadow memory: {}\n.",
            nix::errno::Errno::last().desc()
        );
        exit_boot();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The only test touching PLACE: the place is chosen once and reused.
    #[test]
    fn mem_file_and_exec_check() {
        check_tmpexec();
        let fd = create_mem_file(1 << 24);
        assert!(fd >= 0);
        // SAFETY: `fd` was just returned to us.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)).unwrap();
        assert_eq!(st.st_size, 1 << 24);
        assert_eq!(choose_place(), Place::Memfd, "this host has usable memfds");
    }
}
