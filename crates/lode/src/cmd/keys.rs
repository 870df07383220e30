//! `lode keys`: create, show and import identities.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use lode_proto::{EvmAddress, KeyFile};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create a new Ed25519 identity (did:key). Refuses to overwrite; file mode 0600.
    New {
        /// Where to write the key file [default: $LODE_HOME/identity.key, LODE_HOME defaults to ~/.lode]
        #[arg(long)]
        out: Option<PathBuf>,
        /// EVM address (EIP-55) where this node's rewards are claimed.
        #[arg(long)]
        payout: Option<EvmAddress>,
        /// Print a JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the did:key identity (and payout address) of a key file.
    Show {
        /// Key file [default: $LODE_HOME/identity.key]
        path: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Import an existing secret key (64 hex digits) from a file or stdin.
    Import {
        /// Where to write the key file.
        #[arg(long)]
        out: PathBuf,
        /// File holding the secret as hex; stdin when absent.
        #[arg(long)]
        from: Option<PathBuf>,
        #[arg(long)]
        payout: Option<EvmAddress>,
        #[arg(long)]
        json: bool,
    },
    /// Set or change the payout address bound to a key file.
    SetPayout { path: PathBuf, address: EvmAddress },
}

/// `$LODE_HOME`, or `~/.lode`.
pub fn lode_home() -> PathBuf {
    if let Some(h) = std::env::var_os("LODE_HOME") {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".lode")
}

pub fn default_key_path() -> PathBuf {
    lode_home().join("identity.key")
}

fn print_key(path: &Path, kf: &KeyFile, json: bool) {
    if json {
        let v = serde_json::json!({
            "path": path,
            "did": kf.did().to_string(),
            "payout_address": kf.payout_address.map(|a| a.to_string()),
        });
        println!("{v}");
    } else {
        println!("{}", kf.did());
        match kf.payout_address {
            Some(a) => println!("payout address: {a}"),
            None => println!(
                "payout address: (none; set one with `lode keys set-payout {} 0x…`)",
                path.display()
            ),
        }
    }
}

pub fn run(cmd: KeysCmd) -> Result<ExitCode> {
    match cmd {
        KeysCmd::New { out, payout, json } => {
            let path = out.unwrap_or_else(default_key_path);
            let kf = KeyFile::generate(payout)?;
            kf.save_new(&path)?;
            if !json {
                eprintln!("wrote {}", path.display());
            }
            print_key(&path, &kf, json);
        }
        KeysCmd::Show { path, json } => {
            let path = path.unwrap_or_else(default_key_path);
            let kf = KeyFile::load(&path)?;
            print_key(&path, &kf, json);
        }
        KeysCmd::Import {
            out,
            from,
            payout,
            json,
        } => {
            let text = match &from {
                Some(p) => std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?,
                None => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .context("reading the secret key from stdin")?;
                    s
                }
            };
            let keypair = match KeyFile::parse_secret_hex(&text) {
                Ok(k) => k,
                Err(e) => bail!("cannot import: {e}"),
            };
            let kf = KeyFile {
                keypair,
                payout_address: payout,
            };
            kf.save_new(&out)?;
            if !json {
                eprintln!("wrote {}", out.display());
            }
            print_key(&out, &kf, json);
        }
        KeysCmd::SetPayout { path, address } => {
            let mut kf = KeyFile::load(&path)?;
            kf.payout_address = Some(address);
            kf.save_replace(&path)?;
            print_key(&path, &kf, false);
        }
    }
    Ok(ExitCode::SUCCESS)
}
