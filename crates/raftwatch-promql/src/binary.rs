//! Binary operators: arithmetic, comparison (with and without `bool`),
//! `atan2`, and the set operators, with `on`/`ignoring` and
//! `group_left`/`group_right` vector matching.

use std::collections::{HashMap, HashSet};

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use crate::Error;
use crate::eval::{Evaluator, Grid, S, V, duplicate_labelset};
use crate::labels::{Labels, NAME};

fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

fn is_arithmetic(op: &str) -> bool {
    matches!(op, "+" | "-" | "*" | "/" | "%" | "^" | "atan2")
}

/// `elem` applies `op`: the value, and whether a comparison holds (always
/// true for arithmetic). A comparison's value is its left operand.
fn elem(op: &str, l: f64, r: f64) -> (f64, bool) {
    match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        "%" => (go_mod(l, r), true),
        "^" => (l.powf(r), true),
        "atan2" => (l.atan2(r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

/// Go's `math.Mod`: the result has the sign of `l`.
fn go_mod(l: f64, r: f64) -> f64 {
    if r == 0.0 || l.is_infinite() || l.is_nan() || r.is_nan() {
        return f64::NAN;
    }
    l % r
}

pub(crate) fn eval(ev: &mut Evaluator, b: &BinaryExpr, grid: &Grid) -> Result<V, Error> {
    let op = b.op.to_string();
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = ev.eval(&b.lhs, grid)?;
    let rhs = ev.eval(&b.rhs, grid)?;
    ev.check_cancel()?;
    match (lhs, rhs) {
        (V::Scalar(l), V::Scalar(r)) => Ok(V::Scalar(
            l.iter()
                .zip(&r)
                .map(|(&l, &r)| {
                    let (v, keep) = elem(&op, l, r);
                    if is_comparison(&op) {
                        if keep { 1.0 } else { 0.0 }
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (V::Vector(l), V::Scalar(r)) => Ok(vector_scalar(&op, l, &r, false, return_bool)),
        (V::Scalar(l), V::Vector(r)) => Ok(vector_scalar(&op, r, &l, true, return_bool)),
        (V::Vector(l), V::Vector(r)) => match op.as_str() {
            "and" | "or" | "unless" => Ok(set_op(&op, l, r, b, grid.len())),
            _ => vector_vector(ev, &op, l, r, b, return_bool, grid.len()),
        },
        (l, r) => Err(Error::Execution(format!(
            "binary operator {op} between {} and {} is not allowed",
            crate::eval::kind(&l),
            crate::eval::kind(&r)
        ))),
    }
}

fn vector_scalar(op: &str, mut ss: Vec<S>, sc: &[f64], swap: bool, return_bool: bool) -> V {
    let comparison = is_comparison(op);
    for s in &mut ss {
        for (v, &x) in s.vals.iter_mut().zip(sc) {
            let Some(vv) = *v else { continue };
            let (l, r) = if swap { (x, vv) } else { (vv, x) };
            let (mut value, keep) = elem(op, l, r);
            if comparison && swap {
                value = vv;
            }
            *v = if return_bool {
                Some(if keep { 1.0 } else { 0.0 })
            } else if keep {
                Some(value)
            } else {
                None
            };
        }
        if is_arithmetic(op) || return_bool {
            s.drop_name = true;
        }
    }
    V::Vector(ss)
}

/// `signatures` is each series' match signature: its `on` labels, or all
/// but the `ignoring` labels and the name.
fn signatures(ss: &[S], matching: Option<&LabelModifier>) -> Vec<Labels> {
    ss.iter()
        .map(|s| match matching {
            Some(LabelModifier::Include(on)) => s.labels.keep(&on.labels),
            Some(LabelModifier::Exclude(ign)) => s.labels.drop(&ign.labels, true),
            None => s.labels.drop(&[], true),
        })
        .collect()
}

fn set_op(op: &str, lhs: Vec<S>, rhs: Vec<S>, b: &BinaryExpr, n: usize) -> V {
    let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
    let ls = signatures(&lhs, matching);
    let rs = signatures(&rhs, matching);
    match op {
        "and" | "unless" => {
            let keep_matched = op == "and";
            let mut out = lhs;
            for i in 0..n {
                let present: HashSet<&Labels> = rhs
                    .iter()
                    .zip(&rs)
                    .filter(|(s, _)| s.vals[i].is_some())
                    .map(|(_, sig)| sig)
                    .collect();
                for (s, sig) in out.iter_mut().zip(&ls) {
                    if s.vals[i].is_some() && present.contains(sig) != keep_matched {
                        s.vals[i] = None;
                    }
                }
            }
            V::Vector(out)
        }
        _ => {
            let mut rhs = rhs;
            for i in 0..n {
                let present: HashSet<&Labels> = lhs
                    .iter()
                    .zip(&ls)
                    .filter(|(s, _)| s.vals[i].is_some())
                    .map(|(_, sig)| sig)
                    .collect();
                for (s, sig) in rhs.iter_mut().zip(&rs) {
                    if s.vals[i].is_some() && present.contains(sig) {
                        s.vals[i] = None;
                    }
                }
            }
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|s| s.vals.iter().any(Option::is_some)),
            );
            V::Vector(out)
        }
    }
}

fn vector_vector(
    ev: &mut Evaluator,
    op: &str,
    lhs: Vec<S>,
    rhs: Vec<S>,
    b: &BinaryExpr,
    return_bool: bool,
    n: usize,
) -> Result<V, Error> {
    let modifier = b.modifier.as_ref();
    let matching = modifier.and_then(|m| m.matching.as_ref());
    let card = modifier.map_or(VectorMatchCardinality::OneToOne, |m| m.card.clone());
    let (include, one_to_many, one_to_one) = match &card {
        VectorMatchCardinality::ManyToOne(l) => (l.labels.clone(), false, false),
        VectorMatchCardinality::OneToMany(l) => (l.labels.clone(), true, false),
        _ => (Vec::new(), false, true),
    };
    // `many` is the side whose series each produce a result; `one` the
    // side they match (swapped for group_right).
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let many_sig = signatures(&many, matching);
    let one_sig = signatures(&one, matching);
    let mut out: Vec<S> = Vec::new();
    let mut out_index: HashMap<Labels, usize> = HashMap::new();
    let mut metrics: HashMap<(usize, usize), Labels> = HashMap::new();
    for i in 0..n {
        ev.check_cancel()?;
        let mut right: HashMap<&Labels, usize> = HashMap::new();
        for (j, s) in one.iter().enumerate() {
            if s.vals[i].is_none() {
                continue;
            }
            if let Some(&k) = right.get(&one_sig[j]) {
                let side = if one_to_many { "left" } else { "right" };
                let (mut a, mut c) = (one[j].labels.to_string(), one[k].labels.to_string());
                if a > c {
                    std::mem::swap(&mut a, &mut c);
                }
                return Err(Error::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{a}, {c}];many-to-many matching not allowed: matching labels must be unique on one side",
                    match_labels(&one[j].labels, matching)
                )));
            }
            right.insert(&one_sig[j], j);
        }
        if right.is_empty() {
            continue;
        }
        let mut matched_one: HashSet<&Labels> = HashSet::new();
        let mut matched_many: HashMap<&Labels, HashSet<Labels>> = HashMap::new();
        for (k, s) in many.iter().enumerate() {
            let Some(mv) = s.vals[i] else { continue };
            let Some(&j) = right.get(&many_sig[k]) else {
                continue;
            };
            let ov = one[j].vals[i].unwrap_or(f64::NAN);
            let (fl, fr) = if one_to_many { (ov, mv) } else { (mv, ov) };
            let (mut value, keep) = elem(op, fl, fr);
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
            }
            let metric = metrics
                .entry((k, j))
                .or_insert_with(|| {
                    result_metric(
                        &s.labels,
                        &one[j].labels,
                        op,
                        matching,
                        one_to_one,
                        &include,
                    )
                })
                .clone();
            if one_to_one {
                if !matched_one.insert(&many_sig[k]) {
                    return Err(Error::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                            .into(),
                    ));
                }
            } else if !matched_many
                .entry(&many_sig[k])
                .or_default()
                .insert(metric.clone())
            {
                return Err(Error::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
            if !keep && !return_bool {
                continue;
            }
            let drop_name = return_bool || (is_comparison(op) && s.drop_name);
            let o = *out_index.entry(metric.clone()).or_insert_with(|| {
                out.push(S {
                    labels: metric,
                    vals: vec![None; n],
                    drop_name,
                });
                out.len() - 1
            });
            if out[o].vals[i].is_some() {
                return Err(duplicate_labelset());
            }
            out[o].vals[i] = Some(value);
        }
    }
    Ok(V::Vector(out))
}

fn match_labels(l: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => l.keep(&on.labels),
        Some(LabelModifier::Exclude(ign)) => l.drop(&ign.labels, true),
        None => l.drop(&[], true),
    }
}

fn result_metric(
    many: &Labels,
    one: &Labels,
    op: &str,
    matching: Option<&LabelModifier>,
    one_to_one: bool,
    include: &[String],
) -> Labels {
    let mut l = many.clone();
    if is_arithmetic(op) {
        l.remove(NAME);
    }
    if one_to_one {
        match matching {
            Some(LabelModifier::Include(on)) => l = l.keep(&on.labels),
            Some(LabelModifier::Exclude(ign)) => l = l.drop(&ign.labels, false),
            None => {}
        }
    }
    for name in include {
        l.set(name, one.get(name));
    }
    l
}
