//! Fingerprints, RFC 3339 times and the webhook payload.

use serde::{Deserialize, Serialize};

use crate::LabelSet;

/// `WebhookPayload` is Alertmanager's webhook body, version 4, plus
/// raftwatch's `idempotencyKey` (the same on every redelivery).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// Always `"4"`.
    pub version: String,
    /// The aggregation group's key.
    pub group_key: String,
    /// Alerts left out by `max_alerts`.
    pub truncated_alerts: u64,
    /// `firing` if any alert fires, else `resolved`.
    pub status: String,
    /// The receiver's name.
    pub receiver: String,
    /// The group's `group_by` labels.
    pub group_labels: LabelSet,
    /// Labels every alert shares.
    pub common_labels: LabelSet,
    /// Annotations every alert shares.
    pub common_annotations: LabelSet,
    /// The cluster's external URL.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<WebhookAlert>,
    /// raftwatch: the notification's identity.
    pub idempotency_key: String,
}

/// `WebhookAlert` is one alert in a webhook payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Labels.
    pub labels: LabelSet,
    /// Annotations.
    pub annotations: LabelSet,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339; `0001-01-01T00:00:00Z` while firing.
    pub ends_at: String,
    /// Link to the expression.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// The label set's fingerprint, 16 hex digits.
    pub fingerprint: String,
}

/// `ZERO_TIME` is Go's zero `time.Time` in RFC 3339, which Alertmanager
/// sends as `endsAt` of a firing alert.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `ZERO_TIME_MS` is [`ZERO_TIME`] in milliseconds since the Unix epoch.
pub const ZERO_TIME_MS: i64 = -62_135_596_800_000;

/// `PAYLOAD_VERSION` is the webhook payload's `version`.
pub const PAYLOAD_VERSION: &str = "4";

/// `STATUS_FIRING` is the status of a firing alert or group.
pub const STATUS_FIRING: &str = "firing";

/// `STATUS_RESOLVED` is the status of a resolved alert or group.
pub const STATUS_RESOLVED: &str = "resolved";

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Prometheus's `model.SeparatorByte`: cannot occur in UTF-8.
const SEPARATOR_BYTE: u8 = 0xff;

/// `fingerprint` is Prometheus's `model.LabelSet.Fingerprint()`, which
/// Alertmanager uses to identify alerts: FNV-1a (64 bit) over each label,
/// in name order, as the name, byte `0xff`, the value, byte `0xff`. The
/// empty set hashes nothing: the FNV offset basis `0xcbf29ce484222325`.
pub fn fingerprint(labels: &LabelSet) -> u64 {
    fn add(mut h: u64, bytes: &[u8]) -> u64 {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
        h
    }
    labels.iter().fold(FNV_OFFSET_BASIS, |h, (name, value)| {
        let h = add(h, name.as_bytes());
        let h = add(h, &[SEPARATOR_BYTE]);
        let h = add(h, value.as_bytes());
        add(h, &[SEPARATOR_BYTE])
    })
}

