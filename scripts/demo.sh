#!/usr/bin/env bash
# Builds vmdkcarve, generates a demo evidence image with ground truth, runs
# carve and rebuild on it, and checks every rebuilt disk with qemu-img and
# vmdkinfo when they are installed. Everything lands in ${DEMO_DIR:-a temp dir}.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${DEMO_DIR:-$(mktemp -d -t vmdkcarve-demo.XXXXXX)}
mkdir -p "$work/bin"
go build -o "$work/bin/" ./cmd/carve ./cmd/rebuild ./cmd/corpus
bin=$work/bin

echo "== generating the demo evidence in $work/evidence"
"$bin/corpus" -o "$work/evidence" --scenario demo --seed 1

echo "== carve"
"$bin/carve" --progress plain -o "$work/case" "$work/evidence/image.dd"

echo "== rebuild"
status=0
"$bin/rebuild" --progress none "$work/case" || status=$?
[ "$status" -eq 0 ] || { echo "rebuild exited $status"; exit "$status"; }

echo "== checking the rebuilt disks"
if ! command -v qemu-img >/dev/null; then
  echo "qemu-img is not installed (apt-get install qemu-utils): skipping the interop check"
  exit 0
fi
# Each report names the laid files it came from; the ground truth says
# which guest disk those were. A disk whose grains all survived must read
# back identical to its ground truth; every disk must pass qemu-img check.
python3 - "$work" <<'PY'
import json, glob, os, subprocess, sys
work = sys.argv[1]
truth = json.load(open(f"{work}/evidence/truth.json"))
disk_of = {f["image_offset"]: f["disk"] for f in truth["files"]}
raw_of = {d["id"]: d["raw"] for d in truth["disks"]}
bad = 0
for rep_path in sorted(glob.glob(f"{work}/case/disks/disk-*.json")):
    rep = json.load(open(rep_path))
    d = rep["disk"]
    vmdk = os.path.join(work, "case", rep["output"][0]["path"])
    gid = disk_of[d["instances"][0]["header_offset"]]
    subprocess.run(["qemu-img", "check", "-q", vmdk], check=True)
    c = d["counts"]
    if c["missing"] == 0 and c["conflicting"] == 0:
        r = subprocess.run(["qemu-img", "compare", "-q", "-f", "vmdk", "-F", "raw", vmdk, os.path.join(work, "evidence", raw_of[gid])])
        verdict = "identical to the ground truth" if r.returncode == 0 else "DIFFERS from the ground truth"
        bad += r.returncode != 0
    else:
        # Score every placed grain against the ground truth, read by qemu-img.
        raw = vmdk + ".check.raw"
        subprocess.run(["qemu-img", "convert", "-f", "vmdk", "-O", "raw", vmdk, raw], check=True)
        got, want = open(raw, "rb").read(), open(os.path.join(work, "evidence", raw_of[gid]), "rb").read()
        os.remove(raw)
        gb = d["grain_size_sectors"] * 512
        wrong = sum(1 for r in d["runs"] if r["status"] == "placed"
                    for g in range(r["first_grain"], r["first_grain"] + r["count"])
                    if got[g*gb:(g+1)*gb] != want[g*gb:(g+1)*gb])
        bad += wrong != 0
        verdict = f"{c['placed']} grains placed, {wrong} of them wrong; {c['missing']} missing (tail cut)"
    if subprocess.run(["which", "vmdkinfo"], capture_output=True).returncode == 0:
        subprocess.run(["vmdkinfo", vmdk], check=True, capture_output=True)
        verdict += "; vmdkinfo opens it"
    print(f"{os.path.basename(vmdk)} (guest disk {gid}): qemu-img check clean; {verdict}")
sys.exit(1 if bad else 0)
PY
echo "demo OK: case in $work/case (the map: $work/case/report.html; DFXML: $work/case/report.dfxml; findings: $work/case/findings.json)"
