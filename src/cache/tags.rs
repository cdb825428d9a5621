//! Purge tags: the origin names groups of responses in `Surrogate-Key`
//! (space-separated, Fastly style) or `Cache-Tag` (comma-separated,
//! Cloudflare style); a purge by tag removes every entry carrying it.

use http::{HeaderMap, HeaderName};

/// The tags in the `names` fields of `headers`, de-duplicated, in order.
pub fn extract(headers: &HeaderMap, names: &[HeaderName]) -> Vec<Box<str>> {
    let mut tags: Vec<Box<str>> = Vec::new();
    for name in names {
        for value in headers.get_all(name) {
            let Ok(text) = value.to_str() else { continue };
            for tag in text.split(|c: char| c == ',' || c.is_ascii_whitespace()) {
                if !tag.is_empty() && !tags.iter().any(|t| &**t == tag) {
                    tags.push(tag.into());
                }
            }
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn both_styles_are_read() {
        let surrogate = HeaderName::from_static("surrogate-key");
        let cache_tag = HeaderName::from_static("cache-tag");
        let mut h = HeaderMap::new();
        h.insert(
            surrogate.clone(),
            HeaderValue::from_static("product-1  category-shoes"),
        );
        h.append(
            cache_tag.clone(),
            HeaderValue::from_static("sale, product-1"),
        );
        let tags = extract(&h, &[surrogate, cache_tag]);
        let tags: Vec<&str> = tags.iter().map(|t| &**t).collect();
        assert_eq!(tags, ["product-1", "category-shoes", "sale"]);
        assert!(extract(&HeaderMap::new(), &[]).is_empty());
    }
}
