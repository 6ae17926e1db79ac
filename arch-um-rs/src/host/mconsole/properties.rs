// SPDX-License-Identifier: GPL-2.0
//! What [`parse_request`], the reply splitting and the notify packet
//! promise for any input, as one checking function shared by the unit
//! tests (`mconsole/tests.rs`) and a libFuzzer target.
//!
//! Not compiled into kernels (feature `kernel`): it is test code.

use super::{
    COMMANDS, HEADER_LEN, MCONSOLE_MAGIC, MCONSOLE_MAX_DATA, MCONSOLE_VERSION, NOTIFY_HEADER_LEN,
    NOTIFY_LEN, PACKET_LEN, REPLY_CHUNK, Reject, Request, c_str, encode_error, encode_notify,
    has_magic, lookup, parse_request, reply_packet_count, reply_packets,
};

/// Parses `data` as a datagram and checks the answer, then uses `data` as
/// reply text and notify payload; panics, naming the property, if one
/// fails (a crash to the fuzzer).
///
/// * Parsing never panics, and only the first [`PACKET_LEN`] bytes count.
/// * A refusal has a reason that agrees with the bytes (the magic, the
///   header length, the length field, the version, the data that arrived,
///   the command lookup), in the C's order, and an answer that fits one
///   packet: an error reply, or raw text for version 0.
/// * An accepted request has the magic and version 2; its command is the
///   first entry of [`COMMANDS`] that starts its text; its text is the
///   `len` bytes after the header, at most 511 of them, so that the data
///   the kernel half gets is NUL-terminated within its 512 bytes.
/// * Any text, replied with any `err` and `more`, splits into packets of
///   at most 511 bytes whose texts concatenate back to it; the error value
///   is on the first packet only, every packet but the last says more
///   follows, the last carries the caller's `more`; each packet encodes as
///   header, text and NUL.
/// * The notify packet carries at most 512 bytes of the payload after a
///   16-byte header.
pub fn check_request_properties(data: &[u8]) {
    check_parse(data);
    let flags = data.first().copied().unwrap_or(0);
    let err = u32::from(flags & 1) * data.len() as u32;
    check_reply(data, err, 0);
    check_reply(data, 0, u32::from((flags >> 1) & 1));
    check_notify(data, u32::from(flags));
}

fn word(data: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(data[at..at + 4].try_into().expect("four bytes"))
}

fn check_parse(data: &[u8]) {
    let parsed = parse_request(data);
    let seen = &data[..data.len().min(PACKET_LEN)];
    if data.len() > PACKET_LEN {
        assert_eq!(parse_request(seen), parsed, "bytes past the packet counted");
    }
    match parsed {
        Ok(req) => check_accepted(seen, &req),
        Err(reject) => check_refused(seen, reject),
    }
}

fn check_refused(data: &[u8], reject: Reject) {
    let text = reject.to_string();
    assert!(!text.is_empty(), "{reject:?} has no text");
    assert!(text.len() <= REPLY_CHUNK, "{reject:?}: text too long");
    assert_eq!(reject.v0(), reject == Reject::Unversioned);
    // The answer: one packet, the text as a reply, or raw for version 0.
    let (mut a, mut b) = ([0u8; PACKET_LEN], [0u8; PACKET_LEN]);
    let answer = encode_error(&reject, reject.v0(), &mut a);
    if reject.v0() {
        assert_eq!(answer, text.as_bytes());
    } else {
        let packet = reply_packets(text.as_bytes(), 1, 0)
            .next()
            .expect("a packet");
        assert_eq!(answer, packet.encode(&mut b));
    }
    if !has_magic(data) {
        assert_eq!(reject, Reject::Unversioned, "no magic");
        assert!(data.len() < 4 || word(data, 0) != MCONSOLE_MAGIC);
        return;
    }
    if data.len() < HEADER_LEN {
        assert_eq!(reject, Reject::TruncatedHeader { got: data.len() });
        return;
    }
    let (version, len) = (word(data, 4), word(data, 8));
    match reject {
        Reject::TooLarge { len: l } => {
            assert_eq!(l, len);
            assert!(len as usize >= MCONSOLE_MAX_DATA, "{reject:?}");
        }
        Reject::BadVersion { version: v } => {
            assert!((len as usize) < MCONSOLE_MAX_DATA, "length checked first");
            assert_eq!(v, version);
            assert_ne!(version, MCONSOLE_VERSION);
        }
        Reject::TruncatedData { len: l, got } => {
            assert_eq!(version, MCONSOLE_VERSION);
            assert_eq!((l, got), (len as usize, data.len() - HEADER_LEN));
            assert!(got < l, "{reject:?}");
        }
        Reject::UnknownCommand => {
            assert_eq!(version, MCONSOLE_VERSION);
            let text = &data[HEADER_LEN..HEADER_LEN + len as usize];
            assert!(
                COMMANDS
                    .iter()
                    .all(|c| !c_str(text).starts_with(c.name.to_bytes())),
                "a command matches {text:?}"
            );
        }
        Reject::Unversioned | Reject::TruncatedHeader { .. } => {
            panic!("{reject:?} for a packet with magic and header")
        }
    }
}

