// SPDX-License-Identifier: GPL-2.0
//! The mconsole protocol: requests built byte by byte as `uml_mconsole`
//! sends them, every refusal, the reply splitting at the 511-byte boundary,
//! the notify packet, and the owner check over real sockets.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;

use proptest::prelude::*;

use super::properties::check_request_properties;
use super::*;
use crate::host::{file, socket};

/// A request header with `magic`, `version` and `len`, then `data`.
fn packet(magic: u32, version: u32, len: u32, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&magic.to_ne_bytes());
    p.extend_from_slice(&version.to_ne_bytes());
    p.extend_from_slice(&len.to_ne_bytes());
    p.extend_from_slice(data);
    p
}

/// What `uml_mconsole` sends for `text`: the whole struct, zero-padded.
fn client(text: &str) -> Vec<u8> {
    let mut buf = [0u8; PACKET_LEN];
    encode_request(text.as_bytes(), &mut buf).unwrap().to_vec()
}

fn index_of(name: &str) -> usize {
    COMMANDS
        .iter()
        .position(|c| c.name.to_bytes() == name.as_bytes())
        .unwrap()
}

#[test]
fn sizes_are_those_of_the_c_structs() {
    assert_eq!(PACKET_LEN, 524);
    assert_eq!(NOTIFY_LEN, 528);
    assert_eq!(REPLY_CHUNK, 511);
    assert_eq!(CRED_SPACE, 32);
    // What uml_mconsole (uml-utilities) sends for "version", captured from
    // the tool: 524 bytes, len 7, the text zero-padded.
    let p = client("version");
    assert_eq!(p.len(), 524);
    assert_eq!(&p[..12], b"\xbe\xba\xfe\xca\x02\0\0\0\x07\0\0\0");
    assert_eq!(&p[12..20], b"version\0");
    assert!(p[19..].iter().all(|&b| b == 0));
}

#[test]
fn every_command_round_trips() {
    for (i, c) in COMMANDS.iter().enumerate() {
        let name = c.name.to_str().unwrap();
        for text in [name.to_string(), format!("{name} some args")] {
            let p = client(&text);
            let r = parse_request(&p).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert_eq!(r.index, i, "{text}");
            assert_eq!(r.command(), c);
            assert_eq!(r.data, text.as_bytes());
            let mut field = [0xffu8; MCONSOLE_MAX_DATA];
            r.fill_data(&mut field);
            assert_eq!(&field[..text.len()], text.as_bytes());
            assert!(field[text.len()..].iter().all(|&b| b == 0));
        }
    }
    let contexts: Vec<_> = COMMANDS
        .iter()
        .filter(|c| c.context == Context::Intr)
        .map(|c| c.name.to_str().unwrap())
        .collect();
    // As in C, but for `stack`, which runs in process context here.
    assert_eq!(contexts, ["sysrq", "help", "cad", "go", "log"]);
}

#[test]
fn lookup_is_the_c_prefix_match() {
    // strncmp(data, name, strlen(name)): a prefix, case-sensitive, first
    // in table order, only up to the first NUL.
    assert_eq!(lookup(b"versionfoo"), Some(index_of("version")));
    assert_eq!(lookup(b"process"), Some(index_of("proc")));
    assert_eq!(lookup(b"gopher"), Some(index_of("go")));
    assert_eq!(lookup(b"VERSION"), None);
    assert_eq!(lookup(b"Version"), None);
    assert_eq!(lookup(b" version"), None);
    assert_eq!(lookup(b"versio"), None);
    assert_eq!(lookup(b""), None);
    assert_eq!(lookup(b"ver\0sion"), None);
    assert_eq!(lookup(b"halt\0garbage"), Some(index_of("halt")));
    assert_eq!(
        parse_request(&client("Halt")),
        Err(Reject::UnknownCommand),
        "no case folding"
    );
}

