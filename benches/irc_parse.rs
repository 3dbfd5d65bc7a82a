//! Twitch IRC parsing throughput: ongwatch's parser against `tmi` and `twitch-irc`, on the same
//! lines in the same run. One iteration parses a whole corpus; divan reports lines/s.
//!
//! Corpora: `vectors` = the valid lines of tests/data/irc/twitch-irc-rs.jsonl (63 lines, every
//! line kind); `synthetic_100k` = those lines cycled to 100,000, each copy with its own message
//! id, so nothing the CPU caches about one line carries over to the next copy.
//!
//! Levels: `parse` = the generic IRC split only; `typed` = split + the Twitch meaning of the
//! line (each crate's typed message); `normalize` (ongwatch only) = split + typed + contract
//! events. Run: `cargo bench --bench irc_parse`; results in docs/perf/irc.md.

use std::sync::LazyLock;

use divan::Bencher;
use divan::counter::ItemsCount;
use ongwatch::sources::twitch::irc::{IrcMessage, TwitchMessage, normalize_line};

fn main() {
    divan::main();
}

const CORPORA: [&str; 2] = ["vectors", "synthetic_100k"];

static VECTORS: LazyLock<Vec<String>> = LazyLock::new(|| {
    include_str!("../tests/data/irc/twitch-irc-rs.jsonl")
        .lines()
        .filter_map(|record| {
            let record: serde_json::Value = serde_json::from_str(record).ok()?;
            if record["invalid_line"].as_bool()? {
                return None;
            }
            Some(record["raw"].as_str()?.to_owned())
        })
        .collect()
});

static SYNTHETIC: LazyLock<Vec<String>> = LazyLock::new(|| {
    VECTORS
        .iter()
        .cycle()
        .take(100_000)
        .enumerate()
        .map(|(n, line)| line.replacen(";id=", &format!(";id={n:08x}-"), 1))
        .collect()
});

fn corpus(name: &str) -> &'static [String] {
    match name {
        "vectors" => &VECTORS,
        _ => &SYNTHETIC,
    }
}

fn run<T>(bencher: Bencher, name: &str, f: impl Fn(&'static str) -> T + Sync) {
    let lines = corpus(name);
    bencher.counter(ItemsCount::new(lines.len())).bench(|| {
        for line in lines {
            divan::black_box(f(divan::black_box(line.as_str())));
        }
    });
}

mod ongwatch_irc {
    use super::*;

    #[divan::bench(args = CORPORA, max_time = 3)]
    fn parse(bencher: Bencher, name: &str) {
        run(bencher, name, |line| IrcMessage::parse(line).is_ok());
    }

    /// Split plus walking every tag, unescaped: the same work tmi and twitch-irc do eagerly.
    #[divan::bench(args = CORPORA, max_time = 3)]
    fn parse_all_tags(bencher: Bencher, name: &str) {
        run(bencher, name, |line| {
            IrcMessage::parse(line).map(|msg| {
                msg.tags()
                    .iter()
                    .map(|(k, v)| k.len() + v.unescape().len())
                    .sum::<usize>()
            })
        });
    }

    #[divan::bench(args = CORPORA, max_time = 3)]
    fn typed(bencher: Bencher, name: &str) {
        run(bencher, name, TwitchMessage::parse);
    }

    #[divan::bench(args = CORPORA, max_time = 3)]
    fn normalize(bencher: Bencher, name: &str) {
        run(bencher, name, |line| normalize_line(line, false));
    }
}

mod tmi {
    use super::*;

    #[divan::bench(args = CORPORA, max_time = 3)]
    fn parse(bencher: Bencher, name: &str) {
        run(bencher, name, ::tmi::IrcMessageRef::parse);
    }

    #[divan::bench(args = CORPORA, max_time = 3)]
    fn typed(bencher: Bencher, name: &str) {
        run(bencher, name, |line| {
            ::tmi::IrcMessageRef::parse(line).map(::tmi::IrcMessageRef::as_typed)
        });
    }
}

mod twitch_irc {
    use super::*;
    use ::twitch_irc::message::{IRCMessage, ServerMessage};

    #[divan::bench(args = CORPORA, max_time = 3)]
    fn parse(bencher: Bencher, name: &str) {
        run(bencher, name, IRCMessage::parse);
    }

    #[divan::bench(args = CORPORA, max_time = 3)]
    fn typed(bencher: Bencher, name: &str) {
        run(bencher, name, |line| {
            IRCMessage::parse(line).map(ServerMessage::try_from)
        });
    }
}
