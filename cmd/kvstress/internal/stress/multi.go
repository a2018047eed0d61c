package stress

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The -multi mode (Config.Multi): transactions and expiry across SIGKILL.
// See "Transactions and expiry" in the package doc for what is checked.

// txState is what the checker knows of one transaction.
type txState uint8

const (
	txDoubt   txState = iota // EXEC sent, its reply not seen: all or nothing
	txPresent                // acknowledged, or found whole after a crash
	txAbsent                 // never acknowledged and found absent: stays absent
)

// tx is one MULTI/EXEC of Config.TxKeys fresh keys and the writer's
// "txlast" key, the latter with PX (its deadline must be the transaction's).
type tx struct {
	cycle, writer, seq int
	state              txState
	sent, acked        int64 // unix ms before MULTI and after EXEC's reply (0: none)
}

// lastPX is the PX of the txlast SET of t: an hour and a little, different
// per transaction, so that PEXPIRETIME tells whose deadline txlast holds.
func (t *tx) lastPX() int64 { return 3_600_000 + int64(t.seq) }

func (t *tx) token() string { return fmt.Sprintf("c%d.w%d.t%d", t.cycle, t.writer, t.seq) }

// txKey is the j-th fresh key of transaction tok.
func txKey(tok string, j int) string { return fmt.Sprintf("tx:%s:%d", tok, j) }

// txLastKey is writer w's key that each of its transactions overwrites.
func txLastKey(w int) string { return fmt.Sprintf("txlast:%d", w) }

// txValue is the value transaction tok writes to key k: the token, the key
// and a deterministic filler of 64 to 1087 bytes, so that an EXEC is a
// batch of several kilobytes and a kill often lands inside its write.
func txValue(tok, k string) []byte {
	return value(tok+"|"+k, version{})
}

// ttlKind is what an expiry operation does.
type ttlKind uint8

const (
	ttlFar     ttlKind = iota // SET PX an hour or more: must keep its deadline
	ttlShort                  // SET PX 1..300 ms: gone once its deadline passed
	ttlPersist                // SET PX 1..300 ms, then PERSIST: kept without a TTL once PERSIST is acknowledged
)

// ttlOp is one expiry operation, in database 1 (so that database 0's
// DBSIZE counts transaction keys only).
type ttlOp struct {
	key            string
	kind           ttlKind
	px             int64 // the PX argument, ms
	sent           int64 // unix ms before SET was sent
	acked          int64 // unix ms after SET's OK; 0: not acknowledged
	persisted      bool  // PERSIST acknowledged, or seen applied after a crash
	persistSent    bool  // PERSIST sent and not known to have changed nothing
	gone           bool  // absent after a crash: must stay absent
	cycle, ordinal int
}

// multiState is what Run's multi mode keeps across cycles.
type multiState struct {
	mu  sync.Mutex
	txs []*tx
	ttl []*ttlOp
}

// multiCycle writes transactions from cfg.Writers goroutines and expiry
// operations from one more, kills kvnode after kill, restarts it and checks
// everything written so far. It returns the problems found.
func (n *nodeRunner) multiCycle(ctx context.Context, st *multiState, sc *Scorecard, c int, kill time.Duration) (time.Duration, []string, error) {
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	nkeys := n.cfg.TxKeys
	acked := 0
	for wi := range n.cfg.Writers {
		wg.Go(func() {
			for seq := 1; wctx.Err() == nil; seq++ {
				t := &tx{cycle: c, writer: wi, seq: seq}
				st.mu.Lock()
				st.txs = append(st.txs, t)
				st.mu.Unlock()
				tok := t.token()
				t.sent = time.Now().UnixMilli()
				_, err := n.client.TxPipelined(wctx, func(p redis.Pipeliner) error {
					for j := range nkeys {
						k := txKey(tok, j)
						p.Set(wctx, k, txValue(tok, k), 0)
					}
					p.Set(wctx, txLastKey(wi), txValue(tok, txLastKey(wi)), time.Duration(t.lastPX())*time.Millisecond)
					return nil
				})
				if err != nil {
					// In doubt: this writer stops for the cycle, so that
					// txlast has at most one candidate beyond the last
					// acknowledged transaction.
					return
				}
				now := time.Now().UnixMilli()
				st.mu.Lock()
				t.state = txPresent
				t.acked = now
				acked++
				st.mu.Unlock()
			}
		})
	}
	wg.Go(func() { n.expiryWriter(wctx, st, c) })
	select {
	case <-time.After(kill):
	case <-ctx.Done():
	}
	killedAt := time.Now().UnixMilli()
	kerr := n.kill()
	cancel()
	wg.Wait()
	if kerr != nil {
		return 0, nil, kerr
	}
	sc.Acked += int64(acked)
	recovery, err := n.start(ctx)
	if err != nil {
		return 0, nil, err
	}
	problems, err := n.checkTxs(ctx, st, sc, killedAt)
	if err != nil {
		return recovery, problems, err
	}
	more, err := n.checkTTLs(ctx, st, sc, killedAt)
	return recovery, append(problems, more...), err
}

