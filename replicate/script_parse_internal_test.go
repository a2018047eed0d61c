package replicate

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestScriptParse: the script format reads what -rewrite writes, keeps
// comments, and refuses a command without its ---- line.
func TestScriptParse(t *testing.T) {
	src := "# first\n# second\nleader n1 epoch=3\n----\nn1 leads\n\n\nwrite n1 k=v=w -d\n----\nline one\nline two\n\nstop n1\n----\n"
	cmds, err := parseScript("x", src)
	require.NoError(t, err)
	require.Len(t, cmds, 3)
	require.Equal(t, "# first\n# second\n", cmds[0].comments)
	require.Equal(t, 3, cmds[0].line)
	e, ok := cmds[0].arg("epoch")
	require.True(t, ok)
	require.Equal(t, "3", e)
	require.Equal(t, []arg{{key: "n1"}, {key: "k", val: "v=w", hasVal: true}, {key: "-d"}}, cmds[1].args)
	require.Equal(t, "line one\nline two", cmds[1].want)
	require.Empty(t, cmds[2].want)

	again, err := parseScript("x", formatScript(cmds))
	require.NoError(t, err)
	for i := range cmds {
		again[i].line = cmds[i].line
	}
	require.Equal(t, cmds, again)

	for _, bad := range []string{"leader n1\n", "leader n1\nn1 leads\n", "----\nout\n"} {
		_, err := parseScript("x", bad)
		require.Error(t, err, "%q", bad)
	}
}
