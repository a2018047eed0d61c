package sstable

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// goldenHashes returns n fixed 64-bit hashes (splitmix64 from seed 1), so
// that the filter's known answers do not depend on HashKey, which
// TestHashKeyKnownAnswers pins on its own.
func goldenHashes(n int) []uint64 {
	hs := make([]uint64, n)
	x := uint64(1)
	for i := range hs {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		hs[i] = z ^ z>>31
	}
	return hs
}

// TestFilterKnownAnswers pins the filter bytes of both table format
// versions: a filter is read by a later process, maybe a later binary, so
// the bytes written for a given set of hashes are part of the format. A
// change of the probe sequence (filterProbeMul, the block choice, the
// double hashing of version 1), of the sizing or of k changes a digest
// here; tables already on disk would otherwise give false negatives. A
// deliberate change is a new format version, with its own answers added.
func TestFilterKnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		version    uint32
		bitsPerKey int
		n          int
		sha256     string
	}{
		{2, 10, 1000, "3e795713e079d93926d1b7add30839425baa6870ea4b995d877f631d10440224"},
		{2, 10, 3, "1318e0c5c3f115a5f1c0220f4ad1c13fedf584d980db0cd139381cd3216694c4"},
		{2, 5, 1000, "3a2a31797c7a5ce4a7f60f8de7efdc646dfb1daa4ad1f47ce1ec6b66a5ecfca2"},
		{1, 10, 1000, "6a5bb73005b6ac628bee98407c680bedbd7287e349692a99aac2df2cc7e0dabb"},
		{1, 10, 3, "a06561d346d3567fb1f235218b4f0d278bb7bd66269e520301d5708d447f2c1d"},
	} {
		t.Run(fmt.Sprintf("v%d/%dbits/%dkeys", tc.version, tc.bitsPerKey, tc.n), func(t *testing.T) {
			f := appendFilter([]byte("prefix"), goldenHashes(tc.n), tc.bitsPerKey, tc.version)
			require.Equal(t, "prefix", string(f[:6]), "appendFilter appends")
			sum := sha256.Sum256(f[6:])
			require.Equal(t, tc.sha256, hex.EncodeToString(sum[:]), "%d bytes", len(f)-6)
		})
	}
}

// TestHashKeyKnownAnswers pins HashKey, the filter's hash, over keys of
// each length class its loop has (empty, under 8 bytes, exactly 8, 8 and a
// tail, several words): TestHashStable's three keys and more.
func TestHashKeyKnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		key  string
		hash uint64
	}{
		{"", 0xb9043f6e942bb78a},
		{"k", 0xecca34194a742e43},
		{"key00001", 0xd158e586a38580ca},
		{"key000001", 0xefd5e9c5d849b326},
		{"user:0000000042", 0xf2bb049c2e053747},
		{"0123456789abcdefX", 0xa098dad117f5a17a},
	} {
		if got := HashKey([]byte(tc.key)); got != tc.hash {
			t.Errorf("HashKey(%q) = %#x, want %#x", tc.key, got, tc.hash)
		}
	}
}
