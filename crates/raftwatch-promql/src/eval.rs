//! The evaluator. Every expression is evaluated over a whole grid of steps
//! at once (an instant query is a grid of one step), as Prometheus's
//! engine does: an instant-vector expression yields a set of series, each
//! with an optional value per step.
//!
//! `__name__` removal is delayed (Prometheus 3's behaviour): an operation
//! that would drop the metric name marks the series instead, and names are
//! removed when the result is returned, so `label_replace` can still read
//! or keep them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use promql_parser::parser::{Expr, MatrixSelector, SubqueryExpr, VectorSelector};

use crate::labels::{Labels, NAME};
use crate::plan::{at_ms, duration_ms, offset_ms, selector_id};
use crate::value::{Annotations, QueryResult, RawSeries, Sample, Series, Value};
use crate::{Error, Query, Queryable};

/// `Grid` is the evaluation times `start, start + step, ... <= end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grid {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Grid {
    pub fn len(&self) -> usize {
        ((self.end - self.start) / self.step + 1) as usize
    }

    pub fn t(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    pub fn times(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.t(i))
    }
}

/// `S` is one series of an instant-vector expression over the grid.
#[derive(Clone, Debug)]
pub(crate) struct S {
    pub labels: Labels,
    pub vals: Vec<Option<f64>>,
    /// The metric name is to be removed when the result is returned.
    pub drop_name: bool,
}

/// `RangeSeries` is one series of a range-vector expression: its samples
/// (or subquery points), sorted by time.
#[derive(Clone, Debug)]
pub(crate) struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
    pub drop_name: bool,
}

/// `RangeInput` is a range-vector argument: series, and per step the
/// window `(t - range, t]` each step reads.
pub(crate) struct RangeInput {
    pub series: Vec<RangeSeries>,
    /// Per step: the window's (exclusive) start and (inclusive) end, ms.
    pub windows: Vec<(i64, i64)>,
    pub range_ms: i64,
}

/// `V` is an evaluated expression.
#[derive(Clone, Debug)]
pub(crate) enum V {
    Scalar(Vec<f64>),
    Vector(Vec<S>),
    Matrix(Vec<RangeSeries>),
    String(String),
}

pub(crate) struct Evaluator<'a> {
    pub query: &'a Query,
    data: &'a dyn Queryable,
    cancel: &'a AtomicBool,
    fetched: HashMap<usize, std::rc::Rc<Vec<RawSeries>>>,
    pub annotations: Annotations,
    pub samples_read: u64,
    /// Samples held by the evaluation so far (an upper bound on what is in
    /// memory at once).
    samples_held: usize,
}

pub(crate) fn run(
    query: &Query,
    data: &dyn Queryable,
    cancel: &AtomicBool,
) -> Result<QueryResult, Error> {
    let (mut ev, grid) = Evaluator::start(query, data, cancel);
    let v = ev.eval(&query.expr, &grid)?;
    let value = match v {
        V::Scalar(vals) => {
            if query.instant {
                Value::Scalar {
                    t: grid.start,
                    v: vals[0],
                }
            } else {
                Value::Matrix(vec![Series {
                    labels: Labels::default(),
                    points: grid.times().zip(vals).collect(),
                }])
            }
        }
        V::String(s) => {
            if !query.instant {
                return Err(Error::BadRequest(
                    "invalid expression type \"string\" for range query, must be Scalar or instant Vector"
                        .into(),
                ));
            }
            Value::String { t: grid.start, s }
        }
        V::Matrix(series) => {
            if !query.instant {
                return Err(Error::BadRequest(
                    "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
                        .into(),
                ));
            }
            let series = finish_names_range(series)?;
            Value::Matrix(series)
        }
        V::Vector(series) => {
            let series = finish_names(series)?;
            if query.instant {
                Value::Vector(
                    series
                        .into_iter()
                        .filter_map(|s| {
                            s.vals[0].map(|v| Sample {
                                labels: s.labels,
                                t: grid.start,
                                v,
                            })
                        })
                        .collect(),
                )
            } else {
                let mut out: Vec<Series> = series
                    .into_iter()
                    .map(|s| Series {
                        points: grid
                            .times()
                            .zip(s.vals)
                            .filter_map(|(t, v)| v.map(|v| (t, v)))
                            .collect(),
                        labels: s.labels,
                    })
                    .filter(|s| !s.points.is_empty())
                    .collect();
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(out)
            }
        }
    };
    Ok(QueryResult {
        value,
        annotations: ev.annotations,
        samples_read: ev.samples_read,
    })
}

