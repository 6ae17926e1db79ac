// SPDX-License-Identifier: GPL-2.0
//! Storage shared with the host: hostfs and a ubd block device, and the
//! hand-shake with the host while the guest is alive.
//!
//! The protocol with the harness (its constants are in [`crate::protocol`],
//! which the harness compiles too; data are the streams of
//! [`crate::pattern`]):
//!
//! hostfs, in the directory given with `--hostfs-dir D` (seed `S` from
//! `--hostfs-seed`):
//! - before boot the host writes `D/host-to-guest.bin`: [`HOSTFS_LEN`] bytes
//!   of stream `S`; the guest reads and verifies it;
//! - the guest writes `D/guest-to-host.bin`: [`HOSTFS_LEN`] bytes of stream
//!   `S + 1`, and `D/guest-note.txt` holding [`GUEST_NOTE`]; the host
//!   verifies both after the guest has halted.
//!
//! ubd, on the device given with `--ubd DEV`:
//! - the guest writes [`UBD_GUEST_LEN`] bytes of stream `--ubd-seed` at
//!   offset [`UBD_GUEST_OFFSET`], fsyncs, drops the block cache, reads it
//!   back with O_DIRECT and compares; the host verifies the image file after
//!   the guest has halted;
//! - with `--ubd-host-seed H`, the host wrote [`UBD_HOST_LEN`] bytes of
//!   stream `H` at [`UBD_HOST_OFFSET`] of the image before boot, and the
//!   guest verifies them;
//! - with `--ubd-size N`, the device must be exactly N bytes.
//!
//! Host sync (`--host-sync NAME`, needs hostfs): after every other case the
//! guest prints [`READY_MARKER`] and waits for `D/NAME` to appear; the host
//! creates it once it has checked the running guest from outside.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::Config;
use crate::ktap::{CaseResult, Context, Verdict};
use crate::pattern;
use crate::sys;
use crate::{check, diag, fail, skip};

/// Where the guest mounts the hostfs directory.
pub const HOSTFS_MOUNT: &str = "/mnt/host";
pub use crate::protocol::{
    GUEST_NOTE, GUEST_NOTE_FILE, GUEST_TO_HOST, HOST_TO_GUEST, HOSTFS_LEN, READY_MARKER,
    UBD_GUEST_LEN, UBD_GUEST_OFFSET, UBD_HOST_LEN, UBD_HOST_OFFSET,
};

/// Mounts the hostfs directory at [`HOSTFS_MOUNT`] once; later calls return
/// the mount point.
pub(super) fn hostfs_mount(cfg: &Config) -> Result<PathBuf, Verdict> {
    if let Some(m) = cfg.mounted.borrow().as_ref() {
        return Ok(m.clone());
    }
    let Some(dir) = cfg.hostfs_dir.as_deref() else {
        skip!("no --hostfs-dir given");
    };
    if !cfg.in_uml {
        skip!("not running under UML");
    }
    let fss = fs::read_to_string("/proc/filesystems").ctx("read /proc/filesystems")?;
    check!(
        fss.lines()
            .any(|l| l.split_whitespace().last() == Some("hostfs")),
        "hostfs is not in /proc/filesystems (CONFIG_HOSTFS off?)"
    );
    let mnt = PathBuf::from(HOSTFS_MOUNT);
    fs::create_dir_all(&mnt).ctx("mkdir /mnt/host")?;
    nix::mount::mount(
        Some("none"),
        &mnt,
        Some("hostfs"),
        nix::mount::MsFlags::empty(),
        Some(dir),
    )
    .ctx(&format!("mount -t hostfs none {HOSTFS_MOUNT} -o {dir}"))?;
    *cfg.mounted.borrow_mut() = Some(mnt.clone());
    Ok(mnt)
}

