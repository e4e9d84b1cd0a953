/**
 * Messages between the front-end thread (engine/) and the shard workers (workers/).
 *
 * Contract: every task is a plain structured-clone-able object sent as a piscina task to the one
 * worker that owns a shard; every result is plain data too. Aggregates cross the thread boundary in
 * their mergeable wire form (WindowAggregateWire) so the engine can merge shards without knowing
 * how a worker stores them.
 */

export type TopBy = 'mean' | 'max' | 'min' | 'count' | 'sum' | 'p50' | 'p90' | 'p99';
export const TOP_BY: readonly TopBy[] = ['mean', 'max', 'min', 'count', 'sum', 'p50', 'p90', 'p99'];

/** One window of one series, or a merge of several, in a form that merges exactly (t-digest aside). */
export interface WindowAggregateWire {
  start: number;
  end: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  /** value of the event with the latest event time (ties: within a pane the later arrival wins; across merged parts the larger value, so merges are order-independent) */
  last: number;
  lastTs: number;
  /** counts per histogram division, length = configured divisions */
  histogram: number[];
  under: number;
  over: number;
  /** t-digest centroids: means[i] with weight weights[i] */
  means: number[];
  weights: number[];
  /** distinct devices that contributed to this window (fleet queries only) */
  devices?: number;
}

export interface DeviceSeriesTask { kind: 'deviceSeries'; deviceId: string; metric: string; from: number; to: number; resolutionMs: number }
export interface FleetSeriesTask { kind: 'fleetSeries'; metric: string; from: number; to: number; resolutionMs: number }
/**
 * The shard's distinct devices with data in any of `metrics` in the windows of resolutionMs that
 * overlap [from, to) (as fleetSeries): exact, from the open panes and the stored windows' device
 * index. Shards hold disjoint devices, so the shards' counts add up.
 */
export interface DistinctDevicesTask { kind: 'distinctDevices'; metrics: string[]; from: number; to: number; resolutionMs: number }
/** Where the metric's data ends on this shard (of one device when deviceId is given): see MetricLatestResult. */
export interface MetricLatestTask { kind: 'metricLatest'; metric: string; deviceId?: string }
/**
 * The metric over every device of the shard, at one-second precision: the seconds [from, to)
 * (epoch ms, whole seconds) of the per-second fleet aggregate, closed (LMDB) and open (memory).
 */
export interface SensorRangeTask { kind: 'sensorRange'; metric: string; from: number; to: number }
export interface TopTask { kind: 'top'; metric: string; from: number; to: number; by: TopBy; n: number; resolutionMs?: number }
export interface DevicesTask { kind: 'devices'; prefix: string; limit: number }
export interface StatsTask { kind: 'stats' }
/** Fault injection (only with SLUICE_DEBUG_ROUTES=1): blocks the worker thread for ms, as a long GC would. */
export interface StallTask { kind: 'stall'; ms: number }
/** The shard's report counts since the last report task (they start again from zero). */
export interface ReportTask { kind: 'report' }
/** Apply what was published and wait for the shard's pending LMDB writes (late log, rollups). */
export interface SyncTask { kind: 'sync' }
/**
 * The device ids a shard knows the name of (bit id of the answer, a Uint8Array), asked after its
 * restore: recovery re-sends only the other names (a 1M-device checkpoint holds them all).
 */
export interface KnownDevicesTask { kind: 'knownDevices' }
/**
 * Drain the ring, snapshot the shard's state and return it as checkpoint bytes: the groups that
 * changed since the previous checkpoint task, or all of them when `full` (the front-end asks for a
 * full one when the previous checkpoint's write failed, since the worker counts it as stored).
 */
export interface CheckpointTask { kind: 'checkpoint'; full: boolean }
/**
 * Retention, in event time: per resolution, the windows that start before `before` are expired
 * (their whole span is older than the retention). The shard stops answering them and deletes the
 * sealed slices no resolution needs any more.
 */
export interface RetentionTask { kind: 'retention'; cutoffs: RetentionCutoff[] }
export interface RetentionCutoff { resolutionMs: number; before: number }
export interface RetentionResult { droppedBlocks: number }
export type ShardTask = DeviceSeriesTask | FleetSeriesTask | TopTask | DevicesTask | StatsTask | StallTask | CheckpointTask | SyncTask | ReportTask | DistinctDevicesTask | SensorRangeTask | MetricLatestTask | RetentionTask | KnownDevicesTask;

