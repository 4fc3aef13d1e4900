//! Prometheus's PromQL test-script language (`promql/promqltest`): a
//! parser and a runner over this engine with a [`MemStorage`].
//!
//! A script is a sequence of commands: `load <interval>` with indented
//! series lines, `clear`, and `eval instant at <t> <expr>` / `eval range
//! from <t0> to <t1> step <s> <expr>` with indented expectations (`expect
//! fail|ordered|warn|info|no_warn|no_info [msg:|regex: ...]`, `expect
//! string "..."`, `expect range vector from .. to .. step ..`, result
//! lines). The older `eval_fail`, `eval_ordered`, `eval_warn`, `eval_info`
//! forms are accepted.
//!
//! Scope: cases that need native histograms (`{{...}}` values,
//! `load_with_nhcb`) or experimental functions and syntax are classified
//! [`Outcome::Beyond`]: counted and reported, never silently dropped.

use std::sync::atomic::AtomicBool;

use crate::labels::{Labels, NAME};
use crate::value::Value;
use crate::{Engine, EngineConfig, Error, MemStorage};

/// `Outcome` is how one eval case went.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The engine's answer matches the expectation.
    Pass,
    /// It does not; the message says how.
    Fail(String),
    /// Out of scope (native histograms, experimental features); the
    /// message says why. The case still runs and its result is reported.
    Beyond(String, bool),
}

/// `CaseResult` is one eval case's outcome.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// 1-based line of the `eval` command.
    pub line: usize,
    /// The expression.
    pub expr: String,
    /// What happened.
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Default, PartialEq)]
enum Expect {
    #[default]
    Values,
    Fail(Option<Match>),
    String(String),
    RangeVector {
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Match {
    Msg(String),
    Regex(String),
}

impl Match {
    fn matches(&self, s: &str) -> bool {
        match self {
            Match::Msg(m) => m.trim() == s.trim(),
            Match::Regex(r) => regex::Regex::new(r.trim()).is_ok_and(|re| re.is_match(s)),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct EvalCmd {
    line: usize,
    expr: String,
    /// Instant: (t, t, 0); range: (start, end, step).
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    range: bool,
    expect: Expect,
    ordered: bool,
    warn: Option<Vec<Match>>,
    info: Option<Vec<Match>>,
    no_warn: bool,
    no_info: bool,
    /// Expected series: labels and values (`None` = no value) per step.
    series: Vec<(Labels, Vec<Option<f64>>)>,
    scalar: Option<f64>,
    /// The case needs native histograms.
    histograms: bool,
}

/// `parse_duration` reads a Prometheus duration (`1h30m`, `5m`, `10s53ms`,
/// `1d`, `1w`, `1y`) or plain seconds (`0`, `1.5`, `-10`), in ms.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Some((secs * 1000.0).round() as i64);
    }
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let ms = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(ms)?)?;
    }
    Some(if neg { -total } else { total })
}

/// `parse_series_line` splits `metric{l="v"} 1+2x3 _ stale` into labels
/// and the expanded values (`None` = omitted). Values holding native
/// histograms (`{{...}}`) are returned as `Err(())` entries' count in the
/// third element.
fn parse_series_line(line: &str) -> Result<(Labels, Vec<Option<f64>>, bool), String> {
    let (labels, rest) = parse_labels(line.trim())?;
    let (vals, hist) = parse_values(rest)?;
    Ok((labels, vals, hist))
}

fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut pairs = Vec::new();
    let name_len = s
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(s.len());
    if name_len > 0 {
        pairs.push((NAME.to_string(), s[..name_len].to_string()));
    }
    let mut rest = &s[name_len..];
    if let Some(r) = rest.strip_prefix('{') {
        rest = r.trim_start();
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            // A name: bare, or quoted (a lone quoted string is the
            // metric name).
            let (name, r) =
                if rest.starts_with('"') || rest.starts_with('\'') || rest.starts_with('`') {
                    let (n, r) = parse_quoted(rest)?;
                    (n, r.trim_start())
                } else {
                    let n = rest
                        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '.'))
                        .unwrap_or(rest.len());
                    (rest[..n].to_string(), rest[n..].trim_start())
                };
            rest = r;
            if let Some(r) = rest.strip_prefix('=') {
                let (v, r) = parse_quoted(r.trim_start())?;
                pairs.push((name, v));
                rest = r.trim_start();
            } else {
                pairs.push((NAME.to_string(), name));
            }
            if let Some(r) = rest.strip_prefix(',') {
                rest = r.trim_start();
            }
        }
    }
    Ok((Labels::new(pairs), rest))
}

fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    let q = s.chars().next().ok_or("expected a quoted string")?;
    if !matches!(q, '"' | '\'' | '`') {
        return Err(format!("expected a quoted string at {s:?}"));
    }
    let mut out = String::new();
    let mut chars = s[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        if c == q {
            return Ok((out, &s[1 + i + 1..]));
        }
        if c == '\\' && q != '`' {
            let (_, e) = chars.next().ok_or("unterminated escape")?;
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                'x' => {
                    let h: String = (0..2).filter_map(|_| chars.next().map(|x| x.1)).collect();
                    let b = u8::from_str_radix(&h, 16).map_err(|e| e.to_string())?;
                    out.push(char::from(b));
                }
                'u' | 'U' => {
                    let n = if e == 'u' { 4 } else { 8 };
                    let h: String = (0..n).filter_map(|_| chars.next().map(|x| x.1)).collect();
                    let cp = u32::from_str_radix(&h, 16).map_err(|e| e.to_string())?;
                    out.push(char::from_u32(cp).ok_or("bad code point")?);
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        } else {
            out.push(c);
        }
    }
    Err("unterminated string".into())
}

fn parse_number(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" | "+nan" | "-nan" => Some(f64::NAN),
        "stale" => Some(raftwatch_model::stale_nan()),
        _ => s.parse::<f64>().ok(),
    }
}

