//! Rendering of Admin, Ingest and Query responses as aligned text tables
//! (for people) and JSON values (for tools). Every function here is pure:
//! it takes a response and returns text or a `serde_json::Value`; the
//! caller prints.
//!
//! The JSON field names are a contract (`CONTRACTS.md`, `raftwatchctl`):
//! tools parse them, so renaming one breaks users. Node ids that the
//! server reports as 0 for "unknown" (a leader) are rendered as `null`
//! in JSON and `-` in tables.

use raftwatch_proto::v1::{
    ClusterStatusResponse, Consistency, Label, ListMembersResponse, ListShardsResponse, MemberInfo,
    MemberResponse, PromqlResponse, RebalanceResponse, Sample, ShardInfo, TaskInfo, WriteResponse,
};
use serde_json::{Value, json};

/// cluster_status_json renders `cluster status` as one object with
/// `control_leader` (null when unknown), `members`
/// (`id, addr, http_addr, state, role, healthy`), `shards`
/// (`id, leader, leader_hint, replicas, learners, term, commit_index,
/// applied_index, epoch, range_start, range_end`), `tasks`, `version` and
/// `replication_factor`.
pub fn cluster_status_json(status: &ClusterStatusResponse) -> Value {
    json!({
        "control_leader": node_or_null(status.control_leader),
        "members": status.members.iter().map(member_json).collect::<Vec<_>>(),
        "shards": status.shards.iter().map(shard_json).collect::<Vec<_>>(),
        "tasks": status.tasks.iter().map(task_json).collect::<Vec<_>>(),
        "version": status.version,
        "replication_factor": status.replication_factor,
    })
}

/// cluster_status_table renders `cluster status` for people: the members
/// table, the control leader, the shards table, and the tasks in flight
/// when there are any.
pub fn cluster_status_table(status: &ClusterStatusResponse) -> String {
    let mut out = members_table(&status.members);
    out.push('\n');
    out.push_str(&format!(
        "control leader: {}\n",
        match status.control_leader {
            0 => "unknown".to_owned(),
            id => id.to_string(),
        }
    ));
    out.push_str(&format!(
        "control version: {}  replication factor: {}\n",
        status.version, status.replication_factor
    ));
    out.push('\n');
    out.push_str(&shards_table(&status.shards));
    if !status.tasks.is_empty() {
        out.push('\n');
        out.push_str("tasks in flight:\n");
        out.push_str(&tasks_table(&status.tasks));
    }
    out
}

/// members_list_json renders `members list` as `{"members": [...],
/// "version": N}`, each member as in [`cluster_status_json`].
pub fn members_list_json(list: &ListMembersResponse) -> Value {
    json!({
        "members": list.members.iter().map(member_json).collect::<Vec<_>>(),
        "version": list.version,
    })
}

/// members_table renders members as a table with the columns
/// `ID ADDR STATE ROLE HEALTHY HTTP_ADDR`.
pub fn members_table(members: &[MemberInfo]) -> String {
    let rows = members
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                or_dash(&m.grpc_addr),
                or_dash(&m.state),
                or_dash(&m.role),
                if m.healthy { "yes" } else { "no" }.to_owned(),
                or_dash(&m.http_addr),
            ]
        })
        .collect();
    table(
        &["ID", "ADDR", "STATE", "ROLE", "HEALTHY", "HTTP_ADDR"],
        rows,
    )
}

/// member_change_json renders the answer to `members add|promote|drain|
/// remove` as `{"member": {...} | null, "version": N}`.
pub fn member_change_json(response: &MemberResponse) -> Value {
    json!({
        "member": response.member.as_ref().map(member_json),
        "version": response.version,
    })
}

/// member_change_text renders the answer to `members add|promote|drain|
/// remove` as one line; `done` says what happened (e.g. "added").
pub fn member_change_text(done: &str, node_id: u64, response: &MemberResponse) -> String {
    match &response.member {
        Some(m) => format!(
            "{done} member {} ({}): state {}, role {}; control version {}\n",
            m.id,
            or_dash(&m.grpc_addr),
            or_dash(&m.state),
            or_dash(&m.role),
            response.version
        ),
        None => format!(
            "{done} member {node_id}; control version {}\n",
            response.version
        ),
    }
}

