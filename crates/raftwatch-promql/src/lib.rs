//! raftwatch-promql: the PromQL evaluator, with Prometheus 3.x semantics.
//!
//! Layer 2 of the workspace (see `ARCHITECTURE.md`): synchronous, I/O-free
//! and clock-free. Parsing is `promql-parser`'s; evaluation is ours.
//!
//! A query runs in two phases so that the caller, not the engine, does the
//! I/O:
//! 1. [`Engine::instant_query`] / [`Engine::range_query`] parse the
//!    expression and plan it: [`Query::selects`] lists every series
//!    selection the evaluation will make (matchers and the inclusive time
//!    range of samples it needs).
//! 2. [`Query::exec`] evaluates against a [`Queryable`]. The node fetches
//!    the planned selections from its shards (asynchronously, at the
//!    requested consistency) and hands the engine a [`Queryable`] over what
//!    it fetched; tests and the rule evaluator hand it an in-memory store
//!    ([`MemStorage`]).
//!
//! **Architecture Invariant:** this crate never imports the TSDB, tokio or
//! any I/O; all data comes through [`Queryable`] (as Prometheus's
//! `promql/engine.go` imports `storage`, never `tsdb`).

mod aggregate;
mod binary;
mod eval;
mod functions;
mod labels;
mod mem;
mod plan;
pub mod testscript;
mod value;

use std::sync::atomic::AtomicBool;

pub use labels::Labels;
pub use mem::{MemStorage, ShardedMemStorage, evaluate_pushdown};
pub use plan::{PushdownRequest, SelectRequest};
pub use value::{Annotations, QueryResult, RawSeries, Sample, Series, Value};

use promql_parser::parser::Expr;

/// `LOOKBACK_DELTA_MS_DEFAULT` is how far back an instant vector selector
/// looks for a series' latest sample (Prometheus's `--query.lookback-delta`
/// default, 5 minutes).
pub const LOOKBACK_DELTA_MS_DEFAULT: i64 = 300_000;
/// `MAX_SAMPLES_DEFAULT` is the most samples one query may hold in memory
/// at once (Prometheus's `--query.max-samples` default).
pub const MAX_SAMPLES_DEFAULT: usize = 50_000_000;
/// `SUBQUERY_STEP_MS_DEFAULT` is the step of a subquery that names none
/// (`x[5m:]`): Prometheus uses the global evaluation interval, 1 minute by
/// default.
pub const SUBQUERY_STEP_MS_DEFAULT: i64 = 60_000;
/// `RANGE_STEPS_MAX` is Prometheus's maximum resolution: a range query may
/// evaluate at most this many steps per series.
pub const RANGE_STEPS_MAX: i64 = 11_000;

/// `Error` is why a query could not be planned or evaluated. Each variant
/// maps to one of Prometheus's API error types ([`Error::kind`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The expression does not parse or does not type-check
    /// (`bad_data`).
    #[error("{0}")]
    Parse(String),
    /// A query parameter is invalid: step, range, times (`bad_data`).
    #[error("{0}")]
    BadRequest(String),
    /// Evaluation failed on the data: duplicate label sets, many-to-many
    /// matching, a function given bad arguments (`execution`).
    #[error("{0}")]
    Execution(String),
    /// The query would hold more than `max_samples` samples (`execution`,
    /// Prometheus's wording).
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// The caller cancelled the query (`canceled`).
    #[error("query was canceled")]
    Canceled,
    /// The data source failed (`internal`/`unavailable`, as the caller
    /// decides).
    #[error("{0}")]
    Storage(String),
}

impl Error {
    /// `kind` is the Prometheus HTTP API `errorType` for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Parse(_) | Error::BadRequest(_) => "bad_data",
            Error::Execution(_) | Error::TooManySamples(_) => "execution",
            Error::Canceled => "canceled",
            Error::Storage(_) => "internal",
        }
    }
}

