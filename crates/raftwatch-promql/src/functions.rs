//! PromQL functions (Prometheus 3.x `promql/functions.go` semantics, float
//! samples and classic histograms).

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{Call, Expr};
use regex::Regex;

use crate::Error;
use crate::eval::{Evaluator, Grid, RangeInput, S, V, window};
use crate::labels::{Labels, NAME};
use crate::plan::{matchers, offset_ms};

/// `kahan_inc` adds `inc` to `sum` with Neumaier compensation `c`
/// (Prometheus's `kahansum.Inc`).
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

fn arg(c: &Call, i: usize) -> Result<&Expr, Error> {
    c.args
        .args
        .get(i)
        .map(|b| &**b)
        .ok_or_else(|| Error::Parse(format!("missing argument {} to {}", i + 1, c.func.name)))
}

fn string_arg(c: &Call, i: usize) -> Result<String, Error> {
    let mut e = arg(c, i)?;
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    match e {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        _ => Err(Error::Parse(format!(
            "expected a string literal as argument {} to {}",
            i + 1,
            c.func.name
        ))),
    }
}

fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// `map_values` applies `f` to every value, marking names for removal.
fn map_values(mut ss: Vec<S>, f: impl Fn(f64) -> f64) -> V {
    for s in &mut ss {
        for v in s.vals.iter_mut().flatten() {
            *v = f(*v);
        }
        s.drop_name = true;
    }
    V::Vector(ss)
}

/// `map_values_with` is [`map_values`] with a per-step scalar argument.
fn map_values_with(mut ss: Vec<S>, p: &[f64], f: impl Fn(f64, f64) -> f64) -> V {
    for s in &mut ss {
        for (v, &p) in s.vals.iter_mut().zip(p) {
            if let Some(v) = v {
                *v = f(*v, p);
            }
        }
        s.drop_name = true;
    }
    V::Vector(ss)
}

