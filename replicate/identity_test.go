package replicate

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/logkv/logkv/replicate/transport"
	"github.com/logkv/logkv/replicate/wire"
	"github.com/stretchr/testify/require"
)

// A peer whose Hello claims another follower's id is refused, with a log
// line naming both ids, and the real follower keeps streaming: the id the
// leader uses is the one the transport authenticated.
func TestFollowerIDMustMatchItsPeerName(t *testing.T) {
	var logs lockedBuffer
	c := newCluster(t, nil)
	a := c.start("a", "", func(cfg *Config) { cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	b := c.start("b", "a")
	write(t, a, 0, 10, 1)
	requireConverged(t, a, b)

	s, err := c.net.Transport("mallory").Dial(context.Background(), "a")
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Write(wire.AppendFrame(nil, wire.TypeHello, wire.AppendHello(nil, wire.Hello{ID: "b"}), false))
	require.NoError(t, err)
	fr, err := wire.NewReader(s).ReadFrame()
	require.NoError(t, err)
	require.Equal(t, wire.TypeRefuse, fr.Type)
	reason, err := wire.DecodeRefuse(fr.Payload)
	require.NoError(t, err)
	require.Contains(t, reason, `says it is "b" but its certificate names "mallory"`)
	// The refusal is logged before it is sent, so the line is there.
	require.Contains(t, logs.String(), "refusing a follower that claims another node's id")
	require.Contains(t, logs.String(), "claimed=b")

	write(t, a, 10, 10, 1)
	requireConverged(t, a, b)
	fs := a.Followers()
	require.Len(t, fs, 1)
	require.Equal(t, "b", fs[0].ID)
	require.Equal(t, StateStreaming, fs[0].State, "the real b was not kicked off")
	require.Zero(t, b.Status().Resyncs)
}

// Over QUIC, a node holding a certificate of the cluster's CA issued to
// another name cannot pose as a follower: its Hello's id must be its
// certificate's name.
func TestQUICFollowerIDFromCertificate(t *testing.T) {
	var logs lockedBuffer
	c, ca := quicCluster(t, nil)
	a := c.start("a", "", func(cfg *Config) { cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	b := c.start("b", "a")
	write(t, a, 0, 10, 1)
	requireConverged(t, a, b)

	// "mallory" runs a node configured with b's id, on its own certificate.
	id, err := ca.Identity("mallory", "127.0.0.1")
	require.NoError(t, err)
	tr, err := transport.NewQUIC(transport.QUICOptions{Identity: id, IdleTimeout: 10 * time.Second})
	require.NoError(t, err)
	impostor := c.start("b-impostor", "a", func(cfg *Config) { cfg.ID = "b"; cfg.Transport = tr; cfg.ListenAddr = "" })
	require.Eventually(t, func() bool {
		return bytes.Contains([]byte(logs.String()), []byte(`claimed=b`))
	}, 30*time.Second, time.Millisecond, "the leader refuses the impostor")
	require.Contains(t, logs.String(), `its certificate names \"mallory\"`)

	write(t, a, 10, 10, 1)
	requireConverged(t, a, b)
	fs := a.Followers()
	require.Len(t, fs, 1)
	require.Equal(t, "b", fs[0].ID)
	require.Equal(t, StateStreaming, fs[0].State, "the real b was not kicked off")
	require.Zero(t, impostor.Status().Applied, "the impostor got nothing")
}
