//! Provisioning against a real moto_server: the local resources match template.yaml.
//!
//! Needs `AWS_ENDPOINT_URL` pointing at a moto_server (scripts/test.sh starts one on
//! 127.0.0.1:4567 and exports it). Without it these tests are skipped with a notice, except
//! under CI or `WAGATE_TEST_MOTO=1`, where a missing moto_server is a failure.
//! Every test provisions its own stack (`t-<random>`), so they run in parallel on one server.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use aws_sdk_dynamodb::types::{BillingMode, KeyType, ProjectionType, ScalarAttributeType};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType};
use aws_sdk_sqs::types::QueueAttributeName;
use common::moto;
use serde_json::Value as Json;
use wagate_devstack::{Provisioned, Template, provision, unique_stack_name, workspace_template};

fn template_path() -> PathBuf {
    workspace_template()
}

fn template() -> Template {
    Template::load(&template_path()).expect("template.yaml parses")
}

async fn fresh_stack(sdk: &aws_config::SdkConfig) -> Provisioned {
    let stack = unique_stack_name();
    provision(sdk, &template_path(), &stack)
        .await
        .unwrap_or_else(|e| panic!("provisioning {stack}: {e:#}"))
}

/// The template's resources of one type, by logical id.
fn resources_of(
    template: &Template,
    kind: &str,
) -> BTreeMap<String, serde_json::Map<String, Json>> {
    template
        .resources
        .iter()
        .filter(|(_, r)| r.kind == kind)
        .map(|(id, r)| (id.clone(), r.properties.clone()))
        .collect()
}

fn number(value: &Json) -> i64 {
    match value {
        Json::Number(n) => n.as_i64().expect("integer"),
        Json::String(s) => s.parse().expect("integer string"),
        other => panic!("not a number: {other}"),
    }
}

async fn queue_attributes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> HashMap<QueueAttributeName, String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("get_queue_attributes")
        .attributes
        .unwrap_or_default()
}

#[tokio::test]
async fn tenants_table_has_the_templates_keys_indexes_and_billing() {
    let Some(sdk) = moto().await else { return };
    let stack = fresh_stack(&sdk).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);

    // The spec's own words for the tenants table.
    let name = &stack.tables["TenantsTable"];
    assert_eq!(name, &format!("{}-tenants", stack.stack_name));
    let table = dynamodb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .expect("describe_table")
        .table
        .expect("table");
    let keys: Vec<_> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name.as_str(), k.key_type.clone()))
        .collect();
    assert_eq!(keys, vec![("tenantId", KeyType::Hash)]);
    let billing = table
        .billing_mode_summary
        .as_ref()
        .and_then(|b| b.billing_mode.clone());
    assert_eq!(billing, Some(BillingMode::PayPerRequest));
    let mut gsis: Vec<_> = table
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            (
                g.index_name.clone().unwrap_or_default(),
                g.key_schema()
                    .iter()
                    .map(|k| (k.attribute_name.clone(), k.key_type.clone()))
                    .collect::<Vec<_>>(),
                g.projection
                    .as_ref()
                    .and_then(|p| p.projection_type.clone()),
            )
        })
        .collect();
    gsis.sort();
    assert_eq!(
        gsis,
        vec![
            (
                "byBackupEndpoint".to_owned(),
                vec![("backupEndpointKey".to_owned(), KeyType::Hash)],
                Some(ProjectionType::All)
            ),
            (
                "byPrimaryEndpoint".to_owned(),
                vec![("primaryEndpointKey".to_owned(), KeyType::Hash)],
                Some(ProjectionType::All)
            ),
        ]
    );
    let string_attributes = table
        .attribute_definitions()
        .iter()
        .filter(|a| a.attribute_type == ScalarAttributeType::S)
        .count();
    assert_eq!(string_attributes, 3);
}

