//! Go's `fmt` and `strconv` formatting, as far as templates reach them:
//! `%v` of every value, `Sprint`, `Sprintln`, `Sprintf` with the common
//! verbs, `strconv.FormatFloat` and `strconv.Quote`, and the `String`
//! methods of `time.Time` and `time.Duration`.
//!
//! Rust's float formatting is exact and rounds ties to even, as Go's is,
//! so digits come from `format!` and only the layout follows Go.

use std::fmt::Write as _;

use super::value::Value;

/// Go's `%v` of a float64: `strconv.FormatFloat(v, 'g', -1, 64)`, the
/// shortest digits that read back, with an exponent when it is below -4
/// or at least 6 (`1e+06`, `100000`, `0.5`).
pub(super) fn float_v(v: f64) -> String {
    format_float(v, b'g', None)
}

/// Go's `fmt.Sprintf("%.4g", v)`, which Prometheus's humanize functions
/// use.
pub(super) fn float_4g(v: f64) -> String {
    format_float(v, b'g', Some(4))
}

/// The decimal digits of `a` (finite, non-negative) and the position of
/// the decimal point: `a = 0.d1d2...dn × 10^dp`. Zero has no digits.
/// `significant` rounds to that many digits; `None` gives the shortest
/// digits that read back as `a`.
fn decimal_digits(a: f64, significant: Option<usize>) -> (Vec<u8>, i64) {
    if a == 0.0 {
        return (Vec::new(), 0);
    }
    let text = match significant {
        Some(n) => format!("{:.*e}", n.saturating_sub(1), a),
        None => format!("{a:e}"),
    };
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits.is_empty() {
        return (Vec::new(), 0);
    }
    (digits, exponent + 1)
}

/// Go's `fmtE`: `d.ddde±XX` with `prec` digits after the point.
fn fmt_e(out: &mut String, digits: &[u8], dp: i64, prec: usize, e: char) {
    out.push(char::from(*digits.first().unwrap_or(&b'0')));
    if prec > 0 {
        out.push('.');
        let m = digits.len().min(prec + 1);
        let mut i = 1;
        if i < m {
            for &d in digits.get(1..m).unwrap_or(&[]) {
                out.push(char::from(d));
            }
            i = m;
        }
        while i <= prec {
            out.push('0');
            i += 1;
        }
    }
    out.push(e);
    let mut exp = if digits.is_empty() { 0 } else { dp - 1 };
    if exp < 0 {
        out.push('-');
        exp = -exp;
    } else {
        out.push('+');
    }
    if exp < 10 {
        out.push('0');
    }
    let _ = write!(out, "{exp}");
}

/// Go's `fmtF`: `ddd.ddd` with `prec` digits after the point.
fn fmt_f(out: &mut String, digits: &[u8], dp: i64, prec: usize) {
    if dp > 0 {
        let dp_usize = usize::try_from(dp).unwrap_or(usize::MAX);
        let m = digits.len().min(dp_usize);
        for &d in digits.get(..m).unwrap_or(&[]) {
            out.push(char::from(d));
        }
        for _ in m..dp_usize {
            out.push('0');
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            let j = dp + i64::try_from(i).unwrap_or(i64::MAX) - 1;
            let ch = usize::try_from(j)
                .ok()
                .and_then(|j| digits.get(j))
                .copied()
                .unwrap_or(b'0');
            out.push(char::from(ch));
        }
    }
}

