// SPDX-License-Identifier: GPL-2.0
//! Self-tests of the kernel build's own checks: each builds one target of
//! the Rust-layer output tree once deliberately broken, shows that `make`
//! fails with the expected message, and once normally, shows it passes.
//!
//! * `abi-guard-selftest`: the ABI guard (kernel-patches 0005) rejects a
//!   Rust layout that differs from the C headers. The crate's
//!   `abi-guard-selftest` feature swaps two fields of `struct uml_stat`;
//!   only the guard object is rebuilt.
//! * `stub-check-selftest`: the stub check (kernel-patches 0007) rejects a
//!   stub that refers to memory outside its page. The crate's
//!   `stub-check-selftest` feature adds such a reference to the stub; the
//!   library and the prelinked object are rebuilt, twice.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::paths::Ctx;

/// One check of the kernel build and how to break it.
pub struct BuildCheck {
    /// KTAP case names: (rejects the broken build, accepts the real one).
    pub cases: (&'static str, &'static str),
    /// The make target that runs the check.
    pub target: &'static str,
    /// The make variable assignment that breaks it.
    pub breaker: &'static str,
    /// What make must print for the broken build.
    pub expected: &'static str,
    /// Lines of the broken build's log worth showing.
    pub marker: &'static str,
}

pub const ABI_GUARD: BuildCheck = BuildCheck {
    cases: (
        "abi_guard_rejects_swapped_uml_stat_fields",
        "abi_guard_accepts_real_layout",
    ),
    target: "arch/um/os-Linux/rust/abi_guard.o",
    breaker: "UM_OS_RUST_GUARD_FEATURES=abi-guard-selftest",
    expected: "offsetof(struct uml_stat, ust_uid) is 28 in Rust",
    marker: "arch-um-rs ABI mismatch",
};

pub const STUB_CHECK: BuildCheck = BuildCheck {
    cases: (
        "stub_check_rejects_reference_outside_the_stub",
        "stub_check_accepts_real_stub",
    ),
    target: "arch/um/os-Linux/rust/um_os_rust.o",
    breaker: "UM_OS_RUST_FEATURES=stub-check-selftest",
    expected: "against `um_rs_stub_selftest_outside`, outside the stub",
    marker: "uml-stub-check:",
};

fn make_target(ctx: &Ctx, out: &Path, check: &BuildCheck, broken: bool) -> Result<(bool, String)> {
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(&ctx.kernel_src)
        .arg("ARCH=um")
        .arg(format!("O={}", out.display()))
        .arg(check.target);
    if broken {
        cmd.arg(check.breaker);
    }
    let output = cmd
        .output()
        .with_context(|| format!("running make for {} in {}", check.target, out.display()))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text))
}

/// Prints `text` as KTAP diagnostic lines.
fn print_diagnostics(text: &str) {
    for line in text.lines() {
        println!("# {line}");
    }
}

/// Runs the self-test of `check`; prints KTAP lines and fails on any
/// surprise.
pub fn selftest(ctx: &Ctx, check: &BuildCheck) -> Result<()> {
    let out = ctx.build_dir("rust");
    if !out.join(".config").exists() {
        bail!(
            "no Rust-layer build in {}: run `uml-harness build --os rust` first",
            out.display()
        );
    }
    // The same lock as `uml-harness build --os rust`, which owns this tree.
    let lock = ctx.cache.join("locks").join("build-rust.lock");
    crate::sys::with_lock(&lock, "the rust kernel build", || {
        // Always restore the real build, even when the broken one surprises us.
        let broken = make_target(ctx, &out, check, true);
        let restored = make_target(ctx, &out, check, false)?;
        let (broken_ok, broken_log) = broken?;
        println!("KTAP version 1\n1..2");
        let caught = !broken_ok && broken_log.contains(check.expected);
        if caught {
            println!("ok 1 {}", check.cases.0);
            for line in broken_log.lines().filter(|l| l.contains(check.marker)) {
                println!("# {}", line.trim());
            }
        } else {
            println!("not ok 1 {}", check.cases.0);
            print_diagnostics(&crate::boot::tail(&broken_log, 20));
        }
        let (restored_ok, restored_log) = restored;
        if restored_ok {
            println!("ok 2 {}", check.cases.1);
        } else {
            println!("not ok 2 {}", check.cases.1);
            print_diagnostics(&crate::boot::tail(&restored_log, 20));
        }
        if !caught {
            bail!(
                "{} did not fail the build with `{}`",
                check.target,
                check.expected
            );
        }
        if !restored_ok {
            bail!("{} failed on the real build", check.target);
        }
        Ok(())
    })
}
