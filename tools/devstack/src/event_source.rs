//! The event sources AWS runs for the functions, run locally against cargo-lambda's invoke API
//! (`POST <invoke>/2015-03-31/functions/<name>/invocations`), as read from the template
//! ([`crate::mappings`]).
//!
//! **SQS** ([`QueueSource`]), as Lambda's SQS poller behaves:
//! - long-polls the queue and hands up to the mapping's `BatchSize` records (gathered for at most
//!   `MaximumBatchingWindowInSeconds`) to the function in one real SQS event (`Records[]` with
//!   `messageId`, `receiptHandle`, `body`, `attributes` such as `ApproximateReceiveCount` and
//!   `MessageGroupId`, `messageAttributes`, `md5OfBody`, `eventSource`, `eventSourceARN`,
//!   `awsRegion`); one batch at a time per mapping;
//! - with `ReportBatchItemFailures`, deletes exactly the records the answer does not list in
//!   `batchItemFailures`; an empty or null list (or answer) is a complete success, an empty,
//!   null or unknown `itemIdentifier` (or an answer that is not JSON) a complete failure;
//!   without it, a successful invocation deletes the whole batch;
//! - an invocation that fails (function error, no answer within the function's `Timeout`, the
//!   emulator unreachable) deletes nothing and is logged: its records become visible again
//!   after the queue's `VisibilityTimeout` and are received again, and the queue's redrive
//!   policy (`maxReceiveCount`, applied by SQS itself, as moto_server does) moves a record that
//!   keeps failing to the dead-letter queue.
//!
//! **Schedules** ([`ScheduleSource`]): an EventBridge `Scheduled Event` at start and then every
//! `rate(...)`, one run at a time.
//!
//! Every batch and run is one line on the log: function, queue, each record's message id,
//! group and receive count, the outcome, what was deleted and what was kept for a retry.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
};
use base64::Engine as _;
use serde_json::{Value as Json, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::mappings::{ScheduleMapping, SqsMapping};

/// The longest SQS long poll (and Lambda's own).
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// cargo-lambda's invoke API (`cargo lambda watch --invoke-port`), or anything speaking it.
#[derive(Debug, Clone)]
pub struct Invoker {
    base_url: String,
    http: reqwest::Client,
    /// Added to each function's `Timeout` before an invocation counts as timed out.
    grace: Duration,
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// The function answered; its response payload.
    Answered(Vec<u8>),
    /// The function failed (cargo-lambda answers the error with a non-200 status).
    FunctionError { status: u16, body: String },
    /// No answer within the function's timeout.
    TimedOut(Duration),
    /// The invoke API could not be reached.
    Unreachable(String),
}

impl Invocation {
    fn describe(&self) -> String {
        match self {
            Invocation::Answered(_) => "answered".to_owned(),
            Invocation::FunctionError { status, body } => {
                format!("function error (HTTP {status}): {}", clip(body, 300))
            }
            Invocation::TimedOut(after) => {
                format!("timed out after {} s", after.as_secs_f32())
            }
            Invocation::Unreachable(why) => format!("invoke API unreachable: {why}"),
        }
    }
}

fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max).collect();
        out.push('…');
        out
    }
}