// expiryWriter sends the cycle's expiry operations to database 1, one at a
// time, at most 300 per cycle (each is checked after every later crash).
func (n *nodeRunner) expiryWriter(ctx context.Context, st *multiState, c int) {
	rng := rand.New(rand.NewPCG(n.cfg.Seed+uint64(c), 0xe4))
	for i := 0; i < 300 && ctx.Err() == nil; i++ {
		op := &ttlOp{key: fmt.Sprintf("ttl:%d:%d", c, i), kind: ttlKind(i % 3), cycle: c, ordinal: i}
		if op.kind == ttlFar {
			op.px = 3_600_000 + rng.Int64N(3_600_000)
		} else {
			op.px = 1 + rng.Int64N(300)
		}
		op.sent = time.Now().UnixMilli()
		st.mu.Lock()
		st.ttl = append(st.ttl, op)
		st.mu.Unlock()
		err := n.db1.Set(ctx, op.key, txValue("ttl", op.key), time.Duration(op.px)*time.Millisecond).Err()
		if err != nil {
			return
		}
		now := time.Now().UnixMilli()
		st.mu.Lock()
		op.acked = now
		st.mu.Unlock()
		if op.kind == ttlPersist {
			st.mu.Lock()
			op.persistSent = true
			st.mu.Unlock()
			// 0 (the key expired first) is a valid reply: then PERSIST
			// changed nothing, and the key must be gone.
			r, err := n.db1.Persist(ctx, op.key).Result()
			if err != nil {
				return
			}
			st.mu.Lock()
			op.persisted = r
			if !r {
				op.persistSent = false
			}
			st.mu.Unlock()
		}
	}
}

