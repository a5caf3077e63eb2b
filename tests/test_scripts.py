"""The benchmark scripts still run: tiny runs in a subprocess (as `python scripts/...` runs them) print JSON
with the fields every benchmark shares, and the commands in scripts/gpu_check.sh still parse.

This catches import rot in scripts/ (they are not imported by the package, so nothing else would)."""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
COMMON = {"figure", "config", "device", "device_name", "dtype", "torch", "waveflow"}
BENCHES = ("bench_flow", "bench_infer", "bench_kernels", "bench_train")


def run_script(name: str, *args: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, str(SCRIPTS / f"{name}.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def load_script(name: str, monkeypatch):
    """Import ``scripts/<name>.py`` with scripts/ on the path, as running it does (for benchlib)."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(f"script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_flow_prints_one_record_per_figure(tmp_path):
    out = run_script("bench_flow", "--config", "tiny", "--device", "cpu", "--seconds", "0.1", "--repeats", "1",
                     "--warmup", "0", "--threads", "1", cwd=tmp_path)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["figure"] for r in rows] == ["forward", "inverse"]
    for r in rows:
        assert COMMON <= set(r), set(r)
        assert (r["config"], r["device"], r["dtype"]) == ("tiny", "cpu", "float32")
        assert r["khz"] > 0 and "error" not in r


def test_bench_infer_prints_one_report(tmp_path):
    out = run_script("bench_infer", "--config", "tiny", "--device", "cpu", "--seconds", "0.1", "--repeats", "1",
                     "--warmup", "0", "--threads", "1", "--modes", "eager-float32,chunked-float32",
                     "--chunk-frames", "4", "--json", str(tmp_path / "r.json"), cwd=tmp_path)
    report = json.loads(out)
    assert report == json.loads((tmp_path / "r.json").read_text())
    assert COMMON <= set(report), set(report)
    assert (report["config"], report["device"], report["dtype"]) == ("tiny", "cpu", "bfloat16")
    assert [m["mode"] for m in report["modes"]] == ["eager-float32", "chunked-float32"]
    assert report["modes"][0]["snr_db_vs_eager_float32"] is None  # identical to itself
    chunked = report["modes"][1]["snr_db_vs_eager_float32"]
    assert chunked is None or chunked > 60  # chunks with exact context: the same audio up to rounding


def gpu_check_commands() -> list[tuple[str, list[str]]]:
    """``(script, argv)`` of every ``python scripts/X.py ...`` line of gpu_check.sh, up to its redirections."""
    text = (SCRIPTS / "gpu_check.sh").read_text().replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        words = shlex.split(line.strip(), comments=True)
        if len(words) > 1 and words[0] == "python" and words[1].startswith("scripts/"):
            argv = words[2:words.index("2>&1")] if "2>&1" in words else words[2:]
            commands.append((Path(words[1]).stem, [w.replace("$out", "gpu-results") for w in argv]))
    return commands


def test_gpu_check_commands_parse(monkeypatch):
    subprocess.run(["bash", "-n", str(SCRIPTS / "gpu_check.sh")], check=True)
    commands = gpu_check_commands()
    assert {name for name, _ in commands} >= {"bench_kernels", "bench_infer"}
    for name, argv in commands:
        load_script(name, monkeypatch).get_parser().parse_args(argv)  # exits (SystemExit) on a stale option


@pytest.mark.parametrize("name", BENCHES)
def test_bench_script_imports_and_refuses_unknown_config(name, monkeypatch, capsys):
    module = load_script(name, monkeypatch)
    with pytest.raises(SystemExit) as exc:
        module.main(["--config", "no-such-config", "--device", "cpu"])
    assert exc.value.code == 2 and "config file not found" in capsys.readouterr().err
