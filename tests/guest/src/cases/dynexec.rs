// SPDX-License-Identifier: GPL-2.0
//! execve and the address space it replaces: a static program (this one),
//! exec from a process with threads and from a thread that is not the
//! leader, no data of the old program left behind, and a dynamically linked
//! program (ELF interpreter, shared libraries mapped from files).
//!
//! The initramfs holds static programs only. For the dynamic part the
//! harness copies host programs with their interpreter and libraries into
//! the hostfs directory ([`DYN_DIR`]); the guest runs them from its hostfs
//! mount, after linking the interpreter path the programs name (for example
//! /lib64/ld-linux-x86-64.so.2) to the copy. Without that directory the
//! dynamic part is a skip with the reason, never a pass.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Config;
use super::process::run_capture;
use super::storage::hostfs_mount;
use crate::ktap::{CaseResult, Context};
use crate::protocol::{DYN_DIR, DYN_LIB_DIR, DYN_PROGRAMS};
use crate::sys::{self, Exec, Exit};
use crate::{check, diag, fail, skip};

const CHILD_LIMIT: Duration = Duration::from_secs(30);

/// The ELF interpreter (PT_INTERP) of an executable, None for a static one.
pub fn elf_interp(data: &[u8]) -> Result<Option<String>, String> {
    let u16_at = |o: usize| {
        data.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(|b| u64::from_le_bytes(b) as usize)
    };
    if data.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if data.get(4) != Some(&2) || data.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let bad = || "truncated ELF header".to_string();
    let phoff = u64_at(0x20).ok_or_else(bad)?;
    let phentsize = u16_at(0x36).ok_or_else(bad)?;
    let phnum = u16_at(0x38).ok_or_else(bad)?;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        const PT_INTERP: u32 = 3;
        if u32_at(ph).ok_or_else(bad)? != PT_INTERP {
            continue;
        }
        let off = u64_at(ph + 8).ok_or_else(bad)?;
        let len = u64_at(ph + 32).ok_or_else(bad)?;
        let s = data.get(off..off + len).ok_or_else(bad)?;
        let s = s.split(|&b| b == 0).next().unwrap_or(s);
        return Ok(Some(String::from_utf8_lossy(s).into_owned()));
    }
    Ok(None)
}

fn run(exec: &Exec) -> Result<Exit, crate::ktap::Verdict> {
    let pid = exec.spawn().ctx("fork")?;
    sys::wait_timeout(pid, CHILD_LIMIT).ctx("waitpid")
}

