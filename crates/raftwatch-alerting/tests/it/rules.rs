//! Rule files: parsing, validation as `promtool check rules` does it,
//! durations, limits, and rendering back (a proptest checks that
//! `parse(render(groups)) == groups`).

use proptest::prelude::*;
use raftwatch_alerting::LabelSet;
use raftwatch_alerting::rules::{
    AlertingRule, DEFAULT_INTERVAL_MS, RULE_EXPR_COMPLEXITY_MAX, RULE_FILE_BYTES_MAX,
    RULE_FILE_GROUPS_MAX, RULE_GROUP_RULES_MAX, RecordingRule, Rule, RuleError, RuleFile,
    RuleGroup, expr_complexity, format_duration, parse_duration, parse_rule_file, render_rule_file,
};

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// The errors of a file that must not parse.
fn errors(yaml: &str) -> Vec<RuleError> {
    match parse_rule_file(yaml) {
        Ok(file) => panic!("expected errors, parsed {file:?}"),
        Err(errors) => errors,
    }
}

/// The single error of a file with one problem, as `location: message`.
fn one_error(yaml: &str) -> String {
    let errors = errors(yaml);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors[0].to_string()
}

const EXAMPLE: &str = r#"
groups:
  - name: node
    interval: 30s
    limit: 10
    rules:
      - alert: InstanceDown
        expr: up == 0
        for: 5m
        keep_firing_for: 1m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.instance }} down"
          description: "{{ $value | humanize }} for {{ humanizeDuration 300 }}"
      - record: job:up:sum
        expr: sum by (job) (up)
        labels:
          team: infra
  - name: other
    rules: []
"#;

#[test]
fn parses_a_rule_file() {
    let file = parse_rule_file(EXAMPLE).unwrap();
    let want = RuleFile {
        groups: vec![
            RuleGroup {
                name: "node".to_string(),
                interval_ms: 30_000,
                limit: 10,
                rules: vec![
                    Rule::Alerting(AlertingRule {
                        alert: "InstanceDown".to_string(),
                        expr: "up == 0".to_string(),
                        for_ms: 300_000,
                        keep_firing_for_ms: 60_000,
                        labels: labels(&[("severity", "page")]),
                        annotations: labels(&[
                            ("summary", "{{ $labels.instance }} down"),
                            (
                                "description",
                                "{{ $value | humanize }} for {{ humanizeDuration 300 }}",
                            ),
                        ]),
                    }),
                    Rule::Recording(RecordingRule {
                        record: "job:up:sum".to_string(),
                        expr: "sum by (job) (up)".to_string(),
                        labels: labels(&[("team", "infra")]),
                    }),
                ],
            },
            RuleGroup {
                name: "other".to_string(),
                interval_ms: DEFAULT_INTERVAL_MS,
                limit: 0,
                rules: Vec::new(),
            },
        ],
    };
    assert_eq!(file, want);
    assert_eq!(file.groups[0].rules[0].name(), "InstanceDown");
    assert_eq!(file.groups[0].rules[1].expr(), "sum by (job) (up)");
}

#[test]
fn empty_files_have_no_groups() {
    for yaml in [
        "",
        "\n",
        "# only a comment\n",
        "groups:",
        "groups: []",
        "groups: ~",
    ] {
        assert_eq!(
            parse_rule_file(yaml),
            Ok(RuleFile { groups: Vec::new() }),
            "{yaml:?}"
        );
    }
}

#[test]
fn scalars_are_read_as_written() {
    let yaml = r#"
groups:
  - name: 1
    interval: 0s
    rules:
      - record: one
        expr: 1
        labels:
          version: 1.10
          flag: true
          empty: ~
      - alert: Always
        expr: vector(1)
        for: 0
"#;
    let file = parse_rule_file(yaml).unwrap();
    let group = &file.groups[0];
    assert_eq!(group.name, "1");
    // Prometheus reads a zero interval as the default.
    assert_eq!(group.interval_ms, DEFAULT_INTERVAL_MS);
    let Rule::Recording(rule) = &group.rules[0] else {
        panic!("{:?}", group.rules[0]);
    };
    assert_eq!(rule.expr, "1");
    assert_eq!(
        rule.labels,
        labels(&[("version", "1.10"), ("flag", "true"), ("empty", "")])
    );
}

