//! Parsers for the text an operator types: a series for `write`
//! (`metric{label="v",...}`), a series selector for `query`
//! (`metric{a="b",c!="d",e=~"re",f!~"re"}`), and a sample value.
//!
//! The syntax is PromQL's vector selector without ranges, offsets or `@`:
//! a metric name (optional when braces follow), then optionally a
//! brace-enclosed, comma-separated list of `label OP "value"` with an
//! optional trailing comma. Strings are PromQL strings: double- or
//! single-quoted with Go escapes, or back-quoted and raw. The parsers
//! return plain values; `From` conversions turn them into the protobuf
//! messages of the gRPC API.
//!
//! One parser for every tool (`raftwatchctl write`/`query`,
//! `raftwatch-bench query --expr`), so an expression means the same
//! everywhere.

use std::fmt;

use raftwatch_proto::v1 as pb;

/// METRIC_NAME_LABEL is the label that carries a series' metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// MatchOp is the operator of a label matcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`: the label value equals the string.
    Equal,
    /// `!=`: the label value differs from the string.
    NotEqual,
    /// `=~`: the label value matches the (fully anchored) regular expression.
    Regex,
    /// `!~`: the label value does not match the (fully anchored) regular expression.
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// Matcher is one `name OP "value"` label matcher of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    /// Matcher::name is the label name; `__name__` for the metric name.
    pub name: String,
    /// Matcher::op is the comparison.
    pub op: MatchOp,
    /// Matcher::value is the unquoted string (a regular expression for
    /// `=~` and `!~`, not validated here: the server compiles it).
    pub value: String,
}

impl From<MatchOp> for pb::MatchType {
    fn from(op: MatchOp) -> pb::MatchType {
        match op {
            MatchOp::Equal => pb::MatchType::MatchEqual,
            MatchOp::NotEqual => pb::MatchType::MatchNotEqual,
            MatchOp::Regex => pb::MatchType::MatchRegex,
            MatchOp::NotRegex => pb::MatchType::MatchNotRegex,
        }
    }
}

impl From<Matcher> for pb::LabelMatcher {
    fn from(m: Matcher) -> pb::LabelMatcher {
        pb::LabelMatcher {
            r#type: pb::MatchType::from(m.op) as i32,
            name: m.name,
            value: m.value,
        }
    }
}

/// to_labels turns [`parse_series`]'s pairs into the API's labels.
pub fn to_labels(labels: Vec<(String, String)>) -> Vec<pb::Label> {
    labels
        .into_iter()
        .map(|(name, value)| pb::Label { name, value })
        .collect()
}

/// ParseError is a syntax or validity error in operator input, with the
/// 0-based character position where it was found when it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// ParseError::message says what is wrong, as a sentence fragment.
    pub message: String,
    /// ParseError::position is the 0-based character index of the problem
    /// (the input's length when the input ended too early); `None` when the
    /// problem is the input as a whole.
    pub position: Option<usize>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(position) => write!(f, "{} (at character {})", self.message, position + 1),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ParseError {}

/// parse_selector parses a series selector for `query` and returns its
/// matchers, the metric name (if written before the braces) first as a
/// `__name__ = "name"` matcher.
///
/// Like PromQL it refuses an empty selector, a metric name set both
/// before the braces and as `__name__`, and a selector whose every
/// matcher matches the empty string (which would select every series).
/// Regex matchers are assumed not to match the empty string: only the
/// server compiles them.
pub fn parse_selector(text: &str) -> Result<Vec<Matcher>, ParseError> {
    let parsed = Parser::new(text).selector()?;
    let mut matchers = Vec::with_capacity(parsed.matchers.len() + 1);
    if let Some(name) = parsed.metric {
        if let Some((m, position)) = parsed
            .matchers
            .iter()
            .find(|(m, _)| m.name == METRIC_NAME_LABEL)
        {
            return Err(ParseError {
                message: format!(
                    "metric name must not be set twice: {name:?} and {}{}{:?}",
                    METRIC_NAME_LABEL,
                    m.op.as_str(),
                    m.value
                ),
                position: Some(*position),
            });
        }
        matchers.push(Matcher {
            name: METRIC_NAME_LABEL.to_owned(),
            op: MatchOp::Equal,
            value: name,
        });
    }
    matchers.extend(parsed.matchers.into_iter().map(|(m, _)| m));
    let selects_something = matchers.iter().any(|m| match m.op {
        MatchOp::Equal => !m.value.is_empty(),
        MatchOp::NotEqual => m.value.is_empty(),
        MatchOp::Regex | MatchOp::NotRegex => true,
    });
    if !selects_something {
        return Err(ParseError {
            message: "a selector must contain at least one matcher that does not match \
                      the empty string"
                .to_owned(),
            position: None,
        });
    }
    Ok(matchers)
}

