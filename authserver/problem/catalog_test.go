package problem

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// TestCatalog holds every entry of catalog.go, read from its source so a
// new entry is checked without being listed: one status per code (the
// documented invalid_code pair aside), a message for each, and only
// client or server error statuses.
func TestCatalog(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "catalog.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]int{}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		lit, ok := node.(*ast.CompositeLit)
		if !ok || lit.Type == nil || lit.Type.(*ast.Ident).Name != "Code" {
			return true
		}
		n++
		fields := map[string]string{}
		for _, e := range lit.Elts {
			kv := e.(*ast.KeyValueExpr)
			if b, ok := kv.Value.(*ast.BasicLit); ok {
				fields[kv.Key.(*ast.Ident).Name] = b.Value
			}
		}
		code, _ := strconv.Unquote(fields["Code"])
		msg, _ := strconv.Unquote(fields["Message"])
		st, _ := strconv.Atoi(fields["Status"])
		if code == "" || msg == "" || st < 400 || st > 599 {
			t.Errorf("incomplete entry %v", fields)
		}
		if prev, ok := status[code]; ok && !(code == "invalid_code" && prev+st == 801) {
			t.Errorf("%s declared twice (status %d and %d)", code, prev, st)
		}
		status[code] = st
		return true
	})
	if n < 50 {
		t.Fatalf("read %d entries from catalog.go", n)
	}
}

func TestBecauseAndAfterCopy(t *testing.T) {
	e := NotAMember.Because("not a member of globex")
	if e.Code != "not_a_member" || e.Status != 403 || e.Message != "not a member of globex" || NotAMember.Message == e.Message {
		t.Fatalf("Because: %+v", e)
	}
	if r := Busy.New().After(5e9); r.RetryAfter != 5e9 || Busy.RetryAfter != 0 {
		t.Fatalf("After changed the catalog: %+v, %+v", r, Busy)
	}
}
