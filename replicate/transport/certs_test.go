package transport

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mode(t *testing.T, path string) os.FileMode {
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

func parseCert(t *testing.T, path string) *x509.Certificate {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	blk, _ := pem.Decode(b)
	require.NotNil(t, blk, "%s holds a PEM block", path)
	c, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	return c
}

// The CA key lives in DIR/ca only; each node's directory holds the CA
// certificate and its own certificate and key, named for it and signed by
// that CA; keys are 0600 and their directories 0700.
func TestCertificateLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	ca, err := WriteCA(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), mode(t, filepath.Join(dir, CADir)))
	require.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(dir, CADir, CAKeyFile)))
	require.Equal(t, os.FileMode(0o644), mode(t, filepath.Join(dir, CADir, CACertFile)))
	_, err = WriteCA(dir)
	require.ErrorContains(t, err, "refusing to replace a CA")

	loaded, err := LoadCA(dir)
	require.NoError(t, err)
	require.True(t, loaded.Cert.Equal(ca.Cert))
	for _, n := range []string{"n1", "n2"} {
		require.NoError(t, loaded.WriteNode(dir, n, []string{"127.0.0.1", "n.example"}))
	}
	for _, n := range []string{"n1", "n2"} {
		nd := filepath.Join(dir, n)
		entries, err := os.ReadDir(nd)
		require.NoError(t, err)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		require.ElementsMatch(t, []string{CACertFile, NodeCertFile, NodeKeyFile}, names, "no CA key beside what a node reads")
		require.Equal(t, os.FileMode(0o700), mode(t, nd))
		require.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(nd, NodeKeyFile)))
		id, err := LoadIdentity(filepath.Join(nd, NodeCertFile), filepath.Join(nd, NodeKeyFile), filepath.Join(nd, CACertFile))
		require.NoError(t, err)
		require.Equal(t, n, id.Name())
		leaf := parseCert(t, filepath.Join(nd, NodeCertFile))
		require.Contains(t, leaf.DNSNames, "n.example")
		_, err = leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		require.NoError(t, err, "signed by the CA in DIR/ca")
	}
	require.NotEqual(t, parseCert(t, filepath.Join(dir, "n1", NodeCertFile)).PublicKey, parseCert(t, filepath.Join(dir, "n2", NodeCertFile)).PublicKey)

	for _, bad := range []string{"", "ca", "../x", "a/b", ".hidden", "sp ace", string(make([]byte, MaxNodeNameLen+1))} {
		require.Error(t, CheckNodeName(bad), "%q", bad)
		require.Error(t, ca.WriteNode(dir, bad, nil), "%q", bad)
	}
	require.NoError(t, CheckNodeName("node-1.east_2"))
}

// A key rewritten over one that was 0644 (or a CA key someone chmodded)
// ends up 0600: the file is replaced, not rewritten in place.
func TestRewrittenKeyIsPrivate(t *testing.T) {
	dir := t.TempDir()
	ca, err := WriteCA(dir)
	require.NoError(t, err)
	require.NoError(t, ca.WriteNode(dir, "n1", nil))
	key := filepath.Join(dir, "n1", NodeKeyFile)
	require.NoError(t, os.Chmod(key, 0o644))
	require.NoError(t, os.Chmod(filepath.Join(dir, "n1"), 0o755))
	before, err := os.ReadFile(key)
	require.NoError(t, err)
	require.NoError(t, ca.WriteNode(dir, "n1", nil))
	after, err := os.ReadFile(key)
	require.NoError(t, err)
	require.NotEqual(t, before, after, "a new key")
	require.Equal(t, os.FileMode(0o600), mode(t, key))
	require.Equal(t, os.FileMode(0o700), mode(t, filepath.Join(dir, "n1")))
	tmp, err := filepath.Glob(filepath.Join(dir, "n1", ".*tmp*"))
	require.NoError(t, err)
	require.Empty(t, tmp, "no temporary files left")
}

// reloadDir is a node directory issued by its own CA, and a Reloader on it
// that looks at its files at every Current.
func reloadDir(t *testing.T, logger *slog.Logger) (*CA, string, *Reloader) {
	dir := t.TempDir()
	ca, err := WriteCA(dir)
	require.NoError(t, err)
	require.NoError(t, ca.WriteNode(dir, "n1", []string{"127.0.0.1"}))
	nd := filepath.Join(dir, "n1")
	r, err := NewReloader(filepath.Join(nd, NodeCertFile), filepath.Join(nd, NodeKeyFile), filepath.Join(nd, CACertFile), logger)
	require.NoError(t, err)
	r.every = 0
	return ca, dir, r
}

func serialOf(id *Identity) string { return id.leaf().SerialNumber.String() }

