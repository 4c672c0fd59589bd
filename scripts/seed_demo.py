"""Creates the Lambda functions the example policies refer to, in a local moto server.

trustsync manages who may invoke a function and which role it runs as, never the
function itself, so the demo needs the functions to exist first. Uses boto3, which
moto installs. Usage:

    seed_demo.py ENDPOINT_URL [--account ID ...] [FUNCTION_NAME ...]   (default: payments-api)

With --account (repeatable), the functions are made in each of those accounts (moto keeps
state per account: credentials from AssumeRole into a role of the account act in it), and
each account also gets the spoke role a hub controller assumes there, trusting the hub
account.
"""
import io
import json
import sys
import zipfile

import boto3

endpoint = sys.argv[1]
args = sys.argv[2:]
accounts = []
while args[:1] == ["--account"]:
    accounts.append(args[1])
    args = args[2:]
names = args or ["payments-api"]
hub = boto3.session.Session(aws_access_key_id="demo", aws_secret_access_key="demo", region_name="us-east-1")

code = io.BytesIO()
with zipfile.ZipFile(code, "w") as z:
    z.writestr("index.py", "def handler(event, context):\n    return {'ok': True}\n")


def in_account(account):
    """A session acting in `account`, which gets the spoke role."""
    spoke = f"arn:aws:iam::{account}:role/trustsync-spoke"
    creds = hub.client("sts", endpoint_url=endpoint).assume_role(RoleArn=spoke, RoleSessionName="seed")["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name="us-east-1",
    )
    iam = session.client("iam", endpoint_url=endpoint)
    hub_trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]}
    try:
        iam.create_role(RoleName="trustsync-spoke", AssumeRolePolicyDocument=json.dumps(hub_trust))
        print(f"created the spoke role in {account}")
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    return session


# The permissions boundary every role trustsync makes must carry (the demo config's
# permissionsBoundaries): what a workload role may do at most. Made once per account.
BOUNDARY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["lambda:*", "s3:GetObject", "s3:ListBucket", "logs:*", "sts:GetWebIdentityToken"], "Resource": "*"},
]}


def seed(session):
    iam = session.client("iam", endpoint_url=endpoint)
    lam = session.client("lambda", endpoint_url=endpoint)
    try:
        iam.create_policy(PolicyName="trustsync-workload-boundary", PolicyDocument=json.dumps(BOUNDARY))
        print("created the permissions boundary trustsync-workload-boundary")
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    try:
        role = iam.create_role(RoleName="bootstrap-lambda-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    except iam.exceptions.EntityAlreadyExistsException:
        role = iam.get_role(RoleName="bootstrap-lambda-role")["Role"]
    for name in names:
        try:
            lam.create_function(FunctionName=name, Runtime="python3.12", Role=role["Arn"], Handler="index.handler", Code={"ZipFile": code.getvalue()})
            print(f"created function {name} (running as {role['RoleName']})")
        except lam.exceptions.ResourceConflictException:
            print(f"function {name} already exists")


for session in [in_account(a) for a in accounts] or [hub]:
    seed(session)
