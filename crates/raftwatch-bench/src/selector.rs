//! A small parser for the series selectors `query --expr` takes:
//! `metric{a="b",c!="d",e=~"re",f!~"re"}`.
//!
//! A deliberately smaller cousin of raftwatchctl's parser (a binary crate,
//! so not a dependency): the metric name is optional when braces follow;
//! values are double-quoted with the escapes `\"`, `\\`, `\n` and `\t`; a
//! trailing comma is allowed. No single quotes, backquotes or numeric
//! escapes: bench expressions are typed by whoever runs the bench.

/// `METRIC_NAME_LABEL` is the label that carries a series' metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// `MatchOp` is the operator of a label matcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (the server anchors and compiles the regex).
    Regex,
    /// `!~`
    NotRegex,
}

/// `Matcher` is one `name OP "value"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    /// The label name (`__name__` for the metric name).
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The unquoted value.
    pub value: String,
}

/// `parse_selector` returns the matchers of `text`, the metric name (when
/// written before the braces) first as `__name__="name"`. It refuses an
/// empty selector and anything after the closing brace; whether the
/// matchers select too much is the server's call.
pub fn parse_selector(text: &str) -> Result<Vec<Matcher>, String> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
    };
    p.skip_ws();
    let mut matchers = Vec::new();
    if p.peek()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
    {
        let name = p.ident(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        matchers.push(Matcher {
            name: METRIC_NAME_LABEL.to_owned(),
            op: MatchOp::Equal,
            value: name,
        });
        p.skip_ws();
    }
    if p.peek() == Some('{') {
        p.pos += 1;
        p.matchers(&mut matchers)?;
        p.skip_ws();
    }
    if let Some(c) = p.peek() {
        return Err(p.error(&format!(
            "unexpected {c:?}: expected a metric name, '{{' or the end (only plain selectors)"
        )));
    }
    if matchers.is_empty() {
        return Err("empty selector: expected a metric name or at least one matcher".into());
    }
    Ok(matchers)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn error(&self, message: &str) -> String {
        format!("{message} (at character {})", self.pos + 1)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn ident(&mut self, ok: fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(ok) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// Parses after `{` up to and including `}`.
    fn matchers(&mut self, out: &mut Vec<Matcher>) -> Result<(), String> {
        loop {
            self.skip_ws();
            match self.peek() {
                Some('}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
                _ => return Err(self.error("expected a label name or '}'")),
            }
            let name = self.ident(|c| c.is_ascii_alphanumeric() || c == '_');
            self.skip_ws();
            let op = match (self.peek(), self.chars.get(self.pos + 1).copied()) {
                (Some('='), Some('~')) => MatchOp::Regex,
                (Some('!'), Some('~')) => MatchOp::NotRegex,
                (Some('!'), Some('=')) => MatchOp::NotEqual,
                (Some('='), _) => MatchOp::Equal,
                _ => return Err(self.error("expected one of '=', '!=', '=~', '!~'")),
            };
            self.pos += if op == MatchOp::Equal { 1 } else { 2 };
            self.skip_ws();
            let value = self.string()?;
            out.push(Matcher { name, op, value });
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {}
                _ => return Err(self.error("expected ',' or '}' after a matcher")),
            }
        }
    }

    /// Parses a double-quoted string and returns its value.
    fn string(&mut self) -> Result<String, String> {
        if self.peek() != Some('"') {
            return Err(self.error("expected a double-quoted string"));
        }
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        loop {
            match self.peek() {
                None => {
                    self.pos = start;
                    return Err(self.error("unterminated string"));
                }
                Some('"') => {
                    self.pos += 1;
                    return Ok(value);
                }
                Some('\\') => {
                    self.pos += 1;
                    let c = match self.peek() {
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('n') => '\n',
                        Some('t') => '\t',
                        _ => return Err(self.error("unknown escape (use \\\" \\\\ \\n \\t)")),
                    };
                    value.push(c);
                    self.pos += 1;
                }
                Some(c) => {
                    value.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
        Matcher {
            name: name.into(),
            op,
            value: value.into(),
        }
    }

    #[test]
    fn every_operator() {
        assert_eq!(
            parse_selector(r#"up{a="b",c!="d",e=~"re.*",f!~"x|y"}"#).unwrap(),
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
    fn name_optional_whitespace_trailing_comma_escapes() {
        assert_eq!(
            parse_selector(r#"node_cpu_seconds_total{mode="idle"}"#).unwrap(),
            vec![
                m("__name__", MatchOp::Equal, "node_cpu_seconds_total"),
                m("mode", MatchOp::Equal, "idle"),
            ]
        );
        assert_eq!(
            parse_selector("job:up:sum").unwrap(),
            vec![m("__name__", MatchOp::Equal, "job:up:sum")]
        );
        assert_eq!(
            parse_selector(r#" { job =~ "no.*" , } "#).unwrap(),
            vec![m("job", MatchOp::Regex, "no.*")]
        );
        assert_eq!(
            parse_selector(r#"x{a="q\"b\\c\n\t"}"#).unwrap()[1],
            m("a", MatchOp::Equal, "q\"b\\c\n\t")
        );
        assert_eq!(
            parse_selector("up{}").unwrap(),
            vec![m("__name__", MatchOp::Equal, "up")]
        );
    }

    #[test]
    fn errors() {
        for (input, fragment) in [
            ("", "empty selector"),
            ("{}", "empty selector"),
            (r#"up{a="b""#, "expected ',' or '}'"),
            (r#"up{a="b"#, "unterminated string (at character 6)"),
            (r#"up{a=b}"#, "expected a double-quoted string"),
            (r#"up{a='b'}"#, "expected a double-quoted string"),
            (r#"up{a<"b"}"#, "expected one of"),
            (r#"up{1a="b"}"#, "expected a label name"),
            (r#"up{a="\q"}"#, "unknown escape"),
            ("rate(up[5m])", "only plain selectors"),
            (r#"up{a="b"} offset 5m"#, "only plain selectors"),
            ("1up", "unexpected '1'"),
        ] {
            let err = parse_selector(input).expect_err(input);
            assert!(
                err.contains(fragment),
                "{input:?}: {err:?} lacks {fragment:?}"
            );
        }
    }
}
