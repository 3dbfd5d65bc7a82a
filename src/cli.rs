//! The `ongwatch` command line (CONTRACT §1). Exit codes: 0 ok, 2 bad usage or config,
//! 1 runtime failure; errors are one line naming what is wrong and how to fix it.

use std::collections::BTreeMap;
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
use crate::mqtt::client::{CliClient, ClientError, Rejected};
use crate::sources::trigger::TriggerRequest;
use crate::sources::twitch::auth as twitch_auth;
use crate::state::{self, Found, Runtime};

#[derive(Parser)]
#[command(
    name = "ongwatch",
    version,
    about = "One daemon between a streamer's platforms and their bots: normalized events on MQTT and WebSocket.",
    after_help = "Examples:\n  ongwatch run --demo                  # the whole flow with simulated events, no account needed\n  ongwatch tail                        # in a second terminal: what goes over the bus\n  ongwatch trigger cheer --amount 100  # a test cheer through the real normalizers"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// The help heading of the options every command accepts.
const GLOBAL: &str = "Global options";

/// Options every command accepts, before or after its name (CONTRACT §1). Commands that do not
/// need one (e.g. `trigger` and credentials) accept it all the same, so one set of options, an
/// alias or a service file's environment works for every command.
#[derive(Args, Clone)]
struct Global {
    /// ongwatch.toml (default: ./ongwatch.toml if it exists, else built-in defaults).
    #[arg(long, env = "ONGWATCH_CONFIG", global = true, value_name = "FILE", help_heading = GLOBAL)]
    config: Option<PathBuf>,
    /// credentials.toml (default: ./credentials.toml if it exists); used by run, check and auth.
    #[arg(long, env = "ONGWATCH_CREDENTIALS", global = true, value_name = "FILE", help_heading = GLOBAL)]
    credentials: Option<PathBuf>,
    /// Where the event log, tokens and runtime.json live (default: the platform data dir).
    #[arg(long, env = "ONGWATCH_STATE_DIR", global = true, value_name = "DIR", help_heading = GLOBAL)]
    state_dir: Option<PathBuf>,
    /// Selects [<provider>.<environment>] in credentials.toml (overrides `environment` in the config).
    #[arg(long, env = "ONGWATCH_ENVIRONMENT", global = true, value_name = "NAME", help_heading = GLOBAL)]
    environment: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    #[command(
        after_help = "Examples:\n  ongwatch run --demo                       # simulated events, no account needed\n  ongwatch run --state-dir .ongwatch        # keep tokens and the event log next to the project\n  ongwatch run --config ongwatch.toml --credentials credentials.toml --environment prod"
    )]
    Run {
        /// Add a simulated source of realistic events (flagged test), no account needed.
        #[arg(long)]
        demo: bool,
        /// Demo events per second (default 0.5, human pace; raise it for load).
        #[arg(long, requires = "demo", value_name = "N")]
        demo_rate: Option<f64>,
    },
    /// Inject a test event into the running daemon; it comes out with "test": true.
    #[command(
        after_help = "With no daemon answering it prints one line naming the address it tried and exits 1.\n\nExamples:\n  ongwatch trigger cheer --user alinsa_vix --amount 2490 --message \"Cheer2490 CHAOS\"\n  ongwatch trigger sub --user viewer1 --field tier=2000\n  ongwatch trigger hypetrain --field phase=end --amount 5000"
    )]
    Trigger {
        /// cheer, tip, sub, resub, gift, follow, raid, redemption, chat, online, offline, hypetrain, poll, prediction
        #[arg(value_name = "TYPE")]
        kind: String,
        /// Login of the user who acts (default: a test user).
        #[arg(long, value_name = "LOGIN")]
        user: Option<String>,
        /// Bits of a cheer, money of a tip, count of a gift, viewers of a raid, months of a resub...
        #[arg(long, value_name = "N")]
        amount: Option<f64>,
        /// Text of a cheer, resub, chat message or tip; title of a poll or prediction.
        #[arg(long, value_name = "TEXT")]
        message: Option<String>,
        /// The channel it happens in (default: [twitch] channel).
        #[arg(long, value_name = "LOGIN")]
        channel: Option<String>,
        /// Any upstream field, k=v; repeatable.
        #[arg(long = "field", value_name = "K=V", value_parser = parse_field)]
        fields: Vec<(String, String)>,
        /// Send the event this many times, each with its own id (for load tests).
        #[arg(long, default_value_t = 1, value_name = "N")]
        repeat: u64,
        /// With --repeat: events per second (default: as fast as the broker acknowledges).
        #[arg(long, value_name = "N")]
        rate: Option<f64>,
    },
    /// Live, readable view of the bus.
    #[command(
        after_help = "A daemon that goes away while tail runs is reported once, and tail goes on when it is back.\n\nExamples:\n  ongwatch tail                                  # everything under the topic root\n  ongwatch tail 'stream/support/#' --json        # one JSON object per line\n  ongwatch tail --wait                           # start it before the daemon"
    )]
    Tail {
        /// MQTT filters, e.g. 'stream/support/#' (default: everything under the topic root).
        filters: Vec<String>,
        /// Print one JSON object per message: {"topic", "event"}.
        #[arg(long)]
        json: bool,
        /// Exit after this many messages.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// If no daemon answers, wait for one (saying so once) instead of exiting 1.
        #[arg(long)]
        wait: bool,
    },
    /// Validate config and credentials; one line per problem.
    #[command(
        after_help = "Examples:\n  ongwatch check\n  ongwatch check --config ongwatch.toml --credentials credentials.toml --environment prod"
    )]
    Check,
    /// Print access rules that enforce topic authority on an external broker (docs/BOTS.md).
    #[command(
        after_help = "Examples:\n  ongwatch acl --mosquitto > /etc/mosquitto/ongwatch.acl\n  ongwatch acl --mosquitto --config ongwatch.toml"
    )]
    Acl {
        /// A mosquitto acl_file (the only format so far).
        #[arg(long)]
        mosquitto: bool,
    },
    /// Print the JSON Schema of every payload, or the AsyncAPI 3 document.
    #[command(
        after_help = "Examples:\n  ongwatch schema > events.schema.json\n  ongwatch schema --asyncapi > asyncapi.json"
    )]
    Schema {
        /// Print the AsyncAPI 3 document of every topic instead.
        #[arg(long)]
        asyncapi: bool,
    },
    /// Log in to Twitch, or list the stored logins.
    #[command(
        after_help = "Examples:\n  ongwatch auth twitch                  # the broadcaster account\n  ongwatch auth twitch --account bot    # a separate chat bot user\n  ongwatch auth status"
    )]
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Republish a recorded event log onto the bus (flagged test unless --as-live).
    #[command(
        after_help = "It ends with what it published and skipped per topic family, and why.\n\nExamples:\n  ongwatch replay ~/.local/share/ongwatch/events.jsonl --speed 10\n  ongwatch replay recorded.jsonl --speed 0          # as fast as the broker takes it\n  ongwatch replay recorded.jsonl --all-topics       # commands and system states too"
    )]
    Replay {
        /// An event log: one {"seq","topic","event"} per line, e.g. <state dir>/events.jsonl.
        file: PathBuf,
        /// Playback speed; 0 sends as fast as the broker takes it.
        #[arg(long, default_value_t = 1.0, value_name = "X")]
        speed: f64,
        /// Keep the original ids and test flags, as if it happened now.
        #[arg(long)]
        as_live: bool,
        /// Also republish command, system and bot-presence topics (left out by default:
        /// commands would act again, states describe the daemon that recorded the log).
        #[arg(long)]
        all_topics: bool,
    },
}

