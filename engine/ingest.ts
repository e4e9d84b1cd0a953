/**
 * Admission: decides, before anyone answers the client, what happens to every event of a batch,
 * and carries the accepted ones to the WAL and the shard rings.
 *
 * Front-end thread only. submit() decodes, checks the device sequence, validates every event into
 * a reused EventScratch, stages the valid ones per shard, reserves them in the rings under the
 * batch sequence of the commit pipeline's open group (or the next sequence, which opens one) and
 * joins them to that group: the batches of one group share one WAL entry and one commit. `done`
 * runs once with the outcome (synchronously for refusals and fast acks, after the group's WAL
 * commit for durable acks). A batch refused whole (ring full, storage) leaves the group as it was.
 *
 * Device sequences (exactly-once from the device): a batch may carry a per-device seq. The first
 * seq a device sends sets its start; then seq <= last is acknowledged as a duplicate and not
 * applied, seq > last + 1 is refused (SEQUENCE_GAP, expected = last + 1), so a client resends from
 * the gap. A device has at most one seq'd batch in the pipeline: the next one waits (held, bytes
 * copied) until the previous is durable or failed, so the WAL holds each device's seqs without
 * holes and `last` is exact after a failure. A batch refused whole does not consume its seq.
 *
 * Two decoders, one outcome: msgpack and JSON bodies of the common shapes are scanned from their
 * bytes (protocol/msgpack-events.ts, json-events.ts) and staged with no object per event
 * (admitPacked); the others, and any body or event the scanners do not take, go through codecs.ts
 * and EventScratch as before. Both give the same answers and the same readings, by construction
 * (a scanner accepts an event only where the generic path would, with the same values) and by
 * test (test/engine/ingest.test.ts runs both side by side on random bodies).
 */

import {
  type ContentKind, type DecodedBatch, type TimePrecision, type EventLimits, type Rejection, type ErrorCode, type ColumnarRows,
  EventScratch, LineParseFailure, describeValue, validateColumnar, isColumnarFault, isValidDeviceId, isBodyError,
  decodeJson, decodeMsgpack, decodeNdjson, epochMsMin, toEpochMs,
  MsgpackEventReader, JsonEventReader, PackedEvent, SCAN_OK, SCAN_SLOW, SCAN_FRAME, SCAN_END, bytesEqual, asciiString,
  type EventScanner, type LineProtocolOptions, LineProtocolReader, decodeLineProtocol, lineProtocolEventLines, lineProtocolReason,
} from '../protocol';
import { NameCache } from './name-cache';
import type { RecordBytes } from '../storage';
import type { BatchStager, DetachedBatch } from './batch-stager';
import type { CommitPipeline } from './commit-pipeline';
import type { Dictionary } from './dictionary';
import type { FaultGuard } from './fault-guard';

export type IngestStatus = 'accepted' | 'partial' | 'duplicate' | 'none-valid' | 'refused' | 'gap' | 'backpressure' | 'unavailable' | 'forbidden';

export interface IngestRequest {
  kind: ContentKind;
  /** may be a view valid only during submit(): it is copied if the batch has to wait */
  body: Uint8Array;
  /** the device a WebSocket connection is pinned to */
  pinned: string | null;
  /** the HTTP Sluice-Device-Seq header, parsed */
  deviceSeq: number | null;
  /** how long to wait for ring space before answering backpressure (0: answer at once) */
  waitMs: number;
  /** the unit of numeric timestamps (`?precision=`), null: unqualified epoch ms */
  precision: TimePrecision | null;
  /** kind 'lineprotocol': the device tag and the request's precision (`precision` above is its lpTimePrecision) */
  lineProtocol?: LineProtocolOptions;
  /**
   * A device token's request (engine/auth.ts): pinned to its device, and a batch with an event
   * of another device is refused whole, 'forbidden' (SLUICE_E_FORBIDDEN), not kept in part.
   */
  forbidOthers?: boolean;
}

export interface IngestOutcome {
  status: IngestStatus;
  accepted: number;
  rejections: Rejection[];
  code: ErrorCode | null;
  reason: string;
  /** the batch's own label: envelope/columnar seq, or null */
  label: number | null;
  /** for 'gap': the device sequence expected next */
  expected: number | null;
}

export type IngestDone = (o: IngestOutcome) => void;

interface Held {
  req: IngestRequest;
  done: IngestDone;
}

