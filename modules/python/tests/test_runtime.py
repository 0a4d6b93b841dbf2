"""The runtime in one process: handlers called as the book names them,
commands, timers, routing between layers, and the one send path with its
faults. Real sockets on 127.0.0.1 where datagrams travel; a recording
socket where only the decisions of the send path matter."""

import contextlib
import io
import socket
import time
import unittest

from mgr_module import (
    BROADCAST_HELP,
    BestEffortBroadcast,
    Contract,
    Faults,
    Module,
    PerfectLink,
    ReliableBroadcast,
    Runtime,
    UsageError,
    period_arg,
)
from mgr_module.events import EventLog
from mgr_module.runtime import prepare


def contract(name, addrs, **extra):
    vars = {
        "MGR_RUN": "t",
        "MGR_SELF": name,
        "MGR_ADDR": addrs[int(name[1:]) - 1],
        "MGR_PEERS": ",".join("p%d=%s" % (i + 1, a) for i, a in enumerate(addrs)),
        "MGR_MEMBER": "m1",
    }
    vars.update(extra)
    return Contract.from_lookup(vars.get)


class Recorder:
    """A socket that records what the send path hands it."""

    def __init__(self):
        self.sent = []

    def sendto(self, payload, addr):
        self.sent.append((payload, addr))


