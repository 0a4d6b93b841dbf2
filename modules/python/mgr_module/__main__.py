"""`python3 -m mgr_module NAME [args...]`: runs one of the library's modules
as a process of a run, as `mgr-modules NAME` runs a built-in one;
`python3 -m mgr_module --list` prints their names."""

import sys

from . import MODULES
from .runtime import run


def main(argv):
    if not argv:
        print("error: no module given; usage: python3 -m mgr_module <Module> [args...]", file=sys.stderr)
        return 2
    name = argv[0]
    if name == "--list":
        for known in MODULES:
            print(known)
        return 0
    module = MODULES.get(name)
    if module is None:
        print("error: unknown module '%s' (known: %s)" % (name, ", ".join(MODULES)), file=sys.stderr)
        return 2
    # The error messages name the module as the user did.
    instance = module()
    instance.module_name = name
    run(instance, argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
