//! `scripts/dev.sh` itself, as a newcomer runs it: start it (on free ports, with its own
//! moto_server and state directory, so it never meets a developer's stack or another test
//! run), send one message with `wagate-dev send --wait`, see it sent, delivered and read,
//! have the contact reply and see the reply arrive on the inbound queue, stop it with SIGINT
//! (as Ctrl-C does) and check that every process it started is gone.
//!
//! Every process dev.sh starts inherits `WAGATE_DEV_RUN_ID`, fresh for each run and written
//! to `<state>/dev.run-id`; afterwards the test looks for it in every process's environment
//! (`/proc/<pid>/environ`).

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wagate_tests::watch::{free_port, tempdir};
use wagate_tests::workspace_root;

/// A fresh clone's first start compiles every function; later starts only check.
const READY_WITHIN: Duration = Duration::from_secs(25 * 60);

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
const SIGINT: i32 = 2;
const SIGKILL: i32 = 9;

struct Ports {
    moto: u16,
    sim: u16,
    control: u16,
    lambda: u16,
    /// Issue 16: (kind, API port, control port) of each other kind's simulator.
    kinds: Vec<(&'static str, u16, u16)>,
}

/// A running `scripts/dev.sh` in a process group of its own (like a terminal's foreground
/// job); stopped with SIGKILL to its group and a sweep of its run id if the test fails early.
struct DevStack {
    child: Option<Child>,
    state: PathBuf,
    output: PathBuf,
    ports: Ports,
}

impl DevStack {
    fn start() -> DevStack {
        let state = tempdir();
        let output = state.join("dev-sh.out");
        let ports = Ports {
            moto: free_port(),
            sim: free_port(),
            control: free_port(),
            lambda: free_port(),
            kinds: ["waha", "evolution", "meta"]
                .into_iter()
                .map(|k| (k, free_port(), free_port()))
                .collect(),
        };
        let out = std::fs::File::create(&output).unwrap();
        let mut cmd = Command::new("bash");
        // Issue 16: every other server kind too, each with its demo tenant.
        cmd.env("WAGATE_DEV_KINDS", "all");
        for (kind, api, control) in &ports.kinds {
            let upper = kind.to_ascii_uppercase();
            cmd.env(format!("WAGATE_DEV_{upper}_PORT"), api.to_string())
                .env(
                    format!("WAGATE_DEV_{upper}_CONTROL_PORT"),
                    control.to_string(),
                );
        }
        let child = cmd
            .arg("scripts/dev.sh")
            .current_dir(workspace_root())
            .env("WAGATE_DEV_STATE_DIR", &state)
            .env("WAGATE_DEV_MOTO_PORT", ports.moto.to_string())
            .env("WAGATE_DEV_SIM_PORT", ports.sim.to_string())
            .env("WAGATE_DEV_SIM_CONTROL_PORT", ports.control.to_string())
            .env("WAGATE_DEV_LAMBDA_PORT", ports.lambda.to_string())
            // Receipts a little quicker than the interactive default.
            .env("WAGATE_DEV_RECEIPT_DELIVERED_MS", "300")
            .env("WAGATE_DEV_RECEIPT_READ_MS", "300")
            // dev.sh points everything at its own moto_server.
            .env_remove("AWS_ENDPOINT_URL")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("bash runs scripts/dev.sh");
        DevStack {
            child: Some(child),
            state,
            output,
            ports,
        }
    }

    /// The run id dev.sh chose (empty before it wrote it).
    fn run_id(&self) -> String {
        std::fs::read_to_string(self.state.join("dev.run-id"))
            .map(|id| id.trim().to_owned())
            .unwrap_or_default()
    }

