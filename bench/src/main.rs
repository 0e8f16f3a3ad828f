//! `scripts/bench`: measures auth-service and history-service (release
//! builds) against this machine's limits, side by side, in one run.
//!
//! 1. PostgreSQL: a private cluster from the machine's binaries (or
//!    `DATABASE_URL`, into a fresh `history_bench` database), migrated and
//!    loaded with COPY (see `data.rs`).
//! 2. auth-service with a JWKS this process serves (EdDSA, like Better Auth),
//!    history-service, and a small identity-layer server ("whoami") for the
//!    cached-token scenario, each its own process.
//! 3. Scenarios at a fixed concurrency for a fixed time, several runs each.
//! 4. The limits on the same data: pgbench on the same SQL, openssl's
//!    Ed25519 verify rate, the COPY rate.
//! 5. One table: figure, limit, ratio, target; and every process's memory.

mod data;
mod drive;
mod limits;
mod proc;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use chat_proto::{
    auth::v1::{VerifyTokenRequest, auth_service_client::AuthServiceClient, auth_service_server::AuthServiceServer},
    history::v1::{
        AppendMessagesRequest, ListMessagesRequest, NewMessage, Role, history_service_client::HistoryServiceClient,
    },
};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use serde_json::json;
use service_kit::{AuthLayer, AuthLayerConfig};
use sqlx::{ConnectOptions as _, Connection as _, postgres::PgConnectOptions};
use test_support::{
    JwksServer, TestKey,
    keys::{jwks, now},
    pg::PrivateCluster,
};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

use crate::{
    data::{APPEND_USER, DEEP_MESSAGES, DEEP_USER, append_conversation, deep_conversation},
    drive::{Run, closed_loop},
    proc::{Proc, free_addr},
};

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "bench", about = "Measure the service pair against this machine's limits")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Length of one run of one scenario.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Runs per scenario (the median run is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Concurrent callers (and pgbench clients).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Use this PostgreSQL server (a fresh `history_bench` database is made).
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// (internal) A minimal service behind the identity layer.
    Whoami {
        /// Listen address.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// auth-service URL.
        #[arg(long)]
        auth: String,
    },
}

use test_support::whoami::WhoAmI;

async fn whoami(listen: std::net::SocketAddr, auth: &str) -> anyhow::Result<()> {
    let layer = AuthLayer::connect_lazy(auth, AuthLayerConfig::default())?;
    let (_reporter, health) = tonic_health_server();
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tonic::transport::Server::builder()
        .layer(layer)
        .add_service(health)
        .add_service(AuthServiceServer::new(WhoAmI))
        .serve_with_incoming_shutdown(service_kit::serve::incoming(listener), async {
            service_kit::shutdown::signal().await;
        })
        .await?;
    Ok(())
}

fn tonic_health_server() -> (
    tonic_health::server::HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    tonic_health::server::health_reporter()
}

/// CPU seconds used so far by each part of the system under test.
#[derive(Clone, Copy, Default)]
struct CpuSplit {
    history: f64,
    auth: f64,
    layer: f64,
    postgres: f64,
    client: f64,
}

struct Meter {
    history: u32,
    auth: u32,
    layer: u32,
    postmaster: Option<u32>,
}

impl Meter {
    fn read(&self) -> CpuSplit {
        CpuSplit {
            history: proc::cpu_seconds_of(self.history),
            auth: proc::cpu_seconds_of(self.auth),
            layer: proc::cpu_seconds_of(self.layer),
            postgres: self.postmaster.map_or(0.0, proc::cpu_seconds_of_tree),
            client: proc::cpu_seconds_of(std::process::id()),
        }
    }

    /// PostgreSQL's busy cores between `before` and now.
    fn postgres_since(&self, before: CpuSplit, seconds: f64) -> String {
        if self.postmaster.is_none() {
            return "?".to_owned();
        }
        format!("{:.2}", (self.read().postgres - before.postgres) / seconds)
    }

    /// Busy cores of each part between `before` and now, over `seconds`.
    fn since(&self, before: CpuSplit, seconds: f64) -> String {
        let now = self.read();
        let part = |a: f64, b: f64| (a - b) / seconds;
        let layer = part(now.layer, before.layer);
        format!(
            "history {:.2}, auth {:.2},{} postgres {}, bench client {:.2}",
            part(now.history, before.history),
            part(now.auth, before.auth),
            if layer > 0.01 { format!(" layer probe {layer:.2},") } else { String::new() },
            if self.postmaster.is_some() {
                format!("{:.2}", part(now.postgres, before.postgres))
            } else {
                "?".to_owned()
            },
            part(now.client, before.client)
        )
    }
}

