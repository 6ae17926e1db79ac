// SPDX-License-Identifier: GPL-2.0
//! `uml-stub-check`: proves on the built object (or the linked kernel)
//! that the stub page can run inside a user address space.
//!
//! The stub is copied to `STUB_CODE` in every user process, where nothing
//! of the kernel is mapped. So its code must
//!
//! * fit its page (4096 bytes);
//! * reach nothing outside itself: every direct branch and every
//!   RIP-relative operand stays inside the stub, there is no indirect
//!   branch and no absolute memory operand, and (in an object file) every
//!   relocation against it is PC-relative to the stub itself;
//! * talk to the host through raw `syscall` instructions only.
//!
//! In an object file the stub is the `.__syscall_stub*` sections; in a
//! linked kernel, the bytes between `__syscall_stub_start` and
//! `__syscall_stub_end`. A violation names the instruction or relocation,
//! its offset and the symbol it belongs to.

use goblin::elf::{Elf, header, reloc, section_header};
use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Formatter, IntelFormatter, Mnemonic, OpKind, Register,
};

/// The stub page size.
pub const STUB_LIMIT: usize = 4096;

/// What the check found in a stub that passes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StubReport {
    pub size: usize,
    pub functions: Vec<String>,
    pub syscalls: usize,
    pub instructions: usize,
}

/// One stub region to check: its bytes and the address of its first byte
/// (0 in an object file), with the symbols defined in it.
struct Region<'a> {
    name: String,
    bytes: &'a [u8],
    addr: u64,
    symbols: Vec<(u64, String)>,
}

impl Region<'_> {
    fn symbol_at(&self, addr: u64) -> String {
        let mut best: Option<&(u64, String)> = None;
        for s in &self.symbols {
            if s.0 <= addr && best.is_none_or(|b| s.0 >= b.0) {
                best = Some(s);
            }
        }
        match best {
            Some((a, n)) => format!(
                "{}+{:#x} <{n}+{:#x}>",
                self.name,
                addr - self.addr,
                addr - a
            ),
            None => format!("{}+{:#x}", self.name, addr - self.addr),
        }
    }

    fn contains(&self, addr: u64) -> bool {
        addr >= self.addr && addr < self.addr + self.bytes.len() as u64
    }
}

/// Decodes the region and collects violations.
fn check_code(r: &Region<'_>, report: &mut StubReport, errors: &mut Vec<String>) {
    let mut decoder = Decoder::with_ip(64, r.bytes, r.addr, DecoderOptions::NONE);
    let mut fmt = IntelFormatter::new();
    for ins in &mut decoder {
        report.instructions += 1;
        let mut text = String::new();
        fmt.format(&ins, &mut text);
        let at = r.symbol_at(ins.ip());
        if ins.is_invalid() {
            // Padding between functions decodes as garbage only if it is not
            // the int3/nop fill the assembler uses: report it.
            errors.push(format!("{at}: undecodable bytes"));
            continue;
        }
        if ins.mnemonic() == Mnemonic::Syscall {
            report.syscalls += 1;
        }
        let direct = matches!(
            ins.op0_kind(),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        );
        if direct && !r.contains(ins.near_branch_target()) {
            errors.push(format!(
                "{at}: `{text}` branches to {:#x}, outside the stub",
                ins.near_branch_target()
            ));
        }
        if matches!(
            ins.flow_control(),
            FlowControl::IndirectBranch | FlowControl::IndirectCall
        ) {
            errors.push(format!(
                "{at}: `{text}` is an indirect branch, which may leave the stub"
            ));
        }
        for i in 0..ins.op_count() {
            if ins.op_kind(i) != OpKind::Memory {
                continue;
            }
            if ins.is_ip_rel_memory_operand() {
                let target = ins.ip_rel_memory_address();
                if !r.contains(target) {
                    errors.push(format!(
                        "{at}: `{text}` refers to {target:#x}, outside the stub"
                    ));
                }
            } else if ins.memory_base() == Register::None && ins.memory_index() == Register::None {
                errors.push(format!("{at}: `{text}` uses an absolute address"));
            }
        }
    }
}

