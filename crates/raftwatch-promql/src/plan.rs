//! Planning: which selections a query makes, and over which time ranges.
//!
//! Every vector and matrix selector in the expression becomes one
//! [`SelectRequest`] covering every sample any step of the evaluation can
//! read through it: the evaluation times (shifted by `offset`, pinned by
//! `@`, widened by enclosing subqueries) minus the lookback delta or the
//! selector's range.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};
use raftwatch_model::{MatchOp, Matcher};

use crate::labels::NAME;
use crate::{EngineConfig, Error};

/// `SelectRequest` is one selection: the series matching every matcher,
/// with their samples in `[start_ms, end_ms]` (inclusive).
#[derive(Clone, Debug)]
pub struct SelectRequest {
    /// Every matcher must match (an absent label reads as "").
    pub matchers: Vec<Matcher>,
    /// First timestamp needed, ms, inclusive.
    pub start_ms: i64,
    /// Last timestamp needed, ms, inclusive.
    pub end_ms: i64,
}

/// Selector identity (its address in the boxed AST) to its index in
/// [`crate::Query::selects`].
pub(crate) type SelectorIds = HashMap<usize, usize>;

pub(crate) fn selector_id(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

pub(crate) fn duration_ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

/// `at_ms` resolves an `@` modifier: `start()`/`end()` are the query's.
pub(crate) fn at_ms(at: &Option<AtModifier>, start_ms: i64, end_ms: i64) -> Option<i64> {
    match at {
        None => None,
        Some(AtModifier::Start) => Some(start_ms),
        Some(AtModifier::End) => Some(end_ms),
        Some(AtModifier::At(t)) => Some(system_time_ms(t)),
    }
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(e) => -duration_ms(&e.duration()),
    }
}

/// `matchers` converts a selector's name and matchers.
pub(crate) fn matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, Error> {
    let mut out = Vec::new();
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(NAME, name.clone()));
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err(Error::Parse(
            "`or` inside a selector's braces is not PromQL".into(),
        ));
    }
    for m in &vs.matchers.matchers {
        let (op, value) = match &m.op {
            PMatchOp::Equal => (MatchOp::Equal, m.value.clone()),
            PMatchOp::NotEqual => (MatchOp::NotEqual, m.value.clone()),
            PMatchOp::Re(_) => (MatchOp::RegexMatch, m.value.clone()),
            PMatchOp::NotRe(_) => (MatchOp::RegexNoMatch, m.value.clone()),
        };
        out.push(Matcher::new(op, m.name.clone(), value).map_err(|e| Error::Parse(e.to_string()))?);
    }
    Ok(out)
}

/// `invalid_strings` finds string literals whose escapes spell bytes that
/// are not UTF-8 (`"\xff"`). Go's parser keeps such bytes; ours (and Rust
/// strings) cannot: `promql-parser` reads `\xff` as U+00FF, which would
/// answer a different query than the one asked. Returns each as the parser
/// decoded it and as Go quotes it (`"a\xc5z"`), for [`check`] to refuse.
pub(crate) fn invalid_strings(text: &str) -> Vec<(String, String)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
                i += 1;
            }
            q @ (b'"' | b'\'') => {
                i += 1;
                // The bytes Go sees, and the text promql-parser decodes.
                let mut bytes = Vec::new();
                let mut decoded = String::new();
                let mut escaped_high = false;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        let c = b[i + 1];
                        let (digits, radix) = match c {
                            b'x' => (b.get(i + 2..i + 4), 16),
                            b'0'..=b'7' => (b.get(i + 1..i + 4), 8),
                            _ => (None, 0),
                        };
                        if let Some(v) = digits
                            .and_then(|d| std::str::from_utf8(d).ok())
                            .and_then(|d| u8::from_str_radix(d, radix).ok())
                        {
                            escaped_high |= v >= 0x80;
                            bytes.push(v);
                            decoded.push(char::from(v));
                            i += 4;
                            continue;
                        }
                        bytes.extend_from_slice(&[b'\\', c]);
                        decoded.push(match c {
                            b'n' => '\n',
                            b't' => '\t',
                            b'r' => '\r',
                            other => char::from(other),
                        });
                        i += 2;
                        continue;
                    }
                    let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
                    bytes.extend_from_slice(&b[i..i + ch_len]);
                    decoded.push_str(&text[i..i + ch_len]);
                    i += ch_len;
                }
                i += 1;
                if escaped_high && std::str::from_utf8(&bytes).is_err() {
                    out.push((decoded, go_quote(&bytes)));
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// `go_quote` quotes bytes as Go's `%q` does for the ASCII and invalid
/// bytes that reach it.
fn go_quote(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in bytes {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(c)),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

/// `check` refuses what the engine does not evaluate: experimental
/// functions and aggregations unless enabled, and the parser's extensions
/// that are not PromQL.
pub(crate) fn check(expr: &Expr, text: &str, config: &EngineConfig) -> Result<(), Error> {
    let invalid = invalid_strings(text);
    let mut err = None;
    let label_name = |e: &Expr| -> Option<Error> {
        let Expr::StringLiteral(s) = e else {
            return None;
        };
        invalid
            .iter()
            .find(|(d, _)| *d == s.val)
            .map(|(_, q)| Error::Execution(format!("invalid label name {q}")))
    };
    walk(expr, &mut |e| {
        if err.is_some() {
            return;
        }
        match e {
            Expr::Call(c) if matches!(c.func.name, "label_replace" | "label_join") => {
                err = c.args.args.get(1).and_then(|a| label_name(a));
            }
            Expr::Aggregate(a) if a.op.to_string() == "count_values" => {
                err = a.param.as_deref().and_then(label_name);
            }
            _ => {}
        }
        if err.is_some() {
            return;
        }
        match e {
            Expr::Call(c) if c.func.experimental && !config.experimental_functions => {
                err = Some(Error::Parse(format!(
                    "function \"{}\" is not enabled (an experimental function)",
                    c.func.name
                )));
            }
            Expr::Aggregate(a)
                if !config.experimental_functions
                    && matches!(a.op.to_string().as_str(), "limitk" | "limit_ratio") =>
            {
                err = Some(Error::Parse(format!(
                    "limitk() and limit_ratio() are not enabled (experimental): {}",
                    a.op
                )));
            }
            Expr::Extension(_) => {
                err = Some(Error::Parse("unsupported expression".into()));
            }
            _ => {}
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    match invalid.first() {
        Some((_, q)) => Err(Error::Parse(format!(
            "string literal {q} is not valid UTF-8"
        ))),
        None => Ok(()),
    }
}

/// `walk` visits every node, parents first.
pub(crate) fn walk(expr: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(expr);
    match expr {
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                walk(p, f);
            }
            walk(&a.expr, f);
        }
        Expr::Unary(u) => walk(&u.expr, f),
        Expr::Binary(b) => {
            walk(&b.lhs, f);
            walk(&b.rhs, f);
        }
        Expr::Paren(p) => walk(&p.expr, f),
        Expr::Subquery(s) => walk(&s.expr, f),
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, f);
            }
        }
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => {}
    }
}

