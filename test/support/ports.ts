import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/*
 * A loopback port for a server a test (or a benchmark) is about to start.
 *
 * Not port 0 and not a port the kernel handed out: the kernel picks those from its ephemeral range
 * (32768–60999 on Linux), the same range it takes local ports from for every outgoing connection —
 * to Postgres, Redis, the server under test. A port probed free there can be the local end of a
 * client socket a moment later, and the server that wanted it fails with EADDRINUSE (seen in CI).
 * Outside that range only explicit listeners compete, so each Jest worker takes its own block of
 * 1000 ports and walks it: nothing else in the run hands those ports out. (Another test run on the
 * same host could still take one between the probe and the listen: startMoat retries then.)
 */

const BLOCK_SIZE = 1_000;

/** The kernel's ephemeral range, read where Linux publishes it (other systems: its usual default). */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!];
  } catch {
    // Not Linux.
  }
  return [32_768, 60_999];
}

// The blocks sit just below the ephemeral range (20000–31999 on a default Linux); a host whose
// range starts lower leaves no room below it, and then they sit just above it instead.
const [ephemeralLow, ephemeralHigh] = ephemeralRange();
const BLOCKS = 12;
const FIRST_PORT = ephemeralLow - BLOCKS * BLOCK_SIZE >= 1_024 ? ephemeralLow - BLOCKS * BLOCK_SIZE : ephemeralHigh + 1;

// Jest numbers its workers from 1: they take blocks 1–11 (more workers share them); a benchmark or
// script outside Jest takes block 0.
const worker = Number(process.env.JEST_WORKER_ID ?? 0);
const block = worker === 0 ? 0 : ((worker - 1) % (BLOCKS - 1)) + 1;
const blockStart = Math.min(FIRST_PORT + block * BLOCK_SIZE, 65_535 - BLOCK_SIZE);
// Start somewhere different in the block each run, so a port left in TIME_WAIT by the last run is not first.
let next = Math.floor(Math.random() * BLOCK_SIZE);

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  for (let tried = 0; tried < BLOCK_SIZE; tried += 1) {
    const port = blockStart + (next % BLOCK_SIZE);
    next += 1;
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port in ${blockStart}–${blockStart + BLOCK_SIZE - 1}`);
}
