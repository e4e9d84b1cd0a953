import t from 'tap';
import { Watermark } from '../../workers/watermark';

t.test('the watermark trails the newest event time by the lateness; panes close only when marked', async (t) => {
  const w = new Watermark(10_000, 300_000);
  t.equal(w.watermark, -Infinity, 'no event yet');
  t.equal(w.isLate(0), false, 'nothing is late before the first close');
  w.observe(1_000_000);
  w.observe(999_000);
  t.equal(w.maxTs, 1_000_000, 'an older event does not move it back');
  t.equal(w.watermark, 700_000);
  t.equal(w.dueBelow(), 70, 'panes below 700 s are due');
  t.equal(w.isLate(0), false, 'due is not closed: the owner closes, then marks');
  w.markClosed(70);
  t.equal(w.isLate(699_999), true);
  t.equal(w.isLate(700_000), false);
  t.equal(w.dueBelow(), 70, 'nothing more is due');
  w.observe(1_010_001);
  t.equal(w.dueBelow(), 71);
  t.throws(() => w.markClosed(69), /may not move back/);
});

t.test('fractional and unaligned times: floor to the pane', async (t) => {
  const w = new Watermark(10_000, 5_000);
  w.observe(20_004.5);
  t.equal(w.dueBelow(), 1, '(20004.5 - 5000) / 10000 = 1.5 -> pane 1');
  w.markClosed(1);
  t.equal(w.closedBeforeMs, 10_000);
});

t.test('snapshot and restore give the same decisions', async (t) => {
  const a = new Watermark(10_000, 60_000);
  for (const ts of [100_000, 250_000, 180_000]) a.observe(ts);
  a.markClosed(a.dueBelow());
  const b = new Watermark(10_000, 60_000);
  b.restore(a.snapshot());
  for (const ts of [0, 179_999, 180_000, 190_000, 260_000]) t.equal(b.isLate(ts), a.isLate(ts), `isLate(${ts})`);
  t.equal(b.watermark, a.watermark);
  const fresh = new Watermark(10_000, 60_000);
  fresh.restore(new Watermark(10_000, 60_000).snapshot());
  t.equal(fresh.closedBeforeMs, -Infinity, 'an empty snapshot restores empty');
});

t.test('bad settings are refused', async (t) => {
  t.throws(() => new Watermark(0, 1), RangeError);
  t.throws(() => new Watermark(1, -1), RangeError);
});