#[test]
fn minimal_and_odd_requests_are_taken_as_the_c_took_them() {
    // Header and text only, no NUL on the wire: the C terminated it itself.
    let p = packet(MCONSOLE_MAGIC, 2, 7, b"version");
    assert_eq!(p.len(), 19);
    let r = parse_request(&p).unwrap();
    assert_eq!((r.index, r.data), (index_of("version"), &b"version"[..]));
    // A NUL inside the text: the command is what precedes it, the data all
    // `len` bytes, as C handlers saw them.
    let p = packet(MCONSOLE_MAGIC, 2, 11, b"version\0xyz");
    let r = parse_request(&p).unwrap();
    assert_eq!(
        (r.index, r.data),
        (index_of("version"), &b"version\0xyz"[..])
    );
    // The longest text: 511 bytes.
    let long = format!("log {}", "x".repeat(507));
    let p = client(&long);
    let r = parse_request(&p).unwrap();
    assert_eq!(r.data.len(), 511);
    let mut field = [0xffu8; MCONSOLE_MAX_DATA];
    r.fill_data(&mut field);
    assert_eq!(field[511], 0);
    // Bytes after the text are not handed on: a bare "log" (whose handler
    // reads past the NUL) finds zeroes, not what followed in the datagram.
    let p = packet(MCONSOLE_MAGIC, 2, 3, b"log\0SECRET");
    let r = parse_request(&p).unwrap();
    r.fill_data(&mut field);
    assert_eq!(&field[..4], b"log\0");
    assert!(field[4..].iter().all(|&b| b == 0));
    // A datagram longer than the struct: the rest is ignored, as the C's
    // receive buffer had no room for it.
    let mut big = client("help");
    big.extend_from_slice(&[b'z'; 100]);
    assert_eq!(parse_request(&big).unwrap().index, index_of("help"));
}

#[test]
fn every_refusal_has_its_reason() {
    // No magic: a version-0 client, answered in raw text.
    for p in [
        &b""[..],
        b"\xbe\xba\xfe",
        b"help",
        b"version\0",
        &packet(MCONSOLE_MAGIC.swap_bytes(), 2, 4, b"help"),
        &packet(0, 2, 4, b"help"),
    ] {
        assert_eq!(parse_request(p), Err(Reject::Unversioned), "{p:?}");
    }
    assert!(Reject::Unversioned.v0());
    // The magic, but not the header: the C used the previous request's
    // header fields.
    assert_eq!(
        parse_request(&MCONSOLE_MAGIC.to_ne_bytes()),
        Err(Reject::TruncatedHeader { got: 4 })
    );
    assert_eq!(
        parse_request(&packet(MCONSOLE_MAGIC, 2, 0, b"")[..11]),
        Err(Reject::TruncatedHeader { got: 11 })
    );
    // Length: 511 is the most, 512 leaves no room for the NUL.
    let text = [b'h'; 512];
    assert_eq!(
        parse_request(&packet(MCONSOLE_MAGIC, 2, 512, &text)),
        Err(Reject::TooLarge { len: 512 })
    );
    assert_eq!(
        parse_request(&packet(MCONSOLE_MAGIC, 2, u32::MAX, b"help")),
        Err(Reject::TooLarge { len: u32::MAX })
    );
    // ...checked before the version, as in C.
    assert_eq!(
        parse_request(&packet(MCONSOLE_MAGIC, 3, 600, b"help")),
        Err(Reject::TooLarge { len: 600 })
    );
    // Another version: refused (the C replied so, then ran it anyway).
    for version in [0, 1, 3, u32::MAX] {
        let mut p = client("halt");
        p[4..8].copy_from_slice(&version.to_ne_bytes());
        assert_eq!(parse_request(&p), Err(Reject::BadVersion { version }));
    }
    // Fewer text bytes than announced: the C took the rest from the
    // previous request.
    assert_eq!(
        parse_request(&packet(MCONSOLE_MAGIC, 2, 7, b"vers")),
        Err(Reject::TruncatedData { len: 7, got: 4 })
    );
    assert_eq!(
        parse_request(&packet(MCONSOLE_MAGIC, 2, 511, b"log x")),
        Err(Reject::TruncatedData { len: 511, got: 5 })
    );
    // No such command.
    assert_eq!(
        parse_request(&client("frobnicate")),
        Err(Reject::UnknownCommand)
    );
    assert_eq!(
        parse_request(&packet(MCONSOLE_MAGIC, 2, 0, b"")),
        Err(Reject::UnknownCommand)
    );
}