pub(crate) fn call(ev: &mut Evaluator, c: &Call, grid: &Grid) -> Result<V, Error> {
    let name = c.func.name;
    let n = grid.len();
    let simple: Option<fn(f64) -> f64> = match name {
        "abs" => Some(f64::abs),
        "ceil" => Some(f64::ceil),
        "floor" => Some(f64::floor),
        "exp" => Some(f64::exp),
        "sqrt" => Some(f64::sqrt),
        "ln" => Some(f64::ln),
        "log2" => Some(f64::log2),
        "log10" => Some(f64::log10),
        "sin" => Some(f64::sin),
        "cos" => Some(f64::cos),
        "tan" => Some(f64::tan),
        "asin" => Some(f64::asin),
        "acos" => Some(f64::acos),
        "atan" => Some(f64::atan),
        "sinh" => Some(f64::sinh),
        "cosh" => Some(f64::cosh),
        "tanh" => Some(f64::tanh),
        "asinh" => Some(f64::asinh),
        "acosh" => Some(f64::acosh),
        "atanh" => Some(f64::atanh),
        "deg" => Some(|x| x * 180.0 / std::f64::consts::PI),
        "rad" => Some(|x| x * std::f64::consts::PI / 180.0),
        "sgn" => Some(|x: f64| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        }),
        _ => None,
    };
    if let Some(f) = simple {
        let ss = ev.eval_vector(arg(c, 0)?, grid)?;
        return Ok(map_values(ss, f));
    }
    match name {
        "time" => Ok(V::Scalar(grid.times().map(|t| t as f64 / 1000.0).collect())),
        "pi" => Ok(V::Scalar(vec![std::f64::consts::PI; n])),
        "vector" => {
            let s = ev.eval_scalar(arg(c, 0)?, grid)?;
            Ok(V::Vector(vec![S {
                labels: Labels::default(),
                vals: s.into_iter().map(Some).collect(),
                drop_name: false,
            }]))
        }
        "scalar" => {
            let ss = ev.eval_vector(arg(c, 0)?, grid)?;
            let mut out = vec![f64::NAN; n];
            for (i, o) in out.iter_mut().enumerate() {
                let mut it = ss.iter().filter_map(|s| s.vals[i]);
                if let (Some(v), None) = (it.next(), it.next()) {
                    *o = v;
                }
            }
            Ok(V::Scalar(out))
        }
        "clamp" => {
            let ss = ev.eval_vector(arg(c, 0)?, grid)?;
            let lo = ev.eval_scalar(arg(c, 1)?, grid)?;
            let hi = ev.eval_scalar(arg(c, 2)?, grid)?;
            let mut ss = ss;
            for s in &mut ss {
                for (i, v) in s.vals.iter_mut().enumerate() {
                    if lo[i] > hi[i] {
                        *v = None;
                    } else if let Some(x) = v {
                        *x = lo[i].max(hi[i].min(*x));
                    }
                }
                s.drop_name = true;
            }
            Ok(V::Vector(ss))
        }
        "clamp_max" => {
            let ss = ev.eval_vector(arg(c, 0)?, grid)?;
            let p = ev.eval_scalar(arg(c, 1)?, grid)?;
            Ok(map_values_with(ss, &p, |x, m| m.min(x)))
        }
        "clamp_min" => {
            let ss = ev.eval_vector(arg(c, 0)?, grid)?;
            let p = ev.eval_scalar(arg(c, 1)?, grid)?;
            Ok(map_values_with(ss, &p, |x, m| m.max(x)))
        }
        "round" => {
            let ss = ev.eval_vector(arg(c, 0)?, grid)?;
            let p = match c.args.args.get(1) {
                Some(a) => ev.eval_scalar(a, grid)?,
                None => vec![1.0; n],
            };
            Ok(map_values_with(ss, &p, |x, to| {
                let inv = 1.0 / to;
                (x * inv + 0.5).floor() / inv
            }))
        }
        "timestamp" => timestamp(ev, c, grid),
        "sort" | "sort_desc" => {
            let mut ss = ev.eval_vector(arg(c, 0)?, grid)?;
            sort_in_range_warning(ev);
            if n == 1 {
                let desc = name == "sort_desc";
                ss.sort_by(|a, b| {
                    let (x, y) = (a.vals[0].unwrap_or(f64::NAN), b.vals[0].unwrap_or(f64::NAN));
                    // NaN sorts last either way.
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if desc => y.total_cmp(&x),
                        _ => x.total_cmp(&y),
                    }
                });
            }
            Ok(V::Vector(ss))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut ss = ev.eval_vector(arg(c, 0)?, grid)?;
            sort_in_range_warning(ev);
            let mut names = Vec::new();
            for i in 1..c.args.args.len() {
                names.push(string_arg(c, i)?);
            }
            let desc = name == "sort_by_label_desc";
            ss.sort_by(|a, b| {
                let mut o = std::cmp::Ordering::Equal;
                for l in &names {
                    o = natural_cmp(a.labels.get(l), b.labels.get(l));
                    if o.is_ne() {
                        break;
                    }
                }
                if o.is_eq() {
                    o = a.labels.cmp(&b.labels);
                }
                if desc { o.reverse() } else { o }
            });
            Ok(V::Vector(ss))
        }
        "label_replace" => label_replace(ev, c, grid),
        "label_join" => label_join(ev, c, grid),
        "absent" => {
            let ss = ev.eval_vector(arg(c, 0)?, grid)?;
            let present = (0..n).map(|i| ss.iter().any(|s| s.vals[i].is_some()));
            absent(absent_labels(arg(c, 0)?)?, present)
        }
        "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute"
        | "month" | "year" => {
            let f = date_fn(name);
            match c.args.args.first() {
                None => Ok(V::Vector(vec![S {
                    labels: Labels::default(),
                    vals: grid.times().map(|t| Some(f(t.div_euclid(1000)))).collect(),
                    drop_name: false,
                }])),
                Some(a) => {
                    let ss = ev.eval_vector(a, grid)?;
                    Ok(map_values(ss, |x| {
                        if x.is_nan() || x.is_infinite() {
                            return f64::NAN;
                        }
                        f(x as i64)
                    }))
                }
            }
        }
        "histogram_quantile" => histogram_quantile(ev, c, grid),
        "histogram_fraction" => histogram_fraction(ev, c, grid),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            // Native histograms only; float samples are ignored.
            ev.eval_vector(arg(c, 0)?, grid)?;
            Ok(V::Vector(Vec::new()))
        }
        "absent_over_time" => {
            let input = ev.range_input(arg(c, 0)?, grid)?;
            let present = input.windows.iter().map(|&(lo, hi)| {
                input
                    .series
                    .iter()
                    .any(|s| !window(&s.points, lo, hi).is_empty())
            });
            absent(absent_labels(arg(c, 0)?)?, present)
        }
        "rate"
        | "increase"
        | "delta"
        | "irate"
        | "idelta"
        | "changes"
        | "resets"
        | "deriv"
        | "avg_over_time"
        | "min_over_time"
        | "max_over_time"
        | "sum_over_time"
        | "count_over_time"
        | "last_over_time"
        | "first_over_time"
        | "present_over_time"
        | "stddev_over_time"
        | "stdvar_over_time"
        | "mad_over_time"
        | "ts_of_min_over_time"
        | "ts_of_max_over_time"
        | "ts_of_first_over_time"
        | "ts_of_last_over_time" => {
            let input = ev.range_input(arg(c, 0)?, grid)?;
            if matches!(name, "rate" | "increase") {
                counter_name_info(ev, &input);
            }
            let f = range_fn(name);
            range_apply(
                ev,
                input,
                |pts, lo, hi, range_ms, _| f(pts, lo, hi, range_ms),
                !matches!(name, "last_over_time" | "first_over_time"),
            )
        }
        "quantile_over_time" => {
            let q = ev.eval_scalar(arg(c, 0)?, grid)?;
            for &q in &q {
                if q.is_nan() || !(0.0..=1.0).contains(&q) {
                    ev.annotations.warn(format!(
                        "quantile value should be between 0 and 1, got {}",
                        fmt_f(q)
                    ));
                }
            }
            let input = ev.range_input(arg(c, 1)?, grid)?;
            range_apply(
                ev,
                input,
                |pts, _, _, _, i| {
                    if pts.is_empty() {
                        return None;
                    }
                    let mut vals: Vec<f64> = pts.iter().map(|p| p.1).collect();
                    Some(quantile(q[i], &mut vals))
                },
                true,
            )
        }
        "predict_linear" => {
            let input = ev.range_input(arg(c, 0)?, grid)?;
            let d = ev.eval_scalar(arg(c, 1)?, grid)?;
            // The intercept is the step's time, even under `@`.
            let eval_times: Vec<i64> = grid.times().collect();
            range_apply(
                ev,
                input,
                |pts, _, _, _, i| {
                    if pts.len() < 2 {
                        return None;
                    }
                    let (slope, intercept) = linear_regression(pts, eval_times[i]);
                    Some(slope * d[i] + intercept)
                },
                true,
            )
        }
        "double_exponential_smoothing" => {
            let input = ev.range_input(arg(c, 0)?, grid)?;
            let sf = ev.eval_scalar(arg(c, 1)?, grid)?;
            let tf = ev.eval_scalar(arg(c, 2)?, grid)?;
            for i in 0..n {
                if !(sf[i] > 0.0 && sf[i] < 1.0) {
                    return Err(Error::Execution(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
                        fmt_f(sf[i])
                    )));
                }
                if !(tf[i] > 0.0 && tf[i] < 1.0) {
                    return Err(Error::Execution(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {}",
                        fmt_f(tf[i])
                    )));
                }
            }
            range_apply(
                ev,
                input,
                |pts, _, _, _, i| double_exponential_smoothing(pts, sf[i], tf[i]),
                true,
            )
        }
        _ => Err(Error::Execution(format!(
            "function {name}() is not supported"
        ))),
    }
}

