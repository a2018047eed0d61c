package replicate

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/commitlog"
	"github.com/logkv/logkv/replicate/wire"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// The replication scripts: the handshake, fork and resync cases of this
// package written as data, in the style of Pebble's and CockroachDB's
// datadriven tests (the parser is script_parse_test.go). Each file under
// testdata/script/ is a sequence of commands, each followed by the output
// it must produce:
//
//	# a comment
//	leader n1 epoch=1
//	----
//	n1 leads epoch 1
//
// A command is a line; its expected output runs from the "----" line to
// the next blank line (outputs never contain one).
//
//	go test -run Script ./replicate/ -rewrite
//
// regenerates every expected output from what the code does now (the flag
// goes after the package: before it, go test takes it for its own); review
// the diff before committing it.
//
// The nodes run on one in-memory network (transport.MemNetwork), each on
// its own vfs.MemFS with the memory engine and checkpoints, one log segment
// a record (so a trim is exact to the record), maintenance only when a
// script says trim, and ForgetFollowerAfter 1ms (a stopped follower stops
// pinning the leader's log at the next trim). A script runs in
// milliseconds: commands that wait (sync, expect, expect-resync,
// expect-cut) poll for their condition with a deadline, and print what
// they saw when the deadline passes, so a changed behaviour shows as a
// diff, never as a hang.
//
// The commands (NODE is a name; it is also the node's id and address):
//
//	leader NODE [epoch=E]       open NODE (fresh, or on its files after stop
//	                            or crash) and make it lead epoch E
//	                            (PromoteTo), or, without epoch, Promote it
//	                            (a node with an empty log then leads epoch 1,
//	                            so scripts need not print a random one)
//	follower NODE of LEADER [force]
//	                            open NODE as LEADER's follower, or make the
//	                            running NODE Follow (FollowForce) LEADER
//	promote NODE [epoch=E]      Promote (or PromoteTo E) the running NODE
//	write NODE k=v -k ...       one batch per argument: set k to v, or delete k
//	checkpoint NODE             NODE.Checkpoint
//	stop NODE                   close NODE; its files stay
//	crash NODE                  keep only what NODE synced (a power cut),
//	                            and abandon the running node
//	trim NODE upto=S            checkpoint and Maintain until NODE's log no
//	                            longer holds seq S
//	sync NODE                   wait until NODE applied its leader's last
//	                            seq and the leader heard it
//	hello LEADER from=PEER [id=ID] [last=L] [applied=A] [history=E@S,...]
//	                            a raw handshake: PEER dials LEADER and sends
//	                            a Hello (id defaults to PEER); prints the
//	                            Welcome or the Refuse, then hangs up
//	expect NODE [seq=S] [epoch=E] [keys=k=v,...] [role=R]
//	                            wait until NODE has applied S, leads or
//	                            follows epoch E, holds exactly those keys,
//	                            has role R; prints NODE's state
//	expect-resync NODE [count=N]
//	                            wait until NODE has had N (default 1) full
//	                            resyncs; prints their snapshot seqs
//	expect-cut NODE [from=F] [to=T]
//	                            wait until NODE cut a divergent log tail,
//	                            seqs F through T; prints every cut
//	expect-cut NODE none        NODE has cut nothing so far (no wait)
type script struct {
	t    *testing.T
	c    *cluster
	rec  *eventRecorder
	of   map[string]string // whom each follower follows
	wait time.Duration     // the deadline of a waiting command
}

var rewriteScripts = flag.Bool("rewrite", false, "rewrite the expected outputs of testdata/script/* from what the code does now")

func TestScript(t *testing.T) {
	files, err := filepath.Glob("testdata/script/*")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runScript(t, file) })
	}
}

func runScript(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	cmds, err := parseScript(file, string(data))
	require.NoError(t, err)

	s := newScript(t)
	for i := range cmds {
		cmd := &cmds[i]
		got := s.run(cmd)
		if *rewriteScripts {
			cmd.want = got
			continue
		}
		if got != cmd.want {
			t.Errorf("%s:%d: %s\noutput differs\n--- want\n%s\n--- got\n%s", file, cmd.line, cmd.text, cmd.want, got)
			return // later commands build on this one's state
		}
	}
	if *rewriteScripts {
		require.NoError(t, os.WriteFile(file, []byte(formatScript(cmds)), 0o644))
	}
}

