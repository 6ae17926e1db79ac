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
const MARK: &str = "@@BLK";
/// Put before every payload: stop at the first failing command, and `m`
/// prints a result line (`m step NAME` names the step under way).
const PRELUDE: &str = "set -e; m() { echo \"@@BLK $*\"; }; ";
/// Boot plus payload, per boot.
const BOOT_LIMIT: Duration = Duration::from_secs(60);
/// How long the host waits for the guest to reach a step.
const STEP_LIMIT: Duration = Duration::from_secs(30);
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
fn fresh_seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // Word "blk": not one of those the main suite draws from the same clock.
    pattern::word(t ^ (u64::from(std::process::id()) << 40), 0x0062_6c6b)
}

/// Seed `k` derived from `base` (independent streams, not shifted copies).
fn seed(base: u64, k: u64) -> u64 {
    pattern::word(base, k)
}

fn sha256_hex(b: &[u8]) -> String {
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
struct Fingerprint {
    sha256: String,
    len: u64,
    mtime: SystemTime,
}

impl Fingerprint {
    fn of(path: &Path) -> Result<Fingerprint> {
        let m = fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
        Ok(Fingerprint {
            sha256: sha256_file(path)?,
            len: m.len(),
            mtime: m.modified()?,
        })
    }

    /// Fails if `path` no longer matches.
    fn same(&self, path: &Path, when: &str) -> Result<()> {
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
fn sparse_file(path: &Path, size: u64) -> Result<()> {
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
fn pattern_mismatch(got: &[u8], seed: u64, len: usize) -> Option<String> {
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
fn host_mkfs(image: &Path, src: &Path) -> Result<()> {
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
fn host_fsck(image: &Path) -> Result<String> {
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
fn debugfs_cat(image: &Path, path: &str) -> Result<Vec<u8>> {
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
fn release(hostfs: &Path, name: &str) -> Result<()> {
    let tmp = hostfs.join(format!(".{name}.tmp"));
    fs::write(&tmp, name).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, hostfs.join(name)).with_context(|| format!("creating {name}"))
}

/// The rest of the first console line with `@@BLK <key>` (followed by a
/// space or the line's end), trimmed.
fn mark_line(console: &str, key: &str) -> Option<String> {
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

fn quote(console: &str) -> String {
    format!(
        "--- last {TAIL} console lines ---\n{}",
        boot::tail(console, TAIL)
    )
}

/// A boot of `kernel` running `script` (after [`PRELUDE`]) with `args` on
/// the kernel command line and, if given, `hostfs` mounted on /host.
fn spec(kernel: &Path, script: &str, args: &[String], hostfs: Option<&Path>) -> BootSpec {
    let cmd = vec!["/bin/sh".into(), "-c".into(), format!("{PRELUDE}{script}")];
    let mut s = BootSpec::new(kernel.to_path_buf(), cmd);
    s.extra_args = vec!["quiet".into()];
    s.extra_args.extend(args.iter().cloned());
    s.hostfs_root = hostfs.map(Path::to_path_buf);
    s.timeout = BOOT_LIMIT;
    s
}

/// Fails, naming the step and quoting the console, unless the payload
/// exited 0.
fn exited_ok(out: &boot::BootOutcome) -> Result<()> {
    if out.exit_code != 0 {
        bail!(
            "the payload failed {} (exit status {})\n{}",
            last_step(&out.console),
            out.exit_code,
            quote(&out.console)
        );
    }
    Ok(())
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

fn is_root() -> bool {
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
