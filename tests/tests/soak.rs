//! The outbound soak's CI size ([`wagate_tests::soak`]): 1,000 messages of 50 tenants
//! through the real queue, DLQ and `outbound-sender` binary, 20 % faults of every kind the
//! simulators inject, servers going down and up, and SIGKILLs of the sender at aimed points;
//! the books must balance. The full run is `cargo run -p wagate-tests --example soak` (see
//! BENCHMARKS.md).
//!
//! Builds the `outbound-sender` binary first (a no-op when it is up to date), so the run
//! never drives a stale one.

use wagate_tests::soak::{Options, run};

fn build_sender() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "-q", "-p", "outbound-sender"])
        .current_dir(wagate_tests::workspace_root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build -p outbound-sender failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_key_of_a_faulty_crashing_run_has_exactly_one_final_state_and_no_unexplained_duplicate()
 {
    build_sender();
    let opts = Options {
        messages: 1000,
        tenants: 50,
        faults: 0.2,
        kills: 20,
        // Lambda's floor (at least the function timeout), to keep the CI run short.
        visibility: std::time::Duration::from_secs(8),
        // A run that has not drained by then fails on its lost keys.
        max_wall: std::time::Duration::from_secs(600),
        ..Options::default()
    };
    let report = run(opts).await.expect("the soak runs");
    println!("{}", report.table());

    assert!(
        report.violations.is_empty(),
        "{} violations, first ones: {:#?}",
        report.violations.len(),
        &report.violations[..report.violations.len().min(20)]
    );
    assert_eq!(
        report.states.values().sum::<usize>(),
        1000,
        "every key has a state"
    );
    assert!(report.kills_total() >= 20, "kills: {:?}", report.kills);
    for fault in [
        "server_error",
        "reset",
        "accept_then_hang",
        "too_many_requests",
        "logged_out",
        "slow",
    ] {
        assert!(
            report.chaos.get(fault).is_some_and(|n| *n > 0),
            "{fault} never injected: {:?}",
            report.chaos
        );
    }
    assert!(report.downs > 0, "no server went down");
}
