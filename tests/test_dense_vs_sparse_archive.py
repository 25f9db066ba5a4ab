"""experiments/dense_vs_sparse/archive.py against the code the study runs at: a finished run's
records (not its checkpoints) and the SFT start with its cached evaluations go to the archive and
come back on a machine without them; a start retrained there with other weights is refused."""

from test_dense_vs_sparse_collect import PREAMBLE, collect_with, study_code  # noqa: F401 (the fixture)

SCRIPT = PREAMBLE + r"""
import contextlib, shutil
import archive
quiet = contextlib.redirect_stdout(sys.stderr)  # archive's report lines; stdout carries the JSON
from tgrpo_lib import runs
from tgrpo_lib.config import run_name
runs.OUTPUTS_DIR, archive.ARCHIVE, archive.WEAK_START = d / "outputs", d / "archive", d / "weak_start_archived.json"
archive.STARTS, archive.IN_FLIGHT = d / "starts", d / "in_flight"
cut = runs.run_dir_path("train", run_name(collect.study.train_config("long", "grpo_sparse", 0)))
(cut / "checkpoints").mkdir(parents=True)
for i in (2, 3):
    (cut / "checkpoints" / f"iter_00000{i}.pt").write_bytes(b"state %d" % i)
(cut / "checkpoints" / "latest").write_text("iter_000003.pt\n")
(cut / "metrics.jsonl").write_text("{}\n")
start = runs.run_dir_path("sft", run_name(collect.study.sft_config("long")))
(start / "checkpoints" / "policy").mkdir(parents=True)
(start / "checkpoints" / "evals").mkdir()
(start / "checkpoints" / "policy" / "tiny_vla.safetensors").write_bytes(b"weights")
(start / "checkpoints" / "evals" / "test_abc.json").write_text("{}")
(start / "LOCK").write_text("")
(start / runs.COMPLETE_MARKER).write_text("")
run = runs.run_dir_path("train", run_name(collect.study.train_config("long", "tgrpo", 0)))
(run / "eval").mkdir(parents=True)
(run / "checkpoints").mkdir()
(run / "eval" / "after_test.csv").write_text("success\n1\n0\n")
(run / "metrics.json").write_text("{}")
(run / "checkpoints" / "iter_000001.pt").write_bytes(b"x" * 10)
with quiet:
    archive.save()  # not finished yet: in flight only
first = sorted(p.name for p in archive.ARCHIVE.glob("*"))
first_in_flight = sorted(p.name for p in archive.IN_FLIGHT.glob("*"))
(run / runs.COMPLETE_MARKER).write_text("")
with quiet:
    archive.save()
archived = sorted(str(p.relative_to(archive.ARCHIVE / run.name)) for p in (archive.ARCHIVE / run.name).rglob("*") if p.is_file())
in_flight = sorted(str(p.relative_to(archive.IN_FLIGHT)) for p in archive.IN_FLIGHT.rglob("*") if p.is_file())
shutil.rmtree(d / "outputs")
(d / "weak_start.json").unlink()  # a new machine: no outputs at all
with quiet:
    archive.restore()
restored = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
resumes_from = runs.latest_checkpoint(cut).read_bytes().decode()
start_files = sorted(str(p.relative_to(start)) for p in start.rglob("*") if p.is_file())
(start / "checkpoints" / "policy" / "tiny_vla.safetensors").write_bytes(b"other weights")  # retrained here
try:
    with quiet:
        archive.restore()
    refused = None
except SystemExit as e:
    refused = str(e)
print(json.dumps({"start_files": start_files, "refused": refused, "first": first, "first_in_flight": first_in_flight,
                  "in_flight": in_flight, "resumes_from": resumes_from, "archived": archived, "restored": restored, "complete": runs.is_complete(run),
                  "csv": (run / "eval" / "after_test.csv").read_text(), "weak": json.loads((d / "weak_start.json").read_text())}))
"""


def test_archive_keeps_a_finished_runs_records_without_checkpoints(study_code):  # noqa: F811
    chosen = {"suite": "libero_spatial", "task_id": 1, "demos": 175}
    got = collect_with(study_code, chosen, SCRIPT)
    assert got["first"] == [] and len(got["first_in_flight"]) == 2  # both started, neither finished
    # once finished, a run leaves in_flight/; the cut one keeps its latest checkpoint only, and resumes from it
    assert got["in_flight"] == [f"{got['first_in_flight'][0]}/{f}" for f in
                                ("checkpoints/iter_000003.pt", "checkpoints/latest", "metrics.jsonl")]
    assert got["resumes_from"] == "state 3"
    assert got["archived"] == got["restored"] == ["COMPLETE", "eval/after_test.csv", "metrics.json"]
    assert got["complete"] and got["csv"] == "success\n1\n0\n"
    assert got["weak"] == {"chosen": chosen}  # the qualification travels with the runs
    assert got["start_files"] == ["COMPLETE", "checkpoints/evals/test_abc.json", "checkpoints/policy/tiny_vla.safetensors"]
    assert "holds other weights than the archived start (tiny_vla.safetensors)" in got["refused"]
