//! Template functions: Go's builtins and Prometheus's (`template.go`).
//!
//! `and` and `or` evaluate lazily and live in the executor; everything
//! else gets its arguments evaluated and checked against a signature
//! here, as Go's `evalCall` does.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use regex::{Regex, RegexBuilder};

use super::TemplateData;
use super::gofmt::{self, float_4g, float_v, quote};
use super::value::Value;
use super::{TEMPLATE_OUTPUT_BYTES_MAX, TEMPLATE_REGEX_BYTES_MAX};

/// How a parameter takes its argument (Go's parameter types, reduced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Param {
    /// `interface{}`: anything, `nil` included.
    Any,
    /// `reflect.Value` (the comparison and indexing builtins): anything
    /// but the `nil` literal.
    Refl,
    /// `string`: strings only.
    Str,
}

/// A function's parameters: fixed ones, then optionally a variadic one.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sig {
    pub(super) fixed: &'static [Param],
    pub(super) variadic: Option<Param>,
}

const fn sig(fixed: &'static [Param], variadic: Option<Param>) -> Sig {
    Sig { fixed, variadic }
}

use Param::{Any, Refl, Str};

/// The signature of function `name`, if there is one by that name.
pub(super) fn signature(name: &str) -> Option<Sig> {
    Some(match name {
        // Go's builtins.
        "and" | "or" | "index" | "slice" | "call" | "eq" => sig(&[Refl], Some(Refl)),
        "not" | "len" => sig(&[Refl], None),
        "ne" | "lt" | "le" | "gt" | "ge" => sig(&[Refl, Refl], None),
        "printf" => sig(&[Str], Some(Any)),
        "print" | "println" | "html" | "js" | "urlquery" => sig(&[], Some(Any)),
        // Prometheus's.
        "query" | "safeHtml" | "title" | "toUpper" | "toLower" | "graphLink" | "tableLink"
        | "parseDuration" | "stripPort" | "stripDomain" => sig(&[Str], None),
        "first" | "value" | "strvalue" | "humanize" | "humanize1024" | "humanizeDuration"
        | "humanizePercentage" | "humanizeTimestamp" | "toTime" | "toDuration" => sig(&[Any], None),
        "label" | "sortByLabel" => sig(&[Str, Any], None),
        "args" => sig(&[], Some(Any)),
        "reReplaceAll" => sig(&[Str, Str, Str], None),
        "match" => sig(&[Str, Str], None),
        "pathPrefix" | "externalURL" | "now" => sig(&[], None),
        _ => return None,
    })
}

/// Whether `name` is a function templates may call.
pub(super) fn is_function(name: &str) -> bool {
    signature(name).is_some()
}

/// What functions may use besides their arguments.
pub(super) struct Ctx<'a, 'r> {
    pub(super) data: &'a TemplateData,
    /// Compiled regular expressions, by source.
    pub(super) regexes: &'r mut HashMap<String, Regex>,
}

