// SPDX-License-Identifier: GPL-2.0
//! `host_ubd_*`: the block driver (ubd: `arch/um/drivers/ubd_kern.c`,
//! `ubd_user.c`, `cow_user.c`) end to end on real boots, as the UML HOWTO
//! (`Documentation/virt/uml/user_mode_linux_howto_v2.rst`) promises it to
//! users. Each case boots the kernel under test itself, with busybox `sh -c`
//! payloads that print `@@BLK <key> <values>` lines, and checks the host's
//! side of the files with the host's own tools (e2fsprogs, uml-utilities):
//!
//! * `host_ubd_ext4`: `mke2fs -t ext4` in the guest (the host's binary,
//!   staged through hostfs), files of known pseudo-random content, unmount,
//!   a clean `e2fsck -f -n` in the guest; then on the host a clean
//!   `e2fsck -f -n` and every file read back with `debugfs`.
//! * `host_ubd_cow`: `ubd0=cow,backing` over a host-made ext4: the backing
//!   file stays byte for byte and mtime the same; the COW file is sparse
//!   with a v3 header (`MOOO`, version 3, backing path, size, mtime); booting
//!   the COW file alone shows the guest's changes; `uml_moo` merges them
//!   into an image in which the host's debugfs sees them; a COW file made by
//!   `uml_mkcow` opens (with the `cow:backing` form) and shows the backing.
//! * `host_ubd_readonly`: `ubd0r=` and a host file that is not writable (on
//!   a read-only bind mount: root writes through a 0444 mode): the device
//!   is read-only, a write fails with EPERM, the file is unchanged.
//! * `host_ubd_odd_size`: a 1,575-byte file is a 2,048-byte device whose
//!   first 1,575 bytes are the file's and the rest zero.
//! * `host_ubd_trim`: `fstrim` in the guest punches the freed blocks out of
//!   the host file; the `t` flag turns discard off.
//! * `host_ubd_hotplug`: mconsole `config ubdb=`, mount, a refused `remove`
//!   while mounted, then `remove` after unmounting: the device goes away.
//! * `host_ubd_io_error`: the host file on a full 4 MiB tmpfs: writes fail
//!   in the guest with the host's errno (O_DIRECT: ENOSPC; buffered and
//!   fsync: EIO), the kernel goes on and powers off normally.
//! * `host_ubd_sync_halt`: buffered writes to the open device, `echo s >
//!   /proc/sysrq-trigger`, and `halt -n -f` as soon as the write-back is
//!   done: all the data is in the host file.
//! * `host_ubd_lock`: a second kernel is refused an image the first one
//!   holds, naming the holder's pid, and writes nothing to it.
//! * `host_ubd_flags`: while the kernel runs, the host's view of its files:
//!   the `s` image's fd is `O_SYNC` (`/proc/<pid>/fdinfo`), the others' not,
//!   the `r` one's read-only; `/proc/locks` has a POSIX lock by the kernel
//!   on every image but the `c` one (READ for `r` and a COW backing file,
//!   else WRITE); a second
//!   kernel with `c` uses, at the same time, the image the first holds
//!   locked and the one both share, taking no lock, and reads both intact;
//!   `ubd4=FILE,,SERIAL` shows SERIAL in `/sys/block/ubde/serial`.
//! * `host_ubd_cow_check`: COW files made by the other kernel (the Rust one
//!   for the C kernel, the C one else); a backing file whose mtime changed,
//!   and one that grew, refuse their COW devices with `mtime mismatch (R vs
//!   C)` and `Size mismatch (R vs C)` on the console, and nothing is written;
//!   `ubd1d=cow` (no COW detection) reads the COW file itself, and `d` with
//!   a backing file is refused; with the mtime restored and the backing file
//!   moved, `ubd0=cow,newpath` switches the header to the new path, reads
//!   the other kernel's data and takes writes (checked by `uml_moo`); the
//!   other kernel then opens the COW file by its header alone.
//! * `host_ubd_hotplug_cow`: mconsole `config ubd1=cow,backing` on a running
//!   guest, which reads the backing data and writes; `remove ubd1` refused
//!   (`Device is currently open`) while a guest shell holds `/dev/ubdb` open,
//!   which still reads; `remove` after the close; backing file unchanged,
//!   `uml_moo` merges exactly the guest's write.
//!
//! The last three also fail if the guest's `dmesg` holds a kernel WARNING or
//! BUG (`quiet` keeps them off the console).
//!
//! Every case works in its own temporary directory, removed afterwards, and
//! unmounts what it mounted, also when it fails.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, MsFlags};
use sha2::{Digest, Sha256};

use crate::boot::{self, BootSpec, Guest};
use crate::paths::Ctx;
use crate::suite::{self, pattern, proto};

/// One case: its name in the suite and its body.
pub struct Case {
    pub name: &'static str,
    body: fn(&Ctx, &Path) -> Result<String>,
}

/// The cases, in report order.
pub const CASES: &[Case] = &[
    Case {
        name: "host_ubd_ext4",
        body: ext4_case,
    },
    Case {
        name: "host_ubd_cow",
        body: cow_case,
    },
    Case {
        name: "host_ubd_readonly",
        body: readonly_case,
    },
    Case {
        name: "host_ubd_odd_size",
        body: odd_size_case,
    },
    Case {
        name: "host_ubd_trim",
        body: trim_case,
    },
    Case {
        name: "host_ubd_hotplug",
        body: hotplug_case,
    },
    Case {
        name: "host_ubd_io_error",
        body: io_error_case,
    },
    Case {
        name: "host_ubd_sync_halt",
        body: sync_halt_case,
    },
    Case {
        name: "host_ubd_lock",
        body: lock_case,
    },
    Case {
        name: "host_ubd_flags",
        body: flags_case,
    },
    Case {
        name: "host_ubd_cow_check",
        body: cow_check_case,
    },
    Case {
        name: "host_ubd_hotplug_cow",
        body: hotplug_cow_case,
    },
    Case {
        name: "host_ubd_direct",
        body: direct_case,
    },
];

/// Runs `case` on `kernel`: Ok(diagnostic, with the time taken),
/// Ok("skipped: why") or the failure.
pub fn run(case: &Case, ctx: &Ctx, kernel: &Path) -> Result<String> {
    let t = Instant::now();
    let fact = (case.body)(ctx, kernel)?;
    if fact.starts_with("skipped: ") {
        return Ok(fact);
    }
    Ok(format!("{fact}; {:.1}s", t.elapsed().as_secs_f64()))
}

/// Prefix of the payloads' result lines.
pub(crate) const MARK: &str = "@@BLK";
/// Put before every payload: stop at the first failing command, and `m`
/// prints a result line (`m step NAME` names the step under way).
pub(crate) const PRELUDE: &str = "set -e; m() { echo \"@@BLK $*\"; }; ";
/// Boot plus payload, per boot.
const BOOT_LIMIT: Duration = Duration::from_secs(60);
/// How long the host waits for the guest to reach a step.
pub(crate) const STEP_LIMIT: Duration = Duration::from_secs(30);
/// Console lines quoted with a failure.
const TAIL: usize = 30;
/// Size of the ext4 images.
const FS_SIZE: u64 = 64 << 20;
/// The COW v3 magic, "MOOO" stored big-endian (`cow_user.c`).
const COW_MAGIC: [u8; 4] = [0x4f, 0x4f, 0x4f, 0x4d];
/// The errno texts the guest's busybox prints (glibc's strerror).
const EPERM_TEXT: &str = "Operation not permitted";
const ENOSPC_TEXT: &str = "No space left on device";
const EIO_TEXT: &str = "Input/output error";
const EOPNOTSUPP_TEXT: &str = "Operation not supported";

// ---------------------------------------------------------------------------
// Shared helpers.

/// A base seed, fresh for every case run, so that data left by an earlier
/// run can never pass.
pub(crate) fn fresh_seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // Word "blk": not one of those the main suite draws from the same clock.
    pattern::word(t ^ (u64::from(std::process::id()) << 40), 0x0062_6c6b)
}

/// Seed `k` derived from `base` (independent streams, not shifted copies).
pub(crate) fn seed(base: u64, k: u64) -> u64 {
    pattern::word(base, k)
}

pub(crate) fn sha256_hex(b: &[u8]) -> String {
    crate::kernel_src::hex(&Sha256::digest(b))
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::kernel_src::hex(&h.finalize()))
}

/// Bytes the host file system has allocated to `path` (st_blocks * 512).
fn allocated(path: &Path) -> Result<u64> {
    let m = fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    Ok(m.blocks() * 512)
}

/// What must not change in a file the guest may only read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    sha256: String,
    len: u64,
    mtime: SystemTime,
}

impl Fingerprint {
    pub(crate) fn of(path: &Path) -> Result<Fingerprint> {
        let m = fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
        Ok(Fingerprint {
            sha256: sha256_file(path)?,
            len: m.len(),
            mtime: m.modified()?,
        })
    }

    /// Fails if `path` no longer matches.
    pub(crate) fn same(&self, path: &Path, when: &str) -> Result<()> {
        let now = Fingerprint::of(path)?;
        if now.sha256 != self.sha256 || now.len != self.len {
            bail!(
                "{} changed {when}: {} bytes with SHA-256 {}, was {} bytes with {}",
                path.display(),
                now.len,
                now.sha256,
                self.len,
                self.sha256
            );
        }
        if now.mtime != self.mtime {
            bail!(
                "the mtime of {} changed {when}: {:?}, was {:?}",
                path.display(),
                now.mtime,
                self.mtime
            );
        }
        Ok(())
    }
}

/// A sparse file of `size` bytes.
pub(crate) fn sparse_file(path: &Path, size: u64) -> Result<()> {
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.set_len(size)
        .with_context(|| format!("sizing {}", path.display()))
}

/// A file holding `len` bytes of the pattern for `seed`.
fn pattern_file(path: &Path, seed: u64, len: usize) -> Result<()> {
    fs::write(path, suite::pattern_bytes(seed, len))
        .with_context(|| format!("writing {}", path.display()))
}

/// Where `got` first differs from the pattern for `seed` (`len` bytes
/// expected), as a sentence; None if it matches.
pub(crate) fn pattern_mismatch(got: &[u8], seed: u64, len: usize) -> Option<String> {
    if let Some(i) = pattern::first_mismatch(seed, 0, &got[..got.len().min(len)]) {
        return Some(format!("differs from the pattern at byte {i}"));
    }
    (got.len() != len).then(|| format!("has {} bytes, expected {len}", got.len()))
}

