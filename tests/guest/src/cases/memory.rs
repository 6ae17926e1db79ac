// SPDX-License-Identifier: GPL-2.0
//! Address spaces: a bounded fork storm with copy-on-write checks both ways,
//! a seeded mmap/mprotect/munmap/mremap/madvise torture checked against a
//! model of every page, and threads that write shared memory while another
//! thread keeps changing the address space.
//!
//! Page contents are "tags": tag 0 is a zero page, any other tag is the
//! [`pattern`] stream of that seed, so a page that holds the wrong data (a
//! stale host mapping, a lost copy-on-write, a page of someone else) is
//! found by comparing it with the tag the model expects.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use super::Config;
use super::isolated::run_isolated;
use crate::ktap::{CaseResult, Context, Verdict};
use crate::pattern;
use crate::sys::{self, Exit, Mapping, Reaper};
use crate::{check, diag, fail};

const RW: libc::c_int = libc::PROT_READ | libc::PROT_WRITE;

/// A tag from a tuple of numbers; never 0 (the zero page).
fn tag_of(parts: &[u64]) -> u64 {
    let mut h = 0x7461_6773_u64;
    for &p in parts {
        h = pattern::word(h, p);
    }
    h | 1
}

/// The byte at `off` of a page holding `tag`.
fn tag_byte(tag: u64, off: usize) -> u8 {
    if tag == 0 {
        0
    } else {
        pattern::byte_at(tag, off as u64)
    }
}

fn fill_tag(buf: &mut [u8], tag: u64) {
    if tag == 0 {
        buf.fill(0);
    } else {
        pattern::fill(tag, 0, buf);
    }
}

fn tag_mismatch(buf: &[u8], tag: u64) -> Option<usize> {
    tag_mismatch_from(buf, tag, 0)
}

/// Like [`tag_mismatch`] for a buffer that starts `off` bytes into the
/// tag's content.
fn tag_mismatch_from(buf: &[u8], tag: u64, off: usize) -> Option<usize> {
    if tag == 0 {
        buf.iter().position(|&b| b != 0)
    } else {
        pattern::first_mismatch(tag, off as u64, buf)
    }
}

/// Fills `len` bytes at `addr` with `tag`.
///
/// # Safety
/// `addr..addr + len` must be mapped writable, and nothing else may hold a
/// reference to those bytes.
unsafe fn fill_at(addr: usize, len: usize, tag: u64) {
    // SAFETY: guaranteed by the caller.
    let bytes = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, len) };
    fill_tag(bytes, tag);
}

/// First byte of `len` bytes at `addr` that differs from `tag`.
///
/// # Safety
/// `addr..addr + len` must be mapped readable, and nobody may write those
/// bytes during the call.
unsafe fn mismatch_at(addr: usize, len: usize, tag: u64) -> Option<usize> {
    // SAFETY: guaranteed by the caller.
    let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
    tag_mismatch(bytes, tag)
}

/// A probe child must not leave core files behind when it dies on purpose.
fn no_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit with a valid rlimit value.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
}

// ---------------------------------------------------------------------------
// fork_storm

const STORM_WAVES: u64 = 8;
const STORM_CHILDREN: usize = 64;
const STORM_ANON_PAGES: usize = 4;
const STORM_HEAP_PAGES: usize = 3;
/// Every 16th child forks a grandchild of its own.
const STORM_GRANDCHILD_EVERY: usize = 16;
const STORM_LIMIT: Duration = Duration::from_secs(45);
/// A storm child exits with STORM_OK_BASE + its index; failures are below.
const STORM_OK_BASE: i32 = 64;
const STORM_GRANDCHILD_OK: i32 = 77;

fn storm_failure(code: i32) -> &'static str {
    match code {
        1 => "could not read its go byte",
        2 => "its anonymous pages did not hold the value from before the fork",
        3 => "its heap pages did not hold the value from before the fork",
        4 => "its own write did not read back",
        5 => "its grandchild failed",
        6 => "its grandchild's writes showed through",
        101 => "it panicked",
        _ => "unknown code",
    }
}

/// The value a storm child leaves in its shared slot.
fn storm_slot(wave: u64, i: usize) -> u32 {
    0x8000_0000 | ((wave as u32) << 16) | i as u32
}

/// One storm child: waits until the parent has written over the pages, checks
/// it still sees the old contents, writes its own, lets every 16th child's
/// grandchild do the same one level down, and reports in its shared slot.
#[allow(clippy::too_many_arguments)]
fn storm_child(
    rfd: i32,
    wfd: i32,
    anon: &mut [u8],
    heap: &mut [u8],
    slot: &AtomicU32,
    wave: u64,
    i: usize,
    old: u64,
) -> i32 {
    // SAFETY: closes this child's copy of the write end, so that the read below sees end of file should the parent give up.
    unsafe { libc::close(wfd) };
    let mut b = [0u8; 1];
    if !matches!(sys::read_fd(rfd, &mut b), Ok(1)) {
        return 1;
    }
    if tag_mismatch(anon, old).is_some() {
        return 2;
    }
    if tag_mismatch(heap, old).is_some() {
        return 3;
    }
    let mine = tag_of(&[3, wave, i as u64]);
    fill_tag(anon, mine);
    fill_tag(heap, mine);
    if tag_mismatch(anon, mine).is_some() || tag_mismatch(heap, mine).is_some() {
        return 4;
    }
    if i % STORM_GRANDCHILD_EVERY == 0 {
        let g = sys::fork_child(|| {
            if tag_mismatch(anon, mine).is_some() || tag_mismatch(heap, mine).is_some() {
                return 1;
            }
            let theirs = tag_of(&[4, wave, i as u64]);
            fill_tag(anon, theirs);
            fill_tag(heap, theirs);
            if tag_mismatch(anon, theirs).is_some() || tag_mismatch(heap, theirs).is_some() {
                return 2;
            }
            STORM_GRANDCHILD_OK
        });
        match g.and_then(|g| sys::wait_timeout(g, Duration::from_secs(20))) {
            Ok(Exit::Code(STORM_GRANDCHILD_OK)) => {}
            _ => return 5,
        }
        if tag_mismatch(anon, mine).is_some() || tag_mismatch(heap, mine).is_some() {
            return 6;
        }
    }
    slot.store(storm_slot(wave, i), SeqCst);
    STORM_OK_BASE + i as i32
}

