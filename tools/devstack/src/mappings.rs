//! The event sources `template.yaml` gives its functions, read from the template so the local
//! stack runs them the way AWS will: the SQS event source mappings (SAM `Events` of type `SQS`
//! and `AWS::Lambda::EventSourceMapping` resources) with their queue's visibility timeout and
//! redrive policy, and the EventBridge schedules (SAM `Events` of type `Schedule`).
//!
//! A function is named as `cargo lambda watch` serves it: its binary, SAM's
//! `Metadata.BuildProperties.Binary` (`rust-cargolambda` build method).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Map, Value as Json};

use crate::template::{Context, Template, plain_string, referenced_resources};

const SAM_FUNCTION: &str = "AWS::Serverless::Function";
const LAMBDA_FUNCTION: &str = "AWS::Lambda::Function";
const EVENT_SOURCE_MAPPING: &str = "AWS::Lambda::EventSourceMapping";
const QUEUE: &str = "AWS::SQS::Queue";

/// Lambda's default function timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// SQS's default visibility timeout.
const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);
/// Lambda's default SQS batch size.
const DEFAULT_BATCH_SIZE: u32 = 10;

/// A function as `cargo lambda watch` serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    /// Logical id in the template, e.g. `OutboundSenderFunction`.
    pub logical_id: String,
    /// Binary name, e.g. `outbound-sender` (the invoke API's function name).
    pub name: String,
    /// The function's `Timeout` (own, else `Globals.Function.Timeout`, else 3 s).
    pub timeout: Duration,
}

/// A queue as an event source reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    /// Logical id, e.g. `OutboundQueue`.
    pub logical_id: String,
    pub fifo: bool,
    /// `VisibilityTimeout` (default 30 s): how long a received record stays hidden.
    pub visibility_timeout: Duration,
    /// `RedrivePolicy.maxReceiveCount`, when the queue has a dead-letter queue.
    pub max_receive_count: Option<u32>,
    /// Logical id of the dead-letter queue (`RedrivePolicy.deadLetterTargetArn`).
    pub dead_letter_queue: Option<String>,
}

/// One SQS event source mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsMapping {
    /// Where it is declared: `OutboundSenderFunction.Events.OutboundQueue`, or the logical id
    /// of an `AWS::Lambda::EventSourceMapping`.
    pub source: String,
    pub function: FunctionRef,
    pub queue: QueueRef,
    /// `BatchSize` (default 10): most records per invocation.
    pub batch_size: u32,
    /// `MaximumBatchingWindowInSeconds` (default 0).
    pub batching_window: Duration,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_batch_item_failures: bool,
    /// `Enabled` (default true).
    pub enabled: bool,
}

/// One EventBridge schedule (`rate(...)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleMapping {
    /// `HealthCheckFunction.Events.EveryMinute`.
    pub source: String,
    pub function: FunctionRef,
    /// `Schedule`, as written (`rate(1 minute)`).
    pub expression: String,
    pub every: Duration,
    /// `Enabled` / `State` (default enabled).
    pub enabled: bool,
}

/// Every event source of the template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSources {
    pub queues: Vec<SqsMapping>,
    pub schedules: Vec<ScheduleMapping>,
}