/// Go's `strconv.FormatFloat(v, fmt, prec, 64)` for `fmt` in `eEfFgG`;
/// `prec` `None` is Go's `-1` (shortest). Infinities carry their sign
/// (`+Inf`), as in Go.
pub(super) fn format_float(v: f64, fmt: u8, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let mut out = String::new();
    if v.is_sign_negative() {
        out.push('-');
    }
    let a = v.abs();
    match fmt {
        b'f' | b'F' => match prec {
            Some(p) => {
                let _ = write!(out, "{a:.p$}");
            }
            None => {
                let (digits, dp) = decimal_digits(a, None);
                let frac = (digits.len() as i64 - dp).max(0);
                fmt_f(&mut out, &digits, dp, usize::try_from(frac).unwrap_or(0));
            }
        },
        b'e' | b'E' => {
            let e = if fmt == b'e' { 'e' } else { 'E' };
            match prec {
                Some(p) => {
                    let (digits, dp) = decimal_digits(a, Some(p.saturating_add(1)));
                    fmt_e(&mut out, &digits, dp, p, e);
                }
                None => {
                    let (digits, dp) = decimal_digits(a, None);
                    fmt_e(&mut out, &digits, dp, digits.len().saturating_sub(1), e);
                }
            }
        }
        _ => {
            let e = if fmt == b'G' { 'E' } else { 'e' };
            let shortest = prec.is_none();
            let (digits, dp, mut prec) = match prec {
                None => {
                    let (digits, dp) = decimal_digits(a, None);
                    let n = digits.len();
                    (digits, dp, n)
                }
                Some(p) => {
                    let p = p.max(1);
                    let (digits, dp) = decimal_digits(a, Some(p));
                    (digits, dp, p)
                }
            };
            let nd = digits.len();
            let nd_i = nd as i64;
            let mut eprec = i64::try_from(prec).unwrap_or(i64::MAX);
            if eprec > nd_i && nd_i >= dp {
                eprec = nd_i;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            if exp < -4 || exp >= eprec {
                if prec > nd {
                    prec = nd;
                }
                fmt_e(&mut out, &digits, dp, prec.saturating_sub(1), e);
            } else {
                if i64::try_from(prec).unwrap_or(i64::MAX) > dp {
                    prec = nd;
                }
                let frac = (i64::try_from(prec).unwrap_or(i64::MAX) - dp).max(0);
                fmt_f(&mut out, &digits, dp, usize::try_from(frac).unwrap_or(0));
            }
        }
    }
    out
}

/// Go's `unicode.IsPrint`, approximately: graphic characters and the
/// ASCII space, without format and private-use characters.
pub(super) fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(
        u32::from(c),
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x206F
            | 0xE000..=0xF8FF
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0xFFFE
            | 0xFFFF
            | 0xF0000..=0x10FFFF
    )
}

/// Appends `c` escaped as Go's `strconv.Quote` does inside `quote`.
fn push_escaped(out: &mut String, c: char, quote: char, ascii_only: bool) {
    if c == quote || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if (c.is_ascii() || !ascii_only) && is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if c < ' ' || c == '\x7f' => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c if u32::from(c) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        }
        c => {
            let _ = write!(out, "\\U{:08x}", u32::from(c));
        }
    }
}

/// Go's `strconv.Quote` (`ascii_only`: `strconv.QuoteToASCII`).
pub(super) fn quote(s: &str, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c, '"', ascii_only);
    }
    out.push('"');
    out
}

/// Go's `strconv.QuoteRune`.
fn quote_rune(r: i64, ascii_only: bool) -> String {
    let c = u32::try_from(r)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{FFFD}');
    let mut out = String::from("'");
    push_escaped(&mut out, c, '\'', ascii_only);
    out.push('\'');
    out
}

