//! Fuzz target `egress_url`: the SSRF guard (`wagate::egress`) on every way an address reaches it:
//! an IP literal in a URL, in any spelling the URL parser accepts; any URL text at all; and a
//! host name whose DNS answer is fuzzed (the save-time lookup of `HttpClient::check_host`).
//!
//! Input: `[arm, ...]`; `arm % 3` picks one of the three arms below, each reading the rest.
//!
//! Properties (a panic is a finding):
//! - `blocked_range` refuses exactly the addresses that are not globally reachable, as the
//!   IANA special-purpose address registries list them, plus every IPv6 range that carries an
//!   IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) and multicast ([`reference`], an
//!   independent table of CIDRs);
//! - an IP literal, in every spelling (decimal, hex, octal, one to four parts, percent-encoded,
//!   full-width digits, trailing dot, IPv4-mapped, compatible, NAT64 and 6to4 IPv6, upper case,
//!   with user info and a port), parses to the address it spells, and the policy's verdict on
//!   the URL is its verdict on that address (allowlist first, then `blocked_range`; the Lambda
//!   runtime API refused even when allowlisted);
//! - whatever URL text the parser accepts and the policy admits either has an IP host the
//!   policy admits, or a host name that is no IP literal in disguise (its last label is not a
//!   number) and does not name this machine (`localhost`);
//! - a host name passes the save-time check exactly when its DNS answer is empty or holds an
//!   address the policy admits; a refusal names one of the answered addresses and its range.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use url::{Host, Url};

// ---- the project's API under test: every wagate path this target names is here ----
use wagate::egress::{
    EgressError, EgressPolicy, HttpClient, HttpTimeouts, StaticResolver, blocked_range,
};
// ---- end of the project's API ----

/// The Lambda runtime API address every policy here also refuses.
const RUNTIME_API: &str = "127.0.0.1:9001";

/// The allowlists a policy is built with (`WAGATE_EGRESS_ALLOW_CIDRS`), picked by the input.
const ALLOWLISTS: &[&str] = &[
    "",
    "127.0.0.1/32",
    "10.0.0.0/8, fd00::/8, 169.254.169.254",
    "0.0.0.0/0, ::/0",
];

/// The addresses no tenant's server may have, written independently of `blocked_range`:
/// IANA's IPv4 and IPv6 special-purpose registries (the entries that are not globally
/// reachable), every IPv6 range that embeds an IPv4 address, and multicast.
fn reference() -> &'static Vec<IpNet> {
    static R: OnceLock<Vec<IpNet>> = OnceLock::new();
    R.get_or_init(|| {
        [
            // IPv4 (RFC 6890 and its updates)
            "0.0.0.0/8",       // this network
            "10.0.0.0/8",      // private
            "100.64.0.0/10",   // shared address space (carrier-grade NAT)
            "127.0.0.0/8",     // loopback
            "169.254.0.0/16",  // link-local (the metadata service)
            "172.16.0.0/12",   // private
            "192.0.0.0/24",    // IETF protocol assignments
            "192.0.2.0/24",    // documentation (TEST-NET-1)
            "192.168.0.0/16",  // private
            "198.18.0.0/15",   // benchmarking
            "198.51.100.0/24", // documentation (TEST-NET-2)
            "203.0.113.0/24",  // documentation (TEST-NET-3)
            "224.0.0.0/4",     // multicast
            "240.0.0.0/4",     // reserved, and the limited broadcast address
            // IPv6
            "::/128",        // unspecified
            "::1/128",       // loopback
            "::ffff:0:0/96", // IPv4-mapped
            "::/96",         // IPv4-compatible (deprecated)
            // IPv4/IPv6 translation (NAT64): the well-known 64:ff9b::/96 and the local-use
            // 64:ff9b:1::/48 (RFC 8215) with the rest of the /32 set aside for translation.
            "64:ff9b::/32",
            "100::/64",      // discard-only
            "2001::/23",     // IETF protocol assignments (Teredo 2001::/32 embeds IPv4)
            "2001:db8::/32", // documentation
            "2002::/16",     // 6to4 (embeds IPv4)
            "3fff::/20",     // documentation (RFC 9637)
            "5f00::/16",     // segment routing (SRv6) SIDs
            "fc00::/7",      // unique local
            "fe80::/10",     // link-local
            "ff00::/8",      // multicast
        ]
        .iter()
        .map(|c| c.parse().expect("a CIDR"))
        .collect()
    })
}