    fn output(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.output) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.join(name)).unwrap_or_default()
    }

    fn diagnostics(&self) -> String {
        let tail = |text: String| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- dev.sh ---\n{}\n--- event-sources.log ---\n{}\n--- lambda-watch.log ---\n{}\n--- gowa-sim.log ---\n{}",
            tail(self.output()),
            tail(self.log("event-sources.log")),
            tail(self.log("lambda-watch.log")),
            tail(self.log("gowa-sim.log")),
        )
    }

    /// Waits for dev.sh's "ready" line; fails early if it exited.
    fn wait_ready(&mut self) -> Duration {
        let started = Instant::now();
        loop {
            let output = self.output();
            if let Some(line) = output.lines().find(|l| l.starts_with("dev.sh: ready in ")) {
                eprintln!("{line} (the test saw it after {:?})", started.elapsed());
                return started.elapsed();
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "dev.sh exited ({status}) before it was ready\n{}",
                    self.diagnostics()
                );
            }
            assert!(
                started.elapsed() < READY_WITHIN,
                "dev.sh was not ready within {READY_WITHIN:?}\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn env_file(&self) -> PathBuf {
        self.state.join("stack.env")
    }

    /// `target/debug/wagate-dev ARGS` against this stack.
    fn wagate_dev(&self, args: &[&str]) -> Output {
        Command::new(wagate_dev())
            .args(args)
            .current_dir(workspace_root())
            .env("WAGATE_DEV_ENV_FILE", self.env_file())
            .env(
                "GOWA_SIM_CONTROL_URL",
                format!("http://127.0.0.1:{}", self.ports.control),
            )
            .stdin(Stdio::null())
            .output()
            .expect("wagate-dev runs")
    }

    /// Ctrl-C: SIGINT to the whole foreground group, then waits for dev.sh to finish.
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let pgid = child.id() as i32;
        // SAFETY: kill(2) on the process group of a child this test spawned.
        unsafe {
            libc_kill(-pgid, SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "dev.sh did not stop within 60 s of SIGINT\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for DevStack {
    fn drop(&mut self) {
        // Only when the test failed before interrupting: stop everything of this run.
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's process group and on processes carrying the
            // run id this test generated.
            unsafe {
                libc_kill(-(child.id() as i32), SIGKILL);
            }
            let _ = child.wait();
            let run_id = self.run_id();
            if !run_id.is_empty() {
                for pid in processes_of_run(&run_id) {
                    unsafe {
                        libc_kill(pid, SIGKILL);
                    }
                }
            }
        }
    }
}

fn wagate_dev() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("debug/wagate-dev")
}