#[test]
fn refusal_texts_are_the_c_texts_where_the_c_had_one() {
    assert_eq!(
        Reject::Unversioned.to_string(),
        "ERR Version 0 mconsole clients are not supported by this driver"
    );
    assert_eq!(
        Reject::TooLarge { len: 512 }.to_string(),
        "Request too large"
    );
    assert_eq!(
        Reject::BadVersion { version: 1 }.to_string(),
        "This driver only supports version 2 clients"
    );
    assert_eq!(Reject::UnknownCommand.to_string(), "Unknown command");
    assert_eq!(
        Reject::TruncatedData { len: 7, got: 4 }.to_string(),
        "Truncated request: 4 of its 7 data bytes arrived"
    );
    assert_eq!(
        Reject::TruncatedHeader { got: 4 }.to_string(),
        "Truncated request: 4 bytes, the header alone is 12"
    );
    for r in [
        Refusal::NotOwner {
            uid: u32::MAX,
            owner: u32::MAX,
        },
        Refusal::Unverified { owner: u32::MAX },
    ] {
        let t = format!("ERR {r}");
        assert!(t.len() <= REPLY_CHUNK, "{t}");
        assert!(t.contains("Permission denied"), "{t}");
    }
}

#[test]
fn error_answers_are_one_packet() {
    let mut buf = [0u8; PACKET_LEN];
    assert_eq!(
        encode_error(&Reject::UnknownCommand, false, &mut buf),
        b"\x01\0\0\0\0\0\0\0\x10\0\0\0Unknown command\0"
    );
    assert_eq!(
        encode_error(&Reject::Unversioned, true, &mut buf),
        V0_REFUSAL.as_bytes()
    );
    // Cut at 511 bytes, like any reply packet.
    let long = "z".repeat(600);
    let p = encode_error(&long, false, &mut buf);
    assert_eq!(p.len(), PACKET_LEN);
    assert_eq!(p[PACKET_LEN - 1], 0);
    assert_eq!(encode_error(&long, true, &mut buf).len(), REPLY_CHUNK);
}

/// The packets of a reply, encoded.
fn wire(text: &[u8], err: u32, more: u32) -> Vec<Vec<u8>> {
    let mut buf = [0u8; PACKET_LEN];
    reply_packets(text, err, more)
        .map(|p| p.encode(&mut buf).to_vec())
        .collect()
}

#[test]
fn an_empty_reply_is_one_packet_of_13_bytes() {
    let w = wire(b"", 0, 0);
    assert_eq!(w, [b"\0\0\0\0\0\0\0\0\x01\0\0\0\0".to_vec()]);
    let w = wire(b"", 1, 1);
    assert_eq!(w, [b"\x01\0\0\0\x01\0\0\0\x01\0\0\0\0".to_vec()]);
}

#[test]
fn a_short_reply_is_header_text_and_nul() {
    let w = wire(b"OK", 0xffff_ffea, 0);
    assert_eq!(w, [b"\xea\xff\xff\xff\0\0\0\0\x03\0\0\0OK\0".to_vec()]);
}

#[test]
fn long_replies_split_at_511_bytes() {
    let text: Vec<u8> = (0..2000u32).map(|i| b'a' + (i % 26) as u8).collect();
    // (length, [(wire length, more)]) for more = 0, err = 7.
    let cases: [(usize, &[(usize, u32)]); 7] = [
        (510, &[(523, 0)]),
        (511, &[(524, 0)]),
        (512, &[(524, 1), (14, 0)]),
        (1021, &[(524, 1), (523, 0)]),
        (1022, &[(524, 1), (524, 0)]),
        (1023, &[(524, 1), (524, 1), (14, 0)]),
        (2000, &[(524, 1), (524, 1), (524, 1), (480, 0)]),
    ];
    for (len, want) in cases {
        let w = wire(&text[..len], 7, 0);
        let got: Vec<_> = w
            .iter()
            .map(|p| (p.len(), u32::from_ne_bytes(p[4..8].try_into().unwrap())))
            .collect();
        assert_eq!(got, want, "{len} bytes");
        assert_eq!(reply_packet_count(len), want.len());
        for (i, p) in w.iter().enumerate() {
            let err = u32::from_ne_bytes(p[0..4].try_into().unwrap());
            assert_eq!(err, if i == 0 { 7 } else { 0 }, "err on packet {i}");
            let l = u32::from_ne_bytes(p[8..12].try_into().unwrap()) as usize;
            assert_eq!(l, p.len() - HEADER_LEN, "len counts the NUL");
            assert_eq!(p[p.len() - 1], 0);
        }
        let joined: Vec<u8> = w
            .iter()
            .flat_map(|p| p[HEADER_LEN..p.len() - 1].to_vec())
            .collect();
        assert_eq!(joined, &text[..len]);
    }
    // With more = 1 (the console output) every packet says more follows.
    assert!(
        reply_packets(&text[..1023], 0, 1).all(|p| p.more == 1),
        "the last carries the caller's more"
    );
}

