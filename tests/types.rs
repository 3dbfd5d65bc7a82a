//! The typed payloads for bots (examples/types) are generated from the schema; this fails when
//! the committed files drift from what the generators make of the current schema, and checks
//! that they type-check with the pinned tsc and mypy. Regenerate with
//! `ONGWATCH_BLESS=1 cargo test --test types`.
//!
//! The generators need node with examples/node_modules and the test venv's
//! datamodel-code-generator and mypy (scripts/setup-test-deps.sh). Without them the test reports
//! itself skipped, except under CI=true, where a missing tool fails with the install command.

use std::path::{Path, PathBuf};
use std::process::Command;

use ongwatch::event::schema;

const SETUP: &str = "run scripts/setup-test-deps.sh (npm ci in examples/, and the test venv with datamodel-code-generator and mypy)";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn venv_python() -> PathBuf {
    std::env::var_os("SOCKETIO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/socketio-venv"))
        .join("bin/python")
}

/// Whether the tools are here; under CI a missing one is a failure, elsewhere a skip.
fn tools_present(what: &str) -> bool {
    let node_ok = repo()
        .join("examples/node_modules/json-schema-to-typescript")
        .exists()
        && repo().join("examples/node_modules/typescript").exists();
    let python_ok = Command::new(venv_python())
        .args(["-c", "import datamodel_code_generator, mypy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if node_ok && python_ok {
        return true;
    }
    let missing = format!(
        "{what}: the type generators are missing (node modules: {node_ok}, Python venv: {python_ok}); {SETUP}"
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{missing}");
    eprintln!("skipped: {missing}");
    false
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pretty(value: serde_json::Value) -> String {
    serde_json::to_string_pretty(&value).unwrap() + "\n"
}

#[test]
fn generated_types_are_committed() {
    if !tools_present("generated_types_are_committed") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let schema_path = tmp.path().join("events.schema.json");
    let asyncapi_path = tmp.path().join("asyncapi.json");
    std::fs::write(&schema_path, pretty(schema::json_schema())).unwrap();
    std::fs::write(
        &asyncapi_path,
        pretty(schema::asyncapi(env!("CARGO_PKG_VERSION"))),
    )
    .unwrap();
    let types = repo().join("examples/types");
    for (generated, committed) in generate(tmp.path(), &schema_path, &asyncapi_path) {
        let path = types.join(committed);
        if std::env::var_os("ONGWATCH_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let committed_text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed_text == generated,
            "examples/types/{committed} differs from what the schema generates; run ONGWATCH_BLESS=1 cargo test --test types and commit the result"
        );
    }

    // The check has teeth: a schema with one more field generates different files.
    let mut changed = schema::json_schema();
    changed["$defs"]["Cheer"]["properties"]["drift_probe"] = serde_json::json!({"type": "string"});
    std::fs::write(&schema_path, pretty(changed)).unwrap();
    for (generated, committed) in generate(tmp.path(), &schema_path, &asyncapi_path) {
        let committed_text = std::fs::read_to_string(types.join(committed)).unwrap_or_default();
        assert!(generated.contains("drift_probe"), "{committed}");
        assert_ne!(committed_text, generated, "{committed}");
    }
}

/// Runs both generators; returns (generated text, committed file name).
fn generate(dir: &Path, schema_path: &Path, asyncapi_path: &Path) -> Vec<(String, &'static str)> {
    let types = repo().join("examples/types");
    let ts = dir.join("ongwatch.ts");
    let py = dir.join("ongwatch_types.py");
    run(Command::new("node").arg(types.join("generate.mjs")).args([
        schema_path,
        asyncapi_path,
        &ts,
    ]));
    run(Command::new(venv_python())
        .arg(types.join("generate.py"))
        .args([schema_path, asyncapi_path, &py]));
    vec![
        (std::fs::read_to_string(ts).unwrap(), "ongwatch.ts"),
        (std::fs::read_to_string(py).unwrap(), "ongwatch_types.py"),
    ]
}

#[test]
fn generated_types_type_check() {
    if !tools_present("generated_types_type_check") {
        return;
    }
    let types = repo().join("examples/types");
    // tsconfig.json there checks ongwatch.ts and the example bot that uses it.
    run(Command::new("node")
        .arg(repo().join("examples/node_modules/typescript/bin/tsc"))
        .args(["--noEmit", "-p"])
        .arg(&types));
    run(Command::new(venv_python())
        .args(["-m", "mypy", "--strict", "--no-incremental"])
        .arg(types.join("ongwatch_types.py"))
        .arg(types.join("example.py"))
        .current_dir(&types));
    // And the Python types import and work at run time.
    run(Command::new(venv_python())
        .arg(types.join("example.py"))
        .arg("--self-test")
        .current_dir(&types));
}
