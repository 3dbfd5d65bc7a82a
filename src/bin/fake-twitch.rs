//! `fake-twitch`: the in-repo fake Twitch as a program, to try ongwatch without an account.
//!
//! It prints the `[twitch]` config that points ongwatch at it, then reads commands from
//! stdin (one per line, `help` lists them) to send notifications, reconnects, revocations
//! and close codes, as the integration tests do through the same control handle.

use std::io::Write;
use std::net::SocketAddr;

use clap::Parser;
use ongwatch::sources::twitch::fake::{FakeTwitch, Mode};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

#[derive(Parser)]
#[command(
    name = "fake-twitch",
    about = "A fake Twitch (OAuth, Helix EventSub, EventSub WebSocket) on loopback."
)]
struct Args {
    /// Address to listen on; port 0 picks a free one. 127.0.0.1:8080 is where the Twitch
    /// CLI's mock server (and `environment = "localdev"`) expects it.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Behave like the Twitch CLI's mock EventSub server: any token, no login.
    #[arg(long)]
    cli_mock: bool,
    /// keepalive_timeout_seconds of the welcome messages.
    #[arg(long, default_value_t = 10)]
    keepalive: u64,
    /// Approve every device-code login at once as LOGIN:USER_ID.
    #[arg(long, value_name = "LOGIN:USER_ID")]
    auto_approve: Option<String>,
}

const HELP: &str = "commands:
  follow [LOGIN]              channel.follow notification from LOGIN
  notify TYPE JSON            a notification of TYPE with the event JSON
  reconnect                   session_reconnect to every session
  close CODE                  close every session with CODE (4000-4007)
  silence                     stop keepalives
  ping                        WebSocket ping
  revoke TYPE STATUS          revoke TYPE, e.g. revoke channel.cheer authorization_revoked
  approve CODE LOGIN USER_ID  approve a device login
  fail STATUS [N]             answer the next N subscription requests with STATUS
  live LOGIN [TITLE]          Get Streams lists LOGIN as live (a new stream each time)
  viewers LOGIN N             set the viewer count of LOGIN's stream
  offline LOGIN               Get Streams no longer lists LOGIN
  subs | stats | help | quit";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mode = if args.cli_mock {
        Mode::CliMock
    } else {
        Mode::Twitch
    };
    let fake = FakeTwitch::start_on(mode, args.listen).await?;
    fake.set_keepalive_seconds(args.keepalive);
    println!("fake Twitch on {}; put this in ongwatch.toml:", fake.addr());
    println!("[twitch]");
    println!("auth_url = \"{}\"", fake.auth_url());
    println!("api_url = \"{}\"", fake.api_url());
    println!("eventsub_url = \"{}\"", fake.eventsub_url());
    println!("{HELP}");
    let auto = args
        .auto_approve
        .as_deref()
        .and_then(|a| a.split_once(':'))
        .map(|(login, id)| (login.to_owned(), id.to_owned()));
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut approve_tick = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        let line = tokio::select! {
            line = lines.next_line() => match line? {
                Some(line) => line,
                None => return Ok(()),
            },
            _ = approve_tick.tick(), if auto.is_some() => {
                if let Some((login, id)) = &auto {
                    for code in fake.pending_user_codes() {
                        fake.approve_device(&code, login, id);
                        println!("approved {code} as {login}");
                    }
                }
                continue;
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            [] => continue,
            ["follow", rest @ ..] => {
                let login = rest.first().copied().unwrap_or("viewer");
                let event = json!({
                    "user_id": "1001", "user_login": login, "user_name": login,
                    "broadcaster_user_id": "0", "broadcaster_user_login": "streamer",
                    "broadcaster_user_name": "streamer",
                    "followed_at": ongwatch::event::format_time(&ongwatch::event::now()),
                });
                sent(fake.notify("channel.follow", event))
            }
            ["notify", kind, ..] => {
                let text = line.splitn(3, ' ').nth(2).unwrap_or("{}");
                match serde_json::from_str(text) {
                    Ok(event) => sent(fake.notify(kind, event)),
                    Err(e) => format!("not JSON: {e}"),
                }
            }
            ["reconnect"] => format!("sent to {} sessions", fake.session_reconnect()),
            ["close", code] => match code.parse() {
                Ok(code) => format!("closed {} sessions", fake.close_sessions(code)),
                Err(_) => "close CODE".into(),
            },
            ["silence"] => format!("{} sessions silent", fake.silence()),
            ["ping"] => format!("pinged {} sessions", fake.ping()),
            ["revoke", kind, status] => format!("revoked {}", fake.revoke(kind, status)),
            ["approve", code, login, id] => format!("{}", fake.approve_device(code, login, id)),
            ["fail", status, rest @ ..] => match status.parse() {
                Ok(status) => {
                    let count = rest.first().and_then(|n| n.parse().ok()).unwrap_or(1);
                    fake.answer_next_subscriptions(status, count);
                    format!("the next {count} subscription requests get {status}")
                }
                Err(_) => "fail STATUS [N]".into(),
            },
            ["live", login, ..] => {
                let title = line.splitn(3, ' ').nth(2).unwrap_or("Live from the fake");
                format!(
                    "{login} live since {}",
                    fake.go_live(login, title, "Just Chatting", 1)
                )
            }
            ["viewers", login, count] => match count.parse() {
                Ok(count) => {
                    fake.set_viewers(login, count);
                    format!("{login}: {count} viewers")
                }
                Err(_) => "viewers LOGIN N".into(),
            },
            ["offline", login] => {
                fake.go_offline(login);
                format!("{login} offline")
            }
            ["subs"] => fake
                .subscriptions()
                .iter()
                .map(|s| format!("{} v{} {} {}", s.kind, s.version, s.status, s.session_id))
                .collect::<Vec<_>>()
                .join("\n"),
            ["stats"] => format!("{:?}", fake.stats()),
            ["quit"] => return Ok(()),
            _ => HELP.to_owned(),
        };
        println!("{answer}");
        let _ = std::io::stdout().flush();
    }
}

fn sent(message_id: Option<String>) -> String {
    match message_id {
        Some(id) => format!("sent {id}"),
        None => "nobody is subscribed to that type".into(),
    }
}
