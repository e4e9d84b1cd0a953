/**
 * Every error Sluice reports, with a stable code. HTTP bodies, WebSocket error frames and log lines
 * use the same codes; the README's error table is checked against ERRORS by a test.
 */

export const ERRORS = {
  SLUICE_E_BAD_BODY: 'the body or frame does not parse in its content type',
  SLUICE_E_BAD_EVENT: 'an event is not an object',
  SLUICE_E_BAD_DEVICE_ID: 'deviceId missing, or not 1-128 characters of [A-Za-z0-9_.:-]',
  SLUICE_E_DEVICE_MISMATCH: 'the event names another device than the pinned connection',
  SLUICE_E_BAD_TIMESTAMP: 'timestamp missing, or neither epoch milliseconds nor an ISO-8601 string',
  SLUICE_E_FUTURE_TIMESTAMP: 'timestamp further in the future than the allowed clock skew',
  SLUICE_E_BAD_METRIC_NAME: 'a metric name is not 1-64 characters of [A-Za-z0-9_.]',
  SLUICE_E_BAD_METRIC_VALUE: 'a metric value is not a finite number',
  SLUICE_E_NO_METRICS: 'the event carries no metric',
  SLUICE_E_TOO_MANY_METRICS: 'the event carries more metrics than allowed',
  SLUICE_E_BAD_TAG: 'tags is not an object of strings, or a tag name or value is out of bounds',
  SLUICE_E_BAD_COLUMNAR: 'a columnar batch has missing, misaligned or unequal columns',
  SLUICE_E_BATCH_TOO_LARGE: 'the batch holds more events than allowed',
  SLUICE_E_BODY_TOO_LARGE: 'the body is larger than allowed',
  SLUICE_E_UNSUPPORTED_MEDIA_TYPE: 'the Content-Type or Content-Encoding is not one Sluice reads',
  SLUICE_E_NO_VALID_EVENT: 'no event of the batch is valid',
  SLUICE_E_BACKPRESSURE: 'the shard rings stayed full: nothing of the batch was accepted, send it again',
  SLUICE_E_SEQUENCE_GAP: 'the device sequence skips ahead: resend from the expected sequence',
  SLUICE_E_BAD_SEQUENCE: 'a device sequence is not a non-negative integer, or names no single device',
  SLUICE_E_STORAGE_FULL: 'the data kept in LMDB reached --max-db-size: nothing of the batch was accepted, send it again later',
  SLUICE_E_STORAGE_FAULT: 'the WAL could not be written: nothing of the batch was accepted, send it again later',
  SLUICE_E_DEVICE_LIMIT: 'the engine holds as many distinct devices as it is configured for',
  SLUICE_E_BAD_PARAM: 'a query parameter or request field is missing or invalid',
  SLUICE_E_NOT_FOUND: 'no such route or resource',
  SLUICE_E_UNAUTHORIZED: 'no token, or an unknown or revoked one (--auth on)',
  SLUICE_E_TOO_MANY_CONNECTIONS: 'the engine holds --connections-max requests and WebSockets: retry after Retry-After',
  SLUICE_E_FORBIDDEN: 'the token\'s role may not do this, or a device token names another device',
  SLUICE_E_NOTHING_TO_COMPUTE: 'a compute request names no sensor and metric that can be computed',
  SLUICE_E_SHUTTING_DOWN: 'the engine is shutting down',
  SLUICE_E_INTERNAL: 'an internal error; the log has the details',
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** An error that carries its code to whoever answers the client. */
export class SluiceError extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
    this.name = 'SluiceError';
  }
}

/** A rejected event: its index in the batch and a reason that names the field. */
export interface Rejection {
  index: number;
  code: ErrorCode;
  reason: string;
}