/// Static execs: plain, from a process with threads, from a thread that is
/// not the leader, and a check that nothing of the old program survives.
fn static_exec(cfg: &Config) -> CaseResult {
    let me = &cfg.self_exe;
    let t = Exec::new(me, &["uml-guest", "exit", "93"], &[]).ctx("prepare exec")?;
    let x = run(&t)?;
    check!(x == Exit::Code(93), "uml-guest exit 93: {x}");

    // The main thread execs while three other threads run and touch memory.
    let t = Exec::new(me, &["uml-guest", "exit", "94"], &[]).ctx("prepare exec")?;
    let pid = sys::fork_child(|| {
        for _ in 0..3 {
            std::thread::spawn(|| {
                let mut v = vec![0u8; 64 << 10];
                let mut i = 0usize;
                loop {
                    let k = i % v.len();
                    v[k] = v[k].wrapping_add(1);
                    i = i.wrapping_add(4099);
                    if i % 64 == 0 {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(20));
        t.exec();
        120
    })
    .ctx("fork")?;
    let x = sys::wait_timeout(pid, CHILD_LIMIT).ctx("waitpid")?;
    check!(
        x == Exit::Code(94),
        "exec from a process with 4 threads: {x}, expected exit code 94"
    );

    // A thread that is not the leader execs; the process keeps its pid.
    let pid = sys::fork_child(|| -> i32 {
        std::thread::scope(|s| {
            s.spawn(|| {
                // Built in the thread: an Exec holds raw pointers and is not
                // Sync. Allocating is fine, this child was forked from a
                // single-threaded process.
                if let Ok(t) = Exec::new(me, &["uml-guest", "exit", "95"], &[]) {
                    t.exec();
                }
                // SAFETY: leaves the whole process if execve failed.
                unsafe { libc::_exit(121) }
            });
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    })
    .ctx("fork")?;
    let x = sys::wait_timeout(pid, CHILD_LIMIT).ctx("waitpid")?;
    check!(
        x == Exit::Code(95),
        "exec from a non-leader thread: {x}, expected exit code 95"
    );

    // Data of the old program must be gone in the new one. The probe must
    // find the mark before the exec, or it would prove nothing.
    let ps = sys::page_size();
    let mut m = sys::Mapping::new(4 * ps, libc::PROT_READ | libc::PROT_WRITE).ctx("mmap")?;
    let addr = m.as_ptr() as usize + 2 * ps + 64;
    m.as_mut_slice()[2 * ps + 64..2 * ps + 80].copy_from_slice(sys::STALE_MARK);
    check!(
        sys::stale_mark_at(addr).ctx("probe the mark")?,
        "the stale-data probe does not find the mark in the program that wrote it"
    );
    let a = format!("{addr:#x}");
    let t = Exec::new(me, &["uml-guest", "probe-stale", &a], &[]).ctx("prepare exec")?;
    let x = run(&t)?;
    check!(
        x == Exit::Code(0),
        "the exec'd program found the old program's data at {a} ({x}; 1 = found, 3 = cannot tell)"
    );
    Ok(())
}

/// Creates a path (a symlink and the directories above it) for the time of
/// a case, and removes what it created when dropped.
#[derive(Default)]
struct Provisioned {
    link: Option<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Provisioned {
    fn link(&mut self, target: &Path, at: &Path) -> CaseResult {
        let mut missing = Vec::new();
        let mut d = at.parent();
        while let Some(p) = d {
            if p.exists() {
                break;
            }
            missing.push(p.to_path_buf());
            d = p.parent();
        }
        for p in missing.into_iter().rev() {
            fs::create_dir(&p).ctx(&format!("mkdir {}", p.display()))?;
            self.dirs.push(p);
        }
        std::os::unix::fs::symlink(target, at).ctx(&format!(
            "symlink {} -> {}",
            at.display(),
            target.display()
        ))?;
        self.link = Some(at.to_path_buf());
        Ok(())
    }
}

impl Drop for Provisioned {
    fn drop(&mut self) {
        if let Some(l) = self.link.take() {
            let _ = fs::remove_file(l);
        }
        for d in self.dirs.drain(..).rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

/// Where the dynamic programs are: (program directory, library directory
/// when the interpreter and libraries are not the system's own).
fn dynamic_programs(cfg: &Config) -> Result<(PathBuf, Option<PathBuf>), crate::ktap::Verdict> {
    if !cfg.in_uml {
        // Natively, the host's own programs.
        for d in ["/bin", "/usr/bin"] {
            let p = Path::new(d);
            if p.join("echo").is_file() && p.join("false").is_file() {
                return Ok((p.to_path_buf(), None));
            }
        }
        skip!("no echo and false in /bin or /usr/bin on this host");
    }
    if cfg.hostfs_dir.is_none() {
        skip!(
            "no dynamically linked program is reachable: the initramfs holds only static \
             programs and no --hostfs-dir was given"
        );
    }
    let mnt = hostfs_mount(cfg)?;
    let dir = mnt.join(DYN_DIR);
    let missing: Vec<&str> = DYN_PROGRAMS
        .iter()
        .copied()
        .filter(|p| !dir.join(p).is_file())
        .collect();
    if !missing.is_empty() {
        skip!(
            "no dynamically linked program is reachable: the host did not stage {} in {} (the \
             harness copies them there)",
            missing.join(", "),
            dir.display()
        );
    }
    let lib = dir.join(DYN_LIB_DIR);
    Ok((dir, Some(lib)))
}

fn dynamic_exec(cfg: &Config) -> CaseResult {
    let (dir, lib) = dynamic_programs(cfg)?;
    let echo = dir.join("echo");
    let fals = dir.join("false");
    let data = fs::read(&echo).ctx(&format!("read {}", echo.display()))?;
    let interp = match elf_interp(&data) {
        Ok(Some(i)) => i,
        Ok(None) if !cfg.in_uml => skip!("{} is statically linked on this host", echo.display()),
        Ok(None) => fail!(
            "{} is not dynamically linked (no PT_INTERP)",
            echo.display()
        ),
        Err(e) => fail!("{}: {e}", echo.display()),
    };
    check!(
        interp.starts_with('/'),
        "{} names a relative interpreter {interp:?}",
        echo.display()
    );
    let mut prov = Provisioned::default();
    let interp_path = Path::new(&interp);
    let mut env = Vec::new();
    if let Some(lib) = &lib {
        if !interp_path.exists() {
            let name = interp_path.file_name().unwrap_or_default();
            let copy = lib.join(name);
            check!(
                copy.is_file(),
                "the interpreter {interp} is neither in the guest nor staged as {}",
                copy.display()
            );
            prov.link(&copy, interp_path)?;
        }
        env.push(format!("LD_LIBRARY_PATH={}", lib.display()));
    }
    let env: Vec<&str> = env.iter().map(String::as_str).collect();

    let t = Exec::new(&echo, &["echo", "dynamic", "exec"], &env).ctx("prepare exec")?;
    let (x, out) = run_capture(&t)?;
    check!(
        x == Exit::Code(0),
        "{} (interpreter {interp}): {x}",
        echo.display()
    );
    check!(
        out == b"dynamic exec\n",
        "{} printed {:?}, expected \"dynamic exec\\n\"",
        echo.display(),
        String::from_utf8_lossy(&out)
    );
    let t = Exec::new(&fals, &["false"], &env).ctx("prepare exec")?;
    let x = run(&t)?;
    check!(
        x == Exit::Code(1),
        "{}: {x}, expected exit code 1",
        fals.display()
    );
    diag!(
        "ran dynamically linked {} and {} (interpreter {interp})",
        echo.display(),
        fals.display()
    );
    Ok(())
}

/// execve of static programs in several shapes, then of dynamically linked
/// ones if the guest can reach any.
pub fn exec_dynamic(cfg: &Config) -> CaseResult {
    static_exec(cfg)?;
    dynamic_exec(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interp_of_this_test_program() {
        let me = std::env::current_exe().unwrap();
        let data = fs::read(me).unwrap();
        let i = elf_interp(&data).unwrap();
        if cfg!(target_feature = "crt-static") {
            assert_eq!(i, None);
        } else {
            assert!(i.is_some_and(|i| i.starts_with('/')));
        }
    }

    #[test]
    fn interp_rejects_garbage() {
        assert!(elf_interp(b"#!/bin/sh\n").is_err());
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        // No program headers: static.
        assert_eq!(elf_interp(&h), Ok(None));
        // Program headers past the end.
        h[0x20] = 0xff;
        h[0x38] = 1;
        h[0x36] = 56;
        assert!(elf_interp(&h).is_err());
    }
}