impl Invoker {
    /// `base_url` such as `http://127.0.0.1:9000`.
    pub fn new(base_url: impl Into<String>) -> anyhow::Result<Invoker> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .context("building the invoke HTTP client")?;
        Ok(Invoker {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            http,
            grace: Duration::ZERO,
        })
    }

    /// Allows `grace` beyond each function's `Timeout` (e.g. for a rebuild under
    /// `cargo lambda watch`); zero by default, as in AWS.
    pub fn with_grace(mut self, grace: Duration) -> Invoker {
        self.grace = grace;
        self
    }

    /// The invoke URL of `function`.
    pub fn url(&self, function: &str) -> String {
        format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.base_url
        )
    }

    /// Invokes `function` with `payload`, waiting at most `timeout` (plus the grace).
    pub async fn invoke(&self, function: &str, payload: &Json, timeout: Duration) -> Invocation {
        let limit = timeout + self.grace;
        let request = self
            .http
            .post(self.url(function))
            .header("content-type", "application/json")
            .body(payload.to_string())
            .timeout(limit)
            .send();
        let response = match request.await {
            Ok(response) => response,
            Err(err) if err.is_timeout() => return Invocation::TimedOut(limit),
            Err(err) if err.is_connect() => {
                return Invocation::Unreachable(error_chain(&err));
            }
            Err(err) => return Invocation::Unreachable(error_chain(&err)),
        };
        let status = response.status().as_u16();
        let body = match response.bytes().await {
            Ok(body) => body.to_vec(),
            Err(err) if err.is_timeout() => return Invocation::TimedOut(limit),
            Err(err) => return Invocation::Unreachable(error_chain(&err)),
        };
        let function_error = status != 200;
        if function_error {
            return Invocation::FunctionError {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
        }
        Invocation::Answered(body)
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// Which records of a batch the function reported as failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchVerdict {
    /// Delete them all.
    Success,
    /// Keep these (by message id); delete the others.
    Partial(BTreeSet<String>),
    /// Keep them all.
    Failure(String),
}

/// Reads a function's answer to an SQS batch as Lambda does.
pub fn verdict(
    invocation: &Invocation,
    report_batch_item_failures: bool,
    batch: &[String],
) -> BatchVerdict {
    let Invocation::Answered(body) = invocation else {
        return BatchVerdict::Failure(invocation.describe());
    };
    if !report_batch_item_failures {
        return BatchVerdict::Success;
    }
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        return BatchVerdict::Success;
    }
    let answer: Json = match serde_json::from_str(&text) {
        Ok(answer) => answer,
        Err(_) => {
            return BatchVerdict::Failure(format!("the answer is not JSON: {}", clip(&text, 200)));
        }
    };
    let failures = match answer.get("batchItemFailures") {
        None | Some(Json::Null) => return BatchVerdict::Success,
        Some(Json::Array(items)) => items,
        Some(other) => {
            return BatchVerdict::Failure(format!("batchItemFailures is not a list: {other}"));
        }
    };
    let mut keep = BTreeSet::new();
    for item in failures {
        match item.get("itemIdentifier").and_then(Json::as_str) {
            Some(id) if !id.is_empty() && batch.iter().any(|b| b == id) => {
                keep.insert(id.to_owned());
            }
            other => {
                return BatchVerdict::Failure(format!(
                    "itemIdentifier {} is not a record of the batch",
                    other.map_or("null".to_owned(), |id| format!("{id:?}"))
                ));
            }
        }
    }
    if keep.is_empty() {
        BatchVerdict::Success
    } else {
        BatchVerdict::Partial(keep)
    }
}

/// An SQS event source mapping bound to its queue.
#[derive(Debug, Clone)]
pub struct QueueSource {
    pub mapping: SqsMapping,
    /// Queue URL.
    pub url: String,
    /// Queue ARN (`eventSourceARN`).
    pub arn: String,
    /// `awsRegion` of the records.
    pub region: String,
}

/// What one batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// Message ids in the batch, in order.
    pub records: Vec<String>,
    /// How the invocation ended (`answered`, `function error (HTTP 500): …`, …).
    pub invocation: String,
    /// Message ids deleted from the queue.
    pub deleted: Vec<String>,
    /// Message ids left to become visible again.
    pub kept: Vec<String>,
    /// Why the batch (or part of it) failed, when it did.
    pub failure: Option<String>,
    /// One line for the log.
    pub line: String,
}

