// SPDX-License-Identifier: GPL-2.0
//! `uml-harness verify-link`: which object defines each os-layer symbol in the final link.
//!
//! The interface of a migrated file `arch/um/os-Linux/<name>.c` is the set of global
//! functions and data objects that the C build's `<name>.o` defines. In the Rust build,
//! each of them must be defined exactly once among the members of `vmlinux.a`, by an
//! object under `arch/um/os-Linux/rust/`, and be present in the final `linux`; and
//! `<name>.o` itself must not be linked.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::archive::{self, Bind};
use crate::cli::VerifyLinkArgs;
use crate::paths::Ctx;

/// Objects of the Rust layer live below this directory of the output tree.
pub const RUST_DIR: &str = "arch/um/os-Linux/rust/";
/// The C os layer.
pub const OS_DIR: &str = "arch/um/os-Linux/";

/// Who defines a symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Rust,
    OsC,
    Other,
}

pub fn classify(obj: &str) -> Kind {
    if obj.starts_with(RUST_DIR) {
        Kind::Rust
    } else if obj.starts_with(OS_DIR) {
        Kind::OsC
    } else {
        Kind::Other
    }
}

/// The migrated file names from `arch-um-rs/MIGRATED`.
pub fn parse_migrated(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_end_matches(".c").to_string())
        .collect()
}

