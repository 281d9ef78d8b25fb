package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/scopeflags/scopeflags/controller"
)

// DefaultUsageTimeout bounds one report of evaluation counts (AddUsage),
// when Config.FetchTimeout is not lower.
const DefaultUsageTimeout = 10 * time.Second

// usageReport is POST /api/v1/usage's body (docs/admin-api.md).
type usageReport struct {
	Role   string       `json:"role"`
	Host   string       `json:"host"`
	At     time.Time    `json:"at"`
	Counts []usageCount `json:"counts"`
}

type usageCount struct {
	Flag    string `json:"flag"`
	Reason  string `json:"reason"`
	Variant string `json:"variant,omitempty"`
	Value   string `json:"value,omitempty"`
	Other   bool   `json:"other,omitempty"`
	Count   int64  `json:"count"`
}

// AddUsage sends an engine's evaluation counts to the server (POST
// /api/v1/usage, with the Source's key, URL and HTTP client), which
// stores them under a host naming the key: so flags evaluated only in
// pulling processes are not reported stale. It waits at most
// Config.FetchTimeout (DefaultUsageTimeout when that is longer). Any
// answer but 2xx is an error (ErrStatus, ErrRefused for 401 and 403, with
// the server's code and message; ErrFetch when the server could not be
// asked): the engine then keeps the counts and sends them with its next
// flush. A report with no counts sends nothing.
//
// *Source is a features.UsageSink: an engine over it flushes its counts
// here every features.UsageConfig.Flush.
func (s *Source) AddUsage(ctx context.Context, r controller.UsageReport) error {
	if len(r.Counts) == 0 {
		return nil
	}
	rep := usageReport{Role: r.Role, Host: r.Host, At: r.At.UTC(), Counts: make([]usageCount, len(r.Counts))}
	for i, c := range r.Counts {
		rep.Counts[i] = usageCount{Flag: c.Flag, Reason: string(c.Reason), Variant: c.Variant, Value: c.Value, Other: c.Other, Count: c.Count}
	}
	body, err := json.Marshal(rep)
	if err != nil { // strings, bools, ints and a time: cannot fail
		return fmt.Errorf("%w: usage report: %v", ErrFetch, err)
	}
	ctx, cancel := context.WithTimeout(ctx, min(s.cfg.FetchTimeout, DefaultUsageTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.usageURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrFetch, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.Key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: usage report: %v", ErrFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("usage report: %w", statusError(resp))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // so the connection is reused
	return nil
}
