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

// A salted frame checks out only with its salt, so a frame forged inside
// a value, without the salt, is not taken for a record even where damage
// hides the real boundary.
func TestSaltedFrames(t *testing.T) {
	const salt = 0x9e3779b97f4a7c15
	frame := AppendSalted(nil, []byte("payload"), salt)
	require.Equal(t, Append(nil, []byte("payload"))[4:], frame[4:], "the layout is Append's")
	require.NotEqual(t, Append(nil, []byte("payload"))[:4], frame[:4])
	require.Equal(t, Append(nil, []byte("x")), AppendSalted(nil, []byte("x"), 0), "salt 0 is no salt")

	var kept []string
	require.NoError(t, ScanSalted(frame, 64, salt, nil,
		func(_ int64, p []byte) error { kept = append(kept, string(p)); return nil },
		func(Skipped) error { return nil }))
	require.Equal(t, []string{"payload"}, kept)
	_, skipped := scanAll(t, frame, nil)
	require.Len(t, skipped, 1, "unsalted, the frame fails its checksum")

	forged := string(Append(nil, []byte("FORGED")))
	var data []byte
	for _, p := range []string{"head", "pad" + forged + "pad", "tail"} {
		data = AppendSalted(data, []byte(p), salt)
	}
	data[Size(len("head"))+1] ^= 1
	kept = nil
	require.NoError(t, ScanSalted(data, 1<<10, salt, nil,
		func(_ int64, p []byte) error { kept = append(kept, string(p)); return nil },
		func(Skipped) error { return nil }))
	require.Equal(t, []string{"head", "tail"}, kept, "the forgery lacks the salt")
}
