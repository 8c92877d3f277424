//! The booking platform's side of the queues, for the local stack: a producer that puts an
//! `OutboundMessage` on the outbound queue and follows its delivery record (`wagate-dev send`),
//! a consumer of the inbound queue (`wagate-dev inbound`), and a contact's reply through the
//! simulator (`wagate-dev reply`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::delivery::store::DeliveryReader;
use wagate::delivery::{DeliveryError, DeliveryRecord, DeliveryState};
use wagate::inbound::{EventType, InboundEvent};
use wagate::outbound::{MessageContent, OutboundMessage};
use wagate::tenant::TenantId;

/// `KEY=VALUE` lines of an env file written by `wagate-dev provision --env-out` (values
/// plain or in single quotes; `#` comments).
pub fn read_env_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading {} (written by scripts/dev.sh; is the local stack running?)",
            path.display()
        )
    })?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or(value);
        out.insert(key.trim().to_owned(), value.to_owned());
    }
    Ok(out)
}

/// The local stack as its env file describes it.
#[derive(Debug, Clone)]
pub struct LocalStack {
    vars: BTreeMap<String, String>,
    source: String,
}

impl LocalStack {
    pub fn from_env_file(path: &Path) -> anyhow::Result<LocalStack> {
        Ok(LocalStack {
            vars: read_env_file(path)?,
            source: path.display().to_string(),
        })
    }

    /// A variable of the stack, or an error naming the file.
    pub fn var(&self, name: &str) -> anyhow::Result<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| anyhow!("{name} is not in {}", self.source))
    }

    /// SDK configuration for the stack's endpoint and region (dummy credentials).
    pub async fn sdk_config(&self) -> anyhow::Result<aws_config::SdkConfig> {
        let endpoint = self.var("AWS_ENDPOINT_URL")?;
        let region = self.var("AWS_REGION").unwrap_or("us-east-1");
        // moto_server accepts any credentials.
        let credentials = aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "wagate-devstack",
        );
        Ok(crate::sdk_config_for(endpoint, region, credentials).await)
    }

    /// The messages table, for following delivery records.
    pub fn delivery_store(
        &self,
        sdk: &aws_config::SdkConfig,
    ) -> anyhow::Result<DynamoDeliveryStore> {
        Ok(DynamoDeliveryStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            self.var("MESSAGES_TABLE")?,
            self.var("RATE_LIMITS_TABLE")?,
            Duration::from_secs(15 * 24 * 3600),
        ))
    }
}

/// What `wagate-dev send` sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    Image {
        url: String,
        caption: Option<String>,
    },
    Document {
        url: String,
        filename: Option<String>,
        caption: Option<String>,
    },
}

/// A fresh idempotency key: `dev-<UTC time>-<8 hex digits>`.
pub fn new_idempotency_key(now: OffsetDateTime) -> String {
    let mut bytes = [0u8; 4];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator works");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    format!("dev-{stamp}-{hex}")
}

/// Builds and validates an `OutboundMessage` as the producer contract says (the same rules
/// the sender applies): every problem is named, nothing is sent when there is one.
pub fn build_message(
    tenant: &str,
    to: &str,
    content: Content,
    key: String,
    reply_to: Option<String>,
) -> anyhow::Result<OutboundMessage> {
    let tenant_id: TenantId = tenant
        .parse()
        .map_err(|e| anyhow!("--tenant {tenant:?}: {e}"))?;
    let content = match content {
        Content::Text(body) => MessageContent::Text { body },
        Content::Image { url, caption } => MessageContent::Image { url, caption },
        Content::Document {
            url,
            filename,
            caption,
        } => MessageContent::Document {
            url,
            filename,
            caption,
        },
    };
    let message = OutboundMessage {
        tenant_id,
        idempotency_key: key,
        to: to.to_owned(),
        content,
        reply_to,
    };
    message
        .validate()
        .map_err(|errors| anyhow!("not a valid OutboundMessage: {errors}"))?;
    Ok(message)
}