fn sort_in_range_warning(ev: &mut Evaluator) {
    if !ev.query.instant {
        ev.annotations.warn(
            "sort is ineffective for range queries since results are always ordered by labels"
                .into(),
        );
    }
}

fn counter_name_info(ev: &mut Evaluator, input: &RangeInput) {
    for s in &input.series {
        if s.drop_name {
            continue;
        }
        let name = s.labels.get(NAME);
        if !["_total", "_sum", "_count", "_bucket"]
            .iter()
            .any(|suf| name.ends_with(suf))
        {
            ev.annotations.info(format!(
                "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?}"
            ));
        }
    }
}

type RangeFn = fn(&[(i64, f64)], i64, i64, i64) -> Option<f64>;

/// `range_apply` evaluates `f` over every series' window at every step.
/// `f` gets the window's points, its bounds, the range (ms) and the step
/// index.
fn range_apply(
    ev: &mut Evaluator,
    input: RangeInput,
    f: impl Fn(&[(i64, f64)], i64, i64, i64, usize) -> Option<f64>,
    drop_name: bool,
) -> Result<V, Error> {
    let mut out = Vec::with_capacity(input.series.len());
    for (k, s) in input.series.into_iter().enumerate() {
        if k % 64 == 63 {
            ev.check_cancel()?;
        }
        let mut any = false;
        let mut cursor = crate::eval::Windows::new(&s.points);
        let vals: Vec<Option<f64>> = input
            .windows
            .iter()
            .enumerate()
            .map(|(i, &(lo, hi))| {
                let w = cursor.get(lo, hi);
                let v = if w.is_empty() {
                    None
                } else {
                    f(w, lo, hi, input.range_ms, i)
                };
                any |= v.is_some();
                v
            })
            .collect();
        if any {
            out.push(S {
                labels: s.labels,
                vals,
                drop_name: drop_name || s.drop_name,
            });
        }
    }
    Ok(V::Vector(out))
}

