//! Creating the template's tables, queues and keys in moto_server (or any endpoint the SDK
//! config points at), so the local stack is built from the same definitions that deploy.
//!
//! Created: every `AWS::DynamoDB::Table` (key schema, attribute definitions, GSIs and LSIs,
//! billing mode and throughput, stream, TTL, tags), every `AWS::SQS::Queue` (FIFO settings,
//! visibility, retention, delay, sizes, redrive and redrive-allow policies, SSE flag, tags),
//! every `AWS::KMS::Key` (spec, usage, description, rotation, enabled, tags) and every
//! `AWS::KMS::Alias`. Resources are created in dependency order (`Ref`, `Fn::GetAtt`,
//! `Fn::Sub`, `DependsOn`), independent ones concurrently.
//!
//! Properties with no local effect are skipped on purpose (table SSE, point-in-time recovery,
//! deletion protection, table class; key policy, pending window, multi-region; queue KMS
//! settings). Any other property makes provisioning fail with its name, so a template change the
//! local stack would silently ignore is noticed here rather than in AWS.
//!
//! Re-running on an existing stack succeeds: existing tables are checked against the template
//! (key schema and index names) and kept, queues with changed attributes are updated, keys are
//! found again through a bookkeeping alias `alias/wagate-devstack/<stack>/<LogicalId>`, and
//! aliases are re-pointed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value as Json};
use tokio::task::JoinSet;

use crate::template::{Context, ResourceValues, Template, referenced_resources};

const TABLE: &str = "AWS::DynamoDB::Table";
const QUEUE: &str = "AWS::SQS::Queue";
const KEY: &str = "AWS::KMS::Key";
const ALIAS: &str = "AWS::KMS::Alias";

/// What [`provision`] created, by the template's logical ids.
#[derive(Debug, Clone, Default)]
pub struct Provisioned {
    /// The stack name used for `${AWS::StackName}`.
    pub stack_name: String,
    /// The region of the SDK config.
    pub region: String,
    /// The endpoint the SDK config points at (`AWS_ENDPOINT_URL`), if any.
    pub endpoint_url: Option<String>,
    /// DynamoDB tables: logical id -> table name.
    pub tables: BTreeMap<String, String>,
    /// SQS queues: logical id -> queue URL.
    pub queues: BTreeMap<String, String>,
    /// KMS keys: logical id -> key id.
    pub keys: BTreeMap<String, String>,
    /// KMS aliases: logical id -> alias name (`alias/...`).
    pub aliases: BTreeMap<String, String>,
    /// ARNs of tables, queues and keys: logical id -> ARN.
    pub arns: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
}

impl Provisioned {
    /// The variables the functions read to find these resources, e.g. `TENANTS_TABLE`,
    /// `KMS_KEY_ID`, `INBOUND_QUEUE_URL`, `INBOUND_DLQ_URL`.
    ///
    /// Derived in two steps, the first winning on a clash:
    /// 1. every function's `Environment.Variables` in the template (SAM `Globals` included)
    ///    whose value refers to a created resource (`!Ref TenantsTable`, `!GetAtt Q.Arn`,
    ///    `!Sub ...`), evaluated against the local resources; when two functions give one
    ///    variable different values, the first function by logical id wins;
    /// 2. a name for every created resource from its logical id in SCREAMING_SNAKE_CASE:
    ///    tables get `_TABLE` unless the id already ends in `Table` (`TenantsTable` ->
    ///    `TENANTS_TABLE`), queues `_URL` (`InboundDLQ` -> `INBOUND_DLQ_URL`), keys `_ID`
    ///    (`ConfigKey` -> `CONFIG_KEY_ID`), aliases `_NAME`.
    ///
    /// Variables that only carry parameters or literals (`JWT_ISSUER`, `RUST_LOG`) are not
    /// included: they are local choices, not resources.
    pub fn env(&self) -> BTreeMap<String, String> {
        self.env.clone()
    }

    /// `AWS_ENDPOINT_URL` and `AWS_REGION` as the SDK config had them, for a process that must
    /// reach the same local services.
    pub fn aws_env(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(endpoint) = &self.endpoint_url {
            out.insert("AWS_ENDPOINT_URL".to_owned(), endpoint.clone());
        }
        out.insert("AWS_REGION".to_owned(), self.region.clone());
        out
    }
}