#[test]
fn duplicate_rules_are_allowed() {
    let yaml = r#"
groups:
  - name: g
    rules:
      - record: a
        expr: up
      - record: a
        expr: up
"#;
    assert_eq!(parse_rule_file(yaml).unwrap().groups[0].rules.len(), 2);
}

#[test]
fn recording_rule_labels_are_not_templates() {
    let yaml = r#"
groups:
  - name: g
    rules:
      - record: a
        expr: up
        labels:
          x: "{{ not a template"
"#;
    assert!(parse_rule_file(yaml).is_ok());
}

#[test]
fn templates_using_query_load() {
    let yaml = r#"
groups:
  - name: g
    rules:
      - alert: A
        expr: up == 0
        annotations:
          summary: '{{ with query "up" }}{{ . | first | value | humanize }}{{ end }}'
"#;
    assert!(parse_rule_file(yaml).is_ok());
}

/// A group named `g` holding one rule written as `rule` (YAML lines
/// indented by 8 spaces, without the leading `- `).
fn with_rule(rule: &str) -> String {
    let mut yaml = "groups:\n  - name: g\n    rules:\n      -".to_string();
    for (i, line) in rule.lines().enumerate() {
        if i == 0 {
            yaml.push(' ');
        } else {
            yaml.push_str("        ");
        }
        yaml.push_str(line);
        yaml.push('\n');
    }
    yaml
}

