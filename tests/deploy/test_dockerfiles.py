"""deploy/docker/Dockerfile.{xrayd,hello}, checked without a Docker engine: the instructions are parsed, the
build stage's packages come from scripts/debian-packages.txt, the runtime stage is FROM scratch plus the tree
scripts/image_rootfs.sh assembles (checked here to hold every shared library the built binary needs; the tree
itself runs under chroot in tests/e2e/test_image.py), and the image's ENTRYPOINT + CMD are run as
`xrayd ... --check-config` with the built binary."""
import json
import os
import re
import shlex
import shutil
import subprocess
import unittest

import deploy_support as ds

ROOTFS_SCRIPT = "scripts/image_rootfs.sh"


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
        self.assertEqual(self.runtime["from"], "scratch")
        self.assertEqual(instructions(self.runtime, "COPY"), ["--from=build /rootfs/ /"])
        self.assertEqual(instructions(self.runtime, "RUN"), [], "a scratch image has no shell to RUN")

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
        self.assertIn("ca-certificates", apt_packages(self.build), "the CA bundle the rootfs script copies")

    def rootfs_command(self):
        """The build stage's `sh /src/scripts/image_rootfs.sh [--hello] BINARY /rootfs`, as words."""
        runs = " ".join(instructions(self.build, "RUN"))
        m = re.search(r"sh /src/" + re.escape(ROOTFS_SCRIPT) + r" ([^&]*?)\s*(?:&&|$)", runs)
        self.assertTrue(m, f"the build stage must assemble /rootfs with {ROOTFS_SCRIPT}")
        words = m.group(1).split()
        self.assertEqual(words[-1], "/rootfs")
        return words

    _rootfs = {}  # binary -> assembled tree, built once per run

    def assemble_rootfs(self, binary):
        words = self.rootfs_command()
        if binary in self._rootfs:
            return self._rootfs[binary]
        root = os.path.join(ds.temp_dir("xrayd-rootfs-"), "rootfs")
        args = ["sh", ds.src(*ROOTFS_SCRIPT.split("/"))] + (["--hello"] if "--hello" in words else []) + [binary, root]
        subprocess.run(args, check=True, capture_output=True)
        self._rootfs[binary] = root
        return root

    def test_runs_as_a_non_root_user(self):
        (user,) = instructions(self.runtime, "USER")
        uid, _, gid = user.partition(":")
        self.assertTrue(uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid (runAsNonRoot checks it)")
        self.assertTrue(gid.isdigit() and int(gid) != 0)
        script = ds.read(*ROOTFS_SCRIPT.split("/"))
        self.assertIn(f":x:{uid}:{gid}:", script, "the rootfs script writes the user's passwd entry")

    def healthcheck_cmd(self):
        (health,) = instructions(self.runtime, "HEALTHCHECK")
        return exec_form(health[health.index("CMD") + 3:].strip())

    def test_entrypoint_binary_is_what_the_build_installs(self):
        entry = exec_form(instructions(self.runtime, "ENTRYPOINT")[0])
        self.assertEqual(entry[0], self.BINARY_PATH)
        self.assertTrue(os.path.isfile(os.path.join(self.assemble_rootfs(self.binary()), self.BINARY_PATH.lstrip("/"))))

    def test_dockerignore_keeps_build_trees_out(self):
        ignore = ds.read("deploy", "docker", self.NAME + ".dockerignore").split()
        for entry in (".git", "build", "build-*", "**/node_modules"):
            self.assertIn(entry, ignore)

    def check_needed_libraries(self, binary):
        """Every shared library the binary needs (ELF NEEDED, and the loader) is in the assembled tree."""
        root = self.assemble_rootfs(binary)
        if subprocess.run(["ldd", binary], capture_output=True).returncode != 0:  # static (the release build)
            self.assertFalse(os.path.exists(os.path.join(root, "lib")), f"{self.NAME}: libraries for a static binary")
            return
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        paths = re.findall(r"=> (/\S+)", ldd) + re.findall(r"^\s*(/\S*ld-linux\S*)", ldd, re.M)
        self.assertTrue(set(needed_packages(binary)) <= {os.path.basename(p) for p in paths})
        missing = [p for p in paths if not os.path.isfile(os.path.join(root, p.lstrip("/")))]
        self.assertEqual(missing, [], f"{self.NAME}: the rootfs lacks these libraries")


class XraydImage(DockerfileChecks, unittest.TestCase):
    NAME, TARGET, BINARY_PATH = "Dockerfile.xrayd", "xrayd", "/usr/bin/xrayd"

    def binary(self):
        return ds.xrayd_binary()

    def test_release_build(self):
        self.assertIn("-DXRAYD_STATIC=ON", " ".join(instructions(self.build, "RUN")))

    def entrypoint_and_cmd(self):
        entry = exec_form(instructions(self.runtime, "ENTRYPOINT")[0])
        cmds = instructions(self.runtime, "CMD")
        return entry, (exec_form(cmds[0]) if cmds else [])

    def image_workdir(self):
        """A directory standing in for the image's filesystem: its /etc/amazon/xray/cfg.yaml (the default
        config file, read leniently) is deploy/systemd/cfg.yaml; xrayd also reads ./cfg.yaml."""
        root = self.assemble_rootfs(ds.xrayd_binary())
        with open(os.path.join(root, "etc", "amazon", "xray", "cfg.yaml")) as f:
            self.assertEqual(f.read(), ds.read("deploy", "systemd", "cfg.yaml"))
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
        root = self.assemble_rootfs(ds.xrayd_binary())
        for link in ("xray", "usr/bin/xray"):  # the community chart runs /xray; AWS's package /usr/bin/xray
            path = os.path.join(root, link)
            self.assertTrue(os.path.islink(path) and os.path.samefile(path, os.path.join(root, "usr/bin/xrayd")), link)

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
        # `xrayd healthcheck` without --address probes the image's cfg.yaml's Xrayd.HealthAddress, else
        # 127.0.0.1:2100 (src/cli/healthcheck.h): either must be the ENTRYPOINT's health address.
        self.assertEqual(self.healthcheck_cmd(), [self.BINARY_PATH, "healthcheck"])
        entry, _ = self.entrypoint_and_cmd()
        self.assertEqual(entry[entry.index("--health-address") + 1], "127.0.0.1:2100")
        m = re.search(r"^\s*HealthAddress:\s*\"?([^\"\s]+)", ds.read("deploy", "systemd", "cfg.yaml"), re.M)
        self.assertEqual(m.group(1) if m else "127.0.0.1:2100", "127.0.0.1:2100")

    def test_runtime_has_every_library_xrayd_links(self):
        self.check_needed_libraries(ds.xrayd_binary())

    def test_chart_runs_the_image_binary(self):
        chart = ds.read("deploy", "helm", "xrayd", "templates", "daemonset.yaml")
        self.assertIn(f'command: ["{self.BINARY_PATH}"]', chart)


class HelloImage(DockerfileChecks, unittest.TestCase):
    NAME, TARGET, BINARY_PATH = "Dockerfile.hello", "hello", "/usr/bin/hello"

    def binary(self):
        if not ds.ARGS.hello:
            self.skipTest("no `hello` target in this build")
        return ds.ARGS.hello

    def test_port_matches_the_k8s_manifests(self):
        exposed = " ".join(instructions(self.runtime, "EXPOSE")).split()
        self.assertEqual(exposed, ["5000/tcp"])
        self.assertEqual(instructions(self.runtime, "HEALTHCHECK"), [], "nothing in the image could run a probe")

    def test_builds_from_examples_hello(self):
        self.assertIn("examples/hello", self.text)

    def test_runtime_has_every_library_hello_links(self):
        if not ds.ARGS.hello:
            self.skipTest("no `hello` target yet (examples/hello, issue 6): its libraries are not checked")
        self.check_needed_libraries(ds.ARGS.hello)


if __name__ == "__main__":
    ds.main()
