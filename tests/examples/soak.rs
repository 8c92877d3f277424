//! The outbound soak with faults and crashes ([`wagate_tests::soak`]): prints the audit table
//! and exits non-zero on any violation.
//!
//! ```sh
//! cargo build -p outbound-sender
//! bash scripts/moto.sh start 4573   # AWS_ENDPOINT_URL etc. as scripts/test.sh exports them
//! cargo run -p wagate-tests --example soak -- --messages 10000 --tenants 50 --faults 0.2 --kills 120
//! ```
//!
//! Options: `--messages N` (1000), `--tenants N` (20), `--faults P` (0.2), `--servers N` (6),
//! `--instances N` (3), `--kills N` (100), `--seed N` (17), `--bin-dir DIR` (`target/debug`),
//! `--backlog N` (200: the most messages waiting in the queue at once; the rest are fed as it
//! drains). Every 10 s it prints what each poller and sender process is doing (the stall
//! report).

use std::path::PathBuf;

use wagate_tests::soak::{Options, run};

fn options() -> anyhow::Result<Options> {
    let mut opts = Options::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--messages" => opts.messages = value.parse()?,
            "--tenants" => opts.tenants = value.parse()?,
            "--faults" => opts.faults = value.parse()?,
            "--servers" => opts.servers = value.parse()?,
            "--instances" => opts.instances = value.parse()?,
            "--kills" => opts.kills = value.parse()?,
            "--seed" => opts.seed = value.parse()?,
            "--backlog" => opts.backlog = value.parse()?,
            "--bin-dir" => opts.bin_dir = PathBuf::from(value),
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    Ok(opts)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let opts = options()?;
    eprintln!("soak: {opts:?}");
    let report = run(opts).await?;
    println!("| audit | count |\n|---|---|\n{}", report.table());
    for v in report.violations.iter().take(50) {
        eprintln!("VIOLATION {v}");
    }
    if !report.violations.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
