//! `[[rules]]`: declarative reactions to bus messages, without writing a bot.
//!
//! ```toml
//! [[rules]]
//! when = "stream/synthetic/hype"           # MQTT filter
//! if = "level > 3"                         # CEL expression over the payload's fields
//! publish = { topic = "house/lights/light1/state", payload = "ON" }
//! else = { topic = "house/lights/light1/state", payload = "OFF" }
//! cooldown = 10                            # seconds between two publications of this rule
//! ```
//!
//! Conditions are CEL (the Common Expression Language, crate `cel`): no I/O, no loops beyond
//! the size of the payload's own lists, so a rule can neither reach outside the daemon nor hang
//! it. With `if`, a rule fires on transitions of the condition (`on = "change"`, the default):
//! `publish` when it becomes true, `else` when it becomes false, and the first message decides
//! from nothing, so a light is put in the right state at start. `on = "every"` fires for every
//! matching message instead; a rule without `if` always does. A transition during the cooldown
//! is not lost: it is published when the cooldown ends if the state still differs from the
//! last one published.
//!
//! Payloads and topics are templates over the payload's fields: `"{user} cheered {amount}"`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use tokio::time::{Duration, Instant};

use crate::event::{filter_matches, validate_filter, validate_topic};
use crate::hub::{BoundedQueue, Delivery, Message, Origin, Publisher};
use crate::template::{self, Template};

/// When a rule with a condition fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fire {
    /// When the condition changes (and on the first message).
    Change,
    /// On every matching message.
    Every,
}

/// One `[[rules]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    name: Option<String>,
    when: String,
    #[serde(rename = "if")]
    condition: Option<String>,
    publish: Option<ActionToml>,
    #[serde(rename = "else")]
    otherwise: Option<ActionToml>,
    #[serde(default)]
    cooldown: f64,
    on: Option<Fire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionToml {
    topic: String,
    payload: toml::Value,
    #[serde(default)]
    retain: bool,
}

/// A checked rule, ready to run.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `name`, or `rules[N]` counted from 1 in file order; for log lines.
    pub name: String,
    /// The MQTT filter of the messages it reacts to.
    pub when: String,
    condition: Option<Condition>,
    publish: Option<Action>,
    otherwise: Option<Action>,
    cooldown: Duration,
    fire: Fire,
}

#[derive(Clone)]
struct Condition {
    source: String,
    program: Arc<cel::Program>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

#[derive(Debug, Clone)]
struct Action {
    topic: String,
    /// Text is a template; a TOML table, array, number or bool becomes JSON whose strings are
    /// templates.
    payload: Value,
    retain: bool,
}

/// Reads `[[rules]]`; problems come back as (key, message) with keys like `rules[2].if`.
pub fn parse(value: Option<&toml::Value>) -> (Vec<Rule>, Vec<(String, String)>) {
    let mut rules = Vec::new();
    let mut problems = Vec::new();
    let Some(value) = value else {
        return (rules, problems);
    };
    let Some(tables) = value.as_array() else {
        problems.push((
            "rules".into(),
            "must be a list of [[rules]] tables (two brackets)".into(),
        ));
        return (rules, problems);
    };
    for (index, table) in tables.iter().enumerate() {
        let key = format!("rules[{}]", index + 1);
        let raw: RuleToml = match table.clone().try_into() {
            Ok(raw) => raw,
            Err(e) => {
                let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
                let field = message
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split('`').next());
                let key = match field {
                    Some(field) => format!("{key}.{field}"),
                    None => key,
                };
                problems.push((key, message));
                continue;
            }
        };
        match check(raw, &key) {
            Ok(rule) => rules.push(rule),
            Err(found) => problems.extend(found),
        }
    }
    (rules, problems)
}

/// The CEL parser and evaluator recurse once per nesting level and overflow the stack early
/// (60 parentheses on an 8 MiB main thread, 12 on a 2 MiB tokio worker in a debug build): a
/// config file could abort the daemon. Conditions past these bounds are refused instead.
const MAX_CONDITION_DEPTH: usize = 8;
const MAX_CONDITION_LEN: usize = 256;

