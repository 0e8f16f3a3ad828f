// Runs in the browser: talks to history-service (another origin) over
// gRPC-web with the token from the query string, and publishes what happened
// on window.__result for the test to read.
import { Code, ConnectError } from "@connectrpc/connect";
import { fromValue, historyClient, toValue } from "../client.js";
import { Order, Role } from "../gen/history/v1/history_pb.js";

const log = (line) => {
  document.getElementById("log").textContent += `${line}\n`;
};

async function run() {
  const params = new URLSearchParams(location.search);
  const client = historyClient(params.get("history"), params.get("token"));
  const conversation = await client.createConversation({ title: "From the browser" });
  log(`created ${conversation.conversationId}`);
  const { messages } = await client.appendMessages({
    conversationId: conversation.conversationId,
    messages: [
      { role: Role.USER, content: "Can a browser read its history?" },
      { role: Role.ASSISTANT, content: "Yes, over gRPC-web.", sources: toValue([{ title: "gRPC-web", url: "https://github.com/grpc/grpc-web" }]) },
    ],
  });
  const listed = await client.listConversations({});
  const streamed = [];
  for await (const page of client.streamMessages({
    conversationId: conversation.conversationId,
    pageSize: 1,
    order: Order.NEWEST_FIRST,
  })) {
    streamed.push(...page.messages.map((m) => ({ seq: Number(m.seq), content: m.content, sources: fromValue(m.sources) })));
  }
  // Without a token the service answers UNAUTHENTICATED; CORS headers on the
  // error are what let the page read that code.
  let anonymousCode = null;
  try {
    await historyClient(params.get("history"), null).listConversations({});
  } catch (error) {
    anonymousCode = ConnectError.from(error).code === Code.Unauthenticated ? "UNAUTHENTICATED" : String(error);
  }
  return {
    conversationId: conversation.conversationId,
    appendedSeqs: messages.map((m) => Number(m.seq)),
    listed: listed.conversations.map((c) => c.conversationId),
    streamed,
    anonymousCode,
    origin: location.origin,
  };
}

run().then(
  (result) => {
    window.__result = result;
    log(JSON.stringify(result, null, 2));
  },
  (error) => {
    window.__result = { error: String(error) };
    log(String(error));
  },
);
