// SPDX-License-Identifier: GPL-2.0
//! The lines of the `console_heavy` case and their check.
//!
//! The guest writes, to its console: a begin line, [`LINES`] numbered lines
//! of varying length (one write(2) each), a burst of [`BURST_LINES`] lines
//! of [`BURST_LINE_LEN`] bytes (one write(2) for all), and an end line.
//! Each numbered line is
//!
//! ```text
//! @@CONHEAVY <kind> <seq, 6 digits> <checksum, 16 hex digits> <payload>
//! ```
//!
//! with kind `L` or `B`, a payload of letters and digits generated from
//! (kind, seq), and the FNV-1a 64 checksum of `<kind> <seq> <payload>`.
//! The harness (`harness/src/suite.rs`) compiles this very file and checks
//! with [`verify`] that every line arrived on the host, once, in order, whole.
//! No dependencies but the shared [`pattern`](super::pattern) module, which
//! both crates declare next to this one.

use super::pattern::{Fnv1a, word};

/// Start of every line of the case.
pub const MARK: &str = "@@CONHEAVY";
/// Numbered lines written one by one.
pub const LINES: u32 = 3000;
/// Lines of the burst, written with one write(2).
pub const BURST_LINES: u32 = 320;
/// Bytes of each burst line, its newline included (the burst is 320 KiB).
pub const BURST_LINE_LEN: usize = 1024;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Header up to the payload: mark, kind, seq, checksum and the spaces.
const HEADER_LEN: usize = MARK.len() + 1 + 1 + 1 + 6 + 1 + 16 + 1;

