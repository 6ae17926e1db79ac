// SPDX-License-Identifier: GPL-2.0
use std::ffi::CString;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

use super::test_support::{self as ts, ETHERTYPE};
use super::*;

/// The options of `spec`, split in place in a buffer leaked for the test.
fn args_of(spec: &str) -> Args<'static> {
    let mut buf = spec.as_bytes().to_vec();
    buf.push(0);
    let buf: &'static mut [u8] = buf.leak();
    parse_in_place(buf).unwrap_or_else(|e| panic!("{spec}: {}", e.describe(spec.as_bytes())))
}

/// [`check`] of `spec`, with the warnings.
fn checked(spec: &str) -> (Result<Config<'static>, String>, Vec<String>) {
    let args = args_of(spec);
    let mut warnings = Vec::new();
    let r = check(&args, &mut |w| warnings.push(w.to_string())).map_err(|e| e.to_string());
    (r, warnings)
}

fn good(spec: &str) -> Config<'static> {
    match checked(spec).0 {
        Ok(c) => c,
        Err(e) => panic!("{spec}: refused: {e}"),
    }
}

/// The refusal of `spec`, which must start with `option` (the option it
/// names) and contain each of `words`.
fn bad(spec: &str, option: &str, words: &[&str]) {
    let msg = match checked(spec).0 {
        Ok(c) => panic!("{spec}: accepted as {c:?}"),
        Err(e) => e,
    };
    assert!(
        msg.starts_with(&format!("{option}=")) || msg.starts_with(&format!("{option}:")),
        "{spec}: the refusal `{msg}` does not name {option}"
    );
    for w in words {
        assert!(msg.contains(w), "{spec}: `{msg}` lacks `{w}`");
    }
}

// ---------------------------------------------------------------------------
// splitting

#[test]
fn split_keeps_the_c_order_and_cuts_in_place() {
    let mut buf = b"transport=tap,ifname=tap0,depth=128,gro=1\0tail".to_vec();
    let args = parse_in_place(&mut buf).unwrap();
    let got: Vec<_> = args
        .iter()
        .map(|(n, v)| (n.to_str().unwrap(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("transport", "tap"),
            ("ifname", "tap0"),
            ("depth", "128"),
            ("gro", "1")
        ]
    );
    assert_eq!(args.get(b"depth"), Some(c"128"));
    assert_eq!(args.get(b"mtu"), None);
    // Every '=' and ',' became a NUL, as in C; bytes past the string are
    // untouched.
    assert_eq!(
        &buf,
        b"transport\x00tap\x00ifname\x00tap0\x00depth\x00128\x00gro\x001\x00tail"
    );
}

#[test]
fn split_takes_empty_pieces_and_values() {
    let (spans, n) = split(b",a=1,,b=,").unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        spans[0],
        Span {
            name: (1, 2),
            value: (3, 4)
        }
    );
    assert_eq!(
        spans[1],
        Span {
            name: (6, 7),
            value: (8, 8)
        }
    );
    assert_eq!(split(b"").unwrap().1, 0);
    // `a=` at the end is an empty value too (the C dropped it there).
    let mut buf = b"a=\0".to_vec();
    let args = parse_in_place(&mut buf).unwrap();
    assert_eq!(args.get(b"a"), Some(c""));
}

#[test]
fn split_refuses_what_the_c_dropped_or_overflowed() {
    let spec = b"transport=tap,ifname=a=b";
    let e = split(spec).unwrap_err();
    assert_eq!(
        e,
        SyntaxError::SecondEquals {
            name: (14, 20),
            at: 22
        }
    );
    assert!(
        e.describe(spec)
            .to_string()
            .starts_with("the value of ifname holds a second '='")
    );
    let spec = b"transport=tap,gro";
    let e = split(spec).unwrap_err();
    assert_eq!(
        e.describe(spec).to_string(),
        "option gro has no value (write gro=VALUE)"
    );
    assert_eq!(split(b"=x").unwrap_err(), SyntaxError::NoName { at: 0 });
    let many: Vec<String> = (0..21).map(|i| format!("o{i}=1")).collect();
    assert_eq!(
        split(many.join(",").as_bytes()).unwrap_err(),
        SyntaxError::TooMany
    );
    assert_eq!(split(many[..20].join(",").as_bytes()).unwrap().1, 20);
    // A trailing comma after twenty is fine (the C wrote past its arrays
    // only when a 21st name started).
    assert_eq!(
        split(format!("{},", many[..20].join(",")).as_bytes())
            .unwrap()
            .1,
        20
    );
    let mut unterminated = b"a=1".to_vec();
    assert_eq!(
        parse_in_place(&mut unterminated).unwrap_err(),
        SyntaxError::Unterminated
    );
}

#[test]
fn restore_undoes_the_cuts() {
    for spec in [
        "transport=tap,ifname=tap0",
        ",a=1,,b=,",
        "transport=raw,ifname=x,",
        "",
    ] {
        let mut buf = spec.as_bytes().to_vec();
        buf.push(0);
        let (spans, n) = split(spec.as_bytes()).unwrap();
        parse_in_place(&mut buf).unwrap();
        let len = spec.len();
        restore(&mut buf[..len], &spans[..n]);
        assert_eq!(&buf[..len], spec.as_bytes());
    }
}

// ---------------------------------------------------------------------------
// numbers