/// Reads a host file, writes files back, and exercises directory operations
/// on hostfs.
pub fn hostfs(cfg: &Config) -> CaseResult {
    let mnt = hostfs_mount(cfg)?;
    let seed = cfg.hostfs_seed;

    let mut data = Vec::new();
    File::open(mnt.join(HOST_TO_GUEST))
        .and_then(|mut f| f.read_to_end(&mut data))
        .ctx(&format!("read {HOST_TO_GUEST}"))?;
    check!(
        data.len() == HOSTFS_LEN,
        "{HOST_TO_GUEST} has {} bytes, expected {HOSTFS_LEN}",
        data.len()
    );
    if let Some(i) = pattern::first_mismatch(seed, 0, &data) {
        fail!("{HOST_TO_GUEST} differs from the host's pattern at byte {i}");
    }

    let mut out = vec![0u8; HOSTFS_LEN];
    pattern::fill(seed.wrapping_add(1), 0, &mut out);
    let path = mnt.join(GUEST_TO_HOST);
    {
        let mut f = File::create(&path).ctx(&format!("create {GUEST_TO_HOST}"))?;
        // Odd-sized writes, to cross page boundaries inside hostfs.
        for chunk in out.chunks(10_007) {
            f.write_all(chunk).ctx(&format!("write {GUEST_TO_HOST}"))?;
        }
        f.sync_all().ctx("fsync")?;
    }
    let back = fs::read(&path).ctx(&format!("read back {GUEST_TO_HOST}"))?;
    check!(back == out, "{GUEST_TO_HOST} reads back differently");
    let note = mnt.join(GUEST_NOTE_FILE);
    fs::write(&note, GUEST_NOTE).ctx(&format!("write {GUEST_NOTE_FILE}"))?;
    File::open(&note)
        .and_then(|f| f.sync_all())
        .ctx("fsync note")?;

    // Directory operations.
    let d = mnt.join("guest-dir");
    let _ = fs::remove_dir_all(&d);
    fs::create_dir(&d).ctx("mkdir guest-dir")?;
    fs::write(d.join("a"), b"12345").ctx("write guest-dir/a")?;
    fs::rename(d.join("a"), d.join("b")).ctx("rename a -> b")?;
    let names: Vec<String> = fs::read_dir(&d)
        .ctx("readdir")?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    check!(
        names == ["b"],
        "guest-dir lists {names:?}, expected [\"b\"]"
    );
    let len = fs::metadata(d.join("b")).ctx("stat b")?.len();
    check!(len == 5, "guest-dir/b has {len} bytes, expected 5");
    fs::remove_file(d.join("b")).ctx("unlink b")?;
    fs::remove_dir(&d).ctx("rmdir guest-dir")?;
    check!(!d.exists(), "guest-dir still exists after rmdir");
    Ok(())
}

/// BLKGETSIZE64: _IOR(0x12, 114, size_t).
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
/// BLKFLSBUF: _IO(0x12, 97).
const BLKFLSBUF: libc::c_ulong = 0x1261;

/// Creates `/dev/ubdX` from sysfs if devtmpfs did not.
fn ensure_dev_node(dev: &Path) -> CaseResult {
    if dev.exists() {
        return Ok(());
    }
    let name = dev.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let sys = format!("/sys/block/{name}/dev");
    let Ok(mm) = fs::read_to_string(&sys) else {
        fail!(
            "{} does not exist and {sys} is missing (no such disk)",
            dev.display()
        );
    };
    let (ma, mi) = mm
        .trim()
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        .ok_or_else(|| Verdict::Fail(format!("bad {sys}: {mm:?}")))?;
    nix::sys::stat::mknod(
        dev,
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(ma.into(), mi.into()),
    )
    .ctx(&format!("mknod {} b {ma} {mi}", dev.display()))?;
    diag!("created {} (b {ma}:{mi})", dev.display());
    Ok(())
}