fn range_fn(name: &str) -> RangeFn {
    match name {
        "rate" => |p, lo, hi, r| extrapolated_rate(p, lo, hi, r, true, true),
        "increase" => |p, lo, hi, r| extrapolated_rate(p, lo, hi, r, true, false),
        "delta" => |p, lo, hi, r| extrapolated_rate(p, lo, hi, r, false, false),
        "irate" => |p, _, _, _| instant_value(p, true),
        "idelta" => |p, _, _, _| instant_value(p, false),
        "changes" => |p, _, _, _| {
            let mut n = 0.0;
            for w in p.windows(2) {
                let (a, b) = (w[0].1, w[1].1);
                if !(a == b || (a.is_nan() && b.is_nan())) {
                    n += 1.0;
                }
            }
            Some(n)
        },
        "resets" => |p, _, _, _| Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
        "deriv" => |p, _, _, _| {
            if p.len() < 2 {
                return None;
            }
            Some(linear_regression(p, p[0].0).0)
        },
        "avg_over_time" => |p, _, _, _| Some(avg(p.iter().map(|x| x.1))),
        "sum_over_time" => |p, _, _, _| {
            let (mut s, mut c) = (0.0, 0.0);
            for x in p {
                (s, c) = kahan_inc(x.1, s, c);
            }
            Some(if s.is_infinite() { s } else { s + c })
        },
        "count_over_time" => |p, _, _, _| Some(p.len() as f64),
        "min_over_time" => |p, _, _, _| {
            let mut m = p[0].1;
            for x in &p[1..] {
                if x.1 < m || m.is_nan() {
                    m = x.1;
                }
            }
            Some(m)
        },
        "max_over_time" => |p, _, _, _| {
            let mut m = p[0].1;
            for x in &p[1..] {
                if x.1 > m || m.is_nan() {
                    m = x.1;
                }
            }
            Some(m)
        },
        "last_over_time" => |p, _, _, _| p.last().map(|x| x.1),
        "first_over_time" => |p, _, _, _| p.first().map(|x| x.1),
        "present_over_time" => |_, _, _, _| Some(1.0),
        "stddev_over_time" => |p, _, _, _| Some(variance(p).sqrt()),
        "stdvar_over_time" => |p, _, _, _| Some(variance(p)),
        "mad_over_time" => |p, _, _, _| {
            let mut vals: Vec<f64> = p.iter().map(|x| x.1).collect();
            let median = quantile(0.5, &mut vals);
            let mut devs: Vec<f64> = p.iter().map(|x| (x.1 - median).abs()).collect();
            Some(quantile(0.5, &mut devs))
        },
        "ts_of_min_over_time" => |p, _, _, _| {
            let mut best = p[0];
            for &x in &p[1..] {
                if x.1 <= best.1 || best.1.is_nan() {
                    best = x;
                }
            }
            Some(best.0 as f64 / 1000.0)
        },
        "ts_of_max_over_time" => |p, _, _, _| {
            let mut best = p[0];
            for &x in &p[1..] {
                if x.1 >= best.1 || best.1.is_nan() {
                    best = x;
                }
            }
            Some(best.0 as f64 / 1000.0)
        },
        "ts_of_first_over_time" => |p, _, _, _| p.first().map(|x| x.0 as f64 / 1000.0),
        "ts_of_last_over_time" => |p, _, _, _| p.last().map(|x| x.0 as f64 / 1000.0),
        _ => |_, _, _, _| None,
    }
}

