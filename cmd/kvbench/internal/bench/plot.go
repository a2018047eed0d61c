package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Plot draws results in file, an .svg or .png: on top, the throughput of each
// engine on each benchmark (median ops/s over the rounds, grouped bars);
// below, its latency percentiles p50, p99 and p99.9 (medians over the rounds,
// log scale). Only whole benchmarks are drawn (op "all", and the YCSB load),
// not the parts of a YCSB workload.
//
// It uses gonum.org/v1/plot, which renders the same plot to SVG and PNG
// without a browser or a native library.
func Plot(file string, results []Result) error {
	ext := strings.ToLower(filepath.Ext(file))
	if ext != ".svg" && ext != ".png" {
		return fmt.Errorf("%w: -plot %q: the name must end in .svg or .png", ErrUsage, file)
	}
	data := collectPlotData(results)
	if len(data.benchmarks) == 0 {
		return fmt.Errorf("%w: -plot: no results to draw", ErrUsage)
	}
	tput, err := throughputPlot(data)
	if err != nil {
		return err
	}
	lat, err := latencyPlot(data)
	if err != nil {
		return err
	}
	w := vg.Length(max(7, 1.1*float64(len(data.benchmarks)))) * vg.Inch
	h := 8 * vg.Inch
	var c interface {
		vg.CanvasSizer
		io.WriterTo
	}
	if ext == ".svg" {
		c = vgsvg.New(w, h)
	} else {
		c = vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
	}
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(6), PadY: vg.Points(12)}
	canvases := plot.Align([][]*plot.Plot{{tput}, {lat}}, tiles, draw.New(c))
	tput.Draw(canvases[0][0])
	lat.Draw(canvases[1][0])
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type plotData struct {
	engines    []string
	benchmarks []string
	// medians by engine, then benchmark
	ops, p50, p99, p999 map[string]map[string]float64
}

func collectPlotData(results []Result) plotData {
	d := plotData{ops: map[string]map[string]float64{}, p50: map[string]map[string]float64{}, p99: map[string]map[string]float64{}, p999: map[string]map[string]float64{}}
	type series struct{ ops, p50, p99, p999 []float64 }
	all := map[string]map[string]*series{}
	for _, r := range results {
		if r.Kind != "result" || (r.Op != "all" && r.Benchmark != "ycsb-load") {
			continue
		}
		if !slices.Contains(d.engines, r.Engine) {
			d.engines = append(d.engines, r.Engine)
			all[r.Engine] = map[string]*series{}
		}
		if !slices.Contains(d.benchmarks, r.Benchmark) {
			d.benchmarks = append(d.benchmarks, r.Benchmark)
		}
		s := all[r.Engine][r.Benchmark]
		if s == nil {
			s = &series{}
			all[r.Engine][r.Benchmark] = s
		}
		s.ops = append(s.ops, r.OpsPerSec)
		s.p50 = append(s.p50, r.P50)
		s.p99 = append(s.p99, r.P99)
		s.p999 = append(s.p999, r.P999)
	}
	for e, m := range all {
		d.ops[e], d.p50[e], d.p99[e], d.p999[e] = map[string]float64{}, map[string]float64{}, map[string]float64{}, map[string]float64{}
		for b, s := range m {
			d.ops[e][b], d.p50[e][b], d.p99[e][b], d.p999[e][b] = median(s.ops), median(s.p50), median(s.p99), median(s.p999)
		}
	}
	return d
}

// engineColors are distinguishable for the usual colour-blindness (Okabe-Ito).
var engineColors = []color.Color{
	color.RGBA{0, 114, 178, 255}, color.RGBA{230, 159, 0, 255}, color.RGBA{0, 158, 115, 255},
	color.RGBA{204, 121, 167, 255}, color.RGBA{86, 180, 233, 255}, color.RGBA{213, 94, 0, 255},
}

func engineColor(i int) color.Color { return engineColors[i%len(engineColors)] }

func styleAxes(p *plot.Plot, benchmarks []string) {
	p.NominalX(benchmarks...)
	p.X.Tick.Label.Rotation = math.Pi / 6
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	p.Legend.Top = true
	p.X.Min, p.X.Max = -0.6, float64(len(benchmarks))-0.4
	p.Add(plotter.NewGrid())
}

func throughputPlot(d plotData) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "throughput (median over rounds)"
	p.Y.Label.Text = "ops/s"
	width := vg.Points(min(30, 60/float64(len(d.engines))))
	top := 0.0
	for i, e := range d.engines {
		vals := make(plotter.Values, len(d.benchmarks))
		for j, b := range d.benchmarks {
			vals[j] = d.ops[e][b]
			top = max(top, vals[j])
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return nil, err
		}
		bars.Color = engineColor(i)
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(float64(i)-float64(len(d.engines)-1)/2)
		p.Add(bars)
		p.Legend.Add(e, bars)
	}
	styleAxes(p, d.benchmarks)
	p.Y.Min, p.Y.Max = 0, 1.15*top // room for the legend
	p.Y.Tick.Marker = siTicks{}
	return p, nil
}

func latencyPlot(d plotData) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "latency percentiles (p50 solid, p99 dashed, p99.9 dotted)"
	p.Y.Label.Text = "microseconds (log)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	dashes := [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(1.5), vg.Points(2.5)}}
	for i, e := range d.engines {
		for k, m := range []map[string]map[string]float64{d.p50, d.p99, d.p999} {
			var xys plotter.XYs
			for j, b := range d.benchmarks {
				if v := m[e][b]; v > 0 {
					xys = append(xys, plotter.XY{X: float64(j), Y: v})
				}
			}
			if len(xys) == 0 {
				continue
			}
			l, pts, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			l.Color, pts.Color = engineColor(i), engineColor(i)
			l.Dashes = dashes[k]
			pts.Shape = draw.CircleGlyph{}
			pts.Radius = vg.Points(2)
			p.Add(l, pts)
			if k == 0 {
				p.Legend.Add(e, l, pts)
			}
		}
	}
	styleAxes(p, d.benchmarks)
	return p, nil
}

// siTicks are the default ticks labelled 250k, 1.5M rather than 1500000.
type siTicks struct{}

func (siTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i, t := range ticks {
		if t.Label != "" {
			ticks[i].Label = siLabel(t.Value)
		}
	}
	return ticks
}

func siLabel(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case a >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
