//! The published contract documents are generated from the code; this fails when the
//! committed copies drift. Regenerate with `ONGWATCH_BLESS=1 cargo test --test contract`.

use std::path::Path;

use ongwatch::event::schema;

fn check(relative: &str, generated: String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    if std::env::var_os("ONGWATCH_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{relative} differs from what the code generates; run ONGWATCH_BLESS=1 cargo test --test contract and commit the result"
    );
}

fn pretty(value: serde_json::Value) -> String {
    serde_json::to_string_pretty(&value).unwrap() + "\n"
}

#[test]
fn json_schema_is_committed() {
    check(
        "docs/schema/events.schema.json",
        pretty(schema::json_schema()),
    );
}

#[test]
fn asyncapi_is_committed() {
    check(
        "docs/schema/asyncapi.json",
        pretty(schema::asyncapi(env!("CARGO_PKG_VERSION"))),
    );
}

#[test]
fn events_doc_is_committed() {
    check("docs/EVENTS.md", schema::events_markdown());
}

#[test]
fn every_example_validates_against_the_schema() {
    let schema = schema::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for example in schema::examples() {
        let json = example.to_json();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{json}: {errors:?}");
    }
}