/// One scenario's result.
struct Row {
    name: &'static str,
    figure: String,
    cpu: String,
    limit: String,
    ratio: Option<f64>,
    target: &'static str,
    met: Option<bool>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median rate of `runs`, with p50/p99 of all runs together.
fn summarize(runs: &[Run], items: bool) -> (f64, f64, f64) {
    let rate = median(runs.iter().map(|run| if items { run.item_rate() } else { run.rate() }).collect());
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    for run in runs {
        let _ = all.add(&run.latency);
    }
    (rate, all.value_at_quantile(0.5) as f64 / 1000.0, all.value_at_quantile(0.99) as f64 / 1000.0)
}

fn bearer(token: &str) -> MetadataValue<tonic::metadata::Ascii> {
    MetadataValue::try_from(format!("Bearer {token}")).expect("ascii token")
}

async fn channels(addr: std::net::SocketAddr, count: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        channels.push(
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true).connect().await?,
        );
    }
    Ok(channels)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::Whoami { listen, auth }) = &args.command {
        return whoami(*listen, auth).await;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let release = root.join("target/release");
    let work = root.join("target/bench");
    std::fs::create_dir_all(&work)?;
    let say = |text: &str| eprintln!("\x1b[1m==> {text}\x1b[0m");

    // 1. PostgreSQL and the data set.
    let (_cluster, url) = match &args.database_url {
        Some(url) => {
            let admin: PgConnectOptions = url.parse().context("DATABASE_URL")?;
            let mut connection = admin.connect().await?;
            sqlx::query("DROP DATABASE IF EXISTS history_bench WITH (FORCE)").execute(&mut connection).await?;
            sqlx::query("CREATE DATABASE history_bench").execute(&mut connection).await?;
            connection.close().await?;
            let url = admin.database("history_bench").to_url_lossy().to_string();
            say("using DATABASE_URL (database history_bench)");
            (None, url)
        }
        None => {
            say("starting a private PostgreSQL");
            let cluster = PrivateCluster::start();
            let url = cluster.url();
            (Some(cluster), url)
        }
    };
    let connect: PgConnectOptions = url.parse()?;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect_with(connect.clone()).await?;
    history_service::MIGRATOR.run(&pool).await?;
    say("loading 1,000 users, 10,000 conversations, 1,000,000 + 200,000 messages with COPY");
    let loading = std::time::Instant::now();
    data::load(&pool, args.concurrency).await?;
    let load_time = loading.elapsed();

    // 2. The services.
    let key = TestKey::generate("EdDSA", "benchkey0000000000000000000000000");
    let jwks_server = JwksServer::serving(jwks(&[&key])).await;
    let issuer = jwks_server.base_url();
    let (auth_addr, history_addr, whoami_addr) = (free_addr(), free_addr(), free_addr());
    say("starting auth-service, history-service and the identity-layer probe (release builds)");
    let auth = Proc::start(
        "auth-service",
        &release.join("auth-service"),
        &[],
        &[
            ("BETTER_AUTH_URL", issuer.clone()),
            ("AUTH_LISTEN", auth_addr.to_string()),
            ("AUTH_METRICS_LISTEN", free_addr().to_string()),
        ],
        auth_addr,
        &work.join("auth-service.log"),
    )
    .await?;
    let history = Proc::start(
        "history-service",
        &release.join("history-service"),
        &[],
        &[
            ("DATABASE_URL", url.clone()),
            ("HISTORY_LISTEN", history_addr.to_string()),
            ("HISTORY_METRICS_LISTEN", free_addr().to_string()),
            ("AUTH_SERVICE_URL", format!("http://{auth_addr}")),
            ("DATABASE_MAX_CONNECTIONS", args.concurrency.to_string()),
        ],
        history_addr,
        &work.join("history-service.log"),
    )
    .await?;
    let whoami_proc = Proc::start(
        "identity layer",
        &std::env::current_exe()?,
        &["whoami", "--listen", &whoami_addr.to_string(), "--auth", &format!("http://{auth_addr}")],
        &[],
        whoami_addr,
        &work.join("whoami.log"),
    )
    .await?;
    let idle = [(auth.name, auth.rss_mib()), (history.name, history.rss_mib())];
    let meter = Meter {
        history: history.id(),
        auth: auth.id(),
        layer: whoami_proc.id(),
        postmaster: _cluster.as_ref().and_then(|cluster| proc::postmaster_pid(cluster.data_dir())),
    };

    let claims = |user: &str| {
        json!({"sub": user, "email": format!("{user}@example.com"), "name": user, "emailVerified": true,
               "iat": now(), "exp": now() + 3600, "iss": issuer, "aud": issuer})
    };
    let deep_token = key.sign(&claims(DEEP_USER));
    let append_token = key.sign(&claims(APPEND_USER));
    let auth_channels = channels(auth_addr, 4).await?;
    let history_channels = channels(history_addr, 4).await?;
    let whoami_channels = channels(whoami_addr, 4).await?;
    let (c, d, runs) = (args.concurrency, args.duration, args.runs);
    let mut rows = Vec::new();

    // 3. Scenarios, with the matching limits measured right after.
    say("openssl speed ed25519");
    let openssl = limits::openssl_ed25519_verify().await?;

    say("VerifyToken, distinct tokens");
    let distinct: Arc<Vec<String>> = Arc::new((0..50_000).map(|n| key.sign(&claims(&format!("user{n:05}")))).collect());
    let mut verify_runs = Vec::new();
    let mut busy_cores = Vec::new();
    let (before, clock) = (meter.read(), std::time::Instant::now());
    for _ in 0..runs {
        let cpu = auth.cpu_seconds();
        let channels = auth_channels.clone();
        let tokens = distinct.clone();
        let run = closed_loop(c, d, move |worker, i| {
            let mut client = AuthServiceClient::new(channels[worker % channels.len()].clone());
            let token = tokens[(worker * 7919 + i as usize * c) % tokens.len()].clone();
            async move { client.verify_token(VerifyTokenRequest { token }).await.map(|_| 1) }
        })
        .await;
        busy_cores.push((auth.cpu_seconds() - cpu) / run.elapsed.as_secs_f64());
        verify_runs.push(run);
    }
    let cpu = meter.since(before, clock.elapsed().as_secs_f64());
    let (rate, p50, p99) = summarize(&verify_runs, false);
    let cores = median(busy_cores);
    let per_core = rate / cores;
    rows.push(Row {
        name: "VerifyToken, distinct tokens",
        figure: format!(
            "{rate:.0}/s (p50 {p50:.2} ms, p99 {p99:.2} ms); {per_core:.0}/s per busy core ({cores:.2} cores)"
        ),
        cpu,
        limit: format!("openssl Ed25519 verify {openssl:.0}/s per core"),
        ratio: Some(per_core / openssl),
        target: "≥ 0.9 per busy core",
        met: Some(per_core / openssl >= 0.9),
    });

    say("a repeated token through the identity cache");
    let mut cached_runs = Vec::new();
    let (before, clock) = (meter.read(), std::time::Instant::now());
    for _ in 0..runs {
        let channels = whoami_channels.clone();
        let header = bearer(&deep_token);
        cached_runs.push(
            closed_loop(c, d, move |worker, _| {
                let mut client = AuthServiceClient::new(channels[worker % channels.len()].clone());
                let mut request = Request::new(VerifyTokenRequest::default());
                request.metadata_mut().insert("authorization", header.clone());
                async move { client.verify_token(request).await.map(|_| 1) }
            })
            .await,
        );
    }
    let cpu = meter.since(before, clock.elapsed().as_secs_f64());
    let (cached, p50, p99) = summarize(&cached_runs, false);
    rows.push(Row {
        name: "Repeated token, identity cache",
        figure: format!("{cached:.0}/s (p50 {p50:.2} ms, p99 {p99:.2} ms)"),
        cpu,
        limit: format!("openssl Ed25519 verify {openssl:.0}/s per core"),
        ratio: Some(cached / openssl),
        target: "far above 1",
        met: Some(cached / openssl > 2.0),
    });

    let page = |after: Option<String>| {
        let channels = history_channels.clone();
        let header = bearer(&deep_token);
        move |worker: usize, _| {
            let mut client = HistoryServiceClient::new(channels[worker % channels.len()].clone());
            let mut request = Request::new(ListMessagesRequest {
                conversation_id: deep_conversation().to_string(),
                page_size: 50,
                page_token: after.clone().unwrap_or_default(),
                ..Default::default()
            });
            request.metadata_mut().insert("authorization", header.clone());
            async move { client.list_messages(request).await.map(|r| r.into_inner().messages.len() as u64) }
        }
    };
    // The token a client holds after reading all but the last 50 messages.
    let end_token = history_service::page_token::encode_messages(
        deep_conversation(),
        history_service::page_token::MessageOrder::OldestFirst,
        DEEP_MESSAGES - 50,
    );
    let mut page_rates = Vec::new();
    for (name, after, after_seq) in
        [("ListMessages, first page", None, 0), ("ListMessages, last page", Some(end_token), DEEP_MESSAGES - 50)]
    {
        say(name);
        let mut page_runs = Vec::new();
        let (before, clock) = (meter.read(), std::time::Instant::now());
        for _ in 0..runs {
            page_runs.push(closed_loop(c, d, page(after.clone())).await);
        }
        let cpu = meter.since(before, clock.elapsed().as_secs_f64());
        let (rate, p50, p99) = summarize(&page_runs, false);
        let mut pgbench_runs = Vec::new();
        let (before, clock) = (meter.read(), std::time::Instant::now());
        for _ in 0..runs {
            pgbench_runs.push(
                limits::pgbench(
                    &url,
                    &limits::page_script(),
                    &limits::page_defines(after_seq),
                    c,
                    d.as_secs().max(1),
                    &work,
                )
                .await?,
            );
        }
        let pg_cpu = meter.postgres_since(before, clock.elapsed().as_secs_f64());
        let pg = median(pgbench_runs.iter().map(|r| r.tps).collect());
        let pg_latency = median(pgbench_runs.iter().map(|r| r.latency_ms).collect());
        page_rates.push(rate);
        rows.push(Row {
            name,
            figure: format!("{rate:.0}/s (p50 {p50:.2} ms, p99 {p99:.2} ms)"),
            limit: format!("pgbench same SQL {pg:.0}/s (mean {pg_latency:.2} ms; postgres {pg_cpu} cores)"),
            cpu,
            ratio: Some(rate / pg),
            target: "≥ 0.6",
            met: Some(rate / pg >= 0.6),
        });
    }
    rows.push(Row {
        name: "Last page vs first page",
        figure: format!("{:.0}/s vs {:.0}/s", page_rates[1], page_rates[0]),
        cpu: String::new(),
        limit: "the first page".to_owned(),
        ratio: Some(page_rates[1] / page_rates[0]),
        target: "≥ 0.9",
        met: Some(page_rates[1] / page_rates[0] >= 0.9),
    });

    say("AppendMessages, one message, each client on its own conversation");
    let mut append_runs = Vec::new();
    let (before, clock) = (meter.read(), std::time::Instant::now());
    for _ in 0..runs {
        let channels = history_channels.clone();
        let header = bearer(&append_token);
        append_runs.push(
            closed_loop(c, d, move |worker, _| {
                let mut client = HistoryServiceClient::new(channels[worker % channels.len()].clone());
                let mut request = Request::new(AppendMessagesRequest {
                    conversation_id: append_conversation(worker + 1).to_string(),
                    messages: vec![NewMessage {
                        role: Role::User as i32,
                        content: "x".repeat(300),
                        ..Default::default()
                    }],
                });
                request.metadata_mut().insert("authorization", header.clone());
                async move { client.append_messages(request).await.map(|_| 1) }
            })
            .await,
        );
    }
    let cpu = meter.since(before, clock.elapsed().as_secs_f64());
    let (rate, p50, p99) = summarize(&append_runs, false);
    let mut pgbench_runs = Vec::new();
    let (before, clock) = (meter.read(), std::time::Instant::now());
    for _ in 0..runs {
        pgbench_runs.push(limits::pgbench(&url, &limits::append_script(), &[], c, d.as_secs().max(1), &work).await?);
    }
    let pg_cpu = meter.postgres_since(before, clock.elapsed().as_secs_f64());
    let pg = median(pgbench_runs.iter().map(|r| r.tps).collect());
    let pg_latency = median(pgbench_runs.iter().map(|r| r.latency_ms).collect());
    rows.push(Row {
        name: "AppendMessages, 1 message",
        figure: format!("{rate:.0}/s (p50 {p50:.2} ms, p99 {p99:.2} ms)"),
        limit: format!("pgbench same transaction {pg:.0}/s (mean {pg_latency:.2} ms; postgres {pg_cpu} cores)"),
        cpu,
        ratio: Some(rate / pg),
        target: "≥ 0.8",
        met: Some(rate / pg >= 0.8),
    });

    say("StreamMessages, 100,000 messages");
    const STREAMED: i64 = 100_000;
    let mut stream_rates = Vec::new();
    let (mut client_peak, mut server_peak) = (0f64, 0f64);
    let before = history.rss_mib();
    let (cpu_before, clock) = (meter.read(), std::time::Instant::now());
    for _ in 0..runs {
        proc::reset_own_peak();
        history.reset_peak();
        let mut client = HistoryServiceClient::new(history_channels[0].clone());
        let mut request = Request::new(ListMessagesRequest {
            conversation_id: deep_conversation().to_string(),
            page_size: 1000,
            limit: STREAMED,
            ..Default::default()
        });
        request.metadata_mut().insert("authorization", bearer(&deep_token));
        let started = std::time::Instant::now();
        let mut stream = client.stream_messages(request).await?.into_inner();
        let mut received = 0i64;
        while let Some(page) = stream.message().await? {
            received += page.messages.len() as i64;
        }
        anyhow::ensure!(received == STREAMED, "streamed {received} messages");
        stream_rates.push(received as f64 / started.elapsed().as_secs_f64());
        client_peak = client_peak.max(proc::own_memory().1);
        server_peak = server_peak.max(history.peak_mib());
    }
    let cpu = meter.since(cpu_before, clock.elapsed().as_secs_f64());
    let stream_rate = median(stream_rates);
    let mut copies = Vec::new();
    for _ in 0..runs {
        copies.push(limits::copy_rate(&pool, STREAMED).await?);
    }
    let copy = median(copies);
    rows.push(Row {
        name: "StreamMessages, 100,000 messages",
        figure: format!(
            "{stream_rate:.0} msg/s; server peak {server_peak:.1} MiB (idle {before:.1}), bench client peak {client_peak:.1} MiB"
        ),
        limit: format!("COPY TO STDOUT {copy:.0} rows/s"),
        cpu,
        ratio: Some(stream_rate / copy),
        target: "≥ 0.5, flat memory",
        met: Some(stream_rate / copy >= 0.5 && server_peak - before < 64.0),
    });

    // 5. The table.
    let end = [(auth.name, auth.rss_mib()), (history.name, history.rss_mib())];
    let mut table = String::new();
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_default();
    table.push_str(&format!(
        "Machine: {} cores, {machine}; PostgreSQL {}; concurrency {c}; {runs} runs of {} per scenario (median run); data loaded in {:.0} s.\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        sqlx::query_scalar::<_, String>("SHOW server_version").fetch_one(&pool).await?,
        humantime::format_duration(d),
        load_time.as_secs_f64()
    ));
    table.push_str("| Scenario | Figure | CPU busy (cores) | Limit (same run) | Ratio | Target | Met |\n|---|---|---|---|---|---|---|\n");
    for row in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            row.name,
            row.figure,
            row.cpu,
            row.limit,
            row.ratio.map_or("".to_owned(), |r| format!("{r:.2}")),
            row.target,
            match row.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            }
        ));
    }
    table.push_str("\n| Process | RSS idle | RSS at the end | Target |\n|---|---|---|---|\n");
    for ((name, idle), (_, end)) in idle.iter().zip(end.iter()) {
        table.push_str(&format!("| {name} | {idle:.1} MiB | {end:.1} MiB | idle < 30 MiB |\n"));
    }
    table.push_str(&format!("| identity-layer probe | | {:.1} MiB | |\n", whoami_proc.rss_mib()));
    write_results(&work, &table)?;
    #[allow(clippy::print_stdout)]
    {
        println!("{table}");
    }
    drop(whoami_proc);
    Ok(())
}

fn write_results(dir: &Path, table: &str) -> anyhow::Result<()> {
    std::fs::write(dir.join("results.md"), table)?;
    Ok(())
}
