// SPDX-License-Identifier: GPL-2.0
//! Where things live: the cache directory, the repository, the kernel tree.
//!
//! Everything the harness creates lives under one cache directory:
//!
//! ```text
//! <cache>/src/linux-source-6.12   unpacked kernel tree (patched with kernel-patches/)
//! <cache>/build/{c,rust}          kbuild output directories (O=)
//! <cache>/initramfs/<hash>.cpio.gz
//! <cache>/guest-target            cargo target dir of tests/guest
//! ```

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Name of the kernel tree directory inside the Debian tarball and the cache.
pub const KERNEL_DIR_NAME: &str = "linux-source-6.12";
/// Debian's `linux-source-6.12` tarball.
pub const KERNEL_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";

/// Context shared by every subcommand.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Cache directory (`--cache`, `$ARCH_UM_RS_CACHE`, `$XDG_CACHE_HOME/arch-um-rs`,
    /// `~/.cache/arch-um-rs`).
    pub cache: PathBuf,
    /// Root of the arch-um-rs repository (holds `kernel-patches/`, `arch-um-rs/`, `tests/`).
    pub repo: PathBuf,
    /// Kernel source tree used for builds.
    pub kernel_src: PathBuf,
    /// True when the tree was given by the user (`--kernel-src`, `$ARCH_UM_RS_KERNEL_SRC`):
    /// such a tree is never deleted or re-unpacked.
    pub kernel_src_is_user: bool,
}

impl Ctx {
    /// Resolves the context from flags and the environment.
    pub fn resolve(cache: Option<PathBuf>, kernel_src: Option<PathBuf>) -> Result<Ctx> {
        let cache = match cache {
            Some(c) => c,
            None => default_cache_dir()?,
        };
        let cache = absolute(&cache)?;
        let repo = find_repo()?;
        let (kernel_src, kernel_src_is_user) =
            match kernel_src.or_else(|| env::var_os("ARCH_UM_RS_KERNEL_SRC").map(PathBuf::from)) {
                Some(dir) => (absolute(&dir)?, true),
                None => (cache.join("src").join(KERNEL_DIR_NAME), false),
            };
        Ok(Ctx {
            cache,
            repo,
            kernel_src,
            kernel_src_is_user,
        })
    }

    /// kbuild output directory of one flavour (`c` or `rust`).
    pub fn build_dir(&self, os: &str) -> PathBuf {
        self.cache.join("build").join(os)
    }

    /// `kernel-patches/` of the repository.
    pub fn patches_dir(&self) -> PathBuf {
        self.repo.join("kernel-patches")
    }
}

/// `$ARCH_UM_RS_CACHE`, else `$XDG_CACHE_HOME/arch-um-rs`, else `~/.cache/arch-um-rs`.
pub fn default_cache_dir() -> Result<PathBuf> {
    cache_dir_from(
        env::var_os("ARCH_UM_RS_CACHE").map(PathBuf::from),
        env::var_os("XDG_CACHE_HOME").map(PathBuf::from),
        env::var_os("HOME").map(PathBuf::from),
    )
}

fn cache_dir_from(
    explicit: Option<PathBuf>,
    xdg: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<PathBuf> {
    let nonempty = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = nonempty(explicit) {
        return Ok(p);
    }
    if let Some(p) = nonempty(xdg) {
        return Ok(p.join("arch-um-rs"));
    }
    if let Some(p) = nonempty(home) {
        return Ok(p.join(".cache").join("arch-um-rs"));
    }
    bail!("cannot find a cache directory: set --cache, ARCH_UM_RS_CACHE or HOME")
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("making {} absolute", p.display()))
}

/// True when `dir` looks like the root of this repository.
fn is_repo_root(dir: &Path) -> bool {
    dir.join("kernel-patches").is_dir()
        && dir.join("arch-um-rs").is_dir()
        && dir.join("Cargo.toml").is_file()
}

/// `$ARCH_UM_RS_REPO`, else the nearest ancestor of the working directory that is the
/// repository root, else the repository this binary was compiled from.
fn find_repo() -> Result<PathBuf> {
    if let Some(p) = env::var_os("ARCH_UM_RS_REPO") {
        let p = absolute(Path::new(&p))?;
        if !is_repo_root(&p) {
            bail!(
                "ARCH_UM_RS_REPO={} is not the arch-um-rs repository (no kernel-patches/ and arch-um-rs/)",
                p.display()
            );
        }
        return Ok(p);
    }
    if let Ok(cwd) = env::current_dir() {
        if let Some(found) = cwd.ancestors().find(|d| is_repo_root(d)) {
            return Ok(found.to_path_buf());
        }
    }
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if is_repo_root(&compiled) {
        return Ok(compiled.canonicalize().unwrap_or(compiled));
    }
    bail!("cannot find the arch-um-rs repository: run from inside it or set ARCH_UM_RS_REPO")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_precedence() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(
            cache_dir_from(p("/c"), p("/x"), p("/h")).unwrap(),
            PathBuf::from("/c")
        );
        assert_eq!(
            cache_dir_from(None, p("/x"), p("/h")).unwrap(),
            PathBuf::from("/x/arch-um-rs")
        );
        assert_eq!(
            cache_dir_from(p(""), p(""), p("/h")).unwrap(),
            PathBuf::from("/h/.cache/arch-um-rs")
        );
        assert!(cache_dir_from(None, None, None).is_err());
    }
}