#[test]
fn kstrto_follows_the_kernel() {
    assert_eq!(kstrtoull(b"1500", 10), Some(1500));
    assert_eq!(kstrtoull(b"+7", 10), Some(7));
    assert_eq!(kstrtoull(b"7\n", 10), Some(7));
    assert_eq!(kstrtoull(b"7\n\n", 10), None);
    assert_eq!(kstrtoull(b" 7", 10), None);
    assert_eq!(kstrtoull(b"", 10), None);
    assert_eq!(kstrtoull(b"0x10", 10), None);
    assert_eq!(kstrtoull(b"12k", 10), None);
    assert_eq!(kstrtoull(b"-1", 10), None);
    assert_eq!(kstrtoull(b"18446744073709551615", 10), Some(u64::MAX));
    assert_eq!(kstrtoull(b"18446744073709551616", 10), None);
    // Base 0: 0x is hexadecimal, a leading 0 octal.
    assert_eq!(kstrtoull(b"0x1F", 0), Some(31));
    assert_eq!(kstrtoull(b"0X1f", 0), Some(31));
    assert_eq!(kstrtoull(b"010", 0), Some(8));
    assert_eq!(kstrtoull(b"09", 0), None);
    assert_eq!(kstrtoull(b"0", 0), Some(0));
    assert_eq!(kstrtoull(b"0x", 0), None);
    assert_eq!(kstrtoull(b"0xg", 0), None);
    assert_eq!(kstrtoull(b"0x10", 16), Some(16));
    assert_eq!(kstrtoll(b"-0x10", 0), Some(-16));
    assert_eq!(kstrtoll(b"-9223372036854775808", 10), Some(i64::MIN));
    assert_eq!(kstrtoll(b"-9223372036854775809", 10), None);
    assert_eq!(kstrtoll(b"9223372036854775808", 10), None);
    assert_eq!(kstrtoll(b"-+1", 10), None);
    assert_eq!(kstrtoint(b"-1", 0), Some(-1));
    assert_eq!(kstrtoint(b"0x7fffffff", 0), Some(i32::MAX));
    // The HOWTO's rx_session=0xffffffff: out of range for kstrtoint.
    assert_eq!(kstrtoint(b"0xffffffff", 0), None);
    assert_eq!(kstrtoint(b"-2147483648", 0), Some(i32::MIN));
}

