//! The container files: docker-compose.yml validates (Debian's docker-compose
//! 1.29 checks it without an engine) and wires health checks and start order.

use std::path::PathBuf;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn compose(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("docker-compose").args(args).current_dir(root()).output().await.expect(
        "docker-compose not found: apt-get install --no-install-recommends docker-compose (scripts/test does this)",
    )
}

#[tokio::test]
async fn docker_compose_file_is_valid_and_orders_startup_by_health() {
    let check = compose(&["config", "-q"]).await;
    assert!(check.status.success(), "docker-compose config -q: {}", String::from_utf8_lossy(&check.stderr));

    let rendered = compose(&["config"]).await;
    let config: Value = yaml_to_json(&String::from_utf8_lossy(&rendered.stdout));
    for service in ["postgres", "better-auth", "auth-service", "history-service"] {
        assert!(config["services"][service]["healthcheck"]["test"].is_array(), "{service} has no health check");
    }
    assert_eq!(config["services"]["postgres"]["image"], "postgres:16");
    assert_eq!(config["services"]["history-service"]["depends_on"]["postgres"]["condition"], "service_healthy");
    assert_eq!(config["services"]["history-service"]["depends_on"]["auth-service"]["condition"], "service_healthy");
    assert_eq!(config["services"]["auth-service"]["depends_on"]["better-auth"]["condition"], "service_healthy");
    assert_eq!(config["services"]["auth-service"]["build"]["target"], "auth-service");
    assert_eq!(config["services"]["history-service"]["build"]["target"], "history-service");
}

/// `docker-compose config` prints YAML (`--format json` needs compose v2);
/// the Python that runs docker-compose 1.x has PyYAML, so it converts.
fn yaml_to_json(yaml: &str) -> Value {
    let compose = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths).map(|dir| dir.join("docker-compose")).find(|path| path.is_file())
        })
        .expect("docker-compose on PATH");
    let script = std::fs::read_to_string(compose).unwrap();
    let python = script.lines().next().and_then(|line| line.strip_prefix("#!")).unwrap_or("python3").trim().to_owned();
    let output = std::process::Command::new(python)
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().expect("stdin").write_all(yaml.as_bytes())?;
            child.wait_with_output()
        })
        .expect("docker-compose's Python");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("{error}: {yaml}"))
}

#[test]
fn the_dockerfile_builds_one_target_per_service_with_a_health_check() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    for service in ["auth-service", "history-service"] {
        assert!(dockerfile.contains(&format!("AS {service}\n")), "no {service} target");
        assert!(dockerfile.contains(&format!("CMD [\"{service}\", \"healthcheck\"]")), "no {service} health check");
    }
    assert!(dockerfile.contains("USER 65532:65532"), "runs as an unprivileged user");
}
