/**
 * Prometheus remote-write 1.0: POST /api/v1/write, a snappy-compressed (block format) protobuf
 * WriteRequest. protocol/remote-write.ts reads the bytes, protocol/remote-write-events.ts maps the
 * series onto events (one per sample), Ingest.submitEvents admits them like any batch.
 *
 * Answers, per the spec's retry rules (Prometheus retries 5xx, never 2xx or 4xx other than 429):
 * - 204 every reading written (and durable, in durable ack mode: answered after the WAL commit).
 *   Staleness markers, other NaN/±Inf values, native histograms, exemplars and metadata are no
 *   readings Sluice can aggregate: skipped, counted in the `Sluice-Remote-Write` header and in
 *   remoteWriteCounters, not refused.
 * - 400 a body that does not decompress or decode (nothing kept), or a request with invalid
 *   samples (no device label, no or too long a name, a timestamp Sluice refuses): the spec says
 *   "MUST return 400 for write requests that contain any invalid samples" and lets the receiver
 *   keep the valid ones, which Sluice does. The body names the first reasons and the counts.
 * - 413 over --body-max as sent, or as the snappy preamble announces it decompressed (checked
 *   before decompressing); 415 another Content-Type (a remote-write 2.0 request: Prometheus then
 *   falls back to 1.0) or a Content-Encoding other than snappy.
 * - 503 + Retry-After when retrying can help: rings full for --backpressure-wait, storage full
 *   or faulty, shutting down.
 *
 * A request of more readings than --batch-events-max is split into batches of at most that many,
 * all submitted in the same turn (so they join one WAL commit group), answered once all are done.
 * If one of them is refused with 503 after another was kept, a retry of the request writes the
 * kept part again: remote-write has no request id to deduplicate by (nor has a retry after a lost
 * answer). Front-end thread only.
 */

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { uncompressSync as Uncompress } from 'snappy';

let snappyUncompress: typeof Uncompress | null = null;

/** snappy's native module, loaded at the first remote-write request (~3 MB of RSS otherwise never held). */
function uncompressSync(...args: Parameters<typeof Uncompress>): ReturnType<typeof Uncompress> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  snappyUncompress ??= (require('snappy') as typeof import('snappy')).uncompressSync;
  return snappyUncompress(...args);
}
import {
  type ErrorCode,
  PromNameMapper, REFUSAL_REASONS_MAX, RefusalTally, WriteRequestDecoder, isWireFault, seriesText, snappyDecodedLength,
  type MappedRequest, type PromEvent, type SeriesView,
} from '../protocol';
import type { Ingest, IngestOutcome } from './ingest';
import { type Answerable, STATUS, errorBody, readBody, refuseOversized, sendError, sendJson } from './http-util';

export interface RemoteWriteOptions {
  bodyBytesMax: number;
  backpressureWaitMs: number;
  /** --prom-device-label */
  deviceLabel: string;
  /** --batch-events-max: a request with more readings is split into batches of this many (default 10,000) */
  batchEventsMax?: number;
}

const BATCH_EVENTS_DEFAULT = 10_000;
const RETRY_AFTER = { 'Retry-After': '1' };
/** the snappy framing format's stream identifier chunk: a sender that frames gets told so */
const SNAPPY_FRAMED_MAGIC = [0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59];

/** Counted since the start, for /metrics and for tests. */
export const remoteWriteCounters = {
  requests: 0, samplesWritten: 0, samplesRefused: 0, staleMarkers: 0, nonFinite: 0,
  histograms: 0, exemplars: 0, metadata: 0, labelsDropped: 0, badBodies: 0,
};

