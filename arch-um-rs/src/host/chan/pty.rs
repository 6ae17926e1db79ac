// SPDX-License-Identifier: GPL-2.0
//! Pseudo-terminals for the `pts` and `pty` channels (`pty.c`).
//!
//! `pts` takes a Unix 98 master from `/dev/ptmx` (`get_pty()` of
//! `os-Linux/tty.c`) and names its slave with [ptsname_r(3)]: the C used
//! `ptsname`, whose static buffer any other caller may overwrite, and
//! copied it with an unbounded `sprintf`. `pty` searches the legacy BSD
//! masters `/dev/pty[p-s][0-f]` as the C's `getmaster` did.
//!
//! [ptsname_r(3)]: https://man7.org/linux/man-pages/man3/ptsname.3.html

use core::ffi::c_char;
use std::os::fd::{OwnedFd, RawFd};

use nix::errno::Errno;

use crate::host::file::{Result, owned};
use crate::host::util::CBuf;

/// Writes the name of the slave of pty master `fd` into `buf`, NUL
/// terminated, with [ptsname_r(3)]; its length. `ERANGE` if the name does
/// not fit (`pty.c` keeps it in 18 bytes, room for `/dev/pts/` and seven
/// digits), `ENOTTY` if `fd` is no master.
///
/// [ptsname_r(3)]: https://man7.org/linux/man-pages/man3/ptsname.3.html
pub fn slave_name(fd: RawFd, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: ptsname_r writes at most `buf.len()` bytes, NUL included.
    let rc = unsafe { libc::ptsname_r(fd, buf.as_mut_ptr().cast::<c_char>(), buf.len()) };
    if rc != 0 {
        return Err(Errno::from_raw(rc));
    }
    Ok(buf.iter().position(|&b| b == 0).unwrap_or(buf.len()))
}

/// The banks and numbers of the BSD pty names, in the C's search order.
const BANKS: &[u8] = b"pqrs";
const NUMBERS: &[u8] = b"0123456789abcdef";

/// A name of at most this many bytes (the directory included) is looked
/// up; `/dev/` needs 10.
pub type PtyPath = CBuf<128>;

