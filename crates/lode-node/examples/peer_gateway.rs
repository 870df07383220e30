//! A stand-alone copy of the test peer (`tests/peer/mod.rs`): a minimal gateway that
//! speaks the node-channel contract, for measuring a real `lode node` process
//! (see `bench/idle_rss.sh`). It is not the Lode gateway: it schedules nothing.
//!
//! ```text
//! cargo run --release -p lode-node --example peer_gateway -- [PORT] [UNITS]
//! ```
//!
//! Prints `listening on http://127.0.0.1:PORT`, queues UNITS sha256 units (stdin =
//! the unit index), and prints a line each time the number of reports changes.

#[path = "../tests/peer/mod.rs"]
mod peer;

use lode_proto::Hash32;
use lode_proto::wire::{Assignment, UnitInput, UnitLimits, UnitRef};
use std::io::Write;
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let units: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let wasm = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/jobs/wasm/sha256.wasm"),
    )
    .expect("examples/jobs/wasm/sha256.wasm");
    let mut state = peer::PeerState::new();
    state.poll_timeout_ms = 20_000;
    state.heartbeat_timeout_ms = 60_000;
    let module = state.add_module(wasm);
    let p = peer::Peer::start(state, port);
    let job = Hash32::sha256(b"peer-gateway-job");
    for i in 0..units {
        p.push(Assignment {
            unit: UnitRef { job, unit: i },
            module,
            input: UnitInput {
                stdin: i.to_string().into_bytes(),
                args: vec![],
            },
            limits: UnitLimits::default(),
            deadline_ms: u64::MAX,
        });
    }
    println!("listening on {}", p.url());
    let _ = std::io::stdout().flush();
    let mut last = usize::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let (reports, hellos) = p.with(|s| (s.reports.len(), s.hellos.len()));
        if reports != last {
            last = reports;
            println!("reports {reports} hellos {hellos}");
            let _ = std::io::stdout().flush();
        }
    }
}
