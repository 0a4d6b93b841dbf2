"""The user's commands: lines typed on stdin, split into a verb and its
arguments, with the grammar and the refusals of the Rust runtime
(modules/src/runtime/stdin.rs and Context::refuse in runtime/mod.rs).

Each module lists its commands in its `help` text, one per line, the verb
first: the same text answers `help`, names the verbs of an unknown-command
error and gives the usage line of a command with missing arguments.
"""


class Command:
    """A line typed by the user: its first word and the rest."""

    __slots__ = ("verb", "args")

    def __init__(self, verb, args=""):
        self.verb = verb
        # Everything after the verb, trimmed.
        self.args = args

    def __eq__(self, other):
        return isinstance(other, Command) and (self.verb, self.args) == (other.verb, other.args)

    def __repr__(self):
        return "Command(%r, %r)" % (self.verb, self.args)

    def target_and_text(self):
        """The first word of the arguments and the rest, e.g. ("p2",
        "hello") for `send p2 hello`; None when either part is missing."""
        target, text = split_word(self.args)
        if target and text:
            return (target, text)
        return None

    def words(self, count):
        """The arguments as `count` parts: count-1 words and the rest of the
        line; None when a part is missing. words(1) is the whole argument
        text, words(2) is target_and_text."""
        parts = []
        rest = self.args
        for _ in range(count - 1):
            word, rest = split_word(rest)
            if not word:
                return None
            parts.append(word)
        if count > 0:
            if not rest:
                return None
            parts.append(rest)
        elif rest:
            return None
        return parts


# What parse_line returns for a blank line and for `help`.
EMPTY = "empty"
HELP = "help"


def split_word(text):
    """The first word of `text` (trimmed) and the rest, its leading
    whitespace removed."""
    text = text.strip()
    parts = text.split(None, 1)
    if not parts:
        return ("", "")
    if len(parts) == 1:
        return (parts[0], "")
    return (parts[0], parts[1].lstrip())


def parse_line(line):
    """Splits one line of stdin: EMPTY, HELP, or a Command."""
    verb, args = split_word(line.strip())
    if verb == "":
        return EMPTY
    if verb == "help":
        return HELP
    return Command(verb, args)


def verbs(help_text):
    """The verbs a help text lists: the first word of each line."""
    return [line.split()[0] for line in help_text.splitlines() if line.split()]


def refusal(command, help_text):
    """The one line that answers a command the module cannot take: the
    usage line of a known verb with missing arguments, or the list of verbs
    for an unknown one."""
    for line in help_text.splitlines():
        line = line.strip()
        words = line.split()
        if words and words[0] == command.verb:
            return "error: usage: %s" % line
    return "error: unknown command '%s' (try: %s)" % (command.verb, ", ".join(verbs(help_text)))