/// Go's `strconv.CanBackquote`.
fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !(c < ' ' || c == '\x7f')))
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day)
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Go's `time.Time.String()` of a UTC time given in milliseconds:
/// `2006-01-02 15:04:05.999 +0000 UTC`.
pub(super) fn time_string(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if milli != 0 {
        let frac = format!("{milli:03}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub(super) fn duration_string(ns: i64) -> String {
    let neg = ns < 0;
    let mut u = ns.unsigned_abs();
    // Built right to left, as Go does.
    let mut rev: Vec<u8> = Vec::new();
    let push_rev = |rev: &mut Vec<u8>, s: &str| rev.extend(s.bytes().rev());
    // fmt_frac: the fraction of u/10^prec without trailing zeros.
    let fmt_frac = |rev: &mut Vec<u8>, u: u64, prec: u32| -> u64 {
        let mut v = u;
        let mut print = false;
        for _ in 0..prec {
            let digit = v % 10;
            print = print || digit != 0;
            if print {
                rev.push(b'0' + u8::try_from(digit).unwrap_or(0));
            }
            v /= 10;
        }
        if print {
            rev.push(b'.');
        }
        v
    };
    let fmt_int = |rev: &mut Vec<u8>, v: u64| push_rev(rev, &v.to_string());
    if u < 1_000_000_000 {
        if u == 0 {
            return "0s".to_string();
        }
        rev.push(b's');
        let prec = if u < 1_000 {
            rev.push(b'n');
            0
        } else if u < 1_000_000 {
            push_rev(&mut rev, "µ");
            3
        } else {
            rev.push(b'm');
            6
        };
        u = fmt_frac(&mut rev, u, prec);
        fmt_int(&mut rev, u);
    } else {
        rev.push(b's');
        u = fmt_frac(&mut rev, u, 9);
        fmt_int(&mut rev, u % 60);
        u /= 60;
        if u > 0 {
            rev.push(b'm');
            fmt_int(&mut rev, u % 60);
            u /= 60;
            if u > 0 {
                rev.push(b'h');
                fmt_int(&mut rev, u);
            }
        }
    }
    if neg {
        rev.push(b'-');
    }
    rev.reverse();
    String::from_utf8_lossy(&rev).into_owned()
}

/// Appends Go's `%v` of `v` (no flags). `Missing` prints as `<nil>`, as
/// it does when passed to a `fmt` function.
pub(super) fn push_v(out: &mut String, v: &Value<'_>) {
    push_arg(out, v, 'v', &Flags::default());
}

/// Go's `%v` of `v` as a new string.
pub(super) fn sprint_v(v: &Value<'_>) -> String {
    let mut out = String::new();
    push_v(&mut out, v);
    out
}

/// Go's `fmt.Sprint(args...)`: spaces between operands when neither is
/// a string.
pub(super) fn sprint(args: &[Value<'_>]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        push_v(&mut out, arg);
        prev_string = is_string;
    }
    out
}

/// Go's `fmt.Sprintln(args...)`: spaces between all operands, then a
/// newline.
pub(super) fn sprintln(args: &[Value<'_>]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        push_v(&mut out, arg);
    }
    out.push('\n');
    out
}

/// Go's `fmt` flags, width and precision of one verb.
#[derive(Clone, Debug, Default)]
struct Flags {
    sharp: bool,
    zero: bool,
    plus: bool,
    minus: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go's `fmt` refuses widths and precisions above this (`tooLarge`).
const FMT_WIDTH_MAX: i64 = 1_000_000;

/// Appends `s` padded to the width (in characters) with spaces, or with
/// zeros when `zeros` and the zero flag allow.
fn pad(out: &mut String, s: &str, f: &Flags, zeros: bool) {
    let n = s.chars().count();
    let fill = f.width.unwrap_or(0).saturating_sub(n);
    if fill == 0 {
        out.push_str(s);
        return;
    }
    if f.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    } else {
        let c = if zeros && f.zero { '0' } else { ' ' };
        out.extend(std::iter::repeat_n(c, fill));
        out.push_str(s);
    }
}

/// Go's `%!verb(type=value)`.
fn bad_verb(out: &mut String, v: &Value<'_>, verb: char) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    match v {
        Value::Nil | Value::Missing => out.push_str("<nil>"),
        v => {
            out.push_str(v.type_name());
            out.push('=');
            push_v(out, v);
        }
    }
    out.push(')');
}

/// Appends one argument formatted with `verb` and `f` (Go's `printArg`).
fn push_arg(out: &mut String, v: &Value<'_>, verb: char, f: &Flags) {
    if verb == 'T' {
        pad(out, v.type_name(), f, false);
        return;
    }
    match v {
        Value::Missing | Value::Nil => {
            if verb == 'v' {
                pad(out, "<nil>", f, false);
            } else {
                bad_verb(out, v, verb);
            }
        }
        Value::Bool(b) => {
            if verb == 'v' || verb == 't' {
                pad(out, if *b { "true" } else { "false" }, f, false);
            } else {
                bad_verb(out, v, verb);
            }
        }
        Value::Int(n) => push_integer(out, v, *n, verb, f),
        Value::Float(x) => push_float(out, v, *x, verb, f),
        Value::Str(s) => push_string(out, v, s, verb, f),
        Value::Time(_) | Value::Duration(_) => {
            // Both are Stringers: Go calls String() for these verbs.
            if matches!(verb, 'v' | 's' | 'x' | 'X' | 'q') {
                let s = match v {
                    Value::Time(ms) => time_string(*ms),
                    Value::Duration(ns) => duration_string(*ns),
                    _ => String::new(),
                };
                push_string(out, v, &s, verb, f);
            } else {
                bad_verb(out, v, verb);
            }
        }
        Value::Labels(m) => {
            out.push_str("map[");
            for (i, (k, val)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                push_string(out, v, k, verb, f);
                out.push(':');
                push_string(out, v, val, verb, f);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, val)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                push_string(out, v, k, verb, f);
                out.push(':');
                push_arg(out, val, verb, f);
            }
            out.push(']');
        }
        Value::Data(d) => {
            let fields = [
                ("Labels", Value::Labels(&d.labels)),
                ("ExternalLabels", Value::Labels(&d.external_labels)),
                ("ExternalURL", Value::str(&d.external_url)),
                ("Value", Value::Float(d.value)),
            ];
            out.push('{');
            for (i, (name, field)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                if f.plus && verb == 'v' {
                    out.push_str(name);
                    out.push(':');
                }
                push_arg(out, field, verb, f);
            }
            out.push('}');
        }
    }
}