#[test]
fn a_reply_keeps_nul_bytes() {
    let w = wire(b"a\0b", 0, 0);
    assert_eq!(w, [b"\0\0\0\0\0\0\0\0\x04\0\0\0a\0b\0".to_vec()]);
}

#[test]
fn the_notify_packet_layout() {
    let mut buf = [0u8; NOTIFY_LEN];
    let p = encode_notify(notify_type::PANIC, b"boom\0", &mut buf);
    assert_eq!(p, b"\xbe\xba\xfe\xca\x02\0\0\0\x01\0\0\0\x05\0\0\0boom\0");
    let p = encode_notify(notify_type::SOCKET, b"", &mut buf);
    assert_eq!(p.len(), 16);
    let big = [b'x'; 600];
    let p = encode_notify(notify_type::USER_NOTIFY, &big, &mut buf);
    assert_eq!(p.len(), 528);
    assert_eq!(&p[8..16], b"\x03\0\0\0\0\x02\0\0");
}

#[test]
fn notify_names_must_fit_sun_path() {
    assert_eq!(notify_addr(c"").unwrap_err(), NameError::Empty);
    let fits = CString::new("/".repeat(108)).unwrap();
    let a = notify_addr(&fits).unwrap();
    assert!(a.sun_path.iter().all(|&c| c as u8 == b'/'));
    let long = CString::new("/".repeat(109)).unwrap();
    assert_eq!(
        notify_addr(&long).unwrap_err(),
        NameError::TooLong { len: 109, max: 108 }
    );
    let a = notify_addr(c"/tmp/n").unwrap();
    assert_eq!(a.sun_family, libc::AF_UNIX as libc::sa_family_t);
    let path: Vec<u8> = a.sun_path[..7].iter().map(|&c| c as u8).collect();
    assert_eq!(path, b"/tmp/n\0");
}

#[test]
fn who_may_talk() {
    let owners = [1000, 1000];
    let cred = |pid, uid| Some(PeerCred { pid, uid, gid: uid });
    assert_eq!(check_sender(cred(42, 1000), &owners), Sender::Allowed);
    assert_eq!(check_sender(cred(42, 0), &owners), Sender::Allowed);
    // From another pid namespace, with a known uid: the uid decides.
    assert_eq!(check_sender(cred(0, 1000), &owners), Sender::Allowed);
    assert_eq!(
        check_sender(cred(42, 1001), &owners),
        Sender::Refused { uid: 1001, pid: 42 }
    );
    assert_eq!(
        check_sender(cred(42, 65534), &owners),
        Sender::Refused {
            uid: 65534,
            pid: 42
        }
    );
    // No credentials: sent before SO_PASSCRED (pid 0, overflow uid).
    assert_eq!(check_sender(cred(0, 65534), &owners), Sender::Unverified);
    assert_eq!(check_sender(None, &owners), Sender::Unverified);
    // A setuid kernel: the real uid counts too.
    assert_eq!(check_sender(cred(9, 1000), &[1000, 0]), Sender::Allowed);
    assert_eq!(check_sender(cred(9, 7), &[1000, 7]), Sender::Allowed);
}

#[test]
fn owner_only_socket_files() {
    let sock = libc::S_IFSOCK;
    assert!(owner_only_mode(sock | 0o755, 1000, 1000));
    assert!(owner_only_mode(sock | 0o700, 1000, 1000));
    assert!(owner_only_mode(sock | 0o600, 0, 0));
    assert!(!owner_only_mode(sock | 0o775, 1000, 1000), "group-writable");
    assert!(!owner_only_mode(sock | 0o757, 1000, 1000), "world-writable");
    assert!(!owner_only_mode(sock | 0o755, 1001, 1000), "someone else's");
    assert!(
        !owner_only_mode(libc::S_IFREG | 0o600, 1000, 1000),
        "no socket"
    );
}

