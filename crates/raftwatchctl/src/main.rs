//! raftwatchctl: the operator CLI. It talks gRPC (`raftwatch.v1.Admin`,
//! `Ingest`, `Query`) to any node and never links server internals.
//!
//! Exit status: 0 on success; 1 when an operation was refused or failed
//! (a gRPC error, a rejected sample, input malformed in a way clap cannot
//! see), with the reason on stderr; 2 for a usage error (clap's default).
//! A gRPC error is printed as `error: <CODE>: <message>`, with the
//! canonical upper-case code name (`UNAVAILABLE`, `INVALID_ARGUMENT`, ...).

mod alerting;
mod output;

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use raftwatch_client::endpoint::{self, LEADER_ADDR_KEY, code_name};
use raftwatch_client::{Client, ClientConfig, ClientError, Routing, selector};
use raftwatch_proto::v1::{
    AddMemberRequest, ClusterStatusRequest, Consistency, ListMembersRequest, ListShardsRequest,
    MemberRequest, MemberResponse, MoveShardRequest, PromqlRange, PromqlRequest, QueryLimits,
    RebalanceRequest, Sample, Series, TransferShardLeaderRequest, admin_client::AdminClient,
};
use tonic::Status;
use tonic::transport::Channel;

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7600";

/// The metadata key of a failed PromQL query's Prometheus error type.
const ERROR_TYPE_KEY: &str = "raftwatch-error-type";

/// A range query without `--step` evaluates about this many steps (as
/// Prometheus's graph page: (end - start) / 250, in whole seconds, at
/// least one second).
const RANGE_STEPS_DEFAULT: i64 = 250;

/// Operator CLI for a raftwatch cluster; talks gRPC to any node.
#[derive(Debug, Parser)]
#[command(name = "raftwatchctl", version)]
struct Cli {
    /// gRPC address of any node.
    #[arg(
        long,
        global = true,
        env = "RAFTWATCH_ENDPOINT",
        default_value = DEFAULT_ENDPOINT,
        value_name = "http://HOST:PORT"
    )]
    endpoint: String,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,

    /// Deadline of every RPC, in seconds (fractions allowed).
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        default_value = "10",
        value_parser = parse_timeout
    )]
    timeout: Duration,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// Aligned text for people.
    Table,
    /// One JSON object on stdout, for tools.
    Json,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
enum ConsistencyArg {
    /// Reflects every write acknowledged before the read began.
    #[default]
    Linearizable,
    /// The answering node's local state, which may lag (works without a leader).
    Stale,
}

impl ConsistencyArg {
    fn consistency(self) -> Consistency {
        match self {
            ConsistencyArg::Linearizable => Consistency::Linearizable,
            ConsistencyArg::Stale => Consistency::Stale,
        }
    }

