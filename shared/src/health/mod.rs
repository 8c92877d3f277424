//! Health: what the health check observes and decides. This file holds the per-tenant
//! counters and the failover/failback decision; [`records`] the per-endpoint health record
//! and history points; [`store`] the storage traits (the health check's, and the config
//! API's reads); [`dynamo`] their DynamoDB adapter.
//!
//! Everything but `dynamo` is pure (no I/O).
//!
//! ## The decision ([`decide`])
//!
//! Each run observes, for each of a tenant's endpoints, whether it is usable: the server
//! answered `/health` and the tenant's device on it is logged in ([`Observation`]). The
//! tenant's counters ([`TenantHealth`]) carry over from run to run:
//!
//! - `active_failures`: consecutive runs in which the active endpoint was unusable;
//! - `primary_successes`: consecutive runs in which the primary was usable while the tenant
//!   was on its backup (0 on the primary, capped at `failback_after`: see
//!   [`TenantHealth::settled`]).
//!
//! An [`Observation::Unknown`] (not probed before the deadline, device list unavailable)
//! leaves a counter as it was: missing information is neither a failure nor a success.
//!
//! - **Failover**: the active endpoint failed `failover_after` consecutive runs (default 3)
//!   and the other endpoint is usable in this run.
//! - **Failback**: the tenant is on its backup, the primary was usable `failback_after`
//!   consecutive runs (default 5), and the tenant's failback policy is automatic.
//!
//! A switch resets both counters. A flapping server never strings together enough failures to
//! fail over, nor enough successes to fail back: any success resets the failure streak, any
//! failure resets the success streak, so a tenant does not ping-pong.

pub mod dynamo;
pub mod records;
pub mod silence;
pub mod standby;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::tenant::{ConnectionStatus, EndpointRole, FailbackPolicy};

pub use records::{
    EndpointHealth, EndpointUse, HISTORY_RETENTION, HealthPoint, ProbeResult, latency_ms,
};

/// The hysteresis thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hysteresis {
    /// Consecutive failed runs of the active endpoint before failing over (N).
    pub failover_after: u32,
    /// Consecutive healthy runs of the primary before failing back (M).
    pub failback_after: u32,
}

impl Default for Hysteresis {
    fn default() -> Self {
        Self {
            failover_after: 3,
            failback_after: 5,
        }
    }
}

/// What one run found about one of a tenant's endpoints (its server and its device there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The server is up and the device is logged in.
    Usable,
    /// The server did not answer `/health` in time or answered an error.
    ServerDown { reason: String },
    /// The server is up but the device is not logged in (or not on the server).
    LoggedOut,
    /// Not known in this run (not probed before the deadline, device list unavailable).
    Unknown,
}

impl Observation {
    /// `Some(true)` usable, `Some(false)` unusable, `None` unknown.
    pub fn usable(&self) -> Option<bool> {
        match self {
            Observation::Usable => Some(true),
            Observation::ServerDown { .. } | Observation::LoggedOut => Some(false),
            Observation::Unknown => None,
        }
    }

    /// The tenant's connection status if this endpoint is the active one.
    pub fn status(&self) -> ConnectionStatus {
        match self {
            Observation::Usable => ConnectionStatus::Connected,
            Observation::ServerDown { .. } => ConnectionStatus::EndpointDown,
            Observation::LoggedOut => ConnectionStatus::LoggedOut,
            Observation::Unknown => ConnectionStatus::Unknown,
        }
    }

    /// A short reason for logs and audit records.
    pub fn reason(&self) -> String {
        match self {
            Observation::Usable => "usable".into(),
            Observation::ServerDown { reason } => format!("server down: {reason}"),
            Observation::LoggedOut => "device logged out".into(),
            Observation::Unknown => "unknown".into(),
        }
    }
}

/// The per-tenant counters the health check keeps on the tenant's item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantHealth {
    /// Consecutive runs in which the active endpoint was unusable.
    #[serde(default, rename = "healthActiveFailures")]
    pub active_failures: u32,
    /// Consecutive runs in which the primary endpoint was usable while the tenant was on
    /// its backup (0 on the primary, at most `failback_after`).
    #[serde(default, rename = "healthPrimarySuccesses")]
    pub primary_successes: u32,
}