/// The migrated file names of a crate's `MIGRATED` file; an error when it cannot be read
/// or lists nothing.
pub fn read_migrated(path: &Path) -> Result<Vec<String>> {
    let migrated = parse_migrated(
        &fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    if migrated.is_empty() {
        bail!("{} lists no migrated files", path.display());
    }
    Ok(migrated)
}

/// Where MIGRATED's `um-drivers/<file>` names live: the host halves of
/// the drivers in `arch/um/drivers`.
pub const UM_DRIVERS_DIR: &str = "arch/um/drivers/";

/// Where MIGRATED's `fs-hostfs/<file>` names live: hostfs's host half.
pub const HOSTFS_DIR: &str = "fs/hostfs/";

/// The objects of the C build that a MIGRATED name stands for: the
/// os-Linux file of that name, the `arch/um/drivers` file for
/// `um-drivers/<file>`, the `fs/hostfs` one for `fs-hostfs/<file>`, or for
/// `stub` the two stub objects.
pub fn c_objects(name: &str) -> Vec<String> {
    if name == "stub" {
        vec![
            "arch/um/kernel/skas/stub.o".into(),
            "arch/x86/um/stub_segv.o".into(),
        ]
    } else if let Some(file) = name.strip_prefix("um-drivers/") {
        vec![format!("{UM_DRIVERS_DIR}{file}.o")]
    } else if let Some(file) = name.strip_prefix("fs-hostfs/") {
        vec![format!("{HOSTFS_DIR}{file}.o")]
    } else {
        vec![format!("{OS_DIR}{name}.o")]
    }
}

/// What was found for one symbol.
#[derive(Debug, Clone)]
pub struct SymbolReport {
    pub symbol: String,
    pub definers: Vec<(String, Bind)>,
    pub in_final: bool,
}

/// Per-file results.
#[derive(Debug, Default)]
pub struct FileReport {
    pub name: String,
    pub symbols: Vec<SymbolReport>,
    pub c_object_linked: bool,
}

/// The whole check; `problems` empty means it passed.
#[derive(Debug, Default)]
pub struct Report {
    pub files: Vec<FileReport>,
    pub problems: Vec<String>,
    /// The stub check of the final `linux` (`uml-stub-check`), when it passed.
    pub stub: Option<String>,
    /// Every member of `vmlinux.a` under `arch/um/os-Linux/`, with its role.
    pub os_objects: Vec<(String, &'static str)>,
}

/// Objects of `arch/um/os-Linux/` that may stay in a Rust-layer link, and why:
/// they are kernel code (built with kernel flags), not the host layer.
pub const OS_DIR_KERNEL_SIDE: &[(&str, &str)] = &[
    (
        "arch/um/os-Linux/user_syms.o",
        "kernel-side export of host libc symbols",
    ),
    (
        "arch/um/os-Linux/rust/variadic.o",
        "the variadic os_info/os_warn shim (C: stable Rust cannot define variadics)",
    ),
    (
        "arch/um/os-Linux/drivers/ethertap_kern.o",
        "kernel half of the legacy ethertap transport",
    ),
    (
        "arch/um/os-Linux/drivers/tuntap_kern.o",
        "kernel half of the legacy tuntap transport",
    ),
];

/// Sorts the `arch/um/os-Linux/` members of a link: the Rust layer, the
/// kernel-side objects allowed to stay, and host-layer C objects (a problem
/// in a Rust build once every file is migrated, listed for the C build).
pub fn os_dir_objects<'a>(
    members: impl IntoIterator<Item = &'a String>,
) -> Vec<(String, &'static str)> {
    let mut v: Vec<(String, &'static str)> = members
        .into_iter()
        .filter(|m| m.starts_with(OS_DIR))
        .map(|m| {
            let role = if let Some((_, why)) = OS_DIR_KERNEL_SIDE.iter().find(|(o, _)| o == m) {
                why
            } else if m.starts_with(RUST_DIR) {
                "the Rust layer"
            } else {
                "host-layer C"
            };
            (m.clone(), role)
        })
        .collect();
    v.sort();
    v
}

/// Judges the link of one build (`os` = "rust" or "c").
pub fn judge(
    os: &str,
    required: &BTreeMap<String, Vec<String>>,
    definers: &HashMap<String, Vec<(String, Bind)>>,
    final_syms: &HashSet<String>,
    members: &HashSet<String>,
) -> Report {
    let mut report = Report::default();
    for (file, syms) in required {
        let c_objs = c_objects(file);
        let mut fr = FileReport {
            name: file.clone(),
            c_object_linked: c_objs.iter().any(|o| members.contains(o)),
            ..Default::default()
        };
        if os == "rust" {
            for c_obj in c_objs.iter().filter(|o| members.contains(*o)) {
                report.problems.push(format!(
                    "{c_obj} (migrated) is linked: it is a member of vmlinux.a"
                ));
            }
        }
        for s in syms {
            let defs = definers.get(s).cloned().unwrap_or_default();
            let in_final = final_syms.contains(s);
            match defs.as_slice() {
                [] => report.problems.push(format!(
                    "{s} ({file}.c): defined by no member of vmlinux.a{}",
                    if in_final {
                        ""
                    } else {
                        " and missing from linux"
                    }
                )),
                [(obj, _)] => {
                    let k = classify(obj);
                    if os == "rust" && k != Kind::Rust {
                        report.problems.push(format!(
                            "{s} ({file}.c): defined by the C object {obj}, not by the Rust layer ({RUST_DIR})"
                        ));
                    }
                    if os == "c" && !c_objs.contains(obj) {
                        report.problems.push(format!(
                            "{s} ({file}.c): defined by {obj}, expected {}",
                            c_objs.join(" or ")
                        ));
                    }
                }
                many => report.problems.push(format!(
                    "{s} ({file}.c): defined {} times: {}",
                    many.len(),
                    many.iter()
                        .map(|(o, _)| o.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
            if !in_final && !defs.is_empty() {
                report.problems.push(format!(
                    "{s} ({file}.c): missing from the symbol table of linux"
                ));
            }
            fr.symbols.push(SymbolReport {
                symbol: s.clone(),
                definers: defs,
                in_final,
            });
        }
        report.files.push(fr);
    }
    report
}

/// The report as text: one line per symbol, then a table per file.
pub fn render(report: &Report) -> String {
    let mut s = String::new();
    let width = report
        .files
        .iter()
        .flat_map(|f| f.symbols.iter().map(|x| x.symbol.len()))
        .max()
        .unwrap_or(10);
    for f in &report.files {
        let _ = writeln!(s, "{}.c:", f.name);
        for sym in &f.symbols {
            let defs = if sym.definers.is_empty() {
                "(no definition in vmlinux.a)".to_string()
            } else {
                sym.definers
                    .iter()
                    .map(|(o, b)| match b {
                        Bind::Global => o.clone(),
                        Bind::Weak => format!("{o} (weak)"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let fin = if sym.in_final { "" } else { "  [not in linux]" };
            let _ = writeln!(s, "  {:width$}  <- {defs}{fin}", sym.symbol);
        }
    }
    let _ = writeln!(
        s,
        "\n{:<16} {:>7} {:>5} {:>5} {:>6} {:>8} {:>5} {:>9}  status",
        "file", "symbols", "rust", "os-c", "other", "missing", "dup", "c-linked"
    );
    for f in &report.files {
        let count = |k: Kind| {
            f.symbols
                .iter()
                .filter(|x| x.definers.len() == 1 && classify(&x.definers[0].0) == k)
                .count()
        };
        let missing = f
            .symbols
            .iter()
            .filter(|x| x.definers.is_empty() || !x.in_final)
            .count();
        let dup = f.symbols.iter().filter(|x| x.definers.len() > 1).count();
        let bad = report.problems.iter().any(|p| {
            p.contains(&format!("({}.c)", f.name)) || p.contains(&format!("/{}.o ", f.name))
        });
        let _ = writeln!(
            s,
            "{:<16} {:>7} {:>5} {:>5} {:>6} {:>8} {:>5} {:>9}  {}",
            format!("{}.c", f.name),
            f.symbols.len(),
            count(Kind::Rust),
            count(Kind::OsC),
            count(Kind::Other),
            missing,
            dup,
            if f.c_object_linked { "yes" } else { "no" },
            if bad { "FAIL" } else { "ok" }
        );
    }
    s
}

/// Objects (and archive members) a path stands for: (label, bytes).
fn objects_of(label: &str, path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if !archive::is_archive(&bytes) {
        return Ok(vec![(label.to_string(), bytes)]);
    }
    let ar = archive::parse_ar(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for m in ar.members {
        match m.data {
            Some(r) => out.push((format!("{label}({})", m.name), bytes[r].to_vec())),
            None => out.extend(objects_of(&m.name, &dir.join(&m.name))?),
        }
    }
    Ok(out)
}

fn relative(p: &Path, base: &Path) -> String {
    p.strip_prefix(base)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// Files below `dir` with the given extensions.
fn walk(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            // cargo's target directory holds intermediate objects, not link inputs.
            if p.file_name().is_some_and(|n| n != "target") {
                walk(&p, exts, out);
            }
        } else if p.extension().is_some_and(|x| exts.iter().any(|e| x == *e)) {
            out.push(p);
        }
    }
}

/// Runs the check for one build.
pub fn verify(ctx: &Ctx, os: &str) -> Result<Report> {
    let out = ctx.build_dir(os);
    let c_out = ctx.build_dir("c");
    let migrated = read_migrated(&ctx.repo.join("arch-um-rs/MIGRATED"))?;
    // The interface of each migrated file, from the C build.
    let mut required = BTreeMap::new();
    for name in &migrated {
        let mut syms = Vec::new();
        for rel in c_objects(name) {
            let obj = c_out.join(&rel);
            let bytes = fs::read(&obj).with_context(|| {
                format!(
                    "reading {} (the C build defines the interface of {name}: run `uml-harness \
                     build --os c` first)",
                    obj.display()
                )
            })?;
            syms.extend(
                archive::provided_interface(&bytes)
                    .with_context(|| format!("reading the symbols of {}", obj.display()))?,
            );
        }
        required.insert(name.clone(), syms);
    }
    let wanted: HashSet<&String> = required.values().flatten().collect();
    // Who defines them among the members of vmlinux.a.
    let vmlinux_a = out.join("vmlinux.a");
    let linux = out.join("linux");
    for p in [&vmlinux_a, &linux] {
        if !p.is_file() {
            bail!(
                "{} is missing: run `uml-harness build --os {os}` first",
                p.display()
            );
        }
    }
    let member_paths = archive::thin_member_paths(&vmlinux_a)?;
    let members: HashSet<String> = member_paths.iter().map(|p| relative(p, &out)).collect();
    let mut definers: HashMap<String, Vec<(String, Bind)>> = HashMap::new();
    let scan = |label: &str,
                path: &Path,
                definers: &mut HashMap<String, Vec<(String, Bind)>>|
     -> Result<()> {
        for (obj, bytes) in objects_of(label, path)? {
            let syms = archive::defined_symbols(&bytes)
                .with_context(|| format!("reading the symbols of {obj}"))?;
            for (s, b) in syms {
                if wanted.contains(&s) {
                    definers.entry(s).or_default().push((obj.clone(), b));
                }
            }
        }
        Ok(())
    };
    for p in &member_paths {
        scan(&relative(p, &out), p, &mut definers)?;
    }
    // A Rust library linked outside vmlinux.a still counts, for symbols nothing in
    // vmlinux.a defines.
    let mut extra = Vec::new();
    if wanted.iter().any(|s| !definers.contains_key(*s)) {
        walk(&out.join(RUST_DIR), &["o", "a"], &mut extra);
    }
    for p in extra {
        let label = relative(&p, &out);
        if members.contains(&label) {
            continue;
        }
        let mut found = HashMap::new();
        scan(&label, &p, &mut found)?;
        for (s, d) in found {
            definers.entry(s).or_insert(d);
        }
    }
    // The final link.
    let linux_bytes = fs::read(&linux).with_context(|| format!("reading {}", linux.display()))?;
    let final_syms: HashSet<String> = archive::all_defined_names(&linux_bytes)
        .with_context(|| format!("reading the symbols of {}", linux.display()))?
        .into_iter()
        .filter(|s| wanted.contains(s))
        .collect();
    let mut report = judge(os, &required, &definers, &final_syms, &members);
    report.os_objects = os_dir_objects(&members);
    if os == "rust" {
        for (o, role) in &report.os_objects {
            if *role == "host-layer C" {
                report.problems.push(format!(
                    "{o} is linked: a C object of the host layer in the Rust build"
                ));
            }
        }
    }
    if os == "rust" {
        report.problems.extend(libc_free_hazards(
            archive::all_defined_names(&linux_bytes)?.iter(),
        ));
    }
    // The stub page of the final link, whichever layer provided it.
    match arch_um_rs::stubcheck::check_elf(&linux_bytes) {
        Ok(r) => {
            report.stub = Some(format!(
                "stub page: {} of {} bytes, {} syscall instructions, functions: {}",
                r.size,
                arch_um_rs::stubcheck::STUB_LIMIT,
                r.syscalls,
                r.functions.join(" ")
            ))
        }
        Err(errors) => report.problems.extend(
            errors
                .into_iter()
                .map(|e| format!("stub check of linux: {e}")),
        ),
    }
    Ok(report)
}

/// Functions of Rust's std that let libc allocate memory with its own
/// `malloc` and then release it with `free`, which the kernel's link wraps
/// to its own allocator: the kernel frees memory it never gave out. Each
/// entry: the parts of the mangled name, and what to use instead.
///
/// `std::fs::canonicalize` is generic, so it is only in the link if some
/// code of ours (or of a crate we use) calls it; `std::sys`'s own copy is
/// always there, for backtraces, which a kernel never prints.
const LIBC_FREE_HAZARDS: &[(&[&str], &str)] = &[(
    &["3std2fs12canonicalize"],
    "std::fs::canonicalize frees realpath()'s result with the wrapped free: call realpath \
     with a buffer of your own",
)];

/// A problem for each hazardous std function the final link contains.
fn libc_free_hazards<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut problems = Vec::new();
    for name in names {
        for (parts, why) in LIBC_FREE_HAZARDS {
            if parts.iter().all(|p| name.contains(p)) {
                problems.push(format!("{name} is linked: {why}"));
            }
        }
    }
    problems
}

/// `uml-harness verify-link`.
pub fn run(ctx: &Ctx, args: &VerifyLinkArgs) -> Result<()> {
    let report = verify(ctx, &args.os)?;
    let n: usize = report.files.iter().map(|f| f.symbols.len()).sum();
    println!(
        "verify-link: {} build {} ({} migrated files, {n} symbols)\n",
        args.os,
        ctx.build_dir(&args.os).display(),
        report.files.len()
    );
    print!("{}", render(&report));
    println!("\nobjects of {OS_DIR} in vmlinux.a:");
    for (o, role) in &report.os_objects {
        println!("  {o:<45} {role}");
    }
    if let Some(stub) = &report.stub {
        println!("\n{stub}");
    }
    if report.problems.is_empty() {
        println!("\nverify-link: ok");
        return Ok(());
    }
    bail!(
        "verify-link found {} problem(s) in the {} build:\n  {}",
        report.problems.len(),
        args.os,
        report.problems.join("\n  ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets() -> (BTreeMap<String, Vec<String>>, HashSet<String>) {
        let mut req = BTreeMap::new();
        req.insert(
            "file".to_string(),
            vec!["os_open_file".to_string(), "os_close_file".to_string()],
        );
        req.insert("util".to_string(), vec!["os_info".to_string()]);
        let fin = ["os_open_file", "os_close_file", "os_info"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        (req, fin)
    }

    fn defs(list: &[(&str, &str)]) -> HashMap<String, Vec<(String, Bind)>> {
        let mut m: HashMap<String, Vec<(String, Bind)>> = HashMap::new();
        for (s, o) in list {
            m.entry(s.to_string())
                .or_default()
                .push((o.to_string(), Bind::Global));
        }
        m
    }

    const RUST_O: &str = "arch/um/os-Linux/rust/um_os_rust.o";

    #[test]
    fn rust_build_passes() {
        let (req, fin) = sets();
        let d = defs(&[
            ("os_open_file", RUST_O),
            ("os_close_file", RUST_O),
            ("os_info", "arch/um/os-Linux/rust/shim.o"),
        ]);
        let r = judge("rust", &req, &d, &fin, &HashSet::new());
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let text = render(&r);
        assert!(text.contains("os_open_file") && text.contains(RUST_O));
        assert!(text.contains("file.c") && text.contains(" ok"));
    }

    #[test]
    fn rust_build_failures() {
        let (req, mut fin) = sets();
        fin.remove("os_info");
        let d = defs(&[
            ("os_open_file", "arch/um/os-Linux/file.o"),
            ("os_close_file", RUST_O),
            ("os_close_file", "arch/um/kernel/other.o"),
            ("os_info", RUST_O),
        ]);
        let members: HashSet<String> = ["arch/um/os-Linux/file.o".to_string()].into();
        let r = judge("rust", &req, &d, &fin, &members);
        let all = r.problems.join("\n");
        assert!(
            all.contains("os_open_file (file.c): defined by the C object arch/um/os-Linux/file.o"),
            "{all}"
        );
        assert!(
            all.contains("os_close_file (file.c): defined 2 times"),
            "{all}"
        );
        assert!(
            all.contains("os_info (util.c): missing from the symbol table"),
            "{all}"
        );
        assert!(
            all.contains("arch/um/os-Linux/file.o (migrated) is linked"),
            "{all}"
        );
        assert!(render(&r).contains("FAIL"));
        // A symbol nobody defines.
        let r = judge("rust", &req, &defs(&[]), &HashSet::new(), &HashSet::new());
        assert_eq!(r.problems.len(), 3);
    }

    #[test]
    fn c_build_expects_c_objects() {
        let (req, fin) = sets();
        let d = defs(&[
            ("os_open_file", "arch/um/os-Linux/file.o"),
            ("os_close_file", "arch/um/os-Linux/file.o"),
            ("os_info", "arch/um/os-Linux/util.o"),
        ]);
        let members: HashSet<String> = ["arch/um/os-Linux/file.o".to_string()].into();
        assert!(judge("c", &req, &d, &fin, &members).problems.is_empty());
    }

    #[test]
    fn std_canonicalize_is_a_hazard() {
        let names = [
            "_ZN3std2fs12canonicalize17hf5734ceb170f8922E".to_string(),
            "_RNvNtNtCsjrHSEGnQ3l9_3std3sys2fs12canonicalize".to_string(),
            "_RNvYC3f16NtNtNtNtNtCs6IbZLaMqzNS_17compiler_builtins4math9libm_math7support\
             12float_traits5Float12canonicalizeBh_"
                .to_string(),
            "realpath".to_string(),
        ];
        let problems = libc_free_hazards(names.iter());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("_ZN3std2fs12canonicalize"));
        assert!(problems[0].contains("realpath"));
    }

    #[test]
    fn migrated_list() {
        assert_eq!(
            parse_migrated("# x\nfile\nutil.c\n\n umid # y\n"),
            ["file", "util", "umid"]
        );
        assert_eq!(c_objects("skas/mem"), ["arch/um/os-Linux/skas/mem.o"]);
        assert_eq!(
            c_objects("um-drivers/ubd_user"),
            ["arch/um/drivers/ubd_user.o"]
        );
        assert_eq!(
            c_objects("fs-hostfs/hostfs_user"),
            ["fs/hostfs/hostfs_user.o"]
        );
        assert_eq!(c_objects("stub").len(), 2);
    }
}