    fn to_proto(self) -> i32 {
        self.consistency() as i32
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Cluster-wide views.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Cluster membership.
    #[command(subcommand)]
    Members(MembersCommand),
    /// Shard placement and leadership.
    #[command(subcommand)]
    Shards(ShardsCommand),
    /// Write one sample of one series.
    Write(WriteArgs),
    /// Evaluate a PromQL expression, at one time or over a range.
    Query(QueryArgs),
    /// Prometheus rule groups (alerting and recording rules).
    #[command(subcommand)]
    Rules(alerting::RulesCommand),
    /// Silences (Alertmanager's).
    #[command(subcommand)]
    Silences(alerting::SilencesCommand),
    /// Alert state.
    #[command(subcommand)]
    Alerts(alerting::AlertsCommand),
    /// The notification configuration (Alertmanager's format, a subset).
    #[command(subcommand)]
    Alertmanager(alerting::AlertmanagerCommand),
    /// The notification log.
    #[command(subcommand)]
    Notifications(alerting::NotificationsCommand),
    /// Cluster settings.
    #[command(subcommand)]
    Settings(alerting::SettingsCommand),
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Members and their health, the control-plane leader, every shard with
    /// its replicas, leader, term, commit and applied index, and the tasks
    /// in flight.
    Status(ReadArgs),
}

#[derive(Debug, Args)]
struct ReadArgs {
    /// Read consistency.
    #[arg(long, value_enum, default_value_t)]
    consistency: ConsistencyArg,
}

#[derive(Debug, Args)]
struct VersionGuard {
    /// Apply only if the control-plane state is at this version (0: always).
    #[arg(long, value_name = "VERSION", default_value_t = 0)]
    expected_version: u64,
}

#[derive(Debug, Subcommand)]
enum MembersCommand {
    /// List the members.
    List(ReadArgs),
    /// Register a node that will start later with --join (state joining).
    Add {
        /// The new node's id.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        node_id: u64,
        /// The new node's gRPC address.
        #[arg(long, value_name = "HOST:PORT")]
        addr: String,
        /// The new node's HTTP address.
        #[arg(long, value_name = "HOST:PORT")]
        http_addr: Option<String>,
        #[command(flatten)]
        guard: VersionGuard,
    },
    /// Make a joining member active (a control-group voter while there are fewer than 5).
    Promote(MemberArgs),
    /// Remove a drained member; refused while it still holds a shard replica.
    Remove(MemberArgs),
    /// Move every shard replica off a member (state draining).
    Drain(MemberArgs),
}

#[derive(Debug, Args)]
struct MemberArgs {
    /// The member's node id.
    #[arg(value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    node_id: u64,
    #[command(flatten)]
    guard: VersionGuard,
}

#[derive(Debug, Subcommand)]
enum ShardsCommand {
    /// List the shards and the placement tasks in flight.
    List(ReadArgs),
    /// Move one replica of a shard from one node to another (recorded as a
    /// task; returns once recorded).
    Move {
        /// The shard id.
        #[arg(value_name = "SHARD")]
        shard: u64,
        /// The node giving up its replica.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        from: u64,
        /// The node receiving the replica.
        #[arg(long, value_name = "M", value_parser = clap::value_parser!(u64).range(1..))]
        to: u64,
        #[command(flatten)]
        guard: VersionGuard,
    },
    /// Ask a shard's Raft group to hand leadership to a replica.
    TransferLeader {
        /// The shard id.
        #[arg(value_name = "SHARD")]
        shard: u64,
        /// The replica to lead.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        to: u64,
    },
    /// Plan moves and leader transfers that even out the shards over the
    /// active members, and print the planned tasks.
    Rebalance,
}

#[derive(Debug, Args)]
struct WriteArgs {
    /// The series: `metric{label="value",...}`, `metric`, or
    /// `{__name__="metric",...}`.
    #[arg(value_name = "SERIES")]
    series: String,
    /// The sample value: a number, NaN, +Inf or -Inf.
    #[arg(value_name = "VALUE", allow_hyphen_values = true)]
    value: String,
    /// The sample timestamp in milliseconds since the Unix epoch (default: now).
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    timestamp: Option<i64>,
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// A PromQL expression: `up`, `rate(http_requests_total[5m])`,
    /// `sum by (job) (up) / 2`. A range selector (`up[5m]`) at one time
    /// lists raw samples.
    #[arg(value_name = "EXPR")]
    expr: String,
    /// Evaluation time in milliseconds since the Unix epoch (default: the
    /// node's clock now).
    #[arg(long, value_name = "MS", conflicts_with_all = ["start", "end"])]
    time: Option<i64>,
    /// A range query from this time, ms, inclusive (with --end).
    #[arg(long, value_name = "MS", requires = "end")]
    start: Option<i64>,
    /// The range query's last evaluation time, ms, inclusive (with --start).
    #[arg(long, value_name = "MS", requires = "start")]
    end: Option<i64>,
    /// Step of a range query, ms [default: (end - start) / 250 in whole
    /// seconds, at least 1000].
    #[arg(long, value_name = "MS", requires = "start")]
    step: Option<i64>,
    /// Read consistency.
    #[arg(long, value_enum, default_value_t)]
    consistency: ConsistencyArg,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if seconds.is_nan() || seconds <= 0.0 {
        return Err("the timeout must be positive".to_owned());
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid timeout: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprint!("{}", render_error(&err));
            ExitCode::FAILURE
        }
    }
}

