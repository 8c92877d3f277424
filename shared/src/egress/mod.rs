//! Egress: where wagate may send a request. Tenants give us URLs of their WhatsApp servers,
//! so every outbound request goes to an address a tenant chose. The policy ([`EgressPolicy`])
//! refuses loopback, link-local (incl. the cloud metadata service), private, carrier-grade NAT,
//! IPv4-mapped/translated IPv6, other non-global ranges and the Lambda runtime API, unless an
//! operator allowlist (`WAGATE_EGRESS_ALLOW_CIDRS`) admits the address. The rules here are pure;
//! the one client that applies them to every request (twice: IP literals before the request,
//! every address a host name resolves to at connect time) is [`http::HttpClient`].

pub mod http;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs as _};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use url::{Host, Url};

/// Why an address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error(
        "address {ip} is in a blocked range ({range}); an operator can admit it with WAGATE_EGRESS_ALLOW_CIDRS"
    )]
    Blocked { ip: IpAddr, range: &'static str },
    #[error("{addr} is the Lambda runtime API")]
    RuntimeApi { addr: SocketAddr },
    #[error("host {host:?} is refused: {reason}")]
    Host { host: String, reason: &'static str },
    /// Every address the host name resolves to is refused.
    #[error(
        "host {host:?} resolves only to refused addresses ({ip} is in a blocked range: {range}); an operator can admit it with WAGATE_EGRESS_ALLOW_CIDRS"
    )]
    HostBlocked {
        host: String,
        ip: IpAddr,
        range: &'static str,
    },
    #[error("URL has no host")]
    NoHost,
}

/// The egress rules: built-in blocked ranges, the operator allowlist, and the Lambda
/// runtime API address to refuse.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allow: Vec<IpNet>,
    runtime_api: Option<SocketAddr>,
}

