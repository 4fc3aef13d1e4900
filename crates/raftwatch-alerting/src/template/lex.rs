//! The lexer: Go's `text/template/parse/lex.go`, run to completion.
//!
//! Trim markers (`{{- ` and ` -}}`) are applied here, to the text next
//! to them, and comments (`{{/* */}}`) are dropped, as Go's parser does
//! without `ParseComments`.

use super::parse::ParseErr;

/// A keyword inside an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Keyword {
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
}

/// A token.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    /// Plain text between actions (already trimmed).
    Text(String),
    /// `{{` (with its trim marker, if any).
    LeftDelim,
    /// `}}` (with its trim marker, if any).
    RightDelim,
    /// A run of spaces inside an action.
    Space,
    Bool(bool),
    /// A number's text, as written.
    Number(String),
    /// A character constant's value (`'a'`).
    CharConst(i64, String),
    /// A quoted or raw string's value.
    Str(String),
    /// `.`
    Dot,
    /// `.Name` (without the dot).
    Field(String),
    /// `$name` (with the `$`).
    Variable(String),
    /// A function name.
    Ident(String),
    Keyword(Keyword),
    Nil,
    /// `|`
    Pipe,
    /// `=`
    Assign,
    /// `:=`
    Declare,
    LeftParen,
    RightParen,
    /// Another printable ASCII character (`,` is the one with a use).
    Char(char),
    Eof,
}

impl Tok {
    /// How Go's parser names the token in "unexpected ..." messages.
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Text(t) => format!("{t:?}"),
            Tok::LeftDelim => "\"{{\"".to_string(),
            Tok::RightDelim => "\"}}\"".to_string(),
            Tok::Space => "space".to_string(),
            Tok::Bool(b) => format!("{b:?}"),
            Tok::Number(n) => format!("{n:?}"),
            Tok::CharConst(_, text) => text.clone(),
            Tok::Str(s) => format!("{s:?}"),
            Tok::Dot => "\".\"".to_string(),
            Tok::Field(f) => format!("\".{f}\""),
            Tok::Variable(v) => format!("{v:?}"),
            Tok::Ident(i) => format!("{i:?}"),
            Tok::Keyword(k) => format!("<{}>", keyword_name(*k)),
            Tok::Nil => "<nil>".to_string(),
            Tok::Pipe => "\"|\"".to_string(),
            Tok::Assign => "\"=\"".to_string(),
            Tok::Declare => "\":=\"".to_string(),
            Tok::LeftParen => "\"(\"".to_string(),
            Tok::RightParen => "\")\"".to_string(),
            Tok::Char(c) => format!("{c:?}"),
            Tok::Eof => "EOF".to_string(),
        }
    }
}

/// The keyword's spelling.
pub(super) fn keyword_name(k: Keyword) -> &'static str {
    match k {
        Keyword::Block => "block",
        Keyword::Break => "break",
        Keyword::Continue => "continue",
        Keyword::Define => "define",
        Keyword::Else => "else",
        Keyword::End => "end",
        Keyword::If => "if",
        Keyword::Range => "range",
        Keyword::Template => "template",
        Keyword::With => "with",
    }
}

/// A token and the byte offset where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) pos: usize,
}

/// Go's `isSpace`: space, tab, carriage return, newline.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Go's `isAlphaNumeric`.
fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Splits `src` into tokens; the last is always `Eof`.
pub(super) fn lex(src: &str) -> Result<Vec<Token>, ParseErr> {
    let mut lexer = Lexer {
        src,
        pos: 0,
        toks: Vec::new(),
        paren_depth: 0,
    };
    lexer.run()?;
    Ok(lexer.toks)
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    toks: Vec<Token>,
    paren_depth: usize,
}

