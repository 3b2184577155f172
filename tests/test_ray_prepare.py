"""`mmdeepfake prepare --engine ray`: the same layout as the local engine, on a local Ray instance.

A DFDC mini tree (four clips and a broken file) is prepared once by the local engine, then on
Ray (two CPUs) to a folder and from the local S3 server to itself: every file must be the same,
byte for byte, the broken file counted, and a re-run must do nothing. A source that kills the
worker reading one clip checks Ray's retries and what happens when they run out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmdeepfake.data.storage import LocalStorage, Storage, open_storage
from mmdeepfake.errors import ConfigError
from mmdeepfake.prepare.engine import WORKER_DIED, prepare_dataset
from mmdeepfake.prepare.manifest import MANIFEST
from mmdeepfake.testing.datasets import make_dfdc

FRAMES = 2
CLIPS = 5  # two people with a real and a fake clip each, and the broken file


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def ray_instance(s3_server):
    """One local Ray instance of 2 CPUs for the module, started after the fake S3 credentials
    are in the environment (its workers inherit them)."""
    ray = pytest.importorskip("ray")
    from mmdeepfake.scale.cluster import connect

    connect(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_dfdc(tmp_path_factory.mktemp("raw"), identities=2, clips_per_identity=2)


@pytest.fixture(scope="module")
def local(tree, tmp_path_factory):
    """The tree prepared by the local engine: (folder, summary)."""
    out = tmp_path_factory.mktemp("local")
    return out, prepare_dataset(str(tree), str(out), "dfdc", frames_per_clip=FRAMES, progress=False)


@pytest.mark.slow
def test_ray_writes_the_local_engines_layout_and_resumes(
    ray_instance, tree, local, tmp_path, capsys
):
    from mmdeepfake.cli.prepare import main
    from mmdeepfake.scale.preparing import RayRunner

    local_out, expected = local
    out = tmp_path / "ray"
    summary = prepare_dataset(
        str(tree), str(out), "dfdc", frames_per_clip=FRAMES, progress=False, runner=RayRunner()
    )
    assert (summary.clips, summary.written) == (CLIPS, 4)
    assert dict(summary.skipped) == {"broken video": 1}
    assert (summary.frames, summary.by_split) == (expected.frames, expected.by_split)
    written = _files(out)
    assert written == _files(local_out)  # frames, voices, clips.csv, manifest: byte for byte
    assert len([key for key in written if key.startswith("frames/")]) == 4 * FRAMES

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    args = [str(tree), "--format", "dfdc", "--out", str(out), "--frames-per-clip", str(FRAMES)]
    assert main([*args, "--engine", "ray", "--workers", "2", "--no-progress"]) == 0
    assert f"already done by an earlier run: {CLIPS} clips" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps


@pytest.mark.slow
def test_ray_prepares_s3_to_s3_as_the_local_engine_does(ray_instance, tree, local, s3_bucket):
    from mmdeepfake.scale.preparing import RayRunner

    raw = open_storage(s3_bucket.uri("raw/"), endpoint_url=s3_bucket.endpoint_url)
    for path in tree.rglob("*"):
        if path.is_file():
            raw.write_bytes(path.relative_to(tree).as_posix(), path.read_bytes())
    summary = prepare_dataset(
        s3_bucket.uri("raw/"),
        s3_bucket.uri("ready/"),
        "dfdc",
        endpoint_url=s3_bucket.endpoint_url,
        frames_per_clip=FRAMES,
        progress=False,
        runner=RayRunner(workers=2),
    )
    assert (summary.written, dict(summary.skipped)) == (4, {"broken video": 1})
    ready = open_storage(s3_bucket.uri("ready/"), endpoint_url=s3_bucket.endpoint_url)
    expected = _files(local[0])
    assert sorted(ready.list()) == sorted(expected)
    assert {key: ready.read_bytes(key) for key in expected} == expected


def _finished(dest: Storage) -> set[str]:
    """The clips the destination's manifest lists as done."""
    return {json.loads(line)["clip_id"] for line in dest.read_text(MANIFEST).splitlines()}


class _DyingSource(LocalStorage):
    """A folder whose reader process dies on ``victim`` until ``deaths`` lines are in ``log``."""

    def __init__(self, root: Path, victim: str, log: Path, deaths: int) -> None:
        super().__init__(root)
        self.victim, self.log, self.deaths = victim, log, deaths

    def read_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        if key == self.victim:
            seen = self.log.read_text().count("\n") if self.log.exists() else 0
            if seen < self.deaths:
                with self.log.open("a") as handle:
                    handle.write(f"{os.getpid()}\n")
                os._exit(1)
        return super().read_bytes(key, max_bytes=max_bytes)


@pytest.mark.slow
def test_a_clip_whose_worker_dies_is_retried_then_left_for_the_next_run(
    ray_instance, tree, tmp_path
):
    from ray import cloudpickle

    from mmdeepfake.prepare.clips import list_clips
    from mmdeepfake.prepare.engine import prepare_clips
    from mmdeepfake.prepare.splits import assign_splits
    from mmdeepfake.scale.preparing import RayRunner

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    clips = assign_splits(list_clips("dfdc", open_storage(tree)), fractions=(0.8, 0.1, 0.1))
    victim = next(clip for clip in clips if clip.label == "real")
    deaths = tmp_path / "deaths.txt"
    out = open_storage(tmp_path / "out")
    settings = {"frames_per_clip": 1}

    def run(retries: int, dying: int):
        source = _DyingSource(tree, victim.source, deaths, dying)
        runner = RayRunner(max_retries=retries)
        return prepare_clips(
            clips, source, out, settings=settings, frames_per_clip=1, progress=False, runner=runner
        )

    first = run(retries=0, dying=1)  # no retry: the run goes on without the clip
    assert first.skipped[WORKER_DIED] == 1 and first.written + sum(first.skipped.values()) == CLIPS
    assert victim.clip_id not in _finished(out)  # so the next run tries it again
    second = run(retries=2, dying=2)  # dies once more, then its retry succeeds
    assert (second.already_done, second.written, dict(second.skipped)) == (CLIPS - 1, 1, {})
    assert deaths.read_text().count("\n") == 2
    assert _finished(out) == {clip.clip_id for clip in clips}


# --- the command line, without Ray --------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--address", "auto"], "--address names a Ray cluster: add --engine ray"),
        (["--engine", "ray", "--address", "head"], "is not a Ray cluster address"),
        (["--engine", "spark"], "argument --engine: invalid choice: 'spark'"),
    ],
)
def test_engine_flags_in_bad_combinations_are_one_line_errors(tmp_path, capsys, extra, message):
    from mmdeepfake.cli.prepare import main

    (tmp_path / "raw").mkdir()
    args = [str(tmp_path / "raw"), "--format", "dfdc", "--out", str(tmp_path / "o"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_ray_client_cannot_reach_a_folder_of_this_machine(tmp_path):
    from mmdeepfake.scale.preparing import RayRunner

    runner = RayRunner(address="ray://head:10001")
    s3 = open_storage("s3://bucket/out/")
    with pytest.raises(ConfigError, match="source .* is a folder of this machine"):
        next(iter(runner([], LocalStorage(tmp_path), s3, FRAMES)))
    with pytest.raises(ConfigError, match="destination .* is a folder of this machine"):
        next(iter(runner([], s3, LocalStorage(tmp_path), FRAMES)))


def test_ray_is_imported_only_by_the_ray_engine():
    code = (
        "import sys, mmdeepfake, mmdeepfake.cli.prepare, mmdeepfake.scale.preparing\n"
        "sys.exit('ray' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
