//! The `ongwatch` command line (CONTRACT §1). Exit codes: 0 ok, 2 bad usage or config,
//! 1 runtime failure; errors are one line naming what is wrong and how to fix it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Credentials, MqttMode, Problems};
use crate::daemon;
use crate::event::{TopicRoot, schema, validate_filter};
use crate::mqtt::Endpoint;
use crate::mqtt::access::{Access, LocalLogin};
use crate::mqtt::client::CliClient;
use crate::sources::trigger::TriggerRequest;
use crate::sources::twitch::auth as twitch_auth;
use crate::state::{self, Runtime};

#[derive(Parser)]
#[command(
    name = "ongwatch",
    version,
    about = "One daemon between a streamer's platforms and their bots: normalized events on MQTT and WebSocket."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// ongwatch.toml (default: ./ongwatch.toml if it exists, else built-in defaults).
    #[arg(long, env = "ONGWATCH_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Where the event log, tokens and runtime file live (default: the platform data dir).
    #[arg(long, env = "ONGWATCH_STATE_DIR", global = true)]
    state_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        #[command(flatten)]
        common: Common,
        /// credentials.toml (default: ./credentials.toml if it exists).
        #[arg(long, env = "ONGWATCH_CREDENTIALS")]
        credentials: Option<PathBuf>,
        /// Selects [<provider>.<environment>] in credentials.toml (overrides the config).
        #[arg(long)]
        environment: Option<String>,
        /// Add a simulated source of realistic events (flagged test), no account needed.
        #[arg(long)]
        demo: bool,
        /// Demo events per second (default 0.5, human pace; raise it for load).
        #[arg(long, requires = "demo")]
        demo_rate: Option<f64>,
    },
    /// Inject a test event into the running daemon; it comes out with "test": true.
    Trigger {
        #[command(flatten)]
        common: Common,
        /// cheer, tip, sub, resub, gift, follow, raid, redemption, chat, online, offline, hypetrain, poll, prediction
        #[arg(value_name = "TYPE")]
        kind: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        amount: Option<f64>,
        #[arg(long)]
        message: Option<String>,
        /// The channel it happens in (default: [twitch] channel).
        #[arg(long)]
        channel: Option<String>,
        /// Any upstream field, k=v; repeatable.
        #[arg(long = "field", value_name = "K=V", value_parser = parse_field)]
        fields: Vec<(String, String)>,
        /// Send the event this many times, each with its own id (for load tests).
        #[arg(long, default_value_t = 1)]
        repeat: u64,
        /// With --repeat: events per second (default: as fast as the broker acknowledges).
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Live, readable view of the bus.
    Tail {
        #[command(flatten)]
        common: Common,
        /// MQTT filters, e.g. 'stream/support/#' (default: everything under the topic root).
        filters: Vec<String>,
        /// Print one JSON object per message: {"topic", "event"}.
        #[arg(long)]
        json: bool,
        /// Exit after this many messages.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Validate config and credentials; one line per problem.
    Check {
        #[command(flatten)]
        common: Common,
        #[arg(long, env = "ONGWATCH_CREDENTIALS")]
        credentials: Option<PathBuf>,
    },
    /// Print access rules that enforce topic authority on an external broker.
    Acl {
        #[command(flatten)]
        common: Common,
        /// A mosquitto acl_file (the only format so far).
        #[arg(long)]
        mosquitto: bool,
    },
    /// Print the JSON Schema of every payload, or the AsyncAPI 3 document.
    Schema {
        #[arg(long)]
        asyncapi: bool,
    },
    /// Log in to Twitch, or list the stored logins.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Republish a recorded event log onto the bus (flagged test unless --as-live).
    Replay {
        #[command(flatten)]
        common: Common,
        file: PathBuf,
        /// Playback speed; 0 sends as fast as the broker takes it.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Keep the original ids and test flags, as if it happened now.
        #[arg(long)]
        as_live: bool,
    },
}

#[derive(Subcommand)]
enum AuthCommand {
    /// OAuth device-code login: prints a URL and a code, waits for approval, stores the token.
    Twitch {
        #[command(flatten)]
        common: Common,
        #[arg(long, env = "ONGWATCH_CREDENTIALS")]
        credentials: Option<PathBuf>,
        /// Selects [twitch.<environment>] in credentials.toml (overrides the config).
        #[arg(long)]
        environment: Option<String>,
        /// broadcaster: EventSub events; bot: chat as a separate user.
        #[arg(long, value_enum, default_value = "broadcaster")]
        account: twitch_auth::Account,
    },
    /// Every stored account: login, user id, scopes, expiry, missing scopes.
    Status {
        #[command(flatten)]
        common: Common,
        #[arg(long, env = "ONGWATCH_CREDENTIALS")]
        credentials: Option<PathBuf>,
        #[arg(long)]
        environment: Option<String>,
    },
}

/// Config, credentials and state dir of an `auth` subcommand.
fn auth_setup(
    common: &Common,
    credentials: Option<PathBuf>,
    environment: Option<String>,
) -> Result<(Config, Credentials, PathBuf), Failure> {
    let mut config = load_config(common)?;
    if let Some(environment) = environment {
        config.environment = environment;
    }
    let credentials = Credentials::load(default_file(credentials, "credentials.toml").as_deref())?;
    Ok((
        config,
        credentials,
        state::resolve_state_dir(common.state_dir.as_deref()),
    ))
}

impl From<twitch_auth::CommandError> for Failure {
    fn from(e: twitch_auth::CommandError) -> Self {
        match e {
            twitch_auth::CommandError::Usage(m) => Self::usage(m),
            twitch_auth::CommandError::Runtime(m) => Self::runtime(m),
        }
    }
}

fn parse_field(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{text:?} is not k=v")),
    }
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl std::fmt::Display) -> Self {
        Self {
            code: 2,
            message: message.to_string(),
        }
    }

    fn runtime(message: impl std::fmt::Display) -> Self {
        Self {
            code: 1,
            message: message.to_string(),
        }
    }
}