/// Creates the template's tables, queues, keys and aliases for `stack_name`, with every
/// parameter at its `Default`. See the module documentation.
pub async fn provision(
    sdk: &aws_config::SdkConfig,
    template: &Path,
    stack_name: &str,
) -> anyhow::Result<Provisioned> {
    provision_with_parameters(sdk, template, stack_name, &BTreeMap::new()).await
}

/// [`provision`] with parameter values overriding the template's defaults.
pub async fn provision_with_parameters(
    sdk: &aws_config::SdkConfig,
    template_path: &Path,
    stack_name: &str,
    parameters: &BTreeMap<String, String>,
) -> anyhow::Result<Provisioned> {
    let template = Template::load(template_path)?;
    provision_template(sdk, &template, stack_name, parameters).await
}

/// [`provision_with_parameters`] for an already parsed template.
pub async fn provision_template(
    sdk: &aws_config::SdkConfig,
    template: &Template,
    stack_name: &str,
    parameters: &BTreeMap<String, String>,
) -> anyhow::Result<Provisioned> {
    check_stack_name(stack_name)?;
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .ok_or_else(|| anyhow!("no AWS region configured (set AWS_REGION)"))?;
    let clients = Clients {
        dynamodb: aws_sdk_dynamodb::Client::new(sdk),
        sqs: aws_sdk_sqs::Client::new(sdk),
        kms: aws_sdk_kms::Client::new(sdk),
    };
    let mut ctx = Context::new(template, stack_name, &region, parameters.clone())?;

    // The resources to create and what each waits for.
    let mut pending: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, resource) in &template.resources {
        if !matches!(resource.kind.as_str(), TABLE | QUEUE | KEY | ALIAS) {
            continue;
        }
        if let Some(condition) = &resource.condition {
            if !ctx.condition(condition)? {
                continue;
            }
        }
        let mut deps = referenced_resources(template, &Json::Object(resource.properties.clone()));
        deps.extend(resource.depends_on.iter().cloned());
        pending.insert(id.clone(), deps);
    }
    let wanted: BTreeSet<String> = pending.keys().cloned().collect();
    for deps in pending.values_mut() {
        deps.retain(|d| wanted.contains(d));
    }

    let mut provisioned = Provisioned {
        stack_name: stack_name.to_owned(),
        region: region.clone(),
        endpoint_url: sdk.endpoint_url().map(str::to_owned),
        ..Provisioned::default()
    };

    while !pending.is_empty() {
        let ready: Vec<String> = pending
            .iter()
            .filter(|(_, deps)| deps.iter().all(|d| ctx.resources.contains_key(d)))
            .map(|(id, _)| id.clone())
            .collect();
        if ready.is_empty() {
            bail!(
                "circular references between {:?}",
                pending.keys().collect::<Vec<_>>()
            );
        }
        let mut tasks = JoinSet::new();
        for id in ready {
            pending.remove(&id);
            let resource = &template.resources[&id];
            let plan = Plan::build(&ctx, &id, &resource.kind, &resource.properties)
                .with_context(|| format!("{id} ({})", resource.kind))?;
            let clients = clients.clone();
            let stack = stack_name.to_owned();
            tasks.spawn(async move {
                let kind = plan.kind();
                let result = plan.execute(&clients, &stack).await;
                (id, kind, result)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (id, kind, result) = joined.context("a provisioning task panicked")?;
            let values = result.with_context(|| format!("creating {id} ({kind})"))?;
            if let Some(arn) = values.attributes.get("Arn") {
                ctx.learn_account_from_arn(arn);
                provisioned.arns.insert(id.clone(), arn.clone());
            }
            let target = match kind {
                TABLE => &mut provisioned.tables,
                QUEUE => &mut provisioned.queues,
                KEY => &mut provisioned.keys,
                _ => &mut provisioned.aliases,
            };
            target.insert(id.clone(), values.reference.clone());
            ctx.resources.insert(id, values);
        }
    }

    provisioned.env = derive_env(template, &ctx, &provisioned)?;
    Ok(provisioned)
}

fn check_stack_name(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid {
        bail!(
            "stack name {name:?}: use letters, digits and '-', starting with a letter (as CloudFormation does)"
        );
    }
    Ok(())
}

fn derive_env(
    template: &Template,
    ctx: &Context<'_>,
    provisioned: &Provisioned,
) -> anyhow::Result<BTreeMap<String, String>> {
    let created: BTreeSet<&String> = ctx.resources.keys().collect();
    let mut env = BTreeMap::new();
    for (function, variables) in template.function_environments() {
        for (name, value) in variables {
            let refs = referenced_resources(template, &value);
            if refs.is_empty() || !refs.iter().all(|r| created.contains(r)) {
                continue;
            }
            let resolved = ctx
                .eval_string(&value)
                .with_context(|| format!("{function}: environment variable {name}"))?;
            env.entry(name).or_insert(resolved);
        }
    }
    let conventional = [
        (&provisioned.tables, "_TABLE"),
        (&provisioned.queues, "_URL"),
        (&provisioned.keys, "_ID"),
        (&provisioned.aliases, "_NAME"),
    ];
    for (resources, suffix) in conventional {
        for (id, value) in resources {
            let mut name = screaming_snake(id);
            if !name.ends_with(suffix) {
                name.push_str(suffix);
            }
            env.entry(name).or_insert_with(|| value.clone());
        }
    }
    Ok(env)
}

/// `InboundDLQ` -> `INBOUND_DLQ`, `TenantsTable` -> `TENANTS_TABLE`.
pub fn screaming_snake(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    let mut out = String::with_capacity(id.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push('_');
        }
    }
    out
}

