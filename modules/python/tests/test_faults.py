"""The fault spec, parsed and printed as the Rust runtime does (the cases of
modules/src/runtime/faults.rs and stdin.rs), plus the seed."""

import unittest

from mgr_module.faults import Faults, FaultsError, parse_control


def err(spec):
    try:
        Faults.parse(spec)
    except FaultsError as e:
        return str(e)
    raise AssertionError("no error for %r" % spec)


class FaultsTest(unittest.TestCase):
    def test_a_spec_reads_back_as_printed(self):
        faults = Faults.parse("loss=0.2 dup=0.1 delay=10-50 partition=p1,p2/p3")
        self.assertEqual(faults.loss, 0.2)
        self.assertEqual(faults.dup, 0.1)
        self.assertEqual(faults.delay_ms, (10, 50))
        self.assertEqual(faults.partition, [["p1", "p2"], ["p3"]])
        self.assertIsNone(faults.seed)
        self.assertEqual(str(faults), "loss=0.2 dup=0.1 delay=10-50 partition=p1,p2/p3")
        self.assertEqual(Faults.parse(str(faults)), faults)
        self.assertTrue(Faults.parse("").is_none())
        self.assertEqual(Faults.parse("delay=7").delay_ms, (7, 7))
        self.assertEqual(str(Faults.parse("loss=1 dup=1e-7")), "loss=1 dup=0.0000001")

    def test_the_seed_is_a_u64(self):
        faults = Faults.parse("loss=0.5 seed=42")
        self.assertEqual(faults.seed, 42)
        self.assertEqual(str(faults), "loss=0.5 seed=42")
        self.assertEqual(Faults.parse("seed=18446744073709551615").seed, 2**64 - 1)
        # A seed alone changes nothing on the wire.
        self.assertTrue(Faults.parse("seed=1").is_none())
        for bad in ["-1", "x", "18446744073709551616", "1.0"]:
            self.assertEqual(err("seed=" + bad), "seed must be a whole number, not '%s'" % bad)

    def test_a_seed_repeats_the_choices_of_each_process_and_incarnation(self):
        faults = Faults.parse("loss=0.5 seed=7")

        def draws(process, incarnation):
            rng = faults.rng(process, incarnation)
            return [rng.random() for _ in range(20)]

        self.assertEqual(draws("p1", 1), draws("p1", 1))
        self.assertNotEqual(draws("p1", 1), draws("p2", 1))
        self.assertNotEqual(draws("p1", 1), draws("p1", 2))
        # Exactly the documented seeding, so a user can replay it.
        import random

        replay = random.Random("7/p1/1")
        self.assertEqual(draws("p1", 1), [replay.random() for _ in range(20)])
        # Without a seed, two processes draw differently.
        unseeded = Faults.parse("loss=0.5")
        self.assertNotEqual(unseeded.rng("p1", 1).random(), unseeded.rng("p1", 1).random())

    def test_partitions_separate_blocks_and_the_unlisted_stay_together(self):
        faults = Faults.parse("partition=p1,p2/p3")
        self.assertTrue(faults.connected("p1", "p2"))
        self.assertFalse(faults.connected("p1", "p3"))
        self.assertFalse(faults.connected("p4", "p3"))
        self.assertTrue(faults.connected("p4", "p5"))
        self.assertTrue(Faults().connected("p1", "p9"))

    def test_bad_specs_are_refused_with_the_reason(self):
        self.assertEqual(err("loss=1.5"), "loss must be a probability between 0 and 1, not '1.5'")
        self.assertEqual(err("dup=x"), "dup must be a probability between 0 and 1, not 'x'")
        self.assertEqual(err("loss=1_0"), "loss must be a probability between 0 and 1, not '1_0'")
        self.assertEqual(err("loss=nan"), "loss must be a probability between 0 and 1, not 'nan'")
        self.assertEqual(Faults.parse("loss=.5 dup=+1E0").loss, 0.5)
        self.assertTrue(err("delay=50-10").startswith("delay must be MIN-MAX"))
        self.assertTrue(err("delay=0-90000").startswith("delay must be MIN-MAX"))
        self.assertEqual(err("delay=-5"), "delay must be MIN-MAX milliseconds with MIN <= MAX <= 60000, not '-5'")
        # The Rust runtime's texts, word for word: the unknown key's names
        # the seed, the word without '=' does not.
        self.assertEqual(err("jitter=3"), "unknown fault 'jitter' (known: loss, dup, delay, partition, seed)")
        self.assertEqual(err("loss"), "'loss' is not of the form key=value (keys: loss, dup, delay, partition)")
        self.assertEqual(err("partition=p1,p2/p2"), "p2 is in two blocks of the partition")
        self.assertEqual(err("partition=p1,p1"), "p1 is in two blocks of the partition")
        self.assertTrue(err("partition=p1,/p2").startswith("partition must be blocks"))
        self.assertEqual(
            err("partition=p1/p.2"), "partition must be blocks of process names such as p1,p2/p3, not 'p1/p.2'"
        )

    def test_a_refused_spec_is_quoted_short_and_without_control_characters(self):
        self.assertEqual(
            err("delay=a\0b\x1b[2J"),
            "delay must be MIN-MAX milliseconds with MIN <= MAX <= 60000, not 'a\\u{0}b\\u{1b}[2J'",
        )
        self.assertEqual(err("loss=" + "9" * 100000), "loss must be a probability between 0 and 1, not '%s\u2026'" % ("9" * 40))
        self.assertLess(len(err("partition=p1/" + "\u00e9" * 1000)), 200)

    def test_control_lines_set_the_faults(self):
        self.assertEqual(parse_control("faults loss=0.5 partition=p1/p2\n"), Faults.parse("loss=0.5 partition=p1/p2"))
        self.assertEqual(parse_control("faults"), Faults())
        with self.assertRaises(FaultsError):
            parse_control("faults loss=2")
        with self.assertRaisesRegex(FaultsError, r"^'reboot now' is not a control line \(expected: faults SPEC\)$"):
            parse_control("reboot now")


if __name__ == "__main__":
    unittest.main()
