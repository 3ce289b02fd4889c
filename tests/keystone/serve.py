"""Serves Keystone's WSGI application on a loopback address, for the tests and the conformance
run: python serve.py HOST PORT, with OS_KEYSTONE_CONFIG_FILES naming keystone.conf.

Keystone parses the process's arguments as its own options, so it cannot run under a WSGI server
that has its own (gunicorn); the standard library's server is enough for a test deployment. It
answers one request at a time: Keystone's sqlite database refuses concurrent writers ("database
is locked", answered as 500s), and with cheap password hashing each answer takes milliseconds.
"""

import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    del sys.argv[1:]
    from keystone.wsgi.api import application

    server = make_server(host, port, application, WSGIServer, QuietHandler)
    print(f"keystone listening on http://{host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
