/** The public surface of protocol/: pure code shared by the front-end and the shard workers. */
export * from './errors';
export * from './event';
export * from './time';
export * from './codecs';
export * from './columnar';
export * from './records';
export * from './ring';
export * from './messages';
export * from './units';
export * from './aggregate';
export * from './checkpoint-header';
export * from './report';
export * from './packed-event';
export * from './msgpack-events';
export * from './json-events';
