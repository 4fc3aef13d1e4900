//! The Alertmanager configuration subset: parsing, refusals, routing,
//! group keys and inhibition.

use proptest::prelude::*;
use raftwatch_alerting::LabelSet;
use raftwatch_alerting::amconfig::{
    AlertmanagerConfig, DEFAULT_GROUP_INTERVAL_MS, DEFAULT_GROUP_WAIT_MS,
    DEFAULT_REPEAT_INTERVAL_MS, GroupBy, InhibitRule, MAX_CONFIG_BYTES, MAX_ROUTE_DEPTH,
    MAX_ROUTES, Route, WebhookConfig, WebhookUrl, default_config, format_label_set, inhibited,
    parse_config, parse_webhook_url,
};
use raftwatch_alerting::matcher::{MatchOp, Matcher, parse_matchers};

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
    Matcher::new(name, op, value).expect("a valid matcher")
}

fn parse(yaml: &str) -> AlertmanagerConfig {
    match parse_config(yaml) {
        Ok(c) => c,
        Err(e) => panic!("{e}\n{yaml}"),
    }
}

/// Asserts that `yaml` is refused with a message containing `want`.
#[track_caller]
fn refused(yaml: &str, want: &str) {
    match parse_config(yaml) {
        Ok(_) => panic!("accepted, wanted an error containing {want:?}:\n{yaml}"),
        Err(e) => assert!(
            e.to_string().contains(want),
            "error {:?} does not contain {want:?}",
            e.to_string()
        ),
    }
}

const REALISTIC: &str = r#"
global:
  resolve_timeout: 5m
  smtp_smarthost: 'localhost:25'
  smtp_from: 'alertmanager@example.org'
  slack_api_url: 'http://slack.invalid/hook'

route:
  receiver: team-X-mails
  group_by: ['alertname', 'cluster', 'service']
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 3h
  routes:
    - matchers:
        - service=~"foo1|foo2|baz"
      receiver: team-X-mails
      routes:
        - matchers:
            - severity="critical"
          receiver: team-X-pager
    - matchers: [ 'service="files"' ]
      receiver: team-Y-mails
      routes:
        - match:
            severity: critical
          receiver: team-Y-pager
    - match_re:
        service: ^database-.*$
      receiver: team-DB-pager
      group_by: [alertname, cluster, database]
      group_wait: 1m
      routes:
        - match:
            owner: team-X
          receiver: team-X-pager
          continue: true
        - match:
            owner: team-Y
          receiver: team-Y-pager
    - receiver: audit
      matchers: ['{env="prod", team!~"infra|ops"}', 'tier="1"']
      continue: true
      group_by: ['...']
      repeat_interval: 1d12h

inhibit_rules:
  - source_matchers: [ severity="critical" ]
    target_matchers: [ severity="warning" ]
    equal: [ alertname, cluster, service ]
  - source_match:
      alertname: ClusterDown
    target_match_re:
      alertname: 'Node.*|Pod.*'
    equal: ['cluster']

receivers:
  - name: 'team-X-mails'
    webhook_configs:
      - url: 'http://mail-bridge.internal:8080/x'
  - name: 'team-X-pager'
    webhook_configs:
      - url: 'http://pager.internal/x?team=X'
        send_resolved: false
        max_alerts: 10
        http_config: {}
  - name: 'team-Y-mails'
    webhook_configs:
      - url: http://10.0.0.7:9000/
  - name: 'team-Y-pager'
    webhook_configs:
      - url: 'http://[fd00::7]:9000/y'
      - url: 'http://backup-pager.internal:9000/y'
  - name: 'team-DB-pager'
    webhook_configs:
      - url: 'http://pager.internal/db'
  - name: audit
    email_configs: []
  - name: unused
"#;

#[test]
fn parses_a_realistic_config() {
    let c = parse(REALISTIC);
    assert_eq!(c.original, REALISTIC);
    let root = &c.route;
    assert_eq!(root.id, "0");
    assert_eq!(root.receiver, "team-X-mails");
    assert_eq!(
        root.group_by,
        GroupBy::Labels(vec!["alertname".into(), "cluster".into(), "service".into()])
    );
    assert_eq!(
        (
            root.group_wait_ms,
            root.group_interval_ms,
            root.repeat_interval_ms
        ),
        (30_000, 300_000, 3 * 3_600_000)
    );
    assert!(root.matchers.is_empty() && !root.continue_matching);
    assert_eq!(root.routes.len(), 4);

    let foo = &root.routes[0];
    assert_eq!(foo.id, "0.0");
    assert_eq!(
        foo.matchers,
        vec![m("service", MatchOp::Re, "foo1|foo2|baz")]
    );
    // Inherited from the root.
    assert_eq!(foo.group_by, root.group_by);
    assert_eq!(foo.repeat_interval_ms, 3 * 3_600_000);
    let foo_crit = &foo.routes[0];
    assert_eq!(foo_crit.id, "0.0.0");
    assert_eq!(foo_crit.receiver, "team-X-pager");
    assert_eq!(
        foo_crit.matchers,
        vec![m("severity", MatchOp::Eq, "critical")]
    );

    let db = &root.routes[2];
    assert_eq!(db.id, "0.2");
    assert_eq!(
        db.matchers,
        vec![m("service", MatchOp::Re, "^(?:^database-.*$)$")]
    );
    assert_eq!(db.group_wait_ms, 60_000);
    assert_eq!(
        db.group_by,
        GroupBy::Labels(vec![
            "alertname".into(),
            "cluster".into(),
            "database".into()
        ])
    );
    // Children inherit the parent's group_by and group_wait.
    let db_x = &db.routes[0];
    assert_eq!(db_x.id, "0.2.0");
    assert!(db_x.continue_matching);
    assert_eq!(db_x.group_by, db.group_by);
    assert_eq!(db_x.group_wait_ms, 60_000);
    assert_eq!(db.routes[1].id, "0.2.1");
    assert!(!db.routes[1].continue_matching);

    let audit = &root.routes[3];
    assert_eq!(audit.group_by, GroupBy::All);
    assert!(audit.continue_matching);
    assert_eq!(audit.repeat_interval_ms, 36 * 3_600_000);
    // Sorted by name, then value, then operator.
    assert_eq!(
        audit.matchers,
        vec![
            m("env", MatchOp::Eq, "prod"),
            m("team", MatchOp::Nre, "infra|ops"),
            m("tier", MatchOp::Eq, "1"),
        ]
    );

    assert_eq!(c.receivers.len(), 7);
    assert_eq!(
        c.receiver("team-X-pager").unwrap().webhook_configs,
        vec![WebhookConfig {
            url: "http://pager.internal/x?team=X".into(),
            send_resolved: false,
            max_alerts: 10,
        }]
    );
    assert_eq!(
        c.receiver("team-X-mails").unwrap().webhook_configs,
        vec![WebhookConfig {
            url: "http://mail-bridge.internal:8080/x".into(),
            send_resolved: true,
            max_alerts: 0,
        }]
    );
    assert_eq!(c.receiver("team-Y-pager").unwrap().webhook_configs.len(), 2);
    assert!(c.receiver("audit").unwrap().webhook_configs.is_empty());
    assert!(c.receiver("nobody").is_none());

    assert_eq!(
        c.inhibit_rules,
        vec![
            InhibitRule {
                source_matchers: vec![m("severity", MatchOp::Eq, "critical")],
                target_matchers: vec![m("severity", MatchOp::Eq, "warning")],
                equal: vec!["alertname".into(), "cluster".into(), "service".into()],
            },
            InhibitRule {
                source_matchers: vec![m("alertname", MatchOp::Eq, "ClusterDown")],
                target_matchers: vec![m("alertname", MatchOp::Re, "^(?:Node.*|Pod.*)$")],
                equal: vec!["cluster".into()],
            },
        ]
    );

    assert_eq!(c.route("0").map(|r| r.id.as_str()), Some("0"));
    assert_eq!(
        c.route("0.2.1").map(|r| r.receiver.as_str()),
        Some("team-Y-pager")
    );
    for missing in ["", "1", "0.4", "0.2.1.0", "0.x", "0..1", "0.-1"] {
        assert!(c.route(missing).is_none(), "{missing}");
    }
}

