// SPDX-License-Identifier: GPL-2.0
//! `uml-harness hostcheck`: the host checks a UML kernel makes before it boots
//! (`arch_um_rs::host::hostcheck`, the same code), run without a kernel and
//! printed as a table. Exits 0 if UML can run here, 1 with the reasons if not.

use arch_um_rs::host::hostcheck::{self, CheckResult, Status};

/// The rows as a table: check | result | detail.
pub fn table(rows: &[CheckResult]) -> String {
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(5);
    let status_w = "FAILED".len();
    let mut out = format!("{:name_w$}  {:status_w$}  detail\n", "check", "result");
    for r in rows {
        out.push_str(&format!(
            "{:name_w$}  {:status_w$}  {}\n",
            r.name, r.status, r.detail
        ));
    }
    out
}

/// The closing lines: the verdict, and each failure with its reason.
pub fn verdict(rows: &[CheckResult]) -> String {
    if hostcheck::can_run(rows) {
        return "UML can run on this host.\n".to_owned();
    }
    let mut out = String::from("UML cannot run on this host:\n");
    for r in rows.iter().filter(|r| r.status == Status::Failed) {
        out.push_str(&format!("  {}: {}\n", r.name, r.detail));
    }
    out
}

/// Runs every check, prints the table and the verdict; the exit status.
pub fn run() -> i32 {
    let rows = hostcheck::run_all();
    print!("{}\n{}", table(&rows), verdict(&rows));
    if hostcheck::can_run(&rows) { 0 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<CheckResult> {
        vec![
            CheckResult {
                name: "ptrace-syscall",
                status: Status::Failed,
                detail: "PTRACE_TRACEME failed in the child".into(),
            },
            CheckResult {
                name: "seccomp",
                status: Status::Info,
                detail: "disabled".into(),
            },
        ]
    }

    #[test]
    fn table_aligns_columns() {
        assert_eq!(
            table(&rows()),
            "check           result  detail\n\
             ptrace-syscall  FAILED  PTRACE_TRACEME failed in the child\n\
             seccomp         info    disabled\n"
        );
    }

    #[test]
    fn verdict_lists_the_failures() {
        assert_eq!(
            verdict(&rows()),
            "UML cannot run on this host:\n  ptrace-syscall: PTRACE_TRACEME failed in the child\n"
        );
        assert_eq!(verdict(&rows()[1..]), "UML can run on this host.\n");
    }
}
