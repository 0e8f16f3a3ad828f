// history-service over gRPC-web from Node, with a real Better Auth token:
// the connect-web client, then CORS as a browser would check it.
//
// Env (set by the Rust harness, history-service/tests/it/web.rs):
//   HISTORY_URL     http://127.0.0.1:port of history-service
//   TOKEN           a Better Auth JWT
//   ALLOWED_ORIGIN  an origin in CORS_ALLOWED_ORIGINS
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { fromValue, historyClient, toValue } from "../client.js";
import { Order, Role } from "../gen/history/v1/history_pb.js";

const { HISTORY_URL, TOKEN, ALLOWED_ORIGIN } = process.env;
const LIST = `${HISTORY_URL}/history.v1.HistoryService/ListConversations`;
const EMPTY_GRPC_WEB_FRAME = new Uint8Array([0, 0, 0, 0, 0]);

test("create, append, list and stream over gRPC-web", async () => {
  const client = historyClient(HISTORY_URL, TOKEN);
  const conversation = await client.createConversation({ title: "Over gRPC-web", metadata: { client: "connect-web" } });
  assert.match(conversation.conversationId, /^[0-9a-f-]{36}$/);
  assert.deepEqual(conversation.metadata, { client: "connect-web" });

  const sources = [{ title: "connect-web", url: "https://connectrpc.com/docs/web/", score: 0.9 }];
  const { messages } = await client.appendMessages({
    conversationId: conversation.conversationId,
    messages: [
      { role: Role.USER, content: "Does streaming work over gRPC-web?" },
      { role: Role.ASSISTANT, content: "Server streaming does.", sources: toValue(sources) },
    ],
  });
  assert.deepEqual(messages.map((m) => Number(m.seq)), [1, 2]);
  assert.deepEqual(fromValue(messages[1].sources), sources);
  assert.equal(fromValue(messages[0].sources), null);

  const listed = await client.listConversations({ pageSize: 10 });
  assert.ok(listed.conversations.some((c) => c.conversationId === conversation.conversationId));

  const pages = [];
  for await (const page of client.streamMessages({ conversationId: conversation.conversationId, pageSize: 1, order: Order.OLDEST_FIRST })) {
    pages.push(page);
  }
  assert.equal(pages.length, 2);
  assert.deepEqual(pages.flatMap((p) => p.messages.map((m) => m.content)), ["Does streaming work over gRPC-web?", "Server streaming does."]);
  assert.notEqual(pages[0].nextPageToken, "");
  assert.equal(pages[1].nextPageToken, "");
});

test("errors arrive with their gRPC code", async () => {
  const client = historyClient(HISTORY_URL, TOKEN);
  await assert.rejects(client.getConversation({ conversationId: "not-a-uuid" }), (error) => {
    const connect = ConnectError.from(error);
    assert.equal(connect.code, Code.InvalidArgument);
    assert.equal(connect.rawMessage, 'conversation_id: "not-a-uuid" is not a UUID');
    return true;
  });
  await assert.rejects(historyClient(HISTORY_URL, null).listConversations({}), (error) => {
    assert.equal(ConnectError.from(error).code, Code.Unauthenticated);
    return true;
  });
});

function preflight(origin) {
  return fetch(LIST, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,content-type,x-grpc-web,x-user-agent",
    },
  });
}

function grpcWebPost(headers) {
  return fetch(LIST, {
    method: "POST",
    headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", ...headers },
    body: EMPTY_GRPC_WEB_FRAME,
  });
}

test("a preflight from an allowed origin is granted", async () => {
  const response = await preflight(ALLOWED_ORIGIN);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("access-control-allow-origin"), ALLOWED_ORIGIN);
  const allowed = response.headers.get("access-control-allow-headers").toLowerCase();
  for (const header of ["authorization", "content-type", "x-grpc-web", "x-user-agent"]) {
    assert.ok(allowed.includes(header), `${header} not in ${allowed}`);
  }
  assert.ok(response.headers.get("access-control-allow-methods").includes("POST"));
});

test("responses expose grpc-status and grpc-message to the page", async () => {
  const response = await grpcWebPost({ origin: ALLOWED_ORIGIN, authorization: `Bearer ${TOKEN}` });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("access-control-allow-origin"), ALLOWED_ORIGIN);
  const exposed = response.headers.get("access-control-expose-headers").toLowerCase();
  for (const header of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) {
    assert.ok(exposed.includes(header), `${header} not in ${exposed}`);
  }
});

test("a disallowed origin gets no CORS grant", async () => {
  const response = await preflight("https://evil.example");
  assert.equal(response.headers.get("access-control-allow-origin"), null);
  const post = await grpcWebPost({ origin: "https://evil.example", authorization: `Bearer ${TOKEN}` });
  assert.equal(post.headers.get("access-control-allow-origin"), null);
});

test("an UNAUTHENTICATED answer still carries CORS headers", async () => {
  const response = await grpcWebPost({ origin: ALLOWED_ORIGIN });
  assert.equal(response.headers.get("grpc-status"), "16");
  assert.equal(response.headers.get("access-control-allow-origin"), ALLOWED_ORIGIN);
  assert.ok(response.headers.get("access-control-expose-headers").toLowerCase().includes("grpc-status"));
  assert.match(decodeURIComponent(response.headers.get("grpc-message")), /authorization: Bearer/);
});