#[test]
fn routes_a_realistic_config() {
    let c = parse(REALISTIC);
    let route_of = |pairs: &[(&str, &str)]| -> Vec<(String, String, String)> {
        c.route_alert(&labels(pairs))
            .into_iter()
            .map(|r| (r.route.id.clone(), r.route.receiver.clone(), r.group_key))
            .collect()
    };
    assert_eq!(
        route_of(&[
            ("alertname", "A"),
            ("service", "foo1"),
            ("severity", "critical")
        ]),
        vec![(
            "0.0.0".into(),
            "team-X-pager".into(),
            r#"{}/{service=~"foo1|foo2|baz"}/{severity="critical"}:{alertname="A", service="foo1"}"#
                .into()
        )]
    );
    assert_eq!(
        route_of(&[("alertname", "A"), ("service", "nothing")]),
        vec![(
            "0".into(),
            "team-X-mails".into(),
            r#"{}:{alertname="A", service="nothing"}"#.into()
        )]
    );
    // 0.2.0 continues, but 0.2.1 wants another owner; the audit route is
    // a sibling after 0.2, which does not continue, so it is not reached.
    assert_eq!(
        route_of(&[
            ("service", "database-7"),
            ("owner", "team-X"),
            ("env", "prod"),
            ("tier", "1")
        ])
        .into_iter()
        .map(|(id, _, _)| id)
        .collect::<Vec<_>>(),
        vec!["0.2.0"]
    );
    // owner=team-Y skips 0.2.0 and stops at 0.2.1.
    assert_eq!(
        route_of(&[("service", "database-7"), ("owner", "team-Y")])
            .into_iter()
            .map(|(id, _, _)| id)
            .collect::<Vec<_>>(),
        vec!["0.2.1"]
    );
    // The audit route continues, and the root is not a match of its own
    // once a child matched.
    let audit = route_of(&[("env", "prod"), ("team", "web"), ("tier", "1"), ("x", "y")]);
    assert_eq!(
        audit,
        vec![(
            "0.3".into(),
            "audit".into(),
            r#"{}/{env="prod",team!~"infra|ops",tier="1"}:{env="prod", team="web", tier="1", x="y"}"#
                .into()
        )]
    );
}

/// Alertmanager's `dispatch/route_test.go` `TestRouteMatch` tree, with the
/// receivers it names.
const AM_ROUTE_TEST: &str = r#"
route:
  receiver: 'notify-def'

  routes:
  - match:
      owner: 'team-A'

    receiver: 'notify-A'

    routes:
    - match:
        env: 'testing'

      receiver: 'notify-testing'
      group_by: [...]

    - match:
        env: "production"

      receiver: 'notify-productionA'
      group_wait: 1m

      continue: true

    - match_re:
        env: "produ.*"
        job: ".*"

      receiver: 'notify-productionB'
      group_wait: 30s
      group_interval: 5m
      repeat_interval: 1h
      group_by: ['job']

  - match_re:
      owner: 'team-(B|C)'

    group_by: ['foo', 'bar']
    group_wait: 2m
    receiver: 'notify-BC'

  - match:
      group_by: 'role'
    group_by: ['role']

    routes:
    - match:
        env: 'testing'
      receiver: 'notify-testing'
      routes:
      - match:
          wait: 'long'
        group_wait: 2m
receivers:
- name: notify-def
- name: notify-A
- name: notify-testing
- name: notify-productionA
- name: notify-productionB
- name: notify-BC
"#;