impl EventSources {
    /// Reads the event sources of `template` with every parameter at its `Default` and the
    /// stack name `stack_name` (for `${AWS::StackName}` in values).
    pub fn from_template(template: &Template, stack_name: &str) -> anyhow::Result<EventSources> {
        let ctx = Context::new(template, stack_name, "us-east-1", BTreeMap::new())?;
        let mut out = EventSources::default();
        for (id, resource) in &template.resources {
            if let Some(condition) = &resource.condition {
                if !ctx.condition(condition)? {
                    continue;
                }
            }
            match resource.kind.as_str() {
                SAM_FUNCTION => {
                    let Some(events) = resource.properties.get("Events") else {
                        continue;
                    };
                    let events = events
                        .as_object()
                        .ok_or_else(|| anyhow!("{id}: Events is not a mapping"))?;
                    for (event_id, event) in events {
                        let source = format!("{id}.Events.{event_id}");
                        let kind = event.get("Type").and_then(Json::as_str).unwrap_or_default();
                        let empty = Map::new();
                        let props = event
                            .get("Properties")
                            .and_then(Json::as_object)
                            .unwrap_or(&empty);
                        match kind {
                            "SQS" => out.queues.push(
                                sam_sqs(template, &ctx, id, props, source.clone())
                                    .with_context(|| source.clone())?,
                            ),
                            "Schedule" | "ScheduleV2" => out.schedules.push(
                                sam_schedule(template, &ctx, id, props, source.clone())
                                    .with_context(|| source.clone())?,
                            ),
                            _ => {}
                        }
                    }
                }
                EVENT_SOURCE_MAPPING => {
                    if let Some(mapping) = lambda_mapping(template, &ctx, id, &resource.properties)
                        .with_context(|| id.clone())?
                    {
                        out.queues.push(mapping);
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

fn number(ctx: &Context<'_>, value: Option<&Json>, what: &str) -> anyhow::Result<Option<u64>> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text = ctx.eval_string(value)?;
    text.trim()
        .parse::<u64>()
        .map(Some)
        .map_err(|_| anyhow!("{what} {text:?} is not a whole number"))
}

fn flag(ctx: &Context<'_>, value: Option<&Json>, default: bool) -> anyhow::Result<bool> {
    let Some(value) = value else {
        return Ok(default);
    };
    match ctx.eval_string(value)?.to_ascii_lowercase().as_str() {
        "true" | "enabled" => Ok(true),
        "false" | "disabled" => Ok(false),
        other => bail!("expected true or false, found {other:?}"),
    }
}

/// The logical id a `!GetAtt X.Arn` / `!Ref X` (or `!Sub` of one) names.
fn referenced(template: &Template, value: &Json, what: &str) -> anyhow::Result<String> {
    let refs = referenced_resources(template, value);
    let mut refs = refs.into_iter();
    match (refs.next(), refs.next()) {
        (Some(one), None) => Ok(one),
        _ => bail!("{what} must name one resource of the template (!GetAtt X.Arn or !Ref X)"),
    }
}

fn function_ref(template: &Template, ctx: &Context<'_>, id: &str) -> anyhow::Result<FunctionRef> {
    let resource = template
        .resources
        .get(id)
        .ok_or_else(|| anyhow!("function {id} is not in the template"))?;
    if !matches!(resource.kind.as_str(), SAM_FUNCTION | LAMBDA_FUNCTION) {
        bail!("{id} is a {}, not a function", resource.kind);
    }
    let name = resource
        .metadata
        .get("BuildProperties")
        .and_then(|b| b.get("Binary"))
        .map(plain_string)
        .transpose()?
        .ok_or_else(|| {
            anyhow!("{id} has no Metadata.BuildProperties.Binary: the local stack cannot name its cargo-lambda binary")
        })?;
    let global_timeout = template
        .globals
        .get("Function")
        .and_then(|f| f.get("Timeout"));
    let timeout = match resource
        .properties
        .get("Timeout")
        .or(if resource.kind == SAM_FUNCTION {
            global_timeout
        } else {
            None
        }) {
        Some(value) => Duration::from_secs(number(ctx, Some(value), "Timeout")?.unwrap_or(3)),
        None => DEFAULT_TIMEOUT,
    };
    Ok(FunctionRef {
        logical_id: id.to_owned(),
        name,
        timeout,
    })
}

fn queue_ref(template: &Template, ctx: &Context<'_>, id: &str) -> anyhow::Result<QueueRef> {
    let resource = template
        .resources
        .get(id)
        .ok_or_else(|| anyhow!("queue {id} is not in the template"))?;
    if resource.kind != QUEUE {
        bail!("{id} is a {}, not an SQS queue", resource.kind);
    }
    let props = &resource.properties;
    let visibility_timeout = number(ctx, props.get("VisibilityTimeout"), "VisibilityTimeout")?
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_VISIBILITY_TIMEOUT);
    let (max_receive_count, dead_letter_queue) = match props.get("RedrivePolicy") {
        None => (None, None),
        Some(policy) => {
            let count = number(ctx, policy.get("maxReceiveCount"), "maxReceiveCount")?
                .ok_or_else(|| anyhow!("{id}: RedrivePolicy has no maxReceiveCount"))?;
            let target = policy
                .get("deadLetterTargetArn")
                .ok_or_else(|| anyhow!("{id}: RedrivePolicy has no deadLetterTargetArn"))?;
            (
                Some(u32::try_from(count).context("maxReceiveCount")?),
                Some(referenced(template, target, "deadLetterTargetArn")?),
            )
        }
    };
    Ok(QueueRef {
        logical_id: id.to_owned(),
        fifo: flag(ctx, props.get("FifoQueue"), false)?,
        visibility_timeout,
        max_receive_count,
        dead_letter_queue,
    })
}

fn reports_failures(value: Option<&Json>) -> bool {
    value
        .and_then(Json::as_array)
        .is_some_and(|types| types.iter().any(|t| t == "ReportBatchItemFailures"))
}

fn sam_sqs(
    template: &Template,
    ctx: &Context<'_>,
    function_id: &str,
    props: &Map<String, Json>,
    source: String,
) -> anyhow::Result<SqsMapping> {
    let queue = props
        .get("Queue")
        .ok_or_else(|| anyhow!("an SQS event needs Queue"))?;
    let queue_id = referenced(template, queue, "Queue")?;
    mapping(
        template,
        ctx,
        function_id,
        &queue_id,
        props,
        props.get("Enabled"),
        source,
    )
}

fn lambda_mapping(
    template: &Template,
    ctx: &Context<'_>,
    id: &str,
    props: &Map<String, Json>,
) -> anyhow::Result<Option<SqsMapping>> {
    let Some(arn) = props.get("EventSourceArn") else {
        return Ok(None);
    };
    let source_id = referenced(template, arn, "EventSourceArn")?;
    if template.resources.get(&source_id).map(|r| r.kind.as_str()) != Some(QUEUE) {
        return Ok(None); // a stream or another kind of source: not replicated locally
    }
    let function = props
        .get("FunctionName")
        .ok_or_else(|| anyhow!("an event source mapping needs FunctionName"))?;
    let function_id = referenced(template, function, "FunctionName")?;
    mapping(
        template,
        ctx,
        &function_id,
        &source_id,
        props,
        props.get("Enabled"),
        id.to_owned(),
    )
    .map(Some)
}

fn mapping(
    template: &Template,
    ctx: &Context<'_>,
    function_id: &str,
    queue_id: &str,
    props: &Map<String, Json>,
    enabled: Option<&Json>,
    source: String,
) -> anyhow::Result<SqsMapping> {
    let queue = queue_ref(template, ctx, queue_id)?;
    let batch_size = number(ctx, props.get("BatchSize"), "BatchSize")?
        .map(u32::try_from)
        .transpose()
        .context("BatchSize")?
        .unwrap_or(DEFAULT_BATCH_SIZE);
    let limit = if queue.fifo { 10 } else { 10_000 };
    if batch_size == 0 || batch_size > limit {
        bail!("BatchSize {batch_size} is outside 1-{limit}");
    }
    let batching_window = number(
        ctx,
        props.get("MaximumBatchingWindowInSeconds"),
        "MaximumBatchingWindowInSeconds",
    )?
    .map(Duration::from_secs)
    .unwrap_or_default();
    Ok(SqsMapping {
        source,
        function: function_ref(template, ctx, function_id)?,
        queue,
        batch_size,
        batching_window,
        report_batch_item_failures: reports_failures(props.get("FunctionResponseTypes")),
        enabled: flag(ctx, enabled, true)?,
    })
}

fn sam_schedule(
    template: &Template,
    ctx: &Context<'_>,
    function_id: &str,
    props: &Map<String, Json>,
    source: String,
) -> anyhow::Result<ScheduleMapping> {
    let expression = ctx.eval_string(
        props
            .get("Schedule")
            .or_else(|| props.get("ScheduleExpression"))
            .ok_or_else(|| anyhow!("a Schedule event needs Schedule"))?,
    )?;
    let every = parse_rate(&expression)?;
    let enabled = match props.get("State") {
        Some(state) => flag(ctx, Some(state), true)?,
        None => flag(ctx, props.get("Enabled"), true)?,
    };
    Ok(ScheduleMapping {
        source,
        function: function_ref(template, ctx, function_id)?,
        expression,
        every,
        enabled,
    })
}

/// `rate(1 minute)`, `rate(5 minutes)`, `rate(2 hours)`, `rate(1 day)`.
pub fn parse_rate(expression: &str) -> anyhow::Result<Duration> {
    let inner = expression
        .trim()
        .strip_prefix("rate(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            anyhow!("schedule {expression:?}: only rate(...) expressions run locally (not cron)")
        })?;
    let (value, unit) = inner
        .trim()
        .split_once(' ')
        .ok_or_else(|| anyhow!("schedule {expression:?}: expected rate(<value> <unit>)"))?;
    let value: u64 = value
        .parse()
        .map_err(|_| anyhow!("schedule {expression:?}: {value:?} is not a whole number"))?;
    let unit_secs = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3_600,
        "day" | "days" => 86_400,
        other => bail!("schedule {expression:?}: unknown unit {other:?}"),
    };
    if value == 0 {
        bail!("schedule {expression:?}: the rate must be positive");
    }
    Ok(Duration::from_secs(value * unit_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_template_maps_the_outbound_queue_to_the_sender_and_the_schedule_to_the_health_check()
     {
        let template = Template::load(&crate::workspace_template()).unwrap();
        let sources = EventSources::from_template(&template, "wagate-local").unwrap();

        assert_eq!(sources.queues.len(), 1, "{:#?}", sources.queues);
        let outbound = &sources.queues[0];
        assert_eq!(
            outbound.source,
            "OutboundSenderFunction.Events.OutboundQueue"
        );
        assert_eq!(outbound.function.name, "outbound-sender");
        assert_eq!(outbound.function.timeout, Duration::from_secs(30));
        assert_eq!(outbound.queue.logical_id, "OutboundQueue");
        assert!(outbound.queue.fifo);
        assert_eq!(outbound.queue.visibility_timeout, Duration::from_secs(180));
        assert_eq!(outbound.queue.max_receive_count, Some(5));
        assert_eq!(
            outbound.queue.dead_letter_queue.as_deref(),
            Some("OutboundDLQ")
        );
        assert_eq!(outbound.batch_size, 10);
        assert!(outbound.report_batch_item_failures);
        assert!(outbound.enabled);

        assert_eq!(sources.schedules.len(), 1);
        let health = &sources.schedules[0];
        assert_eq!(health.function.name, "health-check");
        assert_eq!(health.function.timeout, Duration::from_secs(50));
        assert_eq!(health.every, Duration::from_secs(60));
    }

    const TEMPLATE: &str = r#"
Globals:
  Function:
    Timeout: 7
Resources:
  Dlq:
    Type: AWS::SQS::Queue
  Work:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 2
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt Dlq.Arn
        maxReceiveCount: 3
  Plain:
    Type: AWS::SQS::Queue
  Worker:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: worker
    Properties:
      Events:
        FromWork:
          Type: SQS
          Properties:
            Queue: !GetAtt Work.Arn
            BatchSize: 3
            MaximumBatchingWindowInSeconds: 1
            FunctionResponseTypes: [ReportBatchItemFailures]
  Other:
    Type: AWS::Lambda::Function
    Metadata:
      BuildProperties:
        Binary: other
    Properties:
      Timeout: 4
  OtherMapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: !GetAtt Plain.Arn
      FunctionName: !Ref Other
      Enabled: false
"#;

    #[test]
    fn sam_events_and_event_source_mappings_are_both_read_with_their_defaults() {
        let template = Template::parse(TEMPLATE).unwrap();
        let sources = EventSources::from_template(&template, "s").unwrap();
        let worker = sources
            .queues
            .iter()
            .find(|m| m.function.name == "worker")
            .unwrap();
        assert_eq!(worker.function.timeout, Duration::from_secs(7), "Globals");
        assert_eq!(worker.batch_size, 3);
        assert_eq!(worker.batching_window, Duration::from_secs(1));
        assert_eq!(worker.queue.visibility_timeout, Duration::from_secs(2));
        assert_eq!(worker.queue.max_receive_count, Some(3));
        assert_eq!(worker.queue.dead_letter_queue.as_deref(), Some("Dlq"));
        assert!(worker.report_batch_item_failures);

        let other = sources
            .queues
            .iter()
            .find(|m| m.function.name == "other")
            .unwrap();
        assert_eq!(other.source, "OtherMapping");
        assert_eq!(other.function.timeout, Duration::from_secs(4));
        assert_eq!(other.batch_size, 10);
        assert_eq!(other.queue.visibility_timeout, Duration::from_secs(30));
        assert_eq!(other.queue.max_receive_count, None);
        assert!(!other.report_batch_item_failures);
        assert!(!other.enabled);
    }

    #[test]
    fn a_function_without_a_binary_name_or_a_foreign_queue_is_an_error() {
        let no_binary = TEMPLATE.replace("        Binary: worker\n", "        Other: x\n");
        let err =
            EventSources::from_template(&Template::parse(&no_binary).unwrap(), "s").unwrap_err();
        assert!(
            format!("{err:#}").contains("BuildProperties.Binary"),
            "{err:#}"
        );

        let foreign = TEMPLATE.replace(
            "Queue: !GetAtt Work.Arn",
            "Queue: arn:aws:sqs:us-east-1:1:elsewhere",
        );
        let err =
            EventSources::from_template(&Template::parse(&foreign).unwrap(), "s").unwrap_err();
        assert!(
            format!("{err:#}").contains("must name one resource"),
            "{err:#}"
        );
    }

    #[test]
    fn fifo_batches_are_at_most_ten() {
        let fifo = TEMPLATE
            .replace(
                "      VisibilityTimeout: 2\n",
                "      VisibilityTimeout: 2\n      FifoQueue: true\n",
            )
            .replace("BatchSize: 3", "BatchSize: 11");
        let err = EventSources::from_template(&Template::parse(&fifo).unwrap(), "s").unwrap_err();
        assert!(format!("{err:#}").contains("outside 1-10"), "{err:#}");
    }

    #[test]
    fn rates_parse_and_cron_is_refused() {
        assert_eq!(
            parse_rate("rate(1 minute)").unwrap(),
            Duration::from_secs(60)
        );
        assert_eq!(
            parse_rate("rate(5 minutes)").unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            parse_rate("rate(2 hours)").unwrap(),
            Duration::from_secs(7200)
        );
        assert!(parse_rate("cron(0 12 * * ? *)").is_err());
        assert!(parse_rate("rate(0 minutes)").is_err());
        assert!(parse_rate("rate(1 fortnight)").is_err());
    }
}
