"""Frames, stamps and messages: the strings of the Rust modules' tests
(links/stubborn.rs, runtime/events.rs, broadcast/reliable.rs), so that a
Python process and a Rust process read each other's datagrams."""

import unittest

from mgr_module import Ack, Data, Message, Stamp, decode_frame, encode_frame, split_number
from mgr_module.commands import HELP, Command, parse_line, refusal, verbs
from mgr_module.links import LINK_HELP, owns_tagged


class FrameTest(unittest.TestCase):
    def test_frames_round_trip(self):
        m = Message(3, Stamp(7, [2, 5]), "hello  world")
        self.assertEqual(encode_frame(m), "3 7/2.5 hello  world")
        self.assertEqual(decode_frame(encode_frame(m)), m)
        self.assertEqual(encode_frame(m, "beb"), "beb:3 7/2.5 hello  world")
        self.assertEqual(decode_frame("beb:3 7/2.5 hello  world", "beb"), m)
        self.assertIsNone(decode_frame("beb:3 7/2.5 x", "pfd"), "another instance's frame")
        self.assertEqual(decode_frame("ack 12"), Ack(12))
        self.assertEqual(decode_frame("pfd:ack 12", "pfd"), Ack(12))
        self.assertEqual(encode_frame(Ack(12), "rb"), "rb:ack 12")
        empty = decode_frame("1 2/0")
        self.assertEqual((empty.id, empty.text), (1, ""))
        self.assertIsNone(decode_frame("hello"))
        self.assertIsNone(decode_frame("1 x hello"))
        self.assertIsNone(decode_frame("ack x"))
        self.assertIsNone(decode_frame("1"))
        self.assertIsNone(decode_frame("rb.pfd:1 1/1 x", "rb"))

    def test_frames_of_a_restarted_sender_carry_large_ids(self):
        m = Message(1_000_000_001, Stamp(1, [1, 0, 0]), "again")
        self.assertEqual(encode_frame(m, "beb"), "beb:1000000001 1/1.0.0 again")
        self.assertEqual(decode_frame("beb:1000000001 1/1.0.0 again", "beb"), m)

    def test_a_named_instance_owns_only_its_frames(self):
        self.assertTrue(owns_tagged("", b"anything"))
        self.assertTrue(owns_tagged("rb", b"rb:1 1/1 x"))
        self.assertFalse(owns_tagged("rb", b"rb.pfd:1 1/1 x"))
        self.assertFalse(owns_tagged("beb", b"be"))

    def test_stamps_read_back_as_written(self):
        stamp = Stamp(12, [3, 0, 9])
        self.assertEqual(stamp.encode(), "12/3.0.9")
        self.assertEqual(Stamp.decode("12/3.0.9"), stamp)
        self.assertEqual(Stamp.decode("5/"), Stamp(5, []))
        self.assertIsNone(Stamp.decode("x/1"))
        self.assertIsNone(Stamp.decode("3"))
        self.assertIsNone(Stamp.decode("3/1..2"))

    def test_reliable_broadcast_data_reads_back_as_written(self):
        d = Data("p2", 7, "hello  there")
        self.assertEqual(d.encode(), "DATA p2 7 hello  there")
        self.assertEqual(Data.decode(d.encode()), d)
        self.assertIsNone(Data.decode("ACK p2 7 x"))
        self.assertIsNone(Data.decode("DATA p2"))
        self.assertEqual(Data.decode("DATA p2 7"), Data("p2", 7, ""))

    def test_best_effort_messages_carry_their_number(self):
        self.assertEqual(split_number("4 hello  world"), (4, "hello  world"))
        self.assertEqual(split_number("4 "), (4, ""))
        self.assertIsNone(split_number("4"))
        self.assertIsNone(split_number("x y"))


class CommandTest(unittest.TestCase):
    def test_a_line_is_a_verb_and_its_arguments(self):
        self.assertEqual(parse_line("send p2 hello\n"), Command("send", "p2 hello"))
        self.assertEqual(parse_line("  send\tp2   hello world \r\n"), Command("send", "p2   hello world"))
        self.assertEqual(parse_line("read"), Command("read", ""))
        self.assertEqual(parse_line(""), "empty")
        self.assertEqual(parse_line("   \n"), "empty")
        self.assertEqual(parse_line("help"), HELP)
        self.assertEqual(parse_line("help me"), HELP)
        # What once changed the faults from stdin is a command like any other.
        self.assertEqual(parse_line("#mgr faults loss=1\n"), Command("#mgr", "faults loss=1"))

    def test_send_arguments_are_a_target_and_a_text(self):
        self.assertEqual(Command("send", "p2   two  spaces").target_and_text(), ("p2", "two  spaces"))
        self.assertIsNone(Command("send", "p2").target_and_text())
        self.assertIsNone(Command("send", "").target_and_text())
        self.assertEqual(Command("x", "a b  c d").words(3), ["a", "b", "c d"])
        self.assertEqual(Command("read", "").words(0), [])
        self.assertIsNone(Command("read", "x").words(0))
        self.assertEqual(Command("broadcast", "a  b").words(1), ["a  b"])
        self.assertIsNone(Command("broadcast", "").words(1))

    def test_refusals_name_the_usage_or_the_verbs(self):
        self.assertEqual(verbs(LINK_HELP), ["send", "help"])
        self.assertEqual(refusal(Command("bogus"), LINK_HELP), "error: unknown command 'bogus' (try: send, help)")
        self.assertEqual(
            refusal(Command("send", "p2"), LINK_HELP),
            "error: usage: send q text   send text to process q, e.g. send p2 hello",
        )


if __name__ == "__main__":
    unittest.main()
