"""The launch contract, read with the rules and in the words of the Rust
runtime (the cases are those of modules/src/runtime/contract.rs)."""

import unittest

from mgr_module.contract import Contract, ContractError, parse_socket_addr

BASE = {
    "MGR_RUN": "lab1",
    "MGR_SELF": "p2",
    "MGR_ADDR": "127.0.0.1:7002",
    "MGR_PEERS": "p1=127.0.0.1:7001,p2=127.0.0.1:7002,p3=127.0.0.1:7003",
    "MGR_MEMBER": "m1",
}


def parse(vars):
    return Contract.from_lookup(vars.get)


def with_(var, value, base=BASE):
    vars = dict(base)
    vars[var] = value
    return parse(vars)


def error(vars):
    try:
        parse(vars)
    except ContractError as err:
        return str(err)
    raise AssertionError("no error for %r" % vars)


def error_with(var, value, base=BASE):
    vars = dict(base)
    vars[var] = value
    return error(vars)


class ContractTest(unittest.TestCase):
    def test_parses_a_complete_contract(self):
        vars = dict(BASE, MGR_UDP_FD="5", MGR_EVENTS="/tmp/events.jsonl", MGR_DIR="/tmp/p2")
        c = parse(vars)
        self.assertEqual((c.run, c.self_name, c.member), ("lab1", "p2", "m1"))
        self.assertEqual(str(c.addr), "127.0.0.1:7002")
        self.assertEqual([name for name, _ in c.peers], ["p1", "p2", "p3"])
        self.assertEqual(c.udp_fd, 5)
        self.assertEqual(c.events_path, "/tmp/events.jsonl")
        self.assertEqual(c.dir, "/tmp/p2")
        self.assertEqual(c.peer_addr("p3"), parse_socket_addr("127.0.0.1:7003"))
        self.assertIsNone(c.peer_addr("p9"))
        self.assertEqual(c.peer_name(parse_socket_addr("127.0.0.1:7001")), "p1")
        self.assertIsNone(c.peer_name(parse_socket_addr("127.0.0.1:9999")))
        self.assertEqual(c.peer_list(), "p1, p2, p3")
        self.assertEqual(c.index(), 1)
        self.assertEqual(c.incarnation, 1)
        self.assertEqual(c.id_base(), 0)

    def test_a_scale_gives_a_new_table_that_must_still_list_this_process(self):
        c = parse(BASE)
        c.retable("p1=127.0.0.1:7001,p2=127.0.0.1:7002,p4=127.0.0.1:7004", "")
        self.assertEqual([name for name, _ in c.peers], ["p1", "p2", "p4"])
        with self.assertRaises(ContractError):
            c.retable("p1=127.0.0.1:7001", "")
        with self.assertRaises(ContractError):
            c.retable("p1=127.0.0.1:7001,p2=127.0.0.1:9999", "")
        self.assertEqual([name for name, _ in c.peers], ["p1", "p2", "p4"], "an error changes nothing")

    def test_optional_variables_may_be_unset_or_empty(self):
        c = parse(BASE)
        self.assertEqual((c.udp_fd, c.events_path, c.dir, c.control_fd), (None, None, None, None))
        self.assertIsNone(with_("MGR_EVENTS", "").events_path)
        self.assertEqual(with_("MGR_INCARNATION", "").incarnation, 1)

    def test_missing_and_empty_variables_are_named(self):
        vars = dict(BASE)
        del vars["MGR_MEMBER"]
        self.assertEqual(error(vars), "MGR_MEMBER: not set")
        self.assertEqual(error_with("MGR_SELF", ""), "MGR_SELF: empty")
        self.assertEqual(error_with("MGR_RUN", b"\xff"), "MGR_RUN: not valid UTF-8")
        # os.environ keeps undecodable bytes as surrogates.
        self.assertEqual(error_with("MGR_RUN", "lab\udcff"), "MGR_RUN: not valid UTF-8")

    def test_variables_are_checked_in_the_order_of_the_rust_runtime(self):
        self.assertEqual(error({}), "MGR_RUN: not set")
        self.assertEqual(error({"MGR_RUN": "r"}), "MGR_SELF: not set")
        self.assertEqual(error(dict(BASE, MGR_ADDR="x", MGR_PEERS="y")), "MGR_ADDR: 'x' is not an ip:port address")

    def test_bad_addresses_are_rejected(self):
        self.assertEqual(error_with("MGR_ADDR", "localhost"), "MGR_ADDR: 'localhost' is not an ip:port address")
        self.assertEqual(error_with("MGR_PEERS", "p1=127.0.0.1:7001,p2"), "MGR_PEERS: entry 'p2' has no '='")
        self.assertEqual(
            error_with("MGR_PEERS", "p1=1.2.3.4,p2=127.0.0.1:7002"),
            "MGR_PEERS: entry 'p1=1.2.3.4': '1.2.3.4' is not an ip:port address",
        )
        self.assertEqual(
            error_with("MGR_PEERS", "=127.0.0.1:1,p2=127.0.0.1:7002"),
            "MGR_PEERS: entry '=127.0.0.1:1' has an empty name",
        )

    def test_addresses_are_read_as_rust_reads_them(self):
        for good, shown in [
            ("127.0.0.1:7002", "127.0.0.1:7002"),
            ("0.0.0.0:0", "0.0.0.0:0"),
            ("10.0.0.1:007", "10.0.0.1:7"),
            ("[::1]:7001", "[::1]:7001"),
            ("[0:0::1]:80", "[::1]:80"),
            ("[fe80::1%2]:80", "[fe80::1%2]:80"),
            ("[::ffff:1.2.3.4]:80", "[::ffff:1.2.3.4]:80"),
        ]:
            self.assertEqual(str(parse_socket_addr(good)), shown, good)
        for bad in [
            "localhost:80",
            "127.0.0.1",
            "127.0.0.01:80",
            "256.0.0.1:80",
            "1.2.3:80",
            "1.2.3.4:65536",
            "1.2.3.4:-1",
            "1.2.3.4:+1",
            "1.2.3.4: 80",
            "::1:80",
            "[::1]",
            "[::1]:",
            "[fe80::1%eth0]:80",
            "[1.2.3.4]:80",
            "1.2.3.\u0664:80",
        ]:
            self.assertIsNone(parse_socket_addr(bad), bad)

    def test_peers_must_be_unique_and_include_self(self):
        self.assertEqual(
            error_with("MGR_PEERS", "p2=127.0.0.1:7002,p2=127.0.0.1:7003"), "MGR_PEERS: process 'p2' is listed twice"
        )
        self.assertEqual(
            error_with("MGR_PEERS", "p1=127.0.0.1:7002,p2=127.0.0.1:7002"),
            "MGR_PEERS: address 127.0.0.1:7002 is listed twice",
        )
        self.assertEqual(error_with("MGR_PEERS", "p1=127.0.0.1:7001"), "MGR_PEERS: does not list MGR_SELF 'p2'")
        self.assertEqual(
            error_with("MGR_PEERS", "p2=127.0.0.1:7009"),
            "MGR_PEERS: lists 'p2' at 127.0.0.1:7009 but MGR_ADDR is 127.0.0.1:7002",
        )

    def test_peers_tolerate_spaces_trailing_commas_and_ipv6(self):
        c = with_("MGR_PEERS", " p1=[::1]:7001 , p2=127.0.0.1:7002,")
        self.assertEqual(len(c.peers), 2)
        self.assertEqual(c.peer_addr("p1"), parse_socket_addr("[::1]:7001"))

    def test_descriptors_must_be_plain_numbers_above_2(self):
        self.assertEqual(with_("MGR_UDP_FD", "3").udp_fd, 3)
        self.assertEqual(with_("MGR_CONTROL_FD", "+7").control_fd, 7)
        for bad in ["x", "-1", "0", "2", "3.0", "99999999999"]:
            for var in ["MGR_UDP_FD", "MGR_CONTROL_FD"]:
                self.assertEqual(error_with(var, bad), "%s: '%s' is not a descriptor number above 2" % (var, bad))

    def test_without_roles_every_peer_is_a_role_peer(self):
        c = parse(BASE)
        self.assertEqual((c.role, c.roles, c.multicast), (None, [], None))
        self.assertEqual(c.role_peers(), c.peers)
        self.assertTrue(c.is_role_peer("p3"))
        self.assertFalse(c.is_role_peer("p9"))
        self.assertEqual(c.rank_in_role(), 1)
        self.assertEqual(c.role_instances("peer"), [])
        self.assertIsNone(c.first_of_role("comparator"))

    def test_roles_name_their_instances_and_ours(self):
        c = parse(dict(BASE, MGR_ROLE="peer", MGR_ROLES="comparator=p1; peer=p2,p3;"))
        self.assertEqual(c.role, "peer")
        self.assertEqual(c.roles, [("comparator", ["p1"]), ("peer", ["p2", "p3"])])
        self.assertEqual([n for n, _ in c.role_peers()], ["p2", "p3"])
        self.assertEqual(c.first_of_role("comparator"), ("p1", parse_socket_addr("127.0.0.1:7001")))
        self.assertEqual(c.role_of("p1"), "comparator")
        self.assertTrue(c.is_role_peer("p3") and not c.is_role_peer("p1"))
        self.assertEqual(c.rank_in_role(), 0)
        # MGR_ROLES alone is enough: it says which role MGR_SELF is in.
        c = parse(dict(BASE, MGR_ROLES="a=p1,p2;b=p3"))
        self.assertEqual(c.role, "a")
        self.assertEqual(c.rank_in_role(), 1)

    def test_malformed_roles_are_named(self):
        def err(**pairs):
            return error(dict(BASE, **pairs))

        self.assertEqual(
            err(MGR_ROLES="peer:p1,p2,p3"), "MGR_ROLES: entry 'peer:p1,p2,p3' has no '=' (expected role=p1,p2;role=p3)"
        )
        self.assertEqual(err(MGR_ROLES="=p1,p2,p3"), "MGR_ROLES: entry '=p1,p2,p3' has an empty role name")
        self.assertEqual(err(MGR_ROLES="peer=p1,p2,p3;cmp="), "MGR_ROLES: role 'cmp' has no instances")
        self.assertEqual(err(MGR_ROLES="peer=p1,p2;peer=p3"), "MGR_ROLES: role 'peer' is listed twice")
        self.assertEqual(
            err(MGR_ROLES="peer=p1,p2,p3,p4"), "MGR_ROLES: role 'peer' lists 'p4', which is not in MGR_PEERS"
        )
        self.assertEqual(err(MGR_ROLES="peer=p1,p2;cmp=p2,p3"), "MGR_ROLES: 'p2' is in two roles, 'peer' and 'cmp'")
        self.assertEqual(err(MGR_ROLES="peer=p1,p1,p2,p3"), "MGR_ROLES: role 'peer' lists 'p1' twice")
        self.assertEqual(err(MGR_ROLES="peer=p1,p2"), "MGR_ROLES: 'p3' of MGR_PEERS is in no role")
        self.assertEqual(
            err(MGR_ROLE="cmp", MGR_ROLES="peer=p1,p2;cmp=p3"),
            "MGR_ROLE: 'cmp', but MGR_ROLES lists MGR_SELF 'p2' in role 'peer'",
        )
        self.assertEqual(err(MGR_ROLE="peer"), "MGR_ROLE: set to 'peer' but MGR_ROLES is not set")
        self.assertIsNone(parse(dict(BASE, MGR_ROLE="", MGR_ROLES="")).role)

    def test_the_multicast_group_must_be_an_ipv4_group_and_port(self):
        self.assertEqual(str(with_("MGR_MULTICAST", "239.1.2.3:5000").multicast), "239.1.2.3:5000")
        self.assertIsNone(with_("MGR_MULTICAST", "").multicast)
        self.assertEqual(
            error_with("MGR_MULTICAST", "239.1.2.3"), "MGR_MULTICAST: '239.1.2.3' is not an IPv4 ip:port address"
        )
        self.assertEqual(
            error_with("MGR_MULTICAST", "[ff02::1]:5000"),
            "MGR_MULTICAST: '[ff02::1]:5000' is not an IPv4 ip:port address",
        )
        self.assertEqual(
            error_with("MGR_MULTICAST", "10.0.0.1:5000"),
            "MGR_MULTICAST: 10.0.0.1 is not an IP multicast address (224.0.0.0/4)",
        )
        self.assertEqual(error_with("MGR_MULTICAST", "239.1.2.3:0"), "MGR_MULTICAST: 239.1.2.3:0 has port 0")

    def test_the_incarnation_is_a_whole_number_of_at_least_1(self):
        self.assertEqual(with_("MGR_INCARNATION", "1").incarnation, 1)
        c = with_("MGR_INCARNATION", "3")
        self.assertEqual(c.incarnation, 3)
        self.assertEqual(c.id_base(), 2_000_000_000)
        self.assertEqual(with_("MGR_INCARNATION", "1000000").id_base(), 999_999_000_000_000)
        for bad in ["0", "x", "-1", "1.5", " 2", "1000001", "18446744073709551616"]:
            self.assertEqual(
                error_with("MGR_INCARNATION", bad),
                "MGR_INCARNATION must be a whole number of at least 1, not '%s'" % bad,
            )


if __name__ == "__main__":
    unittest.main()