/// `parse_metric_selector` parses a series selector (`up`,
/// `up{job="a"}`, `{__name__=~"node_.*"}`), as the Prometheus HTTP API's
/// `match[]` parameters are, into the matchers every selected series must
/// satisfy (the name, if given, first). Anything else — an expression, a
/// range, `offset` or `@` — is [`Error::Parse`]. Whether the selector
/// selects too much (every matcher accepts "") is the caller's rule.
pub fn parse_metric_selector(text: &str) -> Result<Vec<raftwatch_model::Matcher>, Error> {
    match promql_parser::parser::parse(text).map_err(Error::Parse)? {
        Expr::VectorSelector(vs) if vs.offset.is_none() && vs.at.is_none() => plan::matchers(&vs),
        _ => Err(Error::Parse(format!(
            "{text:?} is not a series selector (metric{{label=\"value\", ...}})"
        ))),
    }
}

/// `Queryable` is where the engine reads series from. `select` returns
/// every series matching all `req.matchers` with its samples in
/// `[req.start_ms, req.end_ms]` (both inclusive), sorted by timestamp,
/// staleness markers included (the engine interprets them). Series with no
/// sample in the range may be omitted.
pub trait Queryable {
    /// `select` answers one planned selection.
    fn select(&self, req: &SelectRequest) -> Result<Vec<RawSeries>, Error>;

    /// `pushdown` answers one planned partial aggregation
    /// ([`Query::pushdowns`]): every shard's result of `req.expr`,
    /// concatenated, with their annotations; `None` when this source
    /// cannot (a query planned with push-down then fails).
    fn pushdown(&self, req: &PushdownRequest) -> Result<Option<PushdownAnswer>, Error> {
        let _ = req;
        Ok(None)
    }
}

/// `PushdownAnswer` is every shard's answer to a [`PushdownRequest`]: the
/// series of each (one label set may come from several shards), and what
/// they noted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PushdownAnswer {
    /// All shards' series, points at the request's steps.
    pub series: Vec<Series>,
    /// Per series: its metric name is still to be removed (Prometheus's
    /// delayed name removal; [`Query::exec_partial`]).
    pub drop_name: Vec<bool>,
    /// All shards' annotations.
    pub annotations: Annotations,
}

/// `EngineConfig` holds the engine's limits and defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Lookback delta, ms, > 0.
    pub lookback_delta_ms: i64,
    /// Most samples one query may hold at once; over it,
    /// [`Error::TooManySamples`].
    pub max_samples: usize,
    /// Step of a subquery that names none, ms, > 0.
    pub subquery_step_ms: i64,
    /// Allow the functions and aggregations Prometheus hides behind
    /// `--enable-feature=promql-experimental-functions`.
    pub experimental_functions: bool,
    /// Plan `sum`, `count`, `min`, `max`, `group` and `avg` of
    /// series-local expressions as partial aggregations on the shards
    /// ([`Query::pushdowns`]) instead of selecting their raw samples.
    pub pushdown: bool,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            lookback_delta_ms: LOOKBACK_DELTA_MS_DEFAULT,
            max_samples: MAX_SAMPLES_DEFAULT,
            subquery_step_ms: SUBQUERY_STEP_MS_DEFAULT,
            experimental_functions: false,
            pushdown: false,
        }
    }
}

/// `Engine` plans and evaluates PromQL queries.
#[derive(Clone, Debug, Default)]
pub struct Engine {
    config: EngineConfig,
}

/// `Query` is a parsed and planned query, ready to [`Query::exec`].
#[derive(Debug)]
pub struct Query {
    expr: Box<Expr>,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    instant: bool,
    config: EngineConfig,
    selects: Vec<SelectRequest>,
    selector_ids: plan::SelectorIds,
    pushdowns: Vec<PushdownRequest>,
    pushdown_ids: plan::PushdownIds,
}

impl Engine {
    /// `new` is an engine with `config`.
    pub fn new(config: EngineConfig) -> Engine {
        Engine { config }
    }

    /// `config` is the engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// `instant_query` plans `expr` evaluated at `time_ms`.
    pub fn instant_query(&self, expr: &str, time_ms: i64) -> Result<Query, Error> {
        self.plan(expr, time_ms, time_ms, 0, true)
    }