impl From<Problems> for Failure {
    fn from(problems: Problems) -> Self {
        Self::usage(problems)
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ongwatch: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            for line in failure.message.lines() {
                eprintln!("ongwatch: {line}");
            }
            ExitCode::from(failure.code)
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ONGWATCH_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,rmqtt=warn,rmqtt_net=warn,rumqttc=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// `--config`, else `./<name>` if it exists.
fn default_file(explicit: Option<PathBuf>, name: &str) -> Option<PathBuf> {
    explicit.or_else(|| {
        let local = PathBuf::from(name);
        local.exists().then_some(local)
    })
}

fn load_config(common: &Common) -> Result<Config, Failure> {
    Ok(Config::load(
        default_file(common.config.clone(), "ongwatch.toml").as_deref(),
    )?)
}

async fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Run {
            common,
            credentials,
            environment,
            demo,
            demo_rate,
        } => {
            let mut config = load_config(&common)?;
            if let Some(environment) = environment {
                config.environment = environment;
            }
            if let Some(rate) = demo_rate {
                if !(rate > 0.0 && rate <= 100_000.0) {
                    return Err(Failure::usage(format!(
                        "--demo-rate {rate} is out of range; use events per second between 0 (exclusive) and 100000"
                    )));
                }
                config.demo.rate = rate;
            }
            let credentials =
                Credentials::load(default_file(credentials, "credentials.toml").as_deref())?;
            let mqtt_access = Access::new(&config, &credentials)?;
            let state_dir = state::resolve_state_dir(common.state_dir.as_deref());
            let shutdown = CancellationToken::new();
            tokio::spawn(watch_signals(shutdown.clone()));
            daemon::run(
                daemon::Options {
                    config,
                    credentials,
                    mqtt_access,
                    state_dir,
                    demo,
                },
                shutdown,
            )
            .await
            .map_err(|e| Failure::runtime(format!("{e:#}")))
        }
        Command::Trigger {
            common,
            kind,
            user,
            amount,
            message,
            channel,
            fields,
            repeat,
            rate,
        } => {
            let config = load_config(&common)?;
            let request = TriggerRequest {
                id: None,
                kind,
                user,
                amount,
                message,
                channel,
                fields: fields.into_iter().collect(),
            };
            crate::sources::trigger::validate(&request).map_err(Failure::usage)?;
            if let Some(rate) = rate
                && !(rate > 0.0 && rate.is_finite())
            {
                return Err(Failure::usage(format!(
                    "--rate {rate} must be a positive number of events per second"
                )));
            }
            trigger(&config, &common, request, repeat, rate).await
        }
        Command::Tail {
            common,
            filters,
            json,
            count,
        } => {
            let config = load_config(&common)?;
            tail(&config, &common, filters, json, count).await
        }
        Command::Check {
            common,
            credentials,
        } => check(&common, credentials),
        Command::Acl { common, mosquitto } => {
            if !mosquitto {
                return Err(Failure::usage(
                    "name the broker the rules are for: ongwatch acl --mosquitto",
                ));
            }
            let config = load_config(&common)?;
            let user = crate::mqtt::Endpoint::from_url(&config.mqtt_url)
                .ok()
                .and_then(|endpoint| endpoint.username)
                .ok_or_else(|| {
                    Failure::usage(
                        "[mqtt] url has no user: on an external broker ongwatch must log in, so that only it may publish its topics; use e.g. url = \"mqtt://ongwatch:PASSWORD@host:1883\"",
                    )
                })?;
            let rules = crate::mqtt::authority::Rules::new(
                &config.topic_root,
                &config.bots,
                &config.mqtt.command_clients,
            );
            print!("{}", rules.mosquitto_acl(&user));
            Ok(())
        }
        Command::Schema { asyncapi } => {
            let document = if asyncapi {
                schema::asyncapi(daemon::VERSION)
            } else {
                schema::json_schema()
            };
            let text = serde_json::to_string_pretty(&document)
                .map_err(|e| Failure::runtime(format!("cannot print the schema: {e}")))?;
            println!("{text}");
            Ok(())
        }
        Command::Auth {
            command:
                AuthCommand::Twitch {
                    common,
                    credentials,
                    environment,
                    account,
                },
        } => {
            let (config, credentials, state_dir) = auth_setup(&common, credentials, environment)?;
            Ok(twitch_auth::login_command(&config, &credentials, &state_dir, account).await?)
        }
        Command::Auth {
            command:
                AuthCommand::Status {
                    common,
                    credentials,
                    environment,
                },
        } => {
            let (config, credentials, state_dir) = auth_setup(&common, credentials, environment)?;
            print!(
                "{}",
                twitch_auth::status_command(&config, &credentials, &state_dir)?
            );
            Ok(())
        }
        Command::Replay {
            common,
            file,
            speed,
            as_live,
        } => {
            if !(speed >= 0.0 && speed.is_finite()) {
                return Err(Failure::usage(format!(
                    "--speed {speed} is not a speed; use 1 for real time, 10 for ten times faster, 0 for as fast as possible"
                )));
            }
            let config = load_config(&common)?;
            replay(&config, &common, &file, speed, as_live).await
        }
    }
}

