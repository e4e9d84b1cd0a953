/**
 * The reference encoder (and decoder) of Prometheus remote-write 1.0 for tests: protobufjs with
 * prompb's messages (github.com/prometheus/prometheus/prompb/types.proto, remote.proto), the fields
 * Sluice reads plus enough of Exemplar, Histogram and MetricMetadata to send them. Bodies are
 * snappy block format, as Prometheus sends them.
 */

import protobuf from 'protobufjs';
import { compressSync } from 'snappy';

const LABEL = { rule: 'repeated', type: 'Label' };

const root = protobuf.Root.fromJSON({
  nested: {
    prometheus: {
      nested: {
        WriteRequest: { fields: { timeseries: { ...LABEL, type: 'TimeSeries', id: 1 }, metadata: { ...LABEL, type: 'MetricMetadata', id: 3 } } },
        TimeSeries: {
          fields: {
            labels: { ...LABEL, id: 1 }, samples: { rule: 'repeated', type: 'Sample', id: 2 },
            exemplars: { rule: 'repeated', type: 'Exemplar', id: 3 }, histograms: { rule: 'repeated', type: 'Histogram', id: 4 },
          },
        },
        Label: { fields: { name: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
        Sample: { fields: { value: { type: 'double', id: 1 }, timestamp: { type: 'int64', id: 2 } } },
        Exemplar: { fields: { labels: { ...LABEL, id: 1 }, value: { type: 'double', id: 2 }, timestamp: { type: 'int64', id: 3 } } },
        Histogram: { fields: { countInt: { type: 'uint64', id: 1 }, sum: { type: 'double', id: 3 }, schema: { type: 'sint32', id: 4 }, timestamp: { type: 'int64', id: 15 } } },
        MetricMetadata: { fields: { type: { type: 'int32', id: 1 }, metricFamilyName: { type: 'string', id: 2 }, help: { type: 'string', id: 4 }, unit: { type: 'string', id: 5 } } },
      },
    },
  },
});

export const WriteRequest = root.lookupType('prometheus.WriteRequest');

export interface TestSample { value: number; timestamp: number }
export interface TestSeries {
  labels: Record<string, string>;
  samples: TestSample[];
  exemplars?: number;
  histograms?: number;
}

/** A value no test sends: encodeRequest swaps its bytes for the staleness marker's. */
export const STALE = -1.2345678901234567e-300;
const STALE_BITS = Buffer.from([0x02, 0, 0, 0, 0, 0, 0xf0, 0x7f]);

/** The protobuf bytes of a WriteRequest (labels in the order given; sort them to follow the spec). */
export function encodeRequest(series: TestSeries[], metadata = 0): Buffer {
  const msg = WriteRequest.fromObject({
    timeseries: series.map((s) => ({
      labels: Object.entries(s.labels).map(([name, value]) => ({ name, value })),
      samples: s.samples,
      exemplars: Array.from({ length: s.exemplars ?? 0 }, (_, i) => ({ labels: [{ name: 'trace_id', value: `t${i}` }], value: i, timestamp: 1 })),
      histograms: Array.from({ length: s.histograms ?? 0 }, (_, i) => ({ countInt: i, sum: i, schema: 3, timestamp: 1 })),
    })),
    metadata: Array.from({ length: metadata }, (_, i) => ({ type: 1, metricFamilyName: `m${i}`, help: 'help' })),
  });
  const bytes = Buffer.from(WriteRequest.encode(msg).finish());
  // the stale NaN is a signalling NaN: written as bytes, so that no float conversion can touch it
  const sentinel = Buffer.alloc(8);
  sentinel.writeDoubleLE(STALE);
  for (let at = bytes.indexOf(sentinel); at >= 0; at = bytes.indexOf(sentinel, at + 8)) STALE_BITS.copy(bytes, at);
  return bytes;
}

/** What Prometheus posts: the request, snappy block format. */
export function remoteWriteBody(series: TestSeries[], metadata = 0): Buffer {
  return compressSync(encodeRequest(series, metadata));
}

export const REMOTE_WRITE_HEADERS = {
  'content-encoding': 'snappy',
  'x-prometheus-remote-write-version': '0.1.0',
};
