//! health-check: whole runs against GOWA simulators over HTTP and moto_server. Each test
//! asserts what is stored (tenant status, active endpoint, version, endpoint record, audit)
//! and what each simulator received.

mod health_common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use gowa_sim::{DeviceState, Faults, SimHandle};
use health_check::{HealthCheck, TenantOutcome};
use health_common::*;
use wagate::audit::SWITCH_STREAM_INDEX;
use wagate::health::dynamo::{DynamoHealthStore, TENANT_ATTRIBUTES_WRITTEN};
use wagate::health::store::{
    HealthStore, HistoryWriteError, SwitchAudit, TenantRecord, TenantStateUpdate,
};
use wagate::health::{EndpointHealth, HealthPoint, SwitchKind};
use wagate::provider::Providers;
use wagate::tenant::store::{Page, StoreError, TenantConfigReader, TenantConfigStore};
use wagate::tenant::{EndpointRole, TenantId};

use DeviceState::{Connected, LoggedIn};

fn unhealthy(sim: &SimHandle, on: bool) {
    sim.set_faults(Faults {
        health_unhealthy: on,
        ..Faults::default()
    });
}

#[tokio::test]
async fn server_down_marks_its_tenant_endpoint_down() {
    let fx = fx(settings()).await;
    let wa = sim(&[("d1", LoggedIn)]).await;
    fx.add(config("acme", endpoint(&wa, "d1"), None)).await;
    wa.set_down(true).await.unwrap();

    let report = fx.run().await;

    let item = fx.item("acme").await;
    assert_eq!(s(&item, "connectionStatus"), "endpoint_down");
    assert_eq!(n(&item, "healthActiveFailures"), 1);
    assert_eq!(s(&item, "activeEndpoint"), "primary");
    assert_eq!(
        n(&item, "version"),
        1,
        "a status write is not a config change"
    );
    let rec = fx.endpoint_record(&wa).await.expect("endpoint record");
    assert!(!rec.up);
    assert_eq!(rec.consecutive_failures, 1);
    assert!(
        rec.last_error.as_deref().unwrap().contains("connect"),
        "{:?}",
        rec.last_error
    );
    assert_eq!(
        rec.devices_connected, None,
        "no device list from a dead server"
    );
    assert!(wa.requests().is_empty(), "nothing reached the server");
    assert!(report.switches.is_empty());
    assert_eq!(fx.audit("acme").await.len(), 0);
}

#[tokio::test]
async fn slow_server_past_the_probe_timeout_counts_as_down_without_holding_the_run() {
    let fx = fx(settings()).await; // probe timeout 3 s
    let slow = sim(&[("d1", LoggedIn)]).await;
    let fine = sim(&[("d2", LoggedIn)]).await;
    fx.add(config("slow", endpoint(&slow, "d1"), None)).await;
    fx.add(config("fine", endpoint(&fine, "d2"), None)).await;
    // The slow server never answers: a run that waited for it would never end. (No bound
    // on how long the run may take: that would measure the machine.)
    slow.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });

    let report = tokio::time::timeout(Duration::from_secs(300), fx.run())
        .await
        .expect("the run waited for a server that never answers");

    assert_eq!(report.servers_not_probed, 0, "{report:?}");
    assert_eq!(
        s(&fx.item("slow").await, "connectionStatus"),
        "endpoint_down"
    );
    assert_eq!(s(&fx.item("fine").await, "connectionStatus"), "connected");
    let rec = fx.endpoint_record(&slow).await.unwrap();
    assert!(!rec.up);
    assert!(rec.last_error.unwrap().contains("timed out"));
    // Cut at the probe timeout: at least the timeout, whatever the machine.
    assert!(rec.latency_ms >= 3000.0, "{}", rec.latency_ms);
    assert_eq!(slow.requests_to("/health").len(), 1);
    assert!(
        slow.requests_to("/devices").is_empty(),
        "no device list asked of a server that failed /health"
    );
    assert_eq!(fine.requests_to("/devices").len(), 1);
}

#[tokio::test]
async fn device_logged_out_on_a_healthy_server_is_logged_out_and_its_neighbour_connected() {
    let fx = fx(settings()).await;
    let wa = sim(&[("d1", LoggedIn), ("d2", Connected)]).await;
    fx.add(config("ok", endpoint(&wa, "d1"), None)).await;
    fx.add(config("out", endpoint(&wa, "d2"), None)).await;

    fx.run().await;

    assert_eq!(s(&fx.item("ok").await, "connectionStatus"), "connected");
    let out = fx.item("out").await;
    assert_eq!(s(&out, "connectionStatus"), "logged_out");
    assert!(out.contains_key("connectionStatusAt"));
    let rec = fx.endpoint_record(&wa).await.unwrap();
    assert!(rec.up);
    assert_eq!(
        (rec.devices_total, rec.devices_connected),
        (Some(2), Some(1))
    );
    let devices = wa.requests_to("/devices");
    assert_eq!(devices.len(), 1, "one device list for both tenants");
    assert_eq!(devices[0].basic_auth_user.as_deref(), Some(USER));
    assert!(devices[0].authorized);
    assert!(
        wa.requests_to("/app/status").is_empty(),
        "no per-device call"
    );
    assert!(
        wa.requests().iter().all(|r| r.method == "GET"),
        "nothing sent"
    );
}

