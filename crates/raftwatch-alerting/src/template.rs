//! The subset of Go's `text/template` that Prometheus alert labels and
//! annotations use.

use thiserror::Error;

use crate::LabelSet;

/// `TemplateError` is a parse or execution error.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("template {name:?}: {message}")]
pub struct TemplateError {
    /// The template's name (label or annotation name).
    pub name: String,
    /// What is wrong.
    pub message: String,
}

/// `TemplateData` is what a rule's templates see: `$labels`
/// (`.Labels`), `$value` (`.Value`), `$externalLabels`, `$externalURL`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemplateData {
    /// The alert's labels (the sample's labels, before the rule's own).
    pub labels: LabelSet,
    /// The sample's value.
    pub value: f64,
    /// The cluster's external labels.
    pub external_labels: LabelSet,
    /// The cluster's external URL.
    pub external_url: String,
}

// STUB (uncommitted)
/// stub
pub fn expand(_name: &str, text: &str, _data: &TemplateData) -> Result<String, TemplateError> {
    Ok(text.to_string())
}
