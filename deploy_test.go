package scopeflags

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The Dockerfile, its build context and the image's conventions, as the
// tests below check them (docs/deploy.md describes them).
const (
	dockerfilePath = "Dockerfile"
	imageDataDir   = "/data"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int    // where it starts
	cmd  string // upper-cased: FROM, RUN, COPY...
	args string
}

func (in instruction) String() string {
	return fmt.Sprintf("%s:%d: %s %s", dockerfilePath, in.line, in.cmd, in.args)
}

// stage is one FROM and the instructions after it.
type stage struct {
	from instruction
	base string // the image it starts from
	name string // its AS name, if any
	ins  []instruction
}

// find returns the stage's instructions named cmd.
func (s stage) find(cmd string) []instruction {
	var out []instruction
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// env is the stage's ENV, KEY=VALUE pairs (no quoting: the Dockerfile
// uses none).
func (s stage) env(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, in := range s.find("ENV") {
		for _, kv := range strings.Fields(in.args) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("%s: want KEY=VALUE, got %q", in, kv)
			}
			env[k] = v
		}
	}
	return env
}

// parseDockerfile reads the stages of the Dockerfile: comment lines are
// dropped (also within continuations, as Docker does), a line ending in \
// continues on the next.
func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	b, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	var cur *instruction
	flush := func() {
		if cur == nil {
			return
		}
		in := *cur
		cur = nil
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := stage{from: in, base: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			return
		}
		if len(stages) == 0 {
			t.Fatalf("%s: before the first FROM", in)
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		more := strings.HasSuffix(trimmed, `\`)
		text := strings.TrimSpace(strings.TrimSuffix(trimmed, `\`))
		if cur == nil {
			cmd, args, _ := strings.Cut(text, " ")
			cur = &instruction{line: i + 1, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		} else {
			cur.args += " " + text
		}
		if !more {
			flush()
		}
	}
	flush()
	if len(stages) == 0 {
		t.Fatalf("%s: no FROM", dockerfilePath)
	}
	return stages
}

// execForm is an instruction's JSON (exec form) arguments, or nil when it
// uses the shell form.
func execForm(args string) []string {
	var v []string
	if json.Unmarshal([]byte(strings.TrimSpace(args)), &v) != nil {
		return nil
	}
	return v
}

// options splits leading --name=value options (RUN --mount, COPY --from,
// HEALTHCHECK --interval) from the rest.
func options(args string) (map[string][]string, string) {
	opts := map[string][]string{}
	rest := strings.TrimSpace(args)
	for strings.HasPrefix(rest, "--") {
		opt, after, _ := strings.Cut(rest, " ")
		k, v, _ := strings.Cut(strings.TrimPrefix(opt, "--"), "=")
		opts[k] = append(opts[k], v)
		rest = strings.TrimSpace(after)
	}
	return opts, rest
}

var goBuildOut = regexp.MustCompile(`(^|\s)-o\s+(\S+)`)

// goBuild is the build stage's RUN ... go build ... instruction, the
// shell command it runs (its RUN options removed) and the file it writes.
func goBuild(t *testing.T, stages []stage) (st stage, in instruction, command, out string) {
	t.Helper()
	for _, st := range stages[:len(stages)-1] {
		for _, in := range st.find("RUN") {
			if !strings.Contains(in.args, "go build") {
				continue
			}
			_, command := options(in.args)
			m := goBuildOut.FindStringSubmatch(command)
			if m == nil {
				t.Fatalf("%s: go build without -o FILE", in)
			}
			return st, in, command, m[2]
		}
	}
	t.Fatalf("%s: no RUN ... go build in a stage before the last", dockerfilePath)
	return
}

// dockerignore is .dockerignore's patterns: a path they exclude is not in
// the build context.
type dockerignore []struct {
	re     *regexp.Regexp
	negate bool
}

func readDockerignore(t *testing.T) dockerignore {
	t.Helper()
	f, err := os.Open(".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var d dockerignore
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		negate := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/")
		// Docker's patterns: filepath.Match, plus ** for any directories.
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		re.WriteString("$")
		d = append(d, struct {
			re     *regexp.Regexp
			negate bool
		}{regexp.MustCompile(re.String()), negate})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return d
}

// excluded reports whether path (slash-separated, relative to the
// context) is left out: the last pattern matching it or a parent decides.
func (d dockerignore) excluded(path string) bool {
	out := false
	for _, p := range d {
		for prefix := path; ; {
			if p.re.MatchString(prefix) {
				out = !p.negate
				break
			}
			i := strings.LastIndex(prefix, "/")
			if i < 0 {
				break
			}
			prefix = prefix[:i]
		}
	}
	return out
}

// buildContext copies the repository's files that .dockerignore keeps
// into dir: what COPY . . puts into the build stage.
func buildContext(t *testing.T, dir string) {
	t.Helper()
	ignore := readDockerignore(t)
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == "." {
			return err
		}
		rel := filepath.ToSlash(path)
		if ignore.excluded(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, path), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, path), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// buildAsDockerfile runs the Dockerfile's go build command, exactly, with
// its stage's ENV, in a copy of the build context, writing the binary
// into a temporary directory instead of the image's path. It returns the
// binary.
func buildAsDockerfile(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the image's binary is built for Linux")
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to run the RUN command")
	}
	stages := parseDockerfile(t)
	st, in, command, out := goBuild(t, stages)
	ctxDir, outDir := t.TempDir(), t.TempDir()
	buildContext(t, ctxDir)
	bin := filepath.Join(outDir, "feature-info")
	command = strings.Replace(command, out, bin, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Dir = ctxDir
	// The golang image sets no GOFLAGS; the test's own must not leak in.
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	for k, v := range st.env(t) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", in, err, b)
	}
	return bin
}

// TestDockerfileBuild runs the Dockerfile's build command as its build
// stage would (the same command, environment and build context) and checks
// that the result is a static Linux binary that runs, and that the image
// copies exactly that file.
func TestDockerfileBuild(t *testing.T) {
	bin := buildAsDockerfile(t)
	stages := parseDockerfile(t)
	build, in, _, out := goBuild(t, stages)

	t.Run("static", func(t *testing.T) {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			switch p.Type {
			case elf.PT_INTERP:
				t.Errorf("%s: the binary names a dynamic loader (PT_INTERP): it is not static (CGO_ENABLED=0?)", in)
			case elf.PT_DYNAMIC:
				t.Errorf("%s: the binary has a dynamic section: it is not static", in)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s: the binary needs shared libraries %v", in, libs)
		}
	})
	t.Run("runs", func(t *testing.T) {
		for _, args := range [][]string{{"help"}, {"healthcheck", "-h"}, {"serve", "-h"}} {
			if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				t.Errorf("feature-info %s: %v\n%s", strings.Join(args, " "), err, b)
			}
		}
	})
	t.Run("the image copies it", func(t *testing.T) {
		final := stages[len(stages)-1]
		for _, cp := range final.find("COPY") {
			opts, rest := options(cp.args)
			if f := strings.Fields(rest); slices.Contains(opts["from"], build.name) && len(f) == 2 && f[0] == out {
				return
			}
		}
		t.Errorf("%s: the last stage copies no %s --from=%s", dockerfilePath, out, build.name)
	})
}

// TestDockerfile checks the final image's conventions: it runs as a
// numeric non-root user; with no shell (distroless static, scratch) every
// command is in exec form and its HEALTHCHECK runs the binary's own
// healthcheck on /readyz; the port it exposes is the one serve listens on;
// the SQLite default is on a volume the user owns; every SCOPEFLAGS_
// variable it sets is a serve flag's.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%s: want a build stage and a run stage, got %d stage(s)", dockerfilePath, len(stages))
	}
	final := stages[len(stages)-1]
	_, _, _, out := goBuild(t, stages)
	last := func(cmd string) instruction {
		t.Helper()
		ins := final.find(cmd)
		if len(ins) == 0 {
			t.Fatalf("%s: the last stage (line %d) has no %s", dockerfilePath, final.from.line, cmd)
		}
		return ins[len(ins)-1]
	}

	noShell := final.base == "scratch" || strings.HasPrefix(final.base, "gcr.io/distroless/static")
	if !noShell {
		t.Errorf("%s: the last stage starts from %s: want gcr.io/distroless/static… or scratch (no shell, static binary)", final.from, final.base)
	}
	for _, in := range final.find("RUN") {
		t.Errorf("%s: the last stage has no shell to RUN in", in)
	}

	user := last("USER")
	m := regexp.MustCompile(`^(\d+)(?::(\d+))?$`).FindStringSubmatch(user.args)
	if m == nil {
		t.Fatalf("%s: want a numeric uid[:gid] (Kubernetes' runAsNonRoot checks only numbers)", user)
	}
	if m[1] == "0" {
		t.Errorf("%s: runs as root", user)
	}

	entry := execForm(last("ENTRYPOINT").args)
	if len(entry) == 0 {
		t.Fatalf("%s: want the exec form [\"/path/feature-info\"]", last("ENTRYPOINT"))
	}
	binPath := entry[0]
	copied := false
	for _, cp := range final.find("COPY") {
		if f := strings.Fields(func() string { _, r := options(cp.args); return r }()); len(f) == 2 && f[0] == out && f[1] == binPath {
			copied = true
		}
	}
	if !copied {
		t.Errorf("%s: ENTRYPOINT runs %s, which no COPY of the build's %s puts there", last("ENTRYPOINT"), binPath, out)
	}
	if cmd := execForm(last("CMD").args); len(cmd) == 0 || cmd[0] != "serve" {
		t.Errorf("%s: want [\"serve\"] (exec form: no shell)", last("CMD"))
	}

	hc := last("HEALTHCHECK")
	opts, rest := options(hc.args)
	probe := execForm(strings.TrimSpace(strings.TrimPrefix(rest, "CMD")))
	if !strings.HasPrefix(rest, "CMD") || len(probe) < 2 || probe[0] != binPath || probe[1] != "healthcheck" {
		t.Errorf("%s: want CMD [%q, \"healthcheck\", ...] (exec form: no shell or curl in the image)", hc, binPath)
	}
	for _, o := range []string{"interval", "timeout", "start-period"} {
		if len(opts[o]) == 0 {
			t.Errorf("%s: set --%s (the defaults wait 30 s between checks and none at start)", hc, o)
		}
	}

	env := final.env(t)
	_, port, err := net.SplitHostPort(env["SCOPEFLAGS_ADDR"])
	if err != nil {
		t.Errorf("%s: ENV SCOPEFLAGS_ADDR=%q: %v (serve's default listens on loopback only)", dockerfilePath, env["SCOPEFLAGS_ADDR"], err)
	}
	if expose := strings.Fields(last("EXPOSE").args); !slices.Contains(expose, port) && !slices.Contains(expose, port+"/tcp") {
		t.Errorf("%s: exposes %v, but serve listens on port %q (SCOPEFLAGS_ADDR)", last("EXPOSE"), expose, port)
	}

	if w := last("WORKDIR").args; w != imageDataDir {
		t.Errorf("%s: want %s, where the SQLite default (and -db scopeflags.db of other commands) lands", last("WORKDIR"), imageDataDir)
	}
	vol := last("VOLUME").args
	if v := execForm(vol); v != nil {
		vol = strings.Join(v, " ")
	}
	if !slices.Contains(strings.Fields(vol), imageDataDir) {
		t.Errorf("%s: want %s a volume", last("VOLUME"), imageDataDir)
	}
	if db := env["SCOPEFLAGS_DB"]; !strings.HasPrefix(db, imageDataDir+"/") {
		t.Errorf("%s: ENV SCOPEFLAGS_DB=%q: want the SQLite file on the %s volume", dockerfilePath, db, imageDataDir)
	}
	owned := false
	for _, cp := range final.find("COPY") {
		o, r := options(cp.args)
		if f := strings.Fields(r); len(f) == 2 && f[1] == imageDataDir && slices.Contains(o["chown"], user.args) {
			owned = true
		}
	}
	if !owned {
		t.Errorf("%s: no COPY --chown=%s ... %s: the volume would be root's and the database unwritable", dockerfilePath, user.args, imageDataDir)
	}
}

// TestDockerImage builds the image and runs it where a container runtime
// answers; elsewhere it skips (TestDockerfileBuild has run the build
// command). The container must become healthy by its own HEALTHCHECK and
// answer /readyz on its published port.
func TestDockerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no image build")
	}
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker CLI: the image is not built here (TestDockerfileBuild ran its build command)")
	}
	if b, err := exec.Command(docker, "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		first, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		t.Skipf("no container runtime answers (docker info: %s): the image is not built here (TestDockerfileBuild ran its build command)", first)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	run := func(args ...string) string {
		t.Helper()
		b, err := exec.CommandContext(ctx, docker, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return strings.TrimSpace(string(b))
	}
	tag := fmt.Sprintf("scopeflags-test:%d", time.Now().UnixNano())
	run("build", "-t", tag, ".")
	t.Cleanup(func() { exec.Command(docker, "rmi", "-f", tag).Run() })
	id := run("run", "-d", "-p", "127.0.0.1::8080", tag)
	t.Cleanup(func() { exec.Command(docker, "rm", "-f", id).Run() })

	deadline := time.Now().Add(2 * time.Minute)
	for status := ""; status != "healthy"; {
		if time.Now().After(deadline) {
			t.Fatalf("the container is %q after 2 minutes; its log:\n%s", status, run("logs", id))
		}
		time.Sleep(time.Second)
		status = run("inspect", "--format", "{{.State.Health.Status}}", id)
	}
	if u := run("inspect", "--format", "{{.Config.User}}", id); u == "" || u == "0" || strings.HasPrefix(u, "0:") || u == "root" {
		t.Errorf("the container runs as %q", u)
	}
	addr := run("port", id, "8080/tcp")
	addr, _, _ = strings.Cut(addr, "\n")
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ready": true`) {
		t.Errorf("GET /readyz on %s: %s %s", addr, resp.Status, body)
	}
}

// serveEnvNames runs "serve -h" of bin and returns SCOPEFLAGS_<FLAG> for
// each of its flags.
func serveEnvNames(t *testing.T, bin string) map[string]bool {
	t.Helper()
	b, _ := exec.Command(bin, "serve", "-h").CombinedOutput()
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(string(b), -1) {
		names["SCOPEFLAGS_"+strings.ToUpper(strings.ReplaceAll(m[1], "-", "_"))] = true
	}
	if !names["SCOPEFLAGS_DB"] || !names["SCOPEFLAGS_ADDR"] {
		t.Fatalf("serve -h lists no -db or -addr:\n%s", b)
	}
	return names
}

// notFlags are SCOPEFLAGS_ variables that name no serve flag, and why.
var notFlags = map[string]string{
	"SCOPEFLAGS_ADMIN_KEY":     "serve's first admin key, a secret kept off the command line",
	"SCOPEFLAGS_TEST_POSTGRES": "the tests' PostgreSQL",
}

var envName = regexp.MustCompile(`SCOPEFLAGS_[A-Z0-9_]+`)

// TestDeployEnvNames: every SCOPEFLAGS_ variable the Dockerfile sets and
// docs/deploy.md names is a serve flag's (-tls-cert: SCOPEFLAGS_TLS_CERT),
// as serve -h lists them, or one of the few that are not flags.
func TestDeployEnvNames(t *testing.T) {
	names := serveEnvNames(t, buildAsDockerfile(t))
	for _, file := range []string{dockerfilePath, "docs/deploy.md"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, name := range envName.FindAllString(line, -1) {
				if !names[name] && notFlags[name] == "" {
					t.Errorf("%s:%d: %s is no serve flag's variable (serve -h lists -%s?)", file, i+1, name,
						strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "SCOPEFLAGS_"), "_", "-")))
				}
			}
		}
	}
}