/// `avg` is Prometheus's mean: a compensated sum, switching to an
/// incremental mean if the sum overflows.
pub(crate) fn avg(vals: impl Iterator<Item = f64>) -> f64 {
    let mut it = vals;
    let Some(first) = it.next() else {
        return f64::NAN;
    };
    let (mut sum, mut c, mut count) = (first, 0.0, 1.0);
    let (mut mean, mut incremental) = (0.0, false);
    for v in it {
        count += 1.0;
        if !incremental {
            let (ns, nc) = kahan_inc(v, sum, c);
            if !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

fn variance(p: &[(i64, f64)]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(_, f) in p {
        count += 1.0;
        let delta = f - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (f - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// `quantile` is Prometheus's φ-quantile of `vals` (sorted in place).
pub(crate) fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts first, as in Prometheus's vectorByValueHeap.
    vals.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = vals.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    vals[lower as usize] * (1.0 - weight) + vals[upper as usize] * weight
}

fn linear_regression(p: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = p[0].1;
    let mut const_y = true;
    for (i, &(t, f)) in p.iter().enumerate() {
        if const_y && i > 0 && f != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_time) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(f, sy, cy);
        (sxy, cxy) = kahan_inc(x * f, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn extrapolated_rate(
    p: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    range_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (first_t, last_t) = (p[0].0, p[p.len() - 1].0);
    let mut result = p[p.len() - 1].1 - p[0].1;
    if is_counter {
        for w in p.windows(2) {
            if w[1].1 < w[0].1 {
                result += w[0].1;
            }
        }
    }
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg_between = sampled / (p.len() - 1) as f64;
    let threshold = avg_between * 1.1;
    if to_start >= threshold {
        to_start = avg_between / 2.0;
    }
    if is_counter {
        let mut to_zero = to_start;
        if result > 0.0 && p[0].1 >= 0.0 {
            to_zero = sampled * (p[0].1 / result);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg_between / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_start + to_end) / sampled
    } else {
        1.0
    };
    if is_rate {
        factor /= range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

fn instant_value(p: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (a, b) = (p[p.len() - 2], p[p.len() - 1]);
    let interval = b.0 - a.0;
    if interval == 0 {
        return None;
    }
    let mut r = b.1;
    // A decrease is a counter reset; NaN is not a decrease.
    if !is_rate || b.1.partial_cmp(&a.1) != Some(std::cmp::Ordering::Less) {
        r = b.1 - a.1;
    }
    if is_rate {
        r /= interval as f64 / 1000.0;
    }
    Some(r)
}

fn double_exponential_smoothing(p: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, p[0].1);
    let mut b = p[1].1 - p[0].1;
    for (i, &(_, x)) in p.iter().enumerate().skip(1) {
        // Trend of the previous step.
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        s0 = s1;
        s1 = sf * x + (1.0 - sf) * (s0 + b);
    }
    Some(s1)
}

fn timestamp(ev: &mut Evaluator, c: &Call, grid: &Grid) -> Result<V, Error> {
    let a = arg(c, 0)?;
    // Of a selector: the timestamp of the sample it picked, not the step.
    if let Expr::VectorSelector(vs) = unparen(a) {
        let ss = ev.eval_vector(a, grid)?;
        let off = offset_ms(&vs.offset);
        let raw = ev.select(vs)?;
        let by_labels: std::collections::HashMap<&Labels, &[(i64, f64)]> = raw
            .iter()
            .map(|r| (&r.labels, r.samples.as_slice()))
            .collect();
        let mut out = Vec::with_capacity(ss.len());
        for mut s in ss {
            let samples = by_labels.get(&s.labels).copied().unwrap_or(&[]);
            for (i, v) in s.vals.iter_mut().enumerate() {
                if v.is_some() {
                    let t = crate::plan::at_ms(&vs.at, ev.query.start_ms, ev.query.end_ms)
                        .unwrap_or(grid.t(i))
                        - off;
                    let hi = samples.partition_point(|p| p.0 <= t);
                    *v = hi.checked_sub(1).map(|j| samples[j].0 as f64 / 1000.0);
                }
            }
            s.drop_name = true;
            out.push(s);
        }
        return Ok(V::Vector(out));
    }
    let mut ss = ev.eval_vector(a, grid)?;
    for s in &mut ss {
        for (i, v) in s.vals.iter_mut().enumerate() {
            if v.is_some() {
                *v = Some(grid.t(i) as f64 / 1000.0);
            }
        }
        s.drop_name = true;
    }
    Ok(V::Vector(ss))
}

fn label_replace(ev: &mut Evaluator, c: &Call, grid: &Grid) -> Result<V, Error> {
    let dst = string_arg(c, 1)?;
    let repl = string_arg(c, 2)?;
    let src = string_arg(c, 3)?;
    let re = string_arg(c, 4)?;
    let regex = Regex::new(&format!("^(?s:{re})$")).map_err(|_| {
        Error::Execution(format!(
            "invalid regular expression in label_replace(): {re}"
        ))
    })?;
    if dst.is_empty() {
        return Err(Error::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut ss = ev.eval_vector(arg(c, 0)?, grid)?;
    for s in &mut ss {
        let v = s.labels.get(&src).to_string();
        if let Some(caps) = regex.captures(&v) {
            let mut res = String::new();
            caps.expand(&repl, &mut res);
            s.labels.set(&dst, &res);
            if dst == NAME {
                s.drop_name = false;
            }
        }
    }
    Ok(V::Vector(merge_same_labels(ss)?))
}

fn label_join(ev: &mut Evaluator, c: &Call, grid: &Grid) -> Result<V, Error> {
    let dst = string_arg(c, 1)?;
    let sep = string_arg(c, 2)?;
    let mut srcs = Vec::new();
    for i in 3..c.args.args.len() {
        srcs.push(string_arg(c, i)?);
    }
    if dst.is_empty() {
        return Err(Error::Execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut ss = ev.eval_vector(arg(c, 0)?, grid)?;
    for s in &mut ss {
        let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get(n)).collect();
        let joined = joined.join(&sep);
        s.labels.set(&dst, &joined);
        if dst == NAME {
            s.drop_name = false;
        }
    }
    Ok(V::Vector(merge_same_labels(ss)?))
}

/// `merge_same_labels` merges series that share a label set (and name
/// flag) after a relabelling; overlapping values are an error.
pub(crate) fn merge_same_labels(ss: Vec<S>) -> Result<Vec<S>, Error> {
    let mut out: Vec<S> = Vec::with_capacity(ss.len());
    let mut index: std::collections::HashMap<(Labels, bool), usize> = Default::default();
    for s in ss {
        let key = (s.labels.clone(), s.drop_name);
        match index.get(&key) {
            None => {
                index.insert(key, out.len());
                out.push(s);
            }
            Some(&i) => {
                for (a, b) in out[i].vals.iter_mut().zip(s.vals) {
                    if b.is_some() {
                        if a.is_some() {
                            return Err(crate::eval::duplicate_labelset());
                        }
                        *a = b;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `absent` is `absent()`'s answer: 1, labelled `labels`, at every step
/// where nothing was present.
fn absent(labels: Labels, present: impl Iterator<Item = bool>) -> Result<V, Error> {
    Ok(V::Vector(vec![S {
        labels,
        vals: present.map(|p| (!p).then_some(1.0)).collect(),
        drop_name: false,
    }]))
}

/// `absent_labels` is the label set `absent()` returns: the selector's
/// equality matchers (a label matched twice is left out).
fn absent_labels(e: &Expr) -> Result<Labels, Error> {
    let vs = match unparen(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Ok(Labels::default()),
    };
    let _ = matchers(vs)?;
    let mut l = Labels::default();
    let mut seen = std::collections::HashSet::new();
    for m in &vs.matchers.matchers {
        if m.name == NAME {
            continue;
        }
        if matches!(m.op, PMatchOp::Equal) && seen.insert(m.name.clone()) {
            l.set(&m.name, &m.value);
        } else {
            l.remove(&m.name);
        }
    }
    Ok(l)
}

fn histogram_quantile(ev: &mut Evaluator, c: &Call, grid: &Grid) -> Result<V, Error> {
    let q = ev.eval_scalar(arg(c, 0)?, grid)?;
    let ss = ev.eval_vector(arg(c, 1)?, grid)?;
    for &q in &q {
        if q.is_nan() || !(0.0..=1.0).contains(&q) {
            ev.annotations.warn(format!(
                "quantile value should be between 0 and 1, got {}",
                fmt_f(q)
            ));
        }
    }
    let groups = bucket_groups(ev, &ss);
    let mut forced_names: Vec<String> = Vec::new();
    let out = over_bucket_groups(&ss, groups, grid.len(), |labels, i, buckets| {
        let (v, forced) = bucket_quantile(q[i], buckets);
        if forced {
            forced_names.push(labels.get(NAME).to_string());
        }
        v
    });
    for name in forced_names {
        ev.annotations.info(format!(
            "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {name:?}"
        ));
    }
    Ok(out)
}

fn histogram_fraction(ev: &mut Evaluator, c: &Call, grid: &Grid) -> Result<V, Error> {
    let lower = ev.eval_scalar(arg(c, 0)?, grid)?;
    let upper = ev.eval_scalar(arg(c, 1)?, grid)?;
    let ss = ev.eval_vector(arg(c, 2)?, grid)?;
    let groups = bucket_groups(ev, &ss);
    Ok(over_bucket_groups(
        &ss,
        groups,
        grid.len(),
        |_, i, buckets| bucket_fraction(lower[i], upper[i], buckets),
    ))
}

/// `over_bucket_groups` applies `f` to every group's buckets (upper
/// bound, count) present at every step; a group with none at a step has
/// no value there. The results' names are marked for removal.
fn over_bucket_groups(
    ss: &[S],
    groups: Vec<BucketGroup>,
    n: usize,
    mut f: impl FnMut(&Labels, usize, &mut Vec<(f64, f64)>) -> f64,
) -> V {
    let mut out = Vec::with_capacity(groups.len());
    for (labels, members) in groups {
        let mut vals = Vec::with_capacity(n);
        for i in 0..n {
            let mut buckets: Vec<(f64, f64)> = members
                .iter()
                .filter_map(|&(ub, si)| ss[si].vals[i].map(|v| (ub, v)))
                .collect();
            vals.push((!buckets.is_empty()).then(|| f(&labels, i, &mut buckets)));
        }
        out.push(S {
            labels,
            vals,
            drop_name: true,
        });
    }
    V::Vector(out)
}

type BucketGroup = (Labels, Vec<(f64, usize)>);

/// `bucket_groups` groups classic-histogram bucket series by their labels
/// without `le`; a series with a missing or malformed `le` is left out
/// with a warning.
fn bucket_groups(ev: &mut Evaluator, ss: &[S]) -> Vec<BucketGroup> {
    let mut groups: Vec<BucketGroup> = Vec::new();
    let mut index: std::collections::HashMap<Labels, usize> = Default::default();
    for (si, s) in ss.iter().enumerate() {
        let le = s.labels.get("le");
        let Some(ub) = parse_go_float(le) else {
            ev.annotations.warn(format!(
                "bucket label \"le\" is missing or has a malformed value of {le:?} for metric name {:?}",
                s.labels.get(NAME)
            ));
            continue;
        };
        let mut key = s.labels.clone();
        key.remove("le");
        let gi = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[gi].1.push((ub, si));
    }
    groups
}

/// `parse_go_float` parses a float as Go's `strconv.ParseFloat` does, for
/// the forms bucket bounds use.
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim_start_matches('+');
    match t.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => {
            return Some(if s.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if s.is_empty() || s.contains(char::is_whitespace) {
        return None;
    }
    s.replace('_', "").parse::<f64>().ok()
}

const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

fn sort_coalesce(buckets: &mut Vec<(f64, f64)>) {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &b in buckets.iter() {
        match out.last_mut() {
            Some(last) if last.0 == b.0 => last.1 += b.1,
            _ => out.push(b),
        }
    }
    *buckets = out;
}

/// `bucket_quantile` is Prometheus's `BucketQuantile`; the flag says
/// whether the counts had to be forced monotonic.
fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
        return (f64::NAN, false);
    }
    sort_coalesce(buckets);
    let mut forced = false;
    let mut prev = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) {
            b.1 = prev;
            continue;
        }
        if curr < prev {
            b.1 = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    if buckets.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let last = buckets.len() - 1;
    let b = buckets[..last].partition_point(|x| x.1 < rank);
    let v = if b == last {
        buckets[last - 1].0
    } else if b == 0 && buckets[0].0 <= 0.0 {
        buckets[0].0
    } else {
        let mut start = 0.0;
        let end = buckets[b].0;
        let mut count = buckets[b].1;
        if b > 0 {
            start = buckets[b - 1].0;
            count -= buckets[b - 1].1;
            rank -= buckets[b - 1].1;
        }
        start + (end - start) * (rank / count)
    };
    (v, forced)
}

fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
        return f64::NAN;
    }
    sort_coalesce(buckets);
    let count = buckets[buckets.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if buckets[0].0 <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for i in 0..buckets.len() {
        if i > 0 {
            lower_bound = buckets[i - 1].0;
        }
        let (upper_bound, bcount) = buckets[i];
        let interp = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                bcount
            } else {
                rank + (bcount - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interp(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interp(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = bcount;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// `fmt_f` formats a float as Go's `%g`-ish `strconv.FormatFloat(f, 'f',
/// -1, 64)`: shortest round-trip decimal, `+Inf`, `-Inf`, `NaN`.
pub(crate) fn fmt_f(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f == f64::INFINITY {
        "+Inf".into()
    } else if f == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{f}")
    }
}

/// Natural ordering of label values (`sort_by_label`): digit runs compare
/// as numbers.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let i = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let j = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (&x[..i], &y[..j]);
                let ta = na.iter().skip_while(|&&c| c == b'0').count();
                let tb = nb.iter().skip_while(|&&c| c == b'0').count();
                let o = ta.cmp(&tb).then_with(|| na[i - ta..].cmp(&nb[j - tb..]));
                if o.is_ne() {
                    return o;
                }
                x = &x[i..];
                y = &y[j..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

// ---- Dates (UTC, proleptic Gregorian) ----

fn civil(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

fn date_fn(name: &str) -> fn(i64) -> f64 {
    match name {
        "days_in_month" => |s| {
            let (y, m, _) = civil(s.div_euclid(86_400));
            days_in_month(y, m) as f64
        },
        "day_of_month" => |s| civil(s.div_euclid(86_400)).2 as f64,
        "day_of_week" => |s| (s.div_euclid(86_400) + 4).rem_euclid(7) as f64,
        "day_of_year" => |s| {
            let (y, m, d) = civil(s.div_euclid(86_400));
            ((1..m).map(|mm| days_in_month(y, mm)).sum::<u32>() + d) as f64
        },
        "hour" => |s| (s.rem_euclid(86_400) / 3600) as f64,
        "minute" => |s| (s.rem_euclid(3600) / 60) as f64,
        "month" => |s| civil(s.div_euclid(86_400)).1 as f64,
        _ => |s| civil(s.div_euclid(86_400)).0 as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_723), (2024, 1, 1));
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(date_fn("day_of_week")(0), 4.0);
        assert_eq!(date_fn("day_of_year")(19_723 * 86_400 + 60 * 86_400), 61.0);
    }

    #[test]
    fn quantile_interpolates_between_ranks() {
        assert_eq!(quantile(0.5, &mut [1.0, 3.0, 2.0, 4.0]), 2.5);
        assert_eq!(quantile(-1.0, &mut [1.0]), f64::NEG_INFINITY);
        assert!(quantile(0.5, &mut []).is_nan());
    }

    #[test]
    fn kahan_keeps_the_small_terms() {
        let (mut s, mut c) = (0.0, 0.0);
        for x in [1e100, 1.0, -1e100] {
            (s, c) = kahan_inc(x, s, c);
        }
        assert_eq!(s + c, 1.0);
    }
}