#[derive(Clone)]
struct Clients {
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    kms: aws_sdk_kms::Client,
}

/// A resource resolved against the context, ready to create without it.
enum Plan {
    Table { spec: TableSpec },
    Queue { id: String, spec: QueueSpec },
    Key { id: String, spec: KeySpec },
    Alias { spec: AliasSpec },
}

impl Plan {
    fn build(
        ctx: &Context<'_>,
        id: &str,
        kind: &str,
        properties: &Map<String, Json>,
    ) -> anyhow::Result<Plan> {
        let (handled, ignored): (&[&str], &[&str]) = match kind {
            TABLE => (TABLE_HANDLED, TABLE_IGNORED),
            QUEUE => (QUEUE_HANDLED, QUEUE_IGNORED),
            KEY => (KEY_HANDLED, KEY_IGNORED),
            _ => (ALIAS_HANDLED, &[]),
        };
        let mut used = Map::new();
        for (name, value) in properties {
            if handled.contains(&name.as_str()) {
                used.insert(name.clone(), value.clone());
            } else if !ignored.contains(&name.as_str()) {
                bail!(
                    "property {name} is not replicated by the local stack; teach tools/devstack (provision.rs) about it"
                );
            }
        }
        let resolved = ctx.eval(&Json::Object(used))?.unwrap_or(Json::Null);
        let plan = match kind {
            TABLE => {
                let cfn: CfnTable = serde_json::from_value(resolved)?;
                Plan::Table {
                    spec: TableSpec::from_cfn(cfn, &ctx.stack_name, id),
                }
            }
            QUEUE => {
                let cfn: CfnQueue = serde_json::from_value(resolved)?;
                Plan::Queue {
                    id: id.to_owned(),
                    spec: QueueSpec::from_cfn(cfn, &ctx.stack_name, id)?,
                }
            }
            KEY => {
                let cfn: CfnKey = serde_json::from_value(resolved)?;
                Plan::Key {
                    id: id.to_owned(),
                    spec: KeySpec::from_cfn(cfn)?,
                }
            }
            _ => Plan::Alias {
                spec: serde_json::from_value(resolved)?,
            },
        };
        Ok(plan)
    }

    fn kind(&self) -> &'static str {
        match self {
            Plan::Table { .. } => TABLE,
            Plan::Queue { .. } => QUEUE,
            Plan::Key { .. } => KEY,
            Plan::Alias { .. } => ALIAS,
        }
    }

    async fn execute(self, clients: &Clients, stack: &str) -> anyhow::Result<ResourceValues> {
        match self {
            Plan::Table { spec } => create_table(&clients.dynamodb, spec).await,
            Plan::Queue { id, spec } => create_queue(&clients.sqs, &id, spec).await,
            Plan::Key { id, spec } => create_key(&clients.kms, stack, &id, spec).await,
            Plan::Alias { spec } => create_alias(&clients.kms, spec).await,
        }
    }
}

// ------------------------------------------------------------------------------------------
// Property lists
// ------------------------------------------------------------------------------------------