func newScript(t *testing.T) *script {
	rec := &eventRecorder{}
	s := &script{t: t, rec: rec, of: map[string]string{}, wait: 10 * time.Second}
	s.c = newCluster(t, func(cfg *Config) {
		cfg.SegmentSize = 1 // a segment per record: trim is exact to the record
		cfg.ForgetFollowerAfter = time.Millisecond
		cfg.Logger = rec.logger(cfg.ID, testLogger(t))
	})
	return s
}

// run executes one command and returns its output.
func (s *script) run(cmd *command) string {
	if len(cmd.args) == 0 {
		return "error: a command names a node"
	}
	name := cmd.args[0].key
	var out string
	var err error
	switch cmd.name {
	case "leader":
		out, err = s.leader(name, cmd)
	case "follower":
		out, err = s.follower(name, cmd)
	case "promote":
		out, err = s.promote(name, cmd)
	case "write":
		out, err = s.write(name, cmd)
	case "checkpoint":
		err = s.node(name).Checkpoint()
		out = fmt.Sprintf("%s checkpoint at seq %d", name, s.node(name).LastSeq())
	case "stop":
		s.c.stop(name)
		out = name + " stopped"
	case "crash":
		out = s.crash(name)
	case "trim":
		out, err = s.trim(name, cmd)
	case "sync":
		out = s.sync(name)
	case "hello":
		out, err = s.hello(name, cmd)
	case "expect":
		out, err = s.expect(name, cmd)
	case "expect-resync":
		out, err = s.expectResync(name, cmd)
	case "expect-cut":
		out, err = s.expectCut(name, cmd)
	default:
		return fmt.Sprintf("error: unknown command %q", cmd.name)
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return out
}

// node returns the running node name, failing the test if there is none:
// a script that uses a stopped node is wrong, not the code under test.
func (s *script) node(name string) *Replica {
	n := s.c.nodes[name]
	if n == nil {
		s.t.Fatalf("no running node %s", name)
	}
	return n
}

func (s *script) leader(name string, cmd *command) (string, error) {
	if s.c.nodes[name] != nil {
		return "", fmt.Errorf("%s is running: use promote", name)
	}
	// Open as the follower of nobody, then promote: Promote on an empty log
	// leads epoch 1, where Open as leader would pick a random first epoch.
	s.c.start(name, "nobody")
	delete(s.of, name)
	return s.promote(name, cmd)
}

func (s *script) promote(name string, cmd *command) (string, error) {
	n := s.node(name)
	if e, ok := cmd.arg("epoch"); ok {
		epoch, err := strconv.ParseUint(e, 10, 64)
		if err != nil {
			return "", err
		}
		if err := n.PromoteTo(epoch); err != nil {
			return "", err
		}
	} else if err := n.Promote(); err != nil {
		return "", err
	}
	delete(s.of, name)
	s.c.addr[name] = n.Addr()
	return fmt.Sprintf("%s leads epoch %d at seq %d", name, n.Epoch(), n.LastSeq()), nil
}

func (s *script) follower(name string, cmd *command) (string, error) {
	if len(cmd.args) < 3 || cmd.args[1].key != "of" {
		return "", fmt.Errorf("usage: follower NODE of LEADER [force]")
	}
	leader := cmd.args[2].key
	_, force := cmd.arg("force")
	s.of[name] = leader
	if n := s.c.nodes[name]; n != nil {
		follow := n.Follow
		if force {
			follow = n.FollowForce
		}
		if err := follow(s.c.addrOf(leader)); err != nil {
			if n.Role() == Leader {
				delete(s.of, name)
			}
			return fmt.Sprintf("%s refused to follow %s, still %s: %v", name, leader, n.Role(), err), nil
		}
		return fmt.Sprintf("%s follows %s", name, leader), nil
	}
	s.c.start(name, leader, func(cfg *Config) {
		if force {
			cfg.MaxDiscard = -1 // FollowForce's check, for a node opened as a follower
		}
	})
	return fmt.Sprintf("%s follows %s", name, leader), nil
}

func (s *script) write(name string, cmd *command) (string, error) {
	n := s.node(name)
	var first, last uint64
	for _, a := range cmd.args[1:] {
		var b logkv.Batch
		if k, ok := strings.CutPrefix(a.key, "-"); ok && !a.hasVal {
			b.Delete([]byte(k))
		} else {
			b.Set([]byte(a.key), []byte(a.val))
		}
		seq, err := n.Write(&b)
		if err != nil {
			return "", fmt.Errorf("writing %s: %w", a, err)
		}
		if first == 0 {
			first = seq
		}
		last = seq
	}
	return fmt.Sprintf("%s wrote seq %d-%d", name, first, last), nil
}

func (s *script) crash(name string) string {
	n := s.node(name)
	durable := n.Log().DurableSeq()
	img := s.c.fs[name].CrashClone(vfs.CrashOptions{}) // unsynced data is lost
	n.Close()                                          // it writes to the old files, which are gone
	delete(s.c.nodes, name)
	s.c.fs[name] = img
	return fmt.Sprintf("%s crashed (synced through seq %d)", name, durable)
}

func (s *script) trim(name string, cmd *command) (string, error) {
	n := s.node(name)
	v, ok := cmd.arg("upto")
	if !ok {
		return "", fmt.Errorf("usage: trim NODE upto=SEQ")
	}
	upto, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return "", err
	}
	deadline := time.Now().Add(s.wait)
	for n.Log().FirstSeq() <= upto {
		if time.Now().After(deadline) {
			return fmt.Sprintf("%s still holds seq %d: log first=%d last=%d", name, upto, n.Log().FirstSeq(), n.Log().LastSeq()), nil
		}
		if err := n.Checkpoint(); err != nil {
			return "", err
		}
		if err := n.Maintain(); err != nil {
			return "", err
		}
		time.Sleep(time.Millisecond) // a poll interval, not a synchronisation: the loop checks the condition
	}
	return fmt.Sprintf("%s log first=%d last=%d", name, n.Log().FirstSeq(), n.Log().LastSeq()), nil
}

