//! Matcher syntax: parsing as `amtool` and Alertmanager configs accept it,
//! display, and the round trip between them.

use proptest::prelude::*;
use raftwatch_alerting::LabelSet;
use raftwatch_alerting::matcher::{MatchOp, Matcher, MatcherError, parse_matcher, parse_matchers};

fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
    Matcher::new(name, op, value).expect("a valid matcher")
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn parses_each_operator_quoted_and_unquoted() {
    let cases = [
        ("foo=bar", m("foo", MatchOp::Eq, "bar")),
        ("foo=\"bar\"", m("foo", MatchOp::Eq, "bar")),
        ("foo!=bar", m("foo", MatchOp::Ne, "bar")),
        ("foo!=\"bar\"", m("foo", MatchOp::Ne, "bar")),
        ("foo=~bar.*", m("foo", MatchOp::Re, "bar.*")),
        ("foo=~\"bar.*\"", m("foo", MatchOp::Re, "bar.*")),
        ("foo!~bar", m("foo", MatchOp::Nre, "bar")),
        ("foo!~\"bar|baz\"", m("foo", MatchOp::Nre, "bar|baz")),
        ("  foo  =~  \"bar\"  ", m("foo", MatchOp::Re, "bar")),
        ("foo=", m("foo", MatchOp::Eq, "")),
        ("foo=\"\"", m("foo", MatchOp::Eq, "")),
        ("_a1=x", m("_a1", MatchOp::Eq, "x")),
        // Bare names are any run of unreserved characters, as in
        // Alertmanager's UTF-8 matcher lexer.
        ("service.name=api", m("service.name", MatchOp::Eq, "api")),
        ("\"foo bar\"=baz", m("foo bar", MatchOp::Eq, "baz")),
        ("\"ünï,cödé\"!=\"x\"", m("ünï,cödé", MatchOp::Ne, "x")),
        // Unquoted values run to the end, trimmed, spaces inside kept
        // (Alertmanager's classic parser).
        ("foo=bar baz ", m("foo", MatchOp::Eq, "bar baz")),
        // The classic parser takes everything after the operator.
        ("foo==bar", m("foo", MatchOp::Eq, "=bar")),
        ("foo=~=~", m("foo", MatchOp::Re, "=~")),
    ];
    for (text, want) in cases {
        assert_eq!(parse_matcher(text), Ok(want), "{text}");
    }
}

