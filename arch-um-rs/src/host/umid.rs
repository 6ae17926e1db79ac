// SPDX-License-Identifier: GPL-2.0
//! The umid directory: the safe core behind `abi::umid`.
//!
//! Every UML instance owns `<uml_dir><umid>/` (by default `~/.uml/<umid>/`),
//! holding a `pid` file and the management console socket. A directory left
//! by an instance that died is taken over; one whose pid file names a live
//! process is not.
//!
//! [`UmidState`] holds what the C layer keeps in globals (the uml_dir, the
//! umid, whether the directory exists), so tests run many independent
//! instances against temporary directories while `abi::umid` owns the one
//! global. All buffers are fixed-size: this runs at boot, on a kernel stack.

use core::ffi::{CStr, c_int};
use core::fmt;

use nix::errno::Errno;

use crate::host::util::{CBuf, ErrnoMsg, ShowBytes, write_truncated};
use crate::kernel::Level;

/// Size of the umid buffer: at most 63 bytes and a NUL.
pub const UMID_LEN: usize = 64;
/// Size of the uml_dir buffer (after `~` expansion): 511 bytes and a NUL.
pub const UML_DIR_LEN: usize = 512;
/// Room for `<uml_dir><umid>/<file name>`.
pub const PATH_LEN: usize = UML_DIR_LEN + UMID_LEN + 64;
/// The uml_dir when no `uml_dir=` option is given.
pub const DEFAULT_UML_DIR: &[u8] = b"~/.uml/";
/// How many random names are tried before giving up.
const RANDOM_ATTEMPTS: usize = 100;
/// A pid file is read up to this many bytes (nine digits and a newline).
const PID_FILE_MAX: usize = 10;

pub type Umid = CBuf<UMID_LEN>;
pub type UmlDir = CBuf<UML_DIR_LEN>;
pub type UmidPath = CBuf<PATH_LEN>;

/// Why a `umid=` value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UmidNameError {
    /// Longer than `UMID_LEN - 1` bytes (the length is given).
    TooLong(usize),
    /// Contains `/`: it must name one directory inside uml_dir.
    Slash,
    /// `.` or `..`: would name uml_dir itself or its parent.
    Dots,
}

impl UmidNameError {
    /// The errno `set_umid` returns for it.
    pub fn errno(self) -> Errno {
        match self {
            UmidNameError::TooLong(_) => Errno::E2BIG,
            UmidNameError::Slash | UmidNameError::Dots => Errno::EINVAL,
        }
    }
}

impl fmt::Display for UmidNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UmidNameError::TooLong(n) => {
                write!(f, "it is too long ({n} bytes, at most {})", UMID_LEN - 1)
            }
            UmidNameError::Slash => {
                f.write_str("it contains '/' (it names a single directory in uml_dir)")
            }
            UmidNameError::Dots => f.write_str("'.' and '..' cannot name an umid directory"),
        }
    }
}

/// Checks a `umid=` value. The empty name is valid: it asks for a random
/// umid.
pub fn check_umid(name: &[u8]) -> Result<(), UmidNameError> {
    if name.len() > UMID_LEN - 1 {
        return Err(UmidNameError::TooLong(name.len()));
    }
    if name.contains(&b'/') {
        return Err(UmidNameError::Slash);
    }
    if name == b"." || name == b".." {
        return Err(UmidNameError::Dots);
    }
    Ok(())
}

/// Why a `uml_dir=` value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UmlDirError {
    Empty,
    /// Longer than fits with a trailing `/` (the length is given).
    TooLong(usize),
}

impl fmt::Display for UmlDirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UmlDirError::Empty => f.write_str("uml_dir can't be an empty string"),
            UmlDirError::TooLong(n) => {
                write!(f, "it is too long ({n} bytes, at most {})", UML_DIR_LEN - 2)
            }
        }
    }
}

