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
import { type EventLimits, isValidDeviceId, isValidMetricName, DEVICE_ID_LENGTH_MAX, METRIC_NAME_LENGTH_MAX } from './event';

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

export function validateColumnar(b: ColumnarBatch, pinnedDevice: string | null, nowMs: number,
  limits: EventLimits): ColumnarRows | ColumnarFault {
  let deviceId: string;
  if (b.deviceId === undefined && pinnedDevice !== null) deviceId = pinnedDevice;
  else if (typeof b.deviceId !== 'string' || !isValidDeviceId(b.deviceId)) {
    return { code: 'SLUICE_E_BAD_DEVICE_ID', reason: `deviceId: must be 1-${DEVICE_ID_LENGTH_MAX} characters of [A-Za-z0-9_.:-], got ${JSON.stringify(b.deviceId) ?? 'nothing'}` };
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
  const tv = new DataView(tsBytes.buffer, tsBytes.byteOffset, tsBytes.byteLength);
  for (let i = 0; i < rows; i++) {
    const ts = tv.getFloat64(i * 8, true);
    if (!(ts >= 0 && ts <= futureMax)) {
      rowOk = markBad(rowOk, rows, i);
      rejections.push(ts > futureMax && Number.isFinite(ts)
        ? { index: i, code: 'SLUICE_E_FUTURE_TIMESTAMP', reason: `timestamps[${i}]: ${new Date(ts).toISOString()} is more than ${limits.futureSkewMs} ms in the future` }
        : { index: i, code: 'SLUICE_E_BAD_TIMESTAMP', reason: `timestamps[${i}]: must be finite non-negative epoch milliseconds, got ${ts}` });
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
  return { deviceId, rows, names, timestamps: tsBytes, columns, rowOk, rejections };
}

function markBad(rowOk: Uint8Array | null, rows: number, i: number): Uint8Array {
  const ok = rowOk ?? new Uint8Array(rows).fill(1);
  ok[i] = 0;
  return ok;
}

export function isColumnarFault(v: ColumnarRows | ColumnarFault): v is ColumnarFault {
  return (v as ColumnarFault).code !== undefined;
}
