// SPDX-License-Identifier: GPL-2.0
//! `uml-harness setup`: host packages, then the kernel source.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cli::SetupArgs;
use crate::kernel_src;
use crate::paths::Ctx;

/// Debian packages the harness needs on the host.
pub const HOST_PACKAGES: &[&str] = &[
    "linux-source-6.12",
    "flex",
    "bison",
    "bc",
    "libelf-dev",
    "busybox-static",
    "cpio",
    "user-mode-linux",
    "uml-utilities",
    "libssl-dev",
    "gcc",
    "make",
    // not in the brief's list, but the series is applied with it
    "patch",
    // tools/testing/kunit/kunit.py (`uml-harness kunit`)
    "python3",
    // the tap devices of the network cases
    "iproute2",
    // `bench-block` runs the host's fio in the guest
    "fio",
    // mkfs.ext4, e2fsck and debugfs of the block cases (host and guest)
    "e2fsprogs",
    // guest-to-host throughput over the vector transports (`bench-net`, net cases)
    "iperf3",
    // the certificate the port channel's telnetd (telnetd-ssl, downloaded into the
    // cache, not installed) insists on (`host_chan_port`)
    "openssl",
];

/// Installed version of each package that is installed (dpkg status `ii`).
pub fn installed_versions(pkgs: &[&str]) -> Result<BTreeMap<String, String>> {
    // dpkg-query exits 1 when a package is unknown but still prints the others.
    let out = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package} ${db:Status-Abbrev} ${Version}\\n")
        .args(pkgs)
        .output()
        .context("running dpkg-query (is this a Debian host?)")?;
    Ok(parse_dpkg_query(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_dpkg_query(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (pkg, status, version) = (it.next()?, it.next()?, it.next()?);
            (status == "ii").then(|| (pkg.to_string(), version.to_string()))
        })
        .collect()
}

fn missing(found: &BTreeMap<String, String>) -> Vec<&'static str> {
    HOST_PACKAGES
        .iter()
        .copied()
        .filter(|p| !found.contains_key(*p))
        .collect()
}

fn apt_line(missing: &[&str]) -> String {
    format!("apt-get install -y {}", missing.join(" "))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Checks the host packages and, as root, installs the missing ones.
pub fn ensure_packages(check_only: bool) -> Result<()> {
    let found = installed_versions(HOST_PACKAGES)?;
    let miss = missing(&found);
    for p in HOST_PACKAGES {
        match found.get(*p) {
            Some(v) => eprintln!("  {p:<20} {v}"),
            None => eprintln!("  {p:<20} MISSING"),
        }
    }
    if miss.is_empty() {
        return Ok(());
    }
    if check_only {
        bail!(
            "missing host packages: {}; install them with:\n  {}",
            miss.join(" "),
            apt_line(&miss)
        );
    }
    if !is_root() {
        bail!(
            "missing host packages: {}; as root run:\n  {}",
            miss.join(" "),
            apt_line(&miss)
        );
    }
    eprintln!("uml-harness: installing {}", miss.join(" "));
    run_apt(&["update"])?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(&miss);
    run_apt(&args)?;
    let found = installed_versions(HOST_PACKAGES)?;
    let still = missing(&found);
    if !still.is_empty() {
        bail!("apt-get did not install: {}", still.join(" "));
    }
    for p in &miss {
        eprintln!("  {p:<20} {} (installed)", found[*p]);
    }
    Ok(())
}

fn run_apt(args: &[&str]) -> Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .with_context(|| format!("running apt-get {}", args.join(" ")))?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// `uml-harness setup`.
pub fn run(ctx: &Ctx, args: &SetupArgs) -> Result<()> {
    eprintln!("uml-harness: host packages:");
    ensure_packages(args.check_only)?;
    for (what, cmd) in [
        ("gcc", ["gcc", "--version"]),
        ("make", ["make", "--version"]),
    ] {
        if let Ok(o) = Command::new(cmd[0]).arg(cmd[1]).output() {
            let first = String::from_utf8_lossy(&o.stdout);
            eprintln!("  {what}: {}", first.lines().next().unwrap_or("?"));
        }
    }
    if args.check_only {
        return Ok(());
    }
    let tree = kernel_src::ensure(ctx)?;
    eprintln!(
        "uml-harness: kernel source {} (Linux {}), patch series {}",
        ctx.kernel_src.display(),
        tree.version,
        tree.series_desc
    );
    println!("{}", ctx.kernel_src.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_query_parsing_and_missing() {
        let out = "flex ii  2.6.4-8.2\nbison un  \ngcc ii  4:12.2.0-3\n";
        let found = parse_dpkg_query(out);
        assert_eq!(found.get("flex").map(String::as_str), Some("2.6.4-8.2"));
        assert!(!found.contains_key("bison"));
        let m = missing(&found);
        assert!(m.contains(&"bison") && m.contains(&"cpio") && !m.contains(&"gcc"));
        assert!(apt_line(&["a", "b"]).ends_with("install -y a b"));
    }
}
