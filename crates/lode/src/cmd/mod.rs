//! One module per role. Each exposes its clap arguments and a `run` function
//! returning the process exit code.

pub mod devnet;
pub mod gateway;
pub mod guard;
pub mod job;
pub mod keys;
pub mod ledger;
pub mod node;
pub mod sandbox;
pub mod stake;
pub mod storage;
pub mod validator;
pub mod wallet;
