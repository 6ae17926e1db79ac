// SPDX-License-Identifier: GPL-2.0
//! The kernel source tree: unpack it from Debian's tarball, check that it is 6.12.x, and
//! bring it to the state of `kernel-patches/series`.
//!
//! The applied state is recorded in `<src>/.arch-um-rs-series` (the SHA-256 of the series:
//! patch names and contents), and a copy of the applied patches is kept in
//! `<src>/.arch-um-rs-applied/` so that a changed series can be swapped in by reversing
//! the old patches, which touches only the files they change and keeps the kernel builds
//! incremental. A cached tree that cannot be brought to the wanted state is unpacked
//! again; a tree given by the user (`--kernel-src`) is never replaced: the harness stops
//! and says why.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::paths::{Ctx, KERNEL_DIR_NAME, KERNEL_TARBALL};
use crate::sys::with_lock;

/// File in the kernel tree holding the hash of the applied series.
pub const STAMP_FILE: &str = ".arch-um-rs-series";
/// Directory in the kernel tree holding copies of the applied patches.
pub const APPLIED_DIR: &str = ".arch-um-rs-applied";

/// `VERSION.PATCHLEVEL.SUBLEVEL` of a kernel tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelVersion {
    pub version: u32,
    pub patchlevel: u32,
    pub sublevel: u32,
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.version, self.patchlevel, self.sublevel)
    }
}

/// Parses `VERSION = 6`, `PATCHLEVEL = 12`, `SUBLEVEL = 117` from a top-level Makefile.
pub fn parse_makefile_version(makefile: &str) -> Result<KernelVersion> {
    let field = |name: &str| -> Result<u32> {
        let line = makefile
            .lines()
            .take(20)
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == name).then(|| v.trim())
            })
            .with_context(|| format!("no `{name} =` line in the Makefile"))?;
        line.parse()
            .with_context(|| format!("`{name} = {line}` is not a number"))
    };
    Ok(KernelVersion {
        version: field("VERSION")?,
        patchlevel: field("PATCHLEVEL")?,
        sublevel: field("SUBLEVEL")?,
    })
}

/// Refuses anything but 6.12.x.
pub fn check_version(v: KernelVersion, tree: &Path) -> Result<()> {
    if (v.version, v.patchlevel) != (6, 12) {
        bail!(
            "the kernel tree {} is Linux {v}; the patches are for 6.12 (use a 6.12.x tree, \
             e.g. Debian's linux-source-6.12)",
            tree.display()
        );
    }
    Ok(())
}

/// Reads and checks the version of the tree at `src`.
pub fn tree_version(src: &Path) -> Result<KernelVersion> {
    let mk = src.join("Makefile");
    let text = fs::read_to_string(&mk).with_context(|| {
        format!(
            "{} is not a kernel tree (reading {})",
            src.display(),
            mk.display()
        )
    })?;
    let v = parse_makefile_version(&text).with_context(|| format!("parsing {}", mk.display()))?;
    check_version(v, src)?;
    Ok(v)
}

/// The patch series of the repository.
#[derive(Debug, Clone)]
pub struct Series {
    /// Patch files in order.
    pub patches: Vec<PathBuf>,
    /// SHA-256 (hex) over the names and contents.
    pub hash: String,
}

impl Series {
    /// Reads `<dir>/series`; a missing or empty file means no patches.
    pub fn load(dir: &Path) -> Result<Series> {
        let series = dir.join("series");
        let text = match fs::read_to_string(&series) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", series.display())),
        };
        let names = parse_series(&text);
        let mut contents = Vec::new();
        for n in &names {
            let p = dir.join(n);
            let c = fs::read(&p).with_context(|| {
                format!("reading {} (listed in {})", p.display(), series.display())
            })?;
            contents.push((n.clone(), c));
        }
        Ok(Series {
            patches: names.iter().map(|n| dir.join(n)).collect(),
            hash: series_hash(&contents),
        })
    }

    pub fn describe(&self) -> String {
        if self.patches.is_empty() {
            "empty (no patches in kernel-patches/series)".to_string()
        } else {
            format!(
                "{} patches, sha256 {}",
                self.patches.len(),
                &self.hash[..12]
            )
        }
    }
}