#[test]
fn escapes_follow_the_classic_parser() {
    let cases = [
        (r#"a="x\"y""#, "x\"y"),
        (r#"a="x\\y""#, "x\\y"),
        (r#"a="x\ny""#, "x\ny"),
        // Any other backslash is kept, so regex escapes need no doubling.
        (r#"a="x\dy""#, "x\\dy"),
        (r#"a="\t""#, "\\t"),
        (r#"a=x\"y"#, "x\"y"),
        (r#"a=x\"#, "x\\"),
        (r#"a="a,b""#, "a,b"),
        (r#"a="{}""#, "{}"),
    ];
    for (text, want) in cases {
        assert_eq!(parse_matcher(text).unwrap().value, want, "{text}");
    }
    let re = parse_matcher(r#"instance=~"host\d+\.example""#).unwrap();
    assert!(re.matches(&labels(&[("instance", "host12.example")])));
    assert!(!re.matches(&labels(&[("instance", "hostX.example")])));
}

#[test]
fn refuses_malformed_matchers() {
    let cases = [
        "",
        "   ",
        "foo",
        "=bar",
        "foo~=bar",
        "foo!bar",
        "foo=\"bar",
        "foo=\"bar\"baz",
        "foo=\"bar\" \"baz\"",
        "foo=bar\"baz",
        "\"foo=bar",
        "\"\"=bar",
        "foo bar=baz",
        "{foo=bar}",
    ];
    for text in cases {
        assert!(
            matches!(
                parse_matcher(text),
                Err(MatcherError::Syntax { .. } | MatcherError::Name(_))
            ),
            "{text:?} gave {:?}",
            parse_matcher(text)
        );
    }
    let e = parse_matcher("foo=~\"(\"").unwrap_err();
    assert!(
        matches!(e, MatcherError::Regex { ref name, ref regex, .. } if name == "foo" && regex == "(")
    );
    assert!(e.to_string().contains("bad regular expression"), "{e}");
    let e = parse_matcher("foo=\"bar").unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad matcher \"foo=\\\"bar\": unterminated quoted value"
    );
}

#[test]
fn parses_lists_with_and_without_braces() {
    let want = vec![m("a", MatchOp::Eq, "b"), m("c", MatchOp::Re, "d|e")];
    for text in [
        "{a=\"b\", c=~\"d|e\"}",
        "a=\"b\",c=~\"d|e\"",
        " { a = b , c =~ d|e } ",
        "a=b,c=~\"d|e\",",
        "{a=b,c=~d|e,}",
    ] {
        assert_eq!(parse_matchers(text), Ok(want.clone()), "{text}");
    }
    assert_eq!(parse_matchers(""), Ok(vec![]));
    assert_eq!(parse_matchers("{}"), Ok(vec![]));
    assert_eq!(parse_matchers(" { } "), Ok(vec![]));
    assert_eq!(
        parse_matchers(r#"{msg="a, b", "x,y"!="}{"}"#),
        Ok(vec![
            m("msg", MatchOp::Eq, "a, b"),
            m("x,y", MatchOp::Ne, "}{")
        ])
    );
    assert_eq!(
        parse_matchers(r#"a="q\",r", b=c"#),
        Ok(vec![m("a", MatchOp::Eq, "q\",r"), m("b", MatchOp::Eq, "c")])
    );
    // As in Alertmanager, only the outer braces are the list's.
    assert_eq!(
        parse_matchers("{a=b}}"),
        Ok(vec![m("a", MatchOp::Eq, "b}")])
    );
    for bad in ["{a=b", "a=b,,c=d", ",", "{,}", "a=b, ,", "a=b,c"] {
        assert!(
            parse_matchers(bad).is_err(),
            "{bad:?} gave {:?}",
            parse_matchers(bad)
        );
    }
}

#[test]
fn displays_like_alertmanager() {
    assert_eq!(m("foo", MatchOp::Eq, "bar").to_string(), r#"foo="bar""#);
    assert_eq!(m("foo", MatchOp::Ne, "bar").to_string(), r#"foo!="bar""#);
    assert_eq!(m("foo", MatchOp::Re, "b.*").to_string(), r#"foo=~"b.*""#);
    assert_eq!(m("foo", MatchOp::Nre, "b").to_string(), r#"foo!~"b""#);
    assert_eq!(
        m("foo", MatchOp::Eq, "a\"b\\c\nd").to_string(),
        r#"foo="a\"b\\c\nd""#
    );
    assert_eq!(
        m("foo bar", MatchOp::Eq, "x").to_string(),
        r#""foo bar"="x""#
    );
    assert_eq!(
        m("service.name", MatchOp::Eq, "x").to_string(),
        r#"service.name="x""#
    );
    assert_eq!(MatchOp::Nre.to_string(), "!~");
}

#[test]
fn api_v2_serde_shape_is_kept() {
    let json = serde_json::to_value(m("job", MatchOp::Nre, "a.*")).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"name": "job", "value": "a.*", "isRegex": true, "isEqual": false})
    );
    let back: Matcher =
        serde_json::from_str(r#"{"name":"job","value":"x","isRegex":false}"#).unwrap();
    assert_eq!(back, m("job", MatchOp::Eq, "x"));
}

fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
        "[ -~]{1,8}",
        "[a-z \"\\\\,{}=!~'`\n\t]{1,8}",
        "\\PC{1,6}",
        any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
    ]
}

fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.*|]{0,8}",
        "[ -~]{0,8}",
        "[a-z \"\\\\,{}=!~\n\r\t]{0,8}",
        any::<String>(),
    ]
}

fn any_op() -> impl Strategy<Value = MatchOp> {
    prop_oneof![
        Just(MatchOp::Eq),
        Just(MatchOp::Ne),
        Just(MatchOp::Re),
        Just(MatchOp::Nre)
    ]
}

fn any_matcher() -> impl Strategy<Value = Matcher> {
    (any_name(), any_op(), any_value()).prop_filter_map("the regex must compile", |(n, op, v)| {
        Matcher::new(n, op, v).ok()
    })
}

proptest! {
    #[test]
    fn display_then_parse_is_identity(matcher in any_matcher()) {
        let text = matcher.to_string();
        prop_assert_eq!(parse_matcher(&text), Ok(matcher.clone()), "text {:?}", text);
    }

    #[test]
    fn list_display_then_parse_is_identity(
        matchers in proptest::collection::vec(any_matcher(), 0..5),
        braces in any::<bool>(),
    ) {
        let joined = matchers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let text = if braces { format!("{{{joined}}}") } else { joined };
        prop_assert_eq!(parse_matchers(&text), Ok(matchers), "text {:?}", text);
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse_matcher(&text);
        let _ = parse_matchers(&text);
    }

    #[test]
    fn parsing_matcher_like_text_never_panics(text in "[a-z\"\\\\ ,{}=!~.*()\\[\\]]{0,24}") {
        if let Ok(ms) = parse_matchers(&text) {
            // Whatever parses displays to something that parses back alike.
            let again = ms.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
            prop_assert_eq!(parse_matchers(&again), Ok(ms));
        }
        let _ = parse_matcher(&text);
    }
}
