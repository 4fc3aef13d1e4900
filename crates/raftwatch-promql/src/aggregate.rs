//! Aggregation operators: `sum`, `avg`, `count`, `min`, `max`, `group`,
//! `stddev`, `stdvar`, `quantile`, `count_values`, `topk`, `bottomk`.

use std::collections::HashMap;

use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use crate::Error;
use crate::eval::{Evaluator, Grid, S, V};
use crate::functions::{avg, fmt_f, kahan_inc, quantile};
use crate::labels::Labels;

/// `grouping` is the group label set of `labels` under `modifier`.
pub(crate) fn grouping(labels: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        None => Labels::default(),
        Some(LabelModifier::Include(l)) => labels.keep(&l.labels),
        Some(LabelModifier::Exclude(l)) => labels.drop(&l.labels, true),
    }
}

fn string_param(e: &Expr) -> Option<String> {
    match e {
        Expr::StringLiteral(s) => Some(s.val.clone()),
        Expr::Paren(p) => string_param(&p.expr),
        _ => None,
    }
}

pub(crate) fn eval(ev: &mut Evaluator, a: &AggregateExpr, grid: &Grid) -> Result<V, Error> {
    let op = a.op.to_string();
    let n = grid.len();
    let param: Option<Vec<f64>> = match (&a.param, op.as_str()) {
        (Some(p), "topk" | "bottomk" | "quantile" | "limitk" | "limit_ratio") => {
            Some(ev.eval_scalar(p, grid)?)
        }
        _ => None,
    };
    let input = ev.eval_vector(&a.expr, grid)?;
    ev.check_cancel()?;

    // Group of every input series, in order of first appearance.
    let mut groups: Vec<(Labels, bool)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut member: Vec<usize> = Vec::with_capacity(input.len());
    for s in &input {
        let key = grouping(&s.labels, &a.modifier);
        let g = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, false));
            groups.len() - 1
        });
        groups[g].1 |= s.drop_name;
        member.push(g);
    }

    match op.as_str() {
        "topk" | "bottomk" => {
            let p = param.unwrap_or_default();
            top_bottom(&input, &member, groups.len(), &p, op == "topk", n)
        }
        "limitk" | "limit_ratio" => Err(Error::Execution(format!("{op}() is not supported"))),
        "count_values" => {
            let label = a
                .param
                .as_deref()
                .and_then(string_param)
                .ok_or_else(|| Error::Parse("count_values needs a string parameter".into()))?;
            if label.is_empty() {
                return Err(Error::Execution(format!("invalid label name {label:?}")));
            }
            let mut out: Vec<S> = Vec::new();
            let mut idx: HashMap<Labels, usize> = HashMap::new();
            for i in 0..n {
                for (si, s) in input.iter().enumerate() {
                    let Some(v) = s.vals[i] else { continue };
                    let mut l = groups[member[si]].0.clone();
                    l.set(&label, &fmt_f(v));
                    let o = *idx.entry(l.clone()).or_insert_with(|| {
                        out.push(S {
                            labels: l,
                            vals: vec![None; n],
                            drop_name: false,
                        });
                        out.len() - 1
                    });
                    *out[o].vals[i].get_or_insert(0.0) += 1.0;
                }
            }
            Ok(V::Vector(out))
        }
        _ => {
            if op == "quantile" {
                for &q in param.as_deref().unwrap_or(&[]) {
                    if q.is_nan() || !(0.0..=1.0).contains(&q) {
                        ev.annotations.warn(format!(
                            "quantile value should be between 0 and 1, got {}",
                            fmt_f(q)
                        ));
                    }
                }
            }
            let mut out: Vec<S> = groups
                .iter()
                .map(|(l, d)| S {
                    labels: l.clone(),
                    vals: vec![None; n],
                    drop_name: *d,
                })
                .collect();
            let mut bucket: Vec<Vec<f64>> = vec![Vec::new(); groups.len()];
            for i in 0..n {
                for b in &mut bucket {
                    b.clear();
                }
                for (si, s) in input.iter().enumerate() {
                    if let Some(v) = s.vals[i] {
                        bucket[member[si]].push(v);
                    }
                }
                for (g, vals) in bucket.iter_mut().enumerate() {
                    if vals.is_empty() {
                        continue;
                    }
                    out[g].vals[i] = Some(match op.as_str() {
                        "sum" => {
                            let (mut s, mut c) = (0.0, 0.0);
                            for &v in vals.iter() {
                                (s, c) = kahan_inc(v, s, c);
                            }
                            if s.is_infinite() { s } else { s + c }
                        }
                        "avg" => avg(vals.iter().copied()),
                        "count" => vals.len() as f64,
                        "group" => 1.0,
                        "min" => {
                            let mut m = vals[0];
                            for &v in &vals[1..] {
                                if m > v || m.is_nan() {
                                    m = v;
                                }
                            }
                            m
                        }
                        "max" => {
                            let mut m = vals[0];
                            for &v in &vals[1..] {
                                if m < v || m.is_nan() {
                                    m = v;
                                }
                            }
                            m
                        }
                        "stddev" => variance(vals).sqrt(),
                        "stdvar" => variance(vals),
                        "quantile" => {
                            let q = param.as_ref().map_or(f64::NAN, |p| p[i]);
                            quantile(q, vals)
                        }
                        other => {
                            return Err(Error::Execution(format!(
                                "aggregation {other}() is not supported"
                            )));
                        }
                    });
                }
            }
            // Aggregations keep the grouping labels, the name included
            // when grouped by it; `without` already dropped it.
            Ok(V::Vector(out))
        }
    }
}

