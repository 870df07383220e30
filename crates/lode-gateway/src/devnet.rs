//! Genesis for local networks and tests: the default tokenomics, starting now,
//! with funded requester accounts carved out of the treasury allocation.

use lode_ledger::{Allocation, AllocationRole, Genesis};
use lode_proto::Did;

/// Why a devnet genesis could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DevnetGenesisError {
    #[error("the default genesis has no treasury allocation to fund requesters from")]
    NoTreasury,
    #[error(
        "requested {requested} base units for requesters; the treasury's launch unlock has {available}"
    )]
    TooMuch { requested: u128, available: u128 },
    #[error(transparent)]
    Genesis(#[from] lode_ledger::GenesisError),
}

/// The default genesis with `genesis_time_ms = now_ms`, epochs of `epoch_ms`, and
/// each `(name, did, amount)` funded at launch from the treasury.
pub fn genesis(
    funded: &[(String, Did, u128)],
    epoch_ms: u64,
    now_ms: u64,
) -> Result<Genesis, DevnetGenesisError> {
    let mut g = Genesis::default_genesis();
    g.genesis_time_ms = now_ms;
    g.epoch.length_ms = epoch_ms;
    let total: u128 = funded.iter().map(|(_, _, a)| *a).sum();
    let treasury = g
        .allocations
        .iter_mut()
        .find(|a| a.name == "treasury")
        .ok_or(DevnetGenesisError::NoTreasury)?;
    if total > treasury.unlocked_at_launch {
        return Err(DevnetGenesisError::TooMuch {
            requested: total,
            available: treasury.unlocked_at_launch,
        });
    }
    treasury.amount -= total;
    treasury.unlocked_at_launch -= total;
    for (name, did, amount) in funded {
        g.allocations.push(Allocation {
            name: name.clone(),
            role: AllocationRole::Vesting,
            amount: *amount,
            beneficiary: Some(*did),
            unlocked_at_launch: *amount,
            cliff_epochs: 0,
            vesting_epochs: 0,
        });
    }
    g.validate_tokenomics()?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_proto::Keypair;

    #[test]
    fn funded_genesis_is_valid_and_keeps_supply() {
        let did = Keypair::from_secret_bytes(&[1; 32]).did();
        let amount = 1_000 * lode_ledger::ONE_TOKEN;
        let g = genesis(&[("demo-requester".into(), did, amount)], 10_000, 1_000).unwrap();
        let sum: u128 = g.allocations.iter().map(|a| a.amount).sum();
        assert_eq!(sum, g.token.total_supply);
        assert_eq!(g.genesis_time_ms, 1_000);
        let too_much = genesis(&[("x".into(), did, g.token.total_supply)], 10_000, 0);
        assert!(matches!(too_much, Err(DevnetGenesisError::TooMuch { .. })));
    }
}
