package logkv_test

// TestNoEngineNamesOutsideEngines checks that code outside the engines asks
// an engine what it can do (the capability interfaces of capability.go),
// never which one it is (issue #19). A comparison with, a switch on or a
// map lookup by an engine's name is a capability that is missing.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/logkv/logkv"
	_ "github.com/logkv/logkv/bitcask"
	_ "github.com/logkv/logkv/lsm"
	_ "github.com/logkv/logkv/memory"
	"github.com/stretchr/testify/require"
)

// engineNameDirs are the trees whose code must not ask which engine it
// holds: the server, replication, and the tools' logic.
var engineNameDirs = []string{"node", "replicate", "cmd"}

func TestNoEngineNamesOutsideEngines(t *testing.T) {
	names := logkv.Engines()
	require.Subset(t, names, []string{"bitcask", "lsm", "memory"})
	var problems []string
	for _, root := range engineNameDirs {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			problems = append(problems, engineNameUses(path, src, names)...)
			return nil
		})
		require.NoError(t, err)
	}
	require.Empty(t, problems, "code outside the engines that asks which engine it holds: ask a capability instead (capability.go)")
}

// engineNameUses lists where src compares a string with one of names (== or
// !=), switches on one, or looks one up in a map or slice index: the ways
// code picks behaviour by an engine's name. Naming an engine elsewhere (a
// flag's default, a config default, a help text) is fine.
func engineNameUses(path string, src []byte, names []string) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		return []string{err.Error()}
	}
	isName := func(e ast.Expr) bool {
		lit, ok := ast.Unparen(e).(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return false
		}
		s, err := strconv.Unquote(lit.Value)
		return err == nil && slices.Contains(names, s)
	}
	var problems []string
	report := func(n ast.Node, how string) {
		problems = append(problems, fmt.Sprintf("%s: %s an engine name", fset.Position(n.Pos()), how))
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BinaryExpr:
			if (n.Op == token.EQL || n.Op == token.NEQ) && (isName(n.X) || isName(n.Y)) {
				report(n, "compares with")
			}
		case *ast.CaseClause:
			if slices.ContainsFunc(n.List, isName) {
				report(n, "switches on")
			}
		case *ast.IndexExpr:
			if isName(n.Index) {
				report(n, "indexes by")
			}
		case *ast.CallExpr:
			// strings.EqualFold(x, "lsm") and the like.
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "EqualFold" && slices.ContainsFunc(n.Args, isName) {
				report(n, "compares with")
			}
		}
		return true
	})
	return problems
}

func TestEngineNameUsesCatches(t *testing.T) {
	src := `package p
func f(e string, m map[string]int) {
	if e == "lsm" {}
	if "bitcask" != e {}
	switch e { case "a", "memory": }
	_ = m["lsm"]
	_ = strings.EqualFold(e, "memory")
	var c struct{ Engine string }
	c.Engine = "lsm" // a default: fine
	println("memory") // fine
	if e == "lsmx" {} // not an engine
}`
	got := engineNameUses("p.go", []byte(src), []string{"lsm", "bitcask", "memory"})
	require.Len(t, got, 5, "%q", got)
	for i, line := range []int{3, 4, 5, 6, 7} {
		require.Contains(t, got[i], fmt.Sprintf("p.go:%d:", line))
	}
}
