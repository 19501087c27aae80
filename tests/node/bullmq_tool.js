#!/usr/bin/env node
// A small CLI over real Node BullMQ (3.15.8 or 5.63.0) for forge's Python tests and benchmarks.
//
//   node bullmq_tool.js <subcommand> --bullmq 3|5 --redis redis://127.0.0.1:6379/15 --queue Q [flags]
//
// Flags are `--key value` pairs (or one `--json '{"key": value}'`). The result is one JSON line
// on stdout and exit 0; on failure one JSON line {"error", "stack"} on stdout and stderr, exit 1.
// Subcommands: fail, add, process, counts, worker, pause, resume, clean, get (see HELP below).
'use strict';

const HELP = {
  fail: '--queue Q --count N --attempts A [--name test-failure] [--data JSON] [--timeout-ms T]',
  add: '--queue Q --count N [--name n] [--delay ms] [--priority p] [--attempts A] [--data JSON]',
  process: '--queue Q --expect N [--timeout-ms T] [--concurrency C]',
  counts: '--queue Q',
  worker: '--queue Q --name W --seconds S',
  'hold-queue': '--queue Q --seconds S',
  pause: '--queue Q',
  resume: '--queue Q',
  clean: '--queue Q --limit N --grace-ms G [--type failed]',
  get: '--queue Q --id ID',
};

function parseArgs(argv) {
  const [cmd, ...rest] = argv;
  const opts = {};
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i];
    if (!flag.startsWith('--')) throw new Error(`unexpected argument ${flag}`);
    const key = flag.slice(2);
    const value = rest[i + 1];
    if (value === undefined || value.startsWith('--')) { opts[key] = true; continue; }
    i++;
    if (key === 'json') Object.assign(opts, JSON.parse(value));
    else opts[key] = value;
  }
  return { cmd, opts };
}

function connectionFrom(url) {
  const u = new URL(url || 'redis://127.0.0.1:6379/0');
  const db = Number((u.pathname || '/0').slice(1) || 0);
  const conn = { host: u.hostname || '127.0.0.1', port: Number(u.port || 6379), db, maxRetriesPerRequest: null };
  if (u.username) conn.username = decodeURIComponent(u.username);
  if (u.password) conn.password = decodeURIComponent(u.password);
  return conn;
}

