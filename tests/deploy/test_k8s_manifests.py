"""deploy/k8s: the article's app (Deployment, Service, ALB Ingress) and its kustomization, parsed and
cross-checked against each other and against the Service the chart renders for the article's release."""
import os
import subprocess
import unittest

import yaml

import deploy_support as ds
from deploy_support import by_kind

K8S = ("deploy", "k8s")

# The article's Ingress annotations, verbatim.
ARTICLE_INGRESS_ANNOTATIONS = {
    "alb.ingress.kubernetes.io/scheme": "internet-facing",
    "alb.ingress.kubernetes.io/target-type": "ip",
    "alb.ingress.kubernetes.io/listen-ports": '[{"HTTP": 80}]',
    "alb.ingress.kubernetes.io/load-balancer-attributes":
        "access_logs.s3.enabled=true,access_logs.s3.bucket=ops-1-28-devops-monitoring-ops-alb-logs",
}


class Manifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kustomization = yaml.safe_load(ds.read(*K8S, "kustomization.yaml"))
        docs = []
        for resource in cls.kustomization["resources"]:
            docs += [d for d in yaml.safe_load_all(ds.read(*K8S, resource)) if d]
        cls.kinds = by_kind(docs)

    def test_kustomization_lists_every_manifest(self):
        files = sorted(f for f in os.listdir(ds.src(*K8S)) if f.endswith(".yaml") and f != "kustomization.yaml")
        self.assertEqual(sorted(self.kustomization["resources"]), files)
        self.assertEqual(sorted(self.kinds), ["Deployment", "Ingress", "Service"])

    def test_deployment(self):
        (dep,) = self.kinds["Deployment"].values()
        self.assertEqual(dep["apiVersion"], "apps/v1")
        self.assertEqual(dep["spec"]["replicas"], 2)
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        self.assertLessEqual(dep["spec"]["selector"]["matchLabels"].items(), pod_labels.items())
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        self.assertEqual([p["containerPort"] for p in container["ports"]], [5000])
        env = {e["name"]: e["value"] for e in container["env"]}
        self.assertEqual(env["AWS_XRAY_DAEMON_ADDRESS"], "aws-xray.ops-monitoring-ns.svc.cluster.local:2000")
        self.assertEqual(env["AWS_REGION"], "us-east-1")
        # kustomize's images: entry rewrites this container's image.
        self.assertIn(container["image"], [i["name"] for i in self.kustomization["images"]])

    def test_daemon_address_is_the_charts_service(self):
        """The address the app uses resolves to the Service `helm -n ops-monitoring-ns install aws-xray`
        creates, on a UDP port it serves."""
        (dep,) = self.kinds["Deployment"].values()
        env = {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        host, port = env["AWS_XRAY_DAEMON_ADDRESS"].rsplit(":", 1)
        name, namespace = host.split(".")[:2]
        self.assertTrue(host.endswith(".svc.cluster.local"))
        _, docs = ds.render("-f", ds.src("tests", "deploy", "x-ray-values.yaml"), release=ds.ARTICLE_RELEASE,
                            namespace=namespace)
        svc = by_kind(docs)["Service"][name]
        self.assertIn((int(port), "UDP"), [(p["port"], p["protocol"]) for p in svc["spec"]["ports"]])
        self.assertIn((int(port), "TCP"), [(p["port"], p["protocol"]) for p in svc["spec"]["ports"]])

    def test_service_80_to_5000(self):
        (svc,) = self.kinds["Service"].values()
        (dep,) = self.kinds["Deployment"].values()
        self.assertEqual([(p["port"], p["targetPort"], p["protocol"]) for p in svc["spec"]["ports"]],
                         [(80, 5000, "TCP")])
        self.assertLessEqual(svc["spec"]["selector"].items(), dep["spec"]["template"]["metadata"]["labels"].items())

    def test_alb_ingress_as_in_the_article(self):
        (ing,) = self.kinds["Ingress"].values()
        (svc,) = self.kinds["Service"].values()
        self.assertEqual(ing["apiVersion"], "networking.k8s.io/v1")
        self.assertEqual(ing["spec"]["ingressClassName"], "alb")
        self.assertEqual(ing["metadata"]["annotations"], ARTICLE_INGRESS_ANNOTATIONS)
        (rule,) = ing["spec"]["rules"]
        (path,) = rule["http"]["paths"]
        self.assertEqual((path["path"], path["pathType"]), ("/", "Prefix"))
        backend = path["backend"]["service"]
        self.assertEqual(backend["name"], svc["metadata"]["name"])
        self.assertEqual(backend["port"]["number"], 80)

    def test_kustomize_build(self):
        kubectl = ds.which("kubectl")
        if not kubectl:
            self.skipTest("kubectl not installed: `kubectl kustomize deploy/k8s` not run")
        proc = subprocess.run([kubectl, "kustomize", ds.src(*K8S)], capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        kinds = by_kind([d for d in yaml.safe_load_all(proc.stdout) if d])
        (dep,) = kinds["Deployment"].values()
        image = self.kustomization["images"][0]
        self.assertEqual(dep["spec"]["template"]["spec"]["containers"][0]["image"],
                         f"{image['newName']}:{image['newTag']}")


if __name__ == "__main__":
    ds.main()