const TABLE_HANDLED: &[&str] = &[
    "TableName",
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "BillingMode",
    "ProvisionedThroughput",
    "StreamSpecification",
    "TimeToLiveSpecification",
    "Tags",
];
const TABLE_IGNORED: &[&str] = &[
    "SSESpecification",
    "PointInTimeRecoverySpecification",
    "DeletionProtectionEnabled",
    "TableClass",
    "ContributorInsightsSpecification",
    "ResourcePolicy",
    "OnDemandThroughput",
    "WarmThroughput",
];
const QUEUE_HANDLED: &[&str] = &[
    "QueueName",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "SqsManagedSseEnabled",
    "Tags",
];
const QUEUE_IGNORED: &[&str] = &["KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds"];
const KEY_HANDLED: &[&str] = &[
    "Description",
    "KeySpec",
    "KeyUsage",
    "EnableKeyRotation",
    "Enabled",
    "Tags",
];
const KEY_IGNORED: &[&str] = &[
    "KeyPolicy",
    "PendingWindowInDays",
    "MultiRegion",
    "RotationPeriodInDays",
    "BypassPolicyLockoutSafetyCheck",
];
const ALIAS_HANDLED: &[&str] = &["AliasName", "TargetKeyId"];

// ------------------------------------------------------------------------------------------
// CloudFormation property shapes (after evaluation)
// ------------------------------------------------------------------------------------------

/// A number that a template may also write as a string (`"5"`, or a parameter's value).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
enum Num {
    Int(i64),
    Text(#[serde(deserialize_with = "de_int_text")] i64),
}

impl Num {
    fn get(self) -> i64 {
        match self {
            Num::Int(n) | Num::Text(n) => n,
        }
    }
}

fn de_int_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let text = String::deserialize(d)?;
    text.trim().parse().map_err(serde::de::Error::custom)
}

/// A boolean that a template may also write as `"true"` / `"false"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(#[serde(deserialize_with = "de_bool_text")] bool),
}

impl Flag {
    fn get(self) -> bool {
        match self {
            Flag::Bool(b) | Flag::Text(b) => b,
        }
    }
}