/// Parses a `uml_dir=` value: the directory with a trailing `/`. A leading
/// `~` is kept, to be replaced by `$HOME` when the directory is made.
pub fn parse_uml_dir(name: &[u8]) -> Result<UmlDir, UmlDirError> {
    if name.is_empty() {
        return Err(UmlDirError::Empty);
    }
    let mut dir = UmlDir::new();
    let slash: &[u8] = if name.ends_with(b"/") { b"" } else { b"/" };
    if dir.push(name).and_then(|()| dir.push(slash)).is_err() {
        return Err(UmlDirError::TooLong(name.len()));
    }
    Ok(dir)
}

fn mkdir(path: &CStr) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated.
    if unsafe { libc::mkdir(path.as_ptr(), 0o777) } < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

fn is_dir(path: &CStr) -> bool {
    // SAFETY: stat is plain old data; `path` is NUL-terminated.
    unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        libc::stat(path.as_ptr(), &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFDIR
    }
}

/// Expands `spec` (a parsed uml_dir, maybe starting with `~`) and creates
/// the directory (its parent must exist). Failures are logged with the value
/// and the reason.
pub fn make_uml_dir(spec: &[u8], home: Option<&[u8]>) -> Result<UmlDir, Errno> {
    let mut dir = UmlDir::new();
    let mut fits = true;
    let rest = match spec.strip_prefix(b"~") {
        Some(rest) => {
            let Some(home) = home else {
                crate::klog!(
                    Level::Err,
                    "uml_dir '{}': no value in environment for $HOME",
                    ShowBytes(spec)
                );
                return Err(Errno::ENOENT);
            };
            fits = dir.push(home).is_ok();
            rest
        }
        None => spec,
    };
    let fits = fits
        && dir.push(rest).is_ok()
        && (dir.is_empty() || dir.as_bytes().ends_with(b"/") || dir.push(b"/").is_ok());
    if !fits {
        crate::klog!(
            Level::Err,
            "uml_dir '{}' is too long once $HOME is expanded (at most {} bytes)",
            ShowBytes(spec),
            UmlDir::CAPACITY
        );
        return Err(Errno::ENAMETOOLONG);
    }
    match mkdir(dir.as_cstr()) {
        Ok(()) => Ok(dir),
        Err(Errno::EEXIST) if is_dir(dir.as_cstr()) => Ok(dir),
        Err(Errno::EEXIST) => {
            crate::klog!(
                Level::Err,
                "uml_dir '{}' exists but is not a directory",
                dir.show()
            );
            Err(Errno::ENOTDIR)
        }
        Err(e) => {
            crate::klog!(
                Level::Err,
                "Failed to mkdir uml_dir '{}': {}",
                dir.show(),
                ErrnoMsg(e as c_int)
            );
            Err(e)
        }
    }
}

/// `<a><b><c>` as a NUL-terminated path.
fn join(parts: &[&[u8]]) -> Result<UmidPath, Errno> {
    let mut path = UmidPath::new();
    for part in parts {
        path.push(part).map_err(|_| Errno::ENAMETOOLONG)?;
    }
    Ok(path)
}

