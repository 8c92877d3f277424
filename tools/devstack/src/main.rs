//! `wagate-dev`: the local stack from the command line (used by scripts/dev.sh).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{ArgGroup, Args, Parser, Subcommand};
use time::OffsetDateTime;
use wagate::delivery::store::DeliveryReader as _;
use wagate_devstack::event_source::{self, Invoker, QueueSource, ScheduleSource};
use wagate_devstack::jwt::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};
use wagate_devstack::mappings::EventSources;
use wagate_devstack::platform::{self, Content, Followed, LocalStack, Observed, Until};
use wagate_devstack::{JwksServer, LocalIssuer, Template, TokenSpec};

const DEFAULT_JWKS_LISTEN: &str = "127.0.0.1:9001";
const DEFAULT_ENV_FILE: &str = ".local/stack.env";

#[derive(Parser)]
#[command(
    name = "wagate-dev",
    about = "wagate local stack: provision moto_server, run the event sources, send and receive \
             messages as the platform does, local JWTs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Exit statuses of `send --wait` beyond 0 (done) and 2 (bad input, from clap and `bail!`).
const EXIT_FAILED: u8 = 1;
const EXIT_TIMED_OUT: u8 = 3;

#[derive(Subcommand)]
enum Command {
    /// Create the template's tables, queues and KMS keys where AWS_ENDPOINT_URL points
    /// (idempotent), print the functions' variables, optionally write them to an env file.
    Provision(ProvisionArgs),
    /// Create the local JWT signing key and JWKS in DIR (nothing happens if they exist).
    JwtKeygen {
        #[arg(long, default_value = ".local/jwt")]
        dir: PathBuf,
    },
    /// Print one signed token on stdout.
    Token(TokenArgs),
    /// Print the JWKS of the key in DIR.
    Jwks {
        #[arg(long, default_value = ".local/jwt")]
        dir: PathBuf,
    },
    /// Serve the JWKS of the key in DIR at http://LISTEN/.well-known/jwks.json until stopped.
    ServeJwks {
        #[arg(long, default_value = ".local/jwt")]
        dir: PathBuf,
        /// Loopback address to listen on.
        #[arg(long, default_value = DEFAULT_JWKS_LISTEN)]
        listen: SocketAddr,
    },
    /// Run the template's event sources until stopped, as AWS runs them: every SQS event
    /// source mapping (long poll, batches of BatchSize to the function through cargo-lambda's
    /// invoke API, partial batch responses, visibility timeout, redrive) and every rate()
    /// schedule. One log line per batch and run on stderr.
    EventSources(EventSourcesArgs),
    /// Put an OutboundMessage on the outbound queue as a producer does (group = tenant,
    /// deduplication id = idempotency key) and print its idempotency key; with --wait, follow
    /// its delivery record and print each state. Exit status with --wait: 0 when it reached
    /// --until (or was sent and is still waiting for a receipt at the timeout), 1 failed or
    /// unknown, 3 still not sent at the timeout; 2 for bad input (nothing is enqueued).
    Send(SendArgs),
    /// Read the inbound queue as the platform's consumer does: receive, print one line per
    /// InboundEvent (--json: the whole event), delete. Without --follow, stops when the queue
    /// is empty.
    Inbound(InboundArgs),
    /// Print the cargo-lambda binary of every function of the template, one per line (what
    /// `cargo lambda watch` builds with `cargo run --bin <name>`).
    Functions {
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
    },
    /// Have a contact send a WhatsApp message to the demo device (the simulator signs it and
    /// posts it to the device's webhook, i.e. the ingress), e.g. a reply to a sent message.
    Reply(ReplyArgs),
    /// Sign a webhook body as GOWA does and invoke the ingress with it as one of its two front
    /// doors delivers it (the HTTP API route or the function URL), through cargo-lambda's
    /// invoke API; print the ingress's status and body. Exit 0 on a 2xx answer, 1 otherwise.
    Webhook(WebhookArgs),
}