fn de_bool_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let text = String::deserialize(d)?;
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(serde::de::Error::custom(format!("not a boolean: {other}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CfnTag {
    key: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CfnTable {
    table_name: Option<String>,
    #[serde(default)]
    attribute_definitions: Vec<CfnAttribute>,
    key_schema: Vec<CfnKeyElement>,
    #[serde(default)]
    global_secondary_indexes: Vec<CfnIndex>,
    #[serde(default)]
    local_secondary_indexes: Vec<CfnIndex>,
    billing_mode: Option<String>,
    provisioned_throughput: Option<CfnThroughput>,
    stream_specification: Option<CfnStream>,
    time_to_live_specification: Option<CfnTtl>,
    #[serde(default)]
    tags: Vec<CfnTag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CfnAttribute {
    attribute_name: String,
    attribute_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CfnKeyElement {
    attribute_name: String,
    key_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CfnIndex {
    index_name: String,
    key_schema: Vec<CfnKeyElement>,
    projection: CfnProjection,
    provisioned_throughput: Option<CfnThroughput>,
    // No local effect.
    #[serde(default, rename = "ContributorInsightsSpecification")]
    _contributor_insights: Option<IgnoredAny>,
    #[serde(default, rename = "OnDemandThroughput")]
    _on_demand_throughput: Option<IgnoredAny>,
    #[serde(default, rename = "WarmThroughput")]
    _warm_throughput: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CfnProjection {
    projection_type: Option<String>,
    #[serde(default)]
    non_key_attributes: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CfnThroughput {
    read_capacity_units: Num,
    write_capacity_units: Num,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CfnStream {
    stream_view_type: String,
    #[serde(default, rename = "ResourcePolicy")]
    _resource_policy: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CfnTtl {
    attribute_name: Option<String>,
    enabled: Flag,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CfnQueue {
    queue_name: Option<String>,
    fifo_queue: Option<Flag>,
    content_based_deduplication: Option<Flag>,
    deduplication_scope: Option<String>,
    fifo_throughput_limit: Option<String>,
    visibility_timeout: Option<Num>,
    message_retention_period: Option<Num>,
    delay_seconds: Option<Num>,
    maximum_message_size: Option<Num>,
    receive_message_wait_time_seconds: Option<Num>,
    redrive_policy: Option<Json>,
    redrive_allow_policy: Option<Json>,
    sqs_managed_sse_enabled: Option<Flag>,
    #[serde(default)]
    tags: Vec<CfnTag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CfnKey {
    description: Option<String>,
    key_spec: Option<String>,
    key_usage: Option<String>,
    enable_key_rotation: Option<Flag>,
    enabled: Option<Flag>,
    #[serde(default)]
    tags: Vec<CfnTag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AliasSpec {
    alias_name: String,
    target_key_id: String,
}

// ------------------------------------------------------------------------------------------
// DynamoDB
// ------------------------------------------------------------------------------------------

struct TableSpec {
    name: String,
    cfn: CfnTable,
}

impl TableSpec {
    fn from_cfn(cfn: CfnTable, stack: &str, id: &str) -> TableSpec {
        let name = cfn
            .table_name
            .clone()
            .unwrap_or_else(|| format!("{stack}-{id}"));
        TableSpec { name, cfn }
    }
}

fn key_schema(
    elements: &[CfnKeyElement],
) -> anyhow::Result<Vec<aws_sdk_dynamodb::types::KeySchemaElement>> {
    use aws_sdk_dynamodb::types::{KeySchemaElement, KeyType};
    elements
        .iter()
        .map(|e| {
            Ok(KeySchemaElement::builder()
                .attribute_name(&e.attribute_name)
                .key_type(KeyType::from(e.key_type.as_str()))
                .build()?)
        })
        .collect()
}

fn throughput(
    t: Option<CfnThroughput>,
) -> anyhow::Result<Option<aws_sdk_dynamodb::types::ProvisionedThroughput>> {
    t.map(|t| {
        Ok(aws_sdk_dynamodb::types::ProvisionedThroughput::builder()
            .read_capacity_units(t.read_capacity_units.get())
            .write_capacity_units(t.write_capacity_units.get())
            .build()?)
    })
    .transpose()
}

fn projection(p: &CfnProjection) -> aws_sdk_dynamodb::types::Projection {
    use aws_sdk_dynamodb::types::{Projection, ProjectionType};
    Projection::builder()
        .set_projection_type(p.projection_type.as_deref().map(ProjectionType::from))
        .set_non_key_attributes(if p.non_key_attributes.is_empty() {
            None
        } else {
            Some(p.non_key_attributes.clone())
        })
        .build()
}

async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    spec: TableSpec,
) -> anyhow::Result<ResourceValues> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, LocalSecondaryIndex,
        ScalarAttributeType, StreamSpecification, StreamViewType, Tag, TimeToLiveSpecification,
    };
    let cfn = &spec.cfn;
    let mut request = client
        .create_table()
        .table_name(&spec.name)
        .set_key_schema(Some(key_schema(&cfn.key_schema)?))
        .set_provisioned_throughput(throughput(cfn.provisioned_throughput)?);
    for a in &cfn.attribute_definitions {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&a.attribute_name)
                .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                .build()?,
        );
    }
    for g in &cfn.global_secondary_indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&g.index_name)
                .set_key_schema(Some(key_schema(&g.key_schema)?))
                .projection(projection(&g.projection))
                .set_provisioned_throughput(throughput(g.provisioned_throughput)?)
                .build()?,
        );
    }
    for l in &cfn.local_secondary_indexes {
        request = request.local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(&l.index_name)
                .set_key_schema(Some(key_schema(&l.key_schema)?))
                .projection(projection(&l.projection))
                .build()?,
        );
    }
    if let Some(mode) = &cfn.billing_mode {
        request = request.billing_mode(BillingMode::from(mode.as_str()));
    }
    if let Some(stream) = &cfn.stream_specification {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(stream.stream_view_type.as_str()))
                .build()?,
        );
    }
    for t in &cfn.tags {
        request = request.tags(Tag::builder().key(&t.key).value(&t.value).build()?);
    }

    let (description, created) = match request.send().await {
        Ok(out) => (out.table_description, true),
        Err(err) => {
            let service = err.into_service_error();
            if !service.is_resource_in_use_exception() {
                return Err(service.into());
            }
            let existing = client
                .describe_table()
                .table_name(&spec.name)
                .send()
                .await?
                .table;
            (existing, false)
        }
    };
    let description =
        description.ok_or_else(|| anyhow!("no table description for {}", spec.name))?;
    if !created {
        check_existing_table(&spec, &description)?;
    }

    if let Some(ttl) = &cfn.time_to_live_specification {
        if ttl.enabled.get() {
            let attribute = ttl
                .attribute_name
                .clone()
                .ok_or_else(|| anyhow!("TimeToLiveSpecification enabled without AttributeName"))?;
            let already = !created && {
                let current = client
                    .describe_time_to_live()
                    .table_name(&spec.name)
                    .send()
                    .await?;
                current
                    .time_to_live_description
                    .and_then(|d| d.attribute_name)
                    .as_deref()
                    == Some(attribute.as_str())
            };
            if !already {
                client
                    .update_time_to_live()
                    .table_name(&spec.name)
                    .time_to_live_specification(
                        TimeToLiveSpecification::builder()
                            .attribute_name(attribute)
                            .enabled(true)
                            .build()?,
                    )
                    .send()
                    .await
                    .context("enabling TTL")?;
            }
        }
    }

    let mut attributes = BTreeMap::new();
    if let Some(arn) = description.table_arn {
        attributes.insert("Arn".to_owned(), arn);
    }
    if let Some(stream_arn) = description.latest_stream_arn {
        attributes.insert("StreamArn".to_owned(), stream_arn);
    }
    Ok(ResourceValues {
        reference: spec.name,
        attributes,
    })
}

/// An existing table must have the template's key schema and indexes; otherwise the local stack
/// is stale and would hide a difference.
fn check_existing_table(
    spec: &TableSpec,
    existing: &aws_sdk_dynamodb::types::TableDescription,
) -> anyhow::Result<()> {
    let keys = |elements: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<(String, String)> {
        elements
            .iter()
            .map(|e| (e.attribute_name.clone(), e.key_type.as_str().to_owned()))
            .collect()
    };
    let wanted_keys: Vec<(String, String)> = spec
        .cfn
        .key_schema
        .iter()
        .map(|e| (e.attribute_name.clone(), e.key_type.clone()))
        .collect();
    let have_keys = keys(existing.key_schema());
    let wanted_gsis: BTreeSet<&str> = spec
        .cfn
        .global_secondary_indexes
        .iter()
        .map(|g| g.index_name.as_str())
        .collect();
    let have_gsis: BTreeSet<&str> = existing
        .global_secondary_indexes()
        .iter()
        .filter_map(|g| g.index_name.as_deref())
        .collect();
    if wanted_keys != have_keys || wanted_gsis != have_gsis {
        bail!(
            "table {} already exists with another definition (keys {:?}, indexes {:?}; the template wants {:?}, {:?}); \
             wipe the local stack (scripts/moto.sh reset PORT) and provision again",
            spec.name,
            have_keys,
            have_gsis,
            wanted_keys,
            wanted_gsis
        );
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// SQS
// ------------------------------------------------------------------------------------------

struct QueueSpec {
    name: String,
    attributes: HashMap<String, String>,
    tags: HashMap<String, String>,
}

impl QueueSpec {
    fn from_cfn(cfn: CfnQueue, stack: &str, id: &str) -> anyhow::Result<QueueSpec> {
        let fifo = cfn.fifo_queue.is_some_and(Flag::get);
        let name = match cfn.queue_name {
            Some(name) => name,
            None => {
                let mut name = format!("{stack}-{id}");
                name.truncate(if fifo { 75 } else { 80 });
                if fifo {
                    name.push_str(".fifo");
                }
                name
            }
        };
        let mut attributes = HashMap::new();
        let mut put = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                attributes.insert(key.to_owned(), value);
            }
        };
        let flag = |f: Option<Flag>| f.map(|f| f.get().to_string());
        let num = |n: Option<Num>| n.map(|n| n.get().to_string());
        if fifo {
            put("FifoQueue", Some("true".to_owned()));
        }
        put(
            "ContentBasedDeduplication",
            flag(cfn.content_based_deduplication),
        );
        put("DeduplicationScope", cfn.deduplication_scope);
        put("FifoThroughputLimit", cfn.fifo_throughput_limit);
        put("VisibilityTimeout", num(cfn.visibility_timeout));
        put("MessageRetentionPeriod", num(cfn.message_retention_period));
        put("DelaySeconds", num(cfn.delay_seconds));
        put("MaximumMessageSize", num(cfn.maximum_message_size));
        put(
            "ReceiveMessageWaitTimeSeconds",
            num(cfn.receive_message_wait_time_seconds),
        );
        put("SqsManagedSseEnabled", flag(cfn.sqs_managed_sse_enabled));
        put(
            "RedrivePolicy",
            cfn.redrive_policy.map(redrive_policy).transpose()?,
        );
        put(
            "RedriveAllowPolicy",
            cfn.redrive_allow_policy
                .map(|p| match p {
                    Json::String(s) => Ok(s),
                    other => serde_json::to_string(&other),
                })
                .transpose()?,
        );
        let tags = cfn.tags.into_iter().map(|t| (t.key, t.value)).collect();
        Ok(QueueSpec {
            name,
            attributes,
            tags,
        })
    }
}

/// The redrive policy as SQS stores it: `{"deadLetterTargetArn": ..., "maxReceiveCount": n}`.
fn redrive_policy(policy: Json) -> anyhow::Result<String> {
    let policy = match policy {
        Json::String(s) => serde_json::from_str(&s).context("RedrivePolicy is not JSON")?,
        other => other,
    };
    let target = policy
        .get("deadLetterTargetArn")
        .and_then(Json::as_str)
        .ok_or_else(|| anyhow!("RedrivePolicy without deadLetterTargetArn"))?;
    let count = match policy.get("maxReceiveCount") {
        Some(Json::Number(n)) => n.as_i64().ok_or_else(|| anyhow!("maxReceiveCount {n}"))?,
        Some(Json::String(s)) => s.trim().parse()?,
        _ => bail!("RedrivePolicy without maxReceiveCount"),
    };
    Ok(serde_json::json!({"deadLetterTargetArn": target, "maxReceiveCount": count}).to_string())
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    id: &str,
    spec: QueueSpec,
) -> anyhow::Result<ResourceValues> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attributes: HashMap<QueueAttributeName, String> = spec
        .attributes
        .iter()
        .map(|(k, v)| (QueueAttributeName::from(k.as_str()), v.clone()))
        .collect();
    let created = client
        .create_queue()
        .queue_name(&spec.name)
        .set_attributes(Some(attributes.clone()))
        .set_tags(if spec.tags.is_empty() {
            None
        } else {
            Some(spec.tags.clone())
        })
        .send()
        .await;
    let url = match created {
        Ok(out) => out.queue_url,
        Err(err) => {
            let service = err.into_service_error();
            let exists = service.is_queue_name_exists()
                || matches!(
                    service.code(),
                    Some("QueueAlreadyExists" | "QueueNameExists")
                );
            if !exists {
                return Err(service.into());
            }
            // The dev stack has it with other attributes: bring them in line with the template
            // (FifoQueue cannot change and is part of the name anyway).
            let url = client
                .get_queue_url()
                .queue_name(&spec.name)
                .send()
                .await?
                .queue_url;
            let url = url.ok_or_else(|| anyhow!("no URL for existing queue {}", spec.name))?;
            let mut changeable = attributes;
            changeable.remove(&QueueAttributeName::FifoQueue);
            client
                .set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(changeable))
                .send()
                .await
                .context("updating the existing queue's attributes")?;
            Some(url)
        }
    };
    let url = url.ok_or_else(|| anyhow!("no URL for queue {}", spec.name))?;
    let arn = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| anyhow!("no ARN for queue {id}"))?;
    Ok(ResourceValues {
        attributes: BTreeMap::from([
            ("Arn".to_owned(), arn),
            ("QueueName".to_owned(), spec.name),
            ("QueueUrl".to_owned(), url.clone()),
        ]),
        reference: url,
    })
}