/// `run_partial` evaluates an instant-vector query for a push-down:
/// series with their name-removal flags, names kept.
pub(crate) fn run_partial(
    query: &Query,
    data: &dyn Queryable,
    cancel: &AtomicBool,
) -> Result<crate::PushdownAnswer, Error> {
    let (mut ev, grid) = Evaluator::start(query, data, cancel);
    let V::Vector(series) = ev.eval(&query.expr, &grid)? else {
        return Err(Error::BadRequest(
            "a partial evaluation must be of an instant vector".into(),
        ));
    };
    let mut answer = crate::PushdownAnswer {
        annotations: ev.annotations,
        ..Default::default()
    };
    for s in series {
        let points: Vec<(i64, f64)> = grid
            .times()
            .zip(s.vals)
            .filter_map(|(t, v)| v.map(|v| (t, v)))
            .collect();
        if points.is_empty() {
            continue;
        }
        answer.series.push(Series {
            labels: s.labels,
            points,
        });
        answer.drop_name.push(s.drop_name);
    }
    Ok(answer)
}

/// `finish_names` removes the names marked for removal and merges series
/// that then share a label set; two of them with a value at the same step
/// is Prometheus's duplicate-labelset error.
pub(crate) fn finish_names(series: Vec<S>) -> Result<Vec<S>, Error> {
    let mut out: Vec<S> = Vec::with_capacity(series.len());
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for mut s in series {
        if s.vals.iter().all(Option::is_none) {
            continue;
        }
        if s.drop_name {
            s.labels.remove(NAME);
            s.drop_name = false;
        }
        match index.get(&s.labels) {
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                let o = &mut out[i];
                for (a, b) in o.vals.iter_mut().zip(s.vals) {
                    if b.is_some() {
                        if a.is_some() {
                            return Err(duplicate_labelset());
                        }
                        *a = b;
                    }
                }
            }
        }
    }
    Ok(out)
}

fn finish_names_range(series: Vec<RangeSeries>) -> Result<Vec<Series>, Error> {
    let mut out = Vec::with_capacity(series.len());
    let mut seen = std::collections::HashSet::new();
    for mut s in series {
        if s.drop_name {
            s.labels.remove(NAME);
        }
        if s.points.is_empty() {
            continue;
        }
        if !seen.insert(s.labels.clone()) {
            return Err(duplicate_labelset());
        }
        out.push(Series {
            labels: s.labels,
            points: s.points,
        });
    }
    Ok(out)
}

pub(crate) fn duplicate_labelset() -> Error {
    Error::Execution("vector cannot contain metrics with the same labelset".into())
}

impl<'a> Evaluator<'a> {
    /// `start` is a fresh evaluation of `query` and the query's grid.
    fn start(query: &'a Query, data: &'a dyn Queryable, cancel: &'a AtomicBool) -> (Self, Grid) {
        let ev = Evaluator {
            query,
            data,
            cancel,
            fetched: HashMap::new(),
            annotations: Annotations::default(),
            samples_read: 0,
            samples_held: 0,
        };
        let grid = Grid {
            start: query.start_ms,
            end: query.end_ms,
            step: query.step_ms.max(1),
        };
        (ev, grid)
    }