/// Reads `len` bytes at `offset` with O_DIRECT (falling back to buffered
/// I/O where O_DIRECT is refused).
fn read_direct(dev: &Path, offset: u64, len: usize) -> Result<Vec<u8>, Verdict> {
    let direct = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(dev);
    let f = match direct {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            diag!(
                "O_DIRECT refused on {}; reading through the cache",
                dev.display()
            );
            File::open(dev).ctx("open")?
        }
        Err(e) => fail!("open {} O_DIRECT: {e}", dev.display()),
    };
    let mut m = sys::Mapping::new(len, libc::PROT_READ | libc::PROT_WRITE).ctx("mmap")?;
    let buf = m.as_mut_slice();
    let mut done = 0;
    while done < len {
        // SAFETY: `buf[done..]` is valid for writes; page-aligned for O_DIRECT.
        let r = unsafe {
            libc::pread(
                f.as_raw_fd(),
                buf[done..].as_mut_ptr().cast(),
                len - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        match r {
            -1 => fail!(
                "pread {}: {}",
                dev.display(),
                std::io::Error::last_os_error()
            ),
            0 => fail!(
                "{}: end of device at {}",
                dev.display(),
                offset + done as u64
            ),
            n => done += n as usize,
        }
    }
    Ok(buf.to_vec())
}

/// Writes a seeded pattern to a ubd disk, syncs, and reads it back past the
/// cache; checks the host's pattern and the device size too.
pub fn ubd(cfg: &Config) -> CaseResult {
    let Some(dev) = cfg.ubd.as_deref() else {
        skip!("no --ubd device given");
    };
    if !cfg.in_uml {
        skip!("not running under UML");
    }
    ensure_dev_node(dev)?;
    let meta = fs::metadata(dev).ctx(&format!("stat {}", dev.display()))?;
    check!(
        meta.file_type().is_block_device(),
        "{} is not a block device",
        dev.display()
    );
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .ctx(&format!("open {}", dev.display()))?;
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer.
    sys::cvt(unsafe { libc::ioctl(f.as_raw_fd(), BLKGETSIZE64, &mut size) }).ctx("BLKGETSIZE64")?;
    diag!("{}: {size} bytes", dev.display());
    if let Some(want) = cfg.ubd_size {
        check!(
            size == want,
            "device has {size} bytes, the image has {want}"
        );
    }
    let need = UBD_HOST_OFFSET + UBD_HOST_LEN as u64;
    check!(size >= need, "device too small: {size} < {need}");

    if let Some(h) = cfg.ubd_host_seed {
        let got = read_direct(dev, UBD_HOST_OFFSET, UBD_HOST_LEN)?;
        if let Some(i) = pattern::first_mismatch(h, 0, &got) {
            fail!(
                "host-written data differ at device offset {}",
                UBD_HOST_OFFSET + i as u64
            );
        }
    }

    let t0 = Instant::now();
    let mut chunk = vec![0u8; 256 << 10];
    let mut off = 0usize;
    while off < UBD_GUEST_LEN {
        let n = chunk.len().min(UBD_GUEST_LEN - off);
        pattern::fill(cfg.ubd_seed, off as u64, &mut chunk[..n]);
        let mut w = 0;
        while w < n {
            // SAFETY: `chunk[w..n]` is valid for reads.
            let r = unsafe {
                libc::pwrite(
                    f.as_raw_fd(),
                    chunk[w..n].as_ptr().cast(),
                    n - w,
                    (UBD_GUEST_OFFSET + (off + w) as u64) as libc::off_t,
                )
            };
            if r <= 0 {
                fail!(
                    "pwrite {}: {}",
                    dev.display(),
                    std::io::Error::last_os_error()
                );
            }
            w += r as usize;
        }
        off += n;
    }
    f.sync_all().ctx("fsync")?;
    // SAFETY: BLKFLSBUF takes no argument; drops the device's clean cache.
    sys::cvt(unsafe { libc::ioctl(f.as_raw_fd(), BLKFLSBUF, 0) }).ctx("BLKFLSBUF")?;
    let wrote = t0.elapsed();
    let got = read_direct(dev, UBD_GUEST_OFFSET, UBD_GUEST_LEN)?;
    if let Some(i) = pattern::first_mismatch(cfg.ubd_seed, 0, &got) {
        fail!(
            "read back differs at device offset {}",
            UBD_GUEST_OFFSET + i as u64
        );
    }
    let mut sum = pattern::Fnv1a::new();
    sum.update(&got);
    diag!(
        "wrote {UBD_GUEST_LEN} bytes (seed {:#x}) in {:.0} ms, read back, fnv1a {:#018x}",
        cfg.ubd_seed,
        wrote.as_secs_f64() * 1e3,
        sum.finish()
    );
    Ok(())
}

/// Tells the host the guest is ready for outside checks and waits for its
/// go-file.
pub fn host_sync(cfg: &Config) -> CaseResult {
    let Some(name) = cfg.host_sync.as_deref() else {
        skip!("no --host-sync given");
    };
    let mnt = hostfs_mount(cfg)?;
    let go = mnt.join(name);
    diag!("{READY_MARKER}");
    match crate::wait_file(&go, cfg.host_sync_timeout) {
        Ok(()) => {
            let msg = fs::read_to_string(&go).unwrap_or_default();
            diag!("host says: {}", msg.trim());
            Ok(())
        }
        Err(e) => fail!("{e}"),
    }
}
