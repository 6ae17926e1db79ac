// SPDX-License-Identifier: GPL-2.0
//! `uml-harness fuzz <target> [--seconds N]`: runs one libFuzzer target of
//! `fuzz/` (a cargo-fuzz project, see `fuzz/README.md`) for N seconds.
//!
//! Needs the nightly toolchain (refused with a message naming it when
//! absent) and cargo-fuzz (installed with `cargo install cargo-fuzz
//! --locked` when absent). The checked-in seeds `fuzz/corpus/<target>` are
//! only read; what libFuzzer finds goes to `<cache>/fuzz/<target>`, which
//! later runs start from. A crash (panic, sanitizer report, timeout, out of
//! memory) makes the exit status 1 and prints the input libFuzzer saved in
//! `fuzz/artifacts/<target>/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use crate::cli::FuzzArgs;
use crate::paths::Ctx;

/// The prefixes of the files libFuzzer writes for a failing input (not
/// `slow-unit-`, which is only a report).
const FAILURE_PREFIXES: &[&str] = &["crash-", "leak-", "timeout-", "oom-"];

/// `cargo` through the rustup proxy (so that `+nightly` works), without
/// the settings of the cargo that may have started the harness.
fn cargo() -> Command {
    let mut cmd = Command::new("cargo");
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTDOC",
        "CARGO",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        // Would replace the RUSTFLAGS cargo-fuzz sets (sanitizer, coverage).
        "CARGO_ENCODED_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    // A missing nightly is reported, not downloaded behind the user's back.
    cmd.env("RUSTUP_AUTO_INSTALL", "0");
    cmd
}

/// The first line of a command's output, or its error output on failure.
fn output(cmd: &mut Command) -> Result<std::result::Result<String, String>> {
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?} (is cargo installed?)"))?;
    let first = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        s.lines().next().unwrap_or("").trim().to_string()
    };
    Ok(if out.status.success() {
        Ok(first(&out.stdout))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    })
}

/// The nightly toolchain's cargo version, or why there is none.
fn check_nightly() -> Result<String> {
    match output(cargo().args(["+nightly", "--version"]))? {
        Ok(v) => Ok(v),
        Err(e) => bail!(
            "the nightly Rust toolchain is missing (cargo-fuzz needs it for the sanitizer \
             and coverage flags): `cargo +nightly --version` failed: {e}\ninstall it with: \
             rustup toolchain install nightly"
        ),
    }
}

/// The version of cargo-fuzz, installing it first if needed.
fn ensure_cargo_fuzz() -> Result<String> {
    let version = || output(cargo().args(["+nightly", "fuzz", "--version"]));
    if let Ok(v) = version()? {
        return Ok(v);
    }
    eprintln!(
        "uml-harness: cargo-fuzz is missing; installing it: cargo install cargo-fuzz --locked"
    );
    let status = cargo()
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("running cargo install cargo-fuzz --locked")?;
    if !status.success() {
        bail!(
            "cargo-fuzz is missing and `cargo install cargo-fuzz --locked` failed ({status}); \
             see its output above"
        );
    }
    version()?.map_err(|e| {
        anyhow::anyhow!(
            "cargo-fuzz was installed but `cargo +nightly fuzz --version` fails (is cargo \
             install's bin directory, usually ~/.cargo/bin, in PATH?): {e}"
        )
    })
}

/// The targets of the fuzz project: `fuzz_targets/<name>.rs`, sorted.
pub fn targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                names.push(stem.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The failing inputs libFuzzer wrote to `dir` at or after `since`, sorted.
pub fn failure_artifacts(dir: &Path, since: SystemTime) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            FAILURE_PREFIXES.iter().any(|p| name.starts_with(p))
        })
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since)
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// `uml-harness fuzz`: the exit status, 1 if the target crashed.
pub fn run(ctx: &Ctx, args: &FuzzArgs) -> Result<i32> {
    let fuzz_dir = ctx.repo.join("fuzz");
    let known = targets(&fuzz_dir)?;
    if !known.contains(&args.target) {
        bail!(
            "no fuzz target {:?} in {}; the targets are: {}",
            args.target,
            fuzz_dir.join("fuzz_targets").display(),
            known.join(", ")
        );
    }
    let nightly = check_nightly()?;
    let cargo_fuzz = ensure_cargo_fuzz()?;
    eprintln!("uml-harness: {nightly}, {cargo_fuzz}");

    let seeds = fuzz_dir.join("corpus").join(&args.target);
    let work = ctx.cache.join("fuzz").join(&args.target);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let artifacts = fuzz_dir.join("artifacts").join(&args.target);
    eprintln!(
        "uml-harness: fuzzing {} for {} s (corpus {}, seeds {})",
        args.target,
        args.seconds,
        work.display(),
        seeds.display()
    );

    // libFuzzer adds what it finds to the first corpus directory only.
    let mut cmd = cargo();
    cmd.args(["+nightly", "fuzz", "run", "--fuzz-dir"])
        .arg(&fuzz_dir)
        .arg(&args.target)
        .arg(&work);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={}", args.seconds))
        .arg("-print_final_stats=1")
        .current_dir(&ctx.repo);
    let start = SystemTime::now();
    let status = cmd.status().context("running cargo +nightly fuzz run")?;
    if status.success() {
        eprintln!(
            "uml-harness: fuzz target {}: no crash in {} s",
            args.target, args.seconds
        );
        return Ok(0);
    }
    let found = failure_artifacts(&artifacts, start);
    if found.is_empty() {
        bail!(
            "cargo +nightly fuzz run {} failed ({status}) without saving a failing input in {}; \
             see the output above",
            args.target,
            artifacts.display()
        );
    }
    eprintln!(
        "uml-harness: fuzz target {} failed ({status}); reproduce with:",
        args.target
    );
    for a in &found {
        eprintln!(
            "  cargo +nightly fuzz run --fuzz-dir {} {} {}",
            fuzz_dir.display(),
            args.target,
            a.display()
        );
    }
    for a in &found {
        println!("{}", a.display());
    }
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_repository_has_the_cow_header_target_and_its_seeds() {
        let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let names = targets(&fuzz_dir).unwrap();
        assert!(names.iter().any(|n| n == "cow_header"), "{names:?}");
        for name in names {
            assert!(
                fuzz_dir.join("corpus").join(&name).is_dir(),
                "fuzz target {name} has no seed corpus"
            );
        }
    }

    #[test]
    fn failure_artifacts_are_the_new_failing_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("crash-old");
        std::fs::write(&old, b"x").unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let since = SystemTime::now() - Duration::from_secs(60);
        for name in [
            "crash-1",
            "timeout-2",
            "oom-3",
            "leak-4",
            "slow-unit-5",
            "other",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let found = failure_artifacts(dir.path(), since);
        let names: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["crash-1", "leak-4", "oom-3", "timeout-2"]);
        assert!(failure_artifacts(&dir.path().join("missing"), since).is_empty());
    }
}