/// Bracket depth outside string literals; every `?` counts as a level that never closes, an
/// upper bound for chained conditionals.
fn nesting_depth(source: &str) -> usize {
    let (mut depth, mut max, mut quote, mut escaped) = (0usize, 0usize, None, false);
    for c in source.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' | '[' | '{' | '?' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn check(raw: RuleToml, key: &str) -> Result<Rule, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let mut problem =
        |field: &str, message: String| problems.push((format!("{key}.{field}"), message));
    if validate_filter(&raw.when).is_err() {
        problem(
            "when",
            format!(
                "{:?} is not an MQTT filter; e.g. \"stream/synthetic/hype\" or \"stream/support/#\"",
                raw.when
            ),
        );
    }
    let condition = raw.condition.as_ref().and_then(|source| {
        if source.len() > MAX_CONDITION_LEN || nesting_depth(source) > MAX_CONDITION_DEPTH {
            problem(
                "if",
                format!(
                    "is longer than {MAX_CONDITION_LEN} characters or nested deeper than {MAX_CONDITION_DEPTH} levels; split it into simpler rules"
                ),
            );
            return None;
        }
        match cel::Program::compile(source) {
            Ok(program) => Some(Condition {
                source: source.clone(),
                program: Arc::new(program),
            }),
            Err(errors) => {
                let detail = errors
                    .errors
                    .iter()
                    .map(|e| format!("at column {}: {}", e.pos.1, e.msg))
                    .collect::<Vec<_>>()
                    .join("; ");
                problem(
                    "if",
                    format!(
                        "{source:?} is not a valid expression ({detail}); e.g. \"level > 3\" or \"amount >= 1000 && currency == 'bits'\""
                    ),
                );
                None
            }
        }
    });
    if raw.publish.is_none() && raw.otherwise.is_none() {
        problem(
            "publish",
            "is missing; a rule needs publish = { topic = \"...\", payload = \"...\" } (or else = ...)"
                .into(),
        );
    }
    if raw.otherwise.is_some() && raw.condition.is_none() {
        problem("else", "needs an `if` to know when it applies".into());
    }
    if !(raw.cooldown.is_finite() && (0.0..=86_400.0).contains(&raw.cooldown)) {
        problem(
            "cooldown",
            format!("{} must be seconds from 0 to 86400", raw.cooldown),
        );
    }
    if raw.on == Some(Fire::Change) && raw.condition.is_none() {
        problem(
            "on",
            "\"change\" needs an `if` whose changes it follows".into(),
        );
    }
    let mut action = |field: &str, raw_action: Option<ActionToml>| {
        let raw_action = raw_action?;
        let topic_problem = match template_check(&raw_action.topic) {
            Err(e) => Some(e),
            Ok(()) => {
                let sample = render(&raw_action.topic, "", &Value::Null, true);
                validate_topic(&sample).err().map(|e| e.to_string())
            }
        };
        if let Some(why) = topic_problem {
            problem(
                &format!("{field}.topic"),
                format!(
                    "{:?}: {why}; e.g. \"house/lights/light1/state\"",
                    raw_action.topic
                ),
            );
        } else if !raw_action.topic.contains('{') && filter_matches(&raw.when, &raw_action.topic) {
            problem(
                &format!("{field}.topic"),
                format!(
                    "{:?} matches the rule's own `when` {:?}, so the rule would react to itself; publish elsewhere",
                    raw_action.topic, raw.when
                ),
            );
        }
        let payload = match serde_json::to_value(&raw_action.payload) {
            Ok(payload) => payload,
            Err(e) => {
                problem(&format!("{field}.payload"), format!("cannot be JSON: {e}"));
                Value::Null
            }
        };
        for text in strings_of(&payload) {
            if let Err(why) = template_check(text) {
                problem(&format!("{field}.payload"), format!("{text:?}: {why}"));
            }
        }
        Some(Action {
            topic: raw_action.topic,
            payload,
            retain: raw_action.retain,
        })
    };
    let publish = action("publish", raw.publish);
    let otherwise = action("else", raw.otherwise);
    if !problems.is_empty() {
        return Err(problems);
    }
    let fire = match (&condition, raw.on) {
        (None, _) => Fire::Every,
        (Some(_), on) => on.unwrap_or(Fire::Change),
    };
    Ok(Rule {
        name: raw.name.unwrap_or_else(|| key.to_owned()),
        when: raw.when,
        condition,
        publish,
        otherwise,
        cooldown: Duration::from_secs_f64(raw.cooldown),
        fire,
    })
}

fn strings_of(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s],
        Value::Array(items) => items.iter().flat_map(strings_of).collect(),
        Value::Object(map) => map.values().flat_map(strings_of).collect(),
        _ => Vec::new(),
    }
}