    /// `range_query` plans `expr` evaluated at `start_ms`, `start_ms +
    /// step_ms`, ... up to `end_ms` inclusive. `step_ms > 0`, `start_ms <=
    /// end_ms`, and at most [`RANGE_STEPS_MAX`] steps; otherwise
    /// [`Error::BadRequest`] with Prometheus's message.
    pub fn range_query(
        &self,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Query, Error> {
        if step_ms <= 0 {
            return Err(Error::BadRequest(
                "zero or negative query resolution step widths are not accepted. \
                 Try a positive integer"
                    .into(),
            ));
        }
        if end_ms < start_ms {
            return Err(Error::BadRequest(
                "end timestamp must not be before start time".into(),
            ));
        }
        if (end_ms - start_ms) / step_ms > RANGE_STEPS_MAX {
            return Err(Error::BadRequest(
                "exceeded maximum resolution of 11,000 points per timeseries. \
                 Try decreasing the query resolution (?step=XX)"
                    .into(),
            ));
        }
        self.plan(expr, start_ms, end_ms, step_ms, false)
    }

    fn plan(
        &self,
        text: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        instant: bool,
    ) -> Result<Query, Error> {
        // Boxed before planning: selectors are identified by address.
        let expr = Box::new(promql_parser::parser::parse(text).map_err(Error::Parse)?);
        plan::check(&expr, text, &self.config)?;
        let p = plan::selects(&expr, start_ms, end_ms, step_ms, &self.config)?;
        Ok(Query {
            expr,
            start_ms,
            end_ms,
            step_ms,
            instant,
            config: self.config.clone(),
            selects: p.selects,
            selector_ids: p.selector_ids,
            pushdowns: p.pushdowns,
            pushdown_ids: p.pushdown_ids,
        })
    }
}

impl Query {
    /// `selects` is every selection [`Query::exec`] will make, in order.
    /// A caller that fetches data ahead of evaluation fetches exactly
    /// these.
    pub fn selects(&self) -> &[SelectRequest] {
        &self.selects
    }

    /// `pushdowns` is every partial aggregation [`Query::exec`] will ask
    /// [`Queryable::pushdown`] for, in order (empty unless
    /// [`EngineConfig::pushdown`]).
    pub fn pushdowns(&self) -> &[PushdownRequest] {
        &self.pushdowns
    }

    /// `is_instant` says whether this is an instant query (its result is a
    /// vector, scalar or string) rather than a range query (a matrix).
    pub fn is_instant(&self) -> bool {
        self.instant
    }

    /// `exec` evaluates the query over `data`. It checks `cancel` between
    /// steps and returns [`Error::Canceled`] once it is set.
    pub fn exec(&self, data: &dyn Queryable, cancel: &AtomicBool) -> Result<QueryResult, Error> {
        eval::run(self, data, cancel)
    }

    /// `exec_partial` evaluates an instant-vector expression as one part
    /// of a larger query (a shard's push-down): series at the query's
    /// steps, each with whether its name is still to be removed, names
    /// not yet removed and same-labelled series not merged.
    pub fn exec_partial(
        &self,
        data: &dyn Queryable,
        cancel: &AtomicBool,
    ) -> Result<PushdownAnswer, Error> {
        eval::run_partial(self, data, cancel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftwatch_model::MatchOp;

    #[test]
    fn metric_selectors_parse_and_anything_else_is_refused() {
        let ms = parse_metric_selector(r#"up{job="a",inst=~"1|2"}"#).unwrap();
        let shown: Vec<(&str, MatchOp, &str)> =
            ms.iter().map(|m| (m.name(), m.op(), m.value())).collect();
        assert_eq!(
            shown,
            vec![
                ("__name__", MatchOp::Equal, "up"),
                ("job", MatchOp::Equal, "a"),
                ("inst", MatchOp::RegexMatch, "1|2"),
            ]
        );
        assert_eq!(parse_metric_selector(r#"{a=~".+"}"#).unwrap().len(), 1);
        // The parser already refuses a selector that would select every
        // series.
        for bad in [
            r#"{a!="b"}"#,
            "up[5m]",
            "up offset 1m",
            "rate(up[1m])",
            "1",
            "up{",
            "",
        ] {
            let e = parse_metric_selector(bad).unwrap_err();
            assert_eq!(e.kind(), "bad_data", "{bad:?}: {e}");
        }
    }
}
