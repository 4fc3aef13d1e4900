//! `rules`, `silences`, `alerts`, `alertmanager`, `notifications` and
//! `settings`: the alerting commands.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use raftwatch_proto::v1::{
    AddSilenceRequest, AlertInfo, ApplyRulesRequest, DeleteRuleGroupRequest, ExpireSilenceRequest,
    GetAlertmanagerConfigRequest, GetSettingRequest, ListAlertsRequest, ListNotificationsRequest,
    ListRulesRequest, ListSilencesRequest, SetAlertmanagerConfigRequest, SetSettingRequest,
    SilenceInfo,
};
use serde_json::json;

use crate::{Ctl, OutputFormat, ReadArgs, VersionGuard, now_ms};

/// `RulesCommand`: Prometheus rule groups.
#[derive(Debug, Subcommand)]
pub(crate) enum RulesCommand {
    /// Validate a Prometheus rule file (as `promtool check rules`) and
    /// replace the groups it names, atomically; nothing is committed if any
    /// of it is invalid.
    Apply {
        /// The rule file (YAML).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: std::path::PathBuf,
        #[command(flatten)]
        guard: VersionGuard,
    },
    /// Rule groups, their rules' health and active alerts.
    List(ReadArgs),
    /// Delete a rule group and its alerts.
    Delete {
        /// The group's name.
        group: String,
        #[command(flatten)]
        guard: VersionGuard,
    },
}

/// `SilencesCommand`: Alertmanager silences.
#[derive(Debug, Subcommand)]
pub(crate) enum SilencesCommand {
    /// Add a silence; once this returns, no notification committed after it
    /// includes an alert it matches.
    Add {
        /// A matcher: `name=value`, `name!=value`, `name=~"regex"`,
        /// `name!~"regex"`. Repeat for several (all must match).
        #[arg(long = "matcher", value_name = "MATCHER", required = true)]
        matchers: Vec<String>,
        /// How long from now, e.g. `2h`, `30m`, `1h30m`.
        #[arg(long, default_value = "1h")]
        duration: String,
        /// Why.
        #[arg(long)]
        comment: String,
        /// Who (default: $USER).
        #[arg(long)]
        author: Option<String>,
    },
    /// Silences with their state.
    List(ReadArgs),
    /// End a silence now.
    Expire {
        /// The silence's id.
        id: String,
    },
}

/// `AlertsCommand`: alert state.
#[derive(Debug, Subcommand)]
pub(crate) enum AlertsCommand {
    /// Pending, firing and recently resolved alerts.
    List(ReadArgs),
}

/// `AlertmanagerCommand`: the notification configuration.
#[derive(Debug, Subcommand)]
pub(crate) enum AlertmanagerCommand {
    /// Validate and apply an Alertmanager configuration (routes, webhook
    /// receivers, inhibition rules).
    Apply {
        /// The configuration (YAML).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: std::path::PathBuf,
        #[command(flatten)]
        guard: VersionGuard,
    },
    /// Print the configuration in force.
    Show(ReadArgs),
}

/// `NotificationsCommand`: the notification log.
#[derive(Debug, Subcommand)]
pub(crate) enum NotificationsCommand {
    /// Committed notifications, delivered or pending, with their keys.
    List(ReadArgs),
}

/// `SettingsCommand`: cluster settings.
#[derive(Debug, Subcommand)]
pub(crate) enum SettingsCommand {
    /// Set a cluster setting (e.g. `alerting.delivery_paused true`).
    Set {
        /// Key.
        key: String,
        /// Value.
        value: String,
        #[command(flatten)]
        guard: VersionGuard,
        /// Apply only if the setting's current value is exactly this; an
        /// unset key counts as "" (so `--expected-value ""` means "only if
        /// unset"). Refused with FAILED_PRECONDITION otherwise.
        #[arg(long, value_name = "VALUE")]
        expected_value: Option<String>,
    },
    /// Print a cluster setting and the control version it was set at
    /// (exit status 1 when it is not set).
    Get {
        /// Key.
        key: String,
        #[command(flatten)]
        read: ReadArgs,
    },
}

