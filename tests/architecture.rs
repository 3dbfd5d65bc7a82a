//! The module layering, checked the way rust-analyzer's tidy tests check theirs: by reading the
//! source. Every `crate::<module>` path in `src/` (in `use` lines and in code, comments left
//! out) is a dependency of the top-level module the file belongs to; each must be allowed by
//! [`ALLOWED`], and together they must not form a circle. docs/ARCHITECTURE.md holds the same
//! table.
//!
//! A deliberately bad import fails it. Adding `use crate::sources::twitch::helix::Helix;` to
//! `src/hub/queue.rs` makes `layering_follows_the_data_flow` fail with
//!
//! ```text
//! src/hub/queue.rs: hub may not depend on sources (allowed: event, foundation)
//! ```
//!
//! and `a_bad_import_is_caught` runs exactly that on a copy of the rules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that depend on nothing else in the crate (bar each other): small tools every
/// component may use. Named `foundation` in [`ALLOWED`].
const FOUNDATION: &[&str] = &[
    "credentials",
    "limiter",
    "net",
    "retry",
    "secret",
    "section",
    "state",
    "supervisor",
    "template",
];

/// The components: the contract, the bus, and what is built around it.
const COMPONENTS: &[&str] = &[
    "event",
    "hub",
    "sources",
    "chat",
    "processors",
    "sinks",
    "mqtt",
    "web",
];

/// Top-level module → what it may depend on, in data-flow order. `foundation` stands for
/// every module of [`FOUNDATION`], `components` for every one of [`COMPONENTS`]. A module not
/// listed here fails the test until it is.
const ALLOWED: &[(&str, &[&str])] = &[
    // The contract depends on nothing: every other module speaks it.
    ("event", &[]),
    // The bus: numbering, dedup, bounded queues, the write-ahead log.
    ("hub", &["event", "foundation"]),
    // One folder per provider; never on outputs, processors or the web server.
    ("sources", &["event", "hub", "foundation"]),
    // Twitch chat: read through the Twitch source's IRC client, send through IRC or Helix.
    ("chat", &["event", "hub", "sources", "foundation"]),
    // Beside the hub: they read records and publish new ones (commands drive sources and chat).
    (
        "processors",
        &["event", "hub", "sources", "chat", "foundation"],
    ),
    // Outputs.
    ("sinks", &["event", "hub", "foundation"]),
    ("mqtt", &["event", "hub", "foundation"]),
    // One more consumer, which shows the state of everything else.
    (
        "web",
        &[
            "event",
            "hub",
            "sources",
            "chat",
            "sinks",
            "mqtt",
            "foundation",
        ],
    ),
    // The aggregate of every component's config section.
    ("config", &["components", "foundation"]),
    // The composition root: the only module that builds them all.
    ("daemon", &["components", "config", "foundation"]),
    ("cli", &["components", "config", "daemon", "foundation"]),
];

/// The top-level module a file under `src/` belongs to (`None` for the crate root and binaries).
fn module_of(relative: &Path) -> Option<String> {
    let mut parts = relative.components();
    let first = parts.next()?.as_os_str().to_str()?.to_owned();
    if first == "lib.rs" || first == "main.rs" || first == "bin" {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_owned())
}

/// The top-level modules `source` names as `crate::<module>`, comments left out. A grouped
/// `use crate::{a, b::c}` names `a` and `b`.
fn dependencies(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.insert(name);
                    }
                }
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // `crate::VERSION` and other root items are not modules (they are not lowercase).
            let after = &rest[name.len()..];
            let names_a_module = ["::", ";", ",", " as ", "}"]
                .iter()
                .any(|end| after.starts_with(end));
            if !name.is_empty() && names_a_module {
                found.insert(name);
            }
        }
    }
    found
}

