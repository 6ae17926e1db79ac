// SPDX-License-Identifier: GPL-2.0
//! `host_hostfs_*`: hostfs (`fs/hostfs/hostfs_kern.c` over the host half
//! `hostfs_user.c`, which the Rust layer replaces) end to end on real boots,
//! as the UML HOWTO (`Documentation/virt/uml/user_mode_linux_howto_v2.rst`,
//! "Host file access") promises it. Every operation the kernel half asks of
//! the host half is made from the guest and judged from the host with
//! `std::fs`/nix, and the other way round: what the host made is what the
//! guest's busybox sees. The checks look only at what the host and the
//! guest see, so they judge a C or a Rust layer alike. All data, names,
//! modes, owners and times are fresh random values of this run.
//!
//! Two boots per kernel. The main one, `hostfs=R` (R = T/outer/root in a
//! temporary directory T; T, T/outer and T/outer/box hold a secret file),
//! runs a script the host put in R:
//!
//! * `host_hostfs_host_to_guest`: a host file's content (SHA-256 in the
//!   guest), mode (with set-id and sticky bits), owner, group, size, link
//!   count, inode number, and access and modification times to the
//!   nanosecond, as the guest's `stat` shows them before it read the file;
//!   then, changed by the host while the guest runs (mode, owner, times, and
//!   a new file), the new values; a symbolic link's target (`readlink`);
//!   three hard links with one inode number and a link count of 3.
//! * `host_hostfs_guest_to_host`: what the guest made, as the host sees it:
//!   file content (`stat_file`, `file_create`, `write_file`), `mkdir`,
//!   `rmdir`, `unlink`, `rename` (also over an existing file), a hard link
//!   (same inode, link count 2), a symbolic link's target, `mkfifo`, `chmod`
//!   of a file and a directory (set-id bits included), `chown` of owner and
//!   group and of the owner alone (the group stays), `touch -d` of both
//!   times and of each alone, `truncate` to a shorter size; then, for ~30
//!   paths made by either side, the guest's final `stat` (mode, links,
//!   owner, size, blocks, inode, three times to the nanosecond) equals the
//!   host's `lstat` after the boot.
//! * `host_hostfs_rename_flags`: `renameat2` from the guest (`uml-guest
//!   rename2`): `RENAME_NOREPLACE` onto an existing name fails with EEXIST
//!   and changes nothing, onto a free name renames; `RENAME_EXCHANGE` of a
//!   file and a directory swaps them on the host.
//! * `host_hostfs_readdir`: a host directory of 1,000 entries with long
//!   random names (many `getdents` calls, so the listing resumes from
//!   `seek_dir` positions) lists in the guest as exactly the host's names,
//!   and 1,000 files the guest made list on the host as exactly those.
//! * `host_hostfs_large_file`: a host file larger than 4 GiB, sparse, with
//!   data past 4 GiB: the guest sees its size and block count and reads the
//!   data there; a file the guest grew past 4 GiB and wrote past 4 GiB has
//!   that size and data on the host and stays sparse.
//! * `host_hostfs_fsync`: pages the guest dirtied through a shared mapping
//!   reach the host file only by write-back; `fsync` and `fdatasync` in the
//!   guest (`uml-guest mmap-fsync`, which then holds the mapping) must have
//!   put them there when they return.
//! * `host_hostfs_statfs`: the guest's `stat -f` of the mount (type
//!   `HOSTFS_SUPER_MAGIC`, block size, blocks, files, name length, fsid;
//!   free counts within 0.2% of the blocks of what the host's statvfs says
//!   before and after) is the host's statvfs of R.
//! * `host_hostfs_confine`: `hostfs=R` confines every hostfs mount to R
//!   (the HOWTO: "a user inside UML can [only] mount ... within the
//!   specified directory tree"). The guest mounts hostfs with the options
//!   `/..`, `..`, `/c/../..`, `/../..`, a symbolic link in R to the parent
//!   (absolute and relative), one the guest made itself, and a path through
//!   a symbolic link (`/c/esc-abs/box`); and, through the new mount API
//!   (`uml-guest fsmount`: `fsconfig` `hostfs=`, which reaches the kernel
//!   half's `parse_param` instead of `parse_monolithic`), `/..` and the
//!   absolute link. Each must be refused or land in R: the guest must not
//!   find the secret file under it, and the host must find the inode number
//!   of the mount's root among R's files. `/c` must mount on R/c both
//!   ways. From the mount root, `cd ..` must be
//!   the guest's `/`, and a symbolic link in R to the outside must resolve
//!   in the guest, not on the host. Linux 6.12's kernel half appends the
//!   option to the prefix unchecked and resolves the root path on the host
//!   (`hostfs_parse_monolithic`, `hostfs_fill_super`), so it fails today on
//!   both layers without `kernel-patches/0020-hostfs-...`, which fixes it.
//! * `host_hostfs_confine_swap`: with a second hostfs mount of R, a
//!   directory the guest holds as its working directory there is replaced
//!   through the first mount by a symbolic link to `../..`; the held
//!   directory must not then show the parent of R. The kernel half keeps
//!   building host paths from the cached dentry, so patch 0020 cannot
//!   close this: the host half must not follow the link. Patch 0022 tells
//!   the host half the prefix (`hostfs_set_prefix()`), and the Rust one
//!   resolves every path below it beneath it (openat2 `RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS`), so the lookup in the held directory fails with
//!   `ELOOP`. Linux 6.12's `hostfs_user.c` ignores the prefix and lets the
//!   host follow the link: the case is listed in [`C_LAYER_DEFECTS`],
//!   reported as skipped on the C kernel with what it found, and a C
//!   kernel that passes it fails the run until the list is updated.
//!
//! The second boot, `hostfs=A,append` (`host_hostfs_append`): a write at
//! offset 0 of a host file opened read-write, a `dd` write after a seek
//! into the file, and a write after an `O_TRUNC` open all land at the end
//! on the host; `rm` fails with EPERM and the file stays; a new file gets
//! its content.
//!
//! Each boot fails all its cases if the payload fails, or the kernel logs a
//! WARNING or BUG.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use crate::block::{self, KWARN, MARK, STEP_LIMIT};
use crate::boot::Guest;
use crate::paths::Ctx;
use crate::suite::{self, proto};

pub const HOST_TO_GUEST: &str = "host_hostfs_host_to_guest";
pub const GUEST_TO_HOST: &str = "host_hostfs_guest_to_host";
pub const RENAME: &str = "host_hostfs_rename_flags";
pub const READDIR: &str = "host_hostfs_readdir";
pub const LARGE: &str = "host_hostfs_large_file";
pub const FSYNC: &str = "host_hostfs_fsync";
pub const STATFS: &str = "host_hostfs_statfs";
pub const CONFINE: &str = "host_hostfs_confine";
pub const CONFINE_SWAP: &str = "host_hostfs_confine_swap";
pub const APPEND: &str = "host_hostfs_append";

/// The cases of the main boot, in report order.
const MAIN_CASES: [&str; 9] = [
    HOST_TO_GUEST,
    GUEST_TO_HOST,
    RENAME,
    READDIR,
    LARGE,
    FSYNC,
    STATFS,
    CONFINE,
    CONFINE_SWAP,
];

/// All the case names, in report order.
pub const CASES: [&str; 10] = [
    HOST_TO_GUEST,
    GUEST_TO_HOST,
    RENAME,
    READDIR,
    LARGE,
    FSYNC,
    STATFS,
    CONFINE,
    CONFINE_SWAP,
    APPEND,
];

/// Cases the C host half of Linux 6.12 (`hostfs_user.c`) fails, and why;
/// the Rust layer must pass them (see
/// [`crate::suite::known_defect_verdict`]).
pub const C_LAYER_DEFECTS: &[(&str, &str)] = &[(
    CONFINE_SWAP,
    "hostfs_user.c ignores the hostfs= prefix (hostfs_set_prefix) and lets the host resolve \
     every path from the root again, following a symbolic link that replaced a directory the \
     guest still holds",
)];

/// The verdict on the C kernel for case `name`: a known defect of the C
/// layer (see [`C_LAYER_DEFECTS`]) is a skip when it fails, a failure when
/// it passes; any other case as it is.
pub fn c_layer_verdict(name: &str, result: Result<String>) -> Result<String> {
    crate::suite::known_defect_verdict(C_LAYER_DEFECTS, "C layer", name, result)
}

type Results = Vec<(&'static str, Result<String>)>;

/// `HOSTFS_SUPER_MAGIC` (include/uapi/linux/magic.h), as busybox `stat -f
/// -c %t` prints it.
const HOSTFS_MAGIC_HEX: &str = "c0ffee";
/// Entries of each 1,000-entry directory.
const MANY: usize = 1000;
/// The format of the guest's `stat -c`: raw mode (hex), links, owner,
/// group, size, blocks, inode, the three times in seconds, then the three
/// times as text (for their nanoseconds).
const STAT_FMT: &str = "%f %h %u %g %s %b %i %X %Y %Z|%x|%y|%z";
/// The sparse host file's data: at this offset into its 3-block window.
const SPARSE_IN: usize = 777;
const SPARSE_LEN: usize = 8000;
const SPARSE_WINDOW: usize = 3 * 4096;
/// `errno` texts of the guest's busybox and `uml-guest`.
const EEXIST_RUST: &str = "File exists (os error 17)";
const EPERM_TEXT: &str = "Operation not permitted";

// ---------------------------------------------------------------------------
// Pure helpers.

/// A time as (seconds, nanoseconds).
type Time = (i64, u32);

/// What `stat` says of a file, on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatView {
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub blocks: u64,
    pub ino: u64,
    pub atime: Time,
    pub mtime: Time,
    pub ctime: Time,
}

