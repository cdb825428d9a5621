//! What a request's `Accept-Encoding` and `Accept-Language` mean for the
//! cache (RFC 9110 sections 12.4.2, 12.5.3 and 12.5.4), so that the many
//! spellings browsers send select a few variants: the coding a request
//! prefers among those this proxy knows, and a language list in one
//! canonical order and case.

use http::HeaderMap;
use http::header::ACCEPT_ENCODING;

/// A content coding this proxy can store, decode and encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// `br`
    Brotli,
    /// `zstd`
    Zstd,
    /// `gzip` (and its alias `x-gzip`)
    Gzip,
    /// No coding.
    Identity,
}

/// The codings, best first: the order a tie between equal q-values is
/// broken by (smaller bodies first).
pub const PREFERENCE: [Coding; 4] = [Coding::Brotli, Coding::Zstd, Coding::Gzip, Coding::Identity];

impl Coding {
    /// Its name in `Content-Encoding` and `Accept-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
            Coding::Identity => "identity",
        }
    }

    /// The coding a `Content-Encoding` value names: `None` for one this
    /// proxy does not know or a list of several.
    pub fn of_content_encoding(headers: &HeaderMap) -> Option<Coding> {
        let mut values = headers.get_all(http::header::CONTENT_ENCODING).iter();
        let Some(value) = values.next() else {
            return Some(Coding::Identity);
        };
        if values.next().is_some() {
            return None;
        }
        let name = value.as_bytes().trim_ascii();
        let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
        if is(b"br") {
            Some(Coding::Brotli)
        } else if is(b"zstd") {
            Some(Coding::Zstd)
        } else if is(b"gzip") || is(b"x-gzip") {
            Some(Coding::Gzip)
        } else if is(b"identity") || name.is_empty() {
            Some(Coding::Identity)
        } else {
            None
        }
    }
}

/// What an `Accept-Encoding` allows, as q-values in thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    q: [u16; 4],
}

impl Accepted {
    /// Reads every `Accept-Encoding` line. Without one, only identity is
    /// taken (what a client that sends none can surely decode).
    pub fn of(request: &HeaderMap) -> Self {
        let mut lines = request.get_all(ACCEPT_ENCODING).iter().peekable();
        if lines.peek().is_none() {
            return Accepted { q: [0, 0, 0, 1000] };
        }
        let mut listed: [Option<u16>; 4] = [None; 4];
        let mut star = None;
        for line in lines {
            for (name, q) in weighted(line.as_bytes()) {
                let slot = match name.to_ascii_lowercase().as_slice() {
                    b"br" => &mut listed[0],
                    b"zstd" => &mut listed[1],
                    b"gzip" | b"x-gzip" => &mut listed[2],
                    b"identity" => &mut listed[3],
                    b"*" => &mut star,
                    _ => continue,
                };
                slot.get_or_insert(q);
            }
        }
        let mut q = [0; 4];
        for (index, slot) in listed.iter().enumerate() {
            q[index] = slot.or(star).unwrap_or(0);
        }
        // Identity is acceptable unless excluded (section 12.5.3), but not
        // listed it comes after every coding that is.
        q[3] = listed[3].or(star).unwrap_or(1);
        Accepted { q }
    }

    /// Whether the request takes `coding`.
    pub fn takes(self, coding: Coding) -> bool {
        self.q[index(coding)] > 0
    }

    /// The coding it prefers among those this proxy knows (`None`: it
    /// refuses them all, identity included).
    pub fn preferred(self) -> Option<Coding> {
        self.best_of(&PREFERENCE)
    }

    /// The best of the compressed codings it takes, if any.
    pub fn preferred_compressed(self) -> Option<Coding> {
        self.best_of(&PREFERENCE[..3])
    }

