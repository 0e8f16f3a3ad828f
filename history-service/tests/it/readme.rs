//! The README's grpcurl walkthrough, run as written against the services.

use sqlx::PgPool;
use test_support::history::TestHistory;

fn walkthrough() -> String {
    let readme = include_str!("../../../README.md");
    let begin = readme.find("<!-- walkthrough:begin -->").expect("walkthrough begin marker");
    let end = readme.find("<!-- walkthrough:end -->").expect("walkthrough end marker");
    let block = &readme[begin..end];
    let start = block.find("```bash\n").expect("bash fence") + "```bash\n".len();
    let stop = block.rfind("```").expect("closing fence");
    block[start..stop].to_owned()
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn the_readme_walkthrough_runs(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let grpcurl = test_support::grpcurl::binary();
    let path = format!("{}:{}", grpcurl.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let output = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &walkthrough()])
        .env("PATH", path)
        .env("HISTORY", history.addr.to_string())
        .env("AUTH", history.auth.addr.to_string())
        .env("TOKEN", history.token("readme-user"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "walkthrough failed:\n{stdout}\n{stderr}");
    for expected in [
        "history.v1.HistoryService\n",
        "rpc StreamMessages ( .history.v1.ListMessagesRequest ) returns ( stream .history.v1.ListMessagesResponse );",
        "\"status\": \"SERVING\"",
        "\"userId\": \"readme-user\"",
        "\"conversationId\": \"0193a0b4-7c2e-7d3f-9a1b-2c3d4e5f6a7b\"",
        "\"role\": \"ROLE_ASSISTANT\"",
        "\"url\": \"https://neon.tech/docs/connect/connection-pooling\"",
        "\"nextPageToken\": \"",
        "\"title\": \"Neon pooling, answered\"",
        "\"messageCount\": \"2\"",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    let conversations: i64 =
        sqlx::query_scalar("SELECT count(*) FROM conversations").fetch_one(&history.pool).await.unwrap();
    assert_eq!(conversations, 0, "the walkthrough ends by deleting its conversation");
}