/// The nanoseconds of a busybox time text `YYYY-MM-DD hh:mm:ss.nnnnnnnnn
/// +zzzz`.
fn text_nanos(t: &str) -> Option<u32> {
    let frac = t.split_once('.')?.1;
    let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    let n: u32 = digits.parse().ok()?;
    Some(n * 10u32.pow(9 - digits.len() as u32))
}

/// Parses the guest's `stat -c` [`STAT_FMT`] output.
pub(crate) fn parse_guest_stat(line: &str) -> Option<StatView> {
    let mut parts = line.split('|');
    let w: Vec<&str> = parts.next()?.split_whitespace().collect();
    let (xa, xm, xc) = (parts.next()?, parts.next()?, parts.next()?);
    if w.len() != 10 || parts.next().is_some() {
        return None;
    }
    let n = |i: usize| w[i].parse::<u64>().ok();
    let s = |i: usize| w[i].parse::<i64>().ok();
    Some(StatView {
        mode: u32::from_str_radix(w[0], 16).ok()?,
        nlink: n(1)?,
        uid: n(2)?.try_into().ok()?,
        gid: n(3)?.try_into().ok()?,
        size: n(4)?,
        blocks: n(5)?,
        ino: n(6)?,
        atime: (s(7)?, text_nanos(xa)?),
        mtime: (s(8)?, text_nanos(xm)?),
        ctime: (s(9)?, text_nanos(xc)?),
    })
}

/// The host's `lstat` of `path`.
fn host_stat(path: &Path) -> Result<StatView> {
    let m = fs::symlink_metadata(path).with_context(|| format!("lstat {}", path.display()))?;
    Ok(StatView {
        mode: m.mode(),
        nlink: m.nlink(),
        uid: m.uid(),
        gid: m.gid(),
        size: m.size(),
        blocks: m.blocks(),
        ino: m.ino(),
        atime: (m.atime(), m.atime_nsec() as u32),
        mtime: (m.mtime(), m.mtime_nsec() as u32),
        ctime: (m.ctime(), m.ctime_nsec() as u32),
    })
}

fn show_time(t: Time) -> String {
    format!("{}.{:09}", t.0, t.1)
}

/// The fields in which `got` differs from `want`, as `field got (want W)`.
pub(crate) fn stat_diff(got: &StatView, want: &StatView) -> Vec<String> {
    let mut d = Vec::new();
    let mut f = |name: &str, g: String, w: String| {
        if g != w {
            d.push(format!("{name} {g} (host {w})"));
        }
    };
    f(
        "mode",
        format!("{:o}", got.mode),
        format!("{:o}", want.mode),
    );
    f("links", got.nlink.to_string(), want.nlink.to_string());
    f("uid", got.uid.to_string(), want.uid.to_string());
    f("gid", got.gid.to_string(), want.gid.to_string());
    f("size", got.size.to_string(), want.size.to_string());
    f("blocks", got.blocks.to_string(), want.blocks.to_string());
    f("ino", got.ino.to_string(), want.ino.to_string());
    f("atime", show_time(got.atime), show_time(want.atime));
    f("mtime", show_time(got.mtime), show_time(want.mtime));
    f("ctime", show_time(got.ctime), show_time(want.ctime));
    d
}

/// The fsid as busybox `stat -f -c %i` prints it (the two 32-bit words of
/// `f_fsid`, first one high), from glibc's statvfs `f_fsid` (first word
/// low).
pub(crate) fn busybox_fsid(statvfs_fsid: u64) -> String {
    let (lo, hi) = (statvfs_fsid & 0xffff_ffff, statvfs_fsid >> 32);
    format!("{:x}", (lo << 32) | hi)
}

/// What is in one listing and not in the other: (missing, extra), each at
/// most `n` names shown, with the counts.
pub(crate) fn listing_diff(got: &BTreeSet<String>, want: &BTreeSet<String>, n: usize) -> String {
    let missing: Vec<&String> = want.difference(got).collect();
    let extra: Vec<&String> = got.difference(want).collect();
    let few = |v: &[&String]| {
        v.iter()
            .take(n)
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "{} missing ({}), {} extra ({})",
        missing.len(),
        few(&missing),
        extra.len(),
        few(&extra)
    )
}

/// Replaces every `@NAME@` of `template` from `vars`; fails on one left.
pub(crate) fn fill(template: &str, vars: &[(&str, String)]) -> Result<String> {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("@{k}@"), v);
    }
    let left: Vec<&str> = s
        .match_indices('@')
        .filter_map(|(i, _)| {
            let rest = &s[i + 1..];
            let name = &rest[..rest.find('@')?];
            let first = name.bytes().next()?;
            (first.is_ascii_uppercase()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
            .then_some(name)
        })
        .collect();
    if !left.is_empty() {
        bail!("the guest script still holds @{}@", left.join("@, @"));
    }
    Ok(s)
}

/// The checks of one case: facts to report and failures.
#[derive(Default)]
struct Verdict {
    facts: Vec<String>,
    fails: Vec<String>,
}

impl Verdict {
    fn fact(&mut self, f: impl Into<String>) {
        self.facts.push(f.into());
    }

    fn fail(&mut self, f: impl Into<String>) {
        self.fails.push(f.into());
    }

    /// Fails with `what: got G, expected W` unless equal.
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.fail(format!("{what}: got {got:?}, expected {want:?}"));
        }
    }

    /// Records a failure of a step that could not be judged.
    fn step<T>(&mut self, r: Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(format!("{e:#}"));
                None
            }
        }
    }

    fn result(self, pass: &str) -> Result<String> {
        if self.fails.is_empty() {
            let mut s = pass.to_string();
            if !self.facts.is_empty() {
                s.push_str("; ");
                s.push_str(&self.facts.join("; "));
            }
            return Ok(s);
        }
        let mut s = if self.fails.len() == 1 {
            self.fails[0].clone()
        } else {
            format!(
                "{} checks failed, the first: {}",
                self.fails.len(),
                self.fails[0]
            )
        };
        for f in self.fails.iter().skip(1) {
            s.push_str(&format!("\n{f}"));
        }
        for f in &self.facts {
            s.push_str(&format!("\n(fact) {f}"));
        }
        Err(anyhow!(s))
    }
}

// ---------------------------------------------------------------------------
// The plan of the main boot: every random value of the run.

struct Rng {
    base: u64,
    k: u64,
}

impl Rng {
    fn next(&mut self) -> u64 {
        self.k += 1;
        block::seed(self.base, self.k)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn word(&mut self) -> String {
        format!("{:016x}", self.next())
    }

    /// A time between 2001 and 2030, with nanoseconds unless `whole`.
    fn time(&mut self, whole: bool) -> Time {
        let s = 1_000_000_000 + self.below(900_000_000) as i64;
        (
            s,
            if whole {
                0
            } else {
                self.below(1_000_000_000) as u32
            },
        )
    }

    fn id(&mut self) -> u32 {
        1000 + self.below(60_000) as u32
    }

    fn mode(&mut self) -> u32 {
        self.below(0o10000) as u32
    }
}

/// Owner, group, mode and times the host gives a file.
#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    atime: Time,
    mtime: Time,
}

impl Meta {
    fn random(r: &mut Rng) -> Meta {
        Meta {
            mode: r.mode(),
            uid: r.id(),
            gid: r.id(),
            atime: r.time(false),
            mtime: r.time(false),
        }
    }

    /// Applies it to `path` on the host (owner first: a chown clears set-id
    /// bits).
    fn apply(&self, path: &Path) -> Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("chown {}", path.display()))?;
        fs::set_permissions(path, fs::Permissions::from_mode(self.mode))
            .with_context(|| format!("chmod {}", path.display()))?;
        set_times(path, self.atime, self.mtime)
    }

    /// Checks a guest's view against it (and the size).
    fn check(&self, v: &mut Verdict, what: &str, got: &StatView, size: u64) {
        v.eq(&format!("{what}: mode"), got.mode & 0o7777, self.mode);
        v.eq(&format!("{what}: uid"), got.uid, self.uid);
        v.eq(&format!("{what}: gid"), got.gid, self.gid);
        v.eq(&format!("{what}: size"), got.size, size);
        v.eq(&format!("{what}: atime"), got.atime, self.atime);
        v.eq(&format!("{what}: mtime"), got.mtime, self.mtime);
    }
}

fn set_times(path: &Path, a: Time, m: Time) -> Result<()> {
    let ts = |t: Time| TimeSpec::new(t.0, t.1.into());
    utimensat(None, path, &ts(a), &ts(m), UtimensatFlags::NoFollowSymlink)
        .with_context(|| format!("utimensat {}", path.display()))
}

