"""Chart tests: lint and render charts/trustsync with the Helm v4 SDK (helm-python-sdk).

Run by tests/chart.rs with TRUSTSYNC_BIN set to the trustsync binary, so that the config
the chart renders is also checked by trustsync itself.
"""
import os
import subprocess
import tempfile
import unittest

import yaml
from helm_python import chart as helm

CHART = os.path.join(os.path.dirname(__file__), "..", "charts", "trustsync")


def render(values=None):
    manifests = helm.Chart.load(CHART).render(values or {}, name="ts", namespace="access")
    docs = {}
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def kinds(docs):
    return sorted(k for k, _ in docs)


def deployment(docs):
    return docs[("Deployment", "ts-trustsync")]


class Lint(unittest.TestCase):
    def test_lints_clean_in_strict_mode(self):
        report = helm.lint(CHART, strict=True)
        self.assertEqual(report["errors"], [])
        serious = [m for m in report["messages"] if m["severity"] >= 2]
        self.assertEqual(serious, [], report)

    def test_lints_clean_with_every_option_on(self):
        report = helm.lint(CHART, GIT_VALUES, strict=True)
        self.assertEqual([m for m in report["messages"] if m["severity"] >= 2], [], report)


GIT_VALUES = {
    "policies": {"source": "git", "git": {"repo": "https://git.example.test/access.git", "subPath": "aws"}},
    "serviceAccount": {"annotations": {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/trustsync-controller",
        "azure.workload.identity/client-id": "3f0e8a52-7c1d-4b8e-9f6a-1c2d3e4f5a6b"}},
    "azure": {"tenantId": "7f3c2a10-4b5e-4c1d-9a8e-2d6f0b1c3e45", "existingSecret": "entra-secret"},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
    "networkPolicy": {"enabled": True},
    "podDisruptionBudget": {"enabled": False},
    "auditVolume": {"existingClaim": "trustsync-audit"},
}


