// SPDX-License-Identifier: GPL-2.0
//! A minimal KTAP v1 producer (Documentation/dev-tools/ktap.rst).
//!
//! Each case returns a [`CaseResult`]; a panic inside a case is caught and
//! reported as a failure, so one broken case never hides the others.

use std::fmt::Display;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};

/// Why a case did not pass.
#[derive(Debug)]
pub enum Verdict {
    Fail(String),
    Skip(String),
}

pub type CaseResult = Result<(), Verdict>;

/// Fails the current case with a formatted reason unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::ktap::Verdict::Fail(format!($($fmt)+)));
        }
    };
}

/// Fails the current case with a formatted reason.
#[macro_export]
macro_rules! fail {
    ($($fmt:tt)+) => {
        return Err($crate::ktap::Verdict::Fail(format!($($fmt)+)))
    };
}

/// Skips the current case with a formatted reason.
#[macro_export]
macro_rules! skip {
    ($($fmt:tt)+) => {
        return Err($crate::ktap::Verdict::Skip(format!($($fmt)+)))
    };
}

/// Prints a KTAP diagnostic line (`# ...`).
#[macro_export]
macro_rules! diag {
    ($($fmt:tt)+) => {
        $crate::ktap::diag_line(&format!($($fmt)+))
    };
}

/// Adds context to an error and turns it into a failure.
pub trait Context<T> {
    fn ctx(self, what: &str) -> Result<T, Verdict>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, Verdict> {
        self.map_err(|e| Verdict::Fail(format!("{what}: {e}")))
    }
}

/// Writes one line to stdout and flushes it, so that the console shows the
/// line at once and a later fork() does not duplicate buffered output.
pub fn line(s: &str) {
    let mut out = std::io::stdout().lock();
    // Nothing sensible can be done if the console is gone.
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

/// Prints a diagnostic line; every line of `s` gets the `# ` prefix.
pub fn diag_line(s: &str) {
    for l in s.lines() {
        line(&format!("# {l}"));
    }
}

/// KTAP descriptions and reasons must stay on one line and must not contain
/// a `#`, which would start a directive.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], "; ").replace('#', "no.")
}

/// One named test case.
pub struct Case<C> {
    pub name: &'static str,
    pub run: fn(&C) -> CaseResult,
}

/// Counts of results, for the exit code and the closing diagnostic.
#[derive(Default, Debug, Clone, Copy)]
pub struct Totals {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// Runs `cases` in order and prints the KTAP stream for them.
pub fn run_suite<C>(cases: &[&Case<C>], cfg: &C) -> Totals {
    line("KTAP version 1");
    line(&format!("1..{}", cases.len()));
    // Names up front, so that a reader can name the cases that never
    // reported should the guest die half-way.
    let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    line(&format!("# cases: {}", names.join(" ")));
    let mut totals = Totals::default();
    for (i, case) in cases.iter().enumerate() {
        let n = i + 1;
        let result = panic::catch_unwind(AssertUnwindSafe(|| (case.run)(cfg)));
        match result {
            Ok(Ok(())) => {
                totals.passed += 1;
                line(&format!("ok {n} {}", case.name));
            }
            Ok(Err(Verdict::Skip(why))) => {
                totals.skipped += 1;
                line(&format!("ok {n} {} # SKIP {}", case.name, one_line(&why)));
            }
            Ok(Err(Verdict::Fail(why))) => {
                totals.failed += 1;
                line(&format!("not ok {n} {} # {}", case.name, one_line(&why)));
            }
            Err(payload) => {
                totals.failed += 1;
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                line(&format!(
                    "not ok {n} {} # panicked: {}",
                    case.name,
                    one_line(&msg)
                ));
            }
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_strips_newlines_and_hashes() {
        assert_eq!(one_line("a\nb # c"), "a; b no. c");
    }
}
