/** The public surface of storage/: the LMDB store and the WAL entry format. */
export * from './store';
export * from './data-dir-lock';
export * from './wal-entry';
export * from './rollup-store';
export * from './block-store';
export * from './checkpoint-store';
export * from './rollup-codec';
export * from './block-codec';
export * from './slice-summary';
export * from './token-store';
