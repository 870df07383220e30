//! Bad requests to a real gateway process: each gets a clear, typed JSON error and
//! nothing is stored.

mod common;

use common::*;
use lode_proto::wire::{SubmitJob, UPLOAD_HEADER, UploadModule};
use lode_proto::{Envelope, Hash32};
use reqwest::blocking::Client as Http;

fn error_of(resp: reqwest::blocking::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().expect("error body is JSON");
    (
        status,
        v["error"]["code"].as_str().expect("code").to_string(),
        v["error"]["message"].as_str().expect("message").to_string(),
    )
}

fn prepared(net: &Net, price: u128) -> SubmitJob {
    let client = net.client();
    let key = &net.requester.keypair;
    let wasm = std::fs::read(repo_root().join("examples/jobs/wasm/sha256.wasm")).expect("wasm");
    let module = client.upload_module(key, &wasm).expect("upload");
    let mut spec = sha256_spec(2, true);
    spec.price.max_per_fuel = price;
    let units = inputs(5, 1)
        .into_iter()
        .map(|stdin| lode_proto::wire::UnitInput {
            stdin,
            args: vec![],
        })
        .collect();
    lode_client::Client::build_submission(
        key,
        client.chain_id().expect("chain"),
        &spec,
        module,
        units,
    )
    .expect("build")
}

fn jobs_count(net: &Net) -> usize {
    net.client().jobs().expect("jobs").len()
}

