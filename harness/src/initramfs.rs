// SPDX-License-Identifier: GPL-2.0
//! The initramfs: busybox-static, the guest program and `/init`, as a gzipped newc cpio
//! archive cached under `<cache>/initramfs/<sha256 of the inputs>.cpio.gz`.
//!
//! The archive is written here (the newc format is a few fixed-width hex fields), which
//! lets it carry device nodes and root ownership without root privileges or `cpio`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::kernel_src::hex;
use crate::paths::Ctx;
use crate::protocol;

/// Host busybox (Debian's busybox-static).
pub const BUSYBOX: &str = "/bin/busybox";
/// Path of the guest program inside the initramfs.
pub const GUEST_PATH: &str = "usr/bin/uml-guest";
/// Set to 1 to leave the guest program out (when tests/guest does not build).
pub const NO_GUEST_ENV: &str = "ARCH_UM_RS_NO_GUEST";

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// A writer of "newc" (SVR4, no CRC) cpio archives, as the kernel unpacks them.
pub struct NewcWriter<W: Write> {
    out: W,
    ino: u32,
    written: u64,
}

impl<W: Write> NewcWriter<W> {
    pub fn new(out: W) -> Self {
        NewcWriter {
            out,
            ino: 1,
            written: 0,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> Result<()> {
        let name = name.trim_start_matches('/');
        let ino = self.ino;
        self.ino += 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            ino,
            mode,
            0, // uid
            0, // gid
            if mode & 0o170000 == S_IFDIR { 2 } else { 1 },
            0, // mtime: reproducible archives
            data.len(),
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() + 1,
            0, // check
        );
        self.write(header.as_bytes())?;
        self.write(name.as_bytes())?;
        self.write(&[0])?;
        self.pad()?;
        self.write(data)?;
        self.pad()
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.write(&[0u8; 3][..n])
    }

    pub fn dir(&mut self, name: &str, perm: u32) -> Result<()> {
        self.entry(name, S_IFDIR | perm, (0, 0), &[])
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<()> {
        self.entry(name, S_IFREG | perm, (0, 0), data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        self.entry(name, S_IFLNK | 0o777, (0, 0), target.as_bytes())
    }

    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> Result<()> {
        self.entry(name, S_IFCHR | perm, (major, minor), &[])
    }

    /// Writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.entry("TRAILER!!!", 0, (0, 0), &[])?;
        Ok(self.out)
    }
}

/// Refuses a dynamically linked executable (it would not run in the initramfs).
pub fn check_static(path: &Path, bytes: &[u8]) -> Result<()> {
    let elf = goblin::elf::Elf::parse(bytes)
        .with_context(|| format!("{} is not an ELF file", path.display()))?;
    if let Some(interp) = elf.interpreter {
        bail!(
            "{} is dynamically linked (interpreter {interp}); the initramfs needs a static binary",
            path.display()
        );
    }
    Ok(())
}

/// Busybox applet paths (`bin/sh`, `usr/bin/xxd`, ...) from `busybox --list-full`.
fn busybox_applets() -> Result<Vec<String>> {
    let out = Command::new(BUSYBOX)
        .arg("--list-full")
        .output()
        .with_context(|| format!("running {BUSYBOX} --list-full (install busybox-static)"))?;
    if !out.status.success() {
        bail!("{BUSYBOX} --list-full failed ({})", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && l != "bin/busybox" && !l.contains(".."))
        .collect())
}

/// The rustc host triple (`x86_64-unknown-linux-gnu`).
fn host_triple() -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("rustc -vV printed no host triple")
}

/// Builds `tests/guest` as a static binary and returns its path.
pub fn guest_binary(ctx: &Ctx) -> Result<PathBuf> {
    let manifest = ctx.repo.join("tests/guest/Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} is missing: the guest program cannot be built (set {NO_GUEST_ENV}=1 to boot \
             without it)",
            manifest.display()
        );
    }
    let target = host_triple()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = ctx.cache.join("guest-target");
    // --target keeps RUSTFLAGS away from build scripts and proc macros.
    let out = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--target")
        .arg(&target)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running cargo build --manifest-path {}", manifest.display()))?;
    if !out.status.success() {
        bail!(
            "building the guest program {} failed ({}); see the compiler output above (set \
             {NO_GUEST_ENV}=1 to boot without it)",
            manifest.display(),
            out.status
        );
    }
    let mut exe = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact"
            && v["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        {
            if let Some(p) = v["executable"].as_str() {
                exe = Some(PathBuf::from(p));
            }
        }
    }
    exe.with_context(|| {
        format!(
            "cargo built {} but reported no executable",
            manifest.display()
        )
    })
}

/// Everything that goes into the archive.
struct Inputs {
    busybox: Vec<u8>,
    applets: Vec<String>,
    guest: Option<Vec<u8>>,
    init: String,
}