struct Guard {
    policy: EgressPolicy,
    client: HttpClient,
    names: StaticResolver,
}

/// One policy and client per allowlist, built once (a client loads TLS roots).
fn guards() -> &'static Vec<Guard> {
    static G: OnceLock<Vec<Guard>> = OnceLock::new();
    G.get_or_init(|| {
        ALLOWLISTS
            .iter()
            .map(|allow| {
                let policy = EgressPolicy::new(
                    EgressPolicy::parse_allowlist(allow).expect("a valid allowlist"),
                )
                .with_runtime_api(EgressPolicy::parse_runtime_api(RUNTIME_API));
                let names = StaticResolver::new();
                let client = HttpClient::with_resolver(
                    policy.clone(),
                    HttpTimeouts::default(),
                    Arc::new(names.clone()),
                )
                .expect("a client");
                Guard {
                    policy,
                    client,
                    names,
                }
            })
            .collect()
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static R: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    R.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

/// The policy's verdict on an address, from its parts: allowlist first, then the ranges.
fn admits(policy: &EgressPolicy, ip: IpAddr) -> bool {
    policy.allowlist().iter().any(|n| n.contains(&ip)) || blocked_range(ip).is_none()
}

fn take<const N: usize>(data: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = data.split_first_chunk::<N>()?;
    *data = rest;
    Some(*head)
}

/// Every spelling of an IPv4 address the URL parser (WHATWG) may read as that address.
fn v4_spelling(ip: Ipv4Addr, how: u8) -> String {
    let [a, b, c, d] = ip.octets();
    let n = u32::from(ip);
    match how % 14 {
        0 => format!("{a}.{b}.{c}.{d}"),
        1 => format!("{n}"),
        2 => format!("0x{n:x}"),
        3 => format!("0{n:o}"),
        4 => format!("0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}"),
        5 => format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
        6 => format!("{a}.{}", n & 0x00ff_ffff),
        7 => format!("{a}.{b}.{}", n & 0xffff),
        8 => format!("0X{a:X}.{b}.0{c:o}.{d}"),
        9 => format!("{a}.{b}.{c}.{d}."),
        10 => format!("{a}.{b}.{c}.{d}")
            .bytes()
            .map(|x| format!("%{x:02X}"))
            .collect(),
        // Full-width digits and dots: IDNA maps them to ASCII before the IPv4 parser runs.
        11 => format!("{a}.{b}.{c}.{d}")
            .chars()
            .map(|ch| match ch {
                '.' => '．',
                d => char::from_u32(0xFF10 + d.to_digit(10).unwrap_or(0)).unwrap_or(d),
            })
            .collect(),
        12 => format!("0x{a:02x}{b:02x}{c:02x}{d:02x}"),
        _ => format!("0X{n:X}"),
    }
}

/// Spellings of an IPv6 literal (bracketed) and the address they spell.
fn v6_spelling(ip: Ipv6Addr, how: u8) -> (String, Ipv6Addr) {
    let s = ip.segments();
    match how % 5 {
        0 => (format!("[{ip}]"), ip),
        1 => (
            format!(
                "[{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}]",
                s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
            ),
            ip,
        ),
        2 => (format!("[{}]", ip.to_string().to_uppercase()), ip),
        3 => {
            let [a, b, c, d] = [s[6] >> 8, s[6] & 0xff, s[7] >> 8, s[7] & 0xff];
            (
                format!(
                    "[{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{a}.{b}.{c}.{d}]",
                    s[0], s[1], s[2], s[3], s[4], s[5]
                ),
                ip,
            )
        }
        _ => (
            format!(
                "[{}]",
                ip.to_string().replace("::", ":0:0:").trim_matches(':')
            ),
            ip,
        ),
    }
}

/// IPv6 addresses that carry an IPv4 address, written as IPv6.
fn v4_in_v6(ip: Ipv4Addr, how: u8) -> Ipv6Addr {
    let [a, b, c, d] = ip.octets();
    let hi = u16::from_be_bytes([a, b]);
    let lo = u16::from_be_bytes([c, d]);
    match how % 5 {
        0 => ip.to_ipv6_mapped(),
        1 => ip.to_ipv6_compatible(),
        2 => Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
        3 => Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, hi, lo),
        _ => Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 0),
    }
}