#[test]
fn mirrors_alertmanagers_route_match_test() {
    let c = parse(AM_ROUTE_TEST);
    let none = GroupBy::Labels(vec![]);
    let by = |names: &[&str]| GroupBy::Labels(names.iter().map(|s| s.to_string()).collect());
    let (dw, di, dr) = (
        DEFAULT_GROUP_WAIT_MS,
        DEFAULT_GROUP_INTERVAL_MS,
        DEFAULT_REPEAT_INTERVAL_MS,
    );
    // (input, [(receiver, group_by, wait, interval, repeat, route key)])
    type Want = (&'static str, GroupBy, i64, i64, i64, &'static str);
    let cases: Vec<(LabelSet, Vec<Want>)> = vec![
        (
            labels(&[("owner", "team-A")]),
            vec![(
                "notify-A",
                none.clone(),
                dw,
                di,
                dr,
                r#"{}/{owner="team-A"}"#,
            )],
        ),
        (
            labels(&[("owner", "team-A"), ("env", "unset")]),
            vec![(
                "notify-A",
                none.clone(),
                dw,
                di,
                dr,
                r#"{}/{owner="team-A"}"#,
            )],
        ),
        (
            labels(&[("owner", "team-C")]),
            vec![(
                "notify-BC",
                by(&["bar", "foo"]),
                120_000,
                di,
                dr,
                r#"{}/{owner=~"^(?:team-(B|C))$"}"#,
            )],
        ),
        (
            labels(&[("owner", "team-A"), ("env", "testing")]),
            vec![(
                "notify-testing",
                GroupBy::All,
                dw,
                di,
                dr,
                r#"{}/{owner="team-A"}/{env="testing"}"#,
            )],
        ),
        (
            labels(&[("owner", "team-A"), ("env", "production")]),
            vec![
                (
                    "notify-productionA",
                    none.clone(),
                    60_000,
                    di,
                    dr,
                    r#"{}/{owner="team-A"}/{env="production"}"#,
                ),
                (
                    "notify-productionB",
                    by(&["job"]),
                    30_000,
                    300_000,
                    3_600_000,
                    r#"{}/{owner="team-A"}/{env=~"^(?:produ.*)$",job=~"^(?:.*)$"}"#,
                ),
            ],
        ),
        (
            labels(&[("group_by", "role")]),
            vec![(
                "notify-def",
                by(&["role"]),
                dw,
                di,
                dr,
                r#"{}/{group_by="role"}"#,
            )],
        ),
        (
            labels(&[("env", "testing"), ("group_by", "role")]),
            vec![(
                "notify-testing",
                by(&["role"]),
                dw,
                di,
                dr,
                r#"{}/{group_by="role"}/{env="testing"}"#,
            )],
        ),
        (
            labels(&[("env", "testing"), ("group_by", "role"), ("wait", "long")]),
            vec![(
                "notify-testing",
                by(&["role"]),
                120_000,
                di,
                dr,
                r#"{}/{group_by="role"}/{env="testing"}/{wait="long"}"#,
            )],
        ),
    ];
    for (input, want) in cases {
        let got: Vec<Want> = c
            .route_alert(&input)
            .into_iter()
            .map(|r| {
                let route_key = r
                    .group_key
                    .strip_suffix(&format!(":{}", format_label_set(&r.group_labels)))
                    .unwrap()
                    .to_string();
                (
                    // Leak to compare with the static expectations.
                    &*Box::leak(r.route.receiver.clone().into_boxed_str()),
                    r.route.group_by.clone(),
                    r.route.group_wait_ms,
                    r.route.group_interval_ms,
                    r.route.repeat_interval_ms,
                    &*Box::leak(route_key.into_boxed_str()),
                )
            })
            .collect();
        assert_eq!(got, want, "{input:?}");
    }
}

#[test]
fn group_labels_and_keys() {
    let c = parse(
        r#"
route:
  receiver: r
  routes:
    - matchers: [team="a"]
      group_by: [alertname, cluster]
    - matchers: [team="b"]
      group_by: ['...']
    - matchers: [team="c"]
      group_by: []
    - matchers: [team="d"]
receivers: [{name: r}]
"#,
    );
    let one = |pairs: &[(&str, &str)]| {
        let mut found = c.route_alert(&labels(pairs));
        assert_eq!(found.len(), 1);
        let r = found.remove(0);
        (r.group_labels, r.group_key)
    };
    // Labels absent from the alert are left out.
    assert_eq!(
        one(&[("team", "a"), ("alertname", "X"), ("instance", "i")]),
        (
            labels(&[("alertname", "X")]),
            r#"{}/{team="a"}:{alertname="X"}"#.to_string()
        )
    );
    assert_eq!(
        one(&[("team", "b"), ("alertname", "X")]),
        (
            labels(&[("team", "b"), ("alertname", "X")]),
            r#"{}/{team="b"}:{alertname="X", team="b"}"#.to_string()
        )
    );
    // `group_by: []` and no group_by under a root without one: one group.
    assert_eq!(
        one(&[("team", "c"), ("alertname", "X")]),
        (LabelSet::new(), r#"{}/{team="c"}:{}"#.to_string())
    );
    assert_eq!(
        one(&[("team", "d")]),
        (LabelSet::new(), r#"{}/{team="d"}:{}"#.to_string())
    );
    assert_eq!(
        one(&[("team", "e")]),
        (LabelSet::new(), "{}:{}".to_string())
    );

    // Values are quoted as Go's strconv.Quote.
    assert_eq!(
        one(&[
            ("team", "b"),
            ("q", "a\"b\\c"),
            ("w", "line\nnext\ttab\u{1}\u{7f}"),
            ("u", "ünï\u{a0}\u{200b}\u{1F600}")
        ])
        .1,
        r#"{}/{team="b"}:{q="a\"b\\c", team="b", u="ünï\u00a0\u200b😀", w="line\nnext\ttab\x01\x7f"}"#
    );
    // Route keys quote matcher values as Alertmanager's matcher String().
    let c = parse(
        r#"
route:
  receiver: r
  routes:
    - matchers: ['msg="a\"b"', '"odd name"=~"x\\.y"']
receivers: [{name: r}]
"#,
    );
    let found = c.route_alert(&labels(&[("msg", "a\"b"), ("odd name", "x.y")]));
    assert_eq!(
        found[0].group_key,
        r#"{}/{msg="a\"b","odd name"=~"x\\.y"}:{}"#
    );
}

#[test]
fn sibling_routes_with_equal_matchers_share_a_key_but_not_an_id() {
    let c = parse(
        r#"
route:
  receiver: r
  routes:
    - matchers: [a="1"]
      continue: true
    - matchers: [a="1"]
receivers: [{name: r}]
"#,
    );
    let found = c.route_alert(&labels(&[("a", "1")]));
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].group_key, found[1].group_key);
    assert_eq!(found[0].route.id, "0.0");
    assert_eq!(found[1].route.id, "0.1");
}

#[test]
fn continue_and_depth_first_order() {
    let c = parse(
        r#"
route:
  receiver: root
  routes:
    - receiver: a
      matchers: [x="1"]
      continue: true
      routes:
        - receiver: a1
          matchers: [y="1"]
          continue: true
        - receiver: a2
          matchers: [z="1"]
    - receiver: b
      matchers: [x=~"1|2"]
    - receiver: c
      matchers: [x="1"]
receivers: [{name: root}, {name: a}, {name: a1}, {name: a2}, {name: b}, {name: c}]
"#,
    );
    let receivers = |pairs: &[(&str, &str)]| -> Vec<String> {
        c.route_alert(&labels(pairs))
            .into_iter()
            .map(|r| r.route.receiver.clone())
            .collect()
    };
    assert_eq!(
        receivers(&[("x", "1"), ("y", "1"), ("z", "1")]),
        ["a1", "a2", "b"]
    );
    assert_eq!(receivers(&[("x", "1"), ("y", "1")]), ["a1", "b"]);
    // No child of `a` matches: `a` itself, then (continue) `b`.
    assert_eq!(receivers(&[("x", "1")]), ["a", "b"]);
    assert_eq!(receivers(&[("x", "2")]), ["b"]);
    assert_eq!(receivers(&[("x", "3")]), ["root"]);
    assert_eq!(receivers(&[]), ["root"]);
}