async fn watch_signals(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    shutdown.cancel();
}

/// The broker of the daemon this CLI invocation belongs to.
fn cli_endpoint(config: &Config, common: &Common) -> Result<Endpoint, Failure> {
    let state_dir = state::resolve_state_dir(common.state_dir.as_deref());
    let runtime = Runtime::read(&state_dir);
    if config.mqtt.mode == MqttMode::Embedded && runtime.is_none() && config.mqtt_listen.port() == 0
    {
        return Err(Failure::runtime(format!(
            "no running daemon found in {} (mqtt.listen has port 0, so its port is only in runtime.json); start `ongwatch run` with the same --state-dir",
            state_dir.display()
        )));
    }
    let mut endpoint = Endpoint::for_cli(config, runtime.as_ref()).map_err(Failure::usage)?;
    if config.mqtt.mode == MqttMode::Embedded
        && let Some(login) = LocalLogin::read(&state_dir)
    {
        login.use_for(&mut endpoint);
    }
    Ok(endpoint)
}

/// How long CLI commands wait for a broker that is down or restarting.
const CLI_PATIENCE: Duration = Duration::from_secs(30);

async fn trigger(
    config: &Config,
    common: &Common,
    request: TriggerRequest,
    repeat: u64,
    rate: Option<f64>,
) -> Result<(), Failure> {
    let endpoint = cli_endpoint(config, common)?;
    let channel = request
        .channel
        .clone()
        .unwrap_or_else(|| daemon::default_channel(config));
    let topic = config.topic_root.topic(&channel, "command/trigger");
    let mut client = CliClient::new(endpoint, "ongwatch-trigger", CLI_PATIENCE);
    let mut pace = rate.map(|rate| tokio::time::interval(Duration::from_secs_f64(1.0 / rate)));
    for _ in 0..repeat {
        if let Some(pace) = pace.as_mut() {
            pace.tick().await;
        }
        let request = TriggerRequest {
            id: Some(uuid::Uuid::new_v4().to_string()),
            ..request.clone()
        };
        let payload = serde_json::to_vec(&request)
            .map_err(|e| Failure::runtime(format!("cannot encode the trigger: {e}")))?;
        client
            .publish(&topic, Bytes::from(payload), false)
            .await
            .map_err(Failure::runtime)?;
    }
    client.disconnect().await;
    Ok(())
}