/// `parse_values` expands the value notation; the flag says a native
/// histogram value was present (its points are left out).
fn parse_values(s: &str) -> Result<(Vec<Option<f64>>, bool), String> {
    let mut out = Vec::new();
    let mut hist = false;
    let mut rest = s.trim();
    while !rest.is_empty() {
        if rest.starts_with("{{") {
            hist = true;
            let end = rest.find("}}").ok_or("unterminated histogram")?;
            rest = rest[end + 2..].trim_start();
            // `{{...}}x3` or `{{...}}+{{...}}x3`.
            let tok_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let tok = &rest[..tok_end];
            if tok.starts_with('x') || tok.starts_with('+') || tok.starts_with('-') {
                let times = tok
                    .rsplit('x')
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(0);
                if tok.contains("{{") {
                    let e = rest.find("}}").ok_or("unterminated histogram")?;
                    rest = &rest[e + 2..];
                    let tok_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                    let times = rest[..tok_end]
                        .trim_start_matches('x')
                        .parse::<usize>()
                        .unwrap_or(0);
                    out.extend(std::iter::repeat_n(None, times + 1));
                    rest = rest[tok_end..].trim_start();
                    continue;
                }
                out.extend(std::iter::repeat_n(None, times + 1));
                rest = rest[tok_end..].trim_start();
            } else {
                out.push(None);
            }
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let tok = &rest[..end];
        rest = rest[end..].trim_start();
        if tok == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad repetition {tok:?}"))?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        // a, axN, a+bxN, a-bxN.
        let (head, times) = match tok.rfind('x') {
            Some(i)
                if i > 0
                    && tok[i + 1..].chars().all(|c| c.is_ascii_digit())
                    && i + 1 < tok.len() =>
            {
                (
                    &tok[..i],
                    Some(tok[i + 1..].parse::<usize>().map_err(|e| e.to_string())?),
                )
            }
            _ => (tok, None),
        };
        // Split `a+b` / `a-b` at a sign that is not the leading one or
        // an exponent's.
        let bytes = head.as_bytes();
        let mut split = None;
        for i in 1..bytes.len() {
            if (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E') {
                split = Some(i);
                break;
            }
        }
        let (a, b) = match split {
            Some(i) => (
                parse_number(&head[..i]).ok_or(format!("bad value {tok:?}"))?,
                parse_number(&head[i..]).ok_or(format!("bad value {tok:?}"))?,
            ),
            None => (parse_number(head).ok_or(format!("bad value {tok:?}"))?, 0.0),
        };
        match times {
            None => out.push(Some(a)),
            Some(n) => {
                // Prometheus adds the increment step by step.
                let mut v = a;
                for k in 0..=n {
                    if k > 0 {
                        v += b;
                    }
                    out.push(Some(v));
                }
            }
        }
    }
    Ok((out, hist))
}

/// `Script` is a parsed test file.
#[derive(Debug)]
pub struct Script {
    cmds: Vec<Cmd>,
}

#[derive(Debug)]
enum Cmd {
    Load {
        interval_ms: i64,
        series: Vec<(Labels, Vec<Option<f64>>, bool)>,
        nhcb: bool,
    },
    Clear,
    Eval(Box<EvalCmd>),
}

fn is_indented(line: &str) -> bool {
    line.starts_with(' ') || line.starts_with('\t')
}

impl Script {
    /// `parse` reads a test file's text.
    pub fn parse(text: &str) -> Result<Script, String> {
        let lines: Vec<&str> = text.lines().collect();
        let mut cmds = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                i += 1;
                continue;
            }
            let lineno = i + 1;
            let err = |m: String| format!("line {lineno}: {m}");
            // The block of indented lines that follows.
            let mut block = Vec::new();
            let mut j = i + 1;
            while j < lines.len() && (is_indented(lines[j]) || lines[j].trim().is_empty()) {
                if lines[j].trim().is_empty() {
                    // A blank line ends an eval's expectations.
                    break;
                }
                if !lines[j].trim().starts_with('#') {
                    block.push((j + 1, lines[j].trim()));
                }
                j += 1;
            }
            i = j;
            if t == "clear" {
                cmds.push(Cmd::Clear);
            } else if let Some(rest) = t
                .strip_prefix("load_with_nhcb ")
                .or_else(|| t.strip_prefix("load "))
            {
                let interval_ms =
                    parse_duration(rest).ok_or_else(|| err(format!("bad interval {rest:?}")))?;
                let mut series = Vec::new();
                for (_, l) in &block {
                    series.push(parse_series_line(l).map_err(&err)?);
                }
                cmds.push(Cmd::Load {
                    interval_ms,
                    series,
                    nhcb: t.starts_with("load_with_nhcb"),
                });
            } else if t.starts_with("eval") {
                cmds.push(Cmd::Eval(Box::new(
                    parse_eval(t, lineno, &block).map_err(&err)?,
                )));
            } else {
                return Err(err(format!("unknown command {t:?}")));
            }
        }
        Ok(Script { cmds })
    }

    /// `run` executes the script; one result per eval command.
    /// `experimental` enables Prometheus's experimental functions (their
    /// cases count as [`Outcome::Beyond`] either way).
    pub fn run(&self) -> Vec<CaseResult> {
        let mut storage = MemStorage::new();
        let mut results = Vec::new();
        // Metric names that hold native histograms, and whether the
        // loaded data came from `load_with_nhcb`.
        let mut hist_series: Vec<Labels> = Vec::new();
        let mut nhcb_loaded = false;
        let engine = Engine::new(EngineConfig {
            experimental_functions: true,
            ..EngineConfig::default()
        });
        let strict = Engine::new(EngineConfig::default());
        for cmd in &self.cmds {
            match cmd {
                Cmd::Clear => {
                    storage.clear();
                    hist_series.clear();
                    nhcb_loaded = false;
                }
                Cmd::Load {
                    interval_ms,
                    series,
                    nhcb,
                } => {
                    nhcb_loaded |= nhcb;
                    for (labels, vals, histograms) in series {
                        for (k, v) in vals.iter().enumerate() {
                            if let Some(v) = v {
                                storage.add(labels.clone(), k as i64 * interval_ms, *v);
                            }
                        }
                        if *histograms {
                            hist_series.push(labels.clone());
                        }
                        // `load_with_nhcb` also makes a native histogram
                        // with custom buckets of every classic one.
                        if let Some(base) = labels.get(NAME).strip_suffix("_bucket")
                            && *nhcb
                        {
                            let mut l = labels.clone();
                            l.remove("le");
                            l.set(NAME, base);
                            hist_series.push(l);
                        }
                    }
                }
                Cmd::Eval(e) => {
                    let beyond = beyond_reason(e, &hist_series, nhcb_loaded, &engine, &strict);
                    let outcome = run_eval(&engine, &storage, e);
                    let outcome = match (beyond, outcome) {
                        (Some(why), Outcome::Pass) => Outcome::Beyond(why, true),
                        (Some(why), Outcome::Fail(m)) => {
                            Outcome::Beyond(format!("{why}: {m}"), false)
                        }
                        (None, o) => o,
                        (Some(_), b @ Outcome::Beyond(..)) => b,
                    };
                    results.push(CaseResult {
                        line: e.line,
                        expr: e.expr.clone(),
                        outcome,
                    });
                }
            }
        }
        results
    }
}

