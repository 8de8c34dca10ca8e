"""The chart deploy/helm/xrayd, rendered with helm-lite: the article's values file gives the objects the article
shows, the community chart's keys are honoured, every mode renders, and the daemon accepts the exact command
line and config file the DaemonSet would run (xrayd --check-config)."""
import os
import posixpath
import unittest

import yaml

import deploy_support as ds
from deploy_support import by_kind, render

ARTICLE_VALUES = ("tests", "deploy", "x-ray-values.yaml")
CHART_VALUES = ds.CHART + ("values.yaml",)

# Every key of the community chart okgolove/aws-xray 5.0.0's values.yaml (the article's chart), and the
# keys the issue asks for: a values file written for that chart must mean the same here.
COMMUNITY_KEYS = [
    "image.repository", "image.tag", "image.pullPolicy", "imagePullSecrets", "nameOverride", "fullnameOverride",
    "priorityClassName", "serviceAccount.create", "serviceAccount.annotations", "serviceAccount.name",
    "podAnnotations", "podSecurityContext", "securityContext", "xray.region", "xray.loglevel", "xray.roleArn",
    "xray.containerPort", "service.port", "resources", "nodeSelector", "tolerations", "affinity",
]
ISSUE_KEYS = ["hostNetwork", "updateStrategy", "mode", "serviceMonitor.enabled", "server.enabled",
              "server.persistence.size", "health.port"]
LOG_LEVELS = ["dev", "debug", "info", "warn", "error", "prod"]