#[test]
fn rule_errors_are_located_and_clear() {
    let cases: &[(&str, &str)] = &[
        (
            "alert: A\nrecord: a\nexpr: up",
            "group \"g\", rule 1 (A): only one of 'record' and 'alert' must be set",
        ),
        (
            "expr: up",
            "group \"g\", rule 1: one of 'record' or 'alert' must be set",
        ),
        (
            "alert: A",
            "group \"g\", rule 1 (A): field 'expr' must be set in rule",
        ),
        (
            "alert: A\nexpr: sum(",
            "group \"g\", rule 1 (A): could not parse expression: ",
        ),
        (
            "record: a\nexpr: up[5m]",
            "group \"g\", rule 1 (a): expression must be an instant vector or a scalar, not a range vector",
        ),
        (
            "record: a\nexpr: '\"text\"'",
            "group \"g\", rule 1 (a): expression must be an instant vector or a scalar, not a string",
        ),
        (
            "record: job up\nexpr: up",
            "group \"g\", rule 1 (job up): invalid recording rule name: \"job up\"",
        ),
        (
            "record: a\nexpr: up\nfor: 5m",
            "group \"g\", rule 1 (a): invalid field 'for' in recording rule",
        ),
        (
            "record: a\nexpr: up\nkeep_firing_for: 5m",
            "group \"g\", rule 1 (a): invalid field 'keep_firing_for' in recording rule",
        ),
        (
            "record: a\nexpr: up\nannotations: {summary: x}",
            "group \"g\", rule 1 (a): invalid field 'annotations' in recording rule",
        ),
        (
            "alert: A\nexpr: up\nfor: 5x",
            "group \"g\", rule 1 (A): invalid 'for': unknown unit \"x\" in duration \"5x\"",
        ),
        (
            "alert: A\nexpr: up\nkeep_firing_for: 1m5h",
            "group \"g\", rule 1 (A): invalid 'keep_firing_for': not a valid duration string: \"1m5h\"",
        ),
        (
            "alert: A\nexpr: up\nlabels: {bad-name: x}",
            "group \"g\", rule 1 (A): invalid label name: \"bad-name\"",
        ),
        (
            "record: a\nexpr: up\nlabels: {__name__: x}",
            "group \"g\", rule 1 (a): invalid label name: \"__name__\"",
        ),
        (
            "alert: A\nexpr: up\nannotations: {1st: x}",
            "group \"g\", rule 1 (A): invalid annotation name: \"1st\"",
        ),
        (
            "alert: A\nexpr: up\nlabels: {severity: '{{ nope }}'}",
            "group \"g\", rule 1 (A): label \"severity\": 1:4: function \"nope\" not defined",
        ),
        (
            "alert: A\nexpr: up\nannotations: {summary: '{{ if $value }}x'}",
            "group \"g\", rule 1 (A): annotation \"summary\": 1:17: unexpected EOF",
        ),
    ];
    let mut failures = Vec::new();
    for (rule, want) in cases {
        let yaml = with_rule(rule);
        match parse_rule_file(&yaml) {
            Err(errors) if errors.len() == 1 && errors[0].to_string().starts_with(want) => {}
            got => failures.push(format!("{rule:?}:\n  want {want:?}\n  got  {got:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn group_errors_are_located_and_clear() {
    let cases: &[(&str, &str)] = &[
        (
            "groups:\n  - rules: []",
            "group 1: group name must not be empty",
        ),
        (
            "groups:\n  - name: a\n  - name: a",
            "group \"a\": group name \"a\" is repeated in the same file",
        ),
        (
            "groups:\n  - name: a\n    interval: 30x",
            "group \"a\": invalid interval: unknown unit \"x\" in duration \"30x\"",
        ),
        (
            "groups:\n  - name: a\n    interval: 1.5m",
            "group \"a\": invalid interval: unknown unit \".\" in duration \"1.5m\"",
        ),
        (
            "groups:\n  - name: a\n    limit: -1",
            "group \"a\": limit must not be negative, got -1",
        ),
        (
            "groups:\n  - name: a\n    query_offset: 1m",
            "group \"a\": field 'query_offset' is not supported",
        ),
        (
            "groups:\n  - name: a\n    labels: {team: x}",
            "group \"a\": group 'labels' are not supported",
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(one_error(yaml), *want, "{yaml:?}");
    }
}

#[test]
fn yaml_errors_are_reported_alone() {
    let cases: &[(&str, &str)] = &[
        ("groups: [", "file: invalid YAML: "),
        ("rules: []", "file: invalid YAML: unknown field `rules`"),
        (
            "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        severity: page",
            "file: invalid YAML: groups[0].rules[0]: unknown field `severity`",
        ),
        (
            "groups:\n  - name: a\n    evaluation_interval: 1m",
            "file: invalid YAML: groups[0]: unknown field `evaluation_interval`",
        ),
        (
            "groups:\n  - name: a\n    limit: many",
            "file: invalid YAML: groups[0].limit: invalid type",
        ),
        ("groups: {}", "file: invalid YAML: groups: invalid type"),
        (
            "groups:\n  - name: a\n    name: b",
            "file: invalid YAML: groups[0]: duplicate field `name`",
        ),
        ("- 1\n- 2", "file: invalid YAML: invalid type: sequence"),
    ];
    for (yaml, want) in cases {
        let got = one_error(yaml);
        assert!(
            got.starts_with(want),
            "{yaml:?}:\n  want {want:?}\n  got  {got:?}"
        );
    }
}

#[test]
fn all_errors_are_collected() {
    let yaml = r#"
groups:
  - name: first
    interval: 1q
    rules:
      - alert: A
        expr: up ==
      - record: bad name
        expr: up
        for: 1m
  - name: first
    rules:
      - expr: ""
"#;
    let got: Vec<String> = errors(yaml).iter().map(ToString::to_string).collect();
    let want = [
        "group \"first\": invalid interval: unknown unit \"q\" in duration \"1q\"",
        "group \"first\", rule 1 (A): could not parse expression: ",
        "group \"first\", rule 2 (bad name): invalid field 'for' in recording rule",
        "group \"first\", rule 2 (bad name): invalid recording rule name: \"bad name\"",
        "group \"first\": group name \"first\" is repeated in the same file",
        "group \"first\", rule 1: one of 'record' or 'alert' must be set",
        "group \"first\", rule 1: field 'expr' must be set in rule",
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (got, want) in got.iter().zip(want) {
        assert!(got.starts_with(want), "want {want:?}\ngot  {got:?}");
    }
}

#[test]
fn limits_are_errors() {
    let mut many_groups = "groups:\n".to_string();
    for i in 0..=RULE_FILE_GROUPS_MAX {
        many_groups.push_str(&format!("  - name: g{i}\n"));
    }
    assert_eq!(
        one_error(&many_groups),
        format!("file: 1001 groups, more than the limit of {RULE_FILE_GROUPS_MAX}")
    );

    let mut many_rules = "groups:\n  - name: g\n    rules:\n".to_string();
    for _ in 0..=RULE_GROUP_RULES_MAX {
        many_rules.push_str("      - {record: r, expr: up}\n");
    }
    assert_eq!(
        one_error(&many_rules),
        format!("group \"g\": 1001 rules, more than the limit of {RULE_GROUP_RULES_MAX}")
    );

    let big = format!("# {}\ngroups: []\n", "x".repeat(RULE_FILE_BYTES_MAX));
    assert!(one_error(&big).starts_with("file: rule file is "));

    let mut at_limit = "groups:\n".to_string();
    for i in 0..RULE_FILE_GROUPS_MAX {
        at_limit.push_str(&format!("  - name: g{i}\n"));
    }
    assert_eq!(
        parse_rule_file(&at_limit).unwrap().groups.len(),
        RULE_FILE_GROUPS_MAX
    );
}

#[test]
fn deep_expressions_are_refused_before_parsing() {
    // Each of these would overflow the stack inside the PromQL parser
    // (or when its syntax tree is dropped) at this size.
    let n = 100_000;
    let deep = [
        "(".repeat(n) + "1" + &")".repeat(n),
        "abs(".repeat(n) + "up" + &")".repeat(n),
        "-".repeat(n) + "1",
        vec!["1"; n].join(" + "),
        vec!["up"; n].join(" or "),
    ];
    for expr in deep {
        let yaml = format!("groups:\n- name: g\n  rules:\n  - record: a\n    expr: '{expr}'\n");
        let err = one_error(&yaml);
        assert!(err.contains("expression too complex"), "{err}");
    }
    let just_fits =
        "(".repeat(RULE_EXPR_COMPLEXITY_MAX / 2) + "1" + &")".repeat(RULE_EXPR_COMPLEXITY_MAX / 2);
    assert_eq!(expr_complexity(&just_fits), RULE_EXPR_COMPLEXITY_MAX);
    let yaml = format!("groups:\n- name: g\n  rules:\n  - record: a\n    expr: '{just_fits}'\n");
    assert!(parse_rule_file(&yaml).is_ok());

    let cases: &[(&str, usize)] = &[
        ("up", 0),
        ("up == 0", 2),
        ("sum by (job) (rate(x{a=\"(((\", b!~\"-+\"}[5m]))", 6),
        ("a and b or c unless d", 3),
        ("orange + android", 1),
        ("atan2(a, b)", 3),
        ("\"((((\" + `))))`", 1),
    ];
    for (expr, want) in cases {
        assert_eq!(expr_complexity(expr), *want, "{expr:?}");
    }
}

#[test]
fn durations_parse_as_prometheus() {
    let ok: &[(&str, i64)] = &[
        ("0", 0),
        ("0s", 0),
        ("1s", 1_000),
        ("30s", 30_000),
        ("1m", 60_000),
        ("1m30s", 90_000),
        ("1h30m", 5_400_000),
        ("2h0m", 7_200_000),
        ("500ms", 500),
        ("1s500ms", 1_500),
        ("1d", 86_400_000),
        ("1w", 604_800_000),
        ("1y", 31_536_000_000),
        (
            "1y2w3d4h5m6s7ms",
            31_536_000_000 + 1_209_600_000 + 259_200_000 + 14_706_007,
        ),
        ("106751d", 106_751 * 86_400_000),
    ];
    for (text, want) in ok {
        assert_eq!(parse_duration(text), Ok(*want), "{text:?}");
    }
    let bad: &[(&str, &str)] = &[
        ("", "empty duration string"),
        ("1", "not a valid duration string: \"1\""),
        ("s", "not a valid duration string: \"s\""),
        ("1x", "unknown unit \"x\" in duration \"1x\""),
        ("30m1h", "not a valid duration string: \"30m1h\""),
        ("1m1m", "not a valid duration string: \"1m1m\""),
        ("-1s", "not a valid duration string: \"-1s\""),
        ("1.5h", "unknown unit \".\" in duration \"1.5h\""),
        (" 1s", "not a valid duration string: \" 1s\""),
        ("1s ", "unknown unit \"s \" in duration \"1s \""),
        ("106752d", "duration out of range"),
        ("300y", "duration out of range"),
        (
            "99999999999999999999s",
            "not a valid duration string: \"99999999999999999999s\"",
        ),
    ];
    for (text, want) in bad {
        assert_eq!(parse_duration(text), Err((*want).to_string()), "{text:?}");
    }
}

#[test]
fn durations_format_as_prometheus() {
    let cases: &[(i64, &str)] = &[
        (0, "0s"),
        (500, "500ms"),
        (1_000, "1s"),
        (90_000, "1m30s"),
        (300_000, "5m"),
        (3_600_001, "1h1ms"),
        (129_600_000, "1d12h"),
        (604_800_000, "1w"),
        (1_209_600_000, "2w"),
        (7_776_000_000, "90d"),
        (31_536_000_000, "1y"),
        (31_622_400_000, "366d"),
        (-90_000, "-1m30s"),
    ];
    for (ms, want) in cases {
        assert_eq!(format_duration(*ms), *want, "{ms}");
        if *ms >= 0 {
            assert_eq!(parse_duration(want), Ok(*ms), "{want}");
        }
    }
}

#[test]
fn renders_a_rule_file() {
    let file = parse_rule_file(EXAMPLE).unwrap();
    let text = render_rule_file(&file.groups);
    assert_eq!(
        text,
        r#"groups:
- name: node
  interval: 30s
  limit: 10
  rules:
  - alert: InstanceDown
    expr: up == 0
    for: 5m
    keep_firing_for: 1m
    labels:
      severity: page
    annotations:
      description: '{{ $value | humanize }} for {{ humanizeDuration 300 }}'
      summary: '{{ $labels.instance }} down'
  - record: job:up:sum
    expr: sum by (job) (up)
    labels:
      team: infra
- name: other
  interval: 1m
  rules: []
"#
    );
    assert_eq!(parse_rule_file(&text), Ok(file));
    assert_eq!(render_rule_file(&[]), "groups: []\n");
}

#[test]
fn render_round_trips_awkward_text() {
    let yaml = r#"
groups:
  - name: "with: colon # and hash"
    rules:
      - alert: "Quote'n\"Slash\\"
        expr: |
          sum by (job) (
            rate(http_requests_total{code=~"5.."}[5m])
          ) > 0.1
        labels:
          empty: ""
          tilde: "~"
          null_word: "null"
          number: "1.10"
          yes_word: "yes"
          multi: "line one\nline two\n"
          lead: " leading space"
        annotations:
          summary: "{{ $labels.job }}: {{ $value | printf \"%.2f\" }}"
"#;
    let file = parse_rule_file(yaml).unwrap();
    let text = render_rule_file(&file.groups);
    assert_eq!(parse_rule_file(&text), Ok(file), "{text}");
}

/// A valid label name.
fn label_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,8}".prop_filter("reserved", |n| n != "__name__")
}

/// A label value: awkward YAML scalars and arbitrary text without braces
/// (so alerting values stay valid templates).
fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "", "~", "null", "Null", "true", "no", "1", "1.10", "0x1f", "-", "- x", "? x", ": x",
            "#x", "x #y", "'", "\"", "\\", "\n", " x", "x ", "\t", "*a", "&a", "!a", "%a", "@a",
            "`a", "|", ">", "[1]", "{a: b}", "\u{85}", "\u{2028}", "é✓",
        ])
        .prop_map(str::to_string),
        any::<String>().prop_map(|s| s.replace(['{', '}'], "")),
    ]
}

