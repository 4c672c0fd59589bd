"""A stand-in for an AWS account's outbound identity federation issuer, for the demo.

moto has no outbound identity federation, so the demo plays AWS's part here with the test
key of tests/fixtures (it protects nothing):

  outbound_issuer.py serve
      serves /.well-known/openid-configuration and /.well-known/jwks.json on a free
      loopback port and prints `issuer at http://127.0.0.1:PORT` first.
  outbound_issuer.py exchange ISSUER GRAPH TENANT APP_ID ROLE_ARN
      does what the function does: signs a token as sts:GetWebIdentityToken would give the
      role (iss = ISSUER, sub = ROLE_ARN, aud = api://AzureADTokenExchange, 300 s) and
      presents it to Entra's token endpoint (the local Graph server) as the client
      assertion of APP_ID. Prints the outcome; exit 0 only when Entra issued a token.

Only the Python standard library and `cryptography` (installed with moto) are used.
"""

import base64
import http.server
import json
import pathlib
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
EXCHANGE = "api://AzureADTokenExchange"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def serve() -> None:
    jwks = (FIXTURES / "outbound-issuer-jwks.json").read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), None)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    discovery = json.dumps(
        {
            "issuer": url,
            "jwks_uri": f"{url}/.well-known/jwks.json",
            "id_token_signing_alg_values_supported": ["RS256"],
        }
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            body = {
                "/.well-known/openid-configuration": discovery,
                "/.well-known/jwks.json": jwks,
            }.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body or b"{}")))
            self.end_headers()
            self.wfile.write(body or b"{}")

        def log_message(self, *args) -> None:
            pass

    server.RequestHandlerClass = Handler
    print(f"issuer at {url}", flush=True)
    server.serve_forever()


def token(issuer: str, role_arn: str) -> str:
    key = serialization.load_pem_private_key(
        (FIXTURES / "outbound-issuer-key.pem").read_bytes(), password=None
    )
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": "outbound-test-1"}
    claims = {"iss": issuer, "sub": role_arn, "aud": EXCHANGE, "iat": now, "nbf": now - 5,
              "exp": now + 300}
    signing_input = ".".join(b64url(json.dumps(p).encode()) for p in (header, claims))
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def exchange(issuer: str, graph: str, tenant: str, app_id: str, role_arn: str) -> int:
    form = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": app_id,
            "scope": "https://graph.microsoft.com/.default",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": token(issuer, role_arn),
        }
    ).encode()
    req = urllib.request.Request(f"{graph}/{tenant}/oauth2/v2.0/token", data=form)
    try:
        answer = json.load(urllib.request.urlopen(req))
    except urllib.error.HTTPError as e:
        body = json.load(e)
        print(f"  Entra refused ({e.code}): {body.get('error_description', body)}")
        return 1
    print(
        f"  Entra issued a {answer['token_type']} token for application {app_id} "
        f"(expires in {answer['expires_in']} s) to {role_arn}: no secret anywhere"
    )
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve()
    elif sys.argv[1:2] == ["exchange"] and len(sys.argv) == 7:
        sys.exit(exchange(*sys.argv[2:]))
    else:
        sys.exit(__doc__)
