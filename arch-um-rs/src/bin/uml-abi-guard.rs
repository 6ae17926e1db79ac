// SPDX-License-Identifier: GPL-2.0
//! Writes the ABI guard C file (see `arch_um_rs::abi::layout`) to the path
//! given as the only argument, or to stdout. Run by the kernel build.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let text = arch_um_rs::abi::layout::render_guard_c(&arch_um_rs::abi::layout::abi_facts());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => std::io::stdout().write_all(text.as_bytes()),
        [path] => std::fs::write(path, text),
        _ => {
            eprintln!("usage: uml-abi-guard [OUTPUT.c]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uml-abi-guard: cannot write the guard: {e}");
            ExitCode::FAILURE
        }
    }
}
