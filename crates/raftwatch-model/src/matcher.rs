//! Label matchers with Prometheus semantics.
//!
//! A matcher compares one label's value; an absent label has the value "".
//! Regular expressions are fully anchored and `.` matches newlines, exactly
//! as Prometheus compiles them (`^(?s:<re>)$`).

use std::fmt;

use regex::Regex;
use thiserror::Error;

/// `MatchOp` is the comparison a [`Matcher`] performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchOp {
    /// `=`: the value equals.
    Equal,
    /// `!=`: the value differs.
    NotEqual,
    /// `=~`: the whole value matches the regex.
    RegexMatch,
    /// `!~`: the whole value does not match the regex.
    RegexNoMatch,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        })
    }
}

/// `MatcherError` says why a matcher could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MatcherError {
    /// The regular expression did not compile.
    #[error("invalid regular expression {pattern:?} for label {name:?}: {reason}")]
    InvalidRegex {
        /// The label the matcher applies to.
        name: String,
        /// The pattern as given.
        pattern: String,
        /// The regex engine's message.
        reason: String,
    },
}

/// `Matcher` selects series by one label's value.
#[derive(Clone)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// `new` builds a matcher; regex patterns are compiled fully anchored.
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, MatcherError> {
        let name = name.into();
        let value = value.into();
        let regex = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                let anchored = format!("^(?s:{value})$");
                Some(
                    Regex::new(&anchored).map_err(|e| MatcherError::InvalidRegex {
                        name: name.clone(),
                        pattern: value.clone(),
                        reason: e.to_string(),
                    })?,
                )
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            regex,
        })
    }

    /// `equal` is shorthand for an `=` matcher (which cannot fail).
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    /// `name` is the label this matcher reads.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `op` is the comparison.
    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// `value` is the literal or the pattern as given (unanchored).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// `matches` applies the matcher to a label value; pass `""` for an
    /// absent label.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => self.value == value,
            MatchOp::NotEqual => self.value != value,
            MatchOp::RegexMatch => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::RegexNoMatch => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// `matches_empty` reports whether the matcher accepts `""`, in which
    /// case it also selects series that lack the label entirely.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_are_fully_anchored_and_dot_matches_newline() {
        let m = Matcher::new(MatchOp::RegexMatch, "a", "fo+").unwrap();
        assert!(m.matches("foo"));
        assert!(!m.matches("xfoo"));
        assert!(!m.matches("foox"));
        let dot = Matcher::new(MatchOp::RegexMatch, "a", "x.y").unwrap();
        assert!(dot.matches("x\ny"));
        let alt = Matcher::new(MatchOp::RegexMatch, "a", "a|b").unwrap();
        assert!(alt.matches("a") && alt.matches("b") && !alt.matches("ab"));
    }

    #[test]
    fn empty_matching() {
        assert!(Matcher::equal("a", "").matches_empty());
        assert!(!Matcher::equal("a", "x").matches_empty());
        assert!(
            Matcher::new(MatchOp::NotEqual, "a", "x")
                .unwrap()
                .matches_empty()
        );
        assert!(
            Matcher::new(MatchOp::RegexMatch, "a", ".*")
                .unwrap()
                .matches_empty()
        );
        assert!(
            !Matcher::new(MatchOp::RegexMatch, "a", ".+")
                .unwrap()
                .matches_empty()
        );
        assert!(
            Matcher::new(MatchOp::RegexNoMatch, "a", ".+")
                .unwrap()
                .matches_empty()
        );
    }

    #[test]
    fn invalid_regex_is_a_typed_error() {
        let err = Matcher::new(MatchOp::RegexMatch, "job", "(").unwrap_err();
        assert!(matches!(err, MatcherError::InvalidRegex { ref name, .. } if name == "job"));
    }
}
