package bench

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

var registerSeekErr sync.Once

var errSeekFailed = errors.New("seek failed")

// errSeekStore is the noop store whose iterators fail after 100 seeks:
// SeekGE returns false from then on and Error reports errSeekFailed, as
// logkv.Iterator's contract has an iterator that met an error do.
type errSeekStore struct{ *noopStore }

func (s errSeekStore) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	it, err := s.noopStore.NewIter(o)
	if err != nil {
		return nil, err
	}
	return &errSeekIter{Iterator: it}, nil
}

type errSeekIter struct {
	logkv.Iterator
	seeks int
}

func (it *errSeekIter) SeekGE(k []byte) bool {
	if it.seeks++; it.seeks > 100 {
		return false
	}
	return it.Iterator.SeekGE(k)
}

func (it *errSeekIter) Error() error {
	if it.seeks > 100 {
		return errSeekFailed
	}
	return nil
}

// seekrandom stops on an iterator's error: it asks Error only after a seek
// that missed (007f066), which is where the contract puts it.
func TestSeekRandomReportsIteratorError(t *testing.T) {
	registerSeekErr.Do(func() {
		RegisterStore("seekerr", func(string) (Store, error) { return errSeekStore{&noopStore{}}, nil })
	})
	cfg := testConfig("seekerr")
	cfg.Benchmarks = []string{"fillseq", "seekrandom"}
	_, err := Run(context.Background(), cfg, io.Discard, io.Discard)
	require.ErrorIs(t, err, errSeekFailed)
}