#[derive(Args)]
struct WebhookArgs {
    /// Base URL of cargo-lambda's invoke API.
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    invoke_url: String,
    /// Which front door's event shape to send.
    #[arg(long, value_enum, default_value = "http-api")]
    front_door: wagate_devstack::front_door::FrontDoor,
    #[arg(long, default_value = "demo")]
    tenant: String,
    /// The tenant's webhook secret (signs the body: X-Hub-Signature-256).
    #[arg(long, env = "WAGATE_DEV_WEBHOOK_SECRET")]
    secret: String,
    /// The caller's address as the front door reports it (the tenant's allowlist checks it).
    #[arg(long, default_value = "127.0.0.1")]
    source_ip: String,
    /// The webhook body (JSON), sent byte for byte.
    #[arg(long)]
    body: String,
}

#[derive(Args)]
struct StackArgs {
    /// The local stack's env file (written by scripts/dev.sh).
    #[arg(long, env = "WAGATE_DEV_ENV_FILE", default_value = DEFAULT_ENV_FILE)]
    env_file: PathBuf,
}

#[derive(Args)]
struct EventSourcesArgs {
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    #[arg(long, default_value = "wagate-local")]
    stack_name: String,
    /// Template parameter value, NAME=VALUE (repeatable); others take their Default.
    #[arg(long = "parameter", value_name = "NAME=VALUE")]
    parameters: Vec<String>,
    /// Base URL of cargo-lambda's invoke API (`cargo lambda watch --invoke-port`).
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    invoke_url: String,
    /// Run every schedule this often instead of its rate() (0: no schedules).
    #[arg(long, value_name = "SECONDS")]
    schedule_every_secs: Option<u64>,
    /// Long-poll wait of each receive (SQS allows 0-20 s).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=20))]
    wait_secs: u64,
    /// Time allowed beyond each function's Timeout before an invocation counts as timed out.
    #[arg(long, default_value_t = 0)]
    invoke_grace_secs: u64,
}

#[derive(Args)]
#[command(group(ArgGroup::new("content").required(true).args(["text", "image", "document"])))]
struct SendArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// The tenant whose WhatsApp server sends it.
    #[arg(long)]
    tenant: String,
    /// Recipient: a number in international format (+6281234567890) or a JID.
    #[arg(long)]
    to: String,
    /// A text message.
    #[arg(long)]
    text: Option<String>,
    /// An image by URL (the WhatsApp server downloads it).
    #[arg(long, value_name = "URL")]
    image: Option<String>,
    /// A document by URL.
    #[arg(long, value_name = "URL")]
    document: Option<String>,
    /// Caption of an image or document.
    #[arg(long, conflicts_with = "text")]
    caption: Option<String>,
    /// File name of a document.
    #[arg(long, requires = "document")]
    filename: Option<String>,
    /// Provider message id this message replies to.
    #[arg(long)]
    reply_to: Option<String>,
    /// The idempotency key (default: a fresh dev-<time>-<random>); one key is sent at most once.
    #[arg(long)]
    key: Option<String>,
    /// Follow the delivery record and print each state.
    #[arg(long)]
    wait: bool,
    /// With --wait: the state to wait for (sent, delivered, read).
    #[arg(long, default_value = "read", requires = "wait")]
    until: Until,
    /// With --wait: give up after this many seconds.
    #[arg(long, default_value_t = 60, requires = "wait")]
    timeout_secs: u64,
}

#[derive(Args)]
struct InboundArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Keep receiving until stopped (Ctrl-C).
    #[arg(long)]
    follow: bool,
    /// Print each InboundEvent as one line of JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(group(ArgGroup::new("replied").args(["reply_to", "reply_to_key"])))]