#[test]
fn bad_requests_get_typed_errors_and_store_nothing() {
    let net = Net::start(0, 60_000);
    let http = Http::new();
    let key = &net.requester.keypair;
    let start_balance = balance(&net);

    // Malformed JSON.
    let r = http
        .post(format!("{}/v1/jobs", net.url))
        .body("{ nope")
        .send()
        .expect("send");
    let (status, code, _) = error_of(r);
    assert_eq!((status, code.as_str()), (400, "malformed_json"));

    // Forged signature: a valid submission with one signature bit flipped.
    let submit = prepared(&net, 1_000);
    let mut env = Envelope::seal_fresh(key, &submit, lode_client::now_ms()).expect("seal");
    env.signature.0[0] ^= 1;
    let r = http
        .post(format!("{}/v1/jobs", net.url))
        .json(&env)
        .send()
        .expect("send");
    let (status, code, _) = error_of(r);
    assert_eq!((status, code.as_str()), (401, "bad_signature"));
    // Signed by someone else than the stated signer.
    let mut env = Envelope::seal_fresh(key, &submit, lode_client::now_ms()).expect("seal");
    env.signer = net.node_keys.first().map_or_else(
        || lode_proto::Keypair::from_secret_bytes(&[9; 32]).did(),
        |k| k.did(),
    );
    let (status, code, _) = error_of(
        http.post(format!("{}/v1/jobs", net.url))
            .json(&env)
            .send()
            .expect("send"),
    );
    assert_eq!((status, code.as_str()), (401, "bad_signature"));
    assert_eq!(jobs_count(&net), 0);

    // A job the requester cannot afford.
    let pricey = prepared(&net, 10u128.pow(24));
    let env = Envelope::seal_fresh(key, &pricey, lode_client::now_ms()).expect("seal");
    let (status, code, message) = error_of(
        http.post(format!("{}/v1/jobs", net.url))
            .json(&env)
            .send()
            .expect("send"),
    );
    assert_eq!(
        (status, code.as_str()),
        (402, "insufficient_funds"),
        "{message}"
    );
    assert_eq!(jobs_count(&net), 0);
    assert_eq!(balance(&net), start_balance, "nothing escrowed");

    // A replayed submission: accepted once, refused the second time.
    let env = Envelope::seal_fresh(key, &submit, lode_client::now_ms()).expect("seal");
    let r = http
        .post(format!("{}/v1/jobs", net.url))
        .json(&env)
        .send()
        .expect("send");
    assert_eq!(r.status().as_u16(), 201);
    let (status, code, _) = error_of(
        http.post(format!("{}/v1/jobs", net.url))
            .json(&env)
            .send()
            .expect("send"),
    );
    assert_eq!((status, code.as_str()), (401, "replayed_message"));
    // The same job re-signed (fresh nonce) is a duplicate job, not a second escrow.
    let env2 = Envelope::seal_fresh(key, &submit, lode_client::now_ms()).expect("seal");
    let (status, code, _) = error_of(
        http.post(format!("{}/v1/jobs", net.url))
            .json(&env2)
            .send()
            .expect("send"),
    );
    assert_eq!((status, code.as_str()), (409, "duplicate_job"));
    assert_eq!(jobs_count(&net), 1);

    // Unknown job, malformed id.
    let unknown = Hash32::sha256(b"nope").to_hex();
    let (status, code, _) = error_of(
        http.get(format!("{}/v1/jobs/{unknown}", net.url))
            .send()
            .expect("send"),
    );
    assert_eq!((status, code.as_str()), (404, "unknown_job"));
    let (status, code, _) = error_of(
        http.get(format!("{}/v1/jobs/xyz", net.url))
            .send()
            .expect("send"),
    );
    assert_eq!((status, code.as_str()), (400, "bad_job_id"));

    // Module hash mismatch: the body is not the module named in the path.
    let body = b"\0asm\x01\0\0\0".to_vec();
    let claimed = Hash32::sha256(b"another module");
    let hdr = serde_json::to_string(
        &Envelope::seal_fresh(
            key,
            &UploadModule {
                sha256: claimed,
                size: body.len() as u64,
            },
            lode_client::now_ms(),
        )
        .expect("seal"),
    )
    .expect("json");
    let r = http
        .put(format!("{}/v1/modules/{}", net.url, claimed.to_hex()))
        .header(UPLOAD_HEADER, hdr)
        .body(body)
        .send()
        .expect("send");
    let (status, code, _) = error_of(r);
    assert_eq!((status, code.as_str()), (400, "module_hash_mismatch"));
    let (status, code, _) = error_of(
        http.get(format!("{}/v1/modules/{}", net.url, claimed.to_hex()))
            .send()
            .expect("send"),
    );
    assert_eq!((status, code.as_str()), (404, "unknown_module"));

    // Oversized upload (over the 16 MiB module cap), with an honest signed header.
    let big = vec![0u8; 17 << 20];
    let h = Hash32::sha256(&big);
    let hdr = serde_json::to_string(
        &Envelope::seal_fresh(
            key,
            &UploadModule {
                sha256: h,
                size: big.len() as u64,
            },
            lode_client::now_ms(),
        )
        .expect("seal"),
    )
    .expect("json");
    let r = http
        .put(format!("{}/v1/modules/{}", net.url, h.to_hex()))
        .header(UPLOAD_HEADER, hdr)
        .body(big)
        .send();
    // The gateway may answer before reading the whole body; either way nothing is stored.
    if let Ok(r) = r {
        let (status, code, _) = error_of(r);
        assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    }
    // The server closes a connection whose body it refused: use a new one.
    let http = Http::new();
    let (status, _, _) = error_of(
        http.get(format!("{}/v1/modules/{}", net.url, h.to_hex()))
            .send()
            .expect("send"),
    );
    assert_eq!(status, 404);

    // Unsigned upload.
    let (status, code, _) = error_of(
        http.put(format!("{}/v1/modules/{}", net.url, h.to_hex()))
            .body(vec![1, 2, 3])
            .send()
            .expect("send"),
    );
    assert_eq!((status, code.as_str()), (401, "unsigned_upload"));

    // Unknown route, and the operational endpoints.
    let (status, code, _) = error_of(
        http.get(format!("{}/v1/nope", net.url))
            .send()
            .expect("send"),
    );
    assert_eq!((status, code.as_str()), (404, "no_such_route"));
    let metrics = http
        .get(format!("{}/metrics", net.url))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(metrics.contains("lode_jobs_submitted_total 1"), "{metrics}");
    let openapi: serde_json::Value = http
        .get(format!("{}/openapi.json", net.url))
        .send()
        .expect("openapi")
        .json()
        .expect("json");
    assert_eq!(openapi["openapi"], "3.1.0");
    let health: serde_json::Value = http
        .get(format!("{}/healthz", net.url))
        .send()
        .expect("healthz")
        .json()
        .expect("json");
    assert_eq!(health["status"], "ok");
}