async fn tail(
    config: &Config,
    common: &Common,
    filters: Vec<String>,
    json: bool,
    count: Option<u64>,
) -> Result<(), Failure> {
    let filters = if filters.is_empty() {
        vec![config.topic_root.filter_all()]
    } else {
        filters
    };
    for filter in &filters {
        validate_filter(filter).map_err(Failure::usage)?;
    }
    let endpoint = cli_endpoint(config, common)?;
    let mut client = CliClient::new(endpoint.clone(), "ongwatch-tail", CLI_PATIENCE);
    client.subscribe(&filters).await.map_err(Failure::runtime)?;
    eprintln!("tail: subscribed to {} on {endpoint}", filters.join(" "));
    let stdout = std::io::stdout();
    let mut seen = 0u64;
    while count.is_none_or(|count| seen < count) {
        let publish = tokio::select! {
            publish = client.next_publish() => publish.map_err(Failure::runtime)?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let topic = String::from_utf8_lossy(&publish.topic).into_owned();
        let event: serde_json::Value =
            serde_json::from_slice(&publish.payload).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&publish.payload).into_owned())
            });
        let line = if json {
            serde_json::json!({"topic": topic, "event": event}).to_string()
        } else {
            readable(&topic, &event, publish.retain)
        };
        let mut out = stdout.lock();
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            break;
        }
        seen += 1;
    }
    client.disconnect().await;
    Ok(())
}

/// One human line: time, topic, then what matters of the payload.
fn readable(topic: &str, event: &serde_json::Value, retained: bool) -> String {
    let text = |key: &str| event.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let time = text("time")
        .and_then(|t| t.get(11..23).map(str::to_owned))
        .unwrap_or_else(|| "--:--:--.---".into());
    let mut parts = Vec::new();
    if let Some(kind) = text("type") {
        parts.push(kind);
    }
    if let Some(user) = text("display_name").or_else(|| text("user")) {
        parts.push(user);
    }
    if let Some(amount) = event
        .get("amount")
        .or_else(|| event.get("count"))
        .or_else(|| event.get("viewers"))
    {
        let currency = text("currency").unwrap_or_default();
        parts.push(format!("{amount} {currency}").trim_end().to_owned());
    }
    for key in ["state", "level", "phase", "title", "reward_title"] {
        if let Some(value) = event.get(key) {
            parts.push(format!(
                "{key}={}",
                value
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| value.to_string())
            ));
        }
    }
    if let Some(message) = text("message") {
        parts.push(format!("{message:?}"));
    }
    if parts.is_empty() {
        parts.push(event.to_string());
    }
    let mut flags = String::new();
    if event.get("test").and_then(|v| v.as_bool()) == Some(true) {
        flags.push_str(" [test]");
    }
    if retained {
        flags.push_str(" [retained]");
    }
    format!("{time}  {topic}  {}{flags}", parts.join("  "))
}

