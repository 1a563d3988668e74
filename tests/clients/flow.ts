// The full flow through openapi-fetch, typed by what openapi-typescript
// generated from the API documents (v1.d.ts, v2.d.ts, beside this file once
// run.py has generated them). Compiled under `tsc --strict`; each step checks
// the status and the typed `data` or `error`, and prints one line.
//
// Usage: node flow.js BASE_URL PREFIX   (PREFIX: letters and digits, new each run)
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import createClient from "openapi-fetch";
import type { components, paths } from "./v1.js";
import type { paths as pathsV2 } from "./v2.js";

type User = components["schemas"]["UserResponse"];

const EXTRA_USERS = 4;
const PAGE = 2;

const [base, prefix] = process.argv.slice(2);
assert(base && prefix, "usage: flow.js BASE_URL PREFIX");
const password = `Passw0rd${prefix}`;
const newPassword = `N3wPassw0rd${prefix}`;

const ok = (title: string) => console.log(`ok   ${title}`);

const publicClient = createClient<paths>({ baseUrl: base });
const signedIn = (token: string) =>
  createClient<paths>({ baseUrl: base, headers: { Authorization: `Bearer ${token}` } });

/** The response has `status`, and an error body says `detail` (a string). */
function expectError(result: { error?: { detail: unknown }; response: Response }, status: number) {
  assert.equal(result.response.status, status, `expected ${status}`);
  assert.equal(typeof result.error?.detail, "string", JSON.stringify(result.error));
}

