//! Alertmanager label matchers.
//!
//! A matcher compares one label's value (absent = `""`) with a literal
//! (`=`, `!=`) or a regular expression anchored at both ends (`=~`, `!~`),
//! exactly as Alertmanager does. Serialised as Alertmanager's API v2
//! shape: `{"name", "value", "isRegex", "isEqual"}`.

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