/// Runs a host program; fails, with its output, unless it exits 0.
fn host_tool(prog: &str, args: &[&OsStr], package: &str) -> Result<Output> {
    let out = Command::new(prog)
        .args(args)
        .output()
        .with_context(|| format!("running {prog} (package {package})"))?;
    if !out.status.success() {
        bail!(
            "{prog} {} failed ({}):\n{}{}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(out)
}

/// A host-made ext4 file system of [`FS_SIZE`] in `image`, holding the
/// files of `src`.
pub(crate) fn host_mkfs(image: &Path, src: &Path) -> Result<()> {
    host_tool(
        "mkfs.ext4",
        &[
            "-q".as_ref(),
            "-F".as_ref(),
            "-E".as_ref(),
            "nodiscard".as_ref(),
            "-d".as_ref(),
            src.as_os_str(),
            image.as_os_str(),
            format!("{}k", FS_SIZE >> 10).as_ref(),
        ],
        "e2fsprogs",
    )?;
    Ok(())
}

/// `e2fsck -f -n` on the host must find `image` clean; returns its summary.
pub(crate) fn host_fsck(image: &Path) -> Result<String> {
    let out = host_tool(
        "e2fsck",
        &["-f".as_ref(), "-n".as_ref(), image.as_os_str()],
        "e2fsprogs",
    )
    .with_context(|| format!("the host's e2fsck on {}", image.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string())
}

/// The bytes of `path` in the ext4 file system in `image`, read by the
/// host's debugfs.
pub(crate) fn debugfs_cat(image: &Path, path: &str) -> Result<Vec<u8>> {
    let out = host_tool(
        "debugfs",
        &[
            "-R".as_ref(),
            format!("cat {path}").as_ref(),
            image.as_os_str(),
        ],
        "e2fsprogs",
    )?;
    // debugfs exits 0 also when the file is missing; the reason is on stderr.
    let err = String::from_utf8_lossy(&out.stderr);
    if let Some(l) = err.lines().find(|l| !l.starts_with("debugfs ")) {
        bail!("debugfs cat {path} in {}: {l}", image.display());
    }
    Ok(out.stdout)
}

/// `path` in `image`, as the host's debugfs reads it, holds exactly `want`.
fn check_host_file(image: &Path, path: &str, want: &[u8]) -> Result<()> {
    let got = debugfs_cat(image, path)?;
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        bail!(
            "{path} in {} as the host's debugfs reads it: {} bytes, expected {}; first \
             difference at byte {at}",
            image.display(),
            got.len(),
            want.len()
        );
    }
    Ok(())
}

/// Tells a waiting guest (`uml-guest wait-file /host/NAME`) to go on: the
/// file appears atomically in the hostfs directory.
pub(crate) fn release(hostfs: &Path, name: &str) -> Result<()> {
    let tmp = hostfs.join(format!(".{name}.tmp"));
    fs::write(&tmp, name).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, hostfs.join(name)).with_context(|| format!("creating {name}"))
}

/// The rest of the first console line with `@@BLK <key>` (followed by a
/// space or the line's end), trimmed.
pub(crate) fn mark_line(console: &str, key: &str) -> Option<String> {
    let needle = format!("{MARK} {key}");
    console.lines().find_map(|l| {
        let i = l.find(&needle)?;
        let rest = &l[i + needle.len()..];
        (rest.is_empty() || rest.starts_with(' ')).then(|| rest.trim().to_string())
    })
}

/// The words of [`mark_line`].
fn mark(console: &str, key: &str) -> Option<Vec<String>> {
    mark_line(console, key).map(|l| l.split_whitespace().map(String::from).collect())
}

/// The first word of `@@BLK <key>`, or a failure quoting the console.
fn mark_word(console: &str, key: &str) -> Result<String> {
    mark(console, key)
        .and_then(|w| w.into_iter().next())
        .with_context(|| {
            format!(
                "no `{MARK} {key} ...` line on the console\n{}",
                quote(console)
            )
        })
}

/// Whether a `@@BLK <key> STATUS MESSAGE...` line reports a failed command
/// (STATUS not 0) whose message holds `text`.
fn failed_with(line: &str, text: &str) -> bool {
    line.split_whitespace()
        .next()
        .is_some_and(|status| status != "0")
        && line.contains(text)
}

/// The last `m step NAME` the payload reached.
fn last_step(console: &str) -> String {
    let needle = format!("{MARK} step ");
    console
        .lines()
        .filter_map(|l| l.find(&needle).map(|i| l[i + needle.len()..].trim()))
        .next_back()
        .map_or("before its first step".into(), |s| format!("at step `{s}`"))
}

pub(crate) fn quote(console: &str) -> String {
    format!(
        "--- last {TAIL} console lines ---\n{}",
        boot::tail(console, TAIL)
    )
}

/// A boot of `kernel` running `script` (after [`PRELUDE`]) with `args` on
/// the kernel command line and, if given, `hostfs` mounted on /host.
pub(crate) fn spec(
    kernel: &Path,
    script: &str,
    args: &[String],
    hostfs: Option<&Path>,
) -> BootSpec {
    let cmd = vec!["/bin/sh".into(), "-c".into(), format!("{PRELUDE}{script}")];
    let mut s = BootSpec::new(kernel.to_path_buf(), cmd);
    // `quiet`, but with the kernel's warnings (level 4) on the console, so
    // that every boot can be checked for them (see `exited_ok`).
    s.extra_args = vec!["quiet".into(), "loglevel=5".into()];
    s.extra_args.extend(args.iter().cloned());
    s.hostfs_root = hostfs.map(Path::to_path_buf);
    s.timeout = BOOT_LIMIT;
    s
}

/// Fails, naming the step and quoting the console, unless the payload
/// exited 0 and the kernel reported no WARNING, BUG or Oops.
pub(crate) fn exited_ok(out: &boot::BootOutcome) -> Result<()> {
    if out.exit_code != 0 {
        bail!(
            "the payload failed {} (exit status {})\n{}",
            last_step(&out.console),
            out.exit_code,
            quote(&out.console)
        );
    }
    if let Some(report) = kernel_report(&out.console) {
        bail!(
            "the kernel reported a problem: {}\n{}",
            report.trim(),
            quote(&out.console)
        );
    }
    Ok(())
}

/// The first kernel WARNING, BUG or Oops line of a console.
fn kernel_report(console: &str) -> Option<&str> {
    console
        .lines()
        .find(|l| l.contains("WARNING: CPU:") || l.contains("BUG: ") || l.contains("Oops: "))
}

/// Boots, runs the payload to its end and returns the console; fails unless
/// the payload exited 0 and the kernel powered off.
fn boot_ok(ctx: &Ctx, spec: &BootSpec) -> Result<String> {
    let out = Guest::start(spec, ctx)?.wait()?;
    exited_ok(&out)?;
    Ok(out.console)
}

/// A case's temporary directory.
fn workdir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("uml-block-")
        .tempdir()
        .context("creating a temporary directory")
}

pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A mount made by a case (a small tmpfs, a read-only bind mount),
/// unmounted when dropped, so that a failing case leaves none behind.
struct Mount {
    at: PathBuf,
    mounted: bool,
}

impl Mount {
    /// A tmpfs of `size` (e.g. `4m`) on `at`.
    fn tmpfs(at: &Path, size: &str) -> Result<Mount> {
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(format!("size={size},mode=0700").as_str()),
        )
        .with_context(|| format!("mounting a {size} tmpfs on {}", at.display()))?;
        Ok(Mount {
            at: at.to_path_buf(),
            mounted: true,
        })
    }

    /// `src` bound on `at`, read-only: opening a file there for writing
    /// fails with EROFS, even for root.
    fn read_only_bind(src: &Path, at: &Path) -> Result<Mount> {
        nix::mount::mount(Some(src), at, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .with_context(|| format!("bind-mounting {} on {}", src.display(), at.display()))?;
        // From here on the guard unmounts, whatever fails next.
        let m = Mount {
            at: at.to_path_buf(),
            mounted: true,
        };
        nix::mount::mount(
            None::<&str>,
            at,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .with_context(|| format!("remounting {} read-only", at.display()))?;
        Ok(m)
    }

    /// Unmounts and checks that the mount is gone. The kernel that used it
    /// is dead by now; its files may take a moment to close.
    fn unmount(&mut self) -> Result<()> {
        if !self.mounted {
            return Ok(());
        }
        self.mounted = false;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match nix::mount::umount2(&self.at, MntFlags::empty()) {
                Ok(()) => break,
                Err(nix::errno::Errno::EBUSY) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(nix::errno::Errno::EBUSY) => {
                    nix::mount::umount2(&self.at, MntFlags::MNT_DETACH).ok();
                    bail!(
                        "{} was still busy after 5 s (detached it)",
                        self.at.display()
                    );
                }
                Err(e) => bail!("unmounting {}: {e}", self.at.display()),
            }
        }
        if mounted_at(&self.at)? {
            bail!("{} is still a mount point after umount", self.at.display());
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            eprintln!("uml-harness: {e:#}");
        }
    }
}

/// Whether something is mounted on `at` (field 5 of /proc/self/mountinfo).
fn mounted_at(at: &Path) -> Result<bool> {
    let info = fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    let at = at.to_string_lossy();
    Ok(info
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(at.as_ref())))
}

// ---------------------------------------------------------------------------
// host_ubd_ext4

/// The files the guest writes: path in the file system, length.
const EXT4_FILES: &[(&str, usize)] = &[
    ("a.bin", (1 << 20) + 7),
    ("dir/b.bin", 196_609),
    ("dir/c.bin", 3_000_017),
];
/// Where the guest's programs go in the hostfs directory.
const GUEST_BIN: &str = "bin";

/// The guest's side: the host's mke2fs and e2fsck (`interp` is their
/// staged ELF interpreter), files of the patterns `seeds`, read back after
/// a remount, then a read-only e2fsck.
fn ext4_script(interp: &str, seeds: &[u64]) -> String {
    let mut s = format!(
        "X=\"/host/{GUEST_BIN}/lib/{interp} --library-path /host/{GUEST_BIN}/lib\"; \
         m step mkfs; $X /host/{GUEST_BIN}/mke2fs -q -F -t ext4 /dev/ubda; \
         m step mount; mkdir -p /mnt/t; mount -t ext4 /dev/ubda /mnt/t; mkdir /mnt/t/dir; \
         m step write; "
    );
    for ((path, len), seed) in EXT4_FILES.iter().zip(seeds) {
        s.push_str(&format!(
            "{} pattern {seed:#x} {len} >/mnt/t/{path}; ",
            proto::GUEST
        ));
    }
    s.push_str(
        "m step umount; umount /mnt/t; m step remount; mount -t ext4 -o ro /dev/ubda /mnt/t; ",
    );
    for (path, _) in EXT4_FILES {
        s.push_str(&format!("m sha {path} $(sha256sum </mnt/t/{path}); "));
    }
    s.push_str(&format!(
        "umount /mnt/t; m step fsck; $X /host/{GUEST_BIN}/e2fsck -f -n /dev/ubda; m step done"
    ));
    s
}

fn ext4_case(ctx: &Ctx, kernel: &Path) -> Result<String> {
    let dir = workdir()?;
    let hostfs = dir.path().join("hostfs");
    fs::create_dir(&hostfs)?;
    let interp = suite::stage_programs(&hostfs.join(GUEST_BIN), &["mke2fs", "e2fsck"])
        .context("staging mke2fs and e2fsck (package e2fsprogs) for the guest")?;
    let image = dir.path().join("ext4.img");
    sparse_file(&image, FS_SIZE)?;
    let base = fresh_seed();
    let seeds: Vec<u64> = (0..EXT4_FILES.len() as u64)
        .map(|k| seed(base, k))
        .collect();
    let console = boot_ok(
        ctx,
        &spec(
            kernel,
            &ext4_script(&interp, &seeds),
            &[format!("ubd0={}", image.display())],
            Some(&hostfs),
        ),
    )?;
    // The guest read back what it wrote, after a remount.
    for ((path, len), seed) in EXT4_FILES.iter().zip(&seeds) {
        let got = mark_word(&console, &format!("sha {path}"))?;
        let want = sha256_hex(&suite::pattern_bytes(*seed, *len));
        if got != want {
            bail!(
                "the guest read {path} back with SHA-256 {got}, it wrote {want}\n{}",
                quote(&console)
            );
        }
    }
    let len = fs::metadata(&image)?.len();
    if len != FS_SIZE {
        bail!("the image is now {len} bytes, was {FS_SIZE}");
    }
    let fsck = host_fsck(&image)?;
    let mut total = 0;
    for ((path, len), seed) in EXT4_FILES.iter().zip(&seeds) {
        let got = debugfs_cat(&image, &format!("/{path}"))?;
        if let Some(why) = pattern_mismatch(&got, *seed, *len) {
            bail!("/{path}, as the host's debugfs reads it from the image, {why}");
        }
        total += len;
    }
    Ok(format!(
        "guest mke2fs, {} files ({} KiB) written, read back, guest e2fsck clean; host \
         e2fsck clean ({fsck}) and debugfs reads every file intact; image {} KiB allocated",
        EXT4_FILES.len(),
        total / 1024,
        allocated(&image)? / 1024
    ))
}

// ---------------------------------------------------------------------------
// host_ubd_cow

/// The backing file system's file, its length, and the guest's changes:
/// a new file and a 12 KiB overwrite at 8 KiB into the old one.
const COW_BASE: (&str, usize) = ("base.bin", 400_003);
const COW_NEW: (&str, usize) = ("new.bin", (1 << 20) + 9);
const COW_PATCH_AT: usize = 8192;
const COW_PATCH_LEN: usize = 12288;

/// Prints the SHA-256 of the files of the COW file system as `sha NAME`.
fn cow_shas(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("m sha {n} $(sha256sum </mnt/c/{n}); "))
        .collect()
}

/// First boot: read the backing's file, then change the file system.
fn cow_modify_script(new_seed: u64, patch_seed: u64) -> String {
    format!(
        "m step mount; mkdir -p /mnt/c; mount -t ext4 /dev/ubda /mnt/c; {shas}\
         m step write; {g} pattern {new_seed:#x} {new_len} >/mnt/c/{new}; \
         {g} pattern {patch_seed:#x} {COW_PATCH_LEN} | dd of=/mnt/c/{base} bs=4096 \
         seek={seek} conv=notrunc iflag=fullblock 2>/dev/null; \
         m step umount; umount /mnt/c; m step done",
        shas = cow_shas(&[COW_BASE.0]),
        g = proto::GUEST,
        new = COW_NEW.0,
        new_len = COW_NEW.1,
        base = COW_BASE.0,
        seek = COW_PATCH_AT / 4096,
    )
}

/// Later boots: report what the file system holds.
fn cow_look_script() -> String {
    format!(
        "m step mount; mkdir -p /mnt/c; mount -t ext4 /dev/ubda /mnt/c; {shas}\
         if [ -e /mnt/c/{new} ]; then m sha {new} $(sha256sum </mnt/c/{new}); \
         else m sha {new} none; fi; m step umount; umount /mnt/c; m step done",
        shas = cow_shas(&[COW_BASE.0]),
        new = COW_NEW.0,
    )
}

/// The fields of a COW v3 header (`struct cow_header_v3`, big-endian).
#[derive(Debug, PartialEq, Eq)]
struct CowHeader {
    magic: [u8; 4],
    version: u32,
    mtime: u32,
    size: u64,
    sectorsize: u32,
    alignment: u32,
    cow_format: u32,
    backing_file: String,
}

/// Size of `struct cow_header_v3` (packed): 7 fields and a 4096-byte path.
const COW_V3_HEADER_LEN: usize = 4 + 4 + 4 + 8 + 4 + 4 + 4 + 4096;

fn parse_cow_header(b: &[u8]) -> Result<CowHeader> {
    if b.len() < COW_V3_HEADER_LEN {
        bail!(
            "{} bytes, shorter than a COW v3 header ({COW_V3_HEADER_LEN})",
            b.len()
        );
    }
    let u32_at = |o: usize| u32::from_be_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let path = &b[32..COW_V3_HEADER_LEN];
    let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
    Ok(CowHeader {
        magic: b[0..4].try_into().expect("4 bytes"),
        version: u32_at(4),
        mtime: u32_at(8),
        size: u64::from_be_bytes(b[12..20].try_into().expect("8 bytes")),
        sectorsize: u32_at(20),
        alignment: u32_at(24),
        cow_format: u32_at(28),
        backing_file: String::from_utf8_lossy(&path[..end]).into_owned(),
    })
}

/// The size of a fresh COW v3 file over a backing file of `size` bytes
/// (`init_cow_file`/`cow_sizes`): header and bitmap rounded up to the
/// alignment, then the data.
fn cow_file_size(size: u64, sectorsize: u64, align: u64) -> u64 {
    let round = |x: u64| x.div_ceil(align) * align;
    let bitmap_offset = round(COW_V3_HEADER_LEN as u64);
    let bitmap_len = size.div_ceil(sectorsize).div_ceil(8);
    round(bitmap_offset + bitmap_len) + size
}