impl Inputs {
    fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"arch-um-rs initramfs v1\0");
        h.update(&self.busybox);
        h.update(self.applets.join("\n").as_bytes());
        h.update([0]);
        match &self.guest {
            Some(g) => {
                h.update(b"guest\0");
                h.update(g);
            }
            None => h.update(b"no guest\0"),
        }
        h.update(self.init.as_bytes());
        hex(&h.finalize())
    }

    fn write_cpio<W: Write>(&self, out: W) -> Result<W> {
        let mut w = NewcWriter::new(out);
        for d in [
            "bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "run", "mnt",
            "host", "root", "var", "var/tmp",
        ] {
            w.dir(d, 0o755)?;
        }
        w.dir("tmp", 0o1777)?;
        w.char_dev("dev/console", 0o600, 5, 1)?;
        w.char_dev("dev/null", 0o666, 1, 3)?;
        w.char_dev("dev/tty", 0o666, 5, 0)?;
        w.file("bin/busybox", 0o755, &self.busybox)?;
        let mut dirs_made = std::collections::BTreeSet::new();
        for a in &self.applets {
            if let Some((dir, _)) = a.rsplit_once('/') {
                if !["bin", "sbin", "usr/bin", "usr/sbin"].contains(&dir) && dirs_made.insert(dir) {
                    w.dir(dir, 0o755)?;
                }
            }
            w.symlink(a, "/bin/busybox")?;
        }
        if let Some(g) = &self.guest {
            w.file(GUEST_PATH, 0o755, g)?;
        }
        w.file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )?;
        w.file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")?;
        w.file("etc/hostname", 0o644, b"uml\n")?;
        w.file("init", 0o755, self.init.as_bytes())?;
        w.finish()
    }
}

/// Builds the initramfs if its inputs changed and returns its path. Within one harness
/// process the answer is computed once per cache directory (a benchmark boots many times).
pub fn ensure(ctx: &Ctx) -> Result<PathBuf> {
    static MEMO: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());
    let mut memo = MEMO.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = memo.iter().find(|(c, p)| *c == ctx.cache && p.is_file()) {
        return Ok(p.clone());
    }
    let p = build(ctx)?;
    memo.retain(|(c, _)| *c != ctx.cache);
    memo.push((ctx.cache.clone(), p.clone()));
    Ok(p)
}

fn build(ctx: &Ctx) -> Result<PathBuf> {
    let busybox =
        fs::read(BUSYBOX).with_context(|| format!("reading {BUSYBOX} (install busybox-static)"))?;
    check_static(Path::new(BUSYBOX), &busybox)?;
    let guest = if std::env::var_os(NO_GUEST_ENV).is_some_and(|v| v == "1") {
        None
    } else {
        let path = guest_binary(ctx)?;
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        check_static(&path, &bytes)?;
        Some(bytes)
    };
    let inputs = Inputs {
        busybox,
        applets: busybox_applets()?,
        guest,
        init: protocol::init_script(),
    };
    let dir = ctx.cache.join("initramfs");
    let path = dir.join(format!("{}.cpio.gz", &inputs.hash()[..32]));
    if path.is_file() {
        return Ok(path);
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let gz = GzEncoder::new(std::io::BufWriter::new(tmp), Compression::new(6));
    let gz = inputs
        .write_cpio(gz)
        .with_context(|| format!("writing the initramfs in {}", dir.display()))?;
    let tmp = gz
        .finish()?
        .into_inner()
        .map_err(|e| e.into_error())
        .context("flushing the initramfs")?;
    tmp.persist(&path)
        .with_context(|| format!("renaming the initramfs to {}", path.display()))?;
    // Keep the directory small: older archives are dead weight.
    if let Ok(rd) = fs::read_dir(&dir) {
        let mut old: Vec<_> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path() != path && e.path().extension().is_some_and(|x| x == "gz"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        old.sort();
        let n = old.len().saturating_sub(4);
        for (_, p) in old.into_iter().take(n) {
            fs::remove_file(p).ok();
        }
    }
    Ok(path)
}

/// `uml-harness initramfs`.
pub fn run(ctx: &Ctx) -> Result<()> {
    println!("{}", ensure(ctx)?.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The archive is what `cpio` (the reference implementation) reads.
    #[test]
    fn newc_archive_lists_with_cpio() {
        let mut w = NewcWriter::new(Vec::new());
        w.dir("bin", 0o755).unwrap();
        w.file("bin/hello", 0o755, b"#!/bin/sh\necho hi\n").unwrap();
        w.symlink("bin/sh", "/bin/busybox").unwrap();
        w.char_dev("dev/console", 0o600, 5, 1).unwrap();
        w.file("odd", 0o644, b"12345").unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a.cpio");
        fs::write(&a, &bytes).unwrap();
        let Ok(out) = Command::new("cpio")
            .args(["-itv", "--quiet", "-F"])
            .arg(&a)
            .output()
        else {
            return; // no cpio on this host
        };
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let names: Vec<&str> = listing
            .lines()
            .map(|l| l.split_whitespace().last().unwrap())
            .collect();
        assert_eq!(
            names,
            ["bin", "bin/hello", "/bin/busybox", "dev/console", "odd"]
        );
        assert!(listing.contains("crw-------"), "{listing}");
        assert!(listing.contains("bin/sh -> /bin/busybox"), "{listing}");
        // Extract and compare a file.
        let x = t.path().join("x");
        fs::create_dir(&x).unwrap();
        let st = Command::new("cpio")
            .args(["-id", "--quiet", "--no-absolute-filenames", "-F"])
            .arg(&a)
            .arg("bin/hello")
            .arg("odd")
            .current_dir(&x)
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(fs::read(x.join("odd")).unwrap(), b"12345");
        assert_eq!(
            fs::read(x.join("bin/hello")).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
    }

    #[test]
    fn busybox_is_static() {
        if let Ok(b) = fs::read(BUSYBOX) {
            check_static(Path::new(BUSYBOX), &b).unwrap();
        }
        let sh = fs::read("/bin/sh").unwrap();
        assert!(check_static(Path::new("/bin/sh"), &sh).is_err());
    }
}