class Cluster:
    """n runtimes in this process on real loopback sockets, pumped in turn."""

    def __init__(self, n, faults="", **extra):
        self.socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
        for s in self.socks:
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
        addrs = ["127.0.0.1:%d" % s.getsockname()[1] for s in self.socks]
        self.runtimes = []
        for i, s in enumerate(self.socks):
            c = contract("p%d" % (i + 1), addrs, **extra)
            events = EventLog(None, c.run, c.self_name, c.index(), len(c.peers), c.incarnation)
            rt = Runtime(c, s, events, Faults.parse(faults))
            rt.selector.register(s, 1, rt._on_socket)
            self.runtimes.append(rt)

    def start(self, make):
        self.modules = [make() for _ in self.runtimes]
        for rt, m in zip(self.runtimes, self.modules):
            rt.start(m)
        return self.modules

    def pump(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for rt in self.runtimes:
                rt.step(max_wait=0.005)

    def until(self, condition, seconds=10.0):
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            self.pump(0.02)
        return condition()

    def close(self):
        for s in self.socks:
            s.close()


@contextlib.contextmanager
def stdout():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        yield out


class Greeter(Module):
    help = "  greet who text   greet someone\n  ping             answers pong\n  help             this list"

    def upon_init(self):
        self.calls = []

    def upon_greet(self, who, text):
        self.calls.append((who, text))

    def upon_ping(self):
        self.say("pong")


class CommandsTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(1)
        self.addCleanup(self.cluster.close)
        (self.module,) = self.cluster.start(Greeter)
        self.rt = self.cluster.runtimes[0]

    def test_commands_call_the_handler_named_after_the_verb(self):
        with stdout() as out:
            self.rt.line(b"greet p2   hello  there\n")
            self.rt.line("ping")
            self.rt.line("")
        self.assertEqual(self.module.calls, [("p2", "hello  there")])
        self.assertEqual(out.getvalue(), "pong\n")

    def test_refusals_are_those_of_the_rust_runtime(self):
        with stdout() as out:
            self.rt.line("greet p2")
            self.rt.line("ping now")
            self.rt.line("bogus x")
            self.rt.line("upon_init")
            self.rt.line("help")
        self.assertEqual(
            out.getvalue().splitlines(),
            [
                "error: usage: greet who text   greet someone",
                "error: usage: ping             answers pong",
                "error: unknown command 'bogus' (try: greet, ping, help)",
                "error: unknown command 'upon_init' (try: greet, ping, help)",
                "  greet who text   greet someone",
                "  ping             answers pong",
                "  help             this list",
            ],
        )
        self.assertEqual(self.module.calls, [])

    def test_a_verb_without_a_handler_is_found_at_start(self):
        class Forgetful(Module):
            help = "  jump   jumps\n  help   this list"

        cluster = Cluster(1)
        self.addCleanup(cluster.close)
        with self.assertRaisesRegex(TypeError, "'jump' in its help but has no upon_jump"):
            cluster.start(Forgetful)


class Timers(Module):
    def upon_init(self):
        self.fired = []
        self.start_timer("a", 0.05)
        self.start_timer("b", 0.01)
        self.start_timer("c", 0.01)
        self.cancel_timer("c")
        # Starting a timer again replaces its deadline.
        self.start_timer("b", 0.03)

    def upon_timeout(self, timer):
        self.fired.append(timer)


class Owner(Module):
    """Two perfect links of different instances in one process."""

    def upon_init(self):
        self.got = []
        self.left = PerfectLink(self, "left", period=0.05)
        self.right = PerfectLink(self, "right", period=0.05, deliver=lambda p, m: self.got.append(("right", p, m)))

    def upon_pl_deliver(self, p, m):
        self.got.append(("left", p, m))


class RuntimeTest(unittest.TestCase):
    def test_timers_fire_once_in_deadline_order_and_are_each_modules_own(self):
        cluster = Cluster(1)
        self.addCleanup(cluster.close)
        (module,) = cluster.start(Timers)
        cluster.pump(0.15)
        self.assertEqual(module.fired, ["b", "a"])

    def test_datagrams_go_to_the_component_that_owns_them(self):
        cluster = Cluster(2)
        self.addCleanup(cluster.close)
        p1, p2 = cluster.start(Owner)
        p1.left.send("p2", "to the left")
        p1.right.send("p2", "to the right")
        self.assertTrue(cluster.until(lambda: len(p2.got) == 2), p2.got)
        self.assertEqual(sorted(p2.got), [("left", "p1", "to the left"), ("right", "p1", "to the right")])
        # Both links are acknowledged (they are inside a module), so nothing
        # is left to retransmit.
        self.assertTrue(cluster.until(lambda: not p1.left.sl.sent and not p1.right.sl.sent))

    def test_an_indication_without_a_handler_says_which_to_write(self):
        class Careless(Module):
            def upon_init(self):
                self.pl = PerfectLink(self, "x")

        cluster = Cluster(1)
        self.addCleanup(cluster.close)
        (module,) = cluster.start(Careless)
        with self.assertRaisesRegex(AttributeError, r"Careless has no handler for <pl, Deliver>: define upon_pl_deliver"):
            module.pl.trigger("deliver", "p1", "m")

    def test_a_perfect_link_delivers_everything_once_through_loss(self):
        cluster = Cluster(2, faults="loss=0.5 seed=3")
        self.addCleanup(cluster.close)
        p1, p2 = cluster.start(Owner)
        for i in range(20):
            p1.left.send("p2", "m%d" % i)
        self.assertTrue(cluster.until(lambda: len(p2.got) == 20), len(p2.got))
        cluster.pump(0.2)
        self.assertEqual(sorted(m for _, _, m in p2.got), sorted("m%d" % i for i in range(20)))

    def test_broadcasts_deliver_at_every_process_with_their_numbers(self):
        cluster = Cluster(3, faults="loss=0.2 dup=0.2 seed=9")
        self.addCleanup(cluster.close)
        modules = cluster.start(lambda: ReliableBroadcast(period=0.05))
        with stdout() as out:
            cluster.runtimes[0].line("broadcast hello")
            cluster.runtimes[1].line("broadcast world")
            self.assertTrue(cluster.until(lambda: out.getvalue().count("deliver") == 6), out.getvalue())
            cluster.pump(0.2)
        lines = sorted(out.getvalue().splitlines())
        self.assertEqual(lines, ["deliver p1 hello"] * 3 + ["deliver p2 world"] * 3)
        self.assertEqual(modules[2].delivered, {("p1", 1), ("p2", 1)})


class SendPathTest(unittest.TestCase):
    def runtime(self, faults, name="p1", inc=1):
        addrs = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
        c = contract(name, addrs, MGR_INCARNATION=str(inc))
        rt = Runtime(c, Recorder(), EventLog(None, "t", name, c.index(), 3, inc), Faults.parse(faults))
        return rt, c

    def pattern(self, faults, name="p1", inc=1, n=200):
        rt, c = self.runtime(faults, name, inc)
        for i in range(n):
            rt.send_datagram(c.peer_addr("p2"), b"%d" % i)
        return [int(payload) for payload, _ in rt.sock.sent]

    def test_a_seed_repeats_the_drops_of_a_process_and_only_of_it(self):
        first = self.pattern("loss=0.3 seed=5")
        self.assertEqual(first, self.pattern("loss=0.3 seed=5"))
        self.assertTrue(100 < len(first) < 180, len(first))
        self.assertNotEqual(first, self.pattern("loss=0.3 seed=5", name="p2"))
        self.assertNotEqual(first, self.pattern("loss=0.3 seed=5", inc=2))
        self.assertNotEqual(first, self.pattern("loss=0.3 seed=6"))

    def test_a_new_spec_keeps_the_sequence_unless_its_seed_is_new(self):
        def sends(changes):
            rt, c = self.runtime("loss=0.5 seed=1")
            for i in range(100):
                if i in changes:
                    rt.control_line("faults " + changes[i])
                rt.send_datagram(c.peer_addr("p2"), b"%d" % i)
            return [int(payload) for payload, _ in rt.sock.sent]

        steady = sends({})
        self.assertEqual(sends({50: "loss=0.5 seed=1"}), steady)
        self.assertEqual(sends({50: "loss=0.5"}), steady)
        reseeded = sends({50: "loss=0.5 seed=2"})
        self.assertEqual([i for i in reseeded if i < 50], [i for i in steady if i < 50])
        self.assertNotEqual(reseeded, steady)

    def test_duplication_sends_twice(self):
        self.assertEqual(self.pattern("dup=1", n=3), [0, 0, 1, 1, 2, 2])
        self.assertEqual(self.pattern("loss=1 dup=1", n=3), [])

    def test_a_partition_blocks_both_ways(self):
        rt, c = self.runtime("partition=p1,p2/p3")
        rt.send_datagram(c.peer_addr("p3"), b"x")
        rt.send_datagram(c.peer_addr("p2"), b"y")
        self.assertEqual([p for p, _ in rt.sock.sent], [b"y"])
        self.assertFalse(rt.admits(c.peer_addr("p3")))
        self.assertTrue(rt.admits(c.peer_addr("p2")))
        # A sender outside the run is not in any block: it gets through.
        self.assertTrue(rt.admits(contract("p1", ["127.0.0.1:9"]).addr))

    def test_a_delay_holds_datagrams_back(self):
        rt, c = self.runtime("delay=30-30")
        rt.send_datagram(c.peer_addr("p2"), b"late")
        self.assertEqual(rt.sock.sent, [])
        start = time.monotonic()
        while not rt.sock.sent and time.monotonic() - start < 2:
            rt.step(max_wait=0.1)
        self.assertEqual(rt.sock.sent, [(b"late", ("127.0.0.1", 7002))])
        self.assertGreaterEqual(time.monotonic() - start, 0.02)

    def test_new_faults_from_the_control_pipe_replace_the_old(self):
        rt, c = self.runtime("loss=1")
        with stdout() as out:
            rt.control_line("faults dup=1")
            rt.control_line("faults loss=7")
            rt.control_line("reboot")
        self.assertEqual(str(rt.faults), "dup=1")
        self.assertEqual(
            out.getvalue().splitlines(),
            [
                "error: bad control line from the manager: loss must be a probability between 0 and 1, not '7'",
                "error: bad control line from the manager: 'reboot' is not a control line (expected: faults SPEC)",
            ],
        )

    def test_ids_and_numbers_of_a_restarted_process_follow_those_of_earlier_incarnations(self):
        rt, c = self.runtime("", inc=2)
        self.assertEqual([rt.new_message_id() for _ in range(2)], [1000000001, 1000000002])
        beb = BestEffortBroadcast(period=0.05)
        rt.start(beb)
        with stdout():
            beb.command_broadcast("again")
        sent = [payload.decode() for payload, _ in rt.sock.sent]
        self.assertEqual(
            sent,
            [
                # The broadcast event ticks the clocks first (1/1.0.0),
                # then each send: the link ids go on from the two above.
                "beb:1000000003 2/2.0.0 1000000001 again",
                "beb:1000000004 3/3.0.0 1000000001 again",
                "beb:1000000005 4/4.0.0 1000000001 again",
            ],
        )


class ArgumentsTest(unittest.TestCase):
    def test_algorithms_and_timings_are_read_as_the_rust_modules_read_them(self):
        from mgr_module.broadcast import algorithm_arg
        from mgr_module.detectors import timing_args

        self.assertEqual(algorithm_arg(["--period-ms", "5"], ["eager", "lazy"]), ("eager", ["--period-ms", "5"]))
        self.assertEqual(algorithm_arg(["--algorithm", "lazy"], ["eager", "lazy"])[0], "lazy")
        self.assertEqual(algorithm_arg(["--algorithm=lazy"], ["eager", "lazy"])[0], "lazy")
        for bad, shown in [(["--algorithm", "x"], '"x"'), (["--algorithm"], '""')]:
            with self.assertRaises(UsageError) as caught:
                algorithm_arg(bad, ["eager", "lazy"])
            self.assertEqual(str(caught.exception), "unknown algorithm %s (known: eager, lazy)" % shown)
        self.assertEqual(timing_args(["--delta-ms", "500", "--period-ms=20"], 1.0, 0.1), (0.5, 0.02))
        for bad, message in [
            (["--delta-ms"], "--delta-ms needs a positive number of milliseconds"),
            (["--delta-ms=0"], "--delta-ms needs a positive number of milliseconds"),
            (["-v", "3"], "unexpected argument '-v' (usage: --delta-ms N --period-ms N)"),
        ]:
            with self.assertRaises(UsageError) as caught:
                timing_args(bad, 1.0, 0.1)
            self.assertEqual(str(caught.exception), message)

    def test_the_period_argument_is_read_as_the_rust_modules_read_it(self):
        self.assertEqual(period_arg([], 0.5), 0.5)
        self.assertEqual(period_arg(["--period-ms", "100"], 0.5), 0.1)
        self.assertEqual(period_arg(["--period-ms=250"], 0.5), 0.25)
        for bad, message in [
            (["--period-ms"], "--period-ms needs a value (usage: --period-ms N)"),
            (["--period-ms", "0"], "--period-ms: '0' is not a positive number (usage: --period-ms N)"),
            (["--period-msx"], "unexpected argument '--period-msx' (usage: --period-ms N)"),
            (["-v"], "unexpected argument '-v' (usage: --period-ms N)"),
        ]:
            with self.assertRaises(UsageError) as caught:
                period_arg(bad, 0.5)
            self.assertEqual(str(caught.exception), message)

    def test_a_module_without_arguments_refuses_them(self):
        class Plain(Module):
            help = BROADCAST_HELP

            def upon_broadcast(self, m):
                pass

        with self.assertRaises(UsageError) as caught:
            Plain().configure(["--x"])
        self.assertEqual(str(caught.exception), "unexpected argument '--x' (this module takes none)")

    def test_a_broken_start_exits_with_the_contracts_status_and_one_line(self):
        env = {"MGR_RUN": "t", "MGR_SELF": "p1", "MGR_ADDR": "127.0.0.1:1", "MGR_PEERS": "p1=127.0.0.1:1"}
        err = io.StringIO()
        with contextlib.redirect_stderr(err), self.assertRaises(SystemExit) as caught:
            prepare(PerfectLink, [], env)
        self.assertEqual((caught.exception.code, err.getvalue()), (2, "error: MGR_MEMBER: not set\n"))


if __name__ == "__main__":
    unittest.main()