/// The COW file the kernel made for `backing`: a v3 header naming it, the
/// size the format gives, and sparse. Returns a description.
fn check_cow_file(cow: &Path, backing: &Path) -> Result<String> {
    let meta = fs::metadata(cow)
        .with_context(|| format!("the COW file {} was not created", cow.display()))?;
    let mut head = vec![0u8; COW_V3_HEADER_LEN];
    File::open(cow)?
        .read_exact(&mut head)
        .with_context(|| format!("reading the header of {}", cow.display()))?;
    let h = parse_cow_header(&head)?;
    let bm = fs::metadata(backing)?;
    let canon = fs::canonicalize(backing)?;
    let want = CowHeader {
        magic: COW_MAGIC,
        version: 3,
        mtime: bm.mtime() as u32,
        size: bm.len(),
        sectorsize: 512,
        alignment: 4096,
        cow_format: 0,
        backing_file: canon.to_string_lossy().into_owned(),
    };
    if h != want {
        bail!(
            "the COW header of {} is {h:?} (first bytes {:02x?}), expected {want:?}",
            cow.display(),
            &head[..8]
        );
    }
    let size = cow_file_size(bm.len(), 512, 4096);
    if meta.len() != size {
        bail!(
            "{} is {} bytes, a COW v3 file over {} bytes is {size}",
            cow.display(),
            meta.len(),
            bm.len()
        );
    }
    let used = meta.blocks() * 512;
    if used * 4 > meta.len() {
        bail!(
            "{} is not sparse: {used} bytes allocated of {}",
            cow.display(),
            meta.len()
        );
    }
    Ok(format!(
        "COW v3 header (MOOO, version 3, {}), {} KiB allocated of {} KiB",
        h.backing_file,
        used / 1024,
        meta.len() / 1024
    ))
}

/// The guest's `sha NAME` must be `want` (a SHA-256, or `none`).
fn expect_sha(console: &str, name: &str, want: &str, boot: &str) -> Result<()> {
    let got = mark_word(console, &format!("sha {name}"))?;
    if got != want {
        bail!(
            "{boot}: the guest sees {name} with SHA-256 {got}, expected {want}\n{}",
            quote(console)
        );
    }
    Ok(())
}

fn cow_case(ctx: &Ctx, kernel: &Path) -> Result<String> {
    let dir = workdir()?;
    let d = dir.path();
    let base = fresh_seed();
    let (base_seed, new_seed, patch_seed) = (seed(base, 0), seed(base, 1), seed(base, 2));
    let src = d.join("src");
    fs::create_dir(&src)?;
    pattern_file(&src.join(COW_BASE.0), base_seed, COW_BASE.1)?;
    let backing = d.join("backing.img");
    host_mkfs(&backing, &src)?;
    let before = Fingerprint::of(&backing)?;

    let old_base = suite::pattern_bytes(base_seed, COW_BASE.1);
    let mut new_base = old_base.clone();
    new_base[COW_PATCH_AT..COW_PATCH_AT + COW_PATCH_LEN]
        .copy_from_slice(&suite::pattern_bytes(patch_seed, COW_PATCH_LEN));
    let new_file = suite::pattern_bytes(new_seed, COW_NEW.1);
    let (old_sha, new_base_sha, new_sha) = (
        sha256_hex(&old_base),
        sha256_hex(&new_base),
        sha256_hex(&new_file),
    );

    // 1. ubd0=cow,backing: the kernel creates the COW file.
    let cow = d.join("disk.cow");
    let console = boot_ok(
        ctx,
        &spec(
            kernel,
            &cow_modify_script(new_seed, patch_seed),
            &[format!("ubd0={},{}", cow.display(), backing.display())],
            None,
        ),
    )
    .context("boot 1 (ubd0=cow,backing)")?;
    expect_sha(&console, COW_BASE.0, &old_sha, "boot 1 (ubd0=cow,backing)")?;
    before.same(&backing, "while the guest wrote through a COW file")?;
    let cow_fact = check_cow_file(&cow, &backing)?;

    // 2. ubd0=cow alone: the header names the backing file.
    let console = boot_ok(
        ctx,
        &spec(
            kernel,
            &cow_look_script(),
            &[format!("ubd0={}", cow.display())],
            None,
        ),
    )
    .context("boot 2 (ubd0=cow)")?;
    expect_sha(&console, COW_BASE.0, &new_base_sha, "boot 2 (ubd0=cow)")?;
    expect_sha(&console, COW_NEW.0, &new_sha, "boot 2 (ubd0=cow)")?;
    before.same(&backing, "after the second boot on the COW file")?;

    // 3. uml_moo merges backing and COW file into a new image.
    let merged = d.join("merged.img");
    host_tool(
        "uml_moo",
        &[cow.as_os_str(), merged.as_os_str()],
        "uml-utilities",
    )?;
    before.same(&backing, "after uml_moo")?;
    let fsck = host_fsck(&merged).context("the image uml_moo merged")?;
    check_host_file(&merged, &format!("/{}", COW_NEW.0), &new_file)?;
    check_host_file(&merged, &format!("/{}", COW_BASE.0), &new_base)?;
    fs::remove_file(&merged)?;

    // 4. A COW file made by uml_mkcow, given as cow:backing.
    let mkcow = d.join("mkcow.cow");
    host_tool(
        "uml_mkcow",
        &[mkcow.as_os_str(), backing.as_os_str()],
        "uml-utilities",
    )?;
    let console = boot_ok(
        ctx,
        &spec(
            kernel,
            &cow_look_script(),
            &[format!("ubd0={}:{}", mkcow.display(), backing.display())],
            None,
        ),
    )
    .context("boot 3 (ubd0=uml_mkcow-file:backing)")?;
    let boot3 = "boot 3 (ubd0=uml_mkcow-file:backing)";
    expect_sha(&console, COW_BASE.0, &old_sha, boot3)?;
    expect_sha(&console, COW_NEW.0, "none", boot3)?;
    before.same(&backing, "after the boot on the uml_mkcow file")?;
    Ok(format!(
        "backing unchanged (SHA-256 and mtime) over 3 boots and uml_moo; {cow_fact}; \
         changes seen with ubd0=cow alone and in the uml_moo image (host e2fsck: {fsck}); \
         uml_mkcow file opened with cow:backing shows the backing"
    ))
}

// ---------------------------------------------------------------------------
// host_ubd_readonly

/// Size of the read-only image.
const RO_LEN: usize = 8 << 20;

/// Reads the device's read-only flag and contents, then tries to write.
fn readonly_script() -> String {
    "m ro $(cat /sys/block/ubda/ro); m sha $(sha256sum </dev/ubda); \
     r=0; e=$(dd if=/dev/zero of=/dev/ubda bs=4096 count=1 2>&1) || r=$?; m write $r $e; \
     r=0; e=$(dd if=/dev/zero of=/dev/ubda bs=4096 count=1 oflag=direct 2>&1) || r=$?; \
     m dwrite $r $e; m step done"
        .into()
}

/// One boot on a device that must be read-only; `how` names the way.
fn readonly_boot(ctx: &Ctx, kernel: &Path, arg: String, image: &Path, how: &str) -> Result<()> {
    let before = Fingerprint::of(image)?;
    let console =
        boot_ok(ctx, &spec(kernel, &readonly_script(), &[arg], None)).context(how.to_string())?;
    let ro = mark_word(&console, "ro")?;
    if ro != "1" {
        bail!(
            "{how}: /sys/block/ubda/ro is {ro}, expected 1\n{}",
            quote(&console)
        );
    }
    let sha = mark_word(&console, "sha")?;
    if sha != before.sha256 {
        bail!(
            "{how}: the guest reads the device with SHA-256 {sha}, the file has {}",
            before.sha256
        );
    }
    // blkdev_write_iter refuses writes to a read-only disk with EPERM.
    for (key, what) in [("write", "write"), ("dwrite", "O_DIRECT write")] {
        let line = mark_line(&console, key)
            .with_context(|| format!("no `{MARK} {key}` line\n{}", quote(&console)))?;
        if !failed_with(&line, EPERM_TEXT) {
            bail!(
                "{how}: a {what} to /dev/ubda gave `{line}` (exit status first), expected a \
                 failure with {EPERM_TEXT} (EPERM)"
            );
        }
    }
    before.same(image, &format!("after {how}"))
}

fn readonly_case(ctx: &Ctx, kernel: &Path) -> Result<String> {
    let dir = workdir()?;
    let rw = dir.path().join("rw");
    fs::create_dir(&rw)?;
    let image = rw.join("ro.img");
    pattern_file(&image, fresh_seed(), RO_LEN)?;
    let flag = "ubd0r= (flag r)";
    readonly_boot(
        ctx,
        kernel,
        format!("ubd0r={}", image.display()),
        &image,
        flag,
    )?;
    if !is_root() {
        return Ok(format!(
            "{flag}: read-only, writes fail with EPERM, file unchanged; the fallback for an \
             unwritable file was not checked (root writes through file modes; a read-only \
             bind mount needs root)"
        ));
    }
    // Root writes through a 0444 mode, and an immutable file refuses the
    // open with EPERM, which the driver does not take for a read-only
    // file: a read-only bind mount gives EROFS, on which it falls back.
    let ro = dir.path().join("ro");
    fs::create_dir(&ro)?;
    let mut mount = Mount::read_only_bind(&rw, &ro)?;
    let through = ro.join("ro.img");
    match OpenOptions::new().write(true).open(&through) {
        Err(e) if e.raw_os_error() == Some(nix::libc::EROFS) => {}
        other => bail!(
            "opening {} for writing gave {other:?}, expected EROFS",
            through.display()
        ),
    }
    let how = "ubd0= on a read-only bind mount (EROFS fallback)";
    let r = readonly_boot(
        ctx,
        kernel,
        format!("ubd0={}", through.display()),
        &image,
        how,
    );
    let unmounted = mount.unmount();
    r?;
    unmounted?;
    Ok(format!(
        "{flag} and {how}: /sys/block/ubda/ro is 1, buffered and O_DIRECT writes fail with \
         EPERM, the file is unchanged (SHA-256 and mtime)"
    ))
}

// ---------------------------------------------------------------------------
// host_ubd_odd_size

/// The odd file size and the device size it rounds up to (sectors of 512).
const ODD_LEN: usize = 1575;
const ODD_DEV: usize = 2048;

/// The device's size, then its bytes as hex: one 4 KiB read through the
/// page cache (the device ends after 2 KiB), and one O_DIRECT read per
/// sector (the guest program's, with an aligned buffer: busybox dd drops
/// O_DIRECT when its buffer is not aligned).
fn odd_size_script() -> String {
    format!(
        "m size $(blockdev --getsize64 /dev/ubda) $(cat /sys/block/ubda/size); \
         m data $(dd if=/dev/ubda bs=4096 count=1 2>/dev/null | xxd -p | tr -d '\\n'); \
         m step direct; for o in 0 512 1024 1536; do {} read-direct /dev/ubda $o 512; done \
         >/tmp/d; m direct $(xxd -p </tmp/d | tr -d '\\n'); m step done",
        proto::GUEST
    )
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("not hex: {:?}", &s[..s.len().min(64)]);
    }
    Ok((0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("checked hex"))
        .collect())
}

/// Why the bytes the guest read are not the file's followed by zeros.
fn odd_mismatch(got: &[u8], file: &[u8], dev_len: usize) -> Option<String> {
    if got.len() != dev_len {
        return Some(format!("{} bytes, expected {dev_len}", got.len()));
    }
    if let Some(i) = got.iter().zip(file).position(|(a, b)| a != b) {
        return Some(format!("byte {i} differs from the file"));
    }
    let tail = &got[file.len()..];
    let i = tail.iter().position(|&b| b != 0)?;
    let mut why = format!(
        "bytes {}..{dev_len} (past the file's end) are not zero: the first non-zero is at \
         {}",
        file.len(),
        file.len() + i
    );
    // A short read retried without advancing the offset repeats the file.
    let probe = &tail[..tail.len().min(16)];
    if let Some(o) = file.windows(probe.len()).position(|w| w == probe) {
        why.push_str(&format!(
            "; they start with the file's bytes {o}..{} (a short read at the file's end \
             retried from the same offset?)",
            o + probe.len()
        ));
    }
    Some(why)
}

fn odd_size_case(ctx: &Ctx, kernel: &Path) -> Result<String> {
    let dir = workdir()?;
    let image = dir.path().join("odd.img");
    pattern_file(&image, fresh_seed(), ODD_LEN)?;
    let file = fs::read(&image)?;
    let console = boot_ok(
        ctx,
        &spec(
            kernel,
            &odd_size_script(),
            &[format!("ubd0={}", image.display())],
            None,
        ),
    )?;
    let size = mark(&console, "size").unwrap_or_default();
    let want = [ODD_DEV.to_string(), (ODD_DEV / 512).to_string()];
    if size != want {
        bail!(
            "a {ODD_LEN}-byte file gives a device of {size:?} (bytes, sectors), expected \
             {want:?}\n{}",
            quote(&console)
        );
    }
    let mut problems = Vec::new();
    for (key, what) in [
        ("data", "a 4 KiB read through the page cache"),
        ("direct", "four 512-byte O_DIRECT reads, one per sector"),
    ] {
        let got =
            unhex(&mark_word(&console, key)?).with_context(|| format!("the hex of {what}"))?;
        if let Some(why) = odd_mismatch(&got, &file, ODD_DEV) {
            problems.push(format!("{what}: {why}"));
        }
    }
    if !problems.is_empty() {
        bail!(
            "the device of a {ODD_LEN}-byte file: {}",
            problems.join("; ")
        );
    }
    Ok(format!(
        "{ODD_LEN}-byte file: {ODD_DEV}-byte device; buffered and O_DIRECT reads give the \
         file's bytes, then zeros"
    ))
}

