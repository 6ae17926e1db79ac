// SPDX-License-Identifier: GPL-2.0
use std::io::Read as _;

use super::*;
use crate::host::util::test_support::run_forked;

fn find<'a>(rows: &'a [CheckResult], name: &str) -> &'a CheckResult {
    rows.iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no row {name} in {rows:#?}"))
}

#[test]
fn untouched_child_exits_1() {
    let child = PtracedChild::start().unwrap();
    assert!(child.pid().as_raw() > 0);
    child.stop(1).unwrap();
}

#[test]
fn wrong_exit_code_is_reported() {
    let child = PtracedChild::start().unwrap();
    let err = child.stop(0).unwrap_err();
    assert!(
        matches!(
            err,
            CheckError::ChildExit {
                expected: 0,
                got: WaitStatus::Exited(_, 1)
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("exited with status 1 (getpid answered with its own pid"),
        "{err}"
    );
}

#[test]
fn dropped_child_is_killed_and_reaped() {
    let child = PtracedChild::start().unwrap();
    let pid = child.pid();
    drop(child);
    assert_eq!(signal::kill(pid, None), Err(Errno::ESRCH));
}

#[test]
fn ptrace_changes_the_system_call() {
    check_ptrace_syscall_change().unwrap();
}

#[test]
fn sysemu_emulates_the_system_call() {
    let steps = check_sysemu().unwrap();
    assert!(steps > 0, "SYSEMU_SINGLESTEP must single-step first");
}

#[test]
fn registers_are_readable() {
    let fp = check_registers().unwrap();
    assert!(matches!(fp, FpAccess::Xstate(n) if n >= 512), "{fp:?}");
}

#[test]
fn tmpexec_uses_a_memfd_here() {
    let loc = check_tmpexec().unwrap();
    assert_eq!(loc.place, Place::Memfd);
    assert_eq!(loc.to_string(), "memfd (/memfd:uml-physmem)");
}

#[test]
fn dev_shm_is_usable_here() {
    let shm = check_dev_shm().unwrap();
    assert!(shm.tmpfs);
    assert!(shm.free > 0);
}

#[test]
fn core_dump_limits_match_getrlimit() {
    let (soft, hard) = core_dump_limits().unwrap();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) }, 0);
    assert_eq!((soft.0, hard.0), (lim.rlim_cur, lim.rlim_max));
    assert_eq!(CoreLimit(libc::RLIM_INFINITY).to_string(), "NONE");
    assert_eq!(CoreLimit(4096).to_string(), "4096");
}

#[test]
fn every_check_passes_on_this_host() {
    let rows = run_all();
    assert!(can_run(&rows), "{rows:#?}");
    for name in [
        names::PTRACE_SYSCALL,
        names::PTRACE_SYSEMU,
        names::TMPEXEC,
        names::PTRACE_REGISTERS,
        names::DEV_SHM,
    ] {
        assert_eq!(find(&rows, name).status, Status::Ok, "{rows:#?}");
    }
    for name in [
        names::CORE_DUMP_LIMITS,
        names::YAMA_PTRACE_SCOPE,
        names::SECCOMP,
        names::HOST_CPU_FEATURES,
    ] {
        assert_eq!(find(&rows, name).status, Status::Info, "{rows:#?}");
    }
    assert!(
        find(&rows, names::CORE_DUMP_LIMITS)
            .detail
            .starts_with("soft - ")
    );
    assert_eq!(find(&rows, names::SECCOMP).detail, "disabled");
    assert!(rows.iter().all(|r| !r.detail.contains('\n')));
}