const NO_REJECTIONS: Rejection[] = [];
const NO_BODY = new Uint8Array(0);
// protocol/index re-exports through getters (tsc's `export *`): a read of one costs a call. The
// hot loop of admitPacked reads these module constants instead (the getter was 7.9 % of the
// front-end thread on ws-msgpack when it read them through the index)
const OK = SCAN_OK;
const SLOW = SCAN_SLOW;
const FRAME = SCAN_FRAME;
const END = SCAN_END;
const toMs = toEpochMs;
const sameAscii = bytesEqual;
const ascii = asciiString;
const RETRY_INTERVAL_MS = 2;
const HELD_PER_DEVICE_MAX = 256;
/**
 * Staged bytes that batches waiting for ring space may hold in all; past it a batch that finds
 * the rings full is refused at once (SLUICE_E_BACKPRESSURE), so clients that send without
 * waiting for their answers cannot grow the front-end's memory without bound.
 */
const WAITING_BYTES_MAX = 64 * 1024 * 1024;

function outcome(status: IngestStatus, code: ErrorCode | null, reason: string, label: number | null,
  accepted = 0, rejections = NO_REJECTIONS, expected: number | null = null): IngestOutcome {
  return { status, accepted, rejections, code, reason, label, expected };
}

/**
 * A batch the byte scanners read the top of: its events are still bytes, scanned by admitPacked().
 * scanner: the reader positioned at the first event, count: events in the array.
 */
interface PackedBatch {
  seq: number | undefined;
  deviceId: string | undefined;
  count: number;
  scanner: EventScanner;
}

/** line protocol options when a request gives none (only tests submit line protocol without them) */
const LP_DEFAULTS: LineProtocolOptions = { deviceTag: 'host', precision: 'ns' };

