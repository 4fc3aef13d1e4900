//! The engine's label sets: small sorted vectors of (name, value), freely
//! rewritten by functions and operators. Validation against the ingest
//! limits is the write path's business, not the evaluator's.

use std::fmt;

/// The metric name label.
pub const NAME: &str = "__name__";

/// `Labels` is a label set sorted by name, with no empty values (an empty
/// value means "absent", as in Prometheus).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// `new` sorts `pairs` by name, drops empty values and keeps the last
    /// of duplicate names.
    pub fn new(mut pairs: Vec<(String, String)>) -> Labels {
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for p in pairs {
            match out.last_mut() {
                Some(last) if last.0 == p.0 => *last = p,
                _ => out.push(p),
            }
        }
        Labels(out)
    }

    /// `from_strs` builds a label set from string pairs (tests, literals).
    pub fn from_strs(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// `iter` yields (name, value) in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// `len` is the number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `is_empty` says whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `get` is the value of `name`, or "" when absent.
    pub fn get(&self, name: &str) -> &str {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => &self.0[i].1,
            Err(_) => "",
        }
    }

    /// `has` says whether `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .is_ok()
    }

    /// `set` sets `name` to `value`; an empty value removes it.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (name.to_string(), value.to_string())),
        }
    }

    /// `remove` removes `name` if present.
    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            self.0.remove(i);
        }
    }

    /// `without_name` is the set without `__name__`.
    pub fn without_name(&self) -> Labels {
        let mut l = self.clone();
        l.remove(NAME);
        l
    }

    /// `keep` is the set restricted to `names` (`by (...)`, `on (...)`).
    pub fn keep(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(n, _)| names.iter().any(|k| k == n))
                .cloned()
                .collect(),
        )
    }

    /// `drop` is the set without `names` (`without (...)`, `ignoring
    /// (...)`); `also_name` drops `__name__` too.
    pub fn drop(&self, names: &[String], also_name: bool) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(n, _)| !(names.iter().any(|k| k == n) || also_name && n == NAME))
                .cloned()
                .collect(),
        )
    }

    /// `into_pairs` is the sorted pairs.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.0
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Prometheus's text form: `name{a="1", b="2"}`, or `{...}` without a
/// name.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.get(NAME);
        f.write_str(name)?;
        let rest: Vec<_> = self.iter().filter(|(n, _)| *n != NAME).collect();
        if rest.is_empty() && !name.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, (n, v)) in rest.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}={v:?}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sorts_drops_empty_values_and_keeps_the_last_duplicate() {
        let l = Labels::new(vec![
            ("b".into(), "2".into()),
            ("a".into(), "1".into()),
            ("c".into(), "".into()),
            ("a".into(), "3".into()),
        ]);
        assert_eq!(l.to_string(), r#"{a="3", b="2"}"#);
        assert_eq!(l.get("c"), "");
    }

    #[test]
    fn set_keeps_order_and_empty_removes() {
        let mut l = Labels::from_strs(&[("__name__", "up"), ("job", "x")]);
        l.set("instance", "i");
        assert_eq!(l.to_string(), r#"up{instance="i", job="x"}"#);
        l.set("job", "");
        assert_eq!(l.to_string(), r#"up{instance="i"}"#);
        assert_eq!(l.without_name().to_string(), r#"{instance="i"}"#);
    }
}
