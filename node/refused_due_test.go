package node

import (
	"context"
	"log/slog"
	"math"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// appliedButRefused applies every batch and then answers an error, as a
// sync leader does for a write it logged before its leadership ended
// (errFenced) or whose quorum timed out: the write may be applied. Between
// the apply and the answer it plays an expirer walk that read nextDue
// before the write was visible and finished after it (nextDue raised to
// "nothing due").
type appliedButRefused struct {
	backend
	n      *Node
	refuse atomic.Bool
}

func (f *appliedButRefused) Submit(b *logkv.Batch) error {
	if err := f.backend.Submit(b); err != nil || !f.refuse.Load() {
		return err
	}
	f.n.ks.nextDue.Store(math.MaxInt64)
	return errInjected
}

// A write with a deadline that Submit refuses after applying it still
// lowers nextDue: otherwise the expirer, told nothing is due, never
// removes the key (hidden from reads once due, but kept on disk and in the
// index forever). Both write paths: a transaction (PEXPIREAT) and a
// pipelined SET with PX (the pending run).
func TestRefusedWriteStillLowersNextDue(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Engine, cfg.DataDir = "memory", t.TempDir()
	cfg.Listen, cfg.Admin, cfg.Replication.Listen = "127.0.0.1:0", "off", "off"
	n, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	// The background expirer would move nextDue itself: keep it stopped.
	n.stopBackground()
	fb := &appliedButRefused{backend: n.backend, n: n}
	n.backend = fb
	serve(t, n)
	c := dial(t, n, nil)
	ctx := context.Background()

	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	fb.refuse.Store(true)

	at := time.Now().Add(time.Hour).UnixMilli()
	err = c.Do(ctx, "pexpireat", "k", strconv.FormatInt(at, 10)).Err()
	require.ErrorContains(t, err, errInjected.Error())
	require.LessOrEqual(t, n.ks.nextDue.Load(), at, "a refused PEXPIREAT left nextDue past its deadline")

	n.ks.nextDue.Store(math.MaxInt64)
	cmds, _ := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "p", "v", time.Hour)
		return nil
	})
	require.ErrorContains(t, cmds[0].Err(), errInjected.Error())
	require.Less(t, n.ks.nextDue.Load(), int64(math.MaxInt64), "a refused SET PX left nextDue at nothing due")
}
