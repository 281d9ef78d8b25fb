// Command bench-cluster measures how fast a rules change reaches every
// server of a cluster: it starts N "feature-info serve" on loopback against
// one PostgreSQL database (a fresh schema), follows each server's
// /api/v1/events stream, makes CHANGES rule changes through the first
// server's API at RATE a second, and reports, per server, the time from
// the start of each save request to that server's stream announcing the
// revision: p50, p99, max.
//
//	go run ./scripts/bench-cluster [-servers 3] [-changes 200] [-rate 10] [-dsn DSN]
//
// make bench-cluster runs it. The DSN defaults to SCOPEFLAGS_TEST_POSTGRES.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	_ "github.com/lib/pq"
)

func main() {
	servers := flag.Int("servers", 3, "feature-info serve processes")
	changes := flag.Int("changes", 200, "rule changes to make")
	rate := flag.Float64("rate", 10, "changes a second")
	dsn := flag.String("dsn", os.Getenv("SCOPEFLAGS_TEST_POSTGRES"), "PostgreSQL DSN (a schema is made in it and dropped)")
	flag.Parse()
	if err := run(*servers, *changes, *rate, *dsn); err != nil {
		fmt.Fprintln(os.Stderr, "bench-cluster:", err)
		os.Exit(1)
	}
}

type server struct {
	url  string
	cmd  *exec.Cmd
	mu   sync.Mutex
	seen map[int64]time.Time // revision -> when the stream announced it
}

func run(n, changes int, rate float64, dsn string) error {
	if dsn == "" {
		return fmt.Errorf("no DSN: set -dsn or SCOPEFLAGS_TEST_POSTGRES")
	}
	dir, err := os.MkdirTemp("", "bench-cluster")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "feature-info")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/feature-info").CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	schemaDSN, drop, err := freshSchema(dsn)
	if err != nil {
		return err
	}
	defer drop()

	key := "sf_" + randHex(32)
	var srvs []*server
	defer func() {
		for _, s := range srvs {
			s.cmd.Process.Signal(os.Interrupt)
			s.cmd.Wait()
		}
	}()
	for i := range n {
		s, err := start(bin, schemaDSN, key, i)
		if err != nil {
			return err
		}
		srvs = append(srvs, s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, s := range srvs {
		if err := s.follow(ctx, key); err != nil {
			return err
		}
	}
	time.Sleep(500 * time.Millisecond)

	starts := map[int64]time.Time{}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range changes {
		<-tick.C
		text := fmt.Sprintf("bench.flag default 0 value-%d\nbench.other team:qa 10 on\n", i)
		req, _ := http.NewRequest("PUT", srvs[0].url+"/api/v1/rules?comment=bench", strings.NewReader(text))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("If-Match", "*")
		req.Header.Set("Content-Type", "text/plain")
		begin := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("save %d: %w", i, err)
		}
		var out struct {
			Revision int64 `json:"revision"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("save %d: status %d: %v", i, resp.StatusCode, err)
		}
		starts[out.Revision] = begin
	}
	time.Sleep(2 * time.Second)

	fmt.Printf("%d servers, %d changes at %.0f/s through the first server's API; time from the start of each save request to each server's /api/v1/events announcing its revision\n\n", n, changes, rate)
	fmt.Println("| server | seen | p50 | p99 | max |")
	fmt.Println("|---|---|---|---|---|")
	for i, s := range srvs {
		var ds []time.Duration
		s.mu.Lock()
		for rev, begin := range starts {
			if at, ok := s.seen[rev]; ok {
				ds = append(ds, at.Sub(begin))
			}
		}
		s.mu.Unlock()
		slices.Sort(ds)
		if len(ds) == 0 {
			fmt.Printf("| %d | 0/%d | | | |\n", i+1, len(starts))
			continue
		}
		q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
		fmt.Printf("| %d | %d/%d | %.1f ms | %.1f ms | %.1f ms |\n", i+1, len(ds), len(starts),
			ms(q(0.50)), ms(q(0.99)), ms(ds[len(ds)-1]))
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func start(bin, dsn, key string, i int) (*server, error) {
	cmd := exec.Command(bin, "serve", "-addr", "127.0.0.1:0", "-db", dsn)
	cmd.Env = append(os.Environ(), "SCOPEFLAGS_ADMIN_KEY="+key)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`url=(http://\S+)/\+feature-info`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case u := <-found:
		return &server{url: u, cmd: cmd, seen: map[int64]time.Time{}}, nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		return nil, fmt.Errorf("server %d did not start", i+1)
	}
}

// follow reads the server's change stream, noting when each revision is
// announced.
func (s *server) follow(ctx context.Context, key string) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return fmt.Errorf("%s/api/v1/events: status %d", s.url, resp.StatusCode)
	}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			now := time.Now()
			var ev struct {
				Revision int64 `json:"revision"`
			}
			if json.Unmarshal([]byte(data), &ev) == nil {
				s.mu.Lock()
				if _, dup := s.seen[ev.Revision]; !dup {
					s.seen[ev.Revision] = now
				}
				s.mu.Unlock()
			}
		}
	}()
	return nil
}

// freshSchema makes a schema for the run and returns a DSN selecting it.
func freshSchema(dsn string) (string, func(), error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return "", nil, err
	}
	schema := "sf_bench_" + randHex(6)
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	drop := func() { db.Exec("DROP SCHEMA " + schema + " CASCADE"); db.Close() }
	u, err := url.Parse(dsn)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
