//! The health check's scale budget, measured (not asserted in the normal suite): 1,000 tenants
//! on 100 simulators with 100 ms latency on every route finish one run in under 5 s with at
//! most one `/health` and one `/devices` call per server. Run 1 follows the creation of the
//! tenants (every status goes from unknown to connected: 1,000 writes); runs 2 and 3 are the
//! steady state (no tenant write).
//!
//! ```sh
//! AWS_ENDPOINT_URL=http://127.0.0.1:4621 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=t \
//!   AWS_SECRET_ACCESS_KEY=t cargo test -p wagate-tests --test health_check_scale -- \
//!   --ignored --nocapture
//! ```

mod health_common;

use std::sync::Arc;
use std::time::Duration;

use gowa_sim::{DeviceState, Faults};
use health_common::*;
use tokio::task::JoinSet;

const SERVERS: usize = 100;
const TENANTS_PER_SERVER: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run explicitly, see the module docs"]
async fn thousand_tenants_on_a_hundred_slow_servers() {
    let mut st = settings();
    // HEALTH_SCALE_PAGE_SIZE=1000 lists in one page (no overlap of listing and probing).
    if let Some(n) = std::env::var("HEALTH_SCALE_PAGE_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        st.page_size = n;
    }
    eprintln!("page size {}", st.page_size);
    let fx = Arc::new(fx(st).await);
    let devices: Vec<String> = (0..TENANTS_PER_SERVER).map(|d| format!("dev{d}")).collect();
    let specs: Vec<(&str, DeviceState)> = devices
        .iter()
        .map(|d| (d.as_str(), DeviceState::LoggedIn))
        .collect();
    let mut sims = Vec::new();
    for _ in 0..SERVERS {
        let wa = sim(&specs).await;
        wa.set_faults(Faults {
            latency_ms: 100,
            ..Faults::default()
        });
        sims.push(wa);
    }
    let setup = std::time::Instant::now();
    let mut set = JoinSet::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(16));
    for (s, wa) in sims.iter().enumerate() {
        for (d, dev) in devices.iter().enumerate() {
            let mut cfg = config(&format!("t{s:03}-{d}"), endpoint(wa, dev), None);
            cfg.webhook_secrets.clear(); // one KMS seal per tenant is enough for the set-up
            let fx = fx.clone();
            let permits = permits.clone();
            set.spawn(async move {
                let _p = permits.acquire().await.unwrap();
                fx.add(cfg).await;
            });
        }
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    eprintln!(
        "set-up: {} tenants in {:?}",
        SERVERS * TENANTS_PER_SERVER,
        setup.elapsed()
    );

    for run in 1..=3 {
        fx.stack.counter.reset();
        for wa in &sims {
            wa.clear_requests();
        }
        let report = fx
            .check
            .run(tokio::time::Instant::now() + Duration::from_secs(49))
            .await
            .unwrap();
        let health_max = sims
            .iter()
            .map(|w| w.requests_to("/health").len())
            .max()
            .unwrap();
        let devices_max = sims
            .iter()
            .map(|w| w.requests_to("/devices").len())
            .max()
            .unwrap();
        let connected = report
            .endpoints
            .iter()
            .map(|e| e.devices_connected.unwrap_or(0))
            .sum::<u32>();
        eprintln!(
            "run {run}: {:?} (list {:?}, probe {:?}, write {:?}) | tenants {} | servers probed {} not probed {} | max /health per server {} | max /devices per server {} | devices connected {} | DynamoDB calls {} (UpdateItem {}, Scan {}, BatchWriteItem {}) | history points {} | KMS Decrypt {} | errors {}",
            report.duration,
            report.phases[0],
            report.phases[1],
            report.phases[2],
            report.tenants,
            report.servers_probed,
            report.servers_not_probed,
            health_max,
            devices_max,
            connected,
            fx.stack.counter.count("DynamoDB"),
            fx.stack.counter.count_op("DynamoDB", "UpdateItem"),
            fx.stack.counter.count_op("DynamoDB", "Scan"),
            fx.stack.counter.count_op("DynamoDB", "BatchWriteItem"),
            report.history_written,
            fx.stack.counter.count_op("KMS", "Decrypt"),
            report.errors.len(),
        );
        assert_eq!(report.tenants, SERVERS * TENANTS_PER_SERVER);
        assert_eq!(report.servers_probed, SERVERS);
        assert_eq!((health_max, devices_max), (1, 1));
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(
            report.history_written, SERVERS,
            "one history point per server"
        );
        if run > 1 {
            // The first run records every new tenant's status (unknown -> connected); from
            // then on nothing a tenant stores changes, and nothing is written per tenant.
            assert_eq!(fx.stack.counter.count_op("DynamoDB", "UpdateItem"), 0);
        }
    }
}
