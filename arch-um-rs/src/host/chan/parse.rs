// SPDX-License-Identifier: GPL-2.0
//! The numbers of channel descriptions: `fd:N` and `port:N`.
//!
//! The C read them with `strtoul(str, &end, 0)` and took them if the whole
//! rest of the description was read: leading blanks, a sign and the base
//! prefixes `0x` (hex) and `0` (octal) are accepted, and so they are here
//! ([`strtoul`] follows glibc). The C then stored the `unsigned long` in
//! an `int`, so `fd:-1` became descriptor -1 and `fd:4294967296`
//! descriptor 0, and a port of seven digits or more overflowed the buffer
//! that holds its name. Here a value the channel cannot use (a descriptor
//! above `INT_MAX`, a port above 65535, a negative one) is refused like
//! any other unparsable description.

use core::ffi::c_int;

/// What `strtoul(s, &end, 0)` reads from the start of `s` (a C string's
/// bytes): the value and the number of bytes read, 0 when there is no
/// number (then `end == s`). An overflow is `u64::MAX` (`ULONG_MAX`,
/// `ERANGE`), and a `-` negates in unsigned arithmetic, as in glibc.
pub fn strtoul(s: &[u8]) -> (u64, usize) {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let mut negative = false;
    if let Some(&sign @ (b'+' | b'-')) = s.get(i) {
        negative = sign == b'-';
        i += 1;
    }
    let mut base = 10;
    if s.get(i) == Some(&b'0') {
        let hex = matches!(s.get(i + 1), Some(b'x' | b'X'))
            && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if hex {
            base = 16;
            i += 2;
        } else {
            base = 8;
        }
    }
    let start = i;
    let mut value: u64 = 0;
    let mut overflow = false;
    while let Some(d) = s.get(i).and_then(|&c| char::from(c).to_digit(base)) {
        match value
            .checked_mul(u64::from(base))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return (0, 0);
    }
    if overflow {
        return (u64::MAX, i);
    }
    (
        if negative {
            value.wrapping_neg()
        } else {
            value
        },
        i,
    )
}

/// The whole of `s` as `strtoul` reads it, or `None` if it holds anything
/// else (or nothing).
fn whole(s: &[u8]) -> Option<u64> {
    match strtoul(s) {
        (_, 0) => None,
        (v, used) if used == s.len() => Some(v),
        _ => None,
    }
}

/// The descriptor of `fd:<s>`: `None` unless `s` is a number from 0 to
/// `INT_MAX`.
pub fn fd_number(s: &[u8]) -> Option<c_int> {
    whole(s).and_then(|v| c_int::try_from(v).ok())
}

/// The TCP port of `port:<s>`: `None` unless `s` is a number from 0 to
/// 65535.
pub fn port_number(s: &[u8]) -> Option<c_int> {
    whole(s)
        .and_then(|v| u16::try_from(v).ok())
        .map(c_int::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// glibc's own strtoul, for comparison.
    fn c_strtoul(s: &[u8]) -> (u64, usize) {
        let c = std::ffi::CString::new(s).unwrap();
        let mut end: *mut core::ffi::c_char = core::ptr::null_mut();
        // SAFETY: a C string and a writable end pointer.
        let v = unsafe { libc::strtoul(c.as_ptr(), &mut end, 0) };
        // SAFETY: end points into `c`.
        (v as u64, unsafe { end.offset_from(c.as_ptr()) } as usize)
    }

    #[test]
    fn strtoul_reads_what_glibc_reads() {
        for s in [
            "0",
            "7",
            "12",
            "012",
            "08",
            "0x1f",
            "0X1F",
            "0x",
            "0xg",
            "x1",
            "",
            " \t 42",
            "+5",
            "-1",
            "-0",
            "-",
            "+",
            " ",
            "3 ",
            "1a",
            "18446744073709551615",
            "18446744073709551616",
            "-18446744073709551616",
            "99999999999999999999999",
            "0777777777777777777777777",
            "0xffffffffffffffff",
            "0x10000000000000000",
            "4294967296",
            "2147483648",
        ] {
            assert_eq!(strtoul(s.as_bytes()), c_strtoul(s.as_bytes()), "{s:?}");
        }
    }

    #[test]
    fn descriptors_are_ints_from_zero() {
        assert_eq!(fd_number(b"0"), Some(0));
        assert_eq!(fd_number(b"1"), Some(1));
        assert_eq!(fd_number(b"017"), Some(15));
        assert_eq!(fd_number(b"0x10"), Some(16));
        assert_eq!(fd_number(b" 3"), Some(3), "strtoul skips blanks");
        assert_eq!(fd_number(b"+3"), Some(3));
        assert_eq!(fd_number(b"-0"), Some(0));
        assert_eq!(fd_number(b"2147483647"), Some(i32::MAX));
        for bad in [
            &b""[..],
            b"x",
            b"3 ",
            b"3x",
            b"08",
            b"0x",
            b"-1",
            b"2147483648",
            b"4294967296",
            b"99999999999999999999999",
            b"1,fd:2",
        ] {
            assert_eq!(fd_number(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn ports_are_sixteen_bits() {
        assert_eq!(port_number(b"9000"), Some(9000));
        assert_eq!(port_number(b"0x2328"), Some(9000));
        assert_eq!(port_number(b"0"), Some(0));
        assert_eq!(port_number(b"65535"), Some(65535));
        assert_eq!(port_number(b"65536"), None);
        assert_eq!(port_number(b"1234567"), None);
        assert_eq!(port_number(b"-1"), None);
        assert_eq!(port_number(b""), None);
        assert_eq!(port_number(b"telnet"), None);
    }
}
