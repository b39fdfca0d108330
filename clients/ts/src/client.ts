// A small client for drover's ApiService over the gRPC protocol (HTTP/2): dial with a bearer
// token and TLS, create a server and watch it to a final state as an async iterator (resuming
// from the last revision seen after a disconnect), errors decoded with their google.rpc details.
import type * as http2 from "node:http2";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  ApiService,
  type CreateServerRequestSchema,
  type CreateServerResponse,
  type WatchServerResponse,
} from "./gen/drover/v1/api_pb.js";
import { type Server, TaskState, VmState } from "./gen/drover/v1/types_pb.js";
import { decodeError, type DroverError } from "./errors.js";

export interface DialOptions {
  /** Sent as `authorization: Bearer <token>` with every call. */
  token?: string;
  /** Speak TLS with these options (CA, client certificate, …); default: plaintext, for loopback. */
  tls?: http2.SecureClientSessionOptions;
  /** How many times in a row watchServer reopens a broken stream (default 5). */
  watchResumes?: number;
  /** The wait before the first reopen, doubled for each next one (default 200 ms). */
  resumeBackoffMs?: number;
  /** More interceptors, run after the token's. */
  interceptors?: Interceptor[];
}

/** ApiService calls that only read: retried on UNAVAILABLE. Writes are never retried. */
const SAFE_METHODS = new Set([
  "GetServer", "ListServers", "ListServerActions", "ListFlavors", "GetFlavor", "ListImages", "GetImage",
  "GetServerGroup", "ListServerGroups", "ListNetworks", "ListHosts", "GetConsoleOutput",
]);
const RETRY_ATTEMPTS = 4;

function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

const retrySafeCalls: Interceptor = (next) => async (req) => {
  if (req.stream || !SAFE_METHODS.has(req.method.name)) return next(req);
  for (let attempt = 1; ; attempt++) {
    try {
      return await next(req);
    } catch (err) {
      if (attempt >= RETRY_ATTEMPTS || ConnectError.from(err).code !== Code.Unavailable) throw err;
      await sleep(100 * 2 ** (attempt - 1), req.signal);
    }
  }
};

/** UNAVAILABLE, or a cancel nobody asked for: connect-node reports the HTTP/2 session dying
 * under an open stream (a cut connection) as CANCELED, the stream having been reset. */
function brokenStream(error: DroverError, signal: AbortSignal | undefined): boolean {
  return error.code === Code.Unavailable || (error.code === Code.Canceled && !signal?.aborted);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(ConnectError.from(signal.reason, Code.Canceled));
    }, { once: true });
  });
}

/** Whether a server has settled: ACTIVE, ERROR or STOPPED with no task, or DELETED. */
export function isFinal(s: Server): boolean {
  if (s.vmState === VmState.DELETED) return true;
  return s.taskState === TaskState.UNSPECIFIED &&
    [VmState.ACTIVE, VmState.ERROR, VmState.STOPPED].includes(s.vmState);
}

export class DroverClient {
  /** The generated ApiService client on this connection (the safe calls retried). */
  readonly api: Client<typeof ApiService>;
  private readonly sessions: Http2SessionManager;
  private readonly watchResumes: number;
  private readonly resumeBackoffMs: number;

  constructor(addr: string, opts: DialOptions = {}) {
    const baseUrl = `${opts.tls ? "https" : "http"}://${addr}`;
    this.sessions = new Http2SessionManager(baseUrl, undefined, opts.tls);
    const interceptors = [...(opts.token ? [bearer(opts.token)] : []), retrySafeCalls, ...(opts.interceptors ?? [])];
    const transport = createGrpcTransport({ baseUrl, sessionManager: this.sessions, interceptors });
    this.api = createClient(ApiService, transport);
    this.watchResumes = opts.watchResumes ?? 5;
    this.resumeBackoffMs = opts.resumeBackoffMs ?? 200;
  }

  /** Create servers; not retried. Rejects with a DroverError. */
  async createServer(req: MessageInitShape<typeof CreateServerRequestSchema>): Promise<CreateServerResponse> {
    return this.api.createServer(req).catch((err: unknown) => { throw decodeError(err); });
  }

  /** One server (retried on UNAVAILABLE). Rejects with a DroverError. */
  async getServer(id: string): Promise<Server> {
    const resp = await this.api.getServer({ id }).catch((err: unknown) => { throw decodeError(err); });
    return required(resp.server);
  }

  /** Delete a server; not retried (a second delete would say NOT_FOUND). */
  async deleteServer(id: string): Promise<Server> {
    const resp = await this.api.deleteServer({ id }).catch((err: unknown) => { throw decodeError(err); });
    return required(resp.server);
  }

  /**
   * A server's changes and notifications until it settles (the last event is the final state).
   * `sinceRevision` (e.g. the revision createServer returned) replays the changes after it; 0
   * starts from the server as it is now. When the stream breaks (UNAVAILABLE) the watch reopens
   * from the last revision it saw, so no step is lost or repeated.
   */
  async *watchServer(id: string, sinceRevision: bigint = 0n, signal?: AbortSignal): AsyncGenerator<WatchServerResponse> {
    let last = sinceRevision;
    let seen = false;
    for (let failures = 0; ; failures++) {
      const resumed = last > 0n;
      try {
        for await (const ev of this.api.watchServer({ id, sinceRevision: last }, signal ? { signal } : {})) {
          const s = required(ev.server);
          seen = true;
          // A reopened stream starts with the current state when the API no longer holds the
          // changes: not news if this watch has already seen that revision.
          if (resumed && s.revision <= last && !ev.notification) continue;
          if (s.revision > last) last = s.revision;
          failures = 0;
          yield ev;
        }
        if (!seen) throw new ConnectError("watch ended before any event", Code.Unavailable);
        return;
      } catch (err) {
        const error = decodeError(err);
        if (!brokenStream(error, signal) || failures >= this.watchResumes) throw error;
        await sleep(this.resumeBackoffMs * 2 ** failures, signal);
      }
    }
  }

  /** Close the HTTP/2 connection. */
  close(): void {
    this.sessions.abort();
  }
}

/** Connect to the API at `addr` ("host:port"); the connection is made on first use. */
export function dial(addr: string, opts: DialOptions = {}): DroverClient {
  return new DroverClient(addr, opts);
}

function required<T>(value: T | undefined): T {
  if (value === undefined) throw new ConnectError("response without its server", Code.Internal);
  return value;
}