class Defaults(unittest.TestCase):
    def setUp(self):
        self.docs = render({"policies": {"files": {"roles.yaml": "apiVersion: trustsync.dev/v1alpha1\n"}}})
        self.dep = deployment(self.docs)
        self.pod = self.dep["spec"]["template"]["spec"]
        self.main = self.pod["containers"][0]

    def test_objects(self):
        self.assertEqual(kinds(self.docs), ["ConfigMap", "ConfigMap", "Deployment", "PersistentVolumeClaim", "PodDisruptionBudget", "Service", "ServiceAccount"])

    def test_the_audit_log_is_durable_by_default(self):
        pvc = self.docs[("PersistentVolumeClaim", "ts-trustsync-audit")]
        self.assertEqual(pvc["metadata"]["annotations"]["helm.sh/resource-policy"], "keep")
        self.assertEqual(pvc["spec"]["resources"]["requests"]["storage"], "1Gi")
        audit = next(v for v in self.pod["volumes"] if v["name"] == "audit")
        self.assertEqual(audit["persistentVolumeClaim"]["claimName"], "ts-trustsync-audit")
        ephemeral = deployment(render({"auditVolume": {"ephemeral": True}}))["spec"]["template"]["spec"]
        audit = next(v for v in ephemeral["volumes"] if v["name"] == "audit")
        self.assertEqual(audit, {"name": "audit", "emptyDir": {}})

    def test_one_replica_replaced_not_rolled(self):
        self.assertEqual(self.dep["spec"]["replicas"], 1)
        self.assertEqual(self.dep["spec"]["strategy"]["type"], "Recreate")

    def test_hardened_pod(self):
        self.assertTrue(self.pod["securityContext"]["runAsNonRoot"])
        sc = self.main["securityContext"]
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertIn("limits", self.main["resources"])
        self.assertIn("requests", self.main["resources"])

    def test_probes_and_args(self):
        self.assertEqual(self.main["livenessProbe"]["httpGet"]["path"], "/healthz")
        self.assertEqual(self.main["readinessProbe"]["httpGet"]["path"], "/readyz")
        self.assertIn("run", self.main["args"])
        self.assertIn("--policies=/policies", self.main["args"])
        self.assertEqual(len(self.pod["containers"]), 1)

    def test_policies_and_config_from_configmaps(self):
        policies = self.docs[("ConfigMap", "ts-trustsync-policies")]
        self.assertIn("roles.yaml", policies["data"])
        config = yaml.safe_load(self.docs[("ConfigMap", "ts-trustsync-config")]["data"]["trustsync.yaml"])
        self.assertEqual(config["rolePath"], "/trustsync/")
        # trustsync itself accepts the rendered config.
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(config, f)
        out = subprocess.run([os.environ["TRUSTSYNC_BIN"], "--config", f.name, "iam-policy", "--policies", "/nonexistent"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("aws:ResourceTag/trustsync.dev/owner", out.stdout)


class NonDefault(unittest.TestCase):
    def setUp(self):
        self.docs = render(GIT_VALUES)
        self.pod = deployment(self.docs)["spec"]["template"]["spec"]

    def test_git_sync_sidecar_feeds_the_policies(self):
        names = [c["name"] for c in self.pod["containers"]]
        self.assertEqual(names, ["trustsync", "git-sync"])
        sync = self.pod["containers"][1]
        self.assertIn("--repo=https://git.example.test/access.git", sync["args"])
        self.assertIn("--policies=/policies/repo/aws", self.pod["containers"][0]["args"])
        vol = next(v for v in self.pod["volumes"] if v["name"] == "policies")
        self.assertEqual(vol, {"name": "policies", "emptyDir": {}})
        self.assertNotIn(("ConfigMap", "ts-trustsync-policies"), self.docs)

    def test_identities_without_static_secrets(self):
        sa = self.docs[("ServiceAccount", "ts-trustsync")]
        self.assertEqual(sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"], "arn:aws:iam::123456789012:role/trustsync-controller")
        self.assertIn("azure.workload.identity/client-id", sa["metadata"]["annotations"])
        labels = deployment(self.docs)["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(labels["azure.workload.identity/use"], "true")
        main = self.pod["containers"][0]
        self.assertEqual(main["envFrom"], [{"secretRef": {"name": "entra-secret"}}])
        self.assertIn({"name": "AZURE_TENANT_ID", "value": "7f3c2a10-4b5e-4c1d-9a8e-2d6f0b1c3e45"}, main["env"])

    def test_optional_objects(self):
        self.assertIn("ServiceMonitor", kinds(self.docs))
        self.assertIn("NetworkPolicy", kinds(self.docs))
        self.assertNotIn("PodDisruptionBudget", kinds(self.docs))
        sm = self.docs[("ServiceMonitor", "ts-trustsync")]
        self.assertEqual(sm["spec"]["endpoints"][0]["path"], "/metrics")
        self.assertEqual(sm["metadata"]["labels"]["release"], "prom")
        audit = next(v for v in self.pod["volumes"] if v["name"] == "audit")
        self.assertEqual(audit["persistentVolumeClaim"]["claimName"], "trustsync-audit")
        self.assertNotIn("PersistentVolumeClaim", kinds(self.docs))


class Schedule(unittest.TestCase):
    """mode: schedule: a CronJob running `apply --auto-approve` instead of the controller."""

    def setUp(self):
        self.docs = render({"mode": "schedule", **{k: v for k, v in GIT_VALUES.items() if k != "podDisruptionBudget"}})
        self.cron = self.docs[("CronJob", "ts-trustsync")]
        self.job = self.cron["spec"]["jobTemplate"]["spec"]
        self.pod = self.job["template"]["spec"]
        self.main = self.pod["containers"][0]
        controller = deployment(render(GIT_VALUES))["spec"]["template"]["spec"]
        self.controller_main = controller["containers"][0]
        self.controller_pod = controller

    def test_a_cronjob_instead_of_the_controller(self):
        self.assertNotIn("Deployment", kinds(self.docs))
        for absent in ("Service", "PodDisruptionBudget", "ServiceMonitor"):
            self.assertNotIn(absent, kinds(self.docs), "nothing listens in schedule mode")
        self.assertEqual(self.cron["spec"]["schedule"], "*/15 * * * *")
        self.assertEqual(self.cron["spec"]["concurrencyPolicy"], "Forbid", "runs never overlap")
        self.assertEqual(self.cron["spec"]["successfulJobsHistoryLimit"], 3)
        self.assertEqual(self.cron["spec"]["failedJobsHistoryLimit"], 3)
        self.assertEqual(self.job["backoffLimit"], 0)
        self.assertEqual(self.pod["restartPolicy"], "Never")

    def test_apply_with_the_same_identity_config_and_audit_log(self):
        self.assertEqual(self.main["args"][2:4], ["apply", "--auto-approve"])
        self.assertNotIn("livenessProbe", self.main)
        self.assertNotIn("ports", self.main)
        self.assertEqual(self.pod["serviceAccountName"], self.controller_pod["serviceAccountName"])
        self.assertEqual(self.main["env"], self.controller_main["env"])
        self.assertEqual(self.main["envFrom"], self.controller_main["envFrom"])
        self.assertEqual(self.main["volumeMounts"], self.controller_main["volumeMounts"])
        self.assertEqual(self.pod["volumes"], self.controller_pod["volumes"])
        self.assertEqual(self.pod["securityContext"], self.controller_pod["securityContext"])
        labels = self.job["template"]["metadata"]["labels"]
        self.assertEqual(labels["azure.workload.identity/use"], "true")

    def test_git_sync_clones_once_before_the_run(self):
        init = self.pod["initContainers"][0]
        self.assertEqual(init["name"], "git-sync")
        self.assertIn("--one-time", init["args"])
        self.assertEqual([c["name"] for c in self.pod["containers"]], ["trustsync"], "no sidecar keeps the Job alive")

    def test_lints_clean(self):
        report = helm.lint(CHART, {"mode": "schedule"}, strict=True)
        self.assertEqual([m for m in report["messages"] if m["severity"] >= 2], [], report)


class Schema(unittest.TestCase):
    def test_rejects_two_replicas_and_unknown_keys(self):
        c = helm.Chart.load(CHART)
        c.validate_schema({})
        for bad in ({"replicaCount": 2}, {"replicas": 1}, {"policies": {"source": "s3"}}, {"mode": "daemon"}, {"schedule": {"cron": ""}}):
            with self.assertRaises(Exception, msg=str(bad)):
                c.validate_schema(c.merge_values(bad))

    def test_git_without_repo_fails_to_render(self):
        with self.assertRaises(Exception):
            render({"policies": {"source": "git"}})


if __name__ == "__main__":
    unittest.main(verbosity=2)