/// Arm 0: an address in a spelling; the URL must parse to it, and the verdict must be its own.
fn spelled(guard: &Guard, mut data: &[u8]) {
    let Some([family, how, user, p0, p1]) = take::<5>(&mut data) else {
        return;
    };
    let (host, ip) = match family % 3 {
        0 => {
            let Some(o) = take::<4>(&mut data) else {
                return;
            };
            let ip = Ipv4Addr::from(o);
            (v4_spelling(ip, how), IpAddr::V4(ip))
        }
        1 => {
            let Some(o) = take::<4>(&mut data) else {
                return;
            };
            let (h, ip) = v6_spelling(v4_in_v6(Ipv4Addr::from(o), how), how / 5);
            (h, IpAddr::V6(ip))
        }
        _ => {
            let Some(o) = take::<16>(&mut data) else {
                return;
            };
            let (h, ip) = v6_spelling(Ipv6Addr::from(o), how);
            (h, IpAddr::V6(ip))
        }
    };
    let port = u16::from_be_bytes([p0, p1]);
    let userinfo = if user % 2 == 1 { "user:pass@" } else { "" };
    let port_part = if user % 4 >= 2 {
        format!(":{port}")
    } else {
        String::new()
    };
    let text = format!("http://{userinfo}{host}{port_part}/x");
    let Ok(url) = Url::parse(&text) else {
        // Some spellings are not URLs at all (an octal part with the digit 8): refused, fine.
        return;
    };
    let parsed = match url.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        other => panic!("{text} spells {ip} but parses to host {other:?}"),
    };
    assert_eq!(parsed, ip, "{text} parses to another address");
    let socket = SocketAddr::new(ip, url.port_or_known_default().unwrap_or(0));
    let runtime_api = EgressPolicy::parse_runtime_api(RUNTIME_API);
    let expected = admits(&guard.policy, ip) && Some(socket) != runtime_api;
    let verdict = guard.policy.check_url(&url);
    assert_eq!(verdict.is_ok(), expected, "{text}: {verdict:?}");
    assert_eq!(
        guard.client.request(http::Method::GET, url.clone()).is_ok(),
        expected,
        "the client's request check disagrees with the policy on {text}"
    );
}