/// `beyond_reason` says why a case is out of scope, if it is.
fn beyond_reason(
    e: &EvalCmd,
    hist_series: &[Labels],
    nhcb: bool,
    engine: &Engine,
    strict: &Engine,
) -> Option<String> {
    if e.histograms {
        return Some("expects native histograms".into());
    }
    // `load_with_nhcb` also loads the classic buckets, which are in
    // scope; Prometheus's runner re-runs such cases over the converted
    // native histograms, which this runner does not.
    let _ = nhcb;
    // A selector that matches a series holding native histograms.
    if let Ok(q) = engine.instant_query(&e.expr, e.start_ms) {
        for sel in q.selects() {
            if let Some(l) = hist_series
                .iter()
                .find(|l| sel.matchers.iter().all(|m| m.matches(l.get(m.name()))))
            {
                return Some(format!("reads {l}, which holds native histograms"));
            }
        }
    }
    if let Err(Error::Parse(m)) = strict.instant_query(&e.expr, 0)
        && (m.contains("experimental") || m.contains("not enabled"))
    {
        return Some("uses an experimental function".into());
    }
    for kw in [
        "anchored",
        "smoothed",
        "fill(",
        "fill_left",
        "fill_right",
        "step()",
        "range()",
        "info(",
    ] {
        if e.expr.contains(kw) {
            return Some(format!("uses experimental syntax ({kw})"));
        }
    }
    None
}