/// Calls `name` (not `and`/`or`) with checked arguments. Errors are
/// the function's own ("error calling f: " is added by the caller).
pub(super) fn call<'a>(
    ctx: &mut Ctx<'a, '_>,
    name: &str,
    args: Vec<Value<'a>>,
) -> Result<Value<'a>, String> {
    let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Nil);
    let s = |i: usize| -> String {
        args.get(i)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(match name {
        "not" => Value::Bool(!arg(0).truth()),
        "len" => Value::Int(length(&arg(0))?),
        "index" => index(arg(0), args.get(1..).unwrap_or(&[]))?,
        "slice" => slice(arg(0), args.get(1..).unwrap_or(&[]))?,
        "call" => return Err("function values are not supported".to_string()),
        "eq" => Value::Bool(eq(&args)?),
        "ne" => Value::Bool(!eq(&args)?),
        "lt" => Value::Bool(lt(&arg(0), &arg(1))?),
        "le" => Value::Bool(le(&arg(0), &arg(1))?),
        "gt" => Value::Bool(!le(&arg(0), &arg(1))?),
        "ge" => Value::Bool(!lt(&arg(0), &arg(1))?),
        "printf" => Value::string(gofmt::sprintf(&s(0), args.get(1..).unwrap_or(&[]))),
        "print" => Value::string(gofmt::sprint(&args)),
        "println" => Value::string(gofmt::sprintln(&args)),
        "html" => Value::string(html_escape(&eval_args(&args))),
        "js" => Value::string(js_escape(&eval_args(&args))),
        "urlquery" => Value::string(query_escape(&eval_args(&args))),
        "query" => return Err("the query template function is not supported".to_string()),
        "now" => return Err("the now template function is not supported".to_string()),
        "first" => match arg(0) {
            Value::Nil => return Err("first() called on vector with no elements".to_string()),
            v => return Err(not_query_result(&v)),
        },
        "label" | "value" | "strvalue" => {
            let v = if name == "label" { arg(1) } else { arg(0) };
            return Err(match v {
                Value::Nil => {
                    "runtime error: invalid memory address or nil pointer dereference".to_string()
                }
                v => format!(
                    "wrong type for value; expected *template.sample; got {}",
                    v.type_name()
                ),
            });
        }
        "sortByLabel" => match arg(1) {
            Value::Nil => Value::Nil,
            v => return Err(not_query_result(&v)),
        },
        "args" => {
            let map: BTreeMap<String, Value<'a>> = args
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v.clone()))
                .collect();
            Value::Map(Rc::new(map))
        }
        "reReplaceAll" => {
            let re = compile(ctx, &s(0))?;
            Value::string(replace_all(re, &s(2), &s(1))?)
        }
        "match" => {
            let re = compile(ctx, &s(0))?;
            Value::Bool(re.is_match(&s(1)))
        }
        "safeHtml" => Value::string(s(0)),
        "title" => Value::string(title(&s(0))),
        "toUpper" => Value::string(map_simple_case(&s(0), true)),
        "toLower" => Value::string(map_simple_case(&s(0), false)),
        "graphLink" => Value::string(format!("/graph?g0.expr={}&g0.tab=0", query_escape(&s(0)))),
        "tableLink" => Value::string(format!("/graph?g0.expr={}&g0.tab=1", query_escape(&s(0)))),
        "humanize" => Value::string(humanize(to_float(&arg(0))?)),
        "humanize1024" => Value::string(humanize_1024(to_float(&arg(0))?)),
        "humanizeDuration" => Value::string(humanize_duration(to_float(&arg(0))?)),
        "humanizePercentage" => Value::string(format!("{}%", float_4g(to_float(&arg(0))? * 100.0))),
        "humanizeTimestamp" => {
            let v = to_float(&arg(0))?;
            match float_to_time(v) {
                Ok(ms) => Value::string(gofmt::time_string(ms)),
                Err(None) => Value::string(float_4g(v)),
                Err(Some(e)) => return Err(e),
            }
        }
        "toTime" => {
            let v = to_float(&arg(0))?;
            match float_to_time(v) {
                Ok(ms) => Value::Time(ms),
                Err(None) => return Err("value is NaN or Inf".to_string()),
                Err(Some(e)) => return Err(e),
            }
        }
        "toDuration" => {
            let v = to_float(&arg(0))?;
            // Go's float-to-int conversion; Rust's saturates.
            Value::Duration((v * 1e9) as i64)
        }
        "pathPrefix" => Value::string(url_path(&ctx.data.external_url)),
        "externalURL" => Value::str(&ctx.data.external_url),
        "parseDuration" => {
            let ms = crate::rules::parse_duration(&s(0))?;
            Value::Float(ms as f64 / 1000.0)
        }
        "stripPort" => match split_host_port(&s(0)) {
            Some((host, _)) => Value::str(host),
            None => Value::string(s(0)),
        },
        "stripDomain" => Value::string(strip_domain(&s(0))),
        other => return Err(format!("function {other:?} not defined")),
    })
}

fn not_query_result(v: &Value<'_>) -> String {
    format!(
        "wrong type for value; expected template.queryResult; got {}",
        v.type_name()
    )
}

