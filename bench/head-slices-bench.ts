/**
 * head-slices-bench: memory and speed of the compact head (workers/head-slices.ts). Standalone,
 * not part of `node bench`:
 *
 *   npx tsc -p tsconfig.json && node --expose-gc dist/bench/head-slices-bench.js [--quick] [--series 100000,1000000]
 *
 * Load: N series x 1 reading per 10 s, 7 open slices of 1 min (42 readings per series), an
 * in-order stream (every series' reading of one 10 s step, then the next step). Figures:
 * - bytes per series: head.bytes() / N, and (heapUsed + arrayBuffers) after gc minus before, / N;
 * - append ns/reading: the first fill (pages and indexes allocated) and the steady state (seal the
 *   oldest slice, append the next one: pages and indexes reused);
 * - seal ms per slice (N series x 6 readings);
 * - the per-slice index, dense against map, for a full slice and for a sparse one (1% of series);
 * - a shuffled stream (random series and slice among the 7) against the in-order one;
 * - a checkpoint: snapshotSince for 5 s of readings, a full snapshot, restore.
 */

import { HeadSlices, SealedSlice, type HeadIndexMode, type SliceMark } from '../workers/head-slices';

const SLICE_MS = 60_000;
const STEP_MS = 10_000;
const STEPS_PER_SLICE = SLICE_MS / STEP_MS;
const OPEN_SLICES = 7;
const T0 = 1_764_590_400_000; // a slice start (2025-12-01T12:00:00Z)

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  process.stderr.write('run with node --expose-gc (memory figures need gc before reading)\n');
  process.exit(2);
}

