// A real Better Auth server for tests and local development.
//
// Better Auth with its `jwt` plugin on the in-memory adapter, listening on
// 127.0.0.1. It serves the real JWKS at /api/auth/jwks and real tokens at
// /api/auth/token (after sign-up or sign-in, with the session cookie).
//
// Environment:
//   BA_ALG     signing algorithm: EdDSA (default), ES256, ES512, RS256, PS256
//   BA_PORT    port (default 0: any free port)
//   BA_HOST    host (default 127.0.0.1)
//   BA_BASE_URL  public base URL, also the tokens' iss and aud (default:
//              http://BA_HOST:port; set it when others reach the server by
//              another name, e.g. http://better-auth:3000 in docker compose)
//   BA_SECRET  Better Auth secret (default: a fixed development value)
//   BA_TEST_ENDPOINTS=1  enables POST /__test/rotate (a new signing key while
//              the old stays published). Never set this in production.
//
// On start it prints one JSON line to stdout: {"url": "...", "alg": "..."}.

import http from "node:http";
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { toNodeHandler } from "better-auth/node";
import { createJwk, jwt } from "better-auth/plugins/jwt";

const KEY_PAIR_CONFIGS = {
  EdDSA: { alg: "EdDSA", crv: "Ed25519" },
  ES256: { alg: "ES256" },
  ES512: { alg: "ES512" },
  RS256: { alg: "RS256", modulusLength: 2048 },
  PS256: { alg: "PS256", modulusLength: 2048 },
};

const alg = process.env.BA_ALG || "EdDSA";
const keyPairConfig = KEY_PAIR_CONFIGS[alg];
if (!keyPairConfig) {
  console.error(`BA_ALG=${alg} is not one of ${Object.keys(KEY_PAIR_CONFIGS).join(", ")}`);
  process.exit(2);
}
const host = process.env.BA_HOST || "127.0.0.1";
const port = Number(process.env.BA_PORT || 0);
const testEndpoints = process.env.BA_TEST_ENDPOINTS === "1";

const server = http.createServer();
await new Promise((resolve) => server.listen(port, host, resolve));
const baseURL = process.env.BA_BASE_URL || `http://${host}:${server.address().port}`;

const db = { user: [], session: [], account: [], verification: [], jwks: [] };
const jwtOptions = { jwks: { keyPairConfig } };
const auth = betterAuth({
  baseURL,
  secret: process.env.BA_SECRET || "development-only-secret-0123456789abcdef",
  database: memoryAdapter(db),
  emailAndPassword: { enabled: true },
  plugins: [jwt(jwtOptions)],
  telemetry: { enabled: false },
  trustedOrigins: [baseURL],
  logger: { level: "error" },
});

const handler = toNodeHandler(auth);
server.on("request", async (req, res) => {
  if (testEndpoints && req.method === "POST" && req.url === "/__test/rotate") {
    const context = await auth.$context;
    const key = await createJwk({ context }, jwtOptions);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ kid: key.id }));
    return;
  }
  handler(req, res);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}

console.log(JSON.stringify({ url: baseURL, alg }));
