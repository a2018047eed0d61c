package replicate

import (
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/commitlog"
	"github.com/logkv/logkv/replicate/transport"
	"github.com/logkv/logkv/replicate/wire"
	"github.com/stretchr/testify/require"
)

func rec(seq uint64, key string) commitlog.Record {
	var b logkv.Batch
	b.Set([]byte(key), []byte("v"))
	return commitlog.Record{Seq: seq, Epoch: 1, Batch: append([]byte(nil), b.Repr()...)}
}

func recordsPayload(recs ...commitlog.Record) []byte {
	var e wire.RecordsEncoder
	for _, r := range recs {
		e.Add(r)
	}
	return e.Payload(nil)
}

// A follower fed a bad frame by its leader closes the connection and
// applies nothing from it.
func TestFollowerRejectsMalformedFrames(t *testing.T) {
	good := wire.AppendFrame(nil, wire.TypeRecords, recordsPayload(rec(1, "one")), false)
	badCRC := wire.AppendFrame(nil, wire.TypeRecords, recordsPayload(rec(2, "two")), false)
	badCRC[len(badCRC)-1] ^= 1
	// Operation kind 9 does not exist.
	badBatch := recordsPayload(commitlog.Record{Seq: 2, Epoch: 1, Batch: []byte{1, 1, 0, 0, 0, 9, 3, 't', 'w', 'o'}})
	huge := make([]byte, wire.HeaderSize)
	huge[0] = byte(wire.TypeRecords)
	binary.LittleEndian.PutUint32(huge[2:], wire.MaxFrameSize+1)

	for _, tc := range []struct {
		name  string
		frame []byte
		close bool // close the stream after it
	}{
		{"bad checksum", badCRC, false},
		{"truncated", good[:len(good)-3], true},
		{"over-long length", huge, false},
		{"invalid batch", wire.AppendFrame(nil, wire.TypeRecords, badBatch, false), false},
		{"seq gap", wire.AppendFrame(nil, wire.TypeRecords, recordsPayload(rec(3, "three")), false), false},
		{"epoch from the future", wire.AppendFrame(nil, wire.TypeRecords, recordsPayload(commitlog.Record{Seq: 2, Epoch: 9, Batch: rec(2, "x").Batch}), false), false},
		{"unexpected type", wire.AppendFrame(nil, wire.TypeHello, wire.AppendHello(nil, wire.Hello{ID: "x"}), false), false},
		{"unknown type", wire.AppendFrame(nil, 77, nil, false), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, nil)
			ln, err := c.net.Transport("evil").Listen("evil")
			require.NoError(t, err)
			defer ln.Close()
			f := c.start("f", "evil")
			s, err := ln.Accept(context.Background())
			require.NoError(t, err)
			defer s.Close()
			r := wire.NewReader(s)
			fr, err := r.ReadFrame()
			require.NoError(t, err)
			require.Equal(t, wire.TypeHello, fr.Type)
			welcome := wire.AppendWelcome(nil, wire.Welcome{Mode: wire.ModeStream, ID: "evil", Seq: 0, History: []commitlog.EpochStart{{Epoch: 1, Seq: 1}}})
			_, err = s.Write(wire.AppendFrame(nil, wire.TypeWelcome, welcome, false))
			require.NoError(t, err)
			_, err = s.Write(good)
			require.NoError(t, err)
			require.NoError(t, f.WaitApplied(context.Background(), 1))
			_, err = s.Write(tc.frame)
			require.NoError(t, err)
			if tc.close {
				s.Close()
			}
			// The follower closes the stream: reading its acks ends. (The
			// timer only turns a follower that never closes into a failure
			// below rather than a hang.)
			guard := time.AfterFunc(30*time.Second, func() { s.Close() })
			defer guard.Stop()
			for {
				if _, err = r.ReadFrame(); err != nil {
					break
				}
			}
			require.NotErrorIs(t, err, wire.ErrProtocol, "the follower sent only good frames")
			require.Equal(t, uint64(1), f.LastSeq(), "nothing of the bad frame applied")
			require.Equal(t, uint64(1), f.Log().LastSeq(), "nothing of the bad frame logged")
			_, err = f.Engine().Get([]byte("two"))
			require.ErrorIs(t, err, logkv.ErrNotFound)
		})
	}
}

// A leader fed garbage by a would-be follower closes that connection and
// goes on serving.
func TestLeaderRejectsMalformedFrames(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "")
	write(t, a, 0, 10, 1)
	hello := wire.AppendFrame(nil, wire.TypeHello, wire.AppendHello(nil, wire.Hello{ID: "x"}), false)
	for _, tc := range []struct {
		name   string
		frames [][]byte
	}{
		{"garbage", [][]byte{[]byte("GET / HTTP/1.1\r\n\r\n")}},
		{"no hello", [][]byte{wire.AppendFrame(nil, wire.TypeAck, wire.AppendAck(nil, wire.Ack{}), false)}},
		{"bad hello", [][]byte{wire.AppendFrame(nil, wire.TypeHello, []byte{1, 200}, false)}},
		{"records from a follower", [][]byte{hello, wire.AppendFrame(nil, wire.TypeRecords, recordsPayload(rec(1, "x")), false)}},
		{"bad ack", [][]byte{hello, wire.AppendFrame(nil, wire.TypeAck, []byte{1, 2, 3}, false)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := c.net.Transport("x").Dial(context.Background(), "a")
			require.NoError(t, err)
			defer s.Close()
			for _, f := range tc.frames {
				_, err := s.Write(f)
				require.NoError(t, err)
			}
			_, err = io.Copy(io.Discard, s) // until the leader closes
			require.ErrorIs(t, err, transport.ErrClosed)
		})
	}
	// Still serving.
	b := c.start("b", "a")
	requireConverged(t, a, b)
}

// A follower that has seen a newer epoch than the leader is refused: the
// leader was deposed.
func TestDeposedLeaderRefusesNewerFollower(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "")
	write(t, a, 0, 10, 1)
	s, err := c.net.Transport("x").Dial(context.Background(), "a")
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Write(wire.AppendFrame(nil, wire.TypeHello, wire.AppendHello(nil, wire.Hello{ID: "x", LastSeq: 5, Applied: 5, History: []commitlog.EpochStart{{Epoch: a.Epoch(), Seq: 1}, {Epoch: a.Epoch() + 1, Seq: 4}}}), false))
	require.NoError(t, err)
	fr, err := wire.NewReader(s).ReadFrame()
	require.NoError(t, err)
	require.Equal(t, wire.TypeRefuse, fr.Type)
	reason, err := wire.DecodeRefuse(fr.Payload)
	require.NoError(t, err)
	require.Contains(t, reason, "deposed")
}
