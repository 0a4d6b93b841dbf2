"""The events file and the clocks, as the Rust runtime writes and keeps
them (modules/src/runtime/events.rs), with the incarnation."""

import json
import os
import tempfile
import unittest

from mgr_module.events import EventLog, Stamp


class EventsTest(unittest.TestCase):
    def test_clocks_tick_on_send_and_take_the_maximum_on_arrival(self):
        log = EventLog(None, "r", "p1", 0, 3)
        sent = log.send("p2", 1, "a")
        self.assertEqual(sent, Stamp(1, [1, 0, 0]))
        self.assertEqual(log.deliver("p2", 1, Stamp(7, [0, 4, 2]), "b"), 8)
        self.assertEqual(log.vc, [2, 4, 2])
        self.assertEqual(log.deliver("p2", None, None, "d"), 9)
        log.record("crash", "p3")
        self.assertEqual(log.lamport, 10)
        self.assertEqual(log.vc, [4, 4, 2])
        # A stamp with fewer or more entries (another run's size) merges
        # entry by entry, as Rust's zip does.
        log.arrive("receive", "p2", 2, Stamp(1, [9]), "e")
        self.assertEqual(log.vc, [10, 4, 2])
        log.arrive("receive", "p2", 3, Stamp(1, [0, 0, 0, 99]), "f")
        self.assertEqual(log.vc, [11, 4, 2])

    def test_a_line_has_the_fields_of_the_rust_runtime_in_its_order(self):
        log = EventLog(None, "lab", "p1", 0, 2, inc=2)
        self.assertEqual(
            log.line("send", "p2", 1000000001, "hello", time_ms=5),
            '{"time_ms":5,"run":"lab","process":"p1","event":"send","peer":"p2","id":1000000001,'
            '"lamport":0,"vc":[0,0],"inc":2,"text":"hello"}\n',
        )
        self.assertEqual(
            log.line("broadcast", None, None, None, time_ms=5),
            '{"time_ms":5,"run":"lab","process":"p1","event":"broadcast","peer":null,"id":null,'
            '"lamport":0,"vc":[0,0],"inc":2,"text":null}\n',
        )
        # Escapes as serde_json writes them: short forms, \u00XX for other
        # control characters, everything else as UTF-8.
        self.assertIn('"text":"a\\u0001\u00e9\\"\\\\\\n\\t\u2603"', log.line("x", None, None, 'a\x01\u00e9"\\\n\t\u2603'))

    def test_appends_one_json_object_per_line(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "events.jsonl")
            with open(path, "w") as f:
                f.write('{"event":"earlier"}\n')
            log = EventLog(path, "lab", "p1", 0, 2)
            log.send("p2", 1, "hello")
            log.deliver("p2", None, None, "hi")
            log.close()
            with open(path, encoding="utf-8") as f:
                lines = [json.loads(line) for line in f]
        self.assertEqual(len(lines), 3)
        self.assertEqual(lines[1]["run"], "lab")
        self.assertEqual(lines[1]["process"], "p1")
        self.assertEqual(lines[1]["event"], "send")
        self.assertEqual(lines[1]["vc"], [1, 0])
        self.assertEqual(lines[1]["inc"], 1)
        self.assertEqual(lines[2]["event"], "deliver")
        self.assertIsNone(lines[2]["id"])
        self.assertEqual(lines[2]["lamport"], 2)
        self.assertEqual(list(lines[2]), ["time_ms", "run", "process", "event", "peer", "id", "lamport", "vc", "inc", "text"])


if __name__ == "__main__":
    unittest.main()