/// parse_series parses the series of a `write`: `metric{a="b",...}`,
/// `metric`, or `{__name__="metric",a="b",...}`, and returns its labels
/// (the metric name as `__name__`) sorted by name, each name once.
///
/// Only `=` is allowed. A label with an empty value is refused rather
/// than dropped, since Prometheus treats such a label as absent and a
/// silent drop would surprise.
pub fn parse_series(text: &str) -> Result<Vec<(String, String)>, ParseError> {
    let parsed = Parser::new(text).selector()?;
    let mut labels: Vec<(String, String)> = Vec::with_capacity(parsed.matchers.len() + 1);
    let mut name_set = false;
    if let Some(name) = parsed.metric {
        labels.push((METRIC_NAME_LABEL.to_owned(), name));
        name_set = true;
    }
    for (m, position) in parsed.matchers {
        if m.op != MatchOp::Equal {
            return Err(ParseError {
                message: format!(
                    "a series for write takes only '=' labels, found '{}' for label {:?}",
                    m.op.as_str(),
                    m.name
                ),
                position: Some(position),
            });
        }
        if labels.iter().any(|(name, _)| *name == m.name) {
            let message = if m.name == METRIC_NAME_LABEL {
                "metric name must not be set twice".to_owned()
            } else {
                format!("label {:?} is set twice", m.name)
            };
            return Err(ParseError {
                message,
                position: Some(position),
            });
        }
        if m.value.is_empty() {
            return Err(ParseError {
                message: format!(
                    "label {:?} has an empty value; omit the label instead",
                    m.name
                ),
                position: Some(position),
            });
        }
        if m.name == METRIC_NAME_LABEL {
            name_set = true;
        }
        labels.push((m.name, m.value));
    }
    if !name_set {
        return Err(ParseError {
            message: format!(
                "a series needs a metric name, before the braces or as {METRIC_NAME_LABEL}=\"...\""
            ),
            position: None,
        });
    }
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(labels)
}

/// parse_value parses a sample value: a decimal float (`1`, `-2.5`,
/// `1e3`), `NaN`, `+Inf`, `-Inf` (also `Inf`; case-insensitive, as Go's
/// `ParseFloat` that Prometheus uses).
pub fn parse_value(text: &str) -> Result<f64, ParseError> {
    text.trim().parse::<f64>().map_err(|_| ParseError {
        message: format!("invalid sample value {text:?}: expected a number, NaN, +Inf or -Inf"),
        position: None,
    })
}

