import type { RingProducer } from '../../protocol';
import type { BatchStager } from '../../engine/batch-stager';

export function publishAll(producers: RingProducer[]): true {
  for (const p of producers) p.publish();
  return true;
}

/** What the commit pipeline does in fast mode: reserve the staged batch, then publish it. */
export function reserveAndPublish(stager: BatchStager, producers: RingProducer[], seq: number): boolean {
  return stager.tryReserve(seq) && publishAll(producers);
}
