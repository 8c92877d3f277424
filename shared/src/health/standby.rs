//! Backup readiness as the health check records it (issue 15, item 3: "the dashboard shows
//! readiness on the tenant and fleet views"). The tenant view reads the standby live
//! (`GET /tenants/{id}/status`'s `standby`); the fleet view cannot ask every tenant's server
//! on each load, so the health check keeps its verdict on the tenant's item (attribute
//! `standby`) and the fleet reads it back with the tenants' activity.
//!
//! Each run the health check already observes every endpoint of every tenant (its server's
//! `/health` and its device in the server's device list). The standby endpoint (the one a
//! failover or failback would go to) is:
//!
//! - `server_down` when its server did not answer;
//! - `device_not_logged_in` when its device is not logged in there (or not on the server);
//! - otherwise its device webhook is read back (only where wagate wired it) when the verdict
//!   could change: the stored verdict is for another config version or role, or was not
//!   ready. A standby recorded ready for the same version is not read again each run (the
//!   read happens again right before any automatic switch, which it gates);
//! - an unknown observation (not probed in time) keeps the stored verdict.
//!
//! The item is written only when the verdict changes (`since` says when it last did). Pure:
//! no I/O here.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Observation;
use crate::tenant::EndpointRole;

/// The verdict as stored on the tenant's item (attribute `standby`) and shown by the fleet
/// view (`GET /admin/tenant-activity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StandbyNote {
    /// The endpoint a failover (or failback) would go to.
    pub role: EndpointRole,
    pub ready: bool,
    /// Why not: `server_down`, `device_not_logged_in`, `webhook_not_wired`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The same in words (never a secret: the wiring check's description).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The config version the verdict was made for.
    pub config_version: u64,
    /// When the health check first reached this verdict (kept while it stays the same).
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

impl StandbyNote {
    /// Same verdict (role, readiness, reasons, detail, version), whatever `since` says.
    pub fn same_verdict(&self, other: &StandbyNote) -> bool {
        self.role == other.role
            && self.ready == other.ready
            && self.reasons == other.reasons
            && self.detail == other.detail
            && self.config_version == other.config_version
    }
}

/// What this run's observation of the standby says before any webhook read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing learnt: keep the stored verdict.
    Keep,
    /// Not ready, for this reason (no read needed).
    NotReady {
        reason: &'static str,
        detail: String,
    },
    /// Server up and device logged in, and the stored verdict already says ready for this
    /// role and version: ready, without a read.
    StillReady,
    /// Server up and device logged in: read the webhook back to decide.
    CheckWiring,
}

/// The first step of the verdict for `role` at `version`, given this run's observation and
/// the stored verdict.
pub fn step(
    observation: &Observation,
    role: EndpointRole,
    version: u64,
    stored: Option<&StandbyNote>,
) -> Step {
    match observation {
        Observation::Unknown => Step::Keep,
        Observation::ServerDown { reason } => Step::NotReady {
            reason: "server_down",
            detail: format!("its server does not answer ({reason})"),
        },
        Observation::LoggedOut => Step::NotReady {
            reason: "device_not_logged_in",
            detail: "its device is not logged in (link it: QR code or pairing code)".into(),
        },
        Observation::Usable => match stored {
            Some(s) if s.ready && s.role == role && s.config_version == version => Step::StillReady,
            _ => Step::CheckWiring,
        },
    }
}

/// The note to store, from the verdict and the stored note (`since` kept when the verdict is
/// the same). `None` when nothing needs writing.
pub fn next(
    role: EndpointRole,
    version: u64,
    verdict: Result<(), (&'static str, String)>,
    stored: Option<&StandbyNote>,
    now: OffsetDateTime,
) -> Option<StandbyNote> {
    let (ready, reasons, detail) = match verdict {
        Ok(()) => (true, Vec::new(), None),
        Err((reason, detail)) => (false, vec![reason.to_string()], Some(detail)),
    };
    let mut note = StandbyNote {
        role,
        ready,
        reasons,
        detail,
        config_version: version,
        since: now,
    };
    match stored {
        Some(s) if s.same_verdict(&note) => None,
        Some(s) if s.ready == note.ready && s.reasons == note.reasons && s.role == note.role => {
            // Same verdict for a newer version (or reworded): keep when it started.
            note.since = s.since;
            Some(note)
        }
        _ => Some(note),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-12-01 04:00 UTC);
    const T1: OffsetDateTime = datetime!(2026-12-01 04:01 UTC);

    fn ready(role: EndpointRole, version: u64) -> StandbyNote {
        StandbyNote {
            role,
            ready: true,
            reasons: Vec::new(),
            detail: None,
            config_version: version,
            since: T0,
        }
    }

    #[test]
    fn a_down_server_or_a_logged_out_device_is_not_ready_without_a_read() {
        let down = Observation::ServerDown {
            reason: "timeout".into(),
        };
        assert!(matches!(
            step(&down, EndpointRole::Backup, 1, None),
            Step::NotReady {
                reason: "server_down",
                ..
            }
        ));
        assert!(matches!(
            step(&Observation::LoggedOut, EndpointRole::Backup, 1, None),
            Step::NotReady {
                reason: "device_not_logged_in",
                ..
            }
        ));
    }

    #[test]
    fn a_usable_standby_is_read_back_unless_already_ready_for_this_version_and_role() {
        let stored = ready(EndpointRole::Backup, 3);
        let usable = Observation::Usable;
        assert_eq!(
            step(&usable, EndpointRole::Backup, 3, Some(&stored)),
            Step::StillReady
        );
        assert_eq!(
            step(&usable, EndpointRole::Backup, 4, Some(&stored)),
            Step::CheckWiring
        );
        assert_eq!(
            step(&usable, EndpointRole::Primary, 3, Some(&stored)),
            Step::CheckWiring
        );
        assert_eq!(
            step(&usable, EndpointRole::Backup, 3, None),
            Step::CheckWiring
        );
        let mut not_ready = stored.clone();
        not_ready.ready = false;
        assert_eq!(
            step(&usable, EndpointRole::Backup, 3, Some(&not_ready)),
            Step::CheckWiring
        );
    }

    #[test]
    fn an_unknown_observation_keeps_the_stored_verdict() {
        assert_eq!(
            step(&Observation::Unknown, EndpointRole::Backup, 1, None),
            Step::Keep
        );
    }

    #[test]
    fn the_same_verdict_is_not_written_again_and_a_change_starts_a_new_since() {
        let stored = ready(EndpointRole::Backup, 2);
        assert_eq!(
            next(EndpointRole::Backup, 2, Ok(()), Some(&stored), T1),
            None
        );
        let changed = next(
            EndpointRole::Backup,
            2,
            Err(("server_down", "its server does not answer (timeout)".into())),
            Some(&stored),
            T1,
        )
        .unwrap();
        assert!(!changed.ready);
        assert_eq!(changed.reasons, ["server_down"]);
        assert_eq!(changed.since, T1);
        // Still ready at a newer version: written (the version), since kept.
        let newer = next(EndpointRole::Backup, 3, Ok(()), Some(&stored), T1).unwrap();
        assert_eq!((newer.config_version, newer.since), (3, T0));
    }
}