fn check(common: &Common, credentials: Option<PathBuf>) -> Result<(), Failure> {
    let config_path = default_file(common.config.clone(), "ongwatch.toml");
    let credentials_path = default_file(credentials, "credentials.toml");
    let mut problems = Vec::new();
    let config = match Config::load(config_path.as_deref()) {
        Ok(config) => Some(config),
        Err(Problems(found)) => {
            problems.extend(found);
            None
        }
    };
    let credentials = match Credentials::load(credentials_path.as_deref()) {
        Ok(credentials) => Some(credentials),
        Err(Problems(found)) => {
            problems.extend(found);
            None
        }
    };
    if let (Some(config), Some(credentials)) = (&config, &credentials)
        && let Err(Problems(found)) = Access::new(config, credentials)
    {
        problems.extend(found);
    }
    if !problems.is_empty() {
        return Err(Failure::usage(Problems(problems)));
    }
    let state_dir = state::resolve_state_dir(common.state_dir.as_deref());
    let probe = state_dir.join(".check");
    state::ensure_dir(&state_dir)
        .and_then(|_| state::write_private_atomic(&probe, b"ok"))
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            Failure::usage(format!(
                "state dir {}: not writable ({e}); pass --state-dir with a writable directory",
                state_dir.display()
            ))
        })?;
    let source = config_path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in defaults".into());
    if let Some(config) = &config {
        println!(
            "ok: config ({source}), environment {:?}, topic root {:?}, mqtt {:?}",
            config.environment,
            config.topic_root.template(),
            config.mqtt.mode
        );
    }
    println!("ok: state dir {}", state_dir.display());
    if let (Some(config), Some(credentials)) = (&config, &credentials) {
        for line in
            crate::sources::twitch::auth::logins::check_lines(config, credentials, &state_dir)
        {
            println!("{line}");
        }
        if let Some(line) = crate::sources::obs::check_line(config, credentials) {
            println!("{line}");
        }
    }
    Ok(())
}

async fn replay(
    config: &Config,
    common: &Common,
    file: &Path,
    speed: f64,
    as_live: bool,
) -> Result<(), Failure> {
    let reader = std::fs::File::open(file)
        .map(std::io::BufReader::new)
        .map_err(|e| Failure::usage(format!("{}: cannot read it ({e})", file.display())))?;
    let endpoint = cli_endpoint(config, common)?;
    let mut client = CliClient::new(endpoint, "ongwatch-replay", CLI_PATIENCE);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut previous: Option<chrono::DateTime<chrono::Utc>> = None;
    let (mut sent, mut skipped) = (0u64, 0u64);
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Failure::runtime(format!("{}: {e}", file.display())))?;
        let Some((topic, mut event)) = parse_log_line(&line) else {
            if !line.trim().is_empty() {
                skipped += 1;
                tracing::warn!(
                    line = number + 1,
                    "skipped a line that is not {{\"seq\",\"topic\",\"event\"}}"
                );
            }
            continue;
        };
        if is_daemon_state(config.topic_root.clone(), &topic) {
            continue;
        }
        if let Some(time) = event
            .get("time")
            .and_then(|t| t.as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
        {
            if let Some(previous) = previous
                && speed > 0.0
            {
                let gap = (time - previous)
                    .to_std()
                    .unwrap_or_default()
                    .min(Duration::from_secs(60));
                tokio::time::sleep(gap.div_f64(speed)).await;
            }
            previous = Some(time);
        }
        if !as_live && let Some(object) = event.as_object_mut() {
            object.insert("test".into(), serde_json::Value::Bool(true));
            if let Some(id) = object.get("id").and_then(|id| id.as_str()) {
                let id = format!("{id}#replay-{run}");
                object.insert("id".into(), serde_json::Value::String(id));
            }
        }
        let payload = serde_json::to_vec(&event).unwrap_or_default();
        client
            .publish(&topic, Bytes::from(payload), false)
            .await
            .map_err(Failure::runtime)?;
        sent += 1;
    }
    client.disconnect().await;
    eprintln!("replay: {sent} events published, {skipped} lines skipped");
    Ok(())
}

fn parse_log_line(line: &str) -> Option<(String, serde_json::Value)> {
    let mut value: serde_json::Value = serde_json::from_str(line).ok()?;
    let topic = value.get("topic")?.as_str()?.to_owned();
    let event = value.get_mut("event")?.take();
    Some((topic, event))
}

/// The daemon's own retained state is not replayed: it describes a daemon, not the stream.
fn is_daemon_state(root: TopicRoot, topic: &str) -> bool {
    root.strip(topic)
        .is_some_and(|(_, suffix)| suffix.starts_with("system/") || suffix.starts_with("command/"))
}
