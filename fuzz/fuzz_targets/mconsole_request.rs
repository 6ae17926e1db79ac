// SPDX-License-Identifier: GPL-2.0
//! The mconsole request parser (`arch_um_rs::host::mconsole`) on arbitrary
//! datagrams. Beyond not panicking, every answer must have the properties
//! `check_request_properties` checks (an accepted request names a command
//! of the table, with its text in bounds and NUL-terminated; replies split
//! into 512-byte packets that add up); the unit tests run the same function
//! over `fuzz/corpus/mconsole_request`.

#![no_main]

use arch_um_rs::host::mconsole::check_request_properties;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check_request_properties(data));
