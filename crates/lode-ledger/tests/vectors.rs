//! Claim trees match `@openzeppelin/merkle-tree` byte for byte (vectors made
//! by tests/vectors/gen.mjs with the npm library; see that file to regenerate).

use lode_ledger::merkle::{self, Dump, StandardMerkleTree, hex0x};
use lode_proto::EvmAddress;
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/openzeppelin.json");

fn cases() -> Vec<Value> {
    let v: Value = serde_json::from_str(VECTORS).unwrap();
    assert!(
        v["generator"]
            .as_str()
            .unwrap()
            .starts_with("@openzeppelin/merkle-tree@")
    );
    v["cases"].as_array().unwrap().clone()
}

fn values(case: &Value) -> Vec<(EvmAddress, u128)> {
    case["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            let a: EvmAddress = pair[0].as_str().unwrap().parse().unwrap();
            let v: u128 = pair[1].as_str().unwrap().parse().unwrap();
            (a, v)
        })
        .collect()
}

#[test]
fn roots_proofs_and_dumps_match_openzeppelin() {
    let cases = cases();
    assert!(cases.len() >= 6);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let vals = values(case);
        let tree = StandardMerkleTree::of(vals.clone()).unwrap();
        assert_eq!(
            hex0x(&tree.root()),
            case["root"].as_str().unwrap(),
            "{name}: root"
        );
        // The dump, byte for byte as JSON.stringify(tree.dump()) wrote it.
        assert_eq!(
            tree.dump_json(),
            case["dump_json"].as_str().unwrap(),
            "{name}: dump"
        );
        for (i, expected) in case["proofs"].as_array().unwrap().iter().enumerate() {
            let proof: Vec<String> = tree.proof(i).unwrap().iter().map(|h| hex0x(h)).collect();
            let expected: Vec<String> = expected
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            assert_eq!(proof, expected, "{name}: proof of value {i}");
            let (a, v) = vals[i];
            assert!(merkle::verify(&tree.root(), &a, v, &tree.proof(i).unwrap()));
        }
        // The library's dump loads (and validates) here.
        let dump: Dump = serde_json::from_str(case["dump_json"].as_str().unwrap()).unwrap();
        let loaded = StandardMerkleTree::load(&dump).unwrap();
        assert_eq!(loaded.root(), tree.root(), "{name}: load");
    }
}

#[test]
fn a_proof_does_not_verify_for_another_amount_or_address() {
    let case = &cases()[3];
    let vals = values(case);
    let tree = StandardMerkleTree::of(vals.clone()).unwrap();
    let p = tree.proof(0).unwrap();
    let (a, v) = vals[0];
    assert!(merkle::verify(&tree.root(), &a, v, &p));
    assert!(!merkle::verify(&tree.root(), &a, v + 1, &p));
    assert!(!merkle::verify(&tree.root(), &vals[1].0, v, &p));
}
