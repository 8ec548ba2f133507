//go:build ignore

// exported-names prints how many exported names each package declares,
// the measure issue 12 item 3 reports ("a public surface sized to its
// users"). Run it from the repository's root:
//
//	go run scripts/exported-names.go protocol server server/store hsm
//
// (no arguments: every package of the module). It reads the non-test .go
// files of each folder with go/parser, so it needs no build. A name
// counts once if it is an exported package-level constant, variable,
// type or function, or an exported method of a type the package declares
// (only exported types' methods are reachable, but all are counted, as
// "go doc -all -u" would list them). Struct fields are not counted. The
// columns are: package, total, package-level names, methods.
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	dirs := os.Args[1:]
	if len(dirs) == 0 {
		_ = filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				n := d.Name()
				if p != "." && (strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_") || n == "testdata") {
					return filepath.SkipDir
				}
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.Strings(dirs)
	fmt.Printf("%-28s %6s %6s %6s\n", "package", "total", "decls", "methods")
	var sum int
	for _, dir := range dirs {
		decls, methods, ok := count(dir)
		if !ok {
			continue
		}
		sum += decls + methods
		fmt.Printf("%-28s %6d %6d %6d\n", filepath.ToSlash(dir), decls+methods, decls, methods)
	}
	if len(dirs) > 1 {
		fmt.Printf("%-28s %6d\n", "(all listed)", sum)
	}
}

func count(dir string) (decls, methods int, ok bool) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.SkipObjectResolution)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for name, pkg := range pkgs {
		if name == "main" || strings.HasSuffix(name, "_test") {
			continue
		}
		ok = true
		for _, f := range pkg.Files {
			if hasIgnoreTag(f) {
				continue
			}
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if !d.Name.IsExported() {
						continue
					}
					if d.Recv == nil {
						decls++
					} else {
						methods++
					}
				case *ast.GenDecl:
					for _, s := range d.Specs {
						switch s := s.(type) {
						case *ast.TypeSpec:
							if s.Name.IsExported() {
								decls++
							}
						case *ast.ValueSpec:
							for _, n := range s.Names {
								if n.IsExported() {
									decls++
								}
							}
						}
					}
				}
			}
		}
	}
	return decls, methods, ok
}

// hasIgnoreTag reports a file excluded from every build, like this one.
func hasIgnoreTag(f *ast.File) bool {
	for _, cg := range f.Comments {
		if cg.Pos() >= f.Package {
			break
		}
		for _, c := range cg.List {
			if strings.TrimSpace(c.Text) == "//go:build ignore" {
				return true
			}
		}
	}
	return false
}