/// shards_list_json renders `shards list` as `{"shards": [...], "tasks":
/// [...], "version": N}`, each shard and task as in
/// [`cluster_status_json`].
pub fn shards_list_json(list: &ListShardsResponse) -> Value {
    json!({
        "shards": list.shards.iter().map(shard_json).collect::<Vec<_>>(),
        "tasks": list.tasks.iter().map(task_json).collect::<Vec<_>>(),
        "version": list.version,
    })
}

/// shards_list_table renders `shards list`: the shards table, then the
/// tasks in flight when there are any.
pub fn shards_list_table(list: &ListShardsResponse) -> String {
    let mut out = shards_table(&list.shards);
    if !list.tasks.is_empty() {
        out.push('\n');
        out.push_str("tasks in flight:\n");
        out.push_str(&tasks_table(&list.tasks));
    }
    out
}

/// shards_table renders shards as a table with the columns
/// `SHARD LEADER REPLICAS TERM COMMIT APPLIED EPOCH LEARNERS`; replica
/// lists are comma-separated node ids, `-` when empty.
pub fn shards_table(shards: &[ShardInfo]) -> String {
    let rows = shards
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                node_or_dash(s.leader),
                id_list(&s.replicas),
                s.term.to_string(),
                s.commit_index.to_string(),
                s.applied_index.to_string(),
                s.epoch.to_string(),
                id_list(&s.learners),
            ]
        })
        .collect();
    table(
        &[
            "SHARD", "LEADER", "REPLICAS", "TERM", "COMMIT", "APPLIED", "EPOCH", "LEARNERS",
        ],
        rows,
    )
}

/// tasks_table renders placement tasks as a table with the columns
/// `TASK KIND SHARD FROM TO STEP`.
pub fn tasks_table(tasks: &[TaskInfo]) -> String {
    let rows = tasks
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                or_dash(&t.kind),
                t.shard.to_string(),
                node_or_dash(t.from),
                node_or_dash(t.to),
                or_dash(&t.step),
            ]
        })
        .collect();
    table(&["TASK", "KIND", "SHARD", "FROM", "TO", "STEP"], rows)
}

/// task_json renders one placement task as `{"id", "kind", "shard",
/// "from", "to", "step"}`, `from`/`to` null when 0.
pub fn task_json(task: &TaskInfo) -> Value {
    json!({
        "id": task.id,
        "kind": task.kind,
        "shard": task.shard,
        "from": node_or_null(task.from),
        "to": node_or_null(task.to),
        "step": task.step,
    })
}

/// task_text renders a recorded task as one line for people.
pub fn task_text(task: &TaskInfo) -> String {
    format!(
        "task {} recorded: {} shard {} from {} to {} (next step: {})\n",
        task.id,
        or_dash(&task.kind),
        task.shard,
        node_or_dash(task.from),
        node_or_dash(task.to),
        or_dash(&task.step)
    )
}

/// rebalance_json renders `shards rebalance` as `{"tasks": [...]}`.
pub fn rebalance_json(response: &RebalanceResponse) -> Value {
    json!({ "tasks": response.tasks.iter().map(task_json).collect::<Vec<_>>() })
}

/// rebalance_table renders `shards rebalance`: the planned tasks, or a
/// line saying there is nothing to do.
pub fn rebalance_table(response: &RebalanceResponse) -> String {
    if response.tasks.is_empty() {
        return "nothing to rebalance: replicas and leaders are already even\n".to_owned();
    }
    let mut out = format!("planned {} task(s):\n", response.tasks.len());
    out.push_str(&tasks_table(&response.tasks));
    out
}

/// write_json renders `write` as `{"samples_accepted": N, "rejections":
/// [{"series_index", "sample_index", "reason"}]}`.
pub fn write_json(response: &WriteResponse) -> Value {
    json!({
        "samples_accepted": response.samples_accepted,
        "rejections": response
            .rejections
            .iter()
            .map(|r| json!({
                "series_index": r.series_index,
                "sample_index": r.sample_index,
                "reason": r.reason,
            }))
            .collect::<Vec<_>>(),
    })
}

/// write_table renders `write` for people: the accepted count. The
/// rejections go to stderr, rendered by [`rejection_lines`].
pub fn write_table(response: &WriteResponse) -> String {
    format!("samples accepted: {}\n", response.samples_accepted)
}

