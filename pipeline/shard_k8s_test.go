package pipeline

import (
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// k8sDir holds the Kubernetes manifests shipped for batch carving.
var k8sDir = filepath.Join("..", "deploy", "k8s")

// k8sObject is the part of a Kubernetes object the manifest test reads:
// a Job's spec and pod template, a PersistentVolumeClaim's access modes.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		// Job
		CompletionMode string `yaml:"completionMode"`
		Completions    *int   `yaml:"completions"`
		Parallelism    *int   `yaml:"parallelism"`
		Template       struct {
			Spec struct {
				RestartPolicy string         `yaml:"restartPolicy"`
				Containers    []k8sContainer `yaml:"containers"`
				Volumes       []k8sVolume    `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		// PersistentVolumeClaim
		AccessModes []string `yaml:"accessModes"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Command      []string `yaml:"command"`
	Args         []string `yaml:"args"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type k8sVolume struct {
	Name                  string `yaml:"name"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"persistentVolumeClaim"`
}

// readManifests decodes every document of a YAML file.
func readManifests(t *testing.T, name string) []k8sObject {
	t.Helper()
	f, err := os.Open(filepath.Join(k8sDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var objs []k8sObject
	dec := yaml.NewDecoder(f)
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		objs = append(objs, o)
	}
}

// jobMount is one volume mount of a Job's container: where, whether
// read-only, and the claim behind it ("" for another kind of volume).
type jobMount struct {
	path          string
	readOnly      bool
	claim         string
	claimReadOnly bool
}

// jobOf reads the one Job in a manifest and returns it with its one
// container's command line and its mounts by volume name.
func jobOf(t *testing.T, name string) (k8sObject, []string, map[string]jobMount) {
	t.Helper()
	objs := readManifests(t, name)
	if len(objs) != 1 || objs[0].Kind != "Job" || objs[0].APIVersion != "batch/v1" {
		t.Fatalf("%s: want one batch/v1 Job, got %+v", name, objs)
	}
	job := objs[0]
	pod := job.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", name, len(pod.Containers))
	}
	c := pod.Containers[0]
	mounts := map[string]jobMount{}
	for _, m := range c.VolumeMounts {
		i := slices.IndexFunc(pod.Volumes, func(v k8sVolume) bool { return v.Name == m.Name })
		if i < 0 {
			t.Fatalf("%s: volume mount %s has no volume", name, m.Name)
		}
		jm := jobMount{path: m.MountPath, readOnly: m.ReadOnly}
		if pvc := pod.Volumes[i].PersistentVolumeClaim; pvc != nil {
			jm.claim, jm.claimReadOnly = pvc.ClaimName, pvc.ReadOnly
		}
		mounts[m.Name] = jm
	}
	return job, append(slices.Clone(c.Command), c.Args...), mounts
}

func orUnset(p *int) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(*p)
}

// flagValue returns the argument after flag on a command line.
func flagValue(cmd []string, flag string) string {
	i := slices.Index(cmd, flag)
	if i < 0 || i+1 >= len(cmd) {
		return ""
	}
	return cmd[i+1]
}

// under reports whether p lies in the directory dir.
func under(p, dir string) bool {
	rel, ok := strings.CutPrefix(path.Clean(p), path.Clean(dir))
	return ok && (rel == "" || strings.HasPrefix(rel, "/"))
}

// mountOf names the mount holding p.
func mountOf(mounts map[string]jobMount, p string) (string, jobMount) {
	for name, m := range mounts {
		if under(p, m.path) {
			return name, m
		}
	}
	return "", jobMount{}
}

// TestShardKubernetesManifests checks the shipped manifests fit together: the carve
// Job is Indexed with completions equal to the N its carve --shard auto/N
// is told, reads the evidence from a read-only mount and writes the case
// to a ReadWriteMany claim; the rebuild Job mounts the same claims at the
// same places (rebuild opens the evidence at the path the carve
// recorded); and the pods' indexes map, through ParseShard and
// ShardRange, onto ranges that tile an image.
func TestShardKubernetesManifests(t *testing.T) {
	job, cmd, mounts := jobOf(t, "carve-job.yaml")
	if job.Spec.CompletionMode != "Indexed" {
		t.Errorf("carve Job: completionMode %q, want Indexed", job.Spec.CompletionMode)
	}
	if len(cmd) == 0 || path.Base(cmd[0]) != "carve" {
		t.Fatalf("carve Job runs %q, want carve", cmd)
	}
	shard := flagValue(cmd, "--shard")
	nStr, ok := strings.CutPrefix(shard, "auto/")
	n, err := strconv.Atoi(nStr)
	if !ok || err != nil {
		t.Fatalf("carve Job: --shard %q, want auto/N", shard)
	}
	if c := job.Spec.Completions; c == nil || *c != n {
		t.Errorf("carve Job: completions %s, but the pods carve --shard %s: N must equal completions", orUnset(c), shard)
	}
	if p := job.Spec.Parallelism; p == nil || *p < 1 || *p > n {
		t.Errorf("carve Job: parallelism %s, want 1 to %d", orUnset(p), n)
	}
	if rp := job.Spec.Template.Spec.RestartPolicy; rp != "OnFailure" && rp != "Never" {
		t.Errorf("carve Job: restartPolicy %q, want OnFailure or Never", rp)
	}

	image, caseDir := cmd[len(cmd)-1], flagValue(cmd, "-o")
	evName, ev := mountOf(mounts, image)
	caseName, cs := mountOf(mounts, caseDir)
	switch {
	case evName == "":
		t.Errorf("carve Job: the evidence %s is on no volume mount", image)
	case !ev.readOnly || ev.claim != "" && !ev.claimReadOnly:
		t.Errorf("carve Job: the evidence volume %s is not mounted read-only (mount %v, claim %v)", evName, ev.readOnly, ev.claimReadOnly)
	}
	claims := map[string]k8sObject{}
	for _, o := range readManifests(t, "volumes.yaml") {
		if o.Kind == "PersistentVolumeClaim" {
			claims[o.Metadata.Name] = o
		}
	}
	switch c, ok := claims[cs.claim]; {
	case caseName == "" || cs.claim == "":
		t.Errorf("carve Job: the case %s is on no claim (mounts %v)", caseDir, mounts)
	case cs.readOnly || cs.claimReadOnly:
		t.Errorf("carve Job: the case volume %s is read-only", caseName)
	case !ok:
		t.Errorf("carve Job: the case claim %s is not in volumes.yaml", cs.claim)
	case !slices.Equal(c.Spec.AccessModes, []string{"ReadWriteMany"}):
		t.Errorf("case claim %s: access modes %v, want ReadWriteMany (every carve pod writes to it)", cs.claim, c.Spec.AccessModes)
	}
	if c, ok := claims[ev.claim]; ev.claim != "" && (!ok || slices.ContainsFunc(c.Spec.AccessModes, func(m string) bool { return m != "ReadOnlyMany" })) {
		t.Errorf("evidence claim %s: access modes %v (in volumes.yaml: %v), want ReadOnlyMany", ev.claim, c.Spec.AccessModes, ok)
	}

	rjob, rcmd, rmounts := jobOf(t, "rebuild-job.yaml")
	if rjob.Spec.CompletionMode == "Indexed" || len(rcmd) == 0 || path.Base(rcmd[0]) != "rebuild" || rcmd[len(rcmd)-1] != caseDir {
		t.Errorf("rebuild Job (completionMode %q) runs %q, want a plain Job running rebuild %s", rjob.Spec.CompletionMode, rcmd, caseDir)
	}
	if rmounts[evName] != ev || rmounts[caseName] != cs {
		t.Errorf("rebuild Job: mounts %v, want the carve Job's evidence %v and case %v", rmounts, ev, cs)
	}

	// Each pod gets its index in JOB_COMPLETION_INDEX, 0 to completions-1.
	for _, size := range []int64{64 << 20, 2<<40 + 512} {
		pos := int64(0)
		for index := range n {
			env := map[string]string{EnvJobCompletionIndex: strconv.Itoa(index)}
			k, got, err := ParseShard(shard, func(name string) string { return env[name] })
			if err != nil || k != index || got != n {
				t.Fatalf("pod %d: ParseShard(%q) = %d/%d, %v", index, shard, k, got, err)
			}
			r, err := ShardRange(k, n, size)
			if err != nil || r.Start != pos || r.End <= r.Start {
				t.Fatalf("pod %d of an image of %d bytes: ShardRange = %v, %v; want a range from %d", index, size, r, err, pos)
			}
			pos = r.End
		}
		if pos != size {
			t.Errorf("the %d pods carve up to %d of an image of %d bytes", n, pos, size)
		}
	}
}