/// Go's `fmtString` for `%v %s %q %x %X`.
fn push_string(out: &mut String, v: &Value<'_>, s: &str, verb: char, f: &Flags) {
    match verb {
        'v' if f.sharp => pad(out, &quote(s, false), f, false),
        'v' | 's' => {
            let s = truncate_chars(s, f.prec);
            pad(out, s, f, false);
        }
        'q' => {
            let s = truncate_chars(s, f.prec);
            let q = if f.sharp && can_backquote(s) {
                format!("`{s}`")
            } else {
                quote(s, f.plus)
            };
            pad(out, &q, f, false);
        }
        'x' | 'X' => {
            let bytes = s.as_bytes();
            let n = f.prec.map_or(bytes.len(), |p| p.min(bytes.len()));
            let mut hex = String::with_capacity(n * 2 + 2);
            if f.sharp {
                hex.push_str(if verb == 'x' { "0x" } else { "0X" });
            }
            for b in bytes.get(..n).unwrap_or(&[]) {
                if verb == 'x' {
                    let _ = write!(hex, "{b:02x}");
                } else {
                    let _ = write!(hex, "{b:02X}");
                }
            }
            pad(out, &hex, f, false);
        }
        _ => bad_verb(out, v, verb),
    }
}

/// The first `prec` characters of `s` (all of it without a precision).
fn truncate_chars(s: &str, prec: Option<usize>) -> &str {
    match prec {
        Some(p) => match s.char_indices().nth(p) {
            Some((i, _)) => s.get(..i).unwrap_or(s),
            None => s,
        },
        None => s,
    }
}

