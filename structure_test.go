package logkv_test

// TestNoInternalTypesInAPI checks the shape of the public API (issue #19):
// every exported identifier of a package another module may import is
// usable from that module. An exported field, parameter, result, method or
// embedded type that names a type from an internal/ package is not: another
// module can neither name it nor build a value of it.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/importer"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// listedPackage is the part of `go list -json` output the checks read.
type listedPackage struct {
	ImportPath string
	Name       string
	Dir        string
	Export     string
	GoFiles    []string
	Standard   bool
}

// goList runs go list -json with args in the module root and decodes its
// stream of packages.
func goList(t *testing.T, args ...string) []listedPackage {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", stderr.String())
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// isInternal reports whether importPath has an "internal" element, which Go
// lets only the tree rooted at its parent import.
func isInternal(importPath string) bool {
	return slices.Contains(strings.Split(importPath, "/"), "internal")
}

const module = "github.com/logkv/logkv"

func TestNoInternalTypesInAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the export data of every package (seconds with a warm build cache, minutes cold)")
	}
	// -export writes each package's compiled export data (from the build
	// cache when it is warm) and names its file; go/importer reads it
	// back as go/types objects, with no dependency beyond the standard
	// library, and sees exactly what another module would import.
	pkgs := goList(t, "-export", "-deps", "./...")
	exports := map[string]string{}
	for _, p := range pkgs {
		exports[p.ImportPath] = p.Export
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok || file == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(file)
	})
	var problems []string
	checked := 0
	for _, p := range pkgs {
		if p.Standard || !strings.HasPrefix(p.ImportPath, module) || isInternal(p.ImportPath) || p.Name == "main" {
			continue
		}
		pkg, err := imp.Import(p.ImportPath)
		require.NoError(t, err, "import %s", p.ImportPath)
		problems = append(problems, internalRefs(pkg)...)
		checked++
	}
	require.Greater(t, checked, 10, "too few packages checked: is go list's output what this test expects?")
	require.Empty(t, problems, "exported identifiers that name a type of an internal/ package, which no other module can use: make the type public (or alias it from a public package) or unexport the identifier")
}

// internalRefs lists each exported object of pkg, and each exported part of
// one (field, method, parameter, result, embedded type), whose type names a
// type from an internal/ package.
func internalRefs(pkg *types.Package) []string {
	var problems []string
	for _, name := range pkg.Scope().Names() {
		obj := pkg.Scope().Lookup(name)
		if !obj.Exported() {
			continue
		}
		w := apiWalker{pkg: pkg, seen: map[types.Type]bool{}}
		where := pkg.Path() + "." + name
		switch obj := obj.(type) {
		case *types.TypeName:
			if a, ok := obj.Type().(*types.Alias); ok {
				// An exported alias re-exports its target on purpose
				// (pebble's sstable/internal.go): fine, unless it is
				// generic over something internal.
				w.walkArgs(where, a.TypeArgs())
				break
			}
			w.walk(where, obj.Type().Underlying())
			w.walkMethods(where, obj.Type())
		default:
			w.walk(where, obj.Type())
		}
		problems = append(problems, w.problems...)
	}
	return problems
}

// apiWalker walks the types reachable through a package's exported API.
type apiWalker struct {
	pkg      *types.Package
	seen     map[types.Type]bool
	problems []string
}

func (w *apiWalker) walk(where string, t types.Type) {
	if w.seen[t] {
		return
	}
	w.seen[t] = true
	switch t := t.(type) {
	case *types.Alias:
		if obj := t.Obj(); obj.Pkg() != nil && obj.Exported() && !isInternal(obj.Pkg().Path()) {
			return // usable by its public name
		}
		w.walk(where, types.Unalias(t))
	case *types.Named:
		obj := t.Obj()
		if obj.Pkg() != nil && isInternal(obj.Pkg().Path()) {
			w.problems = append(w.problems, fmt.Sprintf("%s names %s.%s", where, obj.Pkg().Path(), obj.Name()))
			return
		}
		w.walkArgs(where, t.TypeArgs())
		// An unexported type of this package reached through its API
		// (a function returning one, say) exposes its exported fields and
		// methods; a public type of another package is checked there.
		if obj.Pkg() == w.pkg && !obj.Exported() {
			w.walk(where+"("+obj.Name()+")", t.Underlying())
			w.walkMethods(where+"("+obj.Name()+")", t)
		}
	case *types.Pointer:
		w.walk(where, t.Elem())
	case *types.Slice:
		w.walk(where, t.Elem())
	case *types.Array:
		w.walk(where, t.Elem())
	case *types.Chan:
		w.walk(where, t.Elem())
	case *types.Map:
		w.walk(where, t.Key())
		w.walk(where, t.Elem())
	case *types.Signature:
		for i := range t.Params().Len() {
			w.walk(where+" param "+strconv.Itoa(i), t.Params().At(i).Type())
		}
		for i := range t.Results().Len() {
			w.walk(where+" result "+strconv.Itoa(i), t.Results().At(i).Type())
		}
	case *types.Struct:
		for i := range t.NumFields() {
			f := t.Field(i)
			// An embedded field of an unexported type is not itself
			// usable, but its promoted fields and methods are: walk it.
			if f.Exported() || f.Embedded() {
				w.walk(where+"."+f.Name(), f.Type())
			}
		}
	case *types.Interface:
		for i := range t.NumMethods() {
			if m := t.Method(i); m.Exported() {
				w.walk(where+"."+m.Name(), m.Type())
			}
		}
		for i := range t.NumEmbeddeds() {
			w.walk(where+" embeds", t.EmbeddedType(i))
		}
	case *types.Union:
		for i := range t.Len() {
			w.walk(where, t.Term(i).Type())
		}
	case *types.TypeParam:
		w.walk(where, t.Constraint())
	}
}

