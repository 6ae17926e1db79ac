// SPDX-License-Identifier: GPL-2.0
//! Deterministic byte patterns shared with the host.
//!
//! The harness (`harness/src/suite.rs`) compiles this very file, to write
//! the data the guest verifies and to verify the data the guest wrote, so
//! both sides always use the same generator. No dependencies, for that.
//!
//! The stream is SplitMix64 in counter form: 64-bit word `k` of the stream
//! for `seed` is `mix(seed + (k + 1) * GOLDEN)`, stored little-endian. Byte
//! `i` of the pattern is byte `i % 8` of word `i / 8`, so any window of the
//! stream can be produced or checked without generating what comes before.

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Word `k` of the stream for `seed`.
pub fn word(seed: u64, k: u64) -> u64 {
    let mut z = seed.wrapping_add(GOLDEN.wrapping_mul(k.wrapping_add(1)));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Byte `pos` of the stream for `seed`.
pub fn byte_at(seed: u64, pos: u64) -> u8 {
    word(seed, pos / 8).to_le_bytes()[(pos % 8) as usize]
}

/// Fills `buf` with the stream for `seed`, starting at stream offset `offset`.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    // Leading bytes up to a word boundary.
    while i < buf.len() && pos % 8 != 0 {
        buf[i] = byte_at(seed, pos);
        i += 1;
        pos += 1;
    }
    let mut chunks = buf[i..].chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&word(seed, pos / 8).to_le_bytes());
        pos += 8;
    }
    for b in chunks.into_remainder() {
        *b = byte_at(seed, pos);
        pos += 1;
    }
}

/// Returns the index in `buf` of the first byte that differs from the stream
/// for `seed` at stream offset `offset`, or `None` if all match.
pub fn first_mismatch(seed: u64, offset: u64, buf: &[u8]) -> Option<usize> {
    let mut expect = [0u8; 4096];
    let mut done = 0;
    while done < buf.len() {
        let n = (buf.len() - done).min(expect.len());
        fill(seed, offset + done as u64, &mut expect[..n]);
        if let Some(i) = buf[done..done + n]
            .iter()
            .zip(&expect[..n])
            .position(|(a, b)| a != b)
        {
            return Some(done + i);
        }
        done += n;
    }
    None
}

/// 64-bit FNV-1a, used to report checksums of transferred data.
#[derive(Clone, Copy)]
pub struct Fnv1a(u64);

impl Fnv1a {
    pub fn new() -> Self {
        Fnv1a(0xCBF2_9CE4_8422_2325)
    }

    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same vectors are pinned in harness/src/suite.rs.
    #[test]
    fn vectors() {
        assert_eq!(word(0, 0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(word(0, 1), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(word(0x1234_5678, 1000), word(0x1234_5678, 1000));
        let mut b = [0u8; 3];
        fill(0, 7, &mut b);
        assert_eq!(b, [0xE2, 0xF4, 0x65]);
    }

    #[test]
    fn fill_any_offset_matches_bytewise() {
        let mut whole = vec![0u8; 300];
        fill(42, 0, &mut whole);
        for off in 0..20 {
            let mut part = vec![0u8; 150];
            fill(42, off, &mut part);
            assert_eq!(&part[..], &whole[off as usize..off as usize + 150]);
            assert_eq!(first_mismatch(42, off, &part), None);
        }
        whole[123] ^= 1;
        assert_eq!(first_mismatch(42, 0, &whole), Some(123));
    }

    #[test]
    fn fnv_known() {
        let mut h = Fnv1a::new();
        h.update(b"a");
        assert_eq!(h.finish(), 0xAF63_DC4C_8601_EC8C);
    }
}
