"""The demo's view of real AWS decisions (moto stores IAM documents and never enforces
them): a workload gets an Entra token from the local Graph server and the judge of the
tests (tests/judge: principalmapper and the documented STS rules) says whether it may
assume a role, and whether a session it holds may still act.

  demo_sessions.py assume AWS GRAPH TENANT CLIENT_ID SECRET ROLE SESSION_FILE
  demo_sessions.py request AWS GRAPH SESSION_FILE ACTION RESOURCE
"""
import json
import pathlib
import subprocess
import sys
import time
import urllib.parse
import urllib.request

JUDGE = pathlib.Path(__file__).resolve().parent.parent / "tests" / "judge" / "judge.py"


def judge(aws, graph, check):
    req = {"aws": aws, "hosts": {"sts.windows.net": graph, "login.microsoftonline.com": graph},
           "now": int(time.time()), "checks": [check]}
    out = subprocess.run([sys.executable, str(JUDGE)], input=json.dumps(req), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


def main():
    op = sys.argv[1]
    if op == "assume":
        aws, graph, tenant, client, secret, role, path = sys.argv[2:9]
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": client,
                                       "client_secret": secret, "scope": "api://aws-federation/.default"}).encode()
        token = json.load(urllib.request.urlopen(f"{graph}/{tenant}/oauth2/v2.0/token", data=form))["access_token"]
        v = judge(aws, graph, {"op": "assume", "role": role, "token": token})
        print(f"  AssumeRoleWithWebIdentity {role}: {'ALLOWED' if v['allowed'] else 'REFUSED'} {'; '.join(v['reasons'])}")
        if v["allowed"]:
            pathlib.Path(path).write_text(json.dumps(v["session"]))
    else:
        aws, graph, path, action, resource = sys.argv[2:7]
        v = judge(aws, graph, {"op": "request", "session": json.loads(pathlib.Path(path).read_text()),
                               "action": action, "resource": resource})
        print(f"  {action} with the session: {'ALLOWED' if v['allowed'] else 'DENIED'} {'; '.join(v['reasons'])}")


if __name__ == "__main__":
    main()