/// Live processes whose environment carries `WAGATE_DEV_RUN_ID=run_id`, with their command.
fn processes_of_run(run_id: &str) -> Vec<i32> {
    let marker = format!("WAGATE_DEV_RUN_ID={run_id}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

fn command_line(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The states `send --wait` printed, in order (`HH:MM:SS.mmm  <state> ...`).
fn printed_states(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// Receives from the inbound queue with `wagate-dev inbound --json` until `done` holds.
fn inbound_until(stack: &DevStack, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = stack.wagate_dev(&["inbound", "--json"]);
        assert!(
            out.status.success(),
            "wagate-dev inbound failed: {}",
            text(&out.stderr)
        );
        for line in BufReader::new(out.stdout.as_slice()).lines() {
            let line = line.unwrap();
            events.push(serde_json::from_str::<Value>(&line).expect("one InboundEvent per line"));
        }
        if done(&events) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "the inbound queue never had what was expected; got {events:#?}\n{}",
            stack.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn is_reply(event: &Value) -> bool {
    event["eventType"] == "message" && event["text"] == "Thanks, see you Saturday"
}

#[test]
fn dev_sh_sends_delivers_reads_and_receives_a_reply_then_stops_everything_on_sigint() {
    let mut stack = DevStack::start();
    stack.wait_ready();

    // --- send one message and follow it ---------------------------------------------------
    let sent = stack.wagate_dev(&[
        "send",
        "--tenant",
        "demo",
        "--to",
        "+6281234567890",
        "--text",
        "Booking confirmed",
        "--wait",
        "--timeout-secs",
        "120",
    ]);
    let stdout = text(&sent.stdout);
    assert!(
        sent.status.success(),
        "send --wait: {}\nstdout:\n{stdout}\nstderr:\n{}\n{}",
        sent.status,
        text(&sent.stderr),
        stack.diagnostics()
    );
    let key = stdout.lines().next().unwrap().trim().to_owned();
    assert!(
        key.starts_with("dev-"),
        "the first line is the key: {stdout}"
    );
    let states = printed_states(&stdout);
    let position = |state: &str| {
        states
            .iter()
            .position(|s| s == state)
            .unwrap_or_else(|| panic!("{state} never printed: {stdout}"))
    };
    assert!(
        position("sent") < position("delivered") && position("delivered") < position("read"),
        "sent, then delivered, then read: {stdout}"
    );
    assert_eq!(states.last().map(String::as_str), Some("read"));
    let provider_id = stdout
        .lines()
        .find(|l| l.contains(" read "))
        .and_then(|l| l.split("provider id ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the read line names the provider id")
        .to_owned();

    // The event source took it from the queue in one batch and deleted it.
    let sources = stack.log("event-sources.log");
    assert!(
        sources.lines().any(
            |l| l.contains("outbound-sender <- OutboundQueue: 1 record(s)")
                && l.contains("group=demo receive=1")
                && l.contains("deleted 1")
        ),
        "{sources}"
    );
    // And the schedule ran the health check (at start).
    assert!(
        sources
            .lines()
            .any(|l| l.contains("health-check <- schedule") && l.contains(": ok")),
        "{sources}"
    );

    // --- the contact replies to it ----------------------------------------------------------
    let reply = stack.wagate_dev(&[
        "reply",
        "--from",
        "+6281234567890",
        "--text",
        "Thanks, see you Saturday",
        "--tenant",
        "demo",
        "--reply-to-key",
        &key,
    ]);
    assert!(
        reply.status.success(),
        "reply: {}\n{}",
        text(&reply.stderr),
        stack.diagnostics()
    );

    let events = inbound_until(&stack, |events| events.iter().any(is_reply));
    let reply_event = events.iter().find(|e| is_reply(e)).unwrap();
    assert_eq!(reply_event["tenantId"], "demo");
    assert_eq!(reply_event["sender"]["id"], "6281234567890@s.whatsapp.net");
    assert_eq!(reply_event["replyTo"]["messageId"], provider_id.as_str());
    assert_eq!(reply_event["replyTo"]["quotedText"], "Booking confirmed");
    let receipts: Vec<&str> = events
        .iter()
        .filter(|e| e["eventType"] == "receipt")
        .filter(|e| {
            e["receipt"]["messageIds"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|id| id == provider_id.as_str()))
        })
        .filter_map(|e| e["receipt"]["state"].as_str())
        .collect();
    assert_eq!(receipts, ["delivered", "read"], "{events:#?}");
    // Consumed: a second read finds the queue empty.
    let again = stack.wagate_dev(&["inbound", "--json"]);
    assert!(again.status.success());
    assert_eq!(text(&again.stdout), "", "inbound deletes what it printed");

    // --- issue 16: each other kind's demo tenant sends and gets its receipts too -----------
    for (kind, _, _) in &stack.ports.kinds {
        let tenant = format!("demo-{kind}");
        assert!(
            stack
                .output()
                .contains(&format!("dev.sh: {tenant} tenant created ({kind})")),
            "{}",
            stack.diagnostics()
        );
        let sent = stack.wagate_dev(&[
            "send",
            "--tenant",
            &tenant,
            "--to",
            "+6281234567890",
            "--text",
            "Booking confirmed",
            "--wait",
            "--timeout-secs",
            "120",
        ]);
        let stdout = text(&sent.stdout);
        assert!(
            sent.status.success(),
            "{tenant} send --wait: {}\nstdout:\n{stdout}\nstderr:\n{}\n{}",
            sent.status,
            text(&sent.stderr),
            stack.diagnostics()
        );
        // Its simulator's signed receipts came back through the ingress.
        assert_eq!(
            printed_states(&stdout).last().map(String::as_str),
            Some("read"),
            "{tenant}: {stdout}"
        );
    }

    // --- Ctrl-C: everything it started is gone ---------------------------------------------
    let run_id = stack.run_id();
    assert!(run_id.starts_with("dev-"), "{run_id:?}");
    let running = processes_of_run(&run_id);
    assert!(
        running.len() >= 5,
        "dev.sh, moto, the simulator, cargo lambda and the event sources carry the run id: {:?}",
        running.iter().map(|p| command_line(*p)).collect::<Vec<_>>()
    );
    let status = stack.interrupt();
    assert_eq!(status.code(), Some(130), "{}", stack.diagnostics());
    assert!(stack.output().contains("dev.sh: stopped"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_of_run(&run_id);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running after dev.sh stopped: {:?}",
            left.iter()
                .map(|p| format!("{p} {}", command_line(*p)))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let kind_ports = stack.ports.kinds.iter().flat_map(|(_, a, c)| [*a, *c]);
    for port in [
        stack.ports.moto,
        stack.ports.sim,
        stack.ports.control,
        stack.ports.lambda,
    ]
    .into_iter()
    .chain(kind_ports)
    {
        assert!(!port_open(port), "127.0.0.1:{port} still answers");
    }
}

#[test]
fn dev_sh_refuses_a_bad_port_setting_and_starts_nothing() {
    let state = tempdir();
    let out = Command::new("bash")
        .arg("scripts/dev.sh")
        .current_dir(workspace_root())
        .env("WAGATE_DEV_STATE_DIR", &state)
        .env("WAGATE_DEV_LAMBDA_PORT", "ninety")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("WAGATE_DEV_LAMBDA_PORT must be a port number"),
        "{}",
        text(&out.stderr)
    );
    // It stopped before choosing a run id, provisioning or starting anything.
    assert!(!Path::new(&state).join("dev.run-id").exists());
    assert!(!Path::new(&state).join("stack.env").exists());
}

#[test]
fn dev_sh_refuses_an_unknown_server_kind_and_starts_nothing() {
    let state = tempdir();
    let out = Command::new("bash")
        .arg("scripts/dev.sh")
        .current_dir(workspace_root())
        .env("WAGATE_DEV_STATE_DIR", &state)
        .env("WAGATE_DEV_KINDS", "waha,whatsmeow")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("WAGATE_DEV_KINDS takes waha, evolution, meta or all, not whatsmeow"),
        "{}",
        text(&out.stderr)
    );
    assert!(!Path::new(&state).join("dev.run-id").exists());
    assert!(!Path::new(&state).join("stack.env").exists());
}