// ------------------------------------------------------------------------------------------
// KMS
// ------------------------------------------------------------------------------------------

struct KeySpec {
    description: Option<String>,
    key_spec: String,
    key_usage: String,
    rotation: bool,
    enabled: bool,
    tags: Vec<(String, String)>,
}

impl KeySpec {
    fn from_cfn(cfn: CfnKey) -> anyhow::Result<KeySpec> {
        Ok(KeySpec {
            description: cfn.description,
            key_spec: cfn
                .key_spec
                .unwrap_or_else(|| "SYMMETRIC_DEFAULT".to_owned()),
            key_usage: cfn
                .key_usage
                .unwrap_or_else(|| "ENCRYPT_DECRYPT".to_owned()),
            rotation: cfn.enable_key_rotation.is_some_and(Flag::get),
            enabled: cfn.enabled.is_none_or(Flag::get),
            tags: cfn.tags.into_iter().map(|t| (t.key, t.value)).collect(),
        })
    }
}

/// The alias through which a re-run finds the key it created before.
pub fn bookkeeping_alias(stack: &str, logical_id: &str) -> String {
    format!("alias/wagate-devstack/{stack}/{logical_id}")
}

async fn create_key(
    client: &aws_sdk_kms::Client,
    stack: &str,
    id: &str,
    spec: KeySpec,
) -> anyhow::Result<ResourceValues> {
    use aws_sdk_kms::types::{KeySpec as Spec, KeyState, KeyUsageType, Tag};
    let bookkeeping = bookkeeping_alias(stack, id);
    let existing = match client.describe_key().key_id(&bookkeeping).send().await {
        Ok(out) => out
            .key_metadata
            .filter(|m| m.key_state != Some(KeyState::PendingDeletion)),
        Err(err) => {
            let service = err.into_service_error();
            if !service.is_not_found_exception() {
                return Err(service.into());
            }
            None
        }
    };
    let metadata = match existing {
        Some(metadata) => metadata,
        None => {
            let mut request = client
                .create_key()
                .key_spec(Spec::from(spec.key_spec.as_str()))
                .key_usage(KeyUsageType::from(spec.key_usage.as_str()))
                .set_description(spec.description.clone());
            for (key, value) in &spec.tags {
                request = request.tags(Tag::builder().tag_key(key).tag_value(value).build()?);
            }
            let metadata = request
                .send()
                .await?
                .key_metadata
                .ok_or_else(|| anyhow!("CreateKey returned no metadata"))?;
            client
                .create_alias()
                .alias_name(&bookkeeping)
                .target_key_id(&metadata.key_id)
                .send()
                .await
                .context("creating the bookkeeping alias")?;
            metadata
        }
    };
    let key_id = metadata.key_id.clone();
    if spec.rotation {
        client
            .enable_key_rotation()
            .key_id(&key_id)
            .send()
            .await
            .context("enabling key rotation")?;
    }
    if !spec.enabled && metadata.enabled {
        client.disable_key().key_id(&key_id).send().await?;
    }
    let arn = metadata
        .arn
        .ok_or_else(|| anyhow!("key {key_id} has no ARN"))?;
    Ok(ResourceValues {
        attributes: BTreeMap::from([
            ("Arn".to_owned(), arn),
            ("KeyId".to_owned(), key_id.clone()),
        ]),
        reference: key_id,
    })
}

