//! Signed-envelope verification: every failure mode gives its typed error.

use lode_proto::canonical::CanonicalError;
use lode_proto::{Did, Envelope, Keypair, Message, ReplayGuard, VerifyError};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Hello {
    slots: u32,
    name: String,
}
impl Message for Hello {
    const KIND: &'static str = "lode/test/hello/v1";
}

/// Same shape as `Hello`, different kind: the payload bytes would decode as either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Goodbye {
    slots: u32,
    name: String,
}
impl Message for Goodbye {
    const KIND: &'static str = "lode/test/goodbye/v1";
}

const NOW: u64 = 1_700_000_000_000;

fn key(n: u8) -> Keypair {
    Keypair::from_secret_bytes(&[n; 32])
}

fn hello() -> Hello {
    Hello {
        slots: 4,
        name: "node-a".into(),
    }
}

fn sealed() -> Envelope {
    Envelope::seal(&key(1), &hello(), 42, NOW).unwrap()
}

#[test]
fn round_trip_binary_and_json() {
    let env = sealed();
    let mut guard = ReplayGuard::default();
    let opened = Envelope::from_bytes(&env.to_bytes())
        .unwrap()
        .open::<Hello>(&mut guard, NOW)
        .unwrap();
    assert_eq!(opened.message, hello());
    assert_eq!(opened.signer, key(1).did());
    assert_eq!((opened.nonce, opened.timestamp_ms), (42, NOW));

    let json = serde_json::to_string(&env).unwrap();
    assert!(json.contains("did:key:z6Mk"), "{json}");
    let back: Envelope = serde_json::from_str(&json).unwrap();
    assert_eq!(back, env);
}

#[test]
fn tampered_payload_is_rejected() {
    let env = sealed();
    for i in 0..env.payload.len() {
        let mut bad = env.clone();
        bad.payload[i] ^= 0x01;
        let err = bad
            .open::<Hello>(&mut ReplayGuard::default(), NOW)
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::BadSignature { .. }),
            "byte {i}: {err}"
        );
    }
    // Re-encoding a different message under the old signature fails too.
    let mut bad = env.clone();
    bad.payload = lode_proto::canonical::encode(&lode_proto::envelope::Payload {
        nonce: 42,
        timestamp_ms: NOW,
        message: Hello {
            slots: 400,
            name: "node-a".into(),
        },
    })
    .unwrap();
    assert!(matches!(
        bad.open_signed::<Hello>(),
        Err(VerifyError::BadSignature { .. })
    ));
}

#[test]
fn wrong_signer_is_rejected() {
    let mut env = sealed();
    env.signer = key(2).did();
    let err = env
        .open::<Hello>(&mut ReplayGuard::default(), NOW)
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::BadSignature {
            signer: key(2).did(),
            kind: Hello::KIND.into()
        }
    );
}

#[test]
fn tampered_signature_is_rejected() {
    let env = sealed();
    for i in [0, 31, 32, 63] {
        let mut bad = env.clone();
        bad.signature.0[i] ^= 0x80;
        assert!(
            matches!(
                bad.open_signed::<Hello>(),
                Err(VerifyError::BadSignature { .. })
            ),
            "byte {i}"
        );
    }
}

#[test]
fn signature_moved_to_another_kind_is_rejected() {
    let env = sealed();
    // Receiver expecting Goodbye refuses a Hello outright...
    let err = env.open_signed::<Goodbye>().unwrap_err();
    assert_eq!(
        err,
        VerifyError::UnexpectedKind {
            expected: Goodbye::KIND,
            found: Hello::KIND.into()
        }
    );
    // ...and relabelling the envelope does not help: the signature is bound to the kind.
    let mut relabelled = env.clone();
    relabelled.kind = Goodbye::KIND.into();
    let err = relabelled.open_signed::<Goodbye>().unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");
}

#[test]
fn replayed_nonce_is_rejected_but_fresh_nonce_accepted() {
    let mut guard = ReplayGuard::default();
    let env = sealed();
    env.open::<Hello>(&mut guard, NOW).unwrap();
    let err = env.open::<Hello>(&mut guard, NOW + 10).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Replayed {
            signer: key(1).did(),
            nonce: 42
        }
    );
    // Same nonce from another signer is a different message.
    Envelope::seal(&key(2), &hello(), 42, NOW)
        .unwrap()
        .open::<Hello>(&mut guard, NOW)
        .unwrap();
    // A new nonce from the same signer is fine.
    Envelope::seal(&key(1), &hello(), 43, NOW)
        .unwrap()
        .open::<Hello>(&mut guard, NOW)
        .unwrap();
    assert_eq!(guard.len(), 3);
}