func (w *apiWalker) walkArgs(where string, args *types.TypeList) {
	for i := range args.Len() {
		w.walk(where+" type argument", args.At(i))
	}
}

// walkMethods walks the exported methods of t and *t, promoted ones
// included.
func (w *apiWalker) walkMethods(where string, t types.Type) {
	for _, ms := range []*types.MethodSet{types.NewMethodSet(t), types.NewMethodSet(types.NewPointer(t))} {
		for i := range ms.Len() {
			m := ms.At(i).Obj()
			if m.Exported() {
				w.walk(where+"."+m.Name(), m.Type())
			}
		}
	}
}

// TestInternalRefsCatches feeds internalRefs a package that exposes an
// internal type in each way the walker must see, so that the check above
// cannot pass by seeing nothing.
func TestInternalRefsCatches(t *testing.T) {
	internal := types.NewPackage("example.com/m/internal/priv", "priv")
	hidden := types.NewNamed(types.NewTypeName(token.NoPos, internal, "Hidden", nil), types.Typ[types.Int], nil)
	pkg := types.NewPackage("example.com/m/pub", "pub")
	scope := pkg.Scope()
	field := func(name string, typ types.Type, embedded bool) *types.Var {
		return types.NewField(token.NoPos, pkg, name, typ, embedded)
	}
	named := func(name string, under types.Type) *types.Named {
		n := types.NewNamed(types.NewTypeName(token.NoPos, pkg, name, nil), under, nil)
		scope.Insert(n.Obj())
		return n
	}
	param := func(typ types.Type) *types.Tuple { return types.NewTuple(types.NewParam(token.NoPos, pkg, "", typ)) }

	named("Field", types.NewStruct([]*types.Var{field("F", types.NewSlice(hidden), false)}, nil))
	named("Embeds", types.NewStruct([]*types.Var{field("Hidden", types.NewPointer(hidden), true)}, nil))
	named("Private", types.NewStruct([]*types.Var{field("f", hidden, false)}, nil)) // fine: unexported field
	scope.Insert(types.NewFunc(token.NoPos, pkg, "Param", types.NewSignatureType(nil, nil, nil, param(hidden), nil, false)))
	scope.Insert(types.NewFunc(token.NoPos, pkg, "Result", types.NewSignatureType(nil, nil, nil, nil, param(types.NewMap(types.Typ[types.String], hidden)), false)))
	m := named("Method", types.NewStruct(nil, nil))
	m.AddMethod(types.NewFunc(token.NoPos, pkg, "Get", types.NewSignatureType(types.NewParam(token.NoPos, pkg, "m", types.NewPointer(m)), nil, nil, nil, param(hidden), false)))
	unexported := types.NewNamed(types.NewTypeName(token.NoPos, pkg, "impl", nil), types.NewStruct([]*types.Var{field("H", hidden, false)}, nil), nil)
	scope.Insert(types.NewFunc(token.NoPos, pkg, "New", types.NewSignatureType(nil, nil, nil, nil, param(unexported), false)))
	alias := types.NewAlias(types.NewTypeName(token.NoPos, pkg, "Public", nil), hidden)
	scope.Insert(alias.Obj())
	named("ViaAlias", types.NewStruct([]*types.Var{field("A", alias, false)}, nil)) // fine: the alias is public

	got := internalRefs(pkg)
	for _, want := range []string{"pub.Field.F", "pub.Embeds.Hidden", "pub.Param param 0", "pub.Result result 0", "pub.Method.Get result 0", "pub.New result 0(impl).H"} {
		require.True(t, slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, want+" names example.com/m/internal/priv.Hidden") }), "%s not caught in %q", want, got)
	}
	require.Len(t, got, 6, "false positives in %q", got)
}
