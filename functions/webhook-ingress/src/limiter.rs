//! Per-instance, per-tenant token bucket for inbound webhooks. A flood guard: each Lambda
//! instance allows a tenant `inbound_per_second` webhooks per second with a burst of the
//! same size, so the effective limit scales with the number of warm instances.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::time::Instant;
use wagate::TenantId;

struct Bucket {
    tokens: f64,
    last: Instant,
}

type Clock = Box<dyn Fn() -> Instant + Send + Sync>;

/// Token buckets by tenant.
pub struct RateLimiter {
    buckets: Mutex<HashMap<TenantId, Bucket>>,
    /// Where "now" comes from: the monotonic clock, or a test's.
    clock: Clock,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::with_clock(Instant::now)
    }
}

impl RateLimiter {
    /// Buckets that refill by `clock` (a test stops it, so a slow machine refills nothing
    /// between two webhooks).
    pub fn with_clock(clock: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
            clock: Box::new(clock),
        }
    }

    /// Takes one token of `tenant`'s bucket (rate and burst `per_second`); false if empty.
    pub fn try_acquire(&self, tenant: &TenantId, per_second: u32) -> bool {
        let rate = f64::from(per_second.max(1));
        let now = (self.clock)();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = map.entry(tenant.clone()).or_insert(Bucket {
            tokens: rate,
            last: now,
        });
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn allows_the_burst_then_refills_at_the_rate() {
        let l = RateLimiter::default();
        let t: TenantId = "t".parse().unwrap();
        assert!((0..5).all(|_| l.try_acquire(&t, 5)));
        assert!(!l.try_acquire(&t, 5));
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(l.try_acquire(&t, 5));
        assert!(!l.try_acquire(&t, 5));
        let other: TenantId = "u".parse().unwrap();
        assert!(l.try_acquire(&other, 5), "tenants have separate buckets");
    }
}
