//! A recursive-descent parser from tokens to [`Expr`].
//!
//! Grammar (`&&` binds tighter than `||`; both associate to the left):
//!
//! ```text
//! selector   = [ or ]                      (empty means all())
//! or         = and { "||" and }
//! and        = unary { "&&" unary }
//! unary      = "!" unary | primary
//! primary    = "(" or ")" | "all" "(" ")" | "global" "(" ")" | "has" "(" key ")"
//!            | key ( "==" value | "!=" value | "in" set | "not" "in" set
//!                  | "contains" value | "starts" "with" value | "ends" "with" value )
//! set        = "{" [ value { "," value } ] "}"
//! value      = "'" chars "'" | '"' chars '"'
//! ```

use std::collections::BTreeSet;

use super::ast::Expr;
use super::error::SelectorError;
use super::lexer::{Kind, Token, tokenize};

/// The deepest expression tree accepted; bounds recursion when evaluating and dropping.
const MAX_DEPTH: usize = 1000;
/// The most `(` and `!` that may enclose a term; bounds the parser's own recursion.
const MAX_NESTING: usize = 100;

const EXPECTED_TERM: &str = "a selector term such as has(k), k == 'v', !, ( or all()";
const EXPECTED_OPERATOR: &str = "an operator (==, !=, in, not in, contains, starts with or ends with)";
const EXPECTED_VALUE: &str = "a label value in quotes";

/// Parses a whole selector. Empty or whitespace-only input is [`Expr::All`].
pub(crate) fn parse(input: &str) -> Result<Expr, SelectorError> {
    let tokens = tokenize(input);
    let end = Token { kind: Kind::End, start: input.len(), end: input.len() };
    let mut parser = Parser { input, tokens, pos: 0, end };
    if parser.peek().kind == Kind::End {
        return Ok(Expr::All);
    }
    let node = parser.or(0)?;
    let rest = parser.peek();
    if rest.kind != Kind::End {
        return Err(parser.error(rest, "`&&`, `||` or end of input"));
    }
    Ok(node.expr)
}

/// Why `key` is not a Kubernetes label key, if it is not. `key` holds only characters the lexer
/// accepts in a word.
fn key_problem(key: &str) -> Option<&'static str> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 || !prefix.split('.').all(is_dns_label) {
                return Some("the prefix before `/` must be a lowercase DNS name such as example.com");
            }
            name
        }
        None => key,
    };
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if name.contains('/') {
        Some("a key has at most one `/`")
    } else if name.is_empty() {
        Some("the name after `/` must not be empty")
    } else if name.len() > 63 {
        Some("the name must be at most 63 characters")
    } else if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        Some("the name must start and end with a letter or digit")
    } else {
        None
    }
}

