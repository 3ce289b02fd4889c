"""openstacksdk and the `openstack loadbalancer` CLI against a real lbaasd, unchanged.

Starts `lbaasd serve` (token auth) on a loopback port with the bundled drivers and a fake
HAProxy device agent, then drives the Octavia flows through both clients. Run by
scripts/test inside a virtual environment that has openstacksdk, python-openstackclient and
python-octaviaclient.
"""

import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openstack

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LBAASD = os.path.join(ROOT, "target", "debug", "lbaasd")
DRIVERS = os.path.join(ROOT, "target", "wasm", "wasm32-wasip2", "release")
TOKENS = {
    "admin-token": {"project_id": "admin-project", "roles": ["admin"]},
    "alice-token": {"project_id": "project-a", "roles": ["load-balancer_member"]},
    "bob-token": {"project_id": "project-b", "roles": ["load-balancer_member"]},
}


class Agent(BaseHTTPRequestHandler):
    """A device agent that accepts every configuration and remembers it (the real one,
    lbaas-agent with HAProxy, is exercised with traffic by tests/tests/dataplane.rs)."""

    received = []

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode()
        Agent.received.append((self.command, self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        # Statistics as lbaas-agent reports them: nothing to report here.
        self.wfile.write(b'{"rows": []}' if self.path.endswith("/stats") else b"{}")

    do_PUT = do_DELETE = do_POST = do_GET = _answer

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, method, path, token, body=None):
    request = urllib.request.Request(
        url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json", "x-auth-token": token},
    )
    with urllib.request.urlopen(request) as response:
        text = response.read().decode()
        return json.loads(text) if text else None


class OpenStackClients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        tokens = os.path.join(cls.tmp.name, "tokens.json")
        with open(tokens, "w") as f:
            json.dump(TOKENS, f)
        cls.agent = ThreadingHTTPServer(("127.0.0.1", 0), Agent)
        threading.Thread(target=cls.agent.serve_forever, daemon=True).start()
        port = free_port()
        cls.url = f"http://127.0.0.1:{port}"
        cls.log = open(os.path.join(cls.tmp.name, "lbaasd.log"), "w")
        cls.server = subprocess.Popen(
            [LBAASD, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
             os.path.join(cls.tmp.name, "data"), "--driver-dir", DRIVERS,
             "--auth", "tokens", "--tokens-file", tokens],
            stderr=cls.log,
        )
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(cls.url + "/healthz")
                break
            except OSError:
                if time.time() > deadline or cls.server.poll() is not None:
                    raise RuntimeError("lbaasd did not start")
                time.sleep(0.2)
        admin = "admin-token"
        call(cls.url, "POST", "/v2/admin/networks", admin, {"network": {
            "name": "public", "vlan": 100,
            "subnets": [{"name": "public-subnet", "cidr": "127.0.40.0/24"}]}})
        call(cls.url, "POST", "/v2/admin/devices", admin, {"device": {
            "name": "haproxy-1", "kind": "virtual", "driver": "haproxy",
            "management_url": f"http://127.0.0.1:{cls.agent.server_port}", "capacity": 20}})
        cls.admin = cls.connect(admin)
        for provider, data in (("haproxy", {"maxconn": 1000}), ("acme-adc", {"spread": "true"})):
            profile = cls.admin.load_balancer.create_flavor_profile(
                name=f"{provider}-profile", provider_name=provider, flavor_data=json.dumps(data))
            cls.admin.load_balancer.create_flavor(
                name=f"{provider}-flavor", flavor_profile_id=profile.id, is_enabled=True)

    @classmethod
    def tearDownClass(cls):
        cls.server.terminate()
        cls.server.wait(timeout=30)
        cls.agent.shutdown()
        cls.log.close()
        cls.tmp.cleanup()

    @classmethod
    def connect(cls, token):
        return openstack.connect(
            auth_type="admin_token",
            auth={"endpoint": cls.url, "token": token},
            load_balancer_api_version="2",
        )

    def flavor_id(self, name):
        return self.admin.load_balancer.find_flavor(name).id

    def subnet_id(self):
        subnets = call(self.url, "GET", "/v2.0/subnets?name=public-subnet", "admin-token")
        return subnets["subnets"][0]["id"]

    def test_sdk_flows(self):
        alice = self.connect("alice-token")
        lb = alice.load_balancer.create_load_balancer(
            name="sdk-lb", vip_subnet_id=self.subnet_id(), flavor_id=self.flavor_id("haproxy-flavor"),
            listeners=[{
                "name": "http", "protocol": "HTTP", "protocol_port": 80,
                "default_pool": {
                    "name": "web", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                    "members": [{"address": "10.0.1.11", "protocol_port": 8080}],
                    "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2},
                },
            }],
        )
        self.assertEqual(lb.provisioning_status, "PENDING_CREATE")
        lb = alice.load_balancer.wait_for_load_balancer(lb.id, status="ACTIVE", wait=60)
        self.assertEqual(lb.operating_status, "ONLINE")
        # The status tree has no proxy method: the SDK's adapter fetches it.
        tree = alice.load_balancer.get(f"/lbaas/loadbalancers/{lb.id}/status").json()
        listener = tree["statuses"]["loadbalancer"]["listeners"][0]
        pool_id = listener["pools"][0]["id"]
        self.assertEqual(len(listener["pools"][0]["members"]), 1)

        alice.load_balancer.create_member(pool_id, address="10.0.1.12", protocol_port=8080, weight=3)
        alice.load_balancer.wait_for_load_balancer(lb.id, status="ACTIVE", wait=60)
        members = list(alice.load_balancer.members(pool_id))
        self.assertEqual(sorted(m.address for m in members), ["10.0.1.11", "10.0.1.12"])

        # The batch member update, through the SDK's own adapter.
        response = alice.load_balancer.put(f"/lbaas/pools/{pool_id}/members", json={"members": [
            {"address": "10.0.1.20", "protocol_port": 8080}]})
        self.assertEqual(response.status_code, 202)
        alice.load_balancer.wait_for_load_balancer(lb.id, status="ACTIVE", wait=60)
        self.assertEqual([m.address for m in alice.load_balancer.members(pool_id)], ["10.0.1.20"])

        alice.load_balancer.update_pool(pool_id, lb_algorithm="LEAST_CONNECTIONS")
        alice.load_balancer.wait_for_load_balancer(lb.id, status="ACTIVE", wait=60)
        self.assertEqual(alice.load_balancer.get_pool(pool_id).lb_algorithm, "LEAST_CONNECTIONS")
        configs = [body for method, path, body in Agent.received if method == "PUT" and lb.id in path]
        self.assertIn("balance leastconn", configs[-1])

        stats = alice.load_balancer.get_load_balancer_statistics(lb.id)
        self.assertEqual(stats.total_connections, 0)

        bob = self.connect("bob-token")
        self.assertEqual(list(bob.load_balancer.load_balancers()), [])
        self.assertIsNone(bob.load_balancer.find_load_balancer(lb.id, ignore_missing=True))

        alice.load_balancer.delete_load_balancer(lb.id, cascade=True)
        alice.load_balancer.wait_for_delete(alice.load_balancer.get_load_balancer(lb.id), wait=60)
        self.assertIsNone(alice.load_balancer.find_load_balancer(lb.id, ignore_missing=True))

    def cli(self, token, *args):
        command = [os.environ.get("OPENSTACK_CLI", "openstack"), "--os-auth-type", "admin_token",
                   "--os-token", token, "--os-endpoint", self.url, *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180)
        self.assertEqual(result.returncode, 0, f"{args}: {result.stderr}")
        return json.loads(result.stdout) if "-f" in args else result.stdout

    def test_cli_flows(self):
        # The operator's side: a service type per bundled driver.
        for provider, data in (("haproxy", '{"spawn-capacity": 4}'), ("acme-adc", '{"cluster": "east"}')):
            profile = self.cli("admin-token", "loadbalancer", "flavorprofile", "create", "--name",
                               f"cli-{provider}", "--provider", provider, "--flavor-data", data, "-f", "json")
            flavor = self.cli("admin-token", "loadbalancer", "flavor", "create", "--name", f"cli-{provider}",
                              "--flavorprofile", profile["id"], "--enable", "-f", "json")
            self.assertEqual(flavor["enabled"], True)
        caps = self.cli("admin-token", "loadbalancer", "provider", "capability", "list", "haproxy", "-f", "json")
        self.assertIn("maxconn", [c["name"] for c in caps])

        lb = self.cli("alice-token", "loadbalancer", "create", "--name", "cli-lb",
                      "--vip-subnet-id", "public-subnet", "--flavor", "cli-haproxy", "--wait", "-f", "json")
        self.assertEqual(lb["provisioning_status"], "ACTIVE")
        listener = self.cli("alice-token", "loadbalancer", "listener", "create", "--name", "tcp",
                            "--protocol", "TCP", "--protocol-port", "5432", "--wait", "-f", "json", lb["id"])
        pool = self.cli("alice-token", "loadbalancer", "pool", "create", "--name", "db", "--protocol", "TCP",
                        "--lb-algorithm", "SOURCE_IP", "--listener", listener["id"], "--wait", "-f", "json")
        member = self.cli("alice-token", "loadbalancer", "member", "create", "--address", "10.0.2.31",
                          "--protocol-port", "5432", "--wait", "-f", "json", pool["id"])
        self.cli("alice-token", "loadbalancer", "member", "set", "--weight", "7", "--wait", pool["id"], member["id"])
        shown = self.cli("alice-token", "loadbalancer", "member", "show", "-f", "json", pool["id"], member["id"])
        self.assertEqual(shown["weight"], 7)
        self.cli("alice-token", "loadbalancer", "healthmonitor", "create", "--type", "TCP", "--delay", "5",
                 "--timeout", "3", "--max-retries", "3", "--wait", "-f", "json", pool["id"])
        status = self.cli("alice-token", "loadbalancer", "status", "show", lb["id"])
        tree = json.loads(status)["loadbalancer"]
        self.assertEqual(tree["provisioning_status"], "ACTIVE")
        self.assertEqual(tree["listeners"][0]["pools"][0]["members"][0]["address"], "10.0.2.31")
        self.cli("alice-token", "loadbalancer", "pool", "set", "--lb-algorithm", "ROUND_ROBIN", "--wait", pool["id"])
        shown = self.cli("alice-token", "loadbalancer", "pool", "show", "-f", "json", pool["id"])
        self.assertEqual(shown["lb_algorithm"], "ROUND_ROBIN")
        listed = self.cli("bob-token", "loadbalancer", "list", "-f", "json")
        self.assertEqual(listed, [])
        self.cli("alice-token", "loadbalancer", "delete", "--cascade", "--wait", lb["id"])
        listed = self.cli("alice-token", "loadbalancer", "list", "-f", "json")
        self.assertNotIn(lb["id"], [item["id"] for item in listed])


if __name__ == "__main__":
    unittest.main(verbosity=2)