/// `selects` plans every selection of `expr` evaluated at times in
/// `[start_ms, end_ms]`.
pub(crate) fn selects(
    expr: &Expr,
    start_ms: i64,
    end_ms: i64,
    config: &EngineConfig,
) -> Result<(Vec<SelectRequest>, SelectorIds), Error> {
    let mut p = Planner {
        start_ms,
        end_ms,
        config,
        out: Vec::new(),
        ids: HashMap::new(),
    };
    p.plan(expr, start_ms, end_ms)?;
    Ok((p.out, p.ids))
}

struct Planner<'a> {
    start_ms: i64,
    end_ms: i64,
    config: &'a EngineConfig,
    out: Vec<SelectRequest>,
    ids: SelectorIds,
}

impl Planner<'_> {
    /// `plan` records the selections of `expr` evaluated at times in
    /// `[lo, hi]`.
    fn plan(&mut self, expr: &Expr, lo: i64, hi: i64) -> Result<(), Error> {
        match expr {
            Expr::VectorSelector(vs) => self.selector(vs, lo, hi, self.config.lookback_delta_ms),
            Expr::MatrixSelector(ms) => self.selector(&ms.vs, lo, hi, duration_ms(&ms.range)),
            Expr::Subquery(sq) => {
                let (lo, hi) = self.shifted(&sq.at, &sq.offset, lo, hi);
                self.plan(&sq.expr, lo - duration_ms(&sq.range), hi)
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    self.plan(p, lo, hi)?;
                }
                self.plan(&a.expr, lo, hi)
            }
            Expr::Unary(u) => self.plan(&u.expr, lo, hi),
            Expr::Binary(b) => {
                self.plan(&b.lhs, lo, hi)?;
                self.plan(&b.rhs, lo, hi)
            }
            Expr::Paren(p) => self.plan(&p.expr, lo, hi),
            Expr::Call(c) => {
                for a in &c.args.args {
                    self.plan(a, lo, hi)?;
                }
                Ok(())
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => Ok(()),
        }
    }

    fn shifted(
        &self,
        at: &Option<AtModifier>,
        offset: &Option<Offset>,
        lo: i64,
        hi: i64,
    ) -> (i64, i64) {
        let off = offset_ms(offset);
        match at_ms(at, self.start_ms, self.end_ms) {
            Some(t) => (t - off, t - off),
            None => (lo - off, hi - off),
        }
    }

    fn selector(&mut self, vs: &VectorSelector, lo: i64, hi: i64, back: i64) -> Result<(), Error> {
        let (lo, hi) = self.shifted(&vs.at, &vs.offset, lo, hi);
        let id = selector_id(vs);
        // Windows are left-open: (t - back, t].
        let (start_ms, end_ms) = (lo - back + 1, hi);
        match self.ids.get(&id) {
            Some(&i) => {
                let r = &mut self.out[i];
                r.start_ms = r.start_ms.min(start_ms);
                r.end_ms = r.end_ms.max(end_ms);
            }
            None => {
                self.ids.insert(id, self.out.len());
                self.out.push(SelectRequest {
                    matchers: matchers(vs)?,
                    start_ms,
                    end_ms,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_escapes_must_spell_utf8() {
        let bad = |t: &str| {
            invalid_strings(t)
                .into_iter()
                .map(|x| x.1)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            bad(r#"label_replace(x, "\xff", "", "a", "b")"#),
            [r#""\xff""#]
        );
        assert_eq!(bad(r#"count_values("a\xc5z", x)"#), [r#""a\xc5z""#]);
        assert!(bad(r#"x{a="\xc3\xbf"}"#).is_empty());
        assert_eq!(bad(r#"x{a="\377"}"#), [r#""\xff""#]);
        assert!(bad("x{a=`\\xff`} # \"\\xff").is_empty());
        assert!(bad(r#"x{a="\\xff"}"#).is_empty());
    }
}