#[tokio::test]
async fn shared_server_with_many_tenants_is_probed_once() {
    let mut st = settings();
    st.page_size = 5; // 12 tenants: the listing takes several pages
    let fx = fx(st).await;
    let ids: Vec<String> = (0..12).map(|i| format!("dev{i}")).collect();
    let devices: Vec<(&str, DeviceState)> = ids.iter().map(|d| (d.as_str(), LoggedIn)).collect();
    let wa = sim(&devices).await;
    for (i, d) in ids.iter().enumerate() {
        fx.add(config(&format!("t{i:02}"), endpoint(&wa, d), None))
            .await;
    }
    fx.stack.counter.reset();

    let report = fx.run().await;

    assert_eq!(report.tenants, 12);
    assert_eq!(report.servers_probed, 1);
    for i in 0..12 {
        assert_eq!(
            s(&fx.item(&format!("t{i:02}")).await, "connectionStatus"),
            "connected"
        );
    }
    assert_eq!(wa.requests_to("/health").len(), 1);
    assert_eq!(wa.requests_to("/devices").len(), 1);
    assert_eq!(wa.requests().len(), 2, "{:?}", wa.requests());
    assert_eq!(
        fx.stack.counter.count_op("KMS", "Decrypt"),
        1,
        "one credential opened for the server, not one per tenant"
    );
    assert!(
        fx.stack.counter.count_op("DynamoDB", "Scan") >= 3,
        "paginated"
    );
    let rec = fx.endpoint_record(&wa).await.unwrap();
    assert_eq!((rec.tenants, rec.active_tenants), (12, 12));
    assert_eq!(rec.devices_connected, Some(12));
}

#[tokio::test]
async fn fails_over_after_three_failed_runs_and_not_before() {
    let fx = fx(settings()).await;
    let primary = sim(&[("p1", LoggedIn)]).await;
    let backup = sim(&[("b1", LoggedIn)]).await;
    fx.add(config(
        "acme",
        endpoint(&primary, "p1"),
        Some(endpoint(&backup, "b1")),
    ))
    .await;
    primary.set_down(true).await.unwrap();

    for run in 1..=2 {
        let report = fx.run().await;
        let item = fx.item("acme").await;
        assert_eq!(s(&item, "activeEndpoint"), "primary", "run {run}");
        assert_eq!(s(&item, "connectionStatus"), "endpoint_down");
        assert_eq!(n(&item, "healthActiveFailures"), run);
        assert_eq!(n(&item, "version"), 1);
        assert!(report.switches.is_empty());
        assert!(fx.audit("acme").await.is_empty(), "run {run}");
    }

    let report = fx.run().await;

    let item = fx.item("acme").await;
    assert_eq!(s(&item, "activeEndpoint"), "backup");
    assert_eq!(s(&item, "connectionStatus"), "connected");
    assert_eq!(n(&item, "version"), 2, "a switch is a config change");
    assert_eq!(n(&item, "healthActiveFailures"), 0);
    assert_eq!(report.count(SwitchKind::Failover), 1);
    assert_eq!(
        report.outcomes["acme"],
        TenantOutcome::Switched(SwitchKind::Failover)
    );
    let audit = fx.audit("acme").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(s(&audit[0], "who"), "health-check");
    assert_eq!(s(&audit[0], "action"), "failover");
    assert_eq!(
        (s(&audit[0], "from").as_str(), s(&audit[0], "to").as_str()),
        ("primary", "backup")
    );
    assert_eq!(s(&audit[0], "toEndpoint"), normalize(&backup));
    assert!(s(&audit[0], "reason").contains("3 consecutive runs"));
    assert!(!format!("{audit:?}").contains(PASSWORD));
    assert!(primary.requests().is_empty());
    assert_eq!(backup.requests_to("/health").len(), 3);
    assert_eq!(backup.requests_to("/devices").len(), 3);
}

fn normalize(sim: &SimHandle) -> String {
    wagate::tenant::normalize_base_url(&sim.base_url()).unwrap()
}

