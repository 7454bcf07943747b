// Peer: the AWS SDK for JavaScript v3 — DynamoDBClient + BatchWriteItemCommand, N batches in flight.
//
//     node benchmarks/peer_js.cjs --endpoint URL --table T --source FILE.jsonl \
//         [--in-flight 16] [--items N] [--consumed-capacity NONE|TOTAL]
//
// (or `python -m benchmarks.peer_js ...`, which execs this with the same arguments).
// Streams the JSONL line by line (readline), 25 items a batch, at most N batches in
// flight; resends UnprocessedItems until empty with a small backoff. Numbers are kept as
// their JSON text (`{"N": "<text>"}`), so no number goes through a double. Times reading
// + writing (not node start, imports or client creation) and prints the same JSON line as
// benchmarks.peer_boto3: {"tool", "items", "elapsed_s", "items_per_second", "api_calls",
// "time_limited"}. The SDK comes from .cache/js (`make js-sdk`; env DDB_JS_HOME moves it).
"use strict";

const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");
const readline = require("node:readline");

const JS_HOME = process.env.DDB_JS_HOME || path.join(__dirname, "..", ".cache", "js");
const BATCH = 25;

function usage(message) {
  process.stderr.write(`peer_js: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    endpoint: null, table: null, source: null, inFlight: 16, items: null, capacity: "NONE",
  };
  const names = {
    "--endpoint": "endpoint",
    "--table": "table",
    "--source": "source",
    "--in-flight": "inFlight",
    "--items": "items",
    "--consumed-capacity": "capacity", // TOTAL: as ddb-loader asks, for its report
  };
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i];
    let value;
    const eq = flag.indexOf("=");
    if (flag.startsWith("--") && eq > 0) {
      value = flag.slice(eq + 1);
      flag = flag.slice(0, eq);
    } else {
      value = argv[++i];
    }
    const key = names[flag];
    if (key === undefined) usage(`unknown argument ${flag}`);
    if (value === undefined) usage(`${flag} needs a value`);
    opts[key] = value;
  }
  for (const flag of ["--endpoint", "--table", "--source"]) {
    if (!opts[names[flag]]) usage(`${flag} is required`);
  }
  opts.inFlight = Number(opts.inFlight);
  if (!Number.isInteger(opts.inFlight) || opts.inFlight < 1) usage("--in-flight must be >= 1");
  if (opts.items !== null) {
    opts.items = Number(opts.items);
    if (!Number.isInteger(opts.items) || opts.items < 0) usage("--items must be >= 0");
  }
  return opts;
}

function loadSdk() {
  try {
    return require(require.resolve("@aws-sdk/client-dynamodb", { paths: [JS_HOME] }));
  } catch (err) {
    usage(`@aws-sdk/client-dynamodb is not installed under ${JS_HOME} (run: make js-sdk): ${err.message}`);
  }
}

// ------------------------------------------------------------------ lossless JSON -> AttributeValue

// Numbers must come through exactly. JSON.parse turns each into a double, which holds
// every decimal of at most 15 significant digits exactly (String() then gives the same
// value back, maybe spelt differently: 2.50 -> "2.5"). So a line with no run of 16 or
// more digits/dots and no exponent is parsed with JSON.parse, numbers sent as String(n).
// Any other line keeps each number's own JSON text: its number tokens (outside strings)
// are first rewritten as strings tagged with a leading U+0000 (written `\u0000`, as JSON
// must). Only a line that already holds the escape `\u0000` could forge the tag; such
// lines go through a small exact parser instead.
const TOKENS = /"[^"\\]*(?:\\.[^"\\]*)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
const MAYBE_INEXACT = /[0-9.]{16}|\d[eE]/;

function tagNumbers(token) {
  return token.charCodeAt(0) === 34 /* " */ ? token : `"\\u0000${token}"`;
}

function toAttribute(value) {
  if (typeof value === "string") {
    return value.charCodeAt(0) === 0 ? { N: value.slice(1) } : { S: value };
  }
  if (typeof value === "number") return { N: String(value) }; // exact: see MAYBE_INEXACT
  if (typeof value === "boolean") return { BOOL: value };
  if (value === null) return { NULL: true };
  if (Array.isArray(value)) return { L: value.map(toAttribute) };
  if (value instanceof NumberText) return { N: value.text };
  if (typeof value === "object") return { M: toMap(value) };
  throw new Error(`cannot marshal ${typeof value}`);
}

function toMap(object) {
  const out = {};
  for (const key of Object.keys(object)) put(out, key, toAttribute(object[key]));
  return out;
}

// `out[key] = v`, also for a key named __proto__ (which plain assignment would not store).
function put(out, key, v) {
  if (key === "__proto__") Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
  else out[key] = v;
}

// The exact path: a small JSON parser whose numbers are NumberText (their source text).
class NumberText {
  constructor(text) {
    this.text = text;
  }
}

function parseExact(text) {
  let i = 0;
  const fail = () => {
    throw new SyntaxError(`bad JSON at ${i}`);
  };
  const ws = () => {
    while (i < text.length && " \t\r\n".includes(text[i])) i++;
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const out = {};
      ws();
      if (text[i] === "}") return i++, out;
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        const key = string();
        ws();
        if (text[i++] !== ":") fail();
        put(out, key, value());
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") return i++, out;
        else fail();
      }
    }
    if (c === "[") {
      i++;
      const out = [];
      ws();
      if (text[i] === "]") return i++, out;
      for (;;) {
        out.push(value());
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") return i++, out;
        else fail();
      }
    }
    if (c === '"') {
      const s = string();
      // A string that starts with U+0000 must not read as a tagged number later.
      return s.charCodeAt(0) === 0 ? new StringText(s) : s;
    }
    for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) return (i += word.length), v;
    }
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i, i + 1024));
    if (!m) fail();
    i += m[0].length;
    return new NumberText(m[0]);
  };
  const string = () => {
    const m = /^"(?:[^"\\]|\\.)*"/.exec(text.slice(i));
    if (!m) fail();
    i += m[0].length;
    return JSON.parse(m[0]);
  };
  const out = value();
  ws();
  if (i !== text.length) fail();
  return out;
}

class StringText {
  constructor(text) {
    this.text = text;
  }
}

function toAttributeExact(value) {
  if (value instanceof StringText) return { S: value.text };
  if (value instanceof NumberText) return { N: value.text };
  if (typeof value === "string") return { S: value };
  if (Array.isArray(value)) return { L: value.map(toAttributeExact) };
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value)) put(out, key, toAttributeExact(value[key]));
    return { M: out };
  }
  return toAttribute(value);
}

function itemOf(line) {
  if (!MAYBE_INEXACT.test(line) && !line.includes("\\u0000")) {
    const parsed = JSON.parse(line);
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw new Error("a JSONL line is not an object");
    }
    return toMap(parsed);
  }
  if (line.includes("\\u0000")) {
    const parsed = toAttributeExact(parseExact(line));
    if (!parsed.M) throw new Error("a JSONL line is not an object");
    return parsed.M;
  }
  const parsed = JSON.parse(line.replace(TOKENS, tagNumbers));
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Error("a JSONL line is not an object");
  }
  return toMap(parsed);
}

// ------------------------------------------------------------------ writing

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const { DynamoDBClient, BatchWriteItemCommand } = loadSdk();
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.inFlight + 4 });
  const client = new DynamoDBClient({
    endpoint: opts.endpoint,
    region: process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || "us-east-1",
    // Dummy keys, the same as the Python peers' (benchmarks.common.use_dummy_credentials).
    credentials: {
      accessKeyId: process.env.AWS_ACCESS_KEY_ID || "bench",
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || "bench",
    },
    requestHandler: { httpAgent: agent, httpsAgent: agent },
  });
  let calls = 0; // HTTP requests sent, the SDK's own retries included
  client.middlewareStack.add(
    (next) => (args) => {
      calls++;
      return next(args);
    },
    { step: "deserialize", name: "peerJsCallCounter" } // runs once per attempt, inside retries
  );

  const table = opts.table;
  const capacity = opts.capacity;
  async function write(requests) {
    for (let attempt = 0; ; attempt++) {
      const out = await client.send(
        new BatchWriteItemCommand({
          RequestItems: { [table]: requests },
          ReturnConsumedCapacity: capacity,
        })
      );
      const left = out.UnprocessedItems && out.UnprocessedItems[table];
      if (!left || left.length === 0) return;
      if (attempt >= 50) throw new Error(`${left.length} items still unprocessed after ${attempt + 1} attempts`);
      requests = left;
      await sleep(Math.min(1000, 25 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2));
    }
  }

  let written = 0;
  let failure = null;
  const running = new Set();
  function launch(requests) {
    const p = write(requests).then(
      () => {
        written += requests.length;
        running.delete(p);
      },
      (err) => {
        failure = failure || err;
        running.delete(p);
      }
    );
    running.add(p);
  }

  const started = process.hrtime.bigint();
  const input = fs.createReadStream(opts.source, { encoding: "utf8", highWaterMark: 256 * 1024 });
  const lines = readline.createInterface({ input, crlfDelay: Infinity });
  let batch = [];
  let read = 0;
  for await (const line of lines) {
    if (opts.items !== null && read >= opts.items) break;
    read++; // like the Python peers, --items counts lines (itertools.islice)
    if (!line.trim()) continue;
    batch.push({ PutRequest: { Item: itemOf(line) } });
    if (batch.length === BATCH) {
      while (running.size >= opts.inFlight) await Promise.race(running);
      if (failure) break;
      launch(batch);
      batch = [];
    }
  }
  lines.close();
  input.destroy();
  if (batch.length && !failure) launch(batch);
  while (running.size) await Promise.race(running);
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  client.destroy();
  agent.destroy();
  if (failure) throw failure;
  const result = {
    tool: `AWS SDK for JS v3 x${opts.inFlight}`,
    items: written,
    elapsed_s: Math.round(elapsed * 1000) / 1000,
    items_per_second: elapsed > 0 ? Math.round((written / elapsed) * 10) / 10 : 0.0,
    api_calls: calls,
    time_limited: false,
  };
  process.stdout.write(JSON.stringify(result) + "\n");
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`peer_js: ${(err && err.stack) || err}\n`);
    process.exit(1);
  });
} else {
  module.exports = { itemOf }; // for checking the marshalling on its own
}
