import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, SETTINGS, describeConfig, loadConfig, type SluiceConfig } from '../../engine/config';

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

/**
 * The specification, written out independently of engine/config.ts: key, flag, env var, default,
 * accepted raw values with what they parse to, and rejected raw values with a phrase the error must hold.
 */
interface Spec {
  key: keyof SluiceConfig;
  flag: string;
  env: string;
  defaultValue: unknown;
  good: Array<[string | number, unknown]>;
  bad: Array<[string | number, RegExp]>;
}

const OUT = /out of range/;
const SPECS: Spec[] = [
  {
    key: 'port', flag: '--port', env: 'SLUICE_PORT', defaultValue: 8080,
    good: [['0', 0], ['65535', 65535], ['9000', 9000], [9001, 9001]],
    bad: [['65536', OUT], ['-1', OUT], ['http', /not an integer/], ['80.5', /not an integer/], [80.5, /not an integer/], ['', /not an integer/]],
  },
  {
    key: 'host', flag: '--host', env: 'SLUICE_HOST', defaultValue: '0.0.0.0',
    good: [['127.0.0.1', '127.0.0.1'], ['::1', '::1'], ['localhost', 'localhost']],
    bad: [['', /empty/], [127, /not a string/]],
  },
  {
    key: 'dataDir', flag: '--data-dir', env: 'SLUICE_DATA_DIR', defaultValue: './data',
    good: [['/var/lib/sluice', '/var/lib/sluice'], ['rel/dir', 'rel/dir']],
    bad: [['', /empty/], [1, /not a string/]],
  },
  {
    key: 'shards', flag: '--shards', env: 'SLUICE_SHARDS',
    defaultValue: Math.min(64, Math.max(1, os.availableParallelism() - 1)),
    good: [['1', 1], ['64', 64], [8, 8]],
    bad: [['0', OUT], ['65', OUT], ['four', /not an integer/]],
  },
  {
    key: 'ringBytes', flag: '--ring-size', env: 'SLUICE_RING_SIZE', defaultValue: 4 * MIB,
    good: [['64KiB', 64 * KIB], ['1GiB', GIB], ['16MiB', 16 * MIB], ['65536', 65536], [131072, 131072], ['0.5MiB', 512 * KIB]],
    bad: [['1000', /1000 is not a power of two/], ['1MB', /not a power of two/], ['32KiB', OUT], ['2GiB', OUT], ['big', /invalid size "big"/]],
  },
  {
    key: 'ringBacklogBytes', flag: '--ring-backlog', env: 'SLUICE_RING_BACKLOG', defaultValue: 512 * KIB,
    good: [['64KiB', 64 * KIB], ['1GiB', GIB], ['3MB', 3_000_000], [131072, 131072]],
    bad: [['32KiB', OUT], ['2GiB', OUT], ['lots', /invalid size "lots"/]],
  },
  {
    key: 'paneMs', flag: '--pane', env: 'SLUICE_PANE', defaultValue: 10_000,
    good: [['1s', 1000], ['1d', 86_400_000], ['5m', 300_000], ['1h', 3_600_000], ['250ms', undefined], ['2000', 2000], [60000, 60000]],
    bad: [['999ms', OUT], ['2d', OUT], ['7s', /7s does not divide 1d evenly/], ['soon', /invalid duration "soon"/]],
  },
  {
    key: 'histogramDivisions', flag: '--histogram-divisions', env: 'SLUICE_HISTOGRAM_DIVISIONS', defaultValue: 10,
    good: [['1', 1], ['1000', 1000]],
    bad: [['0', OUT], ['1001', OUT], ['ten', /not an integer/]],
  },
  {
    key: 'histogramMin', flag: '--histogram-min', env: 'SLUICE_HISTOGRAM_MIN', defaultValue: 0,
    good: [['-5', -5], ['2.5', 2.5], ['1e1', 10], [-1.5, -1.5]],
    bad: [['low', /not a finite number/], ['', /not a finite number/], ['Infinity', /not a finite number/]],
  },
  {
    key: 'histogramMax', flag: '--histogram-max', env: 'SLUICE_HISTOGRAM_MAX', defaultValue: 100,
    good: [['1000', 1000], ['0.5', 0.5], [250, 250]],
    bad: [['high', /not a finite number/], ['NaN', /not a finite number/]],
  },
  {
    key: 'quantiles', flag: '--quantiles', env: 'SLUICE_QUANTILES', defaultValue: [0.5, 0.9, 0.99],
    good: [['0.5', [0.5]], ['0,1', [0, 1]], ['0.25, 0.75', [0.25, 0.75]], [0.95, [0.95]]],
    bad: [['1.5', /1\.5/], ['0.5,-0.1', /-0\.1/], ['0.5,,0.9', /not a number from 0 to 1/], ['', /empty/], [2, /from 0 to 1/]],
  },
  {
    key: 'bodyBytesMax', flag: '--body-max', env: 'SLUICE_BODY_MAX', defaultValue: MIB,
    good: [['1KiB', KIB], ['64MiB', 64 * MIB], ['1MB', 1_000_000], ['2000', 2000]],
    bad: [['1023', OUT], ['65MiB', OUT], ['1 meg', /invalid size/]],
  },
  {
    key: 'batchEventsMax', flag: '--batch-events-max', env: 'SLUICE_BATCH_EVENTS_MAX', defaultValue: 10_000,
    good: [['1', 1], ['1000000', 1_000_000]],
    bad: [['0', OUT], ['1000001', OUT]],
  },
  {
    key: 'metricsPerEventMax', flag: '--metrics-per-event-max', env: 'SLUICE_METRICS_PER_EVENT_MAX', defaultValue: 64,
    good: [['1', 1], ['255', 255]],
    bad: [['0', OUT], ['256', OUT]],
  },
  {
    key: 'futureSkewMs', flag: '--future-skew', env: 'SLUICE_FUTURE_SKEW', defaultValue: 60_000,
    good: [['0', 0], ['1d', 86_400_000], ['30s', 30_000], ['1500ms', 1500]],
    bad: [['25h', OUT], ['-1s', /invalid duration/]],
  },
  {
    key: 'backpressureWaitMs', flag: '--backpressure-wait', env: 'SLUICE_BACKPRESSURE_WAIT', defaultValue: 1000,
    good: [['0', 0], ['60s', 60_000], ['1m', 60_000], ['250ms', 250]],
    bad: [['61s', OUT], ['1h', OUT], ['forever', /invalid duration/]],
  },
  {
    key: 'devicesMax', flag: '--devices-max', env: 'SLUICE_DEVICES_MAX', defaultValue: 4_000_000,
    good: [['1', 1], ['100000000', 100_000_000]],
    bad: [['0', OUT], ['100000001', OUT]],
  },
  {
    key: 'ackMode', flag: '--ack', env: 'SLUICE_ACK', defaultValue: 'durable',
    good: [['durable', 'durable'], ['fast', 'fast']],
    bad: [['slow', /not a ack mode/], ['DURABLE', /not a ack mode/]],
  },
  {
    key: 'checkpointIntervalMs', flag: '--checkpoint-interval', env: 'SLUICE_CHECKPOINT_INTERVAL', defaultValue: 5000,
    good: [['100ms', 100], ['5s', 5000], ['1h', 3_600_000], ['2500', 2500]],
    bad: [['50ms', OUT], ['2h', OUT], ['soon', /invalid duration/]],
  },
  {
    key: 'maxDbBytes', flag: '--max-db-size', env: 'SLUICE_MAX_DB_SIZE', defaultValue: 8 * 1024 * 1024 * 1024,
    good: [['1MiB', 1024 * 1024], ['8GiB', 8 * 1024 * 1024 * 1024], ['100MB', 100_000_000]],
    bad: [['1KiB', OUT], ['lots', /invalid size/]],
  },
  {
    key: 'allowedLatenessMs', flag: '--allowed-lateness', env: 'SLUICE_ALLOWED_LATENESS', defaultValue: 300_000,
    good: [['0', 0], ['5m', 300_000], ['7d', 7 * 86_400_000]],
    bad: [['8d', OUT], ['late', /invalid duration/]],
  },
  {
    key: 'lateHorizonMs', flag: '--late-horizon', env: 'SLUICE_LATE_HORIZON', defaultValue: 86_400_000,
    good: [['5m', 300_000], ['1d', 86_400_000]],
    bad: [['400d', OUT], ['soon', /invalid duration/]],
  },
  {
    key: 'lateLogSize', flag: '--late-log-size', env: 'SLUICE_LATE_LOG_SIZE', defaultValue: 100_000,
    good: [['0', 0], ['100000', 100_000]],
    bad: [['-1', OUT], ['many', /not an integer/]],
  },
  {
    key: 'resolutionsMs', flag: '--resolutions', env: 'SLUICE_RESOLUTIONS', defaultValue: [10_000, 60_000, 3_600_000, 86_400_000],
    good: [['10s,1m,1h,1d', [10_000, 60_000, 3_600_000, 86_400_000]], ['10s,1m', [10_000, 60_000]]],
    bad: [['10s,15s', /15s is not a multiple of 10s/], ['10s,nope', /invalid duration/]],
  },
  {
    key: 'retentionMs', flag: '--retention', env: 'SLUICE_RETENTION',
    defaultValue: { '10000': 86_400_000, '60000': 7 * 86_400_000, '3600000': 90 * 86_400_000, '86400000': Infinity },
    good: [['10s:1d,1d:forever', { '10000': 86_400_000, '86400000': Infinity }]],
    bad: [['10s', /is not resolution:age/], ['10s:soon', /invalid duration/]],
  },
  {
    key: 'reportPeriodMs', flag: '--report-period', env: 'SLUICE_REPORT_PERIOD', defaultValue: 10_000,
    good: [['1s', 1000], ['10s', 10_000], ['1d', 86_400_000]],
    bad: [['500ms', OUT], ['2d', OUT]],
  },
  {
    key: 'reportMetrics', flag: '--report-metrics', env: 'SLUICE_REPORT_METRICS', defaultValue: ['cpu'],
    good: [['cpu', ['cpu']], ['cpu,temperature', ['cpu', 'temperature']]],
    bad: [['cpu,cpu', /names a metric twice/], ['a b', /is not a metric name/]],
  },
  {
    key: 'reportHistory', flag: '--report-history', env: 'SLUICE_REPORT_HISTORY', defaultValue: 360,
    good: [['1', 1], ['100000', 100_000]],
    bad: [['0', OUT], ['100001', OUT]],
  },
  {
    key: 'logLevel', flag: '--log-level', env: 'SLUICE_LOG_LEVEL', defaultValue: 'info',
    good: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => [level, level]),
    bad: [['loud', /not a log level/], ['INFO', /not a log level/], [3, /not a string/]],
  },
  {
    key: 'lpDeviceTag', flag: '--lp-device-tag', env: 'SLUICE_LP_DEVICE_TAG', defaultValue: 'host',
    good: [['host', 'host'], ['device_id', 'device_id']],
    bad: [['  ', /is empty/], [3, /not a string/]],
  },
  {
    key: 'promDeviceLabel', flag: '--prom-device-label', env: 'SLUICE_PROM_DEVICE_LABEL', defaultValue: 'instance',
    good: [['instance', 'instance'], ['device', 'device']],
    bad: [['  ', /is empty/], [3, /not a string/]],
  },
  {
    key: 'mqttUrl', flag: '--mqtt-url', env: 'SLUICE_MQTT_URL', defaultValue: '',
    good: [['mqtt://127.0.0.1:1883', 'mqtt://127.0.0.1:1883'], ['mqtts://broker.example:8883', 'mqtts://broker.example:8883']],
    bad: [['http://127.0.0.1:1883', /has protocol http:/], ['not a url', /is not a URL/], [3, /not a string/]],
  },
  {
    key: 'mqttTopic', flag: '--mqtt-topic', env: 'SLUICE_MQTT_TOPIC', defaultValue: 'devices/+/telemetry',
    good: [['devices/+/telemetry', 'devices/+/telemetry'], ['+', '+'], ['plant/a/+/m', 'plant/a/+/m']],
    bad: [['devices/telemetry', /exactly one \+ level/], ['+/+/x', /exactly one \+ level/], ['devices/+/#', /has #/], ['dev+/+/x', /wildcard inside a level/]],
  },
  {
    key: 'mqttClientId', flag: '--mqtt-client-id', env: 'SLUICE_MQTT_CLIENT_ID', defaultValue: 'sluice',
    good: [['sluice', 'sluice'], ['sluice-eu-1', 'sluice-eu-1']],
    bad: [['  ', /is empty/], [3, /not a string/]],
  },
  {
    key: 'auth', flag: '--auth', env: 'SLUICE_AUTH', defaultValue: 'off',
    good: [['on', 'on'], ['off', 'off']],
    bad: [['yes', /not a valid mode/], [1, /not a string/]],
  },
  {
    key: 'adminTokenFile', flag: '--admin-token-file', env: 'SLUICE_ADMIN_TOKEN_FILE', defaultValue: '',
    good: [['/etc/sluice/admin.token', '/etc/sluice/admin.token']],
    bad: [[3, /not a string/]],
  },
  {
    key: 'tlsCert', flag: '--tls-cert', env: 'SLUICE_TLS_CERT', defaultValue: '',
    good: [],
    bad: [[3, /not a string/]],
  },
  {
    key: 'tlsKey', flag: '--tls-key', env: 'SLUICE_TLS_KEY', defaultValue: '',
    good: [],
    bad: [[3, /not a string/]],
  },
  {
    key: 'connectionsMax', flag: '--connections-max', env: 'SLUICE_CONNECTIONS_MAX', defaultValue: 10_000,
    good: [['1', 1], ['50000', 50_000]],
    bad: [['0', OUT], ['x', /not an integer/]],
  },
  {
    key: 'wsBackpressureMax', flag: '--ws-max-backpressure', env: 'SLUICE_WS_MAX_BACKPRESSURE', defaultValue: 1024 * 1024,
    good: [['1MiB', 1024 * 1024], ['64KiB', 65_536]],
    bad: [['1KiB', OUT]],
  },
  {
    key: 'wsInflightMax', flag: '--ws-inflight-max', env: 'SLUICE_WS_INFLIGHT_MAX', defaultValue: 64,
    good: [['1', 1], ['1000', 1000]],
    bad: [['0', OUT]],
  },
];
// '250ms' is a valid duration but not a valid pane (under 1s): move it to the rejections.
const pane = SPECS.find((spec) => spec.key === 'paneMs')!;
pane.good = pane.good.filter(([raw]) => raw !== '250ms');
pane.bad.push(['250ms', OUT]);

function configOf(argv: string[], env: Record<string, string | undefined> = {}) {
  const result = loadConfig(argv, env);
  if ('help' in result) throw new Error('unexpected help');
  return result;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sluice-config-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
let fileCount = 0;
function writeJson(content: unknown): string {
  const file = path.join(tmp, `config-${fileCount++}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

t.test('SETTINGS is exactly the specified table: keys, flags and env vars in order', async (t) => {
  t.same(
    SETTINGS.map((setting) => [setting.key, setting.flag, setting.env, setting.fileKey]),
    SPECS.map((spec) => [spec.key, spec.flag, spec.env, spec.flag.slice(2)]),
  );
});

t.test('defaults equal the specified table, and every source is default', async (t) => {
  const { config, sources } = configOf([], {});
  for (const spec of SPECS) {
    t.same(config[spec.key], spec.defaultValue, `${spec.key} defaults to ${JSON.stringify(spec.defaultValue)}`);
    t.equal(sources[spec.key], 'default', `${spec.key} comes from the default`);
  }
  t.same(Object.keys(config).sort(), SPECS.map((spec) => spec.key).sort(), 'no other field');
});

t.test('every accepted form parses the same from flag, flag=, env and file', async (t) => {
  for (const spec of SPECS) {
    // the ring must hold 4 x --body-max: give the other side room so each value is tested alone
    const extra = spec.key === 'ringBytes' ? ['--body-max', '16KiB'] : spec.key === 'bodyBytesMax' ? ['--ring-size', '1GiB'] : [];
    for (const [raw, expected] of spec.good) {
      const label = `${spec.flag} ${JSON.stringify(raw)}`;
      if (typeof raw === 'string') {
        const spaced = configOf([spec.flag, raw, ...extra]);
        t.same(spaced.config[spec.key], expected, `${label} as two arguments`);
        t.equal(spaced.sources[spec.key], 'cli');
        t.same(configOf([`${spec.flag}=${raw}`, ...extra]).config[spec.key], expected, `${label} as flag=value`);
        const fromEnv = configOf(extra, { [spec.env]: raw });
        t.same(fromEnv.config[spec.key], expected, `${label} from ${spec.env}`);
        t.equal(fromEnv.sources[spec.key], 'env');
      }
      const file = writeJson({ [spec.flag.slice(2)]: raw });
      const fromFile = configOf(['--config', file, ...extra]);
      t.same(fromFile.config[spec.key], expected, `${label} from the config file`);
      t.equal(fromFile.sources[spec.key], 'file');
    }
  }
});

t.test('every rejection names the flag, the bad value and the allowed range', async (t) => {
  for (const spec of SPECS) {
    const allowed = /\(allowed: [^)]+\)/;
    for (const [raw, phrase] of spec.bad) {
      const label = `${spec.flag} ${JSON.stringify(raw)}`;
      const check = (fn: () => unknown, where: string) => {
        try {
          fn();
          t.fail(`${label} ${where} should be rejected`);
        } catch (error) {
          t.type(error, ConfigError, `${label} ${where} is a ConfigError`);
          const message = (error as Error).message;
          t.ok(message.startsWith(`${spec.flag}: `), `${label} ${where} names the flag: ${message}`);
          t.match(message, phrase, `${label} ${where} says what is wrong`);
          t.match(message, allowed, `${label} ${where} gives the allowed range`);
          if (raw !== '') t.match(message, new RegExp(escape(String(raw))), `${label} ${where} quotes the value`);
        }
      };
      if (typeof raw === 'string') {
        check(() => loadConfig([`${spec.flag}=${raw}`], {}), 'on the command line');
        if (raw !== '') check(() => loadConfig([], { [spec.env]: raw }), `from ${spec.env}`);
      }
      const file = writeJson({ [spec.flag.slice(2)]: raw });
      check(() => loadConfig(['--config', file], {}), 'from the file');
    }
  }
});

t.test('the ring size error reads as documented', async (t) => {
  t.throws(() => loadConfig(['--ring-size', '1000'], {}), {
    name: 'ConfigError',
    message: '--ring-size: 1000 is not a power of two (allowed: a power of two between 64KiB and 1GiB)',
  });
  t.throws(() => loadConfig([], { SLUICE_RING_SIZE: '1000' }), /\[from SLUICE_RING_SIZE\]/, 'an env error says where it came from');
});

t.test('histogram max must exceed histogram min, whichever source sets them', async (t) => {
  t.throws(() => loadConfig(['--histogram-min', '100'], {}), /--histogram-max: 100 is not greater than --histogram-min 100/);
  t.throws(() => loadConfig(['--histogram-max', '-1'], {}), /--histogram-max: -1 is not greater than --histogram-min 0/);
  t.throws(() => loadConfig([], { SLUICE_HISTOGRAM_MIN: '5', SLUICE_HISTOGRAM_MAX: '4' }), ConfigError);
  const { config } = configOf(['--histogram-min', '-10', '--histogram-max', '-5']);
  t.same([config.histogramMin, config.histogramMax], [-10, -5]);
});

t.test('the default resolutions and retention follow --pane; explicit ones must start at the pane', async (t) => {
  const c = configOf(['--pane', '1m']).config;
  t.same(c.resolutionsMs, [60_000, 3_600_000, 86_400_000]);
  t.same(c.retentionMs, { '60000': 7 * 86_400_000, '3600000': 90 * 86_400_000, '86400000': Infinity });
  t.throws(() => loadConfig(['--pane', '1m', '--resolutions', '10s,1m'], {}), /--resolutions: the first resolution 10s is not the pane/);
  t.throws(() => loadConfig(['--retention', '5m:1d'], {}), /--retention: 5m is not one of --resolutions/);
});

t.test('the ring must hold 4 x --body-max', async (t) => {
  t.throws(() => loadConfig(['--ring-size', '1MiB', '--body-max', '512KiB'], {}), /--ring-size: 1MiB is less than 4 x --body-max \(512KiB\)/);
  t.equal(configOf(['--ring-size', '2MiB', '--body-max', '512KiB']).config.ringBytes, 2 * MIB);
});

t.test('precedence: cli beats env beats file beats default', async (t) => {
  const file = writeJson({ port: 1111, pane: '1m', 'log-level': 'warn', 'ring-size': '1MiB', 'body-max': '256KiB' });
  const env = { SLUICE_CONFIG: file, SLUICE_PORT: '2222', SLUICE_PANE: '5m' };
  const all = configOf(['--port', '3333'], env);
  t.equal(all.config.port, 3333);
  t.equal(all.sources.port, 'cli');
  t.equal(all.config.paneMs, 300_000);
  t.equal(all.sources.paneMs, 'env');
  t.equal(all.config.logLevel, 'warn');
  t.equal(all.sources.logLevel, 'file');
  t.equal(all.config.ringBytes, MIB);
  t.equal(all.sources.ringBytes, 'file');
  t.equal(all.config.batchEventsMax, 10_000);
  t.equal(all.sources.batchEventsMax, 'default');

  const noCli = configOf([], env);
  t.equal(noCli.config.port, 2222, 'env beats the file');
  t.equal(noCli.sources.port, 'env');
  const fileOnly = configOf([], { SLUICE_CONFIG: file });
  t.equal(fileOnly.config.port, 1111, 'the file beats the default');
  t.equal(fileOnly.sources.port, 'file');
  t.equal(configOf([], {}).config.port, 8080, 'the default when nothing sets it');

  const other = writeJson({ port: 4444 });
  t.equal(configOf([`--config=${other}`], { SLUICE_CONFIG: file }).config.port, 4444, '--config beats SLUICE_CONFIG');
  t.equal(configOf(['--port', '1', '--port', '2']).config.port, 2, 'a repeated flag: the last wins');
  t.equal(configOf([], { SLUICE_PORT: '', SLUICE_CONFIG: file }).config.port, 1111, 'an empty env var counts as unset');
});

t.test('bad command lines are ConfigErrors that say which', async (t) => {
  t.throws(() => loadConfig(['--prot', '80'], {}), { name: 'ConfigError', message: /unknown option --prot/ });
  t.throws(() => loadConfig(['--prot=80'], {}), /unknown option --prot\b/);
  t.throws(() => loadConfig(['-p', '80'], {}), /unexpected argument -p/);
  t.throws(() => loadConfig(['8080'], {}), /unexpected argument 8080/);
  t.throws(() => loadConfig(['--port'], {}), { name: 'ConfigError', message: /--port: missing value/ });
  t.throws(() => loadConfig(['--port', '--host', 'x'], {}), /--port: missing value/);
  t.throws(() => loadConfig(['--config'], {}), /--config: missing value/);
  t.equal(configOf(['--histogram-min', '-3']).config.histogramMin, -3, 'a negative number is a value, not a flag');
});

t.test('bad config files are ConfigErrors that say which', async (t) => {
  const missing = path.join(tmp, 'missing.json');
  t.throws(() => loadConfig(['--config', missing], {}), { name: 'ConfigError', message: new RegExp(`cannot read ${escape(missing)}`) });
  t.throws(() => loadConfig([], { SLUICE_CONFIG: missing }), /cannot read/);
  t.throws(() => loadConfig(['--config', tmp], {}), /cannot read/, 'a directory is unreadable as a file');
  const broken = writeJson('{"port": 80,');
  t.throws(() => loadConfig(['--config', broken], {}), { name: 'ConfigError', message: new RegExp(`${escape(broken)} is not valid JSON`) });
  t.throws(() => loadConfig(['--config', writeJson([1, 2])], {}), /must hold a JSON object/);
  t.throws(() => loadConfig(['--config', writeJson('null')], {}), /must hold a JSON object/);
  t.throws(() => loadConfig(['--config', writeJson({ prot: 80 })], {}), { name: 'ConfigError', message: /unknown key "prot"/ });
  t.throws(() => loadConfig(['--config', writeJson({ ringBytes: 1024 })], {}), /unknown key "ringBytes"/, 'keys are flag names');
  t.throws(() => loadConfig(['--config', writeJson({ '--port': 80 })], {}), /unknown key "--port"/);
  t.throws(() => loadConfig(['--config', writeJson({ port: true })], {}), /--port: true .* must be a JSON string or number/);
  t.throws(() => loadConfig(['--config', writeJson({ quantiles: [0.5] })], {}), /--quantiles: .*must be a JSON string or number/);
  t.same(configOf(['--config', writeJson({})]).sources.port, 'default', 'an empty object is a valid file');
});

t.test('--help lists usage, every flag, env var and formatted default', async (t) => {
  for (const argv of [['--help'], ['-h'], ['--port', '1', '--help'], ['--bogus', '--help'], ['--ring-size', '3', '-h']]) {
    const result = loadConfig(argv, {});
    t.ok('help' in result, `${argv.join(' ')} asks for help`);
  }
  const result = loadConfig(['--help'], {});
  const help = 'help' in result ? result.help : '';
  t.match(help, /^Usage: npm start -- \[options\]$/m);
  t.match(help, /node dist\/engine\/main\.js \[options\]/);
  t.match(help, /--config FILE +SLUICE_CONFIG/);
  const lines = help.split('\n');
  const expectedDefaults: Record<string, string> = {
    '--ring-size': '4MiB', '--pane': '10s', '--body-max': '1MiB', '--future-skew': '1m', '--backpressure-wait': '1s',
    '--port': '8080', '--quantiles': '0.5,0.9,0.99', '--log-level': 'info', '--data-dir': './data',
    '--ack': 'durable', '--checkpoint-interval': '5s', '--max-db-size': '8GiB',
    '--allowed-lateness': '5m', '--late-horizon': '1d', '--late-log-size': '100000', '--resolutions': '10s,1m,1h,1d', '--retention': '10s:1d,1m:7d,1h:90d,1d:forever',
    '--report-period': '10s', '--report-metrics': 'cpu', '--report-history': '360',
  };
  for (const spec of SPECS) {
    const line = lines.find((candidate) => candidate.trimStart().startsWith(`${spec.flag} `));
    t.ok(line, `help has a line for ${spec.flag}`);
    t.match(line ?? '', new RegExp(`\\s${spec.env}\\s`), `${spec.flag}'s line names ${spec.env}`);
    const expected = expectedDefaults[spec.flag];
    if (expected !== undefined) t.match(line ?? '', new RegExp(`\\s${escape(expected)}\\s`), `${spec.flag}'s line shows ${expected}`);
  }
  for (const setting of SETTINGS) t.match(help, setting.flag + ' ', `help lists ${setting.flag}`);
});

t.test('describeConfig formats durations and sizes and covers every setting', async (t) => {
  const { config } = configOf(['--pane', '60000', '--ring-size', '4194304', '--port', '0']);
  const summary = describeConfig(config);
  t.same(Object.keys(summary).sort(), SPECS.map((spec) => spec.key).sort());
  t.equal(summary.paneMs, '1m');
  t.equal(summary.ringBytes, '4MiB');
  t.equal(summary.bodyBytesMax, '1MiB');
  t.equal(summary.futureSkewMs, '1m');
  t.equal(summary.backpressureWaitMs, '1s');
  t.equal(summary.port, 0);
  t.equal(summary.quantiles, '0.5,0.9,0.99');
  t.equal(summary.logLevel, 'info');
  for (const value of Object.values(summary)) t.ok(typeof value === 'string' || typeof value === 'number');
});

t.test('the late horizon fits between the allowed lateness and the finest retention', async (t) => {
  const load = (argv: string[]): SluiceConfig => (loadConfig(argv, {}) as { config: SluiceConfig }).config;
  t.equal(load([]).lateHorizonMs, 86_400_000, 'default 1 d');
  t.equal(load(['--retention', '10s:2m']).lateHorizonMs, 300_000, 'the default shrinks to the finest retention, not below the lateness');
  t.equal(load(['--retention', '10s:2h']).lateHorizonMs, 7_200_000);
  t.throws(() => load(['--retention', '10s:2h', '--late-horizon', '3h']), /--late-horizon: 3h is longer than the retention of the finest resolution \(2h\)/);
  t.throws(() => load(['--late-horizon', '1m']), /--late-horizon: 1m is shorter than --allowed-lateness \(5m\)/);
});