/// Go's `evalArgs` for `html`, `js`, `urlquery`: one string as is,
/// anything else through `fmt.Sprint`.
fn eval_args(args: &[Value<'_>]) -> String {
    if let [Value::Str(s)] = args {
        return s.to_string();
    }
    gofmt::sprint(args)
}

/// Go's `length`.
fn length(v: &Value<'_>) -> Result<i64, String> {
    let n = match v {
        Value::Str(s) => s.len(),
        Value::Labels(m) => m.len(),
        Value::Map(m) => m.len(),
        Value::Missing | Value::Nil => return Err("len of nil pointer".to_string()),
        v => return Err(format!("len of type {}", v.type_name())),
    };
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Go's `indexArg`: an int in `0..=cap` (`..cap` when `strict`).
fn index_arg(v: &Value<'_>, cap: usize, strict: bool) -> Result<usize, String> {
    let x = match v {
        Value::Int(x) => *x,
        Value::Missing | Value::Nil => return Err("cannot index slice/array with nil".to_string()),
        v => {
            return Err(format!(
                "cannot index slice/array with type {}",
                v.type_name()
            ));
        }
    };
    match usize::try_from(x) {
        Ok(i) if i < cap || (!strict && i == cap) => Ok(i),
        _ => Err(format!("index out of range: {x}")),
    }
}

/// Go's `index`.
fn index<'a>(item: Value<'a>, indexes: &[Value<'a>]) -> Result<Value<'a>, String> {
    let mut item = item;
    if matches!(item, Value::Missing | Value::Nil) {
        return Err("index of untyped nil".to_string());
    }
    for ix in indexes {
        item = match &item {
            Value::Str(s) => {
                let i = index_arg(ix, s.len(), true)?;
                Value::Int(i64::from(s.as_bytes().get(i).copied().unwrap_or(0)))
            }
            Value::Labels(m) => {
                let key = map_key(ix)?;
                Value::str(m.get(key).map_or("", String::as_str))
            }
            Value::Map(m) => {
                let key = map_key(ix)?;
                m.get(key).cloned().unwrap_or(Value::Nil)
            }
            Value::Missing | Value::Nil => return Err("index of nil pointer".to_string()),
            v => return Err(format!("can't index item of type {}", v.type_name())),
        };
    }
    Ok(item)
}

fn map_key<'v>(v: &'v Value<'_>) -> Result<&'v str, String> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Missing | Value::Nil => Err("value is nil; should be of type string".to_string()),
        v => Err(format!(
            "value has type {}; should be string",
            v.type_name()
        )),
    }
}

/// Go's `slice`.
fn slice<'a>(item: Value<'a>, indexes: &[Value<'a>]) -> Result<Value<'a>, String> {
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match &item {
        Value::Missing | Value::Nil => return Err("slice of untyped nil".to_string()),
        Value::Str(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".to_string());
            }
            s.len()
        }
        v => return Err(format!("can't slice item of type {}", v.type_name())),
    };
    let mut idx = [0, len, len];
    for (i, ix) in indexes.iter().enumerate() {
        if let Some(slot) = idx.get_mut(i) {
            *slot = index_arg(ix, len, false)?;
        }
    }
    let [lo, hi, max] = idx;
    if lo > hi {
        return Err(format!("invalid slice index: {lo} > {hi}"));
    }
    if indexes.len() == 3 && hi > max {
        return Err(format!("invalid slice index: {hi} > {max}"));
    }
    Ok(match item {
        Value::Str(s) => {
            let bytes = s.as_bytes().get(lo..hi).unwrap_or(&[]);
            Value::string(String::from_utf8_lossy(bytes).into_owned())
        }
        other => other,
    })
}

/// Go's `basicKind`, reduced to our values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
    /// `nil` or no value.
    Invalid,
    /// Maps, the data struct, times: not comparable here.
    Other,
}

fn kind(v: &Value<'_>) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        Value::Missing | Value::Nil => Kind::Invalid,
        _ => Kind::Other,
    }
}