async fn create_alias(
    client: &aws_sdk_kms::Client,
    spec: AliasSpec,
) -> anyhow::Result<ResourceValues> {
    let created = client
        .create_alias()
        .alias_name(&spec.alias_name)
        .target_key_id(&spec.target_key_id)
        .send()
        .await;
    if let Err(err) = created {
        let service = err.into_service_error();
        if !service.is_already_exists_exception() {
            return Err(service.into());
        }
        client
            .update_alias()
            .alias_name(&spec.alias_name)
            .target_key_id(&spec.target_key_id)
            .send()
            .await
            .context("re-pointing the existing alias")?;
    }
    Ok(ResourceValues {
        reference: spec.alias_name,
        attributes: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screaming_snake_splits_words_and_acronyms() {
        assert_eq!(screaming_snake("TenantsTable"), "TENANTS_TABLE");
        assert_eq!(screaming_snake("InboundDLQ"), "INBOUND_DLQ");
        assert_eq!(screaming_snake("InboundQueue"), "INBOUND_QUEUE");
        assert_eq!(screaming_snake("DLQForSQSEvents"), "DLQ_FOR_SQS_EVENTS");
        assert_eq!(screaming_snake("Table2Name"), "TABLE2_NAME");
    }

    #[test]
    fn redrive_policy_is_normalised() {
        let json = serde_json::json!({"deadLetterTargetArn": "arn:x", "maxReceiveCount": "5"});
        assert_eq!(
            redrive_policy(json).unwrap(),
            r#"{"deadLetterTargetArn":"arn:x","maxReceiveCount":5}"#
        );
    }

    #[test]
    fn unknown_property_is_refused_with_its_name() {
        let template = Template::parse(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      Shiny: true\n",
        )
        .unwrap();
        let ctx = Context::new(&template, "s", "us-east-1", BTreeMap::new()).unwrap();
        let err = Plan::build(&ctx, "Q", QUEUE, &template.resources["Q"].properties)
            .err()
            .unwrap();
        assert!(err.to_string().contains("Shiny"), "{err}");
    }

    #[test]
    fn fifo_queue_without_name_gets_stack_prefixed_fifo_name() {
        let cfn: CfnQueue = serde_json::from_value(
            serde_json::json!({"FifoQueue": "true", "VisibilityTimeout": 30}),
        )
        .unwrap();
        let spec = QueueSpec::from_cfn(cfn, "t-1", "Work").unwrap();
        assert_eq!(spec.name, "t-1-Work.fifo");
        assert_eq!(spec.attributes["FifoQueue"], "true");
        assert_eq!(spec.attributes["VisibilityTimeout"], "30");
    }

    #[test]
    fn stack_names_follow_cloudformation_rules() {
        assert!(check_stack_name("t-0b5c").is_ok());
        assert!(check_stack_name("wagate-local").is_ok());
        assert!(check_stack_name("1abc").is_err());
        assert!(check_stack_name("a_b").is_err());
        assert!(check_stack_name("").is_err());
    }
}
