//! raftwatch-sim: the whole raftwatch cluster in one process, from one
//! seed.
//!
//! Each node is a turmoil host running the real node code (control group,
//! shard groups, tonic transport, state machines, the durable log over an
//! in-memory disk with crash semantics); clients are turmoil hosts running
//! the real client library. Time, randomness, network and disk all derive
//! from the seed, so a run is reproducible to the byte: the event log's
//! hash proves it. See ARCHITECTURE.md, "Deterministic simulation".

#[cfg(not(tokio_unstable))]
compile_error!(
    "raftwatch-sim needs `--cfg tokio_unstable` (set in .cargo/config.toml) so turmoil can seed tokio; \
     a RUSTFLAGS environment variable replaces that setting: unset it"
);

pub mod alert_probe;
pub mod alerting;
pub mod check;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod net;
pub mod operator;
pub mod params;
pub mod workload;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, UNIX_EPOCH};

use raftwatch_seams::{Clock, SystemClock};
use serde::Serialize;

use crate::alert_probe::AlertProbe;
use crate::check::HistoryChecker;
use crate::check::convergence::{self, Outcome};
use crate::check::election_safety::ElectionSafety;
use crate::cluster::Cluster;
use crate::faults::Faults;
use crate::history::{EventLog, Op, WriteOutcome};
use crate::params::{Overrides, Params};
use crate::workload::{Phase, Shared};

/// `RunOptions` tune one run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Phase lengths and the fault switch.
    pub overrides: Overrides,
    /// A planted bug to arm (needs the `inject-bugs` feature).
    pub inject_bug: Option<String>,
    /// Fail the run as soon as the process has more threads than when it
    /// began (a real thread inside the simulation). Only for a process
    /// that runs nothing else meanwhile: the CLI's `run`, not a test.
    pub forbid_threads: bool,
}

/// `thread_count` is how many threads this process has (Linux).
pub fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// `RunReport` is what `raftwatch-sim run` prints.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub event_log_hash: String,
    pub simulated_s: f64,
    pub wall_s: f64,
    pub speedup: f64,
    pub params: ParamsSummary,
    pub ops: BTreeMap<&'static str, u64>,
    pub faults: BTreeMap<&'static str, u64>,
    /// Terms in which two nodes led one after the other (legal with
    /// openraft's advanced leader ids; see `check/election_safety.rs`).
    pub shared_leader_terms: u64,
    /// At the end: replicas (node × group) whose state came through at
    /// least one snapshot, and whose log was purged behind one.
    pub replicas_snapshotted: u64,
    pub replicas_purged: u64,
    /// The alerting workload in numbers.
    pub alerting: AlertingSummary,
    pub violations: Vec<String>,
    #[serde(skip)]
    pub event_log: String,
}

/// The run's shape, for the report.
#[derive(Debug, Serialize)]
pub struct ParamsSummary {
    pub nodes: u64,
    pub shards: u32,
    pub replicas: u32,
    pub joiner: Option<u64>,
    pub writers: u64,
    pub readers: u64,
    pub heartbeat_ms: u64,
    pub stale_ratio: f64,
    pub faults_scheduled: usize,
}

/// `AlertingSummary` is the alerting workload in numbers.
#[derive(Debug, Default, Serialize)]
pub struct AlertingSummary {
    /// Instances whose metric the writer drove.
    pub instances: u32,
    /// Committed evaluations the probe saw.
    pub evaluations: usize,
    /// Alert lives that fired.
    pub alerts_fired: usize,
    /// Committed notifications.
    pub notifications: usize,
    /// POSTs the receiver got, and distinct keys it acknowledged.
    pub posts: usize,
    pub delivered: usize,
    /// POSTs of a key the receiver had already got.
    pub redeliveries: usize,
    /// Silences acknowledged to the operator.
    pub silences: usize,
    /// New control-leader terms while the rules were in place.
    pub control_failovers: u64,
}

