//! Values a template computes with, modelled on the Go types Prometheus's
//! templates see (`float64`, `string`, `map[string]string`, the data
//! struct, `*time.Time`, ...).

use std::collections::BTreeMap;
use std::rc::Rc;

use super::TemplateData;
use crate::LabelSet;

/// The Go type of Prometheus's alert template data, for error messages.
pub(super) const DATA_TYPE_NAME: &str = "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value interface {} }";

/// A value during execution. `'a` is the lifetime of the template data.
#[derive(Clone, Debug)]
pub(super) enum Value<'a> {
    /// No value at all (Go's invalid `reflect.Value`): prints `<no value>`.
    Missing,
    /// A nil interface: prints `<nil>`.
    Nil,
    Bool(bool),
    /// Go `int` (also bytes and runes).
    Int(i64),
    /// Go `float64`.
    Float(f64),
    Str(Rc<str>),
    /// A `map[string]string` of the data (`.Labels`, `.ExternalLabels`).
    Labels(&'a LabelSet),
    /// A `map[string]interface {}` (what `args` returns).
    Map(Rc<BTreeMap<String, Value<'a>>>),
    /// The root data struct.
    Data(&'a TemplateData),
    /// A `*time.Time`, in milliseconds since the Unix epoch (UTC).
    Time(i64),
    /// A `*time.Duration`, in nanoseconds.
    Duration(i64),
}

impl Value<'_> {
    /// A string value.
    pub(super) fn str(s: &str) -> Self {
        Value::Str(Rc::from(s))
    }

    /// A string value from an owned string.
    pub(super) fn string(s: String) -> Self {
        Value::Str(Rc::from(s))
    }

    /// The Go type name, as `%T` prints it.
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Value::Missing => "<invalid reflect.Value>",
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Labels(_) => "map[string]string",
            Value::Map(_) => "map[string]interface {}",
            Value::Data(_) => DATA_TYPE_NAME,
            Value::Time(_) => "*time.Time",
            Value::Duration(_) => "*time.Duration",
        }
    }

    /// Go's `template.IsTrue`: the zero value of its type is false.
    pub(super) fn truth(&self) -> bool {
        match self {
            Value::Missing | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(n) => *n != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Labels(m) => !m.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Data(_) | Value::Time(_) | Value::Duration(_) => true,
        }
    }

    /// The string inside, if this is a string.
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}
