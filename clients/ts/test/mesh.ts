// The real mesh clients/testmesh.py runs (four services on loopback, fake driver) behind a
// proxy that can cut every connection.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { fileURLToPath } from "node:url";

// dist/test/mesh.js → the repository root.
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

interface MeshInfo { api: string; data_dir: string; image: string; flavor: string; huge_flavor: string }

export class TestMesh {
  private constructor(
    readonly info: MeshInfo,
    private readonly proc: ChildProcessWithoutNullStreams,
    private readonly lines: AsyncIterator<string>,
    private readonly rl: Interface,
  ) {}

  static async start(): Promise<TestMesh> {
    const proc = spawn("python3", [join(repoRoot, "clients", "testmesh.py")], {
      env: { ...process.env, PYTHONPATH: [repoRoot, process.env["PYTHONPATH"] ?? ""].join(":") },
    });
    proc.stderr.pipe(process.stderr);
    const rl = createInterface({ input: proc.stdout });
    const lines = rl[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done) throw new Error("testmesh.py exited before printing its addresses");
    return new TestMesh(JSON.parse(first.value) as MeshInfo, proc, lines, rl);
  }

  /** The admin token the mesh wrote, or "" while the API has no authentication. */
  token(): string {
    const file = join(this.info.data_dir, "admin.token");
    return existsSync(file) ? readFileSync(file, "utf8").trim() : "";
  }

  /** Drop every open connection to the API; resolves once it has. */
  async cut(): Promise<void> {
    this.proc.stdin.write("cut\n");
    const ack = await this.lines.next();
    if (ack.done || ack.value.trim() !== "cut") throw new Error(`cut not acknowledged: ${String(ack.value)}`);
  }

  async stop(): Promise<void> {
    const exited = new Promise((r) => this.proc.once("exit", r));
    this.proc.stdin.end();
    await exited;
    this.rl.close();
  }
}