/// A template over the payload's fields ([`crate::template`]'s syntax): `{field.path}`.
fn parse_template(template: &str) -> Result<Template<String>, template::Error> {
    Template::parse(template, |name| {
        let valid = !name.is_empty()
            && name.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            });
        if valid {
            Ok(name.to_owned())
        } else {
            Err(format!(
                "{{{name}}} is not a field name; use e.g. {{user}}, {{amount}} or {{event.user}}"
            ))
        }
    })
}

fn template_check(template: &str) -> Result<(), String> {
    parse_template(template)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Fills `{field}` from the payload (`{topic}` is the message's topic, `{value}` a payload that
/// is not an object, `{event}` the whole payload). Missing fields render empty. In a topic,
/// values cannot add levels or wildcards.
fn render(template: &str, topic: &str, payload: &Value, in_topic: bool) -> String {
    let Ok(parsed) = parse_template(template) else {
        return template.to_owned();
    };
    parsed.render(|name, out| {
        let text = field_text(name, topic, payload);
        if in_topic {
            out.extend(text.chars().map(|c| match c {
                '/' | '+' | '#' | '\0' => '_',
                c => c,
            }));
        } else {
            out.push_str(&text);
        }
    })
}

fn field_text(name: &str, topic: &str, payload: &Value) -> String {
    let found = match name {
        "topic" => return topic.to_owned(),
        "event" => Some(payload),
        "value" if !payload.is_object() => Some(payload),
        path => {
            let mut path = path.split('.');
            let first = path.next().unwrap_or_default();
            let start = if first == "event" {
                Some(payload)
            } else {
                payload.get(first)
            };
            path.try_fold(start, |value, part| Some(value?.get(part)))
                .flatten()
        }
    };
    match found {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn render_payload(payload: &Value, topic: &str, fields: &Value) -> Value {
    match payload {
        Value::String(template) => Value::String(render(template, topic, fields, false)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render_payload(item, topic, fields))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render_payload(v, topic, fields)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        // Integers as CEL `int` where they fit, so `level == 4` compares like with like.
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => cel::Value::from(
            map.iter()
                .map(|(k, v)| (k.clone(), to_cel(v)))
                .collect::<HashMap<String, cel::Value>>(),
        ),
    }
}

/// Per rule and topic: where the condition stands and what was last published.
#[derive(Debug, Default)]
struct Track {
    condition: Option<bool>,
    fired: Option<bool>,
    fired_at: Option<Instant>,
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    branch: bool,
    due: Instant,
    payload: Value,
}

/// The rules with their state; pure, driven by the caller's clock.
pub struct Engine {
    rules: Vec<Rule>,
    env: Arc<cel::Env>,
    tracks: HashMap<(usize, String), Track>,
    /// The last evaluation error per rule, so a broken condition is logged once, not per message.
    errors: HashMap<usize, String>,
}

impl Engine {
    pub fn new(rules: Vec<Rule>) -> Self {
        Self {
            rules,
            env: Arc::new(cel::Env::stdlib()),
            tracks: HashMap::new(),
            errors: HashMap::new(),
        }
    }

    fn evaluate(
        &self,
        condition: &Condition,
        topic: &str,
        payload: &Value,
    ) -> Result<bool, String> {
        let mut context = cel::Context::with_env(self.env.clone());
        match payload {
            Value::Object(map) => {
                for (name, value) in map {
                    context.add_variable_from_value(name.as_str(), to_cel(value));
                }
            }
            other => context.add_variable_from_value("value", to_cel(other)),
        }
        context.add_variable_from_value("event", to_cel(payload));
        context.add_variable_from_value("topic", topic);
        match condition.program.execute(&context) {
            Ok(cel::Value::Bool(result)) => Ok(result),
            Ok(other) => Err(format!("gives {other:?} instead of true or false")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Reacts to one bus message; returns what to publish.
    pub fn on_message(&mut self, topic: &str, payload: &[u8], now: Instant) -> Vec<Message> {
        let mut out = Vec::new();
        let mut parsed: Option<Value> = None;
        for index in 0..self.rules.len() {
            if !filter_matches(&self.rules[index].when, topic) {
                continue;
            }
            let payload = parsed
                .get_or_insert_with(|| serde_json::from_slice(payload).unwrap_or(Value::Null))
                .clone();
            let branch = match &self.rules[index].condition {
                None => true,
                Some(condition) => match self.evaluate(condition, topic, &payload) {
                    Ok(result) => {
                        self.errors.remove(&index);
                        result
                    }
                    Err(e) => {
                        if self.errors.get(&index) != Some(&e) {
                            tracing::warn!(rule = %self.rules[index].name, %topic, condition = %condition.source, error = %e, "rule condition failed; the message is ignored by this rule");
                            self.errors.insert(index, e);
                        }
                        continue;
                    }
                },
            };
            let rule = &self.rules[index];
            let track = self.tracks.entry((index, topic.to_owned())).or_default();
            let cooling = track
                .fired_at
                .map(|at| at + rule.cooldown)
                .filter(|until| *until > now);
            match rule.fire {
                Fire::Every => {
                    if cooling.is_none() {
                        out.extend(fire(rule, track, branch, topic, &payload, now));
                    }
                }
                Fire::Change => {
                    if track.condition == Some(branch) {
                        if let Some(pending) = &mut track.pending {
                            pending.payload = payload;
                        }
                        continue;
                    }
                    track.condition = Some(branch);
                    match cooling {
                        Some(due) => {
                            track.pending = Some(Pending {
                                branch,
                                due,
                                payload,
                            })
                        }
                        None => {
                            track.pending = None;
                            out.extend(fire(rule, track, branch, topic, &payload, now));
                        }
                    }
                }
            }
        }
        out
    }

    /// Publishes transitions held back by a cooldown that has ended by `now`.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Message> {
        let mut out = Vec::new();
        for ((index, topic), track) in &mut self.tracks {
            let Some(pending) = track.pending.take_if(|p| p.due <= now) else {
                continue;
            };
            if track.fired != Some(pending.branch) {
                let rule = &self.rules[*index];
                out.extend(fire(
                    rule,
                    track,
                    pending.branch,
                    topic,
                    &pending.payload,
                    now,
                ));
            }
        }
        out
    }

    /// When the next held-back transition is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.tracks
            .values()
            .filter_map(|track| track.pending.as_ref().map(|p| p.due))
            .min()
    }
}

fn fire(
    rule: &Rule,
    track: &mut Track,
    branch: bool,
    topic: &str,
    payload: &Value,
    now: Instant,
) -> Option<Message> {
    let action = if branch {
        rule.publish.as_ref()
    } else {
        rule.otherwise.as_ref()
    }?;
    track.fired = Some(branch);
    track.fired_at = Some(now);
    let target = render(&action.topic, topic, payload, true);
    let body = match render_payload(&action.payload, topic, payload) {
        // Text that is JSON goes out as that JSON; other text as a JSON string (the bus form).
        Value::String(text) => text.into_bytes(),
        other => serde_json::to_vec(&other).unwrap_or_default(),
    };
    tracing::debug!(rule = %rule.name, %target, "rule fired");
    let mut message = Message::from_bytes(target, &body, action.retain, Origin::Daemon);
    // A payload that quotes an event's id must not be dropped as that event's duplicate.
    message.id = None;
    Some(message)
}

/// Runs the rules until the hub closes `queue`.
pub async fn run(queue: Arc<BoundedQueue<Delivery>>, publisher: Publisher, rules: Vec<Rule>) {
    let mut engine = Engine::new(rules);
    loop {
        let due = engine.next_due();
        let messages = tokio::select! {
            record = queue.pop() => {
                let Some(record) = record else { return };
                queue.mark_delivered(1);
                engine.on_message(&record.message.topic, &record.message.payload, Instant::now())
            }
            _ = super::hype::sleep_until(due) => engine.on_timer(Instant::now()),
        };
        for message in messages {
            if publisher.message(message).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Result<Vec<Rule>, Vec<(String, String)>> {
        let table: toml::Table = toml::from_str(text).unwrap();
        let (rules, problems) = parse(table.get("rules"));
        if problems.is_empty() {
            Ok(rules)
        } else {
            Err(problems)
        }
    }

    const LIGHT: &str = r#"
[[rules]]
when = "stream/synthetic/hype"
if = "level > 3"
publish = { topic = "house/lights/light1/state", payload = "ON" }
else = { topic = "house/lights/light1/state", payload = "OFF" }
"#;

    fn texts(messages: &[Message]) -> Vec<String> {
        messages
            .iter()
            .map(|m| format!("{} {}", m.topic, String::from_utf8_lossy(&m.payload)))
            .collect()
    }

    #[test]
    fn the_light_follows_transitions_only() {
        let mut engine = Engine::new(rules(LIGHT).unwrap());
        let now = Instant::now();
        let mut hype = |level: u32| {
            let payload = format!(r#"{{"level": {level}, "score": 1.5}}"#);
            texts(&engine.on_message("stream/synthetic/hype", payload.as_bytes(), now))
        };
        assert_eq!(hype(0), [r#"house/lights/light1/state "OFF""#]);
        assert!(hype(3).is_empty());
        assert_eq!(hype(4), [r#"house/lights/light1/state "ON""#]);
        assert!(hype(5).is_empty());
        assert!(hype(4).is_empty());
        assert_eq!(hype(2), [r#"house/lights/light1/state "OFF""#]);
        assert!(
            engine
                .on_message("stream/support/cheers", b"{}", now)
                .is_empty()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_transition_within_the_cooldown_is_published_when_it_ends() {
        let text = format!("{LIGHT}cooldown = 10\n");
        let mut engine = Engine::new(rules(&text).unwrap());
        let start = Instant::now();
        let hype = |level: u32| format!(r#"{{"level": {level}}}"#).into_bytes();
        let topic = "stream/synthetic/hype";
        assert_eq!(engine.on_message(topic, &hype(5), start).len(), 1);
        assert!(
            engine
                .on_message(topic, &hype(1), start + Duration::from_secs(2))
                .is_empty()
        );
        assert_eq!(engine.next_due(), Some(start + Duration::from_secs(10)));
        let late = texts(&engine.on_timer(start + Duration::from_secs(10)));
        assert_eq!(late, [r#"house/lights/light1/state "OFF""#]);
        // Back and forth within a cooldown ends where it started: nothing to publish.
        let t = start + Duration::from_secs(12);
        assert!(engine.on_message(topic, &hype(5), t).is_empty());
        assert!(engine.on_message(topic, &hype(1), t).is_empty());
        assert!(engine.on_timer(start + Duration::from_secs(20)).is_empty());
        assert_eq!(engine.next_due(), None);
    }

    #[test]
    fn templates_fill_fields_and_json_payloads_stay_json() {
        let text = r#"
[[rules]]
when = "stream/support/cheers"
if = "amount >= 100 && user != 'nobody'"
on = "every"
publish = { topic = "alerts/{channel}/cheer", payload = "{display_name} cheered {amount} {{bits}}" }

[[rules]]
when = "stream/support/cheers"
publish = { topic = "alerts/json", payload = { text = "{user}", nested = ["{amount}", 1] } }
"#;
        let mut engine = Engine::new(rules(text).unwrap());
        let cheer = br#"{"type":"cheer","channel":"a/b","user":"alinsa_vix","display_name":"Alinsa","amount":2490,"id":"twitch:1"}"#;
        let out = engine.on_message("stream/support/cheers", cheer, Instant::now());
        assert_eq!(
            texts(&out),
            [
                r#"alerts/a_b/cheer "Alinsa cheered 2490 {bits}""#,
                r#"alerts/json {"nested":["2490",1],"text":"alinsa_vix"}"#,
            ]
        );
        assert!(
            out.iter()
                .all(|m| m.id.is_none() && m.origin == Origin::Daemon)
        );
        let small = br#"{"user":"x","amount":5}"#;
        assert_eq!(
            engine
                .on_message("stream/support/cheers", small, Instant::now())
                .len(),
            1
        );
    }

    #[test]
    fn a_condition_that_cannot_be_evaluated_is_skipped() {
        let text = r#"
[[rules]]
when = "stream/#"
if = "amount > 1"
on = "every"
publish = { topic = "x/y", payload = "1" }
"#;
        let mut engine = Engine::new(rules(text).unwrap());
        assert!(
            engine
                .on_message(
                    "stream/community/follows",
                    br#"{"user":"a"}"#,
                    Instant::now()
                )
                .is_empty()
        );
        assert!(
            engine
                .on_message("stream/x", b"\"text\"", Instant::now())
                .is_empty()
        );
    }

    fn rule_with_condition(condition: &str) -> String {
        format!(
            "[[rules]]\nwhen = \"a/b\"\nif = \"{condition}\"\npublish = {{ topic = \"x/y\", payload = \"ON\" }}\n"
        )
    }

    #[test]
    fn deeply_nested_conditions_are_refused_not_a_stack_overflow() {
        for deep in [
            format!("{}1{}", "(".repeat(3000), ")".repeat(3000)),
            format!("{}{}", "[".repeat(60), "]".repeat(60)),
            "1+".repeat(20_000) + "1",
            "true?1:".repeat(100) + "1",
        ] {
            let problems = rules(&rule_with_condition(&deep)).unwrap_err();
            assert_eq!(problems[0].0, "rules[1].if");
        }
        assert_eq!(nesting_depth("message == '((((' && (a > 1)"), 1);
    }

    /// Tokio's worker threads have 2 MiB stacks; rules are checked and run there.
    fn compile_and_run_on_a_worker_stack(condition: String) {
        let text = rule_with_condition(&condition);
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let mut engine = Engine::new(rules(&text).unwrap());
                engine.on_message("a/b", br#"{"level": 5}"#, Instant::now());
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn the_deepest_accepted_condition_runs_on_a_worker_stack() {
        compile_and_run_on_a_worker_stack(format!(
            "{}level{} > 3",
            "(".repeat(MAX_CONDITION_DEPTH),
            ")".repeat(MAX_CONDITION_DEPTH)
        ));
    }

    #[test]
    fn the_longest_accepted_condition_runs_on_a_worker_stack() {
        compile_and_run_on_a_worker_stack("level + ".repeat(MAX_CONDITION_LEN / 8 - 1) + "1 > 3");
    }

    #[test]
    fn bad_rules_are_named_by_index_and_key() {
        let text = r#"
[[rules]]
when = "stream/synthetic/hype"
if = "level > "
publish = { topic = "house/light", payload = "ON" }

[[rules]]
when = "stream/#/x"
publish = { topic = "house/+", payload = "{unclosed" }
cooldown = -1

[[rules]]
when = "house/#"
publish = { topic = "house/light", payload = "ON" }

[[rules]]
when = "a"
colour = "red"
"#;
        let problems = rules(text).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "rules[1].if",
                "rules[2].when",
                "rules[2].cooldown",
                "rules[2].publish.topic",
                "rules[2].publish.payload",
                "rules[3].publish.topic",
                "rules[4].colour",
            ],
            "{problems:?}"
        );
        assert!(problems[0].1.contains("column"), "{}", problems[0].1);
    }
}
