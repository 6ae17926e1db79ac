// SPDX-License-Identifier: GPL-2.0
//! Checks the stub page of an object file or a linked UML kernel (see
//! `arch_um_rs::stubcheck`): exit status 0 and a one-line summary if it
//! may run in a user address space, 1 and every violation if not.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!(
            "usage: uml-stub-check FILE (an object with .__syscall_stub sections, or a linked kernel)"
        );
        return ExitCode::from(2);
    };
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("uml-stub-check: {path}: {e}");
            return ExitCode::from(2);
        }
    };
    match arch_um_rs::stubcheck::check_elf(&data) {
        Ok(r) => {
            println!(
                "uml-stub-check: {path}: stub ok: {} bytes of {}, {} instructions, {} syscall instructions, functions: {}",
                r.size,
                arch_um_rs::stubcheck::STUB_LIMIT,
                r.instructions,
                r.syscalls,
                r.functions.join(" ")
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("uml-stub-check: {path}: {e}");
            }
            eprintln!(
                "uml-stub-check: {path}: the stub cannot run in a user address space ({} problems)",
                errors.len()
            );
            ExitCode::FAILURE
        }
    }
}