/// Waves of 64 children that check copy-on-write both ways over anonymous
/// and heap pages; every status is checked.
pub fn fork_storm(_cfg: &Config) -> CaseResult {
    let ps = sys::page_size();
    let mut anon = Mapping::new(STORM_ANON_PAGES * ps, RW).ctx("mmap")?;
    let mut heap = vec![0u8; STORM_HEAP_PAGES * ps];
    let slots_map = Mapping::new_shared(ps, RW).ctx("mmap shared")?;
    const _: () = assert!(STORM_CHILDREN * 4 <= 4096);
    let base = slots_map.as_ptr().cast::<AtomicU32>();
    // SAFETY: the shared page is page-aligned, zero-filled, at least 4 KiB and outlives `slots`; AtomicU32 has the layout of u32.
    let slots: &[AtomicU32] = unsafe { std::slice::from_raw_parts(base, STORM_CHILDREN) };
    let start = Instant::now();
    let mut reaper = Reaper::new();
    let mut forks = 0usize;
    for wave in 0..STORM_WAVES {
        let old = tag_of(&[1, wave]);
        let new = tag_of(&[2, wave]);
        fill_tag(anon.as_mut_slice(), old);
        fill_tag(&mut heap, old);
        for s in slots {
            s.store(0, SeqCst);
        }
        let (r, w) = sys::pipe().ctx("pipe")?;
        let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
        let mut pids = Vec::with_capacity(STORM_CHILDREN);
        for (i, slot) in slots.iter().enumerate() {
            let a = anon.as_mut_slice();
            let h = &mut heap[..];
            let pid = sys::fork_child(move || storm_child(rfd, wfd, a, h, slot, wave, i, old))
                .ctx(&format!("wave {wave}: fork child {i}"))?;
            reaper.add(pid);
            pids.push(pid);
            forks += 1 + usize::from(i % STORM_GRANDCHILD_EVERY == 0);
        }
        // The parent writes after the fork; the children must not see it.
        fill_tag(anon.as_mut_slice(), new);
        fill_tag(&mut heap, new);
        sys::write_all_fd(wfd, &[b'g'; STORM_CHILDREN]).ctx("write go bytes")?;
        drop(w);
        drop(r);
        for (i, &pid) in pids.iter().enumerate() {
            let left = STORM_LIMIT
                .saturating_sub(start.elapsed())
                .max(Duration::from_millis(10));
            let x = sys::wait_timeout(pid, left);
            reaper.done(pid);
            let x = x.ctx(&format!("wave {wave}: wait for child {i}"))?;
            let want = STORM_OK_BASE + i as i32;
            if x != Exit::Code(want) {
                let why = match x {
                    Exit::Code(c) => storm_failure(c),
                    Exit::Signal(_) => "killed",
                };
                fail!("wave {wave}: child {i} (pid {pid}): {x}: {why}; expected exit code {want}");
            }
        }
        if let Some(o) = tag_mismatch(anon.as_mut_slice(), new) {
            fail!(
                "wave {wave}: the parent's anonymous pages changed at byte {o} (a child's write showed through)"
            );
        }
        if let Some(o) = tag_mismatch(&heap, new) {
            fail!(
                "wave {wave}: the parent's heap pages changed at byte {o} (a child's write showed through)"
            );
        }
        for (i, s) in slots.iter().enumerate() {
            let v = s.load(SeqCst);
            check!(
                v == storm_slot(wave, i),
                "wave {wave}: child {i} left {v:#x} in its shared slot, expected {:#x}",
                storm_slot(wave, i)
            );
        }
        check!(
            start.elapsed() < STORM_LIMIT,
            "fork storm exceeded {STORM_LIMIT:?} after wave {wave}"
        );
    }
    let el = start.elapsed();
    diag!(
        "{STORM_WAVES} waves of {STORM_CHILDREN} children, {forks} forks in {:.2} s",
        el.as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// mm_torture

const TORTURE_PAGES: usize = 48;
const TORTURE_OPS: u64 = 400;
const TORTURE_SEED: u64 = 0x6d6d_746f_7274_7572;
const TORTURE_LIMIT: Duration = Duration::from_secs(50);
/// Longest range of one operation, in pages.
const TORTURE_MAX_RUN: usize = 8;
/// A probe child every this many operations.
const TORTURE_PROBE_EVERY: u64 = 3;
/// /proc/self/maps is compared with the model every this many operations.
const TORTURE_MAPS_EVERY: u64 = 16;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Page {
    Unmapped,
    Mapped {
        prot: libc::c_int,
        shared: bool,
        tag: u64,
    },
}

impl Page {
    fn readable(self) -> bool {
        matches!(self, Page::Mapped { prot, .. } if prot & libc::PROT_READ != 0)
    }

    fn writable(self) -> bool {
        matches!(self, Page::Mapped { prot, .. } if prot & libc::PROT_WRITE != 0)
    }
}

fn prot_name(prot: libc::c_int) -> &'static str {
    match prot {
        libc::PROT_NONE => "none",
        libc::PROT_READ => "r",
        RW => "rw",
        _ => "?",
    }
}

/// xorshift64: small, seeded, deterministic.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    fn prot(&mut self) -> libc::c_int {
        [libc::PROT_NONE, libc::PROT_READ, RW][self.below(3)]
    }
}

