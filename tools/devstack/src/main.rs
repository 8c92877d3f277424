//! `wagate-dev`: the local stack from the command line (used by scripts/dev.sh).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use wagate_devstack::jwt::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};
use wagate_devstack::{JwksServer, LocalIssuer, TokenSpec};

const DEFAULT_JWKS_LISTEN: &str = "127.0.0.1:9001";

#[derive(Parser)]
#[command(
    name = "wagate-dev",
    about = "wagate local stack: provision moto_server, local JWTs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

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
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
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

async fn provision(args: ProvisionArgs) -> anyhow::Result<()> {
    let mut parameters = BTreeMap::new();
    for pair in &args.parameters {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("--parameter {pair}: expected NAME=VALUE");
        };
        parameters.insert(name.to_owned(), value.to_owned());
    }
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