#[test]
fn inheritance_and_defaults() {
    let c = parse(
        r#"
route:
  receiver: top
  group_wait: 10s
  routes:
    - matchers: [a="1"]
      group_interval: 1h30m
      routes:
        - matchers: [b="1"]
          receiver: leaf
          repeat_interval: 500ms
        - matchers: [b="2"]
          receiver: ""
          group_by: [x]
          routes:
            - matchers: [c="1"]
receivers: [{name: top}, {name: leaf}]
"#,
    );
    let r = &c.route;
    assert_eq!(r.group_by, GroupBy::Labels(vec![]));
    assert_eq!(
        (r.group_wait_ms, r.group_interval_ms, r.repeat_interval_ms),
        (
            10_000,
            DEFAULT_GROUP_INTERVAL_MS,
            DEFAULT_REPEAT_INTERVAL_MS
        )
    );
    let a = &r.routes[0];
    assert_eq!(a.receiver, "top");
    assert_eq!((a.group_wait_ms, a.group_interval_ms), (10_000, 5_400_000));
    let leaf = &a.routes[0];
    assert_eq!(leaf.receiver, "leaf");
    assert_eq!(
        (
            leaf.group_wait_ms,
            leaf.group_interval_ms,
            leaf.repeat_interval_ms
        ),
        (10_000, 5_400_000, 500)
    );
    // An empty receiver inherits, as in Alertmanager.
    let b2 = &a.routes[1];
    assert_eq!(b2.receiver, "top");
    assert_eq!(b2.routes[0].group_by, GroupBy::Labels(vec!["x".into()]));
    assert_eq!(b2.routes[0].id, "0.0.1.0");
    assert_eq!(b2.routes[0].group_interval_ms, 5_400_000);
}

#[test]
fn durations() {
    let wait = |d: &str| -> Result<i64, String> {
        parse_config(&format!(
            "route: {{receiver: r, group_wait: {d}}}\nreceivers: [{{name: r}}]\n"
        ))
        .map(|c| c.route.group_wait_ms)
        .map_err(|e| e.to_string())
    };
    let ok = [
        ("0", 0),
        ("0s", 0),
        ("'0'", 0),
        ("30s", 30_000),
        ("5m", 300_000),
        ("4h", 14_400_000),
        ("1h30m", 5_400_000),
        ("500ms", 500),
        ("1s500ms", 1_500),
        ("1d", 86_400_000),
        ("1w", 604_800_000),
        ("1y", 31_536_000_000),
        (
            "1y1w1d1h1m1s1ms",
            31_536_000_000 + 604_800_000 + 86_400_000 + 3_661_001,
        ),
        ("90m", 5_400_000),
        ("292y", 292 * 31_536_000_000),
    ];
    for (text, want) in ok {
        assert_eq!(wait(text), Ok(want), "{text}");
    }
    let bad = [
        ("30", "not a valid duration string"),
        ("''", "empty duration string"),
        ("1m1h", "not a valid duration string"),
        ("1h1h", "not a valid duration string"),
        ("-1s", "not a valid duration string"),
        ("1.5h", "unknown unit \".\""),
        ("1x", "unknown unit \"x\""),
        ("s", "not a valid duration string"),
        ("' 1s'", "not a valid duration string"),
        ("293y", "duration out of range"),
        ("99999999999999999999999s", "duration out of range"),
        ("1ms1s", "not a valid duration string"),
    ];
    for (text, want) in bad {
        let e = wait(text).unwrap_err();
        assert!(e.contains(want) && e.contains("group_wait"), "{text}: {e}");
    }
}

