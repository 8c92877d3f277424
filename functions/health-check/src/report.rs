//! What one run did ([`RunReport`]) and how it is told: CloudWatch EMF lines (one per
//! endpoint, one per switch, one for the run; see docs/health-check.md), the summary log
//! line, and the invocation's JSON answer.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;
use wagate::health::silence::SilentFlag;
use wagate::health::store::SwitchAudit;
use wagate::health::{EndpointHealth, SwitchKind};
use wagate::runtime::metrics::{EmfLine, NAMESPACE, Unit};

use crate::{RewireOutcome, SwitchBlocked, TenantOutcome};

/// What one run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub started_at: OffsetDateTime,
    pub duration: Duration,
    /// Listing the tenants, probing the servers, writing (endpoints, then tenants).
    pub phases: [Duration; 3],
    pub tenants: usize,
    /// Servers whose probe finished before the deadline.
    pub servers_probed: usize,
    /// Servers still unanswered at the deadline.
    pub servers_not_probed: usize,
    pub endpoints: Vec<EndpointHealth>,
    pub switches: Vec<SwitchAudit>,
    /// Issue 15: automatic switches not made because the target was not ready (its device
    /// webhook, which wagate wired, is no longer wired); each is a WARN and counts in the
    /// `SwitchesBlocked` metric.
    pub blocked: Vec<SwitchBlocked>,
    /// Issue 15: tenants "connected but silent" after this run, by tenant id (each counts in
    /// the `SilentTenants` metric and has a line of its own).
    pub silent: Vec<(String, SilentFlag)>,
    /// Issue 15: the newly active endpoints' device webhooks re-verified after this run's
    /// switches (wired, repaired, or failed: a WARN and `WebhookRewireFailures`).
    pub rewired: Vec<RewireOutcome>,
    pub outcomes: BTreeMap<String, TenantOutcome>,
    /// Version conflicts met (each followed by a re-read).
    pub conflicts: usize,
    /// Health-history points written (one per probed server) and not written.
    pub history_written: usize,
    pub history_unwritten: usize,
    pub errors: Vec<String>,
}

impl RunReport {
    /// Re-verifications after a switch with this result (`wired`, `repaired`, `failed`).
    pub fn rewired_count(&self, result: &str) -> usize {
        self.rewired.iter().filter(|r| r.result == result).count()
    }

    pub fn count(&self, kind: SwitchKind) -> usize {
        self.switches.iter().filter(|s| s.action == kind).count()
    }

    /// The run's EMF lines: one per endpoint, one per switch, one for the run.
    pub fn emf_lines(&self, now: OffsetDateTime) -> Vec<String> {
        let mut out = Vec::new();
        for e in &self.endpoints {
            out.push(
                EmfLine::new(NAMESPACE)
                    .dimension("Function", "health-check")
                    .dimension("Endpoint", e.endpoint_key.clone())
                    .metric("EndpointUp", if e.up { 1.0 } else { 0.0 }, Unit::Count)
                    .metric("ProbeLatency", e.latency_ms, Unit::Milliseconds)
                    .metric("EndpointTenants", f64::from(e.tenants), Unit::Count)
                    .metric(
                        "DevicesConnected",
                        f64::from(e.devices_connected.unwrap_or(0)),
                        Unit::Count,
                    )
                    .property("consecutiveFailures", e.consecutive_failures)
                    .property("activeTenants", e.active_tenants)
                    .render(now),
            );
        }
        for s in &self.switches {
            out.push(
                EmfLine::new(NAMESPACE)
                    .dimension("Function", "health-check")
                    .dimension("Switch", s.action.as_str())
                    .metric("EndpointSwitches", 1.0, Unit::Count)
                    .property("tenantId", s.tenant_id.clone())
                    .property("fromEndpoint", s.from_endpoint.clone())
                    .property("toEndpoint", s.to_endpoint.clone())
                    .property("reason", s.reason.clone())
                    .render(now),
            );
        }
        for (tenant, flag) in &self.silent {
            out.push(
                EmfLine::new(NAMESPACE)
                    .dimension("Function", "health-check")
                    .dimension("Silent", "tenant")
                    .metric("SilentTenant", 1.0, Unit::Count)
                    .property("tenantId", tenant.clone())
                    .property("sendsAccepted", flag.sends_accepted)
                    .property("windowMinutes", flag.window_minutes)
                    .property("since", wagate::timestamp::rfc3339(flag.since))
                    .render(now),
            );
        }
        out.push(
            EmfLine::new(NAMESPACE)
                .dimension("Function", "health-check")
                .metric("ServersProbed", self.servers_probed as f64, Unit::Count)
                .metric(
                    "ServersNotProbed",
                    self.servers_not_probed as f64,
                    Unit::Count,
                )
                .metric("TenantsChecked", self.tenants as f64, Unit::Count)
                .metric(
                    "Failovers",
                    self.count(SwitchKind::Failover) as f64,
                    Unit::Count,
                )
                .metric(
                    "Failbacks",
                    self.count(SwitchKind::Failback) as f64,
                    Unit::Count,
                )
                .metric("SwitchesBlocked", self.blocked.len() as f64, Unit::Count)
                .metric("SilentTenants", self.silent.len() as f64, Unit::Count)
                .metric(
                    "WebhooksRewired",
                    self.rewired_count("repaired") as f64,
                    Unit::Count,
                )
                .metric(
                    "WebhookRewireFailures",
                    self.rewired_count("failed") as f64,
                    Unit::Count,
                )
                .metric(
                    "RunDuration",
                    self.duration.as_millis() as f64,
                    Unit::Milliseconds,
                )
                .property("versionConflicts", self.conflicts)
                .property("errors", self.errors.len())
                .render(now),
        );
        out
    }
}