fn label_set() -> impl Strategy<Value = LabelSet> {
    prop::collection::btree_map(label_name(), label_value(), 0..4)
}

fn expr() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "up",
        "up == 0",
        "1",
        "sum by (job) (rate(http_requests_total[5m]))",
        "sum by (job) (\n  rate(x{a=\"b\"}[5m])\n) > 0.5\n",
        "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))",
        "  up  ",
    ])
    .prop_map(str::to_string)
}

/// Pieces of PromQL, so random expressions reach the parser's corners.
fn promql_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "up", "x", " ", "(", ")", "[", "]", "{", "}", "5m", "1h:30s", "offset", "@", "start()",
            "by", "without", "(job)", "on", "ignoring", "group_left", "bool", "sum", "rate",
            "histogram_quantile", "topk", "count_values", "label_replace", "vector", "time()",
            "+", "-", "*", "/", "%", "^", "==", "!=", "<", ">=", "and", "or", "unless", "atan2",
            ",", "=", "=~", "!~", "\"a\"", "'b'", "`c`", "1", "0x1f", "1e3", "Inf", "NaN", ".5",
            "-1", "#", "\n", "__name__", "\\", "\"",
        ])
        .prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    prop_oneof![
        (
            label_value().prop_filter("empty", |s| !s.is_empty()),
            expr(),
            0i64..=1_000_000_000,
            0i64..=1_000_000_000,
            label_set(),
            label_set(),
        )
            .prop_map(
                |(alert, expr, for_ms, keep_firing_for_ms, labels, annotations)| {
                    Rule::Alerting(AlertingRule {
                        alert,
                        expr,
                        for_ms,
                        keep_firing_for_ms,
                        labels,
                        annotations,
                    })
                }
            ),
        ("[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", expr(), label_set()).prop_map(
            |(record, expr, labels)| Rule::Recording(RecordingRule {
                record,
                expr,
                labels,
            })
        ),
    ]
}

