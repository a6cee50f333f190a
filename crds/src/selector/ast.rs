//! The typed syntax tree of a selector, and its canonical text form.

use std::collections::BTreeSet;
use std::fmt;

/// A parsed selector expression.
///
/// Values may hold any text, but the selector language has no escapes: a value containing both
/// `'` and `"` cannot be written down, so [`Display`](fmt::Display) of such an `Expr` does not
/// parse back. [`Selector`](super::Selector) only holds expressions that round-trip.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Expr {
    /// `all()`: matches everything. An empty selector also means this.
    All,
    /// `global()`: matches non-namespaced resources. Against a plain label map it is always true.
    Global,
    /// `has(k)`: label `k` is present.
    Has(String),
    /// `k == 'v'`: label `k` is present and equals `v`.
    Eq(String, String),
    /// `k != 'v'`: label `k` is absent or differs from `v`.
    NotEq(String, String),
    /// `k in {'a', 'b'}`: label `k` is present and one of the values.
    In(String, BTreeSet<String>),
    /// `k not in {'a', 'b'}`: label `k` is absent or none of the values.
    NotIn(String, BTreeSet<String>),
    /// `k starts with 'p'`: label `k` is present and starts with `p`.
    StartsWith(String, String),
    /// `k ends with 's'`: label `k` is present and ends with `s`.
    EndsWith(String, String),
    /// `k contains 'x'`: label `k` is present and contains `x`.
    Contains(String, String),
    /// `!e`: `e` does not match.
    Not(Box<Expr>),
    /// `a && b`: both match.
    And(Box<Expr>, Box<Expr>),
    /// `a || b`: either matches.
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    /// The label keys the expression looks at, e.g. for choosing which labels to index.
    pub fn label_keys(&self) -> BTreeSet<&str> {
        let mut keys = BTreeSet::new();
        self.collect_keys(&mut keys);
        keys
    }

    fn collect_keys<'a>(&'a self, keys: &mut BTreeSet<&'a str>) {
        match self {
            Expr::All | Expr::Global => {}
            Expr::Has(k)
            | Expr::Eq(k, _)
            | Expr::NotEq(k, _)
            | Expr::In(k, _)
            | Expr::NotIn(k, _)
            | Expr::StartsWith(k, _)
            | Expr::EndsWith(k, _)
            | Expr::Contains(k, _) => {
                keys.insert(k);
            }
            Expr::Not(e) => e.collect_keys(keys),
            Expr::And(l, r) | Expr::Or(l, r) => {
                l.collect_keys(keys);
                r.collect_keys(keys);
            }
        }
    }

    fn is_binary(&self) -> bool {
        matches!(self, Expr::And(..) | Expr::Or(..))
    }
}

/// A value in quotes: double quotes unless the value contains one.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = if self.0.contains('"') { '\'' } else { '"' };
        write!(f, "{quote}{}{quote}", self.0)
    }
}

/// A set of values: `{"a", "b"}`.
struct Set<'a>(&'a BTreeSet<String>);

impl fmt::Display for Set<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, value) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", Quoted(value))?;
        }
        f.write_str("}")
    }
}

/// An operand of `&&` or `||`, in parentheses unless it is the same operator on the left
/// (which is how left-associative chains parse back).
struct Operand<'a> {
    expr: &'a Expr,
    bare: bool,
}

impl fmt::Display for Operand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.expr.is_binary() && !self.bare { write!(f, "({})", self.expr) } else { write!(f, "{}", self.expr) }
    }
}

/// The canonical form: `k == "v"`, `!has(k)`, `(a || b) && c`. It parses back to the same
/// `Expr` (see the type's note on values containing both quote characters).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => f.write_str("all()"),
            Expr::Global => f.write_str("global()"),
            Expr::Has(k) => write!(f, "has({k})"),
            Expr::Eq(k, v) => write!(f, "{k} == {}", Quoted(v)),
            Expr::NotEq(k, v) => write!(f, "{k} != {}", Quoted(v)),
            Expr::In(k, set) => write!(f, "{k} in {}", Set(set)),
            Expr::NotIn(k, set) => write!(f, "{k} not in {}", Set(set)),
            Expr::StartsWith(k, v) => write!(f, "{k} starts with {}", Quoted(v)),
            Expr::EndsWith(k, v) => write!(f, "{k} ends with {}", Quoted(v)),
            Expr::Contains(k, v) => write!(f, "{k} contains {}", Quoted(v)),
            Expr::Not(e) => write!(f, "!{}", Operand { expr: e, bare: false }),
            Expr::And(l, r) => write!(
                f,
                "{} && {}",
                Operand { expr: l, bare: matches!(**l, Expr::And(..)) },
                Operand { expr: r, bare: false }
            ),
            Expr::Or(l, r) => write!(
                f,
                "{} || {}",
                Operand { expr: l, bare: matches!(**l, Expr::Or(..)) },
                Operand { expr: r, bare: false }
            ),
        }
    }
}