/// Searches the BSD pty masters `<dir>pty[p-s][0-f]` (`dir` ends with a
/// `/`; `/dev/` in UML) as `getmaster` did: a bank whose `<dir>pty?0` does
/// not exist ends the search; the first master that opens read-write
/// (not close-on-exec, not retried) and whose slave `<dir>tty??` may be
/// read and written is returned with its name. `ENOENT` if there is none
/// (or `dir` is too long).
pub fn bsd_master(dir: &[u8]) -> Result<(OwnedFd, PtyPath)> {
    let mut name = PtyPath::new();
    name.set(dir).map_err(|_| Errno::ENOENT)?;
    name.push(b"ptyp0").map_err(|_| Errno::ENOENT)?;
    let kind = dir.len(); // the 'p' of "pty", 't' for the slave
    let bank = dir.len() + 3;
    let number = dir.len() + 4;
    let mut bytes = [0u8; 128];
    bytes[..name.len()].copy_from_slice(name.as_bytes());
    let path = |b: &[u8; 128]| b.as_ptr().cast::<c_char>();
    for &bk in BANKS {
        bytes[bank] = bk;
        bytes[number] = b'0';
        // SAFETY: a stat buffer is plain data.
        let mut st: libc::stat64 = unsafe { core::mem::zeroed() };
        // SAFETY: `bytes` is NUL-terminated (zeroes after the name); `st` is writable.
        if unsafe { libc::stat64(path(&bytes), &mut st) } < 0 && Errno::last() == Errno::ENOENT {
            break;
        }
        for &nb in NUMBERS {
            bytes[number] = nb;
            // SAFETY: a NUL-terminated path; no mode without O_CREAT.
            let master = unsafe { libc::open64(path(&bytes), libc::O_RDWR) };
            if master < 0 {
                continue;
            }
            let master = owned(master);
            bytes[kind] = b't';
            // SAFETY: a NUL-terminated path.
            let usable = unsafe { libc::access(path(&bytes), libc::R_OK | libc::W_OK) } == 0;
            bytes[kind] = b'p';
            if usable {
                name.set(&bytes[..number + 1]).map_err(|_| Errno::ENOENT)?;
                return Ok((master, name));
            }
        }
    }
    Err(Errno::ENOENT)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A pseudo-terminal pair for tests.

    use std::ffi::CString;
    use std::os::fd::{AsRawFd, OwnedFd};

    use super::*;

    pub struct Pair {
        pub master: OwnedFd,
        pub slave: OwnedFd,
        /// The slave's name, `/dev/pts/N`.
        pub name: CString,
    }

    impl Pair {
        /// A new pair ([posix_openpt(3)], `grantpt`, `unlockpt`), both
        /// ends `O_NOCTTY`, blocking.
        ///
        /// [posix_openpt(3)]: https://man7.org/linux/man-pages/man3/posix_openpt.3.html
        pub fn open() -> Pair {
            // SAFETY: posix_openpt has no memory arguments.
            let m = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
            assert!(m >= 0, "posix_openpt: {}", Errno::last());
            let master = owned(m);
            // SAFETY: `m` is an open master.
            assert_eq!(unsafe { libc::grantpt(m) }, 0);
            // SAFETY: as above.
            assert_eq!(unsafe { libc::unlockpt(m) }, 0);
            let mut buf = [0u8; 64];
            let n = slave_name(master.as_raw_fd(), &mut buf).unwrap();
            let name = CString::new(&buf[..n]).unwrap();
            // SAFETY: a C string; no mode without O_CREAT.
            let s = unsafe {
                libc::open64(
                    name.as_ptr(),
                    libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
                )
            };
            assert!(s >= 0, "open {name:?}: {}", Errno::last());
            Pair {
                master,
                slave: owned(s),
                name,
            }
        }
    }

    /// The terminal device `fd` refers to (`st_rdev`).
    pub fn rdev(fd: RawFd) -> u64 {
        crate::host::file::stat_fd(fd).unwrap().st_rdev
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{Pair, rdev};
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_slave_is_named_without_a_static_buffer() {
        let pair = Pair::open();
        let mut buf = [0xffu8; 18];
        let n = slave_name(pair.master.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], pair.name.as_bytes());
        assert_eq!(buf[n], 0);
        assert!(pair.name.to_str().unwrap().starts_with("/dev/pts/"));
        let mut tiny = [0u8; 5];
        assert_eq!(
            slave_name(pair.master.as_raw_fd(), &mut tiny),
            Err(Errno::ERANGE)
        );
        assert_eq!(
            slave_name(pair.slave.as_raw_fd(), &mut buf),
            Err(Errno::ENOTTY),
            "a slave is no master"
        );
        let [a, _b] = crate::host::socket::pipe(true, true).unwrap();
        assert_eq!(slave_name(a.as_raw_fd(), &mut buf), Err(Errno::ENOTTY));
    }

    fn touch(dir: &std::path::Path, name: &str, mode: u32) {
        let p = dir.join(name);
        std::fs::write(&p, b"").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn dir_bytes(dir: &std::path::Path) -> Vec<u8> {
        let mut d = dir.as_os_str().as_encoded_bytes().to_vec();
        d.push(b'/');
        d
    }

    #[test]
    fn the_bsd_search_goes_as_getmaster_went() {
        let dir = tempfile::tempdir().unwrap();
        // No ptyp0: the search ends at once.
        touch(dir.path(), "ptyq1", 0o600);
        touch(dir.path(), "ttyq1", 0o600);
        assert_eq!(
            bsd_master(&dir_bytes(dir.path())).unwrap_err(),
            Errno::ENOENT
        );
        // Bank p exists; ptyp0 has no slave, ptyp1 and ptyp2 do not open,
        // ptyp3 pairs with ttyp3.
        touch(dir.path(), "ptyp0", 0o600);
        touch(dir.path(), "ptyp3", 0o600);
        touch(dir.path(), "ttyp3", 0o600);
        let (master, name) = bsd_master(&dir_bytes(dir.path())).unwrap();
        let mut want = dir_bytes(dir.path());
        want.extend_from_slice(b"ptyp3");
        assert_eq!(name.as_bytes(), want);
        let st = crate::host::file::stat_fd(master.as_raw_fd()).unwrap();
        let named = std::fs::metadata(dir.path().join("ptyp3")).unwrap();
        assert_eq!(st.st_ino, std::os::unix::fs::MetadataExt::ino(&named));
        // Without ptyp3's slave nothing in bank p is usable: on to bank q,
        // which is only searched because its ptyq0 exists (ptyq0 has no
        // slave, ptyq1 has).
        std::fs::remove_file(dir.path().join("ttyp3")).unwrap();
        touch(dir.path(), "ptyq0", 0o600);
        let (_m, name) = bsd_master(&dir_bytes(dir.path())).unwrap();
        assert!(name.as_bytes().ends_with(b"/ptyq1"), "{name:?}");
        // A name that does not fit is not searched.
        assert_eq!(bsd_master(&[b'/'; 200]).unwrap_err(), Errno::ENOENT);
    }

    #[test]
    fn the_pair_carries_the_slaves_device() {
        let pair = Pair::open();
        let st = crate::host::file::stat_path(&pair.name).unwrap();
        assert_eq!(st.st_rdev, rdev(pair.slave.as_raw_fd()));
    }
}