/// The raw result of parsing: the name before the braces and the
/// matchers with the character position each starts at.
struct ParsedSelector {
    metric: Option<String>,
    matchers: Vec<(Matcher, usize)>,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn new(text: &str) -> Parser {
        Parser {
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            message: message.into(),
            position: Some(self.pos),
        })
    }

    fn describe_here(&self) -> String {
        match self.peek() {
            Some(c) => format!("unexpected {c:?}"),
            None => "unexpected end of input".to_owned(),
        }
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn selector(mut self) -> Result<ParsedSelector, ParseError> {
        self.skip_whitespace();
        let metric = if self.peek().is_some_and(is_metric_start) {
            Some(self.identifier(is_metric_continue))
        } else {
            None
        };
        self.skip_whitespace();
        let mut matchers = Vec::new();
        let mut braces = false;
        if self.peek() == Some('{') {
            braces = true;
            self.pos += 1;
            matchers = self.matchers()?;
            self.skip_whitespace();
        }
        if metric.is_none() && !braces {
            return if self.peek().is_none() {
                self.error("empty selector: expected a metric name or '{'")
            } else {
                self.error(format!(
                    "{}: expected a metric name or '{{'",
                    self.describe_here()
                ))
            };
        }
        if metric.is_none() && matchers.is_empty() {
            return Err(ParseError {
                message: "a selector without a metric name needs at least one matcher".to_owned(),
                position: None,
            });
        }
        if self.peek().is_some() {
            return self.error(format!(
                "{} after the selector: only a plain series selector is supported \
                 (no functions, operators, ranges or offsets)",
                self.describe_here()
            ));
        }
        Ok(ParsedSelector { metric, matchers })
    }

    /// Parses after `{` up to and including `}`.
    fn matchers(&mut self) -> Result<Vec<(Matcher, usize)>, ParseError> {
        let mut matchers = Vec::new();
        loop {
            self.skip_whitespace();
            match self.peek() {
                Some('}') => {
                    self.pos += 1;
                    return Ok(matchers);
                }
                Some(c) if is_label_start(c) => {}
                _ => {
                    return self.error(format!(
                        "{}: expected a label name or '}}'",
                        self.describe_here()
                    ));
                }
            }
            let start = self.pos;
            let name = self.identifier(is_label_continue);
            self.skip_whitespace();
            let op = self.operator()?;
            self.skip_whitespace();
            let value = self.string()?;
            matchers.push((Matcher { name, op, value }, start));
            self.skip_whitespace();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {}
                _ => {
                    return self.error(format!(
                        "{}: expected ',' or '}}' after a matcher",
                        self.describe_here()
                    ));
                }
            }
        }
    }

    fn identifier(&mut self, is_continue: fn(char) -> bool) -> String {
        let start = self.pos;
        self.pos += 1;
        while self.peek().is_some_and(is_continue) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn operator(&mut self) -> Result<MatchOp, ParseError> {
        let op = match (self.peek(), self.peek_at(1)) {
            (Some('='), Some('~')) => MatchOp::Regex,
            (Some('!'), Some('~')) => MatchOp::NotRegex,
            (Some('!'), Some('=')) => MatchOp::NotEqual,
            (Some('='), _) => MatchOp::Equal,
            _ => {
                return self.error(format!(
                    "{}: expected one of '=', '!=', '=~', '!~'",
                    self.describe_here()
                ));
            }
        };
        self.pos += op.as_str().len();
        Ok(op)
    }

    /// Parses a PromQL string literal and returns its value.
    fn string(&mut self) -> Result<String, ParseError> {
        let quote = match self.peek() {
            Some(q @ ('"' | '\'' | '`')) => q,
            _ => {
                return self.error(format!(
                    "{}: expected a quoted string",
                    self.describe_here()
                ));
            }
        };
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(ParseError {
                    message: "unterminated quoted string".to_owned(),
                    position: Some(start),
                });
            };
            if c == quote {
                self.pos += 1;
                return Ok(value);
            }
            if quote != '`' && c == '\n' {
                return self.error("unterminated quoted string: newline before the closing quote");
            }
            if quote != '`' && c == '\\' {
                value.push(self.escape()?);
            } else {
                value.push(c);
                self.pos += 1;
            }
        }
    }

    /// Parses one escape sequence starting at the backslash.
    fn escape(&mut self) -> Result<char, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let Some(c) = self.peek() else {
            return self.error("unterminated escape sequence");
        };
        self.pos += 1;
        let simple = match c {
            'a' => Some('\u{07}'),
            'b' => Some('\u{08}'),
            'f' => Some('\u{0C}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{0B}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            '\'' => Some('\''),
            _ => None,
        };
        if let Some(c) = simple {
            return Ok(c);
        }
        let (digits, radix) = match c {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => {
                self.pos -= 1;
                (3, 8)
            }
            _ => {
                return Err(ParseError {
                    message: format!("unknown escape sequence \\{c}"),
                    position: Some(start),
                });
            }
        };
        let mut code: u32 = 0;
        for _ in 0..digits {
            let Some(d) = self.peek().and_then(|d| d.to_digit(radix)) else {
                return Err(ParseError {
                    message: format!(
                        "invalid escape sequence: \\{c} needs {digits} base-{radix} digits"
                    ),
                    position: Some(start),
                });
            };
            code = code * radix + d;
            self.pos += 1;
        }
        // Go's \x and octal escapes denote bytes, which may form invalid
        // UTF-8; label values are UTF-8 strings, so only ASCII bytes are
        // taken. Other characters can be written as themselves or as \u.
        if matches!(c, 'x' | '0'..='7') && code >= 0x80 {
            return Err(ParseError {
                message: "a byte escape above \\x7f is not valid UTF-8 on its own; \
                          write the character or use \\u"
                    .to_owned(),
                position: Some(start),
            });
        }
        char::from_u32(code).ok_or(ParseError {
            message: format!("escape sequence denotes an invalid character U+{code:X}"),
            position: Some(start),
        })
    }
}

