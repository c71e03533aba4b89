package main

// Unit tests of the forwarder's own behaviour. Expected codes and shapes come from the CNI spec
// (SPEC.md "Error": 4 invalid env, 5 I/O failure, 6 decode failure, 7 invalid network config,
// 11 try again later, 50 plugin not available) and docs/agent-api.md (POST /v1/cni with
// {command, env, stdin}). The agent here is a fake HTTP server on a unix socket that this test
// serves itself: at the Go unit level nothing else can stand in for it; the real agent is exercised
// by test/cni/*.test.ts.

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// invocation is one run of the plugin: its exit code, stdout and stderr.
type invocation struct {
	code           int
	stdout, stderr string
}

func invoke(t *testing.T, env map[string]string, stdin string) invocation {
	t.Helper()
	// Start from an environment without any CNI_* variable of the test runner's own.
	for _, kv := range os.Environ() {
		if k, _, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "CNI_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var stdout, stderr bytes.Buffer
	code := run(strings.NewReader(stdin), &stdout, &stderr)
	return invocation{code, stdout.String(), stderr.String()}
}

// cniErrorOf decodes stdout as the spec's error object, failing the test if it is anything else.
func cniErrorOf(t *testing.T, out invocation) cniError {
	t.Helper()
	if out.code != 1 {
		t.Fatalf("exit code %d, want 1 (stdout %q)", out.code, out.stdout)
	}
	var e cniError
	dec := json.NewDecoder(strings.NewReader(out.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("stdout is not a CNI error object: %v: %q", err, out.stdout)
	}
	return e
}

func shortTempDir(t *testing.T) string {
	t.Helper()
	// t.TempDir() can exceed the 108-byte unix socket path limit with long test names.
	dir, err := os.MkdirTemp("", "cnigo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// fakeAgent serves POST /v1/cni on a unix socket, records each request body and answers with
// status and body.
type fakeAgent struct {
	socket   string
	mu       sync.Mutex
	requests []request
}

func (a *fakeAgent) received() []request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]request(nil), a.requests...)
}

func serveFakeAgent(t *testing.T, status int, body string) *fakeAgent {
	t.Helper()
	agent := &fakeAgent{socket: filepath.Join(shortTempDir(t), "agent.sock")}
	ln, err := net.Listen("unix", agent.socket)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/cni", func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var req request
		if err := json.Unmarshal(raw, &req); err != nil {
			t.Errorf("forwarded body is not a request object: %v: %q", err, raw)
		}
		agent.mu.Lock()
		agent.requests = append(agent.requests, req)
		agent.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return agent
}

var attachment = map[string]string{
	"CNI_CONTAINERID": "c1",
	"CNI_NETNS":       "/run/netns/p1",
	"CNI_IFNAME":      "eth0",
	"CNI_PATH":        "/opt/cni/bin",
}

func withCommand(command string, env map[string]string) map[string]string {
	out := map[string]string{"CNI_COMMAND": command}
	for k, v := range env {
		out[k] = v
	}
	return out
}

func confJSON(t *testing.T, socket, version string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"cniVersion": version, "name": "blue", "type": "castnet", "agentSocket": socket})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestVersionIsAnsweredLocally(t *testing.T) {
	// The socket does not exist: VERSION must not need the agent.
	missing := filepath.Join(shortTempDir(t), "agent.sock")
	out := invoke(t, map[string]string{"CNI_COMMAND": "VERSION"}, confJSON(t, missing, "1.0.0"))
	if out.code != 0 {
		t.Fatalf("exit %d: %s", out.code, out.stdout)
	}
	var got struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal([]byte(out.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if got.CNIVersion != "1.1.0" || strings.Join(got.SupportedVersions, ",") != "0.4.0,1.0.0,1.1.0" {
		t.Fatalf("VERSION answered %+v", got)
	}
}

func TestStdinValidation(t *testing.T) {
	missing := filepath.Join(shortTempDir(t), "agent.sock")
	exactlyLimit := `{"agentSocket":"` + missing + `","pad":"`
	exactlyLimit += strings.Repeat("x", maxStdin-len(exactlyLimit)-2) + `"}`
	if len(exactlyLimit) != 1<<20 {
		t.Fatalf("test input is %d bytes, want exactly 1 MiB", len(exactlyLimit))
	}
	cases := []struct {
		name  string
		stdin string
		code  int
		msg   string
	}{
		{"not JSON", `{"cniVersion": "1.1.0",`, 6, "stdin: network configuration is not a valid JSON object"},
		{"empty", ``, 6, "stdin: network configuration is not a valid JSON object"},
		{"an array", `[]`, 6, "stdin: network configuration is not a valid JSON object"},
		{"a string", `"castnet"`, 6, "stdin: network configuration is not a valid JSON object"},
		{"null", `null`, 6, "stdin: network configuration is not a valid JSON object"},
		{"one byte over 1 MiB", exactlyLimit + " ", 7, "stdin: network configuration exceeds the 1048576-byte limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := cniErrorOf(t, invoke(t, withCommand("ADD", attachment), c.stdin))
			if e.Code != c.code || e.Msg != c.msg || e.CNIVersion != "1.1.0" {
				t.Fatalf("got %+v, want code %d msg %q", e, c.code, c.msg)
			}
		})
	}
	t.Run("exactly 1 MiB is accepted and forwarded", func(t *testing.T) {
		// The agent is down, so an accepted config reaches the socket and gets code 11.
		e := cniErrorOf(t, invoke(t, withCommand("ADD", attachment), exactlyLimit))
		if e.Code != 11 {
			t.Fatalf("got %+v, want code 11 (input accepted, agent unreachable)", e)
		}
	})
}

func TestMissingCommand(t *testing.T) {
	e := cniErrorOf(t, invoke(t, attachment, `{"cniVersion":"1.1.0"}`))
	if e.Code != 4 || e.Msg != "CNI_COMMAND: required but not set" {
		t.Fatalf("got %+v", e)
	}
}

func TestAgentDown(t *testing.T) {
	missing := filepath.Join(shortTempDir(t), "agent.sock")
	for _, c := range []struct {
		command string
		code    int
	}{{"ADD", 11}, {"CHECK", 11}, {"GC", 11}, {"STATUS", 50}} {
		t.Run(c.command, func(t *testing.T) {
			e := cniErrorOf(t, invoke(t, withCommand(c.command, attachment), confJSON(t, missing, "0.4.0")))
			if e.Code != c.code {
				t.Fatalf("code %d, want %d: %+v", e.Code, c.code, e)
			}
			if e.CNIVersion != "0.4.0" {
				t.Fatalf("answered in %q, want the config's 0.4.0", e.CNIVersion)
			}
			if !strings.Contains(e.Msg, "castnet agent not reachable at "+missing) {
				t.Fatalf("msg %q does not name the socket", e.Msg)
			}
		})
	}
	t.Run("DEL succeeds and says it is deferred", func(t *testing.T) {
		out := invoke(t, withCommand("DEL", attachment), confJSON(t, missing, "1.1.0"))
		if out.code != 0 || out.stdout != "" {
			t.Fatalf("exit %d stdout %q, want 0 and nothing", out.code, out.stdout)
		}
		if !strings.Contains(out.stderr, "DEL deferred") || !strings.Contains(out.stderr, missing) {
			t.Fatalf("stderr %q does not explain the deferral", out.stderr)
		}
	})
}

func TestForwardsEnvAndConfigVerbatim(t *testing.T) {
	result := `{"cniVersion":"1.1.0","interfaces":[{"name":"eth0"}]}`
	agent := serveFakeAgent(t, 200, result)
	conf := confJSON(t, agent.socket, "1.1.0")
	env := withCommand("ADD", attachment)
	env["CNI_ARGS"] = "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p"
	env["NOT_CNI"] = "must not be forwarded"
	out := invoke(t, env, conf)
	if out.code != 0 || out.stdout != result {
		t.Fatalf("exit %d stdout %q, want 0 and the agent's result verbatim", out.code, out.stdout)
	}
	requests := agent.received()
	if len(requests) != 1 {
		t.Fatalf("agent got %d requests, want 1", len(requests))
	}
	req := requests[0]
	if req.Command != "ADD" || req.Stdin != conf {
		t.Fatalf("forwarded command %q stdin %q", req.Command, req.Stdin)
	}
	want := map[string]string{}
	for k, v := range env {
		if strings.HasPrefix(k, "CNI_") {
			want[k] = v
		}
	}
	if len(req.Env) != len(want) {
		t.Fatalf("forwarded env %v, want %v", req.Env, want)
	}
	for k, v := range want {
		if req.Env[k] != v {
			t.Fatalf("forwarded env %v, want %v", req.Env, want)
		}
	}
}

func TestEmptySuccessPrintsNothing(t *testing.T) {
	agent := serveFakeAgent(t, 200, "\n")
	out := invoke(t, withCommand("DEL", attachment), confJSON(t, agent.socket, "1.1.0"))
	if out.code != 0 || out.stdout != "" {
		t.Fatalf("exit %d stdout %q", out.code, out.stdout)
	}
}

func TestAgentErrorIsPassedThrough(t *testing.T) {
	agentErr := `{"cniVersion":"1.1.0","code":7,"msg":"ipam.subnet: not a CIDR","details":""}`
	agent := serveFakeAgent(t, 400, agentErr)
	out := invoke(t, withCommand("ADD", attachment), confJSON(t, agent.socket, "1.1.0"))
	if out.code != 1 || out.stdout != agentErr {
		t.Fatalf("exit %d stdout %q, want 1 and the agent's error verbatim", out.code, out.stdout)
	}
}

func TestAgentAnswerWithoutCNIErrorIsAnIOFailure(t *testing.T) {
	agent := serveFakeAgent(t, 500, "internal error")
	e := cniErrorOf(t, invoke(t, withCommand("ADD", attachment), confJSON(t, agent.socket, "1.0.0")))
	if e.Code != 5 || e.CNIVersion != "1.0.0" || e.Details != "internal error" ||
		!strings.Contains(e.Msg, "answered HTTP 500 without a CNI error") {
		t.Fatalf("got %+v", e)
	}
}

func TestAgentDroppingTheConnectionIsNotTreatedAsDown(t *testing.T) {
	// A reachable agent that fails mid-request may have half-done the ADD: that is an I/O failure
	// (code 5), not "try again later", and a DEL must not claim success.
	dir := shortTempDir(t)
	socket := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 1)
			conn.Read(buf)
			conn.Close()
		}
	}()
	for _, command := range []string{"ADD", "DEL"} {
		t.Run(command, func(t *testing.T) {
			e := cniErrorOf(t, invoke(t, withCommand(command, attachment), confJSON(t, socket, "1.1.0")))
			if e.Code != 5 || !strings.Contains(e.Msg, "failed during "+command) {
				t.Fatalf("got %+v", e)
			}
		})
	}
}
