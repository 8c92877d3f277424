//! `gowa-sim`: runs the GOWA simulator with a control API, on loopback only.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use gowa_sim::{DeviceSpec, Kind, Receipts, RetryPolicy, SimConfig, WebhookConfig, start_on};
use tracing_subscriber::EnvFilter;

/// A WhatsApp API server simulator for wagate's local stack: GOWA (go-whatsapp-web-multidevice)
/// by default, or WAHA, Evolution API v2 or Meta's Cloud API.
#[derive(Debug, Parser)]
#[command(name = "gowa-sim", version)]
struct Args {
    /// The server to simulate: gowa, waha, evolution or meta.
    #[arg(long, env = "GOWA_SIM_KIND", default_value = "gowa")]
    kind: Kind,

    /// WAHA `X-Api-Key`, Evolution global `apikey`, or Meta access token (Bearer) required on
    /// the API; without it the API is open.
    #[arg(long, env = "GOWA_SIM_API_KEY", hide_env_values = true)]
    api_key: Option<String>,

    /// Evolution: an instance's own token, as `instance=token`; repeatable (default
    /// `<instance>-token`).
    #[arg(long = "instance-key", value_name = "INSTANCE=TOKEN", value_parser = parse_instance_key)]
    instance_keys: Vec<(String, String)>,

    /// Meta: the WhatsApp Business Account id in webhooks (`entry[].id`).
    #[arg(long, default_value = gowa_sim::DEFAULT_META_WABA_ID)]
    waba_id: String,

    /// Address of the GOWA API (loopback only).
    #[arg(long, env = "GOWA_SIM_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,

    /// Address of the control API (loopback only).
    #[arg(
        long,
        env = "GOWA_SIM_CONTROL_LISTEN",
        default_value = "127.0.0.1:3001"
    )]
    control_listen: SocketAddr,

    /// Require basic auth on every route but /health, as `user:password`.
    #[arg(long, env = "GOWA_SIM_BASIC_AUTH", value_parser = parse_basic_auth)]
    basic_auth: Option<(String, String)>,

    /// A device, as `id=demo,jid=6281234567890@s.whatsapp.net,state=logged_in`, optionally
    /// with a webhook of its own (`,webhook_url=URL,webhook_secret=SECRET`); repeatable.
    /// Without any, one logged-in device `demo` is registered.
    #[arg(long = "device", value_name = "SPEC")]
    devices: Vec<DeviceSpec>,

    /// Global webhook URL (GOWA's `--webhook`, WAHA's `WHATSAPP_HOOK_URL`, Evolution's
    /// `WEBHOOK_GLOBAL_URL`, Meta's app callback) for devices without their own; repeatable.
    #[arg(long = "webhook", value_name = "URL")]
    webhooks: Vec<String>,

    /// Secret of the global webhook (GOWA's `--webhook-secret`, WAHA's HMAC key, Meta's app
    /// secret).
    #[arg(long, env = "GOWA_SIM_WEBHOOK_SECRET", default_value = gowa_sim::DEFAULT_WEBHOOK_SECRET, hide_env_values = true)]
    webhook_secret: String,

    /// Milliseconds from an accepted send to its `delivered` receipt, or `off` (no receipts).
    #[arg(long, env = "GOWA_SIM_RECEIPT_DELIVERED_MS", default_value = "1000", value_parser = parse_delay)]
    receipt_delivered_ms: Delay,

    /// Milliseconds from the `delivered` receipt to the `read` receipt, or `off`.
    #[arg(long, env = "GOWA_SIM_RECEIPT_READ_MS", default_value = "2000", value_parser = parse_delay)]
    receipt_read_ms: Delay,
}

/// A delay in milliseconds, or none (`off`).
#[derive(Clone, Copy, Debug)]
struct Delay(Option<u64>);

fn parse_delay(value: &str) -> Result<Delay, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(Delay(None));
    }
    value
        .parse::<u64>()
        .map(|ms| Delay(Some(ms)))
        .map_err(|_| "expected milliseconds (a whole number) or `off`".to_owned())
}

fn parse_instance_key(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, key)) if !name.is_empty() && !key.is_empty() => {
            Ok((name.to_owned(), key.to_owned()))
        }
        _ => Err("expected instance=token".to_owned()),
    }
}

fn parse_basic_auth(value: &str) -> Result<(String, String), String> {
    match value.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => {
            Ok((user.to_owned(), password.to_owned()))
        }
        _ => Err("expected user:password".to_owned()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_current_span(false)
        .init();

    let args = Args::parse();
    let defaults = SimConfig::for_kind(args.kind);
    let config = SimConfig {
        kind: args.kind,
        api_key: args.api_key,
        device_keys: args.instance_keys.into_iter().collect(),
        waba_id: args.waba_id,
        basic_auth: args.basic_auth,
        devices: if args.devices.is_empty() {
            defaults.devices
        } else {
            args.devices
        },
        max_body_bytes: defaults.max_body_bytes,
        webhook: WebhookConfig {
            urls: args.webhooks,
            secret: args.webhook_secret,
            events: Vec::new(),
        },
        receipts: Receipts {
            delivered_ms: args.receipt_delivered_ms.0,
            read_ms: args.receipt_read_ms.0,
        },
        webhook_retry: RetryPolicy::for_kind(args.kind),
    };
    let sim = start_on(config, args.listen, Some(args.control_listen))
        .await
        .context("starting gowa-sim")?;
    tracing::info!(
        base_url = %sim.base_url(),
        control_url = sim.control_url().as_deref().unwrap_or_default(),
        "gowa-sim ready"
    );

    shutdown_signal().await?;
    tracing::info!("shutting down");
    sim.shutdown().await;
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate =
            signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
