// SPDX-License-Identifier: GPL-2.0
//! Reading `ar` archives, regular and thin (`!<thin>`, as kbuild's `vmlinux.a`), and the
//! symbols that ELF objects define.
//!
//! A thin archive stores only headers and names: member `n` lives at `<archive dir>/n`.
//! Only the symbol table (`/`, `/SYM64/`) and the long-name table (`//`) carry data.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use goblin::elf::Elf;
use goblin::elf::section_header::SHN_UNDEF;
use goblin::elf::sym::{STB_GLOBAL, STB_WEAK, STT_FUNC, STT_OBJECT};

const MAGIC: &[u8] = b"!<arch>\n";
const THIN_MAGIC: &[u8] = b"!<thin>\n";
const HEADER_LEN: usize = 60;

/// One member of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Name (a path relative to the archive's directory in a thin archive).
    pub name: String,
    /// Where its bytes are in the archive (`None` in a thin archive).
    pub data: Option<Range<usize>>,
}

/// A parsed archive.
#[derive(Debug)]
pub struct Archive {
    pub thin: bool,
    pub members: Vec<Member>,
}

/// True for archive contents (regular or thin).
pub fn is_archive(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC) || bytes.starts_with(THIN_MAGIC)
}

/// Parses the GNU/SysV `ar` format.
pub fn parse_ar(bytes: &[u8]) -> Result<Archive> {
    let thin = if bytes.starts_with(THIN_MAGIC) {
        true
    } else if bytes.starts_with(MAGIC) {
        false
    } else {
        bail!("not an ar archive (bad magic)");
    };
    let mut pos = MAGIC.len();
    let mut long_names: &[u8] = &[];
    let mut members = Vec::new();
    while pos < bytes.len() {
        if bytes.len() - pos < HEADER_LEN {
            // Trailing padding.
            if bytes[pos..].iter().all(|&b| b == b'\n') {
                break;
            }
            bail!("truncated member header at offset {pos}");
        }
        let h = &bytes[pos..pos + HEADER_LEN];
        if &h[58..60] != b"`\n" {
            bail!("bad member header at offset {pos}");
        }
        let raw_name = std::str::from_utf8(&h[0..16])
            .context("member name is not UTF-8")?
            .trim_end();
        let size: usize = std::str::from_utf8(&h[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .with_context(|| format!("bad member size at offset {pos}"))?;
        let start = pos + HEADER_LEN;
        let special = matches!(raw_name, "/" | "//" | "/SYM64/");
        let has_data = !thin || special;
        if has_data && start + size > bytes.len() {
            bail!("member {raw_name} at offset {pos} runs past the end");
        }
        if raw_name == "//" {
            long_names = &bytes[start..start + size];
        } else if !special {
            let name = if let Some(off) = raw_name.strip_prefix('/') {
                // GNU ar may end the field with a '/' ("/3250          /"): take the digits.
                let digits: String = off.chars().take_while(char::is_ascii_digit).collect();
                let off: usize = digits
                    .parse()
                    .with_context(|| format!("bad long-name reference {raw_name}"))?;
                let rest = long_names
                    .get(off..)
                    .with_context(|| format!("long-name offset {off} out of range"))?;
                let end = rest
                    .windows(2)
                    .position(|w| w == b"/\n")
                    .or_else(|| rest.iter().position(|&b| b == b'\n'))
                    .unwrap_or(rest.len());
                String::from_utf8_lossy(&rest[..end]).into_owned()
            } else {
                raw_name.strip_suffix('/').unwrap_or(raw_name).to_string()
            };
            members.push(Member {
                name,
                data: has_data.then(|| start..start + size),
            });
        }
        pos = start;
        if has_data {
            pos += size + (size & 1);
        }
    }
    Ok(Archive { thin, members })
}

/// Paths of the objects in an archive file (members of a thin archive resolved against
/// its directory).
pub fn thin_member_paths(archive: &Path) -> Result<Vec<PathBuf>> {
    let bytes = std::fs::read(archive).with_context(|| format!("reading {}", archive.display()))?;
    let ar = parse_ar(&bytes).with_context(|| format!("parsing {}", archive.display()))?;
    if !ar.thin {
        bail!("{} is not a thin archive", archive.display());
    }
    let dir = archive.parent().unwrap_or(Path::new("."));
    Ok(ar.members.iter().map(|m| dir.join(&m.name)).collect())
}

/// Binding of a symbol definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    Global,
    Weak,
}

/// The global and weak symbols an ELF object defines (any type), by name.
pub fn defined_symbols(bytes: &[u8]) -> Result<HashMap<String, Bind>> {
    let elf = Elf::parse(bytes).context("parsing ELF")?;
    let mut out = HashMap::new();
    for s in elf.syms.iter() {
        if s.st_shndx == SHN_UNDEF as usize {
            continue;
        }
        let bind = match s.st_bind() {
            STB_GLOBAL => Bind::Global,
            STB_WEAK => Bind::Weak,
            _ => continue,
        };
        if let Some(name) = elf.strtab.get_at(s.st_name) {
            if !name.is_empty() {
                out.insert(name.to_string(), bind);
            }
        }
    }
    Ok(out)
}

/// Names of all symbols an ELF file defines, local ones included (the final UML link
/// makes every kernel symbol local).
pub fn all_defined_names(bytes: &[u8]) -> Result<std::collections::HashSet<String>> {
    let elf = Elf::parse(bytes).context("parsing ELF")?;
    Ok(elf
        .syms
        .iter()
        .filter(|s| s.st_shndx != SHN_UNDEF as usize)
        .filter_map(|s| elf.strtab.get_at(s.st_name).map(str::to_string))
        .filter(|n| !n.is_empty())
        .collect())
}

/// The global/weak functions and data objects an ELF object defines: the interface a
/// C file provides.
pub fn provided_interface(bytes: &[u8]) -> Result<Vec<String>> {
    let elf = Elf::parse(bytes).context("parsing ELF")?;
    let mut out: Vec<String> = elf
        .syms
        .iter()
        .filter(|s| s.st_shndx != SHN_UNDEF as usize)
        .filter(|s| matches!(s.st_bind(), STB_GLOBAL | STB_WEAK))
        .filter(|s| matches!(s.st_type(), STT_FUNC | STT_OBJECT))
        .filter_map(|s| elf.strtab.get_at(s.st_name).map(str::to_string))
        .filter(|n| !n.is_empty())
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn have(tool: &str) -> bool {
        Command::new(tool).arg("--version").output().is_ok()
    }

    /// A thin archive made by binutils `ar rcT`, with a long member name.
    #[test]
    fn thin_archive_from_ar() {
        if !have("ar") {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("sub/dir")).unwrap();
        std::fs::write(d.join("a.o"), b"AAAA").unwrap();
        std::fs::write(d.join("sub/dir/a_rather_long_member_name.o"), b"BBB").unwrap();
        let st = Command::new("ar")
            .args(["rcT", "x.a", "a.o", "sub/dir/a_rather_long_member_name.o"])
            .current_dir(d)
            .status()
            .unwrap();
        assert!(st.success());
        let bytes = std::fs::read(d.join("x.a")).unwrap();
        let ar = parse_ar(&bytes).unwrap();
        assert!(ar.thin);
        let names: Vec<&str> = ar.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a.o", "sub/dir/a_rather_long_member_name.o"]);
        assert!(ar.members.iter().all(|m| m.data.is_none()));
        let paths = thin_member_paths(&d.join("x.a")).unwrap();
        assert_eq!(std::fs::read(&paths[1]).unwrap(), b"BBB");
        // The same members in a regular archive carry their data.
        let st = Command::new("ar")
            .args(["rc", "r.a", "a.o", "sub/dir/a_rather_long_member_name.o"])
            .current_dir(d)
            .status()
            .unwrap();
        assert!(st.success());
        let bytes = std::fs::read(d.join("r.a")).unwrap();
        let ar = parse_ar(&bytes).unwrap();
        assert!(!ar.thin);
        assert_eq!(ar.members.len(), 2);
        assert_eq!(&bytes[ar.members[0].data.clone().unwrap()], b"AAAA");
        assert_eq!(&bytes[ar.members[1].data.clone().unwrap()], b"BBB");
        assert!(parse_ar(b"garbage").is_err());
    }

    /// kbuild's vmlinux.a has long-name references written as `/3250          /`.
    #[test]
    fn thin_archive_trailing_slash_reference() {
        let names = b"init/main.o/\nkernel/sysctl.o/\n";
        let hdr = |name: &str, size: usize| {
            format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n", 0, 0, 0, 644)
        };
        let mut a = b"!<thin>\n".to_vec();
        a.extend(hdr("//", names.len()).as_bytes());
        a.extend(names);
        a.extend(hdr("/0", 100).as_bytes());
        let quirk = format!("{:<15}/", "/13");
        a.extend(hdr(&quirk, 200).as_bytes());
        assert_eq!(hdr(&quirk, 1).len(), 60);
        let ar = parse_ar(&a).unwrap();
        let names: Vec<&str> = ar.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["init/main.o", "kernel/sysctl.o"]);
    }

    /// Symbols of a real object compiled by the host compiler.
    #[test]
    fn object_symbols() {
        if !have("cc") {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let c = t.path().join("s.c");
        std::fs::write(
            &c,
            "int ext(void);\nint data_sym = 1; static int hidden(void) { return 2; }\n\
             int func_sym(void) { return hidden() + ext(); }\n\
             __attribute__((weak)) int weak_sym(void) { return 0; }\n",
        )
        .unwrap();
        let o = t.path().join("s.o");
        let st = Command::new("cc")
            .args(["-c", "-O0", "-w", "-o"])
            .arg(&o)
            .arg(&c)
            .status()
            .unwrap();
        assert!(st.success());
        let bytes = std::fs::read(&o).unwrap();
        let defs = defined_symbols(&bytes).unwrap();
        assert_eq!(defs.get("func_sym"), Some(&Bind::Global));
        assert_eq!(defs.get("weak_sym"), Some(&Bind::Weak));
        assert!(!defs.contains_key("hidden") && !defs.contains_key("ext"));
        assert_eq!(
            provided_interface(&bytes).unwrap(),
            ["data_sym", "func_sym", "weak_sym"]
        );
    }
}