struct Plan {
    /// The run's word: in names and in the secret.
    w: String,
    /// Whether the harness is root (else no owners are changed).
    root: bool,
    // host -> guest
    data_seed: u64,
    data_len: usize,
    meta0: Meta,
    meta1: Meta,
    late_seed: u64,
    late_len: usize,
    sym_target: String,
    sparse_size: u64,
    sparse_block: u64,
    sparse_seed: u64,
    many: Vec<String>,
    // guest -> host
    g_data_seed: u64,
    g_data_len: usize,
    words: [String; 8],
    g_sym_target: String,
    mode_file: u32,
    mode_dir: u32,
    own: (u32, u32),
    own_u: u32,
    t_both: i64,
    t_a: i64,
    t_m: i64,
    trunc_seed: u64,
    trunc_len: usize,
    trunc_to: usize,
    big_size: u64,
    big_block: u64,
    big_seed: u64,
    big_len: usize,
    mm: [(u64, usize); 2],
    secret: String,
}

impl Plan {
    fn new(base: u64) -> Plan {
        let mut r = Rng { base, k: 0 };
        let w = r.word();
        let many = (0..MANY)
            .map(|i| format!("{}-{i:04}-{}{}{}", r.word(), r.word(), r.word(), r.word()))
            .collect();
        let trunc_len = 20_000 + r.below(20_000) as usize;
        Plan {
            root: block::is_root(),
            data_seed: r.next(),
            data_len: 50_000 + r.below(50_000) as usize,
            meta0: Meta::random(&mut r),
            meta1: Meta::random(&mut r),
            late_seed: r.next(),
            late_len: 1 + r.below(9000) as usize,
            sym_target: format!("../tgt-{}/sub/../x", r.word()),
            sparse_size: (5 << 30) + r.below(1 << 20) * 4096 + 1 + r.below(4095),
            sparse_block: (1 << 20) + 1 + r.below(1 << 17),
            sparse_seed: r.next(),
            many,
            g_data_seed: r.next(),
            g_data_len: 30_000 + r.below(30_000) as usize,
            words: std::array::from_fn(|_| r.word()),
            g_sym_target: format!("tgt-{}/../y", r.word()),
            mode_file: r.mode(),
            mode_dir: r.mode(),
            own: (r.id(), r.id()),
            own_u: r.id(),
            t_both: r.time(true).0,
            t_a: r.time(true).0,
            t_m: r.time(true).0,
            trunc_seed: r.next(),
            trunc_len,
            trunc_to: 1 + r.below(trunc_len as u64 - 1) as usize,
            big_size: (6 << 30) + r.below(1 << 30),
            big_block: (1 << 20) + 1 + r.below(1 << 18),
            big_seed: r.next(),
            big_len: 5000 + r.below(10_000) as usize,
            mm: [
                (r.next(), 4096 + 1 + r.below(5 * 4096) as usize),
                (r.next(), 4096 + 1 + r.below(5 * 4096) as usize),
            ],
            secret: format!("secret of {} {}\n", w, r.word()),
            w,
        }
    }

    /// The 3-block window of the sparse host file the guest reads, as the
    /// host wrote it.
    fn sparse_window(&self) -> Vec<u8> {
        let mut v = vec![0u8; SPARSE_WINDOW];
        v[SPARSE_IN..SPARSE_IN + SPARSE_LEN]
            .copy_from_slice(&suite::pattern_bytes(self.sparse_seed, SPARSE_LEN));
        v
    }

    fn guest_many(&self) -> BTreeSet<String> {
        (0..MANY).map(|i| format!("gm-{i}-{}", self.w)).collect()
    }
}

// ---------------------------------------------------------------------------
// The main boot: host side before the boot.

/// Paths (under R) whose final guest `stat` must equal the host's.
const FINAL_PATHS: &[&str] = &[
    "h",
    "h/data",
    "h/late",
    "h/sym",
    "h/sub",
    "h/hard1",
    "h/hard2",
    "h/sub/hard3",
    "h/sparse",
    "g",
    "g/data",
    "g/data-link",
    "g/renamed",
    "g/ow-dst",
    "g/nr-b",
    "g/nr-c",
    "g/ex-file",
    "g/ex-file/inner",
    "g/ex-dir",
    "g/sym",
    "g/fifo",
    "g/mode",
    "g/dirmode",
    "g/own",
    "g/own-u",
    "g/time",
    "g/time-am",
    "g/trunc",
    "g/big",
    "g/mm0",
    "g/mm1",
];

/// The prefix R inside the temporary directory T.
const PREFIX: &str = "outer/root";

/// Lays out T (the temporary directory): the secret file `secret-W` in T,
/// in T/outer (the parent of R) and in T/outer/box, where the escapes the
/// confinement case tries would land; R = T/outer/root holds the host's
/// files.
fn prepare(t: &Path, p: &Plan) -> Result<()> {
    let r = t.join(PREFIX);
    for d in ["outer", "outer/box", PREFIX] {
        fs::create_dir(t.join(d)).with_context(|| format!("mkdir {d}"))?;
    }
    for d in ["h", "h/sub", "h/many", "out", "c"] {
        fs::create_dir(r.join(d)).with_context(|| format!("mkdir {d}"))?;
    }
    for d in ["", "outer", "outer/box"] {
        fs::write(t.join(d).join(format!("secret-{}", p.w)), &p.secret)?;
    }
    std::os::unix::fs::symlink(t.join("outer"), r.join("c/esc-abs"))?;
    std::os::unix::fs::symlink("../..", r.join("c/esc-rel"))?;
    let h = r.join("h");
    fs::write(
        h.join("data"),
        suite::pattern_bytes(p.data_seed, p.data_len),
    )?;
    if p.root {
        p.meta0.apply(&h.join("data"))?;
    } else {
        fs::set_permissions(h.join("data"), fs::Permissions::from_mode(p.meta0.mode))?;
        set_times(&h.join("data"), p.meta0.atime, p.meta0.mtime)?;
    }
    std::os::unix::fs::symlink(&p.sym_target, h.join("sym"))?;
    fs::write(h.join("hard1"), &p.words[0])?;
    fs::hard_link(h.join("hard1"), h.join("hard2"))?;
    fs::hard_link(h.join("hard1"), h.join("sub/hard3"))?;
    fs::set_permissions(
        h.join("sub"),
        fs::Permissions::from_mode(0o700 | p.mode_dir),
    )?;
    let f = File::create(h.join("sparse"))?;
    f.set_len(p.sparse_size)?;
    f.write_all_at(
        &suite::pattern_bytes(p.sparse_seed, SPARSE_LEN),
        p.sparse_block * 4096 + SPARSE_IN as u64,
    )?;
    drop(f);
    for n in &p.many {
        File::create(h.join("many").join(n)).with_context(|| format!("creating h/many/{n}"))?;
    }
    Ok(())
}

/// Host changes while the guest waits after its first look at `h/data`.
fn change_mid_run(r: &Path, p: &Plan) -> Result<()> {
    let data = r.join("h/data");
    if p.root {
        p.meta1.apply(&data)?;
    } else {
        fs::set_permissions(&data, fs::Permissions::from_mode(p.meta1.mode))?;
        set_times(&data, p.meta1.atime, p.meta1.mtime)?;
    }
    fs::write(
        r.join("h/late"),
        suite::pattern_bytes(p.late_seed, p.late_len),
    )
    .context("writing h/late")
}

// ---------------------------------------------------------------------------
// The main boot: the guest's script (in R, sourced after the prelude).

