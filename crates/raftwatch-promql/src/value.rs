//! What a query returns and what it reads.

use crate::labels::Labels;

/// `RawSeries` is one stored series as a [`crate::Queryable`] returns it:
/// samples sorted by timestamp (ms), staleness markers included.
#[derive(Clone, Debug, PartialEq)]
pub struct RawSeries {
    /// The series' labels.
    pub labels: Labels,
    /// (timestamp ms, value), strictly increasing timestamps.
    pub samples: Vec<(i64, f64)>,
}

/// `Sample` is one element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The element's labels.
    pub labels: Labels,
    /// Evaluation time, ms.
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// `Series` is one element of a range-query result (a matrix).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub labels: Labels,
    /// (time ms, value) at the steps where the series has a value.
    pub points: Vec<(i64, f64)>,
}

/// `Value` is a query's result.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar at time `t` (ms).
    Scalar {
        /// Evaluation time, ms.
        t: i64,
        /// Value.
        v: f64,
    },
    /// A string literal at time `t` (ms).
    String {
        /// Evaluation time, ms.
        t: i64,
        /// The string.
        s: String,
    },
    /// An instant vector: the result of an instant query.
    Vector(Vec<Sample>),
    /// A matrix: the result of a range query, or of an instant query whose
    /// expression is a range vector.
    Matrix(Vec<Series>),
}

impl Value {
    /// `type_name` is Prometheus's `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// `Annotations` are the warnings and infos a query produced, in
/// Prometheus's wording (the API returns them as `warnings` and `infos`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotations {
    /// Possibly wrong results (`PromQL warning: ...`).
    pub warnings: Vec<String>,
    /// Hints (`PromQL info: ...`).
    pub infos: Vec<String>,
}

impl Annotations {
    pub(crate) fn warn(&mut self, msg: String) {
        let msg = format!("PromQL warning: {msg}");
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    pub(crate) fn info(&mut self, msg: String) {
        let msg = format!("PromQL info: {msg}");
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }
}

/// `QueryResult` is a value with its annotations and how many samples the
/// evaluation read.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    /// The result.
    pub value: Value,
    /// Warnings and infos.
    pub annotations: Annotations,
    /// Samples read from the [`crate::Queryable`].
    pub samples_read: u64,
}