/// The error of `--inject-bug` on a build without the feature, or with an
/// unknown name.
#[derive(Debug, thiserror::Error)]
pub enum BugError {
    #[error("built without the inject-bugs feature: rebuild with `--features inject-bugs`")]
    NotBuilt,
    #[error(
        "unknown bug {0:?} (known: ack-before-commit, stale-read-as-linearizable, skip-fsync, alert-for-reset, notify-ignores-silence)"
    )]
    Unknown(String),
}

/// `arm` plants `bug` in the real code for this process (or disarms all).
pub fn arm(bug: Option<&str>) -> Result<(), BugError> {
    #[cfg(feature = "inject-bugs")]
    {
        use raftwatch_seams::bugs;
        let parsed = match bug {
            None => None,
            Some(name) => {
                Some(bugs::Bug::from_name(name).ok_or_else(|| BugError::Unknown(name.into()))?)
            }
        };
        bugs::arm(parsed);
        Ok(())
    }
    #[cfg(not(feature = "inject-bugs"))]
    match bug {
        None => Ok(()),
        Some(_) => Err(BugError::NotBuilt),
    }
}

/// `repro` is the command that reproduces a run.
pub fn repro(seed: u64, bug: Option<&str>, o: &Overrides) -> String {
    let mut cmd = String::from("cargo run -p raftwatch-sim");
    if bug.is_some() {
        cmd.push_str(" --features inject-bugs");
    }
    cmd.push_str(&format!(" -- run --seed {seed}"));
    if let Some(b) = bug {
        cmd.push_str(&format!(" --inject-bug {b}"));
    }
    let d = Overrides::default();
    if o.safety_ms != d.safety_ms {
        cmd.push_str(&format!(" --safety-s {}", o.safety_ms / 1000));
    }
    if o.no_faults {
        cmd.push_str(" --no-faults");
    }
    cmd
}

/// `run` simulates one seed. The bug named in `opts` must already be armed
/// (see [`arm`]).
pub fn run(seed: u64, opts: &RunOptions) -> RunReport {
    let clock = SystemClock::new();
    let started = clock.now_mono();
    let params = Params::from_seed(seed, &opts.overrides);
    let mut events = EventLog::default();
    let mut violations = Vec::new();
    let mut ops: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut fault_counts = BTreeMap::new();
    let mut shared_terms = 0;
    let mut snap = (0, 0);
    let mut simulated = Duration::ZERO;
    let mut alerting = AlertingSummary::default();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        simulate(
            &params,
            &mut events,
            &mut violations,
            &mut ops,
            &mut fault_counts,
            &mut shared_terms,
            &mut snap,
            &mut simulated,
            &mut alerting,
            opts.forbid_threads,
        )
    }));
    if let Err(panic) = result {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        violations.push(format!("panic: {msg}"));
    }
    for v in &violations {
        events.push(
            simulated.as_millis() as u64,
            "violation",
            format_args!("{v}"),
        );
    }
    let wall_s = clock.now_mono().nanos_since(started) as f64 / 1e9;
    let simulated_s = simulated.as_secs_f64();
    RunReport {
        seed,
        event_log_hash: events.hash(),
        simulated_s,
        wall_s,
        speedup: if wall_s > 0.0 {
            simulated_s / wall_s
        } else {
            0.0
        },
        params: ParamsSummary {
            nodes: params.nodes,
            shards: params.shards,
            replicas: params.replicas,
            joiner: params.joiner,
            writers: params.writers,
            readers: params.readers,
            heartbeat_ms: params.heartbeat_ms,
            stale_ratio: params.stale_ratio,
            faults_scheduled: params.faults.len(),
        },
        ops,
        faults: fault_counts,
        shared_leader_terms: shared_terms,
        replicas_snapshotted: snap.0,
        replicas_purged: snap.1,
        alerting,
        violations,
        event_log: events.text(),
    }
}