struct ReplyArgs {
    /// The simulator's control API.
    #[arg(
        long,
        env = "GOWA_SIM_CONTROL_URL",
        default_value = "http://127.0.0.1:3001"
    )]
    sim_control: String,
    /// The contact: a number in international format or a user JID.
    #[arg(long)]
    from: String,
    /// The message text.
    #[arg(long)]
    text: String,
    /// The contact's display name.
    #[arg(long)]
    name: Option<String>,
    /// The receiving device (default: the simulator's only device).
    #[arg(long)]
    device: Option<String>,
    /// Provider message id of the message this one answers.
    #[arg(long)]
    reply_to: Option<String>,
    /// Idempotency key of the sent message this one answers (looked up in the messages table).
    #[arg(long, requires = "tenant")]
    reply_to_key: Option<String>,
    /// The tenant of --reply-to-key.
    #[arg(long)]
    tenant: Option<String>,
    #[command(flatten)]
    stack: StackArgs,
}

#[derive(Args)]
struct ProvisionArgs {
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    #[arg(long, default_value = "wagate-local")]
    stack_name: String,
    /// Write KEY=VALUE lines (AWS endpoint and region, resources, JWT settings) to this file.
    #[arg(long)]
    env_out: Option<PathBuf>,
    /// Template parameter value, NAME=VALUE (repeatable); others take their Default.
    #[arg(long = "parameter", value_name = "NAME=VALUE")]
    parameters: Vec<String>,
    /// JWT_ISSUER written to the env file.
    #[arg(long, default_value = DEFAULT_ISSUER)]
    jwt_issuer: String,
    /// JWT_AUDIENCE written to the env file.
    #[arg(long, default_value = DEFAULT_AUDIENCE)]
    jwt_audience: String,
    /// The local issuer whose JWKS goes into the env file inline, as JWT_JWKS.
    #[arg(long, default_value = ".local/jwt")]
    jwt_dir: PathBuf,
    /// Write JWT_JWKS_URL=URL instead of the inline JWT_JWKS (e.g. the address of
    /// `wagate-dev serve-jwks`, http://127.0.0.1:9001/.well-known/jwks.json).
    #[arg(long, value_name = "URL")]
    jwks_url: Option<String>,
    /// WAGATE_EGRESS_ALLOW_CIDRS written to the env file (the simulator is on loopback).
    #[arg(long, default_value = "127.0.0.1/32")]
    egress_allow_cidrs: String,
    /// RUST_LOG written to the env file.
    #[arg(long, default_value = "info")]
    rust_log: String,
    /// PUBLIC_WEBHOOK_BASE_URL written to the env file: where tenants' servers reach the
    /// webhook ingress (scripts/dev.sh: cargo-lambda's URL of webhook-ingress).
    #[arg(long, value_name = "URL")]
    public_webhook_base_url: Option<String>,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("caller").required(true).args(["admin", "tenant"])))]
