//! Browsers: the connect-web client (gRPC-web) and CORS, from Node and from
//! a page in headless Chromium, against history-service with a real Better
//! Auth token. The JavaScript lives in e2e/web; this starts the services.

use std::path::PathBuf;

use history_service::ServeOptions;
use sqlx::PgPool;
use test_support::{better_auth::BetterAuth, history::TestHistory};

struct WebStack {
    _better_auth: BetterAuth,
    history: TestHistory,
    token: String,
    page_port: u16,
}

async fn web_stack(pool: PgPool) -> WebStack {
    let page_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let better_auth = BetterAuth::start("EdDSA").await;
    let options =
        ServeOptions { cors_allowed_origins: vec![format!("http://127.0.0.1:{page_port}")], ..ServeOptions::default() };
    let history = TestHistory::start_for_better_auth(pool, options, &better_auth).await;
    let session = better_auth.sign_up("browser@example.com", "Web User").await;
    let token = better_auth.token(&session).await;
    WebStack { _better_auth: better_auth, history, token, page_port }
}

async fn node_test(stack: &WebStack, file: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../e2e/web");
    assert!(
        dir.join("gen/history/v1/history_pb.js").is_file() && dir.join("page/dist/app.js").is_file(),
        "e2e/web is not built: run `npm ci --prefix e2e/web && npm run build --prefix e2e/web` (scripts/test does this)"
    );
    let output = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=spec", file])
        .current_dir(&dir)
        .env("HISTORY_URL", stack.history.url())
        .env("TOKEN", &stack.token)
        .env("ALLOWED_ORIGIN", format!("http://127.0.0.1:{}", stack.page_port))
        .env("PAGE_PORT", stack.page_port.to_string())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let report = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "node --test {file} failed:\n{report}");
    assert!(report.contains("ℹ fail 0") && !report.contains("ℹ pass 0"), "{report}");
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn connect_web_over_grpc_web_and_cors_work_from_node(pool: PgPool) {
    let stack = web_stack(pool).await;
    node_test(&stack, "test/grpc-web.test.js").await;
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn a_cross_origin_page_in_headless_chromium_uses_the_service(pool: PgPool) {
    let stack = web_stack(pool).await;
    node_test(&stack, "test/browser.test.js").await;
}