fn check_accepted(data: &[u8], req: &Request<'_>) {
    assert!(data.len() >= HEADER_LEN);
    assert_eq!(word(data, 0), MCONSOLE_MAGIC);
    assert_eq!(word(data, 4), MCONSOLE_VERSION);
    let len = word(data, 8) as usize;
    assert_eq!(req.data.len(), len);
    assert!(len < MCONSOLE_MAX_DATA, "no room for the NUL");
    assert!(HEADER_LEN + len <= data.len(), "text past the datagram");
    assert_eq!(req.data, &data[HEADER_LEN..HEADER_LEN + len]);

    // The command: in the table, the first that starts the text.
    assert!(req.index < COMMANDS.len());
    let text = c_str(req.data);
    assert!(text.starts_with(req.command().name.to_bytes()));
    assert!(
        COMMANDS[..req.index]
            .iter()
            .all(|c| !text.starts_with(c.name.to_bytes())),
        "an earlier command matches"
    );
    assert_eq!(lookup(req.data), Some(req.index));

    // What the kernel half gets: the text, then a NUL within the field.
    let mut field = [0xa5u8; MCONSOLE_MAX_DATA];
    req.fill_data(&mut field);
    assert_eq!(&field[..len], req.data);
    assert!(field[len..].iter().all(|&b| b == 0), "not NUL-padded");
    let nul = field.iter().position(|&b| b == 0).expect("a NUL");
    assert_eq!(&field[..nul], text);
    assert_eq!(lookup(&field), Some(req.index), "the kernel's lookup");
}

fn check_reply(text: &[u8], err: u32, more: u32) {
    let packets: Vec<_> = reply_packets(text, err, more).collect();
    assert_eq!(packets.len(), reply_packet_count(text.len()));
    assert!(!packets.is_empty(), "no packet");
    let mut joined = Vec::with_capacity(text.len());
    let mut buf = [0u8; PACKET_LEN];
    for (i, p) in packets.iter().enumerate() {
        let last = i + 1 == packets.len();
        assert!(p.data.len() <= REPLY_CHUNK, "packet {i} too long");
        if !last {
            assert_eq!(
                p.data.len(),
                REPLY_CHUNK,
                "short packet {i} before the last"
            );
        }
        assert_eq!(p.err, if i == 0 { err } else { 0 }, "err of packet {i}");
        assert_eq!(p.more, if last { more } else { 1 }, "more of packet {i}");
        let wire = p.encode(&mut buf);
        assert_eq!(wire.len(), HEADER_LEN + p.data.len() + 1);
        assert_eq!(wire.len(), p.wire_len());
        assert_eq!(word(wire, 0), p.err);
        assert_eq!(word(wire, 4), p.more);
        assert_eq!(word(wire, 8) as usize, p.data.len() + 1);
        assert_eq!(&wire[HEADER_LEN..wire.len() - 1], p.data);
        assert_eq!(wire[wire.len() - 1], 0);
        joined.extend_from_slice(p.data);
    }
    assert_eq!(joined, text, "the packets do not add up to the text");
    let sum: usize = packets.iter().map(|p| p.wire_len() - HEADER_LEN - 1).sum();
    assert_eq!(sum, text.len());
}

fn check_notify(data: &[u8], kind: u32) {
    let mut buf = [0u8; NOTIFY_LEN];
    let packet = encode_notify(kind, data, &mut buf);
    let n = data.len().min(MCONSOLE_MAX_DATA);
    assert_eq!(packet.len(), NOTIFY_HEADER_LEN + n);
    assert_eq!(word(packet, 0), MCONSOLE_MAGIC);
    assert_eq!(word(packet, 4), MCONSOLE_VERSION);
    assert_eq!(word(packet, 8), kind);
    assert_eq!(word(packet, 12) as usize, n);
    assert_eq!(&packet[NOTIFY_HEADER_LEN..], &data[..n]);
}
