//go:build go1.21

// lost_cancel_afterfunc: every session registers cleanup with context.AfterFunc on the server's
// root context and drops the returned stop func (the session ends without unregistering). The
// root is never cancelled: each registration stays in the root's children map, with its closure,
// for the process lifetime, and nothing can remove it.
//
// ctxagent must report one "lost cancel" at the AfterFunc line: the heap marks find the
// registrations and no stop func of theirs. (before go1.21: old.go, a healthy stand-in)
package main

import (
	"context"

	"example.com/scenarios/internal/harness"
)

type session struct {
	id     int
	closed bool
}

func (s *session) open(root context.Context) {
	context.AfterFunc(root, func() { s.closed = true }) // want: lost_cancel (not go1.19: no AfterFunc)
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background()) // lives as long as the process
	defer stop()
	harness.Run(o, nil, func(i int) {
		s := &session{id: i}
		go s.open(root)
	})
}