#[test]
fn refusals() {
    let r = "\nreceivers: [{name: r}]\n";
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "the configuration is empty"),
        ("# nothing\n".into(), "no route provided"),
        ("receivers: [{name: r}]\n".into(), "no route provided"),
        ("route: {}\nreceivers: [{name: r}]\n".into(), "root route must specify a default receiver"),
        ("route: {receiver: ''}\nreceivers: [{name: r}]\n".into(), "root route must specify a default receiver"),
        (format!("route: {{receiver: r, matchers: [a=b]}}{r}"), "root route must not have any matchers"),
        (format!("route: {{receiver: r, match: {{a: b}}}}{r}"), "root route must not have any matchers"),
        (format!("route: {{receiver: r, match_re: {{a: b}}}}{r}"), "root route must not have any matchers"),
        (format!("route: {{receiver: r, continue: true}}{r}"), "cannot have continue in root route"),
        (format!("route: {{receiver: r, group_interval: 0s}}{r}"), "route 0: group_interval cannot be zero"),
        (format!("route: {{receiver: r, repeat_interval: '0'}}{r}"), "route 0: repeat_interval cannot be zero"),
        (format!("route: {{receiver: r, routes: [{{repeat_interval: 0ms}}]}}{r}"), "route 0.0: repeat_interval cannot be zero"),
        (format!("route: {{receiver: r, group_by: [a, '...']}}{r}"), "cannot have wildcard group_by"),
        (format!("route: {{receiver: r, group_by: [a, b, a]}}{r}"), "duplicated label \"a\" in group_by"),
        (format!("route: {{receiver: r, group_by: ['']}}{r}"), "invalid label name \"\" in group_by list"),
        (format!("route: {{receiver: r, routes: [{{receiver: x}}]}}{r}"), "undefined receiver \"x\" used in route 0.0"),
        ("route: {receiver: x}\nreceivers: [{name: r}]\n".into(), "undefined receiver \"x\" used in route 0"),
        ("route: {receiver: r}\n".into(), "undefined receiver \"r\" used in route 0"),
        (format!("route: {{receiver: r, routes: [{{matchers: ['a=~\"(\"']}}]}}{r}"), "route 0.0: matchers: bad regular expression"),
        (format!("route: {{receiver: r, routes: [{{matchers: ['a=\"b']}}]}}{r}"), "route 0.0: matchers: bad matcher"),
        (format!("route: {{receiver: r, routes: [{{match_re: {{a: '('}}}}]}}{r}"), "route 0.0: match_re: bad regular expression \"(\" for \"a\""),
        (format!("route: {{receiver: r, routes: [{{match: {{'a-b': c}}}}]}}{r}"), "route 0.0: match: invalid label name \"a-b\""),
        (format!("route: {{receiver: r, routes: [{{match: {{a: b, a: c}}}}]}}{r}"), "duplicate key \"a\""),
        (format!("route: {{receiver: r, routes: [{{matches: [a=b]}}]}}{r}"), "unknown field `matches`"),
        (format!("route: {{receiver: r, routes: [{{mute_time_intervals: [night]}}]}}{r}"), "route 0.0: mute_time_intervals: time intervals are not supported"),
        (format!("route: {{receiver: r, active_time_intervals: [day]}}{r}"), "active_time_intervals: time intervals are not supported"),
        (format!("route: {{receiver: r, labels: {{a: b}}}}{r}"), "route labels are not supported"),
        (format!("route: {{receiver: r, group_by: alertname}}{r}"), "invalid type"),
        (format!("route: {{receiver: r, continue: maybe}}{r}"), "invalid type"),
        (format!("route: {{receiver: r}}{r}templates: ['/etc/am/*.tmpl']\n"), "custom notification templates are not supported"),
        (format!("route: {{receiver: r}}{r}time_intervals: [{{name: x}}]\n"), "time_intervals: time intervals are not supported"),
        (format!("route: {{receiver: r}}{r}mute_time_intervals: [{{name: x}}]\n"), "mute_time_intervals: time intervals are not supported"),
        (format!("route: {{receiver: r}}{r}tracing: {{}}\n"), "unknown field `tracing`"),
        (format!("route: {{receiver: r}}{r}routes: []\n"), "unknown field `routes`"),
        (format!("route: {{receiver: r}}{r}global: 5\n"), "global: invalid type"),
        ("route: {receiver: r}\nreceivers: [{name: r}, {name: r}]\n".into(), "receiver name \"r\" is not unique"),
        ("route: {receiver: r}\nreceivers: [{name: r}, {webhook_configs: []}]\n".into(), "receivers[1]: missing name in receiver"),
        ("route: {receiver: r}\nreceivers: [{name: r}, {name: ''}]\n".into(), "receivers[1]: missing name in receiver"),
        ("route: {receiver: r}\nreceivers: [{name: r, email_configs: [{to: a@b.c}]}]\n".into(), "receiver \"r\": email_configs are not supported (only webhook_configs)"),
        ("route: {receiver: r}\nreceivers: [{name: r, slack_configs: [{}]}]\n".into(), "receiver \"r\": slack_configs are not supported (only webhook_configs)"),
        ("route: {receiver: r}\nreceivers: [{name: r, pagerduty_configs: [{}]}]\n".into(), "pagerduty_configs are not supported"),
        ("route: {receiver: r}\nreceivers: [{name: r, carrier_pigeon_configs: [{}]}]\n".into(), "unknown field `carrier_pigeon_configs`"),
        ("route: {receiver: r}\nreceivers: [{name: r, labels: {a: b}}]\n".into(), "receiver labels are not supported"),
        ("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{}]}]\n".into(), "receiver \"r\": webhook_configs[0]: url is required"),
        ("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: ''}]}]\n".into(), "url is required"),
        ("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url_file: /x}]}]\n".into(), "url_file is not supported"),
        ("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'https://x/'}]}]\n".into(), "https is not supported (no TLS client)"),
        ("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'ftp://x/'}]}]\n".into(), "must start with http://"),
        ("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'http://x/', http_config: {basic_auth: {username: u}}}]}]\n".into(), "webhook_configs[0]: http_config is not supported"),
        ("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'http://x/', timeout: 10s}]}]\n".into(), "timeout is not supported"),
        ("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'http://x/', payload: {a: b}}]}]\n".into(), "payload is not supported"),
        ("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'http://x/', max_alerts: -1}]}]\n".into(), "max_alerts"),
        ("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'http://x/', send_resolved: 2}]}]\n".into(), "send_resolved"),
        ("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'http://x/', headers: {}}]}]\n".into(), "unknown field `headers`"),
        (format!("route: {{receiver: r}}{r}inhibit_rules: [{{source_matchers: ['a=~(']}}]\n"), "inhibit_rules[0]: source_matchers: bad regular expression"),
        (format!("route: {{receiver: r}}{r}inhibit_rules: [{{target_matchers: ['=x']}}]\n"), "inhibit_rules[0]: target_matchers: bad matcher"),
        (format!("route: {{receiver: r}}{r}inhibit_rules: [{{}}, {{source_match: {{'1a': b}}}}]\n"), "inhibit_rules[1]: source_match: invalid label name \"1a\""),
        (format!("route: {{receiver: r}}{r}inhibit_rules: [{{target_match_re: {{a: '['}}}}]\n"), "inhibit_rules[0]: target_match_re: bad regular expression \"[\""),
        (format!("route: {{receiver: r}}{r}inhibit_rules: [{{equal: ['']}}]\n"), "inhibit_rules[0]: invalid label name \"\" in equal list"),
        (format!("route: {{receiver: r}}{r}inhibit_rules: [{{sources: []}}]\n"), "unknown field `sources`"),
        ("route: {receiver: r}\nreceivers: [{name: r}]\n---\nroute: {receiver: r}\n".into(), "more than one document"),
        ("route: [\n".into(), ""),
        ("- a\n- b\n".into(), "invalid type"),
        ("route: {receiver: r}\nroute: {receiver: r}\nreceivers: [{name: r}]\n".into(), "duplicate field `route`"),
        ("<<: {route: {receiver: r}}\nreceivers: [{name: r}]\n".into(), "unknown field `<<`"),
    ];
    for (yaml, want) in cases {
        refused(&yaml, want);
    }
}

#[test]
fn config_errors_name_the_key_and_place() {
    let e = parse_config(
        "route:\n  receiver: r\n  routes:\n    - recevier: x\nreceivers: [{name: r}]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown field `recevier`"), "{e}");
    assert!(e.contains("route.routes[0]"), "{e}");
    assert!(e.contains("line 4"), "{e}");
    assert!(e.starts_with("alertmanager config: "), "{e}");
}

#[test]
fn yaml_scalars_are_read_as_written() {
    let c = parse(
        r#"
route:
  receiver: r
  routes:
    - match: {code: 500, version: 1.10, flag: yes, hex: 0x1F}
receivers: [{name: r}]
"#,
    );
    assert_eq!(
        c.route.routes[0].matchers,
        vec![
            m("code", MatchOp::Eq, "500"),
            m("flag", MatchOp::Eq, "yes"),
            m("hex", MatchOp::Eq, "0x1F"),
            m("version", MatchOp::Eq, "1.10"),
        ]
    );
}