// checkTxs reads every transaction written so far and txlast of every
// writer (value and deadline), and compares DBSIZE of database 0 with the
// keys that must exist. killedAt bounds the EXEC reply of a transaction in
// doubt.
func (n *nodeRunner) checkTxs(ctx context.Context, st *multiState, sc *Scorecard, killedAt int64) ([]string, error) {
	var problems []string
	nkeys := n.cfg.TxKeys
	const batch = 512
	for lo := 0; lo < len(st.txs); lo += batch {
		txs := st.txs[lo:min(lo+batch, len(st.txs))]
		cmds := make([]*redis.SliceCmd, len(txs))
		_, err := n.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, t := range txs {
				keys := make([]string, nkeys)
				for j := range keys {
					keys[j] = txKey(t.token(), j)
				}
				cmds[i] = p.MGet(ctx, keys...)
			}
			return nil
		})
		if err != nil {
			return problems, fmt.Errorf("MGET transaction keys: %w", err)
		}
		for i, t := range txs {
			tok := t.token()
			found := 0
			for j, v := range cmds[i].Val() {
				if v == nil {
					continue
				}
				k := txKey(tok, j)
				if s, ok := v.(string); !ok || s != string(txValue(tok, k)) {
					sc.Corrupt++
					problems = append(problems, fmt.Sprintf("%s: corrupt value %.60q", k, v))
					continue
				}
				found++
			}
			switch {
			case found != 0 && found != nkeys:
				sc.Corrupt++
				problems = append(problems, fmt.Sprintf("transaction %s: %d of its %d keys present (torn EXEC)", tok, found, nkeys))
			case found == 0 && t.state == txPresent:
				sc.Lost++
				problems = append(problems, fmt.Sprintf("transaction %s: acknowledged (or seen after an earlier crash) but absent", tok))
			case found == nkeys && t.state == txAbsent:
				sc.Corrupt++
				problems = append(problems, fmt.Sprintf("transaction %s: absent after an earlier crash, present now", tok))
			case found == nkeys:
				if t.state == txPresent && t.cycle == n.curCycle {
					sc.Verified++
				}
				t.state = txPresent
			default:
				t.state = txAbsent
			}
		}
	}
	// txlast: the writer's latest transaction present.
	present := 0
	for w := range n.cfg.Writers {
		var last *tx
		for _, t := range st.txs {
			if t.writer == w && t.state == txPresent {
				last = t // st.txs is in each writer's order
			}
		}
		got, err := n.client.Get(ctx, txLastKey(w)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return problems, fmt.Errorf("GET %s: %w", txLastKey(w), err)
		}
		switch {
		case last == nil && err == nil:
			sc.Corrupt++
			problems = append(problems, fmt.Sprintf("%s: %.40q present, but no transaction of writer %d is", txLastKey(w), got, w))
		case last != nil && got != string(txValue(last.token(), txLastKey(w))):
			sc.Corrupt++
			problems = append(problems, fmt.Sprintf("%s: %.40q, want transaction %s's value", txLastKey(w), got, last.token()))
		case last != nil:
			at, err := n.client.Do(ctx, "PEXPIRETIME", txLastKey(w)).Int64()
			if err != nil {
				return problems, fmt.Errorf("PEXPIRETIME %s: %w", txLastKey(w), err)
			}
			acked := last.acked
			if acked == 0 {
				acked = killedAt
			}
			if lo, hi := last.sent+last.lastPX()-1, acked+last.lastPX()+1; at < lo || at > hi {
				sc.Lost++
				problems = append(problems, fmt.Sprintf("%s: PEXPIRETIME %d, want transaction %s's deadline in [%d, %d]", txLastKey(w), at, last.token(), lo, hi))
			}
		}
		if last != nil {
			present++
		}
	}
	for _, t := range st.txs {
		if t.state == txPresent {
			present += nkeys
		}
	}
	size, err := n.client.DBSize(ctx).Result()
	if err != nil {
		return problems, fmt.Errorf("DBSIZE: %w", err)
	}
	if size != int64(present) {
		sc.Corrupt++
		problems = append(problems, fmt.Sprintf("DBSIZE %d, but %d keys exist in database 0", size, present))
	}
	return problems, nil
}

