//! Splits a selector into tokens.
//!
//! The lexer never fails: text it cannot make sense of becomes an [`Kind::Invalid`] or
//! [`Kind::Unterminated`] token, and the parser reports it with the context of what it expected
//! there. Words (`has`, `in`, `not`, `starts`, ...) are plain [`Kind::Word`]s; the parser decides
//! from their position whether they are keywords or label keys, so a label called `in` still works.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind<'a> {
    /// A run of label-key characters: letters, digits, `_`, `-`, `.` and `/`.
    Word(&'a str),
    /// A quoted string; holds the text between the quotes.
    Str(&'a str),
    /// A string whose closing quote is missing.
    Unterminated,
    /// `==`
    EqEq,
    /// `!=`
    NotEq,
    /// `!`
    Bang,
    /// `&&`
    AndAnd,
    /// `||`
    OrOr,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `,`
    Comma,
    /// A character that starts no token (a lone `=`, `&` or `|`, or anything else).
    Invalid,
    /// The end of the input.
    End,
}

/// A token and the byte range of the input it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    /// What the token is.
    pub(crate) kind: Kind<'a>,
    /// Byte offset of the first character.
    pub(crate) start: usize,
    /// Byte offset just past the last character.
    pub(crate) end: usize,
}

/// Whether `c` may appear in a label key.
pub(crate) fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// Splits `input` into tokens, always ending with one [`Kind::End`].
pub(crate) fn tokenize(input: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        let next = chars.peek().map(|&(_, n)| n);
        let (kind, end) = match (c, next) {
            ('=', Some('=')) => (Kind::EqEq, start + 2),
            ('!', Some('=')) => (Kind::NotEq, start + 2),
            ('&', Some('&')) => (Kind::AndAnd, start + 2),
            ('|', Some('|')) => (Kind::OrOr, start + 2),
            ('!', _) => (Kind::Bang, start + 1),
            ('(', _) => (Kind::LParen, start + 1),
            (')', _) => (Kind::RParen, start + 1),
            ('{', _) => (Kind::LBrace, start + 1),
            ('}', _) => (Kind::RBrace, start + 1),
            (',', _) => (Kind::Comma, start + 1),
            ('\'' | '"', _) => match input[start + 1..].find(c) {
                Some(len) => {
                    let end = start + 1 + len;
                    (Kind::Str(&input[start + 1..end]), end + 1)
                }
                None => (Kind::Unterminated, input.len()),
            },
            _ if is_key_char(c) => {
                let len = input[start..].find(|n: char| !is_key_char(n)).unwrap_or(input.len() - start);
                (Kind::Word(&input[start..start + len]), start + len)
            }
            _ => (Kind::Invalid, start + c.len_utf8()),
        };
        // Skip the characters this token consumed beyond the first.
        while chars.peek().is_some_and(|&(i, _)| i < end) {
            chars.next();
        }
        tokens.push(Token { kind, start, end });
    }
    tokens.push(Token { kind: Kind::End, start: input.len(), end: input.len() });
    tokens
}

#[cfg(test)]
mod tests {
    use super::{Kind, tokenize};

    #[test]
    fn tokens_for_each_kind() {
        let cases: &[(&str, &[Kind<'_>])] = &[
            ("", &[Kind::End]),
            ("a.b/c-d_e == 'x y'", &[Kind::Word("a.b/c-d_e"), Kind::EqEq, Kind::Str("x y"), Kind::End]),
            (
                "!has(k)&&x!=\"it's\"||",
                &[
                    Kind::Bang,
                    Kind::Word("has"),
                    Kind::LParen,
                    Kind::Word("k"),
                    Kind::RParen,
                    Kind::AndAnd,
                    Kind::Word("x"),
                    Kind::NotEq,
                    Kind::Str("it's"),
                    Kind::OrOr,
                    Kind::End,
                ],
            ),
            ("{'a',\"\"}", &[Kind::LBrace, Kind::Str("a"), Kind::Comma, Kind::Str(""), Kind::RBrace, Kind::End]),
            ("= & | é", &[Kind::Invalid, Kind::Invalid, Kind::Invalid, Kind::Invalid, Kind::End]),
            ("k == 'abc", &[Kind::Word("k"), Kind::EqEq, Kind::Unterminated, Kind::End]),
        ];
        for (input, expected) in cases {
            let kinds: Vec<_> = tokenize(input).into_iter().map(|t| t.kind).collect();
            assert_eq!(&kinds, expected, "tokens of {input:?}");
        }
    }

    #[test]
    fn spans_cover_the_source_text() {
        let input = "é k=='v'";
        let spans: Vec<_> = tokenize(input).into_iter().map(|t| &input[t.start..t.end]).collect();
        assert_eq!(spans, ["é", "k", "==", "'v'", ""]);
    }
}
