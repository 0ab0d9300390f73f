"""Drive the back office through /api/v1 using only its OpenAPI document and an API key.

    python tools/backoffice_demo.py --base http://127.0.0.1:5000 --key "$PAYOUTS_API_KEY" \\
        --incident DEMO-API-1 --losses losses.csv

Every path is looked up in /api/v1/openapi.json by operation (method + path template), so
the script follows the document rather than hard-coded URLs. Steps: create an incident, set
its prices, upload the loss file, open claims, then preview and commit the allocation and list
payments until none is pending.

Claims must be approved before an allocation pays them, and approvals are made by people in
the back office (they need a user; API keys are not people). The script stops after opening
the claims with a message; run it again with --allocate once the claims are approved.
Standard library only; every POST carries an Idempotency-Key, so re-running is safe.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any


class Api:
    def __init__(self, base: str, key: str) -> None:
        self.base = base.rstrip("/")
        self.key = key
        self.spec = self._send("GET", "/api/v1/openapi.json", auth=False)

    def path(self, method: str, template: str, **params: str) -> str:
        """The operation's path from the document (fails if the API does not offer it)."""
        for path, item in self.spec["paths"].items():
            if path.endswith(template) and method.lower() in item:
                for name, value in params.items():
                    path = path.replace("{" + name + "}", urllib.request.quote(str(value), safe=""))
                return path
        raise SystemExit(f"the API document has no {method} …{template}")

    def _send(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
              auth: bool = True) -> Any:
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=dict(headers or {}))
        if auth:
            request.add_header("Authorization", f"Bearer {self.key}")
        try:
            with urllib.request.urlopen(request) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            error = json.loads(exc.read() or b"{}").get("error", {})
            raise SystemExit(f"{method} {path}: {exc.code} {error.get('code')}: {error.get('message')}") from None

    def get(self, template: str, query: str = "", **params: str) -> Any:
        return self._send("GET", self.path("get", template, **params) + query)

    def post(self, template: str, payload: Any = None, *, files: dict[str, tuple[str, bytes]] | None = None,
             key: str, **params: str) -> Any:
        headers = {"Idempotency-Key": key}
        if files:
            boundary = uuid.uuid4().hex
            parts = []
            for name, (filename, content) in files.items():
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                             "Content-Type: text/csv\r\n\r\n".encode() + content + b"\r\n")
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        else:
            body = json.dumps(payload or {}).encode()
            headers["Content-Type"] = "application/json"
        return self._send("POST", self.path("post", template, **params), body, headers)


#: Payment states that are still on their way to the bank.
IN_FLIGHT = ("pending", "submitting", "submitted", "retrying")


def wait_for_payments(api: Api, ref: str) -> None:
    """Poll the incident's payments, page by page, until none is still on its way."""
    while True:
        pending, after = 0, ""
        while True:
            page = api.get("/disbursements", f"?incident={ref}&limit=200" + (f"&after={after}" if after else ""))
            pending += sum(1 for d in page["items"] if d["state"] in IN_FLIGHT)
            if not page["next"]:
                break
            after = page["next"]
        if pending == 0:
            return
        print(f"payments still in flight: {pending}")
        time.sleep(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="http://127.0.0.1:5000")
    parser.add_argument("--key", required=True, help="an API key with the staff, approver or admin scope")
    parser.add_argument("--incident", default="DEMO-API-1")
    parser.add_argument("--losses", help="a loss CSV (customer_ref,asset,amount,name)")
    parser.add_argument("--price", action="append", default=[], metavar="ASSET=YEN",
                        help="a reference price, e.g. BTC=10000000 (repeatable)")
    parser.add_argument("--allocate", action="store_true", help="claims are approved: preview, commit, watch payments")
    args = parser.parse_args()
    api = Api(args.base, args.key)
    ref = args.incident

    if not args.allocate:
        api.post("/incidents", {"ref": ref, "title": f"Demo incident {ref}", "incident_type": "hack",
                                "occurred_at": "2026-01-05T09:00:00+09:00",
                                "discovered_at": "2026-01-05T10:00:00+09:00"}, key=f"{ref}:create")
        print(f"incident {ref} recorded")
        for pair in args.price or ["BTC=10000000"]:
            asset, _, yen = pair.partition("=")
            api.post("/incidents/{ref}/prices", {"asset": asset, "price": yen, "source": "demo script"},
                     key=f"{ref}:price:{asset}", ref=ref)
            print(f"price {asset} = ¥{yen}")
        if args.losses:
            with open(args.losses, "rb") as handle:
                content = handle.read()
            result = api.post("/incidents/{ref}/loss-imports", files={"file": (args.losses, content)},
                              key=f"{ref}:losses", ref=ref)
            print(f"loss file: {result['outcome']}, {result['row_count']} rows (import #{result['id']})")
        opened = api.post("/incidents/{ref}/claims/open", key=f"{ref}:open", ref=ref)
        print(f"{opened['opened']} claims opened to customers")
        print("Claims must now be approved by people in the back office (/staff/claims); then run again with"
              " --allocate.")
        return

    preview = api.get("/incidents/{ref}/allocation/preview", ref=ref)
    print(f"preview: eligible ¥{preview['total_eligible_jpy']:,}, funded ¥{preview['total_funded_jpy']:,},"
          f" shortfall ¥{preview['shortfall_jpy']:,}")
    if not preview["customers"]:
        sys.exit("no approved claims yet: approve them in the back office first")
    run = api.post("/incidents/{ref}/allocation-runs", {"digest": preview["digest"]}, key=f"{ref}:commit", ref=ref)
    print(f"allocation run #{run['id']} committed")
    wait_for_payments(api, ref)
    recon = api.get("/incidents/{ref}/reconciliation", ref=ref)
    print(f"paid ¥{recon['paid_jpy']:,}; balanced: {recon['balanced']}")
    # Each insurer pays its layer's share; then that part of every payout goes out too.
    for line in recon["sources"]:
        if line["awaiting_funds_jpy"]:
            paid = api.post("/incidents/{ref}/insurer-payments",
                            {"layer": line["source_id"], "amount_jpy": line["awaiting_funds_jpy"]},
                            key=f"{ref}:insurer:{line['source_id']}", ref=ref)
            print(f"insurer paid layer {paid['layer']}: ¥{paid['received_jpy']:,}; instructed: {paid['instructed']}")
    wait_for_payments(api, ref)
    recon = api.get("/incidents/{ref}/reconciliation", ref=ref)
    for line in recon["sources"]:
        print(f"  {line['source_id']:<8} allocated ¥{line['allocated_jpy']:,}  instructed ¥{line['instructed_jpy']:,}"
              f"  awaiting ¥{line['awaiting_funds_jpy']:,}")
    failed = [d for d in api.get("/disbursements", f"?incident={ref}&state=needs_attention&limit=200")["items"]]
    print(f"paid ¥{recon['paid_jpy']:,}; needing attention ¥{recon['failed_jpy']:,} ({len(failed)} payments);"
          f" reconciled to the yen: {recon['balanced']}")


if __name__ == "__main__":
    main()
