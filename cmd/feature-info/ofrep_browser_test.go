package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ofrepFetchPage calls OFREP from another origin with fetch, as a web
// page's own code would: a bulk evaluation with Authorization (a
// preflighted request), the ETag it may read, a conditional request with
// If-None-Match, one with X-API-Key, and the change stream with
// EventSource. It writes what happened as JSON into #result.
const ofrepFetchPage = `<!doctype html>
<meta charset="utf-8"><title>OFREP from another origin</title>
<pre id="result"></pre>
<script>
(async () => {
  const p = new URLSearchParams(location.hash.slice(1));
  const base = p.get('base'), key = p.get('key');
  const res = {};
  const post = (headers) => fetch(base + '/ofrep/v1/evaluate/flags', {
    method: 'POST',
    headers: Object.assign({'Content-Type': 'application/json'}, headers),
    body: JSON.stringify({context: {targetingKey: 'user-1', plan: 'pro'}}),
  });
  try {
    const r = await post({'Authorization': 'Bearer ' + key});
    res.status = r.status;
    res.etag = r.headers.get('ETag');
    res.contentType = r.headers.get('Content-Type');
    const body = await r.json();
    res.flags = Object.fromEntries(body.flags.map(f => [f.key, f.value]));
    res.status304 = (await post({'Authorization': 'Bearer ' + key, 'If-None-Match': res.etag})).status;
    res.statusXAPIKey = (await post({'X-API-Key': key})).status;
  } catch (e) {
    res.fetchError = String(e);
  }
  res.stream = await new Promise(resolve => {
    const es = new EventSource(base + '/ofrep/v1/events');
    const done = (v) => { es.close(); resolve(v); };
    es.onopen = () => done('open');
    es.onerror = () => done('error');
    setTimeout(() => done('timeout'), 5000);
  });
  document.getElementById('result').textContent = JSON.stringify(res);
  document.body.insertAdjacentHTML('beforeend', '<p id="done">done</p>');
})();
</script>
`

// ofrepProviderPage runs the OpenFeature web SDK with the OFREP web
// provider in the page, loaded as ES modules from the test's node_modules
// through an import map. #values shows the flag values (updated on each
// configuration change), #sse appears once the provider's change stream is
// open, #fetches lists the provider's requests.
const ofrepProviderPage = `<!doctype html>
<meta charset="utf-8"><title>OFREP web provider</title>
<script type="importmap">
{"imports": {
  "@openfeature/core": "/nm/@openfeature/core/dist/esm/index.js",
  "@openfeature/web-sdk": "/nm/@openfeature/web-sdk/dist/esm/index.js",
  "@openfeature/ofrep-core": "/nm/@openfeature/ofrep-web-provider/node_modules/@openfeature/ofrep-core/index.esm.js",
  "@openfeature/ofrep-web-provider": "/nm/@openfeature/ofrep-web-provider/index.esm.js"
}}
</script>
<pre id="values"></pre>
<ol id="fetches"></ol>
<script type="module">
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

const p = new URLSearchParams(location.hash.slice(1));
const show = (id, text) => { document.getElementById(id).textContent = text; };
const Native = window.EventSource;
window.EventSource = class extends Native {
  constructor(url, init) {
    super(url, init);
    this.addEventListener('open', () => document.body.insertAdjacentHTML('beforeend', '<p id="sse">stream open</p>'));
  }
};
const provider = new OFREPWebProvider({
  baseUrl: p.get('base'),
  headers: [['Authorization', 'Bearer ' + p.get('key')]],
  cacheMode: 'disabled',
  pollInterval: 60000,
  fetchImplementation: async (req, init) => {
    const r = await fetch(req, init);
    const li = document.createElement('li');
    li.textContent = JSON.stringify({url: req.url, ifNoneMatch: req.headers.get('If-None-Match'), status: r.status, etag: r.headers.get('ETag')});
    document.getElementById('fetches').append(li);
    return r;
  },
});
try {
  await OpenFeature.setContext({targetingKey: 'user-1', plan: 'pro'});
  await OpenFeature.setProviderAndWait(provider);
  const client = OpenFeature.getClient();
  const values = () => JSON.stringify({
    banner: client.getBooleanValue('web.banner.enabled', false),
    greeting: client.getStringValue('web.greeting', 'client-default'),
    maxItems: client.getNumberValue('web.max_items', -1),
    secret: client.getBooleanDetails('internal.secret', false).errorCode,
  });
  show('values', values());
  client.addHandler(ProviderEvents.ConfigurationChanged, () => show('values', values()));
} catch (e) {
  show('values', 'error: ' + e);
}
</script>
`