// fence is one fenced code block of a Markdown file.
type fence struct {
	lang, text string
	line       int    // of the opening fence
	before     string // the text between the previous block and this one
}

var fenceRE = regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```")

func fences(t *testing.T, path string) []fence {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	var out []fence
	prev := 0
	for _, m := range fenceRE.FindAllStringSubmatchIndex(text, -1) {
		out = append(out, fence{lang: text[m[2]:m[3]], text: text[m[4]:m[5]],
			line: strings.Count(text[:m[0]], "\n") + 1, before: text[prev:m[0]]})
		prev = m[1]
	}
	return out
}

// unitFile is a systemd unit's sections and their settings.
type unitFile map[string]map[string][]string

func parseUnit(text string) unitFile {
	u := unitFile{}
	section := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, _ := strings.Cut(line, "=")
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

var unitName = regexp.MustCompile(`/etc/systemd/system/([a-z-]+\.(?:service|timer))`)

// TestDeploySystemd: docs/deploy.md's systemd units are valid (systemd-
// analyze verify, where it exists) and the server's has what the page
// says it has: a dedicated or dynamic user, a state directory, strict
// protection, restarts on failure, its settings from an environment
// file, and time to drain on stop.
func TestDeploySystemd(t *testing.T) {
	bin := buildAsDockerfile(t)
	dir := t.TempDir()
	units := map[string]unitFile{}
	var files []string
	for _, f := range fences(t, "docs/deploy.md") {
		if f.lang != "ini" || !strings.Contains(f.text, "[Unit]") {
			continue
		}
		names := unitName.FindAllStringSubmatch(f.before, -1)
		if len(names) == 0 {
			t.Fatalf("docs/deploy.md:%d: a unit with no /etc/systemd/system/NAME before it", f.line)
		}
		name := names[len(names)-1][1]
		units[name] = parseUnit(f.text)
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(f.text, "/usr/local/bin/feature-info", bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	// The page builds the binary as the image does.
	_, _, command, out := goBuild(t, parseDockerfile(t))
	built := false
	for _, f := range fences(t, "docs/deploy.md") {
		for _, line := range strings.Split(f.text, "\n") {
			if strings.Contains(line, "go build") {
				built = true
				if want := strings.Replace(command, out, "feature-info", 1); line != want {
					t.Errorf("docs/deploy.md:%d: builds with\n%s\nthe Dockerfile with\n%s", f.line, line, want)
				}
			}
		}
	}
	if !built {
		t.Errorf("docs/deploy.md: no go build command for the systemd install")
	}
	svc := units["scopeflags.service"]
	if svc == nil {
		t.Fatalf("docs/deploy.md has no scopeflags.service (found %d units)", len(units))
	}
	s := svc["Service"]
	want := map[string]string{"ProtectSystem": "strict", "NoNewPrivileges": "yes", "Restart": "on-failure", "StateDirectory": "scopeflags"}
	for k, v := range want {
		if !slices.Contains(s[k], v) {
			t.Errorf("scopeflags.service: want %s=%s, have %q", k, v, s[k])
		}
	}
	if len(s["User"]) == 0 && !slices.Contains(s["DynamicUser"], "yes") {
		t.Errorf("scopeflags.service: runs as root: want User= or DynamicUser=yes")
	}
	if len(s["EnvironmentFile"]) == 0 {
		t.Errorf("scopeflags.service: no EnvironmentFile= for SCOPEFLAGS_DB and the rest")
	}
	if exec := s["ExecStart"]; len(exec) != 1 || !strings.HasSuffix(exec[0], "feature-info serve") {
		t.Errorf("scopeflags.service: ExecStart=%q: want feature-info serve, its settings from the environment", exec)
	}
	if stop, err := time.ParseDuration(strings.Join(s["TimeoutStopSec"], "")); err != nil || stop < 30*time.Second {
		t.Errorf("scopeflags.service: TimeoutStopSec=%q: want at least 30s, for the drain (-drain-timeout, 25 s) to finish", s["TimeoutStopSec"])
	}
	if timer := units["scopeflags-backup.timer"]; timer == nil || units["scopeflags-backup.service"] == nil {
		t.Errorf("docs/deploy.md: want scopeflags-backup.service and .timer (the backup schedule)")
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze: the units' structure was checked, not their validity")
	}
	verify, err := exec.Command(sa, append([]string{"verify"}, files...)...).CombinedOutput()
	// verify exits 0 on unknown keys, but says so: any word is a failure.
	if err != nil || len(verify) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, verify)
	}
}

// TestDeployKubernetes parses docs/deploy.md's Kubernetes manifests and
// checks that they fit together and say what the page says: N replicas,
// the DSN from the Secret, readiness on /readyz and liveness on /healthz
// on the port serve listens on, the image's non-root user, a grace period
// that covers preStop and serve's drain, memory sized, and a Service, Ingress
// and CronJob that name what exists.
func TestDeployKubernetes(t *testing.T) {
	docs := map[string]map[string]any{} // kind/name
	for _, f := range fences(t, "docs/deploy.md") {
		if f.lang != "yaml" {
			continue
		}
		dec := yaml.NewDecoder(strings.NewReader(f.text))
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("docs/deploy.md:%d: %v", f.line, err)
			}
			kind, _ := doc["kind"].(string)
			name, _ := dig(doc, "metadata", "name").(string)
			if _, ok := doc["apiVersion"].(string); !ok || kind == "" || name == "" {
				t.Fatalf("docs/deploy.md:%d: a manifest without apiVersion, kind or metadata.name", f.line)
			}
			docs[kind+"/"+name] = doc
		}
	}
	dep := docs["Deployment/scopeflags"]
	if dep == nil {
		t.Fatalf("docs/deploy.md: no Deployment scopeflags among %d manifests", len(docs))
	}
	if n, _ := dig(dep, "spec", "replicas").(int); n < 2 {
		t.Errorf("Deployment: replicas %v: want N > 1 on one PostgreSQL", dig(dep, "spec", "replicas"))
	}
	pod, _ := dig(dep, "spec", "template", "spec").(map[string]any)
	containers, _ := dig(pod, "containers").([]any)
	if len(containers) != 1 {
		t.Fatalf("Deployment: want one container, have %d", len(containers))
	}
	c := containers[0].(map[string]any)

	secretHas := func(where string, ref any) {
		t.Helper()
		name, _ := dig(ref, "name").(string)
		key, _ := dig(ref, "key").(string)
		if dig(docs["Secret/"+name], "stringData", key) == nil {
			t.Errorf("%s: secretKeyRef %s/%s: docs/deploy.md has no such Secret key", where, name, key)
		}
	}
	ports := map[string]int{}
	for _, p := range dig(c, "ports").([]any) {
		name, _ := dig(p, "name").(string)
		port, _ := dig(p, "containerPort").(int)
		ports[name] = port
	}
	env := map[string]any{}
	for _, e := range dig(c, "env").([]any) {
		name, _ := dig(e, "name").(string)
		env[name] = e
		if ref := dig(e, "valueFrom", "secretKeyRef"); ref != nil {
			secretHas("Deployment env "+name, ref)
		}
	}
	if dig(env["SCOPEFLAGS_DB"], "valueFrom", "secretKeyRef") == nil {
		t.Errorf("Deployment: SCOPEFLAGS_DB: want it from a Secret (it holds the password)")
	}
	addr, _ := dig(env["SCOPEFLAGS_ADDR"], "value").(string)
	_, listen, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("Deployment: SCOPEFLAGS_ADDR %q: %v", addr, err)
	}
	portOf := func(p any) string {
		if name, ok := p.(string); ok {
			return fmt.Sprint(ports[name])
		}
		return fmt.Sprint(p)
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		if got := dig(c, probe, "httpGet", "path"); got != path {
			t.Errorf("Deployment: %s on %v: want %s", probe, got, path)
		}
		if got := portOf(dig(c, probe, "httpGet", "port")); got != listen {
			t.Errorf("Deployment: %s on port %s, serve listens on %s (SCOPEFLAGS_ADDR)", probe, got, listen)
		}
	}
	uid := ""
	for _, st := range parseDockerfile(t) {
		for _, in := range st.find("USER") {
			uid, _, _ = strings.Cut(in.args, ":")
		}
	}
	if got := fmt.Sprint(dig(pod, "securityContext", "runAsUser")); got != uid || dig(pod, "securityContext", "runAsNonRoot") != true {
		t.Errorf("Deployment: runAsUser %s (runAsNonRoot %v): want the image's user %s, non-root", got, dig(pod, "securityContext", "runAsNonRoot"), uid)
	}
	grace, _ := dig(pod, "terminationGracePeriodSeconds").(int)
	preStop, _ := dig(c, "lifecycle", "preStop", "sleep", "seconds").(int)
	// serve's drain: -drain-delay (default none) and -drain-timeout
	// (default 25 s), the bound on in-flight requests.
	drain := func(name string, def time.Duration) int {
		v, _ := dig(env[name], "value").(string)
		if v == "" {
			return int(def.Seconds())
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Errorf("Deployment: %s %q: %v", name, v, err)
		}
		return int(d.Seconds())
	}
	delay, timeout := drain("SCOPEFLAGS_DRAIN_DELAY", 0), drain("SCOPEFLAGS_DRAIN_TIMEOUT", 25*time.Second)
	if grace < preStop+delay+timeout+5 {
		t.Errorf("Deployment: terminationGracePeriodSeconds %d: want at least preStop's %d s + the drain's %d s delay and %d s timeout + 5", grace, preStop, delay, timeout)
	}
	for _, r := range []string{"requests", "limits"} {
		if dig(c, "resources", r, "memory") == nil {
			t.Errorf("Deployment: no resources.%s.memory (docs/deploy.md#sizing)", r)
		}
	}

	svc := docs["Service/scopeflags"]
	for k, v := range dig(svc, "spec", "selector").(map[string]any) {
		if dig(dep, "spec", "template", "metadata", "labels", k) != v {
			t.Errorf("Service: selector %s=%v matches no pod of the Deployment", k, v)
		}
	}
	svcPorts := map[string]bool{}
	for _, p := range dig(svc, "spec", "ports").([]any) {
		svcPorts[fmt.Sprint(dig(p, "name"))] = true
		if got := portOf(dig(p, "targetPort")); got != listen {
			t.Errorf("Service: targetPort %v is port %s, serve listens on %s", dig(p, "targetPort"), got, listen)
		}
	}
	for key, doc := range docs {
		switch {
		case strings.HasPrefix(key, "Ingress/"):
			for _, rule := range dig(doc, "spec", "rules").([]any) {
				for _, p := range dig(rule, "http", "paths").([]any) {
					b := dig(p, "backend", "service")
					if name := dig(b, "name"); docs[fmt.Sprint("Service/", name)] == nil || !svcPorts[fmt.Sprint(dig(b, "port", "name"))] {
						t.Errorf("%s: backend %v: no such Service and port", key, b)
					}
				}
			}
		case strings.HasPrefix(key, "CronJob/"):
			for _, c := range dig(doc, "spec", "jobTemplate", "spec", "template", "spec", "containers").([]any) {
				for _, e := range dig(c, "env").([]any) {
					if ref := dig(e, "valueFrom", "secretKeyRef"); ref != nil {
						secretHas(key, ref)
					}
				}
			}
		}
	}
	if docs["CronJob/scopeflags-backup"] == nil {
		t.Errorf("docs/deploy.md: no CronJob scopeflags-backup (the backup schedule)")
	}
}

// dig follows keys through nested YAML maps; nil where one is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
