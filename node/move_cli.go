package node

// kvnode cluster move-slots, rebalance, add-shard and remove-shard: the
// operator's side of slot moves (move.go). Each writes the slot map in a
// transaction on its revision; the shards' leaders do the moving, and the
// command waits, printing progress, until the map shows the move done.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// parseSlotRange parses "FIRST-LAST" or one slot.
func parseSlotRange(s string) (first, last uint16, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = a
	}
	f, err1 := strconv.ParseUint(a, 10, 16)
	l, err2 := strconv.ParseUint(b, 10, 16)
	if err1 != nil || err2 != nil || f > l || l >= numSlots {
		return 0, 0, fmt.Errorf("slots %q: want FIRST-LAST (or one slot), 0 <= FIRST <= LAST <= %d", s, numSlots-1)
	}
	return uint16(f), uint16(l), nil
}

// startMove adds the move of first..last from shard from to shard to.
func startMove(ctx context.Context, cli *clientv3.Client, cluster, from, to string, first, last uint16) (*slotMap, error) {
	return updateSlotMap(ctx, cli, cluster, func(m *slotMap) (*slotMap, []clientv3.Op, error) {
		fi, ti := m.shardIndex(from), m.shardIndex(to)
		if fi < 0 || ti < 0 {
			return nil, nil, fmt.Errorf("the slot map names shards %s; %q and %q must both be among them (add a shard with kvnode cluster add-shard NAME)", strings.Join(m.Shards, ","), from, to)
		}
		if fi == ti {
			return nil, nil, fmt.Errorf("slots %d-%d would move from shard %s to itself", first, last, from)
		}
		if r := m.rangeOf(first); int(r.Shard) != fi || r.Last < last {
			return nil, nil, fmt.Errorf("shard %s does not own all of slots %d-%d (kvnode cluster status shows the ranges; a move lies within one range of its source)", from, first, last)
		}
		for _, mv := range m.Moves {
			if mv.First <= last && first <= mv.Last {
				return nil, nil, fmt.Errorf("slots %d-%d are moving already (%s to %s, %s)", mv.First, mv.Last, m.Shards[mv.From], m.Shards[mv.To], mv.State)
			}
		}
		m.Moves = append(m.Moves, slotMove{First: first, Last: last, From: uint16(fi), To: uint16(ti), State: moveCopying})
		return m, []clientv3.Op{clientv3.OpDelete(moveProgressKey(cluster, first, last))}, nil
	})
}

// abortMove removes the move of first..last if it has not flipped: the
// source serves the slots as before, and the target's leader deletes what
// it copied.
func abortMove(ctx context.Context, cli *clientv3.Client, cluster string, first, last uint16) (bool, error) {
	found := false
	_, err := updateSlotMap(ctx, cli, cluster, func(m *slotMap) (*slotMap, []clientv3.Op, error) {
		i := m.findMove(first, last)
		if found = i >= 0; !found {
			return nil, nil, errMapUnchanged
		}
		m.Moves = append(m.Moves[:i], m.Moves[i+1:]...)
		return m, []clientv3.Op{clientv3.OpDelete(moveProgressKey(cluster, first, last))}, nil
	})
	return found, err
}

// readMoveProgress reads the target's progress record of first..last.
func readMoveProgress(ctx context.Context, cli *clientv3.Client, cluster string, first, last uint16) (*moveProgress, error) {
	resp, err := cli.Get(ctx, moveProgressKey(cluster, first, last))
	if err != nil || len(resp.Kvs) == 0 {
		return nil, err
	}
	var p moveProgress
	if err := json.Unmarshal(resp.Kvs[0].Value, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", moveProgressKey(cluster, first, last), err)
	}
	return &p, nil
}