func (s *script) sync(name string) string {
	n := s.node(name)
	leader := s.node(s.of[name])
	last := leader.LastSeq()
	ok := poll(s.wait, func() bool {
		if n.LastSeq() != last {
			return false
		}
		for _, f := range leader.Followers() {
			if f.ID == name {
				return f.Applied >= last && f.Durable >= last
			}
		}
		return false
	})
	if !ok {
		return fmt.Sprintf("%s did not catch up with %s: applied %d of %d", name, s.of[name], n.LastSeq(), last)
	}
	return fmt.Sprintf("%s applied seq %d", name, n.LastSeq())
}

func (s *script) hello(name string, cmd *command) (string, error) {
	from, ok := cmd.arg("from")
	if !ok {
		return "", fmt.Errorf("usage: hello LEADER from=PEER ...")
	}
	h := wire.Hello{ID: from}
	if id, ok := cmd.arg("id"); ok {
		h.ID = id
	}
	var err error
	for _, f := range []struct {
		key string
		dst *uint64
	}{{"last", &h.LastSeq}, {"applied", &h.Applied}} {
		if v, ok := cmd.arg(f.key); ok {
			if *f.dst, err = strconv.ParseUint(v, 10, 64); err != nil {
				return "", err
			}
		}
	}
	if v, ok := cmd.arg("history"); ok {
		if h.History, err = parseHistory(v); err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.wait)
	defer cancel()
	st, err := s.c.net.Transport(from).Dial(ctx, s.c.addrOf(name))
	if err != nil {
		return "", err
	}
	defer st.Close()
	if _, err := st.Write(wire.AppendFrame(nil, wire.TypeHello, wire.AppendHello(nil, h), false)); err != nil {
		return "", err
	}
	fr, err := wire.NewReader(st).ReadFrame()
	if err != nil {
		return "", err
	}
	switch fr.Type {
	case wire.TypeRefuse:
		reason, err := wire.DecodeRefuse(fr.Payload)
		if err != nil {
			return "", err
		}
		return "refuse: " + reason, nil
	case wire.TypeWelcome:
		wl, err := wire.DecodeWelcome(fr.Payload)
		if err != nil {
			return "", err
		}
		mode := map[uint8]string{wire.ModeStream: "stream", wire.ModeResync: "resync"}[wl.Mode]
		return fmt.Sprintf("welcome from %s: mode=%s seq=%d history=%s", wl.ID, mode, wl.Seq, formatHistory(wl.History)), nil
	}
	return fmt.Sprintf("%s frame", fr.Type), nil
}