async function main() {
  // Register the user of the flow and a few more, so that v2 has pages.
  const names = Array.from({ length: EXTRA_USERS + 1 }, (_, i) => `${prefix}u${i}`);
  const users = new Map<number, string>();
  for (const name of names) {
    const { data, error, response } = await publicClient.POST("/api/v1/users", {
      body: { username: name, email: `${name}@Example.com`, password, age: 30 },
    });
    assert.equal(response.status, 201, JSON.stringify(error));
    assert(data);
    const user: User = data;
    assert.equal(user.username, name);
    assert.equal(user.email, `${name}@example.com`);
    assert.equal(user.role, "user");
    assert.equal(user.age, 30);
    assert(user.is_active);
    assert(response.headers.get("Location")?.endsWith(`/api/v1/users/${user.id}`));
    users.set(user.id, name);
  }
  const [meId] = users.keys();
  const name = names[0];
  ok(`register: ${users.size} users, 201 UserResponse and Location, ids ${[...users.keys()]}`);

  const formHeaders = { "Content-Type": "application/x-www-form-urlencoded" };
  {
    const { data, response } = await publicClient.POST("/api/v1/auth/token", {
      body: { grant_type: "password", username: name.toUpperCase(), password },
      headers: formHeaders,
    });
    assert.equal(response.status, 200);
    assert(data);
    assert.equal(data.token_type, "bearer");
    assert(data.access_token && data.refresh_token && data.expires_in > 0);
    const wrong = await publicClient.POST("/api/v1/auth/token", {
      body: { grant_type: "password", username: name, password: "Wr0ngpassword" },
      headers: formHeaders,
    });
    expectError(wrong, 400);
    assert(wrong.error && "error" in wrong.error && wrong.error.error === "invalid_grant", JSON.stringify(wrong.error));
  }
  ok("token (form, password grant): 200 TokenResponse; a wrong password 400 invalid_grant");

  let pair: components["schemas"]["TokenResponse"];
  {
    const { data, response } = await publicClient.POST("/api/v1/auth/login", { body: { username: name, password } });
    assert.equal(response.status, 200);
    assert(data);
    assert.equal(data.token_type, "bearer");
    pair = data;
  }
  let client = signedIn(pair.access_token);
  ok("login (JSON): 200 TokenResponse");

  {
    const { data, response } = await client.GET("/api/v1/users/me");
    assert.equal(response.status, 200);
    assert(data);
    assert.equal(data.id, meId);
    assert.equal(data.username, name);
    assert.equal(data.email, `${name}@example.com`);
    ok(`me: 200 UserResponse, id ${data.id}`);
  }

  {
    const { data, response } = await client.GET("/api/v1/users", { params: { query: { skip: 0, limit: 100 } } });
    assert.equal(response.status, 200);
    assert(data);
    const ids = data.map((u) => u.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    assert(ids.length <= 100);
    for (const user of data) {
      // Personal fields only in one's own user.
      assert(user.email === null || user.id === meId, JSON.stringify(user));
    }
    assert(ids.includes(meId) || ids.length === 100);
    ok(`list: 200 UserResponse[], ${data.length} users by id, others' emails null`);
  }

  {
    const { data, response } = await client.GET("/api/v1/users/search", {
      params: { query: { query: prefix.toUpperCase(), limit: 100 } },
    });
    assert.equal(response.status, 200);
    assert(data);
    assert.deepEqual(
      data.map((u) => u.username),
      [...names].sort(),
    );
    ok(`search: 200 UserResponse[], the ${data.length} users of the run by username`);
  }

  {
    const v2 = createClient<pathsV2>({ baseUrl: base, headers: { Authorization: `Bearer ${pair.access_token}` } });
    const seen: number[] = [];
    let pages = 0;
    let cursor: string | undefined;
    for (;;) {
      const { data, error, response } = await v2.GET("/api/v2/users", {
        params: { query: cursor === undefined ? { limit: PAGE } : { limit: PAGE, cursor } },
      });
      assert.equal(response.status, 200, JSON.stringify(error));
      assert(data);
      pages += 1;
      assert.equal(data.version, "2.0");
      assert.equal(data.includes_inactive, false);
      assert(data.users.length <= PAGE);
      seen.push(...data.users.map((u) => u.id));
      if (typeof data.next_cursor !== "string") break;
      assert(data.users.length > 0, "a page with a next cursor is not empty");
      cursor = data.next_cursor;
      assert(pages < 10_000, "the walk does not end");
    }
    assert.equal(new Set(seen).size, seen.length, `a user seen twice: ${seen}`);
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
    const missing = [...users.keys()].filter((id) => !seen.includes(id));
    assert.deepEqual(missing, [], "users of the run not seen");
    ok(`v2 cursor walk: ${pages} pages of ${PAGE}, ${seen.length} users each once, the run's ${users.size} among them`);
  }

  {
    const email = `${name}.new@example.com`;
    const patched = await client.PATCH("/api/v1/users/me", { body: { age: 41, email } });
    assert.equal(patched.response.status, 200);
    assert(patched.data);
    assert.equal(patched.data.age, 41);
    assert.equal(patched.data.email, email);
    assert.equal(patched.data.username, name);
    const cleared = await client.PATCH("/api/v1/users/me", { body: { age: null } });
    assert.equal(cleared.response.status, 200);
    assert(cleared.data);
    assert.equal(cleared.data.age, null);
    assert.equal(cleared.data.email, email);
    ok("patch me: 200 UserResponse; age set, email changed, then age cleared with null");
  }

  {
    const changed = await client.PUT("/api/v1/users/me/password", {
      body: { current_password: password, new_password: newPassword },
    });
    assert.equal(changed.response.status, 204, JSON.stringify(changed.error));
    expectError(await client.GET("/api/v1/users/me"), 401);
    expectError(await publicClient.POST("/api/v1/auth/refresh", { body: { refresh_token: pair.refresh_token } }), 401);
    expectError(await publicClient.POST("/api/v1/auth/login", { body: { username: name, password } }), 401);
    const { data, response } = await publicClient.POST("/api/v1/auth/login", {
      body: { username: name, password: newPassword },
    });
    assert.equal(response.status, 200);
    assert(data);
    pair = data;
    client = signedIn(pair.access_token);
    assert.equal((await client.GET("/api/v1/users/me")).response.status, 200);
    ok("password change: 204; the old access and refresh tokens 401, the old password 401, the new one signs in");
  }

  {
    const { data, response } = await publicClient.POST("/api/v1/auth/refresh", {
      body: { refresh_token: pair.refresh_token },
    });
    assert.equal(response.status, 200);
    assert(data);
    assert.notEqual(data.refresh_token, pair.refresh_token);
    pair = data;
    client = signedIn(pair.access_token);
    assert.equal((await client.GET("/api/v1/users/me")).data?.id, meId);
    ok("refresh: 200 TokenResponse, a new pair that works");
  }

  const content = Buffer.concat([
    Buffer.from([0x00, 0xff, 0xfe, 0x80]),
    Buffer.from("roster\r\n--+++\r\n"),
    Buffer.from([0xc3, 0x28]),
    Buffer.from(Array.from({ length: 256 * 8 }, (_, i) => i % 256)),
  ]);
  const upload = await client.POST("/api/v1/uploads", {
    body: { file: new Blob([content], { type: "text/plain" }) },
    bodySerializer(body) {
      const form = new FormData();
      form.append("file", body.file, "../notes.bin");
      return form;
    },
  });
  assert.equal(upload.response.status, 201, JSON.stringify(upload.error));
  assert(upload.data);
  const id = upload.data.id;
  assert.equal(upload.data.size, content.length);
  assert.equal(upload.data.sha256, createHash("sha256").update(content).digest("hex"));
  assert.equal(upload.data.filename, "notes.bin");
  assert.equal(upload.data.content_type, "application/octet-stream");
  {
    const { data, response } = await client.GET("/api/v1/uploads/{id}", { params: { path: { id } } });
    assert.equal(response.status, 200);
    assert.equal(data?.sha256, upload.data.sha256);
  }
  ok(`upload: 201 UploadResponse, ${content.length} bytes (not UTF-8), sha256 and name as sent`);

  {
    const { data, response } = await client.GET("/api/v1/uploads/{id}/content", {
      params: { path: { id } },
      parseAs: "arrayBuffer",
    });
    assert.equal(response.status, 200);
    assert(data);
    assert(Buffer.from(data).equals(content), "downloaded bytes differ");
    ok(`download: 200, the same ${data.byteLength} bytes`);
  }

  {
    const deleted = await client.DELETE("/api/v1/uploads/{id}", { params: { path: { id } } });
    assert.equal(deleted.response.status, 204);
    expectError(await client.GET("/api/v1/uploads/{id}", { params: { path: { id } } }), 404);
    expectError(await client.GET("/api/v1/uploads/{id}/content", { params: { path: { id } } }), 404);
    ok("delete upload: 204; then its metadata and content 404");
  }

  {
    const out = await client.POST("/api/v1/auth/logout");
    assert.equal(out.response.status, 204, JSON.stringify(out.error));
    expectError(await client.GET("/api/v1/users/me"), 401);
    expectError(await publicClient.POST("/api/v1/auth/refresh", { body: { refresh_token: pair.refresh_token } }), 401);
    ok("logout: 204; then the access token and the refresh token 401");
  }

  {
    const login = async () => {
      const { data } = await publicClient.POST("/api/v1/auth/login", {
        body: { username: name, password: newPassword },
        headers: { "User-Agent": "roster-client-test" },
      });
      assert(data);
      return data;
    };
    const first = await login();
    const second = await login();
    client = signedIn(second.access_token);
    const { data, response } = await client.GET("/api/v1/auth/sessions");
    assert.equal(response.status, 200);
    assert(data);
    assert.equal(data.length, 2, JSON.stringify(data));
    const current = data.filter((s) => s.current);
    assert.equal(current.length, 1, JSON.stringify(data));
    const other = data.find((s) => !s.current);
    assert(other);
    const ended = await client.DELETE("/api/v1/auth/sessions/{id}", { params: { path: { id: other.id } } });
    assert.equal(ended.response.status, 204);
    expectError(await signedIn(first.access_token).GET("/api/v1/users/me"), 401);
    assert.equal((await client.GET("/api/v1/users/me")).response.status, 200);
    ok("sessions: 200 SessionResponse[], two listed, the other ended with 204 (its token then 401)");
  }

  {
    const reset = await publicClient.POST("/api/v1/auth/password-reset", { body: { email: `${name}@example.com` } });
    assert.equal(reset.response.status, 202);
    assert.equal(reset.data?.detail, "If that address is registered, a reset email is on its way");
    expectError(await publicClient.POST("/api/v1/auth/verify-email", { body: { token: "0".repeat(64) } }), 400);
    const resend = await client.POST("/api/v1/auth/verify-email/resend");
    assert.equal(resend.response.status, 202, JSON.stringify(resend.error));
    ok("password reset request 202; a token no email carried 400; a verification resent 202");
  }

  {
    const deleted = await client.DELETE("/api/v1/users/me");
    assert.equal(deleted.response.status, 204, JSON.stringify(deleted.error));
    expectError(await publicClient.POST("/api/v1/auth/login", { body: { username: name, password: newPassword } }), 401);
    ok("delete me: 204; then the account signs in no more (401)");
  }
  console.log("typescript flow: passed");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
