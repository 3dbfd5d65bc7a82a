//! The `ongwatch` command line (CONTRACT §1). Exit codes: 0 ok, 2 bad usage or config,
//! 1 runtime failure; errors are one line naming what is wrong and how to fix it.
//!
//! This file parses the command line and dispatches; each command that does more than call
//! one function lives in its own file.

mod check;
mod reach;
mod replay;
mod tail;
mod trigger;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::credentials::Credentials;
use crate::daemon;
use crate::event::schema;
use crate::section::Problems;
use crate::sources::trigger::TriggerRequest;
use crate::sources::twitch::auth as twitch_auth;
use crate::state;
use replay::ReplayOptions;

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
        /// cheer, tip, sub, resub, gift, follow, raid, redemption, chat, online, offline, hypetrain, poll, prediction, goal, charity_campaign, sub_end, vip, unvip, mod, unmod, warn, unban_request
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
            let mqtt_access = config.access(&credentials)?;
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
            trigger::trigger(&config, &global, request, repeat, rate).await
        }
        Command::Tail {
            filters,
            json,
            count,
            wait,
        } => {
            let config = load_config(&global)?;
            tail::tail(&config, &global, filters, json, count, wait).await
        }
        Command::Check => check::check(&global),
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
            Ok(
                twitch_auth::login_command(config.twitch_env(), &credentials, &state_dir, account)
                    .await?,
            )
        }
        Command::Auth {
            command: AuthCommand::Status,
        } => {
            let (config, credentials, state_dir) = auth_setup(&global)?;
            print!(
                "{}",
                twitch_auth::status_command(config.twitch_env(), &credentials, &state_dir)?
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
            replay::replay(&config, &global, &file, options).await
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
}