/// Patch names of a quilt-style series file: one per line, `#` comments, options after
/// the name ignored.
pub fn parse_series(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// SHA-256 over the (name, contents) pairs in order.
pub fn series_hash(patches: &[(String, Vec<u8>)]) -> String {
    let mut h = Sha256::new();
    h.update(b"arch-um-rs series v1\0");
    for (name, body) in patches {
        h.update(name.as_bytes());
        h.update([0]);
        h.update((body.len() as u64).to_le_bytes());
        h.update(body);
    }
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What to do with a tree, given its stamp and the wanted series hash.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// The stamp matches: nothing to do.
    UpToDate,
    /// No stamp: a pristine tree, or one patched by hand; apply what is not applied.
    Apply,
    /// Another series was applied: take it out, then apply.
    Replace,
}

pub fn plan(stamp: Option<&str>, wanted: &str) -> Plan {
    match stamp.map(str::trim) {
        Some(s) if s == wanted => Plan::UpToDate,
        Some(_) => Plan::Replace,
        None => Plan::Apply,
    }
}

/// Result of [`ensure`].
pub struct TreeInfo {
    pub version: KernelVersion,
    pub series_desc: String,
}

/// Makes `ctx.kernel_src` exist, be 6.12.x and carry exactly the current series.
pub fn ensure(ctx: &Ctx) -> Result<TreeInfo> {
    let series = Series::load(&ctx.patches_dir())?;
    with_lock(
        &ctx.cache.join("locks").join("src.lock"),
        "the kernel source",
        || ensure_locked(ctx, &series),
    )
}

fn ensure_locked(ctx: &Ctx, series: &Series) -> Result<TreeInfo> {
    let src = &ctx.kernel_src;
    if !src.join("Makefile").is_file() {
        if ctx.kernel_src_is_user {
            bail!(
                "--kernel-src {}: no kernel tree there (no Makefile)",
                src.display()
            );
        }
        unpack(ctx)?;
    }
    let version = tree_version(src)?;
    if series.patches.is_empty() {
        eprintln!("uml-harness: kernel-patches/series is empty or missing: no patches to apply");
    }
    let stamp_path = src.join(STAMP_FILE);
    let stamp = fs::read_to_string(&stamp_path).ok();
    match plan(stamp.as_deref(), &series.hash) {
        Plan::UpToDate => {}
        Plan::Apply => bring_to(ctx, series, false)?,
        Plan::Replace => bring_to(ctx, series, true)?,
    }
    Ok(TreeInfo {
        version,
        series_desc: series.describe(),
    })
}

/// Applies the series (after reversing the old one when `replace`); on failure a cached
/// tree is unpacked afresh and patched once more.
fn bring_to(ctx: &Ctx, series: &Series, replace: bool) -> Result<()> {
    let src = &ctx.kernel_src;
    let attempt = |replace: bool| -> Result<()> {
        if replace {
            eprintln!(
                "uml-harness: a different patch series is applied to {}; reversing it",
                src.display()
            );
            let kept = reverse_saved(src, &series.patches)?;
            apply_series(src, &series.patches[kept..])?;
        } else {
            apply_series(src, &series.patches)?;
        }
        record(src, series)
    };
    match attempt(replace) {
        Ok(()) => Ok(()),
        Err(e) if ctx.kernel_src_is_user => Err(e.context(format!(
            "cannot bring the kernel tree {} (given with --kernel-src/ARCH_UM_RS_KERNEL_SRC) to \
             the state of kernel-patches/series; the harness does not modify it further: use a \
             clean 6.12 tree or the cached one (omit --kernel-src)",
            src.display()
        ))),
        Err(e) => {
            eprintln!("uml-harness: {e:#}\numl-harness: unpacking the cached kernel tree afresh");
            unpack(ctx)?;
            tree_version(src)?;
            apply_series(src, &series.patches)?;
            record(src, series)
        }
    }
}

/// Writes the stamp and the copy of the applied patches.
fn record(src: &Path, series: &Series) -> Result<()> {
    let dir = src.join(APPLIED_DIR);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (i, p) in series.patches.iter().enumerate() {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let to = dir.join(format!("{i:04}-{name}"));
        fs::copy(p, &to).with_context(|| format!("copying {} to {}", p.display(), to.display()))?;
    }
    let stamp = src.join(STAMP_FILE);
    fs::write(&stamp, format!("{}\n", series.hash))
        .with_context(|| format!("writing {}", stamp.display()))?;
    eprintln!(
        "uml-harness: kernel tree {} carries the patch series {}",
        src.display(),
        series.describe()
    );
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Forward,
    Reverse,
}

/// Runs `patch -p1` in `src`; returns (success, output).
fn patch(src: &Path, file: &Path, dir: Dir, dry_run: bool) -> Result<(bool, String)> {
    let mut cmd = Command::new("patch");
    cmd.current_dir(src)
        .args(["-p1", "--batch", "--no-backup-if-mismatch", "-s", "-i"])
        .arg(file);
    match dir {
        Dir::Forward => cmd.arg("--forward"),
        Dir::Reverse => cmd.arg("--reverse"),
    };
    if dry_run {
        cmd.arg("--dry-run");
    }
    let out = cmd.output().with_context(|| {
        format!(
            "running patch -p1 -i {} in {}",
            file.display(),
            src.display()
        )
    })?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

/// Applies the patches in order: each one that applies is applied, each one whose reverse
/// applies is taken as applied already; anything else rolls back what was applied here and
/// fails.
pub fn apply_series(src: &Path, patches: &[PathBuf]) -> Result<()> {
    let mut applied: Vec<&Path> = Vec::new();
    for p in patches {
        let (fwd_ok, fwd_out) = patch(src, p, Dir::Forward, true)?;
        if fwd_ok {
            let (ok, out) = patch(src, p, Dir::Forward, false)?;
            if !ok {
                rollback(src, &applied);
                bail!(
                    "patch {} failed on {} after a clean dry run:\n{out}",
                    p.display(),
                    src.display()
                );
            }
            eprintln!("uml-harness: applied {}", p.display());
            applied.push(p);
            continue;
        }
        let (rev_ok, _) = patch(src, p, Dir::Reverse, true)?;
        if rev_ok {
            eprintln!("uml-harness: {} is already applied", p.display());
            continue;
        }
        rollback(src, &applied);
        bail!(
            "patch {} does not apply to {} (neither forward nor reversed):\n{}",
            p.display(),
            src.display(),
            fwd_out.trim_end()
        );
    }
    Ok(())
}

fn rollback(src: &Path, applied: &[&Path]) {
    for p in applied.iter().rev() {
        match patch(src, p, Dir::Reverse, false) {
            Ok((true, _)) => eprintln!("uml-harness: rolled back {}", p.display()),
            Ok((false, out)) => {
                eprintln!("uml-harness: could not roll back {}: {out}", p.display())
            }
            Err(e) => eprintln!("uml-harness: could not roll back {}: {e:#}", p.display()),
        }
    }
}

/// Reverses the patches recorded in `<src>/.arch-um-rs-applied`, last first.
/// Only the patches after the longest common prefix of the old and the new series (same
/// contents) are reversed, so that unchanged patches keep their files' timestamps and the
/// kernel builds stay incremental. Returns the length of that prefix.
fn reverse_saved(src: &Path, new: &[PathBuf]) -> Result<usize> {
    let dir = src.join(APPLIED_DIR);
    let mut saved: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => bail!(
            "{} records another series but {} (the copy of its patches) is missing",
            src.join(STAMP_FILE).display(),
            dir.display()
        ),
    };
    saved.sort();
    let kept = saved
        .iter()
        .zip(new)
        .take_while(|(a, b)| matches!((fs::read(a), fs::read(b)), (Ok(x), Ok(y)) if x == y))
        .count();
    fs::remove_file(src.join(STAMP_FILE)).ok();
    for p in saved[kept..].iter().rev() {
        let (ok, out) = patch(src, p, Dir::Reverse, true)?;
        if !ok {
            bail!(
                "cannot reverse the old patch {}:\n{}",
                p.display(),
                out.trim_end()
            );
        }
        let (ok, out) = patch(src, p, Dir::Reverse, false)?;
        if !ok {
            bail!(
                "reversing the old patch {} failed:\n{}",
                p.display(),
                out.trim_end()
            );
        }
        eprintln!("uml-harness: reversed old {}", p.display());
    }
    if kept > 0 {
        eprintln!("uml-harness: the first {kept} patches are unchanged and stay applied");
    }
    Ok(kept)
}

/// Unpacks the Debian tarball into `<cache>/src`, replacing the cached tree.
fn unpack(ctx: &Ctx) -> Result<()> {
    let tarball = Path::new(KERNEL_TARBALL);
    if !tarball.is_file() {
        bail!(
            "{} is missing: install linux-source-6.12 (`uml-harness setup` does it as root)",
            tarball.display()
        );
    }
    let parent = ctx.cache.join("src");
    fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    eprintln!(
        "uml-harness: unpacking {} into {} ...",
        tarball.display(),
        parent.display()
    );
    let status = Command::new("tar")
        .arg("-xJf")
        .arg(tarball)
        .arg("-C")
        .arg(tmp.path())
        .status()
        .with_context(|| format!("running tar -xJf {}", tarball.display()))?;
    if !status.success() {
        bail!("tar -xJf {} failed ({status})", tarball.display());
    }
    let unpacked = tmp.path().join(KERNEL_DIR_NAME);
    if !unpacked.join("Makefile").is_file() {
        bail!(
            "{} does not contain {KERNEL_DIR_NAME}/Makefile",
            tarball.display()
        );
    }
    let dest = parent.join(KERNEL_DIR_NAME);
    if dest.exists() {
        let old = tmp.path().join("old");
        fs::rename(&dest, &old)
            .with_context(|| format!("moving the old tree {} aside", dest.display()))?;
    }
    fs::rename(&unpacked, &dest)
        .with_context(|| format!("moving {} to {}", unpacked.display(), dest.display()))?;
    // The old tree (if any) goes away with `tmp`.
    drop(tmp);
    if dest != ctx.kernel_src {
        bail!(
            "internal error: unpacked to {} but the tree is {}",
            dest.display(),
            ctx.kernel_src.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MK_612: &str = "# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\nNAME = Baby Opossum Posse\n";
    const MK_61: &str = "VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 176\nEXTRAVERSION =\n";

    #[test]
    fn version_accepts_612() {
        let v = parse_makefile_version(MK_612).unwrap();
        assert_eq!(v.to_string(), "6.12.117");
        check_version(v, Path::new("/k")).unwrap();
    }

    #[test]
    fn version_refuses_61_with_message() {
        let v = parse_makefile_version(MK_61).unwrap();
        let e = check_version(v, Path::new("/k")).unwrap_err().to_string();
        assert!(e.contains("Linux 6.1.176"), "{e}");
        assert!(e.contains("the patches are for 6.12"), "{e}");
    }

    #[test]
    fn version_parse_errors() {
        assert!(parse_makefile_version("VERSION = 6\n").is_err());
        assert!(parse_makefile_version("VERSION = x\nPATCHLEVEL = 1\nSUBLEVEL = 1\n").is_err());
    }

    #[test]
    fn series_parsing() {
        let s = "# comment\n0001-a.patch\n\n0002-b.patch -p1 # x\n   \n";
        assert_eq!(parse_series(s), ["0001-a.patch", "0002-b.patch"]);
    }

    #[test]
    fn stamp_logic() {
        let a = series_hash(&[("1.patch".into(), b"x".to_vec())]);
        let b = series_hash(&[("1.patch".into(), b"y".to_vec())]);
        let c = series_hash(&[("2.patch".into(), b"x".to_vec())]);
        let empty = series_hash(&[]);
        assert!(a != b && a != c && b != c && a != empty);
        assert_eq!(a, series_hash(&[("1.patch".into(), b"x".to_vec())]));
        assert_eq!(plan(Some(&format!("{a}\n")), &a), Plan::UpToDate);
        assert_eq!(plan(Some(&b), &a), Plan::Replace);
        assert_eq!(plan(None, &a), Plan::Apply);
        assert_eq!(plan(None, &empty), Plan::Apply);
    }

    fn write(p: &Path, s: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, s).unwrap();
    }

    /// Applying, detecting an applied series, and swapping in a changed series.
    #[test]
    fn series_apply_and_replace() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        write(&src.join("f.txt"), "one\ntwo\nthree\n");
        let pd = t.path().join("patches");
        let p1 = "--- a/f.txt\n+++ b/f.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n";
        write(&pd.join("0001-two.patch"), p1);
        write(&pd.join("series"), "0001-two.patch\n");
        let s1 = Series::load(&pd).unwrap();
        apply_series(&src, &s1.patches).unwrap();
        record(&src, &s1).unwrap();
        assert_eq!(
            fs::read_to_string(src.join("f.txt")).unwrap(),
            "one\nTWO\nthree\n"
        );
        // Applying again: detected as applied, no change.
        apply_series(&src, &s1.patches).unwrap();
        assert_eq!(
            fs::read_to_string(src.join("f.txt")).unwrap(),
            "one\nTWO\nthree\n"
        );
        // A changed series: reverse the saved copy, apply the new one.
        let p2 = "--- a/f.txt\n+++ b/f.txt\n@@ -1,3 +1,3 @@\n one\n two\n-three\n+THREE\n";
        write(&pd.join("0001-two.patch"), p2);
        let s2 = Series::load(&pd).unwrap();
        assert_ne!(s1.hash, s2.hash);
        let stamp = fs::read_to_string(src.join(STAMP_FILE)).unwrap();
        assert_eq!(plan(Some(&stamp), &s2.hash), Plan::Replace);
        assert_eq!(reverse_saved(&src, &s2.patches).unwrap(), 0);
        assert_eq!(
            fs::read_to_string(src.join("f.txt")).unwrap(),
            "one\ntwo\nthree\n"
        );
        apply_series(&src, &s2.patches).unwrap();
        record(&src, &s2).unwrap();
        assert_eq!(
            fs::read_to_string(src.join("f.txt")).unwrap(),
            "one\ntwo\nTHREE\n"
        );
        // A series that appends a patch keeps the first one applied.
        let p4 = "--- a/f.txt\n+++ b/f.txt\n@@ -1,3 +1,3 @@\n-one\n+1\n two\n THREE\n";
        write(&pd.join("0009-one.patch"), p4);
        write(&pd.join("series"), "0001-two.patch\n0009-one.patch\n");
        let s3 = Series::load(&pd).unwrap();
        assert_eq!(reverse_saved(&src, &s3.patches).unwrap(), 1);
        apply_series(&src, &s3.patches[1..]).unwrap();
        assert_eq!(
            fs::read_to_string(src.join("f.txt")).unwrap(),
            "1\ntwo\nTHREE\n"
        );
        record(&src, &s3).unwrap();
        // Shrinking it back reverses only the second.
        write(&pd.join("series"), "0001-two.patch\n");
        let s4 = Series::load(&pd).unwrap();
        assert_eq!(reverse_saved(&src, &s4.patches).unwrap(), 1);
        assert_eq!(
            fs::read_to_string(src.join("f.txt")).unwrap(),
            "one\ntwo\nTHREE\n"
        );
        record(&src, &s4).unwrap();
        // A patch that applies neither way fails and leaves the tree as it was.
        let bad = "--- a/f.txt\n+++ b/f.txt\n@@ -1,3 +1,3 @@\n nope\n-nope\n+x\n nope\n";
        write(&pd.join("0002-bad.patch"), bad);
        let p3 = "--- a/f.txt\n+++ b/f.txt\n@@ -1,3 +1,3 @@\n-one\n+ONE\n two\n THREE\n";
        write(&pd.join("0000-one.patch"), p3);
        let list = [pd.join("0000-one.patch"), pd.join("0002-bad.patch")];
        let e = apply_series(&src, &list).unwrap_err().to_string();
        assert!(e.contains("0002-bad.patch"), "{e}");
        assert_eq!(
            fs::read_to_string(src.join("f.txt")).unwrap(),
            "one\ntwo\nTHREE\n"
        );
    }
}
