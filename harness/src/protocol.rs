// SPDX-License-Identifier: GPL-2.0
//! The protocol between the harness and the guest's `/init`.
//!
//! The payload argv travels on the kernel command line as
//! `harness.cmd=x<hex arg0>,x<hex arg1>,...` (the `x` keeps empty arguments visible to the
//! shell's field splitting; hex survives any byte). A parameter with a dot is neither put
//! in init's environment nor in its argv by the kernel, so `/init` reads it from
//! `/proc/cmdline`. `/init` prints [`START_MARKER`] before running the payload and
//! `@@HARNESS-EXIT <status>@@` after it, then syncs and powers off.

use anyhow::{Result, bail};

/// Kernel command-line parameter carrying the payload.
pub const CMD_PARAM: &str = "harness.cmd";
/// Printed by `/init` right before it runs the payload.
pub const START_MARKER: &str = "@@HARNESS-START@@";
pub const EXIT_PREFIX: &str = "@@HARNESS-EXIT ";
const EXIT_SUFFIX: &str = "@@";
/// Start of the line the kernel prints when it panics.
pub const PANIC_NEEDLE: &str = "Kernel panic";

/// Encodes the payload argv as one kernel command-line argument.
pub fn encode_cmd(argv: &[String]) -> Result<String> {
    if argv.is_empty() {
        bail!("the guest command is empty");
    }
    let words: Vec<String> = argv
        .iter()
        .map(|a| {
            let mut w = String::with_capacity(1 + 2 * a.len());
            w.push('x');
            for b in a.bytes() {
                w.push_str(&format!("{b:02x}"));
            }
            w
        })
        .collect();
    Ok(format!("{CMD_PARAM}={}", words.join(",")))
}

/// Inverse of [`encode_cmd`] (what `/init` does in shell), for tests.
#[cfg(test)]
pub fn decode_cmd(param: &str) -> Result<Vec<String>> {
    let Some(value) = param
        .strip_prefix(CMD_PARAM)
        .and_then(|r| r.strip_prefix('='))
    else {
        bail!("not a {CMD_PARAM}= parameter: {param}");
    };
    value
        .split(',')
        .map(|w| {
            let Some(h) = w.strip_prefix('x') else {
                bail!("bad word {w:?} in {CMD_PARAM}");
            };
            if h.len() % 2 != 0 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("bad hex {h:?} in {CMD_PARAM}");
            }
            let bytes: Vec<u8> = (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("checked hex"))
                .collect();
            Ok(String::from_utf8(bytes)?)
        })
        .collect()
}

/// The exit marker line for `status`.
#[cfg(test)]
pub fn exit_marker(status: i32) -> String {
    format!("{EXIT_PREFIX}{status}{EXIT_SUFFIX}")
}

/// The payload status if `line` carries the exit marker (anywhere: kernel messages can
/// share the console line).
pub fn parse_exit_marker(line: &str) -> Option<i32> {
    let start = line.find(EXIT_PREFIX)? + EXIT_PREFIX.len();
    let rest = &line[start..];
    let end = rest.find(EXIT_SUFFIX)?;
    rest[..end].trim().parse().ok()
}

/// `/init` of the initramfs (busybox ash).
pub fn init_script() -> String {
    format!(
        r#"#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# /init of the uml-harness initramfs: mount the basics, run the payload from
# {CMD_PARAM}= on the kernel command line, report its status, power off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /dev/shm 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname uml 2>/dev/null
cmd=
for w in $(cat /proc/cmdline); do
	case "$w" in
	{CMD_PARAM}=*) cmd="${{w#{CMD_PARAM}=}}" ;;
	hostfs=*) mount -t hostfs hostfs /host 2>/dev/null || echo "init: cannot mount hostfs on /host" ;;
	esac
done
set --
IFS=,
for w in $cmd; do
	w="${{w#x}}"
	a="$(printf %s "$w" | xxd -r -p; printf .)"
	set -- "$@" "${{a%.}}"
done
unset IFS
if [ $# -eq 0 ]; then
	echo "init: no {CMD_PARAM}= on the kernel command line"
	set -- false
fi
echo "{START_MARKER}"
cd /root
"$@" </dev/null
status=$?
cd /
echo "{EXIT_PREFIX}$status{EXIT_SUFFIX}"
sync
poweroff -f
halt -f
while :; do sleep 3600; done
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmd_round_trip() {
        let cases: Vec<Vec<String>> = vec![
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "cat /proc/cpuinfo | head -5; exit 3".into(),
            ],
            vec!["".into()],
            vec!["a".into(), "".into(), "".into()],
            vec![
                "ünïcode \"quotes\" 'and' $dollars\n".into(),
                "a,b=c x".into(),
            ],
        ];
        for argv in cases {
            let p = encode_cmd(&argv).unwrap();
            // One host argv element, no whitespace: safe on the kernel command line.
            assert!(!p.contains(char::is_whitespace), "{p}");
            assert!(p.bytes().all(|b| b.is_ascii_graphic()));
            assert_eq!(decode_cmd(&p).unwrap(), argv);
        }
        assert!(encode_cmd(&[]).is_err());
        assert!(decode_cmd("harness.cmd=x4").is_err());
        assert!(decode_cmd("harness.cmd=41").is_err());
    }

    /// Runs the decoding part of the init script with the host's busybox, if any.
    #[test]
    fn init_script_decodes_like_rust() {
        if !std::path::Path::new("/bin/busybox").exists() {
            return;
        }
        let argv: Vec<String> = vec!["a b".into(), "".into(), "x\n".into(), "ü,=".into()];
        let param = encode_cmd(&argv).unwrap();
        let script = init_script();
        let start = script.find("set --\n").unwrap();
        let end = script.find("if [ $# -eq 0 ]").unwrap();
        let snippet = format!(
            "xxd() {{ busybox xxd \"$@\"; }}\ncmd=\"{}\"\n{}for a in \"$@\"; do printf '[%s]' \"$a\"; done",
            param.strip_prefix("harness.cmd=").unwrap(),
            &script[start..end]
        );
        let out = std::process::Command::new("/bin/busybox")
            .args(["sh", "-c", &snippet])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "[a b][][x\n][ü,=]");
    }

    #[test]
    fn exit_marker_parsing() {
        assert_eq!(parse_exit_marker(&exit_marker(3)), Some(3));
        assert_eq!(parse_exit_marker("@@HARNESS-EXIT 0@@"), Some(0));
        assert_eq!(
            parse_exit_marker("[  1.2] foo@@HARNESS-EXIT 130@@\r"),
            Some(130)
        );
        assert_eq!(parse_exit_marker("@@HARNESS-EXIT @@"), None);
        assert_eq!(parse_exit_marker("@@HARNESS-EXIT 1"), None);
        assert_eq!(parse_exit_marker("echo \"@@HARNESS-EXIT $status@@\""), None);
        assert_eq!(parse_exit_marker("nothing"), None);
    }
}
