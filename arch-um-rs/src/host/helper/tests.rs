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

/// `run_helper(args)` on `stack`, with `pre_exec(data)` if given.
fn spawn(
    stack: &Stack,
    args: &[&CStr],
    pre: Option<(PreExec, *mut c_void)>,
) -> Result<c_int, HelperError> {
    let mut buf: Vec<c_char> = vec![0; libc::PATH_MAX as usize];
    let argv = argv(args);
    let (pre_exec, data) = match pre {
        Some((f, d)) => (Some(f), d),
        None => (None, core::ptr::null_mut()),
    };
    // SAFETY: a valid stack, NULL-terminated argv and PATH_MAX buffer, all alive until the child has exec'd or failed.
    unsafe { run_helper(stack.top(), pre_exec, data, argv.as_ptr(), buf.as_mut_ptr()) }
}

#[test]
fn a_program_that_runs_returns_its_pid_and_exit_status() {
    let stack = Stack::new(64 << 10);
    let pid = spawn(&stack, &[c"true"], None).expect("true runs");
    assert!(pid > 0);
    let ws = wait_helper(pid).unwrap();
    assert!(exited_ok(&ws), "{ws:?}");
}

#[test]
fn a_failing_program_is_reported_by_wait() {
    let stack = Stack::new(64 << 10);
    let pid = spawn(&stack, &[c"false"], None).unwrap();
    let ws = wait_helper(pid).unwrap();
    assert!(!exited_ok(&ws));
    assert_eq!(raw_status(&ws), 1 << 8);
}

#[test]
fn a_missing_program_comes_back_as_the_exec_error_and_is_reaped() {
    let stack = Stack::new(64 << 10);
    let err = spawn(&stack, &[c"uml-no-such-helper-program"], None).unwrap_err();
    assert_eq!(err, HelperError::Exec(Errno::ENOENT));
    assert_eq!(err.neg_errno(), -libc::ENOENT);
}

#[test]
fn a_non_executable_file_is_eacces() {
    let stack = Stack::new(64 << 10);
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = std::ffi::CString::new(file.path().as_os_str().as_encoded_bytes()).unwrap();
    // A fresh temporary file has no execute bit (mode 0600), even for root.
    let err = spawn(&stack, &[&path], None).unwrap_err();
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
    let err = spawn(
        &stack,
        &[c"uml-no-such-helper-program"],
        Some((pre_exec, 4242usize as *mut c_void)),
    )
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
