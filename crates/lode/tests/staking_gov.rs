//! Staking and governance end to end, on real processes: a gateway whose
//! genesis turns staking and governance on (short epochs), `lode stake` and
//! `lode gov` against it, parameter changes voted through and used by the
//! gateway at the epoch boundary without a restart (k, and the default quorum
//! and replicas that `lode job submit` then uses), commission, bad input
//! (unjail of a target that is not jailed included) refused with typed errors
//! and no state change, and `lode ledger verify` at the end.

mod common;

use common::{Net, get, ledger_verify_ok, lode_run, new_key, post, repo_root};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const EPOCH_MS: u64 = 2_000;

fn lode_json(args: &[&str]) -> Value {
    let (ok, out, err) = lode_run(args);
    assert!(ok, "lode {args:?} failed:\n{out}\n{err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("lode {args:?}: {e}: {out}"))
}

/// `lode ARGS` must fail with the gateway's error `code` in its message.
fn lode_refused(args: &[&str], code: &str) {
    let (ok, out, err) = lode_run(args);
    assert!(!ok, "lode {args:?} should have failed:\n{out}");
    assert!(
        err.contains(code),
        "lode {args:?}: expected {code} in the error, got:\n{err}"
    );
}

fn key_args<'a>(key: &'a Path, url: &'a str) -> Vec<&'a str> {
    vec![
        "--key",
        key.to_str().expect("utf-8 path"),
        "--gateway",
        url,
        "--json",
    ]
}

fn with<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(tail).copied().collect()
}

/// Everything the refusals below must leave unchanged.
fn snapshot(net: &Net, dids: &[String]) -> Value {
    let mut v = serde_json::json!({
        "staking": get(&net.url, "/v1/staking").1,
        "proposals": get(&net.url, "/v1/gov/proposals").1,
    });
    for d in dids {
        let mut acct = get(&net.url, &format!("/v1/accounts/{d}")).1;
        acct.as_object_mut().map(|m| m.remove("pending"));
        v[d] = serde_json::json!({
            "stake": get(&net.url, &format!("/v1/staking/{d}")).1,
            "account": acct,
        });
    }
    // Fields that move with time alone.
    for k in ["epoch", "epoch_ends_at_ms", "recent_epochs", "apr_bps"] {
        v["staking"].as_object_mut().map(|m| m.remove(k));
    }
    v["proposals"].as_object_mut().map(|m| m.remove("epoch"));
    for d in dids {
        v[d]["stake"].as_object_mut().map(|m| m.remove("epoch"));
    }
    v
}

