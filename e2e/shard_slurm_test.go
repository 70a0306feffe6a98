package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"vmdkcarve/corpus"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/pipeline"
)

// slurmTools are the programs of Debian's slurm-wlm and munge that the
// Slurm test runs: the daemons (in /usr/sbin, which a user's PATH may
// lack) and the client commands.
var slurmTools = []string{"munged", "slurmctld", "slurmd", "sbatch", "sinfo", "scontrol", "scancel"}

// TestShardsOnSlurm carves a corpus image on a real single-node Slurm
// cluster, as a lab would: deploy/slurm/submit.sh --wait queues a job
// array of 3 tasks, each running carve --shard auto/3 into one case, and
// the rebuild behind it. The merged case and the rebuilt disks must be
// byte-identical to one carve and rebuild of the whole image, and each
// task must have carved the shard its index names.
func TestShardsOnSlurm(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Slurm cluster and builds the commands: not with -short")
	}
	if os.Geteuid() != 0 {
		tooltest.Missing(t, "the Slurm test runs munged, slurmctld and slurmd as root: skipping it as uid %d", os.Geteuid())
	}
	tools := map[string]string{}
	for _, name := range slurmTools {
		p, err := exec.LookPath(name)
		if err != nil {
			p, err = exec.LookPath(filepath.Join("/usr/sbin", name))
		}
		if err != nil {
			tooltest.Missing(t, "%s is not installed (apt-get install slurm-wlm munge): skipping the Slurm test", name)
		}
		tools[name] = p
	}
	const shards = 3
	bin := buildCommands(t, "carve", "rebuild")
	spec, err := corpus.Scenario("variants", 11, 0, corpus.HaveQemu())
	if err != nil {
		t.Fatal(err)
	}
	image := generate(t, spec).Image

	whole := filepath.Join(t.TempDir(), "whole")
	runCommand(t, nil, filepath.Join(bin, "carve"), "--progress", "none", "-o", whole, image)
	runCommand(t, nil, filepath.Join(bin, "rebuild"), "--progress", "none", whole)

	cl := startSlurm(t, tools)
	caseDir, logs := filepath.Join(t.TempDir(), "case"), t.TempDir()
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, logs)
		}
	})
	began := time.Now()
	out := runCommand(t, cl.env(
		"CARVE="+filepath.Join(bin, "carve"),
		"REBUILD="+filepath.Join(bin, "rebuild"),
		"LOGDIR="+logs,
		// Two tasks at a time on the node's two CPUs.
		"SBATCH_FLAGS=--cpus-per-task=1",
	), filepath.Join("..", "deploy", "slurm", "submit.sh"), "--wait", image, caseDir, fmt.Sprint(shards))
	t.Logf("%d shards and the rebuild on Slurm: %s (sbatch --wait polls every few seconds)\n%s", shards, time.Since(began).Round(time.Millisecond), out)

	size := fileSize(t, image)
	var want []string
	for k := range shards {
		r, err := pipeline.ShardRange(k, shards, size)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r.String())
	}
	got, _ := filepath.Glob(filepath.Join(caseDir, pipeline.ShardsDirName, "*"))
	for i := range got {
		got[i] = filepath.Base(got[i])
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the array carved the shards %v, want %v", got, want)
	}
	sameCase(t, "3 shards on Slurm", whole, caseDir)
}