#[tokio::test]
async fn every_template_table_matches_its_definition() {
    let Some(sdk) = moto().await else { return };
    let stack = fresh_stack(&sdk).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let template = template();

    let tables = resources_of(&template, "AWS::DynamoDB::Table");
    assert!(!tables.is_empty());
    assert_eq!(
        stack.tables.len(),
        tables.len(),
        "one local table per template table"
    );
    for (id, props) in tables {
        let name = &stack.tables[&id];
        let table = dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .expect("describe_table")
            .table
            .expect("table");
        let wanted_keys: Vec<(String, String)> = props["KeySchema"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["AttributeName"].as_str().unwrap().to_owned(),
                    k["KeyType"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let have_keys: Vec<(String, String)> = table
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name.clone(), k.key_type.as_str().to_owned()))
            .collect();
        assert_eq!(have_keys, wanted_keys, "{id}: key schema");

        let mut wanted_attrs: Vec<(String, String)> = props["AttributeDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["AttributeName"].as_str().unwrap().to_owned(),
                    a["AttributeType"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let mut have_attrs: Vec<(String, String)> = table
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name.clone(),
                    a.attribute_type.as_str().to_owned(),
                )
            })
            .collect();
        wanted_attrs.sort();
        have_attrs.sort();
        assert_eq!(have_attrs, wanted_attrs, "{id}: attribute definitions");

        let mut wanted_gsis: Vec<(String, String)> = props
            .get("GlobalSecondaryIndexes")
            .and_then(Json::as_array)
            .map(|gsis| {
                gsis.iter()
                    .map(|g| {
                        (
                            g["IndexName"].as_str().unwrap().to_owned(),
                            g["Projection"]["ProjectionType"]
                                .as_str()
                                .unwrap_or("ALL")
                                .to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut have_gsis: Vec<(String, String)> = table
            .global_secondary_indexes()
            .iter()
            .map(|g| {
                (
                    g.index_name.clone().unwrap_or_default(),
                    g.projection
                        .as_ref()
                        .and_then(|p| p.projection_type.as_ref())
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                )
            })
            .collect();
        wanted_gsis.sort();
        have_gsis.sort();
        assert_eq!(have_gsis, wanted_gsis, "{id}: global secondary indexes");

        if let Some(mode) = props.get("BillingMode").and_then(Json::as_str) {
            let have = table
                .billing_mode_summary
                .as_ref()
                .and_then(|b| b.billing_mode.as_ref())
                .map(|b| b.as_str().to_owned());
            assert_eq!(have.as_deref(), Some(mode), "{id}: billing mode");
        }

        if let Some(ttl) = props.get("TimeToLiveSpecification") {
            let described = dynamodb
                .describe_time_to_live()
                .table_name(name)
                .send()
                .await
                .expect("describe_time_to_live")
                .time_to_live_description
                .expect("ttl description");
            assert_eq!(
                described.attribute_name.as_deref(),
                ttl["AttributeName"].as_str(),
                "{id}: TTL attribute"
            );
        }
    }
}

#[tokio::test]
async fn queues_are_fifo_with_redrive_to_their_dead_letter_queue() {
    let Some(sdk) = moto().await else { return };
    let stack = fresh_stack(&sdk).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let template = template();

    let queues = resources_of(&template, "AWS::SQS::Queue");
    assert!(queues.len() >= 4, "inbound, outbound and their DLQs");
    assert_eq!(stack.queues.len(), queues.len());
    for (id, props) in &queues {
        let url = &stack.queues[id];
        let attrs = queue_attributes(&sqs, url).await;
        let name = url.rsplit('/').next().unwrap();
        assert!(
            name.starts_with(&format!("{}-", stack.stack_name)),
            "{id}: {name} is named after the stack"
        );
        if props.get("FifoQueue").is_some() {
            assert!(name.ends_with(".fifo"), "{id}: FIFO names end in .fifo");
            assert_eq!(
                attrs[&QueueAttributeName::FifoQueue],
                "true",
                "{id}: FifoQueue"
            );
            assert_eq!(
                attrs[&QueueAttributeName::ContentBasedDeduplication],
                "false",
                "{id}: no content-based dedup"
            );
        }
        if let Some(v) = props.get("VisibilityTimeout") {
            assert_eq!(
                attrs[&QueueAttributeName::VisibilityTimeout],
                number(v).to_string(),
                "{id}: visibility"
            );
        }
        if let Some(v) = props.get("MessageRetentionPeriod") {
            assert_eq!(
                attrs[&QueueAttributeName::MessageRetentionPeriod],
                number(v).to_string(),
                "{id}: retention"
            );
        }
        if let Some(redrive) = props.get("RedrivePolicy") {
            let dlq_id = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
                .as_str()
                .expect("GetAtt DLQ.Arn");
            let dlq_arn = &stack.arns[dlq_id];
            let policy: Json = serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy])
                .expect("redrive JSON");
            assert_eq!(
                policy["deadLetterTargetArn"].as_str(),
                Some(dlq_arn.as_str()),
                "{id}: DLQ"
            );
            assert_eq!(
                number(&policy["maxReceiveCount"]),
                number(&redrive["maxReceiveCount"]),
                "{id}: maxReceiveCount"
            );
        }
    }

    // The spec's own numbers.
    for (main, dlq) in [
        ("InboundQueue", "InboundDLQ"),
        ("OutboundQueue", "OutboundDLQ"),
    ] {
        let attrs = queue_attributes(&sqs, &stack.queues[main]).await;
        assert_eq!(attrs[&QueueAttributeName::VisibilityTimeout], "180");
        let policy: Json =
            serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
        assert_eq!(policy["maxReceiveCount"], 5);
        assert_eq!(
            policy["deadLetterTargetArn"].as_str(),
            Some(stack.arns[dlq].as_str())
        );
        let dlq_attrs = queue_attributes(&sqs, &stack.queues[dlq]).await;
        assert_eq!(
            dlq_attrs[&QueueAttributeName::MessageRetentionPeriod],
            "1209600",
            "14 days"
        );
        assert_eq!(dlq_attrs[&QueueAttributeName::FifoQueue], "true");
        assert!(
            !dlq_attrs.contains_key(&QueueAttributeName::RedrivePolicy),
            "a DLQ does not redrive further"
        );
    }
}

#[tokio::test]
async fn config_key_is_symmetric_rotating_aliased_and_seals_with_context() {
    let Some(sdk) = moto().await else { return };
    let stack = fresh_stack(&sdk).await;
    let kms = aws_sdk_kms::Client::new(&sdk);

    let key_id = &stack.keys["ConfigKey"];
    let metadata = kms
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .expect("describe_key")
        .key_metadata
        .expect("metadata");
    assert_eq!(metadata.key_spec, Some(KeySpec::SymmetricDefault));
    assert_eq!(metadata.key_usage, Some(KeyUsageType::EncryptDecrypt));
    assert_eq!(metadata.key_state, Some(KeyState::Enabled));
    let rotation = kms
        .get_key_rotation_status()
        .key_id(key_id)
        .send()
        .await
        .expect("rotation status");
    assert!(rotation.key_rotation_enabled, "EnableKeyRotation: true");

    let alias = format!("alias/{}-config", stack.stack_name);
    assert_eq!(stack.aliases["ConfigKeyAlias"], alias);
    let via_alias = kms
        .describe_key()
        .key_id(&alias)
        .send()
        .await
        .expect("describe_key by alias")
        .key_metadata
        .expect("metadata");
    assert_eq!(
        &via_alias.key_id, key_id,
        "the alias targets the config key"
    );

    // Given the provisioned key, when sealing with {tenantId, purpose}, then it opens with the
    // same context only.
    let sealed = kms
        .encrypt()
        .key_id(key_id)
        .plaintext(Blob::new("s3cret"))
        .encryption_context("tenantId", "acme")
        .encryption_context("purpose", "credentials")
        .send()
        .await
        .expect("encrypt")
        .ciphertext_blob
        .expect("ciphertext");
    let opened = kms
        .decrypt()
        .ciphertext_blob(sealed.clone())
        .encryption_context("tenantId", "acme")
        .encryption_context("purpose", "credentials")
        .send()
        .await
        .expect("decrypt")
        .plaintext
        .expect("plaintext");
    assert_eq!(opened.as_ref(), b"s3cret");
    let other_tenant = kms
        .decrypt()
        .ciphertext_blob(sealed)
        .encryption_context("tenantId", "other")
        .encryption_context("purpose", "credentials")
        .send()
        .await;
    assert!(
        other_tenant.is_err(),
        "another tenant's context does not open it"
    );
}

#[tokio::test]
async fn health_history_table_and_the_audit_switch_index_are_provisioned() {
    let Some(sdk) = moto().await else { return };
    let stack = fresh_stack(&sdk).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let env = stack.env();

    let history = &stack.tables["HealthHistoryTable"];
    assert_eq!(history, &format!("{}-health-history", stack.stack_name));
    assert_eq!(
        env["HEALTH_HISTORY_TABLE"], *history,
        "from the functions' Environment"
    );
    let table = dynamodb
        .describe_table()
        .table_name(history)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys: Vec<(String, String)> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name.clone(), k.key_type.as_str().to_owned()))
        .collect();
    assert_eq!(
        keys,
        [
            ("endpointKey".to_owned(), "HASH".to_owned()),
            ("at".to_owned(), "RANGE".to_owned())
        ]
    );
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(history)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.attribute_name.as_deref(), Some("expiresAt"));

    let audit = dynamodb
        .describe_table()
        .table_name(&stack.tables["AuditTable"])
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let index = audit
        .global_secondary_indexes()
        .iter()
        .find(|g| g.index_name() == Some("BySwitchStream"))
        .expect("BySwitchStream");
    let keys: Vec<(String, String)> = index
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name.clone(), k.key_type.as_str().to_owned()))
        .collect();
    assert_eq!(
        keys,
        [
            ("switchStream".to_owned(), "HASH".to_owned()),
            ("at".to_owned(), "RANGE".to_owned())
        ]
    );
}

