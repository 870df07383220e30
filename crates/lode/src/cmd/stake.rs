//! `lode stake` and `lode gov`: staking and stake-weighted governance through
//! a gateway. Entries are signed here with the key (chain and nonce from the
//! gateway) and submitted to `POST /v1/entries`, where the ledger checks them
//! before anything is stored; reads come from `GET /v1/staking…` and
//! `GET /v1/gov/proposals…`. See `docs/design/staking.md`.

use super::job::load_key;
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use lode_client::{Client, EntryStatus};
use lode_ledger::{
    Bond, ContributionKind, Delegate, ParamChange, Propose, SetCommission, SignedEntry, Unbond,
    Unjail, Vote, VoteOption, format_tokens, parse_amount,
};
use lode_proto::{Did, Hash32};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// Key file of the account [default: $LODE_HOME/identity.key].
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Gateway URL.
    #[arg(long, env = "LODE_GATEWAY", default_value = "http://127.0.0.1:7700")]
    pub gateway: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum StakeCmd {
    /// Bond AMOUNT of your liquid balance behind yourself (a self-bond:
    /// a validator candidate). "12.5 LODE" or base units.
    Bond {
        amount: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Start unbonding AMOUNT of your stake behind --from (yourself for a
    /// self-bond); it is liquid again after the unbonding period.
    Unbond {
        #[arg(long, value_name = "DID")]
        from: Did,
        amount: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delegate AMOUNT of your liquid balance to --to (a node, a genesis
    /// validator or a self-bonded account).
    Delegate {
        #[arg(long, value_name = "DID")]
        to: Did,
        amount: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Set the commission, in basis points (100 = 1 %), that --target keeps
    /// from its stakers' rewards [default target: the key's account]; a
    /// node's operator sets it for the node with --target NODE. At most the
    /// chain's `max_commission_bps` (genesis).
    Commission {
        bps: u32,
        #[arg(long, value_name = "DID")]
        target: Option<Did>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Put the key's account (a jailed validator candidate or node) back in
    /// play: from the next epoch boundary it may be in the validator set and
    /// earn staking rewards again. Allowed from the epoch after the one it
    /// was jailed in; never after a double sign.
    Unjail {
        #[command(flatten)]
        conn: Conn,
    },
    /// An account's delegations and unbondings [default: the key's account],
    /// then the network's staking overview.
    Show {
        did: Option<Did>,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Debug, Subcommand)]
pub enum GovCmd {
    /// Propose a parameter change (--param NAME --value V) or a treasury
    /// spend (--spend-to DID --amount A), locking --deposit.
    Propose {
        /// default_quorum, default_replicas, staking_share_bps, speed_ceiling,
        /// region_spread_permille, k_anonymity, validator_set_size,
        /// unbonding_epochs, or contribution_weight:KIND (fuel, uptime, data,
        /// storage, report).
        #[arg(long, value_name = "NAME", conflicts_with_all = ["spend_to", "amount"])]
        param: Option<String>,
        /// The new value; `none` gives a gateway knob back to each gateway's
        /// own configuration.
        #[arg(long, requires = "param")]
        value: Option<String>,
        /// Treasury spend: the recipient.
        #[arg(long, value_name = "DID", requires = "amount")]
        spend_to: Option<Did>,
        /// Treasury spend: the amount.
        #[arg(long, requires = "spend_to")]
        amount: Option<String>,
        /// Deposit locked until the tally (returned unless vetoed).
        #[arg(long)]
        deposit: String,
        #[arg(long)]
        title: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Vote on proposal ID: yes, no, abstain or veto.
    Vote {
        id: u64,
        option: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// A proposal with its live tally, or every proposal.
    Show {
        id: Option<u64>,
        #[command(flatten)]
        conn: Conn,
    },
}

fn amount(text: &str) -> Result<u128> {
    parse_amount(text)
        .map_err(|e| anyhow!("{text:?} is not an amount (\"12.5 LODE\" or base units): {e}"))
}

fn tokens(v: &Value) -> String {
    format_tokens(v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0))
}

/// Signs `message` with the key (chain and next nonce from the gateway),
/// submits it, and prints the result.
fn submit<T: SignedEntry>(
    conn: &Conn,
    what: String,
    message: impl FnOnce(Hash32) -> T,
    extra: impl FnOnce(&Client, &EntryStatus) -> Result<Value>,
) -> Result<ExitCode> {
    let kf = load_key(conn.key.clone())?;
    let c = Client::new(&conn.gateway)?;
    let entry = c.sign_entry(&kf.keypair, None, message)?;
    let st = c
        .submit_entry(&entry)
        .with_context(|| format!("{what} was refused; nothing was stored"))?;
    let more = extra(&c, &st)?;
    if conn.json {
        let mut v = serde_json::to_value(&st)?;
        if let (Value::Object(m), Value::Object(x)) = (&mut v, more) {
            m.extend(x);
        }
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!(
            "{what}: {} in block {} (nonce {})",
            st.status,
            st.height.map_or("?".into(), |h| h.to_string()),
            st.nonce
        );
        if let Value::Object(x) = more {
            for (k, v) in x {
                println!("{k}: {v}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn no_extra(_: &Client, _: &EntryStatus) -> Result<Value> {
    Ok(Value::Null)
}

pub fn run_stake(cmd: StakeCmd) -> Result<ExitCode> {
    match cmd {
        StakeCmd::Bond { amount: a, conn } => {
            let a = amount(&a)?;
            submit(
                &conn,
                format!("bond of {}", format_tokens(a)),
                |chain| Bond { chain, amount: a },
                no_extra,
            )
        }
        StakeCmd::Unbond {
            from,
            amount: a,
            conn,
        } => {
            let a = amount(&a)?;
            submit(
                &conn,
                format!("unbonding of {} from {from}", format_tokens(a)),
                |chain| Unbond {
                    chain,
                    from,
                    amount: a,
                },
                no_extra,
            )
        }
        StakeCmd::Delegate {
            to,
            amount: a,
            conn,
        } => {
            let a = amount(&a)?;
            submit(
                &conn,
                format!("delegation of {} to {to}", format_tokens(a)),
                |chain| Delegate {
                    chain,
                    to,
                    amount: a,
                },
                no_extra,
            )
        }
        StakeCmd::Commission { bps, target, conn } => {
            if bps > lode_ledger::entry::FULL_BPS {
                bail!("commission {bps} bps is more than 100 % (10000 bps)");
            }
            let target = did_or_own(target, &conn)?;
            submit(
                &conn,
                format!(
                    "commission of {target} set to {bps} bps ({}.{:02} %)",
                    bps / 100,
                    bps % 100
                ),
                |chain| SetCommission { chain, target, bps },
                no_extra,
            )
        }
        StakeCmd::Unjail { conn } => submit(
            &conn,
            "unjail".to_string(),
            |chain| Unjail { chain },
            |c, _| {
                let epoch = c.get_json::<Value>("/v1/staking")?["epoch"].clone();
                Ok(json!({
                    "unjailed_in_epoch": epoch,
                    "note": "back in the validator set and earning staking rewards from the next epoch boundary",
                }))
            },
        ),
        StakeCmd::Show { did, conn } => stake_show(did, &conn),
    }
}

/// `did`, or the key's own account.
fn did_or_own(did: Option<Did>, conn: &Conn) -> Result<Did> {
    match did {
        Some(d) => Ok(d),
        None => Ok(load_key(conn.key.clone())?.did()),
    }
}

fn stake_show(did: Option<Did>, conn: &Conn) -> Result<ExitCode> {
    let did = did_or_own(did, conn)?;
    let c = Client::new(&conn.gateway)?;
    let acct: Value = c.get_json(&format!("/v1/staking/{did}"))?;
    let overview: Value = c.get_json("/v1/staking")?;
    if conn.json {
        println!(
            "{}",
            serde_json::to_string(&json!({ "account": acct, "network": overview }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("account    {did}");
    println!("liquid     {}", tokens(&acct["balance"]));
    println!("bonded     {}", tokens(&acct["bonded"]));
    println!("unbonding  {}", tokens(&acct["unbonding"]));
    for d in acct["delegations"].as_array().into_iter().flatten() {
        println!(
            "  behind {}  {}  (commission {} bps)",
            d["target"].as_str().unwrap_or("?"),
            tokens(&d["amount"]),
            d["commission_bps"]
        );
    }
    for u in acct["unbondings"].as_array().into_iter().flatten() {
        println!(
            "  unbonding from {}  {}  liquid at the close of epoch {}",
            u["from"].as_str().unwrap_or("?"),
            tokens(&u["amount"]),
            u["released_at_close_of_epoch"]
        );
    }
    println!(
        "network    epoch {}, bonded {}, treasury {}, APR {}",
        overview["epoch"],
        tokens(&overview["bonded"]),
        tokens(&overview["treasury"]),
        overview["apr_bps"]
            .as_u64()
            .map_or("n/a (no recent epochs)".into(), |b| format!(
                "{}.{:02} %",
                b / 100,
                b % 100
            ))
    );
    for t in overview["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .take(20)
    {
        println!(
            "  {} {}  power {}  commission {} bps{}",
            t["kind"].as_str().unwrap_or("?"),
            t["target"].as_str().unwrap_or("?"),
            tokens(&t["power"]),
            t["commission_bps"],
            if t["jailed"].as_bool() == Some(true) {
                "  (jailed)"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--param NAME --value V` as a typed change (the ledger range-checks it again).
fn param_change(name: &str, value: &str) -> Result<ParamChange> {
    let v = value.trim();
    let opt_u32 = || -> Result<Option<u32>> {
        if v.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        Ok(Some(v.parse().with_context(|| {
            format!("--value {v:?} for {name} is not a whole number (or `none`)")
        })?))
    };
    let num = || -> Result<u64> {
        v.parse()
            .with_context(|| format!("--value {v:?} for {name} is not a whole number"))
    };
    let small = |n: u64| -> Result<u32> {
        u32::try_from(n).map_err(|_| anyhow!("--value {n} for {name} is too large"))
    };
    Ok(match name {
        "default_quorum" => ParamChange::DefaultQuorum(opt_u32()?),
        "default_replicas" => ParamChange::DefaultReplicas(opt_u32()?),
        "staking_share_bps" => ParamChange::StakingShareBps(small(num()?)?),
        "speed_ceiling" => ParamChange::SpeedCeiling(if v.eq_ignore_ascii_case("none") {
            None
        } else {
            Some(num()?)
        }),
        "region_spread_permille" => ParamChange::RegionSpreadPermille(opt_u32()?),
        "k_anonymity" => ParamChange::KAnonymity(opt_u32()?),
        "validator_set_size" => ParamChange::ValidatorSetSize(small(num()?)?),
        "unbonding_epochs" => ParamChange::UnbondingEpochs(num()?),
        other => {
            match other.strip_prefix("contribution_weight:") {
                Some(kind) => {
                    let kind: ContributionKind = serde_json::from_value(json!(kind)).map_err(|_| {
                    anyhow!("unknown contribution kind {kind:?}: fuel, uptime, data, storage or report")
                })?;
                    ParamChange::ContributionWeight {
                        kind,
                        weight: num()?,
                    }
                }
                None => bail!(
                    "unknown parameter {other:?}: governance can change default_quorum, default_replicas, \
                 staking_share_bps, speed_ceiling, region_spread_permille, k_anonymity, \
                 validator_set_size, unbonding_epochs and contribution_weight:KIND"
                ),
            }
        }
    })
}

fn vote_option(s: &str) -> Result<VoteOption> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "yes" => VoteOption::Yes,
        "no" => VoteOption::No,
        "abstain" => VoteOption::Abstain,
        "veto" | "no_with_veto" | "nowithveto" => VoteOption::Veto,
        other => bail!("unknown vote {other:?}: yes, no, abstain or veto"),
    })
}

pub fn run_gov(cmd: GovCmd) -> Result<ExitCode> {
    match cmd {
        GovCmd::Propose {
            param,
            value,
            spend_to,
            amount: spend,
            deposit,
            title,
            conn,
        } => {
            let change = match (param, value, spend_to, spend) {
                (Some(p), Some(v), None, None) => param_change(&p, &v)?,
                (Some(_), None, ..) => bail!("--param needs --value"),
                (None, None, Some(to), Some(a)) => ParamChange::TreasurySpend {
                    to,
                    amount: amount(&a)?,
                },
                _ => bail!(
                    "say what to change: --param NAME --value V, or --spend-to DID --amount A"
                ),
            };
            let deposit = amount(&deposit)?;
            let c = Client::new(&conn.gateway)?;
            let before: Value = c.get_json("/v1/gov/proposals")?;
            let id = before["next_proposal"].as_u64().unwrap_or(0);
            let what = format!(
                "proposal {:?} ({}) with a deposit of {}",
                title,
                serde_json::to_string(&change)?,
                format_tokens(deposit)
            );
            submit(
                &conn,
                what,
                |chain| Propose {
                    chain,
                    change,
                    deposit,
                    title,
                },
                |c, st| {
                    // The id the ledger gave it: the next id before, unless
                    // another proposal went in first; check by proposer.
                    let me = st.account.clone();
                    let next = c
                        .get_json::<Value>("/v1/gov/proposals")?
                        .get("next_proposal")
                        .and_then(Value::as_u64)
                        .unwrap_or(id + 1);
                    for i in (id..next).rev() {
                        let p: Value = c.get_json(&format!("/v1/gov/proposals/{i}"))?;
                        if p["proposer"].as_str() == Some(me.as_str()) {
                            return Ok(json!({
                                "proposal": i,
                                "voting_end_epoch": p["voting_end_epoch"],
                            }));
                        }
                    }
                    Ok(json!({ "proposal": Value::Null }))
                },
            )
        }
        GovCmd::Vote { id, option, conn } => {
            let option = vote_option(&option)?;
            submit(
                &conn,
                format!("vote {option:?} on proposal {id}"),
                |chain| Vote {
                    chain,
                    proposal: id,
                    option,
                },
                no_extra,
            )
        }
        GovCmd::Show { id, conn } => {
            let c = Client::new(&conn.gateway)?;
            let v: Value = match id {
                Some(i) => c.get_json(&format!("/v1/gov/proposals/{i}"))?,
                None => c.get_json("/v1/gov/proposals")?,
            };
            if conn.json {
                println!("{}", serde_json::to_string(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            let list = match id {
                Some(_) => vec![v.clone()],
                None => v["proposals"].as_array().cloned().unwrap_or_default(),
            };
            if list.is_empty() {
                println!("no proposals yet (open epoch {})", v["epoch"]);
            }
            for p in list {
                let t = &p["tally"];
                println!(
                    "#{} {:?} by {}: {} — deposit {}, voting epochs {}..={}, status {}{}",
                    p["id"],
                    p["title"].as_str().unwrap_or(""),
                    p["proposer"].as_str().unwrap_or("?"),
                    p["change"],
                    tokens(&p["deposit"]),
                    p["submitted_epoch"],
                    p["voting_end_epoch"],
                    p["status"].as_str().unwrap_or("?"),
                    p["outcome_if_tallied_now"]
                        .as_str()
                        .map_or(String::new(), |o| format!(" (if tallied now: {o})")),
                );
                println!(
                    "   tally{}: yes {}  no {}  abstain {}  veto {}  of {} bonded",
                    if p["tally_is_live"].as_bool() == Some(true) {
                        " (live)"
                    } else {
                        ""
                    },
                    tokens(&t["yes"]),
                    tokens(&t["no"]),
                    tokens(&t["abstain"]),
                    tokens(&t["veto"]),
                    tokens(&t["bonded"]),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
