package node

import (
	"bytes"
	"context"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"*", "anything", true}, {"", "", true}, {"", "a", false},
		{"user:*", "user:1", true}, {"user:*", "use", false}, {"user:*", "xuser:1", false},
		{"h?llo", "hello", true}, {"h?llo", "hllo", false},
		{"h[ae]llo", "hallo", true}, {"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true}, {"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hbllo", true}, {"h[a-b]llo", "hcllo", false}, {"h[b-a]llo", "hallo", true},
		{`h\*llo`, "h*llo", true}, {`h\*llo`, "hello", false},
		{"a*b*c", "aXXbYYc", true}, {"a*b*c", "aXXbYY", false}, {"*a*a*a*b", strings.Repeat("a", 40), false},
		{"**x", "abx", true}, {"a[", "a", false}, {"[]", "", false},
		// Checked against redis-server 7.0.15's KEYS: a range may end in
		// ']' ([a-] is ']'..'a'), an empty class matches nothing, an
		// unclosed one runs to the end.
		{"[a-]", "a", true}, {"[a-]", "]", true}, {"[a-]", "-", false}, {"[a-]", "b", false},
		{"[]a]", "a", false}, {"[a-c", "b", true}, {"c[", "c", false}, {`[\]]`, "]", true},
		{"[^a]", "-", true}, {"[c-a]", "b", true},
	}
	for _, c := range cases {
		require.Equal(t, c.want, globMatch([]byte(c.p), []byte(c.s)), "%q ~ %q", c.p, c.s)
	}
	require.Equal(t, "user:", string(globPrefix([]byte("user:*"))))
	require.Equal(t, "a*b", string(globPrefix([]byte(`a\*b?`))))
	require.Empty(t, globPrefix([]byte("*x")))
}

// FuzzGlob checks globMatch against path.Match on patterns both understand
// (no '/', no escapes or classes, where their semantics agree), and that the
// literal prefix of a pattern prefixes everything it matches.
func FuzzGlob(f *testing.F) {
	f.Add("a*b?c", "aXXbYc")
	f.Add("[a-c]*", "b")
	f.Fuzz(func(t *testing.T, p, s string) {
		got := globMatch([]byte(p), []byte(s))
		if got && !bytes.HasPrefix([]byte(s), globPrefix([]byte(p))) {
			t.Fatalf("%q matches %q but lacks its prefix %q", p, s, globPrefix([]byte(p)))
		}
		if strings.ContainsAny(p+s, `/\[]`) || !isASCII(p+s) {
			return
		}
		want, err := path.Match(p, s)
		if err == nil && want != got {
			t.Fatalf("globMatch(%q, %q) = %v, path.Match says %v", p, s, got, want)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// A pattern's cost is bounded: one longer than maxPatternLen is refused
// with an error that says what to do, before any key is matched.
func TestPatternLengthCap(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n, nil)
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	long := strings.Repeat("*a", maxPatternLen)
	for _, cmd := range [][]any{{"scan", "0", "match", long}, {"keys", long}} {
		require.ErrorContains(t, c.Do(ctx, cmd...).Err(), "MATCH pattern longer than 1024 bytes", cmd[0])
	}
	require.Equal(t, []string{"k"}, c.Keys(ctx, "[j-l]").Val())
}