const MAIN_SCRIPT: &str = r#"
H=/host; G=@GUEST@; W=@W@; F='@FMT@'
st() { m "st$1 $2" "$(stat -c "$F" "$H/$2")"; }
cd /
m step host-to-guest
st 0 h/data
m sha-data $(sha256sum < $H/h/data)
m readlink "$(readlink $H/h/sym)"
for f in hard1 hard2 sub/hard3; do m "hard $f" $(stat -c '%h %i' $H/h/$f); done
m sparse $(stat -c '%s %b' $H/h/sparse) $(dd if=$H/h/sparse bs=4096 skip=@SPARSE_BLOCK@ count=3 2>/dev/null | sha256sum)
ls -1 $H/h/many > $H/out/h-many.lst
m many $(wc -l < $H/out/h-many.lst)
m step guest-to-host
mkdir $H/g $H/g/many $H/g/gonedir $H/g/dirmode $H/g/ex-dir
$G pattern @G_DATA_SEED@ @G_DATA_LEN@ > $H/g/data
ln $H/g/data $H/g/data-link
printf %s @W0@ > $H/g/tmpname; mv $H/g/tmpname $H/g/renamed
printf %s @W1@ > $H/g/ow-src; printf %s @W2@ > $H/g/ow-dst; mv -f $H/g/ow-src $H/g/ow-dst
printf %s @W3@ > $H/g/nr-a; printf %s @W4@ > $H/g/nr-b
r=0; $G rename2 $H/g/nr-a $H/g/nr-b noreplace 2>/tmp/e || r=$?; m nr-exists $r "$(cat /tmp/e)"
r=0; $G rename2 $H/g/nr-a $H/g/nr-c noreplace 2>/tmp/e || r=$?; m nr-free $r "$(cat /tmp/e)"
printf %s @W5@ > $H/g/ex-file; printf %s @W6@ > $H/g/ex-dir/inner
r=0; $G rename2 $H/g/ex-file $H/g/ex-dir exchange 2>/tmp/e || r=$?; m exchange $r "$(cat /tmp/e)"
ln -s '@G_SYM@' $H/g/sym
mkfifo $H/g/fifo
printf x > $H/g/gone; rm $H/g/gone; rmdir $H/g/gonedir
: > $H/g/mode; chmod @MODE_FILE@ $H/g/mode; chmod @MODE_DIR@ $H/g/dirmode
: > $H/g/own; : > $H/g/own-u
if [ @ROOT@ = 1 ]; then chown @OWN_U@:@OWN_G@ $H/g/own; chown @OWN_U1@ $H/g/own-u; fi
: > $H/g/time; touch -d @@T_BOTH@ $H/g/time
: > $H/g/time-am; touch -a -d @@T_A@ $H/g/time-am; touch -m -d @@T_M@ $H/g/time-am
$G pattern @TRUNC_SEED@ @TRUNC_LEN@ > $H/g/trunc; truncate -s @TRUNC_TO@ $H/g/trunc
truncate -s @BIG_SIZE@ $H/g/big
$G pattern @BIG_SEED@ @BIG_LEN@ | dd of=$H/g/big bs=4096 seek=@BIG_BLOCK@ conv=notrunc 2>/dev/null
i=0; while [ $i -lt @MANY@ ]; do : > $H/g/many/gm-$i-$W; i=$((i+1)); done
m step fsync
truncate -s @MM0_LEN@ $H/g/mm0; $G mmap-fsync $H/g/mm0 @MM0_SEED@ @MM0_LEN@ fsync $H/go1 30
st 1 h/data
m sha-late $(sha256sum < $H/h/late)
truncate -s @MM1_LEN@ $H/g/mm1; $G mmap-fsync $H/g/mm1 @MM1_SEED@ @MM1_LEN@ fdatasync $H/go2 30
m step statfs
m statfs $(stat -f -c '%t %s %b %f %a %c %d %l %i' $H)
m step confine
mkdir -p /mnt/x /mnt/b
seen() {
  s=no-secret
  if [ -e /mnt/x/secret-$W ]; then s=$(sha256sum < /mnt/x/secret-$W); s=secret:${s%% *}; fi
  m "cf $1" mounted $(stat -c %i /mnt/x) $s "$(ls -1a /mnt/x | head -n 12 | tr '\n' ' ')"
  umount /mnt/x
}
try() {
  if mount -t hostfs none /mnt/x -o "$2" 2>/tmp/e; then seen "$1"; else m "cf $1" refused "$(cat /tmp/e)"; fi
}
tryfs() {
  if $G fsmount hostfs /mnt/x "hostfs=$2" 2>/tmp/e; then seen "$1"; else m "cf $1" refused "$(cat /tmp/e)"; fi
}
ln -s ../.. $H/c/gesc
try in-prefix /c
try dotdot /..
try dotdot-rel ..
try dotdot-sub /c/../..
try dotdot-2 /../..
try link-abs /c/esc-abs
try link-rel /c/esc-rel
try link-guest /c/gesc
try link-mid /c/esc-abs/box
tryfs fs-in-prefix /c
tryfs fs-dotdot /..
tryfs fs-link-abs /c/esc-abs
m dmesg "$(dmesg | grep 'hostfs: ' | tail -n 12 | tr '\n' ';')"
cd $H; cd ..
m cdup "$(pwd)" $(stat -c %i .) $(stat -c %i /) $([ -e init ] && echo init || echo no-init) $([ -e secret-$W ] && echo secret || echo no-secret)
cd /
for l in esc-rel esc-abs; do
  r=0; cat $H/c/$l/secret-$W > /dev/null 2>/tmp/e || r=$?; m "glink $l" $r "$(cat /tmp/e)"
done
m step swap
mount -t hostfs none /mnt/b
mkdir $H/c/dw
(
  cd /mnt/b/c/dw
  mv $H/c/dw $H/c/dw.old
  ln -s ../.. $H/c/dw
  if [ -e secret-$W ]; then s=$(sha256sum < secret-$W); m swap escaped ${s%% *} "$(ls -1 | tr '\n' ' ')"
  else m swap confined "$(ls -1a | tr '\n' ' ')"; fi
)
umount /mnt/b
m step final
for p in @FINAL@; do st f $p; done
"#;

fn main_script(p: &Plan) -> Result<String> {
    let mut vars = vec![
        ("GUEST", proto::GUEST.to_string()),
        ("W", p.w.clone()),
        ("FMT", STAT_FMT.to_string()),
        ("SPARSE_BLOCK", p.sparse_block.to_string()),
        ("G_DATA_SEED", format!("{:#x}", p.g_data_seed)),
        ("G_DATA_LEN", p.g_data_len.to_string()),
        ("G_SYM", p.g_sym_target.clone()),
        ("MODE_FILE", format!("{:o}", p.mode_file)),
        ("MODE_DIR", format!("{:o}", p.mode_dir)),
        ("ROOT", u8::from(p.root).to_string()),
        ("OWN_U", p.own.0.to_string()),
        ("OWN_G", p.own.1.to_string()),
        ("OWN_U1", p.own_u.to_string()),
        ("T_BOTH", p.t_both.to_string()),
        ("T_A", p.t_a.to_string()),
        ("T_M", p.t_m.to_string()),
        ("TRUNC_SEED", format!("{:#x}", p.trunc_seed)),
        ("TRUNC_LEN", p.trunc_len.to_string()),
        ("TRUNC_TO", p.trunc_to.to_string()),
        ("BIG_SIZE", p.big_size.to_string()),
        ("BIG_SEED", format!("{:#x}", p.big_seed)),
        ("BIG_LEN", p.big_len.to_string()),
        ("BIG_BLOCK", p.big_block.to_string()),
        ("MANY", MANY.to_string()),
        ("FINAL", FINAL_PATHS.join(" ")),
    ];
    for (i, (seed, len)) in p.mm.iter().enumerate() {
        vars.push((["MM0_SEED", "MM1_SEED"][i], format!("{seed:#x}")));
        vars.push((["MM0_LEN", "MM1_LEN"][i], len.to_string()));
    }
    const W: [&str; 7] = ["W0", "W1", "W2", "W3", "W4", "W5", "W6"];
    for (k, word) in W.iter().zip(&p.words) {
        vars.push((k, word.clone()));
    }
    // `touch -d @SECONDS`: the template writes `@@T_BOTH@`.
    let s = fill(MAIN_SCRIPT, &vars)?;
    Ok(format!("{s}{KWARN}m step done\n"))
}

// ---------------------------------------------------------------------------
// The main boot.

/// The guest's `@@BLK KEY ...` line, or a failure quoting the console.
fn mark(console: &str, key: &str) -> Result<String> {
    block::mark_line(console, key).with_context(|| {
        format!(
            "no `{MARK} {key} ...` line on the console\n{}",
            block::quote(console)
        )
    })
}

/// The guest's `stat` line `st<tag> <path>`.
fn guest_stat(console: &str, tag: &str, path: &str) -> Result<StatView> {
    let line = mark(console, &format!("st{tag} {path}"))?;
    parse_guest_stat(&line)
        .with_context(|| format!("the guest's stat of {path} is not `{STAT_FMT}`: {line:?}"))
}

fn first_word(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or("")
}

/// What the host saw while the guest was running.
#[derive(Default)]
struct MidRun {
    fsync: Vec<Result<String>>,
    statvfs_before: Option<nix::sys::statvfs::Statvfs>,
    statvfs_after: Option<nix::sys::statvfs::Statvfs>,
}

/// Checks the host file the guest filled through a mapping and synced.
fn check_mm(r: &Path, i: usize, p: &Plan, mode: &str) -> Result<String> {
    let path = r.join(format!("g/mm{i}"));
    let (seed, len) = p.mm[i];
    let got = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    if let Some(m) = block::pattern_mismatch(&got, seed, len) {
        bail!(
            "after the guest's {mode} of a file it wrote through a shared mapping, the host's \
             g/mm{i} {m} (the dirty pages did not reach the host)"
        );
    }
    Ok(format!("{mode}: {len} mapped bytes on the host"))
}

/// The boots of the wanted cases; returns each wanted case's result (a
/// failed boot fails its cases).
pub fn run_cases(ctx: &Ctx, kernel: &Path, want: &dyn Fn(&str) -> bool) -> Results {
    let mut out = Results::new();
    if !CASES.iter().any(|n| want(n)) {
        return out;
    }
    if MAIN_CASES.iter().any(|n| want(n)) {
        let t = Instant::now();
        let mut res = Results::new();
        let boot = main_boot(ctx, kernel, &mut res);
        let secs = t.elapsed().as_secs_f64();
        out.extend(suite::shared_boot_verdicts(
            &MAIN_CASES,
            want,
            res,
            boot,
            secs,
            "main hostfs boot",
        ));
    }
    if want(APPEND) {
        let t = Instant::now();
        let r = append_boot(ctx, kernel);
        let secs = t.elapsed().as_secs_f64();
        out.push((APPEND, r.map(|f| format!("{f}; {secs:.1}s"))));
    }
    out
}

