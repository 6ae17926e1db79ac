// SPDX-License-Identifier: GPL-2.0
use super::*;
use crate::host::ptrace::test_support::Tracee;
use crate::host::util::test_support::run_forked;

fn me() -> c_int {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

#[test]
fn parent_and_pc_from_proc() {
    // SAFETY: getppid has no preconditions.
    assert_eq!(os_process_parent(me()), unsafe { libc::getppid() });
    assert_eq!(os_process_parent(-1), -1);
    assert_eq!(os_process_parent(0x7fff_fff0), -1);
    assert_eq!(os_process_pc(0x7fff_fff0), c_ulong::MAX);
    let pc = procfs::process::Process::new(me())
        .unwrap()
        .stat()
        .unwrap()
        .kstkeip;
    assert_eq!(os_process_pc(me()) as u64, pc);
    assert_eq!(os_getpid(), me());
    // SAFETY: getpgrp has no preconditions.
    assert_eq!(os_getpgrp(), unsafe { libc::getpgrp() });
}

#[test]
fn kill_ptraced_process_reaps_it() {
    let child = Tracee::spawn(|| 0);
    let pid = child.pid;
    core::mem::forget(child);
    os_kill_ptraced_process(pid, 1);
    // Reaped: no such child any more.
    assert_eq!(
        // SAFETY: WNOHANG probe with a NULL status.
        unsafe { libc::waitpid(pid, core::ptr::null_mut(), libc::__WALL | libc::WNOHANG) },
        -1
    );
}

#[test]
fn kill_process_reaps_a_plain_child() {
    let _g = crate::host::util::test_support::fork_lock();
    // SAFETY: the child only pauses.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        loop {
            // SAFETY: pause has no preconditions.
            unsafe { libc::pause() };
        }
    }
    os_stop_process(pid);
    os_kill_process(pid, 1);
    // SAFETY: as above.
    assert_eq!(
        // SAFETY: WNOHANG probe with a NULL status.
        unsafe { libc::waitpid(pid, core::ptr::null_mut(), libc::WNOHANG) },
        -1
    );
}

#[test]
fn map_protect_drop_unmap_a_memory_file() {
    let fd = crate::host::physmem::create_at(&crate::host::physmem::Place::Memfd, 1 << 16).unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    // A reserved range to map over.
    // SAFETY: fresh anonymous reservation.
    let base = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            1 << 16,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED);
    // SAFETY: `base` is our reservation; the mapping replaces it.
    unsafe {
        assert_eq!(os_map_memory(base, raw, 4096, 8192, 1, 1, 0), 0);
        *(base as *mut u8) = 0x5a;
        // The write went to the file at offset 4096.
        let mut b = [0u8; 1];
        assert_eq!(libc::pread(raw, b.as_mut_ptr().cast(), 1, 4096), 1);
        assert_eq!(b[0], 0x5a);
        // A forked child does not inherit the mapping (MADV_DONTFORK).
        let status = run_forked(|| {
            let mut vec = [0u8; 1];
            let unmapped = libc::mincore(base, 4096, vec.as_mut_ptr()) < 0
                && *libc::__errno_location() == libc::ENOMEM;
            libc::_exit(if unmapped { 0 } else { 1 });
        });
        assert_eq!(status, 0, "the child inherited the kernel's memory mapping");
        // Except for a helper cloned without CLONE_VM, which gets a copy
        // (its stack and argument live there); afterwards forks skip it
        // again.
        let status = with_kernel_memory_forked(|| {
            run_forked(|| libc::_exit(if *(base as *const u8) == 0x5a { 0 } else { 1 }))
        });
        assert_eq!(status, 0, "the helper did not get the kernel's memory");
        let status = run_forked(|| {
            let mut vec = [0u8; 1];
            let unmapped = libc::mincore(base, 4096, vec.as_mut_ptr()) < 0;
            libc::_exit(if unmapped { 0 } else { 1 });
        });
        assert_eq!(status, 0, "MADV_DONTFORK was not restored");
        assert_eq!(os_drop_memory(base, 4096), 0);
        assert_eq!(*(base as *const u8), 0, "MADV_REMOVE zeroes the page");
        assert_eq!(os_protect_memory(base, 8192, 1, 0, 0), 0);
        assert_eq!(
            os_protect_memory(base.cast::<u8>().add(1).cast(), 8192, 1, 0, 0),
            -libc::EINVAL
        );
        assert_eq!(os_map_memory(base, -1, 0, 4096, 1, 0, 0), -libc::EBADF);
        assert_eq!(os_unmap_memory(base, 1 << 16), 0);
    }
}

#[test]
fn pdeathsig_is_set() {
    let status = run_forked(|| {
        os_set_pdeathsig();
        let mut sig: c_int = 0;
        // SAFETY: PR_GET_PDEATHSIG writes an int.
        unsafe { libc::prctl(libc::PR_GET_PDEATHSIG, &mut sig) };
        // SAFETY: leaving the child.
        unsafe { libc::_exit(if sig == libc::SIGKILL { 0 } else { 1 }) };
    });
    assert_eq!(status, 0);
}

#[test]
fn madv_remove_check_passes_here() {
    assert_eq!(can_drop_memory(), 1);
}
