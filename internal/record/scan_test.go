package record

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// scanAll runs Scan and returns the payloads kept and the stretches skipped.
func scanAll(t *testing.T, data []byte, accept func(int64, []byte) bool) (kept []string, skipped []Skipped) {
	require.NoError(t, Scan(data, 1<<10, accept,
		func(_ int64, p []byte) error { kept = append(kept, string(p)); return nil },
		func(s Skipped) error { skipped = append(skipped, s); return nil }))
	return kept, skipped
}

// Scan keeps every frame that checks out around a damaged one, and reports
// exactly the damaged frame's bytes as skipped.
func TestScanSkipsOnlyTheDamagedFrame(t *testing.T) {
	payloads := []string{"alpha", "bravo-bravo", "charlie", "delta", "echo-echo-echo"}
	clean := build(payloads...)
	kept, skipped := scanAll(t, clean, nil)
	require.Equal(t, payloads, kept)
	require.Empty(t, skipped)

	start := Size(len("alpha")) + Size(len("bravo-bravo"))
	for i := range Size(len("charlie")) {
		data := append([]byte(nil), clean...)
		data[start+i] ^= 0x40
		kept, skipped := scanAll(t, data, nil)
		require.Equal(t, []string{"alpha", "bravo-bravo", "delta", "echo-echo-echo"}, kept, "byte %d of the frame damaged", i)
		require.Equal(t, []Skipped{{Off: int64(start), Len: int64(Size(len("charlie"))), Why: skipped[0].Why}}, skipped)
	}

	// A torn tail: the end is skipped.
	kept, skipped = scanAll(t, clean[:len(clean)-3], nil)
	require.Equal(t, payloads[:4], kept)
	require.Len(t, skipped, 1)
	require.Equal(t, int64(len(clean)-Size(len("echo-echo-echo"))), skipped[0].Off)
}

// A value that holds bytes shaped like a frame is taken for one when the
// damage before it hides the real boundary, unless accept refuses it.
func TestScanAcceptRefusesForgedFrames(t *testing.T) {
	forged := string(Append(nil, []byte("FORGED")))
	data := build("head", "pad"+forged+"pad", "tail")
	data[Size(len("head"))+1] ^= 1 // damage the length of the frame holding the forgery
	kept, _ := scanAll(t, data, nil)
	require.Contains(t, kept, "FORGED", "without accept, the forgery passes its checksum")
	kept, skipped := scanAll(t, data, func(_ int64, p []byte) bool { return !strings.HasPrefix(string(p), "FORGED") })
	require.Equal(t, []string{"head", "tail"}, kept)
	require.Len(t, skipped, 1)
}