fn main_boot(ctx: &Ctx, kernel: &Path, res: &mut Results) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("uml-hostfs-")
        .tempdir()
        .context("creating a temporary directory")?;
    let t = dir.path();
    let r = t.join(PREFIX);
    let plan = Plan::new(block::fresh_seed());
    prepare(t, &plan)?;
    fs::write(r.join(".run.sh"), main_script(&plan)?)?;
    let mut mid = MidRun {
        statvfs_before: nix::sys::statvfs::statvfs(&r).ok(),
        ..MidRun::default()
    };
    let s = block::spec(kernel, ". /host/.run.sh", &[], Some(&r));
    let mut guest = Guest::start(&s, ctx)?;
    // First sync: fsync, then the host's changes; second: fdatasync.
    for (i, mode) in ["fsync", "fdatasync"].into_iter().enumerate() {
        guest.wait_for_console_count("mmap-fsync: synced", i + 1, STEP_LIMIT)?;
        mid.fsync.push(check_mm(&r, i, &plan, mode));
        if i == 0 {
            change_mid_run(&r, &plan)?;
        }
        block::release(&r, &format!("go{}", i + 1))?;
    }
    guest.wait_for_console(&format!("{MARK} statfs "), STEP_LIMIT)?;
    mid.statvfs_after = nix::sys::statvfs::statvfs(&r).ok();
    let out = guest.wait()?;
    block::exited_ok(&out)?;
    block::no_kernel_warnings(&out.console, "the hostfs boot")?;
    let c = &out.console;
    // Metadata first: the host's reads below change access times.
    res.push((HOST_TO_GUEST, host_to_guest(c, &r, &plan)));
    res.push((GUEST_TO_HOST, guest_to_host(c, &r, &plan)));
    res.push((RENAME, rename_flags(c, &r, &plan)));
    res.push((READDIR, readdir(c, &r, &plan)));
    res.push((LARGE, large_file(c, &r, &plan)));
    res.push((FSYNC, fsync_verdict(std::mem::take(&mut mid.fsync))));
    res.push((STATFS, statfs_verdict(c, &mid)));
    res.push((CONFINE, confine(c, t, &r, &plan)));
    res.push((CONFINE_SWAP, confine_swap(c, &plan)));
    Ok(())
}

fn host_to_guest(c: &str, r: &Path, p: &Plan) -> Result<String> {
    let mut v = Verdict::default();
    let h = r.join("h");
    let owners = |m: Meta| -> Meta {
        if p.root {
            m
        } else {
            Meta {
                uid: nix::unistd::geteuid().as_raw(),
                gid: nix::unistd::getegid().as_raw(),
                ..m
            }
        }
    };
    if let Some(st) = v.step(guest_stat(c, "0", "h/data")) {
        owners(p.meta0).check(
            &mut v,
            "h/data as the guest first saw it",
            &st,
            p.data_len as u64,
        );
        v.eq("h/data as the guest first saw it: links", st.nlink, 1);
    }
    if let Some(st) = v.step(guest_stat(c, "1", "h/data")) {
        owners(p.meta1).check(
            &mut v,
            "h/data after the host changed it while the guest ran",
            &st,
            p.data_len as u64,
        );
    }
    if let Some(line) = v.step(mark(c, "sha-data")) {
        let want = block::sha256_hex(&suite::pattern_bytes(p.data_seed, p.data_len));
        v.eq(
            "SHA-256 of h/data read in the guest",
            first_word(&line),
            want.as_str(),
        );
    }
    if let Some(line) = v.step(mark(c, "sha-late")) {
        let want = block::sha256_hex(&suite::pattern_bytes(p.late_seed, p.late_len));
        v.eq(
            "SHA-256 of h/late (made by the host while the guest ran) read in the guest",
            first_word(&line),
            want.as_str(),
        );
    }
    if let Some(line) = v.step(mark(c, "readlink")) {
        v.eq(
            "the guest's readlink of h/sym",
            line.as_str(),
            p.sym_target.as_str(),
        );
    }
    let ino = fs::symlink_metadata(h.join("hard1")).map(|m| m.ino()).ok();
    for f in ["hard1", "hard2", "sub/hard3"] {
        if let Some(line) = v.step(mark(c, &format!("hard {f}"))) {
            let want = format!("3 {}", ino.unwrap_or(0));
            v.eq(&format!("the guest's links and inode of h/{f}"), line, want);
        }
    }
    final_views(c, r, &mut v, |p| p.starts_with('h'));
    v.fact(format!(
        "mode {:o}->{:o}, times to the ns, owner {}, symlink, 3 hard links, a file made mid-run",
        p.meta0.mode,
        p.meta1.mode,
        if p.root {
            "changed"
        } else {
            "not changed (not root)"
        }
    ));
    v.result("the guest saw the host's content and metadata")
}

/// The guest's final `stat` of every [`FINAL_PATHS`] entry selected by
/// `which` equals the host's lstat now.
fn final_views(c: &str, r: &Path, v: &mut Verdict, which: impl Fn(&str) -> bool) {
    for path in FINAL_PATHS.iter().filter(|p| which(p)) {
        let (Some(g), Some(h)) = (
            v.step(guest_stat(c, "f", path)),
            v.step(host_stat(&r.join(path))),
        ) else {
            continue;
        };
        let d = stat_diff(&g, &h);
        if !d.is_empty() {
            v.fail(format!(
                "the guest's final stat of {path} differs from the host's: {}",
                d.join(", ")
            ));
        }
    }
}

fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn guest_to_host(c: &str, r: &Path, p: &Plan) -> Result<String> {
    let mut v = Verdict::default();
    let g = r.join("g");
    // Metadata before content: reading changes access times.
    final_views(c, r, &mut v, |p| p.starts_with('g'));
    let st = |v: &mut Verdict, f: &str| v.step(host_stat(&g.join(f)));
    if let (Some(a), Some(b)) = (st(&mut v, "data"), st(&mut v, "data-link")) {
        v.eq(
            "g/data-link (ln in the guest): the inode of g/data",
            b.ino,
            a.ino,
        );
        v.eq("g/data: links after ln in the guest", a.nlink, 2);
    }
    if let Some(s) = st(&mut v, "mode") {
        v.eq(
            "g/mode after the guest's chmod: mode",
            format!("{:o}", s.mode & 0o7777),
            format!("{:o}", p.mode_file),
        );
    }
    if let Some(s) = st(&mut v, "dirmode") {
        v.eq(
            "g/dirmode after the guest's chmod: mode",
            format!("{:o}", s.mode & 0o7777),
            format!("{:o}", p.mode_dir),
        );
        v.eq("g/dirmode: a directory", s.mode & 0o170000, 0o040000);
    }
    if p.root {
        if let Some(s) = st(&mut v, "own") {
            v.eq(
                "g/own after the guest's chown U:G: (uid, gid)",
                (s.uid, s.gid),
                p.own,
            );
        }
        if let Some(s) = st(&mut v, "own-u") {
            let gid = nix::unistd::getegid().as_raw();
            v.eq(
                "g/own-u after the guest's chown U (group unchanged): (uid, gid)",
                (s.uid, s.gid),
                (p.own_u, gid),
            );
        }
    } else {
        v.fact("owners not changed (the harness is not root)");
    }
    if let Some(s) = st(&mut v, "time") {
        v.eq(
            "g/time after touch -d: (atime, mtime)",
            (s.atime, s.mtime),
            ((p.t_both, 0), (p.t_both, 0)),
        );
    }
    if let Some(s) = st(&mut v, "time-am") {
        v.eq(
            "g/time-am after touch -a and touch -m: (atime, mtime)",
            (s.atime, s.mtime),
            ((p.t_a, 0), (p.t_m, 0)),
        );
    }
    match fs::symlink_metadata(g.join("fifo")) {
        Ok(m) => v.eq(
            "g/fifo (mkfifo in the guest) is a FIFO",
            m.file_type().is_fifo(),
            true,
        ),
        Err(e) => v.fail(format!("g/fifo (mkfifo in the guest): {e}")),
    }
    for gone in ["gone", "gonedir", "tmpname", "ow-src"] {
        if g.join(gone).symlink_metadata().is_ok() {
            v.fail(format!(
                "g/{gone}, removed or renamed away in the guest, still exists on the host"
            ));
        }
    }
    match fs::read_link(g.join("sym")) {
        Ok(t) => v.eq(
            "the host's readlink of g/sym",
            t.to_string_lossy().as_ref(),
            p.g_sym_target.as_str(),
        ),
        Err(e) => v.fail(format!("readlink g/sym: {e}")),
    }
    // Content.
    match fs::read(g.join("data")) {
        Ok(d) => {
            if let Some(m) = block::pattern_mismatch(&d, p.g_data_seed, p.g_data_len) {
                v.fail(format!("g/data, written in the guest, {m}"));
            }
        }
        Err(e) => v.fail(format!("reading g/data: {e}")),
    }
    for (f, want) in [("renamed", &p.words[0]), ("ow-dst", &p.words[1])] {
        if let Some(t) = v.step(read_text(&g.join(f))) {
            v.eq(&format!("g/{f} (renamed in the guest) holds"), &t, want);
        }
    }
    match fs::read(g.join("trunc")) {
        Ok(d) => {
            if let Some(m) = block::pattern_mismatch(&d, p.trunc_seed, p.trunc_to) {
                v.fail(format!(
                    "g/trunc, {} bytes truncated to {} in the guest, {m}",
                    p.trunc_len, p.trunc_to
                ));
            }
        }
        Err(e) => v.fail(format!("reading g/trunc: {e}")),
    }
    v.fact(format!(
        "chmod {:o}/{:o}, chown, touch, truncate {}->{}, ln, ln -s, mkfifo, mv, rm, rmdir",
        p.mode_file, p.mode_dir, p.trunc_len, p.trunc_to
    ));
    v.result("the host saw what the guest made")
}

