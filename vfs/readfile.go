package vfs

import (
	"fmt"
	"io"
)

// ReadFile reads the whole file at path, as os.ReadFile does: the salvage
// readers of the commit log, bitcask and lsm read each damaged file whole.
func ReadFile(fs FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data := make([]byte, st.Size())
	if n, err := f.ReadAt(data, 0); n < len(data) {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}