// awaitMove waits until the move of first..last leaves the map, printing
// its progress as it changes; it reports whether the slots are to's.
func awaitMove(ctx context.Context, cli *clientv3.Client, cluster, to string, first, last uint16, stdout io.Writer) (bool, error) {
	last1 := ""
	for {
		m, err := readSlotMap(ctx, cli, cluster)
		if err != nil {
			return false, err
		}
		if m == nil {
			return false, fmt.Errorf("cluster %s has no slot map any more (was its key deleted?); kvnode cluster init writes one", cluster)
		}
		p, _ := readMoveProgress(ctx, cli, cluster, first, last) // progress is for people: a failed read shows none
		if m.findMove(first, last) < 0 {
			r := m.rangeOf(first)
			moved := m.Shards[r.Shard] == to && r.Last >= last
			if moved && p != nil && p.State == "done" {
				fmt.Fprintf(stdout, "moved slots %d-%d to %s: %d keys, %.1f MB in %.2fs (%.1f MB/s), writes paused %d ms, %d tail rounds\n",
					first, last, to, p.Keys, float64(p.Bytes)/1e6, float64(p.DurationMs)/1000,
					float64(p.Bytes)/1e6/max(float64(p.DurationMs)/1000, 0.001), p.PauseMs, p.Rounds)
				_, err = cli.Delete(ctx, moveProgressKey(cluster, first, last))
			}
			return moved, err
		}
		if p != nil {
			line := fmt.Sprintf("slots %d-%d to %s: %s, attempt %d, %d keys, %.1f MB", first, last, to, p.State, p.Attempt, p.Keys, float64(p.Bytes)/1e6)
			if line != last1 {
				fmt.Fprintln(stdout, line)
				last1 = line
			}
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("stopped waiting (the move goes on; kvnode cluster status shows it): %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// clusterMoveSlots is `kvnode cluster move-slots FROM TO FIRST-LAST [-abort]`.
func clusterMoveSlots(ctx context.Context, cli *clientv3.Client, cluster string, args []string, abort, wait bool, stdout, stderr io.Writer) int {
	if (abort && len(args) != 1 && len(args) != 3) || (!abort && len(args) != 3) {
		fmt.Fprintln(stderr, "kvnode cluster move-slots: want FROM TO FIRST-LAST (or -abort FIRST-LAST)")
		return 2
	}
	first, last, err := parseSlotRange(args[len(args)-1])
	if err != nil {
		fmt.Fprintf(stderr, "kvnode cluster move-slots: %v\n", err)
		return 2
	}
	if abort {
		found, err := abortMove(ctx, cli, cluster, first, last)
		switch {
		case err != nil:
			fmt.Fprintf(stderr, "kvnode cluster move-slots -abort: %v\n", err)
			return 1
		case !found:
			fmt.Fprintf(stderr, "kvnode cluster move-slots -abort: no move of slots %d-%d in the map (done already? kvnode cluster status shows the ranges)\n", first, last)
			return 1
		}
		fmt.Fprintf(stdout, "move of slots %d-%d aborted: its source serves them\n", first, last)
		return 0
	}
	from, to := args[0], args[1]
	m, err := startMove(ctx, cli, cluster, from, to, first, last)
	if err != nil {
		fmt.Fprintf(stderr, "kvnode cluster move-slots: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "moving slots %d-%d from %s to %s (map version %d)\n", first, last, from, to, m.Version)
	if !wait {
		return 0
	}
	moved, err := awaitMove(ctx, cli, cluster, to, first, last, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "kvnode cluster move-slots: %v\n", err)
		return 1
	}
	if !moved {
		fmt.Fprintf(stderr, "kvnode cluster move-slots: the move of slots %d-%d left the map without flipping (aborted)\n", first, last)
		return 1
	}
	return 0
}

// plannedMove is one move a rebalance makes.
type plannedMove struct {
	first, last uint16
	from, to    string
}

// planRebalance returns moves that leave every shard of m but the drained
// ones owning numSlots/len or one more slot (the drained ones none), each
// move a run of one range of its source, taken from its end. It plans on
// a copy; m is not changed.
func planRebalance(m *slotMap, drained map[string]bool) ([]plannedMove, error) {
	var live []int
	for i, s := range m.Shards {
		if !drained[s] {
			live = append(live, i)
		}
	}
	if len(live) == 0 {
		return nil, errors.New("no shard would own a slot")
	}
	want := make([]int, len(m.Shards))
	for k, i := range live {
		want[i] = numSlots / len(live)
		if k < numSlots%len(live) {
			want[i]++
		}
	}
	have := make([]int, len(m.Shards))
	for _, r := range m.Ranges {
		have[r.Shard] += int(r.Last) - int(r.First) + 1
	}
	c := m.clone()
	var plan []plannedMove
	for {
		// The most over-full giver and the most under-full taker.
		giver, taker := -1, -1
		for i := range m.Shards {
			if have[i] > want[i] && (giver < 0 || have[i]-want[i] > have[giver]-want[giver]) {
				giver = i
			}
			if have[i] < want[i] && (taker < 0 || want[i]-have[i] > want[taker]-have[taker]) {
				taker = i
			}
		}
		if giver < 0 || taker < 0 {
			return plan, nil
		}
		n := min(have[giver]-want[giver], want[taker]-have[taker])
		// The giver's last range: moves come off its end.
		var r slotRange
		for _, x := range c.Ranges {
			if int(x.Shard) == giver {
				r = x
			}
		}
		size := int(r.Last) - int(r.First) + 1
		n = min(n, size)
		first := uint16(int(r.Last) - n + 1)
		plan = append(plan, plannedMove{first: first, last: r.Last, from: m.Shards[giver], to: m.Shards[taker]})
		c.assign(first, r.Last, uint16(taker))
		have[giver] -= n
		have[taker] += n
	}
}

// clusterRebalance is `kvnode cluster rebalance`: it plans moves that spread
// the slots evenly over the map's shards (none to the -drain shard, which
// removeShard uses) and runs them, those of disjoint ranges at once, each
// waited for (one move at a time per slot range).
func clusterRebalance(ctx context.Context, cli *clientv3.Client, cluster string, drain string, dryRun bool, stdout, stderr io.Writer) int {
	m, err := readSlotMap(ctx, cli, cluster)
	if err == nil && m == nil {
		err = fmt.Errorf("cluster %s has no slot map: write one with kvnode cluster init -shards NAME,NAME", cluster)
	}
	if err != nil {
		fmt.Fprintf(stderr, "kvnode cluster rebalance: %v\n", err)
		return 1
	}
	if len(m.Moves) > 0 {
		fmt.Fprintf(stderr, "kvnode cluster rebalance: %d moves are running; wait for them (kvnode cluster status) or abort them first\n", len(m.Moves))
		return 1
	}
	drained := map[string]bool{}
	if drain != "" {
		if m.shardIndex(drain) < 0 {
			fmt.Fprintf(stderr, "kvnode cluster rebalance: the map has no shard %q\n", drain)
			return 1
		}
		drained[drain] = true
	}
	plan, err := planRebalance(m, drained)
	if err != nil {
		fmt.Fprintf(stderr, "kvnode cluster rebalance: %v\n", err)
		return 1
	}
	if len(plan) == 0 {
		fmt.Fprintln(stdout, "the slots are spread evenly already")
		return 0
	}
	start := time.Now()
	// Moves of disjoint ranges run at once (each target copies its own);
	// a move the map refuses now (its range is not one range of its source
	// until an earlier move flips) waits for the running ones.
	var running []plannedMove
	awaitRunning := func() error {
		for _, p := range running {
			moved, err := awaitMove(ctx, cli, cluster, p.to, p.first, p.last, stdout)
			if err == nil && !moved {
				err = errors.New("the move left the map without flipping (aborted)")
			}
			if err != nil {
				return fmt.Errorf("slots %d-%d: %w", p.first, p.last, err)
			}
		}
		running = running[:0]
		return nil
	}
	for i, p := range plan {
		fmt.Fprintf(stdout, "move %d of %d: slots %d-%d from %s to %s\n", i+1, len(plan), p.first, p.last, p.from, p.to)
		if dryRun {
			continue
		}
		_, err := startMove(ctx, cli, cluster, p.from, p.to, p.first, p.last)
		if err != nil && len(running) > 0 {
			if err = awaitRunning(); err == nil {
				_, err = startMove(ctx, cli, cluster, p.from, p.to, p.first, p.last)
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "kvnode cluster rebalance: %v\n", err)
			return 1
		}
		running = append(running, p)
	}
	if err := awaitRunning(); err != nil {
		fmt.Fprintf(stderr, "kvnode cluster rebalance: %v\n", err)
		return 1
	}
	if !dryRun {
		fmt.Fprintf(stdout, "rebalanced in %.2fs\n", time.Since(start).Seconds())
	}
	return 0
}

// clusterAddShard is `kvnode cluster add-shard NAME`: the map names a new
// shard, owning nothing until a rebalance (or move-slots) gives it slots.
// Its members may run before or after.
func clusterAddShard(ctx context.Context, cli *clientv3.Client, cluster, name string, stdout, stderr io.Writer) int {
	m, err := updateSlotMap(ctx, cli, cluster, func(m *slotMap) (*slotMap, []clientv3.Op, error) {
		if m.shardIndex(name) >= 0 {
			return nil, nil, fmt.Errorf("the map names shard %q already", name)
		}
		m.Shards = append(m.Shards, name)
		return m, nil, nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "kvnode cluster add-shard: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "shard %s added (map version %d); it owns no slot until kvnode cluster rebalance\n", name, m.Version)
	return 0
}

// clusterRemoveShard is `kvnode cluster remove-shard NAME`: its slots move
// to the other shards (a rebalance without it), then the map stops naming
// it. Its members may be stopped after.
func clusterRemoveShard(ctx context.Context, cli *clientv3.Client, cluster, name string, stdout, stderr io.Writer) int {
	if code := clusterRebalance(ctx, cli, cluster, name, false, stdout, stderr); code != 0 {
		return code
	}
	m, err := updateSlotMap(ctx, cli, cluster, func(m *slotMap) (*slotMap, []clientv3.Op, error) {
		i := m.shardIndex(name)
		if i < 0 {
			return nil, nil, errMapUnchanged
		}
		for _, r := range m.Ranges {
			if int(r.Shard) == i {
				return nil, nil, fmt.Errorf("shard %s still owns slots %d-%d; run kvnode cluster remove-shard %s again", name, r.First, r.Last, name)
			}
		}
		for _, mv := range m.Moves {
			if int(mv.From) == i || int(mv.To) == i {
				return nil, nil, fmt.Errorf("a move of slots %d-%d involves shard %s; wait for it", mv.First, mv.Last, name)
			}
		}
		m.Shards = slices.Delete(m.Shards, i, i+1)
		for k := range m.Ranges {
			if int(m.Ranges[k].Shard) > i {
				m.Ranges[k].Shard--
			}
		}
		for k := range m.Moves {
			if int(m.Moves[k].From) > i {
				m.Moves[k].From--
			}
			if int(m.Moves[k].To) > i {
				m.Moves[k].To--
			}
		}
		return m, nil, nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "kvnode cluster remove-shard: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "shard %s removed from the map (version %d); its members serve no slot and may be stopped\n", name, m.Version)
	return 0
}

// writeMoveProgress prints the running moves' progress records under the
// map m in kvnode cluster status. A record of a move m no longer holds is
// not shown as running: an abort deletes the record, but the target may
// publish once more before it sees the abort.
func writeMoveProgress(ctx context.Context, cli *clientv3.Client, cluster string, m *slotMap, w io.Writer) {
	resp, err := cli.Get(ctx, "/logkv/"+cluster+"/moves/", clientv3.WithPrefix())
	if err != nil {
		fmt.Fprintf(w, "moves: cannot read progress: %v\n", err)
		return
	}
	var lines []string
	for _, kv := range resp.Kvs {
		var p moveProgress
		if json.Unmarshal(kv.Value, &p) != nil {
			continue
		}
		line := fmt.Sprintf("move %d-%d %s -> %s: %s, attempt %d, %d keys, %.1f MB", p.First, p.Last, p.From, p.To, p.State, p.Attempt, p.Keys, float64(p.Bytes)/1e6)
		switch {
		case p.State == "done":
			line += fmt.Sprintf(" in %.2fs, paused %d ms", float64(p.DurationMs)/1000, p.PauseMs)
		case m.findMove(p.First, p.Last) < 0:
			line += ", ended: the move is not in the slot map (aborted)"
		default:
			line += fmt.Sprintf(", running %.0fs", time.Since(time.UnixMilli(p.StartedMs)).Seconds())
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}