// pageServer serves the test pages (and, when dir is set, node_modules)
// from its own loopback origin.
func pageServer(t *testing.T, nodeModules string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	page := func(html string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(html))
		}
	}
	mux.Handle("GET /fetch.html", page(ofrepFetchPage))
	mux.Handle("GET /provider.html", page(ofrepProviderPage))
	if nodeModules != "" {
		mux.Handle("GET /nm/", http.StripPrefix("/nm/", http.FileServer(http.Dir(nodeModules))))
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// fetchResult is what ofrepFetchPage reports.
type fetchResult struct {
	Status        int            `json:"status"`
	ETag          string         `json:"etag"`
	ContentType   string         `json:"contentType"`
	Flags         map[string]any `json:"flags"`
	Status304     int            `json:"status304"`
	StatusXAPIKey int            `json:"statusXAPIKey"`
	FetchError    string         `json:"fetchError"`
	Stream        string         `json:"stream"`
}

// TestOFREPBrowserCORS calls OFREP from pages on two other loopback
// origins in headless Chromium: the one listed in -cors-origins reads
// flags, the ETag, a 304 and the change stream; the other is refused by
// the browser. Then, when the JS packages are installed, the real OFREP
// web provider runs in the allowed page and a rules change reaches it
// through the stream.
func TestOFREPBrowserCORS(t *testing.T) {
	ctx := browser(t)
	nodeModules := ""
	if dir, err := filepath.Abs(filepath.Join("testdata", "ofrep-js", "node_modules")); err == nil {
		if _, err := os.Stat(dir); err == nil || os.Getenv("CI") == "true" {
			nodeModules = dir
		}
	}
	allowed, blocked := pageServer(t, nodeModules), pageServer(t, "")
	require.NotEqual(t, allowed.URL, blocked.URL)
	s := startOFREPServer(t, allowed.URL)
	base := s.m.PublicURL()
	hash := "#" + url.Values{"base": {base}, "key": {s.external}}.Encode()

	read := func(name, page string) fetchResult {
		t.Helper()
		var text string
		step(t, ctx, name,
			chromedp.Navigate(page+"/fetch.html"+hash),
			chromedp.WaitReady("#done", chromedp.ByID),
			chromedp.Text("#result", &text, chromedp.ByID),
		)
		var res fetchResult
		require.NoError(t, json.Unmarshal([]byte(text), &res), text)
		return res
	}

	t.Run("listed origin", func(t *testing.T) {
		res := read("allowed", allowed.URL)
		assert.Empty(t, res.FetchError)
		assert.Equal(t, 200, res.Status)
		assert.Equal(t, "application/json", res.ContentType)
		assert.Regexp(t, `^"[0-9a-f]+"$`, res.ETag, "ETag is exposed to the page")
		assert.Equal(t, map[string]any{"web.banner.enabled": true, "web.greeting": "good day", "web.max_items": 25.0,
			"web.ratio": 0.75, "web.layout": map[string]any{"columns": 3.0}}, res.Flags)
		assert.Equal(t, 304, res.Status304, "If-None-Match is allowed by the preflight")
		assert.Equal(t, 200, res.StatusXAPIKey, "X-API-Key is allowed by the preflight")
		assert.Equal(t, "open", res.Stream, "the change stream is readable across origins")
	})

	t.Run("unlisted origin", func(t *testing.T) {
		res := read("blocked", blocked.URL)
		assert.Contains(t, res.FetchError, "Failed to fetch", "the browser refuses the answer")
		assert.Zero(t, res.Status)
		assert.Nil(t, res.Flags)
		assert.Equal(t, "error", res.Stream)
	})

	t.Run("web provider", func(t *testing.T) {
		if nodeModules == "" {
			t.Skip("testdata/ofrep-js/node_modules missing (run make js-deps): skipping the web provider in the browser")
		}
		ofrepJSDir(t) // fails on a stale install
		var values string
		step(t, ctx, "provider ready",
			chromedp.Navigate(allowed.URL+"/provider.html"+hash),
			chromedp.WaitReady("#sse", chromedp.ByID),
			chromedp.Text("#values", &values, chromedp.ByID),
		)
		assert.Equal(t, `{"banner":true,"greeting":"good day","maxItems":25,"secret":"FLAG_NOT_FOUND"}`, values)

		start := time.Now()
		s.setRule(t, "web.max_items       default  0   25", "web.max_items       default  0   40")
		want := `{"banner":true,"greeting":"good day","maxItems":40,"secret":"FLAG_NOT_FOUND"}`
		step(t, ctx, "change arrives",
			chromedp.Poll(`document.getElementById('values').textContent === `+jsString(want), nil,
				chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(20*time.Millisecond)),
		)
		// Through the stream: the provider polls once a minute, and the
		// refetch carries the message's flagConfigEtag (below).
		t.Logf("the change reached the page in %s", time.Since(start))

		var fetches []string
		step(t, ctx, "fetches", chromedp.Evaluate(`[...document.querySelectorAll('#fetches li')].map(li => li.textContent)`, &fetches))
		// The initial bulk request, the refetch every stream starts with (a
		// 304, unless the provider's 50 ms debounce merged it with the
		// change's message) and the refetch the change triggered.
		require.Contains(t, []int{2, 3}, len(fetches), "fetches: %v", fetches)
		type fetch struct {
			URL, IfNoneMatch, ETag string
			Status                 int
		}
		all := make([]fetch, len(fetches))
		for i, f := range fetches {
			require.NoError(t, json.Unmarshal([]byte(f), &all[i]))
		}
		assert.Equal(t, 200, all[0].Status)
		assert.NotEmpty(t, all[0].ETag)
		for i, f := range all[1:] {
			assert.Equal(t, all[0].ETag, f.IfNoneMatch, "refetch %d sends the exposed ETag back", i)
			assert.Contains(t, f.URL, "flagConfigEtag=")
		}
		if len(all) == 3 {
			assert.Equal(t, 304, all[1].Status, "the opening refetch found nothing new")
		}
		assert.Equal(t, 200, all[len(all)-1].Status)
		assert.NotEqual(t, all[0].ETag, all[len(all)-1].ETag)
	})
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return strings.TrimSpace(string(b))
}