#[test]
fn stale_and_future_timestamps_are_rejected() {
    let mut guard = ReplayGuard::new(60_000, 5_000, 100);
    let old = Envelope::seal(&key(1), &hello(), 1, NOW - 60_001).unwrap();
    assert_eq!(
        old.open::<Hello>(&mut guard, NOW).unwrap_err(),
        VerifyError::Stale {
            age_ms: 60_001,
            max_age_ms: 60_000
        }
    );
    let future = Envelope::seal(&key(1), &hello(), 2, NOW + 5_001).unwrap();
    assert_eq!(
        future.open::<Hello>(&mut guard, NOW).unwrap_err(),
        VerifyError::FromFuture {
            ahead_ms: 5_001,
            max_skew_ms: 5_000
        }
    );
    // Edges of the window are accepted.
    Envelope::seal(&key(1), &hello(), 3, NOW - 60_000)
        .unwrap()
        .open::<Hello>(&mut guard, NOW)
        .unwrap();
    Envelope::seal(&key(1), &hello(), 4, NOW + 5_000)
        .unwrap()
        .open::<Hello>(&mut guard, NOW)
        .unwrap();
    // Rejected messages were not recorded.
    assert_eq!(guard.len(), 2);
}

#[test]
fn replay_memory_is_bounded_by_the_window() {
    let mut guard = ReplayGuard::new(1_000, 0, 10);
    for i in 0..10u64 {
        Envelope::seal(&key(1), &hello(), i, NOW)
            .unwrap()
            .open::<Hello>(&mut guard, NOW)
            .unwrap();
    }
    // Full: a new message inside the window is refused, not silently accepted.
    let err = Envelope::seal(&key(1), &hello(), 99, NOW)
        .unwrap()
        .open::<Hello>(&mut guard, NOW)
        .unwrap_err();
    assert_eq!(err, VerifyError::GuardFull { capacity: 10 });
    // Once the window has passed, old nonces are forgotten (their replays are stale anyway).
    let later = NOW + 2_000;
    Envelope::seal(&key(1), &hello(), 100, later)
        .unwrap()
        .open::<Hello>(&mut guard, later)
        .unwrap();
    assert_eq!(guard.len(), 1);
    let replay_of_old = Envelope::seal(&key(1), &hello(), 0, NOW).unwrap();
    assert!(matches!(
        replay_of_old.open::<Hello>(&mut guard, later),
        Err(VerifyError::Stale { .. })
    ));
}

#[test]
fn truncated_envelopes_give_typed_errors() {
    let bytes = sealed().to_bytes();
    for len in 0..bytes.len() {
        match Envelope::from_bytes(&bytes[..len]) {
            Err(CanonicalError::Truncated) | Err(CanonicalError::Malformed(_)) => {}
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0, 0]);
    assert_eq!(
        Envelope::from_bytes(&longer),
        Err(CanonicalError::TrailingBytes(2))
    );
}

#[test]
fn payload_with_garbage_gives_decode_error() {
    // A correctly signed payload that is not a valid Payload<Hello>.
    let kp = key(1);
    let payload = vec![0xff; 5];
    let env = Envelope {
        kind: Hello::KIND.into(),
        signature: kp.sign_tagged(Hello::KIND, &payload),
        payload,
        signer: kp.did(),
    };
    assert!(matches!(
        env.open_signed::<Hello>(),
        Err(VerifyError::Decode(_))
    ));
}

fn did_strategy() -> impl Strategy<Value = Did> {
    any::<[u8; 32]>().prop_map(|s| Keypair::from_secret_bytes(&s).did())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(env) = Envelope::from_bytes(&bytes) {
            let _ = env.open::<Hello>(&mut ReplayGuard::default(), NOW);
        }
        let _ = serde_json::from_slice::<Envelope>(&bytes);
    }

    #[test]
    fn mutated_envelopes_never_verify(seed in any::<[u8; 32]>(), idx in any::<prop::sample::Index>(), flip in 1u8..) {
        let kp = Keypair::from_secret_bytes(&seed);
        let bytes = Envelope::seal(&kp, &hello(), 7, NOW).unwrap().to_bytes();
        let mut bad = bytes.clone();
        let i = idx.index(bad.len());
        bad[i] ^= flip;
        match Envelope::from_bytes(&bad) {
            Err(_) => {}
            Ok(env) => prop_assert!(env.open::<Hello>(&mut ReplayGuard::default(), NOW).is_err()),
        }
    }

    #[test]
    fn sign_verify_round_trip(
        seed in any::<[u8; 32]>(),
        slots in any::<u32>(),
        name in "\\PC{0,40}",
        nonce in any::<u64>(),
        ts in 0u64..u64::MAX / 2,
    ) {
        let kp = Keypair::from_secret_bytes(&seed);
        let msg = Hello { slots, name };
        let env = Envelope::seal(&kp, &msg, nonce, ts).unwrap();
        let back = Envelope::from_bytes(&env.to_bytes()).unwrap();
        let opened = back.open::<Hello>(&mut ReplayGuard::default(), ts).unwrap();
        prop_assert_eq!(opened.message, msg);
        prop_assert_eq!(opened.signer, kp.did());
        prop_assert_eq!(opened.nonce, nonce);
    }

    #[test]
    fn other_signer_never_verifies(seed in any::<[u8; 32]>(), other in did_strategy()) {
        let kp = Keypair::from_secret_bytes(&seed);
        prop_assume!(other != kp.did());
        let mut env = Envelope::seal(&kp, &hello(), 1, NOW).unwrap();
        env.signer = other;
        let is_bad_signature = matches!(env.open_signed::<Hello>(), Err(VerifyError::BadSignature { .. }));
        prop_assert!(is_bad_signature);
    }
}