// checkTTLs checks every expiry operation so far: value and PEXPIRETIME.
// killedAt bounds the acknowledgement time of an operation in doubt.
func (n *nodeRunner) checkTTLs(ctx context.Context, st *multiState, sc *Scorecard, killedAt int64) ([]string, error) {
	var problems []string
	bad := func(op *ttlOp, format string, args ...any) {
		sc.Lost++
		problems = append(problems, fmt.Sprintf("%s (PX %d, sent %d, acked %d, persisted %v): ", op.key, op.px, op.sent, op.acked, op.persisted)+fmt.Sprintf(format, args...))
	}
	const batch = 512
	for lo := 0; lo < len(st.ttl); lo += batch {
		ops := st.ttl[lo:min(lo+batch, len(st.ttl))]
		gets := make([]*redis.StringCmd, len(ops))
		pxt := make([]*redis.Cmd, len(ops))
		q0 := time.Now().UnixMilli()
		_, err := n.db1.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, op := range ops {
				pxt[i] = p.Do(ctx, "PEXPIRETIME", op.key)
				gets[i] = p.Get(ctx, op.key)
			}
			return nil
		})
		q1 := time.Now().UnixMilli()
		if err != nil && !errors.Is(err, redis.Nil) {
			return problems, fmt.Errorf("PEXPIRETIME/GET: %w", err)
		}
		for i, op := range ops {
			at, err := pxt[i].Int64()
			if err != nil {
				return problems, fmt.Errorf("PEXPIRETIME %s: %w", op.key, err)
			}
			v, err := gets[i].Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return problems, fmt.Errorf("GET %s: %w", op.key, err)
			}
			exists := err == nil
			if exists != (at != -2) {
				bad(op, "GET and PEXPIRETIME (%d) disagree on whether it exists", at)
				continue
			}
			if exists && v != string(txValue("ttl", op.key)) {
				sc.Corrupt++
				problems = append(problems, fmt.Sprintf("%s: corrupt value %.60q", op.key, v))
				continue
			}
			// The deadline, if SET's PX is in force: in [sent+px,
			// ack+px], the ack bounded by the kill when unacknowledged.
			// One ms of slack each way for the node's clock reading.
			lo, hi := op.sent+op.px-1, op.acked+op.px+1
			if op.acked == 0 {
				hi = killedAt + op.px + 1
			}
			persistOK := op.persisted || op.persistSent // PERSIST in force or in doubt
			switch {
			case op.gone && exists:
				bad(op, "gone after an earlier crash, present now")
			case op.persisted && !exists:
				bad(op, "PERSIST acknowledged, key gone")
			case op.persisted && at != -1:
				bad(op, "PERSIST acknowledged, PEXPIRETIME %d", at)
			case exists && at == -1 && !persistOK:
				bad(op, "TTL lost: PEXPIRETIME -1")
			case exists && at >= 0 && (at < lo || at > hi):
				bad(op, "PEXPIRETIME %d outside [%d, %d]", at, lo, hi)
			case exists && at >= 0 && at < q0:
				bad(op, "deadline %d passed before the check (%d) but the key is visible", at, q0)
			case !exists && op.acked != 0 && !persistOK && lo > q1:
				bad(op, "acknowledged, deadline %d not reached at %d, but absent", lo, q1)
			}
			if !exists {
				// Expired, or never applied: nothing writes the key
				// again, so it must never come back.
				op.gone = true
				continue
			}
			if op.acked == 0 {
				op.acked = killedAt // applied: this bounds its deadline
			}
			if op.persistSent && !op.persisted {
				// PERSIST in doubt is decided now, for later crashes.
				op.persisted = at == -1
				op.persistSent = at == -1
			}
		}
	}
	return problems, nil
}

// runMultiCycle is one cycle of Run with Config.Multi.
func runMultiCycle(ctx context.Context, cfg Config, nr *nodeRunner, st *multiState, sc *Scorecard, c int, kill time.Duration) error {
	nr.curCycle = c
	lost, corrupt, acked := sc.Lost, sc.Corrupt, sc.Acked
	recovery, problems, err := nr.multiCycle(ctx, st, sc, c, kill)
	if err != nil {
		return err
	}
	sc.Recovery = append(sc.Recovery, recovery)
	sc.Cycles++
	ttls := 0
	for _, op := range st.ttl {
		if op.cycle == c && op.acked != 0 {
			ttls++
		}
	}
	fmt.Fprintf(cfg.Log, "cycle %d: killed after %v, %d EXECs acked (%d transactions so far), %d expiry writes, recovery %v, lost %d, corrupt %d\n",
		c, kill.Round(time.Millisecond), sc.Acked-acked, len(st.txs), ttls, recovery.Round(time.Microsecond), sc.Lost-lost, sc.Corrupt-corrupt)
	for j, p := range problems {
		if j == 20 {
			fmt.Fprintf(cfg.Log, "  ... and %d more\n", len(problems)-j)
			break
		}
		fmt.Fprintf(cfg.Log, "  %s\n", p)
	}
	return nil
}
