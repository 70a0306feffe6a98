package interrupt

import (
	"context"
	"os"
	"slices"
	"testing"
)

// TestContextEndsOnEverySignal sends the process each of Signals in turn
// and waits for the context to end (a missing signal hangs the test until
// go test's timeout names it). Signals always include os.Interrupt.
func TestContextEndsOnEverySignal(t *testing.T) {
	if !slices.Contains(Signals, os.Interrupt) {
		t.Errorf("Signals %v lack os.Interrupt", Signals)
	}
	self, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range Signals {
		ctx, stop := Context(context.Background())
		if ctx.Err() != nil {
			t.Fatalf("context ended before %v", sig)
		}
		if err := self.Signal(sig); err != nil {
			// Windows cannot send a signal to a process (os: not
			// supported); there Go's console handler is what delivers them.
			stop()
			t.Skipf("sending %v: %v", sig, err)
		}
		<-ctx.Done()
		if cause := context.Cause(ctx); cause == nil {
			t.Errorf("%v: context ended without a cause", sig)
		}
		stop()
	}
}
