"""Shared helpers for the deploy/ tests: paths from the command line, helm-lite rendering, running xrayd.

Every test file is a standalone unittest program:

    python3 tests/deploy/test_helm_chart.py --source-dir . --xrayd build/xrayd \
        --helm-lite ../shared/tools/helm-lite/helm-lite

Missing tools are failures that say what to install, never silent skips (except where a file says so).
"""
import argparse
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

ARGS = argparse.Namespace(source_dir=None, xrayd=None, helm_lite=None, hello=None)


def main():
    """Parses our flags, leaves the rest to unittest."""
    parser = argparse.ArgumentParser(add_help=False)
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--source-dir", default=os.path.normpath(os.path.join(here, "..", "..")))
    parser.add_argument("--xrayd", default=None)
    parser.add_argument("--helm-lite", default=None)
    parser.add_argument("--hello", default=None)
    ours, rest = parser.parse_known_args()
    ARGS.source_dir = os.path.abspath(ours.source_dir)
    ARGS.xrayd = os.path.abspath(ours.xrayd or os.path.join(ARGS.source_dir, "build", "xrayd"))
    ARGS.helm_lite = os.path.abspath(ours.helm_lite or os.path.join(
        ARGS.source_dir, "..", "shared", "tools", "helm-lite", "helm-lite"))
    ARGS.hello = os.path.abspath(ours.hello) if ours.hello else None
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


def src(*parts):
    return os.path.join(ARGS.source_dir, *parts)


def read(*parts):
    with open(src(*parts), encoding="utf-8") as f:
        return f.read()


def require_file(path, what, hint):
    if not os.path.isfile(path):
        raise AssertionError(f"{what} not found at {path}: {hint}")
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{what} at {path} is not executable")
    return path


def xrayd_binary():
    return require_file(ARGS.xrayd, "xrayd", "build it first (ninja -C build xrayd) or pass --xrayd PATH")


def helm_lite():
    return require_file(
        ARGS.helm_lite, "helm-lite",
        "the tests render the chart with helm-lite from ../shared/tools/helm-lite beside the clone "
        "(CI provides it); pass --helm-lite PATH to use another copy")


# The release and namespace of the article: helm -n ops-monitoring-ns install aws-xray ... -f x-ray-values.yaml
ARTICLE_RELEASE = "aws-xray"
ARTICLE_NAMESPACE = "ops-monitoring-ns"
CHART = ("deploy", "helm", "xrayd")


def render(*extra, release=ARTICLE_RELEASE, namespace=ARTICLE_NAMESPACE, check=True):
    """helm-lite template RELEASE deploy/helm/xrayd -n NAMESPACE EXTRA...; returns (CompletedProcess, docs)."""
    cmd = [helm_lite(), "template", release, src(*CHART), "-n", namespace, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d] if proc.returncode == 0 else []
    return proc, docs


def by_kind(docs):
    out = {}
    for d in docs:
        out.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    return out


_TEMP_DIRS = []


def temp_dir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    _TEMP_DIRS.append(d)
    return d


@atexit.register
def _remove_temp_dirs():
    for d in _TEMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)


def clean_env(**extra):
    """An environment with no AWS settings and an empty HOME, so only what a test gives counts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("HTTPS_PROXY", "https_proxy")}
    home = temp_dir("xrayd-deploy-home-")
    env["HOME"] = home
    env.update(extra)
    return env


def check_config(args, env=None, cwd=None):
    """Runs `xrayd ARGS --check-config` in an empty directory (no stray ./cfg.yaml) and returns
    (CompletedProcess, effective config parsed from stdout or None)."""
    workdir = cwd or temp_dir("xrayd-deploy-cwd-")
    proc = subprocess.run([xrayd_binary(), *args, "--check-config"], capture_output=True, text=True,
                          env=env if env is not None else clean_env(), cwd=workdir, timeout=30)
    effective = None
    if proc.returncode == 0:
        effective = yaml.safe_load(proc.stdout)
    return proc, effective


def host_has_default_config():
    return os.path.exists("/etc/amazon/xray/cfg.yaml")


def which(name, *fallbacks):
    found = shutil.which(name)
    if found:
        return found
    for f in fallbacks:
        if os.access(f, os.X_OK):
            return f
    return None
