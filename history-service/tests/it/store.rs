//! The store on its own, against a fresh database: the query plans use the
//! indexes the migration creates, and nothing pages with OFFSET.

use sqlx::{PgPool, Row};
use uuid::Uuid;

use history_service::db::{PAGE_NEWEST_FIRST, PAGE_OLDEST_FIRST};

/// The plan of `sql` with realistic parameters (fresh statistics, so the
/// planner has a real choice between scans).
async fn explain(pool: &PgPool, sql: &str, conversation: Uuid) -> String {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
        .bind(conversation)
        .bind("alice")
        .bind(500_i64)
        .bind(50_i64)
        .fetch_all(pool)
        .await
        .unwrap();
    rows.iter().map(|row| row.get::<String, _>(0)).collect::<Vec<_>>().join("\n")
}

async fn seed(pool: &PgPool) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO conversations (id, user_id, title, last_seq, updated_at) \
         SELECT CASE WHEN n = 1 THEN $1 ELSE gen_random_uuid() END, 'user' || (n % 4), 't', 0, now() - n * interval '1 second' \
         FROM generate_series(1, 20000) n",
    )
    .bind(id)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE conversations SET user_id = 'alice', last_seq = 20000 WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, user_id, seq, role, content) \
         SELECT gen_random_uuid(), $1, 'alice', n, 'user', 'm' FROM generate_series(1, 20000) n",
    )
    .bind(id)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(pool).await.unwrap();
    id
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn message_pages_use_the_conversation_seq_index_in_both_orders(pool: PgPool) {
    let id = seed(&pool).await;
    for sql in [PAGE_OLDEST_FIRST, PAGE_NEWEST_FIRST] {
        let plan = explain(&pool, sql, id).await;
        assert!(plan.contains("messages_conversation_seq"), "{plan}");
        // The conversation row comes from an index (either fits an id + user lookup).
        assert!(plan.contains("conversations_pkey") || plan.contains("conversations_user_recent"), "{plan}");
        assert!(!plan.contains("Seq Scan"), "{plan}");
        assert!(!plan.contains("Sort"), "{plan}");
        assert!(!plan.to_lowercase().contains("offset"), "{plan}");
    }
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn conversation_pages_use_the_user_recent_index(pool: PgPool) {
    seed(&pool).await;
    for (sql, binds) in [
        ("EXPLAIN SELECT id FROM conversations WHERE user_id = $1 ORDER BY updated_at DESC, id DESC LIMIT 51", 1),
        (
            "EXPLAIN SELECT id FROM conversations WHERE user_id = $1 AND (updated_at, id) < (now(), $2) ORDER BY updated_at DESC, id DESC LIMIT 51",
            2,
        ),
    ] {
        let mut query = sqlx::query(sql).bind("user3");
        if binds == 2 {
            query = query.bind(Uuid::max());
        }
        let plan: Vec<String> = query.fetch_all(&pool).await.unwrap().iter().map(|row| row.get(0)).collect();
        let plan = plan.join("\n");
        assert!(plan.contains("conversations_user_recent"), "{plan}");
        assert!(!plan.contains("Sort"), "the index gives the order: {plan}");
    }
}

#[test]
fn no_query_in_the_service_uses_offset() {
    let source = include_str!("../../src/db.rs").to_lowercase();
    assert!(!source.contains(" offset "), "db.rs must page with keysets only");
}
