// create-and-watch: create one server and print every state change and notification until it
// settles; when no host can take it, print the scheduler's explanation.
//   node dist/examples/create-and-watch.js --addr 127.0.0.1:8774 --image drover-tiny
import { parseArgs } from "node:util";
import {
  decodeError, dial, explainNoValidHost, noValidHost, ServerStatus, TaskState,
} from "../src/index.js";

const { values: args } = parseArgs({
  options: {
    addr: { type: "string", default: "127.0.0.1:8774" },
    token: { type: "string", default: process.env["DROVER_TOKEN"] ?? "" },
    name: { type: "string", default: "demo" },
    flavor: { type: "string", default: "m1.tiny" },
    image: { type: "string", default: "drover-tiny" },
  },
});

const client = dial(args.addr, { token: args.token });
try {
  const created = await client.createServer({ name: args.name, flavorRef: args.flavor, imageRef: args.image });
  const server = created.server!;
  console.log(`created ${server.id} (revision ${server.revision})`);
  let final = server;
  for await (const ev of client.watchServer(server.id, server.revision)) {
    final = ev.server!;
    console.log(`revision ${final.revision}: ${ServerStatus[final.status]} / ${TaskState[final.taskState]}`);
    if (ev.notification) console.log(`  notification ${ev.notification.eventType}`, ev.notification.payload);
  }
  console.log(`final: ${ServerStatus[final.status]} on ${JSON.stringify(final.host)}`);
  const why = noValidHost(final);
  if (why) console.log(explainNoValidHost(why));
} catch (err) {
  const e = decodeError(err);
  console.error(`error: ${e.message}`);
  for (const v of e.fieldViolations) console.error(`  ${v.field}: ${v.description}`);
  process.exitCode = 1;
} finally {
  client.close();
}