/// What a probe child does to a page.
#[derive(Clone, Copy)]
enum Probe {
    /// Read one byte and exit with it.
    Read(usize),
    /// Write one byte, then exit with PROBE_WROTE.
    Write(usize),
    /// Fill the page with a tag, then exit with PROBE_WROTE.
    Fill(u64),
}

const PROBE_WROTE: i32 = 0x3C;
const FORK_CHECK_OK: i32 = 42;

/// One virtual memory area from /proc/self/maps.
struct Vma {
    start: usize,
    end: usize,
    perms: [u8; 4],
}

fn read_maps() -> Result<Vec<Vma>, String> {
    let text = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| format!("read /proc/self/maps: {e}"))?;
    let mut v = Vec::new();
    for l in text.lines() {
        let mut w = l.split_whitespace();
        let (Some(range), Some(perms)) = (w.next(), w.next()) else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        else {
            return Err(format!("bad maps line {l:?}"));
        };
        let p = perms.as_bytes();
        if p.len() < 4 {
            return Err(format!("bad maps line {l:?}"));
        }
        v.push(Vma {
            start,
            end,
            perms: [p[0], p[1], p[2], p[3]],
        });
    }
    Ok(v)
}

#[derive(Default)]
struct Stats {
    mmap_private: u32,
    mmap_shared: u32,
    mprotect: u32,
    munmap: u32,
    mremap_move: u32,
    mremap_shrink: u32,
    mremap_grow: u32,
    mremap_grow_refused: u32,
    madvise: u32,
    write: u32,
    probes: u32,
    segv_probes: u32,
    forks: u32,
    maps_checks: u32,
}

struct Torture {
    base: usize,
    ps: usize,
    model: Vec<Page>,
    rng: Xorshift,
    tags: u64,
    op: u64,
    what: String,
    stats: Stats,
}

type Res = Result<(), String>;

impl Torture {
    fn addr(&self, i: usize) -> usize {
        self.base + i * self.ps
    }

    fn new_tag(&mut self) -> u64 {
        self.tags += 1;
        tag_of(&[TORTURE_SEED, self.tags])
    }

    fn err(&self, msg: String) -> String {
        format!("op {} ({}): {msg}", self.op, self.what)
    }

    /// A random range of 1..=TORTURE_MAX_RUN pages inside the region.
    fn range(&mut self) -> (usize, usize) {
        let s = self.rng.below(TORTURE_PAGES);
        let n = 1 + self.rng.below(TORTURE_MAX_RUN.min(TORTURE_PAGES - s));
        (s, n)
    }

    /// A random run of mapped pages, or None if nothing is mapped.
    fn mapped_run(&mut self) -> Option<(usize, usize)> {
        let mapped: Vec<usize> = (0..TORTURE_PAGES)
            .filter(|&i| self.model[i] != Page::Unmapped)
            .collect();
        if mapped.is_empty() {
            return None;
        }
        let s = mapped[self.rng.below(mapped.len())];
        let want = 1 + self.rng.below(TORTURE_MAX_RUN);
        let mut n = 1;
        while n < want && s + n < TORTURE_PAGES && self.model[s + n] != Page::Unmapped {
            n += 1;
        }
        Some((s, n))
    }

    /// Pages the model says are unmapped must really be free: a mapping of
    /// someone else there would be clobbered by MAP_FIXED.
    fn check_holes(&self, s: usize, n: usize) -> Res {
        let mut vec = [0u8; 1];
        for i in s..s + n {
            if self.model[i] != Page::Unmapped {
                continue;
            }
            // SAFETY: mincore only inspects the page tables; `vec` holds one entry.
            let r = unsafe {
                libc::mincore(self.addr(i) as *mut libc::c_void, self.ps, vec.as_mut_ptr())
            };
            let e = std::io::Error::last_os_error();
            if r == 0 || e.raw_os_error() != Some(libc::ENOMEM) {
                return Err(self.err(format!(
                    "page {i} ({:#x}) should be unmapped but mincore says {r} ({e})",
                    self.addr(i)
                )));
            }
        }
        Ok(())
    }

    /// Fills writable page `i` with a new tag.
    fn write_page(&mut self, i: usize) {
        let tag = self.new_tag();
        if let Page::Mapped { prot, shared, .. } = self.model[i] {
            debug_assert!(prot == RW);
            // SAFETY: the model says page i is mapped read-write; it is ours.
            unsafe { fill_at(self.addr(i), self.ps, tag) };
            self.model[i] = Page::Mapped { prot, shared, tag };
        }
    }

    /// Every readable page holds what the model says.
    fn verify(&self) -> Res {
        for (i, p) in self.model.iter().enumerate() {
            let Page::Mapped { tag, .. } = *p else {
                continue;
            };
            if !p.readable() {
                continue;
            }
            // SAFETY: the model says page i is mapped readable.
            if let Some(o) = unsafe { mismatch_at(self.addr(i), self.ps, tag) } {
                // SAFETY: as above; `o` is within the page.
                let got = unsafe { std::ptr::read_volatile((self.addr(i) + o) as *const u8) };
                return Err(self.err(format!(
                    "page {i} ({:#x}, {p:?}) holds {got:#04x} at byte {o}, expected {:#04x}",
                    self.addr(i),
                    tag_byte(tag, o)
                )));
            }
        }
        Ok(())
    }