// ---------------------------------------------------------------------------
// host_ubd_trim

/// Data the guest writes, then frees and trims.
const TRIM_LEN: u64 = 16 << 20;
/// How much of it the host file must give back at least.
const TRIM_MIN_FREED: u64 = 12 << 20;
/// The `t` device's size.
const NOTRIM_LEN: usize = 1 << 20;

fn trim_script(seed: u64) -> String {
    format!(
        "m discard $(cat /sys/block/ubda/queue/discard_max_bytes) \
         $(cat /sys/block/ubdb/queue/discard_max_bytes); \
         m step mount; mkdir -p /mnt/t; mount -t ext4 /dev/ubda /mnt/t; \
         m step write; {g} pattern {seed:#x} {TRIM_LEN} >/mnt/t/big; sync; m written; \
         m step wait; {g} wait-file /host/go 30; \
         m step trim; rm /mnt/t/big; sync; m fstrim $(fstrim -v /mnt/t); \
         umount /mnt/t; r=0; e=$(blkdiscard /dev/ubdb 2>&1) || r=$?; m notrim $r $e; \
         m step done",
        g = proto::GUEST
    )
}

fn trim_case(ctx: &Ctx, kernel: &Path) -> Result<String> {
    let dir = workdir()?;
    let hostfs = dir.path().join("hostfs");
    fs::create_dir(&hostfs)?;
    let empty = dir.path().join("empty");
    fs::create_dir(&empty)?;
    let image = dir.path().join("trim.img");
    host_mkfs(&image, &empty)?;
    let notrim = dir.path().join("notrim.img");
    pattern_file(&notrim, fresh_seed(), NOTRIM_LEN)?;
    let notrim_before = Fingerprint::of(&notrim)?;
    let s = spec(
        kernel,
        &trim_script(fresh_seed()),
        &[
            format!("ubd0={}", image.display()),
            format!("ubd1t={}", notrim.display()),
        ],
        Some(&hostfs),
    );
    let empty_alloc = allocated(&image)?;
    let mut guest = Guest::start(&s, ctx)?;
    guest.wait_for_console(&format!("{MARK} written"), STEP_LIMIT)?;
    let full = allocated(&image)?;
    release(&hostfs, "go")?;
    let out = guest.wait()?;
    exited_ok(&out)?;
    let console = &out.console;
    let trimmed = allocated(&image)?;
    let discard = mark(console, "discard").unwrap_or_default();
    if discard.len() != 2 || discard[0] == "0" || discard[1] != "0" {
        bail!(
            "discard_max_bytes of ubda and ubdb (flag t) are {discard:?}, expected non-zero \
             and 0\n{}",
            quote(console)
        );
    }
    if full < empty_alloc + TRIM_LEN {
        bail!(
            "after the guest wrote and synced {} MiB, the image has {} KiB allocated ({} KiB \
             before): the data did not reach the host file",
            TRIM_LEN >> 20,
            full / 1024,
            empty_alloc / 1024
        );
    }
    if full.saturating_sub(trimmed) < TRIM_MIN_FREED {
        bail!(
            "fstrim after deleting the {} MiB file shrank the image's allocation only from \
             {} KiB to {} KiB (guest: {})",
            TRIM_LEN >> 20,
            full / 1024,
            trimmed / 1024,
            mark_line(console, "fstrim").unwrap_or_default()
        );
    }
    let notrim_line = mark_line(console, "notrim").unwrap_or_default();
    if !failed_with(&notrim_line, EOPNOTSUPP_TEXT) {
        bail!(
            "blkdiscard on ubdb (flag t) gave `{notrim_line}` (exit status first), expected a \
             failure with {EOPNOTSUPP_TEXT}"
        );
    }
    notrim_before.same(&notrim, "after blkdiscard on the t device")?;
    Ok(format!(
        "allocated {} KiB empty, {} KiB with the data, {} KiB after fstrim ({}); \
         discard_max_bytes {}; flag t: discard_max_bytes 0, blkdiscard refused, file unchanged",
        empty_alloc / 1024,
        full / 1024,
        trimmed / 1024,
        mark_line(console, "fstrim").unwrap_or_default(),
        discard[0]
    ))
}

// ---------------------------------------------------------------------------
// host_ubd_hotplug

/// The plugged file system's file and the one the guest writes there.
const HOT_BASE: (&str, usize) = ("base.bin", 200_017);
const HOT_NEW: (&str, usize) = ("new.bin", 300_001);

fn hotplug_script(new_seed: u64) -> String {
    format!(
        "if [ -e /dev/ubdb ]; then m early; exit 4; fi; m up; m step wait-ubdb; i=0; while [ ! -b /dev/ubdb ]; do i=$((i+1)); \
         [ $i -lt 400 ]; sleep 0.05; done; m seen $(cat /sys/block/ubdb/size); \
         m step mount; mkdir -p /mnt/h; mount -t ext4 /dev/ubdb /mnt/h; \
         m sha $(sha256sum </mnt/h/{base}); {g} pattern {new_seed:#x} {new_len} >/mnt/h/{new}; \
         m mounted; m step wait-1; {g} wait-file /host/go1 30; \
         m step umount; umount /mnt/h; m unmounted; m step wait-2; {g} wait-file /host/go2 30; \
         m step gone; i=0; while [ -e /dev/ubdb ]; do i=$((i+1)); [ $i -lt 400 ]; sleep 0.05; \
         done; if grep -q ubdb /proc/partitions; then m listed; exit 3; fi; m gone; m step done",
        g = proto::GUEST,
        base = HOT_BASE.0,
        new = HOT_NEW.0,
        new_len = HOT_NEW.1,
    )
}

/// `uml_mconsole` must answer OK; returns the reply.
fn mc_ok(sock: &Path, args: &[&str]) -> Result<String> {
    let out = suite::mconsole(sock, args)?;
    let line = out.lines().next().unwrap_or("").trim().to_string();
    if !line.starts_with("OK") {
        bail!("mconsole {} answered {line:?}, expected OK", args.join(" "));
    }
    Ok(line)
}

fn hotplug_case(ctx: &Ctx, kernel: &Path) -> Result<String> {
    let dir = workdir()?;
    let hostfs = dir.path().join("hostfs");
    fs::create_dir(&hostfs)?;
    let disk0 = dir.path().join("disk0.img");
    sparse_file(&disk0, 8 << 20)?;
    let src = dir.path().join("src");
    fs::create_dir(&src)?;
    let base = fresh_seed();
    let (base_seed, new_seed) = (seed(base, 0), seed(base, 1));
    pattern_file(&src.join(HOT_BASE.0), base_seed, HOT_BASE.1)?;
    let hot = dir.path().join("hot.img");
    host_mkfs(&hot, &src)?;
    let s = spec(
        kernel,
        &hotplug_script(new_seed),
        &[format!("ubd0={}", disk0.display())],
        Some(&hostfs),
    );
    let mut guest = Guest::start(&s, ctx)?;
    let sock = guest.umid_dir().join("mconsole");
    guest.wait_for_console(&format!("{MARK} up"), STEP_LIMIT)?;
    mc_ok(&sock, &["config", &format!("ubdb={}", hot.display())])?;
    let get = mc_ok(&sock, &["config", "ubdb"])?;
    if !get.contains(&hot.display().to_string()) {
        bail!(
            "mconsole `config ubdb` answered {get:?}, expected OK and {}",
            hot.display()
        );
    }
    guest.wait_for_console(&format!("{MARK} mounted"), STEP_LIMIT)?;
    let busy = suite::mconsole_reply(&sock, &["remove", "ubdb"])?;
    let busy_line = busy.stdout.lines().next().unwrap_or("").trim().to_string();
    if busy.status.success() || !busy_line.starts_with("ERR") {
        bail!(
            "mconsole `remove ubdb` while ubdb is mounted answered {busy_line:?} ({}), \
             expected ERR (the device is open)",
            busy.status
        );
    }
    release(&hostfs, "go1")?;
    guest.wait_for_console(&format!("{MARK} unmounted"), STEP_LIMIT)?;
    mc_ok(&sock, &["remove", "ubdb"]).context("removing ubdb after the unmount")?;
    release(&hostfs, "go2")?;
    let out = guest.wait()?;
    exited_ok(&out)?;
    let console = &out.console;
    let sectors = mark_word(console, "seen")?;
    let want_sectors = (FS_SIZE / 512).to_string();
    if sectors != want_sectors {
        bail!("the plugged ubdb has {sectors} sectors, expected {want_sectors}");
    }
    let want_sha = sha256_hex(&suite::pattern_bytes(base_seed, HOT_BASE.1));
    let sha = mark_word(console, "sha")?;
    if sha != want_sha {
        bail!(
            "the guest reads {} on the plugged disk with SHA-256 {sha}, expected {want_sha}",
            HOT_BASE.0
        );
    }
    if mark_line(console, "gone").is_none() {
        bail!("no `{MARK} gone` line\n{}", quote(console));
    }
    let fsck = host_fsck(&hot)?;
    check_host_file(
        &hot,
        &format!("/{}", HOT_NEW.0),
        &suite::pattern_bytes(new_seed, HOT_NEW.1),
    )?;
    Ok(format!(
        "config ubdb= ({get}), mounted and written; remove while mounted: {busy_line}; \
         remove after umount: OK, /dev/ubdb and the partition gone; host e2fsck clean \
         ({fsck}), the guest's file intact"
    ))
}

// ---------------------------------------------------------------------------
// host_ubd_io_error

/// The tmpfs under the image, and the image's (sparse) size.
const SMALL_FS: &str = "4m";
const BIG_IMAGE: u64 = 64 << 20;

/// 8 MiB with O_DIRECT into a file on a 4 MiB tmpfs, then 8 MiB buffered
/// with fsync at 16 MiB; then the device must still read.
fn io_error_script() -> String {
    "m step direct; r=0; \
     e=$(dd if=/dev/urandom of=/dev/ubda bs=1M count=8 oflag=direct 2>&1) || r=$?; \
     m direct $r $e; m step fsync; r=0; \
     e=$(dd if=/dev/urandom of=/dev/ubda bs=1M count=8 seek=16 conv=fsync 2>&1) || r=$?; \
     m fsync $r $e; \
     m step read; dd if=/dev/ubda of=/dev/null bs=1M count=2 2>/dev/null; m alive; m step done"
        .into()
}

fn io_error_case(ctx: &Ctx, kernel: &Path) -> Result<String> {
    if !is_root() {
        return Ok("skipped: needs root to mount a small tmpfs".into());
    }
    let dir = workdir()?;
    let small = dir.path().join("small");
    fs::create_dir(&small)?;
    // Declared after `dir`, so dropped (unmounted) before it is removed.
    let mut mount = Mount::tmpfs(&small, SMALL_FS)?;
    let r = io_error_boot(ctx, kernel, &small);
    let unmounted = mount
        .unmount()
        .context("unmounting the small tmpfs after the boot");
    let fact = r?;
    unmounted?;
    Ok(fact)
}

fn io_error_boot(ctx: &Ctx, kernel: &Path, small: &Path) -> Result<String> {
    let image = small.join("big.img");
    sparse_file(&image, BIG_IMAGE)?;
    let out = Guest::start(
        &spec(
            kernel,
            &io_error_script(),
            &[format!("ubd0={}", image.display())],
            None,
        ),
        ctx,
    )?
    .wait()
    .context("the kernel must survive I/O errors and power off normally")?;
    exited_ok(&out)?;
    let console = &out.console;
    // map_error() in ubd_kern.c passes the host's ENOSPC on (BLK_STS_NOSPC);
    // a failed buffered write-back is EIO to fsync.
    let mut seen = Vec::new();
    for (key, what, want, errno) in [
        ("direct", "an O_DIRECT write", ENOSPC_TEXT, "ENOSPC"),
        ("fsync", "a buffered write with fsync", EIO_TEXT, "EIO"),
    ] {
        let line = mark_line(console, key)
            .with_context(|| format!("no `{MARK} {key}` line\n{}", quote(console)))?;
        if !failed_with(&line, want) {
            bail!(
                "{what} beyond the full host tmpfs gave `{line}` (exit status first), expected \
                 a failure with {want} ({errno})\n{}",
                quote(console)
            );
        }
        seen.push(format!("{what}: {errno}"));
    }
    if mark_line(console, "alive").is_none() {
        bail!(
            "the device did not read after the errors\n{}",
            quote(console)
        );
    }
    let kernel_lines = console
        .lines()
        .filter(|l| l.contains("critical space allocation error") || l.contains("I/O error"))
        .count();
    Ok(format!(
        "host file on a {SMALL_FS} tmpfs: {}; {kernel_lines} kernel error lines; the device \
         still reads and the kernel powered off normally; tmpfs unmounted",
        seen.join(", ")
    ))
}

// ---------------------------------------------------------------------------
// host_ubd_sync_halt

/// Data written to the raw device before the halt: well below the guest's
/// background write-back threshold.
const SYNC_LEN: usize = 8 << 20;
/// Polls of /proc/meminfo (50 ms apart) the write-back may take.
const SYNC_POLLS: u32 = 100;