#[test]
fn strtofd_follows_strtol() {
    assert_eq!(strtofd(b"3"), Some(3));
    assert_eq!(strtofd(b" \t+3"), Some(3));
    assert_eq!(strtofd(b"-0"), Some(0));
    assert_eq!(strtofd(b"2147483647"), Some(i32::MAX));
    for bad in [
        &b""[..],
        b" ",
        b"-1",
        b"3 ",
        b"3x",
        b"0x3",
        b"2147483648",
        b"99999999999999999999",
        b"+",
    ] {
        assert_eq!(strtofd(bad), None, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn macs_are_six_unicast_bytes() {
    assert_eq!(
        parse_mac(b"02:00:0a:0B:c:d"),
        Ok([2, 0, 0xa, 0xb, 0xc, 0xd])
    );
    for shape in [
        &b"02:00:00:00:00"[..],
        b"02:00:00:00:00:01:02",
        b"02:00:00:00:00:100",
        b"02-00-00-00-00-01",
        b"02:00:00:00:00:",
        b"0x2:00:00:00:00:01",
        b"",
    ] {
        assert!(
            parse_mac(shape)
                .unwrap_err()
                .starts_with("not an Ethernet address"),
            "{}",
            String::from_utf8_lossy(shape)
        );
    }
    assert!(
        parse_mac(b"01:00:5e:00:00:01")
            .unwrap_err()
            .contains("multicast")
    );
    assert!(parse_mac(b"0:0:0:0:0:0").unwrap_err().contains("zeros"));
}

// ---------------------------------------------------------------------------
// checking, transport by transport

#[test]
fn common_options_have_the_kernel_half_defaults() {
    let c = good("transport=tap");
    assert_eq!(
        c.common,
        Common {
            mac: None,
            mtu: DEFAULT_MTU,
            depth: DEFAULT_DEPTH,
            headroom: DEFAULT_HEADROOM,
            gro: false,
            vec: true,
            bpffile: None,
            bpfflash: false,
        }
    );
    let c = good(
        "transport=raw,ifname=p-veth0,mac=02:00:00:00:00:01,mtu=9000,depth=128,headroom=64,gro=1,vec=0,bpffile=/f,bpfflash=1",
    );
    assert_eq!(
        c.common,
        Common {
            mac: Some([2, 0, 0, 0, 0, 1]),
            mtu: 9000,
            depth: 128,
            headroom: 64,
            gro: true,
            vec: false,
            bpffile: Some(c"/f"),
            bpfflash: true,
        }
    );
    assert_eq!(good("transport=tap,mtu=576").common.mtu, 576);
    assert_eq!(good("transport=tap,mtu=65534").common.mtu, 65534);
    assert_eq!(good("transport=tap,depth=65536").common.depth, 65536);
    assert!(!good("transport=tap,gro=0").common.gro);
    assert!(good("transport=tap,vec=2").common.vec);
}

#[test]
fn common_options_refused_name_the_option() {
    bad("ifname=tap0", "transport", &["missing", "transport=raw"]);
    bad(
        "transport=tapx",
        "transport",
        &["tapx", "not a vector transport"],
    );
    bad("transport=TAP", "transport", &["not a vector transport"]);
    bad("transport=", "transport", &["not a vector transport"]);
    bad("transport=tap,mtu=abc", "mtu", &["abc", "not a number"]);
    bad(
        "transport=tap,mtu=100",
        "mtu",
        &["out of range (576 to 65534)"],
    );
    bad("transport=tap,mtu=65535", "mtu", &["out of range"]);
    bad("transport=tap,mtu=0x500", "mtu", &["decimal"]);
    bad(
        "transport=tap,depth=0",
        "depth",
        &["out of range (1 to 65536)"],
    );
    bad("transport=tap,depth=65537", "depth", &["out of range"]);
    bad("transport=tap,depth=12k", "depth", &["not a number"]);
    bad("transport=tap,headroom=-1", "headroom", &["not a number"]);
    bad(
        "transport=tap,headroom=2147483648",
        "headroom",
        &["out of range"],
    );
    bad("transport=tap,gro=yes", "gro", &["not a number"]);
    bad("transport=tap,vec=off", "vec", &["not a number"]);
    bad("transport=tap,bpfflash=true", "bpfflash", &["not a number"]);
    bad("transport=tap,bpffile=", "bpffile", &["empty"]);
    bad(
        "transport=tap,mac=02:00:00:00:00",
        "mac",
        &["not an Ethernet address"],
    );
    bad("transport=tap,mac=ff:ff:ff:ff:ff:ff", "mac", &["multicast"]);
    bad("transport=tap,mac=00:00:00:00:00:00", "mac", &["zeros"]);
    bad(
        "transport=tap,ifname=a,ifname=b",
        "ifname",
        &["ifname=b", "given twice", "ifname=a"],
    );
}

#[test]
fn tap_hybrid_and_raw() {
    assert_eq!(
        good("transport=tap,ifname=tap0,ifup=/sbin/up").host,
        Host::Tap {
            ifname: Some(c"tap0"),
            ifup: Some(c"/sbin/up")
        }
    );
    assert_eq!(
        good("transport=tap").host,
        Host::Tap {
            ifname: None,
            ifup: None
        }
    );
    assert_eq!(
        good("transport=hybrid,ifname=tap0").host,
        Host::Hybrid {
            ifname: c"tap0",
            ifup: None
        }
    );
    assert_eq!(
        good("transport=raw,ifname=123456789012345").host,
        Host::Raw {
            ifname: c"123456789012345",
            ifup: None
        }
    );
    bad("transport=raw", "ifname", &["missing", "raw transport"]);
    bad(
        "transport=hybrid",
        "ifname",
        &["missing", "hybrid transport"],
    );
    bad(
        "transport=raw,ifname=1234567890123456",
        "ifname",
        &["longer than 15 bytes"],
    );
    bad("transport=tap,ifname=", "ifname", &["empty"]);
    bad("transport=tap,ifup=", "ifup", &["empty"]);
}

#[test]
fn gre() {
    let c = good("transport=gre,src=192.168.129.1,dst=192.168.128.1");
    let Host::Gre(ip, gre) = c.host else {
        panic!("{c:?}")
    };
    assert_eq!(
        ip,
        IpConfig {
            v6: false,
            udp: false,
            src: c"192.168.129.1",
            dst: c"192.168.128.1",
            srcport: None,
            dstport: None
        }
    );
    assert_eq!(
        gre,
        GreConfig {
            keys: None,
            sequence: false,
            pin_sequence: false,
            v6: false
        }
    );
    let c =
        good("transport=gre,src=::1,dst=::1,v6=1,rx_key=0x10,tx_key=-1,sequence=1,pin_sequence=1");
    let Host::Gre(ip, gre) = c.host else {
        panic!("{c:?}")
    };
    assert!(ip.v6);
    assert_eq!(
        gre,
        GreConfig {
            keys: Some((0x10, 0xffff_ffff)),
            sequence: true,
            pin_sequence: true,
            v6: true
        }
    );
    bad(
        "transport=gre,dst=1.2.3.4",
        "src",
        &["missing", "local address"],
    );
    bad(
        "transport=gre,src=1.2.3.4",
        "dst",
        &["missing", "other end"],
    );
    bad(
        "transport=gre,src=a,dst=b,v6=yes",
        "v6",
        &["yes", "not a number"],
    );
    bad(
        "transport=gre,src=a,dst=b,rx_key=5",
        "rx_key",
        &["without tx_key"],
    );
    bad(
        "transport=gre,src=a,dst=b,tx_key=5",
        "tx_key",
        &["without rx_key"],
    );
    bad(
        "transport=gre,src=a,dst=b,rx_key=0xffffffff,tx_key=1",
        "rx_key",
        &["out of range", "0xffffffff is -1"],
    );
    bad(
        "transport=gre,src=a,dst=b,rx_key=k,tx_key=1",
        "rx_key",
        &["not a number"],
    );
    bad(
        "transport=gre,src=a,dst=b,sequence=on",
        "sequence",
        &["not a number"],
    );
    bad(
        "transport=gre,src=a,dst=b,srcport=5",
        "srcport",
        &["GRE has no ports"],
    );
    bad(
        "transport=gre,src=a,dst=b,dstport=5",
        "dstport",
        &["GRE has no ports"],
    );
}

#[test]
fn l2tpv3() {
    let spec = "transport=l2tpv3,udp=1,src=127.0.0.1,dst=127.0.0.1,srcport=1706,dstport=1707,depth=128,rx_session=-1,tx_session=0xffff";
    let c = good(spec);
    let Host::L2tpv3(ip, l2) = c.host else {
        panic!("{c:?}")
    };
    assert_eq!(
        ip,
        IpConfig {
            v6: false,
            udp: true,
            src: c"127.0.0.1",
            dst: c"127.0.0.1",
            srcport: Some(c"1706"),
            dstport: Some(c"1707")
        }
    );
    assert_eq!(
        l2,
        L2tpv3Config {
            rx_session: 0xffff_ffff,
            tx_session: 0xffff,
            cookie64: false,
            cookies: None,
            counter: false,
            pin_counter: false,
            udp: true,
            v6: false
        }
    );
    let c = good(
        "transport=l2tpv3,src=a,dst=b,rx_session=1,tx_session=2,cookie64=1,rx_cookie=0xffffffffffffffff,tx_cookie=3,counter=1,pin_counter=0,v6=1",
    );
    let Host::L2tpv3(ip, l2) = c.host else {
        panic!("{c:?}")
    };
    assert!(ip.v6 && !ip.udp && ip.srcport.is_none());
    assert_eq!(l2.cookies, Some((u64::MAX, 3)));
    assert!(l2.cookie64 && l2.counter && !l2.pin_counter && l2.v6);
    // The HOWTO's example, as it is written: refused, with the fix.
    bad(
        "transport=l2tpv3,udp=1,src=a,dst=b,srcport=1,dstport=2,rx_session=0xffffffff,tx_session=0xffff",
        "rx_session",
        &["0xffffffff", "out of range", "(0xffffffff is -1)"],
    );
    bad(
        "transport=l2tpv3,src=a,dst=b",
        "rx_session",
        &["missing", "tx_session"],
    );
    bad(
        "transport=l2tpv3,src=a,dst=b,tx_session=1",
        "tx_session",
        &["without rx_session"],
    );
    bad(
        "transport=l2tpv3,src=a,dst=b,rx_session=1,tx_session=x",
        "tx_session",
        &["not a number"],
    );
    let s = "transport=l2tpv3,src=a,dst=b,rx_session=1,tx_session=2";
    bad(
        &format!("{s},rx_cookie=1"),
        "rx_cookie",
        &["without tx_cookie"],
    );
    bad(
        &format!("{s},rx_cookie=0x100000000,tx_cookie=1"),
        "rx_cookie",
        &["out of range (0 to 4294967295)", "cookie64=1"],
    );
    bad(
        &format!("{s},rx_cookie=zz,tx_cookie=1"),
        "rx_cookie",
        &["not a number"],
    );
    bad(
        &format!("{s},udp=1,dstport=2"),
        "srcport",
        &["missing", "udp=1"],
    );
    bad(&format!("{s},udp=1,srcport=2"), "dstport", &["missing"]);
    bad(
        &format!("{s},srcport=2"),
        "srcport",
        &["only for l2tpv3 over UDP"],
    );
    bad(&format!("{s},udp=maybe"), "udp", &["not a number"]);
    bad(&format!("{s},counter=x"), "counter", &["not a number"]);
    bad(&format!("{s},cookie64=x"), "cookie64", &["not a number"]);
}

#[test]
fn bess_fd_and_vde() {
    assert_eq!(
        good("transport=bess,src=/tmp/a,dst=/tmp/b").host,
        Host::Bess {
            src: Some(c"/tmp/a"),
            dst: c"/tmp/b"
        }
    );
    let long = "x".repeat(MAX_UN_LEN);
    assert_eq!(
        good(&format!("transport=bess,dst={long}")).host,
        Host::Bess {
            src: None,
            dst: Box::leak(CString::new(long.clone()).unwrap().into_boxed_c_str())
        }
    );
    bad("transport=bess,src=/a", "dst", &["missing", "Unix socket"]);
    bad(
        &format!("transport=bess,dst={long}y"),
        "dst",
        &["longer than 107 bytes"],
    );
    bad(
        &format!("transport=bess,dst=/a,src={long}y"),
        "src",
        &["longer than 107"],
    );

    assert_eq!(good("transport=fd,fd=3").host, Host::Fd { fd: 3 });
    bad("transport=fd", "fd", &["missing", "inherited descriptor"]);
    bad("transport=fd,fd=-1", "fd", &["-1", "descriptor number"]);
    bad("transport=fd,fd=3x", "fd", &["not a number"]);

    assert_eq!(
        good("transport=vde,vnl=tap://tap0,port=3").host,
        Host::Vde(VdeConfig {
            vnl: Some(c"tap://tap0"),
            descr: None,
            port: Some(c"3"),
            mode: None,
            group: None
        })
    );
    bad("transport=vde,descr=", "descr", &["empty"]);
}

#[test]
fn options_nobody_reads_are_warnings() {
    let (r, w) = checked(
        "transport=l2tpv3,udp=1,src=a,dst=b,srcport=1,dstport=2,src_port=1,rx_session=1,tx_session=2,ifname=x,colour=blue",
    );
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        w,
        [
            "unknown option src_port ignored (did you mean srcport?)",
            "option ifname ignored: the l2tpv3 transport does not use it",
            "unknown option colour ignored",
        ]
    );
    // Unused options are not checked: the transport never reads them.
    let (r, w) = checked("transport=tap,fd=,txkey=1");
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        w,
        [
            "option fd ignored: the tap transport does not use it",
            "unknown option txkey ignored (did you mean tx_key?)",
        ]
    );
    assert!(checked("transport=gre,src=a,dst=b,udp=1").1[0].contains("udp ignored"));
}

#[test]
fn subjects_name_the_host_side() {
    let s = |spec| good(spec).subject().to_string();
    assert_eq!(s("transport=tap,ifname=tap0"), "tap transport, ifname=tap0");
    assert_eq!(s("transport=tap"), "tap transport");
    assert_eq!(s("transport=fd,fd=4"), "fd transport, fd=4");
    assert_eq!(s("transport=gre,src=a,dst=b"), "gre transport, dst=b");
    assert_eq!(s("transport=vde"), "vde transport");
}

// ---------------------------------------------------------------------------
// header layouts (vector_transports.c)

fn gre_of(spec: &str) -> GreLayout {
    match good(spec).host {
        Host::Gre(_, g) => g.layout(),
        h => panic!("{h:?}"),
    }
}

fn l2tp_of(spec: &str) -> L2tpv3Layout {
    match good(spec).host {
        Host::L2tpv3(_, l) => l.layout(),
        h => panic!("{h:?}"),
    }
}

#[test]
fn gre_headers() {
    let base = "transport=gre,src=a,dst=b";
    let l = gre_of(base);
    assert_eq!((l.header_size, l.rx_header_size, l.flags), (4, 24, 0));
    let mut h = [0u8; 12];
    let mut seq = 0;
    l.form(&mut h, &mut seq);
    assert_eq!(&h[..4], &[0, 0, 0x65, 0x58]);
    let mut pkt = vec![0x45u8; IPV4_HEADER_LEN];
    pkt.extend_from_slice(&h[..4]);
    assert_eq!(l.verify(&pkt), Ok(()));
    assert_eq!(l.verify(&h[..4]), Err(HeaderMismatch::Short));

    // Keys and sequence numbers, on IPv6: no IP header on receive.
    let l = gre_of(&format!(
        "{base},v6=1,rx_key=0x01020304,tx_key=-2,sequence=1"
    ));
    assert_eq!(
        (
            l.header_size,
            l.rx_header_size,
            l.key_offset,
            l.sequence_offset
        ),
        (12, 12, 4, 8)
    );
    assert_eq!(l.flags, GRE_MODE_KEY | GRE_MODE_SEQUENCE);
    let mut seq = 41;
    l.form(&mut h, &mut seq);
    assert_eq!(
        h,
        [0x30, 0, 0x65, 0x58, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 42]
    );
    assert_eq!(seq, 42);
    // What the other end sends carries our rx key.
    let mut theirs = h;
    theirs[4..8].copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(l.verify(&theirs), Ok(()));
    assert_eq!(
        l.verify(&h),
        Err(HeaderMismatch::Key {
            expected: 0x0102_0304,
            got: 0xffff_fffe
        })
    );
    let mut wrong = theirs;
    wrong[0] = 0;
    assert!(matches!(l.verify(&wrong), Err(HeaderMismatch::Type { .. })));

    // A pinned sequence is always 0, and the counter stays.
    let l = gre_of(&format!("{base},sequence=1,pin_sequence=1"));
    assert_eq!((l.header_size, l.sequence_offset), (8, 4));
    let mut seq = 7;
    l.form(&mut h, &mut seq);
    assert_eq!((&h[..8], seq), (&[0x10, 0, 0x65, 0x58, 0, 0, 0, 0][..], 7));
}

#[test]
fn l2tpv3_headers() {
    let base = "transport=l2tpv3,src=a,dst=b,rx_session=0x11,tx_session=0x22";
    let l = l2tp_of(base);
    assert_eq!(
        (l.header_size, l.rx_header_size, l.session_offset),
        (4, 24, 0)
    );
    let mut h = [0u8; 24];
    let mut counter = 0;
    l.form(&mut h, &mut counter);
    assert_eq!(&h[..4], &[0, 0, 0, 0x22]);

    // UDP: the data-packet word first, everything after it moves by 4;
    // no IP header on receive.
    let udp =
        "transport=l2tpv3,udp=1,src=a,dst=b,srcport=1,dstport=2,rx_session=0x11,tx_session=0x22";
    let l = l2tp_of(&format!(
        "{udp},rx_cookie=0xaabbccdd,tx_cookie=0x01020304,counter=1"
    ));
    assert_eq!(
        (
            l.header_size,
            l.rx_header_size,
            l.session_offset,
            l.cookie_offset,
            l.counter_offset
        ),
        (16, 16, 4, 8, 12)
    );
    let mut counter = 9;
    l.form(&mut h, &mut counter);
    assert_eq!(
        &h[..16],
        &[0, 3, 0, 0, 0, 0, 0, 0x22, 1, 2, 3, 4, 0, 0, 0, 10]
    );
    let mut theirs = h;
    theirs[4..8].copy_from_slice(&0x11u32.to_be_bytes());
    theirs[8..12].copy_from_slice(&0xaabb_ccddu32.to_be_bytes());
    assert_eq!(l.verify(&theirs[..16]), Ok(()));
    assert_eq!(
        l.verify(&h[..16]),
        Err(HeaderMismatch::Cookie {
            expected: 0xaabb_ccdd,
            got: 0x0102_0304
        })
    );
    theirs[7] = 0x12;
    assert_eq!(
        l.verify(&theirs[..16]),
        Err(HeaderMismatch::Session {
            expected: 0x11,
            got: 0x12
        })
    );

    // 64-bit cookies over raw IPv4, pinned counter.
    let l = l2tp_of(&format!(
        "{base},cookie64=1,rx_cookie=1,tx_cookie=0x0102030405060708,counter=1,pin_counter=1"
    ));
    assert_eq!(
        (
            l.header_size,
            l.rx_header_size,
            l.cookie_offset,
            l.counter_offset
        ),
        (16, 36, 4, 12)
    );
    let mut counter = 5;
    l.form(&mut h, &mut counter);
    assert_eq!(
        &h[..16],
        &[0, 0, 0, 0x22, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0]
    );
    assert_eq!(counter, 5);
    let mut pkt = vec![0x45u8; IPV4_HEADER_LEN];
    pkt.extend_from_slice(&[0, 0, 0, 0x11, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(l.verify(&pkt), Ok(()));
}

// ---------------------------------------------------------------------------
// opening

#[test]
fn tap_names_follow_the_template() {
    let mut seed = 0x1234_5678;
    let a = IfName::random_tap(&mut seed);
    let b = IfName::random_tap(&mut seed);
    assert_ne!(a, b);
    for n in [a, b] {
        let s = n.as_cstr().to_bytes();
        assert_eq!(s.len(), 9);
        assert!(s.starts_with(b"tap"));
        assert!(s[3..].iter().all(|c| TAP_PADCHAR.contains(c)), "{n}");
    }
    assert!(IfName::new(c"123456789012345").is_some());
    assert!(IfName::new(c"1234567890123456").is_none());
}

#[test]
fn vde_argv_is_packed() {
    let c = good("transport=vde,vnl=vde:///tmp/switch,mode=0600,group=net");
    let Host::Vde(v) = c.host else { panic!() };
    let argv = vde_argv(&v, c"seqpacket://9");
    let words: Vec<_> = argv
        .iter()
        .map_while(|a| a.map(|s| s.to_str().unwrap()))
        .collect();
    assert_eq!(
        words,
        [
            "vde_plug",
            "--descr",
            "UML",
            "--mod2",
            "0600",
            "--group2",
            "net",
            "seqpacket://9",
            "vde:///tmp/switch"
        ]
    );
    // Every option: exactly the C's twelve slots, NULL last.
    let c = good("transport=vde,vnl=v,descr=d,port=p,mode=m,group=g");
    let Host::Vde(v) = c.host else { panic!() };
    let argv = vde_argv(&v, c"s");
    assert_eq!(argv.iter().filter(|a| a.is_some()).count(), 11);
    assert!(argv[11].is_none());
}

#[test]
fn resolve_names_the_failure() {
    // SAFETY: addrinfo is plain old data.
    let mut hints: libc::addrinfo = unsafe { core::mem::zeroed() };
    hints.ai_family = libc::AF_INET;
    hints.ai_socktype = libc::SOCK_DGRAM;
    let (family, socktype, _, r) = resolve(c"127.0.0.1", Some(c"1707"), &hints).unwrap();
    assert_eq!((family, socktype), (libc::AF_INET, libc::SOCK_DGRAM));
    assert_eq!(r.port(), Some(1707));
    assert_eq!(r.as_bytes().len(), size_of::<libc::sockaddr_in>());
    assert_eq!(&r.as_bytes()[4..8], &[127, 0, 0, 1]);
    // A port for a raw socket: what the C met with srcport on gre.
    hints.ai_socktype = libc::SOCK_RAW;
    hints.ai_protocol = IPPROTO_GRE;
    let (code, _) = resolve(c"127.0.0.1", Some(c"5"), &hints).unwrap_err();
    assert_eq!(code, libc::EAI_SERVICE);
    let e = OpenError::Resolve {
        option: "src",
        code,
        errno: Errno::UnknownErrno,
    };
    assert!(e.to_string().starts_with("cannot resolve src: "), "{e}");
    // An IPv6 address with an IPv4 device.
    hints.ai_socktype = libc::SOCK_DGRAM;
    hints.ai_protocol = 0;
    assert!(resolve(c"::1", None, &hints).is_err());
}

/// Sends `frame` behind `header` on `fd` to `to` (one sendmmsg of two
/// buffers, as the kernel half's queues do).
fn send_two(fd: RawFd, header: &[u8], frame: &[u8], to: Option<&Remote>) -> nix::Result<usize> {
    let mut iov = [
        libc::iovec {
            iov_base: header.as_ptr().cast_mut().cast(),
            iov_len: header.len(),
        },
        libc::iovec {
            iov_base: frame.as_ptr().cast_mut().cast(),
            iov_len: frame.len(),
        },
    ];
    // SAFETY: mmsghdr is plain old data.
    let mut m: libc::mmsghdr = unsafe { core::mem::zeroed() };
    if let Some(to) = to {
        m.msg_hdr.msg_name = to.as_bytes().as_ptr().cast_mut().cast();
        m.msg_hdr.msg_namelen = to.as_bytes().len() as libc::socklen_t;
    }
    m.msg_hdr.msg_iov = iov.as_mut_ptr();
    m.msg_hdr.msg_iovlen = 2;
    // SAFETY: one message whose buffers live across the call.
    unsafe { sendmmsg(fd, &mut m, 1, 0) }
}

/// One packet from `fd` (one recvmmsg of one buffer).
fn recv_one(fd: RawFd) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; 2048];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: mmsghdr is plain old data.
    let mut m: libc::mmsghdr = unsafe { core::mem::zeroed() };
    m.msg_hdr.msg_iov = &mut iov;
    m.msg_hdr.msg_iovlen = 1;
    // SAFETY: one message whose buffer lives across the call.
    match unsafe { recvmmsg(fd, &mut m, 1, libc::MSG_DONTWAIT as c_uint) } {
        Ok(1) => {
            buf.truncate(m.msg_len as usize);
            Ok(buf)
        }
        other => Err(format!("recvmmsg: {other:?}")),
    }
}

/// The local port of socket `fd`.
fn local_port(fd: RawFd) -> u16 {
    // SAFETY: sockaddr_storage is plain old data.
    let mut ss: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: a sockaddr_storage and its length.
    let rc = unsafe { libc::getsockname(fd, (&raw mut ss).cast(), &mut len) };
    assert_eq!(rc, 0);
    // SAFETY: reinterprets the first bytes as a sockaddr_in (port at the same place for v6).
    u16::from_be(unsafe { (*(&raw const ss).cast::<libc::sockaddr_in>()).sin_port })
}

#[test]
fn l2tpv3_over_udp_on_loopback() {
    // Unprivileged: B first (with a dummy peer port), then A aimed at B,
    // then B re-aimed at A.
    let spec = |dstport: u16| {
        format!(
            "transport=l2tpv3,udp=1,src=127.0.0.1,srcport=0,dst=127.0.0.1,dstport={dstport},rx_session=0x11,tx_session=0x11,rx_cookie=7,tx_cookie=7,counter=1"
        )
    };
    let b_cfg = good(&spec(9));
    let b = open_transport(&b_cfg, 0).unwrap();
    let b_port = local_port(b.fds.rx());
    let a_cfg = good(&spec(b_port));
    let a = open_transport(&a_cfg, 0).unwrap();
    let a_port = local_port(a.fds.rx());
    let Fds::Same(_) = a.fds else {
        panic!("one socket")
    };
    assert_eq!(a.remote.unwrap().port(), Some(b_port));
    let mut b_remote = b.remote.unwrap();
    b_remote.bytes[2..4].copy_from_slice(&a_port.to_be_bytes());
    // Close-on-exec, unlike the C's.
    // SAFETY: F_GETFD takes no argument.
    let fdflags = unsafe { libc::fcntl(a.fds.rx(), libc::F_GETFD) };
    assert_eq!(fdflags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);

    let layout = match a_cfg.host {
        Host::L2tpv3(_, l) => l.layout(),
        _ => unreachable!(),
    };
    let frame = ts::frame([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], b"hello over l2tpv3");
    for (from, to, remote) in [(&a, &b, a.remote.as_ref()), (&b, &a, Some(&b_remote))] {
        let mut header = [0u8; 16];
        let mut counter = 0;
        layout.form(&mut header, &mut counter);
        assert_eq!(
            send_two(from.fds.tx(), &header[..layout.header_size], &frame, remote),
            Ok(1)
        );
        assert!(ts::readable(to.fds.rx(), 2000), "nothing arrived");
        let got = recv_one(to.fds.rx()).unwrap();
        assert_eq!(got.len(), layout.header_size + frame.len());
        assert_eq!(&got[..4], &L2TPV3_DATA_PACKET.to_be_bytes());
        assert_eq!(
            &got[..16],
            &[0, 3, 0, 0, 0, 0, 0, 0x11, 0, 0, 0, 7, 0, 0, 0, 1]
        );
        assert_eq!(layout.verify(&got), Ok(()));
        assert_eq!(&got[layout.rx_header_size..], &frame[..]);
    }
}

#[test]
fn bess_connects_to_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("bess");
    let src = dir.path().join("uml");
    // BESS uses sequential packets (std's listener is a stream socket).
    // SAFETY: no memory arguments.
    let l = owned(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0) });
    let cdst = CString::new(dst.to_str().unwrap()).unwrap();
    let addr = unix_addr(&cdst);
    // SAFETY: a sockaddr_un of its size; no memory arguments for listen.
    unsafe {
        assert_eq!(
            libc::bind(l.as_raw_fd(), (&raw const addr).cast(), UN_LEN),
            0
        );
        assert_eq!(libc::listen(l.as_raw_fd(), 1), 0);
    }
    let csrc = CString::new(src.to_str().unwrap()).unwrap();
    let (fd, remote) = open_bess(Some(&csrc), &cdst).unwrap();
    assert_eq!(remote.as_bytes().len(), size_of::<libc::sockaddr_un>());
    assert!(src.exists(), "bound to src");
    // SAFETY: no address wanted.
    let peer = unsafe { libc::accept(l.as_raw_fd(), core::ptr::null_mut(), core::ptr::null_mut()) };
    let peer = owned(peer);
    let frame = ts::frame([2; 6], [4; 6], b"bess");
    assert_eq!(send_two(fd.as_raw_fd(), &[], &frame, Some(&remote)), Ok(1));
    assert_eq!(recv_one(peer.as_raw_fd()).unwrap(), frame);

    // Nobody listening at dst.
    let missing = CString::new(dir.path().join("none").to_str().unwrap()).unwrap();
    assert_eq!(
        open_bess(None, &missing).unwrap_err(),
        OpenError::Host {
            step: Step::ConnectDst,
            errno: Errno::ENOENT
        }
    );
}

