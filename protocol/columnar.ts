/**
 * Validation of a columnar batch: one device, `timestamps` and each metric as little-endian f64
 * byte strings of equal length. Rows are read through DataViews over the sender's bytes, with no
 * object per row; a batch whose rows are all valid is copied into the ring column by column.
 *
 * Contract: batch-level faults (shape, lengths, names) reject the whole batch with one reason;
 * row-level faults (a bad timestamp or a non-finite value) reject only that row, index = row.
 */

import type { ColumnarBatch } from './codecs';
import type { ErrorCode, Rejection } from './errors';
import { type EventLimits, describeValue, isValidDeviceId, isValidMetricName, DEVICE_ID_LENGTH_MAX, METRIC_NAME_LENGTH_MAX } from './event';
import { type TimePrecision, epochMsMin, numericTimestampProblem, toEpochMs } from './time';

export interface ColumnarRows {
  deviceId: string;
  rows: number;
  names: string[];
  timestamps: Uint8Array;
  columns: Uint8Array[];
  /** null when every row is valid; else 1 for the rows to keep */
  rowOk: Uint8Array | null;
  rejections: Rejection[];
}

export interface ColumnarFault {
  code: ErrorCode;
  reason: string;
}

/**
 * precision: the unit of the timestamps column (null: unqualified ms). Timestamps in another unit
 * than ms are converted into a new column (the sender's bytes stay untouched).
 */
export function validateColumnar(b: ColumnarBatch, pinnedDevice: string | null, nowMs: number,
  limits: EventLimits, precision: TimePrecision | null = null): ColumnarRows | ColumnarFault {
  let deviceId: string;
  if (b.deviceId === undefined && pinnedDevice !== null) deviceId = pinnedDevice;
  else if (typeof b.deviceId !== 'string' || !isValidDeviceId(b.deviceId)) {
    return { code: 'SLUICE_E_BAD_DEVICE_ID', reason: `deviceId: must be 1-${DEVICE_ID_LENGTH_MAX} characters of [A-Za-z0-9_.:-], got ${b.deviceId === undefined ? 'nothing' : describeValue(b.deviceId)}` };
  } else if (pinnedDevice !== null && b.deviceId !== pinnedDevice) {
    return { code: 'SLUICE_E_DEVICE_MISMATCH', reason: `deviceId: ${JSON.stringify(b.deviceId)} on a connection pinned to ${JSON.stringify(pinnedDevice)}` };
  } else deviceId = b.deviceId;

  const tsBytes = b.timestamps;
  if (tsBytes.byteLength === 0 || tsBytes.byteLength % 8 !== 0) {
    return { code: 'SLUICE_E_BAD_COLUMNAR', reason: `timestamps: ${tsBytes.byteLength} bytes is not a positive multiple of 8 (float64 little-endian)` };
  }
  const rows = tsBytes.byteLength / 8;
  if (rows > limits.batchEventsMax) {
    return { code: 'SLUICE_E_BATCH_TOO_LARGE', reason: `timestamps: ${rows} rows, more than the ${limits.batchEventsMax} events a batch may hold` };
  }
  const names: string[] = [];
  const columns: Uint8Array[] = [];
  for (const name in b.metrics) {
    const col = b.metrics[name];
    if (!isValidMetricName(name)) {
      return { code: 'SLUICE_E_BAD_METRIC_NAME', reason: `metrics: name ${JSON.stringify(name)} must be 1-${METRIC_NAME_LENGTH_MAX} characters of [A-Za-z0-9_.]` };
    }
    if (!(col instanceof Uint8Array) || col.byteLength !== tsBytes.byteLength) {
      return { code: 'SLUICE_E_BAD_COLUMNAR', reason: `metrics.${name}: must be a bin of ${tsBytes.byteLength} bytes (one float64 per timestamp)` };
    }
    names.push(name);
    columns.push(col);
  }
  if (names.length === 0) return { code: 'SLUICE_E_NO_METRICS', reason: 'metrics: the columnar batch carries no metric' };
  if (names.length > limits.metricsPerEventMax) {
    return { code: 'SLUICE_E_TOO_MANY_METRICS', reason: `metrics: ${names.length} metrics, more than ${limits.metricsPerEventMax}` };
  }

  let rowOk: Uint8Array | null = null;
  const rejections: Rejection[] = [];
  const futureMax = nowMs + limits.futureSkewMs;
  const msMin = epochMsMin(precision);
  const timestamps = precision === null || precision === 'ms' ? tsBytes : toMsColumn(tsBytes, precision);
  const tv = new DataView(timestamps.buffer, timestamps.byteOffset, timestamps.byteLength);
  for (let i = 0; i < rows; i++) {
    const ts = tv.getFloat64(i * 8, true);
    // negated so that NaN fails too
    if (!(ts >= msMin && ts <= futureMax)) {
      rowOk = markBad(rowOk, rows, i);
      const raw = new DataView(tsBytes.buffer, tsBytes.byteOffset, tsBytes.byteLength).getFloat64(i * 8, true);
      const p = numericTimestampProblem(`timestamps[${i}]`, raw, precision, futureMax, limits.futureSkewMs);
      rejections.push({ index: i, code: p.code, reason: p.reason });
    }
  }
  for (let m = 0; m < columns.length; m++) {
    const col = columns[m];
    const cv = new DataView(col.buffer, col.byteOffset, col.byteLength);
    for (let i = 0; i < rows; i++) {
      const v = cv.getFloat64(i * 8, true);
      if (v - v !== 0 && (rowOk === null || rowOk[i] === 1)) {
        rowOk = markBad(rowOk, rows, i);
        rejections.push({ index: i, code: 'SLUICE_E_BAD_METRIC_VALUE', reason: `metrics.${names[m]}[${i}]: must be a finite number, got ${v}` });
      }
    }
  }
  if (rejections.length > 1) rejections.sort((a, b2) => a.index - b2.index);
  return { deviceId, rows, names, timestamps, columns, rowOk, rejections };
}

/** The timestamps column converted to epoch ms, as little-endian f64. */
function toMsColumn(tsBytes: Uint8Array, precision: TimePrecision): Uint8Array {
  const rows = tsBytes.byteLength / 8;
  const out = new Uint8Array(tsBytes.byteLength);
  const from = new DataView(tsBytes.buffer, tsBytes.byteOffset, tsBytes.byteLength);
  const to = new DataView(out.buffer);
  for (let i = 0; i < rows; i++) to.setFloat64(i * 8, toEpochMs(from.getFloat64(i * 8, true), precision), true);
  return out;
}

function markBad(rowOk: Uint8Array | null, rows: number, i: number): Uint8Array {
  const ok = rowOk ?? new Uint8Array(rows).fill(1);
  ok[i] = 0;
  return ok;
}

export function isColumnarFault(v: ColumnarRows | ColumnarFault): v is ColumnarFault {
  return (v as ColumnarFault).code !== undefined;
}
