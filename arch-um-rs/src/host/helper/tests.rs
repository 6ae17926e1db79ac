// SPDX-License-Identifier: GPL-2.0
//! Helper programs started the kernel's way, on a stack of our own.

use core::ffi::CStr;
use core::sync::atomic::{AtomicI32, Ordering};

use super::*;

use super::test_support::Stack;

fn argv(args: &[&CStr]) -> Vec<*mut c_char> {
    let mut v: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    v.push(core::ptr::null_mut());
    v
}

fn path_buf() -> Vec<c_char> {
    vec![0; libc::PATH_MAX as usize]
}

#[test]
fn a_program_that_runs_returns_its_pid_and_exit_status() {
    let stack = Stack::new(64 << 10);
    let mut buf = path_buf();
    let args = argv(&[c"true"]);
    // SAFETY: valid stack, argv and buffer; no pre-exec callback.
    let pid = unsafe {
        run_helper(
            stack.top(),
            None,
            core::ptr::null_mut(),
            args.as_ptr(),
            buf.as_mut_ptr(),
        )
    }
    .expect("true runs");
    assert!(pid > 0);
    let ws = wait_helper(pid).unwrap();
    assert!(exited_ok(&ws), "{ws:?}");
}

#[test]
fn a_failing_program_is_reported_by_wait() {
    let stack = Stack::new(64 << 10);
    let mut buf = path_buf();
    let args = argv(&[c"false"]);
    // SAFETY: as above.
    let pid = unsafe {
        run_helper(
            stack.top(),
            None,
            core::ptr::null_mut(),
            args.as_ptr(),
            buf.as_mut_ptr(),
        )
    }
    .unwrap();
    let ws = wait_helper(pid).unwrap();
    assert!(!exited_ok(&ws));
    assert_eq!(raw_status(&ws), 1 << 8);
}

#[test]
fn a_missing_program_comes_back_as_the_exec_error_and_is_reaped() {
    let stack = Stack::new(64 << 10);
    let mut buf = path_buf();
    let args = argv(&[c"uml-no-such-helper-program"]);
    // SAFETY: as above.
    let err = unsafe {
        run_helper(
            stack.top(),
            None,
            core::ptr::null_mut(),
            args.as_ptr(),
            buf.as_mut_ptr(),
        )
    }
    .unwrap_err();
    assert_eq!(err, HelperError::Exec(Errno::ENOENT));
    assert_eq!(err.neg_errno(), -libc::ENOENT);
}

#[test]
fn a_non_executable_file_is_eacces() {
    let stack = Stack::new(64 << 10);
    let mut buf = path_buf();
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = std::ffi::CString::new(file.path().as_os_str().as_encoded_bytes()).unwrap();
    // A fresh temporary file has no execute bit (mode 0600), even for root.
    let args = argv(&[&path]);
    // SAFETY: as above.
    let err = unsafe {
        run_helper(
            stack.top(),
            None,
            core::ptr::null_mut(),
            args.as_ptr(),
            buf.as_mut_ptr(),
        )
    }
    .unwrap_err();
    assert_eq!(err, HelperError::Exec(Errno::EACCES));
}

static PRE_EXEC_SAW: AtomicI32 = AtomicI32::new(0);
static PRE_EXEC_PID: AtomicI32 = AtomicI32::new(0);

unsafe extern "C" fn pre_exec(arg: *mut c_void) {
    // The child shares our memory (CLONE_VM): the stores are visible here.
    PRE_EXEC_SAW.store(arg as usize as i32, Ordering::SeqCst);
    // SAFETY: getpid takes no arguments (raw: the child must not use libc's cached pid).
    let pid = unsafe { libc::syscall(libc::SYS_getpid) } as i32;
    PRE_EXEC_PID.store(pid, Ordering::SeqCst);
}

#[test]
fn pre_exec_runs_in_the_child_before_exec_on_a_one_page_stack() {
    // The kernel gives helpers a single page of stack.
    let stack = Stack::new(4096 * 4);
    let mut buf = path_buf();
    let args = argv(&[c"uml-no-such-helper-program"]);
    // SAFETY: as above; the callback only stores to a static.
    let err = unsafe {
        run_helper(
            stack.top(),
            Some(pre_exec),
            4242usize as *mut c_void,
            args.as_ptr(),
            buf.as_mut_ptr(),
        )
    }
    .unwrap_err();
    assert_eq!(err, HelperError::Exec(Errno::ENOENT));
    assert_eq!(PRE_EXEC_SAW.load(Ordering::SeqCst), 4242);
    // The child that failed to exec has been reaped already.
    let child = PRE_EXEC_PID.load(Ordering::SeqCst);
    assert!(child > 0 && child != std::process::id() as i32);
    assert_eq!(wait_helper(child).unwrap_err(), Errno::ECHILD);
    // The PATH walk, the status write and the callback fit in the page the
    // kernel's alloc_stack(0) provides, even unoptimised.
    let used = stack.used();
    assert!(used < 4096, "helper child used {used} bytes of stack");
}

extern "C" fn thread_body(arg: *mut c_void) -> c_int {
    arg as usize as c_int
}

#[test]
fn a_helper_thread_runs_and_its_exit_status_is_waited_for() {
    let stack = Stack::new(64 << 10);
    // SAFETY: the body only returns its argument.
    let pid = unsafe {
        start_helper_thread(
            stack.top(),
            thread_body,
            3usize as *mut c_void,
            libc::CLONE_VM,
        )
    }
    .unwrap();
    let ws = wait_helper(pid).unwrap();
    assert_eq!(ws, WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 3));
    assert!(!exited_ok(&ws));
}