#[test]
fn fd_transport_takes_an_open_descriptor() {
    let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
    let fd = OwnedFd::from(a).into_raw_fd();
    let cfg = good(&format!("transport=fd,fd={fd}"));
    let opened = open_transport(&cfg, 0).unwrap();
    assert_eq!((opened.fds.rx(), opened.fds.tx()), (fd, fd));
    drop(opened);
    // Closed now: refused, and not closed again.
    assert_eq!(
        open_transport(&cfg, 0).unwrap_err(),
        OpenError::Host {
            step: Step::CheckFd(fd),
            errno: Errno::EBADF
        }
    );
}

/// A classic BPF program as a `bpffile` holds it.
fn bpf_bytes(insns: &[libc::sock_filter]) -> Vec<u8> {
    insns
        .iter()
        .flat_map(|i| {
            let mut b = i.code.to_ne_bytes().to_vec();
            b.extend_from_slice(&[i.jt, i.jf]);
            b.extend_from_slice(&i.k.to_ne_bytes());
            b
        })
        .collect()
}

#[test]
fn bpf_files_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| CString::new(dir.path().join(name).to_str().unwrap()).unwrap();
    let prog = default_bpf(&[2, 0, 0, 0x12, 0x34, 0x56]);
    std::fs::write(dir.path().join("ok"), bpf_bytes(&prog)).unwrap();
    let (fd, size) = open_bpf_file(&path("ok")).unwrap();
    assert_eq!(size, 48);
    let mut buf = vec![0u8; size];
    read_bpf(fd.as_raw_fd(), &mut buf).unwrap();
    assert_eq!(buf, bpf_bytes(&prog));
    // A file that shrank after its size was taken reads short.
    let mut more = vec![0u8; size + 8];
    let (fd, _) = open_bpf_file(&path("ok")).unwrap();
    assert_eq!(
        read_bpf(fd.as_raw_fd(), &mut more),
        Err(BpfError::Short { size: 56, got: 48 })
    );

    std::fs::write(dir.path().join("empty"), b"").unwrap();
    std::fs::write(dir.path().join("ragged"), [0u8; 13]).unwrap();
    std::fs::write(dir.path().join("huge"), vec![0u8; (BPF_MAXINSNS + 1) * 8]).unwrap();
    assert_eq!(open_bpf_file(&path("empty")).unwrap_err(), BpfError::Empty);
    assert_eq!(
        open_bpf_file(&path("ragged")).unwrap_err(),
        BpfError::Ragged { size: 13 }
    );
    assert_eq!(
        open_bpf_file(&path("huge")).unwrap_err(),
        BpfError::TooLong { insns: 4097 }
    );
    assert_eq!(
        open_bpf_file(&path("none")).unwrap_err(),
        BpfError::Open(Errno::ENOENT)
    );
    assert_eq!(
        open_bpf_file(&CString::new(dir.path().to_str().unwrap()).unwrap()).unwrap_err(),
        BpfError::NotRegular
    );
    assert!(
        BpfError::Ragged { size: 13 }
            .to_string()
            .contains("not a whole number of 8-byte")
    );
}