func (s *script) expect(name string, cmd *command) (string, error) {
	n := s.node(name)
	want := map[string]string{}
	for _, a := range cmd.args[1:] {
		switch a.key {
		case "seq", "epoch", "keys", "role":
			want[a.key] = a.val
		default:
			return "", fmt.Errorf("expect: unknown argument %q", a.key)
		}
	}
	var have map[string]string
	ok := poll(s.wait, func() bool {
		have = map[string]string{
			"seq":   strconv.FormatUint(n.LastSeq(), 10),
			"epoch": strconv.FormatUint(s.epochOf(n), 10),
			"keys":  formatKeys(scan(s.t, n.Engine())),
			"role":  n.Role().String(),
		}
		for k, v := range want {
			if have[k] != v {
				return false
			}
		}
		return true
	})
	st := n.Status()
	out := fmt.Sprintf("%s %s epoch=%s seq=%s log=%d-%d history=%s\nkeys: %s\nresyncs=%d cuts=%d",
		name, have["role"], have["epoch"], have["seq"], st.LogFirstSeq, st.LastSeq, formatHistory(n.Log().History()),
		have["keys"], len(s.rec.find(name, "full resync")), len(s.rec.find(name, "cutting a divergent tail")))
	if !ok {
		var miss []string
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if have[k] != want[k] {
				miss = append(miss, fmt.Sprintf("%s=%s", k, want[k]))
			}
		}
		out = "never reached " + strings.Join(miss, " ") + "; it has:\n" + out
	}
	return out, nil
}

// epochOf is the epoch a node leads, or follows once it heard its leader.
func (s *script) epochOf(n *Replica) uint64 {
	n.roleMu.Lock()
	f := n.follower
	n.roleMu.Unlock()
	if f != nil {
		return max(f.leaderEpoch.Load(), n.Epoch())
	}
	return n.Epoch()
}

func (s *script) expectResync(name string, cmd *command) (string, error) {
	want := 1
	if v, ok := cmd.arg("count"); ok {
		var err error
		if want, err = strconv.Atoi(v); err != nil {
			return "", err
		}
	}
	var evs []event
	ok := poll(s.wait, func() bool {
		evs = s.rec.find(name, "resync loaded")
		return len(evs) >= want
	})
	var seqs []string
	for _, e := range evs {
		seqs = append(seqs, e.attrs["seq"])
	}
	out := fmt.Sprintf("%s resynced %d times, at snapshot seq %s", name, len(evs), strings.Join(seqs, ","))
	if !ok || len(evs) != want {
		out = fmt.Sprintf("wanted %d resyncs; %s", want, out)
	}
	return out, nil
}

func (s *script) expectCut(name string, cmd *command) (string, error) {
	if _, none := cmd.arg("none"); none {
		// Nothing to wait for: the script has already waited for the
		// handshake (sync, expect-resync) that would have cut.
		if evs := s.rec.find(name, "cutting a divergent tail"); len(evs) > 0 {
			return fmt.Sprintf("%s cut %d times, wanted none", name, len(evs)), nil
		}
		return name + " cut nothing", nil
	}
	from, hasFrom := cmd.arg("from")
	to, hasTo := cmd.arg("to")
	var evs []event
	match := func(e event) bool {
		f, _ := strconv.ParseUint(e.attrs["fork"], 10, 64)
		return (!hasFrom || strconv.FormatUint(f+1, 10) == from) && (!hasTo || e.attrs["last"] == to)
	}
	ok := poll(s.wait, func() bool {
		evs = s.rec.find(name, "cutting a divergent tail")
		return slices.ContainsFunc(evs, match)
	})
	var cuts []string
	for _, e := range evs {
		f, _ := strconv.ParseUint(e.attrs["fork"], 10, 64)
		cuts = append(cuts, fmt.Sprintf("%d-%s (fork point %d)", f+1, e.attrs["last"], f))
	}
	if len(cuts) == 0 {
		cuts = []string{"nothing"}
	}
	out := fmt.Sprintf("%s cut %s", name, strings.Join(cuts, ", "))
	if !ok {
		out = fmt.Sprintf("wanted a cut of %s-%s; %s", from, to, out)
	}
	return out, nil
}

// poll reports whether cond became true before d passed, checking it every
// millisecond: the scripts' one way to wait for the nodes.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

func parseHistory(s string) ([]commitlog.EpochStart, error) {
	var h []commitlog.EpochStart
	for _, p := range strings.Split(s, ",") {
		e, q, ok := strings.Cut(p, "@")
		if !ok {
			return nil, fmt.Errorf("history entry %q is not EPOCH@SEQ", p)
		}
		epoch, err := strconv.ParseUint(e, 10, 64)
		if err != nil {
			return nil, err
		}
		seq, err := strconv.ParseUint(q, 10, 64)
		if err != nil {
			return nil, err
		}
		h = append(h, commitlog.EpochStart{Epoch: epoch, Seq: seq})
	}
	return h, nil
}

func formatHistory(h []commitlog.EpochStart) string {
	if len(h) == 0 {
		return "none"
	}
	var parts []string
	for _, e := range h {
		parts = append(parts, fmt.Sprintf("%d@%d", e.Epoch, e.Seq))
	}
	return strings.Join(parts, ",")
}

func formatKeys(m map[string]string) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}
