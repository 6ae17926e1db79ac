// SPDX-License-Identifier: GPL-2.0
//! console_heavy: thousands of numbered lines, one write(2) each, and a
//! burst of 320 KiB in one write(2), to stdout, which is the UML console.
//! Here it checks that every write(2) takes all its bytes; the harness
//! checks that every line reached the host, in order and intact (see
//! [`crate::console_lines`] for the format).

use std::io::Write;

use super::Config;
use crate::console_lines::{self as cl, BURST_LINE_LEN, BURST_LINES, LINES};
use crate::ktap::{CaseResult, Context};
use crate::sys;
use crate::{check, diag};

/// One write(2) of all of `buf` to stdout. A blocking write to a terminal
/// takes everything unless a signal interrupts it, and no signal is expected
/// here: a short write is a failure (the rest is still written, so that the
/// host's check sees the whole stream).
fn write_whole(buf: &[u8], short: &mut Vec<String>) -> CaseResult {
    let n = sys::write_fd(libc::STDOUT_FILENO, buf).ctx("write to the console")?;
    if n < buf.len() {
        short.push(format!("{n} of {}", buf.len()));
        check!(
            n > 0,
            "write of {} bytes to the console returned 0",
            buf.len()
        );
        sys::write_all_fd(libc::STDOUT_FILENO, &buf[n..]).ctx("write to the console")?;
    }
    Ok(())
}

pub fn console_heavy(_cfg: &Config) -> CaseResult {
    // Our lines go straight to the descriptor: nothing may sit in Rust's
    // stdout buffer, and the lock keeps any other output away meanwhile.
    let mut out = std::io::stdout().lock();
    out.flush().ctx("flush stdout")?;
    let mut short = Vec::new();
    write_whole(format!("{}\n", cl::begin_line()).as_bytes(), &mut short)?;

    let t0 = sys::now_ns();
    let mut bytes = 0;
    for seq in 0..LINES {
        let l = format!("{}\n", cl::line('L', seq));
        bytes += l.len();
        write_whole(l.as_bytes(), &mut short)?;
    }
    let t1 = sys::now_ns();

    let mut burst = Vec::with_capacity(BURST_LINES as usize * BURST_LINE_LEN);
    for seq in 0..BURST_LINES {
        burst.extend_from_slice(cl::line('B', seq).as_bytes());
        burst.push(b'\n');
    }
    check!(
        burst.len() == BURST_LINES as usize * BURST_LINE_LEN,
        "the burst is {} bytes, expected {}",
        burst.len(),
        BURST_LINES as usize * BURST_LINE_LEN
    );
    let t2 = sys::now_ns();
    write_whole(&burst, &mut short)?;
    let t3 = sys::now_ns();
    write_whole(format!("{}\n", cl::end_line()).as_bytes(), &mut short)?;
    drop(out);

    let ms = |ns: u64| ns as f64 / 1e6;
    let kib_s = |b: usize, ns: u64| b as f64 / 1024.0 / (ns.max(1) as f64 / 1e9);
    diag!(
        "console: {LINES} lines ({} KiB) in {:.0} ms ({:.0} KiB/s); burst of {} KiB in one \
         write(2) in {:.0} ms ({:.0} KiB/s)",
        bytes / 1024,
        ms(t1 - t0),
        kib_s(bytes, t1 - t0),
        burst.len() / 1024,
        ms(t3 - t2),
        kib_s(burst.len(), t3 - t2)
    );
    check!(
        short.is_empty(),
        "{} short write(s) to the console: {}",
        short.len(),
        short.join(", ")
    );
    Ok(())
}
