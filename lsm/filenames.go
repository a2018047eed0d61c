package lsm

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// File names in a DB directory. Every file but CURRENT, LOCK and temporary
// files carries a number from one counter (the manifest's next file number),
// so a number names one file for the DB's whole life.
//
//	NNNNNN.log       a WAL segment
//	NNNNNN.sst       an SSTable
//	MANIFEST-NNNNNN  a manifest log
//	CURRENT          the name of the live manifest, followed by "\n"
//	LOCK             the directory lock
//	*.tmp            a file being written for a rename (deleted at Open)
type fileKind int

const (
	kindUnknown fileKind = iota
	kindLog
	kindTable
	kindManifest
	kindTemp
)

func tableName(num uint64) string    { return fmt.Sprintf("%06d.sst", num) }
func logName(num uint64) string      { return fmt.Sprintf("%06d.log", num) }
func manifestName(num uint64) string { return fmt.Sprintf("MANIFEST-%06d", num) }

const (
	currentName = "CURRENT"
	lockName    = "LOCK"
)

func joinPath(dir, name string) string { return filepath.Join(dir, name) }

// parseName returns the kind and number of a file name in a DB directory.
func parseName(name string) (fileKind, uint64) {
	switch {
	case strings.HasSuffix(name, ".tmp"):
		return kindTemp, 0
	case strings.HasPrefix(name, "MANIFEST-"):
		if n, err := strconv.ParseUint(name[len("MANIFEST-"):], 10, 64); err == nil {
			return kindManifest, n
		}
	case strings.HasSuffix(name, ".log"):
		if n, err := strconv.ParseUint(strings.TrimSuffix(name, ".log"), 10, 64); err == nil {
			return kindLog, n
		}
	case strings.HasSuffix(name, ".sst"):
		if n, err := strconv.ParseUint(strings.TrimSuffix(name, ".sst"), 10, 64); err == nil {
			return kindTable, n
		}
	}
	return kindUnknown, 0
}