/// Go's `eq arg1 arg2...`: whether `arg1` equals any of the others.
fn eq(args: &[Value<'_>]) -> Result<bool, String> {
    let Some((a, rest)) = args.split_first() else {
        return Err("missing argument for comparison".to_string());
    };
    if rest.is_empty() {
        return Err("missing argument for comparison".to_string());
    }
    let k1 = kind(a);
    for b in rest {
        let k2 = kind(b);
        let truth = if k1 != k2 {
            if k1 != Kind::Invalid && k2 != Kind::Invalid {
                return Err("incompatible types for comparison".to_string());
            }
            false
        } else {
            match (a, b) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Int(x), Value::Int(y)) => x == y,
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::Str(x), Value::Str(y)) => x == y,
                _ if k1 == Kind::Invalid => true,
                _ => {
                    return Err(format!(
                        "non-comparable type {}: {}",
                        gofmt::sprint_v(a),
                        a.type_name()
                    ));
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Go's `lt`.
fn lt(a: &Value<'_>, b: &Value<'_>) -> Result<bool, String> {
    let (k1, k2) = (kind(a), kind(b));
    if matches!(k1, Kind::Invalid | Kind::Other) || matches!(k2, Kind::Invalid | Kind::Other) {
        return Err("invalid type for comparison".to_string());
    }
    if k1 != k2 {
        return Err("incompatible types for comparison".to_string());
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        _ => Err("invalid type for comparison".to_string()),
    }
}

/// Go's `le`.
fn le(a: &Value<'_>, b: &Value<'_>) -> Result<bool, String> {
    if lt(a, b)? {
        return Ok(true);
    }
    eq(&[a.clone(), b.clone()])
}

/// Go's `template.HTMLEscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if c < ' ' => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c if c.is_ascii() || gofmt::is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", u32::from(c))),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Prometheus's `convertToFloat`.
fn to_float(v: &Value<'_>) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => parse_go_float(s),
        v => Err(format!("can't convert {} to float", v.type_name())),
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal input.
pub(super) fn parse_go_float(s: &str) -> Result<f64, String> {
    let fail = |why: &str| format!("strconv.ParseFloat: parsing {}: {why}", quote(s, false));
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    let is_inf_word = lower == "inf" || lower == "infinity";
    let ok_chars = is_inf_word
        || lower == "nan"
        || (!body.is_empty()
            && body
                .bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-')));
    if !ok_chars {
        return Err(fail("invalid syntax"));
    }
    let v: f64 = s.parse().map_err(|_| fail("invalid syntax"))?;
    if v.is_infinite() && !is_inf_word {
        return Err(fail("value out of range"));
    }
    Ok(v)
}

/// Prometheus's `humanize`: SI prefixes, four significant digits.
fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return float_4g(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
        return format!("{}{prefix}", float_4g(v));
    }
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}", float_4g(v))
}

/// Prometheus's `humanize1024`: binary prefixes.
fn humanize_1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return float_4g(v);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", float_4g(v))
}

/// Prometheus's `humanizeDuration` of seconds.
fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return float_4g(v);
    }
    if v == 0.0 {
        return format!("{}s", float_4g(v));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let duration = v as i64;
        let seconds = duration % 60;
        let minutes = (duration / 60) % 60;
        let hours = (duration / 60 / 60) % 24;
        let days = duration / 60 / 60 / 24;
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", float_4g(v));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", float_4g(v))
}

/// Prometheus's `floatToTime`: seconds to milliseconds since the epoch.
/// `Err(None)` is NaN or an infinity.
fn float_to_time(v: f64) -> Result<i64, Option<String>> {
    if v.is_nan() || v.is_infinite() {
        return Err(None);
    }
    let ns = v * 1e9;
    if ns >= i64::MAX as f64 || ns < i64::MIN as f64 {
        return Err(Some(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            float_v(v)
        )));
    }
    // model.TimeFromUnixNano truncates to milliseconds.
    Ok((ns as i64) / 1_000_000)
}

/// Compiles (or finds) a regular expression, unanchored as Go's
/// `regexp.MustCompile` leaves it.
fn compile<'c>(ctx: &'c mut Ctx<'_, '_>, pattern: &str) -> Result<&'c Regex, String> {
    if !ctx.regexes.contains_key(pattern) {
        let re = RegexBuilder::new(pattern)
            .size_limit(TEMPLATE_REGEX_BYTES_MAX)
            .build()
            .map_err(|e| {
                let why = e.to_string();
                let why = why
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                format!(
                    "regexp: Compile({}): error parsing regexp: {why}",
                    quote(pattern, false)
                )
            })?;
        ctx.regexes.insert(pattern.to_string(), re);
    }
    ctx.regexes
        .get(pattern)
        .ok_or_else(|| "regular expression cache lost an entry".to_string())
}

/// `re.ReplaceAllString(text, repl)` with `$1`/`${name}` expansion,
/// refusing results longer than the output limit.
fn replace_all(re: &Regex, text: &str, repl: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(text.get(last..m.start()).unwrap_or(""));
        caps.expand(repl, &mut out);
        last = m.end();
        if out.len() > TEMPLATE_OUTPUT_BYTES_MAX {
            return Err(format!(
                "result longer than {TEMPLATE_OUTPUT_BYTES_MAX} bytes"
            ));
        }
    }
    out.push_str(text.get(last..).unwrap_or(""));
    Ok(out)
}