/// What every command needs: the channel to the node (admin calls), the
/// client library over the same node (writes and reads), the per-RPC
/// deadline and the output format.
#[derive(Debug)]
struct Ctl {
    channel: Channel,
    client: Client,
    timeout: Duration,
    output: OutputFormat,
}

impl Ctl {
    /// Wraps a message in a request that carries the deadline to the
    /// server (`grpc-timeout`), so it too can give up.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// Awaits an RPC for at most the deadline. The deadline covers
    /// connecting too, since the channel connects lazily on first use.
    async fn call<T>(
        &self,
        rpc: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, Status> {
        self.within_deadline(async { rpc.await.map(tonic::Response::into_inner) })
            .await
    }

    /// Awaits a client-library call for at most the deadline; its error
    /// becomes the gRPC status it ended with, so it renders as any other.
    async fn client_call<T>(
        &self,
        call: impl Future<Output = Result<T, ClientError>>,
    ) -> anyhow::Result<T> {
        let result = self
            .within_deadline(async {
                call.await.map_err(|e| match e {
                    ClientError::Refused(s) | ClientError::GaveUp { last: s, .. } => s,
                    other => Status::invalid_argument(other.to_string()),
                })
            })
            .await;
        Ok(result?)
    }

    async fn within_deadline<T>(
        &self,
        work: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_elapsed) => Err(Status::deadline_exceeded(format!(
                "no answer within {:?} (see --timeout)",
                self.timeout
            ))),
        }
    }

    fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel.clone())
    }

    /// Prints a table (to stdout, as is) or a JSON value (one line).
    fn print(&self, table: impl FnOnce() -> String, json: impl FnOnce() -> serde_json::Value) {
        match self.output {
            OutputFormat::Table => write_stdout(&table()),
            OutputFormat::Json => write_stdout(&format!("{}\n", json())),
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Input checks that need no server come first, so a malformed command
    // fails before any connection is attempted.
    let url = endpoint::parse_endpoint(&cli.endpoint)
        .map_err(|why| anyhow!("invalid --endpoint {:?}: {why}", cli.endpoint))?;
    check_command(&cli.command)?;
    // One attempt per command: an operator sees the node's answer (and the
    // leader it names) at once rather than retries hidden behind the
    // deadline. Writes go whole to this node, which routes them: no shard
    // map to fetch for one sample.
    let client = Client::new(
        vec![url.clone()],
        ClientConfig {
            attempts_max: 1,
            request_timeout: cli.timeout,
            connect_timeout: cli.timeout,
            seed: request_seed(),
            routing: Routing::AnyNode,
            ..ClientConfig::default()
        },
    )?;
    let ctl = Ctl {
        channel: endpoint::endpoint(&url, cli.timeout, cli.timeout)?.connect_lazy(),
        client,
        timeout: cli.timeout,
        output: cli.output,
    };
    match cli.command {
        Command::Cluster(ClusterCommand::Status(args)) => {
            let request = ClusterStatusRequest {
                consistency: args.consistency.to_proto(),
            };
            let status = ctl
                .call(ctl.admin().cluster_status(ctl.request(request)))
                .await?;
            ctl.print(
                || output::cluster_status_table(&status),
                || output::cluster_status_json(&status),
            );
        }
        Command::Members(command) => members(&ctl, command).await?,
        Command::Shards(command) => shards(&ctl, command).await?,
        Command::Write(args) => return write(&ctl, args).await,
        Command::Query(args) => query(&ctl, args).await?,
        Command::Rules(command) => alerting::rules(&ctl, command).await?,
        Command::Silences(command) => alerting::silences(&ctl, command).await?,
        Command::Alerts(command) => alerting::alerts(&ctl, command).await?,
        Command::Alertmanager(command) => alerting::alertmanager(&ctl, command).await?,
        Command::Notifications(command) => alerting::notifications(&ctl, command).await?,
        Command::Settings(command) => return alerting::settings(&ctl, command).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Validates what clap cannot: addresses and the query window.
fn check_command(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Members(MembersCommand::Add {
            addr, http_addr, ..
        }) => {
            check_host_port("--addr", addr)?;
            if let Some(http_addr) = http_addr {
                check_host_port("--http-addr", http_addr)?;
            }
        }
        Command::Query(QueryArgs {
            start: Some(start),
            end: Some(end),
            ..
        }) if start > end => {
            bail!("--start ({start}) is after --end ({end})");
        }
        Command::Query(QueryArgs {
            step: Some(step), ..
        }) if *step <= 0 => {
            bail!("--step ({step}) must be positive");
        }
        _ => {}
    }
    Ok(())
}

async fn members(ctl: &Ctl, command: MembersCommand) -> anyhow::Result<()> {
    let mut admin = ctl.admin();
    let (done, node_id, response): (&str, u64, MemberResponse) = match command {
        MembersCommand::List(args) => {
            let request = ListMembersRequest {
                consistency: args.consistency.to_proto(),
            };
            let list = ctl.call(admin.list_members(ctl.request(request))).await?;
            ctl.print(
                || output::members_table(&list.members),
                || output::members_list_json(&list),
            );
            return Ok(());
        }
        MembersCommand::Add {
            node_id,
            addr,
            http_addr,
            guard,
        } => {
            let request = AddMemberRequest {
                node_id,
                grpc_addr: addr,
                http_addr: http_addr.unwrap_or_default(),
                expected_version: guard.expected_version,
            };
            let response = ctl.call(admin.add_member(ctl.request(request))).await?;
            ("added", node_id, response)
        }
        MembersCommand::Promote(args) => {
            let response = ctl
                .call(admin.promote_member(ctl.request(member_request(&args))))
                .await?;
            ("promoted", args.node_id, response)
        }
        MembersCommand::Remove(args) => {
            let response = ctl
                .call(admin.remove_member(ctl.request(member_request(&args))))
                .await?;
            ("removed", args.node_id, response)
        }
        MembersCommand::Drain(args) => {
            let response = ctl
                .call(admin.drain_member(ctl.request(member_request(&args))))
                .await?;
            ("draining", args.node_id, response)
        }
    };
    ctl.print(
        || output::member_change_text(done, node_id, &response),
        || output::member_change_json(&response),
    );
    Ok(())
}

fn member_request(args: &MemberArgs) -> MemberRequest {
    MemberRequest {
        node_id: args.node_id,
        expected_version: args.guard.expected_version,
    }
}

async fn shards(ctl: &Ctl, command: ShardsCommand) -> anyhow::Result<()> {
    let mut admin = ctl.admin();
    match command {
        ShardsCommand::List(args) => {
            let request = ListShardsRequest {
                consistency: args.consistency.to_proto(),
            };
            let list = ctl.call(admin.list_shards(ctl.request(request))).await?;
            ctl.print(
                || output::shards_list_table(&list),
                || output::shards_list_json(&list),
            );
        }
        ShardsCommand::Move {
            shard,
            from,
            to,
            guard,
        } => {
            let request = MoveShardRequest {
                shard,
                from,
                to,
                expected_version: guard.expected_version,
            };
            let response = ctl.call(admin.move_shard(ctl.request(request))).await?;
            let task = response
                .task
                .ok_or_else(|| anyhow!("the server recorded the move but returned no task"))?;
            ctl.print(
                || output::task_text(&task),
                || serde_json::json!({ "task": output::task_json(&task) }),
            );
        }
        ShardsCommand::TransferLeader { shard, to } => {
            let request = TransferShardLeaderRequest { shard, to };
            ctl.call(admin.transfer_shard_leader(ctl.request(request)))
                .await?;
            ctl.print(
                || format!("requested leadership of shard {shard} for node {to}\n"),
                || serde_json::json!({ "shard": shard, "to": to }),
            );
        }
        ShardsCommand::Rebalance => {
            let response = ctl
                .call(admin.rebalance(ctl.request(RebalanceRequest {})))
                .await?;
            ctl.print(
                || output::rebalance_table(&response),
                || output::rebalance_json(&response),
            );
        }
    }
    Ok(())
}

async fn write(ctl: &Ctl, args: WriteArgs) -> anyhow::Result<ExitCode> {
    let labels = selector::parse_series(&args.series)
        .with_context(|| format!("invalid series {:?}", args.series))?;
    let value = selector::parse_value(&args.value)?;
    let timestamp_ms = match args.timestamp {
        Some(timestamp_ms) => timestamp_ms,
        None => now_ms()?,
    };
    let series = vec![Series {
        labels: selector::to_labels(labels),
        samples: vec![Sample {
            timestamp_ms,
            value,
        }],
    }];
    let response = ctl.client_call(ctl.client.write(series, None)).await?;
    ctl.print(
        || output::write_table(&response),
        || output::write_json(&response),
    );
    if response.rejections.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprint!("{}", output::rejection_lines(&response));
        Ok(ExitCode::FAILURE)
    }
}

async fn query(ctl: &Ctl, args: QueryArgs) -> anyhow::Result<()> {
    let range = match (args.start, args.end) {
        (Some(start_ms), Some(end_ms)) => Some(PromqlRange {
            start_ms,
            end_ms,
            step_ms: args
                .step
                .unwrap_or_else(|| default_step_ms(start_ms, end_ms)),
        }),
        _ => None,
    };
    let request = PromqlRequest {
        expr: args.expr,
        time_ms: args.time,
        range,
        lookback_delta_ms: 0,
        consistency: args.consistency.to_proto(),
        // The node stops evaluating when this CLI stops waiting.
        limits: Some(QueryLimits {
            timeout_ms: u64::try_from(ctl.timeout.as_millis()).unwrap_or(u64::MAX),
            ..QueryLimits::default()
        }),
    };
    let response = ctl.client_call(ctl.client.promql(request)).await?;
    ctl.print(
        || output::promql_table(&response),
        || output::promql_json(&response),
    );
    if ctl.output == OutputFormat::Table {
        eprint!("{}", output::promql_notes(&response));
        let empty = matches!(response.result_type.as_str(), "vector" | "matrix")
            && response.series.is_empty();
        if empty {
            eprintln!("empty result: no series matched");
        }
    }
    Ok(())
}

/// The step of a range query given none: (end - start) / 250 in whole
/// seconds, at least one second.
fn default_step_ms(start_ms: i64, end_ms: i64) -> i64 {
    let step = end_ms.saturating_sub(start_ms) / RANGE_STEPS_DEFAULT;
    (step / 1000 * 1000).max(1000)
}

/// Milliseconds since the Unix epoch, from the wall clock.
// The CLI is outside the deterministic core: it runs in an operator's
// shell, never in the simulator, and "now" is what the operator means
// when they give no --timestamp or --time. So it reads the clock
// directly instead of through raftwatch_seams::Clock.
#[allow(clippy::disallowed_methods)]
fn now_ms() -> anyhow::Result<i64> {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    i64::try_from(since_epoch.as_millis()).context("the system clock is out of range")
}

/// Seeds this run's request ids (`c<seed>-<n>`): the clock and the
/// process id, so two invocations never share an id (a shard answers a
/// known id from memory instead of applying the write).
// As `now_ms`: the CLI runs in an operator's shell, never in the simulator.
#[allow(clippy::disallowed_methods)]
fn request_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 40)
}