/// One line per dependency the rules do not allow, and per module they do not know.
fn violations(files: &BTreeMap<PathBuf, String>, allowed: &[(&str, &[&str])]) -> Vec<String> {
    let rules: BTreeMap<&str, &[&str]> = allowed.iter().copied().collect();
    let mut problems = Vec::new();
    for (path, source) in files {
        let Some(module) = module_of(path.strip_prefix("src").unwrap_or(path)) else {
            continue;
        };
        let is_foundation = FOUNDATION.contains(&module.as_str());
        for dependency in dependencies(source) {
            if dependency == module {
                continue;
            }
            let dep_is_foundation = FOUNDATION.contains(&dependency.as_str());
            let ok = if is_foundation {
                dep_is_foundation
            } else {
                match rules.get(module.as_str()) {
                    None => {
                        problems.push(format!(
                            "{}: module {module} is in neither FOUNDATION nor ALLOWED of tests/architecture.rs; add it (and to docs/ARCHITECTURE.md)",
                            path.display()
                        ));
                        break;
                    }
                    Some(may) => {
                        may.contains(&dependency.as_str())
                            || (dep_is_foundation && may.contains(&"foundation"))
                            || (COMPONENTS.contains(&dependency.as_str())
                                && may.contains(&"components"))
                    }
                }
            };
            if !ok {
                let may = if is_foundation {
                    "other foundation modules".to_owned()
                } else {
                    rules
                        .get(module.as_str())
                        .map(|m| m.join(", "))
                        .unwrap_or_default()
                };
                problems.push(format!(
                    "{}: {module} may not depend on {dependency} (allowed: {may})",
                    path.display()
                ));
            }
        }
    }
    problems
}

/// The module graph's circles, as `a -> b -> a` lines.
fn circles(files: &BTreeMap<PathBuf, String>) -> Vec<String> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, source) in files {
        let Some(module) = module_of(path.strip_prefix("src").unwrap_or(path)) else {
            continue;
        };
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(dependencies(source).into_iter().filter(|d| *d != module));
    }
    let mut found = Vec::new();
    for start in graph.keys() {
        // Depth-first from `start`, looking for a way back to it.
        let mut stack = vec![vec![start.clone()]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = path.last().cloned().unwrap_or_default();
            for next in graph.get(&last).into_iter().flatten() {
                if next == start {
                    found.push(format!("{} -> {start}", path.join(" -> ")));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push(longer);
                }
            }
        }
    }
    found
}

fn sources() -> BTreeMap<PathBuf, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let relative = path
                    .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                    .unwrap_or(&path)
                    .to_path_buf();
                out.insert(relative, text);
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files
}

#[test]
fn layering_follows_the_data_flow() {
    let files = sources();
    assert!(files.len() > 50, "src/ not found: {}", files.len());
    let problems = violations(&files, ALLOWED);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn no_circles_between_top_level_modules() {
    let found = circles(&sources());
    assert!(found.is_empty(), "\n{}", found.join("\n"));
}

#[test]
fn a_bad_import_is_caught() {
    let mut files = BTreeMap::new();
    files.insert(
        PathBuf::from("src/hub/queue.rs"),
        "use std::sync::Arc;\n// crate::web in a comment is not a dependency\nuse crate::sources::twitch::helix::Helix;\n".to_owned(),
    );
    files.insert(
        PathBuf::from("src/sources/demo.rs"),
        "use crate::{event::Event, hub};\nfn f() { crate::web::start(); }\n".to_owned(),
    );
    files.insert(
        PathBuf::from("src/net.rs"),
        "use crate::event::Event;\n".to_owned(),
    );
    let problems = violations(&files, ALLOWED);
    assert_eq!(
        problems,
        vec![
            "src/hub/queue.rs: hub may not depend on sources (allowed: event, foundation)",
            "src/net.rs: net may not depend on event (allowed: other foundation modules)",
            "src/sources/demo.rs: sources may not depend on web (allowed: event, hub, foundation)",
        ]
    );
    files.insert(
        PathBuf::from("src/event/mod.rs"),
        "use crate::hub::Record;\n".to_owned(),
    );
    let found = circles(&files);
    assert!(
        found.iter().any(|c| c.starts_with("event -> hub -> ")),
        "{found:?}"
    );
}
