//! The client's address, formatted once per connection: every request on
//! it logs `ip:port` and forwards the IP in `X-Forwarded-For`, and
//! formatting an address costs more than the rest of a cache hit's log
//! line.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;

/// A client connection's address and its two spellings.
#[derive(Debug, Clone)]
pub struct Peer {
    addr: SocketAddr,
    /// `ip:port` (`[ip]:port` for IPv6), as access lines show it.
    shown: Arc<str>,
    /// The bare IP, as `X-Forwarded-For` carries it.
    ip: HeaderValue,
}

impl Peer {
    /// `addr` with an IPv4-mapped IPv6 address shown as the IPv4 one (a
    /// dual-stack listener reports IPv4 clients that way).
    pub fn new(addr: SocketAddr) -> Self {
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let ip = HeaderValue::from_str(&addr.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Peer {
            addr,
            shown: Arc::from(addr.to_string()),
            ip,
        }
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ip:port`, formatted once.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The IP as a header value (a shared buffer: cloning it copies
    /// nothing).
    pub fn ip_header(&self) -> &HeaderValue {
        &self.ip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_is_shown_as_ipv4() {
        let peer = Peer::new("[::ffff:127.0.0.1]:5000".parse().unwrap());
        assert_eq!(peer.shown(), "127.0.0.1:5000");
        assert_eq!(peer.ip_header(), "127.0.0.1");
        assert_eq!(peer.addr(), "127.0.0.1:5000".parse().unwrap());
    }

    #[test]
    fn ipv6_keeps_brackets_only_with_the_port() {
        let peer = Peer::new("[::1]:443".parse().unwrap());
        assert_eq!(peer.shown(), "[::1]:443");
        assert_eq!(peer.ip_header(), "::1");
    }
}