#[tokio::test]
async fn fails_back_after_five_healthy_runs_and_not_before() {
    let fx = fx(settings()).await;
    let primary = sim(&[("p1", LoggedIn)]).await;
    let backup = sim(&[("b1", LoggedIn)]).await;
    let mut cfg = config(
        "acme",
        endpoint(&primary, "p1"),
        Some(endpoint(&backup, "b1")),
    );
    cfg.active_endpoint = EndpointRole::Backup;
    fx.add(cfg).await;

    for run in 1..=4 {
        fx.run().await;
        let item = fx.item("acme").await;
        assert_eq!(s(&item, "activeEndpoint"), "backup", "run {run}");
        assert_eq!(n(&item, "healthPrimarySuccesses"), run);
        assert!(fx.audit("acme").await.is_empty());
    }

    let report = fx.run().await;

    let item = fx.item("acme").await;
    assert_eq!(s(&item, "activeEndpoint"), "primary");
    assert_eq!(s(&item, "connectionStatus"), "connected");
    assert_eq!(n(&item, "version"), 2);
    assert_eq!(report.count(SwitchKind::Failback), 1);
    let audit = fx.audit("acme").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(s(&audit[0], "action"), "failback");
    assert_eq!(s(&audit[0], "from"), "backup");
    assert_eq!(s(&audit[0], "fromEndpoint"), normalize(&backup));
    assert_eq!(primary.requests_to("/health").len(), 5);
    assert_eq!(primary.requests_to("/devices").len(), 5);
}

#[tokio::test]
async fn manual_failback_tenant_stays_on_the_backup_after_m_healthy_runs() {
    let fx = fx(settings()).await;
    let primary = sim(&[("p1", LoggedIn)]).await;
    let backup = sim(&[("b1", LoggedIn)]).await;
    let mut cfg = config(
        "acme",
        endpoint(&primary, "p1"),
        Some(endpoint(&backup, "b1")),
    );
    cfg.failback = wagate::tenant::FailbackPolicy::Manual;
    fx.add(cfg).await;
    primary.set_down(true).await.unwrap();
    for _ in 0..3 {
        fx.run().await;
    }
    assert_eq!(s(&fx.item("acme").await, "activeEndpoint"), "backup");
    primary.set_down(false).await.unwrap();

    // M = 5 healthy runs of the primary, and more: no failback.
    for run in 1..=7u64 {
        fx.stack.counter.reset();
        let report = fx.run().await;
        assert!(report.switches.is_empty(), "run {run}");
        let item = fx.item("acme").await;
        assert_eq!(s(&item, "activeEndpoint"), "backup", "run {run}");
        assert_eq!(s(&item, "connectionStatus"), "connected");
        assert_eq!(n(&item, "healthPrimarySuccesses"), run.min(5), "run {run}");
        if run > 5 {
            assert_eq!(
                fx.stack.counter.count_op("DynamoDB", "UpdateItem"),
                0,
                "nothing left to count: no write (run {run})"
            );
        }
    }
    let item = fx.item("acme").await;
    assert_eq!(n(&item, "version"), 2, "only the failover");
    let audit = fx.audit("acme").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(s(&audit[0], "action"), "failover");
    assert_eq!(primary.requests_to("/health").len(), 7);
    assert_eq!(primary.requests_to("/devices").len(), 7);
}

#[tokio::test]
async fn flapping_server_does_not_make_tenants_ping_pong() {
    let fx = fx(settings()).await;
    let primary = sim(&[("p1", LoggedIn)]).await;
    let backup = sim(&[("b1", LoggedIn)]).await;
    fx.add(config(
        "acme",
        endpoint(&primary, "p1"),
        Some(endpoint(&backup, "b1")),
    ))
    .await;

    // Down, up, down, up...: never three failures in a row.
    for run in 0..8 {
        unhealthy(&primary, run % 2 == 0);
        fx.run().await;
        assert_eq!(s(&fx.item("acme").await, "activeEndpoint"), "primary");
    }
    assert_eq!(primary.requests_to("/health").len(), 8);
    assert_eq!(
        primary.requests_to("/devices").len(),
        4,
        "devices asked only when /health was up"
    );

    // A real outage: failover.
    unhealthy(&primary, true);
    for _ in 0..3 {
        fx.run().await;
    }
    assert_eq!(s(&fx.item("acme").await, "activeEndpoint"), "backup");

    // The primary comes back but flaps (4 up, 1 down): never five healthy runs in a row.
    for run in 0..10 {
        unhealthy(&primary, run % 5 == 4);
        fx.run().await;
        assert_eq!(
            s(&fx.item("acme").await, "activeEndpoint"),
            "backup",
            "run {run}"
        );
    }

    let item = fx.item("acme").await;
    assert_eq!(n(&item, "version"), 2, "exactly one switch");
    let audit = fx.audit("acme").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(s(&audit[0], "action"), "failover");
    assert_eq!(primary.requests_to("/health").len(), 21);
}

