package main

import (
	"errors"
	"testing"
)

func TestErrorLineDropsAPrefixWordThatRepeatsTheOneBefore(t *testing.T) {
	tests := []struct{ in, want string }{
		{"restore: restore: no index in data_dir /d", "restore: no index in data_dir /d"},
		{"restore: restore: restore target /x: mkdir /x: denied", "restore: restore target /x: mkdir /x: denied"},
		{"verify: restore: no index", "verify: restore: no index"},
		{"node: node: node: x", "node: x"},
		// only the leading prefix words: paths and values stay as written
		{"/h/vigil.yaml:3: a: a: b", "/h/vigil.yaml:3: a: a: b"},
		{`lag: value "x: x: y"`, `lag: value "x: x: y"`},
		{"restore", "restore"},
	}
	for _, tt := range tests {
		if got := errorLine(errors.New(tt.in)); got != tt.want {
			t.Errorf("errorLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
