//! The subset of Go's `text/template` that Prometheus alert labels and
//! annotations use.
//!
//! Every template runs as Prometheus runs alert templates: as if
//! `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}`
//! `{{$externalURL := .ExternalURL}}{{$value := .Value}}` came first, with
//! `missingkey=zero` (a missing label is `""`), Go's typing rules
//! (`gt $value 1` compares a float with an int and fails, as in Go:
//! write `gt $value 1.0`) and Go's formatting (`{{$value}}` prints a
//! million as `1e+06`).
//!
//! Supported: text, actions with trim markers (`{{-`, `-}}`), comments,
//! pipelines, variables (`:=`, `=`), fields and map keys, `if`/`else
//! if`/`else`, `with`/`else with`, `range` over maps (in key order) and
//! integers with `break`/`continue`, `define`/`template`/`block`,
//! literals, Go's builtin functions (`and or not len index slice eq ne
//! lt le gt ge print printf println html js urlquery`) and Prometheus's
//! (`humanize humanize1024 humanizeDuration humanizePercentage
//! humanizeTimestamp title toUpper toLower reReplaceAll match safeHtml
//! stripPort stripDomain graphLink tableLink toTime toDuration
//! parseDuration pathPrefix externalURL args`).
//!
//! Accepted when parsing, so that rule files using them load, but an
//! error when rendering: `query` and `now` (there is no query engine or
//! clock here), the functions that only apply to query results (`first
//! label value strvalue sortByLabel`), and `call`. Methods on values
//! (`(toTime $v).Unix`) are not supported.

mod exec;
mod funcs;
mod gofmt;
mod lex;
mod parse;
mod value;

use thiserror::Error;

use crate::LabelSet;

/// `TEMPLATE_TEXT_BYTES_MAX` is the largest template text accepted (1 MiB).
pub const TEMPLATE_TEXT_BYTES_MAX: usize = 1 << 20;

/// `TEMPLATE_NESTING_DEPTH_MAX` bounds nesting: control structures,
/// parenthesised pipelines and `template` calls, at parse time and when
/// rendering.
pub const TEMPLATE_NESTING_DEPTH_MAX: usize = 100;

/// `TEMPLATE_OUTPUT_BYTES_MAX` bounds a rendering's output, and every
/// string a function returns along the way (1 MiB).
pub const TEMPLATE_OUTPUT_BYTES_MAX: usize = 1 << 20;

/// `TEMPLATE_EXEC_COST_MAX` bounds the work of one rendering: one unit
/// per node and command evaluated, plus one per byte of every string
/// produced (output or intermediate).
pub const TEMPLATE_EXEC_COST_MAX: u64 = 1 << 23;

/// `TEMPLATE_REGEX_BYTES_MAX` bounds the compiled size of a regular
/// expression given to `reReplaceAll` or `match`.
pub const TEMPLATE_REGEX_BYTES_MAX: usize = 1 << 20;

const _: () = assert!(TEMPLATE_OUTPUT_BYTES_MAX as u64 <= TEMPLATE_EXEC_COST_MAX);

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

/// `Template` is a parsed template, ready to render any number of times.
/// Text without `{{` is kept as is and renders to itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    name: String,
    text: String,
    tree: Option<parse::Tree>,
}

impl Template {
    /// `parse` parses `text`, as Go's `Parse` does (function names and
    /// variables are checked now). `name` names the template in errors
    /// and for `{{template}}`.
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        let fail = |message: String| TemplateError {
            name: name.to_string(),
            message,
        };
        if text.len() > TEMPLATE_TEXT_BYTES_MAX {
            return Err(fail(format!(
                "template is {} bytes, more than the limit of {TEMPLATE_TEXT_BYTES_MAX}",
                text.len()
            )));
        }
        let tree = if text.contains("{{") {
            let tree = parse::parse(text).map_err(|e| {
                let (line, col) = line_col(text, e.pos);
                fail(format!("{line}:{col}: {}", e.msg))
            })?;
            Some(tree)
        } else {
            None
        };
        Ok(Template {
            name: name.to_string(),
            text: text.to_string(),
            tree,
        })
    }

    /// `render` executes the template on `data`. Errors name the line,
    /// column and command that failed.
    pub fn render(&self, data: &TemplateData) -> Result<String, TemplateError> {
        let Some(tree) = &self.tree else {
            return Ok(self.text.clone());
        };
        exec::execute(tree, &self.name, data).map_err(|e| {
            let (line, col) = line_col(&self.text, e.pos);
            let message = match e.cmd {
                Some((start, end)) => {
                    let cmd = self.text.get(start..end).unwrap_or("").trim();
                    format!("{line}:{col}: executing <{cmd}>: {}", e.msg)
                }
                None => format!("{line}:{col}: {}", e.msg),
            };
            TemplateError {
                name: self.name.clone(),
                message,
            }
        })
    }

    /// `name` is the template's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `text` is the template's source text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// `expand` parses and renders `text` in one go.
pub fn expand(name: &str, text: &str, data: &TemplateData) -> Result<String, TemplateError> {
    Template::parse(name, text)?.render(data)
}

/// 1-based line and column (in characters) of byte offset `pos`.
fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let mut pos = pos.min(text.len());
    while !text.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = text.get(..pos).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).unwrap_or("").chars().count() + 1;
    (line, col)
}
