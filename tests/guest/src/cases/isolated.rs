// SPDX-License-Identifier: GPL-2.0
//! Runs the body of a case in a forked child, so that a wild fault, a
//! corrupted address space or a changed signal disposition ends that child
//! and not the whole suite. The child reports its verdict through a shared
//! page; a child that dies instead is a failure that names how it died and
//! how far it got.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use crate::ktap::{CaseResult, Context, Verdict};
use crate::sys::{self, Exit, Mapping};

/// Layout of the report page: progress counter, verdict kind, message length,
/// message bytes.
const PROGRESS_OFF: usize = 0;
const LEN_OFF: usize = 8;
const MSG_OFF: usize = 16;
const REPORT_LEN: usize = 4096;

const CODE_PASS: i32 = 0;
const CODE_FAIL: i32 = 1;
const CODE_SKIP: i32 = 2;
const CODE_PANIC: i32 = 3;

/// Runs `body` in a child and waits at most `limit` for it. `body` gets a
/// progress counter that it may update; a child that crashes or hangs is
/// reported with the last value it stored there.
pub fn run_isolated<F>(what: &str, limit: Duration, body: F) -> CaseResult
where
    F: FnOnce(&AtomicU64) -> CaseResult,
{
    let page = Mapping::new_shared(REPORT_LEN, libc::PROT_READ | libc::PROT_WRITE)
        .ctx("mmap report page")?;
    let base = page.as_ptr() as usize;
    // SAFETY: the shared page is page-aligned, zero-filled and lives until the end of this function (the child exits inside it); AtomicU64 has the size and alignment of u64.
    let progress: &AtomicU64 = unsafe { &*((base + PROGRESS_OFF) as *const AtomicU64) };
    let pid = sys::fork_child(|| {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(progress)));
        let (code, msg) = match r {
            Ok(Ok(())) => (CODE_PASS, String::new()),
            Ok(Err(Verdict::Fail(m))) => (CODE_FAIL, m),
            Ok(Err(Verdict::Skip(m))) => (CODE_SKIP, m),
            Err(p) => (
                CODE_PANIC,
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into()),
            ),
        };
        let n = msg.len().min(REPORT_LEN - MSG_OFF);
        // SAFETY: `n` bytes fit in the page after MSG_OFF; the parent reads them only after this child has exited.
        unsafe {
            std::ptr::copy_nonoverlapping(msg.as_ptr(), (base + MSG_OFF) as *mut u8, n);
            std::ptr::write_volatile((base + LEN_OFF) as *mut u64, n as u64);
        }
        code
    })
    .ctx("fork")?;
    let x = sys::wait_timeout(pid, limit);
    let at = progress.load(SeqCst);
    let x = x.map_err(|e| Verdict::Fail(format!("{what}: {e} (progress {at})")))?;
    // SAFETY: the child has exited; LEN_OFF is within the page and 8-aligned.
    let len = unsafe { std::ptr::read_volatile((base + LEN_OFF) as *const u64) } as usize;
    let len = len.min(REPORT_LEN - MSG_OFF);
    // SAFETY: `len` bytes after MSG_OFF lie within the page.
    let bytes = unsafe { std::slice::from_raw_parts((base + MSG_OFF) as *const u8, len) };
    let msg = String::from_utf8_lossy(bytes).into_owned();
    match x {
        Exit::Code(CODE_PASS) => Ok(()),
        Exit::Code(CODE_FAIL) => Err(Verdict::Fail(msg)),
        Exit::Code(CODE_SKIP) => Err(Verdict::Skip(msg)),
        Exit::Code(CODE_PANIC) => Err(Verdict::Fail(format!("panicked: {msg}"))),
        other => Err(Verdict::Fail(format!(
            "{what}: the isolated child ended with {other} (progress {at})"
        ))),
    }
}