impl QueueSource {
    /// One round: receives a batch (long poll of at most `wait`), invokes the function and
    /// deletes what succeeded. `None` when the queue had nothing.
    pub async fn poll_once(
        &self,
        sqs: &aws_sdk_sqs::Client,
        invoker: &Invoker,
        wait: Duration,
    ) -> anyhow::Result<Option<BatchReport>> {
        let messages = self.receive_batch(sqs, wait).await?;
        if messages.is_empty() {
            return Ok(None);
        }
        let event = self.event(&messages);
        let started = Instant::now();
        let invocation = invoker
            .invoke(
                &self.mapping.function.name,
                &event,
                self.mapping.function.timeout,
            )
            .await;
        let took = started.elapsed();
        let ids: Vec<String> = messages
            .iter()
            .map(|m| m.message_id().unwrap_or_default().to_owned())
            .collect();
        let verdict = verdict(&invocation, self.mapping.report_batch_item_failures, &ids);
        let (delete, keep, failure): (Vec<&Message>, Vec<&Message>, Option<String>) = match &verdict
        {
            BatchVerdict::Success => (messages.iter().collect(), Vec::new(), None),
            BatchVerdict::Partial(failed) => {
                let (keep, delete) = messages
                    .iter()
                    .partition(|m| failed.contains(m.message_id().unwrap_or_default()));
                (delete, keep, Some("batchItemFailures".to_owned()))
            }
            BatchVerdict::Failure(why) => {
                (Vec::new(), messages.iter().collect(), Some(why.clone()))
            }
        };
        let deleted = self.delete(sqs, &delete).await?;
        let report = BatchReport {
            line: self.describe(
                &messages,
                &invocation,
                took,
                &deleted,
                &keep,
                failure.as_deref(),
            ),
            records: ids,
            invocation: invocation.describe(),
            deleted,
            kept: keep
                .iter()
                .map(|m| m.message_id().unwrap_or_default().to_owned())
                .collect(),
            failure,
        };
        Ok(Some(report))
    }

    /// Up to `BatchSize` records: one long poll, then more while the batching window lasts.
    async fn receive_batch(
        &self,
        sqs: &aws_sdk_sqs::Client,
        wait: Duration,
    ) -> anyhow::Result<Vec<Message>> {
        let want = self.mapping.batch_size as usize;
        let mut batch = self.receive(sqs, want.min(10), wait).await?;
        if batch.is_empty() || self.mapping.batching_window.is_zero() {
            return Ok(batch);
        }
        let window_ends = Instant::now() + self.mapping.batching_window;
        while batch.len() < want {
            let left = window_ends.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let more = self
                .receive(sqs, (want - batch.len()).min(10), left.min(MAX_WAIT))
                .await?;
            if more.is_empty() {
                break;
            }
            batch.extend(more);
        }
        Ok(batch)
    }

    async fn receive(
        &self,
        sqs: &aws_sdk_sqs::Client,
        max: usize,
        wait: Duration,
    ) -> anyhow::Result<Vec<Message>> {
        let out = sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(wait.min(MAX_WAIT).as_secs() as i32)
            .visibility_timeout(self.mapping.queue.visibility_timeout.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .with_context(|| format!("receiving from {}", self.mapping.queue.logical_id))?;
        Ok(out.messages.unwrap_or_default())
    }

    async fn delete(
        &self,
        sqs: &aws_sdk_sqs::Client,
        messages: &[&Message],
    ) -> anyhow::Result<Vec<String>> {
        let mut deleted = Vec::new();
        for chunk in messages.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect::<Vec<_>>();
            let out = sqs
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .with_context(|| format!("deleting from {}", self.mapping.queue.logical_id))?;
            for ok in out.successful() {
                if let Ok(i) = ok.id().parse::<usize>() {
                    if let Some(m) = chunk.get(i) {
                        deleted.push(m.message_id().unwrap_or_default().to_owned());
                    }
                }
            }
            if let Some(failed) = out.failed().first() {
                // The record comes back after the visibility timeout and is handled again.
                anyhow::bail!(
                    "deleting {} record(s) from {} failed: {} {}",
                    out.failed().len(),
                    self.mapping.queue.logical_id,
                    failed.code(),
                    failed.message().unwrap_or_default()
                );
            }
        }
        Ok(deleted)
    }

    /// The SQS event Lambda would send for `messages`.
    pub fn event(&self, messages: &[Message]) -> Json {
        let records: Vec<Json> = messages.iter().map(|m| self.record(m)).collect();
        json!({ "Records": records })
    }