impl Lexer<'_> {
    fn push(&mut self, tok: Tok, pos: usize) {
        self.toks.push(Token { tok, pos });
    }

    fn rest(&self, at: usize) -> &str {
        self.src.get(at..).unwrap_or("")
    }

    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> Result<T, ParseErr> {
        Err(ParseErr {
            pos,
            msg: msg.into(),
        })
    }

    /// At `at`, the right delimiter: its length and whether it trims
    /// (` -}}`).
    fn at_right_delim(&self, at: usize) -> Option<(usize, bool)> {
        let rest = self.rest(at);
        if rest.starts_with("}}") {
            return Some((2, false));
        }
        let mut chars = rest.chars();
        if chars.next().is_some_and(is_space) && rest.get(1..).is_some_and(|r| r.starts_with("-}}"))
        {
            return Some((4, true));
        }
        None
    }

    fn run(&mut self) -> Result<(), ParseErr> {
        let mut trim_next = false;
        loop {
            let found = self.rest(self.pos).find("{{").map(|i| self.pos + i);
            let text_end = found.unwrap_or(self.src.len());
            let mut text = self.src.get(self.pos..text_end).unwrap_or("");
            if trim_next {
                text = text.trim_start_matches(is_space);
            }
            let Some(delim) = found else {
                if !text.is_empty() {
                    self.push(Tok::Text(text.to_string()), self.pos);
                }
                self.push(Tok::Eof, self.src.len());
                return Ok(());
            };
            let after = delim + 2;
            let after_rest = self.rest(after);
            let left_trim = after_rest.starts_with('-')
                && after_rest.get(1..).is_some_and(|r| r.starts_with(is_space));
            if left_trim {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                self.push(Tok::Text(text.to_string()), self.pos);
            }
            let inside = if left_trim { after + 2 } else { after };
            if self.rest(inside).starts_with("/*") {
                let body = inside + 2;
                let Some(end) = self.rest(body).find("*/") else {
                    return self.err(delim, "unclosed comment");
                };
                let close = body + end + 2;
                let Some((len, trim)) = self.at_right_delim(close) else {
                    return self.err(delim, "comment ends before closing delimiter");
                };
                self.pos = close + len;
                trim_next = trim;
                continue;
            }
            self.push(Tok::LeftDelim, delim);
            self.pos = inside;
            trim_next = self.lex_action(delim)?;
        }
    }

    /// Lexes the inside of an action up to and including its right
    /// delimiter; returns whether that trims the following text.
    fn lex_action(&mut self, open: usize) -> Result<bool, ParseErr> {
        loop {
            if let Some((len, trim)) = self.at_right_delim(self.pos) {
                if self.paren_depth > 0 {
                    return self.err(self.pos, "unclosed left paren");
                }
                self.push(Tok::RightDelim, self.pos);
                self.pos += len;
                return Ok(trim);
            }
            let start = self.pos;
            let Some(c) = self.rest(start).chars().next() else {
                return self.err(open, "unclosed action");
            };
            match c {
                c if is_space(c) => {
                    // Leave the space of a ` -}}` to the delimiter.
                    while let Some(c) = self.rest(self.pos).chars().next() {
                        if !is_space(c) || self.at_right_delim(self.pos).is_some() {
                            break;
                        }
                        self.pos += c.len_utf8();
                    }
                    if self.pos > start {
                        self.push(Tok::Space, start);
                    }
                }
                '=' => {
                    self.pos += 1;
                    self.push(Tok::Assign, start);
                }
                ':' => {
                    if !self.rest(start + 1).starts_with('=') {
                        return self.err(start, "expected :=");
                    }
                    self.pos += 2;
                    self.push(Tok::Declare, start);
                }
                '|' => {
                    self.pos += 1;
                    self.push(Tok::Pipe, start);
                }
                '"' => self.lex_quote(start)?,
                '`' => {
                    let Some(end) = self.rest(start + 1).find('`') else {
                        return self.err(start, "unterminated raw quoted string");
                    };
                    let value = self
                        .rest(start + 1)
                        .get(..end)
                        .unwrap_or("")
                        .replace('\r', "");
                    self.pos = start + 1 + end + 1;
                    self.push(Tok::Str(value), start);
                }
                '\'' => self.lex_char(start)?,
                '$' => {
                    self.pos += 1;
                    self.scan_alnum();
                    let name = self.src.get(start..self.pos).unwrap_or("$").to_string();
                    self.check_terminator()?;
                    self.push(Tok::Variable(name), start);
                }
                '.' => {
                    if self
                        .rest(start + 1)
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_digit())
                    {
                        self.lex_number(start)?;
                    } else {
                        self.pos += 1;
                        self.scan_alnum();
                        let name = self.src.get(start + 1..self.pos).unwrap_or("");
                        let tok = if name.is_empty() {
                            Tok::Dot
                        } else {
                            Tok::Field(name.to_string())
                        };
                        self.check_terminator()?;
                        self.push(tok, start);
                    }
                }
                '+' | '-' | '0'..='9' => self.lex_number(start)?,
                c if c == '_' || c.is_alphabetic() => {
                    self.scan_alnum();
                    let word = self.src.get(start..self.pos).unwrap_or("");
                    self.check_terminator()?;
                    let tok = match word {
                        "block" => Tok::Keyword(Keyword::Block),
                        "break" => Tok::Keyword(Keyword::Break),
                        "continue" => Tok::Keyword(Keyword::Continue),
                        "define" => Tok::Keyword(Keyword::Define),
                        "else" => Tok::Keyword(Keyword::Else),
                        "end" => Tok::Keyword(Keyword::End),
                        "if" => Tok::Keyword(Keyword::If),
                        "range" => Tok::Keyword(Keyword::Range),
                        "template" => Tok::Keyword(Keyword::Template),
                        "with" => Tok::Keyword(Keyword::With),
                        "nil" => Tok::Nil,
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        w => Tok::Ident(w.to_string()),
                    };
                    self.push(tok, start);
                }
                '(' => {
                    self.pos += 1;
                    self.paren_depth += 1;
                    self.push(Tok::LeftParen, start);
                }
                ')' => {
                    if self.paren_depth == 0 {
                        return self.err(start, "unexpected right paren");
                    }
                    self.pos += 1;
                    self.paren_depth -= 1;
                    self.push(Tok::RightParen, start);
                }
                c if c.is_ascii() && !c.is_ascii_control() => {
                    self.pos += 1;
                    self.push(Tok::Char(c), start);
                }
                c => {
                    return self.err(start, format!("unrecognized character in action: {c:?}"));
                }
            }
        }
    }

    fn scan_alnum(&mut self) {
        while let Some(c) = self.rest(self.pos).chars().next() {
            if !is_alnum(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    /// Go's `atTerminator`: what may follow a word.
    fn check_terminator(&self) -> Result<(), ParseErr> {
        match self.rest(self.pos).chars().next() {
            None => Ok(()),
            Some(c) if is_space(c) || matches!(c, '.' | ',' | '|' | ':' | ')' | '(') => Ok(()),
            Some(_) if self.rest(self.pos).starts_with("}}") => Ok(()),
            Some(c) => self.err(self.pos, format!("bad character {c:?}")),
        }
    }

    /// Go's `scanNumber`; the text is interpreted by the parser.
    fn lex_number(&mut self, start: usize) -> Result<(), ParseErr> {
        let b = self.src.as_bytes();
        let mut i = start;
        let accept = |i: &mut usize, set: &[u8]| -> bool {
            if b.get(*i).is_some_and(|c| set.contains(c)) {
                *i += 1;
                true
            } else {
                false
            }
        };
        let accept_run = |i: &mut usize, set: &[u8]| {
            while b.get(*i).is_some_and(|c| set.contains(c)) {
                *i += 1;
            }
        };
        accept(&mut i, b"+-");
        let mut digits: &[u8] = b"0123456789_";
        if accept(&mut i, b"0") {
            if accept(&mut i, b"xX") {
                digits = b"0123456789abcdefABCDEF_";
            } else if accept(&mut i, b"oO") {
                digits = b"01234567_";
            } else if accept(&mut i, b"bB") {
                digits = b"01_";
            }
        }
        accept_run(&mut i, digits);
        if accept(&mut i, b".") {
            accept_run(&mut i, digits);
        }
        if digits.len() == 11 && accept(&mut i, b"eE") {
            accept(&mut i, b"+-");
            accept_run(&mut i, b"0123456789_");
        }
        if digits.len() == 23 && accept(&mut i, b"pP") {
            accept(&mut i, b"+-");
            accept_run(&mut i, b"0123456789_");
        }
        accept(&mut i, b"i");
        self.pos = i;
        let next_alnum = self.rest(i).chars().next().is_some_and(is_alnum);
        let text = self.src.get(start..i).unwrap_or("");
        if next_alnum || text == "+" || text == "-" || text == "." {
            let bad = match self.rest(i).chars().next() {
                Some(c) if next_alnum => format!("{text}{c}"),
                _ => text.to_string(),
            };
            return self.err(start, format!("bad number syntax: {bad:?}"));
        }
        self.push(Tok::Number(text.to_string()), start);
        Ok(())
    }

    /// A double-quoted string, unquoted as Go's `strconv.Unquote` does.
    fn lex_quote(&mut self, start: usize) -> Result<(), ParseErr> {
        let mut i = start + 1;
        let b = self.src.as_bytes();
        loop {
            match b.get(i) {
                None | Some(b'\n') => return self.err(start, "unterminated quoted string"),
                Some(b'\\') => {
                    if matches!(b.get(i + 1), None | Some(b'\n')) {
                        return self.err(start, "unterminated quoted string");
                    }
                    i += 2;
                }
                Some(b'"') => break,
                Some(_) => i += 1,
            }
        }
        let body = self.src.get(start + 1..i).unwrap_or("");
        let value = unescape(body, '"').map_err(|msg| ParseErr { pos: start, msg })?;
        self.pos = i + 1;
        self.push(Tok::Str(value), start);
        Ok(())
    }

    /// A character constant: a number whose value is the rune.
    fn lex_char(&mut self, start: usize) -> Result<(), ParseErr> {
        let mut i = start + 1;
        let b = self.src.as_bytes();
        loop {
            match b.get(i) {
                None | Some(b'\n') => return self.err(start, "unterminated character constant"),
                Some(b'\\') => {
                    if matches!(b.get(i + 1), None | Some(b'\n')) {
                        return self.err(start, "unterminated character constant");
                    }
                    i += 2;
                }
                Some(b'\'') => break,
                Some(_) => i += 1,
            }
        }
        let text = self.src.get(start..=i).unwrap_or("").to_string();
        let body = self.src.get(start + 1..i).unwrap_or("");
        let value = unescape(body, '\'').map_err(|msg| ParseErr { pos: start, msg })?;
        let mut chars = value.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return self.err(start, format!("malformed character constant: {text}"));
        };
        self.pos = i + 1;
        self.push(Tok::CharConst(i64::from(u32::from(c)), text), start);
        Ok(())
    }
}

/// Go's escapes in a quoted string or character constant body.
fn unescape(body: &str, quote: char) -> Result<String, String> {
    if !body.contains('\\') {
        return Ok(body.to_string());
    }
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    let invalid = || format!("invalid syntax in quoted string {body:?}");
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some(e) = chars.next() else {
            return Err(invalid());
        };
        let simple = match e {
            'a' => Some(7u8),
            'b' => Some(8),
            'f' => Some(12),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(11),
            '\\' => Some(b'\\'),
            '\'' | '"' if e == quote => Some(e as u8),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            continue;
        }
        match e {
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut v: u32 = 0;
                for _ in 0..n {
                    let d = chars
                        .next()
                        .and_then(|c| c.to_digit(16))
                        .ok_or_else(invalid)?;
                    v = v * 16 + d;
                }
                if e == 'x' {
                    out.push(u8::try_from(v).map_err(|_| invalid())?);
                } else {
                    let c = char::from_u32(v).ok_or_else(invalid)?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let d = chars
                        .next()
                        .and_then(|c| c.to_digit(8))
                        .ok_or_else(invalid)?;
                    v = v * 8 + d;
                }
                out.push(u8::try_from(v).map_err(|_| invalid())?);
            }
            _ => return Err(invalid()),
        }
    }
    // Go strings may hold any bytes; ours are UTF-8, so `\xff` and the
    // like become U+FFFD.
    Ok(String::from_utf8_lossy(&out).into_owned())
}
