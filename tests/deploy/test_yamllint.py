"""yamllint (Debian's yamllint, strict: warnings fail) on every YAML file in deploy/ and tests/deploy/, and on
the chart's rendered output for each mode (its templates are Go templates, linted through what they render).
Rules: tests/deploy/yamllint.yaml."""
import os
import subprocess
import unittest

import deploy_support as ds

RENDERINGS = {
    "defaults": [],
    "article": ["-f", ("tests", "deploy", "x-ray-values.yaml")],
    "local": ["--set", "mode=local"],
    "otlp": ["--set", "mode=otlp", "--set", "otlp.endpoint=http://tempo:4318"],
    "servicemonitor": ["--set", "serviceMonitor.enabled=true", "--set", "server.enabled=true"],
}


def yamllint():
    path = ds.which("yamllint", "/usr/bin/yamllint")
    if not path:
        raise AssertionError("yamllint not found: apt-get install yamllint (listed in scripts/debian-packages.txt, "
                             "installed by scripts/setup.sh)")
    return path


def lint(paths):
    cmd = [yamllint(), "--strict", "-f", "parsable", "-c", ds.src("tests", "deploy", "yamllint.yaml"), *paths]
    # Relative paths, so the config's `ignore:` patterns (deploy/helm/*/templates/) apply.
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ds.ARGS.source_dir, timeout=120)


class YamlLint(unittest.TestCase):
    def test_plain_yaml_files(self):
        files = []
        for top in ("deploy", os.path.join("tests", "deploy")):
            for root, _, names in os.walk(ds.src(top)):
                rel_root = os.path.relpath(root, ds.ARGS.source_dir)
                if os.sep + "templates" in rel_root + os.sep and "helm" in rel_root:
                    continue
                files += [os.path.join(rel_root, n) for n in names if n.endswith((".yaml", ".yml"))]
        self.assertIn(os.path.join("deploy", "helm", "xrayd", "values.yaml"), files)
        self.assertIn(os.path.join("deploy", "k8s", "kustomization.yaml"), files)
        proc = lint(sorted(files))
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_rendered_chart(self):
        out_dir = ds.temp_dir("xrayd-rendered-")
        paths = []
        for name, extra in RENDERINGS.items():
            args = [ds.src(*a) if isinstance(a, tuple) else a for a in extra]
            proc, _ = ds.render(*args)
            path = os.path.join(out_dir, f"{name}.yaml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(proc.stdout)
            paths.append(path)
        proc = lint(paths)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_linter_catches_errors(self):
        """The rules are live: a duplicated key and trailing spaces fail."""
        path = os.path.join(ds.temp_dir("xrayd-lint-"), "bad.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write("a: 1\na: 2\nb: 3   \n")
        proc = lint([path])
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("key-duplicates", proc.stdout)
        self.assertIn("trailing-spaces", proc.stdout)


if __name__ == "__main__":
    ds.main()