/// Refuses a tenant the tenants table does not have (the sender would record the message as
/// `failed unknown_tenant`).
pub async fn check_tenant_exists(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &TenantId,
) -> anyhow::Result<()> {
    let out = dynamodb
        .get_item()
        .table_name(table)
        .key(
            "tenantId",
            aws_sdk_dynamodb::types::AttributeValue::S(tenant.to_string()),
        )
        .projection_expression("tenantId")
        .send()
        .await
        .with_context(|| format!("reading tenant {tenant} from {table}"))?;
    if out.item.is_none() {
        bail!(
            "tenant {tenant} has no WhatsApp config in {table}; create it first (the config API)"
        );
    }
    Ok(())
}

/// Puts `message` on the outbound FIFO queue: group = tenant, deduplication id = idempotency
/// key. Returns the SQS message id.
pub async fn enqueue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    message: &OutboundMessage,
) -> anyhow::Result<String> {
    let out = sqs
        .send_message()
        .queue_url(queue_url)
        .message_body(serde_json::to_string(message)?)
        .message_group_id(message.message_group_id())
        .message_deduplication_id(message.deduplication_id())
        .send()
        .await
        .context("putting the message on the outbound queue")?;
    Ok(out.message_id.unwrap_or_default())
}

/// Where a followed message stands: not yet recorded, or its record's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Queued,
    Record(Box<DeliveryRecord>),
}

impl Observed {
    pub fn state_name(&self) -> &'static str {
        match self {
            Observed::Queued => "queued",
            Observed::Record(r) => r.state.as_str(),
        }
    }

    /// One line: state and what goes with it.
    pub fn describe(&self) -> String {
        let Observed::Record(r) = self else {
            return "queued       (on the outbound queue, not yet taken by the sender)".to_owned();
        };
        let mut line = format!("{:<12}", r.state.as_str());
        match r.state {
            DeliveryState::Sent | DeliveryState::Delivered | DeliveryState::Read => {
                if let Some(id) = &r.provider_message_id {
                    line.push_str(&format!(" provider id {id}"));
                }
                if let Some(endpoint) = &r.endpoint {
                    line.push_str(&format!(" via {endpoint}"));
                }
                if let Some(role) = r.endpoint_role {
                    line.push_str(&format!(" ({})", role.as_str()));
                }
            }
            DeliveryState::Failed | DeliveryState::Retrying | DeliveryState::Unknown => {
                if let Some(class) = &r.error_class {
                    line.push_str(&format!(" {class}"));
                }
                if let Some(reason) = &r.reason {
                    line.push_str(&format!(": {reason}"));
                }
            }
            DeliveryState::InProgress => {
                line.push_str(&format!(" attempt {}", r.attempts));
            }
        }
        line
    }
}

/// How far `--wait` follows a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    Sent,
    Delivered,
    Read,
}

impl std::str::FromStr for Until {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sent" => Ok(Until::Sent),
            "delivered" => Ok(Until::Delivered),
            "read" => Ok(Until::Read),
            other => Err(format!("expected sent, delivered or read, not {other:?}")),
        }
    }
}

fn rank(state: DeliveryState) -> u8 {
    match state {
        DeliveryState::Sent => 1,
        DeliveryState::Delivered => 2,
        DeliveryState::Read => 3,
        _ => 0,
    }
}

impl Until {
    fn reached(self, state: DeliveryState) -> bool {
        let wanted = match self {
            Until::Sent => 1,
            Until::Delivered => 2,
            Until::Read => 3,
        };
        rank(state) >= wanted
    }
}

/// How following ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// Reached the wanted state (or beyond).
    Reached(DeliveryState),
    /// Failed or unknown: it will not get further.
    Settled(DeliveryState),
    /// Still here when the time was up.
    TimedOut(Observed),
}

