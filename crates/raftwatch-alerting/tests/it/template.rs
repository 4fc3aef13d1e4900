//! Alert templates: Prometheus examples rendered as Prometheus renders
//! them, Go's error messages, limits, and a proptest that parsing and
//! rendering never panic.
//!
//! The proptests use proptest's defaults (a fresh random seed per run); a
//! failure prints the minimal failing input and persists it under
//! `proptest-regressions/`. Set `PROPTEST_RNG_SEED=<u64>` to replay a run
//! and `PROPTEST_CASES` to run more cases.

use proptest::prelude::*;
use raftwatch_alerting::LabelSet;
use raftwatch_alerting::template::{
    TEMPLATE_NESTING_DEPTH_MAX, TEMPLATE_TEXT_BYTES_MAX, Template, TemplateData, expand,
};

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn data() -> TemplateData {
    TemplateData {
        labels: labels(&[
            ("instance", "node1:9100"),
            ("job", "node"),
            ("severity", "critical"),
        ]),
        value: 0.75,
        external_labels: labels(&[("cluster", "eu1")]),
        external_url: "http://prom.example.com:9090/prometheus".to_string(),
    }
}

fn render(text: &str) -> Result<String, String> {
    expand("test", text, &data()).map_err(|e| e.message)
}

#[test]
fn renders_like_prometheus() {
    let cases: &[(&str, &str)] = &[
        // Text and the prelude's variables and fields.
        ("plain text, no actions", "plain text, no actions"),
        ("{{ $labels.instance }} is down", "node1:9100 is down"),
        ("{{ .Labels.job }}", "node"),
        ("[{{ $labels.missing }}]", "[]"),
        ("[{{ .Labels.missing }}]", "[]"),
        ("{{ $value }}", "0.75"),
        ("{{ .Value }}", "0.75"),
        ("{{ $externalLabels.cluster }}", "eu1"),
        ("{{ .ExternalLabels.cluster }}", "eu1"),
        (
            "{{ $externalURL }}",
            "http://prom.example.com:9090/prometheus",
        ),
        (
            "{{ .ExternalURL }}",
            "http://prom.example.com:9090/prometheus",
        ),
        ("{{ $.Labels.job }}", "node"),
        (
            "{{ $labels }}",
            "map[instance:node1:9100 job:node severity:critical]",
        ),
        (
            "{{ . }}",
            "{map[instance:node1:9100 job:node severity:critical] map[cluster:eu1] http://prom.example.com:9090/prometheus 0.75}",
        ),
        // Humanizing.
        ("{{ $value | humanize }}", "750m"),
        ("{{ humanize 1234567 }}", "1.235M"),
        ("{{ humanize 0.001234 }}", "1.234m"),
        ("{{ humanize 0 }}", "0"),
        ("{{ \"1234\" | humanize }}", "1.234k"),
        ("{{ humanize1024 1048576 }}", "1Mi"),
        ("{{ humanizeDuration 3661 }}", "1h 1m 1s"),
        ("{{ humanizeDuration 0.5 }}", "500ms"),
        ("{{ humanizePercentage 0.1234 }}", "12.34%"),
        ("{{ $value | humanizePercentage }}", "75%"),
        (
            "{{ humanizeTimestamp 1600000000 }}",
            "2020-09-13 12:26:40 +0000 UTC",
        ),
        (
            "{{ toTime 1600000000.5 }}",
            "2020-09-13 12:26:40.5 +0000 UTC",
        ),
        ("{{ toDuration 90 }}", "1m30s"),
        ("{{ parseDuration \"1m30s\" }}", "90"),
        // Conditionals and comparisons (Go's typing: float with float).
        ("{{ if gt $value 0.5 }}high{{ else }}low{{ end }}", "high"),
        ("{{ if lt $value 0.5 }}low{{ else }}high{{ end }}", "high"),
        (
            "{{ if false }}a{{ else if gt $value 0.7 }}b{{ else }}c{{ end }}",
            "b",
        ),
        (
            "{{ if eq $labels.severity \"critical\" }}page{{ end }}",
            "page",
        ),
        ("{{ if ne $labels.job \"x\" }}ne{{ end }}", "ne"),
        ("{{ if ge $value 0.75 }}ge{{ end }}", "ge"),
        ("{{ if le \"a\" \"b\" }}le{{ end }}", "le"),
        ("{{ if lt 1 2 }}lt{{ end }}", "lt"),
        ("{{ if eq 1 2 3 1 }}any{{ end }}", "any"),
        ("{{ eq $value 0.75 }}", "true"),
        (
            "{{ if and (gt $value 0.5) (eq .Labels.job \"node\") }}both{{ end }}",
            "both",
        ),
        ("{{ if $labels.job }}set{{ end }}", "set"),
        ("{{ not true }}", "false"),
        ("{{ or \"\" \"fallback\" }}", "fallback"),
        ("{{ or $labels.missing \"fallback\" }}", "fallback"),
        ("{{ and 1 0 }}", "0"),
        ("{{ and 1 2 }}", "2"),
        // `and` and `or` short-circuit: the query is never called.
        ("{{ or true (query \"up\") }}", "true"),
        ("{{ and false (query \"up\") }}", "false"),
        // with, range, break, continue.
        ("{{ with $labels.missing }}x{{ else }}none{{ end }}", "none"),
        ("{{ with $labels.job }}{{ . }}{{ end }}", "node"),
        ("{{ with $x := $labels.job }}{{ $x }}{{ end }}", "node"),
        (
            "{{ with $labels.missing }}a{{ else with $labels.job }}{{ . }}{{ end }}",
            "node",
        ),
        (
            "{{ range $k, $v := $labels }}{{$k}}={{$v}} {{end}}",
            "instance=node1:9100 job=node severity=critical ",
        ),
        (
            "{{ range .Labels }}{{ . }},{{ end }}",
            "node1:9100,node,critical,",
        ),
        ("{{ range $v := $externalLabels }}{{ $v }}{{ end }}", "eu1"),
        ("{{ range 3 }}{{ . }}{{ end }}", "012"),
        ("{{ range 0 }}x{{ else }}none{{ end }}", "none"),
        (
            "{{ range $k, $v := $labels }}{{ if eq $k \"job\" }}{{ break }}{{ end }}{{ $k }} {{ end }}",
            "instance ",
        ),
        (
            "{{ range $k, $v := $labels }}{{ if eq $k \"job\" }}{{ continue }}{{ end }}{{ $k }} {{ end }}",
            "instance severity ",
        ),
        (
            "{{ $n := 0 }}{{ range $labels }}{{ $n = 1 }}{{ end }}{{ $n }}",
            "1",
        ),
        (
            "{{ range $i, $v := args \"x\" \"y\" }}{{$i}}:{{$v}} {{ end }}",
            "arg0:x arg1:y ",
        ),
        // Variables.
        ("{{ $x := 1 }}{{ $x }}", "1"),
        ("{{ $x := \"a\" }}{{ $x = \"b\" }}{{ $x }}", "b"),
        ("{{ $value := 5 }}{{ $value }}", "5"),
        (
            "{{ if true }}{{ $x := 1 }}{{ end }}{{ $labels.job }}",
            "node",
        ),
        // Trim markers and comments.
        ("a {{- /* c */ -}} b", "ab"),
        ("{{- /* c */ -}}", ""),
        ("{{/* only a comment */}}", ""),
        ("x{{/* a\nmultiline comment */}}y", "xy"),
        ("  {{- $labels.job -}}  \n", "node"),
        ("{{ 3 -}} x", "3x"),
        ("x {{- 3 }}", "x3"),
        ("{{-3}}", "-3"),
        (
            "line1\n{{- if true }}\n  yes\n{{- end }}\n",
            "line1\n  yes\n",
        ),
        // Literals.
        ("{{ 'a' }}", "97"),
        ("{{ `raw\\n` }}", "raw\\n"),
        ("{{ \"tab\\there\" }}", "tab\there"),
        ("{{ \"\\u00e9\\x41\" }}", "éA"),
        ("{{ 0x10 }}", "16"),
        ("{{ 1_000 }}", "1000"),
        ("{{ -1.5 }}", "-1.5"),
        ("{{ 1e6 }}", "1e+06"),
        ("{{ 1.0 }}", "1"),
        ("{{ true }}", "true"),
        ("{{ \"}}\" }}", "}}"),
        // Go builtins.
        ("{{ len $labels }}", "3"),
        ("{{ $labels.job | len }}", "4"),
        ("{{ len \"héllo\" }}", "6"),
        ("{{ index $labels \"job\" }}", "node"),
        ("[{{ index $labels \"nope\" }}]", "[]"),
        ("{{ index \"abc\" 1 }}", "98"),
        ("{{ index (args \"a\" \"b\") \"arg1\" }}", "b"),
        ("{{ (args 1 2).arg1 }}", "2"),
        ("{{ slice \"abcdef\" 1 3 }}", "bc"),
        ("{{ slice \"abcdef\" 4 }}", "ef"),
        (
            "{{ html \"<b>'&'</b>\" }}",
            "&lt;b&gt;&#39;&amp;&#39;&lt;/b&gt;",
        ),
        ("{{ js \"it's <x>\" }}", "it\\'s \\u003Cx\\u003E"),
        ("{{ urlquery \"a b&c\" }}", "a+b%26c"),
        ("{{ print 1 2 \"a\" \"b\" 3 }}", "1 2ab3"),
        ("{{ println \"a\" 1 }}", "a 1\n"),
        ("{{ printf \"%.2f\" $value }}", "0.75"),
        ("{{ $value | printf \"%.1f\" }}", "0.8"),
        ("{{ printf \"%s has %d%%\" $labels.job 5 }}", "node has 5%"),
        ("{{ printf \"%q\" $labels.job }}", "\"node\""),
        ("{{ printf \"%v %v\" true nil }}", "true <nil>"),
        ("{{ printf \"%5.1f|%-4s|\" 3.14159 \"ab\" }}", "  3.1|ab  |"),
        ("{{ printf \"%x\" 255 }}", "ff"),
        ("{{ printf \"%g\" 1000000.0 }}", "1e+06"),
        ("{{ printf \"%T\" $value }}", "float64"),
        ("{{ printf \"%d\" $value }}", "%!d(float64=0.75)"),
        ("{{ \"a\" | printf \"%s-%s\" \"b\" }}", "b-a"),
        ("{{ printf \"%d\" 3 | len }}", "1"),
        // Prometheus's string functions.
        ("{{ toUpper $labels.job }}", "NODE"),
        ("{{ toLower \"NoDe\" }}", "node"),
        ("{{ title \"hello world\" }}", "Hello World"),
        ("{{ $labels.instance | stripPort }}", "node1"),
        ("{{ stripPort \"[::1]:9090\" }}", "::1"),
        ("{{ stripPort \"no-port\" }}", "no-port"),
        ("{{ stripDomain \"node1.example.com:9100\" }}", "node1:9100"),
        ("{{ stripDomain \"10.0.0.1:9100\" }}", "10.0.0.1:9100"),
        (
            "{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}",
            "node1",
        ),
        (
            "{{ $labels.instance | reReplaceAll \":[0-9]+\" \"\" }}",
            "node1",
        ),
        ("{{ match \"^no\" $labels.job }}", "true"),
        ("{{ match \"^x\" $labels.job }}", "false"),
        ("{{ safeHtml \"<b>\" }}", "<b>"),
        (
            "{{ graphLink \"up == 0\" }}",
            "/graph?g0.expr=up+%3D%3D+0&g0.tab=0",
        ),
        ("{{ tableLink \"up\" }}", "/graph?g0.expr=up&g0.tab=1"),
        ("{{ pathPrefix }}", "/prometheus"),
        (
            "{{ externalURL }}",
            "http://prom.example.com:9090/prometheus",
        ),
        // define, template, block.
        (
            "{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" $labels.job }}",
            "[node]",
        ),
        ("{{ block \"b\" $value }}<{{ . }}>{{ end }}", "<0.75>"),
        (
            "{{ define \"n\" }}{{ . }}{{ end }}{{ template \"n\" }}",
            "<no value>",
        ),
        // A typical annotation.
        (
            "{{ $labels.instance }} of job {{ $labels.job }} has been down for more than 5 minutes (value {{ printf \"%.0f\" $value }}).",
            "node1:9100 of job node has been down for more than 5 minutes (value 1).",
        ),
    ];
    let mut failures = Vec::new();
    for (text, want) in cases {
        match render(text) {
            Ok(got) if got == *want => {}
            got => failures.push(format!("{text:?}: want {want:?}, got {got:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parse_errors_are_clear() {
    let cases: &[(&str, &str)] = &[
        ("{{ $labels.instance ", "unclosed action"),
        ("{{ $labels.instance }", "unclosed action"),
        ("{{ foo }}", "function \"foo\" not defined"),
        ("{{ if true }}x", "unexpected EOF"),
        ("{{ range $labels }}x{{ else }}", "unexpected EOF"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ else }}", "unexpected {{else}}"),
        (
            "{{ if true }}{{ else }}{{ else }}{{ end }}",
            "expected end; found {{else}}",
        ),
        ("{{ $undefined }}", "undefined variable \"$undefined\""),
        ("{{ $undefined = 1 }}", "undefined variable \"$undefined\""),
        ("{{/* x }}", "unclosed comment"),
        ("{{/* x */ y}}", "comment ends before closing delimiter"),
        ("{{ \"abc }}", "unterminated quoted string"),
        ("{{ `abc }}", "unterminated raw quoted string"),
        ("{{ \"\\q\" }}", "invalid syntax"),
        ("{{ break }}", "{{break}} outside {{range}}"),
        ("{{ continue }}", "{{continue}} outside {{range}}"),
        ("{{ ) }}", "unexpected right paren"),
        ("{{ ( 1 }}", "unclosed left paren"),
        ("{{ 1 | 2 }}", "non executable command in pipeline stage 2"),
        ("{{ }}", "missing value for command"),
        ("{{ if }}{{ end }}", "missing value for if"),
        (
            "{{ range $a, $b, $c := $labels }}{{ end }}",
            "too many declarations in range",
        ),
        ("{{ $a, $b := 1 }}", "too many declarations in command"),
        ("{{ 1x }}", "bad number syntax"),
        ("{{ 99999999999999999999 }}", "integer overflow"),
        ("{{ $x:1 }}", "expected :="),
        ("{{ # }}", "unexpected '#' in command"),
        ("{{ \"a\".b }}", "unexpected . after term"),
        ("{{ template $x }}", "unexpected \"$x\" in template clause"),
        ("{{ template 1 }}", "unexpected \"1\" in template clause"),
        (
            "{{ define \"a\" }}{{ end }}{{ define \"a\" }}{{ end }}",
            "multiple definition",
        ),
        (
            "{{ define \"a\" }}{{ $labels }}{{ end }}",
            "undefined variable \"$labels\"",
        ),
        (
            "{{ if true }}{{ define \"a\" }}{{ end }}{{ end }}",
            "unexpected <define>",
        ),
        ("x\ny\n{{ foo }}", "3:4: function \"foo\" not defined"),
    ];
    let mut failures = Vec::new();
    for (text, want) in cases {
        match Template::parse("t", text) {
            Err(e) if e.message.contains(want) => {}
            got => failures.push(format!(
                "{text:?}: want an error with {want:?}, got {got:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn render_errors_are_clear() {
    let cases: &[(&str, &str)] = &[
        (
            "{{ query \"up\" }}",
            "error calling query: the query template function is not supported",
        ),
        (
            "{{ with query \"up\" }}{{ . | first | value }}{{ end }}",
            "the query template function is not supported",
        ),
        ("{{ now }}", "the now template function is not supported"),
        (
            "{{ gt $value 1 }}",
            "error calling gt: incompatible types for comparison",
        ),
        ("{{ eq $value \"x\" }}", "incompatible types for comparison"),
        ("{{ lt $labels $labels }}", "invalid type for comparison"),
        ("{{ eq 1 }}", "missing argument for comparison"),
        (
            "{{ $labels.job.x }}",
            "can't evaluate field x in type string",
        ),
        ("{{ .Foo }}", "can't evaluate field Foo in type struct"),
        (
            "{{ humanize \"abc\" }}",
            "error calling humanize: strconv.ParseFloat: parsing \"abc\": invalid syntax",
        ),
        ("{{ humanize true }}", "can't convert bool to float"),
        ("{{ toUpper 1 }}", "expected string; found 1"),
        (
            "{{ $value | toUpper }}",
            "wrong type for value; expected string; got float64",
        ),
        (
            "{{ index $labels 1 }}",
            "value has type int; should be string",
        ),
        ("{{ index \"abc\" 5 }}", "index out of range: 5"),
        ("{{ len 3 }}", "len of type int"),
        ("{{ not }}", "wrong number of args for not: want 1 got 0"),
        (
            "{{ printf }}",
            "wrong number of args for printf: want at least 1 got 0",
        ),
        (
            "{{ reReplaceAll \"(\" \"x\" \"y\" }}",
            "error parsing regexp",
        ),
        ("{{ template \"nope\" }}", "template \"nope\" not defined"),
        ("{{ nil }}", "nil is not a command"),
        ("{{ 1 2 }}", "can't give argument to non-function 1"),
        (
            "{{ $value 2 }}",
            "can't give argument to non-function $value",
        ),
        (
            "{{ .Labels 2 }}",
            "Labels has arguments but cannot be invoked as function",
        ),
        (
            "{{ range $value }}{{ end }}",
            "range can't iterate over 0.75",
        ),
        (
            "{{ range $i, $e := 3 }}{{ end }}",
            "can't use 3 to iterate over more than one variable",
        ),
        ("{{ toTime 1e300 }}", "overflows int64"),
        ("{{ parseDuration \"1x\" }}", "unknown unit \"x\""),
        ("{{ first 1 }}", "expected template.queryResult"),
        ("{{ label \"a\" 1 }}", "expected *template.sample"),
        ("{{ call 1 }}", "not supported"),
        (
            "{{ printf \"%.0f\" $value }}\n{{ gt $value 1 }}",
            "2:4: executing <gt $value 1>: error calling gt",
        ),
    ];
    let mut failures = Vec::new();
    for (text, want) in cases {
        let template = match Template::parse("t", text) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{text:?}: does not parse: {e}"));
                continue;
            }
        };
        match template.render(&data()) {
            Err(e) if e.message.contains(want) => {}
            got => failures.push(format!(
                "{text:?}: want an error with {want:?}, got {got:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_name_the_template() {
    let err = expand("summary", "{{ nope }}", &data()).unwrap_err();
    assert_eq!(err.name, "summary");
    assert_eq!(
        err.to_string(),
        "template \"summary\": 1:4: function \"nope\" not defined"
    );
}

#[test]
fn empty_data_renders() {
    let empty = TemplateData::default();
    let cases: &[(&str, &str)] = &[
        (
            "{{ range $labels }}x{{ else }}no labels{{ end }}",
            "no labels",
        ),
        ("[{{ $labels.instance }}]", "[]"),
        ("{{ $value }}", "0"),
        ("{{ if $labels }}some{{ else }}none{{ end }}", "none"),
        ("[{{ pathPrefix }}]", "[]"),
    ];
    for (text, want) in cases {
        assert_eq!(expand("t", text, &empty).as_deref(), Ok(*want), "{text:?}");
    }
}

#[test]
fn value_prints_as_go_float64() {
    let cases: &[(f64, &str)] = &[
        (0.0, "0"),
        (42.0, "42"),
        (0.5, "0.5"),
        (1_000_000.0, "1e+06"),
        (123_456.0, "123456"),
        (1.0 / 3.0, "0.3333333333333333"),
        (1e-7, "1e-07"),
        (f64::INFINITY, "+Inf"),
        (f64::NAN, "NaN"),
    ];
    for (value, want) in cases {
        let d = TemplateData {
            value: *value,
            ..TemplateData::default()
        };
        assert_eq!(expand("t", "{{ $value }}", &d).as_deref(), Ok(*want));
    }
}

#[test]
fn text_without_actions_is_returned_as_is() {
    let texts = [
        "",
        "plain",
        "braces { } } {",
        "single {brace}",
        "{{",
        "unicode é ✓",
        "}}",
    ];
    for text in texts {
        let want = if text == "{{" {
            Err(())
        } else {
            Ok(text.to_string())
        };
        assert_eq!(expand("t", text, &data()).map_err(|_| ()), want, "{text:?}");
    }
}

#[test]
fn a_template_renders_many_times() {
    let t = Template::parse("summary", "{{ $labels.job }}={{ $value }}").unwrap();
    assert_eq!(t.name(), "summary");
    assert_eq!(t.text(), "{{ $labels.job }}={{ $value }}");
    for i in 0..3 {
        let d = TemplateData {
            value: f64::from(i),
            ..data()
        };
        assert_eq!(t.render(&d).unwrap(), format!("node={i}"));
    }
}

#[test]
fn limits_are_errors() {
    let depth = TEMPLATE_NESTING_DEPTH_MAX + 1;
    let nested = "{{ if true }}".repeat(depth) + &"{{ end }}".repeat(depth);
    let err = Template::parse("t", &nested).unwrap_err();
    assert!(
        err.message.contains("nesting deeper than 100 levels"),
        "{err}"
    );

    let ok_depth = TEMPLATE_NESTING_DEPTH_MAX;
    let nested = "{{ if true }}".repeat(ok_depth) + "x" + &"{{ end }}".repeat(ok_depth);
    assert_eq!(expand("t", &nested, &data()).unwrap(), "x");

    let parens = "{{ ".to_string() + &"(".repeat(depth) + "1" + &")".repeat(depth) + " }}";
    let err = Template::parse("t", &parens).unwrap_err();
    assert!(err.message.contains("nesting deeper"), "{err}");

    let recursive = "{{ define \"r\" }}{{ template \"r\" }}{{ end }}{{ template \"r\" }}";
    let err = expand("t", recursive, &data()).unwrap_err();
    assert!(
        err.message
            .contains("exceeded maximum template depth (100)"),
        "{err}"
    );

    let big = "{{ range 3000 }}{{ printf \"%1000s\" \"\" }}{{ end }}";
    let err = expand("t", big, &data()).unwrap_err();
    assert!(err.message.contains("output longer than"), "{err}");

    let slow = "{{ range 100000000 }}{{ end }}";
    let err = expand("t", slow, &data()).unwrap_err();
    assert!(err.message.contains("execution too expensive"), "{err}");

    let doubling =
        "{{ $s := \"xxxxxxxxxxxxxxxx\" }}{{ range 100 }}{{ $s = printf \"%s%s\" $s $s }}{{ end }}";
    let err = expand("t", doubling, &data()).unwrap_err();
    assert!(err.message.contains("result longer than"), "{err}");

    let replace = format!(
        "{{{{ reReplaceAll \"\" \"{}\" \"{}\" }}}}",
        "y".repeat(1000),
        "x".repeat(5000)
    );
    let err = expand("t", &replace, &data()).unwrap_err();
    assert!(err.message.contains("longer than"), "{err}");

    let wide = "{{ printf \"%2000000d\" 1 }}";
    assert_eq!(
        expand("t", wide, &data()).unwrap(),
        "%!(NOVERB)%!(EXTRA int=1)"
    );

    let huge = "x".repeat(TEMPLATE_TEXT_BYTES_MAX + 1);
    assert!(Template::parse("t", &huge).is_err());
}

/// Pieces of template syntax, so random texts reach deep into the
/// parser and executor rather than stopping at the first brace.
fn template_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "{{", "}}", "{{- ", " -}}", "{{/*", "*/}}", " ", "$labels", "$value", "$x", ":=", "=",
            "|", "(", ")", ".", ".Labels", ".job", "if", "else", "end", "range", "with", "define",
            "template", "block", "break", "continue", "\"t\"", "`r`", "'c'", "1", "-2.5", "0x1f",
            "nil", "true", "humanize", "printf", "\"%s %d %.2f %q %v %\"", "eq", "gt", "and",
            "or", "not", "len", "index", "slice", "args", "reReplaceAll", "\"(.*)\"", "\"$1\"",
            "title", "toTime", "query", "html", "js", ",", "$", "\n", "\\", "\"",
        ])
        .prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

proptest! {
    #[test]
    fn parse_and_render_never_panic(pieces in prop::collection::vec(template_piece(), 0..40)) {
        let text: String = pieces.concat();
        if let Ok(t) = Template::parse("p", &text) {
            let _ = t.render(&data());
            let _ = t.render(&TemplateData::default());
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        if let Ok(t) = Template::parse("p", &text) {
            let _ = t.render(&data());
        }
    }

    #[test]
    fn labels_render_verbatim(value in "[^{}]{0,40}") {
        let d = TemplateData {
            labels: labels(&[("x", &value)]),
            ..TemplateData::default()
        };
        prop_assert_eq!(expand("p", "{{ $labels.x }}", &d).unwrap(), value);
    }
}
