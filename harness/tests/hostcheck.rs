// SPDX-License-Identifier: GPL-2.0
//! `uml-harness hostcheck`, the built binary: it passes on this host (a VM
//! where ptrace works), and fails naming the ptrace checks and why when a
//! seccomp filter forbids ptrace(2), as container runtimes often do.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use nix::libc;

fn hostcheck(forbid_ptrace: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uml-harness"));
    cmd.arg("hostcheck");
    if forbid_ptrace {
        // Built before the fork: installing it in the child does not allocate.
        let filter: seccompiler::BpfProgram = seccompiler::SeccompFilter::new(
            [(libc::SYS_ptrace, vec![])].into_iter().collect(),
            seccompiler::SeccompAction::Allow,
            seccompiler::SeccompAction::Errno(libc::EPERM as u32),
            std::env::consts::ARCH.try_into().unwrap(),
        )
        .unwrap()
        .try_into()
        .unwrap();
        // apply_filter sets PR_SET_NO_NEW_PRIVS, then installs the filter:
        // two system calls on data prepared before the fork.
        // SAFETY: the closure runs in the forked child before exec.
        unsafe {
            cmd.pre_exec(move || seccompiler::apply_filter(&filter).map_err(std::io::Error::other));
        }
    }
    cmd.output().expect("running uml-harness hostcheck")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The table row of `name`, split into its result and detail.
fn row<'a>(stdout: &'a str, name: &str) -> (&'a str, &'a str) {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{stdout}"));
    let rest = line[name.len()..].trim_start();
    let (result, detail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    (result, detail.trim_start())
}

#[test]
fn passes_on_this_host() {
    let out = hostcheck(false);
    let all = text(&out);
    eprintln!("{all}");
    assert_eq!(out.status.code(), Some(0), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("check "), "{all}");
    for name in [
        "ptrace-syscall",
        "ptrace-sysemu",
        "tmpexec",
        "ptrace-registers",
    ] {
        assert_eq!(row(&stdout, name).0, "ok", "{all}");
    }
    assert!(stdout.ends_with("UML can run on this host.\n"), "{all}");
}

#[test]
fn fails_with_reasons_when_ptrace_is_forbidden() {
    let out = hostcheck(true);
    let all = text(&out);
    eprintln!("{all}");
    assert_eq!(out.status.code(), Some(1), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reason = "PTRACE_TRACEME failed in the child: Operation not permitted (EPERM) — ptrace \
                  is forbidden here";
    for name in ["ptrace-syscall", "ptrace-sysemu", "ptrace-registers"] {
        let (result, detail) = row(&stdout, name);
        assert_eq!(result, "FAILED", "{all}");
        assert!(detail.starts_with(reason), "{all}");
        assert!(
            stdout.contains(&format!("\n  {name}: {reason}")),
            "the verdict must list {name}:\n{all}"
        );
    }
    assert!(stdout.contains("UML cannot run on this host:\n"), "{all}");
    // The rest still reports.
    let (result, detail) = row(&stdout, "core-dump-limits");
    assert_eq!(result, "info", "{all}");
    assert!(detail.starts_with("soft - "), "{all}");
    assert_eq!(row(&stdout, "tmpexec").0, "ok", "{all}");
    assert!(
        row(&stdout, "seccomp").1.starts_with("filter mode"),
        "{all}"
    );
}
