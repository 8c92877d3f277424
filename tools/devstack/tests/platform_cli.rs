//! `wagate-dev send` and `wagate-dev inbound` against a fresh stack on moto_server: what a
//! valid send puts on the outbound queue, every refused input (exit status 2, nothing
//! enqueued), how `--wait` ends, and how the inbound consumer reads and deletes.

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use common::moto;
use serde_json::{Value, json};
use wagate_devstack::{Provisioned, provision, unique_stack_name, workspace_template};

struct Stack {
    sdk: aws_config::SdkConfig,
    stack: Provisioned,
    env_file: PathBuf,
}

impl Stack {
    async fn new() -> Option<Stack> {
        let sdk = moto().await?;
        let stack = provision(&sdk, &workspace_template(), &unique_stack_name())
            .await
            .expect("provisioning template.yaml");
        let dir = std::env::temp_dir().join(format!("wagate-cli-{}", stack.stack_name));
        std::fs::create_dir_all(&dir).unwrap();
        let env_file = dir.join("stack.env");
        let mut f = std::fs::File::create(&env_file).unwrap();
        for (k, v) in stack.aws_env().into_iter().chain(stack.env()) {
            writeln!(f, "{k}={v}").unwrap();
        }
        Some(Stack {
            sdk,
            stack,
            env_file,
        })
    }

    fn var(&self, name: &str) -> String {
        self.stack.env()[name].clone()
    }

    /// A tenant config item (the send command only checks that one exists).
    async fn add_tenant(&self, tenant: &str) {
        aws_sdk_dynamodb::Client::new(&self.sdk)
            .put_item()
            .table_name(self.var("TENANTS_TABLE"))
            .item("tenantId", AttributeValue::S(tenant.into()))
            .send()
            .await
            .unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_wagate-dev"))
            .args(args)
            .env("WAGATE_DEV_ENV_FILE", &self.env_file)
            .output()
            .expect("wagate-dev runs")
    }

    fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    /// Visible plus in-flight messages.
    async fn depth(&self, queue_var: &str) -> u64 {
        let out = self
            .sqs()
            .get_queue_attributes()
            .queue_url(self.var(queue_var))
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        out.attributes
            .unwrap()
            .values()
            .map(|v| v.parse::<u64>().unwrap())
            .sum()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn send_puts_one_outbound_message_on_the_queue_grouped_by_tenant_and_keyed() {
    let Some(s) = Stack::new().await else { return };
    s.add_tenant("demo").await;

    let out = s.run(&[
        "send",
        "--tenant",
        "demo",
        "--to",
        "+6281234567890",
        "--text",
        "Booking confirmed",
    ]);

    assert!(out.status.success(), "{}", stderr(&out));
    let key = stdout(&out).trim().to_owned();
    assert!(key.starts_with("dev-"), "{key}");
    let received = s
        .sqs()
        .receive_message()
        .queue_url(s.var("OUTBOUND_QUEUE_URL"))
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let messages = received.messages.unwrap();
    assert_eq!(messages.len(), 1);
    let attrs = messages[0].attributes().unwrap();
    assert_eq!(attrs[&MessageSystemAttributeName::MessageGroupId], "demo");
    assert_eq!(
        attrs[&MessageSystemAttributeName::MessageDeduplicationId],
        key
    );
    let body: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"tenantId": "demo", "idempotencyKey": key, "to": "+6281234567890",
               "content": {"type": "text", "body": "Booking confirmed"}})
    );
}