    /// The coding of `among` it weighs highest, the first of equals.
    fn best_of(self, among: &[Coding]) -> Option<Coding> {
        let mut best: Option<Coding> = None;
        for &coding in among {
            let q = self.q[index(coding)];
            if q > 0 && best.is_none_or(|b| q > self.q[index(b)]) {
                best = Some(coding);
            }
        }
        best
    }
}

fn index(coding: Coding) -> usize {
    match coding {
        Coding::Brotli => 0,
        Coding::Zstd => 1,
        Coding::Gzip => 2,
        Coding::Identity => 3,
    }
}

/// The value the cache keys `Accept-Encoding` by: the preferred coding's
/// name, or `none`.
pub fn encoding_key(request: &HeaderMap) -> &'static str {
    Accepted::of(request)
        .preferred()
        .map_or("none", Coding::as_str)
}

/// Sets the `Accept-Encoding` sent to the origin on a fetch for the cache
/// to the codings this proxy knows that the request takes, best first
/// (`br, gzip`), or none when it prefers identity: every request keyed
/// alike can then be served the answer, as it is or decoded by the proxy.
/// A request that refuses everything is left as it is.
pub fn forward_known_codings(request: &mut HeaderMap) {
    let accepted = Accepted::of(request);
    match accepted.preferred() {
        Some(Coding::Identity) => {
            request.remove(ACCEPT_ENCODING);
        }
        Some(_) => {
            // Every subset of the three, best first, written out: no
            // allocation on a miss.
            const LISTS: [&str; 8] = [
                "",
                "gzip",
                "zstd",
                "zstd, gzip",
                "br",
                "br, gzip",
                "br, zstd",
                "br, zstd, gzip",
            ];
            let bit = |coding, value| if accepted.takes(coding) { value } else { 0 };
            let index = bit(Coding::Brotli, 4) | bit(Coding::Zstd, 2) | bit(Coding::Gzip, 1);
            request.insert(
                ACCEPT_ENCODING,
                http::HeaderValue::from_static(LISTS[index]),
            );
        }
        None => {}
    }
}

/// An `Accept-Language` list in canonical form: tags lower-cased, ordered
/// by q-value (highest first) then by tag, q written only when below 1,
/// duplicates dropped; `en, de` and `DE ,en;q=1.0` are the same list.
pub fn language_key(lines: &[&[u8]]) -> Vec<u8> {
    let mut ranges: Vec<(u16, Vec<u8>)> = lines
        .iter()
        .flat_map(|line| weighted(line))
        .map(|(tag, q)| (q, tag.to_ascii_lowercase()))
        .collect();
    ranges.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    ranges.dedup_by(|a, b| a.1 == b.1);
    let mut out = Vec::new();
    for (q, tag) in ranges {
        if !out.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(&tag);
        if q < 1000 {
            out.extend_from_slice(format!(";q={}", render_q(q)).as_bytes());
        }
    }
    out
}