function int(opts, key, dflt) {
  const v = opts[key];
  if (v === undefined || v === null) {
    if (dflt === undefined) throw new Error(`--${key} is required`);
    return dflt;
  }
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${key} must be a number, got ${v}`);
  return n;
}

function str(opts, key, dflt) {
  const v = opts[key];
  if (v === undefined || v === null) {
    if (dflt === undefined) throw new Error(`--${key} is required`);
    return dflt;
  }
  return String(v);
}

function dataFrom(opts) {
  const d = opts.data;
  if (d === undefined || d === null) return {};
  return typeof d === 'string' ? JSON.parse(d) : d;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function emit(obj, code) {
  const line = JSON.stringify(obj) + '\n';
  if (code !== 0) process.stderr.write(line);
  process.stdout.write(line, () => process.exit(code));
}

// Adds `count` jobs in addBulk chunks of 1000; returns the ids (all, or only the first `keep`).
async function addJobs(queue, count, name, data, jobOpts, keep = Infinity) {
  const ids = [];
  for (let start = 0; start < count; start += 1000) {
    const batch = [];
    for (let n = start; n < Math.min(count, start + 1000); n++) {
      batch.push({ name, data: { ...data, n }, opts: jobOpts });
    }
    const jobs = await queue.addBulk(batch);
    for (const job of jobs) if (ids.length < keep) ids.push(job.id);
  }
  return ids;
}

// Prints {"ready":true} and waits S seconds, or until SIGTERM/SIGINT.
async function holdFor(seconds) {
  let stop;
  const stopped = new Promise((r) => { stop = r; });
  process.on('SIGTERM', () => stop());
  process.on('SIGINT', () => stop());
  process.stdout.write(JSON.stringify({ ready: true, pid: process.pid }) + '\n');
  const timer = setTimeout(stop, seconds * 1000);
  await stopped;
  clearTimeout(timer);
}

const commands = {
  // N jobs that always throw, with attempts A and no backoff, until all N are in the failed set.
  async fail(lib, conn, opts) {
    const q = str(opts, 'queue');
    const count = int(opts, 'count');
    const attempts = int(opts, 'attempts', 3);
    const timeoutMs = int(opts, 'timeout-ms', 600000);
    const queue = new lib.Queue(q, { connection: conn });
    const t0 = Date.now();
    const baseline = await queue.getFailedCount();
    const alwaysFails = async (job) => {
      throw new Error(`boom ${job.data && job.data.n !== undefined ? job.data.n : job.id}`);
    };
    const worker = new lib.Worker(q, alwaysFails, { connection: conn, concurrency: int(opts, 'concurrency', 200) });
    worker.on('error', (err) => process.stderr.write(`worker error: ${err && err.stack}\n`));
    try {
      const ids = await addJobs(queue, count, str(opts, 'name', 'test-failure'), dataFrom(opts),
        { attempts, removeOnComplete: false, removeOnFail: false }, 10);
      let failed = 0;
      for (;;) {
        failed = (await queue.getFailedCount()) - baseline;
        if (failed >= count) break;
        if (Date.now() - t0 > timeoutMs) throw new Error(`only ${failed}/${count} failed after ${timeoutMs} ms`);
        await sleep(count > 1000 ? 100 : 10);
      }
      return { failed, ids, elapsed_ms: Date.now() - t0 };
    } finally {
      await worker.close();
      await queue.close();
    }
  },

  async add(lib, conn, opts) {
    const queue = new lib.Queue(str(opts, 'queue'), { connection: conn });
    try {
      const jobOpts = {};
      if (opts.delay !== undefined) jobOpts.delay = int(opts, 'delay');
      if (opts.priority !== undefined) jobOpts.priority = int(opts, 'priority');
      if (opts.attempts !== undefined) jobOpts.attempts = int(opts, 'attempts');
      const ids = await addJobs(queue, int(opts, 'count', 1), str(opts, 'name', 'test-job'), dataFrom(opts), jobOpts);
      return { added: ids.length, ids };
    } finally {
      await queue.close();
    }
  },

  // A worker that completes jobs; stops after `expect` jobs or at the timeout, with what it got.
  async process(lib, conn, opts) {
    const q = str(opts, 'queue');
    const expect = int(opts, 'expect');
    const timeoutMs = int(opts, 'timeout-ms', 10000);
    const processed = [];
    const names = [];
    let done;
    const enough = new Promise((r) => { done = r; });
    const t0 = Date.now();
    const worker = new lib.Worker(q, async (job) => {
      processed.push(job.id);
      names.push(job.name);
      if (processed.length >= expect) done();
      return { ok: true };
    }, { connection: conn, concurrency: int(opts, 'concurrency', 1) });
    worker.on('error', (err) => process.stderr.write(`worker error: ${err && err.stack}\n`));
    if (expect <= 0) done();
    const timer = setTimeout(done, timeoutMs);
    await enough;
    clearTimeout(timer);
    await worker.close();
    return { processed, names, timed_out: processed.length < expect, elapsed_ms: Date.now() - t0 };
  },

  async counts(lib, conn, opts) {
    const queue = new lib.Queue(str(opts, 'queue'), { connection: conn });
    try {
      const counts = await queue.getJobCounts();
      return { counts, paused: await queue.isPaused() };
    } finally {
      await queue.close();
    }
  },

  // A named worker kept connected for S seconds; prints {"ready":true} as soon as it is connected.
  async worker(lib, conn, opts) {
    const q = str(opts, 'queue');
    const seconds = int(opts, 'seconds', 30);
    const worker = new lib.Worker(q, async () => ({ ok: true }),
      { connection: conn, name: str(opts, 'name', 'forge-test') });
    worker.on('error', (err) => process.stderr.write(`worker error: ${err && err.stack}\n`));
    await worker.waitUntilReady();
    await holdFor(seconds);
    await worker.close();
    return { closed: true };
  },

  // A plain Queue object (no worker) kept connected for S seconds; prints {"ready":true} once connected.
  async 'hold-queue'(lib, conn, opts) {
    const queue = new lib.Queue(str(opts, 'queue'), { connection: conn });
    await queue.waitUntilReady();
    await queue.getJobCounts('wait'); // one round trip, so the connection is surely up
    await holdFor(int(opts, 'seconds', 30));
    await queue.close();
    return { closed: true };
  },

  async pause(lib, conn, opts) {
    const queue = new lib.Queue(str(opts, 'queue'), { connection: conn });
    try {
      await queue.pause();
      return { paused: await queue.isPaused() };
    } finally {
      await queue.close();
    }
  },

  async resume(lib, conn, opts) {
    const queue = new lib.Queue(str(opts, 'queue'), { connection: conn });
    try {
      await queue.resume();
      return { paused: await queue.isPaused() };
    } finally {
      await queue.close();
    }
  },

  async clean(lib, conn, opts) {
    const queue = new lib.Queue(str(opts, 'queue'), { connection: conn });
    try {
      const t0 = Date.now();
      const ids = await queue.clean(int(opts, 'grace-ms', 0), int(opts, 'limit', 0), str(opts, 'type', 'failed'));
      return { removed: ids.length, elapsed_ms: Date.now() - t0 };
    } finally {
      await queue.close();
    }
  },

  async get(lib, conn, opts) {
    const queue = new lib.Queue(str(opts, 'queue'), { connection: conn });
    try {
      const job = await lib.Job.fromId(queue, str(opts, 'id'));
      if (!job) return { job: null, state: null };
      return { job: job.toJSON(), state: await job.getState() };
    } finally {
      await queue.close();
    }
  },
};

async function main() {
  const { cmd, opts } = parseArgs(process.argv.slice(2));
  if (!commands[cmd]) {
    throw new Error(`usage: bullmq_tool.js <${Object.keys(commands).join('|')}> --bullmq 3|5 --redis URL ...; `
      + Object.entries(HELP).map(([k, v]) => `${k} ${v}`).join('; '));
  }
  const version = str(opts, 'bullmq', '5');
  if (version !== '3' && version !== '5') throw new Error(`--bullmq must be 3 or 5, got ${version}`);
  const lib = require(`bullmq${version}`);
  const result = await commands[cmd](lib, connectionFrom(opts.redis), opts);
  return { ...result, bullmq: version };
}

main().then(
  (result) => emit(result, 0),
  (err) => emit({ error: String(err && err.message ? err.message : err), stack: err && err.stack }, 1),
);
