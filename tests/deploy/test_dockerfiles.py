"""deploy/docker/Dockerfile.{xrayd,hello}, checked without a Docker engine: the instructions are parsed, the
build stage's packages come from scripts/debian-packages.txt, the runtime stage installs every Debian package
whose shared library the built binary needs, and the image's ENTRYPOINT + CMD are run as
`xrayd ... --check-config` with the built binary."""
import json
import os
import re
import shlex
import shutil
import subprocess
import unittest

import deploy_support as ds

# In debian:bookworm-slim already (essential packages or dependencies of apt).
SLIM_BASE = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}


def parse_dockerfile(text):
    """Returns a list of stages: {"from": str, "name": str|None, "instr": [(KEYWORD, rest)]}."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped, as Docker does
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    assert not current, "Dockerfile ends inside a continued instruction"
    stages = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append({"from": words[0], "name": name, "instr": []})
            continue
        assert stages, f"{keyword} before FROM"
        stages[-1]["instr"].append((keyword, rest.strip()))
    return stages


def instructions(stage, keyword):
    return [rest for k, rest in stage["instr"] if k == keyword]


def apt_packages(stage):
    """Package names given to apt-get install in RUN instructions (literal words only)."""
    pkgs = []
    for run in instructions(stage, "RUN"):
        for cmd in re.split(r"&&|;", run):
            words = cmd.split()
            if words[:2] != ["apt-get", "install"]:
                continue
            for w in words[2:]:
                if w.startswith("-") or "$" in w or w.startswith("/") or ")" in w:
                    continue
                pkgs.append(w)
    return pkgs


def exec_form(value):
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(x, str) for x in parsed), value
    return parsed


def debian_packages():
    """scripts/debian-packages.txt: (build packages before '# test-only', test-only packages)."""
    build, test_only, in_test = [], [], False
    for line in ds.read("scripts", "debian-packages.txt").splitlines():
        if line.strip().lower().startswith("# test-only"):
            in_test = True
        name = line.split("#", 1)[0].strip()
        if name:
            (test_only if in_test else build).append(name)
    return build, test_only


def needed_packages(binary):
    """Debian packages providing the shared libraries `binary` links directly (ELF NEEDED)."""
    readelf = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf)
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    out = {}
    for lib in needed:
        path = paths.get(lib)
        assert path and path != "not", f"ldd cannot find {lib}"
        pkg = None
        for candidate in (path, os.path.realpath(path)):
            proc = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if proc.returncode == 0:
                pkg = proc.stdout.split(":", 1)[0].strip()
                break
        assert pkg, f"no Debian package owns {path} ({lib})"
        out[lib] = pkg
    return out


class DockerfileChecks:
    """Checks both Dockerfiles share; subclasses set NAME, TARGET, BINARY_PATH."""

    NAME = TARGET = BINARY_PATH = None

    @classmethod
    def setUpClass(cls):
        cls.text = ds.read("deploy", "docker", cls.NAME)
        cls.stages = parse_dockerfile(cls.text)
        cls.build, cls.runtime = cls.stages[0], cls.stages[-1]

    def test_two_stages_on_debian_12(self):
        self.assertEqual(len(self.stages), 2)
        self.assertEqual(self.build["from"], "debian:bookworm")
        self.assertEqual(self.build["name"], "build")
        self.assertEqual(self.runtime["from"], "debian:bookworm-slim")
        copies = instructions(self.runtime, "COPY")
        self.assertTrue(copies and all(c.startswith("--from=build ") for c in copies), copies)

    def test_build_stage_installs_the_listed_build_packages(self):
        build_pkgs, test_only = debian_packages()
        self.assertIn("build-essential", build_pkgs)
        self.assertTrue(test_only, "scripts/debian-packages.txt lost its '# test-only' section")
        # The RUN derives the list from the file: apply its sed to the file, as the build would.
        runs = " ".join(instructions(self.build, "RUN"))
        self.assertIn("/tmp/debian-packages.txt", runs)
        self.assertIn("scripts/debian-packages.txt /tmp/debian-packages.txt", instructions(self.build, "COPY"))
        sed = re.search(r"\$\((sed [^)]*)\)", runs).group(1)
        argv = shlex.split(sed)
        argv[-1] = ds.src("scripts", "debian-packages.txt")
        derived = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
        self.assertEqual(derived, build_pkgs)
        self.assertFalse(set(derived) & set(test_only))
        self.assertIn("--no-install-recommends", runs)
        self.assertIn("rm -rf /var/lib/apt/lists/*", runs)
        self.assertIn(f"--target {self.TARGET}", runs)
        self.assertIn("-DCMAKE_BUILD_TYPE=Release", runs)

    def test_runtime_stage_is_slim(self):
        pkgs = apt_packages(self.runtime)
        self.assertFalse([p for p in pkgs if p.endswith("-dev") or p in ("build-essential", "cmake", "gcc", "g++")])
        self.assertIn("ca-certificates", pkgs)
        runs = " ".join(instructions(self.runtime, "RUN"))
        self.assertIn("--no-install-recommends", runs)
        self.assertIn("rm -rf /var/lib/apt/lists/*", runs)

    def test_runs_as_a_non_root_user(self):
        (user,) = instructions(self.runtime, "USER")
        uid, _, gid = user.partition(":")
        self.assertTrue(uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid (runAsNonRoot checks it)")
        self.assertTrue(gid.isdigit() and int(gid) != 0)
        runs = " ".join(instructions(self.runtime, "RUN"))
        self.assertIn(f"--uid {uid}", runs)

    def healthcheck_cmd(self):
        (health,) = instructions(self.runtime, "HEALTHCHECK")
        return exec_form(health[health.index("CMD") + 3:].strip())

    def test_healthcheck_uses_an_installed_client(self):
        # debian:bookworm-slim has no HTTP client: the image installs curl for this.
        self.assertIn(self.healthcheck_cmd()[0], apt_packages(self.runtime), "the HEALTHCHECK's program must be installed")

    def test_entrypoint_binary_is_what_the_build_installs(self):
        entry = exec_form(instructions(self.runtime, "ENTRYPOINT")[0])
        self.assertEqual(entry[0], self.BINARY_PATH)
        self.assertIn(f"/out{self.BINARY_PATH}", " ".join(instructions(self.build, "RUN")))

    def test_dockerignore_keeps_build_trees_out(self):
        ignore = ds.read("deploy", "docker", self.NAME + ".dockerignore").split()
        for entry in (".git", "build", "build-*", "**/node_modules"):
            self.assertIn(entry, ignore)

    def check_needed_libraries(self, binary):
        runtime = set(apt_packages(self.runtime)) | SLIM_BASE
        missing = {lib: pkg for lib, pkg in needed_packages(binary).items() if pkg not in runtime}
        self.assertEqual(missing, {}, f"{self.NAME}: add these packages to the runtime stage")


class XraydImage(DockerfileChecks, unittest.TestCase):
    NAME, TARGET, BINARY_PATH = "Dockerfile.xrayd", "xrayd", "/usr/bin/xrayd"

    def entrypoint_and_cmd(self):
        entry = exec_form(instructions(self.runtime, "ENTRYPOINT")[0])
        cmds = instructions(self.runtime, "CMD")
        return entry, (exec_form(cmds[0]) if cmds else [])

    def image_workdir(self):
        """A directory standing in for the image's filesystem: its /etc/amazon/xray/cfg.yaml (the default
        config file, read leniently) is deploy/systemd/cfg.yaml; xrayd also reads ./cfg.yaml."""
        runs = " ".join(instructions(self.build, "RUN"))
        self.assertIn("/src/deploy/systemd/cfg.yaml /out/etc/amazon/xray/cfg.yaml", runs)
        workdir = ds.temp_dir("xrayd-image-")
        shutil.copy(ds.src("deploy", "systemd", "cfg.yaml"), os.path.join(workdir, "cfg.yaml"))
        return workdir

    def test_ports(self):
        exposed = " ".join(instructions(self.runtime, "EXPOSE")).split()
        self.assertIn("2000/udp", exposed)
        self.assertIn("2000/tcp", exposed)

    def test_entrypoint_matches_aws_image(self):
        # AWS's image: ENTRYPOINT ["/xray", "-t", "0.0.0.0:2000", "-b", "0.0.0.0:2000"], no CMD.
        entry, cmd = self.entrypoint_and_cmd()
        self.assertEqual(entry[1:5], ["-t", "0.0.0.0:2000", "-b", "0.0.0.0:2000"])
        self.assertEqual(cmd, [])
        runs = " ".join(instructions(self.build, "RUN"))
        self.assertIn("ln -s /usr/bin/xrayd /out/xray", runs)  # the community chart runs /xray
        self.assertIn("ln -s /usr/bin/xrayd /out/usr/bin/xray", runs)

    def test_default_command_line_is_valid(self):
        entry, cmd = self.entrypoint_and_cmd()
        args = entry[1:] + cmd
        if ds.host_has_default_config():
            args = ["-c", os.path.join(self.image_workdir(), "cfg.yaml")] + args
        # The region: `docker run -e AWS_REGION=...` (xrayd has no instance-metadata lookup yet).
        proc, effective = ds.check_config(args, env=ds.clean_env(AWS_REGION="us-east-1"), cwd=self.image_workdir())
        self.assertEqual(proc.returncode, 0, f"xrayd {' '.join(args)} --check-config:\n{proc.stderr}")
        self.assertEqual(effective["Socket"], {"UDPAddress": "0.0.0.0:2000", "TCPAddress": "0.0.0.0:2000"})
        self.assertEqual(effective["Xrayd"]["HealthAddress"], "127.0.0.1:2100")

    def test_aws_style_docker_run_arguments(self):
        # docker run IMAGE -o -n eu-west-1 (AWS's documented local run) appends to the ENTRYPOINT.
        entry, _ = self.entrypoint_and_cmd()
        args = entry[1:] + ["-o", "-n", "eu-west-1", "--health-address", "0.0.0.0:2100"]
        proc, effective = ds.check_config(args, env=ds.clean_env(), cwd=self.image_workdir())
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(effective["Region"], "eu-west-1")
        self.assertTrue(effective["LocalMode"])
        self.assertEqual(effective["Xrayd"]["HealthAddress"], "0.0.0.0:2100")  # the later flag wins

    def test_healthcheck_probes_the_health_address(self):
        cmd = self.healthcheck_cmd()
        url = cmd[-1]
        entry, _ = self.entrypoint_and_cmd()
        health = entry[entry.index("--health-address") + 1]
        self.assertEqual(url, f"http://{health}/healthz")
        self.assertIn("-f", " ".join(cmd[1:-1]), "curl must fail on HTTP errors")

    def test_runtime_has_every_library_xrayd_links(self):
        self.check_needed_libraries(ds.xrayd_binary())

    def test_chart_runs_the_image_binary(self):
        chart = ds.read("deploy", "helm", "xrayd", "templates", "daemonset.yaml")
        self.assertIn(f'command: ["{self.BINARY_PATH}"]', chart)


class HelloImage(DockerfileChecks, unittest.TestCase):
    NAME, TARGET, BINARY_PATH = "Dockerfile.hello", "hello", "/usr/bin/hello"

    def test_port_matches_the_k8s_manifests(self):
        exposed = " ".join(instructions(self.runtime, "EXPOSE")).split()
        self.assertEqual(exposed, ["5000/tcp"])
        (health,) = instructions(self.runtime, "HEALTHCHECK")
        self.assertIn("http://127.0.0.1:5000/", health)

    def test_builds_from_examples_hello(self):
        self.assertIn("examples/hello", self.text)

    def test_runtime_has_every_library_hello_links(self):
        if not ds.ARGS.hello:
            self.skipTest("no `hello` target yet (examples/hello, issue 6): its libraries are not checked")
        self.check_needed_libraries(ds.ARGS.hello)


if __name__ == "__main__":
    ds.main()