/// Buffered writes to the raw device, held open (the last close of a block
/// device writes it back by itself) and with the periodic write-back off,
/// then `sysrq s`, and, as soon as the device has completed writes of all
/// the data and has no request in flight (`/sys/block/ubda/stat` fields 7
/// and 9), a forced halt that does not sync (`-n`). The emergency sync only
/// starts the write-back (`sync_bdevs(false)`), and a halt kills the I/O
/// thread with requests in flight: halting before the write-back completes
/// loses data on either kernel, so the payload waits for it, and no longer.
fn sync_halt_script(seed: u64) -> String {
    format!(
        "echo 0 >/proc/sys/vm/dirty_writeback_centisecs; exec 3>/dev/ubda; \
         m step write; {g} pattern {seed:#x} {SYNC_LEN} >&3; \
         set -- $(cat /sys/block/ubda/stat); m before $7; m step sync; echo s >/proc/sysrq-trigger; i=0; \
         while :; do set -- $(cat /sys/block/ubda/stat); \
         [ $7 -ge {sectors} ] && [ $9 -eq 0 ] && break; i=$((i+1)); \
         [ $i -lt {SYNC_POLLS} ]; sleep 0.05; done; m clean $i; m halting; halt -n -f",
        g = proto::GUEST,
        sectors = SYNC_LEN / 512,
    )
}

fn sync_halt_case(ctx: &Ctx, kernel: &Path) -> Result<String> {
    let dir = workdir()?;
    let image = dir.path().join("sync.img");
    sparse_file(&image, 64 << 20)?;
    let sd = fresh_seed();
    let s = spec(
        kernel,
        &sync_halt_script(sd),
        &[format!("ubd0={}", image.display())],
        None,
    );
    let mut guest = Guest::start(&s, ctx)?;
    guest
        .wait_for_console(&format!("{MARK} halting"), BOOT_LIMIT)
        .context("the device must complete the write-back within 5 s of sysrq s")?;
    let exited = suite::wait_kernel_exit(guest.pid(), STEP_LIMIT);
    // The kernel's last lines may still be in the console pipe.
    let _ = guest.wait_for_console("reboot: System halted", Duration::from_secs(2));
    let console = guest.console_so_far();
    let status = guest.stop()?;
    exited.with_context(|| format!("after halt -n -f\n{}", quote(&console)))?;
    if status != "exited with status 0" {
        bail!("the kernel {status} after halt -n -f\n{}", quote(&console));
    }
    // Else the sysrq had (almost) nothing left to write back.
    let before: usize = mark_word(&console, "before")?.parse().unwrap_or(usize::MAX);
    if before.saturating_mul(512) > SYNC_LEN - (1 << 20) {
        bail!(
            "{before} sectors of the {} MiB were written back before sysrq s: the case would \
             not test the emergency sync\n{}",
            SYNC_LEN >> 20,
            quote(&console)
        );
    }
    let mut data = vec![0u8; SYNC_LEN];
    File::open(&image)?.read_exact(&mut data)?;
    if let Some(why) = pattern_mismatch(&data, sd, SYNC_LEN) {
        bail!(
            "the image after sysrq s, the write-back and halt -n -f: the guest's {} MiB {why}; \
             {} KiB of the image allocated\n{}",
            SYNC_LEN >> 20,
            allocated(&image)? / 1024,
            quote(&console)
        );
    }
    let polls = mark_word(&console, "clean").unwrap_or_default();
    Ok(format!(
        "{} MiB written to the open device ({} KiB of it written back before sysrq s), \
         sysrq s, written back after {polls} polls of 50 ms, halt -n -f: kernel {status}, all \
         data in the image",
        SYNC_LEN >> 20,
        before / 2,
    ))
}

// ---------------------------------------------------------------------------
// host_ubd_lock: a second kernel cannot use an image the first one holds.

fn lock_holder_script() -> String {
    format!(
        "m up; m step wait; {g} wait-file /host/go 30; m step done",
        g = proto::GUEST
    )
}

/// The second kernel: the disk must not be usable, and nothing may reach it.
fn lock_second_script() -> String {
    "if [ -b /dev/ubda ] && dd if=/dev/zero of=/dev/ubda bs=4096 count=1 conv=fsync \
     2>/dev/null; then m wrote; exit 5; fi; m refused; m step done"
        .to_string()
}

fn lock_case(ctx: &Ctx, kernel: &Path) -> Result<String> {
    let dir = workdir()?;
    let hostfs = dir.path().join("hostfs");
    fs::create_dir(&hostfs)?;
    let image = dir.path().join("locked.img");
    pattern_file(&image, fresh_seed(), 1 << 20)?;
    let before = sha256_file(&image)?;
    let arg = format!("ubd0={}", image.display());
    let first = spec(
        kernel,
        &lock_holder_script(),
        std::slice::from_ref(&arg),
        Some(&hostfs),
    );
    let mut holder = Guest::start(&first, ctx)?;
    holder.wait_for_console(&format!("{MARK} up"), STEP_LIMIT)?;
    let holder_pid = holder.pid();
    let second = spec(kernel, &lock_second_script(), &[arg], None);
    let result = boot_ok(ctx, &second);
    release(&hostfs, "go")?;
    exited_ok(&holder.wait()?)?;
    let console = result.context("the second kernel, on the image the first one holds")?;
    if mark_line(&console, "refused").is_none() {
        bail!(
            "the second kernel used the locked image\n{}",
            quote(&console)
        );
    }
    let named = format!("locked by pid {holder_pid}");
    let Some(line) = console.lines().find(|l| l.contains(&named)) else {
        bail!(
            "the second kernel did not name the holder ({named:?} expected)\n{}",
            quote(&console)
        );
    };
    let after = sha256_file(&image)?;
    if after != before {
        bail!("the image changed (SHA-256 {before} -> {after})");
    }
    Ok(format!(
        "second kernel refused the image: {:?}; image unchanged",
        line.trim()
    ))
}

// ---------------------------------------------------------------------------
// Helpers of the flag, COW-check and hot-plug COW cases.

/// Whether `a` and `b` are the same file (device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The kernel of the other host layer, to make files the kernel under test
/// must open: the Rust one for the C kernel, the C one for any other.
/// Falls back to `kernel` itself, saying so, when that one is not built.
fn other_kernel(ctx: &Ctx, kernel: &Path) -> (PathBuf, String) {
    let c = ctx.build_dir("c").join("linux");
    let rust = ctx.build_dir("rust").join("linux");
    let (other, name) = if same_file(kernel, &c) {
        (rust, "Rust")
    } else {
        (c, "C")
    };
    if other.is_file() {
        (other, format!("the {name} kernel"))
    } else {
        (
            kernel.to_path_buf(),
            format!(
                "the kernel under test ({} is not built, so the cross-layer check was not \
                 made)",
                other.display()
            ),
        )
    }
}

/// The open file flags (`flags:` of /proc/PID/fdinfo, octal) of every file
/// descriptor of process `pid` open on `path`, by fd.
fn fd_flags(pid: i32, path: &Path) -> Result<Vec<(String, u32)>> {
    let want = fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    let fd_dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let mut found = Vec::new();
    for e in fs::read_dir(&fd_dir).with_context(|| format!("listing {}", fd_dir.display()))? {
        let e = e?;
        // Follows the link; fds closed meanwhile and sockets are skipped.
        let Ok(m) = fs::metadata(e.path()) else {
            continue;
        };
        if m.dev() != want.dev() || m.ino() != want.ino() {
            continue;
        }
        let fd = e.file_name().to_string_lossy().into_owned();
        let info_path = format!("/proc/{pid}/fdinfo/{fd}");
        let info =
            fs::read_to_string(&info_path).with_context(|| format!("reading {info_path}"))?;
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            .with_context(|| format!("no octal `flags:` line in {info_path}: {info:?}"))?;
        found.push((fd, flags));
    }
    Ok(found)
}

/// A host file lock as /proc/locks lists it.
#[derive(Debug, PartialEq, Eq)]
struct HostLock {
    /// POSIX, OFDLCK, FLOCK, ...
    kind: String,
    /// READ or WRITE.
    mode: String,
    /// The owner's pid (-1 for OFD locks).
    pid: i64,
}

/// The locks of /proc/locks (its text in `locks`) on the file whose device
/// and inode are `dev` and `ino`. Lines of waiters (`->`) are skipped.
fn locks_on(locks: &str, dev: u64, ino: u64) -> Vec<HostLock> {
    let id = format!(
        "{:02x}:{:02x}:{ino}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev)
    );
    locks
        .lines()
        .filter_map(|l| {
            // `1: POSIX  ADVISORY  WRITE 4516 fe:00:10576606 0 EOF`
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 || f[1] == "->" || f[5] != id {
                return None;
            }
            Some(HostLock {
                kind: f[1].to_string(),
                mode: f[3].to_string(),
                pid: f[4].parse().unwrap_or(i64::MIN),
            })
        })
        .collect()
}

/// The host locks on `path` now.
fn host_locks(path: &Path) -> Result<Vec<HostLock>> {
    let m = fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    let locks = fs::read_to_string("/proc/locks").context("reading /proc/locks")?;
    Ok(locks_on(&locks, m.dev(), m.ino()))
}

/// Put at the end of a payload: how many kernel WARNINGs and BUGs the
/// kernel logged, and the first one (`quiet` keeps them off the console).
pub(crate) const KWARN: &str = "m kwarn $(dmesg | grep -c -e 'WARNING:' -e 'BUG:') \
                     $(dmesg | grep -m1 -e 'WARNING:' -e 'BUG:'); ";

/// Fails, quoting the first, if the payload's [`KWARN`] line counts any
/// kernel WARNING or BUG (or is missing).
pub(crate) fn no_kernel_warnings(console: &str, boot: &str) -> Result<()> {
    let line = mark_line(console, "kwarn")
        .with_context(|| format!("{boot}: no `{MARK} kwarn` line\n{}", quote(console)))?;
    let mut words = line.splitn(2, ' ');
    let n = words.next().unwrap_or("");
    if n != "0" {
        bail!(
            "{boot}: the kernel logged {n} WARNING/BUG report(s), the first: {}",
            words.next().unwrap_or("").trim()
        );
    }
    Ok(())
}

/// [`mc_ok`] on a running guest; a failure quotes its console, since a
/// kernel that died is the likelier story than mconsole.
pub(crate) fn mc_guest(guest: &Guest, sock: &Path, args: &[&str]) -> Result<String> {
    mc_ok(sock, args).map_err(|e| {
        let console = guest.console_so_far();
        anyhow::anyhow!(
            "{e:#}\nthe guest kernel: {}\n{}",
            guest.panic_line().unwrap_or_else(|| "no panic line".into()),
            quote(&console)
        )
    })
}

/// Sets the modification time of `path`, leaving its content.
fn set_mtime(path: &Path, t: SystemTime) -> Result<()> {
    File::open(path)
        .and_then(|f| f.set_modified(t))
        .with_context(|| format!("setting the mtime of {}", path.display()))
}

/// Reads and parses the COW header of `cow`.
fn read_cow_header(cow: &Path) -> Result<CowHeader> {
    let mut head = vec![0u8; COW_V3_HEADER_LEN];
    File::open(cow)
        .and_then(|mut f| f.read_exact(&mut head))
        .with_context(|| format!("reading the header of {}", cow.display()))?;
    parse_cow_header(&head)
}

/// `data` with the pattern `seed` of `len` bytes written at `at`.
fn patched(mut data: Vec<u8>, at: usize, seed: u64, len: usize) -> Vec<u8> {
    data[at..at + len].copy_from_slice(&suite::pattern_bytes(seed, len));
    data
}

/// Guest shell: writes `len` bytes of the pattern `seed` at byte `at` of
/// `dev` (both multiples of 4096) and fsyncs.
fn write_at(dev: &str, seed: u64, len: usize, at: usize) -> String {
    format!(
        "{g} pattern {seed:#x} {len} | dd of={dev} bs=4096 seek={s} conv=notrunc,fsync \
         iflag=fullblock 2>/dev/null; ",
        g = proto::GUEST,
        s = at / 4096
    )
}