/// Unlinks the files in `dir`, then removes `dir` (not recursive: a
/// subdirectory is an error). A missing file or directory is not an error:
/// several dying UML threads may race here.
pub fn remove_files_and_dir(dir: &CStr) -> Result<(), Errno> {
    // SAFETY: `dir` is NUL-terminated.
    let fd = unsafe {
        libc::open(
            dir.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return match Errno::last() {
            Errno::ENOENT => Ok(()),
            e => Err(e),
        };
    }
    // SAFETY: `fd` is an open directory we own; fdopendir takes it over.
    let stream = unsafe { libc::fdopendir(fd) };
    if stream.is_null() {
        let e = Errno::last();
        // SAFETY: fdopendir failed, so the fd is still ours to close.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    let mut result = Ok(());
    loop {
        // SAFETY: `stream` is an open directory stream.
        let ent = unsafe { libc::readdir64(stream) };
        if ent.is_null() {
            break;
        }
        // SAFETY: readdir's entry has a NUL-terminated d_name, valid until the next readdir.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        if name == c"." || name == c".." {
            continue;
        }
        // SAFETY: `fd` is the stream's directory, `name` NUL-terminated.
        if unsafe { libc::unlinkat(fd, name.as_ptr(), 0) } < 0 {
            let e = Errno::last();
            if e != Errno::ENOENT {
                result = Err(e);
                break;
            }
        }
    }
    // SAFETY: closes the stream (and `fd`) exactly once.
    unsafe { libc::closedir(stream) };
    result?;
    // SAFETY: `dir` is NUL-terminated.
    if unsafe { libc::rmdir(dir.as_ptr()) } < 0 {
        let e = Errno::last();
        if e != Errno::ENOENT {
            return Err(e);
        }
    }
    Ok(())
}

/// Parses a pid file: optional leading whitespace, then a positive decimal
/// pid.
fn parse_pid(text: &[u8]) -> Option<libc::pid_t> {
    let text = text.trim_ascii_start();
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut pid: libc::pid_t = 0;
    for &d in &text[..digits] {
        pid = pid
            .checked_mul(10)?
            .checked_add(libc::pid_t::from(d - b'0'))?;
    }
    (pid > 0).then_some(pid)
}

/// The live process that owns the umid directory `dir`, if any.
///
/// A directory without a readable, parsable pid file, or whose pid is dead,
/// is owned by nobody: whatever left it there cannot be using it, so it may
/// be taken over. Problems with the pid file are logged.
pub fn live_owner(dir: &[u8]) -> Option<libc::pid_t> {
    let Ok(file) = join(&[dir, b"/pid"]) else {
        return None;
    };
    // SAFETY: the path is NUL-terminated.
    let fd = unsafe { libc::open(file.as_cstr().as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = Errno::last();
        if e != Errno::ENOENT {
            crate::klog!(
                Level::Err,
                "umid: couldn't open pid file '{}': {}",
                file.show(),
                ErrnoMsg(e as c_int)
            );
        }
        return None;
    }
    let mut buf = [0u8; PID_FILE_MAX];
    // SAFETY: reading into a valid buffer of its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    let read_errno = Errno::last();
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    if n < 0 {
        crate::klog!(
            Level::Err,
            "umid: couldn't read pid file '{}': {}",
            file.show(),
            ErrnoMsg(read_errno as c_int)
        );
        return None;
    }
    if n == 0 {
        crate::klog!(Level::Err, "umid: pid file '{}' is empty", file.show());
        return None;
    }
    let Some(pid) = parse_pid(&buf[..n as usize]) else {
        crate::klog!(
            Level::Err,
            "umid: couldn't parse pid file '{}'",
            file.show()
        );
        return None;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0 || Errno::last() != Errno::ESRCH;
    alive.then_some(pid)
}

/// Takes over the existing umid directory `dir` (of umid `umid`) unless a
/// live process owns it: EEXIST then, after logging who.
pub fn take_if_dead(dir: &CStr, umid: &[u8]) -> Result<(), Errno> {
    if let Some(pid) = live_owner(dir.to_bytes()) {
        crate::klog!(
            Level::Err,
            "umid \"{}\" is already in use by pid {} (directory '{}')",
            ShowBytes(umid),
            pid,
            ShowBytes(dir.to_bytes())
        );
        return Err(Errno::EEXIST);
    }
    remove_files_and_dir(dir).inspect_err(|e| {
        crate::klog!(
            Level::Err,
            "umid \"{}\": couldn't remove stale directory '{}': {}",
            ShowBytes(umid),
            ShowBytes(dir.to_bytes()),
            ErrnoMsg(*e as c_int)
        );
    })
}

/// Creates `<uml_dir><umid>`, taking over a stale one. Logged on failure.
pub fn create_umid_dir(uml_dir: &[u8], umid: &[u8]) -> Result<(), Errno> {
    let path = join(&[uml_dir, umid]).inspect_err(|_| {
        crate::klog!(
            Level::Err,
            "umid \"{}\": directory name too long",
            ShowBytes(umid)
        );
    })?;
    let result = match mkdir(path.as_cstr()) {
        Err(Errno::EEXIST) => {
            take_if_dead(path.as_cstr(), umid)?;
            mkdir(path.as_cstr())
        }
        other => other,
    };
    result.inspect_err(|e| {
        crate::klog!(
            Level::Err,
            "umid \"{}\": failed to create '{}': {}",
            ShowBytes(umid),
            path.show(),
            ErrnoMsg(*e as c_int)
        );
    })
}

/// Six random characters from `[A-Za-z0-9]`, like `mkstemp`'s.
fn random_name(attempt: usize) -> Umid {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 6];
    if crate::host::util::fill_random(&mut bytes, libc::GRND_NONBLOCK) != bytes.len() as isize {
        // No entropy yet: mix the clock, our pid and the attempt number.
        let seed = crate::host::timer::clock_ns(libc::CLOCK_MONOTONIC) as u64
            ^ ((std::process::id() as u64) << 32)
            ^ (attempt as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        bytes.copy_from_slice(&seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes()[..6]);
    }
    let mut name = Umid::new();
    for b in bytes {
        let _ = name.push(&[ALPHABET[usize::from(b) % ALPHABET.len()]]);
    }
    name
}

/// Creates a directory with a fresh random name in `uml_dir` and returns the
/// name. `mkdir` itself decides uniqueness, so there is no window in which
/// another instance can take the name.
pub fn create_random_umid_dir(uml_dir: &[u8]) -> Result<Umid, Errno> {
    for attempt in 0..RANDOM_ATTEMPTS {
        let name = random_name(attempt);
        let path = join(&[uml_dir, name.as_bytes()])?;
        match mkdir(path.as_cstr()) {
            Ok(()) => return Ok(name),
            Err(Errno::EEXIST) => continue,
            Err(e) => {
                crate::klog!(
                    Level::Err,
                    "umid: couldn't create a random umid directory in '{}': {}",
                    ShowBytes(uml_dir),
                    ErrnoMsg(e as c_int)
                );
                return Err(e);
            }
        }
    }
    crate::klog!(
        Level::Err,
        "umid: no free random umid in '{}'",
        ShowBytes(uml_dir)
    );
    Err(Errno::EEXIST)
}

/// Writes `pid` and a newline to a new `<dir>/pid`. Logged on failure.
pub fn write_pid_file(dir: &[u8], pid: libc::pid_t) -> Result<(), Errno> {
    let file = join(&[dir, b"/pid"])?;
    // SAFETY: the path is NUL-terminated.
    let fd = unsafe {
        libc::open(
            file.as_cstr().as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if fd < 0 {
        let e = Errno::last();
        crate::klog!(
            Level::Err,
            "Open of machine pid file \"{}\" failed: {}",
            file.show(),
            ErrnoMsg(e as c_int)
        );
        return Err(e);
    }
    let text = crate::kernel::stack_format(format_args!("{pid}\n"));
    let text = text.as_bytes();
    // SAFETY: writing from a valid buffer of its length.
    let n = unsafe { libc::write(fd, text.as_ptr().cast(), text.len()) };
    let e = Errno::last();
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    if n != text.len() as isize {
        crate::klog!(
            Level::Err,
            "Write of pid file \"{}\" failed: {}",
            file.show(),
            ErrnoMsg(e as c_int)
        );
        return Err(if n < 0 { e } else { Errno::EIO });
    }
    Ok(())
}

/// Where the uml_dir stands.
// Lives inside `UmidState` (a static, or a test's stack), never moved around:
// the size difference between variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum DirState {
    /// Not made yet: `spec` is what `uml_dir=` (or the default) said.
    Unresolved,
    /// Expanded and existing.
    Ready(UmlDir),
    /// Could not be made (already logged).
    Failed(Errno),
}

/// The umid machinery of one UML instance (what the C layer keeps in
/// globals).
#[derive(Clone, Debug)]
pub struct UmidState {
    spec: UmlDir,
    dir: DirState,
    umid: Umid,
    setup: bool,
}

impl Default for UmidState {
    fn default() -> Self {
        Self::new()
    }
}

impl UmidState {
    pub const fn new() -> Self {
        Self {
            spec: UmlDir::from_literal(DEFAULT_UML_DIR),
            dir: DirState::Unresolved,
            umid: Umid::new(),
            setup: false,
        }
    }

    /// The umid (empty until set or made).
    pub fn umid(&self) -> &Umid {
        &self.umid
    }

    /// The uml_dir as given (before `~` expansion).
    pub fn uml_dir_spec(&self) -> &[u8] {
        self.spec.as_bytes()
    }

    /// The expanded uml_dir, once made.
    pub fn uml_dir(&self) -> Option<&[u8]> {
        match &self.dir {
            DirState::Ready(d) => Some(d.as_bytes()),
            _ => None,
        }
    }

    /// Whether the umid directory exists (made by us).
    pub fn is_setup(&self) -> bool {
        self.setup
    }

    /// `umid=`: sets the umid to use (empty: a random one).
    pub fn set_umid(&mut self, name: &[u8]) -> Result<(), UmidNameError> {
        check_umid(name)?;
        let _ = self.umid.set(name);
        Ok(())
    }

    /// `uml_dir=`: sets where umid directories go.
    pub fn set_uml_dir(&mut self, name: &[u8]) -> Result<(), UmlDirError> {
        self.spec = parse_uml_dir(name)?;
        Ok(())
    }

    fn uml_dir_or_make(&mut self, home: Option<&[u8]>) -> Result<UmlDir, Errno> {
        if let DirState::Unresolved = self.dir {
            self.dir = match make_uml_dir(self.spec.as_bytes(), home) {
                Ok(d) => DirState::Ready(d),
                Err(e) => DirState::Failed(e),
            };
        }
        match &self.dir {
            DirState::Ready(d) => Ok(d.clone()),
            DirState::Failed(e) => Err(*e),
            DirState::Unresolved => Err(Errno::ENOENT),
        }
    }

    /// Makes the uml_dir and the umid directory (random name if no umid was
    /// set) and writes our pid file. Does nothing once it succeeded.
    pub fn make(&mut self, home: Option<&[u8]>, pid: libc::pid_t) -> Result<(), Errno> {
        if self.setup {
            return Ok(());
        }
        let dir = self.uml_dir_or_make(home)?;
        if self.umid.is_empty() {
            self.umid = create_random_umid_dir(dir.as_bytes())?;
        } else {
            create_umid_dir(dir.as_bytes(), self.umid.as_bytes())?;
        }
        self.setup = true;
        let umid_dir = join(&[dir.as_bytes(), self.umid.as_bytes()])?;
        let _ = write_pid_file(umid_dir.as_bytes(), pid);
        Ok(())
    }

    /// The boot-time initcall: `make`, and if the chosen umid cannot be
    /// used, a random one instead. Never fails boot; without any umid
    /// directory UML runs without pid file and mconsole socket.
    pub fn make_at_boot(&mut self, home: Option<&[u8]>, pid: libc::pid_t) {
        if self.make(home, pid).is_ok() {
            return;
        }
        if !matches!(self.dir, DirState::Failed(_)) {
            crate::klog!(
                Level::Err,
                "Failed to initialize umid \"{}\", trying with a random umid",
                self.umid.show()
            );
            self.umid.clear();
            if self.make(home, pid).is_ok() {
                return;
            }
        }
        crate::klog!(
            Level::Err,
            "umid: no umid directory in uml_dir '{}': running without pid file and mconsole socket",
            self.spec.show()
        );
    }

    /// `<uml_dir><umid>/<name>` into `out` (snprintf truncation), making the
    /// umid directory first if needed. E2BIG if `out` is too short.
    pub fn file_name(
        &mut self,
        name: &[u8],
        out: &mut [u8],
        home: Option<&[u8]>,
        pid: libc::pid_t,
    ) -> Result<(), Errno> {
        self.make(home, pid)?;
        let dir = self.uml_dir().unwrap_or_default();
        let n = write_truncated(out, &[dir, self.umid.as_bytes(), b"/", name]);
        if n >= out.len() {
            crate::klog!(
                Level::Err,
                "umid_file_name: buffer too short for '{}' ({} bytes)",
                ShowBytes(name),
                out.len()
            );
            return Err(Errno::E2BIG);
        }
        Ok(())
    }

    /// Removes our umid directory and its files (at exit). Does nothing if
    /// we never made one.
    pub fn remove_dir(&self) -> Result<(), Errno> {
        if !self.setup {
            return Ok(());
        }
        let Some(dir) = self.uml_dir() else {
            return Ok(());
        };
        let path = join(&[dir, self.umid.as_bytes()])?;
        remove_files_and_dir(path.as_cstr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn bytes(p: &Path) -> &[u8] {
        p.as_os_str().as_bytes()
    }

    fn me() -> libc::pid_t {
        std::process::id() as libc::pid_t
    }

    /// A pid that belonged to a process that is gone now.
    fn dead_pid() -> libc::pid_t {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as libc::pid_t;
        child.wait().unwrap();
        pid
    }

    fn state_in(dir: &Path) -> UmidState {
        let mut s = UmidState::new();
        s.set_uml_dir(bytes(dir)).unwrap();
        s
    }

    #[test]
    fn umid_names_checked() {
        assert_eq!(check_umid(b"vm1"), Ok(()));
        assert_eq!(check_umid(b""), Ok(()));
        assert_eq!(check_umid(&[b'a'; 63]), Ok(()));
        assert_eq!(check_umid(&[b'a'; 64]), Err(UmidNameError::TooLong(64)));
        assert_eq!(check_umid(b"a/b"), Err(UmidNameError::Slash));
        assert_eq!(check_umid(b".."), Err(UmidNameError::Dots));
        assert_eq!(check_umid(b"."), Err(UmidNameError::Dots));
        assert_eq!(check_umid(b"..x"), Ok(()));
        assert_eq!(UmidNameError::TooLong(70).errno(), Errno::E2BIG);
        assert_eq!(UmidNameError::Slash.errno(), Errno::EINVAL);
        assert_eq!(
            format!("{}", UmidNameError::TooLong(70)),
            "it is too long (70 bytes, at most 63)"
        );
        assert!(format!("{}", UmidNameError::Slash).contains("'/'"));
        let mut s = UmidState::new();
        assert_eq!(s.set_umid(b"a/b"), Err(UmidNameError::Slash));
        assert!(s.umid().is_empty(), "a refused name is not kept");
        s.set_umid(b"good").unwrap();
        assert_eq!(s.umid().as_bytes(), b"good");
    }

    #[test]
    fn uml_dir_option_parsed() {
        assert_eq!(parse_uml_dir(b"/tmp/x").unwrap().as_bytes(), b"/tmp/x/");
        assert_eq!(parse_uml_dir(b"/tmp/x/").unwrap().as_bytes(), b"/tmp/x/");
        assert_eq!(parse_uml_dir(b"~/u").unwrap().as_bytes(), b"~/u/");
        assert_eq!(parse_uml_dir(b"").unwrap_err(), UmlDirError::Empty);
        assert_eq!(parse_uml_dir(&[b'd'; 510]).unwrap().len(), 511);
        assert_eq!(
            parse_uml_dir(&[b'd'; 511]).unwrap_err(),
            UmlDirError::TooLong(511)
        );
        assert_eq!(
            parse_uml_dir(&[b'd'; 600]).unwrap_err(),
            UmlDirError::TooLong(600)
        );
        let mut s = UmidState::new();
        assert_eq!(s.uml_dir_spec(), b"~/.uml/");
        assert!(s.set_uml_dir(b"").is_err());
        assert_eq!(
            s.uml_dir_spec(),
            b"~/.uml/",
            "a refused value keeps the default"
        );
    }

    #[test]
    fn uml_dir_expands_home_and_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        let home = bytes(tmp.path());
        let d = make_uml_dir(b"~/.uml/", Some(home)).unwrap();
        let want = [home, b"/.uml/"].concat();
        assert_eq!(d.as_bytes(), &want[..]);
        assert!(tmp.path().join(".uml").is_dir());
        // Again: EEXIST is fine.
        assert_eq!(
            make_uml_dir(b"~/.uml/", Some(home)).unwrap().as_bytes(),
            &want[..]
        );
        // "~" alone: $HOME itself with a slash.
        let d = make_uml_dir(b"~", Some(home)).unwrap();
        assert_eq!(d.as_bytes(), &[home, b"/"].concat()[..]);
        // No $HOME.
        assert_eq!(make_uml_dir(b"~/.uml/", None).unwrap_err(), Errno::ENOENT);
        // Expansion too long.
        let long_home = [b'h'; 500];
        assert_eq!(
            make_uml_dir(b"~/.uml-directory/", Some(&long_home)).unwrap_err(),
            Errno::ENAMETOOLONG
        );
        let huge_home = [b'h'; 700];
        assert_eq!(
            make_uml_dir(b"~/", Some(&huge_home)).unwrap_err(),
            Errno::ENAMETOOLONG
        );
    }

    #[test]
    fn uml_dir_that_cannot_be_created_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain-file");
        fs::write(&file, b"x").unwrap();
        let under_file = [bytes(&file), b"/sub/"].concat();
        assert_eq!(make_uml_dir(&under_file, None).unwrap_err(), Errno::ENOTDIR);
        let missing_parent = [bytes(tmp.path()), b"/no/such/"].concat();
        assert_eq!(
            make_uml_dir(&missing_parent, None).unwrap_err(),
            Errno::ENOENT
        );
        assert_eq!(
            make_uml_dir(&[bytes(&file), b"/"].concat(), None).unwrap_err(),
            Errno::ENOTDIR
        );

        // The whole boot sequence survives it, with no umid directory.
        let mut s = UmidState::new();
        s.set_uml_dir(&under_file).unwrap();
        s.set_umid(b"vm").unwrap();
        s.make_at_boot(None, me());
        assert!(!s.is_setup());
        let mut out = [0u8; 256];
        assert_eq!(
            s.file_name(b"mconsole", &mut out, None, me()),
            Err(Errno::ENOTDIR)
        );
        assert_eq!(s.remove_dir(), Ok(()));
    }

    #[test]
    fn umid_dir_created_with_pid_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = state_in(tmp.path());
        s.set_umid(b"vm1").unwrap();
        s.make(None, me()).unwrap();
        assert!(s.is_setup());
        let dir = tmp.path().join("vm1");
        assert!(dir.is_dir());
        assert_eq!(
            fs::read_to_string(dir.join("pid")).unwrap(),
            format!("{}\n", me())
        );
        let mut out = [0u8; 512];
        s.file_name(b"mconsole", &mut out, None, me()).unwrap();
        let got = CStr::from_bytes_until_nul(&out).unwrap().to_bytes();
        assert_eq!(got, bytes(&dir.join("mconsole")));
        // A second make is a no-op (the pid file is not rewritten).
        fs::write(dir.join("pid"), "1\n").unwrap();
        s.make(None, me()).unwrap();
        assert_eq!(fs::read_to_string(dir.join("pid")).unwrap(), "1\n");
    }

    #[test]
    fn file_name_buffer_too_short() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = state_in(tmp.path());
        s.set_umid(b"vm2").unwrap();
        let mut out = [0xffu8; 8];
        assert_eq!(
            s.file_name(b"mconsole", &mut out, None, me()),
            Err(Errno::E2BIG)
        );
        assert_eq!(out[7], 0, "truncated like snprintf");
        assert_eq!(&out[..7], &bytes(tmp.path())[..7]);
    }

    #[test]
    fn random_umid_when_none_given() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = state_in(tmp.path());
        s.make(None, me()).unwrap();
        let umid = s.umid().as_bytes().to_vec();
        assert_eq!(umid.len(), 6);
        assert!(umid.iter().all(u8::is_ascii_alphanumeric));
        let dir = tmp.path().join(std::str::from_utf8(&umid).unwrap());
        assert_eq!(
            fs::read_to_string(dir.join("pid")).unwrap(),
            format!("{}\n", me())
        );
        let mut t = state_in(tmp.path());
        t.make(None, me()).unwrap();
        assert_ne!(t.umid().as_bytes(), &umid[..]);
    }

    #[test]
    fn stale_dir_of_dead_instance_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("old");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("pid"), format!("{}\n", dead_pid())).unwrap();
        fs::write(dir.join("mconsole"), b"stale").unwrap();
        let mut s = state_in(tmp.path());
        s.set_umid(b"old").unwrap();
        s.make(None, me()).unwrap();
        assert!(!dir.join("mconsole").exists(), "stale files removed");
        assert_eq!(
            fs::read_to_string(dir.join("pid")).unwrap(),
            format!("{}\n", me())
        );
    }

    #[test]
    fn dir_without_usable_pid_file_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        for (name, content) in [
            ("empty", Some("")),
            ("junk", Some("hello")),
            ("zero", Some("0\n")),
            ("nopid", None),
        ] {
            let dir = tmp.path().join(name);
            fs::create_dir(&dir).unwrap();
            if let Some(c) = content {
                fs::write(dir.join("pid"), c).unwrap();
            }
            assert_eq!(live_owner(bytes(&dir)), None, "{name}");
            create_umid_dir(&[bytes(tmp.path()), b"/"].concat(), name.as_bytes()).unwrap();
            assert!(!dir.join("pid").exists(), "{name}");
        }
    }

    #[test]
    fn dir_of_live_instance_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        for (name, pid) in [("mine", me()), ("other", sleeper.id() as libc::pid_t)] {
            let dir = tmp.path().join(name);
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join("pid"), format!("{pid}\n")).unwrap();
            fs::write(dir.join("mconsole"), b"live").unwrap();
            assert_eq!(live_owner(bytes(&dir)), Some(pid));
            let mut s = state_in(tmp.path());
            s.set_umid(name.as_bytes()).unwrap();
            assert_eq!(s.make(None, me()), Err(Errno::EEXIST));
            assert!(
                dir.join("mconsole").exists(),
                "live instance's files untouched"
            );
            assert!(!s.is_setup());

            // At boot: falls back to a random umid.
            s.make_at_boot(None, me());
            assert!(s.is_setup());
            assert_ne!(s.umid().as_bytes(), name.as_bytes());
            assert_eq!(s.umid().len(), 6);
        }
        let _ = sleeper.kill();
        let _ = sleeper.wait();
    }

    #[test]
    fn remove_dir_on_exit() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = state_in(tmp.path());
        s.set_umid(b"bye").unwrap();
        // Not made yet: nothing to remove, nothing touched.
        assert_eq!(s.remove_dir(), Ok(()));
        s.make(None, me()).unwrap();
        let dir = tmp.path().join("bye");
        fs::write(dir.join("mconsole"), b"").unwrap();
        s.remove_dir().unwrap();
        assert!(!dir.exists());
        // Already gone: fine.
        s.remove_dir().unwrap();
    }

    #[test]
    fn remove_files_and_dir_cases() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing");
        let c = |p: &Path| std::ffi::CString::new(bytes(p)).unwrap();
        assert_eq!(remove_files_and_dir(&c(&missing)), Ok(()));
        let d = tmp.path().join("d");
        fs::create_dir(&d).unwrap();
        for i in 0..50 {
            fs::write(d.join(format!("f{i}")), b"").unwrap();
        }
        remove_files_and_dir(&c(&d)).unwrap();
        assert!(!d.exists());
        // A subdirectory is not removed (not rm -rf).
        fs::create_dir_all(d.join("sub")).unwrap();
        assert_eq!(remove_files_and_dir(&c(&d)), Err(Errno::EISDIR));
        assert!(d.join("sub").exists());
    }

    #[test]
    fn unreadable_pid_file_is_not_an_owner() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // root reads mode-000 files; covered by the other cases.
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("locked");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("pid"), format!("{}\n", me())).unwrap();
        fs::set_permissions(dir.join("pid"), fs::Permissions::from_mode(0o000)).unwrap();
        assert_eq!(live_owner(bytes(&dir)), None);
    }

    #[test]
    fn pid_parsing() {
        assert_eq!(parse_pid(b"123\n"), Some(123));
        assert_eq!(parse_pid(b"  42"), Some(42));
        assert_eq!(parse_pid(b"0\n"), None);
        assert_eq!(parse_pid(b"-5"), None);
        assert_eq!(parse_pid(b"x1"), None);
        assert_eq!(parse_pid(b"99999999999"), None);
    }
}