impl EgressPolicy {
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self {
            allow,
            runtime_api: None,
        }
    }

    /// Also refuse this address (the value of `AWS_LAMBDA_RUNTIME_API`), port included,
    /// even where the allowlist admits its IP.
    pub fn with_runtime_api(mut self, addr: Option<SocketAddr>) -> Self {
        self.runtime_api = addr;
        self
    }

    /// Parses `AWS_LAMBDA_RUNTIME_API` (`host:port`).
    pub fn parse_runtime_api(value: &str) -> Option<SocketAddr> {
        value.to_socket_addrs().ok()?.next()
    }

    /// Parses a comma-separated CIDR list; a bare IP means that one address.
    pub fn parse_allowlist(value: &str) -> Result<Vec<IpNet>, String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{s:?} is not a CIDR or IP address"))
            })
            .collect()
    }

    pub fn allowlist(&self) -> &[IpNet] {
        &self.allow
    }

    /// Is this IP admitted?
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), EgressError> {
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match blocked_range(ip) {
            Some(range) => Err(EgressError::Blocked { ip, range }),
            None => Ok(()),
        }
    }

    /// Is this socket address admitted? Adds the runtime API check to [`Self::check_ip`].
    pub fn check_socket(&self, addr: SocketAddr) -> Result<(), EgressError> {
        if self.runtime_api == Some(addr) {
            return Err(EgressError::RuntimeApi { addr });
        }
        self.check_ip(addr.ip())
    }

    /// Checks what can be checked without DNS: IP-literal hosts (in any spelling the URL
    /// parser accepts, e.g. `2130706433` or `[::ffff:127.0.0.1]`) and names that always
    /// mean this machine.
    pub fn check_url(&self, url: &Url) -> Result<(), EgressError> {
        let port = url.port_or_known_default().unwrap_or(0);
        match url.host() {
            None => Err(EgressError::NoHost),
            Some(Host::Ipv4(ip)) => self.check_socket(SocketAddr::new(IpAddr::V4(ip), port)),
            Some(Host::Ipv6(ip)) => self.check_socket(SocketAddr::new(IpAddr::V6(ip), port)),
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    // Resolves to loopback; refuse unless loopback is admitted.
                    self.check_socket(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
                        .map_err(|_| EgressError::Host {
                            host: name,
                            reason: "it names this machine (loopback)",
                        })
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// The built-in blocked range `ip` falls in, if any.
pub fn blocked_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    let r = match o {
        [0, ..] => "0.0.0.0/8 (this network)",
        [10, ..] => "10.0.0.0/8 (private)",
        [100, b, ..] if (64..128).contains(&b) => "100.64.0.0/10 (carrier-grade NAT)",
        [127, ..] => "127.0.0.0/8 (loopback)",
        [169, 254, ..] => "169.254.0.0/16 (link-local, metadata service)",
        [172, b, ..] if (16..32).contains(&b) => "172.16.0.0/12 (private)",
        [192, 0, 0, _] => "192.0.0.0/24 (IETF protocol assignments)",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "documentation range",
        [192, 168, ..] => "192.168.0.0/16 (private)",
        [198, b, ..] if b == 18 || b == 19 => "198.18.0.0/15 (benchmarking)",
        [a, ..] if a >= 224 => "224.0.0.0/3 (multicast, reserved, broadcast)",
        _ => return None,
    };
    Some(r)
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("::/128 (unspecified)");
    }
    if ip.is_loopback() {
        return Some("::1/128 (loopback)");
    }
    let seg = ip.segments();
    if seg[..5] == [0, 0, 0, 0, 0] && seg[5] == 0xffff {
        return Some("::ffff:0:0/96 (IPv4-mapped)");
    }
    if seg[..6] == [0, 0, 0, 0, 0, 0] {
        return Some("::/96 (IPv4-compatible)");
    }
    if seg[0] == 0x64 && seg[1] == 0xff9b {
        return Some(
            "64:ff9b::/32 (IPv4/IPv6 translation: 64:ff9b::/96, local-use 64:ff9b:1::/48)",
        );
    }
    if seg[..4] == [0x100, 0, 0, 0] {
        return Some("100::/64 (discard-only)");
    }
    if seg[0] == 0x2002 {
        return Some("2002::/16 (6to4)");
    }
    if seg[0] == 0x2001 && seg[1] == 0x0db8 {
        return Some("2001:db8::/32 (documentation)");
    }
    if seg[0] == 0x2001 && seg[1] < 0x200 {
        return Some("2001::/23 (IETF protocol assignments, Teredo)");
    }
    if seg[0] == 0x3fff && seg[1] < 0x1000 {
        return Some("3fff::/20 (documentation)");
    }
    if seg[0] == 0x5f00 {
        return Some("5f00::/16 (segment routing)");
    }
    if seg[0] & 0xfe00 == 0xfc00 {
        return Some("fc00::/7 (unique local)");
    }
    if seg[0] & 0xffc0 == 0xfe80 {
        return Some("fe80::/10 (link-local)");
    }
    if seg[0] & 0xff00 == 0xff00 {
        return Some("ff00::/8 (multicast)");
    }
    None
}

/// Timeouts of the shared client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// Whole request, connect to last byte (a send may override it per request).
    pub request: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(3),
            request: Duration::from_secs(15),
        }
    }
}