// ---------------------------------------------------------------------------
// real sockets

fn bound(path: &std::path::Path) -> OwnedFd {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    socket::bind_unix_dgram(&c, usize::MAX, true).unwrap()
}

fn dgram_pair() -> (OwnedFd, OwnedFd) {
    let [a, b] = socket::pipe(false, true).unwrap();
    (a, b)
}

fn recv(fd: &impl AsFd) -> (Vec<u8>, Received) {
    let mut buf = [0u8; PACKET_LEN];
    let mut origin = [0u8; ORIGIN_LEN];
    let got = recv_request(fd.as_fd().as_raw_fd(), &mut buf, &mut origin).unwrap();
    (buf[..got.len].to_vec(), got)
}

#[test]
fn credentials_arrive_once_passcred_is_on() {
    let (server, client_end) = dgram_pair();
    // Queued before SO_PASSCRED: no credentials (pid 0, the overflow uid).
    send_to(client_end.as_raw_fd(), b"early", &[], 0).unwrap();
    enable_passcred(server.as_raw_fd()).unwrap();
    send_to(client_end.as_raw_fd(), b"late", &[], 0).unwrap();

    let (data, early) = recv(&server);
    assert_eq!(data, b"early");
    let c = early
        .cred
        .expect("SO_PASSCRED reports even missing credentials");
    assert_eq!(c.pid, 0);
    assert_eq!(check_sender(early.cred, &owner_uids()), Sender::Unverified);

    let (data, late) = recv(&server);
    assert_eq!(data, b"late");
    let c = late.cred.unwrap();
    assert_eq!(c.pid, std::process::id() as i32);
    assert_eq!(c.uid, nix::unistd::getuid().as_raw());
    assert_eq!(check_sender(late.cred, &owner_uids()), Sender::Allowed);
    // A socketpair peer has no name.
    assert_eq!(late.origin_len, 0);
}

#[test]
fn a_datagram_longer_than_the_buffer_is_cut() {
    let (server, client_end) = dgram_pair();
    send_to(client_end.as_raw_fd(), &[7u8; 700], &[], 0).unwrap();
    let (data, got) = recv(&server);
    assert_eq!((data.len(), got.len), (PACKET_LEN, PACKET_LEN));
}

#[test]
fn passed_descriptors_are_closed() {
    let (server, client_end) = dgram_pair();
    let [r, w] = socket::pipe(true, true).unwrap();
    // Without SO_PASSCRED the control buffer has room for four descriptors.
    assert_eq!(
        socket::send_fds(client_end.as_raw_fd(), b"help", &[w.as_raw_fd()]),
        Ok(4)
    );
    drop(w);
    let (data, got) = recv(&server);
    assert_eq!(data, b"help");
    assert_eq!(got.cred, None);
    // The only other write end was the one received: closed, so EOF.
    file::set_fd_block(r.as_raw_fd(), false).unwrap();
    assert_eq!(file::read(r.as_raw_fd(), &mut [0u8; 4]), Ok(0));
}

#[test]
fn a_recv_error_is_the_hosts_errno() {
    let (server, _client) = dgram_pair();
    file::set_fd_block(server.as_raw_fd(), false).unwrap();
    let mut buf = [0u8; PACKET_LEN];
    let mut origin = [0u8; ORIGIN_LEN];
    assert_eq!(
        recv_request(server.as_raw_fd(), &mut buf, &mut origin),
        Err(Errno::EAGAIN)
    );
    assert_eq!(Errno::last(), Errno::EAGAIN, "errno left as recvmsg set it");
    assert_eq!(recv_request(-1, &mut buf, &mut origin), Err(Errno::EBADF));
}