#[tokio::test]
async fn env_names_every_resource_the_functions_read() {
    let Some(sdk) = moto().await else { return };
    let stack = fresh_stack(&sdk).await;
    let env = stack.env();

    assert_eq!(env["TENANTS_TABLE"], stack.tables["TenantsTable"]);
    assert_eq!(
        env["KMS_KEY_ID"], stack.keys["ConfigKey"],
        "from ConfigApiFunction's Environment"
    );
    assert_eq!(env["INBOUND_QUEUE_URL"], stack.queues["InboundQueue"]);
    assert_eq!(env["OUTBOUND_QUEUE_URL"], stack.queues["OutboundQueue"]);
    assert_eq!(env["INBOUND_DLQ_URL"], stack.queues["InboundDLQ"]);
    assert_eq!(env["OUTBOUND_DLQ_URL"], stack.queues["OutboundDLQ"]);
    assert!(
        !env.contains_key("JWT_ISSUER"),
        "parameters are local choices, not resources"
    );

    // Every resource variable of every function in the template is covered.
    let template = template();
    for (function, variables) in template.function_environments() {
        for (name, value) in variables {
            let refs = wagate_devstack::template::referenced_resources(&template, &value);
            // The webhook base may name the ingress's function URL (WebhookFrontDoor
            // FunctionUrl), which the local stack does not create: scripts/dev.sh sets
            // PUBLIC_WEBHOOK_BASE_URL itself (cargo-lambda's URL).
            if refs.contains("WebhookIngressUrl") {
                assert_eq!(name, "PUBLIC_WEBHOOK_BASE_URL", "{function}");
                assert!(!env.contains_key(&name), "not created locally");
                continue;
            }
            if !refs.is_empty() {
                assert!(
                    env.contains_key(&name),
                    "{function} reads {name}, which env() lacks"
                );
            }
        }
    }
}

