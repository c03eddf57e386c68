// orphaned_done: a short-lived goroutine opens a session context rooted at Background, starts a watcher that
// blocks on <-ctx.Done(), then returns without cancelling it and drops the cancel func. Nothing live can ever
// cancel the context (its creator is gone, no deadline, root is Background), so each watcher is stranded forever.
//
// ctxagent must report one "orphaned Done channel" finding at the WithCancel line (count growing at -rate per
// second), naming the watcher goroutines started at the `go s.watch(ctx)` line. Not also a lost cancel.
package main

import (
	"context"

	"example.com/scenarios/internal/harness"
)

type session struct {
	id     int
	cancel context.CancelFunc
}

// watch releases the session's resources when its context ends, which never happens.
func (s *session) watch(ctx context.Context) {
	<-ctx.Done()
	s.id = -1
}

// openSession runs in its own goroutine and exits right away.
func openSession(id int) {
	ctx, cancel := context.WithCancel(context.Background()) // want: orphaned_done
	s := &session{id: id, cancel: cancel}
	go s.watch(ctx) // want-spawner: orphaned_done
	// BUG: returns without calling s.cancel(); s is dropped and nothing can cancel ctx any more.
}

func main() {
	o := harness.Parse()
	harness.Run(o, nil, func(i int) {
		go openSession(i)
	})
}
