//! A checker of the Prometheus text exposition format (version 0.0.4),
//! strict enough for tests of `/metrics`:
//!
//! - `# HELP name text` and `# TYPE name type` (counter, gauge, histogram,
//!   summary, untyped), at most one of each per family, before its samples;
//!   other `#` lines are comments, empty lines are ignored;
//! - every sample is `name{label="value",...} value [timestamp]`, with
//!   well-formed names, no label twice, values escaped (`\\`, `\"`, `\n`
//!   only), a Go float value (`NaN`, `+Inf`, `-Inf` included) and an
//!   optional integer timestamp;
//! - every sample belongs to a family declared by a `# TYPE` line (the
//!   format allows untyped samples; raftwatch declares every family), and
//!   a family's samples are contiguous and never repeated;
//! - counter families end in `_total`; histograms have, per label set,
//!   `_bucket` samples with `le` in increasing order, cumulative counts,
//!   a last `le="+Inf"` bucket equal to `_count`, and a `_sum`.
//!
//! Shared by `raftwatch`'s unit tests (through `#[path]`) and the cluster
//! tests (`raftwatch_tests::exposition`), so both hold `/metrics` to the
//! same grammar. Only `std`.

use std::collections::{BTreeMap, BTreeSet};

/// `Family` is one declared metric family and its samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Family {
    /// The `# TYPE` (counter, gauge, histogram, summary, untyped).
    pub kind: String,
    /// The `# HELP` text, unescaped.
    pub help: Option<String>,
    /// Its samples in order.
    pub samples: Vec<Sample>,
}

/// `Sample` is one sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's name (a histogram's carries `_bucket`, `_sum`, ...).
    pub name: String,
    /// Its labels in the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// `label` is the value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `parse` checks `text` and returns its families by name, or the first
/// error with its line number.
pub fn parse(text: &str) -> Result<BTreeMap<String, Family>, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut helped: BTreeSet<String> = BTreeSet::new();
    // The family whose samples are being read, and those already closed.
    let mut current: Option<String> = None;
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for (i, line) in text.split('\n').enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start_matches([' ', '\t']);
            let mut parts = rest.splitn(3, [' ', '\t']);
            let keyword = parts.next().unwrap_or("");
            if keyword != "HELP" && keyword != "TYPE" {
                continue; // A comment.
            }
            let name = parts.next().unwrap_or("");
            let arg = parts.next().unwrap_or("");
            check_metric_name(name).map_err(at)?;
            if keyword == "HELP" {
                if !helped.insert(name.to_string()) {
                    return Err(at("a second HELP for the family".into()));
                }
                let help = unescape_help(arg).map_err(at)?;
                families.entry(name.to_string()).or_default().help = Some(help);
            } else {
                let kind = arg.trim_end_matches([' ', '\t']);
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(at(format!("unknown type {kind:?}")));
                }
                if kind == "counter" && !name.ends_with("_total") {
                    return Err(at("a counter's name must end in _total".into()));
                }
                let family = families.entry(name.to_string()).or_default();
                if !family.kind.is_empty() {
                    return Err(at("a second TYPE for the family".into()));
                }
                if !family.samples.is_empty() {
                    return Err(at("TYPE after the family's samples".into()));
                }
                family.kind = kind.to_string();
            }
            continue;
        }
        let sample = parse_sample(line).map_err(at)?;
        let family = family_of(&families, &sample.name)
            .ok_or_else(|| at(format!("{} belongs to no declared family", sample.name)))?;
        if current.as_deref() != Some(family.as_str()) {
            if closed.contains(&family) {
                return Err(at(format!("the samples of {family} are not contiguous")));
            }
            if let Some(previous) = current.replace(family.clone()) {
                closed.insert(previous);
            }
        }
        let key = format!("{}{:?}", sample.name, sample.labels);
        if !seen.insert(key) {
            return Err(at("the same sample twice".into()));
        }
        if let Some(f) = families.get_mut(&family) {
            f.samples.push(sample);
        }
    }
    for (name, f) in &families {
        if f.kind.is_empty() {
            return Err(format!("{name} has a HELP but no TYPE"));
        }
        if f.kind == "histogram" {
            check_histogram(name, &f.samples)?;
        }
    }
    Ok(families)
}

