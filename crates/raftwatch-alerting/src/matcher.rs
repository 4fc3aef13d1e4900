//! Alertmanager label matchers.
//!
//! A matcher compares one label's value (absent = `""`) with a literal
//! (`=`, `!=`) or a regular expression anchored at both ends (`=~`, `!~`),
//! exactly as Alertmanager does. Serialised as Alertmanager's API v2
//! shape: `{"name", "value", "isRegex", "isEqual"}`.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::LabelSet;

/// `MatchOp` is a matcher's operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Re,
    /// `!~`
    Nre,
}

/// `MatcherError` is why a matcher was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MatcherError {
    /// The text is not a matcher.
    #[error("bad matcher {text:?}: {reason}")]
    Syntax {
        /// The input.
        text: String,
        /// Why.
        reason: String,
    },
    /// The regular expression does not compile.
    #[error("bad regular expression {regex:?} in matcher for {name:?}: {reason}")]
    Regex {
        /// The label name.
        name: String,
        /// The expression.
        regex: String,
        /// Why.
        reason: String,
    },
    /// An empty or invalid label name.
    #[error("invalid label name {0:?} in matcher")]
    Name(String),
}

/// `Matcher` is one compiled matcher. Equality and ordering look at
/// (name, op, value) only.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The operator.
    pub op: MatchOp,
    /// The literal or the regular expression's source.
    pub value: String,
    /// The anchored regex, for `=~` / `!~`.
    regex: Option<regex::Regex>,
}

impl Matcher {
    /// `new` validates the name and compiles a regex (anchored at both
    /// ends, like Alertmanager's).
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Matcher, MatcherError> {
        let name = name.into();
        let value = value.into();
        if name.is_empty() {
            return Err(MatcherError::Name(name));
        }
        let regex = match op {
            MatchOp::Re | MatchOp::Nre => {
                Some(regex::Regex::new(&format!("^(?s:{value})$")).map_err(|e| {
                    MatcherError::Regex {
                        name: name.clone(),
                        regex: value.clone(),
                        reason: e.to_string(),
                    }
                })?)
            }
            MatchOp::Eq | MatchOp::Ne => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            regex,
        })
    }

    /// `matches` tests one label set; an absent label is `""`.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match (&self.op, &self.regex) {
            (MatchOp::Eq, _) => v == self.value,
            (MatchOp::Ne, _) => v != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(v),
            (MatchOp::Nre, Some(re)) => !re.is_match(v),
            (MatchOp::Re | MatchOp::Nre, None) => false,
        }
    }

    /// `matches_all` is true when every matcher matches.
    pub fn matches_all(matchers: &[Matcher], labels: &LabelSet) -> bool {
        matchers.iter().all(|m| m.matches(labels))
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

/// `ApiMatcher` is Alertmanager's API v2 matcher shape.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiMatcher {
    name: String,
    value: String,
    is_regex: bool,
    #[serde(default = "yes")]
    is_equal: bool,
}

fn yes() -> bool {
    true
}

impl Serialize for Matcher {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ApiMatcher {
            name: self.name.clone(),
            value: self.value.clone(),
            is_regex: matches!(self.op, MatchOp::Re | MatchOp::Nre),
            is_equal: matches!(self.op, MatchOp::Eq | MatchOp::Re),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Matcher, D::Error> {
        let m = ApiMatcher::deserialize(d)?;
        let op = match (m.is_regex, m.is_equal) {
            (false, true) => MatchOp::Eq,
            (false, false) => MatchOp::Ne,
            (true, true) => MatchOp::Re,
            (true, false) => MatchOp::Nre,
        };
        Matcher::new(m.name, op, m.value).map_err(serde::de::Error::custom)
    }
}

impl MatchOp {
    /// `as_str` is the operator as written: `=`, `!=`, `=~` or `!~`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::Nre => "!~",
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes `name="value"` as Alertmanager's `Matcher.String()` does: the
/// value always quoted with `\\`, `\"` and `\n` escaped; the name bare
/// unless it contains a reserved character (whitespace or one of
/// `` {}!=~,\"'` ``) or is empty, then quoted the same way.
///
/// Alertmanager quotes such a name (and then the value) with Go's
/// `strconv.Quote`, which also escapes other control characters; here
/// both use the three escapes [`parse_matcher`] understands, so
/// `parse_matcher(&m.to_string()) == Ok(m)` for every matcher.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() || self.name.chars().any(is_reserved) {
            write_quoted(f, &self.name)?;
        } else {
            f.write_str(&self.name)?;
        }
        f.write_str(self.op.as_str())?;
        write_quoted(f, &self.value)
    }
}

/// Writes `s` in double quotes with `\\`, `\"` and `\n` escaped
/// (Alertmanager's `openMetricsEscape`).
fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '"' => f.write_str("\\\"")?,
            '\n' => f.write_str("\\n")?,
            c => fmt::Write::write_char(f, c)?,
        }
    }
    f.write_str("\"")
}

/// Whether `c` may not appear in an unquoted label name: whitespace or
/// one of `` {}!=~,\"'` `` (Alertmanager's `matcher/parse` lexer).
fn is_reserved(c: char) -> bool {
    c.is_whitespace() || "{}!=~,\\\"'`".contains(c)
}