#[tokio::test]
async fn tenant_without_backup_only_gets_its_status() {
    let fx = fx(settings()).await;
    let wa = sim(&[("d1", Connected)]).await;
    fx.add(config("solo", endpoint(&wa, "d1"), None)).await;

    for _ in 0..5 {
        let report = fx.run().await;
        assert!(report.switches.is_empty());
    }

    let item = fx.item("solo").await;
    assert_eq!(s(&item, "connectionStatus"), "logged_out");
    assert_eq!(s(&item, "activeEndpoint"), "primary");
    assert_eq!(n(&item, "healthActiveFailures"), 5);
    assert_eq!(n(&item, "version"), 1);
    assert!(item.contains_key("healthCheckedAt"));
    assert!(fx.audit("solo").await.is_empty());
    assert_eq!(wa.requests_to("/health").len(), 5);
    assert_eq!(wa.requests_to("/devices").len(), 5);
}

/// Forwards to the real store, but the first time `write_tenant_state` is called for the
/// tenant it first lets the config API update the config (a real conditional update).
struct RacingStore {
    inner: Arc<dyn HealthStore>,
    tenants: wagate::tenant::dynamo::DynamoTenantStore,
    racer: tokio::sync::Mutex<Option<wagate::SealedConfig>>,
    raced: AtomicBool,
}