def daemonset_container(ds_obj):
    containers = ds_obj["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, containers
    return containers[0]


def run_daemonset_check(test, kinds, env=None, expect_ok=True):
    """Runs the DaemonSet's command line with --check-config, its -c file being the rendered ConfigMap's
    file, exactly as the pod would see it. Returns (proc, effective config)."""
    (daemonset,) = kinds["DaemonSet"].values()
    container = daemonset_container(daemonset)
    args = list(container["args"])
    test.assertEqual(container["command"], ["/usr/bin/xrayd"])
    config_path = args[args.index("-c") + 1]
    mount_dir, file_name = posixpath.split(config_path)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    test.assertIn(mount_dir, mounts, "the -c file's directory is not mounted")
    volumes = {v["name"]: v for v in daemonset["spec"]["template"]["spec"]["volumes"]}
    cm_name = volumes[mounts[mount_dir]]["configMap"]["name"]
    cm = kinds["ConfigMap"][cm_name]
    test.assertIn(file_name, cm["data"], f"ConfigMap {cm_name} has no {file_name}")
    workdir = ds.temp_dir("xrayd-chart-")
    local_cfg = os.path.join(workdir, file_name)
    with open(local_cfg, "w", encoding="utf-8") as f:
        f.write(cm["data"][file_name])
    args[args.index("-c") + 1] = local_cfg
    proc, effective = ds.check_config(args, env=env, cwd=workdir)
    if expect_ok:
        test.assertEqual(proc.returncode, 0, f"xrayd {' '.join(args)} --check-config:\n{proc.stderr}")
    return proc, effective


class ArticleValues(unittest.TestCase):
    """helm -n ops-monitoring-ns install aws-xray ... -f x-ray-values.yaml, as in the article."""

    @classmethod
    def setUpClass(cls):
        cls.values = yaml.safe_load(ds.read(*ARTICLE_VALUES))
        _, docs = render("-f", ds.src(*ARTICLE_VALUES))
        cls.docs = docs
        cls.kinds = by_kind(docs)

    def test_objects(self):
        self.assertEqual(sorted(self.kinds), ["ConfigMap", "DaemonSet", "Service", "ServiceAccount"])
        self.assertEqual(list(self.kinds["DaemonSet"]), ["aws-xray"])
        self.assertEqual(list(self.kinds["Service"]), ["aws-xray"])
        self.assertEqual(list(self.kinds["ServiceAccount"]), ["aws-xray"])

    def test_service_is_headless_udp_and_tcp_2000(self):
        # kubectl get svc: aws-xray  ClusterIP  None  <none>  2000/UDP,2000/TCP
        svc = self.kinds["Service"]["aws-xray"]
        self.assertEqual(svc["spec"]["clusterIP"], "None")
        self.assertEqual(svc["spec"].get("type", "ClusterIP"), "ClusterIP")
        self.assertEqual([(p["port"], p["protocol"]) for p in svc["spec"]["ports"]], [(2000, "UDP"), (2000, "TCP")])
        self.assertEqual(svc["metadata"]["labels"]["app.kubernetes.io/name"], "aws-xray")

    def test_service_selects_the_daemon_pods(self):
        svc = self.kinds["Service"]["aws-xray"]
        daemonset = self.kinds["DaemonSet"]["aws-xray"]
        pod_labels = daemonset["spec"]["template"]["metadata"]["labels"]
        self.assertLessEqual(svc["spec"]["selector"].items(), pod_labels.items())
        self.assertLessEqual(daemonset["spec"]["selector"]["matchLabels"].items(), pod_labels.items())
        # kubectl get pod -l app.kubernetes.io/name=aws-xray, as in the article
        self.assertEqual(pod_labels["app.kubernetes.io/name"], "aws-xray")
        # The community chart's selector, unchanged: helm upgrade from it keeps the immutable field.
        self.assertEqual(daemonset["spec"]["selector"]["matchLabels"],
                         {"app.kubernetes.io/name": "aws-xray", "app.kubernetes.io/instance": "aws-xray"})
        container_ports = {(p["containerPort"], p["protocol"]): p for p in daemonset_container(daemonset)["ports"]}
        for port in svc["spec"]["ports"]:
            self.assertIn((port["targetPort"], port["protocol"]), container_ports)

    def test_service_account_carries_the_role_arn(self):
        sa = self.kinds["ServiceAccount"]["aws-xray"]
        want = self.values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
        self.assertEqual(sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"], want)
        pod = self.kinds["DaemonSet"]["aws-xray"]["spec"]["template"]["spec"]
        self.assertEqual(pod["serviceAccountName"], "aws-xray")

    def test_config_file_has_region_and_log_level(self):
        cfg = yaml.safe_load(self.kinds["ConfigMap"]["aws-xray-config"]["data"]["cfg.yaml"])
        self.assertEqual(cfg["Version"], 2)
        self.assertEqual(cfg["Region"], "us-east-1")
        self.assertEqual(cfg["Logging"]["LogLevel"], "prod")
        self.assertEqual(cfg["Socket"], {"UDPAddress": "0.0.0.0:2000", "TCPAddress": "0.0.0.0:2000"})

    def test_daemon_accepts_the_rendered_command_line(self):
        # No AWS_REGION in the environment: the region must come from the values file.
        _, effective = run_daemonset_check(self, self.kinds)
        self.assertEqual(effective["Region"], "us-east-1")
        self.assertEqual(effective["Logging"]["LogLevel"], "prod")
        self.assertEqual(effective["Socket"]["UDPAddress"], "0.0.0.0:2000")
        self.assertEqual(effective["Socket"]["TCPAddress"], "0.0.0.0:2000")
        self.assertEqual(effective["Endpoint"], "")
        self.assertEqual(effective["Xrayd"]["HealthAddress"], "0.0.0.0:2100")

    def test_probes_hit_the_health_server(self):
        container = daemonset_container(self.kinds["DaemonSet"]["aws-xray"])
        args = container["args"]
        health_port = int(args[args.index("--health-address") + 1].rsplit(":", 1)[1])
        self.assertTrue(args[args.index("--health-address") + 1].startswith("0.0.0.0:"),
                        "kubelet probes the pod IP: the health server must not listen on loopback only")
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = container[probe]["httpGet"]
            self.assertEqual(get["path"], path)
            port = named[get["port"]] if isinstance(get["port"], str) else get["port"]
            self.assertEqual(port, health_port, probe)

    def test_pod_hardening(self):
        daemonset = self.kinds["DaemonSet"]["aws-xray"]
        pod = daemonset["spec"]["template"]["spec"]
        sc = daemonset_container(daemonset)["securityContext"]
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertNotEqual(pod["securityContext"]["runAsUser"], 0)
        self.assertFalse(pod["automountServiceAccountToken"])
        # As the community chart: host network, ports on the node.
        self.assertTrue(pod["hostNetwork"])
        self.assertEqual(pod["dnsPolicy"], "ClusterFirstWithHostNet")
        for port in daemonset_container(daemonset)["ports"][:2]:
            self.assertEqual(port["hostPort"], 2000)

    def test_config_change_rolls_the_pods(self):
        annotations = self.kinds["DaemonSet"]["aws-xray"]["spec"]["template"]["metadata"]["annotations"]
        _, other = render("-f", ds.src(*ARTICLE_VALUES), "--set", "xray.loglevel=debug")
        other_annotations = by_kind(other)["DaemonSet"]["aws-xray"]["spec"]["template"]["metadata"]["annotations"]
        self.assertNotEqual(annotations["checksum/config"], other_annotations["checksum/config"])


class Defaults(unittest.TestCase):
    def test_defaults_render_and_run_given_a_region_from_the_environment(self):
        _, docs = render(release="xrayd", namespace="default")
        kinds = by_kind(docs)
        self.assertEqual(sorted(kinds), ["ConfigMap", "DaemonSet", "Service", "ServiceAccount"])
        self.assertEqual(list(kinds["Service"]), ["xrayd"])
        self.assertNotIn("annotations", kinds["ServiceAccount"]["xrayd"]["metadata"])
        cfg = yaml.safe_load(kinds["ConfigMap"]["xrayd-config"]["data"]["cfg.yaml"])
        self.assertEqual(cfg["Region"], "")
        # With IRSA the EKS webhook sets AWS_REGION; xrayd has no instance-metadata lookup yet (issue 4).
        _, effective = run_daemonset_check(self, kinds, env=ds.clean_env(AWS_REGION="eu-west-1"))
        self.assertEqual(effective["Region"], "eu-west-1")
        self.assertEqual(effective["Logging"]["LogLevel"], "prod")

    def test_values_keep_the_community_chart_keys(self):
        values = yaml.safe_load(ds.read(*CHART_VALUES))
        for key in COMMUNITY_KEYS + ISSUE_KEYS:
            node = values
            for part in key.split("."):
                self.assertIsInstance(node, dict, key)
                self.assertIn(part, node, f"values.yaml has no {key}")
                node = node[part]

    def test_every_log_level_renders_and_runs(self):
        for level in LOG_LEVELS:
            with self.subTest(level=level):
                _, docs = render("-f", ds.src(*ARTICLE_VALUES), "--set", f"xray.loglevel={level}")
                _, effective = run_daemonset_check(self, by_kind(docs))
                self.assertEqual(effective["Logging"]["LogLevel"], level)

    def test_schema_refuses_bad_values(self):
        for setting, needle in (("xray.loglevel=verbose", "loglevel"), ("mode=cloud", "mode"),
                                ("xray.containerPort=70000", "containerPort")):
            with self.subTest(setting=setting):
                proc, _ = render("--set", setting, check=False)
                self.assertNotEqual(proc.returncode, 0, setting)
                self.assertIn(needle, proc.stderr)



class CommunityValues(unittest.TestCase):
    """A values file using every key of the community chart, with non-default values."""

    VALUES = {
        "image": {"repository": "registry.example/xrayd", "tag": "1.2.3", "pullPolicy": "Always",
                  "pullSecrets": "legacy-secret"},
        "imagePullSecrets": [{"name": "regcred"}],
        "priorityClassName": "system-node-critical",
        "serviceAccount": {"create": False, "name": "xray-sa"},
        "podAnnotations": {"example.com/team": "ops"},
        "podSecurityContext": {"fsGroup": 10001},
        "securityContext": {"runAsUser": 10001},
        "xray": {"region": "eu-central-1", "loglevel": "warn", "roleArn": "arn:aws:iam::111122223333:role/x",
                 "containerPort": 2005},
        "service": {"port": 2001},
        "resources": {"limits": {"memory": "256Mi"}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"operator": "Exists"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
    }

    @classmethod
    def setUpClass(cls):
        path = os.path.join(ds.temp_dir("xrayd-values-"), "community.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(cls.VALUES, f)
        _, docs = render("-f", path)
        cls.kinds = by_kind(docs)

    def test_keys_land_where_the_community_chart_puts_them(self):
        v = self.VALUES
        self.assertNotIn("ServiceAccount", self.kinds)
        daemonset = self.kinds["DaemonSet"]["aws-xray"]
        pod = daemonset["spec"]["template"]["spec"]
        container = daemonset_container(daemonset)
        self.assertEqual(container["image"], "registry.example/xrayd:1.2.3")
        self.assertEqual(container["imagePullPolicy"], "Always")
        self.assertEqual(pod["imagePullSecrets"], [{"name": "regcred"}, {"name": "legacy-secret"}])
        self.assertEqual(pod["serviceAccountName"], "xray-sa")
        self.assertEqual(pod["priorityClassName"], "system-node-critical")
        self.assertEqual(daemonset["spec"]["template"]["metadata"]["annotations"]["example.com/team"], "ops")
        self.assertEqual(pod["securityContext"]["fsGroup"], 10001)
        self.assertEqual(container["securityContext"]["runAsUser"], 10001)
        self.assertEqual(container["resources"], v["resources"])
        self.assertEqual(pod["nodeSelector"], v["nodeSelector"])
        self.assertEqual(pod["tolerations"], v["tolerations"])
        self.assertEqual(pod["affinity"], v["affinity"])
        ports = {(p["containerPort"], p["protocol"]): p for p in container["ports"]}
        self.assertEqual(ports[(2005, "UDP")]["hostPort"], 2005)
        self.assertEqual(ports[(2005, "TCP")]["hostPort"], 2005)
        svc = self.kinds["Service"]["aws-xray"]
        self.assertEqual([(p["port"], p["targetPort"], p["protocol"]) for p in svc["spec"]["ports"]],
                         [(2001, 2005, "UDP"), (2001, 2005, "TCP")])

    def test_daemon_sees_region_level_role_and_port(self):
        _, effective = run_daemonset_check(self, self.kinds)
        self.assertEqual(effective["Region"], "eu-central-1")
        self.assertEqual(effective["Logging"]["LogLevel"], "warn")
        self.assertEqual(effective["RoleARN"], "arn:aws:iam::111122223333:role/x")
        self.assertEqual(effective["Socket"]["UDPAddress"], "0.0.0.0:2005")


class Modes(unittest.TestCase):
    def test_local_mode_adds_the_server_and_points_the_daemons_at_it(self):
        _, docs = render("-f", ds.src(*ARTICLE_VALUES), "--set", "mode=local")
        kinds = by_kind(docs)
        self.assertEqual(sorted(kinds), ["ConfigMap", "DaemonSet", "Deployment", "PersistentVolumeClaim", "Service",
                                         "ServiceAccount"])
        self.assertEqual(sorted(kinds["Service"]), ["aws-xray", "aws-xray-server"])
        server = kinds["Deployment"]["aws-xray-server"]
        self.assertEqual(server["spec"]["strategy"]["type"], "Recreate")
        container = server["spec"]["template"]["spec"]["containers"][0]
        args = container["args"]
        self.assertEqual(args[:5], ["serve", "--data-dir", "/data", "--listen", "0.0.0.0:2020"])
        self.assertEqual(container["command"], ["/usr/bin/xrayd"])
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        self.assertEqual(mounts, {"/data": "data", "/tmp": "tmp"})
        self.assertTrue(container["securityContext"]["readOnlyRootFilesystem"])
        health_port = int(args[args.index("--health-address") + 1].rsplit(":", 1)[1])
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        self.assertEqual(named["http"], 2020)
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            self.assertEqual(container[probe]["httpGet"]["path"], path)
            self.assertEqual(named[container[probe]["httpGet"]["port"]], health_port)
        # The server accepts its command line. (AWS_REGION: `serve --check-config` still resolves the
        # X-Ray endpoint it does not use; `xrayd serve` itself needs no region.)
        data_dir = ds.temp_dir("xrayd-serve-data-")
        serve_args = list(args)
        serve_args[serve_args.index("--data-dir") + 1] = data_dir
        proc, effective = ds.check_config(serve_args, env=ds.clean_env(AWS_REGION="us-east-1"))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(effective["Xrayd"]["HealthAddress"], "0.0.0.0:2100")
        volumes = {v["name"]: v for v in server["spec"]["template"]["spec"]["volumes"]}
        claim = volumes["data"]["persistentVolumeClaim"]["claimName"]
        self.assertEqual(claim, "aws-xray-server-data")
        pvc = kinds["PersistentVolumeClaim"][claim]
        self.assertEqual(pvc["spec"]["accessModes"], ["ReadWriteOnce"])
        self.assertEqual(pvc["spec"]["resources"]["requests"]["storage"], "10Gi")
        # Each Service selects its own pods only.
        server_labels = server["spec"]["template"]["metadata"]["labels"]
        daemon_labels = kinds["DaemonSet"]["aws-xray"]["spec"]["template"]["metadata"]["labels"]
        server_svc = kinds["Service"]["aws-xray-server"]
        self.assertLessEqual(server_svc["spec"]["selector"].items(), server_labels.items())
        self.assertFalse(server_svc["spec"]["selector"].items() <= daemon_labels.items())
        self.assertFalse(kinds["Service"]["aws-xray"]["spec"]["selector"].items() <= server_labels.items())
        self.assertFalse(kinds["DaemonSet"]["aws-xray"]["spec"]["selector"]["matchLabels"].items()
                         <= server_labels.items())
        self.assertEqual(server_svc["spec"]["ports"][0]["port"], 2020)
        # The daemons upload to the server; no AWS credentials or region needed.
        want = "http://aws-xray-server.ops-monitoring-ns.svc.cluster.local:2020"
        _, effective = run_daemonset_check(self, kinds)
        self.assertEqual(effective["Endpoint"], want)

    def test_server_without_persistence_uses_empty_dir(self):
        _, docs = render("--set", "server.enabled=true", "--set", "server.persistence.enabled=false")
        kinds = by_kind(docs)
        self.assertNotIn("PersistentVolumeClaim", kinds)
        volumes = kinds["Deployment"]["aws-xray-server"]["spec"]["template"]["spec"]["volumes"]
        self.assertEqual(volumes[0], {"name": "data", "emptyDir": {}})
        # mode stays aws: the daemons still upload to X-Ray.
        cfg = yaml.safe_load(kinds["ConfigMap"]["aws-xray-config"]["data"]["cfg.yaml"])
        self.assertEqual(cfg["Endpoint"], "")

    def test_otlp_mode_needs_an_endpoint(self):
        proc, _ = render("--set", "mode=otlp", check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("otlp.endpoint", proc.stderr)

    def test_otlp_mode_renders_the_exporter_setting(self):
        _, docs = render("-f", ds.src(*ARTICLE_VALUES), "--set", "mode=otlp",
                         "--set", "otlp.endpoint=http://tempo.monitoring:4318")
        kinds = by_kind(docs)
        cfg = yaml.safe_load(kinds["ConfigMap"]["aws-xray-config"]["data"]["cfg.yaml"])
        self.assertEqual(cfg["Xrayd"]["OtlpEndpoint"], "http://tempo.monitoring:4318")
        proc, _ = run_daemonset_check(self, kinds, expect_ok=False)
        if proc.returncode == 0:
            print("note: xrayd now accepts Xrayd.OtlpEndpoint; update the chart's docs on mode otlp")
        else:
            # Documented gap: the OTLP exporter is a later issue, and the daemon names the key it refuses.
            self.assertIn("OtlpEndpoint", proc.stderr)

    def test_service_monitor(self):
        _, docs = render("-f", ds.src(*ARTICLE_VALUES), "--set", "serviceMonitor.enabled=true",
                         "--api-versions", "monitoring.coreos.com/v1")
        kinds = by_kind(docs)
        monitor = kinds["ServiceMonitor"]["aws-xray"]
        svc = kinds["Service"]["aws-xray"]
        self.assertLessEqual(monitor["spec"]["selector"]["matchLabels"].items(), svc["metadata"]["labels"].items())
        (endpoint,) = monitor["spec"]["endpoints"]
        self.assertEqual(endpoint["path"], "/metrics")
        ports = {p["name"]: p for p in svc["spec"]["ports"]}
        self.assertEqual(ports[endpoint["port"]]["port"], 2100)
        self.assertEqual(ports[endpoint["port"]]["targetPort"], "health")
        # The Service still lists 2000/UDP and 2000/TCP first.
        self.assertEqual([(p["port"], p["protocol"]) for p in svc["spec"]["ports"][:2]], [(2000, "UDP"), (2000, "TCP")])

    def test_without_host_network(self):
        _, docs = render("-f", ds.src(*ARTICLE_VALUES), "--set", "hostNetwork=false")
        pod = by_kind(docs)["DaemonSet"]["aws-xray"]["spec"]["template"]["spec"]
        self.assertFalse(pod["hostNetwork"])
        self.assertNotIn("dnsPolicy", pod)

    def test_update_strategy(self):
        _, docs = render("--set", "updateStrategy.rollingUpdate.maxUnavailable=25%")
        strategy = by_kind(docs)["DaemonSet"]["aws-xray"]["spec"]["updateStrategy"]
        self.assertEqual(strategy, {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}})

    def test_extra_args_reach_the_daemon(self):
        _, docs = render("-f", ds.src(*ARTICLE_VALUES), "--set-json", 'xray.extraArgs=["--request-timeout","10"]',
                         "--set", "xray.bufferMemoryMB=64")
        _, effective = run_daemonset_check(self, by_kind(docs))
        self.assertEqual(effective["Xrayd"]["RequestTimeoutSeconds"], 10)
        self.assertEqual(effective["TotalBufferSizeMB"], 64)


if __name__ == "__main__":
    ds.main()