/// `uml_moo` merges `cow` with its backing file into a new file; the merged
/// image must be exactly `want`. `what` names the state for the message.
fn check_merged(dir: &Path, cow: &Path, want: &[u8], what: &str) -> Result<()> {
    let merged = dir.join("merged.img");
    host_tool(
        "uml_moo",
        &[cow.as_os_str(), merged.as_os_str()],
        "uml-utilities",
    )?;
    let got = fs::read(&merged)?;
    fs::remove_file(&merged)?;
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        bail!(
            "the image uml_moo merged from {} ({what}) has {} bytes, expected {}; first \
             difference at byte {at}",
            cow.display(),
            got.len(),
            want.len()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// host_ubd_flags: s, c, r on the host side, and the serial.

/// Size of each image of the flags case, and the data written to the `s` one.
const FLAGS_LEN: usize = 1 << 20;
const FLAGS_WRITE: usize = 64 << 10;
/// `O_SYNC` as the kernel reports it in fdinfo (`__O_SYNC | O_DSYNC`).
const O_SYNC_BITS: u32 = nix::libc::O_SYNC as u32;
const O_ACCMODE_BITS: u32 = nix::libc::O_ACCMODE as u32;

/// The first kernel: ubda `s`, ubdb plain, ubdc `c`, ubdd `r`, ubde with a
/// serial; it writes to the `s` device and waits while the host looks.
fn flags_script(seed: u64) -> String {
    format!(
        "m serial $(cat /sys/block/ubde/serial); m serial-a $(cat /sys/block/ubda/serial); \
         m ro $(for d in a b c d e; do cat /sys/block/ubd$d/ro; done); \
         m step write; {w}m up; m step wait; {g} wait-file /host/go-a 30; {KWARN}m step done",
        w = write_at("/dev/ubda", seed, FLAGS_WRITE, 0),
        g = proto::GUEST
    )
}

/// The second kernel, at the same time: ubda (`c`) is the first kernel's
/// locked plain image, ubdb (`c`) its shared one; it only reads.
fn flags_second_script() -> String {
    format!(
        "m ro $(cat /sys/block/ubda/ro) $(cat /sys/block/ubdb/ro); \
         m sha-a $(sha256sum </dev/ubda); m sha-b $(sha256sum </dev/ubdb); \
         m up; m step wait; {g} wait-file /host/go-b 30; {KWARN}m step done",
        g = proto::GUEST
    )
}

/// The images of the flags case.
struct FlagImages {
    sync: PathBuf,
    plain: PathBuf,
    shared: PathBuf,
    ro: PathBuf,
    serial: PathBuf,
    /// A COW pair (`cow,backing`), the COW file made at boot.
    cow: PathBuf,
    backing: PathBuf,
}

/// While the first kernel runs: O_SYNC on the `s` image's fd only, the `r`
/// image open read-only, the others read-write.
fn check_open_flags(pid: i32, img: &FlagImages) -> Result<String> {
    let mut facts = Vec::new();
    for (path, what, sync, mode) in [
        (&img.sync, "the s image", true, nix::libc::O_RDWR as u32),
        (
            &img.plain,
            "the plain image",
            false,
            nix::libc::O_RDWR as u32,
        ),
        (&img.ro, "the r image", false, nix::libc::O_RDONLY as u32),
    ] {
        let fds = fd_flags(pid, path)?;
        if fds.is_empty() {
            bail!(
                "the kernel (pid {pid}) has no file descriptor open on {what} {}",
                path.display()
            );
        }
        for (fd, flags) in &fds {
            let has_sync = flags & O_SYNC_BITS == O_SYNC_BITS;
            if has_sync != sync || flags & O_ACCMODE_BITS != mode {
                bail!(
                    "fd {fd} of the kernel (pid {pid}) on {what} {} has flags {flags:#o}: \
                     O_SYNC {}, access mode {:#o}; expected O_SYNC {}, access mode {mode:#o}",
                    path.display(),
                    if has_sync { "set" } else { "clear" },
                    flags & O_ACCMODE_BITS,
                    if sync { "set" } else { "clear" },
                );
            }
        }
        let list: Vec<String> = fds.iter().map(|(fd, f)| format!("{fd}:{f:#o}")).collect();
        facts.push(format!("{what} fd {}", list.join(",")));
    }
    Ok(facts.join(", "))
}

/// While the first kernel runs: a POSIX lock by it on each image it opened
/// without `c` (READ for the `r` one and a COW pair's backing file, else
/// WRITE), none on the `c` image.
fn check_first_locks(pid: i32, img: &FlagImages) -> Result<()> {
    for (path, what, mode) in [
        (&img.sync, "the s image", "WRITE"),
        (&img.plain, "the plain image", "WRITE"),
        (&img.ro, "the r image", "READ"),
        (&img.serial, "the serial image", "WRITE"),
        (&img.cow, "the COW file", "WRITE"),
        (&img.backing, "the backing file", "READ"),
    ] {
        let locks = host_locks(path)?;
        let want = HostLock {
            kind: "POSIX".into(),
            mode: mode.into(),
            pid: pid.into(),
        };
        if locks != [want] {
            bail!(
                "/proc/locks on {what} {} while the kernel (pid {pid}) runs: {locks:?}, \
                 expected one POSIX {mode} lock by pid {pid}",
                path.display()
            );
        }
    }
    let locks = host_locks(&img.shared)?;
    if !locks.is_empty() {
        bail!(
            "/proc/locks on the c (shared) image {} while the kernel (pid {pid}) runs: \
             {locks:?}, expected none",
            img.shared.display()
        );
    }
    Ok(())
}

fn flags_case(ctx: &Ctx, kernel: &Path) -> Result<String> {
    let dir = workdir()?;
    let d = dir.path();
    let hostfs = d.join("hostfs");
    fs::create_dir(&hostfs)?;
    let base = fresh_seed();
    let img = FlagImages {
        sync: d.join("sync.img"),
        plain: d.join("plain.img"),
        shared: d.join("shared.img"),
        ro: d.join("ro.img"),
        serial: d.join("serial.img"),
        cow: d.join("pair.cow"),
        backing: d.join("backing.img"),
    };
    for (k, p) in [
        &img.sync,
        &img.plain,
        &img.shared,
        &img.ro,
        &img.serial,
        &img.backing,
    ]
    .into_iter()
    .enumerate()
    {
        pattern_file(p, seed(base, k as u64), FLAGS_LEN)?;
    }
    let untouched: Vec<(&PathBuf, Fingerprint)> =
        [&img.plain, &img.shared, &img.ro, &img.serial, &img.backing]
            .into_iter()
            .map(|p| Ok((p, Fingerprint::of(p)?)))
            .collect::<Result<_>>()?;
    let write_seed = seed(base, 10);
    // Fresh per run, so that a serial left from elsewhere cannot pass.
    let serial = format!("UML-{:08x}", seed(base, 11) as u32);
    let first = spec(
        kernel,
        &flags_script(write_seed),
        &[
            format!("ubd0s={}", img.sync.display()),
            format!("ubd1={}", img.plain.display()),
            format!("ubd2c={}", img.shared.display()),
            format!("ubd3r={}", img.ro.display()),
            format!("ubd4={},,{serial}", img.serial.display()),
            format!("ubd5={},{}", img.cow.display(), img.backing.display()),
        ],
        Some(&hostfs),
    );
    let mut a = Guest::start(&first, ctx)?;
    a.wait_for_console(&format!("{MARK} up"), STEP_LIMIT)?;
    let pid = a.pid();
    let fd_fact = check_open_flags(pid, &img)?;
    check_first_locks(pid, &img)?;

    // A second kernel with `c` on the plain image the first one holds
    // locked, and on the shared one: no lock taken, none tried.
    let second = spec(
        kernel,
        &flags_second_script(),
        &[
            format!("ubd0c={}", img.plain.display()),
            format!("ubd1c={}", img.shared.display()),
        ],
        Some(&hostfs),
    );
    let mut b = Guest::start(&second, ctx)?;
    b.wait_for_console(&format!("{MARK} up"), STEP_LIMIT)
        .context("the second kernel, with c on both images, while the first one runs")?;
    let (plain_locks, shared_locks) = (host_locks(&img.plain)?, host_locks(&img.shared)?);
    let b_pid = i64::from(b.pid());
    if plain_locks.iter().any(|l| l.pid == b_pid) || shared_locks.iter().any(|l| l.pid == b_pid) {
        bail!(
            "the second kernel (pid {b_pid}, flag c) holds host locks: plain image \
             {plain_locks:?}, shared image {shared_locks:?}"
        );
    }
    if !shared_locks.is_empty() {
        bail!(
            "/proc/locks on the shared image while two kernels use it with c: \
             {shared_locks:?}, expected none"
        );
    }
    release(&hostfs, "go-b")?;
    let b_out = b.wait()?;
    exited_ok(&b_out).context("the second kernel")?;
    release(&hostfs, "go-a")?;
    let a_out = a.wait()?;
    exited_ok(&a_out).context("the first kernel")?;

    let bc = &b_out.console;
    no_kernel_warnings(bc, "the second kernel")?;
    let ro = mark(bc, "ro").unwrap_or_default();
    if ro != ["0", "0"] {
        bail!(
            "the second kernel's c devices have /sys/block/*/ro {ro:?}, expected 0 0\n{}",
            quote(bc)
        );
    }
    for (key, path, what) in [
        (
            "sha-a",
            &img.plain,
            "ubd0c= on the image the first kernel holds locked",
        ),
        (
            "sha-b",
            &img.shared,
            "ubd1c= on the image both kernels share",
        ),
    ] {
        let got = mark_word(bc, key)?;
        let want = sha256_file(path)?;
        if got != want {
            bail!("the second kernel, {what}: reads SHA-256 {got}, the file has {want}");
        }
    }

    let ac = &a_out.console;
    no_kernel_warnings(ac, "the first kernel")?;
    let got_serial = mark_line(ac, "serial").unwrap_or_default();
    if got_serial != serial {
        bail!(
            "ubd4=FILE,,{serial}: /sys/block/ubde/serial is {got_serial:?}, expected \
             {serial:?}\n{}",
            quote(ac)
        );
    }
    let other_serial = mark_line(ac, "serial-a").unwrap_or_default();
    if other_serial == serial {
        bail!("ubda, given no serial, shows the serial of ubde ({serial:?})");
    }
    let ro = mark_line(ac, "ro").unwrap_or_default();
    if ro != "0 0 0 1 0" {
        bail!(
            "/sys/block/ubd[a-e]/ro of the s, plain, c, r and serial devices are {ro:?}, \
             expected \"0 0 0 1 0\""
        );
    }
    let mut data = vec![0u8; FLAGS_WRITE];
    File::open(&img.sync)?.read_exact(&mut data)?;
    if let Some(why) = pattern_mismatch(&data, write_seed, FLAGS_WRITE) {
        bail!(
            "the {} KiB the guest wrote to the s device: the host file {why}",
            FLAGS_WRITE >> 10
        );
    }
    for (p, f) in &untouched {
        f.same(p, "after both kernels (they only read it)")?;
    }
    Ok(format!(
        "{fd_fact}; POSIX locks by the kernel on the s, plain, r (READ), serial and COW images \
         and the backing file (READ), none on the c image; a second kernel with c used the locked plain image and the \
         shared one at the same time, taking no lock, and read both intact; \
         /sys/block/ubde/serial {serial:?} (ubda: {other_serial:?}); the s device's write \
         reached the file; the other images unchanged"
    ))
}

// ---------------------------------------------------------------------------
// host_ubd_cow_check: the backing file's size and mtime, recorded in the COW
// header, guard the COW file; a moved backing file is switched to.

/// The raw backing file and the writes of the boots: (offset, length).
const CHECK_LEN: usize = 2 << 20;
const CHECK_FIRST: (usize, usize) = (256 << 10, 64 << 10);
const CHECK_SECOND: (usize, usize) = (1 << 20, 32 << 10);

/// Boot 1 (the other kernel) and boot 3 (the kernel under test): read the
/// whole device, then write the pattern `seed` at `at`.
fn check_write_script(seed: u64, (at, len): (usize, usize)) -> String {
    format!(
        "m sha $(sha256sum </dev/ubda); m step write; {}{KWARN}m step done",
        write_at("/dev/ubda", seed, len, at)
    )
}

/// Boot 2: ubda (COW over a touched backing file) must be missing, ubdb
/// (`d`: the COW file as a plain image) present, ubdc (`d` with a backing
/// file) refused, ubdd (COW over a backing file that grew) missing.
fn check_refused_script() -> String {
    format!(
        "for d in a b c d; do if [ -b /dev/ubd$d ]; then m dev-$d yes; else m dev-$d no; fi; \
         done; m size-b $(cat /sys/block/ubdb/size); \
         m head-b $(dd if=/dev/ubdb bs=512 count=1 2>/dev/null | xxd -p | tr -d '\\n'); \
         {KWARN}m step done"
    )
}

/// Boot 4 (the other kernel, `ubd0=cow` alone): the whole device.
fn check_read_script() -> String {
    format!("m sha $(sha256sum </dev/ubda); {KWARN}m step done")
}

/// The console line holding `needle`, or a failure naming `what` and the
/// closest line (holding `near`).
fn console_line(console: &str, needle: &str, near: &str, what: &str) -> Result<String> {
    if let Some(l) = console.lines().find(|l| l.contains(needle)) {
        return Ok(l.trim().to_string());
    }
    let seen = console.lines().find(|l| l.contains(near)).unwrap_or("none");
    bail!(
        "{what}: the kernel did not print {needle:?}; its line with {near:?}: {seen}\n{}",
        quote(console)
    )
}

/// What boot 2 must show: the recorded and the current mtime of the
/// touched backing file, and the recorded and current size of the grown one.
struct Mismatch {
    recorded: u32,
    current: i64,
    size: u64,
    grown: u64,
}

/// Boot 2: fails unless the refusals and the `d` device are as the driver
/// promises. Returns the two mismatch lines.
fn check_refused(console: &str, cow: &Path, m: &Mismatch) -> Result<(String, String)> {
    no_kernel_warnings(console, "boot 2")?;
    for (key, want, what) in [
        (
            "dev-a",
            "no",
            "ubd0=cow,backing over a backing file whose mtime changed",
        ),
        ("dev-b", "yes", "ubd1d=cow (flag d: no COW detection)"),
        (
            "dev-c",
            "no",
            "ubd2d=cow,backing (flag d with a backing file)",
        ),
        (
            "dev-d",
            "no",
            "ubd3=cow,backing over a backing file that grew",
        ),
    ] {
        let got = mark_word(console, key)?;
        if got != want {
            bail!(
                "{what}: /dev/ubd{} present: {got}, expected {want}\n{}",
                &key[4..],
                quote(console)
            );
        }
    }
    let mtime = console_line(
        console,
        &format!(
            "mtime mismatch ({} vs {}) of COW header vs backing file",
            m.recorded, m.current
        ),
        "mtime mismatch",
        "the backing file's mtime changed",
    )?;
    let size = console_line(
        console,
        &format!(
            "Size mismatch ({} vs {}) of COW header vs backing file",
            m.size, m.grown
        ),
        "Size mismatch",
        "the backing file grew",
    )?;
    console_line(
        console,
        "Can't specify both 'd' and a cow file",
        "Failed to initialize device",
        "ubd2d=cow,backing",
    )?;
    // Flag d: the COW file is a plain image, header and all. Its size,
    // though, is the backing file's from the header: ubd_file_size() reads
    // the header of a single file whatever the flags (upstream ubd_kern.c;
    // the C and the Rust kernel alike), so the device ends before the file.
    let h = read_cow_header(cow)?;
    let sectors = mark_word(console, "size-b")?;
    let want_sectors = h.size.div_ceil(512).to_string();
    if sectors != want_sectors {
        bail!(
            "ubd1d=cow: {sectors} sectors, expected {want_sectors} (the backing size the COW \
             header records, as ubd_file_size() takes it)"
        );
    }
    let head = unhex(&mark_word(console, "head-b")?).context("the hex of ubdb's first sector")?;
    let mut want = vec![0u8; 512];
    File::open(cow)?.read_exact(&mut want)?;
    if head != want {
        bail!(
            "ubd1d=cow: the first sector (starting {:02x?}) is not the COW file's (starting \
             {:02x?}, the header)",
            &head[..head.len().min(8)],
            &want[..8]
        );
    }
    Ok((mtime, size))
}

fn cow_check_case(ctx: &Ctx, kernel: &Path) -> Result<String> {
    let dir = workdir()?;
    let d = dir.path();
    let base = fresh_seed();
    let (back_seed, s1, s2) = (seed(base, 0), seed(base, 1), seed(base, 2));
    let backing = d.join("backing.img");
    pattern_file(&backing, back_seed, CHECK_LEN)?;
    let grows = d.join("grows.img");
    pattern_file(&grows, seed(base, 4), CHECK_LEN)?;
    let original = suite::pattern_bytes(back_seed, CHECK_LEN);
    let after1 = patched(original.clone(), CHECK_FIRST.0, s1, CHECK_FIRST.1);
    let after3 = patched(after1.clone(), CHECK_SECOND.0, s2, CHECK_SECOND.1);
    let cow = d.join("disk.cow");
    let cow2 = d.join("grows.cow");
    let (other, other_name) = other_kernel(ctx, kernel);

    // 1. The other kernel makes the COW files and writes through one.
    let boot1 = format!("boot 1 ({other_name}, ubd0=cow,backing)");
    let console = boot_ok(
        ctx,
        &spec(
            &other,
            &check_write_script(s1, CHECK_FIRST),
            &[
                format!("ubd0={},{}", cow.display(), backing.display()),
                format!("ubd1={},{}", cow2.display(), grows.display()),
            ],
            None,
        ),
    )
    .context(boot1.clone())?;
    no_kernel_warnings(&console, &boot1)?;
    let got = mark_word(&console, "sha")?;
    if got != sha256_hex(&original) {
        bail!("{boot1}: the device reads SHA-256 {got}, the backing file's is different");
    }
    let cow_fact = check_cow_file(&cow, &backing)?;
    check_cow_file(&cow2, &grows)?;
    let orig_mtime = fs::metadata(&backing)?.modified()?;
    let recorded = read_cow_header(&cow)?.mtime;

    // 2. The backing file's mtime changes, the other backing file grows
    // (its mtime kept): both COW devices are refused.
    let shift = 1000 + i64::from(seed(base, 3) as u16);
    let m = Mismatch {
        recorded,
        current: i64::from(recorded) + shift,
        size: CHECK_LEN as u64,
        grown: CHECK_LEN as u64 + 4096,
    };
    set_mtime(
        &backing,
        SystemTime::UNIX_EPOCH + Duration::from_secs(m.current as u64),
    )?;
    let grows_mtime = fs::metadata(&grows)?.modified()?;
    OpenOptions::new()
        .write(true)
        .open(&grows)
        .and_then(|f| f.set_len(m.grown))
        .context("growing the second backing file")?;
    set_mtime(&grows, grows_mtime)?;
    let fps = [&backing, &cow, &grows, &cow2]
        .into_iter()
        .map(|p| Ok((p, Fingerprint::of(p)?)))
        .collect::<Result<Vec<_>>>()?;
    let console = boot_ok(
        ctx,
        &spec(
            kernel,
            &check_refused_script(),
            &[
                format!("ubd0={},{}", cow.display(), backing.display()),
                format!("ubd1d={}", cow.display()),
                format!("ubd2d={},{}", cow.display(), backing.display()),
                format!("ubd3={},{}", cow2.display(), grows.display()),
            ],
            None,
        ),
    )
    .context("boot 2 (a backing file's mtime changed, another's size)")?;
    let (mtime_line, size_line) = check_refused(&console, &cow, &m)?;
    for (p, f) in &fps {
        f.same(p, "after the boot that refused the COW devices")?;
    }

    // 3. The mtime restored and the backing file moved: the kernel under
    // test switches the header to the new path and uses the device.
    set_mtime(&backing, orig_mtime)?;
    let moved_dir = d.join("moved");
    fs::create_dir(&moved_dir)?;
    let moved = moved_dir.join("backing-moved.img");
    fs::rename(&backing, &moved)?;
    let back_fp = Fingerprint::of(&moved)?;
    let boot3 = "boot 3 (ubd0=cow,moved-backing)";
    let console = boot_ok(
        ctx,
        &spec(
            kernel,
            &check_write_script(s2, CHECK_SECOND),
            &[format!("ubd0={},{}", cow.display(), moved.display())],
            None,
        ),
    )
    .context(boot3)?;
    no_kernel_warnings(&console, boot3)?;
    let got = mark_word(&console, "sha")?;
    if got != sha256_hex(&after1) {
        bail!(
            "{boot3}: the device reads SHA-256 {got}, expected {} (the backing file with \
             {other_name}'s write of boot 1)",
            sha256_hex(&after1)
        );
    }
    let switching = console_line(
        &console,
        &format!("Switching backing file to '{}'", moved.display()),
        "Switching",
        boot3,
    )?;
    let canon = fs::canonicalize(&moved)?;
    let h = read_cow_header(&cow)?;
    if h.backing_file != canon.to_string_lossy() {
        bail!(
            "{boot3}: the COW header names {:?}, expected the new path {}",
            h.backing_file,
            canon.display()
        );
    }
    let switched = check_cow_file(&cow, &moved).context("the COW file after the switch")?;
    back_fp.same(&moved, &format!("after {boot3}"))?;
    check_merged(d, &cow, &after3, "after boot 3")?;

    // 4. The other kernel opens the switched COW file by its header alone.
    let boot4 = format!("boot 4 ({other_name}, ubd0=cow)");
    let console = boot_ok(
        ctx,
        &spec(
            &other,
            &check_read_script(),
            &[format!("ubd0={}", cow.display())],
            None,
        ),
    )
    .context(boot4.clone())?;
    no_kernel_warnings(&console, &boot4)?;
    let got = mark_word(&console, "sha")?;
    if got != sha256_hex(&after3) {
        bail!(
            "{boot4}: the device reads SHA-256 {got}, expected {} (both boots' writes over \
             the moved backing file)",
            sha256_hex(&after3)
        );
    }
    back_fp.same(&moved, &format!("after {boot4}"))?;
    Ok(format!(
        "COW files made by {other_name}: {cow_fact}; backing mtime moved by {shift} s and \
         another backing grown by 4 KiB: both devices refused ({mtime_line:?}, \
         {size_line:?}), ubd1d= reads the COW file raw, ubd2d=cow,backing refused, all four \
         files unchanged; mtime restored and backing moved: {switching:?}, header updated \
         ({switched}), the device reads boot 1's data and takes writes (uml_moo merge \
         exact); {other_name} reads the switched COW file by its header"
    ))
}

// ---------------------------------------------------------------------------
// host_ubd_hotplug_cow: mconsole `config ubd1=cow,backing`, and `remove`
// refused while a process holds the device open.

/// The backing file, and the guest's write through the COW device.
const HOTCOW_LEN: usize = 4 << 20;
const HOTCOW_WRITE: (usize, usize) = (512 << 10, 96 << 10);

fn hotplug_cow_script(seed: u64) -> String {
    format!(
        "if [ -e /dev/ubdb ]; then m early; exit 4; fi; m up; m step wait-ubdb; i=0; \
         while [ ! -b /dev/ubdb ]; do i=$((i+1)); [ $i -lt 400 ]; sleep 0.05; done; \
         m seen $(cat /sys/block/ubdb/size); m sha $(sha256sum </dev/ubdb); m step write; {w}\
         exec 3</dev/ubdb; m held; m step wait-1; {g} wait-file /host/go1 30; \
         m after $(sha256sum <&3); exec 3<&-; m closed; m step wait-2; \
         {g} wait-file /host/go2 30; m step gone; i=0; while [ -e /dev/ubdb ]; do \
         i=$((i+1)); [ $i -lt 400 ]; sleep 0.05; done; \
         if grep -q ubdb /proc/partitions; then m listed; exit 3; fi; m gone; {KWARN}\
         m step done",
        w = write_at("/dev/ubdb", seed, HOTCOW_WRITE.1, HOTCOW_WRITE.0),
        g = proto::GUEST,
    )
}

fn hotplug_cow_case(ctx: &Ctx, kernel: &Path) -> Result<String> {
    let dir = workdir()?;
    let d = dir.path();
    let hostfs = d.join("hostfs");
    fs::create_dir(&hostfs)?;
    let base = fresh_seed();
    let (back_seed, write_seed) = (seed(base, 0), seed(base, 1));
    let backing = d.join("backing.img");
    pattern_file(&backing, back_seed, HOTCOW_LEN)?;
    let before = Fingerprint::of(&backing)?;
    let original = suite::pattern_bytes(back_seed, HOTCOW_LEN);
    let written = patched(original.clone(), HOTCOW_WRITE.0, write_seed, HOTCOW_WRITE.1);
    let cow = d.join("hot.cow");
    let s = spec(kernel, &hotplug_cow_script(write_seed), &[], Some(&hostfs));
    let mut guest = Guest::start(&s, ctx)?;
    let sock = guest.umid_dir().join("mconsole");
    guest.wait_for_console(&format!("{MARK} up"), STEP_LIMIT)?;
    let arg = format!("{},{}", cow.display(), backing.display());
    mc_guest(&guest, &sock, &["config", &format!("ubd1={arg}")])?;
    let get = mc_guest(&guest, &sock, &["config", "ubd1"])?;
    if !get.contains(&arg) {
        bail!("mconsole `config ubd1` answered {get:?}, expected OK and {arg}");
    }
    guest.wait_for_console(&format!("{MARK} held"), STEP_LIMIT)?;
    let busy = suite::mconsole_reply(&sock, &["remove", "ubd1"])?;
    let busy_line = busy.stdout.lines().next().unwrap_or("").trim().to_string();
    let busy_text = "Device is currently open";
    if busy.status.success() || !busy_line.starts_with("ERR") || !busy_line.contains(busy_text) {
        bail!(
            "mconsole `remove ubd1` while a guest shell holds /dev/ubdb open answered \
             {busy_line:?} ({}), expected ERR {busy_text:?}",
            busy.status
        );
    }
    release(&hostfs, "go1")?;
    guest.wait_for_console(&format!("{MARK} closed"), STEP_LIMIT)?;
    mc_guest(&guest, &sock, &["remove", "ubd1"]).context("removing ubd1 after the close")?;
    release(&hostfs, "go2")?;
    let out = guest.wait()?;
    exited_ok(&out)?;
    let console = &out.console;
    no_kernel_warnings(console, "the hot-plug boot")?;
    let sectors = mark_word(console, "seen")?;
    let want_sectors = (HOTCOW_LEN / 512).to_string();
    if sectors != want_sectors {
        bail!("the plugged COW device has {sectors} sectors, expected {want_sectors}");
    }
    for (key, want, what) in [
        ("sha", &original, "before its write: the backing file"),
        (
            "after",
            &written,
            "through the held fd after the refused remove: its write",
        ),
    ] {
        let got = mark_word(console, key)?;
        if got != sha256_hex(want) {
            bail!(
                "the guest reads the plugged COW device with SHA-256 {got}, expected {} \
                 ({what})",
                sha256_hex(want)
            );
        }
    }
    if mark_line(console, "gone").is_none() {
        bail!("no `{MARK} gone` line\n{}", quote(console));
    }
    before.same(
        &backing,
        "after the guest wrote through the hot-plugged COW device",
    )?;
    let cow_fact = check_cow_file(&cow, &backing)?;
    check_merged(d, &cow, &written, "after the hot-plugged boot")?;
    Ok(format!(
        "config ubd1=cow,backing ({get}); the guest read the backing data and wrote {} KiB; \
         remove while held open: {busy_line}; the device still reads, with the write; remove \
         after close: OK, /dev/ubdb gone; backing unchanged; {cow_fact}; uml_moo merge exact",
        HOTCOW_WRITE.1 >> 10
    ))
}

// ---------------------------------------------------------------------------
// host_ubd_direct

/// The image of the O_DIRECT device, and where and how much the guest
/// writes into it.
const DIRECT_LEN: usize = 4 << 20;
const DIRECT_WRITE_AT: usize = 1 << 20;
const DIRECT_WRITE_LEN: usize = 256 << 10;
/// `O_DIRECT` in /proc/PID/fdinfo's octal `flags:` (x86).
const HOST_O_DIRECT: u32 = 0o40000;

/// ubda (flag `o`) must work; ubdb (`o` on a COW pair), ubdc (`o` on an
/// odd-sized file) and ubdd (`o` on a COW file alone) must have been
/// refused. The guest waits for the host to
/// look at the kernel's descriptors, then reads and writes ubda.
fn direct_script(seed: u64) -> String {
    format!(
        "for d in b c d; do [ -b /dev/ubd$d ] && m present ubd$d; done; m up; m step wait; \
         {g} wait-file /host/go 30; m step read; \
         m sum $(dd if=/dev/ubda bs=65536 count=16 2>/dev/null | sha256sum); \
         m step write; {g} pattern {seed:#x} {DIRECT_WRITE_LEN} | \
         dd of=/dev/ubda bs=65536 seek={seek} conv=fsync 2>/dev/null; m step done",
        g = proto::GUEST,
        seek = DIRECT_WRITE_AT / 65536,
    )
}

/// The `flags:` of every descriptor of process `pid` open on `path`.
fn host_fd_flags(pid: i32, path: &Path) -> Result<Vec<u32>> {
    let mut flags = Vec::new();
    let dir = format!("/proc/{pid}/fd");
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let entry = entry?;
        if fs::read_link(entry.path()).ok().as_deref() != Some(path) {
            continue;
        }
        let info = fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            entry.file_name().to_string_lossy()
        ))?;
        let octal = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .context("fdinfo without flags")?;
        flags.push(u32::from_str_radix(octal.trim(), 8)?);
    }
    Ok(flags)
}