    /// The kernel's view of the region (/proc/self/maps) matches the model.
    fn check_maps(&self, maps: &[Vma]) -> Res {
        for (i, p) in self.model.iter().enumerate() {
            let a = self.addr(i);
            let vma = maps.iter().find(|v| v.start <= a && a < v.end);
            match (*p, vma) {
                (Page::Unmapped, None) => {}
                (Page::Unmapped, Some(v)) => {
                    return Err(self.err(format!(
                        "page {i} ({a:#x}) should be unmapped, maps has {:#x}-{:#x} {}",
                        v.start,
                        v.end,
                        String::from_utf8_lossy(&v.perms)
                    )));
                }
                (Page::Mapped { .. }, None) => {
                    return Err(self.err(format!("page {i} ({a:#x}, {p:?}) is missing from maps")));
                }
                (Page::Mapped { prot, shared, .. }, Some(v)) => {
                    let want = [
                        if prot & libc::PROT_READ != 0 {
                            b'r'
                        } else {
                            b'-'
                        },
                        if prot & libc::PROT_WRITE != 0 {
                            b'w'
                        } else {
                            b'-'
                        },
                        b'-',
                        if shared { b's' } else { b'p' },
                    ];
                    if v.perms != want {
                        return Err(self.err(format!(
                            "page {i} ({a:#x}) is {} in maps, the model says {}",
                            String::from_utf8_lossy(&v.perms),
                            String::from_utf8_lossy(&want)
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn op_mmap(&mut self, shared: bool) -> Res {
        let (s, n) = self.range();
        self.check_holes(s, n)?;
        let final_prot = if shared {
            if self.rng.coin() { RW } else { libc::PROT_READ }
        } else {
            self.rng.prot()
        };
        let map_prot = if final_prot == libc::PROT_NONE {
            libc::PROT_NONE
        } else {
            RW
        };
        let kind = if shared {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        };
        self.what = format!(
            "mmap {} {} pages {s}..{}",
            if shared { "shared" } else { "private" },
            prot_name(final_prot),
            s + n
        );
        // SAFETY: MAP_FIXED inside our own region; check_holes made sure no mapping of anyone else is replaced.
        let p = unsafe {
            libc::mmap(
                self.addr(s) as *mut libc::c_void,
                n * self.ps,
                map_prot,
                libc::MAP_FIXED | kind | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p as usize != self.addr(s) {
            return Err(self.err(format!("mmap: {}", std::io::Error::last_os_error())));
        }
        for i in s..s + n {
            self.model[i] = Page::Mapped {
                prot: map_prot,
                shared,
                tag: 0,
            };
        }
        if map_prot == RW {
            for i in s..s + n {
                if self.rng.below(4) != 0 {
                    self.write_page(i);
                }
            }
        }
        if final_prot != map_prot {
            self.mprotect(s, n, final_prot)?;
        }
        if shared {
            self.stats.mmap_shared += 1;
        } else {
            self.stats.mmap_private += 1;
        }
        Ok(())
    }

    fn mprotect(&mut self, s: usize, n: usize, prot: libc::c_int) -> Res {
        // SAFETY: changes protection of pages of our own region that the model says are mapped; no Rust reference into them is live.
        let r = unsafe { libc::mprotect(self.addr(s) as *mut libc::c_void, n * self.ps, prot) };
        if r != 0 {
            return Err(self.err(format!("mprotect: {}", std::io::Error::last_os_error())));
        }
        for i in s..s + n {
            if let Page::Mapped { shared, tag, .. } = self.model[i] {
                self.model[i] = Page::Mapped { prot, shared, tag };
            }
        }
        Ok(())
    }

    fn op_mprotect(&mut self) -> Res {
        let Some((s, n)) = self.mapped_run() else {
            return self.op_mmap(false);
        };
        let prot = self.rng.prot();
        self.what = format!("mprotect {} pages {s}..{}", prot_name(prot), s + n);
        self.mprotect(s, n, prot)?;
        if prot == RW {
            for i in s..s + n {
                if self.rng.coin() {
                    self.write_page(i);
                }
            }
        }
        self.stats.mprotect += 1;
        Ok(())
    }

    fn op_munmap(&mut self) -> Res {
        let (s, n) = self.range();
        self.what = format!("munmap pages {s}..{}", s + n);
        self.check_holes(s, n)?;
        // SAFETY: unmaps pages of our own region only (holes checked above).
        let r = unsafe { libc::munmap(self.addr(s) as *mut libc::c_void, n * self.ps) };
        if r != 0 {
            return Err(self.err(format!("munmap: {}", std::io::Error::last_os_error())));
        }
        for i in s..s + n {
            self.model[i] = Page::Unmapped;
        }
        self.stats.munmap += 1;
        Ok(())
    }

    fn op_madvise(&mut self) -> Res {
        let Some((s, n)) = self.mapped_run() else {
            return self.op_mmap(true);
        };
        self.what = format!("madvise DONTNEED pages {s}..{}", s + n);
        // SAFETY: drops the pages of a mapped run of our region; private pages read back as zeros, shared ones keep their data.
        let r = unsafe {
            libc::madvise(
                self.addr(s) as *mut libc::c_void,
                n * self.ps,
                libc::MADV_DONTNEED,
            )
        };
        if r != 0 {
            return Err(self.err(format!("madvise: {}", std::io::Error::last_os_error())));
        }
        for i in s..s + n {
            if let Page::Mapped {
                prot,
                shared: false,
                ..
            } = self.model[i]
            {
                self.model[i] = Page::Mapped {
                    prot,
                    shared: false,
                    tag: 0,
                };
            }
        }
        self.stats.madvise += 1;
        Ok(())
    }

    fn op_write(&mut self) -> Res {
        let (s, n) = self.range();
        self.what = format!("write pages {s}..{}", s + n);
        for i in s..s + n {
            if self.model[i].writable() {
                self.write_page(i);
            }
        }
        self.stats.write += 1;
        Ok(())
    }

    /// mremap needs its old range inside one VMA: take it from
    /// /proc/self/maps, clipped to the region.
    fn op_mremap(&mut self) -> Res {
        let maps = read_maps().map_err(|e| self.err(e))?;
        self.what = "mremap (maps check)".into();
        self.check_maps(&maps)?;
        let mapped: Vec<usize> = (0..TORTURE_PAGES)
            .filter(|&i| self.model[i] != Page::Unmapped)
            .collect();
        if mapped.is_empty() {
            return self.op_mmap(false);
        }
        let p = mapped[self.rng.below(mapped.len())];
        let a = self.addr(p);
        let Some(vma) = maps.iter().find(|v| v.start <= a && a < v.end) else {
            return Err(self.err(format!("page {p} ({a:#x}) is not in maps")));
        };
        let region_end = self.addr(TORTURE_PAGES);
        let s0 = (vma.start.max(self.base) - self.base) / self.ps;
        let e0 = (vma.end.min(region_end) - self.base) / self.ps;
        let vma_in_region = vma.end <= region_end;
        match self.rng.below(3) {
            0 => self.mremap_move(s0, e0),
            1 if e0 - s0 >= 2 => self.mremap_shrink(s0, e0),
            _ if vma_in_region && self.model[e0 - 1] != Page::Unmapped => {
                let shared = matches!(self.model[e0 - 1], Page::Mapped { shared: true, .. });
                if shared || e0 == TORTURE_PAGES {
                    self.mremap_move(s0, e0)
                } else {
                    self.mremap_grow(s0, e0)
                }
            }
            _ => self.mremap_move(s0, e0),
        }
    }

    fn mremap_move(&mut self, s0: usize, e0: usize) -> Res {
        let len = 1 + self.rng.below((e0 - s0).min(4));
        let s = s0 + self.rng.below(e0 - s0 - len + 1);
        // A destination that does not overlap the source.
        let mut d = None;
        for _ in 0..16 {
            let c = self.rng.below(TORTURE_PAGES - len + 1);
            if c + len <= s || c >= s + len {
                d = Some(c);
                break;
            }
        }
        let Some(d) = d else {
            return self.op_write();
        };
        self.what = format!("mremap move pages {s}..{} to {d}..{}", s + len, d + len);
        self.check_holes(d, len)?;
        // SAFETY: moves pages within one VMA of our region to another place in our region (MREMAP_FIXED replaces only our own pages or holes checked above).
        let r = unsafe {
            libc::mremap(
                self.addr(s) as *mut libc::c_void,
                len * self.ps,
                len * self.ps,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                self.addr(d) as *mut libc::c_void,
            )
        };
        if r as usize != self.addr(d) {
            return Err(self.err(format!(
                "mremap returned {r:?}: {}",
                std::io::Error::last_os_error()
            )));
        }
        let moved: Vec<Page> = self.model[s..s + len].to_vec();
        for i in s..s + len {
            self.model[i] = Page::Unmapped;
        }
        self.model[d..d + len].copy_from_slice(&moved);
        self.stats.mremap_move += 1;
        Ok(())
    }

    fn mremap_shrink(&mut self, s0: usize, e0: usize) -> Res {
        let s = s0 + self.rng.below(e0 - s0 - 1);
        let old = e0 - s;
        let new = 1 + self.rng.below(old - 1);
        self.what = format!("mremap shrink pages {s}..{e0} to {s}..{}", s + new);
        // SAFETY: shrinks a range within one VMA of our region in place.
        let r = unsafe {
            libc::mremap(
                self.addr(s) as *mut libc::c_void,
                old * self.ps,
                new * self.ps,
                0,
            )
        };
        if r as usize != self.addr(s) {
            return Err(self.err(format!(
                "mremap returned {r:?}: {}",
                std::io::Error::last_os_error()
            )));
        }
        for i in s + new..e0 {
            self.model[i] = Page::Unmapped;
        }
        self.stats.mremap_shrink += 1;
        Ok(())
    }

    /// Grows a private VMA that ends inside the region in place: succeeds
    /// if the pages after it are free, fails with ENOMEM if they are not.
    fn mremap_grow(&mut self, s0: usize, e0: usize) -> Res {
        let s = s0 + self.rng.below(e0 - s0);
        let g = 1 + self.rng.below(3.min(TORTURE_PAGES - e0));
        let old = e0 - s;
        let free = (e0..e0 + g).all(|i| self.model[i] == Page::Unmapped);
        self.what = format!(
            "mremap grow pages {s}..{e0} to {s}..{} in place ({})",
            e0 + g,
            if free { "free" } else { "occupied" }
        );
        self.check_holes(e0, g)?;
        let Page::Mapped { prot, .. } = self.model[e0 - 1] else {
            return Err(self.err("the VMA's last page is unmapped in the model".into()));
        };
        // SAFETY: without MREMAP_MAYMOVE the range either grows into free pages of our region or the call fails; nothing else moves.
        let r = unsafe {
            libc::mremap(
                self.addr(s) as *mut libc::c_void,
                old * self.ps,
                (old + g) * self.ps,
                0,
            )
        };
        let e = std::io::Error::last_os_error();
        if free {
            if r as usize != self.addr(s) {
                return Err(self.err(format!("mremap returned {r:?}: {e}")));
            }
            for i in e0..e0 + g {
                self.model[i] = Page::Mapped {
                    prot,
                    shared: false,
                    tag: 0,
                };
            }
            self.stats.mremap_grow += 1;
        } else {
            if r != libc::MAP_FAILED || e.raw_os_error() != Some(libc::ENOMEM) {
                return Err(self.err(format!(
                    "mremap into occupied pages returned {r:?} ({e}), expected ENOMEM"
                )));
            }
            self.stats.mremap_grow_refused += 1;
        }
        Ok(())
    }

    /// Runs `probe` on page `i` in a child; returns how the child ended.
    fn probe(&self, i: usize, probe: Probe) -> Result<Exit, String> {
        let addr = self.addr(i);
        let ps = self.ps;
        let pid = sys::fork_child(move || {
            no_core_dumps();
            match probe {
                Probe::Read(off) => {
                    // SAFETY: may fault on purpose; the child then dies of SIGSEGV.
                    i32::from(unsafe { std::ptr::read_volatile((addr + off) as *const u8) })
                }
                Probe::Write(off) => {
                    // SAFETY: as above; this child's copy of the page only.
                    unsafe { std::ptr::write_volatile((addr + off) as *mut u8, 0xEE) };
                    PROBE_WROTE
                }
                Probe::Fill(tag) => {
                    // SAFETY: the page is mapped shared read-write in this child.
                    unsafe { fill_at(addr, ps, tag) };
                    PROBE_WROTE
                }
            }
        })
        .map_err(|e| self.err(format!("fork probe: {e}")))?;
        sys::wait_timeout(pid, Duration::from_secs(20)).map_err(|e| self.err(format!("probe: {e}")))
    }

    /// Probes one random page from a child: inaccessible pages must kill it
    /// with SIGSEGV, accessible ones must read what the model says; a child's
    /// write reaches the parent only through a shared page.
    fn op_probe(&mut self) -> Res {
        let i = self.rng.below(TORTURE_PAGES);
        let off = self.rng.below(self.ps);
        let page = self.model[i];
        self.check_holes(i, 1)?;
        let (probe, want, desc) = match page {
            Page::Unmapped
            | Page::Mapped {
                prot: libc::PROT_NONE,
                ..
            } => (
                Probe::Read(off),
                Exit::Signal(libc::SIGSEGV),
                "read of an inaccessible page",
            ),
            Page::Mapped {
                prot: libc::PROT_READ,
                tag,
                ..
            } => {
                if self.rng.coin() {
                    (
                        Probe::Write(off),
                        Exit::Signal(libc::SIGSEGV),
                        "write to a read-only page",
                    )
                } else {
                    (
                        Probe::Read(off),
                        Exit::Code(i32::from(tag_byte(tag, off))),
                        "read of a read-only page",
                    )
                }
            }
            Page::Mapped {
                shared: true, tag, ..
            } => {
                if self.rng.coin() {
                    let t = self.new_tag();
                    self.model[i] = Page::Mapped {
                        prot: RW,
                        shared: true,
                        tag: t,
                    };
                    (
                        Probe::Fill(t),
                        Exit::Code(PROBE_WROTE),
                        "fill of a shared page",
                    )
                } else {
                    (
                        Probe::Read(off),
                        Exit::Code(i32::from(tag_byte(tag, off))),
                        "read of a shared page",
                    )
                }
            }
            Page::Mapped { .. } => (
                Probe::Write(off),
                Exit::Code(PROBE_WROTE),
                "write to a private page",
            ),
        };
        self.what = format!("probe: {desc}, page {i} byte {off}");
        let x = self.probe(i, probe)?;
        if x != want {
            return Err(self.err(format!("the probe child ended with {x}, expected {want}")));
        }
        self.stats.probes += 1;
        if want == Exit::Signal(libc::SIGSEGV) {
            self.stats.segv_probes += 1;
        }
        Ok(())
    }

    /// Forks a child that checks every page and the maps against the model,
    /// then writes all writable pages: the parent must see those writes in
    /// shared pages only.
    fn op_fork_check(&mut self) -> Res {
        self.what = "fork check".into();
        let op = self.op;
        let pid = sys::fork_child(|| {
            if self.verify().is_err() {
                return 1;
            }
            let maps_ok = read_maps().is_ok_and(|m| self.check_maps(&m).is_ok());
            if !maps_ok {
                return 2;
            }
            for i in 0..TORTURE_PAGES {
                if self.model[i].writable() {
                    let t = tag_of(&[TORTURE_SEED, 0xF0, op, i as u64]);
                    // SAFETY: the model says page i is mapped read-write.
                    unsafe { fill_at(self.addr(i), self.ps, t) };
                    // SAFETY: as above.
                    if unsafe { mismatch_at(self.addr(i), self.ps, t) }.is_some() {
                        return 3;
                    }
                }
            }
            FORK_CHECK_OK
        })
        .map_err(|e| self.err(format!("fork: {e}")))?;
        let x = sys::wait_timeout(pid, Duration::from_secs(30))
            .map_err(|e| self.err(format!("wait: {e}")))?;
        if x != Exit::Code(FORK_CHECK_OK) {
            let why = match x {
                Exit::Code(1) => "it saw different page contents than the parent",
                Exit::Code(2) => "its maps differ from the model",
                Exit::Code(3) => "its own writes did not read back",
                _ => "it crashed",
            };
            return Err(self.err(format!("the forked child ended with {x}: {why}")));
        }
        for i in 0..TORTURE_PAGES {
            if let Page::Mapped {
                prot: RW,
                shared: true,
                ..
            } = self.model[i]
            {
                self.model[i] = Page::Mapped {
                    prot: RW,
                    shared: true,
                    tag: tag_of(&[TORTURE_SEED, 0xF0, op, i as u64]),
                };
            }
        }
        self.stats.forks += 1;
        Ok(())
    }

    fn run(&mut self, progress: &AtomicU64, deadline: Instant) -> Res {
        for op in 0..TORTURE_OPS {
            self.op = op;
            progress.store(op, SeqCst);
            match self.rng.below(100) {
                0..14 => self.op_mmap(false)?,
                14..24 => self.op_mmap(true)?,
                24..44 => self.op_mprotect()?,
                44..56 => self.op_munmap()?,
                56..72 => self.op_mremap()?,
                72..80 => self.op_madvise()?,
                _ => self.op_write()?,
            }
            self.verify()?;
            if op % TORTURE_PROBE_EVERY == 0 {
                self.op_probe()?;
                self.verify()?;
            }
            if op == TORTURE_OPS / 2 || op == 3 * TORTURE_OPS / 4 {
                self.op_fork_check()?;
                self.verify()?;
            }
            if op % TORTURE_MAPS_EVERY == 0 || op == TORTURE_OPS - 1 {
                self.what = "maps check".into();
                let maps = read_maps().map_err(|e| self.err(e))?;
                self.check_maps(&maps)?;
                self.stats.maps_checks += 1;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "only {op} of {TORTURE_OPS} operations done in time"
                ));
            }
        }
        Ok(())
    }
}

fn torture(progress: &AtomicU64) -> CaseResult {
    let ps = sys::page_size();
    let start = Instant::now();
    // The region starts as one PROT_NONE reservation; the model knows that.
    // SAFETY: a fresh anonymous mapping where the kernel chooses.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            TORTURE_PAGES * ps,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    check!(
        base != libc::MAP_FAILED,
        "mmap region: {}",
        std::io::Error::last_os_error()
    );
    let mut t = Torture {
        base: base as usize,
        ps,
        model: vec![
            Page::Mapped {
                prot: libc::PROT_NONE,
                shared: false,
                tag: 0,
            };
            TORTURE_PAGES
        ],
        rng: Xorshift(TORTURE_SEED),
        tags: 0,
        op: 0,
        what: String::new(),
        stats: Stats::default(),
    };
    // Leave some margin below the parent's limit for the report.
    let deadline = start + TORTURE_LIMIT - Duration::from_secs(5);
    t.run(progress, deadline).map_err(Verdict::Fail)?;
    let s = &t.stats;
    diag!(
        "{TORTURE_OPS} ops over {TORTURE_PAGES} pages in {:.2} s: mmap {}+{} shared, mprotect {}, \
         munmap {}, mremap move {} shrink {} grow {} (refused {}), madvise {}, write {}; \
         {} probes ({} SIGSEGV), {} fork checks, {} maps checks",
        start.elapsed().as_secs_f64(),
        s.mmap_private,
        s.mmap_shared,
        s.mprotect,
        s.munmap,
        s.mremap_move,
        s.mremap_shrink,
        s.mremap_grow,
        s.mremap_grow_refused,
        s.madvise,
        s.write,
        s.probes,
        s.segv_probes,
        s.forks,
        s.maps_checks
    );
    // Every kind of operation must have run, or the test proves less than
    // it claims.
    check!(
        s.mmap_private > 0
            && s.mmap_shared > 0
            && s.mprotect > 0
            && s.munmap > 0
            && s.mremap_move > 0
            && s.mremap_shrink > 0
            && s.mremap_grow + s.mremap_grow_refused > 0
            && s.madvise > 0
            && s.segv_probes > 0
            && s.forks == 2,
        "the seeded sequence did not cover every kind of operation"
    );
    // SAFETY: unmaps the region this function mapped; nothing refers to it.
    unsafe { libc::munmap(base, TORTURE_PAGES * ps) };
    Ok(())
}

/// A seeded sequence of mmap, mprotect, munmap, mremap and madvise on a
/// region of pages, verified against a model after every step. Runs in a
/// child of its own.
pub fn mm_torture(_cfg: &Config) -> CaseResult {
    run_isolated("mm_torture", TORTURE_LIMIT, torture)
}

// ---------------------------------------------------------------------------
// threads_mm

const TM_WORKERS: usize = 4;
const TM_STRIPE_PAGES: usize = 16;
const TM_ROUNDS: u64 = 400;
/// The mapper goes on until the workers are done, and at least this long.
const TM_MAPPER_MIN: u64 = 60;
const TM_LIMIT: Duration = Duration::from_secs(40);

/// A worker: rewrites its own stripe of the shared mapping and checks it,
/// round after round.
fn tm_worker(t: usize, stripe: usize, len: usize, stop: &AtomicBool) -> Result<(), String> {
    for r in 0..TM_ROUNDS {
        if stop.load(SeqCst) {
            return Err(format!("worker {t} stopped at round {r}"));
        }
        let tag = tag_of(&[5, t as u64, r]);
        // SAFETY: the stripe belongs to this worker alone and outlives it.
        unsafe { fill_at(stripe, len, tag) };
        for _ in 0..2 {
            std::thread::yield_now();
            // SAFETY: as above.
            if let Some(o) = unsafe { mismatch_at(stripe, len, tag) } {
                stop.store(true, SeqCst);
                return Err(format!(
                    "worker {t} round {r}: byte {o} of its stripe changed under it"
                ));
            }
        }
    }
    Ok(())
}

/// The mapper: maps, fills, protects, forks, discards, remaps and unmaps a
/// separate region over and over while the workers run.
fn tm_mapper(done: &AtomicUsize, stop: &AtomicBool, forks: &AtomicU64) -> Result<u64, String> {
    let ps = sys::page_size();
    let start = Instant::now();
    let mut iters = 0u64;
    while iters < TM_MAPPER_MIN || done.load(SeqCst) < TM_WORKERS {
        if stop.load(SeqCst) {
            break;
        }
        if start.elapsed() > TM_LIMIT {
            return Err(format!("mapper: out of time after {iters} iterations"));
        }
        let n = 4 + (iters % 13) as usize;
        let len = n * ps;
        // SAFETY: a fresh anonymous mapping where the kernel chooses.
        let m = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                RW,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if m == libc::MAP_FAILED {
            return Err(format!("mapper: mmap: {}", std::io::Error::last_os_error()));
        }
        let (a, len) = match tm_mapper_round(m as usize, len, iters, forks) {
            Ok(v) => v,
            Err(e) => {
                stop.store(true, SeqCst);
                return Err(format!("mapper iteration {iters}: {e}"));
            }
        };
        // SAFETY: the mapping of this iteration, where tm_mapper_round left it (it may have moved); nothing refers to it any more.
        unsafe { libc::munmap(a as *mut libc::c_void, len) };
        iters += 1;
    }
    Ok(iters)
}

/// One mapper iteration over the fresh mapping `a`; returns the final
/// address and length to unmap.
fn tm_mapper_round(
    a: usize,
    len: usize,
    iters: u64,
    forks: &AtomicU64,
) -> Result<(usize, usize), String> {
    let ps = sys::page_size();
    let tag = tag_of(&[6, iters]);
    let err = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: `a..a + len` is our fresh read-write mapping.
    unsafe { fill_at(a, len, tag) };
    // SAFETY: as above.
    if let Some(o) = unsafe { mismatch_at(a, len, tag) } {
        return Err(format!("fresh mapping: byte {o} differs after the fill"));
    }
    // SAFETY: protection change of our own mapping.
    if unsafe { libc::mprotect(a as *mut libc::c_void, len, libc::PROT_READ) } != 0 {
        return Err(err("mprotect r"));
    }
    // SAFETY: still mapped, now read-only.
    if let Some(o) = unsafe { mismatch_at(a, len, tag) } {
        return Err(format!("after mprotect r: byte {o} differs"));
    }
    if iters % 8 == 0 {
        // A fork from a thread while the others write: the child sees this
        // mapping as it is now.
        let pid = sys::fork_child(|| {
            // SAFETY: mapped read-only in the child too; nobody writes it.
            i32::from(unsafe { mismatch_at(a, len, tag) }.is_some())
        })
        .map_err(|e| format!("fork: {e}"))?;
        let x =
            sys::wait_timeout(pid, Duration::from_secs(20)).map_err(|e| format!("wait: {e}"))?;
        if x != Exit::Code(0) {
            return Err(format!("the child forked by the mapper thread: {x}"));
        }
        forks.fetch_add(1, SeqCst);
    }
    // SAFETY: protection change of our own mapping.
    if unsafe { libc::mprotect(a as *mut libc::c_void, len, RW) } != 0 {
        return Err(err("mprotect rw"));
    }
    let half = (len / ps / 2) * ps;
    // SAFETY: discards the first half of our own private mapping.
    if unsafe { libc::madvise(a as *mut libc::c_void, half, libc::MADV_DONTNEED) } != 0 {
        return Err(err("madvise"));
    }
    // SAFETY: mapped read-write; only this thread uses it.
    if let Some(o) = unsafe { mismatch_at(a, half, 0) } {
        return Err(format!("byte {o} not zero after MADV_DONTNEED"));
    }
    let (mut a, mut len) = (a, len);
    if iters % 3 == 0 {
        // Grow (the kernel may move it): the data moves along, the new
        // pages are zero.
        // SAFETY: resizes our own mapping; MAYMOVE lets the kernel choose a free place, no other mapping is touched.
        let r = unsafe { libc::mremap(a as *mut libc::c_void, len, 2 * len, libc::MREMAP_MAYMOVE) };
        if r == libc::MAP_FAILED {
            return Err(err("mremap grow"));
        }
        a = r as usize;
        // SAFETY: the grown mapping is `2 * len` bytes, read-write.
        let grown = unsafe { std::slice::from_raw_parts(a as *const u8, 2 * len) };
        let bad = tag_mismatch(&grown[..half], 0)
            .or_else(|| tag_mismatch_from(&grown[half..len], tag, half).map(|o| o + half))
            .or_else(|| tag_mismatch(&grown[len..], 0).map(|o| o + len));
        if let Some(o) = bad {
            return Err(format!("byte {o} wrong after mremap grow"));
        }
        len *= 2;
    }
    // SAFETY: protection change of our own mapping before it goes.
    if unsafe { libc::mprotect(a as *mut libc::c_void, len, libc::PROT_NONE) } != 0 {
        return Err(err("mprotect none"));
    }
    Ok((a, len))
}

/// Threads write and check their own stripes of one mapping while another
/// thread keeps mapping, protecting, forking and unmapping.
pub fn threads_mm(_cfg: &Config) -> CaseResult {
    let ps = sys::page_size();
    let stripe = TM_STRIPE_PAGES * ps;
    let shared = Mapping::new(TM_WORKERS * stripe, RW).ctx("mmap")?;
    let base = shared.as_ptr() as usize;
    let stop = AtomicBool::new(false);
    let done = AtomicUsize::new(0);
    let forks = AtomicU64::new(0);
    let start = Instant::now();
    let (worker_results, mapper_result) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..TM_WORKERS)
            .map(|t| {
                let (stop, done) = (&stop, &done);
                s.spawn(move || {
                    let r = tm_worker(t, base + t * stripe, stripe, stop);
                    done.fetch_add(1, SeqCst);
                    r
                })
            })
            .collect();
        let mapper = s.spawn(|| tm_mapper(&done, &stop, &forks));
        let w: Vec<_> = workers
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a worker panicked".into())))
            .collect();
        let m = mapper
            .join()
            .unwrap_or_else(|_| Err("the mapper panicked".into()));
        (w, m)
    });
    let iters = mapper_result.map_err(Verdict::Fail)?;
    for r in worker_results {
        r.map_err(Verdict::Fail)?;
    }
    for t in 0..TM_WORKERS {
        let tag = tag_of(&[5, t as u64, TM_ROUNDS - 1]);
        // SAFETY: the workers are joined; the mapping is alive and readable.
        if let Some(o) = unsafe { mismatch_at(base + t * stripe, stripe, tag) } {
            fail!("after the run, stripe {t} differs at byte {o} from its last round");
        }
    }
    diag!(
        "{TM_WORKERS} workers x {TM_ROUNDS} rounds, mapper {iters} iterations ({} forks) in {:.2} s",
        forks.load(SeqCst),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