fn render_q(q: u16) -> String {
    let text = format!("0.{q:03}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The members of a weighted list (`name;q=0.5, other`): each name with its
/// q-value in thousandths (1000 when absent; an invalid one counts as 0,
/// so a garbled weight never makes a coding acceptable).
fn weighted(line: &[u8]) -> impl Iterator<Item = (&[u8], u16)> {
    line.split(|b| *b == b',').filter_map(|member| {
        let mut parts = member.split(|b| *b == b';');
        let name = parts.next()?.trim_ascii();
        if name.is_empty() {
            return None;
        }
        let mut q = 1000;
        for parameter in parts {
            let parameter = parameter.trim_ascii();
            if let Some(value) = parameter
                .strip_prefix(b"q=")
                .or_else(|| parameter.strip_prefix(b"Q="))
            {
                q = qvalue(value.trim_ascii()).unwrap_or(0);
            }
        }
        Some((name, q))
    })
}

/// A qvalue (RFC 9110 section 12.4.2): `0`, `1`, or up to three decimals.
fn qvalue(text: &[u8]) -> Option<u16> {
    let (whole, fraction) = match text.iter().position(|b| *b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for position in 0..3 {
        let digit = fraction.get(position).map_or(0, |d| u16::from(d - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        h
    }

    /// What browsers and tools send, with the coding each is keyed by.
    const BROWSERS: [(&str, &str); 12] = [
        ("gzip, deflate, br, zstd", "br"),
        ("gzip, deflate, br", "br"),
        ("gzip, deflate", "gzip"),
        ("br;q=1.0, gzip;q=0.8, *;q=0.1", "br"),
        ("gzip,deflate,br", "br"),
        ("deflate, gzip;q=1.0, *;q=0.5", "gzip"),
        ("gzip", "gzip"),
        ("identity", "identity"),
        ("zstd, gzip;q=0.9", "zstd"),
        ("gzip;q=1.0, identity; q=0.5, *;q=0", "gzip"),
        ("*", "br"),
        ("deflate", "identity"),
    ];

    #[test]
    fn browsers_make_a_few_keys() {
        for (value, key) in BROWSERS {
            assert_eq!(encoding_key(&accept(value)), key, "{value}");
        }
        assert_eq!(encoding_key(&HeaderMap::new()), "identity");
    }

    #[test]
    fn q_values_and_exclusions() {
        assert_eq!(encoding_key(&accept("gzip;q=0.5, br;q=0.4")), "gzip");
        assert_eq!(encoding_key(&accept("br;q=0, gzip")), "gzip");
        assert_eq!(encoding_key(&accept("identity;q=0")), "none");
        assert_eq!(encoding_key(&accept("*;q=0")), "none");
        assert_eq!(encoding_key(&accept("*;q=0, identity")), "identity");
        assert_eq!(
            encoding_key(&accept("gzip;q=2")),
            "identity",
            "an invalid q is 0"
        );
        assert_eq!(encoding_key(&accept("X-GZIP")), "gzip");
        let refuses_identity = Accepted::of(&accept("gzip, identity;q=0"));
        assert!(!refuses_identity.takes(Coding::Identity));
        assert!(refuses_identity.takes(Coding::Gzip));
        assert_eq!(
            Accepted::of(&accept("deflate")).preferred_compressed(),
            None
        );
    }

    #[test]
    fn forwarded_codings_are_the_known_ones_taken() {
        let mut h = accept("gzip, deflate, br");
        forward_known_codings(&mut h);
        assert_eq!(h[ACCEPT_ENCODING], "br, gzip");
        let mut h = accept("zstd;q=0.5, gzip");
        forward_known_codings(&mut h);
        assert_eq!(h[ACCEPT_ENCODING], "zstd, gzip");
        let mut h = accept("deflate");
        forward_known_codings(&mut h);
        assert!(h.get(ACCEPT_ENCODING).is_none());
    }

    #[test]
    fn content_encoding_names() {
        let mut h = HeaderMap::new();
        assert_eq!(Coding::of_content_encoding(&h), Some(Coding::Identity));
        h.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static("GZIP"),
        );
        assert_eq!(Coding::of_content_encoding(&h), Some(Coding::Gzip));
        h.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static("gzip, br"),
        );
        assert_eq!(Coding::of_content_encoding(&h), None);
    }

    #[test]
    fn language_lists_in_one_form() {
        let key = |line: &str| String::from_utf8(language_key(&[line.as_bytes()])).unwrap();
        assert_eq!(key("en, de"), "de,en");
        assert_eq!(key("de, en"), "de,en");
        assert_eq!(key("eN, De"), "de,en");
        assert_eq!(key(" en ,   de"), "de,en");
        assert_eq!(key("fr;q=0.5, de;q=1.0"), "de,fr;q=0.5");
        assert_eq!(key("en-US,en;q=0.9,fr;q=0.80"), "en-us,en;q=0.9,fr;q=0.8");
        assert_eq!(key("en, en"), "en");
        assert_ne!(key("en"), key("de"));
    }
}
