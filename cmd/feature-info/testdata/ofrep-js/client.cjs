// client.cjs runs a real OpenFeature JS client against an OFREP server and
// reports what it sees as JSON lines on stdout, for ofrep_js_test.go.
//
//   node client.cjs '<json config>'
//
// Config:
//   mode        "web" (@openfeature/web-sdk + ofrep-web-provider) or
//               "server" (@openfeature/server-sdk + ofrep-provider, single-flag endpoint)
//   baseUrl     the OFREP server's base URL
//   headers     [[name, value], ...] sent with every request
//   context     the evaluation context
//   flags       [[key, type, default], ...]; type boolean|string|number|object
//   web only:
//   sse         true: the npm eventsource package is the global EventSource,
//               so the provider follows the bulk answer's eventStreams
//   changeDetection, pollInterval: the provider's options
//   watch       true: after "ready", report each change until stdin closes
//
// Lines: {"event":"fetch",...} for every HTTP exchange the provider makes,
// {"event":"sse-open","url":...} when a change stream opens,
// {"event":"ready","flags":{key: details}}, {"event":"changed",...},
// {"event":"init-failed","status":...} when the provider cannot start,
// {"event":"error","message":...}; the process exits 1 on an error.
'use strict';

const cfg = JSON.parse(process.argv[2] || '{}');

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function fail(err) {
  out({ event: 'error', message: String((err && err.stack) || err) });
  process.exit(1);
}
process.on('unhandledRejection', fail);
process.on('uncaughtException', fail);

// fetch that reports each request and its answer.
async function recordingFetch(input, init) {
  const req = new Request(input, init);
  const res = await fetch(req);
  out({
    event: 'fetch',
    method: req.method,
    url: req.url,
    ifNoneMatch: req.headers.get('if-none-match'),
    status: res.status,
    contentType: res.headers.get('content-type'),
    etag: res.headers.get('etag'),
  });
  return res;
}

function details(client, [key, type, def]) {
  const fn = {
    boolean: 'getBooleanDetails',
    string: 'getStringDetails',
    number: 'getNumberDetails',
    object: 'getObjectDetails',
  }[type];
  if (!fn) throw new Error(`unknown flag type ${type} for ${key}`);
  return client[fn](key, def);
}

async function evaluateAll(client) {
  const res = {};
  for (const f of cfg.flags || []) {
    const d = await details(client, f);
    res[f[0]] = {
      value: d.value,
      reason: d.reason,
      variant: d.variant,
      errorCode: d.errorCode,
      flagMetadata: d.flagMetadata,
    };
  }
  return res;
}

async function web() {
  if (cfg.sse) {
    const { EventSource } = require('eventsource');
    // Report when the provider's stream opens, so the test changes the
    // rules only once it listens.
    globalThis.EventSource = class extends EventSource {
      constructor(url, init) {
        super(url, init);
        this.addEventListener('open', () => out({ event: 'sse-open', url: String(url) }));
        this.addEventListener('error', () => out({ event: 'sse-error', url: String(url), readyState: this.readyState }));
      }
    };
  }
  const { OpenFeature, ProviderEvents } = require('@openfeature/web-sdk');
  const { OFREPWebProvider } = require('@openfeature/ofrep-web-provider');
  const provider = new OFREPWebProvider({
    baseUrl: cfg.baseUrl,
    headers: cfg.headers || [],
    cacheMode: 'disabled', // Node has no localStorage
    changeDetection: cfg.changeDetection,
    pollInterval: cfg.pollInterval,
    fetchImplementation: recordingFetch,
  });
  await OpenFeature.setContext(cfg.context || {});
  try {
    await OpenFeature.setProviderAndWait(provider);
  } catch (err) {
    // A refused key (401) makes the provider FATAL.
    out({ event: 'init-failed', status: OpenFeature.getClient().providerStatus, message: String(err && err.message) });
    await OpenFeature.close();
    return;
  }
  const client = OpenFeature.getClient();
  if (!cfg.watch) {
    out({ event: 'ready', cached: Object.keys(provider.flagCache).sort(), flags: await evaluateAll(client) });
    await OpenFeature.close();
    return;
  }
  client.addHandler(ProviderEvents.ConfigurationChanged, async (d) => {
    out({ event: 'changed', flagsChanged: (d && d.flagsChanged) || [], flags: await evaluateAll(client) });
  });
  client.addHandler(ProviderEvents.Stale, (d) => out({ event: 'stale', message: d && d.message }));
  client.addHandler(ProviderEvents.Error, (d) => out({ event: 'provider-error', message: d && d.message }));
  out({ event: 'ready', cached: Object.keys(provider.flagCache).sort(), flags: await evaluateAll(client) });
  process.stdin.resume();
  process.stdin.on('end', async () => {
    await OpenFeature.close();
    process.exit(0);
  });
}

async function server() {
  const { OpenFeature } = require('@openfeature/server-sdk');
  const { OFREPProvider } = require('@openfeature/ofrep-provider');
  await OpenFeature.setProviderAndWait(
    new OFREPProvider({ baseUrl: cfg.baseUrl, headers: cfg.headers || [], fetchImplementation: recordingFetch }),
  );
  const client = OpenFeature.getClient();
  client.setContext(cfg.context || {});
  out({ event: 'ready', flags: await evaluateAll(client) });
  await OpenFeature.close();
}

(cfg.mode === 'server' ? server : web)().catch(fail);