struct TokenArgs {
    #[arg(long, default_value = ".local/jwt")]
    dir: PathBuf,
    /// An administrator's token (scope wagate/admin).
    #[arg(long)]
    admin: bool,
    /// A token scoped to this tenant (scope wagate/tenant, tenant_id).
    #[arg(long, value_name = "TENANT_ID")]
    tenant: Option<String>,
    /// Lifetime in seconds; negative for an already expired token.
    #[arg(long, default_value_t = 3600, allow_negative_numbers = true)]
    ttl_secs: i64,
    #[arg(long, default_value = DEFAULT_ISSUER)]
    issuer: String,
    #[arg(long, default_value = DEFAULT_AUDIENCE)]
    audience: String,
    /// `sub` (default local-admin / local-tenant-<id>).
    #[arg(long)]
    sub: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Send(args) => send(args).await,
        Command::Webhook(args) => webhook(args).await,
        other => run(other).await.map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("wagate-dev: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Send(_) | Command::Webhook(_) => unreachable!("handled in main"),
        Command::EventSources(args) => event_sources(args).await,
        Command::Inbound(args) => inbound(args).await,
        Command::Reply(args) => reply(args).await,
        Command::Functions { template } => {
            for name in Template::load(&template)?.function_binaries()? {
                println!("{name}");
            }
            Ok(())
        }
        Command::Provision(args) => provision(args).await,
        Command::JwtKeygen { dir } => {
            let (issuer, created) = LocalIssuer::load_or_generate(&dir)?;
            eprintln!(
                "wagate-dev: {} JWT key in {} (kid {})",
                if created { "created" } else { "kept the" },
                dir.display(),
                issuer.kid()
            );
            Ok(())
        }
        Command::Token(args) => {
            let issuer =
                LocalIssuer::load(&args.dir).context("run `wagate-dev jwt-keygen` first")?;
            let mut spec = match args.tenant {
                Some(tenant) => TokenSpec::tenant(tenant),
                None => TokenSpec::admin(),
            };
            spec = spec
                .ttl(time::Duration::seconds(args.ttl_secs))
                .issuer(args.issuer)
                .audience(args.audience);
            if let Some(sub) = args.sub {
                spec = spec.subject(sub);
            }
            println!("{}", issuer.token(&spec));
            Ok(())
        }
        Command::Jwks { dir } => {
            let issuer = LocalIssuer::load(&dir).context("run `wagate-dev jwt-keygen` first")?;
            println!("{}", issuer.jwks_json());
            Ok(())
        }
        Command::ServeJwks { dir, listen } => {
            if !listen.ip().is_loopback() {
                bail!("refusing to serve on {listen}: use a loopback address such as 127.0.0.1");
            }
            let issuer = LocalIssuer::load(&dir).context("run `wagate-dev jwt-keygen` first")?;
            let server = JwksServer::bind(listen, issuer.jwks_json()).await?;
            eprintln!("wagate-dev: serving the JWKS at {}", server.url());
            tokio::select! {
                () = server.wait() => {}
                result = tokio::signal::ctrl_c() => result?,
            }
            Ok(())
        }
    }
}

fn parse_parameters(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut parameters = BTreeMap::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("--parameter {pair}: expected NAME=VALUE");
        };
        parameters.insert(name.to_owned(), value.to_owned());
    }
    Ok(parameters)
}

fn log_line(line: &str) {
    let now = OffsetDateTime::now_utc();
    eprintln!("{}T{}Z {line}", now.date(), platform::clock(now));
}

