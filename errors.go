package logkv

import (
	"errors"
	"fmt"
)

// Limits on what an engine accepts. They are part of the contract: every
// engine enforces them, and every decoder checks lengths against them before
// allocating.
const (
	// MaxKeySize is the largest key, in bytes (64 KiB).
	MaxKeySize = 64 << 10
	// MaxValueSize is the largest value, in bytes (32 MiB).
	MaxValueSize = 32 << 20
	// MaxBatchSize is the largest encoded batch, in bytes (128 MiB).
	MaxBatchSize = 128 << 20
)

// Errors returned by engines. Check them with errors.Is: engines wrap them
// with detail (the file and offset of a corruption, the sizes of an
// over-limit write).
var (
	// ErrNotFound: the key is absent.
	ErrNotFound = errors.New("logkv: not found")
	// ErrClosed: the engine, iterator or snapshot is closed.
	ErrClosed = errors.New("logkv: closed")
	// ErrCorrupt: stored data failed a check (checksum, length, magic). The
	// wrapping error names the file and offset.
	ErrCorrupt = errors.New("logkv: corrupt data")
	// ErrFormat: stored data carries a format version this build cannot
	// read (written by a newer one, most likely). The wrapping error names
	// the file, the offset and the versions; errors.Is(err, ErrCorrupt)
	// holds too, for callers that refuse both alike. Run the version that
	// wrote the data, or resync from a node that has it in a readable
	// format.
	ErrFormat = errors.New("logkv: unsupported format version")
	// ErrEmptyKey: keys must be at least one byte long.
	ErrEmptyKey = errors.New("logkv: empty key")
	// ErrKeyTooLarge: the key is longer than MaxKeySize.
	ErrKeyTooLarge = errors.New("logkv: key too large")
	// ErrValueTooLarge: the value is longer than MaxValueSize.
	ErrValueTooLarge = errors.New("logkv: value too large")
	// ErrBatchTooLarge: the encoded batch would exceed MaxBatchSize.
	ErrBatchTooLarge = errors.New("logkv: batch too large")
	// ErrSeqNotIncreasing: a caller-given sequence number is not greater than
	// the engine's LastSeq.
	ErrSeqNotIncreasing = errors.New("logkv: sequence number not increasing")
)

// CorruptError returns an error wrapping ErrCorrupt that names the file and
// byte offset where the check failed, and what failed.
func CorruptError(file string, offset int64, format string, args ...any) error {
	return &corruptError{file: file, offset: offset, what: fmt.Sprintf(format, args...)}
}

type corruptError struct {
	file   string
	offset int64
	what   string
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("logkv: corrupt data in %s at offset %d: %s", e.file, e.offset, e.what)
}

func (e *corruptError) Unwrap() error { return ErrCorrupt }

// FormatError returns an error wrapping ErrFormat (and ErrCorrupt) that
// names the file and byte offset of an unknown format version, and what it
// is.
func FormatError(file string, offset int64, format string, args ...any) error {
	return &formatError{corruptError{file: file, offset: offset, what: fmt.Sprintf(format, args...)}}
}

type formatError struct{ corruptError }

func (e *formatError) Error() string {
	return fmt.Sprintf("logkv: unsupported format version in %s at offset %d: %s", e.file, e.offset, e.what)
}

func (e *formatError) Unwrap() []error { return []error{ErrFormat, ErrCorrupt} }

// NewFormatSentinel returns a package's own ErrFormat, with text msg (a
// package prefix and what it cannot read: "bitcask: unsupported data file
// format"): errors.Is(err, ErrFormat) and errors.Is(err, ErrCorrupt) hold
// for it and for any error wrapping it, so a caller that checks logkv's
// sentinels needs to know no engine's.
func NewFormatSentinel(msg string) error { return &formatSentinel{msg} }

type formatSentinel struct{ msg string }

func (e *formatSentinel) Error() string   { return e.msg }
func (e *formatSentinel) Unwrap() []error { return []error{ErrFormat, ErrCorrupt} }

// CheckKey returns an error if key is not a valid key.
func CheckKey(key []byte) error {
	switch {
	case len(key) == 0:
		return ErrEmptyKey
	case len(key) > MaxKeySize:
		return fmt.Errorf("%w: %d bytes, the limit is %d (MaxKeySize); store large data in the value", ErrKeyTooLarge, len(key), MaxKeySize)
	}
	return nil
}

// CheckValue returns an error if value is longer than MaxValueSize.
func CheckValue(value []byte) error {
	if len(value) > MaxValueSize {
		return fmt.Errorf("%w: %d bytes, the limit is %d (MaxValueSize); split it over several keys", ErrValueTooLarge, len(value), MaxValueSize)
	}
	return nil
}

func seqError(seq, last uint64) error {
	return fmt.Errorf("%w: %d is not greater than the last applied %d", ErrSeqNotIncreasing, seq, last)
}
