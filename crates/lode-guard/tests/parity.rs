//! The Rust/JS parity fixture (`extension/test/guard-parity.json`) must be what this
//! build computes with the default model. After a deliberate change to the features or
//! the model, rewrite it with `LODE_GUARD_BLESS=1 cargo test -p lode-guard --test parity`
//! and commit it; `node --test extension/` then checks the JS scorer against it.

use lode_guard::MAX_URL_BYTES;
use lode_guard::dataset::parse_tsv;
use lode_guard::fixture::{self, Fixture};
use lode_guard::model::{DEFAULT_MODEL, Model};
use std::path::PathBuf;

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../extension/test/guard-parity.json")
}

fn urls() -> Vec<String> {
    let mut urls: Vec<String> = include_str!("data/parity-urls.txt")
        .split('\n')
        .map(str::to_string)
        .collect();
    if urls.last().is_some_and(|u| u.is_empty()) {
        urls.pop();
    }
    // Every 8th URL of the committed sample of the real dataset.
    let sample = parse_tsv(include_str!("data/sample.tsv")).expect("sample.tsv");
    urls.extend(sample.iter().step_by(8).map(|e| e.url.clone()));
    // Just over and exactly at the length limit.
    urls.push(format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES)));
    urls.push(format!(
        "https://example.com/{}",
        "b".repeat(MAX_URL_BYTES - 20)
    ));
    urls
}

#[test]
fn parity_fixture_is_current() {
    let (model, hash) = Model::from_file_text(DEFAULT_MODEL).expect("default model");
    let fx = fixture::build(&model, &hash, &urls());
    let text = serde_json::to_string_pretty(&fx).unwrap() + "\n";
    let path = fixture_path();
    if std::env::var_os("LODE_GUARD_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let parsed: Fixture = serde_json::from_str(&committed).unwrap_or(Fixture {
        model_sha256: String::new(),
        cases: Vec::new(),
    });
    assert_eq!(
        parsed.model_sha256, hash,
        "fixture is for another model; rerun with LODE_GUARD_BLESS=1"
    );
    assert_eq!(
        committed, text,
        "extension/test/guard-parity.json is stale; rerun with LODE_GUARD_BLESS=1 and commit it"
    );
    // The fixture exercises both classes and the error paths.
    let errors = fx.cases.iter().filter(|c| c.error.is_some()).count();
    let flagged = fx
        .cases
        .iter()
        .filter(|c| c.score.is_some_and(|s| s >= model.threshold))
        .count();
    assert!(errors >= 8 && flagged >= 10 && fx.cases.len() - errors - flagged >= 10);
}

#[test]
fn both_scorers_embed_the_same_public_suffix_list() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let txt = std::fs::read_to_string(root.join("data/psl-rules.txt")).unwrap();
    let rust: Vec<&str> = txt.lines().filter(|l| !l.starts_with("//")).collect();
    let js = std::fs::read_to_string(root.join("../../extension/psl-rules.js")).unwrap();
    let array = js
        .lines()
        .find_map(|l| l.strip_prefix("export default "))
        .and_then(|l| l.strip_suffix(';'))
        .expect("export default [...];");
    let js: Vec<String> = serde_json::from_str(array).unwrap();
    assert!(rust.len() > 9000);
    assert_eq!(rust, js, "regenerate both with node guard/export-psl.mjs");
}
