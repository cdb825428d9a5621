//! Structured Field dictionaries (RFC 8941 section 3.2), as targeted cache
//! control fields are written (RFC 9213 section 2.1): a field that is not a
//! valid dictionary is ignored whole. Only what a cache directive needs is
//! kept of each member's value; parameters are checked and dropped.

/// The value of one dictionary member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `?1` (or a bare key) / `?0`.
    Boolean(bool),
    /// An integer (15 digits at most).
    Integer(i64),
    /// A string, unescaped.
    String(String),
    /// A token, a decimal, a byte sequence or an inner list: no cache
    /// directive takes one.
    Other,
}

/// Parses a dictionary; `None` if the text is not one.
pub fn dictionary(text: &str) -> Option<Vec<(String, Item)>> {
    let mut parser = Parser {
        rest: text.trim_matches(' ').as_bytes(),
    };
    let mut members = Vec::new();
    if parser.rest.is_empty() {
        return Some(members);
    }
    loop {
        let key = parser.key()?;
        let item = if parser.eat(b'=') {
            if parser.peek() == Some(b'(') {
                parser.inner_list()?;
                Item::Other
            } else {
                parser.bare_item()?
            }
        } else {
            Item::Boolean(true)
        };
        parser.parameters()?;
        members.push((key, item));
        parser.skip_ows();
        if parser.rest.is_empty() {
            return Some(members);
        }
        if !parser.eat(b',') {
            return None;
        }
        parser.skip_ows();
        if parser.rest.is_empty() {
            return None; // a trailing comma
        }
    }
}

struct Parser<'a> {
    rest: &'a [u8],
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.rest = &self.rest[1..];
            true
        } else {
            false
        }
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a [u8] {
        let end = self
            .rest
            .iter()
            .position(|b| !keep(*b))
            .unwrap_or(self.rest.len());
        let (taken, rest) = self.rest.split_at(end);
        self.rest = rest;
        taken
    }

    fn skip_ows(&mut self) {
        self.take_while(|b| b == b' ' || b == b'\t');
    }

    fn key(&mut self) -> Option<String> {
        let first = self.peek()?;
        if !(first.is_ascii_lowercase() || first == b'*') {
            return None;
        }
        let key = self.take_while(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'*')
        });
        Some(String::from_utf8_lossy(key).into_owned())
    }

    fn parameters(&mut self) -> Option<()> {
        while self.eat(b';') {
            self.take_while(|b| b == b' ');
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Some(())
    }

    fn inner_list(&mut self) -> Option<()> {
        self.eat(b'(');
        loop {
            self.take_while(|b| b == b' ');
            if self.eat(b')') {
                return self.parameters();
            }
            self.bare_item()?;
            self.parameters()?;
            if !matches!(self.peek(), Some(b' ' | b')')) {
                return None;
            }
        }
    }

    fn bare_item(&mut self) -> Option<Item> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string().map(Item::String),
            b'?' => {
                self.eat(b'?');
                let value = match self.peek()? {
                    b'0' => false,
                    b'1' => true,
                    _ => return None,
                };
                self.rest = &self.rest[1..];
                Some(Item::Boolean(value))
            }
            b':' => {
                self.eat(b':');
                self.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
                self.eat(b':').then_some(Item::Other)
            }
            b if b.is_ascii_alphabetic() || b == b'*' => {
                self.take_while(|b| is_tchar(b) || b == b':' || b == b'/');
                Some(Item::Other)
            }
            _ => None,
        }
    }

    fn number(&mut self) -> Option<Item> {
        let negative = self.eat(b'-');
        let integer = self.take_while(|b| b.is_ascii_digit());
        if integer.is_empty() || integer.len() > 15 {
            return None;
        }
        if self.eat(b'.') {
            let fraction = self.take_while(|b| b.is_ascii_digit());
            return (integer.len() <= 12 && (1..=3).contains(&fraction.len()))
                .then_some(Item::Other);
        }
        let value: i64 = std::str::from_utf8(integer).ok()?.parse().ok()?;
        Some(Item::Integer(if negative { -value } else { value }))
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b'"');
        let mut out = String::new();
        loop {
            let byte = self.peek()?;
            self.rest = &self.rest[1..];
            match byte {
                b'"' => return Some(out),
                b'\\' => {
                    let escaped = self.peek().filter(|b| matches!(b, b'"' | b'\\'))?;
                    self.rest = &self.rest[1..];
                    out.push(char::from(escaped));
                }
                0x20..=0x7e => out.push(char::from(byte)),
                _ => return None,
            }
        }
    }
}

fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_dictionaries() {
        assert_eq!(
            dictionary("max-age=600, no-store, private=\"set-cookie\", x=?0").unwrap(),
            vec![
                ("max-age".to_owned(), Item::Integer(600)),
                ("no-store".to_owned(), Item::Boolean(true)),
                ("private".to_owned(), Item::String("set-cookie".to_owned())),
                ("x".to_owned(), Item::Boolean(false)),
            ]
        );
        assert_eq!(dictionary("").unwrap(), vec![]);
        assert_eq!(
            dictionary(" a;p=1;q, b=tok/x, c=1.5, d=(1 2);e, f=:YWJj:")
                .unwrap()
                .len(),
            5
        );
        assert_eq!(
            dictionary("a=-3").unwrap(),
            vec![("a".to_owned(), Item::Integer(-3))]
        );
    }

    #[test]
    fn invalid_dictionaries() {
        for text in [
            "max-age=10000, &&&&&",
            "Max-Age=1",
            "a=",
            "a=1,",
            "a = 1",
            "a=\"unterminated",
            "a=1234567890123456",
            "a=1.2345",
            "a=?2",
            "a b",
            "a=(1 2",
        ] {
            assert_eq!(dictionary(text), None, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in ".{0,60}") {
            let _ = dictionary(&text);
        }
    }
}
