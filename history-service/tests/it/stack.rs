//! `scripts/stack`, the README's first command, exactly as a user runs it:
//! no DATABASE_URL (a private PostgreSQL), no BETTER_AUTH_URL (dev-issuer),
//! JSON logs. The printed grpcurl commands work, `/metrics` counts the calls,
//! no log line holds the token, and Ctrl-C leaves no process or cluster behind.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader},
    process::Command,
};

/// The running scripts/stack. If the test fails half-way, dropping this
/// stops the stack as Ctrl-C would (SIGTERM to the process group) and waits,
/// bounded, for the script's own cleanup.
struct Stack {
    child: tokio::process::Child,
    pid: u32,
}

impl Drop for Stack {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = std::process::Command::new("kill").args(["-TERM", "--", &format!("-{}", self.pid)]).status();
        for _ in 0..300 {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn env_value(env: &str, name: &str) -> String {
    env.split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} missing from {env}"))
        .to_owned()
}

#[tokio::test]
async fn scripts_stack_serves_the_printed_commands_and_ctrl_c_cleans_up() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let state = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("stack-test-{}", std::process::id()));
    let (auth, history) = (free_addr(), free_addr());
    let (auth_metrics, history_metrics) = (free_addr(), free_addr());
    let child = Command::new(root.join("scripts/stack"))
        .current_dir(&root)
        .env_remove("DATABASE_URL")
        .env_remove("BETTER_AUTH_URL")
        .env("STACK_DIR", &state)
        .env("AUTH_LISTEN", &auth)
        .env("HISTORY_LISTEN", &history)
        .env("AUTH_METRICS_LISTEN", &auth_metrics)
        .env("HISTORY_METRICS_LISTEN", &history_metrics)
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut stack = Stack { child, pid };
    let mut stdout = stack.child.stdout.take().unwrap();
    let stdout_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text).await;
        text
    });
    let mut stderr = BufReader::new(stack.child.stderr.take().unwrap()).lines();

    // Read the log until the stack says it runs (it may have to build first).
    let mut log = Vec::new();
    let started = tokio::time::timeout(Duration::from_secs(600), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            let done = line.contains("running; Ctrl-C stops everything");
            log.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await
    .expect("the stack did not come up within 10 minutes");
    assert!(started, "scripts/stack exited early:\n{}", log.join("\n"));
    let banner = log.join("\n");
    let env = std::fs::read_to_string(state.join("env")).unwrap();
    let token = env_value(&env, "TOKEN");
    assert_eq!(env_value(&env, "HISTORY"), history);

    // The grpcurl commands the banner prints, as printed.
    let commands: Vec<&str> = banner.lines().map(str::trim).filter(|line| line.starts_with("grpcurl ")).collect();
    assert_eq!(commands.len(), 3, "{banner}");
    let grpcurl_dir = test_support::grpcurl::binary().parent().unwrap().to_owned();
    let script = format!("source '{}/env'\n{}", state.display(), commands.join("\n"));
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("PATH", format!("{}:{}", grpcurl_dir.display(), std::env::var("PATH").unwrap()))
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains("history.v1.HistoryService"), "{printed}");
    assert!(printed.contains("\"title\": \"First chat\""), "{printed}");

    // Both services count what happened.
    let history_text = test_support::scrape(history_metrics.parse().unwrap()).await;
    let created = test_support::sample(
        &history_text,
        "history_grpc_server_handled_total",
        &["grpc_method=\"CreateConversation\"", "grpc_code=\"OK\""],
    );
    assert_eq!(created, Some(1.0), "{history_text}");
    let auth_text = test_support::scrape(auth_metrics.parse().unwrap()).await;
    assert_eq!(
        test_support::sample(
            &auth_text,
            "auth_grpc_server_handled_total",
            &["grpc_method=\"VerifyToken\"", "grpc_code=\"OK\""]
        ),
        Some(1.0),
        "one verification; the second call came from the identity cache:\n{auth_text}"
    );

    // The container health checks answer from the running services.
    for (binary, variable, addr) in
        [("auth-service", "AUTH_LISTEN", &auth), ("history-service", "HISTORY_LISTEN", &history)]
    {
        let status = Command::new(root.join("target/debug").join(binary))
            .arg("healthcheck")
            .env(variable, addr)
            .status()
            .await
            .unwrap();
        assert!(status.success(), "{binary} healthcheck");
    }

    // Ctrl-C, as a terminal sends it: to the whole process group.
    let status = Command::new("kill").args(["-INT", "--", &format!("-{pid}")]).status().await.unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(60), stack.child.wait())
        .await
        .expect("stack stops within 60 s")
        .unwrap();
    assert_eq!(exit.code(), Some(130));
    while let Some(line) = stderr.next_line().await.unwrap() {
        log.push(line);
    }
    let stdout = stdout_task.await.unwrap();

    // Nothing is left: no process of the stack, no cluster, no state.
    let leftovers = Command::new("pgrep").args(["-f", &state.display().to_string()]).output().await.unwrap();
    assert!(leftovers.stdout.is_empty(), "processes left: {}", String::from_utf8_lossy(&leftovers.stdout));
    for addr in [&auth, &history, &auth_metrics, &history_metrics] {
        assert!(std::net::TcpStream::connect(addr).is_err(), "{addr} still accepts connections");
    }
    let down = Command::new(root.join("target/debug/history-service"))
        .arg("healthcheck")
        .env("HISTORY_LISTEN", &history)
        .output()
        .await
        .unwrap();
    assert_eq!(down.status.code(), Some(1), "healthcheck fails when nothing serves");
    let left: Vec<_> = std::fs::read_dir(&state).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert!(left.iter().all(|name| !name.to_string_lossy().starts_with("pgdata")), "cluster left behind: {left:?}");
    assert!(!state.join("env").exists());

    // JSON logs: every service line parses, calls are logged with method,
    // code, latency and user, and the token is in no line at all.
    let json_lines: Vec<Value> = log
        .iter()
        .map(String::as_str)
        .chain(stdout.lines())
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    let call = json_lines
        .iter()
        .find(|line| line["message"] == "call finished" && line["span"]["rpc.method"] == "CreateConversation")
        .unwrap_or_else(|| panic!("no call line in:\n{}", log.join("\n")));
    assert_eq!(call["code"], "OK");
    assert!(call["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(call["span"]["user_id"], "dev-user");
    assert!(!log.iter().any(|line| line.contains(&token)), "a log line holds the token");
    assert!(!stdout.contains(&token), "stdout holds the token");
    std::fs::remove_dir_all(&state).unwrap();
}