    fn record(&self, message: &Message) -> Json {
        let mut attributes = serde_json::Map::new();
        for (name, value) in message.attributes().into_iter().flatten() {
            attributes.insert(name.as_str().to_owned(), Json::String(value.clone()));
        }
        let mut message_attributes = serde_json::Map::new();
        for (name, value) in message.message_attributes().into_iter().flatten() {
            message_attributes.insert(name.clone(), message_attribute(value));
        }
        json!({
            "messageId": message.message_id().unwrap_or_default(),
            "receiptHandle": message.receipt_handle().unwrap_or_default(),
            "body": message.body().unwrap_or_default(),
            "attributes": attributes,
            "messageAttributes": message_attributes,
            "md5OfBody": message.md5_of_body().unwrap_or_default(),
            "md5OfMessageAttributes": message.md5_of_message_attributes(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
            "awsRegion": self.region,
        })
    }

    fn describe(
        &self,
        messages: &[Message],
        invocation: &Invocation,
        took: Duration,
        deleted: &[String],
        kept: &[&Message],
        failure: Option<&str>,
    ) -> String {
        let m = &self.mapping;
        let mut line = format!(
            "{} <- {}: {} record(s) [",
            m.function.name,
            m.queue.logical_id,
            messages.len()
        );
        for (i, message) in messages.iter().enumerate() {
            let attrs = message.attributes();
            let get = |name: MessageSystemAttributeName| {
                attrs
                    .and_then(|a| a.get(&name))
                    .map(String::as_str)
                    .unwrap_or("-")
            };
            if i > 0 {
                line.push_str(", ");
            }
            let _ = write!(
                line,
                "{} group={} receive={}",
                message.message_id().unwrap_or_default(),
                get(MessageSystemAttributeName::MessageGroupId),
                get(MessageSystemAttributeName::ApproximateReceiveCount),
            );
        }
        let _ = write!(
            line,
            "]: {} in {} ms; deleted {}",
            invocation.describe(),
            took.as_millis(),
            deleted.len()
        );
        if !kept.is_empty() {
            let _ = write!(
                line,
                ", kept {} for a retry ({}) visible again in {} s",
                kept.len(),
                failure.unwrap_or("failed"),
                m.queue.visibility_timeout.as_secs()
            );
            if let (Some(max), Some(dlq)) = (m.queue.max_receive_count, &m.queue.dead_letter_queue)
            {
                let last: Vec<&str> = kept
                    .iter()
                    .filter(|k| receive_count(k) >= max)
                    .map(|k| k.message_id().unwrap_or_default())
                    .collect();
                let _ = write!(line, "; to {dlq} after receive {max}");
                if !last.is_empty() {
                    let _ = write!(line, " (now: {})", last.join(", "));
                }
            }
        }
        line
    }
}

fn receive_count(message: &Message) -> u32 {
    message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// A message attribute as Lambda's SQS event writes it.
fn message_attribute(value: &MessageAttributeValue) -> Json {
    let b64 = |b: &aws_sdk_sqs::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(b.as_ref())
    };
    json!({
        "stringValue": value.string_value(),
        "binaryValue": value.binary_value().map(b64),
        "stringListValues": value.string_list_values(),
        "binaryListValues": value.binary_list_values().iter().map(b64).collect::<Vec<_>>(),
        "dataType": value.data_type(),
    })
}

/// A schedule bound to its period (the template's rate unless overridden).
#[derive(Debug, Clone)]
pub struct ScheduleSource {
    pub mapping: ScheduleMapping,
    pub every: Duration,
    pub region: String,
    pub account: String,
}

impl ScheduleSource {
    /// An EventBridge `Scheduled Event` for now.
    pub fn event(&self, now: OffsetDateTime) -> Json {
        let mut id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut id).expect("the system random generator works");
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        json!({
            "version": "0",
            "id": format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.account,
            "time": now.replace_nanosecond(0).unwrap_or(now).format(&Rfc3339).unwrap_or_default(),
            "region": self.region,
            "resources": [format!(
                "arn:aws:events:{}:{}:rule/{}",
                self.region,
                self.account,
                self.mapping.source.replace('.', "-")
            )],
            "detail": {},
        })
    }