#[test]
fn the_default_filter_drops_our_own_frames() {
    let p = default_bpf(&[0x02, 0x00, 0x0a, 0x0b, 0x0c, 0x0d]);
    let k: Vec<u32> = p.iter().map(|i| i.k).collect();
    assert_eq!(k, [8, 0x000a_0b0c_u32 << 8 | 0x0d, 6, 0x0200, 0, 0x40000]);
    let codes: Vec<(u16, u8, u8)> = p.iter().map(|i| (i.code, i.jt, i.jf)).collect();
    assert_eq!(
        codes,
        [
            (0x20, 0, 0),
            (0x15, 0, 3),
            (0x28, 0, 0),
            (0x15, 0, 1),
            (6, 0, 0),
            (6, 0, 0)
        ]
    );
}

/// A UDP socket pair on loopback: (receiver, sender connected to it).
fn udp_pair() -> (std::net::UdpSocket, std::net::UdpSocket) {
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    rx.set_nonblocking(true).unwrap();
    (rx, tx)
}

#[test]
fn filters_attach_and_detach() {
    let (rx, tx) = udp_pair();
    let drop_all = [libc::sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: drop_all.as_ptr().cast_mut(),
    };
    // SAFETY: a one-instruction program.
    unsafe { attach_filter(rx.as_raw_fd(), &prog) }.unwrap();
    tx.send(b"dropped").unwrap();
    assert_eq!(
        ts::nothing_matching(rx.as_raw_fd(), 200, recv_one, |_| true),
        Ok(true),
        "the filter let it through"
    );
    // SAFETY: as above.
    unsafe { detach_filter(rx.as_raw_fd(), &prog) }.unwrap();
    tx.send(b"kept").unwrap();
    assert!(ts::readable(rx.as_raw_fd(), 2000));
    assert_eq!(recv_one(rx.as_raw_fd()).unwrap(), b"kept");
    // Nothing attached any more.
    // SAFETY: as above.
    let r = unsafe { detach_filter(rx.as_raw_fd(), &prog) };
    assert_eq!(r, Err(Errno::ENOENT));
    let bad = libc::sock_fprog {
        len: 0,
        filter: drop_all.as_ptr().cast_mut(),
    };
    // SAFETY: an empty program, which the host refuses.
    let r = unsafe { attach_filter(rx.as_raw_fd(), &bad) };
    assert_eq!(r, Err(Errno::EINVAL));
}