/// Submits a one-unit job whose spec sets no verification (no node runs it:
/// `--no-wait --force`) with `flags`; returns (its view, the CLI's stderr).
fn submit_default_job(dir: &Path, req: &[&str], flags: &[&str]) -> (Value, String) {
    let spec = dir.join("defaults.toml");
    if !spec.exists() {
        std::fs::copy(
            repo_root().join("examples/jobs/wasm/sha256.wasm"),
            dir.join("sha256.wasm"),
        )
        .expect("copy sha256.wasm");
        std::fs::write(
            &spec,
            "name = 'governed defaults'\nmodule = 'sha256.wasm'\n[inputs]\nstdin = ['x']\n\
             [limits]\nfuel = 1000000\nmemory_mb = 16\n[price]\nmax_per_fuel = 1\n",
        )
        .expect("write spec");
    }
    let spec = spec.to_str().expect("utf-8 path");
    let args = with(
        &with(&["job", "submit", spec, "--no-wait", "--force"], flags),
        req,
    );
    let (ok, out, err) = lode_run(&args);
    assert!(ok, "lode {args:?} failed:\n{out}\n{err}");
    let v = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    (v, err)
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn stake_delegate_vote_a_parameter_through_and_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let delegator_path = tmp.path().join("delegator.key");
    let delegator = new_key(&delegator_path, None);
    let fund = format!("{}=1000", delegator.did());
    let mut net = Net::start_with(
        0,
        EPOCH_MS,
        &[
            "--fund",
            &fund,
            "--staking-share-bps",
            "1000",
            "--unbonding-epochs",
            "2",
            "--voting-period-epochs",
            "2",
            "--min-deposit",
            "10 LODE",
            "--data-k",
            "5",
        ],
    );
    let url = net.url.clone();
    let req_path = net.requester_path.clone();
    let req = key_args(&req_path, &url);
    let del = key_args(&delegator_path, &url);
    let me = net.requester.did().to_string();
    let them = delegator.did().to_string();

    // The k the gateway started with (its own --data-k: no proposal yet).
    let (s, stats) = get(&url, "/v1/data/stats");
    assert_eq!(s, 200);
    assert_eq!(stats["k"], 5);

    // Nobody bonded yet: the genesis validator (the gateway) signs, power 1.
    let (_, st0) = get(&url, "/v1/staking");
    let in_force = &st0["validators_in_force"];
    assert_eq!(in_force.as_array().map(Vec::len), Some(1), "{st0}");
    assert_eq!(
        in_force[0]["validator"],
        get(&url, "/v1/ledger").1["validator"]
    );
    assert_eq!(in_force[0]["power"], 1);

    // Bond behind oneself (a validator candidate), then delegate to it.
    let st = lode_json(&with(&["stake", "bond", "1000 LODE"], &req));
    assert_eq!(st["kind"], "bond");
    assert_eq!(st["status"], "included");
    let nonce = st["nonce"].as_u64().expect("nonce");
    let (s, found) = get(&url, &format!("/v1/accounts/{me}/entries/{nonce}"));
    assert_eq!(
        (s, &found["kind"], &found["status"]),
        (200, &Value::from("bond"), &Value::from("included")),
        "{found}"
    );
    let st = lode_json(&with(&["stake", "delegate", "--to", &me, "100 LODE"], &del));
    assert_eq!(st["kind"], "delegate");
    let show = lode_json(&with(&["stake", "show"], &del));
    let d = &show["account"]["delegations"][0];
    assert_eq!(d["target"], me.as_str());
    assert_eq!(d["amount"], (100 * lode_ledger::ONE_TOKEN).to_string());
    assert_eq!(
        show["network"]["bonded"],
        (1100 * lode_ledger::ONE_TOKEN).to_string()
    );
    assert_eq!(show["network"]["targets"][0]["target"], me.as_str());
    // Text output too.
    let (ok, text, err) = lode_run(&["stake", "show", &them, "--gateway", &url]);
    assert!(ok, "{err}");
    assert!(
        text.contains("100 LODE") || text.contains("100.0"),
        "{text}"
    );

    // Commission: the target sets its own (the default target is the key's
    // account); shown by the gateway.
    let st = lode_json(&with(&["stake", "commission", "500"], &req));
    assert_eq!(st["kind"], "set_commission");
    assert_eq!(
        get(&url, &format!("/v1/staking/{me}")).1["target"]["commission_bps"],
        500
    );
    let (ok, text, err) = lode_run(&with(&["stake", "commission", "750"], &req[..4]));
    assert!(ok && text.contains("7.50 %"), "{text}{err}");

    // Unbond part of the delegation: released at an epoch close shown.
    let st = lode_json(&with(&["stake", "unbond", "--from", &me, "40 LODE"], &del));
    assert_eq!(st["kind"], "unbond");
    let show = lode_json(&with(&["stake", "show"], &del));
    let u = &show["account"]["unbondings"][0];
    assert_eq!(u["amount"], (40 * lode_ledger::ONE_TOKEN).to_string());
    assert!(u["released_at_close_of_epoch"].as_u64().is_some());

    // Bad input: typed errors, nothing stored.
    let before = snapshot(&net, &[me.clone(), them.clone()]);
    lode_refused(&with(&["stake", "bond", "0"], &req), "zero_amount");
    lode_refused(
        &with(&["stake", "unbond", "--from", &me, "61 LODE"], &del),
        "insufficient_stake",
    );
    lode_refused(
        &with(&["stake", "delegate", "--to", &me, "1000000 LODE"], &del),
        "insufficient_funds",
    );
    lode_refused(
        &with(&["gov", "vote", "99", "yes"], &req),
        "unknown_proposal",
    );
    // Above the genesis maximum (2000 bps), someone else's target, and
    // unjailing a target that is not jailed or no target at all.
    lode_refused(
        &with(&["stake", "commission", "2001"], &req),
        "commission_too_high",
    );
    lode_refused(
        &with(&["stake", "commission", "100", "--target", &me], &del),
        "not_target_operator",
    );
    lode_refused(&with(&["stake", "unjail"], &req), "not_jailed");
    lode_refused(&with(&["stake", "unjail"], &del), "not_stake_target");
    lode_refused(
        &with(
            &[
                "gov",
                "propose",
                "--param",
                "k_anonymity",
                "--value",
                "2",
                "--deposit",
                "1 LODE",
                "--title",
                "cheap",
            ],
            &req,
        ),
        "deposit_too_low",
    );
    lode_refused(
        &with(
            &[
                "gov",
                "propose",
                "--param",
                "k_anonymity",
                "--value",
                "0",
                "--deposit",
                "10 LODE",
                "--title",
                "k zero",
            ],
            &req,
        ),
        "invalid_param_change",
    );
    // An unknown parameter never leaves the CLI…
    let (ok, _, err) = lode_run(&with(
        &[
            "gov",
            "propose",
            "--param",
            "bogus",
            "--value",
            "1",
            "--deposit",
            "10 LODE",
            "--title",
            "x",
        ],
        &req,
    ));
    assert!(!ok && err.contains("unknown parameter"), "{err}");
    // …and is not an entry the gateway can decode.
    let (s, body) = post(
        &url,
        "/v1/entries",
        br#"{"propose":{"signer":"x","payload":"","signature":""}}"#.to_vec(),
    );
    assert_eq!(s, 400, "{body}");
    assert_eq!(body["error"]["code"], "malformed_json", "{body}");
    let (s, _) = get(&url, "/v1/gov/proposals/notanumber");
    assert_eq!(s, 400);
    let (s, _) = get(&url, "/v1/gov/proposals/77");
    assert_eq!(s, 404);
    let (s, _) = get(&url, "/v1/staking/not-a-did");
    assert_eq!(s, 400);
    assert_eq!(snapshot(&net, &[me.clone(), them.clone()]), before);

    // Without governed defaults a job without [verification] gets the
    // built-in ones, and says so.
    let (job, err) = submit_default_job(tmp.path(), &req, &[]);
    assert_eq!(job["quorum"], 2, "{job}");
    assert!(
        err.contains("quorum 2 (built-in default), max_replicas 5 (built-in default)"),
        "{err}"
    );

    // Propose k = 2, a default quorum of 3 and 4 default replicas, and vote
    // them through with the self-bond (the delegator's stake follows its
    // target's vote).
    let mut ids = Vec::new();
    for (param, value) in [
        ("k_anonymity", "2"),
        ("default_quorum", "3"),
        ("default_replicas", "4"),
    ] {
        let p = lode_json(&with(
            &[
                "gov",
                "propose",
                "--param",
                param,
                "--value",
                value,
                "--deposit",
                "10 LODE",
                "--title",
                "for the demo",
            ],
            &req,
        ));
        let id = p["proposal"].as_u64().expect("proposal id");
        let v = lode_json(&with(&["gov", "vote", &id.to_string(), "yes"], &req));
        assert_eq!(v["kind"], "vote");
        ids.push(id);
    }
    let id = ids[0];
    let shown = lode_json(&with(&["gov", "show", &id.to_string()], &req));
    assert_eq!(shown["status"], "voting");
    assert_eq!(shown["tally_is_live"], true);
    assert_eq!(shown["outcome_if_tallied_now"], "passed");
    assert_eq!(shown["tally"]["yes"], shown["tally"]["bonded"]);
    // Still the old value until the boundary.
    assert_eq!(get(&url, "/v1/data/stats").1["k"], 5);

    // The close of the voting period's last epoch tallies and executes it;
    // the gateway uses the new k from then on, without a restart.
    wait_for("the proposals to pass", Duration::from_secs(30), || {
        ids.iter()
            .all(|id| get(&url, &format!("/v1/gov/proposals/{id}")).1["status"] == "passed")
    });
    wait_for("the gateway to use k = 2", Duration::from_secs(10), || {
        get(&url, "/v1/data/stats").1["k"] == 2
    });
    let (_, staking) = get(&url, "/v1/staking");
    assert_eq!(staking["params"]["k_anonymity"], 2);
    assert_eq!(staking["gateway_knobs"]["k_anonymity"], 2);
    assert_eq!(
        staking["gateway_knobs"]["speed_ceiling"],
        get(&url, "/v1/limits").1["job"]["speed_ceiling_fuel_per_s"]
    );
    let list = lode_json(&with(&["gov", "show"], &req));
    assert_eq!(list["proposals"][0]["status"], "passed");
    assert_eq!(list["proposals"][0]["tally_is_live"], false);

    // The governed job defaults are published, and `lode job submit` uses
    // them for what neither the spec nor the command line sets.
    wait_for("the governed job defaults", Duration::from_secs(10), || {
        get(&url, "/v1/limits").1["defaults"] == serde_json::json!({"quorum": 3, "max_replicas": 4})
    });
    let (job, err) = submit_default_job(tmp.path(), &req, &[]);
    assert_eq!(job["quorum"], 3, "{job}");
    assert!(
        err.contains(
            "quorum 3 (governed default, GET /v1/limits), max_replicas 4 (governed default, GET /v1/limits)"
        ),
        "{err}"
    );
    let (job, err) = submit_default_job(tmp.path(), &req, &["--quorum", "1"]);
    assert_eq!(job["quorum"], 1, "{job}");
    assert!(err.contains("quorum 1 (command line)"), "{err}");

    // Voting after the period: refused, nothing stored.
    let before = snapshot(&net, &[me.clone(), them.clone()]);
    lode_refused(
        &with(&["gov", "vote", &id.to_string(), "no"], &del),
        "voting_closed",
    );
    assert_eq!(snapshot(&net, &[me.clone(), them.clone()]), before);

    // The unbonding is released after its epochs.
    wait_for(
        "the unbonding to be released",
        Duration::from_secs(30),
        || {
            get(&url, &format!("/v1/staking/{them}")).1["unbondings"]
                .as_array()
                .is_some_and(|a| a.is_empty())
        },
    );

    // After the epoch closes the staking set signs: power in whole tokens.
    let (_, st1) = get(&url, "/v1/staking");
    let in_force = &st1["validators_in_force"];
    assert_eq!(in_force[0]["validator"], me.as_str(), "{st1}");
    let power: u128 = st1["targets"][0]["power"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        in_force[0]["power"].as_u64().map(u128::from),
        Some(power / lode_ledger::ONE_TOKEN)
    );
    let epochs = get(&url, "/v1/staking").1["recent_epochs"].clone();
    assert!(epochs.as_array().is_some_and(|a| !a.is_empty()), "{epochs}");
    net.stop_gateway();
    ledger_verify_ok(&net.ledger_dir());
    // A restart keeps the parameter in force, and the epochs of the APR estimate.
    net.start_gateway();
    assert_eq!(get(&net.url, "/v1/data/stats").1["k"], 2);
    let after = get(&net.url, "/v1/staking").1["recent_epochs"].clone();
    let n = epochs.as_array().map_or(0, Vec::len);
    assert_eq!(
        after.as_array().map(|a| a[..n.min(a.len())].to_vec()),
        epochs.as_array().cloned(),
        "{after}"
    );
    net.stop_gateway();
    ledger_verify_ok(&net.ledger_dir());
}
