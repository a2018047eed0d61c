package node

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logkv/logkv/bitcask"
	"github.com/logkv/logkv/lsm"
	"github.com/stretchr/testify/require"
)

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := LoadConfig("example.yaml")
	require.NoError(t, err)
	def := DefaultConfig()
	require.Equal(t, def.Engine, cfg.Engine)
	require.Equal(t, def.Limits, cfg.Limits, "example.yaml states the defaults")
	require.Equal(t, def.Replication, cfg.Replication)
	require.Equal(t, def.AppendFsync, cfg.AppendFsync)
	require.Equal(t, def.SlowlogLogSlowerThan, cfg.SlowlogLogSlowerThan)
	require.Equal(t, def.SlowlogMaxLen, cfg.SlowlogMaxLen)
	require.Equal(t, def.LatencyMonitorThreshold, cfg.LatencyMonitorThreshold)
	opts, err := cfg.engineOptions()
	require.NoError(t, err)
	require.Equal(t, int64(8<<20), opts.(*lsm.Options).MemtableSize)
	require.Equal(t, "s2", opts.(*lsm.Options).Compression)
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]struct{ yaml, want string }{
		"unknown key":          {"engine: memory\nlisten: 127.0.0.1:1\nbogus: 1\n", `line 3: unknown key "bogus"`},
		"unknown nested key":   {"engine: memory\nlimits:\n  max_keys: 3\n", `line 3: unknown key "max_keys"`},
		"unknown engine":       {"engine: rocks\n", `engine "rocks" is not one of bitcask, lsm, memory`},
		"unknown engine opt":   {"engine: lsm\nengine_options:\n  memtable_size: 1\n  nope: 2\n", `line 4: unknown key "nope"`},
		"bad engine opt value": {"engine: lsm\nengine_options:\n  memtable_size: lots\n", "line 3"},
		"bad duration":         {"replication:\n  ack_timeout: soon\n", `line 2: "soon" is not a duration`},
		"bad ack":              {"replication:\n  ack: maybe\n", `replication.ack "maybe" must be async or sync`},
		"bad appendfsync":      {"appendfsync: no\n", `appendfsync "no" must be always (acknowledge after the fsync) or everysec`},
		"bad address":          {"listen: nowhere\n", `listen: "nowhere" is not host:port`},
		"key limit":            {"limits:\n  max_key_size: 100000\n", "limits.max_key_size 100000 must be 1 to 65536"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConfig([]byte(c.yaml))
			require.ErrorContains(t, err, c.want)
		})
	}
	cfg, err := ParseConfig(nil)
	require.NoError(t, err, "an empty file means all defaults")
	require.Equal(t, DefaultConfig().Listen, cfg.Listen)

	cfg, err = ParseConfig([]byte("engine: bitcask\nengine_options:\n  sync: interval\n  sync_interval: 250ms\n"))
	require.NoError(t, err)
	opts, err := cfg.engineOptions()
	require.NoError(t, err)
	require.Equal(t, 250*time.Millisecond, opts.(*bitcask.Options).SyncInterval)
}

func TestCLI(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, 0, Main([]string{"check-config", "example.yaml"}, &out, &errb), errb.String())
	require.Contains(t, out.String(), "example.yaml: ok")

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("engine: lsm\ncolour: blue\n"), 0o644))
	out.Reset()
	errb.Reset()
	require.Equal(t, 1, Main([]string{"check-config", bad}, &out, &errb))
	require.Contains(t, errb.String(), `line 2: unknown key "colour"`)

	require.Equal(t, 2, Main([]string{"certs"}, &out, &errb), "certs needs -dir (TestCertsCommand tests the rest)")

	out.Reset()
	require.Equal(t, 0, Main([]string{"-h"}, &out, &errb))
	require.Contains(t, out.String(), "-replicaof", "-h lists the flags")
	require.Contains(t, out.String(), "kvnode certs -dir DIR")

	errb.Reset()
	require.Equal(t, 2, Main([]string{"-engine", "nope"}, &out, &errb))
	require.Contains(t, errb.String(), `engine "nope" is not one of`)

	errb.Reset()
	require.Equal(t, 2, Main([]string{"-appendfsync", "sometimes"}, &out, &errb))
	require.Contains(t, errb.String(), `appendfsync "sometimes" must be always`)
}