/// What [`decide`] needs to know about a tenant in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantView {
    /// The stored active endpoint.
    pub active: EndpointRole,
    pub failback: FailbackPolicy,
    pub primary: Observation,
    /// `None` when the tenant has no backup.
    pub backup: Option<Observation>,
}

/// Failover or failback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchKind {
    Failover,
    Failback,
}

impl SwitchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchKind::Failover => "failover",
            SwitchKind::Failback => "failback",
        }
    }
}

/// A switch of the tenant's active endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    pub kind: SwitchKind,
    pub from: EndpointRole,
    pub to: EndpointRole,
    pub reason: String,
}

/// The outcome of [`decide`]: counters and status to store, and maybe a switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub health: TenantHealth,
    /// The status of the endpoint that is active after the decision.
    pub status: ConnectionStatus,
    pub switch: Option<Switch>,
}

fn bump(counter: u32, usable: Option<bool>, on: bool) -> u32 {
    match usable {
        Some(u) if u == on => counter.saturating_add(1),
        Some(_) => 0,
        None => counter,
    }
}

/// The failover/failback decision with hysteresis (see the module docs).
pub fn decide(view: &TenantView, prev: TenantHealth, h: Hysteresis) -> Decision {
    // A stored "backup" without a backup endpoint routes to the primary (TenantConfig::active).
    let active = match (&view.backup, view.active) {
        (Some(_), EndpointRole::Backup) => EndpointRole::Backup,
        _ => EndpointRole::Primary,
    };
    let observed = |role: EndpointRole| -> &Observation {
        match (role, &view.backup) {
            (EndpointRole::Backup, Some(b)) => b,
            _ => &view.primary,
        }
    };
    let active_obs = observed(active);
    let health = TenantHealth {
        active_failures: bump(prev.active_failures, active_obs.usable().map(|u| !u), true),
        primary_successes: bump(prev.primary_successes, view.primary.usable(), true),
    };
    let other = match active {
        EndpointRole::Primary => EndpointRole::Backup,
        EndpointRole::Backup => EndpointRole::Primary,
    };
    let other_usable = view.backup.is_some() && observed(other).usable() == Some(true);

    let switch = if health.active_failures >= h.failover_after.max(1) && other_usable {
        Some(Switch {
            // Off a failing backup onto a healthy primary is a failover too: the manual
            // failback policy governs leaving a healthy backup only.
            kind: SwitchKind::Failover,
            from: active,
            to: other,
            reason: format!(
                "{:?} endpoint unusable for {} consecutive runs ({}); {:?} is healthy",
                active,
                health.active_failures,
                active_obs.reason(),
                other
            )
            .to_lowercase(),
        })
    } else if active == EndpointRole::Backup
        && view.failback == FailbackPolicy::Automatic
        && health.primary_successes >= h.failback_after.max(1)
    {
        Some(Switch {
            kind: SwitchKind::Failback,
            from: EndpointRole::Backup,
            to: EndpointRole::Primary,
            reason: format!(
                "primary endpoint healthy for {} consecutive runs",
                health.primary_successes
            ),
        })
    } else {
        None
    };

    match switch {
        Some(s) => Decision {
            health: TenantHealth::default(),
            status: observed(s.to).status(),
            switch: Some(s),
        },
        None => Decision {
            health: health.settled(active, h),
            status: active_obs.status(),
            switch: None,
        },
    }
}

impl TenantHealth {
    /// The counters with the part that cannot influence a later decision dropped, so that a
    /// steady state stores the same values run after run (and the health check, which only
    /// writes a tenant whose stored state changed, writes nothing):
    ///
    /// - on the primary, the primary's success streak is 0: only a tenant on its backup
    ///   fails back, and reaching the backup (a switch) resets the streak anyway;
    /// - on the backup, the streak stops at `failback_after`: every value from there on
    ///   decides the same (a manual-failback tenant on a healthy primary stops counting).
    ///
    /// The failure streak is kept as is (it is shown to operators; a failing tenant is
    /// written every run regardless, since its status was observed again).
    pub fn settled(self, active: EndpointRole, h: Hysteresis) -> TenantHealth {
        TenantHealth {
            active_failures: self.active_failures,
            primary_successes: match active {
                EndpointRole::Primary => 0,
                EndpointRole::Backup => self.primary_successes.min(h.failback_after.max(1)),
            },
        }
    }
}