/// `parse_duration` reads a Prometheus duration (`1h30m`, `90s`, `2d`).
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<i64> {
    let units: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = text;
    let mut total: i64 = 0;
    let mut last_rank = usize::MAX;
    if rest.is_empty() {
        bail!("empty duration");
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            bail!("invalid duration {text:?}");
        }
        let n: i64 = rest[..digits]
            .parse()
            .with_context(|| format!("invalid duration {text:?}"))?;
        rest = &rest[digits..];
        let (rank, (unit, ms)) = units
            .iter()
            .enumerate()
            .filter(|(_, (u, _))| rest.starts_with(u))
            // "ms" before "m".
            .max_by_key(|(_, (u, _))| u.len())
            .with_context(|| format!("invalid duration {text:?}: unknown unit"))?;
        if last_rank != usize::MAX && rank <= last_rank {
            bail!("invalid duration {text:?}: units out of order");
        }
        last_rank = rank;
        rest = &rest[unit.len()..];
        total = n
            .checked_mul(*ms)
            .and_then(|v| total.checked_add(v))
            .with_context(|| format!("duration {text:?} is too long"))?;
    }
    Ok(total)
}

fn read_file(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn time(ms: i64) -> String {
    if ms == 0 { "-".into() } else { format!("{ms}") }
}

pub(crate) async fn rules(ctl: &Ctl, command: RulesCommand) -> anyhow::Result<()> {
    let mut admin = ctl.admin();
    match command {
        RulesCommand::Apply { file, guard } => {
            let yaml = read_file(&file)?;
            let r = ctl
                .call(admin.apply_rules(ctl.request(ApplyRulesRequest {
                    yaml,
                    expected_version: guard.expected_version,
                })))
                .await?;
            ctl.print(
                || {
                    format!(
                        "applied {} group(s): {} (version {})\n",
                        r.groups.len(),
                        r.groups.join(", "),
                        r.version
                    )
                },
                || json!({"version": r.version, "groups": r.groups}),
            );
        }
        RulesCommand::List(args) => {
            let r = ctl
                .call(admin.list_rules(ctl.request(ListRulesRequest {
                    consistency: args.consistency.to_proto(),
                })))
                .await?;
            ctl.print(
                || {
                    let mut out = String::from(
                        "GROUP\tINTERVAL\tKIND\tNAME\tHEALTH\tALERTS\tLAST EVAL\tERROR\n",
                    );
                    for g in &r.groups {
                        for rule in &g.rules {
                            let _ = writeln!(
                                out,
                                "{}\t{}ms\t{}\t{}\t{}\t{}\t{}\t{}",
                                g.name,
                                g.interval_ms,
                                rule.kind,
                                rule.name,
                                rule.health,
                                rule.alerts.len(),
                                time(rule.last_eval_ms),
                                rule.last_error
                            );
                        }
                    }
                    out
                },
                || {
                    json!({
                        "groups": r.groups.iter().map(|g| json!({
                            "name": g.name,
                            "interval_ms": g.interval_ms,
                            "limit": g.limit,
                            "last_eval_ms": g.last_eval_ms,
                            "version": g.version,
                            "rules": g.rules.iter().map(|rule| json!({
                                "kind": rule.kind,
                                "name": rule.name,
                                "expr": rule.expr,
                                "for_ms": rule.for_ms,
                                "keep_firing_for_ms": rule.keep_firing_for_ms,
                                "labels": rule.labels,
                                "annotations": rule.annotations,
                                "health": rule.health,
                                "last_error": rule.last_error,
                                "last_eval_ms": rule.last_eval_ms,
                                "alerts": rule.alerts.iter().map(alert_json).collect::<Vec<_>>(),
                            })).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                        "yaml": r.yaml,
                    })
                },
            );
        }
        RulesCommand::Delete { group, guard } => {
            let r = ctl
                .call(admin.delete_rule_group(ctl.request(DeleteRuleGroupRequest {
                    name: group.clone(),
                    expected_version: guard.expected_version,
                })))
                .await?;
            ctl.print(
                || format!("deleted group {group} (version {})\n", r.version),
                || json!({"version": r.version, "group": group}),
            );
        }
    }
    Ok(())
}

fn alert_json(a: &AlertInfo) -> serde_json::Value {
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "state": a.state,
        "active_at_ms": a.active_at_ms,
        "fired_at_ms": a.fired_at_ms,
        "resolved_at_ms": a.resolved_at_ms,
        "value": if a.value.is_finite() { json!(a.value) } else { json!(a.value.to_string()) },
        "fingerprint": a.fingerprint,
        "group": a.group,
        "rule": a.rule,
        "silenced_by": a.silenced_by,
        "inhibited": a.inhibited,
    })
}

fn silence_json(s: &SilenceInfo) -> serde_json::Value {
    json!({
        "id": s.id,
        "matchers": s.matchers,
        "starts_at_ms": s.starts_at_ms,
        "ends_at_ms": s.ends_at_ms,
        "updated_at_ms": s.updated_at_ms,
        "created_by": s.created_by,
        "comment": s.comment,
        "state": s.state,
    })
}

fn labels_text(labels: &std::collections::HashMap<String, String>) -> String {
    let mut pairs: Vec<_> = labels.iter().collect();
    pairs.sort();
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

pub(crate) async fn silences(ctl: &Ctl, command: SilencesCommand) -> anyhow::Result<()> {
    let mut admin = ctl.admin();
    match command {
        SilencesCommand::Add {
            matchers,
            duration,
            comment,
            author,
        } => {
            let d = parse_duration(&duration)?;
            if d <= 0 {
                bail!("--duration must be positive");
            }
            let now = now_ms()?;
            let author = author
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "raftwatchctl".into());
            let r = ctl
                .call(admin.add_silence(ctl.request(AddSilenceRequest {
                    matchers,
                    starts_at_ms: now,
                    ends_at_ms: now + d,
                    created_by: author,
                    comment,
                    id: String::new(),
                })))
                .await?;
            ctl.print(|| format!("{}\n", r.id), || json!({"id": r.id}));
        }
        SilencesCommand::List(args) => {
            let r = ctl
                .call(admin.list_silences(ctl.request(ListSilencesRequest {
                    consistency: args.consistency.to_proto(),
                })))
                .await?;
            ctl.print(
                || {
                    let mut out =
                        String::from("ID\tSTATE\tMATCHERS\tSTARTS\tENDS\tCREATED BY\tCOMMENT\n");
                    for s in &r.silences {
                        let _ = writeln!(
                            out,
                            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                            s.id,
                            s.state,
                            s.matchers.join(","),
                            s.starts_at_ms,
                            s.ends_at_ms,
                            s.created_by,
                            s.comment
                        );
                    }
                    out
                },
                || json!({"silences": r.silences.iter().map(silence_json).collect::<Vec<_>>()}),
            );
        }
        SilencesCommand::Expire { id } => {
            ctl.call(admin.expire_silence(ctl.request(ExpireSilenceRequest { id: id.clone() })))
                .await?;
            ctl.print(
                || format!("expired {id}\n"),
                || json!({"id": id, "state": "expired"}),
            );
        }
    }
    Ok(())
}

pub(crate) async fn alerts(ctl: &Ctl, command: AlertsCommand) -> anyhow::Result<()> {
    let AlertsCommand::List(args) = command;
    let r = ctl
        .call(ctl.admin().list_alerts(ctl.request(ListAlertsRequest {
            consistency: args.consistency.to_proto(),
        })))
        .await?;
    ctl.print(
        || {
            let mut out = String::from("STATE\tACTIVE SINCE\tVALUE\tSILENCED\tLABELS\n");
            for a in &r.alerts {
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    a.state,
                    a.active_at_ms,
                    a.value,
                    if a.silenced_by.is_empty() && !a.inhibited {
                        "no"
                    } else {
                        "yes"
                    },
                    labels_text(&a.labels)
                );
            }
            out
        },
        || json!({"alerts": r.alerts.iter().map(alert_json).collect::<Vec<_>>()}),
    );
    Ok(())
}

pub(crate) async fn alertmanager(ctl: &Ctl, command: AlertmanagerCommand) -> anyhow::Result<()> {
    let mut admin = ctl.admin();
    match command {
        AlertmanagerCommand::Apply { file, guard } => {
            let yaml = read_file(&file)?;
            let r = ctl
                .call(
                    admin.set_alertmanager_config(ctl.request(SetAlertmanagerConfigRequest {
                        yaml,
                        expected_version: guard.expected_version,
                    })),
                )
                .await?;
            ctl.print(
                || format!("applied (version {})\n", r.version),
                || json!({"version": r.version}),
            );
        }
        AlertmanagerCommand::Show(args) => {
            let r = ctl
                .call(
                    admin.get_alertmanager_config(ctl.request(GetAlertmanagerConfigRequest {
                        consistency: args.consistency.to_proto(),
                    })),
                )
                .await?;
            ctl.print(|| r.yaml.clone(), || json!({"yaml": r.yaml}));
        }
    }
    Ok(())
}

pub(crate) async fn notifications(ctl: &Ctl, command: NotificationsCommand) -> anyhow::Result<()> {
    let NotificationsCommand::List(args) = command;
    let r = ctl
        .call(
            ctl.admin()
                .list_notifications(ctl.request(ListNotificationsRequest {
                    consistency: args.consistency.to_proto(),
                })),
        )
        .await?;
    ctl.print(
        || {
            let mut out = String::from("ID\tKEY\tSTATUS\tRECEIVER\tALERTS\tCREATED\tDELIVERED\n");
            for n in &r.notifications {
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{} {}\t{}\t{}",
                    n.id,
                    n.key,
                    n.status,
                    n.receiver,
                    n.alerts,
                    n.alerts_status,
                    n.created_ms,
                    time(n.delivered_ms)
                );
            }
            out
        },
        || {
            json!({
                "abandoned": r.abandoned,
                "notifications": r.notifications.iter().map(|n| json!({
                    "id": n.id,
                    "key": n.key,
                    "status": n.status,
                    "receiver": n.receiver,
                    "url": n.url,
                    "group_key": n.group_key,
                    "alerts_status": n.alerts_status,
                    "alerts": n.alerts,
                    "created_ms": n.created_ms,
                    "delivered_ms": n.delivered_ms,
                    "payload": serde_json::from_str::<serde_json::Value>(&n.payload_json).unwrap_or_default(),
                })).collect::<Vec<_>>(),
            })
        },
    );
    Ok(())
}

