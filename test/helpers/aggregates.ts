/**
 * A window aggregate built from raw readings the plain way (what a shard derives from a slice's
 * readings): the reference that merged aggregates are compared with.
 */

import {
  CENTROIDS_MAX_DEFAULT, compressAggregate, emptyAggregate, histogramBucket, mergeExactFields, type WindowAggregateWire,
} from '../../protocol';

export function aggregateOf(readings: readonly (readonly [number, number])[], start: number, end: number,
  divisions: number, min = 0, max = 100): WindowAggregateWire {
  const a = emptyAggregate(start, end, divisions);
  for (const [ts, v] of readings) {
    mergeExactFields(a, 1, v, v, v, v, ts);
    const b = histogramBucket(v, min, max, divisions);
    if (b < divisions) a.histogram[b]!++;
    else if (b === divisions) a.under++;
    else a.over++;
    a.means.push(v);
    a.weights.push(1);
    if (a.means.length > CENTROIDS_MAX_DEFAULT) compressAggregate(a);
  }
  return a;
}