export function decodeBody(kind: ContentKind, body: Uint8Array, lp?: LineProtocolOptions): DecodedBatch | { code: ErrorCode; reason: string } {
  switch (kind) {
    case 'msgpack': return decodeMsgpack(body);
    case 'json': return decodeJson(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
    case 'ndjson': return decodeNdjson(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
    case 'lineprotocol': return decodeLineProtocol(body, lp ?? LP_DEFAULTS, Date.now());
  }
}

export class Ingest {
  private readonly scratch: EventScratch;
  /** next batch sequence (the WAL key) */
  nextSeq = 1;
  /** last admitted device seq by device id, -1 = none */
  private lastSeq = new Float64Array(1024).fill(-1);
  private pendingSeq = new Uint8Array(1024);
  private readonly held = new Map<number, Held[]>();
  // the fast path (plain msgpack maps and records, JSON arrays and envelopes): one reader per codec,
  // one scanned event and the byte-keyed id caches, all reused from frame to frame
  private readonly msgpackReader = new MsgpackEventReader();
  private readonly jsonReader = new JsonEventReader();
  private readonly lpReader = new LineProtocolReader();
  private readonly packed: PackedEvent;
  private readonly metricIds: Int32Array;
  private readonly deviceCache = new NameCache();
  private readonly metricCache = new NameCache();
  /**
   * per metric slot, the frame offset of the name last resolved there and its id: a record's keys
   * sit at one offset for every event of a frame, so most names resolve without a hash lookup
   * (reset per frame; a map's keys miss and take the cache)
   */
  private readonly memoAt: Int32Array;
  private readonly memoId: Int32Array;
  accepting = true;
  /** false: every body takes the generic codecs (the equivalence tests run both paths side by side) */
  scanners = true;
  /** staged bytes of the batches waiting for ring space (bounded by WAITING_BYTES_MAX) */
  private waitingBytes = 0;
  readonly counters = { batches: 0, eventsAccepted: 0, eventsRejected: 0, batchesRefused: 0, backpressure: 0, duplicates: 0, gaps: 0, unavailable: 0 };
  /** events rejected (not batches refused whole), by error code: GET /metrics */
  readonly rejectedByCode: Record<string, number> = {};

  constructor(private readonly limits: EventLimits, private readonly dict: Dictionary,
    private readonly stager: BatchStager, private readonly pipeline: CommitPipeline, private readonly guard: FaultGuard) {
    this.scratch = new EventScratch(limits);
    this.packed = new PackedEvent(limits.metricsPerEventMax);
    this.metricIds = new Int32Array(limits.metricsPerEventMax);
    this.memoAt = new Int32Array(limits.metricsPerEventMax);
    this.memoId = new Int32Array(limits.metricsPerEventMax);
  }

  /** Device seqs as recovered from storage. */
  restoreDeviceSeq(deviceId: number, seq: number): void {
    this.growSeqTables(deviceId);
    this.lastSeq[deviceId] = seq;
  }

  submit(req: IngestRequest, done: IngestDone): void {
    if (!this.accepting) {
      this.counters.unavailable++;
      done(outcome('unavailable', 'SLUICE_E_SHUTTING_DOWN', 'the engine is shutting down: send again after it restarts', null));
      return;
    }
    // the common frames are scanned from their bytes (admitPacked); the others, and every frame the
    // scanners give up on, are decoded whole by codecs.ts as before
    if (req.kind !== 'ndjson' && this.scanners) {
      let scanner: EventScanner;
      if (req.kind === 'msgpack') scanner = this.msgpackReader;
      else if (req.kind === 'json') scanner = this.jsonReader;
      else {
        this.lpReader.configure(req.lineProtocol ?? LP_DEFAULTS, Date.now());
        scanner = this.lpReader;
      }
      const top = scanner.frame(req.body);
      if (top !== null) {
        this.submitBatch({ seq: top.seq, deviceId: top.deviceId, count: top.count, scanner }, req, done);
        return;
      }
    }
    this.submitSlow(req, done);
  }

  /**
   * Submits events another decoder built (Prometheus remote-write): validated as the generic path
   * validates a decoded body, one rejection per bad event (index = its position in `events`). No
   * device sequence: a sender that retries a request whose answer it lost may count it twice; the
   * route documents that.
   */
  submitEvents(events: unknown[], precision: TimePrecision | null, waitMs: number, done: IngestDone): void {
    if (!this.accepting) {
      this.counters.unavailable++;
      done(outcome('unavailable', 'SLUICE_E_SHUTTING_DOWN', 'the engine is shutting down: send again after it restarts', null));
      return;
    }
    const req: IngestRequest = { kind: 'json', body: NO_BODY, pinned: null, deviceSeq: null, waitMs, precision };
    this.submitBatch({ seq: undefined, deviceId: undefined, events, columnar: null }, req, done);
  }

  /** Decodes the whole body with codecs.ts (the generic path) and submits it. */
  private submitSlow(req: IngestRequest, done: IngestDone): void {
    const batch = decodeBody(req.kind, req.body, req.lineProtocol);
    if (isBodyError(batch)) {
      this.counters.batchesRefused++;
      done(outcome('refused', batch.code, batch.reason, null));
      return;
    }
    this.submitBatch(batch, req, done);
  }

  /**
   * The device and device-sequence checks of a decoded or scanned batch, then admission. A scanned
   * batch that would be refused here is decoded whole first (submitSlow): a frame that does not
   * parse is refused as a bad body before anything else, as the generic path does.
   */
  private submitBatch(batch: DecodedBatch | PackedBatch, req: IngestRequest, done: IngestDone): void {
    const isPacked = (batch as PackedBatch).scanner !== undefined;
    const label = batch.seq ?? null;
    let pinned = req.pinned;
    if (batch.deviceId !== undefined) {
      const d = batch.deviceId;
      if (typeof d !== 'string' || !isValidDeviceId(d)) {
        if (isPacked) return this.submitSlow(req, done);
        done(this.refuse('SLUICE_E_BAD_DEVICE_ID', `deviceId: must be 1-128 characters of [A-Za-z0-9_.:-], got ${describeValue(d)}`, label));
        return;
      }
      if (pinned !== null && d !== pinned) {
        if (isPacked) return this.submitSlow(req, done);
        done(this.refuse('SLUICE_E_DEVICE_MISMATCH', `deviceId: ${JSON.stringify(d)} on a connection pinned to ${JSON.stringify(pinned)}`, label));
        return;
      }
      pinned = d;
    }
    // a device seq: the HTTP header, or the seq of a batch that names one device
    let deviceSeq = req.deviceSeq;
    if (deviceSeq === null && label !== null && pinned !== null) deviceSeq = label;
    if (deviceSeq === null) {
      if (!this.admit(batch, pinned, label, -1, -1, req, done)) this.submitSlow(req, done);
      return;
    }
    if (pinned === null) {
      // the first event's deviceId: read by the generic decoder (a seq'd batch without a pinned device is rare)
      if (isPacked) return this.submitSlow(req, done);
      const b = batch as DecodedBatch;
      const first = b.events !== null && b.events.length > 0 ? (b.events[0] as { deviceId?: unknown } | null)?.deviceId : undefined;
      if (typeof first !== 'string' || !isValidDeviceId(first)) {
        done(this.refuse('SLUICE_E_BAD_SEQUENCE', 'Sluice-Device-Seq: a batch with a device sequence must name one device (every event the same deviceId)', label));
        return;
      }
      pinned = first;
    }
    const dev = this.dict.device(pinned);
    if (dev < 0) {
      if (isPacked) return this.submitSlow(req, done);
      done(this.refuse('SLUICE_E_DEVICE_LIMIT', `deviceId: ${JSON.stringify(pinned)} is a new device and the engine holds its maximum (--devices-max)`, label));
      return;
    }
    this.growSeqTables(dev);
    if (this.pendingSeq[dev] !== 0) {
      this.hold(dev, req, done, label);
      return;
    }
    const last = this.lastSeq[dev];
    if (isPacked && last >= 0 && (deviceSeq <= last || deviceSeq > last + 1)) return this.submitSlow(req, done);
    if (last >= 0 && deviceSeq <= last) {
      this.counters.duplicates++;
      done(outcome('duplicate', null, `device sequence ${deviceSeq} was already admitted (last ${last})`, label ?? deviceSeq));
      return;
    }
    if (last >= 0 && deviceSeq > last + 1) {
      this.counters.gaps++;
      done(outcome('gap', 'SLUICE_E_SEQUENCE_GAP', `device sequence ${deviceSeq} skips ahead: expected ${last + 1}; resend from ${last + 1}`, label ?? deviceSeq, 0, NO_REJECTIONS, last + 1));
      return;
    }
    this.pendingSeq[dev] = 1;
    const admitted = this.admit(batch, pinned, label, dev, deviceSeq, req, (o) => {
      this.pendingSeq[dev] = 0;
      if (o.status === 'accepted' || o.status === 'partial') {
        if (this.lastSeq[dev] < deviceSeq) this.lastSeq[dev] = deviceSeq;
      }
      done(o);
      this.releaseHeld(dev);
    });
    if (!admitted) {
      // the scanner gave up before anything was decided: the generic path takes it from the top
      this.pendingSeq[dev] = 0;
      this.submitSlow(req, done);
    }
  }

  private hold(dev: number, req: IngestRequest, done: IngestDone, label: number | null): void {
    let q = this.held.get(dev);
    if (q === undefined) {
      q = [];
      this.held.set(dev, q);
    }
    if (q.length >= HELD_PER_DEVICE_MAX) {
      this.counters.backpressure++;
      done(outcome('backpressure', 'SLUICE_E_BACKPRESSURE', `more than ${HELD_PER_DEVICE_MAX} batches of this device wait for the WAL: send this one again`, label));
      return;
    }
    q.push({ req: { ...req, body: new Uint8Array(req.body) }, done });
  }

  /** Submits the device's waiting batches until one of them is pending again (or none is left). */
  private releaseHeld(dev: number): void {
    const q = this.held.get(dev);
    if (q === undefined) return;
    while (q.length > 0 && this.pendingSeq[dev] === 0) {
      const next = q.shift() as Held;
      this.submit(next.req, next.done);
    }
    if (q.length === 0 && this.held.get(dev) === q) this.held.delete(dev);
  }

  /**
   * Admits the batch. False only when a scanned batch was given up before anything was staged or
   * answered (done not called): the caller submits it again through the generic path, from the
   * top, since what the scanner read of the envelope may not be the whole of it (a JSON envelope
   * with keys after "events").
   */
  private admit(batch: DecodedBatch | PackedBatch, pinned: string | null, label: number | null, seqDevice: number,
    deviceSeq: number, req: IngestRequest, done: IngestDone): boolean {
    if ((batch as PackedBatch).scanner !== undefined) return this.admitPacked(batch as PackedBatch, pinned, label, seqDevice, deviceSeq, req, done);
    this.admitDecoded(batch as DecodedBatch, pinned, label, seqDevice, deviceSeq, req, done);
    return true;
  }

  /**
   * The fast path: scans the events from the frame's bytes, validates and stages each one with no
   * object per event (ids through the byte-keyed caches). An event the scanner does not take is
   * decoded alone and validated by EventScratch (same rejections, same wording). A frame it gives
   * up on (malformed, unusual, empty, too large) is dropped from the stager and false returned,
   * before anything is answered: the caller submits it again through the generic path.
   */
  private admitPacked(batch: PackedBatch, pinned: string | null, label: number | null, seqDevice: number,
    deviceSeq: number, req: IngestRequest, done: IngestDone): boolean {
    // an empty or oversized array: the generic path words it (and checks the bytes first)
    const eventsMax = this.limits.batchEventsMax;
    if (batch.count === 0 || batch.count > eventsMax) return false;
    const r = batch.scanner;
    const ev = this.packed;
    const scratch = this.scratch;
    const stager = this.stager;
    const ids = this.metricIds;
    const memoAt = this.memoAt;
    const memoId = this.memoId;
    memoAt.fill(-1);
    const body = req.body;
    const precision = req.precision;
    stager.begin();
    const now = Date.now();
    const msMin = epochMsMin(precision);
    const futureMax = now + this.limits.futureSkewMs;
    scratch.precision = precision;
    // the pinned device's id, interned with the first event that uses it (-2: not yet)
    let pinnedId = -2;
    let rejections = NO_REJECTIONS;
    let i = 0;
    for (;; i++) {
      let st = r.next(ev);
      if (st === END) break;
      if (i === eventsMax) st = FRAME;
      if (st === OK) {
        const ts = precision === null ? ev.tsRaw : toMs(ev.tsRaw, precision);
        let dev = -1;
        // negated so that NaN fails too; a failing event is worded by the generic path
        if (!(ts >= msMin && ts <= futureMax)) st = SLOW;
        else if (pinned !== null) {
          if (ev.deviceAt < 0 || sameAscii(body, ev.deviceAt, ev.deviceLen, pinned)) {
            if (pinnedId === -2) pinnedId = this.dict.device(pinned);
            dev = pinnedId;
          }
        } else if (ev.deviceAt >= 0) dev = this.deviceOf(body, ev);
        if (dev < 0) st = SLOW;
        else if (st === OK) {
          const n = ev.metricCount;
          for (let m = 0; m < n; m++) {
            const at = ev.nameAt[m];
            if (memoAt[m] === at) ids[m] = memoId[m];
            else {
              ids[m] = this.metricOf(r.nameBytes, ev, m);
              memoAt[m] = at;
              memoId[m] = ids[m];
            }
          }
          stager.stagePacked(dev, ts, ids, ev.values, n);
        }
      }
      if (st === SLOW) {
        let raw: unknown;
        try {
          raw = r.slowEvent();
        } catch {
          st = FRAME;
        }
        if (st === SLOW) {
          // a line protocol line that does not parse (the other scanners' slowEvent throws instead)
          let ok = raw instanceof LineParseFailure ? scratch.fail('SLUICE_E_BAD_BODY', raw.reason) : scratch.validate(raw, pinned, now);
          if (ok && !stager.stageEvent(scratch)) ok = scratch.fail('SLUICE_E_DEVICE_LIMIT', `deviceId: ${JSON.stringify(scratch.deviceId)} is a new device and the engine holds its maximum (--devices-max)`);
          if (!ok) {
            if (rejections === NO_REJECTIONS) rejections = [];
            rejections.push({ index: i, code: scratch.errorCode, reason: scratch.errorReason });
          }
        }
      }
      if (st === FRAME) {
        stager.abandon();
        return false;
      }
    }
    if (i === 0 || !r.atEnd) {
      stager.abandon();
      return false;
    }
    if (rejections.length !== 0 && req.kind === 'lineprotocol') numberLines(rejections, req);
    this.reserve(i, rejections, label, seqDevice, deviceSeq, req, done);
    return true;
  }

  /** A device id from the frame's bytes: the cache, else the dictionary (-1 at --devices-max). */
  private deviceOf(body: Uint8Array, ev: PackedEvent): number {
    const id = this.deviceCache.lookup(body, ev.deviceAt, ev.deviceLen, ev.deviceHash);
    if (id >= 0) return id;
    const interned = this.dict.device(ascii(body, ev.deviceAt, ev.deviceLen));
    if (interned >= 0) this.deviceCache.insert(body, ev.deviceAt, ev.deviceLen, ev.deviceHash, interned);
    return interned;
  }

  /** A metric id from the scanner's name bytes (EventScanner.nameBytes): the cache, else the dictionary. */
  private metricOf(names: Uint8Array, ev: PackedEvent, m: number): number {
    const at = ev.nameAt[m];
    const len = ev.nameLen[m];
    const h = ev.nameHash[m];
    const id = this.metricCache.lookup(names, at, len, h);
    if (id >= 0) return id;
    const interned = this.dict.metric(ascii(names, at, len));
    this.metricCache.insert(names, at, len, h, interned);
    return interned;
  }

  /** Validates and stages the batch, then reserves and submits it (or answers why not). */
  private admitDecoded(batch: DecodedBatch, pinned: string | null, label: number | null, seqDevice: number,
    deviceSeq: number, req: IngestRequest, done: IngestDone): void {
    this.stager.begin();
    const now = Date.now();
    let rejections = NO_REJECTIONS;
    let total: number;
    if (batch.columnar !== null) {
      const rows = validateColumnar(batch.columnar, pinned, now, this.limits, req.precision);
      if (isColumnarFault(rows)) {
        done(this.refuse(rows.code, rows.reason, label));
        return;
      }
      total = rows.rows;
      if (rows.rejections.length !== 0) rejections = rows.rejections;
      if (rows.rejections.length < rows.rows && !this.stager.stageColumnar(rows as ColumnarRows)) {
        done(this.refuse('SLUICE_E_DEVICE_LIMIT', `deviceId: ${JSON.stringify(rows.deviceId)} is a new device and the engine holds its maximum (--devices-max)`, label));
        return;
      }
    } else {
      const events = batch.events as unknown[];
      total = events.length;
      if (total === 0) {
        done(this.refuse('SLUICE_E_NO_VALID_EVENT', 'events: the batch is empty', label));
        return;
      }
      if (total > this.limits.batchEventsMax) {
        done(this.refuse('SLUICE_E_BATCH_TOO_LARGE', `events: ${total} events, more than the ${this.limits.batchEventsMax} a batch may hold`, label));
        return;
      }
      const ev = this.scratch;
      ev.precision = req.precision;
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
    if (rejections.length !== 0 && req.kind === 'lineprotocol') numberLines(rejections, req);
    this.reserve(total, rejections, label, seqDevice, deviceSeq, req, done);
  }

  /** The staged batch: answered when nothing is valid or storage refuses it, else reserved and committed. */
  private reserve(total: number, rejections: Rejection[], label: number | null, seqDevice: number,
    deviceSeq: number, req: IngestRequest, done: IngestDone): void {
    const waitMs = req.waitMs;
    const accepted = this.stager.eventsStaged;
    this.counters.batches++;
    if (req.forbidOthers === true) {
      const other = rejections.find((r) => r.code === 'SLUICE_E_DEVICE_MISMATCH');
      if (other !== undefined) {
        this.stager.abandon();
        this.counters.batchesRefused++;
        done(outcome('forbidden', 'SLUICE_E_FORBIDDEN', `event ${other.index}: a device token may only send its own device's events (${other.reason})`, label));
        return;
      }
    }
    // rejections are rare: a loop over them here costs nothing on the accepted path
    for (let i = 0; i < rejections.length; i++) {
      const code = rejections[i].code;
      this.rejectedByCode[code] = (this.rejectedByCode[code] ?? 0) + 1;
    }
    if (accepted === 0) {
      this.counters.eventsRejected += total;
      const first = rejections[0];
      done(outcome('none-valid', first?.code ?? 'SLUICE_E_NO_VALID_EVENT', first ? `no valid event: ${first.reason}` : 'no valid event', label, 0, rejections));
      return;
    }
    const refusal = this.pipeline.refusal(this.stager.stagedBytes, accepted);
    if (refusal !== null) {
      this.counters.unavailable++;
      done(outcome('unavailable', this.pipeline.faultReason !== null ? 'SLUICE_E_STORAGE_FAULT' : 'SLUICE_E_STORAGE_FULL', refusal, label));
      return;
    }
    const result = outcome(rejections.length === 0 ? 'accepted' : 'partial', null, '', label, accepted, rejections);
    this.counters.eventsRejected += total - accepted;
    const seq = this.batchSeq();
    if (this.stager.tryReserve(seq)) {
      this.commit(seq, this.stager.records, seqDevice, deviceSeq, result, done);
      return;
    }
    this.counters.backpressure++;
    if (waitMs <= 0 || this.waitingBytes + this.stager.stagedBytes > WAITING_BYTES_MAX) {
      done(outcome('backpressure', 'SLUICE_E_BACKPRESSURE', 'the shard rings are full: nothing of this batch was accepted, send it again', label, 0, rejections));
      return;
    }
    const d = this.stager.detach();
    const bytes = detachedBytes(d);
    this.waitingBytes += bytes;
    this.waitForRoom(d, seqDevice, deviceSeq, result, Date.now() + waitMs, (o) => {
      this.waitingBytes -= bytes;
      done(o);
    });
  }

  /**
   * The seq a batch is reserved under: the open group's (every batch of an event-loop turn shares
   * one WAL entry), else the next one, which the batch's commit() takes.
   */
  private batchSeq(): number {
    const open = this.pipeline.groupSeq;
    return open >= 0 ? open : this.nextSeq;
  }

  /** Hands a batch reserved under seq to the open group (opening one under the next seq). */
  private commit(seq: number, records: readonly RecordBytes[], seqDevice: number, deviceSeq: number, result: IngestOutcome, done: IngestDone): void {
    if (seq === this.nextSeq) this.nextSeq++;
    // the device's seq is stored with the group's WAL entry, in its transaction
    this.pipeline.join(seq, records, this.stager.startCursors, this.stager.endCursors, seqDevice, deviceSeq, (ok, reason) => {
      if (ok) {
        this.counters.eventsAccepted += result.accepted;
        done(result);
      } else {
        this.counters.unavailable++;
        done(outcome('unavailable', 'SLUICE_E_STORAGE_FAULT', reason, result.label, 0, result.rejections));
      }
    }, result.accepted);
  }

  /** Retries a batch that found a ring full until the rings take it or the wait is over. */
  private waitForRoom(d: DetachedBatch, seqDevice: number, deviceSeq: number, result: IngestOutcome,
    deadline: number, done: IngestDone): void {
    const seq = this.batchSeq();
    if (this.stager.tryReserveDetached(d, seq)) {
      this.commit(seq, this.stager.detachedRecords(d), seqDevice, deviceSeq, result, done);
      return;
    }
    if (!this.accepting || Date.now() >= deadline) {
      done(outcome('backpressure', 'SLUICE_E_BACKPRESSURE', 'the shard rings stayed full: nothing of this batch was accepted, send it again', result.label, 0, result.rejections));
      return;
    }
    setTimeout(() => {
      // a timer is outside every uWS callback: a throw here would end the process
      try {
        this.waitForRoom(d, seqDevice, deviceSeq, result, deadline, done);
      } catch (err) {
        this.guard.report(err, 'a batch waiting for ring space');
      }
    }, RETRY_INTERVAL_MS);
  }

  private refuse(code: ErrorCode, reason: string, label: number | null): IngestOutcome {
    this.counters.batchesRefused++;
    return outcome('refused', code, reason, label);
  }

  private growSeqTables(id: number): void {
    if (id < this.lastSeq.length) return;
    let n = this.lastSeq.length;
    while (n <= id) n *= 2;
    const last = new Float64Array(n).fill(-1);
    last.set(this.lastSeq);
    this.lastSeq = last;
    const pending = new Uint8Array(n);
    pending.set(this.pendingSeq);
    this.pendingSeq = pending;
  }
}

function detachedBytes(d: DetachedBatch): number {
  let n = 0;
  for (const r of d.records) if (r !== null) n += r.byteLength;
  return n;
}

/**
 * Line protocol rejections name their line (`line N: `, blank lines and comments counted) and the
 * device tag rather than deviceId. Run while the body is still readable (it may be a uWS view
 * that is gone by the time a durable answer is sent); only for a batch with rejections.
 */
function numberLines(rejections: Rejection[], req: IngestRequest): void {
  const opts = req.lineProtocol ?? LP_DEFAULTS;
  const lines = lineProtocolEventLines(req.body, opts);
  for (const r of rejections) r.reason = lineProtocolReason(r.reason, lines[r.index] ?? r.index + 1, opts.deviceTag);
}