/// A seccomp filter answering every ptrace(2) with EPERM, built before a
/// fork so that installing it in the child does not allocate.
fn forbid_ptrace_filter() -> seccompiler::BpfProgram {
    seccompiler::SeccompFilter::new(
        [(libc::SYS_ptrace, vec![])].into_iter().collect(),
        seccompiler::SeccompAction::Allow,
        seccompiler::SeccompAction::Errno(libc::EPERM as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap()
}

/// Rows as `name\tstatus\tdetail` lines.
fn encode(rows: &[CheckResult]) -> String {
    rows.iter()
        .map(|r| format!("{}\t{}\t{}\n", r.name, r.status, r.detail))
        .collect()
}

#[test]
fn ptrace_forbidden_by_seccomp_fails_with_reasons() {
    let filter = forbid_ptrace_filter();
    let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    // The closure owns the write end: the parent closes it when run_forked
    // drops the closure, the child when it exits.
    let status = run_forked(move || {
        // The child is single-threaded: the allocations below are safe.
        let code = match seccompiler::apply_filter(&filter) {
            Ok(()) => {
                let text = encode(&run_all());
                let mut out = std::fs::File::from(wr);
                match std::io::Write::write_all(&mut out, text.as_bytes()) {
                    Ok(()) => 0,
                    Err(_) => 2,
                }
            }
            Err(_) => 1,
        };
        // SAFETY: leaving the forked child without running the test harness's destructors.
        unsafe { libc::_exit(code) };
    });
    let mut text = String::new();
    std::fs::File::from(rd).read_to_string(&mut text).unwrap();
    assert!(libc::WIFEXITED(status), "child status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child status {status:#x}");
    let rows: Vec<(String, String, String)> = text
        .lines()
        .map(|l| {
            let mut f = l.splitn(3, '\t').map(str::to_owned);
            (f.next().unwrap(), f.next().unwrap(), f.next().unwrap())
        })
        .collect();
    let get = |name: &str| {
        rows.iter()
            .find(|r| r.0 == name)
            .unwrap_or_else(|| panic!("no row {name}: {text}"))
    };
    for name in [
        names::PTRACE_SYSCALL,
        names::PTRACE_SYSEMU,
        names::PTRACE_REGISTERS,
    ] {
        let (_, status, detail) = get(name);
        assert_eq!(status, "FAILED", "{text}");
        assert_eq!(
            detail,
            "PTRACE_TRACEME failed in the child: Operation not permitted (EPERM) — ptrace is \
             forbidden here (seccomp filter, container policy or Yama ptrace_scope)",
            "{text}"
        );
    }
    let (_, status, detail) = get(names::CORE_DUMP_LIMITS);
    assert_eq!(status, "info");
    assert!(
        detail.starts_with("soft - ") && detail.contains(", hard - "),
        "{text}"
    );
    let (_, status, detail) = get(names::SECCOMP);
    assert_eq!(status, "info");
    assert!(detail.starts_with("filter mode, 1 filter(s)"), "{text}");
    assert!(detail.ends_with("no_new_privs set"), "{text}");
    assert_eq!(get(names::TMPEXEC).1, "ok", "{text}");
}

#[test]
fn errors_name_the_step_and_the_errno() {
    let e = CheckError::Child {
        step: ChildStep::TraceMe,
        errno: Errno::EPERM,
    };
    assert_eq!(
        e.to_string(),
        "PTRACE_TRACEME failed in the child: Operation not permitted (EPERM) — ptrace is \
         forbidden here (seccomp filter, container policy or Yama ptrace_scope)"
    );
    let e = CheckError::Host {
        step: "PTRACE_SYSEMU_SINGLESTEP",
        errno: Errno::EIO,
    };
    assert_eq!(
        e.to_string(),
        "PTRACE_SYSEMU_SINGLESTEP failed: Input/output error (EIO) — the host kernel does not \
         support PTRACE_SYSEMU_SINGLESTEP"
    );
    let e = CheckError::Host {
        step: "fork",
        errno: Errno::EAGAIN,
    };
    assert_eq!(
        e.to_string(),
        "fork failed: Resource temporarily unavailable (EAGAIN)"
    );
    let e = CheckError::Wait {
        step: "starting the traced child",
        expected: "a stop with SIGSTOP",
        got: WaitStatus::Signaled(Pid::from_raw(1), Signal::SIGSYS, false),
    };
    assert_eq!(
        e.to_string(),
        "starting the traced child: expected a stop with SIGSTOP, but the child was killed by \
         SIGSYS (a seccomp filter killed it)"
    );
    let e = CheckError::NoExec {
        place: Place::Dir(c"/tmp".into()),
        errno: Errno::EPERM,
    };
    assert_eq!(
        e.to_string(),
        "PROT_EXEC mmap in /tmp failed: Operation not permitted (EPERM) — /tmp must be not \
         mounted noexec"
    );
}

#[test]
fn child_report_round_trips() {
    let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    let status = run_forked(|| child_failed(wr.as_fd(), ChildStep::StopSelf, Errno::ESRCH));
    assert!(libc::WIFEXITED(status));
    assert_eq!(libc::WEXITSTATUS(status), CHILD_STEP_FAILED);
    drop(wr);
    assert_eq!(read_report(&rd), Some((ChildStep::StopSelf, Errno::ESRCH)));
    assert_eq!(read_report(&rd), None, "one report, then end of file");
}

#[test]
fn proc_status_parsing() {
    let status = "Name:\tx\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t3\n\
                  CapEff:\t0000000000080000\n";
    let s = SeccompStatus::parse(status).unwrap();
    assert_eq!(
        s,
        SeccompStatus {
            mode: 2,
            filters: Some(3),
            no_new_privs: true
        }
    );
    assert!(has_cap_sys_ptrace(status));
    assert!(!has_cap_sys_ptrace("CapEff:\t0000000000000000\n"));
    assert_eq!(SeccompStatus::parse("Name:\tx\n"), None);
    assert_eq!(
        SeccompStatus::parse("Seccomp:\t0\n").unwrap().to_string(),
        "disabled"
    );
}

#[test]
fn yama_scopes() {
    assert_eq!(
        PtraceScope::parse("1\n", false),
        Some(PtraceScope::Scope {
            value: 1,
            cap_sys_ptrace: false
        })
    );
    assert_eq!(PtraceScope::parse("x", true), None);
    assert!(PtraceScope::Absent.allows_uml());
    assert!(PtraceScope::parse("1", false).unwrap().allows_uml());
    assert!(PtraceScope::parse("2", true).unwrap().allows_uml());
    assert!(!PtraceScope::parse("2", false).unwrap().allows_uml());
    assert!(!PtraceScope::parse("3", true).unwrap().allows_uml());
    assert!(
        PtraceScope::parse("2", false)
            .unwrap()
            .to_string()
            .contains("which this process lacks")
    );
    // This host: Yama is built in or not; either way it must be readable.
    yama_ptrace_scope().unwrap();
}

#[test]
fn cpuinfo_parsing() {
    let f = CpuFeatures::parse("processor\t: 0\nflags\t\t: fpu vme de\ncache_alignment\t: 64\n");
    assert_eq!(
        f,
        CpuFeatures {
            flags: 3,
            cache_alignment: Some(64)
        }
    );
    assert_eq!(f.to_string(), "3 CPU flags, cache_alignment 64");
    let host = host_cpu_features().unwrap();
    assert!(host.flags > 0);
}
