package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts
// it when the test ends. Mounting needs root (CAP_SYS_ADMIN): elsewhere the
// test is skipped, and replicate's TestDiskFullRecoversWithoutRestart,
// which fills a simulated disk, still runs.
func mountTmpfs(t *testing.T, size int) string {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("mounting a tmpfs needs root: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes path until the filesystem holding it is full.
func fill(t *testing.T, path string) {
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			return
		}
	}
}

// Finding 6 of issue 16, on a real filesystem: a node whose disk fills
// reports not ready and refuses writes, carries on by itself once space
// is freed, and never shows a write it refused, before or after a restart.
func TestDiskFullOnTmpfs(t *testing.T) {
	for _, tc := range []struct{ engine, fsync string }{
		{"memory", "always"}, {"lsm", "always"}, {"bitcask", "always"}, {"memory", "everysec"},
	} {
		t.Run(tc.engine+"/"+tc.fsync, func(t *testing.T) {
			mnt := mountTmpfs(t, 8<<20)
			data := filepath.Join(mnt, "data")
			cfg := func(c *Config) { c.Engine, c.DataDir, c.AppendFsync = tc.engine, data, tc.fsync }
			n := newNode(t, cfg)
			served := make(chan error, 1)
			go func() { served <- n.Serve() }()
			ctx := context.Background()
			c := dial(t, n, nil)
			for i := range 20 {
				require.NoError(t, c.Set(ctx, fmt.Sprint("k", i), "v", 0).Err())
			}
			readyz := func() int {
				resp, err := http.Get("http://" + n.AdminAddr() + "/readyz")
				require.NoError(t, err)
				resp.Body.Close()
				return resp.StatusCode
			}
			require.Equal(t, http.StatusOK, readyz())

			filler := filepath.Join(mnt, "filler")
			fill(t, filler)
			// Writes may still fit in the log's last page; the first that
			// does not was handed a seq before its write failed, and waits
			// for space.
			stop := make(chan struct{})
			done := make(chan int, 1)
			var limboErr error
			go func() {
				wc := dial(t, n, nil)
				i := 0
				for ; ; i++ {
					if limboErr = wc.Set(ctx, fmt.Sprint("pre", i), "v", 0).Err(); limboErr != nil {
						break
					}
					select {
					case <-stop:
						done <- i + 1
						return
					default:
					}
				}
				done <- i
			}()
			require.Eventually(t, func() bool { return readyz() == http.StatusServiceUnavailable },
				10*time.Second, 5*time.Millisecond, "/readyz says not ready while writes fail")
			close(stop)
			info, err := c.Info(ctx, "persistence").Result()
			require.NoError(t, err)
			require.Contains(t, info, "aof_last_write_status:err")
			require.Contains(t, info, "no space left on device")
			for i := range 5 {
				err := c.Set(ctx, fmt.Sprint("lost", i), "v", 0).Err()
				require.ErrorContains(t, err, "no space left on device")
				require.ErrorIs(t, c.Get(ctx, fmt.Sprint("lost", i)).Err(), redis.Nil, "a refused write is not readable")
			}

			require.NoError(t, os.Remove(filler))
			var pre int
			select {
			case pre = <-done:
				if tc.fsync == "everysec" && limboErr != nil {
					// The event loop does not wait for space: the pipeline
					// whose write failed loses its connection, with no
					// reply (its write may land once space is back).
					var reply redis.Error
					require.False(t, errors.As(limboErr, &reply), "no error reply: %v", limboErr)
				} else {
					require.NoError(t, limboErr, "the waiting write succeeds once space is back")
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the waiting write never finished after space came back")
			}
			require.Eventually(t, func() bool { return readyz() == http.StatusOK },
				10*time.Second, 5*time.Millisecond, "ready again without a restart")
			require.NoError(t, c.Set(ctx, "after", "v", 0).Err())
			info, err = c.Info(ctx, "persistence").Result()
			require.NoError(t, err)
			require.Contains(t, info, "aof_last_write_status:ok")

			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoError(t, n.Shutdown(sctx))
			require.NoError(t, <-served)

			n2 := startNode(t, cfg)
			c2 := dial(t, n2, nil)
			want := []string{"k0", "k19", "after"}
			if pre > 0 {
				want = append(want, fmt.Sprint("pre", pre-1)) // the last acknowledged
			}
			for _, k := range want {
				require.NoError(t, c2.Get(ctx, k).Err(), "key %s after a restart", k)
			}
			keys, err := c2.Keys(ctx, "lost*").Result()
			require.NoError(t, err)
			require.Empty(t, keys, "refused writes are not there after a restart")
		})
	}
}
