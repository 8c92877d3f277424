//! The local SQS event source against a real moto_server and a stand-in for cargo-lambda's
//! invoke API (`POST /2015-03-31/functions/<name>/invocations`) on a free port: batches,
//! partial batch responses, failed and timed-out invocations, visibility timeout and redrive.
//! The dev.sh test (tests/tests/dev_stack.rs) runs it with the real outbound-sender.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::moto;
use serde_json::{Value as Json, json};
use wagate_devstack::event_source::{self, BatchReport, Invoker, QueueSource, ScheduleSource};
use wagate_devstack::mappings::EventSources;
use wagate_devstack::{Provisioned, Template, provision_template, unique_stack_name};

/// A FIFO work queue (visibility 1 s, DLQ after 2 receives) feeding `worker` (timeout 1 s,
/// batches of 3, partial batch responses), a standard queue feeding `plain` in batches of 2
/// without them, and a schedule.
const TEMPLATE: &str = r#"
Resources:
  WorkDLQ:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-work-dlq.fifo"
      FifoQueue: true
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-work.fifo"
      FifoQueue: true
      ContentBasedDeduplication: true
      VisibilityTimeout: 1
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt WorkDLQ.Arn
        maxReceiveCount: 2
  PlainQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-plain"
      VisibilityTimeout: 1
  Worker:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: worker
    Properties:
      Timeout: 1
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt WorkQueue.Arn
            BatchSize: 3
            FunctionResponseTypes:
              - ReportBatchItemFailures
  Plain:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: plain
    Properties:
      Timeout: 5
      Events:
        FromPlain:
          Type: SQS
          Properties:
            Queue: !GetAtt PlainQueue.Arn
            BatchSize: 2
        Tick:
          Type: Schedule
          Properties:
            Schedule: rate(1 minute)
"#;

/// How the stand-in function answers one invocation.
enum Answer {
    Json(Json),
    Error,
    Hang(Duration),
}

type Script = Box<dyn Fn(&SqsEvent) -> Answer + Send + Sync>;

#[derive(Clone)]
struct Fake {
    calls: Arc<Mutex<Vec<(String, Json)>>>,
    script: Arc<Mutex<Script>>,
}

impl Fake {
    fn calls(&self) -> Vec<(String, Json)> {
        self.calls.lock().unwrap().clone()
    }

    fn events(&self) -> Vec<SqsEvent> {
        self.calls()
            .into_iter()
            .filter_map(|(_, body)| serde_json::from_value(body).ok())
            .collect()
    }

    fn answer(&self, script: impl Fn(&SqsEvent) -> Answer + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Box::new(script);
    }
}

async fn invoke(
    State(fake): State<Fake>,
    Path(function): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let event: Json = serde_json::from_slice(&body).expect("the invoke body is JSON");
    fake.calls.lock().unwrap().push((function, event.clone()));
    let answer = {
        let script = fake.script.lock().unwrap();
        match serde_json::from_value::<SqsEvent>(event) {
            Ok(sqs) => script(&sqs),
            Err(_) => Answer::Json(json!({"ok": true})),
        }
    };
    match answer {
        Answer::Json(json) => (StatusCode::OK, json.to_string()).into_response(),
        // cargo-lambda answers a function error with 500 and the error document.
        Answer::Error => (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"errorType":"Panic","errorMessage":"boom"}"#,
        )
            .into_response(),
        Answer::Hang(for_how_long) => {
            tokio::time::sleep(for_how_long).await;
            (StatusCode::OK, "{}").into_response()
        }
    }
}

/// The stand-in invoke API on 127.0.0.1:<free port>.
async fn fake_invoke_api() -> (Fake, Invoker) {
    let fake = Fake {
        calls: Arc::default(),
        script: Arc::new(Mutex::new(Box::new(|_| Answer::Json(json!({}))))),
    };
    let app = Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, Invoker::new(base).unwrap())
}

struct Setup {
    sqs: aws_sdk_sqs::Client,
    stack: Provisioned,
    sources: EventSources,
}

async fn setup() -> Option<Setup> {
    let sdk = moto().await?;
    let template = Template::parse(TEMPLATE).unwrap();
    let stack_name = unique_stack_name();
    let stack = provision_template(&sdk, &template, &stack_name, &BTreeMap::new())
        .await
        .expect("provisioning the test template");
    let sources = EventSources::from_template(&template, &stack_name).unwrap();
    Some(Setup {
        sqs: aws_sdk_sqs::Client::new(&sdk),
        stack,
        sources,
    })
}