/// What a probe says about one tenant's endpoint on that server. `None` probe: not probed.
pub fn observe(probe: Option<&ProbeResult>, device_id: Option<&str>) -> Observation {
    let Some(p) = probe else {
        return Observation::Unknown;
    };
    if !p.up {
        return Observation::ServerDown {
            reason: p.error.clone().unwrap_or_else(|| "unhealthy".into()),
        };
    }
    let Some(devices) = &p.devices else {
        return Observation::Unknown;
    };
    let logged_in = match device_id {
        Some(id) => devices.iter().any(|d| d.device_id == id && d.logged_in),
        // No device named: the server's single session (GOWA without X-Device-Id).
        None => devices.iter().any(|d| d.logged_in),
    };
    if logged_in {
        Observation::Usable
    } else {
        Observation::LoggedOut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::DeviceStatus;
    use EndpointRole::{Backup, Primary};
    use Observation::*;

    fn down() -> Observation {
        ServerDown {
            reason: "could not connect".into(),
        }
    }

    fn view(active: EndpointRole, primary: Observation, backup: Option<Observation>) -> TenantView {
        TenantView {
            active,
            failback: FailbackPolicy::Automatic,
            primary,
            backup,
        }
    }

    /// Runs `decide` over a sequence of (primary, backup) observations, applying switches.
    fn replay(
        start: EndpointRole,
        policy: FailbackPolicy,
        runs: &[(Observation, Observation)],
    ) -> Vec<(EndpointRole, Option<SwitchKind>)> {
        let mut active = start;
        let mut health = TenantHealth::default();
        let mut out = Vec::new();
        for (p, b) in runs {
            let mut v = view(active, p.clone(), Some(b.clone()));
            v.failback = policy;
            let d = decide(&v, health, Hysteresis::default());
            health = d.health;
            if let Some(s) = &d.switch {
                active = s.to;
            }
            out.push((active, d.switch.map(|s| s.kind)));
        }
        out
    }

    #[test]
    fn fails_over_on_the_nth_failed_run_and_not_before() {
        let runs = vec![(down(), Usable); 3];
        let out = replay(Primary, FailbackPolicy::Automatic, &runs);
        assert_eq!(out[0], (Primary, None));
        assert_eq!(out[1], (Primary, None));
        assert_eq!(out[2], (Backup, Some(SwitchKind::Failover)));
    }

    #[test]
    fn does_not_fail_over_to_an_unhealthy_backup() {
        let runs = vec![(down(), LoggedOut); 6];
        let out = replay(Primary, FailbackPolicy::Automatic, &runs);
        assert!(out.iter().all(|o| *o == (Primary, None)), "{out:?}");
    }

    #[test]
    fn fails_back_on_the_mth_healthy_run_and_not_before() {
        let mut runs = vec![(down(), Usable); 3];
        runs.extend(vec![(Usable, Usable); 5]);
        let out = replay(Primary, FailbackPolicy::Automatic, &runs);
        assert_eq!(out[2].0, Backup);
        for (i, o) in out.iter().enumerate().take(7).skip(3) {
            assert_eq!(*o, (Backup, None), "run {i}");
        }
        assert_eq!(out[7], (Primary, Some(SwitchKind::Failback)));
    }

    #[test]
    fn manual_failback_stays_on_the_healthy_backup() {
        let mut runs = vec![(down(), Usable); 3];
        runs.extend(vec![(Usable, Usable); 20]);
        let out = replay(Primary, FailbackPolicy::Manual, &runs);
        assert_eq!(out[2], (Backup, Some(SwitchKind::Failover)));
        assert!(out[3..].iter().all(|o| *o == (Backup, None)));
    }

    #[test]
    fn a_flapping_primary_neither_fails_over_nor_fails_back() {
        let flap: Vec<_> = (0..20)
            .map(|i| (if i % 2 == 0 { down() } else { Usable }, Usable))
            .collect();
        let out = replay(Primary, FailbackPolicy::Automatic, &flap);
        assert!(out.iter().all(|o| *o == (Primary, None)), "{out:?}");

        // Already on the backup: a primary up 4 runs, down 1, ... never fails back.
        let mut runs = vec![(down(), Usable); 3];
        for _ in 0..5 {
            runs.extend(vec![(Usable, Usable); 4]);
            runs.push((down(), Usable));
        }
        let out = replay(Primary, FailbackPolicy::Automatic, &runs);
        let switches = out.iter().filter(|o| o.1.is_some()).count();
        assert_eq!(switches, 1, "only the first failover: {out:?}");
    }

    #[test]
    fn steady_states_keep_the_same_counters_run_after_run() {
        let h = Hysteresis::default();
        // Healthy on the primary: nothing moves, whatever was stored before.
        let d = decide(
            &view(Primary, Usable, Some(Usable)),
            TenantHealth::default(),
            h,
        );
        assert_eq!(d.health, TenantHealth::default());
        let d2 = decide(&view(Primary, Usable, Some(Usable)), d.health, h);
        assert_eq!(d2.health, d.health);
        let d = decide(&view(Primary, Usable, None), TenantHealth::default(), h);
        assert_eq!(d.health, TenantHealth::default());

        // Manual failback on a healthy primary: the streak stops at M.
        let mut v = view(Backup, Usable, Some(Usable));
        v.failback = FailbackPolicy::Manual;
        let mut health = TenantHealth::default();
        let mut seen = Vec::new();
        for _ in 0..8 {
            let d = decide(&v, health, h);
            assert_eq!(d.switch, None);
            health = d.health;
            seen.push(health.primary_successes);
        }
        assert_eq!(seen, [1, 2, 3, 4, 5, 5, 5, 5]);
        // ...and an operator turning failback back to automatic fails back at once.
        v.failback = FailbackPolicy::Automatic;
        let d = decide(&v, health, h);
        assert_eq!(d.switch.map(|s| s.kind), Some(SwitchKind::Failback));
    }

    #[test]
    fn unknown_runs_neither_count_nor_reset() {
        let runs = vec![
            (down(), Usable),
            (Unknown, Usable),
            (down(), Usable),
            (down(), Usable),
        ];
        let out = replay(Primary, FailbackPolicy::Automatic, &runs);
        assert_eq!(out[2], (Primary, None));
        assert_eq!(out[3], (Backup, Some(SwitchKind::Failover)));
    }

    #[test]
    fn a_tenant_without_backup_only_gets_a_status() {
        let mut health = TenantHealth::default();
        for _ in 0..10 {
            let d = decide(
                &view(Primary, LoggedOut, None),
                health,
                Hysteresis::default(),
            );
            assert_eq!(d.switch, None);
            assert_eq!(d.status, ConnectionStatus::LoggedOut);
            health = d.health;
        }
        assert_eq!(health.active_failures, 10);
    }

    #[test]
    fn a_failing_backup_moves_back_to_a_healthy_primary() {
        let mut health = TenantHealth::default();
        let mut last = None;
        for _ in 0..3 {
            let d = decide(
                &view(Backup, Usable, Some(down())),
                health,
                Hysteresis {
                    failover_after: 3,
                    failback_after: 100,
                },
            );
            health = d.health;
            last = d.switch;
        }
        let s = last.expect("switched");
        assert_eq!(
            (s.from, s.to, s.kind),
            (Backup, Primary, SwitchKind::Failover)
        );
    }

    #[test]
    fn observation_maps_probe_and_device() {
        let dev = |id: &str, logged_in: bool| DeviceStatus {
            device_id: id.into(),
            connected: true,
            logged_in,
            jid: None,
        };
        let up = ProbeResult {
            up: true,
            latency_ms: 3.0,
            error: None,
            devices: Some(vec![dev("a", true), dev("b", false)]),
            error_class: None,
        };
        assert_eq!(observe(Some(&up), Some("a")), Usable);
        assert_eq!(observe(Some(&up), Some("b")), LoggedOut);
        assert_eq!(observe(Some(&up), Some("zz")), LoggedOut);
        assert_eq!(observe(None, Some("a")), Unknown);
        let no_list = ProbeResult {
            devices: None,
            ..up.clone()
        };
        assert_eq!(observe(Some(&no_list), Some("a")), Unknown);
        let down = ProbeResult {
            up: false,
            latency_ms: 500.0,
            error: Some("timed out".into()),
            devices: None,
            error_class: Some("timeout".into()),
        };
        assert_eq!(
            observe(Some(&down), Some("a")).status(),
            ConnectionStatus::EndpointDown
        );
    }
}