#[test]
fn accepted_and_ignored() {
    let c = parse(
        r#"
global:
  resolve_timeout: 1m
  anything_else: [1, 2]
route:
  receiver: r
receivers:
  - name: r
    slack_configs: []
    email_configs:
    webhook_configs:
      - url: http://x/
        http_config: {}
      - url: http://y/
        http_config:
templates: []
time_intervals: []
inhibit_rules:
  - name: named rules are fine
    equal: [b, a, b]
"#,
    );
    assert_eq!(c.receivers[0].webhook_configs.len(), 2);
    assert_eq!(
        c.inhibit_rules[0].equal,
        vec!["a".to_string(), "b".to_string()]
    );
    assert!(c.inhibit_rules[0].source_matchers.is_empty());
}

#[test]
fn default_config_is_its_own_original() {
    let d = default_config();
    assert_eq!(parse_config(&d.original), Ok(d.clone()));
    assert_eq!(d.route.receiver, "default");
    assert!(d.receiver("default").unwrap().webhook_configs.is_empty());
    let found = d.route_alert(&labels(&[("alertname", "X")]));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].group_key, "{}:{}");
}

#[test]
fn config_survives_a_json_round_trip() {
    let c = parse(REALISTIC);
    let json = serde_json::to_string(&c).unwrap();
    let back: AlertmanagerConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
}

#[test]
fn webhook_urls() {
    let ok = [
        ("http://x/", "x", 80, "/"),
        ("http://x", "x", 80, "/"),
        ("HTTP://Host.Example:8080", "Host.Example", 8080, "/"),
        ("http://x:1/a/b?c=d&e=f", "x", 1, "/a/b?c=d&e=f"),
        ("http://x?q=1", "x", 80, "/?q=1"),
        ("http://x/p#frag", "x", 80, "/p"),
        ("http://10.1.2.3:65535/hook", "10.1.2.3", 65535, "/hook"),
        ("http://[::1]:9/h", "[::1]", 9, "/h"),
        ("http://[fd00::7]/h", "[fd00::7]", 80, "/h"),
        (
            "http://my_host-1.internal/%20x",
            "my_host-1.internal",
            80,
            "/%20x",
        ),
    ];
    for (url, host, port, path) in ok {
        assert_eq!(
            parse_webhook_url(url),
            Ok(WebhookUrl {
                host: host.into(),
                port,
                path_and_query: path.into()
            }),
            "{url}"
        );
    }
    let bad = [
        ("https://x/", "https is not supported"),
        ("HTTPS://x/", "https is not supported"),
        ("x/", "must start with http://"),
        ("http:/x/", "must start with http://"),
        ("", "must start with http://"),
        ("http://", "invalid host"),
        ("http:///p", "invalid host"),
        ("http://:80/", "invalid host"),
        ("http://u:p@x/", "credentials in the URL are not supported"),
        ("http://x:/", "invalid port"),
        ("http://x:0/", "invalid port"),
        ("http://x:65536/", "invalid port"),
        ("http://x:123456/", "invalid port"),
        ("http://x:8a/", "invalid port"),
        ("http://x:80:80/", "invalid port"),
        ("http://[::1/", "invalid host"),
        ("http://[]/", "invalid host"),
        ("http://[::1]x/", "invalid host"),
        ("http://[zz]/", "invalid host"),
        ("http://x y/", "which a URL may not contain"),
        ("http://x/{{ .GroupLabels }}", "which a URL may not contain"),
        ("http://ünï/", "which a URL may not contain"),
        ("http://x/\n", "which a URL may not contain"),
    ];
    for (url, want) in bad {
        let e = parse_webhook_url(url).unwrap_err().to_string();
        assert!(e.contains(want), "{url:?}: {e}");
    }
}

fn chain(depth: usize) -> String {
    // A route chain `depth` routes deep, the root included.
    let mut yaml = String::from("receivers: [{name: r}]\nroute:\n  receiver: r\n");
    let mut indent = String::from("  ");
    for level in 1..depth {
        yaml.push_str(&format!(
            "{indent}routes:\n{indent}- matchers: ['l{level}=\"x\"']\n"
        ));
        indent.push_str("  ");
    }
    yaml
}

#[test]
fn route_depth_limit() {
    let c = parse(&chain(MAX_ROUTE_DEPTH));
    let mut deepest = &c.route;
    while let Some(child) = deepest.routes.first() {
        deepest = child;
    }
    assert_eq!(deepest.id.split('.').count(), MAX_ROUTE_DEPTH);
    // The deepest tree still fits serde_json's nesting limit, for
    // snapshots.
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(
        serde_json::from_str::<AlertmanagerConfig>(&json).unwrap(),
        c
    );
    refused(
        &chain(MAX_ROUTE_DEPTH + 1),
        "routes nest deeper than the limit of 50 levels",
    );
    // Far deeper: the YAML parser stops first, without overflowing a stack.
    let deep = format!(
        "receivers: [{{name: r}}]\nroute: {{receiver: r, {}{}}}\n",
        "routes: [{".repeat(1000),
        "}]".repeat(1000)
    );
    refused(&deep, "recursion limit exceeded");
}

#[test]
fn route_count_limit() {
    let mut yaml = String::from("receivers: [{name: r}]\nroute:\n  receiver: r\n  routes:\n");
    for i in 0..MAX_ROUTES - 1 {
        yaml.push_str(&format!("  - matchers: [i=\"{i}\"]\n"));
    }
    let c = parse(&yaml);
    assert_eq!(c.route.routes.len(), MAX_ROUTES - 1);
    yaml.push_str("  - matchers: [i=\"last\"]\n");
    refused(&yaml, "more than the limit of 10000 routes");
}

#[test]
fn size_and_expansion_limits() {
    let mut yaml = String::from("route: {receiver: r}\nreceivers: [{name: r}]\n");
    yaml.push_str(&format!("# {}\n", "x".repeat(MAX_CONFIG_BYTES)));
    refused(&yaml, "more than the limit of 1048576");

    // A billion laughs: nine levels of ten aliases each.
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(",");
        bomb.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
    }
    refused(&bomb, "");
    // One large anchor repeated: few alias jumps, many nodes.
    let mut wide = String::from("global:\n  big: &big [");
    wide.push_str(&vec!["1"; 50_000].join(","));
    wide.push_str("]\n  copies: [");
    wide.push_str(&vec!["*big"; 50_000].join(","));
    wide.push_str("]\nroute: {receiver: r}\nreceivers: [{name: r}]\n");
    assert!(wide.len() < MAX_CONFIG_BYTES);
    refused(&wide, "expands to more than 1000000 YAML nodes");
    // A few aliases are fine.
    let c = parse(
        "route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [&hook {url: 'http://x/'}, *hook]}]\n",
    );
    assert_eq!(c.receivers[0].webhook_configs.len(), 2);
}