fn direct_case(ctx: &Ctx, kernel: &Path) -> Result<String> {
    let dir = workdir()?;
    let hostfs = dir.path().join("hostfs");
    fs::create_dir(&hostfs)?;
    let image = dir.path().join("direct.img");
    let base_seed = fresh_seed();
    pattern_file(&image, base_seed, DIRECT_LEN)?;
    let original = fs::read(&image)?;
    let backing = dir.path().join("backing.img");
    pattern_file(&backing, seed(base_seed, 1), 1 << 20)?;
    let cow = dir.path().join("direct.cow");
    let made_cow = dir.path().join("made.cow");
    host_tool(
        "uml_mkcow",
        &[made_cow.as_os_str(), backing.as_os_str()],
        "uml-utilities",
    )?;
    let odd = dir.path().join("odd.img");
    pattern_file(&odd, seed(base_seed, 2), ODD_LEN)?;
    let untouched = [
        (&backing, sha256_file(&backing)?),
        (&odd, sha256_file(&odd)?),
        (&made_cow, sha256_file(&made_cow)?),
    ];
    let write_seed = seed(base_seed, 3);
    let args = [
        format!("ubd0o={}", image.display()),
        format!("ubd1o={},{}", cow.display(), backing.display()),
        format!("ubd2o={}", odd.display()),
        format!("ubd3o={}", made_cow.display()),
    ];
    let mut guest = Guest::start(
        &spec(kernel, &direct_script(write_seed), &args, Some(&hostfs)),
        ctx,
    )?;
    let looked = guest
        .wait_for_console(&format!("{MARK} up"), STEP_LIMIT)
        .and_then(|()| host_fd_flags(guest.pid(), &image));
    release(&hostfs, "go")?;
    let out = guest.wait()?;
    exited_ok(&out)?;
    let console = out.console;
    let flags = looked.context("looking at the kernel's descriptors of the image")?;
    if flags.is_empty() {
        bail!("the kernel has no descriptor open on {}", image.display());
    }
    if let Some(f) = flags.iter().find(|&&f| f & HOST_O_DIRECT == 0) {
        bail!("the kernel's descriptor of the image has flags {f:o}: no O_DIRECT");
    }
    if let Some(present) = mark_line(&console, "present") {
        bail!(
            "a device that flag 'o' cannot serve was set up: {present}\n{}",
            quote(&console)
        );
    }
    for (what, text) in [
        (
            "a COW pair",
            "Can't specify both 'o' (O_DIRECT) and a cow file",
        ),
        (
            "a COW file alone",
            "is a COW file: flag 'o' (O_DIRECT) cannot be used with COW",
        ),
        (
            "a 1575-byte file",
            "needs a file size that is a multiple of 512 bytes, not 1575",
        ),
    ] {
        if !console.contains(text) {
            bail!(
                "'o' on {what}: no message {text:?} on the console\n{}",
                quote(&console)
            );
        }
    }
    let want_sum = sha256_hex(&original[..1 << 20]);
    let sum = mark_word(&console, "sum")?;
    if sum != want_sum {
        bail!("the guest read the first MiB as SHA-256 {sum}, the file has {want_sum}");
    }
    let after = fs::read(&image)?;
    let written = &after[DIRECT_WRITE_AT..DIRECT_WRITE_AT + DIRECT_WRITE_LEN];
    if let Some(why) = pattern_mismatch(written, write_seed, DIRECT_WRITE_LEN) {
        bail!("the data the guest wrote at 1 MiB: {why}");
    }
    let outside_changed = after.len() != original.len()
        || after[..DIRECT_WRITE_AT] != original[..DIRECT_WRITE_AT]
        || after[DIRECT_WRITE_AT + DIRECT_WRITE_LEN..]
            != original[DIRECT_WRITE_AT + DIRECT_WRITE_LEN..];
    if outside_changed {
        bail!("the image changed outside the range the guest wrote");
    }
    for (file, sha) in &untouched {
        if sha256_file(file)? != *sha {
            bail!("{} changed although its device was refused", file.display());
        }
    }
    if cow.exists() {
        bail!(
            "a COW file was created for the refused device: {}",
            cow.display()
        );
    }
    Ok(format!(
        "host descriptor flags {:o} (O_DIRECT); 1 MiB read and 256 KiB written through it, \
         checked on the host; 'o' refused on a COW pair, a COW file and a 1575-byte file",
        flags[0]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    /// Every payload fits UML's command line (it travels hex-encoded).
    #[test]
    fn payloads_fit_the_command_line() {
        let s = u64::MAX;
        for script in [
            ext4_script("ld-linux-x86-64.so.2", &[s, s, s]),
            cow_modify_script(s, s),
            cow_look_script(),
            readonly_script(),
            odd_size_script(),
            trim_script(s),
            hotplug_script(s),
            io_error_script(),
            sync_halt_script(s),
            direct_script(s),
            lock_holder_script(),
            lock_second_script(),
            flags_script(s),
            flags_second_script(),
            check_write_script(s, CHECK_FIRST),
            check_refused_script(),
            check_read_script(),
            hotplug_cow_script(s),
        ] {
            let cmd = vec!["/bin/sh".into(), "-c".into(), format!("{PRELUDE}{script}")];
            let enc = crate::protocol::encode_cmd(&cmd).unwrap();
            assert!(enc.len() < 3000, "{} bytes: {script}", enc.len());
        }
    }

    #[test]
    fn payloads_are_valid_shell() {
        for script in [
            ext4_script("ld.so", &[1, 2, 3]),
            cow_modify_script(1, 2),
            cow_look_script(),
            readonly_script(),
            odd_size_script(),
            trim_script(1),
            hotplug_script(1),
            io_error_script(),
            sync_halt_script(1),
            direct_script(1),
            lock_holder_script(),
            lock_second_script(),
            flags_script(1),
            flags_second_script(),
            check_write_script(1, CHECK_SECOND),
            check_refused_script(),
            check_read_script(),
            hotplug_cow_script(1),
        ] {
            let out = Command::new("/bin/sh")
                .args(["-n", "-c", &format!("{PRELUDE}{script}")])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{script}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn marks_and_steps() {
        let console = "\
[ 1.0] boot
@@BLK step mount
@@BLK sha base.bin 0123abcd -
@@BLK sha base.binx ffff -
@@BLK write 1 dd: error writing '/dev/ubda': Operation not permitted 1+0 records in
[ 2.0] x@@BLK step write
@@BLK alive
";
        assert_eq!(mark_word(console, "sha base.bin").unwrap(), "0123abcd");
        assert_eq!(mark_word(console, "sha base.binx").unwrap(), "ffff");
        assert!(mark_word(console, "sha base").is_err());
        assert!(mark_line(console, "write").unwrap().contains(EPERM_TEXT));
        assert_eq!(mark_line(console, "alive").unwrap(), "");
        assert_eq!(last_step(console), "at step `write`");
        assert_eq!(last_step("nothing\n"), "before its first step");
        assert!(failed_with("1 dd: x: Operation not permitted", EPERM_TEXT));
        assert!(!failed_with("0 dd: x: Operation not permitted", EPERM_TEXT));
        assert!(!failed_with("1 dd: x: Input/output error", EPERM_TEXT));
        assert!(!failed_with("", EPERM_TEXT));
    }

    #[test]
    fn cow_header_and_size() {
        // What uml_mkcow wrote over a 64 MiB backing file.
        let mut b = vec![0u8; COW_V3_HEADER_LEN];
        b[..32].copy_from_slice(&[
            0x4f, 0x4f, 0x4f, 0x4d, 0, 0, 0, 3, 0x6b, 0x14, 0x47, 0x6a, 0, 0, 0, 0, 4, 0, 0, 0, 0,
            0, 2, 0, 0, 0, 0x10, 0, 0, 0, 0, 0,
        ]);
        b[32..50].copy_from_slice(b"/tmp/bx/cw/back.im");
        let h = parse_cow_header(&b).unwrap();
        assert_eq!(h.magic, COW_MAGIC);
        assert_eq!(
            (h.version, h.mtime, h.size, h.sectorsize, h.alignment),
            (3, 0x6b14_476a, 64 << 20, 512, 4096)
        );
        assert_eq!(h.backing_file, "/tmp/bx/cw/back.im");
        // uml_mkcow's file over 64 MiB was 67133440 bytes.
        assert_eq!(cow_file_size(64 << 20, 512, 4096), 67_133_440);
        assert!(parse_cow_header(&b[..100]).is_err());
    }

    #[test]
    fn proc_locks_parsing() {
        let locks = "\
1: POSIX  ADVISORY  WRITE 4516 fe:00:10576606 0 EOF
2: POSIX  ADVISORY  READ 4516 fe:00:10576605 0 EOF
2: -> POSIX  ADVISORY  WRITE 4600 fe:00:10576605 0 EOF
3: OFDLCK ADVISORY  WRITE -1 08:11:10576606 0 EOF
4: FLOCK  ADVISORY  WRITE 1737 fe:00:105766050 0 EOF
";
        let dev = nix::sys::stat::makedev(0xfe, 0);
        let lock = |kind: &str, mode: &str, pid| HostLock {
            kind: kind.into(),
            mode: mode.into(),
            pid,
        };
        assert_eq!(
            locks_on(locks, dev, 10_576_606),
            [lock("POSIX", "WRITE", 4516)]
        );
        // The waiter is not a lock held; another inode's digits are not it.
        assert_eq!(
            locks_on(locks, dev, 10_576_605),
            [lock("POSIX", "READ", 4516)]
        );
        assert_eq!(
            locks_on(locks, nix::sys::stat::makedev(8, 0x11), 10_576_606),
            [lock("OFDLCK", "WRITE", -1)]
        );
        assert!(locks_on(locks, dev, 1).is_empty());
    }

    #[test]
    fn kernel_reports_on_the_console() {
        let warn =
            "[    0.6] WARNING: CPU: 0 PID: 1 at mm/slub.c:4799 free_large_kmalloc+0x5a/0xd4";
        assert_eq!(kernel_report(&format!("boot\n{warn}\nrest")), Some(warn));
        assert_eq!(
            kernel_report("[ 1.0] BUG: kernel NULL pointer dereference"),
            Some("[ 1.0] BUG: kernel NULL pointer dereference")
        );
        assert_eq!(
            kernel_report("ubda: unknown partition table\nmounted"),
            None
        );
    }

    #[test]
    fn kernel_warning_lines() {
        let ok = "@@BLK kwarn 0\n";
        no_kernel_warnings(ok, "b").unwrap();
        let bad = "@@BLK kwarn 1 [    0.6] WARNING: CPU: 0 PID: 1 at mm/slub.c:4799 x\n";
        let e = format!("{:#}", no_kernel_warnings(bad, "boot 9").unwrap_err());
        assert!(e.contains("boot 9") && e.contains("mm/slub.c:4799"), "{e}");
        assert!(no_kernel_warnings("@@BLK other 0\n", "b").is_err());
        assert_eq!(
            patched(vec![0; 8192], 4096, 5, 4096)[4096..],
            suite::pattern_bytes(5, 4096)[..]
        );
    }

    #[test]
    fn odd_size_diagnosis() {
        let file: Vec<u8> = (0..ODD_LEN).map(|i| (i % 251) as u8 + 1).collect();
        let mut good = file.clone();
        good.resize(ODD_DEV, 0);
        assert_eq!(odd_mismatch(&good, &file, ODD_DEV), None);
        // What a short read retried from the same offset gives.
        let mut bad = file.clone();
        bad.extend_from_slice(&file[..ODD_DEV - ODD_LEN]);
        let why = odd_mismatch(&bad, &file, ODD_DEV).unwrap();
        assert!(why.contains("bytes 1575..2048"), "{why}");
        assert!(why.contains("file's bytes 0..16"), "{why}");
        assert!(odd_mismatch(&good[..2000], &file, ODD_DEV).is_some());
        assert_eq!(unhex("00ff10").unwrap(), [0, 255, 16]);
        assert!(unhex("0g").is_err());
    }

    #[test]
    fn fingerprint_sees_content_and_mtime() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        pattern_file(&p, 7, 10_000).unwrap();
        let f = Fingerprint::of(&p).unwrap();
        f.same(&p, "now").unwrap();
        let mut w = OpenOptions::new().write(true).open(&p).unwrap();
        w.seek(SeekFrom::Start(5)).unwrap();
        w.write_all(&[0]).unwrap();
        drop(w);
        assert!(f.same(&p, "after a write").is_err());
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        pattern_file(&p, 7, 10_000).unwrap();
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
        let e = format!("{:#}", f.same(&p, "x").unwrap_err());
        assert!(e.contains("mtime"), "{e}");
        assert_eq!(
            pattern_mismatch(&suite::pattern_bytes(3, 100), 3, 100),
            None
        );
        assert!(pattern_mismatch(&suite::pattern_bytes(3, 99), 3, 100).is_some());
    }
}