#[test]
fn packet_io_retries_nothing_but_eintr() {
    let (rx, _tx) = udp_pair();
    assert_eq!(
        recv_one(rx.as_raw_fd()).unwrap_err(),
        "recvmmsg: Err(EAGAIN)"
    );
    // SAFETY: a NULL vector of no messages.
    let r = unsafe { sendmmsg(-1, core::ptr::null_mut(), 0, 0) };
    assert_eq!(r, Err(Errno::EBADF));
    let buf = [0u8; 4];
    let iov = libc::iovec {
        iov_base: buf.as_ptr().cast_mut().cast(),
        iov_len: 4,
    };
    // SAFETY: one buffer.
    assert_eq!(unsafe { writev(-1, &iov, 1) }, Err(Errno::EBADF));
}

// ---------------------------------------------------------------------------
// in a network namespace of the test's own (root only)

/// Reads one frame with its vnet header from tap `fd`.
fn read_tap(fd: RawFd) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; 2048];
    let n = file::read(fd, &mut buf).map_err(|e| format!("read tap: {e}"))?;
    buf.truncate(n);
    Ok(buf)
}

/// Whether `p` (after `skip` bytes) is a test frame carrying `payload`.
fn is_ours(p: &[u8], skip: usize, payload: &[u8]) -> bool {
    p.len() >= skip + 14
        && p[skip + 12..skip + 14] == ETHERTYPE.to_be_bytes()
        && p[skip + 14..].starts_with(payload)
}