async fn event_sources(args: EventSourcesArgs) -> anyhow::Result<()> {
    let parameters = parse_parameters(&args.parameters)?;
    let template = Template::load(&args.template)?;
    let sources = EventSources::from_template(&template, &args.stack_name)?;
    let sdk = wagate_devstack::local_sdk_config().await?;
    // Provisioning is idempotent: it makes sure the queues exist as the template says and
    // gives their URLs and ARNs.
    let stack = wagate_devstack::provision_template(&sdk, &template, &args.stack_name, &parameters)
        .await
        .with_context(|| format!("locating the queues of stack {}", args.stack_name))?;
    let account = stack
        .arns
        .values()
        .find_map(|arn| arn.split(':').nth(4).map(str::to_owned))
        .unwrap_or_else(|| wagate_devstack::template::MOTO_DEFAULT_ACCOUNT.to_owned());
    let mut queues = Vec::new();
    for mapping in sources.queues {
        if !mapping.enabled {
            log_line(&format!(
                "{}: disabled in the template, not run",
                mapping.source
            ));
            continue;
        }
        let id = &mapping.queue.logical_id;
        let (Some(url), Some(arn)) = (stack.queues.get(id), stack.arns.get(id)) else {
            bail!("{}: queue {id} was not provisioned", mapping.source);
        };
        log_line(&format!(
            "{} -> {}: batches of up to {} from {} (visibility timeout {} s{}{}), timeout {} s",
            mapping.source,
            mapping.function.name,
            mapping.batch_size,
            id,
            mapping.queue.visibility_timeout.as_secs(),
            match (
                mapping.queue.max_receive_count,
                &mapping.queue.dead_letter_queue
            ) {
                (Some(max), Some(dlq)) => format!(", to {dlq} after {max} receives"),
                _ => String::new(),
            },
            if mapping.report_batch_item_failures {
                ", ReportBatchItemFailures"
            } else {
                ""
            },
            mapping.function.timeout.as_secs(),
        ));
        queues.push(QueueSource {
            url: url.clone(),
            arn: arn.clone(),
            region: stack.region.clone(),
            mapping,
        });
    }
    let mut schedules = Vec::new();
    for mapping in sources.schedules {
        let every = match args.schedule_every_secs {
            Some(0) => {
                log_line(&format!("{}: schedules turned off", mapping.source));
                continue;
            }
            Some(secs) => Duration::from_secs(secs),
            None if !mapping.enabled => {
                log_line(&format!(
                    "{}: disabled in the template, not run",
                    mapping.source
                ));
                continue;
            }
            None => mapping.every,
        };
        log_line(&format!(
            "{} -> {}: every {} s ({} in the template), timeout {} s",
            mapping.source,
            mapping.function.name,
            every.as_secs(),
            mapping.expression,
            mapping.function.timeout.as_secs()
        ));
        schedules.push(ScheduleSource {
            mapping,
            every,
            region: stack.region.clone(),
            account: account.clone(),
        });
    }
    let invoker =
        Invoker::new(&args.invoke_url)?.with_grace(Duration::from_secs(args.invoke_grace_secs));
    event_source::run(
        aws_sdk_sqs::Client::new(&sdk),
        invoker,
        queues,
        schedules,
        Duration::from_secs(args.wait_secs),
        log_line,
        shutdown_signal(),
    )
    .await;
    log_line("event sources stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let content = match (args.text, args.image, args.document) {
        (Some(text), None, None) => Content::Text(text),
        (None, Some(url), None) => Content::Image {
            url,
            caption: args.caption,
        },
        (None, None, Some(url)) => Content::Document {
            url,
            filename: args.filename,
            caption: args.caption,
        },
        _ => bail!("give exactly one of --text, --image and --document"),
    };
    let key = args
        .key
        .unwrap_or_else(|| platform::new_idempotency_key(OffsetDateTime::now_utc()));
    let message = platform::build_message(&args.tenant, &args.to, content, key, args.reply_to)?;
    let stack = LocalStack::from_env_file(&args.stack.env_file)?;
    let sdk = stack.sdk_config().await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    platform::check_tenant_exists(&dynamodb, stack.var("TENANTS_TABLE")?, &message.tenant_id)
        .await?;
    let queue = stack.var("OUTBOUND_QUEUE_URL")?;
    let sqs_message_id =
        platform::enqueue(&aws_sdk_sqs::Client::new(&sdk), queue, &message).await?;
    println!("{}", message.idempotency_key);
    eprintln!(
        "wagate-dev: queued for tenant {} to {} (SQS message {sqs_message_id})",
        message.tenant_id, message.to
    );
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let store = stack.delivery_store(&sdk)?;
    let followed = platform::follow(
        &store,
        &message.tenant_id,
        &message.idempotency_key,
        args.until,
        Duration::from_secs(args.timeout_secs),
        |at, observed| {
            println!("{}  {}", platform::clock(at), observed.describe());
            let _ = std::io::stdout().flush();
        },
    )
    .await?;
    Ok(match followed {
        Followed::Reached(_) => ExitCode::SUCCESS,
        Followed::Settled(state) => {
            eprintln!("wagate-dev: the message ended {}", state.as_str());
            ExitCode::from(EXIT_FAILED)
        }
        Followed::TimedOut(observed) => {
            eprintln!(
                "wagate-dev: still {} after {} s",
                observed.state_name(),
                args.timeout_secs
            );
            match &observed {
                Observed::Record(r)
                    if matches!(
                        r.state,
                        wagate::delivery::DeliveryState::Sent
                            | wagate::delivery::DeliveryState::Delivered
                            | wagate::delivery::DeliveryState::Read
                    ) =>
                {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(EXIT_TIMED_OUT),
            }
        }
    })
}

async fn inbound(args: InboundArgs) -> anyhow::Result<()> {
    let stack = LocalStack::from_env_file(&args.stack.env_file)?;
    let sdk = stack.sdk_config().await?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = stack.var("INBOUND_QUEUE_URL")?.to_owned();
    let wait = if args.follow {
        event_source::MAX_WAIT
    } else {
        Duration::from_secs(1)
    };
    // Ctrl-C / SIGTERM stop the wait for messages, never the handling of one: what was
    // printed is deleted.
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let batch = tokio::select! {
            batch = platform::receive_inbound(&sqs, &queue, wait) => batch?,
            () = &mut shutdown => return Ok(()),
        };
        if batch.is_empty() && !args.follow {
            return Ok(());
        }
        for message in batch {
            match &message.event {
                Ok(event) => {
                    if args.json {
                        println!("{}", serde_json::to_string(event)?);
                    } else {
                        println!("{}", platform::summarize(event));
                    }
                    let _ = std::io::stdout().flush();
                    platform::delete_inbound(&sqs, &queue, &message).await?;
                }
                Err(why) => eprintln!(
                    "wagate-dev: SQS message {} (receive {}) is not an InboundEvent, left on the queue: {why}",
                    message.sqs_message_id, message.receive_count
                ),
            }
        }
    }
}

