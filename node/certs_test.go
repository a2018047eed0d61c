package node

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func certsCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Main(append([]string{"certs"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func fileMode(t *testing.T, path string) os.FileMode {
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

// kvnode certs keeps the CA key in DIR/ca, issues one certificate per node
// into DIR/NAME from that CA, and writes keys 0600 even over a 0644 file.
func TestCertsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	code, out, errs := certsCLI("-dir", dir)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "kvnode certs -dir "+dir+" -node NAME", "says what to do next")
	require.Equal(t, os.FileMode(0o600), fileMode(t, filepath.Join(dir, "ca", "ca.key")))
	code, _, errs = certsCLI("-dir", dir)
	require.Equal(t, 1, code, "an existing CA is not replaced")
	require.Contains(t, errs, "refusing to replace")
	caCert, err := os.ReadFile(filepath.Join(dir, "ca", "ca.crt"))
	require.NoError(t, err)

	code, out, errs = certsCLI("-dir", dir, "-node", "n1,n2", "-hosts", "node1.example,10.0.0.1")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "-tls-dir "+filepath.Join(dir, "n1"))
	for _, n := range []string{"n1", "n2"} {
		nd := filepath.Join(dir, n)
		require.NoFileExists(t, filepath.Join(nd, "ca.key"), "nodes never get the CA key")
		got, err := os.ReadFile(filepath.Join(nd, "ca.crt"))
		require.NoError(t, err)
		require.Equal(t, caCert, got, "issued by the existing CA")
		require.Equal(t, os.FileMode(0o600), fileMode(t, filepath.Join(nd, "node.key")))
		b, err := os.ReadFile(filepath.Join(nd, "node.crt"))
		require.NoError(t, err)
		blk, _ := pem.Decode(b)
		require.NotNil(t, blk)
		leaf, err := x509.ParseCertificate(blk.Bytes)
		require.NoError(t, err)
		require.Equal(t, n, leaf.Subject.CommonName, "the certificate names its node")
		require.Contains(t, leaf.DNSNames, "node1.example")
		require.Len(t, leaf.IPAddresses, 3) // 127.0.0.1, ::1, 10.0.0.1
	}

	// Reissued over a key someone made world-readable: 0600 again.
	key := filepath.Join(dir, "n1", "node.key")
	require.NoError(t, os.Chmod(key, 0o644))
	code, _, errs = certsCLI("-dir", dir, "-node", "n1")
	require.Equal(t, 0, code, errs)
	require.Equal(t, os.FileMode(0o600), fileMode(t, key))

	code, _, errs = certsCLI("-dir", dir, "-node", "../evil")
	require.Equal(t, 2, code)
	require.Contains(t, errs, "may hold only")
	code, _, _ = certsCLI("-dir", dir, "-node", "ca")
	require.Equal(t, 2, code)

	// The layout before DIR/ca, with ca.key beside the node files.
	old := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(old, "ca.key"), []byte("x"), 0o600))
	code, _, errs = certsCLI("-dir", old, "-node", "n1")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "move")
}

// A node's replication id is its certificate's name, and the leader knows
// its follower by it; a node_id that disagrees with the certificate is a
// configuration error.
func TestNodeIDIsTheCertificateName(t *testing.T) {
	tlsDir := filepath.Join(t.TempDir(), "tls")
	leader := replNode(t, tlsDir, "memory", "")
	follower := replNode(t, tlsDir, "memory", leader.rep(t).Addr())
	require.Equal(t, filepath.Base(leader.cfg.TLS.Dir), leader.rep(t).ID())
	require.Equal(t, filepath.Base(follower.cfg.TLS.Dir), follower.rep(t).ID())
	require.Eventually(t, func() bool {
		fs := leader.rep(t).Followers()
		return len(fs) == 1 && fs[0].ID == follower.rep(t).ID()
	}, 30*time.Second, time.Millisecond, "the leader knows the follower by its certificate's name")

	cfg := DefaultConfig()
	cfg.Engine, cfg.DataDir, cfg.Listen, cfg.Admin = "memory", t.TempDir(), "127.0.0.1:0", "off"
	cfg.Replication.Listen = "127.0.0.1:0"
	cfg.TLS.Dir = follower.cfg.TLS.Dir
	cfg.NodeID = "someone-else"
	_, err := New(cfg, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, `node_id is "someone-else"`)
}

// certLog is a goroutine-safe log sink.
type certLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *certLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *certLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// SIGHUP reloads a running node's certificate files. The node has no
// follower, so no handshake looks at the files: only the signal can.
func TestSIGHUPReloadsCertificates(t *testing.T) {
	tlsDir := filepath.Join(t.TempDir(), "tls")
	code, _, errs := certsCLI("-dir", tlsDir, "-node", "hup")
	require.Equal(t, 0, code, errs)
	var logs certLog
	cfg := DefaultConfig()
	cfg.Engine, cfg.DataDir, cfg.Listen, cfg.Admin = "memory", t.TempDir(), "127.0.0.1:0", "off"
	cfg.Replication.Listen = "127.0.0.1:0"
	cfg.TLS.Dir = filepath.Join(tlsDir, "hup")
	n, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	serve(t, n)

	code, _, errs = certsCLI("-dir", tlsDir, "-node", "hup")
	require.Equal(t, 0, code, errs)
	require.NotContains(t, logs.String(), "replication certificate reloaded")
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "replication certificate reloaded")
	}, 10*time.Second, time.Millisecond, "the node reloads on SIGHUP")
}
