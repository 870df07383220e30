//! `lode guard` end to end: score with the embedded model, eval on the committed sample,
//! clear errors for bad URLs and a tampered model file.

mod common;

use common::lode_run;

#[test]
fn score_prints_one_json_object_per_url() {
    let (ok, out, _) = lode_run(&[
        "guard",
        "score",
        "--json",
        "https://www.wikipedia.org/wiki/Lode",
        "http://paypal.com.account-verify.secure-login.xyz/signin/update.php",
    ]);
    assert!(ok);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["verdict"], "benign");
    assert_eq!(lines[1]["verdict"], "phishing");
    assert!(lines[1]["score"].as_f64().unwrap() > lines[0]["score"].as_f64().unwrap());
}

#[test]
fn bad_urls_get_typed_errors_and_a_failure_status() {
    let huge = format!("https://example.com/{}", "a".repeat(10_000));
    let (ok, out, _) = lode_run(&[
        "guard",
        "score",
        "--json",
        "ftp://x.com/",
        &huge,
        "http://[::1",
    ]);
    assert!(!ok);
    let kinds: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["unsupported_scheme", "too_long", "malformed"]);
    // The echoed URL is cut, not 10 KB.
    assert!(out.len() < 2000);
}

#[test]
fn tampered_model_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = lode_guard::DEFAULT_MODEL.replacen("\"bias\":", "\"bias\":1", 1);
    let path = dir.path().join("model.json");
    std::fs::write(&path, text).unwrap();
    let (ok, _, err) = lode_run(&[
        "guard",
        "score",
        "--model",
        path.to_str().unwrap(),
        "https://a.com/",
    ]);
    assert!(!ok);
    assert!(err.contains("model hash mismatch"), "{err}");
}

#[test]
fn eval_reports_metrics_on_a_labelled_file() {
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../lode-guard/tests/data/sample.tsv"
    );
    let (ok, out, err) = lode_run(&["guard", "eval", "--test", sample, "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let m = &v["metrics"];
    assert!(m["examples"].as_u64().unwrap() > 1000);
    assert!(m["roc_auc"].as_f64().unwrap() > 0.95, "{m}");
    assert!(m["recall_at_1pct_fpr"].as_f64().unwrap() > 0.5, "{m}");
}
