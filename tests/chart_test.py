"""Chart tests: lint and render charts/trustsync with the Helm v4 SDK (helm-python-sdk).

Run by tests/chart.rs with TRUSTSYNC_BIN set to the trustsync binary, so that the config
the chart renders is also checked by trustsync itself.
"""
import json
import os
import re
import subprocess
import tempfile
import unittest

import yaml
from helm_python import chart as helm

CHART = os.path.join(os.path.dirname(__file__), "..", "charts", "trustsync")
# kubernetes-validate and checkov, in a venv of their own (scripts/setup-test-env.sh).
SCAN_BIN = os.path.join(os.path.dirname(__file__), "..", ".venv-scan", "bin")


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
        self.assertEqual(kinds(self.docs), ["ConfigMap", "ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget", "Service", "ServiceAccount"])

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


PINNED = {
    "image": {"digest": "sha256:" + "ab" * 32},
    "policies": {"source": "git", "git": {"repo": "https://git.example.test/access.git",
                                          "image": "registry.k8s.io/git-sync/git-sync@sha256:" + "cd" * 32}},
    "azure": {"tenantId": "7f3c2a10-4b5e-4c1d-9a8e-2d6f0b1c3e45", "certificateSecret": "entra-cert"},
}

# Graph change notifications through an Ingress for their one path.
NOTIFICATIONS = {
    "config": {"directory": {"graph": {"notifications": {"url": "https://ts.example.test/graph/notifications"}}}},
    "graphNotifications": {
        "ingress": {"enabled": True, "className": "nginx", "host": "ts.example.test", "tlsSecret": "ts-tls"},
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
    },
}

# Alerts and the dashboard on, with Graph change notifications (their alert too).
MONITORING = {
    "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
    "prometheusRule": {"enabled": True, "labels": {"release": "prom"}, "runbookUrl": "https://git.example.test/ops.md"},
    "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Security"}},
    "config": {"directory": {"graph": {"notifications": {"url": "https://ts.example.test/graph/notifications"}}}},
}


# The audit signing key from a Secret, an auditor's public key, and the anchor.
AUDITOR_PEM = ("-----BEGIN PUBLIC KEY-----\n"
               "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
               "-----END PUBLIC KEY-----\n")