fn variance(vals: &[f64]) -> f64 {
    let (mut count, mut mean, mut c, mut value) = (0.0, 0.0, 0.0, 0.0);
    for &f in vals {
        count += 1.0;
        let delta = f - (mean + c);
        (mean, c) = kahan_inc(delta / count, mean, c);
        value += delta * (f - (mean + c));
    }
    value / count
}

/// `top_bottom` keeps, per group and step, the `k` largest (`topk`) or
/// smallest values; NaN ranks last either way.
#[allow(clippy::needless_range_loop)] // `i` indexes every series' steps.
fn top_bottom(
    input: &[S],
    member: &[usize],
    ngroups: usize,
    k: &[f64],
    top: bool,
    n: usize,
) -> Result<V, Error> {
    let mut keep: Vec<Vec<Option<f64>>> = vec![vec![None; n]; input.len()];
    let mut by_group: Vec<Vec<usize>> = vec![Vec::new(); ngroups];
    // For an instant query, the order of the answer: groups in order of
    // first appearance, each sorted by value.
    let mut order: Vec<usize> = Vec::new();
    for i in 0..n {
        let kf = k.get(i).copied().unwrap_or(f64::NAN);
        if kf.is_nan() {
            return Err(Error::Execution("Parameter value is NaN".into()));
        }
        let kk = if kf >= i64::MAX as f64 {
            i64::MAX
        } else {
            kf as i64
        };
        if kk < 1 {
            continue;
        }
        for g in &mut by_group {
            g.clear();
        }
        for (si, s) in input.iter().enumerate() {
            if s.vals[i].is_some() {
                by_group[member[si]].push(si);
            }
        }
        for g in &mut by_group {
            g.sort_by(|&a, &b| {
                let (x, y) = (
                    input[a].vals[i].unwrap_or(f64::NAN),
                    input[b].vals[i].unwrap_or(f64::NAN),
                );
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if top => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
                    _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                }
            });
            for &si in g.iter().take(usize::try_from(kk).unwrap_or(usize::MAX)) {
                keep[si][i] = input[si].vals[i];
                if n == 1 {
                    order.push(si);
                }
            }
        }
    }
    let mut out: Vec<S> = Vec::new();
    if n == 1 {
        for si in order {
            out.push(S {
                labels: input[si].labels.clone(),
                vals: keep[si].clone(),
                drop_name: input[si].drop_name,
            });
        }
    } else {
        for (si, vals) in keep.into_iter().enumerate() {
            if vals.iter().any(Option::is_some) {
                out.push(S {
                    labels: input[si].labels.clone(),
                    vals,
                    drop_name: input[si].drop_name,
                });
            }
        }
    }
    Ok(V::Vector(out))
}
