// The same flow from a static page in headless Chromium, served from another
// origin than history-service, so the browser enforces CORS for real.
//
// Env: HISTORY_URL, TOKEN, PAGE_PORT (the page's port; its origin is in
// CORS_ALLOWED_ORIGINS), CHROMIUM (default /usr/bin/chromium).
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const { HISTORY_URL, TOKEN, PAGE_PORT } = process.env;
const PAGE_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "page");
const TYPES = { ".html": "text/html", ".js": "text/javascript" };

let server;
let browser;

before(async () => {
  server = http.createServer(async (request, response) => {
    const file = path.join(PAGE_DIR, new URL(request.url, "http://x").pathname);
    if (!file.startsWith(PAGE_DIR)) return response.writeHead(403).end();
    try {
      const body = await readFile(file);
      response.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(Number(PAGE_PORT), "127.0.0.1", resolve));
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => server.close(resolve));
});

test("a page on another origin talks to history-service over gRPC-web", async () => {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on("console", (message) => message.type() === "error" && consoleErrors.push(message.text()));
  const query = new URLSearchParams({ history: HISTORY_URL, token: TOKEN });
  await page.goto(`http://127.0.0.1:${PAGE_PORT}/index.html?${query}`);
  await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 30_000 });
  const result = await page.evaluate(() => window.__result);

  assert.equal(result.error, undefined, `page failed: ${result.error}; console: ${consoleErrors.join("\n")}`);
  assert.notEqual(result.origin, new URL(HISTORY_URL).origin, "the page is cross-origin");
  assert.deepEqual(result.appendedSeqs, [1, 2]);
  assert.ok(result.listed.includes(result.conversationId));
  assert.deepEqual(result.streamed, [
    { seq: 2, content: "Yes, over gRPC-web.", sources: [{ title: "gRPC-web", url: "https://github.com/grpc/grpc-web" }] },
    { seq: 1, content: "Can a browser read its history?", sources: null },
  ]);
  assert.equal(result.anonymousCode, "UNAUTHENTICATED", "the browser could read the error's code through CORS");
  await page.close();
});