/// `settings` runs a settings command; `get` of an unset key prints
/// `found: false` (JSON) or a message on stderr (table) and exits 1.
pub(crate) async fn settings(ctl: &Ctl, command: SettingsCommand) -> anyhow::Result<ExitCode> {
    match command {
        SettingsCommand::Set {
            key,
            value,
            guard,
            expected_value,
        } => {
            let r = ctl
                .call(ctl.admin().set_setting(ctl.request(SetSettingRequest {
                    key: key.clone(),
                    value: value.clone(),
                    expected_version: guard.expected_version,
                    expected_value,
                })))
                .await?;
            ctl.print(
                || format!("{key} = {value} (version {})\n", r.version),
                || json!({"key": key, "value": value, "version": r.version}),
            );
            Ok(ExitCode::SUCCESS)
        }
        SettingsCommand::Get { key, read } => {
            let r = ctl
                .call(ctl.admin().get_setting(ctl.request(GetSettingRequest {
                    key: key.clone(),
                    consistency: read.consistency.to_proto(),
                })))
                .await?;
            if !r.found && ctl.output == OutputFormat::Table {
                eprintln!("error: setting {key:?} is not set");
                return Ok(ExitCode::FAILURE);
            }
            ctl.print(
                || format!("{key} = {} (version {})\n", r.value, r.version),
                || json!({"key": key, "found": r.found, "value": r.value, "version": r.version}),
            );
            Ok(if r.found {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_parse_as_prometheus_writes_them() {
        assert_eq!(parse_duration("2h").ok(), Some(7_200_000));
        assert_eq!(parse_duration("1h30m").ok(), Some(5_400_000));
        assert_eq!(parse_duration("500ms").ok(), Some(500));
        assert_eq!(parse_duration("1m500ms").ok(), Some(60_500));
        assert!(parse_duration("30m1h").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999y").is_err());
    }
}