fn rename_flags(c: &str, r: &Path, p: &Plan) -> Result<String> {
    let mut v = Verdict::default();
    let g = r.join("g");
    if let Some(line) = v.step(mark(c, "nr-exists")) {
        if !(line.starts_with("1 ") && line.contains(EEXIST_RUST)) {
            v.fail(format!(
                "renameat2(nr-a, nr-b, RENAME_NOREPLACE) onto an existing nr-b: the guest got \
                 {line:?}, expected status 1 and {EEXIST_RUST:?}"
            ));
        }
    }
    if let Some(line) = v.step(mark(c, "nr-free")) {
        v.eq(
            "renameat2(nr-a, nr-c, RENAME_NOREPLACE) onto a free name: status and message",
            line.as_str(),
            "0",
        );
    }
    if let Some(t) = v.step(read_text(&g.join("nr-b"))) {
        v.eq(
            "g/nr-b, which RENAME_NOREPLACE must not replace, holds",
            &t,
            &p.words[4],
        );
    }
    if let Some(t) = v.step(read_text(&g.join("nr-c"))) {
        v.eq(
            "g/nr-c (renamed from nr-a with RENAME_NOREPLACE) holds",
            &t,
            &p.words[3],
        );
    }
    if g.join("nr-a").symlink_metadata().is_ok() {
        v.fail("g/nr-a still exists on the host after its RENAME_NOREPLACE rename to nr-c");
    }
    if let Some(line) = v.step(mark(c, "exchange")) {
        v.eq(
            "renameat2(ex-file, ex-dir, RENAME_EXCHANGE): status and message",
            line.as_str(),
            "0",
        );
    }
    match fs::symlink_metadata(g.join("ex-file")) {
        Ok(m) if m.is_dir() => {
            if let Some(t) = v.step(read_text(&g.join("ex-file/inner"))) {
                v.eq(
                    "g/ex-file/inner (the exchanged directory's file) holds",
                    &t,
                    &p.words[6],
                );
            }
        }
        Ok(m) => v.fail(format!(
            "g/ex-file should be the directory after RENAME_EXCHANGE with g/ex-dir; it is a {:?}",
            m.file_type()
        )),
        Err(e) => v.fail(format!("g/ex-file after RENAME_EXCHANGE: {e}")),
    }
    match fs::symlink_metadata(g.join("ex-dir")) {
        Ok(m) if m.is_file() => {
            if let Some(t) = v.step(read_text(&g.join("ex-dir"))) {
                v.eq("g/ex-dir (the exchanged file) holds", &t, &p.words[5]);
            }
        }
        Ok(m) => v.fail(format!(
            "g/ex-dir should be the file after RENAME_EXCHANGE with g/ex-file; it is a {:?}",
            m.file_type()
        )),
        Err(e) => v.fail(format!("g/ex-dir after RENAME_EXCHANGE: {e}")),
    }
    v.result("RENAME_NOREPLACE refused with EEXIST and renamed to a free name; RENAME_EXCHANGE swapped a file and a directory")
}

fn readdir(c: &str, r: &Path, p: &Plan) -> Result<String> {
    let mut v = Verdict::default();
    let want: BTreeSet<String> = p.many.iter().cloned().collect();
    if let Some(text) = v.step(read_text(&r.join("out/h-many.lst"))) {
        let got: BTreeSet<String> = text.lines().map(String::from).collect();
        let n = text.lines().count();
        if got != want || n != MANY {
            v.fail(format!(
                "the guest's `ls` of the host's {MANY}-entry h/many: {n} lines; {}",
                listing_diff(&got, &want, 3)
            ));
        }
    }
    if let Some(line) = v.step(mark(c, "many")) {
        v.eq("the guest's count of h/many", line, MANY.to_string());
    }
    match fs::read_dir(r.join("g/many")) {
        Ok(rd) => {
            let got: BTreeSet<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            let want = p.guest_many();
            if got != want {
                v.fail(format!(
                    "the host's listing of g/many, where the guest made {MANY} files: {}",
                    listing_diff(&got, &want, 3)
                ));
            }
        }
        Err(e) => v.fail(format!("listing g/many: {e}")),
    }
    v.result(&format!(
        "{MANY} entries each way, names exactly the other side's"
    ))
}

fn large_file(c: &str, r: &Path, p: &Plan) -> Result<String> {
    let mut v = Verdict::default();
    if let Some(line) = v.step(mark(c, "sparse")) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let blocks = fs::symlink_metadata(r.join("h/sparse"))
            .map(|m| m.blocks())
            .unwrap_or(u64::MAX);
        let sha = block::sha256_hex(&p.sparse_window());
        let want = [p.sparse_size.to_string(), blocks.to_string(), sha];
        if w.len() < 3 || w[..3] != want {
            v.fail(format!(
                "the guest's size, blocks and SHA-256 of blocks {}..{} of the host's sparse \
                 h/sparse: {:?}, expected {want:?}",
                p.sparse_block,
                p.sparse_block + 3,
                w
            ));
        }
    }
    let big = r.join("g/big");
    match File::open(&big) {
        Ok(mut f) => {
            let m = f.metadata().ok();
            let (size, blocks) = m.map_or((0, 0), |m| (m.size(), m.blocks()));
            v.eq(
                "the size of g/big (truncate -s in the guest) on the host",
                size,
                p.big_size,
            );
            if blocks * 512 > 1 << 20 {
                v.fail(format!(
                    "g/big should be sparse on the host; it has {} bytes allocated",
                    blocks * 512
                ));
            }
            let mut buf = vec![0u8; p.big_len];
            let r = f
                .seek(SeekFrom::Start(p.big_block * 4096))
                .and_then(|_| f.read_exact(&mut buf));
            match r {
                Ok(()) => {
                    if let Some(m) = block::pattern_mismatch(&buf, p.big_seed, p.big_len) {
                        v.fail(format!(
                            "g/big at offset {} (written in the guest with dd) {m}",
                            p.big_block * 4096
                        ));
                    }
                }
                Err(e) => v.fail(format!("reading g/big at {}: {e}", p.big_block * 4096)),
            }
        }
        Err(e) => v.fail(format!("opening g/big: {e}")),
    }
    v.result(&format!(
        "host {:.2} GiB file read at {:.2} GiB; guest {:.2} GiB file written at {:.2} GiB",
        p.sparse_size as f64 / (1u64 << 30) as f64,
        (p.sparse_block * 4096) as f64 / (1u64 << 30) as f64,
        p.big_size as f64 / (1u64 << 30) as f64,
        (p.big_block * 4096) as f64 / (1u64 << 30) as f64
    ))
}

fn fsync_verdict(rs: Vec<Result<String>>) -> Result<String> {
    let mut v = Verdict::default();
    let mut done = Vec::new();
    for r in rs {
        if let Some(f) = v.step(r) {
            done.push(f);
        }
    }
    if done.len() + v.fails.len() != 2 {
        v.fail("the guest did not reach both syncs");
    }
    v.result(&done.join("; "))
}

fn statfs_verdict(c: &str, mid: &MidRun) -> Result<String> {
    let line = mark(c, "statfs")?;
    let w: Vec<&str> = line.split_whitespace().collect();
    let [
        ty,
        bsize,
        blocks,
        bfree,
        bavail,
        files,
        ffree,
        namelen,
        fsid,
    ] = w[..]
    else {
        bail!(
            "the guest's `stat -f` line has {} fields, expected 9: {line:?}",
            w.len()
        );
    };
    let (Some(a), Some(b)) = (&mid.statvfs_before, &mid.statvfs_after) else {
        bail!("the host's statvfs of the hostfs directory failed");
    };
    let mut v = Verdict::default();
    let num = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
    v.eq("f_type", ty, HOSTFS_MAGIC_HEX);
    v.eq("f_bsize", num(bsize), a.block_size());
    v.eq("f_blocks", num(blocks), a.blocks());
    v.eq("f_files", num(files), a.files());
    v.eq("f_namelen", num(namelen), a.name_max());
    v.eq("f_fsid", fsid.to_string(), busybox_fsid(a.filesystem_id()));
    // Free counts move with the host's other users: within 0.2% of the
    // total of what the host saw before and after.
    let within = |v: &mut Verdict, what: &str, got: u64, x: u64, y: u64, total: u64| {
        let tol = total / 500;
        let (lo, hi) = (x.min(y).saturating_sub(tol), x.max(y).saturating_add(tol));
        if !(lo..=hi).contains(&got) {
            v.fail(format!(
                "{what}: the guest says {got}, the host said {x} before and {y} after"
            ));
        }
    };
    within(
        &mut v,
        "f_bfree",
        num(bfree),
        a.blocks_free(),
        b.blocks_free(),
        a.blocks(),
    );
    within(
        &mut v,
        "f_bavail",
        num(bavail),
        a.blocks_available(),
        b.blocks_available(),
        a.blocks(),
    );
    within(
        &mut v,
        "f_ffree",
        num(ffree),
        a.files_free(),
        b.files_free(),
        a.files(),
    );
    v.result(&format!("guest `stat -f`: {line}"))
}