/// `parse_matcher` parses one matcher as `amtool` and Alertmanager's
/// configuration accept it: `name=value`, `name="value"`, with `=`, `!=`,
/// `=~` or `!~`, whitespace allowed around each part.
///
/// - The name is either bare (a run of characters that are not reserved:
///   whitespace or `` {}!=~,\"'` ``, so `alertname` and `service.name`
///   both work) or double-quoted (any UTF-8).
/// - A quoted value (or name) ends at the first unescaped `"`; `\"`,
///   `\\` and `\n` are escapes, and any other backslash is kept as it is,
///   so `=~"host\d+"` is the regex `host\d+` (Alertmanager's classic
///   parser, which its default "fallback" mode uses whenever it accepts the
///   input).
/// - An unquoted value is the rest of the text with surrounding whitespace
///   trimmed; it may not contain an unescaped `"`.
///
/// Regular expressions are compiled anchored at both ends ([`Matcher::new`]).
pub fn parse_matcher(text: &str) -> Result<Matcher, MatcherError> {
    parse_one(text, text)
}

/// `parse_matchers` parses a comma-separated list of matchers, optionally
/// enclosed in braces: `{a="b", c=~"d"}` or `a="b",c=~"d"`. Commas inside
/// quoted names and values do not separate. A trailing comma is allowed;
/// an empty input or `{}` is the empty list. Each element follows
/// [`parse_matcher`].
pub fn parse_matchers(text: &str) -> Result<Vec<Matcher>, MatcherError> {
    let trimmed = text.trim();
    let inner = match trimmed.strip_prefix('{') {
        Some(rest) => match rest.strip_suffix('}') {
            Some(inner) => inner,
            None => return Err(syntax(text, "missing closing '}'")),
        },
        None => trimmed,
    };
    let tokens = split_top_level(inner);
    let last = tokens.len().saturating_sub(1);
    let mut matchers = Vec::with_capacity(tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        if token.trim().is_empty() {
            // `a="b",` is fine and so is the empty list, but `a="b",,c="d"`
            // and a lone `,` are not.
            if i == last && (i > 0 || tokens.len() == 1) {
                continue;
            }
            return Err(syntax(text, "empty matcher in list"));
        }
        matchers.push(parse_one(token, text)?);
    }
    Ok(matchers)
}

/// Splits at commas outside double quotes, honouring backslash escapes
/// (Alertmanager's classic `ParseMatchers` splitter).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut start = 0;
    let mut inside_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            ',' if !inside_quotes => {
                tokens.push(&s[start..i]);
                start = i + 1;
                escaped = false;
                continue;
            }
            '"' if !escaped => inside_quotes = !inside_quotes,
            '\\' => {
                escaped = !escaped;
                continue;
            }
            _ => {}
        }
        escaped = false;
    }
    tokens.push(&s[start..]);
    tokens
}

fn syntax(text: &str, reason: impl Into<String>) -> MatcherError {
    MatcherError::Syntax {
        text: text.to_string(),
        reason: reason.into(),
    }
}

/// Parses one matcher from `token`; errors name `text`, the whole input.
fn parse_one(token: &str, text: &str) -> Result<Matcher, MatcherError> {
    let rest = token.trim_start();
    let (name, rest) = if rest.starts_with('"') {
        let (raw, rest) =
            read_quoted(rest).ok_or_else(|| syntax(text, "unterminated quoted label name"))?;
        (unescape(raw, text)?, rest)
    } else {
        let end = rest.find(is_reserved).unwrap_or(rest.len());
        if end == 0 {
            return Err(syntax(text, "expected a label name"));
        }
        (rest[..end].to_string(), &rest[end..])
    };
    let rest = rest.trim_start();
    // `=~` before `=`: otherwise the `~` would start the value.
    let (op, rest) = [
        ("=~", MatchOp::Re),
        ("=", MatchOp::Eq),
        ("!=", MatchOp::Ne),
        ("!~", MatchOp::Nre),
    ]
    .into_iter()
    .find_map(|(sym, op)| rest.strip_prefix(sym).map(|r| (op, r)))
    .ok_or_else(|| syntax(text, "expected one of =, !=, =~, !~ after the label name"))?;
    let rest = rest.trim_start();
    let value = if rest.starts_with('"') {
        let (raw, after) =
            read_quoted(rest).ok_or_else(|| syntax(text, "unterminated quoted value"))?;
        if !after.trim().is_empty() {
            return Err(syntax(
                text,
                format!("unexpected {:?} after the quoted value", after.trim()),
            ));
        }
        unescape(raw, text)?
    } else {
        unescape(rest.trim_end(), text)?
    };
    Matcher::new(name, op, value)
}

/// Splits `"inner"rest` at the first unescaped `"` after the opening one;
/// `None` when the quote is not closed. `s` starts with `"`.
fn read_quoted(s: &str) -> Option<(&str, &str)> {
    let body = s.get(1..)?;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Some((&body[..i], &body[i + 1..]));
        }
    }
    None
}

/// Resolves `\"`, `\\` and `\n`; any other backslash stays literal
/// (Alertmanager's classic matcher parser). An unescaped `"` is an error.
fn unescape(raw: &str, text: &str) -> Result<String, MatcherError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some(e @ ('"' | '\\')) => out.push(e),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '"' => return Err(syntax(text, "unescaped '\"' in value")),
            c => out.push(c),
        }
    }
    Ok(out)
}
