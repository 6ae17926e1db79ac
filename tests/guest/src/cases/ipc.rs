// SPDX-License-Identifier: GPL-2.0
//! Pipes: a large checksummed transfer between processes, end of file,
//! EPIPE and a full non-blocking pipe.

use std::os::fd::AsRawFd;
use std::time::Duration;

use super::Config;
use crate::ktap::{CaseResult, Context};
use crate::pattern::{self, Fnv1a};
use crate::sys::{self, Exit};
use crate::{check, diag};

/// Bytes sent through the pipe.
const TOTAL: usize = 16 << 20;
const SEED: u64 = 0x7069_7065;

/// Chunk sizes that vary over 1..=65536 bytes, from the pattern generator.
fn chunk_len(seed: u64, i: u64) -> usize {
    1 + (pattern::word(seed, i) % 65536) as usize
}

pub fn pipes(_cfg: &Config) -> CaseResult {
    let (data_r, data_w) = sys::pipe().ctx("pipe")?;
    let (sum_r, sum_w) = sys::pipe().ctx("pipe")?;
    let (dw, sw) = (data_w.as_raw_fd(), sum_w.as_raw_fd());
    let (dr, sr) = (data_r.as_raw_fd(), sum_r.as_raw_fd());

    // The child writes the pattern in chunks of varying size, then the
    // checksum of what it wrote on the second pipe.
    let pid = sys::fork_child(|| {
        // SAFETY: closing the child's copies of the read ends.
        unsafe {
            libc::close(dr);
            libc::close(sr);
        }
        let mut buf = vec![0u8; 65536];
        let mut sum = Fnv1a::new();
        let mut off = 0usize;
        let mut i = 0u64;
        while off < TOTAL {
            let n = chunk_len(SEED ^ 1, i).min(TOTAL - off);
            pattern::fill(SEED, off as u64, &mut buf[..n]);
            sum.update(&buf[..n]);
            if sys::write_all_fd(dw, &buf[..n]).is_err() {
                return 1;
            }
            off += n;
            i += 1;
        }
        if sys::write_all_fd(sw, &sum.finish().to_le_bytes()).is_err() {
            return 2;
        }
        0
    })
    .ctx("fork")?;
    drop(data_w);
    drop(sum_w);

    // The parent reads with a different sequence of sizes.
    let mut buf = vec![0u8; 65536];
    let mut sum = Fnv1a::new();
    let mut off = 0usize;
    let mut i = 0u64;
    let mut bad = None;
    loop {
        let want = chunk_len(SEED ^ 2, i);
        let n = sys::read_fd(dr, &mut buf[..want]).ctx("read pipe")?;
        if n == 0 {
            break;
        }
        sum.update(&buf[..n]);
        if bad.is_none() {
            if let Some(j) = pattern::first_mismatch(SEED, off as u64, &buf[..n]) {
                bad = Some(off + j);
            }
        }
        off += n;
        i += 1;
    }
    let x = sys::wait_timeout(pid, Duration::from_secs(120)).ctx("waitpid")?;
    check!(x == Exit::Code(0), "writer child: {x}");
    check!(off == TOTAL, "received {off} bytes, expected {TOTAL}");
    check!(bad.is_none(), "data differs at byte {}", bad.unwrap_or(0));
    let mut s = [0u8; 8];
    let n = sys::read_full_fd(sr, &mut s).ctx("read checksum")?;
    check!(n == 8, "checksum pipe gave {n} bytes");
    let theirs = u64::from_le_bytes(s);
    let ours = sum.finish();
    check!(
        theirs == ours,
        "checksum: writer {theirs:#018x}, reader {ours:#018x}"
    );
    diag!("{TOTAL} bytes in {i} reads, fnv1a {ours:#018x}");

    // Writing to a pipe without readers fails with EPIPE (SIGPIPE ignored,
    // as the Rust runtime sets it up).
    let (r, w) = sys::pipe().ctx("pipe")?;
    drop(r);
    let e = sys::write_fd(w.as_raw_fd(), b"x");
    check!(
        matches!(&e, Err(e) if e.raw_os_error() == Some(libc::EPIPE)),
        "write without reader: {e:?}, expected EPIPE"
    );

    // A non-blocking pipe fills up to its capacity, then says EAGAIN.
    let (r, w) = sys::pipe().ctx("pipe")?;
    // SAFETY: fcntl on a descriptor we own.
    let cap = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) };
    check!(cap > 0, "F_GETPIPE_SZ: {}", std::io::Error::last_os_error());
    // SAFETY: fcntl on a descriptor we own.
    let fl = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    sys::cvt(unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) })
        .ctx("F_SETFL")?;
    let block = [0x5au8; 4096];
    let mut filled = 0usize;
    let err = loop {
        match sys::write_fd(w.as_raw_fd(), &block) {
            Ok(n) => filled += n,
            Err(e) => break e,
        }
        if filled > 16 << 20 {
            break std::io::Error::other("pipe never filled");
        }
    };
    check!(
        err.raw_os_error() == Some(libc::EAGAIN),
        "filling a non-blocking pipe: {err}, expected EAGAIN"
    );
    check!(
        filled == cap as usize,
        "pipe took {filled} bytes, F_GETPIPE_SZ says {cap}"
    );
    drop(w);
    let rest = sys::read_to_end_fd(&r).ctx("drain")?;
    check!(
        rest.len() == filled && rest.iter().all(|&b| b == 0x5a),
        "drained {} bytes, wrote {filled}",
        rest.len()
    );
    Ok(())
}
