"""The examples as real processes: started by hand with a made-up launch
contract, on real UDP sockets on 127.0.0.1 (and ::1 where it exists), driven
on stdin, judged by their stdout and their events file. Every process a
test starts is killed when the test ends, however it ends."""

import os
import socket
import unittest

from .harness import (
    RUST_BIN,
    TIMEOUT,
    Proc,
    TempDir,
    contract_env,
    example,
    free_addrs,
    library,
    library_env,
    read_events,
)


class EndToEnd(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        self.addCleanup(self.tmp.cleanup)
        self.events = self.tmp.file("events.jsonl")

    def start(self, argv, name, addrs, stdin=True, events=True, pass_fds=(), **extra):
        env = contract_env(name, addrs, self.events if events else None, **extra)
        if argv[2:3] == ["-m"]:
            env = library_env(env)
        proc = Proc(argv, env, stdin=stdin, pass_fds=pass_fds)
        self.addCleanup(proc.kill)
        return proc

    def run_of(self, argv, n, args=(), **extra):
        addrs = free_addrs(n)
        procs = [self.start(argv + list(args), "p%d" % (i + 1), addrs, **extra) for i in range(n)]
        return addrs, procs

    def assertDelivers(self, proc, lines, timeout=TIMEOUT):
        missing = proc.wait_all(lines, timeout)
        self.assertEqual(missing, [], "stdout: %r, stderr: %r" % (proc.seen, proc.stderr))

    def events_of(self, process, event=None):
        return [
            e for e in read_events(self.events) if e["process"] == process and (event is None or e["event"] == event)
        ]


class LinksTest(EndToEnd):
    def test_perfect_links_deliver_everything_once_through_loss(self):
        _, (p1, p2, p3) = self.run_of(
            example("perfect_link.py"), 3, ["--period-ms", "50"], MGR_FAULTS="loss=0.3"
        )
        for i in range(10):
            p1.type("send p2 m%d" % i)
            p1.type("send p3 m%d" % i)
        p3.type("send p1 back")
        self.assertDelivers(p2, ["deliver p1 m%d" % i for i in range(10)])
        self.assertDelivers(p3, ["deliver p1 m%d" % i for i in range(10)])
        self.assertDelivers(p1, ["deliver p3 back"])
        # Retransmissions go on (the link alone retransmits forever), but
        # nothing is delivered twice.
        self.assertEqual(p2.during(0.5) + p3.during(0.1), [])

        sends = {(e["peer"], e["id"]): e for e in self.events_of("p1", "send")}
        self.assertEqual(len(sends), 20)
        self.assertEqual(sorted(e["id"] for e in sends.values()), list(range(1, 21)))
        for q in ("p2", "p3"):
            delivers = self.events_of(q, "deliver")
            self.assertEqual(len(delivers), 10)
            for d in delivers:
                s = sends[(q, d["id"])]
                self.assertEqual((d["peer"], d["text"], d["inc"], d["run"]), ("p1", s["text"], 1, "test"))
                # The delivery has seen the send: it carries the sender's stamp.
                self.assertGreater(d["lamport"], s["lamport"])
                self.assertGreaterEqual(d["vc"][0], s["vc"][0])

    def test_the_seminar_class_and_the_sdk_link_talk_over_udp(self):
        addrs = free_addrs(2)
        seminar = self.start(example("seminar_fair_loss.py"), "p1", addrs, events=False)
        sdk = self.start(example("fair_loss.py"), "p2", addrs)
        seminar.type("nope")
        self.assertTrue(seminar.wait_for("error: unknown command 'nope' (try: send, help)"), seminar.seen)
        # A fair-loss link may lose a datagram sent before its peer bound its
        # port: send until delivery, as FLL1 promises.
        for target, source, text in ((seminar, sdk, "hello"), (sdk, seminar, "hi")):
            for _ in range(50):
                target.type("send %s %s" % ("p2" if target is seminar else "p1", text))
                if source.wait_for("deliver %s %s" % ("p1" if target is seminar else "p2", text), 0.2):
                    break
            else:
                self.fail("no delivery: %r %r" % (source.seen, source.stderr))
        # The SDK's link logs sends without ids and deliveries without stamps.
        deliver = self.events_of("p2", "deliver")[0]
        self.assertEqual((deliver["peer"], deliver["id"], deliver["text"]), ("p1", None, "hello"))

    def test_an_inherited_socket_keeps_datagrams_sent_before_the_start(self):
        addrs = free_addrs(2)
        p1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        p2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(p1.close)
        self.addCleanup(p2.close)
        p1.bind(("127.0.0.1", int(addrs[0].split(":")[1])))
        p2.bind(("127.0.0.1", int(addrs[1].split(":")[1])))
        p1.sendto(b"early\n", p2.getsockname())
        proc = self.start(example("fair_loss.py"), "p2", addrs, stdin=False, pass_fds=[p2.fileno()],
                          MGR_UDP_FD=p2.fileno())
        self.assertTrue(proc.wait_for("deliver p1 early"), (proc.seen, proc.stderr))

    def test_faults_change_on_the_control_pipe(self):
        addrs = free_addrs(2)
        read_end, write_end = os.pipe()
        self.addCleanup(os.close, write_end)
        sender = self.start(example("fair_loss.py"), "p1", addrs, pass_fds=[read_end], MGR_CONTROL_FD=read_end,
                            MGR_FAULTS="partition=p1/p2")
        os.close(read_end)
        receiver = self.start(example("fair_loss.py"), "p2", addrs, stdin=False)
        for _ in range(5):
            sender.type("send p2 blocked")
        self.assertFalse(receiver.wait_for("deliver p1 blocked", 0.5))
        os.write(write_end, b"faults bogus\nfaults loss=0\n")
        self.assertTrue(
            sender.wait_for("error: bad control line from the manager: "
                            "'bogus' is not of the form key=value (keys: loss, dup, delay, partition)"),
            sender.seen,
        )
        for _ in range(50):
            sender.type("send p2 healed")
            if receiver.wait_for("deliver p1 healed", 0.2):
                break
        else:
            self.fail("no delivery after the partition healed: %r" % receiver.seen)

    @unittest.skipUnless(socket.has_ipv6, "no IPv6")
    def test_links_work_over_ipv6(self):
        try:
            addrs = free_addrs(2, "::1")
        except OSError:
            self.skipTest("no ::1 here")
        p1 = self.start(example("perfect_link.py") + ["--period-ms", "50"], "p1", addrs)
        p2 = self.start(example("perfect_link.py") + ["--period-ms", "50"], "p2", addrs, stdin=False)
        p1.type("send p2 over six")
        self.assertDelivers(p2, ["deliver p1 over six"])


class BroadcastTest(EndToEnd):
    def test_a_restarted_process_broadcasts_with_new_numbers_and_everyone_delivers(self):
        argv = example("best_effort.py") + ["--period-ms", "50"]
        addrs, (p1, p2, p3) = self.run_of(argv, 3)
        p1.type("broadcast before")
        for p in (p1, p2, p3):
            self.assertDelivers(p, ["deliver p1 before"])
        p1.kill()
        again = self.start(argv, "p1", addrs, MGR_INCARNATION=2)
        again.type("broadcast after")
        for p in (again, p2, p3):
            self.assertDelivers(p, ["deliver p1 after"])
        # Had the new incarnation numbered its messages from 1 again, p2 and
        # p3 would have taken them for the ones they already delivered.
        for q in ("p2", "p3"):
            delivered = [(e["text"], e["id"]) for e in self.events_of(q, "deliver")]
            self.assertEqual(delivered, [("before", 1), ("after", 1_000_000_001)])
        broadcasts = [(e["text"], e["id"], e["inc"]) for e in self.events_of("p1", "broadcast")]
        self.assertEqual(broadcasts, [("before", 1, 1), ("after", 1_000_000_001, 2)])
        sends = [e["id"] for e in self.events_of("p1", "send") if e["inc"] == 2]
        self.assertEqual(sends, [1_000_000_001, 1_000_000_002, 1_000_000_003])

    def test_reliable_broadcast_delivers_everything_everywhere_through_loss(self):
        _, procs = self.run_of(example("reliable.py"), 3, ["--period-ms", "50"], MGR_FAULTS="loss=0.3 seed=1")
        for i, p in enumerate(procs):
            p.type("broadcast from %d" % (i + 1))
        wanted = ["deliver p%d from %d" % (i + 1, i + 1) for i in range(3)]
        for p in procs:
            self.assertDelivers(p, wanted)
        for p in procs:
            self.assertEqual(p.during(0.3), [])

    def test_the_broken_broadcast_delivers_every_third_message_twice(self):
        _, procs = self.run_of(example("broken.py"), 2, ["--period-ms", "50"])
        for i in range(3):
            procs[0].type("broadcast m%d" % i)
            self.assertDelivers(procs[1], ["deliver p1 m%d" % i])
        self.assertDelivers(procs[1], ["deliver p1 m2"])
        ids = [e["id"] for e in self.events_of("p2", "deliver")]
        self.assertEqual(ids, [1, 2, 3, 3])


class DetectorTest(EndToEnd):
    def test_the_perfect_failure_detector_detects_a_killed_process(self):
        _, (p1, p2, p3) = self.run_of(library("PerfectFailureDetector"), 3, ["--delta-ms", "1000"])
        # Δ leaves a slow machine time to start all three: none of them
        # is taken for crashed while it answers.
        self.assertEqual(p1.during(2.5), [])
        p3.kill()
        self.assertDelivers(p1, ["crash p3"])
        self.assertDelivers(p2, ["crash p3"])
        p1.type("detected")
        self.assertDelivers(p1, ["detected p3"])
        crash = self.events_of("p1", "crash")
        self.assertEqual([(e["peer"], e["text"]) for e in crash], [("p3", None)])

    def test_lazy_reliable_broadcast_relays_the_messages_of_a_crashed_sender(self):
        # p1 reaches only p2 (a partition), broadcasts, and is killed: only
        # p2 has its message, and relays it once its detector finds p1 gone.
        addrs = free_addrs(3)
        args = ["--algorithm", "lazy", "--period-ms", "50", "--delta-ms", "300"]
        p1 = self.start(library("ReliableBroadcast") + args, "p1", addrs, MGR_FAULTS="partition=p1,p2/p3")
        p2 = self.start(library("ReliableBroadcast") + args, "p2", addrs)
        p3 = self.start(library("ReliableBroadcast") + args, "p3", addrs)
        p1.type("broadcast last words")
        self.assertDelivers(p2, ["deliver p1 last words"])
        self.assertFalse(p3.wait_for("deliver p1 last words", 0.2))
        p1.kill()
        self.assertDelivers(p3, ["deliver p1 last words"])


class StartTest(EndToEnd):
    def start_and_exit(self, argv, **extra):
        addrs = free_addrs(1)
        proc = self.start(argv, "p1", addrs, stdin=False, **extra)
        code = proc.exit_code()
        proc.kill()
        return code, proc.stderr

    def test_a_broken_contract_or_argument_is_one_line_and_status_2(self):
        argv = example("best_effort.py")
        self.assertEqual(self.start_and_exit(argv, MGR_MEMBER=""), (2, ["error: MGR_MEMBER: empty"]))
        self.assertEqual(
            self.start_and_exit(argv, MGR_INCARNATION="0"),
            (2, ["error: MGR_INCARNATION must be a whole number of at least 1, not '0'"]),
        )
        self.assertEqual(
            self.start_and_exit(argv, MGR_FAULTS="loss=2"),
            (2, ["error: BestEffortBroadcast: MGR_FAULTS: loss must be a probability between 0 and 1, not '2'"]),
        )
        self.assertEqual(
            self.start_and_exit(argv + ["--period-ms", "0"]),
            (2, ["error: BestEffortBroadcast: --period-ms: '0' is not a positive number (usage: --period-ms N)"]),
        )
        self.assertEqual(
            self.start_and_exit(library("ReliableBroadcast") + ["--algorithm", "fast"]),
            (2, ['error: ReliableBroadcast: unknown algorithm "fast" (known: eager, lazy)']),
        )
        self.assertEqual(
            self.start_and_exit(library("ReliableBroadcast") + ["--algorithm=lazy", "--delta-ms", "x"]),
            (2, ["error: ReliableBroadcast: --delta-ms needs a positive number of milliseconds"]),
        )
        self.assertEqual(
            self.start_and_exit(library("Nope")),
            (2, ["error: unknown module 'Nope' (known: FairLossPointToPointLink, StubbornPointToPointLink, "
                 "PerfectPointToPointLink, PerfectFailureDetector, BestEffortBroadcast, ReliableBroadcast)"]),
        )

    def test_a_taken_address_is_status_1(self):
        taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        addr = "127.0.0.1:%d" % taken.getsockname()[1]
        proc = self.start(example("perfect_link.py"), "p1", [addr], stdin=False)
        self.assertEqual(proc.exit_code(), 1)
        proc.kill()
        self.assertEqual(
            proc.stderr,
            ["error: PerfectPointToPointLink: MGR_ADDR: cannot bind %s: Address already in use (os error 98)" % addr],
        )

    def test_end_of_stdin_does_not_end_the_module(self):
        addrs = free_addrs(2)
        p1 = self.start(example("perfect_link.py"), "p1", addrs)
        p1.close_stdin()
        p2 = self.start(example("perfect_link.py"), "p2", addrs)
        p2.type("send p1 still there?")
        self.assertDelivers(p1, ["deliver p2 still there?"])
        self.assertIsNone(p1.popen.poll())


@unittest.skipUnless(RUST_BIN, "MGR_MODULES_BIN (the built mgr-modules) is not given")
class InteropTest(EndToEnd):
    """Python and Rust instances of one abstraction in one run."""

    def mixed(self, python_argv, rust_module, args=("--period-ms", "50")):
        addrs = free_addrs(3)
        p1 = self.start(python_argv + list(args), "p1", addrs)
        p2 = self.start([RUST_BIN, rust_module] + list(args), "p2", addrs)
        p3 = self.start(python_argv + list(args), "p3", addrs)
        return p1, p2, p3

    def test_python_and_rust_best_effort_broadcasts_share_a_run(self):
        procs = self.mixed(example("best_effort.py"), "BestEffortBroadcast")
        for i, p in enumerate(procs):
            p.type("broadcast hello from %d" % (i + 1))
        for p in procs:
            self.assertDelivers(p, ["deliver p%d hello from %d" % (i + 1, i + 1) for i in range(3)])

    def test_python_and_rust_reliable_broadcasts_share_a_run(self):
        procs = self.mixed(library("ReliableBroadcast"), "ReliableBroadcast")
        procs[0].type("broadcast py")
        procs[1].type("broadcast rs")
        for p in procs:
            self.assertDelivers(p, ["deliver p1 py", "deliver p2 rs"])
        for p in procs:
            self.assertEqual(p.during(0.3), [])

    def test_python_and_rust_lazy_reliable_broadcasts_share_a_run(self):
        args = ("--algorithm", "lazy", "--period-ms", "50", "--delta-ms", "300")
        procs = self.mixed(library("ReliableBroadcast"), "ReliableBroadcast", args)
        procs[0].type("broadcast py")
        procs[1].type("broadcast rs")
        for p in procs:
            self.assertDelivers(p, ["deliver p1 py", "deliver p2 rs"])
        # The detectors exchange heartbeats across languages: nobody is
        # taken for crashed while everyone answers.
        for p in procs:
            self.assertEqual(p.during(0.8), [])

    def test_python_and_rust_perfect_links_share_a_run(self):
        p1, p2, p3 = self.mixed(example("perfect_link.py"), "PerfectPointToPointLink")
        p1.type("send p2 to rust")
        p2.type("send p3 to python")
        self.assertDelivers(p2, ["deliver p1 to rust"])
        self.assertDelivers(p3, ["deliver p2 to python"])
        # The Rust side's events pair with the Python side's.
        rust = [e for e in self.events_of("p2", "deliver")]
        self.assertEqual([(e["peer"], e["id"], e["text"]) for e in rust], [("p1", 1, "to rust")])


if __name__ == "__main__":
    unittest.main()