/// `strings.ToUpper`/`ToLower` with one-to-one mappings only, as Go's
/// (Rust's `ß` → `SS` is not Go's).
fn map_simple_case(s: &str, upper: bool) -> String {
    s.chars()
        .map(|c| {
            let mut mapped: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            };
            match (mapped.pop(), mapped.is_empty()) {
                (Some(m), true) => m,
                _ => c,
            }
        })
        .collect()
}

/// Prometheus's `title` (`cases.Title` with `NoLower`): the first letter
/// of every word upper-cased, the rest untouched. Words are runs of
/// letters, digits and `_`, joined by `'`, `.`, `:` between letters
/// (Unicode word boundaries, simplified).
fn title(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let word = |c: char| c == '_' || c.is_alphanumeric();
    let mut in_word = false;
    for (i, &c) in chars.iter().enumerate() {
        if word(c) {
            if !in_word && c.is_alphabetic() {
                out.push_str(&map_simple_case(&c.to_string(), true));
            } else {
                out.push(c);
            }
            in_word = true;
            continue;
        }
        let joins = matches!(c, '\'' | '.' | ':' | '\u{2019}' | '\u{00B7}')
            && in_word
            && chars.get(i + 1).is_some_and(|&n| n.is_alphabetic())
            && i.checked_sub(1)
                .and_then(|p| chars.get(p))
                .is_some_and(|p| p.is_alphabetic());
        in_word = joins;
        out.push(c);
    }
    out
}

/// Go's `net.SplitHostPort`: host and port, or `None` where Go errs.
fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    let i = hostport.rfind(':')?;
    let (host, j, k) = if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        if end + 1 != i {
            return None;
        }
        (hostport.get(1..end)?, 1, end + 1)
    } else {
        let host = hostport.get(..i)?;
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if hostport.get(j..)?.contains('[') || hostport.get(k..)?.contains(']') {
        return None;
    }
    Some((host, hostport.get(i + 1..)?))
}

/// Prometheus's `stripDomain`: `host.example.com:9100` → `host:9100`;
/// IP addresses stay as they are.
fn strip_domain(hostport: &str) -> String {
    let (host, port) = split_host_port(hostport).unwrap_or((hostport, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return hostport.to_string();
    }
    let host = host.split('.').next().unwrap_or("");
    if port.is_empty() {
        return host.to_string();
    }
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The path of a URL (`http://h/prom/` → `/prom/`), as `url.URL.Path`.
fn url_path(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or("");
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| rest.get(i..).unwrap_or("")),
        None => url,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_as_prometheus() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (1.0, "1"),
            (1234567.0, "1.235M"),
            (0.001234, "1.234m"),
            (1e-9, "1n"),
            (-1500.0, "-1.5k"),
            (1e30, "1e+06Y"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ];
        for (v, want) in cases {
            assert_eq!(humanize(*v), *want, "{v}");
        }
        assert_eq!(humanize_1024(1_048_576.0), "1Mi");
        assert_eq!(humanize_1024(1024.0), "1ki");
        assert_eq!(humanize_1024(0.5), "0.5");
        assert_eq!(humanize_duration(3661.0), "1h 1m 1s");
        assert_eq!(humanize_duration(0.5), "500ms");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(-65.0), "-1m 5s");
        assert_eq!(humanize_duration(0.000_001_5), "1.5us");
    }

    #[test]
    fn host_helpers_as_go() {
        assert_eq!(split_host_port("a:1"), Some(("a", "1")));
        assert_eq!(split_host_port("[::1]:9090"), Some(("::1", "9090")));
        assert_eq!(split_host_port("a"), None);
        assert_eq!(split_host_port("::1"), None);
        assert_eq!(strip_domain("node.example.com:9100"), "node:9100");
        assert_eq!(strip_domain("node.example.com"), "node");
        assert_eq!(strip_domain("10.0.0.1:9100"), "10.0.0.1:9100");
        assert_eq!(strip_domain("[::1]:9100"), "[::1]:9100");
        assert_eq!(url_path("http://h:9090/prom/x?y#z"), "/prom/x");
        assert_eq!(url_path("http://h:9090"), "");
    }

    #[test]
    fn escapes_as_go() {
        assert_eq!(
            html_escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&#34;x&#34;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            js_escape("a'b\"<=>\n"),
            "a\\'b\\\"\\u003C\\u003D\\u003E\\u000A"
        );
        assert_eq!(query_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(title("hello world-wide o'neil"), "Hello World-Wide O'neil");
        assert_eq!(map_simple_case("straße", true), "STRAßE");
    }
}
