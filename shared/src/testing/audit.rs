//! [`MemoryAudit`]: the audit table in memory.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use super::{UNAVAILABLE, decode_cursor, encode_cursor};
use crate::audit::{AuditEntry, AuditReader};
use crate::tenant::TenantId;
use crate::tenant::store::{Page, StoreError};

/// The audit table in memory: every record, and whether it is on the switch stream (the
/// health check's automatic switches).
#[derive(Debug, Default)]
pub struct MemoryAudit {
    entries: Mutex<Vec<(AuditEntry, bool)>>,
    unavailable: AtomicBool,
}

impl MemoryAudit {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a record (what a config change writes beside the config).
    pub fn record(&self, entry: AuditEntry) {
        self.lock().push((entry, false));
    }

    /// Appends an automatic switch's record (on the switch stream).
    pub fn record_switch(&self, entry: AuditEntry) {
        self.lock().push((entry, true));
    }

    /// Every record of `partition` (a tenant id, or `#server/<id>`), oldest first.
    pub fn of(&self, partition: &str) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = self
            .lock()
            .iter()
            .filter(|(e, _)| e.tenant_id == partition)
            .map(|(e, _)| e.clone())
            .collect();
        out.sort_by(|a, b| a.at.cmp(&b.at));
        out
    }

    /// Every record, in the order written.
    pub fn all(&self) -> Vec<AuditEntry> {
        self.lock().iter().map(|(e, _)| e.clone()).collect()
    }

    /// While set, every read fails as an unreachable DynamoDB would.
    pub fn set_unavailable(&self, on: bool) {
        self.unavailable.store(on, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(AuditEntry, bool)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.unavailable.load(Ordering::SeqCst) {
            Err(StoreError::Backend(UNAVAILABLE.into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl AuditReader for MemoryAudit {
    async fn page(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<AuditEntry>, StoreError> {
        self.check()?;
        let before = match cursor {
            None => None,
            Some(c) => Some(
                decode_cursor(c)
                    .filter(|s| !s.is_empty() && s.len() <= 200)
                    .ok_or(StoreError::InvalidCursor)?,
            ),
        };
        let mut newest_first = self.of(tenant.as_str());
        newest_first.reverse();
        let rest: Vec<AuditEntry> = newest_first
            .into_iter()
            .filter(|e| before.as_ref().is_none_or(|b| &e.at < b))
            .collect();
        let limit = limit.clamp(1, 1000) as usize;
        let next_cursor = (rest.len() > limit).then(|| encode_cursor(&rest[limit - 1].at));
        Ok(Page {
            items: rest.into_iter().take(limit).collect(),
            next_cursor,
        })
    }

    async fn switches_since(
        &self,
        since: &str,
        max: usize,
    ) -> Result<(Vec<AuditEntry>, bool), StoreError> {
        self.check()?;
        let mut switches: Vec<AuditEntry> = self
            .lock()
            .iter()
            .filter(|(e, on_stream)| *on_stream && e.at.as_str() >= since)
            .map(|(e, _)| e.clone())
            .collect();
        switches.sort_by(|a, b| b.at.cmp(&a.at));
        let truncated = switches.len() > max;
        switches.truncate(max);
        Ok((switches, truncated))
    }
}