#[test]
fn replies_go_back_to_a_named_sender() {
    let dir = tempfile::tempdir().unwrap();
    let server = bound(&dir.path().join("mconsole"));
    let client_end = bound(&dir.path().join("client"));
    let server_addr = socket::unix_addr(
        &CString::new(dir.path().join("mconsole").as_os_str().as_encoded_bytes()).unwrap(),
        usize::MAX,
    );
    send_to_addr(client_end.as_raw_fd(), &client("version"), &server_addr).unwrap();
    let mut buf = [0u8; PACKET_LEN];
    let mut origin = [0u8; ORIGIN_LEN];
    let got = recv_request(server.as_raw_fd(), &mut buf, &mut origin).unwrap();
    assert_eq!(parse_request(&buf[..got.len]).unwrap().index, 0);
    assert!(got.origin_len > 2);
    let mut reply = [0u8; PACKET_LEN];
    let packet = reply_packets(b"OK", 0, 0).next().unwrap();
    send_to(
        server.as_raw_fd(),
        packet.encode(&mut reply),
        &origin[..got.origin_len],
        0,
    )
    .unwrap();
    let (data, _) = recv(&client_end);
    assert_eq!(data, b"\0\0\0\0\0\0\0\0\x03\0\0\0OK\0");
}

#[test]
fn owner_only_is_read_from_the_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mconsole");
    let sock = bound(&path);
    let me = nix::unistd::geteuid().as_raw();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(socket_file_owner_only(sock.as_raw_fd(), me));
    assert!(!socket_file_owner_only(sock.as_raw_fd(), me + 1));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o775)).unwrap();
    assert!(!socket_file_owner_only(sock.as_raw_fd(), me));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(socket_file_owner_only(sock.as_raw_fd(), me));
    // Gone, or replaced by something else: not owner-only.
    std::fs::remove_file(&path).unwrap();
    assert!(!socket_file_owner_only(sock.as_raw_fd(), me));
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!socket_file_owner_only(sock.as_raw_fd(), me));
    // Unnamed sockets, and no socket at all.
    let (a, _b) = dgram_pair();
    assert!(!socket_file_owner_only(a.as_raw_fd(), me));
    assert!(!socket_file_owner_only(-1, me));
}

#[test]
fn a_notify_packet_reaches_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let listener = bound(&path);
    let name = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let sender = dgram_socket().unwrap();
    let mut buf = [0u8; NOTIFY_LEN];
    let packet = encode_notify(notify_type::SOCKET, b"/x/mconsole\0", &mut buf);
    send_to_addr(sender.as_raw_fd(), packet, &notify_addr(&name).unwrap()).unwrap();
    let (data, _) = recv(&listener);
    assert_eq!(data, packet);
}

/// Forks a child that drops to uid/gid 65534 (nobody) and sends `request`
/// on `fd`; returns whether the child could (it cannot if we are not
/// root), after it exited. The child makes raw system calls only.
pub(crate) fn send_as_nobody(fd: &OwnedFd, request: &[u8]) -> bool {
    let fd = fd.as_raw_fd();
    // SAFETY: the child only makes async-signal-safe system calls and _exits.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: plain system calls on our own descriptor and buffer.
            unsafe {
                if libc::setgroups(0, core::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    libc::_exit(2);
                }
                let n = libc::send(fd, request.as_ptr().cast(), request.len(), 0);
                libc::_exit(if n == request.len() as isize { 0 } else { 3 });
            }
        }
        pid if pid > 0 => {
            let mut status = 0;
            // SAFETY: waits for the child just made.
            unsafe { libc::waitpid(pid, &raw mut status, 0) };
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
        }
        _ => false,
    }
}

#[test]
fn another_uid_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    let (server, client_end) = dgram_pair();
    enable_passcred(server.as_raw_fd()).unwrap();
    if !send_as_nobody(&client_end, &client("halt")) {
        eprintln!("skipped: could not become uid 65534 here");
        return;
    }
    let (data, got) = recv(&server);
    assert_eq!(parse_request(&data).unwrap().index, index_of("halt"));
    let c = got.cred.unwrap();
    assert_eq!(c.uid, 65534);
    assert_ne!(c.pid, 0);
    assert_eq!(
        check_sender(got.cred, &owner_uids()),
        Sender::Refused {
            uid: 65534,
            pid: c.pid
        }
    );
}