    pub fn check_cancel(&self) -> Result<(), Error> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Error::Canceled);
        }
        Ok(())
    }

    /// `hold` accounts for `n` more samples in memory.
    pub fn hold(&mut self, n: usize) -> Result<(), Error> {
        self.samples_held = self.samples_held.saturating_add(n);
        if self.samples_held > self.query.config.max_samples {
            return Err(Error::TooManySamples("query execution"));
        }
        Ok(())
    }

    pub fn eval(&mut self, expr: &Expr, grid: &Grid) -> Result<V, Error> {
        self.check_cancel()?;
        if let Some(p) = self.query.pushdown_ids.get(&crate::plan::node_id(expr)) {
            return self.union(p, grid);
        }
        match expr {
            Expr::NumberLiteral(n) => Ok(V::Scalar(vec![n.val; grid.len()])),
            Expr::StringLiteral(s) => Ok(V::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, grid),
            Expr::Unary(u) => match self.eval(&u.expr, grid)? {
                V::Scalar(v) => Ok(V::Scalar(v.into_iter().map(|x| -x).collect())),
                V::Vector(mut ss) => {
                    for s in &mut ss {
                        for v in s.vals.iter_mut().flatten() {
                            *v = -*v;
                        }
                        s.drop_name = true;
                    }
                    Ok(V::Vector(ss))
                }
                _ => Err(Error::Execution(
                    "unary minus applies to scalars and instant vectors only".into(),
                )),
            },
            Expr::VectorSelector(vs) => self.vector_selector(vs, grid),
            Expr::MatrixSelector(ms) => {
                let input = self.matrix_selector(ms, grid)?;
                Ok(V::Matrix(windowed(input, 0)))
            }
            Expr::Subquery(sq) => {
                let input = self.subquery(sq, grid)?;
                Ok(V::Matrix(windowed(input, 0)))
            }
            Expr::Call(c) => crate::functions::call(self, c, grid),
            Expr::Aggregate(a) => crate::aggregate::eval(self, a, grid),
            Expr::Binary(b) => crate::binary::eval(self, b, grid),
            Expr::Extension(_) => Err(Error::Parse("unsupported expression".into())),
        }
    }

    /// `eval_vector` evaluates an expression the parser typed as an
    /// instant vector.
    pub fn eval_vector(&mut self, expr: &Expr, grid: &Grid) -> Result<Vec<S>, Error> {
        match self.eval(expr, grid)? {
            V::Vector(v) => Ok(v),
            other => Err(Error::Execution(format!(
                "expected an instant vector, got {}",
                kind(&other)
            ))),
        }
    }

    /// `eval_scalar` evaluates an expression the parser typed as a scalar.
    pub fn eval_scalar(&mut self, expr: &Expr, grid: &Grid) -> Result<Vec<f64>, Error> {
        match self.eval(expr, grid)? {
            V::Scalar(v) => Ok(v),
            other => Err(Error::Execution(format!(
                "expected a scalar, got {}",
                kind(&other)
            ))),
        }
    }

    /// `union` answers a pushed-down series-local expression: every shard's
    /// series, merged where a label set repeats.
    fn union(&mut self, p: &crate::plan::Pushdown, grid: &Grid) -> Result<V, Error> {
        let req = &self.query.pushdowns[p.requests[0]];
        let answer = self.pushdown(req)?;
        let n = grid.len();
        let mut out = Vec::with_capacity(answer.series.len());
        for (k, s) in answer.series.into_iter().enumerate() {
            let mut vals = vec![None; n];
            for (t, v) in s.points {
                let d = t - grid.start;
                if d < 0 || d % grid.step != 0 || (d / grid.step) as usize >= n {
                    return Err(Error::Storage(format!(
                        "a shard's answer has a point at {t}, not a step of the query"
                    )));
                }
                vals[(d / grid.step) as usize] = Some(v);
            }
            out.push(S {
                labels: s.labels,
                vals,
                drop_name: answer.drop_name.get(k).copied().unwrap_or(false),
            });
        }
        self.merge_annotations(answer.annotations);
        Ok(V::Vector(crate::functions::merge_same_labels(out)?))
    }

    pub fn merge_annotations(&mut self, a: Annotations) {
        for w in a.warnings {
            if !self.annotations.warnings.contains(&w) {
                self.annotations.warnings.push(w);
            }
        }
        for i in a.infos {
            if !self.annotations.infos.contains(&i) {
                self.annotations.infos.push(i);
            }
        }
    }

    /// `pushdown` fetches one planned partial aggregation.
    pub fn pushdown(
        &mut self,
        req: &crate::PushdownRequest,
    ) -> Result<crate::PushdownAnswer, Error> {
        let answer = self.data.pushdown(req)?.ok_or_else(|| {
            Error::Storage("the data source cannot answer a pushed-down aggregation".into())
        })?;
        let n: usize = answer.series.iter().map(|s| s.points.len()).sum();
        self.samples_read += n as u64;
        self.hold(n)?;
        Ok(answer)
    }

    pub fn select(&mut self, vs: &VectorSelector) -> Result<std::rc::Rc<Vec<RawSeries>>, Error> {
        let id = selector_id(vs);
        if let Some(f) = self.fetched.get(&id) {
            return Ok(f.clone());
        }
        let Some(&i) = self.query.selector_ids.get(&id) else {
            return Err(Error::Execution("a selector was not planned".into()));
        };
        let req = &self.query.selects[i];
        let series = self.data.select(req)?;
        let n: usize = series.iter().map(|s| s.samples.len()).sum();
        self.samples_read += n as u64;
        self.hold(n)?;
        let rc = std::rc::Rc::new(series);
        self.fetched.insert(id, rc.clone());
        Ok(rc)
    }

    /// `eval_time` is when a selector or subquery with `at` and `offset`
    /// reads, for a step evaluated at `t`.
    fn eval_time(
        &self,
        at: &Option<promql_parser::parser::AtModifier>,
        offset: &Option<promql_parser::parser::Offset>,
        t: i64,
    ) -> i64 {
        let off = offset_ms(offset);
        at_ms(at, self.query.start_ms, self.query.end_ms).unwrap_or(t) - off
    }

    fn vector_selector(&mut self, vs: &VectorSelector, grid: &Grid) -> Result<V, Error> {
        let data = self.select(vs)?;
        let lookback = self.query.config.lookback_delta_ms;
        let times: Vec<i64> = grid
            .times()
            .map(|t| self.eval_time(&vs.at, &vs.offset, t))
            .collect();
        let mut out = Vec::with_capacity(data.len());
        for (k, rs) in data.iter().enumerate() {
            if k % 256 == 255 {
                self.check_cancel()?;
            }
            let mut vals = Vec::with_capacity(times.len());
            let mut any = false;
            let mut cursor = Windows::new(&rs.samples);
            for &t in &times {
                let hi = cursor.get(i64::MIN, t).len();
                let v = if hi == 0 {
                    None
                } else {
                    let (st, sv) = rs.samples[hi - 1];
                    if st > t - lookback && !raftwatch_model::is_stale_nan(sv) {
                        Some(sv)
                    } else {
                        None
                    }
                };
                any |= v.is_some();
                vals.push(v);
            }
            if any {
                out.push(S {
                    labels: rs.labels.clone(),
                    vals,
                    drop_name: false,
                });
            }
        }
        self.hold(out.len() * grid.len())?;
        Ok(V::Vector(out))
    }

    /// `range_input` evaluates a range-vector argument.
    pub fn range_input(&mut self, expr: &Expr, grid: &Grid) -> Result<RangeInput, Error> {
        match expr {
            Expr::MatrixSelector(ms) => self.matrix_selector(ms, grid),
            Expr::Subquery(sq) => self.subquery(sq, grid),
            Expr::Paren(p) => self.range_input(&p.expr, grid),
            _ => Err(Error::Execution(
                "expected a range vector (a matrix selector or a subquery)".into(),
            )),
        }
    }

    fn matrix_selector(&mut self, ms: &MatrixSelector, grid: &Grid) -> Result<RangeInput, Error> {
        let data = self.select(&ms.vs)?;
        let range_ms = duration_ms(&ms.range);
        let windows = grid
            .times()
            .map(|t| {
                let e = self.eval_time(&ms.vs.at, &ms.vs.offset, t);
                (e - range_ms, e)
            })
            .collect();
        let series = data
            .iter()
            .map(|rs| RangeSeries {
                labels: rs.labels.clone(),
                points: rs
                    .samples
                    .iter()
                    .copied()
                    .filter(|p| !raftwatch_model::is_stale_nan(p.1))
                    .collect(),
                drop_name: false,
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        Ok(RangeInput {
            series,
            windows,
            range_ms,
        })
    }

    fn subquery(&mut self, sq: &SubqueryExpr, grid: &Grid) -> Result<RangeInput, Error> {
        let range_ms = duration_ms(&sq.range);
        let step = match &sq.step {
            Some(d) if duration_ms(d) > 0 => duration_ms(d),
            _ => self.query.config.subquery_step_ms,
        };
        let windows: Vec<(i64, i64)> = grid
            .times()
            .map(|t| {
                let e = self.eval_time(&sq.at, &sq.offset, t);
                (e - range_ms, e)
            })
            .collect();
        let lo = windows.iter().map(|w| w.0).min().unwrap_or(0);
        let hi = windows.iter().map(|w| w.1).max().unwrap_or(0);
        // Inner steps are aligned to multiples of the step (absolute
        // time), the first strictly after the earliest window's start.
        let mut start = lo.div_euclid(step) * step;
        if start <= lo {
            start += step;
        }
        if start > hi {
            return Ok(RangeInput {
                series: Vec::new(),
                windows,
                range_ms,
            });
        }
        let inner = Grid {
            start,
            end: hi - (hi - start).rem_euclid(step),
            step,
        };
        // Every series of the inner expression holds a point per inner
        // step: more steps than the samples limit can never fit.
        if inner.len() > self.query.config.max_samples {
            return Err(Error::TooManySamples("subquery evaluation"));
        }
        let evaluated = self.eval(&sq.expr, &inner)?;
        if let V::Vector(ss) = &evaluated {
            let points = ss
                .iter()
                .map(|s| s.vals.iter().filter(|v| v.is_some()).count())
                .sum();
            self.hold(points)?;
        }
        let series = match evaluated {
            V::Vector(ss) => ss
                .into_iter()
                .map(|s| RangeSeries {
                    points: inner
                        .times()
                        .zip(s.vals)
                        .filter_map(|(t, v)| v.map(|v| (t, v)))
                        .collect(),
                    labels: s.labels,
                    drop_name: s.drop_name,
                })
                .filter(|s| !s.points.is_empty())
                .collect(),
            V::Scalar(vals) => vec![RangeSeries {
                labels: Labels::default(),
                points: inner.times().zip(vals).collect(),
                drop_name: false,
            }],
            other => {
                return Err(Error::Execution(format!(
                    "subquery over {} is not allowed",
                    kind(&other)
                )));
            }
        };
        Ok(RangeInput {
            series,
            windows,
            range_ms,
        })
    }
}

/// `windowed` is the range vector at step `step` (the result of an
/// instant query whose expression is a range vector).
fn windowed(input: RangeInput, step: usize) -> Vec<RangeSeries> {
    let (lo, hi) = input.windows[step];
    input
        .series
        .into_iter()
        .map(|s| {
            let a = s.points.partition_point(|p| p.0 <= lo);
            let b = s.points.partition_point(|p| p.0 <= hi);
            RangeSeries {
                points: s.points[a..b].to_vec(),
                labels: s.labels,
                drop_name: s.drop_name,
            }
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

pub(crate) fn kind(v: &V) -> &'static str {
    match v {
        V::Scalar(_) => "scalar",
        V::Vector(_) => "instant vector",
        V::Matrix(_) => "range vector",
        V::String(_) => "string",
    }
}

/// `Windows` walks `(lo, hi]` windows over sorted points: with two
/// cursors while the windows move forward (the normal case, linear in
/// points plus windows), by binary search otherwise (`@`).
pub(crate) struct Windows<'a> {
    points: &'a [(i64, f64)],
    a: usize,
    b: usize,
    last: (i64, i64),
}

impl<'a> Windows<'a> {
    pub fn new(points: &'a [(i64, f64)]) -> Windows<'a> {
        Windows {
            points,
            a: 0,
            b: 0,
            last: (i64::MIN, i64::MIN),
        }
    }

    /// `get` is the slice inside `(lo, hi]`.
    pub fn get(&mut self, lo: i64, hi: i64) -> &'a [(i64, f64)] {
        let p = self.points;
        if lo >= self.last.0 && hi >= self.last.1 {
            while self.a < p.len() && p[self.a].0 <= lo {
                self.a += 1;
            }
            if self.b < self.a {
                self.b = self.a;
            }
            while self.b < p.len() && p[self.b].0 <= hi {
                self.b += 1;
            }
        } else {
            self.a = p.partition_point(|x| x.0 <= lo);
            self.b = p.partition_point(|x| x.0 <= hi).max(self.a);
        }
        self.last = (lo, hi);
        &p[self.a..self.b]
    }
}

/// `window` is the slice of `points` inside `(lo, hi]`.
pub(crate) fn window(points: &[(i64, f64)], lo: i64, hi: i64) -> &[(i64, f64)] {
    let a = points.partition_point(|p| p.0 <= lo);
    let b = points.partition_point(|p| p.0 <= hi);
    &points[a..b.max(a)]
}
