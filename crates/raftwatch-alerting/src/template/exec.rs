//! The executor: Go's `text/template/exec.go` over our parse tree, with
//! `missingkey=zero` (Prometheus's option) and the limits of
//! [`super::TEMPLATE_EXEC_COST_MAX`], [`super::TEMPLATE_OUTPUT_BYTES_MAX`]
//! and [`super::TEMPLATE_NESTING_DEPTH_MAX`].

use std::collections::HashMap;

use regex::Regex;

use super::funcs::{self, Param};
use super::gofmt;
use super::parse::{Arg, Cmd, ControlKind, Node, NumValue, Pipe, Tree};
use super::value::{DATA_TYPE_NAME, Value};
use super::{
    TEMPLATE_EXEC_COST_MAX, TEMPLATE_NESTING_DEPTH_MAX, TEMPLATE_OUTPUT_BYTES_MAX, TemplateData,
};

/// An execution error at a byte offset, with the command's byte range
/// when one was being evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ExecErr {
    pub(super) pos: usize,
    pub(super) cmd: Option<(usize, usize)>,
    pub(super) msg: String,
}

type R<T> = Result<T, ExecErr>;

/// How a list's walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

/// Runs `tree` on `data`; `self_name` is the template's own name (for
/// `{{template}}` calling it).
pub(super) fn execute(tree: &Tree, self_name: &str, data: &TemplateData) -> R<String> {
    let mut state = State {
        tree,
        self_name,
        data,
        vars: Vec::new(),
        out: String::new(),
        cost: 0,
        depth: 0,
        regexes: HashMap::new(),
        pos: 0,
    };
    // `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}
    // {{$externalURL := .ExternalURL}}{{$value := .Value}}`, as
    // Prometheus prepends to every alert template.
    let root = Value::Data(data);
    state.vars.push(("$", root.clone()));
    state.vars.push(("$labels", Value::Labels(&data.labels)));
    state
        .vars
        .push(("$externalLabels", Value::Labels(&data.external_labels)));
    state
        .vars
        .push(("$externalURL", Value::str(&data.external_url)));
    state.vars.push(("$value", Value::Float(data.value)));
    state.walk(&root, &tree.root)?;
    Ok(state.out)
}

struct State<'a> {
    tree: &'a Tree,
    self_name: &'a str,
    data: &'a TemplateData,
    vars: Vec<(&'a str, Value<'a>)>,
    out: String,
    cost: u64,
    depth: usize,
    regexes: HashMap<String, Regex>,
    /// Byte offset of the node being run, for errors.
    pos: usize,
}

impl<'a> State<'a> {
    fn fail<T>(&self, msg: impl Into<String>) -> R<T> {
        Err(ExecErr {
            pos: self.pos,
            cmd: None,
            msg: msg.into(),
        })
    }