fn parse_eval(t: &str, line: usize, block: &[(usize, &str)]) -> Result<EvalCmd, String> {
    let mut e = EvalCmd {
        line,
        ..EvalCmd::default()
    };
    let (head, rest) = t.split_once(' ').ok_or("bad eval")?;
    match head {
        "eval" => {}
        "eval_fail" => e.expect = Expect::Fail(None),
        "eval_ordered" => e.ordered = true,
        "eval_warn" => e.warn = Some(Vec::new()),
        "eval_info" => e.info = Some(Vec::new()),
        other => return Err(format!("unknown command {other:?}")),
    }
    let rest = rest.trim();
    if let Some(r) = rest.strip_prefix("instant at ") {
        let (at, expr) = r.split_once(' ').ok_or("bad eval instant")?;
        e.start_ms = parse_duration(at).ok_or(format!("bad time {at:?}"))?;
        e.end_ms = e.start_ms;
        e.expr = expr.trim().to_string();
    } else if let Some(r) = rest.strip_prefix("range from ") {
        let parts: Vec<&str> = r.splitn(6, ' ').collect();
        if parts.len() < 6 || parts[1] != "to" || parts[3] != "step" {
            return Err(format!("bad eval range {r:?}"));
        }
        e.start_ms = parse_duration(parts[0]).ok_or("bad start")?;
        e.end_ms = parse_duration(parts[2]).ok_or("bad end")?;
        e.step_ms = parse_duration(parts[4]).ok_or("bad step")?;
        e.expr = parts[5].trim().to_string();
        e.range = true;
    } else {
        return Err(format!("bad eval {rest:?}"));
    }
    for &(_, l) in block {
        if let Some(x) = l.strip_prefix("expect ") {
            let x = x.trim();
            if let Some(s) = x.strip_prefix("string") {
                let (v, _) = parse_quoted(s.trim())?;
                e.expect = Expect::String(v);
                continue;
            }
            if let Some(r) = x.strip_prefix("range vector from ") {
                let parts: Vec<&str> = r.split_whitespace().collect();
                if parts.len() != 5 {
                    return Err(format!("bad expect range vector {r:?}"));
                }
                e.expect = Expect::RangeVector {
                    start_ms: parse_duration(parts[0]).ok_or("bad start")?,
                    end_ms: parse_duration(parts[2]).ok_or("bad end")?,
                    step_ms: parse_duration(parts[4]).ok_or("bad step")?,
                };
                continue;
            }
            let (kind, m) = match x.split_once(char::is_whitespace) {
                Some((k, m)) => (k, Some(m.trim())),
                None => (x, None),
            };
            let m = match m {
                None => None,
                Some(m) => {
                    if let Some(s) = m.strip_prefix("msg:") {
                        Some(Match::Msg(s.trim().to_string()))
                    } else if let Some(s) = m.strip_prefix("regex:") {
                        Some(Match::Regex(s.trim().to_string()))
                    } else {
                        return Err(format!("bad expect {x:?}"));
                    }
                }
            };
            match kind {
                "fail" => e.expect = Expect::Fail(m),
                "ordered" => e.ordered = true,
                "warn" => e.warn.get_or_insert_with(Vec::new).extend(m),
                "info" => e.info.get_or_insert_with(Vec::new).extend(m),
                "no_warn" => e.no_warn = true,
                "no_info" => e.no_info = true,
                other => return Err(format!("unknown expect {other:?}")),
            }
            continue;
        }
        // A bare number is a scalar result.
        if let Some(v) = parse_number(l)
            && !l.contains('{')
            && l.split_whitespace().count() == 1
        {
            e.scalar = Some(v);
            continue;
        }
        let (labels, vals, hist) = parse_series_line(l)?;
        e.histograms |= hist;
        e.series.push((labels, vals));
    }
    Ok(e)
}