#[tokio::test]
async fn send_builds_image_and_document_messages_with_a_chosen_key() {
    let Some(s) = Stack::new().await else { return };
    s.add_tenant("demo").await;

    for (args, content) in [
        (
            vec![
                "--image",
                "https://example.com/a.jpg",
                "--caption",
                "Your room",
            ],
            json!({"type": "image", "url": "https://example.com/a.jpg", "caption": "Your room"}),
        ),
        (
            vec![
                "--document",
                "https://example.com/i.pdf",
                "--filename",
                "invoice.pdf",
            ],
            json!({"type": "document", "url": "https://example.com/i.pdf", "filename": "invoice.pdf"}),
        ),
    ] {
        let key = format!("booking-{}", content["type"].as_str().unwrap());
        let mut all = vec![
            "send",
            "--tenant",
            "demo",
            "--to",
            "6289685028129",
            "--key",
            &key,
        ];
        all.extend(args);
        let out = s.run(&all);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out).trim(), key);
        let received = s
            .sqs()
            .receive_message()
            .queue_url(s.var("OUTBOUND_QUEUE_URL"))
            .send()
            .await
            .unwrap();
        let message = &received.messages.unwrap()[0];
        let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
        assert_eq!(body["content"], content);
        s.sqs()
            .delete_message()
            .queue_url(s.var("OUTBOUND_QUEUE_URL"))
            .receipt_handle(message.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn invalid_sends_exit_2_with_the_reason_and_enqueue_nothing() {
    let Some(s) = Stack::new().await else { return };
    s.add_tenant("demo").await;
    let base = |extra: &[&'static str]| {
        let mut args = vec!["send", "--tenant", "demo"];
        args.extend_from_slice(extra);
        args
    };

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            base(&["--to", "0812345678", "--text", "hi"]),
            "to: must be a phone number",
        ),
        (
            base(&["--to", "+6281234567890", "--text", "   "]),
            "content.body: must not be blank",
        ),
        (
            base(&[
                "--to",
                "+6281234567890",
                "--text",
                "hi",
                "--key",
                "no spaces allowed",
            ]),
            "idempotencyKey",
        ),
        (
            base(&[
                "--to",
                "+6281234567890",
                "--image",
                "ftp://example.com/a.jpg",
            ]),
            "content.url: must be an http(s) URL",
        ),
        (
            base(&[
                "--to",
                "+6281234567890",
                "--text",
                "hi",
                "--image",
                "https://e.com/a.jpg",
            ]),
            "cannot be used with",
        ),
        (base(&["--to", "+6281234567890"]), "required"),
        (
            vec![
                "send",
                "--tenant",
                "Not A Tenant",
                "--to",
                "+6281234567890",
                "--text",
                "hi",
            ],
            "--tenant",
        ),
        (
            vec![
                "send",
                "--tenant",
                "nobody",
                "--to",
                "+6281234567890",
                "--text",
                "hi",
            ],
            "tenant nobody has no WhatsApp config",
        ),
    ];
    for (args, reason) in cases {
        let out = s.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(reason), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{args:?}: no key printed");
    }

    assert_eq!(
        s.depth("OUTBOUND_QUEUE_URL").await,
        0,
        "nothing was enqueued"
    );
}