/// rejection_lines renders one `error: rejected series I sample J: REASON`
/// line per rejected sample of a `write` (empty when none was rejected).
pub fn rejection_lines(response: &WriteResponse) -> String {
    response
        .rejections
        .iter()
        .map(|r| {
            format!(
                "error: rejected series {} sample {}: {}\n",
                r.series_index, r.sample_index, r.reason
            )
        })
        .collect()
}

/// promql_json renders `query` as Prometheus's `data` object, with the
/// CLI's number conventions: `{"resultType": "vector"|"matrix"|"scalar"|
/// "string", "result": ..., "warnings": [...], "infos": [...], "read":
/// {"consistency", "min_applied_index", "max_lag_entries"}}`. A vector
/// element is `{"metric": {name: value}, "value": [timestamp_ms, value]}`,
/// a matrix series `{"metric": {...}, "values": [[timestamp_ms, value],
/// ...]}`, a scalar `[timestamp_ms, value]`, a string `[timestamp_ms,
/// "text"]`. Timestamps are integer milliseconds; a non-finite value is
/// the string `"NaN"`, `"+Inf"` or `"-Inf"` (JSON has no such numbers).
pub fn promql_json(response: &PromqlResponse) -> Value {
    let metric = |labels: &[Label]| -> Value {
        Value::Object(
            labels
                .iter()
                .map(|l| (l.name.clone(), Value::String(l.value.clone())))
                .collect(),
        )
    };
    let point = |p: &Sample| json!([p.timestamp_ms, float_json(p.value)]);
    let result = match response.result_type.as_str() {
        "scalar" => response.scalar.as_ref().map_or(Value::Null, point),
        "string" => response
            .string
            .as_ref()
            .map_or(Value::Null, |s| json!([s.timestamp_ms, s.value])),
        "matrix" => Value::Array(
            response
                .series
                .iter()
                .map(|s| {
                    json!({
                        "metric": metric(&s.labels),
                        "values": s.samples.iter().map(point).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ),
        _ => Value::Array(
            response
                .series
                .iter()
                .map(|s| {
                    json!({
                        "metric": metric(&s.labels),
                        "value": s.samples.first().map_or(Value::Null, point),
                    })
                })
                .collect(),
        ),
    };
    let read = response.read.as_ref().map_or(Value::Null, |r| {
        json!({
            "consistency": match Consistency::try_from(r.consistency) {
                Ok(Consistency::Stale) => "stale",
                _ => "linearizable",
            },
            "min_applied_index": r.min_applied_index,
            "max_lag_entries": r.max_lag_entries,
        })
    });
    json!({
        "resultType": response.result_type,
        "result": result,
        "warnings": response.warnings,
        "infos": response.infos,
        "read": read,
    })
}

/// promql_table renders `query` for people: one `{labels} value @ts` line
/// per sample (vector elements, then every point of every matrix series),
/// `scalar value @ts`, or `string "text" @ts`, with label values quoted
/// and escaped as in PromQL. Warnings and infos go to stderr
/// ([`promql_notes`]).
pub fn promql_table(response: &PromqlResponse) -> String {
    let mut out = String::new();
    match response.result_type.as_str() {
        "scalar" => {
            if let Some(p) = &response.scalar {
                out.push_str(&format!(
                    "scalar {} @{}\n",
                    float_text(p.value),
                    p.timestamp_ms
                ));
            }
        }
        "string" => {
            if let Some(s) = &response.string {
                out.push_str(&format!(
                    "string \"{}\" @{}\n",
                    escape_value(&s.value),
                    s.timestamp_ms
                ));
            }
        }
        _ => {
            for s in &response.series {
                let labels = labels_text(&s.labels);
                for p in &s.samples {
                    out.push_str(&format!(
                        "{labels} {} @{}\n",
                        float_text(p.value),
                        p.timestamp_ms
                    ));
                }
            }
        }
    }
    out
}

/// promql_notes are the warning and info lines for stderr (`warning:
/// ...`, `info: ...`).
pub fn promql_notes(response: &PromqlResponse) -> String {
    let mut out = String::new();
    for w in &response.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    for i in &response.infos {
        out.push_str(&format!("info: {i}\n"));
    }
    out
}

/// labels_text renders labels as `{a="b", c="d"}` in the given order,
/// escaping `\`, `"` and newlines in values.
pub fn labels_text(labels: &[Label]) -> String {
    let inner = labels
        .iter()
        .map(|l| format!("{}=\"{}\"", l.name, escape_value(&l.value)))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{{{inner}}}")
}

/// float_text renders a sample value as Prometheus does: `NaN`, `+Inf`,
/// `-Inf`, or the shortest decimal that reads back as the same float.
pub fn float_text(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        value.to_string()
    }
}

fn float_json(value: f64) -> Value {
    match serde_json::Number::from_f64(value) {
        Some(n) => Value::Number(n),
        None => Value::String(float_text(value)),
    }
}

fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn member_json(m: &MemberInfo) -> Value {
    json!({
        "id": m.id,
        "addr": m.grpc_addr,
        "http_addr": m.http_addr,
        "state": m.state,
        "role": m.role,
        "healthy": m.healthy,
    })
}

fn shard_json(s: &ShardInfo) -> Value {
    json!({
        "id": s.id,
        "leader": node_or_null(s.leader),
        "leader_hint": node_or_null(s.leader_hint),
        "replicas": s.replicas,
        "learners": s.learners,
        "term": s.term,
        "commit_index": s.commit_index,
        "applied_index": s.applied_index,
        "epoch": s.epoch,
        "range_start": s.range_start,
        "range_end": s.range_end,
    })
}

fn node_or_null(id: u64) -> Value {
    match id {
        0 => Value::Null,
        id => Value::from(id),
    }
}

fn node_or_dash(id: u64) -> String {
    match id {
        0 => "-".to_owned(),
        id => id.to_string(),
    }
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

fn id_list(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "-".to_owned();
    }
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// Left-aligns every column to its widest cell, two spaces apart, with no
/// trailing whitespace. Widths count characters, not bytes.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header_row: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header_row).chain(rows.iter()) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = width.saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftwatch_proto::v1::{PromqlString, ReadInfo, Rejection, Series};

    fn status() -> ClusterStatusResponse {
        ClusterStatusResponse {
            control_leader: 2,
            members: vec![
                MemberInfo {
                    id: 1,
                    grpc_addr: "127.0.0.1:7600".to_owned(),
                    http_addr: "127.0.0.1:7601".to_owned(),
                    state: "active".to_owned(),
                    role: "voter".to_owned(),
                    healthy: true,
                },
                MemberInfo {
                    id: 12,
                    grpc_addr: "10.0.0.12:7600".to_owned(),
                    http_addr: String::new(),
                    state: "joining".to_owned(),
                    role: "learner".to_owned(),
                    healthy: false,
                },
            ],
            shards: vec![ShardInfo {
                id: 3,
                range_start: 0,
                range_end: u64::MAX,
                replicas: vec![1, 2, 3],
                epoch: 4,
                leader: 0,
                term: 7,
                commit_index: 120,
                applied_index: 118,
                learners: vec![12],
                leader_hint: 2,
            }],
            tasks: vec![TaskInfo {
                id: 9,
                kind: "move".to_owned(),
                shard: 3,
                from: 3,
                to: 12,
                step: "add-learner".to_owned(),
            }],
            version: 41,
            map_epoch: 8,
            replication_factor: 3,
        }
    }

    fn keys(value: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn cluster_status_json_field_names() {
        let v = cluster_status_json(&status());
        assert_eq!(
            keys(&v),
            [
                "control_leader",
                "members",
                "replication_factor",
                "shards",
                "tasks",
                "version"
            ]
        );
        assert_eq!(v["control_leader"], json!(2));
        assert_eq!(
            keys(&v["members"][0]),
            ["addr", "healthy", "http_addr", "id", "role", "state"]
        );
        assert_eq!(
            v["members"][0],
            json!({
                "id": 1,
                "addr": "127.0.0.1:7600",
                "http_addr": "127.0.0.1:7601",
                "state": "active",
                "role": "voter",
                "healthy": true,
            })
        );
        assert_eq!(v["members"][1]["healthy"], json!(false));
        assert_eq!(
            v["shards"][0],
            json!({
                "id": 3,
                "leader": null,
                "leader_hint": 2,
                "replicas": [1, 2, 3],
                "learners": [12],
                "term": 7,
                "commit_index": 120,
                "applied_index": 118,
                "epoch": 4,
                "range_start": 0,
                "range_end": u64::MAX,
            })
        );
        assert_eq!(
            v["tasks"][0],
            json!({"id": 9, "kind": "move", "shard": 3, "from": 3, "to": 12, "step": "add-learner"})
        );
        assert_eq!(v["version"], json!(41));
        assert_eq!(v["replication_factor"], json!(3));
    }

    #[test]
    fn cluster_status_json_unknown_leaders_are_null() {
        let mut s = status();
        s.control_leader = 0;
        s.shards[0].leader = 0;
        let v = cluster_status_json(&s);
        assert!(v["control_leader"].is_null());
        assert!(v["shards"][0]["leader"].is_null());
        s.shards[0].leader = 2;
        assert_eq!(cluster_status_json(&s)["shards"][0]["leader"], json!(2));
    }

    #[test]
    fn cluster_status_json_is_one_line_object() {
        let text = cluster_status_json(&ClusterStatusResponse::default()).to_string();
        assert_eq!(
            text,
            r#"{"control_leader":null,"members":[],"replication_factor":0,"shards":[],"tasks":[],"version":0}"#
        );
    }

    #[test]
    fn cluster_status_table_layout() {
        let expected = "\
ID  ADDR            STATE    ROLE     HEALTHY  HTTP_ADDR
1   127.0.0.1:7600  active   voter    yes      127.0.0.1:7601
12  10.0.0.12:7600  joining  learner  no       -

control leader: 2
control version: 41  replication factor: 3

SHARD  LEADER  REPLICAS  TERM  COMMIT  APPLIED  EPOCH  LEARNERS
3      -       1,2,3     7     120     118      4      12

tasks in flight:
TASK  KIND  SHARD  FROM  TO  STEP
9     move  3      3     12  add-learner
";
        assert_eq!(cluster_status_table(&status()), expected);
    }

    #[test]
    fn cluster_status_table_without_leader_or_tasks() {
        let mut s = status();
        s.control_leader = 0;
        s.tasks.clear();
        let text = cluster_status_table(&s);
        assert!(text.contains("control leader: unknown\n"));
        assert!(!text.contains("tasks in flight"));
    }

    #[test]
    fn lists_and_changes_json() {
        let list = ListMembersResponse {
            members: status().members,
            version: 5,
        };
        let v = members_list_json(&list);
        assert_eq!(keys(&v), ["members", "version"]);
        assert_eq!(v["members"][1]["addr"], json!("10.0.0.12:7600"));

        let shards = ListShardsResponse {
            shards: status().shards,
            tasks: vec![],
            version: 6,
            map_epoch: 8,
        };
        let v = shards_list_json(&shards);
        assert_eq!(keys(&v), ["shards", "tasks", "version"]);
        assert_eq!(v["shards"][0]["commit_index"], json!(120));

        let change = MemberResponse {
            member: status().members.into_iter().nth(1),
            version: 7,
        };
        assert_eq!(
            member_change_json(&change)["member"]["state"],
            json!("joining")
        );
        assert_eq!(
            member_change_text("added", 12, &change),
            "added member 12 (10.0.0.12:7600): state joining, role learner; control version 7\n"
        );
        let empty = MemberResponse {
            member: None,
            version: 8,
        };
        assert!(member_change_json(&empty)["member"].is_null());
        assert_eq!(
            member_change_text("removed", 4, &empty),
            "removed member 4; control version 8\n"
        );
    }

    #[test]
    fn rebalance_renders_plan_or_nothing() {
        let none = RebalanceResponse { tasks: vec![] };
        assert!(rebalance_table(&none).starts_with("nothing to rebalance"));
        assert_eq!(rebalance_json(&none), json!({"tasks": []}));
        let some = RebalanceResponse {
            tasks: status().tasks,
        };
        assert!(rebalance_table(&some).starts_with("planned 1 task(s):\nTASK"));
        assert_eq!(
            task_text(&some.tasks[0]),
            "task 9 recorded: move shard 3 from 3 to 12 (next step: add-learner)\n"
        );
    }

    #[test]
    fn write_rendering() {
        let response = WriteResponse {
            samples_accepted: 0,
            rejections: vec![Rejection {
                series_index: 0,
                sample_index: 0,
                reason: "out of order".to_owned(),
            }],
        };
        assert_eq!(
            write_json(&response),
            json!({
                "samples_accepted": 0,
                "rejections": [{"series_index": 0, "sample_index": 0, "reason": "out of order"}],
            })
        );
        assert_eq!(write_table(&response), "samples accepted: 0\n");
        assert_eq!(
            rejection_lines(&response),
            "error: rejected series 0 sample 0: out of order\n"
        );
        assert_eq!(rejection_lines(&WriteResponse::default()), "");
    }

    fn up_labels() -> Vec<Label> {
        vec![
            Label {
                name: "__name__".to_owned(),
                value: "up".to_owned(),
            },
            Label {
                name: "path".to_owned(),
                value: "a\"b\\c\nd".to_owned(),
            },
        ]
    }

    fn sample(timestamp_ms: i64, value: f64) -> Sample {
        Sample {
            timestamp_ms,
            value,
        }
    }

    fn matrix() -> PromqlResponse {
        PromqlResponse {
            result_type: "matrix".to_owned(),
            series: vec![Series {
                labels: up_labels(),
                samples: vec![
                    sample(1000, 1.5),
                    sample(2000, f64::NAN),
                    sample(3000, f64::INFINITY),
                    sample(4000, f64::NEG_INFINITY),
                ],
            }],
            warnings: vec!["PromQL warning: w".to_owned()],
            read: Some(ReadInfo {
                consistency: Consistency::Stale as i32,
                min_applied_index: 7,
                max_lag_entries: 2,
                shards: vec![],
            }),
            ..PromqlResponse::default()
        }
    }

    #[test]
    fn promql_json_shapes_and_non_finite_values() {
        assert_eq!(
            promql_json(&matrix()),
            json!({
                "resultType": "matrix",
                "result": [{
                    "metric": {"__name__": "up", "path": "a\"b\\c\nd"},
                    "values": [[1000, 1.5], [2000, "NaN"], [3000, "+Inf"], [4000, "-Inf"]],
                }],
                "warnings": ["PromQL warning: w"],
                "infos": [],
                "read": {"consistency": "stale", "min_applied_index": 7, "max_lag_entries": 2},
            })
        );
        let vector = PromqlResponse {
            result_type: "vector".to_owned(),
            series: vec![Series {
                labels: vec![],
                samples: vec![sample(5, 2.0)],
            }],
            ..PromqlResponse::default()
        };
        assert_eq!(
            promql_json(&vector)["result"],
            json!([{"metric": {}, "value": [5, 2.0]}])
        );
        let scalar = PromqlResponse {
            result_type: "scalar".to_owned(),
            scalar: Some(sample(5, 0.5)),
            ..PromqlResponse::default()
        };
        assert_eq!(promql_json(&scalar)["result"], json!([5, 0.5]));
        let string = PromqlResponse {
            result_type: "string".to_owned(),
            string: Some(PromqlString {
                timestamp_ms: 5,
                value: "x".to_owned(),
            }),
            ..PromqlResponse::default()
        };
        assert_eq!(promql_json(&string)["result"], json!([5, "x"]));
        assert_eq!(promql_table(&string), "string \"x\" @5\n");
        assert_eq!(promql_table(&scalar), "scalar 0.5 @5\n");
        assert_eq!(promql_table(&vector), "{} 2 @5\n");
    }

    #[test]
    fn promql_table_lines() {
        let label_text = r#"{__name__="up", path="a\"b\\c\nd"}"#;
        let expected = format!(
            "{label_text} 1.5 @1000\n{label_text} NaN @2000\n{label_text} +Inf @3000\n{label_text} -Inf @4000\n"
        );
        assert_eq!(promql_table(&matrix()), expected);
        assert_eq!(promql_notes(&matrix()), "warning: PromQL warning: w\n");
    }

    #[test]
    fn float_text_is_shortest_round_trip() {
        assert_eq!(float_text(1.0), "1");
        assert_eq!(float_text(0.1), "0.1");
        assert_eq!(float_text(-2.5), "-2.5");
    }
}