/// `fingerprint_hex` is a fingerprint as Prometheus prints it: 16
/// lowercase hex digits, zero-padded.
pub fn fingerprint_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`). `month` is 1..=12, `day` 1..=31.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`): (year, month 1..=12, day 1..=31).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `rfc3339_ms` formats milliseconds since the Unix epoch as Go's
/// `time.Time.Format(time.RFC3339Nano)` does in UTC:
/// `2026-11-30T03:04:05.123Z`, trailing zeros of the fraction trimmed
/// (`05.12Z`) and the fraction left out when zero (`05Z`). Defined for
/// every `i64`: years outside 0..=9999 are written as Go writes them
/// (`-0001`, `10000`), though such strings are not RFC 3339.
pub fn rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let ms_of_day = ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let hour = ms_of_day / 3_600_000;
    let minute = ms_of_day / 60_000 % 60;
    let second = ms_of_day / 1000 % 60;
    let millis = ms_of_day % 1000;
    let mut out = if year < 0 {
        format!("-{:04}", -year)
    } else {
        format!("{year:04}")
    };
    out.push_str(&format!(
        "-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
    ));
    if millis != 0 {
        let fraction = format!("{millis:03}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// `parse_rfc3339_ms` parses an RFC 3339 time
/// (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)`) into milliseconds since
/// the Unix epoch, rounding toward negative infinity. Like Go's
/// `time.Parse(time.RFC3339, ..)` it takes any number of fraction digits
/// and ignores those past the ninth (nanoseconds), and refuses second 60.
/// Lowercase `t` and `z` are accepted, as RFC 3339 allows.
pub fn parse_rfc3339_ms(s: &str) -> Result<i64, String> {
    let bad = |what: &str| format!("bad RFC 3339 time {s:?}: {what}");
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>, what: &str| -> Result<i64, String> {
        let digits = b.get(range).ok_or_else(|| bad(what))?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad(what));
        }
        Ok(digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |i: usize, allowed: &[u8], what: &str| -> Result<(), String> {
        match b.get(i) {
            Some(c) if allowed.contains(c) => Ok(()),
            _ => Err(bad(what)),
        }
    };
    let year = num(0..4, "year")?;
    sep(4, b"-", "expected '-' after the year")?;
    let month = num(5..7, "month")?;
    sep(7, b"-", "expected '-' after the month")?;
    let day = num(8..10, "day")?;
    sep(10, b"Tt", "expected 'T' after the date")?;
    let hour = num(11..13, "hour")?;
    sep(13, b":", "expected ':' after the hour")?;
    let minute = num(14..16, "minute")?;
    sep(16, b":", "expected ':' after the minute")?;
    let second = num(17..19, "second")?;
    if !(1..=12).contains(&month) {
        return Err(bad("month out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(bad("day out of range"));
    }
    if hour > 23 {
        return Err(bad("hour out of range"));
    }
    if minute > 59 {
        return Err(bad("minute out of range"));
    }
    if second > 59 {
        return Err(bad("second out of range"));
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let count = i - start;
        if count == 0 {
            return Err(bad("expected digits after '.'"));
        }
        for _ in count..9 {
            nanos *= 10;
        }
    }
    let offset_minutes = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() => {
            let hours = num(i + 1..i + 3, "offset hours")?;
            sep(i + 3, b":", "expected ':' in the offset")?;
            let minutes = num(i + 4..i + 6, "offset minutes")?;
            if hours > 23 || minutes > 59 {
                return Err(bad("offset out of range"));
            }
            let total = hours * 60 + minutes;
            if *sign == b'-' { -total } else { total }
        }
        _ => return Err(bad("expected 'Z' or a ±hh:mm offset at the end")),
    };
    // Years 0..=9999 keep every intermediate far inside i64.
    let days = days_from_civil(year, month, day);
    Ok(days * MS_PER_DAY
        + ((hour * 60 + minute - offset_minutes) * 60 + second) * 1000
        + nanos / 1_000_000)
}

/// Go's `regexp.QuoteMeta`: a backslash before each of `\.+*?()|[]{}^$`.
fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl WebhookPayload {
    /// `to_json` is the payload as the webhook request's JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising strings, integers and string maps cannot fail; the
        // empty body is unreachable and keeps this free of panics.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `build_payload` assembles a webhook body the way Alertmanager's webhook
/// notifier does (`notify/webhook`, `template.Data`):
///
/// - with `max_alerts` > 0, only the first `max_alerts` alerts are kept and
///   `truncatedAlerts` counts the rest; everything below is computed from
///   the kept alerts, as Alertmanager truncates first;
/// - `status` is `firing` if any kept alert's status is `firing`, else
///   `resolved` (also for no alerts);
/// - `commonLabels` / `commonAnnotations` are the pairs every kept alert
///   has with the same value (comparing as Go does, an absent label as
///   `""`);
/// - `receiver` is escaped with Go's `regexp.QuoteMeta`, as Alertmanager
///   does (`team.a` is sent as `team\.a`).
///
/// Alerts stay in the given order: sort them first with [`sort_alerts`] to
/// match Alertmanager.
pub fn build_payload(
    receiver: &str,
    group_key: &str,
    group_labels: &LabelSet,
    mut alerts: Vec<WebhookAlert>,
    max_alerts: u64,
    external_url: &str,
    idempotency_key: &str,
) -> WebhookPayload {
    let mut truncated_alerts = 0;
    if max_alerts > 0 && alerts.len() as u64 > max_alerts {
        truncated_alerts = alerts.len() as u64 - max_alerts;
        // `max_alerts` < `alerts.len()`, so it fits in a usize.
        alerts.truncate(usize::try_from(max_alerts).unwrap_or(usize::MAX));
    }
    let status = if alerts.iter().any(|a| a.status == STATUS_FIRING) {
        STATUS_FIRING
    } else {
        STATUS_RESOLVED
    };
    let common = |pick: fn(&WebhookAlert) -> &LabelSet| -> LabelSet {
        let Some((first, rest)) = alerts.split_first() else {
            return LabelSet::new();
        };
        let mut common = pick(first).clone();
        for alert in rest {
            let set = pick(alert);
            common.retain(|k, v| set.get(k).map_or("", String::as_str) == v.as_str());
        }
        common
    };
    let common_labels = common(|a| &a.labels);
    let common_annotations = common(|a| &a.annotations);
    WebhookPayload {
        version: PAYLOAD_VERSION.to_string(),
        group_key: group_key.to_string(),
        truncated_alerts,
        status: status.to_string(),
        receiver: quote_meta(receiver),
        group_labels: group_labels.clone(),
        common_labels,
        common_annotations,
        external_url: external_url.to_string(),
        alerts,
        idempotency_key: idempotency_key.to_string(),
    }
}

/// `sort_alerts` sorts (stably) as Alertmanager orders a group's alerts
/// before notifying (`alert.AlertSlice`): by the `job` label, then the
/// `instance` label (alerts having the label before those lacking it),
/// then by label set: fewer labels first, then the first differing label
/// in name order (lacking it first, else the smaller value).
pub fn sort_alerts(alerts: &mut [WebhookAlert]) {
    alerts.sort_by(|a, b| {
        for key in ["job", "instance"] {
            match (a.labels.get(key), b.labels.get(key)) {
                (None, None) => continue,
                (Some(_), None) => return std::cmp::Ordering::Less,
                (None, Some(_)) => return std::cmp::Ordering::Greater,
                (Some(x), Some(y)) if x != y => return x.cmp(y),
                (Some(_), Some(_)) => {}
            }
        }
        label_set_order(&a.labels, &b.labels)
    });
}

/// Go's `model.LabelSet.Before` as an ordering.
fn label_set_order(a: &LabelSet, b: &LabelSet) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match a.len().cmp(&b.len()) {
        Ordering::Equal => {}
        other => return other,
    }
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        match (a.get(name), b.get(name)) {
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    Ordering::Equal
}
