// Reads one of wahook's derived streams from NATS JetStream, through the
// durable consumer wahook keeps for this subscriber
// (WAHOOK_NATS_SUBSCRIBER_CONSUMERS), turns each message's binary-mode
// headers into a CloudEvent with the CloudEvents SDK and prints it as JSON,
// one per line. Each event is acknowledged once printed (at least once:
// deduplicate by id where handling twice matters).
//
//   NATS_USER=reader NATS_PASSWORD=... CONSUMER=sub-reader-labels node index.js
import { connect } from "nats";
import { HTTP } from "cloudevents";

const servers = process.env.NATS_URL || "nats://127.0.0.1:4222";
const stream = process.env.STREAM || "WAHOOK_DERIVED";
const durable = process.env.CONSUMER;
const count = Number(process.env.COUNT || 0);
if (!durable) {
  console.error("set CONSUMER to the durable consumer's name, e.g. sub-reader-labels");
  process.exit(2);
}

// toEvent decodes a message in the CloudEvents NATS binding's binary mode:
// ce-* headers, percent-encoded as in the HTTP binding, which is the one
// this SDK reads (it does not decode the percent-encoding itself).
export function toEvent(msg) {
  const headers = {};
  if (msg.headers) {
    for (const key of msg.headers.keys()) {
      const name = key.toLowerCase();
      const value = msg.headers.get(key);
      headers[name] = name.startsWith("ce-") ? decodeURIComponent(value) : value;
    }
  }
  return HTTP.toEvent({ headers, body: new TextDecoder().decode(msg.data) });
}

const nc = await connect({ servers, user: process.env.NATS_USER, pass: process.env.NATS_PASSWORD, name: "node-subscriber" });
const consumer = await nc.jetstream().consumers.get(stream, durable);
const messages = await consumer.consume();
let seen = 0;
for await (const m of messages) {
  try {
    const ev = toEvent(m);
    console.log(JSON.stringify(ev));
    m.ack();
  } catch (err) {
    console.error(`${m.subject}: ${err}`);
    m.term();
  }
  if (count > 0 && ++seen >= count) break;
}
await nc.drain();