fn groups() -> impl Strategy<Value = Vec<RuleGroup>> {
    prop::collection::vec(
        (
            label_value().prop_filter("empty", |s| !s.is_empty()),
            1i64..=1_000_000_000_000,
            0u64..=i64::MAX as u64,
            prop::collection::vec(rule(), 0..4),
        )
            .prop_map(|(name, interval_ms, limit, rules)| RuleGroup {
                name,
                interval_ms,
                limit,
                rules,
            }),
        0..4,
    )
    .prop_map(|mut groups| {
        // Names are unique in a file.
        let mut seen = std::collections::HashSet::new();
        groups.retain(|g| seen.insert(g.name.clone()));
        groups
    })
}

proptest! {
    #[test]
    fn render_then_parse_gives_the_groups_back(groups in groups()) {
        let text = render_rule_file(&groups);
        let parsed = parse_rule_file(&text);
        prop_assert_eq!(parsed, Ok(RuleFile { groups }), "rendered:\n{}", text);
    }

    #[test]
    fn parse_never_panics(yaml in any::<String>()) {
        let _ = parse_rule_file(&yaml);
    }

    #[test]
    fn expressions_never_panic(pieces in prop::collection::vec(promql_piece(), 0..30)) {
        let expr = pieces.concat();
        let rule = RuleGroup {
            name: "g".to_string(),
            interval_ms: DEFAULT_INTERVAL_MS,
            limit: 0,
            rules: vec![Rule::Recording(RecordingRule {
                record: "r".to_string(),
                expr,
                labels: LabelSet::new(),
            })],
        };
        let _ = parse_rule_file(&render_rule_file(&[rule]));
    }

    #[test]
    fn durations_round_trip(ms in 0i64..=i64::MAX / 1_000_000) {
        prop_assert_eq!(parse_duration(&format_duration(ms)), Ok(ms));
    }
}
