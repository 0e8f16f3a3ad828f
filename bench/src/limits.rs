//! What this machine can do at best, measured on the same data in the same
//! run: pgbench on exactly the SQL the service runs, openssl's Ed25519 verify
//! rate, and PostgreSQL's COPY rate for the streamed rows.

use std::{path::Path, time::Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use sqlx::{PgPool, postgres::PgPoolCopyExt as _};
use tokio::process::Command;

use crate::data::{APPEND_USER, DEEP_USER, deep_conversation};

/// pgbench's throughput and mean latency for one script.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pgbench {
    /// Transactions per second (without connection time).
    pub(crate) tps: f64,
    /// Mean latency in milliseconds.
    pub(crate) latency_ms: f64,
}

/// The page SQL of history-service, with pgbench variables for its parameters.
pub(crate) fn page_script() -> String {
    let sql = history_service::db::PAGE_OLDEST_FIRST
        .replace("$1", ":conv::uuid")
        .replace("$2", ":user")
        .replace("$3", ":after::bigint")
        .replace("$4", ":lim::bigint");
    format!("{sql};\n")
}

/// The append transaction of history-service (one new message, no
/// client-chosen id), per client on its own conversation.
pub(crate) fn append_script() -> String {
    format!(
        "\\set n :client_id + 1
BEGIN;
SELECT last_seq FROM conversations WHERE id = lpad(:n::text, 32, '0')::uuid AND user_id = '{APPEND_USER}' FOR UPDATE \\gset
\\set next :last_seq + 1
INSERT INTO messages (id, conversation_id, user_id, seq, role, content, sources) SELECT m.id, lpad(:n::text, 32, '0')::uuid, '{APPEND_USER}', m.seq, m.role, m.content, m.sources FROM UNNEST(ARRAY[gen_random_uuid()], ARRAY[:next]::int8[], ARRAY['user'], ARRAY['{content}'], ARRAY[NULL]::jsonb[]) AS m(id, seq, role, content, sources) RETURNING id, conversation_id, seq, role, content, sources, created_at;
UPDATE conversations SET last_seq = :next, updated_at = now() WHERE id = lpad(:n::text, 32, '0')::uuid;
COMMIT;
",
        content = "x".repeat(300)
    )
}

/// Runs pgbench with `script` at `clients` for `seconds`.
pub(crate) async fn pgbench(
    url: &str,
    script: &str,
    defines: &[(&str, String)],
    clients: usize,
    seconds: u64,
    dir: &Path,
) -> anyhow::Result<Pgbench> {
    let file = dir.join(format!("pgbench-{}.sql", std::process::id()));
    std::fs::write(&file, script)?;
    let mut command = Command::new("pgbench");
    command
        .args(["-n", "-M", "prepared", "-c", &clients.to_string(), "-j", "2", "-T", &seconds.to_string(), "-f"])
        .arg(&file);
    for (name, value) in defines {
        command.arg("-D").arg(format!("{name}={value}"));
    }
    let output = command.arg(url).output().await.context("run pgbench (PostgreSQL's client tools)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "pgbench failed:\n{text}\n{}", String::from_utf8_lossy(&output.stderr));
    let number = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix)?.split_whitespace().next()?.parse::<f64>().ok())
            .with_context(|| format!("no {prefix:?} in pgbench output:\n{text}"))
    };
    Ok(Pgbench { tps: number("tps = ")?, latency_ms: number("latency average = ")? })
}

/// Defines for the page script.
pub(crate) fn page_defines(after: i64) -> Vec<(&'static str, String)> {
    vec![
        ("conv", deep_conversation().to_string()),
        ("user", DEEP_USER.to_owned()),
        ("after", after.to_string()),
        ("lim", "50".to_owned()),
    ]
}

/// openssl's single-core Ed25519 verifications per second.
pub(crate) async fn openssl_ed25519_verify() -> anyhow::Result<f64> {
    let output =
        Command::new("openssl").args(["speed", "-seconds", "3", "ed25519"]).output().await.context("run openssl")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|line| line.contains("Ed25519"))
        .and_then(|line| line.split_whitespace().last()?.parse().ok())
        .with_context(|| format!("no Ed25519 line in openssl speed output:\n{text}"))
}

/// Rows per second of `COPY ... TO STDOUT` for the first `rows` messages of
/// the deep conversation (the rows the stream scenario reads).
pub(crate) async fn copy_rate(pool: &PgPool, rows: i64) -> anyhow::Result<f64> {
    let statement = format!(
        "COPY (SELECT id, conversation_id, seq, role, content, sources, created_at FROM messages \
         WHERE conversation_id = '{}' AND user_id = '{DEEP_USER}' AND seq <= {rows} ORDER BY seq) TO STDOUT",
        deep_conversation()
    );
    let started = Instant::now();
    let mut stream = pool.copy_out_raw(&statement).await?;
    let mut lines = 0u64;
    while let Some(chunk) = stream.next().await {
        lines += chunk?.iter().filter(|byte| **byte == b'\n').count() as u64;
    }
    anyhow::ensure!(lines as i64 == rows, "COPY returned {lines} rows, expected {rows}");
    Ok(lines as f64 / started.elapsed().as_secs_f64())
}