#[derive(Subcommand)]
enum AuthCommand {
    /// OAuth device-code login: prints a URL and a code, waits for approval, stores the token.
    #[command(
        after_help = "Examples:\n  ongwatch auth twitch\n  ongwatch auth twitch --account bot --environment prod"
    )]
    Twitch {
        /// broadcaster: EventSub events; bot: chat as a separate user.
        #[arg(long, value_enum, default_value = "broadcaster")]
        account: twitch_auth::Account,
    },
    /// Every stored account: login, user id, scopes, expiry, missing scopes.
    #[command(
        after_help = "Examples:\n  ongwatch auth status\n  ongwatch auth status --state-dir .ongwatch --environment prod"
    )]
    Status,
}

/// Config, credentials and state dir of an `auth` subcommand.
fn auth_setup(global: &Global) -> Result<(Config, Credentials, PathBuf), Failure> {
    let config = load_config(global)?;
    let credentials = load_credentials(global)?;
    Ok((
        config,
        credentials,
        state::resolve_state_dir(global.state_dir.as_deref()),
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
    match runtime.block_on(dispatch(cli.global, cli.command)) {
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

fn load_config(global: &Global) -> Result<Config, Failure> {
    let mut config = Config::load(default_file(global.config.clone(), "ongwatch.toml").as_deref())?;
    if let Some(environment) = &global.environment {
        config.environment = environment.clone();
    }
    Ok(config)
}

fn load_credentials(global: &Global) -> Result<Credentials, Failure> {
    Ok(Credentials::load(
        default_file(global.credentials.clone(), "credentials.toml").as_deref(),
    )?)
}

async fn dispatch(global: Global, command: Command) -> Result<(), Failure> {
    match command {
        Command::Run { demo, demo_rate } => {
            let mut config = load_config(&global)?;
            if let Some(rate) = demo_rate {
                if !(rate > 0.0 && rate <= 100_000.0) {
                    return Err(Failure::usage(format!(
                        "--demo-rate {rate} is out of range; use events per second between 0 (exclusive) and 100000"
                    )));
                }
                config.demo.rate = rate;
            }
            let credentials = load_credentials(&global)?;
            let mqtt_access = Access::new(&config, &credentials)?;
            let state_dir = state::resolve_state_dir(global.state_dir.as_deref());
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
            kind,
            user,
            amount,
            message,
            channel,
            fields,
            repeat,
            rate,
        } => {
            let config = load_config(&global)?;
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
            trigger(&config, &global, request, repeat, rate).await
        }
        Command::Tail {
            filters,
            json,
            count,
            wait,
        } => {
            let config = load_config(&global)?;
            tail(&config, &global, filters, json, count, wait).await
        }
        Command::Check => check(&global),
        Command::Acl { mosquitto } => {
            if !mosquitto {
                return Err(Failure::usage(
                    "name the broker the rules are for: ongwatch acl --mosquitto",
                ));
            }
            let config = load_config(&global)?;
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
                schema::asyncapi(crate::VERSION)
            } else {
                schema::json_schema()
            };
            let text = serde_json::to_string_pretty(&document)
                .map_err(|e| Failure::runtime(format!("cannot print the schema: {e}")))?;
            println!("{text}");
            Ok(())
        }
        Command::Auth {
            command: AuthCommand::Twitch { account },
        } => {
            let (config, credentials, state_dir) = auth_setup(&global)?;
            Ok(twitch_auth::login_command(&config, &credentials, &state_dir, account).await?)
        }
        Command::Auth {
            command: AuthCommand::Status,
        } => {
            let (config, credentials, state_dir) = auth_setup(&global)?;
            print!(
                "{}",
                twitch_auth::status_command(&config, &credentials, &state_dir)?
            );
            Ok(())
        }
        Command::Replay {
            file,
            speed,
            as_live,
            all_topics,
        } => {
            if !(speed >= 0.0 && speed.is_finite()) {
                return Err(Failure::usage(format!(
                    "--speed {speed} is not a speed; use 1 for real time, 10 for ten times faster, 0 for as fast as possible"
                )));
            }
            let config = load_config(&global)?;
            let options = ReplayOptions {
                speed,
                as_live,
                all_topics,
            };
            replay(&config, &global, &file, options).await
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

/// The fix every "no daemon" line ends with.
const START_THE_DAEMON: &str =
    "start the daemon with `ongwatch run` (same --config and --state-dir)";

/// How long `trigger` and `replay` wait for a broker that went away after they had connected
/// (a daemon restarting under them); the first connection is bounded by `CONNECT_TIMEOUT`.
const CLI_PATIENCE: Duration = Duration::from_secs(30);

/// How often `tail` looks for a daemon that is not there (yet).
const TAIL_RETRY: Duration = Duration::from_millis(250);

/// Why a CLI command did not get a connection to its daemon.
enum Unreached {
    /// No daemon answers; one line naming the address or file tried, without the fix (callers
    /// add it, or wait).
    Absent(String),
    /// Something waiting will not cure: bad config, a login the broker refuses.
    Failed(Failure),
}

impl Unreached {
    /// The failure of a command that does not wait.
    fn into_failure(self) -> Failure {
        match self {
            Self::Absent(why) => Failure::runtime(format!("{why}; {START_THE_DAEMON}")),
            Self::Failed(failure) => failure,
        }
    }
}

/// Connects to the broker of the daemon this CLI invocation belongs to, found through
/// `<state dir>/runtime.json`. Ends within `CONNECT_TIMEOUT`: a missing or stale runtime.json
/// is answered without the network, and the connection attempt itself is bounded.
async fn reach_daemon(
    config: &Config,
    global: &Global,
    client_prefix: &str,
    patience: Duration,
) -> Result<CliClient, Unreached> {
    let state_dir = state::resolve_state_dir(global.state_dir.as_deref());
    let file = state_dir.join(Runtime::FILE);
    let found = Runtime::find(&state_dir);
    let recorded = match &found {
        Found::Nothing => None,
        Found::Stale(runtime) | Found::Running(runtime) => Some(runtime),
    };
    let mut endpoint =
        Endpoint::for_cli(config, recorded).map_err(|e| Unreached::Failed(Failure::usage(e)))?;
    match &found {
        Found::Stale(runtime) => {
            return Err(Unreached::Absent(format!(
                "no daemon at {endpoint}: pid {}, which wrote {}, is no longer running (it was killed or crashed)",
                runtime.pid,
                file.display()
            )));
        }
        Found::Nothing
            if config.mqtt.mode == MqttMode::Embedded && config.mqtt_listen.port() == 0 =>
        {
            return Err(Unreached::Absent(format!(
                "no daemon found: there is no {}, where a daemon with mqtt.listen port 0 writes its address",
                file.display()
            )));
        }
        Found::Nothing | Found::Running(_) => {}
    }
    if config.mqtt.mode == MqttMode::Embedded
        && let Some(login) = LocalLogin::read(&state_dir)
    {
        login.use_for(&mut endpoint);
    }
    match CliClient::connect(endpoint, client_prefix, patience).await {
        Ok(client) => Ok(client),
        Err(ClientError::Unreachable { endpoint, detail }) => Err(Unreached::Absent(match found {
            Found::Running(runtime) => format!(
                "no daemon answers at {endpoint} ({detail}), the address pid {} wrote to {}",
                runtime.pid,
                file.display()
            ),
            _ => format!(
                "no daemon answers at {endpoint} ({detail}), and there is no {}",
                file.display()
            ),
        })),
        Err(refused @ ClientError::Refused { .. }) => {
            Err(Unreached::Failed(Failure::runtime(refused)))
        }
    }
}

async fn trigger(
    config: &Config,
    global: &Global,
    request: TriggerRequest,
    repeat: u64,
    rate: Option<f64>,
) -> Result<(), Failure> {
    let channel = request
        .channel
        .clone()
        .unwrap_or_else(|| config.default_channel());
    let topic = config.topic_root.topic(&channel, "command/trigger");
    let mut client = reach_daemon(config, global, "ongwatch-trigger", CLI_PATIENCE)
        .await
        .map_err(Unreached::into_failure)?;
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
            .map_err(Failure::runtime)?
            .map_err(|Rejected(reason)| {
                Failure::runtime(format!(
                    "the broker at {} refused the trigger on {topic} ({reason}); check [mqtt] command_clients",
                    client.endpoint()
                ))
            })?;
    }
    client.disconnect().await;
    Ok(())
}

async fn tail(
    config: &Config,
    global: &Global,
    filters: Vec<String>,
    json: bool,
    count: Option<u64>,
    wait: bool,
) -> Result<(), Failure> {
    let filters = if filters.is_empty() {
        vec![config.topic_root.filter_all()]
    } else {
        filters
    };
    for filter in &filters {
        validate_filter(filter).map_err(Failure::usage)?;
    }
    let stdout = std::io::stdout();
    let mut seen = 0u64;
    // Whether the current wait was announced: one line per outage, however long it lasts (a
    // lost connection announces the wait that follows it).
    let mut announced = false;
    let mut waits = wait;
    'connection: loop {
        // Zero patience: a lost connection is reported at once, and the next one is looked up
        // in runtime.json again (a restarted daemon may listen on another port).
        let mut client = loop {
            let reached = reach_daemon(config, global, "ongwatch-tail", Duration::ZERO).await;
            let unreached = match reached {
                Ok(mut client) => match client.subscribe(&filters).await {
                    Ok(()) => break client,
                    // Gone between the CONNACK and the SUBACK: as absent as never there.
                    Err(e) => Unreached::Absent(e.to_string()),
                },
                Err(unreached) => unreached,
            };
            let why = match unreached {
                Unreached::Absent(why) if waits => why,
                unreached => return Err(unreached.into_failure()),
            };
            if !announced {
                eprintln!("tail: waiting for the daemon: {why}; {START_THE_DAEMON}");
                announced = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(TAIL_RETRY) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        };
        eprintln!(
            "tail: subscribed to {} on {}",
            filters.join(" "),
            client.endpoint()
        );
        while count.is_none_or(|count| seen < count) {
            let publish = tokio::select! {
                publish = client.next_publish() => publish,
                _ = tokio::signal::ctrl_c() => break,
            };
            let publish = match publish {
                Ok(publish) => publish,
                Err(e) => {
                    let why = match e {
                        ClientError::Unreachable { detail, .. } => detail,
                        refused @ ClientError::Refused { .. } => refused.to_string(),
                    };
                    eprintln!(
                        "tail: the daemon at {} went away ({why}); waiting for it to come back",
                        client.endpoint()
                    );
                    announced = true;
                    waits = true;
                    continue 'connection;
                }
            };
            let topic = String::from_utf8_lossy(&publish.topic).into_owned();
            let event: serde_json::Value =
                serde_json::from_slice(&publish.payload).unwrap_or_else(|_| {
                    serde_json::Value::String(
                        String::from_utf8_lossy(&publish.payload).into_owned(),
                    )
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
        return Ok(());
    }
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

fn check(global: &Global) -> Result<(), Failure> {
    let config_path = default_file(global.config.clone(), "ongwatch.toml");
    let credentials_path = default_file(global.credentials.clone(), "credentials.toml");
    let mut problems = Vec::new();
    let config = match Config::load(config_path.as_deref()) {
        Ok(mut config) => {
            if let Some(environment) = &global.environment {
                config.environment = environment.clone();
            }
            Some(config)
        }
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
    let state_dir = state::resolve_state_dir(global.state_dir.as_deref());
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

struct ReplayOptions {
    speed: f64,
    as_live: bool,
    all_topics: bool,
}

/// Topic families `replay` leaves out unless `--all-topics`, and why.
fn left_out(family: &str) -> Option<&'static str> {
    match family {
        "command" => Some(
            "they would act again (trigger events, send chat, switch OBS scenes) as if asked now",
        ),
        "system" => Some("they describe the daemon that recorded the log, not the stream"),
        "bots" => Some("they describe the MQTT clients of the daemon that recorded the log"),
        _ => None,
    }
}

/// The family of a topic in replay's summary: its first level under the root (`support`,
/// `chat`, `system`, ...), with bot presence (`system/bots/...`) on its own, and `other` for
/// topics outside the configured root.
fn topic_family(root: &TopicRoot, topic: &str) -> String {
    match root.strip(topic) {
        Some((_, suffix)) if suffix.starts_with("system/bots/") => "bots".into(),
        Some((_, suffix)) => suffix.split('/').next().unwrap_or(suffix).to_owned(),
        None => "other".into(),
    }
}

/// What `replay` did with each line, per topic family.
#[derive(Default)]
struct ReplayTally {
    lines: u64,
    published: BTreeMap<String, u64>,
    left_out: BTreeMap<String, u64>,
    /// Acknowledged with an error reason (e.g. another client owns the topic), with the last one.
    refused: BTreeMap<String, (u64, String)>,
    unreadable: u64,
    first_unreadable: Option<usize>,
}

impl ReplayTally {
    /// The closing summary: a headline, then one line per family and outcome with the reason.
    fn summary(&self, file: &Path, as_live: bool) -> String {
        let published: u64 = self.published.values().sum();
        let how = if as_live {
            "as live (original ids and test flags)"
        } else {
            "as test events with new ids"
        };
        let mut rows: Vec<(&str, &str, u64, String)> = Vec::new();
        for (family, n) in &self.published {
            rows.push(("published", family, *n, String::new()));
        }
        for (family, n) in &self.left_out {
            let why = left_out(family).unwrap_or_default();
            rows.push((
                "skipped",
                family,
                *n,
                format!("{family} topics are not replayed: {why}; --all-topics includes them"),
            ));
        }
        for (family, (n, reason)) in &self.refused {
            rows.push((
                "refused",
                family,
                *n,
                format!("the broker refused them ({reason}): only their owner may publish there"),
            ));
        }
        if self.unreadable > 0 {
            let first = self
                .first_unreadable
                .map(|line| format!(" (first: line {line})"))
                .unwrap_or_default();
            rows.push((
                "skipped",
                "unreadable",
                self.unreadable,
                format!("not {{\"seq\",\"topic\",\"event\"}} lines{first}"),
            ));
        }
        let width = rows.iter().map(|row| row.1.len()).max().unwrap_or(0);
        let mut text = format!(
            "replay: {published} of {} lines published from {} {how}",
            self.lines,
            file.display()
        );
        for (outcome, family, n, why) in rows {
            let line = format!("\n  {outcome:<9}  {family:<width$}  {n:>6}  {why}");
            text.push_str(line.trim_end());
        }
        text
    }
}

async fn replay(
    config: &Config,
    global: &Global,
    file: &Path,
    options: ReplayOptions,
) -> Result<(), Failure> {
    let reader = std::fs::File::open(file)
        .map(std::io::BufReader::new)
        .map_err(|e| Failure::usage(format!("{}: cannot read it ({e})", file.display())))?;
    let mut client = reach_daemon(config, global, "ongwatch-replay", CLI_PATIENCE)
        .await
        .map_err(Unreached::into_failure)?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut previous: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut tally = ReplayTally::default();
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Failure::runtime(format!("{}: {e}", file.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        tally.lines += 1;
        let Some((topic, mut event)) = parse_log_line(&line) else {
            tally.unreadable += 1;
            tally.first_unreadable.get_or_insert(number + 1);
            continue;
        };
        let family = topic_family(&config.topic_root, &topic);
        if !options.all_topics && left_out(&family).is_some() {
            *tally.left_out.entry(family).or_default() += 1;
            continue;
        }
        if let Some(time) = event
            .get("time")
            .and_then(|t| t.as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
        {
            if let Some(previous) = previous
                && options.speed > 0.0
            {
                let gap = (time - previous)
                    .to_std()
                    .unwrap_or_default()
                    .min(Duration::from_secs(60));
                tokio::time::sleep(gap.div_f64(options.speed)).await;
            }
            previous = Some(time);
        }
        if !options.as_live
            && let Some(object) = event.as_object_mut()
        {
            object.insert("test".into(), serde_json::Value::Bool(true));
            if let Some(id) = object.get("id").and_then(|id| id.as_str()) {
                let id = format!("{id}#replay-{run}");
                object.insert("id".into(), serde_json::Value::String(id));
            }
        }
        let payload = serde_json::to_vec(&event).unwrap_or_default();
        match client
            .publish(&topic, Bytes::from(payload), false)
            .await
            .map_err(Failure::runtime)?
        {
            Ok(()) => *tally.published.entry(family).or_default() += 1,
            Err(Rejected(reason)) => {
                let refused = tally.refused.entry(family).or_default();
                refused.0 += 1;
                refused.1 = reason;
            }
        }
    }
    client.disconnect().await;
    println!("{}", tally.summary(file, options.as_live));
    Ok(())
}

fn parse_log_line(line: &str) -> Option<(String, serde_json::Value)> {
    let mut value: serde_json::Value = serde_json::from_str(line).ok()?;
    let topic = value.get("topic")?.as_str()?.to_owned();
    let event = value.get_mut("event")?.take();
    Some((topic, event))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every command and subcommand, with its path for the failure message.
    fn every_command(
        command: &clap::Command,
        path: String,
        out: &mut Vec<(String, clap::Command)>,
    ) {
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            every_command(sub, format!("{path} {}", sub.get_name()), out);
        }
        out.push((path, command.clone()));
    }

    #[test]
    fn every_option_has_help_and_every_command_ends_with_examples() {
        let mut cli = Cli::command();
        cli.build();
        let mut commands = Vec::new();
        every_command(&cli, "ongwatch".into(), &mut commands);
        assert!(commands.len() >= 10, "{}", commands.len());
        for (path, command) in &commands {
            let after = command
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            let examples: Vec<&str> = after
                .lines()
                .skip_while(|l| *l != "Examples:")
                .skip(1)
                .collect();
            assert!(
                (2..=3).contains(&examples.len())
                    && examples.iter().all(|l| l.starts_with("  ongwatch ")),
                "`{path} --help` does not end with two or three examples: {after:?}"
            );
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(
                    arg.get_help().is_some(),
                    "`{path}`: --{id} has no help text"
                );
            }
        }
    }

    #[test]
    fn global_options_are_accepted_by_every_command_before_and_after_its_name() {
        let global = [
            "--config",
            "c.toml",
            "--credentials",
            "k.toml",
            "--state-dir",
            "s",
            "--environment",
            "prod",
        ];
        for command in [
            vec!["run"],
            vec!["trigger", "cheer"],
            vec!["tail"],
            vec!["check"],
            vec!["schema"],
            vec!["auth", "twitch"],
            vec!["auth", "status"],
            vec!["replay", "f.jsonl"],
        ] {
            for before in [true, false] {
                let mut args = vec!["ongwatch"];
                if before {
                    args.extend(global);
                    args.extend(&command);
                } else {
                    args.extend(&command);
                    args.extend(global);
                }
                let cli = Cli::try_parse_from(&args)
                    .unwrap_or_else(|e| panic!("{args:?} is refused: {e}"));
                assert_eq!(cli.global.config, Some(PathBuf::from("c.toml")));
                assert_eq!(cli.global.credentials, Some(PathBuf::from("k.toml")));
                assert_eq!(cli.global.state_dir, Some(PathBuf::from("s")));
                assert_eq!(cli.global.environment.as_deref(), Some("prod"));
            }
        }
    }

    #[test]
    fn replay_summary_names_each_family_and_why_it_was_left_out() {
        let root = TopicRoot::new("stream").unwrap();
        assert_eq!(topic_family(&root, "stream/support/cheers"), "support");
        assert_eq!(topic_family(&root, "stream/system/bots/bpm"), "bots");
        assert_eq!(topic_family(&root, "stream/system/ongwatch"), "system");
        assert_eq!(topic_family(&root, "elsewhere/x"), "other");
        let mut tally = ReplayTally {
            lines: 5,
            unreadable: 1,
            first_unreadable: Some(2),
            ..ReplayTally::default()
        };
        tally.published.insert("support".into(), 2);
        tally.left_out.insert("command".into(), 1);
        tally
            .refused
            .insert("synthetic".into(), (1, "NotAuthorized".into()));
        let summary = tally.summary(Path::new("rec.jsonl"), false);
        let lines: Vec<&str> = summary.lines().collect();
        assert_eq!(
            lines[0],
            "replay: 2 of 5 lines published from rec.jsonl as test events with new ids"
        );
        assert!(lines[1].contains("published") && lines[1].contains("support"));
        assert!(
            lines[2].contains("skipped") && lines[2].contains("command topics are not replayed")
        );
        assert!(lines[2].ends_with("--all-topics includes them"));
        assert!(lines[3].contains("refused") && lines[3].contains("NotAuthorized"));
        assert!(lines[4].contains("unreadable") && lines[4].contains("line 2"));
    }
}
