"""Creates the Lambda functions the example policies refer to, in a local moto server.

trustsync manages who may invoke a function and which role it runs as, never the
function itself, so the demo needs the functions to exist first. Uses boto3, which
moto installs. Usage: seed_demo.py ENDPOINT_URL [FUNCTION_NAME ...] (default: payments-api)
"""
import io
import json
import sys
import zipfile

import boto3

endpoint = sys.argv[1]
session = boto3.session.Session(aws_access_key_id="demo", aws_secret_access_key="demo", region_name="us-east-1")
iam = session.client("iam", endpoint_url=endpoint)
lam = session.client("lambda", endpoint_url=endpoint)

trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
try:
    role = iam.create_role(RoleName="bootstrap-lambda-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
except iam.exceptions.EntityAlreadyExistsException:
    role = iam.get_role(RoleName="bootstrap-lambda-role")["Role"]

code = io.BytesIO()
with zipfile.ZipFile(code, "w") as z:
    z.writestr("index.py", "def handler(event, context):\n    return {'ok': True}\n")
for name in sys.argv[2:] or ["payments-api"]:
    try:
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=role["Arn"], Handler="index.handler", Code={"ZipFile": code.getvalue()})
        print(f"created function {name} (running as {role['RoleName']})")
    except lam.exceptions.ResourceConflictException:
        print(f"function {name} already exists")