/// Where host names are looked up: the system resolver in production; tests inject a
/// fixed table (no `/etc/hosts` edits, no network).
#[async_trait::async_trait]
pub trait HostResolver: Send + Sync + std::fmt::Debug {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo` through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait::async_trait]
impl HostResolver for SystemResolver {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0))
            .await?
            .map(|a| a.ip())
            .collect())
    }
}

/// A fixed name table (tests): a name not in it does not resolve. Entries can be changed
/// while clients use it (a DNS change after a save).
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    names: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<IpAddr>>>>,
}

impl StaticResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `host` (case-insensitive) to `addrs`, replacing what it mapped to.
    pub fn set(&self, host: &str, addrs: &[IpAddr]) -> &Self {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(host.to_ascii_lowercase(), addrs.to_vec());
        self
    }
}

#[async_trait::async_trait]
impl HostResolver for StaticResolver {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&host.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host} not found"))
            })
    }
}

/// The addresses of `host` the policy admits, or why there are none: a name whose every
/// address is refused is [`EgressError::HostBlocked`].
pub(crate) fn admitted_addresses(
    policy: &EgressPolicy,
    host: &str,
    resolved: Vec<IpAddr>,
) -> Result<Vec<IpAddr>, EgressError> {
    let mut refused = None;
    let admitted: Vec<IpAddr> = resolved
        .into_iter()
        .filter(|ip| match policy.check_ip(*ip) {
            Ok(()) => true,
            Err(EgressError::Blocked { ip, range }) => {
                refused.get_or_insert((ip, range));
                false
            }
            Err(_) => false,
        })
        .collect();
    match (admitted.is_empty(), refused) {
        (true, Some((ip, range))) => Err(EgressError::HostBlocked {
            host: host.to_string(),
            ip,
            range,
        }),
        _ => Ok(admitted),
    }
}

/// The egress guard's refusal behind a failed request, if that is why it failed (the
/// guarded resolver refused every address of the host).
pub fn egress_refusal(e: &(dyn std::error::Error + 'static)) -> Option<EgressError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(refused) = err.downcast_ref::<EgressError>() {
            return Some(refused.clone());
        }
        cur = err.source();
    }
    None
}

pub use http::HttpClient;

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &EgressPolicy, url: &str) -> bool {
        policy.check_url(&Url::parse(url).unwrap()).is_err()
    }

    #[test]
    fn refuses_internal_targets_in_every_spelling() {
        let p = EgressPolicy::default();
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.1.2.3/",
            "http://172.31.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://api.localhost/",
        ] {
            assert!(refused(&p, url), "{url} should be refused");
        }
    }

    /// Found by the `egress_url` fuzz target (fuzz/): the IANA registry's other non-global
    /// IPv6 ranges were admitted (`http://[100::1]/` passed).
    #[test]
    fn refuses_every_non_global_ipv6_range_of_the_registry() {
        let p = EgressPolicy::default();
        for (url, range) in [
            ("http://[100::1]/", "100::/64"),
            ("http://[2001::a9fe:a9fe]/", "2001::/23"),
            ("http://[2001:1ff:ffff::1]/", "2001::/23"),
            ("http://[3fff:fff::1]/", "3fff::/20"),
            ("http://[5f00::1]/", "5f00::/16"),
            ("http://[64:ff9b:1::a00:1]/", "64:ff9b::/32"),
        ] {
            match p.check_url(&Url::parse(url).unwrap()) {
                Err(EgressError::Blocked { range: r, .. }) => {
                    assert!(r.starts_with(range), "{url}: {r}")
                }
                other => panic!("{url} should be refused: {other:?}"),
            }
        }
        for url in [
            "http://[2001:200::1]/",
            "http://[3fff:1000::1]/",
            "http://[100:0:0:1::1]/",
        ] {
            assert!(!refused(&p, url), "{url} is global");
        }
    }

    #[test]
    fn admits_public_addresses_and_names() {
        let p = EgressPolicy::default();
        for url in [
            "https://93.184.216.34/",
            "https://wa.example.com/",
            "https://[2606:4700::1111]/",
        ] {
            assert!(!refused(&p, url), "{url} should be admitted");
        }
    }

    #[test]
    fn allowlist_admits_only_what_it_names() {
        let p =
            EgressPolicy::new(EgressPolicy::parse_allowlist("127.0.0.1/32, 10.0.0.0/24").unwrap());
        assert!(!refused(&p, "http://127.0.0.1:3000/"));
        assert!(!refused(&p, "http://localhost:3000/"));
        assert!(!refused(&p, "http://10.0.0.7/"));
        assert!(refused(&p, "http://127.0.0.2/"));
        assert!(refused(&p, "http://10.0.1.7/"));
        assert!(refused(&p, "http://169.254.169.254/"));
        assert!(refused(&p, "http://[::ffff:127.0.0.1]/"));
    }

    #[test]
    fn runtime_api_is_refused_even_when_its_ip_is_admitted() {
        let p = EgressPolicy::new(EgressPolicy::parse_allowlist("127.0.0.1").unwrap())
            .with_runtime_api(EgressPolicy::parse_runtime_api("127.0.0.1:9001"));
        assert!(refused(
            &p,
            "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next"
        ));
        assert!(!refused(&p, "http://127.0.0.1:3000/"));
    }

    #[test]
    fn allowlist_parse_errors_name_the_entry() {
        let err = EgressPolicy::parse_allowlist("127.0.0.1/32,10.0.0.0/33").unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
    }
}