#[async_trait]
impl HealthStore for RacingStore {
    async fn active_tenants_page(
        &self,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<Page<TenantRecord>, StoreError> {
        self.inner.active_tenants_page(cursor, page_size).await
    }
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        self.inner.tenant(id).await
    }
    async fn write_tenant_state(
        &self,
        id: &TenantId,
        expected_version: u64,
        update: &TenantStateUpdate,
    ) -> Result<(), StoreError> {
        if let Some(cfg) = self.racer.lock().await.take() {
            self.tenants.update(&cfg, cfg.version - 1).await.unwrap();
            self.raced.store(true, Ordering::SeqCst);
        }
        self.inner
            .write_tenant_state(id, expected_version, update)
            .await
    }
    async fn endpoints(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, EndpointHealth>, StoreError> {
        self.inner.endpoints(keys).await
    }
    async fn save_endpoints(&self, records: &[EndpointHealth]) -> Result<(), StoreError> {
        self.inner.save_endpoints(records).await
    }
    async fn put_audit(&self, record: &SwitchAudit) -> Result<(), StoreError> {
        self.inner.put_audit(record).await
    }
    async fn put_note(&self, record: &wagate::audit::AuditEntry) -> Result<(), StoreError> {
        self.inner.put_note(record).await
    }
    async fn set_silent(
        &self,
        id: &TenantId,
        flag: Option<&wagate::health::silence::SilentFlag>,
    ) -> Result<(), StoreError> {
        self.inner.set_silent(id, flag).await
    }
    async fn set_standby(
        &self,
        id: &TenantId,
        note: Option<&wagate::health::standby::StandbyNote>,
    ) -> Result<(), StoreError> {
        self.inner.set_standby(id, note).await
    }
    async fn save_history(&self, points: &[HealthPoint]) -> Result<(), HistoryWriteError> {
        self.inner.save_history(points).await
    }
}

#[tokio::test]
async fn config_update_racing_the_failover_is_not_lost() {
    let fx = fx(settings()).await;
    let primary = sim(&[("p1", LoggedIn)]).await;
    let backup = sim(&[("b1", LoggedIn)]).await;
    let cfg = config(
        "acme",
        endpoint(&primary, "p1"),
        Some(endpoint(&backup, "b1")),
    );
    fx.add(cfg.clone()).await;
    primary.set_down(true).await.unwrap();
    fx.run().await;
    fx.run().await;
    assert_eq!(n(&fx.item("acme").await, "healthActiveFailures"), 2);

    // Given the third run, which would fail over, races an operator's config change (the
    // config API's conditional update to version 2, raising the rate limit).
    let mut changed = cfg.clone();
    changed.limits.outbound_per_minute = 99;
    changed.version = 2;
    let racing = Arc::new(RacingStore {
        inner: fx.store.clone(),
        tenants: fx.tenants.clone(),
        racer: tokio::sync::Mutex::new(Some(fx.seal(&changed).await)),
        raced: AtomicBool::new(false),
    });
    let check = HealthCheck::new(
        racing.clone(),
        Arc::new(fx.sealer.clone()),
        Providers::new(fx.http.clone()),
        settings(),
    );

    let report = check
        .run(tokio::time::Instant::now() + Duration::from_secs(20))
        .await
        .unwrap();

    // Then the health check's write met the new version, re-read and decided again: the
    // config change stands, and since a config update keeps the health counters (two
    // failures), this third failed run fails over, on top of the changed config.
    assert!(racing.raced.load(Ordering::SeqCst));
    assert_eq!(report.conflicts, 1);
    assert_eq!(report.count(SwitchKind::Failover), 1);
    let item = fx.item("acme").await;
    assert_eq!(
        n(&item["limits"].as_m().unwrap().clone(), "outboundPerMinute"),
        99
    );
    assert_eq!(n(&item, "version"), 3);
    assert_eq!(s(&item, "activeEndpoint"), "backup");
    assert_eq!(s(&item, "connectionStatus"), "connected");
    assert_eq!(n(&item, "healthActiveFailures"), 0);
    let audit = fx.audit("acme").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(n(&audit[0], "versionBefore"), 2);
    assert_eq!(n(&audit[0], "versionAfter"), 3);
    assert!(primary.requests().is_empty());
    assert_eq!(backup.requests_to("/health").len(), 3);
}

#[tokio::test]
async fn config_update_between_failed_runs_does_not_delay_the_failover() {
    let fx = fx(settings()).await;
    let primary = sim(&[("p1", LoggedIn)]).await;
    let backup = sim(&[("b1", LoggedIn)]).await;
    let cfg = config(
        "acme",
        endpoint(&primary, "p1"),
        Some(endpoint(&backup, "b1")),
    );
    fx.add(cfg.clone()).await;
    primary.set_down(true).await.unwrap();
    fx.run().await;
    fx.run().await;
    let before_edit = fx.item("acme").await;
    assert_eq!(n(&before_edit, "healthActiveFailures"), 2);
    let status_at = s(&before_edit, "connectionStatusAt");

    // Given an operator's edit through the config API's journal (the one writer of configs)
    // between the second and the third failed run.
    let audit_table = fx.stack.env()["AUDIT_TABLE"].clone();
    let dynamodb = aws_sdk_dynamodb::Client::new(&fx.stack.sdk);
    let journal = config_api::audit::Journal::new(
        std::sync::Arc::new(wagate::tenant::dynamo::DynamoConfigJournal::new(
            dynamodb.clone(),
            fx.stack.tenants_table(),
            audit_table.clone(),
        )),
        std::sync::Arc::new(wagate::audit::dynamo::DynamoAuditLog::new(
            dynamodb,
            audit_table,
        )),
    );
    let current = fx
        .tenants
        .get(&"acme".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut changed = current.clone();
    changed.limits.outbound_per_minute = 77;
    changed.version = current.version + 1;
    journal
        .update(
            &current,
            &changed,
            config_api::audit::Change {
                who: "operator",
                action: config_api::audit::Action::Update,
                detail: None,
                moved: None,
            },
        )
        .await
        .unwrap();
    let edited = fx.item("acme").await;
    assert_eq!(n(&edited, "version"), 2);
    assert_eq!(
        n(&edited, "healthActiveFailures"),
        2,
        "the edit kept the counters"
    );
    assert_eq!(s(&edited, "connectionStatus"), "endpoint_down");
    assert_eq!(s(&edited, "connectionStatusAt"), status_at);

    // When the third failed run comes, then the tenant fails over in it, as without the edit.
    let report = fx.run().await;

    assert_eq!(report.count(SwitchKind::Failover), 1);
    assert_eq!(report.conflicts, 0, "the run read the edited config");
    let item = fx.item("acme").await;
    assert_eq!(s(&item, "activeEndpoint"), "backup");
    assert_eq!(n(&item, "version"), 3);
    assert_eq!(
        n(&item["limits"].as_m().unwrap().clone(), "outboundPerMinute"),
        77
    );
    let actions: Vec<String> = fx
        .audit("acme")
        .await
        .iter()
        .map(|a| s(a, "action"))
        .collect();
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(actions.contains(&"update".to_string()) && actions.contains(&"failover".to_string()));
}

#[tokio::test]
async fn removing_the_backup_in_a_config_update_removes_it_from_the_item() {
    let fx = fx(settings()).await;
    let primary = sim(&[("p1", LoggedIn)]).await;
    let backup = sim(&[("b1", LoggedIn)]).await;
    fx.add(config(
        "acme",
        endpoint(&primary, "p1"),
        Some(endpoint(&backup, "b1")),
    ))
    .await;
    fx.run().await;
    let current = fx
        .tenants
        .get(&"acme".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut changed = current.clone();
    changed.backup = None;
    changed.version = 2;

    fx.tenants.update(&changed, 1).await.unwrap();

    let item = fx.item("acme").await;
    assert!(!item.contains_key("backup"), "{item:?}");
    assert!(!item.contains_key("backupEndpointKey"), "{item:?}");
    assert_eq!(s(&item, "connectionStatus"), "connected", "kept");
    assert_eq!(
        fx.tenants
            .get(&"acme".parse().unwrap())
            .await
            .unwrap()
            .unwrap(),
        changed
    );
    assert!(
        fx.tenants
            .by_endpoint(&normalize(&backup))
            .await
            .unwrap()
            .is_empty(),
        "out of the backup index"
    );
}

#[tokio::test]
async fn healthy_tenants_on_their_primary_cost_no_tenant_write_per_run() {
    let fx = fx(settings()).await;
    let primary = sim(&[("p1", LoggedIn), ("p2", LoggedIn)]).await;
    let backup = sim(&[("b1", LoggedIn)]).await;
    fx.add(config(
        "duo",
        endpoint(&primary, "p1"),
        Some(endpoint(&backup, "b1")),
    ))
    .await;
    fx.add(config("solo", endpoint(&primary, "p2"), None)).await;

    // The first run records the status (unknown -> connected) of both, and duo's first
    // backup-readiness verdict (`standby`, issue 15: written only when it changes).
    fx.stack.counter.reset();
    let report = fx.run().await;
    assert_eq!(fx.stack.counter.count_op("DynamoDB", "UpdateItem"), 3);
    assert_eq!(report.outcomes["duo"], TenantOutcome::Written);
    let first = fx.endpoint_record(&primary).await.unwrap().last_probe_at;
    let written = fx.item("duo").await;
    assert_eq!(s(&written, "connectionStatus"), "connected");

    // Then, in the steady state, nothing is written to the tenants table...
    for run in 0..3 {
        fx.stack.counter.reset();
        let report = fx.run().await;
        assert_eq!(
            fx.stack.counter.count_op("DynamoDB", "UpdateItem"),
            0,
            "run {run}"
        );
        assert_eq!(report.outcomes["duo"], TenantOutcome::Unchanged);
        assert_eq!(report.outcomes["solo"], TenantOutcome::Unchanged);
        // One for the endpoint records, one for the health history.
        assert_eq!(fx.stack.counter.count_op("DynamoDB", "BatchWriteItem"), 2);
        assert_eq!(report.history_written, 2);
    }
    assert_eq!(fx.item("duo").await, written, "the item did not change");
    // ...while the server's record shows the last check.
    let rec = fx.endpoint_record(&primary).await.unwrap();
    assert!(rec.last_probe_at > first);
    assert_eq!(rec.consecutive_successes, 4);
    assert_eq!(primary.requests_to("/health").len(), 4);

    // And a change is written at once: the device logs out.
    assert!(primary.set_device_state("p2", DeviceState::Connected));
    fx.stack.counter.reset();
    let report = fx.run().await;
    assert_eq!(fx.stack.counter.count_op("DynamoDB", "UpdateItem"), 1);
    assert_eq!(report.outcomes["solo"], TenantOutcome::Written);
    assert_eq!(s(&fx.item("solo").await, "connectionStatus"), "logged_out");
}

#[tokio::test]
async fn run_ends_by_its_deadline_when_every_server_hangs() {
    let mut st = settings();
    st.probe_timeout = Duration::from_secs(1);
    st.concurrency = 2; // 8 hanging servers would take 4 s of probing
    // 1.5 s of probing, then all the time the writes may need on a busy machine: the run
    // does not wait for its deadline once it has written.
    st.write_reserve = Duration::from_secs(30);
    let fx = fx(st).await;
    let mut sims = Vec::new();
    for i in 0..8 {
        let wa = sim(&[("d", LoggedIn)]).await;
        wa.set_faults(Faults {
            hang: true,
            ..Faults::default()
        });
        fx.add(config(&format!("t{i}"), endpoint(&wa, "d"), None))
            .await;
        sims.push(wa);
    }

    let started = tokio::time::Instant::now();
    let report = fx
        .check
        .run(started + Duration::from_millis(31_500))
        .await
        .unwrap();

    // Without the cut at `deadline - write_reserve`, every server would be probed to its own
    // timeout (8 servers, 2 at a time, 1 s each): servers left unprobed are the proof, not a
    // wall-clock bound on the run (which would measure the machine).
    assert!(report.servers_not_probed > 0, "the deadline cut the probes");
    assert_eq!(report.servers_probed + report.servers_not_probed, 8);
    let mut down = 0;
    for i in 0..8 {
        match s(&fx.item(&format!("t{i}")).await, "connectionStatus").as_str() {
            "endpoint_down" => down += 1,
            "unknown" => {}
            other => panic!("t{i}: {other}"),
        }
    }
    assert_eq!(down, report.servers_probed, "probed ones timed out: down");
    for wa in &sims {
        assert!(wa.requests_to("/health").len() <= 1);
        assert!(wa.requests_to("/devices").is_empty());
    }
}

#[test]
fn iam_policy_allows_exactly_the_tenant_attributes_the_health_check_writes() {
    let raw =
        std::fs::read_to_string(wagate_tests::workspace_root().join("template.yaml")).unwrap();
    let start = raw
        .find("Sid: TenantsTableWriteStatusAndActiveEndpointOnly")
        .expect("statement");
    let rest = &raw[start..];
    let list_at = rest.find("dynamodb:Attributes:").unwrap();
    let listed: Vec<&str> = rest[list_at..]
        .lines()
        .skip(1)
        .map(str::trim)
        .take_while(|l| l.starts_with("- "))
        .map(|l| l.trim_start_matches("- "))
        .collect();
    assert_eq!(listed, TENANT_ATTRIBUTES_WRITTEN);
}

/// The health history of one server, oldest first (uncounted client).
async fn history(fx: &Fx, sim: &SimHandle) -> Vec<Item> {
    aws_sdk_dynamodb::Client::new(&fx.stack.sdk)
        .query()
        .table_name(fx.stack.health_history_table())
        .key_condition_expression("endpointKey = :k")
        .expression_attribute_values(":k", AttributeValue::S(normalize(sim)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

fn parse_at(at: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap()
}

#[tokio::test]
async fn each_run_writes_one_history_point_per_probed_server() {
    let fx = fx(settings()).await;
    let up = sim(&[("u1", LoggedIn), ("u2", Connected)]).await;
    let failing = sim(&[("f1", LoggedIn)]).await;
    let dead = sim(&[("x1", LoggedIn)]).await;
    fx.add(config("up1", endpoint(&up, "u1"), None)).await;
    fx.add(config(
        "up2",
        endpoint(&up, "u2"),
        Some(endpoint(&failing, "f1")),
    ))
    .await;
    fx.add(config("dead", endpoint(&dead, "x1"), None)).await;
    unhealthy(&failing, true);
    dead.set_down(true).await.unwrap();

    fx.stack.counter.reset();
    let before = time::OffsetDateTime::now_utc();
    let report = fx.run().await;
    let after = time::OffsetDateTime::now_utc();

    assert_eq!((report.history_written, report.history_unwritten), (3, 0));
    // Three points, in one BatchWriteItem (the endpoint records take another).
    assert_eq!(fx.stack.counter.count_op("DynamoDB", "BatchWriteItem"), 2);
    let points = history(&fx, &up).await;
    assert_eq!(points.len(), 1, "{points:?}");
    let p = &points[0];
    let at = s(p, "at");
    assert_eq!(at.len(), "2026-11-28T19:30:00.123Z".len(), "{at}");
    assert!(at.ends_with('Z') && at.as_bytes()[19] == b'.', "{at}");
    let t = parse_at(&at);
    assert!(
        t >= before.replace_millisecond(0).unwrap() && t <= after,
        "{at}"
    );
    assert_eq!(p["up"], AttributeValue::Bool(true));
    // Milliseconds to the microsecond (a loopback answer takes a fraction of one).
    assert!(nf(p, "latencyMs") >= 0.0, "{p:?}");
    assert_eq!(n(p, "tenants"), 2);
    assert_eq!(n(p, "devices"), 2);
    assert_eq!(
        n(p, "devicesConnected"),
        1,
        "u2 is connected, not logged in"
    );
    assert!(!p.contains_key("error"), "no error when up: {p:?}");
    assert_eq!(n(p, "expiresAt") as i64, t.unix_timestamp() + 24 * 3600);

    // The server answering 503: down, with its latency and the status as the error.
    let points = history(&fx, &failing).await;
    assert_eq!(points.len(), 1);
    let p = &points[0];
    assert_eq!(s(p, "at"), at, "one probe time per run");
    assert_eq!(p["up"], AttributeValue::Bool(false));
    assert_eq!(s(p, "error"), "http 503");
    assert!(p.contains_key("latencyMs"), "it answered: {p:?}");
    assert_eq!(n(p, "tenants"), 1);
    assert!(!p.contains_key("devices") && !p.contains_key("devicesConnected"));

    // The dead server: down, no answer, so no latency.
    let points = history(&fx, &dead).await;
    assert_eq!(points.len(), 1);
    let p = &points[0];
    assert_eq!(p["up"], AttributeValue::Bool(false));
    assert_eq!(s(p, "error"), "connect");
    assert!(!p.contains_key("latencyMs"), "{p:?}");
    let raw = format!("{points:?}");
    assert!(!raw.contains(PASSWORD) && !raw.contains(USER), "{raw}");

    // The next run adds a point per server; the history keeps both.
    fx.run().await;
    let points = history(&fx, &up).await;
    assert_eq!(points.len(), 2);
    assert!(s(&points[0], "at") < s(&points[1], "at"));
}

#[tokio::test]
async fn a_failed_history_write_is_a_warning_and_the_run_goes_on() {
    let fx = fx(settings()).await;
    let primary = sim(&[("p1", LoggedIn)]).await;
    let backup = sim(&[("b1", LoggedIn)]).await;
    fx.add(config(
        "acme",
        endpoint(&primary, "p1"),
        Some(endpoint(&backup, "b1")),
    ))
    .await;
    primary.set_down(true).await.unwrap();
    let env = fx.stack.env();
    let store = DynamoHealthStore::new(
        fx.stack.dynamodb.clone(),
        fx.stack.tenants_table(),
        env["ENDPOINTS_TABLE"].clone(),
        env["AUDIT_TABLE"].clone(),
    )
    .with_history_table(format!("{}-no-such-table", fx.stack.provisioned.stack_name));
    let check = HealthCheck::new(
        Arc::new(store),
        Arc::new(fx.sealer.clone()),
        Providers::new(fx.http.clone()),
        settings(),
    );

    let logs = wagate_tests::LogCapture::start();
    let mut report = None;
    for _ in 0..3 {
        report = Some(
            check
                .run(tokio::time::Instant::now() + Duration::from_secs(20))
                .await
                .unwrap(),
        );
    }
    let report = report.unwrap();

    assert_eq!((report.history_written, report.history_unwritten), (0, 2));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        report.count(SwitchKind::Failover),
        1,
        "failover not blocked"
    );
    assert_eq!(s(&fx.item("acme").await, "activeEndpoint"), "backup");
    let text = logs.text();
    let warn = text
        .lines()
        .find(|l| l.contains("writing the health history failed"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(warn.contains("\"level\":\"WARN\""), "{warn}");
    assert!(warn.contains("\"count\":2"), "{warn}");
}

#[tokio::test]
async fn switch_audit_records_are_on_the_switch_stream_index() {
    let fx = fx(settings()).await;
    let primary = sim(&[("p1", LoggedIn)]).await;
    let backup = sim(&[("b1", LoggedIn)]).await;
    fx.add(config(
        "acme",
        endpoint(&primary, "p1"),
        Some(endpoint(&backup, "b1")),
    ))
    .await;
    // A config API audit record of another tenant (no switchStream) stays off the index.
    aws_sdk_dynamodb::Client::new(&fx.stack.sdk)
        .put_item()
        .table_name(fx.stack.audit_table())
        .item("tenantId", AttributeValue::S("other".into()))
        .item(
            "at",
            AttributeValue::S(
                time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap(),
            ),
        )
        .item("who", AttributeValue::S("admin".into()))
        .item("action", AttributeValue::S("config_updated".into()))
        .send()
        .await
        .unwrap();
    primary.set_down(true).await.unwrap();
    for _ in 0..3 {
        fx.run().await;
    }
    let audit = fx.audit("acme").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(s(&audit[0], "switchStream"), "switch");

    // The last 24 h of automatic switches, across tenants.
    let since = (time::OffsetDateTime::now_utc() - time::Duration::hours(24))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let found = aws_sdk_dynamodb::Client::new(&fx.stack.sdk)
        .query()
        .table_name(fx.stack.audit_table())
        .index_name(SWITCH_STREAM_INDEX)
        .key_condition_expression("switchStream = :s AND #at >= :since")
        .expression_attribute_names("#at", "at")
        .expression_attribute_values(":s", AttributeValue::S("switch".into()))
        .expression_attribute_values(":since", AttributeValue::S(since))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(s(&found[0], "tenantId"), "acme");
    assert_eq!(s(&found[0], "action"), "failover");
    assert_eq!(s(&found[0], "at"), s(&audit[0], "at"));
}

#[tokio::test]
async fn a_warm_instance_reuses_opened_credentials_until_they_change() {
    let fx = fx(settings()).await;
    let wa = sim(&[("d1", LoggedIn)]).await;
    let cfg = config("acme", endpoint(&wa, "d1"), None);
    fx.add(cfg.clone()).await;

    fx.stack.counter.reset();
    fx.run().await;
    assert_eq!(fx.stack.counter.count_op("KMS", "Decrypt"), 1);

    // The next runs open nothing: same tenant, same sealed credential.
    for _ in 0..2 {
        fx.stack.counter.reset();
        fx.run().await;
        assert_eq!(fx.stack.counter.count_op("KMS", "Decrypt"), 0);
    }
    assert_eq!(
        wa.requests_to("/devices").len(),
        3,
        "still listed every run"
    );
    assert_eq!(
        s(&fx.item("acme").await, "connectionStatus"),
        "connected",
        "the cached credential works"
    );

    // A rotated credential is a new ciphertext: opened again.
    let mut rotated = cfg.clone();
    rotated.version = 2;
    fx.tenants
        .update(&fx.seal(&rotated).await, 1)
        .await
        .unwrap();
    fx.stack.counter.reset();
    fx.run().await;
    assert_eq!(fx.stack.counter.count_op("KMS", "Decrypt"), 1);

    // Without reuse, every run opens it.
    let st = health_check::Settings {
        credential_ttl: Duration::ZERO,
        ..settings()
    };
    let check = HealthCheck::new(
        fx.store.clone(),
        Arc::new(fx.sealer.clone()),
        Providers::new(fx.http.clone()),
        st,
    );
    for _ in 0..2 {
        fx.stack.counter.reset();
        check
            .run(tokio::time::Instant::now() + Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(fx.stack.counter.count_op("KMS", "Decrypt"), 1);
    }
}