AUDIT_KEYS = {
    "audit": {"signingKeySecret": {"name": "trustsync-audit-signing", "key": "ed25519.pem"},
              "auditorPublicKeys": {"alice": AUDITOR_PEM}},
    "config": {"audit": {"path": "/var/lib/trustsync/audit.jsonl",
                         "anchor": {"logGroup": "trustsync-audit", "logStream": "prod"}}},
}
# Checkpoints signed by KMS: only its public half goes into the config.
AUDIT_KMS = {
    "audit": {"publicKey": AUDITOR_PEM},
    "config": {"audit": {"path": "/var/lib/trustsync/audit.jsonl",
                         "kmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}},
}

# The audit log in S3 (issue 39): a leader and standbys, every audit.s3 value set.
S3_VALUES = {
    "audit": {"store": "s3", "s3": {
        "bucket": "my-audit-bucket", "prefix": "trustsync/prod/", "region": "eu-west-1",
        "objectLock": {"mode": "COMPLIANCE", "retentionDays": 2555},
        "lease": {"durationSeconds": 15, "renewSeconds": 3}}},
}
# The least an S3 release names: the bucket.
S3_MINIMAL = {"audit": {"store": "s3", "s3": {"bucket": "my-audit-bucket"}}}

# Every rendering the tools check: the defaults, every optional feature on, schedule mode,
# a release pinned by digest with a certificate file instead of a secret, Graph change
# notifications through an Ingress, and the audit log in S3 (controller and schedule).
RENDERINGS = {
    "default": {},
    "every-option": GIT_VALUES,
    "schedule": {"mode": "schedule", **{k: v for k, v in GIT_VALUES.items() if k != "podDisruptionBudget"}},
    "pinned": PINNED,
    "notifications": NOTIFICATIONS,
    "monitoring": MONITORING,
    "audit-keys": AUDIT_KEYS,
    "audit-kms": AUDIT_KMS,
    "s3": {**S3_VALUES, **{k: v for k, v in GIT_VALUES.items() if k not in ("podDisruptionBudget", "auditVolume")}},
    "s3-schedule": {"mode": "schedule", **S3_MINIMAL},
}


class Notifications(unittest.TestCase):
    """Graph change notifications: one path exposed, the ingress controller admitted."""

    def test_only_the_notifications_path_is_exposed_and_admitted(self):
        docs = render(NOTIFICATIONS)
        ingress = docs[("Ingress", "ts-trustsync-graph-notifications")]
        rules = ingress["spec"]["rules"]
        self.assertEqual([r["host"] for r in rules], ["ts.example.test"])
        paths = rules[0]["http"]["paths"]
        self.assertEqual([(p["path"], p["pathType"]) for p in paths], [("/graph/notifications", "Exact")])
        self.assertEqual(paths[0]["backend"]["service"], {"name": "ts-trustsync", "port": {"name": "http"}})
        self.assertEqual(ingress["spec"]["tls"], [{"hosts": ["ts.example.test"], "secretName": "ts-tls"}])
        self.assertEqual(ingress["spec"]["ingressClassName"], "nginx")
        policy = docs[("NetworkPolicy", "ts-trustsync")]
        self.assertIn({"from": NOTIFICATIONS["graphNotifications"]["from"],
                       "ports": [{"port": "http", "protocol": "TCP"}]}, policy["spec"]["ingress"])
        self.assertNotIn("Ingress", kinds(render({})))
        # trustsync accepts the rendered config, and asks Entra for what subscribing needs.
        config = yaml.safe_load(docs[("ConfigMap", "ts-trustsync-config")]["data"]["trustsync.yaml"])
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(config, f)
        out = subprocess.run([os.environ["TRUSTSYNC_BIN"], "--config", f.name, "entra-permissions"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("Group.Read.All", out.stdout)


class StatusPort(unittest.TestCase):
    """/status and /metrics only from the monitoring stack, never every namespace."""

    def peers(self, values):
        policy = render(values)[("NetworkPolicy", "ts-trustsync")]
        return [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]

    def test_only_the_monitoring_namespace_by_default_and_never_every_namespace(self):
        peers = self.peers({})
        self.assertEqual(peers, [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}])
        for name, values in RENDERINGS.items():
            if values.get("networkPolicy", {}).get("enabled", True):
                for peer in self.peers(values):
                    self.assertNotEqual(peer.get("namespaceSelector", None), {}, name)
                    self.assertNotEqual(peer.get("podSelector", None), {}, name)
                    self.assertTrue(peer.get("namespaceSelector") or peer.get("podSelector"), name)

    def test_configurable_namespaces_and_pods(self):
        # Helm merges maps: the default label is dropped with null.
        peers = self.peers({"networkPolicy": {
            "metricsNamespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": None, "team": "observability"}},
            "metricsPodSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}})
        self.assertEqual(peers[0], {"namespaceSelector": {"matchLabels": {"team": "observability"}},
                                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}})

    def test_an_empty_selector_is_refused(self):
        # {} merges into the default (still the monitoring namespace); taking the default
        # away, or selecting nothing, fails the rendering.
        self.assertEqual(self.peers({"networkPolicy": {"metricsNamespaceSelector": {}}}), self.peers({}))
        for bad in ({"networkPolicy": {"metricsNamespaceSelector": None}},
                    {"networkPolicy": {"metricsNamespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": None}}}},
                    {"networkPolicy": {"metricsNamespaceSelector": {"matchLabels": None, "matchExpressions": []}}}):
            with self.assertRaises(Exception, msg=str(bad)):
                render(bad)
        with self.assertRaises(Exception):
            render({"graphNotifications": {"from": [{"namespaceSelector": {}}]}})



class AuditKeys(unittest.TestCase):
    """The audit signing key from a Secret, never the config's ConfigMap (issue 35, point 5)."""

    def config(self, docs):
        return yaml.safe_load(docs[("ConfigMap", "ts-trustsync-config")]["data"]["trustsync.yaml"])

    def test_the_signing_key_is_mounted_read_only_from_its_secret_outside_the_configmap(self):
        docs = render(AUDIT_KEYS)
        pod = deployment(docs)["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "audit-signing-key")
        self.assertEqual(volume["secret"]["secretName"], "trustsync-audit-signing")
        self.assertEqual(volume["secret"]["items"], [{"key": "ed25519.pem", "path": "signing-key.pem"}])
        self.assertEqual(volume["secret"]["defaultMode"], 0o400)
        main = pod["containers"][0]
        mount = next(m for m in main["volumeMounts"] if m["name"] == "audit-signing-key")
        self.assertTrue(mount["readOnly"])
        self.assertEqual(mount["mountPath"], "/var/run/secrets/trustsync/audit")
        config = self.config(docs)
        self.assertEqual(config["audit"]["signingKeyFile"], "/var/run/secrets/trustsync/audit/signing-key.pem")
        self.assertEqual(config["audit"]["auditorPublicKeyFiles"], ["/etc/trustsync/auditor-alice.pem"])
        self.assertEqual(config["audit"]["anchor"]["logGroup"], "trustsync-audit")
        data = docs[("ConfigMap", "ts-trustsync-config")]["data"]
        self.assertEqual(data["auditor-alice.pem"].strip(), AUDITOR_PEM.strip())
        # No private key anywhere in what the chart renders.
        for doc in docs.values():
            self.assertNotIn("PRIVATE KEY", json.dumps(doc))
        # The same in schedule mode: the Job's pod mounts it too.
        job = render({"mode": "schedule", **AUDIT_KEYS})[("CronJob", "ts-trustsync")]
        jpod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        self.assertIn("audit-signing-key", [v["name"] for v in jpod["volumes"]])
        # trustsync accepts the rendered config; the printed policy anchors to the group.
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(config, f)
        out = subprocess.run([os.environ["TRUSTSYNC_BIN"], "--config", f.name, "iam-policy", "--policies", "/nonexistent"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("trustsync-audit", out.stdout)

    def test_without_a_secret_no_key_is_mounted(self):
        pod = deployment(render())["spec"]["template"]["spec"]
        self.assertNotIn("audit-signing-key", [v["name"] for v in pod["volumes"]])
        self.assertNotIn("signingKeyFile", self.config(render())["audit"])

    def test_a_key_under_the_configmap_is_refused(self):
        with self.assertRaises(Exception) as caught:
            render({"config": {"audit": {"path": "/var/lib/trustsync/audit.jsonl",
                                         "signingKeyFile": "/etc/trustsync/audit-signing.pem"}}})
        self.assertIn("audit.signingKeySecret", str(caught.exception))

    def test_kms_signing_puts_only_the_public_key_in_the_config(self):
        docs = render(AUDIT_KMS)
        config = self.config(docs)
        self.assertEqual(config["audit"]["publicKeyFile"], "/etc/trustsync/audit-public.pem")
        self.assertNotIn("signingKeyFile", config["audit"])
        self.assertIn("BEGIN PUBLIC KEY", docs[("ConfigMap", "ts-trustsync-config")]["data"]["audit-public.pem"])
        pod = deployment(docs)["spec"]["template"]["spec"]
        self.assertNotIn("audit-signing-key", [v["name"] for v in pod["volumes"]])


def rendered_config(docs):
    return yaml.safe_load(docs[("ConfigMap", "ts-trustsync-config")]["data"]["trustsync.yaml"])


def trustsync_accepts(config):
    """trustsync's own verdict on a rendered config: (accepted, what it said)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(config, f)
    out = subprocess.run([os.environ["TRUSTSYNC_BIN"], "--config", f.name, "iam-policy", "--policies", "/nonexistent"],
                         capture_output=True, text=True)
    return out.returncode == 0, out.stderr


def skip_unless_trustsync_knows_s3():
    ok, said = trustsync_accepts({"permissionsBoundaries": ["b"], "audit": {"s3": {"bucket": "my-audit-bucket"}}})
    if not ok and "unknown field `s3`" in said:
        raise unittest.SkipTest("this trustsync build has no audit.s3 yet: " + said.strip())
    return ok, said


class S3Store(unittest.TestCase):
    """audit.store: s3 (issue 39): a leader and warm standbys sharing the log in a bucket."""

    def setUp(self):
        self.docs = render(S3_VALUES)
        self.dep = deployment(self.docs)
        self.pod = self.dep["spec"]["template"]["spec"]

    def test_objects_without_a_claim(self):
        self.assertEqual(kinds(self.docs), ["ConfigMap", "ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount"])

    def test_two_replicas_rolled_one_new_pod_before_an_old_one_stops(self):
        self.assertEqual(self.dep["spec"]["replicas"], 2)
        self.assertEqual(self.dep["spec"]["strategy"], {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
        for n in (0, 1, 3):
            self.assertEqual(deployment(render({**S3_MINIMAL, "replicaCount": n}))["spec"]["replicas"], n)

    def test_the_budget_lets_one_pod_go_at_a_time(self):
        pdb = self.docs[("PodDisruptionBudget", "ts-trustsync")]["spec"]
        self.assertEqual(pdb["maxUnavailable"], 1)
        self.assertNotIn("minAvailable", pdb)
        labels = self.dep["spec"]["template"]["metadata"]["labels"]
        self.assertLessEqual(pdb["selector"]["matchLabels"].items(), labels.items())
        # The same budget as file mode's: only the reason differs.
        self.assertEqual(pdb, render({})[("PodDisruptionBudget", "ts-trustsync")]["spec"])

    def test_replicas_prefer_different_nodes(self):
        anti = self.pod["affinity"]["podAntiAffinity"]
        self.assertNotIn("requiredDuringSchedulingIgnoredDuringExecution", anti,
                         "required would leave the surge pod Pending on a cluster with as many nodes as replicas")
        [term] = anti["preferredDuringSchedulingIgnoredDuringExecution"]
        self.assertEqual(term["weight"], 100)
        self.assertEqual(term["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname")
        labels = self.dep["spec"]["template"]["metadata"]["labels"]
        self.assertLessEqual(term["podAffinityTerm"]["labelSelector"]["matchLabels"].items(), labels.items())
        self.assertEqual(term["podAffinityTerm"]["labelSelector"]["matchLabels"], self.dep["spec"]["selector"]["matchLabels"])
        # Kept beside the values' own affinity; replaced by their own podAntiAffinity.
        node = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}]}}}
        both = deployment(render({**S3_VALUES, "affinity": node}))["spec"]["template"]["spec"]["affinity"]
        self.assertEqual(both["nodeAffinity"], node["nodeAffinity"])
        self.assertEqual(both["podAntiAffinity"], anti)
        own = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "topology.kubernetes.io/zone", "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "ts"}}}]}}
        self.assertEqual(deployment(render({**S3_VALUES, "affinity": own}))["spec"]["template"]["spec"]["affinity"], own)

    def test_the_working_copy_is_on_an_emptydir(self):
        audit = next(v for v in self.pod["volumes"] if v["name"] == "audit")
        self.assertEqual(audit, {"name": "audit", "emptyDir": {}})
        self.assertNotIn("persistentVolumeClaim", json.dumps(self.dep))
        mount = next(m for m in self.pod["containers"][0]["volumeMounts"] if m["name"] == "audit")
        self.assertTrue(rendered_config(self.docs)["audit"]["path"].startswith(mount["mountPath"] + "/"))

    def test_the_config_mirrors_audit_s3(self):
        audit = rendered_config(self.docs)["audit"]
        self.assertEqual(audit["s3"], S3_VALUES["audit"]["s3"])
        self.assertEqual(audit["path"], "/var/lib/trustsync/audit.jsonl")
        # Unset region and objectLock stay out (the config's aws.region, the bucket's
        # default retention); the prefix and lease are written as the chart defaults them.
        minimal = rendered_config(render(S3_MINIMAL))["audit"]["s3"]
        self.assertEqual(minimal, {"bucket": "my-audit-bucket", "prefix": "trustsync/",
                                   "lease": {"durationSeconds": 10, "renewSeconds": 2}})
        # The keys of the audit log go on beside it.
        with_keys = rendered_config(render({**AUDIT_KEYS, "audit": {**AUDIT_KEYS["audit"], **S3_MINIMAL["audit"]}}))["audit"]
        self.assertEqual(with_keys["s3"]["bucket"], "my-audit-bucket")
        self.assertEqual(with_keys["signingKeyFile"], "/var/run/secrets/trustsync/audit/signing-key.pem")

    def test_trustsync_accepts_the_rendered_config(self):
        skip_unless_trustsync_knows_s3()
        for values in (S3_VALUES, S3_MINIMAL):
            ok, said = trustsync_accepts(rendered_config(render(values)))
            self.assertTrue(ok, said)

    def test_the_chart_refuses_the_leases_trustsync_refuses(self):
        # durationSeconds at least three times renewSeconds: the template's check and
        # trustsync's own agree, so that no release installs to crash-loop on its config.
        skip_unless_trustsync_knows_s3()
        for duration, renew, good in ((6, 2, True), (5, 2, False), (3, 1, True), (10, 4, False), (30, 10, True)):
            lease = {"durationSeconds": duration, "renewSeconds": renew}
            values = {"audit": {"store": "s3", "s3": {"bucket": "my-audit-bucket", "lease": lease}}}
            config = rendered_config(render(S3_MINIMAL))
            config["audit"]["s3"]["lease"] = lease
            ok, said = trustsync_accepts(config)
            self.assertEqual(ok, good, f"trustsync on {lease}: {said}")
            if good:
                render(values)
            else:
                with self.assertRaises(Exception, msg=str(lease)) as caught:
                    render(values)
                self.assertIn("at least three times renewSeconds", str(caught.exception))

    def test_a_standby_does_not_hold_the_pass_failing_alert(self):
        # Only the leader runs passes; a standby's seconds_since_last_success is +Inf.
        rules = render({**S3_VALUES, "prometheusRule": {"enabled": True}})[("PrometheusRule", "ts-trustsync")]
        expr = next(r["expr"] for r in rules["spec"]["groups"][0]["rules"] if r["alert"] == "TrustsyncPassFailing")
        self.assertTrue(expr.startswith("min by (namespace, job) (trustsync_seconds_since_last_success{"), expr)

    def test_schedule_mode_needs_no_volume_either(self):
        # `apply` takes the same lease and appends to the same chain in the bucket.
        docs = render({"mode": "schedule", **S3_VALUES})
        self.assertNotIn("PersistentVolumeClaim", kinds(docs))
        cron = docs[("CronJob", "ts-trustsync")]
        self.assertEqual(cron["spec"]["concurrencyPolicy"], "Forbid")
        pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        self.assertIn({"name": "audit", "emptyDir": {}}, pod["volumes"])
        self.assertNotIn("affinity", pod, "a Job's pod has no standby to keep apart")
        self.assertEqual(rendered_config(docs)["audit"]["s3"], S3_VALUES["audit"]["s3"])

    def test_file_mode_is_unchanged(self):
        docs = render({})
        dep = deployment(docs)
        self.assertEqual(dep["spec"]["replicas"], 1)
        self.assertEqual(dep["spec"]["strategy"], {"type": "Recreate"})
        self.assertIn(("PersistentVolumeClaim", "ts-trustsync-audit"), docs)
        self.assertNotIn("affinity", dep["spec"]["template"]["spec"])
        self.assertNotIn("s3", rendered_config(docs)["audit"])
        self.assertEqual(deployment(render({"replicaCount": 0}))["spec"]["replicas"], 0)

    def test_lints_clean(self):
        for values in (S3_VALUES, {"mode": "schedule", **S3_MINIMAL}):
            report = helm.lint(CHART, values, strict=True)
            self.assertEqual([m for m in report["messages"] if m["severity"] >= 2], [], report)


class S3Schema(unittest.TestCase):
    """values.schema.json refuses what makes no sense for the audit store (and the one rule
    it cannot state, the lease's, fails the rendering)."""

    def refused(self, values):
        with self.assertRaises(Exception, msg=str(values)) as caught:
            render(values)
        return str(caught.exception)

    def test_accepts_both_stores(self):
        c = helm.Chart.load(CHART)
        for good in ({}, S3_VALUES, S3_MINIMAL, {**S3_MINIMAL, "replicaCount": 3}, {"replicaCount": 1},
                     {"audit": {"store": "s3", "s3": {"bucket": "a.b-c", "prefix": ""}}}):
            c.validate_schema(c.merge_values(good))

    def test_rejects_nonsense(self):
        s3 = lambda **kw: {"audit": {"store": "s3", "s3": {"bucket": "my-audit-bucket", **kw}}}
        for bad, where in (
            ({"audit": {"store": "s3"}}, "/audit/s3/bucket"),                       # S3 without a bucket
            ({"replicaCount": 2}, "/replicaCount"),                                 # two writers of one file
            ({"audit": {"s3": {"bucket": "my-audit-bucket"}}}, "/audit/s3/bucket"),  # a bucket, but the file store
            ({**S3_MINIMAL, "auditVolume": {"existingClaim": "trustsync-audit"}}, "/auditVolume/existingClaim"),
            ({"audit": {"store": "dynamodb"}}, "/audit/store"),
            (s3(buckett="x"), "additional properties 'buckett'"),
            (s3(lease={"ttlSeconds": 10}), "additional properties 'ttlSeconds'"),
            (s3(objectLock={"mode": "COMPLIANCE", "retentionDays": 30, "legalHold": True}), "additional properties 'legalHold'"),
            (s3(bucket="My_Bucket"), "/audit/s3/bucket"),
            (s3(prefix="/trustsync/"), "/audit/s3/prefix"),
            (s3(prefix="trustsync"), "/audit/s3/prefix"),
            (s3(prefix="trustsync/../other/"), "/audit/s3/prefix"),
            (s3(region="Ireland"), "/audit/s3/region"),
            (s3(objectLock={"mode": "compliance", "retentionDays": 30}), "/audit/s3/objectLock/mode"),
            (s3(objectLock={"mode": "COMPLIANCE"}), "retentionDays"),
            (s3(objectLock={"retentionDays": 0, "mode": "GOVERNANCE"}), "/audit/s3/objectLock/retentionDays"),
            (s3(lease={"durationSeconds": 10, "renewSeconds": 0}), "/audit/s3/lease/renewSeconds"),
            ({**S3_MINIMAL, "replicaCount": -1}, "/replicaCount"),
        ):
            self.assertIn(where, self.refused(bad), bad)

    def test_the_lease_rule_schema_cannot_state_fails_the_rendering(self):
        for duration, renew in ((10, 10), (10, 12), (5, 2)):
            said = self.refused({"audit": {"store": "s3", "s3": {"bucket": "my-audit-bucket",
                                                                  "lease": {"durationSeconds": duration, "renewSeconds": renew}}}})
            self.assertIn("audit.s3.lease", said)

    def test_the_store_is_set_with_audit_store_not_in_the_config(self):
        said = self.refused({"config": {"audit": {"path": "/var/lib/trustsync/audit.jsonl", "s3": {"bucket": "my-audit-bucket"}}}})
        self.assertIn("audit.store: s3", said)


def render_to(directory, name, values):
    manifests = helm.Chart.load(CHART).render(values, name="ts", namespace="access")
    path = os.path.join(directory, name + ".yaml")
    with open(path, "w") as f:
        for source, text in manifests.items():
            if not source.endswith("NOTES.txt"):
                f.write(f"---\n# Source: {source}\n{text}\n")
    return path


class RealTools(unittest.TestCase):
    """kubernetes-validate (strict, newest Kubernetes it bundles) and checkov on the output."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.paths = {name: render_to(cls.dir, name, values) for name, values in RENDERINGS.items()}
        cls.reports = {}

    def test_every_manifest_is_valid_kubernetes_in_strict_mode(self):
        newest = subprocess.run([os.path.join(SCAN_BIN, "python"), "-c",
                                 "import kubernetes_validate.utils as u; print(u.latest_version())"],
                                capture_output=True, text=True, check=True).stdout.strip()
        out = subprocess.run([os.path.join(SCAN_BIN, "kubernetes-validate"), "--strict", "-k", newest,
                              *self.paths.values()], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        passed = [l for l in out.stdout.splitlines() if l.startswith("INFO") and " passed " in l]
        self.assertGreaterEqual(len(passed), 20, out.stdout)
        # The kinds it has no schema for are the Prometheus operator's CRDs (Monitoring
        # checks the PrometheusRule against the CRD's own rules).
        for line in (out.stdout + out.stderr).splitlines():
            if line.startswith(("WARN", "ERROR")):
                self.assertRegex(line, "Couldn't find schema for kind (ServiceMonitor|PrometheusRule)")

    def checkov(self, name):
        """checkov's report on one rendering, scanned once for all the tests."""
        if name not in self.reports:
            out = subprocess.run([os.path.join(SCAN_BIN, "checkov"), "--file", self.paths[name],
                                  "--framework", "kubernetes", "--skip-download", "--output", "json"],
                                 capture_output=True, text=True)
            self.reports[name] = json.loads(out.stdout)
        return self.reports[name]

    def test_checkov_finds_nothing_and_every_skip_says_why(self):
        for name in RENDERINGS:
            report = self.checkov(name)
            failed = [(f["check_id"], f["resource"], f["check_name"]) for f in report["results"]["failed_checks"]]
            self.assertEqual(failed, [], name)
            self.assertGreater(report["summary"]["passed"], 40, name)
            for skip in report["results"]["skipped_checks"]:
                self.assertGreater(len(skip["check_result"].get("suppress_comment", "")), 30, skip["check_id"])

    def test_skips_only_what_the_values_bring_about(self):
        skipped = lambda name: sorted({f["check_id"] for f in self.checkov(name)["results"]["skipped_checks"]})
        # Pinned by digest, a certificate file instead of a secret in the environment:
        # only the pull policy remains, on purpose.
        self.assertEqual(skipped("pinned"), ["CKV_K8S_15"])
        self.assertEqual(skipped("every-option"), ["CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43"])

    def test_no_service_account_token_and_the_certificate_as_a_file(self):
        docs = render(PINNED)
        pod = deployment(docs)["spec"]["template"]["spec"]
        self.assertIs(pod["automountServiceAccountToken"], False)
        self.assertIs(docs[("ServiceAccount", "ts-trustsync")]["automountServiceAccountToken"], False)
        main = pod["containers"][0]
        self.assertEqual(main["image"], "ghcr.io/trustsync/trustsync@sha256:" + "ab" * 32)
        self.assertIn({"name": "AZURE_CLIENT_CERTIFICATE_PATH",
                       "value": "/var/run/secrets/trustsync/entra/certificate.pem"}, main["env"])
        self.assertNotIn("envFrom", main)
        mount = next(m for m in main["volumeMounts"] if m["name"] == "entra-certificate")
        self.assertTrue(mount["readOnly"])
        volume = next(v for v in pod["volumes"] if v["name"] == "entra-certificate")
        self.assertEqual(volume["secret"]["secretName"], "entra-cert")
        for doc in docs.values():
            self.assertEqual(doc["metadata"]["namespace"], "access", doc["kind"])
        sync = pod["containers"][1]
        self.assertEqual(sync["livenessProbe"]["httpGet"], {"path": "/", "port": "git-sync"})
        self.assertIn("--http-bind=:8081", sync["args"])

    def test_the_network_policy_opens_ssh_only_for_an_ssh_remote(self):
        def egress_ports(values):
            policy = render(values)[("NetworkPolicy", "ts-trustsync")]
            return sorted(p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"])
        self.assertEqual(egress_ports(GIT_VALUES), [53, 53, 443])
        ssh = {**GIT_VALUES, "policies": {"source": "git", "git": {"repo": "git@git.example.test:access.git"}}}
        self.assertEqual(egress_ports(ssh), [22, 53, 53, 443])


# The PrometheusRule CRD's pattern for `for` (monitoring.coreos.com/v1, Duration).
CRD_DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")
# Labels Prometheus adds to every scraped series (the ServiceMonitor's target labels).
TARGET_LABELS = {"job", "namespace", "instance", "pod", "service", "container", "endpoint"}
ALERTS = ["TrustsyncRevocationHeld", "TrustsyncPassFailing", "TrustsyncAccountUnreachable",
          "TrustsyncDirectoryFeedFailing", "TrustsyncAuditNeedsAttention", "TrustsyncNoWriter",
          "TrustsyncGraphSubscriptionLost"]


def exported():
    text = os.environ.get("TRUSTSYNC_METRICS")
    if not text:
        raise unittest.SkipTest("run through tests/chart.rs, which passes the exported metrics")
    return json.loads(text)


def selectors(expr):
    """(metric, {label: (op, value)}) of every trustsync series an expression selects."""
    for m in re.finditer(r"\b(trustsync_[a-z_]+)\s*(\{([^}]*)\})?", expr):
        matchers = {k: (op, v) for k, op, v in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', m.group(3) or "")}
        yield m.group(1), matchers


class Monitoring(unittest.TestCase):
    """The alerts and the dashboard use only what the controller exports."""

    def setUp(self):
        self.metrics = exported()
        self.docs = render(MONITORING)
        self.rules = self.docs[("PrometheusRule", "ts-trustsync")]["spec"]["groups"][0]["rules"]
        self.dashboard = json.loads(self.docs[("ConfigMap", "ts-trustsync-dashboard")]["data"]["trustsync.json"])

    def expressions(self):
        for r in self.rules:
            yield r["alert"], r["expr"]
        for p in self.dashboard["panels"]:
            for t in p.get("targets", []):
                yield p["title"], t["expr"]
        for v in self.dashboard["templating"]["list"]:
            if v["type"] == "query":
                yield "variable " + v["name"], v["query"]["query"]

    def check_expression(self, where, expr):
        series, values = self.metrics["series"], self.metrics["values"]
        used = list(selectors(expr))
        self.assertTrue(used, f"{where}: selects no trustsync series: {expr}")
        for name, matchers in used:
            self.assertIn(name, series, f"{where}: {name} is not exported")
            for label, (op, value) in matchers.items():
                self.assertIn(label, set(series[name]) | TARGET_LABELS, f"{where}: {name} has no label {label}")
                if op == "=" and label in values.get(name, {}):
                    self.assertIn(value, values[name][label], f"{where}: {name}{{{label}}} is never {value!r}")
        known = set().union(*(series[n] for n, _ in used)) | TARGET_LABELS
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            for label in filter(None, (l.strip() for l in group.split(","))):
                self.assertIn(label, known, f"{where}: aggregates by {label}, which no series has")

    def test_every_expression_uses_exported_series_labels_and_values(self):
        for where, expr in self.expressions():
            self.check_expression(where, expr)

    def test_a_wrong_metric_name_or_value_is_caught(self):
        # The check itself: a typo in a name, a label or a value fails.
        for bad in ['trustsync_pass_total{job="x"}', 'trustsync_mappings{state="Held"}',
                    'trustsync_account_reachable{acount="1"}', 'sum by (region) (trustsync_managed_roles)']:
            with self.assertRaises(AssertionError, msg=bad):
                self.check_expression("probe", bad)

    def test_the_five_alerts_are_well_formed_and_scoped_to_the_release(self):
        self.assertEqual([r["alert"] for r in self.rules], ALERTS)
        rule = self.docs[("PrometheusRule", "ts-trustsync")]
        self.assertEqual(rule["metadata"]["labels"]["release"], "prom")
        for r in self.rules:
            self.assertEqual(set(r) - {"alert", "expr", "for", "labels", "annotations"}, set(), r["alert"])
            self.assertRegex(r["for"], CRD_DURATION, r["alert"])
            self.assertIn(r["labels"]["severity"], ("critical", "warning"), r["alert"])
            self.assertGreater(len(r["annotations"]["summary"]), 40, r["alert"])
            self.assertGreater(len(r["annotations"]["description"]), 60, r["alert"])
            self.assertTrue(r["annotations"]["runbook_url"].startswith("https://git.example.test/ops.md#"))
            for name, matchers in selectors(r["expr"]):
                self.assertEqual(matchers["job"], ("=", "ts-trustsync"), r["alert"])
                self.assertEqual(matchers["namespace"], ("=", "access"), r["alert"])

    def test_every_alert_is_explained_in_the_operations_guide(self):
        doc = open(os.path.join(os.path.dirname(__file__), "..", "docs", "operations.md")).read()
        headings = [l for l in doc.splitlines() if l.startswith("#")]
        for alert in ALERTS:
            heading = next((h for h in headings if alert in h), None)
            self.assertTrue(heading, f"docs/operations.md has no heading for {alert}")
            # The section under the heading (the alert may be named earlier, too).
            section = doc.split("\n" + heading + "\n", 1)[1].split("\n#", 1)[0]
            self.assertIn("What to do", section, alert)

    def test_the_subscription_alert_only_with_notifications(self):
        docs = render({"prometheusRule": {"enabled": True}})
        rules = [r["alert"] for r in docs[("PrometheusRule", "ts-trustsync")]["spec"]["groups"][0]["rules"]]
        self.assertEqual(rules, ALERTS[:6])
        # Off by default, and never in schedule mode (no resident controller to scrape).
        self.assertNotIn("PrometheusRule", kinds(render({})))
        on = {"prometheusRule": {"enabled": True}, "grafanaDashboard": {"enabled": True}}
        self.assertEqual(kinds(render({"mode": "schedule", **on})), kinds(render({"mode": "schedule"})))

    def test_the_dashboard_is_for_the_grafana_sidecar(self):
        cm = self.docs[("ConfigMap", "ts-trustsync-dashboard")]
        self.assertEqual(cm["metadata"]["labels"]["grafana_dashboard"], "1")
        self.assertEqual(cm["metadata"]["annotations"]["grafana_folder"], "Security")
        d = self.dashboard
        self.assertEqual(d["uid"], "trustsync")
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        graphs = [p for p in d["panels"] if p["type"] != "row"]
        self.assertGreaterEqual(len(graphs), 15)
        for p in graphs:
            self.assertTrue(p["targets"], p["title"])
            self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])
            for t in p["targets"]:
                self.assertIn('job=~"$job"', t["expr"], p["title"])
        # Every alert's series is on the dashboard.
        on_dashboard = {n for p in graphs for t in p["targets"] for n, _ in selectors(t["expr"])}
        for r in self.rules:
            for n, _ in selectors(r["expr"]):
                self.assertIn(n, on_dashboard, r["alert"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