fn is_dns_label(label: &str) -> bool {
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let bytes = label.as_bytes();
    label.len() <= 63
        && edge(bytes.first())
        && edge(bytes.last())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// An expression and the depth of its tree.
struct Node {
    expr: Expr,
    depth: usize,
}

impl Node {
    fn leaf(expr: Expr) -> Self {
        Node { expr, depth: 1 }
    }
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token<'a>>,
    pos: usize,
    end: Token<'a>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Token<'a> {
        self.tokens.get(self.pos).copied().unwrap_or(self.end)
    }

    fn peek_second(&self) -> Token<'a> {
        self.tokens.get(self.pos + 1).copied().unwrap_or(self.end)
    }

    fn next(&mut self) -> Token<'a> {
        let token = self.peek();
        self.pos += 1;
        token
    }

    /// The character offset of byte offset `byte`.
    fn char_position(&self, byte: usize) -> usize {
        self.input.get(..byte).map_or(byte, |s| s.chars().count())
    }

    fn error(&self, token: Token<'a>, expected: impl Into<String>) -> SelectorError {
        let text = self.input.get(token.start..token.end).unwrap_or_default();
        let mut snippet: String = text.chars().take(40).collect();
        if snippet.len() < text.len() {
            snippet.push('…');
        }
        let found = match token.kind {
            Kind::End => "end of input".to_owned(),
            Kind::Unterminated => format!("an unterminated string `{snippet}`"),
            _ => format!("`{snippet}`"),
        };
        SelectorError { position: self.char_position(token.start), expected: expected.into(), found }
    }

    fn too_deep(&self, op: Token<'a>) -> SelectorError {
        let mut err = self.error(op, format!("at most {MAX_DEPTH} nested operators"));
        err.found = "a deeper expression".to_owned();
        err
    }

    /// Builds `a && b` or `a || b`, refusing trees deeper than [`MAX_DEPTH`].
    fn binary(
        &self,
        op: Token<'a>,
        left: Node,
        right: Node,
        build: fn(Box<Expr>, Box<Expr>) -> Expr,
    ) -> Result<Node, SelectorError> {
        let depth = 1 + left.depth.max(right.depth);
        if depth > MAX_DEPTH {
            return Err(self.too_deep(op));
        }
        Ok(Node { expr: build(Box::new(left.expr), Box::new(right.expr)), depth })
    }

    /// Enters a `(` or `!`, refusing more than [`MAX_NESTING`] levels.
    fn nest(&self, token: Token<'a>, nesting: usize) -> Result<usize, SelectorError> {
        if nesting >= MAX_NESTING {
            let mut err = self.error(token, format!("at most {MAX_NESTING} nested `(` and `!`"));
            err.found = "deeper nesting".to_owned();
            return Err(err);
        }
        Ok(nesting + 1)
    }

    fn or(&mut self, nesting: usize) -> Result<Node, SelectorError> {
        let mut left = self.and(nesting)?;
        while self.peek().kind == Kind::OrOr {
            let op = self.next();
            let right = self.and(nesting)?;
            left = self.binary(op, left, right, Expr::Or)?;
        }
        Ok(left)
    }

    fn and(&mut self, nesting: usize) -> Result<Node, SelectorError> {
        let mut left = self.unary(nesting)?;
        while self.peek().kind == Kind::AndAnd {
            let op = self.next();
            let right = self.unary(nesting)?;
            left = self.binary(op, left, right, Expr::And)?;
        }
        Ok(left)
    }

    fn unary(&mut self, nesting: usize) -> Result<Node, SelectorError> {
        if self.peek().kind != Kind::Bang {
            return self.primary(nesting);
        }
        let bang = self.next();
        let inner = self.unary(self.nest(bang, nesting)?)?;
        if inner.depth >= MAX_DEPTH {
            return Err(self.too_deep(bang));
        }
        Ok(Node { expr: Expr::Not(Box::new(inner.expr)), depth: inner.depth + 1 })
    }

    fn primary(&mut self, nesting: usize) -> Result<Node, SelectorError> {
        let token = self.peek();
        match token.kind {
            Kind::LParen => {
                self.next();
                let inner = self.or(self.nest(token, nesting)?)?;
                let close = self.next();
                if close.kind != Kind::RParen {
                    let open = self.char_position(token.start);
                    let expected = format!("`&&`, `||` or `)` to close the `(` at character {open}");
                    return Err(self.error(close, expected));
                }
                Ok(inner)
            }
            Kind::Word(word @ ("has" | "all" | "global")) if self.peek_second().kind == Kind::LParen => {
                self.pos += 2;
                let expr = match word {
                    "has" => Expr::Has(self.key()?),
                    "all" => Expr::All,
                    _ => Expr::Global,
                };
                self.expect(Kind::RParen, "`)`")?;
                Ok(Node::leaf(expr))
            }
            Kind::Word(_) => {
                let key = self.key()?;
                self.comparison(key).map(Node::leaf)
            }
            _ => Err(self.error(token, EXPECTED_TERM)),
        }
    }

    fn comparison(&mut self, key: String) -> Result<Expr, SelectorError> {
        let op = self.next();
        Ok(match op.kind {
            Kind::EqEq => Expr::Eq(key, self.value()?),
            Kind::NotEq => Expr::NotEq(key, self.value()?),
            Kind::Word("in") => Expr::In(key, self.set()?),
            Kind::Word("not") => {
                self.keyword("in", "`in` after `not`")?;
                Expr::NotIn(key, self.set()?)
            }
            Kind::Word("contains") => Expr::Contains(key, self.value()?),
            Kind::Word("starts") => {
                self.keyword("with", "`with` after `starts`")?;
                Expr::StartsWith(key, self.value()?)
            }
            Kind::Word("ends") => {
                self.keyword("with", "`with` after `ends`")?;
                Expr::EndsWith(key, self.value()?)
            }
            _ => return Err(self.error(op, EXPECTED_OPERATOR)),
        })
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        let token = self.next();
        match token.kind {
            Kind::Word(word) => match key_problem(word) {
                None => Ok(word.to_owned()),
                Some(problem) => Err(self.error(token, format!("a label key ({problem})"))),
            },
            _ => Err(self.error(token, "a label key")),
        }
    }

    fn value(&mut self) -> Result<String, SelectorError> {
        let token = self.next();
        match token.kind {
            Kind::Str(value) => Ok(value.to_owned()),
            _ => Err(self.error(token, EXPECTED_VALUE)),
        }
    }

    fn set(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        self.expect(Kind::LBrace, "`{` to start a set of values")?;
        let mut values = BTreeSet::new();
        if self.peek().kind == Kind::RBrace {
            self.next();
            return Ok(values);
        }
        loop {
            values.insert(self.value()?);
            let token = self.next();
            match token.kind {
                Kind::Comma => {}
                Kind::RBrace => return Ok(values),
                _ => return Err(self.error(token, "`,` or `}`")),
            }
        }
    }

    fn expect(&mut self, kind: Kind<'a>, expected: &str) -> Result<(), SelectorError> {
        let token = self.next();
        if token.kind == kind { Ok(()) } else { Err(self.error(token, expected)) }
    }

    fn keyword(&mut self, word: &'static str, expected: &str) -> Result<(), SelectorError> {
        self.expect(Kind::Word(word), expected)
    }
}
