// SPDX-License-Identifier: GPL-2.0
//! The `xterm` channel (`xterm.c`): UML starts a terminal emulator that
//! runs uml-utilities' `port-helper`, which sends its terminal back over
//! a Unix socket.
//!
//! The command is `<emulator> <title switch> <title> <exec switch>
//! <port-helper> -uml-socket <socket>`, by default `xterm -T "Virtual
//! Console #1" -e /usr/lib//uml/port-helper -uml-socket
//! /tmp/xterm-pipeXXXXXX`; `xterm=<emulator>,<title switch>,<exec
//! switch>` on the command line changes the first three
//! ([`split_setup`]).

use core::ffi::{CStr, c_char, c_int};

use super::format_ints;

/// The emulator by default: `CONFIG_XTERM_CHAN_DEFAULT_EMULATOR`, which
/// the kernel build hands to `xterm.c` alone on its compiler command line;
/// `"xterm"` is its Kconfig default and the value in the arch-um-rs
/// configuration.
pub const DEFAULT_EMULATOR: &CStr = c"xterm";
/// The switch that sets the title by default.
pub const DEFAULT_TITLE_SWITCH: &CStr = c"-T";
/// The switch that runs a command by default.
pub const DEFAULT_EXEC_SWITCH: &CStr = c"-e";

/// `OS_LIB_PATH "/uml/port-helper"` as `xterm.c` is compiled: the host
/// half never sees `CONFIG_64BIT`, so `OS_LIB_PATH` is `"/usr/lib/"`.
pub const PORT_HELPER: &CStr = c"/usr/lib//uml/port-helper";
/// The helper, searched in `PATH`, when [`PORT_HELPER`] is not executable.
pub const PORT_HELPER_IN_PATH: &CStr = c"port-helper";

/// The helper the terminal runs: [`PORT_HELPER`] if it may be executed
/// ([access(2)] `X_OK`), else [`PORT_HELPER_IN_PATH`].
///
/// [access(2)]: https://man7.org/linux/man-pages/man2/access.2.html
pub fn port_helper() -> &'static CStr {
    // SAFETY: a C string.
    if unsafe { libc::access(PORT_HELPER.as_ptr(), libc::X_OK) } < 0 {
        PORT_HELPER_IN_PATH
    } else {
        PORT_HELPER
    }
}

/// The socket name template for [mkstemp(3)], NUL included.
///
/// [mkstemp(3)]: https://man7.org/linux/man-pages/man3/mkstemp.3.html
pub const SOCKET_TEMPLATE: [u8; 22] = *b"/tmp/xterm-pipeXXXXXX\0";

/// Where the parts of `xterm=<emulator>,<title switch>,<exec switch>` are
/// after [`split_setup`]: offsets into the value, each a C string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// The title switch, if one was given.
    pub title_switch: Option<usize>,
    /// The exec switch, if one was given.
    pub exec_switch: Option<usize>,
}

/// Splits the value of `xterm=` in place as `xterm_setup` did: the first
/// two commas become NULs, the emulator is the value's start, and what
/// follows a comma is taken as a switch unless the value ends there (so
/// `xterm=rxvt,,-e` gives an empty title switch, as in C). `line` holds
/// the value's bytes up to (not including) its NUL.
pub fn split_setup(line: &mut [u8]) -> Setup {
    let mut setup = Setup {
        title_switch: None,
        exec_switch: None,
    };
    let Some(comma) = line.iter().position(|&b| b == b',') else {
        return setup;
    };
    line[comma] = 0;
    let title = comma + 1;
    if title < line.len() {
        setup.title_switch = Some(title);
    }
    let Some(comma) = line[title..].iter().position(|&b| b == b',') else {
        return setup;
    };
    let comma = title + comma;
    line[comma] = 0;
    let exec = comma + 1;
    if exec < line.len() {
        setup.exec_switch = Some(exec);
    }
    setup
}

/// The title of the terminal: `fmt` (the channel options' `xterm_title`,
/// `"Virtual Console #%d"` with the umid in parentheses) with `device`
/// for its `%d`, cut to the C's 256 bytes. The C passed `fmt` to `sprintf`
/// as the format (a `%s` in the umid crashed it; a long umid overflowed
/// its buffer); here only `%d` and `%%` are conversions.
pub fn title(fmt: &[u8], device: c_int, out: &mut [u8; 256]) -> usize {
    format_ints(fmt, &[device], out)
}