#[tokio::test]
async fn send_without_a_running_stack_says_so_and_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_wagate-dev"))
        .args([
            "send",
            "--tenant",
            "demo",
            "--to",
            "+6281234567890",
            "--text",
            "hi",
        ])
        .env("WAGATE_DEV_ENV_FILE", "/nonexistent/stack.env")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is the local stack running?"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn wait_times_out_with_status_3_while_nothing_takes_the_message() {
    let Some(s) = Stack::new().await else { return };
    s.add_tenant("demo").await;

    let out = s.run(&[
        "send",
        "--tenant",
        "demo",
        "--to",
        "+6281234567890",
        "--text",
        "hi",
        "--wait",
        "--timeout-secs",
        "1",
    ]);

    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let printed = stdout(&out);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "{printed}");
    assert!(lines[1].contains("queued"), "{printed}");
    assert!(
        stderr(&out).contains("still queued after 1 s"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn wait_ends_with_status_1_on_a_failed_record() {
    let Some(s) = Stack::new().await else { return };
    s.add_tenant("demo").await;
    // The sender already refused this key for good.
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let item: HashMap<String, AttributeValue> = [
        ("pk", AttributeValue::S("demo#refused-1".into())),
        ("tenantId", AttributeValue::S("demo".into())),
        ("idempotencyKey", AttributeValue::S("refused-1".into())),
        ("state", AttributeValue::S("failed".into())),
        ("errorClass", AttributeValue::S("invalid_recipient".into())),
        ("reason", AttributeValue::S("400 INVALID_JID".into())),
        ("expiresAt", AttributeValue::N(expires.to_string())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    aws_sdk_dynamodb::Client::new(&s.sdk)
        .put_item()
        .table_name(s.var("MESSAGES_TABLE"))
        .set_item(Some(item))
        .send()
        .await
        .unwrap();

    let out = s.run(&[
        "send",
        "--tenant",
        "demo",
        "--to",
        "+6281234567890",
        "--text",
        "hi",
        "--key",
        "refused-1",
        "--wait",
        "--timeout-secs",
        "30",
    ]);

    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed
            .lines()
            .nth(1)
            .unwrap()
            .contains("failed       invalid_recipient: 400 INVALID_JID"),
        "{printed}"
    );
    assert!(stderr(&out).contains("the message ended failed"));
}

#[tokio::test]
async fn inbound_prints_and_deletes_events_and_leaves_what_it_cannot_read() {
    let Some(s) = Stack::new().await else { return };
    let queue = s.var("INBOUND_QUEUE_URL");
    let event = json!({
        "schemaVersion": 1, "tenantId": "demo", "provider": "gowa", "eventType": "message",
        "providerEvent": "message", "providerEventId": "A1B2", "dedupKey": "A1B2",
        "account": "6281234567890@s.whatsapp.net", "sessionId": "demo-device",
        "sender": {"id": "6289876543210@s.whatsapp.net", "name": "Budi"},
        "chat": {"id": "6289876543210@s.whatsapp.net", "isGroup": false},
        "text": "Thanks, see you Saturday", "media": null,
        "replyTo": {"messageId": "3EB0AA"}, "receipt": null, "group": null,
        "isFromMe": false, "occurredAt": "2026-08-22T10:15:30Z",
        "receivedAt": "2026-08-22T10:15:31Z", "raw": {}
    });
    for (body, dedup) in [
        (event.to_string(), "one"),
        ("not an event".to_owned(), "two"),
    ] {
        s.sqs()
            .send_message()
            .queue_url(&queue)
            .message_body(body)
            .message_group_id("demo")
            .message_deduplication_id(dedup)
            .send()
            .await
            .unwrap();
    }

    let out = s.run(&["inbound"]);

    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "10:15:30.000  demo  message  from 6289876543210@s.whatsapp.net (Budi): \"Thanks, see you Saturday\" (id A1B2, reply to 3EB0AA)"
    );
    assert!(stderr(&out).contains("is not an InboundEvent, left on the queue"));
    assert_eq!(
        s.depth("INBOUND_QUEUE_URL").await,
        1,
        "the event was deleted, the unreadable body left for the DLQ"
    );
}

#[tokio::test]
async fn inbound_json_prints_the_whole_event() {
    let Some(s) = Stack::new().await else { return };
    let queue = s.var("INBOUND_QUEUE_URL");
    let event = json!({
        "schemaVersion": 1, "tenantId": "demo", "provider": "gowa", "eventType": "receipt",
        "providerEvent": "message.ack", "providerEventId": "3EB0AA", "dedupKey": "k",
        "account": null, "sessionId": null, "sender": null, "chat": null, "text": null,
        "media": null, "replyTo": null,
        "receipt": {"messageIds": ["3EB0AA"], "state": "read"},
        "group": null, "isFromMe": null, "occurredAt": null,
        "receivedAt": "2026-08-22T10:15:31Z", "raw": {"event": "message.ack"}
    });
    s.sqs()
        .send_message()
        .queue_url(&queue)
        .message_body(event.to_string())
        .message_group_id("demo")
        .message_deduplication_id("k")
        .send()
        .await
        .unwrap();

    let out = s.run(&["inbound", "--json"]);

    assert!(out.status.success(), "{}", stderr(&out));
    let printed: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(printed, event);
    assert_eq!(s.depth("INBOUND_QUEUE_URL").await, 0);
}

#[tokio::test]
async fn inbound_follow_prints_events_as_they_arrive_until_stopped() {
    let Some(s) = Stack::new().await else { return };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wagate-dev"))
        .args(["inbound", "--follow"])
        .env("WAGATE_DEV_ENV_FILE", &s.env_file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let event = json!({
        "schemaVersion": 1, "tenantId": "demo", "provider": "gowa", "eventType": "receipt",
        "providerEvent": "message.ack", "providerEventId": "3EB0BB", "dedupKey": "k2",
        "account": null, "sessionId": null, "sender": null, "chat": null, "text": null,
        "media": null, "replyTo": null,
        "receipt": {"messageIds": ["3EB0BB"], "state": "delivered"},
        "group": null, "isFromMe": null, "occurredAt": "2026-08-22T10:20:11Z",
        "receivedAt": "2026-08-22T10:20:12Z", "raw": {}
    });
    // Sent after the consumer started: it is waiting on the queue, not draining and exiting.
    s.sqs()
        .send_message()
        .queue_url(s.var("INBOUND_QUEUE_URL"))
        .message_body(event.to_string())
        .message_group_id("demo")
        .message_deduplication_id("k2")
        .send()
        .await
        .unwrap();

    use tokio::io::AsyncBufReadExt as _;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .expect("a line within a minute")
        .unwrap()
        .expect("a line, not the end of output");
    assert_eq!(line, "10:20:11.000  demo  receipt  delivered 3EB0BB");
    assert!(
        child.try_wait().unwrap().is_none(),
        "--follow keeps running after the queue is empty"
    );
    // SIGTERM: it stops cleanly.
    let pid = child.id().unwrap() as i32;
    unsafe {
        libc_kill(pid, 15);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("it stops")
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        s.depth("INBOUND_QUEUE_URL").await,
        0,
        "deleted once printed"
    );
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