#[test]
fn tap_frames_both_ways_in_a_namespace() {
    ts::in_netns("tap_frames_both_ways_in_a_namespace", || {
        let name = IfName::new(c"umlvec0").unwrap();
        let tap = open_tap(&name).map_err(|e| e.to_string())?;
        ts::ensure(
            tun_features(tap.as_raw_fd()).is_ok_and(|f| f & libc::IFF_VNET_HDR as c_uint != 0),
            || "no vnet headers".into(),
        )?;
        ts::set_up("umlvec0")?;
        let sock = open_packet_rx(&name).map_err(|e| e.to_string())?;
        // Guest to host: written with a vnet header, seen by the packet
        // socket as received on umlvec0.
        let frame = ts::frame([0xff; 6], [2, 0, 0, 0, 0, 1], b"to host");
        let mut out = vec![0u8; VIRTIO_NET_HDR_LEN];
        out.extend_from_slice(&frame);
        file::write(tap.as_raw_fd(), &out).map_err(|e| format!("write tap: {e}"))?;
        let got = ts::recv_matching(sock.as_raw_fd(), recv_one, |p| is_ours(p, 0, b"to host"))?;
        ts::ensure(got == frame, || format!("got {got:02x?}"))?;
        // Host to guest: sent on umlvec0, read from the tap with a vnet header.
        let tx = open_packet_tx(&name).map_err(|e| e.to_string())?;
        let frame = ts::frame([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], b"to guest");
        send_two(tx.as_raw_fd(), &[], &frame, None).map_err(|e| e.to_string())?;
        let got = ts::recv_matching(tap.as_raw_fd(), read_tap, |p| {
            is_ours(p, VIRTIO_NET_HDR_LEN, b"to guest")
        })?;
        ts::ensure(got[VIRTIO_NET_HDR_LEN..] == frame[..], || {
            format!("got {got:02x?}")
        })?;
        // Made-up names.
        let (fd, made_up) = open_random_tap(42).map_err(|e| e.to_string())?;
        ts::ensure(made_up.as_cstr().to_bytes().starts_with(b"tap"), || {
            format!("{made_up}")
        })?;
        let again = IfName::new(made_up.as_cstr()).unwrap();
        // Taken while fd is open: TUNSETIFF refuses a second attach.
        ts::ensure(
            matches!(
                open_tap(&again),
                Err(OpenError::Host {
                    step: Step::AttachTap(_),
                    ..
                })
            ),
            || "a second attach was allowed".into(),
        )?;
        drop(fd);
        Ok(())
    });
}

