package ofrep

import (
	"math"
	"sync"
	"time"
)

// limiter is a token bucket per key.
type limiter struct {
	rate  float64 // tokens a second
	burst float64
	mu    sync.Mutex
	keys  map[int64]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	if burst < 1 {
		burst = int(math.Ceil(rate))
	}
	return &limiter{rate: rate, burst: float64(burst), keys: map[int64]*bucket{}}
}

// allow takes a token for key id at now; when none is left it says how
// many whole seconds until one is.
func (l *limiter) allow(id int64, now time.Time) (retryAfter int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.keys[id]
	if b == nil {
		// Keys are the stored, unrevoked ones: a bounded set.
		b = &bucket{tokens: l.burst, last: now}
		l.keys[id] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return max(1, int(math.Ceil((1-b.tokens)/l.rate))), false
}