// A renewed certificate is picked up by the next Current (a file change) or
// by Reload; a broken or foreign one is refused, and the one in use stays.
func TestReloader(t *testing.T) {
	var logs syncBuffer
	ca, dir, r := reloadDir(t, slog.New(slog.NewTextHandler(&logs, nil)))
	first := serialOf(r.Current())
	require.Equal(t, first, serialOf(r.Current()), "unchanged files: the same identity")

	require.NoError(t, ca.WriteNode(dir, "n1", []string{"127.0.0.1"}))
	second := serialOf(r.Current())
	require.NotEqual(t, first, second, "a changed file is reloaded")
	require.Contains(t, logs.String(), "replication certificate reloaded")

	// Half a renewal: a key that does not match the certificate.
	c, k, err := ca.Issue("n1", nil, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.NoError(t, writeFileAtomic(filepath.Join(dir, "n1", NodeKeyFile), k, 0o600))
	require.Equal(t, second, serialOf(r.Current()), "a key that does not match keeps the identity in use")
	require.Contains(t, logs.String(), "could not be loaded")
	require.Error(t, r.Reload())
	require.Equal(t, second, serialOf(r.Current()))
	require.NoError(t, writeFileAtomic(filepath.Join(dir, "n1", NodeCertFile), c, 0o644))
	third := serialOf(r.Current())
	require.NotEqual(t, second, third, "the renewal completed is loaded")

	// Another node's certificate: the name is the node's id, kept until a
	// restart.
	other, ok, err := ca.Issue("n2", nil, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.NoError(t, writeFileAtomic(filepath.Join(dir, "n1", NodeKeyFile), ok, 0o600))
	require.NoError(t, writeFileAtomic(filepath.Join(dir, "n1", NodeCertFile), other, 0o644))
	require.ErrorContains(t, r.Reload(), `names node "n2", not "n1"`)
	require.Equal(t, third, serialOf(r.Current()))
	require.Equal(t, "n1", r.Current().Name())

	// Reload without a change on disk loads the same files again.
	require.NoError(t, ca.WriteNode(dir, "n1", []string{"127.0.0.1"}))
	require.NoError(t, r.Reload())
	require.NotEqual(t, third, serialOf(r.Current()))
}

// A leader serving with a Reloader presents the renewed certificate on the
// next handshake, and trusts a new CA once its files say so: a follower
// from a new CA is refused before the leader's files change and accepted
// after, without a restart.
func TestQUICReloadsCertificates(t *testing.T) {
	ca, dir, r := reloadDir(t, nil)
	st, err := NewQUIC(QUICOptions{Identity: r})
	require.NoError(t, err)
	l, err := st.Listen("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() { // accept and hold streams until the listener closes
		for {
			s, err := l.Accept(context.Background())
			if err != nil {
				return
			}
			go func() { s.Write([]byte("x")); io.Copy(io.Discard, s); s.Close() }() // until the dialer closes
		}
	}()
	leaderSerial := func(follower *Identity) (string, error) {
		ct, err := NewQUIC(QUICOptions{Identity: follower})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := ct.Dial(ctx, l.Addr())
		if err != nil {
			return "", err
		}
		defer s.Close()
		// The leader checks the follower's certificate after the dialer's
		// handshake is done, and sees a stream once it carries data: the
		// first read after a write says whether it passed.
		if _, err := s.Write([]byte("h")); err != nil {
			return "", err
		}
		if _, err := s.Read(make([]byte, 1)); err != nil {
			return "", err
		}
		qs := s.(*quicStream)
		return qs.conn.ConnectionState().TLS.PeerCertificates[0].SerialNumber.String(), nil
	}
	follower, err := ca.Identity("f", "127.0.0.1")
	require.NoError(t, err)
	got, err := leaderSerial(follower)
	require.NoError(t, err)
	require.Equal(t, serialOf(r.Current()), got)

	// Renewed on disk: the next handshake shows the new certificate.
	old := got
	require.NoError(t, ca.WriteNode(dir, "n1", []string{"127.0.0.1"}))
	got, err = leaderSerial(follower)
	require.NoError(t, err)
	require.NotEqual(t, old, got)
	require.Equal(t, serialOf(r.Current()), got)

	// A new CA: its follower is refused until the leader's CA file lists
	// it, then accepted.
	newCA, err := NewCA("new CA")
	require.NoError(t, err)
	newcomer, err := newCA.Identity("g", "127.0.0.1")
	require.NoError(t, err)
	newcomer.CAs = ca.Pool() // it trusts the leader's current CA
	_, err = leaderSerial(newcomer)
	require.ErrorContains(t, err, "certificate")
	bundle := append(ca.CertPEM(), newCA.CertPEM()...)
	require.NoError(t, writeFileAtomic(filepath.Join(dir, "n1", CACertFile), bundle, 0o644))
	_, err = leaderSerial(newcomer)
	require.NoError(t, err, "the leader trusts the new CA after its files changed")
}