/// The host inode numbers of R and everything in it.
fn inodes_under(r: &Path) -> Result<BTreeSet<u64>> {
    let mut out = BTreeSet::new();
    let mut todo = vec![r.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = fs::symlink_metadata(&p).with_context(|| format!("lstat {}", p.display()))?;
        out.insert(m.ino());
        if m.is_dir() {
            for e in fs::read_dir(&p)? {
                todo.push(e?.path());
            }
        }
    }
    Ok(out)
}

/// The attempts of the guest's `try` (mount(2) options) and `tryfs`
/// (fsconfig(2) `hostfs=`), with what they ask for.
const ATTEMPTS: &[(&str, &str)] = &[
    ("dotdot", "-o /.."),
    ("dotdot-rel", "-o .."),
    ("dotdot-sub", "-o /c/../.."),
    ("dotdot-2", "-o /../.."),
    ("link-abs", "-o /c/esc-abs (a link to T/outer, absolute)"),
    ("link-rel", "-o /c/esc-rel (a link to ../..)"),
    ("link-guest", "-o /c/gesc (a link to ../.. the guest made)"),
    ("link-mid", "-o /c/esc-abs/box (through a link)"),
    ("fs-dotdot", "fsconfig hostfs=/.."),
    ("fs-link-abs", "fsconfig hostfs=/c/esc-abs"),
];

/// One `cf KEY` line of the guest: `refused MESSAGE` or `mounted INO
/// SECRET LISTING...`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    Refused(String),
    Mounted {
        ino: u64,
        /// The SHA-256 of the secret file found in the mount's root.
        secret: Option<String>,
        listing: String,
    },
}

pub(crate) fn parse_attempt(line: &str) -> Option<Attempt> {
    if let Some(m) = line.strip_prefix("refused") {
        return Some(Attempt::Refused(m.trim().to_string()));
    }
    let rest = line.strip_prefix("mounted ")?;
    let mut w = rest.splitn(3, ' ');
    let ino = w.next()?.parse().ok()?;
    let secret = match w.next()? {
        "no-secret" => None,
        s => Some(s.strip_prefix("secret:")?.to_string()),
    };
    Some(Attempt::Mounted {
        ino,
        secret,
        listing: w.next().unwrap_or("").trim().to_string(),
    })
}

fn confine(c: &str, t: &Path, r: &Path, p: &Plan) -> Result<String> {
    let mut v = Verdict::default();
    let inside = inodes_under(r)?;
    let mut names = Vec::new();
    for (d, n) in [
        ("outer", "T/outer, the parent of the prefix"),
        ("outer/box", "T/outer/box"),
        ("", "T, two levels above the prefix"),
    ] {
        names.push((fs::metadata(t.join(d))?.ino(), n));
    }
    let where_is = |ino: u64| {
        names.iter().find(|(i, _)| *i == ino).map_or_else(
            || format!("host inode {ino}, outside the prefix"),
            |(_, n)| n.to_string(),
        )
    };
    let secret_sha = block::sha256_hex(p.secret.as_bytes());
    // The in-prefix mounts must work and land where asked.
    let want = fs::metadata(r.join("c"))?.ino();
    for (key, how) in [
        ("in-prefix", "mount -o /c"),
        ("fs-in-prefix", "fsconfig hostfs=/c"),
    ] {
        if let Some(line) = v.step(mark(c, &format!("cf {key}"))) {
            match parse_attempt(&line) {
                Some(Attempt::Mounted { ino, .. }) if ino == want => {}
                _ => v.fail(format!(
                    "{how} (inside the prefix) should mount R/c (inode {want}): {line:?}"
                )),
            }
        }
    }
    let mut facts = Vec::new();
    for (key, what) in ATTEMPTS {
        let Some(line) = v.step(mark(c, &format!("cf {key}"))) else {
            continue;
        };
        match parse_attempt(&line) {
            Some(Attempt::Refused(m)) => facts.push(format!("{what}: refused ({m})")),
            Some(Attempt::Mounted {
                secret: Some(s),
                ino,
                listing,
            }) => v.fail(format!(
                "{what} under hostfs=R left the prefix: the mount's root is {}, and the guest \
                 read the secret file there ({}); its entries: {listing}",
                where_is(ino),
                if s == secret_sha {
                    "the host's content"
                } else {
                    "other content"
                },
            )),
            Some(Attempt::Mounted { ino, listing, .. }) if !inside.contains(&ino) => {
                v.fail(format!(
                    "{what} under hostfs=R left the prefix: the mount's root inode is {} (its \
                 mode, owner and times are what the guest sees), though no secret file is \
                 under it; its entries: {listing}",
                    where_is(ino)
                ))
            }
            Some(Attempt::Mounted { .. }) => {
                facts.push(format!("{what}: mounted inside the prefix"))
            }
            None => v.fail(format!("{what}: unexpected guest line {line:?}")),
        }
    }
    if let Some(line) = v.step(mark(c, "cdup")) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let ok = matches!(w.as_slice(), ["/", a, b, "init", "no-secret"] if a == b);
        if !ok {
            v.fail(format!(
                "`cd ..` from the hostfs mount root: pwd, inode of ., inode of /, init there, \
                 secret there: {line:?}, expected the guest's / with its init and no secret"
            ));
        }
    }
    for l in ["esc-rel", "esc-abs"] {
        if let Some(line) = v.step(mark(c, &format!("glink {l}"))) {
            if line.starts_with("0") || !line.contains("No such file or directory") {
                v.fail(format!(
                    "cat /host/c/{l}/secret-W: a symbolic link in the prefix must resolve in \
                     the guest (ENOENT), got {line:?}"
                ));
            }
        }
    }
    if let Ok(d) = mark(c, "dmesg") {
        if !d.is_empty() {
            facts.push(format!("guest dmesg: {d}"));
        }
    }
    for f in facts {
        v.fact(f);
    }
    v.result("every mount option that leaves the prefix was refused or stayed inside; cd .. and links stay in the guest")
}

fn confine_swap(c: &str, p: &Plan) -> Result<String> {
    let line = mark(c, "swap")?;
    let secret_sha = block::sha256_hex(p.secret.as_bytes());
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        ["confined", ..] => Ok(format!(
            "the held directory did not follow the host's link: {}",
            line.trim_start_matches("confined").trim()
        )),
        ["escaped", sha, rest @ ..] => bail!(
            "a guest directory held open through a second hostfs mount, replaced through the \
             first by a symbolic link to ../.., shows the parent of the prefix on the host: \
             the secret file there read {} ({})",
            if *sha == secret_sha {
                "with the host's content"
            } else {
                "with other content"
            },
            rest.join(" ")
        ),
        _ => bail!("unexpected guest line {line:?}"),
    }
}

// ---------------------------------------------------------------------------
// The append boot.

const APPEND_SCRIPT: &str = r#"
H=/host
exec 3<>$H/log; printf %s @A1@ >&3; exec 3>&-
printf %s @A2@ | dd of=$H/log bs=16 seek=1 conv=notrunc 2>/dev/null
printf %s @A3@ > $H/log
r=0; truncate -s 0 $H/log 2>/tmp/e || r=$?; m trunc $r "$(cat /tmp/e)"
r=0; rm $H/log 2>/tmp/e || r=$?; m rm $r "$(cat /tmp/e)"
printf %s @A4@ > $H/new
m gsize $(stat -c %s $H/log)
"#;

