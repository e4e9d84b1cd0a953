// The Sluice dashboard: each panel is its own module, started here once the page is parsed
// (module scripts run deferred). Everything is fetched from the engine that served the page.

import { startLive } from './live.js';
import { startReport } from './report.js';
import { startTop } from './top.js';
import { startDeviceSearch } from './device-search.js';

startLive(document);
startReport(document);
const devices = startDeviceSearch(document);
startTop(document, (deviceId) => devices.open(deviceId));
