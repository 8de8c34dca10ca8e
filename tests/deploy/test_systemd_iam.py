"""deploy/systemd (unit + /etc/amazon/xray/cfg.yaml) and deploy/iam (policy, IRSA trust policy, steps)."""
import json
import os
import re
import shlex
import string
import subprocess
import unittest

import yaml

import deploy_support as ds

HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes", "RestrictNamespaces": "yes", "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "", "AmbientCapabilities": "",
}


def parse_unit(text):
    """systemd unit → {section: {key: [values]}} (keys may repeat)."""
    sections, current = {}, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


class SystemdUnit(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.text = ds.read("deploy", "systemd", "xrayd.service")
        cls.unit = parse_unit(cls.text)
        cls.service = cls.unit["Service"]
        cls.exec_start = shlex.split(cls.service["ExecStart"][0])

    def test_command_line_is_valid(self):
        args = self.exec_start[1:]
        self.assertEqual(self.exec_start[0], "/usr/bin/xrayd")
        self.assertEqual(args[args.index("-c") + 1], "/etc/amazon/xray/cfg.yaml")
        args[args.index("-c") + 1] = ds.src("deploy", "systemd", "cfg.yaml")
        # Region as `systemctl edit xrayd` would give it (Environment=AWS_REGION=...).
        proc, effective = ds.check_config(args, env=ds.clean_env(AWS_REGION="us-east-1"))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        # As AWS's package: loopback listeners, log file under /var/log/xray.
        self.assertEqual(effective["Socket"], {"UDPAddress": "127.0.0.1:2000", "TCPAddress": "127.0.0.1:2000"})
        self.assertEqual(effective["Logging"]["LogPath"], "/var/log/xray/xray.log")
        self.assertEqual(effective["Xrayd"]["HealthAddress"], "127.0.0.1:2100")

    def test_directories_match_the_command_line(self):
        args = self.exec_start[1:]
        log_dir = os.path.dirname(args[args.index("-f") + 1])
        self.assertEqual(log_dir, "/var/log/" + self.service["LogsDirectory"][0])
        config_dir = os.path.dirname(args[args.index("-c") + 1])
        self.assertEqual(config_dir, "/etc/" + self.service["ConfigurationDirectory"][0])

    def test_hardening(self):
        for key, want in HARDENING.items():
            self.assertIn(key, self.service, key)
            self.assertEqual(self.service[key][-1], want, key)
        self.assertEqual(self.service["DynamicUser"], ["yes"])
        self.assertNotIn("root", self.service.get("User", []))
        families = self.service["RestrictAddressFamilies"][0].split()
        self.assertTrue({"AF_INET", "AF_INET6"} <= set(families))
        self.assertIn("@system-service", self.service["SystemCallFilter"])
        self.assertEqual(self.unit["Install"]["WantedBy"], ["multi-user.target"])
        self.assertIn("network-online.target", self.unit["Unit"]["After"][0])

    def unit_for_this_host(self):
        """The unit with ExecStart pointing at the built binary, for systemd-analyze."""
        d = ds.temp_dir("xrayd-unit-")
        path = os.path.join(d, "xrayd.service")
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.text.replace("ExecStart=/usr/bin/xrayd", "ExecStart=" + ds.xrayd_binary()))
        return path

    def test_systemd_analyze_verify(self):
        analyze = ds.which("systemd-analyze")
        if not analyze:
            self.skipTest("systemd-analyze not installed")
        proc = subprocess.run([analyze, "verify", self.unit_for_this_host()], capture_output=True, text=True,
                              timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertNotIn("Unknown key", proc.stderr)
        self.assertNotIn("Unknown section", proc.stderr)

    def test_systemd_analyze_security_score(self):
        analyze = ds.which("systemd-analyze")
        if not analyze:
            self.skipTest("systemd-analyze not installed")
        # --threshold is in tenths of the 0-10 exposure score: fail above 2.0 ("OK" is up to 4.9).
        proc = subprocess.run([analyze, "security", "--offline=yes", "--threshold=20", self.unit_for_this_host()],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stdout[-2000:] + proc.stderr)


class SystemdConfig(unittest.TestCase):
    def test_default_config_file_is_valid_and_strict(self):
        cfg = yaml.safe_load(ds.read("deploy", "systemd", "cfg.yaml"))
        self.assertEqual(cfg["Version"], 2)
        proc, effective = ds.check_config(["-c", ds.src("deploy", "systemd", "cfg.yaml")],
                                          env=ds.clean_env(AWS_REGION="eu-west-1"))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(effective["Region"], "eu-west-1")
        self.assertEqual(effective["Logging"]["LogLevel"], "prod")


class Iam(unittest.TestCase):
    WRITE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                     "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries"}

    def test_daemon_policy(self):
        policy = json.loads(ds.read("deploy", "iam", "xray-daemon-policy.json"))
        self.assertEqual(policy["Version"], "2012-10-17")
        (stmt,) = policy["Statement"]
        self.assertEqual(stmt["Effect"], "Allow")
        self.assertEqual(set(stmt["Action"]), self.WRITE_ACTIONS)
        self.assertEqual(stmt["Resource"], ["*"])

    def test_trust_policy_template(self):
        text = ds.read("deploy", "iam", "irsa-trust-policy.json")
        placeholders = set(re.findall(r"\$\{(\w+)\}", text))
        self.assertEqual(placeholders, {"AWS_ACCOUNT_ID", "OIDC_PROVIDER", "NAMESPACE", "SERVICE_ACCOUNT"})
        json.loads(text)  # valid JSON before substitution too
        # The ServiceAccount the chart creates for the article's release.
        _, docs = ds.render("-f", ds.src("tests", "deploy", "x-ray-values.yaml"))
        (sa_name,) = ds.by_kind(docs)["ServiceAccount"]
        oidc = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
        policy = json.loads(string.Template(text).substitute(
            AWS_ACCOUNT_ID="111122223333", OIDC_PROVIDER=oidc, NAMESPACE=ds.ARTICLE_NAMESPACE,
            SERVICE_ACCOUNT=sa_name))
        (stmt,) = policy["Statement"]
        self.assertEqual(stmt["Action"], "sts:AssumeRoleWithWebIdentity")
        self.assertEqual(stmt["Principal"]["Federated"], f"arn:aws:iam::111122223333:oidc-provider/{oidc}")
        self.assertEqual(stmt["Condition"]["StringEquals"], {
            f"{oidc}:aud": "sts.amazonaws.com",
            f"{oidc}:sub": "system:serviceaccount:ops-monitoring-ns:aws-xray",
        })

    def test_readme_sets_every_placeholder(self):
        readme = ds.read("deploy", "iam", "README.md")
        for name in ("AWS_ACCOUNT_ID", "OIDC_PROVIDER", "NAMESPACE", "SERVICE_ACCOUNT"):
            self.assertRegex(readme, rf"export [^\n]*\b{name}=")
        self.assertIn("envsubst < deploy/iam/irsa-trust-policy.json", readme)
        self.assertIn("file://deploy/iam/xray-daemon-policy.json", readme)


if __name__ == "__main__":
    ds.main()