export function registerRemoteWriteRoutes(app: TemplatedApp, ingest: Ingest, opts: RemoteWriteOptions): void {
  const decoder = new WriteRequestDecoder();
  const mapper = new PromNameMapper(opts.deviceLabel);
  const batchMax = opts.batchEventsMax ?? BATCH_EVENTS_DEFAULT;
  app.post('/api/v1/write', (res: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    const contentType = req.getHeader('content-type');
    const encoding = req.getHeader('content-encoding');
    const contentLength = Number(req.getHeader('content-length') || '0');
    if (!isWriteRequestType(contentType)) {
      sendError(a, 415, 'SLUICE_E_UNSUPPORTED_MEDIA_TYPE',
        `Content-Type: ${JSON.stringify(contentType)} is not application/x-protobuf (a remote-write 1.0 prometheus.WriteRequest)`);
      return;
    }
    if (encoding !== '' && encoding.trim().toLowerCase() !== 'snappy') {
      sendError(a, 415, 'SLUICE_E_UNSUPPORTED_MEDIA_TYPE', `Content-Encoding: ${JSON.stringify(encoding)} is not snappy (remote-write bodies are snappy block format)`);
      return;
    }
    if (refuseOversized(a, contentLength, opts.bodyBytesMax)) return;
    readBody(a, contentLength, opts.bodyBytesMax, 'identity', (body) => {
      remoteWriteCounters.requests++;
      const plain = decompress(a, body, opts.bodyBytesMax);
      if (plain === null) return;
      const decoded = decoder.decode(plain);
      if (isWireFault(decoded)) {
        remoteWriteCounters.badBodies++;
        sendError(a, 400, 'SLUICE_E_BAD_BODY', `body: not a protobuf prometheus.WriteRequest: ${decoded.fault}`);
        return;
      }
      remoteWriteCounters.histograms += decoded.histograms;
      remoteWriteCounters.exemplars += decoded.exemplars;
      remoteWriteCounters.metadata += decoded.metadata;
      const mapped = mapper.map(decoded);
      const skipped: Skipped = { histograms: decoded.histograms, exemplars: decoded.exemplars, metadata: decoded.metadata };
      submitAll(ingest, mapped, decoded.series, skipped, batchMax, opts.backpressureWaitMs, (answer) => answer(a));
    });
  });
}

/** application/x-protobuf, with no proto= parameter or the 1.0 message's; also none at all (lenient senders). */
function isWriteRequestType(contentType: string): boolean {
  if (contentType === '' || contentType === 'application/x-protobuf') return true;
  const [type, ...params] = contentType.split(';').map((p) => p.trim().toLowerCase());
  if (type !== 'application/x-protobuf') return false;
  return params.every((p) => !p.startsWith('proto=') || p === 'proto=prometheus.writerequest');
}

/** The decompressed body, or null after answering 400 or 413. */
function decompress(a: Answerable, body: Uint8Array, bytesMax: number): Uint8Array | null {
  const fail = (reason: string): null => {
    remoteWriteCounters.badBodies++;
    sendError(a, 400, 'SLUICE_E_BAD_BODY', reason);
    return null;
  };
  if (body.byteLength === 0) return fail('body: empty (a remote-write body is a snappy-compressed WriteRequest)');
  if (SNAPPY_FRAMED_MAGIC.every((b, i) => body[i] === b)) return fail('body: snappy framing format; remote-write uses the snappy block format');
  const announced = snappyDecodedLength(body);
  if (announced < 0) return fail('body: not snappy-compressed (no block-format length preamble)');
  if (announced > bytesMax) {
    sendError(a, 413, 'SLUICE_E_BODY_TOO_LARGE', `body: ${announced} bytes once decompressed, more than ${bytesMax} (--body-max limits the decompressed size)`);
    return null;
  }
  let plain: Buffer;
  try {
    plain = uncompressSync(body, { asBuffer: true }) as Buffer;
  } catch (err) {
    return fail(`body: not snappy-compressed (block format): ${err instanceof Error ? err.message : 'unknown error'}`);
  }
  if (plain.byteLength !== announced) return fail(`body: snappy block announces ${announced} bytes and holds ${plain.byteLength}`);
  return plain;
}

interface Skipped {
  histograms: number;
  exemplars: number;
  metadata: number;
}

type Answer = (a: Answerable) => void;