proptest! {
    #[test]
    fn properties_hold_for_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..700)) {
        check_request_properties(&data);
    }

    #[test]
    fn properties_hold_for_near_valid_packets(
        version in prop_oneof![Just(2u32), any::<u32>()],
        command in proptest::sample::select(
            COMMANDS.iter().map(|c| c.name.to_str().unwrap()).chain(["", "Help", "x"]).collect::<Vec<_>>()
        ),
        args in proptest::collection::vec(any::<u8>(), 0..600),
        len_delta in -3i64..3,
        cut in 0usize..700,
    ) {
        let mut text = command.as_bytes().to_vec();
        text.extend_from_slice(&args);
        let len = (text.len() as i64 + len_delta).max(0) as u32;
        let mut p = packet(MCONSOLE_MAGIC, version, len, &text);
        if cut < p.len() && cut % 3 == 0 {
            p.truncate(cut);
        }
        check_request_properties(&p);
    }
}

/// The fuzz target's corpus (fuzz/corpus/mconsole_request): seeds and any
/// regression inputs saved there are checked on every `cargo test`.
#[test]
fn every_fuzz_corpus_file_has_the_request_properties() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/mconsole_request");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 6,
        "{} files in {}",
        files.len(),
        dir.display()
    );
    for f in &files {
        check_request_properties(&std::fs::read(f).unwrap());
    }
    let parse = |name: &str| {
        parse_request(&std::fs::read(dir.join(name)).unwrap()).map(|r| r.command().name)
    };
    assert_eq!(parse("seed-version"), Ok(c"version"));
    assert_eq!(parse("seed-proc-meminfo"), Ok(c"proc"));
    assert_eq!(parse("seed-config-ubd"), Ok(c"config"));
    assert!(parse("seed-bad-magic").is_err());
    assert!(parse("seed-truncated").is_err());
}

#[test]
fn a_full_client_queue_is_waited_for_until_the_deadline() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let (server_path, client_path) = (dir.path().join("s"), dir.path().join("c"));
    let server = UnixDatagram::bind(&server_path).unwrap();
    server.set_nonblocking(true).unwrap();
    let client = UnixDatagram::bind(&client_path).unwrap();
    let mut addr: libc::sockaddr_un = zeroed_sockaddr();
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr
        .sun_path
        .iter_mut()
        .zip(client_path.as_os_str().as_encoded_bytes())
    {
        *d = *s as libc::c_char;
    }
    // SAFETY: `addr` is a plain sockaddr_un; view it as its bytes.
    let origin = unsafe {
        core::slice::from_raw_parts(
            (&raw const addr).cast::<u8>(),
            core::mem::size_of::<libc::sockaddr_un>(),
        )
    };
    let fd = server.as_raw_fd();
    // Fill the client's queue until the host says EAGAIN.
    let soon = || Patience::new(std::time::Duration::ZERO);
    let mut queued = 0;
    while send_to_patiently(fd, b"x", origin, 0, &mut soon()).is_ok() {
        queued += 1;
        assert!(queued < 100_000, "the queue never filled");
    }
    // A reader makes room after 50 ms: the patient send gets through.
    let reader = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut b = [0u8; 8];
        client.recv(&mut b).unwrap();
        client
    });
    let later = || Patience::new(std::time::Duration::from_secs(5));
    assert_eq!(send_to_patiently(fd, b"y", origin, 0, &mut later()), Ok(1));
    let client = reader.join().unwrap();
    // With MSG_DONTWAIT, or once the deadline passed, EAGAIN comes back.
    assert_eq!(
        send_to_patiently(fd, b"z", origin, libc::MSG_DONTWAIT, &mut later()),
        Err(Errno::EAGAIN)
    );
    assert_eq!(
        send_to_patiently(fd, b"z", origin, 0, &mut soon()),
        Err(Errno::EAGAIN)
    );
    drop(client);
}

#[test]
fn patience_counts_from_the_first_wait() {
    let mut p = Patience::new(std::time::Duration::from_millis(20));
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert!(
        p.lasts(),
        "the clock starts at the first wait, not at new()"
    );
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert!(!p.lasts(), "and runs for the whole reply");
    assert!(!Patience::new(std::time::Duration::ZERO).lasts());
}

fn zeroed_sockaddr() -> libc::sockaddr_un {
    // SAFETY: all-zero bytes are a valid sockaddr_un.
    unsafe { core::mem::zeroed() }
}
