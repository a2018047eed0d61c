package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// IdentitySource hands out the identity a node presents, and the CAs it
// trusts, for each new handshake. *Identity is a fixed one; *Reloader
// follows its files.
type IdentitySource interface {
	// Current returns the identity to use now; nil means none.
	Current() *Identity
}

// Reloader is an IdentitySource read from PEM files that follows them:
// Current checks the files at most once per CheckEvery and, when one changed
// (modification time, size or inode), loads them again, and Reload does so
// at once (kvnode calls it on SIGHUP). New handshakes use the new
// certificate and CAs; established connections keep theirs.
//
// A load that fails (a file missing or half-written, a key that does not
// match its certificate) or whose certificate names another node keeps the
// identity in use, and is logged; the next change is tried again. The node
// name cannot change without a restart: it is the node's replication id.
type Reloader struct {
	certFile, keyFile, caFile string
	log                       *slog.Logger
	every                     time.Duration

	cur atomic.Pointer[Identity]

	mu      sync.Mutex // one load at a time
	stamps  [3]stamp   // of the files cur was loaded from
	checked time.Time  // when the files were last looked at
}

// ReloadCheckEvery is how often Reloader.Current looks at its files.
const ReloadCheckEvery = time.Second

type stamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

// NewReloader loads the identity in certFile, keyFile and caFile (as
// LoadIdentity does) and returns a Reloader that follows them. It logs each
// reload, and each failed one, to logger (nil discards).
func NewReloader(certFile, keyFile, caFile string, logger *slog.Logger) (*Reloader, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, caFile: caFile, log: logger, every: ReloadCheckEvery}
	st, err := r.stat()
	if err != nil {
		return nil, err
	}
	id, err := LoadIdentity(certFile, keyFile, caFile)
	if err != nil {
		return nil, err
	}
	if err := CheckNodeName(id.Name()); err != nil {
		return nil, fmt.Errorf("transport: %s: the certificate's common name is the node's replication id: %w (issue one with kvnode certs -node NAME)", certFile, err)
	}
	r.cur.Store(id)
	r.stamps, r.checked = st, time.Now()
	return r, nil
}

// Current returns the identity in use, first loading the files again if
// CheckEvery passed since they were last looked at and one of them changed.
func (r *Reloader) Current() *Identity {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) >= r.every {
		r.checked = time.Now()
		if st, err := r.stat(); err == nil && st != r.stamps {
			if err := r.load(st); err != nil {
				r.log.Warn("replication certificate changed but could not be loaded; keeping the one in use", "cert", r.certFile, "err", err)
				// Not tried again until a file changes once more: a
				// half-written renewal changes them again when it ends.
				r.stamps = st
			}
		}
	}
	return r.cur.Load()
}

// Reload loads the files now. On error the identity in use is kept.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checked = time.Now()
	st, err := r.stat()
	if err == nil {
		err = r.load(st)
	}
	if err != nil {
		r.log.Warn("replication certificate reload failed; keeping the one in use", "cert", r.certFile, "err", err)
	}
	return err
}

// load reads the files, whose stamps are st, and makes them current unless
// they fail to load or name another node. r.mu is held.
func (r *Reloader) load(st [3]stamp) error {
	id, err := LoadIdentity(r.certFile, r.keyFile, r.caFile)
	if err != nil {
		return err
	}
	if old, name := r.cur.Load().Name(), id.Name(); name != old {
		return fmt.Errorf("transport: %s now names node %q, not %q: a node keeps its name (its replication id) until restarted", r.certFile, name, old)
	}
	r.cur.Store(id)
	r.stamps = st
	r.log.Info("replication certificate reloaded", "cert", r.certFile, "node", id.Name(), "expires", id.notAfter())
	return nil
}

func (r *Reloader) stat() ([3]stamp, error) {
	var st [3]stamp
	var errs []error
	for i, f := range []string{r.certFile, r.keyFile, r.caFile} {
		fi, err := os.Stat(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st[i] = stamp{mod: fi.ModTime(), size: fi.Size(), ino: inode(fi)}
	}
	return st, errors.Join(errs...)
}
