// SPDX-License-Identifier: GPL-2.0
//! The COW image header parser (`arch_um_rs::host::cow::parse_header`) on
//! arbitrary bytes. Beyond not panicking, every answer must have the
//! properties `check_header_properties` checks (a refusal consistent with
//! the bytes; an accepted header with sane, ordered, non-overflowing
//! offsets that re-encodes to the same header); the unit tests run the same
//! function over `fuzz/corpus/cow_header`.
#![no_main]

use arch_um_rs::host::cow::properties::check_header_properties;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check_header_properties(data));