impl RunReport {
    /// The invocation's answer: what the run covered and changed.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "tenants": self.tenants,
            "serversProbed": self.servers_probed,
            "serversNotProbed": self.servers_not_probed,
            "failovers": self.count(SwitchKind::Failover),
            "failbacks": self.count(SwitchKind::Failback),
            "silentTenants": self.silent.len(),
            "durationMs": self.duration.as_millis() as u64,
        })
    }

    /// The run's summary log line (INFO).
    pub fn log(&self) {
        tracing::info!(
            tenants = self.tenants,
            servers_probed = self.servers_probed,
            servers_not_probed = self.servers_not_probed,
            failovers = self.count(SwitchKind::Failover),
            failbacks = self.count(SwitchKind::Failback),
            switches_blocked = self.blocked.len(),
            silent_tenants = self.silent.len(),
            conflicts = self.conflicts,
            errors = self.errors.len(),
            duration_ms = self.duration.as_millis() as u64,
            "health check run finished"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use wagate::tenant::EndpointRole;

    fn switch(kind: SwitchKind, tenant: &str) -> SwitchAudit {
        SwitchAudit {
            tenant_id: tenant.into(),
            at: "2026-01-01T00:00:00.000000Z#0".into(),
            who: "health-check".into(),
            action: kind,
            from: EndpointRole::Primary,
            to: EndpointRole::Backup,
            from_endpoint: "https://a.example.com".into(),
            to_endpoint: "https://b.example.com".into(),
            reason: "3 failed runs".into(),
            version_before: 1,
            version_after: 2,
        }
    }

    fn report() -> RunReport {
        RunReport {
            started_at: datetime!(2026-01-01 0:00 UTC),
            duration: Duration::from_millis(1234),
            phases: [Duration::ZERO; 3],
            tenants: 3,
            servers_probed: 2,
            servers_not_probed: 1,
            endpoints: Vec::new(),
            switches: vec![
                switch(SwitchKind::Failover, "t1"),
                switch(SwitchKind::Failover, "t2"),
                switch(SwitchKind::Failback, "t3"),
            ],
            outcomes: BTreeMap::new(),
            conflicts: 1,
            history_written: 2,
            history_unwritten: 0,
            blocked: Vec::new(),
            rewired: Vec::new(),
            silent: vec![(
                "t9".into(),
                SilentFlag {
                    since: datetime!(2026-01-01 0:00 UTC),
                    sends_accepted: 4,
                    window_minutes: 30,
                    last_event_at: None,
                },
            )],
            errors: vec!["x".into()],
        }
    }

    #[test]
    fn the_summary_counts_what_the_run_did() {
        assert_eq!(
            report().summary(),
            serde_json::json!({
                "tenants": 3, "serversProbed": 2, "serversNotProbed": 1,
                "failovers": 2, "failbacks": 1, "silentTenants": 1, "durationMs": 1234
            })
        );
    }

    #[test]
    fn one_emf_line_per_switch_and_silent_tenant_and_one_for_the_run() {
        let lines = report().emf_lines(datetime!(2026-01-01 0:01 UTC));
        assert_eq!(lines.len(), 3 + 1 + 1);
        let run: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        assert_eq!(run["SilentTenants"], 1.0);
        let silent: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
        assert_eq!(silent["tenantId"], "t9");
        assert_eq!(silent["SilentTenant"], 1.0);
        assert_eq!(silent["sendsAccepted"], 4);
        assert_eq!(run["Failovers"], 2.0);
        assert_eq!(run["Failbacks"], 1.0);
        assert_eq!(run["ServersNotProbed"], 1.0);
        assert_eq!(run["versionConflicts"], 1);
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["Switch"], "failover");
        assert_eq!(first["tenantId"], "t1");
    }
}
