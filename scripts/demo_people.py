"""The demo's people (IAM Identity Center): a tenant with a people group, what Identity
Center holds, and whether a person's permission-set session may act (the tests' IAM judge:
principalmapper over the permission set's inline policy, which Identity Center writes on
the role it provisions; moto does not model that role).

  demo_people.py tenant IN OUT          the example tenant plus sg-aws-payments-people
                                        (Dana, and Lee through sg-payments-oncall)
  demo_people.py show AWS               trustsync's group, its members, the assignment
  demo_people.py session AWS USER AGO   may USER's session, issued AGO seconds ago, read
                                        the payments reports?
"""
import json
import pathlib
import subprocess
import sys
import time

import boto3

JUDGE = pathlib.Path(__file__).resolve().parent.parent / "tests" / "judge" / "judge.py"
LEE = "c0ffee00-2222-4222-8222-000000000003"


def tenant(src, dst):
    t = json.loads(pathlib.Path(src).read_text())
    t["users"].append({"id": LEE, "displayName": "Lee Park", "userPrincipalName": "lee@example.com",
                       "givenName": "Lee", "surname": "Park", "mail": "lee@example.com",
                       "accountEnabled": True, "userType": "Member"})
    t["groups"].append({"id": "a1b2c3d4-0001-4000-8000-000000000010", "displayName": "sg-aws-payments-people",
                        "members": ["c0ffee00-2222-4222-8222-000000000001", "a1b2c3d4-0001-4000-8000-000000000011"]})
    t["groups"].append({"id": "a1b2c3d4-0001-4000-8000-000000000011", "displayName": "sg-payments-oncall",
                        "members": [LEE]})
    pathlib.Path(dst).write_text(json.dumps(t, indent=2))


def clients(aws):
    kw = {"endpoint_url": aws, "region_name": "us-east-1"}
    admin, store = boto3.client("sso-admin", **kw), boto3.client("identitystore", **kw)
    i = admin.list_instances()["Instances"][0]
    return admin, store, i["InstanceArn"], i["IdentityStoreId"]


def permission_set(admin, instance):
    for arn in admin.list_permission_sets(InstanceArn=instance)["PermissionSets"]:
        if admin.describe_permission_set(InstanceArn=instance, PermissionSetArn=arn)["PermissionSet"]["Name"] == "PaymentsOps":
            return arn
    raise SystemExit("no PaymentsOps permission set")


def show(aws):
    admin, store, instance, sid = clients(aws)
    users = {u["UserId"]: u["UserName"] for u in store.list_users(IdentityStoreId=sid)["Users"]}
    for g in store.list_groups(IdentityStoreId=sid)["Groups"]:
        members = store.list_group_memberships(IdentityStoreId=sid, GroupId=g["GroupId"])["GroupMemberships"]
        names = sorted(users[m["MemberId"]["UserId"]] for m in members)
        print(f"  identity-store group {g['DisplayName']}: {', '.join(names) or '(nobody)'}")
        print(f"    description: {g.get('Description', '')}")
    arn = permission_set(admin, instance)
    for a in admin.list_account_assignments(InstanceArn=instance, AccountId="123456789012", PermissionSetArn=arn)["AccountAssignments"]:
        print(f"  PaymentsOps assigned in {a['AccountId']} to {a['PrincipalType']} {a['PrincipalId']}")
    doc = json.loads(admin.get_inline_policy_for_permission_set(InstanceArn=instance, PermissionSetArn=arn)["InlinePolicy"] or "{}")
    for st in doc.get("Statement", []):
        if st.get("Sid", "").startswith("TrustsyncDeparted"):
            ids = st["Condition"]["StringEquals"]["identitystore:userId"]
            ids = ids if isinstance(ids, list) else [ids]
            print(f"  session denial: {', '.join(users.get(i, i) for i in ids)} before {st['Condition']['DateLessThan']['aws:TokenIssueTime']}")


def session(aws, user, ago):
    admin, store, instance, sid = clients(aws)
    uid = {u["UserName"]: u["UserId"] for u in store.list_users(IdentityStoreId=sid)["Users"]}[user]
    arn = permission_set(admin, instance)
    inline = json.loads(admin.get_inline_policy_for_permission_set(InstanceArn=instance, PermissionSetArn=arn)["InlinePolicy"])
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    now = int(time.time())
    check = {"op": "identity",
             "principal": "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_PaymentsOps_0123456789abcdef",
             "policies": [inline], "action": "s3:GetObject", "resource": "arn:aws:s3:::payments-reports/q4.csv",
             "context": {"identitystore:userId": uid, "aws:userid": f"AROAEXAMPLE:{user}",
                         "aws:TokenIssueTime": iso(now - int(ago)), "aws:CurrentTime": iso(now)}}
    out = subprocess.run([sys.executable, str(JUDGE)], input=json.dumps({"now": now, "checks": [check]}),
                         capture_output=True, text=True, check=True)
    v = json.loads(out.stdout)[0]
    print(f"  {user}'s PaymentsOps session from {int(ago) // 60} min ago, s3:GetObject: {'ALLOWED' if v['allowed'] else 'DENIED'}")


if __name__ == "__main__":
    {"tenant": tenant, "show": show, "session": session}[sys.argv[1]](*sys.argv[2:])