#[test]
fn unknown_top_level_keys_are_refused_even_when_prefixed() {
    refused(
        "x-webhook: &hook {url: 'http://x/'}\nroute: {receiver: r}\nreceivers: [{name: r}]\n",
        "",
    );
}

// ---------------------------------------------------------------------
// Inhibition.
// ---------------------------------------------------------------------

fn rule(source: &str, target: &str, equal: &[&str]) -> InhibitRule {
    InhibitRule {
        source_matchers: parse_matchers(source).expect("valid source matchers"),
        target_matchers: parse_matchers(target).expect("valid target matchers"),
        equal: equal.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn mirrors_alertmanagers_inhibit_rule_matches_test() {
    let rules = [rule("s1=1", "t1=1", &["e"]), rule("s2=1", "t2=1", &["e"])];
    // Firing: one alert matching rule 1's source only, one matching both
    // sides of rule 2.
    let source1 = labels(&[("s1", "1"), ("t1", "2"), ("e", "1")]);
    let source2 = labels(&[("s2", "1"), ("t2", "1"), ("e", "1")]);
    let firing = [&source1, &source2];
    let cases = [
        (labels(&[("t1", "1"), ("e", "1")]), true),
        (labels(&[("t2", "1"), ("e", "1")]), true),
        (labels(&[("t1", "1"), ("t3", "1"), ("e", "1")]), true),
        (labels(&[("t1", "1"), ("t2", "1"), ("e", "1")]), true),
        (labels(&[("t1", "0"), ("e", "1")]), false),
        // Matches both sides of rule 1; source1 matches only the source
        // side, so it still inhibits.
        (labels(&[("s1", "1"), ("t1", "1"), ("e", "1")]), true),
        // Matches both sides of rule 2; source2 does too, so it does not.
        (labels(&[("s2", "1"), ("t2", "1"), ("e", "1")]), false),
        (labels(&[("t1", "1"), ("e", "0")]), false),
    ];
    for (target, want) in cases {
        assert_eq!(inhibited(&rules, &target, &firing), want, "{target:?}");
    }
}

#[test]
fn inhibition_equal_labels() {
    let r = rule(
        "severity=critical",
        "severity=warning",
        &["cluster", "zone"],
    );
    let warn = labels(&[("severity", "warning"), ("cluster", "a"), ("zone", "1")]);
    let crit_same = labels(&[("severity", "critical"), ("cluster", "a"), ("zone", "1")]);
    let crit_other = labels(&[("severity", "critical"), ("cluster", "b"), ("zone", "1")]);
    let crit_partial = labels(&[("severity", "critical"), ("cluster", "a")]);
    assert!(r.mutes(&warn, &[&crit_same]));
    assert!(!r.mutes(&warn, &[&crit_other]));
    assert!(!r.mutes(&warn, &[&crit_partial]));
    assert!(!r.mutes(&warn, &[]));
    assert_eq!(
        r.inhibiting_source(&warn, &[&crit_other, &crit_same]),
        Some(&crit_same)
    );
    // Absent equals absent, and absent equals "".
    let warn_bare = labels(&[("severity", "warning")]);
    let crit_bare = labels(&[("severity", "critical")]);
    let crit_empty = labels(&[("severity", "critical"), ("cluster", ""), ("zone", "")]);
    assert!(r.mutes(&warn_bare, &[&crit_bare]));
    assert!(r.mutes(&warn_bare, &[&crit_empty]));
    assert!(!r.mutes(&warn_bare, &[&crit_same]));
    // No equal labels: any firing source will do.
    let any = rule("alertname=Down", "", &[]);
    assert!(any.mutes(&labels(&[("x", "y")]), &[&labels(&[("alertname", "Down")])]));
    assert!(!any.mutes(&labels(&[("x", "y")]), &[&labels(&[("alertname", "Up")])]));
}

#[test]
fn an_alert_does_not_inhibit_itself() {
    // Both sides match every critical alert.
    let r = rule(
        "severity=critical",
        "severity=~critical|warning",
        &["alertname"],
    );
    let a = labels(&[
        ("severity", "critical"),
        ("alertname", "X"),
        ("instance", "1"),
    ]);
    let b = labels(&[
        ("severity", "critical"),
        ("alertname", "X"),
        ("instance", "2"),
    ]);
    let w = labels(&[("severity", "warning"), ("alertname", "X")]);
    assert!(!r.mutes(&a, &[&a]));
    // Two alerts matching both sides do not mute each other either.
    assert!(!r.mutes(&a, &[&a, &b]));
    assert!(!r.mutes(&b, &[&a, &b]));
    // The warning matches only the target side.
    assert!(r.mutes(&w, &[&a, &b]));
    assert!(!inhibited(&[r], &a, &[&a, &b]));
}

#[test]
fn inhibition_from_a_parsed_config() {
    let c = parse(REALISTIC);
    let target = labels(&[
        ("alertname", "NodeDiskFull"),
        ("cluster", "eu1"),
        ("severity", "warning"),
    ]);
    let down = labels(&[("alertname", "ClusterDown"), ("cluster", "eu1")]);
    let down_elsewhere = labels(&[("alertname", "ClusterDown"), ("cluster", "us1")]);
    assert!(inhibited(&c.inhibit_rules, &target, &[&down]));
    assert!(!inhibited(&c.inhibit_rules, &target, &[&down_elsewhere]));
    let crit = labels(&[
        ("alertname", "NodeDiskFull"),
        ("cluster", "eu1"),
        ("severity", "critical"),
    ]);
    // Rule 1: equal on alertname, cluster, service (absent on both).
    assert!(inhibited(&c.inhibit_rules, &target, &[&crit]));
    assert!(!inhibited(
        &c.inhibit_rules,
        &crit,
        &[&crit, &down_elsewhere]
    ));
}

// ---------------------------------------------------------------------
// Arbitrary input never panics.
// ---------------------------------------------------------------------

/// Picks one of the given YAML snippets.
fn one_of(options: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    proptest::sample::select(options).prop_map(str::to_string)
}

/// A flow mapping `{k: v, ...}` from optional entries.
fn flow_map(entries: Vec<Option<String>>) -> String {
    let entries: Vec<String> = entries.into_iter().flatten().collect();
    format!("{{{}}}", entries.join(", "))
}

/// A route mapping whose keys are mostly ones the parser knows, with
/// values that are valid more often than not.
fn route_yaml() -> impl Strategy<Value = String> {
    let fields = (
        proptest::option::of(one_of(&[
            "receiver: r",
            "receiver: s",
            "receiver: x",
            "receiver: ''",
        ])),
        proptest::option::of(one_of(&[
            "group_by: [a]",
            "group_by: ['...']",
            "group_by: []",
            "group_by: [a, b]",
            "group_by: [a, a]",
            "group_by: [a, '...']",
        ])),
        proptest::option::of(one_of(&[
            "group_wait: 0",
            "group_wait: 1m30s",
            "group_interval: 10s",
            "group_interval: 0s",
            "repeat_interval: 1d",
            "repeat_interval: 1s1m",
            "group_wait: 10",
        ])),
        proptest::option::of(one_of(&[
            "matchers: ['a=1']",
            "matchers: ['a=~\"1|2\"', 'b!=3']",
            "matchers: ['{a!~\"3\", b=\"2\"}']",
            "matchers: ['a=~\"(\"']",
            "matchers: ['a']",
            "match: {a: '1'}",
            "match: {b: '2', a: '1'}",
            "match_re: {a: '[12]'}",
            "match_re: {a: '['}",
        ])),
        proptest::option::of(one_of(&[
            "continue: true",
            "continue: false",
            "continue: true",
            "continue: false",
            "continue: true",
            "continue: false",
            "continue: true",
        ])),
        proptest::option::weighted(
            0.05,
            one_of(&["bogus: 1", "labels: {a: b}", "mute_time_intervals: []"]),
        ),
    );
    let leaf = fields
        .clone()
        .prop_map(|(a, b, c, d, e, f)| flow_map(vec![a, b, c, d, e, f]));
    leaf.prop_recursive(4, 24, 3, move |inner| {
        (fields.clone(), proptest::collection::vec(inner, 0..3)).prop_map(
            |((a, b, c, d, e, f), children)| {
                let routes = Some(format!("routes: [{}]", children.join(", ")));
                flow_map(vec![a, b, c, d, e, f, routes])
            },
        )
    })
}

fn receiver_yaml() -> impl Strategy<Value = String> {
    let webhook = (
        one_of(&[
            "url: 'http://x/'",
            "url: 'http://x:9/p?q'",
            "url: 'https://x/'",
            "url: ''",
            "url: 'http://[::1]/'",
            "url: 'http://x:0/'",
        ]),
        proptest::option::of(one_of(&["send_resolved: false", "send_resolved: true"])),
        proptest::option::of(one_of(&[
            "max_alerts: 3",
            "max_alerts: -1",
            "http_config: {}",
        ])),
    )
        .prop_map(|(a, b, c)| flow_map(vec![Some(a), b, c]));
    (
        one_of(&[
            "name: s", "name: t", "name: u", "name: v", "name: r", "name: ''",
        ]),
        proptest::collection::vec(webhook, 0..3),
        proptest::option::weighted(
            0.2,
            one_of(&[
                "email_configs: []",
                "slack_configs: [{}]",
                "pigeon_configs: []",
            ]),
        ),
    )
        .prop_map(|(name, hooks, other)| {
            let hooks = Some(format!("webhook_configs: [{}]", hooks.join(", ")));
            flow_map(vec![Some(name), hooks, other])
        })
}

fn inhibit_rule_yaml() -> impl Strategy<Value = String> {
    (
        proptest::option::of(one_of(&[
            "source_matchers: ['a=1']",
            "source_match: {a: '1'}",
            "source_match_re: {a: '1|2'}",
            "source_matchers: ['a=~(']",
        ])),
        proptest::option::of(one_of(&[
            "target_matchers: ['b=2']",
            "target_match: {b: '2'}",
            "target_match_re: {b: '.*'}",
        ])),
        proptest::option::of(one_of(&["equal: [c]", "equal: []", "equal: ['']"])),
    )
        .prop_map(|(a, b, c)| flow_map(vec![a, b, c]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn parse_config_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = parse_config(&text);
    }

    #[test]
    fn parse_config_never_panics_on_generated_configs(
        routes in proptest::collection::vec(route_yaml(), 0..4),
        receivers in proptest::collection::vec(receiver_yaml(), 0..3),
        rules in proptest::collection::vec(inhibit_rule_yaml(), 0..3),
    ) {
        let text = format!(
            "route: {{receiver: r, routes: [{}]}}\n\
             receivers: [{{name: r}}, {}]\n\
             inhibit_rules: [{}]\n",
            routes.join(", "),
            receivers.join(", "),
            rules.join(", "),
        );
        if let Ok(c) = parse_config(&text) {
            // Whatever is accepted routes without panicking and keeps its
            // invariants.
            let found = c.route_alert(&labels(&[("a", "b"), ("r", "r")]));
            prop_assert!(!found.is_empty());
            for r in found {
                prop_assert!(c.receiver(&r.route.receiver).is_some());
                prop_assert!(r.route.group_interval_ms > 0 && r.route.repeat_interval_ms > 0);
                prop_assert_eq!(c.route(&r.route.id), Some(r.route));
            }
        }
    }

    #[test]
    fn route_alert_matches_a_naive_model(
        alert in proptest::collection::btree_map("[abc]", "[123]", 0..3),
    ) {
        // The realistic tree, routed by a restatement of Alertmanager's
        // algorithm over the public fields.
        fn naive<'a>(r: &'a Route, l: &LabelSet, out: &mut Vec<&'a str>) -> bool {
            if !r.matchers.iter().all(|m| m.matches(l)) {
                return false;
            }
            let mut any = false;
            for child in &r.routes {
                if naive(child, l, out) {
                    any = true;
                    if !child.continue_matching {
                        break;
                    }
                }
            }
            if !any {
                out.push(&r.id);
            }
            true
        }
        let c = parse(&REALISTIC.replace("service", "a").replace("severity", "b").replace("owner", "c"));
        let mut want = Vec::new();
        naive(&c.route, &alert, &mut want);
        let got: Vec<&str> = c.route_alert(&alert).iter().map(|r| r.route.id.as_str()).collect();
        prop_assert_eq!(got, want);
    }
}