fn append_boot(ctx: &Ctx, kernel: &Path) -> Result<String> {
    let dir = tempfile::Builder::new()
        .prefix("uml-hostfs-append-")
        .tempdir()
        .context("creating a temporary directory")?;
    let a = dir.path();
    let mut r = Rng {
        base: block::fresh_seed(),
        k: 0,
    };
    let (seed, len) = (r.next(), 100 + r.below(3000) as usize);
    let words: [String; 4] = std::array::from_fn(|_| r.word());
    let start = suite::pattern_bytes(seed, len);
    fs::write(a.join("log"), &start)?;
    let vars: Vec<(&str, String)> = ["A1", "A2", "A3", "A4"]
        .into_iter()
        .zip(words.iter().cloned())
        .collect();
    let script = format!("{}{KWARN}m step done\n", fill(APPEND_SCRIPT, &vars)?);
    fs::write(a.join(".run.sh"), script)?;
    let mut s = block::spec(kernel, ". /host/.run.sh", &[], None);
    s.extra_args.push(format!("hostfs={},append", a.display()));
    let out = Guest::start(&s, ctx)?.wait()?;
    block::exited_ok(&out)?;
    block::no_kernel_warnings(&out.console, "the hostfs append boot")?;
    let c = &out.console;
    let mut v = Verdict::default();
    let mut want = start.clone();
    for w in &words[..3] {
        want.extend_from_slice(w.as_bytes());
    }
    match fs::read(a.join("log")) {
        Ok(got) if got == want => {}
        Ok(got) => {
            let at = got
                .iter()
                .zip(&want)
                .position(|(x, y)| x != y)
                .unwrap_or(got.len().min(want.len()));
            v.fail(format!(
                "the host's log after the guest's writes at offset 0, after a seek to 16 and \
                 after an O_TRUNC open, with hostfs=...,append: {} bytes, expected the {len} it \
                 had then the three 16-byte writes appended ({} bytes); first difference at \
                 byte {at}; the last 48 bytes are {:?}",
                got.len(),
                want.len(),
                String::from_utf8_lossy(&got[got.len().saturating_sub(48)..])
            ));
        }
        Err(e) => v.fail(format!("reading the host's log: {e}")),
    }
    if let Some(line) = v.step(mark(c, "rm")) {
        if line.starts_with("0") || !line.contains(EPERM_TEXT) {
            v.fail(format!(
                "rm of a file in append mode: {line:?}, expected a failure with {EPERM_TEXT:?}"
            ));
        }
    }
    match fs::read_to_string(a.join("new")) {
        Ok(t) => v.eq("a new file written in append mode holds", &t, &words[3]),
        Err(e) => v.fail(format!("reading the new file: {e}")),
    }
    if let Ok(t) = mark(c, "trunc") {
        v.fact(format!(
            "truncate -s 0 in append mode: status {t:?}, the host's file kept its size"
        ));
    }
    if let Ok(t) = mark(c, "gsize") {
        v.fact(format!(
            "the guest's idea of the size afterwards: {t} (the host's: {})",
            want.len()
        ));
    }
    v.result("writes at 0, after a seek and after O_TRUNC landed at the end; rm refused with EPERM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_defects_are_cases_and_skip_only_when_they_fail() {
        for (n, _) in C_LAYER_DEFECTS {
            assert!(CASES.contains(n), "{n} is not a case");
        }
        let skipped = c_layer_verdict(CONFINE_SWAP, Err(anyhow!("escaped"))).unwrap();
        assert!(
            skipped.starts_with("skipped: C layer defect: "),
            "{skipped}"
        );
        assert!(skipped.contains("escaped"));
        assert!(c_layer_verdict(CONFINE_SWAP, Ok("confined".into())).is_err());
        // Other cases keep their result.
        assert!(c_layer_verdict(CONFINE, Err(anyhow!("escaped"))).is_err());
        assert_eq!(c_layer_verdict(CONFINE, Ok("fine".into())).unwrap(), "fine");
    }

    #[test]
    fn guest_stat_lines() {
        let l = "81a4 2 1000 100 12345 24 9876543 1234567890 1234567891 1700000000|\
                 2009-02-13 23:31:30.000000001 +0000|2009-02-13 23:31:31.5 +0000|\
                 2023-11-14 22:13:20.123456789 +0000";
        let s = parse_guest_stat(l).unwrap();
        assert_eq!(s.mode, 0o100644);
        assert_eq!(
            (s.nlink, s.uid, s.gid, s.size, s.blocks, s.ino),
            (2, 1000, 100, 12345, 24, 9876543)
        );
        assert_eq!(s.atime, (1234567890, 1));
        assert_eq!(s.mtime, (1234567891, 500_000_000));
        assert_eq!(s.ctime, (1700000000, 123456789));
        assert!(parse_guest_stat("81a4 2 1000").is_none());
        assert!(parse_guest_stat(&l.replace("|2009-02-13 23:31:30.000000001", "|x")).is_none());
        let mut t = s;
        assert!(stat_diff(&s, &t).is_empty());
        t.uid = 1;
        t.mtime.1 = 7;
        let d = stat_diff(&s, &t);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].starts_with("uid 1000 (host 1)"), "{d:?}");
    }

    #[test]
    fn fsid_as_busybox_prints_it() {
        // glibc: word 0 low; busybox: word 0 high.
        assert_eq!(busybox_fsid(0x5a3a_01ca_f8af_7abc), "f8af7abc5a3a01ca");
        assert_eq!(busybox_fsid(0x1), "100000000");
    }

    #[test]
    fn host_stat_reads_times() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, "abc").unwrap();
        set_times(&f, (1_000_000_001, 5), (1_000_000_002, 999_999_999)).unwrap();
        let s = host_stat(&f).unwrap();
        assert_eq!(
            (s.size, s.atime, s.mtime),
            (3, (1_000_000_001, 5), (1_000_000_002, 999_999_999))
        );
    }

    #[test]
    fn listings() {
        let a: BTreeSet<String> = ["x", "y", "z"].iter().map(|s| s.to_string()).collect();
        let b: BTreeSet<String> = ["y", "z", "q"].iter().map(|s| s.to_string()).collect();
        assert_eq!(listing_diff(&a, &b, 3), "1 missing (q), 1 extra (x)");
    }

    #[test]
    fn templates() {
        assert_eq!(
            fill("a @X@ @@Y@ c", &[("X", "1".into()), ("Y", "2".into())]).unwrap(),
            "a 1 @2 c"
        );
        assert!(fill("a @X@ @Z@", &[("X", "1".into())]).is_err());
        let p = Plan::new(42);
        let s = main_script(&p).unwrap();
        assert!(s.contains(&format!("touch -d @{} ", p.t_both)), "{s}");
        fill(
            APPEND_SCRIPT,
            &[
                ("A1", "a".into()),
                ("A2", "b".into()),
                ("A3", "c".into()),
                ("A4", "d".into()),
            ],
        )
        .unwrap();
    }

    #[test]
    fn scripts_are_valid_shell() {
        let p = Plan::new(7);
        for s in [
            main_script(&p).unwrap(),
            fill(
                APPEND_SCRIPT,
                &[
                    ("A1", "a".into()),
                    ("A2", "b".into()),
                    ("A3", "c".into()),
                    ("A4", "d".into()),
                ],
            )
            .unwrap(),
        ] {
            let st = std::process::Command::new("sh")
                .args(["-n", "-c", &format!("{}{s}", block::PRELUDE)])
                .status()
                .unwrap();
            assert!(st.success());
        }
    }

    #[test]
    fn plans_are_fresh_and_in_range() {
        let (a, b) = (Plan::new(1), Plan::new(2));
        assert_ne!(a.w, b.w);
        assert_ne!(a.many, b.many);
        for p in [&a, &b] {
            assert!(
                p.sparse_block * 4096 > 4 << 30
                    && p.sparse_size > p.sparse_block * 4096 + SPARSE_WINDOW as u64
            );
            assert!(
                p.big_block * 4096 > 4 << 30 && p.big_size > p.big_block * 4096 + p.big_len as u64
            );
            assert!(p.trunc_to < p.trunc_len && p.trunc_to > 0);
            assert_eq!(p.many.iter().collect::<BTreeSet<_>>().len(), MANY);
            let w = p.sparse_window();
            assert_eq!(w.len(), SPARSE_WINDOW);
            assert_eq!(w[SPARSE_IN - 1], 0);
        }
    }

    #[test]
    fn attempts() {
        assert_eq!(
            parse_attempt("refused mount: mounting none on /mnt/x failed: Invalid argument"),
            Some(Attempt::Refused(
                "mount: mounting none on /mnt/x failed: Invalid argument".into()
            ))
        );
        assert_eq!(
            parse_attempt("mounted 42 secret:abc . .. box secret-1"),
            Some(Attempt::Mounted {
                ino: 42,
                secret: Some("abc".into()),
                listing: ". .. box secret-1".into()
            })
        );
        assert_eq!(
            parse_attempt("mounted 7 no-secret"),
            Some(Attempt::Mounted {
                ino: 7,
                secret: None,
                listing: String::new()
            })
        );
        assert_eq!(parse_attempt("mounted x no-secret"), None);
        assert_eq!(parse_attempt("mounted 7 other"), None);
    }

    #[test]
    fn verdicts() {
        let mut v = Verdict::default();
        v.eq("x", 1, 1);
        v.fact("f");
        assert_eq!(v.result("ok").unwrap(), "ok; f");
        let mut v = Verdict::default();
        v.eq("x", 1, 2);
        v.eq("y", "a", "b");
        let e = v.result("ok").unwrap_err().to_string();
        assert!(
            e.starts_with("2 checks failed, the first: x: got 1, expected 2\ny: got"),
            "{e}"
        );
        let c = "@@BLK swap escaped abc a b\n";
        let p = Plan::new(3);
        assert!(confine_swap(c, &p).is_err());
        assert!(confine_swap("@@BLK swap confined . ..\n", &p).is_ok());
    }
}
