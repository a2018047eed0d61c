package enginetest

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// brokenEnv names the broken variant TestBrokenChild runs the suite against.
const brokenEnv = "ENGINETEST_BROKEN"

// brokenVariant is a reference engine with one deliberate contract
// violation, and which of the suite's subtests must catch it.
type brokenVariant struct {
	name string
	bugs refBugs
	// durable runs the durable reference engine, which can crash; the memory
	// one is faster.
	durable bool
	// run is the -test.run pattern below TestBrokenChild: the subtests to
	// run in the child, to keep the test fast.
	run string
	// attempts is how many runs may be needed to see every must (default
	// one): more for bugs only a lucky interleaving shows.
	attempts int
	// must: leaf subtests that must fail. may: ones that may fail too (an
	// entry ending in "/" allows every subtest under it); no other may.
	must, may []string
}

var brokenVariants = []brokenVariant{
	{
		name: "snapshot-leak", bugs: refBugs{snapshotLeak: true},
		run:  "^(snapshot|model)$",
		must: []string{"snapshot/isolation", "snapshot/seq", "snapshot/many", "model"},
	},
	{
		name: "iter-ignores-upper", bugs: refBugs{iterIgnoresUpper: true},
		run:  "^(iter|model)$",
		must: []string{"iter/bounds/upper-only", "iter/bounds/both-on-keys", "iter/bounds/empty-equal", "iter/bounds/gap", "model"},
		may:  []string{"iter/"},
	},
	{
		name: "iter-live", bugs: refBugs{iterLive: true},
		run:  "^(iter|model)$",
		must: []string{"iter/point-in-time", "model"},
	},
	{
		name: "prev-after-end", bugs: refBugs{prevAfterEnd: true},
		run:  "^(iter|model)$",
		must: []string{"iter/bounds/nil-nil", "iter/bounds/one-key", "model"},
		may:  []string{"iter/"},
	},
	{
		name: "empty-batch-seq", bugs: refBugs{emptyBatchSeq: true},
		run:  "^(batch|seq|model)$",
		must: []string{"batch/empty-is-noop", "seq/not-increasing-rejected", "model"},
	},
	{
		name: "get-aliases", bugs: refBugs{getAliases: true},
		run:  "^(basic|snapshot|model)$",
		must: []string{"basic/get-result-owned-by-caller"},
	},
	{
		name: "keeps-batch-buffer", bugs: refBugs{keepsBatchBuffer: true},
		run:  "^(basic|batch|model)$",
		must: []string{"batch/reuse-after-apply", "batch/decoded-batch-not-retained"},
		may:  []string{"basic/many-keys", "batch/atomic-under-readers", "model"},
	},
	{
		name: "ignores-batch-err", bugs: refBugs{ignoresBatchErr: true},
		run:  "^(limits|model)$/^(empty-key|over-limit-rejected|invalid-batch-rejected-whole)$",
		must: []string{"limits/invalid-batch-rejected-whole", "limits/empty-key", "limits/over-limit-rejected", "model"},
	},
	{
		name: "sync-loses", bugs: refBugs{syncLoses: true},
		run: "^(crash|model)$", durable: true,
		must: []string{"crash/synced-writes-survive", "crash/sync-call", "crash/large-batch", "model"},
	},
	{
		name: "non-atomic-apply", bugs: refBugs{nonAtomicApply: true},
		run:  "^(batch|concurrent)$",
		must: []string{"batch/atomic-under-readers"}, attempts: 3,
		may: []string{"concurrent"},
	},
	{
		name: "forgets-seq", bugs: refBugs{forgetsSeq: true},
		run: "^(persist|seq|model)$", durable: true,
		must: []string{"persist/reopen", "persist/many-reopens", "seq/caller-given", "seq/not-increasing-rejected", "model"},
	},
	{
		name: "close-loses", bugs: refBugs{closeLoses: true},
		run: "^(persist|model)$", durable: true,
		must: []string{"persist/reopen", "persist/sync", "persist/many-reopens", "model"},
	},
	{
		name: "torn-batch", bugs: refBugs{tornBatch: true},
		run: "^(crash|model)$", durable: true,
		must: []string{"crash/prefix", "crash/large-batch", "model"},
	},
}

// TestBrokenChild runs the suite against the broken variant named by
// $ENGINETEST_BROKEN. It is run, as a subprocess, by TestBrokenEnginesCaught,
// and skips otherwise.
func TestBrokenChild(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skip("run by TestBrokenEnginesCaught")
	}
	i := slices.IndexFunc(brokenVariants, func(v brokenVariant) bool { return v.name == name })
	require.GreaterOrEqual(t, i, 0, "unknown variant %q", name)
	v := brokenVariants[i]
	open, caps := refOpen(v.durable, v.durable, v.bugs)
	Run(t, open, caps)
}

var failLine = regexp.MustCompile(`(?m)^\s*--- FAIL: TestBrokenChild/(\S+) `)

// TestBrokenEnginesCaught runs the suite against each broken variant in a
// subprocess (a failing subtest cannot be contained in this process) and
// checks that it fails, in the subtests that should catch the bug.
func TestBrokenEnginesCaught(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("in the child")
	}
	for _, v := range brokenVariants {
		t.Run(v.name, func(t *testing.T) {
			// A race-dependent catch gets more than one chance; every
			// attempt must still fail only where it may.
			for attempt := 1; ; attempt++ {
				leaves, out := runBrokenChild(t, v)
				t.Logf("%s, attempt %d: failed %v", v.name, attempt, leaves)
				for _, l := range leaves {
					allowed := slices.Contains(v.must, l) || slices.ContainsFunc(v.may, func(m string) bool {
						return m == l || strings.HasSuffix(m, "/") && strings.HasPrefix(l, m)
					})
					require.True(t, allowed, "bug %s failed subtest %s, which it should not touch; output:\n%s", v.name, l, out)
				}
				missed := slices.DeleteFunc(slices.Clone(v.must), func(w string) bool { return slices.Contains(leaves, w) })
				if len(missed) == 0 {
					return
				}
				if attempt >= max(v.attempts, 1) {
					require.Empty(t, missed, "bug %s not caught by these subtests; output:\n%s", v.name, out)
				}
			}
		})
	}
}

// runBrokenChild runs the suite against v in a subprocess and returns the
// leaf subtests that failed, and the output.
func runBrokenChild(t *testing.T, v brokenVariant) ([]string, string) {
	t.Helper()
	args := []string{"-test.run=^TestBrokenChild$/" + v.run, "-test.count=1", "-test.timeout=5m"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), brokenEnv+"="+v.name)
	out, err := cmd.CombinedOutput()
	failed := map[string]bool{}
	for _, m := range failLine.FindAllStringSubmatch(string(out), -1) {
		failed[m[1]] = true
	}
	// Keep the leaves: a parent fails when a child does.
	var leaves []string
	for name := range failed {
		leaf := true
		for other := range failed {
			if strings.HasPrefix(other, name+"/") {
				leaf = false
			}
		}
		if leaf {
			leaves = append(leaves, name)
		}
	}
	slices.Sort(leaves)
	if len(leaves) > 0 {
		require.Error(t, err, "the child reported failures but exited cleanly:\n%s", out)
	} else if err != nil {
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "running the child")
		require.Failf(t, "the child failed without a failing subtest", "%v:\n%s", err, out)
	}
	return leaves, string(out)
}