    /// One run; a line for the log.
    pub async fn run_once(&self, invoker: &Invoker) -> (Invocation, String) {
        let started = Instant::now();
        let invocation = invoker
            .invoke(
                &self.mapping.function.name,
                &self.event(OffsetDateTime::now_utc()),
                self.mapping.function.timeout,
            )
            .await;
        let outcome = match &invocation {
            Invocation::Answered(body) => {
                format!("ok: {}", clip(&String::from_utf8_lossy(body), 300))
            }
            other => format!("failed: {}", other.describe()),
        };
        let line = format!(
            "{} <- schedule {} ({}): {} in {} ms",
            self.mapping.function.name,
            self.mapping.source,
            self.mapping.expression,
            outcome,
            started.elapsed().as_millis()
        );
        (invocation, line)
    }
}

/// Runs every source until `shutdown` completes, writing one line per batch or run through
/// `log`. Errors talking to SQS are logged and retried after a second.
pub async fn run(
    sqs: aws_sdk_sqs::Client,
    invoker: Invoker,
    queues: Vec<QueueSource>,
    schedules: Vec<ScheduleSource>,
    wait: Duration,
    log: fn(&str),
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for source in queues {
        let sqs = sqs.clone();
        let invoker = invoker.clone();
        tasks.spawn(async move {
            loop {
                match source.poll_once(&sqs, &invoker, wait).await {
                    Ok(Some(report)) => log(&report.line),
                    Ok(None) => {}
                    Err(err) => {
                        log(&format!(
                            "{} <- {}: {err:#}; retrying in 1 s",
                            source.mapping.function.name, source.mapping.queue.logical_id
                        ));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
    for source in schedules {
        let invoker = invoker.clone();
        tasks.spawn(async move {
            let mut next = tokio::time::Instant::now();
            loop {
                tokio::time::sleep_until(next).await;
                next += source.every;
                let (_, line) = source.run_once(&invoker).await;
                log(&line);
                // A run longer than the period: the next one starts right after it.
                let now = tokio::time::Instant::now();
                if next < now {
                    next = now;
                }
            }
        });
    }
    shutdown.await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    fn answered(body: &str) -> Invocation {
        Invocation::Answered(body.as_bytes().to_vec())
    }

    #[test]
    fn empty_or_null_failure_lists_are_complete_successes() {
        for body in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures":[]}"#,
            r#"{"batchItemFailures":null}"#,
        ] {
            assert_eq!(
                verdict(&answered(body), true, &batch()),
                BatchVerdict::Success,
                "{body}"
            );
        }
    }

    #[test]
    fn listed_records_are_kept_and_the_rest_deleted() {
        let v = verdict(
            &answered(r#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#),
            true,
            &batch(),
        );
        assert_eq!(v, BatchVerdict::Partial(["b".to_owned()].into()));
    }

    #[test]
    fn empty_null_or_unknown_identifiers_fail_the_whole_batch() {
        for body in [
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"zzz"}]}"#,
            r#"{"batchItemFailures":"b"}"#,
            "not json",
        ] {
            assert!(
                matches!(
                    verdict(&answered(body), true, &batch()),
                    BatchVerdict::Failure(_)
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn without_report_batch_item_failures_an_answer_deletes_everything() {
        let v = verdict(
            &answered(r#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#),
            false,
            &batch(),
        );
        assert_eq!(v, BatchVerdict::Success);
    }

    #[test]
    fn failed_invocations_keep_the_batch_whatever_the_mapping() {
        for invocation in [
            Invocation::FunctionError {
                status: 500,
                body: "{}".into(),
            },
            Invocation::TimedOut(Duration::from_secs(30)),
            Invocation::Unreachable("refused".into()),
        ] {
            for rbif in [true, false] {
                assert!(matches!(
                    verdict(&invocation, rbif, &batch()),
                    BatchVerdict::Failure(_)
                ));
            }
        }
    }
}