/// The terminal's command line, NULL-terminated, for `run_helper`.
#[derive(Clone, Copy, Debug)]
pub struct Command<'a> {
    pub emulator: &'a CStr,
    pub title_switch: &'a CStr,
    pub title: &'a CStr,
    pub exec_switch: &'a CStr,
    pub helper: &'a CStr,
    pub socket: &'a CStr,
}

impl Command<'_> {
    /// `argv` for `run_helper`, which does not write through it.
    pub fn argv(&self) -> [*mut c_char; 8] {
        [
            self.emulator.as_ptr().cast_mut(),
            self.title_switch.as_ptr().cast_mut(),
            self.title.as_ptr().cast_mut(),
            self.exec_switch.as_ptr().cast_mut(),
            self.helper.as_ptr().cast_mut(),
            c"-uml-socket".as_ptr().cast_mut(),
            self.socket.as_ptr().cast_mut(),
            core::ptr::null_mut(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(value: &str) -> (Vec<u8>, Setup) {
        let mut line = value.as_bytes().to_vec();
        let s = split_setup(&mut line);
        (line, s)
    }

    fn part(line: &[u8], at: usize) -> &[u8] {
        let end = line[at..]
            .iter()
            .position(|&b| b == 0)
            .map_or(line.len(), |e| at + e);
        &line[at..end]
    }

    #[test]
    fn setup_splits_as_the_c_did() {
        let (line, s) = split("gnome-terminal,-t,-x");
        assert_eq!(part(&line, 0), b"gnome-terminal");
        assert_eq!(part(&line, s.title_switch.unwrap()), b"-t");
        assert_eq!(part(&line, s.exec_switch.unwrap()), b"-x");

        let (line, s) = split("konsole");
        assert_eq!(line, b"konsole");
        assert_eq!(s.title_switch, None);
        assert_eq!(s.exec_switch, None);

        // Nothing after the last comma keeps the current switch; two
        // commas in a row make the title switch empty, as in C (its test
        // looked at the second comma, before making it a NUL).
        let (line, s) = split("rxvt,");
        assert_eq!(part(&line, 0), b"rxvt");
        assert_eq!(s.title_switch, None);
        let (line, s) = split("rxvt,,-e2");
        assert_eq!(part(&line, 0), b"rxvt");
        assert_eq!(part(&line, s.title_switch.unwrap()), b"");
        assert_eq!(part(&line, s.exec_switch.unwrap()), b"-e2");
        let (line, s) = split("rxvt,-n,");
        assert_eq!(part(&line, s.title_switch.unwrap()), b"-n");
        assert_eq!(s.exec_switch, None);
        // Only two commas are split on.
        let (line, s) = split("a,b,c,d");
        assert_eq!(part(&line, s.exec_switch.unwrap()), b"c,d");
        // An empty value is an empty emulator, as in C.
        let (line, s) = split("");
        assert!(line.is_empty());
        assert_eq!(s.title_switch, None);
    }

    #[test]
    fn the_title_is_the_format_with_the_device() {
        let mut out = [0u8; 256];
        let n = title(b"Virtual Console #%d (my%sumid)", 2, &mut out);
        assert_eq!(&out[..n], b"Virtual Console #2 (my%sumid)");
        let long = [b'x'; 400];
        assert_eq!(title(&long, 1, &mut out), 255);
        assert_eq!(out[255], 0);
    }

    #[test]
    fn the_command_line_is_in_the_c_order() {
        let cmd = Command {
            emulator: c"xterm",
            title_switch: c"-T",
            title: c"Serial Line #0",
            exec_switch: c"-e",
            helper: PORT_HELPER,
            socket: c"/tmp/xterm-pipeAbCdEf",
        };
        let argv = cmd.argv();
        assert!(argv[7].is_null());
        let words: Vec<&str> = argv[..7]
            .iter()
            // SAFETY: the pointers are the C strings above.
            .map(|&p| unsafe { CStr::from_ptr(p) }.to_str().unwrap())
            .collect();
        assert_eq!(
            words,
            [
                "xterm",
                "-T",
                "Serial Line #0",
                "-e",
                "/usr/lib//uml/port-helper",
                "-uml-socket",
                "/tmp/xterm-pipeAbCdEf"
            ]
        );
        let helper = port_helper();
        assert!(helper == PORT_HELPER || helper == PORT_HELPER_IN_PATH);
        assert_eq!(
            helper == PORT_HELPER,
            std::path::Path::new("/usr/lib/uml/port-helper").exists()
        );
    }
}