/// Go's `fmtInteger` and friends for an `int`.
fn push_integer(out: &mut String, v: &Value<'_>, n: i64, verb: char, f: &Flags) {
    let (base, upper) = match verb {
        'v' | 'd' => (10, false),
        'b' => (2, false),
        'o' | 'O' => (8, false),
        'x' => (16, false),
        'X' => (16, true),
        'c' => {
            let c = u32::try_from(n)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            pad(out, c.encode_utf8(&mut [0; 4]), f, false);
            return;
        }
        'q' => {
            pad(out, &quote_rune(n, f.plus), f, false);
            return;
        }
        'U' => {
            let mut s = format!("U+{:04X}", n);
            if f.sharp
                && let Some(c) = u32::try_from(n).ok().and_then(char::from_u32)
                && is_print(c)
            {
                let _ = write!(s, " '{c}'");
            }
            pad(out, &s, f, false);
            return;
        }
        _ => {
            bad_verb(out, v, verb);
            return;
        }
    };
    let negative = n < 0;
    let u = n.unsigned_abs();
    let mut digits = match (base, upper) {
        (2, _) => format!("{u:b}"),
        (8, _) => format!("{u:o}"),
        (16, false) => format!("{u:x}"),
        (16, true) => format!("{u:X}"),
        _ => u.to_string(),
    };
    let mut min_digits = 0;
    if let Some(p) = f.prec {
        if p == 0 && u == 0 {
            // Precision 0 and value 0 print nothing but the padding.
            let plain = Flags {
                zero: false,
                ..f.clone()
            };
            pad(out, "", &plain, false);
            return;
        }
        min_digits = p;
    } else if f.zero
        && !f.minus
        && let Some(w) = f.width
    {
        min_digits = w;
        if negative || f.plus || f.space {
            min_digits = min_digits.saturating_sub(1);
        }
    }
    if digits.len() < min_digits {
        digits = "0".repeat(min_digits - digits.len()) + &digits;
    }
    let mut s = String::new();
    if negative {
        s.push('-');
    } else if f.plus {
        s.push('+');
    } else if f.space {
        s.push(' ');
    }
    if f.sharp {
        match base {
            2 => s.push_str("0b"),
            8 if !digits.starts_with('0') => s.push('0'),
            16 => s.push_str(if upper { "0X" } else { "0x" }),
            _ => {}
        }
    }
    if verb == 'O' {
        s.push_str("0o");
    }
    s.push_str(&digits);
    pad(out, &s, f, false);
}

/// Go's `fmtFloat` for a `float64`.
fn push_float(out: &mut String, v: &Value<'_>, x: f64, verb: char, f: &Flags) {
    let num = match verb {
        'v' => format_float(x, b'g', f.prec),
        'g' | 'G' => format_float(x, verb as u8, f.prec),
        'e' | 'E' | 'f' | 'F' => format_float(x, verb as u8, Some(f.prec.unwrap_or(6))),
        _ => {
            bad_verb(out, v, verb);
            return;
        }
    };
    let (mut sign, body) = match num.as_bytes().first() {
        Some(b'-') => ('-', num.get(1..).unwrap_or("")),
        Some(b'+') => ('+', num.get(1..).unwrap_or("")),
        _ => ('+', num.as_str()),
    };
    if f.space && sign == '+' && !f.plus {
        sign = ' ';
    }
    if body.starts_with('I') || body.starts_with('N') {
        // Infinities and NaN are never zero padded; NaN shows a sign
        // only when asked to.
        let s = if body.starts_with('N') && !f.space && !f.plus {
            body.to_string()
        } else {
            format!("{sign}{body}")
        };
        pad(out, &s, f, false);
        return;
    }
    if f.plus || sign != '+' {
        let len = body.chars().count() + 1;
        if f.zero && !f.minus && f.width.is_some_and(|w| w > len) {
            out.push(sign);
            out.extend(std::iter::repeat_n('0', f.width.unwrap_or(0) - len));
            out.push_str(body);
            return;
        }
        pad(out, &format!("{sign}{body}"), f, true);
        return;
    }
    pad(out, body, f, true);
}