fn almost_equal(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 0.000001;
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if raftwatch_model::is_stale_nan(a) != raftwatch_model::is_stale_nan(b) {
        return false;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

fn run_eval(engine: &Engine, storage: &MemStorage, e: &EvalCmd) -> Outcome {
    let cancel = AtomicBool::new(false);
    let query = if e.range {
        engine.range_query(&e.expr, e.start_ms, e.end_ms, e.step_ms)
    } else {
        engine.instant_query(&e.expr, e.start_ms)
    };
    let result = query.and_then(|q| q.exec(storage, &cancel));
    let res = match (&e.expect, result) {
        (Expect::Fail(m), Err(err)) => {
            return match m {
                Some(m) if !m.matches(&err.to_string()) => {
                    Outcome::Fail(format!("expected error {m:?}, got {err:?}"))
                }
                _ => Outcome::Pass,
            };
        }
        (Expect::Fail(_), Ok(r)) => {
            return Outcome::Fail(format!("expected an error, got {:?}", r.value));
        }
        (_, Err(err)) => return Outcome::Fail(format!("error: {err}")),
        (_, Ok(r)) => r,
    };
    // Annotations.
    let a = &res.annotations;
    if let Some(ms) = &e.warn {
        if a.warnings.is_empty() {
            return Outcome::Fail("expected warnings, got none".into());
        }
        if !ms.is_empty() {
            for w in &a.warnings {
                if !ms.iter().any(|m| m.matches(w)) {
                    return Outcome::Fail(format!("unexpected warning {w:?}"));
                }
            }
        }
    }
    if let Some(ms) = &e.info {
        if a.infos.is_empty() {
            return Outcome::Fail("expected info annotations, got none".into());
        }
        if !ms.is_empty() {
            for w in &a.infos {
                if !ms.iter().any(|m| m.matches(w)) {
                    return Outcome::Fail(format!("unexpected info {w:?}"));
                }
            }
        }
    }
    if e.no_warn && !a.warnings.is_empty() {
        return Outcome::Fail(format!("unexpected warnings {:?}", a.warnings));
    }
    if e.no_info && !a.infos.is_empty() {
        return Outcome::Fail(format!("unexpected infos {:?}", a.infos));
    }
    if let Err(m) = compare(e, &res.value) {
        return Outcome::Fail(m);
    }
    // Instant queries must give the same answer in range mode (the middle
    // step of a three-step range around the instant), as Prometheus's
    // runner checks.
    if !e.range
        && !e.ordered
        && matches!(e.expect, Expect::Values)
        && !["range()", "step()", "start()", "end()"]
            .iter()
            .any(|f| e.expr.contains(f))
        && matches!(res.value, Value::Vector(_) | Value::Scalar { .. })
    {
        let r = engine
            .range_query(&e.expr, e.start_ms - 60_000, e.start_ms + 60_000, 60_000)
            .and_then(|q| q.exec(storage, &cancel));
        match r {
            Err(err) => return Outcome::Fail(format!("range mode: error: {err}")),
            Ok(r) => {
                let Value::Matrix(m) = r.value else {
                    return Outcome::Fail("range mode: not a matrix".into());
                };
                let mut got: Vec<(Labels, f64)> = m
                    .iter()
                    .filter_map(|s| {
                        s.points
                            .iter()
                            .find(|p| p.0 == e.start_ms)
                            .map(|p| (s.labels.clone(), p.1))
                    })
                    .collect();
                let mut want: Vec<(Labels, f64)> = match &res.value {
                    Value::Vector(v) => v.iter().map(|s| (s.labels.clone(), s.v)).collect(),
                    Value::Scalar { v, .. } => vec![(Labels::default(), *v)],
                    _ => Vec::new(),
                };
                got.sort_by(|a, b| a.0.cmp(&b.0));
                want.sort_by(|a, b| a.0.cmp(&b.0));
                let same = got.len() == want.len()
                    && got
                        .iter()
                        .zip(&want)
                        .all(|(g, w)| g.0 == w.0 && almost_equal(g.1, w.1));
                if !same {
                    return Outcome::Fail(format!(
                        "range mode differs: instant {want:?}, range {got:?}"
                    ));
                }
            }
        }
    }
    Outcome::Pass
}

fn compare(e: &EvalCmd, got: &Value) -> Result<(), String> {
    match (&e.expect, got) {
        (Expect::String(want), Value::String { s, .. }) => {
            if want == s {
                Ok(())
            } else {
                Err(format!("expected string {want:?}, got {s:?}"))
            }
        }
        (Expect::String(_), other) => Err(format!("expected a string, got {other:?}")),
        (
            Expect::RangeVector {
                start_ms, step_ms, ..
            },
            Value::Matrix(m),
        ) => compare_matrix(&e.series, m, *start_ms, *step_ms),
        (Expect::RangeVector { .. }, other) => {
            Err(format!("expected a range vector, got {other:?}"))
        }
        (_, Value::Scalar { v, .. }) => match e.scalar {
            Some(want) if almost_equal(want, *v) => Ok(()),
            Some(want) => Err(format!("expected scalar {want}, got {v}")),
            None => Err(format!("expected a vector, got scalar {v}")),
        },
        (_, Value::Vector(v)) => {
            if let Some(s) = e.scalar {
                return Err(format!("expected scalar {s}, got vector {v:?}"));
            }
            if e.series.len() != v.len() {
                return Err(format!(
                    "expected {} samples, got {}: {:?}",
                    e.series.len(),
                    v.len(),
                    v.iter()
                        .map(|s| format!("{} {}", s.labels, s.v))
                        .collect::<Vec<_>>()
                ));
            }
            for (k, (labels, vals)) in e.series.iter().enumerate() {
                let want = vals.first().copied().flatten().unwrap_or(f64::NAN);
                let found = if e.ordered {
                    Some(&v[k]).filter(|s| &s.labels == labels)
                } else {
                    v.iter().find(|s| &s.labels == labels)
                };
                match found {
                    None => {
                        return Err(format!(
                            "expected {labels} (position {k}), got {:?}",
                            v.iter()
                                .map(|s| format!("{} {}", s.labels, s.v))
                                .collect::<Vec<_>>()
                        ));
                    }
                    Some(s) if !almost_equal(want, s.v) => {
                        return Err(format!("{labels}: expected {want}, got {}", s.v));
                    }
                    Some(_) => {}
                }
            }
            Ok(())
        }
        (_, Value::Matrix(m)) => {
            if e.range {
                compare_matrix(&e.series, m, e.start_ms, e.step_ms)
            } else {
                Err("instant query returned a matrix".into())
            }
        }
        (_, Value::String { s, .. }) => Err(format!("unexpected string {s:?}")),
    }
}

fn compare_matrix(
    want: &[(Labels, Vec<Option<f64>>)],
    got: &[crate::value::Series],
    start_ms: i64,
    step_ms: i64,
) -> Result<(), String> {
    let want: Vec<_> = want
        .iter()
        .filter(|(_, v)| v.iter().any(Option::is_some))
        .collect();
    if want.len() != got.len() {
        return Err(format!(
            "expected {} series, got {}: {:?}",
            want.len(),
            got.len(),
            got.iter().map(|s| s.labels.to_string()).collect::<Vec<_>>()
        ));
    }
    for (labels, vals) in want {
        let Some(s) = got.iter().find(|s| &s.labels == labels) else {
            return Err(format!("missing series {labels}"));
        };
        let expected: Vec<(i64, f64)> = vals
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| (start_ms + k as i64 * step_ms, v)))
            .collect();
        let same = expected.len() == s.points.len()
            && expected
                .iter()
                .zip(&s.points)
                .all(|(a, b)| a.0 == b.0 && almost_equal(a.1, b.1));
        if !same {
            return Err(format!(
                "{labels}: expected {expected:?}, got {:?}",
                s.points
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expand_like_prometheus() {
        let (v, h) = parse_values("1+2x2 _ 5x1 _x2 stale -1-1x1").unwrap();
        assert!(!h);
        let got: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
        assert_eq!(got.len(), 3 + 1 + 2 + 2 + 1 + 2);
        assert_eq!(v[0..3], [Some(1.0), Some(3.0), Some(5.0)]);
        assert_eq!(v[3], None);
        assert_eq!(v[10], Some(-2.0));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("10s53ms"), Some(10_053));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("1.5"), Some(1500));
    }

    #[test]
    fn label_sets_parse_with_quoted_names() {
        let (l, rest) = parse_labels(r#"{"a.b", c="d\"e"} 1"#).unwrap();
        assert_eq!(l.get(NAME), "a.b");
        assert_eq!(l.get("c"), "d\"e");
        assert_eq!(rest.trim(), "1");
    }
}
