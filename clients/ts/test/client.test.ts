import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Code, type Interceptor } from "@connectrpc/connect";
import {
  decodeError, dial, type DialOptions, type DroverClient, explainNoValidHost, isFinal, noValidHost,
  type Server, ServerStatus, TaskState, VmState, type WatchServerResponse,
} from "../src/index.js";
import { TestMesh } from "./mesh.js";

let mesh: TestMesh;
const clients: DroverClient[] = [];

before(async () => { mesh = await TestMesh.start(); });
after(async () => {
  for (const c of clients) c.close();
  await mesh.stop();
});

function connect(opts: DialOptions = {}): DroverClient {
  const c = dial(mesh.info.api, { token: mesh.token(), ...opts });
  clients.push(c);
  return c;
}

async function create(c: DroverClient, name: string, flavor: string): Promise<Server> {
  const resp = await c.createServer({ name, flavorRef: flavor, imageRef: mesh.info.image });
  assert.ok(resp.server);
  return resp.server;
}

async function watchAll(c: DroverClient, s: Server, onEvent?: () => Promise<void>): Promise<WatchServerResponse[]> {
  const events: WatchServerResponse[] = [];
  for await (const ev of c.watchServer(s.id, s.revision, AbortSignal.timeout(60_000))) {
    events.push(ev);
    if (onEvent) await onEvent();
  }
  return events;
}

function last(events: WatchServerResponse[]): Server {
  const s = events.at(-1)?.server;
  assert.ok(s, "no events");
  return s;
}

function taskStates(events: WatchServerResponse[]): TaskState[] {
  const seen: TaskState[] = [];
  for (const ev of events) {
    const ts = ev.server!.taskState;
    if (seen.at(-1) !== ts) seen.push(ts);
  }
  return seen;
}

const notifications = (events: WatchServerResponse[]) =>
  events.flatMap((ev) => (ev.notification ? [ev.notification.eventType] : []));

const BUILD_STEPS = [TaskState.SCHEDULING, TaskState.NETWORKING, TaskState.BLOCK_DEVICE_MAPPING, TaskState.SPAWNING,
  TaskState.UNSPECIFIED];

describe("drover TypeScript client against a real mesh", () => {
  test("create → ACTIVE with every step seen", async () => {
    const c = connect();
    const events = await watchAll(c, await create(c, "ts-active", mesh.info.flavor));
    const final = last(events);
    assert.equal(final.status, ServerStatus.ACTIVE);
    assert.ok(isFinal(final));
    assert.deepEqual(taskStates(events), BUILD_STEPS);
    assert.ok(notifications(events).includes("instance.create.start"));
    assert.ok(notifications(events).includes("instance.create.end"));
    assert.equal(noValidHost(final), undefined);
  });

  test("NoValidHost: the scheduler's explanation is decoded", async () => {
    const c = connect();
    const events = await watchAll(c, await create(c, "ts-novalidhost", mesh.info.huge_flavor));
    const final = last(events);
    assert.equal(final.vmState, VmState.ERROR);
    const why = noValidHost(final);
    assert.ok(why, "no explanation on the ERROR server");
    assert.match(why.summary, /no valid host/);
    const ram = why.rejections.find((r) => r.filter === "RamFilter");
    assert.equal(ram?.rejected, why.hostsTotal);
    assert.match(explainNoValidHost(why), /RamFilter rejected/);
    assert.ok(notifications(events).includes("instance.create.error"));
  });

  test("INVALID_ARGUMENT: field violations are decoded", async () => {
    const c = connect();
    await assert.rejects(c.createServer({ name: " ", flavorRef: mesh.info.flavor, imageRef: mesh.info.image, minCount: -1 }),
      (err: unknown) => {
        const e = decodeError(err);
        assert.equal(e.code, Code.InvalidArgument);
        const fields = new Set(e.fieldViolations.map((v) => v.field));
        assert.ok(fields.has("name") && fields.has("min_count"), `violations: ${[...fields].join(", ")}`);
        return true;
      });
  });

  test("NOT_FOUND with the resource named", async () => {
    const c = connect();
    const id = "00000000-0000-0000-0000-000000000000";
    await assert.rejects(c.getServer(id), (err: unknown) => {
      const e = decodeError(err);
      assert.equal(e.code, Code.NotFound);
      assert.equal(e.resource?.resourceName, id);
      return true;
    });
  });

  test("the watch resumes from the last revision after a disconnect", async () => {
    let opened = 0;
    const countWatches: Interceptor = (next) => (req) => {
      if (req.method.name === "WatchServer") opened++;
      return next(req);
    };
    const c = connect({ interceptors: [countWatches] });
    let cut = false;
    const events = await watchAll(c, await create(c, "ts-resume", mesh.info.flavor), async () => {
      if (!cut) { // after the first step, drop the connection under the open stream
        cut = true;
        await mesh.cut();
      }
    });
    assert.ok(opened >= 2, `the watch was opened ${opened} time(s): the cut did not break it`);
    assert.equal(last(events).status, ServerStatus.ACTIVE);
    assert.deepEqual(taskStates(events), BUILD_STEPS);
    // Nothing replayed twice: a resume starts after the last revision seen.
    const keys = events.map((ev) => `${ev.server!.revision} ${ev.notification?.eventType ?? ""}`);
    assert.equal(new Set(keys).size, keys.length, `an event was delivered twice: ${keys.join(", ")}`);
    const revisions = events.map((ev) => ev.server!.revision);
    assert.deepEqual(revisions, [...revisions].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    assert.ok(notifications(events).includes("instance.create.end"));
  });

  test("a bad token is refused", async (t) => {
    if (!mesh.token()) {
      t.skip("the API does not authenticate yet (no admin.token in the mesh's data dir)");
      return;
    }
    const c = connect({ token: "not-a-valid-token" });
    await assert.rejects(c.getServer("00000000-0000-0000-0000-000000000000"), (err: unknown) => {
      assert.equal(decodeError(err).code, Code.Unauthenticated);
      return true;
    });
  });

  test("the create-and-watch example", async () => {
    const example = join(dirname(fileURLToPath(import.meta.url)), "..", "examples", "create-and-watch.js");
    const run = (flavor: string) => promisify(execFile)(process.execPath, [example, "--addr", mesh.info.api,
      "--token", mesh.token(), "--image", mesh.info.image, "--flavor", flavor, "--name", `ts-example-${flavor}`]);
    const ok = await run(mesh.info.flavor);
    assert.match(ok.stdout, /SPAWNING/);
    assert.match(ok.stdout, /instance\.create\.end/);
    assert.match(ok.stdout, /final: ACTIVE/);
    const none = await run(mesh.info.huge_flavor);
    assert.match(none.stdout, /no valid host/);
    assert.match(none.stdout, /RamFilter rejected/);
  });
});