impl Setup {
    fn source(&self, function: &str) -> QueueSource {
        let mapping = self
            .sources
            .queues
            .iter()
            .find(|m| m.function.name == function)
            .unwrap()
            .clone();
        let id = &mapping.queue.logical_id;
        QueueSource {
            url: self.stack.queues[id].clone(),
            arn: self.stack.arns[id].clone(),
            region: self.stack.region.clone(),
            mapping,
        }
    }

    /// Sends `body` in message group `group` (FIFO) and returns the SQS message id.
    async fn send(&self, queue: &str, body: &str, group: Option<&str>) -> String {
        let out = self
            .sqs
            .send_message()
            .queue_url(&self.stack.queues[queue])
            .message_body(body)
            .set_message_group_id(group.map(str::to_owned))
            .message_attributes(
                "source",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("test")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        out.message_id.unwrap()
    }

    /// Visible plus in-flight messages of a queue.
    async fn depth(&self, queue: &str) -> (u64, u64) {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.stack.queues[queue])
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let attrs = out.attributes.unwrap();
        let get = |name: QueueAttributeName| attrs[&name].parse::<u64>().unwrap();
        (
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Polls until a batch comes (the kept records come back after the visibility timeout);
    /// a generous bound, not a speed check.
    async fn next_batch(&self, source: &QueueSource, invoker: &Invoker) -> BatchReport {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(report) = source
                .poll_once(&self.sqs, invoker, Duration::from_secs(2))
                .await
                .unwrap()
            {
                return report;
            }
            assert!(Instant::now() < deadline, "no batch came back");
        }
    }
}

fn failures(ids: &[&str]) -> Answer {
    Answer::Json(json!({
        "batchItemFailures": ids.iter().map(|id| json!({"itemIdentifier": id})).collect::<Vec<_>>()
    }))
}

fn receive_count(event: &SqsEvent, index: usize) -> u32 {
    event.records[index].attributes["ApproximateReceiveCount"]
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_batch_is_a_real_sqs_event_of_the_queue() {
    let Some(s) = setup().await else { return };
    let (fake, invoker) = fake_invoke_api().await;
    let source = s.source("worker");
    let id = s.send("WorkQueue", r#"{"n":1}"#, Some("tenant-a")).await;

    let report = s.next_batch(&source, &invoker).await;

    assert_eq!(report.records, std::slice::from_ref(&id));
    assert_eq!(report.deleted, std::slice::from_ref(&id));
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "worker", "invoked by its binary name");
    let event: SqsEvent = serde_json::from_value(calls[0].1.clone()).expect("an SqsEvent");
    let record = &event.records[0];
    assert_eq!(record.message_id.as_deref(), Some(id.as_str()));
    assert_eq!(record.body.as_deref(), Some(r#"{"n":1}"#));
    assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
    assert_eq!(
        record.event_source_arn.as_deref(),
        Some(s.stack.arns["WorkQueue"].as_str())
    );
    assert_eq!(record.aws_region.as_deref(), Some("us-east-1"));
    assert_eq!(record.attributes["MessageGroupId"], "tenant-a");
    assert_eq!(record.attributes["ApproximateReceiveCount"], "1");
    assert!(record.attributes.contains_key("SentTimestamp"));
    assert!(record.receipt_handle.is_some());
    assert_eq!(
        record.message_attributes["source"].string_value.as_deref(),
        Some("test")
    );
    assert_eq!(s.depth("WorkQueue").await, (0, 0), "deleted");
}

#[tokio::test]
async fn deletes_exactly_the_records_not_reported_as_failures_and_retries_the_rest() {
    let Some(s) = setup().await else { return };
    let (fake, invoker) = fake_invoke_api().await;
    let source = s.source("worker");
    // Distinct bodies: the queue deduplicates by content.
    let ok_1 = s.send("WorkQueue", "ok 1", Some("g1")).await;
    let bad = s.send("WorkQueue", "fail once", Some("g2")).await;
    let ok_2 = s.send("WorkQueue", "ok 2", Some("g3")).await;
    fake.answer(|event| {
        let failed: Vec<&str> = event
            .records
            .iter()
            .filter(|r| r.body.as_deref() == Some("fail once"))
            .filter(|r| r.attributes["ApproximateReceiveCount"] == "1")
            .filter_map(|r| r.message_id.as_deref())
            .collect();
        failures(&failed)
    });

    // A FIFO receive may hand the three groups over in one batch or several; the failed
    // record comes back after the queue's visibility timeout (1 s) and then succeeds.
    let mut reports = Vec::new();
    while reports
        .iter()
        .map(|r: &BatchReport| r.deleted.len())
        .sum::<usize>()
        < 3
    {
        reports.push(s.next_batch(&source, &invoker).await);
    }

    let events = fake.events();
    assert_eq!(events.len(), reports.len());
    for (report, event) in reports.iter().zip(&events) {
        // Exactly the reported record is kept; every other one of the batch is deleted.
        let reported: Vec<String> = event
            .records
            .iter()
            .filter(|r| r.body.as_deref() == Some("fail once"))
            .filter(|r| r.attributes["ApproximateReceiveCount"] == "1")
            .filter_map(|r| r.message_id.clone())
            .collect();
        assert_eq!(report.kept, reported, "{report:?}");
        let mut expected: Vec<&String> = report
            .records
            .iter()
            .filter(|id| !reported.contains(id))
            .collect();
        let mut deleted: Vec<&String> = report.deleted.iter().collect();
        expected.sort();
        deleted.sort();
        assert_eq!(deleted, expected, "{report:?}");
    }
    let times_bad_was_handed_over: Vec<u32> = events
        .iter()
        .flat_map(|e| e.records.iter())
        .filter(|r| r.message_id.as_deref() == Some(bad.as_str()))
        .map(|r| r.attributes["ApproximateReceiveCount"].parse().unwrap())
        .collect();
    assert_eq!(times_bad_was_handed_over, [1, 2], "kept once, retried once");
    for ok in [&ok_1, &ok_2] {
        let handed: usize = events
            .iter()
            .flat_map(|e| e.records.iter())
            .filter(|r| r.message_id.as_deref() == Some(ok.as_str()))
            .count();
        assert_eq!(handed, 1, "a deleted record never comes back");
    }
    assert_eq!(s.depth("WorkQueue").await, (0, 0));
}

#[tokio::test]
async fn batch_size_from_the_template_caps_each_invocation() {
    let Some(s) = setup().await else { return };
    let (fake, invoker) = fake_invoke_api().await;
    let source = s.source("plain");
    for n in 0..5 {
        s.send("PlainQueue", &format!("m{n}"), None).await;
    }

    let mut bodies = Vec::new();
    while bodies.len() < 5 {
        let report = s.next_batch(&source, &invoker).await;
        assert!(report.records.len() <= 2, "{report:?}");
        assert_eq!(report.deleted.len(), report.records.len());
        bodies = fake
            .events()
            .iter()
            .flat_map(|e| e.records.iter().filter_map(|r| r.body.clone()))
            .collect();
    }
    bodies.sort();
    assert_eq!(bodies, ["m0", "m1", "m2", "m3", "m4"]);
    assert!(fake.calls().len() >= 3);
    assert_eq!(s.depth("PlainQueue").await, (0, 0));
}

#[tokio::test]
async fn without_report_batch_item_failures_a_listed_failure_is_still_deleted() {
    let Some(s) = setup().await else { return };
    let (fake, invoker) = fake_invoke_api().await;
    let source = s.source("plain");
    let id = s.send("PlainQueue", "x", None).await;
    fake.answer(|event| failures(&[event.records[0].message_id.as_deref().unwrap()]));

    let report = s.next_batch(&source, &invoker).await;

    assert_eq!(report.deleted, [id]);
    assert_eq!(s.depth("PlainQueue").await, (0, 0));
}

#[tokio::test]
async fn an_unknown_item_identifier_fails_the_whole_batch() {
    let Some(s) = setup().await else { return };
    let (fake, invoker) = fake_invoke_api().await;
    let source = s.source("worker");
    let id = s.send("WorkQueue", "x", Some("g")).await;
    fake.answer(|_| failures(&["not-in-this-batch"]));

    let report = s.next_batch(&source, &invoker).await;

    assert!(report.deleted.is_empty());
    assert_eq!(report.kept, [id]);
    assert!(
        report
            .failure
            .as_deref()
            .unwrap()
            .contains("not a record of the batch"),
        "{report:?}"
    );
    assert_eq!(
        s.depth("WorkQueue").await,
        (0, 1),
        "hidden until the visibility timeout"
    );
}

#[tokio::test]
async fn a_crashing_function_keeps_its_batch_until_the_redrive_policy_moves_it_to_the_dlq() {
    let Some(s) = setup().await else { return };
    let (fake, invoker) = fake_invoke_api().await;
    let source = s.source("worker");
    let id = s.send("WorkQueue", "poison", Some("g")).await;
    fake.answer(|_| Answer::Error);

    let first = s.next_batch(&source, &invoker).await;
    assert!(first.deleted.is_empty());
    assert!(
        first.invocation.starts_with("function error (HTTP 500)"),
        "{first:?}"
    );
    assert!(
        first.line.contains("to WorkDLQ after receive 2"),
        "{}",
        first.line
    );
    let second = s.next_batch(&source, &invoker).await;
    assert_eq!(second.kept, std::slice::from_ref(&id));
    assert!(
        second.line.contains(&format!("(now: {id})")),
        "{}",
        second.line
    );

    // The third receive finds it past maxReceiveCount: SQS (moto) moves it to the DLQ.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dlq = s
            .sqs
            .receive_message()
            .queue_url(&s.stack.queues["WorkDLQ"])
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(m) = dlq.messages.unwrap_or_default().first() {
            assert_eq!(m.body(), Some("poison"));
            break;
        }
        assert!(
            source
                .poll_once(&s.sqs, &invoker, Duration::from_secs(1))
                .await
                .unwrap()
                .is_none(),
            "received a third time instead of moving to the DLQ"
        );
        assert!(Instant::now() < deadline, "never reached the DLQ");
    }
    assert_eq!(
        fake.calls().len(),
        2,
        "invoked once per receive, never after"
    );
}

#[tokio::test]
async fn a_timed_out_invocation_is_retried_after_the_visibility_timeout() {
    let Some(s) = setup().await else { return };
    let (fake, invoker) = fake_invoke_api().await;
    let source = s.source("worker");
    let id = s.send("WorkQueue", "slow", Some("g")).await;
    // Longer than the function's Timeout (1 s) the first time, quick the second.
    fake.answer(|event| {
        if receive_count(event, 0) == 1 {
            Answer::Hang(Duration::from_secs(3))
        } else {
            Answer::Json(json!({"batchItemFailures": []}))
        }
    });

    let first = s.next_batch(&source, &invoker).await;
    assert_eq!(first.kept, std::slice::from_ref(&id));
    assert!(
        first.invocation.starts_with("timed out after 1"),
        "{first:?}"
    );
    let second = s.next_batch(&source, &invoker).await;
    assert_eq!(second.deleted, [id]);
    assert_eq!(s.depth("WorkQueue").await, (0, 0));
}

#[tokio::test]
async fn an_unreachable_invoke_api_loses_nothing_and_the_runner_keeps_going() {
    let Some(s) = setup().await else { return };
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = Invoker::new(format!("http://{}", closed.local_addr().unwrap())).unwrap();
    drop(closed);
    let source = s.source("worker");
    let id = s.send("WorkQueue", "x", Some("g")).await;

    let report = s.next_batch(&source, &dead).await;
    assert_eq!(report.kept, std::slice::from_ref(&id));
    assert!(
        report.invocation.starts_with("invoke API unreachable"),
        "{report:?}"
    );

    // The runner, pointed at a working function, delivers it once it is visible again.
    let (fake, invoker) = fake_invoke_api().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(event_source::run(
        s.sqs.clone(),
        invoker,
        vec![source],
        Vec::new(),
        Duration::from_secs(1),
        |_| {},
        async {
            let _ = stopped.await;
        },
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.depth("WorkQueue").await != (0, 0) {
        assert!(Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(()).unwrap();
    runner.await.unwrap();
    let events = fake.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].records[0].message_id.as_deref(),
        Some(id.as_str())
    );
    assert_eq!(receive_count(&events[0], 0), 2);
}

#[tokio::test]
async fn a_schedule_invokes_with_an_eventbridge_scheduled_event() {
    let (fake, invoker) = fake_invoke_api().await;
    let template = Template::parse(TEMPLATE).unwrap();
    let sources = EventSources::from_template(&template, "s").unwrap();
    let source = ScheduleSource {
        mapping: sources.schedules[0].clone(),
        every: Duration::from_millis(50),
        region: "us-east-1".into(),
        account: "123456789012".into(),
    };

    let (invocation, line) = source.run_once(&invoker).await;

    assert!(matches!(invocation, event_source::Invocation::Answered(_)));
    assert!(
        line.contains("plain <- schedule Plain.Events.Tick (rate(1 minute)): ok"),
        "{line}"
    );
    let calls = fake.calls();
    assert_eq!(calls[0].0, "plain");
    let event: aws_lambda_events::event::eventbridge::EventBridgeEvent =
        serde_json::from_value(calls[0].1.clone()).expect("an EventBridge event");
    assert_eq!(event.detail_type, "Scheduled Event");
    assert_eq!(event.source, "aws.events");
    assert_eq!(event.region.as_deref(), Some("us-east-1"));
}
