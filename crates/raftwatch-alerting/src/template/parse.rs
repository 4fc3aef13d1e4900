//! The parser: Go's `text/template/parse/parse.go`, recursive descent
//! over the tokens, with the same checks at parse time (functions must
//! exist, variables must be declared, `break` only inside `range`).

use std::collections::BTreeMap;

use super::TEMPLATE_NESTING_DEPTH_MAX;
use super::funcs;
use super::lex::{self, Keyword, Tok, Token};

/// A parse error at a byte offset of the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ParseErr {
    pub(super) pos: usize,
    pub(super) msg: String,
}

/// The variables Prometheus declares before every alert template
/// (`{{$labels := .Labels}}...`), after `$` itself.
pub(super) const PRELUDE_VARS: [&str; 5] =
    ["$", "$labels", "$externalLabels", "$externalURL", "$value"];

/// A parsed template: the main list and the `define`d ones.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Tree {
    pub(super) root: Vec<Node>,
    pub(super) defines: BTreeMap<String, Vec<Node>>,
}

/// A node of a list.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Node {
    Text(String),
    /// `{{pipeline}}`
    Action(Pipe),
    /// `{{if}}`, `{{with}}`, `{{range}}`: the pipeline, the list and the
    /// `else` list.
    Control {
        kind: ControlKind,
        pipe: Pipe,
        list: Vec<Node>,
        else_list: Option<Vec<Node>>,
    },
    /// `{{template "name" pipeline}}`
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

/// Which control structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ControlKind {
    If,
    With,
    Range,
}

/// A pipeline: optional declarations and commands joined by `|`.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Pipe {
    pub(super) pos: usize,
    /// Declared or assigned variables (with `$`).
    pub(super) decl: Vec<String>,
    /// `=` rather than `:=`.
    pub(super) is_assign: bool,
    pub(super) cmds: Vec<Cmd>,
}

/// A command: a function or value and its arguments.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Cmd {
    /// Byte range of the command in the text, for error messages.
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) args: Vec<Arg>,
}

/// An operand.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Arg {
    /// A function name.
    Ident(String),
    Dot,
    Nil,
    Bool(bool),
    Number(Number),
    Str(String),
    /// `.A.B` on dot.
    Field(Vec<String>),
    /// `$x.A.B`
    Var(String, Vec<String>),
    /// `(pipeline).A.B` or `fn.A`.
    Chain(Box<Arg>, Vec<String>),
    /// `(pipeline)`
    Pipe(Box<Pipe>),
}

/// A number literal, typed as Go's `idealConstant` types it: a float if
/// written with `.`, `e` or `p` (and not a hex integer), else an int.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Number {
    pub(super) text: String,
    pub(super) value: NumValue,
}

/// The value of a number literal.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum NumValue {
    Int(i64),
    Float(f64),
    /// Fits no int64: an error where it is used, as in Go.
    Overflow,
}

/// What ended a list.
enum ListEnd {
    End,
    Else,
}

/// Result of one action.
enum Item {
    Node(Node),
    End,
    Else,
}

/// Parses `text`, whose `{{` the caller has seen (text without actions
/// parses too, into one text node).
pub(super) fn parse(text: &str) -> Result<Tree, ParseErr> {
    let toks = lex::lex(text)?;
    let mut p = Parser {
        toks,
        idx: 0,
        vars: PRELUDE_VARS.iter().map(|v| (*v).to_string()).collect(),
        range_depth: 0,
        depth: 0,
        defines: BTreeMap::new(),
    };
    let root = p.parse_top()?;
    Ok(Tree {
        root,
        defines: p.defines,
    })
}

struct Parser {
    toks: Vec<Token>,
    idx: usize,
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
    defines: BTreeMap<String, Vec<Node>>,
}

/// The token at the end of the stream (never read past).
const EOF: Token = Token {
    tok: Tok::Eof,
    pos: 0,
};

impl Parser {
    fn peek(&self) -> &Token {
        self.toks.get(self.idx).or(self.toks.last()).unwrap_or(&EOF)
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.idx < self.toks.len() {
            self.idx += 1;
        }
        t
    }

    fn skip_spaces(&mut self) {
        while self.peek().tok == Tok::Space {
            self.idx += 1;
        }
    }

