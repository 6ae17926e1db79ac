// SPDX-License-Identifier: GPL-2.0
//! `uml-harness abi-guard-selftest`: shows that the kernel build's ABI guard
//! (kernel-patches 0005) rejects a Rust layout that differs from the C
//! headers, and accepts the real one.
//!
//! It builds only the guard object of the Rust-layer output tree, once with
//! the crate's `abi-guard-selftest` feature (which swaps two fields of
//! `struct uml_stat`) and once without. The library itself is not rebuilt.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::paths::Ctx;

const GUARD_TARGET: &str = "arch/um/os-Linux/rust/abi_guard.o";

/// The message the guard must print for the deliberately swapped field.
pub const EXPECTED_FAILURE: &str = "offsetof(struct uml_stat, ust_uid) is 28 in Rust";

fn make_guard(ctx: &Ctx, out: &Path, selftest: bool) -> Result<(bool, String)> {
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(&ctx.kernel_src)
        .arg("ARCH=um")
        .arg(format!("O={}", out.display()))
        .arg(GUARD_TARGET);
    if selftest {
        cmd.arg("UM_OS_RUST_GUARD_FEATURES=abi-guard-selftest");
    }
    let output = cmd
        .output()
        .with_context(|| format!("running make for {GUARD_TARGET} in {}", out.display()))?;
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

/// Runs the self-test; prints KTAP-style lines and fails on any surprise.
pub fn selftest(ctx: &Ctx) -> Result<()> {
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
        // Always restore the real guard, even when the broken one surprises us.
        let broken = make_guard(ctx, &out, true);
        let restored = make_guard(ctx, &out, false)?;
        let (broken_ok, broken_log) = broken?;
        println!("KTAP version 1\n1..2");
        let caught = !broken_ok && broken_log.contains(EXPECTED_FAILURE);
        if caught {
            println!("ok 1 abi_guard_rejects_swapped_uml_stat_fields");
            for line in broken_log
                .lines()
                .filter(|l| l.contains("arch-um-rs ABI mismatch"))
            {
                println!("# {}", line.trim());
            }
        } else {
            println!("not ok 1 abi_guard_rejects_swapped_uml_stat_fields");
            print_diagnostics(&crate::boot::tail(&broken_log, 20));
        }
        let (restored_ok, restored_log) = restored;
        if restored_ok {
            println!("ok 2 abi_guard_accepts_real_layout");
        } else {
            println!("not ok 2 abi_guard_accepts_real_layout");
            print_diagnostics(&crate::boot::tail(&restored_log, 20));
        }
        if !caught {
            bail!("the ABI guard did not reject a Rust layout with uid and gid swapped");
        }
        if !restored_ok {
            bail!("the ABI guard failed on the real layout");
        }
        Ok(())
    })
}