/// Checks that `value` of `flag` is `HOST:PORT`
/// ([`endpoint::check_host_port`]).
fn check_host_port(flag: &str, value: &str) -> anyhow::Result<()> {
    endpoint::check_host_port(value).map_err(|why| anyhow!("invalid {flag} {value:?}: {why}"))
}

/// Renders an error for stderr: `error: <CODE>: <message>` for a gRPC
/// status (plus a hint line when the node named the leader), else
/// `error: <message: cause: ...>`.
fn render_error(err: &anyhow::Error) -> String {
    let Some(status) = err.downcast_ref::<Status>() else {
        return format!("error: {err:#}\n");
    };
    let mut message = status.message().to_owned();
    if message.is_empty() {
        message = status.code().description().to_owned();
    }
    // Transport failures carry the useful part (e.g. "connection
    // refused") only in the source chain.
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !message.contains(&cause_text) {
            message.push_str(": ");
            message.push_str(&cause_text);
        }
        source = cause.source();
    }
    // A failed PromQL query names Prometheus's error type (bad_data,
    // execution, ...) in its metadata.
    if let Some(kind) = status
        .metadata()
        .get(ERROR_TYPE_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        message = format!("{kind}: {message}");
    }
    let mut out = format!("error: {}: {message}\n", code_name(status.code()));
    if let Some(leader) = status
        .metadata()
        .get(LEADER_ADDR_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        out.push_str(&format!(
            "hint: the leader is at {leader}; retry with --endpoint http://{leader}\n"
        ));
    }
    out
}