/// Follows the record of `key` until it reaches `until`, fails, turns unknown, or `timeout`
/// passes; calls `on_change` with the time and each state it sees (the first one included).
pub async fn follow(
    store: &dyn DeliveryReader,
    tenant: &TenantId,
    key: &str,
    until: Until,
    timeout: Duration,
    mut on_change: impl FnMut(OffsetDateTime, &Observed),
) -> anyhow::Result<Followed> {
    let deadline = Instant::now() + timeout;
    let mut last: Option<String> = None;
    loop {
        let observed = match store.get(tenant, key, OffsetDateTime::now_utc()).await {
            Ok(None) => Observed::Queued,
            Ok(Some(record)) => Observed::Record(Box::new(record)),
            // moto_server writes a new item's key before the rest of an `UpdateItem` (DynamoDB
            // does both at once): a read in between finds a record without its state. Read
            // again; an item still unreadable when the time is up is an error.
            Err(DeliveryError::Corrupt { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let seen = observed.describe();
        if last.as_deref() != Some(seen.as_str()) {
            on_change(OffsetDateTime::now_utc(), &observed);
            last = Some(seen);
        }
        if let Observed::Record(r) = &observed {
            if until.reached(r.state) {
                return Ok(Followed::Reached(r.state));
            }
            if matches!(r.state, DeliveryState::Failed | DeliveryState::Unknown) {
                return Ok(Followed::Settled(r.state));
            }
        }
        if Instant::now() >= deadline {
            return Ok(Followed::TimedOut(observed));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `HH:MM:SS.mmm` in UTC.
pub fn clock(at: OffsetDateTime) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// One inbound-queue message as the platform's consumer reads it.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub sqs_message_id: String,
    pub receipt_handle: String,
    pub receive_count: u32,
    pub body: String,
    pub event: Result<InboundEvent, String>,
}

/// Receives up to 10 inbound messages (long poll of `wait`).
pub async fn receive_inbound(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    wait: Duration,
) -> anyhow::Result<Vec<Inbound>> {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait.as_secs().min(20) as i32)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .context("receiving from the inbound queue")?;
    Ok(out
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let body = m.body().unwrap_or_default().to_owned();
            Inbound {
                sqs_message_id: m.message_id().unwrap_or_default().to_owned(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1),
                event: serde_json::from_str::<InboundEvent>(&body).map_err(|e| e.to_string()),
                body,
            }
        })
        .collect())
}

/// Deletes a handled inbound message.
pub async fn delete_inbound(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    message: &Inbound,
) -> anyhow::Result<()> {
    sqs.delete_message()
        .queue_url(queue_url)
        .receipt_handle(&message.receipt_handle)
        .send()
        .await
        .context("deleting from the inbound queue")?;
    Ok(())
}

fn quoted(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    format!("{out:?}")
}

/// One line for an inbound event: time, tenant, type and the gist.
pub fn summarize(event: &InboundEvent) -> String {
    let at = event
        .occurred_at
        .as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .unwrap_or(event.received_at);
    let mut line = format!("{}  {}  ", clock(at), event.tenant_id);
    match event.event_type {
        EventType::Message => {
            line.push_str("message  ");
            if let Some(sender) = &event.sender {
                line.push_str(&format!("from {}", sender.id));
                if let Some(name) = &sender.name {
                    line.push_str(&format!(" ({name})"));
                }
            }
            if let Some(text) = &event.text {
                line.push_str(&format!(": {}", quoted(text, 200)));
            }
            if let Some(media) = &event.media {
                line.push_str(&format!(" [{}]", media.kind));
            }
            if let Some(id) = &event.provider_event_id {
                line.push_str(&format!(" (id {id}"));
                if let Some(reply) = &event.reply_to {
                    line.push_str(&format!(", reply to {}", reply.message_id));
                }
                line.push(')');
            }
        }
        EventType::Receipt => {
            line.push_str("receipt  ");
            if let Some(receipt) = &event.receipt {
                line.push_str(&format!(
                    "{} {}",
                    receipt.state,
                    receipt.message_ids.join(", ")
                ));
            }
        }
        EventType::GroupParticipants => {
            line.push_str("group    ");
            if let Some(group) = &event.group {
                line.push_str(&format!(
                    "{} {}",
                    group.action,
                    group.participants.join(", ")
                ));
            }
        }
        EventType::Other => {
            line.push_str(&format!("other    {}", event.provider_event));
        }
    }
    line
}

/// An incoming message for the simulator's control API (`POST /_sim/incoming`).
pub async fn deliver_reply(
    http: &reqwest::Client,
    control_url: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}/_sim/incoming", control_url.trim_end_matches('/'));
    let response =
        http.post(&url).json(body).send().await.with_context(|| {
            format!("asking the simulator at {url} (is scripts/dev.sh running?)")
        })?;
    let status = response.status();
    let answer: serde_json::Value = response
        .json()
        .await
        .context("reading the simulator's answer")?;
    if !status.is_success() {
        bail!(
            "the simulator refused the reply (HTTP {}): {}",
            status.as_u16(),
            answer["message"].as_str().unwrap_or("no message")
        );
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers `reads` in order, then the last one again: `None` is a half-written record.
    struct Reads(std::sync::Mutex<Vec<Option<DeliveryRecord>>>);

    #[async_trait::async_trait]
    impl DeliveryReader for Reads {
        async fn get_key(
            &self,
            _pk: &str,
            _now: OffsetDateTime,
        ) -> Result<Option<DeliveryRecord>, DeliveryError> {
            let mut reads = self.0.lock().unwrap();
            let read = if reads.len() > 1 {
                reads.remove(0)
            } else {
                reads[0].clone()
            };
            read.map(Some).ok_or_else(half_written)
        }

        async fn recent(
            &self,
            _tenant: &TenantId,
            _limit: u32,
            _cursor: Option<&str>,
            _now: OffsetDateTime,
        ) -> Result<wagate::tenant::store::Page<DeliveryRecord>, DeliveryError> {
            unreachable!("follow reads one record")
        }
    }

    fn sent() -> DeliveryRecord {
        serde_json::from_value(serde_json::json!({
            "pk": "demo#k1", "state": "sent", "attempts": 1, "expiresAt": i64::MAX
        }))
        .unwrap()
    }

    fn half_written() -> DeliveryError {
        DeliveryError::Corrupt {
            pk: "demo#k1".into(),
            reason: "missing field `state`".into(),
        }
    }

    #[tokio::test]
    async fn follow_reads_a_half_written_record_again() {
        let store = Reads(std::sync::Mutex::new(vec![None, Some(sent())]));
        let mut seen = Vec::new();
        let followed = follow(
            &store,
            &"demo".parse().unwrap(),
            "k1",
            Until::Sent,
            Duration::from_secs(60),
            |_, o| seen.push(o.describe()),
        )
        .await
        .unwrap();
        assert_eq!(followed, Followed::Reached(DeliveryState::Sent));
        assert_eq!(seen.len(), 1, "{seen:?}");
    }

    #[tokio::test]
    async fn follow_reports_a_record_still_unreadable_at_the_deadline() {
        let store = Reads(std::sync::Mutex::new(vec![None]));
        let err = follow(
            &store,
            &"demo".parse().unwrap(),
            "k1",
            Until::Sent,
            Duration::ZERO,
            |_, _| {},
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("cannot be read"), "{err}");
    }

    #[test]
    fn env_files_read_plain_and_quoted_values() {
        let dir = std::env::temp_dir().join(format!("wagate-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stack.env");
        std::fs::write(
            &path,
            "# comment\nA=1\nJWT_JWKS='{\"keys\":[]}'\nURL=http://127.0.0.1:4566\n",
        )
        .unwrap();
        let vars = read_env_file(&path).unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["JWT_JWKS"], "{\"keys\":[]}");
        assert_eq!(vars["URL"], "http://127.0.0.1:4566");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn generated_keys_satisfy_the_contract() {
        let key = new_idempotency_key(OffsetDateTime::UNIX_EPOCH);
        assert!(key.starts_with("dev-19700101T000000Z-"), "{key}");
        build_message(
            "demo",
            "+6281234567890",
            Content::Text("hi".into()),
            key,
            None,
        )
        .unwrap();
    }

    #[test]
    fn invalid_messages_name_every_problem() {
        let err = build_message(
            "demo",
            "0812",
            Content::Text("  ".into()),
            "bad key!".into(),
            None,
        )
        .unwrap_err()
        .to_string();
        for field in ["idempotencyKey", "to", "content.body"] {
            assert!(err.contains(field), "{err}");
        }
        let err = build_message(
            "Not A Tenant",
            "+6281234567890",
            Content::Text("x".into()),
            "k".into(),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--tenant"), "{err}");
    }

    #[test]
    fn until_read_passes_through_delivered() {
        assert!(!Until::Read.reached(DeliveryState::Delivered));
        assert!(Until::Read.reached(DeliveryState::Read));
        assert!(Until::Delivered.reached(DeliveryState::Read));
        assert!(!Until::Sent.reached(DeliveryState::InProgress));
    }
}
