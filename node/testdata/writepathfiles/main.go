// Command writepathfiles lists the files of node and replicate whose code
// runs while a node serves one pipeline of 16 SETs: the files a write
// crosses (docs/architecture.md counts them). It starts a node (memory
// engine, durability full: the replicated backend and its commit log),
// warms it with one pipeline, clears the coverage counters, sends a second
// pipeline and reports the files whose counters moved. It needs a coverage
// build (it lives in testdata so that go build ./... and go vet ./... pass
// it by):
//
//	go build -cover -covermode=atomic -coverpkg=./node,./replicate/... -o /tmp/writepathfiles ./node/testdata/writepathfiles && /tmp/writepathfiles
//
// The node's background work (the expirer, replicate's maintenance) may
// run in the window too; a file it alone shows is named as such.
package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/coverage"
	"sort"
	"strings"

	"github.com/logkv/logkv/node"
	"github.com/redis/go-redis/v9"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	tmp, err := os.MkdirTemp("", "writepathfiles")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cfg := node.DefaultConfig()
	cfg.Engine, cfg.DataDir = "memory", filepath.Join(tmp, "data")
	cfg.Listen, cfg.Admin, cfg.Replication.Listen = "127.0.0.1:0", "off", "off"
	n, err := node.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	go n.Serve()
	defer n.Shutdown(context.Background())
	c := redis.NewClient(&redis.Options{Addr: n.Addr(), Protocol: 2})
	defer c.Close()
	ctx := context.Background()
	pipe := func() error {
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range 16 {
				p.Set(ctx, fmt.Sprint("k", i), "v", 0)
			}
			return nil
		})
		return err
	}
	if err := pipe(); err != nil { // warm: the connection, its buffers, the keyspace's generations
		return err
	}
	dir := filepath.Join(tmp, "cov")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := coverage.WriteMetaDir(dir); err != nil {
		return err
	}
	if err := coverage.ClearCounters(); err != nil {
		return err
	}
	if err := pipe(); err != nil {
		return err
	}
	if err := coverage.WriteCountersDir(dir); err != nil {
		return err
	}
	prof := filepath.Join(tmp, "profile.txt")
	if out, err := exec.Command("go", "tool", "covdata", "textfmt", "-i", dir, "-o", prof).CombinedOutput(); err != nil {
		return fmt.Errorf("go tool covdata: %v: %s", err, out)
	}
	f, err := os.Open(prof)
	if err != nil {
		return err
	}
	defer f.Close()
	ran := map[string]int{} // statements run, by file
	s := bufio.NewScanner(f)
	for s.Scan() {
		// file.go:line.col,line.col statements count
		fields := strings.Fields(s.Text())
		if len(fields) != 3 || fields[2] == "0" || !strings.Contains(fields[0], ":") {
			continue
		}
		file := strings.TrimPrefix(fields[0][:strings.IndexByte(fields[0], ':')], "github.com/logkv/logkv/")
		var stmts int
		if _, err := fmt.Sscan(fields[1], &stmts); err != nil {
			return fmt.Errorf("profile line %q: %v", s.Text(), err)
		}
		ran[file] += stmts
	}
	if err := s.Err(); err != nil {
		return err
	}
	files := make([]string, 0, len(ran))
	for f := range ran {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		fmt.Printf("%-40s %4d statements\n", f, ran[f])
	}
	fmt.Printf("%d files\n", len(files))
	return nil
}