/** Submits the readings in batches of at most batchMax and calls done once with the answer for all. */
function submitAll(ingest: Ingest, mapped: MappedRequest, series: SeriesView[], skipped: Skipped, batchMax: number,
  waitMs: number, done: (answer: Answer) => void): void {
  const events = mapped.events;
  const batches = Math.ceil(events.length / batchMax);
  if (batches === 0) {
    done(answerFor(mapped, series, skipped, [], batchMax));
    return;
  }
  const outcomes: IngestOutcome[] = new Array<IngestOutcome>(batches);
  let pending = batches;
  for (let b = 0; b < batches; b++) {
    const part: PromEvent[] = batches === 1 ? events : events.slice(b * batchMax, (b + 1) * batchMax);
    ingest.submitEvents(part, 'ms', waitMs, (o) => {
      outcomes[b] = o;
      if (--pending === 0) done(answerFor(mapped, series, skipped, outcomes, batchMax));
    });
  }
}

/** The one answer of a request from its batches' outcomes (see the module header). */
function answerFor(mapped: MappedRequest, series: SeriesView[], skipped: Skipped, outcomes: IngestOutcome[], batchMax: number): Answer {
  const tally = mapped.refusals;
  let written = 0;
  let unavailable: IngestOutcome | null = null;
  for (let b = 0; b < outcomes.length; b++) {
    const o = outcomes[b];
    written += o.accepted;
    switch (o.status) {
      case 'backpressure':
      case 'unavailable':
        unavailable ??= o;
        break;
      case 'refused':
      case 'duplicate':
      case 'gap': {
        const size = Math.min(batchMax, mapped.events.length - b * batchMax);
        tally.add(o.code ?? 'SLUICE_E_NO_VALID_EVENT', `batch of ${size} readings: ${o.reason}`, size);
        break;
      }
      default:
        for (const r of o.rejections) {
          const s = series[mapped.eventSeries[b * batchMax + r.index]];
          tally.add(r.code, () => `series ${seriesText(s.labels)}: ${r.reason}`);
        }
    }
  }
  remoteWriteCounters.samplesWritten += written;
  remoteWriteCounters.samplesRefused += tally.total;
  remoteWriteCounters.staleMarkers += mapped.stale;
  remoteWriteCounters.nonFinite += mapped.nonFinite;
  remoteWriteCounters.labelsDropped += mapped.labelsDropped;
  const summary = `written=${written} refused=${tally.total} stale=${mapped.stale} nonFinite=${mapped.nonFinite} ` +
    `histograms=${skipped.histograms} exemplars=${skipped.exemplars} metadata=${skipped.metadata} labelsDropped=${mapped.labelsDropped}`;
  const headers = { 'Sluice-Remote-Write': summary };
  if (unavailable !== null) {
    const kept = written > 0 ? ` (${written} readings of this request were kept: a retry writes them again)` : '';
    const body = errorBody(unavailable.code ?? 'SLUICE_E_INTERNAL', unavailable.reason + kept);
    return (a) => sendJson(a, 503, body, { ...RETRY_AFTER, ...headers });
  }
  if (tally.total > 0) {
    const body = refusalBody(tally, written);
    return (a) => sendJson(a, 400, body, headers);
  }
  return (a) => sendNoContent(a, headers);
}

/** One line (Prometheus logs the first line of a 4xx body, up to 1 KiB): the reasons first. */
function refusalBody(tally: RefusalTally, written: number): string {
  const byCode: Partial<Record<ErrorCode, number>> = {};
  for (const [code, n] of tally.byCode) byCode[code] = n;
  const more = tally.total > tally.first.length ? `; ${tally.total - tally.first.length} more` : '';
  const error = `${tally.total} samples refused, ${written} written (the valid ones are kept): ` +
    tally.first.map((f) => f.reason).join('; ') + more;
  return JSON.stringify({
    error, code: tally.first[0]?.code ?? 'SLUICE_E_NO_VALID_EVENT', written, refused: tally.total, refusedByCode: byCode,
    reasons: tally.first.slice(0, REFUSAL_REASONS_MAX),
  });
}

function sendNoContent(a: Answerable, headers: Record<string, string>): void {
  if (a.aborted) return;
  a.res.cork(() => {
    a.res.writeStatus(STATUS[204]);
    for (const k in headers) a.res.writeHeader(k, headers[k]);
    a.res.end();
  });
  a.aborted = true;
}