#[test]
fn gre_over_loopback_in_a_namespace() {
    ts::in_netns("gre_over_loopback_in_a_namespace", || {
        ts::set_up("lo")?;
        let cfg = good("transport=gre,src=127.0.0.1,dst=127.0.0.1,rx_key=5,tx_key=5,sequence=1");
        let Host::Gre(ip, gre) = cfg.host else {
            unreachable!()
        };
        let (fd, remote) = open_ip(Transport::Gre, &ip).map_err(|e| e.to_string())?;
        let l = gre.layout();
        let mut header = [0u8; 12];
        let mut seq = 0;
        l.form(&mut header, &mut seq);
        let frame = ts::frame([2; 6], [4; 6], b"gre");
        send_two(
            fd.as_raw_fd(),
            &header[..l.header_size],
            &frame,
            Some(&remote),
        )
        .map_err(|e| e.to_string())?;
        // A raw IPv4 socket reads the IP header too.
        let got = ts::recv_matching(fd.as_raw_fd(), recv_one, |p| {
            is_ours(p, l.rx_header_size, b"gre")
        })?;
        ts::ensure(l.verify(&got).is_ok(), || format!("{:?}", l.verify(&got)))?;
        ts::ensure(got[l.rx_header_size..] == frame[..], || {
            format!("{got:02x?}")
        })
    });
}

#[test]
fn raw_sockets_on_a_veth_pair_in_a_namespace() {
    ts::in_netns("raw_sockets_on_a_veth_pair_in_a_namespace", || {
        if !ts::ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"])? {
            return Ok(()); // no ip(8): nothing to pair with
        }
        ts::set_up("va")?;
        ts::set_up("vb")?;
        let a = good("transport=raw,ifname=va");
        let b = good("transport=raw,ifname=vb");
        let a = open_transport(&a, 0).map_err(|e| e.to_string())?;
        let b = open_transport(&b, 0).map_err(|e| e.to_string())?;
        let Fds::Split { .. } = a.fds else {
            return Err("raw has two sockets".into());
        };
        ts::ensure(enable_qdisc_bypass(a.fds.tx()).is_ok(), || {
            "qdisc bypass".into()
        })?;
        let frame = ts::frame([0xff; 6], [2, 0, 0, 0, 0, 0xa], b"over veth");
        send_two(a.fds.tx(), &[], &frame, None).map_err(|e| e.to_string())?;
        let got = ts::recv_matching(b.fds.rx(), recv_one, |p| is_ours(p, 0, b"over veth"))?;
        ts::ensure(got == frame, || format!("{got:02x?}"))?;
        // With vnet headers each frame gets a virtio_net_hdr.
        ts::ensure(enable_packet_vnet_hdr(b.fds.rx()).is_ok(), || "vnet".into())?;
        send_two(a.fds.tx(), &[], &frame, None).map_err(|e| e.to_string())?;
        let got = ts::recv_matching(b.fds.rx(), recv_one, |p| {
            is_ours(p, VIRTIO_NET_HDR_LEN, b"over veth")
        })?;
        ts::ensure(got[VIRTIO_NET_HDR_LEN..] == frame[..], || {
            format!("{got:02x?}")
        })?;
        // No such interface.
        let e = open_transport(&good("transport=raw,ifname=nope"), 0).unwrap_err();
        ts::ensure(
            e == OpenError::Host {
                step: Step::FindInterface(IfName::new(c"nope").unwrap()),
                errno: Errno::ENODEV,
            },
            || format!("{e:?}"),
        )
    });
}
