import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { DataDirLock, DataDirLockedError, LOCK_FILE } from '../../storage';
import { tempDir } from '../helpers/engine';

t.test('one holder at a time; released, it can be taken again', async (t) => {
  const dir = tempDir();
  const lock = await DataDirLock.acquire(dir);
  const rec = JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')) as { pid: number };
  t.equal(rec.pid, process.pid, 'the lock file names the holder');
  await t.rejects(DataDirLock.acquire(dir), DataDirLockedError);
  await t.rejects(DataDirLock.acquire(dir), { message: new RegExp(`is in use by pid ${process.pid}`) });
  const link = path.join(tempDir(), 'alias');
  fs.symlinkSync(dir, link);
  await t.rejects(DataDirLock.acquire(link), DataDirLockedError, 'another path to the same dir');
  t.ok(await DataDirLock.acquire(tempDir()), 'another dir is free');
  lock.release();
  t.notOk(fs.existsSync(path.join(dir, LOCK_FILE)), 'the lock file goes with the lock');
  const again = await DataDirLock.acquire(dir);
  again.release();
});

t.test('a lock file left behind (a killed holder) does not block', async (t) => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ pid: 999_999, host: 'x', startedAt: 'then' }));
  const lock = await DataDirLock.acquire(dir);
  t.equal((JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')) as { pid: number }).pid, process.pid);
  lock.release();
});