/// Arm 1: any URL text. Admitted means an admitted IP, or a name that is not an IP in disguise.
fn free_text(guard: &Guard, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(url) = Url::parse(text) else {
        return;
    };
    if guard.policy.check_url(&url).is_err() {
        return;
    }
    match url.host() {
        None => panic!("{text}: a URL without a host was admitted"),
        Some(Host::Ipv4(v4)) => assert!(admits(&guard.policy, IpAddr::V4(v4)), "{text}"),
        Some(Host::Ipv6(v6)) => assert!(admits(&guard.policy, IpAddr::V6(v6)), "{text}"),
        Some(Host::Domain(name)) => {
            let bare = name.trim_end_matches('.').to_ascii_lowercase();
            assert!(
                bare.parse::<IpAddr>().is_err(),
                "{text}: host {name:?} is an IP address left as a name"
            );
            // WHATWG's "ends in a number": such a host is parsed as IPv4 or refused, never
            // left as a name the system resolver would read as an address.
            // (The last label after dropping one empty one; a number is decimal digits, or
            // `0x` and hex digits, none at all included.)
            let lower = name.to_ascii_lowercase();
            let mut labels: Vec<&str> = lower.split('.').collect();
            if labels.len() > 1 && labels.last() == Some(&"") {
                labels.pop();
            }
            let last = labels.last().copied().unwrap_or("");
            let numeric = (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
                || last
                    .strip_prefix("0x")
                    .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
            // Only special schemes (http, https, …) parse hosts as IPv4; an opaque host of
            // another scheme stays text, and wagate refuses such schemes elsewhere.
            if url.scheme() == "http" || url.scheme() == "https" {
                assert!(
                    !numeric,
                    "{text}: host {name:?} ends in a number but is a name"
                );
            }
            let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
            if bare == "localhost" || bare.ends_with(".localhost") {
                assert!(
                    admits(&guard.policy, loopback),
                    "{text}: names this machine"
                );
            }
        }
    }
}

/// Arm 2: a host name and its DNS answer; the save-time check admits exactly what it should.
fn resolved(guard: &Guard, mut data: &[u8]) {
    let Some([len, count]) = take::<2>(&mut data) else {
        return;
    };
    let len = usize::from(len % 24) + 1;
    let Some(raw) = data.get(..len) else { return };
    data = &data[len..];
    let label: String = raw
        .iter()
        .map(|b| b"abcdefghijklmnopqrstuvwxyz0123456789-"[usize::from(*b) % 37] as char)
        .collect();
    let host = format!("{}.test", label.trim_matches('-'));
    let mut answer = Vec::new();
    for _ in 0..count % 5 {
        let Some([kind]) = take::<1>(&mut data) else {
            break;
        };
        if kind % 2 == 0 {
            let Some(o) = take::<4>(&mut data) else { break };
            answer.push(IpAddr::V4(Ipv4Addr::from(o)));
        } else {
            let Some(o) = take::<16>(&mut data) else {
                break;
            };
            answer.push(IpAddr::V6(Ipv6Addr::from(o)));
        }
    }
    let Ok(url) = Url::parse(&format!("https://{host}/")) else {
        return;
    };
    let Some(Host::Domain(name)) = url.host() else {
        return;
    };
    guard.names.set(name, &answer);
    let verdict = runtime().block_on(guard.client.check_host(&url));
    let expected = answer.is_empty() || answer.iter().any(|ip| admits(&guard.policy, *ip));
    assert_eq!(
        verdict.is_ok(),
        expected,
        "{host} -> {answer:?}: {verdict:?}"
    );
    if let Err(e) = verdict {
        match e {
            EgressError::HostBlocked { host: h, ip, range } => {
                assert_eq!(h, name);
                assert!(
                    answer.contains(&ip),
                    "the refusal names {ip}, not in the answer"
                );
                assert_eq!(blocked_range(ip), Some(range));
            }
            other => panic!("{host}: refused for another reason: {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [arm, policy, rest @ ..] = data else {
        return;
    };
    let guard = &guards()[usize::from(*policy) % ALLOWLISTS.len()];
    // Arm 0 and 2 also check the ranges themselves against the reference table.
    match arm % 3 {
        0 => spelled(guard, rest),
        1 => free_text(guard, rest),
        _ => resolved(guard, rest),
    }
    if let Some(o) = rest.first_chunk::<16>() {
        let v6 = IpAddr::V6(Ipv6Addr::from(*o));
        let v4 = IpAddr::V4(Ipv4Addr::from([o[0], o[1], o[2], o[3]]));
        for ip in [v4, v6] {
            let listed = reference().iter().any(|n| n.contains(&ip));
            assert_eq!(
                blocked_range(ip).is_some(),
                listed,
                "{ip}: blocked_range says {:?}, the registries say {}",
                blocked_range(ip),
                if listed { "not global" } else { "global" }
            );
        }
    }
});
