package drover_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testMesh is the real mesh clients/testmesh.py runs (four services on loopback, fake driver)
// behind a proxy that can cut every connection.
type testMesh struct {
	API        string `json:"api"`
	DataDir    string `json:"data_dir"`
	Image      string `json:"image"`
	Flavor     string `json:"flavor"`
	HugeFlavor string `json:"huge_flavor"`
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	stdout     *bufio.Reader
}

var mesh *testMesh

func TestMain(m *testing.M) {
	var err error
	if mesh, err = startMesh(); err != nil {
		fmt.Fprintln(os.Stderr, "starting the mesh:", err)
		os.Exit(1)
	}
	code := m.Run()
	mesh.stop()
	os.Exit(code)
}

func startMesh() (*testMesh, error) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("python3", filepath.Join(root, "clients", "testmesh.py"))
	cmd.Env = append(os.Environ(), "PYTHONPATH="+root+string(os.PathListSeparator)+os.Getenv("PYTHONPATH"))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &testMesh{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(out)}
	line, err := m.stdout.ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("no address line from testmesh.py: %w", err)
	}
	return m, json.Unmarshal([]byte(line), m)
}

// token is the admin token the mesh wrote, or "" while the API has no authentication.
func (m *testMesh) token() string {
	b, err := os.ReadFile(filepath.Join(m.DataDir, "admin.token"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// cut drops every open connection to the API, and returns once it has.
func (m *testMesh) cut(t *testing.T) {
	if _, err := io.WriteString(m.stdin, "cut\n"); err != nil {
		t.Fatal(err)
	}
	if ack, err := m.stdout.ReadString('\n'); err != nil || strings.TrimSpace(ack) != "cut" {
		t.Fatalf("cut not acknowledged: %q %v", ack, err)
	}
}

func (m *testMesh) stop() {
	_ = m.stdin.Close()
	_ = m.cmd.Wait()
}
