package bench

import (
	"bytes"
	"encoding/xml"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPlot(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig("benchfake")
	cfg.Engines = []string{"benchfake", "benchfake2"}
	cfg.Benchmarks = []string{"fillrandom", "readrandom", "ycsb-b"}
	cfg.Num, cfg.Ops = 500, 500
	for _, name := range []string{"out.svg", "out.png"} {
		cfg.Plot = filepath.Join(dir, name)
		runCfg(t, cfg)
		data, err := os.ReadFile(cfg.Plot)
		require.NoError(t, err)
		if filepath.Ext(name) == ".png" {
			img, err := png.Decode(bytes.NewReader(data))
			require.NoError(t, err)
			require.Greater(t, img.Bounds().Dx(), 500)
			continue
		}
		var doc struct {
			XMLName xml.Name
		}
		require.NoError(t, xml.Unmarshal(data, &doc))
		require.Equal(t, "svg", doc.XMLName.Local)
		for _, s := range []string{"fillrandom", "ycsb-load", "ycsb-b", "benchfake2", "throughput"} {
			require.Contains(t, string(data), s)
		}
	}
	require.ErrorIs(t, Plot(filepath.Join(dir, "x.svg"), nil), ErrUsage)
}

func TestSILabel(t *testing.T) {
	require.Equal(t, "1.5M", siLabel(1_500_000))
	require.Equal(t, "250k", siLabel(250_000))
	require.Equal(t, "0", siLabel(0))
}