#[tokio::test]
async fn provisioning_the_same_stack_again_succeeds_and_keeps_its_resources() {
    let Some(sdk) = moto().await else { return };
    let first = fresh_stack(&sdk).await;

    let second = provision(&sdk, &template_path(), &first.stack_name)
        .await
        .expect("second provision of the same stack");

    assert_eq!(second.tables, first.tables);
    assert_eq!(second.queues, first.queues);
    assert_eq!(
        second.keys, first.keys,
        "the same key is found again, not a new one"
    );
    assert_eq!(second.aliases, first.aliases);
    assert_eq!(second.env(), first.env());
}

#[tokio::test]
async fn stacks_with_different_names_do_not_share_resources() {
    let Some(sdk) = moto().await else { return };
    let a = fresh_stack(&sdk).await;
    let b = fresh_stack(&sdk).await;

    assert_ne!(a.tables["TenantsTable"], b.tables["TenantsTable"]);
    assert_ne!(a.queues["InboundQueue"], b.queues["InboundQueue"]);
    assert_ne!(a.keys["ConfigKey"], b.keys["ConfigKey"]);
}

#[tokio::test]
async fn provisioning_again_restores_a_drifted_queue_attribute() {
    let Some(sdk) = moto().await else { return };
    let stack = fresh_stack(&sdk).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = &stack.queues["OutboundQueue"];
    sqs.set_queue_attributes()
        .queue_url(url)
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .expect("set_queue_attributes");

    provision(&sdk, &template_path(), &stack.stack_name)
        .await
        .expect("re-provision");

    let attrs = queue_attributes(&sqs, url).await;
    assert_eq!(attrs[&QueueAttributeName::VisibilityTimeout], "180");
}

