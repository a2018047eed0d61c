package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/replicate/commitlog"
	"github.com/logkv/logkv/vfs"
)

// kvnode salvage copies what still checks out from a damaged data
// directory into a new one that a node can start from. Its stages:
//
//	read    every record of the commit log (data_dir/log/log/*.log) and of
//	        the live engine's files (data_dir/engine[.N]: bitcask data
//	        files, lsm tables and WAL) that passes its checks, each package
//	        reading its own format (commitlog.Salvage, and every registered
//	        engine that is a logkv.Salvager), never writing to the source
//	resolve every key to its newest version: the highest sequence number
//	        wins, as in each engine's recovery; within one batch, the later
//	        operation
//	write   the live keys, sorted, as the records of a new commit log in
//	        the target (data_dir/log/log), under one epoch: a node started
//	        on it replays the log into an empty engine of whatever kind it
//	        is configured with
//
// The result is a new history: its sequence numbers start at 1. Start it
// as a leader (or alone), never as a follower of the damaged node's old
// cluster, and resync the others from it.
//
// A memory engine's state before the log's first record is its checkpoint
// (data_dir/log/checkpoint, replicate's resync chunk format), read too
// (cli_salvage_checkpoint.go). Expiry needs nothing of its own: a key's
// deadline lives in the keyspace's own records and comes along with them.

// salvageMaxBatch bounds the encoded size of one record the salvage
// writes.
const salvageMaxBatch = 1 << 20

// salvageVersion is a key's newest version seen so far.
type salvageVersion struct {
	seq   uint64
	value []byte
	del   bool
}

// salvage is one run of kvnode salvage.
type salvage struct {
	keys    map[string]salvageVersion
	epoch   uint64 // the newest epoch a salvaged log record carries
	kept    map[string]int
	skipped []string
	lost    int64 // bytes skipped, where known
}

// put records a version of key, keeping the newest: a higher seq, or the
// same seq later (a later operation of the same batch).
func (s *salvage) put(seq uint64, key, value []byte, del bool) {
	if v, ok := s.keys[string(key)]; ok && v.seq > seq {
		return
	}
	s.keys[string(key)] = salvageVersion{seq: seq, value: bytes.Clone(value), del: del}
}

func (s *salvage) skip(sk logkv.Skipped) error {
	switch {
	case sk.Len >= 0:
		s.lost += sk.Len
		s.skipped = append(s.skipped, fmt.Sprintf("%s: offset %d, %d bytes: %s", sk.Path, sk.Off, sk.Len, sk.Why))
	default:
		s.skipped = append(s.skipped, fmt.Sprintf("%s: %s", sk.Path, sk.Why))
	}
	return nil
}

func mainSalvage(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvnode salvage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the damaged data `dir` (read only)")
	to := fs.String("to", "", "the new data `dir` to write (must not exist, or be empty)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: kvnode salvage -from DAMAGED_DIR -to NEW_DIR

Copies every record that still checks out from a damaged data directory (commit log
segments and bitcask data files record by record, lsm tables block by block and WAL
segments record by record) into a new data directory a node can start from, and
reports every part it skipped (file, offset, bytes). It never changes DAMAGED_DIR.
Stop the node first. Start the result as a leader or alone: it is a new history.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *from == "" || *to == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if err := runSalvage(*from, *to, stdout); err != nil {
		fmt.Fprintf(stderr, "kvnode salvage: %v\n", err)
		return 1
	}
	return 0
}

// runSalvage salvages data dir from into to, reporting to out.
func runSalvage(from, to string, out io.Writer) error {
	if err := checkSalvageDirs(from, to); err != nil {
		return err
	}
	s := &salvage{keys: map[string]salvageVersion{}, kept: map[string]int{}}
	logDir := filepath.Join(from, logSubdir, "log")
	if _, err := os.Stat(logDir); err == nil {
		err := commitlog.Salvage(vfs.Default, logDir, func(r commitlog.Record) error {
			s.kept["commit log records"]++
			s.epoch = max(s.epoch, r.Epoch)
			b, err := logkv.DecodeBatch(r.Batch)
			if err != nil {
				return err // Salvage checked it
			}
			rd := b.Reader()
			for {
				kind, k, v, ok := rd.Next()
				if !ok {
					return nil
				}
				s.put(r.Seq, k, v, kind == logkv.KindDelete)
			}
		}, s.skip)
		if err != nil {
			return err
		}
	} else if !os.IsNotExist(err) {
		return err
	}
	engDir, note := liveEngineDir(from)
	if note != "" {
		s.skipped = append(s.skipped, note)
	}
	if err := s.engine(engDir); err != nil {
		return err
	}
	if err := s.checkpoints(from, engDir); err != nil {
		return err
	}
	n, recs, err := s.write(to)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "salvaged %s into %s\n", from, to)
	for _, what := range slices.Sorted(maps.Keys(s.kept)) {
		fmt.Fprintf(out, "  read %d %s\n", s.kept[what], what)
	}
	fmt.Fprintf(out, "  wrote %d live keys as %d records of a new commit log (epoch %d)\n", n, recs, s.epoch)
	if len(s.skipped) == 0 {
		fmt.Fprintln(out, "  skipped nothing: every record checked out")
	} else {
		fmt.Fprintf(out, "  skipped %d parts (%d bytes where known):\n", len(s.skipped), s.lost)
		for _, sk := range s.skipped {
			fmt.Fprintf(out, "    %s\n", sk)
		}
	}
	fmt.Fprintf(out, "start a node with -data %s (as a leader, or alone: the result is a new history)\n", to)
	return nil
}

