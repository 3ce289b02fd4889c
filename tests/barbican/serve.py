"""Serves Barbican's API (its stock paste pipeline, Keystone's auth_token in front) on a loopback
address, for the tests and the conformance run: python serve.py HOST PORT PASTE_INI, with HOME
naming a folder whose .barbican/barbican.conf says where the database, Keystone and the key
encryption key are (oslo.config looks there, and Barbican reads its options at import).

The standard library's server answers one request at a time, which Barbican's sqlite database
needs (it refuses concurrent writers).
"""

import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def main():
    host, port, paste = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    del sys.argv[1:]
    from paste import deploy

    application = deploy.loadapp(f"config:{paste}")
    server = make_server(host, port, application, WSGIServer, QuietHandler)
    print(f"barbican listening on http://{host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