/// Go's `fmt.Sprintf(format, args...)` for the verbs templates use:
/// `%v %s %d %f %e %g %q %x %X %o %b %c %t %T %U %%`, the flags
/// `#0+- `, widths and precisions (also `*`) and argument indexes
/// (`%[1]d`). Errors print inline as Go prints them (`%!d(string=x)`,
/// `%!s(MISSING)`, `%!(EXTRA ...)`).
pub(super) fn sprintf(format: &str, args: &[Value<'_>]) -> String {
    let mut out = String::new();
    let b = format.as_bytes();
    let mut i = 0;
    let mut argi = 0;
    let mut reordered = false;
    while i < b.len() {
        let start = i;
        while i < b.len() && b.get(i) != Some(&b'%') {
            i += 1;
        }
        out.push_str(format.get(start..i).unwrap_or(""));
        if i >= b.len() {
            break;
        }
        i += 1;
        let mut f = Flags::default();
        while let Some(&c) = b.get(i) {
            match c {
                b'#' => f.sharp = true,
                b'0' => f.zero = true,
                b'+' => f.plus = true,
                b'-' => f.minus = true,
                b' ' => f.space = true,
                _ => break,
            }
            i += 1;
        }
        f.zero = f.zero && !f.minus;
        // Argument index before the width.
        if b.get(i) == Some(&b'[') {
            match parse_index(b, i) {
                Some((n, next)) => {
                    argi = n;
                    i = next;
                    reordered = true;
                }
                None => {
                    out.push_str("%!(BADINDEX)");
                    i = skip_to_bracket(b, i);
                    continue;
                }
            }
        }
        // Width.
        if b.get(i) == Some(&b'*') {
            i += 1;
            match args.get(argi) {
                Some(Value::Int(n)) if (-FMT_WIDTH_MAX..=FMT_WIDTH_MAX).contains(n) => {
                    if *n < 0 {
                        f.minus = true;
                        f.zero = false;
                    }
                    f.width = usize::try_from(n.unsigned_abs()).ok();
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            argi += 1;
        } else {
            let (n, next) = parse_num(b, i);
            i = next;
            if let Some(n) = n {
                if n > FMT_WIDTH_MAX {
                    out.push_str("%!(NOVERB)");
                    return finish(out, args, argi, reordered);
                }
                f.width = usize::try_from(n).ok();
            }
        }
        // Precision.
        if b.get(i) == Some(&b'.') {
            i += 1;
            if b.get(i) == Some(&b'[')
                && let Some((n, next)) = parse_index(b, i)
            {
                argi = n;
                i = next;
                reordered = true;
            }
            if b.get(i) == Some(&b'*') {
                i += 1;
                match args.get(argi) {
                    Some(Value::Int(n)) if (-FMT_WIDTH_MAX..=FMT_WIDTH_MAX).contains(n) => {
                        // A negative precision means none.
                        f.prec = usize::try_from(*n).ok();
                    }
                    _ => out.push_str("%!(BADPREC)"),
                }
                argi += 1;
            } else {
                let (n, next) = parse_num(b, i);
                i = next;
                match n {
                    Some(n) if n > FMT_WIDTH_MAX => {
                        out.push_str("%!(NOVERB)");
                        return finish(out, args, argi, reordered);
                    }
                    Some(n) => f.prec = usize::try_from(n).ok(),
                    None => f.prec = Some(0),
                }
            }
        }
        if b.get(i) == Some(&b'[')
            && let Some((n, next)) = parse_index(b, i)
        {
            argi = n;
            i = next;
            reordered = true;
        }
        let Some(verb) = format.get(i..).and_then(|s| s.chars().next()) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(argi) {
            None => {
                out.push_str("%!");
                out.push(verb);
                out.push_str("(MISSING)");
            }
            Some(arg) => {
                push_arg(&mut out, arg, verb, &f);
                argi += 1;
            }
        }
    }
    finish(out, args, argi, reordered)
}

/// Appends Go's `%!(EXTRA ...)` for unused arguments.
fn finish(mut out: String, args: &[Value<'_>], argi: usize, reordered: bool) -> String {
    if !reordered && argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, arg) in args.iter().skip(argi).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match arg {
                Value::Nil | Value::Missing => out.push_str("<nil>"),
                arg => {
                    out.push_str(arg.type_name());
                    out.push('=');
                    push_v(&mut out, arg);
                }
            }
        }
        out.push(')');
    }
    out
}

/// Parses decimal digits at `i`: the number (if any) and the index after.
fn parse_num(b: &[u8], mut i: usize) -> (Option<i64>, usize) {
    let mut n: Option<i64> = None;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        n = Some(
            n.unwrap_or(0)
                .saturating_mul(10)
                .saturating_add(i64::from(c - b'0')),
        );
        i += 1;
    }
    (n, i)
}

/// Parses `[n]` at `i` (1-based in the format): the 0-based index and
/// the index after `]`.
fn parse_index(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let (n, next) = parse_num(b, i + 1);
    if b.get(next) != Some(&b']') {
        return None;
    }
    let n = usize::try_from(n?).ok()?;
    if n == 0 {
        return None;
    }
    Some((n - 1, next + 1))
}