async fn webhook(args: WebhookArgs) -> anyhow::Result<ExitCode> {
    let signature =
        wagate::inbound::signature::sign_sha256(args.secret.as_bytes(), args.body.as_bytes());
    let event = wagate_devstack::front_door::webhook_event(
        args.front_door,
        &args.tenant,
        &args.body,
        &signature,
        &args.source_ip,
    );
    let invoker = event_source::Invoker::new(args.invoke_url)?;
    match invoker
        .invoke("webhook-ingress", &event, Duration::from_secs(10))
        .await
    {
        event_source::Invocation::Answered(payload) => {
            let answer: serde_json::Value =
                serde_json::from_slice(&payload).context("the ingress's answer is not JSON")?;
            let status = answer["statusCode"].as_u64().unwrap_or_default();
            println!("{status} {}", answer["body"].as_str().unwrap_or_default());
            Ok(if (200..300).contains(&status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            })
        }
        other => bail!("the ingress was not invoked: {other:?}"),
    }
}

async fn reply(args: ReplyArgs) -> anyhow::Result<()> {
    let reply_to = match (&args.reply_to, &args.reply_to_key, &args.tenant) {
        (Some(id), _, _) => Some(id.clone()),
        (None, Some(key), Some(tenant)) => {
            let tenant: wagate::tenant::TenantId = tenant
                .parse()
                .map_err(|e| anyhow::anyhow!("--tenant {tenant:?}: {e}"))?;
            let stack = LocalStack::from_env_file(&args.stack.env_file)?;
            let sdk = stack.sdk_config().await?;
            let record = stack
                .delivery_store(&sdk)?
                .get(&tenant, key, OffsetDateTime::now_utc())
                .await?
                .with_context(|| format!("no message {key} of tenant {tenant}"))?;
            Some(record.provider_message_id.with_context(|| {
                format!(
                    "message {key} has no provider id yet (state {})",
                    record.state.as_str()
                )
            })?)
        }
        _ => None,
    };
    let mut body = serde_json::json!({ "from": args.from, "text": args.text });
    if let Some(name) = args.name {
        body["from_name"] = name.into();
    }
    if let Some(device) = args.device {
        body["device_id"] = device.into();
    }
    if let Some(id) = reply_to {
        body["reply_to"] = id.into();
    }
    let http = reqwest::Client::builder().no_proxy().build()?;
    let record = platform::deliver_reply(&http, &args.sim_control, &body).await?;
    let id = record["ids"][0].as_str().unwrap_or_default();
    match record["deliveries"].as_array().and_then(|d| d.first()) {
        Some(delivery) if delivery["delivered"] == true => {
            println!("{id}");
            eprintln!(
                "wagate-dev: delivered to {} (HTTP {})",
                delivery["url"].as_str().unwrap_or_default(),
                delivery["attempts"]
                    .as_array()
                    .and_then(|a| a.last())
                    .and_then(|a| a["status"].as_u64())
                    .unwrap_or_default()
            );
            Ok(())
        }
        Some(delivery) => bail!(
            "the webhook at {} did not take it: {}",
            delivery["url"].as_str().unwrap_or_default(),
            delivery["attempts"]
                .as_array()
                .and_then(|a| a.last())
                .map(|a| a["error"].to_string())
                .unwrap_or_default()
        ),
        None => bail!(
            "the simulator sent nothing: {}",
            record["skipped"].as_str().unwrap_or("no webhook")
        ),
    }
}