// checkSalvageDirs refuses a missing source, and a target that holds
// anything or lies inside the source.
func checkSalvageDirs(from, to string) error {
	st, err := os.Stat(from)
	if err != nil {
		return fmt.Errorf("-from: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("-from %s is not a directory", from)
	}
	af, err1 := filepath.Abs(from)
	at, err2 := filepath.Abs(to)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if at == af || strings.HasPrefix(at, af+string(filepath.Separator)) {
		return fmt.Errorf("-to %s lies inside -from %s: write the salvage elsewhere, so the damaged directory stays as it is", to, from)
	}
	ents, err := os.ReadDir(to)
	if err == nil && len(ents) > 0 {
		return fmt.Errorf("-to %s is not empty: give a new directory", to)
	}
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("-to: %w", err)
	}
	return nil
}

// liveEngineDir returns the engine directory of the live generation, as
// named by data_dir/log/ENGINE (replicate's format: a record frame whose
// payload starts with the generation, uint64 LE), with a note when that
// file is damaged and the newest generation present is taken instead.
func liveEngineDir(from string) (string, string) {
	path := filepath.Join(from, logSubdir, "ENGINE")
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return filepath.Join(from, engineSubdir), ""
	}
	var gen uint64
	ok := false
	if err == nil {
		_ = record.Scan(b, 20+16*commitlog.MaxHistory, nil, func(off int64, p []byte) error {
			if off == 0 && len(p) >= 8 {
				gen, ok = binary.LittleEndian.Uint64(p), true
			}
			return nil
		}, func(record.Skipped) error { return nil })
	}
	if !ok {
		dirs, _ := filepath.Glob(filepath.Join(from, engineSubdir+".*"))
		for _, d := range dirs {
			if g, err := strconv.ParseUint(strings.TrimPrefix(filepath.Ext(d), "."), 10, 64); err == nil {
				gen = max(gen, g)
			}
		}
		note := fmt.Sprintf("%s: damaged or unreadable; took engine generation %d, the newest present", path, gen)
		if gen == 0 {
			return filepath.Join(from, engineSubdir), note
		}
		return filepath.Join(from, fmt.Sprintf("%s.%d", engineSubdir, gen)), note
	}
	if gen == 0 {
		return filepath.Join(from, engineSubdir), ""
	}
	return filepath.Join(from, fmt.Sprintf("%s.%d", engineSubdir, gen)), ""
}

// engine salvages the engine files in dir, whichever engine wrote them.
func (s *salvage) engine(dir string) error {
	names, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return nil
	}
	// Every engine that can read its files back is asked; each ignores the
	// files that are not its own (logkv.Salvager).
	for _, name := range logkv.Engines() {
		o, err := logkv.NewOptions(name)
		if err != nil {
			return err
		}
		sv, ok := o.(logkv.Salvager)
		if !ok {
			continue
		}
		what := name + " entries"
		err = sv.Salvage(dir, func(e logkv.SalvagedEntry) error {
			s.kept[what]++
			s.put(e.Seq, e.Key, e.Value, e.Delete)
			return nil
		}, s.skip)
		if err != nil {
			return err
		}
	}
	return nil
}

// write writes the live keys into a new commit log in data dir to, and
// returns how many keys and records it wrote.
func (s *salvage) write(to string) (keys, recs int, err error) {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return 0, 0, err
	}
	l, err := commitlog.Open(filepath.Join(to, logSubdir, "log"), nil)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cerr := l.Close(); err == nil {
			err = cerr
		}
	}()
	if s.epoch == 0 {
		// No log record survived to say: a new random epoch, as a node
		// that starts a history of its own picks (replicate.firstEpoch).
		s.epoch = 1 + rand.Uint64N(1<<40)
	}
	if err := l.BeginEpoch(s.epoch); err != nil {
		return 0, 0, err
	}
	names := make([]string, 0, len(s.keys))
	for k, v := range s.keys {
		if !v.del {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var b logkv.Batch
	flush := func() error {
		if b.Empty() {
			return nil
		}
		if _, err := l.Append(b.Repr()); err != nil {
			return err
		}
		recs++
		b.Reset()
		return nil
	}
	for _, k := range names {
		v := s.keys[k].value
		if b.Size()+len(k)+len(v) > salvageMaxBatch {
			if err := flush(); err != nil {
				return 0, 0, err
			}
		}
		b.Set([]byte(k), v)
		if err := b.Err(); err != nil {
			return 0, 0, fmt.Errorf("key %q: %w", k, err)
		}
	}
	if err := flush(); err != nil {
		return 0, 0, err
	}
	if err := l.Sync(l.LastSeq()); err != nil {
		return 0, 0, err
	}
	return len(names), recs, nil
}
