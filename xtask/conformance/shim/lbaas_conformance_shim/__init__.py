"""octavia-tempest-plugin 3.5.0 reads `[load_balancer] test_IPv6_subnet_override` (test_base.py)
but registers the option as `test_ipv6_subnet_override`, so with IPv6 tests on and a network
override every test class fails with NoSuchOptError. This plugin registers the spelling it
reads; it adds no tests and changes none.

The plugin's TLS tests look for `[service_available] barbican`, which barbican-tempest-plugin
registers (it is not installed here: the suite talks to Barbican through python-barbicanclient).
This plugin registers that option too, off unless tempest.conf turns it on.
"""

import os

from oslo_config import cfg
from tempest.test_discover import plugins


class Plugin(plugins.TempestPlugin):
    def load_tests(self):
        # This package's own folder, which holds no tests (the site-packages folder above it
        # would have discovery import every installed package).
        here = os.path.dirname(os.path.abspath(__file__))
        return here, os.path.dirname(here)

    def register_opts(self, conf):
        conf.register_opt(
            cfg.StrOpt("test_IPv6_subnet_override",
                       help="The IPv6 subnet the suite's tests use (as the plugin reads it)."),
            group="load_balancer")
        conf.register_opt(
            cfg.BoolOpt("barbican", default=False,
                        help="Whether a Barbican key manager is in the catalog."),
            group="service_available")

    def get_opt_lists(self):
        return []