#[allow(clippy::too_many_arguments)]
fn simulate(
    params: &Params,
    events: &mut EventLog,
    violations: &mut Vec<String>,
    ops: &mut BTreeMap<&'static str, u64>,
    fault_counts: &mut BTreeMap<&'static str, u64>,
    shared_terms: &mut u64,
    snap: &mut (u64, u64),
    simulated: &mut Duration,
    alerting: &mut AlertingSummary,
    forbid_threads: bool,
) {
    let threads_before = if forbid_threads { thread_count() } else { None };
    let mut sim = turmoil::Builder::new()
        .rng_seed(params.world_seed)
        // A fixed epoch: turmoil's default reads the wall clock.
        .epoch(UNIX_EPOCH + Duration::from_millis(alerting::EPOCH_MS as u64))
        .simulation_duration(Duration::from_millis(
            params.safety_ms + params.liveness_ms + 60_000,
        ))
        .tick_duration(Duration::from_millis(2))
        .min_message_latency(Duration::from_millis(params.latency_ms.0))
        .max_message_latency(Duration::from_millis(params.latency_ms.1))
        .tcp_capacity(1 << 16)
        .enable_random_order()
        .build();
    let mut cluster = Cluster::start(&mut sim, params);
    let shared = Shared::new();
    let mut seeds = raftwatch_seams::DetRng::new(params.client_seed);
    let mut clients = Vec::new();
    for w in 1..=params.writers {
        let name = format!("w{w}");
        sim.client(
            name.as_str(),
            workload::writer(w, params.clone(), shared.clone(), seeds.next_u64()),
        );
        clients.push(name);
    }
    // Readers, the audit and the operator share one simulated host: every
    // host costs a runtime entry per tick, and none of them is the target
    // of a client fault (those cut writers off).
    let readers: Vec<_> = (1..=params.readers)
        .map(|_| workload::reader(params.clone(), shared.clone(), seeds.next_u64()))
        .collect();
    let audit = workload::audit(params.clone(), shared.clone(), seeds.next_u64());
    let op = operator::operator(params.clone(), shared.clone(), seeds.next_u64());
    // The alerting clients share it too; the webhook receiver is a host of
    // its own (the URL names it).
    let alert_writer = alerting::writer(params.clone(), shared.clone(), seeds.next_u64());
    let alert_op = alerting::operator(params.clone(), shared.clone(), seeds.next_u64());
    sim.client("ops", async move {
        let (readers, audit, op, aw, ao) = futures::join!(
            futures::future::join_all(readers),
            audit,
            op,
            alert_writer,
            alert_op
        );
        for r in readers {
            r?;
        }
        audit?;
        aw?;
        ao?;
        op
    });
    clients.push("ops".into());
    let receiver_seed = seeds.next_u64();
    {
        let shared = shared.clone();
        sim.host(alerting::RECEIVER_HOST, move || {
            alerting::receiver(shared.clone(), receiver_seed)
        });
    }
    let mut alert_probe = AlertProbe::default();

    let mut faults = Faults::new(params, &clients);
    let mut checkers: Vec<Box<dyn HistoryChecker>> = vec![
        Box::new(check::acked_not_lost::AckedNotLost::default()),
        Box::new(check::linearizable_reads::LinearizableReads::default()),
        Box::new(check::control_cas::ControlCas::default()),
    ];
    let mut election = ElectionSafety::default();
    let mut move_rf = check::move_rf::MoveRf::default();
    let rf = params.replicas.min(params.nodes as u32) as usize;
    let mut seen = 0;
    let deadline = params.safety_ms + params.liveness_ms;
    let mut finished = false;
    loop {
        let now = sim.elapsed().as_millis() as u64;
        if shared.borrow().phase == Phase::Safety {
            if now >= params.safety_ms {
                faults.heal(&mut sim, &mut cluster);
                shared.borrow_mut().phase = Phase::Liveness;
                events.push(now, "heal", format_args!(""));
            } else {
                for line in faults.tick(&mut sim, &mut cluster, now) {
                    events.push(now, "fault", format_args!("{line}"));
                }
            }
        }
        match sim.step() {
            Ok(done) => finished = done,
            Err(e) => violations.push(format!("node failed: {e}")),
        }
        // tokio joins its blocking threads when a host's runtime goes, so
        // they must be looked for while the simulation runs.
        if now.is_multiple_of(1_000)
            && let (Some(before), Some(now_count)) = (threads_before, thread_count())
            && now_count > before
        {
            violations.push(format!(
                "{} real threads were started inside the simulation",
                now_count - before
            ));
        }
        if now.is_multiple_of(10) {
            violations.extend(election.probe(&cluster, events, now));
            violations.extend(move_rf.probe(&cluster, rf));
            let rules_in_place = shared.borrow().alert.setup_ms.is_some();
            alert_probe.probe(&cluster, rules_in_place, events, now);
        }
        {
            let mut s = shared.borrow_mut();
            for (t, line) in s.alert.log.drain(..) {
                events.push(t, "alerting", format_args!("{line}"));
            }
            for op in &s.history.ops[seen..] {
                log_op(events, now, op, ops);
                for c in checkers.iter_mut() {
                    if let Some(v) = c.observe(op) {
                        violations.push(v);
                    }
                }
            }
            seen = s.history.ops.len();
        }
        if !violations.is_empty() || finished {
            break;
        }
        if now >= deadline {
            let s = shared.borrow();
            let unresolved: u64 = s.unresolved.values().sum();
            violations.push(format!(
                "liveness: not done {} s after healing ({unresolved} writes unresolved, {}/{} writers done, audit {}, operator tasks {}, alerting {})",
                params.liveness_ms / 1000,
                s.writers_done,
                params.writers,
                if s.audit.is_some() { "done" } else { "not done" },
                if s.operator_done.is_some() { "done" } else { "not done" },
                if s.alert.done.is_some() {
                    "done".to_string()
                } else {
                    format!("waiting for {}", s.alert.waiting_for)
                }
            ));
            break;
        }
    }
    if violations.is_empty() {
        let audit = shared.borrow().audit.clone();
        if let Some(short) = shared.borrow().operator_done.clone() {
            violations.extend(
                short
                    .into_iter()
                    .map(|s| format!("after every task finished, {s}")),
            );
        }
        for c in checkers.iter_mut() {
            violations.extend(c.finish(audit.as_ref()));
        }
        let s = shared.borrow();
        violations.extend(check::alerting::check_all(&check::alerting::AlertRun {
            params,
            history: &s.alert,
            probe: &alert_probe,
        }));
        let audited = audit.as_ref().map_or(0, |a| a.len());
        events.push(
            sim.elapsed().as_millis() as u64,
            "audit",
            format_args!("samples={audited}"),
        );
    }
    if violations.is_empty() {
        // Convergence: the cluster is quiet now; give replicas up to 20
        // simulated seconds to apply everything, then compare them.
        let until = sim.elapsed() + Duration::from_secs(20);
        loop {
            match convergence::check(&cluster) {
                Outcome::Done {
                    violations: v,
                    groups,
                } => {
                    events.push(
                        sim.elapsed().as_millis() as u64,
                        "converged",
                        format_args!("groups={groups}"),
                    );
                    violations.extend(v);
                    break;
                }
                Outcome::Pending(why) if sim.elapsed() >= until => {
                    violations.push(format!("replicas did not converge within 20 s: {why}"));
                    break;
                }
                Outcome::Pending(_) => {
                    for _ in 0..50 {
                        if let Err(e) = sim.step() {
                            violations.push(format!("node failed: {e}"));
                            break;
                        }
                    }
                    if !violations.is_empty() {
                        break;
                    }
                }
            }
        }
    }
    *alerting = summary(params, &shared.borrow().alert, &alert_probe);
    *fault_counts = std::mem::take(&mut faults.counts);
    *shared_terms = election.shared_terms;
    for (_, node) in cluster.live() {
        for g in node.host().try_groups().unwrap_or_default() {
            let m = g.metrics();
            snap.0 += u64::from(m.snapshot_index.is_some());
            snap.1 += u64::from(m.purged_index.is_some());
        }
    }
    *simulated = sim.elapsed();
}