/// Writes to stdout; a closed pipe (`raftwatchctl ... | head`) ends the
/// output quietly instead of panicking as `print!` would.
fn write_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("raftwatchctl").chain(args.iter().copied()))
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_anywhere_with_defaults() {
        let cli = parse(&["cluster", "status"]).unwrap();
        // RAFTWATCH_ENDPOINT may be set where the tests run; only check
        // the default when it is not.
        if std::env::var_os("RAFTWATCH_ENDPOINT").is_none() {
            assert_eq!(cli.endpoint, DEFAULT_ENDPOINT);
        }
        assert_eq!(cli.output, OutputFormat::Table);
        assert_eq!(cli.timeout, Duration::from_secs(10));

        let cli = parse(&[
            "cluster",
            "status",
            "--output",
            "json",
            "--endpoint",
            "http://10.0.0.1:7602",
            "--timeout",
            "0.5",
        ])
        .unwrap();
        assert_eq!(cli.output, OutputFormat::Json);
        assert_eq!(cli.endpoint, "http://10.0.0.1:7602");
        assert_eq!(cli.timeout, Duration::from_millis(500));
    }

    #[test]
    fn bad_timeouts_are_usage_errors() {
        for bad in ["0", "-1", "NaN", "abc", "1e30"] {
            assert!(
                parse(&["--timeout", bad, "cluster", "status"]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn write_takes_negative_and_infinite_values() {
        for value in ["-Inf", "-1.5", "+Inf", "NaN"] {
            let cli = parse(&["write", "up", value]).unwrap();
            let Command::Write(args) = cli.command else {
                panic!("not a write");
            };
            assert_eq!(args.value, value);
            assert!(selector::parse_value(&args.value).is_ok());
        }
        let cli = parse(&["write", r#"up{job="x"}"#, "1", "--timestamp", "-5"]).unwrap();
        let Command::Write(args) = cli.command else {
            panic!("not a write");
        };
        assert_eq!(args.timestamp, Some(-5));
    }

    #[test]
    fn query_window_flags() {
        assert!(parse(&["query", "up", "--time", "1000"]).is_ok());
        assert!(parse(&["query", "up", "--start", "1", "--end", "2"]).is_ok());
        assert!(parse(&["query", "up", "--start", "1"]).is_err());
        assert!(parse(&["query", "up", "--time", "5", "--start", "1", "--end", "2"]).is_err());
        assert!(parse(&["query", "up", "--consistency", "stale"]).is_ok());
        assert!(parse(&["query", "up", "--consistency", "eventual"]).is_err());

        let cli = parse(&["query", "up", "--start", "3", "--end", "2"]).unwrap();
        let err = check_command(&cli.command).unwrap_err();
        assert_eq!(err.to_string(), "--start (3) is after --end (2)");
        assert!(parse(&["query", "up", "--step", "5"]).is_err());
        let cli = parse(&["query", "up", "--start", "1", "--end", "2", "--step", "0"]).unwrap();
        let err = check_command(&cli.command).unwrap_err();
        assert_eq!(err.to_string(), "--step (0) must be positive");
        let cli = parse(&["query", "sum by (job) (rate(x[5m])) > 1"]).unwrap();
        assert!(check_command(&cli.command).is_ok());
        assert_eq!(default_step_ms(0, 3_600_000), 14_000);
        assert_eq!(default_step_ms(0, 10), 1_000);
    }

    #[test]
    fn subcommand_shapes() {
        assert!(parse(&["members", "list"]).is_ok());
        assert!(parse(&["members", "promote", "4"]).is_ok());
        assert!(parse(&["members", "remove", "4", "--expected-version", "9"]).is_ok());
        assert!(parse(&["members", "drain", "0"]).is_err());
        assert!(parse(&["shards", "move", "3", "--from", "1", "--to", "4"]).is_ok());
        assert!(parse(&["shards", "move", "3", "--from", "1"]).is_err());
        assert!(parse(&["shards", "transfer-leader", "3", "--to", "2"]).is_ok());
        assert!(parse(&["shards", "rebalance"]).is_ok());
        assert!(parse(&["shards", "list", "--consistency", "stale"]).is_ok());
    }

    #[test]
    fn members_add_address_is_checked_before_any_rpc() {
        let cli = parse(&["members", "add", "--node-id", "4", "--addr", "10.0.0.4"]).unwrap();
        let err = check_command(&cli.command).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid --addr "10.0.0.4": expected HOST:PORT"#
        );

        let cli = parse(&[
            "members",
            "add",
            "--node-id",
            "4",
            "--addr",
            "10.0.0.4:7606",
            "--http-addr",
            "10.0.0.4:0",
        ])
        .unwrap();
        let err = check_command(&cli.command).unwrap_err();
        assert!(err.to_string().starts_with("invalid --http-addr"), "{err}");
    }

    #[test]
    fn addresses_are_checked_by_the_client_library() {
        assert!(check_host_port("--addr", "[::1]:7600").is_ok());
        let err = check_host_port("--addr", "host:0").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid --addr "host:0": the port must be a number in 1..65535"#
        );
    }

    #[test]
    fn grpc_errors_use_canonical_code_names() {
        let err = anyhow::Error::from(Status::failed_precondition("member 4 still holds shard 2"));
        assert_eq!(
            render_error(&err),
            "error: FAILED_PRECONDITION: member 4 still holds shard 2\n"
        );
        let mut status = Status::unavailable("not the leader");
        status
            .metadata_mut()
            .insert(LEADER_ADDR_KEY, "10.0.0.2:7602".parse().unwrap());
        assert_eq!(
            render_error(&anyhow::Error::from(status)),
            "error: UNAVAILABLE: not the leader\n\
             hint: the leader is at 10.0.0.2:7602; retry with --endpoint http://10.0.0.2:7602\n"
        );
        assert_eq!(
            render_error(&anyhow!("invalid series")),
            "error: invalid series\n"
        );
    }
}
