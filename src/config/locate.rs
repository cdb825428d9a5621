//! Finds where a key path (`routes[1].origin`) is written in a TOML
//! document, so that a validation error can name the line and column.

use toml::de::{DeTable, DeValue};

/// The 1-based line and column of the key at `path` in `text` (the key's
/// name, or for a whole section its header); `None` if the document does
/// not spell that key (a default, a flag's value).
pub fn position_of(text: &str, path: &str) -> Option<(usize, usize)> {
    let document = DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut offset = None;
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.strip_suffix(']')?.parse::<usize>().ok()),
            None => (segment, None),
        };
        let (key, value) = table.get_key_value(name)?;
        offset = Some(key.span().start);
        let value = match (value.get_ref(), index) {
            (DeValue::Array(items), Some(i)) => {
                let item = items.get(i)?;
                offset = Some(item.span().start);
                item.get_ref()
            }
            (value, None) => value,
            (_, Some(_)) => return None,
        };
        match value {
            DeValue::Table(inner) => table = inner,
            _ if segments.peek().is_none() => break,
            _ => return None,
        }
    }
    offset.map(|at| line_and_column(text, at))
}

/// 1-based line and column of byte `at` in `text`.
pub fn line_and_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..floor_char_boundary(text, at)];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[cache]\nttl = \"5m\"\n\n[[routes]]\nname = \"a\"\n\n[[routes]]\nname = \"b\"\norigin = \"x\"\n";

    #[test]
    fn keys_are_found_through_sections_and_arrays() {
        assert_eq!(position_of(DOC, "cache.ttl"), Some((2, 1)));
        assert_eq!(position_of(DOC, "routes[1].origin"), Some((9, 1)));
        assert_eq!(position_of(DOC, "cache"), Some((1, 2)));
    }

    #[test]
    fn keys_the_document_does_not_spell_are_not_found() {
        assert_eq!(position_of(DOC, "cache.max_size"), None);
        assert_eq!(position_of(DOC, "routes[5].origin"), None);
        assert_eq!(position_of(DOC, "listeners"), None);
        assert_eq!(position_of("not = [toml", "not"), None);
    }
}