fn summary(
    params: &Params,
    history: &alerting::AlertHistory,
    probe: &AlertProbe,
) -> AlertingSummary {
    let mut keys = std::collections::BTreeSet::new();
    let mut delivered = std::collections::BTreeSet::new();
    let mut redeliveries = 0;
    for p in &history.posts {
        if !keys.insert(p.key.as_str()) {
            redeliveries += 1;
        }
        if p.answer.acknowledged() {
            delivered.insert(p.key.as_str());
        }
    }
    let mut fired = std::collections::BTreeSet::new();
    for e in &probe.evals {
        for a in &e.alerts {
            if let Some(f) = a.fired_at_ms {
                fired.insert((a.fingerprint.as_str(), f));
            }
        }
    }
    AlertingSummary {
        instances: params.alert_instances,
        evaluations: probe.evals.len(),
        alerts_fired: fired.len(),
        notifications: probe.notifications.len(),
        posts: history.posts.len(),
        delivered: delivered.len(),
        redeliveries,
        silences: history
            .silences
            .iter()
            .filter(|s| s.acked_ms.is_some())
            .count(),
        control_failovers: probe.failovers,
    }
}

fn log_op(events: &mut EventLog, t: u64, op: &Op, counts: &mut BTreeMap<&'static str, u64>) {
    match op {
        Op::WriteInvoke { op, id, .. } => events.push(t, "write", format_args!("op={op} id={id}")),
        Op::WriteComplete { op, outcome } => {
            let kind = match outcome {
                WriteOutcome::Acked { .. } => "write_ok",
                WriteOutcome::Unknown { .. } => "write_unknown",
                WriteOutcome::Refused { .. } => "write_refused",
            };
            *counts.entry(kind).or_default() += 1;
            events.push(t, kind, format_args!("op={op} {outcome:?}"));
        }
        Op::ReadInvoke { op, linearizable } => events.push(
            t,
            "read",
            format_args!("op={op} linearizable={linearizable}"),
        ),
        Op::CasInvoke {
            op,
            kind,
            expected_version,
        } => events.push(
            t,
            "cas",
            format_args!("op={op} {kind:?} expected_version={expected_version}"),
        ),
        Op::CasComplete { op, outcome } => {
            *counts
                .entry(match outcome {
                    crate::history::CasOutcome::Applied => "cas_applied",
                    crate::history::CasOutcome::Precondition => "cas_precondition",
                    crate::history::CasOutcome::Refused => "cas_refused",
                    crate::history::CasOutcome::Unknown => "cas_unknown",
                })
                .or_default() += 1;
            events.push(t, "cas_done", format_args!("op={op} {outcome:?}"));
        }
        Op::VersionRead { op } => events.push(t, "version", format_args!("op={op}")),
        Op::VersionComplete { op, version } => {
            events.push(t, "version_done", format_args!("op={op} {version:?}"))
        }
        Op::ReadComplete { op, samples } => {
            let kind = match samples {
                Some(_) => "read_ok",
                None => "read_fail",
            };
            *counts.entry(kind).or_default() += 1;
            match samples {
                Some(s) => events.push(
                    t,
                    kind,
                    format_args!("op={op} samples={} digest={}", s.len(), history::digest(s)),
                ),
                None => events.push(t, kind, format_args!("op={op}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_run_names_the_command_that_reproduces_it() {
        let d = Overrides::default();
        assert_eq!(
            repro(42, None, &d),
            "cargo run -p raftwatch-sim -- run --seed 42"
        );
        let o = Overrides {
            safety_ms: 60_000,
            no_faults: true,
            ..Overrides::default()
        };
        assert_eq!(
            repro(7, Some("skip-fsync"), &o),
            "cargo run -p raftwatch-sim --features inject-bugs -- run --seed 7 --inject-bug skip-fsync --safety-s 60 --no-faults"
        );
    }
}
