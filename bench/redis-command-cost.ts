import { Redis } from 'ioredis';

/*
 * What one Redis command costs the Node process that sends it (issue 20: the profile puts a fifth of
 * Moat's client_credentials CPU under Redis, for about two scripts per token). A SET of a 200-byte
 * value, awaited, from N concurrent callers, with and without ioredis's auto-pipelining; CPU time of
 * this process per command (user and system: on loopback the send's system time includes the
 * receiving side's TCP work). The two rows bound what a command costs Moat: one caller at a time,
 * where every reply wakes the event loop on its own, and 16 at once, where replies are read
 * together; a loaded Moat, its requests each sending their commands one after another, is between.
 *
 *   BENCH_REDIS_URL=redis://127.0.0.1:6379 node bench/redis-command-cost.ts
 */

const url = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const COMMANDS = 40_000;
const prefix = `bench:command-cost:${process.pid}:`;

async function measure(redis: Redis, concurrency: number) {
  let sent = 0;
  const caller = async () => {
    while (sent < COMMANDS) await redis.set(`${prefix}${sent++ % 100}`, 'x'.repeat(200));
  };
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, caller));
  const cpu = process.cpuUsage(cpuBefore);
  return {
    perSecond: Math.round(COMMANDS / ((performance.now() - started) / 1000)),
    userUs: cpu.user / COMMANDS,
    systemUs: cpu.system / COMMANDS,
  };
}

console.log('commands  auto-pipelining  concurrency  per s    µs CPU per command (user + system)');
for (const autoPipelining of [false, true]) {
  const redis = new Redis(url, { enableAutoPipelining: autoPipelining });
  await measure(redis, 16); // warm-up: JIT, the connection
  for (const concurrency of [1, 16]) {
    const { perSecond, userUs, systemUs } = await measure(redis, concurrency);
    const cpu = `${(userUs + systemUs).toFixed(1)} (${userUs.toFixed(1)} + ${systemUs.toFixed(1)})`;
    console.log(`${COMMANDS}    ${String(autoPipelining).padEnd(15)}  ${String(concurrency).padEnd(11)}  ${String(perSecond).padEnd(7)}  ${cpu}`);
  }
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
}