    fn peek_non_space(&mut self) -> &Token {
        self.skip_spaces();
        self.peek()
    }

    fn next_non_space(&mut self) -> Token {
        self.skip_spaces();
        self.next()
    }

    fn backup(&mut self) {
        self.idx = self.idx.saturating_sub(1);
    }

    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> Result<T, ParseErr> {
        Err(ParseErr {
            pos,
            msg: msg.into(),
        })
    }

    fn unexpected<T>(&self, t: &Token, context: &str) -> Result<T, ParseErr> {
        if t.tok == Tok::Eof {
            return self.err(t.pos, format!("unexpected EOF in {context}"));
        }
        self.err(
            t.pos,
            format!("unexpected {} in {context}", t.tok.describe()),
        )
    }

    fn expect_right_delim(&mut self, context: &str) -> Result<(), ParseErr> {
        let t = self.next_non_space();
        if t.tok != Tok::RightDelim {
            return self.unexpected(&t, context);
        }
        Ok(())
    }

    /// Counts one level of nesting; refuses more than the limit.
    fn enter(&mut self, pos: usize) -> Result<(), ParseErr> {
        self.depth += 1;
        if self.depth > TEMPLATE_NESTING_DEPTH_MAX {
            return self.err(
                pos,
                format!("nesting deeper than {TEMPLATE_NESTING_DEPTH_MAX} levels"),
            );
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn parse_top(&mut self) -> Result<Vec<Node>, ParseErr> {
        let mut root = Vec::new();
        loop {
            let t = self.peek().clone();
            match t.tok {
                Tok::Eof => return Ok(root),
                Tok::LeftDelim => {
                    let save = self.idx;
                    self.next();
                    if self.next_non_space().tok == Tok::Keyword(Keyword::Define) {
                        self.parse_definition(t.pos)?;
                        continue;
                    }
                    self.idx = save;
                }
                _ => {}
            }
            match self.text_or_action()? {
                Item::Node(n) => root.push(n),
                Item::End => return self.err(t.pos, "unexpected {{end}}"),
                Item::Else => return self.err(t.pos, "unexpected {{else}}"),
            }
        }
    }

    /// `{{define "name"}} ... {{end}}`, after `define`.
    fn parse_definition(&mut self, pos: usize) -> Result<(), ParseErr> {
        let context = "define clause";
        let t = self.next_non_space();
        let Tok::Str(name) = t.tok else {
            return self.unexpected(&t, context);
        };
        self.expect_right_delim(context)?;
        let body = self.parse_body(pos, context)?;
        self.add_define(pos, name, body)
    }

    /// A `define` or `block` body: its own variables (`$` only) and no
    /// enclosing `range`.
    fn parse_body(&mut self, pos: usize, context: &str) -> Result<Vec<Node>, ParseErr> {
        self.enter(pos)?;
        let vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let range_depth = std::mem::replace(&mut self.range_depth, 0);
        let result = self.item_list();
        self.vars = vars;
        self.range_depth = range_depth;
        self.leave();
        let (list, end) = result?;
        if let ListEnd::Else = end {
            return self.err(pos, format!("unexpected {{{{else}}}} in {context}"));
        }
        Ok(list)
    }

    fn add_define(&mut self, pos: usize, name: String, body: Vec<Node>) -> Result<(), ParseErr> {
        if self.defines.contains_key(&name) {
            return self.err(pos, format!("multiple definition of template {name:?}"));
        }
        self.defines.insert(name, body);
        Ok(())
    }

    /// Nodes up to `{{end}}` or `{{else}}`.
    fn item_list(&mut self) -> Result<(Vec<Node>, ListEnd), ParseErr> {
        let mut list = Vec::new();
        loop {
            if self.peek().tok == Tok::Eof {
                let pos = self.peek().pos;
                return self.err(pos, "unexpected EOF");
            }
            match self.text_or_action()? {
                Item::Node(n) => list.push(n),
                Item::End => return Ok((list, ListEnd::End)),
                Item::Else => return Ok((list, ListEnd::Else)),
            }
        }
    }

    fn text_or_action(&mut self) -> Result<Item, ParseErr> {
        let t = self.next_non_space();
        match t.tok {
            Tok::Text(s) => Ok(Item::Node(Node::Text(s))),
            Tok::LeftDelim => self.action(),
            _ => self.unexpected(&t, "input"),
        }
    }

    /// After `{{`.
    fn action(&mut self) -> Result<Item, ParseErr> {
        let t = self.next_non_space();
        match t.tok {
            Tok::Keyword(Keyword::Block) => self.block_control(t.pos).map(Item::Node),
            Tok::Keyword(Keyword::Break) => self
                .loop_control(t.pos, "break")
                .map(|()| Item::Node(Node::Break)),
            Tok::Keyword(Keyword::Continue) => self
                .loop_control(t.pos, "continue")
                .map(|()| Item::Node(Node::Continue)),
            Tok::Keyword(Keyword::Else) => {
                // `{{else if ...` and `{{else with ...` leave the keyword
                // for the enclosing control.
                if !matches!(
                    self.peek_non_space().tok,
                    Tok::Keyword(Keyword::If | Keyword::With)
                ) {
                    self.expect_right_delim("else")?;
                }
                Ok(Item::Else)
            }
            Tok::Keyword(Keyword::End) => {
                self.expect_right_delim("end")?;
                Ok(Item::End)
            }
            Tok::Keyword(Keyword::If) => self.control(t.pos, ControlKind::If).map(Item::Node),
            Tok::Keyword(Keyword::Range) => self.control(t.pos, ControlKind::Range).map(Item::Node),
            Tok::Keyword(Keyword::With) => self.control(t.pos, ControlKind::With).map(Item::Node),
            Tok::Keyword(Keyword::Template) => self.template_control().map(Item::Node),
            _ => {
                self.backup();
                let pipe = self.pipeline("command", &Tok::RightDelim)?;
                Ok(Item::Node(Node::Action(pipe)))
            }
        }
    }

    fn loop_control(&mut self, pos: usize, name: &str) -> Result<(), ParseErr> {
        let t = self.next_non_space();
        if t.tok != Tok::RightDelim {
            return self.unexpected(&t, &format!("{{{{{name}}}}}"));
        }
        if self.range_depth == 0 {
            return self.err(pos, format!("{{{{{name}}}}} outside {{{{range}}}}"));
        }
        Ok(())
    }

    /// `if`, `with` or `range`, after the keyword.
    fn control(&mut self, pos: usize, kind: ControlKind) -> Result<Node, ParseErr> {
        self.enter(pos)?;
        let vars = self.vars.len();
        let result = self.control_inner(kind);
        self.vars.truncate(vars);
        self.leave();
        result
    }

    fn control_inner(&mut self, kind: ControlKind) -> Result<Node, ParseErr> {
        let context = match kind {
            ControlKind::If => "if",
            ControlKind::With => "with",
            ControlKind::Range => "range",
        };
        let pipe = self.pipeline(context, &Tok::RightDelim)?;
        if kind == ControlKind::Range {
            self.range_depth += 1;
        }
        let listed = self.item_list();
        if kind == ControlKind::Range {
            self.range_depth -= 1;
        }
        let (list, end) = listed?;
        let else_list = match end {
            ListEnd::End => None,
            ListEnd::Else => {
                let next = self.peek_non_space().clone();
                match (kind, &next.tok) {
                    // `{{else if}}` is `{{else}}{{if}}...{{end}}{{end}}`
                    // with one shared `{{end}}`.
                    (ControlKind::If, Tok::Keyword(Keyword::If)) => {
                        self.next_non_space();
                        Some(vec![self.control(next.pos, ControlKind::If)?])
                    }
                    (ControlKind::With, Tok::Keyword(Keyword::With)) => {
                        self.next_non_space();
                        Some(vec![self.control(next.pos, ControlKind::With)?])
                    }
                    (_, Tok::Keyword(_)) => return self.unexpected(&next, "else"),
                    _ => {
                        let (list, end) = self.item_list()?;
                        if let ListEnd::Else = end {
                            return self.err(next.pos, "expected end; found {{else}}");
                        }
                        Some(list)
                    }
                }
            }
        };
        Ok(Node::Control {
            kind,
            pipe,
            list,
            else_list,
        })
    }

    /// `{{template "name" pipeline}}`, after `template`.
    fn template_control(&mut self) -> Result<Node, ParseErr> {
        let context = "template clause";
        let t = self.next_non_space();
        let Tok::Str(name) = t.tok else {
            return self.unexpected(&t, context);
        };
        let pipe = if self.peek_non_space().tok == Tok::RightDelim {
            self.next_non_space();
            None
        } else {
            Some(self.pipeline(context, &Tok::RightDelim)?)
        };
        Ok(Node::Template {
            pos: t.pos,
            name,
            pipe,
        })
    }

    /// `{{block "name" pipeline}} ... {{end}}`: a define and a template.
    fn block_control(&mut self, pos: usize) -> Result<Node, ParseErr> {
        let context = "block clause";
        let t = self.next_non_space();
        let Tok::Str(name) = t.tok else {
            return self.unexpected(&t, context);
        };
        let pipe = self.pipeline(context, &Tok::RightDelim)?;
        let body = self.parse_body(pos, context)?;
        self.add_define(pos, name.clone(), body)?;
        Ok(Node::Template {
            pos,
            name,
            pipe: Some(pipe),
        })
    }

    /// A pipeline up to `end` (`}}` or `)`), which it consumes.
    fn pipeline(&mut self, context: &str, end: &Tok) -> Result<Pipe, ParseErr> {
        let pos = self.peek_non_space().pos;
        let mut pipe = Pipe {
            pos,
            decl: Vec::new(),
            is_assign: false,
            cmds: Vec::new(),
        };
        // Declarations: `$x :=`, `$x =`, `$i, $e :=` (range only).
        loop {
            let save = self.idx;
            let Tok::Variable(v) = self.peek_non_space().tok.clone() else {
                break;
            };
            let var_pos = self.next_non_space().pos;
            match self.peek_non_space().tok {
                Tok::Assign | Tok::Declare => {
                    pipe.is_assign = self.next_non_space().tok == Tok::Assign;
                    if pipe.is_assign && !self.vars.contains(&v) {
                        return self.err(var_pos, format!("undefined variable {v:?}"));
                    }
                    pipe.decl.push(v.clone());
                    self.vars.push(v);
                    break;
                }
                Tok::Char(',') => {
                    self.next_non_space();
                    pipe.decl.push(v.clone());
                    self.vars.push(v);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().tok {
                            Tok::Variable(_) | Tok::RightDelim | Tok::RightParen => continue,
                            _ => {
                                return self.err(var_pos, "range can only initialize variables");
                            }
                        }
                    }
                    return self.err(var_pos, format!("too many declarations in {context}"));
                }
                _ => {
                    self.idx = save;
                    break;
                }
            }
        }
        loop {
            let t = self.next_non_space();
            if &t.tok == end {
                return self.check_pipeline(pipe, context, t.pos);
            }
            match t.tok {
                Tok::Bool(_)
                | Tok::CharConst(..)
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Ident(_)
                | Tok::Number(_)
                | Tok::Nil
                | Tok::Str(_)
                | Tok::Variable(_)
                | Tok::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&t, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: Pipe, context: &str, pos: usize) -> Result<Pipe, ParseErr> {
        if pipe.cmds.is_empty() {
            return self.err(pos, format!("missing value for {context}"));
        }
        for (i, cmd) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                cmd.args.first(),
                Some(Arg::Bool(_) | Arg::Dot | Arg::Nil | Arg::Number(_) | Arg::Str(_))
            ) {
                return self.err(
                    cmd.start,
                    format!("non executable command in pipeline stage {}", i + 1),
                );
            }
        }
        Ok(pipe)
    }

    fn command(&mut self) -> Result<Cmd, ParseErr> {
        let start = self.peek_non_space().pos;
        let mut args = Vec::new();
        let end;
        loop {
            self.skip_spaces();
            if let Some(op) = self.operand()? {
                args.push(op);
            }
            let t = self.next();
            match t.tok {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RightParen => {
                    self.backup();
                    end = t.pos;
                }
                Tok::Pipe => end = t.pos,
                _ => return self.unexpected(&t, "operand"),
            }
            break;
        }
        if args.is_empty() {
            return self.err(start, "empty command");
        }
        Ok(Cmd { start, end, args })
    }

    fn operand(&mut self) -> Result<Option<Arg>, ParseErr> {
        let Some(term) = self.term()? else {
            return Ok(None);
        };
        let mut fields = Vec::new();
        while let Tok::Field(f) = &self.peek().tok {
            fields.push(f.clone());
            self.next();
        }
        if fields.is_empty() {
            return Ok(Some(term));
        }
        Ok(Some(match term {
            Arg::Field(mut first) => {
                first.extend(fields);
                Arg::Field(first)
            }
            Arg::Var(name, mut first) => {
                first.extend(fields);
                Arg::Var(name, first)
            }
            Arg::Bool(_) | Arg::Str(_) | Arg::Number(_) | Arg::Nil | Arg::Dot => {
                let pos = self.peek().pos;
                return self.err(pos, "unexpected . after term");
            }
            other => Arg::Chain(Box::new(other), fields),
        }))
    }

    fn term(&mut self) -> Result<Option<Arg>, ParseErr> {
        let t = self.next_non_space();
        let arg = match t.tok {
            Tok::Ident(name) => {
                if !funcs::is_function(&name) {
                    return self.err(t.pos, format!("function {name:?} not defined"));
                }
                Arg::Ident(name)
            }
            Tok::Dot => Arg::Dot,
            Tok::Nil => Arg::Nil,
            Tok::Variable(name) => {
                if !self.vars.contains(&name) {
                    return self.err(t.pos, format!("undefined variable {name:?}"));
                }
                Arg::Var(name, Vec::new())
            }
            Tok::Field(f) => Arg::Field(vec![f]),
            Tok::Bool(b) => Arg::Bool(b),
            Tok::Number(text) => {
                Arg::Number(parse_number(&text).map_err(|msg| ParseErr { pos: t.pos, msg })?)
            }
            Tok::CharConst(v, text) => Arg::Number(Number {
                text,
                value: NumValue::Int(v),
            }),
            Tok::LeftParen => {
                self.enter(t.pos)?;
                let pipe = self.pipeline("parenthesized pipeline", &Tok::RightParen);
                self.leave();
                Arg::Pipe(Box::new(pipe?))
            }
            Tok::Str(s) => Arg::Str(s),
            _ => {
                self.backup();
                return Ok(None);
            }
        };
        Ok(Some(arg))
    }
}

/// Go's `parse.NewNumber` plus `idealConstant`'s typing.
fn parse_number(text: &str) -> Result<Number, String> {
    let illegal = || format!("illegal number syntax: {text:?}");
    if text.ends_with('i') {
        return Err(format!("complex numbers are not supported: {text:?}"));
    }
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let lower = body.to_ascii_lowercase();
    let radix_int = if let Some(h) = lower.strip_prefix("0x") {
        Some((h.to_string(), 16))
    } else if let Some(o) = lower.strip_prefix("0o") {
        Some((o.to_string(), 8))
    } else if let Some(b) = lower.strip_prefix("0b") {
        Some((b.to_string(), 2))
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit())
    {
        Some((lower.get(1..).unwrap_or("").to_string(), 8))
    } else if !lower.is_empty() && lower.bytes().all(|c| c.is_ascii_digit()) {
        Some((lower.clone(), 10))
    } else {
        None
    };
    if let Some((digits, radix)) = radix_int {
        if radix == 16 && digits.contains(['.', 'p']) {
            return Err(format!("hexadecimal floats are not supported: {text:?}"));
        }
        if digits.is_empty() {
            return Err(illegal());
        }
        let value = match u64::from_str_radix(&digits, radix) {
            Ok(u) => {
                let signed = if neg {
                    0i64.checked_sub_unsigned(u)
                } else {
                    i64::try_from(u).ok()
                };
                match signed {
                    Some(i) => NumValue::Int(i),
                    None => NumValue::Overflow,
                }
            }
            Err(_) => return Err(format!("integer overflow: {text:?}")),
        };
        return Ok(Number {
            text: text.to_string(),
            value,
        });
    }
    let f: f64 = clean.parse().map_err(|_| illegal())?;
    if !f.is_finite() {
        return Err(illegal());
    }
    Ok(Number {
        text: text.to_string(),
        value: NumValue::Float(f),
    })
}