/// The declared family a sample name belongs to.
fn family_of(families: &BTreeMap<String, Family>, name: &str) -> Option<String> {
    let declared = |n: &str, kinds: &[&str]| {
        families
            .get(n)
            .is_some_and(|f| kinds.contains(&f.kind.as_str()))
    };
    if declared(name, &["counter", "gauge", "summary", "untyped"]) {
        return Some(name.to_string());
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            let kinds: &[&str] = if suffix == "_bucket" {
                &["histogram"]
            } else {
                &["histogram", "summary"]
            };
            if declared(base, kinds) {
                return Some(base.to_string());
            }
        }
    }
    None
}

fn check_histogram(name: &str, samples: &[Sample]) -> Result<(), String> {
    // Label set without `le` → (buckets in order, sum, count).
    type Series = (Vec<(f64, f64)>, Option<f64>, Option<f64>);
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    for s in samples {
        let rest: Vec<&(String, String)> = s.labels.iter().filter(|(n, _)| n != "le").collect();
        let entry = series.entry(format!("{rest:?}")).or_default();
        if s.name.ends_with("_bucket") {
            let le = s
                .label("le")
                .ok_or_else(|| format!("{}: a bucket without le", s.name))?;
            let le = parse_float(le).map_err(|e| format!("{}: le {e}", s.name))?;
            entry.0.push((le, s.value));
        } else if s.name.ends_with("_sum") {
            entry.1 = Some(s.value);
        } else {
            entry.2 = Some(s.value);
        }
    }
    for (labels, (buckets, sum, count)) in series {
        let what = format!("histogram {name}{labels}");
        for w in buckets.windows(2) {
            if w[1].0 <= w[0].0 {
                return Err(format!("{what}: le not increasing"));
            }
            if w[1].1 < w[0].1 {
                return Err(format!("{what}: bucket counts not cumulative"));
            }
        }
        let inf = match buckets.last() {
            Some((le, v)) if *le == f64::INFINITY => *v,
            _ => return Err(format!("{what}: no le=\"+Inf\" bucket last")),
        };
        if sum.is_none() {
            return Err(format!("{what}: no _sum"));
        }
        if count != Some(inf) {
            return Err(format!(
                "{what}: _count {count:?} is not the +Inf bucket {inf}"
            ));
        }
    }
    Ok(())
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if ok {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__");
    if ok {
        Ok(())
    } else {
        Err(format!("bad label name {name:?}"))
    }
}

fn unescape_help(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                other => return Err(format!("bad escape in HELP: \\{other:?}")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    check_metric_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels: Vec<(String, String)> = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=').ok_or("a label without =")?;
            let label = rest[..eq].trim_end_matches([' ', '\t']);
            check_label_name(label)?;
            if labels.iter().any(|(n, _)| n == label) {
                return Err(format!("label {label} twice"));
            }
            rest = rest[eq + 1..].trim_start_matches([' ', '\t']);
            rest = rest
                .strip_prefix('"')
                .ok_or("a label value must be quoted")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err("an unterminated label value".into()),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape in a label value: {other:?}")),
                    },
                    Some((_, '\n')) => return Err("a raw newline in a label value".into()),
                    Some((_, c)) => value.push(c),
                }
            };
            labels.push((label.to_string(), value));
            rest = rest[end + 1..].trim_start_matches([' ', '\t']);
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err("labels must be separated by commas".into());
            }
        }
    }
    if !rest.starts_with([' ', '\t']) {
        return Err("no space before the value".into());
    }
    let mut fields = rest.split([' ', '\t']).filter(|f| !f.is_empty());
    let value = parse_float(fields.next().ok_or("no value")?)?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("text after the timestamp".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// A value as Go's `strconv.ParseFloat` reads the format's floats.
fn parse_float(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        // Rust would also read "inf", "infinity" and "nan": Go's grammar
        // for the format does not, so only digits, signs, dots and
        // exponents reach `parse`.
        _ if s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) => {
            s.parse().map_err(|_| format!("bad value {s:?}"))
        }
        _ => Err(format!("bad value {s:?}")),
    }
}