export interface CheckpointResult {
  shard: number;
  /** every batch up to this seq that touched the shard is in the checkpoint */
  lastSeq: number;
  /** bytes this cycle wrote (the shard wrote them itself, storage/checkpoint-store.ts): the base and the changed groups */
  writtenBytes: number;
  /** bytes of the whole checkpoint once stored (base + every live group) */
  storedBytes: number;
  /** how long the worker stopped draining its ring to take the snapshot */
  pauseMs: number;
  /** of which (ms): the head's new readings, the series groups, the base */
  pauseParts?: { headMs: number; seriesMs: number; baseMs: number };
  series: number;
  panes: number;
}

/** the stored panes of one pane number (a shard checkpoint keeps one per live pane number) */
export interface CheckpointGroup { paneNo: number; bytes: Uint8Array }

/** a shard's checkpoint as stored: the base (header, tables) and its pane-number groups */
export interface StoredCheckpoint { base: Uint8Array; groups: CheckpointGroup[] }

export interface DeviceSeriesResult { found: boolean; windows: WindowAggregateWire[] }
/** windows carry `devices`; `devices` here is the distinct count over the whole range */
export interface FleetSeriesResult { windows: WindowAggregateWire[]; devices: number }
export interface TopRow { deviceId: string; value: number; count: number; sum: number; min: number; max: number; mean: number }
export interface TopResult { rows: TopRow[] }
export interface DeviceEntry { deviceId: string; metrics: string[] }
export interface DevicesResult { devices: DeviceEntry[] }
/** count 0: no value in the range (min and max are then 0) */
export interface SensorRangeResult { count: number; sum: number; min: number; max: number }
export interface DistinctDevicesResult { devices: number }
/**
 * start: start of the newest pane with data in memory, else of the newest stored window (at any
 * resolution, the latest start); null when the shard has no data of the metric (or device).
 */
export interface MetricLatestResult { start: number | null }
export interface ShardStats {
  shard: number;
  devices: number;
  series: number;
  panes: number;
  eventsApplied: number;
  recordsApplied: number;
  /** event-time watermark (max event time - allowed lateness); null before the first event */
  watermark?: number | null;
  /** newest event time applied; null before the first event */
  maxEventTime?: number | null;
  /** events refused from the aggregates: beyond the late horizon */
  lateEvents?: number;
  /** events for final windows, kept as corrections */
  correctedEvents?: number;
  rollupWriteErrors?: number;
  /** bytes of the pane store's typed arrays (capacity, not only what is in use) */
  paneStoreBytes: number;
  /** V8 heap in use by the shard's worker thread */
  heapUsedBytes: number;
  /** the worker thread's memory: V8 heap reserved and in use, and the ArrayBuffers its isolate holds (live or awaiting GC) */
  memory?: { heapTotalBytes: number; heapUsedBytes: number; arrayBuffersBytes: number };
  /**
   * sealing: slices sealed, slices queued or in progress, the longest step a seal ran between
   * yields (the first seal apart: it runs before the JIT optimised its code), the last seal's wall time
   */
  seal?: { slices: number; queued: number; stepMaxMs: number; firstStepMaxMs: number; lastSealMs: number;
    /** the last seal's parts (ms): the series ids (one step), the longest chunk, the summary (the last step) */
    lastIdsMs?: number; lastChunkMaxMs?: number; lastSummaryMs?: number };
  /** the decoded sealed-slice summaries kept (workers/sealed-summaries.ts): how many, their bytes, hits and misses */
  summaryCache?: { entries: number; bytes: number; hits: number; misses: number; sealed: number; evicted: number };
  /** the worker's event-loop delay since the previous stats (what a task may wait behind): p99 and max, ms */
  loopDelay?: { p99Ms: number; maxMs: number; pollMaxMs: number; taskMaxMs: number; taskMaxKind: string };
  /** the worker's start from its checkpoint: decoding, the series table, the head (null: started empty) */
  restore?: { decodeMs: number; seriesMs: number; headMs: number } | null;
}