// sameCase fails unless two cases hold byte-identical merged carve
// outputs and rebuilt disks (case.json and the reports hold times and
// paths, and are not compared).
func sameCase(t *testing.T, what, want, got string) {
	t.Helper()
	for _, name := range []string{pipeline.HitsName, pipeline.FingerprintsName} {
		if !bytes.Equal(readBytes(t, filepath.Join(want, name)), readBytes(t, filepath.Join(got, name))) {
			t.Errorf("%s: %s differs from one run's", what, name)
		}
	}
	disks := func(dir string) []string {
		m, _ := filepath.Glob(filepath.Join(dir, pipeline.DisksDirName, "*.vmdk"))
		for i := range m {
			m[i] = filepath.Base(m[i])
		}
		return m
	}
	wantDisks, gotDisks := disks(want), disks(got)
	if len(wantDisks) == 0 || !slices.Equal(wantDisks, gotDisks) {
		t.Fatalf("%s: rebuilt %v, one run rebuilt %v", what, gotDisks, wantDisks)
	}
	for _, d := range wantDisks {
		if !bytes.Equal(readBytes(t, filepath.Join(want, pipeline.DisksDirName, d)), readBytes(t, filepath.Join(got, pipeline.DisksDirName, d))) {
			t.Errorf("%s: %s differs from one run's", what, d)
		}
	}
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// buildCommands builds the module's named commands into a temporary
// directory and returns it.
func buildCommands(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, n := range names {
		args = append(args, "vmdkcarve/cmd/"+n)
	}
	runCommand(t, nil, "go", args...)
	return dir
}

// commandTimeout bounds every program the Slurm test runs: a job Slurm
// never starts would otherwise leave sbatch --wait waiting until the test
// binary's own timeout, which prints no logs.
const commandTimeout = 5 * time.Minute

// runCommand runs a program (with env added to the test's environment)
// and returns its output, failing the test with it if the program fails.
func runCommand(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second // a script's children may hold its output open
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// dumpLogs logs every file in dir, for a failed run.
func dumpLogs(t *testing.T, dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && !e.IsDir() {
			t.Logf("--- %s:\n%s", e.Name(), b)
		}
	}
}

// slurmCluster is a single-node Slurm cluster on localhost, private to
// one test: its own munge key and socket, configuration, state and ports.
type slurmCluster struct {
	dir   string
	conf  string
	procs []*exec.Cmd
}

// env is the environment a Slurm client command needs to reach this
// cluster, plus extra.
func (c *slurmCluster) env(extra ...string) []string {
	return append([]string{"SLURM_CONF=" + c.conf}, extra...)
}

// startSlurm starts munged, slurmctld and slurmd in the foreground (as
// children the test can stop) and waits until the node is idle. Their
// logs are in the cluster's directory and are printed if the test fails;
// the daemons and any job left are stopped when it ends.
func startSlurm(t *testing.T, tools map[string]string) *slurmCluster {
	t.Helper()
	c := &slurmCluster{dir: t.TempDir()}
	t.Cleanup(func() {
		c.stop(t, tools)
		if t.Failed() {
			dumpLogs(t, filepath.Join(c.dir, "log"))
		}
	})
	for _, d := range []string{"munge", "state", "spool", "log"} {
		if err := os.Mkdir(filepath.Join(c.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	key := make([]byte, 1024)
	rand.Read(key)
	if err := os.WriteFile(filepath.Join(c.dir, "munge", "munge.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(c.dir, "munge", "munge.socket")
	// --force: munged refuses, as a safety check, a socket directory
	// that not everyone can traverse (a test's temporary directory).
	c.start(t, "munged", tools["munged"], "--foreground", "--force",
		"--key-file="+filepath.Join(c.dir, "munge", "munge.key"), "--socket="+socket,
		"--pid-file="+filepath.Join(c.dir, "munge", "munged.pid"), "--seed-file="+filepath.Join(c.dir, "munge", "munged.seed"),
		"--log-file="+filepath.Join(c.dir, "log", "munged.log"))
	waitFor(t, "munged's socket", 10*time.Second, func() bool {
		_, err := os.Stat(socket)
		return err == nil
	})

	c.conf = filepath.Join(c.dir, "slurm.conf")
	ports := freePorts(t, 2)
	conf := fmt.Sprintf(`ClusterName=vmdkcarve-test
SlurmctldHost=localhost
SlurmctldPort=%d
SlurmdPort=%d
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=%[3]s
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=%[4]s/state
SlurmdSpoolDir=%[4]s/spool
SlurmctldPidFile=%[4]s/slurmctld.pid
SlurmdPidFile=%[4]s/slurmd.pid
SlurmctldLogFile=%[4]s/log/slurmctld.log
SlurmdLogFile=%[4]s/log/slurmd.log
NodeName=localhost CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
`, ports[0], ports[1], socket, c.dir)
	if err := os.WriteFile(c.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// -i: ignore the (empty) saved state; -N: the node is "localhost"
	// whatever this machine's host name.
	c.start(t, "slurmctld", tools["slurmctld"], "-D", "-i", "-f", c.conf)
	c.start(t, "slurmd", tools["slurmd"], "-D", "-N", "localhost", "-f", c.conf)
	waitFor(t, "the node to be idle", 30*time.Second, func() bool {
		cmd := exec.Command(tools["sinfo"], "-h", "-N", "-o", "%T")
		cmd.Env = append(os.Environ(), c.env()...)
		out, err := cmd.Output()
		return err == nil && strings.TrimSpace(string(out)) == "idle"
	})
	return c
}

// start starts a daemon in the foreground, its output in log/NAME.out.
func (c *slurmCluster) start(t *testing.T, name, path string, args ...string) {
	t.Helper()
	out, err := os.Create(filepath.Join(c.dir, "log", name+".out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), c.env()...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	out.Close() // the child has its own descriptor
	c.procs = append(c.procs, cmd)
}

// stop cancels any job left (a failed test's), then stops the daemons,
// newest first, and waits for them.
func (c *slurmCluster) stop(t *testing.T, tools map[string]string) {
	if c.conf != "" {
		cmd := exec.Command(tools["scancel"], "--user=root")
		cmd.Env = append(os.Environ(), c.env()...)
		cmd.Run()
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Logf("%s did not stop on SIGTERM within 10 s: killing it", p.Path)
			p.Process.Kill()
			<-done
		}
	}
}

// freePorts returns n TCP ports on localhost that nothing listens on
// now, so that the test's cluster does not meet a real one on Slurm's
// ports. They are held open together, so that they differ.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
	}
}