fn is_metric_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_metric_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn is_label_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_label_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
        Matcher {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn selector_with_every_operator() {
        let got = parse_selector(r#"up{a="b",c!="d",e=~"re.*",f!~"x|y"}"#).unwrap();
        assert_eq!(
            got,
            vec![
                m("__name__", MatchOp::Equal, "up"),
                m("a", MatchOp::Equal, "b"),
                m("c", MatchOp::NotEqual, "d"),
                m("e", MatchOp::Regex, "re.*"),
                m("f", MatchOp::NotRegex, "x|y"),
            ]
        );
    }

    #[test]
    fn selector_name_only_and_whitespace_and_trailing_comma() {
        assert_eq!(
            parse_selector("node_cpu_seconds_total").unwrap(),
            vec![m("__name__", MatchOp::Equal, "node_cpu_seconds_total")]
        );
        assert_eq!(
            parse_selector("  job:up:sum { job = \"api\" , } ").unwrap(),
            vec![
                m("__name__", MatchOp::Equal, "job:up:sum"),
                m("job", MatchOp::Equal, "api"),
            ]
        );
        assert_eq!(
            parse_selector("up{}").unwrap(),
            vec![m("__name__", MatchOp::Equal, "up")]
        );
    }

    #[test]
    fn selector_without_name() {
        assert_eq!(
            parse_selector(r#"{__name__="up"}"#).unwrap(),
            vec![m("__name__", MatchOp::Equal, "up")]
        );
        assert_eq!(
            parse_selector(r#"{job=~"api.*"}"#).unwrap(),
            vec![m("job", MatchOp::Regex, "api.*")]
        );
    }

    #[test]
    fn selector_string_forms_and_escapes() {
        let got =
            parse_selector(r#"x{a="q\"b\\s\nn\t\u00e9\x41\101", b='it\'s', c=`raw\d+"`}"#).unwrap();
        assert_eq!(got[1], m("a", MatchOp::Equal, "q\"b\\s\nn\té\u{41}A"));
        assert_eq!(got[2], m("b", MatchOp::Equal, "it's"));
        assert_eq!(got[3], m("c", MatchOp::Equal, "raw\\d+\""));
    }

    #[test]
    fn selector_errors() {
        for (input, fragment) in [
            ("", "empty selector"),
            ("   ", "empty selector"),
            ("{}", "needs at least one matcher"),
            (r#"{a=""}"#, "does not match the empty string"),
            (r#"{a!="x"}"#, "does not match the empty string"),
            (r#"up{__name__="up"}"#, "metric name must not be set twice"),
            (r#"up{a="b""#, "expected ',' or '}'"),
            (r#"up{a="b"#, "unterminated quoted string"),
            ("up{a=\"b\nc\"}", "newline"),
            (r#"up{a=b}"#, "expected a quoted string"),
            (r#"up{a=="b"}"#, "expected a quoted string"),
            (r#"up{a<"b"}"#, "expected one of"),
            (r#"up{1a="b"}"#, "expected a label name"),
            (r#"up{a="\q"}"#, "unknown escape sequence \\q"),
            (r#"up{a="\u12"}"#, "needs 4 base-16 digits"),
            (r#"up{a="\xff"}"#, "not valid UTF-8"),
            (r#"up{a="\ud800"}"#, "invalid character"),
            ("up[5m]", "only a plain series selector"),
            ("rate(up[5m])", "only a plain series selector"),
            (r#"up{a="b"} offset 5m"#, "only a plain series selector"),
            ("1up", "expected a metric name"),
        ] {
            let err = parse_selector(input).expect_err(input);
            assert!(
                err.message.contains(fragment),
                "input {input:?}: error {err:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn selector_error_position() {
        let err = parse_selector(r#"up{a="b" c="d"}"#).unwrap_err();
        assert_eq!(err.position, Some(9));
        assert_eq!(
            err.to_string(),
            "unexpected 'c': expected ',' or '}' after a matcher (at character 10)"
        );
    }

    #[test]
    fn series_sorted_with_name() {
        assert_eq!(
            parse_series(r#"http_requests_total{path="/a",code="200"}"#).unwrap(),
            labels(&[
                ("__name__", "http_requests_total"),
                ("code", "200"),
                ("path", "/a"),
            ])
        );
        assert_eq!(parse_series("up").unwrap(), labels(&[("__name__", "up")]));
        assert_eq!(
            parse_series(r#"{job="x", __name__="up"}"#).unwrap(),
            labels(&[("__name__", "up"), ("job", "x")])
        );
    }

    #[test]
    fn series_escapes() {
        assert_eq!(
            parse_series(r#"m{a="say \"hi\"", b="back\\slash", c="two\nlines"}"#).unwrap(),
            labels(&[
                ("__name__", "m"),
                ("a", "say \"hi\""),
                ("b", "back\\slash"),
                ("c", "two\nlines"),
            ])
        );
    }

    #[test]
    fn series_errors() {
        for (input, fragment) in [
            (r#"{job="x"}"#, "needs a metric name"),
            (r#"up{a!="b"}"#, "only '=' labels"),
            (r#"up{a=~"b"}"#, "only '=' labels"),
            (r#"up{a="b",a="c"}"#, "\"a\" is set twice"),
            (r#"up{__name__="up"}"#, "metric name must not be set twice"),
            (r#"up{a=""}"#, "empty value"),
            ("{}", "needs at least one matcher"),
            ("", "empty selector"),
        ] {
            let err = parse_series(input).expect_err(input);
            assert!(
                err.message.contains(fragment),
                "input {input:?}: error {err:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn conversions_to_the_api() {
        let got: Vec<pb::LabelMatcher> = parse_selector(r#"up{a!="b",c=~"d",e!~"f"}"#)
            .unwrap()
            .into_iter()
            .map(pb::LabelMatcher::from)
            .collect();
        let types: Vec<pb::MatchType> = got.iter().map(|m| m.r#type()).collect();
        assert_eq!(
            types,
            vec![
                pb::MatchType::MatchEqual,
                pb::MatchType::MatchNotEqual,
                pb::MatchType::MatchRegex,
                pb::MatchType::MatchNotRegex,
            ]
        );
        assert_eq!(
            (got[0].name.as_str(), got[0].value.as_str()),
            ("__name__", "up")
        );
        let labels = to_labels(parse_series(r#"up{job="x"}"#).unwrap());
        assert_eq!(labels[1].name, "job");
        assert_eq!(labels[1].value, "x");
    }

    #[test]
    fn values() {
        assert_eq!(parse_value("1").unwrap(), 1.0);
        assert_eq!(parse_value("-2.5").unwrap(), -2.5);
        assert_eq!(parse_value("1e3").unwrap(), 1000.0);
        assert!(parse_value("NaN").unwrap().is_nan());
        assert_eq!(parse_value("+Inf").unwrap(), f64::INFINITY);
        assert_eq!(parse_value("-Inf").unwrap(), f64::NEG_INFINITY);
        assert_eq!(parse_value("Inf").unwrap(), f64::INFINITY);
        assert_eq!(
            parse_value("abc").unwrap_err().to_string(),
            r#"invalid sample value "abc": expected a number, NaN, +Inf or -Inf"#
        );
        for bad in ["", "abc", "1,5", "0x10", "1 2"] {
            assert!(parse_value(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