/// The index after the `]` that closes a bad argument index (or the end).
fn skip_to_bracket(b: &[u8], i: usize) -> usize {
    let mut j = i;
    while j < b.len() && b.get(j) != Some(&b']') {
        j += 1;
    }
    (j + 1).min(b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_prints_them() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (0.5, "0.5"),
            (42.0, "42"),
            (100_000.0, "100000"),
            (1_000_000.0, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e21, "1e+21"),
            (1.0 / 3.0, "0.3333333333333333"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (-2.5, "-2.5"),
            (5e-324, "5e-324"),
        ];
        for (v, want) in cases {
            assert_eq!(float_v(*v), *want, "{v}");
        }
    }

    #[test]
    fn four_significant_digits_as_go() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (1234.567, "1235"),
            (1.234567, "1.235"),
            (12.5, "12.5"),
            (100.0, "100"),
            (10000.0, "1e+04"),
            (100_000.0, "1e+05"),
            (0.001234, "0.001234"),
            (0.00001234, "1.234e-05"),
            (999.99, "1000"),
            (9999.9, "1e+04"),
            (f64::INFINITY, "+Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(float_4g(*v), *want, "{v}");
        }
    }

    #[test]
    fn sprintf_as_go() {
        let s = |x: &str| Value::str(x);
        let cases: Vec<(&str, Vec<Value<'_>>, &str)> = vec![
            ("%.2f", vec![Value::Float(1.23456)], "1.23"),
            ("%d%%", vec![Value::Int(50)], "50%"),
            ("%s=%q", vec![s("a"), s("b\n")], "a=\"b\\n\""),
            ("%5.1f|", vec![Value::Float(2.25)], "  2.2|"),
            ("%-5d|", vec![Value::Int(7)], "7    |"),
            ("%05d", vec![Value::Int(-42)], "-0042"),
            ("%x %X", vec![Value::Int(255), s("hi")], "ff 6869"),
            ("%#x", vec![Value::Int(255)], "0xff"),
            ("%g", vec![Value::Float(1e6)], "1e+06"),
            ("%e", vec![Value::Float(1234.5678)], "1.234568e+03"),
            ("%v", vec![Value::Float(0.1)], "0.1"),
            ("%d", vec![s("x")], "%!d(string=x)"),
            ("%f", vec![Value::Int(1)], "%!f(int=1)"),
            ("%s %s", vec![s("a")], "a %!s(MISSING)"),
            ("%s", vec![s("a"), Value::Int(2)], "a%!(EXTRA int=2)"),
            ("%t", vec![Value::Bool(true)], "true"),
            ("%+.1e", vec![Value::Float(12345.0)], "+1.2e+04"),
            ("%08.3f", vec![Value::Float(-1.23456)], "-001.235"),
            ("%.3s", vec![s("abcdef")], "abc"),
            ("%c", vec![Value::Int(65)], "A"),
            ("%[2]s %[1]s", vec![s("a"), s("b")], "b a"),
            ("%*d", vec![Value::Int(4), Value::Int(7)], "   7"),
            ("%", vec![], "%!(NOVERB)"),
            ("%v", vec![Value::Nil], "<nil>"),
            ("%T", vec![Value::Float(1.0)], "float64"),
        ];
        for (format, args, want) in cases {
            assert_eq!(sprintf(format, &args), want, "{format}");
        }
    }

    #[test]
    fn times_and_durations_as_go() {
        assert_eq!(time_string(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            time_string(1_600_000_000_123),
            "2020-09-13 12:26:40.123 +0000 UTC"
        );
        assert_eq!(time_string(-1), "1969-12-31 23:59:59.999 +0000 UTC");
        assert_eq!(duration_string(0), "0s");
        assert_eq!(duration_string(1_500_000), "1.5ms");
        assert_eq!(duration_string(90_000_000_000), "1m30s");
        assert_eq!(duration_string(3_661_500_000_000), "1h1m1.5s");
        assert_eq!(duration_string(-2_000), "-2µs");
        assert_eq!(duration_string(7), "7ns");
    }

    #[test]
    fn quote_as_go() {
        assert_eq!(quote("a\"b\\\t\u{1}é", false), "\"a\\\"b\\\\\\t\\x01é\"");
        assert_eq!(quote("é", true), "\"\\u00e9\"");
    }
}
