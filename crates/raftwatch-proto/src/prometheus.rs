//! Prometheus remote-write 1.0 messages (`prometheus.WriteRequest`, from
//! Prometheus' `prompb/remote.proto` and `types.proto`), declared by hand:
//! the subset a receiver reads. Unknown fields (metadata, exemplars) are
//! skipped by prost; native histograms are kept as raw bytes only so that
//! a receiver can tell they were sent and refuse them by name.

/// `WriteRequest` is one remote-write request body (after snappy).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series and their samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `TimeSeries` is a label set and its samples.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, sorted by name (the spec requires it).
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Float samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Native histograms, undecoded (not supported: refused).
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub histograms: Vec<Vec<u8>>,
}

/// `Label` is one label pair.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `Sample` is one float sample.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value (NaN payloads, such as the staleness marker, kept).
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}