fn payload(kind: char, seq: u32) -> String {
    let seed = u64::from(kind as u32) << 32 | u64::from(seq);
    let len = match kind {
        // Everything but the header and the newline.
        'B' => BURST_LINE_LEN - HEADER_LEN - 1,
        // 8 to 120 bytes, so that lines of all lengths cross the console.
        _ => 8 + (word(seed, 0) % 113) as usize,
    };
    (1..=len as u64)
        .map(|k| ALPHABET[(word(seed, k) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

fn line_checksum(kind: char, seq: u32, payload: &str) -> u64 {
    let mut h = Fnv1a::new();
    h.update(format!("{kind} {seq} {payload}").as_bytes());
    h.finish()
}

/// Numbered line `seq` of `kind` (`L` or `B`), without its newline.
pub fn line(kind: char, seq: u32) -> String {
    let p = payload(kind, seq);
    let c = line_checksum(kind, seq, &p);
    format!("{MARK} {kind} {seq:06} {c:016x} {p}")
}

/// The first line the guest writes.
pub fn begin_line() -> String {
    format!("{MARK} BEGIN {LINES} {BURST_LINES}x{BURST_LINE_LEN}")
}

/// The last line the guest writes.
pub fn end_line() -> String {
    format!("{MARK} END")
}

/// What [`verify`] found: the lines that arrived in order and intact, and
/// the problems (empty if all is well).
#[derive(Debug, Default)]
pub struct Verdict {
    pub lines: u32,
    pub burst_lines: u32,
    /// Bytes of those lines, newlines included.
    pub bytes: usize,
    pub problems: Vec<String>,
}

/// Problems listed in full; the rest are counted.
const MAX_PROBLEMS: usize = 10;

impl Verdict {
    fn problem(&mut self, p: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        } else if self.problems.len() == MAX_PROBLEMS {
            self.problems.push("(more problems not listed)".into());
        }
    }
}

/// Checks the lines of the case in `console` (the whole console output;
/// other lines are ignored). Each numbered line must arrive exactly once,
/// in order, with its own checksum right and the payload the guest
/// generates; the begin line must come first and the end line last.
pub fn verify(console: &str) -> Verdict {
    let mut v = Verdict::default();
    let (mut begun, mut ended) = (false, false);
    // Next seq due, per kind.
    let mut next = [0u32; 2];
    for (no, raw) in console.lines().enumerate() {
        let raw = raw.trim_end_matches('\r');
        let Some(at) = raw.find(MARK) else {
            continue;
        };
        let no = no + 1;
        if at != 0 {
            let before: String = raw[..at].chars().take(60).collect();
            v.problem(format!(
                "console line {no}: {at} bytes before {MARK}: {before:?}"
            ));
        }
        let l = &raw[at..];
        if ended {
            v.problem(format!("console line {no}: after the end line: {:.60}", l));
            continue;
        }
        if l == begin_line() {
            if begun {
                v.problem(format!("console line {no}: a second begin line"));
            }
            begun = true;
            continue;
        }
        if !begun {
            v.problem(format!(
                "console line {no}: before the begin line: {:.60}",
                l
            ));
        }
        if l == end_line() {
            ended = true;
            continue;
        }
        let mut f = l[MARK.len()..].trim_start().splitn(4, ' ');
        let (kind, seq, sum, payload) = (f.next(), f.next(), f.next(), f.next());
        let (Some(k @ ("L" | "B")), Some(seq), Some(sum), Some(payload)) =
            (kind, seq, sum, payload)
        else {
            v.problem(format!(
                "console line {no}: not a line of the case: {:.60}",
                l
            ));
            continue;
        };
        let kind = if k == "L" { 'L' } else { 'B' };
        let idx = usize::from(kind == 'B');
        let (Ok(seq), Ok(sum)) = (seq.parse::<u32>(), u64::from_str_radix(sum, 16)) else {
            v.problem(format!(
                "console line {no}: bad number or checksum: {:.60}",
                l
            ));
            continue;
        };
        if kind == 'B' && next[0] != LINES {
            v.problem(format!(
                "console line {no}: burst line {seq} before the numbered lines ended (at {})",
                next[0]
            ));
        }
        // A line after a lost one still counts as in order; one that came
        // again or late does not.
        let in_order = seq >= next[idx];
        if seq != next[idx] {
            let what = if seq < next[idx] {
                "again or out of order"
            } else {
                "lines missing before it"
            };
            v.problem(format!(
                "console line {no}: {kind} {seq} when {} was due ({what})",
                next[idx]
            ));
        }
        // After a lost line, go on from the one that came; after a line
        // that came again, keep waiting for the one due.
        next[idx] = next[idx].max(seq.saturating_add(1));
        if line_checksum(kind, seq, payload) != sum {
            v.problem(format!(
                "console line {no}: {kind} {seq}: checksum {sum:016x} does not match the \
                 {} bytes of payload that arrived",
                payload.len()
            ));
        } else if l != line(kind, seq) {
            v.problem(format!(
                "console line {no}: {kind} {seq}: not the line the guest generates"
            ));
        } else if in_order {
            if kind == 'B' {
                v.burst_lines += 1;
            } else {
                v.lines += 1;
            }
            v.bytes += l.len() + 1;
        }
    }
    if !begun {
        v.problem(format!("no begin line ({MARK} BEGIN ...) on the console"));
    }
    if !ended {
        v.problem(format!("no end line ({MARK} END) on the console"));
    }
    if next[0] != LINES || v.lines != LINES {
        v.problem(format!(
            "{} of {LINES} numbered lines arrived in order and intact (the last one seen: {})",
            v.lines,
            i64::from(next[0]) - 1
        ));
    }
    if next[1] != BURST_LINES || v.burst_lines != BURST_LINES {
        v.problem(format!(
            "{} of {BURST_LINES} burst lines arrived in order and intact (the last one seen: {})",
            v.burst_lines,
            i64::from(next[1]) - 1
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the guest writes, with kernel messages in between.
    fn console() -> String {
        let mut s = String::from("[    0.1] boot\nKTAP version 1\n");
        s.push_str(&begin_line());
        s.push_str("\r\n");
        for seq in 0..LINES {
            s.push_str(&line('L', seq));
            s.push_str("\r\n");
            if seq == 17 {
                s.push_str("[    1.2] a kernel message\n");
            }
        }
        for seq in 0..BURST_LINES {
            let l = line('B', seq);
            assert_eq!(l.len() + 1, BURST_LINE_LEN);
            s.push_str(&l);
            s.push('\n');
        }
        s.push_str(&end_line());
        s.push_str("\nok 1 console_heavy\n");
        s
    }

    #[test]
    fn accepts_what_the_guest_writes() {
        let v = verify(&console());
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!((v.lines, v.burst_lines), (LINES, BURST_LINES));
        assert!(v.bytes > (BURST_LINES as usize) * BURST_LINE_LEN);
    }

    #[test]
    fn lines_are_printable_and_vary() {
        let lens: std::collections::BTreeSet<usize> =
            (0..200).map(|s| line('L', s).len()).collect();
        assert!(lens.len() > 50);
        for s in 0..200 {
            let l = line('L', s);
            assert!(l.bytes().all(|b| b.is_ascii_graphic() || b == b' '), "{l}");
            assert!(!l.contains('#'));
        }
    }

    fn problems_after(edit: impl FnOnce(&mut Vec<String>)) -> Vec<String> {
        let mut lines: Vec<String> = console().lines().map(String::from).collect();
        edit(&mut lines);
        verify(&lines.join("\n")).problems
    }

    fn find(lines: &[String], l: &str) -> usize {
        lines.iter().position(|x| x == l).unwrap()
    }

    fn has(problems: &[String], what: &str) -> bool {
        problems.iter().any(|p| p.contains(what))
    }

    #[test]
    fn finds_a_lost_line() {
        let p = problems_after(|ls| {
            let i = find(ls, &line('L', 1234));
            ls.remove(i);
        });
        assert!(has(&p, "L 1235 when 1234 was due"), "{p:?}");
        assert!(has(&p, "2999 of 3000 numbered lines"), "{p:?}");
    }

    #[test]
    fn finds_a_duplicate_and_a_swap() {
        let p = problems_after(|ls| {
            let i = find(ls, &line('B', 10));
            let d = ls[i].clone();
            ls.insert(i, d);
        });
        assert!(
            has(&p, "B 10 when 11 was due (again or out of order)"),
            "{p:?}"
        );
        assert_eq!(p.len(), 1, "{p:?}");
        let p = problems_after(|ls| {
            let i = find(ls, &line('L', 5));
            ls.swap(i, i + 1);
        });
        assert!(has(&p, "L 6 when 5 was due"), "{p:?}");
        assert!(has(&p, "L 5 when 7 was due"), "{p:?}");
        assert!(has(&p, "2999 of 3000 numbered lines"), "{p:?}");
    }

    #[test]
    fn finds_a_corrupt_byte_and_a_cut_line() {
        let p = problems_after(|ls| {
            let i = find(ls, &line('B', 300));
            ls[i].replace_range(500..501, "!");
        });
        assert!(has(&p, "B 300: checksum"), "{p:?}");
        let p = problems_after(|ls| {
            let i = find(ls, &line('L', 77));
            let cut = ls[i].len() - 3;
            ls[i].truncate(cut);
        });
        assert!(has(&p, "L 77: checksum"), "{p:?}");
    }

    #[test]
    fn finds_glued_kernel_text_and_missing_tail() {
        let p = problems_after(|ls| {
            let i = find(ls, &line('L', 9));
            ls[i].insert_str(0, "[ 2.0] x");
        });
        assert!(has(&p, "bytes before"), "{p:?}");
        let p = problems_after(|ls| {
            let i = find(ls, &line('B', 200));
            ls.truncate(i);
        });
        assert!(has(&p, "200 of 320 burst lines"), "{p:?}");
        assert!(has(&p, "no end line"), "{p:?}");
        assert!(!verify("nothing here\n").problems.is_empty());
    }
}