#[tokio::test]
async fn an_existing_table_with_another_key_schema_is_reported_not_reused() {
    let Some(sdk) = moto().await else { return };
    let stack_name = unique_stack_name();
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    // Given a stale table under the name the template gives the tenants table.
    dynamodb
        .create_table()
        .table_name(format!("{stack_name}-tenants"))
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create stale table");

    let err = provision(&sdk, &template_path(), &stack_name)
        .await
        .expect_err("a stale table must not pass for the template's");

    let message = format!("{err:#}");
    assert!(
        message.contains("already exists with another definition"),
        "{message}"
    );
}

#[tokio::test]
async fn wagate_dev_provision_writes_an_env_file_and_runs_twice() {
    let Some(_sdk) = moto().await else { return };
    let stack_name = unique_stack_name();
    let dir = std::env::temp_dir().join(format!("wagate-devstack-{stack_name}"));
    let jwt_dir = dir.join("jwt");
    let env_file = dir.join("stack.env");
    let issuer = wagate_devstack::LocalIssuer::generate();
    issuer.save(&jwt_dir).expect("save the local issuer");
    let wagate_dev = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wagate-dev"))
            .args(["provision", "--template"])
            .arg(template_path())
            .args(["--stack-name", &stack_name, "--env-out"])
            .arg(&env_file)
            .arg("--jwt-dir")
            .arg(&jwt_dir)
            .args(extra)
            .output()
            .expect("run wagate-dev")
    };
    for run in 1..=2 {
        let output = wagate_dev(&[]);
        assert!(
            output.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = std::fs::read_to_string(&env_file).expect("env file");
    let vars: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(vars["TENANTS_TABLE"], format!("{stack_name}-tenants"));
    assert!(vars["INBOUND_QUEUE_URL"].ends_with(&format!("/{stack_name}-inbound.fifo")));
    assert_eq!(vars["JWT_ISSUER"], "wagate-local");
    assert_eq!(vars["JWT_AUDIENCE"], "wagate-config-api");
    assert_eq!(vars["WAGATE_EGRESS_ALLOW_CIDRS"], "127.0.0.1/32");
    assert!(vars.contains_key("KMS_KEY_ID"));
    assert_eq!(
        vars["AWS_ENDPOINT_URL"],
        std::env::var("AWS_ENDPOINT_URL").unwrap()
    );
    // The JWKS inline, single-quoted (as `cargo lambda watch --env-file` and a shell read it),
    // and no JWKS URL beside it: the config API takes exactly one.
    let inline = vars["JWT_JWKS"]
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .expect("single-quoted");
    let jwks: Json = serde_json::from_str(inline).expect("JWKS JSON");
    assert_eq!(jwks, issuer.jwks());
    assert!(!vars.contains_key("JWT_JWKS_URL"));

    let output = wagate_dev(&["--jwks-url", "http://127.0.0.1:9001/.well-known/jwks.json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&env_file).expect("env file");
    assert!(text.contains("\nJWT_JWKS_URL=http://127.0.0.1:9001/.well-known/jwks.json\n"));
    assert!(!text.contains("JWT_JWKS="), "{text}");
    assert!(
        !text.contains("PUBLIC_WEBHOOK_BASE_URL"),
        "unset unless asked: {text}"
    );

    // scripts/dev.sh's public webhook base: cargo-lambda's URL of the ingress.
    let output = wagate_dev(&[
        "--public-webhook-base-url",
        "http://127.0.0.1:9000/lambda-url/webhook-ingress",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&env_file).expect("env file");
    assert!(
        text.contains(
            "\nPUBLIC_WEBHOOK_BASE_URL=http://127.0.0.1:9000/lambda-url/webhook-ingress\n"
        ),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
