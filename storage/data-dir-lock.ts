/**
 * The exclusive lock on a data dir: one engine per data dir, for the life of the process.
 *
 * Two engines on one data dir both write the same WAL sequence numbers and checkpoints, and an
 * acknowledged event is lost. acquire() is called before LMDB is opened and refuses a second
 * engine with DataDirLockedError, whose message names the dir and the pid that holds it.
 *
 * The lock itself is a kernel object, not a file: a Unix socket bound in Linux's abstract
 * namespace under a name derived from the data dir's device and inode (so every path to the same
 * dir, symlinks included, gives the same name). Binding is atomic, a second bind fails with
 * EADDRINUSE, and the kernel releases it when the process ends, kill -9 included, so a stale
 * lock cannot exist (a lock file would need a liveness check, racy against pid reuse; Node has no
 * flock). The file `sluice.lock` in the dir records the holder's pid and start time, for the
 * message and for people; it is advisory and rewritten by each new holder.
 *
 * Limits: the abstract namespace belongs to the network namespace, so two containers with their
 * own network namespaces that mount the same volume do not see each other's lock. Linux only;
 * elsewhere acquire() refuses to start rather than run unlocked.
 *
 * Front-end thread, once at start-up; release() at shutdown (the process ending releases it too).
 */

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const LOCK_FILE = 'sluice.lock';

export class DataDirLockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirLockedError';
  }
}

interface LockRecord {
  pid: number;
  host: string;
  startedAt: string;
}

export class DataDirLock {
  private constructor(private readonly server: net.Server, readonly file: string) {}

  static async acquire(dataDir: string): Promise<DataDirLock> {
    fs.mkdirSync(dataDir, { recursive: true });
    const dir = fs.realpathSync(dataDir);
    if (process.platform !== 'linux') {
      throw new DataDirLockedError(`cannot lock the data dir ${dir}: the lock needs Linux (abstract Unix sockets), and this is ${process.platform}`);
    }
    const st = fs.statSync(dir);
    const name = `\0sluice-data-dir-${st.dev}-${st.ino}`;
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EADDRINUSE') {
          reject(new DataDirLockedError(`cannot lock the data dir ${dir}: ${err.message}`));
          return;
        }
        const holder = readRecord(path.join(dir, LOCK_FILE));
        const who = holder === null ? 'another process' : `pid ${holder.pid} (started ${holder.startedAt})`;
        reject(new DataDirLockedError(`the data dir ${dir} is in use by ${who}: another Sluice is running on it. ` +
          'Stop it first, or give this one another --data-dir.'));
      });
      server.listen(name, () => resolve());
    });
    server.unref();
    const file = path.join(dir, LOCK_FILE);
    const record: LockRecord = { pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString() };
    fs.writeFileSync(file, JSON.stringify(record) + '\n');
    return new DataDirLock(server, file);
  }

  /** Gives the lock up (the process ending does too). */
  release(): void {
    this.server.close();
    const rec = readRecord(this.file);
    if (rec !== null && rec.pid === process.pid) fs.rmSync(this.file, { force: true });
  }
}

function readRecord(file: string): LockRecord | null {
  try {
    const rec = JSON.parse(fs.readFileSync(file, 'utf8')) as LockRecord;
    return typeof rec.pid === 'number' ? rec : null;
  } catch {
    return null;
  }
}
