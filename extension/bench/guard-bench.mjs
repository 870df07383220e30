// Time per URL of the JS scorer (extension/guard.js) on the committed dataset sample.
// Run: node extension/bench/guard-bench.mjs   (prints one JSON object)
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadModel, score } from '../guard.js';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const { model } = await loadModel(readFileSync(here('../../crates/lode-guard/model/default.json'), 'utf8'));
const urls = readFileSync(here('../../crates/lode-guard/tests/data/sample.tsv'), 'utf8')
  .split('\n').slice(1).filter(Boolean).map((l) => l.split('\t')[2]);
for (const u of urls) score(model, u); // warm-up (JIT)
const rounds = 20;
const t0 = process.hrtime.bigint();
let sink = 0;
for (let r = 0; r < rounds; r++) for (const u of urls) sink += score(model, u);
const ns = Number(process.hrtime.bigint() - t0);
const perUrlUs = ns / 1000 / (rounds * urls.length);
// Per-URL times of one more pass, for the median and the 99th percentile.
const each = urls.map((u) => {
  const t = process.hrtime.bigint();
  score(model, u);
  return Number(process.hrtime.bigint() - t) / 1000;
}).sort((a, b) => a - b);
const pct = (q) => +each[Math.min(each.length - 1, Math.floor(q * each.length))].toFixed(1);
console.log(JSON.stringify({ urls: urls.length, rounds, mean_us_per_url: +perUrlUs.toFixed(2), p50_us: pct(0.5), p99_us: pct(0.99), node: process.version, checksum: +sink.toFixed(6) }));
