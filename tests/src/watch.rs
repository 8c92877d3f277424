//! `cargo lambda watch` as the tests run it: the real function binaries behind cargo-lambda's
//! local function URLs (`/lambda-url/<function>/…`) and its Lambda invoke API
//! (`/2015-03-31/functions/<function>/invocations`).

use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wagate_devstack::LocalIssuer;

use crate::{Stack, moto_endpoint, workspace_root};

/// Every function's environment for a stack on moto_server: the template's variables, moto's
/// endpoint and dummy credentials, the local JWT issuer, and loopback admitted past the SSRF
/// guard (as `scripts/dev.sh` sets them).
pub fn lambda_env(stack: &Stack, issuer: &LocalIssuer) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = stack.env().into_iter().collect();
    env.extend([
        ("AWS_ENDPOINT_URL".into(), moto_endpoint()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ("JWT_ISSUER".into(), "wagate-local".into()),
        ("JWT_AUDIENCE".into(), "wagate-config-api".into()),
        ("JWT_JWKS".into(), issuer.jwks_json().replace('\n', "")),
        ("WAGATE_EGRESS_ALLOW_CIDRS".into(), "127.0.0.1/32".into()),
        ("RUST_LOG".into(), "info".into()),
    ]);
    env
}

/// `cargo lambda watch` in its own process group, stopped with the test.
pub struct Watch {
    child: Child,
    pub port: u16,
    pub log: std::path::PathBuf,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: kill(2) on our own child's process group; no memory is touched.
        unsafe {
            libc_kill(-pgid, 15);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        unsafe {
            libc_kill(-pgid, 9);
        }
        let _ = self.child.wait();
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `cargo lambda watch` on a free port with `env`, plus `PUBLIC_WEBHOOK_BASE_URL` at its own
/// URL of webhook-ingress (as `scripts/dev.sh` sets it) unless `env` sets it.
pub fn start_watch(env: &[(String, String)]) -> Watch {
    let port = free_port();
    let dir = tempdir();
    let env_file = dir.join("stack.env");
    let mut f = std::fs::File::create(&env_file).unwrap();
    for (k, v) in env {
        // cargo-lambda's env file wants single quotes around JSON.
        writeln!(f, "{k}='{v}'").unwrap();
    }
    if !env.iter().any(|(k, _)| k == "PUBLIC_WEBHOOK_BASE_URL") {
        writeln!(
            f,
            "PUBLIC_WEBHOOK_BASE_URL='http://127.0.0.1:{port}/lambda-url/webhook-ingress'"
        )
        .unwrap();
    }
    let log = dir.join("watch.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("cargo")
        .args([
            "lambda",
            "watch",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .arg("--env-file")
        .arg(&env_file)
        .args(["--ignore-changes"])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .expect("`cargo lambda` on PATH (scripts/test.sh adds .venv/bin)");
    Watch { child, port, log }
}

pub fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wagate-e2e-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Watch {
    pub fn url(&self, function: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}/lambda-url/{function}{path}", self.port)
    }

    /// Waits until the function answers (the first call builds it).
    pub async fn ready(&self, http: &reqwest::Client, function: &str, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            if let Ok(r) = http.get(self.url(function, path)).send().await {
                // cargo-lambda answers 5xx while a function is still compiling.
                if r.status().as_u16() < 500 {
                    return;
                }
            }
            // A function that dies at init (e.g. a missing variable) never comes up: say so
            // now rather than at the deadline.
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            assert!(
                !log.contains("ERROR command exited"),
                "{function} exited under cargo lambda watch; log:\n{log}"
            );
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not serve {function}; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The HTTP client of tests that talk to `cargo lambda watch`: every request gets an answer
/// or an error within `ANSWER_TIMEOUT`. cargo lambda's emulator now and then never answers a
/// request (the function never sees it: seen once in about 30 runs of the browser test), and
/// a client without a timeout would then wait for ever. `Watch::ready` and the invoke loops
/// retry such an error; [`send_until_answered`] retries a setup call.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(ANSWER_TIMEOUT)
        .build()
        .expect("reqwest client")
}

/// Longer than any answer of a built function here, shorter than a stuck test.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends the request `make` builds until it gets an answer (at most 3 times: only a request
/// the emulator left unanswered is sent again). Returns the answer and whether it was sent
/// more than once: an earlier attempt may have reached the function after all, so a caller
/// accepts the answer a repeat gets then (e.g. 409 for a create that did land).
pub async fn send_until_answered(
    make: impl Fn() -> reqwest::RequestBuilder,
) -> (reqwest::Response, bool) {
    let mut attempt = 1;
    loop {
        match make().send().await {
            Ok(resp) => return (resp, attempt > 1),
            Err(e) if e.is_timeout() && attempt < 3 => {
                eprintln!(
                    "note: no answer from cargo lambda watch in {ANSWER_TIMEOUT:?}; sending again"
                );
                attempt += 1;
            }
            Err(e) => panic!("no answer from cargo lambda watch: {e}"),
        }
    }
}

impl Watch {
    /// The Lambda invoke API of `function` (what `cargo lambda invoke` calls).
    pub fn invoke_url(&self, function: &str) -> String {
        format!(
            "http://127.0.0.1:{}/2015-03-31/functions/{function}/invocations",
            self.port
        )
    }
}