    /// Charges `units` of work; refuses past the budget.
    fn charge(&mut self, units: usize) -> R<()> {
        self.cost = self
            .cost
            .saturating_add(u64::try_from(units).unwrap_or(u64::MAX));
        if self.cost > TEMPLATE_EXEC_COST_MAX {
            return self.fail(format!(
                "execution too expensive (more than {TEMPLATE_EXEC_COST_MAX} steps and bytes)"
            ));
        }
        Ok(())
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > TEMPLATE_NESTING_DEPTH_MAX {
            return self.fail(format!(
                "exceeded maximum template depth ({TEMPLATE_NESTING_DEPTH_MAX})"
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn write(&mut self, s: &str) -> R<()> {
        self.charge(s.len())?;
        if self.out.len() + s.len() > TEMPLATE_OUTPUT_BYTES_MAX {
            return self.fail(format!(
                "output longer than {TEMPLATE_OUTPUT_BYTES_MAX} bytes"
            ));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn walk(&mut self, dot: &Value<'a>, nodes: &'a [Node]) -> R<Flow> {
        for node in nodes {
            self.charge(1)?;
            let flow = match node {
                Node::Text(t) => {
                    self.write(t)?;
                    Flow::Normal
                }
                Node::Action(pipe) => {
                    self.pos = pipe.pos;
                    let v = self.eval_pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.print_value(&v)?;
                    }
                    Flow::Normal
                }
                Node::Control {
                    kind: ControlKind::Range,
                    pipe,
                    list,
                    else_list,
                } => self.walk_range(dot, pipe, list, else_list.as_deref())?,
                Node::Control {
                    kind,
                    pipe,
                    list,
                    else_list,
                } => {
                    self.enter()?;
                    let mark = self.vars.len();
                    self.pos = pipe.pos;
                    let v = self.eval_pipeline(dot, pipe)?;
                    let flow = if v.truth() {
                        if *kind == ControlKind::With {
                            self.walk(&v, list)?
                        } else {
                            self.walk(dot, list)?
                        }
                    } else if let Some(else_list) = else_list {
                        self.walk(dot, else_list)?
                    } else {
                        Flow::Normal
                    };
                    self.vars.truncate(mark);
                    self.leave();
                    flow
                }
                Node::Template { pos, name, pipe } => {
                    self.pos = *pos;
                    self.walk_template(dot, name, pipe.as_ref())?;
                    Flow::Normal
                }
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_range(
        &mut self,
        dot: &Value<'a>,
        pipe: &'a Pipe,
        list: &'a [Node],
        else_list: Option<&'a [Node]>,
    ) -> R<Flow> {
        self.enter()?;
        let mark = self.vars.len();
        self.pos = pipe.pos;
        let v = self.eval_pipeline(dot, pipe)?;
        let body_mark = self.vars.len();
        let mut ran = false;
        match &v {
            Value::Labels(m) => {
                for (k, val) in m.iter() {
                    ran = true;
                    let flow =
                        self.range_once(pipe, list, body_mark, Value::str(k), Value::str(val))?;
                    if flow == Flow::Break {
                        break;
                    }
                }
            }
            Value::Map(m) => {
                for (k, val) in m.iter() {
                    ran = true;
                    let flow =
                        self.range_once(pipe, list, body_mark, Value::str(k), val.clone())?;
                    if flow == Flow::Break {
                        break;
                    }
                }
            }
            Value::Int(n) => {
                if pipe.decl.len() > 1 {
                    return self.fail(format!(
                        "can't use {n} to iterate over more than one variable"
                    ));
                }
                for i in 0..*n {
                    ran = true;
                    let flow =
                        self.range_once(pipe, list, body_mark, Value::Int(i), Value::Int(i))?;
                    if flow == Flow::Break {
                        break;
                    }
                }
            }
            Value::Missing => {}
            v => {
                return self.fail(format!("range can't iterate over {}", gofmt::sprint_v(v)));
            }
        }
        if !ran && let Some(else_list) = else_list {
            self.vars.truncate(body_mark);
            self.walk(dot, else_list)?;
        }
        self.vars.truncate(mark);
        self.leave();
        Ok(Flow::Normal)
    }

    /// One iteration of a range: sets the variables and walks the body.
    fn range_once(
        &mut self,
        pipe: &'a Pipe,
        list: &'a [Node],
        body_mark: usize,
        index: Value<'a>,
        elem: Value<'a>,
    ) -> R<Flow> {
        self.charge(1)?;
        self.vars.truncate(body_mark);
        match pipe.decl.as_slice() {
            [] => {}
            [one] => self.set_var(one, elem.clone())?,
            [first, second, ..] => {
                self.set_var(first, index)?;
                self.set_var(second, elem.clone())?;
            }
        }
        let flow = self.walk(&elem, list)?;
        self.vars.truncate(body_mark);
        Ok(flow)
    }

    /// Sets the innermost variable called `name` (a range's own, or the
    /// one an `=` assigns).
    fn set_var(&mut self, name: &str, value: Value<'a>) -> R<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            Some(slot) => {
                slot.1 = value;
                Ok(())
            }
            None => self.fail(format!("undefined variable: {name}")),
        }
    }

    fn walk_template(&mut self, dot: &Value<'a>, name: &'a str, pipe: Option<&'a Pipe>) -> R<()> {
        let body: &'a [Node] = match self.tree.defines.get(name) {
            Some(body) => body,
            None if name == self.self_name => &self.tree.root,
            None => return self.fail(format!("template {name:?} not defined")),
        };
        let new_dot = match pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Value::Missing,
        };
        self.enter()?;
        // No dynamic scoping: the template sees `$` only.
        let saved = std::mem::replace(&mut self.vars, vec![("$", new_dot.clone())]);
        let result = self.walk(&new_dot, body);
        self.vars = saved;
        self.leave();
        result.map(|_| ())
    }

    fn print_value(&mut self, v: &Value<'a>) -> R<()> {
        match v {
            Value::Missing => self.write("<no value>"),
            Value::Str(s) => {
                let s = s.clone();
                self.write(&s)
            }
            v => {
                let s = gofmt::sprint_v(v);
                self.write(&s)
            }
        }
    }

    fn lookup_var(&self, name: &str) -> R<Value<'a>> {
        match self.vars.iter().rev().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => self.fail(format!("undefined variable: {name}")),
        }
    }

    fn eval_pipeline(&mut self, dot: &Value<'a>, pipe: &'a Pipe) -> R<Value<'a>> {
        let mut value: Option<Value<'a>> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Value::Missing);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, value.clone())?;
            } else {
                self.vars.push((name, value.clone()));
            }
        }
        Ok(value)
    }

    fn eval_command(
        &mut self,
        dot: &Value<'a>,
        cmd: &'a Cmd,
        last: Option<Value<'a>>,
    ) -> R<Value<'a>> {
        self.charge(1)?;
        let result = self.eval_command_inner(dot, cmd, last);
        result.map_err(|mut e| {
            if e.cmd.is_none() {
                e.cmd = Some((cmd.start, cmd.end));
                e.pos = cmd.start;
            }
            e
        })
    }

    fn eval_command_inner(
        &mut self,
        dot: &Value<'a>,
        cmd: &'a Cmd,
        last: Option<Value<'a>>,
    ) -> R<Value<'a>> {
        let Some((first, rest)) = cmd.args.split_first() else {
            return self.fail("empty command");
        };
        let has_args = !rest.is_empty() || last.is_some();
        match first {
            Arg::Field(idents) => self.eval_field_chain(dot.clone(), idents, has_args),
            Arg::Chain(node, idents) => {
                if matches!(**node, Arg::Nil) {
                    return self.fail("indirection through explicit nil");
                }
                let receiver = self.eval_arg(dot, node, Param::Any)?;
                self.eval_field_chain(receiver, idents, has_args)
            }
            Arg::Ident(name) => self.call_function(dot, name, rest, last),
            Arg::Var(name, idents) => {
                let v = self.lookup_var(name)?;
                if idents.is_empty() {
                    self.not_a_function(first, has_args)?;
                    Ok(v)
                } else {
                    self.eval_field_chain(v, idents, has_args)
                }
            }
            Arg::Pipe(p) => {
                self.not_a_function(first, has_args)?;
                self.eval_pipeline(dot, p)
            }
            Arg::Nil => self.fail("nil is not a command"),
            Arg::Dot => {
                self.not_a_function(first, has_args)?;
                Ok(dot.clone())
            }
            literal => {
                self.not_a_function(literal, has_args)?;
                self.eval_arg(dot, literal, Param::Any)
            }
        }
    }

    fn not_a_function(&self, arg: &Arg, has_args: bool) -> R<()> {
        if has_args {
            return self.fail(format!(
                "can't give argument to non-function {}",
                describe_arg(arg)
            ));
        }
        Ok(())
    }

    /// `.A.B.C` on `receiver`; only the last may receive arguments (and
    /// none can take them).
    fn eval_field_chain(
        &self,
        receiver: Value<'a>,
        idents: &[String],
        has_args: bool,
    ) -> R<Value<'a>> {
        let mut v = receiver;
        let n = idents.len();
        for (i, ident) in idents.iter().enumerate() {
            v = self.eval_field(v, ident, has_args && i + 1 == n)?;
        }
        Ok(v)
    }

    fn eval_field(&self, receiver: Value<'a>, name: &str, has_args: bool) -> R<Value<'a>> {
        match receiver {
            Value::Missing => Ok(Value::Missing),
            Value::Nil => self.fail(format!("nil pointer evaluating interface {{}}.{name}")),
            Value::Data(d) => {
                let v = match name {
                    "Labels" => Value::Labels(&d.labels),
                    "ExternalLabels" => Value::Labels(&d.external_labels),
                    "ExternalURL" => Value::str(&d.external_url),
                    "Value" => Value::Float(d.value),
                    _ => {
                        return self.fail(format!(
                            "can't evaluate field {name} in type {DATA_TYPE_NAME}"
                        ));
                    }
                };
                if has_args {
                    return self.fail(format!(
                        "{name} has arguments but cannot be invoked as function"
                    ));
                }
                Ok(v)
            }
            Value::Labels(m) => {
                if has_args {
                    return self.fail(format!("{name} is not a method but has arguments"));
                }
                // missingkey=zero: a missing label is "".
                Ok(Value::str(m.get(name).map_or("", String::as_str)))
            }
            Value::Map(m) => {
                if has_args {
                    return self.fail(format!("{name} is not a method but has arguments"));
                }
                Ok(m.get(name).cloned().unwrap_or(Value::Nil))
            }
            v => self.fail(format!(
                "can't evaluate field {name} in type {}",
                v.type_name()
            )),
        }
    }

    /// An argument, checked against the parameter (Go's `evalArg`).
    fn eval_arg(&mut self, dot: &Value<'a>, arg: &'a Arg, param: Param) -> R<Value<'a>> {
        let v = match arg {
            Arg::Dot => dot.clone(),
            Arg::Nil => {
                if param == Param::Any {
                    return Ok(Value::Nil);
                }
                return self.fail(format!("cannot assign nil to {}", param_type(param)));
            }
            Arg::Field(idents) => self.eval_field_chain(dot.clone(), idents, false)?,
            Arg::Var(name, idents) => {
                let v = self.lookup_var(name)?;
                self.eval_field_chain(v, idents, false)?
            }
            Arg::Chain(node, idents) => {
                if matches!(**node, Arg::Nil) {
                    return self.fail("indirection through explicit nil");
                }
                let receiver = self.eval_arg(dot, node, Param::Any)?;
                self.eval_field_chain(receiver, idents, false)?
            }
            Arg::Pipe(p) => {
                self.enter()?;
                let v = self.eval_pipeline(dot, p);
                self.leave();
                v?
            }
            Arg::Ident(name) => self.call_function(dot, name, &[], None)?,
            Arg::Bool(b) => {
                if param == Param::Str {
                    return self.fail(format!("expected string; found {b}"));
                }
                Value::Bool(*b)
            }
            Arg::Number(n) => {
                if param == Param::Str {
                    return self.fail(format!("expected string; found {}", n.text));
                }
                match n.value {
                    NumValue::Int(i) => Value::Int(i),
                    NumValue::Float(f) => Value::Float(f),
                    NumValue::Overflow => return self.fail(format!("{} overflows int", n.text)),
                }
            }
            Arg::Str(s) => Value::str(s),
        };
        self.validate(v, param)
    }

    /// Go's `validateType` for a value given to a parameter.
    fn validate(&self, v: Value<'a>, param: Param) -> R<Value<'a>> {
        match (param, v) {
            (Param::Any, Value::Missing) => Ok(Value::Nil),
            (Param::Any, v) => Ok(v),
            (Param::Refl, Value::Missing) => self.fail("invalid value; expected reflect.Value"),
            (Param::Refl, v) => Ok(v),
            (Param::Str, Value::Str(s)) => Ok(Value::Str(s)),
            (Param::Str, Value::Missing) => self.fail("invalid value; expected string"),
            (Param::Str, Value::Nil) => {
                self.fail("wrong type for value; expected string; got interface {}")
            }
            (Param::Str, v) => self.fail(format!(
                "wrong type for value; expected string; got {}",
                v.type_name()
            )),
        }
    }

    fn call_function(
        &mut self,
        dot: &Value<'a>,
        name: &'a str,
        args: &'a [Arg],
        last: Option<Value<'a>>,
    ) -> R<Value<'a>> {
        let Some(sig) = funcs::signature(name) else {
            return self.fail(format!("function {name:?} not defined"));
        };
        let given = args.len() + usize::from(last.is_some());
        match sig.variadic {
            Some(_) if given < sig.fixed.len() => {
                return self.fail(format!(
                    "wrong number of args for {name}: want at least {} got {given}",
                    sig.fixed.len()
                ));
            }
            None if given != sig.fixed.len() => {
                return self.fail(format!(
                    "wrong number of args for {name}: want {} got {given}",
                    sig.fixed.len()
                ));
            }
            _ => {}
        }
        let param_of = |i: usize| -> Param {
            sig.fixed
                .get(i)
                .copied()
                .or(sig.variadic)
                .unwrap_or(Param::Any)
        };
        if name == "and" || name == "or" {
            // Short-circuit: arguments are evaluated in turn, and the
            // first that decides is the result.
            let want = name == "or";
            let mut v = Value::Missing;
            for arg in args {
                v = self.eval_arg(dot, arg, Param::Refl)?;
                if v.truth() == want {
                    return Ok(v);
                }
            }
            if let Some(last) = last {
                v = self.validate(last, Param::Refl)?;
            }
            return Ok(v);
        }
        let mut values = Vec::with_capacity(given);
        for (i, arg) in args.iter().enumerate() {
            values.push(self.eval_arg(dot, arg, param_of(i))?);
        }
        if let Some(last) = last {
            values.push(self.validate(last, param_of(args.len()))?);
        }
        let mut ctx = funcs::Ctx {
            data: self.data,
            regexes: &mut self.regexes,
        };
        let result = funcs::call(&mut ctx, name, values);
        let v = match result {
            Ok(v) => v,
            Err(msg) => return self.fail(format!("error calling {name}: {msg}")),
        };
        if let Value::Str(s) = &v {
            self.charge(s.len())?;
            if s.len() > TEMPLATE_OUTPUT_BYTES_MAX {
                return self.fail(format!(
                    "error calling {name}: result longer than {TEMPLATE_OUTPUT_BYTES_MAX} bytes"
                ));
            }
        }
        Ok(v)
    }
}

/// Go's type name for a parameter kind.
fn param_type(p: Param) -> &'static str {
    match p {
        Param::Any => "interface {}",
        Param::Refl => "reflect.Value",
        Param::Str => "string",
    }
}

/// An operand as written, roughly (for "non-function" messages).
fn describe_arg(arg: &Arg) -> String {
    match arg {
        Arg::Ident(n) => n.clone(),
        Arg::Dot => ".".to_string(),
        Arg::Nil => "nil".to_string(),
        Arg::Bool(b) => b.to_string(),
        Arg::Number(n) => n.text.clone(),
        Arg::Str(s) => format!("{s:?}"),
        Arg::Field(f) => f.iter().map(|f| format!(".{f}")).collect(),
        Arg::Var(name, f) => {
            let mut s = name.clone();
            for f in f {
                s.push('.');
                s.push_str(f);
            }
            s
        }
        Arg::Chain(node, f) => {
            let mut s = describe_arg(node);
            for f in f {
                s.push('.');
                s.push_str(f);
            }
            s
        }
        Arg::Pipe(_) => "(...)".to_string(),
    }
}