async fn provision(args: ProvisionArgs) -> anyhow::Result<()> {
    let parameters = parse_parameters(&args.parameters)?;
    let sdk = wagate_devstack::local_sdk_config().await?;
    let started = std::time::Instant::now();
    let provisioned = wagate_devstack::provision_with_parameters(
        &sdk,
        &args.template,
        &args.stack_name,
        &parameters,
    )
    .await
    .with_context(|| format!("provisioning stack {}", args.stack_name))?;
    eprintln!(
        "wagate-dev: stack {} ready in {} ms: {} table(s), {} queue(s), {} key(s), {} alias(es)",
        provisioned.stack_name,
        started.elapsed().as_millis(),
        provisioned.tables.len(),
        provisioned.queues.len(),
        provisioned.keys.len(),
        provisioned.aliases.len()
    );

    let mut lines = provisioned.aws_env();
    lines.extend(provisioned.env());
    lines.insert("JWT_ISSUER".into(), args.jwt_issuer);
    lines.insert("JWT_AUDIENCE".into(), args.jwt_audience);
    // The config API takes exactly one of JWT_JWKS (inline) and JWT_JWKS_URL.
    match args.jwks_url {
        Some(url) => lines.insert("JWT_JWKS_URL".into(), url),
        None => {
            let issuer = LocalIssuer::load(&args.jwt_dir).with_context(|| {
                format!(
                    "no local JWT key in {}: run `wagate-dev jwt-keygen --dir {}` first, or pass --jwks-url",
                    args.jwt_dir.display(),
                    args.jwt_dir.display()
                )
            })?;
            lines.insert("JWT_JWKS".into(), serde_json::to_string(&issuer.jwks())?)
        }
    };
    lines.insert("WAGATE_EGRESS_ALLOW_CIDRS".into(), args.egress_allow_cidrs);
    lines.insert("RUST_LOG".into(), args.rust_log);
    // The config API checks the value at cold start (and lists it if it is invalid).
    if let Some(url) = args.public_webhook_base_url {
        lines.insert("PUBLIC_WEBHOOK_BASE_URL".into(), url);
    }
    let mut text = String::new();
    for (key, value) in &lines {
        text.push_str(&format!("{key}={}\n", env_file_value(key, value)?));
    }
    print!("{text}");
    if let Some(path) = &args.env_out {
        write_env_file(path, &text)?;
        eprintln!("wagate-dev: wrote {}", path.display());
    }
    Ok(())
}

/// A value as an env-file line reads it back, for both `cargo lambda watch --env-file` and a
/// shell's `source`: plain when it is made of safe characters, else in single quotes.
fn env_file_value(key: &str, value: &str) -> anyhow::Result<String> {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_./:,@+=-%".contains(c));
    if plain && !value.is_empty() {
        return Ok(value.to_owned());
    }
    if value.contains(['\'', '\n', '\r']) {
        bail!("{key}: the value cannot be written to an env file: {value:?}");
    }
    Ok(format!("'{value}'"))
}

fn write_env_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(text.as_bytes())?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
