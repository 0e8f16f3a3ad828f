//! A slow or vanished stream reader never pins a database connection.

use std::time::Duration;

use chat_proto::history::v1::{GetConversationRequest, ListMessagesRequest};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use test_support::history::TestHistory;
use tokio::sync::watch;

use crate::create;

async fn wait_until(receiver: &mut watch::Receiver<usize>, what: &str, predicate: impl FnMut(&usize) -> bool) {
    tokio::time::timeout(Duration::from_secs(30), receiver.wait_for(predicate))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting until {what}"))
        .unwrap();
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn a_stalled_reader_holds_no_connection_and_a_gone_one_ends_the_stream(
    pool_options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // One connection in the pool: if the stream kept it, nothing else could run.
    let pool =
        pool_options.max_connections(1).acquire_timeout(Duration::from_secs(5)).connect_with(connect).await.unwrap();
    let history = TestHistory::start(pool.clone()).await;
    let mut alice = history.client("alice").await;
    let id = create(&mut alice, "long").await.conversation_id;
    // 3,000 messages of 1 KiB: far more than HTTP/2 windows and the stream buffer hold.
    crate::seed_messages(&pool, &id, 3000, 1024).await;

    let mut stream = alice
        .stream_messages(ListMessagesRequest { conversation_id: id.clone(), page_size: 10, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.messages.len(), 10);

    // The client stops reading. The server fills the transport, then waits
    // for the client with the next page in memory, not in a connection.
    let mut waiting = history.streams.waiting_on_client();
    wait_until(&mut waiting, "the stream waits on the client", |n| *n == 1).await;
    // sqlx returns a released connection to the pool on a spawned task, so
    // give that task its turn before reading the idle count.
    let service_pool = history.service_pool.clone();
    tokio::time::timeout(Duration::from_secs(5), async {
        while service_pool.num_idle() != service_pool.size() as usize {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("no connection is checked out while the stream waits on its client");
    assert_eq!(*history.streams.waiting_on_client().borrow(), 1, "still waiting");
    let got =
        alice.get_conversation(GetConversationRequest { conversation_id: id.clone() }).await.unwrap().into_inner();
    assert_eq!(got.message_count, 3000, "the single connection is free for other calls");

    // The client disconnects: the stream task ends by itself.
    let mut active = history.streams.active();
    assert_eq!(*active.borrow(), 1);
    drop(stream);
    wait_until(&mut active, "the stream task ends", |n| *n == 0).await;
    assert_eq!(*history.streams.waiting_on_client().borrow(), 0);
    history.stop().await;
    service_pool.close().await;
    pool.close().await;
}