/// Checks an ELF object (`ET_REL`) or a linked kernel (`ET_EXEC`/`ET_DYN`).
pub fn check_elf(data: &[u8]) -> Result<StubReport, Vec<String>> {
    let elf = Elf::parse(data).map_err(|e| vec![format!("not an ELF file: {e}")])?;
    let mut report = StubReport::default();
    let mut errors = Vec::new();
    let sym_name = |idx: usize| -> String {
        elf.syms
            .get(idx)
            .and_then(|s| elf.strtab.get_at(s.st_name))
            .unwrap_or("?")
            .to_string()
    };
    let mut regions = Vec::new();
    if elf.header.e_type == header::ET_REL {
        for (idx, sh) in elf.section_headers.iter().enumerate() {
            let name = elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("");
            if !name.starts_with(".__syscall_stub") || sh.sh_type != section_header::SHT_PROGBITS {
                continue;
            }
            let range = sh.file_range().unwrap_or_default();
            let mut symbols: Vec<(u64, String)> = elf
                .syms
                .iter()
                .filter(|s| s.st_shndx == idx && s.is_function())
                .map(|s| {
                    (
                        s.st_value,
                        elf.strtab.get_at(s.st_name).unwrap_or("?").to_string(),
                    )
                })
                .collect();
            symbols.sort();
            // Relocations against this section: only PC-relative ones to a
            // symbol of the stub itself are position independent.
            for (target, relocs) in &elf.shdr_relocs {
                if elf.section_headers.get(*target).map(|s| s.sh_info as usize) != Some(idx) {
                    continue;
                }
                for rel in relocs.iter() {
                    let sym = elf.syms.get(rel.r_sym);
                    let own = sym.is_some_and(|s| s.st_shndx == idx);
                    let pcrel = matches!(rel.r_type, reloc::R_X86_64_PC32 | reloc::R_X86_64_PLT32);
                    if !(own && pcrel) {
                        let what = reloc::r_to_str(rel.r_type, header::EM_X86_64);
                        errors.push(format!(
                            "{name}+{:#x}: relocation {what} against `{}`, outside the stub",
                            rel.r_offset,
                            sym_name(rel.r_sym)
                        ));
                    }
                }
            }
            regions.push(Region {
                name: name.to_string(),
                bytes: &data[range],
                addr: 0,
                symbols,
            });
        }
    } else {
        let find = |want: &str| {
            elf.syms
                .iter()
                .find(|s| elf.strtab.get_at(s.st_name) == Some(want))
                .map(|s| s.st_value)
        };
        let (Some(start), Some(end)) = (find("__syscall_stub_start"), find("__syscall_stub_end"))
        else {
            return Err(vec![
                "no __syscall_stub_start/__syscall_stub_end symbols".into(),
            ]);
        };
        let sh = elf
            .section_headers
            .iter()
            .find(|sh| {
                sh.sh_addr <= start
                    && end <= sh.sh_addr + sh.sh_size
                    && sh.sh_type == section_header::SHT_PROGBITS
            })
            .ok_or_else(|| vec![format!("no section holds the stub at {start:#x}")])?;
        let off = (sh.sh_offset + (start - sh.sh_addr)) as usize;
        let mut symbols: Vec<(u64, String)> = elf
            .syms
            .iter()
            .filter(|s| s.st_value >= start && s.st_value < end && s.is_function())
            .map(|s| {
                (
                    s.st_value,
                    elf.strtab.get_at(s.st_name).unwrap_or("?").to_string(),
                )
            })
            .collect();
        symbols.sort();
        symbols.dedup();
        regions.push(Region {
            name: "__syscall_stub_start".into(),
            bytes: &data[off..off + (end - start) as usize],
            addr: start,
            symbols,
        });
    }
    if regions.is_empty() {
        return Err(vec!["no stub (.__syscall_stub section) found".into()]);
    }
    for r in &regions {
        report.size += r.bytes.len();
        report
            .functions
            .extend(r.symbols.iter().map(|s| s.1.clone()));
        check_code(r, &mut report, &mut errors);
    }
    if report.size > STUB_LIMIT {
        errors.push(format!(
            "the stub is {} bytes, more than its {STUB_LIMIT}-byte page",
            report.size
        ));
    }
    if report.syscalls == 0 {
        errors.push("the stub makes no system call: the handlers are missing".into());
    }
    if errors.is_empty() {
        Ok(report)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate's stub, as linked into this test binary.
    #[test]
    fn own_stub_passes() {
        let code = crate::stub::code();
        let r = Region {
            name: "stub".into(),
            bytes: code.bytes(),
            addr: code.start as u64,
            symbols: vec![(code.start as u64, "um_rs_stub_syscall_handler".into())],
        };
        let mut report = StubReport::default();
        let mut errors = Vec::new();
        check_code(&r, &mut report, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(report.syscalls, 3);
    }

    #[test]
    fn violations_are_named() {
        // jmp rel32 far away; call [rip+0x1000]; mov rax, [0x1234]; syscall
        let bytes = [
            0xe9, 0x00, 0x10, 0x00, 0x00, // jmp +0x1000
            0xff, 0x15, 0x00, 0x10, 0x00, 0x00, // call [rip+0x1000]
            0x48, 0x8b, 0x04, 0x25, 0x34, 0x12, 0x00, 0x00, // mov rax, [0x1234]
            0x0f, 0x05, // syscall
        ];
        let r = Region {
            name: ".__syscall_stub".into(),
            bytes: &bytes,
            addr: 0,
            symbols: vec![(0, "bad_stub".into())],
        };
        let mut report = StubReport::default();
        let mut errors = Vec::new();
        check_code(&r, &mut report, &mut errors);
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors[0].contains("<bad_stub+0x0>") && errors[0].contains("outside the stub"));
        assert!(errors[1].contains("indirect"));
        assert!(errors[3].contains("absolute address"));
        assert_eq!(report.syscalls, 1);
    }
}
