package pipeline

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"testing"
)

// TestCaseLock: while one run holds the case lock another is refused it
// (tryLockCase) or waits for it (lockCase), and gets it once released.
func TestCaseLock(t *testing.T) {
	if caseLocking == "none" {
		t.Skip("this platform takes no case lock (lock_other.go)")
	}
	dir := t.TempDir()
	unlock, err := lockCase(dir)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := tryLockCase(dir); !errors.Is(err, errCaseLocked) {
		if err == nil {
			u()
		}
		t.Fatalf("second lock while held: %v, want %v", err, errCaseLocked)
	}
	waited := make(chan error)
	go func() {
		u, err := lockCase(dir)
		if err == nil {
			u()
		}
		waited <- err
	}()
	unlock()
	if err := <-waited; err != nil {
		t.Fatalf("waiting lock after release: %v", err)
	}
	u, err := tryLockCase(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	u()
}

// TestCaseLockAcrossProcesses: a lock held by another process refuses
// this one, and goes away when that process is killed (a killed shard run
// never leaves the case locked).
func TestCaseLockAcrossProcesses(t *testing.T) {
	if os.Getenv("VMDKCARVE_LOCK_HOLDER") != "" {
		holdLock(os.Getenv("VMDKCARVE_LOCK_HOLDER"))
		return
	}
	if caseLocking == "none" {
		t.Skip("this platform takes no case lock (lock_other.go)")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCaseLockAcrossProcesses$")
	cmd.Env = append(os.Environ(), "VMDKCARVE_LOCK_HOLDER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("lock holder said %q, %v", line, err)
	}
	if u, err := tryLockCase(dir); !errors.Is(err, errCaseLocked) {
		if err == nil {
			u()
		}
		t.Errorf("lock held by process %d: %v, want %v", cmd.Process.Pid, err, errCaseLocked)
	}
	cmd.Process.Kill()
	cmd.Wait()
	u, err := lockCase(dir)
	if err != nil {
		t.Fatalf("lock after its holder was killed: %v", err)
	}
	u()
}

// holdLock is the other process of TestCaseLockAcrossProcesses: it takes
// the lock, says so, and holds it until killed (or its stdin closes).
func holdLock(dir string) {
	if _, err := lockCase(dir); err != nil {
		os.Stdout.WriteString("error: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("locked\n")
	bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(0)
}
