/**
 * Measures the sealed-block codec (storage/block-codec.ts): bytes per series-minute, encode cost
 * per reading, a device lookup (findSeries + seriesWindow), a fleet read (fleet()), verify().
 * Standalone, not part of `node bench`:
 *
 *   npx tsc -p tsconfig.json && node dist/bench/block-codec-bench.js [--quick]
 *
 * The load: S series x 6 readings (one per 10 s pane at a random ms within it, arrival in time
 * order), values Math.round(Math.random() * 1000) / 10 (CPU percentages with one decimal), one
 * metric, one device per series with ids spread over 8x their number (a shard of 8 sees every
 * 8th device on average). Variants change one thing each. Figures: medians of repeated runs.
 */

import { BlockEncoder, BlockReader, BLOCK_SLICE, type BlockColumns, type BlockShape } from '../storage/block-codec';
import { emptyAggregate } from '../protocol/aggregate';
import type { WindowAggregateWire } from '../protocol/messages';

const SPEC = { divisions: 10, min: 0, max: 100 };
const SLICE_START = 1_764_590_400_000;
const quick = process.argv.includes('--quick');

interface Load {
  series: number;
  perSeries: number;
  values: 'decimal' | 'f64';
  sparseEvery?: number;
}

function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function makeSlice(load: Load): BlockColumns & BlockShape {
  const rand = mulberry32(20261202);
  const n = load.series * load.perSeries;
  const series = new Uint32Array(n);
  const offset = new Uint32Array(n);
  const value = new Float64Array(n);
  const device = new Uint32Array(load.series);
  const spacing = 60_000 / load.perSeries;
  let i = 0;
  for (let s = 0; s < load.series; s++) {
    device[s] = s * 8 + Math.floor(rand() * 8);
    for (let k = 0; k < load.perSeries; k++, i++) {
      series[i] = s;
      offset[i] = Math.floor(k * spacing + rand() * spacing);
      value[i] = load.values === 'decimal' ? Math.round(rand() * 1000) / 10 : rand() * 100;
    }
  }
  return {
    sliceStart: SLICE_START, sliceMs: 60_000, paneMs: 10_000, n, series, offset, value,
    seriesDevice: (id) => device[id]!,
    seriesMetric: () => 1,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** median ms of `runs` calls of f (after `warm` unmeasured ones) */
function timeMs(f: () => void, runs: number, warm = 1): number {
  for (let i = 0; i < warm; i++) f();
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    f();
    xs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(xs);
}

function reset(a: WindowAggregateWire): void {
  a.count = 0;
  a.sum = 0;
  a.min = 0;
  a.max = 0;
  a.last = 0;
  a.lastTs = 0;
  a.histogram.fill(0);
  a.under = 0;
  a.over = 0;
  a.means.length = 0;
  a.weights.length = 0;
}

function measure(name: string, load: Load): void {
  const slice = makeSlice(load);
  const encoder = new BlockEncoder(SPEC, load.sparseEvery);
  const runs = load.series >= 1_000_000 ? 3 : quick ? 3 : 7;
  const encodeMs = timeMs(() => encoder.encode(slice, slice), runs, 2);
  const bytes = Uint8Array.from(encoder.encode(slice, slice));
  const deviceSetBytes = encoder.lastDeviceSetBytes;
  const reader = new BlockReader(bytes);
  const S = load.series;
  const per = (b: number): string => (b / S).toFixed(2);

  const openMs = timeMs(() => new BlockReader(bytes), 5);
  const verifyMs = timeMs(() => reader.verify(), 3);
  const lookups = quick ? 50_000 : 200_000;
  const ids = new Uint32Array(lookups);
  const rand = mulberry32(7);
  for (let i = 0; i < lookups; i++) ids[i] = Math.floor(rand() * S);
  const agg = emptyAggregate(SLICE_START, SLICE_START + 60_000, SPEC.divisions);
  let merged = 0;
  const minuteMs = timeMs(() => {
    for (let i = 0; i < lookups; i++) {
      reset(agg);
      if (reader.findSeries(ids[i]!) >= 0) merged += reader.seriesWindow(ids[i]!, 0, 60_000, agg);
    }
  }, 3);
  const paneMs = timeMs(() => {
    for (let i = 0; i < lookups; i++) {
      reset(agg);
      merged += reader.seriesWindow(ids[i]!, 20_000, 30_000, agg);
    }
  }, 3);
  const fleetMs = timeMs(() => reader.fleet(1), 50, 5);
  const devicesMs = timeMs(() => reader.readDevices(1, BLOCK_SLICE), 10, 2);
  const paneDevicesMs = timeMs(() => reader.readDevices(1, 2), 10, 2);
  let walked = 0;
  const walkMs = timeMs(() => reader.forEachSeries((_id, count) => { walked += count; }), 3);
  if (merged === 0 || walked === 0) throw new Error('nothing measured');

  console.log(`\n${name}: ${S.toLocaleString('en')} series x ${load.perSeries} readings, ${load.values} values${load.sparseEvery ? `, sparse every ${load.sparseEvery}` : ''}`);
  console.log(`  block            ${bytes.byteLength.toLocaleString('en')} B = ${per(bytes.byteLength)} B per series-minute`);
  console.log(`    header+sparse  ${per(72 + reader.sparseBytes)}  directory ${per(reader.directoryBytes)}  data ${per(reader.dataBytes)}  footer ${per(reader.footerBytes)} (device sets ${per(deviceSetBytes)}: ${deviceSetBytes.toLocaleString('en')} B)`);
  console.log(`  encode           ${encodeMs.toFixed(1)} ms = ${((encodeMs * 1e6) / slice.n).toFixed(0)} ns per reading`);
  console.log(`  open             ${(openMs * 1000).toFixed(1)} us   verify() ${verifyMs.toFixed(1)} ms   forEachSeries ${((walkMs * 1e6) / S).toFixed(0)} ns per series`);
  console.log(`  device lookup    findSeries + seriesWindow(minute) ${((minuteMs * 1e6) / lookups).toFixed(0)} ns, seriesWindow(pane) ${((paneMs * 1e6) / lookups).toFixed(0)} ns`);
  console.log(`  fleet            fleet() ${(fleetMs * 1000).toFixed(1)} us   readDevices(slice) ${devicesMs.toFixed(2)} ms   readDevices(pane) ${paneDevicesMs.toFixed(2)} ms`);
}

function main(): void {
  console.log(`block codec bench (node ${process.version}${quick ? ', quick' : ''})`);
  measure('main', { series: 100_000, perSeries: 6, values: 'decimal' });
  if (!quick) {
    measure('arbitrary doubles', { series: 100_000, perSeries: 6, values: 'f64' });
    measure('sparse index every 16', { series: 100_000, perSeries: 6, values: 'decimal', sparseEvery: 16 });
    measure('sparse index every 32', { series: 100_000, perSeries: 6, values: 'decimal', sparseEvery: 32 });
    measure('sparse index every 256', { series: 100_000, perSeries: 6, values: 'decimal', sparseEvery: 256 });
    measure('a reading every 20 s (panes partly empty)', { series: 100_000, perSeries: 3, values: 'decimal' });
    measure('1M series', { series: 1_000_000, perSeries: 6, values: 'decimal' });
  }
}

main();
