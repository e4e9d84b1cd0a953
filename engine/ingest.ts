/**
 * Admission: turns a decoded batch into accepted events in the shard rings, and says truthfully
 * what happened to each event before anyone answers the client.
 *
 * Front-end thread only, synchronous: validate every event into a reused EventScratch, stage the
 * valid ones per shard, give the batch its admission sequence, commit to all rings at once.
 * The sequence is where the WAL append will go: a batch is numbered before it is routed.
 */

import {
  type DecodedBatch, type EventLimits, type Rejection, type ErrorCode, type ColumnarRows,
  EventScratch, LineParseFailure, validateColumnar, isColumnarFault, isValidDeviceId,
} from '../protocol';
import type { BatchStager, DetachedBatch } from './batch-stager';

export type IngestStatus = 'accepted' | 'partial' | 'none-valid' | 'refused' | 'backpressure';

export interface IngestOutcome {
  status: IngestStatus;
  accepted: number;
  rejections: Rejection[];
  /** for 'refused' (the batch as a whole is bad) and 'none-valid' */
  code: ErrorCode | null;
  reason: string;
  /** for 'backpressure' when the caller asked to keep the batch for a retry */
  detached: DetachedBatch | null;
}

export interface IngestCounters {
  batches: number;
  eventsAccepted: number;
  eventsRejected: number;
  batchesRefused: number;
  backpressure: number;
}

const NO_REJECTIONS: Rejection[] = [];

export class Ingest {
  private readonly scratch: EventScratch;
  private nextSeq = 1;
  readonly counters: IngestCounters = { batches: 0, eventsAccepted: 0, eventsRejected: 0, batchesRefused: 0, backpressure: 0 };

  constructor(private readonly limits: EventLimits, private readonly stager: BatchStager) {
    this.scratch = new EventScratch(limits);
  }

  /**
   * Admits one batch. pinnedDevice: the connection's device, or null. keepOnBackpressure: when
   * the rings are full, return the staged batch detached so the caller can retry it.
   */
  admit(batch: DecodedBatch, pinnedDevice: string | null, keepOnBackpressure: boolean): IngestOutcome {
    let pinned = pinnedDevice;
    if (batch.deviceId !== undefined) {
      const d = batch.deviceId;
      if (typeof d !== 'string' || !isValidDeviceId(d)) {
        return this.refuse('SLUICE_E_BAD_DEVICE_ID', `deviceId: must be 1-128 characters of [A-Za-z0-9_.:-], got ${JSON.stringify(d) ?? String(d)}`);
      }
      if (pinned !== null && d !== pinned) {
        return this.refuse('SLUICE_E_DEVICE_MISMATCH', `deviceId: ${JSON.stringify(d)} on a connection pinned to ${JSON.stringify(pinned)}`);
      }
      pinned = d;
    }
    this.stager.begin();
    const now = Date.now();
    let rejections = NO_REJECTIONS;
    let total: number;
    if (batch.columnar !== null) {
      const rows = validateColumnar(batch.columnar, pinned, now, this.limits);
      if (isColumnarFault(rows)) return this.refuse(rows.code, rows.reason);
      total = rows.rows;
      if (rows.rejections.length !== 0) rejections = rows.rejections;
      if (rows.rejections.length < rows.rows && !this.stager.stageColumnar(rows as ColumnarRows)) {
        return this.refuse('SLUICE_E_DEVICE_LIMIT', `deviceId: ${JSON.stringify(rows.deviceId)} is a new device and the engine holds its maximum (--devices-max)`);
      }
    } else {
      const events = batch.events as unknown[];
      total = events.length;
      if (total === 0) return this.refuse('SLUICE_E_NO_VALID_EVENT', 'events: the batch is empty');
      if (total > this.limits.batchEventsMax) {
        return this.refuse('SLUICE_E_BATCH_TOO_LARGE', `events: ${total} events, more than the ${this.limits.batchEventsMax} a batch may hold`);
      }
      const ev = this.scratch;
      for (let i = 0; i < total; i++) {
        const raw = events[i];
        let ok: boolean;
        if (raw instanceof LineParseFailure) ok = ev.fail('SLUICE_E_BAD_BODY', raw.reason);
        else ok = ev.validate(raw, pinned, now);
        if (ok && !this.stager.stageEvent(ev)) ok = ev.fail('SLUICE_E_DEVICE_LIMIT', `deviceId: ${JSON.stringify(ev.deviceId)} is a new device and the engine holds its maximum (--devices-max)`);
        if (!ok) {
          if (rejections === NO_REJECTIONS) rejections = [];
          rejections.push({ index: i, code: ev.errorCode, reason: ev.errorReason });
        }
      }
    }
    const accepted = this.stager.eventsStaged;
    this.counters.batches++;
    this.counters.eventsRejected += total - accepted;
    if (accepted === 0) {
      const first = rejections[0];
      return { status: 'none-valid', accepted: 0, rejections, code: first?.code ?? 'SLUICE_E_NO_VALID_EVENT', reason: first ? `no valid event: ${first.reason}` : 'no valid event', detached: null };
    }
    const seq = this.nextSeq++;
    if (!this.stager.tryCommit(seq)) {
      this.counters.backpressure++;
      return {
        status: 'backpressure', accepted: 0, rejections, code: 'SLUICE_E_BACKPRESSURE',
        reason: 'the shard rings are full: nothing of this batch was accepted, send it again',
        detached: keepOnBackpressure ? this.stager.detach() : null,
      };
    }
    this.counters.eventsAccepted += accepted;
    return { status: rejections.length === 0 ? 'accepted' : 'partial', accepted, rejections, code: null, reason: '', detached: null };
  }

  /** Retries a batch kept on backpressure; true when it is now accepted. */
  retry(d: DetachedBatch): boolean {
    if (!this.stager.tryCommitDetached(d)) return false;
    this.counters.eventsAccepted += d.events;
    return true;
  }

  refuse(code: ErrorCode, reason: string): IngestOutcome {
    this.counters.batchesRefused++;
    return { status: 'refused', accepted: 0, rejections: NO_REJECTIONS, code, reason, detached: null };
  }
}
