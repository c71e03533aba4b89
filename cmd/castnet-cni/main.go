// castnet-cni is the CNI plugin: a self-contained forwarder from the container runtime to the node
// agent. Multus thick runs it inside its own container where no Node.js exists, and a Node start-up
// alone costs more than the reference plugins' whole ADD, so it is a small static Go binary. It
// answers VERSION itself, forwards every other verb to the agent's unix socket (docs/agent-api.md),
// and prints the agent's answer: a result on stdout and exit 0, or the spec's JSON error and exit 1.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
)

const (
	currentVersion = "1.1.0"
	defaultSocket  = "/run/castnet/agent.sock"
	maxStdin       = 1 << 20
	apiPath        = "/v1/cni"
)

var supportedVersions = []string{"0.4.0", "1.0.0", "1.1.0"}

// Spec error codes (SPEC.md "Error"), the subset this forwarder emits itself.
const (
	codeInvalidEnv    = 4
	codeIOFailure     = 5
	codeDecodeFailure = 6
	codeInvalidConfig = 7
	codeTryAgainLater = 11
	codeNotAvailable  = 50
)

type cniError struct {
	CNIVersion string `json:"cniVersion"`
	Code       int    `json:"code"`
	Msg        string `json:"msg"`
	Details    string `json:"details"`
}

// request is the body of POST /v1/cni (docs/agent-api.md).
type request struct {
	Command string            `json:"command"`
	Env     map[string]string `json:"env"`
	Stdin   string            `json:"stdin"`
}

func main() {
	os.Exit(run(os.Stdin, os.Stdout, os.Stderr))
}

func run(stdin io.Reader, stdout, stderr io.Writer) int {
	command := os.Getenv("CNI_COMMAND")
	input, err := io.ReadAll(io.LimitReader(stdin, maxStdin+1))
	if err != nil {
		return fail(stdout, currentVersion, codeIOFailure, "failed to read stdin", err.Error())
	}
	if len(input) > maxStdin {
		return fail(stdout, currentVersion, codeInvalidConfig,
			fmt.Sprintf("stdin: network configuration exceeds the %d-byte limit", maxStdin), "")
	}
	if command == "VERSION" {
		return printJSON(stdout, map[string]any{"cniVersion": currentVersion, "supportedVersions": supportedVersions})
	}
	if command == "" {
		return fail(stdout, currentVersion, codeInvalidEnv, "CNI_COMMAND: required but not set", "")
	}

	// Only the two fields the forwarder needs are read here; the agent validates the whole config.
	var conf map[string]json.RawMessage
	if err := json.Unmarshal(input, &conf); err != nil || conf == nil {
		details := "null"
		if err != nil {
			details = err.Error()
		}
		return fail(stdout, currentVersion, codeDecodeFailure, "stdin: network configuration is not a valid JSON object", details)
	}
	version := stringField(conf, "cniVersion", currentVersion)
	socket := stringField(conf, "agentSocket", defaultSocket)

	status, body, err := forward(socket, request{Command: command, Env: cniEnv(), Stdin: string(input)})
	if err != nil {
		return agentUnreachable(stdout, stderr, command, version, socket, err)
	}
	if status/100 == 2 {
		if len(bytes.TrimSpace(body)) > 0 {
			stdout.Write(body)
		}
		return 0
	}
	var agentErr cniError
	if json.Unmarshal(body, &agentErr) != nil || agentErr.Code == 0 {
		return fail(stdout, version, codeIOFailure,
			fmt.Sprintf("castnet agent at %s answered HTTP %d without a CNI error", socket, status), string(body))
	}
	stdout.Write(body)
	return 1
}

// stringField returns conf[key] if it is a non-empty string, else def (the agent reports wrong types).
func stringField(conf map[string]json.RawMessage, key, def string) string {
	var s string
	if json.Unmarshal(conf[key], &s) != nil || s == "" {
		return def
	}
	return s
}

// cniEnv collects the CNI_* variables the runtime set; the agent validates them.
func cniEnv() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "CNI_") {
			env[k] = v
		}
	}
	return env
}

// dialError marks a failure to reach the agent at all, as opposed to a failure mid-request.
type dialError struct{ error }

func forward(socket string, req request) (int, []byte, error) {
	payload, err := json.Marshal(req)
	if err != nil {
		return 0, nil, err
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, "unix", socket)
			if err != nil {
				return nil, dialError{err}
			}
			return conn, nil
		},
		DisableKeepAlives: true,
	}}
	resp, err := client.Post("http://castnet-agent"+apiPath, "application/json", bytes.NewReader(payload))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// agentUnreachable answers for an agent that is down, per verb: DEL succeeds because the agent
// reconciles on start, STATUS reports the plugin unavailable, ADD/CHECK/GC ask to try again later.
func agentUnreachable(stdout, stderr io.Writer, command, version, socket string, err error) int {
	var dial dialError
	if !errors.As(err, &dial) {
		return fail(stdout, version, codeIOFailure,
			fmt.Sprintf("castnet agent at %s failed during %s", socket, command), err.Error())
	}
	switch command {
	case "DEL":
		fmt.Fprintf(stderr, "castnet-cni: agent not reachable at %s; DEL deferred to its reconcile on start: %v\n", socket, dial.error)
		return 0
	case "STATUS":
		return fail(stdout, version, codeNotAvailable,
			fmt.Sprintf("castnet agent not reachable at %s", socket), dial.error.Error())
	default:
		return fail(stdout, version, codeTryAgainLater,
			fmt.Sprintf("castnet agent not reachable at %s; try again later", socket), dial.error.Error())
	}
}

func fail(stdout io.Writer, version string, code int, msg, details string) int {
	printJSON(stdout, cniError{CNIVersion: version, Code: code, Msg: msg, Details: details})
	return 1
}

func printJSON(w io.Writer, v any) int {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return 1
	}
	return 0
}