function held(): number {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

function fmt(x: number, digits = 0): string {
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** appends one 10 s step: every series once, offsets spread over the step */
function appendStep(head: HeadSlices, n: number, step: number): void {
  const t = T0 + step * STEP_MS;
  for (let s = 0; s < n; s++) head.append(s, t + ((s * 7919) % STEP_MS) + 0.25, s * 0.5 + step);
}

function fillSlices(head: HeadSlices, n: number, firstStep: number, slices: number): number {
  const t0 = process.hrtime.bigint();
  for (let step = firstStep; step < firstStep + slices * STEPS_PER_SLICE; step++) appendStep(head, n, step);
  return Number(process.hrtime.bigint() - t0) / (n * slices * STEPS_PER_SLICE);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function run(n: number, index: HeadIndexMode): void {
  const label = `${fmt(n)} series, index ${index}`;
  const before = held();
  const head = new HeadSlices({ sliceMs: SLICE_MS, paneMs: STEP_MS, index });
  const fillNs = fillSlices(head, n, 0, OPEN_SLICES);
  const after = held();
  const readings = head.readingsHeld;
  const forms = head.openSlices().map((no) => head.indexForm(no)).join(',');
  console.log(`${label}: ${fmt(readings)} readings in ${head.openSliceCount} slices (index forms ${forms})`);
  console.log(`  held: bytes() ${fmt(head.bytes() / n, 1)} B/series (${fmt(head.bytes() / readings, 2)} B/reading); heapUsed+arrayBuffers ${fmt((after - before) / n, 1)} B/series`);
  console.log(`  first fill (allocating): ${fmt(fillNs, 1)} ns/reading`);

  // steady state: seal the oldest, append a new slice, 7 times
  const out = new SealedSlice();
  const sealMs: number[] = [];
  const appendNs: number[] = [];
  let nextStep = OPEN_SLICES * STEPS_PER_SLICE;
  for (let k = 0; k < 7; k++) {
    const oldest = head.openSlices()[0]!;
    const t0 = process.hrtime.bigint();
    head.seal(oldest, out);
    sealMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    appendNs.push(fillSlices(head, n, nextStep, 1));
    nextStep += STEPS_PER_SLICE;
  }
  const steady = held();
  console.log(`  steady state: append ${fmt(median(appendNs), 1)} ns/reading (median of 7 slices, range ${fmt(Math.min(...appendNs), 1)}-${fmt(Math.max(...appendNs), 1)}); seal ${fmt(median(sealMs), 1)} ms per slice of ${fmt(out.n)} readings (range ${fmt(Math.min(...sealMs), 1)}-${fmt(Math.max(...sealMs), 1)}); bytes() ${fmt(head.bytes() / n, 1)} B/series, heapUsed+arrayBuffers ${fmt((steady - before) / n, 1)} B/series (SealedSlice out ${fmt((out.series.byteLength + out.offset.byteLength + out.value.byteLength) / 1e6, 1)} MB included)`);

  // checkpoint: 5 s of readings (half a step) after marks of everything, then a full snapshot, then restore
  let marks: ReadonlyMap<number, SliceMark> = head.marks();
  const t = T0 + nextStep * STEP_MS;
  for (let s = 0; s < n; s += 2) head.append(s, t + (s % 5000), s);
  let t0 = process.hrtime.bigint();
  const inc = head.snapshotSince(marks);
  const incMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const incBytes = inc.chunks.reduce((a, c) => a + c.bytes.byteLength, 0);
  marks = inc.marks;
  t0 = process.hrtime.bigint();
  const full = head.snapshotSince(new Map());
  const fullMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const fullBytes = full.chunks.reduce((a, c) => a + c.bytes.byteLength, 0);
  t0 = process.hrtime.bigint();
  const back = HeadSlices.restore({ sliceMs: SLICE_MS, paneMs: STEP_MS, index }, full.chunks.map((c) => c.bytes));
  const restoreMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (back.readingsHeld !== head.readingsHeld) throw new Error('restore lost readings');
  console.log(`  checkpoint: 5 s of readings ${fmt(incBytes / 1e6, 1)} MB in ${inc.chunks.length} chunks, ${fmt(incMs, 1)} ms; full ${fmt(fullBytes / 1e6, 1)} MB in ${full.chunks.length} chunks, ${fmt(fullMs, 1)} ms; restore ${fmt(restoreMs, 0)} ms (${fmt(restoreMs * 1e6 / back.readingsHeld, 1)} ns/reading)`);
}

/** index bytes of one slice with `present` of n series, per form */
function indexForms(n: number): void {
  for (const present of [n, Math.floor(n / 100)]) {
    const parts: string[] = [];
    for (const index of ['dense', 'map', 'auto'] as HeadIndexMode[]) {
      const head = new HeadSlices({ sliceMs: SLICE_MS, paneMs: STEP_MS, index });
      // the shard has n series (so the dense form spans n ids), the slice holds `present` of them
      head.append(n - 1, T0 - SLICE_MS, 0);
      const stride = Math.floor(n / present);
      for (let step = 0; step < STEPS_PER_SLICE; step++) {
        for (let k = 0; k < present; k++) head.append(k * stride, T0 + step * STEP_MS + k % STEP_MS, k);
      }
      parts.push(`${index} ${fmt(head.indexBytes(T0 / SLICE_MS) / 1024, 0)} KiB${index === 'auto' ? ` (chose ${head.indexForm(T0 / SLICE_MS)})` : ''}`);
    }
    console.log(`  index of one slice, ${fmt(present)} of ${fmt(n)} series present: ${parts.join(', ')}`);
  }
}

/** shuffled stream: random series and slice among the 7 open ones, against the in-order stream */
function shuffled(n: number): void {
  const head = new HeadSlices({ sliceMs: SLICE_MS, paneMs: STEP_MS });
  fillSlices(head, n, 0, OPEN_SLICES); // warm: every slice dense, pages allocated
  const m = 2_000_000;
  const ss = new Uint32Array(m);
  const ts = new Float64Array(m);
  let x = 12345;
  for (let i = 0; i < m; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    ss[i] = x % n;
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    ts[i] = T0 + (x % (OPEN_SLICES * SLICE_MS));
  }
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < m; i++) head.append(ss[i]!, ts[i]!, i);
  const ns = Number(process.hrtime.bigint() - t0) / m;
  console.log(`  shuffled stream (random series and slice of the 7): ${fmt(ns, 1)} ns/reading over ${fmt(m)} readings`);
}

function main(): void {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const si = args.indexOf('--series');
  const sizes = si >= 0 ? args[si + 1]!.split(',').map(Number) : quick ? [10_000] : [100_000, 1_000_000];
  console.log(`node ${process.version}, ${process.arch}; ${OPEN_SLICES} open slices of ${SLICE_MS / 1000} s, 1 reading per series per ${STEP_MS / 1000} s`);
  for (const n of sizes) {
    run(n, 'auto');
    if (n <= 100_000) run(n, 'map');
    indexForms(n);
    shuffled(n);
  }
}

main();
