//! Faults: auth-service and PostgreSQL going away and coming back, and
//! replicas sharing one database.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chat_proto::history::v1::{AppendMessagesRequest, ListConversationsRequest, ListMessagesRequest, Role};
use history_service::{MIGRATOR, ServeOptions, config::DatabaseSettings, server::pool_with};
use sqlx::{PgPool, postgres::PgConnectOptions};
use test_support::{history::TestHistory, pg::PrivateCluster};
use tonic::Code;
use uuid::Uuid;

use crate::{assert_status, create, new_message};

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn an_auth_service_outage_is_unavailable_and_recovers_without_a_restart(pool: PgPool) {
    let mut history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let mut bob = history.client("bob").await;
    alice.list_conversations(ListConversationsRequest::default()).await.unwrap();

    history.auth.halt().await;
    // alice's identity is cached; bob's token has never been verified.
    alice.list_conversations(ListConversationsRequest::default()).await.expect("cached identities keep working");
    let error = bob.list_conversations(ListConversationsRequest::default()).await.unwrap_err();
    let message = assert_status(&error, Code::Unavailable, "AUTH_SERVICE_UNAVAILABLE");
    assert!(message.contains("the token itself was not rejected"), "{message}");

    history.auth.resume().await;
    bob.list_conversations(ListConversationsRequest::default())
        .await
        .expect("recovered without restarting history-service");
}

/// One retrying client: appends `count` messages one by one, each with its
/// own id, retrying a call until it is acknowledged.
async fn retrying_writer(
    mut client: test_support::history::Client,
    conversation_id: String,
    writer: usize,
    count: usize,
    acknowledged: Arc<Mutex<Vec<(Uuid, i64, Instant)>>>,
    progress: Arc<tokio::sync::watch::Sender<usize>>,
    codes: Arc<Mutex<HashMap<Code, usize>>>,
) {
    for n in 0..count {
        let id = Uuid::now_v7();
        let mut message = new_message(Role::User, &format!("writer {writer} message {n}"));
        message.message_id = id.to_string();
        let request = AppendMessagesRequest { conversation_id: conversation_id.clone(), messages: vec![message] };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match client.append_messages(request.clone()).await {
                Ok(response) => {
                    let stored = &response.get_ref().messages[0];
                    acknowledged.lock().unwrap().push((id, stored.seq, Instant::now()));
                    progress.send_modify(|n| *n += 1);
                    break;
                }
                Err(status) => {
                    *codes.lock().unwrap().entry(status.code()).or_default() += 1;
                    assert!(Instant::now() < deadline, "no recovery within 60 s: {status:?}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_survive_a_postgres_restart_exactly_once() {
    let cluster = Arc::new(PrivateCluster::start());
    let connect: PgConnectOptions = cluster.url().parse().unwrap();
    let settings = DatabaseSettings {
        connect: connect.clone(),
        migrate: connect.clone(),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(1),
        statement_timeout: Some(Duration::from_secs(5)),
    };
    let pool = pool_with(connect, &settings);
    MIGRATOR.run(&pool).await.unwrap();
    let history = TestHistory::start_direct(pool.clone(), ServeOptions::default()).await;
    let mut alice = history.client("alice").await;
    let conversation_id = create(&mut alice, "through a restart").await.conversation_id;

    const WRITERS: usize = 4;
    const EACH: usize = 50;
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let progress = Arc::new(tokio::sync::watch::Sender::new(0));
    let codes = Arc::new(Mutex::new(HashMap::new()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            tokio::spawn(retrying_writer(
                alice.clone(),
                conversation_id.clone(),
                writer,
                EACH,
                acknowledged.clone(),
                progress.clone(),
                codes.clone(),
            ))
        })
        .collect();

    // Restart PostgreSQL once a quarter of the appends are in.
    progress.subscribe().wait_for(|n| *n >= WRITERS * EACH / 4).await.unwrap();
    let restarter = cluster.clone();
    let back_at = tokio::task::spawn_blocking(move || {
        restarter.stop_server();
        std::thread::sleep(Duration::from_millis(500));
        restarter.start_server();
        Instant::now()
    })
    .await
    .unwrap();
    for writer in writers {
        writer.await.unwrap();
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    let codes = codes.lock().unwrap().clone();
    assert_eq!(acknowledged.len(), WRITERS * EACH);
    assert!(!codes.is_empty(), "the restart was noticed by the writers");
    eprintln!("answers during the outage: {codes:?}");
    for code in codes.keys() {
        assert!(
            matches!(code, Code::Unavailable | Code::DeadlineExceeded | Code::Aborted),
            "outage answered {code:?}: {codes:?}"
        );
    }
    let first_after = acknowledged.iter().filter(|(_, _, at)| *at >= back_at).map(|(_, _, at)| *at).min().unwrap();
    assert!(
        first_after - back_at < Duration::from_secs(15),
        "recovered {:?} after the database came back",
        first_after - back_at
    );

    // Every acknowledged append is stored exactly once, with the seq it was
    // acknowledged with, and nothing else was written.
    let rows: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT id, seq FROM messages ORDER BY seq").fetch_all(&pool).await.unwrap();
    assert_eq!(rows.iter().map(|(_, seq)| *seq).collect::<Vec<_>>(), (1..=(WRITERS * EACH) as i64).collect::<Vec<_>>());
    let stored: HashMap<Uuid, i64> = rows.into_iter().collect();
    for (id, seq, _) in &acknowledged {
        assert_eq!(stored.get(id), Some(seq), "acknowledged {id} stored exactly as acknowledged");
    }
    let last_seq: i64 = sqlx::query_scalar("SELECT last_seq FROM conversations").fetch_one(&pool).await.unwrap();
    assert_eq!(last_seq, (WRITERS * EACH) as i64);
    history.stop().await;
    pool.close().await;
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn replicas_share_idempotency_and_page_tokens(pool: PgPool) {
    let a = TestHistory::start(pool).await;
    let b = a.replica().await;
    let (mut on_a, mut on_b) = (a.client("alice").await, b.client("alice").await);
    assert_ne!(a.auth.addr, b.auth.addr, "two auth-services");
    let id = create(&mut on_a, "replicated").await.conversation_id;

    // Every append is sent to both replicas at once, with the same ids.
    let mut calls = Vec::new();
    for n in 0..20 {
        let mut message = new_message(Role::User, &format!("message {n}"));
        message.message_id = Uuid::now_v7().to_string();
        let request = AppendMessagesRequest { conversation_id: id.clone(), messages: vec![message] };
        for client in [&on_a, &on_b] {
            let mut client = client.clone();
            let request = request.clone();
            calls.push(tokio::spawn(
                async move { client.append_messages(request).await.unwrap().into_inner().messages },
            ));
        }
    }
    let mut answers: HashMap<String, HashSet<i64>> = HashMap::new();
    for call in calls {
        let message = call.await.unwrap().remove(0);
        answers.entry(message.message_id).or_default().insert(message.seq);
    }
    assert_eq!(answers.len(), 20);
    assert!(answers.values().all(|seqs| seqs.len() == 1), "both replicas answered with the same stored message");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&a.pool).await.unwrap();
    assert_eq!(rows, 20, "one row per id");

    // A page token from replica A resumes on replica B.
    let first = on_a
        .list_messages(ListMessagesRequest { conversation_id: id.clone(), page_size: 7, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let rest = on_b
        .list_messages(ListMessagesRequest {
            conversation_id: id.clone(),
            page_size: 100,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let seqs: Vec<i64> = first.messages.iter().chain(rest.messages.iter()).map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
}
